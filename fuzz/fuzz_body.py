"""Fuzz the API's body parsing: ``image_bytes(content_type, body)``.

    python fuzz/fuzz_body.py -max_total_time=60     # libFuzzer flags; see docs/reliability.md

An input is a content type and a body: its bytes up to the first newline are the
``Content-Type`` header (decoded as Latin-1, as the server decodes headers, and a
header value never holds a newline), the rest is the body. A plain split rather than
atheris's FuzzedDataProvider, so that the tests can replay inputs without atheris
and a crash file reads as the request it was. python-multipart's parser (pure
Python) is instrumented with mnistlab.
"""

from __future__ import annotations

import base64
import json
import struct
import zlib

from _harness import expect_own_error, instrumented, main

with instrumented(__name__, "mnistlab", "python_multipart"):
    from mnistlab.serve.web.body import ApiError, image_bytes


def split(data: bytes) -> tuple[str, bytes]:
    """(content type, body) of a fuzz input."""
    head, _, body = data.partition(b"\n")
    return head.decode("latin-1"), body


def check(data: bytes) -> None:
    """Find the image in the request; only an ``ApiError`` may escape."""
    content_type, body = split(data)
    try:
        image = image_bytes(content_type, body)
    except ApiError as e:
        expect_own_error(e)
    else:
        assert isinstance(image, bytes), type(image)


def _png() -> bytes:
    """A 2x2 grey PNG, written by hand: the body harness need not load Pillow."""

    def chunk(kind: bytes, payload: bytes) -> bytes:
        body = kind + payload
        return struct.pack(">I", len(payload)) + body + struct.pack(">I", zlib.crc32(body))

    rows = zlib.compress(b"\x00\x00\xff\x00\xff\x00")
    header = struct.pack(">IIBBBBB", 2, 2, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", rows) + chunk(b"IEND", b"")
    )


def _multipart(boundary: bytes, parts: list[tuple[bytes, bytes]]) -> bytes:
    out = b""
    for headers, data in parts:
        out += b"--" + boundary + b"\r\n" + headers + b"\r\n\r\n" + data + b"\r\n"
    return out + b"--" + boundary + b"--\r\n"


def seeds() -> list[bytes]:
    """Requests the API accepts (multipart as browsers and curl send it, a JSON data
    URL as the drawing page sends it, a raw image) and a few it refuses."""
    png = _png()
    disposition = b'Content-Disposition: form-data; name="%s"'
    file_part = (disposition % b"file" + b'; filename="d.png"\r\nContent-Type: image/png', png)
    requests = [
        ("multipart/form-data; boundary=XyZ", _multipart(b"XyZ", [file_part])),
        (
            'multipart/form-data; boundary="----WebKitFormBoundary7MA4YWxk"',
            _multipart(
                b"----WebKitFormBoundary7MA4YWxk",
                [(disposition % b"note", b"hello"), (disposition % b"image", png)],
            ),
        ),
        ("multipart/form-data; boundary=b; charset=utf-8", _multipart(b"b", [])),
        ("multipart/form-data", png),
        (
            "application/json",
            json.dumps({"image": "data:image/png;base64," + base64.b64encode(png).decode()}),
        ),
        ("application/json; charset=utf-8", '{"image": "data:text/plain;base64,aGk="}'),
        ("application/json", '[{"image": 1}]'),
        ("image/png", png),
        ("IMAGE/JPEG", b"\xff\xd8\xff\xe0"),
        ("text/plain", b"hello"),
        ("", b""),
    ]
    return [
        ct.encode("latin-1") + b"\n" + (b if isinstance(b, bytes) else b.encode())
        for ct, b in requests
    ]


if __name__ == "__main__":
    main("body", check, seeds)
