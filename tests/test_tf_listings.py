"""Appendix A's TensorFlow listings (appendices/listings/*.py). TensorFlow is not installed (one
framework, one environment), so the listings are parsed, checked for the calls that make them the
PyTorch code's counterparts, and the CycleGAN losses are evaluated with NumPy standing in for the
few ``tf`` functions they use and compared with ``spokenstyle.losses``."""

from __future__ import annotations

import ast
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import torch

from spokenstyle import losses
from spokenstyle.models.cyclegan import CycleGANConfig

LISTINGS = Path(__file__).resolve().parents[1] / "appendices" / "listings"


def test_there_are_listings():
    assert {p.name for p in LISTINGS.glob("*.py")} >= {"tf_dcgan_step.py", "tf_cyclegan_losses.py"}


@pytest.mark.parametrize("path", sorted(LISTINGS.glob("*.py")), ids=lambda p: p.name)
def test_each_listing_parses(path):
    tree = ast.parse(path.read_text(), filename=str(path))
    assert ast.get_docstring(tree), f"{path.name} says what it is the counterpart of"
    imported = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    assert "tensorflow" in imported


def calls(path: Path) -> set[str]:
    return {ast.unparse(node.func) for node in ast.walk(ast.parse(path.read_text())) if isinstance(node, ast.Call)}


def test_the_dcgan_step_is_the_pytorch_step():
    used = calls(LISTINGS / "tf_dcgan_step.py")
    # the tape, detached fakes, both optimizers, BCE with logits, the latent draw
    assert {"tf.GradientTape", "tf.stop_gradient", "tape.gradient", "opt_d.apply_gradients",
            "opt_g.apply_gradients", "tf.keras.losses.BinaryCrossentropy", "tf.random.normal"} <= used
    text = (LISTINGS / "tf_dcgan_step.py").read_text()
    assert "beta_1=0.5" in text and "epsilon=1e-8" in text and "from_logits=True" in text


@pytest.fixture
def numpy_tf(monkeypatch):
    """A stand-in ``tensorflow`` with the four functions the loss listing calls."""
    tf = types.ModuleType("tensorflow")
    tf.reduce_mean, tf.square, tf.abs = np.mean, np.square, np.abs
    tf.stop_gradient = lambda x: x
    monkeypatch.setitem(sys.modules, "tensorflow", tf)
    namespace: dict = {}
    exec(compile((LISTINGS / "tf_cyclegan_losses.py").read_text(), "tf_cyclegan_losses.py", "exec"), namespace)
    return namespace


def test_the_cyclegan_losses_equal_the_packages(numpy_tf):
    rng = np.random.default_rng(0)
    real, fake = rng.normal(size=(4, 1, 8, 8)), rng.normal(size=(4, 1, 8, 8))
    img_a, img_b = rng.uniform(-1, 1, size=(2, 3, 16, 16)), rng.uniform(-1, 1, size=(2, 3, 16, 16))
    t = torch.from_numpy
    assert numpy_tf["lsgan_d_loss"](real, fake) == pytest.approx(losses.lsgan_d_loss(t(real), t(fake)).item())
    assert numpy_tf["lsgan_g_loss"](fake) == pytest.approx(losses.lsgan_g_loss(t(fake)).item())
    assert numpy_tf["cycle_loss"](img_a, img_b) == pytest.approx(losses.cycle_loss(t(img_a), t(img_b)).item())
    assert numpy_tf["identity_loss"](img_a, img_b) == pytest.approx(losses.identity_loss(t(img_a), t(img_b)).item())
    config = CycleGANConfig()  # the PyTorch recipe's weights
    assert numpy_tf["LAMBDA_CYCLE"] == config.lambda_cycle and numpy_tf["LAMBDA_IDENTITY"] == config.lambda_identity
