"""Typesetting: a sentence set into a picture, in the picture's own colours.

The second half of step 4 of the source's algorithm (§3: "将文字或语句与目标图片的风格进行融合",
fuse the words with the target picture's style). The fusion generator F draws the sentence's
*content* in the target's style; this module puts the sentence *itself* into the picture, the
way a comic or a meme does, so that the result is a "spoken-style picture": a picture that
talks.

Two layouts:

* ``"bubble"``: a speech bubble (rounded box with a tail) over the top or the bottom of the
  picture: by default (``side="auto"``) whichever covers less of what is drawn there, measured
  by :func:`ink` (see :func:`bubble_side`);
* ``"band"``: a caption band under the picture (nothing of the picture is covered).

Colours come from the *target* picture's palette (:func:`palette`: its dominant colours, by
median-cut quantisation). The bubble or band is filled with the palette colour that gives the
best text contrast, and the text is black or white, whichever reads better on that fill; the
WCAG 2 contrast ratio (:func:`contrast_ratio`) of the pair is at least 4.5 : 1 (the "AA" level
for body text) whenever the palette allows it, and the fill is blended towards white or black
until it does otherwise.

The font is DejaVu Sans, which ships inside matplotlib (so nothing is downloaded; licence:
Bitstream Vera / public-domain changes, see matplotlib's ``LICENSE_DEJAVU``). Text is wrapped
greedily to the measured width of each word; a long sentence first shrinks the font (down to
``min_font``) and then, if it still does not fit, is cut at a word boundary and ends with an
ellipsis ("…"). Small pictures (ShapeScenes are 64 px) are upscaled first (nearest neighbour,
by an integer factor, so pixels stay crisp) until the short side is at least ``min_side``,
otherwise no font would be legible.

References: W3C, *Web Content Accessibility Guidelines (WCAG) 2.1*, §1.4.3 Contrast (minimum),
https://www.w3.org/TR/WCAG21/#contrast-minimum (relative luminance and contrast ratio).
"""

from __future__ import annotations

import math
import operator
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Sequence

import matplotlib
import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

__all__ = [
    "LAYOUTS",
    "BUBBLE_SIDES",
    "BUBBLE_MIN_SIDE",
    "FONT_PATH",
    "TextLayout",
    "font",
    "to_pil",
    "palette",
    "relative_luminance",
    "contrast_ratio",
    "pick_colours",
    "ink",
    "bubble_side",
    "wrap_text",
    "fit_text",
    "typeset",
]

LAYOUTS: tuple[str, ...] = ("bubble", "band")
BUBBLE_SIDES: tuple[str, ...] = ("auto", "top", "bottom")
BUBBLE_MIN_SIDE = 64  # a bubble needs this much picture: one line of a 10 px font in ~40 % of it
INK_DISTANCE = 80.0  # RGB distance (0-441) from the background at which a pixel counts fully as ink
ELLIPSIS = "…"  # DejaVu Sans has the glyph
MAX_SIDE = 4096  # typeset's picture never grows past this long side: bounds its memory (~64 MB) and time
MAX_ASPECT = 16  # nor does it take a picture longer than 16 times its width (or wider than 16 times its height)


def _font_path() -> Path:
    return Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf"


FONT_PATH: Path = _font_path()


@lru_cache(maxsize=64)
def font(size: int) -> ImageFont.FreeTypeFont:
    """DejaVu Sans (bundled with matplotlib) at ``size`` pixels."""
    if not isinstance(size, int) or size < 1:
        raise ValueError(f"font size must be a positive int, got {size!r}")
    return ImageFont.truetype(str(FONT_PATH), size)


# -- images ------------------------------------------------------------------------------------

def to_pil(image: Any) -> Image.Image:
    """An RGB PIL image from a PIL image of any mode, a (3, H, W) / (1, 3, H, W) tensor in
    [0, 1], or an (H, W, 3) / (H, W) array (uint8, or float in [0, 1]).

    Transparent images are flattened onto white; 16-bit greyscale is scaled by its maximum.
    """
    if isinstance(image, Image.Image):
        if image.width < 1 or image.height < 1:
            raise ValueError(f"the image is empty ({image.width} × {image.height})")
        if image.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
            arr = np.asarray(image, dtype=np.float64)
            top = float(arr.max()) if arr.size else 1.0
            arr = arr / (top if top > 0 else 1.0)
            return Image.fromarray((np.clip(arr, 0, 1) * 255).round().astype(np.uint8)).convert("RGB")
        if image.mode in ("RGBA", "LA", "P", "PA", "La", "RGBa"):
            rgba = image.convert("RGBA")
            white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
            return Image.alpha_composite(white, rgba).convert("RGB")
        return image.convert("RGB")
    if isinstance(image, torch.Tensor):
        t = image.detach().cpu()
        if t.dim() == 4 and t.shape[0] == 1:
            t = t[0]
        if t.dim() != 3 or t.shape[0] not in (1, 3):
            raise ValueError(f"a tensor image must be (3, H, W) or (1, 3, H, W), got shape {tuple(image.shape)}")
        if t.dtype == torch.uint8:
            array = t.permute(1, 2, 0).numpy()
        elif t.is_floating_point():
            if t.numel() and (not torch.isfinite(t).all() or t.min() < -1e-3 or t.max() > 1 + 1e-3):
                raise ValueError("a float tensor image must hold finite values in [0, 1]")
            array = (t.clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()
        else:
            raise TypeError(f"a tensor image must be float in [0, 1] or uint8, got {t.dtype}")
        if array.shape[-1] == 1:
            array = np.repeat(array, 3, axis=-1)
        return Image.fromarray(np.ascontiguousarray(array), "RGB")
    if isinstance(image, np.ndarray):
        arr = image[..., None] if image.ndim == 2 else image
        if arr.ndim != 3 or arr.shape[-1] not in (1, 3, 4):
            raise ValueError(f"an array image must be (H, W), (H, W, 3) or (H, W, 4), got shape {image.shape}")
        if arr.dtype == np.uint8:
            arr = arr.astype(np.float32) / 255.0
        elif arr.dtype.kind != "f":
            raise TypeError(f"an array image must be uint8 or float in [0, 1], got {arr.dtype}")
        arr = arr.astype(np.float32)
        if arr.shape[-1] == 4:  # flatten transparency onto white
            arr = arr[..., :3] * arr[..., 3:] + (1.0 - arr[..., 3:])
        return to_pil(torch.from_numpy(np.ascontiguousarray(arr)).permute(2, 0, 1))
    raise TypeError(f"expected a PIL image, a tensor or an array, got {type(image).__name__}")


def palette(image: Any, k: int = 5) -> list[tuple[int, int, int]]:
    """The ``k`` dominant colours of ``image`` (median-cut quantisation), most frequent first,
    as RGB tuples of ints in [0, 255]."""
    if not isinstance(k, int) or not 1 <= k <= 64:
        raise ValueError(f"k must be an int in [1, 64], got {k!r}")
    pil = to_pil(image)
    small = pil.resize((min(pil.width, 64), min(pil.height, 64)), Image.BILINEAR)
    q = small.quantize(colors=k, method=Image.Quantize.MEDIANCUT)
    counts = sorted(q.getcolors(), reverse=True)  # (count, index), most frequent first
    flat = q.getpalette()
    return [tuple(flat[3 * i: 3 * i + 3]) for _, i in counts]


def relative_luminance(rgb: Sequence[float]) -> float:
    """WCAG 2 relative luminance of an sRGB colour given as ints in [0, 255]."""
    if len(rgb) != 3:
        raise ValueError(f"a colour has 3 channels, got {rgb!r}")

    def lin(c: float) -> float:
        c = c / 255.0
        return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4

    r, g, b = (lin(c) for c in rgb)
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def contrast_ratio(a: Sequence[float], b: Sequence[float]) -> float:
    """WCAG 2 contrast ratio of two colours: (L1 + 0.05) / (L2 + 0.05), from 1 to 21."""
    la, lb = relative_luminance(a), relative_luminance(b)
    return (max(la, lb) + 0.05) / (min(la, lb) + 0.05)


BLACK, WHITE = (0, 0, 0), (255, 255, 255)


def _text_on(fill: Sequence[int]) -> tuple[int, int, int]:
    return BLACK if contrast_ratio(fill, BLACK) >= contrast_ratio(fill, WHITE) else WHITE


def pick_colours(colours: Sequence[Sequence[int]], min_contrast: float = 4.5
                 ) -> tuple[tuple[int, int, int], tuple[int, int, int], tuple[int, int, int]]:
    """(fill, text, outline) from a palette: the palette colour whose best text colour (black or
    white) contrasts most with it, blended towards white (or black) until the contrast is at
    least ``min_contrast``; the outline is the palette colour that differs most from the fill."""
    colours = [tuple(int(c) for c in col) for col in colours]
    if not colours:
        raise ValueError("the palette is empty")
    fill = max(colours, key=lambda c: contrast_ratio(c, _text_on(c)))
    text = _text_on(fill)
    towards = np.array(WHITE if text == BLACK else BLACK, dtype=np.float64)
    base = np.array(fill, dtype=np.float64)
    for t in np.linspace(0.0, 1.0, 21):
        candidate = tuple(int(round(v)) for v in (1 - t) * base + t * towards)
        if contrast_ratio(candidate, text) >= min_contrast:
            fill = candidate
            break
    outline = max(colours, key=lambda c: sum((x - y) ** 2 for x, y in zip(c, fill)))
    if contrast_ratio(outline, fill) < 1.5:  # a palette of one colour: outline in the text colour
        outline = text
    return fill, text, outline


def ink(image: Any) -> np.ndarray:
    """How much each pixel stands out from the picture's background: (H, W) floats in [0, 1].

    The background is the picture's most frequent colour (:func:`palette`); a pixel's ink is its
    RGB distance from it divided by :data:`INK_DISTANCE`, capped at 1. On ShapeScenes renders the
    drawn objects score high and most of the paper low (not all of it: comic's and neon's
    backgrounds have lines and glow). It assumes the background is the commonest colour: on a
    picture mostly covered by one object, that object counts as background.
    """
    pil = to_pil(image)
    background = np.array(palette(pil)[0], dtype=np.int16)
    diff = np.asarray(pil, dtype=np.int16) - background  # in place of a float norm: 7x faster, same values
    distance = np.sqrt(np.einsum("ijk,ijk->ij", diff, diff, dtype=np.int32).astype(np.float32))
    return np.clip(distance / INK_DISTANCE, 0.0, 1.0)


def _count(value: Any, name: str, low: int) -> int:
    """``value`` as an int ≥ ``low`` (numpy ints welcome, bools and floats refused)."""
    if isinstance(value, bool):
        raise TypeError(f"{name} must be an int, got {value!r}")
    try:
        number = operator.index(value)
    except TypeError:
        raise TypeError(f"{name} must be an int, got {type(value).__name__} {value!r}") from None
    if number < low:
        raise ValueError(f"{name} must be ≥ {low}, got {number}")
    return number


def bubble_side(image: Any, box_height: int, margin: int = 0) -> str:
    """``"top"`` or ``"bottom"``: where a box ``box_height`` pixels tall, ``margin`` pixels from
    the edge, covers less :func:`ink`; the top on a tie, where readers look for a speech bubble
    first. Both are in pixels of ``image`` as given (:func:`typeset` passes its upscaled picture).

    Why: the objects of a picture are where they are; a bubble always at the top hid the upper
    objects. On 300 test scenes (real renders in each of the six styles, ground-truth object
    masks), a box 26 px tall (the bubble's largest on a 64 px picture), 3 px from the edge,
    covered 40 % of the object pixels at the top; on the side this picks, 13 to 14 % (the side
    with fewer object pixels: 13 %). With a box 16 px tall: 20 % at the top, 4 % on the side
    picked. ``tests/test_render.py`` checks the comparison on 60 scenes.
    """
    amount = ink(image)
    H = amount.shape[0]
    box_height = _count(box_height, "box_height", 1)
    margin = _count(margin, "margin", 0)
    if box_height + margin > H:
        raise ValueError(f"a box {box_height} px tall, {margin} px from the edge, does not fit in a picture "
                         f"{H} px tall")
    top = amount[margin: margin + box_height].mean()
    bottom = amount[H - margin - box_height: H - margin].mean()
    return "bottom" if bottom < top else "top"


# -- text --------------------------------------------------------------------------------------

def _width(text: str, f: ImageFont.FreeTypeFont) -> float:
    return f.getlength(text)


def _break_word(word: str, f: ImageFont.FreeTypeFont, width: float) -> list[str]:
    """A word longer than a line, cut into pieces that fit (at least one character each)."""
    pieces, current = [], ""
    for ch in word:
        if current and _width(current + ch, f) > width:
            pieces.append(current)
            current = ch
        else:
            current += ch
    return pieces + ([current] if current else [])


def wrap_text(text: str, f: ImageFont.FreeTypeFont, width: float, max_lines: int | None = None) -> list[str]:
    """Greedy word wrap to ``width`` pixels in font ``f``; words wider than a line are broken.

    With ``max_lines`` it stops once it has ``max_lines + 1`` lines (enough to know the text
    does not fit in ``max_lines``) and measures at most ``(max_lines + 2) × width`` characters
    of a word (more than the lines can show unless its glyphs are under a pixel wide), so a
    megabyte of text costs no more than a box of it."""
    if not isinstance(text, str):
        raise TypeError(f"text must be a str, got {type(text).__name__}")
    lines: list[str] = []
    current, current_w = "", 0.0
    space = _width(" ", f)
    widths: dict[str, float] = {}  # words repeat: measure each once
    for word in text.split():
        if max_lines is not None and len(lines) > max_lines:
            return lines
        if max_lines is not None:
            word = word[: (max_lines + 2) * (int(width) + 1)]
        word_w = widths.get(word)
        if word_w is None:
            word_w = widths[word] = _width(word, f)
        pieces = _break_word(word, f, width) if word_w > width else [word]
        for piece in pieces:
            piece_w = word_w if len(pieces) == 1 else _width(piece, f)
            trial = f"{current} {piece}" if current else piece
            # the sum of the parts' widths is the line's width up to kerning: measure the
            # whole line only near the edge, so a line costs O(its length), not O(length²)
            estimate = current_w + space + piece_w if current else piece_w
            fits = estimate <= width - 2 or (estimate <= width + 2 and _width(trial, f) <= width)
            if current and not fits:
                lines.append(current)
                current, current_w = piece, piece_w
                if max_lines is not None and len(lines) > max_lines:
                    return lines
            else:
                current, current_w = trial, estimate
    if current:
        lines.append(current)
    return lines


@dataclass
class TextLayout:
    """How a sentence was set: its lines, font size, line height, and whether it was cut."""

    lines: list[str]
    font_size: int
    line_height: int
    truncated: bool

    @property
    def height(self) -> int:
        return self.line_height * len(self.lines)


def _ellipsize(line: str, f: ImageFont.FreeTypeFont, width: float) -> str:
    words = line.split()
    while words:
        candidate = " ".join(words) + ELLIPSIS
        if _width(candidate, f) <= width:
            return candidate
        words.pop()
    return ELLIPSIS


def fit_text(text: str, width: int, height: int, *, max_font: int, min_font: int = 10,
             line_spacing: float = 1.2) -> TextLayout:
    """The largest font size in [min_font, max_font] at which ``text`` wraps into a
    ``width`` × ``height`` box; if none does, the ``min_font`` layout cut after the last line
    that fits, ending in an ellipsis."""
    if not isinstance(text, str):
        raise TypeError(f"text must be a str, got {type(text).__name__}")
    if width < 1 or height < 1:
        raise ValueError(f"the text box must be at least 1 × 1 px, got {width} × {height}")
    min_font = max(1, min(min_font, max_font))
    text = " ".join(text.split())

    def layout(size: int) -> TextLayout | None:
        line_height = max(1, math.ceil(size * line_spacing))
        lines = wrap_text(text, font(size), width, max_lines=height // line_height)
        return TextLayout(lines, size, line_height, False) if line_height * len(lines) <= height else None

    # the wrapped height grows with the font size, so binary-search the largest size that fits
    best, lo, hi = None, min_font, max_font
    while lo <= hi:
        mid = (lo + hi) // 2
        fitted = layout(mid)
        if fitted is not None:
            best, lo = fitted, mid + 1
        else:
            hi = mid - 1
    if best is not None:
        return best
    f = font(min_font)
    line_height = max(1, math.ceil(min_font * line_spacing))
    keep = max(1, height // line_height)
    lines = wrap_text(text, f, width, max_lines=keep)
    cut = lines[:keep]
    cut[-1] = _ellipsize(cut[-1], f, width)
    return TextLayout(cut, min_font, line_height, True)


# -- composing ---------------------------------------------------------------------------------

def _bounded(pil: Image.Image, min_side: int) -> Image.Image:
    """``pil`` scaled into typeset's bounds: a long side over :data:`MAX_SIDE` is scaled down
    (Lanczos); a short side under ``min_side`` is scaled up by an integer factor (nearest
    neighbour), but never past a long side of :data:`MAX_SIDE`."""
    long, short = max(pil.size), min(pil.size)
    if long / short > MAX_ASPECT:
        raise ValueError(f"the picture is {pil.width} × {pil.height}: more than {MAX_ASPECT} times longer than it "
                         f"is wide, no room for a bubble or band; crop it to an aspect ratio of at most {MAX_ASPECT}:1")
    if long > MAX_SIDE:
        scale = MAX_SIDE / long
        return pil.resize((max(1, round(pil.width * scale)), max(1, round(pil.height * scale))), Image.LANCZOS)
    factor = min(math.ceil(min_side / short), MAX_SIDE // long)
    if factor <= 1:
        return pil
    return pil.resize((pil.width * factor, pil.height * factor), Image.NEAREST)


def _draw_lines(draw: ImageDraw.ImageDraw, layout: TextLayout, box: tuple[int, int, int, int],
                colour: tuple[int, int, int]) -> None:
    """Each line centred horizontally in ``box``; the block centred vertically."""
    x0, y0, x1, y1 = box
    f = font(layout.font_size)
    top = y0 + (y1 - y0 - layout.height) / 2
    for i, line in enumerate(layout.lines):
        w = _width(line, f)
        y = top + i * layout.line_height + layout.line_height / 2
        draw.text(((x0 + x1 - w) / 2, y), line, font=f, fill=colour, anchor="lm")


def typeset(picture: Any, sentence: str, *, layout: str = "bubble", side: str = "auto", palette_from: Any = None,
            min_side: int = 256, max_font: int | None = None, min_font: int = 10) -> Image.Image:
    """``sentence`` set into ``picture`` as a speech bubble or a caption band.

    Args:
        picture: the picture (PIL image of any mode, (3, H, W) tensor in [0, 1], or array).
        sentence: any text; long text shrinks the font and is finally cut with "…"; an empty or
            blank sentence leaves the picture without a bubble (the band stays, empty).
        layout: ``"bubble"`` (over the top or the bottom of the picture) or ``"band"`` (below it).
        side: where the bubble goes: ``"top"``, ``"bottom"`` or ``"auto"`` (whichever covers less
            of what is drawn, :func:`bubble_side`); ignored by the band.
        palette_from: the picture whose palette colours the bubble or band (the *target*
            picture in the pipeline); default: ``picture`` itself.
        min_side: small pictures are upscaled (integer factor, nearest neighbour) until their
            short side is at least this many pixels (for the bubble at least
            :data:`BUBBLE_MIN_SIDE`, whatever ``min_side`` says, so that it fits in ~40 %); an
            int from 16 to 256.
        max_font: largest font size in px (default: a fifteenth of the picture's short side).
        min_font: smallest font size before the text is cut.

    Bounds: the work is capped whatever the input. A picture whose long side is over
    :data:`MAX_SIDE` (4096 px) is scaled down to it first, and upscaling stops there; a picture
    more than :data:`MAX_ASPECT` (16) times longer than wide is refused; the sentence is wrapped
    only as far as the box can show. So the picture part of the result is at most 4096 px
    long (the band adds a quarter of it, or three lines of text), and the largest call takes
    about 2 s on a CPU core (a 4000 × 4000 picture with 200,000 characters of text).

    Returns:
        an RGB PIL image: the (upscaled) picture with the sentence set into it; with ``"band"``
        it is taller than the picture.

    Raises:
        ValueError: an unknown ``layout`` or ``side``, a picture of extreme aspect ratio, a
            ``min_side``/font size out of range, or a picture :func:`to_pil` cannot read.
        TypeError: ``sentence`` is not a str.
    """
    if layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {LAYOUTS}, got {layout!r}")
    if side not in BUBBLE_SIDES:
        raise ValueError(f"side must be one of {BUBBLE_SIDES}, got {side!r}")
    if not isinstance(sentence, str):
        raise TypeError(f"sentence must be a str, got {type(sentence).__name__}")
    if isinstance(min_side, bool) or not isinstance(min_side, int) or not 16 <= min_side <= MAX_SIDE // MAX_ASPECT:
        raise ValueError(f"min_side must be an int from 16 to {MAX_SIDE // MAX_ASPECT}, got {min_side!r}")
    for name, value in (("max_font", max_font), ("min_font", min_font)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 512):
            raise ValueError(f"{name} must be an int from 1 to 512 (px), got {value!r}")
    base = _bounded(to_pil(picture), max(min_side, BUBBLE_MIN_SIDE) if layout == "bubble" else min_side)
    W, H = base.size
    short = min(W, H)
    max_font = max_font or max(min_font, short // 15)
    fill, text_colour, outline = pick_colours(palette(palette_from if palette_from is not None else base))
    pad = max(4, short // 32)
    text = " ".join(sentence.split())

    if layout == "band":
        line_height = math.ceil(max_font * 1.2)
        band_h = max(3 * line_height + 2 * pad, H // 4)  # room for three lines at the largest size
        fitted = (fit_text(text, max(1, W - 2 * pad), band_h - 2 * pad, max_font=max_font, min_font=min_font)
                  if text else None)
        out = Image.new("RGB", (W, H + band_h), fill)
        out.paste(base, (0, 0))
        draw = ImageDraw.Draw(out)
        draw.line([(0, H), (W, H)], fill=outline, width=max(1, short // 128))
        if fitted:
            _draw_lines(draw, fitted, (pad, H + pad, W - pad, H + band_h - pad), text_colour)
        return out

    out = base.copy()
    if not text:
        return out
    draw = ImageDraw.Draw(out)
    margin = max(4, short // 24)
    box_w = W - 2 * margin
    inner = max(1, box_w - 4 * pad)
    max_box_h = int(H * 0.42)  # the bubble never hides more than ~40 % of the picture
    fitted = fit_text(text, inner, max(1, max_box_h - 2 * pad), max_font=max_font, min_font=min_font)
    box_h = min(fitted.height + 2 * pad, H - 2 * margin)  # only a min_font far too big for the picture reaches H
    if side == "auto":
        side = bubble_side(base, box_h, margin)
    y0 = margin if side == "top" else H - margin - box_h
    x0, x1, y1 = margin, margin + box_w, y0 + box_h
    radius = min(box_h // 2, max(4, short // 16))
    stroke = max(1, short // 128)
    tail_x = x0 + box_w // 4  # the tail points left, into the picture (down from the top, up from the bottom)
    tail_len = max(8, short // 12)
    if side == "top":
        base_y, tip_y = y1 - stroke, min(H - 1, y1 + tail_len)
    else:
        base_y, tip_y = y0 + stroke, max(0, y0 - tail_len)
    tail = [(tail_x, base_y), (tail_x + max(6, short // 16), base_y), (tail_x - max(2, short // 64), tip_y)]
    draw.polygon(tail, fill=fill, outline=outline, width=stroke)
    draw.rounded_rectangle((x0, y0, x1, y1), radius=radius, fill=fill, outline=outline, width=stroke)
    draw.line(tail[:2], fill=fill, width=stroke + 2)  # join tail and box without a seam
    _draw_lines(draw, fitted, (x0 + 2 * pad, y0 + pad, x1 - 2 * pad, y1 - pad), text_colour)
    return out
