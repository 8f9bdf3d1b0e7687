"""The painter judge: a small CNN that tells which painterly manner a 64 px picture is in.

Chapter 9 compares ways of painting a photograph "in a painter's manner" (the CycleGAN
translator, Gram and AdaIN transfer) and needs a ruler for *style* that none of them was tuned
to. This is it: a classifier of the painterly domains of :mod:`spokenstyle.data.photos`, the
photo itself and each of :data:`~spokenstyle.data.photos.ALL_FILTERS` (oil, watercolour,
pencil, pointillist, strokes, woodblock), trained on patches of the photos' *train* regions and
nothing else. It never sees a translation, so it cannot have learnt to like a method's quirks;
the book scores it on patches of the held-out *test* regions (its own ceiling).

Architecture: strided 3x3 convolutions with batch norm (as the scene judge,
:mod:`spokenstyle.models.judge`) down to an 8 x 8 map, then each channel's mean and standard
deviation over the map: the statistics of texture that Gram and AdaIN transfer also match
(Gatys et al. 2016; Huang & Belongie 2017), then a small MLP. How it is trained:
:mod:`spokenstyle.recipes.painter_judge`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..checkpoints import Pretrained
from ..data.photos import ALL_FILTERS
from .judge import conv_block

__all__ = ["MANNERS", "PainterJudgeConfig", "PainterJudge", "painter_judge"]

MANNERS: tuple[str, ...] = ("photo",) + tuple(ALL_FILTERS)
"""The classes: the photo itself, then every painterly filter."""


@dataclass
class PainterJudgeConfig:
    """The shape of the painter judge; ``asdict(config)`` is stored in its checkpoint."""

    resolution: int = 64  # inputs are resized to this (area); the patches of chapter 9
    width: int = 16  # channels of the first block, doubled at each of the first two strides
    hidden: int = 64  # the MLP's hidden layer
    classes: tuple[str, ...] = MANNERS  # what it tells apart, in logit order

    def __post_init__(self) -> None:
        self.classes = tuple(self.classes)  # a manifest stores a list
        if len(self.classes) < 2 or len(set(self.classes)) != len(self.classes):
            raise ValueError(f"classes must be at least two distinct names, got {self.classes!r}")
        for name in ("resolution", "width", "hidden"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        if self.resolution < 16:
            raise ValueError(f"resolution must be at least 16 px (three stride-2 blocks), got {self.resolution}")


class PainterJudge(Pretrained, nn.Module):
    """Manner classifier: ``forward(images)`` takes (B, 3, H, W) in [0, 1] and returns logits
    (B, len(config.classes)); :meth:`read` gives probabilities. ``PainterJudge.from_pretrained()``
    is the shipped ``"painter_judge"``."""

    config_class = PainterJudgeConfig
    default_weights = "painter_judge"

    def __init__(self, config: PainterJudgeConfig | None = None) -> None:
        super().__init__()
        config = config or PainterJudgeConfig()
        if not isinstance(config, PainterJudgeConfig):
            raise TypeError(f"config must be a PainterJudgeConfig, got {type(config).__name__}")
        self.config = c = config
        w = c.width
        self.trunk = nn.Sequential(
            conv_block(3, w, 1),  # 64 x 64: dots and hatching are a pixel or two wide
            conv_block(w, 2 * w, 2),  # 32 x 32
            conv_block(2 * w, 4 * w, 2),  # 16 x 16
            conv_block(4 * w, 4 * w, 2),  # 8 x 8
        )
        self.head = nn.Sequential(nn.Linear(8 * w, c.hidden), nn.ReLU(inplace=True), nn.Linear(c.hidden, len(c.classes)))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if not isinstance(images, torch.Tensor) or images.dim() != 4 or images.shape[1] != 3:
            raise ValueError(f"expected images (B, 3, H, W), got "
                             f"{tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__}")
        r = self.config.resolution
        if tuple(images.shape[-2:]) != (r, r):
            images = F.interpolate(images, size=(r, r), mode="area")
        h = self.trunk(images * 2 - 1)  # (B, 4w, r/8, r/8)
        stats = torch.cat([h.mean((2, 3)), h.std((2, 3), unbiased=False)], 1)  # (B, 8w): texture statistics
        return self.head(stats)

    @torch.no_grad()
    def read(self, images: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
        """(B, n_classes) probabilities on the CPU, in eval mode, in batches of ``batch_size``."""
        was_training = self.training
        self.eval()
        device = next(self.parameters()).device
        try:
            out = [self(x.to(device)).float().softmax(-1).cpu() for x in images.split(batch_size)]
        finally:
            self.train(was_training)
        return torch.cat(out)

    def index(self, manner: str) -> int:
        """The class id of ``manner``; a clear error lists the classes."""
        if manner not in self.config.classes:
            raise ValueError(f"unknown manner {manner!r}; this judge knows {self.config.classes}")
        return self.config.classes.index(manner)


def painter_judge(*, weights: str | None = "painter_judge", config: PainterJudgeConfig | None = None,
                  device: torch.device | str | None = None) -> PainterJudge:
    """A :class:`PainterJudge`: loaded from a shipped name or folder (default the shipped
    ``"painter_judge"``), or random with ``weights=None`` (and an optional ``config``)."""
    if weights is None:
        judge = PainterJudge(config)
        return judge.to(device) if device is not None else judge
    if config is not None:
        raise ValueError("give either weights (the checkpoint fixes the architecture) or config, not both")
    return PainterJudge.from_pretrained(weights, device=device)
