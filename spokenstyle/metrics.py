"""How good are generated pictures? Distances between sets of features, always beside a baseline.

A GAN metric compares two *sets* of images through a feature extractor: every image becomes a
vector, and the metric compares the two clouds of vectors. The book's extractor is a small
classifier trained on real ShapeScenes renders only (:mod:`spokenstyle.models.features`), so
"feature space" means "what tells ShapeScenes' attributes and styles apart". Inception-v3
features (the "I" in FID) would need a download and know nothing about our shapes; so we call
our number **FD** (Fréchet distance), never FID, and it is not comparable with published FIDs.

The metrics:

* :func:`frechet_distance` (FD, Heusel et al. 2017): fit a Gaussian to each set and take the
  Fréchet (2-Wasserstein) distance between them,
  ``|μ_a - μ_b|² + tr(Σ_a + Σ_b - 2 (Σ_a Σ_b)^½)``. Biased upwards for finite sets: two sets
  drawn from the *same* distribution score above 0.
* :func:`kid` (KID, Bińkowski et al. 2018): the unbiased estimate of the squared maximum mean
  discrepancy with the cubic polynomial kernel ``k(x, y) = (x·y / d + 1)³``, averaged over
  random subsets. Unbiased: about 0 (and sometimes negative) for two sets of one distribution.
* :func:`prdc` (Naeem et al. 2020, k = 5): *precision* (fraction of fakes inside the real
  manifold: quality), *recall* (fraction of reals inside the fake manifold: diversity),
  *density* and *coverage* (their outlier-robust versions). A manifold is the union of balls
  around each sample with radius its distance to its k-th nearest neighbour.

Chapter 11's tools for the traps of these metrics: :func:`fd_by_sample_size` and
:func:`extrapolate_fd` (FD against 1/N and its value at N → ∞, Chong & Forsyth 2020) and
:func:`matching_selection` (a subset chosen to imitate the reference set in one feature space,
which lowers FD there without being better pictures).

A number alone says little: a finite sample of *real* images also has FD > 0 and precision < 1
against another. So every metric is reported beside its **real-vs-real baseline**: the same
metric between the reference set and independent real sets of the same size as the fakes
(:func:`compare_to_baseline`). One such set is one random draw: at 2,000 samples the
real-vs-real FD of the book's feature space varies by about ±20 % from one real set to the next,
so :func:`spokenstyle.evaluation.evaluate_images` averages the baseline over several disjoint
real sets (five by default) and reports its spread too; a ratio "FD / baseline" then no longer depends on which
real set happened to be drawn.

References:
    Heusel et al. 2017, "GANs Trained by a Two Time-Scale Update Rule Converge to a Local Nash
    Equilibrium", https://arxiv.org/abs/1706.08500 (FID)
    Bińkowski et al. 2018, "Demystifying MMD GANs", https://arxiv.org/abs/1801.01401 (KID)
    Kynkäänniemi et al. 2019, "Improved Precision and Recall Metric for Assessing Generative
    Models", https://arxiv.org/abs/1904.06991
    Naeem et al. 2020, "Reliable Fidelity and Diversity Metrics for Generative Models",
    https://arxiv.org/abs/2002.09797 (density and coverage)
    Wang, Bovik, Sheikh & Simoncelli 2004, "Image Quality Assessment: From Error Visibility to
    Structural Similarity" (SSIM).
    Chong & Forsyth 2020, "Effectively Unbiased FID and Inception Score and where to find them",
    https://arxiv.org/abs/1911.07023 (FD against 1/N, extrapolated to N → ∞:
    :func:`fd_by_sample_size`)
    Kynkäänniemi, Karras, Aittala, Aila & Lehtinen 2023, "The Role of ImageNet Classes in Fréchet
    Inception Distance", https://arxiv.org/abs/2203.06026 (a set chosen to match a feature space's
    statistics lowers FD in that space without being better pictures: :func:`matching_selection`)
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F

__all__ = [
    "frechet_distance_gaussians",
    "frechet_distance",
    "FewSamplesWarning",
    "FD_MIN_SAMPLES_PER_DIM",
    "fd_is_meaningful",
    "mmd2_unbiased",
    "kid",
    "prdc",
    "METRICS",
    "Comparison",
    "BaselineReport",
    "compare_to_baseline",
    "mean_sd",
    "check_unit_images",
    "ssim",
    "FDBySampleSize",
    "extrapolate_fd",
    "fd_by_sample_size",
    "matching_selection",
]


def _features(x: torch.Tensor | np.ndarray, name: str, *, min_rows: int = 2) -> torch.Tensor:
    """(N, D) float64 CPU tensor, or a clear error."""
    if isinstance(x, np.ndarray):
        x = torch.from_numpy(x)
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be an (N, D) tensor or array of features, got {type(x).__name__}")
    if x.dim() != 2:
        raise ValueError(f"{name} must be an (N, D) matrix of features (one row per image), got shape {tuple(x.shape)}")
    if x.shape[0] < min_rows:
        raise ValueError(f"{name} has {x.shape[0]} rows; this metric needs at least {min_rows}")
    x = x.detach().to("cpu", torch.float64)
    if not torch.isfinite(x).all():
        raise ValueError(f"{name} contains NaN or infinite values")
    return x


def _same_dim(a: torch.Tensor, b: torch.Tensor) -> None:
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"the two feature sets have different dimensions: {a.shape[1]} and {b.shape[1]}")


# -- Fréchet distance --------------------------------------------------------------------------

def _sqrt_psd(matrix: torch.Tensor) -> torch.Tensor:
    """The symmetric square root of a symmetric positive semi-definite matrix (eigenvalues < 0
    from rounding are clipped to 0)."""
    values, vectors = torch.linalg.eigh(matrix)
    return (vectors * values.clamp_min(0).sqrt()) @ vectors.T


def frechet_distance_gaussians(mu_a: torch.Tensor, sigma_a: torch.Tensor,
                               mu_b: torch.Tensor, sigma_b: torch.Tensor) -> float:
    """The Fréchet (2-Wasserstein) distance, squared, between N(μ_a, Σ_a) and N(μ_b, Σ_b):
    ``|μ_a - μ_b|² + tr Σ_a + tr Σ_b - 2 tr (Σ_a^½ Σ_b Σ_a^½)^½``.

    ``tr (Σ_a Σ_b)^½`` equals ``tr (Σ_a^½ Σ_b Σ_a^½)^½`` (same eigenvalues), and the second
    form is a symmetric matrix, so a symmetric eigendecomposition computes it stably; there is
    no complex square root to take the real part of.
    """
    mu_a, mu_b = (torch.as_tensor(m, dtype=torch.float64).flatten() for m in (mu_a, mu_b))
    sigma_a, sigma_b = (torch.as_tensor(s, dtype=torch.float64) for s in (sigma_a, sigma_b))
    d = mu_a.numel()
    if mu_b.numel() != d or sigma_a.shape != (d, d) or sigma_b.shape != (d, d):
        raise ValueError(f"shapes do not fit: mu {tuple(mu_a.shape)} / {tuple(mu_b.shape)}, "
                         f"sigma {tuple(sigma_a.shape)} / {tuple(sigma_b.shape)}; expected (D,) and (D, D)")
    root_a = _sqrt_psd(sigma_a)
    middle = root_a @ sigma_b @ root_a
    middle = (middle + middle.T) / 2  # symmetric up to rounding; make it exactly so
    tr_sqrt = torch.linalg.eigvalsh(middle).clamp_min(0).sqrt().sum()
    value = (mu_a - mu_b).square().sum() + sigma_a.trace() + sigma_b.trace() - 2 * tr_sqrt
    return float(value.clamp_min(0))


class FewSamplesWarning(UserWarning):
    """FD was computed from fewer than :data:`FD_MIN_SAMPLES_PER_DIM` × D samples per set."""


FD_MIN_SAMPLES_PER_DIM = 2  # below 2 D samples a covariance estimate is too degenerate for FD to rank anything


def fd_is_meaningful(n: int, dim: int) -> bool:
    """Whether FD from ``n`` samples per set in ``dim`` dimensions can be trusted: with fewer than
    ``2 * dim`` samples the estimated covariance has rank at most n - 1 (singular below ``dim``),
    its bias swamps real differences, and fakes can score "better than real". KID is unbiased at
    any n; use it there."""
    return n >= FD_MIN_SAMPLES_PER_DIM * dim


def frechet_distance(features_a: torch.Tensor | np.ndarray, features_b: torch.Tensor | np.ndarray, *,
                     warn: bool = True) -> float:
    """FD between two feature sets (N_a, D) and (N_b, D): each set's mean and unbiased
    covariance (divided by N - 1, as torchmetrics' FID), then :func:`frechet_distance_gaussians`.

    FD of a set with itself is 0; FD of two finite samples of one distribution is > 0 (it is
    biased by about tr Σ / N per set), hence the real-vs-real baseline. With fewer than 2 D
    samples in a set (:func:`fd_is_meaningful`) it warns (:class:`FewSamplesWarning`) unless
    ``warn`` is False: callers that report the case themselves (a flag beside the score) pass it.
    """
    a = _features(features_a, "features_a")
    b = _features(features_b, "features_b")
    _same_dim(a, b)
    n, dim = min(a.shape[0], b.shape[0]), a.shape[1]
    if warn and not fd_is_meaningful(n, dim):
        warnings.warn(f"FD from {n} samples per set in {dim} dimensions is not meaningful: below "
                      f"{FD_MIN_SAMPLES_PER_DIM * dim} samples the covariance estimate is degenerate and FD can rank "
                      f"fakes above real pictures; use KID (metrics.kid, unbiased at any n) or more samples",
                      FewSamplesWarning, stacklevel=2)
    return frechet_distance_gaussians(a.mean(0), torch.cov(a.T).reshape(a.shape[1], a.shape[1]),
                                      b.mean(0), torch.cov(b.T).reshape(b.shape[1], b.shape[1]))


# -- KID ---------------------------------------------------------------------------------------

def _poly_kernel(x: torch.Tensor, y: torch.Tensor, degree: int, gamma: float | None, coef: float) -> torch.Tensor:
    gamma = 1.0 / x.shape[1] if gamma is None else gamma
    return (x @ y.T * gamma + coef) ** degree


def mmd2_unbiased(x: torch.Tensor, y: torch.Tensor, *, degree: int = 3, gamma: float | None = None,
                  coef: float = 1.0) -> float:
    """Unbiased MMD² between two feature sets with the polynomial kernel ``(γ x·y + coef)^degree``
    (γ = 1/D by default): the mean kernel within each set without its diagonal, minus twice the
    mean kernel across the sets (Bińkowski et al. 2018, eq. 3)."""
    x = _features(x, "x")
    y = _features(y, "y")
    _same_dim(x, y)
    m, n = x.shape[0], y.shape[0]
    k_xx = _poly_kernel(x, x, degree, gamma, coef)
    k_yy = _poly_kernel(y, y, degree, gamma, coef)
    k_xy = _poly_kernel(x, y, degree, gamma, coef)
    within_x = (k_xx.sum() - k_xx.diagonal().sum()) / (m * (m - 1))
    within_y = (k_yy.sum() - k_yy.diagonal().sum()) / (n * (n - 1))
    return float(within_x + within_y - 2 * k_xy.mean())


def kid(features_a: torch.Tensor | np.ndarray, features_b: torch.Tensor | np.ndarray, *, subsets: int = 10,
        subset_size: int = 1000, degree: int = 3, gamma: float | None = None, coef: float = 1.0,
        seed: int = 0) -> tuple[float, float]:
    """KID: :func:`mmd2_unbiased` averaged over ``subsets`` random subsets of ``subset_size``
    rows of each set (as torchmetrics' ``KernelInceptionDistance``); returns (mean, std).

    ``subset_size`` larger than a set is reduced to the smaller set's size. Subsets are drawn
    from a generator seeded with ``seed``, so the result is deterministic.
    """
    a = _features(features_a, "features_a")
    b = _features(features_b, "features_b")
    _same_dim(a, b)
    if not isinstance(subsets, int) or subsets < 1:
        raise ValueError(f"subsets must be a positive int, got {subsets!r}")
    if not isinstance(subset_size, int) or subset_size < 2:
        raise ValueError(f"subset_size must be an int >= 2, got {subset_size!r}")
    size = min(subset_size, a.shape[0], b.shape[0])
    rng = torch.Generator().manual_seed(seed)
    scores = []
    for _ in range(subsets):
        ia = torch.randperm(a.shape[0], generator=rng)[:size]
        ib = torch.randperm(b.shape[0], generator=rng)[:size]
        scores.append(mmd2_unbiased(a[ia], b[ib], degree=degree, gamma=gamma, coef=coef))
    values = torch.tensor(scores, dtype=torch.float64)
    return float(values.mean()), float(values.std(unbiased=False))


# -- precision, recall, density, coverage ------------------------------------------------------

def _kth_neighbour_radius(x: torch.Tensor, k: int) -> torch.Tensor:
    """Distance from each row to its k-th nearest *other* row, (N,)."""
    d = torch.cdist(x, x)  # (N, N), 0 on the diagonal
    return d.kthvalue(k + 1, dim=1).values  # the +1 skips the point itself


def prdc(real: torch.Tensor | np.ndarray, fake: torch.Tensor | np.ndarray, *, k: int = 5) -> dict[str, float]:
    """Precision, recall, density and coverage of ``fake`` against ``real`` (Naeem et al. 2020).

    With B(x, r) the ball around x whose radius r is x's distance to its k-th nearest
    neighbour in its own set:

    * precision = fraction of fakes inside ∪ B(real_i)       (are fakes realistic?)
    * recall    = fraction of reals inside ∪ B(fake_j)       (do fakes cover the reals?)
    * density   = mean over fakes of (number of real balls containing it) / k   (can exceed 1)
    * coverage  = fraction of reals whose own ball contains at least one fake

    Identical sets give precision = recall = coverage = 1; sets far apart give 0 for all four.
    """
    real = _features(real, "real", min_rows=k + 1)
    fake = _features(fake, "fake", min_rows=k + 1)
    _same_dim(real, fake)
    if not isinstance(k, int) or k < 1:
        raise ValueError(f"k must be a positive int, got {k!r}")
    r_real = _kth_neighbour_radius(real, k)  # (N,)
    r_fake = _kth_neighbour_radius(fake, k)  # (M,)
    d = torch.cdist(real, fake)  # (N, M)
    inside_real = d <= r_real[:, None]  # fake j inside real ball i
    precision = inside_real.any(dim=0).double().mean()
    recall = (d <= r_fake[None, :]).any(dim=1).double().mean()
    density = inside_real.double().sum(dim=0).mean() / k
    coverage = (d.min(dim=1).values <= r_real).double().mean()
    return {"precision": float(precision), "recall": float(recall),
            "density": float(density), "coverage": float(coverage)}


# -- beside the baseline -----------------------------------------------------------------------

def _fd(a, b):
    return {"FD": frechet_distance(a, b)}


def _kid(a, b):
    return {"KID": kid(a, b)[0]}


def _prdc(a, b):
    return prdc(a, b, k=5)


# name -> function(real_features, other_features) -> {metric: value}; what compare_to_baseline runs
METRICS: dict[str, Callable[[torch.Tensor, torch.Tensor], dict[str, float]]] = {
    "fd": _fd,
    "kid": _kid,
    "prdc": _prdc,
}
_HIGHER_IS_BETTER = {"FD": False, "KID": False, "precision": True, "recall": True, "density": True,
                     "coverage": True, "confident": True}


@dataclass(frozen=True)
class Comparison:
    """One metric for (real_a vs fake) beside the same metric for (real_a vs real_b)."""

    name: str
    fake: float
    baseline: float  # the mean over the real-vs-real sets
    baseline_sd: float = 0.0  # the standard deviation over those sets (0 for a single set)
    baseline_sets: int = 1

    @property
    def higher_is_better(self) -> bool:
        return _HIGHER_IS_BETTER.get(self.name, False)

    @property
    def ratio(self) -> float:
        """fake / baseline: 1 means as good as another real sample (for FD: ≤ 3 is our target)."""
        return self.fake / self.baseline if self.baseline != 0 else float("inf")

    def __str__(self) -> str:
        arrow = "↑" if self.higher_is_better else "↓"
        return f"{self.name} {arrow} {self.fake:.4g} (real vs real: {self.baseline:.4g})"


@dataclass
class BaselineReport:
    """Every metric against the real-vs-real baseline; ``str(report)`` is a table."""

    comparisons: dict[str, Comparison] = field(default_factory=dict)
    label: str = "fake"
    n: int = 0

    def __getitem__(self, name: str) -> Comparison:
        return self.comparisons[name]

    def as_dict(self, prefix: str = "") -> dict[str, float]:
        """Flat numbers for manifests and ``runtime.report``: ``fd``, ``fd_real_vs_real``, ..."""
        out: dict[str, float] = {}
        for name, c in self.comparisons.items():
            key = prefix + name.lower()
            out[key] = c.fake
            out[key + "_real_vs_real"] = c.baseline
        return out

    def __str__(self) -> str:
        width = max(len(self.label), 8)
        sets = max((c.baseline_sets for c in self.comparisons.values()), default=1)
        note = f"n = {self.n} per set" + (f"; real vs real: mean ± sd over {sets} real sets" if sets > 1 else "")
        lines = [f"{'metric':<12}{self.label:>{width}}  {'real vs real':>20}   ({note})"]
        for name, c in self.comparisons.items():
            arrow = "↑" if c.higher_is_better else "↓"
            base = f"{c.baseline:.4g} ± {c.baseline_sd:.2g}" if c.baseline_sets > 1 else f"{c.baseline:.4g}"
            lines.append(f"{name + ' ' + arrow:<12}{c.fake:>{width}.4g}  {base:>20}")
        return "\n".join(lines)

    def _repr_pretty_(self, printer, cycle) -> None:  # IPython shows the table
        printer.text(str(self))


def mean_sd(values: Sequence[float]) -> tuple[float, float]:
    """(mean, sample standard deviation) of a few numbers; the deviation is 0 for one number."""
    t = torch.tensor(list(values), dtype=torch.float64)
    return float(t.mean()), float(t.std(unbiased=True)) if len(t) > 1 else 0.0


def compare_to_baseline(real_a: torch.Tensor | np.ndarray,
                        real_b: torch.Tensor | np.ndarray | Sequence[torch.Tensor | np.ndarray],
                        fake: torch.Tensor | np.ndarray, *, metrics: Sequence[str] = ("fd", "kid", "prdc"),
                        label: str = "fake") -> BaselineReport:
    """Each metric for (real_a vs fake) and for (real_a vs real_b), side by side.

    Args:
        real_a: features of real images, the reference set (N, D).
        real_b: features of *other* real images, independent of real_a, same size as ``fake``:
            the baseline says what a perfect generator would score with this many samples. A
            list of such sets (disjoint from each other) gives the baseline as the mean over
            them, with their standard deviation in ``Comparison.baseline_sd``.
        fake: features of generated images (N, D).
        metrics: names from :data:`METRICS`: ``"fd"``, ``"kid"``, ``"prdc"`` (four numbers).
        label: the column title for ``fake`` (e.g. ``"DCGAN"``).
    """
    real_a = _features(real_a, "real_a")
    sets = list(real_b) if isinstance(real_b, (list, tuple)) else [real_b]
    if not sets:
        raise ValueError("real_b is an empty list: give at least one set of real features")
    sets = [_features(b, f"real_b[{i}]" if len(sets) > 1 else "real_b") for i, b in enumerate(sets)]
    fake = _features(fake, "fake")
    _same_dim(real_a, fake)
    for b in sets:
        _same_dim(real_a, b)
        if b.shape[0] != fake.shape[0]:
            raise ValueError(f"real_b has {b.shape[0]} rows and fake {fake.shape[0]}: the baseline is only "
                             "comparable with the same number of samples")
    unknown = [m for m in metrics if m not in METRICS]
    if unknown:
        raise ValueError(f"unknown metrics {unknown}; choose from {sorted(METRICS)}")
    report = BaselineReport(label=label, n=int(fake.shape[0]))
    for name in metrics:
        on_fake = METRICS[name](real_a, fake)
        on_real = [METRICS[name](real_a, b) for b in sets]
        for key in on_fake:
            mean, sd = mean_sd([r[key] for r in on_real])
            report.comparisons[key] = Comparison(key, on_fake[key], mean, sd, len(sets))
    return report


# -- structural similarity ---------------------------------------------------------------------

def check_unit_images(x: object, name: str) -> torch.Tensor:
    """``x`` if it is a floating-point (B, 3, H, W) tensor in [0, 1]; else a ValueError naming ``name``."""
    if not isinstance(x, torch.Tensor) or not x.is_floating_point() or x.dim() != 4 or x.shape[1] != 3:
        shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(f"{name} must be a floating-point (B, 3, H, W) tensor in [0, 1], got {shape}")
    if x.numel() and (x.min() < -1e-6 or x.max() > 1 + 1e-6):
        raise ValueError(f"{name} must be in [0, 1], got values in [{x.min():.3g}, {x.max():.3g}]")
    return x


def ssim(x: torch.Tensor, y: torch.Tensor, *, window: int = 11, sigma: float = 1.5) -> torch.Tensor:
    """Structural similarity (Wang et al. 2004) of [0, 1] images, per image: (B,), 1 = identical.

    An 11×11 Gaussian window (σ = 1.5), constants K1 = 0.01, K2 = 0.03, computed per channel and
    averaged; "valid" windows only, like scikit-image with ``gaussian_weights=True``.
    """
    x, y = check_unit_images(x, "x"), check_unit_images(y, "y")
    if x.shape != y.shape:
        raise ValueError(f"x and y must have the same shape, got {tuple(x.shape)} and {tuple(y.shape)}")
    if min(x.shape[-2:]) < window:
        raise ValueError(f"images must be at least {window} px on each side for SSIM, got {tuple(x.shape[-2:])}")
    coords = torch.arange(window, dtype=x.dtype, device=x.device) - (window - 1) / 2
    g = torch.exp(-coords ** 2 / (2 * sigma ** 2))
    g = (g / g.sum())
    kernel = (g[:, None] * g[None, :]).expand(3, 1, window, window)  # (3, 1, k, k), one per channel

    def blur(t: torch.Tensor) -> torch.Tensor:
        return F.conv2d(t, kernel, groups=3)

    c1, c2 = 0.01 ** 2, 0.03 ** 2
    mu_x, mu_y = blur(x), blur(y)
    var_x = blur(x * x) - mu_x ** 2
    var_y = blur(y * y) - mu_y ** 2
    cov = blur(x * y) - mu_x * mu_y
    s = ((2 * mu_x * mu_y + c1) * (2 * cov + c2)) / ((mu_x ** 2 + mu_y ** 2 + c1) * (var_x + var_y + c2))
    return s.mean((1, 2, 3))


# -- FD's bias with the sample size, and its extrapolation (Chong & Forsyth 2020) ----------------

def extrapolate_fd(sizes: Sequence[int], fds: Sequence[float]) -> tuple[float, float]:
    """The least-squares line ``FD(N) = fd_infinity + slope / N`` through (N, FD) points: returns
    ``(fd_infinity, slope)``. FD's bias is, to first order, proportional to 1/N (the error of a
    covariance estimated from N samples), so the intercept at 1/N = 0 estimates the FD of
    infinitely many samples (Chong & Forsyth 2020, "FID∞"); a slope says how much of a finite-N
    FD is bias."""
    n = torch.as_tensor(list(sizes), dtype=torch.float64)
    y = torch.as_tensor(list(fds), dtype=torch.float64)
    if n.dim() != 1 or n.shape != y.shape or len(n) < 2:
        raise ValueError(f"sizes and fds must be two lists of the same length >= 2, got {len(n)} and {len(y)}")
    if (n <= 0).any() or len(torch.unique(n)) < 2:
        raise ValueError(f"sizes must be positive and not all equal, got {n.tolist()}")
    x = 1.0 / n
    design = torch.stack([torch.ones_like(x), x], 1)  # (k, 2)
    coef = torch.linalg.lstsq(design, y[:, None]).solution[:, 0]
    return float(coef[0]), float(coef[1])


@dataclass(frozen=True)
class FDBySampleSize:
    """FD (and KID) of random subsets of two feature sets at several sizes N, and FD's
    extrapolation to N → ∞ (:func:`fd_by_sample_size`)."""

    sizes: tuple[int, ...]
    fd: tuple[float, ...]  # the mean FD over the repeats at each N
    fd_sd: tuple[float, ...]  # their standard deviation
    kid: tuple[float, ...]  # the mean unbiased MMD² (KID's kernel) on the same subsets
    kid_sd: tuple[float, ...]
    fd_infinity: float  # the intercept of FD against 1/N
    slope: float  # FD(N) ≈ fd_infinity + slope / N
    repeats: int = 1

    def predict(self, n: float) -> float:
        """The fitted line at N = ``n`` (``inf`` gives :attr:`fd_infinity`)."""
        return self.fd_infinity + self.slope / n


def fd_by_sample_size(features_a: torch.Tensor | np.ndarray, features_b: torch.Tensor | np.ndarray,
                      sizes: Sequence[int], *, repeats: int = 5, seed: int = 0,
                      vary: str = "both", with_kid: bool = True) -> FDBySampleSize:
    """FD between random subsets of ``features_a`` and ``features_b`` at each N of ``sizes``
    (``repeats`` draws per N, without replacement), KID's unbiased MMD² on the same subsets, and
    the line FD(N) = FD∞ + slope / N fitted to the means (:func:`extrapolate_fd`).

    ``vary="both"`` draws N rows from each set (a real-vs-real curve then extrapolates to about
    0); ``vary="b"`` keeps all of ``features_a`` (the reference statistics, as Chong & Forsyth
    keep the training set's) and draws N rows of ``features_b`` only.
    """
    a = _features(features_a, "features_a")
    b = _features(features_b, "features_b")
    _same_dim(a, b)
    sizes = [int(s) for s in sizes]
    if vary not in ("both", "b"):
        raise ValueError(f"vary must be 'both' or 'b', got {vary!r}")
    if not isinstance(repeats, int) or isinstance(repeats, bool) or repeats < 1:
        raise ValueError(f"repeats must be a positive int, got {repeats!r}")
    limit = b.shape[0] if vary == "b" else min(a.shape[0], b.shape[0])
    if len(sizes) < 2 or min(sizes) < 2 or max(sizes) > limit:
        raise ValueError(f"sizes must hold at least two values from 2 to {limit} (the rows available), got {sizes}")
    rng = torch.Generator().manual_seed(seed)
    fd_mean, fd_sd, kid_mean, kid_sd = [], [], [], []
    for n in sizes:
        fds, kids = [], []
        for _ in range(repeats):
            sub_a = a if vary == "b" else a[torch.randperm(a.shape[0], generator=rng)[:n]]
            sub_b = b[torch.randperm(b.shape[0], generator=rng)[:n]]
            fds.append(frechet_distance(sub_a, sub_b, warn=False))  # the bias at small N is what is measured
            if with_kid:
                kids.append(mmd2_unbiased(sub_a, sub_b))
        for values, mean_out, sd_out in ((fds, fd_mean, fd_sd), (kids, kid_mean, kid_sd)):
            m, sd = mean_sd(values) if values else (float("nan"), float("nan"))
            mean_out.append(m)
            sd_out.append(sd)
    fd_inf, slope = extrapolate_fd(sizes, fd_mean)
    return FDBySampleSize(tuple(sizes), tuple(fd_mean), tuple(fd_sd), tuple(kid_mean), tuple(kid_sd),
                          fd_inf, slope, repeats)


# -- gaming a feature space: resampling to match its statistics (Kynkäänniemi et al. 2023) --------

def matching_selection(pool: torch.Tensor | np.ndarray, target: torch.Tensor | np.ndarray, *,
                       seed: int = 0) -> torch.Tensor:
    """Indices of ``len(target)`` distinct rows of ``pool`` chosen to look like ``target`` in this
    feature space: the targets in a random order each take their nearest pool row not taken yet.

    The chosen rows are not better samples, only a subset whose statistics imitate the target's
    *in this space*: FD measured here falls, FD in an independent space need not (Kynkäänniemi et
    al. 2023 lowered FID this way by matching Inception's class histogram). Chapter 11 uses it
    to show why a generator must not be scored in its own discriminator's features.
    """
    p = _features(pool, "pool", min_rows=1)
    t = _features(target, "target", min_rows=1)
    _same_dim(p, t)
    if p.shape[0] < t.shape[0]:
        raise ValueError(f"the pool has {p.shape[0]} rows, fewer than the {t.shape[0]} to choose")
    d = torch.cdist(t, p)  # (T, P)
    order = torch.randperm(t.shape[0], generator=torch.Generator().manual_seed(seed))
    taken = torch.zeros(p.shape[0], dtype=torch.bool)
    chosen = torch.empty(t.shape[0], dtype=torch.long)
    for i in order.tolist():
        j = int(d[i].masked_fill(taken, float("inf")).argmin())
        taken[j] = True
        chosen[i] = j
    return chosen
