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
  Huang & Belongie 2017) into a style code; every decoder block is modulated by it through a
  learned affine map (called AdaIN here, as in StyleGAN; strictly conditional instance
  normalisation, Dumoulin et al. 2017: Huang & Belongie's AdaIN has no parameters).
* **Where.** A sentence says *what* is in the picture and roughly how the objects stand to each
  other, never *where* exactly. That freedom is ``z``: a small latent *layout code* decoded, with
  the sentence, into one position per colour. In training, z comes from encoding the ground-truth
  layout (a conditional VAE, as in BicycleGAN's cVAE-GAN, Zhu et al. 2017) and the decoder
  uses the true positions, so a pixel loss against the ground-truth render is meaningful (not an
  average over all layouts); at test time noise ``eps ~ N(0, I)`` goes through a learned prior
  over z given the sentence (:class:`LayoutPrior`, fitted afterwards with the rest of F frozen),
  and the layout decoder places the objects: without the prior, the decoder ignores the sentence's
  relations ("left of", "above") and honours them at chance.
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
    Dumoulin, Shlens & Kudlur 2017, "A Learned Representation For Artistic Style" (conditional
    instance normalisation), https://arxiv.org/abs/1610.07629
    Karras et al. 2018, "Progressive Growing of GANs" (pixel norm), https://arxiv.org/abs/1710.10196
    Reed et al. 2016, "Generative Adversarial Text to Image Synthesis", https://arxiv.org/abs/1605.05396
    Zhang et al. 2017 (StackGAN), Xu et al. 2018 (AttnGAN): text-conditioned image GANs.
    Zhu et al. 2017, "Toward Multimodal Image-to-Image Translation" (BicycleGAN), https://arxiv.org/abs/1711.11586
    Sohn, Lee & Yan 2015, "Learning Structured Output Representation using Deep Conditional
    Generative Models" (the conditional VAE and its prior network), NeurIPS
    Watters et al. 2019, "Spatial Broadcast Decoder", https://arxiv.org/abs/1901.07017
    Reddi et al. 2018, "On the Convergence of Adam and Beyond" (AMSGrad), https://arxiv.org/abs/1904.09237
    Tancik et al. 2020, "Fourier Features Let Networks Learn High Frequency Functions in Low
    Dimensional Domains", https://arxiv.org/abs/2006.10739

This file holds the networks and :func:`fuse`; the losses, the batches and the training recipe
are :mod:`spokenstyle.recipes.fusion`, the scorecard :func:`spokenstyle.evaluation.evaluate_fusion`.

Deviations, each for small CPU-trainable models: the content queries are tied to the six
ShapeScenes colours (colours are distinct within a scene, so they name the objects); an L1
reconstruction loss against the ground-truth render and a mask loss on the shape field carry
most of the training signal and the adversarial term sharpens textures; the layout is
teacher-forced in training.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import torch
import torch.nn.functional as Fn
from torch import nn
from torch.nn.utils import spectral_norm

from .. import runtime
from ..checkpoints import Pretrained
from ..data.scenes import COLOUR_RGB, COLOURS, N_SLOT_CLASSES
from ..data.styles import STYLES
from ..data.tokenizer import encode_batch

__all__ = [
    "FusionConfig",
    "TextEncoder",
    "StyleEncoder",
    "AdaINBlock",
    "ShapeField",
    "FusionGenerator",
    "FusionDiscriminator",
    "FusionGAN",
    "tokenize",
    "style_codes",
    "exaggerate_style",
    "fuse",
    "load_fusion",
    "spread_layout",
    "LayoutPrior",
    "outlines",
    "calibrate_occupancy",
    "fourier_features",
]

N_COLOURS = len(COLOURS)  # one content query, one position and one drawn object per colour


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
    n_styles: int = len(STYLES)
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
    # the style code divided by its root mean square (ProGAN's pixel norm, Karras et al. 2018), so
    # its length is fixed at sqrt(style_dim): see StyleEncoder. The recipe sets it; False is the default
    # so that checkpoints from before it (whose manifests lack the field) load unchanged
    style_norm: bool = False
    # a learned prior over the layout code given the sentence, p(z | sentence) (LayoutPrior): test-time
    # layouts decode z = mu(sentence) + sigma(sentence) * eps instead of eps ~ N(0, I). False: checkpoints
    # from before it load unchanged; the shipped F has it (spokenstyle train fusion_layout)
    layout_prior: bool = False

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
        if not isinstance(self.layout_prior, bool):
            raise ValueError(f"layout_prior must be True or False, got {self.layout_prior!r}")
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


class LayoutPrior(nn.Module):
    """tokens (B, T) → (mu, logvar), each (B, latent_dim): a prior over the layout code z given
    the sentence, p(z | sentence) = N(mu, diag(exp(logvar))) (the conditional VAE of Sohn, Lee &
    Yan 2015, whose prior network is conditioned on the input as here).

    Why: F's layout cVAE is trained with z encoded from the true layout (teacher forcing), and its
    decoder learns to read the whole layout from z and to ignore the sentence; at test time
    z ~ N(0, I) then places objects where no word put them. Measured on the F shipped before this
    prior (the 605 relations stated by 600 spoken test sentences; layouts decoded with the sentence
    and spread as at test time; chapter 7, section 7): the posterior mean z of the scene's own
    layout honoured 98.7 % of them, that of *another* scene's layout 50.6 %, and z ~ N(0, I) 49.4 %
    (random positions: 47.9 %). So the sentence's relations can only reach the layout through
    z: this prior learns where, in z's space, the layouts a sentence describes lie, and test-time
    codes are drawn there. It reads the tokens with its own embedding and bidirectional GRU (mean
    and max over time): a prior on F's own sentence vector, frozen, lifted relations only to 55 %
    in a 3,000-step CPU trial, as that vector was never asked to carry them.
    """

    def __init__(self, config: FusionConfig) -> None:
        super().__init__()
        d = config.text_dim
        self.embed = nn.Embedding(config.vocab_size, d, padding_idx=0)
        self.gru = nn.GRU(d, d, batch_first=True, bidirectional=True)
        self.head = nn.Sequential(nn.Linear(4 * d, 128), nn.ReLU(inplace=True), nn.Linear(128, 2 * config.latent_dim))

    def forward(self, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if not isinstance(tokens, torch.Tensor) or tokens.dim() != 2 or tokens.dtype != torch.int64:
            raise ValueError(f"tokens must be a (B, T) int64 tensor, got {getattr(tokens, 'shape', type(tokens).__name__)}")
        mask = (tokens != 0)[..., None]  # (B, T, 1)
        if not bool(mask.any(1).all()):
            raise ValueError("a row of tokens is all padding: every sentence needs at least one token (see tokenize)")
        lengths = mask[..., 0].sum(1).cpu()
        # packed, so the backward direction starts at each sentence's last word, not at the batch's
        # padding: a sentence reads the same whatever it is batched with
        packed = nn.utils.rnn.pack_padded_sequence(self.embed(tokens), lengths, batch_first=True, enforce_sorted=False)
        states, _ = nn.utils.rnn.pad_packed_sequence(self.gru(packed)[0], batch_first=True, total_length=tokens.shape[1])
        mean = (states * mask).sum(1) / mask.sum(1).clamp(min=1)
        peak = states.masked_fill(~mask, float("-inf")).amax(1)
        mu, logvar = self.head(torch.cat([mean, peak], 1)).chunk(2, 1)
        return mu, logvar.clamp(-8, 8)


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

    Trained with object pixels weighing ``w`` (:func:`spokenstyle.recipes.fusion.mask_loss`), the field's best answer at a
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
    recipe keeps 1, and its second phase (:func:`spokenstyle.recipes.fusion.refine_budget`) draws the raw occupancy too."""
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
    (the seed range ``validation``); with step 3, in none. Attribute match on 480 validation scenes, the
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

    Layout: text → six slot distributions; z (through the :class:`LayoutPrior`, if F has one) +
    sentence → six positions; the shape field paints
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
        self.layout_prior = LayoutPrior(c) if c.layout_prior else None  # p(z | sentence); None: N(0, I)
        w, s = c.g_width, c.style_dim
        self.field = ShapeField(c)
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

    def prior_code(self, z: torch.Tensor, tokens: torch.Tensor | None) -> torch.Tensor:
        """Noise z ~ N(0, I) (B, latent_dim) → a layout code from the prior: z itself without a
        :class:`LayoutPrior`, else ``mu + exp(logvar / 2) * z`` with (mu, logvar) read from ``tokens``."""
        if self.layout_prior is None:
            return z
        if not isinstance(tokens, torch.Tensor):
            raise ValueError("this F has a layout prior p(z | sentence): pass the sentences' tokens (tokens=...)")
        if tokens.dim() != 2 or tokens.shape[0] != z.shape[0]:
            raise ValueError(f"tokens must be (B, T) with B = {z.shape[0]}, one sentence per layout code, "
                             f"got {tuple(tokens.shape)}")
        mu, logvar = self.layout_prior(tokens)
        return mu + (0.5 * logvar).exp() * z

    def sample_layout(self, z: torch.Tensor, sentence: torch.Tensor, slot_logits: torch.Tensor, *,
                      tokens: torch.Tensor | None = None) -> torch.Tensor:
        """Test-time layout: z (N(0, I) noise) through the prior (:meth:`prior_code`; ``tokens``
        are needed when F has a :class:`LayoutPrior`), :meth:`decode_layout`, then
        :func:`spread_layout` over the colours the sentence mentions, so that objects never pile up."""
        present = slot_logits.argmax(-1) > 0  # (B, 6)
        code = self.prior_code(z, tokens)
        return spread_layout(self.decode_layout(code, sentence), present, min_gap=self.config.min_gap)

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

    def forward(self, z: torch.Tensor, tokens: torch.Tensor, style_images: torch.Tensor | None, *,
                positions: torch.Tensor | None = None, return_aux: bool = False, noise: torch.Tensor | None = None,
                style: torch.Tensor | None = None):
        """Draws the sentences ``tokens`` in the style of ``style_images`` with layout code ``z``.

        Args:
            z: (B, latent_dim) layout noise, N(0, I) at test time (mapped through the layout
                prior when F has one: :meth:`prior_code`).
            tokens: (B, T) int64 token ids (see :func:`tokenize`), 0 = padding.
            style_images: (B, 3, 64, 64) in [0, 1]; None when ``style`` is given.
            style: (B, style_dim) style codes to use instead of encoding ``style_images`` (e.g.
                the mean code of several pictures, :func:`style_codes`).
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
        if (style is None) == (style_images is None):
            raise ValueError("give exactly one of style_images (pictures) or style (their codes)")
        if style is not None and (not isinstance(style, torch.Tensor) or tuple(style.shape) != (B, c.style_dim)):
            raise ValueError(f"style must have shape ({B}, {c.style_dim}), got {getattr(style, 'shape', type(style).__name__)}")
        if style is None and (not isinstance(style_images, torch.Tensor) or style_images.dim() != 4
                              or tuple(style_images.shape) != (B, 3, r, r)):
            raise ValueError(f"style_images must have shape ({B}, 3, {r}, {r}) in [0, 1], "
                             f"got {getattr(style_images, 'shape', type(style_images).__name__)}")
        if noise is not None and (not isinstance(noise, torch.Tensor) or tuple(noise.shape) != (B, 1, r, r)):
            raise ValueError(f"noise must have shape ({B}, 1, {r}, {r}), got {getattr(noise, 'shape', type(noise).__name__)}")
        sentence, content, slot_logits = self.text(tokens)
        if positions is None:
            positions = self.sample_layout(z, sentence, slot_logits, tokens=tokens)
        if style is None:
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
        style term read as a classifier (the auxiliary style loss of :func:`spokenstyle.recipes.fusion.fusion_step`)."""
        every = self.style_embed(torch.arange(self.config.n_styles, device=phi.device))  # (n_styles, 8w)
        return phi @ every.T

    def forward(self, images: torch.Tensor, styles: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        r = self.config.resolution
        if not isinstance(images, torch.Tensor) or images.dim() != 4 or tuple(images.shape[1:]) != (3, r, r):
            raise ValueError(f"images must have shape (B, 3, {r}, {r}) in [0, 1], got "
                             f"{getattr(images, 'shape', type(images).__name__)}")
        return self.project(self.features(images), styles, tokens)


class FusionGAN(Pretrained, nn.Module):
    """The pair, so that one checkpoint holds both: ``model.F`` and ``model.D``;
    ``FusionGAN.from_pretrained("fusion")`` is the shipped pair (chapter 7)."""

    config_class = FusionConfig
    default_weights = "fusion"

    def __init__(self, config: FusionConfig | None = None) -> None:
        super().__init__()
        if config is not None and not isinstance(config, FusionConfig):
            raise TypeError(f"config must be a FusionConfig, got {type(config).__name__}")
        self.config = config or FusionConfig()
        self.F = FusionGenerator(self.config)
        self.D = FusionDiscriminator(self.config)


# -- inputs ------------------------------------------------------------------------------------

def tokenize(sentences: Sequence[str], config: FusionConfig | None = None) -> torch.Tensor:
    """Sentences → (B, T) int64 ids with the project tokenizer (``<bos>`` … ``<eos>``, 0-padded).

    Raises:
        TypeError / ValueError: not a non-empty list of non-empty strings.
    """
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
    """(B or 1, [K,] 3, H, W) pictures in [0, 1] → (n, [K,] 3, R, R), checked and resized."""
    if not isinstance(style_images, torch.Tensor):
        raise TypeError(f"style_images must be a float tensor (B, 3, H, W) in [0, 1], got {type(style_images).__name__}")
    if style_images.dim() == 3:
        style_images = style_images[None]
    if style_images.dim() == 5:  # K references per sentence
        if style_images.shape[1] < 1:
            raise ValueError("style_images of shape (B, K, 3, H, W) need at least one reference (K >= 1)")
        B, K = style_images.shape[:2]
        if B not in (1, n):
            raise ValueError(f"got {B} rows of style images for {n} sentences; give one row per sentence or one for all")
        flat = _style_input(style_images.flatten(0, 1), B * K, resolution)
        flat = flat.view(B, K, *flat.shape[1:])
        return flat.expand(n, -1, -1, -1, -1) if B == 1 else flat
    if style_images.dim() != 4 or style_images.shape[1] != 3:
        raise ValueError(f"style_images must have shape (B, 3, H, W) or (B, K, 3, H, W), got "
                         f"{tuple(style_images.shape)}")
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
def style_codes(F: FusionGenerator, style_images: torch.Tensor) -> torch.Tensor:
    """F's style code of pictures: (B, 3, H, W) → (B, style_dim); (B, K, 3, H, W) → the mean
    code of each row's K pictures (re-normalised like one code when F normalises its codes).

    Why the mean: one picture is one draw of a style (a few strokes, one paper texture); the
    mean code of several pictures of the same style is closer to the style itself, and chapter
    10 measures what it does to pictures that miss their target style."""
    if not isinstance(F, FusionGenerator):
        raise TypeError(f"F must be a FusionGenerator (see load_fusion), got {type(F).__name__}")
    x = _style_input(style_images, style_images.shape[0] if isinstance(style_images, torch.Tensor) else 1,
                     F.config.resolution)
    device = next(F.parameters()).device
    was_training = F.training
    F.eval()
    try:
        if x.dim() == 4:
            return F.style(x.to(device))
        B, K = x.shape[:2]
        codes = F.style(x.flatten(0, 1).to(device)).view(B, K, -1).mean(1)  # (B, style_dim)
        if F.style.normalize:
            codes = codes * torch.rsqrt(codes.square().mean(1, keepdim=True) + 1e-8)
        return codes
    finally:
        F.train(was_training)


@torch.no_grad()
def fuse(F: FusionGenerator, sentences: list[str], style_images: torch.Tensor | None = None, *, seed: int = 0,
         style: torch.Tensor | None = None) -> torch.Tensor:
    """Step 4: draws each sentence in the style of its style image.

    Args:
        F: a :class:`FusionGenerator` (e.g. :func:`load_fusion`).
        sentences: B sentences in any register (formal or spoken English about ShapeScenes).
        style_images: (B, 3, H, W) float in [0, 1], any H and W (resized to 64 px), or one
            image (1, 3, H, W) for all sentences; or (B or 1, K, 3, H, W): K pictures of the
            style per sentence, whose mean style code is used (:func:`style_codes`).
        style: (B or 1, style_dim) style codes to draw with instead of ``style_images`` (give
            exactly one of the two), e.g. from :func:`style_codes` or :func:`exaggerate_style`.
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
    runtime.check_seed(seed)
    c = F.config
    tokens = tokenize(sentences, c)
    if (style is None) == (style_images is None):
        raise ValueError("give exactly one of style_images (pictures) or style (their codes)")
    if style is not None:
        if not isinstance(style, torch.Tensor) or style.dim() != 2 or style.shape[0] not in (1, len(tokens)) \
                or style.shape[1] != c.style_dim:
            raise ValueError(f"style must be ({len(tokens)} or 1, {c.style_dim}) style codes, got "
                             f"{tuple(style.shape) if isinstance(style, torch.Tensor) else type(style).__name__}")
        codes = style.float().expand(len(tokens), -1).to(next(F.parameters()).device)
    else:
        style = _style_input(style_images, len(tokens), c.resolution)
        codes = style_codes(F, style) if style.dim() == 5 else None
    device = next(F.parameters()).device
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(len(tokens), c.latent_dim, generator=g)  # CPU: same on every device
    noise = torch.randn(len(tokens), 1, c.resolution, c.resolution, generator=g).to(device) if c.noise else None
    was_training = F.training
    F.eval()
    try:
        out = (F(z.to(device), tokens.to(device), style.to(device), noise=noise) if codes is None else
               F(z.to(device), tokens.to(device), None, style=codes, noise=noise))
    finally:
        F.train(was_training)
    return out.clamp(0, 1)


def exaggerate_style(codes: torch.Tensor, centre: torch.Tensor, strength: float, *, normalize: bool = False) -> torch.Tensor:
    """Style codes pushed away from ``centre``: ``codes + strength · (codes - centre)``.

    ``codes`` (B, style_dim) are codes of target styles (e.g. :func:`style_codes` of K pictures
    per style) and ``centre`` (style_dim,) the mean code of all styles. What makes a style
    itself, and not its neighbour, is where its code differs from the others'; ``strength`` > 0
    moves further along that difference than any reference picture does (0: ``codes``
    unchanged), as the truncation trick moves towards the mean, in the other direction. It buys
    style at the price of drawing further from anything F was trained on: chapter 10 measures the
    content it costs. ``normalize``: divide by the root mean square afterwards, as an F with
    ``config.style_norm`` does with its own codes (pass ``F.style.normalize``)."""
    if not isinstance(codes, torch.Tensor) or codes.dim() != 2:
        raise ValueError(f"codes must be (B, style_dim), got "
                         f"{tuple(codes.shape) if isinstance(codes, torch.Tensor) else type(codes).__name__}")
    if not isinstance(centre, torch.Tensor) or tuple(centre.shape) != (codes.shape[1],):
        raise ValueError(f"centre must be ({codes.shape[1]},), the mean code, got "
                         f"{tuple(centre.shape) if isinstance(centre, torch.Tensor) else type(centre).__name__}")
    if isinstance(strength, bool) or not isinstance(strength, (int, float)) or strength < 0:
        raise ValueError(f"strength must be a number >= 0, got {strength!r}")
    out = codes + strength * (codes - centre.to(codes))
    if normalize:
        out = out * torch.rsqrt(out.square().mean(1, keepdim=True) + 1e-8)
    return out


# -- checkpoints -------------------------------------------------------------------------------

def load_fusion(name_or_path: str | Path = "fusion", device=None) -> FusionGenerator:
    """The trained fusion generator F (shipped ``"fusion"`` by default, or a checkpoint folder),
    in eval mode on ``device`` (default: :func:`spokenstyle.runtime.get_device`); like the pair, it
    keeps the checkpoint's ``manifest`` and ``checkpoint_path``."""
    pair = FusionGAN.from_pretrained(name_or_path, device=runtime.get_device(device))
    F = pair.F
    F.manifest, F.checkpoint_path = pair.manifest, pair.checkpoint_path
    return F
