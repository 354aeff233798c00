"""The server-side cost of hostile images: a few kB of PNG that must not cost seconds.

    python benchmarks/adversarial.py RUN [--repeat 5] [--label after] [--cli-widths 10000 ...]

Each image is built here, saved as PNG (its size in bytes is reported) and given to
what the web app's worker thread does with a PNG body, the model loaded once as the
server loads it (``backend="auto"``: ONNX Runtime on the CPU): ``_predict_json`` for
``POST /api/predict`` (decode with the server's side limit, ``to_mnist``, the model,
the JSON with the 28x28 PNG) and ``_read_json`` for ``POST /api/read`` (decode,
``read_number`` with the server's CPU budget per request). Every image fits the server's
``MAX_SIDE`` (4096 px a side). The images: combs (1-px bars at a 2-px pitch; "flat
comb": tall bars with flat ones between, the flat-piece merge's worst case), speck
fields (random pixels, a 2-px grid: the most components a mask can have, staggered
dominoes that overlap in x), long thin rows (lines, dashes, dots), checkerboards,
concentric frames and wavy lines (wide groups the segmentation tries to cut), a row of
300 tiny printed digits, and ``fuzz/fuzz_number.py``'s slowest find. ``--cli-widths``: flat combs 160 px high, wider than
the server takes, through what ``mnistlab predict RUN IMG --number`` does.

For each image and endpoint: the median and worst CPU time (``time.process_time``,
all threads) and wall time over ``--repeat`` calls, and the answer (the label, the
number, or the error kind). Results go to ``benchmarks/adversarial.json`` under
``--label`` (so a run before a change and one after sit side by side) and the table
to ``benchmarks/adversarial.md``.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from mnistlab.errors import MnistlabError
from mnistlab.serve.numbers import read_number
from mnistlab.serve.predict import load_predictor
from mnistlab.serve.preprocess import open_image
from mnistlab.serve.web.app import _predict_json, _read_json

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "adversarial"
GOAL_MS = 50.0  # the goal: the worst request's CPU time
BUDGET_S = 20.0  # stop repeating an image once its calls took this long


def comb(w: int, h: int = 160, flat: bool = False) -> Image.Image:
    """Dark 1-px bars on white at a 2-px pitch; ``flat``: every other bar an eighth as tall."""
    a = np.full((h, w), 255, np.uint8)
    if flat:
        a[:, ::4] = 0
        a[h // 2 - h // 16 : h // 2 + h // 16, 2::4] = 0
    else:
        a[:, ::2] = 0
    return Image.fromarray(a)


def specks(w: int, h: int, density: float, seed: int = 0) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(np.where(rng.random((h, w)) < density, 0, 255).astype(np.uint8))


def speck_grid(w: int, h: int) -> Image.Image:
    """2-px specks on every other row, a pixel apart: about ``w * h / 6`` components,
    none touching (a lone pixel would not count as ink at all)."""
    a = np.full((h, w), 255, np.uint8)
    a[::2, 0::3] = 0
    a[::2, 1::3] = 0
    return Image.fromarray(a)


def dominoes(w: int, h: int) -> Image.Image:
    """2-px dominoes on every other row, each shifted a pixel: apart, yet all overlapping
    in x, so none is far enough from the others to count as a digit of its own."""
    a = np.full((h, w), 255, np.uint8)
    for y in range(0, h, 2):
        a[y, (y // 2) % 2 :: 3] = 0
        a[y, (y // 2) % 2 + 1 :: 3] = 0
    return Image.fromarray(a)


def line(w: int, h: int, thick: int, dash: int = 0, gap: int = 0) -> Image.Image:
    a = np.full((h, w), 255, np.uint8)
    y = (h - thick) // 2
    if dash:
        cols = np.arange(w) % (dash + gap) < dash
        a[y : y + thick, cols] = 0
    else:
        a[y : y + thick] = 0
    return Image.fromarray(a)


def checker(w: int, h: int, square: int) -> Image.Image:
    yy, xx = np.mgrid[:h, :w]
    return Image.fromarray(np.where((yy // square + xx // square) % 2, 0, 255).astype(np.uint8))


def frames(w: int, h: int, count: int = 40) -> Image.Image:
    """Concentric rectangles 2 px apart: every one overlaps the next in x and in y."""
    img = Image.new("L", (w, h), 255)
    draw = ImageDraw.Draw(img)
    for i in range(count):
        draw.rectangle((2 * i, 2 * i, w - 1 - 2 * i, h - 1 - 2 * i), outline=0)
    return img


def waves(w: int = 4096, h: int = 40, groups: int = 30) -> Image.Image:
    """Wavy lines side by side, each much wider than high (tests/serve/test_numbers.py)."""
    img = Image.new("L", (w, h), 0)
    draw = ImageDraw.Draw(img)
    span = w // groups
    for g in range(groups):
        xs = range(g * span + 2, (g + 1) * span - 2)
        draw.line([(x, h / 2 + h / 3 * np.sin(x / 5)) for x in xs], fill=255, width=2)
    return img


def tiny_digits(count: int = 300) -> Image.Image:
    """``count`` digits in Pillow's built-in bitmap font (about 11 px high) in one row."""
    text = "".join(str(i % 10) for i in range(count))
    font = ImageFont.load_default()
    _, _, x1, y1 = ImageDraw.Draw(Image.new("L", (1, 1))).textbbox((0, 0), text, font=font)
    img = Image.new("L", (min(4096, x1 + 8), y1 + 8), 255)
    ImageDraw.Draw(img).text((4, 4), text, fill=0, font=font)
    return img


def cases() -> list[tuple[str, Image.Image]]:
    out = [(f"comb {w}x160", comb(w)) for w in (1024, 4096)]
    out += [(f"flat comb {w}x160", comb(w, flat=True)) for w in (512, 1024, 2048, 4096)]
    out += [("comb 4096x4096", comb(4096, 4096)), ("flat comb 4096x4096", comb(4096, 4096, True))]
    out += [(f"specks {d:.0%} 4096x160", specks(4096, 160, d)) for d in (0.01, 0.1, 0.3)]
    out += [("specks 10% 1024x1024", specks(1024, 1024, 0.1))]
    out += [("speck grid 4096x160", speck_grid(4096, 160))]
    out += [("speck grid 160x4096", speck_grid(160, 4096))]
    out += [("dominoes 160x4096", dominoes(160, 4096))]
    out += [("line 4096x1", line(4096, 1, 1)), ("line 4096x16", line(4096, 16, 1))]
    out += [("dashes 4096x16", line(4096, 16, 2, dash=3, gap=2))]
    out += [("dots 4096x16", line(4096, 16, 1, dash=1, gap=1))]
    out += [("checkerboard 1px 4096x160", checker(4096, 160, 1))]
    out += [("checkerboard 1px 1024x1024", checker(1024, 1024, 1))]
    out += [("checkerboard 8px 4096x4096", checker(4096, 4096, 8))]
    out += [("frames 4096x160", frames(4096, 160)), ("waves 4096x40", waves())]
    out += [("tiny digits x300", tiny_digits())]
    # fuzz_number's slowest find in 60 s: 7 bytes -> a 1952x10 grid of bars and specks that
    # one group spans, cut and cut again (13 digits drawn a cut) up to the digit limit
    sys.path.insert(0, str(ROOT / "fuzz"))
    from fuzz_number import image as recipe

    out += [("fuzz grid 1952x10", recipe(bytes.fromhex("279fd13f85f017")))]
    return out


def png(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "PNG", optimize=True)
    return buf.getvalue()


def _answer(value) -> str:
    if isinstance(value, dict) and "label" in value:  # /api/predict's JSON
        return f"label {value['label']}"
    number = value["number"] if isinstance(value, dict) else value.number
    return f"number of {len(number)}"


def measure(fn, predictor, data: bytes, repeat: int) -> dict:
    cpu, wall, answer = [], [], ""
    for _ in range(repeat):
        t0, c0 = time.perf_counter(), time.process_time()
        try:
            answer = _answer(fn(predictor, data))
        except MnistlabError as e:
            answer = e.kind or "error"
        cpu.append(time.process_time() - c0)
        wall.append(time.perf_counter() - t0)
        if sum(wall) > BUDGET_S:
            break
    ms = [1000 * statistics.median(cpu), 1000 * max(cpu)]
    return {"cpu_ms": ms, "wall_ms": [1000 * statistics.median(wall), 1000 * max(wall)]} | {
        "answer": answer,
        "calls": len(cpu),
    }


def _classify(predictor, data: bytes):
    """``POST /api/predict``'s whole answer for a PNG body, as the app's worker thread
    makes it: decode (the server's side limit), the digit, the model, the JSON."""
    return _predict_json(predictor, "image/png", data, True)


def _read_number(predictor, data: bytes):
    """``POST /api/read``'s whole answer for a PNG body (its CPU budget included)."""
    return _read_json(predictor, "image/png", data)


def _cli(predictor, data: bytes):
    """What ``mnistlab predict RUN IMG --number`` does with one file (no side limit)."""
    return read_number(predictor, open_image(data, "image"), "image")


def run(run_dir: str, repeat: int, cli_widths: list[int]) -> list[dict]:
    predictor = load_predictor(run_dir, backend="auto")
    rows = []
    todo = [(name, img, {"predict": _classify, "read": _read_number}) for name, img in cases()]
    todo += [(f"flat comb {w}x160 (CLI)", comb(w, flat=True), {"cli": _cli}) for w in cli_widths]
    for name, img, fns in todo:
        data = png(img)
        for endpoint, fn in fns.items():
            n = 1 if endpoint == "cli" else repeat
            row = {"image": name, "png_bytes": len(data), "endpoint": endpoint}
            rows.append(row | measure(fn, predictor, data, n))
            r = rows[-1]
            print(
                f"{name:28} {len(data):>7,} B  {endpoint:7} cpu {r['cpu_ms'][0]:9.1f} / "
                f"{r['cpu_ms'][1]:9.1f} ms  wall {r['wall_ms'][1]:9.1f} ms  {r['answer']}",
                flush=True,
            )
    return rows


def table(results: dict) -> str:
    labels = list(results)
    last = results[labels[-1]]["rows"]
    before = {(r["image"], r["endpoint"]): r for r in results[labels[0]]["rows"]}
    head = (
        "| image | PNG bytes | endpoint | CPU median ms | CPU worst ms | wall worst ms | answer |"
    )
    extra = f" {labels[0]}: CPU worst ms |" if len(labels) > 1 else ""
    lines = [head + extra, "|---|---:|---|---:|---:|---:|---|" + ("---:|" if extra else "")]
    for r in last:
        b = before.get((r["image"], r["endpoint"]))
        old = (f" {b['cpu_ms'][1]:,.1f} |" if b else " - |") if extra else ""
        lines.append(
            f"| {r['image']} | {r['png_bytes']:,} | {r['endpoint']} | {r['cpu_ms'][0]:,.1f} "
            f"| {r['cpu_ms'][1]:,.1f} | {r['wall_ms'][1]:,.1f} | {r['answer']} |{old}"
        )
    return "\n".join(lines)


def worst(rows: list[dict], server_only: bool = True) -> dict:
    pool = [r for r in rows if not server_only or r["endpoint"] != "cli"]
    return max(pool, key=lambda r: r["cpu_ms"][1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--label", default="after", help="the key these results go under")
    ap.add_argument("--cli-widths", type=int, nargs="*", default=[10_000, 40_000, 100_000])
    args = ap.parse_args()
    rows = run(args.run, args.repeat, args.cli_widths)
    path = OUT.with_suffix(".json")
    results = json.loads(path.read_text()) if path.exists() else {}
    results[args.label] = {
        "run": args.run,
        "repeat": args.repeat,
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
        "rows": rows,
    }
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(results, indent=1) + "\n")
    os.replace(tmp, path)
    w = worst(rows)
    summary = (
        f"Worst server-side request ({args.label}): {w['image']} on /api/{w['endpoint']}, "
        f"{w['cpu_ms'][1]:,.1f} ms of CPU (goal: {GOAL_MS:.0f} ms)."
    )
    print(summary)
    labels = ", ".join(results)
    text = f"# Hostile images: server-side cost per request\n\nRuns: {labels}.\n\n"
    for label, res in results.items():
        w = worst(res["rows"])
        text += (
            f"- {label}: worst {w['image']} /api/{w['endpoint']}, {w['cpu_ms'][1]:,.1f} ms CPU\n"
        )
    md = OUT.with_suffix(".md")
    tmp = md.with_suffix(".md.tmp")
    tmp.write_text(text + "\n" + table(results) + "\n")
    os.replace(tmp, md)


if __name__ == "__main__":
    main()
