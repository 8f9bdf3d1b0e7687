"""``spokenstyle train judge``: how the scene judge learns to read style and objects.

The network is :class:`spokenstyle.models.judge.SceneJudge`; it learns from real renders of
every style only (never from a generated picture), with its auxiliary colour-map target
(:func:`judge_loss`), through :class:`spokenstyle.train.Trainer` (:func:`train_judge`); the
recipe (:func:`train`) scores it per style (:func:`spokenstyle.evaluation.judge_report`) and
saves it. Chapter 1 trains one live; chapter 5 scores translations with the shipped one.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from ..data import colour_masks, sample_scenes, scene_batches
from ..evaluation import judge_report
from ..models.judge import JudgeConfig, SceneJudge
from ..runtime import Runtime
from ..train import TrainConfig, Trainer

__all__ = ["judge_loss", "train_judge", "train"]


def judge_loss(style_logits: torch.Tensor, slot_logits: torch.Tensor, style: torch.Tensor, slots: torch.Tensor,
         map_logits: torch.Tensor | None = None, colour_mask: torch.Tensor | None = None) -> torch.Tensor:
    """Cross-entropy of the style plus the mean cross-entropy of the six colour slots, plus
    (when given) the per-cell cross-entropy of the colour map against the true colour mask
    (``spokenstyle.data.styles.colour_masks`` at the map's 16 x 16 resolution): an auxiliary
    target that teaches the attention where each colour is long before the slots are read."""
    loss = F.cross_entropy(style_logits, style) + F.cross_entropy(slot_logits.flatten(0, 1), slots.flatten())
    if map_logits is not None:
        loss = loss + F.cross_entropy(map_logits, colour_mask)
    return loss


def train_judge(*, steps: int, batch_size: int, lr: float = 2e-3, size: int = 64, seed: int = 0,
                device: torch.device | str | None = None, config: JudgeConfig | None = None):
    """Trains a :class:`SceneJudge` on train-split scenes in all styles with the book's Trainer.

    Returns ``(judge, history)``; the learning rate follows a cosine schedule to zero.
    """
    torch.manual_seed(seed)
    judge = SceneJudge(config)
    opt = torch.optim.AdamW(judge.parameters(), lr=lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=max(1, steps), pct_start=0.15)

    def step_fn(t, batch, step):
        style_logits, slot_logits, map_logits = t.modules["judge"](batch["image"], return_map=True)
        mask = colour_masks(sample_scenes(batch["seed"]), map_logits.shape[-1])  # (B, 16, 16) true colours
        loss = judge_loss(style_logits, slot_logits, batch["style"], batch["slots"], map_logits, mask)
        t.optimize("judge", loss)
        return {"loss": loss}

    trainer = Trainer({"judge": judge}, {"judge": opt}, step_fn, TrainConfig(steps=steps, desc="judge"),
                      schedulers={"judge": sched}, device=device, model_config=asdict(judge.config))
    history = trainer.fit(scene_batches(batch_size, "all", size, split="train", seed=seed))
    return judge.eval(), history


def train(out_dir: str | Path, *, runtime: Runtime) -> dict[str, Any]:
    """``spokenstyle train judge``: the scene judge on real renders of every style (never on
    generated pictures), sized by ``runtime.budget("judge")``, scored on held-out scenes per style
    and saved to ``out_dir``. Chapter 5 scores translations with it."""
    b = runtime.budget("judge")
    judge, history = train_judge(steps=b.steps, batch_size=b.batch_size, lr=b.lr, seed=runtime.seed,
                                 device=runtime.device, config=JudgeConfig(width=b.width))
    report = judge_report(judge, n_per_style=b.eval, device=runtime.device)
    metrics = {f"{style}_{k}": v for style, r in report.items() for k, v in r.items()}
    metrics.update(style_accuracy=sum(r["style"] for r in report.values()) / len(report),
                   object_accuracy=sum(r["object"] for r in report.values()) / len(report),
                   train_loss=history.mean("loss", last=20), steps=b.steps, batch_size=b.batch_size,
                   profile=runtime.profile, device=str(runtime.device), eval_per_style=b.eval)
    print(metrics)
    judge.cpu().save_pretrained(out_dir, metrics=metrics,
                                extra={"data": "ShapeScenes real renders of every style, 64 px, split 'train' "
                                               "(spokenstyle.data.splits); evaluated on split 'test'"})
    return metrics

