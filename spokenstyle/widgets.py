"""ipywidgets front ends that also work in the static book.

A widget whose behaviour lives in Python (an ``observe`` callback) is dead in static HTML: no
kernel answers it. The widgets here link their parts in the browser (``jslink``), so that the
saved widget state carries the whole interaction: a reader of the HTML book clicks and sees
the same thing a Colab user sees. The book serves the widget JavaScript itself (no CDN).

Only core widgets are used, and they work with ipywidgets 7.7 (what Google Colab preinstalls)
and 8 alike: ipywidgets 8's ``Stack`` shows one picture of several; 7 has no ``Stack``, so
:func:`picture_stack` gives a ``Tab`` there, whose tab bar does the switching.
"""

from __future__ import annotations

import html as _html
import io
from typing import Any, Mapping

import ipywidgets as widgets
import numpy as np
import torch
from PIL import Image

from .data import STYLES, as_images

__all__ = ["HAS_STACK", "to_png", "picture_stack", "image_switcher", "pipeline_app"]

HAS_STACK = hasattr(widgets, "Stack")  # ipywidgets >= 8


def to_png(image: Any, *, scale: int = 1) -> bytes:
    """PNG bytes of one image: a (3, H, W) / (H, W, 3) tensor or array in [0, 1], or a PIL image."""
    if isinstance(image, Image.Image):
        pil = image.convert("RGB")
    else:
        array = image.detach().cpu().numpy() if isinstance(image, torch.Tensor) else np.asarray(image)
        if array.ndim == 3 and array.shape[0] in (1, 3) and array.shape[-1] not in (1, 3):
            array = array.transpose(1, 2, 0)  # CHW -> HWC
        if array.ndim != 3 or array.shape[-1] not in (1, 3):
            raise ValueError(f"expected one image (3, H, W) or (H, W, 3), got shape {array.shape}")
        if array.dtype != np.uint8:
            array = (np.clip(array, 0.0, 1.0) * 255).round().astype(np.uint8)
        pil = Image.fromarray(array.squeeze(-1) if array.shape[-1] == 1 else array)
    if not isinstance(scale, int) or scale < 1:
        raise ValueError(f"scale must be a positive int, got {scale!r}")
    if scale > 1:
        pil = pil.resize((pil.width * scale, pil.height * scale), Image.NEAREST)
    buffer = io.BytesIO()
    pil.save(buffer, format="PNG")
    return buffer.getvalue()


def picture_stack(pictures: list[Any], titles: list[str]) -> Any:
    """One of ``pictures`` at a time, chosen by ``selected_index`` (a slider or buttons can be
    ``jslink``-ed to it): a ``Stack`` with ipywidgets 8, a ``Tab`` titled ``titles`` with 7."""
    if len(pictures) != len(titles):
        raise ValueError(f"got {len(pictures)} pictures and {len(titles)} titles; give one title per picture")
    if HAS_STACK:
        return widgets.Stack(pictures, selected_index=0)
    tab = widgets.Tab(children=pictures)
    for i, title in enumerate(titles):
        tab.set_title(i, str(title))
    tab.selected_index = 0
    return tab


def image_switcher(images: Mapping[str, Any], *, description: str = "", scale: int = 1):
    """Buttons that switch between labelled images, linked in the browser (works in static HTML).

    Args:
        images: label -> image (tensor/array in [0, 1], or PIL).
        description: a label shown before the buttons.
        scale: integer upscaling (nearest neighbour) so small renders are visible.
    Returns:
        an ``ipywidgets.VBox``; the last expression of a cell displays it.
    """
    if not images:
        raise ValueError("image_switcher needs at least one image")
    labels = list(images)
    pictures = [widgets.Image(value=to_png(images[k], scale=scale), format="png") for k in labels]
    stack = picture_stack(pictures, labels)
    if not HAS_STACK:  # ipywidgets 7: the Tab's own bar is the switch
        box = widgets.VBox([widgets.Label(description), stack] if description else [stack])
        box.link = None
        return box
    buttons = widgets.ToggleButtons(options=labels, description=description, value=labels[0])
    box = widgets.VBox([buttons, stack])
    box.link = widgets.jslink((buttons, "index"), (stack, "selected_index"))  # kept for inspection
    return box


# -- the pipeline front end --------------------------------------------------------------------

DEFAULT_SOURCES: tuple[str, ...] = ("scene:3:flat", "scene:8:sketch", "scene:21:watercolour", "scene:5:pixel")
DEFAULT_TARGETS: tuple[str, ...] = ("scene:40:flat", "scene:41:sketch", "scene:42:watercolour", "scene:43:neon",
                                    "scene:44:pixel", "scene:45:comic")


def _uploaded_image(upload: Any):
    """The PIL image of a FileUpload's latest file, or None when nothing was uploaded."""
    value = upload.value
    if not value:
        return None
    item = value[-1] if isinstance(value, (list, tuple)) else list(value.values())[-1]  # ipywidgets 8 / 7
    content = item["content"]
    try:
        image = Image.open(io.BytesIO(bytes(content)))
        image.load()
    except Exception as err:  # PIL raises several kinds for a file that is not an image
        raise ValueError(f"the uploaded file {item.get('name', '')!r} is not an image PIL can read ({err})") from err
    return image


def pipeline_app(pipe: Any, *, sources: Any = DEFAULT_SOURCES, targets: Any = DEFAULT_TARGETS, seed: int = 0,
                 scale: int = 2):
    """An ipywidgets front end for :class:`spokenstyle.pipeline.SpokenStylePipeline`.

    Pick a source (content) and a target (style) from a gallery of ShapeScenes renders, or
    upload your own pictures, press **Run**, and see every step: the source and target, the
    re-generated source (step 2), the sentence (step 3), F's picture and the composed picture
    (step 4), and the judge's and the critic's scores (step 5).

    The Run button calls Python, so the app needs a live kernel (Colab, Jupyter); in the static
    book use :func:`spokenstyle.viz.show_steps` on an output instead.

    Args:
        pipe: a :class:`~spokenstyle.pipeline.SpokenStylePipeline`.
        sources, targets: gallery entries, each anything the pipeline accepts
            (``"scene:SEED:STYLE"``, a path, a PIL image, ...).
        seed: the initial seed.
        scale: integer upscaling of the 64 px pictures on screen.

    Returns:
        an ``ipywidgets.VBox``; ``app.run()`` does what the button does and returns the
        pipeline's output (``app.output`` keeps the latest one).
    """
    def gallery(entries: Any, label: str):
        entries = list(entries)
        if not entries:
            raise ValueError(f"the {label} gallery is empty")
        pictures = [as_images(e, name=f"{label}[{i}]") for i, e in enumerate(entries)]
        names = [e if isinstance(e, str) else f"{label} {i + 1}" for i, e in enumerate(entries)]
        thumbs = [widgets.VBox([widgets.Image(value=to_png(p[0], scale=1), format="png"),
                                widgets.Label(f"{i + 1}")]) for i, p in enumerate(pictures)]
        choice = widgets.ToggleButtons(options=[(f"{i + 1}", i) for i in range(len(entries))], value=0,
                                       description=label, style={"button_width": "36px"})
        upload = widgets.FileUpload(accept="image/*", multiple=False, description=f"upload {label}")
        return pictures, names, choice, upload, widgets.VBox([widgets.HBox(thumbs), widgets.HBox([choice, upload])])

    src_pics, src_names, src_choice, src_upload, src_box = gallery(sources, "source")
    tgt_pics, tgt_names, tgt_choice, tgt_upload, tgt_box = gallery(targets, "target")
    seed_box = widgets.BoundedIntText(value=seed, min=0, max=2**31 - 1, description="seed")
    layout_box = widgets.Dropdown(options=["bubble", "band"], value="bubble", description="layout")
    button = widgets.Button(description="Run", button_style="primary", icon="play")
    blank = to_png(torch.ones(3, 64, 64), scale=scale)
    steps = {k: widgets.Image(value=blank, format="png") for k in ("source", "target", "regenerated", "fused")}
    composed = widgets.Image(value=to_png(torch.ones(3, 64, 64), scale=4), format="png")
    titles = {"source": "1. source (content)", "target": "1. target (style)", "regenerated": "2. re-generated",
              "fused": "4. F's picture"}
    row = widgets.HBox([widgets.VBox([widgets.Label(titles[k]), steps[k]]) for k in steps]
                       + [widgets.VBox([widgets.Label("4. composed"), composed])])
    report = widgets.HTML(value="<i>press Run</i>")
    status = widgets.HTML(value="")

    def current(pictures, choice, upload):
        uploaded = _uploaded_image(upload)
        return uploaded if uploaded is not None else pictures[choice.value]

    def run(*_: Any):
        status.value = "running…"
        try:
            out = pipe(current(src_pics, src_choice, src_upload), current(tgt_pics, tgt_choice, tgt_upload),
                       seed=int(seed_box.value), layout=layout_box.value)
        except (ValueError, TypeError) as err:
            status.value = f"<b style='color:#b00'>error:</b> {_html.escape(str(err))}"
            return None
        for key in ("source", "target", "regenerated", "fused"):
            steps[key].value = to_png(getattr(out, key)[0], scale=scale)
        composed.value = to_png(out.pictures[0])
        s = out.summary(0)
        report.value = (
            f"<p><b>2.</b> {_html.escape(s['step2'])}</p>"
            f"<p><b>3. sentence:</b> “{_html.escape(s['sentence'])}”</p>"
            f"<p><b>5.</b> judge: in style <i>{STYLES[int(out.target_style[0])]}</i> with probability "
            f"{s['style_score']:.2f} (reads <i>{s['fused_style']}</i>); critic T: spoken with probability "
            f"{s['spoken_score']:.2f}</p>"
            f"<p>content: source <i>{_html.escape(s['source_content'])}</i> → sentence "
            f"<i>{_html.escape(s['sentence_content'])}</i> → picture <i>{_html.escape(s['fused_content'])}</i></p>")
        status.value = ""
        app.output = out
        return out

    button.on_click(run)
    app = widgets.VBox([src_box, tgt_box, widgets.HBox([seed_box, layout_box, button]), status, row, report])
    app.run = run
    app.output = None
    app.controls = {"source": src_choice, "target": tgt_choice, "source_upload": src_upload,
                    "target_upload": tgt_upload, "seed": seed_box, "layout": layout_box, "button": button}
    return app
