"""Every range of seeds the book draws from, in one table, so that no model is scored on what it
trained on.

A ShapeScenes scene is a pure function of its seed, so a *split* is a range of seeds. Training
walks start at the beginning of ``train`` and move through it (:func:`walk`); the held-out
blocks below are carved out of ``train`` (or lie beyond it) and are never walked by a recipe of
the book: :func:`check_clear` refuses a walk that would enter one, and
``tests/test_splits.py`` checks that no two blocks overlap and that every shipped recipe's walk
is clear of all of them.

============== ====================================== =========================================
name           seeds                                  what it is for
============== ====================================== =========================================
train          0 … 999,999,999                        every training walk (the blocks below
                                                      are carved out of it)
real_a         1,000,000 … 1,999,999                  real renders, the metrics' reference set
real_b         2,000,000 … 2,999,999                  real renders, the real-vs-real baseline
features_test  3,000,000 … 3,999,999                  held-out renders of the feature extractor
pile           10,000,000 … 10,999,999                chapter 6's unpaired spoken sentences
heldout        20,000,000 … 20,999,999                chapter 6's measuring instruments
validation     500,000,000 … 500,999,999              runs of a recipe compared (chapter 7)
test           1,000,000,000 … 1,000,099,999          the scores the book reports
============== ====================================== =========================================

Photo patches (:mod:`spokenstyle.data.photos`) have seeds of their own (:data:`PHOTO_SPLITS`):
a patch seed picks a crop of a photograph's train or test region, not a scene.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch

__all__ = [
    "SeedRange",
    "SCENE_RANGES",
    "HELD_OUT",
    "SPLITS",
    "PHOTO_SPLITS",
    "seed_range",
    "walk",
    "check_clear",
]


@dataclass(frozen=True)
class SeedRange:
    """Seeds ``start`` … ``stop - 1`` and what they are for."""

    name: str
    start: int
    stop: int
    what: str

    def __post_init__(self) -> None:
        if not 0 <= self.start < self.stop:
            raise ValueError(f"seed range {self.name!r} must have 0 <= start < stop, got {self.start}, {self.stop}")

    def __len__(self) -> int:
        return self.stop - self.start

    def seeds(self, n: int, offset: int = 0, device: torch.device | str | None = None) -> torch.Tensor:
        """Seeds ``start + offset`` … ``start + offset + n - 1``; a clear error when they leave the range."""
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ValueError(f"n must be a positive int, got {n!r}")
        if isinstance(offset, bool) or not isinstance(offset, int) or offset < 0:
            raise ValueError(f"offset must be a non-negative int, got {offset!r}")
        if offset + n > len(self):
            raise ValueError(f"split {self.name!r} holds {len(self):,} seeds; offset {offset:,} + n {n:,} leaves it")
        return torch.arange(self.start + offset, self.start + offset + n, device=device)

    def overlaps(self, other: "SeedRange") -> bool:
        return self.start < other.stop and other.start < self.stop


SCENE_RANGES: dict[str, SeedRange] = {r.name: r for r in (
    SeedRange("train", 0, 1_000_000_000, "every training walk; the held-out blocks are carved out of it"),
    SeedRange("real_a", 1_000_000, 2_000_000, "real renders: the metrics' reference set (FD, KID, PRDC)"),
    SeedRange("real_b", 2_000_000, 3_000_000, "real renders: independent sets for the real-vs-real baseline"),
    SeedRange("features_test", 3_000_000, 4_000_000, "held-out renders that score the feature extractor"),
    SeedRange("pile", 10_000_000, 11_000_000, "chapter 6: the unpaired pile of spoken sentences (no pictures)"),
    SeedRange("heldout", 20_000_000, 21_000_000, "chapter 6: sentences of the register classifier and spoken LM"),
    SeedRange("validation", 500_000_000, 501_000_000, "runs of one recipe compared before the test set is looked at"),
    SeedRange("test", 1_000_000_000, 1_000_100_000, "held-out scenes: the scores the book reports"),
)}

HELD_OUT: tuple[str, ...] = ("real_a", "real_b", "features_test", "pile", "heldout", "validation", "test")
"""The blocks no training walk may enter."""

SPLITS: dict[str, tuple[int, int]] = {name: (SCENE_RANGES[name].start, SCENE_RANGES[name].stop)
                                      for name in ("train", "test")}
"""The two splits of the datasets (:class:`~spokenstyle.data.datasets.ShapeScenes`): (start, stop)."""

PHOTO_SPLITS: dict[str, tuple[int, int]] = {"train": (0, 1_000_000_000), "test": (1_000_000_000, 1_000_100_000)}
"""Patch seeds of the photo datasets: a seed picks a crop of a photograph's train or test region."""


def seed_range(name: str) -> SeedRange:
    """The scene seed range ``name``; a clear error lists the known ones."""
    if name not in SCENE_RANGES:
        raise ValueError(f"unknown split {name!r}; expected one of {tuple(SCENE_RANGES)}")
    return SCENE_RANGES[name]


def walk(split: str, step: int, batch_size: int, seed: int, stride: int = 1) -> torch.Tensor:
    """The scene seeds of batch ``step`` of a training walk through ``split``: run ``seed`` starts
    ``seed · 7,919,003`` items in (each run its own stretch; a prime, so stretches rarely meet),
    takes ``batch_size`` consecutive items per step, and item i is seed ``start + i · stride``
    (stride 2: even seeds for one domain, the odd seed after each for the other)."""
    if isinstance(step, bool) or not isinstance(step, int) or step < 0:
        raise ValueError(f"step must be a non-negative int, got {step!r}")
    r = seed_range(split)
    n = len(r) // stride
    first = (seed * 7_919_003 + step * batch_size) % n
    return r.start + ((first + torch.arange(batch_size)) % n) * stride


def check_clear(seeds: torch.Tensor | Sequence[int], what: str, *, allow: Sequence[str] = ()) -> None:
    """Raises ValueError when any of ``seeds`` (a training run's scenes) lies in a held-out block
    (other than those in ``allow``), naming the block and ``what`` drew them."""
    seeds = torch.as_tensor(seeds, dtype=torch.int64).reshape(-1)
    if seeds.numel() == 0:
        return
    for name in HELD_OUT:
        if name in allow:
            continue
        r = SCENE_RANGES[name]
        hit = (seeds >= r.start) & (seeds < r.stop)
        if bool(hit.any()):
            first = int(seeds[hit][0])
            raise ValueError(f"{what} would train on held-out scenes: seed {first:,} lies in the block "
                             f"{name!r} ({r.start:,} … {r.stop - 1:,}: {r.what}); use another run seed")
