"""spokenstyle.runtime: device and profile choice, seeding, progress, reports, the shipped data folder.

The budget table and its overrides are tested in test_budgets.py."""

from __future__ import annotations

import importlib.resources
import json
import random
from pathlib import Path

import numpy as np
import pytest
import torch

import spokenstyle
from spokenstyle import budgets, runtime


def test_device_defaults_to_best_available(monkeypatch):
    monkeypatch.delenv("SPOKENSTYLE_DEVICE", raising=False)
    expected = "cuda" if torch.cuda.is_available() else ("mps" if runtime._mps_available() else "cpu")
    assert runtime.get_device().type == expected


def test_device_env_override(monkeypatch):
    monkeypatch.setenv("SPOKENSTYLE_DEVICE", "cpu")
    assert runtime.get_device() == torch.device("cpu")
    assert runtime.get_device("cpu") == torch.device("cpu")


@pytest.mark.parametrize("bad", ["gpu", "tpu:0", "cpu:x"])
def test_unknown_device_is_a_clear_error(monkeypatch, bad):
    monkeypatch.setenv("SPOKENSTYLE_DEVICE", bad)
    with pytest.raises(ValueError, match="unknown device"):
        runtime.get_device()


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_missing_accelerator_is_a_clear_error():
    with pytest.raises(ValueError, match="CUDA is not available"):
        runtime.get_device(torch.device("cuda"))


def test_profile_default_and_override(monkeypatch):
    monkeypatch.delenv("SPOKENSTYLE_PROFILE", raising=False)
    assert runtime.get_profile() == ("full" if torch.cuda.is_available() else "fast")
    monkeypatch.setenv("SPOKENSTYLE_PROFILE", "FULL")
    assert runtime.get_profile() == "full"
    monkeypatch.setenv("SPOKENSTYLE_PROFILE", "medium")
    with pytest.raises(ValueError, match="unknown profile 'medium'"):
        runtime.get_profile()


def test_seed_everything_makes_every_generator_repeat():
    def draw():
        return random.random(), np.random.rand(), torch.rand(3)

    runtime.seed_everything(123)
    a = draw()
    runtime.seed_everything(123)
    b = draw()
    assert a[0] == b[0] and a[1] == b[1] and torch.equal(a[2], b[2])
    with pytest.raises(ValueError, match=r"from 0 to 2\*\*63"):
        runtime.seed_everything(-1)


def test_setup_returns_what_it_decided(capsys, monkeypatch):
    monkeypatch.setenv("SPOKENSTYLE_DEVICE", "cpu")
    rt = runtime.setup(seed=7, profile="fast")
    assert rt.device == torch.device("cpu") and rt.profile == "fast" and rt.seed == 7
    assert rt.budget("demo") == runtime.budget("demo", "fast")
    assert "profile=fast" in capsys.readouterr().out


def test_autocast_is_a_no_op_on_cpu_and_amp_is_refused_there():
    with runtime.autocast("cpu"):
        y = torch.ones(2, 2) @ torch.ones(2, 2)
    assert y.dtype == torch.float32
    assert runtime.amp_enabled("cpu") is False
    with pytest.raises(ValueError, match="CUDA devices only"):
        runtime.amp_enabled("cpu", True)


def test_progress_can_be_disabled(monkeypatch):
    monkeypatch.setenv("SPOKENSTYLE_PROGRESS", "0")
    bar = runtime.progress(range(3), desc="x")
    assert bar.disable and list(bar) == [0, 1, 2]


def test_progress_in_a_log_file_prints_rarely(monkeypatch):
    monkeypatch.delenv("SPOKENSTYLE_PROGRESS", raising=False)
    bar = runtime.progress(range(3))
    assert bar.mininterval >= 10  # stderr is not a terminal under pytest
    list(bar)


def test_report_writes_json_lines_only_when_asked(tmp_path, monkeypatch):
    monkeypatch.delenv("SPOKENSTYLE_REPORT", raising=False)
    runtime.report(acc=0.5)  # no-op
    target = tmp_path / "r.jsonl"
    monkeypatch.setenv("SPOKENSTYLE_REPORT", str(target))
    runtime.report(acc=torch.tensor(0.75), n=np.int64(3), name="x")
    runtime.report_models(lin=torch.nn.Linear(2, 2))
    rows = [json.loads(line) for line in target.read_text().splitlines()]
    assert rows[0] == {"kind": "metrics", "values": {"acc": 0.75, "n": 3, "name": "x"}}
    assert rows[1]["kind"] == "model" and rows[1]["device"] == "cpu" and rows[1]["accelerator"] is False
    with pytest.raises(TypeError, match="numbers or strings"):
        runtime.report(bad=[1, 2])


def test_data_dir_is_the_shipped_folder_inside_the_package(monkeypatch):
    monkeypatch.delenv("SPOKENSTYLE_DATA", raising=False)
    path = runtime.data_dir()
    assert path == Path(str(importlib.resources.files("spokenstyle") / "shipped"))
    assert path == Path(spokenstyle.__file__).resolve().parent / "shipped"  # inside the package, not the checkout
    assert (path / "tokenizer.json").is_file() and (path / "checkpoints").is_dir()


def test_data_dir_honours_an_existing_override(tmp_path, monkeypatch):
    monkeypatch.setenv("SPOKENSTYLE_DATA", str(tmp_path))
    assert runtime.data_dir() == tmp_path


@pytest.mark.parametrize("make", ["missing", "file"])
def test_data_dir_refuses_an_override_that_is_not_a_folder(tmp_path, monkeypatch, make):
    target = tmp_path / "nowhere"
    if make == "file":
        target.write_text("not a folder")
    monkeypatch.setenv("SPOKENSTYLE_DATA", str(target))
    with pytest.raises(FileNotFoundError, match="SPOKENSTYLE_DATA") as info:
        runtime.data_dir()
    assert str(target) in str(info.value)


def test_run_dir_changes_with_the_budget(tmp_path, monkeypatch):
    # a changed budget must not resume another run's checkpoints; the same budget must
    monkeypatch.setenv("SPOKENSTYLE_CACHE", str(tmp_path))
    rt = runtime.setup(seed=0, device="cpu", profile="fast")
    first = rt.run_dir("fusion")
    assert first == rt.run_dir("fusion") and first.parent == tmp_path / "runs"
    assert first.name.startswith("fusion-fast-seed0-")
    assert runtime.setup(seed=1, device="cpu", profile="fast").run_dir("fusion") != first
    row = budgets.BUDGETS["fusion"]
    monkeypatch.setitem(budgets.BUDGETS, "fusion", budgets.Row(fast=row.fast.replace(steps=4), full=row.full))
    assert rt.run_dir("fusion") != first


@pytest.mark.parametrize("seed, error", [(-1, ValueError), (2**63, ValueError), (None, TypeError), (True, TypeError),
                                         (3.0, TypeError), ("7", TypeError)])
def test_check_seed_names_the_range(seed, error):
    with pytest.raises(error, match=r"seed must be an int from 0 to 2\*\*63 - 1"):
        runtime.check_seed(seed)
    with pytest.raises(error, match="from 0 to"):  # was "Overflow when unpacking long long" at 2**63
        runtime.seed_everything(seed)
    assert runtime.check_seed(2**63 - 1) == runtime.MAX_SEED
