"""How long the five-step pipeline takes per (source, target) pair on this machine.

Target (``../shared/BOOK.md`` §8, issue 7): at most 0.5 s per pair on the CPU.

The pipeline is :meth:`SpokenStylePipeline.from_pretrained` (its default captioner,
``captioner_spoken``; the result's ``names`` say which checkpoints ran) when every shipped
checkpoint exists; otherwise the same architectures at random initialisation (``--random``, or
as a fallback, said in the output): the time of a forward pass does not depend on the weights,
except through the sentence length (a trained captioner stops at its <eos>; a random one may
run to ``max_len``, so the random figure is an upper bound). Each figure is the best of
``--repeats`` runs (other processes only ever make a run slower), for a single pair (latency,
what ``spokenstyle run`` and the widgets do) and for a batch (throughput, what chapter 8 does).
Typesetting (:func:`spokenstyle.render.typeset`) is included and also timed alone.

Run::

    OMP_NUM_THREADS=1 python benchmarks/pipeline.py
    python benchmarks/pipeline.py --device cuda --batch 64 --json out.json
"""

from __future__ import annotations

import argparse
import json
import os
import time

import torch

from spokenstyle import checkpoints, render, runtime
from spokenstyle.data.images import scene_picture
from spokenstyle.pipeline import SpokenStylePipeline


def build(device: torch.device, random: bool) -> tuple[SpokenStylePipeline, str]:
    if not random:
        try:
            return SpokenStylePipeline.from_pretrained(device), "shipped checkpoints"
        except (checkpoints.CheckpointError, ImportError) as err:
            reason = str(err).splitlines()[0]
            print(f"[benchmark] shipped checkpoints unavailable ({reason}): timing random-init architectures")
    from spokenstyle.models.captioner import Captioner, captioner_config
    from spokenstyle.models.critic import TextClassifier, classifier_config
    from spokenstyle.models.cyclegan import CycleGAN
    from spokenstyle.models.fusion import FusionGAN, FusionGenerator
    from spokenstyle.models.judge import load_judge

    torch.manual_seed(0)
    shipped = checkpoints.shipped()
    S = (Captioner.from_pretrained("captioner_spoken") if "captioner_spoken" in shipped
         else Captioner(captioner_config()))
    T = TextClassifier.from_pretrained("critic") if "critic" in shipped else TextClassifier(classifier_config("critic"))
    F = FusionGAN.from_pretrained("fusion", device="cpu").F if "fusion" in shipped else FusionGenerator()
    J = load_judge("judge" if "judge" in shipped else "features", device="cpu")
    translators = {tuple(n.split("_")[1:]): CycleGAN.from_pretrained(n) for n in shipped
                   if n.startswith("cyclegan_") and len(n.split("_")) == 3}
    # F is FusionGAN's generator alone, which does not carry the checkpoint's name: say it here
    names = {"fusion": "fusion"} if "fusion" in shipped else None
    pipe = SpokenStylePipeline(S.eval(), F.eval(), J.eval(), T.eval(), translators=translators or None,
                               names=names).to(device)
    missing = [n for n in ("captioner_spoken", "critic", "fusion") if n not in shipped]
    return pipe, f"shipped checkpoints, random init for {missing}" if missing else "shipped checkpoints"


def best(fn, repeats: int, device: torch.device) -> float:
    fn()  # warm-up
    runtime.synchronize(device)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        runtime.synchronize(device)
        times.append(time.perf_counter() - start)
    return min(times)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--random", action="store_true", help="time random-init components even if shipped ones exist")
    parser.add_argument("--json", default=None, help="also write the results to this file")
    args = parser.parse_args(argv)
    device = runtime.get_device(args.device)
    pipe, what = build(device, args.random)
    src = torch.cat([scene_picture(100 + i, 0 if i % 2 else i % 6) for i in range(args.batch)])  # half flat: step 2 runs
    tgt = torch.cat([scene_picture(200 + i, (i + 3) % 6) for i in range(args.batch)])
    one = best(lambda: pipe(src[:1], tgt[:1], seed=0), args.repeats, device)
    batch = best(lambda: pipe(src, tgt, seed=0), max(1, args.repeats // 2), device)
    out = pipe(src, tgt, seed=0)
    typeset = best(lambda: render.typeset(out.fused[0], out.sentences[0], palette_from=tgt[0]), args.repeats, device)
    words = sum(len(s.split()) for s in out.sentences) / len(out.sentences)
    result = {"device": runtime.device_name(device), "components": what, "names": pipe.names,
              "decoding": pipe.decoding,
              "threads": torch.get_num_threads(),
              "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
              "seconds_per_pair_single": round(one, 4), f"seconds_per_pair_batch{args.batch}": round(batch / args.batch, 4),
              "seconds_typeset": round(typeset, 4), "mean_words_per_sentence": round(words, 1), "target_seconds": 0.5,
              "meets_target": one <= 0.5}
    print(json.dumps(result, indent=2))
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(result, handle, indent=2)
    return result


if __name__ == "__main__":
    main()
