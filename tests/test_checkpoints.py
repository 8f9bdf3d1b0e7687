"""spokenstyle.checkpoints: round trips, and every way a checkpoint can be wrong."""

from __future__ import annotations

import json
from dataclasses import dataclass

import pytest
import torch
from torch import nn

from spokenstyle import checkpoints
from spokenstyle.checkpoints import CheckpointError


@dataclass
class TinyConfig:
    width: int = 4  # small enough for a unit test


def tiny(width: int = 4) -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(3, width), nn.BatchNorm1d(width), nn.Linear(width, 1))


def test_round_trip_restores_every_tensor_and_the_manifest(tmp_path):
    model = tiny()
    checkpoints.save_pretrained(model, tmp_path / "ck", config=TinyConfig(), metrics={"acc": 0.9},
                                command="spokenstyle train tiny")
    other = tiny()
    for p in other.parameters():
        nn.init.zeros_(p)
    ckpt = checkpoints.load_pretrained(other, tmp_path / "ck")
    for key, value in model.state_dict().items():
        assert torch.equal(value, other.state_dict()[key]), key
    assert ckpt.config == {"width": 4}
    assert ckpt.metrics == {"acc": 0.9}
    assert ckpt.manifest["command"] == "spokenstyle train tiny"
    assert ckpt.manifest["extra"]["class"] == "Sequential"
    x = torch.randn(5, 3)
    model.eval(), other.eval()
    assert torch.equal(model(x), other(x))


def test_manifest_records_the_sha256_of_the_weights(tmp_path):
    checkpoints.save_checkpoint(tmp_path, {"w": torch.ones(2)})
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    info = manifest["files"]["model.safetensors"]
    assert info["sha256"] == checkpoints.sha256_file(tmp_path / "model.safetensors")
    assert manifest["format"] == checkpoints.FORMAT


def test_update_manifest_rescores_without_touching_the_weights(tmp_path):
    checkpoints.save_checkpoint(tmp_path, {"w": torch.arange(4.0)}, metrics={"acc": 0.5, "loss": 1.0},
                                command="spokenstyle train tiny", extra={"seconds": 3})
    before = json.loads((tmp_path / "manifest.json").read_text())
    weights = (tmp_path / "model.safetensors").read_bytes()
    after = checkpoints.update_manifest(tmp_path, metrics={"acc": 0.75}, extra={"decoding": "beam"},
                                        command="spokenstyle train tiny_eval")
    assert after == checkpoints.load_checkpoint(tmp_path).manifest
    assert after["metrics"] == {"acc": 0.75, "loss": 1.0}  # new keys win, old ones stay
    assert after["extra"]["seconds"] == 3 and after["extra"]["decoding"] == "beam"
    assert after["extra"]["rescored"]["command"] == "spokenstyle train tiny_eval"
    assert after["command"] == before["command"] and after["created"] == before["created"]
    assert (tmp_path / "model.safetensors").read_bytes() == weights


def test_update_manifest_refuses_weights_its_manifest_does_not_describe(tmp_path):
    checkpoints.save_checkpoint(tmp_path, {"w": torch.arange(4.0)}, metrics={"acc": 0.5})
    checkpoints.save_checkpoint(tmp_path / "other", {"w": torch.ones(4)})
    (tmp_path / "model.safetensors").write_bytes((tmp_path / "other" / "model.safetensors").read_bytes())
    text = (tmp_path / "manifest.json").read_text()
    with pytest.raises(CheckpointError, match="does not match its manifest"):
        checkpoints.update_manifest(tmp_path, metrics={"acc": 1.0})
    assert (tmp_path / "manifest.json").read_text() == text
    with pytest.raises(TypeError, match="JSON-serialisable"):
        checkpoints.update_manifest(tmp_path / "other", metrics={"acc": object()})


def test_corrupt_weights_are_refused(tmp_path):
    checkpoints.save_checkpoint(tmp_path, {"w": torch.arange(100.0)})
    path = tmp_path / "model.safetensors"
    data = bytearray(path.read_bytes())
    data[-5] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="corrupt or was replaced"):
        checkpoints.load_checkpoint(tmp_path)


def test_wrong_sha256_in_the_manifest_is_refused(tmp_path):
    checkpoints.save_checkpoint(tmp_path, {"w": torch.ones(2)})
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    manifest["files"]["model.safetensors"]["sha256"] = "0" * 64
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(CheckpointError, match="does not match its manifest"):
        checkpoints.load_checkpoint(tmp_path)


def test_missing_manifest_is_refused(tmp_path):
    checkpoints.save_checkpoint(tmp_path, {"w": torch.ones(2)})
    (tmp_path / "manifest.json").unlink()
    with pytest.raises(CheckpointError, match="has no manifest.json"):
        checkpoints.load_checkpoint(tmp_path)


def test_missing_folder_and_missing_weights_are_refused(tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        checkpoints.load_checkpoint(tmp_path / "nowhere")
    checkpoints.save_checkpoint(tmp_path, {"w": torch.ones(2)})
    (tmp_path / "model.safetensors").unlink()
    with pytest.raises(CheckpointError, match="file is missing"):
        checkpoints.load_checkpoint(tmp_path)


def test_foreign_files_are_refused(tmp_path):
    # a pickle (torch.save) where safetensors belongs, with a manifest that vouches for it
    torch.save({"w": torch.ones(2)}, tmp_path / "model.safetensors")
    manifest = {"format": checkpoints.FORMAT,
                "files": {"model.safetensors": {"sha256": checkpoints.sha256_file(tmp_path / "model.safetensors")}}}
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(CheckpointError, match="not a readable safetensors file"):
        checkpoints.load_checkpoint(tmp_path)
    # somebody else's JSON
    (tmp_path / "manifest.json").write_text(json.dumps({"format": "keras-v3"}))
    with pytest.raises(CheckpointError, match="not a spokenstyle manifest"):
        checkpoints.load_checkpoint(tmp_path)
    (tmp_path / "manifest.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="not valid JSON"):
        checkpoints.load_checkpoint(tmp_path)


def test_a_checkpoint_of_another_shape_is_refused(tmp_path):
    checkpoints.save_pretrained(tiny(4), tmp_path)
    with pytest.raises(CheckpointError, match="has shape"):
        checkpoints.load_pretrained(tiny(8), tmp_path)
    with pytest.raises(CheckpointError, match="missing"):
        checkpoints.load_pretrained(nn.Linear(3, 4), tmp_path)


def test_an_interrupted_save_leaves_the_old_checkpoint_intact(tmp_path, monkeypatch):
    checkpoints.save_checkpoint(tmp_path, {"w": torch.ones(2)}, metrics={"v": 1})

    def crash(*args, **kwargs):
        raise KeyboardInterrupt("power cut")

    monkeypatch.setattr(checkpoints, "save_file", crash)
    with pytest.raises(KeyboardInterrupt):
        checkpoints.save_checkpoint(tmp_path, {"w": torch.zeros(2)}, metrics={"v": 2})
    ckpt = checkpoints.load_checkpoint(tmp_path)
    assert torch.equal(ckpt.tensors["w"], torch.ones(2)) and ckpt.metrics == {"v": 1}
    assert not list(tmp_path.glob("*.tmp")), "temporary files must be cleaned up"


def test_bad_arguments_are_clear_errors(tmp_path):
    with pytest.raises(TypeError, match="must be a torch.Tensor"):
        checkpoints.save_checkpoint(tmp_path, {"w": [1, 2]})
    with pytest.raises(TypeError, match="JSON-serialisable"):
        checkpoints.save_checkpoint(tmp_path, {"w": torch.ones(1)}, metrics={"f": object()})
    with pytest.raises(ValueError, match="ending in .safetensors"):
        checkpoints.save_checkpoint(tmp_path, {"w": torch.ones(1)}, filename="model.pt")
    with pytest.raises(TypeError, match="nn.Module"):
        checkpoints.save_pretrained({"w": torch.ones(1)}, tmp_path)


def test_shipped_registry_lists_shipped_folders(tmp_path, monkeypatch):
    monkeypatch.setenv("SPOKENSTYLE_DATA", str(tmp_path))
    assert checkpoints.shipped() == {}
    checkpoints.save_pretrained(tiny(), tmp_path / "checkpoints" / "tiny", metrics={"acc": 1.0})
    registry = checkpoints.shipped()
    assert list(registry) == ["tiny"] and registry["tiny"]["metrics"] == {"acc": 1.0}
    assert checkpoints.shipped_path("tiny") == tmp_path / "checkpoints" / "tiny"
    with pytest.raises(CheckpointError, match="available: \\['tiny'\\]"):
        checkpoints.shipped_path("dcgan")


def test_resolve_takes_a_shipped_name_or_a_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("SPOKENSTYLE_DATA", str(tmp_path / "data"))
    shipped_dir = tmp_path / "data" / "checkpoints" / "tiny"
    checkpoints.save_pretrained(tiny(), shipped_dir)
    assert checkpoints.resolve("tiny") == shipped_dir  # a name: looked up among the shipped ones
    own = tmp_path / "mine"
    checkpoints.save_pretrained(tiny(), own)
    assert checkpoints.resolve(own) == own and checkpoints.resolve(str(own)) == own  # a folder: as given
    with pytest.raises(CheckpointError, match="no shipped checkpoint named 'nope'"):
        checkpoints.resolve("nope")


def test_build_pretrained_rebuilds_from_the_recorded_config(tmp_path):
    saved = tiny(width=6)
    with torch.no_grad():
        saved[0].weight.add_(1.0)  # unlike a fresh tiny(6): the weights must come from the file
    checkpoints.save_pretrained(saved, tmp_path / "ck", config=TinyConfig(width=6))
    rebuilt = checkpoints.build_pretrained(lambda config: tiny(config.width), TinyConfig, tmp_path / "ck", what="tiny")
    assert not rebuilt.training and rebuilt[0].out_features == 6  # the recorded width, not the default
    for key, value in saved.state_dict().items():
        assert torch.equal(value, rebuilt.state_dict()[key]), key

    @dataclass
    class OtherConfig:
        depth: int = 2

    with pytest.raises(CheckpointError, match="is not a other checkpoint: its config does not fit OtherConfig"):
        checkpoints.build_pretrained(lambda config: tiny(), OtherConfig, tmp_path / "ck", what="other")


def test_every_committed_checkpoint_verifies():
    for name in checkpoints.shipped():
        checkpoints.load_checkpoint(checkpoints.shipped_path(name))
