"""Which differentiable augmentations keep our styles and objects readable (a check before training).

DiffAugment (Zhao et al. 2020) shows D only transformed pictures, real and fake alike. That helps
only if a transformed picture still shows what D must judge: if colour jitter turns a `neon`
render into something a reader would call `flat`, D can no longer hold G to the styles, and G
learns blurred styles. So before any augmentation becomes an option of the DCGAN recipe, each
policy of :mod:`spokenstyle.augment` is applied to held-out real renders (the ``validation``
seed range) and read by the shipped classifiers, side by side in one run:

* at 32 px (the DCGAN's resolution), the metric feature extractor ``features``: style accuracy
  and the share of pictures it is confident about (the ``confident`` metric of chapter 4);
* at 64 px, the scene judge ``judge``: style accuracy and the share of objects whose colour slot
  it still reads.

Run (about a minute on one CPU thread)::

    OMP_NUM_THREADS=1 python benchmarks/augment_styles.py --json spokenstyle/shipped/benchmarks/augment-styles-cpu.json
"""

from __future__ import annotations

import argparse
import json
import os

import torch

from spokenstyle import runtime
from spokenstyle.augment import augment
from spokenstyle.data import real_renders
from spokenstyle.models.features import FeatureNet, confidence
from spokenstyle.models.judge import SceneJudge

POLICIES = ("", "translation", "cutout", "color", "translation,color", "translation,cutout")


def augmented(x: torch.Tensor, policy: str, seed: int) -> torch.Tensor:
    """``x`` in [0, 1] through ``policy`` (which works in tanh's [-1, 1], as D sees pictures)."""
    if not policy:
        return x
    torch.manual_seed(seed)
    return ((augment(x * 2 - 1, policy) + 1) / 2).clamp(0, 1)


@torch.no_grad()
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=1200, help="validation renders per resolution")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", help="write the results here")
    args = parser.parse_args()
    if args.n < 1:
        parser.error("--n must be >= 1")
    features, judge = FeatureNet.from_pretrained("features"), SceneJudge.from_pretrained("judge")
    results: dict[str, dict[str, float]] = {p or "none": {} for p in POLICIES}
    x32, _, styles32 = real_renders(args.n, split="validation", size=32)
    x64, scenes64, styles64 = real_renders(args.n, split="validation", size=64)
    slots = scenes64.colour_slots()
    present = slots > 0
    for policy in POLICIES:
        row = results[policy or "none"]
        out = features(augmented(x32, policy, args.seed))
        row["features_style_acc"] = (out.style_logits.argmax(-1) == styles32).float().mean().item()
        row["features_confident"] = (confidence(out) >= 0.9).float().mean().item()
        style_logits, slot_logits = judge(augmented(x64, policy, args.seed))
        row["judge_style_acc"] = (style_logits.argmax(-1) == styles64).float().mean().item()
        row["judge_objects_read"] = ((slot_logits.argmax(-1) == slots) & present).sum().item() / present.sum().item()
    print(f"{'policy':20s}{'32 px style':>12s}{'confident':>11s}{'64 px style':>12s}{'objects read':>14s}")
    for name, row in results.items():
        print(f"{name:20s}{row['features_style_acc']:12.3f}{row['features_confident']:11.3f}"
              f"{row['judge_style_acc']:12.3f}{row['judge_objects_read']:14.3f}")
    if args.json:
        out = {"device": runtime.device_name(torch.device("cpu")), "torch": torch.__version__,
               "threads": torch.get_num_threads(), "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
               "n": args.n, "seed": args.seed, "split": "validation", "results": results}
        with open(args.json, "w") as f:
            json.dump(out, f, indent=1)
        print("wrote", args.json)


if __name__ == "__main__":
    main()
