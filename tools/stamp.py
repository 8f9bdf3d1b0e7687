"""Stamps the one repository setting, and measured runtimes, into every place that repeats them.

The repository URL is set once, in ``_config.yml`` (``repository.url``). This script writes it
into:

* every chapter notebook's Colab setup cell (the first code cell) and the "Open in Colab" link
  in the markdown cell just before it;
* the Colab badge in ``README.md``;

and it copies the measured per-notebook runtimes from ``reports/runtimes.json`` (fast profile,
CPU, written by ``make runtimes``) and ``reports/gpu-check.json`` (full profile, GPU, written by
``make gpu-check``) into the Preface's runtime table.

Usage::

    python tools/stamp.py           # rewrite what is stale
    python tools/stamp.py --check   # exit 1 and list what is stale (tests/test_notebooks.py)
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

import nbformat
import yaml

ROOT = Path(__file__).resolve().parents[1]
SETUP_MARK = "# Colab setup:"
LINK_MARK = "**Run this notebook:**"
RUNTIMES = (ROOT / "reports" / "runtimes.json", ROOT / "reports" / "gpu-check.json")


def repository_url() -> str:
    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    url = str(config["repository"]["url"]).rstrip("/")
    if not re.fullmatch(r"https://github\.com/[\w.-]+/[\w.-]+", url):
        raise SystemExit(f"_config.yml repository.url must be https://github.com/OWNER/REPO, got {url!r}")
    return url


def setup_cell(url: str) -> str:
    """The first code cell of every notebook: installs spokenstyle when it is missing."""
    return (
        f"{SETUP_MARK} installs spokenstyle when it is missing (as on Google Colab); does nothing locally.\n"
        "import importlib.util, subprocess, sys\n"
        'if importlib.util.find_spec("spokenstyle") is None:\n'
        '    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet",\n'
        f'                    "spokenstyle @ git+{url}"], check=True)'
    )


def colab_url(url: str, notebook: Path) -> str:
    rel = notebook.resolve().relative_to(ROOT).as_posix()
    return f"https://colab.research.google.com/github/{url.removeprefix('https://github.com/')}/blob/main/{rel}"


def link_cell(url: str, notebook: Path) -> str:
    return (f"{LINK_MARK} [open it in Google Colab]({colab_url(url, notebook)}) (the first code cell "
            "installs the package there), or run it locally after `make book` (see the Preface).")


def notebooks() -> list[Path]:
    return sorted(p for p in (ROOT / "chapters").glob("*.ipynb") if not p.name.startswith("_"))


def stamp_notebook(path: Path, url: str, write: bool) -> bool:
    """Makes the setup cell and the Colab link current; returns True if the file was stale."""
    nb = nbformat.read(path, as_version=4)
    code = [i for i, c in enumerate(nb.cells) if c.cell_type == "code"]
    if not code:
        raise SystemExit(f"{path}: has no code cell; the first code cell must be the Colab setup cell")
    first = code[0]
    stale = nb.cells[first].source != setup_cell(url)
    if not nb.cells[first].source.startswith(SETUP_MARK):  # no setup cell yet: insert one
        nb.cells.insert(first, nbformat.v4.new_code_cell(setup_cell(url)))
    else:
        nb.cells[first].source = setup_cell(url)
    before = nb.cells[first - 1] if first > 0 else None
    if before is not None and before.cell_type == "markdown" and before.source.startswith(LINK_MARK):
        stale |= before.source != link_cell(url, path)
        before.source = link_cell(url, path)
    else:
        stale = True
        nb.cells.insert(first, nbformat.v4.new_markdown_cell(link_cell(url, path)))
    if stale and write:
        for cell in nb.cells:  # nbformat ≥ 5.1 wants ids; keep existing ones stable
            cell.setdefault("id", nbformat.v4.new_code_cell().id)
        nbformat.write(nb, path)
    return stale


def runtime_table() -> str:
    """The Preface's runtime table from the committed reports."""
    fast = json.loads(RUNTIMES[0].read_text()) if RUNTIMES[0].exists() else {}
    full = json.loads(RUNTIMES[1].read_text()) if RUNTIMES[1].exists() else {}
    names = sorted(set(fast.get("notebooks", {})) | set(full.get("notebooks", {})))
    fast_dev = fast.get("device", "CPU")
    full_dev = full.get("device", "GPU")
    rows = [f"| notebook | `fast` on {fast_dev} (s) | `full` on {full_dev} (s) |", "|---|---|---|"]
    for name in names:
        a = fast.get("notebooks", {}).get(name, {}).get("seconds")
        b = full.get("notebooks", {}).get(name, {}).get("seconds")
        rows.append(f"| `{name}` | {'%.0f' % a if a is not None else 'not measured'} "
                    f"| {'%.0f' % b if b is not None else 'not measured yet'} |")
    if not names:
        rows.append("| (no measurements yet) | | |")
    note = []
    if fast.get("measured"):
        note.append(f"`fast`: measured {fast['measured']} with `{fast.get('command', 'make runtimes')}`.")
    if full.get("measured"):
        note.append(f"`full`: measured {full['measured']} with `make gpu-check`.")
    else:
        note.append("`full`: no GPU run has been recorded yet; `make gpu-check` on a CUDA machine fills this column.")
    return "\n".join(rows) + "\n\n" + " ".join(note)


def stamp_block(path: Path, start: str, end: str, body: str, write: bool) -> bool:
    text = path.read_text()
    pattern = re.compile(re.escape(start) + r".*?" + re.escape(end), re.S)
    if not pattern.search(text):
        raise SystemExit(f"{path}: markers {start} … {end} are missing")
    new = pattern.sub(lambda _: f"{start}\n{body}\n{end}", text)
    if new != text and write:
        path.write_text(new)
    return new != text


def readme_badge(url: str) -> str:
    first = notebooks()[0] if notebooks() else ROOT / "chapters"
    return (f"[![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)]"
            f"({colab_url(url, first)})")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="list stale files and exit 1 instead of writing")
    args = parser.parse_args(argv)
    url = repository_url()
    stale = [p for p in notebooks() if stamp_notebook(p, url, write=not args.check)]
    if stamp_block(ROOT / "index.md", "<!-- runtimes:start -->", "<!-- runtimes:end -->", runtime_table(),
                   write=not args.check):
        stale.append(ROOT / "index.md")
    if stamp_block(ROOT / "README.md", "<!-- badge:start -->", "<!-- badge:end -->", readme_badge(url),
                   write=not args.check):
        stale.append(ROOT / "README.md")
    for path in stale:
        print(f"{'stale' if args.check else 'stamped'}: {path.relative_to(ROOT)}")
    return 1 if (args.check and stale) else 0


if __name__ == "__main__":
    sys.exit(main())
