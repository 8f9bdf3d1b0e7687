"""DCGAN: the deep convolutional GAN of the book's image chapter, in one file.

A generator G maps a latent vector z ~ N(0, I) to an image through a stack of transposed
convolutions that double the resolution at every step (4 → 8 → … → 32 or 64 px); a
discriminator D mirrors it with strided convolutions that halve the resolution and ends in one
raw score (a logit) per image. The architecture guidelines are the paper's: no pooling and no
fully connected hidden layers, BatchNorm in both networks (except G's output and D's input
layer), ReLU in G with tanh at the output, LeakyReLU(0.2) in D, and weights drawn from
N(0, 0.02).

**Value ranges.** G ends in ``tanh``, so its outputs live in [-1, 1]; ShapeScenes renders, the
metrics and every plotting helper use [0, 1]. The conversion is always explicit:
:func:`to_tanh_range` before real images go into D, :func:`to_unit_range` before samples go
anywhere else. :meth:`Generator.generate` returns [0, 1] images; :meth:`Generator.forward`
returns [-1, 1].

References:
    Radford, Metz & Chintala 2016, "Unsupervised Representation Learning with Deep
    Convolutional Generative Adversarial Networks", https://arxiv.org/abs/1511.06434
    The PyTorch DCGAN example, https://github.com/pytorch/examples/blob/main/dcgan/main.py
    (same layer layout at 64 px; the ``weights_init`` there is the paper's N(0, 0.02)).

Deviations from the paper, each chosen for small CPU-friendly models: the latent is 64-D (the
paper uses 100), the width is configurable (the paper's 64 px generator has 1024 channels at
4 × 4; ours has ``g_width * 8``), and 32 px models drop one block at each end.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .. import checkpoints

__all__ = [
    "DCGANConfig",
    "Generator",
    "Discriminator",
    "DCGAN",
    "dcgan_init_",
    "to_tanh_range",
    "to_unit_range",
    "dcgan_generator",
    "dcgan_discriminator",
    "dcgan",
    "ema_update_",
    "gan_step",
    "adam_optimizers",
    "train_dcgan",
]


# -- value ranges ------------------------------------------------------------------------------

def to_tanh_range(images: torch.Tensor) -> torch.Tensor:
    """[0, 1] images (renders) → [-1, 1] (what G outputs and D is trained on): ``2x - 1``."""
    if not isinstance(images, torch.Tensor) or not images.is_floating_point():
        raise TypeError(f"images must be a floating-point tensor in [0, 1], got {type(images).__name__}")
    return images * 2.0 - 1.0


def to_unit_range(samples: torch.Tensor) -> torch.Tensor:
    """[-1, 1] generator outputs → [0, 1] images (for plots, metrics, classifiers): ``(x + 1) / 2``,
    clamped so that rounding at the tanh's ends never leaves the range."""
    if not isinstance(samples, torch.Tensor) or not samples.is_floating_point():
        raise TypeError(f"samples must be a floating-point tensor in [-1, 1], got {type(samples).__name__}")
    return ((samples + 1.0) * 0.5).clamp(0.0, 1.0)


# -- initialisation ----------------------------------------------------------------------------

def dcgan_init_(module: nn.Module) -> None:
    """DCGAN initialisation, applied with ``model.apply(dcgan_init_)``.

    "All weights were initialized from a zero-centered Normal distribution with standard
    deviation 0.02" (Radford et al. 2016, §4). BatchNorm scales start at N(1, 0.02) and every
    bias at 0, as in the PyTorch DCGAN example.
    """
    if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
        nn.init.normal_(module.weight, 0.0, 0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.BatchNorm2d):
        nn.init.normal_(module.weight, 1.0, 0.02)
        nn.init.zeros_(module.bias)


# -- blocks ------------------------------------------------------------------------------------

class UpBlock(nn.Sequential):
    """Transposed convolution (kernel 4, stride 2, padding 1) doubling H and W → BatchNorm → ReLU.

    Without BatchNorm the convolution gets a bias (BatchNorm's shift makes one redundant).
    """

    def __init__(self, c_in: int, c_out: int, *, batch_norm: bool = True) -> None:
        super().__init__(
            nn.ConvTranspose2d(c_in, c_out, 4, stride=2, padding=1, bias=not batch_norm),  # (B, c_out, 2H, 2W)
            nn.BatchNorm2d(c_out) if batch_norm else nn.Identity(),
            nn.ReLU(inplace=True),
        )


class DownBlock(nn.Sequential):
    """Strided convolution (kernel 4, stride 2, padding 1) halving H and W → BatchNorm → LeakyReLU."""

    def __init__(self, c_in: int, c_out: int, *, batch_norm: bool = True, slope: float = 0.2) -> None:
        super().__init__(
            nn.Conv2d(c_in, c_out, 4, stride=2, padding=1, bias=not batch_norm),  # (B, c_out, H/2, W/2)
            nn.BatchNorm2d(c_out) if batch_norm else nn.Identity(),
            nn.LeakyReLU(slope, inplace=True),
        )


# -- config ------------------------------------------------------------------------------------

@dataclass
class DCGANConfig:
    """The shape of a DCGAN pair. ``asdict(config)`` is stored in every checkpoint."""

    resolution: int = 32  # 32 or 64 px; each doubling adds one block to G and D
    latent_dim: int = 64  # the paper uses 100; ShapeScenes has few factors of variation, 64 is plenty
    channels: int = 3  # RGB, like the renders
    g_width: int = 32  # G's channels just before the output layer; doubled per block towards 4 × 4
    d_width: int = 32  # D's channels after its first layer; doubled per block; 32 keeps the pair < 2 MB at 32 px
    batch_norm: bool = True  # the paper's stabiliser; False reproduces the book's instructive failure
    spectral_norm: bool = False  # D's convolutions spectrally normalised (Miyato et al. 2018); D then has no BatchNorm
    leaky_slope: float = 0.2  # LeakyReLU slope in D (paper, §3)

    def __post_init__(self) -> None:
        if self.resolution not in (32, 64):
            raise ValueError(f"resolution must be 32 or 64, got {self.resolution!r}")
        for name in ("latent_dim", "channels", "g_width", "d_width"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        if not 0.0 <= self.leaky_slope < 1.0:
            raise ValueError(f"leaky_slope must be in [0, 1), got {self.leaky_slope!r}")

    @property
    def n_blocks(self) -> int:
        """Resolution doublings between 4 × 4 and the output, minus the output layer: 2 at 32 px, 3 at 64."""
        return int(math.log2(self.resolution)) - 3


# -- models ------------------------------------------------------------------------------------

class Generator(nn.Module):
    """z (B, latent_dim) → image (B, channels, R, R) in [-1, 1].

    Layout at 32 px with ``g_width = w``: z → 4×4×4w → 8×8×2w → 16×16×w → 32×32×3 (tanh).
    """

    def __init__(self, config: DCGANConfig) -> None:
        super().__init__()
        if not isinstance(config, DCGANConfig):
            raise TypeError(f"config must be a DCGANConfig, got {type(config).__name__}")
        self.config = config
        c = config.g_width * 2 ** config.n_blocks  # channels at 4 × 4
        bn = config.batch_norm
        # project and reshape: a 4 × 4 transposed convolution on a 1 × 1 "image" of z
        layers: list[nn.Module] = [
            nn.ConvTranspose2d(config.latent_dim, c, 4, stride=1, padding=0, bias=not bn),  # (B, c, 4, 4)
            nn.BatchNorm2d(c) if bn else nn.Identity(),
            nn.ReLU(inplace=True),
        ]
        for _ in range(config.n_blocks):
            layers.append(UpBlock(c, c // 2, batch_norm=bn))  # (B, c/2, 2H, 2W)
            c //= 2
        # no BatchNorm on G's output layer (paper, §3): it would pin the image statistics
        layers += [nn.ConvTranspose2d(c, config.channels, 4, stride=2, padding=1), nn.Tanh()]  # (B, 3, R, R)
        self.net = nn.Sequential(*layers)
        self.apply(dcgan_init_)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """(B, latent_dim) → (B, channels, R, R) in [-1, 1] (tanh)."""
        if not isinstance(z, torch.Tensor) or z.dim() != 2 or z.shape[1] != self.config.latent_dim:
            shape = tuple(z.shape) if isinstance(z, torch.Tensor) else type(z).__name__
            raise ValueError(f"z must have shape (B, {self.config.latent_dim}), got {shape}")
        return self.net(z[:, :, None, None])  # (B, latent_dim, 1, 1) → (B, 3, R, R)

    def sample_latent(self, n: int, *, generator: torch.Generator | None = None,
                      device: torch.device | str | None = None) -> torch.Tensor:
        """``n`` latent vectors z ~ N(0, I), (n, latent_dim), drawn on the CPU from ``generator``
        (so the same seed gives the same z on every device) and moved to ``device``."""
        if not isinstance(n, int) or isinstance(n, bool) or n < 1:
            raise ValueError(f"n must be a positive int, got {n!r}")
        device = device if device is not None else next(self.parameters()).device
        return torch.randn(n, self.config.latent_dim, generator=generator).to(device)

    @torch.no_grad()
    def generate(self, n: int | None = None, *, z: torch.Tensor | None = None,
                 generator: torch.Generator | None = None, batch_size: int = 512) -> torch.Tensor:
        """Samples as images in [0, 1] (converted from tanh's [-1, 1]), in eval mode, on G's device.

        Give either ``n`` (z drawn from ``generator``) or ``z`` itself. Returns (n, 3, R, R).
        The model's train/eval mode is restored afterwards.
        """
        if (n is None) == (z is None):
            raise ValueError("give exactly one of n (number of samples) or z (latent vectors)")
        if z is None:
            z = self.sample_latent(n, generator=generator)
        z = z.to(next(self.parameters()).device)
        was_training = self.training
        self.eval()
        try:
            out = torch.cat([to_unit_range(self(chunk)) for chunk in z.split(batch_size)])
        finally:
            self.train(was_training)
        return out


class Discriminator(nn.Module):
    """image (B, channels, R, R) in [-1, 1] → one logit per image, shape (B,).

    Layout at 32 px with ``d_width = w``: 32×32×3 → 16×16×w → 8×8×2w → 4×4×4w → 1 (a 4 × 4
    valid convolution). The output is a raw score: the losses apply the sigmoid themselves.

    With ``config.spectral_norm`` every convolution's weight is divided by its largest singular
    value (Miyato et al. 2018, https://arxiv.org/abs/1802.05957) and D has no BatchNorm, as in
    that paper's "standard CNN"; G is unchanged.
    """

    def __init__(self, config: DCGANConfig) -> None:
        super().__init__()
        if not isinstance(config, DCGANConfig):
            raise TypeError(f"config must be a DCGANConfig, got {type(config).__name__}")
        self.config = config
        c = config.d_width
        # no BatchNorm on D's input layer (paper, §3); none at all under spectral normalisation
        batch_norm = config.batch_norm and not config.spectral_norm
        layers: list[nn.Module] = [
            nn.Conv2d(config.channels, c, 4, stride=2, padding=1),  # (B, w, R/2, R/2)
            nn.LeakyReLU(config.leaky_slope, inplace=True),
        ]
        for _ in range(config.n_blocks):
            layers.append(DownBlock(c, c * 2, batch_norm=batch_norm, slope=config.leaky_slope))
            c *= 2
        layers.append(nn.Conv2d(c, 1, 4, stride=1, padding=0))  # (B, 1, 1, 1)
        self.net = nn.Sequential(*layers)
        self.apply(dcgan_init_)
        if config.spectral_norm:
            # W / σ(W), σ estimated by one power iteration per forward pass: every layer is
            # 1-Lipschitz, so D's score cannot grow steep enough to leave G without a gradient
            for module in self.net:
                for conv in ([module] if isinstance(module, nn.Conv2d) else
                             [m for m in module.children() if isinstance(m, nn.Conv2d)]):
                    nn.utils.spectral_norm(conv)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """(B, channels, R, R) in [-1, 1] → (B,) logits."""
        r, ch = self.config.resolution, self.config.channels
        if not isinstance(images, torch.Tensor) or images.dim() != 4 or tuple(images.shape[1:]) != (ch, r, r):
            shape = tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__
            raise ValueError(f"images must have shape (B, {ch}, {r}, {r}) in [-1, 1], got {shape}")
        return self.net(images).flatten()  # (B,)


class DCGAN(nn.Module):
    """The pair, so that one checkpoint holds both: ``model.G`` and ``model.D``."""

    def __init__(self, config: DCGANConfig) -> None:
        super().__init__()
        self.config = config
        self.G = Generator(config)
        self.D = Discriminator(config)


# -- builders ----------------------------------------------------------------------------------

def _config(config: DCGANConfig | None, overrides: dict[str, Any]) -> DCGANConfig:
    if config is not None and not isinstance(config, DCGANConfig):
        raise TypeError(f"config must be a DCGANConfig or None, got {type(config).__name__}")
    base = asdict(config) if config is not None else {}
    return DCGANConfig(**{**base, **overrides})


def _load_pair(weights: str | Path) -> tuple[DCGAN, checkpoints.Checkpoint]:
    directory = checkpoints.resolve(weights)
    manifest = checkpoints.read_manifest(directory)
    try:
        config = DCGANConfig(**manifest["config"])
    except TypeError as err:
        raise checkpoints.CheckpointError(f"{directory} is not a DCGAN checkpoint: its config does not fit "
                                          f"DCGANConfig ({err})") from err
    model = DCGAN(config)
    ckpt = checkpoints.load_pretrained(model, directory)
    return model, ckpt


def dcgan(*, config: DCGANConfig | None = None, weights: str | Path | None = None, **overrides: Any) -> DCGAN:
    """A DCGAN pair (``.G``, ``.D``) (Radford et al. 2016, https://arxiv.org/abs/1511.06434).

    Args:
        config: the architecture; ``None`` = :class:`DCGANConfig` defaults (32 px). Keyword
            ``overrides`` replace single fields (``dcgan(resolution=64)``).
        weights: ``None`` for DCGAN's random init, the name of a shipped checkpoint (``"dcgan"``,
            see :func:`spokenstyle.checkpoints.shipped`) or a checkpoint folder. With weights the
            architecture comes from the checkpoint and ``config``/``overrides`` must not be given.
    """
    if weights is None:
        return DCGAN(_config(config, overrides))
    if config is not None or overrides:
        raise ValueError("give either weights (the checkpoint fixes the architecture) or config/overrides, not both")
    model, _ = _load_pair(weights)
    return model


def dcgan_generator(*, config: DCGANConfig | None = None, weights: str | Path | None = None,
                    **overrides: Any) -> Generator:
    """The DCGAN generator: z (B, latent_dim) → (B, 3, R, R) in [-1, 1].

    Same arguments as :func:`dcgan`; with ``weights`` it is the trained generator, in eval mode.
    """
    model = dcgan(config=config, weights=weights, **overrides)
    return model.G.eval() if weights is not None else model.G


def dcgan_discriminator(*, config: DCGANConfig | None = None, weights: str | Path | None = None,
                        **overrides: Any) -> Discriminator:
    """The DCGAN discriminator: (B, 3, R, R) in [-1, 1] → (B,) logits. Same arguments as :func:`dcgan`."""
    model = dcgan(config=config, weights=weights, **overrides)
    return model.D.eval() if weights is not None else model.D


# -- training: one step, the paper's optimiser, and the `spokenstyle train dcgan` recipe --------

@torch.no_grad()
def ema_update_(ema: nn.Module, model: nn.Module, decay: float) -> None:
    """``ema ← decay · ema + (1 − decay) · model``, in place, for every parameter and every
    floating-point buffer (BatchNorm's running statistics); integer buffers are copied.

    An exponential moving average of G's weights (Yazıcı et al. 2019, "The Unusual Effectiveness
    of Averaging in GAN Training", https://arxiv.org/abs/1806.04498; used by ProGAN, StyleGAN and
    BigGAN) smooths out the oscillation of the adversarial game: G's weights circle around a good
    point, their average sits nearer to it. ``decay = 0.999`` averages over about 1,000 steps.
    """
    if not 0.0 <= decay < 1.0:
        raise ValueError(f"decay must be in [0, 1), got {decay!r}")
    for e, m in zip(ema.parameters(), model.parameters()):
        e.lerp_(m, 1.0 - decay)
    for e, m in zip(ema.buffers(), model.buffers()):
        e.lerp_(m, 1.0 - decay) if e.is_floating_point() else e.copy_(m)


def gan_step(t, real: torch.Tensor, step: int, *, loss: str = "non_saturating",
             ema_decay: float = 0.999) -> dict[str, torch.Tensor]:
    """One DCGAN step for :class:`spokenstyle.train.Trainer` (modules ``"G"``, ``"D"``, and
    optionally ``"G_ema"``).

    ``real`` is a batch of renders in [0, 1]; it is mapped to tanh's [-1, 1] first, so that D
    compares real and generated images on the same scale. update_D uses detached fakes; update_G
    then scores the same fakes with the freshly updated D (Goodfellow et al. 2014, Alg. 1, k = 1).
    When the trainer holds a ``"G_ema"`` module, it then moves towards G's new weights
    (:func:`ema_update_`); it is what :func:`train_dcgan` samples from.
    """
    from .. import losses

    G, D = t.modules["G"], t.modules["D"]
    pair = losses.get_gan_loss(loss)
    x = to_tanh_range(real)  # (B, 3, R, R) in [-1, 1]
    z = torch.randn(x.shape[0], _unwrap(G).config.latent_dim, device=x.device)  # (B, latent_dim)
    with t.autocast():
        fake = G(z)  # (B, 3, R, R) in [-1, 1]
        loss_d = pair.d(D(x), D(fake.detach()))  # update_D: no gradient reaches G
    t.optimize("D", loss_d)
    with t.autocast():
        loss_g = pair.g(D(fake))  # update_G
    t.optimize("G", loss_g)
    if "G_ema" in t.modules:
        ema_update_(t.modules["G_ema"], _unwrap(G), ema_decay)
    return {"loss_D": loss_d, "loss_G": loss_g}


def _unwrap(module: nn.Module) -> nn.Module:
    return module.module if isinstance(module, nn.parallel.DistributedDataParallel) else module


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
            (:func:`ema_update_`); ``G_ema`` is then that average (in eval mode), else ``None``.
            It is saved with every training checkpoint, so a resumed run continues it.
        lr_decay: decay both learning rates linearly to 0 over the run, so that the game settles
            at the end instead of stopping mid-oscillation.
    """
    import copy
    import functools

    from ..train import Trainer, TrainConfig

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


def train(out_dir: str | Path, *, runtime) -> dict[str, Any]:
    """``spokenstyle train dcgan``: a 32 px DCGAN on every ShapeScenes style, evaluated with the
    metric feature extractor against the real-vs-real baseline, saved to ``out_dir``.

    The budget row ``dcgan_all_styles`` sets the recipe. With ``ema`` the saved ``G`` is the
    exponential moving average of the generator's weights (what the samples and metrics come
    from) and ``D`` the discriminator it was trained against. Every ``curve_every`` steps the FD
    of G and of its average, ``eval`` samples against held-out real renders, is measured and
    stored in the manifest (``extra["fd_curve"]``: [step, FD of G, FD of the average]).
    """
    import shutil
    import time

    from .. import cli, metrics
    from . import features as feat

    b = runtime.budget("dcgan_all_styles")
    style = b["style"] or None
    images, _, _ = feat.real_renders(b["pool"], split="train", style=style, size=b["resolution"])
    config = DCGANConfig(resolution=b["resolution"], g_width=b["width"], d_width=b["width"],
                         spectral_norm=b.get("spectral_norm", False))
    model = dcgan(config=config)
    run_dir = runtime.run_dir("dcgan", "dcgan_all_styles")
    extractor = feat.feature_extractor(weights="features").to(runtime.device)
    reference = feat.extract_features(extractor, feat.real_renders(b["eval"], split="a", style=style,
                                                                   size=b["resolution"])[0].to(runtime.device))

    def fd_of(G: nn.Module) -> float:  # FD of eval samples of one generator, fixed latents
        fake = G.generate(b["eval"], generator=torch.Generator().manual_seed(runtime.seed))
        return metrics.frechet_distance(reference, feat.extract_features(extractor, fake))

    def record_fd(trainer, step: int) -> None:  # a Trainer callback; the curve lives in the history (resumable)
        G, G_ema = _unwrap(trainer.modules["G"]), trainer.modules.get("G_ema")
        point = [step, fd_of(G), fd_of(G_ema) if G_ema is not None else None]
        curve = trainer.history.setdefault("fd_curve", [])
        if not curve or curve[-1][0] != step:
            curve.append(point)

    t0 = time.perf_counter()
    history, g_ema = train_dcgan(model, feat.pool_batches(images, b["batch_size"], seed=runtime.seed),
                                 steps=b["steps"], lr=b["lr"], betas=tuple(b.get("betas", (0.5, 0.999))),
                                 loss=b.get("loss", "non_saturating"), ema_decay=b.get("ema"),
                                 lr_decay=b.get("lr_decay", False), device=runtime.device,
                                 callbacks=[record_fd], callback_every=b["curve_every"],
                                 checkpoint_dir=run_dir, log_every=10)
    train_seconds = time.perf_counter() - t0  # the FD curve's measurements included
    if g_ema is not None:
        model.G.load_state_dict(g_ema.state_dict())  # ship the average: it is what samples come from
    fake = model.G.generate(b["eval"], generator=torch.Generator().manual_seed(runtime.seed))
    report = metrics.evaluate_images(fake, style=style, label="DCGAN", extractor=extractor)
    print(report)
    scores: dict[str, Any] = report.as_dict()
    scores.update(fd_real_vs_real_sd=report["FD"].baseline_sd, baseline_sets=report["FD"].baseline_sets,
                  loss_D=history.mean("loss_D", last=20), loss_G=history.mean("loss_G", last=20),
                  steps=b["steps"], profile=runtime.profile, device=str(runtime.device),
                  eval_samples=b["eval"], train_pool=b["pool"], train_seconds=round(train_seconds, 1),
                  torch_threads=torch.get_num_threads())
    model.cpu()
    recipe = {k: b.get(k) for k in ("steps", "batch_size", "lr", "betas", "loss", "spectral_norm", "ema", "lr_decay",
                                    "width", "resolution")}
    checkpoints.save_pretrained(model, out_dir, config=config, metrics=scores, command=cli.command_line(),
                                extra={"data": f"ShapeScenes split 'train' (seeds 0..{b['pool'] - 1}), "
                                               f"{'style ' + style if style else 'all styles (seed % 6)'}, "
                                               f"{b['resolution']} px",
                                       "feature_extractor": "features (shipped)",
                                       "generator": (f"G is the exponential moving average (decay {b['ema']}) of the "
                                                     "trained generator's weights" if g_ema is not None else
                                                     "G is the trained generator"),
                                       "recipe": recipe,
                                       "fd_curve": history.get("fd_curve", [])})
    shutil.rmtree(run_dir, ignore_errors=True)
    return scores
