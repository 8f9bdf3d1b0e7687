"""ShapeScenes: the sampler's determinism and geometry, and the renderer in every style and size."""

import colorsys

import numpy as np
import pytest
import torch

from spokenstyle.data import scenes as S
from spokenstyle.data.scenes import (COLOUR_RGB, COLOURS, RELATIONS, Obj, SceneBatch, SceneSpec, relation_between,
                                     sample_scenes)
from spokenstyle.data.styles import STYLES, _object_fields, _grid, render


@pytest.fixture(scope="module")
def batch() -> SceneBatch:
    return sample_scenes(torch.arange(3000))


def test_same_seed_same_scene_in_any_batch(batch):
    again = sample_scenes(torch.tensor([7, 2999, 0, 1234]))
    for i, seed in enumerate([7, 2999, 0, 1234]):
        assert again.spec(i) == batch.spec(seed)
        assert torch.equal(again.pos[i], batch.pos[seed])


def test_attribute_ranges_and_distinct_colours(batch):
    n = batch.n_objects
    assert set(n.tolist()) == {1, 2, 3}
    for k in range(3):
        present = batch.mask[:, k]
        assert (batch.shape[present, k] >= 0).all() and (batch.shape[present, k] < len(S.SHAPES)).all()
        assert (batch.shape[~present, k] == -1).all()
    col = batch.colour
    for a in range(3):
        for b in range(a + 1, 3):
            both = batch.mask[:, a] & batch.mask[:, b]
            assert (col[both, a] != col[both, b]).all()
    # every relation and shape occurs
    assert set(batch.relation[batch.relation >= 0].tolist()) == set(range(len(RELATIONS)))
    assert set(batch.shape[batch.mask].tolist()) == set(range(len(S.SHAPES)))


def test_stated_relations_are_true_and_unambiguous(batch):
    r = batch.radius
    for k in range(2):
        m = batch.mask[:, k + 1]
        read = relation_between(batch.pos[m, k], batch.pos[m, k + 1], r[m, k], r[m, k + 1])
        assert torch.equal(read, batch.relation[m, k])


def test_objects_inside_canvas_and_apart(batch):
    r, p, m = batch.radius, batch.pos, batch.mask
    assert ((p.abs() + r[..., None]) <= 1 - S.MARGIN + 1e-5)[m].all()
    for a, b, min_gap in [(0, 1, S.NEAR_GAP[0]), (1, 2, S.NEAR_GAP[0]), (0, 2, S.OTHER_GAP)]:
        both = m[:, a] & m[:, b]
        gap = (p[both, a] - p[both, b]).norm(dim=-1) - r[both, a] - r[both, b]
        assert (gap >= min_gap - 1e-5).all()


@pytest.mark.parametrize("n", [1, 2, 3])
def test_forced_object_count(n):
    assert (sample_scenes(range(50), n_objects=n).n_objects == n).all()


@pytest.mark.parametrize("seeds, error", [([-1], ValueError), (torch.tensor([0.5]), TypeError), (True, TypeError)])
def test_bad_seeds(seeds, error):
    with pytest.raises(error):
        sample_scenes(seeds)


@pytest.mark.parametrize("n", [0, 4, True, 2.0])
def test_bad_object_count(n):
    with pytest.raises(ValueError, match="n_objects"):
        sample_scenes(range(3), n_objects=n)


def test_spec_validation_and_canonical_key():
    red = Obj("circle", "red", "large")
    blue = Obj("square", "blue", "small")
    a = SceneSpec((red, blue), ("left of",))
    b = SceneSpec((blue, red), ("right of",))
    assert a != b and a.matches(b)
    assert not a.matches(SceneSpec((red, blue), ("above",)))
    with pytest.raises(ValueError, match="unknown colour"):
        Obj("circle", "pink", "large")
    with pytest.raises(ValueError, match="relations"):
        SceneSpec((red, blue), ())
    with pytest.raises(ValueError, match="unknown relation"):
        SceneSpec((red, blue), ("on top of",))


def test_colour_slots_describe_the_objects(batch):
    slots = batch.colour_slots()
    for i in range(200):
        spec = batch.spec(i)
        expect = [0] * len(COLOURS)
        for o in spec.objects:
            expect[COLOURS.index(o.colour)] = 1 + S.SHAPES.index(o.shape) * 2 + S.SIZES.index(o.size)
        assert slots[i].tolist() == expect


# ----------------------------------------------------------------------------------------------
# rendering


@pytest.mark.parametrize("size", [32, 64, 128])
@pytest.mark.parametrize("style", STYLES)
def test_render_shape_range_determinism(style, size, batch):
    scenes = batch[:16]
    x = render(scenes, style, size)
    assert x.shape == (16, 3, size, size) and x.dtype == torch.float32
    assert torch.isfinite(x).all() and x.min() >= 0 and x.max() <= 1
    assert torch.equal(x, render(sample_scenes(scenes.seed), style, size))
    assert x.std() > 0.02  # not a blank canvas


def test_mixed_styles_equal_single_style_renders(batch):
    scenes = batch[:12]
    styles = [i % len(STYLES) for i in range(12)]
    mixed = render(scenes, styles, 48)
    for i, s in enumerate(styles):
        assert torch.equal(mixed[i], render(scenes[i], s, 48)[0])


@pytest.mark.parametrize("kwargs, error, match", [
    ({"style": "oil"}, ValueError, "unknown style"),
    ({"style": 6}, ValueError, "style id"),
    ({"size": 31}, ValueError, "between 32 and 128"),
    ({"size": 129}, ValueError, "between 32 and 128"),
    ({"size": 64.0}, TypeError, "size must be an int"),
    ({"style": ["flat", "neon"]}, ValueError, "styles for"),
])
def test_render_errors(kwargs, error, match, batch):
    with pytest.raises(error, match=match):
        render(batch[:3], **{"style": "flat", "size": 64, **kwargs})


def test_render_needs_a_scene_batch():
    with pytest.raises(TypeError, match="SceneBatch"):
        render([1, 2, 3], "flat", 64)


def _features(x: torch.Tensor) -> np.ndarray:
    """Cheap style features: colour statistics, edge and grain energy, intensity quantiles."""
    gx = (x[..., 1:] - x[..., :-1]).abs().mean((2, 3))
    lap = (x[..., 2:] - 2 * x[..., 1:-1] + x[..., :-2]).abs().mean((2, 3))
    q = torch.quantile(x.flatten(2), torch.tensor([0.05, 0.5, 0.95]), dim=2).permute(1, 0, 2).flatten(1)
    return torch.cat([x.mean((2, 3)), x.std((2, 3)), gx, lap, q], 1).numpy()


def test_styles_are_distinguishable():
    """A linear classifier on 15 global statistics tells the six styles apart on new scenes."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    train, test = sample_scenes(range(40)), sample_scenes(range(1000, 1040))
    xs, xt, ys = [], [], []
    for s in range(len(STYLES)):
        xs.append(_features(render(train, s, 32)))
        xt.append(_features(render(test, s, 32)))
        ys += [s] * 40
    clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=3000)).fit(np.concatenate(xs), ys)
    assert clf.score(np.concatenate(xt), ys) >= 0.95


def _hue(rgb) -> float:
    return colorsys.rgb_to_hsv(*rgb)[0]


@pytest.mark.parametrize("style", STYLES)
def test_colours_stay_recognisable(style):
    """The mean colour inside each object has the hue of its palette colour (nearest of six)."""
    scenes = sample_scenes(range(120), n_objects=1)
    x = render(scenes, style, 64)
    d, _ = _object_fields(scenes, _grid(64, torch.device("cpu")))
    inside = (d < -0.02)  # (B, 1, H, W), away from the antialiased edge
    mean = (x * inside).sum((2, 3)) / inside.sum((2, 3))  # (B, 3)
    hues = np.array([_hue(c) for c in COLOUR_RGB])
    correct = 0
    for i in range(len(scenes)):
        h = _hue(mean[i].tolist())
        dist = np.minimum(np.abs(hues - h), 1 - np.abs(hues - h))
        correct += int(dist.argmin() == int(scenes.colour[i, 0]))
    assert correct / len(scenes) >= 0.97


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("style", STYLES)
def test_gpu_render_matches_cpu(style):
    from spokenstyle.runtime import get_device

    dev = get_device()
    cpu = render(sample_scenes(range(32)), style, 64)
    gpu = render(sample_scenes(range(32), device=dev), style, 64)
    assert gpu.device.type == dev.type
    assert (gpu.cpu() - cpu).abs().mean() < 1e-3


def test_colour_masks_mark_each_object_with_its_colour():
    from spokenstyle.data.styles import colour_masks

    scenes = sample_scenes(range(40))
    masks = colour_masks(scenes, 64)  # (B, 64, 64)
    assert masks.shape == (40, 64, 64) and masks.dtype == torch.int64
    for i in range(40):
        for k in range(int(scenes.n_objects[i])):
            x, y = ((scenes.pos[i, k] + 1) / 2 * 64).long().clamp(0, 63).tolist()
            assert masks[i, y, x] == 1 + scenes.colour[i, k]  # an object's centre has its colour
        present = {0} | {1 + int(c) for c in scenes.colour[i, : int(scenes.n_objects[i])]}
        assert set(masks[i].unique().tolist()) <= present


# ----------------------------------------------------------------------------------------------
# colour slots: the one encoding of a scene's objects (data.scenes)


def test_slot_class_numbers_every_shape_and_size_once():
    classes = {S.slot_class(shape, size) for shape in range(len(S.SHAPES)) for size in range(len(S.SIZES))}
    assert classes == set(range(1, S.N_SLOT_CLASSES)) and S.N_SLOT_CLASSES == 13  # 0 is "absent"
    shape, size = torch.tensor([0, 5, 2]), torch.tensor([1, 0, 1])
    assert S.slot_class(shape, size).tolist() == [S.slot_class(0, 1), S.slot_class(5, 0), S.slot_class(2, 1)]


def test_split_slots_inverts_the_colour_slots(batch):
    slots = batch.colour_slots()
    present, shape, size = S.split_slots(slots)
    assert torch.equal(present, slots > 0)
    assert torch.equal(S.slot_class(shape, size)[present], slots[present])
    assert (shape[~present] == -1).all() and (size[~present] == -1).all()
    unreadable = torch.full((1, len(COLOURS)), -1)
    p, sh, si = S.split_slots(unreadable)
    assert not p.any() and (sh == -1).all() and (si == -1).all()


def test_slots_of_specs_agree_with_the_batch_and_mark_unreadable_rows(batch):
    specs = [batch.spec(i) for i in range(50)]
    assert torch.equal(S.slots_of_specs(specs), batch.colour_slots()[:50])
    rows = S.slots_of_specs([specs[0], None])
    assert rows.dtype == torch.int64 and rows.shape == (2, len(COLOURS)) and (rows[1] == -1).all()
    with pytest.raises(TypeError, match="SceneSpec or None"):
        S.slots_of_specs(["a red circle"])


def test_slots_to_text_names_each_object():
    spec = SceneSpec((Obj("circle", "red", "large"), Obj("square", "blue", "small")), ("left of",))
    row = S.slots_of_specs([spec])[0]
    words = S.slots_to_text(row)
    assert sorted(words.split(", ")) == ["large red circle", "small blue square"]
    assert S.slots_to_text(torch.zeros(len(COLOURS), dtype=torch.int64)) == "-"
    assert S.slots_to_text(torch.full((len(COLOURS),), -1)) == "(unreadable)"
    with pytest.raises(ValueError, match="one row of 6"):
        S.slots_to_text(row[None])


# issue 37, defect 7: these complained about a dtype and "Overflow when unpacking long long"
@pytest.mark.parametrize("seeds, message", [([], "no scene seeds"), (torch.zeros(0, dtype=torch.long), "no scene seeds"),
                                            ([2**63], "from 0 to 2\\*\\*63 - 1, got 9223372036854775808"),
                                            ([3, -1], "from 0 to 2\\*\\*63 - 1, got -1")])
def test_bad_seed_lists_are_named(seeds, message):
    with pytest.raises(ValueError, match=message):
        S.sample_scenes(seeds)
