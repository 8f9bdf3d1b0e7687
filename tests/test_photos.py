"""Bundled photos, patches and painterly filters: offline, deterministic, credited."""

import numpy as np
import pytest
import torch
from PIL import Image

from spokenstyle.data import photos as P
from spokenstyle.data.splits import PHOTO_SPLITS


@pytest.mark.parametrize("name", P.PHOTO_NAMES)
def test_every_photo_is_bundled_and_credited(name):
    path = P.photo_path(name)  # a file inside an installed package: nothing is downloaded
    assert path.is_file() and "site-packages" in str(path)
    credit = P.PHOTO_CREDITS[name]
    assert credit.author and credit.licence and credit.url.startswith("https://")
    x = P.load_photo(name)
    assert x.shape[0] == 3 and min(x.shape[1:]) == P.SHORT_SIDE and 0 <= x.min() and x.max() <= 1


def test_patches_are_deterministic_and_splits_disjoint():
    ds = P.PhotoPatches("train", 64, length=50)
    a, b = ds[7], ds[7]
    assert a["image"].shape == (3, 64, 64) and torch.equal(a["image"], b["image"])
    for name in P.PHOTO_NAMES:
        t, l, h, w = P._region(name, "train")
        t2, l2, h2, w2 = P._region(name, "test")
        assert min(h2, w2) >= 64
        rows_overlap = t < t2 + h2 and t2 < t + h
        cols_overlap = l < l2 + w2 and l2 < l + w
        assert not (rows_overlap and cols_overlap)
    params = P._patch_params(torch.arange(PHOTO_SPLITS["test"][0], PHOTO_SPLITS["test"][0] + 200), "test", 64)
    for name, top, left, _ in params:
        t, l, h, w = P._region(name, "test")
        assert t <= top <= t + h - 64 and l <= left <= l + w - 64


@pytest.mark.parametrize("name", sorted(P.PAINTERLY_FILTERS))
def test_painterly_filters(name):
    x = P.PhotoPatches("test", 64, length=8).batch(range(8))["image"]
    y = P.painterly(x, name)
    assert y.shape == x.shape and 0 <= y.min() and y.max() <= 1
    assert torch.equal(y, P.painterly(x, name))
    assert (y - x).abs().mean() > 0.02  # visibly changed


def test_kuwahara_keeps_flat_images_and_step_edges():
    flat = torch.full((1, 3, 16, 16), 0.3)
    assert torch.allclose(P.kuwahara(flat), flat)
    step = torch.zeros(1, 3, 16, 16)
    step[..., 8:] = 1.0
    assert torch.allclose(P.kuwahara(step), step)  # edges stay sharp


def test_patch_seeds_come_from_the_photo_splits():
    (a0, a1), (b0, b1) = PHOTO_SPLITS["train"], PHOTO_SPLITS["test"]
    assert a0 < a1 <= b0 < b1
    assert P.PhotoPatches("train", 32, length=5).seeds([0, 4]).tolist() == [a0, a0 + 4]
    assert P.PhotoPatches("test", 32, length=5).seeds([0, -1]).tolist() == [b0, b0 + 4]
    with pytest.raises(ValueError, match="unknown split 'val'.*'train', 'test'"):
        P.PhotoPatches("val")


def test_painterly_dataset_and_unpaired_batches():
    ds = P.PhotoPatches("train", 32, length=9, painterly="mixed")
    batch = ds.batch(range(9))
    assert set(batch["filter"]) <= set(P.PAINTERLY_FILTERS)
    b = P.photo_batches(4, size=32, filter="oil")(0)
    assert b["image_a"].shape == b["image_b"].shape == (4, 3, 32, 32)
    pair = P.UnpairedPhotos("test", 32, length=3)[1]
    assert pair["image_a"].shape == (3, 32, 32)


@pytest.mark.parametrize("mode", ["L", "LA", "P", "RGBA", "CMYK", "I;16", "I", "F", "1"])
def test_to_rgb_accepts_any_mode(mode):
    rgb = Image.new("RGB", (5, 4), (200, 40, 10))
    im = rgb.convert(mode) if mode not in ("I;16", "I", "F") else Image.fromarray(
        (np.arange(20).reshape(4, 5) * (1000 if mode != "F" else 0.01)).astype(
            {"I;16": np.uint16, "I": np.int32, "F": np.float32}[mode]))
    out = P.to_rgb(im)
    assert out.shape == (4, 5, 3) and out.dtype == np.uint8


@pytest.mark.parametrize("call, error", [
    (lambda: P.photo_path("lena"), ValueError),
    (lambda: P.PhotoPatches("val"), ValueError),
    (lambda: P.PhotoPatches(size=8), ValueError),
    (lambda: P.PhotoPatches(painterly="cubist"), ValueError),
    (lambda: P.painterly(torch.rand(2, 3, 8, 8), ["oil"]), ValueError),
    (lambda: P.painterly(torch.rand(3, 8, 8)), ValueError),
    (lambda: P.painterly(torch.zeros(1, 3, 8, 8, dtype=torch.uint8)), TypeError),
    (lambda: P.to_rgb("photo.png"), TypeError),
])
def test_errors(call, error):
    with pytest.raises(error):
        call()


# issue 37, defect 4: these raised torch RuntimeErrors about padding and kernel sizes
@pytest.mark.parametrize("call, message", [
    (lambda: P.painterly(torch.rand(1, 3, 1, 1), "oil"), r"at least 7 x 7 pixels.*\(1, 1\)"),
    (lambda: P.painterly(torch.rand(1, 3, 6, 6), "watercolour"), r"at least 7 x 7 pixels.*\(6, 6\)"),
    (lambda: P.painterly(torch.rand(2, 3, 40, 3), "pencil"), r"at least 7 x 7"),
    (lambda: P.kuwahara(torch.rand(1, 3, 16, 16), 0), r"radius must be a positive int, got 0"),
    (lambda: P.kuwahara(torch.rand(1, 3, 16, 16), -2), r"radius must be a positive int, got -2"),
    (lambda: P.kuwahara(torch.rand(1, 3, 16, 16), 2.5), r"radius must be a positive int, got 2.5"),
    (lambda: P.kuwahara(torch.rand(1, 3, 16, 16), 16), r"radius 16 needs pictures larger than 16 x 16"),
    (lambda: P.load_photo("astronaut", 0), r"short_side must be an int from 8 to 2048.*got 0"),
    (lambda: P.load_photo("astronaut", -5), r"short_side .* got -5"),
    (lambda: P.load_photo("astronaut", 10_000), r"short_side .* got 10000"),
    (lambda: P.PhotoPatches("test", size=81), r"from 16 to 80 px for split 'test'"),
    (lambda: P.PhotoPatches(length=2**64), r"length must be an int from 1 to 2\*\*40"),
    (lambda: P.PhotoPatches(length=5)[2**63], r"index 9223372036854775808 out of range"),
])
def test_bad_sizes_are_named_not_torch_errors(call, message):
    with pytest.raises((ValueError, IndexError), match=message):
        call()


def test_the_smallest_pictures_the_filters_take_work():
    x = torch.rand(2, 3, 7, 7)
    for name in P.PAINTERLY_FILTERS:
        assert P.painterly(x, name).shape == x.shape
    assert P.kuwahara(torch.rand(1, 3, 2, 2), 1).shape == (1, 3, 2, 2)
    assert P.load_photo("chelsea", 8).shape[1:].numel() > 0 and min(P.load_photo("chelsea", 8).shape[1:]) == 8
