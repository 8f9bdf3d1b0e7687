"""spokenstyle.augment: DiffAugment's transformations and ADA's adaptive probability."""

from __future__ import annotations

import pytest
import torch

from spokenstyle import augment as A


def _batch(n: int = 6, side: int = 16) -> torch.Tensor:
    torch.manual_seed(0)
    return torch.rand(n, 3, side, side) * 2 - 1  # tanh's range, as D sees pictures


def test_translation_is_a_whole_pixel_shift_with_zeros_coming_in():
    x = _batch()
    torch.manual_seed(1)
    out = A.translation(x, ratio=0.125)
    for i in range(x.shape[0]):  # each picture is its own shift of the input, within ±2 px at 16 px
        matches = []
        for dy in range(-2, 3):
            for dx in range(-2, 3):
                shifted = torch.zeros_like(x[i])
                src = x[i][:, max(0, -dy): 16 - max(0, dy), max(0, -dx): 16 - max(0, dx)]
                shifted[:, max(0, dy): 16 - max(0, -dy), max(0, dx): 16 - max(0, -dx)] = src
                matches.append(torch.equal(shifted, out[i]))
        assert sum(matches) == 1, i


def test_cutout_zeroes_one_square_and_keeps_the_rest():
    x = _batch(side=32) + 3.0  # no zero anywhere in the input
    torch.manual_seed(2)
    out = A.cutout(x, ratio=0.5)
    for i in range(x.shape[0]):
        hole = (out[i] == 0).all(0)  # (H, W)
        assert torch.equal(out[i][:, ~hole], x[i][:, ~hole])
        rows, cols = hole.any(1).nonzero().flatten(), hole.any(0).nonzero().flatten()
        assert hole.sum() == len(rows) * len(cols) and 0 < len(rows) <= 16 and 0 < len(cols) <= 16  # one square


@pytest.mark.parametrize("policy", ["translation", "cutout", "color", "translation,cutout,color"])
def test_gradients_flow_through_every_transformation(policy):
    x = _batch().requires_grad_(True)
    torch.manual_seed(3)
    out = A.augment(x, policy)
    (out * torch.randn_like(out)).sum().backward()
    assert out.shape == x.shape and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


@pytest.mark.parametrize("policy", ["translation", "cutout", "color"])
def test_probability_zero_is_the_identity_and_one_changes_every_picture(policy):
    x = _batch()
    assert torch.equal(A.augment(x, policy, p=0.0), x)
    torch.manual_seed(4)
    changed = (A.augment(x, policy, p=1.0) != x).flatten(1).any(1)
    assert changed.float().mean() >= 0.8  # a translation may draw (0, 0) now and then


def test_bad_policies_and_inputs_are_named():
    with pytest.raises(ValueError, match="unknown augmentation 'rotate'"):
        A.augment(_batch(), "translation,rotate")
    with pytest.raises(ValueError, match="each transformation once"):
        A.parse_policy("color,color")
    with pytest.raises(ValueError, match="probability in \\[0, 1\\]"):
        A.augment(_batch(), "color", p=1.5)
    with pytest.raises(ValueError, match="float \\(B, C, H, W\\)"):
        A.translation(torch.zeros(3, 8, 8))
    assert A.parse_policy("") == () and torch.equal(A.augment(_batch(), ""), _batch())


def test_ada_raises_p_while_d_is_sure_of_the_reals_and_lowers_it_after():
    ada = A.AdaptiveAugment("translation", target=0.6, interval=2, speed=1000)
    for _ in range(4):  # D calls every real picture real: r = 1 > 0.6, p grows 2 x 64 / 1000 per adjustment
        ada.update(torch.ones(64))
    assert float(ada.p) == pytest.approx(2 * 128 / 1000)
    for _ in range(2):  # r = 0 < 0.6: p falls by as much
        ada.update(torch.tensor([1.0, -1.0]).repeat(32))
    assert float(ada.p) == pytest.approx(128 / 1000)
    for _ in range(20):
        ada.update(-torch.ones(64))
    assert float(ada.p) == 0.0  # clamped
    state = ada.state_dict()  # p and the running counts travel with a training checkpoint
    assert set(state) == {"p", "signs", "count", "steps"}
    other = A.AdaptiveAugment("translation", interval=2, speed=1000)
    other.load_state_dict(state)
    assert float(other.p) == float(ada.p) and int(other.steps) == int(ada.steps)
    with pytest.raises(ValueError, match="at least one transformation"):
        A.AdaptiveAugment("")
