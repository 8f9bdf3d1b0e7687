"""Advert design (chapter 9): luminance, saliency, a placement that meets both limits, a naive one that need not."""

import numpy as np
import pytest
import torch
from PIL import Image

from spokenstyle import render
from spokenstyle.applications import advert as A


def test_luminance_is_wcag_relative_luminance_per_pixel():
    rng = np.random.default_rng(0)
    colours = rng.integers(0, 256, size=(50, 3))
    image = colours.reshape(5, 10, 3).astype(np.uint8)
    got = A.luminance(image)
    want = np.array([render.relative_luminance(tuple(c)) for c in colours]).reshape(5, 10)
    assert np.allclose(got, want, atol=1e-12)


def product(size=(96, 144), disc=0.25, background=(0.85, 0.85, 0.82), colour=(0.8, 0.1, 0.1)):
    """A red disc (the product) on a pale background, as (3, H, W)."""
    H, W = size
    yy, xx = torch.meshgrid(torch.arange(H), torch.arange(W), indexing="ij")
    inside = ((yy - H / 2) ** 2 + (xx - W / 2) ** 2) <= (disc * min(H, W)) ** 2
    img = torch.tensor(background).view(3, 1, 1).expand(3, H, W).clone()
    img[:, inside] = torch.tensor(colour).view(3, 1)
    return img, inside.numpy()


def test_saliency_finds_the_product_and_nothing_in_a_flat_picture():
    img, inside = product()
    mask = A.salient_mask(img)
    iou = (mask & inside).sum() / (mask | inside).sum()
    assert iou > 0.85
    assert not A.salient_mask(torch.full((3, 40, 40), 0.5)).any()
    s = A.saliency(img)
    assert s.shape == inside.shape and s.max() == pytest.approx(1.0) and s.min() >= 0


def test_the_package_placement_meets_both_limits_and_the_naive_one_does_not():
    img, _ = product()
    slogan = "whoa, this lil' red thing? literally the best, no joke!"
    placed = A.place_slogan(img, slogan)
    naive = A.naive_placement(img, slogan)
    assert placed.worst_contrast >= A.MIN_CONTRAST and placed.coverage <= A.MAX_COVERAGE and placed.how == "package"
    assert naive.coverage > A.MAX_COVERAGE  # centred text lies on the product
    again = A.measure(img, placed)  # measured again, independently of the search
    assert again.worst_contrast == pytest.approx(placed.worst_contrast) and again.coverage == pytest.approx(placed.coverage)
    out = A.compose(img, placed)
    assert isinstance(out, Image.Image) and out.size == (144, 96)
    x0, y0, x1, y1 = placed.box
    inside = np.asarray(out)[y0:y1, x0:x1].astype(int)
    assert (np.abs(inside - np.asarray(A.compose(img, A.SloganPlacement(**{**placed.__dict__, "lines": ()})))[y0:y1, x0:x1]).sum(-1) > 0).any()


def test_a_busy_picture_gets_a_scrim_just_opaque_enough():
    rng = np.random.default_rng(1)
    noise = rng.random((96, 144, 3))  # every box holds dark and light pixels: no text colour passes bare
    placed = A.place_slogan(noise, "hey, check this out!", max_coverage=1.0)
    assert placed.scrim is not None and 0 < placed.scrim_alpha <= 1
    assert placed.worst_contrast >= A.MIN_CONTRAST
    lighter = A.SloganPlacement(**{**placed.__dict__, "scrim_alpha": round(placed.scrim_alpha - 0.05, 2)})
    assert A.measure(noise, lighter).worst_contrast < A.MIN_CONTRAST  # the least opacity that works


def test_naive_placement_is_centred_white_and_measured():
    grey = np.full((80, 120, 3), 0.6)
    naive = A.naive_placement(grey, "okay so, like, wow")
    x0, y0, x1, y1 = naive.box
    assert abs((x0 + x1) / 2 - 60) <= 1 and abs((y0 + y1) / 2 - 40) <= 1
    assert naive.text == (255, 255, 255) and naive.scrim is None
    assert naive.worst_contrast == pytest.approx(render.contrast_ratio((255, 255, 255), (153, 153, 153)), rel=1e-3)


def test_spoken_slogans_are_deterministic_and_about_the_product():
    a = A.spoken_slogan("espresso", 3)
    assert a == A.spoken_slogan("espresso", 3) and "espresso" in a
    assert len({A.spoken_slogan("espresso", s) for s in range(20)}) >= 10
    for bad in ("", "  ", None):
        with pytest.raises(ValueError, match="product"):
            A.spoken_slogan(bad)
    with pytest.raises(ValueError, match="seed"):
        A.spoken_slogan("tea", -1)


@pytest.mark.parametrize("campaign", A.CAMPAIGNS, ids=lambda c: c.photo)
def test_every_campaign_meets_both_limits(campaign):
    ad = A.make_advert(campaign, short_side=128)
    assert ad.placement.worst_contrast >= A.MIN_CONTRAST and ad.placement.coverage <= A.MAX_COVERAGE
    assert ad.picture.shape[0] == 3 and min(ad.picture.shape[1:]) == 128
    assert ad.advert.size == ad.naive_advert.size == (ad.picture.shape[2], ad.picture.shape[1])
    assert ad.salient.shape == tuple(ad.picture.shape[1:])


@pytest.mark.parametrize("call, error, message", [
    (lambda: A.place_slogan(np.zeros((64, 64, 3)), ""), ValueError, "slogan is empty"),
    (lambda: A.place_slogan(np.zeros((64, 64, 3)), 5), TypeError, "slogan must be a str"),
    (lambda: A.place_slogan(np.zeros((64, 64, 3)), "hi", min_contrast=30), ValueError, "min_contrast"),
    (lambda: A.place_slogan(np.zeros((64, 64, 3)), "hi", max_coverage=2), ValueError, "max_coverage"),
    (lambda: A.place_slogan(np.zeros((64, 64, 3)), "hi", widths=()), ValueError, "widths"),
    (lambda: A.place_slogan(np.zeros((16, 64, 3)), "hi"), ValueError, "at least 32 x 32"),
    (lambda: A.Campaign("x", "coffee", "cubist", "tea"), ValueError, "look must be"),
    (lambda: A.make_advert("coffee"), TypeError, "Campaign"),
    (lambda: A.saliency(np.zeros((8, 8, 3)), border=0.9), ValueError, "border"),
])
def test_bad_input_is_named(call, error, message):
    with pytest.raises(error, match=message):
        call()


def test_a_huge_picture_costs_bounded_work():
    big = torch.rand(3, 3000, 4000)
    placed = A.place_slogan(big, "whoa, big picture!", max_coverage=1.0)
    assert placed.box[2] <= A._MAX_SIDE and placed.worst_contrast >= A.MIN_CONTRAST


@pytest.mark.parametrize("bh, bw", [(1, 1), (3, 4), (4, 3), (13, 17), (2, 17), (5, 6)])
def test_box_minimum_equals_brute_force(bh, bw):
    v = np.random.default_rng(0).random((13, 17))
    want = np.array([[v[y:y + bh, x:x + bw].min() for x in range(17 - bw + 1)] for y in range(13 - bh + 1)])
    assert np.array_equal(A._box_min(v, bh, bw), want)


@pytest.mark.parametrize("seed", range(6))
def test_the_measured_contrast_always_meets_the_limit(seed):
    """Whatever the picture, the placement's contrast is measured on the 8-bit picture it becomes."""
    rng = np.random.default_rng(seed)
    H, W = rng.integers(40, 160, size=2)
    picture = np.clip(rng.random((H, W, 3)) * rng.random() + rng.random() * 0.5, 0, 1)
    placed = A.place_slogan(picture, "ooh, look at this, lol", max_coverage=float(rng.random()))
    assert A.measure(picture, placed).worst_contrast >= A.MIN_CONTRAST
