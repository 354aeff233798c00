"""Where dataset files are looked for, which copies are accepted, and real-data facts."""

from __future__ import annotations

import gzip
import hashlib
import struct
from pathlib import Path

import numpy as np
import pytest

from mnistlab.data import (
    DatasetNotFound,
    IdxError,
    candidate_dirs,
    find_dataset_dir,
    get_dataset,
    load_arrays,
    verify_dir,
)
from mnistlab.data.datasets import missing_message
from mnistlab.errors import UsageError
from tests.support.processes import REPO

SHARED = REPO.parent / "shared" / "data" / "mnist"
FASHION_SYSTEM = Path("/usr/share/datasets/fashion-mnist")
NAMES = [
    "train-images-idx3-ubyte.gz",
    "train-labels-idx1-ubyte.gz",
    "t10k-images-idx3-ubyte.gz",
    "t10k-labels-idx1-ubyte.gz",
]
# From the data's README, independent of the package's registry.
SHA256 = dict(
    zip(
        NAMES,
        [
            "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
            "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
            "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
            "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
        ],
        strict=True,
    )
)
OFFICIAL_GZ_MD5 = {
    "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
    "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
    "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
    "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
}
TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
FIRST_TRAIN_LABELS = [5, 0, 4, 1, 9, 2, 1, 3, 1, 4]

if not all((SHARED / n).is_file() for n in NAMES):  # pragma: no cover
    pytest.skip(f"real MNIST not found in {SHARED}", allow_module_level=True)


def _link_all(folder: Path, names=NAMES) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for n in names:
        (folder / n).symlink_to(SHARED / n)
    return folder


def _sha(*parts: bytes) -> str:
    h = hashlib.sha256()
    for p in parts:
        h.update(p)
    return h.hexdigest()


@pytest.fixture(scope="module")
def train():
    return load_arrays("mnist", "train", SHARED)


@pytest.fixture(scope="module")
def t10k():
    return load_arrays("mnist", "test", SHARED)


@pytest.fixture(scope="module")
def decompressed_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("decompressed")
    for n in NAMES:
        (out / n.removesuffix(".gz")).write_bytes(gzip.decompress((SHARED / n).read_bytes()))
    return out


@pytest.fixture
def no_env(monkeypatch, tmp_path):
    """No $MNISTLAB_DATA and an empty user cache under tmp_path."""
    monkeypatch.delenv("MNISTLAB_DATA", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg-cache"))
    return tmp_path / "xdg-cache" / "mnistlab" / "data"


# ------------------------------------------------------------------ location order


def test_data_dir_beats_env_beats_user_cache(tmp_path, monkeypatch, no_env):
    cache_root = no_env
    arg_root, env_root = tmp_path / "arg", tmp_path / "env"
    _link_all(arg_root / "mnist")  # ROOT/<dataset> layout
    _link_all(env_root)  # the root is the dataset folder itself
    _link_all(cache_root / "mnist")
    monkeypatch.setenv("MNISTLAB_DATA", str(env_root))

    assert find_dataset_dir("mnist", arg_root) == arg_root / "mnist"
    assert find_dataset_dir("mnist", str(arg_root)) == arg_root / "mnist"
    assert find_dataset_dir("mnist") == env_root
    monkeypatch.delenv("MNISTLAB_DATA")
    assert find_dataset_dir("mnist") == cache_root / "mnist"


def test_candidate_dirs_order(tmp_path, monkeypatch, no_env):
    arg, env = tmp_path / "arg", tmp_path / "env"
    monkeypatch.setenv("MNISTLAB_DATA", str(env))
    # an explicit folder is exclusive: neither the env var nor the system folder is searched
    assert candidate_dirs("mnist", arg) == [arg / "mnist", arg]
    assert candidate_dirs("mnist") == [env / "mnist", env, Path("/usr/share/datasets/mnist")]
    monkeypatch.delenv("MNISTLAB_DATA")
    assert candidate_dirs("fashion-mnist") == [
        no_env / "fashion-mnist",
        no_env,
        Path("/usr/share/datasets/fashion-mnist"),
    ]


def test_empty_env_var_falls_back_to_cache(monkeypatch, no_env):
    _link_all(no_env)
    monkeypatch.setenv("MNISTLAB_DATA", "")
    assert find_dataset_dir("mnist") == no_env


def test_dataset_subfolder_beats_root(tmp_path):
    _link_all(tmp_path)
    _link_all(tmp_path / "mnist")
    assert find_dataset_dir("mnist", tmp_path) == tmp_path / "mnist"


def test_data_dir_does_not_fall_back_to_env(tmp_path, monkeypatch):
    monkeypatch.setenv("MNISTLAB_DATA", str(SHARED))
    empty = tmp_path / "empty"
    empty.mkdir()
    assert find_dataset_dir("mnist") == SHARED
    assert find_dataset_dir("mnist", empty) is None
    with pytest.raises(DatasetNotFound) as exc:
        load_arrays("mnist", "test", empty)
    assert str(empty / "mnist") in str(exc.value)


def test_data_dir_is_used_when_env_is_empty(tmp_path, monkeypatch, t10k):
    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.setenv("MNISTLAB_DATA", str(empty))
    with pytest.raises(DatasetNotFound):
        load_arrays("mnist", "test")
    images, labels = load_arrays("mnist", "test", _link_all(tmp_path / "arg"))
    assert np.array_equal(images, t10k[0])
    assert np.array_equal(labels, t10k[1])


def test_four_files_needed_to_count_as_found(tmp_path):
    _link_all(tmp_path / "mnist", NAMES[:3])
    assert find_dataset_dir("mnist", tmp_path) is None


# ----------------------------------------------------------- which copies are accepted


def test_decompressed_copy_is_accepted(decompressed_dir, train, t10k):
    assert sorted(p.name for p in decompressed_dir.iterdir()) == sorted(
        n.removesuffix(".gz") for n in NAMES
    )
    for n in NAMES:  # really uncompressed
        assert (decompressed_dir / n.removesuffix(".gz")).read_bytes()[:2] == b"\x00\x00"
    assert find_dataset_dir("mnist", decompressed_dir) == decompressed_dir
    assert verify_dir(get_dataset("mnist"), decompressed_dir) == dict.fromkeys(NAMES, "ok")
    images, labels = load_arrays("mnist", "train", decompressed_dir)
    assert np.array_equal(images, train[0]) and np.array_equal(labels, train[1])
    images, labels = load_arrays("mnist", "test", decompressed_dir)
    assert np.array_equal(images, t10k[0]) and np.array_equal(labels, t10k[1])


def test_recompressed_copy_is_accepted():
    # the shared files are a re-compression: their .gz bytes are not the official ones
    for n in NAMES:
        assert hashlib.md5((SHARED / n).read_bytes()).hexdigest() != OFFICIAL_GZ_MD5[n]
    assert verify_dir(get_dataset("mnist"), SHARED) == dict.fromkeys(NAMES, "ok")


def test_other_compression_levels_and_mixed_names(tmp_path, t10k):
    folder = tmp_path / "mixed"
    folder.mkdir()
    raw = gzip.decompress((SHARED / "t10k-images-idx3-ubyte.gz").read_bytes())
    (folder / "t10k-images-idx3-ubyte.gz").write_bytes(gzip.compress(raw, compresslevel=1))
    # a decompressed file that kept its .gz name is read by content, not by name
    raw = gzip.decompress((SHARED / "t10k-labels-idx1-ubyte.gz").read_bytes())
    (folder / "t10k-labels-idx1-ubyte.gz").write_bytes(raw)
    _link_all(folder, NAMES[:2])
    images, labels = load_arrays("mnist", "test", folder)
    assert np.array_equal(images, t10k[0]) and np.array_equal(labels, t10k[1])


@pytest.fixture(scope="module")
def altered_dir(tmp_path_factory) -> Path:
    """The shared files, but one pixel of t10k image 0 flipped and re-gzipped."""
    folder = _link_all(tmp_path_factory.mktemp("altered"), NAMES[:2] + NAMES[3:])
    raw = bytearray(gzip.decompress((SHARED / "t10k-images-idx3-ubyte.gz").read_bytes()))
    pixel = 16 + 14 * 28 + 14  # centre of the first test image
    raw[pixel] ^= 0xFF
    (folder / "t10k-images-idx3-ubyte.gz").write_bytes(gzip.compress(bytes(raw), 1))
    return folder


def test_altered_content_is_rejected_with_checksum_error(altered_dir):
    bad = altered_dir / "t10k-images-idx3-ubyte.gz"
    with pytest.raises(IdxError) as exc:
        load_arrays("mnist", "test", altered_dir)
    msg = str(exc.value)
    assert "checksum" in msg and str(bad) in msg
    assert "\n" not in msg
    report = verify_dir(get_dataset("mnist"), altered_dir)
    assert "checksum" in report.pop("t10k-images-idx3-ubyte.gz")
    assert report == dict.fromkeys(NAMES[:2] + NAMES[3:], "ok")


def test_altered_test_split_does_not_block_train(altered_dir, train):
    images, labels = load_arrays("mnist", "train", altered_dir)
    assert np.array_equal(images, train[0]) and np.array_equal(labels, train[1])


def test_corrupt_gzip_in_dataset_folder_is_idx_error(tmp_path):
    folder = _link_all(tmp_path, NAMES[:3])
    data = (SHARED / NAMES[3]).read_bytes()
    (folder / NAMES[3]).write_bytes(data[: len(data) // 2])
    with pytest.raises(IdxError, match="gzip"):
        load_arrays("mnist", "test", folder)
    assert verify_dir(get_dataset("mnist"), folder)[NAMES[3]] != "ok"


def test_a_file_is_decoded_once_until_it_changes(tmp_path, t10k):
    folder = tmp_path / "copy"
    folder.mkdir()
    for n in NAMES[2:]:
        (folder / n).write_bytes((SHARED / n).read_bytes())
    first = load_arrays("mnist", "test", folder)
    again = load_arrays("mnist", "test", folder)
    assert again[0] is first[0] and np.array_equal(first[0], t10k[0])  # not decoded again
    assert not first[0].flags.writeable  # and nobody can change what is kept
    # the file altered after it was read: read and checked again, not served from before
    raw = bytearray(gzip.decompress((folder / NAMES[2]).read_bytes()))
    raw[16 + 14 * 28 + 14] ^= 0xFF
    (folder / NAMES[2]).write_bytes(gzip.compress(bytes(raw), 1))
    with pytest.raises(IdxError, match="checksum"):
        load_arrays("mnist", "test", folder)


def test_verify_dir_reports_missing(tmp_path):
    _link_all(tmp_path, NAMES[:2])
    report = verify_dir(get_dataset("mnist"), tmp_path)
    assert report == {NAMES[0]: "ok", NAMES[1]: "ok", NAMES[2]: "missing", NAMES[3]: "missing"}


# ------------------------------------------------------------------ real-data facts


def test_train_split_facts(train):
    images, labels = train
    assert images.shape == (60000, 28, 28) and labels.shape == (60000,)
    assert images.dtype == np.uint8 and labels.dtype == np.uint8
    assert np.bincount(labels, minlength=10).tolist() == TRAIN_COUNTS
    assert labels[:10].tolist() == FIRST_TRAIN_LABELS
    assert images.min() == 0 and images.max() == 255
    # the arrays are exactly the file's content, in order (sha256 from the README)
    header = struct.pack(">HBB3I", 0, 8, 3, 60000, 28, 28)
    assert _sha(header, images.tobytes()) == SHA256["train-images-idx3-ubyte.gz"]
    assert _sha(struct.pack(">HBBI", 0, 8, 1, 60000), labels.tobytes()) == SHA256[NAMES[1]]


def test_test_split_facts(t10k):
    images, labels = t10k
    assert images.shape == (10000, 28, 28) and labels.shape == (10000,)
    assert images.dtype == np.uint8 and labels.dtype == np.uint8
    assert set(np.unique(labels).tolist()) == set(range(10))
    header = struct.pack(">HBB3I", 0, 8, 3, 10000, 28, 28)
    assert _sha(header, images.tobytes()) == SHA256["t10k-images-idx3-ubyte.gz"]
    assert _sha(struct.pack(">HBBI", 0, 8, 1, 10000), labels.tobytes()) == SHA256[NAMES[3]]


def test_first_train_image_looks_like_a_digit(train):
    img = train[0][0].astype(int)
    # ink in the middle, blank border
    assert img[:, :2].sum() == 0 and img[:, -2:].sum() == 0 and img[:2].sum() == 0
    assert (img > 128).sum() > 50


def test_unknown_dataset_and_split_are_usage_errors():
    with pytest.raises(UsageError, match="unknown dataset 'emnist'"):
        load_arrays("emnist", "train", SHARED)
    with pytest.raises(UsageError, match="unknown split 'val'"):
        load_arrays("mnist", "val", SHARED)


# ------------------------------------------------------ the wrong dataset, missing files


def test_mnist_folder_asked_for_fashion_is_rejected(tmp_path):
    for folder in (SHARED, _link_all(tmp_path / "fashion-mnist")):
        with pytest.raises(IdxError, match="checksum mismatch") as exc:
            load_arrays("fashion-mnist", "test", folder)
        assert str(folder) in str(exc.value)
    report = verify_dir(get_dataset("fashion-mnist"), SHARED)
    assert all("checksum mismatch" in v for v in report.values()), report


def test_missing_message_names_all_files_and_target(tmp_path, no_env):
    info = get_dataset("mnist")
    msg = missing_message(info, tmp_path)
    for n in NAMES:
        assert n in msg
    assert str(tmp_path / "mnist") in msg
    assert "mnistlab data download" in msg
    assert "\n" not in msg
    with pytest.raises(DatasetNotFound) as exc:
        load_arrays("mnist", "train", tmp_path)
    assert str(exc.value) == msg
    # with no folder given the target is the user cache folder
    assert str(no_env / "mnist") in missing_message(info)


# ------------------------------------------------------------------ Fashion-MNIST

needs_fashion = pytest.mark.skipif(
    not all((FASHION_SYSTEM / n).is_file() for n in NAMES),
    reason=f"Fashion-MNIST not installed in {FASHION_SYSTEM}",
)


@needs_fashion
def test_fashion_loads_from_system_dir(no_env):
    info = get_dataset("fashion-mnist")
    assert len(info.classes) == 10 and info.classes[0] == "T-shirt/top"
    assert info.classes[9] == "Ankle boot"
    assert find_dataset_dir("fashion-mnist") == FASHION_SYSTEM
    images, labels = load_arrays("fashion-mnist", "test")
    assert images.shape == (10000, 28, 28) and images.dtype == np.uint8
    assert np.bincount(labels, minlength=10).tolist() == [1000] * 10  # balanced test set
    assert verify_dir(info, FASHION_SYSTEM) == dict.fromkeys(NAMES, "ok")
    # an explicit --data-dir never reaches the system folder
    assert find_dataset_dir("fashion-mnist", no_env) is None


@needs_fashion
def test_fashion_system_dir_is_rejected_as_mnist(no_env):
    with pytest.raises(IdxError, match="checksum mismatch"):
        load_arrays("mnist", "test", FASHION_SYSTEM)


@needs_fashion
def test_fashion_found_when_env_points_at_flat_mnist_folder(monkeypatch):
    monkeypatch.setenv("MNISTLAB_DATA", str(SHARED))
    images, labels = load_arrays("fashion-mnist", "test")
    assert images.shape == (10000, 28, 28) and labels.shape == (10000,)
