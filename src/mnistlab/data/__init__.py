"""Datasets: IDX files, the dataset registry, downloads and the device-resident loader.

The loader's names load on first use (``_imports.py``): it needs torch, the rest not.
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
from .download import DownloadError, download_dataset, mirrors_for
from .idx import IdxError, decode_idx, read_idx, write_idx
from .normalize import normalize, normalize_array, standardize

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

_EXPORTS = {name: ".loader" for name in ("DeviceLoader", "MnistData", "load_data", "load_split")}

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
