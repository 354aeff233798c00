"""Datasets: IDX files, the dataset registry, downloads and the device-resident loader.

The loader (it needs torch) and the downloads (urllib, not needed to use a model)
load on first use (``_imports.py``); the rest at once.
"""

from .._imports import lazy_exports
from .datasets import (
    DATASETS,
    DatasetInfo,
    DatasetNotFound,
    Lookup,
    candidate_dirs,
    find_dataset_dir,
    get_dataset,
    list_datasets,
    load_arrays,
    locate,
    read_split,
    verify_dir,
)
from .idx import IdxError, decode_idx, read_idx, write_idx
from .normalize import normalize, normalize_array, standardize

_EXPORTS = {
    **dict.fromkeys(("DownloadError", "download_dataset", "mirrors_for"), ".download"),
    **dict.fromkeys(("DeviceLoader", "MnistData", "load_data", "load_split"), ".loader"),
}

__all__ = [
    "DATASETS",
    "DatasetInfo",
    "DatasetNotFound",
    "DeviceLoader",
    "DownloadError",
    "IdxError",
    "Lookup",
    "MnistData",
    "candidate_dirs",
    "decode_idx",
    "download_dataset",
    "find_dataset_dir",
    "get_dataset",
    "list_datasets",
    "load_arrays",
    "load_data",
    "load_split",
    "locate",
    "mirrors_for",
    "normalize",
    "normalize_array",
    "read_idx",
    "read_split",
    "standardize",
    "verify_dir",
    "write_idx",
]

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
