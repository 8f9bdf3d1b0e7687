"""``spokenstyle train captioner`` with every model already in its folder: it re-scores, it does
not retrain, and what it writes into the manifests is what the models do under the budget."""

from __future__ import annotations

import json

import pytest
import torch

from spokenstyle import checkpoints, runtime
from spokenstyle.data import corpus  # corpus.test_set: a bare test_set would be collected as a test
from spokenstyle.data.tokenizer import tokenizer_digest
from spokenstyle.evaluation import GREEDY_SYSTEMS, evaluate_systems
from spokenstyle.models.captioner import Captioner, caption_images, captioner, captioner_config
from spokenstyle.models.critic import TextClassifier, classifier_config
from spokenstyle.recipes.captioning import train
from spokenstyle.text_metrics import attribute_accuracy, distinct_n

CAPTIONERS = ("captioner_formal", "captioner_paired", "captioner_spoken", "register_lm")
CLASSIFIERS = {"register_clf": "register", "captioner_reader": "reader", "critic": "critic"}


@pytest.fixture(scope="module")
def rescored(tmp_path_factory):
    """Seven small random components saved like the recipe saves them, then the recipe run once."""
    out = tmp_path_factory.mktemp("captioner")
    torch.manual_seed(0)
    extra = {"tokenizer": tokenizer_digest()}
    for name in CAPTIONERS:
        config = captioner_config(n_layer=1, n_embd=32, n_head=2, enc_hidden=16, max_len=12)
        captioner(config=config).save_pretrained(out / name, command="test", metrics={"old": 1.0}, extra=extra)
    for name, kind in CLASSIFIERS.items():
        TextClassifier(classifier_config(kind)).save_pretrained(out / name, command="test", extra=extra)
    weights = weight_files(out)
    rt = runtime.Runtime(device=torch.device("cpu"), profile="fast", seed=0)
    report = train(out, runtime=rt)
    return out, rt, weights, report


def manifest(out, name):
    return json.loads((out / name / "manifest.json").read_text())


def weight_files(out):
    """Every weights file in the checkpoint folders, "folder/file" -> bytes (whatever the file's name)."""
    return {f"{p.parent.name}/{p.name}": p.read_bytes() for p in out.glob("*/*.safetensors")}


def test_nothing_is_retrained_and_every_weight_file_is_unchanged(rescored):
    out, _, weights, report = rescored
    assert report["seconds"] == {}  # no model was trained
    assert weight_files(out) == weights
    for name in (*CAPTIONERS, *CLASSIFIERS):
        # the manifest still names the folder's one weights file (model-<sha16>.safetensors) ...
        assert [f"{name}/{f}" for f in manifest(out, name)["files"]] == [f for f in weights if f.startswith(name + "/")]
        checkpoints.load_checkpoint(out / name)  # ... and still describes its weights


def test_manifests_hold_the_budget_decoding_and_both_tables(rescored):
    out, rt, _, report = rescored
    ev = rt.budget("captioner_eval")
    spoken = manifest(out, "captioner_spoken")
    assert spoken["extra"]["decoding"] == ev.decoding and spoken["extra"]["sampling"] == ev.sampling
    assert spoken["extra"]["rescored"]["command"] and spoken["command"] == "test"
    assert spoken["metrics"]["attribute_accuracy"] == report["results"]["adversarial"]["attribute_accuracy"]
    assert spoken["extra"]["results_sampling"] == report["results_sampling"]
    assert set(report["results"]) == {"formal_mle", "rule_based", "before_adversarial", "adversarial",
                                      "adversarial_formal", "paired_upper_bound"}
    formal = manifest(out, "captioner_formal")["metrics"]
    assert formal["old"] == 1.0  # merged, not replaced
    assert formal["spoken_before_adversarial"] == report["results"]["before_adversarial"]
    assert manifest(out, "captioner_paired")["metrics"]["bleu4"] == report["results"]["paired_upper_bound"]["bleu4"]
    assert manifest(out, "critic")["metrics"]["fooling_rate"] == report["results"]["adversarial"]["fooling_rate"]


def test_recorded_scores_are_those_of_the_models_under_that_decoding(rescored):
    out, rt, _, report = rescored
    ev = rt.budget("captioner_eval")
    test = corpus.test_set(ev.n_test)
    S = Captioner.from_pretrained(out / "captioner_spoken")
    for table, decoding in (("results", ev.decoding), ("results_sampling", ev.sampling)):
        texts, _ = caption_images(S, test.images, "spoken", **decoding)
        assert report[table]["adversarial"]["attribute_accuracy"] == attribute_accuracy(texts, test.scenes)
        assert report[table]["adversarial"]["distinct2"] == distinct_n(texts, 2)
    # the two decodings write different captions, so the check above tells the tables apart
    assert report["results"]["adversarial"]["distinct2"] != report["results_sampling"]["adversarial"]["distinct2"]


def test_greedy_rows_are_copied_only_from_a_table_that_has_them(rescored):
    out, rt, _, report = rescored
    ev = rt.budget("captioner_eval")
    test = corpus.test_set(ev.n_test)
    S, P = Captioner.from_pretrained(out / "captioner_formal"), Captioner.from_pretrained(out / "captioner_paired")
    S_spoken = Captioner.from_pretrained(out / "captioner_spoken")
    reg = TextClassifier.from_pretrained(out / "register_clf")
    # the sampled table copies the greedy rows; written again from the models, they are the same
    fresh = evaluate_systems(S, S_spoken, P, test, ev.sampling, register_clf=reg)
    for name in GREEDY_SYSTEMS:
        assert fresh[name]["attribute_accuracy"] == report["results_sampling"][name]["attribute_accuracy"]
        assert fresh[name]["distinct2"] == report["results_sampling"][name]["distinct2"]
    with pytest.raises(ValueError, match="missing \\['rule_based'"):
        evaluate_systems(S, S_spoken, P, test, ev.sampling, register_clf=reg,
                         greedy_scores={"formal_mle": {}, "adversarial_formal": {}})
