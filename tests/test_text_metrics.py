"""Caption metrics: our BLEU against sacrebleu, distinct-n by hand, perplexity, rates, accuracy."""

from __future__ import annotations

import math

import pytest
import torch

from spokenstyle.data.captions import describe, parse, spoken_caption
from spokenstyle.data.scenes import INVERSE_RELATION, RELATIONS, relation_between, sample_scenes
from spokenstyle.text_metrics import (attribute_accuracy, bleu, caption_is_true, classifier_rate, distinct_n, ngrams,
                                      perplexity, tokenize)

sacrebleu = pytest.importorskip("sacrebleu")
Tokenizer13a = pytest.importorskip("sacrebleu.tokenizers.tokenizer_13a").Tokenizer13a

SCENES = sample_scenes(range(120))
FORMAL = describe(SCENES, "formal")
SPOKEN = describe(SCENES, "spoken")
SPOKEN_2 = [spoken_caption(s, 1000 + i) for i, s in enumerate(SCENES.specs())]


def test_tokenize_agrees_with_sacrebleu_13a():
    tok = Tokenizer13a()
    for text in FORMAL + SPOKEN + ["isn't it?!", "big ol' sky-blue ball... lol"]:
        assert tokenize(text) == tok(text).split(), text


@pytest.mark.parametrize("hyps,refs", [
    (SPOKEN_2, [SPOKEN]),                # one reference per sentence
    (FORMAL, [SPOKEN]),                  # another register: low precision
    (SPOKEN_2, [SPOKEN, FORMAL]),        # two references per sentence
    (SPOKEN[:1], [SPOKEN[:1]]),          # identical: 100
    ([s.split(",")[0] for s in SPOKEN_2], [SPOKEN]),  # short hypotheses: brevity penalty
])
def test_bleu_equals_sacrebleu(hyps, refs):
    ours = bleu(hyps, refs)
    for n in range(1, 5):
        theirs = sacrebleu.metrics.BLEU(max_ngram_order=n, smooth_method="none").corpus_score(hyps, refs).score
        assert ours[f"bleu{n}"] == pytest.approx(theirs, abs=1e-9), n


def test_bleu_textbook_case():
    """Papineni et al. 2002, §2.1.1: "the the the the the the the" against "The cat is on the mat"
    and "There is a cat on the mat" has modified unigram precision 2/7 (clipped at the larger
    count of "the", 2); the brevity penalty is 1 (7 tokens, closest reference 7)."""
    hyp = ["the the the the the the the"]
    refs = [["the cat is on the mat"], ["there is a cat on the mat"]]
    assert bleu(hyp, refs, max_order=1)["bleu1"] == pytest.approx(100 * 2 / 7)
    assert bleu(hyp, refs)["bleu2"] == 0.0  # no bigram "the the" in the references, no smoothing


def test_bleu_validates():
    with pytest.raises(ValueError, match="one sentence per hypothesis"):
        bleu(["a b"], [["a b", "c"]])
    with pytest.raises(TypeError):
        bleu("a b c", ["a b c"])


def test_distinct_n_by_hand():
    sents = ["a b a b", "a b c"]
    # unigrams: a b a b a b c -> 3 distinct of 7; bigrams: ab ba ab ab bc -> 3 distinct of 5
    assert distinct_n(sents, 1) == pytest.approx(3 / 7)
    assert distinct_n(sents, 2) == pytest.approx(3 / 5)
    assert ngrams(["a", "b", "a"], 2) == {("a", "b"): 1, ("b", "a"): 1}
    assert distinct_n(SPOKEN, 2) > distinct_n(FORMAL, 2)  # the spoken grammar varies more


def test_perplexity_of_a_uniform_model_is_the_vocabulary_size():
    V = 17

    def uniform(tokens):
        count = (tokens != 0).sum(1).float()
        return count * math.log(V), count

    batches = [torch.randint(1, V, (4, 6)), torch.randint(1, V, (3, 5))]
    assert perplexity(uniform, batches) == pytest.approx(V)


def test_attribute_accuracy_reads_captions_back():
    specs = SCENES.specs()
    assert attribute_accuracy(FORMAL, specs) == 1.0
    assert attribute_accuracy(FORMAL, SCENES) == 1.0
    assert attribute_accuracy(SPOKEN, specs) >= 0.97
    shuffled = FORMAL[1:] + FORMAL[:1]
    assert attribute_accuracy(shuffled, specs) < 0.1
    assert attribute_accuracy(["no idea, mate"] * len(specs), specs) == 0.0


def test_classifier_rate():
    tokens = torch.tensor([[1, 2], [3, 4], [5, 6]])
    assert classifier_rate(lambda t: t[:, 0].float() - 2.5, tokens, batch_size=2) == pytest.approx(2 / 3)


def test_a_true_relation_the_chain_does_not_state_counts_as_true():
    """A left of B left of C: "A left of C" is true of the picture although the scene's chain
    does not state it; a false relation or a wrong object is not."""
    scenes = sample_scenes(range(400), n_objects=3)
    found = 0
    for i in range(len(scenes)):
        spec = scenes.spec(i)
        rel02 = int(relation_between(scenes.pos[i, 0], scenes.pos[i, 2], scenes.radius[i, 0], scenes.radius[i, 2]))
        if rel02 < 0:
            continue
        a, b, c = spec.objects
        other = f"A {a} is {RELATIONS[rel02]} a {c}, and the {a} is {spec.relations[0]} a {b}."
        parsed = parse(other)
        assert not parsed.matches(spec) and caption_is_true(parsed, scenes, i)
        wrong = parse(f"A {a} is {INVERSE_RELATION[RELATIONS[rel02]] if RELATIONS[rel02] != 'next to' else 'above'} "
                      f"a {c}, and the {a} is {spec.relations[0]} a {b}.")
        assert not caption_is_true(wrong, scenes, i)
        found += 1
        if found == 5:
            break
    assert found == 5
    assert attribute_accuracy(describe(scenes, "formal"), scenes) == 1.0
