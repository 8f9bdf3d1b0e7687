"""Multimodal fusion of text and picture (source §6, 文字与图片的多模态融合): a sentence drawn in a
chosen style, and both directions between words and pictures measured on held-out scenes.

* **Text → picture, drawn** (:func:`draw_sentence`): the sentence is read with
  :func:`~spokenstyle.data.understanding.understand` (what it understood, ignored and assumed
  is kept and shown), the reading is written as a formal caption, F draws that caption in the
  target style (:func:`~spokenstyle.models.fusion.fuse`, with a held-out scene in the style as
  the style reference, :func:`style_reference`), and the reader's own sentence is typeset into
  the picture (:func:`~spokenstyle.render.typeset`).
* **Text → picture, retrieved** (:func:`retrieval_accuracy`): given a sentence, which of N
  candidate pictures does it describe? The parser reads the sentence's colour slots, the scene
  judge reads a probability for every slot of every picture (:func:`slot_log_probs`), and a
  picture's score is the log-probability the judge gives to the sentence's slots
  (:func:`retrieval_scores`). Top-1 accuracy at N candidates is set against chance, 1/N.
* **Picture → words → picture** (:func:`round_trip`): the pipeline's five steps on held-out
  scenes, and how much of the source's content survives into the sentence and into the final
  picture (:func:`spokenstyle.evaluation.content_survival`), beside the floor of a shuffled pairing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import torch
from PIL import Image
from torch import nn

from .. import render, runtime
from ..data.content import sentence_slots
from ..data.scenes import sample_scenes
from ..data.splits import seed_range
from ..data.styles import STYLES, render as render_scenes
from ..data.understanding import Understanding, understand
from ..evaluation import content_survival
from ..models.fusion import FusionGenerator, fuse
from ..pipeline import SpokenStyleOutput, SpokenStylePipeline

__all__ = [
    "STYLE_REFERENCE_OFFSET",
    "NOTHING",
    "style_reference",
    "Drawing",
    "draw_sentence",
    "slot_log_probs",
    "retrieval_scores",
    "retrieval_accuracy",
    "RoundTrip",
    "round_trip",
    "readable_share",
]

STYLE_REFERENCE_OFFSET = 90_000  # style references are test scenes from here on (chapter 8 uses the first 60,000)
NOTHING = "hmm"  # what F is given when nothing was understood: a word that names no object (as the pipeline does)


def style_reference(style: str, seed: int = 0) -> torch.Tensor:
    """(1, 3, 64, 64): held-out test scene ``STYLE_REFERENCE_OFFSET + seed`` drawn in ``style``:
    the picture whose style F copies."""
    if style not in STYLES:
        raise ValueError(f"style must be one of {STYLES}, got {style!r}")
    runtime.check_seed(seed)
    scene = sample_scenes([seed_range("test").start + STYLE_REFERENCE_OFFSET + seed % 10_000])
    return render_scenes(scene, style, 64)


@dataclass
class Drawing:
    """One sentence drawn: what was understood, F's picture, and the picture with the sentence set in."""

    understanding: Understanding
    style: str
    fused: torch.Tensor  # (3, 64, 64) in [0, 1]: F's picture of what was understood
    picture: Image.Image  # the reader's sentence typeset into it
    reference: torch.Tensor = field(repr=False)  # (3, 64, 64): the style reference F copied
    words: str = ""  # what F was given: the reading as a formal caption (or NOTHING)


def draw_sentence(F: FusionGenerator, text: str, style: str, *, seed: int = 0, layout: str = "bubble") -> Drawing:
    """Reads ``text``, has F draw what was understood in ``style``, and typesets ``text`` into it.

    Args:
        F: the fusion generator (:func:`spokenstyle.models.fusion.load_fusion`).
        text: any sentence; what cannot be read is reported in ``drawing.understanding``.
        style: a ShapeScenes style name.
        seed: the layout code's seed and the style reference's scene.
        layout: ``"bubble"`` or ``"band"`` (:func:`spokenstyle.render.typeset`).
    """
    if not isinstance(F, FusionGenerator):
        raise TypeError(f"F must be a FusionGenerator (see load_fusion), got {type(F).__name__}")
    reading = understand(text)
    reference = style_reference(style, seed)
    words = reading.sentence or NOTHING
    device = next(F.parameters()).device
    fused = fuse(F, [words], reference.to(device), seed=seed)[0].float().cpu()
    picture = render.typeset(fused, text, layout=layout, palette_from=reference[0])
    return Drawing(reading, style, fused, picture, reference[0], words)


# -- retrieval -----------------------------------------------------------------------------------

@torch.no_grad()
def slot_log_probs(judge: nn.Module, images: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
    """(B, 6, 13) log-probabilities of every colour slot that the scene judge reads off ``images``
    ((B, 3, H, W) in [0, 1]); on the CPU."""
    if not isinstance(images, torch.Tensor) or images.dim() != 4 or images.shape[1] != 3:
        raise ValueError(f"images must be (B, 3, H, W), got "
                         f"{tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__}")
    was_training = judge.training
    judge.eval()
    device = next(judge.parameters()).device
    try:
        out = [judge(x.to(device))[1].float().log_softmax(-1).cpu() for x in images.split(batch_size)]
    finally:
        judge.train(was_training)
    return torch.cat(out)


def retrieval_scores(query_slots: torch.Tensor, log_probs: torch.Tensor) -> torch.Tensor:
    """(Q, M): how well picture m fits sentence q, the judge's log-probability of the sentence's
    six colour slots (``query_slots`` (Q, 6), from :func:`~spokenstyle.data.sentence_slots`)
    under picture m's reading (``log_probs`` (M, 6, 13)). An unreadable sentence (a row of -1)
    scores 0 against every picture: it cannot pick one."""
    if query_slots.dim() != 2 or log_probs.dim() != 3 or query_slots.shape[1] != log_probs.shape[1]:
        raise ValueError(f"query_slots (Q, 6) and log_probs (M, 6, 13) must agree, got "
                         f"{tuple(query_slots.shape)} and {tuple(log_probs.shape)}")
    readable = (query_slots >= 0).all(1)  # (Q,)
    q = query_slots.clamp(min=0)
    # (Q, M, 6): log p_m(c = slot_q[c]) gathered per colour
    per_colour = log_probs[None].expand(len(q), -1, -1, -1).gather(
        3, q[:, None, :, None].expand(-1, log_probs.shape[0], -1, 1))[..., 0]
    return torch.where(readable[:, None], per_colour.sum(-1), torch.zeros(()))


def retrieval_accuracy(scores: torch.Tensor, truth: torch.Tensor, ns: Sequence[int] = (2, 5, 10), *,
                       trials: int = 1000, seed: int = 0) -> dict[int, dict[str, float]]:
    """Top-1 accuracy of picking the right picture among N candidates, for each N in ``ns``.

    Each trial draws a sentence q, its picture ``truth[q]`` and N - 1 other pictures at random
    (without replacement); the trial scores 1 if the true picture has the highest score, 1/k if
    it ties with k - 1 others for the highest (a fair coin among the tied), else 0.

    Returns:
        ``{N: {"top1": accuracy, "chance": 1 / N, "trials": trials}}``.
    """
    if scores.dim() != 2 or truth.shape != (scores.shape[0],):
        raise ValueError(f"scores must be (Q, M) and truth (Q,), got {tuple(scores.shape)} and {tuple(truth.shape)}")
    Q, M = scores.shape
    if isinstance(trials, bool) or not isinstance(trials, int) or trials < 1:
        raise ValueError(f"trials must be a positive int, got {trials!r}")
    gen = torch.Generator().manual_seed(seed)
    out: dict[int, dict[str, float]] = {}
    for n in ns:
        if isinstance(n, bool) or not isinstance(n, int) or not 2 <= n <= M:
            raise ValueError(f"every N must be an int from 2 to the number of pictures ({M}), got {n!r}")
        total = 0.0
        for _ in range(trials):
            q = int(torch.randint(Q, (1,), generator=gen))
            others = torch.randperm(M - 1, generator=gen)[: n - 1]
            others = others + (others >= truth[q]).long()  # every picture but the true one
            s = scores[q, torch.cat([truth[q: q + 1], others])]
            best = s.max()
            if s[0] == best:
                total += 1.0 / int((s == best).sum())
        out[n] = {"top1": total / trials, "chance": 1.0 / n, "trials": trials}
    return out


# -- picture -> words -> picture ----------------------------------------------------------------

@dataclass
class RoundTrip:
    """The pipeline on held-out scenes and what of their content survived (shares of objects)."""

    output: SpokenStyleOutput
    truth: torch.Tensor  # (B, 6) the scenes' colour slots
    survival: dict[str, dict[str, float]]  # stage -> content_survival(truth, reading)


def round_trip(pipe: SpokenStylePipeline, n: int, *, offset: int = 60_000, seed: int = 0) -> RoundTrip:
    """Picture → words → picture on ``n`` held-out test scenes (from ``offset`` on: chapter 8
    measured the first ones): sources in every style, each target another scene in the next
    style. Survival per stage: the judge on the real source, the sentence (parser), the final
    picture, and the final pictures against *another* scene's content (the floor)."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 2:
        raise ValueError(f"n must be an int >= 2, got {n!r}")
    start = seed_range("test").start + offset
    i = torch.arange(n)
    source_styles = i % len(STYLES)
    target_styles = (i + 1) % len(STYLES)
    scenes = sample_scenes(start + i)
    sources = render_scenes(scenes, source_styles, 64)
    targets = render_scenes(sample_scenes(start + n + i), target_styles, 64)
    out = pipe(sources, targets, seed=seed, source_style=source_styles, target_style=target_styles)
    truth = scenes.colour_slots().cpu()
    survival = {"source (judge)": content_survival(truth, out.source_slots),
                "sentence (parser)": content_survival(truth, out.sentence_slots),
                "final picture (judge)": content_survival(truth, out.fused_slots),
                "shuffled (floor)": content_survival(truth.roll(1, 0), out.fused_slots)}
    return RoundTrip(out, truth, survival)


def readable_share(sentences: Sequence[str]) -> float:
    """The share of ``sentences`` the strict parser reads (:func:`~spokenstyle.data.sentence_slots`)."""
    slots = sentence_slots(list(sentences))
    return float((slots >= 0).all(1).float().mean()) if len(slots) else 0.0
