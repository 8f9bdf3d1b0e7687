"""The scene judge: a small CNN that reads a ShapeScenes picture's style and objects.

Chapter 1 uses it to check two promises of the data: every style is recognisable, and in every
style the shapes, colours and sizes can still be read off the picture. Later chapters use the
same kind of judge to score generated pictures (step 5 of the source's algorithm).

It predicts, from a 64 px render (other sizes are resized),

* the **style** (6 classes), and
* for each of the 6 colours, the object of that colour: absent, or one of 6 shapes x 2 sizes
  (13 classes; ``SceneBatch.colour_slots``). Colours are distinct within a scene, so the six
  answers describe the objects completely and in no particular order.

An object counts as read correctly when its colour slot is predicted exactly (right shape and
size, and present); a scene when all six slots are right (no object missed or invented).

Architecture: strided 3x3 convolutions with batch norm (a DCGAN-style discriminator trunk,
Radford et al. 2016) down to a 16 x 16 feature map; the style head pools it globally, the object
heads pool it once per colour with learned attention (see :class:`SceneJudge`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..data.datasets import scene_batches
from ..data.scenes import COLOURS, SHAPES, SIZES, sample_scenes
from ..data.styles import STYLES, colour_masks

__all__ = ["JudgeConfig", "SceneJudge", "train_judge", "judge_report"]


@dataclass
class JudgeConfig:
    resolution: int = 64  # inputs are resized to this (area); ShapeScenes' default size
    width: int = 32  # channels of the first block; doubled at every stride-2 block
    hidden: int = 256  # the shared layer before the heads
    n_styles: int = len(STYLES)
    n_colours: int = len(COLOURS)
    n_slot_classes: int = 1 + len(SHAPES) * len(SIZES)  # absent, or shape x size


def _block(c_in: int, c_out: int, stride: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True))


class SceneJudge(nn.Module):
    """Style and per-colour object classifier; ``forward(images)`` takes (B, 3, H, W) in [0, 1]
    and returns ``(style_logits (B, 6), slot_logits (B, 6, 13))``.

    The slot heads use *colour-query attention pooling*: a 1x1 convolution scores every cell of
    the 16 x 16 feature map for "background" and each of the six colours (a softmax over 7), and
    colour c's features are the feature map averaged with its weights. A shared head then reads
    shape and size from them, plus how much of the picture had colour c (is it there at all?).
    This builds in what the task needs, binding a colour to the shape drawn in it, which global
    pooling has to discover slowly (a plain CNN of the same size read under 10 % of the objects
    after 300 steps). Training also supervises the colour map with the true colour mask.
    """

    def __init__(self, config: JudgeConfig | None = None) -> None:
        super().__init__()
        self.config = c = config or JudgeConfig()
        w = c.width
        self.trunk = nn.Sequential(
            _block(3, w, 1),  # 64 x 64: keeps the small shapes' corners
            _block(w, 2 * w, 2),  # 32 x 32
            _block(2 * w, 2 * w, 1),
            _block(2 * w, 4 * w, 2),  # 16 x 16
            _block(4 * w, 4 * w, 1),
        )
        self.colour_map = nn.Conv2d(4 * w, 1 + c.n_colours, 1)  # background + one score per colour
        self.style_head = nn.Sequential(nn.Linear(8 * w, c.hidden), nn.ReLU(inplace=True), nn.Linear(c.hidden, c.n_styles))
        self.slot_head = nn.Sequential(nn.Linear(4 * w + 1, c.hidden), nn.ReLU(inplace=True),
                                       nn.Linear(c.hidden, c.n_slot_classes))

    def forward(self, images: torch.Tensor, return_map: bool = False):
        if images.dim() != 4 or images.shape[1] != 3:
            raise ValueError(f"expected images (B, 3, H, W), got {tuple(images.shape)}")
        r = self.config.resolution
        if images.shape[-1] != r or images.shape[-2] != r:
            images = F.interpolate(images, size=(r, r), mode="area")
        h = self.trunk(images * 2 - 1)  # (B, C, 16, 16)
        style = self.style_head(torch.cat([h.mean((2, 3)), h.amax((2, 3))], 1))  # (B, n_styles)
        map_logits = self.colour_map(h)  # (B, 1 + n_colours, 16, 16)
        attn = map_logits.softmax(1)[:, 1:].flatten(2)  # (B, n_colours, 256)
        mass = attn.sum(-1, keepdim=True)  # (B, n_colours, 1)
        pooled = torch.einsum("bkn,bcn->bkc", attn, h.flatten(2)) / (mass + 1e-3)  # (B, n_colours, C)
        slots = self.slot_head(torch.cat([pooled, torch.log(mass / attn.shape[-1] + 1e-4)], -1))  # (B, n_colours, 13)
        return (style, slots, map_logits) if return_map else (style, slots)

    @staticmethod
    def loss(style_logits: torch.Tensor, slot_logits: torch.Tensor, style: torch.Tensor, slots: torch.Tensor,
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
    from ..train import Trainer, TrainConfig

    torch.manual_seed(seed)
    judge = SceneJudge(config)
    opt = torch.optim.AdamW(judge.parameters(), lr=lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=max(1, steps), pct_start=0.15)

    def step_fn(t, batch, step):
        style_logits, slot_logits, map_logits = t.modules["judge"](batch["image"], return_map=True)
        mask = colour_masks(sample_scenes(batch["seed"]), map_logits.shape[-1])  # (B, 16, 16) true colours
        loss = SceneJudge.loss(style_logits, slot_logits, batch["style"], batch["slots"], map_logits, mask)
        t.optimize("judge", loss)
        return {"loss": loss}

    trainer = Trainer({"judge": judge}, {"judge": opt}, step_fn, TrainConfig(steps=steps, desc="judge"),
                      schedulers={"judge": sched}, device=device, model_config=asdict(judge.config))
    history = trainer.fit(scene_batches(batch_size, "all", size, split="train", seed=seed))
    return judge.eval(), history


@torch.no_grad()
def judge_report(judge: SceneJudge, *, n_per_style: int = 500, size: int = 64, batch_size: int = 250,
                 device: torch.device | str | None = None) -> dict[str, dict[str, float]]:
    """Accuracy on held-out (test split) scenes, per style.

    Returns ``{style: {"style": ..., "object": ..., "scene": ...}}``: style accuracy, the share of
    objects read exactly (shape, colour and size), and the share of scenes read exactly.
    """
    judge.eval()
    dev = next(judge.parameters()).device if device is None else torch.device(device)
    report = {}
    for s, name in enumerate(STYLES):
        batches = scene_batches(batch_size, name, size, split="test", seed=s, device=dev)
        hits = {"style": 0, "object": 0, "scene": 0}
        objects = scenes = 0
        for step in range(-(-n_per_style // batch_size)):
            b = batches(step)
            style_logits, slot_logits = judge(b["image"])
            pred = slot_logits.argmax(-1)  # (B, 6)
            present = b["slots"] > 0
            hits["style"] += int((style_logits.argmax(-1) == b["style"]).sum())
            hits["object"] += int(((pred == b["slots"]) & present).sum())
            hits["scene"] += int((pred == b["slots"]).all(1).sum())
            objects += int(present.sum())
            scenes += len(pred)
        report[name] = {"style": hits["style"] / scenes, "object": hits["object"] / objects,
                        "scene": hits["scene"] / scenes}
    return report


# -- the shipped judge: `spokenstyle train judge` (chapter 5 scores translations with it) --------

def scene_judge(*, weights: str | None = None, config: JudgeConfig | None = None) -> SceneJudge:
    """A :class:`SceneJudge`: random (``weights=None``) or loaded from a checkpoint folder or a
    shipped name (``"judge"``), in eval mode. The architecture comes from the checkpoint."""
    from pathlib import Path

    from .. import checkpoints

    if weights is None:
        return SceneJudge(config)
    if config is not None:
        raise ValueError("give either weights (the checkpoint fixes the architecture) or config, not both")
    directory = Path(weights) if ("/" in str(weights) or Path(weights).is_dir()) else checkpoints.shipped_path(weights)
    manifest = checkpoints.read_manifest(directory)
    try:
        judge = SceneJudge(JudgeConfig(**manifest["config"]))
    except TypeError as err:
        raise checkpoints.CheckpointError(f"{directory} is not a judge checkpoint ({err})") from err
    checkpoints.load_pretrained(judge, directory)
    return judge.eval()


def train(out_dir, *, runtime) -> dict:
    """``spokenstyle train judge``: the scene judge on real renders of every style (never on
    generated pictures), sized by ``runtime.budget("judge")``, scored on held-out scenes per style
    and saved to ``out_dir``. Chapter 5 scores translations with it."""
    from .. import checkpoints, cli

    b = runtime.budget("judge")
    judge, history = train_judge(steps=b["steps"], batch_size=b["batch_size"], lr=b["lr"], seed=runtime.seed,
                                 device=runtime.device, config=JudgeConfig(width=b["width"]))
    report = judge_report(judge, n_per_style=b["eval"], device=runtime.device)
    metrics = {f"{style}_{k}": v for style, r in report.items() for k, v in r.items()}
    metrics.update(style_accuracy=sum(r["style"] for r in report.values()) / len(report),
                   object_accuracy=sum(r["object"] for r in report.values()) / len(report),
                   train_loss=history.mean("loss", last=20), steps=b["steps"], batch_size=b["batch_size"],
                   profile=runtime.profile, device=str(runtime.device), eval_per_style=b["eval"])
    print(metrics)
    checkpoints.save_pretrained(judge.cpu(), out_dir, config=judge.config, metrics=metrics, command=cli.command_line(),
                                extra={"data": "ShapeScenes real renders of every style, 64 px, split 'train' "
                                               "(spokenstyle.data.SPLITS); evaluated on split 'test'"})
    return metrics
