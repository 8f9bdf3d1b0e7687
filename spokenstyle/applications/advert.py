"""Advertisement design (source §6, 广告设计): a product photo in a campaign's look, with a slogan in
the spoken register set on it where it stays legible and keeps off the product.

Three things are *measured* here, not eyeballed:

* **legibility**: the WCAG 2 contrast ratio (:func:`spokenstyle.render.contrast_ratio`) of the
  slogan's colour against every pixel under its text box, worst case over the box; the "AA"
  level for body text is 4.5 : 1 (W3C, WCAG 2.1 §1.4.3). Where no placement reaches it on the
  bare picture, a translucent *scrim* (a dark or light panel) goes under the text, as designers
  do, just opaque enough to reach it; the ratio is then measured on the picture with the scrim.
* **what the slogan hides**: the share of the product's *salient* pixels under the text box.
  Saliency is defined simply (:func:`saliency`): product photos put the product in front of a
  background that reaches the edges of the frame, so a pixel's saliency is its CIELAB distance,
  after a Gaussian blur, from the *background colour*, the median colour of a band along the
  picture's border; the salient pixels are those above Otsu's threshold of that distance
  (Otsu 1979: the split that best separates two groups), and the holes they enclose. It marks what differs in colour from
  the border: the flower, the rocket and its lights, the cup and saucer. It knows nothing of
  objects: a product the colour of its background, or a background that changes colour
  towards the middle, fools it (chapter 9 shows the masks).
* **placement**: :func:`place_slogan` searches text widths and positions for the largest font
  whose box keeps the contrast at least ``min_contrast`` and covers at most ``max_coverage`` of
  the salient pixels; :func:`naive_placement` is what a template does (white text, centred).
  :func:`measure` re-measures any placement on the composed picture, independently of the search.

The slogans are written from templates in the spoken register of the book's grammar
(:func:`spoken_slogan`); :data:`CAMPAIGNS` are the three of chapter 9.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
import torch
from PIL import Image, ImageDraw
from scipy.ndimage import binary_fill_holes, minimum_filter1d
from skimage.color import rgb2lab
from skimage.filters import gaussian, threshold_otsu

from .. import render
from ..data.captions import ENDINGS, FILLERS, OPENERS, TAGS
from ..data.photos import ALL_FILTERS, load_photo, painterly

__all__ = [
    "MIN_CONTRAST",
    "MAX_COVERAGE",
    "BORDER",
    "saliency",
    "salient_mask",
    "luminance",
    "SloganPlacement",
    "place_slogan",
    "naive_placement",
    "measure",
    "compose",
    "spoken_slogan",
    "Campaign",
    "CAMPAIGNS",
    "Advert",
    "make_advert",
]

MIN_CONTRAST = 4.5  # WCAG 2 "AA" for body text
MAX_COVERAGE = 0.10  # the slogan may cover at most this share of the product's salient pixels
BORDER = 0.05  # the band along the edges whose median colour is the background (a share of the shorter side)
BLACK, WHITE = (0, 0, 0), (255, 255, 255)
_MAX_SIDE = 1024  # pictures are scaled down to this long side first: bounds the work (about a second)


# -- measuring a picture -------------------------------------------------------------------------

def _rgb(image: Any) -> np.ndarray:
    """(H, W, 3) float in [0, 1] from anything :func:`spokenstyle.render.to_pil` takes."""
    pil = render.to_pil(image)
    if max(pil.size) > _MAX_SIDE:
        scale = _MAX_SIDE / max(pil.size)
        pil = pil.resize((max(1, round(pil.width * scale)), max(1, round(pil.height * scale))), Image.LANCZOS)
    return np.asarray(pil, dtype=np.float64) / 255.0


def saliency(image: Any, sigma: float = 3.0, border: float = BORDER) -> np.ndarray:
    """Distance from the background colour: per pixel, the CIELAB distance between the
    Gaussian-blurred (``sigma`` px) picture and the median colour of the band of width ``border``
    (a share of the shorter side) along the picture's edges, scaled so that the largest is 1.
    (H, W) float in [0, 1]."""
    if not 0.0 < float(border) <= 0.5:
        raise ValueError(f"border must be a share of the shorter side in (0, 0.5], got {border!r}")
    rgb = _rgb(image)
    lab = rgb2lab(gaussian(rgb, sigma=sigma, channel_axis=-1))
    b = max(1, int(round(border * min(rgb.shape[:2]))))
    band = np.concatenate([lab[:b].reshape(-1, 3), lab[-b:].reshape(-1, 3),
                           lab[:, :b].reshape(-1, 3), lab[:, -b:].reshape(-1, 3)])
    s = np.linalg.norm(lab - np.median(band, 0), axis=-1)
    return s / s.max() if s.max() > 0 else s


def salient_mask(image: Any) -> np.ndarray:
    """(H, W) bool: the salient pixels, :func:`saliency` above Otsu's threshold, with the holes
    the salient region encloses filled (the coffee inside a cup is part of the product, whatever
    its colour). A picture of one colour has none."""
    s = saliency(image)
    if float(s.max() - s.min()) < 1e-6:
        return np.zeros(s.shape, dtype=bool)
    return binary_fill_holes(s > threshold_otsu(s))


def luminance(image: Any) -> np.ndarray:
    """(H, W) WCAG 2 relative luminance of every pixel (as :func:`spokenstyle.render.relative_luminance`)."""
    c = _rgb(image)
    lin = np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)
    return lin @ np.array([0.2126, 0.7152, 0.0722])


def _contrast_map(lum: np.ndarray, text: Sequence[int]) -> np.ndarray:
    lt = render.relative_luminance(text)
    return (np.maximum(lum, lt) + 0.05) / (np.minimum(lum, lt) + 0.05)


# -- placements ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class SloganPlacement:
    """Where and how a slogan is set, and what that measured (on the picture it was placed on)."""

    box: tuple[int, int, int, int]  # (x0, y0, x1, y1) of the text box, padding included, in pixels
    lines: tuple[str, ...]
    font_size: int
    line_height: int
    text: tuple[int, int, int]  # the slogan's colour
    scrim: tuple[int, int, int] | None  # the panel's colour under the text, or None
    scrim_alpha: float  # its opacity (0: none)
    worst_contrast: float  # WCAG ratio of the text colour against the darkest/lightest pixel in the box
    coverage: float  # share of the picture's salient pixels inside the box
    truncated: bool
    how: str  # "package" or "naive"
    feasible: bool = True  # the search met both limits (always True for a package placement)

    @property
    def legible(self) -> bool:
        return self.worst_contrast >= MIN_CONTRAST


def _layout(slogan: str, width: int, height: int, max_font: int, min_font: int) -> render.TextLayout:
    return render.fit_text(slogan, width, height, max_font=max_font, min_font=min_font)


def _text_width(layout: render.TextLayout) -> int:
    f = render.font(layout.font_size)
    return int(math.ceil(max((f.getlength(line) for line in layout.lines), default=0)))


def _box_min(values: np.ndarray, bh: int, bw: int) -> np.ndarray:
    """The minimum of ``values`` over every bh x bw box, indexed by its top-left corner: two
    running minima (scipy's, whose cost does not grow with the window), cut to the valid corners."""
    H, W = values.shape
    rows = minimum_filter1d(values, bw, axis=1, mode="nearest")[:, bw // 2: bw // 2 + W - bw + 1]
    return minimum_filter1d(rows, bh, axis=0, mode="nearest")[bh // 2: bh // 2 + H - bh + 1]


def _box_sum(integral: np.ndarray, y0: np.ndarray, x0: np.ndarray, bh: int, bw: int) -> np.ndarray:
    return integral[y0 + bh, x0 + bw] - integral[y0, x0 + bw] - integral[y0 + bh, x0] + integral[y0, x0]


def _check_slogan(slogan: Any) -> str:
    if not isinstance(slogan, str):
        raise TypeError(f"slogan must be a str, got {type(slogan).__name__}")
    text = " ".join(slogan.split())
    if not text:
        raise ValueError("slogan is empty: give at least one word to set")
    return text


def _scrim_needed(pixels: np.ndarray, text: Sequence[int], scrim: Sequence[int], min_contrast: float) -> float:
    """The least opacity (in steps of 0.05) of a ``scrim`` panel over ``pixels`` (N, 3) in [0, 1]
    that brings the worst contrast with ``text`` to ``min_contrast``; 1.0 if only an opaque one does."""
    s = np.asarray(scrim, dtype=np.float64) / 255.0
    for alpha in np.linspace(0.0, 1.0, 21):
        blended = np.round(((1 - alpha) * pixels + alpha * s) * 255.0) / 255.0  # the 8-bit picture it becomes
        lin = np.where(blended <= 0.04045, blended / 12.92, ((blended + 0.055) / 1.055) ** 2.4)
        if _contrast_map(lin @ np.array([0.2126, 0.7152, 0.0722]), text).min() >= min_contrast:
            return float(alpha)
    return 1.0


def place_slogan(image: Any, slogan: str, *, min_contrast: float = MIN_CONTRAST,
                 max_coverage: float = MAX_COVERAGE, widths: Sequence[float] = (0.9, 0.75, 0.6, 0.45),
                 max_font: int | None = None, min_font: int = 12, margin: int | None = None) -> SloganPlacement:
    """Where the slogan goes: the placement with the largest font whose text box keeps the WCAG
    contrast of black or white text against every pixel under it at least ``min_contrast`` and
    covers at most ``max_coverage`` of the salient pixels (:func:`salient_mask`).

    The search tries each width (a share of the picture's width), wraps the slogan to it at the
    largest font that fits in 30 % of the picture's height (:func:`spokenstyle.render.fit_text`),
    and slides the box over a grid of positions (a step of 1/32 of the shorter side); ties go to
    the box covering the fewest salient pixels, then to the highest contrast. If no box reaches
    the contrast on the bare picture, the box of least coverage gets a scrim (black under white
    text, or white under black, whichever needs less opacity) just opaque enough to reach it.

    Returns:
        a :class:`SloganPlacement` measured on ``image``.

    Raises:
        TypeError / ValueError: ``slogan`` is not a non-empty str; a limit out of range.
    """
    text = _check_slogan(slogan)
    if not 1.0 <= float(min_contrast) <= 21.0:
        raise ValueError(f"min_contrast must be a WCAG ratio from 1 to 21, got {min_contrast!r}")
    if not 0.0 <= float(max_coverage) <= 1.0:
        raise ValueError(f"max_coverage must be a share from 0 to 1, got {max_coverage!r}")
    if not widths or any(not 0.1 <= float(w) <= 1.0 for w in widths):
        raise ValueError(f"widths must be shares of the picture's width from 0.1 to 1, got {widths!r}")
    rgb = _rgb(image)
    H, W = rgb.shape[:2]
    if min(H, W) < 32:
        raise ValueError(f"the picture must be at least 32 x 32 px to carry a slogan, got {W} x {H}")
    lum = luminance(rgb)
    mask = salient_mask(rgb)
    total = max(int(mask.sum()), 1)
    integral = np.pad(mask.astype(np.int64).cumsum(0).cumsum(1), ((1, 0), (1, 0)))
    margin = max(2, min(H, W) // 24) if margin is None else margin
    step = max(2, min(H, W) // 32)
    max_font = max_font or max(min_font, min(H, W) // 9)
    pad = max(3, min(H, W) // 48)
    maps = {c: _contrast_map(lum, c) for c in (BLACK, WHITE)}
    best: tuple | None = None
    fallback: tuple | None = None
    for share in widths:
        inner = int(W * float(share)) - 2 * margin - 2 * pad
        if inner < 8:
            continue
        layout = _layout(text, inner, int(0.3 * H) - 2 * pad, max_font, min_font)
        bw = min(W - 2 * margin, _text_width(layout) + 2 * pad)
        bh = min(H - 2 * margin, layout.height + 2 * pad)
        ys = np.arange(margin, H - margin - bh + 1, step)
        xs = np.arange(margin, W - margin - bw + 1, step)
        if len(ys) == 0 or len(xs) == 0:
            continue
        yy, xx = np.meshgrid(ys, xs, indexing="ij")
        cover = _box_sum(integral, yy, xx, bh, bw) / total
        for colour, cmap in maps.items():
            worst = _box_min(cmap, bh, bw)[yy, xx]
            for y, x, c, w in zip(yy.ravel(), xx.ravel(), cover.ravel(), worst.ravel()):
                key = (layout.font_size, -c, w)
                candidate = (key, (int(x), int(y), int(x) + bw, int(y) + bh), layout, colour, float(w), float(c))
                if c <= max_coverage and w >= min_contrast and (best is None or key > best[0]):
                    best = candidate
                if c <= max_coverage and (fallback is None or (layout.font_size, -c) > fallback[0][:2]):
                    fallback = candidate
    if best is not None:
        _, box, layout, colour, worst, cover = best
        return SloganPlacement(box, tuple(layout.lines), layout.font_size, layout.line_height, colour, None, 0.0,
                               worst, cover, layout.truncated, "package")
    if fallback is None:  # every box covers too much: take the first width's least-covering box anyway
        return _scrimmed(rgb, mask, text, min_contrast, widths[0], margin, pad, max_font, min_font, feasible=False)
    _, box, layout, _, _, cover = fallback
    x0, y0, x1, y1 = box
    pixels = rgb[y0:y1, x0:x1].reshape(-1, 3)
    options = [(_scrim_needed(pixels, WHITE, BLACK, min_contrast), WHITE, BLACK),
               (_scrim_needed(pixels, BLACK, WHITE, min_contrast), BLACK, WHITE)]
    alpha, colour, scrim = min(options)
    placed = SloganPlacement(box, tuple(layout.lines), layout.font_size, layout.line_height, colour, scrim, alpha,
                             0.0, cover, layout.truncated, "package")
    return _opaque_enough(rgb, placed, min_contrast)


def _opaque_enough(rgb: np.ndarray, placed: SloganPlacement, min_contrast: float) -> SloganPlacement:
    """``placed`` measured, its scrim made more opaque in steps of 0.05 while the measured worst
    contrast is short of ``min_contrast`` (rounding to 8 bits can cost a hundredth)."""
    measured = measure(rgb, placed)
    while measured.worst_contrast < min_contrast and measured.scrim_alpha < 1.0:
        measured = measure(rgb, SloganPlacement(**{**measured.__dict__,
                                                   "scrim_alpha": min(1.0, round(measured.scrim_alpha + 0.05, 2))}))
    return measured


def _scrimmed(rgb: np.ndarray, mask: np.ndarray, text: str, min_contrast: float, share: float, margin: int, pad: int,
              max_font: int, min_font: int, *, feasible: bool) -> SloganPlacement:
    """The least-covering box of width ``share`` with the scrim it needs (when nothing meets the coverage limit)."""
    H, W = rgb.shape[:2]
    inner = max(8, int(W * share) - 2 * margin - 2 * pad)
    layout = _layout(text, inner, max(8, int(0.3 * H) - 2 * pad), max_font, min_font)
    bw = min(W - 2 * margin, _text_width(layout) + 2 * pad)
    bh = min(H - 2 * margin, layout.height + 2 * pad)
    integral = np.pad(mask.astype(np.int64).cumsum(0).cumsum(1), ((1, 0), (1, 0)))
    ys, xs = np.arange(margin, H - margin - bh + 1), np.arange(margin, W - margin - bw + 1)
    yy, xx = np.meshgrid(ys, xs, indexing="ij")
    cover = _box_sum(integral, yy, xx, bh, bw)
    k = int(cover.argmin())
    y0, x0 = int(yy.ravel()[k]), int(xx.ravel()[k])
    pixels = rgb[y0:y0 + bh, x0:x0 + bw].reshape(-1, 3)
    alpha, colour, scrim = min((_scrim_needed(pixels, WHITE, BLACK, min_contrast), WHITE, BLACK),
                               (_scrim_needed(pixels, BLACK, WHITE, min_contrast), BLACK, WHITE))
    placed = SloganPlacement((x0, y0, x0 + bw, y0 + bh), tuple(layout.lines), layout.font_size, layout.line_height,
                             colour, scrim, alpha, 0.0, 0.0, layout.truncated, "package", feasible)
    return _opaque_enough(rgb, placed, min_contrast)


def naive_placement(image: Any, slogan: str, *, share: float = 0.9, min_font: int = 12,
                    max_font: int | None = None) -> SloganPlacement:
    """What a template does: the slogan in white, centred on the picture, wrapped to ``share``
    of its width, no scrim; measured like any placement."""
    text = _check_slogan(slogan)
    rgb = _rgb(image)
    H, W = rgb.shape[:2]
    pad = max(3, min(H, W) // 48)
    max_font = max_font or max(min_font, min(H, W) // 9)
    layout = _layout(text, max(8, int(W * share) - 2 * pad), max(8, int(0.3 * H) - 2 * pad), max_font, min_font)
    bw = min(W, _text_width(layout) + 2 * pad)
    bh = min(H, layout.height + 2 * pad)
    x0, y0 = (W - bw) // 2, (H - bh) // 2
    placed = SloganPlacement((x0, y0, x0 + bw, y0 + bh), tuple(layout.lines), layout.font_size, layout.line_height,
                             WHITE, None, 0.0, 0.0, 0.0, layout.truncated, "naive", True)
    return measure(rgb, placed)


def _with_scrim(rgb: np.ndarray, placement: SloganPlacement) -> np.ndarray:
    """The picture with the placement's scrim (if any) blended into its box: what the text covers."""
    out = rgb.copy()
    if placement.scrim is not None and placement.scrim_alpha > 0:
        x0, y0, x1, y1 = placement.box
        s = np.asarray(placement.scrim, dtype=np.float64) / 255.0
        out[y0:y1, x0:x1] = (1 - placement.scrim_alpha) * out[y0:y1, x0:x1] + placement.scrim_alpha * s
    return out


def measure(image: Any, placement: SloganPlacement) -> SloganPlacement:
    """``placement`` with its worst contrast and its coverage measured on ``image`` (the scrim
    blended in first), independently of how it was found."""
    rgb = _rgb(image)
    H, W = rgb.shape[:2]
    x0, y0, x1, y1 = placement.box
    if not (0 <= x0 < x1 <= W and 0 <= y0 < y1 <= H):
        raise ValueError(f"the box {placement.box} does not lie inside the {W} x {H} picture")
    under = _with_scrim(rgb, placement)[y0:y1, x0:x1]
    worst = float(_contrast_map(luminance(under), placement.text).min())
    mask = salient_mask(rgb)
    cover = float(mask[y0:y1, x0:x1].sum()) / max(int(mask.sum()), 1)
    return SloganPlacement(**{**placement.__dict__, "worst_contrast": worst, "coverage": cover})


def compose(image: Any, placement: SloganPlacement) -> Image.Image:
    """The picture with the scrim and the slogan drawn as ``placement`` says (an RGB PIL image)."""
    rgb = _with_scrim(_rgb(image), placement)
    out = Image.fromarray((np.clip(rgb, 0, 1) * 255).round().astype(np.uint8), "RGB")
    draw = ImageDraw.Draw(out)
    x0, y0, x1, y1 = placement.box
    f = render.font(placement.font_size)
    top = y0 + (y1 - y0 - placement.line_height * len(placement.lines)) / 2
    for i, line in enumerate(placement.lines):
        w = f.getlength(line)
        draw.text(((x0 + x1 - w) / 2, top + (i + 0.5) * placement.line_height), line, font=f, fill=placement.text,
                  anchor="lm")
    return out


# -- slogans -------------------------------------------------------------------------------------

_SLOGANS = (
    "{opener}check out {this} {product}{end}",
    "{opener}{this} {product}? {filler}{praise}, {tag}",
    "honestly? {this} {product} is {praise}{end}",
    "lemme tell ya, {this} {product} is {praise}{end}",
    "{opener}you {filler}need {this} {product} in your life{end}",
    "{opener}{this} {product}... {praise}, no joke{end}",
    "ok ok, {this} {product}? {filler}{praise}{end}",
)
_PRAISE = ("a total vibe", "so good", "the real deal", "kinda amazing", "legit awesome", "next level",
           "pretty much perfect", "literally the best")


def spoken_slogan(product: str, seed: int = 0) -> str:
    """A slogan about ``product`` ("espresso") in the spoken register of the book's grammar: its
    openers, fillers, tags and endings (:mod:`spokenstyle.data.captions`), around one of a few
    templates. The same (product, seed) gives the same slogan."""
    if not isinstance(product, str) or not product.strip():
        raise ValueError(f"product must be a non-empty str (what the slogan is about), got {product!r}")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    rng = random.Random(seed * 2 + 11)
    template = _SLOGANS[rng.randrange(len(_SLOGANS))]
    text = template.format(
        opener=rng.choice(OPENERS) + " " if rng.random() < 0.7 else "",
        filler=rng.choice(FILLERS) + " " if rng.random() < 0.5 else "",
        this=rng.choice(("this", "this", "that", "this lil'")), product=" ".join(product.split()),
        praise=rng.choice(_PRAISE), tag=rng.choice(TAGS), end=rng.choice([e for e in ENDINGS if e.strip()]))
    text = " ".join(text.split())
    return text[0].upper() + text[1:]


# -- campaigns -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Campaign:
    """A product photo (a bundled photo's name), the campaign's look (a painterly filter, or
    ``"photo"`` for none), the product's name in the slogan, and the slogan (``""``: written
    by :func:`spoken_slogan`)."""

    name: str
    photo: str
    look: str
    product: str
    slogan: str = ""
    slogan_seed: int = 0

    def __post_init__(self) -> None:
        if self.look != "photo" and self.look not in ALL_FILTERS:
            raise ValueError(f"look must be 'photo' or one of {tuple(ALL_FILTERS)}, got {self.look!r}")

    @property
    def text(self) -> str:
        """The slogan to set: the given one, or the spoken one written for the product."""
        return self.slogan or spoken_slogan(self.product, self.slogan_seed)


CAMPAIGNS: tuple[Campaign, ...] = (
    Campaign("Morning espresso", "coffee", "woodblock", "espresso",
             "okay so this espresso? literally the best lil' cup you'll have all day, no joke!"),
    Campaign("Launch day", "rocket", "strokes", "rocket", "whoa, this thing's going up, up and away... you coming or what?!"),
    Campaign("Fresh flowers", "flower", "pointillist", "flower", "ooh, check out this super pretty flower, just for you, ya know?"),
)
"""Chapter 9's three campaigns: the coffee cup in woodblock colours, the rocket in brush strokes,
the dahlia in dots. Each photo ships with scikit-image or scikit-learn (:data:`~spokenstyle.data.PHOTO_CREDITS`)."""


@dataclass
class Advert:
    """One campaign composed: the restyled product picture, the package's and the naive
    placement with their measurements, and both composed pictures."""

    campaign: Campaign
    picture: torch.Tensor  # (3, H, W) in [0, 1]: the product photo in the campaign's look
    placement: SloganPlacement
    naive: SloganPlacement
    advert: Image.Image
    naive_advert: Image.Image
    salient: np.ndarray = field(repr=False)  # (H, W) bool: the salient pixels of the restyled picture


def make_advert(campaign: Campaign, *, short_side: int = 256, slogan: str | None = None,
                min_contrast: float = MIN_CONTRAST, max_coverage: float = MAX_COVERAGE) -> Advert:
    """Restyles the campaign's photo (its look), places the slogan (``slogan`` or the campaign's)
    with :func:`place_slogan`, sets it, and does the same with :func:`naive_placement` for comparison."""
    if not isinstance(campaign, Campaign):
        raise TypeError(f"campaign must be a Campaign, got {type(campaign).__name__}")
    photo = load_photo(campaign.photo, short_side)
    picture = photo if campaign.look == "photo" else painterly(photo[None], campaign.look)[0]
    text = campaign.text if slogan is None else slogan
    rgb = _rgb(picture)  # converted once for the measurements below
    placed = place_slogan(rgb, text, min_contrast=min_contrast, max_coverage=max_coverage)
    naive = naive_placement(rgb, text)
    return Advert(campaign, picture, placed, naive, compose(rgb, placed), compose(rgb, naive), salient_mask(rgb))
