"""understand(): reads what it can of any sentence, says what it ignored and assumed, never raises on a str."""

import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from spokenstyle.data import caption, parse, sample_scenes
from spokenstyle.data.captions import _tokens, lexicon_words
from spokenstyle.data.scenes import SceneSpec
from spokenstyle.data.understanding import MAX_CHARS, Understanding, token_spans, understand


def test_the_book_example_reports_understood_and_ignored_words():
    u = understand("a shiny big red ball behind the tree")
    assert u.understood == ("big red ball",)
    assert u.ignored == ("shiny", "behind the tree")
    assert str(u.spec) == "large red circle" and u.exact and not u.assumed
    assert u.report() == "understood: big red ball; ignored: 'shiny', 'behind the tree'"


@pytest.mark.parametrize("register", ["formal", "spoken"])
def test_grammar_captions_read_exactly_with_nothing_ignored(register):
    """On the grammars' own captions the reading is the strict parser's, and every word is known."""
    scenes = sample_scenes(range(1_000_000_000, 1_000_000_300))
    for k, spec in enumerate(scenes.specs()):
        text = caption(spec, register, k)
        u = understand(text)
        assert u.ignored == () and u.notes == () and u.assumed == (), (text, u)
        assert u.exact and u.spec == parse(text) and u.spec.matches(spec), text


@pytest.mark.parametrize("text, understood, assumed", [
    ("the green one", ("green one",), ("size of the green one: large (not said)",
                                       "shape of the green one: circle (not said)")),
    ("a ball above a box", ("ball", "above", "box"), ("colour of the circle: red (not said)",
                                                       "size of the circle: large (not said)",
                                                       "colour of the square: orange (not said)",
                                                       "size of the square: large (not said)")),
    ("a tiny purple star and a huge orange cross", ("tiny purple star", "huge orange cross"),
     ("the small purple star is next to the large orange cross (no relation said)",)),
])
def test_what_is_not_said_is_assumed_and_named(text, understood, assumed):
    u = understand(text)
    assert u.understood == understood and u.assumed == assumed and not u.exact
    assert isinstance(u.spec, SceneSpec)


def test_a_fourth_object_and_a_clash_are_noted_not_dropped_silently():
    u = understand("a big red ball left of a small blue box above a tiny green star, and a purple cross")
    assert len(u.spec.objects) == 3 and any("purple cross was not drawn" in n for n in u.notes)
    clash = understand("a red ball and a red box")
    assert str(clash.spec) == "large red circle"
    assert any("'red box'" in n and "contradicts" in n for n in clash.notes)
    contradiction = understand("a red ball left of a blue box. the ball is above the box")
    assert any("'above'" in n for n in contradiction.notes) and contradiction.spec.relations == ("left of",)


@pytest.mark.parametrize("text, ignored", [
    ("hello there", ("hello",)),
    ("🚀 café 42 big yellow star!!", ("🚀 café 42",)),
    ("a glittery ball, quite fluffy", ("glittery", "fluffy")),
    ("", ()),
    ("!!! ??? ...", ()),
])
def test_unknown_words_are_ignored_in_phrases(text, ignored):
    assert understand(text).ignored == ignored


def test_nothing_understood_gives_no_scene():
    for text in ("hello there", "", "left of left of", "it is above it"):
        u = understand(text)
        assert u.spec is None and u.sentence == "" and "understood: nothing" in u.report()


def test_token_spans_are_the_parsers_tokens():
    text = "Whoa, the ball's LEFT of a big-ol' box!! Éclair"
    spans = token_spans(text)
    assert [t for t, _, _ in spans] == _tokens(text)
    for tok, a, b in spans:
        assert text[a:b].lower() == tok
    # "İ" lowercases to two characters; the spans still point into the text as written
    for tok, a, b in token_spans("İstanbul big red ball"):
        assert text[a:b] is not None and "İstanbul big red ball"[a:b].lower() == tok


def test_long_text_is_read_up_to_a_bound():
    text = "a big red ball left of a small blue box " * 50_000  # 2 MB
    start = time.perf_counter()
    u = understand(text)
    assert time.perf_counter() - start < 5
    assert any(f"{MAX_CHARS:,}" in n for n in u.notes)


def test_a_non_string_is_a_type_error():
    for bad in (None, 3, b"a red ball", ["a red ball"]):
        with pytest.raises(TypeError, match="str"):
            understand(bad)


WORDS = sorted(set(lexicon_words())) + ["shiny", "tree", "behind", "🚀", "42", "ÉTÉ", "'s", ",", ".", "?", "it"]


def _check(u: Understanding, text: str) -> None:
    assert isinstance(u, Understanding) and u.text == text
    for field in (u.understood, u.ignored, u.chatter, u.assumed, u.notes):
        assert isinstance(field, tuple) and all(isinstance(x, str) and x for x in field)
    if u.spec is None:
        assert u.sentence == "" and not u.exact
    else:
        assert isinstance(u.spec, SceneSpec) and u.understood
        assert parse(u.sentence).matches(u.spec)  # what F is given reads back to the reading
    if u.exact:
        assert u.spec == parse(text[:MAX_CHARS]) and not u.assumed and not u.notes
    u.report()


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(max_size=300))
def test_any_text_is_read_without_an_error(text):
    _check(understand(text), text)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.sampled_from(WORDS), max_size=40))
def test_any_jumble_of_known_and_unknown_words_is_read(words):
    text = " ".join(words)
    u = understand(text)
    _check(u, text)
    for junk in ("shiny", "tree"):
        if junk in words:
            assert any(junk in phrase for phrase in u.ignored), (text, u.ignored)
