"""Checkpoints: safetensors weights beside a JSON manifest that says what they are.

A checkpoint is a folder::

    my-model/
      manifest.json          what, how and how well: format, sha256 of every file, config,
                             metrics, the command that produced it, versions, date
      model.safetensors      the tensors (no pickle: loading a checkpoint runs no code)

Writes are atomic: each file goes to a temporary name in the same folder, is flushed to disk
and renamed over the old one, and the manifest is written last, so an interrupted save leaves
the previous checkpoint intact. Loads verify the sha256 recorded in the manifest, so a
truncated, corrupt or swapped file is refused with a clear :class:`CheckpointError` instead of
being half-loaded.

Shipped checkpoints (trained by the package's own commands, small enough for git) live under
``data/checkpoints/<name>/`` and are listed by :func:`shipped`.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from . import runtime

__all__ = [
    "FORMAT",
    "CheckpointError",
    "Checkpoint",
    "sha256_file",
    "atomic_write_bytes",
    "save_checkpoint",
    "update_manifest",
    "load_checkpoint",
    "save_pretrained",
    "load_pretrained",
    "shipped",
    "shipped_path",
    "resolve",
    "build_pretrained",
]

FORMAT = "spokenstyle-checkpoint/1"
MANIFEST = "manifest.json"
WEIGHTS = "model.safetensors"


class CheckpointError(ValueError):
    """A checkpoint is missing, corrupt, foreign, or does not fit the model it is loaded into."""


@dataclass
class Checkpoint:
    """A loaded checkpoint: its tensors and its manifest."""

    tensors: dict[str, torch.Tensor]
    manifest: dict[str, Any]
    path: Path = field(default_factory=Path)

    @property
    def config(self) -> dict[str, Any]:
        return self.manifest.get("config") or {}

    @property
    def metrics(self) -> dict[str, Any]:
        return self.manifest.get("metrics") or {}


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    """The hex sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Writes ``data`` to ``path`` so that readers see the old file or the new one, never half."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _atomic_save_tensors(path: Path, tensors: Mapping[str, torch.Tensor], metadata: dict[str, str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        # safetensors refuses views and shared storage: store contiguous CPU copies
        plain = {k: v.detach().to("cpu").contiguous().clone() for k, v in tensors.items()}
        save_file(plain, tmp, metadata=metadata)
        with open(tmp, "rb") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _validate_tensors(tensors: Mapping[str, torch.Tensor]) -> None:
    if not isinstance(tensors, Mapping):
        raise TypeError(f"tensors must be a mapping of names to tensors, got {type(tensors).__name__}")
    for key, value in tensors.items():
        if not isinstance(key, str):
            raise TypeError(f"tensor names must be str, got {key!r}")
        if not isinstance(value, torch.Tensor):
            raise TypeError(f"value of {key!r} must be a torch.Tensor, got {type(value).__name__}")


def save_checkpoint(directory: str | Path, tensors: Mapping[str, torch.Tensor], *,
                    config: Mapping[str, Any] | None = None, metrics: Mapping[str, Any] | None = None,
                    command: str | None = None, extra: Mapping[str, Any] | None = None,
                    filename: str = WEIGHTS) -> Path:
    """Saves ``tensors`` and a manifest into ``directory``; returns the directory.

    Args:
        directory: the checkpoint folder (created if missing).
        tensors: name -> tensor; moved to the CPU and made contiguous.
        config: how to rebuild the model (e.g. ``dataclasses.asdict(config)``); JSON-serialisable.
        metrics: what it scored, e.g. ``{"fd": 3.1, "fd_real_vs_real": 1.2}``.
        command: the command that produced it, e.g. ``"spokenstyle train dcgan --profile full"``.
        extra: anything else JSON-serialisable (training step, history, RNG states).
        filename: the weights file's name; files of other names in the folder that end in
            ``.safetensors`` and are not in the new manifest are removed after the manifest is written.
    """
    _validate_tensors(tensors)
    if "/" in filename or not filename.endswith(".safetensors"):
        raise ValueError(f"filename must be a plain name ending in .safetensors, got {filename!r}")
    directory = Path(directory)
    weights = directory / filename
    _atomic_save_tensors(weights, tensors, metadata={"format": FORMAT})
    manifest = {
        "format": FORMAT,
        "files": {filename: {"sha256": sha256_file(weights), "bytes": weights.stat().st_size}},
        "config": dict(config or {}),
        "metrics": dict(metrics or {}),
        "command": command,
        "extra": dict(extra or {}),
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "versions": {"torch": torch.__version__, "python": sys.version.split()[0]},
    }
    try:
        text = json.dumps(manifest, indent=2, sort_keys=True, allow_nan=True)
    except TypeError as err:
        raise TypeError(f"config, metrics and extra must be JSON-serialisable: {err}") from err
    atomic_write_bytes(directory / MANIFEST, (text + "\n").encode())
    for stale in directory.glob("*.safetensors"):
        if stale.name != filename:
            stale.unlink(missing_ok=True)
    return directory


def read_manifest(directory: str | Path) -> dict[str, Any]:
    """The manifest of the checkpoint in ``directory``, checked for format."""
    directory = Path(directory)
    if not directory.exists():
        raise CheckpointError(f"no checkpoint at {directory}: the folder does not exist")
    if directory.is_file():
        raise CheckpointError(f"{directory} is a file; a checkpoint is a folder with {MANIFEST} and weights")
    path = directory / MANIFEST
    if not path.is_file():
        raise CheckpointError(f"checkpoint {directory} has no {MANIFEST}; without it the weights cannot be verified")
    try:
        manifest = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise CheckpointError(f"{path} is not valid JSON ({err}); the checkpoint is corrupt") from err
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        found = manifest.get("format") if isinstance(manifest, dict) else type(manifest).__name__
        raise CheckpointError(f"{path} is not a spokenstyle manifest (format {found!r}, expected {FORMAT!r})")
    files = manifest.get("files")
    if not isinstance(files, dict) or len(files) != 1:
        raise CheckpointError(f"{path} must list exactly one weights file under 'files'")
    return manifest


def load_checkpoint(directory: str | Path, *, device: str | torch.device = "cpu") -> Checkpoint:
    """Loads and verifies the checkpoint in ``directory``.

    Raises:
        CheckpointError: the folder, manifest or weights are missing; the sha256 differs from the
            manifest (corrupt or swapped file); the file is not safetensors.
    """
    directory = Path(directory)
    manifest = read_manifest(directory)
    (name, info), = manifest["files"].items()
    weights = directory / name
    if not weights.is_file():
        raise CheckpointError(f"checkpoint {directory} lists {name} but the file is missing")
    digest = sha256_file(weights)
    if digest != info.get("sha256"):
        raise CheckpointError(
            f"{weights} does not match its manifest (sha256 {digest[:12]}… expected "
            f"{str(info.get('sha256'))[:12]}…): the file is corrupt or was replaced"
        )
    try:
        tensors = load_file(weights, device=str(device))
    except (SafetensorError, OSError, ValueError) as err:
        raise CheckpointError(f"{weights} is not a readable safetensors file: {err}") from err
    return Checkpoint(tensors=tensors, manifest=manifest, path=directory)


def update_manifest(directory: str | Path, *, metrics: Mapping[str, Any] | None = None,
                    extra: Mapping[str, Any] | None = None, command: str | None = None) -> dict[str, Any]:
    """Re-scores a checkpoint without touching its weights: merges ``metrics`` and ``extra`` into
    its manifest (new keys win) and records who re-scored it and when under ``extra["rescored"]``;
    returns the new manifest.

    The weights are verified first (sha256), so a manifest is never rewritten to describe weights
    it did not describe; the training ``command`` and ``created`` stay as they were. The write
    is atomic, like :func:`save_checkpoint`'s.
    """
    directory = Path(directory)
    manifest = load_checkpoint(directory).manifest  # raises CheckpointError on any mismatch
    manifest["metrics"] = {**manifest.get("metrics", {}), **dict(metrics or {})}
    rescored = {"command": command, "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")}
    manifest["extra"] = {**manifest.get("extra", {}), **dict(extra or {}), "rescored": rescored}
    try:
        text = json.dumps(manifest, indent=2, sort_keys=True, allow_nan=True)
    except TypeError as err:
        raise TypeError(f"metrics and extra must be JSON-serialisable: {err}") from err
    atomic_write_bytes(directory / MANIFEST, (text + "\n").encode())
    return manifest


def save_pretrained(module: torch.nn.Module, directory: str | Path, *, config: Any = None,
                    metrics: Mapping[str, Any] | None = None, command: str | None = None,
                    extra: Mapping[str, Any] | None = None) -> Path:
    """Saves a module's ``state_dict`` with its config (a dataclass or a dict) and metrics."""
    if not isinstance(module, torch.nn.Module):
        raise TypeError(f"save_pretrained expects a torch.nn.Module, got {type(module).__name__}")
    if config is not None and hasattr(config, "__dataclass_fields__"):
        from dataclasses import asdict

        config = asdict(config)
    extra = {"class": type(module).__qualname__, **dict(extra or {})}
    return save_checkpoint(directory, module.state_dict(), config=config, metrics=metrics,
                           command=command, extra=extra)


def load_pretrained(module: torch.nn.Module, directory: str | Path, *, strict: bool = True) -> Checkpoint:
    """Loads a checkpoint into ``module`` after checking every key name and shape.

    Raises:
        CheckpointError: keys are missing or unexpected (with ``strict``), or a shape differs.
    """
    ckpt = load_checkpoint(directory)
    own = module.state_dict()
    missing = sorted(set(own) - set(ckpt.tensors))
    unexpected = sorted(set(ckpt.tensors) - set(own))
    if strict and (missing or unexpected):
        raise CheckpointError(
            f"checkpoint {directory} does not fit {type(module).__name__}: "
            f"missing {missing[:5]}{'…' if len(missing) > 5 else ''}, "
            f"unexpected {unexpected[:5]}{'…' if len(unexpected) > 5 else ''}"
        )
    for key in set(own) & set(ckpt.tensors):
        if own[key].shape != ckpt.tensors[key].shape:
            raise CheckpointError(
                f"checkpoint {directory}: {key} has shape {tuple(ckpt.tensors[key].shape)}, "
                f"the model expects {tuple(own[key].shape)} (was it saved with another config?)"
            )
    module.load_state_dict(ckpt.tensors, strict=strict)
    return ckpt


def _shipped_root() -> Path:
    return runtime.data_dir() / "checkpoints"


def shipped() -> dict[str, dict[str, Any]]:
    """The registry of shipped checkpoints: name -> manifest, read from ``data/checkpoints/*/``."""
    root = _shipped_root()
    if not root.is_dir():
        return {}
    return {p.parent.name: read_manifest(p.parent) for p in sorted(root.glob(f"*/{MANIFEST}"))}


def shipped_path(name: str) -> Path:
    """The folder of the shipped checkpoint ``name``; a clear error lists the available ones."""
    path = _shipped_root() / name
    if not (path / MANIFEST).is_file():
        raise CheckpointError(f"no shipped checkpoint named {name!r}; available: {sorted(shipped()) or 'none'}")
    return path


def resolve(name_or_path: str | Path) -> Path:
    """A checkpoint folder from a shipped checkpoint's name (``"dcgan"``) or a folder's path.

    A ``Path``, a string with a ``/`` or an existing folder is taken as a path; anything else is
    looked up among the shipped checkpoints (:func:`shipped_path`, with its clear error)."""
    if isinstance(name_or_path, Path) or "/" in str(name_or_path) or Path(name_or_path).is_dir():
        return Path(name_or_path)
    return shipped_path(str(name_or_path))


def build_pretrained(cls: type, config_cls: type, name_or_path: str | Path, *,
                     device: str | torch.device | None = None, what: str = "model") -> torch.nn.Module:
    """``cls(config_cls(**manifest["config"]))`` with the checkpoint's weights, in eval mode.

    The shared body of the models' ``from_pretrained``: rebuild the architecture from the config
    the manifest recorded, then load the weights (every key name and shape is checked). A config
    that does not fit ``config_cls`` means a foreign checkpoint, and says so."""
    directory = resolve(name_or_path)
    manifest = read_manifest(directory)
    try:
        config = config_cls(**manifest["config"])
    except (TypeError, ValueError) as err:
        raise CheckpointError(f"{directory} is not a {what} checkpoint: its config does not fit "
                              f"{config_cls.__name__} ({err})") from err
    model = cls(config)
    model.manifest = load_pretrained(model, directory).manifest
    if device is not None:
        model.to(device)
    return model.eval()
