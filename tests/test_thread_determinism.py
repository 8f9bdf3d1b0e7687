"""benchmarks/thread_determinism.py: the digest that decides "bit for bit the same"."""

from __future__ import annotations

import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import thread_determinism as td  # noqa: E402


def test_digest_sees_the_last_bit_and_the_names():
    a = {"w": torch.linspace(0, 1, 10), "b": torch.zeros(3)}
    same = {k: v.clone() for k, v in reversed(list(a.items()))}  # another dict order, same tensors
    assert td.digest(a) == td.digest(same)
    nudged = dict(a, w=torch.nextafter(a["w"], torch.full_like(a["w"], 2.0)))  # one ulp up
    assert td.digest(nudged) != td.digest(a)
    assert td.max_difference(a, nudged) > 0
    assert td.digest({"v": a["w"], "b": a["b"]}) != td.digest(a)  # a renamed tensor is another state
