"""``spokenstyle train captioner``: chapter 6's training stages of S and T, and their instruments.

The setting is the data-scarce one of source §8 (the sentences: :mod:`spokenstyle.data.corpus`):
training images come with **formal** captions only, and spoken language is an **unpaired pile**
of colloquial sentences about *other* scenes. The models are :mod:`spokenstyle.models.captioner`
(S) and :mod:`spokenstyle.models.critic` (T, the register classifier, the attribute reader R);
the scorecards are :mod:`spokenstyle.evaluation`.

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
   back from the spoken caption: :func:`grounding_loss`) and the stage-1 likelihoods (so
   neither register drifts).

References beside it: :func:`train_paired` (MLE on paired spoken captions: the upper bound,
trained on data the unpaired setting does not have) and
:func:`spokenstyle.models.captioner.rule_based_rewrite` (the lower bound). The instruments,
trained once and never in a loss of S: :func:`train_register_classifier`,
:func:`train_language_model`, :func:`train_reader`.
"""

from __future__ import annotations

import copy
import math
import shutil
import time
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path
from typing import Any, Callable, Sequence

import torch
import torch.nn.functional as F

from ..budgets import Budget
from ..checkpoints import MANIFEST, CheckpointError, command_line, update_manifest
from ..data import colour_masks, one_hot_content, try_parse
from ..data.content import N_PAIR_CLASSES, content_targets, geometric_pairs, relation_targets
from ..data.corpus import (TestSet, caption_tokens, captions, pile_targets, pile_tokens, readable_pile, render_batch,
                           split_scenes, test_set, token_rows)
from ..data.tokenizer import encode_captions
from ..evaluation import (evaluate_captions, evaluate_systems, lm_nll, perception_metrics, reader_metrics,
                          register_metrics)
from ..models.captioner import Captioner, caption_images, captioner_config, content_probs, gumbel_softmax
from ..models.critic import TextClassifier, classifier_config, split_reader_logits
from ..models.dcgan import dcgan_generator
from ..runtime import Runtime, cache_dir
from ..text_metrics import perplexity
from ..train import History, TrainConfig, Trainer

__all__ = [
    "reader_loss",
    "grounding_loss",
    "perception_loss",
    "train_register_classifier",
    "train_language_model",
    "train_reader",
    "train_perception",
    "train_mle",
    "train_paired",
    "load_generator",
    "train_adversarial",
    "reinforce_loss",
    "leave_one_out_baseline",
    "gradient_estimates",
    "train",
    "train_reader_recipe",
]


# -- the reader's losses -----------------------------------------------------------------------

def reader_loss(logits: torch.Tensor, slots: torch.Tensor, pairs: torch.Tensor, *,
                reduction: str = "mean") -> torch.Tensor:
    """Cross-entropy of the reader's logits (B, 168) against :func:`spokenstyle.data.content_targets`.

    ``reduction="none"`` gives one loss per sentence (B,), the mean over its 21 heads.
    """
    s_logits, p_logits = split_reader_logits(logits.float())
    slots, pairs = slots.to(logits.device), pairs.to(logits.device)
    ls = F.cross_entropy(s_logits.transpose(1, 2), slots, ignore_index=-1, reduction="none")  # (B, 6)
    lp = F.cross_entropy(p_logits.transpose(1, 2), pairs, ignore_index=-1, reduction="none")  # (B, 15)
    per = torch.cat([ls, lp], 1).mean(1)
    if reduction == "none":
        return per
    valid = slots[:, 0] >= 0
    return per[valid].mean() if bool(valid.any()) else per.sum() * 0.0


def grounding_loss(logits: torch.Tensor, slots: torch.Tensor, true_pairs: torch.Tensor, *,
                   reduction: str = "mean") -> torch.Tensor:
    """How far the reader's reading of a (generated) sentence is from being *true* of a picture.

    Slots: cross-entropy against the picture's objects (every object must be named exactly).
    Pairs: ``−log(p(unstated) + p(true relation))``: a caption may leave a pair unstated, but
    must not state a false relation. ``true_pairs`` is (B, 15), from :func:`spokenstyle.data.geometric_pairs`
    (-1: no relation is true, only "unstated" is allowed). Rows with ``slots[:, 0] < 0`` are
    ignored. Returns the mean over sentences of the mean over the 21 heads (``reduction="none"``:
    one value per sentence).
    """
    s_logits, p_logits = split_reader_logits(logits.float())
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


# -- training stages ---------------------------------------------------------------------------

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


def train_register_classifier(rt: Runtime, budget: Budget | None = None,
                              model: TextClassifier | None = None) -> tuple[TextClassifier, History]:
    """The register classifier (spoken = 1, formal = 0), on held-out sentences of both registers.

    It is a measuring instrument: trained once, on sentences about scenes that neither S nor T
    nor the test set uses, and never in any loss of S.
    """
    b = budget or rt.budget("register_clf")
    n = b.n_sentences
    formal = caption_tokens("heldout", n, "formal")
    spoken = caption_tokens("heldout", n, "spoken")
    model = model or TextClassifier(classifier_config("register"))

    def batches(step: int):
        g = torch.Generator().manual_seed(step)
        i, j = torch.randint(n, (b.batch_size // 2,), generator=g), torch.randint(n, (b.batch_size // 2,), generator=g)
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

    trainer = Trainer({"C": model}, {"C": _adamw(model, b.lr)}, step_fn,
                      TrainConfig(steps=b.steps, desc="register classifier"), device=rt.device,
                      model_config=asdict(model.config))
    history = trainer.fit(batches)
    return model.eval(), history


def train_language_model(rt: Runtime, budget: Budget | None = None,
                         model: Captioner | None = None) -> tuple[Captioner, History]:
    """A language model of the spoken register (for perplexity), on held-out spoken sentences.

    It is a captioner that never sees a picture (its memory is the "no image" vector), with a
    token-sized image encoder that stays unused.
    """
    b = budget or rt.budget("register_lm")
    n = b.n_sentences
    spoken = caption_tokens("heldout", n, "spoken", 1)  # another draw than the classifier's
    model = model or Captioner(captioner_config(enc_channels=(4, 4, 4, 4, 4), enc_hidden=8, n_layer=2, n_embd=96))

    def batches(step: int):
        g = torch.Generator().manual_seed(step)
        return {"tokens": token_rows(spoken, torch.randint(n, (b.batch_size,), generator=g))}

    def step_fn(t: Trainer, batch, step):
        with t.autocast():
            _, loss = t.modules["LM"](None, batch["tokens"], "spoken")
        t.optimize("LM", loss)
        return {"loss": loss}

    trainer = Trainer({"LM": model}, {"LM": _adamw(model, b.lr)}, step_fn,
                      TrainConfig(steps=b.steps, desc="spoken LM"), device=rt.device,
                      model_config=asdict(model.config))
    history = trainer.fit(batches)
    return model.eval(), history


def train_reader(rt: Runtime, budget: Budget | None = None,
                 model: TextClassifier | None = None, *, checkpoint_dir: str | Path | None = None
                 ) -> tuple[TextClassifier, History]:
    """The attribute reader R: sentence → scene content, on formal captions of the training
    images (content from their scenes) and the spoken pile (content from the parser)."""
    b = budget or rt.budget("captioner_reader")
    n_train, n_pile = b.n_train, b.n_pile
    formal = caption_tokens("train", n_train, "formal")
    f_slots, f_pairs = content_targets(split_scenes("train", n_train))
    pile = pile_tokens(n_pile)
    p_slots, p_pairs = pile_targets(n_pile)
    model = model or TextClassifier(classifier_config("reader"))

    def batches(step: int):
        g = torch.Generator().manual_seed(step)
        i = torch.randint(n_train, (b.batch_size // 2,), generator=g)
        j = torch.randint(n_pile, (b.batch_size // 2,), generator=g)
        L = max(formal.shape[1], pile.shape[1])
        x = torch.cat([F.pad(formal[i], (0, L - formal.shape[1])), F.pad(pile[j], (0, L - pile.shape[1]))])
        return {"tokens": x, "slots": torch.cat([f_slots[i], p_slots[j]]), "pairs": torch.cat([f_pairs[i], p_pairs[j]])}

    def step_fn(t: Trainer, batch, step):
        with t.autocast():
            loss = reader_loss(t.modules["R"](batch["tokens"]), batch["slots"], batch["pairs"])
        t.optimize("R", loss)
        return {"loss": loss}

    trainer = Trainer({"R": model}, {"R": _adamw(model, b.lr)}, step_fn,
                      _config(b.steps, "attribute reader", checkpoint_dir), device=rt.device,
                      model_config=asdict(model.config))
    history = trainer.fit(batches)
    return model.eval(), history


def _config(steps: int, desc: str, checkpoint_dir: str | Path | None, grad_clip: float | None = None) -> TrainConfig:
    """A TrainConfig that, with a folder, checkpoints every 200 steps and resumes from it."""
    return TrainConfig(steps=steps, desc=desc, grad_clip=grad_clip,
                       checkpoint_dir=str(checkpoint_dir) if checkpoint_dir else None,
                       checkpoint_every=200 if checkpoint_dir else 0)


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


def train_perception(rt: Runtime, budget: Budget | None = None,
                     model: Captioner | None = None, *, checkpoint_dir: str | Path | None = None
                     ) -> tuple[Captioner, History]:
    """Stage 1a: S's reader learns to perceive the training pictures (:func:`perception_loss`:
    each colour's object, each pair's relation, the colour masks). Only the reader's weights
    move; the decoder is not involved, so this stage and :func:`train_mle` are independent."""
    b = budget or rt.budget("captioner_perception")
    model = model or Captioner(captioner_config())
    n_train = b.n_train
    scenes = split_scenes("train", n_train)
    t_slots, _ = content_targets(scenes)
    t_relations = relation_targets(scenes)  # every pair of objects in the picture
    size = model.config.image_size
    cells = size // 4  # the reader's colour map

    def batches(step: int):
        idx, images = render_batch("train", n_train, b.batch_size, step, size=size, device=rt.device, seed=2)
        return {"images": images, "slots": t_slots[idx], "relations": t_relations[idx],
                "masks": colour_masks(scenes[idx].to(rt.device), cells)}

    def step_fn(t: Trainer, batch, step):
        S = t.modules["S"]
        with t.autocast():
            loss = perception_loss(S, batch["images"], batch["slots"], batch["relations"], batch["masks"])
        t.optimize("S", loss)
        return {"loss_read": loss}

    opt = _adamw(model.reader.parameters(), b.lr)
    trainer = Trainer({"S": model}, {"S": opt}, step_fn,
                      _config(b.steps, "S perception", checkpoint_dir, grad_clip=1.0),
                      schedulers={"S": _warmup_cosine(opt, b.steps)}, device=rt.device,
                      model_config=asdict(model.config))
    history = trainer.fit(batches)
    return model.eval(), history


def _decoder_trainer(rt: Runtime, b: Budget, model: Captioner, paired: bool,
                     checkpoint_dir: str | Path | None = None) -> tuple[Captioner, History]:
    n_train = b.n_train
    formal = caption_tokens("train", n_train, "formal")
    # the content a training picture's formal caption states (formal captions parse exactly)
    t_slots, t_pairs = content_targets(split_scenes("train", n_train))
    if paired:  # the upper bound: each training picture's own spoken caption, and what it states
        spoken = caption_tokens("train", n_train, "spoken")
        _, s_pairs = content_targets([try_parse(t) for t in captions("train", n_train, "spoken")])
    else:  # the unpaired setting: the pile (other scenes, no image), each sentence with its parsed content
        spoken, (p_slots, p_pairs), readable = pile_tokens(b.n_pile), pile_targets(b.n_pile), readable_pile(b.n_pile)
    size = model.config.image_size

    def batches(step: int):
        g = torch.Generator().manual_seed(10_000_019 + step)
        idx = torch.randint(n_train, (b.batch_size,), generator=g)
        batch = {"formal": token_rows(formal, idx), "formal_content": one_hot_content(t_slots[idx], t_pairs[idx])}
        if paired:
            idx, images = render_batch("train", n_train, b.batch_size, step, size=size, device=rt.device, seed=3)
            batch.update(images=images, spoken=token_rows(spoken, idx), stated=s_pairs[idx] > 0)
        else:
            j = readable[torch.randint(readable.shape[0], (b.batch_size,), generator=g)]
            batch.update(spoken=token_rows(spoken, j), spoken_content=one_hot_content(p_slots[j], p_pairs[j]))
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

    opt = _adamw(_decoder_params(model), b.lr)
    trainer = Trainer({"S": model}, {"S": opt}, step_fn,
                      _config(b.steps, "S paired MLE" if paired else "S MLE", checkpoint_dir, grad_clip=1.0),
                      schedulers={"S": _warmup_cosine(opt, b.steps)}, device=rt.device,
                      model_config=asdict(model.config))
    with _frozen(model.reader):  # perception stays as stage 1a left it
        history = trainer.fit(batches)
    return model.eval(), history


def train_mle(rt: Runtime, budget: Budget | None = None,
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


def train_paired(rt: Runtime, budget: Budget | None = None,
                 model: Captioner | None = None, *, checkpoint_dir: str | Path | None = None
                 ) -> tuple[Captioner, History]:
    """The upper bound: S's decoder trained on **(picture, spoken caption) pairs** of the
    training scenes, the spoken caption decoded from what S perceives in its own picture: the
    paired spoken data the realistic setting does not have.

    The recipe continues from the stage-1 model (``model``), so the upper bound starts where
    the adversarial stage starts and differs only in having the paired spoken captions."""
    b = budget or rt.budget("captioner_paired")
    return _decoder_trainer(rt, b, model or Captioner(captioner_config()), paired=True, checkpoint_dir=checkpoint_dir)


def load_generator(device: torch.device | str | None = None) -> Callable[[int, int], torch.Tensor] | None:
    """``sample(n, step) -> images (n, 3, R, R) in [0, 1]`` from chapter 4's shipped DCGAN
    generator G(z), or ``None`` when no DCGAN checkpoint is shipped."""
    try:
        G = dcgan_generator(weights="dcgan").to(device or "cpu").eval()
    except (CheckpointError, FileNotFoundError):
        return None
    for p in G.parameters():
        p.requires_grad_(False)

    @torch.no_grad()
    def sample(n: int, step: int) -> torch.Tensor:
        g = torch.Generator().manual_seed(20_000_003 + step)
        z = torch.randn(n, G.config.latent_dim, generator=g).to(next(G.parameters()).device)
        return (G(z).float().clamp(-1, 1) + 1) / 2  # tanh range → [0, 1]

    return sample


def train_adversarial(rt: Runtime, S: Captioner, T: TextClassifier, R: TextClassifier,
                      budget: Budget | None = None, *, generator: Callable[[int, int], torch.Tensor] | None = None,
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
      - ``ground``: :func:`grounding_loss` of what the reader R
        reads from the spoken caption: every object of the picture named exactly, no relation
        stated that is false. For real images the truth is the picture's (their formal
        captions give the objects; the positions give which relations hold); for G(z), which has
        no ground truth, it is what S itself perceives in the picture;
      - ``mle``: the stage-1 likelihoods (formal captions of x; the pile, each sentence decoded
        from its own content).

    With ``estimator="reinforce"`` the rollout is plain ancestral sampling and S's adversarial
    and grounding terms become one REINFORCE loss (:func:`reinforce_loss`) with reward
    ``log T(y) − λ_ground/λ_adv · ground(y)`` per sentence and, as baseline, the mean reward of
    the *other* sentences of the batch (:func:`leave_one_out_baseline`, Kool et al. 2019: a batch
    mean that includes the sentence's own reward shrinks every gradient by ``1 − 1/B``); the MLE
    terms stay as they are.

    R and S's reader are frozen. Returns the history; S and T are trained in place.
    """
    if estimator not in ("gumbel", "reinforce"):
        raise ValueError(f"estimator must be 'gumbel' or 'reinforce', got {estimator!r}")
    b = budget or rt.budget("captioner_adv")
    lambda_adv = b.lambda_adv if lambda_adv is None else lambda_adv
    lambda_ground = b.lambda_ground if lambda_ground is None else lambda_ground
    lambda_mle = b.lambda_mle if lambda_mle is None else lambda_mle
    n_train, n_pile = b.n_train, b.n_pile
    scenes = split_scenes("train", n_train)
    formal = caption_tokens("train", n_train, "formal")
    t_slots, t_stated = content_targets(scenes)
    t_pairs = geometric_pairs(scenes)  # what is true of each picture
    pile = pile_tokens(n_pile)
    p_slots, p_pairs = pile_targets(n_pile)
    readable = readable_pile(n_pile)
    size = S.config.image_size
    n_gz = b.n_gz if generator is not None else 0
    R = R.to(rt.device).eval()

    def batches(step: int):
        idx, images = render_batch("train", n_train, b.batch_size, step, size=size, device=rt.device, seed=1)
        g = torch.Generator().manual_seed(30_000_001 + step)
        j = readable[torch.randint(readable.shape[0], (b.batch_size,), generator=g)]
        batch = {"images": images, "formal": token_rows(formal, idx), "slots": t_slots[idx], "pairs": t_pairs[idx],
                 "stated": t_stated[idx] > 0,
                 "pile": token_rows(pile, torch.randint(n_pile, (b.batch_size,), generator=g)),
                 "pile_lm": token_rows(pile, j), "pile_content": one_hot_content(p_slots[j], p_pairs[j])}
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
                out = S_.gumbel_rollout(memory=memory, register="spoken", tau=b.tau, generator=g)
            else:
                out = S_.sample(memory=memory, register="spoken", generator=g)
        # update_T: genuine pile sentences vs S's captions (hard tokens, no gradient into S)
        with t.autocast():
            real = T_(batch["pile"])
            fake = T_(out.tokens.detach())
            loss_T = (F.binary_cross_entropy_with_logits(real.float(), torch.ones_like(real.float()))
                      + F.binary_cross_entropy_with_logits(fake.float(), torch.zeros_like(fake.float())))
        t.optimize("T", loss_T)
        if step < b.critic_warmup:
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
                loss_pg = lambda_adv * reinforce_loss(out.log_probs, reward, leave_one_out_baseline(reward))
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
        trainer = Trainer({"S": S, "T": T}, {"S": _adamw(S, b.lr_s), "T": _adamw(T, b.lr_t)}, step_fn,
                          _config(b.steps, "S vs T", checkpoint_dir, grad_clip=1.0), callbacks=callbacks,
                          device=rt.device, model_config={"S": asdict(S.config), "T": asdict(T.config)})
        history = trainer.fit(batches)
    S.eval(), T.eval()
    return history


def reinforce_loss(log_probs: torch.Tensor, rewards: torch.Tensor, baseline: torch.Tensor | float = 0.0) -> torch.Tensor:
    """The REINFORCE surrogate (Williams 1992): ``−mean((r − b) · Σ_t log p(y_t))``.

    Its gradient is an unbiased estimate of ``−∇ E[r]`` for any baseline ``b`` that does not
    depend on the sampled sentence; a good baseline only lowers the variance. The batch's own mean
    reward depends on the sentence (it includes its reward); :func:`leave_one_out_baseline` does not.

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


def leave_one_out_baseline(rewards: torch.Tensor) -> torch.Tensor:
    """Baselines of ``rewards`` (..., B): for each sample, the mean reward of the *other* B − 1
    samples along the last dimension.

    The leave-one-out baseline of Kool et al. (2019). It does not depend on the sample it is
    subtracted from, so REINFORCE stays unbiased; the batch mean, which includes the sample's own
    reward, gives ``r_i − mean = (1 − 1/B)(r_i − b_i)``: every gradient shrunk by ``1 − 1/B``.
    """
    if rewards.dim() < 1 or rewards.shape[-1] < 2:
        raise ValueError(f"rewards must have at least 2 samples along its last dimension, got shape "
                         f"{tuple(rewards.shape)}")
    rewards = rewards.detach()
    return (rewards.sum(-1, keepdim=True) - rewards) / (rewards.shape[-1] - 1)


def gradient_estimates(logits: torch.Tensor, rewards: torch.Tensor, n: int, method: str, *,
                       tau: float = 1.0, group: int = 4, generator: torch.Generator | None = None) -> torch.Tensor:
    """``n`` estimates (n, V) of ``∇_θ E_{k ~ softmax(θ)}[r_k]`` for one categorical.

    The one-token version of what chapter 6 does to whole sentences; the exact gradient is
    ``p ⊙ (r − E[r])``. Single-sample methods: ``"reinforce"`` (``r_k ∇ log p_k``),
    ``"reinforce_baseline"`` (``(r_k − E[r]) ∇ log p_k``: the expected reward, known exactly here,
    as baseline; a good constant, though not the variance-minimising one, which weighs each reward
    by ``‖∇ log p_k‖²``), ``"gumbel_st"`` (straight-through Gumbel-softmax through the linear
    reward ``r · y``; biased). Methods that, like a training batch, estimate the baseline from
    ``group`` samples and average their ``group`` terms: ``"reinforce_batch_mean"`` (the group's
    mean reward, the sample's own included: biased by the factor ``1 − 1/group``) and
    ``"reinforce_loo"`` (:func:`leave_one_out_baseline`: unbiased).
    """
    if logits.dim() != 1 or rewards.shape != logits.shape:
        raise ValueError("logits and rewards must be 1-D tensors of the same length")
    if method not in ("reinforce", "reinforce_baseline", "gumbel_st", "reinforce_batch_mean", "reinforce_loo"):
        raise ValueError(f"unknown method {method!r}")
    if not isinstance(group, int) or group < 2:
        raise ValueError(f"group must be an int >= 2, got {group!r}")
    p = logits.softmax(-1)
    if method in ("reinforce_batch_mean", "reinforce_loo"):
        k = torch.multinomial(p.detach().expand(n * group, -1), 1, generator=generator)[:, 0].reshape(n, group)
        score = F.one_hot(k, logits.shape[0]).float() - p.detach()  # (n, group, V)
        r = rewards[k]  # (n, group)
        b = r.mean(1, keepdim=True) if method == "reinforce_batch_mean" else leave_one_out_baseline(r)
        return ((r - b)[..., None] * score).mean(1)
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
    return gumbel_softmax(theta, tau, hard=True, generator=generator)


def train(out_dir: str | Path, *, runtime: Runtime) -> dict[str, Any]:
    """``spokenstyle train captioner``: every chapter-6 model, evaluated and saved.

    Writes ``register_clf``, ``register_lm``, ``captioner_reader``, ``captioner_formal`` (stage
    1), ``captioner_paired`` (upper bound), ``captioner_spoken`` and ``critic`` (stage 2) into
    ``out_dir``, each with its metrics on the test set and the command that made it.

    A model already finished in ``out_dir`` is reused, so an interrupted run resumes; with all
    seven there, the run only re-scores them (budget ``captioner_eval``: the headline
    ``decoding`` and, for diversity, ``sampling``) and rewrites the metrics in their manifests
    (:func:`spokenstyle.checkpoints.update_manifest`; the weights are verified and left as they are).
    """
    rt = runtime
    out = Path(out_dir)
    command = command_line()
    ev = rt.budget("captioner_eval")
    test = test_set(ev.n_test)
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
        if (out / name / MANIFEST).is_file():
            try:
                model = loader(out / name, device=rt.device)
            except CheckpointError as err:
                print(f"[captioner] {name}: retraining ({err})", flush=True)
                return None
            print(f"[captioner] {name}: reusing {out / name}", flush=True)
            return model
        return None

    meta = {"profile": rt.profile, "device": str(rt.device)}
    runs = cache_dir() / "runs" / "captioner"  # mid-stage checkpoints: a killed run resumes

    def run_dir(name: str) -> Path:
        return runs / name

    def done(name: str) -> None:  # the model is saved in out_dir: its training checkpoint can go
        shutil.rmtree(run_dir(name), ignore_errors=True)

    reg = finished("register_clf", TextClassifier.from_pretrained)
    if reg is None:
        reg, _ = timed("register_clf", lambda: train_register_classifier(rt))
        reg.save_pretrained(out / "register_clf", command=command, metrics=register_metrics(reg, test),
                            extra={**meta, "seconds": timings["register_clf"]})
    lm = finished("register_lm", Captioner.from_pretrained)
    if lm is None:
        lm, _ = timed("register_lm", lambda: train_language_model(rt))
        lm.save_pretrained(out / "register_lm", command=command, extra={**meta, "seconds": timings["register_lm"]},
                           metrics={"perplexity_spoken_refs": perplexity(lm_nll(lm), encode_captions(test.spoken_refs[0]).split(256)),
                                    "perplexity_formal": perplexity(lm_nll(lm), encode_captions(test.formal).split(256))})
    decoding = ev.decoding
    S = finished("captioner_formal", Captioner.from_pretrained)
    if S is None:
        S, _ = timed("captioner_perception", lambda: train_perception(rt, checkpoint_dir=run_dir("captioner_perception")))
        S, _ = timed("captioner_formal", lambda: train_mle(rt, model=S, checkpoint_dir=run_dir("captioner_formal")))
        S.save_pretrained(out / "captioner_formal", command=command,
                          # the spoken register is scored below, in the table (same decoding as the others)
                          metrics=evaluate_captions(caption_images(S, test.images, "formal")[0], test, register_clf=reg, lm=lm),
                          extra={**meta, "seconds": timings["captioner_perception"] + timings["captioner_formal"],
                                 "seconds_perception": timings["captioner_perception"],
                                 "seconds_decoder": timings["captioner_formal"],
                                 "perception": perception_metrics(S, test),
                                 "stage": "perception on training pictures; decoder on content: formal captions "
                                          "+ unpaired spoken pile"})
        done("captioner_perception"), done("captioner_formal")
    P = finished("captioner_paired", Captioner.from_pretrained)
    if P is None:
        P = Captioner(S.config).to(rt.device)
        P.load_state_dict(S.state_dict())  # the upper bound continues from stage 1 on paired data
        P, _ = timed("captioner_paired", lambda: train_paired(rt, model=P, checkpoint_dir=run_dir("captioner_paired")))
        P.save_pretrained(out / "captioner_paired", command=command, metrics={},  # scored below, in the table
                          extra={**meta, "seconds": timings["captioner_paired"],
                                 "stage": "upper bound: stage 1 continued on (picture, spoken caption) pairs"})
        done("captioner_paired")
    R = finished("captioner_reader", TextClassifier.from_pretrained)
    if R is None:
        R = _train_and_save_reader(out / "captioner_reader", rt, test)

    T, S_spoken = finished("critic", TextClassifier.from_pretrained), finished("captioner_spoken", Captioner.from_pretrained)
    # a stage 2 continued from an older stage 1 is stale: retrain it when stage 1 was trained now
    trained = T is None or S_spoken is None or "captioner_formal" in timings
    if trained:  # stage 2 continues from stage 1 (S itself stays the stage-1 model for the table)
        S_spoken = copy.deepcopy(S)  # a copy draws no random numbers: T's init is as before
        T = TextClassifier(classifier_config("critic"))
        G = load_generator(rt.device)
        hist = timed("captioner_spoken", lambda: train_adversarial(rt, S_spoken, T, R, generator=G,
                                                                   checkpoint_dir=run_dir("captioner_spoken")))
    scored = {"decoding": decoding, "sampling": ev.sampling, "n_test": ev.n_test,
              "scored_profile": rt.profile, "scored_device": str(rt.device)}
    results = evaluate_systems(S, S_spoken, P, test, decoding, register_clf=reg, critic=T, lm=lm)
    sampled = evaluate_systems(S, S_spoken, P, test, ev.sampling, register_clf=reg, critic=T, lm=lm,
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
        update_manifest(out / "captioner_spoken", metrics=results["adversarial"], extra=tables,
                                    command=command)
        update_manifest(out / "critic", metrics={"fooling_rate": results["adversarial"]["fooling_rate"]},
                                    extra=scored, command=command)
    # stage 1 and the upper bound are scored in the same table, with the same decoding
    update_manifest(out / "captioner_formal", command=command, extra=scored,
                                metrics={"spoken_before_adversarial": results["before_adversarial"],
                                         "spoken_before_adversarial_sampling": sampled["before_adversarial"]})
    update_manifest(out / "captioner_paired", metrics=results["paired_upper_bound"], command=command,
                                extra={**scored, "metrics_sampling": sampled["paired_upper_bound"]})
    return {"results": results, "results_sampling": sampled, "seconds": timings}


def train_reader_recipe(out_dir: str | Path, *, runtime: Runtime) -> dict[str, Any]:
    """``spokenstyle train captioner_reader``: the attribute reader R alone, saved in ``out_dir``
    (``spokenstyle train captioner`` reuses it when it finds it in its own output folder)."""
    R = _train_and_save_reader(Path(out_dir), runtime, test_set(runtime.budget("captioner_eval").n_test))
    return R.manifest["metrics"]


def _train_and_save_reader(out_dir: Path, rt: Runtime, test: TestSet) -> TextClassifier:
    start = time.perf_counter()
    R, _ = train_reader(rt)
    seconds = round(time.perf_counter() - start, 1)
    print(f"[captioner] captioner_reader: {seconds} s", flush=True)
    metrics = reader_metrics(R, test)
    R.save_pretrained(out_dir, command=command_line(), metrics=metrics,
                      extra={"profile": rt.profile, "device": str(rt.device), "seconds": seconds})
    R.manifest = {"metrics": metrics}
    return R

