"""Typesetting: palettes, contrast, wrapping, fitting, and pictures of any size and mode."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from spokenstyle import render
from spokenstyle.data import STYLES, colour_masks, render as render_scenes, sample_scenes
from spokenstyle.data.datasets import split_seeds

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
        assert changed < 0.6  # the bubble covers less than ~40 % of the picture (+ tail)
    else:
        assert changed == 0  # the band never covers the picture


@pytest.mark.parametrize("size", [(1, 1), (16, 16), (64, 64), (300, 120), (37, 500), (1024, 768)])
def test_typeset_any_picture_size(size):
    w, h = size
    picture = Image.fromarray(np.random.default_rng(0).integers(0, 256, (h, w, 3), dtype=np.uint8))
    out = render.typeset(picture, SENTENCE)
    assert min(out.size) >= 256
    assert out.width / out.height == pytest.approx(w / h, rel=0.02)
    tiny = render.typeset(picture, SENTENCE, min_side=16, layout="bubble")  # the bubble upscales to 64 anyway
    assert min(tiny.size) >= render.BUBBLE_MIN_SIDE
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
    (dict(side="left"), ValueError),
    (dict(min_side=2), ValueError),
])
def test_bad_arguments_are_clear_errors(bad, error):
    kwargs = {"picture": torch.rand(3, 64, 64), "sentence": "hi", **bad}
    picture, sentence = kwargs.pop("picture"), kwargs.pop("sentence")
    with pytest.raises(error):
        render.typeset(picture, sentence, **kwargs)


def _changed_rows(out: Image.Image, picture: Image.Image) -> np.ndarray:
    """Which rows of the (upscaled) picture the bubble changed."""
    base = np.asarray(picture.resize(out.size, Image.NEAREST)).astype(int)
    return (np.abs(np.asarray(out).astype(int) - base).sum(-1) > 0).any(1)


@pytest.mark.parametrize("object_rows, expected", [(slice(4, 28), "bottom"), (slice(36, 60), "top")])
def test_auto_bubble_goes_where_less_is_drawn(object_rows, expected):
    img = np.full((64, 64, 3), 235, dtype=np.uint8)  # pale paper ...
    img[object_rows, 16:48] = (200, 30, 30)  # ... with one red object in the top or the bottom half
    picture = Image.fromarray(img)
    assert render.bubble_side(picture, 20, 3) == expected
    out = render.typeset(picture, SENTENCE)
    rows = _changed_rows(out, picture)
    obj = np.zeros(64, dtype=bool)
    obj[object_rows] = True
    assert not rows[np.repeat(obj, 4)].any()  # the object is untouched (the tail ends short of it)
    covered = rows[:128].mean() > rows[128:].mean()
    assert covered == (expected == "top")
    # forcing a side overrides the choice
    forced = "top" if expected == "bottom" else "bottom"
    rows = _changed_rows(render.typeset(picture, SENTENCE, side=forced), picture)
    assert (rows[:128].mean() > rows[128:].mean()) == (forced == "top")


def test_bubble_side_prefers_the_top_on_a_tie_and_checks_its_box():
    blank = Image.new("RGB", (64, 64), (240, 240, 240))
    assert render.bubble_side(blank, 20) == "top"
    assert render.bubble_side(blank, np.int64(20), margin=np.int32(3)) == "top"  # numpy ints are ints
    for bad, error in [(dict(box_height=True), TypeError), (dict(box_height=20.0), TypeError),
                       (dict(box_height=0), ValueError), (dict(box_height=65), ValueError),
                       (dict(box_height=20, margin=-1), ValueError), (dict(box_height=60, margin=5), ValueError)]:
        with pytest.raises(error, match="box_height|margin|does not fit"):
            render.bubble_side(blank, **bad)
    assert render.ink(blank).shape == (64, 64) and render.ink(blank).max() == 0


def test_bubble_side_looks_only_where_the_box_would_be():
    def picture(rows):
        img = np.full((64, 64, 3), 235, dtype=np.uint8)
        img[rows, 8:56] = (30, 30, 200)
        return Image.fromarray(img)

    edge = picture(slice(0, 3))  # ink only along the top edge
    assert render.bubble_side(edge, 20, margin=0) == "bottom"
    assert render.bubble_side(edge, 20, margin=3) == "top"  # inside the margin: no box covers it
    middle = picture(slice(26, 30))  # ink just above the middle
    assert render.bubble_side(middle, 20, margin=3) == "top"  # neither box (rows 3-22, 41-60) reaches it
    assert render.bubble_side(middle, 30, margin=0) == "bottom"  # a taller top box (rows 0-29) does


@pytest.mark.parametrize("size", [16, 24, 40])
@pytest.mark.parametrize("side", ["top", "bottom"])
def test_bubble_fits_small_pictures(size, side):
    picture = Image.new("RGB", (size, size), (240, 240, 240))
    out = render.typeset(picture, SENTENCE, min_side=16, side=side)
    assert out.height >= render.BUBBLE_MIN_SIDE
    rows = _changed_rows(out, picture)
    assert rows.mean() < 0.6  # box (at most 42 %) + tail, never the whole picture
    half = out.height // 2
    assert (rows[:half].mean() > rows[half:].mean()) == (side == "top")


@pytest.mark.parametrize("style", ["flat", "watercolour", "neon"])
def test_auto_bubble_covers_fewer_objects_on_real_renders(style):
    # the measurement in bubble_side's docstring, on 60 test scenes: a box of 42 % of the height
    scenes = sample_scenes(split_seeds("test", torch.arange(60)).tolist())
    masks, pictures = colour_masks(scenes, 64) > 0, render_scenes(scenes, [style] * 60, 64)
    rows = {"top": slice(3, 29), "bottom": slice(35, 61)}
    top = sum(m[rows["top"]].sum().item() for m in masks)
    auto = sum(m[rows[render.bubble_side(p, 26, 3)]].sum().item() for m, p in zip(masks, pictures))
    fewer = sum(min(m[r].sum().item() for r in rows.values()) for m in masks)
    assert auto < 0.5 * top and auto <= fewer * 1.2


# -- bounds (issue 37, defect 3: a 1 x 4000 picture made a 256 x 1,024,000 image, 12 GB) ----------

@pytest.mark.parametrize("size", [(1, 60), (1, 4000), (4000, 1), (170, 10)])
def test_typeset_refuses_a_picture_of_extreme_aspect(size):
    with pytest.raises(ValueError, match=r"more than 16 times longer than it is wide.*crop it"):
        render.typeset(Image.new("RGB", size), "hello")


@pytest.mark.parametrize("layout", render.LAYOUTS)
def test_typeset_never_grows_past_max_side(layout):
    huge = render.typeset(Image.new("RGB", (20000, 2000), (200, 30, 30)), "a b c", layout=layout)
    assert huge.width == render.MAX_SIDE and huge.height < render.MAX_SIDE  # scaled down, aspect kept
    narrow = render.typeset(Image.new("RGB", (10, 160), (20, 30, 200)), SENTENCE, layout=layout, min_side=256)
    assert narrow.size[1] <= render.MAX_SIDE * (1 if layout == "bubble" else 1.5)
    assert narrow.width == 250  # upscaled by 25, not 26: 26 x 160 would pass 4,096


def test_wrap_text_stops_once_the_box_is_full():
    f = render.font(12)
    megabyte = "word " * 200_000
    assert len(render.wrap_text(megabyte, f, 100, max_lines=3)) == 4  # enough to know it does not fit in 3
    assert len(render.wrap_text("x" * 1_000_000, f, 100, max_lines=2)) == 3  # one endless word, cut early
    fitted = render.fit_text(megabyte, 200, 60, max_font=20)
    assert fitted.truncated and fitted.height <= 60 and fitted.lines[-1].endswith(render.ELLIPSIS)
    # the estimate-then-measure wrap keeps every line within the width, as measuring each did
    lines = render.wrap_text(" ".join(["ab", "wxyz", "i", "MMMM", "ll"] * 40), f, 77)
    assert all(f.getlength(line) <= 77 for line in lines) and " ".join(lines).count(" ") == 199


@pytest.mark.parametrize("kwargs, word", [({"min_side": True}, "min_side"), ({"min_side": 2000}, "min_side"),
                                          ({"max_font": 0}, "max_font"), ({"min_font": 10_000}, "min_font")])
def test_typeset_checks_its_sizes(kwargs, word):
    with pytest.raises(ValueError, match=word):
        render.typeset(Image.new("RGB", (64, 64)), "hi", **kwargs)
