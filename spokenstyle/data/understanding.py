"""What a free sentence says about a picture: the parser's reading, and a plain report of the rest.

:func:`~spokenstyle.data.captions.parse` is strict: it reads a caption into a complete scene or
raises. A reader of chapter 9 types *any* sentence ("a shiny big red ball behind the tree"), and
the book must neither crash nor drop words silently. :func:`understand` therefore reads what it
can with the parser's own lexicon and rules (the same tagging, noun phrases, back-references
and relation attachment as :func:`~spokenstyle.data.captions.parse`) and reports, in plain
words:

* **understood**: the noun phrases and relation phrases it used ("big red ball", "left of");
* **ignored**: every other word that names something it does not know ("shiny", "behind the
  tree"), grouped into phrases;
* **chatter**: words the grammars know that say nothing about the picture ("whoa", "like",
  "the"), neither content nor ignored;
* **assumed**: what it had to fill in to make a scene that can be drawn: a size or colour not
  said, a relation not said between two objects ("next to"), each named;
* **notes**: decisions worth knowing: a fourth object (scenes hold three), a relation it could
  not attach, an attribute that contradicts an earlier mention, text beyond
  :data:`MAX_CHARS`.

The reading is a :class:`~spokenstyle.data.scenes.SceneSpec` (``None`` when no object was
understood), so F can draw it (chapter 9). A sentence the strict parser reads gives exactly the
parser's scene, and nothing is assumed.

It never raises on a ``str`` (``tests/test_understanding.py`` feeds it arbitrary text with
hypothesis) and its work is bounded: only the first :data:`MAX_CHARS` characters are read.
"""

from __future__ import annotations

import itertools
import re
import string
from dataclasses import dataclass
from functools import lru_cache

from .captions import (ENDINGS, FILLERS, OPENERS, TAGS, VERBING, ParseError, _attach, _clauses, _mentions,
                       _pronoun_entity, _resolve, _tokens, _TOKEN_RE, caption, formal_caption, lexicon_words,
                       parse)
from .scenes import COLOURS, INVERSE_RELATION, MAX_OBJECTS, Obj, SceneSpec

__all__ = ["MAX_CHARS", "DEFAULT_SIZE", "DEFAULT_SHAPE", "Understanding", "understand", "token_spans"]

MAX_CHARS = 2_000  # a sentence is short; reading more would only cost time (relation attachment is quadratic)
DEFAULT_SIZE = "large"  # a size not said is drawn large: the easier to see
DEFAULT_SHAPE = "circle"  # "the red one": a round blob is the least committal shape

# words that carry no picture content: articles, copulas, prepositions of no relation, and what
# the spoken grammar sprinkles in (openers, fillers, tags, "hanging out")
_FUNCTION_WORDS = frozenset("""
a an the this that these those some one ones it its it's is are was were be been being am 's s there here
and or but so then also oh just very really quite pretty too of to in on at by for from with as
i you we they he she me my your our their his her them us do does did have has had got get see look
what's what which who how wow yes yep yeah no not okay ok well
""".split())


@lru_cache(maxsize=1)
def _chatter_words() -> frozenset[str]:
    """Function words, and every word the two grammars write around the content (harvested from
    their captions of a few scenes: "check", "out", "yep", "lemme", ...)."""
    words = set(_FUNCTION_WORDS) | set(lexicon_words())
    for phrase in itertools.chain(OPENERS, FILLERS, TAGS, VERBING, ENDINGS):
        words.update(_tokens(phrase))
    a, b, c = Obj("circle", "red", "large"), Obj("square", "blue", "small"), Obj("star", "green", "small")
    specs = (SceneSpec((a,)), SceneSpec((a, b), ("left of",)), SceneSpec((a, b, c), ("above", "next to")))
    for spec, seed in itertools.product(specs, range(600)):
        words.update(_tokens(caption(spec, "spoken", seed)))
        words.update(_tokens(caption(spec, "formal", seed)))
    return frozenset(words)
_WORD = re.compile(r"\S+")
_EDGE_PUNCTUATION = "\"'“”‘’.,;:!?()[]{}…-–—*_"
_PUNCTUATION = frozenset(string.punctuation) | frozenset("“”‘’…–—")


@dataclass(frozen=True)
class Understanding:
    """What :func:`understand` read in one sentence (see the module docstring for each field)."""

    text: str
    spec: SceneSpec | None  # the scene to draw (assumptions filled in); None: no object understood
    understood: tuple[str, ...]
    ignored: tuple[str, ...]
    chatter: tuple[str, ...]
    assumed: tuple[str, ...]
    notes: tuple[str, ...]
    exact: bool  # the strict parser reads this scene as it stands: nothing assumed, nothing noted

    @property
    def sentence(self) -> str:
        """The reading as a formal caption (what F is given to draw), or ``""`` when empty."""
        return formal_caption(self.spec) if self.spec is not None else ""

    def report(self) -> str:
        """One line a reader can check: understood, ignored, assumed (and notes, if any)."""
        def quoted(items: tuple[str, ...]) -> str:
            return ", ".join(f"'{w}'" for w in items) if items else "nothing"

        parts = [f"understood: {', '.join(self.understood) if self.understood else 'nothing'}",
                 f"ignored: {quoted(self.ignored)}"]
        if self.assumed:
            parts.append(f"assumed: {'; '.join(self.assumed)}")
        if self.notes:
            parts.append(f"notes: {'; '.join(self.notes)}")
        return "; ".join(parts)


def token_spans(text: str) -> list[tuple[str, int, int]]:
    """The parser's tokens of ``text`` (:func:`~spokenstyle.data.captions._tokens`) with their
    character spans ``(token, start, end)`` in ``text``; "ball's" gives "ball" and "'s"."""
    if not isinstance(text, str):
        raise TypeError(f"text must be a str, got {type(text).__name__}")
    out = []
    lower = text.lower()
    if len(lower) != len(text):  # a few characters change length when lowercased (e.g. "İ")
        lower = "".join(c.lower() if len(c.lower()) == 1 else c for c in text)
    for m in _TOKEN_RE.finditer(lower):
        tok, a, b = m.group(), m.start(), m.end()
        if tok.endswith("'s") and len(tok) > 2:
            out += [(tok[:-2], a, b - 2), ("'s", b - 2, b)]
        else:
            out.append((tok, a, b))
    return out


def _phrase(text: str, spans: list[tuple[str, int, int]], first: int, last: int) -> str:
    """The original words of tokens ``first`` … ``last - 1``, spaces tidied."""
    return " ".join(text[spans[first][1]: spans[last - 1][2]].split())


def _describe(e: dict) -> str:
    """An entity in words: "big red ball" → "large red circle", "the green one" → "green one"."""
    words = [v for v in (e["size"], e["colour"], e["shape"]) if v]
    return " ".join(words + ([] if e["shape"] else ["one"]))


def _order(n: int, facts: dict[tuple[int, int], str]) -> tuple[list[int], list[str], int]:
    """The chain of ``n`` objects (≤ 3) that uses the most stated facts: (order, relations,
    facts used); a link with no fact becomes "next to" (assumed by the caller)."""
    best: tuple[int, int, list[int], list[str]] | None = None
    for rank, order in enumerate(itertools.permutations(range(n))):
        rels, used = [], 0
        for a, b in zip(order, order[1:]):
            if (a, b) in facts:
                rels.append(facts[(a, b)])
                used += 1
            elif (b, a) in facts:
                rels.append(INVERSE_RELATION[facts[(b, a)]])
                used += 1
            else:
                rels.append("")
        if best is None or used > best[0]:
            best = (used, rank, list(order), rels)
    assert best is not None
    return best[2], best[3], best[0]


def understand(text: str) -> Understanding:
    """Reads what it can of ``text`` (any English sentence) into a scene, and says what it read,
    what it ignored and what it assumed. Never raises on a ``str``.

    Raises:
        TypeError: ``text`` is not a ``str``.

    Example:
        >>> u = understand("a shiny big red ball behind the tree")
        >>> u.report()
        "understood: big red ball; ignored: 'shiny', 'behind the tree'"
    """
    if not isinstance(text, str):
        raise TypeError(f"understand expects a str sentence, got {type(text).__name__}")
    notes: list[str] = []
    read = text
    if len(text) > MAX_CHARS:
        read = text[:MAX_CHARS]
        notes.append(f"only the first {MAX_CHARS:,} of {len(text):,} characters were read")
    spans = token_spans(read)
    tokens = [t for t, _, _ in spans]
    mentions, rels = _mentions(tokens)
    entities = _resolve(mentions)
    used_tokens: set[int] = set()
    understood: list[tuple[int, str]] = []  # (first token, phrase), sorted by position at the end

    # objects: every noun phrase names an entity; a phrase that contradicts its entity is noted
    dropped: set[int] = set(range(MAX_OBJECTS, len(entities)))
    for m in mentions:
        if m.pron:
            continue
        phrase = _phrase(read, spans, m.pos, m.end)
        e = entities[m.entity]
        clash = [f"{a} '{getattr(m, a)}'" for a in ("size", "colour", "shape")
                 if getattr(m, a) is not None and e[a] != getattr(m, a)]
        if m.entity in dropped:
            continue
        used_tokens.update(range(m.pos, m.end))
        understood.append((m.pos, phrase))
        if clash:
            notes.append(f"'{phrase}': its {' and '.join(clash)} contradicts the earlier {_describe(e)} "
                         "(a colour names one object); kept the first")
    for k in sorted(dropped):
        notes.append(f"the {_describe(entities[k])} was not drawn: a scene holds at most {MAX_OBJECTS} objects")
    for m in mentions:
        if not m.pron and m.entity in dropped:
            used_tokens.update(range(m.pos, m.end))  # read, reported in the notes: not "ignored"

    # relations: attached by the parser's rules; one that cannot be attached is noted
    facts: dict[tuple[int, int], str] = {}
    clauses = _clauses(tokens)
    for rel in rels:
        phrase = _phrase(read, spans, rel.pos, rel.end)
        used_tokens.update(range(rel.pos, rel.end))
        try:
            subj, land = _attach(rel, rels, mentions, tokens, clauses)
            s = subj.entity if not subj.pron else _pronoun_entity(subj, mentions, exclude=-1)
            o = land.entity if not land.pron else _pronoun_entity(land, mentions, exclude=s)
        except ParseError:
            notes.append(f"'{phrase}': could not tell which two objects it links; not drawn")
            continue
        if s == o:
            notes.append(f"'{phrase}': links an object to itself; not drawn")
            continue
        if s in dropped or o in dropped:
            notes.append(f"'{phrase}': links an object that was not drawn")
            continue
        for p in (subj, land):
            if p.pron:
                used_tokens.update(range(p.pos, p.end))
        if (s, o) in facts or (o, s) in facts:
            said = facts.get((s, o)) or INVERSE_RELATION[facts[(o, s)]]
            if said != rel.name:
                notes.append(f"'{phrase}': contradicts '{said}' said before about the same two objects; kept the first")
            continue
        facts[(s, o)] = rel.name
        understood.append((rel.pos, phrase))

    # the scene: objects with what was not said filled in, chained by the facts
    kept = [e for k, e in enumerate(entities) if k not in dropped]
    assumed: list[str] = []
    spec = None
    if kept:
        free = [c for c in COLOURS if c not in {e["colour"] for e in kept}]
        objects = []
        for e in kept:
            said = _describe(e)
            colour = e["colour"] or free.pop(0)
            if e["colour"] is None:
                assumed.append(f"colour of the {said}: {colour} (not said)")
            if e["size"] is None:
                assumed.append(f"size of the {said}: {DEFAULT_SIZE} (not said)")
            if e["shape"] is None:
                assumed.append(f"shape of the {said}: {DEFAULT_SHAPE} (not said)")
            objects.append(Obj(e["shape"] or DEFAULT_SHAPE, colour, e["size"] or DEFAULT_SIZE))
        order, links, used = _order(len(objects), facts)
        for (a, b), rel in zip(zip(order, order[1:]), links):
            if not rel:
                assumed.append(f"the {objects[a]} is next to the {objects[b]} (no relation said)")
        if used < len(facts):
            notes.append(f"{len(facts) - used} relation(s) not drawn: {len(objects)} objects in a chain take "
                         f"{len(objects) - 1}")
        spec = SceneSpec(tuple(objects[k] for k in order), tuple(r or "next to" for r in links))
    exact = False
    try:
        strict = parse(read)
    except ParseError:
        strict = None
    if strict is not None and not notes:  # the strict parser's chain, exactly as parse() gives it
        spec, exact, assumed = strict, True, []

    # the rest of the words: chatter, or ignored (grouped into phrases)
    covered = [False] * len(read)
    for i in used_tokens:
        _, a, b = spans[i]
        covered[a:b] = [True] * (b - a)
    chatter: list[str] = []
    words: list[tuple[str, bool]] = []  # (word, unknown?) for every word not read as content
    for m in _WORD.finditer(read):
        a, b = m.span()
        if all(covered[a:b]) or all(ch in _PUNCTUATION for ch in m.group()):
            words.append(("", False))  # read as content, or punctuation: ends an ignored phrase
            continue
        rest = "".join(ch if not covered[a + i] else " " for i, ch in enumerate(m.group())).strip()
        bare = rest.strip(_EDGE_PUNCTUATION)
        pieces = _tokens(rest)
        if bare and pieces and all(p in _chatter_words() for p in pieces) and _tokens(bare) == _tokens(bare.lower()) \
                and not any(ch.isdigit() for ch in bare) and all(ord(ch) < 128 for ch in bare):
            chatter.append(bare)
            words.append((bare, False))
        elif bare:
            words.append((bare, True))
        else:
            words.append(("", False))
    ignored: list[str] = []
    run: list[str] = []
    gap: list[str] = []
    for word, unknown in words + [("", False)]:
        if unknown:
            run += gap + [word] if run else [word]
            gap = []
        elif word and run and len(gap) < 2:
            gap.append(word)  # "behind the tree": a known word between unknown ones joins them
        else:
            if run:
                ignored.append(" ".join(run))
            run, gap = [], []
    understood.sort()
    return Understanding(text=text, spec=spec, understood=_unique(p for _, p in understood), ignored=tuple(ignored),
                         chatter=tuple(chatter), assumed=_unique(assumed), notes=_unique(notes), exact=exact)


def _unique(items) -> tuple[str, ...]:
    """``items`` without repeats (case-insensitive), in first-seen order."""
    seen: set[str] = set()
    out = []
    for item in items:
        if item.lower() not in seen:
            seen.add(item.lower())
            out.append(item)
    return tuple(out)
