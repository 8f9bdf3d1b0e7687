"""Painter-style transfer (chapter 9): edge SSIM, the methods, the comparison, real paintings in CycleGAN's layout."""

import math

import numpy as np
import pytest
import torch
from PIL import Image

from spokenstyle import stylization
from spokenstyle.applications import painters as P
from spokenstyle.data.photos import ALL_FILTERS, PhotoPatches, painterly
from spokenstyle.metrics import ssim
from spokenstyle.models.cyclegan import CycleGANConfig, cyclegan
from spokenstyle.models.painter_judge import PainterJudge, PainterJudgeConfig


@pytest.fixture(scope="module")
def photos():
    return PhotoPatches("test", 32, length=3).batch(range(3))["image"]


def test_edge_map_of_a_step_and_of_a_flat_picture():
    step = torch.zeros(1, 3, 16, 16)
    step[..., 8:] = 1.0
    edges = P.edge_map(step)
    assert edges.shape == step.shape and edges[0, 0, 5, 7] == pytest.approx(1 / math.sqrt(2))
    assert edges[0, 0, :, :6].abs().max() == 0 and edges[0, 0, :, 10:].abs().max() == 0
    assert P.edge_map(torch.full((2, 3, 16, 16), 0.3)).abs().max() == 0


def test_edge_ssim_is_one_for_the_same_edges_and_ignores_colour(photos):
    assert torch.allclose(P.edge_ssim(photos, photos), torch.ones(3))
    recoloured = photos.flip(1)  # channels swapped: the same edges of a different luminance
    assert (P.edge_ssim(photos, recoloured) > P.edge_ssim(photos, photos.roll(5, -1))).all()
    assert torch.allclose(P.edge_ssim(photos, photos), ssim(P.edge_map(photos), P.edge_map(photos)))


def test_translator_names_and_missing_translators():
    assert P.translator_name("oil") == "cyclegan_photo"
    assert P.translator_name("woodblock") == "cyclegan_photo_woodblock"
    with pytest.raises(ValueError, match="unknown manner"):
        P.translator_name("cubist")
    assert P.load_translator("oil") is not None  # chapter 5's shipped photo translator


def test_style_pictures_are_other_painted_crops():
    style = P.style_pictures("pencil", 3, 32)
    assert style.shape == (3, 3, 32, 32)
    crops = PhotoPatches("train", 32, length=2**40).batch(list(range(P._STYLE_OFFSET, P._STYLE_OFFSET + 3)))["image"]
    assert torch.allclose(style, painterly(crops, "pencil"))


@pytest.mark.parametrize("method", P.METHODS)
def test_every_method_paints_a_batch(photos, method):
    translator = cyclegan(config=CycleGANConfig(g_width=4, n_blocks=1, d_width=4))
    out = P.paint(method, photos, "woodblock", translator=translator,
                  features=stylization.RandomFeatures(width=6, depth=2), steps=2, lr=0.1)
    assert out.shape == photos.shape and 0 <= out.min() and out.max() <= 1
    assert P.paint("CycleGAN", photos, "woodblock") is None
    with pytest.raises(ValueError, match="unknown method"):
        P.paint("pix2pix", photos, "oil")


def test_the_comparison_has_a_row_per_manner_and_method(photos):
    torch.manual_seed(0)
    judge = PainterJudge(PainterJudgeConfig(width=4, hidden=8)).eval()
    seen = []
    rows = P.compare_methods(judge, photos, ("oil", "pointillist"), translators={}, steps=1,
                             features=stylization.RandomFeatures(width=6, depth=2),
                             on_result=lambda row, images: seen.append((row.method, images is None)))
    assert [(r.manner, r.method) for r in rows] == [(m, k) for m in ("oil", "pointillist") for k in P.METHODS]
    missing = [r for r in rows if r.method == "CycleGAN"]
    assert all(r.seconds_per_image is None and math.isnan(r.style_accuracy) for r in missing)
    for r in rows:
        if r.method != "CycleGAN":
            assert 0 <= r.style_accuracy <= 1 and 0 <= r.style_probability <= 1 and r.seconds_per_image >= 0
    assert next(r for r in rows if r.method == "photo").edge_ssim == pytest.approx(1.0)
    assert ("CycleGAN", True) in seen and len(seen) == len(rows)


@pytest.fixture
def monet2photo(tmp_path):
    """A tiny dataset in CycleGAN's layout (trainA/trainB/testA/testB of JPEGs), as monet2photo ships."""
    root = tmp_path / "monet2photo"
    rng = np.random.default_rng(0)
    for split in ("train", "test"):
        for domain, n in (("A", 3), ("B", 2)):
            folder = root / f"{split}{domain}"
            folder.mkdir(parents=True)
            for i in range(n):
                arr = rng.integers(0, 256, size=(40 + 10 * i, 56, 3), dtype=np.uint8)
                image = Image.fromarray(arr)
                (image.convert("L") if i == 1 else image).save(folder / f"{i:05d}.jpg", quality=90)
    return root


def test_real_paintings_load_from_cyclegans_layout(monet2photo):
    paintings = P.load_paintings(monet2photo, split="train", domain="A", n=3, size=32)
    assert paintings.shape == (3, 3, 32, 32) and paintings.dtype == torch.float32
    assert 0 <= paintings.min() and paintings.max() <= 1
    assert torch.allclose(paintings[1, 0], paintings[1, 1])  # the greyscale JPEG became grey RGB
    photos = P.load_paintings(monet2photo, split="test", domain="B", n=2, size=16)
    assert photos.shape == (2, 3, 16, 16)
    out = stylization.adain_transfer(photos, paintings[:1, :, :16, :16], steps=1,
                                     features=stylization.RandomFeatures(width=6, depth=2))
    assert out.shape == photos.shape  # the guarded cell's use: real paintings as style pictures
    with pytest.raises(ValueError, match="holds 3 pictures; asked for 5"):
        P.load_paintings(monet2photo, n=5)
    with pytest.raises(ValueError, match="n must be a positive int"):
        P.load_paintings(monet2photo, n=0)
    with pytest.raises(FileNotFoundError):
        P.load_paintings(monet2photo.parent / "nowhere")


def test_every_manner_has_a_filter():
    assert set(ALL_FILTERS) >= {"oil", "watercolour", "pencil", "pointillist", "strokes", "woodblock"}
