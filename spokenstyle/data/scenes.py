"""ShapeScenes: the scene description (what is in a picture) and a seeded, batched sampler.

A *scene* is one to three objects on a square canvas. Each object has a shape, a colour and a
size; consecutive objects are linked by a spatial relation ("the red ball is left of the blue
box, which is above the green star"). The description is all the book ever needs as ground
truth: the renderer (:mod:`spokenstyle.data.styles`) draws it in any visual style, the grammars
(:mod:`spokenstyle.data.captions`) describe it in two registers, and the parser maps a caption
back to it.

Two representations, one for speed and one for people:

* :class:`SceneBatch`: tensors of attribute ids and positions for a whole batch; what the
  renderer and the training loops consume.
* :class:`SceneSpec`: one scene as plain Python (a tuple of :class:`Obj` and relation names);
  what captions are generated from and what the parser returns. ``SceneSpec.key()`` is a
  canonical, order-free form: two descriptions of the same content have the same key even when
  they list the objects in another order ("A left of B" == "B right of A").

Randomness comes from a counter-based hash of ``(scene seed, stream, counter)`` in integer torch
ops, not from a stateful generator. So scene ``seed`` is the same scene whatever batch it is
sampled in, on the CPU and on a GPU alike: ``dataset[i]`` and the ``i``-th row of a batch agree.

Geometry (canvas coordinates: x to the right, y *down*, both in [-1, 1]):

* every object fits in a bounding circle of radius 0.16 (small) or 0.25 (large), inside the
  canvas with a 0.03 margin;
* ``left of`` / ``right of`` / ``above`` / ``below`` (far relations): the bounding circles are at
  least 0.15 apart and the offset lies within 21.8 degrees (``|perpendicular| <= 0.4 |along|``) of
  the axis; ``next to``: the circles are 0.02 to 0.07 apart, side by side (within 30 degrees of
  horizontal). The two kinds never overlap, so the relation is a function of the picture
  (:func:`relation_between`);
* objects that are not consecutive are at least 0.12 apart, and the colours in one scene are
  distinct, so "the red one" always names one object.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Iterable, Sequence

import torch

__all__ = [
    "SHAPES",
    "COLOURS",
    "COLOUR_RGB",
    "SIZES",
    "RELATIONS",
    "INVERSE_RELATION",
    "MAX_OBJECTS",
    "RADII",
    "Obj",
    "SceneSpec",
    "SceneBatch",
    "sample_scenes",
    "relation_between",
    "hash_uniform",
    "as_seeds",
    "N_SLOT_CLASSES",
    "slot_class",
    "split_slots",
    "slots_of_specs",
    "slots_to_text",
]

SHAPES: tuple[str, ...] = ("circle", "square", "triangle", "diamond", "star", "cross")
COLOURS: tuple[str, ...] = ("red", "orange", "yellow", "green", "blue", "purple")
# sRGB in [0, 1]; hues spread round the wheel so that every style can keep them apart
COLOUR_RGB: tuple[tuple[float, float, float], ...] = (
    (0.86, 0.12, 0.12),  # red
    (0.98, 0.55, 0.05),  # orange
    (0.97, 0.85, 0.10),  # yellow
    (0.15, 0.66, 0.22),  # green
    (0.13, 0.35, 0.90),  # blue
    (0.58, 0.20, 0.78),  # purple
)
SIZES: tuple[str, ...] = ("small", "large")
RELATIONS: tuple[str, ...] = ("left of", "right of", "above", "below", "next to")
INVERSE_RELATION: dict[str, str] = {
    "left of": "right of", "right of": "left of", "above": "below", "below": "above", "next to": "next to",
}
MAX_OBJECTS = 3

RADII: tuple[float, float] = (0.16, 0.25)  # bounding-circle radius of a small / large object
MARGIN = 0.03  # bounding circles stay inside [-1 + MARGIN, 1 - MARGIN]
FAR_GAP = 0.15  # far relations: circles at least this far apart ...
FAR_SLACK = 0.55  # ... and at most this much further (keeps 3-object scenes on the canvas)
FAR_PERP = 0.4  # |perpendicular offset| <= FAR_PERP * |along offset|
NEAR_GAP = (0.02, 0.07)  # "next to": the gap between the circles
NEAR_ANGLE = math.radians(30.0)  # "next to" is side by side: within 30 degrees of horizontal
OTHER_GAP = 0.12  # objects that are not consecutive are at least this far apart
_CANDIDATES = 8  # layouts tried per scene and round (rejection sampling, vectorised)

_M32 = 0xFFFFFFFF


# ----------------------------------------------------------------------------------------------
# counter-based random numbers


def _mix32(x: torch.Tensor) -> torch.Tensor:
    """A 32-bit integer hash (xorshift-multiply, constants < 2**31 so int64 never overflows)."""
    x = x & _M32
    x = ((x ^ (x >> 16)) * 0x45D9F3B) & _M32
    x = ((x ^ (x >> 16)) * 0x45D9F3B) & _M32
    x = ((x ^ (x >> 15)) * 0x2C1B3C6D) & _M32
    return x ^ (x >> 16)


def as_seeds(seeds: int | Sequence[int] | torch.Tensor, device: torch.device | str | None = None) -> torch.Tensor:
    """Scene seeds as a 1-D int64 tensor; raises on an empty, negative or non-integer seed list."""
    if isinstance(seeds, bool):
        raise TypeError("seeds must be integers, got a bool")
    if isinstance(seeds, int):
        seeds = [seeds]
    if not isinstance(seeds, torch.Tensor):
        seeds = list(seeds)
        if not seeds:
            raise ValueError("no scene seeds: give at least one seed (an int, a list of ints or a 1-D tensor)")
        big = [s for s in seeds if isinstance(s, int) and not 0 <= s < 2**63]
        if big:
            raise ValueError(f"scene seeds must be ints from 0 to 2**63 - 1, got {big[0]}")
    t = torch.as_tensor(seeds, device=device)
    if t.dtype.is_floating_point or t.dtype == torch.bool or t.is_complex():
        raise TypeError(f"seeds must be integers, got dtype {t.dtype}")
    t = t.to(torch.int64).reshape(-1)
    if t.numel() == 0:
        raise ValueError("no scene seeds: give at least one seed (an int, a list of ints or a 1-D tensor)")
    if int(t.min()) < 0:
        raise ValueError(f"seeds must be non-negative, got min {int(t.min())}")
    return t


def hash_uniform(seeds: torch.Tensor, stream: int, n: int) -> torch.Tensor:
    """``n`` uniform numbers in [0, 1) per seed, a pure function of (seed, stream, position).

    Args:
        seeds: (B,) int64 scene seeds.
        stream: which random stream (an int naming what the numbers are for).
        n: how many numbers per seed.

    Returns:
        (B, n) float32 tensor on the seeds' device.
    """
    h = _mix32(seeds ^ 0x3C6EF372)  # (B,)
    h = _mix32(h ^ (seeds >> 32) ^ _mix32(torch.tensor(stream * 0x9E37 + 0x1234567, device=seeds.device)))
    k = _mix32(torch.arange(n, device=seeds.device, dtype=torch.int64) * 0x27D4EB2F + 0x165667B1)  # (n,)
    u = _mix32(h[:, None] ^ k[None, :])  # (B, n)
    return (u >> 8).to(torch.float32) / float(1 << 24)


# ----------------------------------------------------------------------------------------------
# plain-Python descriptions


@dataclass(frozen=True)
class Obj:
    """One object: a shape, a colour and a size, by name."""

    shape: str
    colour: str
    size: str

    def __post_init__(self) -> None:
        for name, allowed in (("shape", SHAPES), ("colour", COLOURS), ("size", SIZES)):
            if getattr(self, name) not in allowed:
                raise ValueError(f"unknown {name} {getattr(self, name)!r}; expected one of {allowed}")

    def __str__(self) -> str:
        return f"{self.size} {self.colour} {self.shape}"


@dataclass(frozen=True)
class SceneSpec:
    """One scene in words: ``objects[i]`` is ``relations[i]`` ``objects[i + 1]``.

    Example: ``SceneSpec((Obj("circle", "red", "large"), Obj("square", "blue", "small")),
    ("left of",))`` is "a large red circle is left of a small blue square".
    """

    objects: tuple[Obj, ...]
    relations: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not 1 <= len(self.objects) <= MAX_OBJECTS:
            raise ValueError(f"a scene has 1 to {MAX_OBJECTS} objects, got {len(self.objects)}")
        if len(self.relations) != len(self.objects) - 1:
            raise ValueError(f"{len(self.objects)} objects need {len(self.objects) - 1} relations, "
                             f"got {len(self.relations)}")
        for rel in self.relations:
            if rel not in RELATIONS:
                raise ValueError(f"unknown relation {rel!r}; expected one of {RELATIONS}")

    def facts(self) -> frozenset[tuple[Obj, str, Obj]]:
        """The relations as order-free facts: "right of" and "below" are turned round into
        "left of" and "above", and "next to" lists its two objects in a fixed order."""
        out = set()
        for a, rel, b in zip(self.objects, self.relations, self.objects[1:]):
            if rel in ("right of", "below"):
                a, rel, b = b, INVERSE_RELATION[rel], a
            elif rel == "next to" and (b.shape, b.colour, b.size) < (a.shape, a.colour, a.size):
                a, b = b, a
            out.add((a, rel, b))
        return frozenset(out)

    def key(self) -> tuple[frozenset, frozenset]:
        """A canonical form: equal for every way of listing the same content."""
        return frozenset(self.objects), self.facts()

    def matches(self, other: "SceneSpec") -> bool:
        """True when ``other`` describes the same objects and relations (in any order)."""
        return self.key() == other.key()

    def __str__(self) -> str:
        words = [str(self.objects[0])]
        for rel, obj in zip(self.relations, self.objects[1:]):
            words += [rel, str(obj)]
        return " ".join(words)


# ----------------------------------------------------------------------------------------------
# colour slots: the one encoding of a scene's objects
#
# Colours are distinct within a scene, so a colour names one object, and six numbers describe a
# scene's objects completely and in no particular order: per colour, 0 when no object has it,
# else 1 + shape * len(SIZES) + size (13 classes). The judges predict them, the captioner and the
# attribute reader speak in them, the pipeline follows content through them; every encoder and
# decoder of the code is here.

N_SLOT_CLASSES = 1 + len(SHAPES) * len(SIZES)  # absent, or shape x size: 13


def slot_class(shape: torch.Tensor | int, size: torch.Tensor | int) -> torch.Tensor | int:
    """The slot class of an object of shape id ``shape`` and size id ``size``: ``1 + shape * 2 + size``."""
    return 1 + shape * len(SIZES) + size


def split_slots(slots: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Colour slots (..., 6) → presence (bool), shape id and size id, each (..., 6), with -1 for
    the shape and size of absent colours (and of -1, unreadable, rows)."""
    present = slots > 0
    cls = (slots - 1).clamp(min=0)
    neg = torch.full_like(slots, -1)
    return present, torch.where(present, cls // len(SIZES), neg), torch.where(present, cls % len(SIZES), neg)


def slots_of_specs(specs: Sequence["SceneSpec | None"]) -> torch.Tensor:
    """(B, 6) int64 colour slots of scene descriptions (e.g. parsed sentences); a ``None`` row
    (a sentence the parser could not read) is all -1."""
    slots = torch.full((len(specs), len(COLOURS)), -1, dtype=torch.int64)
    for b, spec in enumerate(specs):
        if spec is None:
            continue
        if not isinstance(spec, SceneSpec):
            raise TypeError(f"specs[{b}] must be a SceneSpec or None, got {type(spec).__name__}")
        slots[b] = 0
        for o in spec.objects:
            slots[b, COLOURS.index(o.colour)] = slot_class(SHAPES.index(o.shape), SIZES.index(o.size))
    return slots


def slots_to_text(slots: torch.Tensor) -> str:
    """One row of colour slots as words: "large red circle, small blue square" ("-" if empty,
    "(unreadable)" for a row of -1)."""
    if not isinstance(slots, torch.Tensor) or slots.dim() != 1 or slots.numel() != len(COLOURS):
        raise ValueError(f"slots must be one row of {len(COLOURS)}, got "
                         f"{tuple(slots.shape) if isinstance(slots, torch.Tensor) else type(slots).__name__}")
    if bool((slots < 0).any()):
        return "(unreadable)"
    words = []
    for c, v in enumerate(slots.tolist()):
        if v > 0:
            shape, size = divmod(v - 1, len(SIZES))
            words.append(f"{SIZES[size]} {COLOURS[c]} {SHAPES[shape]}")
    return ", ".join(words) or "-"


# ----------------------------------------------------------------------------------------------
# batched tensors


@dataclass
class SceneBatch:
    """A batch of scenes as tensors (``N = MAX_OBJECTS`` slots; unused slots are -1 / masked).

    Attributes:
        seed: (B,) int64, the scene seeds (the renderer draws style noise from them too).
        shape, colour, size: (B, N) int64 ids into SHAPES, COLOURS, SIZES; -1 in empty slots.
        pos: (B, N, 2) float32 centres (x right, y down) in [-1, 1]; 0 in empty slots.
        relation: (B, N - 1) int64 ids into RELATIONS; -1 where there is no pair.
        mask: (B, N) bool, which slots hold an object.
    """

    seed: torch.Tensor
    shape: torch.Tensor
    colour: torch.Tensor
    size: torch.Tensor
    pos: torch.Tensor
    relation: torch.Tensor
    mask: torch.Tensor

    def __len__(self) -> int:
        return self.seed.shape[0]

    @property
    def device(self) -> torch.device:
        return self.seed.device

    @property
    def n_objects(self) -> torch.Tensor:
        """(B,) int64 number of objects per scene."""
        return self.mask.sum(1)

    @property
    def radius(self) -> torch.Tensor:
        """(B, N) float32 bounding radius of each object (0 in empty slots)."""
        r = torch.tensor(RADII, device=self.device)[self.size.clamp(min=0)]
        return r * self.mask

    def to(self, device: torch.device | str) -> "SceneBatch":
        return SceneBatch(**{f.name: getattr(self, f.name).to(device) for f in fields(self)})

    def __getitem__(self, index: int | slice | torch.Tensor) -> "SceneBatch":
        if isinstance(index, int):
            index = slice(index, index + 1 if index != -1 else None)
        return SceneBatch(**{f.name: getattr(self, f.name)[index] for f in fields(self)})

    @staticmethod
    def cat(batches: Iterable["SceneBatch"]) -> "SceneBatch":
        batches = list(batches)
        return SceneBatch(**{f.name: torch.cat([getattr(b, f.name) for b in batches]) for f in fields(SceneBatch)})

    def spec(self, i: int) -> SceneSpec:
        """Scene ``i`` as a :class:`SceneSpec`."""
        n = int(self.mask[i].sum())
        objs = tuple(Obj(SHAPES[int(self.shape[i, k])], COLOURS[int(self.colour[i, k])], SIZES[int(self.size[i, k])])
                     for k in range(n))
        rels = tuple(RELATIONS[int(self.relation[i, k])] for k in range(n - 1))
        return SceneSpec(objs, rels)

    def specs(self) -> list[SceneSpec]:
        """Every scene of the batch as a :class:`SceneSpec`."""
        shape, colour, size, rel, n = (t.tolist() for t in (self.shape, self.colour, self.size, self.relation,
                                                            self.n_objects))
        return [SceneSpec(tuple(Obj(SHAPES[shape[i][k]], COLOURS[colour[i][k]], SIZES[size[i][k]]) for k in range(n[i])),
                          tuple(RELATIONS[rel[i][k]] for k in range(n[i] - 1))) for i in range(len(n))]

    def colour_slots(self) -> torch.Tensor:
        """(B, len(COLOURS)) int64 colour slots (see :func:`slot_class`): 0 when no object has
        that colour, else its object's class. Colours are distinct within a scene, so this is an
        order-free, complete summary of the objects (what the scene judge predicts)."""
        slots = torch.zeros(len(self), len(COLOURS) + 1, dtype=torch.int64, device=self.device)
        cls = slot_class(self.shape.clamp(min=0), self.size.clamp(min=0))  # (B, N)
        col = torch.where(self.mask, self.colour, len(COLOURS))  # empty slots go to a spare column
        slots.scatter_(1, col, torch.where(self.mask, cls, 0))
        return slots[:, : len(COLOURS)]


# ----------------------------------------------------------------------------------------------
# sampling

_S_COUNT, _S_COLOUR, _S_SHAPE, _S_SIZE, _S_REL, _S_LAYOUT = range(6)


def _direction(rel: torch.Tensor, angle_u: torch.Tensor, side_u: torch.Tensor) -> torch.Tensor:
    """Unit vector from an object to the next one for relation ids ``rel`` (B, K)."""
    # "A left of B" means B lies to the right of A (x grows to the right, y grows downwards)
    axis = torch.tensor([[1.0, 0.0], [-1.0, 0.0], [0.0, 1.0], [0.0, -1.0], [1.0, 0.0]], device=rel.device)
    d = axis[rel.clamp(min=0)]  # (B, K, 2)
    # next to: side by side, either side, within NEAR_ANGLE of horizontal
    theta = (angle_u * 2 - 1) * NEAR_ANGLE
    side = torch.where(side_u < 0.5, -1.0, 1.0)
    near = torch.stack([side * torch.cos(theta), torch.sin(theta)], -1)
    return torch.where((rel == 4)[..., None], near, d)


def _layout_candidates(seeds: torch.Tensor, rel: torch.Tensor, radius: torch.Tensor, mask: torch.Tensor,
                       round_: int) -> tuple[torch.Tensor, torch.Tensor]:
    """K candidate layouts per scene and whether each is valid: (B, K, N, 2), (B, K)."""
    B, N = radius.shape
    K = _CANDIDATES
    u = hash_uniform(seeds, _S_LAYOUT + 16 * round_, K * (4 * (N - 1) + 2)).view(B, K, -1)
    # "fold-back" chains (A above B, which is below C) put A and C on the same side of B:
    # spread them apart with large perpendicular offsets of opposite signs
    inverse = torch.tensor([1, 0, 3, 2, -1], device=seeds.device)
    fold = (rel[:, 1] == inverse[rel[:, 0]])[:, None] if N >= 3 else torch.zeros(B, 1, dtype=torch.bool)
    pos = [torch.zeros(B, K, 2, device=seeds.device)]
    sign = torch.ones(B, K, device=seeds.device)
    for i in range(N - 1):
        ua, up, uang, ugap = u[..., 4 * i: 4 * i + 4].unbind(-1)  # (B, K) each
        r_i = rel[:, i, None].expand(B, K)  # (B, K)
        ra, rb = radius[:, i, None], radius[:, i + 1, None]
        far_gap = FAR_GAP + FAR_SLACK * ua ** 2  # favour tight layouts: they fit more often
        near_gap = NEAR_GAP[0] + (NEAR_GAP[1] - NEAR_GAP[0]) * ugap
        along = ra + rb + torch.where(r_i == 4, near_gap, far_gap)  # (B, K)
        perp = (up * 2 - 1) * FAR_PERP
        if N >= 3:
            sign = torch.where(uang < 0.5, -1.0, 1.0) if i == 0 else -sign
            along = torch.where(fold, ra + rb + FAR_GAP + 0.15 + 0.4 * ua, along)
            perp = torch.where(fold, sign * FAR_PERP * (0.6 + 0.4 * up), perp)
        perp = torch.where(r_i == 4, 0.0, perp) * along
        d = _direction(r_i, uang, up)  # (B, K, 2)
        normal = torch.stack([-d[..., 1], d[..., 0]], -1)
        step = d * along[..., None] + normal * perp[..., None]
        # a far relation keeps its gap once the perpendicular offset is added (it only grows)
        pos.append(pos[-1] + step)
    pos = torch.stack(pos, 2)  # (B, K, N, 2)
    r = radius[:, None, :, None]  # (B, 1, N, 1)
    m = mask[:, None, :, None]
    lo = torch.where(m, pos - r, torch.inf).amin(2)  # (B, K, 2) bounding box of the layout
    hi = torch.where(m, pos + r, -torch.inf).amax(2)
    room = (2 - 2 * MARGIN) - (hi - lo)  # (B, K, 2) free space to slide the layout in
    ut = u[..., -2:]  # (B, K, 2)
    shift = (-1 + MARGIN) - lo + room.clamp(min=0) * ut
    pos = pos + shift[:, :, None, :]
    valid = (room >= 0).all(-1)  # (B, K)
    if N >= 3:  # objects 0 and 2 are not linked by a relation: keep them clearly apart
        gap02 = (pos[:, :, 0] - pos[:, :, 2]).norm(dim=-1) - radius[:, None, 0] - radius[:, None, 2]
        valid &= (gap02 >= OTHER_GAP) | ~mask[:, None, 2]
    return pos, valid


def sample_scenes(seeds: int | Sequence[int] | torch.Tensor, device: torch.device | str | None = None,
                  n_objects: int | None = None) -> SceneBatch:
    """Samples one scene per seed; the same seed always gives the same scene, in any batch.

    Args:
        seeds: scene seeds (non-negative ints), an int or a 1-D tensor/sequence.
        device: where to build the tensors (default: the seeds' device, else CPU).
        n_objects: force this many objects (1 to 3); ``None`` samples 1 to 3 uniformly.

    Returns:
        A :class:`SceneBatch` of ``len(seeds)`` scenes.
    """
    if n_objects is not None and (not isinstance(n_objects, int) or isinstance(n_objects, bool)
                                  or n_objects not in range(1, MAX_OBJECTS + 1)):
        raise ValueError(f"n_objects must be 1, 2 or 3 (or None), got {n_objects!r}")
    dev = torch.device(device) if device is not None else (seeds.device if isinstance(seeds, torch.Tensor) else None)
    seeds = as_seeds(seeds, dev)
    B, N = seeds.shape[0], MAX_OBJECTS
    if n_objects is None:
        count = 1 + (hash_uniform(seeds, _S_COUNT, 1)[:, 0] * N).long().clamp(max=N - 1)  # (B,)
    else:
        count = torch.full((B,), n_objects, dtype=torch.int64, device=seeds.device)
    mask = torch.arange(N, device=seeds.device)[None, :] < count[:, None]  # (B, N)
    # distinct colours: a random permutation per scene, first N entries
    colour = hash_uniform(seeds, _S_COLOUR, len(COLOURS)).argsort(dim=1)[:, :N]  # (B, N)
    shape = (hash_uniform(seeds, _S_SHAPE, N) * len(SHAPES)).long().clamp(max=len(SHAPES) - 1)
    size = (hash_uniform(seeds, _S_SIZE, N) * len(SIZES)).long().clamp(max=len(SIZES) - 1)
    rel = (hash_uniform(seeds, _S_REL, N - 1) * len(RELATIONS)).long().clamp(max=len(RELATIONS) - 1)
    rel_mask = mask[:, 1:]
    radius = torch.tensor(RADII, device=seeds.device)[size] * mask

    pos = torch.zeros(B, N, 2, device=seeds.device)
    todo = torch.ones(B, dtype=torch.bool, device=seeds.device)
    for round_ in range(64):
        idx = todo.nonzero()[:, 0]
        cand, valid = _layout_candidates(seeds[idx], rel[idx], radius[idx], mask[idx], round_)
        ok = valid.any(1)  # (b,)
        first = valid.float().argmax(1)  # (b,) first valid candidate
        chosen = cand[torch.arange(len(idx), device=seeds.device), first]  # (b, N, 2)
        pos[idx[ok]] = chosen[ok]
        todo[idx[ok]] = False
        if not bool(todo.any()):
            break
    else:  # pragma: no cover - every relation chain fits; see the module docstring
        raise RuntimeError(f"could not lay out scenes with seeds {seeds[todo].tolist()[:5]}")
    neg = torch.tensor(-1, device=seeds.device)
    return SceneBatch(
        seed=seeds,
        shape=torch.where(mask, shape, neg),
        colour=torch.where(mask, colour, neg),
        size=torch.where(mask, size, neg),
        pos=pos * mask[..., None],
        relation=torch.where(rel_mask, rel, neg),
        mask=mask,
    )


def relation_between(pos_a: torch.Tensor, pos_b: torch.Tensor, r_a: torch.Tensor, r_b: torch.Tensor) -> torch.Tensor:
    """The relation of object a to object b read off the geometry, or -1 if none applies.

    Args:
        pos_a, pos_b: (..., 2) centres; r_a, r_b: (...) bounding radii.

    Returns:
        (...) int64 ids into RELATIONS; -1 for layouts the sampler never produces (diagonal,
        or in the dead zone between "next to" and the far relations).
    """
    d = pos_b - pos_a  # (..., 2)
    gap = d.norm(dim=-1) - r_a - r_b
    dx, dy = d[..., 0], d[..., 1]
    out = torch.full(gap.shape, -1, dtype=torch.int64, device=gap.device)
    eps = 1e-4
    near = (gap >= NEAR_GAP[0] - eps) & (gap <= NEAR_GAP[1] + eps) & (dy.abs() <= dx.abs() * math.tan(NEAR_ANGLE) + eps)
    far = gap >= FAR_GAP - eps
    horiz = far & (dy.abs() <= FAR_PERP * dx.abs() + eps)
    vert = far & (dx.abs() <= FAR_PERP * dy.abs() + eps)
    out = torch.where(horiz & (dx > 0), 0, out)
    out = torch.where(horiz & (dx < 0), 1, out)
    out = torch.where(vert & (dy > 0), 2, out)
    out = torch.where(vert & (dy < 0), 3, out)
    return torch.where(near, 4, out)
