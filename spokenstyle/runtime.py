"""Where code runs, how big it runs, and how it reports progress.

Every notebook starts with one call, :func:`setup`, which seeds everything, picks the device
and the profile, and prints them. Everything else in the package asks this module:

* **device**: CUDA if present, else Apple's MPS, else the CPU; ``SPOKENSTYLE_DEVICE`` overrides.
  This module is the only place in the package that names a device type.
* **profile**: ``fast`` (seconds on a laptop CPU, what CI runs) or ``full`` (the real training,
  minutes on one GPU); ``SPOKENSTYLE_PROFILE`` overrides, the default is ``full`` on CUDA and
  ``fast`` elsewhere. :data:`BUDGETS` is the one table that decides sizes and steps.
* **seeding**: :func:`seed_everything` seeds Python, NumPy and torch (all devices).
* **progress bars**: :func:`progress` is ``tqdm.auto``: a widget in a notebook, and in a CI
  log a line every few seconds instead of a carriage-return storm.
"""

from __future__ import annotations

import contextlib
import os
import random
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping

import numpy as np
import torch

__all__ = [
    "PROFILES",
    "BUDGETS",
    "Runtime",
    "setup",
    "get_device",
    "get_profile",
    "budget",
    "parse_overrides",
    "seed_everything",
    "progress",
    "autocast",
    "amp_enabled",
    "is_accelerator",
    "device_name",
    "synchronize",
    "distributed_backend",
    "local_device",
    "accelerator_rng_state",
    "set_accelerator_rng_state",
    "data_dir",
    "report",
    "report_models",
    "cache_dir",
]

PROFILES = ("fast", "full")

# The one table that decides sizes and steps. Each experiment of the book has a row; a notebook
# asks `budget("name")` and never writes a step count of its own. `fast` must keep every
# notebook under 60 s on a 2-core CPU (CI); `full` is the training that reaches the book's
# targets in about a minute on one GPU.
BUDGETS: dict[str, dict[str, dict[str, Any]]] = {
    # a tiny regression used by the runtime/train tests and the preface's demo
    "demo": {
        "fast": {"steps": 60, "batch_size": 32},
        "full": {"steps": 600, "batch_size": 256},
    },
    # chapter 4: the metric feature extractor (a classifier of real renders); pool = rendered
    # training images, eval = held-out test images. full: 4,000 steps (about 12 minutes of one
    # CPU thread, seconds on a GPU). 1,500 steps had left it undertrained: held-out shape accuracy
    # 36 % and scene accuracy 18 %, against 80 % and 65 % after 4,000 steps of the same recipe
    "features": {
        "fast": {"steps": 60, "batch_size": 64, "pool": 1024, "eval": 512, "lr": 3e-3},
        "full": {"steps": 4000, "batch_size": 128, "pool": 24000, "eval": 2000, "lr": 3e-3},
    },
    # chapter 4: DCGAN at 32 px on one style ("flat"), and the instructive failure (same budget);
    # snapshot_every = steps between the sample grids of the training animation. fast: half the
    # width, a quarter of the batch and 10x the paper's lr, so that 300 cheap CPU steps (about
    # 15 CPU-seconds) already draw coloured blobs; full: the paper's lr
    "dcgan_one_style": {
        "fast": {"steps": 300, "batch_size": 16, "pool": 2048, "eval": 500, "lr": 2e-3, "width": 16,
                 "resolution": 32, "style": "flat", "snapshot_every": 50},
        "full": {"steps": 3000, "batch_size": 64, "pool": 20000, "eval": 2000, "lr": 2e-4, "width": 32,
                 "resolution": 32, "style": "flat", "snapshot_every": 250},
    },
    # `spokenstyle train dcgan`: the shipped DCGAN, every style; fast = a smoke test of the recipe.
    # full: D spectrally normalised (spectral_norm; D then has no BatchNorm, G keeps it) and the
    # hinge loss with Adam betas (0.0, 0.9), as in Miyato et al. 2018; lr 2e-4 decayed linearly to
    # 0 (lr_decay); an exponential moving average of G's weights (ema = its decay; the average is
    # what is shipped). curve_every = steps between the FD measurements of the manifest's fd_curve.
    # Cost: 24,000 steps took about 28 CPU-minutes on one thread. The previous shipment, the
    # paper's D (BatchNorm) with the non-saturating loss and one-sided label smoothing, same steps
    # and average, scored FD 131.9 (recall 0.09, no `flat` samples at all); this recipe 32.9
    # (recall 0.65, all six styles). benchmarks/dcgan_recipes.py compares the recipes at 6,000
    # steps side by side (data/benchmarks/dcgan-recipes-cpu.json): FD paper 251.9, sn 79.8,
    # sn_hinge 89.3; recall 0.19, 0.33, 0.51. An earlier pass of the same three with another seed
    # gave FD 180.1, 100.9, 75.8 and recall 0.12, 0.34, 0.48: spectral normalisation is most of
    # the FD, the hinge loss the extra recall. In that pass sn_hinge at 6,000 steps also scored
    # FD 52.5 at lr 4e-4, 47.8 at 8e-4, and 63.4 at width 64 (3x the time), but over the full
    # 24,000 steps lr 4e-4 ended at FD 33.7 (confident 45 %), and this command at lr 4e-4 (full,
    # 1 thread, 28 min) at FD 44.6 for the average (its FD rose from 32.1 at step 18,000; G's own
    # was 27.9), confident 41 %, KID 491 against 99: the budget keeps 2e-4. A GPU budget would
    # rather buy a wider pair and several times the steps.
    "dcgan_all_styles": {
        "fast": {"steps": 60, "batch_size": 32, "pool": 1024, "eval": 500, "lr": 1e-3, "betas": [0.0, 0.9],
                 "loss": "hinge", "spectral_norm": True, "ema": 0.9, "lr_decay": True, "width": 32, "resolution": 32,
                 "style": None, "curve_every": 30},
        "full": {"steps": 24000, "batch_size": 64, "pool": 24000, "eval": 2000, "lr": 2e-4, "betas": [0.0, 0.9],
                 "loss": "hinge", "spectral_norm": True, "ema": 0.999, "lr_decay": True, "width": 32, "resolution": 32,
                 "style": None, "curve_every": 2000},
    },
    # chapter 3 (GAN mathematics). ch3_value: Monte-Carlo samples for V(D, G);
    # ch3_dstar: D trained against a fixed G (1-D), checked against D*;
    # ch3_grad: D trained against G at initialisation, generator gradient norms every record_every;
    # ch3_ring: the 2-D GAN on the 8-Gaussian ring, with instance noise (animated, modes counted)
    "ch3_value": {
        "fast": {"samples": 200_000},
        "full": {"samples": 1_000_000},
    },
    "ch3_dstar": {
        "fast": {"steps": 1000, "batch_size": 1024},
        "full": {"steps": 2000, "batch_size": 8192},
    },
    "ch3_grad": {
        "fast": {"steps": 300, "batch_size": 512, "probe_size": 4096, "record_every": 10},
        "full": {"steps": 300, "batch_size": 512, "probe_size": 4096, "record_every": 10},
    },
    "ch3_ring": {
        "fast": {"steps": 1500, "batch_size": 256, "hidden": 64, "instance_noise": 1.0, "frames": 20,
                 "log_every": 1, "eval_samples": 5000},
        "full": {"steps": 3000, "batch_size": 256, "hidden": 64, "instance_noise": 1.0, "frames": 30,
                 "log_every": 10, "eval_samples": 20000},
    },
    # ch3_collapse: the ring GAN with and without instance noise, compared after the same steps.
    # The same in both profiles: in longer runs a collapsed G sometimes recovers, sometimes not.
    "ch3_collapse": {
        "fast": {"steps": 1500},
        "full": {"steps": 1500},
    },
    # chapter 1: captions per register for the parser check (parse_n), and the bag-of-words
    # register classifier (bow_train / bow_test captions per register)
    "ch1_register": {
        "fast": {"parse_n": 1000, "bow_train": 1500, "bow_test": 1000},
        "full": {"parse_n": 10000, "bow_train": 10000, "bow_test": 5000},
    },
    # chapter 1 and benchmarks/judge_scenes.py: the scene judge (style + per-colour objects,
    # spokenstyle.models.judge) trained on all styles at 64 px; eval = held-out scenes per style
    "scenes_attr_classifier": {
        "fast": {"steps": 80, "batch_size": 32, "lr": 3e-3, "width": 16, "eval": 100},
        "full": {"steps": 1500, "batch_size": 64, "lr": 3e-3, "width": 16, "eval": 500},
    },
    # chapter 6 (spokenstyle.captioning): stage 1 of the captioner S (perception on the training
    # pictures; the decoder on content: formal captions + spoken pile),
    # the paired upper bound (stage 1 continued on paired spoken captions), stage 2 (S against the
    # critic T), and the instruments: register classifier, spoken LM, attribute reader R.
    # captioner_adv: lambda_mle 2.0, not 0.5: measured on 1,000 test pictures (2-core CPU, same
    # 600 steps), stage 2 kept 85.1 % of captions true with it (the shipped run; 84.0 % in a side
    # run) and 79.3 % with 0.5 (79.7 % with lambda_adv 0.25 instead).
    # (Those figures are sampled at T = 0.7.) captioner_eval: test pictures and how spoken captions
    # are decoded: the headline `decoding` is beam 8, the most likely sentence (on the 1,000 test
    # pictures the shipped stage 2 is true 94.2 % of the time with it, 89.6 % with beam 4, 85.1 %
    # sampled, 71.1 % greedy: benchmarks/captioner_decoding.py); `sampling` (T = 0.7) is scored
    # beside it, because distinct-n means something only for a decoder that varies its wording.
    "captioner_perception": {
        "fast": {"steps": 8, "batch_size": 8, "n_train": 500, "lr": 3e-3},
        "full": {"steps": 3000, "batch_size": 32, "n_train": 20000, "lr": 3e-3},
    },
    "captioner_mle": {
        "fast": {"steps": 8, "batch_size": 8, "n_train": 500, "n_pile": 500, "lr": 2e-3},
        "full": {"steps": 4000, "batch_size": 32, "n_train": 20000, "n_pile": 20000, "lr": 2e-3},
    },
    "captioner_paired": {
        "fast": {"steps": 4, "batch_size": 8, "n_train": 500, "n_pile": 500, "lr": 1e-3},
        "full": {"steps": 1000, "batch_size": 32, "n_train": 20000, "n_pile": 20000, "lr": 1e-3},
    },
    "captioner_adv": {
        "fast": {"steps": 3, "batch_size": 4, "n_gz": 2, "n_train": 500, "n_pile": 500, "critic_warmup": 1,
                 "tau": 1.0, "lambda_adv": 1.0, "lambda_ground": 4.0, "lambda_mle": 2.0, "lr_s": 2e-4, "lr_t": 2e-4},
        "full": {"steps": 600, "batch_size": 32, "n_gz": 8, "n_train": 20000, "n_pile": 20000, "critic_warmup": 50,
                 "tau": 1.0, "lambda_adv": 1.0, "lambda_ground": 4.0, "lambda_mle": 2.0, "lr_s": 2e-4, "lr_t": 2e-4},
    },
    "register_clf": {
        "fast": {"steps": 30, "batch_size": 32, "n_sentences": 1000, "lr": 1e-3},
        "full": {"steps": 200, "batch_size": 64, "n_sentences": 10000, "lr": 1e-3},
    },
    "register_lm": {
        "fast": {"steps": 30, "batch_size": 32, "n_sentences": 1000, "lr": 2e-3},
        "full": {"steps": 800, "batch_size": 64, "n_sentences": 10000, "lr": 2e-3},
    },
    "captioner_reader": {
        "fast": {"steps": 30, "batch_size": 32, "n_train": 1000, "n_pile": 1000, "lr": 3e-3},
        "full": {"steps": 4000, "batch_size": 64, "n_train": 20000, "n_pile": 20000, "lr": 3e-3},
    },
    "captioner_eval": {
        "fast": {"n_test": 72, "decoding": {"method": "beam", "num_beams": 8},
                 "sampling": {"method": "sample", "temperature": 0.7}},
        "full": {"n_test": 1000, "decoding": {"method": "beam", "num_beams": 8},
                 "sampling": {"method": "sample", "temperature": 0.7}},
    },
    # chapter 5 (spokenstyle.models.cyclegan, spokenstyle.stylization). judge: the shipped scene
    # judge (`spokenstyle train judge`) that scores translations; eval = held-out scenes per style.
    # full is sized for the CPU-trained shipment (about 11 CPU-minutes); chapter 1's 1,500 x 64
    # is the longer run
    "judge": {
        "fast": {"steps": 20, "batch_size": 16, "lr": 3e-3, "width": 16, "eval": 20},
        "full": {"steps": 1200, "batch_size": 64, "lr": 3e-3, "width": 16, "eval": 300},
    },
    # `spokenstyle train cyclegan_<a>_<b>`: one CycleGAN-lite per style pair (cyclegan.PAIRS;
    # unpaired sampling) at 64 px; eval = held-out test scenes scored per direction. full: the
    # reference's batch 1 and lr 2e-4, a residual generator with 4 learned position channels, the
    # cycle/identity weights ramped up over the first `warmup` steps, and the shipped generators the
    # average of their weights (ema; chapter 5 says why each is there and what each left in the shipped
    # translators; no ablation has been run). flat_pixel edits at 2 px (n_down 1) against a 34 x 34
    # PatchGAN (d_layers 2). cycle_noise: off (0.1 broke both pairs: data/benchmarks/cyclegan-runs-cpu.json,
    # chapter 5). fast: the same switches at toy size.
    # Width 32 for 12,000 steps: on one CPU thread it kept 80/88 % (comic) and 78/86 % (pixel) of the
    # objects, against 57/63 % and 66/80 % for width 16 at 6,000 steps (the record above); width 16 at
    # 24,000 steps, the same time, kept 81/67 % (comic). Not shipped either (the record): generators of
    # width 48 kept 86/88 % (comic) and 72/71 % (pixel), and a second draw of the width-32 comic recipe
    # 86/86 %, so runs of one recipe differ by up to 6 points. Cost of full on CPU: 0.34 to 0.40 s a step on
    # one thread, 68 and 79 minutes (the manifests' train_seconds, both pairs at once on the 2-core
    # machine). On a GPU (estimated, not measured): batch 1 at 64 px is bound by kernel launches,
    # roughly 10 ms a step, two minutes; tools/gpu_train.py sizes a GPU run to its time
    "cyclegan_flat_comic": {
        "fast": {"steps": 4, "batch_size": 2, "lr": 1e-3, "warmup": 2, "ema": 0.9, "g_width": 8, "n_blocks": 1,
                 "d_width": 8, "position": 4, "cycle_noise": 0.0, "resolution": 64, "eval": 16},
        "full": {"steps": 12000, "batch_size": 1, "lr": 2e-4, "warmup": 1000, "ema": 0.999, "g_width": 32, "n_blocks": 3,
                 "d_width": 32, "position": 4, "cycle_noise": 0.0, "resolution": 64, "eval": 300},
    },
    "cyclegan_flat_pixel": {
        "fast": {"steps": 4, "batch_size": 2, "lr": 1e-3, "warmup": 2, "ema": 0.9, "g_width": 8, "n_blocks": 1,
                 "d_width": 8, "n_down": 1, "d_layers": 2, "position": 4, "cycle_noise": 0.0, "resolution": 64, "eval": 16},
        "full": {"steps": 12000, "batch_size": 1, "lr": 2e-4, "warmup": 1000, "ema": 0.999, "g_width": 32, "n_blocks": 3,
                 "d_width": 32, "n_down": 1, "d_layers": 2, "position": 4, "cycle_noise": 0.0, "resolution": 64, "eval": 300},
    },
    # `spokenstyle train cyclegan_photo`: photo patches <-> painterly patches, 64 px (one filter, so
    # that every photo has a ground-truth painting); the recipe of the style pairs (the oil filter's
    # canvas weave is a fixed screen too) at width 16 and a quarter of the steps: 25 minutes on one
    # thread of the shared 2-core machine (its manifest's train_seconds)
    "cyclegan_photo": {
        "fast": {"steps": 4, "batch_size": 2, "lr": 1e-3, "warmup": 2, "ema": 0.9, "g_width": 8, "n_blocks": 1,
                 "d_width": 8, "position": 4, "resolution": 64, "filter": "oil", "eval": 16},
        "full": {"steps": 3000, "batch_size": 1, "lr": 2e-4, "warmup": 500, "ema": 0.999, "g_width": 16,
                 "n_blocks": 3, "d_width": 16, "position": 4, "resolution": 64, "filter": "oil", "eval": 200},
    },
    # chapter 5's live demo: a short run of the reference's plain (non-residual) generator on the
    # most visible pair (the good results are shipped); snapshot_every = steps between animation frames
    "cyclegan_demo": {
        "fast": {"steps": 40, "batch_size": 2, "lr": 2e-3, "g_width": 8, "n_blocks": 1, "d_width": 8,
                 "residual": False, "resolution": 64, "pair": ["flat", "neon"], "snapshot_every": 8, "eval": 48},
        "full": {"steps": 1500, "batch_size": 8, "lr": 1e-3, "g_width": 16, "n_blocks": 3, "d_width": 16,
                 "residual": False, "resolution": 64, "pair": ["flat", "neon"], "snapshot_every": 150, "eval": 300},
    },
    # chapter 7 (spokenstyle.models.fusion): `spokenstyle train fusion`, the fusion generator F and its
    # projection discriminator at 64 px; eval = held-out scenes per register. full is sized for the
    # CPU-trained shipment (about half an hour of one CPU thread); lambda_* weight F's losses;
    # refine_* = a second phase at a quarter of the rate from where the first ended (fusion.refine_budget);
    # width_64 = channels of F's 64 px block; rec_pool 2 = the L1 is taken on 2 x 2 average-pooled
    # pictures, so paper grain is left to the adversarial term (fusion.fusion_step); style_norm = the
    # style code at unit RMS (fusion.StyleEncoder: without it two of four runs of this recipe broke
    # down, seeds 1 and 3, and so did seed 2 with D at half rate; with it none of four).
    # `spokenstyle train fusion` makes one run; the shipped F is one of four (seeds 0-3), chosen on
    # validation scenes by benchmarks/fusion_runs.py (chapter 7, section 7)
    "fusion": {
        "fast": {"steps": 3, "batch_size": 4, "lr": 2e-3, "width": 8, "d_width": 8, "lambda_rec": 20.0,
                 "lambda_adv": 0.5, "eval": 12, "refine_steps": 2, "refine_lr": 5e-4, "refine_ema": 0.5,
                 "width_64": 12, "rec_pool": 2, "style_norm": True},
        "full": {"steps": 3000, "batch_size": 16, "lr": 2e-3, "width": 24, "width_64": 24, "d_width": 16,
                 "lambda_rec": 20.0, "lambda_adv": 0.5, "rec_pool": 2, "style_norm": True, "eval": 480,
                 "refine_steps": 1000, "refine_lr": 5e-4, "refine_ema": 0.99},
    },
    # chapter 7's live demo: a short run of the same recipe in the notebook (the good F is shipped);
    # eval = scenes the demo's F is scored on; per_style = held-out scenes per target style (section 7)
    "fusion_demo": {
        "fast": {"steps": 12, "batch_size": 8, "lr": 2e-3, "width": 8, "d_width": 8, "lambda_rec": 20.0,
                 "lambda_adv": 0.5, "width_64": 12, "rec_pool": 2, "style_norm": True, "eval": 36, "per_style": 24},
        "full": {"steps": 1600, "batch_size": 16, "lr": 2e-3, "width": 24, "width_64": 24, "d_width": 16,
                 "lambda_rec": 20.0, "lambda_adv": 0.5, "rec_pool": 2, "style_norm": True, "eval": 480,
                 "per_style": 100},
    },
    # chapter 5's baselines (spokenstyle.stylization): Gram (Gatys) and AdaIN optimisation steps,
    # n = pictures restyled per pair, width = RandomFeatures channels; eval = scenes that score
    # the shipped CycleGANs; probe = real renders for the judge and discriminator probes of section 4
    "stylization": {
        "fast": {"steps": 20, "lr": 0.1, "n": 8, "width": 24, "eval": 16, "probe": 100, "pairs": [["flat", "comic"]]},
        "full": {"steps": 150, "lr": 0.05, "n": 100, "width": 32, "eval": 300, "probe": 300,
                 "pairs": [["flat", "comic"], ["flat", "pixel"]]},
    },
}


def _env(name: str) -> str | None:
    value = os.environ.get(name, "").strip()
    return value or None


def _cuda_available() -> bool:
    return torch.cuda.is_available()


def _mps_available() -> bool:
    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())


def get_device(name: str | torch.device | None = None) -> torch.device:
    """The device to run on: ``name`` if given, else ``$SPOKENSTYLE_DEVICE``, else cuda > mps > cpu.

    Raises:
        ValueError: the name is not a torch device, or names an accelerator this machine lacks.
    """
    if isinstance(name, torch.device):
        requested = name
    else:
        text = name if name is not None else _env("SPOKENSTYLE_DEVICE")
        if text is None:
            if _cuda_available():
                return torch.device("cuda")
            if _mps_available():
                return torch.device("mps")
            return torch.device("cpu")
        try:
            requested = torch.device(text)
        except (RuntimeError, TypeError) as err:
            raise ValueError(
                f"unknown device {text!r} (from SPOKENSTYLE_DEVICE or the device argument); "
                "expected 'cpu', 'cuda', 'cuda:N' or 'mps'"
            ) from err
    if requested.type == "cuda" and not _cuda_available():
        raise ValueError(f"device {str(requested)!r} was requested but CUDA is not available here; use 'cpu'")
    if requested.type == "mps" and not _mps_available():
        raise ValueError(f"device {str(requested)!r} was requested but MPS is not available here; use 'cpu'")
    return requested


def is_accelerator(device: torch.device | str) -> bool:
    """True for a GPU (CUDA or MPS): where the full profile and AMP make sense."""
    return torch.device(device).type in ("cuda", "mps")


def device_name(device: torch.device | str | None = None) -> str:
    """A human name for the device: the GPU's model, or the CPU's core count."""
    device = get_device(device)
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    if device.type == "mps":
        return "Apple MPS"
    return f"CPU ({os.cpu_count()} cores)"


def synchronize(device: torch.device | str | None = None) -> None:
    """Waits for queued GPU work, so a timer around it measures the work, not the launch."""
    device = get_device(device)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


def amp_enabled(device: torch.device | str, requested: bool | None = None) -> bool:
    """Whether to train with automatic mixed precision: by default on CUDA only (bf16)."""
    device = torch.device(device)
    if requested is None:
        return device.type == "cuda"
    if requested and device.type != "cuda":
        raise ValueError(f"AMP was requested on {device}; it is supported on CUDA devices only")
    return requested


def autocast(device: torch.device | str, enabled: bool | None = None) -> contextlib.AbstractContextManager:
    """bfloat16 autocast on CUDA (no loss scaling needed), a no-op context elsewhere."""
    device = torch.device(device)
    if not amp_enabled(device, enabled):
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16)


def distributed_backend(device: torch.device | str) -> str:
    """The torch.distributed backend for ``device``: NCCL for CUDA, Gloo for everything else."""
    return "nccl" if torch.device(device).type == "cuda" else "gloo"


def local_device(device: torch.device | str, local_rank: int) -> torch.device:
    """The device of process ``local_rank`` under torchrun: its own GPU, or the shared CPU."""
    device = torch.device(device)
    if device.type == "cuda":
        torch.cuda.set_device(local_rank)
        return torch.device("cuda", local_rank)
    return device


def accelerator_rng_state() -> list[torch.Tensor]:
    """The random-generator states of every CUDA device (empty without CUDA), for checkpoints."""
    return list(torch.cuda.get_rng_state_all()) if _cuda_available() else []


def set_accelerator_rng_state(states: list[torch.Tensor]) -> None:
    """Restores what :func:`accelerator_rng_state` returned (ignored without CUDA)."""
    if states and _cuda_available():
        torch.cuda.set_rng_state_all(list(states))


def get_profile(name: str | None = None) -> str:
    """``name`` if given, else ``$SPOKENSTYLE_PROFILE``, else ``full`` on CUDA and ``fast`` elsewhere."""
    value = name if name is not None else _env("SPOKENSTYLE_PROFILE")
    if value is None:
        return "full" if _cuda_available() else "fast"
    value = value.lower()
    if value not in PROFILES:
        raise ValueError(f"unknown profile {value!r} (from SPOKENSTYLE_PROFILE?); expected one of {PROFILES}")
    return value


def budget(name: str, profile: str | None = None) -> dict[str, Any]:
    """The sizes and steps of experiment ``name`` in the current profile (a fresh copy)."""
    if name not in BUDGETS:
        raise KeyError(f"no budget named {name!r}; known: {sorted(BUDGETS)}")
    return dict(BUDGETS[name][get_profile(profile)])


def _same_kind(old: Any, new: Any) -> bool:
    """Whether ``new`` may replace the budget value ``old``: same JSON kind (an int may replace a float)."""
    if isinstance(old, bool) or isinstance(new, bool):
        return isinstance(old, bool) and isinstance(new, bool)
    if isinstance(old, float):
        return isinstance(new, (int, float))
    if old is None or new is None:
        return True  # optional entries (e.g. dcgan's style: None = every style)
    return isinstance(new, type(old))


def parse_overrides(items: Iterable[str]) -> dict[str, dict[str, Any]]:
    """Budget overrides from ``ROW.KEY=VALUE`` strings (``spokenstyle train --set``), checked
    against :data:`BUDGETS`: ``{"dcgan_all_styles": {"width": 64}}`` from ``dcgan_all_styles.width=64``.

    VALUE is read as JSON (``64``, ``2e-4``, ``true``, ``null``, ``[0.0, 0.9]``) and otherwise kept
    as a string. A row must exist, KEY must be one of the row's entries (in either profile) and the
    value must be of the entry's kind, so a typo fails loudly instead of training the wrong model.
    This is how a larger machine reuses a recipe (``--set cyclegan_flat_comic.g_width=64``) without
    a second copy of it; the manifest records the command line, overrides included.
    """
    import json

    out: dict[str, dict[str, Any]] = {}
    for item in items:
        target, sep, raw = str(item).partition("=")
        row, dot, key = target.strip().partition(".")
        if not sep or not dot or not row or not key:
            raise ValueError(f"a budget override is ROW.KEY=VALUE (e.g. dcgan_all_styles.steps=30000), got {item!r}")
        if row not in BUDGETS:
            raise ValueError(f"no budget row {row!r} in {item!r}; known rows: {sorted(BUDGETS)}")
        entries = {k: v for profile in BUDGETS[row].values() for k, v in profile.items()}
        if key not in entries:
            raise ValueError(f"budget row {row!r} has no entry {key!r} (in {item!r}); its entries: {sorted(entries)}")
        try:
            value = json.loads(raw)
        except json.JSONDecodeError:
            value = raw
        if not _same_kind(entries[key], value):
            raise ValueError(f"{row}.{key} is a {type(entries[key]).__name__} (e.g. {entries[key]!r}), "
                             f"got {value!r} in {item!r}")
        out.setdefault(row, {})[key] = value
    return out


def seed_everything(seed: int = 0, *, deterministic: bool = True) -> torch.Generator:
    """Seeds Python, NumPy and torch on every device; returns a CPU generator seeded the same.

    With ``deterministic`` (the default) cuDNN's autotuner is off and torch warns about
    non-deterministic kernels, so a ``fast`` run on the CPU gives the same numbers every time.
    """
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)  # seeds CUDA and MPS generators too
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.backends.cudnn.benchmark = False
        torch.backends.cudnn.deterministic = True
        torch.use_deterministic_algorithms(True, warn_only=True)
    return torch.Generator().manual_seed(seed)


def _in_notebook() -> bool:
    shell = sys.modules.get("IPython")
    if shell is None:
        return False
    ip = shell.get_ipython() if hasattr(shell, "get_ipython") else None
    return ip is not None and type(ip).__name__ == "ZMQInteractiveShell"


def progress(iterable: Iterable | None = None, *, total: int | None = None, desc: str | None = None,
             **kwargs: Any) -> Iterator:
    """A ``tqdm.auto`` progress bar that suits where it runs.

    In a notebook it is the usual widget. In a terminal it redraws in place. In a log file
    (CI) it prints at most one line every 30 s. ``SPOKENSTYLE_PROGRESS=0`` turns bars off.
    """
    from tqdm.auto import tqdm

    if _env("SPOKENSTYLE_PROGRESS") == "0":
        kwargs["disable"] = True
    if not _in_notebook() and not sys.stderr.isatty():
        kwargs.setdefault("mininterval", 30.0)
        kwargs.setdefault("ncols", 100)
    return tqdm(iterable, total=total, desc=desc, **kwargs)


def _repo_root() -> Path:
    return Path(__file__).resolve().parents[1]


def data_dir() -> Path:
    """The folder with the shipped data (tokenizer, checkpoints): ``$SPOKENSTYLE_DATA``, the
    checkout's ``data/``, or ``<prefix>/share/spokenstyle/data`` for a wheel install (Colab)."""
    candidates = []
    if _env("SPOKENSTYLE_DATA"):
        candidates.append(Path(_env("SPOKENSTYLE_DATA")))
    if (_repo_root() / "pyproject.toml").is_file():  # a checkout (editable install or PYTHONPATH)
        candidates.append(_repo_root() / "data")
    candidates.append(Path(sys.prefix) / "share" / "spokenstyle" / "data")
    for path in candidates:
        if path.is_dir():
            return path
    raise FileNotFoundError(
        "cannot find spokenstyle's data folder; looked in " + ", ".join(map(str, candidates))
        + ". Set SPOKENSTYLE_DATA to the project's data/ folder."
    )


def cache_dir() -> Path:
    """A writable folder for things the package makes (runs, generated datasets):
    ``$SPOKENSTYLE_CACHE`` or ``~/.cache/spokenstyle``."""
    path = Path(_env("SPOKENSTYLE_CACHE") or Path.home() / ".cache" / "spokenstyle")
    path.mkdir(parents=True, exist_ok=True)
    return path


def _append_report(record: dict[str, Any]) -> None:
    target = _env("SPOKENSTYLE_REPORT")
    if target is None:
        return
    import json

    with open(target, "a", encoding="utf-8") as handle:
        handle.write(json.dumps(record, default=str) + "\n")


def report(**metrics: float | int | str) -> None:
    """Records a notebook's key metrics for ``make gpu-check`` (``reports/gpu-check.json``).

    A no-op unless ``$SPOKENSTYLE_REPORT`` names a file, so notebooks call it unconditionally
    next to the asserts that check the same numbers.
    """
    clean = {}
    for key, value in metrics.items():
        if isinstance(value, torch.Tensor):
            value = value.item()
        if isinstance(value, (np.floating, np.integer)):
            value = value.item()
        if not isinstance(value, (int, float, str)):
            raise TypeError(f"report({key}=...) takes numbers or strings, got {type(value).__name__}")
        clean[key] = value
    _append_report({"kind": "metrics", "values": clean})


def report_models(**modules: torch.nn.Module) -> None:
    """Records which device each model's parameters live on (the trainer calls this), so
    ``make gpu-check`` can fail a notebook that left its models on the CPU."""
    for name, module in modules.items():
        param = next(iter(module.parameters()), None)
        device = str(param.device) if param is not None else "no-parameters"
        _append_report({"kind": "model", "name": name, "device": device,
                        "accelerator": param is not None and is_accelerator(param.device)})


@dataclass(frozen=True)
class Runtime:
    """What :func:`setup` decided: the device, the profile, the seed and any budget overrides
    (row -> entries, from :func:`parse_overrides`; empty for the book's own recipes)."""

    device: torch.device
    profile: str
    seed: int
    overrides: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)

    def budget(self, name: str) -> dict[str, Any]:
        """The sizes and steps of experiment ``name`` in this runtime's profile, overrides applied."""
        return {**budget(name, self.profile), **self.overrides.get(name, {})}

    def run_dir(self, name: str, budget_name: str | None = None) -> Path:
        """The folder where experiment ``name`` keeps its resumable checkpoints:
        ``cache_dir()/runs/NAME-PROFILE-seedSEED-HASH``, HASH a digest of the budget it runs with
        (``budget_name``, default ``name``), so a killed run resumes, while a run whose budget was
        changed (more steps, another learning rate, another loss weight) starts afresh instead of
        continuing someone else's weights."""
        import hashlib
        import json

        spec = json.dumps(self.budget(budget_name or name), sort_keys=True, default=str)
        digest = hashlib.sha256(spec.encode()).hexdigest()[:10]
        return cache_dir() / "runs" / f"{name}-{self.profile}-seed{self.seed}-{digest}"

    @property
    def full(self) -> bool:
        return self.profile == "full"

    def __str__(self) -> str:
        text = (f"spokenstyle runtime: device={self.device} ({device_name(self.device)}), "
                f"profile={self.profile}, seed={self.seed}, torch {torch.__version__}")
        return text + (f", overrides {dict(self.overrides)}" if self.overrides else "")


def setup(seed: int = 0, *, device: str | None = None, profile: str | None = None,
          deterministic: bool = True, verbose: bool = True,
          overrides: Mapping[str, Mapping[str, Any]] | None = None) -> Runtime:
    """The one call at the top of every notebook: seeds everything, picks device and profile.
    ``overrides`` (from :func:`parse_overrides`) change budget entries for this runtime only."""
    seed_everything(seed, deterministic=deterministic)
    rt = Runtime(device=get_device(device), profile=get_profile(profile), seed=seed,
                 overrides={row: dict(entries) for row, entries in (overrides or {}).items()})
    if verbose:
        print(rt)
    return rt
