"""The pipeline's front ends: the ipywidgets app and the five-step figure."""

from __future__ import annotations

import datetime
import io

import ipywidgets
import matplotlib
import numpy as np
import pytest
import torch
from PIL import Image

from spokenstyle import pipeline, viz, widgets
from spokenstyle.data.images import as_images
from spokenstyle.models.captioner import Captioner, captioner_config
from spokenstyle.models.critic import TextClassifier, classifier_config
from spokenstyle.models.features import FeatureNet, FeatureNetConfig
from spokenstyle.models.fusion import FusionConfig, FusionGenerator


@pytest.fixture(scope="module")
def pipe():
    torch.manual_seed(0)
    return pipeline.SpokenStylePipeline(
        Captioner(captioner_config(enc_channels=(4, 4, 4, 4, 4), enc_hidden=8, n_embd=16, n_layer=1, n_head=2, max_len=12)),
        FusionGenerator(FusionConfig(text_dim=8, content_dim=8, style_dim=8, g_width=4, d_width=4)),
        FeatureNet(FeatureNetConfig(width=4, feature_dim=8)),
        TextClassifier(classifier_config("critic", d_model=16, n_layer=1, n_head=2)))


def png(value: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(value)))


def upload(widget, name: str, data: bytes, mime: str = "image/png") -> None:
    """What a browser does to a FileUpload when a file is chosen, in ipywidgets 8 (a tuple of
    files) or 7 (Colab's: metadata and data lists, then a counter that makes ``value``)."""
    if int(ipywidgets.__version__.split(".")[0]) >= 8:
        widget.value = ({"name": name, "type": mime, "size": len(data), "content": memoryview(data),
                         "last_modified": datetime.datetime(2026, 1, 1)},)
    else:
        widget.metadata = [{"name": name, "type": mime, "size": len(data), "lastModified": 0}]
        widget.data = [data]
        widget._counter += 1


def test_app_builds_and_run_shows_every_step(pipe):
    app = widgets.pipeline_app(pipe, sources=["scene:1:flat", "scene:2:neon"], targets=["scene:3:comic"])
    blank = app.children[4].children[0].children[1].value
    app.controls["source"].value = 1
    out = app.run()
    assert out is app.output and len(out) == 1
    assert torch.equal(out.source, as_images("scene:2:neon"))
    images = [box.children[1] for box in app.children[4].children]
    assert all(im.value != blank for im in images[:4])
    assert png(images[4].value).shape[0] >= 256
    assert out.sentences[0].replace("<", "&lt;")[:10] in app.children[5].value


def test_an_uploaded_picture_replaces_the_gallery_choice(pipe):
    app = widgets.pipeline_app(pipe)
    buffer = io.BytesIO()
    Image.fromarray(np.full((30, 50, 4), 200, dtype=np.uint8), "RGBA").save(buffer, format="PNG")  # alpha 200/255
    upload(app.controls["target_upload"], "mine.png", buffer.getvalue())
    out = app.run()
    on_white = (200 * 200 / 255 + 255 - 200) / 255  # transparency is flattened onto white
    assert torch.allclose(out.target, torch.full((1, 3, 64, 64), on_white), atol=2 / 255)
    upload(app.controls["source_upload"], "x.png", b"abc")
    assert app.run() is None  # the error is shown in the app, not raised into the event loop
    assert "not an image" in app.children[3].value and app.output is out


def test_empty_gallery_is_an_error(pipe):
    with pytest.raises(ValueError, match="gallery is empty"):
        widgets.pipeline_app(pipe, sources=[])


def test_show_steps_draws_five_panels(pipe):
    out = pipe(["scene:1:flat", "scene:2:sketch"], "scene:3:neon")
    fig = viz.show_steps(out, 1)
    assert isinstance(fig, matplotlib.figure.Figure) and len(fig.axes) == 5
    matplotlib.pyplot.close(fig)
    with pytest.raises(ValueError, match="index"):
        viz.show_steps(out, 2)
