"""GAN losses against torch's BCE and against their hand formulas, values and gradients."""

import math

import pytest
import torch
import torch.nn.functional as F

from spokenstyle import losses
from spokenstyle.losses import GAN_LOSSES, get_gan_loss

D_LOSSES = [losses.minimax_d_loss, losses.nonsaturating_d_loss, losses.lsgan_d_loss,
            losses.hinge_d_loss, losses.wasserstein_d_loss]
G_LOSSES = [losses.minimax_g_loss, losses.nonsaturating_g_loss, losses.lsgan_g_loss,
            losses.hinge_g_loss, losses.wasserstein_g_loss]


def _logits(seed: int, n: int = 64, scale: float = 3.0) -> torch.Tensor:
    return scale * torch.randn(n, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_minimax_and_nonsaturating_match_bce(seed):
    real, fake = _logits(seed), _logits(seed + 100, n=48)
    bce = F.binary_cross_entropy_with_logits
    expected_d = bce(real, torch.ones_like(real)) + bce(fake, torch.zeros_like(fake))
    torch.testing.assert_close(losses.minimax_d_loss(real, fake), expected_d)
    torch.testing.assert_close(losses.nonsaturating_d_loss(real, fake), expected_d)
    torch.testing.assert_close(losses.nonsaturating_g_loss(fake), bce(fake, torch.ones_like(fake)))
    torch.testing.assert_close(losses.minimax_g_loss(fake), -bce(fake, torch.zeros_like(fake)))


@pytest.mark.parametrize("seed", [0, 1])
def test_hand_formulas(seed):
    real, fake = _logits(seed, scale=1.5), _logits(seed + 7, scale=1.5)
    d_real, d_fake = torch.sigmoid(real), torch.sigmoid(fake)
    # the source's V(D, G) written out with D = sigmoid(logit)
    v = torch.log(d_real).mean() + torch.log(1 - d_fake).mean()
    torch.testing.assert_close(losses.minimax_d_loss(real, fake), -v)
    torch.testing.assert_close(losses.minimax_g_loss(fake), torch.log(1 - d_fake).mean())
    torch.testing.assert_close(losses.nonsaturating_g_loss(fake), -torch.log(d_fake).mean())
    torch.testing.assert_close(losses.lsgan_d_loss(real, fake),
                               0.5 * ((real - 1) ** 2).mean() + 0.5 * (fake ** 2).mean())
    torch.testing.assert_close(losses.lsgan_g_loss(fake), 0.5 * ((fake - 1) ** 2).mean())
    torch.testing.assert_close(losses.hinge_d_loss(real, fake),
                               torch.clamp(1 - real, min=0).mean() + torch.clamp(1 + fake, min=0).mean())
    torch.testing.assert_close(losses.hinge_g_loss(fake), -fake.mean())
    torch.testing.assert_close(losses.wasserstein_d_loss(real, fake), fake.mean() - real.mean())


def test_textbook_values():
    """At D = 1/2 everywhere (logits 0) the minimax D loss is log 4 (V = -log 4, Theorem 1)."""
    zero = torch.zeros(10)
    assert losses.minimax_d_loss(zero, zero).item() == pytest.approx(math.log(4))
    assert losses.nonsaturating_g_loss(zero).item() == pytest.approx(math.log(2))
    assert losses.hinge_d_loss(torch.full((5,), 2.0), torch.full((5,), -3.0)).item() == 0.0
    assert losses.lsgan_d_loss(torch.ones(3), torch.zeros(3)).item() == 0.0


@pytest.mark.parametrize("fn", D_LOSSES + G_LOSSES, ids=lambda f: f.__name__)
def test_extreme_logits_are_finite(fn):
    big = torch.tensor([-200.0, -30.0, 0.0, 30.0, 200.0], requires_grad=True)
    out = fn(big, big) if fn in D_LOSSES else fn(big)
    assert out.dim() == 0 and torch.isfinite(out)
    out.backward()
    assert torch.isfinite(big.grad).all()


def test_saturating_gradient_vanishes_nonsaturating_does_not():
    """d/dl of the minimax G loss is -σ(l)/N; of the non-saturating loss -σ(-l)/N."""
    logits = torch.tensor([-12.0, -6.0, 0.0, 4.0], dtype=torch.float64, requires_grad=True)
    (g_sat,) = torch.autograd.grad(losses.minimax_g_loss(logits), logits)
    (g_ns,) = torch.autograd.grad(losses.nonsaturating_g_loss(logits), logits)
    n = logits.numel()
    torch.testing.assert_close(g_sat, -torch.sigmoid(logits.detach()) / n)
    torch.testing.assert_close(g_ns, -torch.sigmoid(-logits.detach()) / n)
    assert abs(g_sat[0].item()) < 1e-5 < abs(g_ns[0].item())  # D confidently rejects: saturation


def test_one_sided_label_smoothing_is_bce_with_real_target_0_9():
    real, fake = torch.randn(50, dtype=torch.float64), torch.randn(50, dtype=torch.float64)
    expected = (F.binary_cross_entropy_with_logits(real, torch.full_like(real, 0.9))
                + F.binary_cross_entropy_with_logits(fake, torch.zeros_like(fake)))
    torch.testing.assert_close(losses.smoothed_d_loss(real, fake), expected)
    torch.testing.assert_close(losses.smoothed_d_loss(real, fake, real_label=1.0), losses.nonsaturating_d_loss(real, fake))
    # the optimum for a real logit is log(0.9 / 0.1), not +infinity
    logit = torch.tensor([0.0], dtype=torch.float64, requires_grad=True)
    opt = torch.optim.SGD([logit], lr=5.0)
    for _ in range(300):
        opt.zero_grad()
        losses.smoothed_d_loss(logit, torch.tensor([-50.0], dtype=torch.float64)).backward()
        opt.step()
    assert logit.item() == pytest.approx(math.log(9), abs=1e-3)
    with pytest.raises(ValueError, match="real_label"):
        losses.smoothed_d_loss(real, fake, real_label=0.4)


def test_registry():
    assert set(GAN_LOSSES) == {"minimax", "non_saturating", "non_saturating_smoothed", "lsgan", "hinge", "wasserstein"}
    for name, pair in GAN_LOSSES.items():
        assert get_gan_loss(name) is pair
        real, fake = _logits(3), _logits(4)
        assert pair.d(real, fake).dim() == 0 and pair.g(fake).dim() == 0
    with pytest.raises(ValueError, match="unknown GAN loss"):
        get_gan_loss("wgan")


@pytest.mark.parametrize("fn", D_LOSSES + G_LOSSES, ids=lambda f: f.__name__)
def test_bad_inputs(fn):
    call = (lambda x: fn(x, x)) if fn in D_LOSSES else fn
    with pytest.raises(TypeError, match="torch.Tensor"):
        call([0.0, 1.0])
    with pytest.raises(TypeError, match="floating-point"):
        call(torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="empty"):
        call(torch.zeros(0))
