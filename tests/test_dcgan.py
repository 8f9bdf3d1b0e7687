"""DCGAN: shapes at both resolutions, value ranges, the paper's init, builders and checkpoints."""

from __future__ import annotations

from dataclasses import asdict

import pytest
import torch
from torch import nn

from spokenstyle import checkpoints, cli
from spokenstyle.models import dcgan as dc
from spokenstyle.recipes import dcgan as rdc
from spokenstyle.train import ema_update_

TINY = dict(g_width=4, d_width=4, latent_dim=8)


@pytest.mark.parametrize("resolution", [32, 64])
@pytest.mark.parametrize("batch_norm", [True, False])
def test_shapes_and_ranges(resolution, batch_norm):
    torch.manual_seed(0)
    model = dc.dcgan(resolution=resolution, batch_norm=batch_norm, **TINY)
    z = model.G.sample_latent(5, generator=torch.Generator().manual_seed(0))
    assert z.shape == (5, 8)
    x = model.G(z)
    assert x.shape == (5, 3, resolution, resolution)
    assert x.min() >= -1 and x.max() <= 1  # tanh
    logits = model.D(x)
    assert logits.shape == (5,)
    has_bn = any(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    assert has_bn == batch_norm


def test_spectral_norm_bounds_every_layer_of_d_and_round_trips(tmp_path):
    """With spectral_norm, D has no BatchNorm, every convolution is W / sigma(W) (largest singular
    value 1 once the power iteration has converged), G is the plain DCGAN generator, and the
    checkpoint (weight_orig, weight_u) loads back into an identical D."""
    torch.manual_seed(0)
    config = dc.DCGANConfig(spectral_norm=True, **TINY)
    model = dc.dcgan(config=config)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in model.D.modules())
    assert any(isinstance(m, nn.BatchNorm2d) for m in model.G.modules())
    convs = [m for m in model.D.modules() if isinstance(m, nn.Conv2d)]
    assert len(convs) == 4 and all(hasattr(m, "weight_orig") for m in convs)
    x = torch.rand(4, 3, 32, 32) * 2 - 1
    model.D.train()
    for _ in range(50):  # power iterations, one per training forward pass
        model.D(x)
    for conv in convs:
        sigma = torch.linalg.matrix_norm(conv.weight.detach().flatten(1), ord=2).item()
        assert sigma == pytest.approx(1.0, abs=0.02)
        raw = torch.linalg.matrix_norm(conv.weight_orig.detach().flatten(1), ord=2).item()
        assert raw != pytest.approx(1.0, abs=0.02)  # the raw weights are not normalised themselves
    model.save_pretrained(tmp_path / "sn")
    D = dc.dcgan_discriminator(weights=tmp_path / "sn")
    model.D.eval()
    assert torch.equal(D(x), model.D(x))


def test_layout_follows_the_paper():
    """No BatchNorm on G's output or D's input layer; ReLU in G, LeakyReLU(0.2) in D; tanh out."""
    model = dc.dcgan(**TINY)
    g_layers, d_layers = list(model.G.net), list(model.D.net)
    assert isinstance(g_layers[-1], nn.Tanh) and isinstance(g_layers[-2], nn.ConvTranspose2d)
    assert isinstance(d_layers[0], nn.Conv2d) and isinstance(d_layers[1], nn.LeakyReLU)
    assert d_layers[1].negative_slope == 0.2
    assert not any(isinstance(m, nn.LeakyReLU) for m in model.G.modules())
    assert not any(isinstance(m, nn.ReLU) and not isinstance(m, nn.LeakyReLU) for m in model.D.modules())


def test_init_is_normal_0_02():
    torch.manual_seed(0)
    model = dc.dcgan(g_width=32, d_width=32)
    weights = torch.cat([m.weight.flatten() for m in model.modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))])
    assert abs(weights.mean().item()) < 1e-3
    assert weights.std().item() == pytest.approx(0.02, rel=0.02)
    bn = torch.cat([m.weight.flatten() for m in model.modules() if isinstance(m, nn.BatchNorm2d)])
    assert bn.mean().item() == pytest.approx(1.0, abs=0.01)


def test_range_conversions_are_inverse():
    images = torch.rand(2, 3, 8, 8)
    assert torch.allclose(dc.to_unit_range(dc.to_tanh_range(images)), images, atol=1e-6)
    assert dc.to_tanh_range(torch.zeros(1)).item() == -1 and dc.to_tanh_range(torch.ones(1)).item() == 1
    with pytest.raises(TypeError):
        dc.to_unit_range(torch.zeros(2, dtype=torch.long))


def test_generate_returns_unit_range_and_restores_mode():
    G = dc.dcgan_generator(**TINY)
    G.train()
    a = G.generate(6, generator=torch.Generator().manual_seed(1), batch_size=4)
    b = G.generate(6, generator=torch.Generator().manual_seed(1))
    assert a.shape == (6, 3, 32, 32) and a.min() >= 0 and a.max() <= 1
    assert torch.allclose(a, b, atol=1e-6)  # seeded, and eval-mode BatchNorm is per-sample
    assert G.training
    z = G.sample_latent(3)
    assert torch.equal(G.generate(z=z), G.generate(z=z))
    with pytest.raises(ValueError, match="exactly one"):
        G.generate()


def test_truncated_normal_matches_scipy():
    from scipy import stats

    for psi in (0.5, 1.0, 2.0):
        z = dc.truncated_normal((20_000,), psi, torch.Generator().manual_seed(0))
        assert z.dtype == torch.float32 and z.abs().max() <= psi
        ks = stats.kstest(z.double().numpy(), stats.truncnorm(-psi, psi).cdf)
        assert ks.pvalue > 1e-3, (psi, ks)
        assert abs(z.var().item() - stats.truncnorm(-psi, psi).var()) < 0.02
    tiny = dc.truncated_normal((1000,), 1e-6)  # inverse CDF: no rejection loop, exact for a small psi
    assert tiny.abs().max() <= 1e-6 and tiny.std() > 0
    for bad in (0, -1.0, float("nan"), float("inf"), True, "1"):
        with pytest.raises(ValueError, match="truncation must be a positive finite number"):
            dc.truncated_normal((3,), bad)


def test_generate_with_truncation():
    G = dc.dcgan_generator(**TINY)
    z = G.sample_latent(64, truncation=0.5, generator=torch.Generator().manual_seed(3))
    assert z.shape == (64, G.config.latent_dim) and z.abs().max() <= 0.5
    assert torch.equal(z, G.sample_latent(64, truncation=0.5, generator=torch.Generator().manual_seed(3)))
    a = G.generate(4, truncation=0.5, generator=torch.Generator().manual_seed(3))
    assert torch.allclose(a, G.generate(z=z[:4]), atol=1e-6)  # generate draws the same truncated z
    with pytest.raises(ValueError, match="truncate a given z"):
        G.generate(z=z, truncation=0.5)


def test_bad_inputs_are_named():
    with pytest.raises(ValueError, match="resolution"):
        dc.DCGANConfig(resolution=48)
    with pytest.raises(ValueError, match="g_width"):
        dc.DCGANConfig(g_width=0)
    G = dc.dcgan_generator(**TINY)
    with pytest.raises(ValueError, match=r"\(B, 8\)"):
        G(torch.zeros(2, 9))
    D = dc.dcgan_discriminator(**TINY)
    with pytest.raises(ValueError, match=r"\(B, 3, 32, 32\)"):
        D(torch.zeros(2, 3, 64, 64))
    with pytest.raises(TypeError):
        dc.dcgan(config={"resolution": 32})


def test_save_load_round_trip(tmp_path):
    torch.manual_seed(0)
    config = dc.DCGANConfig(resolution=32, **TINY)
    model = dc.dcgan(config=config)
    model.save_pretrained(tmp_path / "gan", metrics={"fd": 1.0})
    manifest = checkpoints.read_manifest(tmp_path / "gan")
    assert manifest["config"] == asdict(config) and manifest["metrics"] == {"fd": 1.0}
    assert manifest["extra"]["class"] == "DCGAN"
    (weights_file,) = manifest["files"]
    assert (tmp_path / "gan" / weights_file).is_file()
    G = dc.dcgan_generator(weights=tmp_path / "gan")
    assert not G.training
    z = torch.randn(3, 8)
    model.G.eval()
    assert torch.equal(G(z), model.G(z))
    D = dc.dcgan_discriminator(weights=str(tmp_path / "gan"))
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    model.D.eval()
    assert torch.equal(D(x), model.D(x))
    pair = dc.DCGAN.from_pretrained(tmp_path / "gan" / weights_file)  # a file inside the checkpoint names it too
    assert not pair.training and pair.config == config and pair.checkpoint_path == tmp_path / "gan"
    assert torch.equal(pair.G(z), model.G(z)) and torch.equal(pair.D(x), model.D(x))
    with pytest.raises(ValueError, match="not both"):
        dc.dcgan_generator(weights=tmp_path / "gan", resolution=64)


def test_foreign_checkpoint_is_refused(tmp_path):
    checkpoints.save_pretrained(nn.Linear(2, 2), tmp_path / "lin", config={"in_features": 2})
    with pytest.raises(checkpoints.CheckpointError, match="DCGANConfig"):
        dc.dcgan_generator(weights=tmp_path / "lin")
    with pytest.raises(checkpoints.CheckpointError, match="no shipped checkpoint"):
        dc.dcgan_generator(weights="no-such-gan")


def test_shipped_checkpoint_loads_if_present():
    if "dcgan" not in checkpoints.shipped():
        pytest.skip("no shipped dcgan checkpoint")
    G = dc.dcgan_generator(weights="dcgan")
    images = G.generate(4, generator=torch.Generator().manual_seed(0))
    assert images.shape[:2] == (4, 3) and images.min() >= 0 and images.max() <= 1


@pytest.mark.slow
def test_recipe_trains_evaluates_and_saves(tmp_path, monkeypatch):
    """`spokenstyle train dcgan --profile fast`: a checkpoint with the command and metrics beside
    their real-vs-real baselines, loadable by the builder."""
    if "features" not in checkpoints.shipped():
        pytest.skip("the recipe evaluates with the shipped feature extractor")
    monkeypatch.setattr("sys.argv", ["spokenstyle", "train", "dcgan", "--profile", "fast"])
    assert cli.main(["train", "dcgan", "--profile", "fast", "--device", "cpu", "--out", str(tmp_path / "gan")]) == 0
    manifest = checkpoints.read_manifest(tmp_path / "gan")
    assert manifest["command"].startswith("spokenstyle train dcgan")
    for key in ("fd", "kid", "precision", "recall", "confident"):
        assert key in manifest["metrics"] and key + "_real_vs_real" in manifest["metrics"]
    G = dc.dcgan_generator(weights=tmp_path / "gan")
    assert G.generate(2).shape == (2, 3, 32, 32)


def test_ema_update_moves_towards_the_model_and_checks_decay():
    torch.manual_seed(0)
    a, b = dc.dcgan_generator(**TINY), dc.dcgan_generator(**TINY)
    before = [p.clone() for p in a.parameters()]
    ema_update_(a, b, 0.75)
    for p0, pa, pb in zip(before, a.parameters(), b.parameters()):
        assert torch.allclose(pa, 0.75 * p0 + 0.25 * pb, atol=1e-6)
    bn_a = next(m for m in a.modules() if isinstance(m, nn.BatchNorm2d))
    bn_b = next(m for m in b.modules() if isinstance(m, nn.BatchNorm2d))
    assert torch.equal(bn_a.num_batches_tracked, bn_b.num_batches_tracked)  # integer buffers are copied
    with pytest.raises(ValueError, match="decay"):
        ema_update_(a, b, 1.0)


def test_train_dcgan_keeps_an_average_of_g_and_decays_the_lr(tmp_path):
    torch.manual_seed(0)
    model = dc.dcgan(**TINY)
    images = torch.rand(16, 3, 32, 32)
    history, g_ema = rdc.train_dcgan(model, lambda step: images[:8], steps=4, lr=1e-3, ema_decay=0.5,
                                     lr_decay=True, device="cpu", checkpoint_dir=tmp_path / "run")
    assert len(history["loss_D"]) == 4 and not g_ema.training
    assert any(not torch.equal(e, g) for e, g in zip(g_ema.parameters(), model.G.parameters()))
    assert all(not p.requires_grad for p in g_ema.parameters())
    # resuming a finished run is a no-op that restores the average from the checkpoint
    _, again = rdc.train_dcgan(dc.dcgan(**TINY), lambda step: images[:8], steps=4, lr=1e-3, ema_decay=0.5,
                               lr_decay=True, device="cpu", checkpoint_dir=tmp_path / "run")
    assert all(torch.equal(x, y) for x, y in zip(again.state_dict().values(), g_ema.state_dict().values()))
    history, none = rdc.train_dcgan(dc.dcgan(**TINY), lambda step: images[:8], steps=2, device="cpu")
    assert none is None


# -- conditional on the style, augmentation, R1, two time-scales (issue 36) ------------------------

COND = dict(TINY, n_classes=3, spectral_norm=True)


def test_a_conditional_pair_draws_and_judges_per_class():
    torch.manual_seed(0)
    model = dc.dcgan(**COND)
    z, y = torch.randn(6, 8), torch.tensor([0, 1, 2, 0, 1, 2])
    model.eval()  # and D's spectral normalisation stays put between the calls compared below
    x = model.G(z, y)
    assert x.shape == (6, 3, 32, 32)
    same_z = model.G(z[:1].expand(3, -1), torch.arange(3))
    assert not torch.equal(same_z[0], same_z[1])  # the class changes the picture for the same z
    scores = model.D(x, y)
    assert scores.shape == (6,)
    # the projection: D(x, y) - D(x, y') = <e_y - e_y', sum_hw phi(x)>
    phi = model.D.net[:-1](x).sum((2, 3))
    diff = model.D(x, y) - model.D(x, (y + 1) % 3)
    expected = ((model.D.embed(y) - model.D.embed((y + 1) % 3)) * phi).sum(1)
    assert torch.allclose(diff, expected, atol=1e-5)
    a, b = model.G.generate(z=z), model.G.generate(z=z, y=torch.arange(6) % 3)
    assert torch.equal(a, b)  # default classes: i % n_classes


@pytest.mark.parametrize("call, message", [
    (lambda G, D: G(torch.randn(2, 8)), "conditional: give y"),
    (lambda G, D: G(torch.randn(2, 8), torch.tensor([0, 3])), "class ids must be in \\[0, 3\\)"),
    (lambda G, D: G(torch.randn(2, 8), torch.tensor([0.0, 1.0])), "integer tensor"),
    (lambda G, D: D(torch.zeros(2, 3, 32, 32), torch.tensor([1])), "a \\(2,\\) integer tensor"),
])
def test_conditional_inputs_are_checked(call, message):
    model = dc.dcgan(**COND)
    with pytest.raises(ValueError, match=message):
        call(model.G, model.D)
    with pytest.raises(ValueError, match="unconditional"):
        dc.dcgan(**TINY).G(torch.randn(2, 8), torch.tensor([0, 1]))


def test_an_unconditional_config_keeps_its_keys_and_draws():
    """n_classes = 0 is exactly the pair the shipped unconditional checkpoints were saved from."""
    torch.manual_seed(0)
    plain = dc.dcgan(**TINY)
    torch.manual_seed(0)
    again = dc.dcgan(**TINY, n_classes=0)
    assert list(plain.state_dict()) == list(again.state_dict())
    assert all(torch.equal(a, b) for a, b in zip(plain.state_dict().values(), again.state_dict().values()))
    conditional = dc.dcgan(**dict(TINY, n_classes=2)).state_dict()
    assert "D.embed.weight" in conditional and "D.embed.weight" not in plain.state_dict()


def _fake_trainer(model, **extra):
    """The two modules and optimisers gan_step needs, without the training loop."""
    class T:
        modules = {"G": model.G, "D": model.D, **extra}
        autocast = staticmethod(lambda: torch.autocast("cpu", enabled=False))
        def optimize(self, name, loss):
            self.losses[name] = float(loss.detach())
        losses: dict = {}
    return T()


def test_r1_adds_the_gradient_penalty_of_the_real_scores():
    torch.manual_seed(0)
    model = dc.dcgan(**COND)
    model.D.eval()  # spectral normalisation's power iteration stays put: D is the same function in every call
    images, y = torch.rand(4, 3, 32, 32), torch.tensor([0, 1, 2, 0])
    runs = {}
    for r1 in (0.0, 10.0):
        t = _fake_trainer(model)
        torch.manual_seed(1)
        rdc.gan_step(t, (images, y), 0, loss="hinge", r1=r1)
        runs[r1] = t.losses["D"]
    x = (images * 2 - 1).requires_grad_(True)
    (grad,) = torch.autograd.grad(model.D(x, y).sum(), x)
    penalty = 0.5 * 10.0 * grad.square().flatten(1).sum(1).mean()
    assert runs[10.0] - runs[0.0] == pytest.approx(float(penalty), rel=1e-3)


def test_train_dcgan_with_augmentation_ada_r1_and_two_learning_rates(tmp_path):
    torch.manual_seed(0)
    model = dc.dcgan(**COND)
    images, y = torch.rand(16, 3, 32, 32), torch.arange(16) % 3
    history, g_ema = rdc.train_dcgan(model, lambda step: (images[:8], y[:8]), steps=8, lr=1e-3, d_lr=4e-3,
                                     loss="hinge", ema_decay=0.5, augment="translation,cutout", ada_target=0.6,
                                     ada_speed=100, r1=1.0, device="cpu", checkpoint_dir=tmp_path / "run")
    assert len(history["ada_p"]) == 8 and all(0.0 <= p <= 1.0 for p in history["ada_p"])
    assert max(history["ada_p"]) > 0  # D is sure of 8 reals at once: p rose
    assert torch.isfinite(torch.tensor(history["loss_D"])).all()
    optimizers = rdc.adam_optimizers(model, lr=1e-3, d_lr=4e-3)
    assert optimizers["G"].param_groups[0]["lr"] == 1e-3 and optimizers["D"].param_groups[0]["lr"] == 4e-3
    with pytest.raises(ValueError, match="ada_target needs an augment policy"):
        rdc.train_dcgan(dc.dcgan(**COND), lambda step: (images[:8], y[:8]), steps=1, ada_target=0.6, device="cpu")


def test_d_outputs_measures_without_changing_d():
    torch.manual_seed(0)
    model = dc.dcgan(**COND)
    seen, unseen = torch.rand(10, 3, 32, 32), torch.rand(7, 3, 32, 32)
    y_seen, y_unseen = torch.arange(10) % 3, torch.arange(7) % 3
    before = {k: v.clone() for k, v in model.D.state_dict().items()}  # spectral norm's u vectors included
    a = rdc.d_outputs(model.D, seen, unseen, y_seen=y_seen, y_unseen=y_unseen, batch_size=4)
    assert all(torch.equal(before[k], v) for k, v in model.D.state_dict().items()) and model.D.training
    model.D.eval()
    with torch.no_grad():
        expected = (float(model.D(seen * 2 - 1, y_seen).mean()), float(model.D(unseen * 2 - 1, y_unseen).mean()))
    assert a == pytest.approx(expected, abs=1e-6)


def test_fine_tuning_starts_from_a_checkpoint_of_the_same_architecture(tmp_path):
    torch.manual_seed(0)
    trained = dc.dcgan(**COND)
    trained.save_pretrained(tmp_path / "trained")
    start = rdc.initial_model(dc.DCGANConfig(**COND), tmp_path / "trained")
    assert all(torch.equal(a, b) for a, b in zip(start.state_dict().values(), trained.state_dict().values()))
    fresh = rdc.initial_model(dc.DCGANConfig(**COND))
    assert not all(torch.equal(a, b) for a, b in zip(fresh.state_dict().values(), trained.state_dict().values()))
    with pytest.raises(ValueError, match="g_width 4 \\(budget: 8\\).*n_classes 3 \\(budget: 0\\)"):
        rdc.initial_model(dc.DCGANConfig(**dict(COND, g_width=8, n_classes=0)), tmp_path / "trained")


@pytest.mark.parametrize("change, message", [(dict(keep="best"), "keep must be 'last' or 'best_val'"),
                                             (dict(keep="best_val", curve_every=0), "curve_every > 0 and ema"),
                                             (dict(keep="best_val", ema=None), "curve_every > 0 and ema")])
def test_keep_is_checked(change, message):
    from spokenstyle.budgets import BUDGETS
    fast = BUDGETS["dcgan_all_styles"].fast
    assert rdc.check_keep(fast) is False and rdc.check_keep(fast.replace(keep="best_val")) is True
    with pytest.raises(ValueError, match=message):
        rdc.check_keep(fast.replace(**change))


def test_keep_if_best_writes_only_a_new_lowest_validation_fd(tmp_path):
    history = {}
    torch.manual_seed(0)
    first, second, third = (dc.dcgan(**TINY).G for _ in range(3))
    assert rdc.keep_if_best(history, 30, 12.0, first, tmp_path)
    assert not rdc.keep_if_best(history, 60, 12.5, second, tmp_path)  # worse: nothing written
    assert not rdc.keep_if_best(history, 75, float("nan"), second, tmp_path)  # diverged: never kept
    assert sorted(p.name for p in tmp_path.iterdir()) == ["G-00000030"]
    loaded = dc.dcgan(**TINY).G
    assert rdc.load_best_val(history, tmp_path, loaded) == 30
    assert all(torch.equal(v, first.state_dict()[k]) for k, v in loaded.state_dict().items())
    assert rdc.keep_if_best(history, 90, 11.0, third, tmp_path)
    assert rdc.load_best_val(history, tmp_path, loaded) == 90
    assert all(torch.equal(v, third.state_dict()[k]) for k, v in loaded.state_dict().items())
    assert history["val_fd_curve"][:2] == [[30, 12.0], [60, 12.5]] and history["best_val"] == [90, 11.0]
    with pytest.raises(RuntimeError, match="no curve step had a finite validation FD"):
        rdc.load_best_val({"val_fd_curve": [[30, float("nan")]]}, tmp_path, loaded)


def test_the_best_step_survives_a_training_checkpoint(tmp_path):
    """A Trainer checkpoint replaces the run folder's weights files; the kept steps live below it."""
    torch.manual_seed(0)
    G = dc.dcgan(**TINY).G
    history = {}
    assert rdc.keep_if_best(history, 20, 5.0, G, tmp_path / rdc.BEST_VAL_DIR)
    checkpoints.save_checkpoint(tmp_path, {"w": torch.zeros(2)}, filename="step-00000020.safetensors")
    checkpoints.save_checkpoint(tmp_path, {"w": torch.ones(2)}, filename="step-00000040.safetensors")
    assert sorted(p.name for p in tmp_path.glob("*.safetensors")) == ["step-00000040.safetensors"]
    assert checkpoints.load_checkpoint(rdc.best_val_dir(tmp_path / rdc.BEST_VAL_DIR, 20)).manifest["extra"]["step"] == 20


@pytest.mark.slow
def test_recipe_keeps_the_best_validation_step(tmp_path, monkeypatch):
    """`--set dcgan_all_styles.keep=best_val`: the manifest names the kept step, the one of lowest
    validation FD on its curve, and the shipped weights are that step's average."""
    if "features" not in checkpoints.shipped():
        pytest.skip("the recipe evaluates with the shipped feature extractor")
    monkeypatch.setenv("SPOKENSTYLE_CACHE", str(tmp_path / "cache"))
    args = ["train", "dcgan", "--profile", "fast", "--device", "cpu", "--set", "dcgan_all_styles.curve_every=20"]
    monkeypatch.setattr("sys.argv", ["spokenstyle", *args])
    assert cli.main([*args, "--out", str(tmp_path / "last")]) == 0
    assert cli.main([*args, "dcgan_all_styles.keep=best_val", "--out", str(tmp_path / "best")]) == 0
    last, best = (checkpoints.read_manifest(tmp_path / name) for name in ("last", "best"))
    curve = best["extra"]["val_fd_curve"]
    assert [step for step, _ in curve] == [20, 40, 60] and "kept_step" not in last["extra"]
    assert best["extra"]["kept_step"] == min(curve, key=lambda row: row[1])[0]
    assert best["extra"]["fd_curve"] == last["extra"]["fd_curve"]  # choosing changes nothing in training
    G_last, G_best = (dc.dcgan_generator(weights=tmp_path / name).state_dict() for name in ("last", "best"))
    same = all(torch.equal(G_last[k], G_best[k]) for k in G_last)
    assert same == (best["extra"]["kept_step"] == 60)
