"""spokenstyle.checkpoints: round trips, and every way a checkpoint can be wrong."""

from __future__ import annotations

import json
import math
import os
import shlex
import stat
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from torch import nn

from spokenstyle import checkpoints, runtime
from spokenstyle.checkpoints import CheckpointError

ROOT = Path(__file__).resolve().parents[1]


@dataclass
class TinyConfig:
    width: int = 4  # small enough for a unit test


def weights_of(directory: Path) -> Path:
    """The weights file a checkpoint's manifest names (new saves name it by its sha256)."""
    (name,) = json.loads((directory / "manifest.json").read_text())["files"]
    return directory / name


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
    (name, info), = manifest["files"].items()
    assert info["sha256"] == checkpoints.sha256_file(tmp_path / name)
    assert info["bytes"] == (tmp_path / name).stat().st_size
    assert manifest["format"] == checkpoints.FORMAT


def test_new_weights_are_named_by_their_sha256(tmp_path):
    checkpoints.save_checkpoint(tmp_path, {"w": torch.ones(2)})
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    (name, info), = manifest["files"].items()
    assert name == f"model-{info['sha256'][:16]}.safetensors"
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["manifest.json", name])
    checkpoints.save_checkpoint(tmp_path, {"w": torch.zeros(2)})  # other weights: another name
    (second, info2), = json.loads((tmp_path / "manifest.json").read_text())["files"].items()
    assert second == f"model-{info2['sha256'][:16]}.safetensors" != name
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["manifest.json", second])  # the old weights went
    assert torch.equal(checkpoints.load_checkpoint(tmp_path).tensors["w"], torch.zeros(2))


def test_a_given_filename_is_used_and_checked(tmp_path):
    checkpoints.save_checkpoint(tmp_path, {"w": torch.ones(2)}, filename="step-00000003.safetensors")
    assert list(json.loads((tmp_path / "manifest.json").read_text())["files"]) == ["step-00000003.safetensors"]
    for bad in ("../x.safetensors", "sub/x.safetensors", ".hidden.safetensors", "model.pt"):
        with pytest.raises(ValueError, match="plain name ending in .safetensors"):
            checkpoints.save_checkpoint(tmp_path / "other", {"w": torch.ones(1)}, filename=bad)
    assert not (tmp_path / "other").exists()  # checked before anything is written


def test_the_new_weights_are_written_beside_the_old_before_the_manifest_switches(tmp_path, monkeypatch):
    checkpoints.save_checkpoint(tmp_path, {"w": torch.ones(2)}, metrics={"v": 1})
    old = weights_of(tmp_path)
    seen = []
    write = checkpoints.atomic_write_bytes

    def spy(path, data):
        if Path(path).name == "manifest.json":  # the moment of the switch
            seen.append(sorted(p.name for p in tmp_path.glob("*.safetensors")))
        return write(path, data)

    monkeypatch.setattr(checkpoints, "atomic_write_bytes", spy)
    checkpoints.save_checkpoint(tmp_path, {"w": torch.zeros(2)}, metrics={"v": 2})
    new = weights_of(tmp_path)
    assert new != old
    assert seen == [sorted([old.name, new.name])], "both weights files exist when the manifest is switched"
    assert not old.exists() and new.exists()  # the old weights are removed after the switch


@pytest.mark.parametrize("filename", [None, "model.safetensors"])
def test_a_save_killed_at_the_manifest_switch_leaves_the_old_checkpoint(tmp_path, monkeypatch, filename):
    checkpoints.save_checkpoint(tmp_path, {"w": torch.ones(2)}, metrics={"v": 1}, filename=filename)
    write = checkpoints.atomic_write_bytes

    def crash(path, data):
        if Path(path).name == "manifest.json":
            raise KeyboardInterrupt("power cut")
        return write(path, data)

    monkeypatch.setattr(checkpoints, "atomic_write_bytes", crash)
    with pytest.raises(KeyboardInterrupt):
        checkpoints.save_checkpoint(tmp_path, {"w": torch.zeros(2)}, metrics={"v": 2}, filename=filename)
    ckpt = checkpoints.load_checkpoint(tmp_path)  # the old manifest still vouches for its own weights
    assert torch.equal(ckpt.tensors["w"], torch.ones(2)) and ckpt.metrics == {"v": 1}
    monkeypatch.setattr(checkpoints, "atomic_write_bytes", write)
    checkpoints.save_checkpoint(tmp_path, {"w": torch.zeros(2)}, metrics={"v": 3}, filename=filename)
    ckpt = checkpoints.load_checkpoint(tmp_path)
    assert torch.equal(ckpt.tensors["w"], torch.zeros(2)) and ckpt.metrics == {"v": 3}
    assert len(list(tmp_path.glob("*.safetensors"))) == 1  # the orphan of the killed save is gone too


def test_stale_temporary_files_are_removed_by_the_next_save(tmp_path):
    checkpoints.save_checkpoint(tmp_path, {"w": torch.ones(2)})
    stale = [tmp_path / ".weights.abc123.tmp", tmp_path / ".manifest.json.xyz.tmp"]
    for path in stale:
        path.write_bytes(b"half a file from a killed save")
    (tmp_path / "notes.tmp").write_text("not ours")
    checkpoints.save_checkpoint(tmp_path, {"w": torch.zeros(2)})
    assert not any(path.exists() for path in stale)
    assert (tmp_path / "notes.tmp").read_text() == "not ours"  # only the save's own hidden temporaries go
    assert not list(tmp_path.glob(".*.tmp"))


@pytest.mark.parametrize("umask", [0o022, 0o002, 0o077])
def test_saved_files_get_the_mode_a_plain_open_would_give(tmp_path, umask):
    previous = os.umask(umask)
    try:
        checkpoints.save_checkpoint(tmp_path / "ck", {"w": torch.ones(2)})
        checkpoints.update_manifest(tmp_path / "ck", metrics={"acc": 1.0})
    finally:
        os.umask(previous)
    for path in (tmp_path / "ck" / "manifest.json", weights_of(tmp_path / "ck")):
        assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask, path.name


def test_update_manifest_rescores_without_touching_the_weights(tmp_path):
    checkpoints.save_checkpoint(tmp_path, {"w": torch.arange(4.0)}, metrics={"acc": 0.5, "loss": 1.0},
                                command="spokenstyle train tiny", extra={"seconds": 3})
    before = json.loads((tmp_path / "manifest.json").read_text())
    weights = weights_of(tmp_path).read_bytes()
    after = checkpoints.update_manifest(tmp_path, metrics={"acc": 0.75}, extra={"decoding": "beam"},
                                        command="spokenstyle train tiny_eval")
    assert after == checkpoints.load_checkpoint(tmp_path).manifest
    assert after["metrics"] == {"acc": 0.75, "loss": 1.0}  # new keys win, old ones stay
    assert after["extra"]["seconds"] == 3 and after["extra"]["decoding"] == "beam"
    assert after["extra"]["rescored"]["command"] == "spokenstyle train tiny_eval"
    assert after["command"] == before["command"] and after["created"] == before["created"]
    assert weights_of(tmp_path).read_bytes() == weights


def test_update_manifest_refuses_weights_its_manifest_does_not_describe(tmp_path):
    checkpoints.save_checkpoint(tmp_path, {"w": torch.arange(4.0)}, metrics={"acc": 0.5})
    checkpoints.save_checkpoint(tmp_path / "other", {"w": torch.ones(4)})
    weights_of(tmp_path).write_bytes(weights_of(tmp_path / "other").read_bytes())
    text = (tmp_path / "manifest.json").read_text()
    with pytest.raises(CheckpointError, match="does not match its manifest"):
        checkpoints.update_manifest(tmp_path, metrics={"acc": 1.0})
    assert (tmp_path / "manifest.json").read_text() == text
    with pytest.raises(TypeError, match="JSON-serialisable"):
        checkpoints.update_manifest(tmp_path / "other", metrics={"acc": object()})


def test_corrupt_weights_are_refused(tmp_path):
    checkpoints.save_checkpoint(tmp_path, {"w": torch.arange(100.0)})
    path = weights_of(tmp_path)
    data = bytearray(path.read_bytes())
    data[-5] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="corrupt or was replaced"):
        checkpoints.load_checkpoint(tmp_path)


def test_wrong_sha256_in_the_manifest_is_refused(tmp_path):
    checkpoints.save_checkpoint(tmp_path, {"w": torch.ones(2)})
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    manifest["files"][weights_of(tmp_path).name]["sha256"] = "0" * 64
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
    weights_of(tmp_path).unlink()
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


def test_resolve_takes_a_file_inside_a_checkpoint(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    own = tmp_path / "mine"
    checkpoints.save_pretrained(tiny(), own)
    weights = weights_of(own)
    for path in (own / "manifest.json", weights):
        assert checkpoints.resolve(path) == own
        assert checkpoints.resolve(str(path)) == own
    assert checkpoints.resolve("mine/manifest.json") == Path("mine")  # relative, as given
    assert checkpoints.resolve(Path("mine") / weights.name) == Path("mine")
    rebuilt = checkpoints.build_pretrained(lambda config: tiny(), TinyConfig, own / "manifest.json")
    assert rebuilt.checkpoint_path == own
    with pytest.raises(TypeError, match="shipped name or a path"):
        checkpoints.resolve(3)


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


def _write_manifest(directory: Path, files) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "manifest.json").write_text(json.dumps({"format": checkpoints.FORMAT, "files": files}))


@pytest.mark.parametrize("name", ["../x.safetensors", "sub/x.safetensors", "a/../x.safetensors", "/abs/x.safetensors",
                                  "..", ".", "", "x.pt"])
def test_read_manifest_refuses_a_weights_entry_that_is_not_a_plain_name(tmp_path, name):
    _write_manifest(tmp_path / "ck", {name: {"sha256": "0" * 64}})
    with pytest.raises(CheckpointError, match="plain file name ending in .safetensors"):
        checkpoints.read_manifest(tmp_path / "ck")
    with pytest.raises(CheckpointError, match="plain file name"):
        checkpoints.load_checkpoint(tmp_path / "ck")


def test_a_manifest_naming_weights_outside_its_folder_is_refused_even_if_they_verify(tmp_path):
    checkpoints.save_checkpoint(tmp_path / "elsewhere", {"w": torch.ones(2)})
    outside = weights_of(tmp_path / "elsewhere")
    for name in (f"../elsewhere/{outside.name}", str(outside)):
        _write_manifest(tmp_path / "ck", {name: {"sha256": checkpoints.sha256_file(outside)}})
        with pytest.raises(CheckpointError, match="inside the checkpoint's folder"):
            checkpoints.load_checkpoint(tmp_path / "ck")


@pytest.mark.parametrize("entry", ["0" * 64, None, [], {}, {"sha256": 5}, {"sha256": None}, {"bytes": 10}])
def test_read_manifest_refuses_an_entry_without_a_sha256_string(tmp_path, entry):
    _write_manifest(tmp_path / "ck", {"model.safetensors": entry})
    with pytest.raises(CheckpointError, match="object with a 'sha256' string"):
        checkpoints.read_manifest(tmp_path / "ck")


def test_load_pretrained_refuses_nan_weights(tmp_path):
    broken = tiny()
    with torch.no_grad():
        broken[0].weight[0, 0] = math.nan
    checkpoints.save_pretrained(broken, tmp_path / "ck")
    target = tiny()
    target_state = {k: v.clone() for k, v in target.state_dict().items()}
    with pytest.raises(CheckpointError, match="NaN.*0.weight"):
        checkpoints.load_pretrained(target, tmp_path / "ck")
    for key, value in target.state_dict().items():
        assert torch.equal(value, target_state[key]), f"{key} was loaded from a NaN checkpoint"
    checkpoints.load_checkpoint(tmp_path / "ck")  # the file itself is intact: only loading into a model is refused


def test_shipped_skips_an_unreadable_manifest_and_reports_it(tmp_path, monkeypatch):
    monkeypatch.setenv("SPOKENSTYLE_DATA", str(tmp_path))
    root = tmp_path / "checkpoints"
    checkpoints.save_pretrained(tiny(), root / "good", metrics={"acc": 1.0})
    (root / "broken").mkdir()
    (root / "broken" / "manifest.json").write_text("{not json")
    _write_manifest(root / "escaping", {"../good/x.safetensors": {"sha256": "0" * 64}})
    assert list(checkpoints.shipped()) == ["good"]  # one broken folder never hides the others
    errors: dict[str, str] = {}
    assert list(checkpoints.shipped(errors=errors)) == ["good"]
    assert sorted(errors) == ["broken", "escaping"]
    assert "not valid JSON" in errors["broken"] and "plain file name" in errors["escaping"]


def test_save_records_the_running_command_by_default(tmp_path, monkeypatch):
    monkeypatch.setattr(sys, "argv", ["/usr/bin/spokenstyle", "train", "tiny", "--profile", "fast"])
    checkpoints.save_checkpoint(tmp_path / "a", {"w": torch.ones(1)})
    assert checkpoints.read_manifest(tmp_path / "a")["command"] == "spokenstyle train tiny --profile fast"
    checkpoints.save_checkpoint(tmp_path / "b", {"w": torch.ones(1)}, command="my own words")
    assert checkpoints.read_manifest(tmp_path / "b")["command"] == "my own words"


def test_command_line_names_the_program_and_writes_checkout_paths_relative_to_it(tmp_path):
    argv = ["/venv/bin/spokenstyle", "train", "dcgan", "--out", str(ROOT / "spokenstyle" / "shipped" / "checkpoints" / "dcgan"),
            f"--json={ROOT / 'reports' / 'x.json'}", "--set", "dcgan_all_styles.style=flat"]
    assert checkpoints.command_line(argv) == ("spokenstyle train dcgan --out spokenstyle/shipped/checkpoints/dcgan "
                                              "--json=reports/x.json --set dcgan_all_styles.style=flat")
    outside = tmp_path / "scratch dir"  # outside the checkout: kept absolute, and quoted
    assert checkpoints.command_line(["spokenstyle", "train", "x", "--out", str(outside)]) == \
        f"spokenstyle train x --out {shlex.quote(str(outside))}"
    assert checkpoints.command_line(["python", "-m", "spokenstyle"]) == "python -m spokenstyle"
    assert checkpoints.command_line([str(ROOT / "spokenstyle" / "__main__.py"), "info"]) == "spokenstyle info"
    assert checkpoints.command_line(["tools/gpu_train.py", "--out", "relative/dir"]) == \
        "tools/gpu_train.py --out relative/dir"  # relative paths are kept as typed


def test_every_committed_checkpoint_verifies(monkeypatch):
    monkeypatch.delenv("SPOKENSTYLE_DATA", raising=False)
    errors: dict[str, str] = {}
    names = checkpoints.shipped(errors=errors)
    assert not errors and names
    for name in names:
        assert checkpoints.shipped_path(name).parent == runtime.data_dir() / "checkpoints"
        checkpoints.load_checkpoint(checkpoints.shipped_path(name))
