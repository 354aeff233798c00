"""Request bodies: read with a size cap and a deadline, then find the image inside.

``read_body`` is the only place the server waits on a client; ``image_bytes`` is a
pure function of the content type and the bytes, so it can be fuzzed on its own
(``fuzz/fuzz_body.py``). Multipart is parsed in memory by python-multipart
(Starlette's own parser), never spooled to disk: about 15 us for a drawn digit,
where the standard library's ``email`` parser took 0.7 ms.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json

from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.requests import ClientDisconnect

from ...errors import MnistlabError

__all__ = ["ApiError", "image_bytes", "read_body", "too_slow"]

FIELDS = (b"file", b"image")  # the multipart field names that carry the image
JSON_EXPECTED = 'expected JSON {"image": "data:image/png;base64,..."}'


class ApiError(MnistlabError):
    """A request the API refuses; ``kind`` picks the status code (``app.STATUS``)."""


async def read_body(request, limit: int, timeout: float) -> bytes:
    """The whole body: 413 as soon as it passes ``limit`` bytes (declared or streamed),
    408 when it has not all arrived ``timeout`` seconds after the headers did (a body
    that trickles in must not hold a worker's connection forever)."""
    declared = request.headers.get("content-length")
    too_large = f"request body over {limit // (1024 * 1024)} MB"
    # ASCII digits only ("²", a Latin-1 header byte, passes isdigit() but not int()), and
    # never over 18 of them (int() refuses 4,300 or more; 19 is over any limit anyway)
    if declared and declared.isascii() and declared.isdigit():
        value = declared.lstrip("0") or "0"
        if len(value) > 18 or int(value) > limit:
            raise ApiError(too_large, kind="too_large")
    chunks: list[bytes] = []

    async def collect() -> None:
        size = 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise ApiError(too_large, kind="too_large")
            chunks.append(chunk)

    try:
        await asyncio.wait_for(collect(), timeout)  # (asyncio.timeout needs Python 3.11)
    except (asyncio.TimeoutError, ClientDisconnect):
        # ClientDisconnect: gone, or cut off by the server's own deadline (server.py),
        # which has answered already; this answer then goes nowhere
        raise ApiError(too_slow(timeout), kind="timeout") from None
    return b"".join(chunks)


def too_slow(timeout: float) -> str:
    """The 408's message, the same from the app and from the server's protocol."""
    return f"request body took longer than {timeout:g} s to arrive; send it in one go"


def image_bytes(content_type: str, body: bytes) -> bytes:
    """The image inside a multipart upload (field ``file`` or ``image``), a JSON data
    URL or a raw ``image/*`` body; an ``ApiError`` for anything else."""
    kind, params = parse_options_header(content_type)
    if kind == b"multipart/form-data":
        return _multipart_image(params.get(b"boundary", b""), body)
    if kind == b"application/json":
        return _data_url_image(body)
    if kind.startswith(b"image/"):
        return body
    name = kind.decode("latin-1") or "none"
    raise ApiError(
        f"unsupported content type {name!r}; send multipart, JSON or an image",
        kind="unsupported_type",
    )


def _multipart_image(boundary: bytes, body: bytes) -> bytes:
    if not boundary or len(boundary) > 200:  # RFC 2046: 1 to 70 characters
        raise ApiError("multipart body without a usable boundary; let your client set it")
    found: list[bytes] = []
    part: dict = {}

    def on_part_begin() -> None:
        part.clear()
        part.update(field=b"", value=b"", name=None, data=[])

    def on_header_field(data: bytes, start: int, end: int) -> None:
        part["field"] += data[start:end]

    def on_header_value(data: bytes, start: int, end: int) -> None:
        part["value"] += data[start:end]

    def on_header_end() -> None:
        if part["field"].lower() == b"content-disposition":
            part["name"] = parse_options_header(part["value"])[1].get(b"name")
        part["field"] = part["value"] = b""

    def on_part_data(data: bytes, start: int, end: int) -> None:
        if part["name"] in FIELDS:
            part["data"].append(data[start:end])

    def on_part_end() -> None:
        if part["name"] in FIELDS and not found:
            found.append(b"".join(part["data"]))

    callbacks = {
        "on_part_begin": on_part_begin,
        "on_header_field": on_header_field,
        "on_header_value": on_header_value,
        "on_header_end": on_header_end,
        "on_part_data": on_part_data,
        "on_part_end": on_part_end,
    }
    try:
        parser = MultipartParser(boundary, callbacks)
        parser.write(body)
        parser.finalize()
    except MultipartParseError:
        raise ApiError("malformed multipart body") from None
    if not found:
        raise ApiError("multipart upload has no 'file' (or 'image') field")
    return found[0]


def _data_url_image(body: bytes) -> bytes:
    try:
        data = json.loads(body)
        url = data.get("image") if isinstance(data, dict) else None
        if not isinstance(url, str):
            raise ValueError
        header, _, payload = url.partition(",")
        if not header.startswith("data:image/") or ";base64" not in header:
            raise ValueError
        return _b64decode(payload)
    except (ValueError, binascii.Error, RecursionError):
        raise ApiError(JSON_EXPECTED) from None


B64_CHUNK = 64 * 1024  # base64 characters decoded per call (a multiple of 4)


def _b64decode(payload: str) -> bytes:
    """``base64.b64decode(payload, validate=True)`` in pieces: one call on 2 MB holds
    the GIL for 25-40 ms, stalling the event loop while a pool thread decodes; a piece
    takes well under 1 ms. Padding may only end the whole payload, as in one call."""
    end = payload.find("=")
    if end != -1 and payload[end:].strip("="):
        raise ValueError("padding inside the payload")
    return b"".join(
        base64.b64decode(payload[i : i + B64_CHUNK], validate=True)
        for i in range(0, len(payload), B64_CHUNK)
    )
