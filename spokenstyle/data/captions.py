"""Captions in two registers, formal and spoken, and a parser that reads either back.

Both grammars describe a :class:`~spokenstyle.data.scenes.SceneSpec`:

* **formal**: "A large red circle is to the left of a small blue square." A dozen templates,
  all plain written English: full noun phrases, standard relation words, one sentence or two.
* **spoken**: "whoa, check out that big red ball chillin' right next to a teeny blue box!" Over
  thirty constructions (see :data:`SPOKEN_CONSTRUCTIONS`): interjections, fillers, contractions,
  slang synonyms (ball, box, pyramid, gem, plus sign), rhetorical questions, exclamations,
  fragments, tag questions, back-references ("the red one", "it"), facts told in either
  direction ("a box with a ball right by it").

Neither register is marked by one token: spoken captions sometimes use the formal words
("small", "circle", "to the left of") and end with a plain full stop, formal ones use "it" and
"which" too. Chapter 1 trains a bag-of-words classifier and shows which words it leans on.

Captions are deterministic: ``caption(spec, register, seed)`` draws from ``random.Random``
seeded by ``seed``.

The **parser** (:func:`parse`) is not the grammar run backwards: it tags words with a lexicon
(longest match first), groups them into noun phrases, resolves back-references (a colour names
one object, since colours are distinct within a scene; a bare shape names the latest object of
that shape; "it"/"which"/"that" name the latest other object), and attaches every relation phrase
to a subject and a landmark with a few positional rules (see :func:`_attach`). So it also reads
sentences the grammar never produced, e.g. a captioner's output. It is exact on formal captions
and above 99 % on spoken ones (tests and chapter 1 measure both).
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass, field
from typing import Iterable, Sequence

from ..runtime import check_seed
from .scenes import COLOURS, INVERSE_RELATION, SHAPES, SIZES, Obj, SceneBatch, SceneSpec

__all__ = [
    "REGISTERS",
    "SPOKEN_CONSTRUCTIONS",
    "FORMAL_CONSTRUCTIONS",
    "ParseError",
    "caption",
    "formal_caption",
    "spoken_caption",
    "describe",
    "parse",
    "try_parse",
    "lexicon_words",
]

REGISTERS: tuple[str, ...] = ("formal", "spoken")

# ----------------------------------------------------------------------------------------------
# words

FORMAL_SIZE = {"small": ["small"], "large": ["large"]}
FORMAL_REL = {
    "left of": ["to the left of", "left of"],
    "right of": ["to the right of", "right of"],
    "above": ["above"],
    "below": ["below"],
    "next to": ["next to", "beside"],
}
SPOKEN_SIZE = {
    "small": ["tiny", "little", "teeny", "itty-bitty", "teeny-tiny", "wee", "smol", "small", "lil"],
    "large": ["big", "huge", "giant", "massive", "ginormous", "chunky", "hefty", "large", "big ol'"],
}
SPOKEN_COLOUR = {
    "red": ["red", "reddish", "bright red", "cherry-red"],
    "orange": ["orange", "orangey", "orangish", "bright orange"],
    "yellow": ["yellow", "yellowish", "sunny yellow", "lemony"],
    "green": ["green", "greenish", "lime-green", "grassy green"],
    "blue": ["blue", "bluish", "bright blue", "sky-blue"],
    "purple": ["purple", "purply", "purplish", "violet"],
}
SPOKEN_SHAPE = {
    "circle": ["ball", "dot", "circle", "round thing", "blob", "bubble"],
    "square": ["box", "block", "square", "cube"],
    "triangle": ["triangle", "pyramid", "triangle thingy", "tri"],
    "diamond": ["diamond", "gem", "rhombus", "diamond thingy"],
    "star": ["star", "starry thing", "star shape", "twinkle"],
    "cross": ["cross", "plus sign", "plus", "plus thingy"],
}
SPOKEN_REL = {
    "left of": ["left of", "to the left of", "on the left of", "off to the left of", "just left of",
                "on the left side of", "way left of"],
    "right of": ["right of", "to the right of", "on the right of", "off to the right of", "just right of",
                 "on the right side of", "way right of"],
    "above": ["above", "over", "up above", "hovering over", "floating above", "way above", "up over"],
    "below": ["below", "under", "underneath", "beneath", "down below", "way below", "down under"],
    "next to": ["next to", "right next to", "beside", "right by", "snuggled up next to", "right up against",
                "smack next to", "up against"],
}
OPENERS = ["whoa,", "oh wow,", "hey,", "okay so", "look,", "yo,", "ooh,", "huh,", "so yeah,", "alright,",
           "dude,", "man,", "omg", "welp,", "ok ok,", "hmm,", "haha,", "oh,", "um,", "so uh,", "lol"]
FILLERS = ["like,", "um,", "uh,", "you know,", "kinda", "sorta", "I mean,", "basically", "literally", "honestly,"]
ENDINGS = ["!", "!!", ".", ".", ".", "...", "?!", " lol", " haha", "", " tbh", " fr", "!!!", "."]
TAGS = ["you know?", "right?", "ya know?", "I guess.", "lol.", "no joke.", "for real.", "huh?", "isn't it?"]
VERBING = ["hanging out", "chillin'", "sitting", "just sitting", "kicking it", "hanging", "parked", "vibing"]


# ----------------------------------------------------------------------------------------------
# the generator


@dataclass
class _Gen:
    """One caption being written: the scene, the random stream, and who was mentioned last."""

    spec: SceneSpec
    rng: random.Random
    register: str
    last: list[int] = field(default_factory=list)  # object indices in mention order

    def pick(self, options: Sequence[str]) -> str:
        return options[self.rng.randrange(len(options))]

    def chance(self, p: float) -> bool:
        return self.rng.random() < p

    # noun phrases ---------------------------------------------------------------------------
    def new(self, i: int, det: str | None = None) -> str:
        """First mention of object i: size, colour and shape, all three."""
        o = self.spec.objects[i]
        self.last.append(i)
        if self.register == "formal":
            return f"{det or 'a'} {o.size} {o.colour} {o.shape}"
        det = det or self.pick(["a", "a", "this", "some", "one", "that", "a"])
        size = self.pick(SPOKEN_SIZE[o.size])
        colour = self.pick(SPOKEN_COLOUR[o.colour])
        shape = self.pick(SPOKEN_SHAPE[o.shape])
        pre = self.pick(["", "", "", "", "super ", "real ", "kinda "])
        sep = ", " if self.chance(0.08) else " "
        post = self.pick(["", "", "", "", "", " thingy", " dude"]) if "thing" not in shape else ""
        return f"{det} {pre}{size}{sep}{colour} {shape}{post}"

    def ref(self, i: int) -> str:
        """A later mention of object i (it was mentioned before)."""
        o = self.spec.objects[i]
        self.last.append(i)
        if self.register == "formal":
            return f"the {o.size} {o.colour} {o.shape}"
        unique_shape = sum(x.shape == o.shape for x in self.spec.objects) == 1
        forms = [f"the {self.pick(SPOKEN_COLOUR[o.colour])} one", f"that {o.colour} {self.pick(SPOKEN_SHAPE[o.shape])}"]
        if unique_shape:
            forms += [f"the {self.pick(SPOKEN_SHAPE[o.shape])}"] * 2
        return self.pick(forms)

    def pron(self, i: int) -> str:
        """A pronoun for object i, as the landmark right after a relation phrase (the parser
        reads it as the latest object mentioned other than the relation's subject)."""
        self.last.append(i)
        return "it" if self.register == "formal" else self.pick(["it", "it", "it", "that", "that one", "this one"])

    def rel(self, r: str) -> str:
        return self.pick(FORMAL_REL[r] if self.register == "formal" else SPOKEN_REL[r])

    # decoration -----------------------------------------------------------------------------
    def opener(self, p: float = 0.6) -> str:
        return self.pick(OPENERS) + " " if self.chance(p) else ""

    def filler(self, p: float = 0.25) -> str:
        return self.pick(FILLERS) + " " if self.chance(p) else ""

    def end(self) -> str:
        return self.pick(ENDINGS)


def _fact(g: _Gen, a: int, r: str, b: int) -> tuple[int, str, int]:
    """Tell "a r b" forwards or backwards ("b inverse(r) a") at random (spoken only)."""
    if g.register == "spoken" and g.chance(0.3):
        return b, INVERSE_RELATION[r], a
    return a, r, b


# -- formal constructions -----------------------------------------------------------------------

def _f1(g: _Gen) -> str:
    return g.pick(["There is {A}.", "The image shows {A}.", "The picture contains {A}.", "{A} is shown."]).format(A=g.new(0))


def _f2_basic(g: _Gen, a: int, r: str, b: int) -> str:
    form = g.rng.randrange(5)
    if form == 0:
        return f"{g.new(a)} is {g.rel(r)} {g.new(b)}."
    if form == 1:
        return f"There is {g.new(a)} {g.rel(r)} {g.new(b)}."
    if form == 2:
        return f"The image shows {g.new(a)} {g.rel(r)} {g.new(b)}."
    if form == 3:  # inversion: the landmark comes first
        rel = g.rel(r)
        nb = g.new(b)
        return f"{rel} {nb} is {g.new(a)}."
    nb = g.new(b)  # "A small blue square has a large red circle to the left of it."
    return f"{nb} has {g.new(a)} {g.rel(r)} it."


def _f2(g: _Gen) -> str:
    return _f2_basic(g, 0, g.spec.relations[0], 1)


def _f3(g: _Gen) -> str:
    r1, r2 = g.spec.relations
    form = g.rng.randrange(4)
    if form == 0:
        return f"{g.new(0)} is {g.rel(r1)} {g.new(1)}, which is {g.rel(r2)} {g.new(2)}."
    if form == 1:
        return f"There is {g.new(0)} {g.rel(r1)} {g.new(1)}, and {g.ref(1)} is {g.rel(r2)} {g.new(2)}."
    if form == 2:
        first = f"The image shows {g.new(0)} {g.rel(r1)} {g.new(1)}."
        return f"{first} {g.ref(1).capitalize()} is {g.rel(r2)} {g.new(2)}."
    return f"{g.new(0)} is {g.rel(r1)} {g.new(1)}, and {g.new(2)} is {g.rel(INVERSE_RELATION[r2])} {g.ref(1)}."


FORMAL_CONSTRUCTIONS = 4 + 5 + 4  # one-, two- and three-object templates


# -- spoken constructions: one object -------------------------------------------------------------

def _s1(g: _Gen) -> str:
    form = g.rng.randrange(12)
    A = g.new(0)
    return [
        f"{g.opener()}there's {A}{g.end()}",
        f"{g.opener()}check out {A}{g.end()}",
        f"just {A}, that's it{g.end()}",
        f"{g.opener()}I'm seeing {A}{g.end()}",
        f"is that {A}? yep{g.end()}",
        f"{g.opener()}so basically it's just {A}{g.end()}",
        f"you know what's in there? {A}{g.end()}",
        f"{A}! pretty neat, huh?",
        f"lol it's literally just {A}",
        f"{g.opener()}we got {A} here{g.end()}",
        f"look at that, {A}{g.end()}",
        f"{A} all by itself, {g.pick(TAGS)}",
    ][form]


# -- spoken constructions: two objects (also the first part of three-object captions) -------------

def _pair(g: _Gen, a: int, r: str, b: int) -> tuple[str, str]:
    """A spoken sentence saying "a r b" about two new objects, split as (core, tail): the core
    ends with the last mention, the tail is the exclamation or tag that follows it."""
    a, r, b = _fact(g, a, r, b)
    form = g.rng.randrange(22)
    R = g.rel(r)
    if form == 0:
        return f"{g.opener()}{g.new(a)} {R} {g.new(b)}", g.end()
    if form == 1:
        return f"{g.opener()}there's {g.filler()}{g.new(a)} {R} {g.new(b)}", g.end()
    if form == 2:
        return f"{g.opener()}check out {g.new(a)} {g.pick(VERBING)} {R} {g.new(b)}", g.end()
    if form == 3:
        A = g.new(a)
        return f"so there's {A}, and {g.pron(a)}'s {g.filler()}{R} {g.new(b)}", g.end()
    if form == 4:
        B = g.new(b)
        return f"ya see {B}? there's {g.new(a)} {R} {g.pron(b)}", g.end()
    if form == 5:
        B = g.new(b, det=g.pick(["the", "that", "a"]))
        return f"know what's {R} {B}? {g.new(a)}", g.end()
    if form == 6:
        A, B = g.new(a), g.new(b)
        sep = g.pick([", and", " and", "... and"])
        return f"{A} and {B}{sep} {g.ref(a)}'s {R} {g.ref(b)}", g.end()
    if form == 7:
        B = g.new(b)
        return f"{g.opener()}it's {B} with {g.new(a)} {R} {g.pron(b)}", g.end()
    if form == 8:
        B = g.new(b, det=g.pick(["the", "that", "this"]))
        return f"{R} {B}? {g.new(a)}", g.end()
    if form == 9:
        return f"is that {g.new(a)} {R} {g.new(b)}", f"? yep, sure is{g.end()}"
    if form == 10:
        return f"I mean, {g.new(a)} {R} {g.new(b)}", f", what more do you want{g.end()}"
    if form == 11:
        return f"{g.new(a)}, {R} {g.new(b)}", f". that's it{g.end()}"
    if form == 12:
        return f"{g.opener()}so like, {g.new(a)} is {R} {g.new(b)}", f", {g.pick(TAGS)}"
    if form == 13:
        B = g.new(b)
        return f"{B}, and {R} {g.pron(b)}, {g.new(a)}", g.end()
    if form == 14:
        A, B = g.new(a), g.new(b)
        return f"there's {A} and {B}, with {g.ref(a)} {R} {g.ref(b)}", g.end()
    if form == 15:
        return f"{g.new(a)}? {R} {g.new(b)}", f"? yep{g.end()}"
    if form == 16:
        return f"{g.new(a)} {R} {g.new(b)}", f", no joke{g.end()}"
    if form == 17:
        return f"{g.pick(['dude', 'man', 'bro', 'okay'])}, {g.new(a)}. {R} {g.new(b)}", g.end()
    if form == 18:
        B = g.new(b)
        return f"okay so {B} is {g.pick(VERBING)} there, and {g.new(a)} is {R} {g.pron(b)}", g.end()
    if form == 19:
        return f"{g.new(a)} {R} {g.new(b)}", f"?? {g.pick(['wow', 'wild', 'nice', 'cute', 'neat', 'sick'])}{g.end()}"
    if form == 20:
        return f"honestly it's just {g.new(a)} {R} {g.new(b)}", g.end()
    return f"lemme tell ya, {g.new(a)}'s {R} {g.new(b)}", g.end()


def _s2(g: _Gen) -> str:
    core, tail = _pair(g, 0, g.spec.relations[0], 1)
    return core + tail


# -- spoken constructions: the third object ------------------------------------------------------

def _s3(g: _Gen) -> str:
    r1, r2 = g.spec.relations
    core, tail = _pair(g, 0, r1, 1)
    first = _close(core + tail)
    b_last = g.last[-1] == 1  # may a pronoun name object 1 (b)?
    c_rel_b = INVERSE_RELATION[r2]  # how the new object c sits relative to b
    form = g.rng.randrange(8)
    if form == 0:
        if b_last:
            return f"{core}, which is {g.rel(r2)} {g.new(2)}{g.end()}"
        return f"{first} {g.ref(1)} is {g.rel(r2)} {g.new(2)}{g.end()}"
    if form == 1:
        return f"{core}, and {g.ref(1)}'s {g.rel(r2)} {g.new(2)}{g.end()}"
    if form == 2:
        return f"{first} oh and there's {g.new(2)} {g.rel(c_rel_b)} {g.ref(1)}{g.end()}"
    if form == 3:
        return f"{first} and {g.rel(c_rel_b)} {g.ref(1)}? {g.new(2)}{g.end()}"
    if form == 4:
        if b_last:
            C = g.new(2)
            return f"{core}, and {C} {g.rel(c_rel_b)} {g.pron(1)}{g.end()}"
        return f"{core}, and {g.new(2)} {g.rel(c_rel_b)} {g.ref(1)}{g.end()}"
    if form == 5:
        C = g.new(2)
        return f"{first} and {C}? it's {g.rel(c_rel_b)} {g.ref(1)}{g.end()}"
    if form == 6:
        return f"{first} also {g.new(2)} {g.pick(VERBING)} {g.rel(c_rel_b)} {g.ref(1)}{g.end()}"
    return f"{first} {g.pick(['also', 'oh and', 'and yeah'])} {g.ref(1)} is {g.rel(r2)} {g.new(2)}{g.end()}"


def _close(text: str) -> str:
    """Makes sure ``text`` ends a sentence (so the next part starts a new one)."""
    text = text.rstrip()
    return text if text.endswith(("!", ".", "?")) else text + "!"


SPOKEN_CONSTRUCTIONS = 12 + 22 + 8  # one-object, relation, and third-object constructions


# ----------------------------------------------------------------------------------------------
# public generator API


def _check_spec(spec: SceneSpec) -> SceneSpec:
    if not isinstance(spec, SceneSpec):
        raise TypeError(f"expected a SceneSpec, got {type(spec).__name__}")
    return spec


def _tidy(text: str, capitalise: bool) -> str:
    text = re.sub(r"\s+", " ", text).strip()
    text = re.sub(r"\b([Aa]) (?=[aeiou])", r"\1n ", text)  # "a itty-bitty" -> "an itty-bitty"
    text = re.sub(r" ([,.!?])", r"\1", text)
    return text[0].upper() + text[1:] if capitalise and text else text


def formal_caption(spec: SceneSpec, seed: int = 0) -> str:
    """A formal description of ``spec``; the same (spec, seed) always gives the same caption."""
    g = _Gen(_check_spec(spec), random.Random(check_seed(seed) * 2 + 1), "formal")
    text = (_f1, _f2, _f3)[len(spec.objects) - 1](g)
    return _tidy(text, capitalise=True)


def spoken_caption(spec: SceneSpec, seed: int = 0) -> str:
    """A colloquial description of ``spec``; the same (spec, seed) always gives the same caption."""
    g = _Gen(_check_spec(spec), random.Random(check_seed(seed) * 2 + 2), "spoken")
    text = (_s1, _s2, _s3)[len(spec.objects) - 1](g)
    return _tidy(text, capitalise=g.chance(0.3))


def caption(spec: SceneSpec, register: str = "formal", seed: int = 0) -> str:
    """A caption of ``spec`` in ``register`` ("formal" or "spoken")."""
    if register not in REGISTERS:
        raise ValueError(f"unknown register {register!r}; expected one of {REGISTERS}")
    check_seed(seed)
    return (formal_caption if register == "formal" else spoken_caption)(spec, seed)


def describe(scenes: SceneBatch | Sequence[SceneSpec], register: str = "formal",
             seeds: Iterable[int] | None = None) -> list[str]:
    """Captions for a batch: one per scene, seeded by the scene seeds (or ``seeds``)."""
    if isinstance(scenes, SceneBatch):
        specs, default_seeds = scenes.specs(), scenes.seed.tolist()
    else:
        specs, default_seeds = list(scenes), list(range(len(scenes)))
    seeds = list(seeds) if seeds is not None else default_seeds
    if len(seeds) != len(specs):
        raise ValueError(f"got {len(seeds)} seeds for {len(specs)} scenes")
    return [caption(s, register, k) for s, k in zip(specs, seeds)]


# ----------------------------------------------------------------------------------------------
# the parser


class ParseError(ValueError):
    """The caption could not be read back into a complete scene."""


def _lexicon() -> dict[tuple[str, ...], tuple[str, str]]:
    lex: dict[tuple[str, ...], tuple[str, str]] = {}

    def add(table: dict[str, list[str]], kind: str) -> None:
        for value, phrases in table.items():
            for phrase in phrases:
                key = tuple(_tokens(phrase))
                lex[key] = (kind, value)

    add({k: [k] for k in SIZES}, "size")
    add(FORMAL_REL, "rel")
    add(SPOKEN_SIZE, "size")
    add({k: [k] for k in COLOURS}, "colour")
    add(SPOKEN_COLOUR, "colour")
    add({k: [k] for k in SHAPES}, "shape")
    add(SPOKEN_SHAPE, "shape")
    add(SPOKEN_REL, "rel")
    for p in ["it", "which", "that one", "this one", "that"]:
        lex[tuple(_tokens(p))] = ("pron", p)
    lex[("one",)] = ("head", "one")
    return lex


_TOKEN_RE = re.compile(r"[a-z]+(?:[-'][a-z]+)*'?|[.!?]+|[,;]")
_SENTENCE_END = re.compile(r"[.!?]+")
_HARD = {"and", "but", "also", "oh", ";"}


def _tokens(text: str) -> list[str]:
    out = []
    for tok in _TOKEN_RE.findall(text.lower()):
        if tok.endswith("'s") and len(tok) > 2:
            out += [tok[:-2], "'s"]
        else:
            out.append(tok)
    return out


@dataclass
class _Mention:
    pos: int  # token index of the phrase's first word
    end: int  # one past its last word
    size: str | None = None
    colour: str | None = None
    shape: str | None = None
    pron: bool = False
    entity: int = -1


@dataclass
class _Rel:
    pos: int
    end: int
    name: str


_LEX: dict[tuple[str, ...], tuple[str, str]] | None = None
_MAXLEN = 5


def _tag(tokens: list[str]) -> list[tuple[int, int, str, str]]:
    """Longest-match lexicon tagging: (start, end, kind, value) spans."""
    global _LEX
    if _LEX is None:
        _LEX = _lexicon()
    spans, i = [], 0
    while i < len(tokens):
        for n in range(min(_MAXLEN, len(tokens) - i), 0, -1):
            hit = _LEX.get(tuple(tokens[i: i + n]))
            if hit is not None:
                spans.append((i, i + n, *hit))
                i += n
                break
        else:
            i += 1
    return spans


_ATTR = ("size", "colour", "shape")
_NP_GLUE = {",", "super", "real", "kinda", "sorta"}


def _attribute_starts() -> set[str]:
    _tag([])  # builds the lexicon
    return {k[0] for k, (kind, _) in _LEX.items() if kind in _ATTR}


_STARTS: set[str] | None = None


def _mentions(tokens: list[str]) -> tuple[list[_Mention], list[_Rel]]:
    """Noun phrases (runs of size/colour/shape words closed by a shape or "one"), pronouns and
    relation phrases, in text order."""
    global _STARTS
    if _STARTS is None:
        _STARTS = _attribute_starts() | (_NP_GLUE - {","})
    mentions: list[_Mention] = []
    rels: list[_Rel] = []
    cur: _Mention | None = None
    for start, end, kind, value in _tag(tokens):
        glued = cur is not None and all(t in _NP_GLUE for t in tokens[cur.end:start])
        if kind in _ATTR:
            if not glued or getattr(cur, kind) is not None:
                cur = _Mention(start, end)
                mentions.append(cur)
            setattr(cur, kind, value)
            cur.end = end
            if kind == "shape":
                cur = None  # a shape closes the noun phrase
            continue
        if kind == "head" and glued and cur.shape is None:
            cur.end = end  # "the red one": the colour names the object
        cur = None
        if kind == "pron":
            nxt = tokens[end] if end < len(tokens) else None
            if value in ("that", "this") and nxt in _STARTS:
                continue  # a determiner: "that tiny blue box"
            mentions.append(_Mention(start, end, pron=True))
        elif kind == "rel":
            rels.append(_Rel(start, end, value))
    return [m for m in mentions if m.pron or m.colour or m.shape], rels


def _clauses(tokens: list[str]) -> tuple[list[int], list[int], list[int]]:
    """Sentence, hard-clause and soft-clause ids of every token."""
    sent, hard, soft = [], [], []
    s = h = c = 0
    for tok in tokens:
        if _SENTENCE_END.fullmatch(tok):
            sent.append(s), hard.append(h), soft.append(c)
            s, h, c = s + 1, h + 1, c + 1
            continue
        if tok in _HARD:
            h, c = h + 1, c + 1
        elif tok == ",":
            c += 1
        sent.append(s), hard.append(h), soft.append(c)
    return sent, hard, soft


def _attach(rel: _Rel, rels: list[_Rel], mentions: list[_Mention], tokens: list[str],
            clauses) -> tuple[_Mention, _Mention]:
    """Subject and landmark of one relation phrase.

    Landmark: the first noun phrase or pronoun after the relation in its sentence. Subject,
    first rule that finds one: (1) the nearest phrase before the relation in its comma-clause;
    (2) ... in its clause (split at and/but/also/oh); (3) the first phrase after the landmark in
    that clause, unless another relation comes between ("to the left of the box is a ball"); (4) for a question ("know what's next to
    the box?"), the first phrase of the next sentence; (5) the nearest phrase before, anywhere;
    (6) the first phrase after the landmark, anywhere.
    """
    sent, hard, soft = clauses
    p = rel.pos
    after = [m for m in mentions if m.pos >= rel.end and sent[m.pos] == sent[p]]
    if not after:
        raise ParseError(f"relation {rel.name!r} has no landmark")
    landmark = after[0]
    before = [m for m in mentions if m.end <= p]
    later = [m for m in mentions if m.pos > landmark.pos and not m.pron]  # a pronoun looks back
    candidates = [
        [m for m in reversed(before) if soft[m.pos] == soft[p]],
        [m for m in reversed(before) if hard[m.pos] == hard[p]],
        [m for m in later if hard[m.pos] == hard[p] and not any(landmark.pos < q.pos < m.pos for q in rels)],
    ]
    sentence_end = max(i for i in range(len(tokens)) if sent[i] == sent[p])
    if set(tokens[sentence_end]) == {"?"}:  # a real question ("?!" is an exclamation)
        candidates.append([m for m in later if sent[m.pos] == sent[p] + 1])
    candidates += [list(reversed(before)), later]
    for group in candidates:
        if group:
            return group[0], landmark
    raise ParseError(f"relation {rel.name!r} has no subject")


def _resolve(mentions: list[_Mention]) -> list[dict]:
    """Assigns an entity to every noun phrase: colours are unique in a scene, so a colour names
    one object; a bare shape names the latest object of that shape."""
    entities: list[dict] = []
    for m in mentions:
        if m.pron:
            continue
        found = None
        if m.colour is not None:
            found = next((k for k, e in enumerate(entities) if e["colour"] == m.colour), None)
        elif m.shape is not None:
            found = next((k for k in range(len(entities) - 1, -1, -1) if entities[k]["shape"] == m.shape), None)
        if found is None:
            entities.append({"size": None, "colour": None, "shape": None, "first": m.pos})
            found = len(entities) - 1
        for a in _ATTR:
            if getattr(m, a) is not None and entities[found][a] is None:
                entities[found][a] = getattr(m, a)
        m.entity = found
    return entities


def _pronoun_entity(pron: _Mention, mentions: list[_Mention], exclude: int) -> int:
    """A pronoun names the latest object mentioned before it (by a noun phrase or an already
    resolved pronoun), other than ``exclude``; the answer is stored on the pronoun."""
    if pron.entity >= 0:
        return pron.entity
    for m in reversed([m for m in mentions if m.end <= pron.pos and m.entity >= 0]):
        if m.entity != exclude:
            pron.entity = m.entity
            return m.entity
    raise ParseError("a pronoun refers to nothing")


def parse(text: str) -> SceneSpec:
    """Reads a caption (either register) back into a :class:`SceneSpec`.

    The objects come in chain order, starting with the subject of the first relation mentioned
    when it is an end of the chain, so a formal caption parses to exactly its scene; compare
    spoken parses with ``SceneSpec.matches`` (order-free).

    Raises:
        TypeError: ``text`` is not a string.
        ParseError: an object misses its size, colour or shape, a relation misses a subject or
            a landmark, or the relations do not link the objects into one chain.
    """
    if not isinstance(text, str):
        raise TypeError(f"parse expects a string caption, got {type(text).__name__}")
    tokens = _tokens(text)
    mentions, rels = _mentions(tokens)
    entities = _resolve(mentions)
    if not entities:
        raise ParseError(f"no object found in {text!r}")
    for k, e in enumerate(entities):
        missing = [a for a in _ATTR if e[a] is None]
        if missing:
            raise ParseError(f"object {k + 1} misses its {', '.join(missing)} in {text!r}")
    if len(entities) > 3:
        raise ParseError(f"found {len(entities)} objects in {text!r}; scenes have at most 3")
    clauses = _clauses(tokens)
    facts: list[tuple[int, str, int]] = []
    for rel in rels:
        subj, land = _attach(rel, rels, mentions, tokens, clauses)
        s = subj.entity if not subj.pron else _pronoun_entity(subj, mentions, exclude=-1)
        l_ = land.entity if not land.pron else _pronoun_entity(land, mentions, exclude=s)
        if s == l_:
            raise ParseError(f"relation {rel.name!r} links an object to itself in {text!r}")
        facts.append((s, rel.name, l_))
    objects = [Obj(e["shape"], e["colour"], e["size"]) for e in entities]
    return _chain(objects, facts, text)


def _chain(objects: list[Obj], facts: list[tuple[int, str, int]], text: str) -> SceneSpec:
    """Orders objects along the path the facts describe."""
    n = len(objects)
    unique = {}
    for s, r, o in facts:  # the same fact said twice (or said backwards) counts once
        key = (min(s, o), max(s, o))
        fwd = (s, r, o) if s < o else (o, INVERSE_RELATION[r], s)
        if key in unique and unique[key] != fwd:
            raise ParseError(f"contradicting relations in {text!r}")
        unique.setdefault(key, fwd)
    if len(unique) != n - 1:
        raise ParseError(f"{n} objects need {n - 1} relations, found {len(unique)} in {text!r}")
    if n == 1:
        return SceneSpec(tuple(objects))
    degree = [0] * n
    for s, o in unique:
        degree[s] += 1
        degree[o] += 1
    if max(degree) > 2 or min(degree) == 0:
        raise ParseError(f"the relations do not chain the objects in {text!r}")
    first_subject = facts[0][0]
    start = first_subject if degree[first_subject] == 1 else min(k for k in range(n) if degree[k] == 1)
    order, rels = [start], []
    while len(order) < n:
        cur = order[-1]
        for (a, b), (s, r, o) in unique.items():
            if cur in (a, b) and (b if cur == a else a) not in order:
                nxt = b if cur == a else a
                rels.append(r if s == cur else INVERSE_RELATION[r])
                order.append(nxt)
                break
    return SceneSpec(tuple(objects[k] for k in order), tuple(rels))


def try_parse(text: str) -> SceneSpec | None:
    """:func:`parse`, or ``None`` when the caption cannot be read."""
    try:
        return parse(text)
    except ParseError:
        return None


def lexicon_words() -> list[str]:
    """Every word the two grammars can produce (for building the tokenizer's vocabulary)."""
    tables = [FORMAL_REL, SPOKEN_SIZE, SPOKEN_COLOUR, SPOKEN_SHAPE, SPOKEN_REL]
    words = set(SIZES) | set(COLOURS) | set(SHAPES)
    for t in tables:
        for phrases in t.values():
            for p in phrases:
                words.update(p.split())
    for lst in (OPENERS, FILLERS, TAGS, VERBING):
        for p in lst:
            words.update(p.split())
    return sorted(words)
