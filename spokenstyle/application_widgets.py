"""ipywidgets front ends of chapter 9's applications, for Colab and Jupyter.

* :func:`sentence_app`: type a sentence, pick a style, press **Draw**: what the parser
  understood, ignored and assumed, F's picture, and the sentence typeset into it
  (:func:`spokenstyle.applications.multimodal.draw_sentence`).
* :func:`advert_app`: pick a campaign and a look, edit the slogan (or roll a spoken one), press
  **Compose**: the advert with the package's placement beside a naive one, with the contrast
  and coverage of each (:func:`spokenstyle.applications.advert.make_advert`).

Their buttons call Python, so they need a live kernel; in the static book each app shows the
result of the ``app.run()`` the chapter calls before displaying it, and the chapter prints the
same results as fixed examples. Only core widgets are used (ipywidgets 7.7, Colab's, and 8).
"""

from __future__ import annotations

import html as _html
from dataclasses import replace
from typing import Any, Sequence

import ipywidgets as widgets

from .applications.advert import CAMPAIGNS, MAX_COVERAGE, MIN_CONTRAST, Advert, Campaign, make_advert, spoken_slogan
from .applications.multimodal import Drawing, draw_sentence
from .data.photos import ALL_FILTERS
from .data.styles import STYLES
from .models.fusion import FusionGenerator
from .widgets import to_png

__all__ = ["EXAMPLE_SENTENCE", "reading_html", "sentence_app", "advert_html", "advert_app"]

EXAMPLE_SENTENCE = "whoa, a shiny big red ball right next to a teeny blue box behind the tree!"


def reading_html(drawing: Drawing) -> str:
    """What the parser made of the sentence, as HTML: understood, ignored, assumed, notes, and
    the caption F drew."""
    u = drawing.understanding

    def items(values: Sequence[str], quote: bool = False) -> str:
        if not values:
            return "<i>nothing</i>"
        return ", ".join(f"‘{_html.escape(v)}’" if quote else _html.escape(v) for v in values)

    rows = [f"<b>understood:</b> {items(u.understood)}", f"<b>ignored:</b> {items(u.ignored, quote=True)}"]
    if u.assumed:
        rows.append(f"<b>assumed:</b> {items(u.assumed)}")
    if u.notes:
        rows.append(f"<b>notes:</b> {items(u.notes)}")
    rows.append(f"<b>F drew:</b> “{_html.escape(drawing.words)}” in the <i>{_html.escape(drawing.style)}</i> style")
    return "".join(f"<p>{r}</p>" for r in rows)


def sentence_app(F: FusionGenerator, *, text: str = EXAMPLE_SENTENCE, style: str = "watercolour", seed: int = 0,
                 scale: int = 3):
    """A text box, a style and a seed; **Draw** reads the sentence and has F draw it.

    Returns:
        an ``ipywidgets.VBox``; ``app.run()`` does what the button does and returns the
        :class:`~spokenstyle.applications.multimodal.Drawing` (``app.drawing`` keeps the latest).
    """
    if style not in STYLES:
        raise ValueError(f"style must be one of {STYLES}, got {style!r}")
    box = widgets.Textarea(value=text, placeholder="describe a picture: shapes, colours, sizes, where they are",
                           description="sentence", layout=widgets.Layout(width="95%", height="4em"))
    style_box = widgets.Dropdown(options=list(STYLES), value=style, description="style")
    seed_box = widgets.BoundedIntText(value=seed, min=0, max=2**31 - 1, description="seed")
    button = widgets.Button(description="Draw", button_style="primary", icon="paint-brush")
    fused = widgets.Image(format="png")
    picture = widgets.Image(format="png")
    report = widgets.HTML(value="<i>press Draw</i>")
    status = widgets.HTML(value="")

    def run(*_: Any) -> Drawing | None:
        status.value = "drawing…"
        try:
            drawing = draw_sentence(F, box.value, style_box.value, seed=int(seed_box.value))
        except (ValueError, TypeError) as err:
            status.value = f"<b style='color:#b00'>error:</b> {_html.escape(str(err))}"
            return None
        fused.value = to_png(drawing.fused, scale=scale)
        picture.value = to_png(drawing.picture)
        report.value = reading_html(drawing)
        status.value = ""
        app.drawing = drawing
        return drawing

    button.on_click(run)
    pictures = widgets.HBox([widgets.VBox([widgets.Label("F's picture"), fused]),
                             widgets.VBox([widgets.Label("with the sentence"), picture])])
    app = widgets.VBox([box, widgets.HBox([style_box, seed_box, button]), status, report, pictures])
    app.run, app.drawing = run, None
    app.controls = {"text": box, "style": style_box, "seed": seed_box, "button": button}
    return app


def advert_html(ad: Advert) -> str:
    """The measurements of an advert's two placements, as an HTML table."""
    rows = []
    for label, p in (("package", ad.placement), ("naive (centred, white)", ad.naive)):
        scrim = f"{p.scrim_alpha:.0%} {'dark' if p.scrim == (0, 0, 0) else 'light'}" if p.scrim else "none"
        ok = "✔" if p.worst_contrast >= MIN_CONTRAST and p.coverage <= MAX_COVERAGE else "✘"
        rows.append(f"<tr><td>{label}</td><td>{p.worst_contrast:.2f} : 1</td><td>{p.coverage:.1%}</td>"
                    f"<td>{p.font_size} px</td><td>{scrim}</td><td>{ok}</td></tr>")
    head = ("<tr><th>placement</th><th>worst contrast</th><th>salient pixels covered</th><th>font</th>"
            "<th>scrim</th><th>meets both limits</th></tr>")
    limits = f"<p>limits: contrast ≥ {MIN_CONTRAST} : 1 (WCAG AA), coverage ≤ {MAX_COVERAGE:.0%}</p>"
    return f"<p><b>{_html.escape(ad.campaign.name)}</b>: “{_html.escape(' '.join(ad.placement.lines))}”</p>" \
           f"<table>{head}{''.join(rows)}</table>{limits}"


def advert_app(campaigns: Sequence[Campaign] = CAMPAIGNS, *, short_side: int = 256):
    """A campaign, a look and a slogan; **Compose** sets the slogan where the package places it,
    beside a naive placement, with both measurements; **Roll a slogan** writes a spoken one.

    Returns:
        an ``ipywidgets.VBox``; ``app.run()`` composes and returns the
        :class:`~spokenstyle.applications.advert.Advert` (``app.advert`` keeps the latest).
    """
    campaigns = list(campaigns)
    if not campaigns:
        raise ValueError("advert_app needs at least one campaign")
    choice = widgets.Dropdown(options=[(c.name, i) for i, c in enumerate(campaigns)], value=0, description="campaign")
    look = widgets.Dropdown(options=["photo", *ALL_FILTERS], value=campaigns[0].look, description="look")
    slogan = widgets.Textarea(value=campaigns[0].text, description="slogan", layout=widgets.Layout(width="95%"))
    roll = widgets.Button(description="Roll a slogan", icon="random")
    button = widgets.Button(description="Compose", button_style="primary", icon="play")
    ours = widgets.Image(format="png")
    naive = widgets.Image(format="png")
    report = widgets.HTML(value="<i>press Compose</i>")
    status = widgets.HTML(value="")
    state = {"seed": 0}

    def pick(change: Any) -> None:
        c = campaigns[choice.value]
        look.value, slogan.value = c.look, c.text

    def reroll(*_: Any) -> None:
        state["seed"] += 1
        slogan.value = spoken_slogan(campaigns[choice.value].product, state["seed"])

    def run(*_: Any) -> Advert | None:
        status.value = "composing…"
        try:
            campaign = replace(campaigns[choice.value], look=look.value)
            ad = make_advert(campaign, short_side=short_side, slogan=slogan.value)
        except (ValueError, TypeError) as err:
            status.value = f"<b style='color:#b00'>error:</b> {_html.escape(str(err))}"
            return None
        ours.value, naive.value = to_png(ad.advert), to_png(ad.naive_advert)
        report.value = advert_html(ad)
        status.value = ""
        app.advert = ad
        return ad

    choice.observe(pick, names="value")
    roll.on_click(reroll)
    button.on_click(run)
    pictures = widgets.HBox([widgets.VBox([widgets.Label("placed by the package"), ours]),
                             widgets.VBox([widgets.Label("naive: centred, white"), naive])])
    app = widgets.VBox([widgets.HBox([choice, look]), slogan, widgets.HBox([roll, button]), status, report, pictures])
    app.run, app.advert = run, None
    app.controls = {"campaign": choice, "look": look, "slogan": slogan, "roll": roll, "button": button}
    return app
