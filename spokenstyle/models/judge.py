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
heads pool it once per colour with learned attention (see :class:`SceneJudge`). How it is
trained: :mod:`spokenstyle.recipes.judge`; its scorecard: :func:`spokenstyle.evaluation.judge_report`.

:func:`load_judge` loads either kind of judge the book uses (this one, or chapter 4's
:class:`~spokenstyle.models.features.FeatureNet`), and :func:`read_scene` reads style and objects
with either: the pipeline's step 5.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from .. import checkpoints
from ..checkpoints import Pretrained
from ..data.scenes import COLOURS, N_SLOT_CLASSES
from ..data.styles import STYLES
from .features import FeatureNet

__all__ = ["JudgeConfig", "SceneJudge", "conv_block", "scene_judge", "load_judge", "read_scene"]


@dataclass
class JudgeConfig:
    resolution: int = 64  # inputs are resized to this (area); ShapeScenes' default size
    width: int = 32  # channels of the first block; doubled at every stride-2 block
    hidden: int = 256  # the shared layer before the heads
    n_styles: int = len(STYLES)
    n_colours: int = len(COLOURS)
    n_slot_classes: int = N_SLOT_CLASSES  # absent, or shape x size (spokenstyle.data.scenes)


def conv_block(c_in: int, c_out: int, stride: int) -> nn.Sequential:
    """3 x 3 convolution (``stride``), BatchNorm, ReLU: the judges' building block."""
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True))


class SceneJudge(Pretrained, nn.Module):
    """Style and per-colour object classifier; ``forward(images)`` takes (B, 3, H, W) in [0, 1]
    and returns ``(style_logits (B, 6), slot_logits (B, 6, 13))``; ``SceneJudge.from_pretrained("judge")``
    is the shipped judge (chapter 5).

    The slot heads use *colour-query attention pooling*: a 1x1 convolution scores every cell of
    the 16 x 16 feature map for "background" and each of the six colours (a softmax over 7), and
    colour c's features are the feature map averaged with its weights. A shared head then reads
    shape and size from them, plus how much of the picture had colour c (is it there at all?).
    This builds in what the task needs, binding a colour to the shape drawn in it, which global
    pooling has to discover slowly (a plain CNN of the same size read under 10 % of the objects
    after 300 steps). Training also supervises the colour map with the true colour mask.
    """

    config_class = JudgeConfig
    default_weights = "judge"

    def __init__(self, config: JudgeConfig | None = None) -> None:
        super().__init__()
        config = config or JudgeConfig()
        if not isinstance(config, JudgeConfig):
            raise TypeError(f"config must be a JudgeConfig, got {type(config).__name__}")
        self.config = c = config
        w = c.width
        self.trunk = nn.Sequential(
            conv_block(3, w, 1),  # 64 x 64: keeps the small shapes' corners
            conv_block(w, 2 * w, 2),  # 32 x 32
            conv_block(2 * w, 2 * w, 1),
            conv_block(2 * w, 4 * w, 2),  # 16 x 16
            conv_block(4 * w, 4 * w, 1),
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

    @torch.no_grad()
    def read(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(style probabilities (B, 6), colour slots (B, 6)) it reads off ``images``, in eval mode,
        on the CPU: the most likely slot class per colour (0 = absent)."""
        was_training = self.training
        self.eval()
        try:
            style_logits, slot_logits = self(images.to(next(self.parameters()).device))
        finally:
            self.train(was_training)
        return style_logits.float().softmax(-1).cpu(), slot_logits.argmax(-1).cpu()


# -- loading -----------------------------------------------------------------------------------

def scene_judge(*, weights: str | Path | None = None, config: JudgeConfig | None = None) -> SceneJudge:
    """A :class:`SceneJudge`: random (``weights=None``) or loaded from a shipped name (``"judge"``),
    a checkpoint folder or a file in one, in eval mode. The architecture comes from the checkpoint."""
    if weights is None:
        return SceneJudge(config)
    if config is not None:
        raise ValueError("give either weights (the checkpoint fixes the architecture) or config, not both")
    return SceneJudge.from_pretrained(weights)


def load_judge(weights: str | Path, *, device: torch.device | str | None = None) -> SceneJudge | FeatureNet:
    """A judge checkpoint of either kind, told apart by its manifest: a :class:`SceneJudge`
    (``"judge"``) or chapter 4's :class:`~spokenstyle.models.features.FeatureNet` (``"features"``)."""
    directory = checkpoints.resolve(weights)
    kind = (checkpoints.read_manifest(directory).get("extra") or {}).get("class")
    cls = SceneJudge if kind == "SceneJudge" else FeatureNet
    return cls.from_pretrained(directory, device=device)


def read_scene(judge: nn.Module, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(style probabilities (B, 6), colour slots (B, 6)) that ``judge`` reads off ``images``.

    ``judge`` is a :class:`SceneJudge` or a :class:`~spokenstyle.models.features.FeatureNet`
    (both have ``read``), or any module returning ``(style_logits, slot_logits (B, 6, 13))``.
    Slots follow :meth:`~spokenstyle.data.scenes.SceneBatch.colour_slots`.
    """
    if hasattr(judge, "read"):
        return judge.read(images)
    was_training = judge.training
    judge.eval()
    try:
        with torch.no_grad():
            out = judge(images.to(next(judge.parameters()).device))
    finally:
        judge.train(was_training)
    return out[0].float().softmax(-1).cpu(), out[1].argmax(-1).cpu()
