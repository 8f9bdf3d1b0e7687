"""The book's DCGAN generator written in Keras 3, loading the PyTorch weights (appendix A).

The source's §7 recommends Keras. Keras 3 runs on several backends (JAX, TensorFlow, PyTorch);
with ``KERAS_BACKEND=torch`` set before keras is first imported its layers are PyTorch modules
and nothing of TensorFlow is needed. This module writes :class:`spokenstyle.models.dcgan.Generator`
layer for layer in Keras, copies a PyTorch state dict into it, and measures that both draw the
same pictures from the same latent vectors.

Layer by layer (PyTorch → Keras 3; a ``tf.keras`` program uses the same Keras classes):

* ``z[:, :, None, None]`` → ``layers.Reshape((latent_dim, 1, 1))``;
* ``nn.ConvTranspose2d(c_in, c_out, 4, stride=1, padding=0)`` → ``layers.Conv2DTranspose(c_out,
  4, strides=1, padding="valid")``; with ``stride=2, padding=1`` → ``strides=2, padding="same"``
  (both double the side; "same" pads one pixel on each side, as ``padding=1`` does). Kernel
  layout: PyTorch (c_in, c_out, kh, kw), Keras (kh, kw, c_out, c_in): ``W.permute(2, 3, 1, 0)``;
* ``nn.BatchNorm2d(c)`` in eval mode → ``layers.BatchNormalization(axis=1, epsilon=1e-5)`` called
  with ``training=False``: ``weight, bias, running_mean, running_var`` → ``gamma, beta,
  moving_mean, moving_variance``. The momentum conventions are mirror images (PyTorch 0.1 weighs
  the new batch, Keras 0.9 the old average); they matter only when training;
* :class:`~spokenstyle.models.dcgan.ConditionalBatchNorm2d` (a class-conditional generator,
  ``DCGANConfig.n_classes > 0``) → a ``BatchNormalization(center=False, scale=False)`` and two
  ``layers.Embedding(n_classes, c)`` for γ[y] and β[y], combined as γ[y]·x̂ + β[y];
* ``nn.ReLU`` → ``layers.ReLU``; ``nn.Tanh`` → ``layers.Activation("tanh")``.

Every Keras layer carries the name of the PyTorch module it mirrors, with ``_`` for ``.``
(``net.3.0`` → ``net_3_0``), so :func:`load_torch_weights` finds each tensor by name and checks
every shape, as nanoGPT's ``from_pretrained`` does with GPT-2's weights.

The model is channels-first (NCHW, PyTorch's layout) by default. ``data_format="channels_last"``
builds the NHWC model that TensorFlow's CPU kernels want; :func:`generate` returns NCHW either
way, so outputs compare directly.

References:
    Keras 3 multi-backend: https://keras.io/keras_3/
    Radford, Metz & Chintala 2016 (DCGAN), https://arxiv.org/abs/1511.06434
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch

from ..models.dcgan import DCGANConfig, Generator, dcgan_generator

__all__ = [
    "INSTALL_HINT",
    "keras_available",
    "build_generator",
    "load_torch_weights",
    "from_torch",
    "from_pretrained",
    "generate",
    "max_abs_difference",
    "compare_layers",
]

#: What the error says when Keras 3 is missing.
INSTALL_HINT = 'Keras 3 is not installed: pip install "spokenstyle[tools]" (or pip install "keras>=3")'

# Keras reads its backend once, when it is first imported. The book's backend is PyTorch, so no
# TensorFlow is needed; setdefault keeps a backend the reader chose (the port runs on any backend).
os.environ.setdefault("KERAS_BACKEND", "torch")

if importlib.util.find_spec("keras") is not None:
    import keras
else:  # optional: every function below raises ImportError(INSTALL_HINT)
    keras = None

_EPS = 1e-5  # nn.BatchNorm2d's default epsilon (Keras' default is 1e-3)


def keras_available() -> bool:
    """True when Keras 3 can be imported (``pip install "spokenstyle[tools]"``)."""
    return keras is not None and int(keras.__version__.split(".")[0]) >= 3


def _require_keras() -> None:
    if not keras_available():
        raise ImportError(INSTALL_HINT)


def _check_format(data_format: str) -> int:
    """The channel axis of ``data_format`` (1 or -1)."""
    if data_format not in ("channels_first", "channels_last"):
        raise ValueError(f"data_format must be 'channels_first' or 'channels_last', got {data_format!r}")
    return 1 if data_format == "channels_first" else -1


# -- the architecture, from the same config as the PyTorch generator ---------------------------

def _up(x: Any, filters: int, stride: int, *, bias: bool, name: str, data_format: str) -> Any:
    """``nn.ConvTranspose2d(kernel 4, stride 1 / padding 0 or stride 2 / padding 1)`` in Keras."""
    padding = "valid" if stride == 1 else "same"
    layer = keras.layers.Conv2DTranspose(filters, 4, strides=stride, padding=padding, use_bias=bias,
                                         data_format=data_format, name=name)
    return layer(x)


def _norm(x: Any, y: Any, channels: int, config: DCGANConfig, *, name: str, axis: int) -> Any:
    """BatchNorm2d, or the conditional BatchNorm γ[y]·x̂ + β[y] when ``config.n_classes > 0``."""
    if not config.batch_norm:
        return x  # nn.Identity
    if not config.conditional:
        return keras.layers.BatchNormalization(axis=axis, epsilon=_EPS, name=name)(x)
    x_hat = keras.layers.BatchNormalization(axis=axis, epsilon=_EPS, center=False, scale=False,
                                            name=f"{name}_bn")(x)
    shape = (channels, 1, 1) if axis == 1 else (1, 1, channels)  # broadcast over H and W
    gamma = keras.layers.Reshape(shape, name=f"{name}_gamma_map")(
        keras.layers.Embedding(config.n_classes, channels, name=f"{name}_gamma")(y))  # (B, c, 1, 1)
    beta = keras.layers.Reshape(shape, name=f"{name}_beta_map")(
        keras.layers.Embedding(config.n_classes, channels, name=f"{name}_beta")(y))
    scaled = keras.layers.Multiply(name=f"{name}_scale")([x_hat, gamma])
    return keras.layers.Add(name=f"{name}_shift")([scaled, beta])


def build_generator(config: DCGANConfig, *, data_format: str = "channels_first") -> Any:
    """The DCGAN generator of ``config`` as a ``keras.Model`` with random weights.

    Inputs: ``z`` (B, latent_dim) float, and ``y`` (B,) int class ids when ``config.n_classes >
    0``. Output: (B, channels, R, R) in [-1, 1] (channels-first) or (B, R, R, channels).
    """
    _require_keras()
    if not isinstance(config, DCGANConfig):
        raise TypeError(f"config must be a DCGANConfig, got {type(config).__name__}")
    axis = _check_format(data_format)
    bn = config.batch_norm
    c = config.g_width * 2 ** config.n_blocks  # channels at 4 x 4, as in Generator
    z = keras.Input((config.latent_dim,), name="z")
    y = keras.Input((), dtype="int32", name="y") if config.conditional else None
    as_image = (config.latent_dim, 1, 1) if axis == 1 else (1, 1, config.latent_dim)
    x = keras.layers.Reshape(as_image, name="z_as_image")(z)  # (B, latent_dim, 1, 1)
    x = _up(x, c, 1, bias=not bn, name="net_0", data_format=data_format)  # (B, c, 4, 4)
    x = _norm(x, y, c, config, name="net_1", axis=axis)
    x = keras.layers.ReLU(name="net_2")(x)
    for i in range(config.n_blocks):  # UpBlock i is net.{3 + i}: conv, norm, ReLU
        x = _up(x, c // 2, 2, bias=not bn, name=f"net_{3 + i}_0", data_format=data_format)  # (B, c/2, 2H, 2W)
        x = _norm(x, y, c // 2, config, name=f"net_{3 + i}_1", axis=axis)
        x = keras.layers.ReLU(name=f"net_{3 + i}_2")(x)
        c //= 2
    x = _up(x, config.channels, 2, bias=True, name=f"net_{3 + config.n_blocks}", data_format=data_format)
    x = keras.layers.Activation("tanh", name=f"net_{4 + config.n_blocks}")(x)  # (B, 3, R, R)
    inputs = [z, y] if y is not None else z
    return keras.Model(inputs, x, name="dcgan_generator")


# -- weights -----------------------------------------------------------------------------------

def _torch_tensors(layer: Any, prefix: str, state: Mapping[str, torch.Tensor]) -> list[tuple[str, np.ndarray]]:
    """(state-dict key, array in Keras' layout) for each weight of ``layer``, in ``layer.weights`` order."""
    kind = type(layer).__name__
    if kind == "Conv2DTranspose":
        keys = [f"{prefix}.weight"] + ([f"{prefix}.bias"] if layer.use_bias else [])
    elif kind == "BatchNormalization":
        keys = ([f"{prefix}.weight"] if layer.scale else []) + ([f"{prefix}.bias"] if layer.center else []) \
            + [f"{prefix}.running_mean", f"{prefix}.running_var"]
    elif kind == "Embedding":
        keys = [f"{prefix}.weight"]
    else:
        raise ValueError(f"Keras layer {layer.name!r} ({kind}) has weights this port does not map")
    missing = [key for key in keys if key not in state]
    if missing:
        raise ValueError(f"the state dict lacks {missing} for Keras layer {layer.name!r}: is it the state "
                         "dict of a DCGAN generator with the same config?")
    out = []
    for key in keys:
        value = state[key].detach().cpu().float()
        if kind == "Conv2DTranspose" and key.endswith(".weight"):
            value = value.permute(2, 3, 1, 0)  # PyTorch (c_in, c_out, kh, kw) -> Keras (kh, kw, c_out, c_in)
        out.append((key, value.numpy()))
    return out


def load_torch_weights(model: Any, state_dict: Mapping[str, torch.Tensor]) -> Any:
    """Copies a PyTorch generator's ``state_dict()`` into a model from :func:`build_generator`.

    Each Keras layer takes the tensors of the PyTorch module of the same name; every shape is
    checked, and a tensor left over (other than BatchNorm's ``num_batches_tracked`` counter)
    means the two architectures differ: both raise ``ValueError`` naming the key. Returns
    ``model``.
    """
    _require_keras()
    if not isinstance(state_dict, Mapping) or not all(isinstance(v, torch.Tensor) for v in state_dict.values()):
        raise TypeError("state_dict must map names to torch tensors (generator.state_dict())")
    used: set[str] = set()
    for layer in model.layers:
        if not layer.weights:
            continue
        pairs = _torch_tensors(layer, layer.name.replace("_", "."), state_dict)
        if len(pairs) != len(layer.weights):
            raise ValueError(f"Keras layer {layer.name!r} has {len(layer.weights)} weights, the state dict "
                             f"gives {len(pairs)}")
        for (key, value), variable in zip(pairs, layer.weights):
            if tuple(value.shape) != tuple(variable.shape):
                raise ValueError(f"{key}: shape {tuple(value.shape)} (in Keras' layout) does not fit "
                                 f"{variable.path} of shape {tuple(variable.shape)}")
        layer.set_weights([value for _, value in pairs])
        used.update(key for key, _ in pairs)
    left = sorted(k for k in state_dict if k not in used and not k.endswith("num_batches_tracked"))
    if left:
        raise ValueError(f"the state dict has tensors the Keras model has no place for: {left}")
    return model


def from_torch(generator: Generator, *, data_format: str = "channels_first") -> Any:
    """A Keras copy of a PyTorch :class:`~spokenstyle.models.dcgan.Generator`: same config, same weights."""
    if not isinstance(generator, Generator):
        raise TypeError(f"generator must be a spokenstyle.models.dcgan.Generator, got {type(generator).__name__}")
    model = build_generator(generator.config, data_format=data_format)
    return load_torch_weights(model, generator.state_dict())


def from_pretrained(weights: str | Path = "dcgan", *, data_format: str = "channels_first") -> Any:
    """The Keras copy of a DCGAN checkpoint's generator (default: the shipped ``"dcgan"``)."""
    return from_torch(dcgan_generator(weights=weights), data_format=data_format)


# -- drawing and comparing ---------------------------------------------------------------------

def _as_array(x: Any, name: str, *, integer: bool = False) -> np.ndarray:
    arr = x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)
    if integer and not np.issubdtype(arr.dtype, np.integer):
        raise TypeError(f"{name} must hold integer class ids, got dtype {arr.dtype}")
    if not integer and not np.issubdtype(arr.dtype, np.floating):
        raise TypeError(f"{name} must be a floating-point array, got dtype {arr.dtype}")
    return arr.astype(np.int32 if integer else np.float32)


def generate(model: Any, z: Any, y: Any = None) -> np.ndarray:
    """Runs a Keras generator in inference mode (BatchNorm uses its moving averages): latents
    ``z`` (B, latent_dim) [and class ids ``y`` (B,)] → images (B, C, R, R) in [-1, 1], NCHW
    whatever the model's data format, as a float32 NumPy array."""
    _require_keras()
    z_arr = _as_array(z, "z")
    latent_dim = model.inputs[0].shape[-1]
    if z_arr.ndim != 2 or z_arr.shape[1] != latent_dim:
        raise ValueError(f"z must have shape (B, {latent_dim}), got {tuple(z_arr.shape)}")
    conditional = len(model.inputs) == 2
    if conditional != (y is not None):
        raise ValueError("this generator is conditional: give y, (B,) class ids" if conditional
                         else "this generator is unconditional: give no class ids")
    inputs: Any = z_arr
    if conditional:
        y_arr = _as_array(y, "y", integer=True)
        if y_arr.shape != (z_arr.shape[0],):
            raise ValueError(f"y must have shape ({z_arr.shape[0]},), got {tuple(y_arr.shape)}")
        inputs = [z_arr, y_arr]
    out = np.asarray(model.predict_on_batch(inputs))  # inference mode, no gradient tape, NumPy out
    return out if _data_format(model) == "channels_first" else out.transpose(0, 3, 1, 2)  # NHWC -> NCHW


def _data_format(model: Any) -> str:
    """The data format of the model's convolutions (all of them share one)."""
    for layer in model.layers:
        if type(layer).__name__ == "Conv2DTranspose":
            return layer.data_format
    raise ValueError(f"{getattr(model, 'name', model)!r} has no Conv2DTranspose: not a DCGAN generator")


def max_abs_difference(generator: Generator, model: Any, z: torch.Tensor, y: torch.Tensor | None = None) -> float:
    """``max |G_torch(z) − G_keras(z)|`` over every pixel of every picture, both in eval mode on the
    CPU in float32 (the appendix's equality check; on a GPU, TF32 convolutions would add ~1e-3)."""
    if not isinstance(z, torch.Tensor):
        raise TypeError(f"z must be a torch tensor, got {type(z).__name__}")
    cpu = torch.device("cpu")
    params = {p.device for p in generator.parameters()}
    was_training = generator.training
    generator.eval()
    try:
        with torch.no_grad():
            g = generator.to(cpu)
            ref = (g(z.to(cpu)) if y is None else g(z.to(cpu), y.to(cpu))).numpy()
    finally:
        generator.train(was_training)
        if params:
            generator.to(next(iter(params)))
    return float(np.abs(ref - generate(model, z, y)).max())


def compare_layers(generator: Generator, model: Any, z: torch.Tensor,
                   y: torch.Tensor | None = None) -> list[dict[str, Any]]:
    """The equality check layer by layer: one row per PyTorch module of ``generator.net`` with
    its Keras counterpart and the max abs difference of their outputs (both in eval mode on the
    CPU). The rows of the appendix's PyTorch ↔ Keras table come from here, so every row is
    checked by the numbers beside it."""
    _require_keras()
    named = [(name, module) for name, module in generator.named_modules()
             if name.startswith("net.") and (not list(module.children()) or type(module).__name__ == "ConditionalBatchNorm2d")
             and not name.split(".")[-1] in ("bn", "gamma", "beta")]
    outputs: dict[str, np.ndarray] = {}
    hooks = [module.register_forward_hook(
        lambda mod, inp, out, name=name: outputs.__setitem__(name, out.detach().cpu().clone().numpy()))
        for name, module in named]
    try:
        max_abs_difference(generator, model, z, y)  # runs both once; the hooks keep PyTorch's outputs
    finally:
        for hook in hooks:
            hook.remove()
    rows, keras_names = [], {layer.name for layer in model.layers}
    probes = []
    for name, module in named:
        if type(module).__name__ == "Identity":
            continue
        base = name.replace(".", "_")
        keras_name = f"{base}_shift" if f"{base}_shift" in keras_names else base
        if keras_name not in keras_names:
            raise ValueError(f"the Keras model has no layer for PyTorch module {name!r} ({type(module).__name__})")
        rows.append({"pytorch_module": name, "pytorch": type(module).__name__, "keras_layer": keras_name})
        probes.append(model.get_layer(keras_name).output)
    probe = keras.Model(model.input, probes)  # model.input: a tensor, or a list for (z, y)
    inputs = _as_array(z, "z") if y is None else [_as_array(z, "z"), _as_array(y, "y", integer=True)]
    nchw = _data_format(model) == "channels_first"
    for row, out in zip(rows, probe.predict_on_batch(inputs)):
        arr = np.asarray(out) if nchw else np.asarray(out).transpose(0, 3, 1, 2)
        row["keras"] = type(model.get_layer(row["keras_layer"])).__name__
        row["shape"] = tuple(arr.shape[1:])
        row["max_abs_diff"] = float(np.abs(outputs[row["pytorch_module"]] - arr).max())
    return rows
