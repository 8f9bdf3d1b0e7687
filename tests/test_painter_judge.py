"""The painter judge (chapter 9): shapes, input checks, balanced data, the scorecard, a short run, save/load."""

import pytest
import torch

from spokenstyle import runtime
from spokenstyle.data.photos import ALL_FILTERS, PhotoPatches, painterly
from spokenstyle.models.painter_judge import MANNERS, PainterJudge, PainterJudgeConfig, painter_judge
from spokenstyle.recipes import RECIPES
from spokenstyle.recipes import painter_judge as recipe


def tiny() -> PainterJudge:
    torch.manual_seed(0)
    return PainterJudge(PainterJudgeConfig(width=4, hidden=8))


@pytest.mark.parametrize("size", [32, 64, 100])
def test_logits_and_probabilities_for_any_size(size):
    judge = tiny().eval()
    assert judge(torch.rand(3, 3, size, size)).shape == (3, len(MANNERS))
    probs = judge.read(torch.rand(5, 3, size, size), batch_size=2)
    assert probs.shape == (5, len(MANNERS)) and torch.allclose(probs.sum(-1), torch.ones(5))
    assert MANNERS == ("photo",) + tuple(ALL_FILTERS) and judge.index("woodblock") == MANNERS.index("woodblock")


@pytest.mark.parametrize("call, error, message", [
    (lambda: tiny()(torch.rand(3, 64, 64)), ValueError, "B, 3, H, W"),
    (lambda: tiny().index("cubist"), ValueError, "unknown manner 'cubist'"),
    (lambda: PainterJudgeConfig(width=0), ValueError, "width must be a positive int"),
    (lambda: PainterJudgeConfig(classes=("photo",)), ValueError, "at least two distinct"),
    (lambda: PainterJudgeConfig(resolution=8), ValueError, "at least 16 px"),
    (lambda: PainterJudge("big"), TypeError, "PainterJudgeConfig"),
    (lambda: painter_judge(weights="painter_judge", config=PainterJudgeConfig()), ValueError, "not both"),
])
def test_bad_input_is_named(call, error, message):
    with pytest.raises(error, match=message):
        call()


def test_batches_hold_every_manner_and_repeat():
    batches = recipe.manner_batches(14, classes=MANNERS, size=32, seed=3)
    a, b = batches(5), batches(5)
    assert torch.equal(a["image"], b["image"]) and torch.equal(a["label"], b["label"])
    assert torch.bincount(a["label"], minlength=len(MANNERS)).tolist() == [2] * len(MANNERS)
    photo = a["label"] == 0
    painted = a["label"] == MANNERS.index("pencil")
    assert photo.any() and painted.any()
    assert not torch.equal(batches(6)["image"], a["image"])


def test_manner_images_are_the_filters_output():
    photos = PhotoPatches("test", 32, length=4).batch(range(4))["image"]
    labels = torch.tensor([0, MANNERS.index("oil"), MANNERS.index("woodblock"), 0])
    out = recipe.manner_images(photos, labels, MANNERS)
    assert torch.equal(out[0], photos[0]) and torch.equal(out[3], photos[3])
    assert torch.allclose(out[2], painterly(photos[2:3], "woodblock")[0])
    with pytest.raises(ValueError, match="one class id per photo"):
        recipe.manner_images(photos, labels[:3], MANNERS)


def test_scorecard_counts_every_test_patch():
    judge = tiny()
    report = recipe.score_painter_judge(judge, 3, size=32)
    confusion = torch.tensor(report["confusion"])
    assert confusion.shape == (len(MANNERS), len(MANNERS)) and confusion.sum(1).tolist() == [3] * len(MANNERS)
    assert report["accuracy"] == pytest.approx(float(confusion.diag().sum()) / confusion.sum())
    assert set(report["per_class"]) == set(MANNERS)
    images, labels = recipe.manner_test_set(2, classes=MANNERS, size=32)
    assert images.shape == (2 * len(MANNERS), 3, 32, 32) and labels.tolist() == list(range(len(MANNERS))) * 2


def test_short_training_run_lowers_the_loss_and_round_trips(tmp_path):
    judge, history = recipe.train_painter_judge(steps=6, batch_size=14, size=32, config=PainterJudgeConfig(width=4))
    assert len(history["loss"]) == 6 and all(torch.isfinite(torch.tensor(history["loss"])))
    judge.save_pretrained(tmp_path / "pj", metrics={"accuracy": 0.5})
    again = PainterJudge.from_pretrained(tmp_path / "pj")
    x = torch.rand(2, 3, 64, 64)
    assert torch.allclose(again.read(x), judge.read(x), atol=1e-6)
    assert again.config.classes == MANNERS


def test_the_recipe_is_registered_and_writes_a_checkpoint(tmp_path, monkeypatch):
    assert RECIPES["painter_judge"] is recipe.train
    rt = runtime.setup(seed=0, device="cpu", profile="fast")
    metrics = recipe.train(tmp_path / "out", runtime=rt)
    assert 0.0 <= metrics["accuracy"] <= 1.0 and metrics["steps"] == rt.budget("painter_judge").steps
    assert PainterJudge.from_pretrained(tmp_path / "out").config.width == rt.budget("painter_judge").width


def test_the_shipped_judge_reads_held_out_manners():
    """The shipped judge's manifest and a fresh reading agree on the held-out patches."""
    judge = painter_judge()
    manifest = judge.manifest["metrics"]
    assert manifest["accuracy"] >= 0.8 and "spokenstyle train painter_judge" in judge.manifest["command"]
    report = recipe.score_painter_judge(judge, 10)
    assert report["accuracy"] >= 0.7
