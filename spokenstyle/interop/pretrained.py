"""Pretrained models for readers who are online: a captioner (BLIP) and a sentence encoder.

The book trains its own small models on ShapeScenes so that every number can be checked
offline. With internet access two steps of the pipeline can borrow a model trained on millions
of real pictures and sentences instead, through ``transformers``:

* **step 3, the captioner**: BLIP (Li et al. 2022), an image encoder and a text decoder trained
  on 129 M image-text pairs, describes *photographs* in formal English. Its sentence can go
  through the spoken rewrite of :mod:`spokenstyle.interop.chat`.
* **a sentence encoder** (all-MiniLM-L6-v2, Reimers & Gurevych 2019): sentences → unit vectors
  whose dot product measures meaning. It gives a second opinion on "did the content survive the
  rewrite?" where the book's parser cannot read a free-form sentence.

Both loaders take a Hub name (downloaded once into the Hugging Face cache; needs internet) or a
local folder written by ``save_pretrained`` (works offline). The tests build tiny random models
of the same classes from configs, save them to a temporary folder and load them from there:
nothing is downloaded in CI, and the real loading code is the code that runs.

References:
    Li, Li, Xiong & Hoi 2022, "BLIP: Bootstrapping Language-Image Pre-training",
    https://arxiv.org/abs/2201.12086 (checkpoint Salesforce/blip-image-captioning-base).
    Reimers & Gurevych 2019, "Sentence-BERT", https://arxiv.org/abs/1908.10084
    (checkpoint sentence-transformers/all-MiniLM-L6-v2: mean pooling, then L2 normalisation).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from transformers import AutoModel, AutoTokenizer, BlipForConditionalGeneration, BlipProcessor

from .. import runtime
from ..data.images import as_images

__all__ = [
    "BLIP_CAPTIONER",
    "SENTENCE_ENCODER",
    "PretrainedCaptioner",
    "SentenceEncoder",
    "load_captioner",
    "load_sentence_encoder",
]

#: The default captioner on the Hugging Face Hub (BLIP base, 247 M parameters, about 1 GB).
BLIP_CAPTIONER = "Salesforce/blip-image-captioning-base"
#: The default sentence encoder on the Hub (MiniLM, 22 M parameters, 384-D vectors).
SENTENCE_ENCODER = "sentence-transformers/all-MiniLM-L6-v2"
MAX_BATCH = 256  # pictures or sentences per call: bounds the memory of one call


class PretrainedCaptioner:
    """A BLIP captioner: pictures → one English caption each (greedy decoding).

    Args:
        model: a ``BlipForConditionalGeneration``.
        processor: its ``BlipProcessor`` (image preprocessing and tokenizer).
        max_new_tokens: the longest caption, in tokens.
    """

    def __init__(self, model: BlipForConditionalGeneration, processor: BlipProcessor, *,
                 max_new_tokens: int = 30) -> None:
        if not isinstance(model, BlipForConditionalGeneration):
            raise TypeError(f"model must be a BlipForConditionalGeneration, got {type(model).__name__}")
        if isinstance(max_new_tokens, bool) or not isinstance(max_new_tokens, int) or not 1 <= max_new_tokens <= 200:
            raise ValueError(f"max_new_tokens must be an int in [1, 200], got {max_new_tokens!r}")
        self.model = model.eval()
        self.processor = processor
        self.max_new_tokens = max_new_tokens

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @torch.no_grad()
    def __call__(self, images: Any) -> list[str]:
        """Captions for ``images``: anything :func:`spokenstyle.data.as_images` accepts (a batch
        tensor (B, 3, H, W) in [0, 1], PIL images, paths, ``"scene:SEED"``)."""
        size = int(self.model.config.vision_config.image_size)
        pictures = as_images(images, size=min(size, 1024), name="images")  # (B, 3, S, S) in [0, 1]
        if len(pictures) > MAX_BATCH:
            raise ValueError(f"at most {MAX_BATCH} pictures per call, got {len(pictures)}: split the batch")
        arrays = [(p.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8) for p in pictures]  # HWC uint8
        inputs = self.processor(images=arrays, return_tensors="pt").to(self.device)
        ids = self.model.generate(pixel_values=inputs["pixel_values"], max_new_tokens=self.max_new_tokens,
                                  do_sample=False, num_beams=1)
        return [text.strip() for text in self.processor.batch_decode(ids, skip_special_tokens=True)]


class SentenceEncoder:
    """A BERT-style encoder as a sentence embedder: the mean of the token vectors (padding
    excluded), L2-normalised, as sentence-transformers' all-MiniLM-L6-v2 is used.

    ``encode(sentences)`` → (N, D) unit vectors; ``similarity(a, b)`` → their cosine similarity.
    """

    def __init__(self, model: torch.nn.Module, tokenizer: Any, *, max_length: int = 128) -> None:
        if not isinstance(model, torch.nn.Module):
            raise TypeError(f"model must be a torch module (a transformers encoder), got {type(model).__name__}")
        if isinstance(max_length, bool) or not isinstance(max_length, int) or max_length < 2:
            raise ValueError(f"max_length must be an int >= 2 (tokens), got {max_length!r}")
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.max_length = max_length

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @torch.no_grad()
    def encode(self, sentences: Sequence[str], *, batch_size: int = 64) -> torch.Tensor:
        """(N, D) float32 unit vectors on the CPU, one per sentence (a sentence is cut at ``max_length`` tokens)."""
        if isinstance(sentences, str) or not isinstance(sentences, Sequence):
            raise TypeError("sentences must be a list of strings (wrap a single sentence in a list)")
        if not all(isinstance(s, str) for s in sentences):
            raise TypeError("every sentence must be a string")
        if len(sentences) > MAX_BATCH * 64:
            raise ValueError(f"at most {MAX_BATCH * 64} sentences per call, got {len(sentences)}")
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or not 1 <= batch_size <= MAX_BATCH:
            raise ValueError(f"batch_size must be an int in [1, {MAX_BATCH}], got {batch_size!r}")
        width = int(self.model.config.hidden_size)
        out = [torch.zeros(0, width)]
        for start in range(0, len(sentences), batch_size):
            batch = self.tokenizer(list(sentences[start:start + batch_size]), padding=True, truncation=True,
                                   max_length=self.max_length, return_tensors="pt").to(self.device)
            hidden = self.model(**batch).last_hidden_state  # (B, T, D)
            mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)  # (B, T, 1): 0 on padding
            mean = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0)  # (B, D)
            out.append(F.normalize(mean, dim=-1).float().cpu())
        return torch.cat(out)

    def similarity(self, a: Sequence[str], b: Sequence[str]) -> torch.Tensor:
        """Cosine similarity of ``a[i]`` and ``b[i]`` for every i: (N,) in [-1, 1]."""
        if len(a) != len(b):
            raise ValueError(f"a and b must be equally long, got {len(a)} and {len(b)}")
        return (self.encode(a) * self.encode(b)).sum(-1)


def _load(cls: Any, name_or_path: str | Path, what: str) -> Any:
    """``cls.from_pretrained`` with one clear error for a name that is neither a folder nor cached."""
    if not isinstance(name_or_path, (str, Path)) or not str(name_or_path).strip():
        raise ValueError(f"name_or_path must be a Hub name or a folder, got {name_or_path!r}")
    try:
        return cls.from_pretrained(str(name_or_path))
    except OSError as err:
        where = "folder" if Path(name_or_path).exists() else "Hub name"
        raise OSError(f"cannot load the {what} from {where} {str(name_or_path)!r}: a Hub name is downloaded the "
                      "first time, which needs internet (and HF_HUB_OFFLINE unset); a folder must hold what "
                      f"save_pretrained wrote ({err})") from None


def load_captioner(name_or_path: str | Path = BLIP_CAPTIONER, *, device: str | torch.device | None = None,
                   max_new_tokens: int = 30) -> PretrainedCaptioner:
    """BLIP from the Hub (default ``Salesforce/blip-image-captioning-base``) or a local folder,
    in eval mode on ``device`` (default: :func:`spokenstyle.runtime.get_device`)."""
    processor = _load(BlipProcessor, name_or_path, "BLIP processor")
    model = _load(BlipForConditionalGeneration, name_or_path, "BLIP captioner")
    return PretrainedCaptioner(model.to(runtime.get_device(device)), processor, max_new_tokens=max_new_tokens)


def load_sentence_encoder(name_or_path: str | Path = SENTENCE_ENCODER, *,
                          device: str | torch.device | None = None, max_length: int = 128) -> SentenceEncoder:
    """A sentence encoder from the Hub (default ``sentence-transformers/all-MiniLM-L6-v2``) or a
    local folder holding a transformers encoder and its tokenizer."""
    tokenizer = _load(AutoTokenizer, name_or_path, "tokenizer")
    model = _load(AutoModel, name_or_path, "sentence encoder")
    return SentenceEncoder(model.to(runtime.get_device(device)), tokenizer, max_length=max_length)
