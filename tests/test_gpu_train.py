"""tools/gpu_train.py: the prepared GPU retraining of issues 4 and 5 (its flow is run on the CPU)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))

import gpu_train  # noqa: E402

from spokenstyle import runtime  # noqa: E402
from spokenstyle.budgets import BUDGETS, parse_overrides  # noqa: E402
from spokenstyle.recipes import RECIPES  # noqa: E402


def test_every_run_overrides_real_budget_entries():
    for name, run in gpu_train.RUNS.items():
        assert run.model in RECIPES, name
        assert run.row in BUDGETS, name
        for calibrate in (False, True):
            sets = run.sets(12000, calibrate=calibrate)
            parsed = parse_overrides(sets)[run.row]
            assert parsed["steps"] == 12000
            BUDGETS[run.row].full.replace(**parsed)  # every override fits the row's typed budget
    dcgan = gpu_train.RUNS["dcgan"]
    assert parse_overrides(dcgan.sets(12000))["dcgan_all_styles"]["curve_every"] == 1200
    calib = parse_overrides(dcgan.sets(500, calibrate=True))["dcgan_all_styles"]
    assert calib["curve_every"] == 500 and calib["eval"] == 500  # one FD measurement, a smaller final scoring


def test_plan_steps_fits_the_budget():
    assert gpu_train.plan_steps(0.01, 300, 100000, floor=500) == 30000
    assert gpu_train.plan_steps(0.0123, 300, 100000, floor=500) == 24000  # 24,390 rounded down to 500s
    assert gpu_train.plan_steps(0.001, 300, 100000, floor=500) == 100000  # capped
    assert gpu_train.plan_steps(10.0, 300, 100000, floor=500) == 500  # never below the calibration
    with pytest.raises(ValueError, match="positive"):
        gpu_train.plan_steps(0.0, 300, 100, floor=1)


def test_check_targets_reads_relative_and_absolute_bounds():
    got = gpu_train.check_targets({"fd": 5.0, "fd_real_vs_real": 1.7, "confident": 0.8},
                                  gpu_train.RUNS["dcgan"].targets)
    assert got["fd"]["met"] and got["fd"]["target"] == "<= 5.1" and got["confident"]["met"]
    got = gpu_train.check_targets({"fd": 5.2, "fd_real_vs_real": 1.7, "confident": 0.79},
                                  gpu_train.RUNS["dcgan"].targets)
    assert not got["fd"]["met"] and not got["confident"]["met"]
    got = gpu_train.check_targets({"AB_style_accuracy": 1.0}, gpu_train.TRANSLATOR_TARGETS)
    assert got["AB_style_accuracy"]["met"] and got["BA_content_accuracy"] == {
        "value": None, "target": ">= 0.9", "met": False}


def test_refuses_to_size_runs_without_a_gpu(tmp_path):
    if runtime.is_accelerator(runtime.get_device()):
        pytest.skip("this machine has a GPU")
    proc = subprocess.run([sys.executable, str(ROOT / "tools" / "gpu_train.py"), "--out", str(tmp_path)],
                          capture_output=True, text=True)
    assert proc.returncode == 2 and "use --smoke" in proc.stdout
    assert not (tmp_path / "gpu-train.json").exists()


@pytest.mark.slow
def test_smoke_flow_calibrates_trains_scores_and_packs(tmp_path):
    env = {**os.environ, "SPOKENSTYLE_PROGRESS": "0", "SPOKENSTYLE_CACHE": str(tmp_path / "cache")}
    proc = subprocess.run([sys.executable, str(ROOT / "tools" / "gpu_train.py"), "--out", str(tmp_path / "out"),
                           "--work", str(tmp_path / "work"), "--smoke", "--only", "cyclegan_flat_pixel",
                           "--seconds", "1", "--calibrate-steps", "2"], capture_output=True, text=True, env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr  # trained and scored; targets missed are a result
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["cyclegan_flat_pixel.tar", "gpu-train.json",
                                                                     "logs.tar"]
    summary = json.loads((tmp_path / "out" / "gpu-train.json").read_text())
    row = summary["runs"]["cyclegan_flat_pixel"]
    assert row["steps"] == 2 and row["rc"] == 0 and row["calibration"]["seconds_per_step"] > 0
    assert row["command"].startswith("spokenstyle train cyclegan_flat_pixel --profile fast")
    assert row["metrics"]["steps"] == 2 and row["targets"]["AB_content_accuracy"]["met"] is False
    manifest = json.loads((tmp_path / "work" / "runs" / "cyclegan_flat_pixel" / "manifest.json").read_text())
    assert "--set cyclegan_flat_pixel.steps=2" in manifest["command"]
    (weights,) = manifest["files"]  # new saves name the weights by their sha256
    with tarfile.open(tmp_path / "out" / "cyclegan_flat_pixel.tar") as tar:
        names = tar.getnames()
        packed = json.load(tar.extractfile("cyclegan_flat_pixel/manifest.json"))
    assert packed["files"] == manifest["files"]
    assert "cyclegan_flat_pixel/manifest.json" in names and f"cyclegan_flat_pixel/{weights}" in names
