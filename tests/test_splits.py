"""spokenstyle.data.splits: the seed ranges, the training walk, and that no shipped recipe trains on
a held-out scene."""

from __future__ import annotations

import itertools

import pytest
import torch

from spokenstyle import budgets
from spokenstyle.data import datasets, sample_scenes
from spokenstyle.data.splits import HELD_OUT, SCENE_RANGES, SPLITS, SeedRange, check_clear, seed_range, walk
from spokenstyle.recipes.fusion import colour_positions, layout_batches

TRAIN = SCENE_RANGES["train"]


def old_step_seeds(split: str, step: int, batch_size: int, seed: int, stride: int = 1) -> torch.Tensor:
    """``data.datasets._step_seeds`` before the refactor, written out."""
    lo, hi = SPLITS[split]
    n = (hi - lo) // stride
    return lo + ((seed * 7_919_003 + step * batch_size) % n + torch.arange(batch_size)) % n * stride


def in_a_held_out_block(seed: int) -> bool:
    return any(SCENE_RANGES[name].start <= seed < SCENE_RANGES[name].stop for name in HELD_OUT)


# -- the table -----------------------------------------------------------------------------------

def test_the_table_names_every_range_once():
    assert set(HELD_OUT) == set(SCENE_RANGES) - {"train"}
    assert len(set(HELD_OUT)) == len(HELD_OUT)
    for name, r in SCENE_RANGES.items():
        assert r.name == name and r.what and len(r) == r.stop - r.start > 0
    assert SPLITS == {"train": (0, 1_000_000_000), "test": (1_000_000_000, 1_000_100_000)}
    assert datasets.SPLITS is SPLITS  # the datasets read the one table


@pytest.mark.parametrize("a, b", list(itertools.combinations(HELD_OUT, 2)))
def test_no_two_held_out_blocks_overlap(a, b):
    ra, rb = SCENE_RANGES[a], SCENE_RANGES[b]
    assert not ra.overlaps(rb) and not rb.overlaps(ra), f"{a} {ra.start:,}-{ra.stop:,} meets {b} {rb.start:,}-{rb.stop:,}"
    assert ra.stop <= rb.start or rb.stop <= ra.start


@pytest.mark.parametrize("name", HELD_OUT)
def test_held_out_blocks_are_carved_out_of_train_except_test_which_lies_beyond(name):
    r = SCENE_RANGES[name]
    if name == "test":
        assert r.start >= TRAIN.stop, "the test scenes lie beyond every training walk"
    else:
        assert TRAIN.start <= r.start and r.stop <= TRAIN.stop, f"{name} must lie inside train"


def test_seed_ranges_check_their_arguments():
    r = seed_range("validation")
    assert r.seeds(3).tolist() == [500_000_000, 500_000_001, 500_000_002]
    assert r.seeds(2, offset=5).tolist() == [500_000_005, 500_000_006]
    with pytest.raises(ValueError, match="leaves it"):
        r.seeds(2, offset=len(r) - 1)
    for bad in (0, -1, True, 2.0):
        with pytest.raises(ValueError, match="n must be"):
            r.seeds(bad)
    with pytest.raises(ValueError, match="unknown split 'val'"):
        seed_range("val")
    with pytest.raises(ValueError, match="start < stop"):
        SeedRange("empty", 5, 5, "nothing")


# -- the walk ------------------------------------------------------------------------------------

@pytest.mark.parametrize("split, step, batch_size, seed, stride", [
    ("train", 0, 16, 0, 1),
    ("train", 3, 16, 1, 2),
    ("train", 12_345, 7, 3, 1),
    ("train", 999, 64, 63, 2),  # run seed 63: the start wraps around the split
    ("train", 10**9, 5, 2**40, 2),  # far beyond one pass: the modulo, not a range, decides
    ("test", 0, 8, 0, 1),
    ("test", 12_499, 8, 5, 1),  # the last batch of the test split wraps to its start
    ("test", 77, 3, 11, 2),
])
def test_walk_gives_the_seeds_of_the_old_formula(split, step, batch_size, seed, stride):
    got = walk(split, step, batch_size, seed, stride)
    assert got.dtype == torch.int64 and got.shape == (batch_size,)
    assert torch.equal(got, old_step_seeds(split, step, batch_size, seed, stride))
    lo, hi = SPLITS[split]
    assert bool(((got >= lo) & (got < hi)).all()) and bool((got % stride == lo % stride).all())


def test_one_long_walk_is_every_batch_of_a_run():
    # what the recipes' checks (and the test below) rely on: steps x B items are the run's batches in order
    for stride in (1, 2):
        batches = torch.cat([walk("train", k, 16, 3, stride) for k in range(9)])
        assert torch.equal(batches, walk("train", 0, 9 * 16, 3, stride))


@pytest.mark.parametrize("step", [-1, True, 1.0])
def test_walk_refuses_a_bad_step(step):
    with pytest.raises(ValueError, match="step must be a non-negative int"):
        walk("train", step, 4, 0)


# -- check_clear ---------------------------------------------------------------------------------

@pytest.mark.parametrize("name", HELD_OUT)
def test_check_clear_names_the_block_a_seed_lies_in(name):
    r = SCENE_RANGES[name]
    for seed in (r.start, r.start + len(r) // 2, r.stop - 1):
        with pytest.raises(ValueError, match=f"fusion run seed 7.*seed {seed:,} lies in the block '{name}'"):
            check_clear(torch.tensor([0, 5, seed, 6]), "fusion run seed 7")
    check_clear([r.start], "an evaluation", allow=(name,))  # a block that is allowed lets its seeds through


def test_check_clear_passes_seeds_outside_every_block():
    outside = [0, 1, 999_999, 4_000_000, 9_999_999, 11_000_000, 19_999_999, 21_000_000, 499_999_999,
               501_000_000, 999_999_999]
    assert not any(in_a_held_out_block(s) for s in outside)
    check_clear(torch.tensor(outside), "a walk")
    check_clear(outside, "a list of seeds")
    check_clear(torch.arange(0, 1_000_000), "the first million")  # up to the first block
    check_clear(torch.zeros(0, dtype=torch.int64), "nothing")
    for name in HELD_OUT:  # the seed just before a block and just after it (where no other block begins)
        r = SCENE_RANGES[name]
        for seed in (r.start - 1, r.stop):
            if 0 <= seed and not in_a_held_out_block(seed):
                check_clear([seed], f"next to {name}")


# -- the shipped recipes' training walks are clear of every held-out block -------------------------
# Each model below is what the recipe in spokenstyle/recipes/ draws to train (evaluation draws from
# the held-out blocks on purpose and is not checked). Run seed 0 is `spokenstyle train`'s default;
# the shipped fusion F is one of four runs, seeds 0-3, each with a second phase at seed + 1.

RUN_SEED = 0
FUSION_RUN_SEEDS = range(4)


def walk_of_run(steps: int, batch_size: int, seed: int, stride: int = 1) -> torch.Tensor:
    """Every scene seed a run of ``steps`` batches draws from ``walk("train", step, ...)``, in one call."""
    return walk("train", 0, max(1, steps * batch_size), seed, stride)


def captioner_rows() -> list[str]:
    return sorted(name for name in budgets.BUDGETS if name.startswith("captioner_"))


def drawn(name: str, profile: str) -> list[tuple[str, torch.Tensor, tuple[str, ...]]]:
    """(what, training seeds, blocks a recipe may draw from by design) of the row ``name``."""
    b = budgets.BUDGETS[name][profile]
    if name in ("judge", "scenes_attr_classifier"):
        # recipes.judge.train_judge: scene_batches(B, "all", 64, split="train", seed=run seed)
        return [(f"{name} scenes", walk_of_run(b.steps, b.batch_size, RUN_SEED), ())]
    if name in ("features", "dcgan_all_styles"):
        # recipes.features / recipes.dcgan: real_renders(b.pool, split="train"): seeds 0 ... pool - 1
        return [(f"{name} pool", seed_range("train").seeds(b.pool), ())]
    if name in ("cyclegan_flat_comic", "cyclegan_flat_pixel"):
        # recipes.cyclegan.train_pair: unpaired_batches: walk(..., stride=2) in A, the odd seed after it in B
        a = walk_of_run(b.steps, b.batch_size, RUN_SEED, stride=2)
        return [(f"{name} domain A", a, ()), (f"{name} domain B", a + 1, ())]
    if name == "fusion":
        # recipes.fusion.train: fusion_batches(B, seed=s) content seeds walk(..., stride=2), style
        # references the odd seed after each; the refine phase draws with seed s + 1
        out = []
        for s in FUSION_RUN_SEEDS:
            for phase_seed, steps in ((s, b.steps), (s + 1, b.refine_steps)):
                if steps:
                    content = walk_of_run(steps, b.batch_size, phase_seed, stride=2)
                    out += [(f"fusion run {s}, walk seed {phase_seed}", torch.cat([content, content + 1]), ())]
        return out
    if name == "fusion_layout":
        # recipes.fusion.train_layout: layout_batches(B, seed=run seed): walk(..., stride=2), no pictures
        return [("fusion_layout sentences", walk_of_run(b.steps, b.batch_size, RUN_SEED, stride=2), ())]
    if name.startswith("captioner_"):
        # recipes.captioning: the first n_train scenes of train (corpus.split_scenes), and the first
        # n_pile sentences of the spoken pile (a held-out block of its own: no picture of it is trained on)
        out = []
        if hasattr(b, "n_train"):
            out.append((f"{name} training scenes", seed_range("train").seeds(b.n_train), ()))
        if getattr(b, "n_pile", 0):
            out.append((f"{name} pile sentences", seed_range("pile").seeds(b.n_pile), ("pile",)))
        return out
    raise AssertionError(f"no model of what {name} draws")


ROWS = ["judge", "scenes_attr_classifier", "features", "dcgan_all_styles", *captioner_rows(),
        "cyclegan_flat_comic", "cyclegan_flat_pixel", "fusion", "fusion_layout"]


def test_every_captioner_row_is_modelled():
    for name in captioner_rows():
        b = budgets.BUDGETS[name].full
        if name == "captioner_eval":  # measurement only: the test scenes, which it must stay inside
            assert not hasattr(b, "n_train") and not hasattr(b, "n_pile")
            assert b.n_test <= len(seed_range("test"))
        else:
            assert hasattr(b, "n_train"), f"{name} trains on something this test does not model"


@pytest.mark.parametrize("profile", ["full", "fast"])
@pytest.mark.parametrize("name", ROWS)
def test_the_shipped_recipes_train_clear_of_every_held_out_block(name, profile):
    for what, seeds, allowed in drawn(name, profile):
        assert seeds.numel() > 0 and bool((seeds >= TRAIN.start).all()) and bool((seeds < TRAIN.stop).all()), what
        check_clear(seeds, f"{what} ({profile})", allow=allowed)
        for block in allowed:  # a block a recipe reads by design: it stays inside it
            r = SCENE_RANGES[block]
            assert bool(((seeds >= r.start) & (seeds < r.stop)).all()), f"{what} leaves {block}"


def test_the_layout_recipe_draws_what_the_model_above_says():
    drawn_positions = torch.cat([layout_batches(3, seed=RUN_SEED)(k)["positions"] for k in range(2)])
    expected = colour_positions(sample_scenes(walk_of_run(2, 3, RUN_SEED, stride=2)))
    assert torch.equal(drawn_positions, expected)


def test_the_judge_recipe_draws_what_the_model_above_says():
    batches = datasets.scene_batches(2, "all", 32, split="train", seed=RUN_SEED)  # what recipes.judge calls, smaller
    expected = walk_of_run(3, 2, RUN_SEED)
    assert torch.equal(torch.cat([batches(k)["seed"] for k in range(3)]), expected)
