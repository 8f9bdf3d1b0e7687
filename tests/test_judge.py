"""The scene judge: output shapes, input checks, the loss, and a two-step training run."""

import pytest
import torch

from spokenstyle.data import scene_batches
from spokenstyle.evaluation import judge_report
from spokenstyle.models.judge import JudgeConfig, SceneJudge
from spokenstyle.recipes.judge import judge_loss, train_judge


@pytest.mark.parametrize("size", [32, 64, 96])
def test_outputs_for_any_input_size(size):
    judge = SceneJudge(JudgeConfig(width=8)).eval()
    style, slots, cmap = judge(torch.rand(3, 3, size, size), return_map=True)
    assert style.shape == (3, 6) and slots.shape == (3, 6, 13) and cmap.shape == (3, 7, 16, 16)


def test_bad_input():
    with pytest.raises(ValueError, match="B, 3, H, W"):
        SceneJudge(JudgeConfig(width=8))(torch.rand(3, 64, 64))


def test_short_training_run_and_report():
    torch.manual_seed(0)
    judge, history = train_judge(steps=2, batch_size=4, config=JudgeConfig(width=8))
    assert len(history["loss"]) == 2
    report = judge_report(judge, n_per_style=4, batch_size=4)
    assert set(report) == {"flat", "sketch", "watercolour", "neon", "pixel", "comic"}
    for r in report.values():
        assert all(0.0 <= v <= 1.0 for v in r.values())
    b = scene_batches(4, "flat", 64)(0)
    loss = judge_loss(*judge(b["image"]), b["style"], b["slots"])
    assert torch.isfinite(loss)
