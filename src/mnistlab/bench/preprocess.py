"""The preprocessing measurement of ``mnistlab bench``: ``to_mnist`` on people's images,
and ``mnistlab predict``'s cost per file.

Every row times the same function the CLI and the web app call, on images made
from real MNIST test digits the way users' images come: drawn on a browser canvas
(an opaque RGBA PNG, dark on white), photographed on grey, unevenly lit paper (RGB,
JPEG-decoded), or an MNIST digit itself.
"""

from __future__ import annotations

import io
import time

import numpy as np
from PIL import Image

from ..data.loader import MnistData
from .timing import median_time

__all__ = ["PREPROCESS_GOALS", "preprocess", "preprocess_markdown"]

PREPROCESS_GOALS = {"to_mnist_p50_ms": 1.0, "predict_ms_per_image": 2.0}
IMAGES = 20  # the rows cycle through this many digits


def _drawn(a: np.ndarray, side: int) -> Image.Image:
    """Dark ink on white, enlarged with a margin, as an opaque RGBA canvas saves it."""
    ink = Image.fromarray(255 - a).resize((side * 3 // 4,) * 2, Image.BILINEAR)
    canvas = Image.new("L", (side, side), 255)
    canvas.paste(ink, (side // 8, side // 8))
    return canvas.convert("RGBA")


def _photo(a: np.ndarray, side: int, rng) -> Image.Image:
    """Ink on grey paper lit from one side, with noise, JPEG-compressed, RGB."""
    ink = np.asarray(Image.fromarray(a).resize((side, side), Image.BICUBIC), np.float32) / 255
    light = 0.55 + 0.35 * np.linspace(0, 1, side, dtype=np.float32)[None, :]
    paper = light * (0.9 + 0.05 * rng.standard_normal((side, side), dtype=np.float32))
    grey = np.clip(paper * (1 - 0.75 * ink), 0, 1) * 255
    buf = io.BytesIO()
    Image.fromarray(grey.astype(np.uint8)).convert("RGB").save(buf, "JPEG", quality=85)
    return Image.open(io.BytesIO(buf.getvalue())).convert("RGB")


def _rows(digits: np.ndarray) -> list[tuple[str, int, list[Image.Image]]]:
    rng = np.random.default_rng(0)
    return [
        ("MNIST digit (L)", 28, [Image.fromarray(a) for a in digits]),
        ("drawn (RGBA canvas)", 280, [_drawn(a, 280) for a in digits]),
        ("photo (RGB, JPEG)", 280, [_photo(a, 280, rng) for a in digits]),
        ("drawn (RGBA canvas)", 512, [_drawn(a, 512) for a in digits]),
        ("photo (RGB, JPEG)", 512, [_photo(a, 512, rng) for a in digits]),
    ]


def _latencies_ms(fn, items: list, runs: int) -> list[float]:
    """Sorted milliseconds of ``runs`` calls of ``fn``, cycling through ``items``, after
    one untimed warm-up call on each."""
    for item in items:
        fn(item)
    out = []
    for i in range(runs):
        item = items[i % len(items)]
        t = time.perf_counter()
        fn(item)
        out.append(1000 * (time.perf_counter() - t))
    return sorted(out)


def preprocess(data: MnistData, budget) -> dict:
    """``to_mnist`` latency (p50, p99) per kind of image, and ``predict_files``'s cost
    per image over ``budget.predict_files`` PNG files (the model's load excluded)."""
    import tempfile
    from pathlib import Path

    import torch

    from ..models import create_model
    from ..serve.predict import Predictor, predict_files
    from ..serve.preprocess import open_image, to_mnist

    digits = data.test[0][:IMAGES, 0].cpu().numpy()
    rows = []
    for kind, side, images in _rows(digits):
        lat = _latencies_ms(to_mnist, images, budget.preprocess_runs)
        p50, p99 = lat[len(lat) // 2], lat[min(len(lat) - 1, int(0.99 * len(lat)))]
        rows.append({"image": kind, "side": side, "p50_ms": p50, "p99_ms": p99})

    torch.manual_seed(0)
    model = create_model("fast").eval()  # speed does not depend on the weights
    meta = model.meta

    @torch.inference_mode()
    def run(x: np.ndarray) -> np.ndarray:
        return model(torch.from_numpy(x)).numpy()

    predictor = Predictor(meta.name, list(meta.class_names), meta.mean, meta.std, run)
    n = budget.predict_files
    with tempfile.TemporaryDirectory() as tmp:
        files = []
        for i, a in enumerate(data.test[0][:n, 0].cpu().numpy()):
            files.append(str(Path(tmp) / f"{i:05d}.png"))
            _drawn(a, 280).save(files[-1])
        seconds = median_time(lambda: predict_files(predictor, files), budget.predict_repeats)
        reading = median_time(lambda: [open_image(f) for f in files], budget.predict_repeats)
    return {
        "runs": budget.preprocess_runs,
        "images": IMAGES,
        "rows": rows,
        "predict": {
            "files": n,
            "repeats": budget.predict_repeats,
            "seconds": seconds,
            "ms_per_image": 1000 * seconds / n,
            "read_ms_per_image": 1000 * reading / n,
        },
        "goals": PREPROCESS_GOALS,
    }


def preprocess_markdown(p: dict) -> list[str]:
    goal = p["goals"]
    pred = p["predict"]
    lines = [
        "## 6. Preprocessing (`to_mnist`)",
        "",
        f"*Measured {p['measured']}.*",
        "",
        f"`to_mnist` on people's images made from {p['images']} MNIST test digits: "
        f"{p['runs']} calls per row, cycling through the digits, after a warm-up call on "
        f"each. Goal: p50 at most {goal['to_mnist_p50_ms']:g} ms up to 512x512.",
        "",
        "| image | size | p50 | p99 |",
        "|---|---:|---:|---:|",
    ]
    for r in p["rows"]:
        lines.append(
            f"| {r['image']} | {r['side']}x{r['side']} | {r['p50_ms']:.2f} ms "
            f"| {r['p99_ms']:.2f} ms |"
        )
    lines += [
        "",
        f"**`mnistlab predict`: {pred['ms_per_image']:.2f} ms per image** over {pred['files']:,} "
        f"PNG files (the 280x280 drawn digits, RGBA; median of {pred['repeats']} runs of "
        "`predict_files`: read, `to_mnist`, one batch through an untrained `fast`; the "
        "model's load and Python's start-up excluded), of which reading the file (Pillow's "
        f"PNG decoding) is {pred['read_ms_per_image']:.2f} ms. Goal: at most "
        f"{goal['predict_ms_per_image']:g} ms.",
        "",
    ]
    return lines
