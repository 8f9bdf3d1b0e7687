"""CycleGAN-lite: unpaired image-to-image translation, in one file.

Two generators translate between domains A and B (``G_AB``: A → B, ``G_BA``: B → A) and two
discriminators tell real from translated pictures in each domain (``D_A``, ``D_B``). Nothing
pairs a picture of A with its counterpart in B; what keeps a translation faithful to its input
is **cycle consistency**: A → B → A must give back the input (an L1 penalty, weight λ = 10),
and the **identity loss**: a picture that is already in B must pass through ``G_AB`` unchanged
(weight 0.5 λ), which stops the generators from recolouring what needs no translation.

Architecture and defaults are the reference implementation's (Zhu et al. 2017, appendix 7.2;
``pytorch-CycleGAN-and-pix2pix``):

* generator: a ResNet (Johnson et al. 2016): 7×7 convolution → two stride-2 convolutions →
  residual blocks → two transposed convolutions → 7×7 convolution → tanh; reflection padding,
  instance normalisation;
* discriminator: a PatchGAN: strided 4×4 convolutions that score overlapping patches (70×70 px
  with three layers) as real or fake, one score per patch;
* losses: least-squares GAN (Mao et al. 2017), cycle L1 with λ = 10, identity L1 with 0.5 λ;
* an **image pool** of 50 past translations: D sees a mix of current and older fakes
  (Shrivastava et al. 2017), which damps oscillation;
* Adam (lr 2e-4, β1 = 0.5), constant for the first half of training and linearly decayed to
  zero over the second half.

**Value ranges.** As in :mod:`spokenstyle.models.dcgan`, the networks work in tanh's [-1, 1];
renders and photos are [0, 1]. :meth:`ResnetGenerator.translate` takes and returns [0, 1].

References:
    Zhu, Park, Isola & Efros 2017, "Unpaired Image-to-Image Translation using Cycle-Consistent
    Adversarial Networks", https://arxiv.org/abs/1703.10593
    https://github.com/junyanz/pytorch-CycleGAN-and-pix2pix (``networks.py``, ``cycle_gan_model.py``,
    ``util/image_pool.py``)
    Isola et al. 2017, "Image-to-Image Translation with Conditional Adversarial Networks"
    (PatchGAN), https://arxiv.org/abs/1611.07004
    Johnson, Alahi & Fei-Fei 2016, "Perceptual Losses for Real-Time Style Transfer" (the ResNet
    generator), https://arxiv.org/abs/1603.08155

Deviations from the reference, each for small CPU-friendly models at 64 px: the default widths
are 16 (generator) and 16 (discriminator) instead of 64, and the generator has 4 residual blocks
instead of 6 (128 px) or 9 (256 px); :func:`reference_config` gives the paper's ResNet-9 and
70×70 PatchGAN for the benchmark. The reference's generator GAN term is the mean squared error
``E (D(G(x)) - 1)²``; :func:`spokenstyle.losses.lsgan_g_loss` carries a factor ½, so the step
doubles it to keep the reference's balance against λ = 10. Four options, all off in the reference;
chapter 5 measures what each left in the shipped translators (no run has yet switched them off
one at a time):

* ``CycleGANConfig.residual`` (default on): the generator predicts a *change* to its input, so it
  starts at the identity and keeps the content from step 0 (``residual=False`` is the reference's
  plain output, which first has to learn to copy);
* ``train_cyclegan(warmup=...)``: the identity is a local minimum of the reference objective (a
  move of one generator costs λ times the L1 it adds to the round trip and gains at most 1 in the
  LSGAN term), so the cycle and identity weights ramp up from 0 over the first steps;
* ``CycleGANConfig.position``: learned position channels at the generator's input, because halftone
  dots and pixel grids sit at fixed places on the canvas, which a convolution cannot know;
* :class:`GeneratorEMA`: the shipped generators are the running average of the generators' weights.

References for the options: Liu et al. 2018, "An intriguing failing of convolutional neural networks
and the CoordConv solution", https://arxiv.org/abs/1807.03247; Yazıcı et al. 2019, "The Unusual
Effectiveness of Averaging in GAN Training", https://arxiv.org/abs/1806.04498; Karras et al. 2018,
"Progressive Growing of GANs", https://arxiv.org/abs/1710.10196.
"""

from __future__ import annotations

import itertools
import random
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn

from .. import checkpoints, losses
from .dcgan import to_tanh_range, to_unit_range

__all__ = [
    "CycleGANConfig",
    "ResnetBlock",
    "ResnetGenerator",
    "PatchDiscriminator",
    "ImagePool",
    "GeneratorEMA",
    "CycleGAN",
    "reference_config",
    "cyclegan",
    "cyclegan_generator",
    "save_translator",
    "NO_DISCRIMINATORS",
    "cycle_step",
    "l1_weight",
    "adam_optimizers",
    "linear_decay",
    "train_cyclegan",
    "score_pair",
    "translate",
    "TranslationSnapshots",
    "PAIRS",
    "config_from_budget",
    "train_pair",
    "train_flat_comic",
    "train_flat_pixel",
    "train_photo",
]


# -- initialisation ----------------------------------------------------------------------------

def cyclegan_init_(module: nn.Module) -> None:
    """The reference's ``init_type='normal'``: convolution weights from N(0, 0.02), biases 0."""
    if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
        nn.init.normal_(module.weight, 0.0, 0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)


def _norm(kind: str, channels: int) -> nn.Module:
    if kind == "instance":  # the reference's default; no affine parameters, no running stats
        return nn.InstanceNorm2d(channels, affine=False, track_running_stats=False)
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    return nn.Identity()


# -- blocks ------------------------------------------------------------------------------------

class ResnetBlock(nn.Module):
    """x + [reflect-pad → 3×3 conv → norm → ReLU → reflect-pad → 3×3 conv → norm](x); shape kept.

    Reflection padding instead of zeros avoids dark seams at the borders (reference ``networks.py``).
    """

    def __init__(self, channels: int, norm: str = "instance") -> None:
        super().__init__()
        bias = norm == "instance"  # the reference keeps conv biases with instance norm
        self.block = nn.Sequential(
            nn.ReflectionPad2d(1), nn.Conv2d(channels, channels, 3, bias=bias), _norm(norm, channels),
            nn.ReLU(inplace=True),
            nn.ReflectionPad2d(1), nn.Conv2d(channels, channels, 3, bias=bias), _norm(norm, channels),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.block(x)  # (B, C, H, W)


# -- config ------------------------------------------------------------------------------------

@dataclass
class CycleGANConfig:
    """The shape of a CycleGAN: two generators and two discriminators. Stored in every checkpoint."""

    resolution: int = 64  # ShapeScenes' default size; any multiple of 4 * 2**(n_down-1) works
    channels: int = 3  # RGB
    g_width: int = 16  # generator channels after the first 7×7 conv; reference 64 (4x fewer for CPUs)
    n_down: int = 2  # stride-2 convolutions (and transposed ones); the reference's 2
    n_blocks: int = 4  # residual blocks at the bottleneck; reference 6 at 128 px, 9 at 256 px
    d_width: int = 16  # discriminator channels after its first layer; reference 64
    d_layers: int = 3  # strided layers of the PatchGAN; 3 gives the reference's 70×70 receptive field
    norm: str = "instance"  # "instance" (reference), "batch" or "none"
    lambda_cycle: float = 10.0  # λ, weight of the cycle L1 (Zhu et al. 2017, §4)
    lambda_identity: float = 0.5  # identity weight as a fraction of λ (reference: 0.5 → 5)
    pool_size: int = 50  # past fakes kept for D (reference, after Shrivastava et al. 2017)
    residual: bool = True  # G predicts a change to its input: out = tanh(atanh(x) + net(x)). Not in the
    # reference; it starts G near the identity, so cycle and identity losses hold from step 0 and the
    # short CPU budgets are spent on the style (False = the reference's plain output)
    position: int = 0  # learned position channels concatenated to G's input (0 = none, the reference).
    # A convolution cannot tell where on the canvas it is; textures printed on a fixed screen (halftone
    # dots, a pixel grid) need that (CoordConv, Liu et al. 2018; here the map itself is learned)
    cycle_noise: float = 0.0  # std of Gaussian noise added to a translation before the way back (0 = the
    # reference). A generator can pass the cycle by hiding the source in faint, invisible detail while
    # drawing the wrong shape (Chu et al. 2017); noise drowns that channel (Bashkirova et al. 2019)

    def __post_init__(self) -> None:
        for name in ("resolution", "channels", "g_width", "n_blocks", "d_width", "d_layers", "position"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < (0 if name in ("n_blocks", "position") else 1):
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        if not isinstance(self.n_down, int) or isinstance(self.n_down, bool) or not 0 <= self.n_down <= 4:
            raise ValueError(f"n_down must be an int from 0 to 4, got {self.n_down!r}")
        if self.resolution % (2 ** self.n_down) or self.resolution < 16:
            raise ValueError(f"resolution must be at least 16 and divisible by 2**n_down = {2 ** self.n_down}, "
                             f"got {self.resolution!r}")
        if self.norm not in ("instance", "batch", "none"):
            raise ValueError(f"norm must be 'instance', 'batch' or 'none', got {self.norm!r}")
        if not self.lambda_cycle >= 0 or not self.lambda_identity >= 0:
            raise ValueError("lambda_cycle and lambda_identity must be non-negative")
        if not (isinstance(self.cycle_noise, (int, float)) and not isinstance(self.cycle_noise, bool)
                and 0 <= self.cycle_noise <= 1):
            raise ValueError(f"cycle_noise must be a std from 0 to 1 (images are in [-1, 1]), got {self.cycle_noise!r}")
        if not isinstance(self.pool_size, int) or isinstance(self.pool_size, bool) or self.pool_size < 0:
            raise ValueError(f"pool_size must be a non-negative int (0 = no pool), got {self.pool_size!r}")


def reference_config(resolution: int = 128) -> CycleGANConfig:
    """The paper's networks: ResNet generator with 64 channels and 9 blocks (the reference uses 9
    at 256 px and 6 at 128 px; the benchmark follows the issue's "ResNet-9") and the 70×70 PatchGAN."""
    return CycleGANConfig(resolution=resolution, g_width=64, n_blocks=9, d_width=64, d_layers=3)


# -- models ------------------------------------------------------------------------------------

class ResnetGenerator(nn.Module):
    """image (B, 3, R, R) in [-1, 1] → translated image (B, 3, R, R) in [-1, 1].

    Layout with ``g_width = w`` and two downsamplings, at 64 px:
    64×64×3 → 64×64×w → 32×32×2w → 16×16×4w → (n_blocks residual blocks) → 32×32×2w → 64×64×w → 64×64×3.
    """

    def __init__(self, config: CycleGANConfig) -> None:
        super().__init__()
        if not isinstance(config, CycleGANConfig):
            raise TypeError(f"config must be a CycleGANConfig, got {type(config).__name__}")
        self.config = c = config
        bias = c.norm == "instance"
        w = c.g_width
        # position channels: a learned (P, R, R) map, zero at init (G starts as the plain network)
        self.position = nn.Parameter(torch.zeros(1, c.position, c.resolution, c.resolution)) if c.position else None
        layers: list[nn.Module] = [nn.ReflectionPad2d(3), nn.Conv2d(c.channels + c.position, w, 7, bias=bias),
                                   _norm(c.norm, w), nn.ReLU(inplace=True)]  # (B, w, R, R)
        for i in range(c.n_down):
            m = w * 2 ** i
            layers += [nn.Conv2d(m, 2 * m, 3, stride=2, padding=1, bias=bias), _norm(c.norm, 2 * m),
                       nn.ReLU(inplace=True)]  # (B, 2m, H/2, W/2)
        m = w * 2 ** c.n_down
        layers += [ResnetBlock(m, c.norm) for _ in range(c.n_blocks)]  # (B, m, R/2^n, R/2^n)
        for i in range(c.n_down):
            m = w * 2 ** (c.n_down - i)
            layers += [nn.ConvTranspose2d(m, m // 2, 3, stride=2, padding=1, output_padding=1, bias=bias),
                       _norm(c.norm, m // 2), nn.ReLU(inplace=True)]  # (B, m/2, 2H, 2W)
        layers += [nn.ReflectionPad2d(3), nn.Conv2d(w, c.channels, 7)]  # (B, 3, R, R), before the tanh
        self.net = nn.Sequential(*layers)
        self.apply(cyclegan_init_)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) in [-1, 1] → (B, 3, H, W) in [-1, 1]; H and W divisible by 2**n_down."""
        _check_images(x, self.config, "x")
        out = self.net(self._with_position(x) if self.position is not None else x)  # (B, 3, H, W) pre-activation
        if self.config.residual:  # a change in tanh's pre-activation space: out = x when net(x) = 0
            out = out + torch.atanh(x.clamp(-0.999, 0.999))
        return torch.tanh(out)

    def _with_position(self, x: torch.Tensor) -> torch.Tensor:
        """x (B, 3, H, W) with the position channels appended: (B, 3 + P, H, W). Pictures of another
        size than ``resolution`` get the map tiled and cropped (the canvas's top-left corner stays
        the map's), so a screen learned at 64 px keeps its phase."""
        pos = self.position
        h, w = x.shape[-2:]
        if (h, w) != pos.shape[-2:]:
            pos = pos.repeat(1, 1, -(-h // pos.shape[-2]), -(-w // pos.shape[-1]))[..., :h, :w]
        return torch.cat([x, pos.to(x.dtype).expand(x.shape[0], -1, -1, -1)], 1)

    @torch.no_grad()
    def translate(self, images: torch.Tensor, *, batch_size: int = 256) -> torch.Tensor:
        """[0, 1] images (B, 3, H, W) → translated [0, 1] images, in eval mode, on the generator's device."""
        if not isinstance(images, torch.Tensor) or not images.is_floating_point():
            raise TypeError(f"images must be a floating-point tensor (B, 3, H, W) in [0, 1], got "
                            f"{type(images).__name__ if not isinstance(images, torch.Tensor) else images.dtype}")
        _check_images(images, self.config, "images")
        if images.min() < -1e-6 or images.max() > 1 + 1e-6:
            raise ValueError(f"images must be in [0, 1], got values in [{images.min():.3g}, {images.max():.3g}]; "
                             "generator outputs in [-1, 1] go through to_unit_range first")
        device = next(self.parameters()).device
        was_training = self.training
        self.eval()
        try:
            out = [to_unit_range(self(to_tanh_range(chunk.to(device)))) for chunk in images.split(batch_size)]
        finally:
            self.train(was_training)
        return torch.cat(out)


class PatchDiscriminator(nn.Module):
    """image (B, 3, R, R) in [-1, 1] → a map of patch scores (B, 1, P, P), raw (no sigmoid).

    With ``d_layers = 3`` each score sees a 70×70 window (the reference's PatchGAN); at 64 px the
    map is 6×6. The LSGAN losses average over patches.
    """

    def __init__(self, config: CycleGANConfig) -> None:
        super().__init__()
        if not isinstance(config, CycleGANConfig):
            raise TypeError(f"config must be a CycleGANConfig, got {type(config).__name__}")
        self.config = c = config
        bias = c.norm == "instance"
        w = c.d_width
        layers: list[nn.Module] = [nn.Conv2d(c.channels, w, 4, stride=2, padding=1),
                                   nn.LeakyReLU(0.2, inplace=True)]  # (B, w, R/2, R/2), no norm on the input layer
        m = w
        for i in range(1, c.d_layers):
            m_next = w * min(2 ** i, 8)
            layers += [nn.Conv2d(m, m_next, 4, stride=2, padding=1, bias=bias), _norm(c.norm, m_next),
                       nn.LeakyReLU(0.2, inplace=True)]  # halves H and W
            m = m_next
        m_next = w * min(2 ** c.d_layers, 8)
        layers += [nn.Conv2d(m, m_next, 4, stride=1, padding=1, bias=bias), _norm(c.norm, m_next),
                   nn.LeakyReLU(0.2, inplace=True),  # (B, m', P+1, P+1)
                   nn.Conv2d(m_next, 1, 4, stride=1, padding=1)]  # (B, 1, P, P)
        self.net = nn.Sequential(*layers)
        self.apply(cyclegan_init_)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) in [-1, 1] → (B, 1, P, P) patch scores."""
        _check_images(images, self.config, "images", divisible=False)
        return self.net(images)


def _check_images(x: Any, config: CycleGANConfig, name: str, *, divisible: bool = True) -> None:
    if not isinstance(x, torch.Tensor) or x.dim() != 4 or x.shape[1] != config.channels:
        shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(f"{name} must have shape (B, {config.channels}, H, W), got {shape}")
    k = 2 ** config.n_down
    if divisible and (x.shape[-1] % k or x.shape[-2] % k):
        raise ValueError(f"{name} has size {tuple(x.shape[-2:])}; height and width must be divisible by {k} "
                         f"(2**n_down) so that the generator's output has the input's size")
    if x.shape[-1] < 16 or x.shape[-2] < 16:
        raise ValueError(f"{name} has size {tuple(x.shape[-2:])}; at least 16 x 16 px is needed")


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


class CycleGAN(nn.Module):
    """The four networks in one module: ``G_AB``, ``G_BA``, ``D_A``, ``D_B`` (a trained translator's
    checkpoint keeps the generators only, :func:`save_translator`)."""

    def __init__(self, config: CycleGANConfig | None = None) -> None:
        super().__init__()
        self.config = config = config or CycleGANConfig()
        if not isinstance(config, CycleGANConfig):
            raise TypeError(f"config must be a CycleGANConfig, got {type(config).__name__}")
        self.G_AB = ResnetGenerator(config)  # A → B
        self.G_BA = ResnetGenerator(config)  # B → A
        self.D_A = PatchDiscriminator(config)  # real A vs G_BA(b)
        self.D_B = PatchDiscriminator(config)  # real B vs G_AB(a)

    def generators(self) -> nn.ModuleDict:
        """``G_AB`` and ``G_BA`` alone, under the same state-dict keys: what a trained recipe saves
        (the discriminators only matter for training, which resumes from the run directory)."""
        return nn.ModuleDict({"G_AB": self.G_AB, "G_BA": self.G_BA})


# -- builders ----------------------------------------------------------------------------------

def cyclegan(*, config: CycleGANConfig | None = None, weights: str | Path | None = None,
             **overrides: Any) -> CycleGAN:
    """A CycleGAN (``.G_AB``, ``.G_BA``, ``.D_A``, ``.D_B``) (Zhu et al. 2017, https://arxiv.org/abs/1703.10593).

    Args:
        config: the architecture; ``None`` = :class:`CycleGANConfig` defaults. Keyword ``overrides``
            replace single fields (``cyclegan(n_blocks=2)``).
        weights: ``None`` for random init, a shipped checkpoint's name (``"cyclegan_flat_comic"``)
            or a checkpoint folder; the architecture then comes from the checkpoint, in eval mode.
            A checkpoint saved by :func:`save_translator` holds the generators only: the
            discriminators are then freshly initialised.
    """
    if weights is None:
        if config is not None and not isinstance(config, CycleGANConfig):
            raise TypeError(f"config must be a CycleGANConfig or None, got {type(config).__name__}")
        base = asdict(config) if config is not None else {}
        return CycleGAN(CycleGANConfig(**{**base, **overrides}))
    if config is not None or overrides:
        raise ValueError("give either weights (the checkpoint fixes the architecture) or config/overrides, not both")
    directory = checkpoints.resolve(weights)
    manifest = checkpoints.read_manifest(directory)
    try:
        config = CycleGANConfig(**manifest["config"])
    except TypeError as err:
        raise checkpoints.CheckpointError(f"{directory} is not a CycleGAN checkpoint: its config does not fit "
                                          f"CycleGANConfig ({err})") from err
    model = CycleGAN(config)
    if manifest.get("extra", {}).get("discriminators") == NO_DISCRIMINATORS:
        checkpoints.load_pretrained(model.generators(), directory)  # D_A, D_B keep their fresh initialisation
    else:
        checkpoints.load_pretrained(model, directory)
    return model.eval()


NO_DISCRIMINATORS = "not saved: a translator needs only G_AB and G_BA (training resumes from the run directory)"


def save_translator(model: CycleGAN, out_dir: str | Path, *, metrics: dict[str, Any], extra: dict[str, Any]) -> Path:
    """Saves a trained CycleGAN's generators (not its discriminators, about 40 % of the weights at
    width 32) with its config, metrics and the command line, for :func:`cyclegan` to load."""
    from .. import cli

    return checkpoints.save_pretrained(model.generators(), out_dir, config=model.config, metrics=metrics,
                                       command=cli.command_line(),
                                       extra={**extra, "class": "CycleGAN", "discriminators": NO_DISCRIMINATORS})


def cyclegan_generator(direction: str = "AB", *, weights: str | Path | None = None,
                       config: CycleGANConfig | None = None, **overrides: Any) -> ResnetGenerator:
    """One generator of a CycleGAN: ``direction`` "AB" (A → B) or "BA"."""
    if direction not in ("AB", "BA"):
        raise ValueError(f"direction must be 'AB' or 'BA', got {direction!r}")
    model = cyclegan(config=config, weights=weights, **overrides)
    return getattr(model, f"G_{direction}")


def translate(model: CycleGAN, images: torch.Tensor, direction: str = "AB", *, batch_size: int = 256) -> torch.Tensor:
    """[0, 1] images of one domain → [0, 1] translations into the other (``"AB"`` or ``"BA"``)."""
    if not isinstance(model, CycleGAN):
        raise TypeError(f"model must be a CycleGAN, got {type(model).__name__}")
    if direction not in ("AB", "BA"):
        raise ValueError(f"direction must be 'AB' or 'BA', got {direction!r}")
    return getattr(model, f"G_{direction}").translate(images, batch_size=batch_size)


# -- training ----------------------------------------------------------------------------------

def _unwrap(module: nn.Module) -> nn.Module:
    return module.module if isinstance(module, nn.parallel.DistributedDataParallel) else module


def l1_weight(step: int, warmup: int) -> float:
    """The factor on λ (cycle) and 0.5 λ (identity) at ``step``: linear from 0 to 1 over the first
    ``warmup`` steps, then 1 (``warmup = 0``: always 1, the reference)."""
    if not isinstance(warmup, int) or isinstance(warmup, bool) or warmup < 0:
        raise ValueError(f"warmup must be a non-negative int of steps, got {warmup!r}")
    return 1.0 if warmup == 0 else min(1.0, step / warmup)


def _noisy(images: torch.Tensor, std: float) -> torch.Tensor:
    """``images`` plus Gaussian noise of ``std`` (none when 0): what the way back sees of a translation."""
    return images + std * torch.randn_like(images) if std > 0 else images


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
    """
    G_AB, G_BA, D_A, D_B = (t.modules[k] for k in ("G_AB", "G_BA", "D_A", "D_B"))
    ramp = l1_weight(step, warmup)
    lam, lam_id = ramp * config.lambda_cycle, ramp * config.lambda_cycle * config.lambda_identity
    real_a, real_b = to_tanh_range(batch["image_a"]), to_tanh_range(batch["image_b"])  # (B, 3, R, R)
    # update_G: both translations, both cycles, both identities
    with t.autocast():
        fake_b = G_AB(real_a)  # A → B
        fake_a = G_BA(real_b)  # B → A
        loss_cycle = (losses.cycle_loss(G_BA(_noisy(fake_b, config.cycle_noise)), real_a)
                      + losses.cycle_loss(G_AB(_noisy(fake_a, config.cycle_noise)), real_b))
        loss_idt = (losses.identity_loss(G_AB(real_b), real_b) + losses.identity_loss(G_BA(real_a), real_a)
                    if config.lambda_identity > 0 else torch.zeros((), device=real_a.device))
        # 2 x the book's ½-scaled LSGAN term = the reference's MSE(D(G(x)), 1)
        loss_adv = 2 * (losses.lsgan_g_loss(D_B(fake_b)) + losses.lsgan_g_loss(D_A(fake_a)))
        loss_g = loss_adv + lam * loss_cycle + lam_id * loss_idt
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
            "loss_D_A": loss_d_a, "loss_D_B": loss_d_b}


def adam_optimizers(model: CycleGAN, *, lr: float = 2e-4, betas: tuple[float, float] = (0.5, 0.999)) -> dict:
    """The reference's optimisers: one Adam over both generators, one over both discriminators."""
    return {"G": torch.optim.Adam(itertools.chain(model.G_AB.parameters(), model.G_BA.parameters()), lr=lr, betas=betas),
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
    from functools import partial

    from ..train import Trainer, TrainConfig

    if not isinstance(model, CycleGAN):
        raise TypeError(f"model must be a CycleGAN, got {type(model).__name__}")
    opts = adam_optimizers(model, lr=lr)
    pools = (ImagePool(model.config.pool_size), ImagePool(model.config.pool_size))
    trainer = Trainer({"G_AB": model.G_AB, "G_BA": model.G_BA, "D_A": model.D_A, "D_B": model.D_B}, opts,
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
        self.record(_unwrap(trainer.modules[f"G_{self.direction}"]), step)


# -- the `spokenstyle train cyclegan_*` recipes --------------------------------------------------

PAIRS: dict[str, tuple[str, str]] = {
    # recipe name -> (style A, style B); each trained pair is shipped as data/checkpoints/<name>
    "cyclegan_flat_comic": ("flat", "comic"),  # plain fills ↔ ink outlines on halftone dots
    "cyclegan_flat_pixel": ("flat", "pixel"),  # smooth edges ↔ pixel blocks with outlines on a checkerboard
}


_BUDGET_FIELDS = ("n_down", "d_layers", "position", "residual", "lambda_identity", "cycle_noise")  # optional in a budget row


def config_from_budget(b: dict[str, Any]) -> CycleGANConfig:
    """The architecture a budget row asks for (``g_width``, ``n_blocks``, ``d_width``, ``resolution``,
    and where given ``n_down``, ``d_layers``, ``position``, ``residual``, ``lambda_identity``)."""
    return CycleGANConfig(resolution=b["resolution"], g_width=b["g_width"], n_blocks=b["n_blocks"], d_width=b["d_width"],
                          **{k: b[k] for k in _BUDGET_FIELDS if k in b})


def _scores_dict(prefix: str, scores) -> dict[str, Any]:
    d = scores.as_dict()
    out = {f"{prefix}_{k}": v for k, v in d.items()
           if k in ("style_accuracy", "content_accuracy", "scene_accuracy", "l1_to_truth", "ssim_to_truth", "fd",
                    "fd_real_vs_real", "cycle_l1")}
    out.update({f"{prefix}_judge_on_truth_{k}": v for k, v in d["judge_on_truth"].items()})
    return out


def score_pair(model: CycleGAN, style_a: str, style_b: str, *, judge: nn.Module, n: int, size: int = 64,
               seed: int = 0, prefix: str = "", keep: tuple[str, ...] | None = None,
               extractor: nn.Module | None = None, baseline_sets: int = 0) -> dict[str, Any]:
    """What :func:`train_pair` records for a trained pair: both directions scored by
    :func:`spokenstyle.stylization.evaluate_translation` (``n`` held-out test scenes, the way back
    for the cycle L1), as flat manifest keys ``{prefix}{AB|BA}_{metric}``; ``keep`` limits the
    metrics. ``extractor`` is the FD feature network (default: the shipped ``"features"``).
    ``baseline_sets`` > 0 adds ``{AB|BA}_fd_real_vs_real_mean`` / ``_sd`` / ``_sets``: the
    real-vs-real FD over that many disjoint real sets (:func:`~spokenstyle.stylization.fd_real_baseline`)."""
    from ..models import features as feat
    from ..stylization import evaluate_translation, fd_real_baseline

    if not isinstance(baseline_sets, int) or isinstance(baseline_sets, bool) or baseline_sets == 1 or baseline_sets < 0:
        raise ValueError(f"baseline_sets must be 0 (no baseline) or an int >= 2, got {baseline_sets!r}")
    if baseline_sets and extractor is None:  # one network for the scores and the baseline
        extractor = feat.feature_extractor(weights="features")
    scores: dict[str, Any] = {}
    for direction, (src, dst) in (("AB", (style_a, style_b)), ("BA", (style_b, style_a))):
        back = "BA" if direction == "AB" else "AB"
        s = evaluate_translation(getattr(model, f"G_{direction}").translate, src, dst, judge=judge, n=n, size=size,
                                 back=getattr(model, f"G_{back}").translate, extractor=extractor,
                                 method="CycleGAN-lite", seed=seed)
        print(prefix, s)
        scores.update({k: v for k, v in _scores_dict(prefix + direction, s).items()
                       if keep is None or k.split("_", 1 + prefix.count("_"))[-1] in keep})
        if baseline_sets:
            mean, sd = fd_real_baseline(dst, n, size, extractor=extractor, sets=baseline_sets)
            scores.update({f"{prefix}{direction}_fd_real_vs_real_mean": mean, f"{prefix}{direction}_fd_real_vs_real_sd": sd,
                           f"{prefix}{direction}_fd_real_vs_real_sets": baseline_sets})
    return scores


def train_pair(out_dir: str | Path, style_a: str, style_b: str, *, runtime, name: str) -> dict[str, Any]:
    """Trains one CycleGAN-lite between ShapeScenes styles ``style_a`` and ``style_b`` (unpaired
    sampling: even train-split seeds in A, odd ones in B) with the budget row ``name``, scores both
    directions on held-out scenes with the shipped judge and FD, and saves the generators to
    ``out_dir`` (:func:`save_translator`)."""
    import shutil
    import time

    from ..data import unpaired_batches
    from .judge import scene_judge

    b = runtime.budget(name)
    torch.manual_seed(runtime.seed)
    model = cyclegan(config=config_from_budget(b))
    run_dir = runtime.run_dir(name)
    ema = GeneratorEMA(model, b["ema"]) if b.get("ema") else None
    t0 = time.perf_counter()
    history = train_cyclegan(model, unpaired_batches(b["batch_size"], style_a, style_b, b["resolution"],
                                                     seed=runtime.seed),
                             steps=b["steps"], lr=b["lr"], warmup=b.get("warmup", 0), ema=ema,
                             device=runtime.device, checkpoint_dir=run_dir, log_every=5 if b["steps"] < 2000 else 25,
                             desc=name)
    train_s = time.perf_counter() - t0
    model.eval()
    judge = scene_judge(weights="judge").to(runtime.device)
    scores: dict[str, Any] = {}
    common = dict(judge=judge, n=b["eval"], size=b["resolution"], seed=runtime.seed)
    if ema is not None:  # the last step's generators first, for the record; the average is shipped
        scores.update(score_pair(model, style_a, style_b, prefix="last_", **common,
                                 keep=("style_accuracy", "content_accuracy", "l1_to_truth", "ssim_to_truth", "fd")))
        ema.copy_to(model)
    scores.update(score_pair(model, style_a, style_b, **common, baseline_sets=5))
    scores.update(loss_G_first=history.mean("loss_G", last=None) if len(history["loss_G"]) < 4
                  else float(sum(history["loss_G"][:4]) / 4),
                  loss_G_last=history.mean("loss_G", last=4), loss_cycle_last=history.mean("loss_cycle", last=4),
                  steps=b["steps"], batch_size=b["batch_size"], lr=b["lr"], warmup=b.get("warmup", 0),
                  ema=b.get("ema", 0.0),
                  profile=runtime.profile, device=str(runtime.device), train_seconds=round(train_s, 1),
                  eval_scenes=b["eval"], torch_threads=torch.get_num_threads())
    model.cpu()
    save_translator(model, out_dir, metrics=scores,
                    extra={"pair": [style_a, style_b],
                           "data": f"ShapeScenes split 'train', unpaired: even seeds in {style_a}, odd "
                                   f"seeds in {style_b}, {b['resolution']} px; scored on split 'test'",
                           "judge": "judge (shipped)", "feature_extractor": _shipped_features(),
                           "note": (f"trained on {torch.get_num_threads()} CPU thread(s) of a shared 2-core "
                                    "machine; see the budget row's comment in spokenstyle.runtime")
                           if runtime.device.type == "cpu" else "",
                           "history": {k: list(v) for k, v in history.items()}})
    shutil.rmtree(run_dir, ignore_errors=True)
    return scores


def _shipped_features() -> str:
    """Which FD feature network scored a run: the shipped ``features`` checkpoint and its sha256."""
    (weights_name, info), = checkpoints.read_manifest(checkpoints.shipped_path("features"))["files"].items()
    return f"features (shipped), {weights_name} sha256 {info['sha256']}"


def _pair_recipe(name: str) -> Callable:
    def recipe(out_dir: str | Path, *, runtime) -> dict[str, Any]:
        style_a, style_b = PAIRS[name]
        return train_pair(out_dir, style_a, style_b, runtime=runtime, name=name)

    recipe.__name__ = recipe.__qualname__ = f"train_{name.removeprefix('cyclegan_')}"
    recipe.__doc__ = f"``spokenstyle train {name}``: CycleGAN-lite between {' and '.join(PAIRS[name])} (see :func:`train_pair`)."
    return recipe


train_flat_comic = _pair_recipe("cyclegan_flat_comic")
train_flat_pixel = _pair_recipe("cyclegan_flat_pixel")


def train_photo(out_dir: str | Path, *, runtime) -> dict[str, Any]:
    """``spokenstyle train cyclegan_photo``: CycleGAN-lite between photo patches (A) and painterly
    patches of *other* crops (B), unpaired; scored against the painterly filter's output on the
    same held-out patch (ground truth) beside the do-nothing baseline."""
    import shutil
    import time

    from ..data import photo_batches
    from ..stylization import evaluate_photo_translation

    b = runtime.budget("cyclegan_photo")
    torch.manual_seed(runtime.seed)
    model = cyclegan(config=config_from_budget(b))
    run_dir = runtime.run_dir("cyclegan_photo")
    ema = GeneratorEMA(model, b["ema"]) if b.get("ema") else None
    t0 = time.perf_counter()
    history = train_cyclegan(model, photo_batches(b["batch_size"], size=b["resolution"], filter=b["filter"],
                                                  seed=runtime.seed),
                             steps=b["steps"], lr=b["lr"], warmup=b.get("warmup", 0), ema=ema, device=runtime.device,
                             checkpoint_dir=run_dir, log_every=5 if b["steps"] < 2000 else 25, desc="cyclegan_photo")
    train_s = time.perf_counter() - t0
    model.eval()
    last = {}
    if ema is not None:  # the last step's generators, for the record; the average is shipped
        last = evaluate_photo_translation(model.G_AB.translate, filter=b["filter"], n=b["eval"], size=b["resolution"])
        last = {f"last_{k}": last[k] for k in ("l1_to_truth", "ssim_to_truth")}
        ema.copy_to(model)
    scores = evaluate_photo_translation(model.G_AB.translate, filter=b["filter"], n=b["eval"], size=b["resolution"],
                                        back=model.G_BA.translate)
    print(scores, last)
    scores.update(last)
    scores.update(loss_G_last=history.mean("loss_G", last=4), loss_cycle_last=history.mean("loss_cycle", last=4),
                  steps=b["steps"], batch_size=b["batch_size"], lr=b["lr"], warmup=b.get("warmup", 0),
                  ema=b.get("ema", 0.0), profile=runtime.profile, device=str(runtime.device),
                  train_seconds=round(train_s, 1), torch_threads=torch.get_num_threads())
    model.cpu()
    save_translator(model, out_dir, metrics=scores,
                    extra={"pair": ["photo", f"painterly ({b['filter']})"],
                           "data": "patches of the photos bundled with scikit-image, scikit-learn and "
                                   f"matplotlib (spokenstyle.data.PHOTO_CREDITS), train region; B = the "
                                   f"'{b['filter']}' filter on other crops; scored on the test region",
                           "note": (f"trained on {torch.get_num_threads()} CPU thread(s) of a shared 2-core "
                                    "machine; see the budget row's comment in spokenstyle.runtime")
                           if runtime.device.type == "cpu" else "",
                           "history": {k: list(v) for k, v in history.items()}})
    shutil.rmtree(run_dir, ignore_errors=True)
    return scores
