"""Measuring generated sentences: BLEU, distinct-n, perplexity, and rates read off classifiers.

* :func:`bleu`: corpus BLEU-1 … BLEU-4 (Papineni et al. 2002): the geometric mean of the
  modified (clipped) n-gram precisions, times a brevity penalty. Written out here because the
  book teaches it (chapter 6), and tested against ``sacrebleu`` (``smooth_method="none"``), which
  it equals to 1e-9 on the book's sentences. ``sacrebleu`` is a test dependency, not a runtime one.
* :func:`distinct_n`: distinct-1/2 (Li et al. 2016): unique n-grams over all n-grams of a set of
  sentences; low values mean the generator repeats itself (language mode collapse).
* :func:`perplexity`: ``exp`` of the mean negative log-likelihood per token under a language
  model: how fluent a set of sentences looks to a model of the spoken register.
* :func:`attribute_accuracy`: the share of captions that are true of their picture: the parse
  (:func:`spokenstyle.data.captions.parse`) names exactly the picture's objects (shape, colour
  and size) and every relation it states holds in the picture.
* :func:`classifier_rate`: the share of sentences a one-logit classifier calls positive; with
  the register classifier it is the **spoken rate**, with the critic T the **fooling rate**.

References:
    Papineni et al. 2002, "BLEU: a Method for Automatic Evaluation of Machine Translation";
    Post 2018, "A Call for Clarity in Reporting BLEU Scores" (sacrebleu);
    Li et al. 2016, "A Diversity-Promoting Objective Function for Neural Conversation Models".
"""

from __future__ import annotations

import math
import re
from collections import Counter
from typing import Any, Callable, Iterable, Sequence

import torch

from .data.captions import parse as parse_caption
from .data.scenes import COLOURS, RELATIONS, SceneBatch, relation_between

__all__ = [
    "tokenize",
    "ngrams",
    "bleu",
    "distinct_n",
    "perplexity",
    "caption_is_true",
    "attribute_accuracy",
    "classifier_rate",
]

# sacrebleu's default "13a" tokenizer, for the sentences of this book: punctuation becomes its
# own token, but a hyphen or apostrophe inside a word stays ("sky-blue", "chillin'", "isn't").
_WORD = re.compile(r"[^\W_]+(?:[-'][^\W_]+)*'?|[^\w\s]|_")


def tokenize(text: str) -> list[str]:
    """Words and punctuation of ``text`` (case kept, as in sacrebleu's default)."""
    if not isinstance(text, str):
        raise TypeError(f"expected a string sentence, got {type(text).__name__}")
    return _WORD.findall(text)


def ngrams(tokens: Sequence[str], n: int) -> Counter:
    """The multiset of n-grams of one token list."""
    return Counter(tuple(tokens[i: i + n]) for i in range(len(tokens) - n + 1))


def _check_corpus(hypotheses: Sequence[str], name: str = "hypotheses") -> list[str]:
    if isinstance(hypotheses, str) or not isinstance(hypotheses, Sequence):
        raise TypeError(f"{name} must be a list of strings, got {type(hypotheses).__name__}")
    if not all(isinstance(h, str) for h in hypotheses):
        raise TypeError(f"{name} must contain strings only")
    return list(hypotheses)


def bleu(hypotheses: Sequence[str], references: Sequence[str] | Sequence[Sequence[str]], *,
         max_order: int = 4, tokenizer: Callable[[str], list[str]] = tokenize) -> dict[str, float]:
    """Corpus BLEU-1 … BLEU-``max_order`` in [0, 100], as ``{"bleu1": …, "bleu4": …}``.

    BLEU-n uses the uniform geometric mean of the modified precisions p1 … pn::

        BLEU-n = BP · exp( (1/n) Σ_k log p_k ),   p_k = Σ_hyp Σ_g min(c_hyp(g), max_ref c_ref(g)) / Σ_hyp Σ_g c_hyp(g)
        BP = 1 if c > r else exp(1 − r / c)

    with c the total hypothesis length and r the sum over sentences of the reference length
    closest to the hypothesis (ties: the shorter). No smoothing: BLEU-n is 0 when some p_k is 0.

    Args:
        hypotheses: one generated sentence per item.
        references: one reference per item (a list of strings), or several: a list of
            reference *streams* (each a list of strings as long as ``hypotheses``), like sacrebleu.
        max_order: the largest n.
        tokenizer: how a sentence is split into tokens.
    """
    hyps = _check_corpus(hypotheses)
    if not isinstance(max_order, int) or max_order < 1:
        raise ValueError(f"max_order must be a positive int, got {max_order!r}")
    if references and all(isinstance(r, str) for r in references):
        streams = [list(references)]
    else:
        streams = [_check_corpus(s, "references") for s in references]
    if not streams or any(len(s) != len(hyps) for s in streams):
        raise ValueError(f"every reference stream needs one sentence per hypothesis ({len(hyps)})")
    if not hyps:
        raise ValueError("bleu of an empty corpus is undefined")
    matches = [0] * max_order
    totals = [0] * max_order
    hyp_len = ref_len = 0
    for i, hyp in enumerate(hyps):
        h = tokenizer(hyp)
        refs = [tokenizer(s[i]) for s in streams]
        hyp_len += len(h)
        ref_len += min((abs(len(r) - len(h)), len(r)) for r in refs)[1]  # closest, ties → shorter
        for n in range(1, max_order + 1):
            counts = ngrams(h, n)
            max_ref: Counter = Counter()
            for r in refs:
                max_ref |= ngrams(r, n)  # elementwise max of the references' counts
            matches[n - 1] += sum(min(c, max_ref[g]) for g, c in counts.items())
            totals[n - 1] += max(len(h) - n + 1, 0)
    bp = 1.0 if hyp_len > ref_len else (math.exp(1 - ref_len / hyp_len) if hyp_len else 0.0)
    out = {}
    log_sum = 0.0
    for n in range(1, max_order + 1):
        if matches[n - 1] == 0 or totals[n - 1] == 0:
            log_sum = float("-inf")
        else:
            log_sum += math.log(matches[n - 1] / totals[n - 1])
        out[f"bleu{n}"] = 100.0 * bp * math.exp(log_sum / n) if log_sum > float("-inf") else 0.0
    return out


def distinct_n(sentences: Sequence[str], n: int, *, tokenizer: Callable[[str], list[str]] = tokenize) -> float:
    """Distinct-n: the number of different n-grams over the number of n-grams, in the whole set."""
    sents = _check_corpus(sentences, "sentences")
    if not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be a positive int, got {n!r}")
    seen: set = set()
    total = 0
    for s in sents:
        grams = ngrams(tokenizer(s), n)
        seen.update(grams)
        total += sum(grams.values())
    return len(seen) / total if total else 0.0


@torch.no_grad()
def perplexity(nll_fn: Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]],
               batches: Iterable[torch.Tensor]) -> float:
    """``exp(total NLL / total tokens)`` over ``batches`` of token ids.

    Args:
        nll_fn: ``nll_fn(tokens) -> (summed NLL per sentence (B,), tokens per sentence (B,))``,
            e.g. :func:`spokenstyle.captioning.lm_nll` with a spoken language model.
        batches: token-id tensors (B, L).
    """
    total_nll, total_tokens = 0.0, 0.0
    for tokens in batches:
        nll, count = nll_fn(tokens)
        total_nll += float(nll.sum())
        total_tokens += float(count.sum())
    if total_tokens == 0:
        raise ValueError("perplexity of no tokens is undefined")
    return math.exp(total_nll / total_tokens)


def caption_is_true(spec: Any, scenes: Any, i: int) -> bool:
    """True when a parsed caption ``spec`` names exactly the objects of picture ``i`` of the
    :class:`~spokenstyle.data.scenes.SceneBatch` ``scenes`` (shape, colour and size each) and
    every relation it states holds between those two objects in the picture's geometry."""
    truth = scenes.spec(i)
    if frozenset(spec.objects) != frozenset(truth.objects):
        return False
    n = int(scenes.mask[i].sum())
    slot = {COLOURS[int(scenes.colour[i, k])]: k for k in range(n)}
    for a, rel, b in spec.facts():  # canonical: "a left of b", "a above b", "a next to b"
        ka, kb = slot[a.colour], slot[b.colour]
        geo = int(relation_between(scenes.pos[i, ka], scenes.pos[i, kb], scenes.radius[i, ka], scenes.radius[i, kb]))
        if geo < 0 or RELATIONS[geo] != rel:
            return False
    return True


def attribute_accuracy(captions: Sequence[str], scenes: Any, *, parse: Callable | None = None) -> float:
    """The share of captions that are *true of their picture* (unreadable captions are wrong).

    With a :class:`~spokenstyle.data.scenes.SceneBatch` (positions known) a caption counts when
    its parse names exactly the picture's objects and each relation it states holds in the
    picture (:func:`caption_is_true`). A three-object scene's caption states two of its three
    pairwise relations, and which two is not visible in the picture, so this, not equality
    with the scene's own chain, is the fair test. With a list of
    :class:`~spokenstyle.data.scenes.SceneSpec` (no geometry) it is exact equality of content
    (``SceneSpec.matches``).

    Args:
        captions: one caption per scene.
        scenes: a ``SceneBatch`` or a list of ``SceneSpec``.
        parse: ``parse(text) -> SceneSpec`` raising ``ValueError`` on failure; default the book's parser.
    """
    caps = _check_corpus(captions, "captions")
    geometric = isinstance(scenes, SceneBatch)
    specs = None if geometric else list(scenes)
    n = len(scenes)
    if n != len(caps):
        raise ValueError(f"got {len(caps)} captions for {n} scenes")
    if not caps:
        raise ValueError("attribute accuracy of no captions is undefined")
    parse = parse or parse_caption
    cpu = scenes.to("cpu") if geometric else None
    right = 0
    for i, text in enumerate(caps):
        try:
            parsed = parse(text)
        except ValueError:  # ParseError is a ValueError: an unreadable caption is wrong
            continue
        right += caption_is_true(parsed, cpu, i) if geometric else bool(parsed.matches(specs[i]))
    return right / len(caps)


@torch.no_grad()
def classifier_rate(classifier: Callable[[torch.Tensor], torch.Tensor], tokens: torch.Tensor, *,
                    batch_size: int = 512) -> float:
    """The share of sentences (token ids (B, L)) whose one logit is positive (P > 0.5)."""
    if not isinstance(tokens, torch.Tensor) or tokens.dim() != 2:
        raise ValueError("tokens must be token ids of shape (B, L)")
    if tokens.shape[0] == 0:
        raise ValueError("the rate of no sentences is undefined")
    positive = 0
    for start in range(0, tokens.shape[0], batch_size):
        logits = classifier(tokens[start: start + batch_size])
        positive += int((logits > 0).sum())
    return positive / tokens.shape[0]
