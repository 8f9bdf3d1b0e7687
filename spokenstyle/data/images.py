"""Pictures in, tensors out: every kind of picture a reader may hand the package, as (B, 3, H, W).

:func:`as_images` is the one converter behind the pipeline, the captioner, the widgets and the
command line: paths, PIL images of any mode and size, arrays, tensors, and ``"scene:SEED:STYLE"``
(a ShapeScenes render, :func:`scene_picture`) all become float32 tensors in [0, 1].
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, UnidentifiedImageError

from ..render import to_pil
from .scenes import sample_scenes
from .styles import STYLES, render

__all__ = ["IMAGE_SIZE", "SCENE_SPEC", "as_images", "scene_picture"]

IMAGE_SIZE = 64  # every model of the book works at 64 px (the judges resize for themselves)
DETAIL = 16  # a picture's short side may be up to DETAIL × size before as_images box-reduces it first
SCENE_SPEC = re.compile(r"scene:(\d+)(?::([a-z]+|\d))?")  # "scene:SEED" or "scene:SEED:STYLE"


def scene_picture(seed: int, style: str | int | None = None, size: int = IMAGE_SIZE) -> torch.Tensor:
    """ShapeScenes scene ``seed`` drawn in ``style`` (default: ``seed % 6``): (1, 3, size, size)."""
    if not isinstance(seed, int) or isinstance(seed, bool) or not 0 <= seed < 2**63:
        raise ValueError(f"a scene seed is an int from 0 to 2**63 - 1, got {seed!r}")
    if style is None:
        style = seed % len(STYLES)
    if isinstance(style, str) and style.isdigit():
        style = int(style)
    if isinstance(style, str) and style not in STYLES:
        raise ValueError(f"unknown style {style!r}; choose one of {STYLES}")
    if isinstance(style, int) and not 0 <= style < len(STYLES):
        raise ValueError(f"style id must be in [0, {len(STYLES)}), got {style}")
    return render(sample_scenes([seed]), style, size)


def _resize(x: torch.Tensor, size: int, crop: bool = True) -> torch.Tensor:
    """(B, 3, H, W) → (B, 3, size, size): the centre square (with ``crop``), then an antialiased resize."""
    h, w = x.shape[-2:]
    if crop and h != w:
        s = min(h, w)
        top, left = (h - s) // 2, (w - s) // 2
        x = x[..., top: top + s, left: left + s]
    if tuple(x.shape[-2:]) != (size, size):
        x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
    return x.clamp(0, 1)


def _reduction(height: int, width: int, size: int) -> int:
    """The integer factor that brings a picture whose short side is over ``DETAIL × size``
    down to a short side of at least ``DETAIL / 2 × size`` (1: leave it)."""
    short = min(height, width)
    return short // (DETAIL // 2 * size) if short > DETAIL * size else 1


def _to_float_rgb(raw: torch.Tensor) -> torch.Tensor:
    """(B, C, h, W) uint8 (0…255) or float ([0, 1]) with C in (1, 3, 4) → float32 (B, 3, h, W);
    transparency is flattened onto white, one channel is grey."""
    x = raw.float() / 255.0 if raw.dtype == torch.uint8 else raw.float()
    if x.shape[1] == 4:
        x = x[:, :3] * x[:, 3:] + (1.0 - x[:, 3:])
    return x.expand(-1, 3, -1, -1) if x.shape[1] == 1 else x


def _float_rgb(raw: torch.Tensor, size: int) -> torch.Tensor:
    """:func:`_to_float_rgb` of a whole batch; a picture over ``DETAIL × size`` is box-averaged
    by :func:`_reduction`'s factor as it goes, a band of rows at a time, so neither the float
    copy of a 10,000 px picture nor its antialiased resize is ever made in full."""
    k = _reduction(raw.shape[-2], raw.shape[-1], size)
    if k == 1:
        return _to_float_rgb(raw)
    rows = max(1, 2**22 // (k * raw.shape[-1] * raw.shape[0])) * k  # ~16 MB of floats a band
    height, width = raw.shape[-2] // k * k, raw.shape[-1] // k * k
    return torch.cat([F.avg_pool2d(_to_float_rgb(raw[..., top: min(top + rows, height), :width]), k)
                      for top in range(0, height, rows)], dim=-2)


def _from_pil(image: Any, size: int) -> torch.Tensor:
    pil = to_pil(image)  # any mode → RGB (transparency on white, 16-bit scaled)
    k = _reduction(pil.height, pil.width, size)
    if k > 1:
        pil = pil.reduce(k)  # before the float copy, which takes 4 bytes a channel
    return torch.from_numpy(np.asarray(pil, dtype=np.float32) / 255.0).permute(2, 0, 1)[None]


def _from_array(a: np.ndarray, name: str, size: int) -> torch.Tensor:
    if a.dtype == np.bool_ or a.dtype.kind not in "uif":
        raise TypeError(f"{name}: an array image must be uint8 or float in [0, 1], got dtype {a.dtype}")
    if a.ndim == 2:
        a = a[..., None]
    if a.ndim == 3:
        a = a[None]
    if a.ndim != 4 or a.shape[-1] not in (1, 3, 4):
        raise ValueError(f"{name}: an array image must be (H, W), (H, W, C) or (B, H, W, C) with C in (1, 3, 4), "
                         f"got shape {a.shape}")
    if a.dtype.kind == "f":
        if a.dtype.itemsize < 4:  # float16: torch takes it, but it is checked and averaged as float32
            a = a.astype(np.float32)
        if not np.isfinite(a).all() or (a.size and (a.min() < -1e-3 or a.max() > 1 + 1e-3)):
            raise ValueError(f"{name}: a float array image must hold finite values in [0, 1] "
                             f"(got [{np.nanmin(a):.3g}, {np.nanmax(a):.3g}]); uint8 arrays may hold 0…255")
    elif a.dtype != np.uint8:
        raise TypeError(f"{name}: an integer array image must be uint8 (0…255), got dtype {a.dtype}")
    if a.size == 0:
        raise ValueError(f"{name}: the picture is empty (shape {a.shape})")
    raw = torch.from_numpy(np.ascontiguousarray(a)).permute(0, 3, 1, 2)  # a view: no copy of a contiguous array
    return _float_rgb(raw, size)


def _from_tensor(t: torch.Tensor, name: str, size: int) -> torch.Tensor:
    t = t.detach()
    if t.dim() == 3:
        t = t[None]
    if t.dim() != 4 or t.shape[1] not in (1, 3):
        raise ValueError(f"{name}: a tensor image must be (3, H, W) or (B, 3, H, W) (1 channel is grey), "
                         f"got shape {tuple(t.shape)}")
    if t.is_floating_point():
        if t.numel() and (not torch.isfinite(t).all() or t.min() < -1e-3 or t.max() > 1 + 1e-3):
            raise ValueError(f"{name}: a float tensor image must hold finite values in [0, 1]; a generator's "
                             "tanh output needs (x + 1) / 2 first")
    elif t.dtype != torch.uint8:
        raise TypeError(f"{name}: a tensor image must be float in [0, 1] or uint8, got {t.dtype}")
    if t.numel() == 0:
        raise ValueError(f"{name}: the picture is empty (shape {tuple(t.shape)})")
    return _float_rgb(t, size)


def as_images(images: Any, size: int = IMAGE_SIZE, *, name: str = "images", crop: bool = True,
              device: torch.device | str = "cpu") -> torch.Tensor:
    """Any picture input → float32 (B, 3, size, size) in [0, 1] on ``device`` (default the CPU).

    Accepts: a path (str or ``Path``) to an image file; ``"scene:SEED"`` or
    ``"scene:SEED:STYLE"`` (a ShapeScenes render, see :func:`scene_picture`); a PIL image of any
    mode (L, RGB, RGBA, P, I;16, CMYK, …); a numpy array (H, W), (H, W, C) or (B, H, W, C),
    uint8 or float in [0, 1]; a tensor (3, H, W) or (B, 3, H, W), float in [0, 1] or uint8; or a
    list/tuple of any of these (a batch). Non-square pictures are cropped to their centre square
    (``crop=False``: stretched); every picture is resized to ``size``.

    Bounds: a picture whose short side is over ``16 × size`` (1,024 px at 64) is first
    box-reduced by an integer factor to a short side of at least ``8 × size``, before any full
    float copy is made (JPEGs are decoded at reduced scale; arrays and tensors are averaged a
    band of rows at a time), so the extra memory is about 16 MB whatever the input. Files over
    PIL's decompression-bomb limit (about 179 megapixels) are refused.

    Raises:
        TypeError: an unsupported kind of input or dtype.
        ValueError: a missing file, an unreadable or over-large image, a bad shape, values
            outside [0, 1], an empty picture or an empty list.
    """
    if isinstance(size, bool) or not isinstance(size, int) or not 1 <= size <= 1024:
        raise ValueError(f"size must be an int from 1 to 1024 (pixels), got {size!r}")
    if isinstance(images, (list, tuple)):
        if not images:
            raise ValueError(f"{name} is an empty list; give at least one picture")
        return torch.cat([as_images(im, size, name=f"{name}[{i}]", crop=crop, device=device)
                          for i, im in enumerate(images)])
    if isinstance(images, str) and images.startswith("scene:"):
        m = SCENE_SPEC.fullmatch(images)
        if not m:
            raise ValueError(f"{name}: {images!r} is not 'scene:SEED' or 'scene:SEED:STYLE' (e.g. 'scene:7:neon')")
        try:
            x = scene_picture(int(m.group(1)), m.group(2))
        except ValueError as err:
            raise ValueError(f"{name}: {images!r}: {err}") from None
    elif isinstance(images, (str, Path)):
        path = Path(images)
        if not path.is_file():
            raise ValueError(f"{name}: no image file at {str(path)!r}")
        try:
            with Image.open(path) as im:
                k = _reduction(im.height, im.width, size)
                if k > 1:  # a JPEG decodes straight at 1/2, 1/4 or 1/8 scale, never below the size asked
                    im.draft("RGB", (im.width // k, im.height // k))
                im.load()
                x = _from_pil(im, size)
        except Image.DecompressionBombError as err:
            raise ValueError(f"{name}: {str(path)!r} is too large to decode safely ({err}); scale it down "
                             "first") from None
        except (UnidentifiedImageError, OSError) as err:
            raise ValueError(f"{name}: {str(path)!r} is not a readable image ({err})") from err
    elif isinstance(images, Image.Image):
        try:
            x = _from_pil(images, size)
        except ValueError as err:
            raise ValueError(f"{name}: {err}") from None
    elif isinstance(images, np.ndarray):
        x = _from_array(images, name, size)
    elif isinstance(images, torch.Tensor):
        x = _from_tensor(images, name, size)
    else:
        raise TypeError(f"{name} must be a path, 'scene:SEED:STYLE', a PIL image, a numpy array, a tensor or a list "
                        f"of them; got {type(images).__name__}")
    if x.shape[0] == 0 or x.shape[-1] == 0 or x.shape[-2] == 0:
        raise ValueError(f"{name}: the picture is empty (shape {tuple(x.shape)})")
    return _resize(x.float(), size, crop).to(device)  # a tensor is converted where it lies
