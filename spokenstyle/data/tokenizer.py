"""The caption tokenizer: a word-level ``tokenizers`` model built offline from both grammars.

Why word level: the grammars have a closed vocabulary of a few hundred words, so one token per
word keeps sequences short and every token readable (a captioner's output can be inspected
token by token). Words keep their case and inner apostrophes ("There", "chillin'");
punctuation and the clitic "'s" are split off ("it's" is "it" + "'s"). Spaces are encoded the SentencePiece way (a word token starts with
"▁" when a space precedes it), so ``decode(encode(text)) == text`` exactly for every caption
the grammars produce.

Special tokens: ``<pad>`` (id 0), ``<bos>``, ``<eos>``, ``<unk>``, and the register tokens
``<formal>`` and ``<spoken>`` that a conditional captioner can be prompted with.

The shipped file is ``tokenizer.json`` in the package's data folder (:func:`spokenstyle.runtime.data_dir`); :func:`build_tokenizer` makes it again from the
grammars (deterministically: a fixed corpus, ties in the vocabulary broken alphabetically), and
a test checks that the committed file equals a fresh build.
"""

from __future__ import annotations

import hashlib
import json
from functools import lru_cache
from pathlib import Path
from typing import Sequence

import torch
from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers

from ..runtime import data_dir
from .captions import REGISTERS, caption, lexicon_words
from .scenes import sample_scenes

__all__ = [
    "SPECIAL_TOKENS",
    "PAD_ID",
    "BOS_ID",
    "EOS_ID",
    "UNK_ID",
    "build_tokenizer",
    "load_tokenizer",
    "tokenizer_path",
    "encode",
    "decode",
    "encode_batch",
    "decode_batch",
    "MAX_CAPTION_TOKENS",
    "encode_captions",
    "tokenizer_digest",
]

SPECIAL_TOKENS: tuple[str, ...] = ("<pad>", "<bos>", "<eos>", "<unk>", "<formal>", "<spoken>")
PAD_ID, BOS_ID, EOS_ID, UNK_ID = 0, 1, 2, 3
MAX_CAPTION_TOKENS = 56  # words + <eos> of a caption for chapter 6's models; the longest spoken one has ~51 words
_CORPUS_SCENES = 1000  # scenes per register in the build corpus (the lexicon is added in full)
_FILE = "tokenizer.json"


def _pre_tokenizer() -> pre_tokenizers.PreTokenizer:
    return pre_tokenizers.Sequence([
        pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="first"),
        pre_tokenizers.Split(Regex(r"'s\b|[^\w'▁\-]"), behavior="isolated"),  # punctuation and 's alone
    ])


def _corpus() -> list[str]:
    """Captions of both registers for a fixed range of scene seeds (each also with its first letter
    in the other case), plus every lexicon word."""
    specs = sample_scenes(torch.arange(_CORPUS_SCENES)).specs()
    texts = [caption(s, reg, k) for reg in REGISTERS for k, s in enumerate(specs)]
    texts += [t[0].swapcase() + t[1:] for t in texts]  # every first word in both cases
    words = lexicon_words()
    texts.append(" ".join(words))
    texts.append(" ".join(w.capitalize() for w in words))
    return texts


def build_tokenizer() -> Tokenizer:
    """Builds the word-level tokenizer from the grammars (deterministic)."""
    pre = _pre_tokenizer()
    counts: dict[str, int] = {}
    for text in _corpus():
        for piece, _ in pre.pre_tokenize_str(text):
            counts[piece] = counts.get(piece, 0) + 1
    # frequent words first, ties alphabetically: the same vocabulary on every machine
    vocab_words = sorted(counts, key=lambda w: (-counts[w], w))
    vocab = {tok: i for i, tok in enumerate(SPECIAL_TOKENS)}
    for w in vocab_words:
        vocab.setdefault(w, len(vocab))
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre
    tok.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="first")
    tok.add_special_tokens(list(SPECIAL_TOKENS))
    return tok


def tokenizer_path() -> Path:
    """Where the shipped tokenizer lives: ``data_dir() / "tokenizer.json"``."""
    return data_dir() / _FILE


def save_tokenizer(path: str | Path | None = None) -> Path:
    """Builds the tokenizer and writes it (pretty-printed JSON) to ``path`` (default: shipped file)."""
    path = Path(path) if path is not None else tokenizer_path()
    text = json.dumps(json.loads(build_tokenizer().to_str()), indent=1, ensure_ascii=False, sort_keys=True)
    path.write_text(text + "\n", encoding="utf-8")
    return path


@lru_cache(maxsize=4)
def load_tokenizer(path: str | None = None) -> Tokenizer:
    """The shipped tokenizer (or the one at ``path``)."""
    p = Path(path) if path is not None else tokenizer_path()
    if not p.is_file():
        raise FileNotFoundError(f"no tokenizer at {p}; build it with "
                                "`python -m spokenstyle.data.tokenizer` (writes spokenstyle/shipped/tokenizer.json)")
    return Tokenizer.from_file(str(p))


def _register_id(register: str | None, tok: Tokenizer) -> list[int]:
    if register is None:
        return []
    if register not in REGISTERS:
        raise ValueError(f"unknown register {register!r}; expected one of {REGISTERS} or None")
    return [tok.token_to_id(f"<{register}>")]


def _check_text(text: object) -> str:
    if not isinstance(text, str):
        raise TypeError(f"encode expects a string, got {type(text).__name__}")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as err:
        raise ValueError(f"the text is not valid Unicode: {err.reason} ({text[err.start:err.end]!r} at position "
                         f"{err.start}); a lone surrogate usually comes from bytes decoded with the wrong codec") from None
    return text


def _check_ids(ids: Sequence[int] | torch.Tensor, size: int) -> list[int]:
    """Token ids as a list of ints in [0, size); a clear error for anything else."""
    if isinstance(ids, torch.Tensor):
        if ids.dim() != 1 or ids.dtype.is_floating_point or ids.dtype == torch.bool:
            raise TypeError(f"decode takes one sentence: a 1-D integer tensor or list of ids, got a "
                            f"{ids.dim()}-D {ids.dtype} tensor (for a batch (B, T) use decode_batch)")
        ids = ids.tolist()
    if isinstance(ids, (str, bytes)) or not isinstance(ids, Sequence):
        raise TypeError(f"decode takes a list of int ids, got {type(ids).__name__}")
    out = []
    for k, i in enumerate(ids):
        if isinstance(i, bool) or not isinstance(i, int):
            raise TypeError(f"token ids must be ints, got {type(i).__name__} {i!r} at position {k}")
        if not 0 <= i < size:
            raise ValueError(f"token id {i} at position {k} is not in the vocabulary (ids 0 to {size - 1})")
        out.append(i)
    return out


def encode(text: str, register: str | None = None, *, special: bool = True,
           tokenizer: Tokenizer | None = None) -> list[int]:
    """Token ids of ``text``: ``[<bos>, <register>?, words..., <eos>]`` (no specials if ``special=False``).

    Raises:
        TypeError: not a str. ValueError: not valid Unicode (a lone surrogate), or an unknown register.
    """
    text = _check_text(text)
    tok = tokenizer or load_tokenizer()
    ids = tok.encode(text, add_special_tokens=False).ids
    return [BOS_ID, *_register_id(register, tok), *ids, EOS_ID] if special else ids


def decode(ids: Sequence[int] | torch.Tensor, *, tokenizer: Tokenizer | None = None) -> str:
    """Text of token ids; special tokens are dropped and decoding stops at the first ``<eos>``.

    Raises:
        TypeError: not a list (or 1-D tensor) of ints. ValueError: an id outside the vocabulary
            (an unknown id is an error, never silently dropped).
    """
    tok = tokenizer or load_tokenizer()
    ids = _check_ids(ids, tok.get_vocab_size())
    if EOS_ID in ids:
        ids = ids[: ids.index(EOS_ID)]
    return tok.decode(ids, skip_special_tokens=True)


def encode_batch(texts: Sequence[str], register: str | None = None, *, max_len: int | None = None,
                 tokenizer: Tokenizer | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Padded ids (B, T) int64 and a mask (B, T) bool of real tokens; ``max_len`` truncates
    (keeping the final ``<eos>``)."""
    seqs = [encode(t, register, tokenizer=tokenizer) for t in texts]
    if max_len is not None:
        if max_len < 2:
            raise ValueError(f"max_len must be at least 2 (<bos> and <eos>), got {max_len}")
        seqs = [s if len(s) <= max_len else s[: max_len - 1] + [EOS_ID] for s in seqs]
    T = max((len(s) for s in seqs), default=0)
    ids = torch.full((len(seqs), T), PAD_ID, dtype=torch.int64)
    for i, s in enumerate(seqs):
        ids[i, : len(s)] = torch.tensor(s)
    return ids, ids != PAD_ID


def decode_batch(ids: torch.Tensor | Sequence[Sequence[int]], *, tokenizer: Tokenizer | None = None) -> list[str]:
    """:func:`decode` for every row of a (B, T) tensor (or a list of id lists)."""
    if isinstance(ids, torch.Tensor) and ids.dim() != 2:
        raise TypeError(f"decode_batch takes a (B, T) batch of ids, got shape {tuple(ids.shape)} "
                        "(for one sentence use decode)")
    if not isinstance(ids, torch.Tensor) and (isinstance(ids, (str, bytes)) or not isinstance(ids, Sequence)):
        raise TypeError(f"decode_batch takes a (B, T) tensor or a list of id lists, got {type(ids).__name__}")
    return [decode(row, tokenizer=tokenizer) for row in ids]


def encode_captions(texts: Sequence[str]) -> torch.Tensor:
    """(N, L) ids ``w1 … wn <eos>`` right-padded (no ``<bos>``), truncated to
    :data:`MAX_CAPTION_TOKENS`: what the captioner predicts and the text classifiers read."""
    ids, _ = encode_batch(list(texts), max_len=MAX_CAPTION_TOKENS + 1)
    return ids[:, 1:].contiguous()


def tokenizer_digest() -> str:
    """A short fingerprint of the shipped tokenizer's vocabulary, stored in every checkpoint of a
    model that reads or writes token ids: ids mean nothing under another vocabulary."""
    vocab = load_tokenizer().get_vocab()
    return hashlib.sha256(json.dumps(sorted(vocab.items())).encode()).hexdigest()[:16]


if __name__ == "__main__":
    print(f"wrote {save_tokenizer()}")
