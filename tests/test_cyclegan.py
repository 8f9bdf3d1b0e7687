"""CycleGAN-lite, the translation losses, the Gram/AdaIN baselines and the translation scorecard.

Shapes and receptive fields, losses against hand computation, the image pool's behaviour, one
step of training checked term by term, a tiny run of the `spokenstyle train` recipe that saves
and reloads its checkpoint, and clear errors on bad input. Tiny seeded CPU models throughout.
"""

from __future__ import annotations

import contextlib
import math
import random

import numpy as np
import pytest
import torch
from torch import nn

from spokenstyle import budgets, checkpoints, evaluation, losses, metrics, runtime, stylization
from spokenstyle.data import (STYLES, paired_batches, real_renders, render, sample_scenes,
                              unpaired_batches)
from spokenstyle.models import cyclegan as cg
from spokenstyle.models import features as feat
from spokenstyle.models.judge import JudgeConfig, SceneJudge, scene_judge
from spokenstyle.recipes import cyclegan as rcg

TINY = dict(g_width=4, n_blocks=1, d_width=4)


# -- architecture --------------------------------------------------------------------------------

@pytest.mark.parametrize("resolution", [32, 64])
@pytest.mark.parametrize("residual", [True, False])
def test_shapes_and_ranges(resolution, residual):
    torch.manual_seed(0)
    model = cg.cyclegan(resolution=resolution, residual=residual, **TINY)
    x = torch.rand(2, 3, resolution, resolution) * 2 - 1
    y = model.G_AB(x)
    assert y.shape == x.shape and y.min() >= -1 and y.max() <= 1
    scores = model.D_B(y)
    side = resolution // 8 - 2  # three stride-2 layers, then two 4x4 stride-1 layers with padding 1
    assert scores.shape == (2, 1, side, side)


def test_generator_layout_follows_the_reference():
    g = cg.ResnetGenerator(cg.CycleGANConfig(**TINY, residual=False))
    layers = list(g.net)
    assert isinstance(layers[0], nn.ReflectionPad2d) and layers[1].kernel_size == (7, 7)
    assert sum(isinstance(m, cg.ResnetBlock) for m in layers) == 1
    assert sum(isinstance(m, nn.ConvTranspose2d) for m in layers) == 2
    assert any(isinstance(m, nn.InstanceNorm2d) for m in g.modules())


def test_residual_generator_starts_from_the_identity_when_its_last_layer_is_zero():
    g = cg.ResnetGenerator(cg.CycleGANConfig(**TINY, residual=True))
    nn.init.zeros_(g.net[-1].weight)
    nn.init.zeros_(g.net[-1].bias)
    x = torch.rand(2, 3, 32, 32) * 1.9 - 0.95
    torch.testing.assert_close(g(x), x, atol=1e-5, rtol=0)


def test_position_channels_start_as_the_plain_network_and_tile_for_other_sizes():
    torch.manual_seed(0)
    g = cg.ResnetGenerator(cg.CycleGANConfig(**TINY, resolution=32, position=2))
    assert g.position.shape == (1, 2, 32, 32) and g.net[1].in_channels == 5
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    plain = cg.ResnetGenerator(cg.CycleGANConfig(**TINY, resolution=32))
    with torch.no_grad():  # same weights on the image channels: a zero map changes nothing
        plain.load_state_dict({k: (v[:, :3] if k == "net.1.weight" else v) for k, v in g.state_dict().items()
                               if k != "position"})
    torch.testing.assert_close(g(x), plain(x))
    with torch.no_grad():
        g.position.normal_()
    assert not torch.allclose(g(x), plain(x))
    big = torch.rand(1, 3, 64, 48) * 2 - 1  # another size: the map is tiled from the top-left corner
    ext = g._with_position(big)
    assert ext.shape == (1, 5, 64, 48)
    torch.testing.assert_close(ext[:, 3:, 32:, :16], g.position.detach()[..., :, :16])
    assert g(big).shape == big.shape and g(x[:, :, :16, :16]).shape == (2, 3, 16, 16)
    with pytest.raises(ValueError, match="position"):
        cg.CycleGANConfig(position=-1)


def test_patchgan_receptive_field_is_70_pixels():
    """Each score of the reference PatchGAN (3 strided layers) sees a 70 x 70 window (Isola et al.)."""
    d = cg.PatchDiscriminator(cg.CycleGANConfig(d_width=2, d_layers=3, norm="none", resolution=128))
    x = torch.zeros(1, 3, 128, 128, requires_grad=True)
    out = d(x)
    out[0, 0, out.shape[-2] // 2, out.shape[-1] // 2].backward()
    rows = torch.nonzero(x.grad.abs().sum((0, 1)).sum(1)).flatten()
    assert int(rows.max() - rows.min() + 1) == 70


def _measured_receptive_field(config: cg.CycleGANConfig, size: int) -> tuple[int, int]:
    """(rows, columns) of a random input that one central score of a PatchDiscriminator depends
    on: the side of the region where its gradient is non-zero."""
    torch.manual_seed(0)
    d = cg.PatchDiscriminator(config).eval()
    x = (torch.rand(1, 3, size, size) * 2 - 1).requires_grad_(True)
    out = d(x)
    out[0, 0, out.shape[-2] // 2, out.shape[-1] // 2].backward()
    seen = x.grad.abs().sum((0, 1)) > 0  # (H, W)
    rows, cols = torch.nonzero(seen.any(1)).flatten(), torch.nonzero(seen.any(0)).flatten()
    # the region is one block: every row and column between its first and last is touched
    assert len(rows) == int(rows.max() - rows.min() + 1) and len(cols) == int(cols.max() - cols.min() + 1)
    return int(rows.max() - rows.min() + 1), int(cols.max() - cols.min() + 1)


@pytest.mark.parametrize("d_layers, expected", [(1, 16), (2, 34), (3, 70)])
def test_receptive_field_matches_the_measured_window(d_layers, expected):
    """receptive_field(config) is the window one score depends on, measured by back-propagating a
    central score to a random input (well inside the picture, so no border cuts the window)."""
    config = cg.CycleGANConfig(d_width=2, d_layers=d_layers, norm="none", resolution=128)
    field_ = cg.receptive_field(config)
    assert field_ == expected
    assert _measured_receptive_field(config, 128) == (field_, field_)
    assert cg.receptive_field(cg.reference_config(128)) == 70
    with pytest.raises(TypeError, match="CycleGANConfig"):
        cg.receptive_field({"d_layers": 3})


def test_reference_config_is_resnet9_and_patchgan70():
    c = cg.reference_config(128)
    assert (c.g_width, c.n_blocks, c.d_width, c.d_layers, c.resolution) == (64, 9, 64, 3, 128)


# -- losses ----------------------------------------------------------------------------------------

def test_cycle_and_identity_losses_by_hand():
    a = torch.tensor([[[[0.0, 1.0], [2.0, -1.0]]]])
    b = torch.tensor([[[[1.0, 1.0], [0.0, 0.0]]]])
    # |0-1| + |1-1| + |2-0| + |-1-0| = 4 over 4 entries
    assert losses.cycle_loss(a, b).item() == pytest.approx(1.0)
    assert losses.identity_loss(a, b).item() == pytest.approx(1.0)
    with pytest.raises(ValueError, match="same shape"):
        losses.cycle_loss(a, b[..., :1])
    with pytest.raises(TypeError, match="floating-point"):
        losses.identity_loss(a.long(), b)


def test_gram_matrix_by_hand():
    f = torch.arange(8, dtype=torch.float32).reshape(1, 2, 2, 2)  # channel 0 = 0..3, channel 1 = 4..7
    c0, c1 = torch.arange(4.0), torch.arange(4.0, 8.0)
    expected = torch.tensor([[c0 @ c0, c0 @ c1], [c1 @ c0, c1 @ c1]]) / (2 * 2 * 2)
    torch.testing.assert_close(losses.gram_matrix(f)[0], expected)
    assert losses.gram_loss(f, losses.gram_matrix(f)).item() == 0.0
    with pytest.raises(ValueError, match=r"\(B, C, H, W\)"):
        losses.gram_matrix(torch.zeros(2, 3))
    with pytest.raises(ValueError, match="target_gram"):
        losses.gram_loss(f, torch.zeros(3, 3))


# -- pool ------------------------------------------------------------------------------------------

def test_pool_fills_then_mixes_old_and_new():
    random.seed(0)
    pool = rcg.ImagePool(4)
    first = torch.arange(4.0).view(4, 1)
    torch.testing.assert_close(pool.query(first), first)  # filling: returned as is
    assert len(pool) == 4
    new = torch.arange(10.0, 110.0).view(100, 1)
    out = pool.query(new)
    assert out.shape == new.shape
    from_pool = [v for v in out.flatten().tolist() if v < 10 or v not in new.flatten().tolist()]
    passed = [v for v, n in zip(out.flatten().tolist(), new.flatten().tolist()) if v == n]
    assert 20 < len(passed) < 80  # about half pass straight through
    assert set(from_pool) - set(range(4)) <= set(new.flatten().tolist())  # swapped out: old or earlier new
    assert len(pool) == 4 and any(v >= 10 for v in torch.cat(pool.images).tolist())


def test_pool_of_size_zero_is_a_no_op_and_sizes_are_checked():
    x = torch.rand(3, 2)
    assert rcg.ImagePool(0).query(x) is x
    with pytest.raises(ValueError, match="pool size"):
        rcg.ImagePool(-1)


# -- one training step, term by term -------------------------------------------------------------

class _StubTrainer:
    def __init__(self, model):
        self.modules = {"G_AB": model.G_AB, "G_BA": model.G_BA, "D_A": model.D_A, "D_B": model.D_B}
        self.losses = {}

    def autocast(self):
        return contextlib.nullcontext()

    def optimize(self, name, loss):
        self.losses[name] = loss.detach()


def test_cycle_step_matches_the_reference_objective():
    torch.manual_seed(0)
    model = cg.cyclegan(**TINY)
    a, b = torch.rand(2, 3, 32, 32), torch.rand(2, 3, 32, 32)
    t = _StubTrainer(model)
    out = rcg.cycle_step(t, {"image_a": a, "image_b": b}, 0, config=model.config, pools=(rcg.ImagePool(0), rcg.ImagePool(0)))
    ra, rb = a * 2 - 1, b * 2 - 1
    with torch.no_grad():
        fb, fa = model.G_AB(ra), model.G_BA(rb)
        mse = lambda x, y: ((x - y) ** 2).mean()  # noqa: E731
        adv = mse(model.D_B(fb), 1) + mse(model.D_A(fa), 1)  # the reference's MSE, no 1/2
        cyc = (model.G_BA(fb) - ra).abs().mean() + (model.G_AB(fa) - rb).abs().mean()
        idt = (model.G_AB(rb) - rb).abs().mean() + (model.G_BA(ra) - ra).abs().mean()
        loss_g = adv + 10 * cyc + 5 * idt
        loss_d = 0.5 * (mse(model.D_A(ra), 1) + mse(model.D_A(fa), 0)) + 0.5 * (mse(model.D_B(rb), 1) + mse(model.D_B(fb), 0))
    torch.testing.assert_close(t.losses["G"], loss_g, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(t.losses["D"], loss_d, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(out["loss_cycle"].detach(), cyc, rtol=1e-5, atol=1e-6)


def test_warmup_ramps_the_cycle_and_identity_weights():
    assert [rcg.l1_weight(s, 4) for s in (0, 1, 2, 4, 9)] == [0.0, 0.25, 0.5, 1.0, 1.0]
    assert rcg.l1_weight(0, 0) == 1.0
    with pytest.raises(ValueError, match="warmup"):
        rcg.l1_weight(0, -1)
    torch.manual_seed(0)
    model = cg.cyclegan(**TINY)
    a, b = torch.rand(2, 3, 32, 32), torch.rand(2, 3, 32, 32)
    t = _StubTrainer(model)
    out = rcg.cycle_step(t, {"image_a": a, "image_b": b}, 1, config=model.config,
                         pools=(rcg.ImagePool(0), rcg.ImagePool(0)), warmup=4)
    expected = out["loss_adv"] + 0.25 * (10 * out["loss_cycle"] + 5 * out["loss_idt"])
    torch.testing.assert_close(t.losses["G"], expected.detach(), rtol=1e-5, atol=1e-6)


def test_cycle_noise_perturbs_only_the_way_back():
    """cycle_noise adds N(0, std) to each translation before the other generator undoes it; the
    adversarial and identity terms see the clean translation, and std 0 is the reference exactly."""
    torch.manual_seed(0)
    model = cg.cyclegan(**TINY, cycle_noise=0.5)
    a, b = torch.rand(2, 3, 32, 32), torch.rand(2, 3, 32, 32)
    t = _StubTrainer(model)
    torch.manual_seed(1)
    out = rcg.cycle_step(t, {"image_a": a, "image_b": b}, 0, config=model.config, pools=(rcg.ImagePool(0), rcg.ImagePool(0)))
    ra, rb = a * 2 - 1, b * 2 - 1
    with torch.no_grad():
        fb, fa = model.G_AB(ra), model.G_BA(rb)
        torch.manual_seed(1)  # the same draws, in the step's order: the noise on G_AB(a), then on G_BA(b)
        nb, na = 0.5 * torch.randn_like(fb), 0.5 * torch.randn_like(fa)
        cyc = (model.G_BA(fb + nb) - ra).abs().mean() + (model.G_AB(fa + na) - rb).abs().mean()
        clean = (model.G_BA(fb) - ra).abs().mean() + (model.G_AB(fa) - rb).abs().mean()
        idt = (model.G_AB(rb) - rb).abs().mean() + (model.G_BA(ra) - ra).abs().mean()
        mse = lambda x, y: ((x - y) ** 2).mean()  # noqa: E731
        adv = mse(model.D_B(fb), 1) + mse(model.D_A(fa), 1)
    torch.testing.assert_close(out["loss_cycle"].detach(), cyc, rtol=1e-5, atol=1e-6)
    assert not torch.isclose(cyc, clean, rtol=1e-3)
    torch.testing.assert_close(out["loss_idt"].detach(), idt, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(out["loss_adv"].detach(), adv, rtol=1e-5, atol=1e-6)
    assert cg.CycleGANConfig().cycle_noise == 0.0
    budget = budgets.CycleGANBudget(steps=1, batch_size=1, lr=1e-3, g_width=4, n_blocks=1, d_width=4,
                                    resolution=32, eval=2, cycle_noise=0.1)
    assert rcg.config_from_budget(budget).cycle_noise == 0.1
    for bad in (-0.1, 1.5, True, "0.1"):
        with pytest.raises(ValueError, match="cycle_noise"):
            cg.CycleGANConfig(cycle_noise=bad)


def test_generator_ema_averages_the_generators_and_copies_back():
    torch.manual_seed(0)
    model = cg.cyclegan(**TINY)
    ema = rcg.GeneratorEMA(model, decay=0.75)
    start = [p.detach().clone() for p in model.G_AB.parameters()]
    with torch.no_grad():
        for p in model.G_AB.parameters():
            p.add_(1.0)
    ema.update()
    other = cg.cyclegan(**TINY)
    ema.copy_to(other)
    for s0, p in zip(start, other.G_AB.parameters()):
        torch.testing.assert_close(p, s0 + 0.25)  # 0.75 * start + 0.25 * (start + 1)
    torch.testing.assert_close(list(other.G_BA.parameters())[0], list(model.G_BA.parameters())[0])
    assert ema.updates == 1
    history = rcg.train_cyclegan(model, lambda step: {"image_a": torch.rand(1, 3, 32, 32), "image_b": torch.rand(1, 3, 32, 32)},
                                 steps=2, ema=ema, device="cpu")
    assert ema.updates == 3 and len(history["loss_G"]) == 2
    with pytest.raises(ValueError, match="decay"):
        rcg.GeneratorEMA(model, decay=1.0)
    with pytest.raises(ValueError, match="architecture"):
        ema.copy_to(cg.cyclegan(g_width=8, n_blocks=1, d_width=4))


def test_training_runs_and_the_schedule_decays_to_zero():
    torch.manual_seed(0)
    model = cg.cyclegan(resolution=32, **TINY)
    history = rcg.train_cyclegan(model, unpaired_batches(2, "flat", "comic", 32), steps=6, lr=2e-3, device="cpu")
    assert len(history["loss_G"]) == 6 and all(np.isfinite(history["loss_G"]))
    snaps = rcg.TranslationSnapshots(torch.rand(3, 3, 32, 32))
    snaps.record(model.G_AB, 6)
    assert snaps.frames[0].shape == (3, 3, 32, 32) and snaps.steps == [6]
    opt = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=1.0)
    sched = rcg.linear_decay(opt, 10)
    lrs = []
    for _ in range(10):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert lrs[:6] == [1.0] * 6 and lrs[-1] == pytest.approx(0.2) and opt.param_groups[0]["lr"] == 0.0


# -- the recipe, save and reload -------------------------------------------------------------------

@pytest.mark.parametrize("additions", [{}, {"warmup": 1, "ema": 0.5, "position": 2}])
def test_recipe_trains_saves_and_reloads(tmp_path, monkeypatch, additions):
    row = budgets.BUDGETS["cyclegan_flat_comic"]
    monkeypatch.setitem(budgets.BUDGETS, "cyclegan_flat_comic", budgets.Row(fast=budgets.CycleGANBudget(
        steps=2, batch_size=2, lr=1e-3, g_width=4, n_blocks=1, d_width=4, resolution=32, eval=4,
        **additions), full=row.full))
    rt = runtime.setup(seed=0, device="cpu", profile="fast", verbose=False)
    scores = rcg.train_flat_comic(tmp_path / "ckpt", runtime=rt)
    assert {"AB_style_accuracy", "BA_content_accuracy", "AB_fd", "AB_fd_real_vs_real", "AB_cycle_l1"} <= set(scores)
    last = {k for k in scores if k.startswith("last_")}
    if additions:  # the last step's generators are scored too (five metrics per direction), the average is shipped
        assert last == {f"last_{d}_{k}" for d in ("AB", "BA") for k in
                        ("style_accuracy", "content_accuracy", "l1_to_truth", "ssim_to_truth", "fd")}
        assert scores["ema"] == 0.5 and scores["warmup"] == 1
    else:
        assert not last
    assert scores["AB_fd_real_vs_real_sets"] == scores["BA_fd_real_vs_real_sets"] == 5
    assert scores["AB_fd_real_vs_real_sd"] > 0 and not any(k.startswith("last_") and k.endswith("_sets") for k in scores)
    for d, target in (("AB", "comic"), ("BA", "flat")):  # the baseline is the target style's
        mean, sd = evaluation.fd_real_baseline(target, 4, 32, sets=5)
        assert (scores[f"{d}_fd_real_vs_real_mean"], scores[f"{d}_fd_real_vs_real_sd"]) == pytest.approx((mean, sd))
    manifest = checkpoints.read_manifest(tmp_path / "ckpt")
    assert manifest["extra"]["pair"] == ["flat", "comic"] and manifest["config"]["g_width"] == 4
    saved = checkpoints.load_checkpoint(tmp_path / "ckpt").tensors  # the generators only
    assert saved and all(k.startswith(("G_AB.", "G_BA.")) for k in saved)
    assert manifest["extra"]["discriminators"] == cg.NO_DISCRIMINATORS and manifest["extra"]["class"] == "CycleGAN"
    (features_file, features_info), = checkpoints.read_manifest(checkpoints.shipped_path("features"))["files"].items()
    assert manifest["extra"]["feature_extractor"].endswith(f"{features_file} sha256 {features_info['sha256']}")
    model = cg.cyclegan(weights=tmp_path / "ckpt")
    assert not model.training and model.config.resolution == 32
    x = torch.rand(2, 3, 32, 32)
    y = cg.translate(model, x, "AB")
    assert y.shape == x.shape and 0 <= y.min() and y.max() <= 1
    g = cg.cyclegan_generator("BA", weights=tmp_path / "ckpt")
    torch.testing.assert_close(g.translate(x), model.G_BA.translate(x))


# -- errors ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("field, value", [("g_width", 0), ("n_blocks", -1), ("norm", "layer"), ("resolution", 30),
                                          ("pool_size", -2), ("lambda_cycle", -1.0), ("n_down", 5)])
def test_bad_config_is_refused(field, value):
    with pytest.raises(ValueError, match=field.split("_")[0]):
        cg.CycleGANConfig(**{field: value})


def test_a_checkpoint_of_all_four_networks_still_loads_whole(tmp_path):
    torch.manual_seed(0)
    model = cg.cyclegan(**TINY)
    checkpoints.save_pretrained(model, tmp_path / "full", config=model.config)
    loaded = cg.cyclegan(weights=tmp_path / "full")
    for a, b in zip(model.state_dict().values(), loaded.state_dict().values()):
        torch.testing.assert_close(a, b)  # discriminators included
    model.save_pretrained(tmp_path / "g", metrics={}, extra={})
    saved = checkpoints.load_checkpoint(tmp_path / "g").tensors  # save_pretrained keeps the generators only
    assert set(saved) == set(model.generators().state_dict())
    generators_only = cg.cyclegan(weights=tmp_path / "g")
    for key, value in model.generators().state_dict().items():
        torch.testing.assert_close(generators_only.generators().state_dict()[key], value)


def test_bad_inputs_give_clear_errors(tmp_path):
    model = cg.cyclegan(**TINY)
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
        model.G_AB(torch.zeros(2, 1, 32, 32))
    with pytest.raises(ValueError, match="divisible by 4"):
        model.G_AB(torch.zeros(1, 3, 34, 34))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        model.G_AB.translate(torch.full((1, 3, 32, 32), 255.0))
    with pytest.raises(TypeError, match="floating-point"):
        model.G_AB.translate(torch.zeros(1, 3, 32, 32, dtype=torch.uint8))
    with pytest.raises(ValueError, match="direction"):
        cg.translate(model, torch.rand(1, 3, 32, 32), "AC")
    with pytest.raises(ValueError, match="not both"):
        cg.cyclegan(weights="cyclegan_flat_comic", g_width=8)
    with pytest.raises(checkpoints.CheckpointError):
        cg.cyclegan(weights=tmp_path / "missing")
    foreign = tmp_path / "foreign"
    checkpoints.save_pretrained(nn.Linear(2, 2), foreign, config={"in_features": 2})
    with pytest.raises(checkpoints.CheckpointError, match="not a CycleGAN"):
        cg.cyclegan(weights=foreign)


# -- baselines and the scorecard -------------------------------------------------------------------

def test_fd_real_baseline_is_the_spread_over_disjoint_real_sets():
    extractor = feat.feature_extractor(weights="features")
    mean, sd = evaluation.fd_real_baseline("comic", 12, 32, extractor=extractor, sets=2)
    ref = feat.extract_features(extractor, real_renders(12, split="real_a", style="comic", size=32)[0])
    fds = [metrics.frechet_distance(ref, feat.extract_features(
        extractor, real_renders(12, split="real_b", style="comic", size=32, offset=k * 12)[0])) for k in range(2)]
    assert mean == pytest.approx(sum(fds) / 2) and sd == pytest.approx(abs(fds[0] - fds[1]) / 2 ** 0.5)
    # the first set is the one evaluate_translation compares with
    truth = evaluation.evaluate_translation(lambda x: x, "comic", "comic", judge=scene_judge(weights="judge"), n=12,
                                            size=32, extractor=extractor)
    assert truth.fd_real_vs_real == pytest.approx(fds[0])
    with pytest.raises(ValueError, match="sets"):
        evaluation.fd_real_baseline("comic", 12, sets=1)


def test_random_features_are_fixed_and_multiscale():
    f1, f2 = stylization.RandomFeatures(width=6, seed=3), stylization.RandomFeatures(width=6, seed=3)
    x = torch.rand(1, 3, 32, 32)
    maps = f1(x)
    assert [tuple(m.shape[-2:]) for m in maps] == [(32, 32), (16, 16), (8, 8)]
    for m1, m2 in zip(maps, f2(x)):
        torch.testing.assert_close(m1, m2)
    assert not any(p.requires_grad for p in f1.parameters())


def test_adain_gives_the_style_statistics():
    torch.manual_seed(0)
    content, style = torch.randn(2, 4, 8, 8), torch.randn(2, 4, 8, 8) * 3 + 1
    out = stylization.adain(content, style)
    (mo, so), (ms, ss) = stylization.mean_std(out), stylization.mean_std(style)
    torch.testing.assert_close(mo, ms, atol=1e-4, rtol=0)
    torch.testing.assert_close(so, ss, atol=1e-3, rtol=1e-3)


@pytest.mark.parametrize("method", ["gram", "adain"])
def test_transfer_moves_style_statistics_towards_the_style(method):
    torch.manual_seed(0)
    scenes = sample_scenes(range(2))
    content, style = render(scenes, "flat", 32), render(sample_scenes(range(2, 4)), "neon", 32)
    feats = stylization.RandomFeatures(width=12)
    fn = stylization.gram_transfer if method == "gram" else stylization.adain_transfer
    out = fn(content, style, features=feats, steps=15, lr=0.1)
    assert out.shape == content.shape and 0 <= out.min() and out.max() <= 1
    target = [losses.gram_matrix(f) for f in feats(style)]
    dist = lambda x: sum(((losses.gram_matrix(f) - g) ** 2).sum() for f, g in zip(feats(x), target))  # noqa: E731
    assert dist(out) < 0.5 * dist(content)
    with pytest.raises(ValueError, match="style must hold"):
        fn(content, torch.cat([style, style, style]), features=feats, steps=1)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        fn(content * 255, style, features=feats, steps=1)


def test_ssim_matches_scikit_image():
    sk_metrics = pytest.importorskip("skimage.metrics")
    torch.manual_seed(0)
    x = torch.rand(2, 3, 32, 32)
    y = (x + 0.2 * torch.randn_like(x)).clamp(0, 1)
    ours = metrics.ssim(x, y)
    for i in range(2):
        ref = sk_metrics.structural_similarity(x[i].numpy(), y[i].numpy(), channel_axis=0, data_range=1.0,
                                            gaussian_weights=True, sigma=1.5, use_sample_covariance=False)
        # scikit-image averages over the whole (cropped) image; ours over valid windows
        assert ours[i].item() == pytest.approx(ref, abs=0.02)
    assert metrics.ssim(x, x).tolist() == pytest.approx([1.0, 1.0])
    with pytest.raises(ValueError, match="same shape"):
        metrics.ssim(x, y[:, :, :16])


def test_scorecard_of_doing_nothing():
    torch.manual_seed(0)
    judge = SceneJudge()
    s = evaluation.evaluate_translation(lambda x: x, "flat", "comic", judge=judge, n=4, size=32, back=lambda x: x,
                                        method="identity")
    assert s.cycle_l1 == 0.0 and s.method == "identity" and s.n == 4
    assert 0 < s.l1_to_truth < 1 and s.fd >= 0 and s.fd_real_vs_real >= 0
    assert not s.fd_meaningful  # 4 pictures in 64 dimensions: FD is flagged, KID is given instead
    assert s.kid == s.kid and s.kid_real_vs_real == s.kid_real_vs_real  # not NaN
    with pytest.raises(ValueError, match="n must be"):
        evaluation.evaluate_translation(lambda x: x, "flat", "comic", judge=judge, n=1)
    with pytest.raises(ValueError, match="unknown style"):
        evaluation.evaluate_translation(lambda x: x, "flat", "oil", judge=judge, n=4)


def test_judge_scores_reads_real_renders_and_checks_its_inputs():
    judge = scene_judge(weights="judge")
    batch = paired_batches(16, "flat", "comic", 64, split="test")(0)
    s = evaluation.judge_scores(judge, batch["image_b"], "comic", batch["slots"])
    assert s["style"] >= 0.9 and s["object"] >= 0.9 and set(s) == {"style", "object", "scene"}
    assert evaluation.judge_scores(judge, batch["image_b"], "flat", batch["slots"])["style"] <= 0.1
    with pytest.raises(ValueError, match="slots"):
        evaluation.judge_scores(judge, batch["image_b"], "comic", batch["slots"][:3])
    with pytest.raises(ValueError, match="unknown style"):
        evaluation.judge_scores(judge, batch["image_b"], "oil", batch["slots"])


def test_the_shipped_judge_reads_real_renders():
    """The judge that scores translations (``spokenstyle train judge``) loads and reads held-out renders."""
    judge = scene_judge(weights="judge")
    assert not judge.training
    batch = paired_batches(16, "flat", "comic", 64, split="test")(0)
    with torch.no_grad():
        style_logits, slot_logits = judge(batch["image_b"])
    assert (style_logits.argmax(-1) == STYLES.index("comic")).float().mean() >= 0.9
    present = batch["slots"] > 0
    assert ((slot_logits.argmax(-1) == batch["slots"]) & present).sum() >= 0.9 * present.sum()
    with pytest.raises(ValueError, match="not both"):
        scene_judge(weights="judge", config=JudgeConfig())


# -- chapter 11's options: skips, PatchNCE, the small-object term (all off by default) -------------

def test_the_options_are_off_by_default_and_add_nothing():
    config = cg.CycleGANConfig()
    assert (config.skip, config.lambda_nce, config.lambda_small, config.lambda_cycle) == (False, 0.0, 0.0, 10.0)
    model = cg.cyclegan(**TINY)
    assert not hasattr(model, "P_AB") and set(rcg._generator_side(model)) == {"G_AB", "G_BA"}
    n_g = sum(p.numel() for g in (model.G_AB, model.G_BA) for p in g.parameters())
    assert sum(p.numel() for group in rcg.adam_optimizers(model)["G"].param_groups for p in group["params"]) == n_g
    row = budgets.BUDGETS["cyclegan_flat_comic"]
    for b in (row.fast, row.full):  # the shipped recipe switches none of them on
        c = rcg.config_from_budget(b)
        assert (c.skip, c.lambda_nce, c.lambda_small, c.lambda_cycle) == (False, 0.0, 0.0, 10.0)


@pytest.mark.parametrize("n_down", [1, 2])
def test_skip_connections_carry_the_input_past_the_bottleneck(n_down):
    """With U-Net skips the decoder takes each encoder stage's features too (twice the channels);
    with the downsampling path cut (its convolutions zeroed) the output still follows the input,
    which it cannot without skips."""
    torch.manual_seed(0)
    config = cg.CycleGANConfig(**TINY, resolution=32, n_down=n_down, residual=False, norm="none")
    plain, skip = cg.ResnetGenerator(config), cg.ResnetGenerator(cg.CycleGANConfig(**{**config.__dict__, "skip": True}))
    assert set(plain.state_dict()) == set(skip.state_dict())  # the same layers, wider inputs
    ups = [[m.in_channels for m in g.net if isinstance(m, nn.ConvTranspose2d)] for g in (plain, skip)]
    assert ups[1] == ups[0][:1] + [2 * c for c in ups[0][1:]]  # every up-step after the first takes a skip
    assert skip.net[-1].in_channels == 2 * plain.net[-1].in_channels == 2 * TINY["g_width"]
    x1, x2 = torch.rand(2, 1, 3, 32, 32) * 2 - 1
    for g in (plain, skip):
        with torch.no_grad():
            for m in g.net:
                if isinstance(m, nn.Conv2d) and m.stride == (2, 2):
                    m.weight.zero_()
    assert torch.equal(plain(x1), plain(x2))  # nothing passes the cut
    assert not torch.allclose(skip(x1), skip(x2))  # the skips do
    assert skip(torch.rand(2, 3, 64, 64) * 2 - 1).shape == (2, 3, 64, 64)  # any size, like the plain one
    with pytest.raises(ValueError, match="n_down"):
        cg.CycleGANConfig(skip=True, n_down=0)


def test_encode_returns_each_encoder_stage():
    torch.manual_seed(0)
    g = cg.ResnetGenerator(cg.CycleGANConfig(**TINY, resolution=32, position=2))
    feats = g.encode(torch.rand(2, 3, 32, 32) * 2 - 1)
    assert [f.shape[1] for f in feats] == g.encoder_channels() == [4, 8, 16, 16]
    assert [f.shape[-1] for f in feats] == [32, 16, 8, 8]
    x = torch.rand(1, 3, 32, 32) * 2 - 1
    h = g._with_position(x)
    for layer in g.net[:4]:  # the stem, by hand
        h = layer(h)
    torch.testing.assert_close(g.encode(x)[0], h)


def _info_nce_by_loops(q: torch.Tensor, k: torch.Tensor, b: int, tau: float) -> torch.Tensor:
    """InfoNCE written patch by patch: -log e^{q_i·k_i/τ} / (e^{q_i·k_i/τ} + Σ_{j≠i} e^{q_i·k_j/τ} + e^{-10/τ}),
    negatives from the same picture; the e^{-10/τ} is CUT's masked diagonal, kept in its softmax."""
    n = q.shape[0] // b
    total = []
    for pic in range(b):
        qs, ks = q[pic * n:(pic + 1) * n], k[pic * n:(pic + 1) * n]
        for i in range(n):
            pos = torch.exp(qs[i] @ ks[i] / tau)
            neg = sum(torch.exp(qs[i] @ ks[j] / tau) for j in range(n) if j != i) + math.exp(-10 / tau)
            total.append(-torch.log(pos / (pos + neg)))
    return torch.stack(total).mean()


def test_patch_nce_matches_infonce_written_by_hand():
    torch.manual_seed(0)
    config = cg.CycleGANConfig(**TINY, resolution=32, lambda_nce=1.0, nce_patches=5, nce_dim=8)
    model = cg.cyclegan(config=config)
    src, out = torch.rand(2, 3, 32, 32) * 2 - 1, torch.rand(2, 3, 32, 32) * 2 - 1
    torch.manual_seed(3)
    loss = rcg.patch_nce_loss(model.G_AB, model.P_AB, src, out, config=config)
    torch.manual_seed(3)  # the same patch locations
    keys, ids = model.P_AB(model.G_AB.encode(src), 5)
    queries, _ = model.P_AB(model.G_AB.encode(out), 5, ids)
    assert all(q.shape == (2 * 5, 8) for q in queries)
    norms = torch.cat(queries).norm(dim=1)  # unit vectors (0 where a head's ReLUs all happen to be off)
    assert (((norms - 1).abs() < 1e-5) | (norms == 0)).all() and (norms > 0.5).float().mean() > 0.8
    by_hand = sum(_info_nce_by_loops(q.double(), k.double(), 2, 0.07) for q, k in zip(queries, keys)) / len(keys)
    torch.testing.assert_close(loss.double(), by_hand, rtol=1e-4, atol=1e-5)
    loss.backward()  # the queries' side trains the generator and the heads
    assert model.P_AB.heads[0][0].weight.grad is not None and model.G_AB.net[1].weight.grad.abs().sum() > 0
    # a translation that is its source scores better than an unrelated picture (the positive is the same patch)
    torch.manual_seed(4)
    same = rcg.patch_nce_loss(model.G_AB, model.P_AB, src, src, config=config)
    torch.manual_seed(4)
    other = rcg.patch_nce_loss(model.G_AB, model.P_AB, src, src.flip(-1), config=config)
    assert same < other


def test_small_object_weights_balance_small_and_large_objects():
    """A 3 x 3 object and a 32 x 32 one on a plain background: per pixel the small one weighs
    window² / 9 = 25 times more than the inside of the large one, so it holds as much weight as a
    15 x 15 patch of it; the background none, and a blank picture nothing at all."""
    x = torch.full((2, 3, 64, 64), -0.8)
    x[0, :, 2:34, 2:34] = 0.6  # large
    x[0, :, 50:53, 50:53] = 0.2  # small, far from the large one and the border
    w = rcg.small_object_weights(x)
    assert w.shape == (2, 1, 64, 64)
    assert w[0].mean() == pytest.approx(1.0) and float(w[0, 0, 0, 50]) == 0.0
    small, large_inside = float(w[0, 0, 51, 51]), float(w[0, 0, 17, 17])
    assert small == pytest.approx(25 * large_inside, rel=1e-4)
    assert float(w[0, 0, 50:53, 50:53].sum()) == pytest.approx(float(w[0, 0, 10:25, 10:25].sum()), rel=1e-4)
    assert torch.equal(w[1], torch.zeros(1, 64, 64))  # blank: nothing stands out
    with pytest.raises(ValueError, match="window"):
        rcg.small_object_weights(x, window=4)


@pytest.mark.parametrize("options", [{"lambda_small": 3.0}, {"lambda_nce": 0.5}, {"lambda_nce": 1.0, "lambda_cycle": 0.0}])
def test_cycle_step_adds_each_option_to_the_generator_loss(options):
    torch.manual_seed(0)
    model = cg.cyclegan(**TINY, **options)
    a, b = torch.rand(2, 3, 32, 32), torch.rand(2, 3, 32, 32)
    t = _StubTrainer(model)
    t.modules.update(rcg._generator_side(model))
    out = rcg.cycle_step(t, {"image_a": a, "image_b": b}, 1, config=model.config,
                         pools=(rcg.ImagePool(0), rcg.ImagePool(0)), warmup=4)
    lam = model.config.lambda_cycle
    expected = out["loss_adv"] + 0.25 * (lam * out["loss_cycle"] + 0.5 * lam * out["loss_idt"])
    expected = expected + 0.25 * options.get("lambda_nce", 0.0) * out.get("loss_nce", 0.0)
    expected = expected + 0.25 * options.get("lambda_small", 0.0) * out.get("loss_small", 0.0)
    torch.testing.assert_close(t.losses["G"], expected.detach(), rtol=1e-5, atol=1e-6)
    if "lambda_small" in options:
        ra, rb = a * 2 - 1, b * 2 - 1
        with torch.no_grad():
            small = ((rcg.small_object_weights(ra) * (model.G_AB(ra) - ra).abs()).mean()
                     + (rcg.small_object_weights(rb) * (model.G_BA(rb) - rb).abs()).mean())
        torch.testing.assert_close(out["loss_small"].detach(), small, rtol=1e-5, atol=1e-6)
    if options.get("lambda_cycle") == 0.0:  # CUT: no cycle, and no identity L1 (its weight is a fraction of λ)
        assert float(out["loss_cycle"]) == 0.0 and float(out["loss_idt"]) == 0.0 and out["loss_nce"] > 0


@pytest.mark.parametrize("options", [{"skip": True}, {"lambda_nce": 1.0, "lambda_cycle": 0.0, "nce_patches": 16},
                                     {"lambda_small": 5.0}, {"lambda_identity": 0.0}])
def test_each_option_trains_saves_and_reloads(tmp_path, options):
    torch.manual_seed(0)
    model = cg.cyclegan(resolution=32, **TINY, **options)
    history = rcg.train_cyclegan(model, unpaired_batches(2, "flat", "comic", 32), steps=3, lr=2e-3, warmup=2,
                                 device="cpu")
    assert all(np.isfinite(history["loss_G"]))
    if "lambda_nce" in options:
        assert all(np.isfinite(history["loss_nce"])) and len(history["loss_nce"]) == 3
    model.save_pretrained(tmp_path / "ckpt", metrics={}, extra={})
    saved = checkpoints.load_checkpoint(tmp_path / "ckpt").tensors
    assert all(k.startswith(("G_AB.", "G_BA.")) for k in saved)  # neither D nor PatchNCE's heads
    loaded = cg.cyclegan(weights=tmp_path / "ckpt")
    x = torch.rand(2, 3, 32, 32)
    torch.testing.assert_close(loaded.G_AB.translate(x), model.G_AB.translate(x))
    in_budget = {k: v for k, v in options.items() if k != "nce_patches"}  # a budget row sets the weights only
    budget = budgets.CycleGANBudget(steps=1, batch_size=1, lr=1e-3, g_width=4, n_blocks=1, d_width=4,
                                    resolution=32, eval=2, **in_budget)
    config = rcg.config_from_budget(budget)
    assert all(getattr(config, k) == v for k, v in in_budget.items())


@pytest.mark.parametrize("field, value", [("lambda_nce", -1.0), ("lambda_small", True), ("nce_patches", 0),
                                          ("nce_temperature", 0.0), ("skip", 1)])
def test_bad_option_values_are_refused(field, value):
    with pytest.raises(ValueError, match=field):
        cg.CycleGANConfig(**{field: value})


def test_validation_scenes_are_other_scenes_than_the_test_scenes():
    judge = scene_judge(weights="judge")
    extractor = feat.feature_extractor(weights="features")
    common = dict(judge=judge, n=6, size=32, extractor=extractor)
    test = evaluation.evaluate_translation(lambda x: x, "flat", "comic", **common)
    again = evaluation.evaluate_translation(lambda x: x, "flat", "comic", **common, split="test")
    val = evaluation.evaluate_translation(lambda x: x, "flat", "comic", **common, split="validation")
    assert test == again and val.l1_to_truth != test.l1_to_truth
    seen = []
    evaluation.evaluate_translation(lambda x: seen.append(x) or x, "flat", "comic", **common, split="validation", seed=1)
    lo = budgets_seed = evaluation.seed_range("validation").start
    assert torch.equal(seen[0], render(sample_scenes(range(lo + 6, lo + 12)), "flat", 32)) and budgets_seed > 0
    with pytest.raises(ValueError, match="split"):
        evaluation.evaluate_translation(lambda x: x, "flat", "comic", **common, split="train")


def test_train_variant_is_the_recipe_with_some_fields_changed(tmp_path, monkeypatch):
    """The "shipped" variant trains exactly the generators `spokenstyle train` would (same seeding,
    data and steps); another variant changes only its fields."""
    row = budgets.BUDGETS["cyclegan_flat_comic"]
    monkeypatch.setitem(budgets.BUDGETS, "cyclegan_flat_comic", budgets.Row(fast=budgets.CycleGANBudget(
        steps=2, batch_size=2, lr=1e-3, g_width=4, n_blocks=1, d_width=4, resolution=32, eval=4, ema=0.5),
        full=row.full))
    rt = runtime.setup(seed=0, device="cpu", profile="fast", verbose=False)
    rcg.train_flat_comic(tmp_path / "ckpt", runtime=rt)
    shipped = checkpoints.load_checkpoint(tmp_path / "ckpt").tensors
    model, history, b = rcg.train_variant("shipped", runtime=rt)
    assert not model.training and b == budgets.BUDGETS["cyclegan_flat_comic"].fast and history["loss_G"]
    for key, value in model.generators().state_dict().items():
        torch.testing.assert_close(value, shipped[key])
    skip, _, b_skip = rcg.train_variant("skip", runtime=rt, steps=1)
    assert b_skip.skip and b_skip.steps == 1 and skip.config.skip
    _, _, custom = rcg.train_variant({"lambda_small": 2.0}, runtime=rt, steps=1)
    assert custom.lambda_small == 2.0
    with pytest.raises(ValueError, match="variant"):
        rcg.train_variant("wider", runtime=rt)
    with pytest.raises(ValueError, match="style pairs"):
        rcg.train_variant("shipped", runtime=rt, name="cyclegan_photo")
    assert set(rcg.ABLATION_VARIANTS) >= {"shipped", "identity_0", "nce_beside", "nce_instead", "skip", "small_objects"}
    for fields in rcg.ABLATION_VARIANTS.values():  # every variant is a valid budget change
        rcg.config_from_budget(row.full.replace(**fields))


def _run(variant, seed, content, style=(1.0, 1.0)):
    return {"variant": variant, "seed": seed, "validation": {
        "AB_content_accuracy": content[0], "BA_content_accuracy": content[1],
        "AB_style_accuracy": style[0], "BA_style_accuracy": style[1]}}


def test_the_ablation_rule_by_hand():
    """Stage 1 screens every variant on seed 0 (style within 0.02 of the shipped recipe's, the two
    best contents go on); stage 2 averages the finalists' and the shipped recipe's two seeds, and a
    winner must beat the shipped recipe by more than the seeds' spread (at least 0.02)."""
    stage1 = [_run("shipped", 0, (0.80, 0.88)),  # content 0.80
              _run("skip", 0, (0.90, 0.91)),  # 0.90: a finalist
              _run("nce", 0, (0.97, 0.97), (0.5, 1.0)),  # best content, lost style: out
              _run("small", 0, (0.85, 0.9)),  # 0.85: a finalist
              _run("id0", 0, (0.82, 0.95))]  # 0.82: third, screened out
    screen = rcg.screen_ablation(stage1)
    assert screen["finalists"] == ["skip", "small"] and "nce" not in screen["eligible"]
    assert screen["table"]["shipped"]["content"] == pytest.approx(0.80)
    out = rcg.choose_ablation_variant(stage1)
    assert out["chosen"] is None and out["pending"] == [("shipped", 1), ("skip", 1), ("small", 1)]
    stage2 = [_run("shipped", 1, (0.84, 0.90)),  # shipped: content 0.82, spread 0.04
              _run("skip", 1, (0.88, 0.95)),  # skip: 0.89, spread 0.02: beats 0.82 by 0.07 > 0.04
              _run("small", 1, (0.85, 0.9))]  # small: 0.85
    out = rcg.choose_ablation_variant(stage1 + stage2)
    assert out["chosen"] == "skip" and out["margin"] == pytest.approx(0.04) and out["pending"] == []
    assert out["table"]["skip"]["content"] == pytest.approx(0.89) and out["table"]["id0"]["seeds"] == [0]
    # without skip, small's +0.03 is less than the shipped recipe's 0.04 spread: the shipped recipe stays
    no_skip = [r for r in stage1 + stage2 if r["variant"] != "skip"]
    out = rcg.choose_ablation_variant(no_skip)
    assert out["finalists"] == ["small", "id0"] and out["pending"] == [("id0", 1)]
    out = rcg.choose_ablation_variant(no_skip + [_run("id0", 1, (0.80, 0.9))])
    assert out["chosen"] == "shipped"
    # a finalist whose style drops in stage 2 cannot win, however high its content
    worse = stage2[:1] + [_run("skip", 1, (0.99, 0.99), (0.90, 0.9)), stage2[2]]
    assert rcg.choose_ablation_variant(stage1 + worse)["chosen"] == "shipped"
    with pytest.raises(ValueError, match="shipped"):
        rcg.choose_ablation_variant(stage1[1:])
    with pytest.raises(ValueError, match="twice"):
        rcg.choose_ablation_variant(stage1 + stage1[:1])