"""A scene's *content* in the format chapter 6's models speak: colour slots and pair relations.

The captioner S says a content, the attribute reader R reads one back from a sentence, and the
critic never sees one; all three meet in this format, which is complete and order-free:

* per colour, the colour slot of :mod:`spokenstyle.data.scenes` (0 = absent, else
  ``1 + shape * 2 + size``; :data:`~spokenstyle.data.scenes.N_SLOT_CLASSES` = 13 classes);
* per unordered pair of colours (i < j, :data:`PAIRS`, 15 pairs), how they stand:
  0 = no stated relation, 1 = i left of j, 2 = j left of i, 3 = i above j, 4 = j above i,
  5 = next to (:data:`N_PAIR_CLASSES` = 6).

:func:`content_targets` gives what a scene (or a parsed sentence) *states*; :func:`geometric_pairs`
what its geometry makes *true* (a three-object scene states two relations, but often a third
pair is related too); :func:`sentence_slots` reads the slots of sentences with the parser.
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F

from .captions import try_parse
from .scenes import COLOURS, N_SLOT_CLASSES, SceneBatch, SceneSpec, relation_between, slots_of_specs

__all__ = [
    "PAIRS",
    "N_PAIR_CLASSES",
    "content_targets",
    "geometric_pairs",
    "relation_targets",
    "one_hot_content",
    "content_of_specs",
    "sentence_slots",
]

PAIRS: tuple[tuple[int, int], ...] = tuple((i, j) for i in range(len(COLOURS)) for j in range(i + 1, len(COLOURS)))
N_PAIR_CLASSES = 6
_PAIR_INDEX = {p: k for k, p in enumerate(PAIRS)}


def _pair_columns(device: torch.device | str | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(i, j) colour ids of every pair, as two (15,) tensors."""
    return (torch.tensor([p[0] for p in PAIRS], device=device), torch.tensor([p[1] for p in PAIRS], device=device))


def content_targets(scenes: SceneBatch | Sequence[SceneSpec | None]) -> tuple[torch.Tensor, torch.Tensor]:
    """(slots (B, 6), pairs (B, 15)) int64: the content each scene states (``None`` rows, e.g.
    sentences the parser could not read, are -1: ignored by the losses)."""
    specs = scenes.specs() if isinstance(scenes, SceneBatch) else list(scenes)
    slots = slots_of_specs(specs)
    pairs = torch.full((len(specs), len(PAIRS)), -1, dtype=torch.int64)
    for b, spec in enumerate(specs):
        if spec is None:
            continue
        pairs[b] = 0
        for a, rel, o in spec.facts():  # canonical: "left of", "above" or "next to"
            i, j = COLOURS.index(a.colour), COLOURS.index(o.colour)
            if rel == "next to":
                cls = 5
            else:
                base = 1 if rel == "left of" else 3
                cls = base if i < j else base + 1
            pairs[b, _PAIR_INDEX[(min(i, j), max(i, j))]] = cls
    return slots, pairs


def geometric_pairs(scenes: SceneBatch) -> torch.Tensor:
    """(B, 15) int64: for every pair of colours present in the picture, the pair class (as in
    :func:`content_targets`) of the relation the *geometry* shows, whether or not the scene's
    chain states it; -1 where the pair is absent or no relation applies (diagonal layouts).

    A three-object scene states two relations, but half the time the third pair is related
    too ("A left of B, B left of C": A is left of C as well), so a caption may truthfully
    state a pair the scene's chain does not. Truth, not the chain, is what grounding checks.
    """
    if not isinstance(scenes, SceneBatch):
        raise TypeError(f"scenes must be a SceneBatch, got {type(scenes).__name__}")
    cpu = scenes.to("cpu")
    B, N = cpu.mask.shape
    pos = torch.zeros(B, len(COLOURS), 2)
    rad = torch.zeros(B, len(COLOURS))
    present = torch.zeros(B, len(COLOURS), dtype=torch.bool)
    for k in range(N):
        rows = cpu.mask[:, k].nonzero()[:, 0]
        col = cpu.colour[rows, k]
        pos[rows, col] = cpu.pos[rows, k]
        rad[rows, col] = cpu.radius[rows, k]
        present[rows, col] = True
    i, j = _pair_columns()
    rel = relation_between(pos[:, i], pos[:, j], rad[:, i], rad[:, j])  # (B, 15) ids into RELATIONS
    # RELATIONS ids: 0 i left of j, 1 i right of j, 2 i above j, 3 i below j, 4 next to
    to_class = torch.tensor([1, 2, 3, 4, 5])
    out = torch.where(rel >= 0, to_class[rel.clamp(min=0)], torch.full_like(rel, -1))
    return out.masked_fill(~(present[:, i] & present[:, j]), -1)


def relation_targets(scenes: SceneBatch) -> torch.Tensor:
    """(B, 15) int64 pair targets for perception: for every pair of colours both in the picture,
    the relation its geometry shows (0 when none applies: a diagonal layout), -1 (not scored)
    where a colour is absent. The renderer knows every pair's relation, as it knows every
    pixel's colour."""
    truth = geometric_pairs(scenes)  # -1: absent or unrelated
    present = scenes.colour_slots().cpu() > 0  # (B, 6)
    i, j = _pair_columns()
    both = present[:, i] & present[:, j]
    return torch.where(both, truth.clamp(min=0), torch.full_like(truth, -1))


def one_hot_content(slots: torch.Tensor, pairs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Content ids (slots (B, 6), pairs (B, 15)) → one-hot probabilities ((B, 6, 13), (B, 15, 6))."""
    return F.one_hot(slots, N_SLOT_CLASSES).float(), F.one_hot(pairs, N_PAIR_CLASSES).float()


def content_of_specs(specs: Sequence[SceneSpec | None],
                     device: torch.device | str | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Content probabilities (one-hot) of parsed sentences: what a sentence states, in the format
    the captioner's perception gives for a picture.

    Raises:
        ValueError: an entry is ``None`` (a sentence the parser could not read).
    """
    if any(spec is None for spec in specs):
        raise ValueError("every sentence must have been parsed (got None): content needs a reading")
    slots, pairs = one_hot_content(*content_targets(list(specs)))
    return slots.to(device or "cpu"), pairs.to(device or "cpu")


def sentence_slots(sentences: Sequence[str]) -> torch.Tensor:
    """(B, 6) colour slots the parser reads from each sentence; -1 for a sentence it cannot read."""
    if isinstance(sentences, (str, bytes)) or not isinstance(sentences, Sequence):
        raise TypeError(f"sentences must be a list of str, got {type(sentences).__name__}")
    for i, s in enumerate(sentences):
        if not isinstance(s, str):
            raise TypeError(f"sentences[{i}] must be a str, got {type(s).__name__}")
    return slots_of_specs([try_parse(s) for s in sentences])
