"""How much of the fusion recipe's score is the run: every run of it scored on the same scenes.

Chapter 7 ships a fusion generator F trained by ``spokenstyle train fusion --profile full``. On a
CPU, runs of that recipe with different seeds end several points apart in attribute match, so
the book trains several and ships one, chosen by a rule fixed before the runs were scored:

    the highest *validation* attribute match among the runs judged in the target style at least
    90 % of the time on validation (the book's style target); if there is none, the highest
    validation attribute match.

Validation scenes are unseen train-split scenes (the seed range ``validation`` of
:mod:`spokenstyle.data.splits`); the test scenes the book reports on play no part in the choice.
This script scores each run folder (a ``spokenstyle train fusion --out DIR`` output) on both, with
the package's current :func:`spokenstyle.evaluation.evaluate_fusion` (spoken sentences), applies
the rule to the folders given as ``--candidates`` (runs of the current recipe) and records the
others given as ``--also`` (earlier recipes, kept for comparison, never chosen), each with the
sha256 of its weights, so that chapter 7 can check the shipped weights are the chosen run's. Run
(about a minute per folder on one thread)::

    OMP_NUM_THREADS=1 python benchmarks/fusion_runs.py --candidates RUN0 RUN1 ... --also OLD0 ... \\
        --json spokenstyle/shipped/benchmarks/fusion-runs-cpu.json

The result ships in ``spokenstyle/shipped/benchmarks/`` (installed with the package, so chapter 7
can read it in Colab too, through :func:`spokenstyle.runtime.data_dir`).
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import torch

from spokenstyle import checkpoints, runtime
from spokenstyle.data.splits import seed_range
from spokenstyle.evaluation import evaluate_fusion
from spokenstyle.models.features import FeatureNet
from spokenstyle.models.fusion import FusionGAN
from spokenstyle.models.judge import SceneJudge

STYLE_TARGET = 0.90  # the book's target-style accuracy for F (``../shared/BOOK.md`` §8)
KEYS = ("attr_match", "scene_match", "style_acc")


def choose(runs: list[dict]) -> dict:
    """The rule of the module docstring, on the runs' ``validation`` scores."""
    if not runs:
        raise ValueError("no candidate runs to choose from")
    in_style = [r for r in runs if r["validation"]["style_acc"] >= STYLE_TARGET]
    return max(in_style or runs, key=lambda r: r["validation"]["attr_match"])


def score_run(directory: Path, *, n: int, judge, features) -> dict:
    """One run folder: its manifest's provenance and its validation and test scores."""
    manifest = checkpoints.read_manifest(directory)
    (weights_name, _), = manifest["files"].items()  # model.safetensors, or model-<sha16>.safetensors in newer saves
    F = FusionGAN.from_pretrained(directory, device="cpu").F
    out = {"folder": directory.name, "command": manifest.get("command"), "created": manifest.get("created"),
           "style_norm": bool(manifest["config"].get("style_norm", False)),
           "train_seconds": manifest.get("metrics", {}).get("train_seconds"),
           "sha256": checkpoints.sha256_file(directory / weights_name)}
    for split in ("validation", "test"):
        s = evaluate_fusion(F, judge, features, n=n, register="spoken", split=split)
        out[split] = {k: s[k] for k in KEYS}
        print(f"{directory.name:24s} {split:10s} " + "  ".join(f"{k} {s[k]:.3f}" for k in KEYS), flush=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--candidates", nargs="+", required=True, help="run folders of the current recipe")
    parser.add_argument("--also", nargs="*", default=[], help="run folders of earlier recipes (recorded, not chosen)")
    parser.add_argument("--n", type=int, default=480, help="scenes per split (the recipe's own eval size)")
    parser.add_argument("--json", default=None, help="write the result here")
    args = parser.parse_args()
    judge = SceneJudge.from_pretrained("judge", device="cpu")
    features = FeatureNet.from_pretrained("features", device="cpu")
    candidates = [score_run(Path(d), n=args.n, judge=judge, features=features) for d in args.candidates]
    others = [score_run(Path(d), n=args.n, judge=judge, features=features) for d in args.also]
    chosen = choose(candidates)
    test = [r["test"] for r in candidates]
    summary = {k: {"mean": sum(t[k] for t in test) / len(test), "min": min(t[k] for t in test),
                   "max": max(t[k] for t in test)} for k in KEYS}
    print(f"chosen by validation: {chosen['folder']} (test: attribute match {chosen['test']['attr_match']:.3f}, "
          f"style {chosen['test']['style_acc']:.3f}); candidates on test: " +
          ", ".join(f"{k} {v['mean']:.3f} [{v['min']:.3f}, {v['max']:.3f}]" for k, v in summary.items()))
    if args.json:
        result = {"rule": "highest validation attr_match among runs with validation style_acc >= "
                          f"{STYLE_TARGET} (else the highest validation attr_match)",
                  "n": args.n, "register": "spoken", "validation_start": seed_range("validation").start,
                  "device": "cpu", "threads": torch.get_num_threads(), "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
                  "torch": torch.__version__, "chosen": chosen["folder"], "test_summary": summary,
                  "candidates": candidates, "others": others}
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
        print("wrote", args.json)


if __name__ == "__main__":
    runtime.seed_everything(0)
    main()
