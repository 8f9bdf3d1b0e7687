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
import math
import shutil
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .. import checkpoints, losses
from ..data import STYLES, pool_batches, real_renders
from ..evaluation import evaluate_images, style_breakdown
from ..metrics import frechet_distance
from ..augment import AdaptiveAugment
from ..augment import augment as augment_batch
from ..models.dcgan import DCGAN, DCGANConfig, dcgan, to_tanh_range
from ..models.features import extract_features, feature_extractor
from ..budgets import DCGANBudget
from ..runtime import Runtime
from ..train import TrainConfig, Trainer, ema_update_, unwrap

__all__ = ["gan_step", "adam_optimizers", "train_dcgan", "config_for", "initial_model", "d_outputs",
           "validation_scores", "check_keep", "best_val_dir", "keep_if_best",
           "load_best_val", "train"]


def gan_step(t, batch: torch.Tensor | tuple[torch.Tensor, torch.Tensor], step: int, *, loss: str = "non_saturating",
             ema_decay: float = 0.999, augment: str = "", r1: float = 0.0) -> dict[str, torch.Tensor]:
    """One DCGAN step for :class:`spokenstyle.train.Trainer` (modules ``"G"``, ``"D"``, and
    optionally ``"G_ema"`` and ``"ada"``).

    ``batch`` is a batch of renders in [0, 1], or ``(renders, style ids)`` for a conditional pair
    (then G draws the same styles, and D judges each picture against its style). The renders are
    mapped to tanh's [-1, 1] first, so that D compares real and generated images on the same
    scale. update_D uses detached fakes; update_G then scores the same fakes with the freshly
    updated D (Goodfellow et al. 2014, Alg. 1, k = 1). Options, all off by default:

    * ``augment``: a DiffAugment policy (``"translation,color"``) applied to every picture D sees,
      real or fake, in both steps (:func:`spokenstyle.augment.augment`); with an ``"ada"`` module
      (:class:`~spokenstyle.augment.AdaptiveAugment`) its transformations apply with its adaptive
      probability instead, which D's scores on the reals then update;
    * ``r1``: the R1 penalty ``r1 / 2 · |∇_x D(x)|²`` on the real pictures (Mescheder et al. 2018);
    * a ``"G_ema"`` module moves towards G's new weights (:func:`~spokenstyle.train.ema_update_`);
      it is what :func:`train_dcgan` samples from.
    """
    G, D = t.modules["G"], t.modules["D"]
    real, y = batch if isinstance(batch, (tuple, list)) else (batch, None)
    ada = t.modules.get("ada")
    aug = ada if ada is not None else (functools.partial(augment_batch, policy=augment) if augment else (lambda v: v))
    pair = losses.get_gan_loss(loss)
    x = to_tanh_range(real)  # (B, 3, R, R) in [-1, 1]
    if r1:
        x = x.detach().requires_grad_(True)
    z = torch.randn(x.shape[0], unwrap(G).config.latent_dim, device=x.device)  # (B, latent_dim)
    with t.autocast():
        fake = G(z, y)  # (B, 3, R, R) in [-1, 1]; y is None for an unconditional pair
        real_scores = D(aug(x), y)
        loss_d = pair.d(real_scores, D(aug(fake.detach()), y))  # update_D: no gradient reaches G
    if r1:  # R1: the gradient of D's real scores with respect to the real pictures
        (grad,) = torch.autograd.grad(real_scores.float().sum(), x, create_graph=True)
        loss_d = loss_d + 0.5 * r1 * grad.float().square().flatten(1).sum(1).mean()
    t.optimize("D", loss_d)
    if ada is not None:
        ada.update(real_scores)
    with t.autocast():
        loss_g = pair.g(D(aug(fake), y))  # update_G
    t.optimize("G", loss_g)
    if "G_ema" in t.modules:
        ema_update_(t.modules["G_ema"], unwrap(G), ema_decay)
    out = {"loss_D": loss_d, "loss_G": loss_g}
    if ada is not None:
        out["ada_p"] = ada.p.detach().clone()
    return out


def adam_optimizers(model: DCGAN, *, lr: float = 2e-4, betas: tuple[float, float] = (0.5, 0.999),
                    d_lr: float | None = None) -> dict:
    """One Adam per network with the paper's settings: "learning rate of 0.0002 ... reducing
    [β1] to 0.5 helped stabilize training" (Radford et al. 2016, §4). ``d_lr`` gives D its own
    learning rate (the two time-scale update rule of Heusel et al. 2017, who prove that a D
    updated faster than G lets the pair converge to a local Nash equilibrium)."""
    return {"G": torch.optim.Adam(model.G.parameters(), lr=lr, betas=betas),
            "D": torch.optim.Adam(model.D.parameters(), lr=d_lr or lr, betas=betas)}


def train_dcgan(model: DCGAN, batches, *, steps: int, lr: float = 2e-4, betas: tuple[float, float] = (0.5, 0.999),
                loss: str = "non_saturating", ema_decay: float | None = None, lr_decay: bool = False,
                augment: str = "", ada_target: float = 0.0, ada_speed: int = 100_000, r1: float = 0.0,
                d_lr: float | None = None, device=None, callbacks=(),
                checkpoint_dir: str | Path | None = None, log_every: int = 1, callback_every: int = 0,
                desc: str = "dcgan"):
    """Trains ``model`` (in place) with :func:`gan_step` and Adam; returns ``(history, G_ema)``.

    Args:
        lr, betas: Adam's, for both networks (the paper: 2e-4 and (0.5, 0.999)).
        d_lr: D's own learning rate (default ``lr``): see :func:`adam_optimizers`.
        loss: a pair of :data:`spokenstyle.losses.GAN_LOSSES`, e.g. ``"non_saturating_smoothed"``
            (one-sided label smoothing for D).
        ema_decay: keep an exponential moving average of G's weights with this decay
            (:func:`~spokenstyle.train.ema_update_`); ``G_ema`` is then that average (in eval mode), else ``None``.
            It is saved with every training checkpoint, so a resumed run continues it.
        lr_decay: decay both learning rates linearly to 0 over the run, so that the game settles
            at the end instead of stopping mid-oscillation.
        augment: a DiffAugment policy for every picture D sees (:mod:`spokenstyle.augment`);
            with ``ada_target`` > 0 its transformations apply with ADA's adaptive probability
            (target r, and ``ada_speed`` real pictures for p to go from 0 to 1).
        r1: weight of the R1 penalty on the real pictures (0: none).
    """
    if ada_target and not augment:
        raise ValueError("ada_target needs an augment policy: the transformations whose probability ADA adapts")
    modules: dict[str, nn.Module] = {"G": model.G, "D": model.D}
    if ema_decay is not None:
        modules["G_ema"] = copy.deepcopy(model.G).requires_grad_(False)
    if ada_target:
        modules["ada"] = AdaptiveAugment(augment, target=ada_target, speed=ada_speed)
    optimizers = adam_optimizers(model, lr=lr, betas=betas, d_lr=d_lr)
    schedulers = ({name: torch.optim.lr_scheduler.LambdaLR(opt, lambda s: max(0.0, 1.0 - s / steps))
                   for name, opt in optimizers.items()} if lr_decay else None)
    step_fn = functools.partial(gan_step, loss=loss, augment="" if ada_target else augment, r1=r1,
                                **({"ema_decay": ema_decay} if ema_decay is not None else {}))
    trainer = Trainer(modules, optimizers, step_fn,
                      TrainConfig(steps=steps, log_every=log_every, callback_every=callback_every, desc=desc,
                                  checkpoint_dir=str(checkpoint_dir) if checkpoint_dir else None,
                                  checkpoint_every=500 if checkpoint_dir else 0),
                      schedulers=schedulers, callbacks=callbacks, device=device, model_config=asdict(model.config))
    history = trainer.fit(batches)
    g_ema = trainer.modules.get("G_ema")
    return history, (g_ema.eval() if g_ema is not None else None)


def config_for(b: DCGANBudget) -> DCGANConfig:
    """The pair a ``dcgan_*`` budget trains: its resolution, widths, D's normalisation and classes."""
    return DCGANConfig(resolution=b.resolution, g_width=b.width, d_width=b.d_width or b.width,
                       spectral_norm=b.spectral_norm, n_classes=b.n_classes)


@torch.no_grad()
def d_outputs(D: nn.Module, seen: torch.Tensor, unseen: torch.Tensor, *, y_seen: torch.Tensor | None = None,
              y_unseen: torch.Tensor | None = None, batch_size: int = 500) -> tuple[float, float]:
    """D's mean raw score on real pictures it was trained on (``seen``) and on real pictures it
    never saw (``unseen``), both in [0, 1] (class ids ``y_*`` for a conditional D).

    The gap between the two is how chapter 10 shows D overfitting (Karras et al. 2020, fig. 1b):
    with enough data D scores both alike; with little, D learns the training pictures themselves
    and its score on them drifts away from its score on new ones. D runs in eval mode (spectral
    normalisation's power iteration does not advance), so measuring leaves training unchanged."""
    was_training = D.training
    D.eval()
    device = next(D.parameters()).device
    try:
        means = []
        for x, y in ((seen, y_seen), (unseen, y_unseen)):
            scores = [D(to_tanh_range(chunk.to(device)), None if y is None else y[i: i + batch_size].to(device))
                      for i, chunk in zip(range(0, x.shape[0], batch_size), x.split(batch_size))]
            means.append(float(torch.cat(scores).float().mean()))
    finally:
        D.train(was_training)
    return means[0], means[1]


def initial_model(config: DCGANConfig, init: str | Path | None = None) -> DCGAN:
    """The pair training starts from: DCGAN's random init, or (``init``: a shipped name or a
    checkpoint folder) a trained pair to fine-tune, whose architecture must be ``config``'s."""
    if not init:
        return dcgan(config=config)
    model = DCGAN.from_pretrained(init)
    differ = {k: (v, getattr(config, k)) for k, v in asdict(model.config).items() if getattr(config, k) != v}
    if differ:
        raise ValueError(f"the checkpoint {str(init)!r} has another architecture than the budget asks for: "
                         + ", ".join(f"{k} {a!r} (budget: {b!r})" for k, (a, b) in differ.items())
                         + "; set the budget's fields to the checkpoint's to fine-tune it")
    return model


def _classes(G: nn.Module, n: int, style: str | None) -> torch.Tensor | None:
    """The class ids a generator of one ``style`` draws (None: G's default, every class in turn)."""
    if style is None or not unwrap(G).config.conditional:
        return None
    return torch.full((n,), STYLES.index(style), dtype=torch.long)


def validation_scores(G: nn.Module, extractor: nn.Module, *, n: int, size: int, seed: int,
                      style: str | None = None, truncation: float | None = None) -> dict[str, float]:
    """The scores a selection rule may look at: FD, KID, precision, recall and confident share of
    ``n`` samples (latents seeded ``seed + 1``, not the test samples' ``seed``; truncated at
    ``truncation`` if given) against real renders of the ``validation`` seed range (two disjoint
    sets: reference and baseline; of one ``style`` if given), never the test sets ``real_a`` /
    ``real_b`` that the manifest's headline scores use."""
    fake = G.generate(n, y=_classes(G, n, style), generator=torch.Generator().manual_seed(seed + 1),
                      truncation=truncation)
    real = (real_renders(n, split="validation", style=style, size=size)[0],
            [real_renders(n, split="validation", style=style, size=size, offset=n)[0]])
    report = evaluate_images(fake, extractor=extractor, real=real, label="validation")
    return {f"val_{k}": v for k, v in report.as_dict().items()}


BEST_VAL_DIR = "best_val"  # in the run folder: the average of G at each new best validation step


def best_val_dir(folder: Path, step: int) -> Path:
    """Where :func:`keep_if_best` keeps the average of G at ``step``: one checkpoint folder per step,
    below the run folder (a training checkpoint replaces the run folder's own weights files, not
    these), so a run resumed from an older checkpoint still finds the step its history names."""
    return Path(folder) / f"G-{step:08d}"


def check_keep(b: DCGANBudget) -> bool:
    """Whether the budget asks to ship the best step on validation scenes (``keep="best_val"``)
    rather than the last one; refuses a ``keep`` it does not know, or ``best_val`` without the
    average of G and an FD curve to choose from."""
    if b.keep not in ("last", "best_val"):
        raise ValueError(f"keep must be 'last' or 'best_val', got {b.keep!r}")
    if b.keep == "best_val" and not (b.curve_every and b.ema):
        raise ValueError("keep='best_val' chooses among the average's FD curve: it needs curve_every > 0 and ema "
                         f"(got curve_every={b.curve_every}, ema={b.ema})")
    return b.keep == "best_val"


def keep_if_best(history: dict, step: int, val_fd: float, G_ema: nn.Module, folder: Path) -> bool:
    """Appends ``[step, val_fd]`` to ``history["val_fd_curve"]``; if it is the lowest so far, saves
    ``G_ema`` to :func:`best_val_dir` (:func:`~spokenstyle.checkpoints.save_pretrained`: atomic,
    sha256 in its manifest) and sets ``history["best_val"] = [step, val_fd]``. A NaN FD (a diverged
    step) is recorded but never kept. Returns whether it was the best."""
    history.setdefault("val_fd_curve", []).append([step, val_fd])
    best = history.get("best_val")
    if math.isnan(val_fd) or (best is not None and not val_fd < best[1]):
        return False
    checkpoints.save_pretrained(G_ema, best_val_dir(folder, step), extra={"step": step, "val_fd": val_fd})
    history["best_val"] = [step, val_fd]
    return True


def load_best_val(history: dict, folder: Path, G: nn.Module) -> int:
    """Loads into ``G`` the average :func:`keep_if_best` kept for the step ``history["best_val"]``
    names (verified by :func:`~spokenstyle.checkpoints.load_pretrained`); returns that step."""
    if not history.get("best_val"):
        raise RuntimeError("keep='best_val': no curve step had a finite validation FD, so there is no step to keep")
    step = history["best_val"][0]
    checkpoints.load_pretrained(G, best_val_dir(folder, step))
    return step


def train(out_dir: str | Path, *, runtime: Runtime) -> dict[str, Any]:
    """``spokenstyle train dcgan``: a 32 px DCGAN on every ShapeScenes style, evaluated with the
    metric feature extractor against the real-vs-real baseline, saved to ``out_dir``.

    The budget row ``dcgan_all_styles`` sets the recipe (:class:`~spokenstyle.budgets.DCGANBudget`:
    loss, spectral normalisation, the average of G's weights, conditioning on the style,
    augmentation, R1). With ``ema`` the saved ``G`` is the exponential moving average of the
    generator's weights (what the samples and metrics come from) and ``D`` the discriminator it
    was trained against. Every ``curve_every`` steps the FD of G and of its average, ``eval``
    samples against held-out real renders, is measured and stored in the manifest
    (``extra["fd_curve"]``: [step, FD of G, FD of the average]), and so is D's mean score on
    training reals and on held-out reals (``extra["d_outputs"]``: [step, seen, unseen], see
    :func:`d_outputs`). The manifest also holds the
    scores on the ``validation`` seed range (:func:`validation_scores`: what runs are compared
    by) and, per style, the share, confident share and (conditional) style accuracy of the samples.

    With ``keep="best_val"`` each curve step also measures the average's FD against a third set of
    validation renders (``extra["val_fd_curve"]``), and the average at the step where it was lowest
    is shipped (``extra["kept_step"]``) instead of the last one: the step is chosen without the test
    sets, and on validation renders that :func:`validation_scores` does not use.
    """
    b = runtime.budget("dcgan_all_styles")
    style = b.style or None
    keep_best = check_keep(b)
    images, _, styles = real_renders(b.pool, split="train", style=style, size=b.resolution)
    config = config_for(b)
    model = initial_model(config, b.init)
    run_dir = runtime.run_dir("dcgan", "dcgan_all_styles")
    extractor = feature_extractor(weights="features").to(runtime.device)
    reference = extract_features(extractor, real_renders(b.eval, split="real_a", style=style,
                                                         size=b.resolution)[0].to(runtime.device))
    unseen, _, unseen_styles = real_renders(min(b.eval, b.pool), split="validation", style=style, size=b.resolution)
    seen, seen_styles = images[: unseen.shape[0]], styles[: unseen.shape[0]]

    # keep="best_val": the step is chosen on a third validation set (offset 2 * eval), disjoint from the
    # two that validation_scores compares runs on, so choosing the step does not flatter the run's val FD
    val_reference = (extract_features(extractor, real_renders(b.eval, split="validation", style=style,
                                                              size=b.resolution, offset=2 * b.eval)[0].to(runtime.device))
                     if keep_best else None)
    best_dir = run_dir / BEST_VAL_DIR

    def features_of(G: nn.Module) -> torch.Tensor:  # features of eval samples of one generator, fixed latents
        fake = G.generate(b.eval, y=_classes(G, b.eval, style), generator=torch.Generator().manual_seed(runtime.seed))
        return extract_features(extractor, fake)

    def record_fd(trainer, step: int) -> None:  # a Trainer callback; the curves live in the history (resumable)
        G, G_ema = unwrap(trainer.modules["G"]), trainer.modules.get("G_ema")
        curve = trainer.history.setdefault("fd_curve", [])
        if not curve or curve[-1][0] != step:
            feats_ema = features_of(G_ema) if G_ema is not None else None
            curve.append([step, frechet_distance(reference, features_of(G)),
                          frechet_distance(reference, feats_ema) if feats_ema is not None else None])
            if keep_best:
                keep_if_best(trainer.history, step, frechet_distance(val_reference, feats_ema), G_ema, best_dir)
        labels = (seen_styles, unseen_styles) if config.conditional else (None, None)
        gap = trainer.history.setdefault("d_outputs", [])
        if not gap or gap[-1][0] != step:
            gap.append([step, *d_outputs(unwrap(trainer.modules["D"]), seen, unseen, y_seen=labels[0],
                                         y_unseen=labels[1])])

    batches = pool_batches(images, b.batch_size, seed=runtime.seed, extra=(styles,) if config.conditional else ())
    t0 = time.perf_counter()
    history, g_ema = train_dcgan(model, batches, steps=b.steps, lr=b.lr, betas=tuple(b.betas), loss=b.loss,
                                 ema_decay=b.ema, lr_decay=b.lr_decay, augment=b.augment, ada_target=b.ada_target,
                                 ada_speed=b.ada_speed, r1=b.r1, d_lr=b.d_lr or None, device=runtime.device,
                                 callbacks=[record_fd], callback_every=b.curve_every,
                                 checkpoint_dir=run_dir, log_every=10)
    train_seconds = time.perf_counter() - t0  # the FD curve's measurements included
    if g_ema is not None:
        model.G.load_state_dict(g_ema.state_dict())  # ship the average: it is what samples come from
    if keep_best:  # ... at the step where it was closest to the validation scenes
        load_best_val(history, best_dir, model.G)
    requested = _classes(model.G, b.eval, style)
    if requested is None and config.conditional:
        requested = torch.arange(b.eval) % config.n_classes  # what generate draws by default
    fake = model.G.generate(b.eval, y=requested, generator=torch.Generator().manual_seed(runtime.seed))
    report = evaluate_images(fake, style=style, label="DCGAN", extractor=extractor)
    print(report)
    scores: dict[str, Any] = report.as_dict()
    scores.update(fd_real_vs_real_sd=report["FD"].baseline_sd, baseline_sets=report["FD"].baseline_sets,
                  loss_D=history.mean("loss_D", last=20), loss_G=history.mean("loss_G", last=20),
                  steps=b.steps, profile=runtime.profile, device=str(runtime.device),
                  eval_samples=b.eval, train_pool=b.pool, train_seconds=round(train_seconds, 1),
                  torch_threads=torch.get_num_threads())
    if "ada_p" in history:
        scores["ada_p_last"] = history.last("ada_p")
    breakdown = style_breakdown(fake, extractor, requested=requested)
    scores.update({f"{name}_{k}": v for name, row in breakdown.items() for k, v in row.items()})
    scores.update(validation_scores(model.G, extractor, n=b.eval, size=b.resolution, seed=runtime.seed, style=style))
    model.cpu()
    model.save_pretrained(out_dir, metrics=scores,
                          extra={"data": f"ShapeScenes split 'train' (seeds 0..{b.pool - 1}), "
                                         f"{'style ' + style if style else 'all styles (seed % 6)'}, "
                                         f"{b.resolution} px",
                                 "feature_extractor": "features (shipped)",
                                 "generator": (f"G is the exponential moving average (decay {b.ema}) of the "
                                               "trained generator's weights" if g_ema is not None else
                                               "G is the trained generator"),
                                 "recipe": b.to_dict(),
                                 **({"init": {"from": b.init, "command": checkpoints.read_manifest(
                                     checkpoints.resolve(b.init))["command"]}} if b.init else {}),
                                 "fd_curve": history.get("fd_curve", []),
                                 **({"val_fd_curve": history.get("val_fd_curve", []),
                                     "kept_step": history.get("best_val")[0]} if keep_best else {}),
                                 "d_outputs": history.get("d_outputs", [])})
    shutil.rmtree(run_dir, ignore_errors=True)
    return scores
