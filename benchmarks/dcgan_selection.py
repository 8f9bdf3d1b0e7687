"""Chooses the shipped conditional DCGAN by the rule fixed before its runs were scored (issue 36).

The rule (recorded verbatim in the report): among the candidate runs, the lowest validation FD
(``val_fd``: 2,000 samples with latents seeded ``seed + 1`` against real renders of the
``validation`` seed range, :func:`spokenstyle.recipes.dcgan.validation_scores`) among runs whose
validation confident share ``val_confident`` is at least 0.80; if no run reaches 0.80, the lowest
``val_fd`` overall. Test scores (``real_a`` / ``real_b``, the manifests' headline metrics) are
copied into the report for the table only, never read to choose.

The recorded runs' manifests carry their own validation scores (the recipe computes them); the
unconditional DCGAN shipped before this issue does not, so they are computed here with the same
function, n and seed. Candidates come from run folders (``--runs LABEL=DIR``) or from the record of
runs (``--recorded``: every run of ``dcgan-runs-cpu.json``, whose entries are the runs' manifests, so
a run whose scratch folder is gone still counts). Run (about a minute on one thread)::

    OMP_NUM_THREADS=1 python benchmarks/dcgan_selection.py \\
        --recorded spokenstyle/shipped/benchmarks/dcgan-runs-cpu.json \\
        --json spokenstyle/shipped/benchmarks/dcgan-selection-cpu.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from spokenstyle import checkpoints
from spokenstyle.models.dcgan import DCGAN
from spokenstyle.models.features import feature_extractor
from spokenstyle.recipes.dcgan import validation_scores

RULE = ("lowest val_fd among runs with val_confident >= 0.80; if none reaches 0.80, lowest val_fd "
        "overall; test scores never read to choose")
CONFIDENT = 0.80
TEST_KEYS = ("fd", "fd_real_vs_real", "kid", "precision", "recall", "confident", "confident_real_vs_real")


def choose(candidates: dict[str, dict[str, float]], confident: float = CONFIDENT) -> str:
    """The label the rule picks from ``{label: validation scores}``."""
    sure = {k: v for k, v in candidates.items() if v["val_confident"] >= confident}
    pool = sure or candidates
    return min(pool, key=lambda k: pool[k]["val_fd"])


def candidate(manifest: dict) -> dict:
    """A run's row: its command, its validation scores (chosen on) and its test scores (reported only)."""
    m = manifest["metrics"]
    missing = [k for k in ("val_fd", "val_confident", *TEST_KEYS) if k not in m]
    if missing:
        raise ValueError(f"the run {manifest.get('command')!r} has no {missing} in its metrics: "
                         "it was not trained by a recipe that scores validation scenes")
    return {"command": manifest["command"], "val": {k: v for k, v in m.items() if k.startswith("val_")},
            "test": {k: m[k] for k in TEST_KEYS}}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", nargs="+", default=[], metavar="LABEL=DIR")
    parser.add_argument("--recorded", type=Path, default=None, help="a record_runs JSON: each of its runs is a candidate")
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, required=True)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    extractor = feature_extractor(weights="features")
    rows: dict[str, dict] = {}
    shipped = checkpoints.shipped()["dcgan"]
    G = DCGAN.from_pretrained("dcgan").G.eval()
    val = validation_scores(G, extractor, n=args.n, size=G.config.resolution, seed=args.seed)
    rows["unconditional_shipped"] = {"command": shipped["command"], "val": val,
                                     "test": {k: shipped["metrics"][k] for k in TEST_KEYS}}
    manifests = json.loads(args.recorded.read_text())["runs"] if args.recorded is not None else {}
    manifests.update({label: checkpoints.read_manifest(directory)  # a run folder wins over a record of the same label
                      for label, _, directory in (item.partition("=") for item in args.runs)})
    if not manifests:
        parser.error("no candidates: give --runs LABEL=DIR ... or --recorded JSON")
    for label, manifest in manifests.items():
        rows[label] = candidate(manifest)
    chosen = choose({k: r["val"] for k, r in rows.items()})
    report = {"rule": RULE, "n": args.n, "seed": args.seed, "chosen": chosen, "runs": rows}
    args.json.write_text(json.dumps(report, indent=2, sort_keys=True) + "\n")
    for k, r in rows.items():
        print(f"{k:24s} val_fd {r['val']['val_fd']:7.2f}  val_confident {r['val']['val_confident']:.3f}"
              + ("  <- chosen" if k == chosen else ""))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
