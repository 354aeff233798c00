"""Shared fixtures: the real MNIST files and a device-resident copy of them."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]


def _mnist_dir() -> Path:
    env = os.environ.get("MNISTLAB_DATA")
    for cand in ([Path(env)] if env else []) + [REPO.parent / "shared" / "data" / "mnist"]:
        if (cand / "train-images-idx3-ubyte.gz").is_file():
            return cand
        if (cand / "mnist" / "train-images-idx3-ubyte.gz").is_file():
            return cand / "mnist"
    raise RuntimeError(
        "real MNIST not found: set MNISTLAB_DATA to the folder holding the four .gz files "
        "(../shared/data/mnist in this project's layout)"
    )


@pytest.fixture(scope="session")
def mnist_dir() -> Path:
    return _mnist_dir()


@pytest.fixture(scope="session")
def mnist(mnist_dir):
    """Train (55k) / val (5k, seed 0) / test (10k) on the CPU, as uint8 tensors."""
    from mnistlab.data import load_data

    return load_data("mnist", mnist_dir, "cpu", val_size=5000, seed=0)


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory, mnist_dir) -> Path:
    """A cnn trained for one epoch with the default recipe (about 98% on MNIST test)."""
    from mnistlab import TrainConfig, fit

    out = tmp_path_factory.mktemp("trained")
    return fit(
        TrainConfig(model="cnn", epochs=1, out_dir=str(out), data_dir=str(mnist_dir))
    ).run_dir


@pytest.fixture(autouse=True)
def _isolate(monkeypatch, tmp_path_factory, mnist_dir):
    # Tests must never download: point the data lookup at the real files and the
    # mirrors at nothing, and keep torch to the same thread count everywhere.
    monkeypatch.setenv("MNISTLAB_DATA", str(mnist_dir))
    monkeypatch.setenv("MNISTLAB_MIRRORS", "http://127.0.0.1:9/")
    torch.set_num_threads(min(2, os.cpu_count() or 1))
