"""The feature extractor behind the book's image metrics: a small classifier of real renders.

FID measures distances between Inception-v3 features of ImageNet photographs. For ShapeScenes
that network would be the wrong ruler (and a download): what matters here is whether a picture
shows the right shapes, colours, sizes and style. So the book trains its own ruler, a small CNN
that reads a 32 px render and predicts

* its **style** (6 classes),
* its **object count** (1 to 3),
* which of the 6 **colours** are present (6 yes/no answers), and for each present colour the
  **shape** (6 classes) and **size** (2) of the object that has it. Colours are distinct within
  a scene, so these answers describe the objects completely, whatever order they were drawn in
  (``SceneBatch.colour_slots``).

It is trained on **real renders only** and never sees a generated image, so it cannot be fooled
into liking a generator's quirks. Its 64-D penultimate layer (after global average pooling and
one linear layer, like Inception's pool features) is the feature space of
:mod:`spokenstyle.metrics`. Its heads give each picture a *confidence* (:func:`confidence`):
the smaller of the style head's and the count head's probabilities for their own answers, and 0
when the heads contradict each other, i.e. when the number of colours the colour head sees
differs from the number of objects the count head counts. A picture scores high only if its
style and its number of objects are unambiguous *and* its objects are where the count says they
are. The consistency check is needed: a classifier is confidently wrong far from its training
data, and without it a uniform grey picture, uniform noise and a generator after 60 steps were
all "confident" (100 % of them), more often than real renders (99.5 %). With it they score 0 %
and held-out real renders about 97 % (see the manifest's ``confident_rate``). Shapes and sizes
are left out: a small object is about 5 pixels wide at 32 px, and even on real renders the
classifier misreads a fifth of the shapes (the held-out shape accuracy is in the manifest), so
a confidence that required them would fail real pictures too often.

Real images come from fixed, disjoint seed ranges (:data:`SPLITS`): the classifier and the GANs
train on ``train`` scenes; the metrics compare against ``a`` and ``b``, two held-out real sets,
so that ``a`` vs ``b`` is the real-vs-real baseline. The scene with seed s is drawn in style
``s % 6`` when every style is asked for, so the style is independent of the content.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .. import checkpoints

__all__ = [
    "SPLITS",
    "FeatureNetConfig",
    "FeatureNetOutput",
    "FeatureNet",
    "feature_extractor",
    "real_renders",
    "pool_batches",
    "scene_targets",
    "extract_features",
    "confidence",
    "split_slots",
    "accuracy",
    "train",
]

# first scene seed of each split; each split holds up to 1,000,000 scenes. All four lie inside
# spokenstyle.data.SPLITS["train"] (seeds < 10^9); chapter 4's models train on pools of at most
# 24,000 scenes (seeds < 24,000), so "a", "b" and "test" are never trained on.
SPLITS: dict[str, int] = {"train": 0, "a": 1_000_000, "b": 2_000_000, "test": 3_000_000}


# -- real images -------------------------------------------------------------------------------

def real_renders(n: int, *, split: str = "train", style: str | int | None = None, size: int = 32,
                 offset: int = 0, device: torch.device | str | None = None, chunk: int = 2048):
    """``n`` real ShapeScenes renders of one split: (images (n, 3, size, size) in [0, 1], scenes, style ids).

    Args:
        split: ``"train"`` (what models learn from), ``"a"`` / ``"b"`` (held-out sets for the
            metrics and their real-vs-real baseline) or ``"test"`` (classifier accuracy).
        style: one style (name or id) for every scene, or ``None`` for all styles (seed % 6).
        offset: skip this many scenes of the split (e.g. to take a second, disjoint batch).
    """
    from ..data.scenes import SceneBatch, sample_scenes
    from ..data.styles import STYLES, render

    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; expected one of {sorted(SPLITS)}")
    if not isinstance(n, int) or isinstance(n, bool) or n < 1 or offset < 0 or offset + n > 1_000_000:
        raise ValueError(f"need 1 <= n and 0 <= offset with offset + n <= 1,000,000, got n={n!r}, offset={offset!r}")
    seeds = torch.arange(SPLITS[split] + offset, SPLITS[split] + offset + n, device=device)
    styles = seeds % len(STYLES) if style is None else None
    images, scene_parts, style_parts = [], [], []
    for lo in range(0, n, chunk):
        s = sample_scenes(seeds[lo: lo + chunk])
        ids = styles[lo: lo + chunk] if styles is not None else style
        images.append(render(s, ids, size))
        scene_parts.append(s)
    scenes = SceneBatch.cat(scene_parts)
    if styles is None:
        from ..data.styles import style_ids

        styles = style_ids(style, n, seeds.device)
    return torch.cat(images), scenes, styles


def pool_batches(images: torch.Tensor, batch_size: int, *, seed: int = 0,
                 extra: Sequence[torch.Tensor] = ()) -> Callable[[int], Any]:
    """``batches(step)`` over a fixed pool of images: epoch e visits the pool in a permutation
    seeded by (seed, e), so a batch is a pure function of the step (exact resumption).

    Rendering a pool once and sampling from it is what keeps CPU training cheap; on a GPU the
    renderer is fast enough to draw fresh scenes every step. With ``extra`` tensors (labels),
    a batch is the tuple ``(images, *extra)`` indexed alike.
    """
    n = images.shape[0]
    if not isinstance(batch_size, int) or not 1 <= batch_size <= n:
        raise ValueError(f"batch_size must be an int in [1, {n}] (the pool size), got {batch_size!r}")
    per_epoch = n // batch_size
    cache: dict[int, torch.Tensor] = {}

    def batches(step: int):
        epoch, k = divmod(step, per_epoch)
        if epoch not in cache:
            cache.clear()
            cache[epoch] = torch.randperm(n, generator=torch.Generator().manual_seed(seed * 100_003 + epoch))
        idx = cache[epoch][k * batch_size: (k + 1) * batch_size]
        if not extra:
            return images[idx]
        return (images[idx], *(t[idx] for t in extra))

    return batches


def scene_targets(scenes, styles: torch.Tensor) -> torch.Tensor:
    """(B, 8) int64 labels: style id, object count - 1, then the 6 colour slots."""
    return torch.cat([styles.to(torch.int64)[:, None], (scenes.n_objects - 1)[:, None], scenes.colour_slots()], dim=1)


# -- the network -------------------------------------------------------------------------------

class ConvBlock(nn.Sequential):
    """3 × 3 convolution → BatchNorm → ReLU; ``stride=2`` halves H and W."""

    def __init__(self, c_in: int, c_out: int, stride: int = 1) -> None:
        super().__init__(nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False),
                         nn.BatchNorm2d(c_out), nn.ReLU(inplace=True))


@dataclass
class FeatureNetConfig:
    """The shape of the feature extractor; ``asdict(config)`` is stored in its checkpoint."""

    resolution: int = 32  # inputs of other sizes are resized (area) to this: the GANs make 32 px
    width: int = 16  # channels of the first layer, doubled at each stride; 16 trains in minutes on a CPU
    feature_dim: int = 64  # the metric space: small enough that FD's covariance is well estimated from 2,000 samples
    n_styles: int = 6  # spokenstyle.data.styles.STYLES
    n_counts: int = 3  # 1 to 3 objects
    n_colours: int = 6  # spokenstyle.data.scenes.COLOURS: one presence, shape and size answer each
    n_shapes: int = 6  # spokenstyle.data.scenes.SHAPES
    n_sizes: int = 2  # small, large


@dataclass
class FeatureNetOutput:
    """What :class:`FeatureNet` returns: features (B, feature_dim) and the heads' logits."""

    features: torch.Tensor  # (B, feature_dim)
    style_logits: torch.Tensor  # (B, n_styles)
    count_logits: torch.Tensor  # (B, n_counts)
    colour_logits: torch.Tensor  # (B, n_colours): is this colour in the picture? (sigmoid)
    shape_logits: torch.Tensor  # (B, n_colours, n_shapes): the shape of the object of each colour
    size_logits: torch.Tensor  # (B, n_colours, n_sizes)


class FeatureNet(nn.Module):
    """32 px image in [0, 1] → 64-D features and style / count / colour / shape / size logits.

    Layout (``width = w``): 32×32×w → 16×16×2w → 8×8×4w → 4×4×8w → global average → linear → ReLU.
    """

    def __init__(self, config: FeatureNetConfig) -> None:
        super().__init__()
        if not isinstance(config, FeatureNetConfig):
            raise TypeError(f"config must be a FeatureNetConfig, got {type(config).__name__}")
        self.config = config
        w = config.width
        self.backbone = nn.Sequential(
            ConvBlock(3, w),  # (B, w, 32, 32)
            ConvBlock(w, 2 * w, stride=2), ConvBlock(2 * w, 2 * w),  # (B, 2w, 16, 16)
            ConvBlock(2 * w, 4 * w, stride=2), ConvBlock(4 * w, 4 * w),  # (B, 4w, 8, 8)
            ConvBlock(4 * w, 8 * w, stride=2),  # (B, 8w, 4, 4)
            nn.AdaptiveAvgPool2d(1), nn.Flatten(),  # (B, 8w)
            nn.Linear(8 * w, config.feature_dim), nn.ReLU(inplace=True),  # (B, feature_dim)
        )
        self.style_head = nn.Linear(config.feature_dim, config.n_styles)
        self.count_head = nn.Linear(config.feature_dim, config.n_counts)
        self.colour_head = nn.Linear(config.feature_dim, config.n_colours)
        self.shape_head = nn.Linear(config.feature_dim, config.n_colours * config.n_shapes)
        self.size_head = nn.Linear(config.feature_dim, config.n_colours * config.n_sizes)

    def _prepare(self, images: torch.Tensor) -> torch.Tensor:
        if not isinstance(images, torch.Tensor) or images.dim() != 4 or images.shape[1] != 3:
            shape = tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__
            raise ValueError(f"images must be (B, 3, H, W) in [0, 1], got {shape}")
        if not images.is_floating_point():
            raise TypeError(f"images must be floating point in [0, 1], got dtype {images.dtype}")
        if images.numel() and (images.min() < -1e-3 or images.max() > 1 + 1e-3):
            raise ValueError(f"images must be in [0, 1] (renders; convert generator outputs with "
                             f"to_unit_range), got values in [{images.min():.3g}, {images.max():.3g}]")
        r = self.config.resolution
        if images.shape[-2:] != (r, r):
            images = F.interpolate(images, size=(r, r), mode="area")
        return images * 2 - 1  # (B, 3, r, r) in [-1, 1]

    def forward(self, images: torch.Tensor) -> FeatureNetOutput:
        """(B, 3, H, W) in [0, 1] → :class:`FeatureNetOutput`."""
        c = self.config
        h = self.backbone(self._prepare(images))  # (B, feature_dim)
        return FeatureNetOutput(
            features=h,
            style_logits=self.style_head(h),
            count_logits=self.count_head(h),
            colour_logits=self.colour_head(h),
            shape_logits=self.shape_head(h).view(-1, c.n_colours, c.n_shapes),
            size_logits=self.size_head(h).view(-1, c.n_colours, c.n_sizes),
        )

    def loss(self, out: FeatureNetOutput, targets: torch.Tensor) -> torch.Tensor:
        """Sum of the heads' cross-entropies; ``targets`` from :func:`scene_targets`. Shape and
        size are scored only for the colours present in the picture."""
        present, shape, size = split_slots(targets[:, 2:])
        return (F.cross_entropy(out.style_logits, targets[:, 0])
                + F.cross_entropy(out.count_logits, targets[:, 1])
                + F.binary_cross_entropy_with_logits(out.colour_logits, present.float())
                + F.cross_entropy(out.shape_logits.flatten(0, 1), shape.flatten(), ignore_index=-1)
                + F.cross_entropy(out.size_logits.flatten(0, 1), size.flatten(), ignore_index=-1))


def split_slots(slots: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Colour slots (B, 6) (0 = absent, else 1 + shape * 2 + size) → presence (bool), shape id
    and size id, each (B, 6), with -1 for the shape and size of absent colours."""
    present = slots > 0
    cls = (slots - 1).clamp(min=0)
    neg = torch.full_like(slots, -1)
    return present, torch.where(present, cls // 2, neg), torch.where(present, cls % 2, neg)


def confidence(out: FeatureNetOutput) -> torch.Tensor:
    """(B,) the smaller of the probabilities the classifier gives its own answers for the style
    and for the number of objects, or 0 where the colour head sees a different number of
    colours than the count head counts objects: high only when the picture is unambiguously one
    style with a definite number of objects, each with its own colour (see the module docstring
    for why the consistency check is there and why shapes are not in it)."""
    style = out.style_logits.softmax(-1).amax(-1)  # (B,)
    count = out.count_logits.softmax(-1).amax(-1)  # (B,)
    consistent = (out.colour_logits > 0).sum(-1) == out.count_logits.argmax(-1) + 1  # (B,) colours seen = objects counted
    return torch.minimum(style, count) * consistent


@torch.no_grad()
def extract_features(net: FeatureNet, images: torch.Tensor, *, batch_size: int = 500,
                     with_confidence: bool = False):
    """Features (N, feature_dim) of images in [0, 1] (on the CPU, float32), in eval mode; with
    ``with_confidence`` also the (N,) confidences."""
    if not isinstance(net, FeatureNet):
        raise TypeError(f"net must be a FeatureNet, got {type(net).__name__}")
    was_training = net.training
    net.eval()
    device = next(net.parameters()).device
    feats, confs = [], []
    try:
        for chunk in images.split(batch_size):
            out = net(chunk.to(device))
            feats.append(out.features.float().cpu())
            confs.append(confidence(out).float().cpu())
    finally:
        net.train(was_training)
    if with_confidence:
        return torch.cat(feats), torch.cat(confs)
    return torch.cat(feats)


# -- builder -----------------------------------------------------------------------------------

def feature_extractor(*, config: FeatureNetConfig | None = None, weights: str | Path | None = None,
                      **overrides: Any) -> FeatureNet:
    """The metric feature extractor.

    Args:
        config: the architecture (``None`` = defaults); keyword ``overrides`` replace fields.
        weights: ``None`` (random init, to train), the name of a shipped checkpoint
            (``"features"``) or a checkpoint folder. With weights the network is in eval mode and
            the architecture comes from the checkpoint.
    """
    if weights is None:
        if config is not None and not isinstance(config, FeatureNetConfig):
            raise TypeError(f"config must be a FeatureNetConfig or None, got {type(config).__name__}")
        return FeatureNet(FeatureNetConfig(**{**(asdict(config) if config else {}), **overrides}))
    if config is not None or overrides:
        raise ValueError("give either weights (the checkpoint fixes the architecture) or config/overrides, not both")
    directory = Path(weights) if isinstance(weights, Path) or "/" in str(weights) or Path(weights).is_dir() \
        else checkpoints.shipped_path(str(weights))
    manifest = checkpoints.read_manifest(directory)
    try:
        net = FeatureNet(FeatureNetConfig(**manifest["config"]))
    except TypeError as err:
        raise checkpoints.CheckpointError(f"{directory} is not a feature-extractor checkpoint ({err})") from err
    checkpoints.load_pretrained(net, directory)
    return net.eval()


# -- evaluation and the training recipe ---------------------------------------------------------

@torch.no_grad()
def accuracy(net: FeatureNet, images: torch.Tensor, targets: torch.Tensor, *, batch_size: int = 500) -> dict[str, float]:
    """Held-out accuracies: style, count, colour set (all six yes/no answers right), shape and
    size (of the objects present), whole scene (all of these right), and the fraction of
    images with confidence ≥ 0.9."""
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


def train(out_dir: str | Path, *, runtime) -> dict[str, float]:
    """``spokenstyle train features``: trains the metric feature extractor on real renders,
    evaluates it on held-out ``test`` scenes and saves it to ``out_dir``."""
    import shutil

    from .. import cli
    from ..train import Trainer, TrainConfig

    b = runtime.budget("features")
    images, scenes, styles = real_renders(b["pool"], split="train", size=32)
    targets = scene_targets(scenes, styles)
    net = feature_extractor()
    # an interrupted run resumes from here; a finished one deletes it
    run_dir = runtime.run_dir("features")
    opt = torch.optim.AdamW(net.parameters(), lr=b["lr"], weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=b["lr"], total_steps=b["steps"], pct_start=0.15)

    def step_fn(t, batch, step):
        x, y = batch
        with t.autocast():
            loss = t.modules["net"].loss(t.modules["net"](x), y)
        t.optimize("net", loss)
        return {"loss": loss}

    trainer = Trainer({"net": net}, {"net": opt}, step_fn,
                      TrainConfig(steps=b["steps"], log_every=10, desc="features",
                                  checkpoint_dir=str(run_dir), checkpoint_every=500),
                      schedulers={"net": sched}, device=runtime.device, model_config=asdict(net.config))
    history = trainer.fit(pool_batches(images, b["batch_size"], seed=runtime.seed, extra=(targets,)))
    test_images, test_scenes, test_styles = real_renders(b["eval"], split="test", size=32)
    metrics = accuracy(net, test_images, scene_targets(test_scenes, test_styles))
    metrics.update(train_loss=history.mean("loss", last=10), steps=b["steps"], profile=runtime.profile,
                   device=str(runtime.device), eval_images=b["eval"], train_pool=b["pool"])
    checkpoints.save_pretrained(net.cpu(), out_dir, config=net.config, metrics=metrics, command=cli.command_line(),
                                extra={"data": "ShapeScenes real renders, split 'train' (seeds 0..pool-1), all styles, "
                                               "32 px; evaluated on split 'test'"})
    shutil.rmtree(run_dir, ignore_errors=True)
    return metrics
