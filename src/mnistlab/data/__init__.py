"""Datasets: IDX files, the dataset registry, downloads and the device-resident loader.

``normalize`` is imported here at once (every model input goes through it, the
torch-free predictor too); the rest loads on first use (``_imports.py``): the
loader needs torch, and the registry and downloads are not needed to use a model.
"""

from .._imports import lazy_exports
from .normalize import normalize, normalize_array, standardize

_EXPORTS = {
    **dict.fromkeys(
        (
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
        ),
        ".datasets",
    ),
    **dict.fromkeys(("DownloadError", "download_dataset", "mirrors_for"), ".download"),
    **dict.fromkeys(("IdxError", "decode_idx", "read_idx", "write_idx"), ".idx"),
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
