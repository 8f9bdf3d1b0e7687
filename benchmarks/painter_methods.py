"""Painter-style transfer, every method in every manner, scored once and recorded (chapter 9, section 2).

For each painterly manner (oil, watercolour, pencil, pointillist, strokes, woodblock) the same
held-out photo patches are painted by the manner's own filter (the target), left as they are (the
floor), by the manner's shipped CycleGAN-lite translator where there is one, and by Gram and
AdaIN transfer from a painted patch of another crop; the painter judge reads the style, the edge
SSIM against the source measures the structure kept, and the wall time per image is taken on the
machine that runs it (:func:`spokenstyle.applications.painters.compare_methods`). Sizes come
from the ``applications`` budget row of the profile (patches, steps, lr, width). Run::

    OMP_NUM_THREADS=1 python benchmarks/painter_methods.py --profile full \\
        --json spokenstyle/shipped/benchmarks/painter-methods-cpu.json

Chapter 9 reads the record in the ``full`` profile (its ``fast`` profile computes a small
version itself); the record ships with the package (:func:`spokenstyle.runtime.data_dir`).
"""

from __future__ import annotations

import argparse
import datetime
import json
import time
from pathlib import Path

import torch

from spokenstyle import checkpoints, runtime, stylization
from spokenstyle.applications.painters import compare_methods, translator_name
from spokenstyle.data.photos import ALL_FILTERS, PhotoPatches
from spokenstyle.models.painter_judge import painter_judge


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--profile", default="full", choices=("fast", "full"))
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--json", type=Path, required=True, help="where to write the record")
    args = parser.parse_args(argv)
    rt = runtime.setup(seed=0, profile=args.profile, device=args.device)
    b = rt.budget("applications")
    judge = painter_judge(device=rt.device)
    photos = PhotoPatches("test", 64, length=b.patches).batch(range(b.patches))["image"]
    features = stylization.RandomFeatures(width=b.width).to(rt.device)
    start = time.perf_counter()
    rows = compare_methods(judge, photos, steps=b.steps, lr=b.lr, features=features)
    seconds = time.perf_counter() - start
    (weights, info), = checkpoints.read_manifest(checkpoints.shipped_path("painter_judge"))["files"].items()
    shipped = checkpoints.shipped()
    report = {
        "what": "chapter 9: every painter-style method in every manner on the same held-out photo patches; style "
                "= the painter judge's reading, content = SSIM of edge maps against the source, time = wall "
                "seconds per image on this machine",
        "command": checkpoints.command_line(),
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "profile": rt.profile, "device": str(rt.device), "torch_threads": torch.get_num_threads(),
        "budget": b.to_dict(), "seconds": round(seconds, 1),
        "painter_judge": f"painter_judge (shipped), {weights} sha256 {info['sha256']}",
        "translators": {m: translator_name(m) if translator_name(m) in shipped else None for m in ALL_FILTERS},
        "rows": [r.as_dict() for r in rows],
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=1, allow_nan=True) + "\n")
    for r in rows:
        print(f"{r.manner:12s} {r.method:9s} style {r.style_accuracy:.2f} ({r.style_probability:.2f}) "
              f"edges {r.edge_ssim:.3f} s/img {r.seconds_per_image}")
    print(f"wrote {args.json} in {seconds:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
