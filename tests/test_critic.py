"""The text classifiers (critic T, register classifier, attribute reader) and the reader's targets."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from spokenstyle import checkpoints
from spokenstyle.data.content import N_PAIR_CLASSES, PAIRS, content_targets, geometric_pairs
from spokenstyle.data.scenes import N_SLOT_CLASSES, Obj, SceneSpec, sample_scenes
from spokenstyle.models.critic import (READER_OUTPUTS, TextClassifier, TextClassifierConfig, reader_predict,
                                       text_classifier)
from spokenstyle.recipes.captioning import grounding_loss, reader_loss

TINY = dict(vocab_size=20, max_len=12, d_model=32, n_layer=1, n_head=2, dropout=0.0)


@pytest.mark.parametrize("kind,conv_kernel", [("critic", 0), ("critic", 3), ("reader", 5)])
def test_ids_and_one_hot_give_the_same_logits_and_padding_is_ignored(kind, conv_kernel):
    torch.manual_seed(0)
    model = text_classifier(kind=kind, conv_kernel=conv_kernel, **TINY).eval()
    ids = torch.tensor([[5, 6, 7, 2, 0, 0], [8, 9, 2, 0, 0, 0]])
    one_hot = F.one_hot(ids, 20).float()
    assert torch.allclose(model(ids), model(one_hot), atol=1e-6)
    longer = torch.cat([ids, torch.zeros(2, 4, dtype=torch.long)], 1)  # more padding
    assert torch.allclose(model(ids), model(longer), atol=1e-5)
    if kind == "critic":
        assert model(ids).shape == (2,) and model.probability(ids).shape == (2,)
    else:
        assert model(ids).shape == (2, READER_OUTPUTS)


def test_gradient_reaches_relaxed_tokens():
    torch.manual_seed(0)
    model = text_classifier(**TINY)
    soft = torch.softmax(torch.randn(3, 5, 20), -1).requires_grad_()
    model(soft).sum().backward()
    assert soft.grad is not None and soft.grad.abs().sum() > 0


def test_inputs_are_validated():
    model = text_classifier(**TINY)
    with pytest.raises(ValueError, match="max_len"):
        model(torch.ones(1, 13, dtype=torch.long))
    with pytest.raises(ValueError, match=r"\(B, L, 20\)"):
        model(torch.rand(1, 4, 7))
    with pytest.raises(ValueError, match="token ids"):
        model(torch.full((1, 3), 25))
    with pytest.raises(ValueError, match="kind"):
        TextClassifierConfig(kind="judge")
    with pytest.raises(ValueError, match="conv_kernel"):
        TextClassifierConfig(conv_kernel=4)
    with pytest.raises(ValueError, match="168 outputs"):
        TextClassifierConfig(kind="reader", n_outputs=3)
    with pytest.raises(ValueError, match="one-logit"):
        text_classifier(kind="reader", **TINY).probability(torch.ones(1, 3, dtype=torch.long))


def test_content_targets_are_order_free_and_complete():
    red = Obj("circle", "red", "large")
    blue = Obj("square", "blue", "small")
    green = Obj("star", "green", "small")
    a = SceneSpec((red, blue, green), ("left of", "above"))
    b = SceneSpec((green, blue, red), ("below", "right of"))  # the same scene told backwards
    c = SceneSpec((red, blue, green), ("right of", "above"))
    slots, pairs = content_targets([a, b, c, None])
    assert torch.equal(slots[0], slots[1]) and torch.equal(pairs[0], pairs[1])
    assert not torch.equal(pairs[0], pairs[2])
    assert (slots[3] == -1).all() and (pairs[3] == -1).all()
    # red (0) is left of blue (4): pair (0, 4) is class 1 "i left of j"; blue above green (3): (3, 4) is 4 "j above i"
    assert pairs[0, PAIRS.index((0, 4))] == 1 and pairs[0, PAIRS.index((3, 4))] == 4
    assert pairs[2, PAIRS.index((0, 4))] == 2
    assert slots[0].tolist() == [2, 0, 0, 9, 3, 0]  # red large circle 1 + 0·2 + 1, green small star 1 + 4·2, blue small square 1 + 1·2
    batch = sample_scenes(range(8))
    s1, p1 = content_targets(batch)
    assert torch.equal(s1, batch.colour_slots())  # the same code as the data layer's judge targets


def test_reader_loss_and_prediction():
    batch = sample_scenes(range(6))
    slots, pairs = content_targets(batch)
    logits = torch.zeros(6, READER_OUTPUTS)
    assert torch.allclose(reader_loss(logits, slots, pairs), torch.tensor(0.5 * 0 + 1.0) * float(
        (6 * torch.log(torch.tensor(13.0)) + 15 * torch.log(torch.tensor(6.0))) / 21), atol=1e-5)
    perfect = torch.full((6, READER_OUTPUTS), -20.0)
    s_view = perfect[:, : 6 * 13].view(6, 6, 13)
    p_view = perfect[:, 6 * 13:].view(6, 15, 6)
    s_view.scatter_(2, slots[..., None], 20.0)
    p_view.scatter_(2, pairs[..., None], 20.0)
    ps, pp = reader_predict(perfect)
    assert torch.equal(ps, slots) and torch.equal(pp, pairs)
    assert reader_loss(perfect, slots, pairs) < 1e-6
    assert reader_loss(logits, slots, pairs, reduction="none").shape == (6,)


def test_save_pretrained_round_trip(tmp_path):
    torch.manual_seed(0)
    model = text_classifier(kind="reader", **TINY).eval()
    ids = torch.tensor([[5, 6, 7, 2, 0]])
    model.save_pretrained(tmp_path / "r", metrics={"accuracy": 1.0})
    loaded = TextClassifier.from_pretrained(tmp_path / "r")
    assert loaded.config.kind == "reader" and loaded.config.n_outputs == READER_OUTPUTS
    assert torch.equal(loaded(ids), model(ids))
    with pytest.raises(checkpoints.CheckpointError):
        TextClassifier.from_pretrained(tmp_path / "missing")


def test_geometric_pairs_agree_with_every_stated_relation():
    batch = sample_scenes(range(300))
    geo = geometric_pairs(batch)
    _, stated = content_targets(batch)
    said = stated > 0
    assert torch.equal(geo[said], stated[said])  # what a scene's caption states is true of its picture
    assert (geo > 0).sum() >= said.sum()  # and the picture often relates a pair its chain does not state
    assert (geo[~(batch.colour_slots() > 0)[:, [i for i, _ in PAIRS]]] == -1).all()  # absent colours: no relation


def test_grounding_loss_allows_unstated_pairs_and_punishes_false_ones():
    batch = sample_scenes([3])
    slots, _ = content_targets(batch)
    truth = torch.full((1, len(PAIRS)), -1)
    truth[0, 0] = 1  # pair (red, orange): "red left of orange" is true

    def reading(pair_class: int) -> torch.Tensor:  # a confident reader that reads the slots right
        s = torch.full((1, 6, N_SLOT_CLASSES), -30.0).scatter_(2, slots[..., None], 30.0)
        p = torch.full((1, len(PAIRS), N_PAIR_CLASSES), -30.0)
        p[..., 0] = 30.0
        p[0, 0] = -30.0
        p[0, 0, pair_class] = 30.0
        return torch.cat([s.flatten(1), p.flatten(1)], 1)

    assert grounding_loss(reading(0), slots, truth) < 1e-6  # unstated: allowed
    assert grounding_loss(reading(1), slots, truth) < 1e-6  # the true relation: allowed
    assert grounding_loss(reading(2), slots, truth) > 1.0  # the opposite relation: false
    assert grounding_loss(reading(1), slots, truth, reduction="none").shape == (1,)
