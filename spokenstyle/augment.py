"""Differentiable augmentation: let a discriminator see more data than there is, without the
generator learning to draw the augmentations.

A discriminator trained on few pictures memorises them: its scores on the training pictures
and on held-out ones drift apart, and the generator it teaches stops improving. Augmenting the
real pictures alone does not help, because the generator then learns to draw augmented pictures
(cut-out squares, shifted frames). **DiffAugment** (Zhao et al. 2020) applies the *same* random,
differentiable transformations to real and generated pictures, in D's step and in G's step, so D
never sees an unaugmented picture and G's gradient passes through the transformation;
**ADA** (Karras et al. 2020) applies each transformation only with a probability p, and adjusts p
during training from how sure D is of the training pictures (:class:`AdaptiveAugment`).

The transformations (on pictures in tanh's [-1, 1], as D sees them), each drawn per picture:

* ``translation``: shift by up to ``1/8`` of the side (whole pixels), zeros coming in;
* ``cutout``: zero a square of half the side at a random place;
* ``color``: brightness (add U(−½, ½)), saturation (scale the distance from the grey of each
  pixel by U(0, 2)), contrast (scale the distance from the picture's mean by U(½, 3/2)).

Not every transformation suits every data: a cutout of half a 32 px picture can erase a whole
object, and colour jitter can make two of ShapeScenes' styles alike. Chapters 4 and 10 measure
what each does to the judges' reading of real renders before using it (:func:`augment`
with ``p = 1`` on real renders).

References:
    Zhao, Liu, Lin, Zhu & Han 2020, "Differentiable Augmentation for Data-Efficient GAN Training",
    https://arxiv.org/abs/2006.10738
    Karras, Aittala, Hellsten, Laine, Lehtinen & Aila 2020, "Training Generative Adversarial
    Networks with Limited Data" (ADA), https://arxiv.org/abs/2006.06676
"""

from __future__ import annotations

from typing import Callable, Sequence

import torch
from torch import nn

__all__ = [
    "TRANSFORMS",
    "translation",
    "cutout",
    "color",
    "parse_policy",
    "augment",
    "AdaptiveAugment",
]


def _check(x: torch.Tensor) -> torch.Tensor:
    if not isinstance(x, torch.Tensor) or x.dim() != 4 or not x.is_floating_point():
        raise ValueError(f"augmentations take a float (B, C, H, W) batch, got "
                         f"{tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__}")
    return x


def _chosen(x: torch.Tensor, p: float) -> torch.Tensor:
    """(B, 1, 1, 1) float: 1 for the pictures a transformation applies to (each with probability p)."""
    if p >= 1.0:
        return torch.ones(x.shape[0], 1, 1, 1, device=x.device, dtype=x.dtype)
    return (torch.rand(x.shape[0], 1, 1, 1, device=x.device) < p).to(x.dtype)


def translation(x: torch.Tensor, ratio: float = 0.125, p: float = 1.0) -> torch.Tensor:
    """Each picture shifted by whole pixels, up to ``ratio`` of its side in x and in y, the
    uncovered border filled with zeros (mid-grey in [-1, 1]). Gradients pass to the pixels moved."""
    x = _check(x)
    B, _, H, W = x.shape
    sx, sy = int(W * ratio + 0.5), int(H * ratio + 0.5)
    dx = torch.randint(-sx, sx + 1, (B,), device=x.device) * (torch.rand(B, device=x.device) < p)
    dy = torch.randint(-sy, sy + 1, (B,), device=x.device) * (torch.rand(B, device=x.device) < p)
    rows = torch.arange(H, device=x.device)[None, :] - dy[:, None]  # (B, H): source row of each output row
    cols = torch.arange(W, device=x.device)[None, :] - dx[:, None]  # (B, W)
    inside = ((rows >= 0) & (rows < H))[:, :, None] & ((cols >= 0) & (cols < W))[:, None, :]  # (B, H, W)
    b = torch.arange(B, device=x.device)[:, None, None]
    moved = x[b, :, rows.clamp(0, H - 1)[:, :, None], cols.clamp(0, W - 1)[:, None, :]]  # (B, H, W, C)
    return moved.permute(0, 3, 1, 2) * inside[:, None].to(x.dtype)


def cutout(x: torch.Tensor, ratio: float = 0.5, p: float = 1.0) -> torch.Tensor:
    """Each picture with a square of ``ratio`` of its side set to zero (mid-grey in [-1, 1]); the
    square's centre is anywhere on the picture, so part of it may fall outside."""
    x = _check(x)
    B, _, H, W = x.shape
    h, w = int(H * ratio + 0.5), int(W * ratio + 0.5)
    cy = torch.randint(0, H, (B,), device=x.device)[:, None, None]
    cx = torch.randint(0, W, (B,), device=x.device)[:, None, None]
    ys = torch.arange(H, device=x.device)[None, :, None]
    xs = torch.arange(W, device=x.device)[None, None, :]
    hole = (ys >= cy - h // 2) & (ys < cy - h // 2 + h) & (xs >= cx - w // 2) & (xs < cx - w // 2 + w)  # (B, H, W)
    hole = hole[:, None].to(x.dtype) * _chosen(x, p)
    return x * (1 - hole)


def color(x: torch.Tensor, p: float = 1.0) -> torch.Tensor:
    """Brightness, then saturation, then contrast, each drawn per picture (in [-1, 1])."""
    x = _check(x)
    B = x.shape[0]
    r = lambda: torch.rand(B, 1, 1, 1, device=x.device, dtype=x.dtype)  # noqa: E731
    pick = lambda new, old: torch.where(_chosen(x, p) > 0, new, old)  # noqa: E731  (p = 0: exactly x)
    x = pick(x + (r() - 0.5), x)  # brightness
    grey = x.mean(1, keepdim=True)
    x = pick(grey + (x - grey) * (r() * 2), x)  # saturation: factor U(0, 2)
    mean = x.mean((1, 2, 3), keepdim=True)
    return pick(mean + (x - mean) * (r() + 0.5), x)  # contrast: factor U(1/2, 3/2)


TRANSFORMS: dict[str, Callable[..., torch.Tensor]] = {"translation": translation, "cutout": cutout, "color": color}


def parse_policy(policy: str | Sequence[str]) -> tuple[str, ...]:
    """``"translation,cutout"`` (or a list) → the names, checked; ``""`` → no augmentation."""
    names = tuple(n.strip() for n in (policy.split(",") if isinstance(policy, str) else policy) if n.strip())
    unknown = [n for n in names if n not in TRANSFORMS]
    if unknown:
        raise ValueError(f"unknown augmentation {unknown[0]!r}; choose from {sorted(TRANSFORMS)} (comma-separated)")
    if len(set(names)) != len(names):
        raise ValueError(f"an augmentation policy names each transformation once, got {names}")
    return names


def augment(x: torch.Tensor, policy: str | Sequence[str], p: float = 1.0) -> torch.Tensor:
    """The transformations of ``policy`` in order (colour first if named, as in DiffAugment),
    each applied to each picture with probability ``p`` (1: always, DiffAugment; < 1: ADA)."""
    if not 0.0 <= float(p) <= 1.0:
        raise ValueError(f"p must be a probability in [0, 1], got {p!r}")
    names = parse_policy(policy)
    for name in sorted(names, key=("color", "translation", "cutout").index):
        x = TRANSFORMS[name](x, p=float(p))
    return x


class AdaptiveAugment(nn.Module):
    """ADA's heuristic (Karras et al. 2020, §3): the probability p of each augmentation rises while
    D is too sure of the training pictures and falls otherwise.

    Every ``interval`` steps it looks at r = E[sign(D(real))] over those steps: the share of
    training pictures D calls real, minus the share it calls fake. Overfitting drives r towards
    1. If r exceeds ``target`` (0.6 in the paper), p grows by ``interval · batch / speed``, else it
    shrinks by as much; ``speed`` is how many real pictures it takes p to go from 0 to 1 (the paper
    uses 500,000; our runs are shorter). p and the running sums are buffers, so a training
    checkpoint saves them and a resumed run continues exactly.
    """

    def __init__(self, policy: str | Sequence[str], *, target: float = 0.6, interval: int = 4,
                 speed: int = 100_000, p: float = 0.0) -> None:
        super().__init__()
        self.policy = parse_policy(policy)
        if not self.policy:
            raise ValueError("AdaptiveAugment needs at least one transformation")
        if not 0.0 < target < 1.0:
            raise ValueError(f"target must be in (0, 1), got {target!r}")
        if not isinstance(interval, int) or interval < 1 or not isinstance(speed, int) or speed < 1:
            raise ValueError(f"interval and speed must be positive ints, got {interval!r} and {speed!r}")
        self.target, self.interval, self.speed = float(target), interval, speed
        self.register_buffer("p", torch.tensor(float(p)))
        self.register_buffer("signs", torch.zeros(()))  # sum of sign(D(real)) since the last adjustment
        self.register_buffer("count", torch.zeros((), dtype=torch.int64))  # pictures counted
        self.register_buffer("steps", torch.zeros((), dtype=torch.int64))  # steps counted

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The batch augmented with the current p."""
        return augment(x, self.policy, float(self.p))

    @torch.no_grad()
    def update(self, real_logits: torch.Tensor) -> None:
        """Counts D's verdicts on a batch of training pictures; adjusts p every ``interval`` calls."""
        self.signs += real_logits.detach().float().sign().sum().to(self.signs.device)
        self.count += real_logits.numel()
        self.steps += 1
        if int(self.steps) % self.interval == 0:
            r = float(self.signs / self.count.clamp(min=1))
            step = float(self.count) / self.speed
            self.p.copy_((self.p + (step if r > self.target else -step)).clamp(0.0, 1.0))
            self.signs.zero_()
            self.count.zero_()

    @property
    def overfitting(self) -> float:
        """r of the steps counted since the last adjustment (0 before any)."""
        return float(self.signs / self.count.clamp(min=1))

    def extra_repr(self) -> str:
        return f"policy={','.join(self.policy)}, p={float(self.p):.3f}, target={self.target}"
