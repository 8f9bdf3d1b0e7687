"""The feature extractor behind the book's image metrics: a small classifier of real renders.

FID measures distances between Inception-v3 features of ImageNet photographs. For ShapeScenes
that network would be the wrong ruler (and a download): what matters here is whether a picture
shows the right shapes, colours, sizes and style. So the book trains its own ruler, a small CNN
that reads a 32 px render and predicts

* its **style** (6 classes),
* its **object count** (1 to 3),
* which of the 6 **colours** are present (6 yes/no answers), and for each present colour the
  **shape** (6 classes) and **size** (2) of the object that has it. Colours are distinct within
  a scene, so these answers describe the objects completely, whatever order they were drawn in
  (``SceneBatch.colour_slots``).

It is trained on **real renders only** and never sees a generated image, so it cannot be fooled
into liking a generator's quirks. Its 64-D penultimate layer (after global average pooling and
one linear layer, like Inception's pool features) is the feature space of
:mod:`spokenstyle.metrics`. Its heads give each picture a *confidence* (:func:`confidence`):
the smaller of the style head's and the count head's probabilities for their own answers, and 0
when the heads contradict each other, i.e. when the number of colours the colour head sees
differs from the number of objects the count head counts. A picture scores high only if its
style and its number of objects are unambiguous *and* its objects are where the count says they
are. The consistency check is needed: a classifier is confidently wrong far from its training
data, and without it a uniform grey picture, uniform noise and a generator after 60 steps were
all "confident" (100 % of them), more often than real renders (99.5 %). With it they score 0 %
and held-out real renders about 97 % (see the manifest's ``confident_rate``). Shapes and sizes
are left out: a small object is about 5 pixels wide at 32 px, and even on real renders the
classifier misreads a fifth of the shapes (the held-out shape accuracy is in the manifest), so
a confidence that required them would fail real pictures too often.

Real images come from fixed, disjoint seed ranges (:mod:`spokenstyle.data.splits`): the
classifier and the GANs train on ``train`` scenes; the metrics compare against ``real_a`` and
``real_b``, two held-out real sets, so that ``real_a`` vs ``real_b`` is the real-vs-real
baseline (:func:`spokenstyle.data.real_renders` draws them). The scene with seed s is drawn in
style ``s % 6`` when every style is asked for, so the style is independent of the content. How
it is trained: :mod:`spokenstyle.recipes.features`; its held-out scorecard:
:func:`spokenstyle.evaluation.feature_accuracy`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..checkpoints import Pretrained
from ..data.scenes import COLOURS, SHAPES, SIZES, SceneBatch, slot_class

__all__ = [
    "FeatureNetConfig",
    "FeatureNetOutput",
    "FeatureNet",
    "feature_extractor",
    "feature_targets",
    "extract_features",
    "confidence",
]

def feature_targets(scenes: SceneBatch, styles: torch.Tensor) -> torch.Tensor:
    """(B, 8) int64 labels of :class:`FeatureNet`'s heads: style id, object count - 1, then the
    6 colour slots (:meth:`~spokenstyle.data.scenes.SceneBatch.colour_slots`)."""
    return torch.cat([styles.to(torch.int64)[:, None], (scenes.n_objects - 1)[:, None], scenes.colour_slots()], dim=1)


# -- the network -------------------------------------------------------------------------------

class ConvBlock(nn.Sequential):
    """3 × 3 convolution → BatchNorm → ReLU; ``stride=2`` halves H and W."""

    def __init__(self, c_in: int, c_out: int, stride: int = 1) -> None:
        super().__init__(nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False),
                         nn.BatchNorm2d(c_out), nn.ReLU(inplace=True))


@dataclass
class FeatureNetConfig:
    """The shape of the feature extractor; ``asdict(config)`` is stored in its checkpoint."""

    resolution: int = 32  # inputs of other sizes are resized (area) to this: the GANs make 32 px
    width: int = 16  # channels of the first layer, doubled at each stride; 16 trains in minutes on a CPU
    feature_dim: int = 64  # the metric space: small enough that FD's covariance is well estimated from 2,000 samples
    n_styles: int = 6  # spokenstyle.data.styles.STYLES
    n_counts: int = 3  # 1 to 3 objects
    n_colours: int = len(COLOURS)  # one presence, shape and size answer each
    n_shapes: int = len(SHAPES)
    n_sizes: int = len(SIZES)  # small, large


@dataclass
class FeatureNetOutput:
    """What :class:`FeatureNet` returns: features (B, feature_dim) and the heads' logits."""

    features: torch.Tensor  # (B, feature_dim)
    style_logits: torch.Tensor  # (B, n_styles)
    count_logits: torch.Tensor  # (B, n_counts)
    colour_logits: torch.Tensor  # (B, n_colours): is this colour in the picture? (sigmoid)
    shape_logits: torch.Tensor  # (B, n_colours, n_shapes): the shape of the object of each colour
    size_logits: torch.Tensor  # (B, n_colours, n_sizes)


class FeatureNet(Pretrained, nn.Module):
    """32 px image in [0, 1] → 64-D features and style / count / colour / shape / size logits.

    Layout (``width = w``): 32×32×w → 16×16×2w → 8×8×4w → 4×4×8w → global average → linear → ReLU.
    ``FeatureNet.from_pretrained("features")`` is the shipped extractor.
    """

    config_class = FeatureNetConfig
    default_weights = "features"

    def __init__(self, config: FeatureNetConfig) -> None:
        super().__init__()
        if not isinstance(config, FeatureNetConfig):
            raise TypeError(f"config must be a FeatureNetConfig, got {type(config).__name__}")
        self.config = config
        w = config.width
        self.backbone = nn.Sequential(
            ConvBlock(3, w),  # (B, w, 32, 32)
            ConvBlock(w, 2 * w, stride=2), ConvBlock(2 * w, 2 * w),  # (B, 2w, 16, 16)
            ConvBlock(2 * w, 4 * w, stride=2), ConvBlock(4 * w, 4 * w),  # (B, 4w, 8, 8)
            ConvBlock(4 * w, 8 * w, stride=2),  # (B, 8w, 4, 4)
            nn.AdaptiveAvgPool2d(1), nn.Flatten(),  # (B, 8w)
            nn.Linear(8 * w, config.feature_dim), nn.ReLU(inplace=True),  # (B, feature_dim)
        )
        self.style_head = nn.Linear(config.feature_dim, config.n_styles)
        self.count_head = nn.Linear(config.feature_dim, config.n_counts)
        self.colour_head = nn.Linear(config.feature_dim, config.n_colours)
        self.shape_head = nn.Linear(config.feature_dim, config.n_colours * config.n_shapes)
        self.size_head = nn.Linear(config.feature_dim, config.n_colours * config.n_sizes)

    def _prepare(self, images: torch.Tensor) -> torch.Tensor:
        if not isinstance(images, torch.Tensor) or images.dim() != 4 or images.shape[1] != 3:
            shape = tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__
            raise ValueError(f"images must be (B, 3, H, W) in [0, 1], got {shape}")
        if not images.is_floating_point():
            raise TypeError(f"images must be floating point in [0, 1], got dtype {images.dtype}")
        if images.numel() and (images.min() < -1e-3 or images.max() > 1 + 1e-3):
            raise ValueError(f"images must be in [0, 1] (renders; convert generator outputs with "
                             f"to_unit_range), got values in [{images.min():.3g}, {images.max():.3g}]")
        r = self.config.resolution
        if images.shape[-2:] != (r, r):
            images = F.interpolate(images, size=(r, r), mode="area")
        return images * 2 - 1  # (B, 3, r, r) in [-1, 1]

    def forward(self, images: torch.Tensor) -> FeatureNetOutput:
        """(B, 3, H, W) in [0, 1] → :class:`FeatureNetOutput`."""
        c = self.config
        h = self.backbone(self._prepare(images))  # (B, feature_dim)
        return FeatureNetOutput(
            features=h,
            style_logits=self.style_head(h),
            count_logits=self.count_head(h),
            colour_logits=self.colour_head(h),
            shape_logits=self.shape_head(h).view(-1, c.n_colours, c.n_shapes),
            size_logits=self.size_head(h).view(-1, c.n_colours, c.n_sizes),
        )

    @torch.no_grad()
    def read(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(style probabilities (B, 6), colour slots (B, 6)) it reads off ``images`` (in eval mode,
        on the CPU): a colour is present when its logit is positive, with its most likely shape and
        size (the same reading :func:`spokenstyle.models.judge.SceneJudge.read` gives)."""
        was_training = self.training
        self.eval()
        try:
            out = self(images.to(next(self.parameters()).device))
        finally:
            self.train(was_training)
        present = out.colour_logits > 0  # (B, 6)
        cls = slot_class(out.shape_logits.argmax(-1), out.size_logits.argmax(-1))  # (B, 6)
        slots = torch.where(present, cls, torch.zeros_like(cls))
        return out.style_logits.float().softmax(-1).cpu(), slots.cpu()


def confidence(out: FeatureNetOutput) -> torch.Tensor:
    """(B,) the smaller of the probabilities the classifier gives its own answers for the style
    and for the number of objects, or 0 where the colour head sees a different number of
    colours than the count head counts objects: high only when the picture is unambiguously one
    style with a definite number of objects, each with its own colour (see the module docstring
    for why the consistency check is there and why shapes are not in it)."""
    style = out.style_logits.softmax(-1).amax(-1)  # (B,)
    count = out.count_logits.softmax(-1).amax(-1)  # (B,)
    consistent = (out.colour_logits > 0).sum(-1) == out.count_logits.argmax(-1) + 1  # (B,) colours seen = objects counted
    return torch.minimum(style, count) * consistent


@torch.no_grad()
def extract_features(net: FeatureNet, images: torch.Tensor, *, batch_size: int = 500,
                     with_confidence: bool = False):
    """Features (N, feature_dim) of images in [0, 1] (on the CPU, float32), in eval mode; with
    ``with_confidence`` also the (N,) confidences."""
    if not isinstance(net, FeatureNet):
        raise TypeError(f"net must be a FeatureNet, got {type(net).__name__}")
    was_training = net.training
    net.eval()
    device = next(net.parameters()).device
    feats, confs = [], []
    try:
        for chunk in images.split(batch_size):
            out = net(chunk.to(device))
            feats.append(out.features.float().cpu())
            confs.append(confidence(out).float().cpu())
    finally:
        net.train(was_training)
    if with_confidence:
        return torch.cat(feats), torch.cat(confs)
    return torch.cat(feats)


# -- builder -----------------------------------------------------------------------------------

def feature_extractor(*, config: FeatureNetConfig | None = None, weights: str | Path | None = None,
                      **overrides: Any) -> FeatureNet:
    """The metric feature extractor.

    Args:
        config: the architecture (``None`` = defaults); keyword ``overrides`` replace fields.
        weights: ``None`` (random init, to train), the name of a shipped checkpoint
            (``"features"``) or a checkpoint folder. With weights the network is in eval mode and
            the architecture comes from the checkpoint.
    """
    if weights is None:
        if config is not None and not isinstance(config, FeatureNetConfig):
            raise TypeError(f"config must be a FeatureNetConfig or None, got {type(config).__name__}")
        return FeatureNet(FeatureNetConfig(**{**(asdict(config) if config else {}), **overrides}))
    if config is not None or overrides:
        raise ValueError("give either weights (the checkpoint fixes the architecture) or config/overrides, not both")
    return FeatureNet.from_pretrained(weights)
