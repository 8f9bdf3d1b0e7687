"""Checks the built book: a page per ``_toc.yml`` entry, figures where notebooks plot, no errors.

    python tools/check_html.py _build/html

A plain ``jupyter-book build`` exits 0 even when a page lost its figures or a cell's error was
rendered into it; this script fails in those cases:

* every ``_toc.yml`` entry has its ``.html`` page;
* every notebook page whose code draws (matplotlib, the package's viz helpers) has at least one
  image, and every image it references exists in the build;
* no page contains an error output or a traceback;
* no page loads a script or a stylesheet from another host (MathJax and the widget JavaScript
  are served by the book itself, so it renders offline).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
DRAWS = re.compile(r"\bplt\.|\bviz\.(show_grid|plot_history|animate)|\.plot\(|imshow\(")
ERRORS = [
    "Traceback (most recent call last)",
    'class="output traceback',
    'class="output error',
]


def toc_entries(toc_path: Path) -> list[str]:
    toc = yaml.safe_load(toc_path.read_text())
    entries = [toc["root"]]

    def walk(node):
        if isinstance(node, dict):
            if "file" in node:
                entries.append(node["file"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(toc.get("parts", toc.get("chapters", [])))
    return entries


def source_of(entry: str) -> Path | None:
    for ext in (".ipynb", ".md"):
        if (ROOT / f"{entry}{ext}").exists():
            return ROOT / f"{entry}{ext}"
    return None


def notebook_draws(path: Path) -> bool:
    nb = json.loads(path.read_text())
    return any(DRAWS.search("".join(c.get("source", ""))) for c in nb["cells"] if c["cell_type"] == "code")


def check(html_root: Path) -> list[str]:
    problems = []
    for entry in toc_entries(ROOT / "_toc.yml"):
        page = html_root / f"{entry}.html"
        src = source_of(entry)
        if src is None:
            problems.append(f"{entry}: listed in _toc.yml but has no .ipynb or .md source")
        if not page.exists():
            problems.append(f"{entry}: no page {page}")
            continue
        html = page.read_text(errors="replace")
        for marker in ERRORS:
            if marker in html:
                problems.append(f"{page}: contains an error output ({marker!r})")
        for tag, url in re.findall(r'<(script|link)\b[^>]*\b(?:src|href)="((?:https?:)?//[^"]+)"', html):
            if tag == "script" or re.search(r'<link\b[^>]*rel="stylesheet"[^>]*href="' + re.escape(url), html):
                problems.append(f"{page}: loads {url} from another host (serve it from _static/_vendor)")
        images = re.findall(r'<img[^>]+src="([^"]+)"', html)
        for src_attr in images:
            if src_attr.startswith("data:") or "://" in src_attr:
                continue
            if not (page.parent / src_attr).resolve().exists():
                problems.append(f"{page}: image {src_attr} is missing from the build")
        if src is not None and src.suffix == ".ipynb" and notebook_draws(src):
            # the theme's own images (launch-button logos under _static/) do not count as figures
            figures = [src_attr for src_attr in images if "_static/" not in src_attr]
            embedded = len(figures) + html.count("data:image/png;base64")
            if embedded == 0:
                problems.append(f"{page}: the notebook draws figures but the page has no image "
                                "(was MPLBACKEND=Agg set, or did a cell fail?)")
    return problems


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("html_root", type=Path, nargs="?", default=ROOT / "_build" / "html")
    args = parser.parse_args(argv)
    if not (args.html_root / "index.html").exists():
        print(f"{args.html_root} has no index.html: build the book first (make book)")
        return 1
    problems = check(args.html_root)
    for problem in problems:
        print("FAIL", problem)
    print(f"checked {len(toc_entries(ROOT / '_toc.yml'))} pages: {'ok' if not problems else f'{len(problems)} problems'}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
