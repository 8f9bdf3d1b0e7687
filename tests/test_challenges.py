"""Chapter 10's tools for style that misses its target: the judge's confusion matrix
(spokenstyle.evaluation.read_styles), F's inputs (fusion_scenes), style codes pushed away from
the other styles (spokenstyle.models.fusion.exaggerate_style) and colour statistics matched after
drawing (spokenstyle.stylization.match_statistics)."""

from __future__ import annotations

import pytest
import torch
from sklearn.metrics import confusion_matrix
from torch import nn

from spokenstyle import evaluation, stylization
from spokenstyle.data import STYLES
from spokenstyle.models import fusion as fu


class _FixedJudge(nn.Module):
    """A judge whose readings are fixed in advance: the style in pixel (0, 0, 0) of the red channel
    (times 10), every object read as slot value 1."""

    def __init__(self) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.zeros(1))

    def forward(self, images):
        style = (images[:, 0, 0, 0] * 10).round().long()
        slots = torch.zeros(images.shape[0], 6, 13)
        slots[..., 1] = 1.0
        return nn.functional.one_hot(style, len(STYLES)).float(), slots


def test_read_styles_matches_sklearn_confusion_matrix_and_counts_content():
    g = torch.Generator().manual_seed(0)
    target = torch.randint(0, len(STYLES), (50,), generator=g)
    read = torch.randint(0, len(STYLES), (50,), generator=g)
    images = torch.zeros(50, 3, 8, 8)
    images[:, 0, 0, 0] = read / 10
    slots = torch.zeros(50, 6, dtype=torch.long)
    slots[:, 0] = 1  # one object read right per picture
    slots[:25, 1] = 3  # and one read wrong in half of them
    out = evaluation.read_styles(_FixedJudge(), images, target, slots, batch_size=7)
    expected = confusion_matrix(target.numpy(), read.numpy(), labels=list(range(len(STYLES))))
    assert torch.equal(out.confusion, torch.as_tensor(expected))
    assert out.style_accuracy == pytest.approx(float((read == target).float().mean()))
    assert out.content_accuracy == pytest.approx(50 / 75) and out.n == 50
    rates = out.rates()
    assert torch.allclose(rates.sum(1)[out.confusion.sum(1) > 0], torch.ones(1))
    row = out.confused_with(STYLES[int(target[0])])
    assert list(row.values()) == sorted(row.values(), reverse=True) and sum(row.values()) == pytest.approx(1)


def test_read_styles_rejects_bad_input():
    judge, images = _FixedJudge(), torch.zeros(4, 3, 8, 8)
    slots = torch.ones(4, 6, dtype=torch.long)
    with pytest.raises(ValueError, match="target must be an integer tensor"):
        evaluation.read_styles(judge, images, torch.zeros(3, dtype=torch.long), slots)
    with pytest.raises(ValueError, match="slots must be"):
        evaluation.read_styles(judge, images, torch.zeros(4, dtype=torch.long), slots.float())
    with pytest.raises(ValueError, match="target style ids"):
        evaluation.read_styles(judge, images, torch.full((4,), 6), slots)


def test_fusion_scenes_are_evaluate_fusions_scenes_with_k_references():
    one = evaluation.fusion_scenes(12, seed=1)
    three = evaluation.fusion_scenes(12, seed=1, references=3)
    assert len(one["texts"]) == 12 and one["slots"].shape == (12, 6) and one["references"].shape == (12, 3, 64, 64)
    assert torch.equal(one["styles"], torch.arange(12) % len(STYLES))
    assert three["references"].shape == (12, 3, 3, 64, 64) and three["texts"] == one["texts"]
    assert torch.equal(three["references"][:, 0], one["references"])
    assert not torch.equal(three["references"][:, 1], three["references"][:, 0])
    with pytest.raises(ValueError, match="references must be an int >= 1"):
        evaluation.fusion_scenes(4, references=0)
    with pytest.raises(ValueError, match="split"):
        evaluation.fusion_scenes(4, split="train")


def test_exaggerate_style_moves_away_from_the_centre():
    codes, centre = torch.randn(5, 8), torch.randn(8)
    assert torch.equal(fu.exaggerate_style(codes, centre, 0.0), codes)
    out = fu.exaggerate_style(codes, centre, 1.0)
    assert torch.allclose(out - centre, 2 * (codes - centre))
    normed = fu.exaggerate_style(codes, centre, 0.5, normalize=True)
    assert torch.allclose(normed.square().mean(1), torch.ones(5), atol=1e-5)
    with pytest.raises(ValueError, match="centre must be"):
        fu.exaggerate_style(codes, torch.randn(5, 8), 1.0)
    with pytest.raises(ValueError, match="strength must be"):
        fu.exaggerate_style(codes, centre, -1.0)


def test_fuse_takes_style_codes_instead_of_pictures():
    torch.manual_seed(0)
    F = fu.FusionGAN(fu.FusionConfig(g_width=8, d_width=8)).F
    sentences = ["a big red ball", "whoa, two small blue boxes!"]
    refs = torch.rand(2, 3, 64, 64)
    codes = fu.style_codes(F, refs)
    assert torch.allclose(fu.fuse(F, sentences, refs, seed=2), fu.fuse(F, sentences, style=codes, seed=2), atol=1e-6)
    with pytest.raises(ValueError, match="exactly one of style_images"):
        fu.fuse(F, sentences, refs, style=codes)
    with pytest.raises(ValueError, match="style must be"):
        fu.fuse(F, sentences, style=codes[:, :3])
    with pytest.raises(ValueError, match="rows of style images for 2 sentences"):
        fu.fuse(F, sentences, torch.rand(3, 2, 3, 64, 64))


def test_match_statistics_is_pixel_adain():
    g = torch.Generator().manual_seed(0)
    images = torch.rand(4, 3, 16, 16, generator=g) * 0.5 + 0.2
    style = torch.rand(6, 3, 16, 16, generator=g) * 0.4 + 0.3
    mean, std = stylization.style_statistics(style)
    assert mean.shape == (3,) and std.shape == (3,)
    m, s = stylization.mean_std(style)
    assert torch.allclose(mean, m.mean(0).flatten()) and torch.allclose(std, s.mean(0).flatten())
    out = stylization.match_statistics(images, mean, std)
    # the same as the package's AdaIN with a picture that has exactly those statistics
    ref = (torch.randn(4, 3, 16, 16, generator=g))
    rm, rs = stylization.mean_std(ref)
    ref = (ref - rm) / rs * std.view(1, 3, 1, 1) + mean.view(1, 3, 1, 1)
    assert torch.allclose(out, stylization.adain(images, ref).clamp(0, 1), atol=1e-4)
    assert torch.equal(stylization.match_statistics(images, mean, std, strength=0.0), images)
    half = stylization.match_statistics(images, mean, std, strength=0.5)
    assert torch.allclose(half, (images + out) / 2, atol=1e-5)
    per_image = stylization.match_statistics(images, mean.expand(4, 3), std.expand(4, 3))
    assert torch.allclose(per_image, out)
    with pytest.raises(ValueError, match="mean must be"):
        stylization.match_statistics(images, mean[:2], std)
    with pytest.raises(ValueError, match="strength must be"):
        stylization.match_statistics(images, mean, std, strength=2)
