"""Does the truncation trick make the shipped conditional DCGAN's objects recognisable? (issue 36)

BigGAN (Brock et al. 2019, §3.1) samples z from a normal truncated to |z_i| <= ψ at test time:
samples move towards the typical, fidelity rises and variety falls. Our DCGAN's confident share
(the objects the feature extractor is sure of) is its weakest score, so truncation is the cheap
thing to try before any retraining. This script scores the shipped ``dcgan_conditional`` at
several ψ on the validation scenes only (:func:`spokenstyle.recipes.dcgan.validation_scores`,
never the test sets), in two ways of running G's BatchNorms:

    running   eval mode, the statistics gathered in training: how ``generate`` always samples
    batch     train mode, each batch of ``--batch`` samples normalised by its own statistics
              (every class equally often, nothing updated in the shipped weights): whether a
              change comes from the truncated z itself or from its mismatch with the running
              statistics

Run (about four minutes on one thread)::

    OMP_NUM_THREADS=1 python benchmarks/dcgan_truncation.py \\
        --json spokenstyle/shipped/benchmarks/dcgan-truncation-cpu.json
"""

from __future__ import annotations

import argparse
import copy
import json
import math
from pathlib import Path

import torch

from spokenstyle import checkpoints
from spokenstyle.data import real_renders
from spokenstyle.evaluation import evaluate_images
from spokenstyle.models import dcgan as dc
from spokenstyle.models.features import feature_extractor
from spokenstyle.recipes.dcgan import validation_scores

PSIS = (None, 2.0, 1.5, 1.0, 0.75, 0.5)


def batch_stats_scores(G: dc.Generator, extractor, *, n: int, seed: int, truncation: float | None,
                       batch: int) -> dict[str, float]:
    """:func:`validation_scores`' scores with G's BatchNorms normalising each batch by its own
    statistics (train mode, on a copy, so the running statistics of ``G`` stay as they are)."""
    G = copy.deepcopy(G).train()
    z = G.sample_latent(n, generator=torch.Generator().manual_seed(seed + 1), truncation=truncation)
    y = torch.arange(n) % G.config.n_classes if G.config.conditional else None
    with torch.no_grad():
        if y is None:
            fake = torch.cat([dc.to_unit_range(G(zc)) for zc in z.split(batch)])
        else:
            fake = torch.cat([dc.to_unit_range(G(zc, yc)) for zc, yc in zip(z.split(batch), y.split(batch))])
    size = G.config.resolution
    real = (real_renders(n, split="validation", size=size)[0],
            [real_renders(n, split="validation", size=size, offset=n)[0]])
    report = evaluate_images(fake, extractor=extractor, real=real, label="validation")
    return {f"val_{k}": v for k, v in report.as_dict().items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--weights", default="dcgan_conditional", help="a shipped name or a checkpoint folder")
    parser.add_argument("--psi", type=float, nargs="+", default=None,
                        help="truncations to score besides none (default: 2.0 1.5 1.0 0.75 0.5)")
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--batch", type=int, default=500, help="batch size of the batch-statistics rows")
    parser.add_argument("--json", type=Path, required=True)
    args = parser.parse_args(argv)
    psis = PSIS if args.psi is None else (None, *args.psi)
    bad = [p for p in psis if p is not None and not (math.isfinite(p) and p > 0)]
    if bad:
        parser.error(f"--psi takes positive finite numbers, got {bad}")
    torch.set_num_threads(1)
    extractor = feature_extractor(weights="features")
    G = dc.dcgan_generator(weights=args.weights).eval()
    rows = []
    for psi in psis:
        for bn in ("running", "batch"):
            if bn == "running":
                scores = validation_scores(G, extractor, n=args.n, size=G.config.resolution, seed=args.seed,
                                           truncation=psi)
            else:
                scores = batch_stats_scores(G, extractor, n=args.n, seed=args.seed, truncation=psi,
                                            batch=args.batch)
            rows.append({"truncation": psi, "batchnorm": bn, **scores})
            print(f"psi {str(psi):5s} {bn:8s} val_fd {scores['val_fd']:7.2f}  val_recall {scores['val_recall']:.3f}  "
                  f"val_confident {scores['val_confident']:.3f}", flush=True)
    shipped = checkpoints.shipped()
    command = shipped[args.weights]["command"] if args.weights in shipped else args.weights
    report = {"weights": args.weights, "made_by": command, "n": args.n, "seed": args.seed, "batch": args.batch,
              "torch_threads": torch.get_num_threads(), "rows": rows}
    args.json.write_text(json.dumps(report, indent=2, sort_keys=True) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
