"""Style transfer without a GAN, and one scorecard for every way of translating a picture.

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

**Scoring translations.** :func:`evaluate_translation` scores *any* function that maps pictures
of style A to style B (CycleGAN, Gram, AdaIN, or doing nothing) on held-out ShapeScenes: style
accuracy and content accuracy read by the shipped judge (trained on real renders only), L1 and
SSIM to the ground-truth rendering of the same scene in style B, FD to real style-B renders
beside the real-vs-real baseline, and, given the way back, the cycle L1.

References:
    Gatys, Ecker & Bethge 2016, "Image Style Transfer Using Convolutional Neural Networks", CVPR.
    Huang & Belongie 2017, "Arbitrary Style Transfer in Real-time with Adaptive Instance
    Normalization", https://arxiv.org/abs/1703.06868
    Ustyuzhaninov, Brendel, Gatys & Bethge 2017, "What does it take to generate natural
    textures?", ICLR, https://openreview.net/forum?id=BJhZeLsxx
    Wang, Bovik, Sheikh & Simoncelli 2004, "Image Quality Assessment: From Error Visibility to
    Structural Similarity" (SSIM).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from . import losses

__all__ = [
    "RandomFeatures",
    "vgg_features",
    "adain",
    "mean_std",
    "gram_transfer",
    "adain_transfer",
    "ssim",
    "TranslationScores",
    "judge_scores",
    "evaluate_translation",
    "fd_real_baseline",
    "evaluate_photo_translation",
]


def _check_images(x: Any, name: str) -> torch.Tensor:
    if not isinstance(x, torch.Tensor) or not x.is_floating_point() or x.dim() != 4 or x.shape[1] != 3:
        shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(f"{name} must be a floating-point (B, 3, H, W) tensor in [0, 1], got {shape}")
    if x.numel() and (x.min() < -1e-6 or x.max() > 1 + 1e-6):
        raise ValueError(f"{name} must be in [0, 1], got values in [{x.min():.3g}, {x.max():.3g}]")
    return x


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
    from torchvision.models import VGG19_Weights, vgg19

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
    content = _check_images(content, "content")
    style = _check_images(style, "style")
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


# -- SSIM ----------------------------------------------------------------------------------------

def ssim(x: torch.Tensor, y: torch.Tensor, *, window: int = 11, sigma: float = 1.5) -> torch.Tensor:
    """Structural similarity (Wang et al. 2004) of [0, 1] images, per image: (B,), 1 = identical.

    An 11×11 Gaussian window (σ = 1.5), constants K1 = 0.01, K2 = 0.03, computed per channel and
    averaged; "valid" windows only, like scikit-image with ``gaussian_weights=True``.
    """
    x, y = _check_images(x, "x"), _check_images(y, "y")
    if x.shape != y.shape:
        raise ValueError(f"x and y must have the same shape, got {tuple(x.shape)} and {tuple(y.shape)}")
    if min(x.shape[-2:]) < window:
        raise ValueError(f"images must be at least {window} px on each side for SSIM, got {tuple(x.shape[-2:])}")
    coords = torch.arange(window, dtype=x.dtype, device=x.device) - (window - 1) / 2
    g = torch.exp(-coords ** 2 / (2 * sigma ** 2))
    g = (g / g.sum())
    kernel = (g[:, None] * g[None, :]).expand(3, 1, window, window)  # (3, 1, k, k), one per channel

    def blur(t: torch.Tensor) -> torch.Tensor:
        return F.conv2d(t, kernel, groups=3)

    c1, c2 = 0.01 ** 2, 0.03 ** 2
    mu_x, mu_y = blur(x), blur(y)
    var_x = blur(x * x) - mu_x ** 2
    var_y = blur(y * y) - mu_y ** 2
    cov = blur(x * y) - mu_x * mu_y
    s = ((2 * mu_x * mu_y + c1) * (2 * cov + c2)) / ((mu_x ** 2 + mu_y ** 2 + c1) * (var_x + var_y + c2))
    return s.mean((1, 2, 3))


# -- scoring ----------------------------------------------------------------------------------------

@dataclass
class TranslationScores:
    """What :func:`evaluate_translation` measured for one method and one direction A → B."""

    method: str
    source: str
    target: str
    n: int
    style_accuracy: float  # the judge calls the translation the target style
    content_accuracy: float  # source objects the judge reads back exactly (shape, colour, size)
    scene_accuracy: float  # translations whose objects are all read back exactly
    l1_to_truth: float  # mean |translation - the same scene rendered in the target style|
    ssim_to_truth: float
    fd: float  # Fréchet distance to real target-style renders, in the features checkpoint's space
    fd_real_vs_real: float  # the same for a second set of real target-style renders
    cycle_l1: float | None = None  # mean |back(translation) - source| when a way back was given
    judge_on_truth: dict[str, float] = field(default_factory=dict)  # the judge's scores on the ground truth

    def as_dict(self) -> dict[str, Any]:
        from dataclasses import asdict

        return asdict(self)


@torch.no_grad()
def _judge_scores(judge: nn.Module, images: torch.Tensor, style_id: int, slots: torch.Tensor,
                  batch_size: int = 250) -> dict[str, float]:
    judge.eval()
    device = next(judge.parameters()).device
    style_hits = obj_hits = scene_hits = 0
    objects = int((slots > 0).sum())
    for x, s in zip(images.split(batch_size), slots.split(batch_size)):
        style_logits, slot_logits = judge(x.to(device))
        pred = slot_logits.argmax(-1).cpu()  # (B, 6)
        style_hits += int((style_logits.argmax(-1).cpu() == style_id).sum())
        obj_hits += int(((pred == s) & (s > 0)).sum())
        scene_hits += int((pred == s).all(1).sum())
    n = images.shape[0]
    return {"style": style_hits / n, "object": obj_hits / max(objects, 1), "scene": scene_hits / n}


def judge_scores(judge: nn.Module, images: torch.Tensor, style: str | int, slots: torch.Tensor) -> dict[str, float]:
    """What the scene judge reads in ``images``: ``{"style", "object", "scene"}`` accuracies.

    Args:
        judge: a :class:`~spokenstyle.models.judge.SceneJudge` (the shipped ``"judge"``).
        images: (B, 3, H, W) in [0, 1].
        style: the style the pictures should have (name or id).
        slots: (B, 6) the true colour slots (``batch["slots"]``; 0 = no object of that colour).
    Returns: the share of pictures called ``style``, of objects read exactly (shape, colour and
    size) and of scenes read exactly.
    """
    from .data.styles import style_ids

    images = _check_images(images, "images")
    if not isinstance(slots, torch.Tensor) or slots.dim() != 2 or slots.shape[0] != images.shape[0] \
            or slots.dtype.is_floating_point:
        raise ValueError(f"slots must be an integer (B, n_colours) tensor with B = {images.shape[0]}, got "
                         f"{tuple(slots.shape) if isinstance(slots, torch.Tensor) else type(slots).__name__}")
    return _judge_scores(judge, images, int(style_ids(style, 1)[0]), slots.cpu())


def evaluate_translation(translate: Callable[[torch.Tensor], torch.Tensor], style_a: str, style_b: str, *,
                         judge: nn.Module, n: int = 300, size: int = 64, back: Callable | None = None,
                         extractor: nn.Module | None = None, method: str = "translation", seed: int = 0,
                         batch_size: int = 100) -> TranslationScores:
    """Scores ``translate`` (style-A pictures in [0, 1] → style-B pictures in [0, 1]) on ``n``
    held-out scenes of the test split.

    Args:
        translate: the method; called on batches of ``batch_size`` pictures.
        style_a, style_b: the source and target styles.
        judge: a :class:`~spokenstyle.models.judge.SceneJudge` trained on real renders only
            (the shipped ``"judge"``).
        back: the way back (style B → A), for the cycle L1; ``None`` skips it.
        extractor: the FD feature network; default the shipped ``"features"`` checkpoint.
        seed: which stretch of the test split to use.
    """
    from .data import paired_batches
    from .data.styles import style_ids
    from .metrics import frechet_distance
    from .models import features as feat

    if not callable(translate):
        raise TypeError("translate must be callable: pictures (B, 3, H, W) in [0, 1] -> translations")
    if not isinstance(n, int) or isinstance(n, bool) or n < 2:
        raise ValueError(f"n must be an int >= 2 (FD needs several pictures), got {n!r}")
    sid_b = int(style_ids(style_b, 1)[0])
    batch = paired_batches(n, style_a, style_b, size, split="test", seed=seed)(0)
    source, truth, slots = batch["image_a"], batch["image_b"], batch["slots"]
    fake = torch.cat([translate(chunk).detach().float().cpu() for chunk in source.split(batch_size)])
    if fake.shape != source.shape:
        raise ValueError(f"translate returned shape {tuple(fake.shape)} for input {tuple(source.shape)}")
    scores = _judge_scores(judge, fake, sid_b, slots)
    on_truth = _judge_scores(judge, truth, sid_b, slots)
    extractor = extractor if extractor is not None else feat.feature_extractor(weights="features")
    real_1 = feat.real_renders(n, split="a", style=style_b, size=size)[0]
    real_2 = feat.real_renders(n, split="b", style=style_b, size=size)[0]
    f1, f2, ff = (feat.extract_features(extractor, x) for x in (real_1, real_2, fake.clamp(0, 1)))
    cycle = None
    if back is not None:
        rec = torch.cat([back(chunk).detach().float().cpu() for chunk in fake.split(batch_size)])
        cycle = float((rec - source).abs().mean())
    return TranslationScores(
        method=method, source=style_a, target=style_b, n=n, style_accuracy=scores["style"],
        content_accuracy=scores["object"], scene_accuracy=scores["scene"],
        l1_to_truth=float((fake - truth).abs().mean()), ssim_to_truth=float(ssim(fake.clamp(0, 1), truth).mean()),
        fd=frechet_distance(f1, ff), fd_real_vs_real=frechet_distance(f1, f2), cycle_l1=cycle,
        judge_on_truth=on_truth)


@torch.no_grad()
def fd_real_baseline(style: str, n: int, size: int = 64, *, extractor: nn.Module | None = None,
                     sets: int = 5) -> tuple[float, float]:
    """The FD a perfect translator into ``style`` would score with ``n`` pictures: the FD between
    the reference set of :func:`evaluate_translation` (split ``a``) and ``sets`` disjoint sets of
    real renders from split ``b`` (the first is the one ``evaluate_translation`` uses), as
    (mean, standard deviation). One set is one noisy draw; the spread says how far a translation's
    FD must lie above the mean to differ from real pictures."""
    from .metrics import frechet_distance
    from .models import features as feat

    if not isinstance(sets, int) or isinstance(sets, bool) or sets < 2:
        raise ValueError(f"sets must be an int >= 2 (a standard deviation needs two), got {sets!r}")
    extractor = extractor if extractor is not None else feat.feature_extractor(weights="features")
    ref = feat.extract_features(extractor, feat.real_renders(n, split="a", style=style, size=size)[0])
    fds = [frechet_distance(ref, feat.extract_features(
        extractor, feat.real_renders(n, split="b", style=style, size=size, offset=k * n)[0])) for k in range(sets)]
    t = torch.tensor(fds, dtype=torch.float64)
    return float(t.mean()), float(t.std(unbiased=True))


@torch.no_grad()
def evaluate_photo_translation(translate: Callable[[torch.Tensor], torch.Tensor], *, filter: str = "oil",
                               n: int = 200, size: int = 64, back: Callable | None = None,
                               batch_size: int = 100) -> dict[str, float]:
    """Scores a photo → painterly translation on ``n`` held-out photo patches against the
    ground truth (the same patch through the painterly ``filter``): L1 and SSIM, beside the
    do-nothing baseline (the photo itself), and the cycle L1 when ``back`` is given."""
    from .data import PhotoPatches, painterly

    if not callable(translate):
        raise TypeError("translate must be callable: photo patches (B, 3, H, W) in [0, 1] -> paintings")
    photos = PhotoPatches("test", size, length=n).batch(range(n))["image"]
    truth = painterly(photos, filter)
    fake = torch.cat([translate(chunk).detach().float().cpu() for chunk in photos.split(batch_size)])
    out = {"n": n, "l1_to_truth": float((fake - truth).abs().mean()),
           "ssim_to_truth": float(ssim(fake.clamp(0, 1), truth).mean()),
           "identity_l1_to_truth": float((photos - truth).abs().mean()),
           "identity_ssim_to_truth": float(ssim(photos, truth).mean())}
    if back is not None:
        rec = torch.cat([back(chunk).detach().float().cpu() for chunk in fake.split(batch_size)])
        out["cycle_l1"] = float((rec - photos).abs().mean())
    return out
