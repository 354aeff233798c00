"""Where one POST /api/predict spends its time, stage by stage, old way beside new.

    python benchmarks/serve_profile.py RUN [--repeats 500]

Each stage of the request path is timed in-process on 20 real MNIST test digits
drawn as 280x280 canvases (dark ink on white, RGBA PNG, as the drawing page sends
them) and posted as multipart: the body parse, the PNG decode, ``to_mnist``, the
model, the 28x28 PNG of ``input28`` and the JSON. Where the request path changed,
the old way is timed in the same run. What is left of a request's cost (HTTP
parsing, ASGI, FastAPI's routing) is the end-to-end figure of
``benchmarks/web_load.py`` minus these. Writes ``benchmarks/serve_profile.md``.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import statistics
import time
from email import policy
from email.parser import BytesParser
from pathlib import Path

import torch

from mnistlab.bench.preprocess import _drawn
from mnistlab.data import load_split
from mnistlab.serve.predict import load_predictor
from mnistlab.serve.preprocess import open_image, to_mnist
from mnistlab.serve.web.app import _png_data_url
from mnistlab.serve.web.body import image_bytes

ROOT = Path(__file__).resolve().parents[1]
BOUNDARY = "profile-boundary-0123456789"
CTYPE = f"multipart/form-data; boundary={BOUNDARY}"


def _multipart(png: bytes) -> bytes:
    head = (
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="d.png"\r\n'
        "Content-Type: image/png\r\n\r\n"
    )
    return head.encode() + png + f"\r\n--{BOUNDARY}--\r\n".encode()


def _email_multipart(body: bytes) -> bytes:
    """The parser the server used before: the standard library's email package."""
    msg = BytesParser(policy=policy.HTTP).parsebytes(
        f"Content-Type: {CTYPE}\r\n\r\n".encode("latin-1") + body
    )
    for part in msg.iter_parts():
        if part.get_param("name", header="content-disposition") in ("file", "image"):
            return part.get_payload(decode=True)
    raise ValueError("no file")


def _p50_ms(fn, items: list, repeats: int) -> float:
    for item in items[:5]:  # warm caches and lazy imports
        fn(item)
    times = []
    for k in range(repeats):
        item = items[k % len(items)]
        t = time.perf_counter()
        fn(item)
        times.append(time.perf_counter() - t)
    return 1000 * statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("run")
    ap.add_argument("--repeats", type=int, default=500)
    a = ap.parse_args()
    torch.set_num_threads(1)  # one worker per core: each worker's model has one thread

    x, _ = load_split("mnist", "test")
    pngs = []
    for i in range(20):
        buf = io.BytesIO()
        _drawn(x[i, 0].numpy(), 280).save(buf, "PNG")
        pngs.append(buf.getvalue())
    bodies = [_multipart(p) for p in pngs]
    images = [open_image(p, "image") for p in pngs]
    digits = [to_mnist(im, "image")[None] for im in images]
    ort = load_predictor(a.run, backend="onnx", threads=1)
    pt = load_predictor(a.run, backend="torch")
    answer = {
        "label": "7",
        "confidence": 0.92,
        "probabilities": [0.01] * 10,
        "classes": [str(i) for i in range(10)],
        "input28": _png_data_url(digits[0][0]),
    }

    from fastapi.encoders import jsonable_encoder

    r = a.repeats
    rows = [  # (stage, old way, old ms, new way, new ms)
        (
            "multipart parse",
            "email.parser",
            _p50_ms(_email_multipart, bodies, r),
            "python-multipart",
            _p50_ms(lambda b: image_bytes(CTYPE, b), bodies, r),
        ),
        ("PNG decode (Pillow)", "", None, "open_image", _p50_ms(lambda p: open_image(p), pngs, r)),
        ("to_mnist", "", None, "to_mnist", _p50_ms(to_mnist, images, r)),
        ("model, one digit", "torch", _p50_ms(pt.probs, digits, r), "onnxruntime", _p50_ms(ort.probs, digits, r)),
        ("input28 PNG", "", None, "Pillow + base64", _p50_ms(lambda d: _png_data_url(d[0]), digits, r)),
        (
            "JSON answer",
            "FastAPI's jsonable_encoder + json",
            _p50_ms(lambda o: json.dumps(jsonable_encoder(o)).encode(), [answer], r),
            "json.dumps",
            _p50_ms(lambda o: json.dumps(o).encode(), [answer], r),
        ),
    ]  # fmt: skip
    old = sum(row[2] if row[2] is not None else row[4] for row in rows)
    new = sum(row[4] for row in rows)
    info = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    names = [ln.split(":", 1)[1].strip() for ln in info.splitlines() if ln.startswith("model name")]
    cpu = names[0] if names else platform.processor() or platform.machine()
    lines = [
        "# Where a request's time goes",
        "",
        f"`python benchmarks/serve_profile.py RUN` on {time.strftime('%Y-%m-%d')}, {cpu}, "
        f"{os.cpu_count()} cores, one thread; model `{ort.name}`. Median of {r} calls per stage, "
        "over 20 real MNIST test digits drawn as 280x280 RGBA canvases and posted as multipart.",
        "",
        "| stage | before | ms | now | ms |",
        "|---|---|---:|---|---:|",
    ]
    for stage, old_way, old_ms, new_way, new_ms in rows:
        before = f"{old_ms:.3f}" if old_ms is not None else "same"
        lines.append(f"| {stage} | {old_way or new_way} | {before} | {new_way} | {new_ms:.3f} |")
    lines.append(f"| **sum of the stages** | | **{old:.2f}** | | **{new:.2f}** |")
    text = "\n".join(lines) + "\n"
    print(text)
    out = ROOT / "benchmarks" / "serve_profile.md"
    tmp = out.with_suffix(".md.tmp")
    tmp.write_text(text)
    os.replace(tmp, out)


if __name__ == "__main__":
    main()
