"""Renders a :class:`~spokenstyle.data.scenes.SceneBatch` in one of six visual styles.

Everything is batched tensor code that runs on any device: each object is a signed distance
field (SDF: negative inside, positive outside, in canvas units), the nearest object's field
and colour are kept per pixel (objects never overlap), and a style is a handful of cheap
per-pixel operations on that field:

* ``flat``: solid fills on a plain light background, antialiased edges;
* ``sketch``: wobbly coloured pencil outlines and diagonal hatching on grainy paper;
* ``watercolour``: translucent, blotchy washes with darker pigment at the rim, soft edges;
* ``neon``: glowing coloured tubes on a dark wall;
* ``pixel``: low-resolution blocks with a dark one-block outline on a checkerboard;
* ``comic``: bold black outlines, fills with halftone dots, a dotted pale background.

Colours and shapes survive every style (the chapter-1 attribute classifier reads them back
from every style); the style itself is obvious to a classifier.

Noise (paper grain, watercolour blotches, pencil wobble) is looked up in a small texture bank
made once from a fixed seed and pre-cut into 32 crops, one chosen by the scene's seed, so a scene renders the
same way every time, on the CPU and on a GPU. Images are float32 ``(B, 3, H, W)`` in [0, 1]
(models map them to [-1, 1] themselves).

The SDFs of the circle, box, rhombus and 5-pointed star follow Inigo Quilez's "2D distance
functions" (https://iquilezles.org/articles/distfunctions2d/).
"""

from __future__ import annotations

from functools import lru_cache
from typing import Callable, Sequence

import torch
import torch.nn.functional as F

from .scenes import COLOUR_RGB, MAX_OBJECTS, SHAPES, SceneBatch, hash_uniform

__all__ = ["STYLES", "MIN_SIZE", "MAX_SIZE", "render", "style_ids", "check_size", "colour_masks"]

STYLES: tuple[str, ...] = ("flat", "sketch", "watercolour", "neon", "pixel", "comic")
MIN_SIZE, MAX_SIZE = 32, 128
_FAR = 4.0  # "distance" of empty object slots: far outside every pixel
_TEX = 128  # texture bank resolution (one texel per pixel at 128 px)
_CHUNK = 128  # scenes rendered at once (keeps the working set in cache)


# ----------------------------------------------------------------------------------------------
# input checks


def check_size(size: int) -> int:
    """Returns ``size`` if it is an int in [MIN_SIZE, MAX_SIZE], else raises."""
    if isinstance(size, bool) or not isinstance(size, int):
        raise TypeError(f"size must be an int number of pixels, got {type(size).__name__}")
    if not MIN_SIZE <= size <= MAX_SIZE:
        raise ValueError(f"size must be between {MIN_SIZE} and {MAX_SIZE} pixels, got {size}")
    return size


def style_ids(style: str | int | Sequence[str | int] | torch.Tensor, n: int,
              device: torch.device | str | None = None) -> torch.Tensor:
    """Style ids (n,) from a name, an id, or one name/id per scene; raises on unknown styles."""

    def one(s: str | int) -> int:
        if isinstance(s, str):
            if s not in STYLES:
                raise ValueError(f"unknown style {s!r}; expected one of {STYLES}")
            return STYLES.index(s)
        if isinstance(s, bool) or not isinstance(s, int):
            raise TypeError(f"a style is a name or an int id, got {type(s).__name__}")
        if not 0 <= s < len(STYLES):
            raise ValueError(f"style id must be in [0, {len(STYLES)}), got {s}")
        return s

    if isinstance(style, torch.Tensor):
        if style.dtype.is_floating_point or style.dtype == torch.bool:
            raise TypeError(f"style ids must be integers, got dtype {style.dtype}")
        ids = style.to(device=device, dtype=torch.int64).reshape(-1)
        if ids.numel() == 1:
            ids = ids.expand(n)
        if ids.numel() and (int(ids.min()) < 0 or int(ids.max()) >= len(STYLES)):
            raise ValueError(f"style ids must be in [0, {len(STYLES)}), got {ids.unique().tolist()}")
    elif isinstance(style, (str, int)):
        ids = torch.full((n,), one(style), dtype=torch.int64, device=device)
    else:
        ids = torch.tensor([one(s) for s in style], dtype=torch.int64, device=device)
    if ids.numel() != n:
        raise ValueError(f"got {ids.numel()} styles for {n} scenes; give one style or one per scene")
    return ids


# ----------------------------------------------------------------------------------------------
# signed distance functions in canvas units. ``x`` (m, 1, W) and ``y`` (m, H, 1) are offsets from
# each object's centre (x right, y down); ``r`` (m, 1, 1) the bounding radius: every shape fits
# in the circle of radius r. Few, broadcast-friendly ops: rendering speed is memory traffic.


def _sd_circle(x: torch.Tensor, y: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
    return torch.sqrt(x * x + y * y) - 0.92 * r


def _sd_square(x: torch.Tensor, y: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
    return torch.maximum(x.abs() - 0.68 * r, y.abs() - 0.68 * r)  # exact inside, Chebyshev outside


def _sd_triangle(x: torch.Tensor, y: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
    # equilateral, pointing up, circumradius 0.98 r; nudged down 0.1 r so that its visual
    # centre sits on the object's centre
    y = y - 0.1 * r
    return torch.maximum(0.8660254 * x.abs() - 0.5 * y, y) - 0.49 * r


def _sd_diamond(x: torch.Tensor, y: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
    return (0.70710678 * x.abs() - 0.67175144 * r) + 0.70710678 * y.abs()


def _sd_star(x: torch.Tensor, y: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
    # Quilez's sdStar5 (outer radius r, inner ratio 0.5), y flipped so that a point faces up
    k1x, k1y = 0.809016994, -0.587785252
    shape = torch.broadcast_shapes(x.shape, y.shape)
    x, y = (x.abs() / r).expand(shape), (-y / r).expand(shape)
    t = torch.clamp(k1x * x + k1y * y, min=0.0) * 2
    x, y = x - t * k1x, y - t * k1y
    t = torch.clamp(-k1x * x + k1y * y, min=0.0) * 2
    x, y = x + t * k1x, y - t * k1y
    x, y = x.abs(), y - 1.0
    bax, bay = 0.5 * -k1y, 0.5 * k1x - 1.0  # rf * (-k1.y, k1.x) - (0, 1)
    h = ((x * bax + y * bay) / (bax * bax + bay * bay)).clamp(0.0, 1.0)
    dist = torch.sqrt((x - bax * h) ** 2 + (y - bay * h) ** 2)
    return dist * torch.sign(y * bax - x * bay) * r


def _sd_cross(x: torch.Tensor, y: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
    ax, ay = x.abs(), y.abs()
    return torch.minimum(torch.maximum(ax - 0.92 * r, ay - 0.3 * r), torch.maximum(ax - 0.3 * r, ay - 0.92 * r))


_SDF: tuple[Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor], ...] = (
    _sd_circle, _sd_square, _sd_triangle, _sd_diamond, _sd_star, _sd_cross)
assert len(_SDF) == len(SHAPES)


# ----------------------------------------------------------------------------------------------
# shared fields and textures


@lru_cache(maxsize=32)
def _grid(size: int, device: torch.device) -> torch.Tensor:
    """(size,) pixel-centre coordinates in [-1, 1]."""
    return (torch.arange(size, device=device, dtype=torch.float32) + 0.5) * (2.0 / size) - 1.0


_VARIANTS = 32  # pre-cut texture crops per size; a scene picks one from its seed


@lru_cache(maxsize=4)
def _textures(size: int, device: torch.device) -> dict[str, torch.Tensor]:
    """Tileable noise from a fixed seed, pre-cut into ``_VARIANTS`` crops of ``size`` pixels and
    pre-shaded for the styles that use it (each (V, C, size, size)):

    * ``sketch_paper``, ``water_paper`` (C=3): paper colour times grain (white noise);
    * ``wobble``, ``bleed`` (C=1): offsets added to the SDF (pencil wobble, ragged washes),
      from smooth noise (white noise low-passed in the Fourier domain, so it tiles);
    * ``density`` (C=1): watercolour pigment density, from the same smooth noise as ``bleed``.

    A texel covers the same canvas area at every size.
    """
    T = _TEX
    g = torch.Generator().manual_seed(20240611)
    grain = torch.rand(4, T, T, generator=g)
    white = torch.randn(4, T, T, generator=g)
    f = torch.fft.fftfreq(T)
    lowpass = torch.exp(-(f[:, None] ** 2 + f[None, :] ** 2) / (2 * 0.035 ** 2))
    smooth = torch.fft.ifft2(torch.fft.fft2(white) * lowpass).real
    lo, hi = smooth.amin((1, 2), keepdim=True), smooth.amax((1, 2), keepdim=True)
    smooth = (smooth - lo) / (hi - lo)
    u = torch.rand(_VARIANTS, 3, generator=g)
    tile = (u[:, 0] * 4).long()
    off = (u[:, 1:] * T).long()
    base = torch.arange(size) * T // size  # (size,)
    iy = (base[None, :] + off[:, :1]) % T  # (V, size)
    ix = (base[None, :] + off[:, 1:]) % T

    def crop(bank: torch.Tensor) -> torch.Tensor:
        return bank[tile[:, None, None], iy[:, :, None], ix[:, None, :]][:, None]  # (V, 1, S, S)

    grain_c, smooth_c = crop(grain), crop(smooth)
    grain_2 = grain_c.roll(shifts=(size // 3, size // 2), dims=(2, 3))  # a second, offset grain
    out = {
        "sketch_paper": torch.tensor((0.99, 0.97, 0.92)).view(1, 3, 1, 1) * (1.0 - 0.10 * grain_c),
        "water_paper": torch.tensor((0.99, 0.98, 0.95)).view(1, 3, 1, 1) * (1.0 - 0.07 * grain_2),
        "wobble": (smooth_c.roll(shifts=size // 2, dims=3) - 0.5) * 0.05,
        "bleed": (smooth_c - 0.5) * 0.06,
        "density": 0.55 + 0.35 * smooth_c,
    }
    return {k: v.contiguous().to(device) for k, v in out.items()}


def _pick(seeds: torch.Tensor, stream: int) -> torch.Tensor:
    """(B,) texture variant per scene, from its seed."""
    return (hash_uniform(seeds, 100 + stream, 1)[:, 0] * _VARIANTS).long().clamp(max=_VARIANTS - 1)


def _object_fields(scenes: SceneBatch, grid: torch.Tensor,
                   colours: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Nearest-object SDF (B, 1, H, W) in canvas units and nearest-object colour (B, C, H, W),
    sampled at the pixel coordinates ``grid`` (H = W = len(grid)). ``colours`` (n_colours, C)
    replaces the RGB palette (e.g. one-hot rows give colour-membership maps).

    Fastest when the scenes come sorted by object count, most first (:func:`render` does
    that): then every per-slot step works on a contiguous block of rows.
    """
    n_obj = scenes.n_objects
    if n_obj.numel() > 1 and bool((n_obj[1:] > n_obj[:-1]).any()):
        order = n_obj.argsort(descending=True, stable=True)
        d, col = _object_fields(scenes[order], grid, colours)
        inv = order.argsort()
        return d.index_select(0, inv), col.index_select(0, inv)
    B, N = scenes.mask.shape
    dev, size = scenes.device, grid.shape[0]
    counts = scenes.mask.sum(0).tolist()  # objects in slot k: rows [0, counts[k])
    # all objects, slot-major: slot 0 of every scene, then slot 1, ... (rows of D below)
    m = scenes.mask.T.reshape(-1)  # slot-major
    shape = scenes.shape.T.reshape(-1)[m]  # (M,)
    pos = scenes.pos.transpose(0, 1).reshape(-1, 2)[m]  # (M, 2)
    r = scenes.radius.T.reshape(-1)[m]  # (M,)
    # sort by shape so that each shape's SDF runs on one contiguous block, then put rows back
    order = shape.argsort(stable=True)
    per_shape = torch.bincount(shape, minlength=len(SHAPES)).tolist()
    x = grid[None, None, :] - pos[order, 0, None, None]  # (M, 1, W)
    y = grid[None, :, None] - pos[order, 1, None, None]  # (M, H, 1)
    rr = r[order][:, None, None]  # (M, 1, 1)
    D = torch.empty(len(order), size, size, device=dev)
    start = 0
    for s, n in enumerate(per_shape):
        if n:
            sl = slice(start, start + n)
            D.index_copy_(0, order[sl], _SDF[s](x[sl], y[sl], rr[sl]))  # (n, H, W)
        start += n
    table = torch.tensor(COLOUR_RGB, device=dev) if colours is None else colours.to(dev)
    palette = table[scenes.colour.clamp(min=0)][..., None, None]  # (B, N, C, 1, 1)
    # objects never overlap: keep the nearest one's distance and colour, slot by slot
    # (comparisons written into a float buffer and lerp: several times faster than torch.where)
    dmin = D[: counts[0], None]  # (B, 1, H, W), updated in place
    col = palette[:, 0].expand(B, palette.shape[2], size, size).contiguous()
    closer = torch.empty(B, 1, size, size, device=dev)
    offset = counts[0]
    for k in range(1, N):
        n = counts[k]
        if n == 0:
            break
        dk = D[offset: offset + n, None]  # (n, 1, H, W)
        torch.lt(dk, dmin[:n], out=closer[:n])
        col[:n].lerp_(palette[:n, k], closer[:n])  # (n, 3, H, W)
        torch.minimum(dmin[:n], dk, out=dmin[:n])
        offset += n
    return dmin, col


def _coverage(d: torch.Tensor, size: int, soft: float = 1.0) -> torch.Tensor:
    """Antialiased inside-ness in [0, 1]: a linear ramp ``soft`` pixels wide across the edge."""
    return torch.rsub(d, 0.5, alpha=size / (2.0 * soft)).clamp_(0.0, 1.0)


def _band(d: torch.Tensor, half_width: float, size: int) -> torch.Tensor:
    """Antialiased band |d| < half_width (an outline), in [0, 1]."""
    k = size / 2.0
    return torch.rsub(d.abs(), 0.5 + half_width * k, alpha=k).clamp_(0.0, 1.0)


def _rgb(*c: float, device: torch.device) -> torch.Tensor:
    return torch.tensor(c, device=device).view(1, 3, 1, 1)


# ----------------------------------------------------------------------------------------------
# the styles: each takes the fields and returns (B, 3, H, W) in [0, 1]


def _flat(scenes: SceneBatch, size: int) -> torch.Tensor:
    d, col, seeds = *_object_fields(scenes, _grid(size, scenes.device)), scenes.seed
    tint = hash_uniform(seeds, 200, 3).view(-1, 3, 1, 1) * 0.06  # a barely visible per-scene tint
    bg = _rgb(0.90, 0.90, 0.88, device=d.device) + tint
    return torch.lerp(bg, col, _coverage(d, size))


@lru_cache(maxsize=16)
def _hatch(size: int, device: torch.device) -> torch.Tensor:
    """(1, 1, H, W) diagonal hatching: 0.25 between lines, 0.85 on them (at least 3 px apart)."""
    g = _grid(size, device)
    period = max(0.09, 6.0 / size)
    on = ((g[:, None] + g[None, :]) / period) % 1.0 < 0.5
    return (0.25 + 0.6 * on.float())[None, None]


def _sketch(scenes: SceneBatch, size: int) -> torch.Tensor:
    d, col = _object_fields(scenes, _grid(size, scenes.device))
    tex = _textures(size, d.device)
    pick = _pick(scenes.seed, 0)
    bg = tex["sketch_paper"].index_select(0, pick)  # (B, 3, H, W)
    dw = d.add_(tex["wobble"].index_select(0, pick))  # pencil wobble
    line = torch.maximum(_band(dw, 0.022, size), _band(dw + 0.03, 0.010, size).mul_(0.55))  # a doubled stroke
    ink = torch.maximum(line, _coverage(dw + 0.02, size).mul_(_hatch(size, d.device)))
    return bg.lerp_(col, ink)


def _watercolour(scenes: SceneBatch, size: int) -> torch.Tensor:
    d, col = _object_fields(scenes, _grid(size, scenes.device))
    tex = _textures(size, d.device)
    pick = _pick(scenes.seed, 1)
    dn = d.add_(tex["bleed"].index_select(0, pick))  # ragged, bleeding edges
    rim = _band(dn + 0.025, 0.025, size)  # pigment pools at the rim
    k = torch.add(tex["density"].index_select(0, pick), rim, alpha=0.3).clamp_(max=1.0)
    k.mul_(_coverage(dn, size, soft=2.5))  # (B, 1, H, W) how much pigment
    # subtractive mixing keeps the hue: paper * (1 - k + k * colour)
    return tex["water_paper"].index_select(0, pick).mul_(torch.addcmul(1.0 - k, k, col))


@lru_cache(maxsize=16)
def _neon_wall(size: int, device: torch.device) -> torch.Tensor:
    g = _grid(size, device)
    line = ((g * 4 + 4) % 1.0 < 8.0 / size).float()  # a faint grid on the wall
    wall = 0.05 * torch.maximum(line[:, None], line[None, :])
    return torch.tensor((0.05, 0.04, 0.10), device=device).view(1, 3, 1, 1) + wall[None, None]


def _neon(scenes: SceneBatch, size: int) -> torch.Tensor:
    d, col, seeds = *_object_fields(scenes, _grid(size, scenes.device)), scenes.seed
    core = _band(d, 0.018, size)  # (B, 1, H, W) the bright tube
    glow = torch.exp(d.abs() * -12.0).mul_(0.85).add_(_coverage(d, size), alpha=0.18).add_(core, alpha=0.55)
    return torch.addcmul(_neon_wall(size, d.device) + 0.45 * core, col, glow).clamp_(0.0, 1.0)


def _pixel(scenes: SceneBatch, size: int) -> torch.Tensor:
    block = max(2, size // 32)  # 32 blocks across (16 at 32 px): shapes stay readable
    cells = -(-size // block)  # ceil
    # sample the fields at the centre of each block only, then blow the blocks up
    idx = (torch.arange(cells, device=scenes.device) * block + block // 2).clamp(max=size - 1)
    d, col = _object_fields(scenes, _grid(size, scenes.device)[idx])  # (B, 1, c, c), (B, 3, c, c)
    inside = (d < 0).float()
    outline = ((d >= 0) & (d < 2.0 * block / size)).float()  # one block wide, outside the shape
    img = torch.lerp(_pixel_bg(cells, scenes.device), col, inside).lerp_(torch.zeros(()).add_(0.12), outline)
    return F.interpolate(img, scale_factor=block, mode="nearest")[:, :, :size, :size]


@lru_cache(maxsize=16)
def _pixel_bg(cells: int, device: torch.device) -> torch.Tensor:
    yy, xx = torch.meshgrid(torch.arange(cells), torch.arange(cells), indexing="ij")
    checker = ((yy // 2 + xx // 2) % 2).float() * 0.05  # 2x2-block checkerboard
    return (torch.tensor((0.78, 0.84, 0.88)).view(1, 3, 1, 1) - checker).to(device)


@lru_cache(maxsize=16)
def _dots(size: int, period: float, radius: float, device: torch.device) -> torch.Tensor:
    g = _grid(size, device)
    fy = (g[:, None] / period) % 1.0 - 0.5
    fx = (g[None, :] / period) % 1.0 - 0.5
    return ((fy * fy + fx * fx) < radius * radius).float()  # (H, W)


@lru_cache(maxsize=16)
def _comic_layers(size: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    bg = _rgb(1.0, 0.95, 0.78, device=device) - 0.12 * _dots(size, max(0.12, 8.0 / size), 0.22, device)
    shade = 1.0 - 0.3 * _dots(size, max(0.08, 6.0 / size), 0.3, device)  # halftone in the fills
    return bg, shade[None, None]


def _comic(scenes: SceneBatch, size: int) -> torch.Tensor:
    d, col = _object_fields(scenes, _grid(size, scenes.device))
    bg, shade = _comic_layers(size, d.device)
    img = torch.lerp(bg, col * shade, _coverage(d, size))
    return img.lerp_(torch.full((), 0.05, device=d.device), _band(d, 0.03, size))  # bold ink outline


_STYLE_FN = (_flat, _sketch, _watercolour, _neon, _pixel, _comic)
assert len(_STYLE_FN) == len(STYLES)


# ----------------------------------------------------------------------------------------------
# the public entry point


@torch.no_grad()
def render(scenes: SceneBatch, style: str | int | Sequence[str | int] | torch.Tensor = "flat", size: int = 64,
           device: torch.device | str | None = None) -> torch.Tensor:
    """Draws every scene of ``scenes`` in ``style`` at ``size`` x ``size`` pixels.

    Args:
        scenes: a :class:`SceneBatch` (e.g. from :func:`~spokenstyle.data.scenes.sample_scenes`).
        style: a style name from :data:`STYLES` or its id, or one name/id per scene.
        size: image side in pixels, 32 to 128.
        device: where to render (default: where ``scenes`` are).

    Returns:
        float32 tensor (B, 3, size, size) with values in [0, 1].

    Example:
        >>> from spokenstyle.data import sample_scenes, render
        >>> render(sample_scenes(range(4)), "neon", 64).shape
        torch.Size([4, 3, 64, 64])
    """
    if not isinstance(scenes, SceneBatch):
        raise TypeError(f"scenes must be a SceneBatch (see sample_scenes), got {type(scenes).__name__}")
    size = check_size(size)
    if device is not None:
        scenes = scenes.to(device)
    ids = style_ids(style, len(scenes), scenes.device)
    out = torch.empty(len(scenes), 3, size, size, device=scenes.device)
    # sort by style, then by object count (most first): every step then works on contiguous rows
    key = ids * (MAX_OBJECTS + 1) + (MAX_OBJECTS - scenes.n_objects)
    order = key.argsort(stable=True)
    styles, counts = ids[order].unique_consecutive(return_counts=True)
    start = 0
    for s, n in zip(styles.tolist(), counts.tolist()):
        for lo in range(start, start + n, _CHUNK):
            rows = order[lo: min(lo + _CHUNK, start + n)]
            out.index_copy_(0, rows, _STYLE_FN[s](scenes[rows], size))
        start += n
    return out


@torch.no_grad()
def colour_masks(scenes: SceneBatch, size: int) -> torch.Tensor:
    """Which colour covers each pixel: (B, size, size) int64, 0 for background and 1 + colour id
    inside an object (sampled at pixel centres; any size from 1 px). Style-independent ground
    truth for segmentation, e.g. the scene judge's auxiliary loss."""
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        raise ValueError(f"size must be a positive int, got {size!r}")
    n = len(COLOUR_RGB)
    ids = torch.arange(1, n + 1, dtype=torch.float32, device=scenes.device)[:, None]  # (n, 1)
    d, col = _object_fields(scenes, _grid(size, scenes.device), ids)  # (B, 1, H, W) each
    return torch.where(d[:, 0] < 0, col[:, 0].round().long(), 0)

