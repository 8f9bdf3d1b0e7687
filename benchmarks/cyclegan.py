"""CycleGAN training throughput: the book's Trainer against a plain hand-written loop.

Both loops train the same CycleGAN-lite (same config, same initial weights, same batches, same
pools, optimisers and lr schedule) on the same device in one run; the only difference is the
loop around the step. The ratio (Trainer / plain, in picture pairs per second) is what the
book's abstraction costs; the target is >= 0.95. Repetitions alternate between the two loops so
that a busy machine slows both alike, and the best repetition of each counts.

On a GPU it also times the reference architecture (ResNet-9 generator + 70x70 PatchGAN, 128 px)
through the Trainer at batch 1 and 16, for comparison with the reference figures in
``../shared/gpu/README.md``.

Run::

    python benchmarks/cyclegan.py [--device cuda] [--steps 20] [--repeats 3] [--json out.json]
"""

from __future__ import annotations

import argparse
import itertools
import json
import statistics
import time

import torch

from spokenstyle import losses, runtime
from spokenstyle.models import cyclegan as cg
from spokenstyle.models.dcgan import to_tanh_range
from spokenstyle.recipes import cyclegan as rc
from spokenstyle.train import Trainer, TrainConfig


def make_batches(n: int, batch_size: int, size: int, device) -> list[dict[str, torch.Tensor]]:
    """``n`` fixed unpaired batches, rendered once and kept on ``device`` (the data is not timed)."""
    from spokenstyle.data import unpaired_batches

    make = unpaired_batches(batch_size, "flat", "comic", min(size, 128), device=device)
    out = []
    for step in range(n):
        b = make(step)
        out.append({k: b[k] for k in ("image_a", "image_b")})
    return out


def trainer_run(config: cg.CycleGANConfig, batches, steps: int, device, log_every: int, seed: int = 0) -> Trainer:
    """``steps`` steps of ``rc.train_cyclegan``'s setup through :class:`Trainer` (from scratch)."""
    from functools import partial

    torch.manual_seed(seed)
    model = cg.cyclegan(config=config)
    opts = rc.adam_optimizers(model, lr=2e-4)
    pools = (rc.ImagePool(config.pool_size), rc.ImagePool(config.pool_size))
    trainer = Trainer({"G_AB": model.G_AB, "G_BA": model.G_BA, "D_A": model.D_A, "D_B": model.D_B}, opts,
                      partial(rc.cycle_step, config=config, pools=pools),
                      TrainConfig(steps=steps, log_every=log_every, desc="trainer"),
                      schedulers={k: rc.linear_decay(o, steps) for k, o in opts.items()}, device=device)
    trainer.fit(lambda step: batches[step % len(batches)])
    return trainer


def timed_trainer(config, batches, steps, device, log_every) -> float:
    trainer_run(config, batches, 2, device, log_every)  # warm-up (allocator, kernels)
    runtime.synchronize(device)
    t = time.perf_counter()
    trainer_run(config, batches, steps, device, log_every)
    runtime.synchronize(device)
    return time.perf_counter() - t


def timed_plain(config: cg.CycleGANConfig, batches, steps: int, device, log_every: int, seed: int = 0) -> float:
    """The same training written out by hand: no Trainer, no callbacks, no checkpoints."""

    def run(n: int) -> None:
        torch.manual_seed(seed)
        model = cg.cyclegan(config=config).to(device)
        opt_g = torch.optim.Adam(itertools.chain(model.G_AB.parameters(), model.G_BA.parameters()), lr=2e-4,
                                 betas=(0.5, 0.999))
        opt_d = torch.optim.Adam(itertools.chain(model.D_A.parameters(), model.D_B.parameters()), lr=2e-4,
                                 betas=(0.5, 0.999))
        scheds = [rc.linear_decay(opt_g, n), rc.linear_decay(opt_d, n)]
        pool_a, pool_b = rc.ImagePool(config.pool_size), rc.ImagePool(config.pool_size)
        lam, lam_id = config.lambda_cycle, config.lambda_cycle * config.lambda_identity
        log = []
        for step in range(n):
            batch = batches[step % len(batches)]
            real_a, real_b = to_tanh_range(batch["image_a"].to(device)), to_tanh_range(batch["image_b"].to(device))
            with runtime.autocast(device):  # bf16 on CUDA, as the Trainer does
                fake_b, fake_a = model.G_AB(real_a), model.G_BA(real_b)
                loss_cycle = losses.cycle_loss(model.G_BA(fake_b), real_a) + losses.cycle_loss(model.G_AB(fake_a), real_b)
                loss_idt = (losses.identity_loss(model.G_AB(real_b), real_b)
                            + losses.identity_loss(model.G_BA(real_a), real_a))
                loss_adv = 2 * (losses.lsgan_g_loss(model.D_B(fake_b)) + losses.lsgan_g_loss(model.D_A(fake_a)))
                loss_g = loss_adv + lam * loss_cycle + lam_id * loss_idt
            opt_g.zero_grad(set_to_none=True)
            loss_g.backward()
            opt_g.step()
            with runtime.autocast(device):
                loss_d = (losses.lsgan_d_loss(model.D_A(real_a), model.D_A(pool_a.query(fake_a.detach())))
                          + losses.lsgan_d_loss(model.D_B(real_b), model.D_B(pool_b.query(fake_b.detach()))))
            opt_d.zero_grad(set_to_none=True)
            loss_d.backward()
            opt_d.step()
            for s in scheds:
                s.step()
            if (step + 1) % log_every == 0:  # the same scalars the Trainer records
                log.append([float(v.detach()) for v in (loss_g, loss_adv, loss_cycle, loss_idt, loss_d)])

    run(2)
    runtime.synchronize(device)
    t = time.perf_counter()
    run(steps)
    runtime.synchronize(device)
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--device", default=None)
    ap.add_argument("--steps", type=int, default=None, help="timed steps per repetition")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--batch-size", type=int, default=None)
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    rt = runtime.setup(seed=0, device=args.device, deterministic=False)
    gpu = runtime.is_accelerator(rt.device)
    b = runtime.budget("cyclegan_flat_comic", "full")
    config = rc.config_from_budget(b)
    batch_size = args.batch_size or (16 if gpu else b.batch_size)
    steps = args.steps or (50 if gpu else 10)
    log_every = 10 if gpu else 1
    batches = make_batches(4, batch_size, config.resolution, rt.device)
    result = {"device": runtime.device_name(rt.device), "config": config.__dict__, "batch_size": batch_size,
              "steps": steps, "repeats": args.repeats}
    times = {"trainer": [], "plain": []}
    for _ in range(args.repeats):  # alternate, so that load on a shared machine hits both alike
        times["trainer"].append(timed_trainer(config, batches, steps, rt.device, log_every))
        times["plain"].append(timed_plain(config, batches, steps, rt.device, log_every))
    rate = {k: steps * batch_size / min(v) for k, v in times.items()}
    median = {k: steps * batch_size / statistics.median(v) for k, v in times.items()}
    result.update(pairs_per_s=rate, ratio=rate["trainer"] / rate["plain"], seconds=times,
                  median_pairs_per_s=median, median_ratio=median["trainer"] / median["plain"])
    print(f"{result['device']}: CycleGAN-lite {config.resolution} px, batch {batch_size}, {steps} steps x {args.repeats}")
    print(f"  best of {args.repeats}: Trainer {rate['trainer']:.1f} pairs/s, plain loop {rate['plain']:.1f} pairs/s, "
          f"ratio {result['ratio']:.3f} (target >= 0.95)")
    print(f"  median: Trainer {median['trainer']:.1f} pairs/s, plain loop {median['plain']:.1f} pairs/s, "
          f"ratio {result['median_ratio']:.3f}")
    if gpu:
        ref = cg.reference_config(128)
        result["reference"] = {}
        for bs in (1, 16):
            ref_batches = make_batches(2, bs, 128, rt.device)
            n = 30
            seconds = timed_trainer(ref, ref_batches, n, rt.device, log_every=10)
            result["reference"][bs] = {"pairs_per_s": n * bs / seconds, "step_ms": 1000 * seconds / n}
            print(f"  reference ResNet-9 + 70x70 PatchGAN, 128 px, batch {bs}: {n * bs / seconds:.1f} pairs/s "
                  f"({1000 * seconds / n:.0f} ms/step)")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=1, default=str)


if __name__ == "__main__":
    main()
