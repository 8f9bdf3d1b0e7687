"""The Keras 3 port of the DCGAN generator (appendix A) draws what the PyTorch generator draws.

Equality with a reference implementation, as minGPT's test_huggingface_import does: tiny random
configs (unconditional and class-conditional, with and without BatchNorm, 32 and 64 px, both data
formats) with BatchNorm statistics and class embeddings drawn away from their initial values (so
that a mix-up of γ and β, or of the running mean and variance, cannot pass), and the shipped
checkpoint.
"""

from __future__ import annotations

import os
import pytest
import torch

from spokenstyle.interop import keras_dcgan as kd
from spokenstyle.models import dcgan as dc

if not os.environ.get("CI"):  # CI installs the pinned extras (requirements-ci.txt): there it must not skip
    pytest.importorskip("keras", reason='the Keras port needs pip install "spokenstyle[tools]"')

TOL = 1e-5  # the appendix's claim: max abs difference <= 1e-5


def randomized_generator(config: dc.DCGANConfig, seed: int = 0) -> dc.Generator:
    """A generator whose every tensor, buffers included, is away from its initial value."""
    torch.manual_seed(seed)
    G = dc.Generator(config)
    with torch.no_grad():
        for module in G.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.normal_(0.0, 0.5)
                module.running_var.uniform_(0.5, 2.0)
                if module.affine:
                    module.weight.normal_(1.0, 0.3)
                    module.bias.normal_(0.0, 0.3)
            elif isinstance(module, dc.ConditionalBatchNorm2d):
                module.gamma.weight.normal_(1.0, 0.3)
                module.beta.weight.normal_(0.0, 0.3)
            elif isinstance(module, torch.nn.ConvTranspose2d) and module.bias is not None:
                module.bias.normal_(0.0, 0.1)
    return G.eval()


CONFIGS = {
    "unconditional": dict(latent_dim=8, g_width=4),
    "conditional": dict(latent_dim=8, g_width=4, n_classes=3),
    "no-batchnorm": dict(latent_dim=8, g_width=4, batch_norm=False),
    "conditional-64px": dict(resolution=64, latent_dim=6, g_width=2, n_classes=2),
}


def latents(config: dc.DCGANConfig, n: int = 6) -> tuple[torch.Tensor, torch.Tensor | None]:
    g = torch.Generator().manual_seed(1)
    z = torch.randn(n, config.latent_dim, generator=g)
    y = torch.arange(n) % config.n_classes if config.conditional else None
    return z, y


@pytest.mark.parametrize("data_format", ["channels_first", "channels_last"])
@pytest.mark.parametrize("name", list(CONFIGS))
def test_keras_draws_what_pytorch_draws(name, data_format):
    config = dc.DCGANConfig(**CONFIGS[name])
    G = randomized_generator(config)
    model = kd.from_torch(G, data_format=data_format)
    z, y = latents(config)
    assert kd.max_abs_difference(G, model, z, y) <= TOL
    images = kd.generate(model, z, y)
    assert images.shape == (6, 3, config.resolution, config.resolution)
    assert images.min() >= -1 and images.max() <= 1


@pytest.mark.parametrize("name", ["unconditional", "conditional"])
def test_every_layer_agrees(name):
    """The appendix's table: one row per PyTorch module, each with its own difference."""
    config = dc.DCGANConfig(**CONFIGS[name])
    G = randomized_generator(config)
    rows = kd.compare_layers(G, kd.from_torch(G), *latents(config))
    assert [r["pytorch_module"] for r in rows] == ["net.0", "net.1", "net.2", "net.3.0", "net.3.1", "net.3.2",
                                                   "net.4.0", "net.4.1", "net.4.2", "net.5", "net.6"]
    norm = "ConditionalBatchNorm2d" if config.conditional else "BatchNorm2d"
    assert {r["pytorch"] for r in rows} == {"ConvTranspose2d", norm, "ReLU", "Tanh"}
    assert all(r["max_abs_diff"] <= TOL for r in rows), rows


def test_class_ids_change_the_picture_in_both_frameworks():
    """A conditional port that ignored y would pass the equality only if PyTorch ignored it too."""
    config = dc.DCGANConfig(**CONFIGS["conditional"])
    G = randomized_generator(config)
    model = kd.from_torch(G)
    z = torch.randn(1, config.latent_dim).repeat(3, 1)
    images = kd.generate(model, z, torch.tensor([0, 1, 2]))
    assert abs(images[0] - images[1]).max() > 1e-3
    assert kd.max_abs_difference(G, model, z, torch.tensor([0, 1, 2])) <= TOL


def test_the_shipped_dcgan_in_keras():
    G = dc.dcgan_generator(weights="dcgan")
    model = kd.from_pretrained("dcgan")
    z = G.sample_latent(64, generator=torch.Generator().manual_seed(0))
    assert kd.max_abs_difference(G, model, z) <= TOL
    # the Keras model holds exactly as many numbers as the PyTorch generator's state dict
    n_torch = sum(v.numel() for k, v in G.state_dict().items() if not k.endswith("num_batches_tracked"))
    assert sum(int(w.numpy().size) for w in model.weights) == n_torch


def test_a_foreign_state_dict_is_refused_with_the_key():
    small = dc.Generator(dc.DCGANConfig(latent_dim=8, g_width=4))
    model = kd.build_generator(dc.DCGANConfig(latent_dim=8, g_width=8))
    with pytest.raises(ValueError, match="net.0.weight"):
        kd.load_torch_weights(model, small.state_dict())
    conditional = dc.Generator(dc.DCGANConfig(**CONFIGS["conditional"]))
    with pytest.raises(ValueError, match="lacks"):
        kd.load_torch_weights(kd.build_generator(conditional.config), small.state_dict())
    with pytest.raises(ValueError, match="lacks"):
        kd.load_torch_weights(kd.build_generator(small.config), conditional.state_dict())
    extra = {**small.state_dict(), "net.9.weight": torch.zeros(1)}
    with pytest.raises(ValueError, match=r"no place for: \['net.9.weight'\]"):
        kd.load_torch_weights(kd.build_generator(small.config), extra)


def test_bad_inputs_are_named():
    config = dc.DCGANConfig(**CONFIGS["conditional"])
    model = kd.build_generator(config)
    with pytest.raises(ValueError, match="conditional: give y"):
        kd.generate(model, torch.randn(2, 8))
    with pytest.raises(ValueError, match=r"z must have shape \(B, 8\)"):
        kd.generate(model, torch.randn(2, 5), torch.tensor([0, 1]))
    with pytest.raises(TypeError, match="integer class ids"):
        kd.generate(model, torch.randn(2, 8), torch.tensor([0.0, 1.0]))
    with pytest.raises(ValueError, match="data_format"):
        kd.build_generator(config, data_format="NCHW")
    with pytest.raises(TypeError, match="DCGANConfig"):
        kd.build_generator({"latent_dim": 8})


def test_without_keras_the_error_says_what_to_install(monkeypatch):
    monkeypatch.setattr(kd, "keras", None)
    assert not kd.keras_available()
    with pytest.raises(ImportError, match=r'pip install "spokenstyle\[tools\]"'):
        kd.build_generator(dc.DCGANConfig())
