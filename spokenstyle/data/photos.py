"""Real photographs and a painterly domain made from them, offline.

The photos are the ones that ship *inside* installed packages (scikit-image, scikit-learn,
matplotlib), read straight from the package folders, so nothing is ever downloaded (several
``skimage.data`` images are fetched at run time; those are not used). :data:`PHOTO_CREDITS`
gives the author, source and licence of each; the book prints it.

Each photo is resized so that its shorter side is 256 px; the last 30 % of its longer side
(at least 80 px) is the held-out ``test`` region and the rest is ``train``, so patches of the
two splits never overlap. Item ``i`` of :class:`PhotoPatches` is a ``size`` x ``size`` crop at a
position drawn from the item's seed (and mirrored half of the time).

The **painterly** domain applies procedural filters (batched torch code, deterministic):

* ``oil``: the Kuwahara filter (each pixel takes the mean colour of the least varied of its
  four neighbouring quadrants: flat strokes, kept edges; Kuwahara et al. 1976), a saturation
  boost and a canvas weave;
* ``watercolour``: Kuwahara smoothing, colours washed towards the paper, darker pigment along
  edges (Sobel), paper grain;
* ``pencil``: a colour-pencil sketch by "colour dodge" (the image divided by a blurred
  inverse: edges turn into strokes, flat areas go white), with hatching.

Three more filters (:data:`MANNER_FILTERS`, chapter 9) imitate a painter's *manner*, and only
that: they are procedural approximations, not anybody's work, and nothing was learnt from a
painting.

* ``pointillist``: dots of pure, saturated colour on pale paper, a few pixels apart on jittered
  grids, each dot's colour varied a little (after the divisionism of Seurat and Signac);
* ``strokes``: directional brush strokes that follow the picture's *flow field*, the direction
  of least change of its structure tensor, drawn by line-integral convolution of a fixed noise
  (Cabral & Leedom 1993; Kyprianidis & Döllner's flow-based filters), over Kuwahara-flattened
  colour (after the strokes of van Gogh);
* ``woodblock``: flat fields of a few colours (k-means on each picture's colours) with dark
  outlines where fields of different tone meet, tinted towards warm paper (after ukiyo-e
  woodblock prints).

The ``"mixed"`` domain of :class:`PhotoPatches` draws from the first three filters only
(:data:`MIXED_FILTERS`), as it always has; :func:`painterly` and ``PhotoPatches(painterly=...)``
take any of the six.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch.utils.data import Dataset

from .scenes import hash_uniform
from .splits import PHOTO_SPLITS
from .styles import _textures

__all__ = [
    "PHOTO_CREDITS",
    "PHOTO_NAMES",
    "PAINTERLY_FILTERS",
    "MANNER_FILTERS",
    "ALL_FILTERS",
    "MIXED_FILTERS",
    "PhotoCredit",
    "load_photo",
    "photo_path",
    "to_rgb",
    "kuwahara",
    "pointillist",
    "strokes",
    "woodblock",
    "painterly",
    "PhotoPatches",
    "UnpairedPhotos",
    "photo_batches",
]


@dataclass(frozen=True)
class PhotoCredit:
    """Where a bundled photo comes from and under which terms it may be used."""

    package: str  # the installed package that ships it
    resource: str  # "module:filename" inside that package
    title: str
    author: str
    licence: str
    url: str


PHOTO_CREDITS: dict[str, PhotoCredit] = {
    "astronaut": PhotoCredit("scikit-image", "skimage.data:astronaut.png", "Eileen Collins, NASA astronaut",
                             "NASA", "public domain (no known copyright restrictions)", "https://flic.kr/p/r9qvLn"),
    "chelsea": PhotoCredit("scikit-image", "skimage.data:chelsea.png", "Chelsea the cat", "Stefan van der Walt",
                           "CC0", "https://scikit-image.org/docs/stable/api/skimage.data.html#skimage.data.chelsea"),
    "coffee": PhotoCredit("scikit-image", "skimage.data:coffee.png", "Coffee cup (courtesy of Pikolo Espresso Bar)",
                          "Rachel Michetti", "CC0",
                          "https://scikit-image.org/docs/stable/api/skimage.data.html#skimage.data.coffee"),
    "rocket": PhotoCredit("scikit-image", "skimage.data:rocket.jpg", "Launch of DSCOVR on a Falcon 9", "SpaceX",
                          "public domain (released by SpaceX)",
                          "https://www.flickr.com/photos/spacexphotos/16511594820/"),
    "china": PhotoCredit("scikit-learn", "sklearn.datasets.images:china.jpg", "China (a temple)",
                         "danielbuechele on Flickr", "CC BY 2.0",
                         "https://www.flickr.com/photos/danielbuechele/6061409035/"),
    "flower": PhotoCredit("scikit-learn", "sklearn.datasets.images:flower.jpg", "Flower",
                          "vultilion on Flickr", "CC BY 2.0",
                          "https://www.flickr.com/photos/vultilion/6056698931/"),
    "grace_hopper": PhotoCredit("matplotlib", "matplotlib:mpl-data/sample_data/grace_hopper.jpg",
                                "Commodore Grace M. Hopper, USN", "U.S. Navy",
                                "public domain (work of the U.S. federal government)",
                                "https://commons.wikimedia.org/wiki/File:Commodore_Grace_M._Hopper,_USN_(covered).jpg"),
}
PHOTO_NAMES: tuple[str, ...] = tuple(PHOTO_CREDITS)
SHORT_SIDE = 256


# ----------------------------------------------------------------------------------------------
# loading


def photo_path(name: str) -> Path:
    """The file of photo ``name`` inside its installed package."""
    if name not in PHOTO_CREDITS:
        raise ValueError(f"unknown photo {name!r}; expected one of {PHOTO_NAMES}")
    module, filename = PHOTO_CREDITS[name].resource.split(":")
    path = Path(str(resources.files(module) / filename))
    if not path.is_file():
        raise FileNotFoundError(f"{filename} is missing from the installed {PHOTO_CREDITS[name].package}; "
                                "reinstall it (the photo ships inside the package, nothing is downloaded)")
    return path


def to_rgb(image: Image.Image | np.ndarray) -> np.ndarray:
    """Any PIL image (L, LA, P, RGBA, CMYK, I;16, I, F, ...) or array as uint8 RGB (H, W, 3)."""
    if isinstance(image, np.ndarray):
        arr = image
        if arr.ndim == 2:
            arr = np.repeat(arr[..., None], 3, axis=2)
        if arr.ndim != 3 or arr.shape[2] not in (1, 3, 4):
            raise ValueError(f"expected an image array (H, W), (H, W, 1), (H, W, 3) or (H, W, 4); got {arr.shape}")
        arr = np.repeat(arr, 3, axis=2) if arr.shape[2] == 1 else arr[..., :3]
        if arr.dtype != np.uint8:
            hi = 1.0 if np.issubdtype(arr.dtype, np.floating) and arr.max() <= 1.0 else float(np.iinfo(arr.dtype).max
                                                                                             if np.issubdtype(arr.dtype, np.integer) else 255.0)
            arr = np.clip(arr.astype(np.float64) / hi * 255.0 + 0.5, 0, 255).astype(np.uint8)
        return np.ascontiguousarray(arr)
    if not isinstance(image, Image.Image):
        raise TypeError(f"expected a PIL image or a numpy array, got {type(image).__name__}")
    if image.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        return to_rgb(np.asarray(image))  # scale the full range to 8 bits instead of clipping
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        image = Image.alpha_composite(white, rgba)  # transparent pixels over white
    return np.asarray(image.convert("RGB"))


MIN_FILTER_SIZE = 7  # the painterly filters' widest reflect padding needs pictures of at least 7 x 7
MAX_SHORT_SIDE = 2048  # load_photo's largest short side: the bundled photos are at most 768 px; more is only memory


@lru_cache(maxsize=None)
def load_photo(name: str, short_side: int = SHORT_SIDE) -> torch.Tensor:
    """Photo ``name`` as float (3, H, W) in [0, 1], resized so that its shorter side is
    ``short_side`` (an int from 8 to :data:`MAX_SHORT_SIDE`, which bounds the memory it takes)."""
    if isinstance(short_side, bool) or not isinstance(short_side, int) or not 8 <= short_side <= MAX_SHORT_SIDE:
        raise ValueError(f"short_side must be an int from 8 to {MAX_SHORT_SIDE} (pixels), got {short_side!r}")
    with Image.open(photo_path(name)) as im:
        arr = to_rgb(im)
    x = torch.from_numpy(arr.copy()).permute(2, 0, 1).float().div(255.0)[None]  # (1, 3, H, W)
    h, w = x.shape[-2:]
    scale = short_side / min(h, w)
    x = F.interpolate(x, size=(round(h * scale), round(w * scale)), mode="bilinear", antialias=True, align_corners=False)
    return x[0].clamp(0.0, 1.0)


def _region(name: str, split: str) -> tuple[int, int, int, int]:
    """(top, left, height, width) of the split's region of photo ``name``."""
    _, h, w = load_photo(name).shape
    long_h = h >= w
    length = h if long_h else w
    test = max(80, int(0.3 * length))
    a, b = (0, length - test) if split == "train" else (length - test, test)
    return (a, 0, b, w) if long_h else (0, a, h, b)


# ----------------------------------------------------------------------------------------------
# painterly filters (batched: (B, 3, H, W) in [0, 1] -> same)


def _check_images(x: torch.Tensor, min_size: int = MIN_FILTER_SIZE) -> torch.Tensor:
    if not isinstance(x, torch.Tensor) or x.dim() != 4 or x.shape[1] != 3:
        raise ValueError(f"expected images (B, 3, H, W), got {tuple(x.shape) if isinstance(x, torch.Tensor) else type(x)}")
    if not x.dtype.is_floating_point:
        raise TypeError(f"expected float images in [0, 1], got dtype {x.dtype}")
    if min(x.shape[-2:]) < min_size:
        raise ValueError(f"the painterly filters need pictures of at least {min_size} x {min_size} pixels "
                         f"(their reflect padding), got {tuple(x.shape[-2:])}")
    return x


def _luma(x: torch.Tensor) -> torch.Tensor:
    return (0.299 * x[:, 0:1] + 0.587 * x[:, 1:2] + 0.114 * x[:, 2:3])  # (B, 1, H, W)


def kuwahara(x: torch.Tensor, radius: int = 3) -> torch.Tensor:
    """The Kuwahara filter: each pixel gets the mean colour of the one of its four
    (radius+1)^2 quadrants whose brightness varies least (Kuwahara et al. 1976).

    Raises:
        ValueError: ``radius`` is not an int from 1 to (the picture's shorter side − 1)."""
    if isinstance(radius, bool) or not isinstance(radius, int) or radius < 1:
        raise ValueError(f"radius must be a positive int, got {radius!r}")
    x = _check_images(x, min_size=1)
    if radius >= min(x.shape[-2:]):
        raise ValueError(f"radius {radius} needs pictures larger than {radius} x {radius} pixels (its reflect "
                         f"padding), got {tuple(x.shape[-2:])}")
    k = radius + 1
    pad = F.pad(x, (radius, radius, radius, radius), mode="reflect")
    lum = _luma(pad)
    mean = F.avg_pool2d(pad, k, stride=1)  # (B, 3, H + r, W + r): window starting at each pixel
    lmean = F.avg_pool2d(lum, k, stride=1)
    lvar = F.avg_pool2d(lum * lum, k, stride=1) - lmean ** 2
    H, W = x.shape[-2:]
    # quadrant (dy, dx) of output pixel (i, j) starts at padded (i + dy, j + dx), dy, dx in {0, r}
    offsets = [(0, 0), (0, radius), (radius, 0), (radius, radius)]
    var = torch.stack([lvar[..., dy: dy + H, dx: dx + W] for dy, dx in offsets], 1)  # (B, 4, 1, H, W)
    means = torch.stack([mean[..., dy: dy + H, dx: dx + W] for dy, dx in offsets], 1)  # (B, 4, 3, H, W)
    best = var.argmin(1, keepdim=True).expand(-1, -1, 3, -1, -1)  # (B, 1, 3, H, W)
    return means.gather(1, best)[:, 0]


def _blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur (reflect padding)."""
    r = max(1, int(3 * sigma))
    t = torch.arange(-r, r + 1, dtype=x.dtype, device=x.device)
    k = torch.exp(-t ** 2 / (2 * sigma ** 2))
    k = k / k.sum()
    C = x.shape[1]
    x = F.conv2d(F.pad(x, (r, r, 0, 0), mode="reflect"), k.view(1, 1, 1, -1).expand(C, 1, 1, -1), groups=C)
    return F.conv2d(F.pad(x, (0, 0, r, r), mode="reflect"), k.view(1, 1, -1, 1).expand(C, 1, -1, 1), groups=C)


def _sobel(lum: torch.Tensor) -> torch.Tensor:
    kx = torch.tensor([[-1.0, 0, 1], [-2, 0, 2], [-1, 0, 1]], device=lum.device, dtype=lum.dtype) / 4
    p = F.pad(lum, (1, 1, 1, 1), mode="replicate")
    gx = F.conv2d(p, kx.view(1, 1, 3, 3))
    gy = F.conv2d(p, kx.T.reshape(1, 1, 3, 3))
    return torch.sqrt(gx * gx + gy * gy)  # (B, 1, H, W)


def _grain(x: torch.Tensor, stream: int) -> torch.Tensor:
    """(1, 1, H, W) paper grain in [0, 1] (fixed texture, so filters stay deterministic)."""
    H, W = x.shape[-2:]
    side = max(H, W)
    tex = _textures(max(32, min(128, side)), x.device)["sketch_paper"][stream % 32, :1]  # (1, S, S)
    tex = (tex - tex.min()) / (tex.max() - tex.min() + 1e-6)
    return F.interpolate(tex[None], size=(H, W), mode="nearest")


def oil(x: torch.Tensor) -> torch.Tensor:
    """Oil paint: Kuwahara strokes, richer colour, a faint canvas weave."""
    y = kuwahara(x, radius=3)
    gray = _luma(y)
    y = (gray + 1.35 * (y - gray)).clamp(0, 1)  # saturation boost
    H, W = x.shape[-2:]
    i = torch.arange(H, device=x.device, dtype=x.dtype)[:, None]
    j = torch.arange(W, device=x.device, dtype=x.dtype)[None, :]
    weave = 0.5 + 0.5 * torch.sin(i * 2.1) * torch.sin(j * 2.1)  # (H, W)
    return (y * (0.93 + 0.07 * weave)).clamp(0, 1)


def watercolour(x: torch.Tensor) -> torch.Tensor:
    """Watercolour: smoothed washes, lighter colours, dark pigment on edges, paper grain."""
    y = _blur(kuwahara(x, radius=2), 1.0)
    wash = 1.0 - 0.7 * (1.0 - y)  # pigment thinned with water: towards white paper
    edge = _sobel(_luma(y))
    edge = (edge / (edge.amax((2, 3), keepdim=True) + 1e-6)).clamp(0, 1)
    wash = wash * (1.0 - 0.45 * edge)
    return (wash * (0.94 + 0.06 * _grain(x, 1))).clamp(0, 1)


def pencil(x: torch.Tensor) -> torch.Tensor:
    """Colour pencil: colour dodge of the image by its blurred inverse, plus light hatching."""
    x = _check_images(x)
    gray = _luma(x)
    dodge = (gray / (1.0 - _blur(1.0 - gray, 2.0) + 1e-3) * 0.98).clamp(0, 1)  # (B, 1, H, W) strokes
    strokes = dodge ** 2
    H, W = x.shape[-2:]
    i = torch.arange(H, device=x.device, dtype=x.dtype)[:, None]
    j = torch.arange(W, device=x.device, dtype=x.dtype)[None, :]
    hatch = ((i + j) % 4 < 1).to(x.dtype)  # diagonal lines every 4 px
    shade = 1.0 - 0.25 * hatch * (1.0 - gray)  # hatching where the photo is dark
    tint = 1.0 - 0.45 * (1.0 - x)  # a light wash of the original colour
    return (strokes * shade * tint * (0.95 + 0.05 * _grain(x, 2))).clamp(0, 1)


PAINTERLY_FILTERS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "oil": oil, "watercolour": watercolour, "pencil": pencil,
}


# -- a painter's manner, approximated (chapter 9) -----------------------------------------------

PAPER = (0.96, 0.94, 0.88)  # warm, off-white paper under the dots and the prints
INK = (0.13, 0.11, 0.12)  # the woodblock's outline colour


def _paper(x: torch.Tensor) -> torch.Tensor:
    return torch.tensor(PAPER, dtype=x.dtype, device=x.device).view(1, 3, 1, 1).expand_as(x)


def _saturate(x: torch.Tensor, amount: float) -> torch.Tensor:
    gray = _luma(x)
    return (gray + amount * (x - gray)).clamp(0, 1)


def pointillist(x: torch.Tensor, spacing: int = 4, radius: float = 1.7) -> torch.Tensor:
    """Pointillism, approximated: round dots of saturated colour on pale paper.

    Four jittered grids of dots, ``spacing`` px apart and offset by half a cell from each other,
    are laid down in turn on a pale ground toned by the picture's blurred colours; each dot (``radius`` px) takes the colour of the slightly blurred,
    saturated picture at its centre, varied per dot by up to ±0.08 per channel (the mixing of
    neighbouring colours is left to the eye). The jitter and the variation come from fixed
    generators, so the filter is deterministic."""
    x = _check_images(x)
    if isinstance(spacing, bool) or not isinstance(spacing, int) or not 2 <= spacing <= 32:
        raise ValueError(f"spacing must be an int from 2 to 32 (px), got {spacing!r}")
    if not 0.5 <= float(radius) <= spacing:
        raise ValueError(f"radius must be from 0.5 to spacing ({spacing}) px, got {radius!r}")
    B, _, H, W = x.shape
    vivid = _saturate(_blur(x, 0.8), 1.6)
    wide = min(3.0, (min(H, W) - 1) / 3)  # the blur's reflect padding must fit in a small picture
    out = 0.6 * _paper(x) + 0.4 * _blur(x, wide)  # a ground toned by the picture's colours, as painters prime
    ys = torch.arange(H, device=x.device, dtype=x.dtype)[:, None].expand(H, W)
    xs = torch.arange(W, device=x.device, dtype=x.dtype)[None, :].expand(H, W)
    half = spacing // 2
    for layer, (oy, ox) in enumerate(((0, 0), (half, half), (0, half), (half, 0))):
        gen = torch.Generator().manual_seed(7_001 + layer)
        rows, cols = H // spacing + 2, W // spacing + 2
        jitter = ((torch.rand(2, rows, cols, generator=gen) - 0.5) * 0.6 * spacing).to(x.device, x.dtype)
        shade = ((torch.rand(3, rows, cols, generator=gen) - 0.5) * 0.16).to(x.device, x.dtype)
        iy = torch.div(ys + oy, spacing, rounding_mode="floor").long()  # (H, W) the cell of each pixel
        ix = torch.div(xs + ox, spacing, rounding_mode="floor").long()
        cy = iy * spacing - oy + (spacing - 1) / 2 + jitter[0, iy, ix]  # the dot centre of that cell
        cx = ix * spacing - ox + (spacing - 1) / 2 + jitter[1, iy, ix]
        inside = (ys - cy) ** 2 + (xs - cx) ** 2 <= radius ** 2  # (H, W)
        py = cy.round().long().clamp(0, H - 1)
        px = cx.round().long().clamp(0, W - 1)
        colour = vivid[:, :, py, px] + shade[:, iy, ix][None]  # (B, 3, H, W): the centre's colour, varied
        out = torch.where(inside[None, None], colour.clamp(0, 1), out)
    return out


def _signed_sobel(lum: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    kx = torch.tensor([[-1.0, 0, 1], [-2, 0, 2], [-1, 0, 1]], device=lum.device, dtype=lum.dtype) / 4
    p = F.pad(lum, (1, 1, 1, 1), mode="replicate")
    return F.conv2d(p, kx.view(1, 1, 3, 3)), F.conv2d(p, kx.T.reshape(1, 1, 3, 3))


def flow_field(x: torch.Tensor, sigma: float = 2.0) -> torch.Tensor:
    """(B, 2, H, W) unit vectors (dx, dy) along which the picture changes least: the minor
    eigenvector of its smoothed structure tensor, i.e. along edges and stripes, not across."""
    x = _check_images(x, min_size=1)
    gx, gy = _signed_sobel(_luma(_blur(x, 1.0)) if min(x.shape[-2:]) > 3 else _luma(x))
    J = torch.cat([gx * gx, gx * gy, gy * gy], 1)
    J = _blur(J, sigma) if min(x.shape[-2:]) > 3 * max(1, int(3 * sigma)) else J
    jxx, jxy, jyy = J[:, 0:1], J[:, 1:2], J[:, 2:3]
    theta = 0.5 * torch.atan2(2 * jxy, jxx - jyy) + math.pi / 2  # gradient direction, turned a quarter
    return torch.cat([torch.cos(theta), torch.sin(theta)], 1)


def strokes(x: torch.Tensor, length: int = 6) -> torch.Tensor:
    """Directional brush strokes, approximated: line-integral convolution (Cabral & Leedom 1993)
    of a fixed noise along the picture's :func:`flow_field`, ``length`` px each way, modulating
    Kuwahara-flattened, saturated colour; stroke edges darken a little where the picture has
    edges. Deterministic (the noise comes from a fixed generator)."""
    x = _check_images(x)
    if isinstance(length, bool) or not isinstance(length, int) or not 1 <= length <= 32:
        raise ValueError(f"length must be an int from 1 to 32 (px), got {length!r}")
    B, _, H, W = x.shape
    colour = _saturate(kuwahara(x, radius=2), 1.3)
    flow = flow_field(x)  # (B, 2, H, W)
    gen = torch.Generator().manual_seed(9_001)
    noise = torch.rand(1, 1, H, W, generator=gen).to(x.device, x.dtype).expand(B, 1, H, W)
    # positions in grid_sample's [-1, 1] coordinates (align_corners=True: -1 and 1 are pixel centres)
    ys = torch.linspace(-1, 1, H, device=x.device, dtype=x.dtype)
    xs = torch.linspace(-1, 1, W, device=x.device, dtype=x.dtype)
    gy, gx = torch.meshgrid(ys, xs, indexing="ij")
    start = torch.stack([gx, gy], -1)[None].expand(B, H, W, 2)  # (B, H, W, 2) as (x, y)
    scale = torch.tensor([2.0 / max(W - 1, 1), 2.0 / max(H - 1, 1)], device=x.device, dtype=x.dtype)
    total, count = noise.clone(), 1
    for sign in (1.0, -1.0):
        pos = start
        for _ in range(length):
            step = F.grid_sample(flow, pos, mode="bilinear", padding_mode="border", align_corners=True)
            pos = (pos + sign * step.permute(0, 2, 3, 1) * scale).clamp(-1, 1)  # one pixel along the flow
            total = total + F.grid_sample(noise, pos, mode="bilinear", padding_mode="border", align_corners=True)
            count += 1
    lic = total / count  # (B, 1, H, W): streaks along the flow
    lic = (lic - lic.mean((2, 3), keepdim=True)) / (lic.std((2, 3), keepdim=True) + 1e-6)
    edge = _sobel(_luma(colour))
    edge = (edge / (edge.amax((2, 3), keepdim=True) + 1e-6)).clamp(0, 1)
    return (colour * (1.0 + 0.22 * lic.clamp(-2.5, 2.5)) * (1.0 - 0.35 * edge)).clamp(0, 1)


def _kmeans_colours(x: torch.Tensor, k: int, iterations: int = 8) -> tuple[torch.Tensor, torch.Tensor]:
    """Per picture, ``k`` colour centres by k-means (Lloyd's algorithm) started from the colours at
    evenly spaced luminance quantiles (deterministic); returns (labels (B, H, W), centres (B, k, 3))."""
    B, _, H, W = x.shape
    pixels = x.flatten(2).transpose(1, 2)  # (B, N, 3)
    order = _luma(x).flatten(1).argsort(1)  # (B, N)
    picks = order[:, ((torch.arange(k, device=x.device) + 0.5) / k * order.shape[1]).long()]  # (B, k)
    centres = torch.gather(pixels, 1, picks[..., None].expand(-1, -1, 3))  # (B, k, 3)
    for _ in range(iterations):
        labels = torch.cdist(pixels, centres).argmin(-1)  # (B, N)
        one_hot = F.one_hot(labels, k).to(x.dtype)  # (B, N, k)
        mass = one_hot.sum(1)[..., None]  # (B, k, 1)
        centres = torch.where(mass > 0, one_hot.transpose(1, 2) @ pixels / mass.clamp(min=1), centres)
    labels = torch.cdist(pixels, centres).argmin(-1)
    return labels.view(B, H, W), centres


def woodblock(x: torch.Tensor, colours: int = 8, step: float = 0.12) -> torch.Tensor:
    """A woodblock print, approximated: flat fields of ``colours`` colours (k-means on the
    Kuwahara-flattened picture, the colours then saturated and tinted towards the paper) with
    dark outlines where two fields meet whose luminance differs by more than ``step`` (fields of
    nearly one tone are cut by the same block, so they get no line). Every pixel is one of the
    ``colours`` field colours or the ink colour."""
    x = _check_images(x)
    if isinstance(colours, bool) or not isinstance(colours, int) or not 2 <= colours <= 16:
        raise ValueError(f"colours must be an int from 2 to 16, got {colours!r}")
    if not 0.0 <= float(step) <= 1.0:
        raise ValueError(f"step must be a luminance difference from 0 to 1, got {step!r}")
    flat = kuwahara(kuwahara(x, radius=2), radius=2)
    labels, centres = _kmeans_colours(flat, colours)  # (B, H, W), (B, k, 3)
    paper = torch.tensor(PAPER, dtype=x.dtype, device=x.device)
    inks = _saturate(centres.transpose(1, 2)[..., None], 1.25)[..., 0].transpose(1, 2)  # (B, k, 3)
    inks = (0.85 * inks + 0.15 * paper).clamp(0, 1)
    out = torch.gather(inks, 1, labels.flatten(1)[..., None].expand(-1, -1, 3))  # (B, N, 3)
    out = out.transpose(1, 2).reshape(x.shape)
    lum = _luma(out)
    border = torch.zeros_like(lum, dtype=torch.bool)
    border[..., 1:, :] |= (lum[..., 1:, :] - lum[..., :-1, :]).abs() > step  # a field ends below ...
    border[..., :, 1:] |= (lum[..., :, 1:] - lum[..., :, :-1]).abs() > step  # ... or to the right
    ink = torch.tensor(INK, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    return torch.where(border, ink.expand_as(out), out)


MANNER_FILTERS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "pointillist": pointillist, "strokes": strokes, "woodblock": woodblock,
}
"""Chapter 9's procedural approximations of a painter's manner (not anybody's work)."""

ALL_FILTERS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {**PAINTERLY_FILTERS, **MANNER_FILTERS}
"""Every filter :func:`painterly` takes: the painterly domain's three and the three manners."""

MIXED_FILTERS: tuple[str, ...] = tuple(PAINTERLY_FILTERS)
"""What ``"mixed"`` draws from: the first three filters (fixed, so adding a filter changes no data set)."""


@torch.no_grad()
def painterly(x: torch.Tensor, filter: str | Sequence[str] = "oil") -> torch.Tensor:
    """Applies a painterly filter (one name for the batch, or one per image; any of
    :data:`ALL_FILTERS`) to (B, 3, H, W) in [0, 1]."""
    x = _check_images(x)
    names = [filter] * x.shape[0] if isinstance(filter, str) else list(filter)
    if len(names) != x.shape[0]:
        raise ValueError(f"got {len(names)} filter names for {x.shape[0]} images")
    for n in set(names):
        if n not in ALL_FILTERS:
            raise ValueError(f"unknown painterly filter {n!r}; expected one of {tuple(ALL_FILTERS)}")
    out = torch.empty_like(x)
    for n in sorted(set(names)):
        idx = torch.tensor([i for i, m in enumerate(names) if m == n], device=x.device)
        out[idx] = ALL_FILTERS[n](x[idx])
    return out


# ----------------------------------------------------------------------------------------------
# datasets


def _patch_params(seeds: torch.Tensor, split: str, size: int) -> list[tuple[str, int, int, bool]]:
    """(photo, top, left, mirrored) for each seed."""
    u = hash_uniform(seeds, 400, 4).tolist()
    out = []
    for a, b, c, d in u:
        name = PHOTO_NAMES[min(int(a * len(PHOTO_NAMES)), len(PHOTO_NAMES) - 1)]
        top, left, h, w = _region(name, split)
        out.append((name, top + int(b * (h - size + 1)), left + int(c * (w - size + 1)), d < 0.5))
    return out


def _patches(seeds: torch.Tensor, split: str, size: int) -> torch.Tensor:
    crops = []
    for name, top, left, flip in _patch_params(seeds, split, size):
        crop = load_photo(name)[:, top: top + size, left: left + size]
        crops.append(crop.flip(-1) if flip else crop)
    return torch.stack(crops)  # (B, 3, size, size)


def _filters_for(seeds: torch.Tensor, filter: str) -> list[str]:
    if filter != "mixed":
        if filter not in ALL_FILTERS:
            raise ValueError(f"unknown painterly filter {filter!r}; expected one of "
                             f"{tuple(ALL_FILTERS) + ('mixed',)}")
        return [filter] * len(seeds)
    names = MIXED_FILTERS
    u = hash_uniform(seeds, 401, 1)[:, 0].tolist()
    return [names[min(int(v * len(names)), len(names) - 1)] for v in u]


@lru_cache(maxsize=None)
def largest_patch(split: str) -> int:
    """The largest patch every photo's ``split`` region holds (80 px for "test", 176 for "train")."""
    return min(min(_region(name, split)[2:]) for name in PHOTO_NAMES)


def _check_common(split: str, size: int, length: int) -> None:
    if split not in PHOTO_SPLITS:
        raise ValueError(f"unknown split {split!r}; expected one of {tuple(PHOTO_SPLITS)}")
    if isinstance(size, bool) or not isinstance(size, int) or not 16 <= size <= min(128, largest_patch(split)):
        raise ValueError(f"patch size must be an int from 16 to {min(128, largest_patch(split))} px for split "
                         f"{split!r} (its regions of the photos are no larger), got {size!r}")
    if isinstance(length, bool) or not isinstance(length, int) or not 1 <= length <= 2**40:
        raise ValueError(f"length must be an int from 1 to 2**40, got {length!r}")


class PhotoPatches(Dataset):
    """Patches of the bundled photos; with ``painterly`` set, their painted versions.

    Args:
        split: "train" or "test" (disjoint regions of every photo).
        size: patch side in pixels (default 64).
        length: number of items (crops are drawn per item; default 10,000).
        painterly: None (the photo), a filter name, or "mixed" (a filter drawn per item).

    Items: ``{"image": (3, size, size) in [0, 1], "photo": name, "filter": name or "photo", "seed": int}``.
    """

    def __init__(self, split: str = "train", size: int = 64, length: int = 10_000, painterly: str | None = None) -> None:
        _check_common(split, size, length)
        if painterly is not None:
            _filters_for(torch.zeros(1, dtype=torch.int64), painterly)
        self.split, self.size, self.length, self.painterly = split, size, length, painterly

    def __len__(self) -> int:
        return self.length

    def seeds(self, indices: Sequence[int]) -> torch.Tensor:
        indices = list(indices)
        for i in indices:
            if isinstance(i, bool) or not isinstance(i, (int, np.integer)) and not (
                    isinstance(i, torch.Tensor) and i.dim() == 0 and not i.is_floating_point()):
                raise TypeError(f"an index must be an int, got {type(i).__name__} {i!r}")
            if not -self.length <= int(i) < self.length:
                raise IndexError(f"index {int(i)} out of range for a dataset of length {self.length}")
        idx = torch.as_tensor([int(i) for i in indices], dtype=torch.int64)
        return PHOTO_SPLITS[self.split][0] + idx % self.length

    def batch(self, indices: Sequence[int]) -> dict[str, Any]:
        seeds = self.seeds(indices)
        x = _patches(seeds, self.split, self.size)
        names = [p[0] for p in _patch_params(seeds, self.split, self.size)]
        if self.painterly is None:
            return {"image": x, "photo": names, "filter": ["photo"] * len(names), "seed": seeds}
        filters = _filters_for(seeds, self.painterly)
        return {"image": painterly(x, filters), "photo": names, "filter": filters, "seed": seeds}

    def __getitems__(self, indices: Sequence[int]) -> list[dict[str, Any]]:
        b = self.batch(indices)
        return [{"image": b["image"][i], "photo": b["photo"][i], "filter": b["filter"][i], "seed": int(b["seed"][i])}
                for i in range(len(b["photo"]))]

    def __getitem__(self, index: int) -> dict[str, Any]:
        if isinstance(index, bool) or not isinstance(index, int):
            raise TypeError(f"index must be an int, got {type(index).__name__}")
        return self.__getitems__([index])[0]


class UnpairedPhotos(Dataset):
    """Two unpaired domains: photo patches (A, even seeds) and painterly patches of *other*
    crops (B, odd seeds). Items: ``{"image_a", "image_b", "filter_b"}``."""

    def __init__(self, split: str = "train", size: int = 64, length: int = 10_000, filter: str = "mixed") -> None:
        self.a = PhotoPatches(split, size, 2 * length, None)
        self.b = PhotoPatches(split, size, 2 * length, filter)
        self.length = length

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> dict[str, Any]:
        if not 0 <= index < self.length:
            raise IndexError(f"index {index} out of range for a dataset of length {self.length}")
        a, b = self.a[2 * index], self.b[2 * index + 1]
        return {"image_a": a["image"], "image_b": b["image"], "filter_b": b["filter"]}


def photo_batches(batch_size: int, split: str = "train", size: int = 64, filter: str = "mixed", seed: int = 0,
                  device: torch.device | str | None = None) -> Callable[[int], dict[str, torch.Tensor]]:
    """``batches(step)``: unpaired photo patches (``image_a``) and painterly patches (``image_b``)
    for training loops, deterministic from the step."""
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
    _check_common(split, size, 1)
    _filters_for(torch.zeros(1, dtype=torch.int64), filter)
    lo, hi = PHOTO_SPLITS[split]

    def batches(step: int) -> dict[str, torch.Tensor]:
        first = (seed * 7_919_003 + step * batch_size) % ((hi - lo) // 2)
        seeds = lo + 2 * (first + torch.arange(batch_size))
        a = _patches(seeds, split, size)
        b = painterly(_patches(seeds + 1, split, size), _filters_for(seeds + 1, filter))
        return {"image_a": a.to(device) if device is not None else a, "image_b": b.to(device) if device is not None else b}

    return batches
