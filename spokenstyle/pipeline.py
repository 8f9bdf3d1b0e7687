"""The five steps of the source's algorithm (§3) as one call: ``SpokenStylePipeline``.

>>> from spokenstyle.pipeline import SpokenStylePipeline
>>> pipe = SpokenStylePipeline.from_pretrained()                       # doctest: +SKIP
>>> out = pipe("scene:7:flat", "scene:12:watercolour", seed=0)           # doctest: +SKIP
>>> out.sentence, out.style_scores, out.spoken_scores                    # doctest: +SKIP
>>> out.picture.save("spoken.png")                                       # doctest: +SKIP

The steps (source §3, as the book reads them; ``../shared/BOOK.md`` §2):

1. a **source** picture (content) and a **target** picture (style) come in; any input kind
   (paths, PIL images of any mode and size, arrays, tensors, ``"scene:SEED:STYLE"``) becomes
   a (B, 3, 64, 64) tensor in [0, 1] (:func:`spokenstyle.data.as_images`);
2. a GAN **generator re-generates** the source: the source says "生成一个与源图片风格相似的图片"
   (make a picture similar in style to the source). With a CycleGAN between styles A and B the
   pipeline sends a picture of A through A → B → A (and one of B through B → A → B): the source's
   content drawn again, in the source's style, by the trained generators. A source whose style
   no translator knows, or no translator at all, passes unchanged (*identity*), and the output
   says so per picture (``output.step2``);
3. the **captioner S** describes the re-generated picture in the spoken register (chapter 6;
   by default the unpaired adversarial captioner ``captioner_spoken``, the source's S trained
   against T; ``captioner_paired``, the upper bound trained on paired spoken captions, is an
   option);
4. the **fusion generator F** draws the sentence's content in the target's style (chapter 7),
   and :func:`spokenstyle.render.typeset` sets the sentence into the picture in the target's
   palette;
5. **judges**: a classifier trained on real renders only (the shipped ``features`` network, or a
   :class:`~spokenstyle.models.judge.SceneJudge`) scores whether F's picture is in the target's
   style, and the critic T scores whether the sentence is genuinely spoken.

Every intermediate is kept in :class:`SpokenStyleOutput`, together with three readings of the
content (what the judge sees in the source, what the parser reads in the sentence, what the
judge sees in F's picture) so that chapter 8 can follow the content through the language
bottleneck (:func:`spokenstyle.evaluation.content_survival`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import torch
from torch import nn

from . import budgets, checkpoints, render, runtime
from .data import STYLES, as_images, sentence_slots, slots_to_text
from .data.tokenizer import encode_captions
from .models.captioner import Captioner, caption_images
from .models.critic import TextClassifier
from .models.cyclegan import CycleGAN
from .models.fusion import fuse, load_fusion
from .models.judge import load_judge, read_scene

__all__ = [
    "TRAIN_COMMANDS",
    "SpokenStyleOutput",
    "SpokenStylePipeline",
]

# what `spokenstyle train ...` makes each shipped component (for the error of from_pretrained)
TRAIN_COMMANDS: dict[str, str] = {
    "captioner_spoken": "spokenstyle train captioner --profile full --out spokenstyle/shipped/checkpoints",
    "captioner_paired": "spokenstyle train captioner --profile full --out spokenstyle/shipped/checkpoints",
    "critic": "spokenstyle train captioner --profile full --out spokenstyle/shipped/checkpoints",
    "fusion": "spokenstyle train fusion --profile full --seed 1 --out spokenstyle/shipped/checkpoints/fusion && "
              "spokenstyle train fusion_layout --profile full --out spokenstyle/shipped/checkpoints/fusion",
    "features": "spokenstyle train features --profile full --out spokenstyle/shipped/checkpoints/features",
    "judge": "spokenstyle train judge --profile full --out spokenstyle/shipped/checkpoints/judge",
}


def _style_ids(style: Any, n: int, name: str = "target_style") -> torch.Tensor | None:
    if style is None:
        return None
    items = list(style) if isinstance(style, (list, tuple, torch.Tensor)) else [style] * n
    if len(items) == 1:
        items = items * n
    if len(items) != n:
        raise ValueError(f"{name} has {len(items)} entries for {n} pairs")
    out = []
    for s in items:
        s = s.item() if isinstance(s, torch.Tensor) else s
        if isinstance(s, str) and s in STYLES:
            out.append(STYLES.index(s))
        elif isinstance(s, int) and not isinstance(s, bool) and 0 <= s < len(STYLES):
            out.append(s)
        else:
            raise ValueError(f"{name} must be a style name {STYLES} or id, got {s!r}")
    return torch.tensor(out)


# -- the output --------------------------------------------------------------------------------

@dataclass
class SpokenStyleOutput:
    """Every intermediate of one pipeline call (B pairs).

    Attributes:
        source, target: step 1, (B, 3, 64, 64) in [0, 1].
        regenerated: step 2, the source re-generated by the GAN translator (or unchanged).
        step2: per pair, what step 2 did ("cyclegan_flat_neon: flat→neon→flat" or "identity …").
        sentences: step 3, S's spoken sentence for each pair.
        tokens: (B, L) the sentences' token ids (:func:`spokenstyle.data.encode_captions`: what the critic reads).
        fused: step 4, F's picture of the sentence in the target's style, (B, 3, 64, 64).
        pictures: step 4, the composed pictures (PIL, RGB): ``fused`` with the sentence set in.
        target_style: (B,) the style id the fused picture should have (given, or the judge's
            reading of the target).
        style_scores: step 5, (B,) the judge's probability that ``fused`` is in ``target_style``.
        fused_style: (B,) the style the judge reads in ``fused``.
        spoken_scores: step 5, (B,) the critic T's probability that the sentence is genuine spoken.
        source_slots, sentence_slots, fused_slots: (B, 6) the content read from the source (judge),
            the sentence (parser; -1 = unreadable) and the fused picture (judge).
        components: which model did each step (checkpoint names, or "random init" / "identity").
        seed: the seed of the random draws in steps 3 (when S samples) and 4.
    """

    source: torch.Tensor
    target: torch.Tensor
    regenerated: torch.Tensor
    step2: list[str]
    sentences: list[str]
    tokens: torch.Tensor
    fused: torch.Tensor
    pictures: list[Any]
    target_style: torch.Tensor
    style_scores: torch.Tensor
    fused_style: torch.Tensor
    spoken_scores: torch.Tensor
    source_slots: torch.Tensor
    sentence_slots: torch.Tensor
    fused_slots: torch.Tensor
    components: dict[str, str] = field(default_factory=dict)
    seed: int = 0

    def __len__(self) -> int:
        return len(self.sentences)

    def _one(self, what: str) -> int:
        if len(self) != 1:
            raise ValueError(f"`.{what}` is for one pair; this output holds {len(self)}: use `.{what}s[i]`")
        return 0

    @property
    def sentence(self) -> str:
        """The sentence of a one-pair output."""
        return self.sentences[self._one("sentence")]

    @property
    def picture(self) -> Any:
        """The composed picture (PIL) of a one-pair output."""
        return self.pictures[self._one("picture")]

    def summary(self, i: int = 0) -> dict[str, Any]:
        """Pair ``i`` as plain JSON-ready values (what ``spokenstyle run --json`` prints)."""
        return {"sentence": self.sentences[i], "step2": self.step2[i],
                "target_style": STYLES[int(self.target_style[i])], "fused_style": STYLES[int(self.fused_style[i])],
                "style_score": round(float(self.style_scores[i]), 4),
                "spoken_score": round(float(self.spoken_scores[i]), 4),
                "source_content": slots_to_text(self.source_slots[i]),
                "sentence_content": slots_to_text(self.sentence_slots[i]),
                "fused_content": slots_to_text(self.fused_slots[i]),
                "components": dict(self.components), "seed": self.seed}


# -- the pipeline ------------------------------------------------------------------------------

def _name(module: Any, default: str = "random init") -> str:
    """A component's display name: where it was loaded from, if the loader said so."""
    path = getattr(module, "checkpoint_path", None)
    return Path(path).name if path else default


class SpokenStylePipeline:
    """The five steps of source §3 in one ``__call__``; see the module docstring.

    ``__init__`` only registers components, so tests and chapters can pass small randomly
    initialised ones; :meth:`from_pretrained` loads the shipped checkpoints.

    Args:
        captioner: S, a :class:`~spokenstyle.models.captioner.Captioner` (step 3).
        fusion: F, the fusion generator (step 4), called as ``fuse_fn(fusion, sentences,
            style_images, seed=seed)``.
        judge: the style judge (step 5): a :class:`~spokenstyle.models.features.FeatureNet`
            or a :class:`~spokenstyle.models.judge.SceneJudge`, trained on real renders only.
        critic: T, a one-logit :class:`~spokenstyle.models.critic.TextClassifier` (step 5).
        attribute_judge: optional judge that reads the *content* (colour slots) of the source and
            of F's picture, e.g. the :class:`~spokenstyle.models.judge.SceneJudge` that scored F in
            chapter 7; default: ``judge``.
        translators: step 2: ``None`` (identity), a mapping ``{(style_a, style_b): CycleGAN}``,
            or one callable ``images -> images`` ([0, 1] in and out) applied to every source.
        fuse_fn: how F is called; default :func:`spokenstyle.models.fusion.fuse`.
        names: display names of the components (``{"captioner": "captioner_spoken", ...}``).
        decoding: how S writes; default chapter 6's headline decoding, beam search over 8
            hypotheses (budget ``captioner_eval``: the most likely sentence, true of its picture
            far more often than a sampled one). ``{"method": "sample", "temperature": 0.7}``
            varies the wording from seed to seed instead.
    """

    def __init__(self, captioner: nn.Module, fusion: Any, judge: nn.Module, critic: nn.Module, *,
                 attribute_judge: nn.Module | None = None, translators: Any = None, fuse_fn: Callable | None = None,
                 names: dict[str, str] | None = None, decoding: dict[str, Any] | None = None) -> None:
        if not isinstance(captioner, Captioner):
            raise TypeError(f"captioner must be a Captioner, got {type(captioner).__name__}")
        for label, module in (("judge", judge), ("critic", critic), ("attribute_judge", attribute_judge)):
            if label == "attribute_judge" and module is None:
                continue
            if not isinstance(module, nn.Module):
                raise TypeError(f"{label} must be a torch.nn.Module, got {type(module).__name__}")
        if getattr(getattr(critic, "config", None), "n_outputs", 1) != 1:
            raise ValueError("critic must be a one-logit text classifier (T), not a reader")
        if translators is not None and not (isinstance(translators, dict) or callable(translators)):
            raise TypeError("translators must be None, a {(style_a, style_b): CycleGAN} mapping or a callable")
        self.captioner, self.fusion, self.judge, self.critic = captioner, fusion, judge, critic
        self.attribute_judge = attribute_judge
        self.translators = translators
        self.fuse_fn = fuse_fn or fuse
        self.decoding = dict(decoding or budgets.lookup("captioner_eval", "full").decoding)
        self.names = {"captioner": _name(captioner), "fusion": _name(fusion), "judge": _name(judge),
                      "critic": _name(critic),
                      "attribute_judge": _name(attribute_judge) if attribute_judge is not None else "the style judge",
                      **(names or {})}
        if "translator" not in self.names:
            if translators is None:
                self.names["translator"] = "identity (no translator given)"
            elif isinstance(translators, dict):
                self.names["translator"] = ", ".join(f"cyclegan_{a}_{b}" for a, b in translators) or "identity"
            else:
                self.names["translator"] = getattr(translators, "__name__", type(translators).__name__)

    # -- loading ---------------------------------------------------------------------------------
    @classmethod
    def from_pretrained(cls, device: str | torch.device | None = None, *, captioner: str | Path = "captioner_spoken",
                        fusion: str | Path = "fusion", judge: str | Path = "auto", critic: str | Path = "critic",
                        attribute_judge: str | Path | None = "auto",
                        translators: str | Sequence[str | Path] | None = "auto", **kwargs: Any) -> "SpokenStylePipeline":
        """The pipeline with the shipped checkpoints (each argument: a shipped name or a folder).

        ``captioner`` defaults to ``"captioner_spoken"``: the source's S, trained against the
        critic T on formal captions and an unpaired pile of spoken sentences (chapter 6, section
        8: with beam 8, 94.2 % of its spoken captions are true of their picture and all are
        spoken). ``captioner="captioner_paired"`` takes the upper bound instead, trained on
        paired spoken captions the unpaired setting does not have (96.0 % true).

        ``judge="auto"`` takes the shipped scene judge ``"judge"`` (chapter 5; it reads 64 px
        pictures) when there is one, else ``"features"``. Measured on 2,000 held-out renders, the
        ``features`` classifier reads the style of 32 px renders perfectly but of 64 px renders
        (area-downsampled to its 32 px) only 79 % of the time (textures drawn at 64 px differ
        from those drawn at 32 px), so on the pipeline's 64 px pictures the scene judge is the
        better ruler. ``attribute_judge="auto"`` reads content with the scene judge that scored F
        in chapter 7 (the one beside F's checkpoint if its recipe trained one, else the shipped
        ``"judge"``), else with ``judge``; ``None`` always uses ``judge``. ``translators="auto"`` takes every shipped ``cyclegan_<a>_<b>``
        checkpoint (none: step 2 is the identity, and the output says so); ``None`` forces the
        identity.

        Raises:
            CheckpointError: naming every missing checkpoint and the command that makes it.
        """
        dev = runtime.get_device(device)
        available = checkpoints.shipped()
        if judge == "auto":
            judge = "judge" if "judge" in available else "features"
        wanted = {"captioner": captioner, "fusion": fusion, "judge": judge, "critic": critic}
        missing = []
        for role, name in wanted.items():
            try:
                path = checkpoints.resolve(name)
            except checkpoints.CheckpointError:
                missing.append(f"{role}: {name!r} is not shipped (make it with "
                               f"`{TRAIN_COMMANDS.get(str(name), 'spokenstyle train ' + str(name))}`)")
                continue
            if not (path / checkpoints.MANIFEST).is_file():
                missing.append(f"{role}: no checkpoint at {name}")
        if missing:
            raise checkpoints.CheckpointError(
                "SpokenStylePipeline.from_pretrained needs checkpoints that are missing:\n  " + "\n  ".join(missing)
                + f"\nshipped now: {sorted(available) or 'none'}")
        S = Captioner.from_pretrained(captioner, device=dev)
        T = TextClassifier.from_pretrained(critic, device=dev)
        J = load_judge(judge, device=dev)
        Fz = load_fusion(fusion, device=dev)
        A, attr_name = None, "the style judge"
        if attribute_judge == "auto":
            own = checkpoints.resolve(fusion) / "judge"  # the judge a fusion recipe trained beside F, if any
            if (own / checkpoints.MANIFEST).is_file():
                A, attr_name = load_judge(own, device=dev), f"{Path(str(fusion)).name}/judge (scene judge)"
            elif "judge" in available:
                A, attr_name = load_judge("judge", device=dev), "judge (scene judge)"
        elif attribute_judge is not None:
            A, attr_name = load_judge(attribute_judge, device=dev), Path(str(attribute_judge)).name
        found: dict[tuple[str, str], Any] = {}
        if translators is not None:
            names = ([n for n in available if n.startswith("cyclegan_")] if translators == "auto"
                     else [translators] if isinstance(translators, (str, Path)) else list(translators))
            for n in names:
                parts = Path(str(n)).name.split("_")
                if len(parts) == 3 and parts[1] in STYLES and parts[2] in STYLES:
                    found[(parts[1], parts[2])] = CycleGAN.from_pretrained(n, device=dev)
                elif translators != "auto":
                    raise ValueError(f"translator {n!r} is not named cyclegan_<style>_<style>")
        names = {"captioner": Path(str(captioner)).name, "fusion": Path(str(fusion)).name,
                 "judge": Path(str(judge)).name, "critic": Path(str(critic)).name, "attribute_judge": attr_name,
                 "translator": ", ".join(f"cyclegan_{a}_{b}" for a, b in found)
                 or "identity (no CycleGAN checkpoint shipped)"}
        return cls(S, Fz, J, T, attribute_judge=A, translators=found or None, names=names, **kwargs)

    @property
    def device(self) -> torch.device:
        return next(self.captioner.parameters()).device

    def to(self, device: str | torch.device) -> "SpokenStylePipeline":
        """Moves every component to ``device``; returns the pipeline."""
        for module in (self.captioner, self.fusion, self.judge, self.critic, self.attribute_judge):
            if isinstance(module, nn.Module):
                module.to(device)
        if isinstance(self.translators, dict):
            for model in self.translators.values():
                model.to(device)
        elif isinstance(self.translators, nn.Module):
            self.translators.to(device)
        return self

    # -- step 2 ----------------------------------------------------------------------------------
    @torch.no_grad()
    def regenerate(self, source: torch.Tensor, source_style: torch.Tensor) -> tuple[torch.Tensor, list[str]]:
        """Step 2: (re-generated sources, what was done to each)."""
        n = source.shape[0]
        if self.translators is None:
            return source.clone(), ["identity (no translator)"] * n
        if not isinstance(self.translators, dict):
            out = self.translators(source.to(self.device)).float().cpu()
            if out.shape != source.shape:
                raise ValueError(f"the translator returned shape {tuple(out.shape)} for {tuple(source.shape)}")
            return out.clamp(0, 1), [f"{self.names['translator']}"] * n
        out, notes = source.clone(), [""] * n
        todo = torch.ones(n, dtype=torch.bool)
        for (a, b), model in self.translators.items():
            for s, there, back, other in ((a, "G_AB", "G_BA", b), (b, "G_BA", "G_AB", a)):
                rows = (todo & (source_style.cpu() == STYLES.index(s))).nonzero()[:, 0]  # one batch per direction
                if len(rows) == 0:
                    continue
                x = source[rows].to(self.device)
                out[rows] = getattr(model, back).translate(getattr(model, there).translate(x)).float().cpu()
                todo[rows] = False
                for i in rows.tolist():
                    notes[i] = f"cyclegan_{a}_{b}: {s}→{other}→{s}"
        for i in todo.nonzero()[:, 0].tolist():
            notes[i] = f"identity (no translator for style '{STYLES[int(source_style[i])]}')"
        return out, notes

    # -- the call --------------------------------------------------------------------------------
    @torch.no_grad()
    def __call__(self, source: Any, target: Any, *, seed: int = 0, target_style: Any = None,
                 source_style: Any = None, layout: str = "bubble", side: str = "auto",
                 return_dict: bool = True) -> SpokenStyleOutput | tuple:
        """Runs the five steps on B (source, target) pairs.

        Args:
            source, target: pictures in any form :func:`as_images` accepts; equal batch sizes,
                or one of them a single picture (paired with every picture of the other).
            seed: seeds F's noise (and S's words when its decoding samples): the same seed gives
                the same output.
            target_style: the style the result should have (name or id, one or one per pair);
                default: the style the judge reads in the target picture.
            source_style: the source's style (picks the step-2 translator); default: the style
                the judge reads in the source picture.
            layout: ``"bubble"`` or ``"band"`` (see :func:`spokenstyle.render.typeset`).
            side: where the bubble goes: ``"auto"`` (the side with less drawn on it), ``"top"``
                or ``"bottom"``.
            return_dict: ``False`` returns ``(pictures, sentences)``.

        Returns:
            a :class:`SpokenStyleOutput` with every intermediate.
        """
        runtime.check_seed(seed)
        if layout not in render.LAYOUTS:
            raise ValueError(f"layout must be one of {render.LAYOUTS}, got {layout!r}")
        if side not in render.BUBBLE_SIDES:
            raise ValueError(f"side must be one of {render.BUBBLE_SIDES}, got {side!r}")
        # 1. the source (content) and the target (style)
        src = as_images(source, name="source")
        tgt = as_images(target, name="target")
        if src.shape[0] != tgt.shape[0]:
            if src.shape[0] == 1:
                src = src.expand(tgt.shape[0], -1, -1, -1).clone()
            elif tgt.shape[0] == 1:
                tgt = tgt.expand(src.shape[0], -1, -1, -1).clone()
            else:
                raise ValueError(f"got {src.shape[0]} sources and {tgt.shape[0]} targets; give as many of each, "
                                 "or a single source or target")
        n = src.shape[0]
        attr_judge = self.attribute_judge if self.attribute_judge is not None else self.judge
        src_probs, src_slots = read_scene(self.judge, src)
        if attr_judge is not self.judge:
            src_slots = read_scene(attr_judge, src)[1]
        tgt_probs, _ = read_scene(self.judge, tgt)
        wanted = _style_ids(target_style, n)
        wanted = tgt_probs.argmax(-1) if wanted is None else wanted
        src_style = _style_ids(source_style, n, "source_style")
        src_style = src_probs.argmax(-1) if src_style is None else src_style

        # 2. a GAN generator re-generates the source, in the source's style
        regenerated, step2 = self.regenerate(src, src_style)

        # 3. the captioner S says what it sees, in the spoken register
        sentences, _ = caption_images(self.captioner, regenerated, "spoken", seed=seed, **self.decoding)
        tokens = encode_captions(sentences)  # what T reads: the sentence as written, as in chapter 6's metrics

        # 4. F draws the sentence in the target's style; the sentence is typeset in its palette
        # F draws what a sentence says; a sentence with no words (S may stop at once) says nothing,
        # so F gets a filler that names no object
        said = [s if s.strip() else "hmm" for s in sentences]
        fused = self.fuse_fn(self.fusion, said, tgt.to(_device_of(self.fusion, self.device)), seed=seed)
        if not isinstance(fused, torch.Tensor) or fused.dim() != 4 or fused.shape[:2] != (n, 3):
            raise ValueError(f"F returned {getattr(fused, 'shape', type(fused).__name__)}; expected ({n}, 3, H, W)")
        fused = fused.detach().float().cpu().clamp(0, 1)
        pictures = [render.typeset(fused[i], sentences[i], layout=layout, side=side, palette_from=tgt[i]) for i in range(n)]

        # 5. the judge scores the style, the critic T how spoken the sentence is
        fused_probs, fused_slots = read_scene(self.judge, fused)
        if attr_judge is not self.judge:
            fused_slots = read_scene(attr_judge, fused)[1]
        style_scores = fused_probs.gather(1, wanted[:, None])[:, 0]
        max_len = getattr(getattr(self.critic, "config", None), "max_len", tokens.shape[1])
        critic_device = next(self.critic.parameters()).device
        was_training = self.critic.training
        self.critic.eval()
        spoken = torch.sigmoid(self.critic(tokens[:, :max_len].to(critic_device)).float()).cpu()
        self.critic.train(was_training)

        out = SpokenStyleOutput(
            source=src, target=tgt, regenerated=regenerated, step2=step2, sentences=sentences, tokens=tokens,
            fused=fused, pictures=pictures, target_style=wanted, style_scores=style_scores,
            fused_style=fused_probs.argmax(-1), spoken_scores=spoken, source_slots=src_slots,
            sentence_slots=sentence_slots(sentences), fused_slots=fused_slots, components=dict(self.names), seed=seed)
        return out if return_dict else (pictures, sentences)

    def __repr__(self) -> str:
        parts = ", ".join(f"{k}={v!r}" for k, v in self.names.items())
        return f"SpokenStylePipeline({parts}, device={self.device})"


def _device_of(module: Any, default: torch.device) -> torch.device:
    if isinstance(module, nn.Module):
        param = next(iter(module.parameters()), None)
        if param is not None:
            return param.device
    return default

