"""The project's own rules: environment files agree, shipped data installs, no device literals,
notebooks committed clean and stamped, every chapter on the map."""

from __future__ import annotations

import glob
import io
import json
import re
import shutil
import subprocess
import sys
import tokenize
import zipfile
from pathlib import Path

import pytest
import yaml

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
CONDA_NAMES = {"torch": "pytorch"}  # PyPI name -> conda-forge name where they differ


def pyproject_requirements() -> dict[str, str]:
    project = PYPROJECT["project"]
    reqs = list(project["dependencies"])
    for extra in ("book", "test"):
        reqs += project["optional-dependencies"][extra]
    out = {}
    for text in reqs:
        req = Requirement(text)
        out[CONDA_NAMES.get(req.name, req.name)] = str(req.specifier)
    return out


def conda_requirements() -> dict[str, str]:
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    out = {}
    for dep in env["dependencies"]:
        if isinstance(dep, str):
            name, spec = re.match(r"([A-Za-z0-9_.-]+)\s*(.*)", dep).groups()
            out[name] = spec.replace(" ", "")
    return out


def test_environment_yml_agrees_with_pyproject():
    conda = conda_requirements()
    for name, spec in pyproject_requirements().items():
        assert name in conda, f"environment.yml lacks {name} (pyproject.toml asks for {name}{spec})"
        assert set(conda[name].split(",")) == set(spec.split(",")), \
            f"{name}: environment.yml says {conda[name]!r}, pyproject.toml says {spec!r}"


def test_ci_requirements_pin_everything_and_satisfy_pyproject():
    pins = {}
    for line in (ROOT / "requirements-ci.txt").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            req = Requirement(line)
            assert str(req.specifier).startswith("=="), f"requirements-ci.txt must pin exactly: {line}"
            pins[req.name.lower().replace("_", "-")] = str(req.specifier)[2:]
    assert pins["torch"] == "2.14.1" and pins["torchvision"] == "0.29.1"
    assert pins["jupyter-book"].startswith("1.")
    project = PYPROJECT["project"]
    for text in project["dependencies"] + sum(project["optional-dependencies"].values(), []):
        req = Requirement(text)
        name = req.name.lower().replace("_", "-")
        assert name in pins, f"requirements-ci.txt does not pin {name}"
        assert req.specifier.contains(pins[name], prereleases=True), f"pin {name}=={pins[name]} violates {req}"


PACKAGE = ROOT / "spokenstyle"
SHIPPED = PACKAGE / "shipped"


def package_data_patterns() -> list[str]:
    package_data = PYPROJECT["tool"]["setuptools"]["package-data"]
    assert set(package_data) == {"spokenstyle"}, f"package data of other packages: {sorted(package_data)}"
    return list(package_data["spokenstyle"])


def shipped_files() -> list[str]:
    """Every file of spokenstyle/shipped/, relative to the package folder (as package-data globs are)."""
    return sorted(p.relative_to(PACKAGE).as_posix() for p in SHIPPED.rglob("*") if p.is_file())


def test_the_shipped_data_lives_in_the_package():
    assert "data-files" not in PYPROJECT["tool"]["setuptools"], "the shipped data is package data now"
    files = shipped_files()
    assert "shipped/tokenizer.json" in files
    assert any(f.startswith("shipped/checkpoints/") and f.endswith("/manifest.json") for f in files)


def test_every_shipped_file_is_matched_by_the_package_data_globs():
    patterns = package_data_patterns()
    # setuptools expands each glob inside the package folder; a file no glob matches stays out of the wheel
    matched = {Path(m).as_posix() for pattern in patterns for m in glob.glob(pattern, root_dir=PACKAGE)}
    for rel in shipped_files():
        assert not Path(rel).name.startswith("."), f"spokenstyle/{rel}: a hidden file is not matched by '*' globs"
        assert rel in matched, f"spokenstyle/{rel} is shipped but no [tool.setuptools.package-data] glob installs it"
    for pattern in patterns:
        assert pattern.startswith("shipped/"), f"{pattern}: package data outside spokenstyle/shipped"
        assert glob.glob(pattern, root_dir=PACKAGE), f"{pattern} matches no file of spokenstyle/shipped"


@pytest.mark.slow
def test_the_wheel_holds_every_shipped_file(tmp_path):
    """Builds the wheel from a copy of the sources (nothing is written into the checkout)."""
    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    shutil.copytree(PACKAGE, src / "spokenstyle", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    proc = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index",
                           "--wheel-dir", str(tmp_path / "dist"), str(src)],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    wheel, = (tmp_path / "dist").glob("spokenstyle-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
    missing = [rel for rel in shipped_files() if f"spokenstyle/{rel}" not in names]
    assert not missing, f"the wheel lacks {missing}"
    assert not any(n.startswith(("data/", "share/")) or ".data/data/" in n for n in names), \
        "the shipped data travels inside the package only"


def string_literals(path: Path):
    for tok in tokenize.generate_tokens(io.StringIO(path.read_text()).readline):
        if tok.type == tokenize.STRING:
            yield tok.start[0], tok.string


def code_files():
    for folder in ("spokenstyle", "benchmarks", "tools"):
        yield from (ROOT / folder).rglob("*.py")


def test_no_cuda_literal_outside_device_selection():
    offenders = []
    for path in code_files():
        if path.name == "runtime.py" and path.parent.name == "spokenstyle":
            continue
        for line, literal in string_literals(path):
            if re.fullmatch(r"[rbuf]*(['\"])cuda(:\d+)?\1", literal):
                offenders.append(f"{path.relative_to(ROOT)}:{line}: {literal}")
    for nb in (ROOT / "chapters").glob("*.ipynb"):
        for cell in json.loads(nb.read_text())["cells"]:
            if cell["cell_type"] == "code" and re.search(r"[\"']cuda(:\d+)?[\"']", "".join(cell["source"])):
                offenders.append(f"{nb.relative_to(ROOT)}: a code cell names 'cuda'")
    assert not offenders, "device selection belongs to spokenstyle.runtime:\n" + "\n".join(offenders)


NOTEBOOKS = sorted((ROOT / "chapters").glob("*.ipynb"))


@pytest.mark.parametrize("nb", NOTEBOOKS, ids=lambda p: p.name)
def test_notebooks_are_committed_without_outputs(nb):
    data = json.loads(nb.read_text())
    for i, cell in enumerate(data["cells"]):
        if cell["cell_type"] == "code":
            assert not cell.get("outputs") and cell.get("execution_count") is None, \
                f"{nb.name} cell {i} has outputs: clear them before committing"


@pytest.mark.parametrize("nb", NOTEBOOKS, ids=lambda p: p.name)
def test_notebooks_follow_the_chapter_shape(nb):
    cells = json.loads(nb.read_text())["cells"]
    markdown = "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "markdown")
    code = "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "code")
    assert "".join(cells[0]["source"]).startswith("# "), "the first cell is the title"
    assert re.search(r"§\s*\d", markdown), "the notebook names the source section it covers"
    for heading in ("objectives", "prerequisites", "summary", "references"):
        assert re.search(rf"^#+ .*{heading}", markdown, re.I | re.M), f"no '{heading}' heading"
    assert re.search(r"^#+ .*exercise", markdown, re.I | re.M), "no exercises"
    assert any("hide-cell" in c.get("metadata", {}).get("tags", []) for c in cells), "solutions are hidden"
    assert "runtime.setup(" in code, "one runtime.setup call seeds and picks the device"
    assert re.search(r"^\s*assert ", code, re.M), "every stated number is asserted"


def test_setup_cells_badges_and_runtime_table_are_stamped():
    proc = subprocess.run([sys.executable, str(ROOT / "tools" / "stamp.py"), "--check"], capture_output=True, text=True)
    assert proc.returncode == 0, f"run `python tools/stamp.py`:\n{proc.stdout}{proc.stderr}"


def toc_files() -> list[str]:
    sys_path = ROOT / "tools"
    import importlib.util

    spec = importlib.util.spec_from_file_location("check_html", sys_path / "check_html.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.toc_entries(ROOT / "_toc.yml")


def test_toc_lists_every_chapter_of_the_map_and_each_states_its_source():
    entries = toc_files()
    chapters = [e for e in entries if e.startswith("chapters/")]
    assert [re.match(r"chapters/(\d\d)_", c).group(1) for c in chapters] == [f"{i:02d}" for i in range(1, 12)]
    assert {"appendices/a_tools", "appendices/b_reference"} <= set(entries)
    on_disk = {p.relative_to(ROOT).with_suffix("").as_posix() for p in (ROOT / "chapters").glob("[0-9]*.*")}
    assert on_disk <= set(entries), f"chapters not in _toc.yml: {on_disk - set(entries)}"
    for entry in chapters + ["appendices/a_tools"]:
        path = next(p for p in (ROOT / f"{entry}.ipynb", ROOT / f"{entry}.md") if p.exists())
        text = path.read_text()
        assert "§" in text and re.search(r"[\u4e00-\u9fff]", text), f"{entry} must quote its source section (Chinese)"
        assert re.search(r"objectives", text, re.I), f"{entry} must state its learning objectives"
