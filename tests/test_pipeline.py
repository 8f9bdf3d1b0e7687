"""SpokenStylePipeline with tiny randomly initialised components: every input kind, batches,
determinism, every intermediate, and clear errors."""

from __future__ import annotations

import inspect
import json

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from spokenstyle import checkpoints, pipeline
from spokenstyle import render as render_mod
from spokenstyle.data import STYLES, describe, render, sample_scenes
from spokenstyle.data.content import sentence_slots
from spokenstyle.data.images import as_images
from spokenstyle.data.scenes import slots_to_text
from spokenstyle.evaluation import content_survival
from spokenstyle.models.captioner import Captioner, captioner_config
from spokenstyle.models.critic import TextClassifier, classifier_config
from spokenstyle.models.cyclegan import CycleGAN, cyclegan
from spokenstyle.models.features import FeatureNet, FeatureNetConfig
from spokenstyle.models.fusion import FusionConfig, FusionGAN, FusionGenerator, fuse
from spokenstyle.models.judge import JudgeConfig, SceneJudge, read_scene


def tiny_pipeline(translators=None, judge=None, attribute_judge=None) -> pipeline.SpokenStylePipeline:
    torch.manual_seed(0)
    S = Captioner(captioner_config(enc_channels=(4, 4, 4, 4, 4), enc_hidden=8, n_embd=16, n_layer=1, n_head=2, max_len=12))
    T = TextClassifier(classifier_config("critic", d_model=16, n_layer=1, n_head=2))
    J = judge if judge is not None else FeatureNet(FeatureNetConfig(width=4, feature_dim=8))
    F = FusionGenerator(FusionConfig(text_dim=8, content_dim=8, style_dim=8, g_width=4, d_width=4))
    return pipeline.SpokenStylePipeline(S, F, J, T, translators=translators, attribute_judge=attribute_judge)


@pytest.fixture(scope="module")
def pipe():
    return tiny_pipeline()


def scene(seed=3, style="flat"):
    return render(sample_scenes([seed]), style, 64)  # (1, 3, 64, 64)


def test_one_pair_returns_every_intermediate(pipe):
    out = pipe(scene(3), scene(4, "neon"), seed=0)
    assert len(out) == 1
    for name in ("source", "target", "regenerated", "fused"):
        t = getattr(out, name)
        assert t.shape == (1, 3, 64, 64) and t.dtype == torch.float32 and 0 <= t.min() and t.max() <= 1, name
    assert torch.equal(out.regenerated, out.source) and out.step2 == ["identity (no translator)"]
    assert isinstance(out.sentence, str) and out.tokens.shape[0] == 1
    assert isinstance(out.picture, Image.Image) and out.picture.mode == "RGB" and min(out.picture.size) >= 256
    assert out.style_scores.shape == out.spoken_scores.shape == (1,)
    assert 0 <= float(out.style_scores[0]) <= 1 and 0 <= float(out.spoken_scores[0]) <= 1
    assert out.source_slots.shape == out.sentence_slots.shape == out.fused_slots.shape == (1, 6)
    assert set(out.components) == {"captioner", "fusion", "judge", "critic", "translator", "attribute_judge"}
    assert out.components["translator"].startswith("identity")
    json.dumps(out.summary())  # JSON-ready


def test_same_seed_same_output_and_batches_equal_single_calls(pipe):
    src = render(sample_scenes([1, 2, 3]), "sketch", 64)
    tgt = render(sample_scenes([4, 5, 6]), ["neon", "comic", "pixel"], 64)
    a = pipe(src, tgt, seed=5)
    b = pipe(src, tgt, seed=5)
    assert a.sentences == b.sentences and torch.equal(a.fused, b.fused)
    assert len(a) == 3 and len(a.pictures) == 3
    with pytest.raises(ValueError, match="one pair"):
        a.sentence
    # a list of pictures is a batch too
    c = pipe([src[0], src[1], src[2]], [tgt[0], tgt[1], tgt[2]], seed=5)
    assert c.sentences == a.sentences and torch.allclose(c.fused, a.fused)


def test_one_target_is_paired_with_every_source(pipe):
    out = pipe(render(sample_scenes([1, 2]), "flat", 64), scene(9, "neon"))
    assert len(out) == 2 and torch.equal(out.target[0], out.target[1])
    with pytest.raises(ValueError, match="2 sources and 3 targets"):
        pipe(render(sample_scenes([1, 2]), "flat", 64), render(sample_scenes([1, 2, 3]), "flat", 64))


def pil_in_mode(mode: str, size=(80, 50)) -> Image.Image:
    rng = np.random.default_rng(0)
    rgb = Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8))
    if mode == "I;16":
        return Image.fromarray(rng.integers(0, 65535, (size[1], size[0]), dtype=np.uint16))
    if mode == "P":
        return rgb.quantize(16)
    return rgb.convert(mode)


@pytest.mark.parametrize("mode", ["L", "RGB", "RGBA", "P", "I;16", "CMYK", "LA", "1"])
def test_pil_images_of_every_mode_and_size(mode):
    x = as_images(pil_in_mode(mode))
    assert x.shape == (1, 3, 64, 64) and x.dtype == torch.float32 and 0 <= x.min() and x.max() <= 1


def test_paths_scene_specs_arrays_and_tensors(tmp_path):
    ref = scene(3)
    path = tmp_path / "src.png"
    Image.fromarray((ref[0].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)).save(path)
    uint8 = (ref[0].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
    kinds = {
        "path": path, "str path": str(path), "scene spec": "scene:3:flat",
        "uint8 HWC": uint8, "float HWC": uint8.astype(np.float32) / 255, "grey HW": uint8[..., 0],
        "RGBA HWC": np.concatenate([uint8, np.full_like(uint8[..., :1], 255)], -1),
        "batch BHWC": uint8[None], "CHW tensor": ref[0], "BCHW tensor": ref,
        "uint8 tensor": torch.from_numpy(uint8).permute(2, 0, 1), "grey tensor": ref[:, :1],
    }
    for name, value in kinds.items():
        x = as_images(value)
        assert x.shape == (1, 3, 64, 64), name
        if name not in ("grey HW", "grey tensor"):
            assert (x - ref).abs().max() < 1 / 255 + 1e-6, name
    big = as_images(torch.nn.functional.interpolate(ref, size=(128, 160)))
    assert big.shape == (1, 3, 64, 64)  # centre-cropped then resized
    assert as_images("scene:3").shape == (1, 3, 64, 64)  # style seed % 6


@pytest.mark.parametrize("bad, error, match", [
    (None, TypeError, "must be a path"),
    (42, TypeError, "must be a path"),
    ([], ValueError, "empty list"),
    ("no/such/file.png", ValueError, "no image file"),
    ("scene:x:flat", ValueError, "scene:SEED"),
    ("scene:3:oil", ValueError, "unknown style"),
    (torch.rand(2, 5, 8, 8), ValueError, r"\(B, 3, H, W\)"),
    (torch.rand(8, 8), ValueError, r"\(B, 3, H, W\)"),
    (torch.rand(3, 8, 8) * 2 - 1, ValueError, r"\[0, 1\]"),
    (torch.full((3, 8, 8), float("nan")), ValueError, "finite"),
    (torch.zeros(3, 8, 8, dtype=torch.int32), TypeError, "uint8"),
    (np.zeros((8, 8, 3), dtype=np.int64), TypeError, "uint8"),
    (np.zeros((8, 8, 3), dtype=bool), TypeError, "uint8"),
    (np.full((8, 8, 3), 3.0), ValueError, r"\[0, 1\]"),
    (np.zeros((8, 8, 5)), ValueError, "C in"),
    (torch.rand(1, 3, 0, 8), ValueError, "empty"),
])
def test_bad_inputs_raise_clear_errors(bad, error, match):
    with pytest.raises(error, match=match):
        as_images(bad)


def test_an_unreadable_file_is_a_value_error(tmp_path):
    path = tmp_path / "fake.png"
    path.write_bytes(b"not a png")
    with pytest.raises(ValueError, match="not a readable image"):
        as_images(path)


def test_call_validates_its_arguments(pipe):
    with pytest.raises(ValueError, match="layout"):
        pipe(scene(), scene(), layout="poster")
    with pytest.raises(ValueError, match="side"):
        pipe(scene(), scene(), side="left")
    with pytest.raises(TypeError, match="seed"):
        pipe(scene(), scene(), seed=1.5)
    with pytest.raises(ValueError, match="target_style"):
        pipe(scene(), scene(), target_style="oil")
    with pytest.raises(ValueError, match="source_style has 3 entries for 1 pairs"):
        pipe(scene(), scene(), source_style=["flat", "neon", "pixel"])
    with pytest.raises(TypeError, match="source"):
        pipe(object(), scene())


def test_target_style_given_is_scored(pipe):
    out = pipe(scene(), scene(5, "neon"), target_style="neon")
    assert int(out.target_style[0]) == STYLES.index("neon")
    probs, _ = read_scene(pipe.judge, out.fused)
    assert torch.allclose(out.style_scores, probs[:, STYLES.index("neon")])
    pictures, sentences = pipe(scene(), scene(5, "neon"), return_dict=False, layout="band")
    assert len(pictures) == len(sentences) == 1 and pictures[0].height > pictures[0].width


@pytest.mark.parametrize("side", render_mod.BUBBLE_SIDES)
def test_the_bubble_side_reaches_typeset(pipe, side):
    out = pipe(scene(), scene(5, "neon"), side=side)
    assert out.sentences[0].strip()  # a bubble is drawn (an empty sentence would pass vacuously)
    expected = render_mod.typeset(out.fused[0], out.sentences[0], side=side, palette_from=out.target[0])
    assert np.array_equal(np.asarray(out.pictures[0]), np.asarray(expected))


def test_cyclegan_step2_regenerates_in_the_source_style():
    model = cyclegan(g_width=4, n_blocks=1, d_width=4).eval()
    pipe = tiny_pipeline(translators={("flat", "neon"): model})
    src = render(sample_scenes([1, 2]), ["flat", "sketch"], 64)
    styles = torch.tensor([STYLES.index("flat"), STYLES.index("sketch")])
    regenerated, notes = pipe.regenerate(src, styles)
    expected = model.G_BA.translate(model.G_AB.translate(src[:1]))
    assert torch.allclose(regenerated[:1], expected, atol=1e-6)
    assert notes[0] == "cyclegan_flat_neon: flat→neon→flat"
    assert torch.equal(regenerated[1], src[1]) and notes[1].startswith("identity")
    out = pipe(src, scene(5, "neon"), source_style=["flat", "sketch"])
    assert out.components["translator"] == "cyclegan_flat_neon"
    assert torch.allclose(out.regenerated, regenerated, atol=1e-6) and out.step2 == notes


def test_a_callable_translator_and_a_scene_judge():
    pipe = tiny_pipeline(translators=lambda x: 1 - x, judge=SceneJudge(JudgeConfig(width=4, hidden=8)))
    out = pipe(scene(3), scene(4))
    assert torch.allclose(out.regenerated, 1 - out.source)
    assert out.fused_slots.shape == (1, 6) and out.style_scores.shape == (1,)


def test_an_attribute_judge_reads_the_content():
    attr = SceneJudge(JudgeConfig(width=4, hidden=8)).eval()
    pipe = tiny_pipeline(attribute_judge=attr)
    out = pipe(scene(3), scene(4))
    assert torch.equal(out.fused_slots, read_scene(attr, out.fused)[1])
    assert torch.equal(out.source_slots, read_scene(attr, out.source)[1])
    assert out.components["attribute_judge"] == "random init"


def test_fused_picture_is_fs_drawing_of_the_sentence(pipe):
    out = pipe(scene(3), scene(4, "neon"), seed=2)
    said = [s if s.strip() else "hmm" for s in out.sentences]
    assert torch.allclose(out.fused, fuse(pipe.fusion, said, out.target, seed=2))


def test_content_readings_and_survival():
    scenes = sample_scenes([0, 1, 2, 3])
    truth = scenes.colour_slots()
    sentences = describe(scenes, "formal")
    assert torch.equal(sentence_slots(sentences), truth)  # formal captions parse exactly
    assert content_survival(truth, truth) == {"colour": 1.0, "shape": 1.0, "size": 1.0, "object": 1.0,
                                                       "scene": 1.0}
    unreadable = sentence_slots(["", "hmm"] + sentences[2:])
    assert (unreadable[:2] == -1).all()
    assert content_survival(truth, unreadable)["scene"] == 0.5
    nothing = content_survival(truth, torch.zeros_like(truth))
    assert nothing["colour"] == nothing["object"] == 0.0
    assert "circle" in slots_to_text(torch.tensor([1, 0, 0, 0, 0, 0])) \
        and slots_to_text(torch.tensor([1, 0, 0, 0, 0, 0])) == "small red circle"
    with pytest.raises(ValueError):
        content_survival(truth, truth[:2])


def shipped_only(tmp_path, monkeypatch, *names: str) -> None:
    """Point the package at a data folder whose checkpoints are only ``names`` (their manifests)."""
    root = tmp_path / "shipped"
    for name in names:
        (root / "checkpoints" / name).mkdir(parents=True)
        (root / "checkpoints" / name / checkpoints.MANIFEST).write_bytes(
            (checkpoints.shipped_path(name) / checkpoints.MANIFEST).read_bytes())
    root.mkdir(exist_ok=True)
    monkeypatch.setenv("SPOKENSTYLE_DATA", str(root))
    assert sorted(checkpoints.shipped()) == sorted(names)


def test_from_pretrained_names_what_is_missing_and_how_to_make_it(tmp_path, monkeypatch):
    if "features" not in checkpoints.shipped():
        pytest.skip("the test copies the shipped features manifest")
    shipped_only(tmp_path, monkeypatch, "features")
    with pytest.raises(checkpoints.CheckpointError) as info:
        pipeline.SpokenStylePipeline.from_pretrained("cpu")
    message = str(info.value)
    default = inspect.signature(pipeline.SpokenStylePipeline.from_pretrained).parameters["captioner"].default
    assert default == "captioner_spoken"  # the unpaired adversarial S (was "captioner_paired")
    for name in ("captioner_spoken", "critic", "fusion"):
        assert name in message
    assert "captioner_paired" not in message
    assert "spokenstyle train captioner" in message and "spokenstyle train fusion" in message
    assert "'features' is not shipped" not in message
    with pytest.raises(checkpoints.CheckpointError, match="no checkpoint at"):
        pipeline.SpokenStylePipeline.from_pretrained("cpu", captioner=tmp_path / "nothing")


def test_constructor_rejects_wrong_components():
    with pytest.raises(TypeError, match="Captioner"):
        pipeline.SpokenStylePipeline(nn.Linear(1, 1), FusionGenerator(), FeatureNet(FeatureNetConfig()),
                                     TextClassifier(classifier_config("critic")))


def test_from_pretrained_loads_saved_components(tmp_path):
    """Every loading path of from_pretrained, with tiny random checkpoints saved to folders."""
    torch.manual_seed(0)
    S = Captioner(captioner_config(enc_channels=(4, 4, 4, 4, 4), enc_hidden=8, n_embd=16, n_layer=1, n_head=2, max_len=12))
    T = TextClassifier(classifier_config("critic", d_model=16, n_layer=1, n_head=2))
    J = FeatureNet(FeatureNetConfig(width=4, feature_dim=8))
    A = SceneJudge(JudgeConfig(width=4, hidden=8))
    G = cyclegan(g_width=4, n_blocks=1, d_width=4)
    fusion_config = FusionConfig(text_dim=8, content_dim=8, style_dim=8, g_width=4, d_width=4)
    S.save_pretrained(tmp_path / "S")
    T.save_pretrained(tmp_path / "T")
    J.save_pretrained(tmp_path / "J")
    A.save_pretrained(tmp_path / "A")
    G.save_pretrained(tmp_path / "cyclegan_flat_neon")
    FusionGAN(fusion_config).save_pretrained(tmp_path / "F")
    pipe = pipeline.SpokenStylePipeline.from_pretrained(
        "cpu", captioner=tmp_path / "S", fusion=tmp_path / "F", judge=tmp_path / "J", critic=tmp_path / "T",
        attribute_judge=tmp_path / "A", translators=[tmp_path / "cyclegan_flat_neon"])
    assert isinstance(pipe.attribute_judge, SceneJudge) and isinstance(pipe.judge, FeatureNet)
    assert set(pipe.translators) == {("flat", "neon")}
    loaded = pipe.translators[("flat", "neon")]
    assert isinstance(loaded, CycleGAN)  # the generators the save wrote
    for name in ("G_AB", "G_BA"):
        saved, back = getattr(G, name).state_dict(), getattr(loaded, name).state_dict()
        assert saved.keys() == back.keys() and all(torch.equal(saved[k], back[k]) for k in saved), name
    out = pipe("scene:3:flat", "scene:4:neon", source_style="flat")
    assert out.components == {"captioner": "S", "fusion": "F", "judge": "J", "critic": "T", "attribute_judge": "A",
                              "translator": "cyclegan_flat_neon"}
    assert out.step2[0] == "cyclegan_flat_neon: flat→neon→flat"
    # the loaded captioner is the saved one: same sentence as the original model
    assert out.sentence == pipeline.SpokenStylePipeline(S, pipe.fusion, J, T)("scene:3:flat", "scene:4:neon").sentence
    with pytest.raises(ValueError, match="cyclegan_<style>_<style>"):
        pipeline.SpokenStylePipeline.from_pretrained(
            "cpu", captioner=tmp_path / "S", fusion=tmp_path / "F", judge=tmp_path / "J", critic=tmp_path / "T",
            attribute_judge=None, translators=[tmp_path / "J"])
