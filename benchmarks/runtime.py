"""What using a trained model costs: start-up, memory, install size; the old code beside.

    python benchmarks/runtime.py RUN [--ensemble ENS] [--old-src DIR] [--small-venv DIR]
        [--repeats 5] [--files 2000] [--out-dir benchmarks]

RUN is a run folder from ``make train`` (it holds ``best.onnx``); ``model.onnx`` is
exported from it. Every command runs as a subprocess, ``--repeats`` times, the columns'
commands in turn (round-robin), and its median wall time and peak RSS (``wait4``'s
``ru_maxrss``) are reported:

- ``mnistlab --help``;
- ``mnistlab predict model.onnx one.png``, and ``predict RUN one.png``;
- ``predict model.onnx`` over ``--files`` PNGs: ``(wall(N) - wall(1)) / (N - 1)`` per image;
- ``mnistlab serve model.onnx``, ``--workers 1`` and ``2``: the RSS of the process tree
  (supervisor and workers) after 50 requests; and ``serve RUN --backend torch`` beside.

``--old-src``: the ``src/`` of a checkout from before (``git worktree add /tmp/old
COMMIT``), run by the same Python on the same machine, in the same run, so the two sets
of figures compare. ``--small-venv``: the small install (core + web, no torch; build it
as ``tests/project/test_wheel.py`` does): its size on disk package by package, and the
predict and serve figures again with its ``mnistlab``. ``--ensemble``: an ensemble run,
for the agreement check. The agreement of the torch-free path with torch is measured on
1,000 MNIST test digits: the run's ONNX file against torch (calibrated), a plain export
(temperature 1) against torch, and the ensemble's. Writes runtime.md and runtime.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from importlib.metadata import distributions
from pathlib import Path

import numpy as np
from PIL import Image
from web_load import _free_port, _rss_kb, _tree  # beside this script: the process tree's RSS

ROOT = Path(__file__).resolve().parents[1]


def run_once(cmd: list[str], env: dict) -> tuple[float, float]:
    """(wall seconds, peak RSS in MB) of one run of ``cmd``; it must succeed."""
    with tempfile.TemporaryFile() as err:
        t = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=err, env=env)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t
        proc.returncode = os.waitstatus_to_exitcode(status)
        if proc.returncode != 0:
            err.seek(0)
            raise SystemExit(f"{' '.join(cmd)} failed: {err.read().decode()[-800:]}")
    return wall, usage.ru_maxrss / 1024


def measure_interleaved(jobs: dict, repeats: int) -> dict:
    """``{key: (cmd, env)}`` -> ``{key: {"wall_s", "peak_rss_mb"}}``, medians of ``repeats``.
    Round-robin: each repeat runs every job once, so a slow spell of the machine (they
    differ by 1.5x from minute to minute here) falls on every column alike."""
    for cmd, env in jobs.values():
        run_once(cmd, env)  # warm the page cache
    runs = {key: [] for key in jobs}
    for _ in range(repeats):
        for key, (cmd, env) in jobs.items():
            runs[key].append(run_once(cmd, env))
    return {
        key: {
            "wall_s": statistics.median(r[0] for r in rs),
            "peak_rss_mb": statistics.median(r[1] for r in rs),
        }
        for key, rs in runs.items()
    }


def serve_rss(mnistlab: list[str], model: str, flags: list[str], png: bytes, env: dict) -> float:
    """RSS (MB) of ``mnistlab serve MODEL *flags`` and its workers after 50 requests."""
    port = _free_port()
    cmd = [*mnistlab, "serve", model, "--port", str(port), *flags]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        end = time.monotonic() + 180
        while True:
            try:
                urllib.request.urlopen(url + "/readyz", timeout=2).read()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > end:
                    raise SystemExit(f"{' '.join(cmd)} did not come up") from None
                time.sleep(0.2)
        for _ in range(50):  # every worker has answered some: its model and pools are up
            req = urllib.request.Request(
                url + "/api/predict", data=png, headers={"Content-Type": "image/png"}
            )
            urllib.request.urlopen(req, timeout=30).read()
        time.sleep(1.0)
        return sum(_rss_kb(p) for p in _tree(proc.pid)) / 1024  # supervisor and workers
    finally:
        proc.terminate()
        proc.wait(timeout=60)


def digit_pngs(folder: Path, n: int) -> tuple[Path, bytes]:
    """``n`` MNIST test digits as 280x280 dark-on-white PNGs in ``folder``; the first's path
    and bytes."""
    from mnistlab.data import load_arrays

    x, _ = load_arrays("mnist", "test", os.environ.get("MNISTLAB_DATA"))
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        img = Image.fromarray(255 - x[i % len(x)]).resize((280, 280), Image.BICUBIC)
        img.save(folder / f"{i:05d}.png")
    first = folder / "00000.png"
    return first, first.read_bytes()


def site_packages_sizes(venv: Path) -> dict:
    """Megabytes on disk per installed distribution of ``venv``, and the whole venv's."""
    (site,) = venv.glob("lib/python3*/site-packages")
    sizes = {}
    for dist in distributions(path=[str(site)]):
        total = 0
        for f in dist.files or []:
            p = Path(dist.locate_file(f))
            if p.is_file():
                total += p.stat().st_size
        sizes[dist.metadata["Name"]] = total / 2**20

    def du(*flags: str) -> float:  # MiB
        out = subprocess.run(["du", *flags, str(venv)], capture_output=True, text=True).stdout
        return int(out.split()[0]) / (2**20 if "-sb" in flags else 2**10)

    return {
        "disk_mb": du("-sk"),  # blocks used, as `du -sh` shows
        "total_mb": du("-sb"),  # the files' sizes
        "packages_mb": dict(sorted(sizes.items(), key=lambda kv: -kv[1])),
    }


def agreement(run: Path, ensemble: Path | None) -> dict:
    """Labels and probabilities of the torch-free path against torch, 1,000 MNIST digits."""
    from mnistlab.data import load_arrays
    from mnistlab.models import set_temperature
    from mnistlab.runs.checkpoint import load_checkpoint
    from mnistlab.serve.export import export_onnx
    from mnistlab.serve.predict import load_predictor

    x, _ = load_arrays("mnist", "test", os.environ.get("MNISTLAB_DATA"))
    digits = x[:1000]
    pairs = {"calibrated (the run's best.onnx)": (run, run)}
    with tempfile.TemporaryDirectory() as tmp:
        model, _ = load_checkpoint(run)
        set_temperature(model, 1.0)
        model.meta.reject_threshold = None
        plain = export_onnx(model, Path(tmp) / "plain.onnx")
        out = {}
        import torch

        mean, std = model.meta.mean, model.meta.std
        with torch.no_grad():
            z = model(torch.from_numpy(digits[:, None]).float().div(255).sub(mean).div(std))
        want = torch.softmax(z.double(), 1).numpy()
        got = load_predictor(plain).probs(digits)
        out["plain (temperature 1)"] = _compare(got, want)
        if ensemble is not None:
            pairs["ensemble (its best.onnx)"] = (ensemble, ensemble)
        for name, (a, b) in pairs.items():
            got = load_predictor(a).probs(digits)
            want = load_predictor(b, backend="torch").probs(digits)
            out[name] = _compare(got, want)
    return out


def _compare(got: np.ndarray, want: np.ndarray) -> dict:
    return {
        "same_labels": int((got.argmax(1) == want.argmax(1)).sum()),
        "n": len(got),
        "max_abs_diff": float(np.abs(got - want).max()),
    }


FIGURES = {  # key -> the arguments after `mnistlab`; MODEL, RUN, ONE, PNGS filled in
    "help": ["--help"],
    "predict_onnx_one": ["predict", "MODEL", "ONE"],
    "predict_run_one": ["predict", "RUN", "ONE"],
    "predict_onnx_many": ["predict", "MODEL", "PNGS"],
}


def figures(columns: dict, a, paths: dict, png: bytes) -> dict:
    """Every column's figures: ``columns`` maps a name to ``(mnistlab command, env)``."""
    jobs = {
        (col, key): ([*cmd, *(paths.get(x, x) for x in args)], env)
        for key, args in FIGURES.items()
        for col, (cmd, env) in columns.items()
    }
    timed = measure_interleaved(jobs, a.repeats)
    rows = {}
    for col, (cmd, env) in columns.items():
        r = {key: timed[col, key] for key in FIGURES}
        many, one = r["predict_onnx_many"]["wall_s"], r["predict_onnx_one"]["wall_s"]
        r["per_image_ms"] = (many - one) / (a.files - 1) * 1e3
        r["serve_onnx_rss_mb"] = serve_rss(cmd, paths["MODEL"], [], png, env)
        r["serve_onnx_2_workers_rss_mb"] = serve_rss(
            cmd, paths["MODEL"], ["--workers", "2"], png, env
        )
        rows[col] = r
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("run", type=Path)
    ap.add_argument("--ensemble", type=Path)
    ap.add_argument("--old-src", type=Path)
    ap.add_argument("--small-venv", type=Path)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--files", type=int, default=2000)
    ap.add_argument("--out-dir", type=Path, default=ROOT / "benchmarks")
    a = ap.parse_args()
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "")}
    env = {k: v for k, v in env.items() if v}
    doc = {"machine": _machine(), "files": a.files, "repeats": a.repeats, "rows": {}}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        model = tmp / "model.onnx"
        py = [sys.executable, "-m", "mnistlab"]
        subprocess.run([*py, "export", str(a.run), "--out", str(model)], check=True, env=env)
        one, png = digit_pngs(tmp / "pngs", a.files)
        paths = {"MODEL": str(model), "RUN": str(a.run), "ONE": str(one), "PNGS": str(tmp / "pngs")}
        columns = {"full install": (py, env)}
        if a.small_venv:
            columns["small install"] = ([str(a.small_venv / "bin" / "mnistlab")], env)
            doc["small_install_size"] = site_packages_sizes(a.small_venv)
        if a.old_src:
            columns["before (old code, full install)"] = (py, {**env, "PYTHONPATH": str(a.old_src)})
        doc["rows"] = figures(columns, a, paths, png)
        for col in ("full install", "before (old code, full install)"):
            if col in columns:
                cmd, col_env = columns[col]
                doc["rows"][col]["serve_run_torch_rss_mb"] = serve_rss(
                    cmd, str(a.run), ["--backend", "torch"], png, col_env
                )
    doc["full_install_size"] = site_packages_sizes(Path(sys.prefix))
    doc["agreement"] = agreement(a.run, a.ensemble)
    a.out_dir.mkdir(parents=True, exist_ok=True)
    (a.out_dir / "runtime.json").write_text(json.dumps(doc, indent=2) + "\n")
    (a.out_dir / "runtime.md").write_text(markdown(doc))
    print(markdown(doc))


def _machine() -> dict:
    cpu = re.search(r"^model name\s*:\s*(.+)$", Path("/proc/cpuinfo").read_text(), re.M)
    return {
        "cpu": cpu.group(1) if cpu else "unknown",
        "cores": len(os.sched_getaffinity(0)),
        "python": platform.python_version(),
        "date": time.strftime("%Y-%m-%d"),
        "load_before": os.getloadavg()[0],
    }


def markdown(doc: dict) -> str:
    m = doc["machine"]
    cols = list(doc["rows"])
    lines = [
        "# Using a trained model: start-up, memory, install size",
        "",
        f"`python benchmarks/runtime.py` on {m['cpu']} ({m['cores']} cores), Python "
        f"{m['python']}, {m['date']}; medians of {doc['repeats']} runs (load average "
        f"{m['load_before']:.1f} at the start). Each column is one install or code "
        "version, all in this one run, their commands run in turn.",
        "",
        "| figure | goal | " + " | ".join(cols) + " |",
        "|---|---|" + "---:|" * len(cols),
    ]
    rows = [
        ("`mnistlab --help`: wall", "≤ 0.3 s", lambda r: f"{r['help']['wall_s']:.2f} s"),
        ("`--help`: peak RSS", "", lambda r: f"{r['help']['peak_rss_mb']:.0f} MB"),
        (
            "`predict model.onnx one.png`: wall",
            "≤ 0.5 s",
            lambda r: f"{r['predict_onnx_one']['wall_s']:.2f} s",
        ),
        (
            "`predict model.onnx one.png`: peak RSS",
            "≤ 120 MB",
            lambda r: f"{r['predict_onnx_one']['peak_rss_mb']:.0f} MB",
        ),
        (
            "`predict RUN one.png`: wall / peak RSS",
            "",
            lambda r: (
                f"{r['predict_run_one']['wall_s']:.2f} s / "
                f"{r['predict_run_one']['peak_rss_mb']:.0f} MB"
            ),
        ),
        (
            f"`predict model.onnx` over {doc['files']:,} PNGs: per image",
            "≤ 1.5 ms",
            lambda r: f"{r['per_image_ms']:.2f} ms",
        ),
        (
            "`serve model.onnx`: RSS",
            "≤ 150 MB",
            lambda r: f"{r['serve_onnx_rss_mb']:.0f} MB",
        ),
        (
            "`serve model.onnx --workers 2`: RSS in all",
            "≤ 350 MB",
            lambda r: f"{r['serve_onnx_2_workers_rss_mb']:.0f} MB",
        ),
        (
            "`serve RUN --backend torch`: RSS",
            "",
            lambda r: (
                f"{r['serve_run_torch_rss_mb']:.0f} MB" if "serve_run_torch_rss_mb" in r else "-"
            ),
        ),
    ]
    for name, goal, cell in rows:
        lines.append(
            f"| {name} | {goal} | " + " | ".join(cell(doc["rows"][c]) for c in cols) + " |"
        )
    for key, title in (
        ("small_install_size", "small install"),
        ("full_install_size", "full install"),
    ):
        if key not in doc:
            continue
        size = doc[key]
        top = [f"{k} {v:.1f}" for k, v in size["packages_mb"].items() if v >= 1]
        lines += [
            "",
            f"**{title}**: {size['disk_mb']:.0f} MB on disk (the whole venv, `du -sk`; "
            f"its files' sizes add up to {size['total_mb']:.0f} MB). "
            "Packages of 1 MB or more, MB: " + ", ".join(top) + ".",
        ]
    lines += ["", "**The torch-free path against torch**, 1,000 MNIST test digits:", ""]
    lines += ["| model | same label | max abs. difference of a probability |", "|---|---:|---:|"]
    for name, c in doc["agreement"].items():
        lines.append(f"| {name} | {c['same_labels']} / {c['n']} | {c['max_abs_diff']:.1e} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
