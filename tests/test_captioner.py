"""The captioner S: shapes, decoding against references, Gumbel-softmax, save/load round trip."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from transformers.cache_utils import DynamicCache

from spokenstyle import checkpoints
from spokenstyle.budgets import AdversarialBudget, CaptionerStageBudget, TextModelBudget
from spokenstyle.data import corpus  # corpus.test_set: a bare test_set would be collected as a test
from spokenstyle.data.captions import describe, parse, try_parse
from spokenstyle.data.content import N_PAIR_CLASSES, PAIRS, content_of_specs, content_targets
from spokenstyle.data.corpus import CORPUS_SPLITS, captions, split_scenes
from spokenstyle.data.images import as_images
from spokenstyle.data.scenes import N_SLOT_CLASSES
from spokenstyle.data.splits import seed_range
from spokenstyle.data.tokenizer import tokenizer_digest
from spokenstyle.evaluation import evaluate_captions, literal_value, perception_metrics
from spokenstyle.models.captioner import (Captioner, CaptionerConfig, ContentMemory, _reorder_cache, caption_images,
                                          captioner, captioner_config, content_probs, gumbel_softmax,
                                          rule_based_rewrite)
from spokenstyle.models.critic import TextClassifier, classifier_config
from spokenstyle.recipes.captioning import (_frozen, gradient_estimates, leave_one_out_baseline, reinforce_loss,
                                          train_adversarial, train_mle,
                                            train_paired, train_perception, train_reader, train_register_classifier)
from spokenstyle.runtime import setup

TINY = dict(vocab_size=12, max_len=6, image_size=32, n_embd=32, n_layer=2, n_head=2,
            enc_channels=(8, 8, 8, 16, 16), dropout=0.0)


def tiny(seed: int = 0, **overrides) -> Captioner:
    """A tiny random captioner whose outputs are not flat (random GPT-2 init is near-uniform)."""
    torch.manual_seed(seed)
    model = captioner(**{**TINY, **overrides}).eval()
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() > 1:
                p.normal_(0, 0.3)
    return model


def images(n: int = 3, size: int = 32, seed: int = 0) -> torch.Tensor:
    return torch.rand(n, 3, size, size, generator=torch.Generator().manual_seed(seed))


def memories(model: Captioner, n: int = 4, seed: int = 0) -> torch.Tensor:
    """Memories of n random, different contents (random pictures read by a random reader all
    look alike to it)."""
    g = torch.Generator().manual_seed(seed)
    slots = F.one_hot(torch.randint(13, (n, 6), generator=g), 13).float()
    pairs = F.one_hot(torch.randint(6, (n, 15), generator=g), 6).float()
    return model.encode_content(slots, pairs) * 10  # loud enough to steer a random decoder


def test_config_validates():
    with pytest.raises(ValueError, match="distinct"):
        CaptionerConfig(vocab_size=12, register_ids=(2, 4))
    with pytest.raises(ValueError, match="multiple of 8"):
        CaptionerConfig(image_size=36)
    with pytest.raises(ValueError, match="divisible"):
        CaptionerConfig(n_embd=30, n_head=4)
    with pytest.raises(TypeError):
        Captioner({"vocab_size": 12})


def test_forward_shapes_and_loss_ignores_padding():
    model = tiny()
    tokens = torch.tensor([[5, 6, 2, 0, 0], [7, 2, 0, 0, 0]])
    logits, loss = model(images(2), tokens, "formal")
    assert logits.shape == (2, 5, 12) and loss.dim() == 0
    # the loss is the mean over the 5 non-pad targets
    logp = logits.log_softmax(-1).gather(-1, tokens[..., None])[..., 0]
    expected = -(logp * (tokens != 0)).sum() / (tokens != 0).sum()
    assert torch.allclose(loss, expected, atol=1e-6)
    # the register changes the prediction; "no image" memory works too
    other, _ = model(images(2), tokens, "spoken")
    assert not torch.allclose(logits, other)
    no_image, _ = model(None, tokens, "spoken")
    assert no_image.shape == logits.shape
    with pytest.raises(ValueError, match="register"):
        model(images(2), tokens, "casual")
    with pytest.raises(ValueError, match="max_len"):
        model(images(2), torch.ones(2, 9, dtype=torch.long), "formal")


@pytest.mark.parametrize("register", ["formal", "spoken"])
def test_greedy_equals_transformers_generate(register):
    model = tiny(1)
    memory = memories(model, 8)
    ours = model.greedy(register=register, memory=memory)
    theirs = model.decoder.generate(input_ids=model.prefix(register, 8), encoder_hidden_states=memory,
                                    max_new_tokens=model.config.max_len, do_sample=False,
                                    eos_token_id=model.config.eos_id, pad_token_id=model.config.pad_id)[:, 2:]
    theirs = torch.nn.functional.pad(theirs, (0, ours.shape[1] - theirs.shape[1]), value=0)
    assert torch.equal(ours, theirs)
    assert len(set(map(tuple, ours.tolist()))) > 1, "the test model should not be degenerate"


def test_beam_of_one_is_greedy_and_sampling_top1_is_greedy():
    model = tiny(2)
    x = images(5)
    greedy = model.greedy(x, "spoken")
    assert torch.equal(model.beam_search(x, "spoken", num_beams=1), greedy)
    sampled = model.generate(x, "spoken", method="sample", top_k=1, generator=torch.Generator().manual_seed(0))
    assert torch.equal(sampled, greedy)


def test_wide_beam_finds_the_most_likely_sentence():
    """With num_beams ≥ V^L nothing is pruned, so beam search must return the exact argmax over
    all sentences of at most L tokens (enumerated by brute force)."""
    V, L = 6, 3
    model = tiny(3, vocab_size=V, max_len=L)
    x = images(2)
    beam = model.beam_search(x, "spoken", num_beams=V ** L)
    cands = []
    for n in range(1, L + 1):
        for seq in itertools.product(range(V), repeat=n):
            if 2 in seq[:-1] or (n < L and seq[-1] != 2):
                continue  # eos only at the end; shorter sentences must end with eos
            cands.append(list(seq) + [0] * (L - n))
    cands = torch.tensor(cands)
    for i in range(2):
        with torch.no_grad():
            logits, _ = model(x[i: i + 1].expand(len(cands), -1, -1, -1), cands, "spoken")
        logp = logits.log_softmax(-1).gather(-1, cands[..., None])[..., 0]
        after_eos = (cands == 2).long().cumsum(1) - (cands == 2).long() > 0
        score = logp.masked_fill(after_eos, 0).sum(1)
        assert torch.equal(beam[i], cands[score.argmax()])


def _beam_without_cache(model: Captioner, x: torch.Tensor, K: int) -> torch.Tensor:
    """Reference beam search that re-reads every prefix from scratch at each step (no cache)."""
    V, pad, eos = model.config.vocab_size, model.config.pad_id, model.config.eos_id
    B = x.shape[0]
    mem = model.encode(x).repeat_interleave(K, 0)
    prefix = model.prefix("spoken", B * K)
    seqs = torch.zeros(B * K, 0, dtype=torch.long)
    scores = torch.full((B, K), float("-inf"))
    scores[:, 0] = 0.0
    done = torch.zeros(B * K, dtype=torch.bool)
    for _ in range(model.config.max_len):
        embeds = model.embedding(torch.cat([prefix, seqs], 1))
        logp = model.decoder(inputs_embeds=embeds, encoder_hidden_states=mem).logits[:, -1].log_softmax(-1)
        frozen = torch.full_like(logp, float("-inf"))
        frozen[:, pad] = 0.0
        logp = torch.where(done[:, None], frozen, logp)
        scores, flat = (scores.reshape(-1, 1) + logp).reshape(B, K * V).topk(K, dim=1)
        beam = (flat // V + torch.arange(B)[:, None] * K).reshape(-1)
        token = (flat % V).reshape(-1)
        seqs = torch.cat([seqs[beam], token[:, None]], 1)
        done = done[beam] | (token == eos)
        if bool(done.all()):
            break
    best = scores.argmax(1) + torch.arange(B) * K
    return model._finish(list(seqs[best].unbind(1)))[0]


def test_reorder_cache_handles_cache_objects_and_legacy_tuples():
    """transformers >= 4.4x returns a Cache object, older versions tuples of (key, value) per layer;
    both must follow the surviving beams."""
    keys = [torch.arange(4.0).view(4, 1, 1, 1) + 10 * layer for layer in range(2)]
    rows = torch.tensor([2, 2, 0, 3])
    legacy = tuple((k, -k) for k in keys)
    out = _reorder_cache(legacy, rows)
    assert all(torch.equal(k, keys[i][rows]) and torch.equal(v, -keys[i][rows]) for i, (k, v) in enumerate(out))
    cache = DynamicCache()
    for layer, k in enumerate(keys):
        cache.update(k.clone(), -k.clone(), layer)
    assert _reorder_cache(cache, rows) is cache
    assert torch.equal(cache.layers[0].keys, keys[0][rows]) and torch.equal(cache.layers[1].values, -keys[1][rows])


@pytest.mark.parametrize("K", [2, 5])
def test_cached_beam_search_equals_recomputing_every_prefix(K):
    """The key/value cache is reordered to follow the surviving beams; a wrong reorder would give
    a hypothesis another's past. With pruning (K < V) the cached search must match the reference."""
    model = tiny(4, vocab_size=9, max_len=10)
    x = images(3, seed=1)
    with torch.no_grad():
        expected = _beam_without_cache(model, x, K)
    assert torch.equal(model.beam_search(x, "spoken", num_beams=K), expected)


def test_sampling_is_reproducible_with_a_generator():
    model = tiny(4)
    x = images(3)
    a = model.generate(x, "spoken", method="sample", generator=torch.Generator().manual_seed(7))
    b = model.generate(x, "spoken", method="sample", generator=torch.Generator().manual_seed(7))
    assert torch.equal(a, b)
    with pytest.raises(ValueError, match="method"):
        model.generate(x, method="nucleus")


@pytest.mark.parametrize("hard", [True, False])
def test_gumbel_softmax_equals_torch(hard):
    logits = torch.randn(5, 9, requires_grad=True)
    weights = torch.randn(5, 9)
    torch.manual_seed(11)
    ref = F.gumbel_softmax(logits, tau=0.7, hard=hard)
    (ref * weights).sum().backward()
    ref_grad = logits.grad.clone()
    logits.grad = None
    torch.manual_seed(11)
    ours = gumbel_softmax(logits, 0.7, hard=hard)
    (ours * weights).sum().backward()
    assert torch.allclose(ours, ref) and torch.allclose(logits.grad, ref_grad)
    if hard:
        assert torch.equal(ours.sum(-1), torch.ones(5)) and set(ours.detach().unique().tolist()) <= {0.0, 1.0}
    with pytest.raises(ValueError):
        gumbel_softmax(logits, 0.0)


def test_gumbel_rollout_is_discrete_forward_and_differentiable_backward():
    model = tiny(5)
    out = model.gumbel_rollout(images(4), "spoken", tau=1.0, generator=torch.Generator().manual_seed(0))
    B, L = out.tokens.shape
    assert out.one_hot.shape == (B, L, 12)
    assert torch.equal(out.one_hot.argmax(-1), out.tokens)
    # after the first eos: pad tokens, mask off
    for row, m in zip(out.tokens.tolist(), out.mask.tolist()):
        if 2 in row:
            k = row.index(2)
            assert all(t == 0 for t in row[k + 1:]) and all(m[: k + 1]) and not any(m[k + 1:])
    score = (out.one_hot * torch.randn(12)).sum()  # any function of the one-hot sentence
    score.backward()
    for name in ("reader.slot_head.0.weight", "reader.pair_head.0.weight", "content.object", "decoder.transformer.wte.weight"):
        grad = dict(model.named_parameters())[name].grad
        assert grad is not None and grad.abs().sum() > 0, name


def test_reinforce_log_probs_match_teacher_forcing():
    model = tiny(6)
    x = images(3)
    out = model.sample(x, "spoken", generator=torch.Generator().manual_seed(1))
    logits, _ = model(x, out.tokens, "spoken")
    logp = logits.log_softmax(-1).gather(-1, out.tokens[..., None])[..., 0] * out.mask
    assert torch.allclose(out.log_probs, logp, atol=1e-5)
    out.log_probs.sum().backward()
    assert model.decoder.lm_head.weight.grad is not None


def test_save_pretrained_round_trip(tmp_path):
    model = tiny(7)
    x = images(2)
    model.save_pretrained(tmp_path / "s", metrics={"attribute_accuracy": 0.5}, command="test")
    manifest = json.loads((tmp_path / "s" / "manifest.json").read_text())
    assert manifest["config"]["n_embd"] == 32 and manifest["metrics"]["attribute_accuracy"] == 0.5
    loaded = Captioner.from_pretrained(tmp_path / "s")
    assert loaded.config == model.config and not loaded.training
    assert torch.equal(loaded.greedy(x, "spoken"), model.greedy(x, "spoken"))
    same = captioner(weights=tmp_path / "s")
    assert torch.equal(same(x, torch.tensor([[3, 2], [4, 2]]))[0], model(x, torch.tensor([[3, 2], [4, 2]]))[0])
    # a config that does not fit the weights is refused with the key and both shapes
    manifest["config"]["n_embd"] = 64
    (tmp_path / "s" / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(checkpoints.CheckpointError, match="shape"):
        Captioner.from_pretrained(tmp_path / "s")
    manifest["config"]["colour"] = "red"
    (tmp_path / "s" / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(checkpoints.CheckpointError, match="CaptionerConfig"):
        Captioner.from_pretrained(tmp_path / "s")
    with pytest.raises(ValueError, match="not both"):
        captioner(weights=tmp_path / "s", n_layer=3)


@pytest.mark.parametrize("mode", ["L", "RGB", "RGBA", "P", "I;16", "CMYK"])
def test_images_in_any_pil_mode_and_size(mode):
    rng = np.random.default_rng(0)
    if mode == "I;16":
        pil = Image.fromarray(rng.integers(0, 65535, (40, 50), dtype=np.uint16))
    else:
        pil = Image.fromarray(rng.integers(0, 255, (40, 50, 3), dtype=np.uint8)).convert(mode)
    x = as_images(pil, 32, crop=False)
    assert x.shape == (1, 3, 32, 32) and x.dtype == torch.float32 and 0 <= float(x.min()) <= float(x.max()) <= 1
    model = tiny(8)
    assert model.greedy([pil, pil], "formal").shape[0] == 2


def test_bad_images_are_refused():
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        as_images(torch.rand(1, 3, 32, 32) * 2 - 1, 32, crop=False)
    with pytest.raises(ValueError, match="shape"):
        as_images(torch.rand(2, 5, 32, 32), 32, crop=False)
    with pytest.raises(TypeError):
        as_images(42, 32, crop=False)
    # a string is now a path to a picture: a missing file is refused by name
    with pytest.raises(ValueError, match="no image file"):
        as_images("picture.png", 32, crop=False)
    assert as_images(torch.full((3, 48, 48), 255, dtype=torch.uint8), 32, crop=False).shape == (1, 3, 32, 32)


# -- chapter 6's experiments (spokenstyle.data.corpus, spokenstyle.recipes.captioning) -----------

def test_splits_are_disjoint_and_the_pile_has_no_training_scene():
    offsets = sorted(seed_range(split).start for split in CORPUS_SPLITS)
    assert all(b - a >= 1_000_000 for a, b in zip(offsets, offsets[1:]))
    train = split_scenes("train", 50)
    pile = split_scenes("pile", 50)
    assert not set(train.seed.tolist()) & set(pile.seed.tolist())
    with pytest.raises(ValueError, match="split"):
        split_scenes("validation", 5)


def test_rule_based_rewrite_keeps_the_content():
    scenes = split_scenes("test", 60)
    formal = describe(scenes, "formal")
    spoken = [rule_based_rewrite(f) for f in formal]
    assert all(s.startswith("whoa, ") for s in spoken)
    assert "ball" in rule_based_rewrite("A large red circle is left of a small blue square.")
    assert sum(p is not None and p.matches(spec) for p, spec in zip(map(try_parse, spoken), scenes.specs())) >= 57


def test_reinforce_loss_gradient_and_estimators():
    log_probs = torch.randn(4, 3, requires_grad=True)
    rewards = torch.tensor([1.0, 0.0, 2.0, 1.0])
    reinforce_loss(log_probs, rewards, rewards.mean()).backward()
    assert torch.allclose(log_probs.grad[:, 0], -(rewards - 1.0) / 4)
    # a single categorical: both REINFORCE estimators are unbiased, the baseline cuts the variance
    torch.manual_seed(0)
    logits, r = torch.randn(6), torch.rand(6)
    p = logits.softmax(-1)
    exact = p * (r - (p * r).sum())
    plain = gradient_estimates(logits, r, 20000, "reinforce", generator=torch.Generator().manual_seed(1))
    base = gradient_estimates(logits, r, 20000, "reinforce_baseline", generator=torch.Generator().manual_seed(1))
    st = gradient_estimates(logits, r, 2000, "gumbel_st", generator=torch.Generator().manual_seed(1))
    assert (plain.mean(0) - exact).abs().max() < 0.02 and (base.mean(0) - exact).abs().max() < 0.01
    assert base.var(0).sum() < plain.var(0).sum() / 2
    assert st.shape == (2000, 6) and torch.isfinite(st).all()


def test_leave_one_out_baseline_is_the_mean_of_the_others():
    rewards = torch.tensor([1.0, 0.0, 2.0, 1.0, -3.0])
    direct = torch.tensor([sum(rewards[j] for j in range(5) if j != i) / 4 for i in range(5)])
    assert torch.allclose(leave_one_out_baseline(rewards), direct)
    rows = torch.randn(3, 6)  # along the last dimension, row by row
    assert torch.allclose(leave_one_out_baseline(rows), torch.stack([leave_one_out_baseline(r) for r in rows]))
    # the batch mean is the leave-one-out advantage shrunk by 1 - 1/B
    assert torch.allclose(rewards - rewards.mean(), (1 - 1 / 5) * (rewards - leave_one_out_baseline(rewards)))
    log_probs = torch.randn(5, 3, requires_grad=True)
    reinforce_loss(log_probs, rewards, leave_one_out_baseline(rewards)).backward()
    assert torch.allclose(log_probs.grad[:, 0], -(rewards - direct) / 5)
    with pytest.raises(ValueError, match="at least 2 samples"):
        leave_one_out_baseline(torch.tensor([1.0]))


def test_the_batch_mean_baseline_shrinks_the_gradient_and_leave_one_out_does_not():
    torch.manual_seed(0)
    logits, r = torch.randn(6), torch.rand(6)
    p = logits.softmax(-1)
    exact = p * (r - (p * r).sum())
    kw = dict(group=4, generator=torch.Generator().manual_seed(1))
    loo = gradient_estimates(logits, r, 20000, "reinforce_loo", **kw).mean(0)
    kw["generator"] = torch.Generator().manual_seed(1)
    mean = gradient_estimates(logits, r, 20000, "reinforce_batch_mean", **kw).mean(0)
    assert (loo - exact).abs().max() < 0.005
    assert torch.allclose(mean, 0.75 * loo, atol=1e-6)  # the same draws: exactly (1 - 1/4) times the unbiased one
    with pytest.raises(ValueError, match="group"):
        gradient_estimates(logits, r, 10, "reinforce_loo", group=1)


def test_literal_value_is_unbounded_below_for_a_constant_critic():
    """§4.2 as written: min over T of E log T(S(x)) + E log(1 − T(S(G(z)))). A T that answers
    ~0 on real captions drives the value to −∞, whatever S does."""
    assert literal_value(torch.full((8,), 0.5), torch.full((8,), 0.5)) == pytest.approx(2 * np.log(0.5))
    assert literal_value(torch.full((8,), 1e-9), torch.full((8,), 0.5)) < -20


@pytest.mark.slow
def test_every_training_stage_runs_and_evaluates(tmp_path):
    rt = setup(seed=0, device="cpu", profile="fast", verbose=False)
    tiny_s = dict(enc_channels=(8, 8, 8, 16, 16), n_embd=32, n_layer=1, n_head=2)
    reg, _ = train_register_classifier(rt, TextModelBudget(n_sentences=64, batch_size=8, steps=2, lr=1e-3),
                                       model=TextClassifier(classifier_config("register", d_model=32, n_layer=1)))
    R, _ = train_reader(rt, CaptionerStageBudget(n_train=64, n_pile=64, batch_size=8, steps=2, lr=1e-3),
                        model=TextClassifier(classifier_config("reader", d_model=32, n_layer=1)))
    S = Captioner(captioner_config(**tiny_s))
    decoder_before = {k: v.clone() for k, v in S.state_dict().items() if not k.startswith("reader.")}
    reader_before = {k: v.clone() for k, v in S.reader.state_dict().items()}
    S, hist = train_perception(rt, CaptionerStageBudget(n_train=64, batch_size=4, steps=2, lr=1e-3), model=S)
    assert len(hist["loss_read"]) == 2
    # perception moves the reader only ...
    assert all(torch.equal(v, S.state_dict()[k]) for k, v in decoder_before.items())
    assert any(not torch.equal(v, S.reader.state_dict()[k]) for k, v in reader_before.items() if v.is_floating_point())
    reader_after = {k: v.clone() for k, v in S.reader.state_dict().items()}
    S, hist = train_mle(rt, CaptionerStageBudget(n_train=64, n_pile=64, batch_size=4, steps=2, lr=1e-3), model=S)
    assert len(hist["loss_formal"]) == 2
    # ... and the decoder stage leaves it as it was, and every weight trainable again
    assert all(torch.equal(v, S.reader.state_dict()[k]) for k, v in reader_after.items())
    assert all(p.requires_grad for p in S.parameters())
    P, hist = train_paired(rt, CaptionerStageBudget(n_train=64, n_pile=64, batch_size=4, steps=2, lr=1e-3),
                           model=Captioner(captioner_config(**tiny_s)))
    assert len(hist["loss_spoken"]) == 2 and torch.isfinite(torch.tensor(hist["loss_spoken"])).all()
    T = TextClassifier(classifier_config("critic", d_model=32, n_layer=1))
    adv = AdversarialBudget(n_train=64, n_pile=64, batch_size=2, steps=2, tau=1.0, lambda_adv=1.0,
                            lambda_ground=1.0, lambda_mle=1.0, n_gz=2, critic_warmup=1, lr_s=1e-4, lr_t=1e-4)
    for estimator in ("gumbel", "reinforce"):
        hist = train_adversarial(rt, S, T, R, adv, generator=lambda n, step: torch.rand(n, 3, 32, 32),
                                 estimator=estimator, lambda_mle=0.0 if estimator == "reinforce" else None)
        assert "loss_adv" in hist and len(hist["loss_T"]) == 2
    test = corpus.test_set(6)
    texts, tokens = caption_images(S, test.images, "spoken", method="sample", max_len=8)
    metrics = evaluate_captions(texts, test, register_clf=reg, critic=T)
    assert set(metrics) >= {"attribute_accuracy", "spoken_rate", "fooling_rate", "bleu4", "distinct2"}
    assert 0 <= metrics["spoken_rate"] <= 1 and tokens.shape[0] == 6


def test_checkpoints_remember_their_tokenizer(tmp_path):
    model = Captioner(captioner_config(enc_channels=(8, 8, 8, 16, 16), n_embd=32, n_layer=1, n_head=2))
    model.save_pretrained(tmp_path / "ok", extra={"tokenizer": tokenizer_digest()})
    assert Captioner.from_pretrained(tmp_path / "ok").config == model.config
    model.save_pretrained(tmp_path / "old", extra={"tokenizer": "0123456789abcdef"})
    with pytest.raises(checkpoints.CheckpointError, match="another tokenizer"):
        Captioner.from_pretrained(tmp_path / "old")


def test_memory_is_content_one_token_per_colour_and_pair():
    model = tiny(9)
    memory = model.encode(images(2))
    assert memory.shape == (2, 6 + 30, 32)  # 6 colour slots + 30 ordered colour pairs, whatever the picture size
    slot_logits, pair_logits = model.read(images(2))
    assert slot_logits.shape == (2, 6, 13) and pair_logits.shape == (2, 15, 6)
    assert model.encode(None, batch_size=2).shape == (2, 1, 32)
    with pytest.raises(ValueError, match="shape"):
        model.encode_content(torch.rand(2, 6, 12), torch.rand(2, 15, 6))


def _logits_of(slots: torch.Tensor, pairs: torch.Tensor, scale: float = 30.0):
    """Confident logits whose argmax is the given reader targets."""
    return F.one_hot(slots, 13).float() * scale, F.one_hot(pairs.clamp(min=0), 6).float() * scale


def test_picture_content_with_the_captions_stated_pairs_equals_the_captions_content():
    """The same content reaches the decoder from a (perfectly read) picture and from its caption."""
    scenes = split_scenes("train", 40)
    slots, pairs = content_targets(scenes)
    from_picture = content_probs(*_logits_of(slots, pairs), stated=pairs > 0)
    from_text = content_of_specs([parse(t) for t in captions("train", 40, "formal")])
    assert torch.allclose(from_picture[0], from_text[0], atol=1e-6)
    assert torch.allclose(from_picture[1], from_text[1], atol=1e-6)
    with pytest.raises(ValueError, match="parsed"):
        content_of_specs([None])


def test_content_states_two_relations_of_three_objects_and_none_of_absent_ones():
    slots = torch.zeros(1, 6, dtype=torch.long)
    slots[0, :3] = torch.tensor([1, 3, 5])  # red, orange and yellow objects
    pairs = torch.zeros(1, 15, dtype=torch.long)
    k = {p: n for n, p in enumerate(PAIRS)}
    pairs[0, k[(0, 1)]], pairs[0, k[(1, 2)]], pairs[0, k[(0, 2)]], pairs[0, k[(3, 4)]] = 1, 1, 1, 3
    s_logits, p_logits = _logits_of(slots, pairs)
    p_logits[0, k[(0, 2)]] = torch.tensor([0.0, 2.0, 0.0, 0.0, 0.0, 1.5])  # the least sure relation
    _, content = content_probs(s_logits, p_logits)
    stated = content.argmax(-1)[0]
    assert stated[k[(0, 1)]] == 1 and stated[k[(1, 2)]] == 1
    assert stated[k[(0, 2)]] == 0  # dropped: a sentence states two of three relations
    assert stated[k[(3, 4)]] == 0  # green and blue are absent: their pair cannot be related
    assert torch.allclose(content.sum(-1), torch.ones(1, 15))
    # two objects: their one relation is kept
    s2 = slots.clone()
    s2[0, 2] = 0
    _, content2 = content_probs(*_logits_of(s2, pairs))
    assert content2.argmax(-1)[0, k[(0, 1)]] == 1 and content2.argmax(-1)[0, k[(1, 2)]] == 0


def test_perception_metrics_score_a_perfect_and_a_wrong_reader():
    """perception_metrics counts a picture right only when every object is exact and the
    relations kept are a true chain; a reader that knows the answers scores 1, one that swaps
    objects between pictures does not."""
    test = corpus.test_set(24)
    slots, pairs = content_targets(test.scenes)

    class Oracle(torch.nn.Module):
        def __init__(self, slots, pairs):
            super().__init__()
            self.slots, self.pairs = slots, pairs

        def forward(self, images):
            n = images.shape[0]
            return (F.one_hot(self.slots[:n], N_SLOT_CLASSES).float() * 20,
                    F.one_hot(self.pairs[:n], N_PAIR_CLASSES).float() * 20)

    S = Captioner(captioner_config(enc_channels=(4, 4, 4, 4, 4), enc_hidden=8, n_embd=32, n_layer=1, n_head=2))
    S.reader = Oracle(slots, pairs)
    assert perception_metrics(S, test) == {"objects_exact": 1.0, "content_true": 1.0}
    S.reader = Oracle(slots.roll(1, 0), pairs.roll(1, 0))
    wrong = perception_metrics(S, test)
    assert wrong["objects_exact"] < 0.5 and wrong["content_true"] <= wrong["objects_exact"]


def test_a_pair_token_carries_its_subjects_object_and_not_the_others():
    """ContentMemory's ordered pair (a, b) holds a's object, b's colour and the relation as seen
    from a: changing what b is leaves (a, b) alone and changes (b, a), so having named a's
    object the decoder finds the tokens a is the subject of."""
    torch.manual_seed(0)
    memory = ContentMemory(CaptionerConfig(n_embd=16, n_head=2)).eval()
    slots = F.one_hot(torch.tensor([[1, 5, 0, 0, 0, 0]]), N_SLOT_CLASSES).float()
    pairs = F.one_hot(torch.tensor([[1] + [0] * (len(PAIRS) - 1)]), N_PAIR_CLASSES).float()  # colour 0 left of 1
    other = slots.clone()
    other[0, 1] = F.one_hot(torch.tensor(9), N_SLOT_CLASSES).float()  # colour 1 is another object
    a, b = memory(slots, pairs), memory(other, pairs)
    ab, ba = 6 + 0, 6 + len(PAIRS) + 0  # (0, 1) and (1, 0): the first pair in both directions
    assert torch.allclose(a[0, ab], b[0, ab]) and not torch.allclose(a[0, ba], b[0, ba])


def test_frozen_restores_what_was_trainable_even_after_an_error():
    net = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.Linear(2, 2))
    net[1].weight.requires_grad_(False)
    with pytest.raises(RuntimeError):
        with _frozen(net):
            assert not any(p.requires_grad for p in net.parameters())
            raise RuntimeError("training stopped")
    assert [p.requires_grad for p in net.parameters()] == [True, True, False, True]
