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

**Conditional on the style** (``DCGANConfig.n_classes`` > 0; the step from the unconditional
DCGAN to chapter 7's F): G's BatchNorms become *conditional* BatchNorms, whose scale and shift
are looked up per class (de Vries et al. 2017; Dumoulin et al. 2017's conditional instance
norm; Miyato & Koyama 2018's generators), and D gets a *projection* term: its features φ(x),
summed over space, dotted with a learned embedding of the class, added to the unconditional
score (Miyato & Koyama 2018, https://arxiv.org/abs/1802.05637). G no longer has to discover the
six styles as clusters of its latent space, and D judges "a real picture *of this style*".
With ``n_classes = 0`` the networks are exactly the unconditional ones (same weights, same keys).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..checkpoints import Pretrained

__all__ = [
    "DCGANConfig",
    "ConditionalBatchNorm2d",
    "Generator",
    "Discriminator",
    "DCGAN",
    "dcgan_init_",
    "to_tanh_range",
    "to_unit_range",
    "truncated_normal",
    "dcgan_generator",
    "dcgan_discriminator",
    "dcgan",
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
    bias at 0, as in the PyTorch DCGAN example; a conditional BatchNorm's per-class scales and
    shifts alike.
    """
    if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
        nn.init.normal_(module.weight, 0.0, 0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.BatchNorm2d) and module.affine:
        nn.init.normal_(module.weight, 1.0, 0.02)
        nn.init.zeros_(module.bias)
    elif isinstance(module, ConditionalBatchNorm2d):
        nn.init.normal_(module.gamma.weight, 1.0, 0.02)
        nn.init.zeros_(module.beta.weight)


# -- blocks ------------------------------------------------------------------------------------

class ConditionalBatchNorm2d(nn.Module):
    """BatchNorm whose scale and shift depend on a class: ``γ[y] · (x − μ) / σ + β[y]``.

    The statistics μ, σ are the batch's, as in plain BatchNorm (no learned affine of its own);
    γ and β are embeddings of the class, starting near 1 and at 0 (:func:`dcgan_init_`) so that a
    fresh network is nearly the unconditional one (de Vries et al. 2017, "Modulating early visual
    processing by language"; Miyato & Koyama 2018 use it in their conditional generators).
    """

    def __init__(self, channels: int, n_classes: int) -> None:
        super().__init__()
        self.bn = nn.BatchNorm2d(channels, affine=False)
        self.gamma = nn.Embedding(n_classes, channels)
        self.beta = nn.Embedding(n_classes, channels)
        nn.init.ones_(self.gamma.weight)
        nn.init.zeros_(self.beta.weight)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """x (B, C, H, W), y (B,) class ids → (B, C, H, W)."""
        return self.gamma(y)[:, :, None, None] * self.bn(x) + self.beta(y)[:, :, None, None]


def _norm(channels: int, batch_norm: bool, n_classes: int) -> nn.Module:
    if not batch_norm:
        return nn.Identity()
    return ConditionalBatchNorm2d(channels, n_classes) if n_classes else nn.BatchNorm2d(channels)


class UpBlock(nn.Sequential):
    """Transposed convolution (kernel 4, stride 2, padding 1) doubling H and W → BatchNorm → ReLU.

    Without BatchNorm the convolution gets a bias (BatchNorm's shift makes one redundant); with
    ``n_classes`` the BatchNorm is conditional (:class:`ConditionalBatchNorm2d`).
    """

    def __init__(self, c_in: int, c_out: int, *, batch_norm: bool = True, n_classes: int = 0) -> None:
        super().__init__(
            nn.ConvTranspose2d(c_in, c_out, 4, stride=2, padding=1, bias=not batch_norm),  # (B, c_out, 2H, 2W)
            _norm(c_out, batch_norm, n_classes),
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
    n_classes: int = 0  # 0: unconditional (the paper); 6: conditioned on the ShapeScenes style (see the module doc)

    def __post_init__(self) -> None:
        if self.resolution not in (32, 64):
            raise ValueError(f"resolution must be 32 or 64, got {self.resolution!r}")
        for name in ("latent_dim", "channels", "g_width", "d_width"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        if not 0.0 <= self.leaky_slope < 1.0:
            raise ValueError(f"leaky_slope must be in [0, 1), got {self.leaky_slope!r}")
        if not isinstance(self.n_classes, int) or isinstance(self.n_classes, bool) or self.n_classes < 0:
            raise ValueError(f"n_classes must be an int >= 0 (0: unconditional), got {self.n_classes!r}")

    @property
    def conditional(self) -> bool:
        return self.n_classes > 0

    @property
    def n_blocks(self) -> int:
        """Resolution doublings between 4 × 4 and the output, minus the output layer: 2 at 32 px, 3 at 64."""
        return int(math.log2(self.resolution)) - 3


# -- models ------------------------------------------------------------------------------------

class Generator(nn.Module):
    """z (B, latent_dim) (and, when conditional, class ids y (B,)) → image (B, channels, R, R) in [-1, 1].

    Layout at 32 px with ``g_width = w``: z → 4×4×4w → 8×8×2w → 16×16×w → 32×32×3 (tanh).
    """

    def __init__(self, config: DCGANConfig) -> None:
        super().__init__()
        if not isinstance(config, DCGANConfig):
            raise TypeError(f"config must be a DCGANConfig, got {type(config).__name__}")
        self.config = config
        c = config.g_width * 2 ** config.n_blocks  # channels at 4 × 4
        bn, k = config.batch_norm, config.n_classes
        # project and reshape: a 4 × 4 transposed convolution on a 1 × 1 "image" of z
        layers: list[nn.Module] = [
            nn.ConvTranspose2d(config.latent_dim, c, 4, stride=1, padding=0, bias=not bn),  # (B, c, 4, 4)
            _norm(c, bn, k),
            nn.ReLU(inplace=True),
        ]
        for _ in range(config.n_blocks):
            layers.append(UpBlock(c, c // 2, batch_norm=bn, n_classes=k))  # (B, c/2, 2H, 2W)
            c //= 2
        # no BatchNorm on G's output layer (paper, §3): it would pin the image statistics
        layers += [nn.ConvTranspose2d(c, config.channels, 4, stride=2, padding=1), nn.Tanh()]  # (B, 3, R, R)
        self.net = nn.Sequential(*layers)
        self.apply(dcgan_init_)

    def forward(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """(B, latent_dim) [and (B,) class ids when conditional] → (B, channels, R, R) in [-1, 1] (tanh)."""
        if not isinstance(z, torch.Tensor) or z.dim() != 2 or z.shape[1] != self.config.latent_dim:
            shape = tuple(z.shape) if isinstance(z, torch.Tensor) else type(z).__name__
            raise ValueError(f"z must have shape (B, {self.config.latent_dim}), got {shape}")
        y = _check_classes(y, z.shape[0], self.config, "G")
        x = z[:, :, None, None]  # (B, latent_dim, 1, 1)
        if y is None:
            return self.net(x)  # (B, 3, R, R)
        for layer in _leaves(self.net):  # the same layers, the conditional BatchNorms given y
            x = layer(x, y) if isinstance(layer, ConditionalBatchNorm2d) else layer(x)
        return x

    def sample_latent(self, n: int, *, generator: torch.Generator | None = None,
                      device: torch.device | str | None = None, truncation: float | None = None) -> torch.Tensor:
        """``n`` latent vectors z ~ N(0, I), (n, latent_dim), drawn on the CPU from ``generator``
        (so the same seed gives the same z on every device) and moved to ``device``.

        ``truncation`` ψ > 0 draws from the normal truncated to ``abs(z_i) <= ψ`` instead (the
        "truncation trick" of Brock et al. 2019, which trades diversity for typical samples; see
        :func:`truncated_normal`). None keeps the full normal the generator was trained on.
        """
        if not isinstance(n, int) or isinstance(n, bool) or n < 1:
            raise ValueError(f"n must be a positive int, got {n!r}")
        device = device if device is not None else next(self.parameters()).device
        shape = (n, self.config.latent_dim)
        if truncation is None:
            z = torch.randn(shape, generator=generator)
        else:
            z = truncated_normal(shape, truncation, generator)
        return z.to(device)

    @torch.no_grad()
    def generate(self, n: int | None = None, *, z: torch.Tensor | None = None, y: torch.Tensor | None = None,
                 generator: torch.Generator | None = None, batch_size: int = 512,
                 truncation: float | None = None) -> torch.Tensor:
        """Samples as images in [0, 1] (converted from tanh's [-1, 1]), in eval mode, on G's device.

        Give either ``n`` (z drawn from ``generator``, truncated at ``truncation`` if given: see
        :meth:`sample_latent`) or ``z`` itself. Returns (n, 3, R, R). A
        conditional G draws classes ``y`` (default: ``i % n_classes`` for sample i, every class
        equally often, as the training data has them). The model's train/eval mode is restored.
        """
        if (n is None) == (z is None):
            raise ValueError("give exactly one of n (number of samples) or z (latent vectors)")
        if z is None:
            z = self.sample_latent(n, generator=generator, truncation=truncation)
        elif truncation is not None:
            raise ValueError("truncation applies to the z that generate draws: "
                             "truncate a given z with sample_latent")
        device = next(self.parameters()).device
        z = z.to(device)
        if self.config.conditional and y is None:
            y = torch.arange(z.shape[0]) % self.config.n_classes
        y = _check_classes(y, z.shape[0], self.config, "G")
        was_training = self.training
        self.eval()
        try:
            if y is None:
                out = torch.cat([to_unit_range(self(chunk)) for chunk in z.split(batch_size)])
            else:
                y = y.to(device)
                out = torch.cat([to_unit_range(self(zc, yc)) for zc, yc in zip(z.split(batch_size), y.split(batch_size))])
        finally:
            self.train(was_training)
        return out


def truncated_normal(shape: tuple[int, ...], psi: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """Draws of N(0, 1) conditioned on ``abs(z) <= psi``, by the inverse CDF: z = Φ⁻¹(u) with u
    uniform on [Φ(-psi), Φ(psi)] (computed in float64, so a small psi stays exact), from ``generator``."""
    if isinstance(psi, bool) or not isinstance(psi, (int, float)) or not math.isfinite(psi) or psi <= 0:
        raise ValueError("truncation must be a positive finite number (psi, the largest |z_i| kept), "
                         f"got {psi!r}")
    low = torch.special.ndtr(torch.tensor(-float(psi), dtype=torch.float64))
    u = torch.rand(shape, generator=generator, dtype=torch.float64)
    z = torch.special.ndtri(low + u * (1 - 2 * low))
    return z.clamp(-psi, psi).float()


def _leaves(module: nn.Module):
    """The leaf modules of nested Sequentials, in the order they run."""
    children = list(module.children())
    if not children or isinstance(module, ConditionalBatchNorm2d):
        yield module
        return
    for child in children:
        yield from _leaves(child)


def _check_classes(y: torch.Tensor | None, n: int, config: "DCGANConfig", who: str) -> torch.Tensor | None:
    """Class ids for a conditional network (a clear error for a missing, extra or bad one)."""
    if not config.conditional:
        if y is not None:
            raise ValueError(f"this {who} is unconditional (n_classes = 0): give no class ids")
        return None
    if not isinstance(y, torch.Tensor) or y.dim() != 1 or y.shape[0] != n or y.dtype.is_floating_point:
        raise ValueError(f"this {who} is conditional: give y, a ({n},) integer tensor of class ids in "
                         f"[0, {config.n_classes}), got {getattr(y, 'shape', type(y).__name__)}")
    if y.numel() and (int(y.min()) < 0 or int(y.max()) >= config.n_classes):
        raise ValueError(f"class ids must be in [0, {config.n_classes}), got [{int(y.min())}, {int(y.max())}]")
    return y.long()


class Discriminator(nn.Module):
    """image (B, channels, R, R) in [-1, 1] (and, when conditional, class ids y (B,)) → one logit per image, (B,).

    Layout at 32 px with ``d_width = w``: 32×32×3 → 16×16×w → 8×8×2w → 4×4×4w → 1 (a 4 × 4
    valid convolution). The output is a raw score: the losses apply the sigmoid themselves.

    With ``config.spectral_norm`` every convolution's weight is divided by its largest singular
    value (Miyato et al. 2018, https://arxiv.org/abs/1802.05957) and D has no BatchNorm, as in
    that paper's "standard CNN"; G is unchanged.

    Conditional (``n_classes`` > 0): the score is ``ψ(φ(x)) + ⟨e_y, Σ_hw φ(x)⟩``, φ(x) the 4 × 4
    feature map before the last convolution ψ, e_y a learned embedding of the class (spectrally
    normalised with the rest): the projection discriminator of Miyato & Koyama 2018.
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
        # the projection: one embedding per class, as wide as φ's channels (none when unconditional)
        self.embed = nn.Embedding(config.n_classes, c) if config.conditional else None
        self.apply(dcgan_init_)
        if self.embed is not None:
            nn.init.normal_(self.embed.weight, 0.0, 0.02)
        if config.spectral_norm:
            # W / σ(W), σ of the kernel reshaped to a matrix, estimated by one power iteration per
            # forward pass. A stride-2 convolution can still stretch by up to 2σ (chapter 4
            # measures it), but the bound is fixed: D's score cannot grow steep enough to leave G
            # without a gradient
            for module in self.net:
                for conv in ([module] if isinstance(module, nn.Conv2d) else
                             [m for m in module.children() if isinstance(m, nn.Conv2d)]):
                    nn.utils.spectral_norm(conv)
            if self.embed is not None:
                nn.utils.spectral_norm(self.embed)

    def forward(self, images: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """(B, channels, R, R) in [-1, 1] [and (B,) class ids when conditional] → (B,) logits."""
        r, ch = self.config.resolution, self.config.channels
        if not isinstance(images, torch.Tensor) or images.dim() != 4 or tuple(images.shape[1:]) != (ch, r, r):
            shape = tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__
            raise ValueError(f"images must have shape (B, {ch}, {r}, {r}) in [-1, 1], got {shape}")
        y = _check_classes(y, images.shape[0], self.config, "D")
        if y is None:
            return self.net(images).flatten()  # (B,)
        phi = self.net[:-1](images)  # (B, c, 4, 4)
        return self.net[-1](phi).flatten() + (self.embed(y) * phi.sum((2, 3))).sum(1)  # ψ(φ) + ⟨e_y, Σφ⟩


class DCGAN(Pretrained, nn.Module):
    """The pair, so that one checkpoint holds both: ``model.G`` and ``model.D``.

    ``DCGAN.from_pretrained("dcgan")`` loads the shipped pair (chapter 4); ``save_pretrained(dir)``
    writes one (:class:`spokenstyle.checkpoints.Pretrained`)."""

    config_class = DCGANConfig
    default_weights = "dcgan"

    def __init__(self, config: DCGANConfig) -> None:
        super().__init__()
        if not isinstance(config, DCGANConfig):
            raise TypeError(f"config must be a DCGANConfig, got {type(config).__name__}")
        self.config = config
        self.G = Generator(config)
        self.D = Discriminator(config)


# -- builders ----------------------------------------------------------------------------------

def _config(config: DCGANConfig | None, overrides: dict[str, Any]) -> DCGANConfig:
    if config is not None and not isinstance(config, DCGANConfig):
        raise TypeError(f"config must be a DCGANConfig or None, got {type(config).__name__}")
    base = asdict(config) if config is not None else {}
    return DCGANConfig(**{**base, **overrides})


def dcgan(*, config: DCGANConfig | None = None, weights: str | Path | None = None, **overrides: Any) -> DCGAN:
    """A DCGAN pair (``.G``, ``.D``) (Radford et al. 2016, https://arxiv.org/abs/1511.06434).

    Args:
        config: the architecture; ``None`` = :class:`DCGANConfig` defaults (32 px). Keyword
            ``overrides`` replace single fields (``dcgan(resolution=64)``).
        weights: ``None`` for DCGAN's random init, the name of a shipped checkpoint (``"dcgan"``,
            see :func:`spokenstyle.checkpoints.shipped`), a checkpoint folder or a file in one. With weights the
            architecture comes from the checkpoint and ``config``/``overrides`` must not be given.
    """
    if weights is None:
        return DCGAN(_config(config, overrides))
    if config is not None or overrides:
        raise ValueError("give either weights (the checkpoint fixes the architecture) or config/overrides, not both")
    return DCGAN.from_pretrained(weights)


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
