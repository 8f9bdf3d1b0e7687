"""How the decoding method trades truth for diversity in chapter 6's spoken captions.

Not a timing: the chapter-6 metrics (:func:`spokenstyle.evaluation.evaluate_captions`) of the shipped
captioners' spoken captions of the held-out test scenes, side by side, for each decoding method
in one run. The shipped manifests score beam 8 and sampling at T = 0.7 (budget ``captioner_eval``); a
likelihood search (beam) states the picture's relations more often and varies its wording far
less. Each row also gives the seconds it took on this machine.

Run::

    python benchmarks/captioner_decoding.py [--n 1000] [--models captioner_spoken captioner_paired]
                                            [--json reports/benchmarks/captioner-decoding-cpu.json]
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from spokenstyle import runtime
from spokenstyle.data.corpus import test_set
from spokenstyle.evaluation import evaluate_captions
from spokenstyle.models.captioner import Captioner, caption_images
from spokenstyle.models.critic import TextClassifier

METHODS = {
    "sample T=0.7": {"method": "sample", "temperature": 0.7},
    "greedy": {"method": "greedy"},
    "beam 4": {"method": "beam", "num_beams": 4},
    "beam 8": {"method": "beam", "num_beams": 8},
}
KEYS = ("attribute_accuracy", "spoken_rate", "bleu4", "distinct2", "length")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=1000, help="held-out test scenes (the full profile's n_test)")
    ap.add_argument("--models", nargs="+", default=["captioner_spoken", "captioner_paired"])
    ap.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(METHODS))
    ap.add_argument("--device", default=None)
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    if args.n < 1:
        raise SystemExit(f"--n must be a positive number of test scenes, got {args.n}")
    device = runtime.get_device(args.device)
    test = test_set(args.n)
    reg = TextClassifier.from_pretrained("register_clf", device=device)
    rows: dict[str, dict[str, dict[str, float]]] = {}
    for name in args.models:
        S = Captioner.from_pretrained(name, device=device)
        rows[name] = {}
        for label in args.methods:
            start = time.perf_counter()
            texts, _ = caption_images(S, test.images, "spoken", **METHODS[label])
            seconds = time.perf_counter() - start
            m = evaluate_captions(texts, test, register_clf=reg)
            rows[name][label] = {**{k: round(float(m[k]), 4) for k in KEYS}, "seconds": round(seconds, 1)}
            r = rows[name][label]
            print(f"{name:18s} {label:13s} true {r['attribute_accuracy']:6.1%}  spoken {r['spoken_rate']:6.1%}  "
                  f"BLEU-4 {r['bleu4']:.3f}  distinct-2 {r['distinct2']:.3f}  ({seconds:.0f} s)", flush=True)
    if args.json:
        out = {"device": runtime.device_name(device),
               "threads": torch.get_num_threads(), "n_test": args.n, "methods": {k: METHODS[k] for k in args.methods},
               "results": rows}
        with open(args.json, "w") as f:
            json.dump(out, f, indent=1)


if __name__ == "__main__":
    main()
