"""Which source and target styles transfer well? The pipeline over every ordered pair of styles (chapter 11).

Runs the shipped pipeline (:meth:`spokenstyle.pipeline.SpokenStylePipeline.from_pretrained`) on
every ordered pair of the six ShapeScenes styles, ``--per-cell`` test scenes per pair (the same
scenes in every cell), and on held-out photo patches as sources
(:func:`spokenstyle.evaluation.style_pair_table`, :func:`spokenstyle.evaluation.photo_source_table`),
and records the tables: objects surviving end to end and the judged style per pair, what S's
sentences keep per source style, the judge's ceiling per target style, and the photo sources'
style and sentences. Chapter 11's full profile computes the same tables itself (and checks them
against this record); its fast profile runs a few scenes per pair and reads the record for the
advice it asserts. About 3 CPU-minutes on one thread at the defaults::

    OMP_NUM_THREADS=1 python benchmarks/faq_pairs.py --json spokenstyle/shipped/benchmarks/faq-pairs-cpu.json
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import torch

from spokenstyle import budgets, runtime
from spokenstyle.evaluation import photo_source_table, style_pair_table
from spokenstyle.pipeline import SpokenStylePipeline


def main() -> None:
    full = budgets.lookup("faq", "full")
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-cell", type=int, default=full.pairs_per_cell, help="test scenes per pair of styles")
    parser.add_argument("--photos", type=int, default=full.photos, help="photo sources per target style")
    parser.add_argument("--json", default=None, help="write the result here")
    args = parser.parse_args()
    runtime.seed_everything(0)
    pipe = SpokenStylePipeline.from_pretrained("cpu")
    t0 = time.perf_counter()
    table = style_pair_table(pipe, per_cell=args.per_cell, seed=0)
    photos = photo_source_table(pipe, per_style=args.photos, seed=0)
    seconds = time.perf_counter() - t0
    result = {"what": "chapter 11, section 1: the shipped pipeline on every ordered pair of styles (rows: source, "
                      "columns: target) and on photo sources",
              **table.as_dict(),
              "photos": {"style": photos["style"].tolist(), "names_objects": photos["names_objects"],
                         "readable": photos["readable"], "said_to_drawn": photos["said_to_drawn"],
                         "per_style": args.photos},
              "components": pipe.names, "seconds": round(seconds, 1), "device": "cpu",
              "threads": torch.get_num_threads(), "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
              "torch": torch.__version__}
    torch.set_printoptions(precision=2, sci_mode=False)
    print("survival\n", table.survival, "\nstyle\n", table.style, "\nsentence", table.sentence, "\nceiling", table.ceiling)
    print({k: v for k, v in result["photos"].items()}, f"{seconds:.0f} s")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
        print("wrote", args.json)


if __name__ == "__main__":
    main()
