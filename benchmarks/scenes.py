"""How fast ShapeScenes are made: scenes per second at 32, 64 and 128 px, on the CPU and on a GPU.

Three numbers per size and device:

* ``sample``: scene descriptions only (:func:`sample_scenes`);
* ``render``: pictures of given descriptions, styles mixed (one drawn per scene), and per style;
* ``batch``: what a training loop gets, ``scene_batches(...)(step)``: sampling + rendering.

Run::

    python benchmarks/scenes.py                 # CPU (and the GPU when there is one)
    python benchmarks/scenes.py --json out.json --repeats 5

Timings are the best of ``--repeats`` runs (other processes on a shared machine only ever make a
run slower); the torch thread count is torch's default unless ``--threads`` is given. On the CPU a
second table gives scenes per *CPU-second* of this process (``time.process_time``): on a machine
shared with other jobs that number still measures the work, while wall-clock rates measure the
competition too.
"""

from __future__ import annotations

import argparse
import json
import os
import time

import torch

from spokenstyle.data import STYLES, render, sample_scenes, scene_batches
from spokenstyle.runtime import device_name, get_device, synchronize


_CPU_SECONDS: list[float] = []  # process CPU time of the best run of each _best call


def _best(fn, repeats: int, device: torch.device) -> float:
    fn()  # warm-up: caches, allocator, kernels
    synchronize(device)
    best, best_cpu = float("inf"), float("inf")
    for _ in range(repeats):
        t, c = time.perf_counter(), time.process_time()
        fn()
        synchronize(device)
        best, best_cpu = min(best, time.perf_counter() - t), min(best_cpu, time.process_time() - c)
    _CPU_SECONDS.append(best_cpu)
    return best


def bench(device: torch.device, sizes=(32, 64, 128), n: int = 4096, repeats: int = 3) -> dict:
    seeds = torch.arange(n, device=device)
    scenes = sample_scenes(seeds)
    mixed = torch.arange(n, device=device) % len(STYLES)
    out = {"device": device_name(device), "threads": torch.get_num_threads(), "n": n, "sizes": {}}
    out["sample"] = n / _best(lambda: sample_scenes(seeds), repeats, device)
    out["cpu_sizes"] = {}
    for size in sizes:
        row = {"render_mixed": n / _best(lambda: render(scenes, mixed, size), repeats, device)}
        cpu_row = {"render_mixed": n / _CPU_SECONDS[-1]}
        for style in STYLES:
            row[style] = n / _best(lambda: render(scenes, style, size), repeats, device)
            cpu_row[style] = n / _CPU_SECONDS[-1]
        batches = scene_batches(512, "all", size, device=device)
        row["batch"] = 512 / _best(lambda: batches(0), repeats, device)
        cpu_row["batch"] = 512 / _CPU_SECONDS[-1]
        out["sizes"][size] = row
        out["cpu_sizes"][size] = cpu_row
    return out


def _table(res: dict) -> str:
    cols = ["render_mixed", *STYLES, "batch"]
    lines = [f"{res['device']}, {res['threads']} torch threads; sampling: {res['sample']:,.0f} scenes/s",
             "size | " + " | ".join(cols), "---|" + "---|" * len(cols)]
    for size, row in res["sizes"].items():
        lines.append(f"{size} | " + " | ".join(f"{row[c]:,.0f}" for c in cols))
    if res["device"].startswith("CPU"):
        lines += ["", "scenes per CPU-second of this process (all its threads together):",
                  "size | " + " | ".join(cols), "---|" + "---|" * len(cols)]
        for size, row in res["cpu_sizes"].items():
            lines.append(f"{size} | " + " | ".join(f"{row[c]:,.0f}" for c in cols))
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=4096, help="scenes per timed call")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    ap.add_argument("--json", default=None, help="also write the results here")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    devices = [torch.device("cpu")]
    accel = get_device()
    if accel.type != "cpu":
        devices.append(accel)
    results = []
    for dev in devices:
        n = args.n if dev.type == "cpu" else max(args.n, 32768)
        res = bench(dev, n=n, repeats=args.repeats)
        results.append(res)
        print(_table(res), "\n", flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"cpu_count": os.cpu_count(), "results": results}, f, indent=1)


if __name__ == "__main__":
    main()
