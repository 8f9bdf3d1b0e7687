"""Re-scores the shipped CycleGAN-lite style pairs' FD with the shipped ``features`` checkpoint,
without retraining, and writes the new FD numbers into their manifests.

    python tools/rescore_cyclegan.py [cyclegan_flat_comic cyclegan_flat_pixel] [--check-only]

It runs the trainer's own evaluation (:func:`spokenstyle.evaluation.score_translator`: the same
held-out scenes, judge, ``n`` and seed as ``spokenstyle train``), on one CPU thread, and:

* checks that every metric the features network does not enter (style, content and scene
  accuracy, L1/SSIM to the truth, cycle L1, the judge on the truth) reproduces the manifest's;
  it stops without writing anything if one does not;
* replaces ``{AB,BA}_fd`` and ``{AB,BA}_fd_real_vs_real`` (one real set, as the trainer computes it),
  and adds ``{AB,BA}_fd_real_vs_real_mean`` / ``_sd`` / ``_sets`` where the trainer did not: the
  baseline averaged over five disjoint real sets, as :func:`spokenstyle.evaluation.evaluate_images`
  reports it;
* if the FDs changed (the translators were trained when ``features`` was another checkpoint),
  renames ``last_{AB,BA}_fd`` (the last step's generators, which are not shipped and cannot be
  re-scored) to ``last_{AB,BA}_fd_old_features``; if they reproduced, leaves them;
* records what it did, with the features checkpoint's sha256 and the date, in ``extra.fd_rescored``.

Everything else in the manifest (weights, sha256, config, history, created) is left as it was.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import os
import sys

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402

from spokenstyle import checkpoints  # noqa: E402
from spokenstyle.evaluation import fd_real_baseline, score_translator  # noqa: E402
from spokenstyle.models.cyclegan import CycleGAN  # noqa: E402
from spokenstyle.models.features import FeatureNet  # noqa: E402
from spokenstyle.models.judge import SceneJudge  # noqa: E402
from spokenstyle.recipes.cyclegan import PAIRS  # noqa: E402

FD_KEYS = ("fd", "fd_real_vs_real")
BASELINE_SETS = 5
TOLERANCE = 1e-6  # the non-FD metrics are deterministic on the CPU; allow float noise only


def rescore(name: str, *, write: bool) -> dict:
    directory = checkpoints.shipped_path(name)
    manifest = checkpoints.read_manifest(directory)
    old = manifest["metrics"]
    style_a, style_b = manifest["extra"]["pair"]
    n, size, seed = old["eval_scenes"], manifest["config"]["resolution"], 0
    model = CycleGAN.from_pretrained(directory)
    judge = SceneJudge.from_pretrained("judge")
    extractor = FeatureNet.from_pretrained("features")
    new = score_translator(model, style_a, style_b, judge=judge, n=n, size=size, seed=seed, extractor=extractor)
    mismatched = {k: (old.get(k), v) for k, v in new.items()
                  if not k.endswith(FD_KEYS) and not (k in old and math.isclose(old[k], v, rel_tol=0, abs_tol=TOLERANCE))}
    if mismatched:
        raise SystemExit(f"{name}: these metrics did not reproduce (manifest, now): {mismatched}")
    changes = {}
    for d, target in (("AB", style_b), ("BA", style_a)):
        for key in FD_KEYS:
            changes[f"{d}_{key}"] = (old[f"{d}_{key}"], new[f"{d}_{key}"])
        mean, sd = fd_real_baseline(target, n, size, extractor=extractor, sets=BASELINE_SETS)
        changes[f"{d}_fd_real_vs_real_mean"] = (old.get(f"{d}_fd_real_vs_real_mean"), mean)
        changes[f"{d}_fd_real_vs_real_sd"] = (old.get(f"{d}_fd_real_vs_real_sd"), sd)
        changes[f"{d}_fd_real_vs_real_sets"] = (old.get(f"{d}_fd_real_vs_real_sets"), BASELINE_SETS)
    for k, (was, now) in changes.items():
        print(f"{name} {k:28s} {'' if was is None else f'{was:10.4f}'} -> {now:.4f}")
    fd_reproduced = all(was is not None and math.isclose(was, now, rel_tol=0, abs_tol=TOLERANCE)
                        for k, (was, now) in changes.items() if k.endswith(FD_KEYS))
    # a five-set baseline the trainer recorded (with the same features network) must reproduce too
    recorded = {k: (was, now) for k, (was, now) in changes.items() if was is not None and not k.endswith(FD_KEYS)}
    if fd_reproduced and any(not math.isclose(was, now, rel_tol=0, abs_tol=TOLERANCE) for was, now in recorded.values()):
        raise SystemExit(f"{name}: the recorded real-vs-real baseline did not reproduce (manifest, now): {recorded}")
    print(f"{name}: the FDs {'reproduced' if fd_reproduced else 'changed'} with the shipped features network")
    if write:
        metrics = dict(old)
        metrics.update({k: now for k, (_, now) in changes.items()})
        for d in ("AB", "BA"):
            if f"last_{d}_fd" in metrics and not fd_reproduced:
                metrics[f"last_{d}_fd_old_features"] = metrics.pop(f"last_{d}_fd")
        features = checkpoints.read_manifest(checkpoints.shipped_path("features"))
        (weights_name, info), = features["files"].items()
        manifest["metrics"] = metrics
        manifest["extra"]["fd_rescored"] = {
            "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            "command": "python tools/rescore_cyclegan.py " + name,
            "features": f"the shipped 'features' checkpoint, created {features['created']}, "
                        f"{weights_name} sha256 {info['sha256']}",
            "what": "{AB,BA}_fd and _fd_real_vs_real re-scored with that features network, without retraining: "
                    "same scenes, judge, n and seed as at training (evaluation.score_translator); every other "
                    "metric of score_translator was recomputed and reproduced exactly. _fd_real_vs_real_mean/_sd: "
                    f"the baseline over {BASELINE_SETS} disjoint real sets. "
                    + ("The FDs reproduced too: training used this features network, and last_*_fd are kept"
                       if fd_reproduced else
                       "last_*_fd_old_features: the last-step generators' FD in the old features space (those "
                       "generators are not shipped, so it could not be re-scored)"),
            # the values from training; a second re-scoring keeps them
            "before": manifest["extra"].get("fd_rescored", {}).get("before")
                      or {k: was for k, (was, _) in changes.items() if was is not None},
        }
        text = json.dumps(manifest, indent=2, sort_keys=True, allow_nan=True)
        checkpoints.atomic_write_bytes(directory / checkpoints.MANIFEST, (text + "\n").encode())
        checkpoints.load_checkpoint(directory)  # the weights still match the manifest's sha256
    return changes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("names", nargs="*", default=list(PAIRS))
    parser.add_argument("--check-only", action="store_true", help="score and compare, write nothing")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    for name in args.names:
        rescore(name, write=not args.check_only)
    return 0


if __name__ == "__main__":
    sys.exit(main())
