"""Torch datasets and batch samplers over ShapeScenes.

Nothing is stored: item ``i`` of a split is the scene with seed ``split_start + i``, rendered on
the fly, so any item is deterministic and cheap, and the training and held-out scenes can never
mix. The splits are fixed ranges of scene seeds (:mod:`spokenstyle.data.splits` holds them all):

=========  ===============================  ========================
split      scene seeds                      default length
=========  ===============================  ========================
``train``  0 ... 999,999,999                100,000 (any up to 10^9)
``test``   1,000,000,000 ... 1,000,099,999  10,000 (any up to 10^5)
=========  ===============================  ========================

Besides the datasets, :func:`real_renders` draws real pictures of any named seed range (the
metrics' reference sets ``real_a`` and ``real_b`` among them) and :func:`pool_batches` samples
a fixed pool of pictures by the step (what keeps CPU training cheap).

Views:

* :class:`ShapeScenes`: one scene per item, in one style or in a style drawn per item;
* :class:`PairedStyles`: the same scene in two styles (ground truth for translation);
* :class:`UnpairedStyles`: a scene in style A and a *different* scene in style B (what a
  CycleGAN trains on);
* :func:`scene_batches`, :func:`paired_batches`, :func:`unpaired_batches`: vectorised batch
  makers ``batches(step) -> dict`` for training loops (deterministic from the step), several
  times faster than a DataLoader over the datasets.

Items are dicts: ``image`` (3, H, W) float in [0, 1], ``style`` (int id into ``STYLES``),
``seed``, the attributes as tensors (``shape``, ``colour``, ``size`` (3,), ``relation`` (2,),
-1 where absent; ``n_objects``; ``slots`` (6,), see :meth:`SceneBatch.colour_slots`), and the
captions ``formal`` and ``spoken``. Datasets implement ``__getitems__``, so a DataLoader renders
a whole batch in one call.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import torch
from torch.utils.data import Dataset

from .captions import caption
from .scenes import SceneBatch, SceneSpec, hash_uniform, sample_scenes
from .splits import SPLITS, seed_range, walk
from .styles import STYLES, check_size, render, style_ids

__all__ = [
    "SPLITS",
    "ShapeScenes",
    "PairedStyles",
    "UnpairedStyles",
    "scene_batches",
    "paired_batches",
    "unpaired_batches",
    "scene_attributes",
    "split_seeds",
    "real_renders",
    "pool_batches",
]

_DEFAULT_LENGTH = {"train": 100_000, "test": 10_000}
_S_STYLE = 300  # random stream of the per-item style draw


# ----------------------------------------------------------------------------------------------
# checks and helpers


def _check_split(split: str) -> tuple[int, int]:
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; expected one of {tuple(SPLITS)}")
    return SPLITS[split]


def _check_styles(style: str | int | Sequence[str | int]) -> list[int]:
    """Style ids from "all", one style, or a list of styles."""
    if isinstance(style, str) and style == "all":
        return list(range(len(STYLES)))
    if isinstance(style, (str, int)):
        return style_ids(style, 1).tolist()
    ids = style_ids(list(style), len(style)).tolist()
    if not ids:
        raise ValueError("got an empty list of styles")
    return ids


def _check_length(split: str, length: int | None, per_item: int = 1) -> int:
    lo, hi = _check_split(split)
    n = _DEFAULT_LENGTH[split] if length is None else length
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"length must be a positive int, got {length!r}")
    if n * per_item > hi - lo:
        raise ValueError(f"split {split!r} has {hi - lo:,} scene seeds; length {n:,} needs {n * per_item:,}")
    return n


def _check_batch_size(batch_size: int) -> int:
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
    return batch_size


def split_seeds(split: str, index: torch.Tensor | Sequence[int], stride: int = 1, offset: int = 0) -> torch.Tensor:
    """Scene seeds of items ``index`` of ``split`` (``start + index * stride + offset``)."""
    lo, _ = _check_split(split)
    idx = torch.as_tensor(index, dtype=torch.int64).reshape(-1)
    return lo + idx * stride + offset


def _pick_styles(seeds: torch.Tensor, styles: list[int]) -> torch.Tensor:
    """One style per scene, drawn from its seed (so item i always has the same style)."""
    if len(styles) == 1:
        return torch.full_like(seeds, styles[0])
    k = (hash_uniform(seeds, _S_STYLE, 1)[:, 0] * len(styles)).long().clamp(max=len(styles) - 1)
    return torch.tensor(styles, device=seeds.device)[k]


def scene_attributes(scenes: SceneBatch) -> dict[str, torch.Tensor]:
    """The attribute tensors of a batch: shape, colour, size (B, 3), relation (B, 2),
    n_objects (B,), slots (B, 6); -1 marks absent objects and relations."""
    return {
        "shape": scenes.shape, "colour": scenes.colour, "size": scenes.size, "relation": scenes.relation,
        "n_objects": scenes.n_objects, "slots": scenes.colour_slots(),
    }


def _captions(scenes: SceneBatch) -> dict[str, list[str]]:
    specs, seeds = scenes.specs(), scenes.seed.tolist()
    return {"formal": [caption(s, "formal", k) for s, k in zip(specs, seeds)],
            "spoken": [caption(s, "spoken", k) for s, k in zip(specs, seeds)]}


def _unbatch(batch: dict[str, Any]) -> list[dict[str, Any]]:
    n = len(batch["seed"])
    return [{k: (v[i].item() if isinstance(v, torch.Tensor) and v.dim() == 1 else v[i]) for k, v in batch.items()}
            for i in range(n)]


# ----------------------------------------------------------------------------------------------
# datasets


class _SceneDataset(Dataset):
    def __init__(self, split: str, size: int, length: int | None, per_item: int) -> None:
        self.split = split
        self.size = check_size(size)
        self.length = _check_length(split, length, per_item)

    def __len__(self) -> int:
        return self.length

    def _index(self, indices: Sequence[int]) -> torch.Tensor:
        idx = torch.as_tensor(list(indices), dtype=torch.int64)
        if idx.numel() and (int(idx.min()) < -self.length or int(idx.max()) >= self.length):
            raise IndexError(f"index out of range for a dataset of length {self.length}")
        return idx % self.length

    def __getitem__(self, index: int) -> dict[str, Any]:
        if isinstance(index, bool) or not isinstance(index, int):
            raise TypeError(f"index must be an int, got {type(index).__name__}")
        return self.__getitems__([index])[0]

    def __getitems__(self, indices: Sequence[int]) -> list[dict[str, Any]]:
        return _unbatch(self.batch(indices))

    def batch(self, indices: Sequence[int]) -> dict[str, Any]:  # pragma: no cover - abstract
        raise NotImplementedError


class ShapeScenes(_SceneDataset):
    """ShapeScenes rendered on the fly.

    Args:
        split: "train" or "test" (fixed, disjoint ranges of scene seeds; see the module doc).
        style: "all" (a style drawn per item from its seed), one style, or a list of styles.
        size: image side in pixels, 32 to 128.
        length: number of items (default 100,000 for train, 10,000 for test).
        captions: include the formal and spoken captions (costs ~0.5 ms per item).
    """

    def __init__(self, split: str = "train", style: str | int | Sequence[str | int] = "all", size: int = 64,
                 length: int | None = None, captions: bool = True) -> None:
        super().__init__(split, size, length, per_item=1)
        self.styles = _check_styles(style)
        self.captions = captions

    def scenes(self, indices: Sequence[int]) -> SceneBatch:
        """The scene descriptions of items ``indices``."""
        return sample_scenes(split_seeds(self.split, self._index(indices)))

    def spec(self, index: int) -> SceneSpec:
        """Item ``index`` as a :class:`SceneSpec`."""
        return self.scenes([index]).spec(0)

    def batch(self, indices: Sequence[int]) -> dict[str, Any]:
        """Items ``indices`` as one batch dict (images rendered in one call)."""
        scenes = self.scenes(indices)
        style = _pick_styles(scenes.seed, self.styles)
        out = {"image": render(scenes, style, self.size), "style": style, "seed": scenes.seed, **scene_attributes(scenes)}
        if self.captions:
            out.update(_captions(scenes))
        return out


class PairedStyles(_SceneDataset):
    """The same scene in two styles: ``image_a`` in ``style_a`` and ``image_b`` in ``style_b``."""

    def __init__(self, style_a: str | int, style_b: str | int, split: str = "train", size: int = 64,
                 length: int | None = None, captions: bool = False) -> None:
        super().__init__(split, size, length, per_item=1)
        (self.style_a,), (self.style_b,) = _check_styles(style_a), _check_styles(style_b)
        self.captions = captions

    def batch(self, indices: Sequence[int]) -> dict[str, Any]:
        scenes = sample_scenes(split_seeds(self.split, self._index(indices)))
        out = {"image_a": render(scenes, self.style_a, self.size), "image_b": render(scenes, self.style_b, self.size),
               "seed": scenes.seed, **scene_attributes(scenes)}
        if self.captions:
            out.update(_captions(scenes))
        return out


class UnpairedStyles(_SceneDataset):
    """Two domains with no pairing: item i holds a scene in ``style_a`` and a different scene
    (the next seed) in ``style_b``. Attributes come suffixed ``_a`` and ``_b``."""

    def __init__(self, style_a: str | int, style_b: str | int, split: str = "train", size: int = 64,
                 length: int | None = None) -> None:
        super().__init__(split, size, length, per_item=2)
        (self.style_a,), (self.style_b,) = _check_styles(style_a), _check_styles(style_b)

    def batch(self, indices: Sequence[int]) -> dict[str, Any]:
        idx = self._index(indices)
        out: dict[str, Any] = {}
        for dom, style, offset in (("a", self.style_a, 0), ("b", self.style_b, 1)):
            scenes = sample_scenes(split_seeds(self.split, idx, stride=2, offset=offset))
            out[f"image_{dom}"] = render(scenes, style, self.size)
            out[f"seed_{dom}"] = scenes.seed
            out.update({f"{k}_{dom}": v for k, v in scene_attributes(scenes).items()})
        out["seed"] = out["seed_a"]
        return out


# ----------------------------------------------------------------------------------------------
# vectorised batch makers for training loops


def scene_batches(batch_size: int, style: str | int | Sequence[str | int] = "all", size: int = 64,
                  split: str = "train", seed: int = 0, device: torch.device | str | None = None,
                  captions: bool = False) -> Callable[[int], dict[str, Any]]:
    """A function ``batches(step)`` returning batch ``step`` (deterministic) as a dict of tensors
    on ``device`` (the keys of :class:`ShapeScenes`; captions as lists when ``captions``)."""
    _check_batch_size(batch_size)
    styles = _check_styles(style)
    check_size(size)
    _check_split(split)

    def batches(step: int) -> dict[str, Any]:
        scenes = sample_scenes(walk(split, step, batch_size, seed), device=device)
        st = _pick_styles(scenes.seed, styles)
        out = {"image": render(scenes, st, size), "style": st, "seed": scenes.seed, **scene_attributes(scenes)}
        if captions:
            out.update(_captions(scenes))
        return out

    return batches


def paired_batches(batch_size: int, style_a: str | int, style_b: str | int, size: int = 64, split: str = "train",
                   seed: int = 0, device: torch.device | str | None = None) -> Callable[[int], dict[str, Any]]:
    """``batches(step)``: the same scenes in two styles (``image_a``, ``image_b``) plus attributes."""
    _check_batch_size(batch_size)
    (sa,), (sb,) = _check_styles(style_a), _check_styles(style_b)
    check_size(size)
    _check_split(split)

    def batches(step: int) -> dict[str, Any]:
        scenes = sample_scenes(walk(split, step, batch_size, seed), device=device)
        return {"image_a": render(scenes, sa, size), "image_b": render(scenes, sb, size), "seed": scenes.seed,
                **scene_attributes(scenes)}

    return batches


def unpaired_batches(batch_size: int, style_a: str | int, style_b: str | int, size: int = 64, split: str = "train",
                     seed: int = 0, device: torch.device | str | None = None) -> Callable[[int], dict[str, Any]]:
    """``batches(step)``: scenes in style A and *other* scenes in style B (even / odd seeds)."""
    _check_batch_size(batch_size)
    (sa,), (sb,) = _check_styles(style_a), _check_styles(style_b)
    check_size(size)
    _check_split(split)

    def batches(step: int) -> dict[str, Any]:
        seeds = walk(split, step, batch_size, seed, stride=2)
        out: dict[str, Any] = {}
        for dom, style, offset in (("a", sa, 0), ("b", sb, 1)):
            scenes = sample_scenes(seeds + offset, device=device)
            out[f"image_{dom}"] = render(scenes, style, size)
            out.update({f"{k}_{dom}": v for k, v in scene_attributes(scenes).items()})
        return out

    return batches


# ----------------------------------------------------------------------------------------------
# real renders of a named seed range, and batches over a fixed pool


def real_renders(n: int, *, split: str = "train", style: str | int | None = None, size: int = 32,
                 offset: int = 0, device: torch.device | str | None = None, chunk: int = 2048):
    """``n`` real ShapeScenes renders of one seed range: (images (n, 3, size, size) in [0, 1],
    scenes, style ids).

    Args:
        split: a seed range of :mod:`spokenstyle.data.splits`: ``"train"`` (what models learn
            from), ``"real_a"`` / ``"real_b"`` (held-out sets for the metrics and their
            real-vs-real baseline), ``"features_test"`` (the feature extractor's accuracy), ...
        style: one style (name or id) for every scene, or ``None`` for all styles (seed % 6).
        offset: skip this many scenes of the range (e.g. to take a second, disjoint batch).
    """
    seeds = seed_range(split).seeds(n, offset, device=device)
    styles = seeds % len(STYLES) if style is None else None
    images, scene_parts = [], []
    for lo in range(0, n, chunk):
        s = sample_scenes(seeds[lo: lo + chunk])
        ids = styles[lo: lo + chunk] if styles is not None else style
        images.append(render(s, ids, size))
        scene_parts.append(s)
    scenes = SceneBatch.cat(scene_parts)
    if styles is None:
        styles = style_ids(style, n, seeds.device)
    return torch.cat(images), scenes, styles


def pool_batches(images: torch.Tensor, batch_size: int, *, seed: int = 0,
                 extra: Sequence[torch.Tensor] = ()) -> Callable[[int], Any]:
    """``batches(step)`` over a fixed pool of images: epoch e visits the pool in a permutation
    seeded by (seed, e), so a batch is a pure function of the step (exact resumption).

    Rendering a pool once and sampling from it is what keeps CPU training cheap; on a GPU the
    renderer is fast enough to draw fresh scenes every step. With ``extra`` tensors (labels),
    a batch is the tuple ``(images, *extra)`` indexed alike.
    """
    n = images.shape[0]
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or not 1 <= batch_size <= n:
        raise ValueError(f"batch_size must be an int in [1, {n}] (the pool size), got {batch_size!r}")
    per_epoch = n // batch_size
    cache: dict[int, torch.Tensor] = {}

    def batches(step: int):
        epoch, k = divmod(step, per_epoch)
        if epoch not in cache:
            cache.clear()
            cache[epoch] = torch.randperm(n, generator=torch.Generator().manual_seed(seed * 100_003 + epoch))
        idx = cache[epoch][k * batch_size: (k + 1) * batch_size]
        if not extra:
            return images[idx]
        return (images[idx], *(t[idx] for t in extra))

    return batches
