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
"""

from __future__ import annotations

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
    "PhotoCredit",
    "load_photo",
    "photo_path",
    "to_rgb",
    "kuwahara",
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


@torch.no_grad()
def painterly(x: torch.Tensor, filter: str | Sequence[str] = "oil") -> torch.Tensor:
    """Applies a painterly filter (one name for the batch, or one per image) to (B, 3, H, W) in [0, 1]."""
    x = _check_images(x)
    names = [filter] * x.shape[0] if isinstance(filter, str) else list(filter)
    if len(names) != x.shape[0]:
        raise ValueError(f"got {len(names)} filter names for {x.shape[0]} images")
    for n in set(names):
        if n not in PAINTERLY_FILTERS:
            raise ValueError(f"unknown painterly filter {n!r}; expected one of {tuple(PAINTERLY_FILTERS)}")
    out = torch.empty_like(x)
    for n in sorted(set(names)):
        idx = torch.tensor([i for i, m in enumerate(names) if m == n], device=x.device)
        out[idx] = PAINTERLY_FILTERS[n](x[idx])
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
        if filter not in PAINTERLY_FILTERS:
            raise ValueError(f"unknown painterly filter {filter!r}; expected one of "
                             f"{tuple(PAINTERLY_FILTERS) + ('mixed',)}")
        return [filter] * len(seeds)
    names = tuple(PAINTERLY_FILTERS)
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
