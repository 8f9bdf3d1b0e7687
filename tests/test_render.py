"""Typesetting: palettes, contrast, wrapping, fitting, and pictures of any size and mode."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from spokenstyle import render
from spokenstyle.data import STYLES, render as render_scenes, sample_scenes

SENTENCE = "whoa, check out that big red ball hanging out right next to a tiny blue box!"


def test_the_font_is_matplotlibs_dejavu_sans():
    assert render.FONT_PATH.name == "DejaVuSans.ttf" and render.FONT_PATH.is_file()
    assert render.font(12).getname()[0] == "DejaVu Sans"


def test_contrast_ratio_matches_wcag_reference_values():
    # WCAG 2: black on white is 21:1, a colour on itself 1:1, #777777 on white about 4.48:1
    assert render.contrast_ratio((0, 0, 0), (255, 255, 255)) == pytest.approx(21.0)
    assert render.contrast_ratio((120, 50, 200), (120, 50, 200)) == pytest.approx(1.0)
    assert render.contrast_ratio((0x77,) * 3, (255, 255, 255)) == pytest.approx(4.48, abs=0.01)


def test_palette_finds_the_dominant_colours():
    img = np.zeros((40, 40, 3), dtype=np.uint8)
    img[:, :30] = (200, 30, 30)
    img[:, 30:] = (20, 40, 220)
    colours = render.palette(img, k=2)
    assert len(colours) == 2
    assert np.abs(np.array(colours[0]) - (200, 30, 30)).max() <= 8  # the larger area comes first
    assert np.abs(np.array(colours[1]) - (20, 40, 220)).max() <= 8


@pytest.mark.parametrize("style", STYLES)
def test_colours_are_readable_for_every_style(style):
    target = render_scenes(sample_scenes([11]), style, 64)[0]
    fill, text, outline = render.pick_colours(render.palette(target))
    assert render.contrast_ratio(fill, text) >= 4.5


@pytest.mark.parametrize("colours", [[(128, 128, 128)], [(120, 120, 120), (130, 130, 130)], [(255, 255, 0)]])
def test_a_hard_palette_is_pushed_to_readable_contrast(colours):
    fill, text, outline = render.pick_colours(colours)
    assert render.contrast_ratio(fill, text) >= 4.5


def test_wrap_keeps_every_word_in_order_and_within_the_width():
    f = render.font(14)
    lines = render.wrap_text(SENTENCE, f, 120)
    assert " ".join(lines) == SENTENCE
    assert all(f.getlength(line) <= 120 for line in lines)
    # a word longer than the line is broken, not lost
    long = "a" * 80
    pieces = render.wrap_text(long, f, 50)
    assert "".join(pieces) == long and all(f.getlength(p) <= 50 for p in pieces)
    assert render.wrap_text("", f, 50) == []


def test_fit_shrinks_then_ellipsizes():
    short = render.fit_text("hi there", 200, 60, max_font=20)
    assert short.font_size == 20 and not short.truncated and short.lines == ["hi there"]
    medium = render.fit_text(SENTENCE, 200, 60, max_font=20)
    assert medium.font_size < 20 and not medium.truncated and " ".join(medium.lines) == SENTENCE
    assert medium.height <= 60
    huge = render.fit_text(SENTENCE * 30, 200, 60, max_font=20, min_font=10)
    assert huge.truncated and huge.font_size == 10 and huge.height <= 60
    assert huge.lines[-1].endswith(render.ELLIPSIS)
    f = render.font(10)
    assert all(f.getlength(line) <= 200 for line in huge.lines)


@pytest.mark.parametrize("layout", render.LAYOUTS)
@pytest.mark.parametrize("text", ["", "yo", SENTENCE, SENTENCE * 25, "Supercalifragilistic" * 10, "日本 ünïcödé ✓"])
def test_typeset_any_sentence_any_layout(layout, text):
    picture = render_scenes(sample_scenes([5]), "comic", 64)[0]
    out = render.typeset(picture, text, layout=layout)
    assert isinstance(out, Image.Image) and out.mode == "RGB"
    assert out.width == 256  # a 64 px picture is upscaled 4x so the text is legible
    assert out.height == 256 if layout == "bubble" else out.height > 256
    base = render.to_pil(picture).resize((256, 256), Image.NEAREST)
    top = np.asarray(out)[:256]
    changed = (np.abs(top.astype(int) - np.asarray(base).astype(int)).sum(-1) > 0).mean()
    if layout == "bubble":
        assert (changed > 0.02) == bool(text.strip())  # a bubble only when there is text
        assert changed < 0.6  # the bubble covers less than the top ~40 % (+ tail)
    else:
        assert changed == 0  # the band never covers the picture


@pytest.mark.parametrize("size", [(1, 1), (16, 16), (64, 64), (300, 120), (37, 500), (1024, 768)])
def test_typeset_any_picture_size(size):
    w, h = size
    picture = Image.fromarray(np.random.default_rng(0).integers(0, 256, (h, w, 3), dtype=np.uint8))
    out = render.typeset(picture, SENTENCE)
    assert min(out.size) >= 256
    assert out.width / out.height == pytest.approx(w / h, rel=0.02)
    tiny = render.typeset(picture, SENTENCE, min_side=16, layout="bubble")  # no upscaling needed: still fits
    assert min(tiny.size) >= 16
    assert min(render.typeset(picture, SENTENCE, min_side=16, layout="band").size) >= 16


@pytest.mark.parametrize("mode", ["L", "RGBA", "P", "I;16", "CMYK", "1"])
def test_typeset_any_pil_mode(mode):
    rgb = Image.fromarray(np.random.default_rng(1).integers(0, 256, (64, 64, 3), dtype=np.uint8))
    picture = Image.fromarray(np.arange(64 * 64, dtype=np.uint16).reshape(64, 64)) if mode == "I;16" else rgb.convert(mode)
    assert render.typeset(picture, "hey", palette_from=picture).mode == "RGB"


def test_palette_comes_from_the_target():
    content = render_scenes(sample_scenes([2]), "flat", 64)[0]
    neon = render_scenes(sample_scenes([3]), "neon", 64)[0]
    a = np.asarray(render.typeset(content, SENTENCE, layout="band"))[256:]
    b = np.asarray(render.typeset(content, SENTENCE, layout="band", palette_from=neon))[256:]
    assert a.mean() > b.mean()  # flat's palette is light, neon's is dark


@pytest.mark.parametrize("bad, error", [
    (dict(picture=torch.rand(2, 3, 8, 8)), ValueError),
    (dict(picture=torch.rand(3, 8, 8) * 3), ValueError),
    (dict(picture="not an image"), TypeError),
    (dict(picture=np.zeros((8, 8, 7))), ValueError),
    (dict(sentence=3), TypeError),
    (dict(layout="poster"), ValueError),
    (dict(min_side=2), ValueError),
])
def test_bad_arguments_are_clear_errors(bad, error):
    kwargs = {"picture": torch.rand(3, 64, 64), "sentence": "hi", **bad}
    picture, sentence = kwargs.pop("picture"), kwargs.pop("sentence")
    with pytest.raises(error):
        render.typeset(picture, sentence, **kwargs)
