"""The GAN theory helpers: D*, JSD, V(D*, G) = -log 4 + 2 JSD, toy mixtures, mode counting."""

import math

import pytest
import torch

from spokenstyle import theory
from spokenstyle.theory import (LOG4, GaussianMixture, ToyDiscriminator, ToyGANConfig, ToyGenerator,
                                grid_1d, grid_2d, integrate, js_divergence, jsd_from_value,
                                kl_divergence, mode_coverage, optimal_discriminator, value_grid,
                                value_mc)

X = grid_1d(-12.0, 12.0, 4001)  # wide and fine enough for every 1-D density below


def _pdf(mixture: GaussianMixture) -> torch.Tensor:
    return mixture.pdf(X[:, None])


PAIRS = {
    "overlapping": (GaussianMixture([-2.0, 2.0], 0.5), GaussianMixture([0.0], 1.0)),
    "shifted": (GaussianMixture([0.0], 1.0), GaussianMixture([0.5], 1.0)),
    "unequal_weights": (GaussianMixture([-1.0, 3.0], [0.4, 0.8], [0.3, 0.7]), GaussianMixture([1.0], 2.0)),
}


# --- integration and divergences -----------------------------------------------------------------

@pytest.mark.parametrize("mixture", [GaussianMixture([0.0], 1.0), PAIRS["unequal_weights"][0]],
                         ids=["normal", "mixture"])
def test_densities_integrate_to_one(mixture):
    assert integrate(_pdf(mixture), X).item() == pytest.approx(1.0, abs=1e-6)


def test_2d_density_integrates_to_one():
    x, y, points = grid_2d(-3.0, 3.0, 241)
    ring = GaussianMixture.ring(std=0.2)
    values = ring.pdf(points).reshape(x.numel(), y.numel())
    assert integrate(values, x, y).item() == pytest.approx(1.0, abs=1e-4)
    # "ij" order: values[i, j] is the density at (x[i], y[j])
    assert values[200, 120].item() == pytest.approx(ring.pdf(torch.stack([x[200], y[120]])[None]).item())


@pytest.mark.parametrize("name", list(PAIRS))
def test_jsd_of_identical_is_zero(name):
    p = _pdf(PAIRS[name][0])
    assert js_divergence(p, p, X).item() == pytest.approx(0.0, abs=1e-12)
    assert kl_divergence(p, p, X).item() == pytest.approx(0.0, abs=1e-12)


def test_jsd_of_disjoint_is_log2():
    p, q = _pdf(GaussianMixture([-6.0], 0.3)), _pdf(GaussianMixture([6.0], 0.3))
    assert js_divergence(p, q, X).item() == pytest.approx(math.log(2), abs=1e-6)
    assert kl_divergence(p, q, X).item() > 100  # huge but finite on this grid
    exact_zero = torch.where(X < 0, p, torch.zeros_like(p))
    assert kl_divergence(exact_zero, torch.where(X > 0, q, torch.zeros_like(q)), X).item() == math.inf


def test_kl_of_two_normals_matches_closed_form():
    """KL(N(0,1) || N(m, s²)) = log s + (1 + m²) / (2 s²) - 1/2."""
    m, s = 0.7, 1.6
    p, q = _pdf(GaussianMixture([0.0], 1.0)), _pdf(GaussianMixture([m], s))
    expected = math.log(s) + (1 + m * m) / (2 * s * s) - 0.5
    assert kl_divergence(p, q, X).item() == pytest.approx(expected, abs=1e-7)


@pytest.mark.parametrize("name", list(PAIRS))
def test_jsd_is_symmetric_bounded_and_matches_kl_definition(name):
    p, q = (_pdf(m) for m in PAIRS[name])
    jsd = js_divergence(p, q, X).item()
    assert jsd == pytest.approx(js_divergence(q, p, X).item(), abs=1e-12)
    assert 0 < jsd < math.log(2)
    m = (p + q) / 2
    assert jsd == pytest.approx(0.5 * kl_divergence(p, m, X).item() + 0.5 * kl_divergence(q, m, X).item())


# --- D* and V(D*, G) = -log 4 + 2 JSD -----------------------------------------------------------

@pytest.mark.parametrize("name", list(PAIRS))
def test_value_at_dstar_is_minus_log4_plus_2jsd(name):
    p_data, p_g = (_pdf(m) for m in PAIRS[name])
    d_star = optimal_discriminator(p_data, p_g)
    v = value_grid(d_star, p_data, p_g, X).item()
    jsd = js_divergence(p_data, p_g, X).item()
    # exact up to the grid's truncated tails (1e-8 here): the identity uses ∫p_data = ∫p_g = 1
    assert v == pytest.approx(-LOG4 + 2 * jsd, abs=1e-6)
    assert jsd_from_value(v) == pytest.approx(jsd, abs=1e-6)


@pytest.mark.parametrize("name", list(PAIRS))
@pytest.mark.parametrize("perturb", [-0.05, 0.05])
def test_dstar_maximises_the_value(name, perturb):
    """Any other discriminator does worse: V(D* ± ε·bump, G) < V(D*, G)."""
    p_data, p_g = (_pdf(m) for m in PAIRS[name])
    d_star = optimal_discriminator(p_data, p_g)
    other = (d_star + perturb * torch.exp(-X.square())).clamp(1e-6, 1 - 1e-6)
    assert value_grid(other, p_data, p_g, X) < value_grid(d_star, p_data, p_g, X)


def test_dstar_pointwise_argmax_and_edge_cases():
    """a·log y + b·log(1 - y) peaks at y = a / (a + b): compare with a brute-force search."""
    y = torch.linspace(1e-4, 1 - 1e-4, 20001, dtype=torch.float64)
    for a, b in [(1.0, 1.0), (0.3, 2.0), (5.0, 0.1)]:
        best = y[torch.argmax(a * torch.log(y) + b * torch.log(1 - y))].item()
        d = optimal_discriminator(torch.tensor([a]), torch.tensor([b])).item()
        assert d == pytest.approx(best, abs=1e-4) and d == pytest.approx(a / (a + b))
    out = optimal_discriminator(torch.tensor([0.0, 1.0, 0.0]), torch.tensor([0.0, 0.0, 2.0]))
    assert out.tolist() == [0.5, 1.0, 0.0]


def test_value_mc_matches_grid_integral():
    p_data, p_g = PAIRS["overlapping"]
    gen = torch.Generator().manual_seed(0)
    real, fake = p_data.sample(200_000, gen, dtype=torch.float64), p_g.sample(200_000, gen, dtype=torch.float64)

    def d_star_logit(x):  # log p_data - log p_g
        return p_data.log_prob(x) - p_g.log_prob(x)

    v_mc = value_mc(d_star_logit, real, fake).item()
    v_probs = value_mc(lambda x: torch.sigmoid(d_star_logit(x)), real, fake, outputs="probs").item()
    v_grid = value_grid(optimal_discriminator(_pdf(p_data), _pdf(p_g)), _pdf(p_data), _pdf(p_g), X).item()
    assert v_mc == pytest.approx(v_grid, abs=0.01)  # Monte-Carlo error ~ 1/sqrt(200k)
    assert v_probs == pytest.approx(v_mc, abs=1e-9)


def test_trained_discriminator_approaches_dstar():
    """A tiny D trained with BCE on fresh samples lands near D* on the bulk of the support."""
    torch.manual_seed(0)
    p_data, p_g = GaussianMixture([-1.5, 1.5], 0.5), GaussianMixture([0.0], 1.0)
    cfg = ToyGANConfig(data_dim=1, hidden=32, depth=2)
    disc = ToyDiscriminator(cfg)
    opt = torch.optim.Adam(disc.parameters(), lr=3e-3)
    gen = torch.Generator().manual_seed(0)
    from spokenstyle.losses import minimax_d_loss
    for _ in range(400):
        loss = minimax_d_loss(disc(p_data.sample(512, gen)), disc(p_g.sample(512, gen)))
        opt.zero_grad()
        loss.backward()
        opt.step()
    xs = torch.linspace(-2.0, 2.0, 101)[:, None]
    with torch.no_grad():
        d = torch.sigmoid(disc(xs)).double()
    d_star = optimal_discriminator(p_data.pdf(xs).double(), p_g.pdf(xs).double())
    assert (d - d_star).abs().max().item() < 0.1


def test_value_bad_inputs():
    p = _pdf(GaussianMixture([0.0], 1.0))
    with pytest.raises(ValueError, match="probabilities"):
        value_grid(p * 10, p, p, X)
    with pytest.raises(ValueError, match="one shape"):
        value_grid(p[:-1], p, p, X)
    with pytest.raises(ValueError, match="non-negative"):
        js_divergence(-p, p, X)
    with pytest.raises(ValueError, match="one shape"):
        optimal_discriminator(p, p[:5])
    with pytest.raises(TypeError, match="floating-point"):
        optimal_discriminator(torch.tensor([1]), torch.tensor([1]))
    with pytest.raises(ValueError, match="increasing"):
        integrate(p, X.flip(0))
    with pytest.raises(ValueError, match="outputs"):
        value_mc(lambda x: x[:, 0], torch.zeros(3, 1), torch.zeros(3, 1), outputs="sigmoid")
    with pytest.raises(ValueError, match="outside"):
        value_mc(lambda x: x[:, 0] + 2, torch.zeros(3, 1), torch.zeros(3, 1), outputs="probs")
    with pytest.raises(ValueError, match="lo < hi"):
        grid_1d(1.0, 0.0, 10)


# --- toy distributions ---------------------------------------------------------------------------

def test_ring_sampler_statistics():
    ring = GaussianMixture.ring(k=8, radius=2.0, std=0.05)
    x = ring.sample(40_000, torch.Generator().manual_seed(0))
    assert x.shape == (40_000, 2) and x.dtype == torch.float32
    assert x.mean(0).abs().max().item() < 0.05  # symmetric ring: centred at the origin
    assert x.norm(dim=1).mean().item() == pytest.approx(2.0, abs=0.01)
    nearest = torch.cdist(x.double(), ring.means).argmin(1)
    freq = torch.bincount(nearest, minlength=8).double() / x.shape[0]
    assert (freq - 1 / 8).abs().max().item() < 0.01  # equal weights
    resid = x.double() - ring.means[nearest]
    assert resid.std().item() == pytest.approx(0.05, rel=0.03)


def test_sampling_is_deterministic_and_weighted():
    mix = GaussianMixture([-3.0, 3.0], 0.5, weights=[0.2, 0.8])
    a = mix.sample(1000, torch.Generator().manual_seed(5))
    b = mix.sample(1000, torch.Generator().manual_seed(5))
    assert torch.equal(a, b) and a.shape == (1000, 1)
    x = mix.sample(50_000, torch.Generator().manual_seed(1))
    assert (x > 0).double().mean().item() == pytest.approx(0.8, abs=0.01)


def test_log_prob_matches_torch_distributions():
    mix = GaussianMixture([[0.0, 1.0], [2.0, -1.0]], [0.5, 1.5], weights=[0.25, 0.75])
    ref = torch.distributions.MixtureSameFamily(
        torch.distributions.Categorical(probs=torch.tensor([0.25, 0.75], dtype=torch.float64)),
        torch.distributions.Independent(torch.distributions.Normal(
            mix.means, mix.stds[:, None].expand(2, 2)), 1))
    x = torch.randn(100, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64) * 2
    torch.testing.assert_close(mix.log_prob(x), ref.log_prob(x))
    assert mix.log_prob(x.float()).dtype == torch.float32


def test_mixture_bad_inputs():
    with pytest.raises(ValueError, match="stds"):
        GaussianMixture([0.0, 1.0], [1.0, -1.0])
    with pytest.raises(ValueError, match="weights"):
        GaussianMixture([0.0, 1.0], 1.0, weights=[1.0])
    with pytest.raises(ValueError, match="shape"):
        GaussianMixture.ring().log_prob(torch.zeros(5, 3))
    with pytest.raises(ValueError, match="positive int"):
        GaussianMixture.ring().sample(0)


# --- mode counting ---------------------------------------------------------------------------------

@pytest.mark.parametrize("modes", [[0], [0, 4], [1, 2, 3, 5, 6, 7], list(range(8))])
def test_mode_coverage_on_constructed_samples(modes):
    ring = GaussianMixture.ring(std=0.05)
    gen = torch.Generator().manual_seed(0)
    per_mode = 2000
    x = torch.cat([ring.means[m].float() + 0.05 * torch.randn(per_mode, 2, generator=gen) for m in modes])
    junk = torch.zeros(len(modes) * 400, 2)  # at the centre: far from every mode
    cov = mode_coverage(torch.cat([x, junk]), ring)
    assert cov.covered == len(modes) and cov.num_modes == 8
    inside = 1 - math.exp(-4.5)  # a 2-D Gaussian's mass within 3 stds
    assert cov.high_quality == pytest.approx(inside * per_mode / (per_mode + 400), abs=0.01)
    assert cov.counts[modes].sum().item() == pytest.approx(inside * len(modes) * per_mode, rel=0.01)
    assert f"{len(modes)}/8 modes covered" in str(cov)


def test_mode_coverage_threshold():
    ring = GaussianMixture.ring()
    x = torch.cat([ring.means[0].float().expand(97, 2), ring.means[1].float().expand(3, 2)])
    assert mode_coverage(x, ring).covered == 1  # 3 % is below the default 1/32
    assert mode_coverage(x, ring, min_fraction=0.03).covered == 2
    with pytest.raises(ValueError, match="min_fraction"):
        mode_coverage(x, ring, min_fraction=0.0)


# --- the toy MLPs -----------------------------------------------------------------------------------

@pytest.mark.parametrize("pack", [1, 4])
def test_toy_gan_shapes(pack):
    cfg = ToyGANConfig(data_dim=2, latent_dim=3, hidden=16, depth=2, pack=pack)
    gen, disc = ToyGenerator(cfg), ToyDiscriminator(cfg)
    x = gen.sample(8, torch.Generator().manual_seed(0))
    assert x.shape == (8, 2) and not x.requires_grad
    assert disc(x).shape == (8 // pack,)
    with pytest.raises(ValueError, match=r"shape \(B, 3\)"):
        gen(torch.zeros(4, 2))
    if pack > 1:
        with pytest.raises(ValueError, match="divisible"):
            disc(torch.zeros(6, 2))
    with pytest.raises(ValueError, match="ToyGANConfig.hidden"):
        ToyGANConfig(hidden=0)


def test_all_exported():
    for name in theory.__all__:
        assert hasattr(theory, name)
