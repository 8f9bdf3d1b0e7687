"""``spokenstyle train painter_judge``: how chapter 9's painter judge learns the painterly manners.

The network is :class:`spokenstyle.models.painter_judge.PainterJudge`. It learns from 64 px
patches of the bundled photos' *train* regions, each shown as the photo itself or through one
painterly filter (:data:`~spokenstyle.data.photos.ALL_FILTERS`), the class cycling through the
batch so every batch is balanced (:func:`manner_batches`); it never sees a generated picture.
:func:`score_painter_judge` reads held-out patches of the photos' *test* regions
(:func:`manner_test_set`) and gives the accuracy per manner and the confusion matrix: the
judge's own ceiling, printed beside every score it gives in chapter 9.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any, Callable

import torch
import torch.nn.functional as F

from ..data.photos import PhotoPatches, painterly
from ..data.splits import PHOTO_SPLITS
from ..models.painter_judge import PainterJudge, PainterJudgeConfig
from ..runtime import Runtime
from ..train import TrainConfig, Trainer

__all__ = ["manner_images", "manner_batches", "manner_test_set", "score_painter_judge", "train_painter_judge", "train"]

_WALK = 7_919_003  # a run's stretch of patch seeds starts seed * this far in (as spokenstyle.data.splits.walk)


def manner_images(photos: torch.Tensor, labels: torch.Tensor, classes: tuple[str, ...]) -> torch.Tensor:
    """``photos`` (B, 3, H, W) each shown in the manner ``classes[labels[i]]`` ("photo": as it is)."""
    if labels.shape != (photos.shape[0],):
        raise ValueError(f"labels must be one class id per photo ({photos.shape[0]}), got {tuple(labels.shape)}")
    names = [classes[int(k)] for k in labels]
    out = photos.clone()
    painted = [i for i, n in enumerate(names) if n != "photo"]
    if painted:
        out[painted] = painterly(photos[painted], [names[i] for i in painted])
    return out


def manner_batches(batch_size: int, *, classes: tuple[str, ...], size: int = 64, seed: int = 0,
                   device: torch.device | str | None = None) -> Callable[[int], dict[str, torch.Tensor]]:
    """``batches(step)``: ``{"image", "label"}`` from train-region patches, deterministic from
    (seed, step); item i of step s is patch ``seed · 7,919,003 + s · batch_size + i`` in the
    manner ``(s · batch_size + i) % len(classes)``, so every batch holds every manner."""
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
    lo, hi = PHOTO_SPLITS["train"]
    data = PhotoPatches("train", size, length=hi - lo)

    def batches(step: int) -> dict[str, torch.Tensor]:
        first = step * batch_size
        index = (seed * _WALK + first + torch.arange(batch_size)) % (hi - lo)
        photos = data.batch(index.tolist())["image"]
        labels = (first + torch.arange(batch_size)) % len(classes)
        images = manner_images(photos, labels, classes)
        return {"image": images.to(device) if device is not None else images,
                "label": labels.to(device) if device is not None else labels}

    return batches


def manner_test_set(n_per_class: int, *, classes: tuple[str, ...], size: int = 64,
                    offset: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """(images, labels): ``n_per_class`` held-out test-region patches per manner, each manner on
    *different* patches (patch ``offset + k · len(classes) + c`` for manner c)."""
    if isinstance(n_per_class, bool) or not isinstance(n_per_class, int) or n_per_class < 1:
        raise ValueError(f"n_per_class must be a positive int, got {n_per_class!r}")
    n = n_per_class * len(classes)
    lo, hi = PHOTO_SPLITS["test"]
    if not 0 <= offset <= (hi - lo) - n:
        raise ValueError(f"offset must be from 0 to {(hi - lo) - n:,}, got {offset!r}")
    photos = PhotoPatches("test", size, length=hi - lo).batch(list(range(offset, offset + n)))["image"]
    labels = torch.arange(n) % len(classes)
    return manner_images(photos, labels, classes), labels


@torch.no_grad()
def score_painter_judge(judge: PainterJudge, n_per_class: int, *, size: int = 64, offset: int = 0) -> dict[str, Any]:
    """The judge on held-out test patches: ``{"accuracy", "per_class": {manner: accuracy},
    "confusion": rows = true manner, columns = read manner (counts), "n_per_class"}``."""
    classes = judge.config.classes
    images, labels = manner_test_set(n_per_class, classes=classes, size=size, offset=offset)
    pred = judge.read(images).argmax(-1)
    confusion = torch.zeros(len(classes), len(classes), dtype=torch.int64)
    confusion.index_put_((labels, pred), torch.ones_like(labels), accumulate=True)
    per_class = {c: float(confusion[k, k]) / n_per_class for k, c in enumerate(classes)}
    return {"accuracy": float((pred == labels).float().mean()), "per_class": per_class,
            "confusion": confusion.tolist(), "n_per_class": n_per_class}


def train_painter_judge(*, steps: int, batch_size: int, lr: float = 3e-3, size: int = 64, seed: int = 0,
                        device: torch.device | str | None = None, config: PainterJudgeConfig | None = None):
    """Trains a :class:`PainterJudge` on train-region patches with the book's Trainer (AdamW,
    one-cycle learning rate, cross-entropy); returns ``(judge, history)``."""
    torch.manual_seed(seed)
    judge = PainterJudge(config)
    opt = torch.optim.AdamW(judge.parameters(), lr=lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=max(1, steps), pct_start=0.15)

    def step_fn(t, batch, step):
        logits = t.modules["judge"](batch["image"])
        loss = F.cross_entropy(logits, batch["label"])
        t.optimize("judge", loss)
        return {"loss": loss, "acc": (logits.argmax(-1) == batch["label"]).float().mean()}

    trainer = Trainer({"judge": judge}, {"judge": opt}, step_fn, TrainConfig(steps=steps, desc="painter_judge"),
                      schedulers={"judge": sched}, device=device, model_config=asdict(judge.config))
    history = trainer.fit(manner_batches(batch_size, classes=judge.config.classes, size=size, seed=seed))
    return judge.eval(), history


def train(out_dir: str | Path, *, runtime: Runtime) -> dict[str, Any]:
    """``spokenstyle train painter_judge``: the painter judge on train-region patches in every
    manner, sized by ``runtime.budget("painter_judge")``, scored on held-out test patches and
    saved to ``out_dir``. Chapter 9 scores painter-style transfers with it."""
    b = runtime.budget("painter_judge")
    judge, history = train_painter_judge(steps=b.steps, batch_size=b.batch_size, lr=b.lr, seed=runtime.seed,
                                         device=runtime.device, config=PainterJudgeConfig(width=b.width))
    judge.cpu()
    report = score_painter_judge(judge, b.eval)
    metrics: dict[str, Any] = {"accuracy": report["accuracy"],
                               **{f"{c}_accuracy": v for c, v in report["per_class"].items()},
                               "confusion": report["confusion"], "train_loss": history.mean("loss", last=20),
                               "steps": b.steps, "batch_size": b.batch_size, "eval_per_class": b.eval,
                               "profile": runtime.profile, "device": str(runtime.device),
                               "torch_threads": torch.get_num_threads()}
    print({k: v for k, v in metrics.items() if k != "confusion"})
    judge.save_pretrained(out_dir, metrics=metrics,
                          extra={"data": "64 px patches of the bundled photos' train regions "
                                         "(spokenstyle.data.PHOTO_CREDITS), each as the photo or through one "
                                         "painterly filter; scored on patches of the test regions",
                                 "classes": list(judge.config.classes)})
    return metrics
