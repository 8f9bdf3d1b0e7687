"""ipywidgets front ends that also work in the static book.

A widget whose behaviour lives in Python (an ``observe`` callback) is dead in static HTML: no
kernel answers it. The widgets here link their parts in the browser (``jslink``), so that the
saved widget state carries the whole interaction: a reader of the HTML book clicks and sees
the same thing a Colab user sees. The book serves the widget JavaScript itself (no CDN).
"""

from __future__ import annotations

import io
from typing import Any, Mapping

import numpy as np
import torch

__all__ = ["to_png", "image_switcher"]


def to_png(image: Any, *, scale: int = 1) -> bytes:
    """PNG bytes of one image: a (3, H, W) / (H, W, 3) tensor or array in [0, 1], or a PIL image."""
    from PIL import Image

    if isinstance(image, Image.Image):
        pil = image.convert("RGB")
    else:
        array = image.detach().cpu().numpy() if isinstance(image, torch.Tensor) else np.asarray(image)
        if array.ndim == 3 and array.shape[0] in (1, 3) and array.shape[-1] not in (1, 3):
            array = array.transpose(1, 2, 0)  # CHW -> HWC
        if array.ndim != 3 or array.shape[-1] not in (1, 3):
            raise ValueError(f"expected one image (3, H, W) or (H, W, 3), got shape {array.shape}")
        if array.dtype != np.uint8:
            array = (np.clip(array, 0.0, 1.0) * 255).round().astype(np.uint8)
        pil = Image.fromarray(array.squeeze(-1) if array.shape[-1] == 1 else array)
    if not isinstance(scale, int) or scale < 1:
        raise ValueError(f"scale must be a positive int, got {scale!r}")
    if scale > 1:
        pil = pil.resize((pil.width * scale, pil.height * scale), Image.NEAREST)
    buffer = io.BytesIO()
    pil.save(buffer, format="PNG")
    return buffer.getvalue()


def image_switcher(images: Mapping[str, Any], *, description: str = "", scale: int = 1):
    """Buttons that switch between labelled images, linked in the browser (works in static HTML).

    Args:
        images: label -> image (tensor/array in [0, 1], or PIL).
        description: a label shown before the buttons.
        scale: integer upscaling (nearest neighbour) so small renders are visible.
    Returns:
        an ``ipywidgets.VBox``; the last expression of a cell displays it.
    """
    import ipywidgets as widgets

    if not images:
        raise ValueError("image_switcher needs at least one image")
    labels = list(images)
    pictures = [widgets.Image(value=to_png(images[k], scale=scale), format="png") for k in labels]
    buttons = widgets.ToggleButtons(options=labels, description=description, value=labels[0])
    stack = widgets.Stack(pictures, selected_index=0)
    box = widgets.VBox([buttons, stack])
    box.link = widgets.jslink((buttons, "index"), (stack, "selected_index"))  # kept for inspection
    return box
