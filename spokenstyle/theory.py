"""GAN theory in small, checkable pieces: the value function, the optimal discriminator, the
Jensen–Shannon divergence, and the toy distributions and MLPs that chapter 3 trains.

The source's §4.1 states the GAN game

    min_G max_D V(D, G) = E_{x~p_data}[log D(x)] + E_{z~p_z}[log(1 - D(G(z)))].

For a fixed generator the inner maximum is reached by the closed-form discriminator
D*(x) = p_data(x) / (p_data(x) + p_g(x)), and at that maximum V(D*, G) = -log 4 + 2·JSD(p_data, p_g)
(Goodfellow et al. 2014, Proposition 1 and Theorem 1). This module computes every term of those
two statements in two independent ways, so the book can check one against the other:

* from samples and a discriminator (a Monte-Carlo estimate, what training sees): :func:`value_mc`;
* from densities on a grid (numerical integration, what the theory says): :func:`value_grid`,
  :func:`optimal_discriminator`, :func:`js_divergence`, :func:`kl_divergence`.

:func:`wasserstein_1d` is the Wasserstein-1 distance of two 1-D samples, the distance that stays
informative where the JSD is stuck at log 2 (Arjovsky et al. 2017).

The toy distributions (:class:`GaussianMixture`, with :meth:`GaussianMixture.ring` a variant of
the 8-Gaussian ring of Metz et al. 2017) have exact densities, which is what makes the grid side
possible; :func:`mode_coverage` counts the ring's modes a generator covers (the "modes" and
"high-quality samples" of Srivastava et al. 2017). :class:`ToyGenerator` and
:class:`ToyDiscriminator` are the small MLPs trained on them, and :class:`ModelStack` trains
several of them (several seeds) at once, as one batched network.

The Dirac-GAN (Mescheder et al. 2018) is the smallest GAN there is, two numbers:
:func:`dirac_gan_value`, :func:`dirac_gan_field` and :func:`dirac_gan` compute its value, its
gradient field and its trajectories under simultaneous or alternating gradient steps, with or
without instance noise (Sønderby et al. 2017) and the R1 penalty.

References:
    Goodfellow et al. 2014, "Generative Adversarial Nets", https://arxiv.org/abs/1406.2661
    Arjovsky, Chintala & Bottou 2017, "Wasserstein GAN", https://arxiv.org/abs/1701.07875
    Mescheder et al. 2018, "Which Training Methods for GANs do actually Converge?", https://arxiv.org/abs/1801.04406
    Sønderby et al. 2017, "Amortised MAP Inference for Image Super-resolution", https://arxiv.org/abs/1610.04490
    Metz et al. 2017, "Unrolled Generative Adversarial Networks", https://arxiv.org/abs/1611.02163
    Srivastava et al. 2017, "VEEGAN", https://arxiv.org/abs/1705.07761
    Lin et al. 2018, "PacGAN", https://arxiv.org/abs/1712.04086
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Sequence

import copy

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.func import functional_call, stack_module_state, vmap

__all__ = [
    "LOG4",
    "value_mc",
    "value_grid",
    "jsd_from_value",
    "optimal_discriminator",
    "kl_divergence",
    "js_divergence",
    "wasserstein_1d",
    "integrate",
    "grid_1d",
    "grid_2d",
    "GaussianMixture",
    "ModeCoverage",
    "mode_coverage",
    "ToyGANConfig",
    "ToyGenerator",
    "ToyDiscriminator",
    "ModelStack",
    "dirac_gan_value",
    "dirac_gan_field",
    "dirac_gan",
]

LOG4 = math.log(4.0)  # -V(D*, G) when p_g = p_data: the discriminator can only say 1/2 everywhere


# ---------------------------------------------------------------------------------------------
# input checks


def _as_float_tensor(value: torch.Tensor, name: str) -> torch.Tensor:
    if not isinstance(value, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(value).__name__}")
    if not value.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor, got dtype {value.dtype}")
    if value.numel() == 0:
        raise ValueError(f"{name} is empty; expected at least one value")
    return value


def _check_density(p: torch.Tensor, name: str) -> torch.Tensor:
    _as_float_tensor(p, name)
    if torch.isnan(p).any() or (p < 0).any():
        raise ValueError(f"{name} must hold non-negative densities (no NaN); its minimum is {p.min().item():g}")
    return p


def _check_axis(x: torch.Tensor, name: str) -> torch.Tensor:
    _as_float_tensor(x, name)
    if x.dim() != 1 or x.numel() < 2:
        raise ValueError(f"{name} must be a 1-D grid of at least 2 points, got shape {tuple(x.shape)}")
    if not (x[1:] > x[:-1]).all():
        raise ValueError(f"{name} must be strictly increasing")
    return x


# ---------------------------------------------------------------------------------------------
# grids and integration


def grid_1d(lo: float, hi: float, n: int, *, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """``n`` evenly spaced points from ``lo`` to ``hi`` (both included): shape (n,)."""
    if not hi > lo:
        raise ValueError(f"grid bounds must satisfy lo < hi, got lo={lo}, hi={hi}")
    if not isinstance(n, int) or n < 2:
        raise ValueError(f"a grid needs an int n >= 2 points, got {n!r}")
    return torch.linspace(lo, hi, n, dtype=dtype)


def grid_2d(lo: float, hi: float, n: int, *, dtype: torch.dtype = torch.float64
            ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """A square n×n grid on [lo, hi]²: returns ``(x, y, points)``.

    ``x`` and ``y`` are the axes, shape (n,); ``points`` has shape (n*n, 2) in "ij" order, so a
    function evaluated on ``points`` and reshaped to (n, n) has ``values[i, j] = f(x[i], y[j])``,
    which is what :func:`integrate` expects.
    """
    axis = grid_1d(lo, hi, n, dtype=dtype)
    xx, yy = torch.meshgrid(axis, axis, indexing="ij")  # (n, n) each
    return axis, axis.clone(), torch.stack([xx.reshape(-1), yy.reshape(-1)], dim=1)  # (n*n, 2)


def integrate(values: torch.Tensor, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
    """Trapezoidal integral of ``values`` sampled on a 1-D grid ``x`` or a 2-D grid ``x × y``.

    Args:
        values: shape (len(x),), or (len(x), len(y)) with ``values[i, j] = f(x[i], y[j])``.
        x, y: strictly increasing axes (``y`` only for a 2-D integral).
    """
    _as_float_tensor(values, "values")
    _check_axis(x, "x")
    if y is None:
        if values.shape != x.shape:
            raise ValueError(f"values has shape {tuple(values.shape)} but the grid x has {tuple(x.shape)}")
        return torch.trapezoid(values, x)
    _check_axis(y, "y")
    if values.shape != (x.numel(), y.numel()):
        raise ValueError(f"values has shape {tuple(values.shape)}; a grid of len(x)={x.numel()} by "
                         f"len(y)={y.numel()} needs ({x.numel()}, {y.numel()})")
    return torch.trapezoid(torch.trapezoid(values, y, dim=1), x)


# ---------------------------------------------------------------------------------------------
# the value function, D* and the divergences


def value_mc(discriminator: Callable[[torch.Tensor], torch.Tensor], real: torch.Tensor, fake: torch.Tensor,
             *, outputs: str = "logits") -> torch.Tensor:
    """Monte-Carlo estimate of V(D, G) = E_real[log D(x)] + E_fake[log(1 - D(x))].

    Args:
        discriminator: maps a batch (B, ...) to one score per sample, shape (B,) or (B, 1).
        real: samples of p_data, shape (N, ...).
        fake: samples of p_g (i.e. G(z) for z ~ p_z), shape (M, ...).
        outputs: ``"logits"`` (the default; raw scores, D(x) = sigmoid(score)) or ``"probs"``
            (D(x) itself, in [0, 1]).

    With logits, log D = logsigmoid(l) and log(1 - D) = logsigmoid(-l): finite even when the
    discriminator is certain, where computing the sigmoid first would give log 0.
    """
    if outputs not in ("logits", "probs"):
        raise ValueError(f"outputs must be 'logits' or 'probs', got {outputs!r}")
    _as_float_tensor(real, "real")
    _as_float_tensor(fake, "fake")
    s_real = discriminator(real).reshape(-1)  # (N,)
    s_fake = discriminator(fake).reshape(-1)  # (M,)
    if s_real.numel() != real.shape[0] or s_fake.numel() != fake.shape[0]:
        raise ValueError("the discriminator must return one score per sample, shape (B,) or (B, 1); got "
                         f"{s_real.numel()} scores for {real.shape[0]} real samples")
    if outputs == "logits":
        return F.logsigmoid(s_real).mean() + F.logsigmoid(-s_fake).mean()
    if (s_real < 0).any() or (s_real > 1).any() or (s_fake < 0).any() or (s_fake > 1).any():
        raise ValueError("outputs='probs' but the discriminator returned values outside [0, 1]")
    return torch.log(s_real).mean() + torch.log1p(-s_fake).mean()


def value_grid(d: torch.Tensor, p_data: torch.Tensor, p_g: torch.Tensor, x: torch.Tensor,
               y: torch.Tensor | None = None) -> torch.Tensor:
    """V(D, G) = ∫ p_data log D + p_g log(1 - D), by numerical integration on a grid.

    Args:
        d: D(x) on the grid, probabilities in [0, 1].
        p_data, p_g: the two densities on the same grid (same shape as ``d``).
        x, y: the grid's axes, as in :func:`integrate`.

    Uses ``0 · log 0 = 0``, so D may be exactly 0 or 1 where the matching density vanishes.
    """
    _as_float_tensor(d, "d")
    _check_density(p_data, "p_data")
    _check_density(p_g, "p_g")
    if not d.shape == p_data.shape == p_g.shape:
        raise ValueError(f"d, p_data and p_g must have one shape, got {tuple(d.shape)}, "
                         f"{tuple(p_data.shape)}, {tuple(p_g.shape)}")
    if (d < 0).any() or (d > 1).any():
        raise ValueError("d must hold probabilities in [0, 1] (apply a sigmoid to logits first)")
    integrand = torch.xlogy(p_data, d) + torch.xlogy(p_g, 1 - d)
    return integrate(integrand, x, y)


def jsd_from_value(value: torch.Tensor | float) -> torch.Tensor | float:
    """Inverts Theorem 1 of Goodfellow et al.: JSD = (V(D*, G) + log 4) / 2.

    Applied to V(D, G) of any other discriminator it gives a lower bound on the JSD, since
    V(D, G) <= V(D*, G) by the definition of D*.
    """
    return (value + LOG4) / 2


def optimal_discriminator(p_data: torch.Tensor, p_g: torch.Tensor) -> torch.Tensor:
    """The discriminator that maximises V(D, G) for a fixed G: D* = p_data / (p_data + p_g).

    Pointwise, D* maximises a·log y + b·log(1 - y) over y in (0, 1), whose maximum is at
    y = a / (a + b) (Goodfellow et al. 2014, Proposition 1). Where both densities are 0 every
    value is optimal (the point never contributes to V); we return 1/2 there, the uninformed guess.
    """
    _check_density(p_data, "p_data")
    _check_density(p_g, "p_g")
    if p_data.shape != p_g.shape:
        raise ValueError(f"p_data and p_g must have one shape, got {tuple(p_data.shape)} and {tuple(p_g.shape)}")
    total = p_data + p_g
    return torch.where(total > 0, p_data / total.clamp_min(torch.finfo(total.dtype).tiny),
                       torch.full_like(total, 0.5))


def kl_divergence(p: torch.Tensor, q: torch.Tensor, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
    """KL(p || q) = ∫ p log(p / q) in nats, by numerical integration of densities on a grid.

    ``0 · log(0 / q) = 0``; where p > 0 = q the divergence is infinite (returned as ``inf``).
    """
    _check_density(p, "p")
    _check_density(q, "q")
    if p.shape != q.shape:
        raise ValueError(f"p and q must have one shape, got {tuple(p.shape)} and {tuple(q.shape)}")
    if ((p > 0) & (q == 0)).any():
        return torch.tensor(math.inf, dtype=p.dtype, device=p.device)
    return integrate(torch.xlogy(p, p) - torch.xlogy(p, q), x, y)


def js_divergence(p: torch.Tensor, q: torch.Tensor, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
    """Jensen–Shannon divergence ½ KL(p || m) + ½ KL(q || m), m = (p + q) / 2, in nats.

    Computed by numerical integration of the densities ``p`` and ``q`` on the grid ``x`` (1-D)
    or ``x × y`` (2-D, values shaped (len(x), len(y))). It lies in [0, log 2]: 0 for identical
    densities, log 2 for densities with disjoint supports. The grid must cover both supports.
    """
    _check_density(p, "p")
    _check_density(q, "q")
    if p.shape != q.shape:
        raise ValueError(f"p and q must have one shape, got {tuple(p.shape)} and {tuple(q.shape)}")
    # p log(p / m) = p log(2p / (p + q)): m = (p + q) / 2 itself would underflow to 0 where p or q is
    # the smallest subnormal number (the far tail of a narrow Gaussian) and turn the integrand into -inf
    total = p + q
    integrand = 0.5 * (torch.xlogy(p, 2 * p) - torch.xlogy(p, total)) + 0.5 * (torch.xlogy(q, 2 * q) - torch.xlogy(q, total))
    return integrate(integrand, x, y)


def wasserstein_1d(u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """The Wasserstein-1 (earth mover's) distance between two 1-D samples, in float64.

    ``W1(P, Q) = ∫ |F_P(t) - F_Q(t)| dt`` for the empirical distribution functions F of ``u`` and
    ``v``: the least average distance the points of one sample must travel to become the other.
    Unlike the JSD it keeps growing as the distributions move apart: for a sample and a copy of it
    shifted by t it is exactly ``|t|`` (Arjovsky, Chintala & Bottou 2017, Example 1). The same
    computation as ``scipy.stats.wasserstein_distance`` (unweighted), in torch.

    Args:
        u, v: samples of shape (N,) or (N, 1) and (M,) or (M, 1); N and M may differ. Finite.
    """
    samples = []
    for value, name in ((u, "u"), (v, "v")):
        _as_float_tensor(value, name)
        if value.dim() == 2 and value.shape[1] == 1:
            value = value[:, 0]
        if value.dim() != 1:
            raise ValueError(f"{name} must be a 1-D sample, shape (N,) or (N, 1), got {tuple(value.shape)}")
        if not torch.isfinite(value).all():
            raise ValueError(f"{name} holds NaN or infinite values")
        samples.append(torch.sort(value.detach().to(torch.float64)).values)
    u_sorted, v_sorted = samples[0], samples[1].to(samples[0].device)
    everything = torch.sort(torch.cat([u_sorted, v_sorted])).values  # (N + M,)
    widths = everything[1:] - everything[:-1]  # (N + M - 1,) the steps between jumps of either F
    cdf_u = torch.searchsorted(u_sorted, everything[:-1], right=True).double() / u_sorted.numel()  # F_u per step
    cdf_v = torch.searchsorted(v_sorted, everything[:-1], right=True).double() / v_sorted.numel()
    return ((cdf_u - cdf_v).abs() * widths).sum()


# ---------------------------------------------------------------------------------------------
# toy distributions


class GaussianMixture:
    """A mixture of isotropic Gaussians in ``dim`` dimensions, with exact samples and density.

    Args:
        means: (K, dim) component means, or (K,) for a 1-D mixture.
        stds: one standard deviation for all components, or (K,) of them (all > 0).
        weights: (K,) non-negative mixture weights (normalised here); ``None`` for uniform.

    Samples and densities are float32 / float64 CPU tensors; :meth:`log_prob` follows the
    input's device and dtype, so it can score generator output on a GPU.

    Example:
        >>> p = GaussianMixture([-2.0, 2.0], 0.5)         # 1-D, two modes
        >>> x = p.sample(1000, torch.Generator().manual_seed(0))   # (1000, 1)
        >>> p.pdf(torch.zeros(1, 1)).shape
        torch.Size([1])
    """

    def __init__(self, means: Sequence | torch.Tensor, stds: float | Sequence | torch.Tensor,
                 weights: Sequence | torch.Tensor | None = None) -> None:
        means = torch.as_tensor(means, dtype=torch.float64)
        if means.dim() == 1:
            means = means[:, None]  # (K,) -> (K, 1)
        if means.dim() != 2 or means.shape[0] == 0:
            raise ValueError(f"means must have shape (K, dim) or (K,) with K >= 1, got {tuple(means.shape)}")
        k = means.shape[0]
        stds = torch.as_tensor(stds, dtype=torch.float64)
        if stds.dim() == 0:
            stds = stds.expand(k).clone()
        if stds.shape != (k,) or not (stds > 0).all():
            raise ValueError(f"stds must be a positive number or {k} positive numbers, got {stds.tolist()}")
        if weights is None:
            weights = torch.full((k,), 1.0 / k, dtype=torch.float64)
        weights = torch.as_tensor(weights, dtype=torch.float64)
        if weights.shape != (k,) or (weights < 0).any() or weights.sum() <= 0:
            raise ValueError(f"weights must be {k} non-negative numbers with a positive sum, got {weights.tolist()}")
        self.means = means  # (K, dim)
        self.stds = stds  # (K,)
        self.weights = weights / weights.sum()  # (K,)

    @classmethod
    def ring(cls, k: int = 8, radius: float = 2.0, std: float = 0.05) -> "GaussianMixture":
        """``k`` equal Gaussians evenly spaced on a circle: a variant of the ring of Metz et al. 2017.

        Metz et al. (2017) place 8 Gaussians of standard deviation 0.02 on a circle of radius
        2. The default here keeps the layout (8 modes, radius 2) and widens each mode to std 0.05:
        the modes stay well separated (the gap between neighbours, 2·r·sin(π/8) ≈ 1.53, is 30 of
        our stds) while a few thousand CPU steps can land samples inside them. ``std=0.02`` gives
        the original.
        """
        if not isinstance(k, int) or k < 1:
            raise ValueError(f"k must be a positive int, got {k!r}")
        angles = 2 * math.pi * torch.arange(k, dtype=torch.float64) / k
        means = radius * torch.stack([torch.cos(angles), torch.sin(angles)], dim=1)  # (k, 2)
        return cls(means, std)

    @property
    def dim(self) -> int:
        return self.means.shape[1]

    @property
    def num_components(self) -> int:
        return self.means.shape[0]

    def __repr__(self) -> str:
        return (f"GaussianMixture(K={self.num_components}, dim={self.dim}, "
                f"stds={[round(s, 4) for s in self.stds.tolist()]})")

    def sample(self, n: int, generator: torch.Generator | None = None, *,
               dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """``n`` samples, shape (n, dim), on the CPU; deterministic given ``generator``."""
        if not isinstance(n, int) or n < 1:
            raise ValueError(f"n must be a positive int, got {n!r}")
        component = torch.multinomial(self.weights, n, replacement=True, generator=generator)  # (n,)
        noise = torch.randn(n, self.dim, generator=generator, dtype=torch.float64)  # (n, dim)
        x = self.means[component] + self.stds[component, None] * noise  # (n, dim)
        return x.to(dtype)

    def _points(self, x: torch.Tensor) -> torch.Tensor:
        _as_float_tensor(x, "x")
        if self.dim == 1 and x.dim() == 1:
            x = x[:, None]  # (N,) -> (N, 1) for a 1-D mixture
        if x.dim() != 2 or x.shape[1] != self.dim:
            raise ValueError(f"x must have shape (N, {self.dim})" + (" or (N,)" if self.dim == 1 else "")
                             + f", got {tuple(x.shape)}")
        return x

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """Log density at each point: x (N, dim) (or (N,) for 1-D) -> (N,), in x's dtype/device."""
        x = self._points(x)
        means = self.means.to(x)  # (K, dim)
        stds = self.stds.to(x)  # (K,)
        sq = torch.cdist(x, means).square()  # (N, K) squared distances
        log_norm = -self.dim * (torch.log(stds) + 0.5 * math.log(2 * math.pi))  # (K,)
        log_comp = log_norm - 0.5 * sq / stds.square() + torch.log(self.weights.to(x))  # (N, K)
        return torch.logsumexp(log_comp, dim=1)

    def pdf(self, x: torch.Tensor) -> torch.Tensor:
        """Density at each point: x (N, dim) (or (N,) for 1-D) -> (N,)."""
        return self.log_prob(x).exp()


# ---------------------------------------------------------------------------------------------
# counting the ring's modes


@dataclass(frozen=True)
class ModeCoverage:
    """How well samples cover a mixture's modes (Srivastava et al. 2017's two numbers).

    Attributes:
        covered: modes that received at least ``min_fraction`` of all samples.
        num_modes: the mixture's number of components.
        high_quality: fraction of samples within ``n_std`` standard deviations of some mode.
        counts: (K,) high-quality samples nearest to each mode.
        min_fraction: the share of samples a mode needed to count as covered.
    """

    covered: int
    num_modes: int
    high_quality: float
    counts: torch.Tensor
    min_fraction: float

    def __str__(self) -> str:
        return f"{self.covered}/{self.num_modes} modes covered, {self.high_quality:.1%} high-quality samples"


def mode_coverage(samples: torch.Tensor, mixture: GaussianMixture, *, n_std: float = 3.0,
                  min_fraction: float | None = None) -> ModeCoverage:
    """Counts the modes of ``mixture`` that ``samples`` cover.

    Each sample goes to its nearest mode; it is *high-quality* if it lies within ``n_std``
    standard deviations of that mode (a 2-D Gaussian puts 1 - e^{-9/2} ≈ 98.9 % of its mass
    within 3 stds). A mode is *covered* if it gets at least ``min_fraction`` of all samples as
    high-quality ones; the default, a quarter of the fair share 1/K, is 3.1 % for the ring.

    Args:
        samples: (N, dim) generated points.
        mixture: the target mixture (its means and stds define the modes).
        n_std: radius of a mode, in its standard deviations.
        min_fraction: share of samples a mode needs; default ``1 / (4 K)``.
    """
    x = mixture._points(samples).detach()
    if not n_std > 0:
        raise ValueError(f"n_std must be positive, got {n_std}")
    k = mixture.num_components
    if min_fraction is None:
        min_fraction = 1.0 / (4 * k)
    if not 0 < min_fraction <= 1:
        raise ValueError(f"min_fraction must be in (0, 1], got {min_fraction}")
    means = mixture.means.to(device=x.device, dtype=torch.float64)
    dist = torch.cdist(x.to(torch.float64), means)  # (N, K)
    nearest_dist, nearest = dist.min(dim=1)  # (N,), (N,)
    good = nearest_dist <= n_std * mixture.stds.to(x.device)[nearest]  # (N,)
    counts = torch.bincount(nearest[good], minlength=k).cpu()  # (K,)
    n = x.shape[0]
    covered = int((counts >= min_fraction * n).sum())
    return ModeCoverage(covered=covered, num_modes=k, high_quality=float(good.float().mean()),
                        counts=counts, min_fraction=float(min_fraction))


# ---------------------------------------------------------------------------------------------
# a small MLP GAN for the toy distributions


@dataclass
class ToyGANConfig:
    """Sizes of the toy MLP GAN; the defaults suit the 2-D ring."""

    data_dim: int = 2  # 1 for the 1-D mixtures, 2 for the ring
    latent_dim: int = 2  # as small as the data: the figure can show the whole latent space
    hidden: int = 128  # wide enough for 8 modes; small enough for seconds on a CPU
    depth: int = 3  # hidden layers in each network
    pack: int = 1  # PacGAN: D judges `pack` samples at once (1 = a plain GAN; Lin et al. 2018)

    def __post_init__(self) -> None:
        for name in ("data_dim", "latent_dim", "hidden", "depth", "pack"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"ToyGANConfig.{name} must be a positive int, got {value!r}")


def _mlp(d_in: int, d_out: int, hidden: int, depth: int, activation: Callable[[], nn.Module]) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i in range(depth):
        layers += [nn.Linear(d_in if i == 0 else hidden, hidden), activation()]
    layers.append(nn.Linear(hidden, d_out))
    return nn.Sequential(*layers)


def _stacked_mlp(net: nn.Sequential, params: dict[str, torch.Tensor], prefix: str, x: torch.Tensor) -> torch.Tensor:
    """K copies of the MLP ``net`` at once, one batched matrix product per layer: x (K, B, d_in) ->
    (K, B, d_out), with copy k's weights ``params[prefix + "i.weight"][k]`` (what :class:`ModelStack` holds)."""
    for i, layer in enumerate(net):
        if isinstance(layer, nn.Linear):
            weight, bias = params[f"{prefix}{i}.weight"], params[f"{prefix}{i}.bias"]  # (K, out, in), (K, out)
            x = torch.baddbmm(bias.unsqueeze(1), x, weight.transpose(1, 2))  # (K, B, out)
        else:
            x = layer(x)  # an activation, element by element
    return x


class ToyGenerator(nn.Module):
    """z (B, latent_dim) -> x (B, data_dim): an MLP with ReLUs and a linear output."""

    def __init__(self, config: ToyGANConfig) -> None:
        super().__init__()
        self.config = config
        self.net = _mlp(config.latent_dim, config.data_dim, config.hidden, config.depth, nn.ReLU)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        if z.dim() != 2 or z.shape[1] != self.config.latent_dim:
            raise ValueError(f"z must have shape (B, {self.config.latent_dim}), got {tuple(z.shape)}")
        return self.net(z)  # (B, data_dim)

    def stacked_forward(self, params: dict[str, torch.Tensor], z: torch.Tensor) -> torch.Tensor:
        """The forward pass of K copies with stacked weights ``params`` (see :class:`ModelStack`):
        z (K, B, latent_dim) -> x (K, B, data_dim). Batched matrix products, no ``vmap``."""
        if z.dim() != 3 or z.shape[2] != self.config.latent_dim:
            raise ValueError(f"z must have shape (K, B, {self.config.latent_dim}), got {tuple(z.shape)}")
        return _stacked_mlp(self.net, params, "net.", z)

    def sample_latent(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """``n`` latents z ~ N(0, I), shape (n, latent_dim), on the module's device.

        Drawn on the CPU (so a CPU ``generator`` makes them reproducible) and then moved.
        """
        if not isinstance(n, int) or n < 1:
            raise ValueError(f"n must be a positive int, got {n!r}")
        device = next(self.parameters()).device
        return torch.randn(n, self.config.latent_dim, generator=generator).to(device)

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """``n`` generated points, shape (n, data_dim), without gradients."""
        return self(self.sample_latent(n, generator))


class ToyDiscriminator(nn.Module):
    """x (B, data_dim) -> logits (B,): an MLP with LeakyReLUs (a sigmoid gives D(x)).

    With ``config.pack = m > 1`` it is PacGAN's packed discriminator: the batch is cut into
    groups of m samples, each group is concatenated into one input of m·data_dim numbers, and
    the output is one logit per group, shape (B / m,). Seeing several samples at once lets D
    notice that they are too alike, the signature of mode collapse (Lin et al. 2018).
    """

    def __init__(self, config: ToyGANConfig) -> None:
        super().__init__()
        self.config = config
        self.net = _mlp(config.data_dim * config.pack, 1, config.hidden, config.depth,
                        lambda: nn.LeakyReLU(0.2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        d, m = self.config.data_dim, self.config.pack
        if x.dim() != 2 or x.shape[1] != d:
            raise ValueError(f"x must have shape (B, {d}), got {tuple(x.shape)}")
        if x.shape[0] % m:
            raise ValueError(f"a packed discriminator (pack={m}) needs a batch size divisible by {m}, "
                             f"got {x.shape[0]}")
        return self.net(x.reshape(-1, m * d)).squeeze(-1)  # (B / m,)

    def stacked_forward(self, params: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        """The forward pass of K copies with stacked weights ``params`` (see :class:`ModelStack`):
        x (K, B, data_dim) -> logits (K, B / pack). Batched matrix products, no ``vmap``."""
        d, m = self.config.data_dim, self.config.pack
        if x.dim() != 3 or x.shape[2] != d or x.shape[1] % m:
            raise ValueError(f"x must have shape (K, B, {d}) with B divisible by pack={m}, got {tuple(x.shape)}")
        packed = x.reshape(x.shape[0], -1, m * d)  # (K, B / m, m * d)
        return _stacked_mlp(self.net, params, "net.", packed).squeeze(-1)  # (K, B / m)


class ModelStack(nn.Module):
    """K networks of one architecture run as one batched network: (K, B, ...) -> (K, B, ...).

    Training a toy GAN on a CPU costs about as much in per-step overhead as in arithmetic, and a
    claim about training ("this GAN drops modes") needs several seeds. A stack trains K copies at
    the price of one larger run: every parameter gains a leading dimension of size K, and the
    forward pass maps the copy's network over it (``torch.func.vmap`` of ``functional_call``, the
    model-ensembling recipe of ``torch.func``; a model with a ``stacked_forward(params, x)`` method,
    as the toy MLPs have, runs its own batched version instead, a quarter cheaper on a CPU for
    these small layers). The copies share nothing but the call: if the
    loss is the *sum* of the copies' losses, copy k's parameters receive exactly the gradient of
    its own loss, and an element-wise optimiser such as Adam then updates each copy exactly as if
    it were trained alone (up to floating-point rounding).

    Args:
        models: K >= 1 modules of one class with the same parameter names and shapes (typically
            the same architecture built under K seeds) and no buffers. Their parameters are copied.

    Example:
        >>> cfg = ToyGANConfig(data_dim=2, hidden=16)
        >>> stack = ModelStack([ToyGenerator(cfg) for _ in range(3)])
        >>> stack(torch.zeros(3, 5, 2)).shape                     # 3 copies, 5 latents each
        torch.Size([3, 5, 2])
    """

    def __init__(self, models: Sequence[nn.Module]) -> None:
        super().__init__()
        models = list(models)
        if not models or not all(isinstance(m, nn.Module) for m in models):
            raise TypeError("models must be a non-empty sequence of nn.Module")
        if len({type(m) for m in models}) != 1:
            raise ValueError(f"models must share one class, got {sorted({type(m).__name__ for m in models})}")
        shapes = [{n: tuple(p.shape) for n, p in m.named_parameters()} for m in models]
        if any(s != shapes[0] for s in shapes[1:]):
            raise ValueError("models must have the same parameter names and shapes")
        if any(True for m in models for _ in m.buffers()):
            raise ValueError("models with buffers (e.g. BatchNorm statistics) cannot be stacked here")
        params, _ = stack_module_state(models)  # name -> (K, *shape), detached copies
        self.names = list(params)
        self.stacked = nn.ParameterList([nn.Parameter(params[n]) for n in self.names])  # (K, *shape) each
        # the architecture without weights; a list, so that it is not registered as a submodule
        self._template = [copy.deepcopy(models[0]).to("meta")]

    def __len__(self) -> int:
        return self.stacked[0].shape[0]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not isinstance(x, torch.Tensor) or x.dim() < 1 or x.shape[0] != len(self):
            shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            raise ValueError(f"a stack of {len(self)} models needs input of shape ({len(self)}, ...), got {shape}")
        template = self._template[0]
        params = dict(zip(self.names, self.stacked))  # name -> (K, *shape)
        if hasattr(template, "stacked_forward"):
            return template.stacked_forward(params, x)  # (K, ...)

        def one(params_k: dict[str, torch.Tensor], xi: torch.Tensor) -> torch.Tensor:
            return functional_call(template, params_k, (xi,))

        return vmap(one)(params, x)  # (K, ...)

    def unstack(self, i: int) -> nn.Module:
        """Copy ``i`` as a stand-alone module (a copy of its weights), on the stack's device."""
        if not isinstance(i, int) or not -len(self) <= i < len(self):
            raise IndexError(f"a stack of {len(self)} models has no model {i!r}")
        device = self.stacked[0].device
        model = copy.deepcopy(self._template[0]).to_empty(device=device)
        model.load_state_dict({n: p[i].detach().clone() for n, p in zip(self.names, self.stacked)})
        return model


# ---------------------------------------------------------------------------------------------
# the Dirac-GAN: the smallest GAN whose training does not converge (Mescheder et al. 2018)
#
# The data is a point mass at 0, the generator a point mass at θ, and the discriminator the
# line D(x) = σ(ψ·x). The value function of §4.1 becomes a function of two numbers,
#
#     V(θ, ψ) = log σ(ψ·0) + log σ(-ψ·θ) = -log 2 + log σ(-ψθ),
#
# its only equilibrium is θ = ψ = 0 (G on the data, D flat), and along the continuous flow
# (dθ/dt, dψ/dt) = (-∂V/∂θ, ∂V/∂ψ) = (ψ σ(ψθ), -θ σ(ψθ)) the radius θ² + ψ² never changes:
# the players circle around the equilibrium forever.

_HERMITE_NODES = 40  # Gauss–Hermite points for the expectation over instance noise (exact to ~1e-15 here)


def _noise_quadrature(instance_noise: float, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """Points ε and weights w with Σ w f(ε) = E f(ε) for ε ~ N(0, instance_noise²)."""
    if instance_noise == 0:
        return torch.zeros(1, dtype=dtype), torch.ones(1, dtype=dtype)
    nodes, weights = np.polynomial.hermite_e.hermegauss(_HERMITE_NODES)  # weight exp(-x²/2)
    return (torch.as_tensor(nodes * instance_noise, dtype=dtype),
            torch.as_tensor(weights / weights.sum(), dtype=dtype))


def _check_dirac_options(instance_noise: float, r1: float) -> None:
    for value, name in ((instance_noise, "instance_noise"), (r1, "r1")):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
            raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")


def dirac_gan_value(theta: torch.Tensor | float, psi: torch.Tensor | float, *, instance_noise: float = 0.0,
                    r1: float = 0.0) -> torch.Tensor:
    """The Dirac-GAN's value: what D maximises and G minimises (Mescheder et al. 2018).

    V(θ, ψ) = E_ε[log σ(ψ·ε)] + E_ε[log σ(-ψ·(θ + ε))] - (r1 / 2)·ψ²

    Args:
        theta: where G's point mass sits (the data sits at 0).
        psi: D's slope: D(x) = σ(ψ·x).
        instance_noise: standard deviation of the Gaussian noise ε added to real and generated
            samples before D sees them (Sønderby et al. 2017; Arjovsky & Bottou 2017); 0 = none.
            The expectation over ε is exact (Gauss–Hermite quadrature), as a very large batch
            would estimate it.
        r1: weight γ of the R1 penalty (γ/2)·E_real‖∇_x logit‖² = (γ/2)·ψ² (Mescheder et al.
            2018), part of D's objective only; 0 = none.
    """
    _check_dirac_options(instance_noise, r1)
    theta = torch.as_tensor(theta, dtype=torch.float64)
    psi = torch.as_tensor(psi, dtype=torch.float64)
    eps, w = _noise_quadrature(instance_noise, torch.float64)
    real = (w * F.logsigmoid(psi * eps)).sum()
    fake = (w * F.logsigmoid(-psi * (theta + eps))).sum()
    return real + fake - 0.5 * r1 * psi ** 2


def dirac_gan_field(theta: float, psi: float, *, instance_noise: float = 0.0, r1: float = 0.0
                    ) -> tuple[float, float]:
    """The direction each player moves: (-∂V/∂θ, ∂V/∂ψ) of :func:`dirac_gan_value`.

    With ε the instance noise (0 when there is none) and s(u) = σ(u):

        -∂V/∂θ = ψ·E[s(ψ(θ + ε))]                          (G descends V)
         ∂V/∂ψ = E[ε·s(-ψε)] - E[(θ + ε)·s(ψ(θ + ε))] - r1·ψ  (D ascends V)

    Near the equilibrium, without noise or penalty, the field is (ψ/2, -θ/2): a rotation, whose
    Jacobian has the purely imaginary eigenvalues ±i/2. Instance noise of standard deviation σ
    adds -σ²ψ/2 to D's component and R1 adds -r1·ψ: a friction on ψ that turns the rotation into
    an inward spiral (eigenvalues with real part -σ²/4, resp. -r1/2, for σ² < 2 and r1 < 1).
    """
    _check_dirac_options(instance_noise, r1)
    for value, name in ((theta, "theta"), (psi, "psi")):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise ValueError(f"{name} must be a finite number, got {value!r}")
    eps, w = _noise_quadrature(instance_noise, torch.float64)
    fake = theta + eps  # where the generated samples land, one per quadrature point
    s_fake = torch.sigmoid(psi * fake)
    d_theta = psi * (w * s_fake).sum()
    d_psi = (w * eps * torch.sigmoid(-psi * eps)).sum() - (w * fake * s_fake).sum() - r1 * psi
    return float(d_theta), float(d_psi)


def dirac_gan(theta: float = 1.0, psi: float = 0.0, *, steps: int, lr: float, update: str = "alternating",
              instance_noise: float = 0.0, r1: float = 0.0) -> torch.Tensor:
    """Trains the Dirac-GAN by gradient steps; returns the trajectory (steps + 1, 2) of (θ, ψ).

    Args:
        theta, psi: the starting point (default: G one unit away from the data, D flat).
        steps: number of updates; lr: the step size of both players.
        update: ``"simultaneous"`` (both players step from the same point) or ``"alternating"``
            (D steps first, then G steps against the updated D, as the book's training loops do).
        instance_noise, r1: as in :func:`dirac_gan_value`.

    Without noise or penalty, simultaneous steps spiral outwards: each one multiplies θ² + ψ² by
    exactly 1 + lr²·σ(ψθ)², since the step is perpendicular to the radius. Alternating steps
    neither converge nor diverge: their linearisation has determinant 1 and eigenvalues on the
    unit circle for lr < 4, so the players keep circling (Mescheder et al. 2018).
    """
    if not isinstance(steps, int) or isinstance(steps, bool) or steps < 0:
        raise ValueError(f"steps must be an int >= 0, got {steps!r}")
    if isinstance(lr, bool) or not isinstance(lr, (int, float)) or not math.isfinite(lr) or lr <= 0:
        raise ValueError(f"lr must be a positive number, got {lr!r}")
    if update not in ("simultaneous", "alternating"):
        raise ValueError(f"update must be 'simultaneous' or 'alternating', got {update!r}")
    for value, name in ((theta, "theta"), (psi, "psi")):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise ValueError(f"{name} must be a finite number, got {value!r}")
    _check_dirac_options(instance_noise, r1)
    theta, psi = float(theta), float(psi)
    path = [(theta, psi)]
    for _ in range(steps):
        if update == "simultaneous":
            d_theta, d_psi = dirac_gan_field(theta, psi, instance_noise=instance_noise, r1=r1)
            theta, psi = theta + lr * d_theta, psi + lr * d_psi
        else:
            psi = psi + lr * dirac_gan_field(theta, psi, instance_noise=instance_noise, r1=r1)[1]  # update_D
            theta = theta + lr * dirac_gan_field(theta, psi, instance_noise=instance_noise, r1=r1)[0]  # update_G
        path.append((theta, psi))
    return torch.tensor(path, dtype=torch.float64)  # (steps + 1, 2)
