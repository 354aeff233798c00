"""Opening a user's image (``serve/decode.py``): what cannot be read is said for what it is
(a link loop, a file without permission, a truncated or corrupt image), never a traceback;
the exact files the fuzzers found among them."""

from __future__ import annotations

import os

import pytest
from PIL import features

from mnistlab.serve.preprocess import PreprocessError, load_digit, open_image
from tests.support import FUZZ_INPUTS
from tests.support.images import stroke_png


def test_a_symlink_loop_is_not_called_corrupt(tmp_path):
    loop = tmp_path / "loop.png"
    loop.symlink_to(loop)
    with pytest.raises(PreprocessError, match="symbolic link loop") as info:
        load_digit(loop)
    assert "corrupt" not in str(info.value) and info.value.kind == "unreadable"


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any file")
def test_an_unreadable_image_is_not_called_corrupt(tmp_path):
    img = stroke_png(tmp_path / "secret.png")
    img.chmod(0)
    with pytest.raises(PreprocessError, match="permission denied") as info:
        load_digit(img)
    assert "corrupt" not in str(info.value)


def test_a_truncated_image_is_still_called_corrupt(tmp_path):
    img = stroke_png(tmp_path / "t.png")
    img.write_bytes(img.read_bytes()[:200])
    with pytest.raises(PreprocessError, match="corrupt or truncated"):
        load_digit(img)


@pytest.mark.skipif(not features.check("avif"), reason="this Pillow reads no AVIF")
def test_an_avif_the_decoder_rejects_is_corrupt():
    # fuzz_image: libavif's "Not implemented" came out of Image.open as RuntimeError
    data = (FUZZ_INPUTS / "avif-decoder-runtimeerror.avif").read_bytes()
    with pytest.raises(PreprocessError, match="corrupt or truncated image") as e:
        open_image(data, "photo.avif")
    assert e.value.kind == "corrupt"


def test_a_jpeg_with_corrupt_exif_is_corrupt_not_a_traceback(tmp_path):
    # fuzz_app: the EXIF block's TIFF header is wrong; ImageOps.exif_transpose ran after
    # open_image's error handling and let SyntaxError out (the web app answered 500)
    data = (FUZZ_INPUTS / "jpeg-corrupt-exif.jpg").read_bytes()
    with pytest.raises(PreprocessError, match="corrupt") as e:
        open_image(data, "photo.jpg")
    assert e.value.kind == "corrupt" and "\n" not in str(e.value)
    path = tmp_path / "photo.jpg"
    path.write_bytes(data)
    with pytest.raises(PreprocessError, match=r"photo\.jpg: corrupt"):
        load_digit(path)
