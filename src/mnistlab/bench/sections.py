"""The four measurements of ``mnistlab bench``; each returns plain data for the report.

Every comparison runs both sides in this one process, interleaved where it is
repeated, so that a ratio compares like with like on whatever machine runs it.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass

import torch

from ..data.loader import MnistData, hold_out
from ..data.normalize import normalize_array
from ..models import create_model
from ..train.config import TrainConfig
from ..train.fitting import build_training, make_train_loader
from ..train.loop import evaluate
from .persample import persample_loader
from .timing import median_time, time_epoch, time_to_accuracy

__all__ = ["Budget", "data_path", "inference", "scaling", "time_to_99"]


@dataclass
class Budget:
    """How much of each measurement to run: the full benchmark or the CI smoke run."""

    images: int | None = None  # train on the first N images only (None: all)
    test_images: int | None = None  # evaluate on the first N test images only (None: all)
    repeats: int = 3  # data path: epochs per loader
    seeds: int = 5  # time to 99%
    canonical_seeds: int = 5
    max_steps: int | None = None  # cap on steps per time-to-99% run
    latency_runs: int = 200
    throughput_runs: int = 5
    batch_sizes: tuple[int, ...] = (64, 128, 256, 512, 1024)
    threads: tuple[int, ...] = (1, 2)
    preprocess_runs: int = 1000  # to_mnist calls per kind of image
    predict_files: int = 2000  # PNG files through predict_files
    predict_repeats: int = 3
    speedrun_seeds: int = 10  # warm runs of the speedrun preset, after a cold one
    sgemm_n: int = 4096  # the matmul that measures the machine's peak


def _recipe(cfg: TrainConfig, steps_per_epoch: int, device, info, epochs: int | None = None):
    """Model, optimiser, scheduler and loss exactly as ``fit`` builds them for ``cfg``."""
    torch.manual_seed(cfg.seed)
    return build_training(cfg, info.mean, info.std, info.classes, steps_per_epoch, device, epochs)


def _train_split(data: MnistData, budget: Budget) -> tuple[torch.Tensor, torch.Tensor]:
    x, y = data.train
    return (x[: budget.images], y[: budget.images]) if budget.images else (x, y)


def eval_split(data: MnistData, budget: Budget) -> tuple[torch.Tensor, torch.Tensor]:
    """The test images the accuracies are measured on: all, or the smoke run's first few."""
    x, y = data.test
    n = budget.test_images
    return (x[:n], y[:n]) if n else (x, y)


def data_path(data: MnistData, device, budget: Budget) -> dict:
    """One epoch of seed 000's recipe for ``cnn`` on each loader, ``repeats`` times, interleaved."""
    cfg = TrainConfig.from_preset("seed000-cnn")
    mean, std = data.info.mean, data.info.std
    x, y = _train_split(data, budget)
    times: dict[str, list[float]] = {"device": [], "per-sample": []}
    accs: dict[str, list[float]] = {"device": [], "per-sample": []}
    for rep in range(budget.repeats):
        for kind in times:
            cfg.seed = rep
            if kind == "device":
                batches = make_train_loader(cfg, x, y, mean, std).batches(1)
                steps = len(x) // cfg.batch_size
            else:
                batches = persample_loader(x.cpu(), y.cpu(), cfg.batch_size, mean, std, rep)
                steps = len(batches)
            model, opt, sched, loss_fn = _recipe(cfg, steps, device, data.info)
            seconds, _ = time_epoch(model, batches, opt, loss_fn, device, sched)
            times[kind].append(seconds)
            accs[kind].append(evaluate(model, *eval_split(data, budget), mean, std, loss_fn)["acc"])
    med = {k: statistics.median(v) for k, v in times.items()}
    return {
        "model": cfg.model,
        "preset": "seed000-cnn",
        "images": len(x),
        "repeats": budget.repeats,
        "seconds": times,
        "median": med,
        "test_acc": accs,
        "speedup": med["per-sample"] / med["device"],
    }


def time_to_99(data: MnistData, device, budget: Budget, target: float = 0.99) -> dict:
    """Median training seconds until the test accuracy first reaches ``target``, over seeds.

    ``fast`` runs on the device loader, ``seed003-example`` (the canonical PyTorch
    example) on the seeds' per-sample loader; both are evaluated every half epoch.
    """
    mean, std = data.info.mean, data.info.std
    out = {}
    for preset, kind, n_seeds in (
        ("fast", "device", budget.seeds),
        ("seed003-example", "per-sample", budget.canonical_seeds),
    ):
        runs = []
        for seed in range(n_seeds):
            cfg = TrainConfig.from_preset(preset, seed=seed)
            if kind == "per-sample":
                cfg.channels_last = False  # the example as written: NCHW, as torch defaults
            # the recipe's own training split: fast holds out val_size images, seed 003 none
            (x, y), _ = hold_out(*data.train, cfg.val_size, seed)
            if budget.images:
                x, y = x[: budget.images], y[: budget.images]
            if kind == "device":
                loader = make_train_loader(cfg, x, y, mean, std)
                steps, batches = len(loader), loader.batches
            else:
                pl = persample_loader(x.cpu(), y.cpu(), cfg.batch_size, mean, std, seed)
                steps, batches = len(pl), (lambda epoch, pl=pl: pl)
            model, opt, sched, loss_fn = _recipe(cfg, steps, device, data.info)
            r = time_to_accuracy(
                model,
                batches,
                steps,
                opt,
                loss_fn,
                sched,
                eval_split(data, budget),
                mean,
                std,
                device,
                target=target,
                max_epochs=cfg.epochs,
                max_steps=budget.max_steps,
            )
            runs.append({"seed": seed, **r})
        reached = [r["seconds"] for r in runs if r["seconds"] is not None]
        out[preset] = {
            "loader": kind,
            "runs": runs,
            "reached": len(reached),
            "seeds": n_seeds,
            "median": _median_or_none([r["seconds"] for r in runs]),
            "median_epochs": _median_or_none([r["epochs"] for r in runs]),
            "eval_seconds": sum(r["eval_seconds"] for r in runs),
        }
    fast, canonical = out["fast"]["median"], out["seed003-example"]["median"]
    out["speedup"] = canonical / fast if fast and canonical else None
    out["target"] = target
    return out


def _median_or_none(values: list[float | None]) -> float | None:
    """The median, a missing value (target never reached) counting as slowest; None if so."""
    m = statistics.median([float("inf") if v is None else v for v in values])
    return None if m == float("inf") else m


def _backends(model: torch.nn.Module, tmp) -> dict:
    """name -> (batch callable on a float32 numpy array, or the reason it is unavailable)."""
    import numpy as np

    from ..serve.export import export_onnx

    @torch.inference_mode()
    def eager(x: np.ndarray) -> np.ndarray:
        return model(torch.from_numpy(x)).numpy()

    out = {"torch eager": eager}
    try:
        compiled = torch.compile(model)
        probe = np.zeros((2, 1, 28, 28), np.float32)
        t = time.perf_counter()
        with torch.inference_mode():
            compiled(torch.from_numpy(probe))
        out["compile_seconds"] = time.perf_counter() - t

        @torch.inference_mode()
        def comp(x: np.ndarray) -> np.ndarray:
            return compiled(torch.from_numpy(x)).numpy()

        out["torch.compile"] = comp
    except Exception as e:  # inductor needs a C++ compiler; report, do not fail
        out["torch.compile"] = f"unavailable ({type(e).__name__}: {str(e).splitlines()[0][:80]})"
    try:
        import onnxruntime as ort

        path = export_onnx(model, tmp / "model.onnx")
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        out["ONNX Runtime"] = lambda x: session.run(None, {"input": x})[0]
    except Exception as e:  # exporting needs the train extra (onnx)
        out["ONNX Runtime"] = f"unavailable ({type(e).__name__}); pip install 'mnistlab[train]'"
    return out


def inference(data: MnistData, budget: Budget, model_name: str = "fast") -> dict:
    """Throughput at batch 1000, and single-image latency through ``predict``'s whole path.

    Runs on the CPU, where a digit recogniser is usually served. The latency covers
    reading a PNG, the shared preprocessing (``to_mnist``) and the model. Speed does
    not depend on the weights, so an untrained ``model_name`` is used.
    """
    import tempfile
    from pathlib import Path

    from PIL import Image

    from ..serve.predict import Predictor, predict_files

    torch.manual_seed(0)
    model = create_model(model_name).eval()
    meta = model.meta
    x = normalize_array(data.test[0][:1000].cpu().numpy(), meta.mean, meta.std)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        # a user's photo-like input: a real test digit, dark ink on white, upscaled
        digit = 255 - data.test[0][0, 0].cpu().numpy()
        png = tmp / "digit.png"
        Image.fromarray(digit).resize((280, 280), Image.BILINEAR).save(png)
        backends = _backends(model, tmp)
        for name in ("torch eager", "torch.compile", "ONNX Runtime"):
            run = backends[name]
            if isinstance(run, str):
                rows.append({"backend": name, "note": run})
                continue
            batch_s = median_time(lambda run=run: run(x), budget.throughput_runs)
            pred = Predictor(meta.name, list(meta.class_names), meta.mean, meta.std, run)
            lat = []
            predict_files(pred, [str(png)])  # warm-up
            for _ in range(budget.latency_runs):
                t = time.perf_counter()
                predict_files(pred, [str(png)])
                lat.append(1000 * (time.perf_counter() - t))
            lat.sort()
            p99 = lat[min(len(lat) - 1, int(0.99 * len(lat)))]
            model_ms = 1000 * median_time(lambda run=run: run(x[:1]), budget.latency_runs)
            rows.append(
                {
                    "backend": name,
                    "images_per_s": len(x) / batch_s,
                    "p50_ms": lat[len(lat) // 2],
                    "p99_ms": p99,
                    "model_ms": model_ms,
                }
            )
    base = rows[0]["images_per_s"]
    for r in rows:
        if "images_per_s" in r:
            r["throughput_x"] = r["images_per_s"] / base
    return {
        "model": model_name,
        "batch": len(x),
        "runs": budget.latency_runs,
        "rows": rows,
        "compile_seconds": backends.get("compile_seconds"),
    }


def scaling(data: MnistData, device, budget: Budget) -> dict:
    """Training epoch time of the default recipe against batch size and CPU threads.

    Also times the default batch with NHWC turned off, the layout choice this
    benchmark justified. Achieved GFLOP/s (forward+backward counted as 3x the
    forward) shows whether a setting is bound by arithmetic or by per-step overhead.
    """
    from ..analysis.summary import count_flops

    base = TrainConfig()
    mean, std = data.info.mean, data.info.std
    x, y = _train_split(data, budget)
    fwd_flops = count_flops(create_model(base.model))
    before = torch.get_num_threads()
    rows = []
    settings = [(t, b, True) for t in budget.threads for b in budget.batch_sizes]
    settings.append((max(budget.threads), base.batch_size, False))
    try:
        for threads, batch, nhwc in settings:
            if device.type == "cpu":
                torch.set_num_threads(threads)
            # digits only: the network's scaling, per MNIST image (the recipe's outliers
            # add one image per 8 digits to each batch: docs/trust.md)
            cfg = TrainConfig(batch_size=batch, channels_last=nhwc, epochs=1, outliers=0.0)
            loader = make_train_loader(cfg, x, y, mean, std)
            model, opt, sched, loss_fn = _recipe(cfg, len(loader), device, data.info)
            seconds, seen = time_epoch(model, loader.batches(1), opt, loss_fn, device, sched)
            acc = evaluate(model, *eval_split(data, budget), mean, std, loss_fn)["acc"]
            rows.append(
                {
                    "threads": threads,
                    "batch": batch,
                    "channels_last": nhwc,
                    "seconds": seconds,
                    "images": seen,
                    "epoch_seconds": seconds * 60000 / seen,
                    "steps_per_s": len(loader) / seconds,
                    "gflops": 3 * fwd_flops * seen / seconds / 1e9,
                    "test_acc": acc,
                }
            )
    finally:
        torch.set_num_threads(before)
    return {"model": base.model, "rows": rows, "fwd_mflops": fwd_flops / 1e6}
