"""Scorecards: what the book's models score, always beside the baseline that gives the number meaning.

:mod:`spokenstyle.metrics` and :mod:`spokenstyle.text_metrics` are the mathematics (FD, KID,
precision/recall, SSIM, BLEU, distinct-n, perplexity); this module runs models on held-out data
and puts those numbers together, one function per question a chapter asks:

* **images** (chapter 4): :func:`evaluate_images` (FD, KID, precision, recall, density, coverage
  and the confident share of generated pictures, beside the real-vs-real baseline over several
  real sets); :func:`feature_accuracy` (the feature extractor on held-out renders);
* **judges** (chapters 1 and 5): :func:`judge_report` (style and object accuracy per style);
* **translations** (chapter 5): :func:`evaluate_translation` scores *any* function from style A
  to style B (CycleGAN, Gram, AdaIN, doing nothing) by the judge, against the ground truth, and
  in FD; :func:`score_translator` both directions of a CycleGAN; :func:`fd_real_baseline`;
  :func:`evaluate_photo_translation`;
* **captions** (chapter 6): :func:`evaluate_captions`, :func:`evaluate_systems` (the chapter's
  table), :func:`perception_metrics`, :func:`literal_value` (the §4.2 value as written);
* **fusion** (chapter 7): :func:`evaluate_fusion` (what the judges read in F's pictures, with a
  ceiling and a floor);
* **the pipeline** (chapter 8): :func:`content_survival`; (chapter 11) :func:`style_pair_table`
  (every ordered pair of styles through a pipeline) and :func:`photo_source_table` (photographs as
  sources);
* **evaluating a GAN's evaluation** (chapter 11): :func:`resize_images` and
  :func:`resize_comparison` (the same pictures resized two ways differ in FD; Parmar et al.
  2022), :func:`discriminator_features` (a DCGAN discriminator's own feature space, the one a
  score must not be computed in).

Every judge used here was trained on real renders only; none ever saw a generated picture.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from .data import PhotoPatches, paired_batches, painterly, real_renders, scene_batches
from .data.captions import caption
from .data.content import content_targets, geometric_pairs
from .data.corpus import TestSet
from .data.scenes import COLOURS, RELATIONS, sample_scenes, split_slots
from .data.splits import seed_range
from .data.styles import STYLES, render, style_ids
from .data.tokenizer import PAD_ID, encode_captions
from .metrics import (BaselineReport, Comparison, check_unit_images, compare_to_baseline, fd_is_meaningful,
                      frechet_distance, kid, mean_sd, ssim)
from .models.captioner import Captioner, caption_images, content_probs, rule_based_rewrite
from .models.critic import TextClassifier, reader_predict
from .models.features import FeatureNet, confidence, extract_features, feature_extractor
from .models.fusion import FusionGenerator, fuse, spread_layout, tokenize
from .models.judge import SceneJudge, read_scene
from .text_metrics import attribute_accuracy, bleu, classifier_rate, distinct_n, perplexity

__all__ = [
    "evaluate_images",
    "style_breakdown",
    "feature_accuracy",
    "judge_report",
    "TranslationScores",
    "judge_scores",
    "evaluate_translation",
    "fd_real_baseline",
    "score_translator",
    "evaluate_photo_translation",
    "lm_nll",
    "evaluate_captions",
    "GREEDY_SYSTEMS",
    "evaluate_systems",
    "perception_metrics",
    "register_metrics",
    "reader_metrics",
    "literal_value",
    "evaluate_fusion",
    "honours_relation",
    "stated_relations",
    "relation_accuracy",
    "content_survival",
    "StylePairTable",
    "style_pair_table",
    "photo_source_table",
    "RESIZE_METHODS",
    "resize_images",
    "resize_comparison",
    "discriminator_features",
    "StyleReading",
    "read_styles",
    "fusion_scenes",
]


# -- images (chapter 4) ------------------------------------------------------------------------

def evaluate_images(fake: torch.Tensor, *, style: str | int | None = None, extractor=None,
                    label: str = "fake", real: tuple | None = None, baseline_sets: int = 5) -> BaselineReport:
    """Every metric for generated images, beside the real-vs-real baseline, in one call.

    Renders held-out real sets of ``len(fake)`` scenes each (in ``style``, or all styles when
    None, at the fakes' size): the reference set from the seed range ``real_a``
    (:func:`spokenstyle.data.real_renders`) and ``baseline_sets`` disjoint sets from ``real_b``. It embeds them with the feature extractor and reports FD, KID, PRDC (k = 5) and
    **confident**: the fraction of images whose classifier confidence (the smaller of its style
    and object-count probabilities, 0 where its colour and count heads disagree on the number of
    objects; :func:`spokenstyle.models.features.confidence`) is at least
    0.9. Each real-vs-real number is the mean over the ``b`` sets, with their spread beside it
    (one set is one noisy draw; see the module docstring).

    Args:
        fake: (N, 3, H, W) generated images in [0, 1] (convert tanh outputs with
            :func:`spokenstyle.models.dcgan.to_unit_range`).
        style: the style the generator was trained on, or None for all styles.
        extractor: a :class:`~spokenstyle.models.features.FeatureNet`; default the shipped
            ``"features"`` checkpoint.
        label: the column title for the fakes.
        real: (real_a, real_b) images to use instead of rendering them (same size as ``fake``);
            ``real_b`` may be one tensor or a list of disjoint real sets.
        baseline_sets: how many real ``b`` sets to render for the baseline (when ``real`` is None).
    """
    if not isinstance(fake, torch.Tensor) or fake.dim() != 4 or fake.shape[1] != 3:
        raise ValueError(f"fake must be (N, 3, H, W) images in [0, 1], got "
                         f"{tuple(fake.shape) if isinstance(fake, torch.Tensor) else type(fake).__name__}")
    n, size = fake.shape[0], fake.shape[-1]
    if not isinstance(baseline_sets, int) or isinstance(baseline_sets, bool) or baseline_sets < 1:
        raise ValueError(f"baseline_sets must be a positive int, got {baseline_sets!r}")
    if extractor is None:
        extractor = feature_extractor(weights="features")
    if real is None:
        real = (real_renders(n, split="real_a", style=style, size=size)[0],
                [real_renders(n, split="real_b", style=style, size=size, offset=k * n)[0] for k in range(baseline_sets)])
    real_a, real_b = real
    real_b = list(real_b) if isinstance(real_b, (list, tuple)) else [real_b]
    f_fake, c_fake = extract_features(extractor, fake, with_confidence=True)
    f_a = extract_features(extractor, real_a)
    f_b, c_b = zip(*(extract_features(extractor, b, with_confidence=True) for b in real_b))
    report = compare_to_baseline(f_a, list(f_b), f_fake, label=label)
    mean, sd = mean_sd([float((c >= 0.9).double().mean()) for c in c_b])
    report.comparisons["confident"] = Comparison("confident", float((c_fake >= 0.9).double().mean()), mean, sd, len(c_b))
    return report


@torch.no_grad()
def feature_accuracy(net: FeatureNet, images: torch.Tensor, targets: torch.Tensor, *, batch_size: int = 500) -> dict[str, float]:
    """Held-out accuracies: style, count, colour set (all six yes/no answers right), shape and
    size (of the objects present), whole scene (all of these right), and the fraction of
    images with confidence ≥ 0.9. ``targets`` from :func:`spokenstyle.models.features.feature_targets`."""
    was_training = net.training
    net.eval()
    device = next(net.parameters()).device
    right = {"style": 0, "count": 0, "colours": 0, "shape": 0, "size": 0, "scene": 0, "confident": 0}
    objects = 0
    try:
        for x, y in zip(images.split(batch_size), targets.split(batch_size)):
            out = net(x.to(device))
            present, shape, size = split_slots(y[:, 2:].to(device))
            style = out.style_logits.argmax(-1) == y[:, 0].to(device)
            count = out.count_logits.argmax(-1) == y[:, 1].to(device)
            colours = ((out.colour_logits > 0) == present).all(1)
            shape_ok = (out.shape_logits.argmax(-1) == shape) | ~present  # (B, 6)
            size_ok = (out.size_logits.argmax(-1) == size) | ~present
            objects += int(present.sum())
            right["style"] += int(style.sum())
            right["count"] += int(count.sum())
            right["colours"] += int(colours.sum())
            right["shape"] += int((shape_ok & present).sum())
            right["size"] += int((size_ok & present).sum())
            right["scene"] += int((style & count & colours & shape_ok.all(1) & size_ok.all(1)).sum())
            right["confident"] += int((confidence(out) >= 0.9).sum())
    finally:
        net.train(was_training)
    n = images.shape[0]
    return {"style_accuracy": right["style"] / n, "count_accuracy": right["count"] / n,
            "colour_set_accuracy": right["colours"] / n, "shape_accuracy": right["shape"] / objects,
            "size_accuracy": right["size"] / objects, "scene_accuracy": right["scene"] / n,
            "confident_rate": right["confident"] / n}


@torch.no_grad()
def style_breakdown(images: torch.Tensor, extractor: FeatureNet, *, requested: torch.Tensor | None = None,
                    threshold: float = 0.9, batch_size: int = 500) -> dict[str, dict[str, float]]:
    """Per style, what a feature extractor reads in generated pictures: ``share`` of the pictures in
    that style, their ``confident`` share (confidence ≥ ``threshold``,
    :func:`~spokenstyle.models.features.confidence`) and, when the styles were ``requested`` (a
    conditional generator's class ids, (N,)), ``accuracy``: how often the extractor reads the style
    asked for. Pictures are grouped by the requested style if given, else by the style read."""
    if not isinstance(images, torch.Tensor) or images.dim() != 4 or images.shape[1] != 3:
        raise ValueError(f"images must be (N, 3, H, W) in [0, 1], got "
                         f"{tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__}")
    if requested is not None and (not isinstance(requested, torch.Tensor) or requested.shape != images.shape[:1]):
        raise ValueError(f"requested must be ({images.shape[0]},) style ids, got {getattr(requested, 'shape', requested)}")
    _, conf = extract_features(extractor, images, with_confidence=True)
    read = torch.cat([extractor.read(chunk)[0].argmax(-1).cpu() for chunk in images.split(batch_size)])
    group = requested.cpu() if requested is not None else read
    out = {}
    for s, name in enumerate(STYLES):
        mask = group == s
        row = {"share": float(mask.float().mean()),
               "confident": float((conf[mask] >= threshold).float().mean()) if mask.any() else float("nan")}
        if requested is not None:
            row["accuracy"] = float((read[mask] == s).float().mean()) if mask.any() else float("nan")
        out[name] = row
    return out


# -- judges (chapters 1 and 5) ----------------------------------------------------------------

@torch.no_grad()
def judge_report(judge: SceneJudge, *, n_per_style: int = 500, size: int = 64, batch_size: int = 250,
                 device: torch.device | str | None = None) -> dict[str, dict[str, float]]:
    """Accuracy on held-out (test split) scenes, per style.

    Returns ``{style: {"style": ..., "object": ..., "scene": ...}}``: style accuracy, the share of
    objects read exactly (shape, colour and size), and the share of scenes read exactly.
    """
    judge.eval()
    dev = next(judge.parameters()).device if device is None else torch.device(device)
    report = {}
    for s, name in enumerate(STYLES):
        batches = scene_batches(batch_size, name, size, split="test", seed=s, device=dev)
        hits = {"style": 0, "object": 0, "scene": 0}
        objects = scenes = 0
        for step in range(-(-n_per_style // batch_size)):
            b = batches(step)
            style_logits, slot_logits = judge(b["image"])
            pred = slot_logits.argmax(-1)  # (B, 6)
            present = b["slots"] > 0
            hits["style"] += int((style_logits.argmax(-1) == b["style"]).sum())
            hits["object"] += int(((pred == b["slots"]) & present).sum())
            hits["scene"] += int((pred == b["slots"]).all(1).sum())
            objects += int(present.sum())
            scenes += len(pred)
        report[name] = {"style": hits["style"] / scenes, "object": hits["object"] / objects,
                        "scene": hits["scene"] / scenes}
    return report


# -- translations (chapter 5) -------------------------------------------------------------------

@dataclass
class TranslationScores:
    """What :func:`evaluate_translation` measured for one method and one direction A → B."""

    method: str
    source: str
    target: str
    n: int
    style_accuracy: float  # the judge calls the translation the target style
    content_accuracy: float  # source objects the judge reads back exactly (shape, colour, size)
    scene_accuracy: float  # translations whose objects are all read back exactly
    l1_to_truth: float  # mean |translation - the same scene rendered in the target style|
    ssim_to_truth: float
    fd: float  # Fréchet distance to real target-style renders, in the features checkpoint's space
    fd_real_vs_real: float  # the same for a second set of real target-style renders
    cycle_l1: float | None = None  # mean |back(translation) - source| when a way back was given
    judge_on_truth: dict[str, float] = field(default_factory=dict)  # the judge's scores on the ground truth
    fd_meaningful: bool = True  # n >= 2 x the feature dimension (metrics.fd_is_meaningful); else read KID
    kid: float = float("nan")  # KID (unbiased at any n) to the same real renders, and real vs real
    kid_real_vs_real: float = float("nan")

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@torch.no_grad()
def _judge_scores(judge: nn.Module, images: torch.Tensor, style_id: int, slots: torch.Tensor,
                  batch_size: int = 250) -> dict[str, float]:
    judge.eval()
    device = next(judge.parameters()).device
    style_hits = obj_hits = scene_hits = 0
    objects = int((slots > 0).sum())
    for x, s in zip(images.split(batch_size), slots.split(batch_size)):
        style_logits, slot_logits = judge(x.to(device))
        pred = slot_logits.argmax(-1).cpu()  # (B, 6)
        style_hits += int((style_logits.argmax(-1).cpu() == style_id).sum())
        obj_hits += int(((pred == s) & (s > 0)).sum())
        scene_hits += int((pred == s).all(1).sum())
    n = images.shape[0]
    return {"style": style_hits / n, "object": obj_hits / max(objects, 1), "scene": scene_hits / n}


def judge_scores(judge: nn.Module, images: torch.Tensor, style: str | int, slots: torch.Tensor) -> dict[str, float]:
    """What the scene judge reads in ``images``: ``{"style", "object", "scene"}`` accuracies.

    Args:
        judge: a :class:`~spokenstyle.models.judge.SceneJudge` (the shipped ``"judge"``).
        images: (B, 3, H, W) in [0, 1].
        style: the style the pictures should have (name or id).
        slots: (B, 6) the true colour slots (``batch["slots"]``; 0 = no object of that colour).
    Returns: the share of pictures called ``style``, of objects read exactly (shape, colour and
    size) and of scenes read exactly.
    """
    images = check_unit_images(images, "images")
    if not isinstance(slots, torch.Tensor) or slots.dim() != 2 or slots.shape[0] != images.shape[0] \
            or slots.dtype.is_floating_point:
        raise ValueError(f"slots must be an integer (B, n_colours) tensor with B = {images.shape[0]}, got "
                         f"{tuple(slots.shape) if isinstance(slots, torch.Tensor) else type(slots).__name__}")
    return _judge_scores(judge, images, int(style_ids(style, 1)[0]), slots.cpu())


def _held_out_pairs(n: int, style_a: str, style_b: str, size: int, split: str, seed: int) -> dict[str, torch.Tensor]:
    """``n`` held-out scenes drawn in both styles: ``image_a``, ``image_b``, ``slots``. The test
    split is walked as :func:`spokenstyle.data.paired_batches` walks it (what the book reports);
    ``"validation"`` takes stretch ``seed`` of the validation seed range (runs of a recipe are
    compared there, before the test scenes are looked at)."""
    if split == "test":
        return paired_batches(n, style_a, style_b, size, split="test", seed=seed)(0)
    if split != "validation":
        raise ValueError(f"split must be 'test' or 'validation', got {split!r}")
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    scenes = sample_scenes(seed_range("validation").seeds(n, offset=seed * n))
    return {"image_a": render(scenes, style_a, size), "image_b": render(scenes, style_b, size),
            "slots": scenes.colour_slots()}


def evaluate_translation(translate: Callable[[torch.Tensor], torch.Tensor], style_a: str, style_b: str, *,
                         judge: nn.Module, n: int = 300, size: int = 64, back: Callable | None = None,
                         extractor: nn.Module | None = None, method: str = "translation", seed: int = 0,
                         batch_size: int = 100, split: str = "test") -> TranslationScores:
    """Scores ``translate`` (style-A pictures in [0, 1] → style-B pictures in [0, 1]) on ``n``
    held-out scenes of the test split (or, with ``split="validation"``, of the validation range).

    Args:
        translate: the method; called on batches of ``batch_size`` pictures.
        style_a, style_b: the source and target styles.
        judge: a :class:`~spokenstyle.models.judge.SceneJudge` trained on real renders only
            (the shipped ``"judge"``).
        back: the way back (style B → A), for the cycle L1; ``None`` skips it.
        extractor: the FD feature network; default the shipped ``"features"`` checkpoint.
        seed: which stretch of the test split (or validation range) to use.
        split: ``"test"`` (the scores the book reports) or ``"validation"`` (runs compared
            before the test scenes are looked at; chapter 11's ablation).
    """
    if not callable(translate):
        raise TypeError("translate must be callable: pictures (B, 3, H, W) in [0, 1] -> translations")
    if not isinstance(n, int) or isinstance(n, bool) or n < 2:
        raise ValueError(f"n must be an int >= 2 (FD needs several pictures), got {n!r}")
    sid_b = int(style_ids(style_b, 1)[0])
    batch = _held_out_pairs(n, style_a, style_b, size, split, seed)
    source, truth, slots = batch["image_a"], batch["image_b"], batch["slots"]
    fake = torch.cat([translate(chunk).detach().float().cpu() for chunk in source.split(batch_size)])
    if fake.shape != source.shape:
        raise ValueError(f"translate returned shape {tuple(fake.shape)} for input {tuple(source.shape)}")
    scores = _judge_scores(judge, fake, sid_b, slots)
    on_truth = _judge_scores(judge, truth, sid_b, slots)
    extractor = extractor if extractor is not None else feature_extractor(weights="features")
    real_1 = real_renders(n, split="real_a", style=style_b, size=size)[0]
    real_2 = real_renders(n, split="real_b", style=style_b, size=size)[0]
    f1, f2, ff = (extract_features(extractor, x) for x in (real_1, real_2, fake.clamp(0, 1)))
    cycle = None
    if back is not None:
        rec = torch.cat([back(chunk).detach().float().cpu() for chunk in fake.split(batch_size)])
        cycle = float((rec - source).abs().mean())
    return TranslationScores(
        method=method, source=style_a, target=style_b, n=n, style_accuracy=scores["style"],
        content_accuracy=scores["object"], scene_accuracy=scores["scene"],
        l1_to_truth=float((fake - truth).abs().mean()), ssim_to_truth=float(ssim(fake.clamp(0, 1), truth).mean()),
        fd=frechet_distance(f1, ff, warn=False), fd_real_vs_real=frechet_distance(f1, f2, warn=False), cycle_l1=cycle,
        judge_on_truth=on_truth, fd_meaningful=fd_is_meaningful(n, ff.shape[1]),
        kid=kid(f1, ff, subset_size=min(n, 1000))[0], kid_real_vs_real=kid(f1, f2, subset_size=min(n, 1000))[0])


@torch.no_grad()
def fd_real_baseline(style: str, n: int, size: int = 64, *, extractor: nn.Module | None = None,
                     sets: int = 5) -> tuple[float, float]:
    """The FD a perfect translator into ``style`` would score with ``n`` pictures: the FD between
    the reference set of :func:`evaluate_translation` (seed range ``real_a``) and ``sets`` disjoint
    sets of real renders from ``real_b`` (the first is the one ``evaluate_translation`` uses), as
    (mean, standard deviation). One set is one noisy draw; the spread says how far a translation's
    FD must lie above the mean to differ from real pictures."""
    if not isinstance(sets, int) or isinstance(sets, bool) or sets < 2:
        raise ValueError(f"sets must be an int >= 2 (a standard deviation needs two), got {sets!r}")
    extractor = extractor if extractor is not None else feature_extractor(weights="features")
    ref = extract_features(extractor, real_renders(n, split="real_a", style=style, size=size)[0])
    others = (extract_features(extractor, real_renders(n, split="real_b", style=style, size=size, offset=k * n)[0])
              for k in range(sets))
    fds = [frechet_distance(ref, other, warn=False) for other in others]  # score_translator flags small n itself
    t = torch.tensor(fds, dtype=torch.float64)
    return float(t.mean()), float(t.std(unbiased=True))


def _scores_dict(prefix: str, scores) -> dict[str, Any]:
    d = scores.as_dict()
    out = {f"{prefix}_{k}": v for k, v in d.items()
           if k in ("style_accuracy", "content_accuracy", "scene_accuracy", "l1_to_truth", "ssim_to_truth", "fd",
                    "fd_real_vs_real", "cycle_l1", "fd_meaningful", "kid", "kid_real_vs_real")}
    out.update({f"{prefix}_judge_on_truth_{k}": v for k, v in d["judge_on_truth"].items()})
    return out


def score_translator(model: nn.Module, style_a: str, style_b: str, *, judge: nn.Module, n: int, size: int = 64,
               seed: int = 0, prefix: str = "", keep: tuple[str, ...] | None = None,
               extractor: nn.Module | None = None, baseline_sets: int = 0, split: str = "test") -> dict[str, Any]:
    """Both directions of a trained translator (a :class:`~spokenstyle.models.cyclegan.CycleGAN`)
    scored by :func:`evaluate_translation` (``n`` held-out test scenes, the way back
    for the cycle L1), as flat manifest keys ``{prefix}{AB|BA}_{metric}``; ``keep`` limits the
    metrics. ``extractor`` is the FD feature network (default: the shipped ``"features"``).
    ``baseline_sets`` > 0 adds ``{AB|BA}_fd_real_vs_real_mean`` / ``_sd`` / ``_sets``: the
    real-vs-real FD over that many disjoint real sets (:func:`fd_real_baseline`); what
    :func:`spokenstyle.recipes.cyclegan.train_pair` records. ``split="validation"`` scores on
    validation scenes instead of test scenes (:func:`evaluate_translation`)."""
    if not isinstance(baseline_sets, int) or isinstance(baseline_sets, bool) or baseline_sets == 1 or baseline_sets < 0:
        raise ValueError(f"baseline_sets must be 0 (no baseline) or an int >= 2, got {baseline_sets!r}")
    if baseline_sets and extractor is None:  # one network for the scores and the baseline
        extractor = feature_extractor(weights="features")
    scores: dict[str, Any] = {}
    for direction, (src, dst) in (("AB", (style_a, style_b)), ("BA", (style_b, style_a))):
        back = "BA" if direction == "AB" else "AB"
        s = evaluate_translation(getattr(model, f"G_{direction}").translate, src, dst, judge=judge, n=n, size=size,
                                 back=getattr(model, f"G_{back}").translate, extractor=extractor,
                                 method="CycleGAN-lite", seed=seed, split=split)
        scores.update({k: v for k, v in _scores_dict(prefix + direction, s).items()
                       if keep is None or k.split("_", 1 + prefix.count("_"))[-1] in keep})
        if baseline_sets:
            mean, sd = fd_real_baseline(dst, n, size, extractor=extractor, sets=baseline_sets)
            scores.update({f"{prefix}{direction}_fd_real_vs_real_mean": mean, f"{prefix}{direction}_fd_real_vs_real_sd": sd,
                           f"{prefix}{direction}_fd_real_vs_real_sets": baseline_sets})
    return scores


@torch.no_grad()
def evaluate_photo_translation(translate: Callable[[torch.Tensor], torch.Tensor], *, filter: str = "oil",
                               n: int = 200, size: int = 64, back: Callable | None = None,
                               batch_size: int = 100) -> dict[str, float]:
    """Scores a photo → painterly translation on ``n`` held-out photo patches against the
    ground truth (the same patch through the painterly ``filter``): L1 and SSIM, beside the
    do-nothing baseline (the photo itself), and the cycle L1 when ``back`` is given."""
    if not callable(translate):
        raise TypeError("translate must be callable: photo patches (B, 3, H, W) in [0, 1] -> paintings")
    photos = PhotoPatches("test", size, length=n).batch(range(n))["image"]
    truth = painterly(photos, filter)
    fake = torch.cat([translate(chunk).detach().float().cpu() for chunk in photos.split(batch_size)])
    out = {"n": n, "l1_to_truth": float((fake - truth).abs().mean()),
           "ssim_to_truth": float(ssim(fake.clamp(0, 1), truth).mean()),
           "identity_l1_to_truth": float((photos - truth).abs().mean()),
           "identity_ssim_to_truth": float(ssim(photos, truth).mean())}
    if back is not None:
        rec = torch.cat([back(chunk).detach().float().cpu() for chunk in fake.split(batch_size)])
        out["cycle_l1"] = float((rec - photos).abs().mean())
    return out


# -- captions (chapter 6) --------------------------------------------------------------------------

def lm_nll(lm: Captioner) -> Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]]:
    """``nll(tokens) -> (summed NLL per sentence, tokens per sentence)`` under the spoken LM
    (the <eos> counts as a token, as in most LM perplexities)."""

    @torch.no_grad()
    def nll(tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        tokens = tokens.to(lm.device)
        count = (tokens != PAD_ID).sum(1)
        keep = count > 0
        tokens = tokens[keep][:, : lm.config.max_len]
        return -lm.log_likelihood(None, tokens, "spoken"), count[keep].clamp(max=lm.config.max_len)

    return nll


@torch.no_grad()
def evaluate_captions(texts: Sequence[str], test: TestSet, *, register_clf: TextClassifier, critic: TextClassifier | None = None,
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
    out["length"] = float((tokens != PAD_ID).sum(1).float().mean()) - 1  # without <eos>
    return out


GREEDY_SYSTEMS = ("formal_mle", "rule_based", "adversarial_formal")  # written greedily whatever the decoding


def evaluate_systems(S_formal: Captioner, S_spoken: Captioner, P: Captioner, test: TestSet,
                     decoding: dict[str, Any], *, register_clf: TextClassifier, critic: TextClassifier | None = None,
                     lm: Captioner | None = None,
                     greedy_scores: dict[str, dict[str, float]] | None = None) -> dict[str, dict[str, float]]:
    """Chapter 6's table: :func:`evaluate_captions` of every system's captions of the test images.

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
    out.update({name: evaluate_captions(t, test, register_clf=register_clf, critic=critic, lm=lm) for name, t in texts.items()})
    order = ("formal_mle", "rule_based", "before_adversarial", "paired_upper_bound", "adversarial", "adversarial_formal")
    return {name: out[name] for name in order}


@torch.no_grad()
def perception_metrics(S: Captioner, test: TestSet) -> dict[str, float]:
    """How well S's reader perceives the test pictures: every object exact, and the content it
    would state (objects and the relations :func:`content_probs` keeps) true of the picture."""
    slots, pairs = [], []
    for start in range(0, test.images.shape[0], 256):
        s, p = content_probs(*S.reader(test.images[start: start + 256].to(S.device)))
        slots.append(s.argmax(-1).cpu()), pairs.append(p.argmax(-1).cpu())
    slots, pairs = torch.cat(slots), torch.cat(pairs)
    t_slots, truth = content_targets(test.scenes)[0], geometric_pairs(test.scenes)  # truth: -1 = no relation
    objects = (slots == t_slots).all(1)
    stated_true = ((pairs == 0) | (pairs == truth)).all(1)
    n_needed = ((t_slots > 0).sum(1) - 1).clamp(min=0, max=2)  # a caption relates its objects by a chain
    return {"objects_exact": float(objects.float().mean()),
            "content_true": float((objects & stated_true & ((pairs > 0).sum(1) == n_needed)).float().mean())}


def register_metrics(reg: TextClassifier, test: TestSet) -> dict[str, float]:
    """The register classifier's accuracy on the test set's formal captions and first spoken references."""
    clf = lambda x: reg(x.to(reg.device))  # noqa: E731
    return {"accuracy_formal": 1 - classifier_rate(clf, encode_captions(test.formal)),
            "accuracy_spoken": classifier_rate(clf, encode_captions(test.spoken_refs[0]))}


def reader_metrics(R: TextClassifier, test: TestSet) -> dict[str, float]:
    """The share of test sentences whose whole content (every slot and pair) R reads exactly."""
    out = {}
    slots, pairs = content_targets(test.scenes)
    for name, texts in (("spoken", test.spoken_refs[0]), ("formal", test.formal)):
        s, p = reader_predict(R(encode_captions(texts).to(R.device)))
        out[f"exact_{name}"] = float(((s.cpu() == slots).all(1) & (p.cpu() == pairs).all(1)).float().mean())
    return out


def literal_value(t_real: torch.Tensor, t_fake: torch.Tensor, eps: float = 1e-12) -> float:
    """The §4.2 value as written, ``E_x log T(S(x)) + E_z log(1 − T(S(G(z))))``, from T's
    probabilities on captions of real images and of generator samples."""
    return float(torch.log(t_real.clamp(min=eps)).mean() + torch.log((1 - t_fake).clamp(min=eps)).mean())


# -- fusion (chapter 7) --------------------------------------------------------------------------

@torch.no_grad()
def evaluate_fusion(F: FusionGenerator, judge: nn.Module, features: FeatureNet, *, n: int = 600, register: str = "spoken", seed: int = 0,
             batch_size: int = 100, split: str = "test") -> dict[str, float]:
    """Step 5 on held-out scenes: what the judges read in F's pictures, with a ceiling and a floor.

    For ``n`` scenes of ``split`` ("test", or "validation": the seed range no run of the recipe
    trains on, :mod:`spokenstyle.data.splits`), each with a target style and a style reference
    (another scene in it):

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
    if split not in ("test", "validation"):
        raise ValueError(f"split must be 'test' or 'validation', got {split!r}")
    lo = seed_range(split).start
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


def honours_relation(p_a: torch.Tensor, p_b: torch.Tensor, relation: torch.Tensor) -> torch.Tensor:
    """Whether object a at ``p_a`` stands to object b at ``p_b`` as ``relation`` says: (N, 2), (N, 2)
    centres (x right, y down) and (N,) ids into :data:`spokenstyle.data.scenes.RELATIONS` → (N,) bool.

    Direction only, as a reader checks a picture: "left of" holds when a's centre is left of b's,
    "above" when higher, "next to" when the two are further apart across than up and down. The
    renderer's own rule (:func:`~spokenstyle.data.scenes.relation_between`) also asks for gaps
    between the shapes, which a layout without sizes cannot be held to."""
    if not (isinstance(p_a, torch.Tensor) and isinstance(p_b, torch.Tensor) and isinstance(relation, torch.Tensor)) \
            or p_a.dim() != 2 or p_a.shape[1] != 2 or p_b.shape != p_a.shape or tuple(relation.shape) != (p_a.shape[0],):
        raise ValueError("honours_relation needs p_a and p_b of shape (N, 2) and relation of shape (N,), got "
                         f"{tuple(getattr(p_a, 'shape', ()))}, {tuple(getattr(p_b, 'shape', ()))}, "
                         f"{tuple(getattr(relation, 'shape', ()))}")
    if relation.numel() and (int(relation.min()) < 0 or int(relation.max()) >= len(RELATIONS)):
        raise ValueError(f"relation ids must be in [0, {len(RELATIONS)}) (RELATIONS), got "
                         f"[{int(relation.min())}, {int(relation.max())}]")
    d = p_b - p_a  # (N, 2)
    dx, dy = d[:, 0], d[:, 1]
    checks = torch.stack([dx > 0, dx < 0, dy > 0, dy < 0, dx.abs() > dy.abs()], 1)  # RELATIONS' order
    return checks.gather(1, relation.long()[:, None])[:, 0]


def stated_relations(scenes) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Every relation the scenes' captions state, flattened: (row, colour of the subject, colour of
    the landmark, relation id), each (P,), for the consecutive objects of each scene's chain."""
    i, k = torch.nonzero(torch.arange(scenes.colour.shape[1] - 1)[None] < (scenes.n_objects[:, None] - 1), as_tuple=True)
    return i, scenes.colour[i, k], scenes.colour[i, k + 1], scenes.relation[i, k]


@torch.no_grad()
def relation_accuracy(F: FusionGenerator, *, n: int = 600, register: str = "spoken", split: str = "test",
                      offset: int = 40_000, seed: int = 0) -> dict[str, float]:
    """How often F's test-time layouts honour the relations the sentences state, against chance.

    For ``n`` scenes of ``split`` (seeds ``offset`` on from the split's start), each caption's
    stated relations (consecutive objects of the scene's chain, :func:`honours_relation`) are
    checked on the layout F decodes (only the layout: no picture is drawn):

    * ``relation_acc``: F's layout from noise z ~ N(0, I) (``seed``), through its layout prior if
      it has one (:class:`~spokenstyle.models.fusion.LayoutPrior`);
    * ``relation_acc_no_prior``: the same noise decoded directly (what F without a prior does);
    * ``relation_chance``: uniformly random positions, which ignore the words;
    * ``relation_pairs``: how many relations were checked.

    Attribute match (:func:`evaluate_fusion`) scores objects only; this is the other half of a
    sentence, so chapter 7 reports both."""
    if split not in ("test", "validation"):
        raise ValueError(f"split must be 'test' or 'validation', got {split!r}")
    seeds = seed_range(split).seeds(n, offset=offset)  # a clear error for a bad n or offset, or leaving the split
    scenes = sample_scenes(seeds)
    texts = [caption(s, register, int(k)) for s, k in zip(scenes.specs(), seeds.tolist())]
    device = next(F.parameters()).device
    was_training = F.training
    F.eval()
    try:
        tokens = tokenize(texts, F.config).to(device)
        sentence, _, slot_logits = F.text(tokens)
        z = torch.randn(n, F.config.latent_dim, generator=torch.Generator().manual_seed(seed)).to(device)
        with_prior = F.sample_layout(z, sentence, slot_logits, tokens=tokens).cpu()
        present = slot_logits.argmax(-1) > 0
        no_prior = spread_layout(F.decode_layout(z, sentence), present, min_gap=F.config.min_gap).cpu()
    finally:
        F.train(was_training)
    chance = torch.rand(n, len(COLOURS), 2, generator=torch.Generator().manual_seed(seed + 1)) * 1.8 - 0.9
    i, a, b, rel = stated_relations(scenes)
    rate = lambda P: float(honours_relation(P[i, a], P[i, b], rel).float().mean())  # noqa: E731
    return {"relation_acc": rate(with_prior), "relation_acc_no_prior": rate(no_prior),
            "relation_chance": rate(chance), "relation_pairs": int(len(i)), "n": n}


# -- the pipeline (chapter 8) ---------------------------------------------------------------------

def content_survival(reference: torch.Tensor, reading: torch.Tensor) -> dict[str, float]:
    """How much of ``reference``'s content ``reading`` keeps; both (B, 6) colour slots.

    Returns the fractions of the reference's objects (present colour slots) whose colour is
    present in the reading (``colour``), whose colour *and* shape match (``shape``), whose
    colour and size match (``size``), and that match exactly (``object``); ``scene`` is the
    fraction of rows read exactly (nothing missing, nothing added). Rows of ``reading`` with
    -1 (unreadable) keep nothing.
    """
    if reference.shape != reading.shape or reference.dim() != 2:
        raise ValueError(f"reference and reading must both be (B, 6), got {tuple(reference.shape)} "
                         f"and {tuple(reading.shape)}")
    present = reference > 0
    n = int(present.sum())
    if n == 0:
        raise ValueError("the reference has no objects")
    ok = reading >= 0
    got = (reading > 0) & ok
    _, shape_ref, size_ref = split_slots(reference)
    _, shape_r, size_r = split_slots(reading)  # compared only where both hold an object
    frac = lambda m: float((m & present).sum()) / n  # noqa: E731
    return {"colour": frac(got), "shape": frac(got & (shape_r == shape_ref)), "size": frac(got & (size_r == size_ref)),
            "object": frac(got & (reading == reference)),
            "scene": float((ok.all(1) & (reading == reference).all(1)).float().mean())}


# -- which source and target styles transfer well (chapter 11) -----------------------------------

@dataclass
class StylePairTable:
    """What :func:`style_pair_table` measured: rows are source styles, columns target styles."""

    survival: torch.Tensor  # (S, S) share of the source's objects read back exactly in the final picture
    style: torch.Tensor  # (S, S) share of final pictures the judge calls the target style
    style_score: torch.Tensor  # (S, S) the judge's mean probability of the target style
    sentence: torch.Tensor  # (S,) per source style: share of objects the parser reads in S's sentence
    ceiling: torch.Tensor  # (S,) per target style: the attribute judge on the real render of the scene in it
    objects: torch.Tensor  # (S, S) objects counted per cell
    per_cell: int
    source_style: torch.Tensor  # (P,) per pair
    target_style: torch.Tensor  # (P,)
    truth: torch.Tensor  # (P, 6) the source scenes' colour slots
    output: Any = None  # the pipeline's output for all P pairs (pictures, sentences, readings)

    def as_dict(self) -> dict[str, Any]:
        """The tables as nested lists (for a JSON record)."""
        return {k: getattr(self, k).tolist() for k in ("survival", "style", "style_score", "sentence", "ceiling", "objects")} \
            | {"per_cell": self.per_cell, "styles": list(STYLES)}


@torch.no_grad()
def style_pair_table(pipe: Callable, *, per_cell: int, seed: int = 0, attribute_judge: nn.Module | None = None) -> StylePairTable:
    """Runs ``pipe`` (a :class:`~spokenstyle.pipeline.SpokenStylePipeline`, or anything called the
    same way) on every ordered pair of the six styles, ``per_cell`` test scenes per pair, and
    measures each pair end to end: the content that survives (:func:`content_survival`, objects
    read exactly in the final picture) and the style the judge reads.

    Every cell sees the *same* ``per_cell`` source scenes (drawn in the cell's source style) and
    the same target scenes (drawn in its target style), so two cells differ only in their styles,
    not in which scenes they happened to draw (common random numbers). Sources are the even
    seeds of test stretch ``seed``, targets the odd ones. ``ceiling`` is what ``attribute_judge``
    (default the pipeline's) reads in the real render of the source scene in the target style.
    """
    if not isinstance(per_cell, int) or isinstance(per_cell, bool) or per_cell < 1:
        raise ValueError(f"per_cell must be a positive int, got {per_cell!r}")
    n_styles = len(STYLES)
    cell = torch.arange(n_styles * n_styles).repeat_interleave(per_cell)  # (P,) pair by pair
    source_style, target_style = cell // n_styles, cell % n_styles
    j = torch.arange(len(cell)) % per_cell  # which of the per_cell scenes
    start = seed_range("test").start + 2 * per_cell * seed
    scenes, targets = sample_scenes(start + 2 * j), sample_scenes(start + 2 * j + 1)
    out = pipe(render(scenes, source_style, 64), render(targets, target_style, 64), seed=seed,
               source_style=source_style, target_style=target_style)
    truth = scenes.colour_slots()
    reader = attribute_judge if attribute_judge is not None else (getattr(pipe, "attribute_judge", None) or pipe.judge)
    unique = sample_scenes(start + 2 * torch.arange(per_cell))
    shape = (n_styles, n_styles)
    survival, style, score, objects = torch.zeros(shape), torch.zeros(shape), torch.zeros(shape), torch.zeros(shape)
    for a in range(n_styles):
        for b in range(n_styles):
            m = (source_style == a) & (target_style == b)
            survival[a, b] = content_survival(truth[m], out.fused_slots[m])["object"]
            style[a, b] = (out.fused_style[m] == b).float().mean()
            score[a, b] = out.style_scores[m].float().mean()
            objects[a, b] = (truth[m] > 0).sum()
    sentence = torch.tensor([content_survival(truth[source_style == a], out.sentence_slots[source_style == a])["object"]
                             for a in range(n_styles)])
    ceiling = torch.tensor([content_survival(unique.colour_slots(), read_scene(reader, render(unique, b, 64))[1])["object"]
                            for b in range(n_styles)])
    return StylePairTable(survival, style, score, sentence, ceiling, objects, per_cell, source_style, target_style,
                          truth, out)


@torch.no_grad()
def photo_source_table(pipe: Callable, *, per_style: int, seed: int = 0) -> dict[str, Any]:
    """Held-out photo patches as sources (``per_style`` for each target style, the target a test
    scene drawn in it): what the judge reads in the final picture (``style``, per target style),
    how many sentences name at least one object the parser can read (``names_objects``), how many
    of the objects a sentence names the final picture shows (``said_to_drawn``, the sentence as the
    reference: a photo has no ground truth in our vocabulary), the same for scene sources when
    given, and the output for the pictures."""
    if not isinstance(per_style, int) or isinstance(per_style, bool) or per_style < 1:
        raise ValueError(f"per_style must be a positive int, got {per_style!r}")
    n_styles = len(STYLES)
    n = per_style * n_styles
    photos = PhotoPatches("test", 64, length=n * (seed + 1)).batch(range(n * seed, n * (seed + 1)))["image"]
    target_style = torch.arange(n) % n_styles
    targets = sample_scenes(seed_range("test").start + 60_000 + n * seed + torch.arange(n))
    out = pipe(photos, render(targets, target_style, 64), seed=seed, target_style=target_style)
    said = out.sentence_slots
    readable = (said >= 0).all(1)
    names = readable & (said > 0).any(1)
    drawn = content_survival(said[names], out.fused_slots[names])["object"] if bool(names.any()) else float("nan")
    style = torch.tensor([(out.fused_style[target_style == b] == b).float().mean() for b in range(n_styles)])
    return {"style": style, "names_objects": float(names.float().mean()), "readable": float(readable.float().mean()),
            "said_to_drawn": drawn, "per_style": per_style, "target_style": target_style, "photos": photos,
            "output": out}


# -- evaluating the evaluation (chapter 11) ------------------------------------------------------

RESIZE_METHODS: dict[str, str] = {
    "pil_bicubic": "PIL's bicubic filter, antialiased (its support widens with the factor), on float pixels",
    "bilinear": "torch.nn.functional.interpolate, bilinear, antialias=False: aliased when shrinking",
    "nearest": "torch.nn.functional.interpolate, nearest: one pixel per output pixel, the most aliased",
    "area": "torch.nn.functional.interpolate, area: the mean of each input block (what FeatureNet does)",
}


def resize_images(images: torch.Tensor, size: int, method: str = "pil_bicubic") -> torch.Tensor:
    """(B, 3, H, W) pictures in [0, 1] resized to (B, 3, size, size) by one of :data:`RESIZE_METHODS`.

    ``"pil_bicubic"`` resizes each channel as a float image (PIL mode ``F``), as clean-fid does, so
    no 8-bit rounding enters (Parmar et al. 2022 recommend PIL's antialiased filters); the
    tensor methods are what a training loop often does on the fly.
    """
    images = check_unit_images(images, "images")
    if not isinstance(size, int) or isinstance(size, bool) or not 1 <= size <= 4096:
        raise ValueError(f"size must be an int from 1 to 4096, got {size!r}")
    if method not in RESIZE_METHODS:
        raise ValueError(f"method must be one of {sorted(RESIZE_METHODS)}, got {method!r}")
    if method == "pil_bicubic":
        x = images.detach().float().cpu().numpy()
        out = np.stack([[np.asarray(Image.fromarray(channel, mode="F").resize((size, size), Image.BICUBIC))
                         for channel in picture] for picture in x])
        return torch.from_numpy(out).clamp(0, 1)  # bicubic overshoots a little at sharp edges
    kwargs = {"align_corners": False, "antialias": False} if method == "bilinear" else {}
    return F.interpolate(images.float(), size=(size, size), mode=method, **kwargs).clamp(0, 1)


@torch.no_grad()
def resize_comparison(images: torch.Tensor, others: torch.Tensor, *, extractor: FeatureNet | None = None,
                      size: int = 32, reference: str = "pil_bicubic",
                      methods: Sequence[str] = ("bilinear", "nearest", "area")) -> dict[str, float]:
    """How much the resizing filter alone moves FD (Parmar et al. 2022, clean-fid).

    ``images`` are resized to ``size`` with ``reference`` and with each of ``methods``; the FD
    between the two versions of the *same* pictures is ``{method: FD}``. ``"real_vs_real"`` is
    the FD between ``images`` and ``others`` (other pictures of the same kind, as many), both
    resized with ``reference``: the sampling noise the filter's effect should be compared with.
    """
    images, others = check_unit_images(images, "images"), check_unit_images(others, "others")
    if images.shape[0] != others.shape[0]:
        raise ValueError(f"images and others must hold as many pictures, got {images.shape[0]} and {others.shape[0]}")
    extractor = extractor if extractor is not None else feature_extractor(weights="features")
    ref = extract_features(extractor, resize_images(images, size, reference))
    out = {m: frechet_distance(ref, extract_features(extractor, resize_images(images, size, m))) for m in methods}
    out["real_vs_real"] = frechet_distance(ref, extract_features(extractor, resize_images(others, size, reference)))
    return out


@torch.no_grad()
def discriminator_features(D: nn.Module, images: torch.Tensor, *, batch_size: int = 500) -> torch.Tensor:
    """A DCGAN discriminator's own features of [0, 1] pictures: its last feature map (the input of
    its final 4 × 4 convolution; the φ of the projection discriminator) averaged over space,
    (N, C) on the CPU, in eval mode. The same for an unconditional and a class-conditional D: the
    class only enters after this map. Scoring a generator here measures it with the very network
    it was trained to fool (chapter 11 shows how easily that is gamed)."""
    images = check_unit_images(images, "images")
    net = getattr(D, "net", None)
    if not isinstance(net, nn.Sequential) or not isinstance(net[-1], nn.Conv2d):
        raise TypeError(f"D must be a spokenstyle.models.dcgan.Discriminator, got {type(D).__name__}")
    was_training = D.training
    D.eval()
    device = next(D.parameters()).device
    try:
        out = [net[:-1](chunk.to(device) * 2 - 1).mean((2, 3)).float().cpu() for chunk in images.split(batch_size)]
    finally:
        D.train(was_training)
    return torch.cat(out)


# -- style that misses its target (chapter 10) ---------------------------------------------------

@dataclass
class StyleReading:
    """What the scene judge reads in pictures that were asked for a style: the confusion matrix
    (``confusion[i, j]``: pictures asked for style i that the judge calls style j, counts), the
    share read in the asked-for style, and the content: the share of objects read back exactly."""

    confusion: torch.Tensor  # (n_styles, n_styles) int64 counts; rows = asked for, columns = read
    style_accuracy: float
    content_accuracy: float
    n: int

    def rates(self) -> torch.Tensor:
        """The confusion matrix with each asked-for row divided by its count (rows of zeros stay 0)."""
        return self.confusion.float() / self.confusion.sum(1, keepdim=True).clamp(min=1)

    def confused_with(self, style: str | int) -> dict[str, float]:
        """The styles that pictures asked for ``style`` are read as, with their shares, largest first."""
        row = self.rates()[int(style_ids(style, 1)[0])]
        return {STYLES[j]: float(row[j]) for j in row.argsort(descending=True).tolist() if row[j] > 0}


@torch.no_grad()
def read_styles(judge: nn.Module, images: torch.Tensor, target: torch.Tensor, slots: torch.Tensor, *,
                batch_size: int = 250) -> StyleReading:
    """The judge's reading of ``images`` (B, 3, H, W) in [0, 1], asked for styles ``target`` (B,)
    (ids) and holding the objects ``slots`` (B, 6): a :class:`StyleReading`."""
    images = check_unit_images(images, "images")
    B = images.shape[0]
    for name, t, dims in (("target", target, 1), ("slots", slots, 2)):
        if not isinstance(t, torch.Tensor) or t.dim() != dims or t.shape[0] != B or t.dtype.is_floating_point:
            raise ValueError(f"{name} must be an integer tensor with {dims} dimension(s) and {B} rows, got "
                             f"{tuple(t.shape) if isinstance(t, torch.Tensor) else type(t).__name__}")
    if int(target.min()) < 0 or int(target.max()) >= len(STYLES):
        raise ValueError(f"target style ids must lie in 0..{len(STYLES) - 1}")
    judge.eval()
    device = next(judge.parameters()).device
    styles, objects = [], []
    for x in images.split(batch_size):
        style_logits, slot_logits = judge(x.to(device))
        styles.append(style_logits.argmax(-1).cpu())
        objects.append(slot_logits.argmax(-1).cpu())
    read, pred = torch.cat(styles), torch.cat(objects)
    target, slots = target.cpu().long(), slots.cpu()
    S = len(STYLES)
    confusion = torch.bincount(target * S + read, minlength=S * S).view(S, S)
    present = slots > 0
    return StyleReading(confusion=confusion, style_accuracy=float((read == target).float().mean()),
                        content_accuracy=float(((pred == slots) & present).sum() / present.sum().clamp(min=1)), n=B)


def fusion_scenes(n: int, *, split: str = "validation", seed: int = 0, register: str = "spoken",
                  references: int = 1) -> dict[str, Any]:
    """The held-out inputs that :func:`evaluate_fusion` gives F, for experiments with its style
    input: ``texts`` (n sentences in ``register``), ``slots`` (n, 6), ``styles`` (n,) target ids
    (every style in turn) and ``references`` (n, 3, 64, 64): one scene in the target style per
    sentence (the same scenes as :func:`evaluate_fusion`'s), or (n, K, 3, 64, 64) with
    ``references`` = K > 1: K different scenes per sentence, the first of them that one."""
    if split not in ("test", "validation"):
        raise ValueError(f"split must be 'test' or 'validation', got {split!r}")
    for name, v, low in (("n", n, 1), ("references", references, 1), ("seed", seed, 0)):
        if not isinstance(v, int) or isinstance(v, bool) or v < low:
            raise ValueError(f"{name} must be an int >= {low}, got {v!r}")
    lo = seed_range(split).start
    seed_range(split).seeds(1, offset=2 * n * (seed + references) - 1)  # a clear error past the range's end
    seeds = lo + 2 * torch.arange(n) + 2 * seed * n  # evaluate_fusion's scenes; refs at the odd seeds
    scenes = sample_scenes(seeds)
    styles = torch.arange(n) % len(STYLES)
    refs = [render(sample_scenes(seeds + 1), styles, 64)]
    for k in range(1, references):  # further references: the odd seeds of the following stretches
        refs.append(render(sample_scenes(seeds + 1 + 2 * n * k), styles, 64))
    return {"texts": [caption(s, register, int(sd)) for s, sd in zip(scenes.specs(), seeds.tolist())],
            "slots": scenes.colour_slots(), "styles": styles,
            "references": refs[0] if references == 1 else torch.stack(refs, 1)}
