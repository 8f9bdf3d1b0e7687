"""spokenstyle.runtime: device and profile choice, budgets, seeding, progress, reports."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest
import torch

from spokenstyle import runtime


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


def test_every_budget_has_both_profiles_with_the_same_keys():
    for name, row in runtime.BUDGETS.items():
        assert set(row) == set(runtime.PROFILES), name
        assert set(row["fast"]) == set(row["full"]), f"{name}: fast and full must set the same sizes"


def test_budget_follows_profile_and_is_a_copy():
    fast = runtime.budget("demo", "fast")
    full = runtime.budget("demo", "full")
    assert fast["steps"] < full["steps"]
    fast["steps"] = -1
    assert runtime.budget("demo", "fast")["steps"] > 0
    with pytest.raises(KeyError, match="no budget named 'nope'"):
        runtime.budget("nope")


def test_seed_everything_makes_every_generator_repeat():
    def draw():
        return random.random(), np.random.rand(), torch.rand(3)

    runtime.seed_everything(123)
    a = draw()
    runtime.seed_everything(123)
    b = draw()
    assert a[0] == b[0] and a[1] == b[1] and torch.equal(a[2], b[2])
    with pytest.raises(ValueError, match="non-negative int"):
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


def test_data_dir_finds_the_checkout_and_honours_the_override(tmp_path, monkeypatch):
    monkeypatch.delenv("SPOKENSTYLE_DATA", raising=False)
    assert (runtime.data_dir() / "checkpoints").is_dir()
    monkeypatch.setenv("SPOKENSTYLE_DATA", str(tmp_path))
    assert runtime.data_dir() == tmp_path


def test_run_dir_changes_with_the_budget(tmp_path, monkeypatch):
    # a changed budget must not resume another run's checkpoints; the same budget must
    monkeypatch.setenv("SPOKENSTYLE_CACHE", str(tmp_path))
    rt = runtime.setup(seed=0, device="cpu", profile="fast")
    first = rt.run_dir("fusion")
    assert first == rt.run_dir("fusion") and first.parent == tmp_path / "runs"
    assert first.name.startswith("fusion-fast-seed0-")
    assert runtime.setup(seed=1, device="cpu", profile="fast").run_dir("fusion") != first
    monkeypatch.setitem(runtime.BUDGETS["fusion"], "fast", {**runtime.BUDGETS["fusion"]["fast"], "steps": 4})
    assert rt.run_dir("fusion") != first


def test_parse_overrides_reads_json_values_per_row():
    got = runtime.parse_overrides(["dcgan_all_styles.width=64", "dcgan_all_styles.lr=1e-4",
                                   "dcgan_all_styles.betas=[0.5, 0.99]", "cyclegan_flat_comic.steps=30000",
                                   "dcgan_all_styles.style=flat"])
    assert got == {"dcgan_all_styles": {"width": 64, "lr": 1e-4, "betas": [0.5, 0.99], "style": "flat"},
                   "cyclegan_flat_comic": {"steps": 30000}}
    assert runtime.parse_overrides([]) == {}
    # an int may stand for a float entry, and null for an optional one
    assert runtime.parse_overrides(["dcgan_all_styles.lr=1", "dcgan_all_styles.style=null"]) == \
        {"dcgan_all_styles": {"lr": 1, "style": None}}


@pytest.mark.parametrize("item, message", [
    ("dcgan_all_styles.width", "ROW.KEY=VALUE"),
    ("width=64", "ROW.KEY=VALUE"),
    ("nope.width=64", "no budget row 'nope'"),
    ("dcgan_all_styles.widht=64", "has no entry 'widht'.*'width'"),
    ("dcgan_all_styles.width=wide", "width is a int"),
    ("dcgan_all_styles.width=64.5", "width is a int"),
    ("dcgan_all_styles.spectral_norm=1", "spectral_norm is a bool"),
    ("dcgan_all_styles.steps=true", "steps is a int"),
])
def test_parse_overrides_refuses_what_it_cannot_apply(item, message):
    with pytest.raises(ValueError, match=message):
        runtime.parse_overrides([item])


def test_overrides_change_only_their_row_and_the_run_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("SPOKENSTYLE_CACHE", str(tmp_path))
    plain = runtime.setup(seed=0, device="cpu", profile="full", verbose=False)
    changed = runtime.setup(seed=0, device="cpu", profile="full", verbose=False,
                            overrides=runtime.parse_overrides(["cyclegan_flat_comic.g_width=64"]))
    assert changed.budget("cyclegan_flat_comic") == {**plain.budget("cyclegan_flat_comic"), "g_width": 64}
    assert changed.budget("cyclegan_flat_pixel") == plain.budget("cyclegan_flat_pixel")
    assert runtime.BUDGETS["cyclegan_flat_comic"]["full"]["g_width"] == 32  # the table itself is untouched
    assert changed.run_dir("cyclegan_flat_comic") != plain.run_dir("cyclegan_flat_comic")
    assert changed.run_dir("cyclegan_flat_pixel") == plain.run_dir("cyclegan_flat_pixel")
    assert "overrides" in str(changed) and "overrides" not in str(plain)
