"""Chapter 6's sentences: one caption per scene of a split, the unpaired spoken pile, the test set.

The setting is the data-scarce one of source §8: training images come with **formal** captions
only, and spoken language is an **unpaired pile** of colloquial sentences about *other* scenes.
Every split is a disjoint range of ShapeScenes seeds (:mod:`spokenstyle.data.splits`):

========== ================================ ============================================
split      what it holds                    used for
========== ================================ ============================================
train      images + one formal caption each  MLE of S (formal register), the reader R
pile       spoken sentences, no images       S's spoken prior, the critic T, the reader R
heldout    sentences of both registers       the register classifier and the spoken LM
           (no images)                       (measurement only)
test       images + formal + 4 spoken refs   measurement only (BLEU references)
========== ================================ ============================================

Every function is cached: the recipes and the evaluation ask for the same sentences many times.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import torch

from .captions import describe, try_parse
from .content import content_targets
from .scenes import SceneBatch, sample_scenes
from .splits import seed_range
from .styles import STYLES, render
from .tokenizer import PAD_ID, encode_captions

__all__ = [
    "CORPUS_SPLITS",
    "N_REFS",
    "split_scenes",
    "captions",
    "caption_tokens",
    "pile_sentences",
    "pile_tokens",
    "pile_targets",
    "readable_pile",
    "TestSet",
    "test_set",
    "render_batch",
    "token_rows",
]

CORPUS_SPLITS: tuple[str, ...] = ("train", "pile", "heldout", "test")
N_REFS = 4  # spoken references per test image for BLEU


def _check_split(split: str) -> str:
    if split not in CORPUS_SPLITS:
        raise ValueError(f"unknown split {split!r}; expected one of {CORPUS_SPLITS}")
    return split


@lru_cache(maxsize=16)
def split_scenes(split: str, n: int) -> SceneBatch:
    """The first ``n`` scenes of ``split`` (on the CPU)."""
    if not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be a positive int, got {n!r}")
    return sample_scenes(seed_range(_check_split(split)).seeds(n))


@lru_cache(maxsize=32)
def captions(split: str, n: int, register: str, variant: int = 0) -> tuple[str, ...]:
    """One caption per scene of the first ``n`` of ``split``, in ``register`` (``variant`` draws another wording)."""
    scenes = split_scenes(split, n)
    seeds = (scenes.seed + variant * 7_919_993).tolist()
    return tuple(describe(scenes, register, seeds=seeds))


@lru_cache(maxsize=32)
def caption_tokens(split: str, n: int, register: str, variant: int = 0) -> torch.Tensor:
    """Token ids of one caption per scene of ``split`` in ``register`` (``variant`` draws another)."""
    return encode_captions(captions(split, n, register, variant))


def pile_sentences(n: int) -> list[str]:
    """The first ``n`` sentences of the unpaired spoken pile (text only)."""
    return list(captions("pile", n, "spoken"))


def pile_tokens(n: int) -> torch.Tensor:
    """The unpaired spoken pile: ``n`` spoken sentences about scenes no training image shows."""
    return caption_tokens("pile", n, "spoken")


@lru_cache(maxsize=8)
def pile_targets(n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Reader targets of the pile, read off the sentences by the parser (no scene is consulted;
    unreadable sentences get -1, i.e. are ignored)."""
    return content_targets([try_parse(t) for t in captions("pile", n, "spoken")])


@dataclass
class TestSet:
    """Held-out images and their captions (measurement only)."""

    scenes: SceneBatch
    images: torch.Tensor  # (N, 3, R, R) in [0, 1], style i % 6
    formal: list[str]
    spoken_refs: list[list[str]]  # N_REFS streams of N spoken captions (sacrebleu's layout)


@lru_cache(maxsize=4)
def test_set(n: int, size: int = 64) -> TestSet:
    """``n`` held-out scenes rendered in the six styles in turn, with one formal and
    :data:`N_REFS` spoken captions each."""
    scenes = split_scenes("test", n)
    images = render(scenes, [i % len(STYLES) for i in range(n)], size)
    return TestSet(scenes=scenes, images=images, formal=list(captions("test", n, "formal")),
                   spoken_refs=[list(captions("test", n, "spoken", k)) for k in range(N_REFS)])


def render_batch(split: str, n_scenes: int, batch_size: int, step: int, *, size: int = 64,
                 device: torch.device | str | None = None, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """A batch drawn from the step: (indices into the split (B,), images (B, 3, R, R) in [0, 1]).

    Scenes and styles come from a generator seeded by ``(seed, step)``, so a resumed run sees
    the same batches; rendering happens on ``device``.
    """
    g = torch.Generator().manual_seed(seed * 1_000_003 + step)
    idx = torch.randint(n_scenes, (batch_size,), generator=g)
    styles = torch.randint(len(STYLES), (batch_size,), generator=g)
    scenes = split_scenes(split, n_scenes)[idx].to(device or "cpu")
    return idx, render(scenes, styles.to(scenes.device), size)


def token_rows(tokens: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """Rows of a padded token table, trimmed to the longest of them."""
    rows = tokens[idx]
    length = int((rows != PAD_ID).sum(1).max())
    return rows[:, : max(length, 1)]


@lru_cache(maxsize=8)
def readable_pile(n: int) -> torch.Tensor:
    """Indices of the pile sentences the parser reads (their content is what S's spoken register
    learns to say; the grammar's spoken sentences all parse, but nothing here assumes it)."""
    slots, _ = pile_targets(n)
    return (slots[:, 0] >= 0).nonzero()[:, 0]
