"""Sizes and steps of every experiment in the book, typed, with a ``fast`` and a ``full`` value.

Each experiment has a *row* in :data:`BUDGETS`: a :class:`Row` that holds two budgets of one
small frozen dataclass, ``fast`` (seconds on a laptop CPU, what CI runs; every notebook under
60 s on a 2-core CPU) and ``full`` (the training that reaches the book's targets, minutes on one
GPU), and a note that says why the numbers are what they are. A notebook or a recipe asks
:func:`spokenstyle.runtime.budget` (or ``rt.budget(name)``) for the row's budget in the current
profile and reads its fields (``b.steps``); it never writes a step count of its own.

``spokenstyle train MODEL --set ROW.FIELD=VALUE`` changes one field for one run
(:func:`parse_overrides`): the row must exist, the field must be one of the row's dataclass
fields and the value must have the field's type, so a typo fails loudly instead of training the
wrong model; the manifest records the command line, overrides included.

This module imports nothing from the package: :mod:`spokenstyle.runtime` decides the profile.
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from dataclasses import dataclass
from typing import Any, Iterable, Mapping

__all__ = [
    "PROFILES",
    "Budget",
    "Row",
    "BUDGETS",
    "row",
    "lookup",
    "apply_overrides",
    "parse_overrides",
    "DemoBudget",
    "FeaturesBudget",
    "DCGANBudget",
    "ValueBudget",
    "DStarBudget",
    "GradBudget",
    "RingBudget",
    "CollapseBudget",
    "RegisterProbeBudget",
    "JudgeBudget",
    "CaptionerStageBudget",
    "AdversarialBudget",
    "TextModelBudget",
    "CaptionerEvalBudget",
    "CycleGANBudget",
    "FusionBudget",
    "LayoutPriorBudget",
    "StylizationBudget",
    "FAQBudget",
    "ApplicationsBudget",
    "ChallengesBudget",
]

PROFILES = ("fast", "full")


# -- the base: a frozen dataclass whose fields are checked against their types -----------------

def _allowed(hint: Any) -> tuple[type, ...] | None:
    """The runtime types a field annotated ``hint`` accepts (None: anything)."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        out: tuple[type, ...] = ()
        for arg in typing.get_args(hint):
            allowed = _allowed(arg)
            if allowed is None:
                return None
            out += allowed
        return out
    if hint is type(None):
        return (type(None),)
    if hint is float:
        return (int, float)
    if hint in (int, str, bool):
        return (hint,)
    if origin in (tuple, list) or hint in (tuple, list):
        return (tuple, list)
    if origin is dict or hint is dict:
        return (dict,)
    return None


def _check_value(owner: str, name: str, hint: Any, value: Any) -> None:
    allowed = _allowed(hint)
    if allowed is None:
        return
    if isinstance(value, bool) and bool not in allowed:  # True is an int to Python, not to a budget
        raise TypeError(f"{owner}.{name} must be {_describe(hint)}, got {value!r}")
    if not isinstance(value, allowed):
        raise TypeError(f"{owner}.{name} must be {_describe(hint)}, got {value!r} ({type(value).__name__})")
    if isinstance(value, (int, float)) and not isinstance(value, bool) and value < 0:
        raise ValueError(f"{owner}.{name} must not be negative, got {value!r}")


def _describe(hint: Any) -> str:
    return getattr(hint, "__name__", None) or str(hint).replace("typing.", "")


@dataclass(frozen=True)
class Budget:
    """One experiment's sizes and steps in one profile. Subclasses declare typed fields; every
    value is checked against its field's type when the budget is made (``True`` is not an int,
    an int is a float, a list is stored as a tuple, no number is negative)."""

    def __post_init__(self) -> None:
        hints = typing.get_type_hints(type(self))
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            _check_value(type(self).__name__, f.name, hints[f.name], value)
            if isinstance(value, list):
                object.__setattr__(self, f.name, _freeze(value))

    def to_dict(self) -> dict[str, Any]:
        """The fields as a JSON-ready dict (what manifests and ``spokenstyle info`` show)."""
        return json.loads(json.dumps(dataclasses.asdict(self)))

    def replace(self, **changes: Any) -> "Budget":
        """A copy with some fields changed (checked like the original)."""
        unknown = sorted(set(changes) - {f.name for f in dataclasses.fields(self)})
        if unknown:
            raise KeyError(f"{type(self).__name__} has no field {unknown[0]!r}; its fields: {self.field_names()}")
        return dataclasses.replace(self, **changes)

    @classmethod
    def field_names(cls) -> list[str]:
        return [f.name for f in dataclasses.fields(cls)]


def _freeze(value: Any) -> Any:
    """Lists (from JSON) become tuples, so a budget stays hashable and immutable."""
    if isinstance(value, list):
        return tuple(_freeze(v) for v in value)
    return value


@dataclass(frozen=True)
class Row:
    """An experiment's two budgets and why they are what they are."""

    fast: Budget
    full: Budget
    note: str = ""

    def __post_init__(self) -> None:
        if type(self.fast) is not type(self.full):
            raise TypeError(f"a row's fast and full budgets must be of one type, got {type(self.fast).__name__} "
                            f"and {type(self.full).__name__}")

    def __getitem__(self, profile: str) -> Budget:
        if profile not in PROFILES:
            raise KeyError(f"unknown profile {profile!r}; expected one of {PROFILES}")
        return getattr(self, profile)

    @property
    def kind(self) -> type[Budget]:
        return type(self.fast)


# -- the budget types --------------------------------------------------------------------------

@dataclass(frozen=True)
class DemoBudget(Budget):
    steps: int
    batch_size: int


@dataclass(frozen=True)
class FeaturesBudget(Budget):
    steps: int
    batch_size: int
    pool: int  # rendered training images
    eval: int  # held-out test images
    lr: float


@dataclass(frozen=True)
class DCGANBudget(Budget):
    steps: int
    batch_size: int
    pool: int  # rendered training images
    eval: int  # samples (and real renders per set) for the metrics
    lr: float
    width: int  # G's width, and D's unless d_width is set
    resolution: int = 32
    style: str | None = None  # one style, or None for all six
    betas: tuple[float, float] = (0.5, 0.999)  # Adam's; the paper's
    loss: str = "non_saturating"  # a pair of spokenstyle.losses.GAN_LOSSES
    spectral_norm: bool = False
    ema: float | None = None  # decay of the average of G's weights; None: no average
    lr_decay: bool = False
    curve_every: int = 0  # steps between the FD measurements of the manifest's fd_curve (0: none)
    snapshot_every: int = 0  # steps between the sample grids of chapter 4's animation (0: none)
    d_width: int = 0  # D's width; 0: the same as G's (``width``)
    n_classes: int = 0  # 0: unconditional; 6: conditioned on the style (conditional BatchNorm in G, projection D)
    augment: str = ""  # a DiffAugment policy ("translation,color"); "": none (spokenstyle.augment)
    ada_target: float = 0.0  # > 0: ADA's adaptive probability for the augment policy, with this target r
    ada_speed: int = 100_000  # real pictures for ADA's p to go from 0 to 1
    r1: float = 0.0  # weight of the R1 penalty on the real pictures
    d_lr: float = 0.0  # D's learning rate; 0: ``lr`` (two time-scales, Heusel et al. 2017: D faster than G)
    init: str = ""  # a checkpoint (shipped name or folder) to fine-tune instead of DCGAN's random init
    keep: str = "last"  # "last": ship the final average of G; "best_val": the average at the curve step of lowest FD on validation scenes


@dataclass(frozen=True)
class ValueBudget(Budget):
    samples: int  # Monte-Carlo samples of V(D, G)


@dataclass(frozen=True)
class DStarBudget(Budget):
    steps: int
    batch_size: int


@dataclass(frozen=True)
class GradBudget(Budget):
    steps: int
    batch_size: int
    probe_size: int
    record_every: int


@dataclass(frozen=True)
class RingBudget(Budget):
    steps: int
    batch_size: int
    hidden: int
    instance_noise: float
    frames: int
    log_every: int
    eval_samples: int


@dataclass(frozen=True)
class CollapseBudget(Budget):
    steps: int


@dataclass(frozen=True)
class RegisterProbeBudget(Budget):
    parse_n: int  # captions per register for the parser check
    bow_train: int  # captions per register to train the bag-of-words classifier
    bow_test: int


@dataclass(frozen=True)
class JudgeBudget(Budget):
    steps: int
    batch_size: int
    lr: float
    width: int
    eval: int  # held-out scenes per style


@dataclass(frozen=True)
class CaptionerStageBudget(Budget):
    steps: int
    batch_size: int
    n_train: int  # training scenes (pictures with formal captions)
    lr: float
    n_pile: int = 0  # sentences of the unpaired spoken pile


@dataclass(frozen=True)
class AdversarialBudget(Budget):
    steps: int
    batch_size: int
    n_gz: int  # generator samples G(z) per step
    n_train: int
    n_pile: int
    critic_warmup: int  # steps in which only T trains
    tau: float  # Gumbel-softmax temperature
    lambda_adv: float
    lambda_ground: float
    lambda_mle: float
    lr_s: float
    lr_t: float


@dataclass(frozen=True)
class TextModelBudget(Budget):
    steps: int
    batch_size: int
    n_sentences: int
    lr: float


@dataclass(frozen=True)
class CaptionerEvalBudget(Budget):
    n_test: int
    decoding: dict  # the headline decoding, keyword arguments of Captioner.generate
    sampling: dict  # the sampled decoding scored beside it (distinct-n needs variation)


@dataclass(frozen=True)
class CycleGANBudget(Budget):
    steps: int
    batch_size: int
    lr: float
    g_width: int
    n_blocks: int
    d_width: int
    resolution: int
    eval: int  # held-out test scenes (patches) scored per direction
    warmup: int = 0  # steps over which the cycle and identity weights ramp up (0: the reference)
    ema: float = 0.0  # decay of the generators' weight average (0: none)
    position: int = 0  # learned position channels (CycleGANConfig.position)
    cycle_noise: float = 0.0
    n_down: int = 2
    d_layers: int = 3
    residual: bool = True
    lambda_identity: float = 0.5
    filter: str | None = None  # cyclegan_photo: the painterly filter of domain B
    pair: tuple[str, str] | None = None  # cyclegan_demo: the styles it translates between
    snapshot_every: int = 0  # cyclegan_demo: steps between animation frames
    # chapter 11's ablation (benchmarks/translator_ablation.py); the defaults are the shipped recipe
    lambda_cycle: float = 10.0  # λ of the cycle L1 (CycleGANConfig.lambda_cycle); 0 with lambda_nce > 0: CUT
    skip: bool = False  # U-Net skip connections in the generators (CycleGANConfig.skip)
    lambda_nce: float = 0.0  # PatchNCE weight (CycleGANConfig.lambda_nce; CUT uses 1)
    lambda_small: float = 0.0  # small-object-weighted L1 of a translation to its source (CycleGANConfig.lambda_small)


@dataclass(frozen=True)
class FusionBudget(Budget):
    steps: int
    batch_size: int
    lr: float
    width: int  # FusionConfig.g_width
    d_width: int
    lambda_rec: float
    lambda_adv: float
    eval: int
    width_64: int = 12
    rec_pool: int = 1
    style_norm: bool = False
    occupancy_calibration: float = 1.0
    noise: bool = False
    d_lr_scale: float = 1.0
    refine_steps: int = 0  # the second, slower phase (recipes.fusion.refine_budget); 0: none
    refine_lr: float = 0.0
    refine_ema: float = 0.0
    per_style: int = 0  # fusion_demo: held-out scenes per target style


@dataclass(frozen=True)
class LayoutPriorBudget(Budget):
    steps: int
    batch_size: int
    lr: float
    eval: int  # held-out sentences whose relations score the run (validation and test)
    base: str = "fusion"  # the F whose layout prior is trained: a shipped name or a checkpoint folder


@dataclass(frozen=True)
class StylizationBudget(Budget):
    steps: int
    lr: float
    n: int  # pictures restyled per pair
    width: int  # RandomFeatures channels
    eval: int  # scenes that score the shipped CycleGANs
    probe: int  # real renders for the judge and discriminator probes
    pairs: tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class ApplicationsBudget(Budget):
    scenes: int  # held-out scenes: the round trip picture -> words -> picture, and the retrieval pool
    trials: int  # retrieval queries per candidate-set size N
    patches: int  # held-out photo patches per painter manner
    steps: int  # Gram / AdaIN optimisation steps per picture
    lr: float
    width: int  # RandomFeatures channels of the Gram / AdaIN baselines
    judge_eval: int  # held-out patches per manner that score the painter judge (its ceiling)


@dataclass(frozen=True)
class FAQBudget(Budget):
    pairs_per_cell: int  # test scenes per (source style, target style) pair through the pipeline
    photos: int  # photo sources per target style
    fd_sizes: tuple[int, ...]  # the N of the FD-against-1/N curve
    fd_repeats: int  # random subsets per N
    fd_real: int  # real renders in each of the two real sets (>= the largest N)
    fake_pool: int  # DCGAN samples drawn (the FD curve's fakes, and the pool that is resampled)
    resize_n: int  # pictures resized two ways
    prdc_n: int  # pictures per set for precision/recall/density/coverage
    gaming_n: int  # samples chosen from the pool to match a feature space
    ablation_eval: int  # validation scenes per direction that score the translator variants


@dataclass(frozen=True)
class ChallengesBudget(Budget):
    demo_steps: int  # steps of each of the notebook's own small conditional DCGAN runs (data scarcity)
    demo_width: int  # their G and D width
    demo_batch: int
    demo_pool: int  # the small training pool (the large one is demo_pool x demo_ratio)
    demo_ratio: int
    demo_probe: int  # real pictures (seen and unseen) on which D's mean output is measured
    demo_lr: float
    fusion_n: int  # validation scenes that F draws (every target style in turn)
    references: int  # K pictures of the target style whose mean style code F draws with
    strengths: tuple[float, ...]  # how far the style codes are pushed from the other styles
    translator_n: int  # validation scenes per translator direction
    stats_n: int  # real renders per style behind the target colour statistics
    ft_eval: int  # samples of the shipped conditional pair asked for comic: the FD fine-tuning starts from


# -- the table ---------------------------------------------------------------------------------

_CYCLEGAN_NOTE = (
    "`spokenstyle train cyclegan_<a>_<b>`: one CycleGAN-lite per style pair (recipes.cyclegan.PAIRS; unpaired "
    "sampling) at 64 px; eval = held-out test scenes scored per direction. full: the reference's batch 1 and lr "
    "2e-4, a residual generator with 4 learned position channels, the cycle/identity weights ramped up over the "
    "first `warmup` steps, and the shipped generators the average of their weights (ema; chapter 5 says why each "
    "is there and what each left in the shipped translators; no ablation has been run). flat_pixel edits at 2 px "
    "(n_down 1) against a 34 x 34 PatchGAN (d_layers 2). cycle_noise: off (0.1 broke both pairs: "
    "spokenstyle/shipped/benchmarks/cyclegan-runs-cpu.json, chapter 5). fast: the same switches at toy size. Width 32 for "
    "12,000 steps: on one CPU thread it kept 80/88 % (comic) and 78/86 % (pixel) of the objects, against 57/63 % "
    "and 66/80 % for width 16 at 6,000 steps (the record above); width 16 at 24,000 steps, the same time, kept "
    "81/67 % (comic). Not shipped either (the record): generators of width 48 kept 86/88 % (comic) and 72/71 % "
    "(pixel), and a second draw of the width-32 comic recipe 86/86 %, so runs of one recipe differ by up to 6 "
    "points. Cost of full on CPU: 0.34 to 0.40 s a step on one thread, 68 and 79 minutes (the manifests' "
    "train_seconds, both pairs at once on the 2-core machine). On a GPU (estimated, not measured): batch 1 at "
    "64 px is bound by kernel launches, roughly 10 ms a step, two minutes; tools/gpu_train.py sizes a GPU run to "
    "its time.")

BUDGETS: dict[str, Row] = {
    "demo": Row(
        DemoBudget(steps=60, batch_size=32),
        DemoBudget(steps=600, batch_size=256),
        "a tiny regression used by the runtime/train tests and the preface's demo"),
    "features": Row(
        FeaturesBudget(steps=60, batch_size=64, pool=1024, eval=512, lr=3e-3),
        FeaturesBudget(steps=4000, batch_size=128, pool=24000, eval=2000, lr=3e-3),
        "chapter 4: the metric feature extractor (a classifier of real renders); pool = rendered training images, "
        "eval = held-out test images. full: 4,000 steps (about 12 minutes of one CPU thread, seconds on a GPU). "
        "1,500 steps had left it undertrained: held-out shape accuracy 36 % and scene accuracy 18 %, against 80 % "
        "and 65 % after 4,000 steps of the same recipe"),
    "dcgan_one_style": Row(
        DCGANBudget(steps=300, batch_size=16, pool=2048, eval=500, lr=2e-3, width=16, resolution=32, style="flat",
                    snapshot_every=50),
        DCGANBudget(steps=3000, batch_size=64, pool=20000, eval=2000, lr=2e-4, width=32, resolution=32, style="flat",
                    snapshot_every=250),
        "chapter 4: DCGAN at 32 px on one style ('flat'), and the instructive failure (same budget); "
        "snapshot_every = steps between the sample grids of the training animation. fast: half the width, a "
        "quarter of the batch and 10x the paper's lr, so that 300 cheap CPU steps (about 15 CPU-seconds) already "
        "draw coloured blobs; full: the paper's lr"),
    "dcgan_all_styles": Row(
        DCGANBudget(steps=60, batch_size=32, pool=1024, eval=500, lr=1e-3, betas=(0.0, 0.9), loss="hinge",
                    spectral_norm=True, ema=0.9, lr_decay=True, width=32, resolution=32, style=None, curve_every=30),
        DCGANBudget(steps=24000, batch_size=64, pool=24000, eval=2000, lr=2e-4, betas=(0.0, 0.9), loss="hinge",
                    spectral_norm=True, ema=0.999, lr_decay=True, width=32, resolution=32, style=None,
                    curve_every=2000),
        "`spokenstyle train dcgan`: the shipped DCGAN, every style; fast = a smoke test of the recipe. full: D "
        "spectrally normalised (spectral_norm; D then has no BatchNorm, G keeps it) and the hinge loss with Adam "
        "betas (0.0, 0.9), as in Miyato et al. 2018; lr 2e-4 decayed linearly to 0 (lr_decay); an exponential "
        "moving average of G's weights (ema = its decay; the average is what is shipped). curve_every = steps "
        "between the FD measurements of the manifest's fd_curve. Cost: 24,000 steps took about 28 CPU-minutes on "
        "one thread. The previous shipment, the paper's D (BatchNorm) with the non-saturating loss and one-sided "
        "label smoothing, same steps and average, scored FD 131.9 (recall 0.09, no `flat` samples at all); this "
        "recipe 32.9 (recall 0.65, all six styles). benchmarks/dcgan_recipes.py compares the recipes at 6,000 "
        "steps side by side (spokenstyle/shipped/benchmarks/dcgan-recipes-cpu.json): FD paper 251.9, sn 79.8, sn_hinge 89.3; "
        "recall 0.19, 0.33, 0.51. An earlier pass of the same three with another seed gave FD 180.1, 100.9, 75.8 "
        "and recall 0.12, 0.34, 0.48: spectral normalisation is most of the FD, the hinge loss the extra recall. "
        "In that pass sn_hinge at 6,000 steps also scored FD 52.5 at lr 4e-4, 47.8 at 8e-4, and 63.4 at width 64 "
        "(3x the time), but over the full 24,000 steps lr 4e-4 ended at FD 33.7 (confident 45 %), and this command "
        "at lr 4e-4 (full, 1 thread, 28 min) at FD 44.6 for the average (its FD rose from 32.1 at step 18,000; G's "
        "own was 27.9), confident 41 %, KID 491 against 99: the budget keeps 2e-4. A GPU budget would rather buy a "
        "wider pair and several times the steps. The class-conditional pair of issue 36 (n_classes=6, "
        "augment=translation, this budget otherwise; about 62 minutes on one shared thread) was shipped beside it "
        "as dcgan_conditional, now dcgan_conditional_g32 (test FD 29.7, confident 51 %); the same with G twice as "
        "wide (width=64, d_width=32: 4,264 s against 3,708 s on one thread, 1.15x) replaced it (test FD 26.2, "
        "confident 52 %), and the same for twice the steps (steps=48000) on two threads (5,595 s) replaced that, "
        "chosen by its validation FD (benchmarks/dcgan_selection.py, spokenstyle/shipped/benchmarks/dcgan-selection-cpu.json): "
        "test FD 24.6, confident 59 %, the style read as asked in more than 97 % of every style's samples. Its own FD "
        "curve (test reference) was lowest at step 30,000 (22.4) and rose to 24.6 as its decaying learning rate "
        "ran out; with one run per recipe the gain cannot be split between the slower schedule and the run itself "
        "(two threads make another run). Two methods were then run as changes of the 24,000-step wide run on one "
        "thread: TTUR (lr=1e-4, d_lr=4e-4) ended at validation FD 57.0 (G's FD curve, test reference, was lowest at "
        "step 10,000 and D's loss ended at 0.65 against 1.15), R1 (r1=1.0) at 25.6 against 27.1 without it (one "
        "run each), 0.09 above the long run, so not chosen. R1 with the long schedule and keep=best_val (r1=1.0, "
        "steps=48000, keep=best_val; two threads, 5,995 s) then replaced the long run: kept step 32,000 of 48,000 "
        "(the lowest FD on a third set of validation renders), validation FD 19.3, test FD 19.9 (11.6x real vs "
        "real), confident 58 %. The same command with --seed 1 (two threads, 7,247 s) kept step 36,000: validation "
        "FD 20.2 (not chosen), test FD 19.0; two runs of one recipe land about a point apart. More seeds per "
        "recipe, to split the gain between R1, the schedule and the run, would be next."),
    "ch3_value": Row(ValueBudget(samples=200_000), ValueBudget(samples=1_000_000),
                     "chapter 3: Monte-Carlo samples for V(D, G)"),
    "ch3_dstar": Row(DStarBudget(steps=1000, batch_size=1024), DStarBudget(steps=2000, batch_size=8192),
                     "chapter 3: D trained against a fixed G (1-D), checked against D*"),
    "ch3_grad": Row(GradBudget(steps=300, batch_size=512, probe_size=4096, record_every=10),
                    GradBudget(steps=300, batch_size=512, probe_size=4096, record_every=10),
                    "chapter 3: D trained against G at initialisation, generator gradient norms every record_every"),
    "ch3_ring": Row(
        RingBudget(steps=1500, batch_size=256, hidden=48, instance_noise=1.0, frames=20, log_every=1,
                   eval_samples=5000),
        RingBudget(steps=3000, batch_size=256, hidden=64, instance_noise=1.0, frames=30, log_every=10,
                   eval_samples=20000),
        "chapter 3: the 2-D GANs on the 8-Gaussian ring, five seeds with instance noise and five without, "
        "trained as one stack (animated, modes counted). The arithmetic is the cost on a CPU (ten runs of 1,500 "
        "steps at width 64 are about 750 GFLOP), so fast narrows the MLPs to 48 (about 0.6 of it); fewer steps, "
        "a higher learning rate or smaller batches left the runs with noise short of the modes, depth 2 made "
        "the runs without noise collapse less often."),
    "ch3_collapse": Row(CollapseBudget(steps=1500), CollapseBudget(steps=1500),
                        "chapter 3: the ring GANs with and without instance noise (five seeds each), compared after "
                        "the same steps. The same in both profiles: in longer runs a collapsed G sometimes recovers, "
                        "sometimes not."),
    "ch1_register": Row(
        RegisterProbeBudget(parse_n=1000, bow_train=1500, bow_test=1000),
        RegisterProbeBudget(parse_n=10000, bow_train=10000, bow_test=5000),
        "chapter 1: captions per register for the parser check (parse_n), and the bag-of-words register "
        "classifier (bow_train / bow_test captions per register)"),
    "scenes_attr_classifier": Row(
        JudgeBudget(steps=80, batch_size=32, lr=3e-3, width=16, eval=100),
        JudgeBudget(steps=1500, batch_size=64, lr=3e-3, width=16, eval=500),
        "chapter 1 and benchmarks/judge_scenes.py: the scene judge (style + per-colour objects, "
        "spokenstyle.models.judge) trained on all styles at 64 px; eval = held-out scenes per style"),
    "captioner_perception": Row(
        CaptionerStageBudget(steps=8, batch_size=8, n_train=500, lr=3e-3),
        CaptionerStageBudget(steps=3000, batch_size=32, n_train=20000, lr=3e-3),
        "chapter 6 (spokenstyle.recipes.captioning): stage 1 of the captioner S, perception on the training "
        "pictures"),
    "captioner_mle": Row(
        CaptionerStageBudget(steps=8, batch_size=8, n_train=500, n_pile=500, lr=2e-3),
        CaptionerStageBudget(steps=4000, batch_size=32, n_train=20000, n_pile=20000, lr=2e-3),
        "chapter 6: stage 1 of S, the decoder on content (formal captions + the spoken pile)"),
    "captioner_paired": Row(
        CaptionerStageBudget(steps=4, batch_size=8, n_train=500, n_pile=500, lr=1e-3),
        CaptionerStageBudget(steps=1000, batch_size=32, n_train=20000, n_pile=20000, lr=1e-3),
        "chapter 6: the paired upper bound (stage 1 continued on paired spoken captions)"),
    "captioner_adv": Row(
        AdversarialBudget(steps=3, batch_size=4, n_gz=2, n_train=500, n_pile=500, critic_warmup=1, tau=1.0,
                          lambda_adv=1.0, lambda_ground=4.0, lambda_mle=2.0, lr_s=2e-4, lr_t=2e-4),
        AdversarialBudget(steps=600, batch_size=32, n_gz=8, n_train=20000, n_pile=20000, critic_warmup=50, tau=1.0,
                          lambda_adv=1.0, lambda_ground=4.0, lambda_mle=2.0, lr_s=2e-4, lr_t=2e-4),
        "chapter 6: stage 2, S against the critic T. lambda_mle 2.0 is the shipped run's (side runs with 0.5 were "
        "not recorded, so the book cites no figure for them). The lambda_adv = 0 control, everything else equal: "
        "`--set captioner_adv.lambda_adv=0.0`, recorded in benchmarks/captioner-control-runs-cpu.json."),
    "register_clf": Row(
        TextModelBudget(steps=30, batch_size=32, n_sentences=1000, lr=1e-3),
        TextModelBudget(steps=200, batch_size=64, n_sentences=10000, lr=1e-3),
        "chapter 6's instrument: the register classifier (measurement only)"),
    "register_lm": Row(
        TextModelBudget(steps=30, batch_size=32, n_sentences=1000, lr=2e-3),
        TextModelBudget(steps=800, batch_size=64, n_sentences=10000, lr=2e-3),
        "chapter 6's instrument: the spoken language model (perplexity)"),
    "captioner_reader": Row(
        CaptionerStageBudget(steps=30, batch_size=32, n_train=1000, n_pile=1000, lr=3e-3),
        CaptionerStageBudget(steps=4000, batch_size=64, n_train=20000, n_pile=20000, lr=3e-3),
        "chapter 6's attribute reader R"),
    "captioner_eval": Row(
        CaptionerEvalBudget(n_test=72, decoding={"method": "beam", "num_beams": 8},
                            sampling={"method": "sample", "temperature": 0.7}),
        CaptionerEvalBudget(n_test=1000, decoding={"method": "beam", "num_beams": 8},
                            sampling={"method": "sample", "temperature": 0.7}),
        "chapter 6: test pictures and how spoken captions are decoded: the headline `decoding` is beam 8, the "
        "most likely sentence (on the 1,000 test pictures the shipped stage 2 is true 94.2 % of the time with it, "
        "89.6 % with beam 4, 85.1 % sampled, 71.1 % greedy: benchmarks/captioner_decoding.py); `sampling` "
        "(T = 0.7) is scored beside it, because distinct-n means something only for a decoder that varies its "
        "wording"),
    "judge": Row(
        JudgeBudget(steps=20, batch_size=16, lr=3e-3, width=16, eval=20),
        JudgeBudget(steps=1200, batch_size=64, lr=3e-3, width=16, eval=300),
        "chapter 5: the shipped scene judge (`spokenstyle train judge`) that scores translations; eval = held-out "
        "scenes per style. full is sized for the CPU-trained shipment (about 11 CPU-minutes); chapter 1's "
        "1,500 x 64 is the longer run"),
    "cyclegan_flat_comic": Row(
        CycleGANBudget(steps=4, batch_size=2, lr=1e-3, warmup=2, ema=0.9, g_width=8, n_blocks=1, d_width=8,
                       position=4, cycle_noise=0.0, resolution=64, eval=16),
        CycleGANBudget(steps=12000, batch_size=1, lr=2e-4, warmup=1000, ema=0.999, g_width=32, n_blocks=3,
                       d_width=32, position=4, cycle_noise=0.0, resolution=64, eval=300),
        _CYCLEGAN_NOTE),
    "cyclegan_flat_pixel": Row(
        CycleGANBudget(steps=4, batch_size=2, lr=1e-3, warmup=2, ema=0.9, g_width=8, n_blocks=1, d_width=8,
                       n_down=1, d_layers=2, position=4, cycle_noise=0.0, resolution=64, eval=16),
        CycleGANBudget(steps=12000, batch_size=1, lr=2e-4, warmup=1000, ema=0.999, g_width=32, n_blocks=3,
                       d_width=32, n_down=1, d_layers=2, position=4, cycle_noise=0.0, resolution=64, eval=300),
        _CYCLEGAN_NOTE),
    "cyclegan_photo": Row(
        CycleGANBudget(steps=4, batch_size=2, lr=1e-3, warmup=2, ema=0.9, g_width=8, n_blocks=1, d_width=8,
                       position=4, resolution=64, filter="oil", eval=16),
        CycleGANBudget(steps=3000, batch_size=1, lr=2e-4, warmup=500, ema=0.999, g_width=16, n_blocks=3,
                       d_width=16, position=4, resolution=64, filter="oil", eval=200),
        "`spokenstyle train cyclegan_photo`: photo patches <-> painterly patches, 64 px (one filter, so that every "
        "photo has a ground-truth painting); the recipe of the style pairs (the oil filter's canvas weave is a "
        "fixed screen too) at width 16 and a quarter of the steps: 25 minutes on one thread of the shared 2-core "
        "machine (its manifest's train_seconds)"),
    "cyclegan_demo": Row(
        CycleGANBudget(steps=40, batch_size=2, lr=2e-3, g_width=8, n_blocks=1, d_width=8, residual=False,
                       resolution=64, pair=("flat", "neon"), snapshot_every=8, eval=48),
        CycleGANBudget(steps=1500, batch_size=8, lr=1e-3, g_width=16, n_blocks=3, d_width=16, residual=False,
                       resolution=64, pair=("flat", "neon"), snapshot_every=150, eval=300),
        "chapter 5's live demo: a short run of the reference's plain (non-residual) generator on the most visible "
        "pair (the good results are shipped); snapshot_every = steps between animation frames"),
    "fusion": Row(
        FusionBudget(steps=3, batch_size=4, lr=2e-3, width=8, d_width=8, lambda_rec=20.0, lambda_adv=0.5, eval=12,
                     refine_steps=2, refine_lr=5e-4, refine_ema=0.5, width_64=12, rec_pool=2, style_norm=True),
        FusionBudget(steps=3000, batch_size=16, lr=2e-3, width=24, width_64=24, d_width=16, lambda_rec=20.0,
                     lambda_adv=0.5, rec_pool=2, style_norm=True, eval=480, refine_steps=1000, refine_lr=5e-4,
                     refine_ema=0.99),
        "chapter 7 (spokenstyle.recipes.fusion): `spokenstyle train fusion`, the fusion generator F and its "
        "projection discriminator at 64 px; eval = held-out scenes per register. full is sized for the CPU-trained "
        "shipment (about half an hour of one CPU thread); lambda_* weight F's losses; refine_* = a second phase at "
        "a quarter of the rate from where the first ended (recipes.fusion.refine_budget); width_64 = channels of "
        "F's 64 px block; rec_pool 2 = the L1 is taken on 2 x 2 average-pooled pictures, so paper grain is left to "
        "the adversarial term (recipes.fusion.fusion_step); style_norm = the style code at unit RMS "
        "(models.fusion.StyleEncoder: without it two of four runs of this recipe broke down, seeds 1 and 3, and so "
        "did seed 2 with D at half rate; with it none of four). `spokenstyle train fusion` makes one run; the "
        "shipped F is one of four (seeds 0-3), chosen on validation scenes by benchmarks/fusion_runs.py "
        "(chapter 7, section 7), with a layout prior fitted to it afterwards (row fusion_layout). The lambda_adv = 0 "
        "control, everything else equal: `--seed 1 --set fusion.lambda_adv=0.0`, recorded in "
        "benchmarks/fusion-control-runs-cpu.json"),
    "fusion_layout": Row(
        LayoutPriorBudget(steps=20, batch_size=16, lr=2e-3, eval=60),
        LayoutPriorBudget(steps=6000, batch_size=64, lr=2e-3, eval=600),
        "chapter 7 (spokenstyle.recipes.fusion.train_layout): `spokenstyle train fusion_layout`, the layout prior "
        "p(z | sentence) of a trained F (models.fusion.LayoutPrior), everything else frozen: it needs no picture, "
        "only sentences and their true layouts, so a full run takes minutes of one CPU thread; eval = held-out "
        "sentences whose relations score it (evaluation.relation_accuracy); base = the F it is fitted to"),
    "fusion_demo": Row(
        FusionBudget(steps=12, batch_size=8, lr=2e-3, width=8, d_width=8, lambda_rec=20.0, lambda_adv=0.5,
                     width_64=12, rec_pool=2, style_norm=True, eval=36, per_style=24),
        FusionBudget(steps=1600, batch_size=16, lr=2e-3, width=24, width_64=24, d_width=16, lambda_rec=20.0,
                     lambda_adv=0.5, rec_pool=2, style_norm=True, eval=480, per_style=100),
        "chapter 7's live demo: a short run of the same recipe in the notebook (the good F is shipped); eval = "
        "scenes the demo's F is scored on; per_style = held-out scenes per target style (section 7)"),
    "stylization": Row(
        StylizationBudget(steps=20, lr=0.1, n=8, width=24, eval=16, probe=100, pairs=(("flat", "comic"),)),
        StylizationBudget(steps=150, lr=0.05, n=100, width=32, eval=300, probe=300,
                          pairs=(("flat", "comic"), ("flat", "pixel"))),
        "chapter 5's baselines (spokenstyle.stylization): Gram (Gatys) and AdaIN optimisation steps, n = pictures "
        "restyled per pair, width = RandomFeatures channels; eval = scenes that score the shipped CycleGANs; probe "
        "= real renders for the judge and discriminator probes of section 4"),
    "painter_judge": Row(
        JudgeBudget(steps=20, batch_size=14, lr=3e-3, width=8, eval=4),
        JudgeBudget(steps=600, batch_size=28, lr=3e-3, width=16, eval=100),
        "chapter 9 (spokenstyle.recipes.painter_judge): `spokenstyle train painter_judge`, the classifier of the "
        "painterly manners (the photo and six filters) trained on train-region photo patches only; eval = held-out "
        "test patches per manner. Batches of 28 hold every manner four times. full is sized for the CPU-trained "
        "shipment (a few CPU-minutes)"),
    "applications": Row(
        ApplicationsBudget(scenes=48, trials=400, patches=3, steps=20, lr=0.1, width=12, judge_eval=6),
        ApplicationsBudget(scenes=600, trials=2000, patches=48, steps=150, lr=0.05, width=32, judge_eval=100),
        "chapter 9: scenes = held-out scenes of the round trip picture -> words -> picture and of the retrieval "
        "pool; trials = retrieval queries per N; patches = held-out photo patches restyled per painter manner and "
        "method; steps, lr, width = the Gram / AdaIN baselines (full: chapter 5's values); judge_eval = held-out "
        "patches per manner that score the painter judge. Gram and AdaIN cost 0.8 to 1.2 s per 64 px patch (150 "
        "steps, width 32) on one thread of the shared 2-core CPU: full's 48 patches x 6 manners x 2 methods took "
        "9.4 minutes (benchmarks/painter_methods.py records it; chapter 9 shows the record in every profile); "
        "fast narrows the features to 12 channels and takes 20 steps of 3 patches"),
    "challenges": Row(
        ChallengesBudget(demo_steps=200, demo_width=16, demo_batch=16, demo_pool=32, demo_ratio=64, demo_probe=256,
                         demo_lr=1e-3, fusion_n=120, references=8, strengths=(0.5, 1.0), translator_n=48, stats_n=64,
                         ft_eval=500),
        ChallengesBudget(demo_steps=600, demo_width=32, demo_batch=32, demo_pool=64, demo_ratio=32, demo_probe=256,
                         demo_lr=1e-3, fusion_n=600, references=8, strengths=(0.5, 1.0), translator_n=300,
                         stats_n=256, ft_eval=2000),
        "chapter 10: demo_* = the notebook's own small data-scarcity runs (conditional DCGAN, spectral norm, "
        "hinge; a small pool with and without translation, and a pool demo_ratio times larger), seconds in fast; "
        "the full-scale grid (6,000 steps per run, about 20 CPU-minutes each on one thread) is read from "
        "spokenstyle/shipped/benchmarks/data-scarcity-runs-cpu.json in every profile. fusion_n, translator_n: "
        "validation scenes behind the confusion matrices of F and of chapter 5's translators; references = K "
        "pictures per mean style code; strengths = how far the codes are pushed away from the other styles' "
        "(models.fusion.exaggerate_style); stats_n = training renders per style behind the colour statistics that "
        "stylization.match_statistics matches; ft_eval = samples of the shipped pair asked for comic, the FD that "
        "fine-tuning on 100 comic scenes starts from (full: the recorded runs' 2,000)"),
    "faq": Row(
        FAQBudget(pairs_per_cell=2, photos=2, fd_sizes=(250, 500, 1000, 2000), fd_repeats=4, fd_real=2000,
                  fake_pool=4000, resize_n=1000, prdc_n=1000, gaming_n=500, ablation_eval=16),
        FAQBudget(pairs_per_cell=25, photos=20, fd_sizes=(250, 500, 1000, 2000, 4000), fd_repeats=5, fd_real=4000,
                  fake_pool=8000, resize_n=2000, prdc_n=2000, gaming_n=1000, ablation_eval=300),
        "chapter 11: the pipeline over the 6 x 6 pairs of styles and photo sources (full: benchmarks/faq_pairs.py "
        "records the same run, about 3 CPU-minutes), the FD/KID curve of the shipped DCGAN against 1/N, resizing, "
        "PRDC and the resampling demonstration; ablation_eval = validation scenes per direction that score the "
        "notebook's own toy run of the ablation protocol (every variant at the cyclegan_flat_comic fast row's 4 steps, "
        "both stages); the ablation itself is read from spokenstyle/shipped/benchmarks/translator-ablation-cpu.json "
        "(benchmarks/translator_ablation.py, 3,000 steps per run)"),
}


# -- lookups and overrides ---------------------------------------------------------------------

def row(name: str) -> Row:
    """The row of experiment ``name``; a clear error lists the known rows."""
    if name not in BUDGETS:
        raise KeyError(f"no budget named {name!r}; known: {sorted(BUDGETS)}")
    return BUDGETS[name]


def lookup(name: str, profile: str) -> Budget:
    """The budget of experiment ``name`` in ``profile`` ("fast" or "full")."""
    return row(name)[profile]


def apply_overrides(name: str, budget: Budget, overrides: Mapping[str, Mapping[str, Any]] | None) -> Budget:
    """``budget`` with the fields that ``overrides[name]`` changes (from :func:`parse_overrides`)."""
    changes = dict((overrides or {}).get(name, {}))
    return budget.replace(**changes) if changes else budget


def parse_overrides(items: Iterable[str]) -> dict[str, dict[str, Any]]:
    """Budget overrides from ``ROW.FIELD=VALUE`` strings (``spokenstyle train --set``), checked
    against :data:`BUDGETS`: ``{"dcgan_all_styles": {"width": 64}}`` from ``dcgan_all_styles.width=64``.

    VALUE is read as JSON (``64``, ``2e-4``, ``true``, ``null``, ``[0.0, 0.9]``) and otherwise kept
    as a string. The row must exist, FIELD must be a field of the row's budget type and the value
    must have that field's type (checked by building the row's ``full`` budget with it), so a typo
    fails loudly instead of training the wrong model. This is how a larger machine reuses a recipe
    (``--set cyclegan_flat_comic.g_width=64``) without a second copy of it; the manifest records
    the command line, overrides included.

    Raises:
        ValueError: a malformed item, an unknown row or field, or a value of the wrong type.
    """
    out: dict[str, dict[str, Any]] = {}
    for item in items:
        target, sep, raw = str(item).partition("=")
        name, dot, key = target.strip().partition(".")
        if not sep or not dot or not name or not key:
            raise ValueError(f"a budget override is ROW.FIELD=VALUE (e.g. dcgan_all_styles.steps=30000), got {item!r}")
        if name not in BUDGETS:
            raise ValueError(f"no budget row {name!r} in {item!r}; known rows: {sorted(BUDGETS)}")
        kind = BUDGETS[name].kind
        if key not in kind.field_names():
            raise ValueError(f"budget row {name!r} has no field {key!r} (in {item!r}); its fields: {kind.field_names()}")
        try:
            value = json.loads(raw)
        except json.JSONDecodeError:
            value = raw
        try:
            BUDGETS[name].full.replace(**{key: value})
        except (TypeError, ValueError) as err:
            raise ValueError(f"{item!r}: {err}") from err
        out.setdefault(name, {})[key] = _freeze(value)
    return out

