"""``spokenstyle train dcgan``: how chapter 4's DCGAN is trained.

The networks are :mod:`spokenstyle.models.dcgan`; this file is the game they play: one step of
it (:func:`gan_step`: update_D on detached fakes, then update_G, as in Goodfellow et al. 2014's
algorithm 1 with k = 1), the paper's optimisers (:func:`adam_optimizers`), the loop around them
(:func:`train_dcgan`, through :class:`spokenstyle.train.Trainer`) and the recipe that trains
the shipped pair (:func:`train`), scored by :func:`spokenstyle.evaluation.evaluate_images`.
"""

from __future__ import annotations

import copy
import functools
import shutil
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .. import losses
from ..data import pool_batches, real_renders
from ..evaluation import evaluate_images
from ..metrics import frechet_distance
from ..models.dcgan import DCGAN, DCGANConfig, dcgan, to_tanh_range
from ..models.features import extract_features, feature_extractor
from ..runtime import Runtime
from ..train import TrainConfig, Trainer, ema_update_, unwrap

__all__ = ["gan_step", "adam_optimizers", "train_dcgan", "train"]


def gan_step(t, real: torch.Tensor, step: int, *, loss: str = "non_saturating",
             ema_decay: float = 0.999) -> dict[str, torch.Tensor]:
    """One DCGAN step for :class:`spokenstyle.train.Trainer` (modules ``"G"``, ``"D"``, and
    optionally ``"G_ema"``).

    ``real`` is a batch of renders in [0, 1]; it is mapped to tanh's [-1, 1] first, so that D
    compares real and generated images on the same scale. update_D uses detached fakes; update_G
    then scores the same fakes with the freshly updated D (Goodfellow et al. 2014, Alg. 1, k = 1).
    When the trainer holds a ``"G_ema"`` module, it then moves towards G's new weights
    (:func:`~spokenstyle.train.ema_update_`); it is what :func:`train_dcgan` samples from.
    """
    G, D = t.modules["G"], t.modules["D"]
    pair = losses.get_gan_loss(loss)
    x = to_tanh_range(real)  # (B, 3, R, R) in [-1, 1]
    z = torch.randn(x.shape[0], unwrap(G).config.latent_dim, device=x.device)  # (B, latent_dim)
    with t.autocast():
        fake = G(z)  # (B, 3, R, R) in [-1, 1]
        loss_d = pair.d(D(x), D(fake.detach()))  # update_D: no gradient reaches G
    t.optimize("D", loss_d)
    with t.autocast():
        loss_g = pair.g(D(fake))  # update_G
    t.optimize("G", loss_g)
    if "G_ema" in t.modules:
        ema_update_(t.modules["G_ema"], unwrap(G), ema_decay)
    return {"loss_D": loss_d, "loss_G": loss_g}


def adam_optimizers(model: DCGAN, *, lr: float = 2e-4, betas: tuple[float, float] = (0.5, 0.999)) -> dict:
    """One Adam per network with the paper's settings: "learning rate of 0.0002 ... reducing
    [β1] to 0.5 helped stabilize training" (Radford et al. 2016, §4)."""
    return {"G": torch.optim.Adam(model.G.parameters(), lr=lr, betas=betas),
            "D": torch.optim.Adam(model.D.parameters(), lr=lr, betas=betas)}


def train_dcgan(model: DCGAN, batches, *, steps: int, lr: float = 2e-4, betas: tuple[float, float] = (0.5, 0.999),
                loss: str = "non_saturating", ema_decay: float | None = None, lr_decay: bool = False,
                device=None, callbacks=(),
                checkpoint_dir: str | Path | None = None, log_every: int = 1, callback_every: int = 0,
                desc: str = "dcgan"):
    """Trains ``model`` (in place) with :func:`gan_step` and Adam; returns ``(history, G_ema)``.

    Args:
        lr, betas: Adam's, for both networks (the paper: 2e-4 and (0.5, 0.999)).
        loss: a pair of :data:`spokenstyle.losses.GAN_LOSSES`, e.g. ``"non_saturating_smoothed"``
            (one-sided label smoothing for D).
        ema_decay: keep an exponential moving average of G's weights with this decay
            (:func:`~spokenstyle.train.ema_update_`); ``G_ema`` is then that average (in eval mode), else ``None``.
            It is saved with every training checkpoint, so a resumed run continues it.
        lr_decay: decay both learning rates linearly to 0 over the run, so that the game settles
            at the end instead of stopping mid-oscillation.
    """
    modules: dict[str, nn.Module] = {"G": model.G, "D": model.D}
    if ema_decay is not None:
        modules["G_ema"] = copy.deepcopy(model.G).requires_grad_(False)
    optimizers = adam_optimizers(model, lr=lr, betas=betas)
    schedulers = ({name: torch.optim.lr_scheduler.LambdaLR(opt, lambda s: max(0.0, 1.0 - s / steps))
                   for name, opt in optimizers.items()} if lr_decay else None)
    step_fn = functools.partial(gan_step, loss=loss, **({"ema_decay": ema_decay} if ema_decay is not None else {}))
    trainer = Trainer(modules, optimizers, step_fn,
                      TrainConfig(steps=steps, log_every=log_every, callback_every=callback_every, desc=desc,
                                  checkpoint_dir=str(checkpoint_dir) if checkpoint_dir else None,
                                  checkpoint_every=500 if checkpoint_dir else 0),
                      schedulers=schedulers, callbacks=callbacks, device=device, model_config=asdict(model.config))
    history = trainer.fit(batches)
    g_ema = trainer.modules.get("G_ema")
    return history, (g_ema.eval() if g_ema is not None else None)


def train(out_dir: str | Path, *, runtime: Runtime) -> dict[str, Any]:
    """``spokenstyle train dcgan``: a 32 px DCGAN on every ShapeScenes style, evaluated with the
    metric feature extractor against the real-vs-real baseline, saved to ``out_dir``.

    The budget row ``dcgan_all_styles`` sets the recipe. With ``ema`` the saved ``G`` is the
    exponential moving average of the generator's weights (what the samples and metrics come
    from) and ``D`` the discriminator it was trained against. Every ``curve_every`` steps the FD
    of G and of its average, ``eval`` samples against held-out real renders, is measured and
    stored in the manifest (``extra["fd_curve"]``: [step, FD of G, FD of the average]).
    """
    b = runtime.budget("dcgan_all_styles")
    style = b.style or None
    images, _, _ = real_renders(b.pool, split="train", style=style, size=b.resolution)
    config = DCGANConfig(resolution=b.resolution, g_width=b.width, d_width=b.width, spectral_norm=b.spectral_norm)
    model = dcgan(config=config)
    run_dir = runtime.run_dir("dcgan", "dcgan_all_styles")
    extractor = feature_extractor(weights="features").to(runtime.device)
    reference = extract_features(extractor, real_renders(b.eval, split="real_a", style=style,
                                                         size=b.resolution)[0].to(runtime.device))

    def fd_of(G: nn.Module) -> float:  # FD of eval samples of one generator, fixed latents
        fake = G.generate(b.eval, generator=torch.Generator().manual_seed(runtime.seed))
        return frechet_distance(reference, extract_features(extractor, fake))

    def record_fd(trainer, step: int) -> None:  # a Trainer callback; the curve lives in the history (resumable)
        G, G_ema = unwrap(trainer.modules["G"]), trainer.modules.get("G_ema")
        point = [step, fd_of(G), fd_of(G_ema) if G_ema is not None else None]
        curve = trainer.history.setdefault("fd_curve", [])
        if not curve or curve[-1][0] != step:
            curve.append(point)

    t0 = time.perf_counter()
    history, g_ema = train_dcgan(model, pool_batches(images, b.batch_size, seed=runtime.seed),
                                 steps=b.steps, lr=b.lr, betas=tuple(b.betas), loss=b.loss, ema_decay=b.ema,
                                 lr_decay=b.lr_decay, device=runtime.device,
                                 callbacks=[record_fd], callback_every=b.curve_every,
                                 checkpoint_dir=run_dir, log_every=10)
    train_seconds = time.perf_counter() - t0  # the FD curve's measurements included
    if g_ema is not None:
        model.G.load_state_dict(g_ema.state_dict())  # ship the average: it is what samples come from
    fake = model.G.generate(b.eval, generator=torch.Generator().manual_seed(runtime.seed))
    report = evaluate_images(fake, style=style, label="DCGAN", extractor=extractor)
    print(report)
    scores: dict[str, Any] = report.as_dict()
    scores.update(fd_real_vs_real_sd=report["FD"].baseline_sd, baseline_sets=report["FD"].baseline_sets,
                  loss_D=history.mean("loss_D", last=20), loss_G=history.mean("loss_G", last=20),
                  steps=b.steps, profile=runtime.profile, device=str(runtime.device),
                  eval_samples=b.eval, train_pool=b.pool, train_seconds=round(train_seconds, 1),
                  torch_threads=torch.get_num_threads())
    model.cpu()
    recipe = {k: v for k, v in b.to_dict().items()
              if k in ("steps", "batch_size", "lr", "betas", "loss", "spectral_norm", "ema", "lr_decay", "width",
                       "resolution")}
    model.save_pretrained(out_dir, metrics=scores,
                          extra={"data": f"ShapeScenes split 'train' (seeds 0..{b.pool - 1}), "
                                         f"{'style ' + style if style else 'all styles (seed % 6)'}, "
                                         f"{b.resolution} px",
                                 "feature_extractor": "features (shipped)",
                                 "generator": (f"G is the exponential moving average (decay {b.ema}) of the "
                                               "trained generator's weights" if g_ema is not None else
                                               "G is the trained generator"),
                                 "recipe": recipe,
                                 "fd_curve": history.get("fd_curve", [])})
    shutil.rmtree(run_dir, ignore_errors=True)
    return scores

