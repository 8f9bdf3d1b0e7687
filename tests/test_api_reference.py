"""Appendix B's API reference: written from the package at every book build, grouped by layer,
every public name documented (a docstring in the source, an entry on the built page)."""

from __future__ import annotations

import importlib
import inspect
import re
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "appendices"))
import make_api_reference as api  # noqa: E402

PAGE = ROOT / "_build" / "html" / "appendices" / "b_reference.html"


def test_the_book_writes_the_reference_before_it_reads_the_pages():
    """_config.yml loads the generator as a Sphinx extension, and appendix B includes its file."""
    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    assert config["sphinx"]["local_extensions"] == {"make_api_reference": "appendices/"}
    include = f"{{include}} {Path('..') / api.OUT.relative_to(ROOT)}"
    assert include in (ROOT / "appendices" / "b_reference.ipynb").read_text()


def test_the_generator_writes_only_when_something_changed(tmp_path):
    out = tmp_path / "api.md"
    assert api.write(out) and out.read_text() == api.render()
    assert not api.write(out)


def test_every_module_is_listed_under_its_layer_in_order():
    text = api.render()
    headings = re.findall(r"^(###|####) (.+)$", text, re.M)
    layer, seen = None, []
    for level, title in headings:
        if level == "###":
            layer = next(k for k, v in api.TITLES.items() if v == title)
        else:
            module = title.strip("`")
            assert api.layer_of(module) == layer, f"{module} is under layer {layer}, it lives in {api.layer_of(module)}"
            seen.append(module)
    assert seen == api.documented_modules()
    assert {api.layer_of(m) for m in seen} == set(range(6))
    assert "spokenstyle.interop.keras_dcgan" in seen and "spokenstyle.fonts" in seen


def public_callables() -> list[tuple[str, object]]:
    out = []
    for module in api.documented_modules():
        mod = importlib.import_module(module)
        for name in api.own_names(module):
            obj = getattr(mod, name)
            if inspect.isclass(obj) or inspect.isfunction(obj):
                out.append((f"{module}.{name}", obj))
    return out


def test_every_public_function_and_class_has_a_docstring():
    names = public_callables()
    assert len(names) > 300
    bare = [name for name, obj in names if not (inspect.getdoc(obj) or "").strip()]
    assert not bare, "public names without a docstring (the API reference would show them bare):\n" + "\n".join(bare)


@pytest.mark.book
def test_every_public_name_has_an_entry_on_the_built_page():
    if not PAGE.exists():
        pytest.fail("the book is not built: run `make book` (make test builds it before these checks)")
    ids = set(re.findall(r'id="(spokenstyle[\w.]*)"', PAGE.read_text()))
    expected = [f"{m}.{n}" for m in api.documented_modules() for n in api.own_names(m)]
    assert len(expected) > 400
    missing = [name for name in expected if name not in ids]
    assert not missing, "public names without an entry in appendix B's API reference:\n" + "\n".join(missing)
    modules = [m for m in api.documented_modules() if f"module-{m}" not in PAGE.read_text()]
    assert not modules, f"modules without a section: {modules}"
