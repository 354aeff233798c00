"""The dataset registry and where each dataset's files are looked for.

Both datasets use the same four IDX files. A local copy is accepted if its
*decoded* content matches the known checksum, so a re-compressed or decompressed
copy is as good as the official download.
"""

from __future__ import annotations

import functools
import hashlib
import os
import shlex
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import MnistlabError, UsageError
from .idx import IdxError, decode_idx, read_idx_bytes
from .normalize import MNIST_MEAN, MNIST_STD

__all__ = [
    "DATASETS",
    "DatasetInfo",
    "DatasetNotFound",
    "Lookup",
    "candidate_dirs",
    "find_dataset_dir",
    "get_dataset",
    "list_datasets",
    "load_arrays",
    "locate",
    "read_split",
    "verify_dir",
]

SPLITS = ("train", "test")


@dataclass(frozen=True)
class FileInfo:
    name: str  # file name as the mirrors serve it
    gz_md5: str  # md5 of the official .gz download
    content_md5: str  # md5 of the decompressed IDX content
    shape: tuple[int, ...]


@dataclass(frozen=True)
class DatasetInfo:
    name: str
    title: str
    classes: tuple[str, ...]
    mean: float  # of the training pixels scaled to [0, 1]
    std: float
    files: dict[str, tuple[FileInfo, FileInfo]]  # split -> (images, labels)
    mirrors: tuple[str, ...]
    source: str

    def all_files(self) -> list[FileInfo]:
        return [f for split in SPLITS for f in self.files[split]]


def _files(sizes, md5s) -> dict[str, tuple[FileInfo, FileInfo]]:
    (n_train, n_test), out = sizes, {}
    for split, prefix, n in (("train", "train", n_train), ("test", "t10k", n_test)):
        img, lab = f"{prefix}-images-idx3-ubyte.gz", f"{prefix}-labels-idx1-ubyte.gz"
        out[split] = (
            FileInfo(img, *md5s[img], shape=(n, 28, 28)),
            FileInfo(lab, *md5s[lab], shape=(n,)),
        )
    return out


DATASETS: dict[str, DatasetInfo] = {
    "mnist": DatasetInfo(
        name="mnist",
        title="MNIST handwritten digits (LeCun, Cortes, Burges)",
        classes=tuple(str(i) for i in range(10)),
        mean=MNIST_MEAN,
        std=MNIST_STD,
        files=_files(
            (60000, 10000),
            {  # name: (official gz md5, decoded content md5)
                "train-images-idx3-ubyte.gz": (
                    "f68b3c2dcbeaaa9fbdd348bbdeb94873",
                    "6bbc9ace898e44ae57da46a324031adb",
                ),
                "train-labels-idx1-ubyte.gz": (
                    "d53e105ee54ea40749a09fcbcd1e9432",
                    "a25bea736e30d166cdddb491f175f624",
                ),
                "t10k-images-idx3-ubyte.gz": (
                    "9fb629c4189551a2d022fa330f9573f3",
                    "2646ac647ad5339dbf082846283269ea",
                ),
                "t10k-labels-idx1-ubyte.gz": (
                    "ec29112dd5afa0611ce80d1b7f02629c",
                    "27ae3e4e09519cfbb04c329615203637",
                ),
            },
        ),
        # The same hosts torchvision uses, the reliable S3 copy first: the original
        # site at yann.lecun.com often answers 403/404 or times out.
        mirrors=(
            "https://ossci-datasets.s3.amazonaws.com/mnist/",
            "https://storage.googleapis.com/cvdf-datasets/mnist/",
            "http://yann.lecun.com/exdb/mnist/",
        ),
        source="http://yann.lecun.com/exdb/mnist/",
    ),
    "fashion-mnist": DatasetInfo(
        name="fashion-mnist",
        title="Fashion-MNIST (Xiao, Rasul, Vollgraf 2017)",
        classes=(
            "T-shirt/top",
            "Trouser",
            "Pullover",
            "Dress",
            "Coat",
            "Sandal",
            "Shirt",
            "Sneaker",
            "Bag",
            "Ankle boot",
        ),
        mean=0.2860,
        std=0.3530,
        files=_files(
            (60000, 10000),
            {
                "train-images-idx3-ubyte.gz": (
                    "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
                    "f4a8712d7a061bf5bd6d2ca38dc4d50a",
                ),
                "train-labels-idx1-ubyte.gz": (
                    "25c81989df183df01b3e8a0aad5dffbe",
                    "9018921c3c673c538a1fc5bad174d6f9",
                ),
                "t10k-images-idx3-ubyte.gz": (
                    "bef4ecab320f06d8554ea6380940ec79",
                    "8181f5470baa50b63fa0f6fddb340f0a",
                ),
                "t10k-labels-idx1-ubyte.gz": (
                    "bb300cfdad3c16e7a12a480ee83cd310",
                    "15d484375f8d13e6eb1aabb0c3f46965",
                ),
            },
        ),
        mirrors=("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",),
        source="https://github.com/zalandoresearch/fashion-mnist",
    ),
}

# Debian's dataset packages (e.g. `apt-get install dataset-fashion-mnist`) put files here.
SYSTEM_DIR = Path("/usr/share/datasets")


class DatasetNotFound(MnistlabError):
    pass


def list_datasets() -> list[str]:
    return sorted(DATASETS)


def get_dataset(name: str) -> DatasetInfo:
    try:
        return DATASETS[name]
    except KeyError:
        raise UsageError(
            f"unknown dataset {name!r}; choose one of: {', '.join(list_datasets())}"
        ) from None


def default_root(data_dir: str | os.PathLike | None = None) -> Path:
    """The data root: --data-dir, else $MNISTLAB_DATA, else the user cache directory."""
    if data_dir:
        return Path(data_dir).expanduser()
    env = os.environ.get("MNISTLAB_DATA")
    if env:
        return Path(env).expanduser()
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("mnistlab")) / "data"


def candidate_dirs(name: str, data_dir: str | os.PathLike | None = None) -> list[Path]:
    """Folders searched for ``name``'s files, in order.

    A root may hold one folder per dataset (``ROOT/mnist/...``) or be the dataset
    folder itself (``MNISTLAB_DATA=../shared/data/mnist``); both are tried. Files are
    checked by content, so a folder holding another dataset's files is rejected.
    """
    root = default_root(data_dir)
    dirs = [root / name, root]
    if not data_dir:
        dirs.append(SYSTEM_DIR / name)
    return list(dict.fromkeys(dirs))


def _local_file(folder: Path, f: FileInfo) -> Path | None:
    """The file in ``folder``, compressed or not (``x.gz`` or ``x``)."""
    for cand in (folder / f.name, folder / f.name.removesuffix(".gz")):
        if cand.is_file():
            return cand
    return None


def _owner(name: str, digest: str) -> str | None:
    """The dataset whose file ``name`` has decoded content with MD5 ``digest``."""
    for ds in DATASETS.values():
        if any(f.name == name and f.content_md5 == digest for f in ds.all_files()):
            return ds.name
    return None


def verify_file(path: Path, f: FileInfo) -> np.ndarray:
    """Decode ``path``, check its content checksum and shape: the (read-only) array, kept
    while the file is unchanged (``compare`` trains several models, decoding MNIST once)."""
    try:
        st = path.stat()
    except OSError:  # read_idx_bytes says what is wrong
        return _verified(path, f)
    return _kept(path.resolve(), (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns), f)


@functools.lru_cache(maxsize=4)  # the images and labels of both splits
def _kept(path: Path, unchanged: tuple, f: FileInfo) -> np.ndarray:
    return _verified(path, f)


def _verified(path: Path, f: FileInfo) -> np.ndarray:
    data = read_idx_bytes(path)
    digest = hashlib.md5(data).hexdigest()
    if digest != f.content_md5:
        other = _owner(f.name, digest)
        if other is not None:  # good data of another dataset: never advise deleting it
            raise IdxError(
                f"{path}: content checksum mismatch: this is {other}'s {f.name}, not the one "
                f"expected; keep each dataset in its own folder (ROOT/<dataset>/)",
                kind="other_dataset",
            )
        raise IdxError(
            f"{path}: content checksum mismatch (not the expected {f.name}); "
            "run `mnistlab data download` to replace it"
        )
    arr = decode_idx(data, str(path))
    if arr.shape != f.shape:
        raise IdxError(f"{path}: shape {arr.shape}, expected {f.shape}")
    return arr


def verify_dir(info: DatasetInfo, folder: Path) -> dict[str, str]:
    """Check every file of ``info`` in ``folder``: name -> 'ok' / 'missing' / the error."""
    report = {}
    for f in info.all_files():
        path = _local_file(folder, f)
        if path is None:
            report[f.name] = "missing"
            continue
        try:
            verify_file(path, f)
            report[f.name] = "ok"
        except IdxError as e:
            report[f.name] = str(e)
    return report


def _download_cmd(name: str, data_dir) -> str:
    cmd = f"mnistlab data download --dataset {name}"
    return cmd + (f" --data-dir {shlex.quote(str(data_dir))}" if data_dir else "")


@dataclass
class Lookup:
    """Where a dataset is read from: the one answer the loader, ``data verify``,
    ``data info`` and ``data download`` share.

    ``folder`` is the first searched folder holding all four files, else the first
    holding some of them (``missing`` names the rest), else None. A folder whose
    labels are another dataset's (MNIST when asked for Fashion-MNIST) is passed
    over and listed in ``skipped``.
    """

    info: DatasetInfo
    data_dir: str | os.PathLike | None
    searched: list[Path]
    folder: Path | None = None
    missing: list[str] = field(default_factory=list)
    skipped: list[tuple[Path, str]] = field(default_factory=list)  # (folder, its dataset)

    @property
    def complete(self) -> bool:
        return self.folder is not None and not self.missing

    def files(self) -> list[Path]:
        """The dataset's files present in ``folder``."""
        found = (_local_file(self.folder, f) for f in self.info.all_files()) if self.folder else ()
        return [p for p in found if p is not None]

    def error(self) -> MnistlabError:
        """Why the dataset cannot be read in full, and what to do."""
        name, cmd = self.info.name, _download_cmd(self.info.name, self.data_dir)
        if self.folder is not None:
            return DatasetNotFound(
                f"{name} is incomplete in {self.folder}: {', '.join(self.missing)} missing; "
                f"run `{cmd}` or put them there (from {self.info.source})"
            )
        if self.skipped:
            where, other = self.skipped[0]
            return IdxError(
                f"{where} holds {other}, not {name} (content checksum mismatch); run `{cmd}` "
                f"to put {name} in {self.searched[0]}, or point --data-dir or MNISTLAB_DATA "
                f"at a folder holding {name}"
            )
        return DatasetNotFound(missing_message(self.info, self.data_dir))


def _other_dataset(info: DatasetInfo, present: dict[str, Path]) -> str | None:
    """The other dataset whose labels ``present`` holds, judged by the small label files."""
    for f in info.all_files():
        if f.name not in present or "labels" not in f.name:
            continue
        try:
            digest = hashlib.md5(read_idx_bytes(present[f.name])).hexdigest()
        except IdxError:
            continue  # unreadable: reported against this folder when it is read
        if digest == f.content_md5:
            return None
        other = _owner(f.name, digest)
        if other is not None and other != info.name:
            return other
    return None


def locate(name: str, data_dir: str | os.PathLike | None = None) -> Lookup:
    """Find ``name``'s folder among ``candidate_dirs`` (see ``Lookup``)."""
    info = get_dataset(name)
    lookup = Lookup(info, data_dir, candidate_dirs(name, data_dir))
    root = lookup.searched[1]
    if root.exists() and not root.is_dir():
        where = "" if data_dir else " (from $MNISTLAB_DATA)"
        raise UsageError(
            f"{root}{where} is a file, not a folder; give the folder holding the data",
            option="data_dir" if data_dir else None,
        )
    partial = None
    for folder in lookup.searched:
        present = {f.name: p for f in info.all_files() if (p := _local_file(folder, f))}
        if not present:
            continue
        other = _other_dataset(info, present)
        if other is not None:
            lookup.skipped.append((folder, other))
            continue
        missing = [f.name for f in info.all_files() if f.name not in present]
        if not missing:
            lookup.folder = folder
            return lookup
        partial = partial or (folder, missing)
    if partial is not None:
        lookup.folder, lookup.missing = partial
    return lookup


def find_dataset_dir(name: str, data_dir: str | os.PathLike | None = None) -> Path | None:
    """The folder holding all four of ``name``'s files, as the loader finds it, or None."""
    lookup = locate(name, data_dir)
    return lookup.folder if lookup.complete else None


def missing_message(info: DatasetInfo, data_dir: str | os.PathLike | None = None) -> str:
    target = candidate_dirs(info.name, data_dir)[0]
    names = ", ".join(f.name for f in info.all_files())
    return (
        f"{info.name} not found; run `{_download_cmd(info.name, data_dir)}`, "
        f"or put {names} in {target}"
    )


def read_split(lookup: Lookup, split: str) -> tuple[np.ndarray, np.ndarray]:
    """(images, labels) of ``split`` from the folder ``lookup`` found, checked by content."""
    if split not in SPLITS:
        raise UsageError(f"unknown split {split!r}; choose train or test")
    img_f, lab_f = lookup.info.files[split]
    if lookup.folder is None or {img_f.name, lab_f.name} & set(lookup.missing):
        raise lookup.error()
    img, lab = _local_file(lookup.folder, img_f), _local_file(lookup.folder, lab_f)
    return verify_file(img, img_f), verify_file(lab, lab_f)


def load_arrays(
    name: str, split: str, data_dir: str | os.PathLike | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """(images uint8 (N, 28, 28), labels uint8 (N,)) for one split, checked by content."""
    get_dataset(name)
    if split not in SPLITS:
        raise UsageError(f"unknown split {split!r}; choose train or test")
    return read_split(locate(name, data_dir), split)
