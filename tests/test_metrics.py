"""Metrics: closed forms, hand-checkable cases, and equality with torchmetrics on the same features."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch
from torch import nn

from spokenstyle import checkpoints, evaluation, metrics
from spokenstyle.data import pool_batches, real_renders, split_slots
from spokenstyle.models import features as feat


def gaussian(n: int, mean, std, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    mean = torch.as_tensor(mean, dtype=torch.float64)
    std = torch.as_tensor(std, dtype=torch.float64)
    return mean + torch.randn(n, mean.numel(), generator=g, dtype=torch.float64) * std


# -- FD ----------------------------------------------------------------------------------------

def test_fd_of_a_set_with_itself_is_zero():
    x = gaussian(300, [0.0] * 8, 1.0, 0)
    assert metrics.frechet_distance(x, x) == pytest.approx(0.0, abs=1e-8)


def test_fd_of_two_gaussians_matches_the_closed_form():
    """For diagonal covariances the matrices commute and the Fréchet distance is
    |μ_a - μ_b|² + Σ_i (σ_a,i - σ_b,i)², checkable by hand."""
    mu_a, mu_b = torch.tensor([0.0, 1.0, -2.0]), torch.tensor([1.0, 1.0, 0.0])
    sd_a, sd_b = torch.tensor([1.0, 2.0, 0.5]), torch.tensor([3.0, 1.0, 0.5])
    expected = float((mu_a - mu_b).square().sum() + (sd_a - sd_b).square().sum())  # 5 + 4 + 1 = 10
    got = metrics.frechet_distance_gaussians(mu_a, torch.diag(sd_a**2), mu_b, torch.diag(sd_b**2))
    assert got == pytest.approx(expected, rel=1e-10)
    assert expected == pytest.approx(10.0)


def test_fd_closed_form_with_full_covariances_matches_scipy_sqrtm():
    from scipy import linalg

    g = torch.Generator().manual_seed(1)
    a, b = torch.randn(5, 5, generator=g, dtype=torch.float64), torch.randn(5, 5, generator=g, dtype=torch.float64)
    sa, sb = a @ a.T + 0.1 * torch.eye(5, dtype=torch.float64), b @ b.T
    mu_a, mu_b = torch.randn(5, generator=g, dtype=torch.float64), torch.zeros(5, dtype=torch.float64)
    root = linalg.sqrtm(sa.numpy() @ sb.numpy()).real
    expected = float((mu_a - mu_b).square().sum()) + np.trace(sa.numpy() + sb.numpy() - 2 * root)
    assert metrics.frechet_distance_gaussians(mu_a, sa, mu_b, sb) == pytest.approx(expected, rel=1e-8)


def test_fd_of_samples_approaches_the_closed_form():
    a = gaussian(20000, [0.0, 0.0], [1.0, 2.0], 0)
    b = gaussian(20000, [1.0, 0.0], [1.0, 1.0], 1)
    assert metrics.frechet_distance(a, b) == pytest.approx(1.0 + 1.0, rel=0.05)


def test_fd_agrees_with_torchmetrics_given_the_same_features():
    from torchmetrics.image.fid import FrechetInceptionDistance

    class Given(nn.Module):
        """A 'feature extractor' whose inputs already are the features."""
        num_features = 6

        def forward(self, x):
            return x

    a = gaussian(400, [0.0] * 6, 1.0, 0).float()
    b = gaussian(300, [0.3] * 6, [1.0, 1.5, 0.5, 1.0, 1.0, 2.0], 1).float()
    fid = FrechetInceptionDistance(feature=Given())
    fid.update(a, real=True)
    fid.update(b, real=False)
    assert metrics.frechet_distance(a, b) == pytest.approx(float(fid.compute()), rel=1e-4)


def test_fd_rejects_bad_input():
    with pytest.raises(ValueError, match="different dimensions"):
        metrics.frechet_distance(torch.zeros(4, 3), torch.zeros(4, 2))
    with pytest.raises(ValueError, match=r"\(N, D\)"):
        metrics.frechet_distance(torch.zeros(4), torch.zeros(4))
    with pytest.raises(ValueError, match="NaN"):
        metrics.frechet_distance(torch.full((4, 2), float("nan")), torch.zeros(4, 2))
    with pytest.raises(TypeError):
        metrics.frechet_distance([[0.0]], torch.zeros(4, 1))


# -- KID ---------------------------------------------------------------------------------------

def test_mmd_agrees_with_torchmetrics_poly_mmd():
    from torchmetrics.image.kid import poly_mmd

    a = gaussian(200, [0.0] * 4, 1.0, 0)
    b = gaussian(200, [0.5] * 4, 1.0, 1)
    assert metrics.mmd2_unbiased(a, b) == pytest.approx(float(poly_mmd(a, b)), rel=1e-10)


@pytest.mark.filterwarnings("ignore:Metric `Kernel Inception Distance` will save")
def test_kid_agrees_with_torchmetrics_on_one_full_subset():
    """With one subset as large as the sets, the random subset is a permutation of everything,
    and MMD does not depend on the order: torchmetrics' KID is then deterministic."""
    from torchmetrics.image.kid import KernelInceptionDistance

    a = gaussian(150, [0.0] * 5, 1.0, 0).float()
    b = gaussian(150, [0.2] * 5, 1.2, 1).float()
    tm = KernelInceptionDistance(feature=nn.Identity(), subsets=1, subset_size=150)
    tm.update(a, real=True)
    tm.update(b, real=False)
    mean, std = tm.compute()
    ours, ours_std = metrics.kid(a, b, subsets=1, subset_size=150)
    assert ours == pytest.approx(float(mean), rel=1e-4)
    assert ours_std == 0.0 and float(std) == 0.0


def test_kid_is_about_zero_for_one_distribution_and_positive_for_two():
    a, b = gaussian(500, [0.0] * 4, 1.0, 0), gaussian(500, [0.0] * 4, 1.0, 1)
    c = gaussian(500, [1.0] * 4, 1.0, 2)
    same, _ = metrics.kid(a, b, subset_size=250)
    different, _ = metrics.kid(a, c, subset_size=250)
    assert abs(same) < 0.02 < different
    assert metrics.kid(a, c, subset_size=250) == metrics.kid(a, c, subset_size=250)  # seeded


# -- PRDC --------------------------------------------------------------------------------------

def test_prdc_identical_sets():
    x = gaussian(100, [0.0] * 3, 1.0, 0)
    out = metrics.prdc(x, x.clone(), k=5)
    assert out["precision"] == 1.0 and out["recall"] == 1.0 and out["coverage"] == 1.0
    assert out["density"] >= 1.0  # every fake sits on a real point and inside its own ball at least


def test_prdc_far_disjoint_sets():
    x = gaussian(100, [0.0] * 3, 1.0, 0)
    y = gaussian(100, [100.0] * 3, 1.0, 1)
    assert metrics.prdc(x, y, k=5) == {"precision": 0.0, "recall": 0.0, "density": 0.0, "coverage": 0.0}


def test_prdc_mode_collapse_keeps_precision_and_loses_recall():
    """Fakes from one half of the real distribution: realistic (precision ~1), not diverse."""
    real = gaussian(400, [0.0, 0.0], 1.0, 0)
    fake = gaussian(400, [0.0, 0.0], 1.0, 1)
    fake = fake[fake[:, 0] > 0.5]
    out = metrics.prdc(real, fake, k=5)
    assert out["precision"] > 0.9 and out["recall"] < 0.6 and out["coverage"] < 0.5


def test_prdc_hand_checkable_one_dimensional_case():
    """Reals at 0..9 on a line with k = 1: every real ball has radius 1. A fake at 4.5 lies in
    the balls of 4 and 5 (density 2/1 = 2); a fake at 100 lies in none. Precision 1/2, density
    (2 + 0)/2 = 1, coverage = reals with a fake within 1: {4, 5} → 2/10."""
    real = torch.arange(10, dtype=torch.float64)[:, None]
    fake = torch.tensor([[4.5], [100.0]], dtype=torch.float64)
    out = metrics.prdc(real, fake, k=1)
    assert out["precision"] == 0.5 and out["density"] == 1.0 and out["coverage"] == 0.2
    # fake balls: radius = distance to the other fake (95.5): every real lies in 4.5's ball
    assert out["recall"] == 1.0


# -- the baseline helper -----------------------------------------------------------------------

def test_compare_to_baseline_reports_both_columns():
    real_a, real_b = gaussian(300, [0.0] * 4, 1.0, 0), gaussian(300, [0.0] * 4, 1.0, 1)
    fake = gaussian(300, [1.0] * 4, 1.0, 2)
    report = metrics.compare_to_baseline(real_a, real_b, fake, label="toy")
    assert set(report.comparisons) == {"FD", "KID", "precision", "recall", "density", "coverage"}
    assert report["FD"].fake > report["FD"].baseline > 0
    assert report["FD"].baseline == pytest.approx(metrics.frechet_distance(real_a, real_b))
    assert report["precision"].fake < report["precision"].baseline
    text = str(report)
    assert "real vs real" in text and "toy" in text and "FD" in text
    flat = report.as_dict()
    assert flat["fd"] == report["FD"].fake and flat["fd_real_vs_real"] == report["FD"].baseline
    assert math.isfinite(report["FD"].ratio)


def test_baseline_over_several_real_sets_is_their_mean():
    torch.manual_seed(0)
    real_a, fake = torch.randn(200, 3), torch.randn(200, 3) + 1.0
    sets = [torch.randn(200, 3) for _ in range(4)]
    report = metrics.compare_to_baseline(real_a, sets, fake, metrics=["fd"])
    each = torch.tensor([metrics.frechet_distance(real_a, b) for b in sets], dtype=torch.float64)
    assert report["FD"].baseline == pytest.approx(float(each.mean()))
    assert report["FD"].baseline_sd == pytest.approx(float(each.std()))
    assert report["FD"].baseline_sets == 4 and "over 4 real sets" in str(report)
    single = metrics.compare_to_baseline(real_a, sets[0], fake, metrics=["fd"])
    assert single["FD"].baseline_sd == 0.0 and single["FD"].baseline_sets == 1
    with pytest.raises(ValueError, match="empty"):
        metrics.compare_to_baseline(real_a, [], fake)
    with pytest.raises(ValueError, match="same number"):
        metrics.compare_to_baseline(real_a, [sets[0], sets[1][:150]], fake)


def test_compare_to_baseline_needs_equal_sizes():
    with pytest.raises(ValueError, match="same number of samples"):
        metrics.compare_to_baseline(torch.zeros(10, 2), torch.randn(8, 2), torch.randn(9, 2))
    with pytest.raises(ValueError, match="unknown metrics"):
        metrics.compare_to_baseline(torch.randn(10, 2), torch.randn(9, 2), torch.randn(9, 2), metrics=["fid"])


# -- the feature extractor ---------------------------------------------------------------------

def test_feature_net_shapes_confidence_and_input_checks():
    torch.manual_seed(0)
    net = feat.feature_extractor(width=4, feature_dim=8)
    images = torch.rand(3, 3, 32, 32)
    out = net(images)
    assert out.features.shape == (3, 8) and out.style_logits.shape == (3, 6)
    assert out.colour_logits.shape == (3, 6) and out.shape_logits.shape == (3, 6, 6) and out.size_logits.shape == (3, 6, 2)
    conf = feat.confidence(out)
    assert conf.shape == (3,) and (conf >= 0).all() and (conf <= 1).all()
    assert net(torch.rand(2, 3, 64, 64)).features.shape == (2, 8)  # other sizes are resized
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        net(images * 2 - 1)  # tanh range: convert with to_unit_range first
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
        net(torch.rand(3, 32, 32))
    feats, confs = feat.extract_features(net, torch.rand(5, 3, 32, 32), batch_size=2, with_confidence=True)
    assert feats.shape == (5, 8) and confs.shape == (5,)


def test_confidence_is_zero_where_colour_and_count_heads_disagree():
    def output(colour_logits, count_logits):
        b = colour_logits.shape[0]
        return feat.FeatureNetOutput(features=torch.zeros(b, 8), style_logits=torch.tensor([[9.0, 0, 0, 0, 0, 0]] * b),
                                     count_logits=count_logits, colour_logits=colour_logits,
                                     shape_logits=torch.zeros(b, 6, 6), size_logits=torch.zeros(b, 6, 2))

    two_colours = torch.tensor([[5.0, 5.0, -5, -5, -5, -5]] * 2)
    counts = torch.tensor([[0.0, 9.0, 0.0], [9.0, 0.0, 0.0]])  # says 2 objects, then 1 object
    conf = feat.confidence(output(two_colours, counts))
    assert conf[0] > 0.99 and conf[1] == 0.0


def test_split_slots_round_trip():
    slots = torch.tensor([[0, 1, 12, 4, 0, 0]])  # absent; circle small; cross large; square large
    present, shape, size = split_slots(slots)
    assert present.tolist() == [[False, True, True, True, False, False]]
    assert shape.tolist() == [[-1, 0, 5, 1, -1, -1]] and size.tolist() == [[-1, 0, 1, 1, -1, -1]]


def test_real_renders_splits_are_disjoint_and_deterministic():
    a, scenes_a, styles_a = real_renders(6, split="real_a", size=32)
    a2, _, _ = real_renders(6, split="real_a", size=32)
    b, scenes_b, _ = real_renders(6, split="real_b", size=32)
    assert torch.equal(a, a2) and not torch.equal(a, b)
    assert set(scenes_a.seed.tolist()).isdisjoint(scenes_b.seed.tolist())
    assert styles_a.tolist() == [s % 6 for s in scenes_a.seed.tolist()]
    _, _, flat = real_renders(3, split="train", style="flat", size=32)
    assert flat.tolist() == [0, 0, 0]
    with pytest.raises(ValueError, match="split"):
        real_renders(3, split="a")  # the old short names are gone: seed ranges of spokenstyle.data.splits


def test_pool_batches_are_a_function_of_the_step():
    pool = torch.arange(10.0)[:, None]
    labels = torch.arange(10)
    batches = pool_batches(pool, 4, seed=0, extra=(labels,))
    first = [batches(s)[0].flatten().tolist() for s in range(4)]
    again = pool_batches(pool, 4, seed=0, extra=(labels,))
    assert [again(s)[0].flatten().tolist() for s in (3, 0, 2, 1)] == [first[3], first[0], first[2], first[1]]
    assert sorted(first[0] + first[1]) == sorted(set(first[0] + first[1]))  # one epoch: no repeats
    x, y = batches(5)
    assert torch.equal(x[:, 0].long(), y)
    with pytest.raises(ValueError, match="batch_size"):
        pool_batches(pool, 11)


def test_evaluate_images_reports_confidence_beside_the_baseline():
    torch.manual_seed(0)
    net = feat.feature_extractor(width=4, feature_dim=8)
    real_a, real_b = torch.rand(20, 3, 32, 32), torch.rand(20, 3, 32, 32)
    report = evaluation.evaluate_images(torch.rand(20, 3, 32, 32), extractor=net, real=(real_a, real_b), label="noise")
    assert {"FD", "KID", "precision", "recall", "density", "coverage", "confident"} == set(report.comparisons)
    assert 0.0 <= report["confident"].fake <= 1.0
    several = evaluation.evaluate_images(torch.rand(20, 3, 32, 32), extractor=net, label="noise",
                                         real=(real_a, [real_b, torch.rand(20, 3, 32, 32)]))
    assert several["confident"].baseline_sets == 2 and several["FD"].baseline_sets == 2
    with pytest.raises(ValueError, match="baseline_sets"):
        evaluation.evaluate_images(torch.rand(20, 3, 32, 32), extractor=net, baseline_sets=0)
    with pytest.raises(ValueError, match=r"\(N, 3, H, W\)"):
        evaluation.evaluate_images(torch.rand(20, 32, 32), extractor=net, real=(real_a, real_b))


def test_shipped_feature_extractor_reads_real_renders():
    if "features" not in checkpoints.shipped():
        pytest.skip("no shipped feature extractor")
    net = feat.feature_extractor(weights="features")
    images, scenes, styles = real_renders(60, split="features_test", size=32)
    acc = evaluation.feature_accuracy(net, images, feat.feature_targets(scenes, styles))
    assert acc["style_accuracy"] >= 0.95


def test_style_breakdown_groups_by_the_style_read_or_requested():
    net = feat.feature_extractor(weights="features")
    images, _, styles = real_renders(120, split="features_test", size=32)
    by_read = evaluation.style_breakdown(images, net)
    assert sum(row["share"] for row in by_read.values()) == pytest.approx(1.0)
    assert all(row["share"] > 0.1 and "accuracy" not in row for row in by_read.values())  # ~1/6 each
    asked = evaluation.style_breakdown(images, net, requested=styles)
    assert all(row["accuracy"] >= 0.9 for row in asked.values())  # real renders read as their own style
    shuffled = evaluation.style_breakdown(images, net, requested=styles.roll(1))
    assert sum(row["accuracy"] for row in shuffled.values()) / 6 < 0.3  # the wrong requests are caught
    with pytest.raises(ValueError, match="requested must be \\(120,\\)"):
        evaluation.style_breakdown(images, net, requested=styles[:5])


# -- chapter 11: FD against 1/N, resampling to a feature space, resizing, D's own features -------

def test_extrapolate_fd_is_the_least_squares_line_against_one_over_n():
    sizes, fds = [250, 500, 1000, 2000, 4000], [38.8, 36.6, 34.8, 32.5, 32.3]
    slope, intercept = np.polyfit(1.0 / np.array(sizes), np.array(fds), 1)
    fd_inf, b = metrics.extrapolate_fd(sizes, fds)
    assert fd_inf == pytest.approx(intercept) and b == pytest.approx(slope)
    exact = [5.0 + 300.0 / n for n in sizes]  # a line is recovered exactly
    assert metrics.extrapolate_fd(sizes, exact) == pytest.approx((5.0, 300.0))
    with pytest.raises(ValueError, match="not all equal"):
        metrics.extrapolate_fd([100, 100], [1.0, 2.0])
    with pytest.raises(ValueError, match="same length"):
        metrics.extrapolate_fd([100, 200], [1.0])


def test_fd_by_sample_size_removes_the_bias_of_finite_samples():
    """Two Gaussians whose FD is known in closed form (means 0.3 apart in each of 8 dimensions:
    FD = 8 * 0.09 = 0.72, equal covariances): the FD of N samples lies above it, by more than the
    mean's share of the bias alone (E|μ̂_a - μ̂_b|² = |Δμ|² + tr Σ_a / N + tr Σ_b / N = 0.72 + 16 / N),
    and the extrapolation to N → ∞ lands nearer the truth than the largest N does. For two
    samples of one distribution it extrapolates to about 0; KID stays about 0 at every N."""
    a = gaussian(4000, [0.0] * 8, 1.0, 0)
    b = gaussian(4000, [0.3] * 8, 1.0, 1)
    curve = metrics.fd_by_sample_size(a, b, [250, 500, 1000, 2000, 4000], repeats=8, seed=0)
    assert curve.fd[0] > curve.fd[-1] > 0.72
    assert abs(curve.fd_infinity - 0.72) < abs(curve.fd[-1] - 0.72) and abs(curve.fd_infinity - 0.72) < 0.05
    assert curve.slope > 16
    assert curve.predict(float("inf")) == curve.fd_infinity and len(curve.fd_sd) == 5 and curve.repeats == 8
    same = metrics.fd_by_sample_size(a, gaussian(4000, [0.0] * 8, 1.0, 2), [250, 500, 1000, 2000], repeats=3)
    assert abs(same.fd_infinity) < 0.1 * same.fd[0]
    assert all(abs(k) < 0.01 for k in same.kid) and all(k > 0.005 for k in curve.kid)
    fixed = metrics.fd_by_sample_size(a, b, [250, 4000], repeats=1, vary="b", with_kid=False)
    assert fixed.fd[-1] == pytest.approx(metrics.frechet_distance(a, b)) and math.isnan(fixed.kid[0])
    with pytest.raises(ValueError, match="sizes"):
        metrics.fd_by_sample_size(a, b, [250, 8000])
    with pytest.raises(ValueError, match="vary"):
        metrics.fd_by_sample_size(a, b, [250, 500], vary="a")


def test_matching_selection_imitates_the_target_in_its_own_space():
    target = gaussian(200, [0.0] * 4, 1.0, 0)
    pool = torch.cat([gaussian(600, [2.0] * 4, 1.0, 1), target + 1e-6])  # the pool holds near-copies of the targets
    chosen = metrics.matching_selection(pool, target)
    assert len(set(chosen.tolist())) == 200 and (chosen >= 600).all()  # each target took its own copy
    assert metrics.frechet_distance(target, pool[chosen]) < 1e-6
    far = gaussian(800, [1.0] * 4, 2.0, 3)
    picked = far[metrics.matching_selection(far, target, seed=1)]
    assert metrics.frechet_distance(target, picked) < 0.5 * metrics.frechet_distance(target, far[:200])
    with pytest.raises(ValueError, match="fewer"):
        metrics.matching_selection(far[:10], target)


def test_pil_resize_is_torchvisions_antialiased_bicubic_and_the_tensor_one_aliases():
    import torchvision.transforms.v2.functional as TF

    pictures = real_renders(4, split="real_a", size=128)[0]
    ours = evaluation.resize_images(pictures, 32, "pil_bicubic")
    theirs = TF.resize(pictures, [32, 32], interpolation=TF.InterpolationMode.BICUBIC, antialias=True).clamp(0, 1)
    torch.testing.assert_close(ours, theirs, atol=1e-5, rtol=0)
    stripes = torch.zeros(1, 3, 64, 64)
    stripes[..., ::4] = 1.0  # a 1-px line every 4 px: mean 0.25
    assert evaluation.resize_images(stripes, 16, "pil_bicubic").mean().item() == pytest.approx(0.25, abs=0.01)
    assert evaluation.resize_images(stripes, 16, "pil_bicubic")[..., 2:-2].std().item() < 0.01  # filtered away (inside)
    assert evaluation.resize_images(stripes, 16, "nearest").mean().item() == 1.0  # aliased: every sample hits a line
    torch.testing.assert_close(evaluation.resize_images(stripes, 16, "area"), torch.full((1, 3, 16, 16), 0.25))
    with pytest.raises(ValueError, match="method"):
        evaluation.resize_images(pictures, 32, "lanczos")
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        evaluation.resize_images(pictures * 255, 32)


def test_resize_comparison_measures_the_filter_beside_real_vs_real():
    extractor = feat.feature_extractor(weights="features")
    a = real_renders(64, split="real_a", size=128)[0]
    b = real_renders(64, split="real_b", size=128)[0]
    out = evaluation.resize_comparison(a, b, extractor=extractor, methods=("pil_bicubic", "nearest"))
    assert out["pil_bicubic"] == pytest.approx(0.0, abs=1e-6)  # the same filter: the same pictures
    ref = feat.extract_features(extractor, evaluation.resize_images(a, 32))
    near = feat.extract_features(extractor, evaluation.resize_images(a, 32, "nearest"))
    assert out["nearest"] == pytest.approx(metrics.frechet_distance(ref, near)) and out["nearest"] > 0
    assert out["real_vs_real"] > 0
    with pytest.raises(ValueError, match="as many"):
        evaluation.resize_comparison(a, b[:10], extractor=extractor)


@pytest.mark.parametrize("n_classes", [0, 6])
def test_discriminator_features_are_the_map_before_the_last_convolution(n_classes):
    from spokenstyle.models import dcgan as dc

    torch.manual_seed(0)
    D = dc.dcgan(g_width=8, d_width=8, spectral_norm=True, n_classes=n_classes).D
    x = torch.rand(5, 3, 32, 32)
    phi = evaluation.discriminator_features(D, x, batch_size=2)
    assert phi.shape == (5, 8 * 4) and D.training  # its mode is restored
    D.eval()
    with torch.no_grad():
        torch.testing.assert_close(phi, D.net[:-1](x * 2 - 1).mean((2, 3)))
    with pytest.raises(TypeError, match="Discriminator"):
        evaluation.discriminator_features(nn.Linear(3, 3), x)


class _CopyPipeline:
    """A stand-in for SpokenStylePipeline that "draws" the source exactly as the judge reads it, in the
    style asked for: what style_pair_table measures is then the judge itself, computable by hand."""

    def __init__(self, judge):
        self.judge, self.attribute_judge, self.calls = judge, None, []

    def __call__(self, source, target, *, seed, target_style, source_style=None):
        from types import SimpleNamespace

        from spokenstyle.models.judge import read_scene

        self.calls.append((source.shape, target.shape, seed))
        read = read_scene(self.judge, source)[1]
        return SimpleNamespace(fused_slots=read, sentence_slots=read, fused_style=target_style.clone(),
                               style_scores=torch.ones(len(read)), source=source, fused=source)


def test_style_pair_table_by_hand():
    from spokenstyle.data import STYLES, render, sample_scenes
    from spokenstyle.data.splits import seed_range
    from spokenstyle.models.judge import read_scene, scene_judge

    judge = scene_judge(weights="judge")
    pipe = _CopyPipeline(judge)
    table = evaluation.style_pair_table(pipe, per_cell=2, seed=1)
    assert pipe.calls == [((72, 3, 64, 64), (72, 3, 64, 64), 1)]  # one batch: 36 pairs x 2 scenes
    assert table.survival.shape == table.style.shape == (6, 6) and torch.equal(table.style, torch.ones(6, 6))
    start = seed_range("test").start + 2 * 2 * 1  # stretch 1: sources are the even seeds, targets the odd
    scenes = sample_scenes([start, start + 2])
    for a in (0, 3):  # every cell holds the same two scenes, drawn in its source style
        expected = evaluation.content_survival(scenes.colour_slots(), read_scene(judge, render(scenes, a, 64))[1])
        assert table.survival[a, 5] == pytest.approx(expected["object"]) and table.sentence[a] == pytest.approx(expected["object"])
    assert torch.equal(table.objects, torch.full((6, 6), float((scenes.colour_slots() > 0).sum())))
    assert torch.equal(table.survival[:, 0], table.survival[:, 4])  # the copy ignores the target style
    assert table.ceiling[2] == pytest.approx(table.survival[2, 0])  # the ruler on real watercolour renders
    d = table.as_dict()
    assert d["styles"] == list(STYLES) and len(d["survival"]) == 6 and d["per_cell"] == 2
    assert table.source_style.tolist()[:4] == [0, 0, 0, 0] and table.target_style.tolist()[:4] == [0, 0, 1, 1]
    with pytest.raises(ValueError, match="per_cell"):
        evaluation.style_pair_table(pipe, per_cell=0)


def test_photo_source_table_counts_sentences_and_drawings():
    from types import SimpleNamespace

    said = torch.tensor([[-1] * 6, [0] * 6, [1, 0, 0, 0, 0, 0], [0, 3, 5, 0, 0, 0], [2, 0, 0, 0, 0, 0],
                         [0] * 6, [0] * 6, [0] * 6, [0] * 6, [0] * 6, [0] * 6, [0] * 6])
    drawn = said.clamp(min=0).clone()
    drawn[3, 2] = 0  # one of the three named objects is not drawn

    def pipe(source, target, *, seed, target_style):
        assert source.shape == (12, 3, 64, 64) and target.shape == source.shape
        return SimpleNamespace(sentence_slots=said, fused_slots=drawn, fused_style=target_style.clone())

    out = evaluation.photo_source_table(pipe, per_style=2)
    assert out["readable"] == pytest.approx(11 / 12) and out["names_objects"] == pytest.approx(3 / 12)
    assert out["said_to_drawn"] == pytest.approx(3 / 4) and torch.equal(out["style"], torch.ones(6))
    assert out["photos"].shape == (12, 3, 64, 64)


def test_fd_warns_below_two_samples_per_dimension():
    """Issue 38: FD from fewer samples than 2 D ranks fakes above real pictures; the package says so."""
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(20, 16, generator=g), torch.randn(40, 16, generator=g)
    assert not metrics.fd_is_meaningful(31, 16) and metrics.fd_is_meaningful(32, 16)
    with pytest.warns(metrics.FewSamplesWarning, match="20 samples per set in 16 dimensions"):
        metrics.frechet_distance(a, b)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        value = metrics.frechet_distance(a, b, warn=False)  # a caller that flags it itself
        metrics.frechet_distance(b[:32], b[8:40])  # 2 D samples: no warning
    assert value == metrics.frechet_distance(a, b, warn=False) > 0
