"""Multimodal fusion (chapter 9): a sentence drawn and typeset, retrieval scoring and accuracy, the round trip."""

import pytest
import torch
from PIL import Image

from spokenstyle.applications import multimodal as M
from spokenstyle.data import STYLES, sample_scenes, sentence_slots
from spokenstyle.data.scenes import N_SLOT_CLASSES
from spokenstyle.models.fusion import FusionConfig, FusionGenerator
from spokenstyle.models.judge import JudgeConfig, SceneJudge
from spokenstyle.pipeline import SpokenStylePipeline


@pytest.fixture(scope="module")
def small_F():
    torch.manual_seed(0)
    return FusionGenerator(FusionConfig(text_dim=8, content_dim=8, style_dim=8, g_width=4, d_width=4)).eval()


@pytest.mark.parametrize("text", ["a shiny big red ball behind the tree", "", "🚀🚀🚀", "left of it above",
                                  "a ball above a box" * 50])
def test_any_sentence_is_drawn_and_typeset(small_F, text):
    d = M.draw_sentence(small_F, text, "neon", seed=1)
    assert d.fused.shape == (3, 64, 64) and 0 <= d.fused.min() and d.fused.max() <= 1
    assert isinstance(d.picture, Image.Image) and d.picture.width >= 64
    assert d.words == (d.understanding.sentence or M.NOTHING) and d.style == "neon"
    assert d.reference.shape == (3, 64, 64)


def test_drawing_is_deterministic_and_follows_the_reading(small_F):
    a = M.draw_sentence(small_F, "whoa, a big red ball right next to a tiny blue box!", "flat", seed=3)
    b = M.draw_sentence(small_F, "whoa, a big red ball right next to a tiny blue box!", "flat", seed=3)
    assert torch.equal(a.fused, b.fused)
    assert a.words == "There is a large red circle next to a small blue square."


def test_style_reference_is_a_held_out_scene_in_the_style():
    for style in STYLES:
        ref = M.style_reference(style, seed=2)
        assert ref.shape == (1, 3, 64, 64)
    with pytest.raises(ValueError, match="style must be one of"):
        M.style_reference("oil")
    with pytest.raises(TypeError):
        M.draw_sentence("F", "a red ball", "flat")


def test_retrieval_scores_by_hand():
    """Two colours' worth of slots: picture 0 reads 'red slot 3', picture 1 reads 'red slot 5'."""
    log_probs = torch.full((2, 6, N_SLOT_CLASSES), -10.0)
    log_probs[:, :, 0] = 0.0  # every other colour: absent
    log_probs[0, 0, 0], log_probs[0, 0, 3] = -10.0, 0.0
    log_probs[1, 0, 0], log_probs[1, 0, 5] = -10.0, 0.0
    query = torch.zeros(3, 6, dtype=torch.int64)
    query[0, 0], query[1, 0] = 3, 5
    query[2] = -1  # unreadable
    scores = M.retrieval_scores(query, log_probs)
    assert scores.tolist() == [[0.0, -10.0], [-10.0, 0.0], [0.0, 0.0]]


def test_retrieval_accuracy_is_one_when_perfect_and_chance_when_blind():
    Q = 30
    perfect = torch.eye(Q) * 5.0
    truth = torch.arange(Q)
    for n, r in M.retrieval_accuracy(perfect, truth, trials=200).items():
        assert r["top1"] == 1.0 and r["chance"] == 1.0 / n
    blind = torch.zeros(Q, Q)  # every candidate ties: the fair coin gives exactly 1/N per trial
    for n, r in M.retrieval_accuracy(blind, truth, (2, 5, 10), trials=100).items():
        assert r["top1"] == pytest.approx(1.0 / n)
    anti = -torch.eye(Q)  # the true picture always scores lowest
    assert all(r["top1"] == 0.0 for r in M.retrieval_accuracy(anti, truth, trials=50).values())


@pytest.mark.parametrize("kwargs, message", [
    (dict(ns=(1,)), "from 2 to the number of pictures"),
    (dict(ns=(31,)), "from 2 to the number of pictures"),
    (dict(trials=0), "trials must be a positive int"),
])
def test_retrieval_accuracy_refuses_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        M.retrieval_accuracy(torch.zeros(30, 30), torch.arange(30), **kwargs)


def test_slot_log_probs_are_normalised():
    judge = SceneJudge(JudgeConfig(width=4)).eval()
    lp = M.slot_log_probs(judge, torch.rand(5, 3, 64, 64), batch_size=2)
    assert lp.shape == (5, 6, N_SLOT_CLASSES) and torch.allclose(lp.exp().sum(-1), torch.ones(5, 6), atol=1e-5)
    with pytest.raises(ValueError, match="B, 3, H, W"):
        M.slot_log_probs(judge, torch.rand(3, 64, 64))


def test_round_trip_with_the_shipped_models():
    pipe = SpokenStylePipeline.from_pretrained("cpu")
    trip = M.round_trip(pipe, 6)
    assert set(trip.survival) == {"source (judge)", "sentence (parser)", "final picture (judge)", "shuffled (floor)"}
    for row in trip.survival.values():
        assert all(0.0 <= v <= 1.0 for v in row.values())
    assert trip.truth.shape == (6, 6) and len(trip.output) == 6
    assert trip.truth.tolist() == sample_scenes(torch.arange(6) + 1_000_060_000).colour_slots().tolist()
    assert M.readable_share(trip.output.sentences) == float((sentence_slots(trip.output.sentences) >= 0).all(1).float().mean())
    with pytest.raises(ValueError, match="n must be an int >= 2"):
        M.round_trip(pipe, 1)
