"""Chapter 6's experiments: data splits, the training stages of S and T, references, evaluation.

The setting is the data-scarce one of source §8: training images come with **formal** captions
only, and spoken language is an **unpaired pile** of colloquial sentences about *other* scenes.
Every split is a disjoint range of ShapeScenes seeds:

========== ================================ ============================================
split      what it holds                    used for
========== ================================ ============================================
train      images + one formal caption each  MLE of S (formal register), the reader R
pile       spoken sentences, no images       S's spoken prior, the critic T, the reader R
heldout    sentences of both registers       the register classifier and the spoken LM
           (no images)                       (measurement only)
test       images + formal + 4 spoken refs   measurement only (BLEU references), and the
                                             paired upper bound's training pairs come
                                             from the *train* scenes' spoken captions
========== ================================ ============================================

Training stages (each through :class:`spokenstyle.train.Trainer`):

1. :func:`train_perception` (1a): S's reader learns to perceive the training pictures (what
   the renderer knows of them: objects, colour masks, the relation of every pair).
   :func:`train_mle` (1b): S's decoder learns from text alone to *say a given content*: formal
   captions from the content they state, and pile sentences from the content the parser reads
   in them (SemStyle's recipe: the style is learned from unaligned text, the content comes
   through a bottleneck both pictures and sentences reach). The two share nothing but the
   content format, so they are trained apart.
2. :func:`train_adversarial`: S's spoken captions of real images x and of generator samples
   G(z) are the fakes for T, the pile is T's real data. With S's perception frozen, its decoder
   is updated through straight-through Gumbel-softmax rollouts by a non-saturating adversarial
   loss, an attribute-reconstruction loss (the frozen reader R must read the picture's content
   back from the spoken caption) and the stage-1 likelihoods (so neither register drifts).
   What stage 2 can add to stage 1 is what text alone cannot teach: to speak about content as
   *perceived* (probabilities, sometimes unsure: G(z) is blurry) rather than as read from a
   sentence (certain).
References beside it: :func:`train_paired` (MLE on paired spoken captions: the upper bound,
trained on data the unpaired setting does not have) and :func:`rule_based_rewrite` (formal
caption + word substitutions: the lower bound). :func:`evaluate` measures them all alike.
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
import re
import shutil
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable, Sequence

import torch
import torch.nn.functional as F

from . import checkpoints, runtime
from . import runtime as runtime_mod
from .data import captions as cap
from .data import tokenizer as tk
from .data.datasets import SPLITS as DATA_SPLITS
from .data.scenes import SceneBatch, sample_scenes
from .data.styles import STYLES, colour_masks, render
from .models.captioner import Captioner, CaptionerConfig, GenerateOutput, content_probs
from .models.critic import (N_PAIR_CLASSES, N_SLOT_CLASSES, PAIRS, READER_OUTPUTS, TextClassifier,
                            TextClassifierConfig, geometric_pairs, grounding_loss, reader_loss, reader_predict,
                            scene_targets)
from .text_metrics import attribute_accuracy, bleu, classifier_rate, distinct_n, perplexity
from .train import History, TrainConfig, Trainer

__all__ = [
    "SPLITS",
    "MAX_TOKENS",
    "tokenizer_digest",
    "load_captioner",
    "load_classifier",
    "captioner_config",
    "classifier_config",
    "split_scenes",
    "caption_tokens",
    "encode_captions",
    "pile_sentences",
    "pile_tokens",
    "pile_targets",
    "test_set",
    "TestSet",
    "render_batch",
    "train_register_classifier",
    "train_language_model",
    "train_reader",
    "train_perception",
    "perception_metrics",
    "train_mle",
    "train_paired",
    "train_adversarial",
    "reinforce_loss",
    "gradient_estimates",
    "rule_based_rewrite",
    "load_generator",
    "decode",
    "caption_images",
    "lm_nll",
    "evaluate",
    "literal_value",
    "train",
    "train_reader_recipe",
]

# disjoint seed ranges: no scene is in two splits
# (inside the data layer's "train" seed range, except "test", which is the data layer's test split)
SPLITS: dict[str, int] = {"train": 0, "pile": 10_000_000, "heldout": 20_000_000, "test": DATA_SPLITS["test"][0]}
MAX_TOKENS = 56  # words + <eos>; the longest spoken caption of the grammar has ~51 words
N_REFS = 4  # spoken references per test image for BLEU


# -- configs -----------------------------------------------------------------------------------

def captioner_config(**overrides: Any) -> CaptionerConfig:
    """S's architecture with the project tokenizer's ids and vocabulary."""
    tok = tk.load_tokenizer()
    base = dict(vocab_size=tok.get_vocab_size(), pad_id=tk.PAD_ID, bos_id=tk.BOS_ID, eos_id=tk.EOS_ID,
                register_ids=(tok.token_to_id("<formal>"), tok.token_to_id("<spoken>")), max_len=MAX_TOKENS)
    return CaptionerConfig(**{**base, **overrides})


def classifier_config(kind: str, **overrides: Any) -> TextClassifierConfig:
    """A text classifier (critic / register / reader) over the project tokenizer."""
    base = dict(vocab_size=tk.load_tokenizer().get_vocab_size(), pad_id=tk.PAD_ID, max_len=MAX_TOKENS, kind=kind,
                n_outputs=READER_OUTPUTS if kind == "reader" else 1,
                # the critic and the reader look at word neighbourhoods first (n-grams; "red" + "circle")
                conv_kernel=0 if kind == "register" else 5)
    return TextClassifierConfig(**{**base, **overrides})


def tokenizer_digest() -> str:
    """A short fingerprint of the project tokenizer's vocabulary, stored in every chapter-6
    checkpoint: token ids mean nothing under another vocabulary."""
    vocab = tk.load_tokenizer().get_vocab()
    return hashlib.sha256(json.dumps(sorted(vocab.items())).encode()).hexdigest()[:16]


def _check_tokenizer(manifest: dict[str, Any], where: Any) -> None:
    saved = (manifest.get("extra") or {}).get("tokenizer")
    if saved is not None and saved != tokenizer_digest():
        raise checkpoints.CheckpointError(
            f"{where} was trained with another tokenizer (vocabulary {saved}, this one is {tokenizer_digest()}); "
            "retrain it with `spokenstyle train captioner`")


def load_captioner(weights: str | Path, device: torch.device | str | None = None) -> Captioner:
    """A shipped captioner (``"captioner_spoken"``, …) or a folder, checked against the tokenizer."""
    model = Captioner.from_pretrained(weights, device=device)
    _check_tokenizer(model.manifest, weights)
    return model


def load_classifier(weights: str | Path, device: torch.device | str | None = None) -> TextClassifier:
    """A shipped text classifier (``"critic"``, ``"register_clf"``, ``"captioner_reader"``) or a folder."""
    model = TextClassifier.from_pretrained(weights, device=device)
    _check_tokenizer(model.manifest, weights)
    return model


# -- data --------------------------------------------------------------------------------------

def _check_split(split: str) -> int:
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; expected one of {tuple(SPLITS)}")
    return SPLITS[split]


@lru_cache(maxsize=16)
def split_scenes(split: str, n: int) -> SceneBatch:
    """The first ``n`` scenes of ``split`` (on the CPU)."""
    if not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be a positive int, got {n!r}")
    return sample_scenes(torch.arange(n) + _check_split(split))


def encode_captions(texts: Sequence[str]) -> torch.Tensor:
    """(N, L) ids ``w1 … wn <eos>`` right-padded (no <bos>), truncated to MAX_TOKENS."""
    ids, _ = tk.encode_batch(list(texts), max_len=MAX_TOKENS + 1)
    return ids[:, 1:].contiguous()


@lru_cache(maxsize=32)
def _captions(split: str, n: int, register: str, variant: int = 0) -> tuple[str, ...]:
    scenes = split_scenes(split, n)
    seeds = (scenes.seed + variant * 7_919_993).tolist()
    return tuple(cap.describe(scenes, register, seeds=seeds))


@lru_cache(maxsize=32)
def caption_tokens(split: str, n: int, register: str, variant: int = 0) -> torch.Tensor:
    """Token ids of one caption per scene of ``split`` in ``register`` (``variant`` draws another)."""
    return encode_captions(_captions(split, n, register, variant))


def pile_sentences(n: int) -> list[str]:
    """The first ``n`` sentences of the unpaired spoken pile (text only)."""
    return list(_captions("pile", n, "spoken"))


def pile_tokens(n: int) -> torch.Tensor:
    """The unpaired spoken pile: ``n`` spoken sentences about scenes no training image shows."""
    return caption_tokens("pile", n, "spoken")


@lru_cache(maxsize=8)
def pile_targets(n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Reader targets of the pile, read off the sentences by the parser (no scene is consulted;
    unreadable sentences get -1, i.e. are ignored)."""
    return scene_targets([cap.try_parse(t) for t in _captions("pile", n, "spoken")])


@dataclass
class TestSet:
    """Held-out images and their captions (measurement only)."""

    scenes: SceneBatch
    images: torch.Tensor  # (N, 3, R, R) in [0, 1], style i % 6
    formal: list[str]
    spoken_refs: list[list[str]]  # N_REFS streams of N spoken captions (sacrebleu's layout)


@lru_cache(maxsize=4)
def test_set(n: int, size: int = 64) -> TestSet:
    """``n`` held-out scenes rendered in the six styles in turn, with one formal and
    :data:`N_REFS` spoken captions each."""
    scenes = split_scenes("test", n)
    images = render(scenes, [i % len(STYLES) for i in range(n)], size)
    return TestSet(scenes=scenes, images=images, formal=list(_captions("test", n, "formal")),
                   spoken_refs=[list(_captions("test", n, "spoken", k)) for k in range(N_REFS)])


def render_batch(split: str, n_scenes: int, batch_size: int, step: int, *, size: int = 64,
                 device: torch.device | str | None = None, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """A batch drawn from the step: (indices into the split (B,), images (B, 3, R, R) in [0, 1]).

    Scenes and styles come from a generator seeded by ``(seed, step)``, so a resumed run sees
    the same batches; rendering happens on ``device``.
    """
    g = torch.Generator().manual_seed(seed * 1_000_003 + step)
    idx = torch.randint(n_scenes, (batch_size,), generator=g)
    styles = torch.randint(len(STYLES), (batch_size,), generator=g)
    scenes = split_scenes(split, n_scenes)[idx].to(device or "cpu")
    return idx, render(scenes, styles.to(scenes.device), size)


def _rows(tokens: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """Rows of a padded token table, trimmed to the longest of them."""
    rows = tokens[idx]
    length = int((rows != tk.PAD_ID).sum(1).max())
    return rows[:, : max(length, 1)]


# -- text classifiers and the language model ---------------------------------------------------

def _adamw(params: torch.nn.Module | Sequence[torch.nn.Parameter], lr: float) -> torch.optim.Optimizer:
    """AdamW over a module's trainable weights, or over the given ones."""
    if isinstance(params, torch.nn.Module):
        params = [p for p in params.parameters() if p.requires_grad]
    return torch.optim.AdamW(list(params), lr=lr, betas=(0.9, 0.98), weight_decay=0.01)


@contextmanager
def _frozen(*modules: torch.nn.Module):
    """Within the block, the modules' weights take no gradient; afterwards each weight is as
    trainable as it was before (also when training stops with an exception)."""
    params = [p for m in modules for p in m.parameters()]
    was = [p.requires_grad for p in params]
    for p in params:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p, w in zip(params, was):
            p.requires_grad_(w)


def train_register_classifier(rt: runtime.Runtime, budget: dict[str, Any] | None = None,
                              model: TextClassifier | None = None) -> tuple[TextClassifier, History]:
    """The register classifier (spoken = 1, formal = 0), on held-out sentences of both registers.

    It is a measuring instrument: trained once, on sentences about scenes that neither S nor T
    nor the test set uses, and never in any loss of S.
    """
    b = budget or rt.budget("register_clf")
    n = b["n_sentences"]
    formal = caption_tokens("heldout", n, "formal")
    spoken = caption_tokens("heldout", n, "spoken")
    model = model or TextClassifier(classifier_config("register"))

    def batches(step: int):
        g = torch.Generator().manual_seed(step)
        i, j = torch.randint(n, (b["batch_size"] // 2,), generator=g), torch.randint(n, (b["batch_size"] // 2,), generator=g)
        L = max(formal.shape[1], spoken.shape[1])
        x = torch.cat([F.pad(formal[i], (0, L - formal.shape[1])), F.pad(spoken[j], (0, L - spoken.shape[1]))])
        y = torch.cat([torch.zeros(len(i)), torch.ones(len(j))])
        return {"tokens": x, "labels": y}

    def step_fn(t: Trainer, batch, step):
        with t.autocast():
            logits = t.modules["C"](batch["tokens"])
            loss = F.binary_cross_entropy_with_logits(logits.float(), batch["labels"])
        t.optimize("C", loss)
        return {"loss": loss}

    trainer = Trainer({"C": model}, {"C": _adamw(model, b["lr"])}, step_fn,
                      TrainConfig(steps=b["steps"], desc="register classifier"), device=rt.device,
                      model_config=asdict(model.config))
    history = trainer.fit(batches)
    return model.eval(), history


def train_language_model(rt: runtime.Runtime, budget: dict[str, Any] | None = None,
                         model: Captioner | None = None) -> tuple[Captioner, History]:
    """A language model of the spoken register (for perplexity), on held-out spoken sentences.

    It is a captioner that never sees a picture (its memory is the "no image" vector), with a
    token-sized image encoder that stays unused.
    """
    b = budget or rt.budget("register_lm")
    n = b["n_sentences"]
    spoken = caption_tokens("heldout", n, "spoken", 1)  # another draw than the classifier's
    model = model or Captioner(captioner_config(enc_channels=(4, 4, 4, 4, 4), enc_hidden=8, n_layer=2, n_embd=96))

    def batches(step: int):
        g = torch.Generator().manual_seed(step)
        return {"tokens": _rows(spoken, torch.randint(n, (b["batch_size"],), generator=g))}

    def step_fn(t: Trainer, batch, step):
        with t.autocast():
            _, loss = t.modules["LM"](None, batch["tokens"], "spoken")
        t.optimize("LM", loss)
        return {"loss": loss}

    trainer = Trainer({"LM": model}, {"LM": _adamw(model, b["lr"])}, step_fn,
                      TrainConfig(steps=b["steps"], desc="spoken LM"), device=rt.device,
                      model_config=asdict(model.config))
    history = trainer.fit(batches)
    return model.eval(), history


def train_reader(rt: runtime.Runtime, budget: dict[str, Any] | None = None,
                 model: TextClassifier | None = None, *, checkpoint_dir: str | Path | None = None
                 ) -> tuple[TextClassifier, History]:
    """The attribute reader R: sentence → scene content, on formal captions of the training
    images (content from their scenes) and the spoken pile (content from the parser)."""
    b = budget or rt.budget("captioner_reader")
    n_train, n_pile = b["n_train"], b["n_pile"]
    formal = caption_tokens("train", n_train, "formal")
    f_slots, f_pairs = scene_targets(split_scenes("train", n_train))
    pile = pile_tokens(n_pile)
    p_slots, p_pairs = pile_targets(n_pile)
    model = model or TextClassifier(classifier_config("reader"))

    def batches(step: int):
        g = torch.Generator().manual_seed(step)
        i = torch.randint(n_train, (b["batch_size"] // 2,), generator=g)
        j = torch.randint(n_pile, (b["batch_size"] // 2,), generator=g)
        L = max(formal.shape[1], pile.shape[1])
        x = torch.cat([F.pad(formal[i], (0, L - formal.shape[1])), F.pad(pile[j], (0, L - pile.shape[1]))])
        return {"tokens": x, "slots": torch.cat([f_slots[i], p_slots[j]]), "pairs": torch.cat([f_pairs[i], p_pairs[j]])}

    def step_fn(t: Trainer, batch, step):
        with t.autocast():
            loss = reader_loss(t.modules["R"](batch["tokens"]), batch["slots"], batch["pairs"])
        t.optimize("R", loss)
        return {"loss": loss}

    trainer = Trainer({"R": model}, {"R": _adamw(model, b["lr"])}, step_fn,
                      _config(b["steps"], "attribute reader", checkpoint_dir), device=rt.device,
                      model_config=asdict(model.config))
    history = trainer.fit(batches)
    return model.eval(), history


# -- S: maximum likelihood ---------------------------------------------------------------------

def _config(steps: int, desc: str, checkpoint_dir: str | Path | None, grad_clip: float | None = None) -> TrainConfig:
    """A TrainConfig that, with a folder, checkpoints every 200 steps and resumes from it."""
    return TrainConfig(steps=steps, desc=desc, grad_clip=grad_clip,
                       checkpoint_dir=str(checkpoint_dir) if checkpoint_dir else None,
                       checkpoint_every=200 if checkpoint_dir else 0)


def _one_hot_content(slots: torch.Tensor, pairs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Reader targets (slots (B, 6), pairs (B, 15) ids) → one-hot content probabilities."""
    return F.one_hot(slots, N_SLOT_CLASSES).float(), F.one_hot(pairs, N_PAIR_CLASSES).float()


@lru_cache(maxsize=8)
def _readable_pile(n: int) -> torch.Tensor:
    """Indices of the pile sentences the parser reads (their content is what S's spoken register
    learns to say; the grammar's spoken sentences all parse, but nothing here assumes it)."""
    slots, _ = pile_targets(n)
    return (slots[:, 0] >= 0).nonzero()[:, 0]


def relation_targets(scenes: SceneBatch) -> torch.Tensor:
    """(B, 15) int64 pair targets for S's perception: for every pair of colours both in the
    picture, the relation its geometry shows (0 when none applies: a diagonal layout), -1 (not
    scored) where a colour is absent. The renderer knows every pair's relation, as it knows
    every pixel's colour; what the data-scarce setting lacks is spoken *language*."""
    truth = geometric_pairs(scenes)  # -1: absent or unrelated
    present = scenes.colour_slots() > 0  # (B, 6)
    i = torch.tensor([p[0] for p in PAIRS])
    j = torch.tensor([p[1] for p in PAIRS])
    both = present[:, i] & present[:, j]
    return torch.where(both, truth.clamp(min=0), torch.full_like(truth, -1))


def perception_loss(S: Captioner, images: torch.Tensor, slots: torch.Tensor, pairs: torch.Tensor,
                    masks: torch.Tensor) -> torch.Tensor:
    """S's reader against what the renderer knows about a training picture: the object of each
    colour (cross-entropy), the relation of each pair of objects in it (:func:`relation_targets`)
    and, per cell, which colour covers it (the colour masks; chapter 1's scene judge uses the
    same auxiliary target, which teaches the colour attention far sooner than object labels)."""
    slot_logits, pair_logits, map_logits = S.reader(images, return_map=True)
    return (F.cross_entropy(slot_logits.flatten(0, 1).float(), slots.flatten())
            + F.cross_entropy(pair_logits.flatten(0, 1).float(), pairs.flatten(), ignore_index=-1)
            + F.cross_entropy(map_logits.float(), masks))


def _warmup_cosine(opt: torch.optim.Optimizer, steps: int) -> torch.optim.lr_scheduler.LambdaLR:
    """Linear warm-up over the first 5 % of the steps, then cosine decay to zero."""
    warm = max(1, steps // 20)
    return torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / warm) * 0.5 * (1 + math.cos(math.pi * min(s, steps) / max(steps, 1))))


def _decoder_params(S: Captioner) -> list[torch.nn.Parameter]:
    """Every weight of S except its perception (the reader): what turns content into words."""
    reader = {id(p) for p in S.reader.parameters()}
    return [p for p in S.parameters() if id(p) not in reader]


def train_perception(rt: runtime.Runtime, budget: dict[str, Any] | None = None,
                     model: Captioner | None = None, *, checkpoint_dir: str | Path | None = None
                     ) -> tuple[Captioner, History]:
    """Stage 1a: S's reader learns to perceive the training pictures (:func:`perception_loss`:
    each colour's object, each pair's relation, the colour masks). Only the reader's weights
    move; the decoder is not involved, so this stage and :func:`train_mle` are independent."""
    b = budget or rt.budget("captioner_perception")
    model = model or Captioner(captioner_config())
    n_train = b["n_train"]
    scenes = split_scenes("train", n_train)
    t_slots, _ = scene_targets(scenes)
    t_relations = relation_targets(scenes)  # every pair of objects in the picture
    size = model.config.image_size
    cells = size // 4  # the reader's colour map

    def batches(step: int):
        idx, images = render_batch("train", n_train, b["batch_size"], step, size=size, device=rt.device, seed=2)
        return {"images": images, "slots": t_slots[idx], "relations": t_relations[idx],
                "masks": colour_masks(scenes[idx].to(rt.device), cells)}

    def step_fn(t: Trainer, batch, step):
        S = t.modules["S"]
        with t.autocast():
            loss = perception_loss(S, batch["images"], batch["slots"], batch["relations"], batch["masks"])
        t.optimize("S", loss)
        return {"loss_read": loss}

    opt = _adamw(model.reader.parameters(), b["lr"])
    trainer = Trainer({"S": model}, {"S": opt}, step_fn,
                      _config(b["steps"], "S perception", checkpoint_dir, grad_clip=1.0),
                      schedulers={"S": _warmup_cosine(opt, b["steps"])}, device=rt.device,
                      model_config=asdict(model.config))
    history = trainer.fit(batches)
    return model.eval(), history


def _decoder_trainer(rt: runtime.Runtime, b: dict[str, Any], model: Captioner, paired: bool,
                     checkpoint_dir: str | Path | None = None) -> tuple[Captioner, History]:
    n_train = b["n_train"]
    formal = caption_tokens("train", n_train, "formal")
    # the content a training picture's formal caption states (formal captions parse exactly)
    t_slots, t_pairs = scene_targets(split_scenes("train", n_train))
    if paired:  # the upper bound: each training picture's own spoken caption, and what it states
        spoken = caption_tokens("train", n_train, "spoken")
        _, s_pairs = scene_targets([cap.try_parse(t) for t in _captions("train", n_train, "spoken")])
    else:  # the unpaired setting: the pile (other scenes, no image), each sentence with its parsed content
        spoken, (p_slots, p_pairs), readable = pile_tokens(b["n_pile"]), pile_targets(b["n_pile"]), _readable_pile(b["n_pile"])
    size = model.config.image_size

    def batches(step: int):
        g = torch.Generator().manual_seed(10_000_019 + step)
        idx = torch.randint(n_train, (b["batch_size"],), generator=g)
        batch = {"formal": _rows(formal, idx), "formal_content": _one_hot_content(t_slots[idx], t_pairs[idx])}
        if paired:
            idx, images = render_batch("train", n_train, b["batch_size"], step, size=size, device=rt.device, seed=3)
            batch.update(images=images, spoken=_rows(spoken, idx), stated=s_pairs[idx] > 0)
        else:
            j = readable[torch.randint(readable.shape[0], (b["batch_size"],), generator=g)]
            batch.update(spoken=_rows(spoken, j), spoken_content=_one_hot_content(p_slots[j], p_pairs[j]))
        return batch

    def step_fn(t: Trainer, batch, step):
        S = t.modules["S"]
        S.reader.eval()
        with t.autocast():
            # formal: the content of the training scene, as its caption states it
            _, loss_f = S(None, batch["formal"], "formal", memory=S.encode_content(*batch["formal_content"]))
            if paired:  # (picture, spoken caption): the content S perceives in the very picture
                memory = S.encode(batch["images"], stated=batch["stated"])
                _, loss_s = S(None, batch["spoken"], "spoken", memory=memory)
            else:  # the pile: the spoken register learns to say a content, read from the sentence itself
                _, loss_s = S(None, batch["spoken"], "spoken", memory=S.encode_content(*batch["spoken_content"]))
            loss = loss_f + loss_s
        t.optimize("S", loss)
        return {"loss_formal": loss_f, "loss_spoken": loss_s}

    opt = _adamw(_decoder_params(model), b["lr"])
    trainer = Trainer({"S": model}, {"S": opt}, step_fn,
                      _config(b["steps"], "S paired MLE" if paired else "S MLE", checkpoint_dir, grad_clip=1.0),
                      schedulers={"S": _warmup_cosine(opt, b["steps"])}, device=rt.device,
                      model_config=asdict(model.config))
    with _frozen(model.reader):  # perception stays as stage 1a left it
        history = trainer.fit(batches)
    return model.eval(), history


def train_mle(rt: runtime.Runtime, budget: dict[str, Any] | None = None,
              model: Captioner | None = None, *, checkpoint_dir: str | Path | None = None) -> tuple[Captioner, History]:
    """Stage 1b: S's decoder learns to *say a content*, in both registers, from text alone.

    Formal: each training scene's formal caption from the content it states. Spoken: each
    sentence of the unpaired pile from the content the parser reads in it (SemStyle's recipe:
    the style is learned from unaligned text, the content comes through a bottleneck both
    pictures and sentences reach). The content is one-hot here; at test time it is what the
    reader (stage 1a, :func:`train_perception`, frozen here) perceives in a picture, which is
    why the two stages can be trained apart. No picture is ever paired with a spoken sentence.

    (The book's first captioner instead showed each pile sentence with an *unrelated* picture,
    so that the register would learn to talk while a picture is in view; it learned exactly that,
    and nothing about what to say. Its second trained the decoder on the reader's own
    perceptions while the reader was still learning: chapter 6, section 5.)"""
    b = budget or rt.budget("captioner_mle")
    return _decoder_trainer(rt, b, model or Captioner(captioner_config()), paired=False, checkpoint_dir=checkpoint_dir)


def train_paired(rt: runtime.Runtime, budget: dict[str, Any] | None = None,
                 model: Captioner | None = None, *, checkpoint_dir: str | Path | None = None
                 ) -> tuple[Captioner, History]:
    """The upper bound: S's decoder trained on **(picture, spoken caption) pairs** of the
    training scenes, the spoken caption decoded from what S perceives in its own picture: the
    paired spoken data the realistic setting does not have.

    The recipe continues from the stage-1 model (``model``), so the upper bound starts where
    the adversarial stage starts and differs only in having the paired spoken captions."""
    b = budget or rt.budget("captioner_paired")
    return _decoder_trainer(rt, b, model or Captioner(captioner_config()), paired=True, checkpoint_dir=checkpoint_dir)


# -- S against T: adversarial training ---------------------------------------------------------

def load_generator(device: torch.device | str | None = None) -> Callable[[int, int], torch.Tensor] | None:
    """``sample(n, step) -> images (n, 3, R, R) in [0, 1]`` from chapter 4's shipped DCGAN
    generator G(z), or ``None`` when no DCGAN checkpoint is shipped."""
    try:
        from .models.dcgan import dcgan_generator

        G = dcgan_generator(weights="dcgan").to(device or "cpu").eval()
    except (ImportError, checkpoints.CheckpointError, FileNotFoundError):
        return None
    for p in G.parameters():
        p.requires_grad_(False)

    @torch.no_grad()
    def sample(n: int, step: int) -> torch.Tensor:
        g = torch.Generator().manual_seed(20_000_003 + step)
        z = torch.randn(n, G.config.latent_dim, generator=g).to(next(G.parameters()).device)
        return (G(z).float().clamp(-1, 1) + 1) / 2  # tanh range → [0, 1]

    return sample


def train_adversarial(rt: runtime.Runtime, S: Captioner, T: TextClassifier, R: TextClassifier,
                      budget: dict[str, Any] | None = None, *, generator: Callable[[int, int], torch.Tensor] | None = None,
                      lambda_adv: float | None = None, lambda_ground: float | None = None,
                      lambda_mle: float | None = None, estimator: str = "gumbel",
                      callbacks: Sequence[Callable] = (), checkpoint_dir: str | Path | None = None) -> History:
    """Stage 2: the spoken register of S against the critic T, kept grounded by the reader R.

    Each step (d2l's ``update_D`` / ``update_G`` split):

    * **update_T**: genuine pile sentences → 1, S's spoken captions (hard tokens, detached) of
      real images x and of generator samples G(z) → 0; binary cross-entropy.
    * **update_S**: a straight-through Gumbel-softmax rollout of spoken captions for the same
      images (S's perception frozen: their content as S sees it), and
      ``λ_adv · adv + λ_ground · ground + λ_mle · mle`` with

      - ``adv = −E log T(S(x))`` (non-saturating) over real and generated images;
      - ``ground``: :func:`~spokenstyle.models.critic.grounding_loss` of what the reader R
        reads from the spoken caption: every object of the picture named exactly, no relation
        stated that is false. For real images the truth is the picture's (their formal
        captions give the objects; the positions give which relations hold); for G(z), which has
        no ground truth, it is what S itself perceives in the picture;
      - ``mle``: the stage-1 likelihoods (formal captions of x; the pile, each sentence decoded
        from its own content).

    With ``estimator="reinforce"`` the rollout is plain ancestral sampling and S's adversarial
    and grounding terms become one REINFORCE loss (:func:`reinforce_loss`) with reward
    ``log T(y) − λ_ground/λ_adv · ground(y)`` per sentence and the batch-mean reward as baseline;
    the MLE terms stay as they are.

    R and S's reader are frozen. Returns the history; S and T are trained in place.
    """
    if estimator not in ("gumbel", "reinforce"):
        raise ValueError(f"estimator must be 'gumbel' or 'reinforce', got {estimator!r}")
    b = budget or rt.budget("captioner_adv")
    lambda_adv = b["lambda_adv"] if lambda_adv is None else lambda_adv
    lambda_ground = b["lambda_ground"] if lambda_ground is None else lambda_ground
    lambda_mle = b["lambda_mle"] if lambda_mle is None else lambda_mle
    n_train, n_pile = b["n_train"], b["n_pile"]
    scenes = split_scenes("train", n_train)
    formal = caption_tokens("train", n_train, "formal")
    t_slots, t_stated = scene_targets(scenes)
    t_pairs = geometric_pairs(scenes)  # what is true of each picture
    pile = pile_tokens(n_pile)
    p_slots, p_pairs = pile_targets(n_pile)
    readable = _readable_pile(n_pile)
    size = S.config.image_size
    n_gz = b["n_gz"] if generator is not None else 0
    R = R.to(rt.device).eval()

    def batches(step: int):
        idx, images = render_batch("train", n_train, b["batch_size"], step, size=size, device=rt.device, seed=1)
        g = torch.Generator().manual_seed(30_000_001 + step)
        j = readable[torch.randint(readable.shape[0], (b["batch_size"],), generator=g)]
        batch = {"images": images, "formal": _rows(formal, idx), "slots": t_slots[idx], "pairs": t_pairs[idx],
                 "stated": t_stated[idx] > 0,
                 "pile": _rows(pile, torch.randint(n_pile, (b["batch_size"],), generator=g)),
                 "pile_lm": _rows(pile, j), "pile_content": _one_hot_content(p_slots[j], p_pairs[j])}
        if n_gz:
            batch["gz"] = F.interpolate(generator(n_gz, step).to(rt.device), size=(size, size), mode="bilinear",
                                        align_corners=False, antialias=True)
        return batch

    def step_fn(t: Trainer, batch, step):
        S_, T_ = t.modules["S"], t.modules["T"]
        S_.reader.eval()
        B = batch["images"].shape[0]
        images = torch.cat([batch["images"], batch["gz"]]) if "gz" in batch else batch["images"]
        g = torch.Generator(device="cpu").manual_seed(40_000_003 + step)
        with t.autocast():
            with torch.no_grad():
                content = content_probs(*S_.reader(images))  # what S sees, as at test time
            memory = S_.encode_content(*content)
            if estimator == "gumbel":
                out = S_.gumbel_rollout(memory=memory, register="spoken", tau=b["tau"], generator=g)
            else:
                out = S_.sample(memory=memory, register="spoken", generator=g)
        # update_T: genuine pile sentences vs S's captions (hard tokens, no gradient into S)
        with t.autocast():
            real = T_(batch["pile"])
            fake = T_(out.tokens.detach())
            loss_T = (F.binary_cross_entropy_with_logits(real.float(), torch.ones_like(real.float()))
                      + F.binary_cross_entropy_with_logits(fake.float(), torch.zeros_like(fake.float())))
        t.optimize("T", loss_T)
        if step < b["critic_warmup"]:
            return {"loss_T": loss_T, "p_fool": torch.sigmoid(fake.float()).mean()}
        # update_S
        with t.autocast():
            slots, pairs = batch["slots"], batch["pairs"]
            if images.shape[0] > B:  # G(z) has no ground truth: the content S itself perceives in it
                gz_slots = content[0][B:].argmax(-1)
                gz_pairs = content[1][B:].argmax(-1)
                gz_pairs = gz_pairs.masked_fill(gz_pairs == 0, -1)  # a pair S sees no relation in: leave it unstated
                slots, pairs = torch.cat([slots, gz_slots.cpu()]), torch.cat([pairs, gz_pairs.cpu()])
            if estimator == "gumbel":  # differentiable through the straight-through one-hot rows
                score = T_(out.one_hot, out.mask)
                loss_adv = F.binary_cross_entropy_with_logits(score.float(), torch.ones_like(score.float()))
                loss_ground = grounding_loss(R(out.one_hot, out.mask), slots, pairs)
                loss_pg = lambda_adv * loss_adv + lambda_ground * loss_ground
            else:  # REINFORCE: the sentence is a sample; its reward only weighs its log-probability
                with torch.no_grad():
                    score = T_(out.tokens)
                    ground = grounding_loss(R(out.tokens), slots, pairs, reduction="none")
                    reward = F.logsigmoid(score.float()) - (lambda_ground / max(lambda_adv, 1e-8)) * ground
                loss_adv = -F.logsigmoid(score.float()).mean()
                loss_ground = ground.mean()
                loss_pg = lambda_adv * reinforce_loss(out.log_probs, reward, reward.mean())
            # the stage-1 likelihoods: formal captions of x, and the pile as content-conditioned spoken LM
            _, loss_f = S_(None, batch["formal"], "formal",
                           memory=S_.encode_content(*content_probs(*S_.reader(batch["images"]), stated=batch["stated"])))
            _, loss_lm = S_(None, batch["pile_lm"], "spoken", memory=S_.encode_content(*batch["pile_content"]))
            loss_S = loss_pg + lambda_mle * (loss_f + loss_lm)
        t.optimize("S", loss_S)
        return {"loss_T": loss_T, "loss_adv": loss_adv, "loss_ground": loss_ground, "loss_formal": loss_f,
                "loss_lm": loss_lm, "p_fool": torch.sigmoid(fake.float()).mean(),
                "length": out.mask.float().sum(1).mean()}

    with _frozen(R, S.reader):  # the reader R and S's perception are fixed: stage 2 is about words
        trainer = Trainer({"S": S, "T": T}, {"S": _adamw(S, b["lr_s"]), "T": _adamw(T, b["lr_t"])}, step_fn,
                          _config(b["steps"], "S vs T", checkpoint_dir, grad_clip=1.0), callbacks=callbacks,
                          device=rt.device, model_config={"S": asdict(S.config), "T": asdict(T.config)})
        history = trainer.fit(batches)
    S.eval(), T.eval()
    return history


# -- gradient estimators through discrete tokens ------------------------------------------------

def reinforce_loss(log_probs: torch.Tensor, rewards: torch.Tensor, baseline: torch.Tensor | float = 0.0) -> torch.Tensor:
    """The REINFORCE surrogate (Williams 1992): ``−mean((r − b) · Σ_t log p(y_t))``.

    Its gradient is an unbiased estimate of ``−∇ E[r]`` for any baseline ``b`` that does not
    depend on the sampled sentence; a good baseline (the mean reward) only lowers the variance.

    Args:
        log_probs: (B, L) log-probabilities of the sampled tokens (0 after <eos>), with grad.
        rewards: (B,) one reward per sentence (no grad needed; it is detached).
        baseline: a scalar or (B,) tensor, detached.
    """
    if log_probs.dim() != 2 or rewards.dim() != 1 or rewards.shape[0] != log_probs.shape[0]:
        raise ValueError(f"log_probs must be (B, L) and rewards (B,), got {tuple(log_probs.shape)} and "
                         f"{tuple(rewards.shape)}")
    advantage = (rewards - baseline).detach()
    return -(advantage * log_probs.sum(1)).mean()


def gradient_estimates(logits: torch.Tensor, rewards: torch.Tensor, n: int, method: str, *,
                       tau: float = 1.0, generator: torch.Generator | None = None) -> torch.Tensor:
    """``n`` single-sample estimates (n, V) of ``∇_θ E_{k ~ softmax(θ)}[r_k]`` for one categorical.

    The one-token version of what chapter 6 does to whole sentences; the exact gradient is
    ``p ⊙ (r − E[r])``. Methods: ``"reinforce"`` (``r_k ∇ log p_k``), ``"reinforce_baseline"``
    (``(r_k − E[r]) ∇ log p_k``: the best constant baseline, here known exactly), ``"gumbel_st"``
    (straight-through Gumbel-softmax through the linear reward ``r · y``; biased).
    """
    if logits.dim() != 1 or rewards.shape != logits.shape:
        raise ValueError("logits and rewards must be 1-D tensors of the same length")
    if method not in ("reinforce", "reinforce_baseline", "gumbel_st"):
        raise ValueError(f"unknown method {method!r}")
    p = logits.softmax(-1)
    if method == "gumbel_st":
        theta = logits.detach().expand(n, -1).clone().requires_grad_(True)
        y = _gumbel(theta, tau, generator)
        (y * rewards).sum().backward()
        return theta.grad
    k = torch.multinomial(p.detach().expand(n, -1), 1, generator=generator)[:, 0]
    score = F.one_hot(k, logits.shape[0]).float() - p.detach()  # ∇_θ log p_k = e_k − p
    r = rewards[k]
    if method == "reinforce_baseline":
        r = r - (p * rewards).sum()
    return r[:, None] * score


def _gumbel(theta: torch.Tensor, tau: float, generator: torch.Generator | None) -> torch.Tensor:
    from .models.captioner import gumbel_softmax

    return gumbel_softmax(theta, tau, hard=True, generator=generator)


# -- the lower bound ---------------------------------------------------------------------------

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


# -- decoding and evaluation -------------------------------------------------------------------

def decode(tokens: torch.Tensor) -> list[str]:
    """Caption strings of (B, L) token ids (stops at <eos>, drops special tokens)."""
    return tk.decode_batch(tokens.cpu())


@torch.no_grad()
def caption_images(S: Captioner, images: torch.Tensor, register: str = "spoken", *, method: str = "greedy",
                   batch_size: int = 256, seed: int = 0, **kwargs: Any) -> tuple[list[str], torch.Tensor]:
    """(strings, token ids) of S's captions of ``images``, in batches; sampling is seeded."""
    S.eval()
    texts, rows = [], []
    g = torch.Generator().manual_seed(seed)
    for start in range(0, images.shape[0], batch_size):
        x = images[start: start + batch_size].to(S.device)
        extra = dict(kwargs, generator=g) if method == "sample" else kwargs
        ids = S.generate(x, register, method=method, **extra).cpu()
        rows.append(ids)
        texts += decode(ids)
    L = max(r.shape[1] for r in rows)
    return texts, torch.cat([F.pad(r, (0, L - r.shape[1])) for r in rows])


def lm_nll(lm: Captioner) -> Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]]:
    """``nll(tokens) -> (summed NLL per sentence, tokens per sentence)`` under the spoken LM
    (the <eos> counts as a token, as in most LM perplexities)."""

    @torch.no_grad()
    def nll(tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        tokens = tokens.to(lm.device)
        count = (tokens != tk.PAD_ID).sum(1)
        keep = count > 0
        tokens = tokens[keep][:, : lm.config.max_len]
        return -lm.log_likelihood(None, tokens, "spoken"), count[keep].clamp(max=lm.config.max_len)

    return nll


@torch.no_grad()
def evaluate(texts: Sequence[str], test: TestSet, *, register_clf: TextClassifier, critic: TextClassifier | None = None,
             lm: Captioner | None = None) -> dict[str, float]:
    """Every chapter-6 metric of a set of captions of the test images.

    Returns ``attribute_accuracy`` (the parse is exactly the scene), ``spoken_rate`` (register
    classifier says spoken), ``fooling_rate`` (T says genuine; with ``critic``), ``bleu1`` …
    ``bleu4`` against the spoken references, ``distinct1``/``distinct2``, ``perplexity``
    under the spoken LM (with ``lm``), and ``length`` (mean words).
    """
    texts = list(texts)
    if len(texts) != len(test.formal):
        raise ValueError(f"got {len(texts)} captions for {len(test.formal)} test images")
    tokens = encode_captions(texts)
    device = next(register_clf.parameters()).device
    clf = lambda x: register_clf(x.to(device))  # noqa: E731
    out = {"attribute_accuracy": attribute_accuracy(texts, test.scenes),
           "spoken_rate": classifier_rate(clf, tokens)}
    if critic is not None:
        c_dev = next(critic.parameters()).device
        out["fooling_rate"] = classifier_rate(lambda x: critic(x.to(c_dev)), tokens)
    out.update({k: v / 100.0 for k, v in bleu(texts, test.spoken_refs).items()})
    out["distinct1"] = distinct_n(texts, 1)
    out["distinct2"] = distinct_n(texts, 2)
    if lm is not None:
        out["perplexity"] = perplexity(lm_nll(lm), tokens.split(256))
    out["length"] = float((tokens != tk.PAD_ID).sum(1).float().mean()) - 1  # without <eos>
    return out


def literal_value(t_real: torch.Tensor, t_fake: torch.Tensor, eps: float = 1e-12) -> float:
    """The §4.2 value as written, ``E_x log T(S(x)) + E_z log(1 − T(S(G(z))))``, from T's
    probabilities on captions of real images and of generator samples."""
    return float(torch.log(t_real.clamp(min=eps)).mean() + torch.log((1 - t_fake).clamp(min=eps)).mean())


GREEDY_SYSTEMS = ("formal_mle", "rule_based", "adversarial_formal")  # written greedily whatever the decoding


def evaluate_systems(S_formal: Captioner, S_spoken: Captioner, P: Captioner, test: TestSet,
                     decoding: dict[str, Any], *, register_clf: TextClassifier, critic: TextClassifier | None = None,
                     lm: Captioner | None = None,
                     greedy_scores: dict[str, dict[str, float]] | None = None) -> dict[str, dict[str, float]]:
    """Chapter 6's table: :func:`evaluate` of every system's captions of the test images.

    ``formal_mle`` (stage 1, formal register, greedy) and its ``rule_based`` rewrite (the lower
    bound); the spoken register ``before_adversarial`` (stage 1), ``adversarial`` (stage 2) and
    ``paired_upper_bound``, each written with ``decoding``; ``adversarial_formal`` (stage 2's
    formal register, greedy: what stage 2 did to the register it was not trained on).

    The :data:`GREEDY_SYSTEMS` do not depend on ``decoding``: pass a previous call's table (same
    models, same test set) as ``greedy_scores`` and their rows are copied from it, not rewritten.
    """
    out: dict[str, dict[str, float]] = {}
    texts: dict[str, list[str]] = {}
    if greedy_scores is not None:
        missing = [name for name in GREEDY_SYSTEMS if name not in greedy_scores]
        if missing:
            raise ValueError(f"greedy_scores must hold the rows {list(GREEDY_SYSTEMS)} of an earlier "
                             f"evaluate_systems table; missing {missing}")
        out.update({name: greedy_scores[name] for name in GREEDY_SYSTEMS})
    else:
        texts["formal_mle"] = caption_images(S_formal, test.images, "formal")[0]
        texts["rule_based"] = [rule_based_rewrite(x) for x in texts["formal_mle"]]
        texts["adversarial_formal"] = caption_images(S_spoken, test.images, "formal")[0]
    texts["before_adversarial"] = caption_images(S_formal, test.images, "spoken", **decoding)[0]
    texts["paired_upper_bound"] = caption_images(P, test.images, "spoken", **decoding)[0]
    texts["adversarial"] = caption_images(S_spoken, test.images, "spoken", **decoding)[0]
    out.update({name: evaluate(t, test, register_clf=register_clf, critic=critic, lm=lm) for name, t in texts.items()})
    order = ("formal_mle", "rule_based", "before_adversarial", "paired_upper_bound", "adversarial", "adversarial_formal")
    return {name: out[name] for name in order}


# -- the recipe --------------------------------------------------------------------------------

def train(out_dir: str | Path, *, runtime: runtime.Runtime) -> dict[str, Any]:
    """``spokenstyle train captioner``: every chapter-6 model, evaluated and saved.

    Writes ``register_clf``, ``register_lm``, ``captioner_reader``, ``captioner_formal`` (stage
    1), ``captioner_paired`` (upper bound), ``captioner_spoken`` and ``critic`` (stage 2) into
    ``out_dir``, each with its metrics on the test set and the command that made it.

    A model already finished in ``out_dir`` is reused, so an interrupted run resumes; with all
    seven there, the run only re-scores them (budget ``captioner_eval``: the headline
    ``decoding`` and, for diversity, ``sampling``) and rewrites the metrics in their manifests
    (:func:`checkpoints.update_manifest`; the weights are verified and left as they are).
    """
    from .cli import command_line

    rt = runtime
    out = Path(out_dir)
    command = command_line()
    ev = rt.budget("captioner_eval")
    test = test_set(ev["n_test"])
    timings: dict[str, float] = {}

    def timed(name: str, fn: Callable[[], Any]) -> Any:
        start = time.perf_counter()
        value = fn()
        timings[name] = round(time.perf_counter() - start, 1)
        print(f"[captioner] {name}: {timings[name]} s", flush=True)
        return value

    def finished(name: str, loader: Callable) -> Any:
        """A component this recipe already wrote into ``out_dir`` (an interrupted run resumes
        after its last finished model; delete a folder to train that model again)."""
        if (out / name / checkpoints.MANIFEST).is_file():
            try:
                model = loader(out / name, device=rt.device)
            except checkpoints.CheckpointError as err:
                print(f"[captioner] {name}: retraining ({err})", flush=True)
                return None
            print(f"[captioner] {name}: reusing {out / name}", flush=True)
            return model
        return None

    meta = {"profile": rt.profile, "device": str(rt.device), "tokenizer": tokenizer_digest()}
    runs = runtime_mod.cache_dir() / "runs" / "captioner"  # mid-stage checkpoints: a killed run resumes

    def run_dir(name: str) -> Path:
        return runs / name

    def done(name: str) -> None:  # the model is saved in out_dir: its training checkpoint can go
        shutil.rmtree(run_dir(name), ignore_errors=True)

    reg = finished("register_clf", load_classifier)
    if reg is None:
        reg, _ = timed("register_clf", lambda: train_register_classifier(rt))
        reg.save_pretrained(out / "register_clf", command=command, metrics=_register_metrics(reg, test),
                            extra={**meta, "seconds": timings["register_clf"]})
    lm = finished("register_lm", load_captioner)
    if lm is None:
        lm, _ = timed("register_lm", lambda: train_language_model(rt))
        lm.save_pretrained(out / "register_lm", command=command, extra={**meta, "seconds": timings["register_lm"]},
                           metrics={"perplexity_spoken_refs": perplexity(lm_nll(lm), encode_captions(test.spoken_refs[0]).split(256)),
                                    "perplexity_formal": perplexity(lm_nll(lm), encode_captions(test.formal).split(256))})
    decoding = ev["decoding"]
    S = finished("captioner_formal", load_captioner)
    if S is None:
        S, _ = timed("captioner_perception", lambda: train_perception(rt, checkpoint_dir=run_dir("captioner_perception")))
        S, _ = timed("captioner_formal", lambda: train_mle(rt, model=S, checkpoint_dir=run_dir("captioner_formal")))
        S.save_pretrained(out / "captioner_formal", command=command,
                          # the spoken register is scored below, in the table (same decoding as the others)
                          metrics=evaluate(caption_images(S, test.images, "formal")[0], test, register_clf=reg, lm=lm),
                          extra={**meta, "seconds": timings["captioner_perception"] + timings["captioner_formal"],
                                 "seconds_perception": timings["captioner_perception"],
                                 "seconds_decoder": timings["captioner_formal"],
                                 "perception": perception_metrics(S, test),
                                 "stage": "perception on training pictures; decoder on content: formal captions "
                                          "+ unpaired spoken pile"})
        done("captioner_perception"), done("captioner_formal")
    P = finished("captioner_paired", load_captioner)
    if P is None:
        P = Captioner(S.config).to(rt.device)
        P.load_state_dict(S.state_dict())  # the upper bound continues from stage 1 on paired data
        P, _ = timed("captioner_paired", lambda: train_paired(rt, model=P, checkpoint_dir=run_dir("captioner_paired")))
        P.save_pretrained(out / "captioner_paired", command=command, metrics={},  # scored below, in the table
                          extra={**meta, "seconds": timings["captioner_paired"],
                                 "stage": "upper bound: stage 1 continued on (picture, spoken caption) pairs"})
        done("captioner_paired")
    R = finished("captioner_reader", load_classifier)
    if R is None:
        R = _train_and_save_reader(out / "captioner_reader", rt, test)

    T, S_spoken = finished("critic", load_classifier), finished("captioner_spoken", load_captioner)
    # a stage 2 continued from an older stage 1 is stale: retrain it when stage 1 was trained now
    trained = T is None or S_spoken is None or "captioner_formal" in timings
    if trained:  # stage 2 continues from stage 1 (S itself stays the stage-1 model for the table)
        S_spoken = copy.deepcopy(S)  # a copy draws no random numbers: T's init is as before
        T = TextClassifier(classifier_config("critic"))
        G = load_generator(rt.device)
        hist = timed("captioner_spoken", lambda: train_adversarial(rt, S_spoken, T, R, generator=G,
                                                                   checkpoint_dir=run_dir("captioner_spoken")))
    scored = {"decoding": decoding, "sampling": ev["sampling"], "n_test": ev["n_test"],
              "scored_profile": rt.profile, "scored_device": str(rt.device)}
    results = evaluate_systems(S, S_spoken, P, test, decoding, register_clf=reg, critic=T, lm=lm)
    sampled = evaluate_systems(S, S_spoken, P, test, ev["sampling"], register_clf=reg, critic=T, lm=lm,
                               greedy_scores=results)
    tables = {**scored, "results": results, "results_sampling": sampled}
    if trained:
        meta = {**meta, "generator": "dcgan" if G is not None else "none"}
        S_spoken.save_pretrained(out / "captioner_spoken", metrics=results["adversarial"], command=command,
                                 extra={**meta, **tables, "seconds": timings["captioner_spoken"],
                                        "history_tail": {k: v[-5:] for k, v in hist.items()}})
        T.save_pretrained(out / "critic", metrics={"fooling_rate": results["adversarial"]["fooling_rate"]},
                          command=command, extra={**meta, **scored, "seconds": timings["captioner_spoken"]})
        done("captioner_spoken")
    else:  # both stage-2 models were finished: re-score them under this budget's decoding
        checkpoints.update_manifest(out / "captioner_spoken", metrics=results["adversarial"], extra=tables,
                                    command=command)
        checkpoints.update_manifest(out / "critic", metrics={"fooling_rate": results["adversarial"]["fooling_rate"]},
                                    extra=scored, command=command)
    # stage 1 and the upper bound are scored in the same table, with the same decoding
    checkpoints.update_manifest(out / "captioner_formal", command=command, extra=scored,
                                metrics={"spoken_before_adversarial": results["before_adversarial"],
                                         "spoken_before_adversarial_sampling": sampled["before_adversarial"]})
    checkpoints.update_manifest(out / "captioner_paired", metrics=results["paired_upper_bound"], command=command,
                                extra={**scored, "metrics_sampling": sampled["paired_upper_bound"]})
    return {"results": results, "results_sampling": sampled, "seconds": timings}


def train_reader_recipe(out_dir: str | Path, *, runtime: runtime.Runtime) -> dict[str, Any]:
    """``spokenstyle train captioner_reader``: the attribute reader R alone, saved in ``out_dir``
    (``spokenstyle train captioner`` reuses it when it finds it in its own output folder)."""
    R = _train_and_save_reader(Path(out_dir), runtime, test_set(runtime.budget("captioner_eval")["n_test"]))
    return R.manifest["metrics"]


def _train_and_save_reader(out_dir: Path, rt: runtime.Runtime, test: TestSet) -> TextClassifier:
    from .cli import command_line

    start = time.perf_counter()
    R, _ = train_reader(rt)
    seconds = round(time.perf_counter() - start, 1)
    print(f"[captioner] captioner_reader: {seconds} s", flush=True)
    metrics = _reader_metrics(R, test)
    R.save_pretrained(out_dir, command=command_line(), metrics=metrics,
                      extra={"profile": rt.profile, "device": str(rt.device), "tokenizer": tokenizer_digest(),
                             "seconds": seconds})
    R.manifest = {"metrics": metrics}
    return R


@torch.no_grad()
def perception_metrics(S: Captioner, test: TestSet) -> dict[str, float]:
    """How well S's reader perceives the test pictures: every object exact, and the content it
    would state (objects and the relations :func:`content_probs` keeps) true of the picture."""
    slots, pairs = [], []
    for start in range(0, test.images.shape[0], 256):
        s, p = content_probs(*S.reader(test.images[start: start + 256].to(S.device)))
        slots.append(s.argmax(-1).cpu()), pairs.append(p.argmax(-1).cpu())
    slots, pairs = torch.cat(slots), torch.cat(pairs)
    t_slots, truth = scene_targets(test.scenes)[0], geometric_pairs(test.scenes)  # truth: -1 = no relation
    objects = (slots == t_slots).all(1)
    stated_true = ((pairs == 0) | (pairs == truth)).all(1)
    n_needed = ((t_slots > 0).sum(1) - 1).clamp(min=0, max=2)  # a caption relates its objects by a chain
    return {"objects_exact": float(objects.float().mean()),
            "content_true": float((objects & stated_true & ((pairs > 0).sum(1) == n_needed)).float().mean())}


def _register_metrics(reg: TextClassifier, test: TestSet) -> dict[str, float]:
    clf = lambda x: reg(x.to(reg.device))  # noqa: E731
    return {"accuracy_formal": 1 - classifier_rate(clf, encode_captions(test.formal)),
            "accuracy_spoken": classifier_rate(clf, encode_captions(test.spoken_refs[0]))}


def _reader_metrics(R: TextClassifier, test: TestSet) -> dict[str, float]:
    """The share of test sentences whose whole content (every slot and pair) R reads exactly."""
    out = {}
    slots, pairs = scene_targets(test.scenes)
    for name, texts in (("spoken", test.spoken_refs[0]), ("formal", test.formal)):
        s, p = reader_predict(R(encode_captions(texts).to(R.device)))
        out[f"exact_{name}"] = float(((s.cpu() == slots).all(1) & (p.cpu() == pairs).all(1)).float().mean())
    return out
