"""GAN losses, each written on the discriminator's raw scores ("logits").

Every GAN in the book trains its discriminator D to lower ``d_loss(real_logits, fake_logits)``
and its generator G to lower ``g_loss(fake_logits)``, where the logits are D's outputs on real
samples and on G's samples, before any sigmoid. One family per pair of functions:

================  =======================================  ====================================
name              D loss                                   G loss
================  =======================================  ====================================
minimax           -E log σ(l_r) - E log(1 - σ(l_f))        E log(1 - σ(l_f))  (saturates)
non_saturating    same as minimax                          -E log σ(l_f)
lsgan             ½ E (l_r - 1)² + ½ E l_f²                ½ E (l_f - 1)²
hinge             E max(0, 1 - l_r) + E max(0, 1 + l_f)    -E l_f
wasserstein       E l_f - E l_r  (D must be 1-Lipschitz)   -E l_f
================  =======================================  ====================================

The log-sigmoid terms are computed as softplus: -log σ(l) = softplus(-l) and
-log(1 - σ(l)) = softplus(l), which is exactly ``binary_cross_entropy_with_logits`` and stays
finite and accurate when D is certain (``|l|`` in the hundreds), where sigmoid-then-log gives log 0.

The minimax D loss is -V(D, G) of the source's §4.1, and the minimax G loss is the part of V that
depends on G. Near the start of training D rejects G's samples easily (σ(l_f) ≈ 0), where
log(1 - σ(l_f)) is flat: its gradient with respect to l_f is -σ(l_f) ≈ 0. The non-saturating
loss has the same fixed point but gradient -σ(-l_f) ≈ -1 there (Goodfellow et al. 2014, §3).

References:
    Goodfellow et al. 2014, "Generative Adversarial Nets", https://arxiv.org/abs/1406.2661
    Arjovsky & Bottou 2017, "Towards Principled Methods for Training GANs", https://arxiv.org/abs/1701.04862
    Mao et al. 2017, "Least Squares GANs", https://arxiv.org/abs/1611.04076 (a=0, b=c=1 coding)
    Lim & Ye 2017, "Geometric GAN", https://arxiv.org/abs/1705.02894 (hinge loss)
    Miyato et al. 2018, "Spectral Normalization for GANs", https://arxiv.org/abs/1802.05957
    Arjovsky et al. 2017, "Wasserstein GAN", https://arxiv.org/abs/1701.07875
    Zhu et al. 2017, "Unpaired Image-to-Image Translation (CycleGAN)", https://arxiv.org/abs/1703.10593
    Gatys, Ecker & Bethge 2016, "Image Style Transfer Using CNNs" (Gram matrices)

Beside the GAN pairs live the image-translation losses of chapter 5: the cycle-consistency and
identity L1 terms of CycleGAN, and the Gram-matrix style loss of Gatys et al.
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import torch
import torch.nn.functional as F

__all__ = [
    "minimax_d_loss",
    "minimax_g_loss",
    "nonsaturating_d_loss",
    "nonsaturating_g_loss",
    "smoothed_d_loss",
    "lsgan_d_loss",
    "lsgan_g_loss",
    "hinge_d_loss",
    "hinge_g_loss",
    "wasserstein_d_loss",
    "wasserstein_g_loss",
    "GANLoss",
    "GAN_LOSSES",
    "get_gan_loss",
    "cycle_loss",
    "identity_loss",
    "gram_matrix",
    "gram_loss",
]


def _logits(value: torch.Tensor, name: str) -> torch.Tensor:
    if not isinstance(value, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of discriminator logits, got {type(value).__name__}")
    if not value.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor of logits, got dtype {value.dtype}")
    if value.numel() == 0:
        raise ValueError(f"{name} is empty; expected at least one logit")
    return value


# --- minimax (the source's §4.1) ---------------------------------------------------------------

def minimax_d_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """-V(D, G): -E log D(x) - E log(1 - D(G(z))), i.e. binary cross-entropy with real = 1, fake = 0.

    Args:
        real_logits: D's logits on real samples, any shape (averaged).
        fake_logits: D's logits on generated samples, any shape (averaged).
    """
    real_logits = _logits(real_logits, "real_logits")
    fake_logits = _logits(fake_logits, "fake_logits")
    return F.softplus(-real_logits).mean() + F.softplus(fake_logits).mean()


def minimax_g_loss(fake_logits: torch.Tensor) -> torch.Tensor:
    """E log(1 - D(G(z))): the generator's side of V(D, G) as written. It *saturates*: its
    gradient -σ(l) vanishes when D confidently rejects the fakes (l → -∞)."""
    fake_logits = _logits(fake_logits, "fake_logits")
    return -F.softplus(fake_logits).mean()


# --- non-saturating (Goodfellow et al. 2014, §3) -----------------------------------------------

def nonsaturating_d_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """The discriminator's loss is the minimax one: binary cross-entropy, real = 1, fake = 0."""
    return minimax_d_loss(real_logits, fake_logits)


def nonsaturating_g_loss(fake_logits: torch.Tensor) -> torch.Tensor:
    """-E log D(G(z)): G maximises log D instead of minimising log(1 - D). Same fixed point,
    but the gradient -σ(-l) is about -1, not 0, where D rejects the fakes."""
    fake_logits = _logits(fake_logits, "fake_logits")
    return F.softplus(-fake_logits).mean()


def smoothed_d_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor, real_label: float = 0.9) -> torch.Tensor:
    """One-sided label smoothing (Salimans et al. 2016, "Improved Techniques for Training GANs",
    §3.4, https://arxiv.org/abs/1606.03498): binary cross-entropy with real = ``real_label``
    (0.9) and fake = 0. D is never rewarded for being more than 90 % sure that a real picture is
    real, so it cannot grow arbitrarily confident and sharp, the way a D that wins the game does;
    fakes keep the target 0 (smoothing them too would reward G's mistakes)."""
    real_logits = _logits(real_logits, "real_logits")
    fake_logits = _logits(fake_logits, "fake_logits")
    if not 0.5 < real_label <= 1.0:
        raise ValueError(f"real_label must be in (0.5, 1], got {real_label!r}")
    return (real_label * F.softplus(-real_logits) + (1 - real_label) * F.softplus(real_logits)).mean() \
        + F.softplus(fake_logits).mean()


# --- least squares (Mao et al. 2017) -----------------------------------------------------------

def lsgan_d_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """½ E (D(x) - 1)² + ½ E D(G(z))², with D's raw score (no sigmoid) as the regression output."""
    real_logits = _logits(real_logits, "real_logits")
    fake_logits = _logits(fake_logits, "fake_logits")
    return 0.5 * (real_logits - 1).square().mean() + 0.5 * fake_logits.square().mean()


def lsgan_g_loss(fake_logits: torch.Tensor) -> torch.Tensor:
    """½ E (D(G(z)) - 1)²: G pushes its samples' scores to the real target 1."""
    fake_logits = _logits(fake_logits, "fake_logits")
    return 0.5 * (fake_logits - 1).square().mean()


# --- hinge (Lim & Ye 2017; Miyato et al. 2018) ------------------------------------------------

def hinge_d_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """E max(0, 1 - D(x)) + E max(0, 1 + D(G(z))): zero once real scores ≥ 1 and fake ≤ -1."""
    real_logits = _logits(real_logits, "real_logits")
    fake_logits = _logits(fake_logits, "fake_logits")
    return F.relu(1 - real_logits).mean() + F.relu(1 + fake_logits).mean()


def hinge_g_loss(fake_logits: torch.Tensor) -> torch.Tensor:
    """-E D(G(z)): G raises its samples' scores (no margin on the generator's side)."""
    fake_logits = _logits(fake_logits, "fake_logits")
    return -fake_logits.mean()


# --- Wasserstein (Arjovsky et al. 2017) --------------------------------------------------------

def wasserstein_d_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """E D(G(z)) - E D(x): the critic's loss. Meaningful only with a Lipschitz constraint on D
    (weight clipping, gradient penalty or spectral normalisation), which this function does not add."""
    real_logits = _logits(real_logits, "real_logits")
    fake_logits = _logits(fake_logits, "fake_logits")
    return fake_logits.mean() - real_logits.mean()


def wasserstein_g_loss(fake_logits: torch.Tensor) -> torch.Tensor:
    """-E D(G(z)), the same as the hinge generator loss."""
    fake_logits = _logits(fake_logits, "fake_logits")
    return -fake_logits.mean()


class GANLoss(NamedTuple):
    """A pair of losses: ``d(real_logits, fake_logits)`` for D, ``g(fake_logits)`` for G."""

    d: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
    g: Callable[[torch.Tensor], torch.Tensor]


GAN_LOSSES: dict[str, GANLoss] = {
    "minimax": GANLoss(minimax_d_loss, minimax_g_loss),
    "non_saturating": GANLoss(nonsaturating_d_loss, nonsaturating_g_loss),
    # the non-saturating generator against a D trained with one-sided label smoothing (0.9)
    "non_saturating_smoothed": GANLoss(smoothed_d_loss, nonsaturating_g_loss),
    "lsgan": GANLoss(lsgan_d_loss, lsgan_g_loss),
    "hinge": GANLoss(hinge_d_loss, hinge_g_loss),
    "wasserstein": GANLoss(wasserstein_d_loss, wasserstein_g_loss),
}


def get_gan_loss(name: str) -> GANLoss:
    """The loss pair called ``name`` (one of :data:`GAN_LOSSES`)."""
    if name not in GAN_LOSSES:
        raise ValueError(f"unknown GAN loss {name!r}; expected one of {sorted(GAN_LOSSES)}")
    return GAN_LOSSES[name]


# --- image translation (chapter 5) -------------------------------------------------------------

def _same_images(a: torch.Tensor, b: torch.Tensor, names: tuple[str, str]) -> None:
    for value, name in zip((a, b), names):
        if not isinstance(value, torch.Tensor) or not value.is_floating_point():
            raise TypeError(f"{name} must be a floating-point tensor, got "
                            f"{type(value).__name__ if not isinstance(value, torch.Tensor) else value.dtype}")
    if a.shape != b.shape:
        raise ValueError(f"{names[0]} and {names[1]} must have the same shape, got {tuple(a.shape)} and {tuple(b.shape)}")
    if a.numel() == 0:
        raise ValueError(f"{names[0]} is empty")


def cycle_loss(reconstructed: torch.Tensor, original: torch.Tensor) -> torch.Tensor:
    """``E |F(G(x)) - x|``: the cycle-consistency L1 of CycleGAN (Zhu et al. 2017, eq. 2), mean over
    every pixel and channel. The caller weights it (λ = 10 in the paper)."""
    _same_images(reconstructed, original, ("reconstructed", "original"))
    return (reconstructed - original).abs().mean()


def identity_loss(mapped: torch.Tensor, original: torch.Tensor) -> torch.Tensor:
    """``E |G(y) - y|`` for y already in G's target domain (Zhu et al. 2017, §5.2, after Taigman et
    al. 2017): a generator should leave a picture of its output domain alone. Weighted 0.5 λ."""
    _same_images(mapped, original, ("mapped", "original"))
    return (mapped - original).abs().mean()


def gram_matrix(features: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) feature maps → (B, C, C) Gram matrices F Fᵀ / (C H W), F = features as (C, HW).

    Entry (i, j) is how much channels i and j fire together, averaged over positions: a summary of
    texture that forgets *where* things are (Gatys et al. 2016, eq. 3, normalised by the map size).
    """
    if not isinstance(features, torch.Tensor) or not features.is_floating_point() or features.dim() != 4:
        shape = tuple(features.shape) if isinstance(features, torch.Tensor) else type(features).__name__
        raise ValueError(f"features must be a floating-point (B, C, H, W) tensor, got {shape}")
    b, c, h, w = features.shape
    flat = features.reshape(b, c, h * w)  # (B, C, HW)
    return flat @ flat.transpose(1, 2) / (c * h * w)  # (B, C, C)


def gram_loss(features: torch.Tensor, target_gram: torch.Tensor) -> torch.Tensor:
    """Mean squared difference between the Gram matrices of ``features`` (B, C, H, W) and
    ``target_gram`` ((C, C) or (B, C, C)): the style loss of one layer (Gatys et al. 2016, eq. 4)."""
    gram = gram_matrix(features)
    if not isinstance(target_gram, torch.Tensor) or target_gram.shape[-2:] != gram.shape[-2:]:
        shape = tuple(target_gram.shape) if isinstance(target_gram, torch.Tensor) else type(target_gram).__name__
        raise ValueError(f"target_gram must be (C, C) or (B, C, C) with C = {gram.shape[-1]}, got {shape}")
    return (gram - target_gram).square().mean()
