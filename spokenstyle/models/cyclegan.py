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

This file holds the networks and translation; the losses, the pool, the weight average and the
training loop are :mod:`spokenstyle.recipes.cyclegan`, and the scorecard is
:func:`spokenstyle.evaluation.evaluate_translation`.

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
* ``recipes.cyclegan.train_cyclegan(warmup=...)``: the identity is a local minimum of the reference objective (a
  move of one generator costs λ times the L1 it adds to the round trip and gains at most 1 in the
  LSGAN term), so the cycle and identity weights ramp up from 0 over the first steps;
* ``CycleGANConfig.position``: learned position channels at the generator's input, because halftone
  dots and pixel grids sit at fixed places on the canvas, which a convolution cannot know;
* ``recipes.cyclegan.GeneratorEMA``: the shipped generators are the running average of the generators' weights.

Three more options, all off by default (the shipped translators use none of them), for the
ablation of chapter 11 (``benchmarks/translator_ablation.py``):

* ``CycleGANConfig.skip``: U-Net skip connections (Ronneberger et al. 2015; pix2pix's U-Net
  generator, Isola et al. 2017): each encoder stage's features are concatenated to the decoder's
  input at the same resolution, so fine detail (a 5-pixel object) need not pass the bottleneck;
* ``CycleGANConfig.lambda_nce``: the PatchNCE loss of CUT (Park et al. 2020), beside the cycle
  loss or, with ``lambda_cycle = 0``, in its place: a patch of the translation must be more like
  the *same* patch of the source than like any other patch of it, in the generator's own
  encoder features after a small projection head (:class:`PatchProjector`; the heads ``P_AB``
  and ``P_BA`` exist only when the loss is on);
* ``CycleGANConfig.lambda_small``: an L1 term between the translation and its source, weighted
  toward small objects by a map computed from the source's pixels alone (no label:
  :func:`spokenstyle.recipes.cyclegan.small_object_weights`).

References for the options: Liu et al. 2018, "An intriguing failing of convolutional neural networks
and the CoordConv solution", https://arxiv.org/abs/1807.03247; Yazıcı et al. 2019, "The Unusual
Effectiveness of Averaging in GAN Training", https://arxiv.org/abs/1806.04498; Karras et al. 2018,
"Progressive Growing of GANs", https://arxiv.org/abs/1710.10196; Ronneberger, Fischer & Brox 2015,
"U-Net", https://arxiv.org/abs/1505.04597; Park, Efros, Zhang & Zhu 2020, "Contrastive Learning for
Unpaired Image-to-Image Translation" (CUT), https://arxiv.org/abs/2007.15651 and
https://github.com/taesungp/contrastive-unpaired-translation (``networks.py``: ``PatchSampleF``;
``patchnce.py``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Mapping

import torch
from torch import nn

from ..checkpoints import Pretrained
from .dcgan import to_tanh_range, to_unit_range

__all__ = [
    "CycleGANConfig",
    "ResnetBlock",
    "ResnetGenerator",
    "PatchDiscriminator",
    "PatchProjector",
    "CycleGAN",
    "reference_config",
    "receptive_field",
    "cyclegan",
    "cyclegan_generator",
    "NO_DISCRIMINATORS",
    "translate",
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
    skip: bool = False  # U-Net skip connections, encoder → decoder at each resolution (False = the reference)
    lambda_nce: float = 0.0  # weight of the PatchNCE loss (CUT: 1.0); 0 = off, no projection heads
    nce_patches: int = 256  # patches sampled per picture and layer for PatchNCE (CUT's num_patches)
    nce_dim: int = 64  # width of the PatchNCE projection heads (CUT: 256, for 256-channel features)
    nce_temperature: float = 0.07  # τ of the InfoNCE softmax (CUT's nce_T)
    lambda_small: float = 0.0  # weight of the small-object-weighted L1 between a translation and its source; 0 = off

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
        if not isinstance(self.skip, bool):
            raise ValueError(f"skip must be True or False, got {self.skip!r}")
        if self.skip and self.n_down < 1:
            raise ValueError("skip connections need n_down >= 1 (with no downsampling there is nothing to skip)")
        for name in ("lambda_nce", "lambda_small"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0:
                raise ValueError(f"{name} must be a non-negative number (0 = off), got {value!r}")
        for name in ("nce_patches", "nce_dim"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        if isinstance(self.nce_temperature, bool) or not isinstance(self.nce_temperature, (int, float)) \
                or not self.nce_temperature > 0:
            raise ValueError(f"nce_temperature must be a positive number, got {self.nce_temperature!r}")


def reference_config(resolution: int = 128) -> CycleGANConfig:
    """The paper's networks: ResNet generator with 64 channels and 9 blocks (the reference uses 9
    at 256 px and 6 at 128 px; the benchmark follows the issue's "ResNet-9") and the 70×70 PatchGAN."""
    return CycleGANConfig(resolution=resolution, g_width=64, n_blocks=9, d_width=64, d_layers=3)


# -- models ------------------------------------------------------------------------------------

class ResnetGenerator(nn.Module):
    """image (B, 3, R, R) in [-1, 1] → translated image (B, 3, R, R) in [-1, 1].

    Layout with ``g_width = w`` and two downsamplings, at 64 px:
    64×64×3 → 64×64×w → 32×32×2w → 16×16×4w → (n_blocks residual blocks) → 32×32×2w → 64×64×w → 64×64×3.

    With ``config.skip`` (U-Net skips) the features of each encoder stage above the bottleneck
    (64×64×w, 32×32×2w) are concatenated to the decoder's tensor of the same size before its next
    layer, which therefore takes twice the channels: the layers and their names stay the same.
    """

    def __init__(self, config: CycleGANConfig) -> None:
        super().__init__()
        if not isinstance(config, CycleGANConfig):
            raise TypeError(f"config must be a CycleGANConfig, got {type(config).__name__}")
        self.config = c = config
        bias = c.norm == "instance"
        w = c.g_width
        wide = 2 if c.skip else 1  # a decoder layer that receives a skip takes twice the channels
        # position channels: a learned (P, R, R) map, zero at init (G starts as the plain network)
        self.position = nn.Parameter(torch.zeros(1, c.position, c.resolution, c.resolution)) if c.position else None
        layers: list[nn.Module] = [nn.ReflectionPad2d(3), nn.Conv2d(c.channels + c.position, w, 7, bias=bias),
                                   _norm(c.norm, w), nn.ReLU(inplace=True)]  # (B, w, R, R)
        stages = [len(layers) - 1]  # index of the last layer of each encoder stage (its output is a feature map)
        for i in range(c.n_down):
            m = w * 2 ** i
            layers += [nn.Conv2d(m, 2 * m, 3, stride=2, padding=1, bias=bias), _norm(c.norm, 2 * m),
                       nn.ReLU(inplace=True)]  # (B, 2m, H/2, W/2)
            stages.append(len(layers) - 1)
        m = w * 2 ** c.n_down
        layers += [ResnetBlock(m, c.norm) for _ in range(c.n_blocks)]  # (B, m, R/2^n, R/2^n)
        if c.n_blocks:
            stages.append(len(layers) - c.n_blocks)  # the first residual block (CUT samples one in the middle too)
        concat_at = []  # indices of the decoder layers that take an encoder stage's features as well
        for i in range(c.n_down):
            m = w * 2 ** (c.n_down - i)
            if i > 0:
                concat_at.append(len(layers))
            layers += [nn.ConvTranspose2d(m * (wide if i > 0 else 1), m // 2, 3, stride=2, padding=1,
                                          output_padding=1, bias=bias),
                       _norm(c.norm, m // 2), nn.ReLU(inplace=True)]  # (B, m/2, 2H, 2W)
        concat_at.append(len(layers))
        layers += [nn.ReflectionPad2d(3), nn.Conv2d(w * wide, c.channels, 7)]  # (B, 3, R, R), before the tanh
        self.net = nn.Sequential(*layers)
        self._encoder_stages = tuple(stages)  # what encode() returns: stem, each downsampling, first block
        self._skip_from = tuple(stages[: c.n_down]) if c.skip else ()  # stages above the bottleneck
        self._skip_to = tuple(concat_at) if c.skip else ()
        self.apply(cyclegan_init_)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) in [-1, 1] → (B, 3, H, W) in [-1, 1]; H and W divisible by 2**n_down."""
        _check_images(x, self.config, "x")
        h = self._with_position(x) if self.position is not None else x
        out = self.net(h) if not self._skip_to else self._forward_with_skips(h)  # (B, 3, H, W) pre-activation
        if self.config.residual:  # a change in tanh's pre-activation space: out = x when net(x) = 0
            out = out + torch.atanh(x.clamp(-0.999, 0.999))
        return torch.tanh(out)

    def _forward_with_skips(self, h: torch.Tensor) -> torch.Tensor:
        """The layers of ``net`` in order, with each encoder stage's output concatenated to the
        decoder's tensor of the same resolution (the deepest skip first, as in a U-Net)."""
        saved: list[torch.Tensor] = []
        for i, layer in enumerate(self.net):
            if i in self._skip_to:
                h = torch.cat([h, saved.pop()], 1)  # (B, 2C, H, W)
            h = layer(h)
            if i in self._skip_from:
                saved.append(h)
        return h

    def encode(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The encoder's feature maps of ``x`` (B, 3, H, W) in [-1, 1]: the output of the 7×7 stem,
        of each downsampling and of the first residual block, [(B, C_l, H_l, W_l), ...] (what
        PatchNCE compares between a picture and its translation; CUT's ``encode_only``)."""
        _check_images(x, self.config, "x")
        h = self._with_position(x) if self.position is not None else x
        feats = []
        for i, layer in enumerate(self.net[: self._encoder_stages[-1] + 1]):
            h = layer(h)
            if i in self._encoder_stages:
                feats.append(h)
        return feats

    def encoder_channels(self) -> list[int]:
        """Channels of each map :meth:`encode` returns (what a :class:`PatchProjector` is built for)."""
        c = self.config
        chans = [c.g_width * 2 ** i for i in range(c.n_down + 1)]
        return chans + ([chans[-1]] if c.n_blocks else [])

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
    map is 6×6, and each window is larger than the picture (the reference's 70 px are about a
    quarter of a 256 px side). ``d_layers = 2`` sees 34×34, ``d_layers = 1`` 16×16 (chapter 5
    measures them). The LSGAN losses average over patches.
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


class PatchProjector(nn.Module):
    """PatchNCE's projection heads (CUT's ``PatchSampleF``): one two-layer MLP per encoder map,
    applied to feature vectors sampled at a few locations, then L2-normalised.

    ``forward(feats, n, ids=None)`` takes the maps of :meth:`ResnetGenerator.encode`, samples
    ``n`` locations per map (the same locations for every picture of the batch; ``ids`` reuses
    the locations of an earlier call, so a translation is sampled where its source was) and
    returns ``(projections, ids)``: per map a (B·n, nce_dim) tensor of unit vectors and the
    (n,) flat indices used. The heads only train; a translator's checkpoint does not keep them.
    """

    def __init__(self, channels: list[int], dim: int = 64) -> None:
        super().__init__()
        if not channels or any(not isinstance(c, int) or c < 1 for c in channels):
            raise ValueError(f"channels must be a non-empty list of positive ints, got {channels!r}")
        self.heads = nn.ModuleList(nn.Sequential(nn.Linear(c, dim), nn.ReLU(inplace=True), nn.Linear(dim, dim))
                                   for c in channels)
        for head in self.heads:  # CUT's init_net(init_type='normal', gain 0.02)
            for layer in head:
                if isinstance(layer, nn.Linear):
                    nn.init.normal_(layer.weight, 0.0, 0.02)
                    nn.init.zeros_(layer.bias)

    def forward(self, feats: list[torch.Tensor], n: int,
                ids: list[torch.Tensor] | None = None) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        if len(feats) != len(self.heads):
            raise ValueError(f"got {len(feats)} feature maps for {len(self.heads)} heads")
        out, used = [], []
        for k, (f, head) in enumerate(zip(feats, self.heads)):
            b, c, h, w = f.shape
            flat = f.flatten(2).transpose(1, 2)  # (B, H*W, C)
            idx = ids[k] if ids is not None else torch.randperm(h * w, device=f.device)[: min(n, h * w)]
            x = head(flat[:, idx, :].flatten(0, 1))  # (B*n, dim)
            out.append(nn.functional.normalize(x, dim=1))
            used.append(idx)
        return out, used


def receptive_field(config: CycleGANConfig) -> int:
    """The side, in pixels, of the window each score of a :class:`PatchDiscriminator` sees.

    Each layer of kernel k and stride s widens the window by (k − 1) times the product of the
    strides before it: ``d_layers`` strided 4×4 layers and two 4×4 layers of stride 1 give 70 px
    for the reference's three (Isola et al. 2017, §3.2.2) and 34 px for two. At 64 px a 70 px
    window sees the whole picture: there the PatchGAN is no longer local.
    """
    if not isinstance(config, CycleGANConfig):
        raise TypeError(f"config must be a CycleGANConfig, got {type(config).__name__}")
    field_, jump = 1, 1
    for stride in [2] * config.d_layers + [1, 1]:  # the layers of PatchDiscriminator.__init__, in order
        field_ += 3 * jump  # kernel 4: (4 - 1) * jump
        jump *= stride
    return field_


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


NO_DISCRIMINATORS = "not saved: a translator needs only G_AB and G_BA (training resumes from the run directory)"


class CycleGAN(Pretrained, nn.Module):
    """The four networks in one module: ``G_AB``, ``G_BA``, ``D_A``, ``D_B`` (and, when
    ``config.lambda_nce`` > 0, PatchNCE's projection heads ``P_AB`` and ``P_BA``, which train with
    the generators and, like the discriminators, are not saved with a translator).

    A trained translator's checkpoint keeps the generators only (:meth:`save_pretrained`; the
    discriminators, about 40 % of the weights at width 32, only matter for training, which resumes
    from its run directory); :meth:`from_pretrained` then gives the discriminators a fresh
    initialisation. ``CycleGAN.from_pretrained("cyclegan_flat_comic")`` is a shipped translator."""

    config_class = CycleGANConfig

    def __init__(self, config: CycleGANConfig | None = None) -> None:
        super().__init__()
        self.config = config = config or CycleGANConfig()
        if not isinstance(config, CycleGANConfig):
            raise TypeError(f"config must be a CycleGANConfig, got {type(config).__name__}")
        self.G_AB = ResnetGenerator(config)  # A → B
        self.G_BA = ResnetGenerator(config)  # B → A
        self.D_A = PatchDiscriminator(config)  # real A vs G_BA(b)
        self.D_B = PatchDiscriminator(config)  # real B vs G_AB(a)
        if config.lambda_nce > 0:  # PatchNCE's projection heads, one set per generator (training only)
            self.P_AB = PatchProjector(self.G_AB.encoder_channels(), config.nce_dim)
            self.P_BA = PatchProjector(self.G_BA.encoder_channels(), config.nce_dim)

    def generators(self) -> nn.ModuleDict:
        """``G_AB`` and ``G_BA`` alone, under the same state-dict keys: what a trained recipe saves
        (the discriminators only matter for training, which resumes from the run directory)."""
        return nn.ModuleDict({"G_AB": self.G_AB, "G_BA": self.G_BA})

    def save_pretrained(self, directory: str | Path, *, metrics: Mapping[str, Any] | None = None,
                        command: str | None = None, extra: Mapping[str, Any] | None = None) -> Path:
        """Saves the generators (not the discriminators) with the config, metrics and command."""
        return super().save_pretrained(directory, metrics=metrics, command=command,
                                       extra={**dict(extra or {}), "discriminators": NO_DISCRIMINATORS})

    def _weights_module(self, manifest: Mapping[str, Any] | None) -> nn.Module:
        if manifest is None or (manifest.get("extra") or {}).get("discriminators") == NO_DISCRIMINATORS:
            return self.generators()
        return self  # a checkpoint of all four networks (older saves)


# -- builders ----------------------------------------------------------------------------------

def cyclegan(*, config: CycleGANConfig | None = None, weights: str | Path | None = None,
             **overrides: Any) -> CycleGAN:
    """A CycleGAN (``.G_AB``, ``.G_BA``, ``.D_A``, ``.D_B``) (Zhu et al. 2017, https://arxiv.org/abs/1703.10593).

    Args:
        config: the architecture; ``None`` = :class:`CycleGANConfig` defaults. Keyword ``overrides``
            replace single fields (``cyclegan(n_blocks=2)``).
        weights: ``None`` for random init, a shipped checkpoint's name (``"cyclegan_flat_comic"``)
            or a checkpoint folder; the architecture then comes from the checkpoint, in eval mode.
            A translator's checkpoint holds the generators only: the discriminators are then
            freshly initialised (:meth:`CycleGAN.save_pretrained`).
    """
    if weights is None:
        if config is not None and not isinstance(config, CycleGANConfig):
            raise TypeError(f"config must be a CycleGANConfig or None, got {type(config).__name__}")
        base = asdict(config) if config is not None else {}
        return CycleGAN(CycleGANConfig(**{**base, **overrides}))
    if config is not None or overrides:
        raise ValueError("give either weights (the checkpoint fixes the architecture) or config/overrides, not both")
    return CycleGAN.from_pretrained(weights)


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
