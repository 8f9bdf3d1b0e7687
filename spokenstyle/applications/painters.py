"""Painter-style transfer (source §6, 画家风格迁移) on the bundled photographs, measured.

No pip package ships paintings, so the "painters" here are the painterly manners that
:mod:`spokenstyle.data.photos` makes with procedural filters (oil, watercolour, pencil, and the
three manners of chapter 9: pointillist, strokes, woodblock). They approximate a manner; they
are nobody's work. Because a filter makes them, every photo patch has its ground-truth
"painting", and each method of painting a photo can be scored against the same rulers:

* **style**: the share of a method's pictures that the painter judge
  (:class:`~spokenstyle.models.painter_judge.PainterJudge`, trained on the filters' output for
  train-region patches only) reads as the manner asked for, and its mean probability for it;
* **content**: the structure kept from the source, SSIM (:func:`spokenstyle.metrics.ssim`)
  between the edge maps of the picture and of the source photo (:func:`edge_ssim`): the Sobel
  gradient magnitude of the luminance, so colours may change freely but edges must stay where
  they were;
* **time per image** of each method on the machine that runs it.

The methods (:func:`paint`): the procedural filter itself (the target), the photo unchanged
(the do-nothing floor), the CycleGAN-lite translator of that manner (:func:`translator_name`:
``cyclegan_photo`` for oil, ``cyclegan_photo_<manner>`` for the others, each trained by
``spokenstyle train cyclegan_photo --set cyclegan_photo.filter=<manner>``), and Gram and AdaIN
transfer (:mod:`spokenstyle.stylization`) from a painted patch of *another* crop as the style
picture.

:func:`load_paintings` reads real paintings in CycleGAN's folder layout (monet2photo, ...,
``trainA/trainB/testA/testB``) for readers who download one (:func:`spokenstyle.data.extras.download_cyclegan`).
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable

import torch
import torch.nn.functional as F

from .. import checkpoints, stylization
from ..data.extras import CycleGANFolder
from ..data.photos import ALL_FILTERS, PhotoPatches, painterly
from ..data.splits import PHOTO_SPLITS
from ..metrics import check_unit_images, ssim
from ..models.cyclegan import CycleGAN
from ..models.painter_judge import PainterJudge

__all__ = [
    "METHODS",
    "edge_map",
    "edge_ssim",
    "translator_name",
    "load_translator",
    "style_pictures",
    "MannerScore",
    "paint",
    "score_manner",
    "compare_methods",
    "load_paintings",
]

METHODS: tuple[str, ...] = ("filter", "photo", "CycleGAN", "Gram", "AdaIN")
"""The rows of the comparison: the manner's own filter (the target), the photo unchanged (the
floor), the translator, and the two optimisation baselines."""

_STYLE_OFFSET = 500_000  # style pictures: train-region patches from here on (the judge trained on the first ones)


def edge_map(images: torch.Tensor) -> torch.Tensor:
    """(B, 3, H, W) in [0, 1]: the Sobel gradient magnitude of the luminance (kernels divided by
    4, so a step from black to white gives 1 across it), over √2 so it stays in [0, 1], repeated
    in three channels for :func:`spokenstyle.metrics.ssim`."""
    images = check_unit_images(images, "images")
    lum = 0.299 * images[:, 0:1] + 0.587 * images[:, 1:2] + 0.114 * images[:, 2:3]
    kx = torch.tensor([[-1.0, 0, 1], [-2, 0, 2], [-1, 0, 1]], dtype=images.dtype, device=images.device) / 4
    padded = F.pad(lum, (1, 1, 1, 1), mode="replicate")
    gx = F.conv2d(padded, kx.view(1, 1, 3, 3))
    gy = F.conv2d(padded, kx.T.reshape(1, 1, 3, 3))
    return (torch.sqrt(gx * gx + gy * gy) / 2 ** 0.5).clamp(0, 1).expand(-1, 3, -1, -1)


def edge_ssim(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """(B,) SSIM between the edge maps (:func:`edge_map`) of ``a`` and ``b``: 1 = the same edges."""
    return ssim(edge_map(a), edge_map(b))


def translator_name(manner: str) -> str:
    """The shipped CycleGAN-lite of ``manner``: ``cyclegan_photo`` (oil, chapter 5) or ``cyclegan_photo_<manner>``."""
    if manner not in ALL_FILTERS:
        raise ValueError(f"unknown manner {manner!r}; expected one of {tuple(ALL_FILTERS)}")
    return "cyclegan_photo" if manner == "oil" else f"cyclegan_photo_{manner}"


def load_translator(manner: str, device: torch.device | str | None = None) -> CycleGAN | None:
    """The shipped translator of ``manner``, or ``None`` when none is shipped (the command that
    makes one is in chapter 9)."""
    name = translator_name(manner)
    if name not in checkpoints.shipped():
        return None
    return CycleGAN.from_pretrained(name, device=device)


def style_pictures(manner: str, n: int, size: int = 64) -> torch.Tensor:
    """(n, 3, size, size): painted train-region patches of other crops, one style picture per
    photo for Gram and AdaIN (patches from :data:`_STYLE_OFFSET` on, beyond the painter judge's)."""
    if manner not in ALL_FILTERS:
        raise ValueError(f"unknown manner {manner!r}; expected one of {tuple(ALL_FILTERS)}")
    lo, hi = PHOTO_SPLITS["train"]
    crops = PhotoPatches("train", size, length=hi - lo).batch(list(range(_STYLE_OFFSET, _STYLE_OFFSET + n)))["image"]
    return painterly(crops, manner)


@dataclass
class MannerScore:
    """One method painting ``n`` photos in one manner, and what the rulers read."""

    manner: str
    method: str
    n: int
    style_accuracy: float  # share the painter judge reads as ``manner``
    style_probability: float  # its mean probability for ``manner``
    edge_ssim: float  # mean SSIM of edge maps against the source photos
    seconds_per_image: float | None  # None: the method was not run (no translator shipped)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def paint(method: str, photos: torch.Tensor, manner: str, *, translator: CycleGAN | None = None,
          features: torch.nn.Module | None = None, steps: int = 150, lr: float = 0.05) -> torch.Tensor | None:
    """``photos`` painted in ``manner`` by ``method`` (one of :data:`METHODS`); ``None`` for
    "CycleGAN" when no ``translator`` is given. Gram and AdaIN use :func:`style_pictures` and
    ``features`` (default :class:`~spokenstyle.stylization.RandomFeatures`)."""
    photos = check_unit_images(photos, "photos")
    if method == "filter":
        return painterly(photos, manner)
    if method == "photo":
        return photos.clone()
    if method == "CycleGAN":
        if translator is None:
            return None
        device = next(translator.G_AB.parameters()).device
        return translator.G_AB.translate(photos.to(device)).float().cpu().clamp(0, 1)
    if method in ("Gram", "AdaIN"):
        style = style_pictures(manner, photos.shape[0], photos.shape[-1])
        transfer = stylization.gram_transfer if method == "Gram" else stylization.adain_transfer
        return transfer(photos, style, features=features, steps=steps, lr=lr).float().cpu().clamp(0, 1)
    raise ValueError(f"unknown method {method!r}; expected one of {METHODS}")


@torch.no_grad()
def score_manner(judge: PainterJudge, images: torch.Tensor, sources: torch.Tensor, manner: str) -> dict[str, float]:
    """What the rulers read in ``images`` painted from ``sources`` in ``manner``: style accuracy,
    mean style probability, mean edge SSIM."""
    probs = judge.read(images)
    k = judge.index(manner)
    return {"style_accuracy": float((probs.argmax(-1) == k).float().mean()),
            "style_probability": float(probs[:, k].mean()), "edge_ssim": float(edge_ssim(images, sources).mean())}


def compare_methods(judge: PainterJudge, photos: torch.Tensor, manners: tuple[str, ...] = tuple(ALL_FILTERS), *,
                    methods: tuple[str, ...] = METHODS, translators: dict[str, CycleGAN | None] | None = None,
                    features: torch.nn.Module | None = None, steps: int = 150, lr: float = 0.05,
                    on_result: Callable[[MannerScore, torch.Tensor | None], None] | None = None) -> list[MannerScore]:
    """Every method in every manner on the same ``photos``: a list of :class:`MannerScore`
    (``seconds_per_image`` is wall time on this machine). ``translators`` maps a manner to its
    translator (default: :func:`load_translator`); ``on_result(score, images)`` sees each
    method's pictures as they come (e.g. to keep them for a figure)."""
    photos = check_unit_images(photos, "photos")
    features = features if features is not None else stylization.RandomFeatures()
    rows = []
    for manner in manners:
        translator = (translators or {}).get(manner) if translators is not None else load_translator(manner)
        for method in methods:
            start = time.perf_counter()
            images = paint(method, photos, manner, translator=translator, features=features, steps=steps, lr=lr)
            seconds = (time.perf_counter() - start) / photos.shape[0]
            if images is None:
                row = MannerScore(manner, method, 0, float("nan"), float("nan"), float("nan"), None)
            else:
                row = MannerScore(manner, method, photos.shape[0], **score_manner(judge, images, photos, manner),
                                  seconds_per_image=seconds)
            rows.append(row)
            if on_result is not None:
                on_result(row, images)
    return rows


def load_paintings(root: str | Path, *, split: str = "train", domain: str = "A", n: int = 8,
                   size: int = 64) -> torch.Tensor:
    """(n, 3, size, size): the first ``n`` pictures of one domain of a dataset in CycleGAN's
    layout (``root/trainA``, ...: for monet2photo, domain A is Monet's paintings), read with
    :class:`spokenstyle.data.extras.CycleGANFolder` (any image mode, resized and centre-cropped).

    Raises:
        ValueError: ``n`` is not a positive int, or the folder holds fewer than ``n`` pictures.
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be a positive int, got {n!r}")
    folder = CycleGANFolder(root, split, domain, size=size)
    if len(folder) < n:
        raise ValueError(f"{root} {split}{domain} holds {len(folder)} pictures; asked for {n}")
    return torch.stack([folder[i]["image"] for i in range(n)])
