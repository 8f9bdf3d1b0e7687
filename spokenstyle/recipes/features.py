"""``spokenstyle train features``: the metric feature extractor of chapter 4, trained on real renders.

The network is :class:`spokenstyle.models.features.FeatureNet`; this file is how it learns:
the sum of its heads' cross-entropies (:func:`features_loss`) on a pool of real training
renders, AdamW with a one-cycle schedule, scored on held-out renders
(:func:`spokenstyle.evaluation.feature_accuracy`) and saved with that score.
"""

from __future__ import annotations

import shutil
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from ..data import pool_batches, real_renders, split_slots
from ..evaluation import feature_accuracy
from ..models.features import FeatureNetOutput, feature_extractor, feature_targets
from ..runtime import Runtime
from ..train import TrainConfig, Trainer

__all__ = ["features_loss", "train"]


def features_loss(out: FeatureNetOutput, targets: torch.Tensor) -> torch.Tensor:
    """Sum of the heads' cross-entropies; ``targets`` from
    :func:`~spokenstyle.models.features.feature_targets`. Shape and size are scored only for the
    colours present in the picture."""
    present, shape, size = split_slots(targets[:, 2:])
    return (F.cross_entropy(out.style_logits, targets[:, 0])
            + F.cross_entropy(out.count_logits, targets[:, 1])
            + F.binary_cross_entropy_with_logits(out.colour_logits, present.float())
            + F.cross_entropy(out.shape_logits.flatten(0, 1), shape.flatten(), ignore_index=-1)
            + F.cross_entropy(out.size_logits.flatten(0, 1), size.flatten(), ignore_index=-1))


def train(out_dir: str | Path, *, runtime: Runtime) -> dict[str, Any]:
    """``spokenstyle train features``: trains the metric feature extractor on real renders,
    evaluates it on held-out ``features_test`` scenes and saves it to ``out_dir``."""
    b = runtime.budget("features")
    images, scenes, styles = real_renders(b.pool, split="train", size=32)
    targets = feature_targets(scenes, styles)
    net = feature_extractor()
    # an interrupted run resumes from here; a finished one deletes it
    run_dir = runtime.run_dir("features")
    opt = torch.optim.AdamW(net.parameters(), lr=b.lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=b.lr, total_steps=b.steps, pct_start=0.15)

    def step_fn(t, batch, step):
        x, y = batch
        with t.autocast():
            loss = features_loss(t.modules["net"](x), y)
        t.optimize("net", loss)
        return {"loss": loss}

    trainer = Trainer({"net": net}, {"net": opt}, step_fn,
                      TrainConfig(steps=b.steps, log_every=10, desc="features",
                                  checkpoint_dir=str(run_dir), checkpoint_every=500),
                      schedulers={"net": sched}, device=runtime.device, model_config=asdict(net.config))
    history = trainer.fit(pool_batches(images, b.batch_size, seed=runtime.seed, extra=(targets,)))
    test_images, test_scenes, test_styles = real_renders(b.eval, split="features_test", size=32)
    metrics = feature_accuracy(net, test_images, feature_targets(test_scenes, test_styles))
    metrics.update(train_loss=history.mean("loss", last=10), steps=b.steps, profile=runtime.profile,
                   device=str(runtime.device), eval_images=b.eval, train_pool=b.pool)
    net.cpu().save_pretrained(out_dir, metrics=metrics,
                              extra={"data": "ShapeScenes real renders, split 'train' (seeds 0..pool-1), all styles, "
                                             "32 px; evaluated on the seed range 'features_test'"})
    shutil.rmtree(run_dir, ignore_errors=True)
    return metrics
