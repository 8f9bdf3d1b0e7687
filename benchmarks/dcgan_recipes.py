"""Which change to the DCGAN recipe buys how much FD: three recipes trained side by side.

Chapter 4 ships a DCGAN trained by ``spokenstyle train dcgan --profile full``. Its recipe moved
from the paper's discriminator (BatchNorm, non-saturating loss, one-sided label smoothing) to a
spectrally normalised one with the hinge loss. This script measures each step of that move on
equal terms: the same 32-channel pair, data (all six styles), seed, batch size, learning rate
with linear decay to 0, weight average (decay 0.999) and number of steps, one recipe after the
other in one run. Each is scored like the shipped checkpoint: 2,000 samples of the weight
average against 2,000 held-out real renders in the shipped feature extractor's space, beside
the real-vs-real baseline (mean over five real sets).

Recipes:
    paper       D with BatchNorm, non-saturating loss with one-sided label smoothing, Adam (0.5, 0.999)
    sn          as ``paper``, but D spectrally normalised (and without BatchNorm)
    sn_hinge    D spectrally normalised, hinge loss, Adam (0.0, 0.9): the shipped recipe

Run (about 8 CPU-minutes per recipe on one thread at the default 6,000 steps)::

    OMP_NUM_THREADS=1 python benchmarks/dcgan_recipes.py --json spokenstyle/shipped/benchmarks/dcgan-recipes-cpu.json

The result ships in ``spokenstyle/shipped/benchmarks/`` (installed with the package, so chapter 4
can read it in Colab too, through :func:`spokenstyle.runtime.data_dir`).
"""

from __future__ import annotations

import argparse
import json
import os
import time

import torch

from spokenstyle import runtime
from spokenstyle.data import pool_batches, real_renders
from spokenstyle.evaluation import evaluate_images
from spokenstyle.models import dcgan as dc
from spokenstyle.models.features import FeatureNet
from spokenstyle.recipes.dcgan import train_dcgan

RECIPES = {
    "paper": dict(spectral_norm=False, loss="non_saturating_smoothed", betas=(0.5, 0.999)),
    "sn": dict(spectral_norm=True, loss="non_saturating_smoothed", betas=(0.5, 0.999)),
    "sn_hinge": dict(spectral_norm=True, loss="hinge", betas=(0.0, 0.9)),
}


def train_and_score(name: str, images: torch.Tensor, extractor, real, *, steps: int, batch_size: int,
                    lr: float, width: int, seed: int, device: torch.device) -> dict:
    recipe = RECIPES[name]
    runtime.seed_everything(seed)
    model = dc.dcgan(config=dc.DCGANConfig(resolution=32, g_width=width, d_width=width,
                                           spectral_norm=recipe["spectral_norm"]))
    start = time.perf_counter()
    _, G_avg = train_dcgan(model, pool_batches(images, batch_size, seed=seed), steps=steps, lr=lr,
                           betas=recipe["betas"], loss=recipe["loss"], ema_decay=0.999, lr_decay=True,
                           device=device, log_every=50, desc=name)
    seconds = time.perf_counter() - start
    fake = G_avg.generate(real[0].shape[0], generator=torch.Generator().manual_seed(seed))
    report = evaluate_images(fake, extractor=extractor, real=real, label=name)
    print(report, flush=True)
    return {"recipe": {k: list(v) if isinstance(v, tuple) else v for k, v in recipe.items()},
            "seconds": round(seconds, 1), "metrics": report.as_dict()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=6000)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=2e-4)
    parser.add_argument("--width", type=int, default=32)
    parser.add_argument("--pool", type=int, default=24000, help="training renders (all styles)")
    parser.add_argument("--eval", type=int, default=2000, help="samples and real renders per set")
    parser.add_argument("--recipes", nargs="+", default=list(RECIPES), choices=list(RECIPES))
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", help="write the results here")
    args = parser.parse_args()
    if args.steps < 1 or args.eval < 2:
        parser.error("--steps must be >= 1 and --eval >= 2")

    device = torch.device(args.device)
    images, _, _ = real_renders(args.pool, split="train", size=32)
    extractor = FeatureNet.from_pretrained("features", device=device)
    real = (real_renders(args.eval, split="real_a", size=32)[0],
            [real_renders(args.eval, split="real_b", size=32, offset=k * args.eval)[0] for k in range(5)])
    results = {name: train_and_score(name, images, extractor, real, steps=args.steps, batch_size=args.batch_size,
                                     lr=args.lr, width=args.width, seed=args.seed, device=device)
               for name in args.recipes}
    base = next(iter(results.values()))["metrics"]["fd_real_vs_real"]
    print(f"\n{'recipe':10s}{'FD':>8s}{'FD / real-vs-real':>19s}{'recall':>8s}{'coverage':>10s}{'confident':>11s}"
          f"{'s':>7s}")
    for name, r in results.items():
        m = r["metrics"]
        print(f"{name:10s}{m['fd']:8.1f}{m['fd'] / base:19.1f}{m['recall']:8.3f}{m['coverage']:10.3f}"
              f"{m['confident']:11.3f}{r['seconds']:7.0f}")
    if "paper" in results:
        for name in results:
            if name != "paper":
                print(f"FD ratio {name} / paper: {results[name]['metrics']['fd'] / results['paper']['metrics']['fd']:.2f}")
    if args.json:
        out = {"device": runtime.device_name(device),
               "torch": torch.__version__, "threads": torch.get_num_threads(),
               "omp_num_threads": os.environ.get("OMP_NUM_THREADS"), "steps": args.steps,
               "batch_size": args.batch_size, "lr": args.lr, "width": args.width, "pool": args.pool,
               "eval": args.eval, "seed": args.seed, "fd_real_vs_real": base, "results": results}
        with open(args.json, "w") as f:
            json.dump(out, f, indent=1)
        print("wrote", args.json)


if __name__ == "__main__":
    main()
