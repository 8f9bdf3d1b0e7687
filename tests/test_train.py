"""spokenstyle.train: the loop, its history and callbacks, exact resume, and DDP under torchrun."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
from torch import nn

from spokenstyle import checkpoints, runtime
from spokenstyle.train import History, Trainer, TrainConfig, ema_update_, to_device, unwrap

ROOT = Path(__file__).resolve().parents[1]


def make_gan():
    """A tiny 1-D GAN with dropout (so resuming must restore the RNG) and Adam (optimizer state)."""
    torch.manual_seed(0)
    G = nn.Sequential(nn.Linear(2, 8), nn.ReLU(), nn.Linear(8, 1))
    D = nn.Sequential(nn.Linear(1, 8), nn.ReLU(), nn.Dropout(0.2), nn.Linear(8, 1))
    opts = {"G": torch.optim.Adam(G.parameters(), 1e-2), "D": torch.optim.Adam(D.parameters(), 1e-2)}
    return {"G": G, "D": D}, opts


def batches(step: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(1000 + step)
    return 2.0 + 0.5 * torch.randn(16, 1, generator=g)


def gan_step(t: Trainer, real: torch.Tensor, step: int) -> dict:
    G, D = t.modules["G"], t.modules["D"]
    bce = nn.functional.binary_cross_entropy_with_logits
    fake = G(torch.randn(real.shape[0], 2, device=t.device))  # global RNG: restored on resume
    with t.autocast():
        d_real, d_fake = D(real), D(fake.detach())
        loss_d = bce(d_real, torch.ones_like(d_real)) + bce(d_fake, torch.zeros_like(d_fake))
    t.optimize("D", loss_d)
    with t.autocast():
        d_fake = D(fake)
        loss_g = bce(d_fake, torch.ones_like(d_fake))
    t.optimize("G", loss_g)
    return {"loss_D": loss_d, "loss_G": loss_g}


class Interrupt(Exception):
    pass


def test_fit_records_history_and_calls_callbacks():
    modules, opts = make_gan()
    seen = []
    cfg = TrainConfig(steps=10, log_every=2, callback_every=4)
    history = Trainer(modules, opts, gan_step, cfg, device="cpu", callbacks=[lambda t, s: seen.append(s)]).fit(batches)
    assert history["step"] == [2, 4, 6, 8, 10]
    assert len(history["loss_D"]) == 5 and all(v > 0 for v in history["loss_G"])
    assert seen == [4, 8, 10]  # every 4 steps, and once at the end


def test_training_changes_the_weights_and_moves_fakes_towards_the_data():
    modules, opts = make_gan()
    before = modules["G"](torch.randn(256, 2)).mean().item()
    Trainer(modules, opts, gan_step, TrainConfig(steps=150), device="cpu").fit(batches)
    after = modules["G"](torch.randn(256, 2)).mean().item()
    assert abs(after - 2.0) < abs(before - 2.0)


def test_an_interrupted_run_resumed_from_its_checkpoint_ends_with_the_same_weights(tmp_path):
    runtime.seed_everything(0)
    modules, opts = make_gan()
    Trainer(modules, opts, gan_step, TrainConfig(steps=10), device="cpu").fit(batches)
    reference = {k: {n: v.clone() for n, v in m.state_dict().items()} for k, m in modules.items()}

    runtime.seed_everything(0)
    modules, opts = make_gan()

    def stop_at_6(t, step):
        if step == 6:
            raise Interrupt

    cfg = TrainConfig(steps=10, checkpoint_every=3, callback_every=3, checkpoint_dir=str(tmp_path / "run"))
    with pytest.raises(Interrupt):
        Trainer(modules, opts, gan_step, cfg, device="cpu", callbacks=[stop_at_6]).fit(batches)
    assert json.loads((tmp_path / "run" / "manifest.json").read_text())["extra"]["step"] == 6

    torch.manual_seed(12345)  # a new process would start with other RNG states and weights
    modules, opts = make_gan()
    for p in modules["G"].parameters():
        nn.init.normal_(p)
    trainer = Trainer(modules, opts, gan_step, cfg, device="cpu")
    history = trainer.fit(batches)
    assert trainer.step == 10 and history["step"] == list(range(1, 11))
    for key, module in modules.items():
        for name, value in module.state_dict().items():
            assert torch.equal(value, reference[key][name]), f"{key}.{name} differs after resume"
    # the final checkpoint is a valid spokenstyle checkpoint, and only the newest weights are kept
    assert len(list((tmp_path / "run").glob("*.safetensors"))) == 1
    checkpoints.load_checkpoint(tmp_path / "run")


def test_resuming_into_other_models_is_a_clear_error(tmp_path):
    modules, opts = make_gan()
    cfg = TrainConfig(steps=2, checkpoint_dir=str(tmp_path))
    Trainer(modules, opts, gan_step, cfg, device="cpu").fit(batches)
    other = nn.Linear(1, 1)
    trainer = Trainer({"M": other}, {"M": torch.optim.SGD(other.parameters(), 0.1)},
                      lambda t, b, s: {}, TrainConfig(steps=4, checkpoint_dir=str(tmp_path)), device="cpu")
    with pytest.raises(checkpoints.CheckpointError, match="holds modules"):
        trainer.fit(batches)


def test_a_model_checkpoint_is_not_a_training_checkpoint(tmp_path):
    checkpoints.save_pretrained(nn.Linear(1, 1), tmp_path)
    modules, opts = make_gan()
    with pytest.raises(checkpoints.CheckpointError, match="not a training checkpoint"):
        Trainer(modules, opts, gan_step, TrainConfig(steps=1), device="cpu").load(tmp_path)


def test_iterables_are_cycled_and_empty_ones_refused():
    lin = nn.Linear(1, 1)
    seen = []

    def step(t, batch, s):
        seen.append(batch.item())
        loss = t.modules["M"](batch.view(1, 1)).pow(2).mean()
        t.optimize("M", loss)
        return {"loss": loss}

    Trainer({"M": lin}, {"M": torch.optim.SGD(lin.parameters(), 0.01)}, step, TrainConfig(steps=5),
            device="cpu").fit([torch.tensor(1.0), torch.tensor(2.0)])
    assert seen == [1.0, 2.0, 1.0, 2.0, 1.0]
    with pytest.raises(ValueError, match="empty iterable"):
        Trainer({"M": lin}, {"M": torch.optim.SGD(lin.parameters(), 0.01)}, step, TrainConfig(steps=1),
                device="cpu").fit([])


def test_grad_clip_bounds_the_update_and_reports_the_norm():
    lin = nn.Linear(1, 1)
    norms = []

    def step(t, batch, s):
        norms.append(t.optimize("M", (t.modules["M"](batch) * 1e6).sum()))
        return {}

    Trainer({"M": lin}, {"M": torch.optim.SGD(lin.parameters(), 1.0)}, step,
            TrainConfig(steps=1, grad_clip=1.0), device="cpu").fit(lambda s: torch.ones(1, 1))
    assert norms[0] > 1.0
    assert lin.weight.abs().item() < 3.0  # one unit-norm step of lr 1 from a small init


@pytest.mark.parametrize("kwargs,match", [
    ({"steps": -1}, "steps must be"),
    ({"steps": 5, "log_every": 0}, "log_every must be a positive"),
    ({"steps": 5, "grad_clip": 0.0}, "grad_clip must be positive"),
])
def test_bad_configs_are_clear_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        TrainConfig(**kwargs)


def test_bad_step_results_are_clear_errors():
    lin = nn.Linear(1, 1)
    opts = {"M": torch.optim.SGD(lin.parameters(), 0.1)}
    t = Trainer({"M": lin}, opts, lambda t, b, s: {}, TrainConfig(steps=1), device="cpu")
    with pytest.raises(ValueError, match="scalar loss"):
        t.optimize("M", lin(torch.ones(3, 1)))
    with pytest.raises(KeyError, match="no optimizer named 'G'"):
        t.optimize("G", lin(torch.ones(1, 1)).sum())
    with pytest.raises(FloatingPointError, match="lower the learning rate"):
        t.optimize("M", lin(torch.ones(1, 1)).sum() * float("nan"))
    with pytest.raises(TypeError, match="TrainConfig"):
        Trainer({"M": lin}, opts, lambda t, b, s: {}, {"steps": 1})
    with pytest.raises(TypeError, match="nn.Module"):
        Trainer({"M": "lin"}, opts, lambda t, b, s: {}, TrainConfig(steps=1))


def test_to_device_walks_nested_batches():
    batch = {"x": torch.ones(1), "pair": (torch.zeros(1), [torch.ones(2)]), "label": "a"}
    moved = to_device(batch, torch.device("cpu"))
    assert moved["label"] == "a" and isinstance(moved["pair"], tuple) and moved["pair"][1][0].shape == (2,)


def averaged_pair():
    """Two small models with BatchNorm (float running statistics and an int64 step counter)."""
    torch.manual_seed(0)
    ema = nn.Sequential(nn.Linear(3, 2), nn.BatchNorm1d(2))
    model = nn.Sequential(nn.Linear(3, 2), nn.BatchNorm1d(2))
    with torch.no_grad():
        for p in ema.parameters():
            p.fill_(1.0)
        for p in model.parameters():
            p.fill_(3.0)
    ema[1].running_mean.fill_(0.0)
    model[1].running_mean.fill_(2.0)
    ema[1].running_var.fill_(1.0)
    model[1].running_var.fill_(5.0)
    ema[1].num_batches_tracked.fill_(1)
    model[1].num_batches_tracked.fill_(7)
    return ema, model


def test_ema_update_moves_parameters_and_float_buffers_by_one_minus_decay():
    ema, model = averaged_pair()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    ema_update_(ema, model, 0.75)
    for p in ema.parameters():
        assert torch.allclose(p, torch.full_like(p, 0.75 * 1.0 + 0.25 * 3.0))  # 1.5
    assert torch.allclose(ema[1].running_mean, torch.full((2,), 0.25 * 2.0))  # buffers are averaged too
    assert torch.allclose(ema[1].running_var, torch.full((2,), 0.75 * 1.0 + 0.25 * 5.0))
    assert ema[1].num_batches_tracked.dtype == torch.int64 and int(ema[1].num_batches_tracked) == 7  # copied
    ema_update_(ema, model, 0.75)  # a second step: 0.75 * 1.5 + 0.25 * 3 = 1.875
    assert torch.allclose(ema[0].weight, torch.full_like(ema[0].weight, 1.875))
    for key, value in model.state_dict().items():
        assert torch.equal(value, before[key]), f"the model's {key} must not change"


def test_ema_update_with_decay_zero_copies_the_model():
    ema, model = averaged_pair()
    ema_update_(ema, model, 0.0)
    for key, value in model.state_dict().items():
        assert torch.equal(ema.state_dict()[key], value), key


@pytest.mark.parametrize("decay", [1.0, 1.5, -0.1, float("nan")])
def test_ema_update_refuses_a_decay_outside_zero_to_one(decay):
    ema, model = averaged_pair()
    before = {k: v.clone() for k, v in ema.state_dict().items()}
    with pytest.raises(ValueError, match=r"decay must be in \[0, 1\)"):
        ema_update_(ema, model, decay)
    for key, value in ema.state_dict().items():
        assert torch.equal(value, before[key]), key


def test_unwrap_returns_the_model_inside_ddp(tmp_path):
    lin = nn.Linear(2, 2)
    assert unwrap(lin) is lin
    assert not dist.is_initialized()
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1)
    try:
        wrapped = nn.parallel.DistributedDataParallel(lin)
        assert unwrap(wrapped) is lin
    finally:
        dist.destroy_process_group()
    assert not dist.is_initialized()


def test_history_aligns_late_keys_and_averages():
    h = History()
    h.record(1, {"a": 1.0})
    h.record(2, {"a": 3.0, "b": 5.0})
    assert h["b"][0] != h["b"][0]  # NaN placeholder for the step before b appeared
    assert h.mean("a") == 2.0 and h.mean("b") == 5.0 and h.last("a") == 3.0


@pytest.mark.slow
def test_ddp_under_torchrun_trains_identical_replicas(tmp_path):
    """Two CPU processes (Gloo) run the same Trainer unchanged; replicas stay identical."""
    script = tmp_path / "ddp_job.py"
    script.write_text(f'''
import hashlib, os, sys, torch
sys.path.insert(0, {str(ROOT)!r})
sys.path.insert(0, {str(ROOT / "tests")!r})
from test_train import make_gan, gan_step
from spokenstyle.train import Trainer, TrainConfig
modules, opts = make_gan()
rank = int(os.environ["RANK"])
def batches(step):  # each rank sees its own data
    g = torch.Generator().manual_seed(1000 + 2 * step + rank)
    return 2.0 + 0.5 * torch.randn(8, 1, generator=g)
t = Trainer(modules, opts, gan_step, TrainConfig(steps=6, checkpoint_dir={str(tmp_path / "ck")!r}), device="cpu")
t.fit(batches)
flat = torch.cat([p.detach().flatten() for m in modules.values() for p in m.parameters()])
open({str(tmp_path)!r} + f"/rank{{rank}}.txt", "w").write(hashlib.sha256(flat.numpy().tobytes()).hexdigest() + " " + str(t.world_size))
''')
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                           str(script)], env=env, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr[-3000:]
    h0, h1 = (tmp_path / "rank0.txt").read_text().split(), (tmp_path / "rank1.txt").read_text().split()
    assert h0 == h1 and h0[1] == "2", "DDP replicas must hold identical weights"
    assert checkpoints.load_checkpoint(tmp_path / "ck").manifest["extra"]["step"] == 6
