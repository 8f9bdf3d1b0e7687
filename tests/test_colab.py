"""Simulates Google Colab: a Python with the heavy packages preinstalled but no spokenstyle, where
the notebooks' setup cell installs the package from the repository URL (here a local clone,
``git+file://``) and ``import spokenstyle`` must then find its shipped data and run the pipeline.

Two interpreters, because they install differently:

* a fresh **venv** (what most readers have locally): pip puts everything under ``sys.prefix``;
* a **Debian-layout system Python** (what Colab is: ``/usr/bin/python3``, packages in
  ``/usr/local/lib/python3.X/dist-packages``, ``sys.prefix`` = ``/usr``). pip installs into the
  ``posix_local`` scheme (``/usr/local/...``), so data placed "under the prefix" is not where
  ``sys.prefix`` says; the package must find its data inside itself. The test installs with
  ``PIP_ROOT`` into a temporary root, so the layout is Colab's and the machine is untouched.

Colab preinstalls ipywidgets 7.7.1 (googlecolab/colabtools #3020, #4525: ipywidgets 8 widgets do
not render there), so the Debian simulation preinstalls exactly that (the wheels `make env`
downloads into ``.venv/colab-wheels``), checks that the setup cell leaves it alone, and runs the
widget tests under it. With ``SPOKENSTYLE_REQUIRE_COLAB=1`` (``make test``) a missing
interpreter or missing wheels fail the test instead of skipping it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
import stamp  # noqa: E402

REQUIRED = os.environ.get("SPOKENSTYLE_REQUIRE_COLAB") == "1"
SYSTEM_PYTHON = Path("/usr/bin/python3")
COLAB_WIDGETS = ("ipywidgets", "widgetsnbextension", "jupyterlab_widgets", "ipython_genutils")


def missing(reason: str) -> None:
    """Skips, or fails under ``make test`` (where the Colab simulation must run)."""
    if REQUIRED:
        pytest.fail(reason)
    pytest.skip(reason)


def snapshot_repository(dest: Path) -> Path:
    """A git repository holding the working tree as it is (tracked + untracked, not ignored)."""
    files = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"], cwd=ROOT,
                           capture_output=True, text=True, check=True).stdout.split("\0")
    for rel in filter(None, files):
        src = ROOT / rel
        if src.is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel)
    git = ["git", "-c", "user.name=test", "-c", "user.email=test@example.invalid"]
    subprocess.run(git + ["init", "-q", "-b", "main"], cwd=dest, check=True)
    subprocess.run(git + ["add", "-A"], cwd=dest, check=True)
    subprocess.run(git + ["commit", "-q", "-m", "snapshot"], cwd=dest, check=True)
    return dest


def preinstalled(folder: Path, *, without: tuple[str, ...] = ()) -> Path:
    """A folder of links to this environment's packages (torch, transformers, ...) except
    spokenstyle, ``.pth`` hooks and the names in ``without``: what Colab has preinstalled."""
    folder.mkdir()
    for entry in Path(sysconfig.get_paths()["purelib"]).iterdir():
        name = entry.name.lower()
        top = name.split("-")[0].replace(".dist", "")
        if "spokenstyle" in name or name.endswith(".pth") or name.startswith("__editable__") or top in without:
            continue
        (folder / entry.name).symlink_to(entry)
    return folder


def colab_widget_wheels() -> Path:
    """The folder of Colab's ipywidgets 7.7.1 wheels (``make env`` downloads them)."""
    folder = Path(os.environ.get("SPOKENSTYLE_COLAB_WHEELS") or ROOT / ".venv" / "colab-wheels")
    wheels = sorted(folder.glob("*.whl")) if folder.is_dir() else []
    names = {w.name.split("-")[0].lower() for w in wheels}
    if not set(COLAB_WIDGETS) <= names:
        missing(f"Colab's ipywidgets 7.7.1 wheels are not in {folder} (run `make env`, which downloads "
                f"tests/colab/ipywidgets7.txt); found {sorted(names)}")
    return folder


def install_wheels(folder: Path, target: Path) -> Path:
    """Colab's ipywidgets 7.7.1 and its companions, installed into ``target``.

    widgetsnbextension 3.6 requires the classic ``notebook`` (>= 4.4.1), which Colab preinstalls
    (6.5) and this environment does not have; nothing here imports it, so the simulated Colab gets
    its metadata only, enough for pip's resolver to see the requirement met as it is on Colab."""
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-index", "--disable-pip-version-check",
                    "--target", str(target), *map(str, sorted(folder.glob("*.whl")))], check=True,
                   capture_output=True, text=True)
    stub = target / "notebook-6.5.5.dist-info"
    stub.mkdir()
    (stub / "METADATA").write_text("Metadata-Version: 2.1\nName: notebook\nVersion: 6.5.5\n"
                                   "Summary: metadata only: Colab's preinstalled classic notebook, for pip's resolver\n")
    (stub / "INSTALLER").write_text("spokenstyle-tests\n")
    (stub / "RECORD").write_text("")
    return target


def setup_cell_program(repo: Path, then: str) -> str:
    """The notebooks' real setup cell, pointed at the local clone, followed by ``then``."""
    url = stamp.repository_url()
    cell = stamp.setup_cell(url).replace(f"git+{url}", f"git+file://{repo}")
    assert cell != stamp.setup_cell(url)
    return cell + "\n" + then


PIPELINE_PROGRAM = (
    "import json, sys, sysconfig, spokenstyle\n"
    "import ipywidgets\n"
    "from spokenstyle import runtime, widgets\n"
    "from spokenstyle.pipeline import SpokenStylePipeline\n"
    "pipe = SpokenStylePipeline.from_pretrained('cpu')\n"
    "out = pipe('scene:7:flat', 'scene:12:neon', seed=0)\n"
    "box = widgets.image_switcher({'source': out.source[0], 'picture': out.fused[0]})\n"
    "print(json.dumps({'file': spokenstyle.__file__, 'data': str(runtime.data_dir()), 'prefix': sys.prefix,\n"
    "                  'scheme': sysconfig.get_default_scheme(), 'sentence': out.sentence,\n"
    "                  'captioner': pipe.names['captioner'], 'ipywidgets': ipywidgets.__version__,\n"
    "                  'stack': widgets.HAS_STACK, 'switcher': type(box.children[-1]).__name__}))\n")


def offline_env(**extra: str) -> dict[str, str]:
    """The environment of a simulated Colab session: pip offline (its index unreachable), the
    package's data found only through the package, nothing from this checkout on the path."""
    env = {**os.environ, "PIP_NO_INDEX": "1", "PIP_NO_BUILD_ISOLATION": "0", "PIP_DISABLE_PIP_VERSION_CHECK": "1",
           "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "SPOKENSTYLE_PROGRESS": "0"}
    env.pop("SPOKENSTYLE_DATA", None)
    env.pop("PYTHONPATH", None)
    env.update(extra)
    return env


@pytest.mark.slow
def test_setup_cell_installs_the_package_from_the_repository_url(tmp_path):
    """A fresh venv that sees this environment's packages except spokenstyle."""
    repo = snapshot_repository(tmp_path / "clone")
    venv.create(tmp_path / "venv", with_pip=False, system_site_packages=False)
    python = tmp_path / "venv" / "bin" / "python"
    pre = preinstalled(tmp_path / "preinstalled")
    site = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          capture_output=True, text=True, check=True).stdout.strip()
    Path(site, "colab_preinstalled.pth").write_text(str(pre) + "\n")
    work = tmp_path / "content"  # Colab's working folder: not the checkout
    work.mkdir()
    check = subprocess.run([str(python), "-c", "import importlib.util; print(importlib.util.find_spec('spokenstyle'))"],
                           cwd=work, capture_output=True, text=True, check=True)
    assert check.stdout.strip() == "None", "the simulated Colab must start without spokenstyle"

    proc = subprocess.run([str(python), "-c", setup_cell_program(repo, PIPELINE_PROGRAM)], cwd=work, env=offline_env(),
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["file"].startswith(site), "spokenstyle must come from the fresh install, not the checkout"
    assert result["data"] == str(Path(site) / "spokenstyle" / "shipped")
    assert (Path(result["data"]) / "checkpoints" / "fusion" / "manifest.json").is_file()
    assert result["captioner"] == "captioner_spoken" and result["sentence"]


@pytest.mark.slow
def test_a_debian_layout_python_finds_the_shipped_data_and_keeps_colabs_ipywidgets(tmp_path):
    """Colab's layout: ``/usr/bin/python3`` installs into ``/usr/local/lib/python3.X/dist-packages``
    (here under a temporary ``PIP_ROOT``) while ``sys.prefix`` is ``/usr``. Before the data moved
    into the package, this is where the chapters failed (data looked for under /usr/share)."""
    if not SYSTEM_PYTHON.is_file():
        missing(f"no Debian-layout system Python at {SYSTEM_PYTHON}")
    probe = subprocess.run([str(SYSTEM_PYTHON), "-c", "import sys, sysconfig; print(sysconfig.get_default_scheme(), "
                            "sys.version_info[:2] == (%d, %d))" % sys.version_info[:2]],
                           capture_output=True, text=True)
    if probe.returncode or probe.stdout.split() != ["posix_local", "True"]:
        missing(f"{SYSTEM_PYTHON} is not a Debian-layout Python {sys.version_info[0]}.{sys.version_info[1]} "
                f"(got {probe.stdout.strip() or probe.stderr.strip()})")
    wheels = colab_widget_wheels()
    repo = snapshot_repository(tmp_path / "clone")
    pre = preinstalled(tmp_path / "preinstalled", without=COLAB_WIDGETS)  # Colab's own widgets instead
    colab_widgets = install_wheels(wheels, tmp_path / "colab-widgets")
    root = tmp_path / "root"
    dist = root / "usr" / "local" / "lib" / f"python{sys.version_info[0]}.{sys.version_info[1]}" / "dist-packages"
    dist.mkdir(parents=True)  # on sys.path from the start, as Colab's dist-packages is
    work = tmp_path / "content"
    work.mkdir()
    env = offline_env(PIP_ROOT=str(root), PYTHONPATH=os.pathsep.join(map(str, (dist, colab_widgets, pre))))

    proc = subprocess.run([str(SYSTEM_PYTHON), "-c", setup_cell_program(repo, PIPELINE_PROGRAM)], cwd=work, env=env,
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["prefix"] == "/usr" and result["scheme"] == "posix_local"
    assert result["file"] == str(dist / "spokenstyle" / "__init__.py")
    assert result["data"] == str(dist / "spokenstyle" / "shipped")
    assert result["sentence"] and result["captioner"] == "captioner_spoken"
    # the setup cell did not upgrade Colab's ipywidgets, and the widgets work with it
    assert result["ipywidgets"] == "7.7.1" and result["stack"] is False and result["switcher"] == "Tab"
    assert not list(dist.glob("ipywidgets*")), "pip installed another ipywidgets over Colab's"


@pytest.mark.slow
def test_the_widget_tests_pass_under_colabs_ipywidgets_7(tmp_path):
    """The widget tests of the suite, run again with ipywidgets 7.7.1 first on the path."""
    colab_widgets = install_wheels(colab_widget_wheels(), tmp_path / "colab-widgets")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(colab_widgets), str(ROOT)])}
    check = subprocess.run([sys.executable, "-c", "import ipywidgets; print(ipywidgets.__version__)"], env=env,
                           capture_output=True, text=True, check=True)
    assert check.stdout.strip() == "7.7.1"
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/test_viz.py",
                           "tests/test_pipeline_widgets.py"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert " passed" in proc.stdout and " failed" not in proc.stdout
