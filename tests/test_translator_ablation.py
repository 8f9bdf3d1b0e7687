"""benchmarks/translator_ablation.py: the run folders it reads and the stage-2 commands it prints."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

import translator_ablation as ta  # noqa: E402

from spokenstyle.models.cyclegan import CycleGANConfig, cyclegan  # noqa: E402
from spokenstyle.recipes import cyclegan as rcg  # noqa: E402


def _save(out: Path, variant: str, seed: int, content: float, style: float = 1.0) -> None:
    """A finished run folder as ``train`` leaves it: tiny generators, the validation scores in the manifest."""
    model = cyclegan(config=CycleGANConfig(resolution=16, g_width=4, n_blocks=1, d_width=4))
    scores = {"AB_content_accuracy": content, "BA_content_accuracy": content + 0.05,
              "AB_style_accuracy": style, "BA_style_accuracy": style, "AB_fd": 10.0, "BA_fd": 12.0,
              "variant": variant, "seed": seed, "steps": 3000, "train_seconds": 1.0, "torch_threads": 1}
    model.save_pretrained(out / f"{variant}_s{seed}", metrics=scores, command="python benchmarks/translator_ablation.py train",
                          extra={"fields": rcg.ABLATION_VARIANTS[variant]})


def test_commands_are_stage_one_and_the_shipped_second_seed(tmp_path):
    lines = ta.commands(tmp_path, 3000)
    assert len(lines) == len(rcg.ABLATION_VARIANTS) + 1
    assert all("--seed 0" in line for line in lines[:-1]) and "--variant shipped --seed 1" in lines[-1]
    assert all(line.startswith("OMP_NUM_THREADS=1 python benchmarks/translator_ablation.py train") for line in lines)


def test_pending_waits_for_stage_one_then_names_the_finalists(tmp_path, capsys):
    args = argparse.Namespace(runs=str(tmp_path), steps=3000)
    (tmp_path / "patch_34_s0" / "run").mkdir(parents=True)  # still training: no manifest yet, so it does not count
    contents = dict(zip(rcg.ABLATION_VARIANTS, (0.5, 0.6, 0.55, 0.7, 0.2, 0.52, 0.58, 0.65)))
    for variant, content in list(contents.items())[:-1]:
        _save(tmp_path, variant, 0, content, style=0.5 if variant == "nce_beside" else 1.0)
    with pytest.raises(SystemExit) as stop:
        ta.pending(args)
    assert stop.value.code == 3 and "patch_34" in capsys.readouterr().err
    _save(tmp_path, "patch_34", 0, contents["patch_34"])
    ta.pending(args)
    out = capsys.readouterr()
    # nce_beside has the most content but lost its style: identity_0 (0.6) and patch_34 (0.65) go on
    assert "['patch_34', 'identity_0']" in out.err
    lines = out.out.strip().splitlines()
    assert [line.split("--variant ")[1].split(" --steps")[0] for line in lines] == [
        "shipped --seed 1", "patch_34 --seed 1", "identity_0 --seed 1"]
    runs = ta.read_runs(tmp_path)
    assert len(runs) == len(rcg.ABLATION_VARIANTS) and {r["folder"] for r in runs} >= {"patch_34_s0", "shipped_s0"}
    assert runs[0]["validation"]["BA_content_accuracy"] == pytest.approx(runs[0]["validation"]["AB_content_accuracy"] + 0.05)


def test_merge_keeps_the_record_and_lets_a_new_run_replace_its_twin(tmp_path):
    _save(tmp_path, "skip", 1, 0.4)
    _save(tmp_path, "shipped", 0, 0.9)
    new = ta.read_runs(tmp_path)
    recorded = [{"variant": "shipped", "seed": 0, "steps": 3000, "validation": {"AB_content_accuracy": 0.1}},
                {"variant": "skip", "seed": 0, "steps": 3000, "validation": {"AB_content_accuracy": 0.3}}]
    merged = ta.merge_runs(recorded, new)
    assert sorted((r["variant"], r["seed"]) for r in merged) == [("shipped", 0), ("skip", 0), ("skip", 1)]
    shipped, = [r for r in merged if r["variant"] == "shipped"]
    assert shipped["validation"]["AB_content_accuracy"] == pytest.approx(0.9)  # the new run, not the record's


def test_merge_refuses_runs_of_another_length(tmp_path):
    _save(tmp_path, "skip", 1, 0.4)  # 3,000 steps
    recorded = [{"variant": "shipped", "seed": 0, "steps": 12000, "validation": {"AB_content_accuracy": 0.1}}]
    with pytest.raises(ValueError, match="different numbers of steps.*12000.*shipped seed 0"):
        ta.merge_runs(recorded, ta.read_runs(tmp_path))
