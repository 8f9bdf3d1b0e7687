"""Chapter 9's Colab front ends: the sentence box and the advert composer run what their buttons run."""

import io

import ipywidgets
import numpy as np
import pytest
import torch
from PIL import Image

from spokenstyle import application_widgets as W
from spokenstyle.applications.advert import CAMPAIGNS, MIN_CONTRAST
from spokenstyle.models.fusion import FusionConfig, FusionGenerator


@pytest.fixture(scope="module")
def small_F():
    torch.manual_seed(0)
    return FusionGenerator(FusionConfig(text_dim=8, content_dim=8, style_dim=8, g_width=4, d_width=4)).eval()


def png(value: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(value)))


def test_sentence_app_reports_and_draws(small_F):
    app = W.sentence_app(small_F, style="comic")
    assert isinstance(app, ipywidgets.VBox) and app.drawing is None
    drawing = app.run()
    assert drawing is app.drawing and drawing.style == "comic"
    html = app.children[3].value
    assert "understood:" in html and "shiny" in html and "behind the tree" in html
    app.controls["text"].value = "a purple star above a huge orange cross"
    app.controls["style"].value = "neon"
    again = app.run()
    assert again.understanding.spec is not None and again.style == "neon"
    assert png(app.children[4].children[0].children[1].value).shape[0] == 3 * 64


def test_sentence_app_reports_errors_instead_of_raising(small_F):
    app = W.sentence_app(small_F)
    app.controls["style"].options = ["flat", "oil"]
    app.controls["style"].value = "oil"
    assert app.run() is None and "error" in app.children[2].value
    with pytest.raises(ValueError, match="style must be one of"):
        W.sentence_app(small_F, style="oil")


def test_advert_app_composes_both_placements():
    app = W.advert_app(CAMPAIGNS, short_side=96)
    ad = app.run()
    assert ad is app.advert and ad.placement.worst_contrast >= MIN_CONTRAST
    html = app.children[4].value
    assert "package" in html and "naive" in html and ": 1" in html
    app.controls["campaign"].value = 1
    assert app.controls["look"].value == CAMPAIGNS[1].look and app.controls["slogan"].value == CAMPAIGNS[1].text
    before = app.controls["slogan"].value
    app.controls["roll"].click()
    assert app.controls["slogan"].value != before and "rocket" in app.controls["slogan"].value
    app.controls["look"].value = "photo"
    assert app.run().campaign.look == "photo"
    app.controls["slogan"].value = "   "
    assert app.run() is None and "error" in app.children[3].value
    with pytest.raises(ValueError, match="at least one campaign"):
        W.advert_app([])
