"""Datasets and batch makers: determinism, agreement with the renderer, splits, clear errors."""

import pytest
import torch
from torch.utils.data import DataLoader

from spokenstyle.data import datasets as D
from spokenstyle.data.captions import caption
from spokenstyle.data.scenes import sample_scenes
from spokenstyle.data.splits import SPLITS, walk
from spokenstyle.data.styles import STYLES, render


def test_item_fields_and_types():
    ds = D.ShapeScenes("train", "all", size=32, length=50)
    item = ds[3]
    assert item["image"].shape == (3, 32, 32) and item["image"].dtype == torch.float32
    assert 0 <= item["image"].min() and item["image"].max() <= 1
    assert isinstance(item["style"], int) and 0 <= item["style"] < len(STYLES)
    assert item["seed"] == 3
    for key, shape in [("shape", (3,)), ("colour", (3,)), ("size", (3,)), ("relation", (2,)), ("slots", (6,))]:
        assert item[key].shape == shape and item[key].dtype == torch.int64
    spec = ds.spec(3)
    assert item["n_objects"] == len(spec.objects)
    assert item["formal"] == caption(spec, "formal", 3) and item["spoken"] == caption(spec, "spoken", 3)


def test_items_are_deterministic_and_match_the_renderer():
    ds = D.ShapeScenes("test", "neon", size=48, length=20)
    a, b = ds[5], ds[5]
    assert torch.equal(a["image"], b["image"]) and a["spoken"] == b["spoken"]
    seed = SPLITS["test"][0] + 5
    assert a["seed"] == seed
    assert torch.equal(a["image"], render(sample_scenes([seed]), "neon", 48)[0])


def test_dataloader_batches_with_getitems():
    ds = D.ShapeScenes("train", ["flat", "comic"], size=32, length=40, captions=True)
    batch = next(iter(DataLoader(ds, batch_size=8, shuffle=False)))
    assert batch["image"].shape == (8, 3, 32, 32)
    assert set(batch["style"].tolist()) <= {0, 5}
    assert len(batch["spoken"]) == 8 and isinstance(batch["spoken"][0], str)
    assert torch.equal(batch["image"][2], ds[2]["image"])


def test_splits_are_disjoint_and_fixed():
    (a0, a1), (b0, b1) = SPLITS["train"], SPLITS["test"]
    assert a1 <= b0
    train = D.ShapeScenes("train", length=100)
    test = D.ShapeScenes("test", length=100)
    assert train[0]["seed"] == a0 and test[0]["seed"] == b0 and test[99]["seed"] == b0 + 99


def test_paired_view_is_one_scene_in_two_styles():
    ds = D.PairedStyles("flat", "watercolour", split="test", size=32, length=10)
    item = ds[4]
    scenes = sample_scenes([item["seed"]])
    assert torch.equal(item["image_a"], render(scenes, "flat", 32)[0])
    assert torch.equal(item["image_b"], render(scenes, "watercolour", 32)[0])


def test_unpaired_view_uses_different_scenes():
    ds = D.UnpairedStyles("sketch", "pixel", size=32, length=10)
    item = ds[3]
    assert item["seed_a"] != item["seed_b"]
    assert torch.equal(item["image_b"], render(sample_scenes([item["seed_b"]]), "pixel", 32)[0])


@pytest.mark.parametrize("maker, args, keys", [
    (D.scene_batches, (6, "all", 32), {"image", "style", "slots"}),
    (D.paired_batches, (6, "flat", "neon", 32), {"image_a", "image_b", "slots"}),
    (D.unpaired_batches, (6, "flat", "neon", 32), {"image_a", "image_b", "slots_a", "slots_b"}),
])
def test_batch_makers_are_functions_of_the_step(maker, args, keys):
    batches = maker(*args)
    b0, again, b1 = batches(0), batches(0), batches(1)
    assert keys <= set(b0)
    for k in keys:
        assert torch.equal(b0[k], again[k])
    assert not torch.equal(b0[sorted(keys)[0]], b1[sorted(keys)[0]])
    other_seed = maker(*args, seed=1)(0)
    assert not torch.equal(b0[sorted(keys)[0]], other_seed[sorted(keys)[0]])


def test_batch_makers_walk_the_split_with_the_shared_walk():
    b = D.scene_batches(5, "flat", 32, seed=3)(7)
    assert torch.equal(b["seed"], walk("train", 7, 5, 3))
    u = D.unpaired_batches(4, "flat", "neon", 32, seed=2)(5)
    seeds = walk("train", 5, 4, 2, stride=2)
    assert torch.equal(u["image_a"], render(sample_scenes(seeds), "flat", 32))
    assert torch.equal(u["image_b"], render(sample_scenes(seeds + 1), "neon", 32))


def test_scene_attributes_are_the_batch_tensors():
    scenes = sample_scenes(range(20))
    got = D.scene_attributes(scenes)
    assert set(got) == {"shape", "colour", "size", "relation", "n_objects", "slots"}
    assert torch.equal(got["slots"], scenes.colour_slots()) and torch.equal(got["n_objects"], scenes.n_objects)
    assert torch.equal(got["shape"], scenes.shape) and torch.equal(got["relation"], scenes.relation)


def test_scene_batches_match_dataset_items():
    b = D.scene_batches(4, "comic", 32, split="test", captions=True)(0)
    ds = D.ShapeScenes("test", "comic", 32, length=100)
    first = int(b["seed"][0]) - SPLITS["test"][0]
    assert torch.equal(b["image"][0], ds[first]["image"]) and b["spoken"][0] == ds[first]["spoken"]


@pytest.mark.parametrize("kwargs, error, match", [
    ({"split": "val"}, ValueError, "unknown split"),
    ({"style": "oil"}, ValueError, "unknown style"),
    ({"style": []}, ValueError, "empty"),
    ({"size": 16}, ValueError, "between 32 and 128"),
    ({"length": 0}, ValueError, "positive"),
    ({"split": "test", "length": 200_000}, ValueError, "has 100,000 scene seeds"),
])
def test_dataset_errors(kwargs, error, match):
    with pytest.raises(error, match=match):
        D.ShapeScenes(**kwargs)


def test_index_and_step_errors():
    ds = D.ShapeScenes(length=5, captions=False)
    with pytest.raises(IndexError):
        ds[5]
    with pytest.raises(TypeError):
        ds["0"]
    assert torch.equal(ds[-1]["image"], ds[4]["image"])
    with pytest.raises(ValueError, match="batch_size"):
        D.scene_batches(0)
    with pytest.raises(ValueError, match="step"):
        D.scene_batches(2)(-1)
