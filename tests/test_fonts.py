"""Chinese renders in the book's figures: a CJK font is installed, and drawing every Chinese term
of the glossary (appendix B) produces no missing-glyph box. matplotlib only *warns* about a
missing glyph (and draws a box); here that warning is an error."""

from __future__ import annotations

import re
import warnings

import matplotlib
import matplotlib.pyplot as plt
import pytest

from spokenstyle import fonts
from test_glossary import glossary_rows

MISSING = r"Glyph \d+ .* missing from font"


@pytest.fixture
def cjk_rc():
    with matplotlib.rc_context():
        yield fonts.use_cjk_font()
    plt.close("all")


def chinese_text() -> str:
    """Every Chinese term of the glossary, and the characters the bilingual figure uses."""
    return "".join(row["chinese"] for row in glossary_rows()) + "源图片生成器口语化描述融合判别器目标风格"


def draw(text: str) -> None:
    fig, ax = plt.subplots(figsize=(6, 2))
    ax.set_title("generator 生成器")
    for i, line in enumerate(re.findall(".{1,40}", text)):
        ax.text(0, 1 - 0.05 * i, line, transform=ax.transAxes)
    fig.canvas.draw()  # lays out and rasterises every text: this is where matplotlib warns


def test_the_environment_has_a_cjk_font():
    path = fonts.find_cjk_font()
    assert path is not None, fonts.INSTALL_HINT
    assert not fonts.missing_glyphs(chinese_text(), [path])


def test_a_figure_with_the_glossary_in_chinese_has_no_missing_glyph(cjk_rc):
    assert matplotlib.rcParams["font.family"] == ["DejaVu Sans", cjk_rc]
    assert not fonts.missing_glyphs(chinese_text())
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message=MISSING)
        draw(chinese_text())


def test_without_the_cjk_font_the_same_figure_fails():
    """The check itself: DejaVu Sans alone draws boxes, and the warning-as-error catches them."""
    with matplotlib.rc_context({"font.family": ["DejaVu Sans"]}):
        with warnings.catch_warnings():
            warnings.filterwarnings("error", message=MISSING)
            with pytest.raises(UserWarning, match=MISSING):
                draw("判别器")
    plt.close("all")
    dejavu = matplotlib.font_manager.findfont("DejaVu Sans", fallback_to_default=False)
    assert fonts.missing_glyphs("D 判别器", [dejavu]) == sorted("判别器")


def test_missing_glyphs_checks_its_argument():
    with pytest.raises(TypeError, match="string"):
        fonts.missing_glyphs(42)


def test_no_font_says_what_to_install(monkeypatch):
    monkeypatch.setattr(fonts, "find_cjk_font", lambda: None)
    with pytest.raises(RuntimeError, match=r'pip install "spokenstyle\[cjk\]"'):
        fonts.use_cjk_font()
