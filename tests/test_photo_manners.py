"""Chapter 9's painterly manners (pointillist, strokes, woodblock) and what adding them must not change."""

import pytest
import torch

from spokenstyle.data import photos as P


@pytest.fixture(scope="module")
def patches():
    return P.PhotoPatches("test", 64, length=6).batch(range(6))["image"]


@pytest.mark.parametrize("name", sorted(P.MANNER_FILTERS))
def test_manner_filters_keep_shape_range_and_are_deterministic(patches, name):
    y = P.painterly(patches, name)
    assert y.shape == patches.shape and y.dtype == patches.dtype and 0 <= y.min() and y.max() <= 1
    assert torch.equal(y, P.painterly(patches, name))
    assert (y - patches).abs().mean() > 0.02  # visibly changed
    one = torch.cat([P.painterly(patches[i: i + 1], name) for i in range(len(patches))])
    assert torch.allclose(one, y, atol=1e-4)  # a picture's painting does not depend on its batch


@pytest.mark.parametrize("name", sorted(P.MANNER_FILTERS))
def test_manner_filters_take_the_smallest_and_odd_sized_pictures(name):
    for shape in ((1, 3, 7, 7), (2, 3, 9, 31), (1, 3, 40, 13)):
        assert P.painterly(torch.rand(shape), name).shape == shape


def test_mixed_still_draws_from_the_first_three_filters_only():
    """Adding filters changes no data set: "mixed" keeps its three (and the same draw per seed)."""
    assert P.MIXED_FILTERS == ("oil", "watercolour", "pencil") and tuple(P.PAINTERLY_FILTERS) == P.MIXED_FILTERS
    seeds = torch.arange(0, 3000)
    drawn = P._filters_for(seeds, "mixed")
    assert set(drawn) == set(P.MIXED_FILTERS)
    u = P.hash_uniform(seeds, 401, 1)[:, 0].tolist()
    assert drawn == [P.MIXED_FILTERS[min(int(v * 3), 2)] for v in u]
    assert set(P.ALL_FILTERS) == set(P.PAINTERLY_FILTERS) | set(P.MANNER_FILTERS)


def test_the_datasets_take_a_manner():
    batch = P.PhotoPatches("test", 32, length=4, painterly="woodblock").batch(range(4))
    assert batch["filter"] == ["woodblock"] * 4
    b = P.photo_batches(2, size=32, filter="strokes")(0)
    assert b["image_b"].shape == (2, 3, 32, 32)
    with pytest.raises(ValueError, match="unknown painterly filter 'cubist'.*woodblock"):
        P.painterly(torch.rand(1, 3, 16, 16), "cubist")


def test_woodblock_is_flat_fields_and_ink():
    x = P.PhotoPatches("test", 64, length=3).batch(range(3))["image"]
    y = P.woodblock(x, colours=5)
    for img in y:
        colours = torch.unique(img.flatten(1).T, dim=0)
        assert len(colours) <= 5 + 1  # five field colours and the ink
    ink = torch.tensor(P.INK).view(3, 1)
    assert ((y.flatten(2) - ink[None]).abs().sum(1) < 1e-6).float().mean() > 0.005  # there are outlines
    halves = torch.zeros(1, 3, 16, 16)
    halves[..., 8:] = 1.0
    inked = ((P.woodblock(halves)[0].flatten(1).T - ink[:, 0]).abs().sum(1) < 1e-6).view(16, 16)
    assert inked[:, 8].all() and inked.sum() == 16  # one line where black meets white, none elsewhere
    same_tone = P.woodblock(halves * 0.0 + 0.5, step=0.12)
    assert not ((same_tone.flatten(2) - ink[None]).abs().sum(1) < 1e-6).any()


def test_pointillist_lays_dots_of_the_pictures_colour_on_a_ground():
    red = torch.zeros(1, 3, 48, 48)
    red[:, 0] = 0.8
    y = P.pointillist(red)
    ground = 0.6 * torch.tensor(P.PAPER) + 0.4 * torch.tensor([0.8, 0.0, 0.0])
    on_ground = ((y[0].flatten(1).T - ground).abs().max(1).values < 1e-4).float().mean()
    assert 0.02 < on_ground < 0.6  # some ground shows between the dots
    dots = y[0].flatten(1).T[(y[0].flatten(1).T - ground).abs().max(1).values > 1e-4]
    assert (dots[:, 0] > 0.7).all() and (dots[:, 1:] < 0.1).all()  # dots are red, varied by at most 0.08


@pytest.mark.parametrize("axis", ["vertical", "horizontal"])
def test_strokes_follow_the_flow_field(axis):
    """Stripes across x (vertical stripes) flow along y, and the other way round."""
    t = torch.sin(torch.arange(48.0) / 2.0) * 0.4 + 0.5
    img = t.view(1, 1, 1, 48).expand(1, 3, 48, 48) if axis == "vertical" else t.view(1, 1, 48, 1).expand(1, 3, 48, 48)
    flow = P.flow_field(img.contiguous())[0, :, 8:-8, 8:-8]  # (2, H, W) away from the border
    along = flow[1] if axis == "vertical" else flow[0]
    assert along.abs().mean() > 0.95
    strokes = P.strokes(img.contiguous())
    assert strokes.shape == img.shape


@pytest.mark.parametrize("call, message", [
    (lambda: P.pointillist(torch.rand(1, 3, 16, 16), spacing=1), "spacing must be an int from 2 to 32"),
    (lambda: P.pointillist(torch.rand(1, 3, 16, 16), radius=9), "radius must be from 0.5"),
    (lambda: P.strokes(torch.rand(1, 3, 16, 16), length=0), "length must be an int from 1 to 32"),
    (lambda: P.woodblock(torch.rand(1, 3, 16, 16), colours=1), "colours must be an int from 2 to 16"),
    (lambda: P.woodblock(torch.rand(1, 3, 16, 16), step=2), "step must be a luminance difference"),
    (lambda: P.woodblock(torch.rand(1, 3, 6, 6)), "at least 7 x 7"),
    (lambda: P.strokes(torch.zeros(1, 3, 8, 8, dtype=torch.uint8)), "float images"),
])
def test_bad_arguments_are_named(call, message):
    with pytest.raises((ValueError, TypeError), match=message):
        call()
