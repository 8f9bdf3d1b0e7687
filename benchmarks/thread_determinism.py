"""Does training stay deterministic on two CPU threads? (issue 36: measured before the long two-thread run.)

The shipped conditional DCGAN's recipe (the ``dcgan_all_styles`` full row with the overrides of the
shipped run) is trained twice for ``--steps`` steps with one thread and twice with two, each time from
the same seed, and the weights after training (G, D and G's average) are compared bit for bit. Two runs
with the same thread count that agree say the recipe can be resumed and reproduced on that many
threads; one thread against two says whether the thread count itself changes the numbers (intra-op
parallel reductions may add in another order). The time per step of each thread count is printed
beside the other, measured in the same run. Run on an otherwise idle machine (about four minutes)::

    python benchmarks/thread_determinism.py --json spokenstyle/shipped/benchmarks/thread-determinism-cpu.json
"""

from __future__ import annotations

import argparse
import hashlib
import json
import platform
import time
from pathlib import Path

import torch

from spokenstyle.budgets import BUDGETS
from spokenstyle.data import pool_batches, real_renders
from spokenstyle.recipes.dcgan import config_for, initial_model, train_dcgan

# the shipped recipe's --set, its steps=48000 aside (one_run passes its own steps)
OVERRIDES = {"n_classes": 6, "augment": "translation", "width": 64, "d_width": 32}


def digest(state: dict[str, torch.Tensor]) -> str:
    """sha256 of every tensor's bytes, in key order: equal digests mean bitwise-equal weights."""
    h = hashlib.sha256()
    for key in sorted(state):
        h.update(key.encode())
        h.update(state[key].detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


BUDGET = BUDGETS["dcgan_all_styles"].full.replace(**OVERRIDES)


def one_run(threads: int, steps: int, images: torch.Tensor, styles: torch.Tensor, seed: int = 0) -> dict:
    torch.set_num_threads(threads)
    b = BUDGET
    torch.manual_seed(seed)
    model = initial_model(config_for(b))
    batches = pool_batches(images, b.batch_size, seed=seed, extra=(styles,))
    t0 = time.perf_counter()
    _, g_ema = train_dcgan(model, batches, steps=steps, lr=b.lr, betas=tuple(b.betas), loss=b.loss, ema_decay=b.ema,
                           lr_decay=b.lr_decay, augment=b.augment, log_every=50, desc=f"{threads} thread(s)")
    seconds = time.perf_counter() - t0
    state = {**{f"G.{k}": v for k, v in model.G.state_dict().items()},
             **{f"D.{k}": v for k, v in model.D.state_dict().items()},
             **{f"G_ema.{k}": v for k, v in g_ema.state_dict().items()}}
    return {"threads": threads, "sha256": digest(state), "seconds_per_step": seconds / steps,
            "state": state}


def cpu_name() -> str:
    """The CPU's model name (Linux), else what platform knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def max_difference(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    return max(float((a[k].float() - b[k].float()).abs().max()) for k in a)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--pool", type=int, default=4096, help="training pictures rendered (the pool's size does not "
                                                                  "change what is measured)")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    images, _, styles = real_renders(args.pool, split="train", size=BUDGET.resolution)  # rendered once, for all runs
    runs = {t: [one_run(t, args.steps, images, styles) for _ in range(2)] for t in (1, 2)}
    result = {
        "what": "the shipped conditional DCGAN recipe (G 64, D 32, translation), trained twice per thread count "
                f"for {args.steps} steps from seed 0; weights after training compared bit for bit",
        "steps": args.steps, "pool": args.pool, "torch": torch.__version__, "cpu": cpu_name(),
        "runs": {str(t): [{k: r[k] for k in ("sha256", "seconds_per_step")} for r in rs] for t, rs in runs.items()},
        "same_on_1_thread": runs[1][0]["sha256"] == runs[1][1]["sha256"],
        "same_on_2_threads": runs[2][0]["sha256"] == runs[2][1]["sha256"],
        "same_across_thread_counts": runs[1][0]["sha256"] == runs[2][0]["sha256"],
        "max_abs_difference_1_vs_2_threads": max_difference(runs[1][0]["state"], runs[2][0]["state"]),
        # the faster of each pair: a run slowed by another process on the machine says less
        "speedup_2_threads": min(r["seconds_per_step"] for r in runs[1]) / min(r["seconds_per_step"] for r in runs[2]),
    }
    print(json.dumps({k: v for k, v in result.items() if k != "runs"}, indent=1))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
        print("wrote", args.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
