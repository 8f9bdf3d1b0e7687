"""Which change to the translators keeps the small objects? An ablation on flat <-> comic (chapter 11).

Each variant of :data:`spokenstyle.recipes.cyclegan.ABLATION_VARIANTS` (the shipped recipe; the
identity weight at 0 and at lambda; PatchNCE beside the cycle and in its place, CUT; U-Net skips;
the small-object-weighted L1 to the source; a 34 px patch discriminator) is trained on flat <-> comic
by :func:`spokenstyle.recipes.cyclegan.train_variant` (the shipped recipe's budget row, full
profile, with the variant's fields and 3,000 steps instead of 12,000), and scored in both directions
on *validation* scenes (the seed range ``validation`` of :mod:`spokenstyle.data.splits`; no test
scene is drawn): content accuracy, style accuracy, scene accuracy, L1/SSIM to the truth, FD and
its real-vs-real baseline, by the shipped judge and feature extractor. The rule that picks a
winner, :data:`spokenstyle.recipes.cyclegan.ABLATION_RULE`, was fixed before any run was scored. It
has two stages: every variant with seed 0 (the screen), then seed 1 for the shipped recipe and the
two best eligible variants (:func:`spokenstyle.recipes.cyclegan.choose_ablation_variant`).

Four steps (one thread per run; two runs at a time on a 2-core machine)::

    python benchmarks/translator_ablation.py commands --out /work/exp/ablation     # stage 1 + the shipped seed 1
    OMP_NUM_THREADS=1 python benchmarks/translator_ablation.py train --variant skip --seed 0 --out /work/exp/ablation
    python benchmarks/translator_ablation.py pending --runs /work/exp/ablation      # stage 2's commands
    OMP_NUM_THREADS=1 python benchmarks/translator_ablation.py collect --runs /work/exp/ablation \\
        --json spokenstyle/shipped/benchmarks/translator-ablation-cpu.json

Runs trained on another day (their folders gone) join through the record: ``collect --runs NEW_DIR
--merge spokenstyle/shipped/benchmarks/translator-ablation-cpu.json --json ...`` keeps the recorded runs and
adds (or replaces) those under ``NEW_DIR``; the sample sheet is then kept as it was.

``train`` writes ``OUT/VARIANT_sSEED/`` (the generators, ``save_pretrained``, with the validation
scores and the command in the manifest; a killed run resumes from ``OUT/VARIANT_sSEED/run``).
``pending`` exits with status 3 while a stage-1 run is missing. ``collect`` reads every run folder,
scores the shipped ``cyclegan_flat_comic`` translators on the same validation scenes for reference,
applies the rule and writes the JSON that chapter 11 reads (through
:func:`spokenstyle.runtime.data_dir`).

Cost, measured on the 2-core machine with two runs at a time, one thread each: 0.3 to 0.4 s a
step (PatchNCE beside the cycle the dearest); 11 runs of 3,000 steps, about 3 CPU-hours.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import sys
import time
from pathlib import Path

import torch
from torchvision.transforms.functional import to_pil_image
from torchvision.utils import make_grid

from spokenstyle import checkpoints, runtime
from spokenstyle.data import render, sample_scenes
from spokenstyle.data.splits import seed_range
from spokenstyle.evaluation import score_translator
from spokenstyle.models.cyclegan import CycleGAN
from spokenstyle.models.features import feature_extractor
from spokenstyle.models.judge import SceneJudge
from spokenstyle.recipes import cyclegan as rcg

NAME = "cyclegan_flat_comic"
SEEDS = (0, 1)
STEPS = 3000  # a quarter of the shipped 12,000 (the linear decay and the 1,000-step warm-up as in the recipe)
N_VALIDATION = 300  # validation scenes per direction: the recipe's own eval size
KEEP = ("style_accuracy", "content_accuracy", "scene_accuracy", "l1_to_truth", "ssim_to_truth", "fd",
        "fd_real_vs_real", "cycle_l1")


def folder(out: Path, variant: str, seed: int) -> Path:
    return out / f"{variant}_s{seed}"


def commands(out: Path, steps: int) -> list[str]:
    """Stage 1's ``train`` commands (every variant with seed 0) and the shipped recipe's seed 1, which
    stage 2 always needs; ``pending`` prints the finalists' commands once stage 1 is scored."""
    return [train_command(out, v, SEEDS[0], steps) for v in rcg.ABLATION_VARIANTS] + \
        [train_command(out, "shipped", SEEDS[1], steps)]


def train_command(out: Path, variant: str, seed: int, steps: int) -> str:
    me = "benchmarks/translator_ablation.py"
    return (f"OMP_NUM_THREADS=1 python {me} train --variant {variant} --seed {seed} --steps {steps} "
            f"--out {shlex.quote(str(out))}")


def read_runs(out: Path) -> list[dict]:
    """Every finished run under ``out`` (a folder with a manifest), as the rule reads them."""
    runs = []
    for path in sorted(p for p in Path(out).glob("*_s[0-9]*") if p.is_dir()):
        if not (path / checkpoints.MANIFEST).is_file():
            print(f"skipped {path}: no checkpoint (still training?)", file=sys.stderr)
            continue
        manifest = checkpoints.read_manifest(path)
        (weights_name, info), = manifest["files"].items()
        m = manifest["metrics"]
        runs.append({"variant": m["variant"], "seed": m["seed"], "folder": path.name, "steps": m["steps"],
                     "fields": manifest["extra"]["fields"], "command": manifest.get("command"),
                     "train_seconds": m["train_seconds"], "torch_threads": m["torch_threads"],
                     "sha256": info["sha256"],
                     "validation": {k: v for k, v in m.items() if k[:3] in ("AB_", "BA_")}})
    return runs


def pending(args: argparse.Namespace) -> None:
    """Print the stage-2 commands still to run (nothing while stage 1 is unfinished: it says what is missing)."""
    runs = read_runs(Path(args.runs))
    done = {r["variant"] for r in runs if r["seed"] == SEEDS[0]}
    missing = [v for v in rcg.ABLATION_VARIANTS if v not in done]
    if missing:
        print(f"stage 1 unfinished: no seed-{SEEDS[0]} run yet of {missing}", file=sys.stderr)
        sys.exit(3)
    choice = rcg.choose_ablation_variant(runs, seeds=SEEDS)
    print(f"finalists: {choice['finalists']}", file=sys.stderr)
    for variant, seed in choice["pending"]:
        print(train_command(Path(args.runs), variant, seed, args.steps))


def validation_scores(model: CycleGAN, *, judge, extractor, n: int) -> dict:
    """Both directions on ``n`` validation scenes: ``{AB|BA}_{metric}`` for the metrics of KEEP."""
    a, b = rcg.PAIRS[NAME]
    return score_translator(model, a, b, judge=judge, n=n, split="validation", keep=KEEP, extractor=extractor)


def train(args: argparse.Namespace) -> None:
    rt = runtime.setup(seed=args.seed, device=args.device, profile="full")
    target = folder(Path(args.out), args.variant, args.seed)
    if (target / checkpoints.MANIFEST).is_file():
        print(f"{target} is done already; delete it to train again")
        return
    t0 = time.perf_counter()
    model, history, budget = rcg.train_variant(args.variant, runtime=rt, name=NAME, steps=args.steps,
                                               checkpoint_dir=target / "run")
    train_s = time.perf_counter() - t0
    judge = SceneJudge.from_pretrained("judge", device=rt.device)
    scores = validation_scores(model, judge=judge, extractor=feature_extractor(weights="features").to(rt.device),
                               n=args.n)
    scores.update(variant=args.variant, seed=args.seed, steps=budget.steps, validation_scenes=args.n,
                  train_seconds=round(train_s, 1), torch_threads=torch.get_num_threads(), device=str(rt.device),
                  loss_G_last=history.mean("loss_G", last=4))
    print({k: round(v, 4) if isinstance(v, float) else v for k, v in scores.items()})
    model.cpu().save_pretrained(
        target, metrics=scores, command=" ".join(["python"] + [shlex.quote(x) for x in sys.argv]),
        extra={"pair": list(rcg.PAIRS[NAME]), "variant": args.variant, "fields": rcg.ABLATION_VARIANTS[args.variant],
               "budget": budget.to_dict(), "scored_on": f"validation scenes {seed_range('validation').start:,} ..."})
    shutil.rmtree(target / "run", ignore_errors=True)


@torch.no_grad()
def sample_sheet(out: Path, runs: list[dict], path: Path, n: int = 6) -> None:
    """One JPEG (quality 90: a PNG of these textures is 0.7 MB): the first ``n`` validation scenes in flat and comic (top two rows), then each seed-0
    variant's flat -> comic and comic -> flat translations of them, one row each, in
    ABLATION_VARIANTS order; what chapter 11 shows beside the table."""
    a, b = rcg.PAIRS[NAME]
    scenes = sample_scenes(seed_range("validation").seeds(n))
    flat, comic = render(scenes, a, 64), render(scenes, b, 64)
    rows = [flat, comic]
    by_variant = {r["variant"]: r for r in runs if r["seed"] == SEEDS[0]}
    for variant in rcg.ABLATION_VARIANTS:
        model = CycleGAN.from_pretrained(out / by_variant[variant]["folder"]).eval()
        rows += [model.G_AB.translate(flat), model.G_BA.translate(comic)]
    grid = make_grid(torch.cat(rows).clamp(0, 1), nrow=n, padding=2, pad_value=1.0)
    to_pil_image(grid).save(path, quality=90)
    print("wrote", path)


def merge_runs(recorded: list[dict], new: list[dict]) -> list[dict]:
    """The runs of an earlier record with the new run folders' runs; a new run replaces a recorded one of the
    same variant and seed (run folders are wiped between machines; the record keeps what they scored).
    Runs of different lengths are not comparable, so every run must have the same ``steps``."""
    fresh = {(r["variant"], r["seed"]) for r in new}
    merged = [r for r in recorded if (r["variant"], r["seed"]) not in fresh] + new
    lengths = {r.get("steps") for r in merged}
    if len(lengths) > 1:
        by_length = {n: sorted(f"{r['variant']} seed {r['seed']}" for r in merged if r.get("steps") == n) for n in lengths}
        raise ValueError(f"the runs to merge were trained for different numbers of steps: {by_length}; "
                         "an ablation compares runs of one length (train the odd ones again with the record's steps)")
    return merged


def collect(args: argparse.Namespace) -> None:
    runs = read_runs(Path(args.runs))
    if args.merge:
        recorded = json.loads(Path(args.merge).read_text())["runs"]
        runs = merge_runs(recorded, runs)
        print(f"{len(recorded)} recorded runs from {args.merge}, {len(runs)} after merging", file=sys.stderr)
    judge = SceneJudge.from_pretrained("judge", device="cpu")
    shipped = validation_scores(CycleGAN.from_pretrained(NAME), judge=judge,
                                extractor=feature_extractor(weights="features"), n=args.n)
    choice = rcg.choose_ablation_variant(runs, seeds=SEEDS)
    result = {"what": "chapter 11: ablation of the flat <-> comic translator on validation scenes",
              "pair": list(rcg.PAIRS[NAME]), "variants": rcg.ABLATION_VARIANTS, "seeds": list(SEEDS),
              "validation_scenes": args.n, "validation_start": seed_range("validation").start,
              "rule": rcg.ABLATION_RULE, "steps": STEPS, **choice, "runs": runs,
              "shipped_checkpoint": {"name": NAME, "steps": 12000, "validation": shipped},
              "device": "cpu", "omp_num_threads": os.environ.get("OMP_NUM_THREADS"), "torch": torch.__version__}
    print(json.dumps({k: result[k] for k in ("chosen", "margin", "finalists", "pending", "table")}, indent=1))
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
        print("wrote", args.json)
        seed0 = [r for r in runs if r["seed"] == SEEDS[0]]
        if all((Path(args.runs) / r["folder"] / checkpoints.MANIFEST).is_file() for r in seed0):
            sample_sheet(Path(args.runs), runs, Path(args.json).with_suffix(".jpg"))
        else:  # the sheet shows seed 0's translations; their weights went with an earlier machine
            print("kept the sample sheet: not every seed-0 run folder is under --runs", file=sys.stderr)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="what", required=True)
    p = sub.add_parser("commands", help="print the train commands")
    p.add_argument("--out", required=True)
    p.add_argument("--steps", type=int, default=STEPS)
    p = sub.add_parser("train", help="train and score one variant with one seed")
    p.add_argument("--variant", required=True, choices=sorted(rcg.ABLATION_VARIANTS))
    p.add_argument("--seed", type=int, required=True)
    p.add_argument("--steps", type=int, default=STEPS)
    p.add_argument("--n", type=int, default=N_VALIDATION, help="validation scenes per direction")
    p.add_argument("--device", default="cpu")
    p.add_argument("--out", required=True)
    p = sub.add_parser("pending", help="print stage 2's train commands still to run")
    p.add_argument("--runs", required=True)
    p.add_argument("--steps", type=int, default=STEPS)
    p = sub.add_parser("collect", help="score the shipped translators, apply the rule, write the JSON")
    p.add_argument("--runs", required=True)
    p.add_argument("--n", type=int, default=N_VALIDATION)
    p.add_argument("--json", default=None)
    p.add_argument("--merge", default=None, help="an earlier record (JSON) whose runs join those under --runs")
    args = parser.parse_args()
    if args.what == "commands":
        print("\n".join(commands(Path(args.out), args.steps)))
    elif args.what == "train":
        train(args)
    elif args.what == "pending":
        pending(args)
    else:
        collect(args)


if __name__ == "__main__":
    main()
