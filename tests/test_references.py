"""Citations resolve: every ``{cite}`` key in the book is an entry of ``references.bib``, and the
file holds each work once (appendix B renders all of it)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import yaml
from pybtex.database import parse_file

ROOT = Path(__file__).resolve().parents[1]
CITE = re.compile(r"\{cite(?::[a-z]+)*\}`([^`]+)`")  # {cite}`a,b`, {cite:p}`a`, {cite:t}`a`


def book_pages() -> list[Path]:
    """The pages of the book: every entry of _toc.yml (scratch files beside them are not the book)."""
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    entries = [toc["root"]] + [c["file"] for part in toc["parts"] for c in part["chapters"]]
    pages = [next(p for p in (ROOT / f"{e}.ipynb", ROOT / f"{e}.md") if p.exists()) for e in entries]
    assert len(pages) >= 14, "_toc.yml lists the preface, 11 chapters and 2 appendices"
    return pages


def text_of(path: Path) -> str:
    if path.suffix == ".ipynb":
        return "\n".join("".join(c["source"]) for c in json.loads(path.read_text())["cells"])
    return path.read_text()


def cited_keys(text: str) -> list[str]:
    return [key.strip() for group in CITE.findall(text) for key in group.split(",") if key.strip()]


def bib():
    return parse_file(str(ROOT / "references.bib"), bib_format="bibtex")


def test_every_cited_key_resolves():
    keys = set(bib().entries)
    unresolved = [f"{page.relative_to(ROOT)}: {key}" for page in book_pages()
                  for key in cited_keys(text_of(page)) if key not in keys]
    assert not unresolved, "citation keys not in references.bib:\n" + "\n".join(unresolved)


def test_the_book_cites():
    assert sum(len(cited_keys(text_of(p))) for p in book_pages()) > 50


def test_each_work_is_in_the_bibliography_once():
    seen: dict[tuple[str, str], str] = {}
    duplicates = []
    for key, entry in bib().entries.items():
        assert {"title", "year"} <= set(entry.fields), f"{key} lacks a title or a year"
        assert entry.persons.get("author") or entry.persons.get("editor"), f"{key} has no author"
        title = re.sub(r"[^a-z0-9]", "", entry.fields["title"].lower())
        if (title, entry.fields["year"]) in seen:
            duplicates.append(f"{key} repeats {seen[(title, entry.fields['year'])]}")
        seen.setdefault((title, entry.fields["year"]), key)
    assert not duplicates, "the same work under two keys:\n" + "\n".join(duplicates)


def test_the_checker_reads_every_form_of_citation():
    text = "{cite}`a2017x` and {cite:p}`b2018y, c2019z` and {cite:t}`d2020w`; not `plain`"
    assert cited_keys(text) == ["a2017x", "b2018y", "c2019z", "d2020w"]
