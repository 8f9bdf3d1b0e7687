"""Writes appendix B's API reference from the package itself, at every build of the book.

The book's ``_config.yml`` loads this file as a Sphinx extension (``local_extensions``): before
Sphinx reads a page it writes ``_build/.api_reference/api_reference.md``, which appendix B
includes. So the reference always documents the package as it is, and nothing generated is
committed. To look at the file without building the book::

    python appendices/make_api_reference.py

One section per layer of the package (the layers of ``tests/test_layers.py``), one subsection per
module, and in it Sphinx autodoc's rendering of the module's docstring and of every name in its
``__all__``. Autodoc documents a module-level constant only when it has a ``#:`` doc comment (and
otherwise shows the docstring of the constant's type, ``dict``'s for a dict), so each constant
without one gets a plain ``py:data`` entry: its name, type and, when short, its value. A
package ``__init__`` that re-exports names documents only its own; the re-exported ones are
documented where they are defined. Appendix B includes the file (``{include}``), so the book
renders it on the appendix's page; it is not a page of its own.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
import types
from pathlib import Path

from sphinx.pycode import ModuleAnalyzer

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "_build" / ".api_reference" / "api_reference.md"  # appendix B includes it from here
sys.path.insert(0, str(ROOT / "tests"))
from test_layers import LAYERS, modules  # noqa: E402  (the one table of layers)

TITLES = {
    0: "Layer 0: foundations and pure mathematics",
    1: "Layer 1: architectures and inference",
    2: "Layer 2: the training loop and the scorecards",
    3: "Layer 3: recipes, what `spokenstyle train` runs",
    4: "Layer 4: the five steps in one call",
    5: "Layer 5: front ends",
}
SHORT_VALUE = 70  # characters: a longer value is left out of the page (it is in the source)


def layer_of(module: str) -> int:
    parts = module.split(".")
    key = parts[1] if len(parts) > 1 else "__init__"
    if key not in LAYERS:
        raise RuntimeError(f"{module} has no layer in tests/test_layers.py LAYERS: place it there, and the API "
                           "reference of appendix B will list it under that layer")
    return LAYERS[key]


def documented_modules() -> list[str]:
    """Every module of the package but ``__main__``, in layer order (the package first in its layer)."""
    names = [m for m in modules() if not m.endswith("__main__")]
    return sorted(names, key=lambda m: (layer_of(m), m != "spokenstyle", m))


def own_names(module: str) -> list[str]:
    """The public names ``module`` documents: its ``__all__`` less submodules, dunders and (for a
    package) the names one of its submodules defines and exports."""
    mod = importlib.import_module(module)
    names = [n for n in getattr(mod, "__all__", []) if not n.startswith("_")
             and not isinstance(getattr(mod, n), types.ModuleType)]
    if hasattr(mod, "__path__"):
        exported = set()
        for sub in pkgutil.iter_modules(mod.__path__):
            if sub.name.startswith("_"):  # __main__ runs the command line when imported
                continue
            exported.update(getattr(importlib.import_module(f"{module}.{sub.name}"), "__all__", []))
        names = [n for n in names if n not in exported]
    return names


def is_data(obj: object) -> bool:
    return not (isinstance(obj, type) or callable(obj) or isinstance(obj, types.ModuleType))


def section(module: str) -> list[str]:
    mod = importlib.import_module(module)
    names = own_names(module)
    attr_docs = {name for (scope, name) in ModuleAnalyzer.for_module(module).find_attr_docs() if scope == ""}
    lines = [f"#### `{module}`", "", "```{eval-rst}", f".. automodule:: {module}"]
    if names:
        lines += [f"   :members: {', '.join(names)}", "   :undoc-members:"]
    for name in names:
        obj = getattr(mod, name)
        if is_data(obj) and name not in attr_docs:  # autodoc skips a constant without a doc comment
            lines += ["", f".. py:data:: {name}", f"   :type: {type(obj).__name__}"]  # in the module automodule set
            if len(repr(obj)) <= SHORT_VALUE and "\n" not in repr(obj):
                lines.append(f"   :value: {obj!r}")
            lines += ["", f"   A constant of ``{module}`` (a ``{type(obj).__name__}``; its value and the comment on it "
                          "are in the source)."]
    return lines + ["```", ""]


def render() -> str:
    out = ["<!-- Written by appendices/make_api_reference.py at every book build: do not edit. -->", ""]
    current = None
    for module in documented_modules():
        if layer_of(module) != current:
            current = layer_of(module)
            out += [f"### {TITLES[current]}", ""]
        out += section(module)
    return "\n".join(out)


def write(path: Path = OUT) -> bool:
    """Writes the reference to ``path`` unless it is already there; True when it wrote."""
    text = render()
    if path.exists() and path.read_text() == text:
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return True


def setup(app) -> dict:
    """The Sphinx extension: the reference is written when the builder starts, before any page is read."""
    app.connect("builder-inited", lambda _app: write())
    return {"parallel_read_safe": True, "parallel_write_safe": True}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=OUT, help=f"where to write it (default {OUT.relative_to(ROOT)})")
    args = parser.parse_args(argv)
    write(args.out)
    print(f"wrote {args.out}: {len(documented_modules())} modules")
    return 0


if __name__ == "__main__":
    sys.exit(main())
