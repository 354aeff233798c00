"""The dataset registry and where each dataset's files are looked for.

Both datasets use the same four IDX files. A local copy is accepted if its
*decoded* content matches the known checksum, so a re-compressed or decompressed
copy is as good as the official download.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import MnistlabError, UsageError
from .idx import IdxError, decode_idx, read_idx_bytes
from .normalize import MNIST_MEAN, MNIST_STD

__all__ = [
    "DATASETS",
    "DatasetInfo",
    "DatasetNotFound",
    "candidate_dirs",
    "find_dataset_dir",
    "get_dataset",
    "list_datasets",
    "load_arrays",
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


def verify_file(path: Path, f: FileInfo) -> np.ndarray:
    """Decode ``path`` and check its content checksum and shape; return the array."""
    data = read_idx_bytes(path)
    if hashlib.md5(data).hexdigest() != f.content_md5:
        raise IdxError(
            f"{path}: content checksum mismatch (not the expected {f.name}); "
            "delete it and run `mnistlab data download`"
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


def find_dataset_dir(name: str, data_dir: str | os.PathLike | None = None) -> Path | None:
    """The first candidate folder holding all four files (by name; content is checked on load)."""
    info = get_dataset(name)
    for folder in candidate_dirs(name, data_dir):
        if all(_local_file(folder, f) for f in info.all_files()):
            return folder
    return None


def missing_message(info: DatasetInfo, data_dir: str | os.PathLike | None = None) -> str:
    target = candidate_dirs(info.name, data_dir)[0]
    names = ", ".join(f.name for f in info.all_files())
    return (
        f"{info.name} not found; run `mnistlab data download --dataset {info.name}`, "
        f"or put {names} in {target}"
    )


def load_arrays(
    name: str, split: str, data_dir: str | os.PathLike | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """(images uint8 (N, 28, 28), labels uint8 (N,)) for one split, checked by content."""
    info = get_dataset(name)
    if split not in SPLITS:
        raise UsageError(f"unknown split {split!r}; choose train or test")
    img_f, lab_f = info.files[split]
    first_error = None
    for folder in candidate_dirs(name, data_dir):
        img, lab = _local_file(folder, img_f), _local_file(folder, lab_f)
        if img is None or lab is None:
            continue
        try:
            return verify_file(img, img_f), verify_file(lab, lab_f)
        except IdxError as e:
            # An explicit --data-dir must hold the right files; otherwise a folder with
            # other data (e.g. MNIST when asked for Fashion-MNIST) is passed over.
            if data_dir:
                raise
            first_error = first_error or e
    if first_error is not None:
        raise first_error
    raise DatasetNotFound(missing_message(info, data_dir))
