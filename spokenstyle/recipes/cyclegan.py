"""``spokenstyle train cyclegan_*``: how chapter 5's translators are trained.

The networks are :mod:`spokenstyle.models.cyclegan`; this file holds everything about training
them: the image pool of past fakes (:class:`ImagePool`, Shrivastava et al. 2017), the average of
the generators' weights (:class:`GeneratorEMA`), one step of the game (:func:`cycle_step`:
update_G with the adversarial, cycle and identity terms, then update_D on pooled fakes), the
reference's optimisers and schedule, the loop (:func:`train_cyclegan`), snapshots for the
training animation, and the recipes: one per style pair (:data:`PAIRS`, :func:`train_pair`) and
photos ↔ painterly (:func:`train_photo`), each scored by :mod:`spokenstyle.evaluation`.
"""

from __future__ import annotations

import itertools
import random
import shutil
import time
from dataclasses import asdict
from functools import partial
from pathlib import Path
from typing import Any, Callable

import torch


from .. import losses
from ..budgets import CycleGANBudget
from ..checkpoints import read_manifest, shipped_path
from ..data import photo_batches, unpaired_batches
from ..evaluation import evaluate_photo_translation, score_translator
from ..models.cyclegan import CycleGAN, CycleGANConfig, ResnetGenerator, cyclegan
from ..models.dcgan import to_tanh_range
from ..models.judge import SceneJudge
from ..runtime import Runtime
from ..train import TrainConfig, Trainer, unwrap

__all__ = [
    "ImagePool",
    "GeneratorEMA",
    "l1_weight",
    "small_object_weights",
    "patch_nce_loss",
    "cycle_step",
    "adam_optimizers",
    "linear_decay",
    "train_cyclegan",
    "TranslationSnapshots",
    "PAIRS",
    "ABLATION_VARIANTS",
    "ABLATION_RULE",
    "train_variant",
    "screen_ablation",
    "choose_ablation_variant",
    "config_from_budget",
    "train_pair",
    "train_flat_comic",
    "train_flat_pixel",
    "train_photo",
]


class ImagePool:
    """A buffer of past generated images (Shrivastava et al. 2017; reference ``util/image_pool.py``).

    ``query(images)`` returns a batch of the same size: while the pool is not full every image
    is stored and returned as is; afterwards each image is, with probability ½, swapped for a
    random stored one (which is returned; the new image takes its place), else returned as is.
    D thus sees a history of the generator, not only its latest version. The draws use Python's
    ``random``, which the trainer seeds and checkpoints; the pool's contents are not
    checkpointed (a resumed run starts with an empty pool). ``size = 0`` disables it.
    """

    def __init__(self, size: int = 50) -> None:
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise ValueError(f"pool size must be a non-negative int, got {size!r}")
        self.size = size
        self.images: list[torch.Tensor] = []

    def __len__(self) -> int:
        return len(self.images)

    @torch.no_grad()
    def query(self, images: torch.Tensor) -> torch.Tensor:
        if not isinstance(images, torch.Tensor) or images.dim() < 1:
            raise ValueError("query expects a batch tensor (B, ...)")
        if self.size == 0:
            return images
        out = []
        for image in images.detach():
            if len(self.images) < self.size:
                self.images.append(image.clone())
                out.append(image)
            elif random.random() < 0.5:
                k = random.randrange(self.size)
                out.append(self.images[k].clone())
                self.images[k] = image.clone()
            else:
                out.append(image)
        return torch.stack(out)


class GeneratorEMA:
    """An exponential moving average of both generators' weights (Polyak averaging; Karras et al.
    2018 average G this way for evaluation, Yazıcı et al. 2019 measure why it helps GANs).

    GAN training does not converge to a point: G circles around an equilibrium, and each step's
    weights carry that step's artefacts. ``update()`` after every generator step keeps
    ``avg = decay * avg + (1 - decay) * weights``; :meth:`copy_to` puts the average into a model.
    It costs one pass over the parameters per step and changes nothing in training. Like the
    pool, it is not checkpointed (a resumed run restarts it from the current weights).
    """

    def __init__(self, model: "CycleGAN", decay: float = 0.999) -> None:
        if not isinstance(model, CycleGAN):
            raise TypeError(f"model must be a CycleGAN, got {type(model).__name__}")
        if not 0.0 < decay < 1.0:
            raise ValueError(f"decay must be in (0, 1), got {decay!r}")
        self.decay = decay
        self.live = [p for g in (model.G_AB, model.G_BA) for p in g.parameters()]
        self.average = [p.detach().clone() for p in self.live]
        self.updates = 0

    @torch.no_grad()
    def update(self) -> None:
        for avg, p in zip(self.average, self.live):
            if avg.device != p.device:  # the trainer moved the model after this was made
                avg.data = avg.data.to(p.device)
            avg.lerp_(p.detach(), 1.0 - self.decay)
        self.updates += 1

    @torch.no_grad()
    def copy_to(self, model: "CycleGAN") -> None:
        """Loads the averaged weights into ``model``'s two generators (the same architecture)."""
        params = [p for g in (model.G_AB, model.G_BA) for p in g.parameters()]
        if len(params) != len(self.average) or any(p.shape != a.shape for p, a in zip(params, self.average)):
            raise ValueError("copy_to needs a CycleGAN of the architecture the average was made for")
        for p, avg in zip(params, self.average):
            p.copy_(avg.to(p.device))


def l1_weight(step: int, warmup: int) -> float:
    """The factor on λ (cycle) and 0.5 λ (identity) at ``step``: linear from 0 to 1 over the first
    ``warmup`` steps, then 1 (``warmup = 0``: always 1, the reference)."""
    if not isinstance(warmup, int) or isinstance(warmup, bool) or warmup < 0:
        raise ValueError(f"warmup must be a non-negative int of steps, got {warmup!r}")
    return 1.0 if warmup == 0 else min(1.0, step / warmup)


def _noisy(images: torch.Tensor, std: float) -> torch.Tensor:
    """``images`` plus Gaussian noise of ``std`` (none when 0): what the way back sees of a translation."""
    return images + std * torch.randn_like(images) if std > 0 else images


@torch.no_grad()
def small_object_weights(images: torch.Tensor, *, window: int = 15, threshold: float = 0.25) -> torch.Tensor:
    """A per-pixel weight map (B, 1, H, W) that gives each small object about as much weight as a
    ``window`` × ``window`` patch of a large one, computed from the pictures' own pixels (no label,
    no mask from the renderer): what :func:`cycle_step`'s ``lambda_small`` term weights its L1 by.

    1. *foreground*: pixels whose colour differs from the picture's median colour (its
       background, since objects cover a minority of the canvas) by more than ``threshold`` in
       some channel (pictures in [-1, 1], so 0.25 is an eighth of the range: a halftone dot or a
       checkerboard of the background stays below it, a coloured object does not);
    2. *local density*: the share of foreground in the ``window`` around each pixel;
    3. weight = foreground / density: a pixel of an object smaller than the window gets about
       window² / area, one inside a large object about 1; the map is scaled to mean 1 per picture
       (all zeros where nothing stands out).

    Why: an L1 term averages over pixels, so a 5-pixel object weighs 5 / 4,096 of a 64 px
    picture and the background most of the loss; chapter 5 found the translators losing exactly
    the small objects.
    """
    if not isinstance(images, torch.Tensor) or images.dim() != 4:
        raise ValueError(f"images must be (B, C, H, W), got {getattr(images, 'shape', type(images).__name__)}")
    if not isinstance(window, int) or isinstance(window, bool) or window < 1 or window % 2 == 0:
        raise ValueError(f"window must be a positive odd int, got {window!r}")
    background = images.flatten(2).median(dim=2).values[:, :, None, None]  # (B, C, 1, 1)
    fg = ((images - background).abs().amax(1, keepdim=True) > threshold).float()  # (B, 1, H, W)
    density = torch.nn.functional.avg_pool2d(fg, window, stride=1, padding=window // 2, count_include_pad=False)
    weight = fg / density.clamp_min(1.0 / window ** 2)
    mean = weight.mean((1, 2, 3), keepdim=True)
    return torch.where(mean > 0, weight / mean.clamp_min(1e-12), torch.zeros_like(weight))


def patch_nce_loss(G: ResnetGenerator, P, source: torch.Tensor, translation: torch.Tensor, *,
                   config: CycleGANConfig) -> torch.Tensor:
    """PatchNCE (Park et al. 2020, CUT): the InfoNCE loss that a patch of ``translation`` is more
    like the patch of ``source`` at the same place than like the other sampled patches of it, in
    ``G``'s own encoder features (:meth:`ResnetGenerator.encode`) after the projection heads ``P``
    (a :class:`~spokenstyle.models.cyclegan.PatchProjector`); averaged over the encoder's maps.

    As in CUT's ``PatchNCELoss``: ``config.nce_patches`` locations per map, the same in source and
    translation; negatives from the same picture only; the source's side is detached (the keys);
    logits divided by ``config.nce_temperature``; cross-entropy with the positive as the class.
    Both pictures in [-1, 1].
    """
    feats_q = G.encode(translation)
    feats_k = G.encode(source)
    keys, ids = P(feats_k, config.nce_patches)
    queries, _ = P(feats_q, config.nce_patches, ids)
    total = torch.zeros((), device=source.device)
    b = source.shape[0]
    for q, k in zip(queries, keys):
        k = k.detach()
        n = q.shape[0] // b
        pos = (q * k).sum(1, keepdim=True)  # (B*n, 1)
        neg = torch.bmm(q.view(b, n, -1), k.view(b, n, -1).transpose(1, 2))  # (B, n, n)
        eye = torch.eye(n, dtype=torch.bool, device=q.device)[None]
        neg = neg.masked_fill(eye, -10.0).flatten(0, 1)  # (B*n, n): the diagonal is the positive
        logits = torch.cat([pos, neg], 1) / config.nce_temperature
        target = torch.zeros(logits.shape[0], dtype=torch.long, device=q.device)
        total = total + torch.nn.functional.cross_entropy(logits, target)
    return total / len(queries)


def cycle_step(t, batch: dict[str, torch.Tensor], step: int, *, config: CycleGANConfig,
               pools: tuple[ImagePool, ImagePool], warmup: int = 0,
               ema: GeneratorEMA | None = None) -> dict[str, torch.Tensor]:
    """One CycleGAN step for :class:`spokenstyle.train.Trainer` (modules ``G_AB``, ``G_BA``,
    ``D_A``, ``D_B``; optimizers ``"G"`` over both generators and ``"D"`` over both discriminators).

    ``batch`` holds unpaired ``image_a`` and ``image_b`` in [0, 1]. The order is the reference's:
    update_G (adversarial + cycle + identity) with D fixed, then update_D on detached fakes
    drawn through the pools. ``warmup`` > 0 ramps the cycle and identity weights from 0 to
    λ and 0.5 λ over that many steps (:func:`l1_weight`; not in the reference, see
    :func:`train_cyclegan`). ``ema``, when given, is updated after the generator step.

    The options of chapter 11's ablation, each off by default (the step is then the one above,
    operation for operation): ``config.lambda_nce`` adds PatchNCE (:func:`patch_nce_loss`) for
    both translations and, as CUT's identity term, for each generator on its own target domain
    (``t.modules`` then holds the heads ``P_AB``, ``P_BA``); ``config.lambda_cycle = 0`` drops the
    cycle term (and with it the identity L1, whose weight is a fraction of λ): PatchNCE *in
    place of* the cycle, CUT's objective; ``config.lambda_small`` adds the L1 between each
    translation and its source weighted by :func:`small_object_weights`. The extra terms ramp up
    with the same ``warmup`` factor as the L1 terms (they too hold at the identity).
    """
    G_AB, G_BA, D_A, D_B = (t.modules[k] for k in ("G_AB", "G_BA", "D_A", "D_B"))
    ramp = l1_weight(step, warmup)
    lam, lam_id = ramp * config.lambda_cycle, ramp * config.lambda_cycle * config.lambda_identity
    real_a, real_b = to_tanh_range(batch["image_a"]), to_tanh_range(batch["image_b"])  # (B, 3, R, R)
    zero = torch.zeros((), device=real_a.device)
    # update_G: both translations, both cycles, both identities
    with t.autocast():
        fake_b = G_AB(real_a)  # A → B
        fake_a = G_BA(real_b)  # B → A
        loss_cycle = (losses.cycle_loss(G_BA(_noisy(fake_b, config.cycle_noise)), real_a)
                      + losses.cycle_loss(G_AB(_noisy(fake_a, config.cycle_noise)), real_b)
                      if config.lambda_cycle > 0 else zero)
        with_idt = config.lambda_identity > 0 and config.lambda_cycle > 0
        # each generator on a picture already in its target domain (the identity term; CUT's NCE identity)
        same_b = G_AB(real_b) if with_idt or config.lambda_nce > 0 else None
        same_a = G_BA(real_a) if with_idt or config.lambda_nce > 0 else None
        loss_idt = (losses.identity_loss(same_b, real_b) + losses.identity_loss(same_a, real_a)
                    if with_idt else zero)
        # 2 x the book's ½-scaled LSGAN term = the reference's MSE(D(G(x)), 1)
        loss_adv = 2 * (losses.lsgan_g_loss(D_B(fake_b)) + losses.lsgan_g_loss(D_A(fake_a)))
        loss_g = loss_adv + lam * loss_cycle + lam_id * loss_idt
        extra: dict[str, torch.Tensor] = {}
        if config.lambda_nce > 0:  # CUT: NCE on the translation and, as its identity term, on the other domain
            P_AB, P_BA = t.modules["P_AB"], t.modules["P_BA"]
            extra["loss_nce"] = 0.5 * (patch_nce_loss(G_AB, P_AB, real_a, fake_b, config=config)
                                       + patch_nce_loss(G_AB, P_AB, real_b, same_b, config=config)
                                       + patch_nce_loss(G_BA, P_BA, real_b, fake_a, config=config)
                                       + patch_nce_loss(G_BA, P_BA, real_a, same_a, config=config))
            loss_g = loss_g + ramp * config.lambda_nce * extra["loss_nce"]
        if config.lambda_small > 0:  # the translation keeps its source's small objects (label-free weights)
            extra["loss_small"] = ((small_object_weights(real_a) * (fake_b - real_a).abs()).mean()
                                   + (small_object_weights(real_b) * (fake_a - real_b).abs()).mean())
            loss_g = loss_g + ramp * config.lambda_small * extra["loss_small"]
    t.optimize("G", loss_g)
    if ema is not None:
        ema.update()
    # update_D: detached fakes, through the pools (the reference halves each D's loss: ½ in lsgan_d_loss)
    with t.autocast():
        pool_a, pool_b = pools
        loss_d_a = losses.lsgan_d_loss(D_A(real_a), D_A(pool_a.query(fake_a.detach())))
        loss_d_b = losses.lsgan_d_loss(D_B(real_b), D_B(pool_b.query(fake_b.detach())))
        loss_d = loss_d_a + loss_d_b
    t.optimize("D", loss_d)
    return {"loss_G": loss_g, "loss_adv": loss_adv, "loss_cycle": loss_cycle, "loss_idt": loss_idt,
            "loss_D_A": loss_d_a, "loss_D_B": loss_d_b, **extra}


def _generator_side(model: CycleGAN) -> dict[str, torch.nn.Module]:
    """The modules the generators' optimiser trains: both generators, and PatchNCE's heads if any."""
    out = {"G_AB": model.G_AB, "G_BA": model.G_BA}
    if hasattr(model, "P_AB"):
        out.update(P_AB=model.P_AB, P_BA=model.P_BA)
    return out


def adam_optimizers(model: CycleGAN, *, lr: float = 2e-4, betas: tuple[float, float] = (0.5, 0.999)) -> dict:
    """The reference's optimisers: one Adam over both generators (and PatchNCE's heads, as CUT
    trains them at the generators' rate), one over both discriminators."""
    g_params = itertools.chain(*(m.parameters() for m in _generator_side(model).values()))
    return {"G": torch.optim.Adam(g_params, lr=lr, betas=betas),
            "D": torch.optim.Adam(itertools.chain(model.D_A.parameters(), model.D_B.parameters()), lr=lr, betas=betas)}


def linear_decay(optimizer: torch.optim.Optimizer, steps: int, decay_from: float = 0.5):
    """The reference's schedule: constant lr for the first ``decay_from`` of training, then
    linearly to zero at ``steps``."""
    start = int(steps * decay_from)
    span = max(1, steps - start)
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: 1.0 - max(0, s - start) / span)


def train_cyclegan(model: CycleGAN, batches: Callable[[int], dict], *, steps: int, lr: float = 2e-4,
                   warmup: int = 0, ema: GeneratorEMA | None = None, device=None, callbacks=(),
                   callback_every: int = 0, log_every: int = 1,
                   checkpoint_dir: str | Path | None = None, desc: str = "cyclegan"):
    """Trains ``model`` in place with :func:`cycle_step`, the reference's Adam and lr schedule and
    two image pools; returns the :class:`~spokenstyle.train.History`.

    ``warmup`` (steps; default 0 = the reference) ramps the cycle and identity weights up from 0.
    A generator that starts at the identity (``residual=True``) sits in a local minimum of the
    reference objective: moving one generator towards the other style costs λ times the L1 it
    changes in the round trip before the other generator has learnt to undo it, and gains at
    most 1 in the adversarial term. The ramp lets both generators move first; from ``warmup`` on
    the objective is the reference's. ``ema`` (a :class:`GeneratorEMA` of ``model``) keeps the
    average of the generators' weights; the model itself keeps the last step's."""
    if not isinstance(model, CycleGAN):
        raise TypeError(f"model must be a CycleGAN, got {type(model).__name__}")
    opts = adam_optimizers(model, lr=lr)
    pools = (ImagePool(model.config.pool_size), ImagePool(model.config.pool_size))
    trainer = Trainer({**_generator_side(model), "D_A": model.D_A, "D_B": model.D_B}, opts,
                      partial(cycle_step, config=model.config, pools=pools, warmup=warmup, ema=ema),
                      TrainConfig(steps=steps, log_every=log_every, callback_every=callback_every, desc=desc,
                                  checkpoint_dir=str(checkpoint_dir) if checkpoint_dir else None,
                                  checkpoint_every=500 if checkpoint_dir else 0),
                      schedulers={k: linear_decay(o, steps) for k, o in opts.items()},
                      callbacks=callbacks, device=device, model_config=asdict(model.config))
    return trainer.fit(batches)


class TranslationSnapshots:
    """A trainer callback that keeps the translations of fixed pictures after every call, for
    the sample animation (:func:`spokenstyle.viz.animate`): ``frames[k]`` is (n, 3, R, R) in [0, 1]."""

    def __init__(self, images: torch.Tensor, direction: str = "AB") -> None:
        if direction not in ("AB", "BA"):
            raise ValueError(f"direction must be 'AB' or 'BA', got {direction!r}")
        self.images, self.direction = images, direction
        self.frames: list[torch.Tensor] = []
        self.steps: list[int] = []

    def record(self, generator: ResnetGenerator, step: int) -> None:
        """Keeps ``generator``'s translations of the fixed pictures as the frame of ``step``."""
        self.frames.append(generator.translate(self.images).cpu())
        self.steps.append(step)

    def __call__(self, trainer, step: int) -> None:
        self.record(unwrap(trainer.modules[f"G_{self.direction}"]), step)


PAIRS: dict[str, tuple[str, str]] = {
    # recipe name -> (style A, style B); each trained pair is shipped as spokenstyle/shipped/checkpoints/<name>
    "cyclegan_flat_comic": ("flat", "comic"),  # plain fills ↔ ink outlines on halftone dots
    "cyclegan_flat_pixel": ("flat", "pixel"),  # smooth edges ↔ pixel blocks with outlines on a checkerboard
}


ABLATION_VARIANTS: dict[str, dict[str, Any]] = {
    # chapter 11's ablation of the translators (benchmarks/translator_ablation.py): name -> the fields of
    # the cyclegan_flat_comic budget row it changes (``spokenstyle train ... --set cyclegan_flat_comic.FIELD=VALUE``)
    "shipped": {},  # the shipped recipe as it is
    "identity_0": {"lambda_identity": 0.0},  # no identity term
    "identity_1": {"lambda_identity": 1.0},  # identity weight λ instead of 0.5 λ
    "nce_beside": {"lambda_nce": 1.0},  # PatchNCE (CUT's weight 1) beside the cycle
    "nce_instead": {"lambda_nce": 1.0, "lambda_cycle": 0.0},  # CUT: PatchNCE in place of the cycle and identity L1
    "skip": {"skip": True},  # U-Net skips from encoder to decoder
    "small_objects": {"lambda_small": 5.0},  # the small-object-weighted L1 to the source, at the identity's 0.5 λ
    "patch_34": {"d_layers": 2},  # a PatchGAN D whose scores see 34 px instead of 70 (chapter 5, section 2)
}


def config_from_budget(b: CycleGANBudget) -> CycleGANConfig:
    """The architecture a budget row asks for: its ``g_width``, ``n_blocks``, ``d_width``,
    ``resolution``, ``n_down``, ``d_layers``, ``position``, ``residual``, ``lambda_identity``,
    ``cycle_noise`` and chapter 11's options ``lambda_cycle``, ``skip``, ``lambda_nce`` and
    ``lambda_small`` (:class:`spokenstyle.budgets.CycleGANBudget`)."""
    return CycleGANConfig(resolution=b.resolution, g_width=b.g_width, n_blocks=b.n_blocks, d_width=b.d_width,
                          n_down=b.n_down, d_layers=b.d_layers, position=b.position, residual=b.residual,
                          lambda_identity=b.lambda_identity, cycle_noise=b.cycle_noise,
                          lambda_cycle=b.lambda_cycle, skip=b.skip, lambda_nce=b.lambda_nce,
                          lambda_small=b.lambda_small)


def train_pair(out_dir: str | Path, style_a: str, style_b: str, *, runtime, name: str) -> dict[str, Any]:
    """Trains one CycleGAN-lite between ShapeScenes styles ``style_a`` and ``style_b`` (unpaired
    sampling: even train-split seeds in A, odd ones in B) with the budget row ``name``, scores both
    directions on held-out scenes with the shipped judge and FD, and saves the generators to
    ``out_dir`` (generators only: :meth:`~spokenstyle.models.cyclegan.CycleGAN.save_pretrained`)."""
    b = runtime.budget(name)
    torch.manual_seed(runtime.seed)
    model = cyclegan(config=config_from_budget(b))
    run_dir = runtime.run_dir(name)
    ema = GeneratorEMA(model, b.ema) if b.ema else None
    t0 = time.perf_counter()
    history = train_cyclegan(model, unpaired_batches(b.batch_size, style_a, style_b, b.resolution, seed=runtime.seed),
                             steps=b.steps, lr=b.lr, warmup=b.warmup, ema=ema,
                             device=runtime.device, checkpoint_dir=run_dir, log_every=5 if b.steps < 2000 else 25,
                             desc=name)
    train_s = time.perf_counter() - t0
    model.eval()
    judge = SceneJudge.from_pretrained("judge", device=runtime.device)
    scores: dict[str, Any] = {}
    common = dict(judge=judge, n=b.eval, size=b.resolution, seed=runtime.seed)
    if ema is not None:  # the last step's generators first, for the record; the average is shipped
        scores.update(score_translator(model, style_a, style_b, prefix="last_", **common,
                                       keep=("style_accuracy", "content_accuracy", "l1_to_truth", "ssim_to_truth", "fd")))
        ema.copy_to(model)
    scores.update(score_translator(model, style_a, style_b, **common, baseline_sets=5))
    print({k: round(v, 4) if isinstance(v, float) else v for k, v in scores.items()})
    scores.update(loss_G_first=history.mean("loss_G", last=None) if len(history["loss_G"]) < 4
                  else float(sum(history["loss_G"][:4]) / 4),
                  loss_G_last=history.mean("loss_G", last=4), loss_cycle_last=history.mean("loss_cycle", last=4),
                  steps=b.steps, batch_size=b.batch_size, lr=b.lr, warmup=b.warmup, ema=b.ema,
                  profile=runtime.profile, device=str(runtime.device), train_seconds=round(train_s, 1),
                  eval_scenes=b.eval, torch_threads=torch.get_num_threads())
    model.cpu()
    model.save_pretrained(out_dir, metrics=scores,
                          extra={"pair": [style_a, style_b],
                                 "data": f"ShapeScenes split 'train', unpaired: even seeds in {style_a}, odd "
                                         f"seeds in {style_b}, {b.resolution} px; scored on split 'test'",
                                 "judge": "judge (shipped)", "feature_extractor": _shipped_features(),
                                 **_run_record(runtime, history)})
    shutil.rmtree(run_dir, ignore_errors=True)
    return scores


def train_variant(variant: str | dict[str, Any], *, runtime: Runtime, name: str = "cyclegan_flat_comic",
                  steps: int | None = None, checkpoint_dir: str | Path | None = None,
                  log_every: int | None = None) -> tuple[CycleGAN, Any, CycleGANBudget]:
    """One run of a style pair's recipe (budget row ``name`` in ``runtime``'s profile) with the
    fields of an :data:`ABLATION_VARIANTS` entry (or a dict of fields) changed, and ``steps`` if
    given: the same seeding, data and training as :func:`train_pair`, without its test-set
    scoring and saving. Returns ``(model, history, budget)``; the model holds the average of the
    generators' weights when the budget keeps one (as the shipped translators do), in eval mode.
    Chapter 11 scores such runs on *validation* scenes (``score_translator(..., split="validation")``).
    """
    if name not in PAIRS:
        raise ValueError(f"name must be one of the style pairs {sorted(PAIRS)}, got {name!r}")
    label = variant if isinstance(variant, str) else "custom"
    if isinstance(variant, str):
        if variant not in ABLATION_VARIANTS:
            raise ValueError(f"unknown variant {variant!r}; choose one of {sorted(ABLATION_VARIANTS)} or give a dict of fields")
        variant = ABLATION_VARIANTS[variant]
    b = runtime.budget(name).replace(**variant, **({"steps": steps} if steps is not None else {}))
    style_a, style_b = PAIRS[name]
    torch.manual_seed(runtime.seed)
    model = cyclegan(config=config_from_budget(b))
    ema = GeneratorEMA(model, b.ema) if b.ema else None
    history = train_cyclegan(model, unpaired_batches(b.batch_size, style_a, style_b, b.resolution, seed=runtime.seed),
                             steps=b.steps, lr=b.lr, warmup=b.warmup, ema=ema, device=runtime.device,
                             checkpoint_dir=checkpoint_dir,
                             log_every=log_every or (5 if b.steps < 2000 else 25), desc=f"{name} ({label})")
    if ema is not None:
        ema.copy_to(model)
    return model.eval(), history, b


ABLATION_RULE = (
    "fixed before any run was scored, on validation scenes only, in two stages. A run's content is the lower of "
    "its two directions' content accuracy, its style the lower of their style accuracy. Stage 1 (screen): every "
    "variant trains with seed 0; variants whose style falls more than 0.02 below the shipped recipe's (trained in "
    "the same ablation) are out, and the two eligible variants with the highest content go on. Stage 2: those two "
    "and the shipped recipe train again with seed 1, and a variant's score is the mean over its two seeds. The "
    "finalist with the higher content wins if its style is still within 0.02 of the shipped recipe's and its "
    "content beats the shipped recipe's by more than max(0.02, the spread between the seeds of either of the two); "
    "otherwise the shipped recipe stays. A winner is then retrained on both pairs at the full budget and shipped "
    "only if it beats the shipped translators on validation scenes in the same way; only then are its test scores "
    "reported.")


def _ablation_table(runs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per variant: each run's content and style (the worse direction's), their mean and the seeds' spread."""
    table: dict[str, dict[str, Any]] = {}
    for run in runs:
        v = run["validation"]
        row = table.setdefault(run["variant"], {"contents": [], "styles": [], "seeds": []})
        if run["seed"] in row["seeds"]:
            raise ValueError(f"variant {run['variant']!r} has seed {run['seed']} twice: one run per variant and seed")
        row["contents"].append(min(v["AB_content_accuracy"], v["BA_content_accuracy"]))
        row["styles"].append(min(v["AB_style_accuracy"], v["BA_style_accuracy"]))
        row["seeds"].append(run["seed"])
    if "shipped" not in table:
        raise ValueError("the runs must include the shipped recipe ('shipped'): every variant is judged against it")
    for row in table.values():
        row["content"] = sum(row["contents"]) / len(row["contents"])
        row["style"] = sum(row["styles"]) / len(row["styles"])
        row["content_spread"] = max(row["contents"]) - min(row["contents"])
    return table


def screen_ablation(runs: list[dict[str, Any]], *, style_slack: float = 0.02, finalists: int = 2,
                    screen_seed: int = 0) -> dict[str, Any]:
    """Stage 1 of :data:`ABLATION_RULE`: the ``screen_seed`` runs only. Variants whose style falls more than
    ``style_slack`` below the shipped recipe's are out; the ``finalists`` eligible variants with the highest
    content go on to stage 2 (ties keep the order of the runs). Returns ``{"table", "eligible", "finalists"}``."""
    table = _ablation_table([r for r in runs if r["seed"] == screen_seed])
    base = table["shipped"]
    eligible = [k for k, r in table.items() if k != "shipped" and r["style"] >= base["style"] - style_slack]
    ranked = sorted(eligible, key=lambda k: -table[k]["content"])
    return {"table": table, "eligible": eligible, "finalists": ranked[:finalists]}


def choose_ablation_variant(runs: list[dict[str, Any]], *, style_slack: float = 0.02, min_margin: float = 0.02,
                            finalists: int = 2, seeds: tuple[int, int] = (0, 1)) -> dict[str, Any]:
    """:data:`ABLATION_RULE` applied to runs ``[{"variant", "seed", "validation": {"AB_content_accuracy",
    "BA_content_accuracy", "AB_style_accuracy", "BA_style_accuracy", ...}}, ...]``.

    Stage 1 is :func:`screen_ablation` on the ``seeds[0]`` runs; stage 2 needs both ``seeds`` of the
    shipped recipe and of each finalist. Returns ``{"chosen", "margin", "screen", "eligible", "finalists",
    "pending", "table"}``: ``table`` holds every variant over all its runs (``content``, ``style``, ``content_spread``,
    ``contents``, ``styles``, ``seeds``); while a stage-2 run is missing, ``chosen`` is None and
    ``pending`` lists the ``(variant, seed)`` runs still to train. ``chosen`` is ``"shipped"`` when no
    finalist beats it by the margin.
    """
    screen = screen_ablation(runs, style_slack=style_slack, finalists=finalists, screen_seed=seeds[0])
    table = _ablation_table(runs)
    out: dict[str, Any] = {"chosen": None, "margin": None, "screen": screen["table"], "eligible": screen["eligible"],
                           "finalists": screen["finalists"], "table": table}
    out["pending"] = [(v, s) for v in ["shipped"] + screen["finalists"] for s in seeds if s not in table[v]["seeds"]]
    if out["pending"]:
        return out
    final = _ablation_table([r for r in runs if r["variant"] in ["shipped"] + screen["finalists"] and r["seed"] in seeds])
    base, out["chosen"] = final["shipped"], "shipped"
    kept = [k for k in screen["finalists"] if final[k]["style"] >= base["style"] - style_slack]
    if kept:
        best = max(kept, key=lambda k: final[k]["content"])
        out["margin"] = max(min_margin, final[best]["content_spread"], base["content_spread"])
        if final[best]["content"] - base["content"] > out["margin"]:
            out["chosen"] = best
    return out


def _run_record(runtime: Runtime, history: dict[str, list[float]]) -> dict[str, Any]:
    """What every translator's manifest keeps of its run: the threads it had, and its loss history."""
    note = (f"trained on {torch.get_num_threads()} CPU thread(s) of a shared 2-core machine; see the budget row's "
            "note in spokenstyle.budgets") if runtime.device.type == "cpu" else ""
    return {"note": note, "history": {k: list(v) for k, v in history.items()}}


def _shipped_features() -> str:
    """Which FD feature network scored a run: the shipped ``features`` checkpoint and its sha256."""
    (weights_name, info), = read_manifest(shipped_path("features"))["files"].items()
    return f"features (shipped), {weights_name} sha256 {info['sha256']}"


def _pair_recipe(name: str) -> Callable:
    def recipe(out_dir: str | Path, *, runtime: Runtime) -> dict[str, Any]:
        style_a, style_b = PAIRS[name]
        return train_pair(out_dir, style_a, style_b, runtime=runtime, name=name)

    recipe.__name__ = recipe.__qualname__ = f"train_{name.removeprefix('cyclegan_')}"
    recipe.__doc__ = f"``spokenstyle train {name}``: CycleGAN-lite between {' and '.join(PAIRS[name])} (see :func:`train_pair`)."
    return recipe


train_flat_comic = _pair_recipe("cyclegan_flat_comic")


train_flat_pixel = _pair_recipe("cyclegan_flat_pixel")


def train_photo(out_dir: str | Path, *, runtime: Runtime) -> dict[str, Any]:
    """``spokenstyle train cyclegan_photo``: CycleGAN-lite between photo patches (A) and painterly
    patches of *other* crops (B), unpaired; scored against the painterly filter's output on the
    same held-out patch (ground truth) beside the do-nothing baseline."""
    b = runtime.budget("cyclegan_photo")
    torch.manual_seed(runtime.seed)
    model = cyclegan(config=config_from_budget(b))
    run_dir = runtime.run_dir("cyclegan_photo")
    ema = GeneratorEMA(model, b.ema) if b.ema else None
    t0 = time.perf_counter()
    history = train_cyclegan(model, photo_batches(b.batch_size, size=b.resolution, filter=b.filter, seed=runtime.seed),
                             steps=b.steps, lr=b.lr, warmup=b.warmup, ema=ema, device=runtime.device,
                             checkpoint_dir=run_dir, log_every=5 if b.steps < 2000 else 25, desc="cyclegan_photo")
    train_s = time.perf_counter() - t0
    model.eval()
    last = {}
    if ema is not None:  # the last step's generators, for the record; the average is shipped
        last = evaluate_photo_translation(model.G_AB.translate, filter=b.filter, n=b.eval, size=b.resolution)
        last = {f"last_{k}": last[k] for k in ("l1_to_truth", "ssim_to_truth")}
        ema.copy_to(model)
    scores = evaluate_photo_translation(model.G_AB.translate, filter=b.filter, n=b.eval, size=b.resolution,
                                        back=model.G_BA.translate)
    print(scores, last)
    scores.update(last)
    scores.update(loss_G_last=history.mean("loss_G", last=4), loss_cycle_last=history.mean("loss_cycle", last=4),
                  steps=b.steps, batch_size=b.batch_size, lr=b.lr, warmup=b.warmup, ema=b.ema,
                  profile=runtime.profile, device=str(runtime.device),
                  train_seconds=round(train_s, 1), torch_threads=torch.get_num_threads())
    model.cpu()
    model.save_pretrained(out_dir, metrics=scores,
                          extra={"pair": ["photo", f"painterly ({b.filter})"],
                                 "data": "patches of the photos bundled with scikit-image, scikit-learn and "
                                         f"matplotlib (spokenstyle.data.PHOTO_CREDITS), train region; B = the "
                                         f"'{b.filter}' filter on other crops; scored on the test region",
                                 **_run_record(runtime, history)})
    shutil.rmtree(run_dir, ignore_errors=True)
    return scores

