"""Text classifiers of chapter 6: the critic T, the register classifier and the attribute reader.

All three are one architecture, :class:`TextClassifier`: token embedding + position embedding,
a small pre-norm transformer encoder, masked mean pooling, a linear head (the reader instead
pools with one learned query per answer: 6 colour slots and 15 colour pairs). They differ in
their head and in what they are trained on:

* **critic T** (one logit): genuine spoken sentences from the unpaired pile (label 1) against
  the captioner's spoken outputs (label 0). It is S's adversary in chapter 6; trained only on
  text, because the pile's sentences come with no picture (an image-conditioned critic would
  need (image, spoken sentence) pairs, which the unpaired setting does not have).
* **register classifier** (one logit, spoken vs formal): trained once on grammar sentences of
  both registers about scenes that are not evaluated on, and used **only to measure** the
  "spoken rate". Never used to train S, so S cannot learn to exploit it.
* **attribute reader R** (:data:`READER_OUTPUTS` logits): reads a sentence back into the scene
  it describes (which shape and size each colour has, and how each pair of colours is
  related); trained on formal captions of the training images and on the spoken pile labelled
  by the parser. It keeps S's spoken sentences grounded: S is penalised when R cannot read the
  picture's content back from them (attribute reconstruction; Hu et al. 2017 use the same idea
  for controlled text generation).

Every classifier accepts token ids ``(B, L)`` **or** (relaxed) one-hot rows ``(B, L, V)``: the
embedding of a one-hot row is ``one_hot @ W_emb``, so a straight-through Gumbel-softmax sentence
from the captioner is differentiable through the classifier (that is how T's and R's gradients
reach S).

References:
    Vaswani et al. 2017, "Attention Is All You Need" (the encoder);
    Yu et al. 2017, "SeqGAN" (a CNN text discriminator in the same role as T);
    Hu et al. 2017, "Toward Controlled Generation of Text", https://arxiv.org/abs/1703.00955
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .. import checkpoints
from ..data.scenes import COLOURS, SHAPES, SIZES, SceneBatch, SceneSpec

__all__ = [
    "KINDS",
    "N_SLOT_CLASSES",
    "N_PAIR_CLASSES",
    "PAIRS",
    "READER_OUTPUTS",
    "TextClassifierConfig",
    "TextClassifier",
    "scene_targets",
    "reader_loss",
    "geometric_pairs",
    "grounding_loss",
    "reader_predict",
    "text_classifier",
]

KINDS: tuple[str, ...] = ("critic", "register", "reader")

# -- the reader's targets: a complete, order-free summary of a scene -----------------------------
# Colours are distinct within a scene, so a colour names one object. Per colour slot: 0 = no
# object of that colour, else 1 + shape * len(SIZES) + size (the same code as
# SceneBatch.colour_slots). Per unordered colour pair (i < j): 0 = no stated relation,
# 1 = i left of j, 2 = j left of i, 3 = i above j, 4 = j above i, 5 = next to.
N_SLOT_CLASSES = 1 + len(SHAPES) * len(SIZES)  # 13
PAIRS: tuple[tuple[int, int], ...] = tuple((i, j) for i in range(len(COLOURS)) for j in range(i + 1, len(COLOURS)))
N_PAIR_CLASSES = 6
READER_OUTPUTS = len(COLOURS) * N_SLOT_CLASSES + len(PAIRS) * N_PAIR_CLASSES  # 6·13 + 15·6 = 168


def scene_targets(scenes: SceneBatch | Sequence[SceneSpec | None]) -> tuple[torch.Tensor, torch.Tensor]:
    """(slots (B, 6), pairs (B, 15)) int64 reader targets of scenes (``None`` rows → -1: ignored)."""
    specs = scenes.specs() if isinstance(scenes, SceneBatch) else list(scenes)
    slots = torch.full((len(specs), len(COLOURS)), -1, dtype=torch.int64)
    pairs = torch.full((len(specs), len(PAIRS)), -1, dtype=torch.int64)
    pair_index = {p: k for k, p in enumerate(PAIRS)}
    for b, spec in enumerate(specs):
        if spec is None:
            continue
        if not isinstance(spec, SceneSpec):
            raise TypeError(f"scenes[{b}] must be a SceneSpec or None, got {type(spec).__name__}")
        slots[b] = 0
        pairs[b] = 0
        for o in spec.objects:
            slots[b, COLOURS.index(o.colour)] = 1 + SHAPES.index(o.shape) * len(SIZES) + SIZES.index(o.size)
        for a, rel, o in spec.facts():  # canonical: "left of", "above" or "next to"
            i, j = COLOURS.index(a.colour), COLOURS.index(o.colour)
            lo, hi = min(i, j), max(i, j)
            if rel == "next to":
                cls = 5
            else:
                base = 1 if rel == "left of" else 3
                cls = base if i < j else base + 1
            pairs[b, pair_index[(lo, hi)]] = cls
    return slots, pairs


def geometric_pairs(scenes: SceneBatch) -> torch.Tensor:
    """(B, 15) int64: for every pair of colours present in the picture, the pair class (as in
    :func:`scene_targets`) of the relation the *geometry* shows, whether or not the scene's
    chain states it; -1 where the pair is absent or no relation applies (diagonal layouts).

    A three-object scene states two relations, but half the time the third pair is related
    too ("A left of B, B left of C": A is left of C as well), so a caption may truthfully
    state a pair the scene's chain does not. Truth, not the chain, is what grounding checks.
    """
    from ..data.scenes import relation_between

    if not isinstance(scenes, SceneBatch):
        raise TypeError(f"scenes must be a SceneBatch, got {type(scenes).__name__}")
    cpu = scenes.to("cpu")
    B, N = cpu.mask.shape
    pos = torch.zeros(B, len(COLOURS), 2)
    rad = torch.zeros(B, len(COLOURS))
    present = torch.zeros(B, len(COLOURS), dtype=torch.bool)
    for k in range(N):
        rows = cpu.mask[:, k].nonzero()[:, 0]
        col = cpu.colour[rows, k]
        pos[rows, col] = cpu.pos[rows, k]
        rad[rows, col] = cpu.radius[rows, k]
        present[rows, col] = True
    i = torch.tensor([p[0] for p in PAIRS])
    j = torch.tensor([p[1] for p in PAIRS])
    rel = relation_between(pos[:, i], pos[:, j], rad[:, i], rad[:, j])  # (B, 15) ids into RELATIONS
    # RELATIONS ids: 0 i left of j, 1 i right of j, 2 i above j, 3 i below j, 4 next to
    to_class = torch.tensor([1, 2, 3, 4, 5])
    out = torch.where(rel >= 0, to_class[rel.clamp(min=0)], torch.full_like(rel, -1))
    return out.masked_fill(~(present[:, i] & present[:, j]), -1)


def grounding_loss(logits: torch.Tensor, slots: torch.Tensor, true_pairs: torch.Tensor, *,
                   reduction: str = "mean") -> torch.Tensor:
    """How far the reader's reading of a (generated) sentence is from being *true* of a picture.

    Slots: cross-entropy against the picture's objects (every object must be named exactly).
    Pairs: ``−log(p(unstated) + p(true relation))``: a caption may leave a pair unstated, but
    must not state a false relation. ``true_pairs`` is (B, 15), from :func:`geometric_pairs`
    (-1: no relation is true, only "unstated" is allowed). Rows with ``slots[:, 0] < 0`` are
    ignored. Returns the mean over sentences of the mean over the 21 heads (``reduction="none"``:
    one value per sentence).
    """
    if logits.dim() != 2 or logits.shape[1] != READER_OUTPUTS:
        raise ValueError(f"reader logits must have shape (B, {READER_OUTPUTS}), got {tuple(logits.shape)}")
    s_logits, p_logits = _split_reader(logits.float())
    slots, true_pairs = slots.to(logits.device), true_pairs.to(logits.device)
    ls = F.cross_entropy(s_logits.transpose(1, 2), slots.clamp(min=0), reduction="none")  # (B, 6)
    logp = p_logits.log_softmax(-1)  # (B, 15, 6)
    allowed = F.one_hot(true_pairs.clamp(min=0), N_PAIR_CLASSES).bool() & (true_pairs >= 0)[..., None]
    allowed[..., 0] = True  # "unstated" is always allowed
    lp = -torch.logsumexp(logp.masked_fill(~allowed, float("-inf")), -1)  # (B, 15)
    per = torch.cat([ls, lp], 1).mean(1)
    if reduction == "none":
        return per
    valid = slots[:, 0] >= 0
    return per[valid].mean() if bool(valid.any()) else per.sum() * 0.0


def _split_reader(logits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    B = logits.shape[0]
    n = len(COLOURS) * N_SLOT_CLASSES
    return (logits[:, :n].reshape(B, len(COLOURS), N_SLOT_CLASSES),
            logits[:, n:].reshape(B, len(PAIRS), N_PAIR_CLASSES))


def reader_loss(logits: torch.Tensor, slots: torch.Tensor, pairs: torch.Tensor, *,
                reduction: str = "mean") -> torch.Tensor:
    """Cross-entropy of the reader's logits (B, 168) against :func:`scene_targets`.

    ``reduction="none"`` gives one loss per sentence (B,), the mean over its 21 heads.
    """
    if logits.dim() != 2 or logits.shape[1] != READER_OUTPUTS:
        raise ValueError(f"reader logits must have shape (B, {READER_OUTPUTS}), got {tuple(logits.shape)}")
    s_logits, p_logits = _split_reader(logits.float())
    slots, pairs = slots.to(logits.device), pairs.to(logits.device)
    ls = F.cross_entropy(s_logits.transpose(1, 2), slots, ignore_index=-1, reduction="none")  # (B, 6)
    lp = F.cross_entropy(p_logits.transpose(1, 2), pairs, ignore_index=-1, reduction="none")  # (B, 15)
    per = torch.cat([ls, lp], 1).mean(1)
    if reduction == "none":
        return per
    valid = slots[:, 0] >= 0
    return per[valid].mean() if bool(valid.any()) else per.sum() * 0.0


def reader_predict(logits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The reader's argmax (slots (B, 6), pairs (B, 15)), comparable with :func:`scene_targets`."""
    s_logits, p_logits = _split_reader(logits)
    return s_logits.argmax(-1), p_logits.argmax(-1)


# -- config ------------------------------------------------------------------------------------

@dataclass
class TextClassifierConfig:
    """The shape of a text classifier. ``asdict(config)`` is stored in every checkpoint."""

    vocab_size: int = 64  # the project's tokenizer's vocabulary
    pad_id: int = 0
    max_len: int = 64  # longest sentence in tokens (the spoken pile runs to ~60)
    n_outputs: int = 1  # 1 logit for T and the register classifier, READER_OUTPUTS for R
    kind: str = "critic"  # what it is for (one of KINDS): documentation in the manifest
    d_model: int = 96  # small: the registers differ in a few hundred words, not in deep syntax
    conv_kernel: int = 0  # > 0: a residual 1-D convolution over neighbouring words before the encoder
    n_layer: int = 2
    n_head: int = 4
    dropout: float = 0.1

    def __post_init__(self) -> None:
        for name in ("vocab_size", "max_len", "n_outputs", "d_model", "n_layer", "n_head"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        if not 0 <= self.pad_id < self.vocab_size:
            raise ValueError(f"pad_id must be in [0, vocab_size), got {self.pad_id}")
        if self.kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, got {self.kind!r}")
        if self.kind == "reader" and self.n_outputs != READER_OUTPUTS:
            raise ValueError(f"a reader has {READER_OUTPUTS} outputs (6 slots x 13 + 15 pairs x 6), got {self.n_outputs}")
        if not isinstance(self.conv_kernel, int) or self.conv_kernel < 0 or (self.conv_kernel and self.conv_kernel % 2 == 0):
            raise ValueError(f"conv_kernel must be 0 or an odd positive int, got {self.conv_kernel!r}")
        if self.d_model % self.n_head:
            raise ValueError(f"d_model={self.d_model} must be divisible by n_head={self.n_head}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout!r}")


# -- the model ---------------------------------------------------------------------------------

class TextClassifier(nn.Module):
    """Sentence (ids (B, L) or one-hot rows (B, L, V)) → logits (B, n_outputs)."""

    def __init__(self, config: TextClassifierConfig) -> None:
        super().__init__()
        if not isinstance(config, TextClassifierConfig):
            raise TypeError(f"config must be a TextClassifierConfig, got {type(config).__name__}")
        self.config = config
        self.embed = nn.Embedding(config.vocab_size, config.d_model)
        self.pos = nn.Parameter(torch.zeros(1, config.max_len, config.d_model))
        nn.init.normal_(self.embed.weight, std=0.02)
        nn.init.normal_(self.pos, std=0.02)
        # a word's neighbours, at once: "red" + "circle" bind in one layer instead of being found by
        # attention over learned absolute positions (which takes thousands of steps to learn)
        self.conv = (nn.Conv1d(config.d_model, config.d_model, config.conv_kernel, padding=config.conv_kernel // 2)
                     if config.conv_kernel else None)
        layer = nn.TransformerEncoderLayer(config.d_model, config.n_head, 4 * config.d_model, config.dropout,
                                           activation="gelu", batch_first=True, norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, config.n_layer, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(config.d_model)
        if config.kind == "reader":
            # one learned query per answer (6 colour slots, 15 colour pairs) attends over the
            # sentence: "what does the text say about red?" is a lookup, not a summary
            self.queries = nn.Parameter(torch.zeros(1, len(COLOURS) + len(PAIRS), config.d_model))
            nn.init.normal_(self.queries, std=0.02)
            self.attend = nn.MultiheadAttention(config.d_model, config.n_head, dropout=config.dropout, batch_first=True)
            self.slot_head = nn.Linear(config.d_model, N_SLOT_CLASSES)
            self.pair_head = nn.Linear(config.d_model, N_PAIR_CLASSES)
        else:
            self.head = nn.Linear(config.d_model, config.n_outputs)

    @property
    def device(self) -> torch.device:
        return self.pos.device

    def forward(self, tokens: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """Logits (B, n_outputs); for one output, (B,).

        Args:
            tokens: int ids (B, L), or float rows (B, L, V) (one-hot or relaxed; differentiable).
            mask: (B, L) bool, True on real tokens; default: tokens that are not pad.
        """
        if not isinstance(tokens, torch.Tensor):
            raise TypeError("tokens must be a tensor of ids (B, L) or one-hot rows (B, L, V)")
        if tokens.is_floating_point():
            if tokens.dim() != 3 or tokens.shape[-1] != self.config.vocab_size:
                raise ValueError(f"one-hot tokens must have shape (B, L, {self.config.vocab_size}), "
                                 f"got {tuple(tokens.shape)}")
            ids = tokens.argmax(-1)
            x = tokens.to(self.embed.weight.dtype) @ self.embed.weight  # (B, L, d): differentiable in tokens
        else:
            if tokens.dim() != 2:
                raise ValueError(f"token ids must have shape (B, L), got {tuple(tokens.shape)}")
            if tokens.numel() and (int(tokens.min()) < 0 or int(tokens.max()) >= self.config.vocab_size):
                raise ValueError(f"token ids must be in [0, {self.config.vocab_size})")
            ids = tokens.long()
            x = self.embed(ids)
        L = x.shape[1]
        if L > self.config.max_len:
            raise ValueError(f"sentences of {L} tokens exceed max_len={self.config.max_len}")
        if mask is None:
            mask = ids != self.config.pad_id
        mask = mask.to(x.device).bool()
        mask = mask | (torch.arange(L, device=x.device) == 0)  # an empty sentence still attends to one slot
        x = x + self.pos[:, :L]
        if self.conv is not None:
            x = x * mask[..., None]  # padding contributes nothing to its neighbours
            x = x + F.gelu(self.conv(x.transpose(1, 2))).transpose(1, 2)  # (B, L, d)
        x = self.encoder(x, src_key_padding_mask=~mask)  # (B, L, d)
        if self.config.kind == "reader":
            q = self.queries.expand(x.shape[0], -1, -1)
            answers, _ = self.attend(q, x, x, key_padding_mask=~mask, need_weights=False)  # (B, 21, d)
            answers = self.norm(answers + q)
            n = len(COLOURS)
            slots = self.slot_head(answers[:, :n])  # (B, 6, 13)
            pairs = self.pair_head(answers[:, n:])  # (B, 15, 6)
            return torch.cat([slots.flatten(1), pairs.flatten(1)], 1)  # (B, 168), the layout reader_loss reads
        w = mask.float()[..., None]
        pooled = (x * w).sum(1) / w.sum(1)  # masked mean over the sentence
        out = self.head(self.norm(pooled))  # (B, n_outputs)
        return out[:, 0] if self.config.n_outputs == 1 else out

    @torch.no_grad()
    def probability(self, tokens: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """(B,) sigmoid of the one logit: P(genuine spoken) for T, P(spoken) for the register classifier."""
        if self.config.n_outputs != 1:
            raise ValueError("probability() is for one-logit classifiers (critic, register)")
        return torch.sigmoid(self.forward(tokens, mask).float())

    # -- save / load ----------------------------------------------------------------------------
    def save_pretrained(self, directory: str | Path, *, metrics: dict[str, Any] | None = None,
                        command: str | None = None, extra: dict[str, Any] | None = None) -> Path:
        """Writes ``model.safetensors`` + ``manifest.json`` (with ``asdict(config)``)."""
        return checkpoints.save_pretrained(self, directory, config=asdict(self.config), metrics=metrics,
                                           command=command, extra=extra)

    @classmethod
    def from_pretrained(cls, directory: str | Path, *, device: str | torch.device | None = None) -> "TextClassifier":
        """Rebuilds the classifier from the checkpoint's config, checks keys/shapes, loads; eval mode."""
        return checkpoints.build_pretrained(cls, TextClassifierConfig, directory, device=device, what="text-classifier")


def text_classifier(*, kind: str = "critic", config: TextClassifierConfig | None = None,
                    weights: str | Path | None = None, **overrides: Any) -> TextClassifier:
    """A text classifier: the critic T (``kind="critic"``), the register classifier
    (``"register"``) or the attribute reader (``"reader"``, 168 outputs).

    Args:
        kind: which of the three; sets ``n_outputs`` unless ``config``/``overrides`` set it.
        config: the architecture; keyword ``overrides`` replace single fields.
        weights: ``None`` for a random init, a shipped checkpoint's name (``"critic"``,
            ``"register_clf"``, ``"captioner_reader"``) or a checkpoint folder.
    """
    if weights is not None:
        if config is not None or overrides:
            raise ValueError("give either weights (the checkpoint fixes the architecture) or config/overrides, not both")
        return TextClassifier.from_pretrained(weights)
    if config is not None and not isinstance(config, TextClassifierConfig):
        raise TypeError(f"config must be a TextClassifierConfig or None, got {type(config).__name__}")
    base = asdict(config) if config is not None else {"kind": kind, "n_outputs": READER_OUTPUTS if kind == "reader" else 1}
    return TextClassifier(TextClassifierConfig(**{**base, **overrides}))
