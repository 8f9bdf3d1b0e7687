"""Which change to the translators keeps the small objects? An ablation on flat <-> comic (chapter 11).

Each variant of :data:`spokenstyle.recipes.cyclegan.ABLATION_VARIANTS` (the shipped recipe; the
identity weight at 0 and at lambda; PatchNCE beside the cycle and in its place, CUT; U-Net skips;
the small-object-weighted L1 to the source) is trained on flat <-> comic with two seeds by
:func:`spokenstyle.recipes.cyclegan.train_variant` (the shipped recipe's budget row, full
profile, with the variant's fields and a reduced step count), and scored in both directions on
*validation* scenes (the seed range ``validation`` of :mod:`spokenstyle.data.splits`; no test
scene is drawn): content accuracy, style accuracy, scene accuracy, L1/SSIM to the truth, FD and
its real-vs-real baseline, by the shipped judge and feature extractor. The rule that picks a
winner, :data:`spokenstyle.recipes.cyclegan.ABLATION_RULE`, was fixed before any run was scored.

Three steps (one thread per run; two runs at a time on a 2-core machine)::

    python benchmarks/translator_ablation.py commands --out /work/exp/ablation     # prints the train commands
    OMP_NUM_THREADS=1 python benchmarks/translator_ablation.py train --variant skip --seed 0 --out /work/exp/ablation
    OMP_NUM_THREADS=1 python benchmarks/translator_ablation.py collect --runs /work/exp/ablation \\
        --json spokenstyle/shipped/benchmarks/translator-ablation-cpu.json

``train`` writes ``OUT/VARIANT_sSEED/`` (the generators, ``save_pretrained``, with the validation
scores and the command in the manifest; a killed run resumes from ``OUT/VARIANT_sSEED/run``).
``collect`` reads every run folder, scores the shipped ``cyclegan_flat_comic`` translators on the
same validation scenes for reference, applies the rule and writes the JSON that chapter 11 reads
in its full profile (through :func:`spokenstyle.runtime.data_dir`).

Cost: the shipped recipe takes about 0.35 to 0.40 s a step on one thread (12,000 steps, 80
CPU-minutes); measured side by side on one loaded machine, the variants cost 0.7 (identity 0),
1.0 (identity lambda, small objects), about 1.2 (skips), 1.3 (PatchNCE instead) and 1.6 (PatchNCE
beside) times as much. At the default 6,000 steps the 14 runs take about 10 CPU-hours.
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

from spokenstyle import checkpoints, runtime
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
    """One ``train`` command per variant and seed."""
    me = "benchmarks/translator_ablation.py"
    return [f"OMP_NUM_THREADS=1 python {me} train --variant {v} --seed {s} --steps {steps} --out {shlex.quote(str(out))}"
            for v in rcg.ABLATION_VARIANTS for s in SEEDS]


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


def collect(args: argparse.Namespace) -> None:
    runs = []
    for path in sorted(Path(args.runs).glob("*_s*")):
        if not (path / checkpoints.MANIFEST).is_file():
            print(f"skipped {path}: no checkpoint (still training?)")
            continue
        manifest = checkpoints.read_manifest(path)
        (weights_name, info), = manifest["files"].items()
        m = manifest["metrics"]
        runs.append({"variant": m["variant"], "seed": m["seed"], "folder": path.name, "steps": m["steps"],
                     "fields": manifest["extra"]["fields"], "command": manifest.get("command"),
                     "train_seconds": m["train_seconds"], "torch_threads": m["torch_threads"],
                     "sha256": info["sha256"],
                     "validation": {k: v for k, v in m.items() if k[:3] in ("AB_", "BA_")}})
    judge = SceneJudge.from_pretrained("judge", device="cpu")
    shipped = validation_scores(CycleGAN.from_pretrained(NAME), judge=judge,
                                extractor=feature_extractor(weights="features"), n=args.n)
    choice = rcg.choose_ablation_variant(runs)
    result = {"what": "chapter 11: ablation of the flat <-> comic translator on validation scenes",
              "pair": list(rcg.PAIRS[NAME]), "variants": rcg.ABLATION_VARIANTS, "seeds": list(SEEDS),
              "validation_scenes": args.n, "validation_start": seed_range("validation").start,
              "rule": rcg.ABLATION_RULE, "chosen": choice["chosen"], "margin": choice["margin"],
              "table": choice["table"], "runs": runs,
              "shipped_checkpoint": {"name": NAME, "steps": 12000, "validation": shipped},
              "device": "cpu", "omp_num_threads": os.environ.get("OMP_NUM_THREADS"), "torch": torch.__version__}
    print(json.dumps({k: result[k] for k in ("chosen", "margin", "table")}, indent=1))
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
        print("wrote", args.json)


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
    p = sub.add_parser("collect", help="score the shipped translators, apply the rule, write the JSON")
    p.add_argument("--runs", required=True)
    p.add_argument("--n", type=int, default=N_VALIDATION)
    p.add_argument("--json", default=None)
    args = parser.parse_args()
    if args.what == "commands":
        print("\n".join(commands(Path(args.out), args.steps)))
    elif args.what == "train":
        train(args)
    else:
        collect(args)


if __name__ == "__main__":
    main()
