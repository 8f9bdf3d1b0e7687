"""Property-based fuzzing (hypothesis) of the package's public input surface.

Every function a reader hands input to is called on generated inputs, well-formed and not: it
must return what its docstring promises, or raise one of its documented error types with a
message that names the argument at fault. Any other exception (an IndexError from deep inside
torch, an OverflowError, a message about some internal variable) is a bug. The examples are
derandomized (the same cases on every run) and bounded per function (:data:`EXAMPLES`), so the
suite runs inside ``make test`` in about a minute; ``SPOKENSTYLE_FUZZ_SCALE=20`` runs 20 times
as many, each a new draw.

Issue 37 lists what the first, larger run found; each is fixed and has its own test elsewhere.
"""

from __future__ import annotations

import io
import json
import os
import re
import string
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from PIL import Image

from spokenstyle import checkpoints, cli, render
from spokenstyle.checkpoints import CheckpointError
from spokenstyle.data import as_images, painterly
from spokenstyle.data.captions import ParseError, caption, parse
from spokenstyle.data.content import sentence_slots
from spokenstyle.data.photos import PHOTO_NAMES, PhotoPatches, kuwahara, load_photo, photo_batches
from spokenstyle.data.scenes import sample_scenes
from spokenstyle.data.tokenizer import decode, decode_batch, encode, load_tokenizer

SCALE = int(os.environ.get("SPOKENSTYLE_FUZZ_SCALE", "1"))
EXAMPLES = {  # examples per function in make test (times SCALE)
    "as_images": 150, "pipeline": 12, "typeset": 60, "load_photo": 40, "painterly": 60, "kuwahara": 40,
    "photo_patches": 30, "parse": 200, "caption_round_trip": 100, "sentence_slots": 60, "encode": 200,
    "decode": 200, "decode_batch": 60, "manifest": 120, "cli": 150,
}


def fuzz(name: str) -> Callable:
    """hypothesis settings for one function: its bounded example count, the same draws on every
    run (unless SCALE asks for more), no deadline (the CPU may be shared), no example database."""
    return settings(max_examples=EXAMPLES[name] * SCALE, derandomize=SCALE == 1, deadline=None, database=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                           HealthCheck.data_too_large, HealthCheck.filter_too_much])


def clear_error(call: Callable[[], Any], names: tuple[str, ...], errors: tuple[type, ...] = (ValueError, TypeError)):
    """``call()``'s result; if it raises, the error must be one of ``errors`` and its message
    must name one of ``names`` (the argument at fault). Anything else fails the test."""
    try:
        return call()
    except errors as err:
        message = str(err)
        assert any(n in message for n in names), f"{type(err).__name__} does not name {names}: {message!r}"
        return err


# -- strategies --------------------------------------------------------------------------------

small = st.integers(min_value=0, max_value=24)
wild_int = st.one_of(st.integers(-5, 300), st.sampled_from([2**31, 2**63 - 1, 2**63, 2**64, -(2**63) - 1]))
any_text = st.text(st.characters(codec=None, exclude_categories=()), max_size=40)  # lone surrogates too


@st.composite
def arrays(draw) -> np.ndarray:
    dtype = draw(st.sampled_from([np.uint8, np.float32, np.float64, np.float16, np.int16, np.int64, np.bool_]))
    shape = tuple(draw(st.lists(small, min_size=1, max_size=5)))
    if len(shape) >= 3 and draw(st.booleans()):
        shape = shape[:-1] + (draw(st.sampled_from([1, 3, 4])),)
    kind = draw(st.sampled_from(["unit", "wide", "nan"]))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    values = rng.random(shape)
    if kind == "wide":
        values = values * 600 - 100
    elif kind == "nan" and values.size:
        values.flat[0] = np.nan
    with np.errstate(invalid="ignore"):
        return values.astype(dtype)


@st.composite
def tensors(draw) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(draw(arrays())))


@st.composite
def pil_images(draw, max_side: int = 40) -> Image.Image:
    mode = draw(st.sampled_from(["1", "L", "LA", "P", "RGB", "RGBA", "CMYK", "I", "I;16", "F", "YCbCr", "HSV"]))
    size = (draw(st.integers(0, max_side)), draw(st.integers(0, max_side)))
    image = Image.new(mode, size)
    if size[0] and size[1] and mode not in ("I;16",):
        image = Image.effect_noise(size, draw(st.integers(1, 100))).convert(mode)
    return image


scene_strings = st.one_of(
    st.builds(lambda s, st_: f"scene:{s}" + (f":{st_}" if st_ else ""), wild_int,
              st.one_of(st.none(), st.sampled_from(["flat", "sketch", "neon", "pixel", "0", "5", "6", "comic"]),
                        st.text(string.ascii_lowercase, max_size=6))),
    st.text(max_size=12).map(lambda t: "scene:" + t))
pictures = st.one_of(arrays(), tensors(), pil_images(), scene_strings, any_text,
                     st.sampled_from([None, 3, 2.5, {}, b"png", Path("/nonexistent.png")]))
picture_lists = st.lists(st.one_of(arrays(), pil_images(), scene_strings), max_size=3)


# -- as_images ---------------------------------------------------------------------------------

@fuzz("as_images")
@given(images=st.one_of(pictures, picture_lists), size=st.one_of(st.integers(-3, 80), st.sampled_from([1, 1024, 1025])),
       crop=st.booleans())
def test_as_images(images, size, crop):
    out = clear_error(lambda: as_images(images, size, crop=crop), names=("images", "size"))
    if isinstance(out, torch.Tensor):
        assert out.dtype == torch.float32 and out.shape[1:] == (3, size, size) and out.shape[0] >= 1
        assert torch.isfinite(out).all() and 0 <= float(out.min()) and float(out.max()) <= 1


# -- the pipeline ------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def pipe():
    from spokenstyle.pipeline import SpokenStylePipeline
    return SpokenStylePipeline.from_pretrained("cpu")


small_pictures = st.one_of(scene_strings, arrays(), pil_images(max_side=20), st.lists(scene_strings, min_size=1, max_size=2))


@pytest.mark.slow
@fuzz("pipeline")
@given(source=small_pictures, target=small_pictures, seed=wild_int,
       layout=st.sampled_from(["bubble", "band", "Bubble", ""]), side=st.sampled_from(["auto", "top", "bottom", "left"]),
       target_style=st.one_of(st.none(), st.sampled_from(["neon", "comic", 3, 6, -1, "oil"])))
def test_pipeline_call(pipe, source, target, seed, layout, side, target_style):
    out = clear_error(lambda: pipe(source, target, seed=seed, layout=layout, side=side, target_style=target_style),
                      names=("source", "target", "seed", "layout", "side", "target_style", "style"))
    if not isinstance(out, Exception):
        assert len(out.sentences) == len(out.pictures) >= 1
        assert all(isinstance(p, Image.Image) and max(p.size) <= 2 * render.MAX_SIDE for p in out.pictures)


# -- typeset -----------------------------------------------------------------------------------

extreme_pictures = st.one_of(pil_images(max_side=64), arrays(),
                             st.builds(lambda w, h: Image.new("RGB", (w, h), (90, 30, 200)),
                                       st.integers(1, 5000), st.integers(1, 300)))


@fuzz("typeset")
@given(picture=extreme_pictures, sentence=st.one_of(any_text, st.just("word " * 3000), st.integers()),
       layout=st.sampled_from(["bubble", "band", "cloud"]), side=st.sampled_from(["auto", "top", "bottom", 1]),
       min_side=st.one_of(st.integers(-1, 300), st.booleans()), max_font=st.one_of(st.none(), st.integers(-2, 600)),
       min_font=st.integers(-2, 40))
def test_typeset(picture, sentence, layout, side, min_side, max_font, min_font):
    out = clear_error(lambda: render.typeset(picture, sentence, layout=layout, side=side, min_side=min_side,
                                             max_font=max_font, min_font=min_font),
                      names=("picture", "image", "sentence", "layout", "side", "min_side", "max_font", "min_font"))
    if isinstance(out, Image.Image):
        assert out.mode == "RGB" and max(out.size) <= 2 * render.MAX_SIDE


# -- the photo helpers -------------------------------------------------------------------------

@fuzz("load_photo")
@given(name=st.one_of(st.sampled_from(PHOTO_NAMES), any_text, st.integers()), short_side=wild_int)
def test_load_photo(name, short_side):
    out = clear_error(lambda: load_photo(name, short_side), names=("photo", "name", "short_side"))
    if isinstance(out, torch.Tensor):
        assert out.shape[0] == 3 and min(out.shape[1:]) == short_side


@fuzz("painterly")
@given(x=st.one_of(tensors(), st.builds(lambda h, w: torch.rand(1, 3, h, w), st.integers(1, 24), st.integers(1, 24))),
       filter=st.one_of(st.sampled_from(["oil", "watercolour", "pencil", "mixed", ""]), any_text,
                        st.lists(st.sampled_from(["oil", "pencil", "crayon"]), max_size=3)))
def test_painterly(x, filter):
    out = clear_error(lambda: painterly(x, filter), names=("images", "pictures", "filter", "dtype"))
    if isinstance(out, torch.Tensor):
        assert out.shape == x.shape and torch.isfinite(out).all()


@fuzz("kuwahara")
@given(x=st.builds(lambda h, w: torch.rand(2, 3, h, w), st.integers(1, 20), st.integers(1, 20)),
       radius=st.one_of(wild_int, st.floats(allow_nan=True), st.booleans()))
def test_kuwahara(x, radius):
    out = clear_error(lambda: kuwahara(x, radius), names=("radius", "images", "pictures"))
    if isinstance(out, torch.Tensor):
        assert out.shape == x.shape and torch.isfinite(out).all()


@fuzz("photo_patches")
@given(split=st.sampled_from(["train", "test", "val", ""]), size=wild_int, length=wild_int,
       filter=st.sampled_from([None, "oil", "mixed", "crayon"]), index=wild_int, batch_size=wild_int)
def test_photo_patches(split, size, length, filter, index, batch_size):
    data = clear_error(lambda: PhotoPatches(split, size, length, filter),
                       names=("split", "size", "length", "filter", "painterly"))
    if isinstance(data, PhotoPatches):
        item = clear_error(lambda: data[index], names=("index",), errors=(IndexError, TypeError))
        if isinstance(item, dict):
            assert item["image"].shape == (3, size, size)
    assume(isinstance(batch_size, int) and batch_size < 64)
    clear_error(lambda: photo_batches(batch_size, split, size, filter or "mixed"),
                names=("batch_size", "split", "size", "filter"))


# -- the caption parser ------------------------------------------------------------------------

@fuzz("parse")
@given(text=st.one_of(any_text, st.lists(st.sampled_from(
    "a the big small red blue green yellow circle square triangle star left of right above below next to it "
    "one whoa , . and there's is".split()), max_size=25).map(" ".join), st.integers()))
def test_parse(text):
    clear_error(lambda: parse(text), names=("caption", "object", "relation", "pronoun", "text", "string", "found"),
                errors=(ParseError, TypeError))


@fuzz("caption_round_trip")
@given(seed=st.integers(0, 2**40), caption_seed=st.integers(0, 2**63 - 1))
def test_a_formal_caption_parses_back_to_its_scene(seed, caption_seed):
    spec = sample_scenes([seed]).spec(0)
    assert parse(caption(spec, "formal", caption_seed)) == spec
    assert parse(caption(spec, "spoken", caption_seed)).matches(spec)


@fuzz("sentence_slots")
@given(sentences=st.one_of(st.lists(any_text, max_size=4), any_text, st.integers()))
def test_sentence_slots(sentences):
    out = clear_error(lambda: sentence_slots(sentences), names=("sentences", "sentence", "caption", "str"))
    if isinstance(out, torch.Tensor):
        assert out.shape[0] == len(sentences)


# -- the tokenizer -----------------------------------------------------------------------------

VOCAB = load_tokenizer().get_vocab_size()
ids = st.lists(st.one_of(st.integers(0, VOCAB - 1), wild_int, st.floats(), st.booleans()), max_size=20)


@fuzz("encode")
@given(text=st.one_of(any_text, st.integers(), st.none()), register=st.sampled_from([None, "formal", "spoken", "poetic"]))
def test_encode(text, register):
    out = clear_error(lambda: encode(text, register), names=("text", "string", "register", "Unicode"))
    if isinstance(out, list):
        assert all(isinstance(i, int) and 0 <= i < VOCAB for i in out)
        assert isinstance(decode(out), str)


@fuzz("decode")
@given(ids=st.one_of(ids, ids.map(lambda x: torch.tensor([i for i in x if isinstance(i, int) and -2**63 <= i < 2**63],
                                                         dtype=torch.int64)), any_text, st.integers()))
def test_decode(ids):
    out = clear_error(lambda: decode(ids), names=("token id", "ids", "decode"))
    if not isinstance(out, Exception):
        assert isinstance(out, str)


@fuzz("decode_batch")
@given(batch=st.one_of(st.lists(ids, max_size=3), tensors(), st.integers(), any_text))
def test_decode_batch(batch):
    out = clear_error(lambda: decode_batch(batch), names=("token id", "ids", "decode"))
    if not isinstance(out, Exception):
        assert isinstance(out, list) and all(isinstance(s, str) for s in out)


# -- manifests ---------------------------------------------------------------------------------

json_values = st.recursive(st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=8)),
                           lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                   st.dictionaries(st.text(max_size=8), inner, max_size=3)),
                           max_leaves=8)


@st.composite
def manifests(draw, weights: str, sha: str, size: int) -> Any:
    """A valid manifest with one part broken (or none), or any JSON value at all."""
    valid = {"format": checkpoints.FORMAT, "files": {weights: {"sha256": sha, "bytes": size}}, "config": {},
             "metrics": {}, "command": "spokenstyle train x", "extra": {}}
    broken = draw(st.sampled_from(["none", "format", "files", "entry", "name", "sha", "bytes", "drop", "any"]))
    if broken == "any":
        return draw(json_values)
    if broken == "format":
        valid["format"] = draw(json_values)
    elif broken == "files":
        valid["files"] = draw(json_values)
    elif broken == "entry":
        valid["files"] = {weights: draw(json_values)}
    elif broken == "name":
        valid["files"] = {draw(st.sampled_from(["../x.safetensors", "/etc/passwd", "", ".", "a/b.safetensors",
                                                 "missing.safetensors"]) | any_text): valid["files"][weights]}
    elif broken == "sha":
        valid["files"][weights]["sha256"] = draw(st.one_of(st.text(max_size=70), json_values))
    elif broken == "bytes":
        valid["files"][weights]["bytes"] = draw(json_values)
    elif broken == "drop":
        del valid[draw(st.sampled_from(sorted(valid)))]
    return valid


@pytest.fixture(scope="module")
def checkpoint_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("fuzz-checkpoint")
    checkpoints.save_checkpoint(folder, {"w": torch.ones(3)})
    return folder


@fuzz("manifest")
@given(data=st.data(), raw=st.one_of(st.none(), st.binary(max_size=40), st.text(max_size=40)))
def test_manifest_loading(checkpoint_folder, data, raw):
    weights, entry = next(iter(json.loads((checkpoint_folder / "manifest.json").read_text())["files"].items()))
    folder = checkpoint_folder / "case"
    folder.mkdir(exist_ok=True)
    (folder / weights).write_bytes((checkpoint_folder / weights).read_bytes())
    manifest = data.draw(manifests(weights, entry["sha256"], entry["bytes"]))
    text = json.dumps(manifest) if raw is None else raw
    (folder / "manifest.json").write_bytes(text if isinstance(text, bytes) else text.encode("utf-8", "surrogatepass"))
    out = clear_error(lambda: checkpoints.load_checkpoint(folder),
                      names=("manifest", "checkpoint", "weights", "sha256", "files", "format"), errors=(CheckpointError,))
    if not isinstance(out, Exception):
        assert torch.equal(out.tensors["w"], torch.ones(3))


# -- the command line --------------------------------------------------------------------------

flags = ["--source", "--target", "--out", "--seed", "--layout", "--side", "--device", "--profile", "--json",
         "--set", "--help"]
values = ["scene:7:flat", "scene:3", "scene:x", "scene:1:oil", "a.png", "out.png", "out.txt", "/", "-1", "2**64",
          "99999999999999999999", "bubble", "band", "top", "cpu", "cuda:9", "tpu", "fast", "full", "bogus",
          "dcgan_all_styles.width=64", "nope.x=1", "dcgan_all_styles.width=abc", ""]


class Reached(Exception):
    """The command got past its checks to a model (the fuzz stops it there)."""


@fuzz("cli")
@given(argv=st.lists(st.one_of(st.sampled_from(["run", "train", "info", "checkpoints", "dcgan", "judge"]),
                               st.sampled_from(flags), st.sampled_from(values), st.text(max_size=10)), max_size=9))
def test_cli_argument_parsing(argv, tmp_path_factory, monkeypatch):
    def reached(*args, **kwargs):
        raise Reached

    monkeypatch.setattr(cli.SpokenStylePipeline, "from_pretrained", reached)
    monkeypatch.setattr(cli, "RECIPES", {name: reached for name in cli.RECIPES})
    monkeypatch.chdir(tmp_path_factory.getbasetemp())
    stderr = io.StringIO()
    try:
        with redirect_stderr(stderr), redirect_stdout(io.StringIO()):
            code = cli.main(argv)
    except SystemExit as exit_:  # argparse: --help (0) or a usage error (2), with its message
        assert exit_.code in (0, 2), exit_.code
        assert exit_.code == 0 or "error:" in stderr.getvalue()
        return
    except Reached:
        return
    assert code in (0, 2)
    if code == 2:
        assert re.match(r"spokenstyle \w+: ", stderr.getvalue()) and "Traceback" not in stderr.getvalue()
