"""``mnistlab bench``: the seeds' per-sample pipeline, the timed loops, and the smoke run."""

from __future__ import annotations

import gzip
import json
import math
import statistics
from types import SimpleNamespace

import numpy as np
import pytest
import torch

import mnistlab.serve.predict as predict_module
from mnistlab import create_model
from mnistlab.bench import sections, timing
from mnistlab.bench.persample import PerSampleMNIST, persample_loader
from mnistlab.bench.results import QUICK, SECTIONS
from mnistlab.bench.sections import _median_or_none
from mnistlab.bench.timing import time_epoch, time_to_accuracy
from mnistlab.cli import main
from mnistlab.train.optim import make_loss
from tests.support.cli import error_from, error_line, run_main

MEAN, STD = 0.1307, 0.3081


class _Clock:
    """A stand-in for the ``time`` module whose ``perf_counter`` moves only when told."""

    def __init__(self) -> None:
        self.now = 0.0

    def perf_counter(self) -> float:
        return self.now


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


@pytest.mark.slow
def test_time_epoch_counts_every_image(mnist):
    x, y = mnist.train[0][:1000], mnist.train[1][:1000]
    model, opt, loss = _setup()
    seconds, seen = time_epoch(model, persample_loader(x, y, 64, MEAN, STD), opt, loss, "cpu")
    assert seen == 1000 and seconds > 0


@pytest.mark.slow
def test_time_to_accuracy_evaluates_on_the_half_epoch_grid(mnist):
    from mnistlab.data.loader import DeviceLoader

    x, y = mnist.train[0][:2048], mnist.train[1][:2048]
    loader = DeviceLoader(x, y, 64, MEAN, STD, shuffle=True, seed=0, drop_last=True)
    test = (mnist.test[0][:500], mnist.test[1][:500])
    model, opt, loss = _setup()
    never = time_to_accuracy(
        model,
        loader.batches,
        len(loader),
        opt,
        loss,
        None,
        test,
        MEAN,
        STD,
        torch.device("cpu"),
        target=1.01,
        max_epochs=2,
    )
    assert never["seconds"] is None and never["epochs"] is None
    assert [h["epochs"] for h in never["history"]] == [0.5, 1.0, 1.5, 2.0]
    times = [h["seconds"] for h in never["history"]]
    assert times == sorted(times) and never["eval_seconds"] > 0
    # 2,048 images of SGD lift a cnn far above chance: the history is real accuracy
    assert never["history"][-1]["acc"] > 0.8

    model, opt, loss = _setup()
    hit = time_to_accuracy(
        model,
        loader.batches,
        len(loader),
        opt,
        loss,
        None,
        test,
        MEAN,
        STD,
        torch.device("cpu"),
        target=0.5,
        max_epochs=2,
    )
    # the first evaluation at or above 50% stops the clock there
    first = next(h for h in hit["history"] if h["acc"] >= 0.5)
    assert hit["history"][-1] is first and hit["seconds"] == first["seconds"]
    assert hit["steps"] == round(first["epochs"] * len(loader))


@pytest.fixture(scope="module")
def quick_results(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench") / "results.md"
    assert main(["bench", "--quick", "--out", str(out)]) == 0
    return out


def _positive_finite(*values) -> bool:
    return all(isinstance(v, (int, float)) and math.isfinite(v) and v > 0 for v in values)


@pytest.mark.slow
def test_quick_bench_writes_every_section(quick_results):
    text = quick_results.read_text()
    for heading in (
        "## 1. Data path",
        "## 2. Time to 99.0%",
        "## 3. Inference",
        "## 4. Scaling",
        "## 5. Trainer choices",
        "## 6. Preprocessing",
    ):
        assert heading in text
    assert "--quick" in text and f"torch {torch.__version__}" in text
    assert "smoke run on 2,048 training images and 2,048 test images" in text
    data = json.loads(quick_results.with_suffix(".json").read_text())
    assert data["quick"] is True
    assert data["budget"] == json.loads(json.dumps(QUICK.__dict__))
    assert set(data) == {"machine", "quick", "budget", *SECTIONS}
    assert all("measured" in data[s] for s in SECTIONS)

    # 1. data path: one epoch per loader on the first 2,048 images; medians of the runs
    d = data["data"]
    assert d["images"] == 2048 and d["repeats"] == 1
    for kind in ("device", "per-sample"):
        assert len(d["seconds"][kind]) == 1 and _positive_finite(*d["seconds"][kind])
        assert d["median"][kind] == statistics.median(d["seconds"][kind])
        assert all(0 <= a <= 1 for a in d["test_acc"][kind])
        # scored on the smoke run's first 2,048 test images: a count of them right
        assert all(abs(a * 2048 - round(a * 2048)) < 1e-6 for a in d["test_acc"][kind])
        assert f"{d['median'][kind]:.2f} s" in text
    assert data["data"]["speedup"] == pytest.approx(
        data["data"]["median"]["per-sample"] / data["data"]["median"]["device"]
    )
    assert f"{d['speedup']:.1f}x faster per epoch" in text

    # 2. time to 99%: the medians count a missed target as slowest; a ratio only if both hit it
    t = data["time99"]
    assert t["target"] == 0.99
    for preset in ("fast", "seed003-example"):
        p = t[preset]
        assert p["seeds"] == 1 and len(p["runs"]) == 1
        assert p["reached"] == sum(r["seconds"] is not None for r in p["runs"])
        assert p["median"] == _median_or_none([r["seconds"] for r in p["runs"]])
        for r in p["runs"]:
            history = r["history"]
            assert history and _positive_finite(*(h["seconds"] for h in history))
            assert [h["epochs"] for h in history] == sorted(h["epochs"] for h in history)
            assert history[-1]["epochs"] > 0 and all(0 <= h["acc"] <= 1 for h in history)
        assert _positive_finite(p["eval_seconds"])
    fast, canonical = t["fast"]["median"], t["seed003-example"]["median"]
    if fast and canonical:
        assert t["speedup"] == pytest.approx(canonical / fast)
    else:
        assert t["speedup"] is None and "n/a sooner" in text

    # 3. inference: every backend measured or says why not; ratios against eager
    i = data["inference"]
    assert i["model"] == "fast" and i["batch"] == 1000 and i["runs"] == QUICK.latency_runs
    rows = i["rows"]
    assert [r["backend"] for r in rows] == ["torch eager", "torch.compile", "ONNX Runtime"]
    assert "note" not in rows[0] and rows[0]["throughput_x"] == 1
    for r in rows:
        if "note" in r:
            assert set(r) == {"backend", "note"} and "unavailable" in r["note"]
            continue
        assert set(r) == {"backend", "images_per_s", "p50_ms", "p99_ms", "model_ms", "throughput_x"}
        assert _positive_finite(r["images_per_s"], r["p50_ms"], r["p99_ms"], r["model_ms"])
        assert r["throughput_x"] == pytest.approx(r["images_per_s"] / rows[0]["images_per_s"])
        assert f"| {r['backend']} | {r['images_per_s']:,.0f} | {r['throughput_x']:.2f}x " in text
        assert f"| {r['p50_ms']:.2f} ms | {r['p99_ms']:.2f} ms " in text

    # 4. scaling: the derived columns follow from the measured seconds and images
    s = data["scaling"]
    assert {(r["threads"], r["batch"]) for r in s["rows"]} >= {(1, 64), (1, 256)}
    for r in s["rows"]:
        assert 0 < r["images"] <= 2048 and _positive_finite(r["seconds"])
        assert r["epoch_seconds"] == pytest.approx(r["seconds"] * 60000 / r["images"])
        assert r["gflops"] == pytest.approx(
            3 * s["fwd_mflops"] * 1e6 * r["images"] / r["seconds"] / 1e9
        )
        assert _positive_finite(r["steps_per_s"]) and 0 <= r["test_acc"] <= 1
        assert f"| {r['epoch_seconds']:.2f} s | {r['steps_per_s']:.1f} |" in text

    # 5. trainer choices: medians of the runs, and "vs fused" is the quotient of the medians
    choices = data["choices"]
    assert [r["variant"] for r in choices["rows"]] == [
        "fused Adam",
        "foreach Adam",
        "for-loop Adam",
    ]
    assert all(r["epoch_s"] > 0 and r["step_ms"] > 0 for r in choices["rows"])
    fused = choices["rows"][0]["epoch_s"]
    for r in choices["rows"]:
        assert r["epoch_s"] == statistics.median(r["runs"]) and _positive_finite(*r["runs"])
        assert _positive_finite(r["step_ms"])
        assert f"| {r['variant']} | {r['epoch_s']:.2f} s | {r['epoch_s'] / fused:.2f}x " in text
    assert (
        choices["compile"].get("first_epoch_s", 0) > 0
        or "unavailable" in choices["compile"]["note"]
    )

    p, pred = data["preprocess"], data["preprocess"]["predict"]  # 6. preprocessing
    assert [r["side"] for r in p["rows"]] == [28, 280, 280, 512, 512]
    for r in p["rows"]:
        assert _positive_finite(r["p50_ms"]) and r["p50_ms"] <= r["p99_ms"]
        assert f"| {r['p50_ms']:.2f} ms | {r['p99_ms']:.2f} ms |" in text
    assert pred["ms_per_image"] == pytest.approx(1000 * pred["seconds"] / QUICK.predict_files)


@pytest.mark.slow
def test_a_partial_run_keeps_the_other_sections(quick_results):
    path = quick_results.with_suffix(".json")
    before = json.loads(path.read_text())
    # mark what the file holds: the data section must be measured again (so its mark goes),
    # the others must be kept as the file has them (so theirs stays)
    marked = {**before}
    marked["data"] = {**before["data"], "measured": "STALE", "speedup": -1.0}
    marked["time99"] = {**before["time99"], "measured": "KEPT FROM THE FILE"}
    path.write_text(json.dumps(marked))
    assert main(["bench", "--quick", "--only", "data", "--out", str(quick_results)]) == 0
    after = json.loads(path.read_text())
    assert after["time99"] == marked["time99"] and after["scaling"] == before["scaling"]
    assert after["inference"] == before["inference"] and after["choices"] == before["choices"]
    assert after["data"]["measured"] != "STALE"  # measured again
    assert set(after["data"]) == set(before["data"])
    assert _positive_finite(*after["data"]["seconds"]["device"], after["data"]["speedup"])
    text = quick_results.read_text()
    assert "## 4. Scaling" in text
    assert "*Measured KEPT FROM THE FILE.*" in text and "STALE" not in text


def test_median_time_is_the_median_of_the_timed_calls_after_one_warm_up(monkeypatch):
    clock = _Clock()
    monkeypatch.setattr(timing, "time", clock)
    calls = []

    def call_taking(durations):
        durations = iter(durations)

        def fn():
            calls.append(1)
            clock.now += next(durations)

        return fn

    # the first call (100 s) is the untimed warm-up; then 5, 1, 4, 2, 3 -> median 3
    assert timing.median_time(call_taking([100.0, 5.0, 1.0, 4.0, 2.0, 3.0]), 5) == 3.0
    assert len(calls) == 6
    # an even count: the mean of the middle two
    assert timing.median_time(call_taking([100.0, 8.0, 1.0, 2.0, 6.0]), 4) == 4.0


def test_median_or_none_counts_a_missed_target_as_slowest():
    assert _median_or_none([3.0, 1.0, 2.0]) == 2.0
    assert _median_or_none([4.0, 1.0, 2.0, 3.0]) == 2.5
    assert _median_or_none([3.0, None, 1.0]) == 3.0  # None ranks last: median of 1, 3, inf
    assert _median_or_none([None, None, 1.0]) is None
    assert _median_or_none([None]) is None


def test_inference_latency_percentiles_are_ranks_of_the_measured_latencies(monkeypatch, mnist):
    # The latency clock is faked: timed call i of predict's path takes the i-th of a
    # shuffle of 1..200 ms. p50 and p99 are then the 101st and the 199th smallest, the
    # ranks numpy's percentile calls "higher". The work itself is stubbed out: only the
    # bookkeeping around the clock is under test here.
    latencies = np.random.default_rng(0).permutation(np.arange(1, 201)) / 1000
    starts = 10.0 * np.arange(200)
    stamps = iter(np.column_stack([starts, starts + latencies]).ravel().tolist())
    monkeypatch.setattr(sections, "time", SimpleNamespace(perf_counter=lambda: next(stamps)))
    calls = []
    monkeypatch.setattr(predict_module, "predict_files", lambda pred, files: calls.append(files))

    def backends(model, tmp):
        return {
            "torch eager": lambda x: np.zeros((len(x), 10), np.float32),
            "torch.compile": "unavailable (not in this test)",
            "ONNX Runtime": "unavailable (not in this test)",
        }

    monkeypatch.setattr(sections, "_backends", backends)
    res = sections.inference(mnist, sections.Budget(latency_runs=200, throughput_runs=1))
    assert next(stamps, None) is None  # two clock readings per timed call, no more
    assert len(calls) == 201 and all(f == calls[0] for f in calls)  # one warm-up, 200 timed
    eager, *others = res["rows"]
    assert [r["note"] for r in others] == ["unavailable (not in this test)"] * 2
    assert eager["p50_ms"] == pytest.approx(101) and eager["p99_ms"] == pytest.approx(199)
    want = np.percentile(1000 * latencies, [50, 99], method="higher")
    assert [eager["p50_ms"], eager["p99_ms"]] == pytest.approx(want.tolist())
    assert eager["throughput_x"] == 1 and _positive_finite(eager["images_per_s"])
    assert res["runs"] == 200 and res["batch"] == 1000


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


@pytest.mark.parametrize("batches", ["0", "-1,64", "100000000", "", "1,,64", "x"])
def test_ops_bench_refuses_bad_batch_sizes(batches):
    line = error_line(run_main("ops-bench", "--batches", batches), 2)
    assert "--batches must be batch sizes from 1 to" in line and repr(batches) in line


def test_ops_bench_refuses_absurd_threads():
    line = error_line(run_main("ops-bench", "--threads", "1000"), 2)
    assert "--threads must be between 1 and" in line


def test_bench_out_never_overwrites_another_file(tmp_path, capsys):
    checkpoint_json = tmp_path / "best.json"
    checkpoint_json.write_text('{"format": "mnistlab-checkpoint"}')
    # best.md would write its results into best.json beside it
    assert main(["bench", "--quick", "--out", str(tmp_path / "best.md")]) == 2
    error_from(capsys, "not an earlier bench's results")
    assert checkpoint_json.read_text() == '{"format": "mnistlab-checkpoint"}'
    image = tmp_path / "ok.png"
    image.write_bytes(b"png bytes")
    assert main(["bench", "--quick", "--out", str(image)]) == 2
    error_from(capsys, "writes .md")
    assert image.read_bytes() == b"png bytes"


def test_bench_only_empty_is_refused_not_run_in_full(capsys):
    assert main(["bench", "--quick", "--only", ""]) == 2
    error_from(capsys, "--only needs a section")
