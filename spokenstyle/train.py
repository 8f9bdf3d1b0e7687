"""One small training loop for every model in the book.

A model family supplies a *step function*; the :class:`Trainer` supplies everything around it:
steps from the profile's budget, moving batches to the device, mixed precision on CUDA,
gradient clipping, a history of scalars, periodic callbacks (live curves, sample grids), atomic
checkpoints every N steps, exact resumption from the last one, and DistributedDataParallel when
started by ``torchrun``. The loop itself stays visible and short (nanoGPT's ``train.py``;
d2l's ``update_D`` / ``update_G`` split)::

    def gan_step(t, real, step):
        G, D = t.modules["G"], t.modules["D"]
        z = torch.randn(real.shape[0], nz, device=t.device)
        with t.autocast():
            fake = G(z)
            loss_d = losses.nonsaturating_d_loss(D(real), D(fake.detach()))  # update_D: detached fakes
        t.optimize("D", loss_d)
        with t.autocast():
            loss_g = losses.nonsaturating_g_loss(D(fake))                    # update_G
        t.optimize("G", loss_g)
        return {"loss_D": loss_d, "loss_G": loss_g}

    history = Trainer({"G": G, "D": D}, {"G": opt_g, "D": opt_d}, gan_step,
                      TrainConfig(steps=1000), device=rt.device).fit(lambda step: sample(step))

Resumption is exact when batches come from a function of the step (``batches(step)``, as all
of the book's data does): the checkpoint holds the weights, the optimizer and scheduler states,
every random generator's state, the step and the history, so an interrupted run resumed from
its checkpoint ends with the same weights as one that was never interrupted.
"""

from __future__ import annotations

import math
import os
import random
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from . import checkpoints, runtime

__all__ = ["TrainConfig", "History", "Trainer", "to_device", "unwrap", "ema_update_"]


@dataclass
class TrainConfig:
    """How long and how to train; the model's own hyper-parameters live in its own config."""

    steps: int  # total optimisation steps; take it from runtime.budget(...) so profiles decide
    log_every: int = 1  # record scalars every N steps (on a GPU, >1 avoids a sync per step)
    callback_every: int = 0  # call the callbacks every N steps and at the end; 0 = only at the end
    checkpoint_every: int = 0  # save every N steps and at the end; 0 = only at the end (if a dir is set)
    checkpoint_dir: str | None = None  # None = no checkpoints
    resume: bool = True  # continue from checkpoint_dir when it holds a checkpoint
    amp: bool | None = None  # None = bf16 autocast on CUDA only (no loss scaling needed)
    grad_clip: float | None = None  # max global grad norm per optimizer; None = no clipping
    desc: str = "train"  # progress bar label

    def __post_init__(self) -> None:
        if not isinstance(self.steps, int) or self.steps < 0:
            raise ValueError(f"steps must be a non-negative int, got {self.steps!r}")
        for name in ("log_every", "callback_every", "checkpoint_every"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 0 or (name == "log_every" and value == 0):
                raise ValueError(f"{name} must be a {'positive' if name == 'log_every' else 'non-negative'} int, got {value!r}")
        if self.grad_clip is not None and not self.grad_clip > 0:
            raise ValueError(f"grad_clip must be positive or None, got {self.grad_clip!r}")


class History(dict):
    """Scalars recorded during training: ``history["loss_D"]`` is a list of floats, aligned with
    ``history["step"]``. A plain dict underneath, so it is JSON-serialisable."""

    def record(self, step: int, scalars: Mapping[str, float]) -> None:
        n = len(self.get("step", []))
        self.setdefault("step", []).append(step)
        for key, value in scalars.items():
            column = self.setdefault(key, [])
            column.extend([math.nan] * (n - len(column)))  # a key that appears late
            column.append(float(value))

    def last(self, key: str) -> float:
        return self[key][-1]

    def mean(self, key: str, last: int | None = None) -> float:
        """Mean of ``key`` over the last ``last`` records (all when None), ignoring NaN."""
        values = np.asarray(self[key][-last:] if last else self[key], dtype=float)
        return float(np.nanmean(values))


def to_device(batch: Any, device: torch.device) -> Any:
    """Moves every tensor in a (nested) tuple/list/dict batch to ``device``."""
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, Mapping):
        return {k: to_device(v, device) for k, v in batch.items()}
    if isinstance(batch, (list, tuple)) and not hasattr(batch, "_fields"):
        return type(batch)(to_device(v, device) for v in batch)
    if hasattr(batch, "_fields"):  # namedtuple
        return type(batch)(*(to_device(v, device) for v in batch))
    if hasattr(batch, "__dataclass_fields__"):
        return type(batch)(**{k: to_device(getattr(batch, k), device) for k in batch.__dataclass_fields__})
    return batch


# -- state <-> (tensors, JSON) --------------------------------------------------------------
# safetensors holds tensors only; optimizer states and RNG states nest tensors in dicts, lists
# and tuples with int keys. `_split` stores each tensor under a path and leaves a JSON skeleton
# with markers; `_join` reverses it exactly (int keys and tuples included).

def _split(obj: Any, path: str, tensors: dict[str, torch.Tensor]) -> Any:
    if isinstance(obj, torch.Tensor):
        tensors[path] = obj
        return {"__tensor__": path}
    if isinstance(obj, np.ndarray):
        tensors[path] = torch.from_numpy(np.ascontiguousarray(obj))
        return {"__ndarray__": path}
    if isinstance(obj, dict):
        return {"__dict__": [[k, _split(v, f"{path}/{k}", tensors)] for k, v in obj.items()]}
    if isinstance(obj, tuple):
        return {"__tuple__": [_split(v, f"{path}/{i}", tensors) for i, v in enumerate(obj)]}
    if isinstance(obj, list):
        return [_split(v, f"{path}/{i}", tensors) for i, v in enumerate(obj)]
    if isinstance(obj, (np.integer, np.floating)):
        return obj.item()
    return obj


def _join(obj: Any, tensors: Mapping[str, torch.Tensor]) -> Any:
    if isinstance(obj, dict):
        if "__tensor__" in obj:
            return tensors[obj["__tensor__"]]
        if "__ndarray__" in obj:
            return tensors[obj["__ndarray__"]].numpy()
        if "__dict__" in obj:
            return {k: _join(v, tensors) for k, v in obj["__dict__"]}
        if "__tuple__" in obj:
            return tuple(_join(v, tensors) for v in obj["__tuple__"])
        return {k: _join(v, tensors) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_join(v, tensors) for v in obj]
    return obj


def _rng_state() -> dict[str, Any]:
    return {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state(),
            "accelerator": runtime.accelerator_rng_state()}


def _set_rng_state(state: Mapping[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    runtime.set_accelerator_rng_state(state.get("accelerator") or [])


def unwrap(module: nn.Module) -> nn.Module:
    """The model inside a DistributedDataParallel wrapper (or the module itself)."""
    return module.module if isinstance(module, nn.parallel.DistributedDataParallel) else module


@torch.no_grad()
def ema_update_(ema: nn.Module, model: nn.Module, decay: float) -> None:
    """``ema ← decay · ema + (1 − decay) · model``, in place, for every parameter and every
    floating-point buffer (BatchNorm's running statistics); integer buffers are copied.

    An exponential moving average of a generator's weights (Yazıcı et al. 2019, "The Unusual
    Effectiveness of Averaging in GAN Training", https://arxiv.org/abs/1806.04498; used by ProGAN,
    StyleGAN and BigGAN) smooths out the oscillation of the adversarial game: the weights circle
    around a good point, their average sits nearer to it. ``decay = 0.999`` averages over about
    1,000 steps.
    """
    if not 0.0 <= decay < 1.0:
        raise ValueError(f"decay must be in [0, 1), got {decay!r}")
    for e, m in zip(ema.parameters(), model.parameters()):
        e.lerp_(m, 1.0 - decay)
    for e, m in zip(ema.buffers(), model.buffers()):
        e.lerp_(m, 1.0 - decay) if e.is_floating_point() else e.copy_(m)


class Trainer:
    """Runs ``step_fn`` for ``config.steps`` steps with everything around it.

    Args:
        modules: name -> model. Under ``torchrun`` each one with trainable parameters is wrapped
            in DistributedDataParallel; ``trainer.modules[name]`` is what to call in the step.
        optimizers: name -> optimizer, stepped by :meth:`optimize` with the same name.
        step_fn: ``step_fn(trainer, batch, step) -> dict of scalars`` does one optimisation step.
        config: a :class:`TrainConfig`.
        schedulers: name -> LR scheduler, stepped once after every step.
        callbacks: ``callback(trainer, step)``, called every ``config.callback_every`` steps and
            once at the end (live plots, sample grids, evaluation).
        device: where to train; default :func:`spokenstyle.runtime.get_device`.
        model_config: how to rebuild the models, stored in every checkpoint's manifest.
    """

    def __init__(self, modules: Mapping[str, nn.Module], optimizers: Mapping[str, torch.optim.Optimizer],
                 step_fn: Callable[["Trainer", Any, int], Mapping[str, Any] | None], config: TrainConfig, *,
                 schedulers: Mapping[str, Any] | None = None,
                 callbacks: Iterable[Callable[["Trainer", int], None]] = (),
                 device: str | torch.device | None = None, model_config: Mapping[str, Any] | None = None) -> None:
        if not isinstance(config, TrainConfig):
            raise TypeError(f"config must be a TrainConfig, got {type(config).__name__}")
        if not modules:
            raise ValueError("modules is empty: give at least one model to train, e.g. {'G': G}")
        for name, module in modules.items():
            if not isinstance(module, nn.Module):
                raise TypeError(f"modules[{name!r}] must be an nn.Module, got {type(module).__name__}")
        if not callable(step_fn):
            raise TypeError("step_fn must be callable as step_fn(trainer, batch, step)")
        self.config = config
        self.step_fn = step_fn
        self.optimizers = dict(optimizers)
        self.schedulers = dict(schedulers or {})
        self.callbacks = list(callbacks)
        self.model_config = dict(model_config or {})
        self.step = 0
        self.history = History()
        self._init_distributed(runtime.get_device(device))
        self.amp = runtime.amp_enabled(self.device, config.amp)
        self.modules = {name: self._wrap(m.to(self.device)) for name, m in modules.items()}
        runtime.report_models(**{name: unwrap(m) for name, m in self.modules.items()})

    # -- distributed ---------------------------------------------------------------------------
    def _init_distributed(self, device: torch.device) -> None:
        world = int(os.environ.get("WORLD_SIZE", "1"))
        if world > 1 and not dist.is_initialized():
            dist.init_process_group(runtime.distributed_backend(device))
        self.distributed = dist.is_available() and dist.is_initialized()
        self.rank = dist.get_rank() if self.distributed else 0
        self.world_size = dist.get_world_size() if self.distributed else 1
        local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        self.device = runtime.local_device(device, local_rank) if self.distributed else device

    def _wrap(self, module: nn.Module) -> nn.Module:
        if not self.distributed or not any(p.requires_grad for p in module.parameters()):
            return module
        ids = [self.device.index] if self.device.index is not None else None
        # buffers (BatchNorm statistics) stay per-process: GAN steps call D several times per step
        return nn.parallel.DistributedDataParallel(module, device_ids=ids, broadcast_buffers=False)

    @property
    def is_main(self) -> bool:
        """True on the process that logs and writes checkpoints (rank 0)."""
        return self.rank == 0

    # -- what a step function calls -------------------------------------------------------------
    def autocast(self):
        """Mixed precision for the forward pass (bf16 on CUDA), a no-op elsewhere."""
        return runtime.autocast(self.device, self.amp)

    def optimize(self, name: str, loss: torch.Tensor, *, retain_graph: bool = False) -> float | None:
        """One update of optimizer ``name``: zero grads → backward → clip → step.

        Gradients are zeroed first, so a backward pass through another model (the generator's
        loss runs through D) never leaks into this model's update. Returns the gradient norm
        before clipping when ``config.grad_clip`` is set.
        """
        if name not in self.optimizers:
            raise KeyError(f"no optimizer named {name!r}; have {sorted(self.optimizers)}")
        if not isinstance(loss, torch.Tensor) or loss.dim() != 0:
            raise ValueError(f"optimize({name!r}) needs a scalar loss tensor, got {type(loss).__name__}"
                             f"{'' if not isinstance(loss, torch.Tensor) else ' of shape ' + str(tuple(loss.shape))}")
        if not torch.isfinite(loss.detach()).item():
            raise FloatingPointError(f"loss for {name!r} is {loss.item()} at step {self.step}; lower the learning rate "
                                     "or enable grad_clip")
        optimizer = self.optimizers[name]
        optimizer.zero_grad(set_to_none=True)
        loss.backward(retain_graph=retain_graph)
        norm = None
        if self.config.grad_clip is not None:
            params = [p for group in optimizer.param_groups for p in group["params"] if p.grad is not None]
            norm = float(nn.utils.clip_grad_norm_(params, self.config.grad_clip))
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return norm

    # -- checkpoints ----------------------------------------------------------------------------
    def state(self) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        """Everything needed to resume: (tensors, JSON skeleton)."""
        tensors: dict[str, torch.Tensor] = {}
        skeleton = {
            "modules": {n: _split(unwrap(m).state_dict(), f"modules/{n}", tensors) for n, m in self.modules.items()},
            "optimizers": {n: _split(o.state_dict(), f"optimizers/{n}", tensors) for n, o in self.optimizers.items()},
            "schedulers": {n: _split(s.state_dict(), f"schedulers/{n}", tensors) for n, s in self.schedulers.items()},
            "rng": _split(_rng_state(), "rng", tensors),
        }
        return tensors, skeleton

    def save(self, directory: str | Path | None = None) -> Path | None:
        """Writes a checkpoint of the current step (rank 0 only); returns its folder."""
        directory = Path(directory or self.config.checkpoint_dir or "")
        if not str(directory) or str(directory) == ".":
            raise ValueError("no checkpoint folder: set TrainConfig.checkpoint_dir or pass one")
        if self.is_main:
            tensors, skeleton = self.state()
            checkpoints.save_checkpoint(
                directory, tensors, filename=f"step-{self.step:08d}.safetensors",
                config={"train": asdict(self.config), "model": self.model_config},
                extra={"step": self.step, "state": skeleton, "history": dict(self.history)},
            )
        if self.distributed:
            dist.barrier()
        return directory

    def load(self, directory: str | Path) -> None:
        """Restores weights, optimizers, schedulers, RNG states, step and history."""
        ckpt = checkpoints.load_checkpoint(directory)
        extra = ckpt.manifest.get("extra", {})
        if "state" not in extra or "step" not in extra:
            raise checkpoints.CheckpointError(f"{directory} is a model checkpoint, not a training checkpoint "
                                              "(no optimizer state or step); load it with load_pretrained")
        state = _join(extra["state"], ckpt.tensors)
        if set(state["modules"]) != set(self.modules) or set(state["optimizers"]) != set(self.optimizers):
            raise checkpoints.CheckpointError(
                f"{directory} holds modules {sorted(state['modules'])} and optimizers {sorted(state['optimizers'])}; "
                f"this trainer has {sorted(self.modules)} and {sorted(self.optimizers)}")
        for name, module in self.modules.items():
            unwrap(module).load_state_dict(state["modules"][name])
        for name, opt in self.optimizers.items():
            opt.load_state_dict(state["optimizers"][name])
        for name, sched in self.schedulers.items():
            sched.load_state_dict(state["schedulers"][name])
        _set_rng_state(state["rng"])
        self.step = int(extra["step"])
        self.history = History(extra.get("history", {}))

    # -- the loop -------------------------------------------------------------------------------
    def _scalars(self, out: Mapping[str, Any] | None) -> dict[str, float]:
        values = {k: (v.detach().float() if isinstance(v, torch.Tensor) else torch.tensor(float(v)))
                  for k, v in (out or {}).items()}
        if self.distributed and values:
            stacked = torch.stack([v.to(self.device) for v in values.values()])
            dist.all_reduce(stacked)
            stacked /= self.world_size
            values = dict(zip(values, stacked))
        return {k: float(v) for k, v in values.items()}

    def fit(self, batches: Callable[[int], Any] | Iterable[Any]) -> History:
        """Trains from the current step (or the checkpoint's) to ``config.steps``; returns the history.

        Args:
            batches: ``batches(step) -> batch`` (deterministic from the step, so resumption is
                exact) or an iterable, cycled when it runs out (on resume it restarts).
        """
        cfg = self.config
        if cfg.checkpoint_dir and cfg.resume and (Path(cfg.checkpoint_dir) / checkpoints.MANIFEST).is_file():
            self.load(cfg.checkpoint_dir)
        get_batch = batches if callable(batches) else _cycle(batches)
        for module in self.modules.values():
            module.train()
        bar = runtime.progress(range(self.step, cfg.steps), total=cfg.steps, initial=self.step,
                               desc=cfg.desc, disable=not self.is_main)
        for step in bar:
            batch = to_device(get_batch(step), self.device)
            out = self.step_fn(self, batch, step)
            self.step = step + 1
            for sched in self.schedulers.values():
                sched.step()
            if self.step % cfg.log_every == 0 or self.step == cfg.steps:
                scalars = self._scalars(out)
                self.history.record(self.step, scalars)
                if self.is_main and scalars:
                    bar.set_postfix({k: f"{v:.3g}" for k, v in scalars.items()}, refresh=False)
            if cfg.checkpoint_dir and cfg.checkpoint_every and self.step % cfg.checkpoint_every == 0:
                self.save()
            if cfg.callback_every and self.step % cfg.callback_every == 0 and self.step != cfg.steps:
                self._callbacks()
        bar.close()
        if cfg.checkpoint_dir and (not cfg.checkpoint_every or self.step % cfg.checkpoint_every):
            self.save()
        self._callbacks()
        return self.history

    def _callbacks(self) -> None:
        for callback in self.callbacks:
            callback(self, self.step)


def _cycle(iterable: Iterable[Any]) -> Callable[[int], Any]:
    iterator = iter(iterable)

    def next_batch(step: int) -> Any:
        nonlocal iterator
        try:
            return next(iterator)
        except StopIteration:
            iterator = iter(iterable)
            try:
                return next(iterator)
            except StopIteration:
                raise ValueError("batches is an empty iterable: nothing to train on") from None

    return next_batch
