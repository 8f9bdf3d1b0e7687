"""spokenstyle.viz and spokenstyle.widgets: grids, curves, animations, the static-friendly switcher."""

from __future__ import annotations

import io
import re

import ipywidgets
import matplotlib
import numpy as np
import pytest
import torch
from PIL import Image
from torchvision.utils import make_grid

from spokenstyle import viz, widgets
from spokenstyle.train import History


def test_image_grid_matches_torchvision_and_maps_value_ranges():
    images = torch.rand(6, 3, 8, 8)
    grid = viz.image_grid(images, nrow=3)
    expected = make_grid(images, nrow=3, padding=2, pad_value=1.0).permute(1, 2, 0).numpy()
    assert grid.shape == expected.shape and grid.dtype == np.uint8
    assert np.abs(grid / 255.0 - expected).max() <= 0.5 / 255 + 1e-6
    tanh_images = images * 2 - 1
    assert np.array_equal(viz.image_grid(tanh_images, nrow=3, value_range=(-1, 1)), grid)


@pytest.mark.parametrize("bad,error", [
    (torch.rand(2, 4, 8, 8), ValueError),
    (torch.rand(8), ValueError),
    ("picture.png", TypeError),
    ([], ValueError),
])
def test_image_grid_rejects_what_is_not_images(bad, error):
    with pytest.raises(error):
        viz.image_grid(bad)


def test_show_grid_and_plot_history_draw():
    ax = viz.show_grid([torch.rand(3, 8, 8), torch.rand(3, 8, 8)], title="two")
    assert ax.get_title() == "two" and len(ax.images) == 1
    h = History()
    for step in range(1, 21):
        h.record(step, {"loss_D": 1.0 / step, "loss_G": step / 20})
    ax = viz.plot_history(h, smooth=5)
    assert {t.get_text() for t in ax.get_legend().get_texts()} == {"loss_D", "loss_G"}
    with pytest.raises(KeyError, match="history has no"):
        viz.plot_history(h, ["loss_X"])
    matplotlib.pyplot.close("all")


def test_animation_controls_need_no_cdn_and_no_icon_font():
    html = viz.animate([np.zeros((4, 4)), np.ones((4, 4))], lambda ax, frame, i: ax.imshow(frame), interval=50).data
    assert "://" not in "".join(re.findall(r'<link[^>]*>', html))  # no stylesheet from another host
    assert "font-awesome" not in html.lower() and "fontawesome" not in html.lower()
    assert '<i class="fa' not in html and 'class="fa ' not in html  # no Font Awesome icon is left
    buttons = re.findall(r"<button[^>]*>(.*?)</button>", html, flags=re.S)
    assert len(buttons) == 9  # slower, first, previous, backwards, pause, play, next, last, faster
    titles = []
    for body in buttons:  # each icon is an inline SVG with a title (what a screen reader says)
        assert body.count("<svg") == 1 and "</svg>" in body, body
        title = re.search(r"<title>([^<]+)</title>", body)
        assert title, body
        titles.append(title.group(1))
        assert all(ord(c) < 128 for c in re.sub(r"<[^>]*>", "", body)), body  # no Unicode symbol (⏮ ▶ ⏸ …)
    assert len(set(titles)) == 9 and "play" in titles and "pause" in titles


def test_animate_embeds_every_frame_in_html():
    frames = [np.full((4, 4), i, dtype=float) for i in range(3)]
    html = viz.animate(frames, lambda ax, frame, i: ax.imshow(frame, vmin=0, vmax=2), interval=50)
    assert html.data.count("data:image/png;base64") == 3
    with pytest.raises(ValueError, match="at least one frame"):
        viz.animate([], lambda ax, f, i: None)


def test_to_png_round_trips_pixels():
    image = torch.rand(3, 5, 7)
    decoded = np.asarray(Image.open(io.BytesIO(widgets.to_png(image))))
    assert decoded.shape == (5, 7, 3)
    assert np.abs(decoded / 255.0 - image.permute(1, 2, 0).numpy()).max() <= 0.5 / 255 + 1e-6
    big = Image.open(io.BytesIO(widgets.to_png(image, scale=3)))
    assert big.size == (21, 15)
    with pytest.raises(ValueError, match="expected one image"):
        widgets.to_png(torch.rand(2, 3, 4, 4))


def test_image_switcher_links_buttons_and_pictures_in_the_browser():
    if not widgets.HAS_STACK:
        pytest.skip("ipywidgets 7: the switcher is a Tab (test_image_switcher_is_a_tab_without_stack)")
    box = widgets.image_switcher({"flat": torch.rand(3, 8, 8), "neon": torch.rand(3, 8, 8)})
    buttons, stack = box.children
    assert list(buttons.options) == ["flat", "neon"] and len(stack.children) == 2
    # the link lives in the browser (saved with the widget state), not in a Python callback
    assert box.link.source == (buttons, "index") and box.link.target == (stack, "selected_index")
    assert type(box.link).__name__ == "Link"
    with pytest.raises(ValueError, match="at least one image"):
        widgets.image_switcher({})


def test_picture_stack_is_a_stack_in_ipywidgets_8_and_a_tab_in_7(monkeypatch):
    assert widgets.HAS_STACK == hasattr(ipywidgets, "Stack")
    pictures = [ipywidgets.Image(value=widgets.to_png(torch.rand(3, 4, 4)), format="png") for _ in range(3)]
    stack = widgets.picture_stack(pictures, ["a", "b", "c"])
    assert list(stack.children) == pictures and stack.selected_index == 0
    assert type(stack).__name__ == ("Stack" if widgets.HAS_STACK else "Tab")
    monkeypatch.setattr(widgets, "HAS_STACK", False)  # what ipywidgets 7.7 (Colab) gets
    tab = widgets.picture_stack(pictures, ["a", "b", "c"])
    assert isinstance(tab, ipywidgets.Tab) and list(tab.children) == pictures and tab.selected_index == 0
    assert [tab.get_title(i) for i in range(3)] == ["a", "b", "c"]  # the tab bar does the switching
    with pytest.raises(ValueError, match="3 pictures and 2 titles"):
        widgets.picture_stack(pictures, ["a", "b"])


def test_image_switcher_is_a_tab_without_stack(monkeypatch):
    monkeypatch.setattr(widgets, "HAS_STACK", False)
    box = widgets.image_switcher({"flat": torch.rand(3, 8, 8), "neon": torch.rand(3, 8, 8)}, description="style")
    label, tab = box.children
    assert label.value == "style" and isinstance(tab, ipywidgets.Tab) and len(tab.children) == 2
    assert [tab.get_title(i) for i in range(2)] == ["flat", "neon"] and box.link is None
    plain = widgets.image_switcher({"flat": torch.rand(3, 8, 8)})
    assert len(plain.children) == 1 and isinstance(plain.children[0], ipywidgets.Tab)
