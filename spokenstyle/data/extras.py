"""Loaders for public datasets, for readers with internet access (never used by CI or tests).

* **CycleGAN's unpaired datasets** (Zhu et al. 2017: horse2zebra, monet2photo, ...): the
  on-disk layout ``root/{trainA, trainB, testA, testB}/*.jpg``. :func:`download_cyclegan`
  fetches one archive from the authors' server; :class:`CycleGANFolder` reads any folder in that
  layout (so you can also make your own).
* **Flickr8k / Flickr30k captions** (Hodosh et al. 2013; Young et al. 2014): the token file
  format, one caption per line, ``<image>.jpg#<k>\\t<caption>``, images in a folder beside it,
  and optional split lists (``Flickr_8k.trainImages.txt`` style: one file name per line).
  The Flickr datasets require accepting their terms, so there is no downloader here.

Images of any PIL mode are converted to RGB and resized (shorter side) and centre-cropped to
``size``; tensors are float (3, size, size) in [0, 1], like the rest of ``spokenstyle.data``.
The tests build tiny fixtures of both layouts in a temporary folder; nothing is downloaded.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch.utils.data import Dataset
from torchvision.datasets.utils import download_and_extract_archive

from .photos import to_rgb

__all__ = [
    "CYCLEGAN_DATASETS",
    "CYCLEGAN_URL",
    "download_cyclegan",
    "CycleGANFolder",
    "UnpairedFolders",
    "read_flickr_tokens",
    "FlickrCaptions",
    "load_image",
]

CYCLEGAN_URL = "https://efrosgans.eecs.berkeley.edu/cyclegan/datasets/{name}.zip"
CYCLEGAN_DATASETS: tuple[str, ...] = (
    "apple2orange", "summer2winter_yosemite", "horse2zebra", "monet2photo", "cezanne2photo", "ukiyoe2photo",
    "vangogh2photo", "maps", "cityscapes", "facades", "iphone2dslr_flower",
)
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp")


def load_image(path: str | Path, size: int) -> torch.Tensor:
    """An image file as float (3, size, size) in [0, 1]: any mode to RGB, shorter side resized to
    ``size`` (antialiased), centre crop."""
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        raise ValueError(f"size must be a positive int, got {size!r}")
    with Image.open(path) as im:
        arr = to_rgb(im)
    x = torch.from_numpy(np.array(arr)).permute(2, 0, 1).float().div(255.0)[None]
    h, w = x.shape[-2:]
    scale = size / min(h, w)
    nh, nw = max(size, round(h * scale)), max(size, round(w * scale))
    x = F.interpolate(x, size=(nh, nw), mode="bilinear", antialias=True, align_corners=False)
    top, left = (nh - size) // 2, (nw - size) // 2
    return x[0, :, top: top + size, left: left + size].clamp(0, 1)


def _images_in(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())


def download_cyclegan(name: str, root: str | Path) -> Path:
    """Downloads and unpacks CycleGAN dataset ``name`` into ``root/name`` (needs internet)."""
    if name not in CYCLEGAN_DATASETS:
        raise ValueError(f"unknown CycleGAN dataset {name!r}; expected one of {CYCLEGAN_DATASETS}")
    root = Path(root)
    download_and_extract_archive(CYCLEGAN_URL.format(name=name), download_root=str(root), remove_finished=True)
    return root / name


class CycleGANFolder(Dataset):
    """One domain of a dataset in CycleGAN's layout: the images of ``root/{split}{domain}``.

    Args:
        root: the dataset folder (holding trainA, trainB, testA, testB).
        split: "train" or "test"; domain: "A" or "B"; size: output side in pixels.
    """

    def __init__(self, root: str | Path, split: str = "train", domain: str = "A", size: int = 64) -> None:
        if split not in ("train", "test"):
            raise ValueError(f"split must be 'train' or 'test', got {split!r}")
        if domain not in ("A", "B"):
            raise ValueError(f"domain must be 'A' or 'B', got {domain!r}")
        self.folder = Path(root) / f"{split}{domain}"
        if not self.folder.is_dir():
            raise FileNotFoundError(f"{self.folder} does not exist; a CycleGAN dataset folder holds "
                                    "trainA/, trainB/, testA/ and testB/ (see download_cyclegan)")
        self.files = _images_in(self.folder)
        if not self.files:
            raise FileNotFoundError(f"no images ({', '.join(IMAGE_SUFFIXES)}) in {self.folder}")
        self.size = size

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> dict[str, Any]:
        return {"image": load_image(self.files[index], self.size), "path": str(self.files[index])}


class UnpairedFolders(Dataset):
    """Both domains of a CycleGAN-layout folder, unpaired: item i is image i of A and image
    ``(i * 7 + seed) mod len(B)`` of B (a fixed shuffle); the length is that of A."""

    def __init__(self, root: str | Path, split: str = "train", size: int = 64, seed: int = 0) -> None:
        self.a = CycleGANFolder(root, split, "A", size)
        self.b = CycleGANFolder(root, split, "B", size)
        self.seed = seed

    def __len__(self) -> int:
        return len(self.a)

    def __getitem__(self, index: int) -> dict[str, Any]:
        a = self.a[index]
        b = self.b[(index * 7 + self.seed) % len(self.b)]
        return {"image_a": a["image"], "image_b": b["image"]}


def read_flickr_tokens(path: str | Path) -> dict[str, list[str]]:
    """Reads a Flickr8k/30k token file: ``{image file name: [captions in order]}``.

    Lines look like ``1000268201_693b08cb0e.jpg#0<TAB>A child in a pink dress ...``; the
    ``results.csv`` variant of Flickr30k (``image_name| comment_number| comment``) is read too.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no caption file at {path}")
    out: dict[str, list[tuple[int, str]]] = {}
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        line = line.strip()
        if not line:
            continue
        if "\t" in line and "#" in line.split("\t", 1)[0]:
            key, text = line.split("\t", 1)
            name, k = key.rsplit("#", 1)
        elif line.count("|") >= 2:
            name, k, text = (s.strip() for s in line.split("|", 2))
            if name == "image_name":
                continue  # header
        else:
            raise ValueError(f"{path}:{n}: expected '<image>#<k>\\t<caption>' or "
                             f"'image| k| caption', got {line[:60]!r}")
        try:
            k_int = int(k)
        except ValueError as err:
            raise ValueError(f"{path}:{n}: caption number {k!r} is not an int") from err
        out.setdefault(name.strip(), []).append((k_int, text.strip()))
    return {name: [t for _, t in sorted(caps)] for name, caps in out.items()}


class FlickrCaptions(Dataset):
    """Flickr8k/30k images with their captions.

    Args:
        token_file: the caption file (e.g. ``Flickr8k.token.txt``).
        image_dir: the folder of the images.
        split_file: optional list of image names to keep (``Flickr_8k.trainImages.txt``).
        size: output side in pixels.

    Items: ``{"image": (3, size, size), "captions": [str, ...], "name": str}``.
    """

    def __init__(self, token_file: str | Path, image_dir: str | Path, split_file: str | Path | None = None,
                 size: int = 64) -> None:
        self.captions = read_flickr_tokens(token_file)
        self.image_dir = Path(image_dir)
        if not self.image_dir.is_dir():
            raise FileNotFoundError(f"image folder {self.image_dir} does not exist")
        names: Sequence[str] = sorted(self.captions)
        if split_file is not None:
            keep = [s.strip() for s in Path(split_file).read_text(encoding="utf-8").splitlines() if s.strip()]
            unknown = [k for k in keep if k not in self.captions]
            if unknown:
                raise ValueError(f"{len(unknown)} images of {split_file} have no captions, e.g. {unknown[0]!r}")
            names = keep
        missing = [n for n in names if not (self.image_dir / n).is_file()]
        if missing:
            raise FileNotFoundError(f"{len(missing)} images are missing from {self.image_dir}, e.g. {missing[0]!r}")
        self.names = list(names)
        self.size = size

    def __len__(self) -> int:
        return len(self.names)

    def __getitem__(self, index: int) -> dict[str, Any]:
        name = self.names[index]
        return {"image": load_image(self.image_dir / name, self.size), "captions": self.captions[name], "name": name}
