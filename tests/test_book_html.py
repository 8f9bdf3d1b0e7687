"""Checks of the built book (``make test`` runs them after ``jupyter-book build``).

The browser checks open built pages in headless Chromium, served from localhost, and check in
the rendered DOM that a widget was drawn and that formulas were typeset, by the JavaScript the
book serves itself (no CDN; this machine is offline, so a CDN script would simply not load).
"""

from __future__ import annotations

import functools
import http.server
import os
import re
import shutil
import subprocess
import threading
from pathlib import Path

import pytest
from PIL import Image

pytestmark = pytest.mark.book

ROOT = Path(__file__).resolve().parents[1]
HTML = ROOT / "_build" / "html"
WIDGET_MIME = "application/vnd.jupyter.widget-view+json"
CDN_HOSTS = ("cdn.jsdelivr.net", "unpkg.com", "cdnjs.cloudflare.com")


@pytest.fixture(scope="module")
def built() -> Path:
    if not (HTML / "index.html").exists():
        pytest.fail("the book is not built: run `make book` (make test builds it before these checks)")
    return HTML


def widget_pages(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*.html") if WIDGET_MIME in p.read_text(errors="replace"))


def chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


@pytest.fixture(scope="module")
def server(built):
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(built))
    handler.log_message = lambda *args: None
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


def test_widget_javascript_is_served_by_the_book(built):
    pages = widget_pages(built)
    assert pages, "no built page holds a widget; chapter 1's style switcher should"
    assert (built / "_static" / "_vendor" / "embed-amd.js").stat().st_size > 100_000
    assert (built / "_static" / "_vendor" / "require.js").is_file()
    for page in pages:
        html = page.read_text()
        assert "_vendor/embed-amd.js" in html and "_vendor/require.js" in html, page
        scripts = re.findall(r'<script[^>]*\bsrc="([^"]+)"', html)
        widget_code = [s for s in scripts if re.search(r"require|embed-amd|jupyter-widgets|html-manager", s)]
        assert len(widget_code) == 2, f"{page}: expected require.js and embed-amd.js, found {widget_code}"
        for src in widget_code:
            assert not any(host in src for host in CDN_HOSTS), f"{page} loads widget code from a CDN: {src}"


def browser_flags(tmp_path: Path) -> tuple[str, list[str]]:
    browser = chromium()
    if browser is None:
        message = "chromium is not installed (make's env step installs Debian's package when run as root)"
        if os.environ.get("CI"):
            pytest.fail(message + "; in CI this test must run")
        pytest.skip(message)
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-quic",
             "--no-first-run", "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage",
             f"--user-data-dir={tmp_path / 'profile'}", "--virtual-time-budget=20000"]
    return browser, flags


def rendered_dom(url: str, tmp_path: Path) -> str:
    browser, flags = browser_flags(tmp_path)
    dom = subprocess.run([browser, *flags, "--dump-dom", url], capture_output=True, text=True, timeout=120).stdout
    assert "</html>" in dom, "chromium returned no DOM"
    return dom


def test_formulas_are_typeset_by_the_books_mathjax(built, server, tmp_path):
    page = built / "chapters" / "03_gan_math.html"
    html = page.read_text()
    scripts = re.findall(r'<script[^>]*\bsrc="([^"]+)"', html)
    mathjax = [s for s in scripts if "mathjax" in s.lower()]
    assert mathjax and all("_vendor/mathjax/tex-chtml.js" in s for s in mathjax), mathjax
    assert (built / "_static" / "_vendor" / "mathjax" / "tex-chtml.js").stat().st_size > 500_000
    dom = rendered_dom(f"{server}/{page.relative_to(built).as_posix()}", tmp_path)
    typeset = re.findall(r"<mjx-container\b", dom)
    assert len(typeset) >= 10, f"only {len(typeset)} formulas were typeset on {page.name}"
    assert not re.search(r"<mjx-merror\b", dom), "MathJax reported an error in a formula"  # (not the CSS rule)


def test_a_widget_is_drawn_in_headless_chromium(built, server, tmp_path):
    browser, flags = browser_flags(tmp_path)
    page = widget_pages(built)[0].relative_to(built).as_posix()
    dom = rendered_dom(f"{server}/{page}", tmp_path)
    # the html-manager replaces each widget's script tag with rendered elements; match class
    # attributes of elements (the same names also occur in the widget CSS, which proves nothing)
    buttons = re.findall(r'class="[^"]*\bwidget-toggle-button\b[^"]*"', dom)
    images = re.findall(r'<img[^>]*class="[^"]*\bwidget-image\b', dom)
    assert len(buttons) >= 2, "the widget's toggle buttons were not drawn"
    assert images, "the widget's image was not drawn"
    shot = ROOT / "reports" / "local" / "widget.png"
    shot.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run([browser, *flags, "--window-size=1200,1600", f"--screenshot={shot}", f"{server}/{page}"],
                   capture_output=True, timeout=120)
    assert shot.is_file() and shot.stat().st_size > 10_000


def chapter_pages(root: Path) -> list[Path]:
    return sorted((root / "chapters").glob("*.html"))


def visible_text(html: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html)).replace("¶", "").replace("#", "").strip()


def test_headings_are_numbered_once(built):
    """Chapters number their headings by hand ("4. Training an image GAN", "2. Training on one
    style"); Jupyter Book must not number them again ("4.3. 2. ..."), neither in the page nor in
    the sidebar."""
    pages = chapter_pages(built)
    assert len(pages) >= 11
    double = re.compile(r"^\d+(\.\d+)*\.\s+\d+\.\s")
    for page in pages:
        html = page.read_text()
        titles = [visible_text(h) for h in re.findall(r"<h[12][^>]*>(.*?)</h[12]>", html, flags=re.S)]
        assert titles and re.match(r"^\d+\. \S", titles[0]), f"{page.name}: the title is not 'N. ...': {titles[:1]}"
        assert not [t for t in titles if double.match(t)], f"{page.name}: numbered twice: {titles}"
        nav = re.findall(r'<a class="reference internal" href="[^"#]*\.html">(.*?)</a>', html, flags=re.S)
        assert nav and not [t for t in map(visible_text, nav) if double.match(t)], f"{page.name}: sidebar {nav[:4]}"


def test_animation_buttons_are_drawn_with_inline_svg(built, tmp_path):
    """The player of every animation draws its buttons as inline SVG (no icon font, no Unicode
    symbols a browser's fonts may lack). Headless Chromium draws the nine icons of a built
    chapter's player on their own: each is drawn (dark pixels) and no two look the same (a
    missing glyph would draw the same empty box nine times)."""
    page = built / "chapters" / "03_gan_math.html"
    html = page.read_text()
    start = html.index('class="anim-buttons"')
    player = html[start: html.index('class="anim-state"', start)]  # the book's theme has icons of its own
    assert '<i class="fa' not in player and not re.search(r'href="https?://[^"]*font-?awesome', html)
    icons = list(dict.fromkeys(re.findall(r'<svg class="spokenstyle-icon".*?</svg>', player, flags=re.S)))
    assert len(icons) == 9, f"expected the player's 9 distinct icons, found {len(icons)}"
    large = [svg.replace('width="14" height="14"', 'width="40" height="40"') for svg in icons]
    cells = "".join(f'<div style="position:absolute;left:{10 + 50 * i}px;top:10px;width:40px;height:40px;'
                    f'color:#000">{svg}</div>' for i, svg in enumerate(large))
    test_page = tmp_path / "icons.html"
    test_page.write_text(f"<!doctype html><html><body style='margin:0;background:#fff'>{cells}</body></html>")
    browser, flags = browser_flags(tmp_path)
    shot = tmp_path / "icons.png"
    subprocess.run([browser, *flags, "--window-size=480,60", f"--screenshot={shot}", test_page.as_uri()],
                   capture_output=True, timeout=120)
    assert shot.is_file(), "chromium took no screenshot"
    pixels = Image.open(shot).convert("L")
    masks = []
    for i in range(9):
        cell = pixels.crop((10 + 50 * i, 10, 50 + 50 * i, 50))
        mask = tuple(v < 128 for v in cell.tobytes())
        assert sum(mask) >= 40, f"icon {i} was not drawn ({sum(mask)} dark pixels)"
        masks.append(mask)
    assert len(set(masks)) == 9, "two of the player's icons look the same"
