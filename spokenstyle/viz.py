"""Pictures of what the models do: image grids, training curves, animations.

Everything here returns or shows matplotlib figures, because a figure is what survives into
the static HTML book. Animations use ``FuncAnimation.to_jshtml()``: the frames are embedded in
the page with their own play controls, so motion works for a reader who runs nothing.
Plotting never lives inside a training loop: the trainer calls a callback, the callback calls
these functions.
"""

from __future__ import annotations

import re
import textwrap

from typing import Any, Callable, Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch
from IPython import get_ipython
from IPython.display import HTML, display
from matplotlib import animation
from torchvision.utils import make_grid

from .data import STYLES

__all__ = ["image_grid", "show_grid", "plot_history", "animate", "LiveHistory", "show_steps"]


def _as_batch(images: Any) -> torch.Tensor:
    if isinstance(images, np.ndarray):
        images = torch.from_numpy(images)
    if isinstance(images, (list, tuple)):
        if not images:
            raise ValueError("no images to show: the list is empty")
        images = torch.stack([torch.from_numpy(im) if isinstance(im, np.ndarray) else im for im in images])
    if not isinstance(images, torch.Tensor):
        raise TypeError(f"images must be a tensor, array or list of them, got {type(images).__name__}")
    if images.dim() == 3:
        images = images.unsqueeze(0)
    if images.dim() != 4 or images.shape[1] not in (1, 3):
        raise ValueError(f"images must be (B, C, H, W) or (C, H, W) with C in (1, 3), got shape {tuple(images.shape)}")
    return images.detach().float().cpu()


def image_grid(images: Any, nrow: int = 8, *, value_range: tuple[float, float] = (0.0, 1.0),
               padding: int = 2) -> np.ndarray:
    """A (H, W, 3) uint8 array of ``images`` tiled ``nrow`` per row (torchvision's ``make_grid``).

    Args:
        images: (B, C, H, W) or (C, H, W) tensor/array, or a list of (C, H, W).
        value_range: the range the pixel values live in: (0, 1) for renders, (-1, 1) for
            generator outputs (tanh).
    """
    batch = _as_batch(images)
    lo, hi = value_range
    if not hi > lo:
        raise ValueError(f"value_range must be (low, high) with high > low, got {value_range}")
    batch = ((batch - lo) / (hi - lo)).clamp(0, 1)
    grid = make_grid(batch, nrow=nrow, padding=padding, pad_value=1.0)  # (3, H', W')
    return (grid.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)


def show_grid(images: Any, nrow: int = 8, *, title: str | None = None, ax: plt.Axes | None = None,
              value_range: tuple[float, float] = (0.0, 1.0), figsize: tuple[float, float] | None = None) -> plt.Axes:
    """Shows ``images`` as one grid on ``ax`` (a new figure when None) and returns the axis."""
    grid = image_grid(images, nrow, value_range=value_range)
    if ax is None:
        height, width = grid.shape[:2]
        _, ax = plt.subplots(figsize=figsize or (min(12, width / 40), min(12, height / 40) + (0.4 if title else 0)))
    ax.imshow(grid, interpolation="nearest")
    ax.set_axis_off()
    if title:
        ax.set_title(title)
    return ax


def _smooth(values: np.ndarray, window: int) -> np.ndarray:
    if window <= 1 or len(values) < window:
        return values
    kernel = np.ones(window) / window
    return np.convolve(values, kernel, mode="valid")


def plot_history(history: Mapping[str, Sequence[float]], keys: Sequence[str] | None = None, *,
                 ax: plt.Axes | None = None, title: str | None = None, smooth: int = 1,
                 logy: bool = False) -> plt.Axes:
    """Training curves of ``keys`` (default: every key but ``step``) against the step.

    ``smooth`` > 1 draws a moving average of that window over the raw curve (drawn faintly).
    """
    if "step" not in history:
        raise ValueError("history has no 'step' column; pass the History returned by Trainer.fit")
    keys = list(keys) if keys is not None else [k for k in history if k != "step"]
    missing = [k for k in keys if k not in history]
    if missing:
        raise KeyError(f"history has no {missing}; it has {[k for k in history if k != 'step']}")
    if ax is None:
        _, ax = plt.subplots(figsize=(6, 3.5))
    steps = np.asarray(history["step"], dtype=float)
    for key in keys:
        values = np.asarray(history[key], dtype=float)
        smoothed = smooth > 1 and len(values) >= smooth  # too few points yet: the raw curve is the curve
        line, = ax.plot(steps[: len(values)], values, alpha=0.3 if smoothed else 1.0,
                        label=None if smoothed else key)
        if smoothed:
            ax.plot(steps[smooth - 1: len(values)], _smooth(values, smooth), color=line.get_color(), label=key)
    ax.set_xlabel("step")
    if logy:
        ax.set_yscale("log")
    if keys:
        ax.legend(frameon=False)
    if title:
        ax.set_title(title)
    return ax


def animate(frames: Sequence[Any], draw: Callable[[plt.Axes, Any, int], None], *, interval: int = 200,
            figsize: tuple[float, float] = (4, 4), title: str | None = None, embed_limit_mb: float = 30.0):
    """An HTML animation of ``frames`` that plays in the static book (``to_jshtml``).

    Args:
        frames: what to draw, one item per frame (sample batches, grids, arrays...).
        draw: ``draw(ax, frame, i)`` draws frame ``i`` on a cleared axis.
        interval: milliseconds between frames.
    Returns:
        ``IPython.display.HTML``: the last expression of a cell shows it.
    """
    if len(frames) == 0:
        raise ValueError("animate needs at least one frame")
    plt.rcParams["animation.embed_limit"] = embed_limit_mb
    fig, ax = plt.subplots(figsize=figsize)

    def update(i: int):
        ax.clear()
        draw(ax, frames[i], i)
        if title:
            ax.set_title(title.format(i=i))
        return []

    anim = animation.FuncAnimation(fig, update, frames=len(frames), interval=interval, blit=False)
    html = HTML(_offline_controls(anim.to_jshtml(default_mode="once")))
    plt.close(fig)
    return html


# matplotlib's player draws its buttons with Font Awesome icons from a CDN stylesheet. The book
# renders offline, so the stylesheet link goes; and Unicode symbols (⏮ ⏸ ⏭ …) show as empty boxes
# in a browser whose fonts lack them, so each icon becomes a small inline SVG, which every browser
# draws. Paths are in a 16 x 16 box, filled with the button's text colour.
def _svg(*paths: str, label: str) -> str:
    body = "".join(f'<path d="{d}"/>' for d in paths)
    return (f'<svg class="spokenstyle-icon" width="14" height="14" viewBox="0 0 16 16" fill="currentColor" '
            f'role="img" aria-label="{label}"><title>{label}</title>{body}</svg>')


_TRIANGLE_RIGHT, _TRIANGLE_LEFT = "M4 2v12l10-6z", "M12 2v12L2 8z"
_ICONS = {
    "fa-minus": _svg("M2 7h12v2H2z", label="slower"),
    "fa-fast-backward": _svg("M1 2h2v12H1z", "M9 2v12L3 8z", "M15 2v12L9 8z", label="first frame"),
    "fa-step-backward": _svg("M3 2h2v12H3z", "M14 2v12L6 8z", label="previous frame"),
    "fa-play fa-flip-horizontal": _svg(_TRIANGLE_LEFT, label="play backwards"),
    "fa-pause": _svg("M3 2h4v12H3z", "M9 2h4v12H9z", label="pause"),
    "fa-play": _svg(_TRIANGLE_RIGHT, label="play"),
    "fa-step-forward": _svg("M2 2v12l8-6z", "M11 2h2v12h-2z", label="next frame"),
    "fa-fast-forward": _svg("M1 2v12l6-6z", "M7 2v12l6-6z", "M13 2h2v12h-2z", label="last frame"),
    "fa-plus": _svg("M7 2h2v5h5v2H9v5H7V9H2V7h5z", label="faster"),
}


def _offline_controls(html: str) -> str:
    """``to_jshtml`` output without the Font Awesome CDN stylesheet, each icon an inline SVG."""
    html = re.sub(r'<link rel="stylesheet"\s+href="https?://[^"]*font-awesome[^"]*">', "", html)
    for icon, symbol in _ICONS.items():
        html = html.replace(f'<i class="fa {icon}"></i>', symbol)
    return html


class LiveHistory:
    """A trainer callback that redraws the training curves in place while a notebook trains.

    In the built book only the final drawing remains, which is the figure a reader wants.
    Outside a notebook it does nothing.
    """

    def __init__(self, keys: Sequence[str] | None = None, *, smooth: int = 1, title: str | None = None) -> None:
        self.keys, self.smooth, self.title = keys, smooth, title
        self._handle = None

    def __call__(self, trainer: Any, step: int) -> None:
        if get_ipython() is None or not trainer.history.get("step"):
            return
        fig, ax = plt.subplots(figsize=(6, 3.5))
        plot_history(trainer.history, self.keys, ax=ax, smooth=self.smooth,
                     title=self.title or f"step {step}")
        if self._handle is None:
            self._handle = display(fig, display_id=True)
        else:
            self._handle.update(fig)
        plt.close(fig)


def show_steps(output: Any, index: int = 0, *, figsize: tuple[float, float] = (15, 3.6)) -> plt.Figure:
    """The five steps of one pair of a :class:`spokenstyle.pipeline.SpokenStyleOutput` in one
    figure: source and target (1), the re-generated source (2), F's picture and the composed
    picture (4), with the sentence (3) and the judges' scores (5) in the titles."""
    n = len(output.sentences)
    if not isinstance(index, int) or not 0 <= index < n:
        raise ValueError(f"index must be an int in [0, {n}), got {index!r}")
    fig, axes = plt.subplots(1, 5, figsize=figsize, gridspec_kw={"width_ratios": [1, 1, 1, 1, 1.25]})
    panels = [("1. source (content)", output.source[index]), ("1. target (style)", output.target[index]),
              ("2. re-generated\n" + textwrap.shorten(output.step2[index], 40), output.regenerated[index]),
              ("4. F draws the sentence", output.fused[index])]
    for ax, (title, image) in zip(axes, panels):
        ax.imshow(image.permute(1, 2, 0).clamp(0, 1).cpu().numpy(), interpolation="nearest")
        ax.set_title(title, fontsize=9)
        ax.axis("off")
    axes[4].imshow(np.asarray(output.pictures[index]))
    axes[4].set_title(f"4. composed\n5. style '{STYLES[int(output.target_style[index])]}': "
                      f"{float(output.style_scores[index]):.2f}, spoken: {float(output.spoken_scores[index]):.2f}",
                      fontsize=9)
    axes[4].axis("off")
    fig.suptitle("3. “" + textwrap.shorten(output.sentences[index] or "(empty)", 110) + "”", fontsize=10)
    fig.tight_layout()
    return fig
