"""The online-only loaders of appendix A, on tiny random models built here from configs and saved
to a temporary folder: the loading code is the real one, nothing is downloaded (HF_HUB_OFFLINE=1,
and tests/conftest.py blocks every non-loopback socket)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from transformers import (BertConfig, BertModel, BertTokenizerFast, BlipConfig, BlipForConditionalGeneration,
                          BlipImageProcessor, BlipProcessor)

from spokenstyle.data import render, sample_scenes
from spokenstyle.interop import pretrained

WORDS = ["a", "an", "big", "small", "red", "blue", "green", "ball", "box", "circle", "square", "next", "to",
         "left", "of", "the", "whoa", "tiny", "picture", "with"]
SPECIAL = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def tokenizer(folder: Path) -> BertTokenizerFast:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.txt").write_text("\n".join(SPECIAL + WORDS) + "\n")
    return BertTokenizerFast(vocab_file=str(folder / "vocab.txt"))


@pytest.fixture(scope="module")
def tiny_blip(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("blip")
    tok = tokenizer(folder / "vocab")
    processor = BlipProcessor(image_processor=BlipImageProcessor(size={"height": 32, "width": 32}), tokenizer=tok)
    config = BlipConfig(
        text_config=dict(vocab_size=len(SPECIAL + WORDS), hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                         intermediate_size=32, max_position_embeddings=40, bos_token_id=2, sep_token_id=3,
                         eos_token_id=3, pad_token_id=0, encoder_hidden_size=16),
        vision_config=dict(hidden_size=16, image_size=32, patch_size=8, num_hidden_layers=1, num_attention_heads=2,
                           intermediate_size=32),
        projection_dim=16,
    )
    torch.manual_seed(0)
    BlipForConditionalGeneration(config).save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def tiny_encoder(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("encoder")
    tok = tokenizer(folder / "vocab")
    torch.manual_seed(0)
    BertModel(BertConfig(vocab_size=len(SPECIAL + WORDS), hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                         intermediate_size=32, max_position_embeddings=64)).save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


def test_the_captioner_loads_from_a_folder_and_captions_pictures(tiny_blip):
    captioner = pretrained.load_captioner(tiny_blip, device="cpu", max_new_tokens=6)
    pictures = render(sample_scenes(range(3)), "flat", 64)  # (3, 3, 64, 64) in [0, 1]
    captions = captioner(pictures)
    assert len(captions) == 3 and all(isinstance(c, str) for c in captions)
    assert all(len(c.split()) <= 6 for c in captions)
    assert captioner(pictures) == captions  # greedy: deterministic
    assert len(captioner("scene:0:comic")) == 1  # any picture kind as_images reads
    with pytest.raises(ValueError, match="max_new_tokens"):
        pretrained.PretrainedCaptioner(captioner.model, captioner.processor, max_new_tokens=0)
    with pytest.raises(TypeError, match="BlipForConditionalGeneration"):
        pretrained.PretrainedCaptioner(torch.nn.Linear(2, 2), captioner.processor)


def test_the_encoder_gives_unit_vectors_that_ignore_padding(tiny_encoder):
    encoder = pretrained.load_sentence_encoder(tiny_encoder, device="cpu")
    alone = encoder.encode(["a big red ball"])
    batch = encoder.encode(["a big red ball", "whoa a tiny blue box next to the big green circle"])
    assert batch.shape == (2, 16) and batch.dtype == torch.float32
    assert torch.allclose(batch.norm(dim=1), torch.ones(2), atol=1e-5)
    assert torch.allclose(alone[0], batch[0], atol=1e-5)  # padding in a batch changes nothing
    assert torch.allclose(encoder.encode(["a big red ball"] * 3, batch_size=2), alone.repeat(3, 1), atol=1e-5)
    sim = encoder.similarity(["a big red ball", "a big red ball"], ["a big red ball", "small blue box"])
    assert sim[0] == pytest.approx(1.0, abs=1e-5) and sim[1] < sim[0]
    assert encoder.encode([]).shape == (0, 16)


@pytest.mark.parametrize("bad, error", [("a big red ball", TypeError), ([1, 2], TypeError)])
def test_the_encoder_names_bad_input(tiny_encoder, bad, error):
    encoder = pretrained.load_sentence_encoder(tiny_encoder, device="cpu")
    with pytest.raises(error, match="string"):
        encoder.encode(bad)
    with pytest.raises(ValueError, match="batch_size"):
        encoder.encode(["a"], batch_size=0)
    with pytest.raises(ValueError, match="equally long"):
        encoder.similarity(["a"], ["a", "b"])


def test_a_hub_name_offline_says_it_needs_internet(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))  # an empty cache: nothing to fall back on
    with pytest.raises(OSError, match="needs internet"):
        pretrained.load_sentence_encoder("no-such-org/no-such-model", device="cpu")
    with pytest.raises(OSError, match="folder"):
        pretrained.load_captioner(tmp_path, device="cpu")  # a folder without a model
    with pytest.raises(ValueError, match="name_or_path"):
        pretrained.load_captioner("", device="cpu")
