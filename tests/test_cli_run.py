"""`spokenstyle run`: the pipeline from the command line (tiny random components stand in for
the shipped checkpoints)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from spokenstyle import checkpoints, cli, pipeline
from spokenstyle.models.captioner import Captioner, captioner_config
from spokenstyle.models.critic import TextClassifier, classifier_config
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
    (["--source", "missing.png", "--target", "scene:1"], "no such file"),
    (["--source", "scene:1", "--target", "scene:2:oil"], "unknown style"),
])
def test_bad_pictures_are_reported_not_raised(tiny, tmp_path, capsys, argv, message):
    assert cli.main(["run", *argv, "--out", str(tmp_path / "o.png")]) == 2
    assert message in capsys.readouterr().err


def test_bad_out_suffix(tiny, tmp_path, capsys):
    assert cli.main(["run", "--source", "scene:1", "--target", "scene:2", "--out", str(tmp_path / "o.txt")]) == 2
    assert "--out must name an image file" in capsys.readouterr().err


def test_missing_checkpoints_name_the_command_that_makes_them(monkeypatch, tmp_path, capsys):
    empty = tmp_path / "no-shipped-data"  # a data folder without checkpoints: none is shipped
    empty.mkdir()
    monkeypatch.setenv("SPOKENSTYLE_DATA", str(empty))
    assert checkpoints.shipped() == {}
    assert cli.main(["run", "--source", "scene:1", "--target", "scene:2", "--out", str(tmp_path / "o.png"),
                     "--device", "cpu"]) == 2
    err = capsys.readouterr().err
    assert "captioner_spoken" in err and "spokenstyle train captioner" in err and "spokenstyle train fusion" in err
    assert "captioner_paired" not in err  # the default captioner is the unpaired S
    assert not (tmp_path / "o.png").exists()


@pytest.fixture
def no_models(monkeypatch):
    """Fails the test if `spokenstyle run` loads a model; returns the calls (none expected)."""
    calls = []

    def refuse(cls, *args, **kwargs):
        calls.append((args, kwargs))
        raise AssertionError("spokenstyle run loaded the models before checking its arguments")

    monkeypatch.setattr(cli.SpokenStylePipeline, "from_pretrained", classmethod(refuse))
    return calls


def _bad_run_arguments(tmp_path, monkeypatch, case):
    """(argv, the words the one-line message must hold, the path that must not be written) of a case."""
    (tmp_path / "a-file.txt").write_text("not a folder")
    (tmp_path / "folder.png").mkdir()
    out = tmp_path / "o.png"
    good = ["--source", "scene:1:flat", "--target", "scene:2:neon"]
    cases = {
        "missing source": (["--source", str(tmp_path / "missing.png"), "--target", "scene:2"], ["--source", "no such file"]),
        "missing target": (["--source", "scene:1", "--target", str(tmp_path / "gone.jpg")], ["--target", "no such file"]),
        "bad source spec": (["--source", "scene:x", "--target", "scene:2"], ["--source", "scene:SEED"]),
        "bad target spec": (["--source", "scene:1", "--target", "scene:2:neon:7"], ["--target", "scene:SEED"]),
        "out suffix": (good + ["--out", str(tmp_path / "o.txt")], ["--out", "must name an image file"]),
        "out no suffix": (good + ["--out", str(tmp_path / "picture")], ["--out", "must name an image file"]),
        "out is a folder": (good + ["--out", str(tmp_path / "folder.png")], ["--out", "is a folder"]),
        "out under a file": (good + ["--out", str(tmp_path / "a-file.txt" / "o.png")], ["--out", "which is a file"]),
        "negative seed": (good + ["--seed", "-1"], ["--seed", "-1"]),
        "seed too large": (good + ["--seed", str(2**63)], ["--seed", str(2**63)]),
        "bad profile": (good, ["profile", "'bogus'", "SPOKENSTYLE_PROFILE"]),
        "bad device": (good + ["--device", "gpu"], ["device", "'gpu'"]),
    }
    argv, words = cases[case]
    if "--out" not in argv:
        argv = argv + ["--out", str(out)]
    if case == "bad profile":
        monkeypatch.setenv("SPOKENSTYLE_PROFILE", "bogus")
    return argv, words, out


@pytest.mark.parametrize("case", ["missing source", "missing target", "bad source spec", "bad target spec",
                                  "out suffix", "out no suffix", "out is a folder", "out under a file",
                                  "negative seed", "seed too large", "bad profile", "bad device"])
def test_run_checks_every_argument_before_loading_a_model(no_models, tmp_path, monkeypatch, capsys, case):
    argv, words, out = _bad_run_arguments(tmp_path, monkeypatch, case)
    assert cli.main(["run", *argv]) == 2
    captured = capsys.readouterr()
    err = captured.err
    assert err.count("\n") == 1 and err.startswith("spokenstyle run: "), err  # one line, no traceback
    for word in words:
        assert word in err, (word, err)
    assert no_models == [] and captured.out == ""  # no model was loaded, nothing was run
    assert not out.exists() and not (tmp_path / "o.txt").exists() and not (tmp_path / "picture").exists()


def test_a_missing_source_and_a_bad_out_suffix_fail_fast(no_models, tmp_path, capsys):
    """The two checks the command line is most often wrong on, spelled out."""
    out = tmp_path / "o.png"
    assert cli.main(["run", "--source", str(tmp_path / "nope.png"), "--target", "scene:2", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert f"--source {str(tmp_path / 'nope.png')!r}: no such file" in err
    assert no_models == [] and not out.exists()
    assert cli.main(["run", "--source", "scene:1", "--target", "scene:2", "--out", str(tmp_path / "o.gifv")]) == 2
    err = capsys.readouterr().err
    assert "--out must name an image file" in err and "'" + str(tmp_path / "o.gifv") + "'" in err
    assert ".png" in err  # the message lists what it accepts
    assert no_models == [] and not (tmp_path / "o.gifv").exists()


def test_help_documents_the_scene_syntax(capsys):
    with pytest.raises(SystemExit) as info:
        cli.main(["run", "--help"])
    assert info.value.code == 0
    assert "scene:SEED:STYLE" in capsys.readouterr().out
