"""The captioner S: a picture in, a sentence out, in the formal or the spoken register.

Step 3 of the book's pipeline (source §3, §4.2). S works in two halves with a narrow,
readable interface between them, *content*:

1. **perceive** (:class:`SceneReader`): a small CNN reads the picture into the content format
   the attribute reader R uses for sentences: for each ShapeScenes colour, which object has it
   (absent, or shape × size), and for each pair of colours, how they stand (left of, above,
   next to, or unstated). It is trained on what the renderer knows of the training pictures.
2. **speak**: the content, as probabilities, becomes 36 memory tokens (:class:`ContentMemory`:
   one per colour, one per ordered pair), and a GPT-2 decoder built by ``transformers`` from a config
   (nothing is downloaded) writes the sentence one token at a time, reading the memory through
   cross-attention in every block.

Why the bottleneck: the unpaired setting of chapter 6 has spoken sentences only as text. A
sentence's content can be read off the sentence itself (the parser), so the spoken register
learns *to say a given content* from the text alone, and the same decoder then says what the
reader sees in a picture (SemStyle, Mathews et al. 2018; the concept bridge of Feng et al. 2019).
A decoder that reads pixels instead can only learn, from text alone, to talk while ignoring
them (the book's first captioner did exactly that: chapter 6 keeps the lesson).

The register is a control token: every sentence starts ``<bos> <formal>`` or ``<bos> <spoken>``,
so one model holds both registers. Decoding comes in the usual three kinds, all in
:meth:`Captioner.generate`: greedy (the argmax at every step; equal to ``transformers``'
``generate()``, which the tests check), beam search (keep the ``num_beams`` best prefixes by
summed log-probability) and sampling (temperature and top-k). For adversarial training
:meth:`Captioner.gumbel_rollout` samples a whole sentence with the straight-through
Gumbel-softmax (Jang, Gu & Poole 2017; Maddison et al. 2017): the forward pass feeds back hard
one-hot tokens, the backward pass uses the gradient of the soft relaxation, so a critic's score
can be differentiated with respect to S's weights. :meth:`Captioner.sample` returns sampled
tokens with their log-probabilities for REINFORCE (Williams 1992).

References:
    Radford et al. 2019, "Language Models are Unsupervised Multitask Learners" (GPT-2);
    ``transformers/models/gpt2/modeling_gpt2.py`` (``add_cross_attention``).
    Xu et al. 2015, "Show, Attend and Tell", https://arxiv.org/abs/1502.03044
    Mathews, Xie & He 2018, "SemStyle: Learning to Generate Stylised Image Captions using
    Unaligned Text", https://arxiv.org/abs/1805.07030
    Feng et al. 2019, "Unsupervised Image Captioning", https://arxiv.org/abs/1811.10787
    Jang, Gu & Poole 2017, "Categorical Reparameterization with Gumbel-Softmax",
    https://arxiv.org/abs/1611.01144

Deviations: the image encoder is a 5-layer CNN trained from scratch (ShapeScenes needs no
ImageNet features) with one slot per colour (colours are distinct within a picture); its
colour map is also trained against the renders' colour masks (a segmentation label, as COCO
pictures have), which teaches it where each colour is long before the object labels do.
Sentences with no picture at all (the spoken language model of chapter 6) use one learned
"no image" memory vector.
"""

from __future__ import annotations

import inspect
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from transformers import GPT2Config, GPT2LMHeadModel

from .. import checkpoints, runtime
from ..checkpoints import Pretrained
from ..data.content import N_PAIR_CLASSES, PAIRS
from ..data.images import as_images
from ..data.scenes import COLOURS, N_SLOT_CLASSES
from ..data.tokenizer import (BOS_ID, EOS_ID, MAX_CAPTION_TOKENS, PAD_ID, decode_batch, load_tokenizer,
                              tokenizer_digest)

N_COLOURS = len(COLOURS)  # one memory slot per colour

__all__ = [
    "REGISTERS",
    "CaptionerConfig",
    "SceneReader",
    "ContentMemory",
    "content_probs",
    "Captioner",
    "GenerateOutput",
    "gumbel_softmax",
    "captioner",
    "captioner_config",
    "caption_images",
    "check_tokenizer",
    "rule_based_rewrite",
]

REGISTERS: tuple[str, ...] = ("formal", "spoken")

# transformers 5 renamed the decoder's cache argument (`past_key_values` -> `cache`); Colab may
# still have 4.x, so ask the signature which one this version takes.
_CACHE_ARG = "cache" if "cache" in inspect.signature(GPT2LMHeadModel.forward).parameters else "past_key_values"


def _cache_of(output: Any) -> Any:
    return getattr(output, "cache", None) if _CACHE_ARG == "cache" else output.past_key_values


def _reorder_cache(cache: Any, rows: torch.Tensor) -> Any:
    """The key/value cache of the hypotheses ``rows`` (a beam search's survivors): a ``Cache``
    object reorders itself in place; older transformers return tuples of tensors per layer."""
    if hasattr(cache, "reorder_cache"):
        cache.reorder_cache(rows)
        return cache
    return tuple(tuple(t.index_select(0, rows.to(t.device)) for t in layer) for layer in cache)


# -- helpers -----------------------------------------------------------------------------------

def gumbel_softmax(logits: torch.Tensor, tau: float = 1.0, *, hard: bool = True,
                   generator: torch.Generator | None = None) -> torch.Tensor:
    """A sample from the Gumbel-softmax (concrete) distribution over the last dimension.

    ``softmax((logits + g) / tau)`` with ``g = -log(E)``, ``E ~ Exponential(1)``, i.e. Gumbel(0, 1)
    noise. With ``hard`` the forward value is the one-hot argmax and the gradient is the soft
    sample's (straight-through; Jang et al. 2017, §2.2). Draws the noise exactly as
    :func:`torch.nn.functional.gumbel_softmax` does, so with the same seed both return the same
    tensor; unlike it, this one takes a ``generator``.
    """
    if not isinstance(logits, torch.Tensor) or not logits.is_floating_point():
        raise TypeError("logits must be a floating-point tensor")
    if not tau > 0:
        raise ValueError(f"tau must be positive, got {tau!r}")
    gumbels = -torch.empty_like(logits, memory_format=torch.legacy_contiguous_format).exponential_(
        generator=generator).log()
    soft = ((logits + gumbels) / tau).softmax(-1)
    if not hard:
        return soft
    index = soft.argmax(-1, keepdim=True)
    one_hot = torch.zeros_like(logits, memory_format=torch.legacy_contiguous_format).scatter_(-1, index, 1.0)
    return one_hot - soft.detach() + soft  # value: one_hot; gradient: d soft


# -- blocks ------------------------------------------------------------------------------------

def _block(c_in: int, c_out: int, stride: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False),
                         nn.GroupNorm(min(8, c_out), c_out), nn.GELU())


class SceneReader(nn.Module):
    """Perception: image (B, 3, R, R) in [0, 1] → what is in it, as the reader R's content format.

    Returns ``(slot_logits (B, 6, 13), pair_logits (B, 15, 6))``: for each ShapeScenes colour the
    object of that colour (absent, or shape × size), and for each unordered pair of colours
    (i < j) their relation (0 unstated, 1 i left of j, 2 i right of j, 3 i above j, 4 i below j,
    5 next to; :func:`spokenstyle.data.content_targets`; 0 also when no relation applies).
    It is trained on what the renderer knows of a picture (chapter 6's ``perception_loss``); the
    data-scarce setting of chapter 6 is short of spoken *language*, not of vision labels.

    * **trunk**: five 3×3 convolutions (GroupNorm + GELU), the first at full resolution (a small
      shape is 10 px across; its corners tell a square from a diamond), down to R/4;
    * **colour slots**: a 1×1 convolution scores every cell for "background" or one of the six
      colours (softmax over 7); slot c pools the feature map with its weights and records where
      (weighted centroid) and how much (log mass). Colours are distinct within a picture, so
      slot c *is* the object of colour c: binding a shape to its colour is built in (chapter 1's
      scene judge does the same);
    * **pairs**: a small MLP reads each pair's relation from the two slots' features, centroids,
      their offset and distance (relations are geometry: ``relation_between``).
    """

    def __init__(self, config: "CaptionerConfig") -> None:
        super().__init__()
        widths = config.enc_channels
        strides = (1, 2, 1, 2, 1)  # R → R/2 → R/4
        layers, c_in = [], 3
        for c_out, stride in zip(widths, strides):
            layers.append(_block(c_in, c_out, stride))
            c_in = c_out
        self.trunk = nn.Sequential(*layers)
        c, hidden = widths[-1], config.enc_hidden
        self.colour_map = nn.Conv2d(c, 1 + N_COLOURS, 1)  # background + one score per colour
        self.slot_head = nn.Sequential(nn.Linear(c + 3, hidden), nn.GELU(), nn.Linear(hidden, N_SLOT_CLASSES))
        self.pair_proj = nn.Linear(c + 1, hidden // 2)  # a slot's features (and log mass) for the pair head
        self.pair_head = nn.Sequential(nn.Linear(hidden + 7, hidden), nn.GELU(), nn.Linear(hidden, N_PAIR_CLASSES))
        side = config.image_size // 4
        coords = (torch.arange(side, dtype=torch.float32) + 0.5) / side * 2 - 1  # cell centres in [-1, 1]
        yy, xx = torch.meshgrid(coords, coords, indexing="ij")
        self.register_buffer("xy", torch.stack([xx.flatten(), yy.flatten()], 1), persistent=False)  # (cells, 2)
        self.register_buffer("pair_i", torch.tensor([p[0] for p in PAIRS]), persistent=False)
        self.register_buffer("pair_j", torch.tensor([p[1] for p in PAIRS]), persistent=False)

    def forward(self, images: torch.Tensor, return_map: bool = False):
        h = self.trunk(images * 2.0 - 1.0)  # [0, 1] → [-1, 1]; (B, C, R/4, R/4)
        map_logits = self.colour_map(h)  # (B, 7, R/4, R/4)
        attn = map_logits.softmax(1)[:, 1:].flatten(2)  # (B, 6, n), background dropped
        mass = attn.sum(-1, keepdim=True)  # (B, 6, 1)
        pooled = torch.einsum("bkn,bcn->bkc", attn, h.flatten(2)) / (mass + 1e-3)  # (B, 6, C)
        centre = attn @ self.xy / (mass + 1e-3)  # (B, 6, 2): weighted centroid in canvas coordinates
        log_mass = torch.log(mass / attn.shape[-1] + 1e-4)  # (B, 6, 1)
        slot_logits = self.slot_head(torch.cat([pooled, centre, log_mass], -1))  # (B, 6, 13)
        f = self.pair_proj(torch.cat([pooled, log_mass], -1))  # (B, 6, hidden/2)
        i, j = self.pair_i, self.pair_j
        offset = centre[:, j] - centre[:, i]  # (B, 15, 2): from i to j, y down
        geometry = torch.cat([centre[:, i], centre[:, j], offset, offset.norm(dim=-1, keepdim=True)], -1)  # (B, 15, 7)
        pair_logits = self.pair_head(torch.cat([f[:, i], f[:, j], geometry], -1))  # (B, 15, 6)
        return (slot_logits, pair_logits, map_logits) if return_map else (slot_logits, pair_logits)


def content_probs(slot_logits: torch.Tensor, pair_logits: torch.Tensor, *,
                  stated: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """What S will say, as probabilities: ``(slots (B, 6, 13), pairs (B, 15, 6))``.

    A pair's relation counts only as far as both of its objects are there: its distribution is
    ``p(both present) · softmax(pair_logits) + (1 − p(both)) · [unstated]``. A sentence about
    three objects states two of their three relations (as every caption of the grammars does),
    so the third pair is set to "unstated": the pair the caption states no relation for when
    ``stated`` (B, 15) bool is given (training, teacher-forced from the formal caption), else the
    one whose relation S is least sure of (a pair S sees no relation in is unstated anyway).
    Text and pictures thus give S's decoder the same kind of content.
    """
    slots = slot_logits.float().softmax(-1)  # (B, 6, 13)
    present = 1.0 - slots[..., 0]  # (B, 6)
    i = torch.tensor([p[0] for p in PAIRS], device=slots.device)
    j = torch.tensor([p[1] for p in PAIRS], device=slots.device)
    both = (present[:, i] * present[:, j])[..., None]  # (B, 15, 1)
    unstated = F.one_hot(torch.zeros((), dtype=torch.long, device=slots.device), N_PAIR_CLASSES).float()
    pairs = both * pair_logits.float().softmax(-1) + (1.0 - both) * unstated  # (B, 15, 6)
    if stated is None:
        related = both[..., 0] > 0.25  # pairs whose two objects are (likely) there
        n_objects = (present > 0.5).sum(1)  # (B,)
        confidence = pairs[..., 1:].amax(-1).masked_fill(~related, float("inf"))
        weakest = confidence.argmin(1)  # (B,)
        drop = F.one_hot(weakest, len(PAIRS)).bool() & (n_objects >= 3)[:, None] & related
    else:
        drop = ~stated.to(slots.device).bool()
    pairs = torch.where(drop[..., None], unstated.expand_as(pairs), pairs)
    return slots, pairs


# a pair's relation seen from its other end: "i left of j" is "j right of i" (0 unstated, 1 left of,
# 2 right of, 3 above, 4 below, 5 next to)
_INVERSE_CLASS = (0, 2, 1, 4, 3, 5)


class ContentMemory(nn.Module):
    """Content probabilities → the decoder's cross-attention memory (B, 6 + 30, n_embd).

    One token per colour slot (``colour embedding + probs @ object-class embeddings``) and one
    per *ordered* pair of colours (a, b): ``subject a + object b + probs(a REL b) @ relation
    embeddings``, the relation as seen from a. Both directions are there because a sentence may
    name either object first: having said "the red ball", the decoder finds the word for how the
    blue box stands to it in the token (red, blue), with no "left" to turn into "right". (With
    one token per unordered pair the book's first run of this design wrote a third of its
    relations backwards.) A token of something that is not there (an absent colour, an unstated
    pair) is blended, by that probability, into one shared "nothing" vector. Probabilities rather than one-hot answers keep S's uncertainty (a
    blurry generated picture) visible to the decoder.
    """

    def __init__(self, config: "CaptionerConfig") -> None:
        super().__init__()
        d = config.n_embd
        self.colour = nn.Parameter(torch.randn(N_COLOURS, d) * 0.02)
        self.object = nn.Parameter(torch.randn(N_SLOT_CLASSES, d) * 0.02)
        self.subject = nn.Parameter(torch.randn(N_COLOURS, d) * 0.02)
        self.other = nn.Parameter(torch.randn(N_COLOURS, d) * 0.02)
        self.subject_object = nn.Parameter(torch.randn(N_SLOT_CLASSES, d) * 0.02)
        self.relation = nn.Parameter(torch.randn(N_PAIR_CLASSES, d) * 0.02)
        self.nothing = nn.Parameter(torch.randn(d) * 0.02)
        i = torch.tensor([p[0] for p in PAIRS])
        j = torch.tensor([p[1] for p in PAIRS])
        self.register_buffer("subj", torch.cat([i, j]), persistent=False)  # (30,) a of each ordered pair
        self.register_buffer("obj", torch.cat([j, i]), persistent=False)  # (30,) b
        self.register_buffer("inverse", torch.tensor(_INVERSE_CLASS), persistent=False)

    def forward(self, slots: torch.Tensor, pairs: torch.Tensor) -> torch.Tensor:
        if slots.dim() != 3 or slots.shape[1:] != (N_COLOURS, N_SLOT_CLASSES):
            raise ValueError(f"slot probabilities must have shape (B, {N_COLOURS}, {N_SLOT_CLASSES}), got {tuple(slots.shape)}")
        if pairs.dim() != 3 or pairs.shape[1:] != (len(PAIRS), N_PAIR_CLASSES) or pairs.shape[0] != slots.shape[0]:
            raise ValueError(f"pair probabilities must have shape (B, {len(PAIRS)}, {N_PAIR_CLASSES}), got {tuple(pairs.shape)}")
        slots = slots.to(self.object.dtype)
        ordered = torch.cat([pairs, pairs[..., self.inverse]], 1).to(self.relation.dtype)  # (B, 30, 6): i→j, then j→i
        slot_tokens = self.colour + slots @ self.object  # (B, 6, d)
        # a pair token carries its subject's object too, and only the subject's: having said "the
        # small yellow star", the decoder finds the tokens whose subject it is by its shape and
        # size, which the tokens of the other direction do not carry (with both objects in both
        # directions, a run of this design wrote a third of its relations backwards)
        pair_tokens = (self.subject[self.subj] + slots[:, self.subj] @ self.subject_object
                       + self.other[self.obj] + ordered @ self.relation)  # (B, 30, d)
        # what is not there (an absent colour, an unstated pair) fades into one shared "nothing"
        # token: many identical keys the decoder learns to ignore at once, instead of 30 distinct ones
        there = torch.cat([1.0 - slots[..., :1], 1.0 - ordered[..., :1]], 1)  # (B, 36, 1)
        tokens = torch.cat([slot_tokens, pair_tokens], 1)
        return (there * tokens + (1.0 - there) * self.nothing).contiguous()  # (B, 36, d); GPT-2's Conv1D wants contiguous


# -- config ------------------------------------------------------------------------------------

@dataclass
class CaptionerConfig:
    """The shape of a captioner. ``asdict(config)`` is stored in every checkpoint.

    The token ids come from the project's tokenizer (``spokenstyle/shipped/tokenizer.json``); the defaults
    only make a tiny test model buildable without it.
    """

    vocab_size: int = 64  # the tokenizer's vocabulary (ShapeScenes needs a few hundred words)
    pad_id: int = 0
    bos_id: int = 1
    eos_id: int = 2
    register_ids: tuple[int, int] = (3, 4)  # the <formal> and <spoken> control tokens, in REGISTERS order
    max_len: int = 40  # longest caption in tokens, without the two prefix tokens; spoken ones run to ~30
    image_size: int = 64  # the renders' size; other sizes are resized to it
    enc_channels: tuple[int, ...] = (24, 48, 48, 64, 64)  # trunk widths at R, R/2, R/2, R/4, R/4 (16 × 16 cells at 64 px)
    enc_hidden: int = 128  # the slot and pair heads' hidden units
    n_embd: int = 128  # decoder width; the grammar is small, 128 is enough and keeps a checkpoint ~3 MB
    n_layer: int = 2  # decoder blocks, each with self- and cross-attention
    n_head: int = 4
    dropout: float = 0.0  # GPT-2 uses 0.1; every training image is rendered afresh in a random style, so none is needed

    def __post_init__(self) -> None:
        self.register_ids = tuple(int(i) for i in self.register_ids)
        self.enc_channels = tuple(int(c) for c in self.enc_channels)
        for name in ("vocab_size", "max_len", "image_size", "n_embd", "n_layer", "n_head", "enc_hidden"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        if len(self.register_ids) != len(REGISTERS):
            raise ValueError(f"register_ids needs one id per register {REGISTERS}, got {self.register_ids}")
        ids = (self.pad_id, self.bos_id, self.eos_id, *self.register_ids)
        if len(set(ids)) != len(ids) or not all(0 <= i < self.vocab_size for i in ids):
            raise ValueError(f"pad/bos/eos/register ids must be distinct and < vocab_size={self.vocab_size}, got {ids}")
        if self.image_size % 8 or self.image_size < 32:
            raise ValueError(f"image_size must be a multiple of 8 and ≥ 32, got {self.image_size}")
        if len(self.enc_channels) != 5 or min(self.enc_channels) < 1:
            raise ValueError(f"enc_channels must list 5 positive widths, got {self.enc_channels}")
        if self.enc_hidden < 2:
            raise ValueError(f"enc_hidden must be at least 2, got {self.enc_hidden}")
        if self.n_embd % self.n_head:
            raise ValueError(f"n_embd={self.n_embd} must be divisible by n_head={self.n_head}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout!r}")

    def gpt2_config(self) -> GPT2Config:
        """The decoder's ``transformers`` config: GPT-2 with cross-attention in every block."""
        return GPT2Config(
            vocab_size=self.vocab_size, n_positions=self.max_len + 2, n_embd=self.n_embd,
            n_layer=self.n_layer, n_head=self.n_head, add_cross_attention=True,
            resid_pdrop=self.dropout, embd_pdrop=self.dropout, attn_pdrop=self.dropout,
            bos_token_id=self.bos_id, eos_token_id=self.eos_id, pad_token_id=self.pad_id,
            tie_word_embeddings=True,
        )


@dataclass
class GenerateOutput:
    """What :meth:`Captioner.gumbel_rollout` and :meth:`Captioner.sample` return.

    Attributes:
        tokens: (B, L) int64 ids without the prefix; pad after the first eos.
        mask: (B, L) bool, True up to and including the first eos.
        one_hot: (B, L, V) straight-through one-hot tokens (pad rows after eos), or None.
        log_probs: (B, L) log-probability of each sampled token (0 after eos), or None.
    """

    tokens: torch.Tensor
    mask: torch.Tensor
    one_hot: torch.Tensor | None = None
    log_probs: torch.Tensor | None = None
    entropy: torch.Tensor | None = field(default=None, repr=False)


# -- the model ---------------------------------------------------------------------------------

class Captioner(Pretrained, nn.Module):
    """S: image (B, 3, R, R) in [0, 1] + register → caption tokens.

    Sentences are ``<bos> <register> w1 … wn <eos>``; :meth:`forward` is teacher forcing on the
    words (``tokens`` = ``w1 … wn <eos>`` right-padded with ``pad_id``), :meth:`generate`
    decodes. Every method takes pictures, or a ``memory`` made by :meth:`encode` (pictures) or
    :meth:`encode_content` (content read from text); ``images=None`` means "no picture".
    """

    config_class = CaptionerConfig
    default_weights = "captioner_spoken"

    def __init__(self, config: CaptionerConfig) -> None:
        super().__init__()
        if not isinstance(config, CaptionerConfig):
            raise TypeError(f"config must be a CaptionerConfig, got {type(config).__name__}")
        self.config = config
        self.reader = SceneReader(config)  # perception: picture → what is in it
        self.content = ContentMemory(config)  # what is in it → the decoder's memory
        self.no_image = nn.Parameter(torch.zeros(1, 1, config.n_embd))  # memory for text about nothing we have
        nn.init.normal_(self.no_image, std=0.02)
        self.decoder = GPT2LMHeadModel(config.gpt2_config())

    # -- inputs ----------------------------------------------------------------------------------
    @property
    def device(self) -> torch.device:
        return self.no_image.device

    @property
    def embedding(self) -> nn.Embedding:
        """The token embedding (tied to the output layer)."""
        return self.decoder.transformer.wte

    def register_id(self, register: str | int) -> int:
        if isinstance(register, str) and register in REGISTERS:
            return self.config.register_ids[REGISTERS.index(register)]
        if isinstance(register, int) and not isinstance(register, bool) and 0 <= register < len(REGISTERS):
            return self.config.register_ids[register]
        raise ValueError(f"register must be one of {REGISTERS} (or its index), got {register!r}")

    def prefix(self, register: str | int, batch_size: int) -> torch.Tensor:
        """(B, 2) ids ``<bos> <register>`` that start every sentence."""
        row = torch.tensor([self.config.bos_id, self.register_id(register)], device=self.device)
        return row.expand(batch_size, 2)

    def read(self, images: Any) -> tuple[torch.Tensor, torch.Tensor]:
        """Perception alone: ``(slot_logits (B, 6, 13), pair_logits (B, 15, 6))`` of pictures."""
        images = as_images(images, self.config.image_size, name="images", crop=False, device=self.device)
        return self.reader(images)

    def encode(self, images: Any = None, batch_size: int | None = None, *,
               stated: torch.Tensor | None = None) -> torch.Tensor:
        """The cross-attention memory: (B, 36, n_embd) for pictures, (B, 1, n_embd) for none.

        A picture's memory is its content (:meth:`read`, then :func:`content_probs`; ``stated``
        (B, 15) bool names the pairs its caption relates, in training). ``images=None`` is the
        memory of "no picture" (a language model of sentences alone)."""
        if images is None:
            if batch_size is None or batch_size < 1:
                raise ValueError("encode(None) needs batch_size: how many sentences without a picture")
            return self.no_image.expand(batch_size, 1, -1).contiguous()
        return self.encode_content(*content_probs(*self.read(images), stated=stated))

    def encode_content(self, slots: torch.Tensor, pairs: torch.Tensor) -> torch.Tensor:
        """The memory of given content probabilities (:func:`content_probs`, :func:`spokenstyle.data.content_of_specs`)."""
        return self.content(slots.to(self.device), pairs.to(self.device))

    def _memory(self, images: Any, memory: torch.Tensor | None, batch_size: int | None) -> torch.Tensor:
        if memory is not None:
            if images is not None:
                raise ValueError("give images or memory, not both")
            if memory.dim() != 3 or memory.shape[-1] != self.config.n_embd:
                raise ValueError(f"memory must have shape (B, cells, {self.config.n_embd}), got {tuple(memory.shape)}")
            return memory.contiguous()
        return self.encode(images, batch_size)

    def _check_tokens(self, tokens: torch.Tensor) -> torch.Tensor:
        if not isinstance(tokens, torch.Tensor) or tokens.dtype not in (torch.int64, torch.int32):
            raise TypeError("tokens must be an integer tensor (B, L) of token ids")
        if tokens.dim() != 2:
            raise ValueError(f"tokens must have shape (B, L), got {tuple(tokens.shape)}")
        if tokens.shape[1] > self.config.max_len:
            raise ValueError(f"captions of {tokens.shape[1]} tokens exceed max_len={self.config.max_len}")
        if tokens.numel() and (int(tokens.min()) < 0 or int(tokens.max()) >= self.config.vocab_size):
            raise ValueError(f"token ids must be in [0, {self.config.vocab_size})")
        return tokens.long().to(self.device)

    # -- teacher forcing ------------------------------------------------------------------------
    def forward(self, images: Any, tokens: torch.Tensor, register: str | int = "formal", *,
                memory: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Teacher forcing: returns ``(logits, loss)``.

        Args:
            images: (B, 3, R, R) in [0, 1], or ``None`` for sentences without a picture.
            tokens: (B, L) ``w1 … wn <eos>`` right-padded with ``pad_id``.
            register: "formal" or "spoken".
            memory: a precomputed :meth:`encode` result instead of ``images``.

        Returns:
            logits (B, L, V) predicting ``tokens``, and the mean cross-entropy over non-pad tokens.
        """
        tokens = self._check_tokens(tokens)
        B = tokens.shape[0]
        memory = self._memory(images, memory, B)
        inputs = torch.cat([self.prefix(register, B), tokens[:, :-1]], 1)  # (B, L + 1)
        # embeddings rather than ids: right padding needs no attention mask (pads come last and
        # their predictions are ignored), and transformers would warn about pad ids in input_ids
        out = self.decoder(inputs_embeds=self.embedding(inputs), encoder_hidden_states=memory)
        logits = out.logits[:, 1:]  # position 1 (the register token) predicts w1; (B, L, V)
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), tokens.reshape(-1),
                               ignore_index=self.config.pad_id)
        return logits, loss

    @torch.no_grad()
    def log_likelihood(self, images: Any, tokens: torch.Tensor, register: str | int = "formal") -> torch.Tensor:
        """(B,) summed log-probability of each caption (pad ignored)."""
        tokens = self._check_tokens(tokens)
        logits, _ = self.forward(images, tokens, register)
        logp = logits.log_softmax(-1).gather(-1, tokens[..., None])[..., 0]
        return (logp * (tokens != self.config.pad_id)).sum(1)

    # -- step-by-step decoding ------------------------------------------------------------------
    def _start(self, memory: torch.Tensor, register: str | int,
               inputs_embeds: torch.Tensor | None = None) -> tuple[torch.Tensor, Any]:
        B = memory.shape[0]
        if inputs_embeds is None:
            inputs_embeds = self.embedding(self.prefix(register, B))
        out = self.decoder(inputs_embeds=inputs_embeds, encoder_hidden_states=memory, use_cache=True)
        return out.logits[:, -1], _cache_of(out)

    def _step(self, embeds: torch.Tensor, memory: torch.Tensor, cache: Any) -> tuple[torch.Tensor, Any]:
        out = self.decoder(inputs_embeds=embeds[:, None], encoder_hidden_states=memory, use_cache=True,
                           **{_CACHE_ARG: cache})
        return out.logits[:, -1], _cache_of(out)

    def _finish(self, tokens: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """Stacks per-step tokens; pads after the first eos; returns (tokens, mask)."""
        tokens = torch.stack(tokens, 1)  # (B, L)
        eos = (tokens == self.config.eos_id).long()
        after = (eos.cumsum(1) - eos) > 0  # strictly after the first eos
        tokens = tokens.masked_fill(after, self.config.pad_id)
        return tokens, ~after

    def gumbel_rollout(self, images: Any = None, register: str | int = "spoken", *, memory: torch.Tensor | None = None,
                       batch_size: int | None = None, tau: float = 1.0, max_len: int | None = None,
                       generator: torch.Generator | None = None) -> GenerateOutput:
        """Samples sentences with straight-through Gumbel-softmax, differentiably.

        Each step draws a hard one-hot token (:func:`gumbel_softmax`) and feeds its embedding
        (``one_hot @ W_emb``) back in, so the sentence is discrete in the forward pass and a
        loss on ``one_hot`` (a critic's score) back-propagates through every step into S.
        After a sentence's eos its rows are the constant pad one-hot (no gradient).
        """
        memory = self._memory(images, memory, batch_size)
        B, V = memory.shape[0], self.config.vocab_size
        max_len = max_len or self.config.max_len
        logits, cache = self._start(memory, register)
        pad = F.one_hot(torch.tensor(self.config.pad_id, device=memory.device), V).to(logits.dtype)
        done = torch.zeros(B, dtype=torch.bool, device=memory.device)
        one_hots, tokens, log_probs = [], [], []
        for t in range(max_len):
            y = gumbel_softmax(logits.float(), tau, hard=True, generator=generator)  # (B, V), hard forward
            ids = y.argmax(-1)
            log_probs.append(logits.float().log_softmax(-1).gather(1, ids[:, None])[:, 0].masked_fill(done, 0.0))
            y = torch.where(done[:, None], pad, y)
            ids = ids.masked_fill(done, self.config.pad_id)
            one_hots.append(y)
            tokens.append(ids)
            done = done | (ids == self.config.eos_id)
            if bool(done.all()) or t == max_len - 1:
                break
            logits, cache = self._step(y @ self.embedding.weight, memory, cache)  # (B, n_embd) soft-able embedding
        toks, mask = self._finish(tokens)
        return GenerateOutput(tokens=toks, mask=mask, one_hot=torch.stack(one_hots, 1),
                              log_probs=torch.stack(log_probs, 1))

    def sample(self, images: Any = None, register: str | int = "spoken", *, memory: torch.Tensor | None = None,
               batch_size: int | None = None, temperature: float = 1.0, top_k: int | None = None,
               max_len: int | None = None, generator: torch.Generator | None = None) -> GenerateOutput:
        """Ancestral sampling with per-token log-probabilities that carry gradients (REINFORCE).

        The log-probabilities are of the *temperature-1* model distribution (what REINFORCE's
        score function needs); ``temperature`` and ``top_k`` only shape which tokens are drawn.
        """
        if not temperature > 0:
            raise ValueError(f"temperature must be positive, got {temperature!r}")
        if top_k is not None and (not isinstance(top_k, int) or top_k < 1):
            raise ValueError(f"top_k must be a positive int or None, got {top_k!r}")
        memory = self._memory(images, memory, batch_size)
        B = memory.shape[0]
        max_len = max_len or self.config.max_len
        logits, cache = self._start(memory, register)
        done = torch.zeros(B, dtype=torch.bool, device=memory.device)
        tokens, log_probs, entropy = [], [], []
        for t in range(max_len):
            logp = logits.float().log_softmax(-1)  # (B, V)
            scores = logits.float() / temperature
            if top_k is not None and top_k < scores.shape[-1]:
                kth = scores.topk(top_k, -1).values[:, -1:]
                scores = scores.masked_fill(scores < kth, float("-inf"))
            ids = torch.multinomial(scores.softmax(-1), 1, generator=generator)[:, 0]
            ids = ids.masked_fill(done, self.config.pad_id)
            log_probs.append(logp.gather(1, ids[:, None])[:, 0].masked_fill(done, 0.0))
            entropy.append((-(logp.exp() * logp).sum(-1)).masked_fill(done, 0.0))
            tokens.append(ids)
            done = done | (ids == self.config.eos_id)
            if bool(done.all()) or t == max_len - 1:
                break
            logits, cache = self._step(self.embedding(ids), memory, cache)
        toks, mask = self._finish(tokens)
        return GenerateOutput(tokens=toks, mask=mask, log_probs=torch.stack(log_probs, 1),
                              entropy=torch.stack(entropy, 1))

    @torch.no_grad()
    def greedy(self, images: Any = None, register: str | int = "formal", *, memory: torch.Tensor | None = None,
               batch_size: int | None = None, max_len: int | None = None) -> torch.Tensor:
        """(B, L) tokens: the most likely token at every step (pad after eos)."""
        memory = self._memory(images, memory, batch_size)
        B = memory.shape[0]
        max_len = max_len or self.config.max_len
        logits, cache = self._start(memory, register)
        done = torch.zeros(B, dtype=torch.bool, device=memory.device)
        tokens = []
        for t in range(max_len):
            ids = logits.argmax(-1).masked_fill(done, self.config.pad_id)
            tokens.append(ids)
            done = done | (ids == self.config.eos_id)
            if bool(done.all()) or t == max_len - 1:
                break
            logits, cache = self._step(self.embedding(ids), memory, cache)
        return self._finish(tokens)[0]

    @torch.no_grad()
    def beam_search(self, images: Any = None, register: str | int = "formal", *, memory: torch.Tensor | None = None,
                    batch_size: int | None = None, num_beams: int = 4, length_penalty: float = 0.0,
                    max_len: int | None = None) -> torch.Tensor:
        """(B, L) tokens of the best of ``num_beams`` hypotheses per image.

        Keeps the ``num_beams`` prefixes with the highest summed log-probability; a finished
        hypothesis (it produced eos) stays in the beam with its score frozen. At the end the
        hypotheses are ranked by ``score / length ** length_penalty`` (0: plain log-probability,
        the exact maximiser when the beam is wide enough; 1: per-token average). The decoder's
        key/value cache follows the surviving beams (``reorder_cache``), so each step feeds one
        token per hypothesis, as sampling does: K hypotheses cost about K samples.
        """
        if not isinstance(num_beams, int) or num_beams < 1:
            raise ValueError(f"num_beams must be a positive int, got {num_beams!r}")
        memory = self._memory(images, memory, batch_size)
        B, K, V = memory.shape[0], num_beams, self.config.vocab_size
        max_len = max_len or self.config.max_len
        pad, eos = self.config.pad_id, self.config.eos_id
        mem = memory.repeat_interleave(K, 0)  # (B*K, cells, d)
        logits, cache = self._start(mem, register)
        seqs = torch.zeros(B * K, 0, dtype=torch.long, device=memory.device)
        scores = torch.full((B, K), float("-inf"), device=memory.device)
        scores[:, 0] = 0.0  # all beams start identical: keep one alive
        done = torch.zeros(B * K, dtype=torch.bool, device=memory.device)
        lengths = torch.zeros(B * K, device=memory.device)
        for t in range(max_len):
            logp = logits.float().log_softmax(-1)  # (B*K, V)
            frozen = torch.full_like(logp, float("-inf"))
            frozen[:, pad] = 0.0  # a finished hypothesis can only append pad, at no cost
            logp = torch.where(done[:, None], frozen, logp)
            cand = (scores.reshape(-1, 1) + logp).reshape(B, K * V)
            scores, flat = cand.topk(K, dim=1)  # (B, K)
            beam = flat // V + torch.arange(B, device=memory.device)[:, None] * K  # source row in B*K
            token = (flat % V).reshape(-1)
            beam = beam.reshape(-1)
            seqs = torch.cat([seqs[beam], token[:, None]], 1)
            lengths = lengths[beam] + (~done[beam]).float()
            done = done[beam] | (token == eos)
            if bool(done.all()) or t == max_len - 1:
                break
            cache = _reorder_cache(cache, beam)  # each surviving hypothesis keeps its own prefix's keys/values
            logits, cache = self._step(self.embedding(token), mem, cache)
        final = scores.reshape(-1) / lengths.clamp(min=1) ** length_penalty
        final = final.masked_fill(torch.isnan(final), float("-inf")).reshape(B, K)
        best = final.argmax(1) + torch.arange(B, device=memory.device) * K
        return self._finish(list(seqs[best].unbind(1)))[0]

    def generate(self, images: Any = None, register: str | int = "formal", *, method: str = "greedy",
                 memory: torch.Tensor | None = None, batch_size: int | None = None, num_beams: int = 4,
                 length_penalty: float = 0.0, temperature: float = 1.0, top_k: int | None = None,
                 max_len: int | None = None, generator: torch.Generator | None = None) -> torch.Tensor:
        """Captions as (B, L) token ids (no prefix; pad after eos) by ``method``:
        ``"greedy"``, ``"beam"`` or ``"sample"``."""
        if method == "greedy":
            return self.greedy(images, register, memory=memory, batch_size=batch_size, max_len=max_len)
        if method == "beam":
            return self.beam_search(images, register, memory=memory, batch_size=batch_size, num_beams=num_beams,
                                    length_penalty=length_penalty, max_len=max_len)
        if method == "sample":
            with torch.no_grad():
                return self.sample(images, register, memory=memory, batch_size=batch_size, temperature=temperature,
                                   top_k=top_k, max_len=max_len, generator=generator).tokens
        raise ValueError(f"method must be 'greedy', 'beam' or 'sample', got {method!r}")

    # -- checkpoints ----------------------------------------------------------------------------
    def save_pretrained(self, directory: str | Path, *, metrics: dict[str, Any] | None = None,
                        command: str | None = None, extra: dict[str, Any] | None = None) -> Path:
        """Writes the weights and the manifest, with the tokenizer's fingerprint: token ids mean
        nothing under another vocabulary, so :meth:`from_pretrained` checks it."""
        return super().save_pretrained(directory, metrics=metrics, command=command,
                                       extra={"tokenizer": tokenizer_digest(), **dict(extra or {})})

    @staticmethod
    def _check_manifest(manifest: dict[str, Any], where: Any) -> None:
        check_tokenizer(manifest, where)


def check_tokenizer(manifest: dict[str, Any], where: Any) -> None:
    """Refuses a checkpoint whose manifest records another tokenizer than the shipped one."""
    saved = (manifest.get("extra") or {}).get("tokenizer")
    if saved is not None and saved != tokenizer_digest():
        raise checkpoints.CheckpointError(
            f"{where} was trained with another tokenizer (vocabulary {saved}, this one is {tokenizer_digest()}); "
            "retrain it with `spokenstyle train captioner`")


def captioner_config(**overrides: Any) -> CaptionerConfig:
    """S's architecture with the project tokenizer's ids and vocabulary (``overrides`` change fields)."""
    tok = load_tokenizer()
    base = dict(vocab_size=tok.get_vocab_size(), pad_id=PAD_ID, bos_id=BOS_ID, eos_id=EOS_ID,
                register_ids=(tok.token_to_id("<formal>"), tok.token_to_id("<spoken>")), max_len=MAX_CAPTION_TOKENS)
    return CaptionerConfig(**{**base, **overrides})


@torch.no_grad()
def caption_images(S: Captioner, images: torch.Tensor, register: str = "spoken", *, method: str = "greedy",
                   batch_size: int = 256, seed: int = 0, **kwargs: Any) -> tuple[list[str], torch.Tensor]:
    """(strings, token ids) of S's captions of ``images``, in batches; sampling is seeded
    (:meth:`Captioner.generate`'s ``method`` and its keyword arguments)."""
    if not isinstance(S, Captioner):
        raise TypeError(f"S must be a Captioner, got {type(S).__name__}")
    g = torch.Generator().manual_seed(runtime.check_seed(seed))
    S.eval()
    texts, rows = [], []
    for start in range(0, images.shape[0], batch_size):
        x = images[start: start + batch_size].to(S.device)
        extra = dict(kwargs, generator=g) if method == "sample" else kwargs
        ids = S.generate(x, register, method=method, **extra).cpu()
        rows.append(ids)
        texts += decode_batch(ids)
    L = max(r.shape[1] for r in rows)
    return texts, torch.cat([F.pad(r, (0, L - r.shape[1])) for r in rows])


def captioner(*, config: CaptionerConfig | None = None, weights: str | Path | None = None,
              **overrides: Any) -> Captioner:
    """A captioner S: CNN encoder + GPT-2 decoder with cross-attention.

    Args:
        config: the architecture; ``None`` = :class:`CaptionerConfig` defaults. Keyword
            ``overrides`` replace single fields (``captioner(n_layer=3)``).
        weights: ``None`` for a random init, the name of a shipped checkpoint
            (``"captioner_formal"``, ``"captioner_spoken"``, ``"captioner_paired"``) or a
            checkpoint folder; the architecture then comes from the checkpoint.
    """
    if weights is None:
        if config is not None and not isinstance(config, CaptionerConfig):
            raise TypeError(f"config must be a CaptionerConfig or None, got {type(config).__name__}")
        base = asdict(config) if config is not None else {}
        return Captioner(CaptionerConfig(**{**base, **overrides}))
    if config is not None or overrides:
        raise ValueError("give either weights (the checkpoint fixes the architecture) or config/overrides, not both")
    return Captioner.from_pretrained(weights)


# -- the lower bound: no model at all ----------------------------------------------------------

_RULES: tuple[tuple[str, str], ...] = (
    (r"^There is ", "there's "), (r"^The image shows ", "check out "), (r"^The picture contains ", "look, there's "),
    (r"\blarge\b", "big"), (r"\bsmall\b", "tiny"), (r"\bcircle\b", "ball"), (r"\bsquare\b", "box"),
    (r"\bdiamond\b", "gem"), (r"\bcross\b", "plus sign"), (r" is shown\.$", ", look!"),
    (r"\bto the left of\b", "left of"), (r"\bto the right of\b", "right of"),
)


def rule_based_rewrite(formal: str) -> str:
    """The naive lower bound: a formal caption with a dozen word substitutions, "whoa, " in
    front and "!" at the end (e.g. "A large red circle is left of a small blue square." →
    "whoa, a big red ball is left of a tiny blue box!"). One template, no variety."""
    if not isinstance(formal, str):
        raise TypeError(f"expected a formal caption string, got {type(formal).__name__}")
    text = formal.strip()
    for pattern, repl in _RULES:
        text = re.sub(pattern, repl, text)
    text = text[:1].lower() + text[1:]
    text = re.sub(r"\.\s+(\w)", lambda m: "! and " + m.group(1).lower(), text)
    text = re.sub(r"\.$", "!", text)
    return "whoa, " + text

