"""`spokenstyle run`: the pipeline from the command line (tiny random components stand in for
the shipped checkpoints)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from spokenstyle import checkpoints, cli, pipeline
from spokenstyle.captioning import captioner_config, classifier_config
from spokenstyle.models.captioner import Captioner
from spokenstyle.models.critic import TextClassifier
from spokenstyle.models.features import FeatureNet, FeatureNetConfig
from spokenstyle.models.fusion import FusionConfig, FusionGenerator


@pytest.fixture
def tiny(monkeypatch):
    torch.manual_seed(0)
    pipe = pipeline.SpokenStylePipeline(
        Captioner(captioner_config(enc_channels=(4, 4, 4, 4, 4), enc_hidden=8, n_embd=16, n_layer=1, n_head=2, max_len=12)),
        FusionGenerator(FusionConfig(text_dim=8, content_dim=8, style_dim=8, g_width=4, d_width=4)),
        FeatureNet(FeatureNetConfig(width=4, feature_dim=8)),
        TextClassifier(classifier_config("critic", d_model=16, n_layer=1, n_head=2)))
    monkeypatch.setattr(pipeline.SpokenStylePipeline, "from_pretrained", classmethod(lambda cls, device=None: pipe))
    return pipe


def test_run_with_scene_specs_writes_the_picture_and_json(tiny, tmp_path, capsys):
    out = tmp_path / "sub" / "spoken.png"
    assert cli.main(["run", "--source", "scene:7:flat", "--target", "scene:12:neon", "--out", str(out), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert out.is_file() and Image.open(out).size[0] >= 256
    for key in ("sentence", "step2", "style_score", "spoken_score", "target_style", "components", "source_content"):
        assert key in result, key
    assert result["out"] == str(out) and 0 <= result["style_score"] <= 1 and 0 <= result["spoken_score"] <= 1
    # the same seed gives the same sentence as calling the pipeline directly
    assert result["sentence"] == tiny("scene:7:flat", "scene:12:neon", seed=0).sentence


def test_run_with_image_files_and_band_layout(tiny, tmp_path, capsys):
    rng = np.random.default_rng(0)
    src, tgt = tmp_path / "a.jpg", tmp_path / "b.png"
    Image.fromarray(rng.integers(0, 256, (90, 120, 3), dtype=np.uint8)).save(src)
    Image.fromarray(rng.integers(0, 256, (40, 40), dtype=np.uint8), "L").save(tgt)
    out = tmp_path / "o.png"
    assert cli.main(["run", "--source", str(src), "--target", str(tgt), "--out", str(out), "--layout", "band"]) == 0
    text = capsys.readouterr().out
    assert "sentence:" in text and "spoken score" in text
    picture = Image.open(out)
    assert picture.height > picture.width  # the band is below the picture


@pytest.mark.parametrize("argv, message", [
    (["--source", "scene:x", "--target", "scene:1"], "scene:SEED"),
    (["--source", "missing.png", "--target", "scene:1"], "no image file"),
    (["--source", "scene:1", "--target", "scene:2:oil"], "unknown style"),
])
def test_bad_pictures_are_reported_not_raised(tiny, tmp_path, capsys, argv, message):
    assert cli.main(["run", *argv, "--out", str(tmp_path / "o.png")]) == 2
    assert message in capsys.readouterr().err


def test_bad_out_suffix(tiny, tmp_path, capsys):
    assert cli.main(["run", "--source", "scene:1", "--target", "scene:2", "--out", str(tmp_path / "o.txt")]) == 2
    assert "--out must name an image file" in capsys.readouterr().err


def test_missing_checkpoints_name_the_command_that_makes_them(monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(checkpoints, "shipped", lambda: {})
    assert cli.main(["run", "--source", "scene:1", "--target", "scene:2", "--out", str(tmp_path / "o.png"),
                     "--device", "cpu"]) == 2
    err = capsys.readouterr().err
    assert "captioner_paired" in err and "spokenstyle train captioner" in err and "spokenstyle train fusion" in err
    assert not (tmp_path / "o.png").exists()


def test_help_documents_the_scene_syntax(capsys):
    with pytest.raises(SystemExit) as info:
        cli.main(["run", "--help"])
    assert info.value.code == 0
    assert "scene:SEED:STYLE" in capsys.readouterr().out
