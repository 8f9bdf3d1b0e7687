"""The GAN theory helpers: D*, JSD, V(D*, G) = -log 4 + 2 JSD, toy mixtures, mode counting."""

import math

import pytest
import torch

from scipy.stats import wasserstein_distance

from spokenstyle import theory
from spokenstyle.theory import (LOG4, GaussianMixture, ToyDiscriminator, ToyGANConfig, ToyGenerator,
                                dirac_gan, dirac_gan_field, dirac_gan_value, grid_1d, grid_2d, integrate,
                                js_divergence, jsd_from_value, kl_divergence, mode_coverage,
                                optimal_discriminator, value_grid, value_mc, wasserstein_1d)

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


def test_jsd_of_narrow_densities_survives_underflow():
    """Far in the tails of a narrow Gaussian the density is a subnormal number, and (p + q) / 2
    rounds to 0 there; the JSD must stay finite (a regression: it was inf)."""
    x = grid_1d(-5.0, 5.0, 4001)
    p = GaussianMixture([0.0], 0.1).pdf(x)
    assert ((p > 0) & (p / 2 == 0)).any()  # the grid does reach the underflow
    for shift, expected in [(0.0, 0.0), (2.0, math.log(2))]:
        q = GaussianMixture([shift], 0.1).pdf(x)
        assert js_divergence(p, q, x).item() == pytest.approx(expected, abs=1e-9)
    q = GaussianMixture([0.1], 0.1).pdf(x)  # overlapping: between the extremes, and symmetric
    jsd = js_divergence(p, q, x).item()
    assert 0 < jsd < math.log(2) and jsd == pytest.approx(js_divergence(q, p, x).item(), abs=1e-12)


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


# --- stacks of toy networks ------------------------------------------------------------------------

def _seeded(cls, cfg, seed):
    torch.manual_seed(seed)
    return cls(cfg)


@pytest.mark.parametrize("cls", [ToyGenerator, ToyDiscriminator])
def test_model_stack_forward_and_unstack_match_the_copies(cls):
    cfg = ToyGANConfig(data_dim=2, latent_dim=2, hidden=16, depth=2)
    models = [_seeded(cls, cfg, seed) for seed in (0, 1, 2)]
    stack = theory.ModelStack(models)
    x = torch.randn(3, 7, 2, generator=torch.Generator().manual_seed(0))
    out = stack(x)
    assert len(stack) == 3 and out.shape[:2] == (3, 7)
    for i, model in enumerate(models):
        torch.testing.assert_close(out[i], model(x[i]))
        torch.testing.assert_close(stack.unstack(i)(x[i]), model(x[i]))
        assert type(stack.unstack(i)) is cls
    models[0].net[0].weight.data.zero_()  # the stack holds copies, not the models
    torch.testing.assert_close(stack(x)[0], out[0])


def test_model_stack_of_any_module_uses_vmap():
    """A module without ``stacked_forward`` runs through torch.func.vmap, with the same result."""
    models = []
    for seed in (0, 1):
        torch.manual_seed(seed)
        models.append(torch.nn.Sequential(torch.nn.Linear(3, 5), torch.nn.Tanh(), torch.nn.Linear(5, 2)))
    stack = theory.ModelStack(models)
    assert not hasattr(stack._template[0], "stacked_forward")
    x = torch.randn(2, 4, 3, generator=torch.Generator().manual_seed(0))
    for i, model in enumerate(models):
        torch.testing.assert_close(stack(x)[i], model(x[i]))
        torch.testing.assert_close(stack.unstack(i)(x[i]), model(x[i]))


@pytest.mark.parametrize("pack", [1, 2])
def test_stacked_forward_of_the_toy_mlps_matches_vmap(pack):
    """The toy MLPs' own batched forward = the generic vmap path, and it checks its input."""
    from torch.func import functional_call, vmap
    cfg = ToyGANConfig(data_dim=2, latent_dim=3, hidden=8, depth=2, pack=pack)
    for cls, d_in in ((ToyGenerator, 3), (ToyDiscriminator, 2)):
        stack = theory.ModelStack([_seeded(cls, cfg, s) for s in (0, 1, 2)])
        params = dict(zip(stack.names, stack.stacked))
        x = torch.randn(3, 6, d_in, generator=torch.Generator().manual_seed(1))
        generic = vmap(lambda p, xi: functional_call(stack._template[0], p, (xi,)))(params, x)
        torch.testing.assert_close(stack(x), generic)
        with pytest.raises(ValueError, match="shape"):
            stack._template[0].stacked_forward(params, x[0])  # (B, d): the copies' dimension is missing


def test_model_stack_trains_each_copy_as_if_alone():
    """Summed losses + Adam on the stack = K separate Adam runs (up to rounding), for a GAN step."""
    cfg = ToyGANConfig(data_dim=2, latent_dim=2, hidden=16, depth=2)
    seeds = (0, 1, 2)
    alone = [(_seeded(ToyGenerator, cfg, s), _seeded(ToyDiscriminator, cfg, 100 + s)) for s in seeds]
    g_stack = theory.ModelStack([_seeded(ToyGenerator, cfg, s) for s in seeds])
    d_stack = theory.ModelStack([_seeded(ToyDiscriminator, cfg, 100 + s) for s in seeds])
    opts = [(torch.optim.Adam(g.parameters(), lr=1e-2), torch.optim.Adam(d.parameters(), lr=1e-2)) for g, d in alone]
    opt_g, opt_d = torch.optim.Adam(g_stack.parameters(), lr=1e-2), torch.optim.Adam(d_stack.parameters(), lr=1e-2)
    from spokenstyle.losses import nonsaturating_d_loss, nonsaturating_g_loss
    gen = torch.Generator().manual_seed(0)
    for _ in range(20):
        real, z = torch.randn(3, 32, 2, generator=gen) + 2, torch.randn(3, 32, 2, generator=gen)
        for i, ((g, d), (og, od)) in enumerate(zip(alone, opts)):
            fake = g(z[i])
            od.zero_grad(); nonsaturating_d_loss(d(real[i]), d(fake.detach())).backward(); od.step()
            og.zero_grad(); nonsaturating_g_loss(d(fake)).backward(); og.step()
        fake = g_stack(z)
        loss_d = sum(nonsaturating_d_loss(r, f) for r, f in zip(d_stack(real), d_stack(fake.detach())))
        opt_d.zero_grad(); loss_d.backward(); opt_d.step()
        loss_g = sum(nonsaturating_g_loss(f) for f in d_stack(fake))
        opt_g.zero_grad(); loss_g.backward(); opt_g.step()
    probe = torch.randn(50, 2, generator=gen)
    for i, (g, d) in enumerate(alone):
        torch.testing.assert_close(g_stack.unstack(i)(probe), g(probe), atol=1e-5, rtol=1e-4)
        torch.testing.assert_close(d_stack.unstack(i)(probe), d(probe), atol=1e-5, rtol=1e-4)
    assert not torch.allclose(alone[0][0](probe), alone[1][0](probe))  # the copies did differ


def test_model_stack_bad_inputs():
    cfg = ToyGANConfig(data_dim=2, hidden=8, depth=1)
    with pytest.raises(TypeError, match="non-empty"):
        theory.ModelStack([])
    with pytest.raises(ValueError, match="one class"):
        theory.ModelStack([ToyGenerator(cfg), ToyDiscriminator(cfg)])
    with pytest.raises(ValueError, match="shapes"):
        theory.ModelStack([ToyGenerator(cfg), ToyGenerator(ToyGANConfig(data_dim=2, hidden=9, depth=1))])
    with pytest.raises(ValueError, match="buffers"):
        theory.ModelStack([torch.nn.BatchNorm1d(3), torch.nn.BatchNorm1d(3)])
    stack = theory.ModelStack([ToyGenerator(cfg), ToyGenerator(cfg)])
    with pytest.raises(ValueError, match=r"shape \(2, \.\.\.\)"):
        stack(torch.zeros(3, 4, 2))
    with pytest.raises(IndexError, match="no model 2"):
        stack.unstack(2)


# --- Wasserstein-1 of 1-D samples ----------------------------------------------------------------

@pytest.mark.parametrize("sizes", [(500, 500), (300, 701), (1, 5)], ids=["equal", "unequal", "tiny"])
@pytest.mark.parametrize("seed", [0, 1])
def test_wasserstein_1d_matches_scipy(sizes, seed):
    gen = torch.Generator().manual_seed(seed)
    u = torch.randn(sizes[0], generator=gen, dtype=torch.float64)
    v = 0.5 * torch.randn(sizes[1], generator=gen, dtype=torch.float64) ** 3 + 1.0  # skewed, shifted
    assert wasserstein_1d(u, v).item() == pytest.approx(wasserstein_distance(u.numpy(), v.numpy()), rel=1e-12, abs=1e-15)
    assert wasserstein_1d(u[:, None], v.float()).item() == pytest.approx(wasserstein_1d(v, u).item(), rel=1e-6)


def test_wasserstein_1d_hand_cases():
    """Point masses: W1(δ_a, δ_b) = |a - b|. A sample and its copy shifted by t: exactly |t|.
    Equal sizes: the mean distance between the sorted samples (the optimal matching)."""
    assert wasserstein_1d(torch.tensor([0.0]), torch.tensor([3.0])).item() == 3.0
    assert wasserstein_1d(torch.tensor([0.0, 1.0]), torch.tensor([0.0, 1.0])).item() == 0.0
    u = torch.randn(1000, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    for t in (-2.5, 0.1, 7.0):
        assert wasserstein_1d(u, u + t).item() == pytest.approx(abs(t), abs=1e-12)
    v = torch.randn(1000, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    matching = (torch.sort(u).values - torch.sort(v).values).abs().mean().item()
    assert wasserstein_1d(u, v).item() == pytest.approx(matching, abs=1e-12)
    # {0, 1} against {0, 2}: the distribution functions differ by 1/2 on [1, 2), so W1 = 1/2
    assert wasserstein_1d(torch.tensor([0.0, 1.0]), torch.tensor([0.0, 2.0])).item() == pytest.approx(0.5)


def test_wasserstein_1d_bad_inputs():
    with pytest.raises(ValueError, match="1-D sample"):
        wasserstein_1d(torch.zeros(3, 2), torch.zeros(3))
    with pytest.raises(ValueError, match="NaN"):
        wasserstein_1d(torch.tensor([0.0, float("nan")]), torch.zeros(3))
    with pytest.raises(ValueError, match="empty"):
        wasserstein_1d(torch.zeros(0), torch.zeros(3))
    with pytest.raises(TypeError, match="floating-point"):
        wasserstein_1d(torch.tensor([1, 2]), torch.zeros(3))


# --- the Dirac-GAN --------------------------------------------------------------------------------

@pytest.mark.parametrize("options", [{}, {"instance_noise": 0.7}, {"r1": 0.3}, {"instance_noise": 0.3, "r1": 2.0}],
                         ids=["plain", "noise", "r1", "both"])
@pytest.mark.parametrize("point", [(1.0, 0.0), (-0.4, 1.3), (2.0, -0.5)])
def test_dirac_field_is_the_gradient_of_the_value(options, point):
    """(-∂V/∂θ, ∂V/∂ψ) by hand equals autograd on the value, at every point and option."""
    theta = torch.tensor(point[0], dtype=torch.float64, requires_grad=True)
    psi = torch.tensor(point[1], dtype=torch.float64, requires_grad=True)
    g_theta, g_psi = torch.autograd.grad(dirac_gan_value(theta, psi, **options), (theta, psi))
    d_theta, d_psi = dirac_gan_field(*point, **options)
    assert d_theta == pytest.approx(-g_theta.item(), abs=1e-12)
    assert d_psi == pytest.approx(g_psi.item(), abs=1e-12)


def test_dirac_value_without_options_is_the_source_formula():
    """V(θ, ψ) = log D(0) + log(1 - D(θ)) with D(x) = σ(ψx); at the equilibrium, -log 4."""
    for theta, psi in [(0.3, -1.2), (2.0, 0.5)]:
        expected = math.log(0.5) + math.log(1 - 1 / (1 + math.exp(-psi * theta)))
        assert dirac_gan_value(theta, psi).item() == pytest.approx(expected, abs=1e-12)
    assert dirac_gan_value(0.0, 0.0).item() == pytest.approx(-LOG4, abs=1e-12)


def test_dirac_instance_noise_expectation_matches_monte_carlo():
    """The quadrature's exact expectation over the noise agrees with a large sample average."""
    theta, psi, sigma = 0.8, -0.6, 0.5
    eps = sigma * torch.randn(2, 2_000_000, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    mc = (torch.nn.functional.logsigmoid(psi * eps[0]).mean()
          + torch.nn.functional.logsigmoid(-psi * (theta + eps[1])).mean()).item()
    assert dirac_gan_value(theta, psi, instance_noise=sigma).item() == pytest.approx(mc, abs=2e-3)


def _jacobian_at_equilibrium(**options) -> torch.Tensor:
    h = 1e-6  # central differences of the field at (0, 0); the field is smooth
    columns = []
    for e in ((h, 0.0), (0.0, h)):
        plus = torch.tensor(dirac_gan_field(e[0], e[1], **options))
        minus = torch.tensor(dirac_gan_field(-e[0], -e[1], **options))
        columns.append((plus - minus) / (2 * h))
    return torch.stack(columns, dim=1)  # rows: (dθ, dψ); columns: (θ, ψ)


@pytest.mark.parametrize("options, real_part", [({}, 0.0), ({"instance_noise": 0.5}, -0.5 ** 2 / 4),
                                                ({"instance_noise": 1.0}, -1.0 / 4), ({"r1": 0.3}, -0.3 / 2)],
                         ids=["plain", "noise0.5", "noise1", "r1"])
def test_dirac_linearisation(options, real_part):
    """Plain: a rotation, eigenvalues ±i/2 (Mescheder et al. 2018 show it for the Dirac-GAN). Instance
    noise σ adds -σ²/2 and R1 adds -γ to ∂(dψ)/∂ψ: real parts -σ²/4 and -γ/2, the inward spiral."""
    jac = _jacobian_at_equilibrium(**options)
    assert jac[0, 0].item() == pytest.approx(0.0, abs=1e-8)
    assert jac[0, 1].item() == pytest.approx(0.5, abs=1e-8) and jac[1, 0].item() == pytest.approx(-0.5, abs=1e-8)
    eig = torch.linalg.eigvals(jac)
    assert eig.real.tolist() == pytest.approx([real_part, real_part], abs=1e-7)
    assert eig.imag.abs().min().item() > 0.3  # still complex: the players spiral, they do not slide straight in


@pytest.mark.parametrize("lr", [0.05, 0.1, 0.3])
def test_dirac_simultaneous_steps_spiral_out_exactly(lr):
    """Each simultaneous step is perpendicular to the radius: r² grows by exactly 1 + lr² σ(ψθ)²."""
    path = dirac_gan(1.0, 0.5, steps=300, lr=lr, update="simultaneous")
    r2 = path.square().sum(dim=1)
    s = torch.sigmoid(path[:-1, 0] * path[:-1, 1])
    torch.testing.assert_close(r2[1:], r2[:-1] * (1 + lr ** 2 * s ** 2), rtol=1e-12, atol=0)
    assert (r2[1:] > r2[:-1]).all()


def test_dirac_simultaneous_steps_approach_the_conserving_flow():
    """The continuous flow keeps θ² + ψ² constant; simultaneous steps of size lr over a fixed time
    drift outwards by O(lr): halving lr halves the drift (first-order convergence to the flow)."""
    drift = {}
    for lr in (0.02, 0.01, 0.005):
        path = dirac_gan(1.0, 0.0, steps=round(20.0 / lr), lr=lr, update="simultaneous")  # time 20
        drift[lr] = path[-1].square().sum().item() - 1.0
    assert drift[0.02] > drift[0.01] > drift[0.005] > 0
    assert drift[0.02] / drift[0.01] == pytest.approx(2.0, rel=0.05)
    assert drift[0.01] / drift[0.005] == pytest.approx(2.0, rel=0.05)


@pytest.mark.parametrize("start", [(1.0, 0.0), (0.5, 0.5), (2.0, 0.0), (-1.0, 1.0)])
@pytest.mark.parametrize("lr", [0.05, 0.1])
def test_dirac_alternating_steps_circle(start, lr):
    """Alternating steps neither converge nor diverge: over 20,000 steps (dozens of turns around the
    equilibrium) the distance to it stays within 4 % of where it started."""
    path = dirac_gan(*start, steps=20_000, lr=lr)
    r = path.norm(dim=1)
    assert (r / r[0]).min().item() >= 0.96 and (r / r[0]).max().item() <= 1.04
    angle = torch.atan2(path[:, 1], path[:, 0])
    turns = (torch.diff(angle) + math.pi).remainder(2 * math.pi).sub(math.pi).abs().sum().item() / (2 * math.pi)
    assert turns >= 20  # it keeps going round (near the equilibrium one turn takes about 4π / lr steps)


@pytest.mark.parametrize("update", ["simultaneous", "alternating"])
@pytest.mark.parametrize("options", [{"instance_noise": 0.5}, {"instance_noise": 1.0}, {"r1": 0.3}, {"r1": 1.0}],
                         ids=["noise0.5", "noise1", "r1=0.3", "r1=1"])
def test_dirac_noise_and_r1_converge(update, options):
    path = dirac_gan(1.0, 0.0, steps=1500, lr=0.1, update=update, **options)
    r = path.norm(dim=1)
    assert r[-1].item() < 1e-3
    assert r[-1].item() < r[len(r) // 2].item() < r[0].item()


def test_dirac_bad_inputs():
    with pytest.raises(ValueError, match="update"):
        dirac_gan(steps=3, lr=0.1, update="gauss-seidel")
    with pytest.raises(ValueError, match="lr"):
        dirac_gan(steps=3, lr=0.0)
    with pytest.raises(ValueError, match="steps"):
        dirac_gan(steps=-1, lr=0.1)
    with pytest.raises(ValueError, match="instance_noise"):
        dirac_gan(steps=3, lr=0.1, instance_noise=-0.1)
    with pytest.raises(ValueError, match="r1"):
        dirac_gan_field(0.0, 0.0, r1=float("nan"))
    with pytest.raises(ValueError, match="psi"):
        dirac_gan_field(0.0, float("nan"))
    with pytest.raises(ValueError, match="theta"):
        dirac_gan(float("inf"), 0.0, steps=3, lr=0.1)
    assert dirac_gan(steps=0, lr=0.1).tolist() == [[1.0, 0.0]]


def test_all_exported():
    for name in theory.__all__:
        assert hasattr(theory, name)
