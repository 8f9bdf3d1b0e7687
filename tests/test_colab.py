"""Simulates Google Colab: a fresh Python with the heavy packages preinstalled but no
spokenstyle, where the notebooks' setup cell must install the package from the repository URL
(here a local clone, ``git+file://``) and make ``import spokenstyle`` work, shipped data included."""

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


def colab_like_python(home: Path) -> Path:
    """A fresh venv that sees this environment's packages (torch, …) except spokenstyle,
    as Colab has torch preinstalled but not our package."""
    venv.create(home / "venv", with_pip=False, system_site_packages=False)
    python = home / "venv" / "bin" / "python"
    preinstalled = home / "preinstalled"
    preinstalled.mkdir()
    for entry in Path(sysconfig.get_paths()["purelib"]).iterdir():
        if "spokenstyle" in entry.name.lower() or entry.name.endswith(".pth"):
            continue
        (preinstalled / entry.name).symlink_to(entry)
    site = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          capture_output=True, text=True, check=True).stdout.strip()
    Path(site, "colab_preinstalled.pth").write_text(str(preinstalled) + "\n")
    return python


@pytest.mark.slow
def test_setup_cell_installs_the_package_from_the_repository_url(tmp_path):
    repo = snapshot_repository(tmp_path / "clone")
    python = colab_like_python(tmp_path)
    work = tmp_path / "content"  # Colab's working folder: not the checkout
    work.mkdir()
    check = subprocess.run([str(python), "-c", "import importlib.util; print(importlib.util.find_spec('spokenstyle'))"],
                           cwd=work, capture_output=True, text=True, check=True)
    assert check.stdout.strip() == "None", "the simulated Colab must start without spokenstyle"

    url = stamp.repository_url()
    cell = stamp.setup_cell(url).replace(f"git+{url}", f"git+file://{repo}")
    assert cell != stamp.setup_cell(url)
    program = cell + "\n" + (
        "import json, spokenstyle\n"
        "from spokenstyle import runtime\n"
        "print(json.dumps({'file': spokenstyle.__file__, 'data': str(runtime.data_dir()),"
        " 'device': str(runtime.get_device())}))\n")
    env = {**os.environ, "PIP_NO_INDEX": "1", "PIP_NO_BUILD_ISOLATION": "0", "PIP_DISABLE_PIP_VERSION_CHECK": "1",
           "SPOKENSTYLE_DATA": ""}
    env.pop("PYTHONPATH", None)
    proc = subprocess.run([str(python), "-c", program], cwd=work, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert str(tmp_path / "venv") in result["file"], "spokenstyle must come from the fresh install, not the checkout"
    assert result["data"].startswith(str(tmp_path / "venv")) and result["data"].endswith("share/spokenstyle/data")
    assert (Path(result["data"]) / "README.md").is_file()
