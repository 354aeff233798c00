"""Opening an image file or upload: every format Pillow reads, fully decoded, upright
(EXIF orientation), with one-line errors that say what is wrong with the file.

Split from ``preprocess`` (which re-exports these names): decoding is about files and
bytes, preprocessing about ink.
"""

from __future__ import annotations

import errno
import io
import os
import stat
import warnings

from PIL import Image, ImageOps, UnidentifiedImageError

from ..errors import MnistlabError

__all__ = ["ANIMATED", "MAX_PIXELS", "PreprocessError", "no_ink", "open_image"]

MAX_PIXELS = 4096 * 4096  # larger images are refused (decompression-bomb guard)
ANIMATED = "mnistlab_animated"  # open_image's note in ``img.info``: only frame 1 is read
_ORIENTATION = 0x0112  # the EXIF tag


class PreprocessError(MnistlabError):
    """The image cannot be turned into a digit; the message says why."""


def no_ink(img: Image.Image, name: str, why: str = "") -> PreprocessError:
    """ "No ink found", saying so where the image is an animation of which only the
    first frame is read (a GIF whose first frame is blank)."""
    message = f"{name}: no ink found{f' ({why})' if why else ''}"
    if img.info.get(ANIMATED):  # open_image's note: asking the file again could fail
        message += (
            " in the first frame (an animated image: only the first frame is read);"
            " save the frame with the digit on its own"
        )
    return PreprocessError(message, kind="no_ink")


def open_image(source: str | os.PathLike | bytes, name: str | None = None) -> Image.Image:
    """Open and fully decode an image from a path or bytes, with EXIF orientation applied.
    A path must be a regular file (a FIFO would block); unreadable is not corrupt."""
    label = name or (str(source) if not isinstance(source, bytes) else "image")
    data = source if isinstance(source, bytes) else None
    try:
        if data is None:
            _check_regular(source, label)
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data) if data is not None else source)
            w, h = img.size
            if w * h > MAX_PIXELS:
                raise PreprocessError(
                    f"{label}: {w}x{h} is over the limit of {MAX_PIXELS:,} pixels; scale it down",
                    kind="too_large",
                )
            img.load()  # decodes it all (the first frame of an animation)
            # counting an animation's frames would read them all: 3 s for a 2 MB GIF
            animated = bool(getattr(img, "is_animated", False))
            if animated or img.getexif().get(_ORIENTATION, 1) != 1:
                # turns it upright, as a copy, which lets an animation's file go (and
                # loses what says it is one: noted in its info)
                img = ImageOps.exif_transpose(img)
            if animated:
                img.info[ANIMATED] = True
    except FileNotFoundError:
        raise PreprocessError(f"{label}: file not found", kind="not_found") from None
    except IsADirectoryError:
        raise PreprocessError(f"{label}: is a folder, not an image", kind="not_a_file") from None
    except PermissionError:
        raise PreprocessError(
            f"{label}: permission denied; make the file readable (chmod u+r)", kind="unreadable"
        ) from None
    except UnidentifiedImageError:
        raise PreprocessError(f"{label}: not an image Pillow can read", kind="not_image") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise PreprocessError(
            f"{label}: too many pixels (decompression-bomb guard)", kind="too_large"
        ) from None
    except (OSError, SyntaxError, ValueError, RuntimeError) as e:
        if isinstance(e, OSError) and e.errno is not None:  # the file system's, not the decoder's
            raise _read_error(label, e) from None
        raise PreprocessError(
            f"{label}: corrupt or truncated image ({e})", kind="corrupt"
        ) from None
    return img


def _check_regular(path: str | os.PathLike, label: str) -> None:
    """Refuse what is not a regular file (after links) before opening it."""
    mode = os.stat(path).st_mode
    if stat.S_ISDIR(mode):
        raise IsADirectoryError(errno.EISDIR, "is a folder", str(path))
    if not stat.S_ISREG(mode):
        what = "a FIFO" if stat.S_ISFIFO(mode) else "a device or socket"
        raise PreprocessError(
            f"{label}: {what}, not an image file; pass image files", kind="not_a_file"
        )


def _read_error(label: str, e: OSError) -> PreprocessError:
    if e.errno == errno.ELOOP:
        why = "a symbolic link loop; point the link at an image file"
    else:
        why = f"cannot be read ({e.strerror or e}); check the file and its folder"
    return PreprocessError(f"{label}: {why}", kind="unreadable")
