"""The request body's image, found the way ``image_bytes`` finds it. A data URL's base64
is decoded in pieces (one call on 2 MB held the GIL for 25-40 ms, stalling the event
loop from the worker thread): the pieces must give what one call gives."""

from __future__ import annotations

import base64
import json
import random

import pytest

from mnistlab.serve.web import body
from mnistlab.serve.web.body import ApiError, image_bytes


def _json(payload: str) -> bytes:
    return json.dumps({"image": "data:image/png;base64," + payload}).encode()


@pytest.mark.parametrize("size", [0, 1, 2, 3, 47, 48, 49, 3 * body.B64_CHUNK // 4 + 5, 1_500_000])
def test_a_data_url_decodes_in_pieces_to_what_one_call_gives(size):
    data = random.Random(size).randbytes(size)
    payload = base64.b64encode(data).decode()
    assert image_bytes("application/json", _json(payload)) == data
    assert body._b64decode(payload) == base64.b64decode(payload, validate=True)


@pytest.mark.parametrize(
    "payload",
    ["QQ==QUJD", "QUJD=QUJD", "QUJ*", "QUJD\nQUJD", "QQ=", "Q"],
    ids=["padding-then-data", "padding-inside", "bad-character", "newline", "short-pad", "one"],
)
def test_malformed_base64_is_refused_in_one_line(payload, monkeypatch):
    monkeypatch.setattr(body, "B64_CHUNK", 4)  # every payload crosses a piece boundary
    with pytest.raises(ApiError) as e:
        image_bytes("application/json", _json(payload))
    assert str(e.value) == body.JSON_EXPECTED
