"""``mnistlab bench``: the seeds' per-sample pipeline, the timed loops, and the smoke run."""

from __future__ import annotations

import gzip
import json

import numpy as np
import pytest
import torch

from mnistlab.bench.persample import PerSampleMNIST, persample_loader
from mnistlab.bench.timing import time_epoch, time_to_accuracy
from mnistlab.cli import main
from mnistlab.models import create_model
from mnistlab.train.optim import make_loss

MEAN, STD = 0.1307, 0.3081


def _raw_train_images(mnist_dir, n: int) -> np.ndarray:
    # decoded straight from the IDX bytes: 16-byte header, then row-major uint8 pixels
    with gzip.open(mnist_dir / "train-images-idx3-ubyte.gz") as f:
        raw = f.read(16 + n * 784)
    return np.frombuffer(raw[16:], np.uint8).reshape(n, 28, 28)


def test_per_sample_item_is_totensor_then_normalize(mnist_dir):
    from mnistlab.data import load_split

    x, y = load_split("mnist", "train", mnist_dir)
    ds = PerSampleMNIST(x, y, MEAN, STD)
    raw = _raw_train_images(mnist_dir, 3)
    for i in range(3):
        img, label = ds[i]
        assert img.shape == (1, 28, 28) and img.dtype == torch.float32
        want = (raw[i].astype(np.float32) / 255 - MEAN) / STD
        np.testing.assert_allclose(img[0].numpy(), want, rtol=0, atol=1e-6)
        assert isinstance(label, int) and label == int(y[i])
    assert [int(y[i]) for i in range(3)] == [5, 0, 4]  # the first MNIST training labels


def test_per_sample_loader_batches_like_the_seeds(mnist):
    x, y = mnist.test[0][:200], mnist.test[1][:200]
    loader = persample_loader(x, y, 64, MEAN, STD, seed=3)
    sizes = [len(b[1]) for b in loader]
    assert sizes == [64, 64, 64, 8]  # shuffle=True, drop_last=False, as DataLoader defaults
    first = next(iter(persample_loader(x, y, 64, MEAN, STD, seed=3)))[1]
    again = next(iter(persample_loader(x, y, 64, MEAN, STD, seed=3)))[1]
    other = next(iter(persample_loader(x, y, 64, MEAN, STD, seed=4)))[1]
    assert torch.equal(first, again) and not torch.equal(first, other)
    assert sorted(torch.cat([b[1] for b in loader]).tolist()) == sorted(y.tolist())


def _setup(seed=0):
    torch.manual_seed(seed)
    model = create_model("cnn")
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    return model, opt, make_loss("ce")


def test_time_epoch_counts_every_image(mnist):
    x, y = mnist.train[0][:1000], mnist.train[1][:1000]
    model, opt, loss = _setup()
    seconds, seen = time_epoch(model, persample_loader(x, y, 64, MEAN, STD), opt, loss, "cpu")
    assert seen == 1000 and seconds > 0


def test_time_to_accuracy_evaluates_on_the_half_epoch_grid(mnist):
    from mnistlab.data.loader import DeviceLoader

    x, y = mnist.train[0][:2048], mnist.train[1][:2048]
    loader = DeviceLoader(x, y, 64, MEAN, STD, shuffle=True, seed=0, drop_last=True)
    test = (mnist.test[0][:500], mnist.test[1][:500])
    model, opt, loss = _setup()
    never = time_to_accuracy(
        model, loader.batches, len(loader), opt, loss, None, test, MEAN, STD,
        torch.device("cpu"), target=1.01, max_epochs=2,
    )  # fmt: skip
    assert never["seconds"] is None and never["epochs"] is None
    assert [h["epochs"] for h in never["history"]] == [0.5, 1.0, 1.5, 2.0]
    times = [h["seconds"] for h in never["history"]]
    assert times == sorted(times) and never["eval_seconds"] > 0
    # 2,048 images of SGD lift a cnn far above chance: the history is real accuracy
    assert never["history"][-1]["acc"] > 0.8

    model, opt, loss = _setup()
    hit = time_to_accuracy(
        model, loader.batches, len(loader), opt, loss, None, test, MEAN, STD,
        torch.device("cpu"), target=0.5, max_epochs=2,
    )  # fmt: skip
    # the first evaluation at or above 50% stops the clock there
    first = next(h for h in hit["history"] if h["acc"] >= 0.5)
    assert hit["history"][-1] is first and hit["seconds"] == first["seconds"]
    assert hit["steps"] == round(first["epochs"] * len(loader))


@pytest.fixture(scope="module")
def quick_results(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench") / "results.md"
    assert main(["bench", "--quick", "--out", str(out)]) == 0
    return out


def test_quick_bench_writes_every_section(quick_results):
    text = quick_results.read_text()
    for heading in (
        "## 1. Data path", "## 2. Time to 99.0%", "## 3. Inference", "## 4. Scaling",
        "## 5. Trainer choices",
    ):  # fmt: skip
        assert heading in text
    assert "--quick" in text and f"torch {torch.__version__}" in text
    data = json.loads(quick_results.with_suffix(".json").read_text())
    assert data["quick"] is True
    assert data["data"]["speedup"] == pytest.approx(
        data["data"]["median"]["per-sample"] / data["data"]["median"]["device"]
    )
    rows = data["inference"]["rows"]
    assert [r["backend"] for r in rows] == ["torch eager", "torch.compile", "ONNX Runtime"]
    assert rows[0]["images_per_s"] > 0 and rows[0]["p99_ms"] >= rows[0]["p50_ms"]
    assert {(r["threads"], r["batch"]) for r in data["scaling"]["rows"]} >= {(1, 64), (1, 256)}
    choices = data["choices"]
    assert [r["variant"] for r in choices["rows"]] == [
        "fused Adam",
        "foreach Adam",
        "for-loop Adam",
    ]
    assert all(r["epoch_s"] > 0 and r["step_ms"] > 0 for r in choices["rows"])
    assert (
        choices["compile"].get("first_epoch_s", 0) > 0
        or "unavailable" in choices["compile"]["note"]
    )


def test_a_partial_run_keeps_the_other_sections(quick_results):
    before = json.loads(quick_results.with_suffix(".json").read_text())
    assert main(["bench", "--quick", "--only", "data", "--out", str(quick_results)]) == 0
    after = json.loads(quick_results.with_suffix(".json").read_text())
    assert after["time99"] == before["time99"] and after["scaling"] == before["scaling"]
    assert after["data"]["seconds"] != before["data"]["seconds"]  # measured again
    assert "## 4. Scaling" in quick_results.read_text()


def test_bench_rejects_an_unknown_section(tmp_path, capsys):
    assert main(["bench", "--quick", "--only", "data,speed", "--out", str(tmp_path / "r.md")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "'speed'" in err and "time99" in err
    assert not (tmp_path / "r.md").exists()


def test_bench_refuses_an_unwritable_output_before_measuring(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    assert main(["bench", "--quick", "--out", str(blocker / "results.md")]) == 1
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "cannot write" in err and "--out" in err
