"""Style transfer without a GAN: optimise the picture itself.

Chapter 5 sets CycleGAN-lite against the classic, non-adversarial answer to "change the
appearance, keep the content": **optimise the picture itself** so that the statistics of its
features match a style image while its deeper features stay those of the content image.

* **Gram** (Gatys, Ecker & Bethge 2016): style = the Gram matrices (channel correlations) of
  several layers' feature maps (:func:`spokenstyle.losses.gram_matrix`); content = one deeper
  layer's feature map itself.
* **AdaIN** (Huang & Belongie 2017): style = each channel's mean and standard deviation. The
  content target is ``AdaIN(f(content), f(style))``: the content features renormalised to the
  style's channel statistics. Huang & Belongie train a decoder to invert the encoder; with no
  trained decoder we reach the same target by optimising the picture (their training loss,
  minimised over the image instead of over a decoder's weights).

**Features without a download.** Both methods usually read VGG-19 features pretrained on
ImageNet. Random, untrained convolutional features already capture texture statistics
(Ustyuzhaninov et al. 2017, "What does it take to generate natural textures?"; He, Wang & Hopcroft
2016), so :class:`RandomFeatures` is a frozen, randomly initialised multi-scale CNN (a fixed
seed; several kernel sizes per layer) and nothing is downloaded. :func:`vgg_features` swaps in
torchvision's pretrained VGG-19 for readers with internet (the notebook's guarded cell).

**Scoring translations.** :func:`spokenstyle.evaluation.evaluate_translation` scores *any*
function that maps pictures of style A to style B (CycleGAN, Gram, AdaIN, or doing nothing) the
same way; chapter 5 sets them side by side.

References:
    Gatys, Ecker & Bethge 2016, "Image Style Transfer Using Convolutional Neural Networks", CVPR.
    Huang & Belongie 2017, "Arbitrary Style Transfer in Real-time with Adaptive Instance
    Normalization", https://arxiv.org/abs/1703.06868
    Ustyuzhaninov, Brendel, Gatys & Bethge 2017, "What does it take to generate natural
    textures?", ICLR, https://openreview.net/forum?id=BJhZeLsxx
"""

from __future__ import annotations

from typing import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models import VGG19_Weights, vgg19

from . import losses
from .metrics import check_unit_images

__all__ = [
    "RandomFeatures",
    "vgg_features",
    "adain",
    "mean_std",
    "style_statistics",
    "match_statistics",
    "gram_transfer",
    "adain_transfer",
]


# -- features ----------------------------------------------------------------------------------

class RandomFeatures(nn.Module):
    """A frozen, randomly initialised multi-scale CNN: (B, 3, H, W) in [0, 1] → a list of feature maps.

    Each of ``depth`` layers concatenates convolutions with kernels 3, 5 and 7 (``width`` channels
    in total, a ReLU after each) and then halves the resolution by average pooling, so the maps
    describe textures at several scales. Weights are drawn with Kaiming-uniform init from
    ``seed`` and never trained; the last map is the "content" layer.
    """

    def __init__(self, *, width: int = 32, depth: int = 3, seed: int = 0) -> None:
        super().__init__()
        if not isinstance(width, int) or width < 3 or not isinstance(depth, int) or depth < 1:
            raise ValueError(f"width must be an int >= 3 and depth an int >= 1, got {width!r}, {depth!r}")
        gen = torch.Generator().manual_seed(seed)
        self.layers = nn.ModuleList()
        c_in = 3
        for _ in range(depth):
            per = [width // 3 + (1 if k < width % 3 else 0) for k in range(3)]
            convs = nn.ModuleList(nn.Conv2d(c_in, c, k, padding=k // 2) for c, k in zip(per, (3, 5, 7)))
            for conv in convs:
                bound = (6.0 / (conv.in_channels * conv.kernel_size[0] ** 2)) ** 0.5  # Kaiming-uniform (ReLU)
                with torch.no_grad():
                    conv.weight.copy_(torch.empty_like(conv.weight).uniform_(-bound, bound, generator=gen))
                    conv.bias.zero_()
            self.layers.append(convs)
            c_in = width
        self.requires_grad_(False)
        self.eval()

    def forward(self, images: torch.Tensor) -> list[torch.Tensor]:
        x = images * 2 - 1  # centred inputs
        maps = []
        for i, convs in enumerate(self.layers):
            x = torch.cat([F.relu(conv(x)) for conv in convs], 1)  # (B, width, H', W')
            maps.append(x)
            if i < len(self.layers) - 1:
                x = F.avg_pool2d(x, 2)  # next scale
        return maps


class _VGGFeatures(nn.Module):
    def __init__(self, vgg: nn.Module, taps: Sequence[int]) -> None:
        super().__init__()
        self.body = vgg[: max(taps) + 1]
        self.taps = set(taps)
        self.register_buffer("mean", torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1))
        self.requires_grad_(False)
        self.eval()

    def forward(self, images: torch.Tensor) -> list[torch.Tensor]:
        x = (images - self.mean) / self.std
        maps = []
        for i, layer in enumerate(self.body):
            x = layer(x)
            if i in self.taps:
                maps.append(x)
        return maps


def vgg_features() -> nn.Module:  # pragma: no cover - needs the internet once (torchvision downloads weights)
    """torchvision's VGG-19 pretrained on ImageNet, tapped at relu1_1, relu2_1, relu3_1 and relu4_1
    (Gatys et al.; Huang & Belongie): a drop-in replacement for :class:`RandomFeatures`.

    Downloads about 550 MB the first time; used only in the notebook's online cell.
    """
    return _VGGFeatures(vgg19(weights=VGG19_Weights.DEFAULT).features, taps=(1, 6, 11, 20))


# -- AdaIN ---------------------------------------------------------------------------------------

def mean_std(features: torch.Tensor, eps: float = 1e-5) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-image, per-channel mean and standard deviation of (B, C, H, W) maps, each (B, C, 1, 1)."""
    if not isinstance(features, torch.Tensor) or features.dim() != 4:
        raise ValueError(f"features must be (B, C, H, W), got "
                         f"{tuple(features.shape) if isinstance(features, torch.Tensor) else type(features).__name__}")
    mean = features.mean((2, 3), keepdim=True)
    std = (features.var((2, 3), keepdim=True, unbiased=False) + eps).sqrt()
    return mean, std


def adain(content: torch.Tensor, style: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """AdaIN(x, y) = σ(y) (x - μ(x)) / σ(x) + μ(y), per image and channel (Huang & Belongie 2017, eq. 8)."""
    if not isinstance(content, torch.Tensor) or not isinstance(style, torch.Tensor) or content.dim() != 4 \
            or style.dim() != 4 or content.shape[:2] != style.shape[:2]:
        raise ValueError("content and style must be (B, C, H, W) feature maps with the same B and C")
    mu_c, sd_c = mean_std(content, eps)
    mu_s, sd_s = mean_std(style, eps)
    return sd_s * (content - mu_c) / sd_c + mu_s


def style_statistics(images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """A style's colour statistics in pixel space: the per-channel mean and standard deviation of
    each of ``images`` (B, C, H, W) (pictures of one style), averaged over the pictures; (C,) each."""
    mean, std = mean_std(images)
    return mean.mean(0).flatten(), std.mean(0).flatten()


def match_statistics(images: torch.Tensor, mean: torch.Tensor, std: torch.Tensor, *, strength: float = 1.0) -> torch.Tensor:
    """AdaIN in pixel space, after drawing: each picture's per-channel mean and standard deviation
    moved to ``mean`` and ``std`` (C,) or (B, C) (a target style's, :func:`style_statistics`),
    ``strength`` of the way (1: matched, 0: unchanged), clamped to [0, 1].

    The cheapest fix of a picture whose colours miss its style: no network, no training. It
    cannot add what the statistics do not hold (strokes, hatching, dots), and it moves every
    pixel, objects included, so it may cost content: chapter 10 measures both."""
    if not isinstance(images, torch.Tensor) or images.dim() != 4:
        raise ValueError(f"images must be (B, C, H, W), got "
                         f"{tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__}")
    B, C = images.shape[:2]
    target = []
    for name, t in (("mean", mean), ("std", std)):
        if not isinstance(t, torch.Tensor) or tuple(t.shape) not in ((C,), (B, C)):
            raise ValueError(f"{name} must be ({C},) or ({B}, {C}), got "
                             f"{tuple(t.shape) if isinstance(t, torch.Tensor) else type(t).__name__}")
        target.append(t.to(images).reshape(-1, C, 1, 1))
    if isinstance(strength, bool) or not isinstance(strength, (int, float)) or not 0 <= strength <= 1:
        raise ValueError(f"strength must be a number in [0, 1], got {strength!r}")
    mu, sd = mean_std(images)
    matched = (images - mu) / sd * target[1] + target[0]
    return (images + strength * (matched - images)).clamp(0, 1)


# -- optimisation-based transfer ---------------------------------------------------------------

def _optimise(content: torch.Tensor, style: torch.Tensor, loss_fn: Callable[[list[torch.Tensor]], torch.Tensor],
              *, steps: int, lr: float) -> torch.Tensor:
    """Adam on the picture's pixels (kept in [0, 1] through a sigmoid parametrisation), starting
    from the content picture; returns the picture after ``steps`` steps."""
    if not isinstance(steps, int) or steps < 0:
        raise ValueError(f"steps must be a non-negative int, got {steps!r}")
    if not lr > 0:
        raise ValueError(f"lr must be positive, got {lr!r}")
    logit = torch.logit(content.clamp(1e-3, 1 - 1e-3)).detach().requires_grad_(True)
    opt = torch.optim.Adam([logit], lr=lr)
    for _ in range(steps):
        loss = loss_fn(torch.sigmoid(logit))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return torch.sigmoid(logit).detach()


def _pair(content: torch.Tensor, style: torch.Tensor, features: nn.Module | None) -> tuple:
    content = check_unit_images(content, "content")
    style = check_unit_images(style, "style")
    if style.shape[0] not in (1, content.shape[0]):
        raise ValueError(f"style must hold 1 picture or one per content picture ({content.shape[0]}), got {style.shape[0]}")
    features = features if features is not None else RandomFeatures()
    device = next(features.parameters()).device
    return content.to(device), style.to(device).expand(content.shape[0], -1, -1, -1), features


def gram_transfer(content: torch.Tensor, style: torch.Tensor, *, features: nn.Module | None = None,
                  steps: int = 150, lr: float = 0.05, style_weight: float = 1e4,
                  content_weight: float = 1.0) -> torch.Tensor:
    """Gatys et al.'s transfer: the picture whose Gram matrices (every layer) match ``style``'s and
    whose last feature map matches ``content``'s.

    Args:
        content: (B, 3, H, W) in [0, 1], the pictures to restyle.
        style: (B, 3, H, W) or (1, 3, H, W) in [0, 1], one style picture per content picture.
        features: a frozen feature network returning a list of maps; default :class:`RandomFeatures`.
        steps, lr: Adam steps on the pixels (logit-parametrised) and its learning rate.
        style_weight, content_weight: the paper's β and α.
    Returns: (B, 3, H, W) in [0, 1].
    """
    content, style, features = _pair(content, style, features)
    with torch.no_grad():
        target_grams = [losses.gram_matrix(f) for f in features(style)]
        target_content = features(content)[-1]

    def loss_fn(x: torch.Tensor) -> torch.Tensor:
        maps = features(x)
        style_term = sum(losses.gram_loss(f, g) for f, g in zip(maps, target_grams))
        return style_weight * style_term + content_weight * F.mse_loss(maps[-1], target_content)

    return _optimise(content, style, loss_fn, steps=steps, lr=lr)


def adain_transfer(content: torch.Tensor, style: torch.Tensor, *, features: nn.Module | None = None,
                   steps: int = 150, lr: float = 0.05, style_weight: float = 10.0) -> torch.Tensor:
    """AdaIN transfer by optimisation: the picture whose last feature map equals
    ``AdaIN(f(content), f(style))`` and whose every layer has ``style``'s channel means and
    standard deviations (Huang & Belongie 2017, eqs. 11-13, minimised over the picture).

    Same arguments as :func:`gram_transfer`; returns (B, 3, H, W) in [0, 1].
    """
    content, style, features = _pair(content, style, features)
    with torch.no_grad():
        style_maps = features(style)
        target_stats = [mean_std(f) for f in style_maps]
        target_content = adain(features(content)[-1], style_maps[-1])

    def loss_fn(x: torch.Tensor) -> torch.Tensor:
        maps = features(x)
        style_term = sum(F.mse_loss(m, tm) + F.mse_loss(s, ts)
                         for (m, s), (tm, ts) in zip((mean_std(f) for f in maps), target_stats))
        return F.mse_loss(maps[-1], target_content) + style_weight * style_term

    return _optimise(content, style, loss_fn, steps=steps, lr=lr)
