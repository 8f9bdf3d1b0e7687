"""The fusion generator F (step 4 of the source's algorithm) and its projection discriminator.

F draws the *content of a sentence* in the *style of a target picture*::

    F(z, sentence tokens, style image) -> picture (B, 3, 64, 64) in [0, 1]

* **Words.** The sentence is the only content input. A small learned text encoder (token
  embeddings → bidirectional GRU) reads it in either register, formal or spoken; six learned
  *colour queries* attend over its states (one per ShapeScenes colour, like the scene judge's
  colour-query pooling, but over words) and give one content vector per colour: is there an
  object of this colour, and which shape and size. A head reads the six answers (absent, or
  shape × size) out of them, trained on the scene's ground truth: the grounding signal that makes
  CPU training feasible. Those answers, the *slot distributions*, are all that the drawing
  sees of the words: a bottleneck that keeps the sentence's wording out of the shapes.
* **Style.** A small convolutional style encoder reads the target picture (any scene in the
  target style) and pools channel means and standard deviations (the statistics AdaIN transfers,
  Huang & Belongie 2017) into a style code; every decoder block is modulated by it (AdaIN).
* **Where.** A sentence says *what* is in the picture and roughly how the objects stand to each
  other, never *where* exactly. That freedom is ``z``: a small latent *layout code* decoded, with
  the sentence, into one position per colour. In training, z comes from encoding the ground-truth
  layout (a conditional VAE, as in BicycleGAN's cVAE-GAN, Zhu et al. 2017) and the decoder
  uses the true positions, so a pixel loss against the ground-truth render is meaningful (not an
  average over all layouts); at test time ``z ~ N(0, I)`` and the layout decoder places the objects.
* **Drawing.** A *shape field* (a spatial-broadcast decoder, Watters et al. 2019) paints each
  mentioned colour's object: a small MLP reads, at every point of a patch around the colour's
  position, the offset from the centre (as sine/cosine features, Tancik et al. 2020, so that
  corners and points are as easy to learn as curves) and the colour's slot distribution (which
  shape and size), and gives an occupancy in [0, 1] and a few features; the slot's probability
  of being present gates it; the patches are pasted into a 64 px object map (features,
  coverage, and each object in its colour word's nominal RGB, the one piece of world knowledge F
  is given rather than made to learn). In training the occupancies are supervised with the true colour masks, which
  teaches shapes and sizes directly. AdaIN convolution blocks then *style* the object map
  (outlines, hatching, glow, halftone), with fixed sine/cosine channels as raw material for the
  backgrounds' periodic textures; a sigmoid gives [0, 1]. At test time the decoded layout is
  spread apart (:func:`spread_layout`) so that the objects a sentence mentions never pile up.

The discriminator D is a projection discriminator (Miyato & Koyama 2018): a spectrally
normalised convolutional trunk gives features φ(x), and

    D(x, style, text) = ψ(φ(x)) + ⟨e_style, φ(x)⟩ + ⟨W t(text), φ(x)⟩

where e_style is a learned embedding of the target style and t(text) an n-gram (1-D
convolution) encoding of the sentence. It is trained with the hinge loss; real pictures paired
with another scene's sentence count as fake too (the matching-aware discriminator of Reed et
al. 2016), which only changes the text term, so it costs no extra convolution.

References:
    Miyato & Koyama 2018, "cGANs with Projection Discriminator", https://arxiv.org/abs/1802.05637
    Huang & Belongie 2017, "Arbitrary Style Transfer in Real-time with Adaptive Instance
    Normalization", https://arxiv.org/abs/1703.06868
    Reed et al. 2016, "Generative Adversarial Text to Image Synthesis", https://arxiv.org/abs/1605.05396
    Zhang et al. 2017 (StackGAN), Xu et al. 2018 (AttnGAN): text-conditioned image GANs.
    Zhu et al. 2017, "Toward Multimodal Image-to-Image Translation" (BicycleGAN), https://arxiv.org/abs/1711.11586
    Watters et al. 2019, "Spatial Broadcast Decoder", https://arxiv.org/abs/1901.07017
    Reddi et al. 2018, "On the Convergence of Adam and Beyond" (AMSGrad), https://arxiv.org/abs/1904.09237
    Tancik et al. 2020, "Fourier Features Let Networks Learn High Frequency Functions in Low
    Dimensional Domains", https://arxiv.org/abs/2006.10739

Deviations, each for small CPU-trainable models: the content queries are tied to the six
ShapeScenes colours (colours are distinct within a scene, so they name the objects); an L1
reconstruction loss against the ground-truth render and a mask loss on the shape field carry
most of the training signal and the adversarial term sharpens textures; the layout is
teacher-forced in training.
"""

from __future__ import annotations

import copy
import inspect
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Sequence

import torch
import torch.nn.functional as Fn
from torch import nn
from torch.nn.utils import spectral_norm

from .. import checkpoints

__all__ = [
    "FusionConfig",
    "TextEncoder",
    "StyleEncoder",
    "FusionGenerator",
    "FusionDiscriminator",
    "FusionGAN",
    "tokenize",
    "fuse",
    "load_fusion",
    "load_fusion_pair",
    "load_judge",
    "fusion_batches",
    "fusion_step",
    "mask_loss",
    "step_kwargs",
    "train_fusion",
    "colour_positions",
    "ShapeField",
    "spread_layout",
    "VALIDATION_START",
    "check_clear_of_validation",
    "outlines",
    "calibrate_occupancy",
    "config_for",
    "refine_budget",
    "drawing_blocks",
    "evaluate",
    "train",
]

N_COLOURS = 6  # spokenstyle.data.scenes.COLOURS
N_SLOT_CLASSES = 13  # absent, or one of 6 shapes x 2 sizes (SceneBatch.colour_slots)


# -- config ------------------------------------------------------------------------------------

@dataclass
class FusionConfig:
    """The shape of F and D. ``asdict(config)`` is stored in every checkpoint."""

    resolution: int = 64  # output side in pixels; ShapeScenes' default size and the judge's input
    vocab_size: int = 384  # the project tokenizer has 347 ids; padded so a rebuilt tokenizer still fits
    max_tokens: int = 64  # longer sentences are truncated (the grammars' longest spoken caption has ~50)
    text_dim: int = 64  # token embedding size and GRU hidden size per direction
    content_dim: int = 64  # one content vector per colour: what is drawn where that colour goes
    style_dim: int = 64  # the style code (from channel means and standard deviations)
    latent_dim: int = 8  # the layout code z: six 2-D positions need few degrees of freedom
    g_width: int = 24  # decoder channels at 32 px (the two AdaIN blocks there)
    width_64: int = 12  # channels of the one AdaIN block at 64 px: the costliest layer on a CPU
    # The full recipe uses 24, with the L1 on 2 x 2 averages (fusion_step's rec_pool = 2). With the
    # per-pixel L1 (one CPU thread, 480 held-out scenes, spoken; attribute match / style): 87.0 / 79.8 %
    # (seed 0), 88.2 / 72.9 % (seed 1) at 24, against 84.5 / 95.8 % and 82.4 / 85.6 % at 12; 32 diverged
    # (L1 0.025 -> 0.28), and so did one further seed-0 run at 24 (L1 0.03 -> 0.3 near step 1,500).
    # The style lost at 24 is sketch read as flat: the judge's cue is the paper grain (adding the
    # renderer's grain to those pictures made 200 of 200 read as sketch), which a per-pixel L1 washes out
    d_width: int = 24  # D's first-layer channels, doubled per stride (SNGAN-style trunk)
    n_styles: int = 6  # spokenstyle.data.styles.STYLES
    field_hidden: int = 32  # the shape field's hidden units (a per-pixel MLP, run once per colour)
    field_features: int = 8  # what the shape field paints inside an object, besides its occupancy
    field_frequencies: int = 6  # sine/cosine frequencies of the shape field's offsets; 0 = raw offsets (soft blobs)
    field_layers: int = 3  # hidden layers of the shape field's per-point MLP
    fourier: int = 4  # frequencies of the fixed sine/cosine texture channels at 32 and 64 px (periodic textures)
    outlines: bool = True  # the object map also carries each object's outline, plain and in its colour
    min_gap: float = 0.6  # test-time layouts keep object centres this far apart (two large objects: 2 x 0.25 + a gap)
    # the mask loss's pos_weight w that the object map undoes: it draws p = q / (w - (w - 1) q) from
    # the shape field's occupancy q (calibrate_occupancy). 1 = draw q itself: the recipe's default
    # and the shipped F (calibrate_occupancy's docstring gives the runs with 10)
    occupancy_calibration: float = 1.0
    # per-pixel Gaussian noise into the 64 px block, scaled per channel by learned weights that start
    # at zero (StyleGAN's noise inputs, Karras et al. 2019): the only source of a texture that is
    # random at every pixel, like sketch's and watercolour's paper grain. False: the shipped F
    # (runs of the full recipe with noise=True, seed 0: 78.6 / 78.3 % at width_64 12; 48.4 / 75.2 % at 24: not yet a gain)
    noise: bool = False
    # the style code divided by its root mean square (StyleGAN's pixel norm, Karras et al. 2019), so
    # its length is fixed at sqrt(style_dim): see StyleEncoder. The recipe sets it; False is the default
    # so that checkpoints from before it (whose manifests lack the field) load unchanged
    style_norm: bool = False

    def __post_init__(self) -> None:
        if self.resolution != 64:
            raise ValueError(f"resolution must be 64 (the decoder upsamples 16 -> 32 -> 64), got {self.resolution!r}")
        for name in ("vocab_size", "max_tokens", "text_dim", "content_dim", "style_dim", "latent_dim", "g_width",
                     "width_64", "d_width", "n_styles", "fourier", "field_hidden", "field_features", "field_layers"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        if self.max_tokens < 2:
            raise ValueError(f"max_tokens must be at least 2 (<bos> and <eos>), got {self.max_tokens}")
        if isinstance(self.field_frequencies, bool) or not isinstance(self.field_frequencies, int) \
                or not 0 <= self.field_frequencies <= 10:
            raise ValueError(f"field_frequencies must be an int in [0, 10] (0: raw offsets), got {self.field_frequencies!r}")
        if not self.min_gap > 0:
            raise ValueError(f"min_gap must be positive, got {self.min_gap!r}")
        if not isinstance(self.outlines, bool):
            raise ValueError(f"outlines must be True or False, got {self.outlines!r}")
        if not isinstance(self.noise, bool):
            raise ValueError(f"noise must be True or False, got {self.noise!r}")
        if not isinstance(self.style_norm, bool):
            raise ValueError(f"style_norm must be True or False, got {self.style_norm!r}")
        if isinstance(self.occupancy_calibration, bool) or not isinstance(self.occupancy_calibration, (int, float)) \
                or not self.occupancy_calibration >= 1:
            raise ValueError("occupancy_calibration must be a number >= 1 (the mask loss's pos_weight; 1 = none), "
                             f"got {self.occupancy_calibration!r}")


# -- blocks ------------------------------------------------------------------------------------

class TextEncoder(nn.Module):
    """tokens (B, T) int64 → states (B, T, 2·text_dim), sentence vector (B, 2·text_dim) and one
    content vector per colour (B, 6, content_dim) with the auxiliary slot logits (B, 6, 13)."""

    def __init__(self, config: FusionConfig) -> None:
        super().__init__()
        c = config
        self.embed = nn.Embedding(c.vocab_size, c.text_dim, padding_idx=0)
        self.gru = nn.GRU(c.text_dim, c.text_dim, batch_first=True, bidirectional=True)
        h = 2 * c.text_dim
        self.queries = nn.Parameter(torch.randn(N_COLOURS, h) / math.sqrt(h))  # one query per colour
        self.keys = nn.Linear(h, h)
        self.content = nn.Sequential(nn.Linear(h, c.content_dim), nn.ReLU(inplace=True),
                                     nn.Linear(c.content_dim, c.content_dim))
        self.slot_head = nn.Linear(c.content_dim, N_SLOT_CLASSES)

    def forward(self, tokens: torch.Tensor):
        mask = tokens != 0  # (B, T) real tokens
        states, _ = self.gru(self.embed(tokens))  # (B, T, h)
        m = mask[..., None].float()
        sentence = (states * m).sum(1) / m.sum(1).clamp(min=1)  # (B, h) masked mean
        scores = torch.einsum("kh,bth->bkt", self.queries, self.keys(states)) / math.sqrt(states.shape[-1])
        attn = scores.masked_fill(~mask[:, None, :], float("-inf")).softmax(-1)  # (B, 6, T)
        pooled = torch.einsum("bkt,bth->bkh", attn, states)  # (B, 6, h)
        content = self.content(pooled)  # (B, 6, content_dim): what the sentence says about colour k
        slot_logits = self.slot_head(content)  # (B, 6, 13)
        return sentence, content, slot_logits


class StyleEncoder(nn.Module):
    """style image (B, 3, 64, 64) in [0, 1] → style code (B, style_dim): strided convolutions,
    then each channel's mean and standard deviation (AdaIN's style statistics) → linear; with
    ``config.style_norm``, divided by its root mean square.

    Why the norm: in a full-recipe run that collapsed (seed 2, D at half F's rate; one CPU thread),
    the L1's gradient on this encoder grew from about 1 at step 900 to 2.4 at step 1,000, and then
    over twenty steps Adam lengthened all four of its layers together (their weights' norm 9.8 ->
    12.8), a product that multiplied the codes' length from about 4 to 119 by step 1,100. AdaIN's
    scales and shifts followed, the blocks' ReLUs went dead or saturated, L1 jumped from 0.024
    to 0.12, and its gradient on the encoder fell to 0.06, so nothing pulled F back. With the
    code's length fixed, scaling the encoder's weights changes nothing downstream. Runs of the
    full recipe without it (one CPU thread each): seeds 0 and 2 trained, seed 1 ended unstable
    (L1 0.03 to 0.045, against 0.013) and seed 3 collapsed (L1 0.02 -> 0.2 near step 1,600).
    With it, none of the recipe's runs collapsed (``benchmarks/fusion_runs.py`` scores them all)."""

    def __init__(self, config: FusionConfig) -> None:
        super().__init__()
        self.normalize = config.style_norm
        w = 16
        self.net = nn.Sequential(
            nn.Conv2d(3, w, 4, 2, 1), nn.LeakyReLU(0.2, inplace=True),  # (B, w, 32, 32)
            nn.Conv2d(w, 2 * w, 4, 2, 1), nn.LeakyReLU(0.2, inplace=True),  # (B, 2w, 16, 16)
            nn.Conv2d(2 * w, 4 * w, 4, 2, 1), nn.LeakyReLU(0.2, inplace=True),  # (B, 4w, 8, 8)
        )
        self.out = nn.Linear(8 * w, config.style_dim)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        h = self.net(images * 2 - 1)  # (B, 4w, 8, 8)
        stats = torch.cat([h.mean((2, 3)), h.flatten(2).std(-1)], 1)  # (B, 8w)
        code = self.out(stats)  # (B, style_dim)
        if self.normalize:  # pixel norm: unit root mean square, length sqrt(style_dim)
            code = code * torch.rsqrt(code.square().mean(1, keepdim=True) + 1e-8)
        return code


class AdaINBlock(nn.Module):
    """3 × 3 convolution (+ per-channel scaled noise, with ``noise=True``) → instance norm → scale
    and shift from the style code (AdaIN) → ReLU."""

    def __init__(self, c_in: int, c_out: int, style_dim: int, *, noise: bool = False) -> None:
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, 3, padding=1)
        # StyleGAN's noise input: one learned weight per channel, zero at the start
        self.noise_weight = nn.Parameter(torch.zeros(c_out)) if noise else None
        self.norm = nn.InstanceNorm2d(c_out, affine=False)
        self.affine = nn.Linear(style_dim, 2 * c_out)
        nn.init.zeros_(self.affine.weight)
        with torch.no_grad():  # start as plain instance norm: gamma = 1, beta = 0
            self.affine.bias.copy_(torch.cat([torch.ones(c_out), torch.zeros(c_out)]))

    def forward(self, x: torch.Tensor, style: torch.Tensor, noise: torch.Tensor | None = None) -> torch.Tensor:
        """x (B, c_in, H, W), style (B, style_dim); noise (B, 1, H, W), drawn from N(0, 1) here if
        the block takes noise and none is given (ignored otherwise)."""
        gamma, beta = self.affine(style)[:, :, None, None].chunk(2, 1)  # (B, c_out, 1, 1) each
        h = self.conv(x)
        if self.noise_weight is not None:
            if noise is None:
                noise = torch.randn(h.shape[0], 1, *h.shape[2:], device=h.device, dtype=h.dtype)
            h = h + self.noise_weight[None, :, None, None] * noise
        return Fn.relu(gamma * self.norm(h) + beta)


def _grid(size: int, device: torch.device) -> torch.Tensor:
    """(size*size, 2) pixel centres (x right, y down) in [-1, 1], like the renderer's."""
    t = (torch.arange(size, device=device, dtype=torch.float32) + 0.5) / size * 2 - 1
    y, x = torch.meshgrid(t, t, indexing="ij")
    return torch.stack([x.flatten(), y.flatten()], -1)


def fourier_features(size: int, n: int, device: torch.device) -> torch.Tensor:
    """(1, 4n, size, size) fixed sin/cos of x and y at n frequencies (2, 4, 8, ... cycles per
    side up to the Nyquist limit): the spatial source that periodic textures (hatching, halftone
    dots, a pixel grid, a neon wall) need, since the splatted map is empty in the background."""
    t = (torch.arange(size, device=device, dtype=torch.float32) + 0.5) / size  # (size,)
    freqs = [min(2 ** (k + 1), size // 2) for k in range(n)]
    chans = []
    for f in freqs:
        for fn in (torch.sin, torch.cos):
            wave = fn(2 * math.pi * f * t)
            chans += [wave[None, :].expand(size, size), wave[:, None].expand(size, size)]  # along x, along y
    return torch.stack(chans)[None]


class ShapeField(nn.Module):
    """Per colour: (offset from the colour's centre, what to draw) → occupancy and features on a
    small patch around the centre, pasted into the canvas. A spatial-broadcast decoder (Watters
    et al. 2019): what to draw (a distribution over the 12 shape × size classes) is the same at
    every point of the patch, the offset tells
    the MLP where the point is relative to the object, and the MLP learns which offsets lie
    inside a small star or a large square. Working on a patch (an object is at most 0.25 canvas
    units in radius) instead of the whole canvas makes it ten times cheaper.

    The offset enters through sines and cosines at ``field_frequencies`` octaves (Fourier
    features, Tancik et al. 2020), not as two raw numbers: an MLP of raw coordinates is biased
    towards smooth functions and draws every shape as a soft blob for thousands of steps.
    ``field_frequencies=0`` restores the raw offsets, for that comparison."""

    extent = 0.32  # half-width of the patch in canvas units: a large object's radius plus a margin
    patch = 20  # points per side: about one per canvas pixel at 64 px

    def __init__(self, config: FusionConfig) -> None:
        super().__init__()
        h, k = config.field_hidden, config.field_frequencies
        self.frequencies = k
        self.coord = nn.Linear(4 * k if k else 2, h)
        self.cond = nn.Linear(N_SLOT_CLASSES - 1, h)  # what to draw: a distribution over (shape, size)
        self.hidden = nn.ModuleList([nn.Linear(h, h) for _ in range(config.field_layers - 1)])
        self.out = nn.Linear(h, 1 + config.field_features)

    def encode_offsets(self, local: torch.Tensor) -> torch.Tensor:
        """(P, 2) offsets in large-object radii → (P, 4k) sin and cos of π/2 · 2^j · offset,
        j = 0 … k − 1 (periods from 4 radii down to a pixel or two), or the raw (P, 2) when k = 0."""
        if not self.frequencies:
            return local
        freqs = (math.pi / 2) * 2.0 ** torch.arange(self.frequencies, device=local.device, dtype=local.dtype)
        angles = (local[:, :, None] * freqs).flatten(1)  # (P, 2k)
        return torch.cat([angles.sin(), angles.cos()], 1)

    def forward(self, what: torch.Tensor, positions: torch.Tensor, size: int):
        """(B, 6, 12) what to draw per colour (a distribution over shape × size), (B, 6, 2) centres →
        occupancy (B, 6, size, size) in [0, 1] and features (B, 6, f, size, size)."""
        B, K, _ = what.shape
        n = self.patch
        t = (torch.arange(n, device=what.device, dtype=torch.float32) + 0.5) / n * 2 - 1  # patch coords in [-1, 1]
        y, x = torch.meshgrid(t, t, indexing="ij")
        local = torch.stack([x.flatten(), y.flatten()], -1) * (self.extent / 0.25)  # (n², 2) in large radii
        h = Fn.relu(self.coord(self.encode_offsets(local))[None, None] + self.cond(what)[:, :, None])  # (B, 6, n², h)
        for layer in self.hidden:
            h = Fn.relu(layer(h))
        out = self.out(h)  # (B, 6, n², 1 + f)
        patch = torch.cat([torch.sigmoid(out[..., :1]), out[..., 1:]], -1)  # occupancy in [0, 1], features
        patch = patch.transpose(2, 3).reshape(B * K, -1, n, n)  # (B·6, 1 + f, n, n)
        # paste: canvas point g samples the patch at (g - centre) / extent (zero outside the patch)
        grid = (_grid(size, what.device)[None] - positions.reshape(B * K, 1, 2)) / self.extent  # (B·6, P, 2)
        pasted = Fn.grid_sample(patch, grid.view(B * K, size, size, 2), mode="bilinear", padding_mode="zeros",
                                align_corners=False)  # (B·6, 1 + f, size, size)
        pasted = pasted.view(B, K, -1, size, size)
        return pasted[:, :, 0], pasted[:, :, 1:]


def calibrate_occupancy(occupancy: torch.Tensor, pos_weight: float) -> torch.Tensor:
    """Undoes the bias a weighted mask loss puts into the shape field: ``q ↦ q / (w − (w − 1) q)``.

    Trained with object pixels weighing ``w`` (:func:`mask_loss`), the field's best answer at a
    pixel that is inside with probability p is q = w·p / ((w − 1)·p + 1); solving for p gives this
    map, so a field trained at w = 10 draws its objects at their true extent (q = 0.91 ↦ p = 0.5)
    while it still learns small objects from the weighted loss. Monotone, 0 ↦ 0, 1 ↦ 1; w = 1 is
    the identity.

    Measured on the first-phase F (trained at w = 10, drawing q; shipped before the recipe had a
    second phase): the judge read 77.6 % of the objects of flat pictures composited from its raw
    occupancy and 98.2 % from the calibrated one (99.3 %
    in the real renders; 300 held-out scenes, true sentences and layouts): the field knows the
    shapes, and the dilation hides them. Training *with* the calibrated object map
    (``occupancy_calibration=10``, otherwise the full recipe, one CPU thread, 480 held-out scenes)
    has not paid yet: from scratch, seed 1 ended at attribute match 81.1 % with style 78.1 % and
    seed 0 diverged (L1 0.026 → 0.15 after step 1,500, D winning); continuing that F for
    1,000 steps at lr 5e-4 gave 83.6 % / style 96.3 % with it and 86.1 % / 89.6 % without it
    (that F, the first phase alone: 80.9 % / 95.4 %); 2,000 steps with it, 81.6 % / 94.8 %. So the
    recipe keeps 1, and its second phase (:func:`refine_budget`) draws the raw occupancy too."""
    if pos_weight == 1:
        return occupancy
    return occupancy / (pos_weight - (pos_weight - 1) * occupancy)


def outlines(alpha: torch.Tensor) -> torch.Tensor:
    """Each object's outline: (B, K, H, W) coverage in [0, 1] → (B, K, H, W), its morphological
    gradient (3 × 3 dilation minus 3 × 3 erosion), a band about two pixels wide along the edge.

    Three of the six styles draw outlines (sketch pencil lines, comic ink, neon tubes, where the
    outline *is* the object). A 3 × 3 convolution can find an edge, but F has a single block at
    64 px and its 32 px blocks see the map average-pooled; in a CPU run of the full recipe
    without this channel, the judge read only about 40 % of the objects in F's neon pictures
    right (77 % over all six styles)."""
    flat = alpha.flatten(0, 1)[:, None]  # (B·K, 1, H, W)
    dilated = Fn.max_pool2d(flat, 3, stride=1, padding=1)
    eroded = -Fn.max_pool2d(-flat, 3, stride=1, padding=1)
    return (dilated - eroded).view_as(alpha)


def _fit_layout(positions: torch.Tensor, present: torch.Tensor, limit: float) -> torch.Tensor:
    """Moves each layout's present objects as a whole into ``[-limit, limit]``, shrinking it about
    its middle only along an axis where it is wider than that (every direction between objects kept)."""
    inside = present[..., None]
    lo = torch.where(inside, positions, torch.inf).amin(1, keepdim=True)  # (B, 1, 2) bounding box
    hi = torch.where(inside, positions, -torch.inf).amax(1, keepdim=True)
    some = present.any(1)[:, None, None]  # an empty layout gets a box at the origin
    lo, hi = torch.where(some, lo, 0.0), torch.where(some, hi, 0.0)
    mid, half = (lo + hi) / 2, (hi - lo) / 2
    shrink = (limit / half.clamp(min=1e-6)).clamp(max=1.0)  # 1 unless wider than the canvas allows
    half = half * shrink
    shift = (-limit - (mid - half)).clamp(min=0) - (mid + half - limit).clamp(min=0)
    return mid + (positions - mid) * shrink + shift


def spread_layout(positions: torch.Tensor, present: torch.Tensor, *, min_gap: float = 0.6,
                  limit: float = 0.72, iterations: int = 20) -> torch.Tensor:
    """Test-time layout clean-up: (B, 6, 2) positions, (B, 6) which colours are present → (B, 6, 2)
    with the present objects at least ``min_gap`` apart inside ``[-limit, limit]``.

    1. Scale each layout about the centre of its present objects until the closest two are
       ``min_gap`` apart (never shrinking it): every direction between objects is kept, so
       "left of" stays left of.
    2. Fit it into the canvas by moving it as a whole (:func:`_fit_layout`), not by clamping each
       object: a clamp pushed the objects near an edge back onto one another.
    3. A close pair beside a far object still ends too close (the spread that separates the pair
       throws the other off the canvas, and fitting shrinks it back), so up to ``iterations``
       rounds push every pair closer than ``min_gap`` apart along the line through them, by half
       the shortfall each, and fit again. Each pair keeps its own direction; another pair's may
       move a little (one sign of one axis in several hundred pairs, in the measurement below).

    Measured on layouts of two or more objects: with the clamp of the first version, the closest
    pair ended nearer than 0.6 in 82 of the shipped F's 331 test-scene layouts (and in one run of
    the recipe, seed 2, the judge read 54 % of the objects closer than 0.5 to another right,
    against 85 % of the rest); with steps 1 and 2 alone, in 61 of 321 validation layouts
    (``VALIDATION_START``); with step 3, in none. Attribute match on 480 validation scenes, the
    recipe's four runs (seeds 0 to 3): 83.8, 87.7, 84.8 and 84.2 % with steps 1 and 2; 84.4,
    89.4, 85.7 and 86.1 % with step 3.
    """
    if isinstance(iterations, bool) or not isinstance(iterations, int) or iterations < 0:
        raise ValueError(f"iterations must be a non-negative int, got {iterations!r}")
    K = positions.shape[1]
    m = present.float()[..., None]  # (B, 6, 1)
    n = m.sum(1).clamp(min=1)  # (B, 1)
    centre = (positions * m).sum(1, keepdim=True) / n[:, None]  # (B, 1, 2)
    pair = present[:, :, None] & present[:, None, :] & ~torch.eye(K, dtype=torch.bool, device=positions.device)
    d = torch.cdist(positions, positions)  # (B, 6, 6)
    closest = d.masked_fill(~pair, float("inf")).flatten(1).amin(1)  # (B,), inf with < 2 objects
    scale = (min_gap / closest.clamp(min=1e-3)).clamp(min=1.0, max=20.0)[:, None, None]  # (B, 1, 1)
    p = _fit_layout(centre + (positions - centre) * scale, present, limit)
    # two objects at the same point have no line between them: push them apart along x, by index
    idx = torch.arange(K, device=positions.device)
    along_x = torch.stack([torch.sign(idx[:, None] - idx[None, :]).to(p.dtype), torch.zeros(K, K, device=p.device)], -1)
    for _ in range(iterations):
        diff = p[:, :, None] - p[:, None, :]  # (B, 6, 6, 2): from object j to object i
        dist = diff.norm(dim=-1)
        shortfall = (min_gap - dist).clamp(min=0) * pair / 2  # (B, 6, 6) each side moves half
        if not bool((shortfall > 1e-6).any()):
            break
        unit = torch.where(dist[..., None] > 1e-6, diff / dist.clamp(min=1e-6)[..., None], along_x)
        p = _fit_layout(p + (shortfall[..., None] * unit).sum(2), present, limit)
    return torch.where(present[..., None], p, positions).clamp(-limit, limit)  # the clamp moves absent colours only


# -- the generator -----------------------------------------------------------------------------

class FusionGenerator(nn.Module):
    """F: (z (B, latent_dim), tokens (B, T), style images (B, 3, 64, 64) in [0, 1]) → (B, 3, 64, 64) in [0, 1].

    Layout: text → six slot distributions; z + sentence → six positions; the shape field paints
    each mentioned colour's object at 64 px → an object map (features, coverage, colour, outlines); average-pooled
    to 32 px → 2 AdaIN blocks (w) → ×2, concatenated with the 64 px object map → 1 AdaIN block
    (``width_64``) → 3 × 3 convolution → sigmoid. Fixed sine/cosine texture channels join at 32 and 64 px.
    """

    def __init__(self, config: FusionConfig | None = None) -> None:
        super().__init__()
        config = config or FusionConfig()
        if not isinstance(config, FusionConfig):
            raise TypeError(f"config must be a FusionConfig, got {type(config).__name__}")
        self.config = c = config
        self.text = TextEncoder(c)
        self.style = StyleEncoder(c)
        h = 2 * c.text_dim
        # the layout cVAE: encoder (true positions, sentence) -> z; decoder (z, sentence) -> positions
        self.layout_encoder = nn.Sequential(nn.Linear(2 * N_COLOURS + h, 128), nn.ReLU(inplace=True),
                                            nn.Linear(128, 2 * c.latent_dim))
        self.layout_decoder = nn.Sequential(nn.Linear(c.latent_dim + h, 128), nn.ReLU(inplace=True),
                                            nn.Linear(128, 2 * N_COLOURS))
        w, s = c.g_width, c.style_dim
        self.field = ShapeField(c)
        from ..data.scenes import COLOUR_RGB

        # the colour words' nominal RGB (the renderer's palette): the one piece of world knowledge F
        # is given rather than made to learn from a few thousand examples; styles restyle it
        self.register_buffer("palette", torch.tensor(COLOUR_RGB, dtype=torch.float32), persistent=False)  # (6, 3)
        q = 4 * c.fourier  # texture channels
        o = c.field_features + 1 + 3 + (4 if c.outlines else 0)  # object map: features, coverage, RGB (+ outline, its RGB)
        self.b32 = nn.ModuleList([AdaINBlock(o + q, w, s), AdaINBlock(w, w, s)])
        self.b64 = AdaINBlock(w + o + q, c.width_64, s, noise=c.noise)  # one block at 64 px: the costliest on a CPU
        self.to_rgb = nn.Conv2d(c.width_64, 3, 3, padding=1)

    # the pieces, each usable on its own (the notebook shows them one by one)
    def encode_layout(self, positions: torch.Tensor, sentence: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, 6, 2) true positions, (B, h) sentence → (mu, logvar), each (B, latent_dim)."""
        mu, logvar = self.layout_encoder(torch.cat([positions.flatten(1), sentence], 1)).chunk(2, 1)
        return mu, logvar.clamp(-8, 8)

    def decode_layout(self, z: torch.Tensor, sentence: torch.Tensor) -> torch.Tensor:
        """(B, latent_dim), (B, h) → (B, 6, 2) positions in [-0.9, 0.9]."""
        return 0.9 * torch.tanh(self.layout_decoder(torch.cat([z, sentence], 1))).view(-1, N_COLOURS, 2)

    def sample_layout(self, z: torch.Tensor, sentence: torch.Tensor, slot_logits: torch.Tensor) -> torch.Tensor:
        """Test-time layout: :meth:`decode_layout`, then :func:`spread_layout` over the colours the
        sentence mentions, so that objects never pile up on one another."""
        present = slot_logits.argmax(-1) > 0  # (B, 6)
        return spread_layout(self.decode_layout(z, sentence), present, min_gap=self.config.min_gap)

    def objects(self, slot_logits: torch.Tensor, positions: torch.Tensor):
        """The object map at 64 px: (B, f + 4, 64, 64) (painted features, coverage, nominal RGB;
        f + 8 with ``config.outlines``: the outline's coverage and RGB too) and the
        per-colour occupancy (B, 6, 64, 64) in [0, 1] (supervised with the true colour masks in training).

        The shape field draws what the sentence encoder *read*: per colour, its distribution over
        the 12 (shape, size) classes, and the probability that the colour is there at all gates the
        drawing. That bottleneck is deliberate: a free content vector also carries how the sentence
        was worded, and a shape field conditioned on it had to learn each shape once per wording."""
        r = self.config.resolution
        probs = slot_logits.softmax(-1)  # (B, 6, 13)
        gate = 1 - probs[..., 0]  # (B, 6): probability that this colour is in the sentence
        what = slot_logits[..., 1:].softmax(-1)  # (B, 6, 12): which shape and size, if it is there
        occ, feats = self.field(what, positions, r)  # (B, 6, r, r), (B, 6, f, r, r)
        alpha = calibrate_occupancy(occ, self.config.occupancy_calibration) * gate[:, :, None, None]  # (B, 6, r, r)
        painted = (alpha[:, :, None] * feats).sum(1)  # (B, f, r, r)
        cover = alpha.sum(1, keepdim=True).clamp(max=1)  # (B, 1, r, r)
        rgb = torch.einsum("bkhw,kc->bchw", alpha, self.palette)  # (B, 3, r, r): each object in its colour's RGB
        parts = [painted, cover, rgb]
        if self.config.outlines:
            edge = outlines(alpha)  # (B, 6, r, r)
            parts += [edge.sum(1, keepdim=True).clamp(max=1), torch.einsum("bkhw,kc->bchw", edge, self.palette)]
        return torch.cat(parts, 1), occ

    def draw(self, slot_logits: torch.Tensor, positions: torch.Tensor, style: torch.Tensor, *,
             return_occupancy: bool = False, noise: torch.Tensor | None = None):
        """Slot logits (B, 6, 13), positions (B, 6, 2), style code (B, style_dim) → (B, 3, 64, 64) in [0, 1].
        ``noise`` (B, 1, 64, 64): the 64 px block's noise with ``config.noise`` (fresh N(0, 1) if None)."""
        obj, occ = self.objects(slot_logits, positions)  # (B, f + 4 or f + 8, 64, 64)
        B, q = obj.shape[0], self.config.fourier
        tex32 = fourier_features(32, q, obj.device).expand(B, -1, -1, -1)  # (B, 4q, 32, 32)
        x = torch.cat([Fn.avg_pool2d(obj, 2), tex32], 1)
        x = self.b32[1](self.b32[0](x, style), style)  # (B, w, 32, 32)
        x = Fn.interpolate(x, scale_factor=2, mode="nearest")  # (B, w, 64, 64)
        tex64 = fourier_features(64, q, obj.device).expand(B, -1, -1, -1)  # (B, 4q, 64, 64)
        x = self.b64(torch.cat([x, obj, tex64], 1), style, noise)  # (B, width_64, 64, 64)
        image = torch.sigmoid(self.to_rgb(x))  # (B, 3, 64, 64) in [0, 1]
        return (image, occ) if return_occupancy else image

    def forward(self, z: torch.Tensor, tokens: torch.Tensor, style_images: torch.Tensor, *,
                positions: torch.Tensor | None = None, return_aux: bool = False, noise: torch.Tensor | None = None):
        """Draws the sentences ``tokens`` in the style of ``style_images`` with layout code ``z``.

        Args:
            z: (B, latent_dim) layout codes, N(0, I) at test time.
            tokens: (B, T) int64 token ids (see :func:`tokenize`), 0 = padding.
            style_images: (B, 3, 64, 64) in [0, 1].
            positions: (B, 6, 2) per-colour positions to use instead of decoding z (training
                teacher-forces the true layout).
            return_aux: also return a dict with the slot logits, sentence vector, positions.
            noise: (B, 1, 64, 64) the per-pixel noise of an F with ``config.noise`` (fresh N(0, 1)
                if None; ignored without it).
        """
        c = self.config
        B = tokens.shape[0] if isinstance(tokens, torch.Tensor) else -1
        if not isinstance(tokens, torch.Tensor) or tokens.dim() != 2 or tokens.dtype != torch.int64:
            raise ValueError(f"tokens must be a (B, T) int64 tensor, got {getattr(tokens, 'shape', type(tokens).__name__)}")
        if tokens.numel() and (int(tokens.min()) < 0 or int(tokens.max()) >= c.vocab_size):
            raise ValueError(f"token ids must be in [0, {c.vocab_size}), got [{int(tokens.min())}, {int(tokens.max())}]")
        if not isinstance(z, torch.Tensor) or tuple(z.shape) != (B, c.latent_dim):
            raise ValueError(f"z must have shape ({B}, {c.latent_dim}), got {getattr(z, 'shape', type(z).__name__)}")
        r = c.resolution
        if (not isinstance(style_images, torch.Tensor) or style_images.dim() != 4
                or tuple(style_images.shape) != (B, 3, r, r)):
            raise ValueError(f"style_images must have shape ({B}, 3, {r}, {r}) in [0, 1], "
                             f"got {getattr(style_images, 'shape', type(style_images).__name__)}")
        if noise is not None and (not isinstance(noise, torch.Tensor) or tuple(noise.shape) != (B, 1, r, r)):
            raise ValueError(f"noise must have shape ({B}, 1, {r}, {r}), got {getattr(noise, 'shape', type(noise).__name__)}")
        sentence, content, slot_logits = self.text(tokens)
        if positions is None:
            positions = self.sample_layout(z, sentence, slot_logits)
        style = self.style(style_images)
        image, occ = self.draw(slot_logits, positions, style, return_occupancy=True, noise=noise)
        if return_aux:
            return image, {"slot_logits": slot_logits, "sentence": sentence, "positions": positions, "style": style,
                           "occupancy": occ}
        return image


# -- the discriminator -------------------------------------------------------------------------

class FusionDiscriminator(nn.Module):
    """Projection discriminator: (images (B, 3, 64, 64) in [0, 1], style ids (B,), tokens (B, T)) → (B,) scores.

    ``D = ψ(φ(x)) + ⟨embed(style), φ(x)⟩ + ⟨W t(tokens), φ(x)⟩`` (Miyato & Koyama 2018, eq. 3,
    with a second projection for the text). φ is a spectrally normalised strided-convolution
    trunk summed over space; t is an n-gram (width-3 convolution, max over time) text encoding.
    """

    def __init__(self, config: FusionConfig | None = None) -> None:
        super().__init__()
        config = config or FusionConfig()
        if not isinstance(config, FusionConfig):
            raise TypeError(f"config must be a FusionConfig, got {type(config).__name__}")
        self.config = c = config
        w = c.d_width
        sn = spectral_norm
        self.trunk = nn.Sequential(
            sn(nn.Conv2d(3, w, 4, 2, 1)), nn.LeakyReLU(0.2, inplace=True),  # (B, w, 32, 32)
            sn(nn.Conv2d(w, 2 * w, 4, 2, 1)), nn.LeakyReLU(0.2, inplace=True),  # (B, 2w, 16, 16)
            sn(nn.Conv2d(2 * w, 4 * w, 4, 2, 1)), nn.LeakyReLU(0.2, inplace=True),  # (B, 4w, 8, 8)
            sn(nn.Conv2d(4 * w, 8 * w, 4, 2, 1)), nn.LeakyReLU(0.2, inplace=True),  # (B, 8w, 4, 4)
        )
        self.psi = sn(nn.Linear(8 * w, 1))
        self.style_embed = sn(nn.Embedding(c.n_styles, 8 * w))
        self.word_embed = nn.Embedding(c.vocab_size, c.text_dim, padding_idx=0)
        self.ngram = nn.Conv1d(c.text_dim, 2 * c.text_dim, 3, padding=1)
        self.text_proj = sn(nn.Linear(2 * c.text_dim, 8 * w))

    def features(self, images: torch.Tensor) -> torch.Tensor:
        """φ(x): (B, 3, 64, 64) in [0, 1] → (B, 8w), summed over space (SNGAN)."""
        return self.trunk(images * 2 - 1).sum((2, 3))

    def text_code(self, tokens: torch.Tensor) -> torch.Tensor:
        """t(tokens): (B, T) → (B, 2·text_dim), n-gram features max-pooled over real tokens."""
        h = self.ngram(self.word_embed(tokens).transpose(1, 2))  # (B, 2t, T)
        h = h.masked_fill((tokens == 0)[:, None, :], float("-inf")).amax(-1)
        return Fn.relu(h)

    def project(self, phi: torch.Tensor, styles: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        """The score from features φ (B, 8w): ψ(φ) + ⟨embed(style), φ⟩ + ⟨W t, φ⟩ → (B,)."""
        return (self.psi(phi)[:, 0] + (self.style_embed(styles) * phi).sum(1)
                + (self.text_proj(self.text_code(tokens)) * phi).sum(1))

    def style_logits(self, phi: torch.Tensor) -> torch.Tensor:
        """Features φ (B, 8w) → (B, n_styles): ⟨embed(k), φ⟩ for every style k, the projection's
        style term read as a classifier (the auxiliary style loss of :func:`fusion_step`)."""
        every = self.style_embed(torch.arange(self.config.n_styles, device=phi.device))  # (n_styles, 8w)
        return phi @ every.T

    def forward(self, images: torch.Tensor, styles: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        r = self.config.resolution
        if not isinstance(images, torch.Tensor) or images.dim() != 4 or tuple(images.shape[1:]) != (3, r, r):
            raise ValueError(f"images must have shape (B, 3, {r}, {r}) in [0, 1], got "
                             f"{getattr(images, 'shape', type(images).__name__)}")
        return self.project(self.features(images), styles, tokens)


class FusionGAN(nn.Module):
    """The pair, so that one checkpoint holds both: ``model.F`` and ``model.D``."""

    def __init__(self, config: FusionConfig | None = None) -> None:
        super().__init__()
        self.config = config or FusionConfig()
        self.F = FusionGenerator(self.config)
        self.D = FusionDiscriminator(self.config)


# -- inputs ------------------------------------------------------------------------------------

def tokenize(sentences: Sequence[str], config: FusionConfig | None = None) -> torch.Tensor:
    """Sentences → (B, T) int64 ids with the project tokenizer (``<bos>`` … ``<eos>``, 0-padded).

    Raises:
        TypeError / ValueError: not a non-empty list of non-empty strings.
    """
    from ..data.tokenizer import encode_batch

    config = config or FusionConfig()
    if isinstance(sentences, str) or not isinstance(sentences, Sequence):
        raise TypeError(f"sentences must be a list of str, got {type(sentences).__name__}")
    if len(sentences) == 0:
        raise ValueError("sentences is empty: give at least one sentence")
    for i, s in enumerate(sentences):
        if not isinstance(s, str):
            raise TypeError(f"sentences[{i}] must be a str, got {type(s).__name__}")
        if not s.strip():
            raise ValueError(f"sentences[{i}] is empty: F draws what a sentence says, so it needs words")
    ids, _ = encode_batch(list(sentences), max_len=config.max_tokens)
    if int(ids.max()) >= config.vocab_size:
        raise ValueError(f"the tokenizer gives ids up to {int(ids.max())}; F's vocabulary has {config.vocab_size}")
    return ids


def _style_input(style_images: Any, n: int, resolution: int) -> torch.Tensor:
    if not isinstance(style_images, torch.Tensor):
        raise TypeError(f"style_images must be a float tensor (B, 3, H, W) in [0, 1], got {type(style_images).__name__}")
    if style_images.dim() == 3:
        style_images = style_images[None]
    if style_images.dim() != 4 or style_images.shape[1] != 3:
        raise ValueError(f"style_images must have shape (B, 3, H, W), got {tuple(style_images.shape)}")
    if not style_images.is_floating_point():
        raise TypeError(f"style_images must be floating point in [0, 1], got dtype {style_images.dtype}")
    if style_images.shape[0] not in (1, n):
        raise ValueError(f"got {style_images.shape[0]} style images for {n} sentences; give one per sentence or one for all")
    if min(style_images.shape[-2:]) < 8:
        raise ValueError(f"style images must be at least 8 x 8 pixels, got {tuple(style_images.shape[-2:])}")
    if not torch.isfinite(style_images).all():
        raise ValueError("style_images contain NaN or infinite values")
    lo, hi = float(style_images.min()), float(style_images.max())
    if lo < -1e-3 or hi > 1 + 1e-3:
        raise ValueError(f"style_images must be in [0, 1], got values in [{lo:.3g}, {hi:.3g}]")
    x = style_images.float().clamp(0, 1)
    if tuple(x.shape[-2:]) != (resolution, resolution):
        x = Fn.interpolate(x, size=(resolution, resolution), mode="bilinear", align_corners=False, antialias=True)
    return x.expand(n, -1, -1, -1) if x.shape[0] == 1 else x


@torch.no_grad()
def fuse(F: FusionGenerator, sentences: list[str], style_images: torch.Tensor, *, seed: int = 0) -> torch.Tensor:
    """Step 4: draws each sentence in the style of its style image.

    Args:
        F: a :class:`FusionGenerator` (e.g. :func:`load_fusion`).
        sentences: B sentences in any register (formal or spoken English about ShapeScenes).
        style_images: (B, 3, H, W) float in [0, 1], any H and W (resized to 64 px), or one
            image (1, 3, H, W) for all sentences.
        seed: seeds the layout codes z ~ N(0, I) (and the pixel noise of an F with
            ``config.noise``): the same seed gives the same pictures.

    Returns:
        (B, 3, 64, 64) float in [0, 1] on F's device.

    Example:
        >>> F = load_fusion()
        >>> fuse(F, ["whoa, a big red ball!"], torch.rand(1, 3, 100, 80)).shape
        torch.Size([1, 3, 64, 64])
    """
    if not isinstance(F, FusionGenerator):
        raise TypeError(f"F must be a FusionGenerator (see load_fusion), got {type(F).__name__}")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    c = F.config
    tokens = tokenize(sentences, c)
    style = _style_input(style_images, len(tokens), c.resolution)
    device = next(F.parameters()).device
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(len(tokens), c.latent_dim, generator=g)  # CPU: same on every device
    noise = torch.randn(len(tokens), 1, c.resolution, c.resolution, generator=g).to(device) if c.noise else None
    was_training = F.training
    F.eval()
    try:
        out = F(z.to(device), tokens.to(device), style.to(device), noise=noise)
    finally:
        F.train(was_training)
    return out.clamp(0, 1)


# -- checkpoints -------------------------------------------------------------------------------

def load_fusion_pair(name_or_path: str | Path = "fusion", device=None) -> FusionGAN:
    """F and D from a checkpoint (a shipped name or a folder), in eval mode on ``device``."""
    from .. import runtime

    directory = checkpoints.resolve(name_or_path)
    manifest = checkpoints.read_manifest(directory)
    try:
        config = FusionConfig(**manifest["config"])
    except TypeError as err:
        raise checkpoints.CheckpointError(f"{directory} is not a fusion checkpoint: its config does not fit "
                                          f"FusionConfig ({err})") from err
    model = FusionGAN(config)
    checkpoints.load_pretrained(model, directory)
    return model.eval().to(runtime.get_device(device))


def load_fusion(name_or_path: str | Path = "fusion", device=None) -> FusionGenerator:
    """The trained fusion generator F (shipped ``"fusion"`` by default, or a checkpoint folder),
    in eval mode on ``device`` (default: :func:`spokenstyle.runtime.get_device`)."""
    if not isinstance(name_or_path, (str, Path)):
        raise TypeError(f"name_or_path must be a checkpoint name or folder, got {type(name_or_path).__name__}")
    return load_fusion_pair(name_or_path, device).F


def load_judge(name_or_path: str | Path = "fusion", device=None):
    """The scene judge (style + objects, :mod:`spokenstyle.models.judge`) that scored F: the one
    in ``<fusion checkpoint>/judge`` when the fusion recipe trained its own, else the shipped
    ``"judge"``. Either way it was trained on real renders only, never on F's pictures."""
    from .. import runtime
    from .judge import scene_judge

    directory = checkpoints.resolve(name_or_path)
    if (directory / "judge" / checkpoints.MANIFEST).is_file():
        directory = directory / "judge"
    elif checkpoints.read_manifest(directory).get("extra", {}).get("class") != "SceneJudge":
        directory = checkpoints.shipped_path("judge")  # a fusion checkpoint without its own judge
    return scene_judge(weights=str(directory)).to(runtime.get_device(device))


# -- data --------------------------------------------------------------------------------------

def colour_positions(scenes) -> torch.Tensor:
    """(B, 6, 2) the centre of the object of each colour; absent colours get a position drawn
    from the scene seed (so the layout never tells which colours are present)."""
    from ..data.scenes import hash_uniform

    B = len(scenes)
    out = hash_uniform(scenes.seed, 900, 2 * N_COLOURS).view(B, N_COLOURS, 2) * 1.6 - 0.8
    col = scenes.colour.clamp(min=0)  # (B, 3)
    rows = torch.arange(B, device=col.device)[:, None].expand_as(col)
    out[rows[scenes.mask], col[scenes.mask]] = scenes.pos[scenes.mask]
    return out


def fusion_batches(batch_size: int, *, split: str = "train", seed: int = 0, registers=("formal", "spoken"),
                   size: int = 64):
    """``batches(step) -> dict`` for F: per scene a sentence (register alternating with the seed),
    the target style (drawn from the seed), the ground truth (the scene in the target style),
    a style reference (another scene in the same style), per-colour positions and colour slots."""
    from ..data.captions import caption
    from ..data.datasets import _step_seeds
    from ..data.scenes import hash_uniform, sample_scenes
    from ..data.styles import STYLES, colour_masks, render

    def batches(step: int) -> dict[str, Any]:
        seeds = _step_seeds(split, step, batch_size, seed, stride=2)  # even seeds: content
        scenes = sample_scenes(seeds)
        refs = sample_scenes(seeds + 1)  # odd seeds: style references (other scenes)
        styles = (hash_uniform(seeds, 901, 1)[:, 0] * len(STYLES)).long().clamp(max=len(STYLES) - 1)
        reg = [registers[(s // 2 + step) % len(registers)] for s in seeds.tolist()]
        texts = [caption(spec, r, int(s)) for spec, r, s in zip(scenes.specs(), reg, seeds.tolist())]
        return {"image": render(scenes, styles, size), "style_ref": render(refs, styles, size), "style": styles,
                "tokens": tokenize(texts), "positions": colour_positions(scenes), "slots": scenes.colour_slots(),
                "masks": colour_masks(scenes, size)}

    return batches


# -- training ----------------------------------------------------------------------------------

def mask_loss(occupancy: torch.Tensor, masks: torch.Tensor, slots: torch.Tensor, *,
              pos_weight: float = 10.0) -> torch.Tensor:
    """The shape field's loss: binary cross-entropy of each colour's occupancy (B, 6, H, W) in
    [0, 1] against the true colour masks (B, H, W) (0 = background, 1 + colour id inside an
    object; :func:`spokenstyle.data.styles.colour_masks`), averaged over the colours present
    (``slots`` (B, 6) > 0). Object pixels weigh ``pos_weight`` times a background pixel.

    A weight w > 1 makes the field's best answer at an edge pixel that is inside with
    probability p not p but w·p / (w·p + 1 − p): with w = 10 a pixel inside one time in five is
    drawn at 0.71, and every object comes out dilated (in a CPU run of the full recipe, the area
    above 0.5 was 1.26× the true area, which rounds the points of stars and crosses). w = 1 is
    the plain, calibrated cross-entropy: in a CPU run of the same recipe with w = 1 the area
    ratio was 0.97 and the IoU at 0.5 rose from 0.80 to 0.91, yet the judge read fewer of F's
    objects (74.9 % against 80.9 %, both after the first phase only; neon 48 % against 64 %): a calibrated field is softer inside
    (mean 0.88 against 0.98), and the outlines of a soft field are faint. The recipe keeps 10."""
    if not pos_weight > 0:
        raise ValueError(f"pos_weight must be positive, got {pos_weight!r}")
    target = Fn.one_hot(masks, N_COLOURS + 1)[..., 1:].permute(0, 3, 1, 2).float()  # (B, 6, H, W)
    occ = occupancy.clamp(1e-4, 1 - 1e-4)
    weight = 1 + (pos_weight - 1) * target
    bce = (Fn.binary_cross_entropy(occ, target, reduction="none") * weight).flatten(2).mean(-1)  # (B, 6)
    present = (slots > 0).float()
    return (bce * present).sum() / present.sum().clamp(min=1)


def fusion_step(t, batch: dict[str, torch.Tensor], step: int, *, lambda_rec: float = 20.0, lambda_adv: float = 1.0,
                lambda_slot: float = 1.0, lambda_mask: float = 5.0, lambda_layout: float = 10.0,
                beta_kl: float = 0.05, lambda_cls: float = 0.0, mask_pos_weight: float = 10.0,
                rec_pool: int = 1, lambda_r1: float = 0.0) -> dict[str, torch.Tensor]:
    """One step for :class:`spokenstyle.train.Trainer` (modules ``"F"``, ``"D"``).

    update_D: hinge loss; real = the ground truth with its own sentence, fake = F's picture
    (detached) and the ground truth with another scene's sentence (matching-aware, weighted ½
    each). update_G: L1 to the ground truth + the hinge generator loss + the text encoder's slot
    cross-entropy + the shape field's occupancy against the true colour masks + the layout cVAE
    (position error of present colours + β·KL). With ``lambda_cls`` > 0, D's style embedding is
    also trained as a classifier of the real pictures' styles and F is asked to be classified in
    the target style (an auxiliary-classifier loss, Odena et al. 2017, on the projection's own
    embedding: no extra weights). L1 alone pulls random textures (watercolour blotches, pencil
    hatching) to their blurred mean; this is a direct pull towards the style's texture.
    ``rec_pool`` > 1 takes the L1 between ``rec_pool`` x ``rec_pool`` average-pooled pictures
    instead: texture finer than that (paper grain, random at every pixel, which no sentence
    predicts and a per-pixel L1 pulls to a clean sheet) is left to the adversarial term alone.
    Full recipe with ``width_64`` 24 (one CPU thread, 480 held-out scenes, spoken sentences;
    attribute match / style): per-pixel L1 87.0 / 79.8 % (seed 0) and 88.2 / 72.9 % (seed 1);
    ``rec_pool`` 2: 88.3 / 91.9 % (seed 0, shipped until the style code was normalised), 51.4 /
    75.4 % (seed 1: unstable, its L1 ending near 0.03 against 0.013) and 84.1 / 97.5 % (seed 2),
    all scored before :func:`spread_layout` fitted layouts into the canvas (which added 1.3 points
    to seed 0's attribute match).
    ``lambda_r1`` > 0 adds the R1 penalty (Mescheder et al. 2018) to D's loss: ``lambda_r1 / 2``
    times the squared gradient norm of D's score on the real pictures (with their own sentence),
    which keeps D flat around the data so F is not pushed off it by a steep discriminator.
    Seed 1 of the recipe before ``style_norm`` (the unstable one above; scored, like the rest of
    this paragraph, before :func:`spread_layout` fitted layouts), one CPU thread each, two runs side by
    side: ``lambda_r1`` 1 gave 75.1 / 93.3 % (L1 0.016: stable, but shapes lost); D at half F's
    rate instead (``d_lr_scale`` 0.5 of :func:`train_fusion`) gave 88.2 / 94.6 % (L1 0.013); on
    seed 0 it gave 84.4 / 96.7 %, and seed 2 collapsed near step 1,000 (L1 0.024 -> 0.12), which
    is how the style encoder's runaway was found (:class:`StyleEncoder`). The budget keeps D at
    F's rate and fixes the style code's length instead (``FusionConfig.style_norm``).
    """
    if isinstance(lambda_r1, bool) or not isinstance(lambda_r1, (int, float)) or not lambda_r1 >= 0:
        raise ValueError(f"lambda_r1 must be a non-negative number (0: no R1 penalty), got {lambda_r1!r}")
    if isinstance(rec_pool, bool) or not isinstance(rec_pool, int) or rec_pool < 1:
        raise ValueError(f"rec_pool must be a positive int (1: L1 on the pixels), got {rec_pool!r}")
    F, D = t.modules["F"], t.modules["D"]
    x, ref, y, tokens = batch["image"], batch["style_ref"], batch["style"], batch["tokens"]
    pos, slots = batch["positions"], batch["slots"]
    present = (slots > 0).float()  # (B, 6)
    if lambda_r1:
        x = x.detach().requires_grad_(True)
    with t.autocast():
        fake, aux = F(torch.zeros(len(x), F.config.latent_dim, device=x.device), tokens, ref,
                      positions=pos, return_aux=True)  # teacher-forced layout; z unused
        phi_real = D.features(x)
        wrong = tokens.roll(1, 0)  # another scene's sentence
        d_real = D.project(phi_real, y, tokens)
        d_fake = D(fake.detach(), y, tokens)
        d_wrong = D.project(phi_real, y, wrong)
        loss_d = Fn.relu(1 - d_real).mean() + 0.5 * (Fn.relu(1 + d_fake).mean() + Fn.relu(1 + d_wrong).mean())
        cls_real = Fn.cross_entropy(D.style_logits(phi_real), y)  # logged; a loss only with lambda_cls > 0
        loss_d = loss_d + lambda_cls * cls_real
    r1 = torch.zeros((), device=x.device)
    if lambda_r1:  # R1: the gradient of D's real score with respect to the real pictures
        (grad,) = torch.autograd.grad(d_real.float().sum(), x, create_graph=True)
        r1 = grad.float().square().flatten(1).sum(1).mean()
        loss_d = loss_d + 0.5 * lambda_r1 * r1
        x = x.detach()
    t.optimize("D", loss_d)
    with t.autocast():
        phi_fake = D.features(fake)
        adv = -D.project(phi_fake, y, tokens).mean()
        cls_fake = Fn.cross_entropy(D.style_logits(phi_fake), y)
        rec = (Fn.avg_pool2d(fake, rec_pool) - Fn.avg_pool2d(x, rec_pool)).abs().mean()  # rec_pool 1: per pixel
        slot = Fn.cross_entropy(aux["slot_logits"].flatten(0, 1), slots.flatten())
        mask = mask_loss(aux["occupancy"], batch["masks"], slots, pos_weight=mask_pos_weight)
        mu, logvar = F.encode_layout(pos, aux["sentence"])
        zq = mu + torch.randn_like(mu) * (0.5 * logvar).exp()
        pred = F.decode_layout(zq, aux["sentence"])
        layout = ((pred - pos).square().sum(-1) * present).sum() / present.sum().clamp(min=1)
        kl = 0.5 * (mu.square() + logvar.exp() - 1 - logvar).sum(1).mean()
        loss_g = (lambda_rec * rec + lambda_adv * adv + lambda_slot * slot + lambda_mask * mask
                  + lambda_layout * layout + beta_kl * kl + lambda_cls * cls_fake)
    t.optimize("F", loss_g)
    return {"loss_D": loss_d, "loss_G_adv": adv, "l1": rec, "slot_ce": slot, "mask_bce": mask, "layout": layout,
            "kl": kl, "cls_real": cls_real, "cls_fake": cls_fake, "r1": r1}


VALIDATION_START = 500_000_000
"""First seed of the fusion recipe's validation scenes: in the train split, but far from every
stretch :func:`fusion_batches` walks for runtime seeds below 30 (seed s starts near 15.8 million · s
and a full run draws about 130,000), so no F has trained on them. Runs of the recipe are compared
here; the test split is kept for the scores the book reports."""


@torch.no_grad()
def evaluate(F: FusionGenerator, judge, features, *, n: int = 600, register: str = "spoken", seed: int = 0,
             batch_size: int = 100, split: str = "test") -> dict[str, float]:
    """Step 5 on held-out scenes: what the judges read in F's pictures, with a ceiling and a floor.

    For ``n`` scenes of ``split`` ("test", or "validation": the unseen train-split scenes from
    :data:`VALIDATION_START`), each with a target style and a style reference (another scene in it):

    * ``attr_match``: share of the sentence's objects the scene judge reads exactly (colour,
      shape and size) in F's picture; ``scene_match``: pictures with every object right and
      nothing extra;
    * ``style_acc``: share judged in the target style by the scene judge (64 px, like F's
      pictures); ``features_style_acc``: the same by chapter 4's ``features`` classifier, which
      reads 32 px renders and so sees 64 px pictures only after downsampling (its own ceiling,
      ``real_features_style_acc``, shows what that costs);
    * the same for ``real_*`` (the ground truth render: the judges' ceiling) and ``shuffled_*``
      (F given another scene's sentence, scored against this scene: the floor of attribute
      match), and ``wrong_style_style_acc`` (F given a style reference of another style).
    """
    from ..data.captions import caption
    from ..data.scenes import sample_scenes
    from ..data.styles import STYLES, render
    from ..data.datasets import SPLITS

    if split not in ("test", "validation"):
        raise ValueError(f"split must be 'test' or 'validation', got {split!r}")
    lo = SPLITS["test"][0] if split == "test" else VALIDATION_START
    counts: dict[str, float] = {}

    def add(key, value):
        counts[key] = counts.get(key, 0.0) + float(value)

    def score(prefix, images, slots, styles):
        style_logits, slot_logits = judge(images.to(next(judge.parameters()).device))
        pred = slot_logits.argmax(-1).cpu()
        present = slots > 0
        add(prefix + "attr_hits", ((pred == slots) & present).sum())
        add(prefix + "scene_hits", (pred == slots).all(1).sum())
        add(prefix + "style_hits", (style_logits.argmax(-1).cpu() == styles).sum())
        out = features(images.to(next(features.parameters()).device))
        add(prefix + "features_style_hits", (out.style_logits.argmax(-1).cpu() == styles).sum())

    done = 0
    k = 0
    while done < n:
        m = min(batch_size, n - done)
        seeds = lo + 2 * torch.arange(done, done + m) + 2 * seed * n
        scenes, refs = sample_scenes(seeds), sample_scenes(seeds + 1)
        styles = torch.arange(done, done + m) % len(STYLES)
        texts = [caption(s, register, int(sd)) for s, sd in zip(scenes.specs(), seeds.tolist())]
        slots = scenes.colour_slots()
        ref = render(refs, styles, 64)
        fused = fuse(F, texts, ref, seed=seed + k)
        shuffled = fuse(F, texts[1:] + texts[:1], ref, seed=seed + k)
        wrong_styles = (styles + 1 + torch.arange(m) % (len(STYLES) - 1)) % len(STYLES)
        wrong_style = fuse(F, texts, render(refs, wrong_styles, 64), seed=seed + k)
        score("", fused, slots, styles)
        score("real_", render(scenes, styles, 64), slots, styles)
        score("shuffled_", shuffled, slots, styles)
        score("wrong_style_", wrong_style, slots, styles)
        add("objects", (slots > 0).sum())
        done += m
        k += 1
    out: dict[str, float] = {}
    for prefix in ("", "real_", "shuffled_", "wrong_style_"):
        out[prefix + "attr_match"] = counts[prefix + "attr_hits"] / counts["objects"]
        out[prefix + "scene_match"] = counts[prefix + "scene_hits"] / n
        out[prefix + "style_acc"] = counts[prefix + "style_hits"] / n
        out[prefix + "features_style_acc"] = counts[prefix + "features_style_hits"] / n
    out["n"] = n
    return out


def train_fusion(model: FusionGAN, batches, *, steps: int, lr: float = 1e-3, device=None, callbacks=(),
                 checkpoint_dir: str | Path | None = None, log_every: int = 1, callback_every: int = 0,
                 step_kwargs: dict[str, float] | None = None, desc: str = "fusion", d_lr_scale: float = 1.0):
    """Trains ``model`` (F and D, in place) with :func:`fusion_step` and Adam (β = (0.5, 0.999),
    the GAN setting of Radford et al. 2016, with AMSGrad's running maximum of the second moment;
    D at ``d_lr_scale`` times that rate, 1 = the same rate, SNGAN-style), the rate decaying
    linearly to zero over the last quarter of the steps; returns the History."""
    if isinstance(d_lr_scale, bool) or not isinstance(d_lr_scale, (int, float)) or not d_lr_scale > 0:
        raise ValueError(f"d_lr_scale must be a positive number (D's rate / F's), got {d_lr_scale!r}")
    from ..train import Trainer, TrainConfig

    kwargs = dict(step_kwargs or {})

    def step_fn(t, batch, step):
        return fusion_step(t, batch, step, **kwargs)

    # AMSGrad (Reddi et al. 2018): Adam's step is m / sqrt(v), and with β1 = 0.5 a parameter whose
    # gradient has been near zero for a thousand steps (the sentence encoder, once its slots are
    # right) has a tiny v, and one sudden gradient then moves it ~16 learning rates at once. In CPU
    # runs without it, F's slot cross-entropy jumped from 0.000 to about 1 within fifty steps (after
    # 600 to 2,000 steps), L1 and the mask loss with it, and the pictures did not recover before the
    # end. AMSGrad divides by the largest v seen so far, which rules that jump out.
    opts = {"F": torch.optim.Adam(model.F.parameters(), lr=lr, betas=(0.5, 0.999), amsgrad=True),
            "D": torch.optim.Adam(model.D.parameters(), lr=lr * d_lr_scale, betas=(0.5, 0.999), amsgrad=True)}
    # constant rate, then linear decay to zero over the last quarter: the last steps refine, not move
    decay = lambda step: min(1.0, max(0.0, (steps - step) / max(1, steps // 4)))  # noqa: E731
    scheds = {name: torch.optim.lr_scheduler.LambdaLR(opt, decay) for name, opt in opts.items()}
    trainer = Trainer({"F": model.F, "D": model.D}, opts, step_fn,
                      TrainConfig(steps=steps, log_every=log_every, callback_every=callback_every, desc=desc,
                                  checkpoint_dir=str(checkpoint_dir) if checkpoint_dir else None,
                                  checkpoint_every=250 if checkpoint_dir else 0),
                      schedulers=scheds, callbacks=callbacks, device=device, model_config=asdict(model.config))
    return trainer.fit(batches)


def step_kwargs(budget: dict[str, Any]) -> dict[str, Any]:
    """The entries of a ``fusion`` budget that are :func:`fusion_step`'s keyword arguments (the
    loss weights ``lambda_*`` and ``mask_pos_weight``); the rest size the run."""
    names = set(inspect.signature(fusion_step).parameters) - {"t", "batch", "step"}
    return {k: v for k, v in budget.items() if k in names}


def config_for(budget: dict[str, Any]) -> FusionConfig:
    """The F and D a ``fusion`` budget trains: its widths, and its ``occupancy_calibration``
    (default 1: the object map draws the raw occupancy; :func:`calibrate_occupancy`)."""
    return FusionConfig(g_width=budget["width"], d_width=budget["d_width"], width_64=int(budget.get("width_64", 12)),
                        occupancy_calibration=float(budget.get("occupancy_calibration", 1.0)),
                        noise=budget.get("noise", False), style_norm=budget.get("style_norm", False))


def drawing_blocks(F: FusionGenerator) -> nn.ModuleList:
    """The blocks that turn the object map into pixels (the AdaIN blocks at 32 and 64 px and the
    RGB layer): the part of F whose weights the recipe's second phase averages (``refine_ema``).

    Why only these, measured by continuing the first-phase F for 1,000 steps at lr 5e-4 (one CPU
    thread, 480 held-out scenes, spoken sentences; attribute match / style): the last weights
    84.5 % / 96.0 %; averaging these blocks (decay 0.99) 85.9 % / 94.4 %; averaging the sentence
    encoder, shape field and layout instead 84.9 % / 95.8 %; averaging all of F 86.1 % / 90.6 %
    (decay 0.995; 85.0 % / 87.5 % at 0.99 in a run on other data). Averaging the renderer smooths
    the edges the adversarial term keeps moving; averaging the style encoder too (our guess) hands
    the renderer style codes it never drew from, and the style is what suffers."""
    return nn.ModuleList([F.b32, F.b64, F.to_rgb])


def refine_budget(budget: dict[str, Any]) -> dict[str, Any] | None:
    """The recipe's optional second phase, from a ``fusion`` budget's ``refine_*`` entries:
    ``refine_steps`` (0 or absent: none), ``refine_lr``, ``refine_occupancy_calibration``
    (default: the first phase's) and ``refine_ema`` (0 or absent: F's last weights are shipped;
    else the decay of an exponential moving average, over the phase, of the weights of F's
    :func:`drawing_blocks`, which is shipped instead: :func:`spokenstyle.models.dcgan.ema_update_`). The phase starts Adam afresh
    at the lower rate (its own linear decay over the last quarter) on another stretch of the
    training split, with the same losses, except that ``refine_<name>`` for a loss weight of
    :func:`fusion_step` (``refine_lambda_cls``, ``refine_rec_pool``, ...) sets that weight for the
    phase (returned as ``losses``)."""
    steps = budget.get("refine_steps", 0)
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 0:
        raise ValueError(f"refine_steps must be a non-negative int, got {steps!r}")
    if not steps:
        return None
    lr = budget.get("refine_lr")
    if isinstance(lr, bool) or not isinstance(lr, (int, float)) or not lr > 0:
        raise ValueError(f"refine_steps = {steps} needs a positive refine_lr, got {lr!r}")
    calibration = budget.get("refine_occupancy_calibration", budget.get("occupancy_calibration", 1.0))
    FusionConfig(occupancy_calibration=calibration)  # the same check as the first phase's
    ema = budget.get("refine_ema", 0.0)
    if isinstance(ema, bool) or not isinstance(ema, (int, float)) or not 0.0 <= ema < 1.0:
        raise ValueError(f"refine_ema must be a decay in [0, 1) (0: no average), got {ema!r}")
    losses = step_kwargs({k[len("refine_"):]: v for k, v in budget.items() if k.startswith("refine_")})
    return {"steps": steps, "lr": float(lr), "occupancy_calibration": float(calibration), "ema": float(ema),
            "losses": losses}


def check_clear_of_validation(seed: int, steps: int, batch_size: int, n_eval: int) -> None:
    """Raises ValueError if a training phase of ``steps`` batches drawn by :func:`fusion_batches`
    with ``seed`` would include a scene of the first ``n_eval`` validation scenes (or their style
    references), which would make :func:`evaluate`'s ``split="validation"`` scores meaningless."""
    from ..data.datasets import _step_seeds

    lo, hi = VALIDATION_START, VALIDATION_START + 2 * n_eval + 2
    # batch k of a run is items k·B ... k·B + B - 1 of one walk, so all of them are one call with B·steps
    drawn = _step_seeds("train", 0, max(1, steps * batch_size), seed, stride=2)  # content seeds; references + 1
    if bool(((drawn + 1 >= lo) & (drawn < hi)).any()):
        raise ValueError(f"seed {seed} would train on validation scenes: its {steps} steps of {batch_size} reach "
                         f"the block of seeds {lo} to {hi - 1}; use a smaller seed (0 to 30 are clear)")


def train(out_dir: str | Path, *, runtime) -> dict[str, Any]:
    """``spokenstyle train fusion``: the scene judge on real renders (saved in ``out_dir/judge``),
    then F and D on ShapeScenes (and, if the budget asks, a slower second phase: :func:`refine_budget`);
    evaluated on held-out scenes; saved (F and D) to ``out_dir``."""
    import shutil
    import time

    from .. import cli
    from .. import runtime as _runtime
    from .features import feature_extractor

    out_dir = Path(out_dir)
    b = runtime.budget("fusion")
    refine = refine_budget(b)
    check_clear_of_validation(runtime.seed, b["steps"], b["batch_size"], b["eval"])
    if refine:  # the second phase draws with seed + 1
        check_clear_of_validation(runtime.seed + 1, refine["steps"], b["batch_size"], b["eval"])
    started = time.perf_counter()
    # 1. F and D
    config = config_for(b)
    _runtime.seed_everything(runtime.seed)
    model = FusionGAN(config)
    run_dir = runtime.run_dir("fusion")
    history = train_fusion(model, fusion_batches(b["batch_size"], seed=runtime.seed), steps=b["steps"], lr=b["lr"],
                           device=runtime.device, checkpoint_dir=run_dir, log_every=10,
                           step_kwargs=step_kwargs(b), d_lr_scale=b.get("d_lr_scale", 1.0))
    F_avg = None
    if refine:  # 1b. refinement: a second, slower run from where the first ended (refine_budget)
        model.config.occupancy_calibration = refine["occupancy_calibration"]  # F's and D's config object
        callbacks = []
        if refine["ema"]:  # the average restarts from the current weights if a killed run resumes
            from .dcgan import ema_update_

            drawing = drawing_blocks(model.F)
            F_avg = copy.deepcopy(drawing)
            callbacks.append(lambda t, step: ema_update_(F_avg, drawing, refine["ema"]))
        history = train_fusion(model, fusion_batches(b["batch_size"], seed=runtime.seed + 1), steps=refine["steps"],
                               lr=refine["lr"], device=runtime.device, checkpoint_dir=run_dir / "refine",
                               log_every=10, step_kwargs={**step_kwargs(b), **refine["losses"]}, desc="fusion (refine)",
                               callbacks=callbacks, callback_every=1 if callbacks else 0,
                               d_lr_scale=b.get("d_lr_scale", 1.0))
    train_seconds = time.perf_counter() - started
    # 2. the judge: trained on real renders only (never on F's pictures): the shipped one (chapter 5)
    #    if it exists, else the same recipe (budget "judge") run here and saved in out_dir/judge
    judge_dir = out_dir / "judge"
    if (judge_dir / checkpoints.MANIFEST).is_file():
        judge, judge_source = load_judge(judge_dir, device=runtime.device), "judge/ (trained by this recipe)"
    elif "judge" in checkpoints.shipped():
        judge, judge_source = load_judge("judge", device=runtime.device), "judge (shipped)"
    else:
        from .judge import train as train_judge_recipe

        train_judge_recipe(judge_dir, runtime=runtime)
        judge, judge_source = load_judge(judge_dir, device=runtime.device), "judge/ (trained by this recipe)"
    judge_seconds = time.perf_counter() - started - train_seconds
    # 3. step 5: the judges' verdict on held-out scenes
    features = feature_extractor(weights="features").to(runtime.device)
    model.eval()
    scores: dict[str, Any] = {}
    if F_avg is not None:  # the last step's F first, for the record; the average is shipped
        last = evaluate(model.F, judge, features, n=b["eval"], register="spoken")
        scores.update({f"last_{k}": last[k] for k in ("attr_match", "scene_match", "style_acc")})
        drawing_blocks(model.F).load_state_dict(F_avg.state_dict())
    scores.update(evaluate(model.F, judge, features, n=b["eval"], register="spoken"))
    formal = evaluate(model.F, judge, features, n=b["eval"], register="formal")
    scores.update({f"formal_{k}": v for k, v in formal.items() if k in ("attr_match", "style_acc", "scene_match")})
    val = evaluate(model.F, judge, features, n=b["eval"], register="spoken", split="validation")  # to compare runs
    scores.update({f"val_{k}": val[k] for k in ("attr_match", "style_acc", "scene_match")})
    scores.update({k: history.mean(k, last=20) for k in ("loss_D", "loss_G_adv", "l1", "slot_ce", "layout")})
    scores.update(steps=b["steps"], refine_steps=refine["steps"] if refine else 0,
                  refine_ema=refine["ema"] if refine else 0.0, batch_size=b["batch_size"], profile=runtime.profile, device=str(runtime.device),
                  judge_seconds=round(judge_seconds), train_seconds=round(train_seconds),
                  threads=torch.get_num_threads())
    print(scores)
    model.cpu()
    checkpoints.save_pretrained(model, out_dir, config=config, metrics=scores, command=cli.command_line(),
                                extra={"data": "ShapeScenes split 'train' (even seeds: content, odd: style references), "
                                               "formal and spoken captions alternating, target style from the seed, 64 px",
                                       "judge": judge_source,
                                       "features": "features (shipped, style head: features_style_acc)",
                                       "note": f"trained on {runtime.device} with {torch.get_num_threads()} thread(s)"})
    shutil.rmtree(run_dir, ignore_errors=True)
    return scores
