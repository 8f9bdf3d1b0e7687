"""tools/ship_run.py: a run's folder shipped under its name, weights untouched, command made checkout-relative."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))

import ship_run  # noqa: E402

from spokenstyle.checkpoints import CheckpointError, load_checkpoint, save_pretrained  # noqa: E402


def _run(folder: Path, command: str) -> dict:
    torch.manual_seed(0)
    save_pretrained(nn.Linear(3, 2), folder, config={"n": 3}, metrics={"fd": 1.5}, command=command)
    return load_checkpoint(folder).manifest


def test_ship_keeps_the_weights_and_rewrites_only_the_out(tmp_path):
    run = tmp_path / "scratch" / "g64"
    before = _run(run, "spokenstyle train dcgan --profile full --out /work/exp/g64 --set a.width=64")
    (tmp_path / "spokenstyle" / "shipped" / "checkpoints" / "dcgan_conditional").mkdir(parents=True)
    target = ship_run.ship(run, "dcgan_conditional", root=tmp_path)
    after = load_checkpoint(target).manifest
    assert after["files"] == before["files"] and after["metrics"] == before["metrics"]
    assert after["command"] == ("spokenstyle train dcgan --profile full --out spokenstyle/shipped/checkpoints/"
                                "dcgan_conditional --set a.width=64")
    assert after["extra"]["command_as_run"]["command"] == before["command"]
    assert sorted(p.name for p in target.parent.iterdir()) == ["dcgan_conditional"]  # no staging folder left


def test_the_equals_form_and_a_command_without_out():
    assert ship_run.shipped_command("x --out=/tmp/a --k 1", "s/c") == "x --out=s/c --k 1"
    with pytest.raises(ValueError, match="no --out"):
        ship_run.shipped_command("spokenstyle train dcgan", "s/c")


def test_a_damaged_run_is_not_shipped(tmp_path):
    run = tmp_path / "run"
    manifest = _run(run, "spokenstyle train x --out /tmp/run")
    (name,) = manifest["files"]
    (run / name).write_bytes(b"not the weights")
    with pytest.raises(CheckpointError):
        ship_run.ship(run, "x", root=tmp_path)
    assert not (tmp_path / "spokenstyle" / "shipped" / "checkpoints" / "x").exists()


def test_a_copy_damaged_on_the_way_is_removed(tmp_path, monkeypatch):
    run = tmp_path / "run"
    manifest = _run(run, "spokenstyle train x --out /tmp/run")
    (name,) = manifest["files"]
    copytree = ship_run.shutil.copytree

    def damaging_copy(src, dst, **kwargs):  # the disk corrupts the copy, not the source
        out = copytree(src, dst, **kwargs)
        (Path(dst) / name).write_bytes(b"flipped bits")
        return out

    monkeypatch.setattr(ship_run.shutil, "copytree", damaging_copy)
    with pytest.raises(CheckpointError):
        ship_run.ship(run, "x", root=tmp_path)
    shipped = tmp_path / "spokenstyle" / "shipped" / "checkpoints"
    assert sorted(p.name for p in shipped.iterdir()) == []  # neither x nor a staging folder
