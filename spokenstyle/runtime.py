"""Where code runs, how big it runs, and how it reports progress.

Every notebook starts with one call, :func:`setup`, which seeds everything, picks the device
and the profile, and prints them. Everything else in the package asks this module:

* **device**: CUDA if present, else Apple's MPS, else the CPU; ``SPOKENSTYLE_DEVICE`` overrides.
  This module is the only place in the package that names a device type.
* **profile**: ``fast`` (seconds on a laptop CPU, what CI runs) or ``full`` (the real training,
  minutes on one GPU); ``SPOKENSTYLE_PROFILE`` overrides, the default is ``full`` on CUDA and
  ``fast`` elsewhere. :data:`spokenstyle.budgets.BUDGETS` is the one table that decides sizes
  and steps; :func:`budget` reads it in the current profile.
* **seeding**: :func:`seed_everything` seeds Python, NumPy and torch (all devices).
* **progress bars**: :func:`progress` is ``tqdm.auto``: a widget in a notebook, and in a CI
  log a line every few seconds instead of a carriage-return storm.
* **files**: :func:`data_dir` is the shipped data inside the installed package (any install
  layout); :func:`cache_dir` is where the package writes (runs, generated datasets).
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.resources
import json
import os
import random
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping

import numpy as np
import torch
from tqdm.auto import tqdm

from . import budgets
from .budgets import PROFILES, Budget, parse_overrides

__all__ = [
    "PROFILES",
    "Runtime",
    "setup",
    "get_device",
    "get_profile",
    "budget",
    "parse_overrides",
    "MAX_SEED",
    "check_seed",
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


def budget(name: str, profile: str | None = None) -> Budget:
    """The sizes and steps of experiment ``name`` in ``profile`` (default: the current one), a
    frozen dataclass of :mod:`spokenstyle.budgets` (``budget("fusion").steps``)."""
    return budgets.lookup(name, get_profile(profile))


MAX_SEED = 2**63 - 1  # the largest seed every generator of the package takes (a C long long)


def check_seed(seed: object, name: str = "seed") -> int:
    """``seed`` if it is an int from 0 to :data:`MAX_SEED`; else a ValueError (TypeError for a
    non-int) naming ``name`` and the range. Every public function that takes a seed asks this."""
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise TypeError(f"{name} must be an int from 0 to 2**63 - 1, got {type(seed).__name__} {seed!r}")
    if not 0 <= seed <= MAX_SEED:
        raise ValueError(f"{name} must be an int from 0 to 2**63 - 1, got {seed}")
    return seed


def seed_everything(seed: int = 0, *, deterministic: bool = True) -> torch.Generator:
    """Seeds Python, NumPy and torch on every device; returns a CPU generator seeded the same.

    With ``deterministic`` (the default) cuDNN's autotuner is off and torch warns about
    non-deterministic kernels, so a ``fast`` run on the CPU gives the same numbers every time.
    """
    check_seed(seed)
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
    if _env("SPOKENSTYLE_PROGRESS") == "0":
        kwargs["disable"] = True
    if not _in_notebook() and not sys.stderr.isatty():
        kwargs.setdefault("mininterval", 30.0)
        kwargs.setdefault("ncols", 100)
    return tqdm(iterable, total=total, desc=desc, **kwargs)


SHIPPED = "shipped"  # the folder inside the package that holds the shipped data


def data_dir() -> Path:
    """The folder with the shipped data (tokenizer, checkpoints, recorded runs).

    It lives inside the package (``spokenstyle/shipped``) and is found with
    :mod:`importlib.resources`, so a checkout, an editable install, a wheel in a venv, a conda
    env, a ``--user`` install and a Debian-layout system Python (Colab) all find it the same way.
    ``$SPOKENSTYLE_DATA`` names another folder instead.

    Raises:
        FileNotFoundError: ``$SPOKENSTYLE_DATA`` names no folder, or the package lacks its data.
    """
    override = _env("SPOKENSTYLE_DATA")
    if override is not None:
        path = Path(override).expanduser()
        if not path.is_dir():
            raise FileNotFoundError(f"SPOKENSTYLE_DATA={override!r} is not a folder; point it at a folder laid out "
                                    "like spokenstyle/shipped (tokenizer.json, checkpoints/), or unset it")
        return path
    path = Path(str(importlib.resources.files(__package__) / SHIPPED))
    if not path.is_dir():
        raise FileNotFoundError(f"spokenstyle's shipped data is missing from {path}; reinstall the package "
                                "(its wheel carries spokenstyle/shipped)")
    return path


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
        tensor = next(iter(module.parameters()), None)
        if tensor is None:  # a module of buffers only (e.g. an adaptive augmentation's state)
            tensor = next(iter(module.buffers()), None)
        device = str(tensor.device) if tensor is not None else "no-parameters"
        _append_report({"kind": "model", "name": name, "device": device,
                        "accelerator": tensor is not None and is_accelerator(tensor.device)})


@dataclass(frozen=True)
class Runtime:
    """What :func:`setup` decided: the device, the profile, the seed and any budget overrides
    (row -> entries, from :func:`parse_overrides`; empty for the book's own recipes)."""

    device: torch.device
    profile: str
    seed: int
    overrides: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)

    def budget(self, name: str) -> Budget:
        """The sizes and steps of experiment ``name`` in this runtime's profile, overrides applied."""
        return budgets.apply_overrides(name, budget(name, self.profile), self.overrides)

    def run_dir(self, name: str, budget_name: str | None = None) -> Path:
        """The folder where experiment ``name`` keeps its resumable checkpoints:
        ``cache_dir()/runs/NAME-PROFILE-seedSEED-HASH``, HASH a digest of the budget it runs with
        (``budget_name``, default ``name``), so a killed run resumes, while a run whose budget was
        changed (more steps, another learning rate, another loss weight) starts afresh instead of
        continuing someone else's weights."""
        spec = json.dumps(self.budget(budget_name or name).to_dict(), sort_keys=True, default=str)
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
