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

The content format the reader answers in lives in :mod:`spokenstyle.data.content`; the losses
that train the three are in :mod:`spokenstyle.recipes.captioning`.

References:
    Vaswani et al. 2017, "Attention Is All You Need" (the encoder);
    Yu et al. 2017, "SeqGAN" (a CNN text discriminator in the same role as T);
    Hu et al. 2017, "Toward Controlled Generation of Text", https://arxiv.org/abs/1703.00955
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..checkpoints import Pretrained
from ..data.content import N_PAIR_CLASSES, PAIRS
from ..data.scenes import COLOURS, N_SLOT_CLASSES
from ..data.tokenizer import MAX_CAPTION_TOKENS, PAD_ID, load_tokenizer, tokenizer_digest
from .captioner import check_tokenizer

__all__ = [
    "KINDS",
    "READER_OUTPUTS",
    "TextClassifierConfig",
    "TextClassifier",
    "classifier_config",
    "split_reader_logits",
    "reader_predict",
    "text_classifier",
]

KINDS: tuple[str, ...] = ("critic", "register", "reader")

# the reader's logits: per colour slot the 13 classes of spokenstyle.data.scenes.N_SLOT_CLASSES, then
# per unordered pair of colours the 6 of spokenstyle.data.content.N_PAIR_CLASSES
READER_OUTPUTS = len(COLOURS) * N_SLOT_CLASSES + len(PAIRS) * N_PAIR_CLASSES  # 6·13 + 15·6 = 168


def split_reader_logits(logits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The reader's (B, 168) logits as (slot logits (B, 6, 13), pair logits (B, 15, 6))."""
    if logits.dim() != 2 or logits.shape[1] != READER_OUTPUTS:
        raise ValueError(f"reader logits must have shape (B, {READER_OUTPUTS}), got {tuple(logits.shape)}")
    B = logits.shape[0]
    n = len(COLOURS) * N_SLOT_CLASSES
    return (logits[:, :n].reshape(B, len(COLOURS), N_SLOT_CLASSES),
            logits[:, n:].reshape(B, len(PAIRS), N_PAIR_CLASSES))


def reader_predict(logits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The reader's argmax (slots (B, 6), pairs (B, 15)), comparable with
    :func:`spokenstyle.data.content_targets`."""
    s_logits, p_logits = split_reader_logits(logits)
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

class TextClassifier(Pretrained, nn.Module):
    """Sentence (ids (B, L) or one-hot rows (B, L, V)) → logits (B, n_outputs);
    ``TextClassifier.from_pretrained("critic")`` is the shipped critic T."""

    config_class = TextClassifierConfig
    default_weights = "critic"

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

    # -- checkpoints ----------------------------------------------------------------------------
    def save_pretrained(self, directory: str | Path, *, metrics: dict[str, Any] | None = None,
                        command: str | None = None, extra: dict[str, Any] | None = None) -> Path:
        """Writes the weights and the manifest, with the tokenizer's fingerprint (checked on load)."""
        return super().save_pretrained(directory, metrics=metrics, command=command,
                                       extra={"tokenizer": tokenizer_digest(), **dict(extra or {})})

    @staticmethod
    def _check_manifest(manifest: dict[str, Any], where: Any) -> None:
        check_tokenizer(manifest, where)


def classifier_config(kind: str, **overrides: Any) -> TextClassifierConfig:
    """A text classifier (``"critic"``, ``"register"`` or ``"reader"``) over the project tokenizer."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    base = dict(vocab_size=load_tokenizer().get_vocab_size(), pad_id=PAD_ID, max_len=MAX_CAPTION_TOKENS, kind=kind,
                n_outputs=READER_OUTPUTS if kind == "reader" else 1,
                # the critic and the reader look at word neighbourhoods first (n-grams; "red" + "circle")
                conv_kernel=0 if kind == "register" else 5)
    return TextClassifierConfig(**{**base, **overrides})


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
