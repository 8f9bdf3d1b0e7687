"""tools/nbval_cache.py: nbval's execution, stored for the book, equals nbclient's own.

The book build renders what this plugin stores instead of running the notebook again, so the
stored notebook must be the one Jupyter Book's executor (nbclient) would have produced: the same
outputs in the same order, the same widget state. A notebook with a failing cell must not be
stored (the book build then runs it and fails loudly).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]

CELLS = [
    "print('hello')\nimport sys; print('to stderr', file=sys.stderr)",
    "1 + 1",
    "2 + 2;",  # a trailing semicolon hides the result (IPython reads it from the history)
    "from IPython.display import display, clear_output, HTML\n"
    "for k in range(3):\n    clear_output(wait=True)\n    display(HTML(f'<b>frame {k}</b>'))",
    "h = display(HTML('<i>before</i>'), display_id=True)",
    "h.update(HTML('<i>after</i>'))",
    "import ipywidgets as w\nw.IntSlider(value=3)",
    "x = 3\nx",
]


def _notebook(cells: list[str], path: Path) -> Path:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = [nbformat.v4.new_markdown_cell("# a fixture")] + [nbformat.v4.new_code_cell(c) for c in cells]
    nbformat.write(nb, path)
    return path


def _nbval(notebook: Path, cache: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, SPOKENSTYLE_NB_CACHE=str(cache))
    return subprocess.run(
        [sys.executable, "-m", "pytest", "--nbval-lax", "-q", "-p", "no:cacheprovider", "-p", "tools.nbval_cache",
         "--rootdir", str(ROOT),
         "-c", str(ROOT / "pyproject.toml"), str(notebook)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
    )


def _shape(nb) -> list:
    """Every code cell's outputs, without what differs between runs (widget model ids)."""
    rows = []
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        outs = []
        for o in cell.outputs:
            data = {k: v for k, v in o.get("data", {}).items() if k != "application/vnd.jupyter.widget-view+json"}
            outs.append((o.output_type, o.get("name"), o.get("text"), data, o.get("execution_count")))
        rows.append((cell.execution_count, outs))
    return rows


@pytest.mark.slow
def test_stored_notebook_equals_nbclient_execution(tmp_path):
    from jupyter_cache import get_cache
    from nbclient import execute

    path = _notebook(CELLS, tmp_path / "fixture.ipynb")
    result = _nbval(path, tmp_path / "cache")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "fixture.ipynb stored" in result.stderr

    source = nbformat.read(path, as_version=4)
    cache = get_cache(str(tmp_path / "cache"))
    _, stored = cache.merge_match_into_notebook(source)  # what the book build does on a cache hit
    reference = execute(nbformat.read(path, as_version=4), cwd=str(tmp_path))

    assert _shape(stored) == _shape(reference)
    shapes = _shape(stored)
    assert shapes[2][1] == []  # "2 + 2;" shows nothing
    assert [o[3]["text/html"] for o in shapes[3][1]] == ["<b>frame 2</b>"]  # clear_output(wait=True)
    assert shapes[4][1][0][3]["text/html"] == "<i>after</i>"  # the display was updated in place
    state = lambda nb: nb.metadata["widgets"]["application/vnd.jupyter.widget-state+json"]["state"]
    names = lambda nb: sorted(v["model_name"] for v in state(nb).values())
    assert "IntSliderModel" in names(stored) and names(stored) == names(reference)
    assert stored.metadata["language_info"]["name"] == "python"


@pytest.mark.slow
def test_failing_notebook_is_not_stored(tmp_path):
    from jupyter_cache import get_cache

    path = _notebook(["x = 1", "raise ValueError('boom')", "x"], tmp_path / "broken.ipynb")
    result = _nbval(path, tmp_path / "cache")
    assert result.returncode != 0
    assert "broken.ipynb not cached" in result.stderr
    with pytest.raises(KeyError):
        get_cache(str(tmp_path / "cache")).match_cache_notebook(nbformat.read(path, as_version=4))


@pytest.mark.slow
def test_without_the_variable_nothing_is_stored(tmp_path):
    path = _notebook(["x = 1"], tmp_path / "plain.ipynb")
    env = {k: v for k, v in os.environ.items() if k != "SPOKENSTYLE_NB_CACHE"}
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "--nbval-lax", "-q", "-p", "no:cacheprovider", "-p", "tools.nbval_cache",
         "--rootdir", str(ROOT),
         "-c", str(ROOT / "pyproject.toml"), str(path)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "nbval-cache" not in result.stderr
