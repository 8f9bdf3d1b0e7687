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
SCENE_SPEC = re.compile(r"scene:(\d+)(?::([a-z]+|\d))?")  # "scene:SEED" or "scene:SEED:STYLE"


def scene_picture(seed: int, style: str | int | None = None, size: int = IMAGE_SIZE) -> torch.Tensor:
    """ShapeScenes scene ``seed`` drawn in ``style`` (default: ``seed % 6``): (1, 3, size, size)."""
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"a scene seed is an int ≥ 0, got {seed!r}")
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


def _from_pil(image: Any) -> torch.Tensor:
    pil = to_pil(image)  # any mode → RGB (transparency on white, 16-bit scaled)
    return torch.from_numpy(np.asarray(pil, dtype=np.float32) / 255.0).permute(2, 0, 1)[None]


def _from_array(a: np.ndarray, name: str) -> torch.Tensor:
    if a.dtype == np.bool_ or a.dtype.kind not in "uif":
        raise TypeError(f"{name}: an array image must be uint8 or float in [0, 1], got dtype {a.dtype}")
    if a.ndim == 2:
        a = a[..., None]
    if a.ndim == 3:
        a = a[None]
    if a.ndim != 4 or a.shape[-1] not in (1, 3, 4):
        raise ValueError(f"{name}: an array image must be (H, W), (H, W, C) or (B, H, W, C) with C in (1, 3, 4), "
                         f"got shape {a.shape}")
    if a.dtype == np.uint8:
        x = a.astype(np.float32) / 255.0
    elif a.dtype.kind == "f":
        x = a.astype(np.float32)
        if not np.isfinite(x).all() or (x.size and (x.min() < -1e-3 or x.max() > 1 + 1e-3)):
            raise ValueError(f"{name}: a float array image must hold finite values in [0, 1] "
                             f"(got [{np.nanmin(x):.3g}, {np.nanmax(x):.3g}]); uint8 arrays may hold 0…255")
    else:
        raise TypeError(f"{name}: an integer array image must be uint8 (0…255), got dtype {a.dtype}")
    if x.shape[-1] == 4:  # transparency onto white
        x = x[..., :3] * x[..., 3:] + (1.0 - x[..., 3:])
    t = torch.from_numpy(np.ascontiguousarray(x)).permute(0, 3, 1, 2)
    return t.expand(-1, 3, -1, -1) if t.shape[1] == 1 else t


def _from_tensor(t: torch.Tensor, name: str) -> torch.Tensor:
    t = t.detach()
    if t.dim() == 3:
        t = t[None]
    if t.dim() != 4 or t.shape[1] not in (1, 3):
        raise ValueError(f"{name}: a tensor image must be (3, H, W) or (B, 3, H, W) (1 channel is grey), "
                         f"got shape {tuple(t.shape)}")
    if t.dtype == torch.uint8:
        t = t.float() / 255.0
    elif t.is_floating_point():
        t = t.float()
        if t.numel() and (not torch.isfinite(t).all() or t.min() < -1e-3 or t.max() > 1 + 1e-3):
            raise ValueError(f"{name}: a float tensor image must hold finite values in [0, 1]; a generator's "
                             "tanh output needs (x + 1) / 2 first")
    else:
        raise TypeError(f"{name}: a tensor image must be float in [0, 1] or uint8, got {t.dtype}")
    return t.expand(-1, 3, -1, -1) if t.shape[1] == 1 else t


def as_images(images: Any, size: int = IMAGE_SIZE, *, name: str = "images", crop: bool = True,
              device: torch.device | str = "cpu") -> torch.Tensor:
    """Any picture input → float32 (B, 3, size, size) in [0, 1] on ``device`` (default the CPU).

    Accepts: a path (str or ``Path``) to an image file; ``"scene:SEED"`` or
    ``"scene:SEED:STYLE"`` (a ShapeScenes render, see :func:`scene_picture`); a PIL image of any
    mode (L, RGB, RGBA, P, I;16, CMYK, …); a numpy array (H, W), (H, W, C) or (B, H, W, C),
    uint8 or float in [0, 1]; a tensor (3, H, W) or (B, 3, H, W), float in [0, 1] or uint8; or a
    list/tuple of any of these (a batch). Non-square pictures are cropped to their centre square
    (``crop=False``: stretched); every picture is resized to ``size``.

    Raises:
        TypeError: an unsupported kind of input or dtype.
        ValueError: a missing file, an unreadable image, a bad shape, values outside [0, 1],
            an empty picture or an empty list.
    """
    if isinstance(images, (list, tuple)):
        if not images:
            raise ValueError(f"{name} is an empty list; give at least one picture")
        return torch.cat([as_images(im, size, name=f"{name}[{i}]", crop=crop, device=device)
                          for i, im in enumerate(images)])
    if isinstance(images, str) and images.startswith("scene:"):
        m = SCENE_SPEC.fullmatch(images)
        if not m:
            raise ValueError(f"{name}: {images!r} is not 'scene:SEED' or 'scene:SEED:STYLE' (e.g. 'scene:7:neon')")
        x = scene_picture(int(m.group(1)), m.group(2))
    elif isinstance(images, (str, Path)):
        path = Path(images)
        if not path.is_file():
            raise ValueError(f"{name}: no image file at {str(path)!r}")
        try:
            with Image.open(path) as im:
                im.load()
                x = _from_pil(im)
        except (UnidentifiedImageError, OSError) as err:
            raise ValueError(f"{name}: {str(path)!r} is not a readable image ({err})") from err
    elif isinstance(images, Image.Image):
        x = _from_pil(images)
    elif isinstance(images, np.ndarray):
        x = _from_array(images, name)
    elif isinstance(images, torch.Tensor):
        x = _from_tensor(images, name)
    else:
        raise TypeError(f"{name} must be a path, 'scene:SEED:STYLE', a PIL image, a numpy array, a tensor or a list "
                        f"of them; got {type(images).__name__}")
    if x.shape[0] == 0 or x.shape[-1] == 0 or x.shape[-2] == 0:
        raise ValueError(f"{name}: the picture is empty (shape {tuple(x.shape)})")
    return _resize(x.float(), size, crop).to(device)  # a tensor is converted where it lies
