"""spokenstyle.data.images.as_images under extreme input: huge pictures are reduced before any
full float copy, over-large files are refused, and every error names the argument (issue 37)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from spokenstyle.data import images as I
from spokenstyle.data.images import as_images


def _photo_like(h: int, w: int, seed: int = 0) -> np.ndarray:
    """Smooth colour gradients plus fine noise: what a photo's pixels look like to a resize."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w] / max(h, w)
    base = np.stack([np.sin(6 * xx + 1), np.cos(5 * yy), np.sin(3 * (xx + yy))], -1) * 0.4 + 0.5
    return np.clip(base + rng.normal(0, 0.05, base.shape), 0, 1)


def test_a_huge_picture_is_reduced_first_and_barely_changes():
    x = _photo_like(2400, 1800)
    reduced = as_images((x * 255).round().astype(np.uint8))  # short side 1800 > 16 x 64: box-reduced by 3
    direct = I._resize(torch.from_numpy((x * 255).round() / 255).float().permute(2, 0, 1)[None], 64)
    assert I._reduction(2400, 1800, 64) == 3 and I._reduction(1024, 2000, 64) == 1
    assert reduced.shape == (1, 3, 64, 64) and (reduced - direct).abs().max() < 0.01


def test_the_band_by_band_reduction_equals_one_average_pool():
    rgba = torch.randint(0, 256, (2, 4, 1500, 1100), dtype=torch.uint8)
    banded = I._float_rgb(rgba, 64)
    whole = F.avg_pool2d(I._to_float_rgb(rgba)[..., :1500 // 2 * 2, :1100 // 2 * 2], 2)
    assert banded.shape == (2, 3, 750, 550) and torch.allclose(banded, whole, atol=1e-6)
    small = torch.rand(1, 1, 30, 40)  # below the bound: converted as before, not reduced
    assert torch.equal(I._float_rgb(small, 64), small.expand(-1, 3, -1, -1))


def test_a_huge_jpeg_decodes_at_reduced_scale(tmp_path):
    picture = Image.fromarray((_photo_like(3000, 2200) * 255).astype(np.uint8))
    picture.save(tmp_path / "big.jpg", quality=95)
    from_file, from_memory = as_images(tmp_path / "big.jpg"), as_images(picture)
    assert (from_file - from_memory).abs().max() < 0.03  # JPEG loss and a different reduction, no more


def test_an_over_large_file_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # a "bomb" of 2,500 pixels (PIL's limit is 89 M)
    Image.new("RGB", (50, 50)).save(tmp_path / "bomb.png")
    with pytest.raises(ValueError, match=r"images: '.*bomb.png' is too large to decode safely"):
        as_images(tmp_path / "bomb.png")


@pytest.mark.parametrize("images, message", [
    (Image.new("RGB", (0, 0)), r"images: the image is empty"),
    ("scene:9223372036854775808", r"images: 'scene:9223372036854775808': a scene seed is an int from 0 to 2\*\*63 - 1"),
    ("scene:4:oil", r"images: 'scene:4:oil': unknown style 'oil'"),
    ("scene:4:6", r"images: 'scene:4:6': style id must be in \[0, 6\)"),
    (np.zeros((0, 5, 3), np.uint8), r"images: the picture is empty"),
])
def test_errors_name_the_argument(images, message):
    with pytest.raises(ValueError, match=message):
        as_images(images)
    with pytest.raises(ValueError, match="size must be an int from 1 to 1024"):
        as_images(np.zeros((4, 4, 3), np.uint8), 0)
