"""benchmarks/dcgan_selection.py: the rule that picks the shipped conditional DCGAN, and the rows it reads."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

import dcgan_selection as sel  # noqa: E402


def test_the_confident_runs_come_first_then_the_lowest_fd():
    runs = {"a": {"val_fd": 20.0, "val_confident": 0.5}, "b": {"val_fd": 30.0, "val_confident": 0.85},
            "c": {"val_fd": 25.0, "val_confident": 0.81}}
    assert sel.choose(runs) == "c"  # a has the lowest FD but is not confident enough
    assert sel.choose({k: v for k, v in runs.items() if k == "a"}) == "a"
    assert sel.choose({"a": runs["a"], "d": {"val_fd": 19.0, "val_confident": 0.1}}) == "d"  # none sure: lowest FD


def test_a_candidate_keeps_validation_and_test_apart():
    metrics = {"val_fd": 27.1, "val_confident": 0.56, **{k: 1.0 for k in sel.TEST_KEYS}}
    row = sel.candidate({"command": "spokenstyle train dcgan", "metrics": metrics})
    assert row["val"] == {"val_fd": 27.1, "val_confident": 0.56} and set(row["test"]) == set(sel.TEST_KEYS)
    with pytest.raises(ValueError, match="val_fd"):
        sel.candidate({"command": "x", "metrics": {k: 1.0 for k in sel.TEST_KEYS}})


def test_the_recorded_runs_are_candidates():
    record = json.loads((ROOT / "spokenstyle/shipped/benchmarks/dcgan-runs-cpu.json").read_text())
    rows = {k: sel.candidate(m) for k, m in record["runs"].items()}
    assert {"cond", "cond_translation", "cond_translation_g64", "cond_translation_g64_48k"} <= set(rows)


def test_the_truncation_benchmark_scores_both_batchnorm_modes(tmp_path):
    import dcgan_truncation as trunc

    out = tmp_path / "t.json"
    assert trunc.main(["--psi", "0.5", "--n", "128", "--batch", "64", "--json", str(out)]) == 0
    report = json.loads(out.read_text())
    assert [(r["truncation"], r["batchnorm"]) for r in report["rows"]] == [
        (None, "running"), (None, "batch"), (0.5, "running"), (0.5, "batch")]
    assert report["weights"] == "dcgan_conditional" and "spokenstyle train dcgan" in report["made_by"]
    rows = {(r["truncation"], r["batchnorm"]): r for r in report["rows"]}
    assert rows[(0.5, "running")]["val_fd"] != rows[(None, "running")]["val_fd"]  # truncation changed the samples
    with pytest.raises(SystemExit):
        trunc.main(["--psi", "0", "--json", str(out)])
