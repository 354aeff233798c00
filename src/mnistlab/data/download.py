"""Fetching dataset files from the mirrors, verified before they are kept.

Each file goes to a temp file beside its target, is checked against the official
gz MD5 (or, for a mirror that re-compressed it, the MD5 of its decoded content),
and only then renamed into place. A failed or mismatched download is deleted and
the next mirror is tried, so a partial file is never left where it would be read.
"""

from __future__ import annotations

import gzip
import hashlib
import http.client
import os
import tempfile
import urllib.error
import urllib.parse
import urllib.request
import zlib
from collections.abc import Callable
from pathlib import Path

from ..errors import MnistlabError, UsageError
from .datasets import SYSTEM_DIR, DatasetInfo, FileInfo, _local_file, locate, verify_file
from .idx import IdxError

__all__ = ["DownloadError", "download_dataset", "mirrors_for"]

_CHUNK = 1 << 16
TIMEOUT_S = 30.0


class DownloadError(MnistlabError):
    pass


def mirrors_for(info: DatasetInfo) -> list[str]:
    """The dataset's mirrors, or those in $MNISTLAB_MIRRORS (comma or space separated)."""
    env = os.environ.get("MNISTLAB_MIRRORS", "").replace(",", " ").split()
    for url in env:
        _check_mirror(url)
    urls = env or list(info.mirrors)
    return [u if u.endswith("/") else u + "/" for u in urls]


def _check_mirror(url: str) -> None:
    """Refuse a $MNISTLAB_MIRRORS entry that urllib could not fetch from."""
    try:
        parts = urllib.parse.urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a bad port
        ok = parts.scheme in ("http", "https", "ftp") and parts.hostname
        ok = ok or (parts.scheme == "file" and parts.path)
    except ValueError:
        ok = False
    if not ok:
        raise UsageError(
            f"MNISTLAB_MIRRORS holds {url!r}, which is not a URL; set it to http(s):// URLs "
            "of folders holding the files, separated by spaces or commas "
            "(e.g. MNISTLAB_MIRRORS=https://example.org/mnist/), or unset it"
        )


def _fetch(url: str, dest_dir: Path, progress: Callable[[int, int | None], None] | None) -> Path:
    """Stream ``url`` into a temp file in ``dest_dir`` and return its path.

    The caller renames it into place once verified, or deletes it."""
    fd, tmp = tempfile.mkstemp(prefix=".download.", suffix=".tmp", dir=dest_dir)
    try:
        req = urllib.request.Request(url, headers={"User-Agent": "mnistlab"})
        # the temp file is opened first so its descriptor is closed even if urlopen fails
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(req, timeout=TIMEOUT_S) as resp:
            total = resp.headers.get("Content-Length")
            total = int(total) if total and total.isdigit() else None
            done = 0
            while chunk := resp.read(_CHUNK):
                out.write(chunk)
                done += len(chunk)
                if progress:
                    progress(done, total)
            if total is not None and done != total:
                raise DownloadError(f"connection closed after {done} of {total} bytes")
        return Path(tmp)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _checksum_ok(path: Path, f: FileInfo) -> bool:
    raw = path.read_bytes()
    if hashlib.md5(raw).hexdigest() == f.gz_md5:
        return True
    try:  # a mirror may serve a re-compressed copy of the same data
        content = gzip.decompress(raw) if raw[:2] == b"\x1f\x8b" else raw
    except (OSError, EOFError, zlib.error):
        return False
    return hashlib.md5(content).hexdigest() == f.content_md5


def download_file(
    f: FileInfo,
    dest_dir: Path,
    mirrors: list[str],
    log: Callable[[str], None] = lambda s: None,
    progress: Callable[[int, int | None], None] | None = None,
) -> Path:
    """Download one file, trying each mirror in turn; raise DownloadError if none works."""
    target = dest_dir / f.name
    failures = []
    for base in mirrors:
        url = base + f.name
        try:
            tmp = _fetch(url, dest_dir, progress)
        except urllib.error.HTTPError as e:
            failures.append(f"{url}: HTTP {e.code}")
        except (
            urllib.error.URLError,
            OSError,
            ValueError,
            http.client.HTTPException,
            DownloadError,
        ) as e:
            reason = getattr(e, "reason", e)
            failures.append(f"{url}: {reason}")
        else:
            if _checksum_ok(tmp, f):
                os.replace(tmp, target)
                return target
            tmp.unlink(missing_ok=True)
            failures.append(f"{url}: checksum mismatch")
        log(f"{failures[-1]}; trying the next mirror")
    raise DownloadError(f"could not download {f.name} ({'; '.join(failures) or 'no mirrors'})")


def download_dataset(
    info: DatasetInfo,
    data_dir: str | os.PathLike | None = None,
    log: Callable[[str], None] = lambda s: None,
    progress: Callable[[str], Callable[[int, int | None], None]] | None = None,
) -> Path:
    """Make sure all four files of ``info`` are present and valid; download what is not.

    Files go to the folder the loader reads (``locate``): one that already holds
    them, all or some, even if it is the data root itself; else ``ROOT/<dataset>``.
    A file that is already there and passes the content check is kept.
    """
    mirrors = mirrors_for(info)  # a bad $MNISTLAB_MIRRORS is refused before anything else
    lookup = locate(info.name, data_dir)
    dest = lookup.folder
    if dest is None or (not lookup.complete and dest.is_relative_to(SYSTEM_DIR)):
        dest = lookup.searched[0]
    try:
        dest.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise DownloadError(
            f"folder {dest} cannot be created ({e.strerror}); choose another",
            option="data_dir",
        ) from None
    for f in info.all_files():
        existing = _local_file(dest, f)
        if existing is not None:
            try:
                verify_file(existing, f)
                log(f"{f.name}: already present and verified")
                continue
            except IdxError as e:
                if e.kind == "other_dataset":  # never replace another dataset's good file
                    raise DownloadError(f"{e}; then run this again") from None
                log(f"{e}; downloading it again")
        try:
            download_file(f, dest, mirrors, log, progress(f.name) if progress else None)
        except DownloadError as e:
            names = ", ".join(x.name for x in info.all_files())
            raise DownloadError(
                f"{e}. Without network access, put {names} (from {info.source}) in {dest}"
            ) from None
        log(f"{f.name}: downloaded and verified")
    return dest
