"""End to end: a real uvicorn on 127.0.0.1, Debian's Chromium, a mouse drawing digits."""

from __future__ import annotations

import math
import os
import socket
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.support.browser import chromium_page
from tests.support.processes import REPO
from tests.support.rejecting import with_threshold

pytestmark = pytest.mark.slow  # every test here needs the trained cnn

ARTEFACTS = REPO / "test-artifacts"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def _serving(run: Path):
    """``mnistlab serve RUN`` on a free port; yields its URL, stops it after."""
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "mnistlab", "serve", str(run), "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=os.environ.copy(),
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            urllib.request.urlopen(url + "/healthz", timeout=1)
            break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                pytest.fail(f"server did not start: {proc.stdout.read().decode()[-2000:]}")
            time.sleep(0.2)
    try:
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.fixture(scope="module")
def server(trained_run):
    with _serving(trained_run) as url:
        yield url


@pytest.fixture(scope="module")
def rejecting_server(trained_run, tmp_path_factory):
    """A server whose model turns away every image scoring below 1: whatever is drawn is
    "not a digit" (a threshold of 1 keeps only a certainty no scribble reaches)."""
    run = with_threshold(trained_run, tmp_path_factory.mktemp("reject-web") / "run", 1.0)
    with _serving(run) as url:
        yield url


def _stroke(page, points):
    box = page.locator("#pad").bounding_box()
    xy = [(box["x"] + fx * box["width"], box["y"] + fy * box["height"]) for fx, fy in points]
    page.mouse.move(*xy[0])
    page.mouse.down()
    for p in xy[1:]:
        page.mouse.move(*p)
    page.mouse.up()


def _answer(page):
    page.wait_for_function("document.getElementById('label').textContent !== '–'")
    page.wait_for_timeout(400)  # let a debounced request settle
    bars = page.eval_on_selector_all(".bar", "els => els.map(e => +e.dataset.p)")
    return page.locator("#label").inner_text(), bars


def _canvas_is_blank(page) -> bool:
    return page.evaluate(
        """() => { const c = document.getElementById('pad');
        const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
        for (let i = 0; i < d.length; i++) if (d[i] !== 255) return false; return true; }"""
    )


def _preview_peak(page) -> int:
    """The brightest pixel of the 28x28 preview, or -1 where it is not a loaded image
    (a broken-image icon with its alt text)."""
    return page.evaluate(
        """() => { const img = document.getElementById('input28');
        if (!img.complete || img.naturalWidth !== 28 || img.naturalHeight !== 28) return -1;
        const c = document.createElement('canvas'); c.width = c.height = 28;
        const g = c.getContext('2d'); g.drawImage(img, 0, 0);
        const d = g.getImageData(0, 0, 28, 28).data; let peak = 0;
        for (let i = 0; i < d.length; i += 4) peak = Math.max(peak, d[i], d[i + 1], d[i + 2]);
        return peak; }"""
    )


def test_draw_one_clear_draw_zero(server):
    ARTEFACTS.mkdir(exist_ok=True)
    with chromium_page(1100, 800) as page:
        page.goto(server + "/")
        page.wait_for_function("document.getElementById('model').textContent.includes('cnn')")
        assert _canvas_is_blank(page)
        assert _preview_peak(page) == 0  # an empty dark square before the first drawing

        _stroke(page, [(0.5, 0.15 + 0.7 * i / 20) for i in range(21)])  # a vertical "1"
        label, bars = _answer(page)
        assert label == "1" and max(range(10), key=bars.__getitem__) == 1
        assert page.locator(".bar.top").get_attribute("data-class") == "1"
        assert _preview_peak(page) > 128  # the digit's ink, white on black
        assert not _canvas_is_blank(page)

        page.click("#clear")
        assert _canvas_is_blank(page)
        page.wait_for_timeout(100)  # the empty image decodes
        assert _preview_peak(page) == 0
        assert page.locator("#label").inner_text() == "–"
        assert all(
            b == 0 for b in page.eval_on_selector_all(".bar", "e => e.map(x => +x.dataset.p)")
        )

        loop = [
            (0.5 + 0.2 * math.sin(t), 0.5 - 0.32 * math.cos(t))
            for t in [2 * math.pi * i / 40 for i in range(43)]
        ]
        _stroke(page, loop)  # a "0"
        label, bars = _answer(page)
        assert label == "0" and max(range(10), key=bars.__getitem__) == 0
        page.screenshot(path=str(ARTEFACTS / "web.png"))

        page.click("#undo")  # undo the only stroke: blank again
        assert _canvas_is_blank(page)
        page.wait_for_function("document.getElementById('label').textContent === '–'")


def test_a_thin_pen_is_read_and_given_mnist_like_strokes(server):
    import base64
    import io

    import numpy as np
    from PIL import Image

    from mnistlab.serve.strokes import MNIST_P10, MNIST_P90, stroke_width

    widths = {}
    with chromium_page(1100, 800) as page:
        page.goto(server + "/")
        page.wait_for_function("document.getElementById('model').textContent.includes('cnn')")
        for brush in ("2", "22", "32"):  # the slider's least, default and most
            page.click("#clear")
            page.locator("#brush").fill(brush)
            # a "7": the bar, then the long diagonal down to the left
            bar = [(0.3 + 0.4 * i / 10, 0.2) for i in range(11)]
            _stroke(page, bar + [(0.7 - 0.25 * i / 15, 0.2 + 0.65 * i / 15) for i in range(16)])
            label, _ = _answer(page)
            src = page.locator("#input28").get_attribute("src")
            digit = np.asarray(Image.open(io.BytesIO(base64.b64decode(src.split(",", 1)[1]))))
            widths[brush] = stroke_width(digit.astype(np.float32) / 255)
            assert label == "7", (brush, label)
    # a 2 px pen on the 280 px pad would be 0.2 px at 28x28 (thickened by to_mnist), the
    # widest brush 3.5 px: each reaches the network inside MNIST's p10-p90 stroke widths
    assert all(MNIST_P10 <= w <= MNIST_P90 for w in widths.values()), widths


def test_number_mode_reads_three_digits_with_boxes(server):
    with chromium_page(1100, 800) as page:
        page.goto(server + "/")
        page.wait_for_function("document.getElementById('model').textContent.includes('cnn')")
        page.check("#number")
        assert page.evaluate("document.getElementById('pad').width") == 840
        for i, digit in enumerate("101"):
            cx = (i + 0.5) / 3  # each digit in its own third of the wide pad
            if digit == "1":
                _stroke(page, [(cx, 0.15 + 0.7 * k / 20) for k in range(21)])
            else:
                _stroke(
                    page,
                    [
                        (cx + 0.065 * math.sin(t), 0.5 - 0.32 * math.cos(t))
                        for t in [2 * math.pi * k / 40 for k in range(43)]
                    ],
                )
        page.wait_for_function("document.querySelectorAll('#digits .digit').length === 3")
        page.wait_for_timeout(400)  # let the last request settle
        assert page.locator("#label").inner_text() == "101"
        labels = page.eval_on_selector_all("#digits .digit", "els => els.map(e => e.dataset.label)")
        assert labels == ["1", "0", "1"]
        assert not page.locator("#bars").is_visible() and page.locator("#digits").is_visible()
        # the boxes are drawn on the pad in red, one per digit
        red = page.evaluate(
            """() => { const c = document.getElementById('pad');
            const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
            let n = 0;
            for (let i = 0; i < d.length; i += 4) if (d[i] > 200 && d[i + 1] < 80) n++;
            return n; }"""
        )
        assert red > 300
        page.screenshot(path=str(ARTEFACTS / "web-number.png"))
        page.click("#clear")
        assert _canvas_is_blank(page) and page.locator("#label").inner_text() == "–"


def test_not_a_digit_is_said_plainly_and_the_bars_stay(rejecting_server):
    ARTEFACTS.mkdir(exist_ok=True)
    with chromium_page(1100, 800) as page:
        page.goto(rejecting_server + "/")
        page.wait_for_function("document.getElementById('model').textContent.includes('cnn')")
        zigzag = [(0.2 + 0.6 * (i % 2), 0.15 + 0.7 * i / 8) for i in range(9)]
        _stroke(page, zigzag)
        label, bars = _answer(page)
        assert label == "not a digit"
        conf = page.locator("#conf").inner_text()
        best = max(range(10), key=bars.__getitem__)
        assert conf.startswith("digit score ") and conf.endswith(f"best guess {best}")
        # the bars still show the probabilities, the best guess's marked but greyed
        assert sum(bars) == pytest.approx(1, abs=0.01)
        assert page.locator(".bar.top").get_attribute("data-class") == str(best)
        grey = page.eval_on_selector(".bar.top .fill", "e => getComputedStyle(e).backgroundColor")
        assert grey == "rgb(154, 164, 174)"
        page.screenshot(path=str(ARTEFACTS / "web-not-a-digit.png"))
        page.click("#clear")
        assert page.locator("#label").inner_text() == "–"
        assert "nodigit" not in (page.locator("#label").get_attribute("class") or "")


def test_phone_viewport_has_no_horizontal_scroll(server):
    with chromium_page(390, 844) as page:
        page.goto(server + "/")
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= 390
        pad = page.locator("#pad").bounding_box()
        assert pad["width"] > 250  # the pad fills the phone's width
        assert (
            page.evaluate("getComputedStyle(document.getElementById('pad')).touchAction") == "none"
        )
        page.screenshot(path=str(ARTEFACTS / "web-phone.png"), full_page=True)
