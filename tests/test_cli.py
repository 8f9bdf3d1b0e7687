"""The spokenstyle command line."""

from __future__ import annotations

import inspect
import json
import subprocess
import sys

from spokenstyle import cli, recipes


def test_info_prints_runtime_and_budgets(capsys):
    assert cli.main(["info", "--device", "cpu", "--profile", "fast"]) == 0
    out = capsys.readouterr().out
    assert "profile=fast" in out and '"demo"' in out


def test_unknown_model_is_a_clear_error(capsys, tmp_path):
    assert cli.main(["train", "nope", "--device", "cpu", "--out", str(tmp_path / "nope")]) == 2
    err = capsys.readouterr().err
    assert "unknown model 'nope'" in err and "'fusion'" in err  # names the known ones
    assert not (tmp_path / "nope").exists()


def test_bad_device_is_reported_not_raised(capsys):
    assert cli.main(["info", "--device", "gpu"]) == 2
    assert "unknown device 'gpu'" in capsys.readouterr().err


def test_every_recipe_resolves_to_a_function():
    assert recipes.RECIPES  # name -> function, the table `spokenstyle train MODEL` reads
    for name, recipe in recipes.RECIPES.items():
        assert callable(recipe), name
        params = inspect.signature(recipe).parameters  # train(out_dir, *, runtime) -> metrics
        assert "runtime" in params and params["runtime"].kind is inspect.Parameter.KEYWORD_ONLY, name


def test_module_entry_point_runs():
    proc = subprocess.run([sys.executable, "-m", "spokenstyle", "checkpoints"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def test_train_set_overrides_a_budget_entry_and_is_recorded(tmp_path, monkeypatch):
    monkeypatch.setenv("SPOKENSTYLE_PROGRESS", "0")
    monkeypatch.setattr(sys, "argv", ["spokenstyle", "train", "judge", "--profile", "fast",
                                      "--set", "judge.steps=3", "judge.eval=4", "--out", str(tmp_path)])
    assert cli.main(sys.argv[1:]) == 0
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert manifest["metrics"]["steps"] == 3 and manifest["metrics"]["eval_per_style"] == 4
    assert "--set judge.steps=3 judge.eval=4" in manifest["command"]


def test_train_set_typo_is_a_clear_error(capsys, tmp_path):
    assert cli.main(["train", "judge", "--device", "cpu", "--set", "judge.step=3", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "has no field 'step'" in err and "'steps'" in err
    assert not (tmp_path / "manifest.json").exists()
