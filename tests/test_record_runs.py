"""tools/record_runs.py: the record of runs whose weights are not shipped."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))

import record_runs  # noqa: E402

from spokenstyle import checkpoints  # noqa: E402


def weights_of(directory: Path) -> Path:
    """The weights file a checkpoint's manifest names (new saves name it by its sha256)."""
    (name,) = checkpoints.read_manifest(directory)["files"]
    return directory / name


def _run(tmp_path: Path, name: str, accuracy: float) -> Path:
    directory = tmp_path / name
    checkpoints.save_pretrained(nn.Linear(2, 2), directory, config={"in_features": 2}, metrics={"accuracy": accuracy},
                                command=f"spokenstyle train {name}", extra={"history": {"loss": [3.0, 2.0]}, "pair": ["a", "b"]})
    return directory


def test_records_each_manifest_without_its_history(tmp_path):
    a, b = _run(tmp_path, "shipped", 0.9), _run(tmp_path, "ablation", 0.7)
    out = tmp_path / "reports" / "runs.json"
    assert record_runs.main([f"with={a}", f"without={b}", "--out", str(out), "--what", "one switch",
                             "--reproduce", "without=spokenstyle train ablation --set x.y=1"]) == 0
    report = json.loads(out.read_text())
    assert report["what"] == "one switch" and list(report["runs"]) == ["with", "without"]
    run = report["runs"]["without"]
    assert run["metrics"] == {"accuracy": 0.7} and run["command"] == "spokenstyle train ablation"
    assert "history" not in run["extra"] and run["extra"]["pair"] == ["a", "b"]  # the history is left out, the rest kept
    weights = weights_of(b)
    assert run["files"] == checkpoints.read_manifest(b)["files"]
    assert run["files"][weights.name]["sha256"] == checkpoints.sha256_file(weights)
    assert run["reproduce"] == "spokenstyle train ablation --set x.y=1" and "reproduce" not in report["runs"]["with"]


def test_refuses_bad_arguments_and_mismatched_weights(tmp_path, capsys):
    a = _run(tmp_path, "shipped", 0.9)
    out = tmp_path / "runs.json"
    with pytest.raises(SystemExit):
        record_runs.main([str(a), "--out", str(out), "--what", "x"])  # no LABEL=
    assert "expected LABEL=DIR" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        record_runs.main([f"x={a}", f"x={a}", "--out", str(out), "--what", "x"])
    assert "unique" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        record_runs.main([f"x={tmp_path / 'missing'}", "--out", str(out), "--what", "x"])
    assert "not a checkpoint folder" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        record_runs.main([f"x={a}", "--out", str(out), "--what", "x", "--reproduce", "y=cmd"])
    assert "not recorded" in capsys.readouterr().err
    weights_of(a).write_bytes(b"not the weights")
    with pytest.raises(checkpoints.CheckpointError):
        record_runs.main([f"x={a}", "--out", str(out), "--what", "x"])
    assert not out.exists()


def test_append_keeps_the_recorded_runs_and_refuses_a_recorded_label(tmp_path, capsys):
    a, b = _run(tmp_path, "first", 0.9), _run(tmp_path, "second", 0.8)
    out = tmp_path / "runs.json"
    assert record_runs.main([f"first={a}", "--out", str(out), "--what", "one"]) == 0
    weights_of(a).unlink()  # the first run's folder is gone; its record stays
    assert record_runs.main(["--append", f"second={b}", "--out", str(out), "--what", "two"]) == 0
    report = json.loads(out.read_text())
    assert report["what"] == "two" and sorted(report["runs"]) == ["first", "second"]
    assert report["runs"]["first"]["metrics"] == {"accuracy": 0.9} and report["runs"]["second"]["metrics"] == {"accuracy": 0.8}
    before = out.read_text()
    with pytest.raises(SystemExit):
        record_runs.main(["--append", f"second={b}", "--out", str(out), "--what", "again"])
    assert "already recorded" in capsys.readouterr().err and out.read_text() == before
    with pytest.raises(SystemExit):
        record_runs.main(["--append", f"x={b}", "--out", str(tmp_path / "none.json"), "--what", "x"])
    assert "does not exist" in capsys.readouterr().err
    (tmp_path / "bad.json").write_text("[1, 2]")
    with pytest.raises(SystemExit):
        record_runs.main(["--append", f"x={b}", "--out", str(tmp_path / "bad.json"), "--what", "x"])
    assert "not a runs report" in capsys.readouterr().err
