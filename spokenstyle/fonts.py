"""A font with Chinese glyphs for the figures that show Chinese (appendix B's bilingual figure).

matplotlib ships DejaVu Sans, which has no CJK glyphs: a Chinese label drawn with it becomes a
row of empty boxes ("tofu"), and matplotlib only warns ``Glyph 29983 (\\N{CJK UNIFIED
IDEOGRAPH-751F}) missing from font(s) DejaVu Sans``. :func:`use_cjk_font` finds a font that has
them and puts it *behind* DejaVu Sans in matplotlib's fallback list, so Latin text keeps the
book's font and each Chinese character falls back to the CJK font.

Where the font comes from, first found wins:

1. **Noto Sans CJK SC** (SIL Open Font License) from the ``mplfonts`` wheel, which the book's
   environment installs (``requirements-ci.txt``; ``pip install "spokenstyle[cjk]"``). No wheel of
   a CJK font was on this machine's disk, so it comes from PyPI like every other pin.
2. A system font matplotlib already knows (:data:`SYSTEM_FAMILIES`), e.g. from Debian's
   ``fonts-noto-cjk`` or ``fonts-wqy-microhei`` (``apt-get install fonts-noto-cjk``; on Colab
   ``!apt-get -qq install fonts-noto-cjk`` then restart the runtime).

:func:`missing_glyphs` checks a text against the fonts' character maps, so a test can fail on
tofu before anything is drawn.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import matplotlib
from matplotlib import font_manager
from matplotlib.ft2font import FT2Font

__all__ = [
    "INSTALL_HINT",
    "PIP_FONTS",
    "SYSTEM_FAMILIES",
    "find_cjk_font",
    "use_cjk_font",
    "missing_glyphs",
]

#: What the error says when no CJK font is installed.
INSTALL_HINT = ('no font with Chinese glyphs found: pip install "spokenstyle[cjk]" (the mplfonts wheel, Noto Sans '
                'CJK SC), or install a system CJK font (apt-get install fonts-noto-cjk) and restart Python')

#: (package, file inside it) of pip-installed CJK fonts, looked for first.
PIP_FONTS: tuple[tuple[str, str], ...] = (("mplfonts", "fonts/NotoSansCJKsc-Regular.otf"),)

#: Family names of system CJK fonts that cover simplified Chinese, most wanted first.
SYSTEM_FAMILIES: tuple[str, ...] = ("Noto Sans CJK SC", "Noto Sans SC", "Source Han Sans SC", "Source Han Sans CN",
                                    "WenQuanYi Micro Hei", "WenQuanYi Zen Hei", "AR PL UMing CN", "Noto Sans CJK JP")

_LATIN = "DejaVu Sans"  # matplotlib's own font, the book's figures' font


def _pip_font() -> Path | None:
    for package, relative in PIP_FONTS:
        spec = importlib.util.find_spec(package)  # located, not imported
        for folder in (spec.submodule_search_locations or []) if spec else []:
            path = Path(folder) / relative
            if path.is_file():
                return path
    return None


def find_cjk_font() -> Path | None:
    """The file of a font with CJK glyphs (a pip-installed one first, then a system one), or None."""
    path = _pip_font()
    if path is not None:
        return path
    known = {entry.name: Path(entry.fname) for entry in font_manager.fontManager.ttflist}
    for family in SYSTEM_FAMILIES:
        if family in known:
            return known[family]
    return None


def use_cjk_font() -> str:
    """Registers the CJK font with matplotlib and sets the font family to DejaVu Sans, then it:
    Latin text is unchanged, Chinese characters fall back to the CJK font (matplotlib ≥ 3.6 falls
    back glyph by glyph along ``font.family``). Returns the CJK font's family name. Affects this
    Python process only (matplotlib's ``rcParams``).

    Raises:
        RuntimeError: no CJK font is installed (the message says what to install).
    """
    path = find_cjk_font()
    if path is None:
        raise RuntimeError(INSTALL_HINT)
    font_manager.fontManager.addfont(str(path))
    family = font_manager.FontProperties(fname=str(path)).get_name()
    # the fallback chain is the list of *named* families in font.family: the generic "sans-serif"
    # resolves to one font only (the first of font.sans-serif that is installed)
    matplotlib.rcParams["font.family"] = [_LATIN, family]
    rest = [f for f in matplotlib.rcParams["font.sans-serif"] if f not in (_LATIN, family)]
    matplotlib.rcParams["font.sans-serif"] = [_LATIN, family, *rest]  # for text that asks for sans-serif
    return family


def missing_glyphs(text: str, fonts: list[str | Path] | None = None) -> list[str]:
    """The characters of ``text`` (other than whitespace) that none of ``fonts`` has a glyph for.

    ``fonts`` are font files; default DejaVu Sans and the CJK font of :func:`find_cjk_font`.
    An empty list means matplotlib can draw the text without a box.
    """
    if not isinstance(text, str):
        raise TypeError(f"text must be a string, got {type(text).__name__}")
    if fonts is None:
        cjk = find_cjk_font()
        fonts = [font_manager.findfont(_LATIN, fallback_to_default=False)] + ([cjk] if cjk else [])
    covered: set[int] = set()
    for path in fonts:
        covered.update(FT2Font(str(path)).get_charmap())
    return sorted({ch for ch in text if not ch.isspace() and ord(ch) not in covered})
