"""Checkpoints: safetensors weights beside a JSON manifest that says what they are.

A checkpoint is a folder::

    my-model/
      manifest.json                what, how and how well: format, sha256 of the weights file,
                                   config, metrics, the command that produced it, versions, date
      model-<sha>.safetensors      the tensors (no pickle: loading a checkpoint runs no code)

**Nothing is lost by an interrupted save.** The weights go to a *new* file whose name carries
the first digits of its sha256, written to a temporary name, flushed and renamed; only then is
the manifest replaced, atomically, to name the new file; only then are older weights files
removed. A kill at any moment therefore leaves the old manifest with its old weights, or the new
manifest with its new weights: a loadable checkpoint either way. Stale temporary files of a
killed save are removed by the next save into the folder.

**Nothing is read from outside.** Loads verify the sha256 recorded in the manifest (a truncated,
corrupt or swapped file is refused with a clear :class:`CheckpointError`), take the weights file
only from the checkpoint's own folder (a manifest naming ``../x`` or an absolute path is
refused), and refuse weights that hold NaN.

**One way to load.** Every model family inherits :class:`Pretrained`: ``save_pretrained(dir)``
writes the model's config (a dataclass) with its weights, and ``Family.from_pretrained(name_or_dir,
device=...)`` rebuilds the architecture from that config and loads the weights, checking every
key name and shape (:func:`build_pretrained`). A checkpoint is named by a shipped name
(``"dcgan"``), its folder, or a file inside it (:func:`resolve`, the one place that resolves
names).

Shipped checkpoints (trained by the package's own commands, small enough for git) live in the
package's data folder (:func:`spokenstyle.runtime.data_dir`, ``checkpoints/<name>/``) and are
listed by :func:`shipped`.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import hashlib
import json
import os
import shlex
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Mapping

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from . import runtime

__all__ = [
    "FORMAT",
    "MANIFEST",
    "CheckpointError",
    "Checkpoint",
    "Pretrained",
    "sha256_file",
    "atomic_write_bytes",
    "command_line",
    "save_checkpoint",
    "read_manifest",
    "update_manifest",
    "load_checkpoint",
    "save_pretrained",
    "load_pretrained",
    "build_pretrained",
    "shipped",
    "shipped_path",
    "resolve",
]

FORMAT = "spokenstyle-checkpoint/1"
MANIFEST = "manifest.json"
WEIGHTS = "model.safetensors"  # the name older saves (and the shipped checkpoints) use
_TMP_SUFFIX = ".tmp"


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


# -- files -------------------------------------------------------------------------------------

def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    """The hex sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def _file_mode() -> int:
    """The mode a plain ``open(..., "w")`` would give a new file: 0666 less the umask (mkstemp's
    own 0600 would hide a checkpoint from the other users of a shared machine)."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def _fsync_dir(directory: Path) -> None:
    """Flushes a folder's entries (the renames in it) to disk, where the platform allows."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _temp_path(path: Path) -> Path:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=_TMP_SUFFIX)
    os.close(fd)
    os.chmod(tmp, _file_mode())
    return Path(tmp)


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Writes ``data`` to ``path`` so that readers see the old file or the new one, never half."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temp_path(path)
    try:
        with open(tmp, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
        _fsync_dir(path.parent)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _write_tensors(directory: Path, tensors: Mapping[str, torch.Tensor], metadata: dict[str, str]) -> Path:
    """Writes ``tensors`` to a new temporary file in ``directory`` (flushed to disk); returns it."""
    tmp = _temp_path(directory / "weights")
    try:
        # safetensors refuses views and shared storage: store contiguous CPU copies
        plain = {k: v.detach().to("cpu").contiguous().clone() for k, v in tensors.items()}
        save_file(plain, str(tmp), metadata=metadata)
        os.chmod(tmp, _file_mode())  # safetensors writes its file 0600 whatever the umask
        with open(tmp, "rb") as handle:
            os.fsync(handle.fileno())
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return tmp


def _remove_stale_temporaries(directory: Path) -> None:
    """Removes the temporary files a killed save left in ``directory`` (``.NAME.XXXX.tmp``)."""
    for stale in directory.glob(f".*{_TMP_SUFFIX}"):
        if stale.is_file():
            stale.unlink(missing_ok=True)


def _validate_tensors(tensors: Mapping[str, torch.Tensor]) -> None:
    if not isinstance(tensors, Mapping):
        raise TypeError(f"tensors must be a mapping of names to tensors, got {type(tensors).__name__}")
    for key, value in tensors.items():
        if not isinstance(key, str):
            raise TypeError(f"tensor names must be str, got {key!r}")
        if not isinstance(value, torch.Tensor):
            raise TypeError(f"value of {key!r} must be a torch.Tensor, got {type(value).__name__}")


# -- the command that made a checkpoint --------------------------------------------------------

def _checkout_root() -> Path | None:
    """The checkout the package runs from (the folder above the package, if it has a
    pyproject.toml), or None for an installed package."""
    root = Path(__file__).resolve().parents[1]
    return root if (root / "pyproject.toml").is_file() else None


def _portable(arg: str, root: Path | None) -> str:
    """A path argument inside the checkout, relative to it (``spokenstyle/shipped/...``), so a
    manifest never records a scratch folder of the machine that trained it."""
    if root is None:
        return arg
    for prefix in ("", "--out=", "--json="):
        if not arg.startswith(prefix):
            continue
        value = arg[len(prefix):]
        if not value.startswith(("/", "~")):
            continue
        try:
            return prefix + str(Path(value).expanduser().resolve().relative_to(root))
        except ValueError:
            return arg
    return arg


def command_line(argv: list[str] | None = None) -> str:
    """The command that is running, as a user would type it (recorded in manifests): the program
    as ``spokenstyle`` when it is the package's command line, and absolute paths inside the
    checkout written relative to it."""
    argv = list(sys.argv if argv is None else argv)
    if argv and Path(argv[0]).name in ("spokenstyle", "__main__.py", "cli.py"):
        argv[0] = "spokenstyle"
    root = _checkout_root()
    return " ".join(shlex.quote(_portable(a, root)) for a in argv)


# -- saving ------------------------------------------------------------------------------------

def _jsonable(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    return value


def _weights_name(digest: str, filename: str | None) -> str:
    if filename is None:
        return f"model-{digest[:16]}.safetensors"
    if "/" in filename or "\\" in filename or filename.startswith(".") or not filename.endswith(".safetensors"):
        raise ValueError(f"filename must be a plain name ending in .safetensors, got {filename!r}")
    return filename


def save_checkpoint(directory: str | Path, tensors: Mapping[str, torch.Tensor], *,
                    config: Mapping[str, Any] | Any = None, metrics: Mapping[str, Any] | None = None,
                    command: str | None = None, extra: Mapping[str, Any] | None = None,
                    filename: str | None = None) -> Path:
    """Saves ``tensors`` and a manifest into ``directory``; returns the directory.

    The weights file is new (its name carries its sha256 unless ``filename`` is given), the
    manifest is switched to it in one atomic rename, and only then are the folder's other
    ``*.safetensors`` files removed: a kill at any point leaves the old or the new checkpoint.

    Args:
        directory: the checkpoint folder (created if missing).
        tensors: name -> tensor; moved to the CPU and made contiguous.
        config: how to rebuild the model (a dataclass or a JSON-serialisable dict).
        metrics: what it scored, e.g. ``{"fd": 3.1, "fd_real_vs_real": 1.2}``.
        command: the command that produced it; default :func:`command_line`.
        extra: anything else JSON-serialisable (training step, history, RNG states).
        filename: the weights file's name (a plain name ending in ``.safetensors``); default
            ``model-<sha256[:16]>.safetensors``.
    """
    _validate_tensors(tensors)
    if filename is not None:
        _weights_name("", filename)  # validate before writing anything
    directory = Path(directory)
    if directory.exists() and not directory.is_dir():
        raise CheckpointError(f"cannot save a checkpoint into {directory}: it is a file, not a folder")
    directory.mkdir(parents=True, exist_ok=True)
    _remove_stale_temporaries(directory)
    old_name, old_sha = _listed_weights(directory)
    tmp = _write_tensors(directory, tensors, metadata={"format": FORMAT})
    try:
        digest = sha256_file(tmp)
        name = _weights_name(digest, filename)
        if name == old_name and digest != old_sha:  # never overwrite the file the current manifest vouches for
            name = f"{Path(name).stem}-{digest[:16]}.safetensors"
        manifest = {
            "format": FORMAT,
            "files": {name: {"sha256": digest, "bytes": tmp.stat().st_size}},
            "config": _jsonable(config) if config is not None else {},
            "metrics": dict(metrics or {}),
            "command": command if command is not None else command_line(),
            "extra": dict(extra or {}),
            "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "versions": {"torch": torch.__version__, "python": sys.version.split()[0]},
        }
        try:
            text = json.dumps(manifest, indent=2, sort_keys=True, allow_nan=True)
        except TypeError as err:
            raise TypeError(f"config, metrics and extra must be JSON-serialisable: {err}") from err
        os.replace(tmp, directory / name)  # 1. the new weights, beside the old ones
        _fsync_dir(directory)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    atomic_write_bytes(directory / MANIFEST, (text + "\n").encode())  # 2. the switch, in one rename
    for stale in directory.glob("*.safetensors"):  # 3. the old weights go
        if stale.name != name:
            stale.unlink(missing_ok=True)
    return directory


def _listed_weights(directory: Path) -> tuple[str | None, str | None]:
    """(name, sha256) of the weights file the folder's current manifest names, if it has one."""
    try:
        (name, info), = read_manifest(directory)["files"].items()
    except CheckpointError:
        return None, None
    return name, info["sha256"]


# -- reading -----------------------------------------------------------------------------------

def _check_weights_entry(path: Path, files: Any) -> tuple[str, dict[str, Any]]:
    if not isinstance(files, dict) or len(files) != 1:
        raise CheckpointError(f"{path} must list exactly one weights file under 'files', got {files!r:.80}")
    (name, info), = files.items()
    if not isinstance(name, str) or not name or Path(name).name != name or name in (".", "..") \
            or not name.endswith(".safetensors"):
        raise CheckpointError(f"{path} names the weights file {name!r}; it must be a plain file name ending in "
                              ".safetensors inside the checkpoint's folder (no folders, no '..', no absolute path)")
    if not isinstance(info, dict) or not isinstance(info.get("sha256"), str):
        raise CheckpointError(f"{path}: the entry of {name!r} must be an object with a 'sha256' string, got {info!r:.80}")
    return name, info


def read_manifest(directory: str | Path) -> dict[str, Any]:
    """The manifest of the checkpoint in ``directory``, checked for format and for a weights
    entry that names a file inside the folder."""
    directory = Path(directory)
    if not directory.exists():
        raise CheckpointError(f"no checkpoint at {directory}: the folder does not exist")
    if directory.is_file():
        raise CheckpointError(f"{directory} is a file; a checkpoint is a folder with {MANIFEST} and weights")
    path = directory / MANIFEST
    if not path.is_file():
        raise CheckpointError(f"checkpoint {directory} has no {MANIFEST}; without it the weights cannot be verified")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise CheckpointError(f"{path} is not valid JSON ({err}); the checkpoint is corrupt") from err
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        found = manifest.get("format") if isinstance(manifest, dict) else type(manifest).__name__
        raise CheckpointError(f"{path} is not a spokenstyle manifest (format {found!r}, expected {FORMAT!r})")
    _check_weights_entry(path, manifest.get("files"))
    for key in ("config", "metrics", "extra"):
        if manifest.get(key) is not None and not isinstance(manifest[key], dict):
            raise CheckpointError(f"{path}: {key!r} must be an object, got {type(manifest[key]).__name__}")
    return manifest


def load_checkpoint(directory: str | Path, *, device: str | torch.device = "cpu") -> Checkpoint:
    """Loads and verifies the checkpoint in ``directory``.

    Raises:
        CheckpointError: the folder, manifest or weights are missing; the manifest names a file
            outside the folder; the sha256 differs from the manifest (corrupt or swapped file);
            the file is not safetensors.
    """
    directory = Path(directory)
    manifest = read_manifest(directory)
    name, info = _check_weights_entry(directory / MANIFEST, manifest["files"])
    weights = directory / name
    if not weights.is_file():
        raise CheckpointError(f"checkpoint {directory} lists {name} but the file is missing")
    digest = sha256_file(weights)
    if digest != info["sha256"]:
        raise CheckpointError(
            f"{weights} does not match its manifest (sha256 {digest[:12]}… expected "
            f"{info['sha256'][:12]}…): the file is corrupt or was replaced"
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
    rescored = {"command": command if command is not None else command_line(),
                "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")}
    manifest["extra"] = {**manifest.get("extra", {}), **dict(extra or {}), "rescored": rescored}
    try:
        text = json.dumps(manifest, indent=2, sort_keys=True, allow_nan=True)
    except TypeError as err:
        raise TypeError(f"metrics and extra must be JSON-serialisable: {err}") from err
    atomic_write_bytes(directory / MANIFEST, (text + "\n").encode())
    return manifest


# -- modules -----------------------------------------------------------------------------------

def save_pretrained(module: nn.Module, directory: str | Path, *, config: Any = None,
                    metrics: Mapping[str, Any] | None = None, command: str | None = None,
                    extra: Mapping[str, Any] | None = None, cls: str | None = None) -> Path:
    """Saves a module's ``state_dict`` with its config (a dataclass or a dict) and metrics;
    ``extra["class"]`` names the model family (``cls``, default the module's class)."""
    if not isinstance(module, nn.Module):
        raise TypeError(f"save_pretrained expects a torch.nn.Module, got {type(module).__name__}")
    extra = {"class": cls or type(module).__qualname__, **dict(extra or {})}
    return save_checkpoint(directory, module.state_dict(), config=config, metrics=metrics,
                           command=command, extra=extra)


def _nan_tensors(tensors: Mapping[str, torch.Tensor]) -> list[str]:
    return [k for k, v in tensors.items() if v.is_floating_point() and bool(torch.isnan(v).any())]


def load_pretrained(module: nn.Module, directory: str | Path, *, strict: bool = True) -> Checkpoint:
    """Loads a checkpoint into ``module`` after checking every key name and shape.

    Raises:
        CheckpointError: keys are missing or unexpected (with ``strict``), a shape differs, or a
            weight holds NaN (its sha256 may match, but no score it gives would mean anything).
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
    bad = _nan_tensors(ckpt.tensors)
    if bad:
        raise CheckpointError(f"checkpoint {directory} holds NaN in {len(bad)} tensor(s) ({', '.join(bad[:3])}"
                              f"{'…' if len(bad) > 3 else ''}): the training that wrote it diverged")
    module.load_state_dict(ckpt.tensors, strict=strict)
    return ckpt


def build_pretrained(cls: type, config_cls: type, name_or_path: str | Path, *,
                     device: str | torch.device | None = None, what: str | None = None) -> nn.Module:
    """``cls(config_cls(**manifest["config"]))`` with the checkpoint's weights, in eval mode.

    The one body of every model family's ``from_pretrained``: resolve the name (:func:`resolve`),
    rebuild the architecture from the config the manifest recorded, let the family check the
    manifest (``cls._check_manifest``) and choose the module the weights fill
    (``model._weights_module(manifest)``), then load them (every key name and shape is checked).
    A config that does not fit ``config_cls`` means a foreign checkpoint, and says so. The model
    keeps ``model.manifest`` and ``model.checkpoint_path``.
    """
    what = what or f"{cls.__name__}"
    directory = resolve(name_or_path)
    manifest = read_manifest(directory)
    check = getattr(cls, "_check_manifest", None)
    if check is not None:
        check(manifest, directory)
    try:
        config = config_cls(**manifest.get("config", {}))
    except (TypeError, ValueError) as err:
        raise CheckpointError(f"{directory} is not a {what} checkpoint: its config does not fit "
                              f"{config_cls.__name__} ({err})") from err
    model = cls(config)
    target = model._weights_module(manifest) if hasattr(model, "_weights_module") else model
    model.manifest = load_pretrained(target, directory).manifest
    model.checkpoint_path = directory
    if device is not None:
        model.to(runtime.get_device(device))
    return model.eval()


class Pretrained:
    """``save_pretrained`` / ``from_pretrained`` for an ``nn.Module`` built from one config
    dataclass (``self.config``), as diffusers' ModelMixin and transformers' PreTrainedModel do.

    A family sets :attr:`config_class` (and :attr:`default_weights`, the shipped name
    ``from_pretrained()`` loads when called without one). It may override
    :meth:`_weights_module` (the submodule whose weights a checkpoint holds: a translator keeps
    its generators only) and :meth:`_check_manifest` (a captioner checks its tokenizer).
    """

    config_class: ClassVar[type]
    default_weights: ClassVar[str | None] = None

    def save_pretrained(self, directory: str | Path, *, metrics: Mapping[str, Any] | None = None,
                        command: str | None = None, extra: Mapping[str, Any] | None = None) -> Path:
        """Writes the weights and ``manifest.json`` (config, metrics, the command) to ``directory``."""
        return save_pretrained(self._weights_module(None), directory, config=self.config, metrics=metrics,
                               command=command, extra=extra, cls=type(self).__qualname__)

    @classmethod
    def from_pretrained(cls, name_or_path: str | Path | None = None, *,
                        device: str | torch.device | None = None):
        """The model of a checkpoint: a shipped name, a checkpoint folder or a file in one (default:
        :attr:`default_weights`), rebuilt from its config, in eval mode, on ``device`` if given."""
        if name_or_path is None:
            if cls.default_weights is None:
                raise ValueError(f"{cls.__name__}.from_pretrained needs a checkpoint name or folder")
            name_or_path = cls.default_weights
        return build_pretrained(cls, cls.config_class, name_or_path, device=device)

    def _weights_module(self, manifest: Mapping[str, Any] | None) -> nn.Module:
        """The module whose state dict a checkpoint holds (``manifest`` is None when saving)."""
        return self  # type: ignore[return-value]


# -- names -------------------------------------------------------------------------------------

def _shipped_root() -> Path:
    return runtime.data_dir() / "checkpoints"


def shipped(*, errors: dict[str, str] | None = None) -> dict[str, dict[str, Any]]:
    """The registry of shipped checkpoints: name -> manifest, read from ``checkpoints/*/``.

    A checkpoint whose manifest cannot be read is left out (so one broken file never hides the
    others); pass a dict as ``errors`` to receive ``name -> what is wrong`` for each."""
    root = _shipped_root()
    if not root.is_dir():
        return {}
    out = {}
    for path in sorted(root.glob(f"*/{MANIFEST}")):
        try:
            out[path.parent.name] = read_manifest(path.parent)
        except CheckpointError as err:
            if errors is not None:
                errors[path.parent.name] = str(err)
    return out


def shipped_path(name: str) -> Path:
    """The folder of the shipped checkpoint ``name``; a clear error lists the available ones."""
    if not isinstance(name, str) or not name or "/" in name or name in (".", ".."):
        raise CheckpointError(f"a shipped checkpoint's name is a plain name like 'dcgan', got {name!r}")
    path = _shipped_root() / name
    if not (path / MANIFEST).is_file():
        raise CheckpointError(f"no shipped checkpoint named {name!r}; available: {sorted(shipped()) or 'none'}")
    return path


def resolve(name_or_path: str | Path) -> Path:
    """A checkpoint folder from a shipped checkpoint's name (``"dcgan"``), a folder's path, or
    the path of a file inside a checkpoint (its ``manifest.json`` or weights).

    A ``Path``, a string with a path separator, or an existing folder or file is taken as a path;
    anything else is looked up among the shipped checkpoints (:func:`shipped_path`).

    Raises:
        TypeError: not a str or Path.
        CheckpointError: no such shipped checkpoint.
    """
    if not isinstance(name_or_path, (str, Path)):
        raise TypeError(f"a checkpoint is named by a shipped name or a path, got {type(name_or_path).__name__}")
    text = str(name_or_path)
    if isinstance(name_or_path, Path) or os.sep in text or "/" in text or Path(text).exists():
        path = Path(name_or_path).expanduser()
        if path.is_file() and (path.name == MANIFEST or path.suffix == ".safetensors"):
            return path.parent
        return path
    return shipped_path(text)
