"""predict and export, the way a user runs them: files, folders, globs, stdin, ONNX."""

from __future__ import annotations

import io
import json
import os
import pty
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import torch
from PIL import Image

from mnistlab import load_checkpoint
from mnistlab.cli import main
from mnistlab.data import normalize
from mnistlab.serve.predict import shown
from tests.support.cli import error_from, error_line, immutable, run_cli, run_main
from tests.support.images import stroke_png, thin_png
from tests.support.processes import cli_env

pytestmark = pytest.mark.slow  # every test here needs the trained cnn


@pytest.fixture(scope="module")
def run(trained_run):
    return trained_run


@pytest.fixture(scope="module")
def images(tmp_path_factory, mnist):
    """Three real digits saved as black-on-white PNGs, plus two bad files."""
    folder = tmp_path_factory.mktemp("imgs")
    x, y = mnist.test
    for i in range(3):
        big = Image.fromarray(255 - x[i, 0].numpy()).resize((140, 140), Image.BICUBIC)
        big.save(folder / f"digit{i}_{int(y[i])}.png")
    (folder / "notes.txt.png").write_bytes(b"this is not an image")
    Image.new("RGB", (50, 50), "white").save(folder / "blank.png")
    return folder


def test_predict_a_folder_with_bad_files(run, images, capsys):
    assert main(["predict", str(run), str(images)]) == 1  # two bad files in the batch
    out, err = capsys.readouterr()
    lines = out.strip().splitlines()
    assert len(lines) == 3
    for line in lines:
        name = line.split(":")[0]
        true = name.rsplit("_", 1)[1].split(".")[0]
        assert f": {true} (" in line and "top 3:" in line
    errors = err.strip().splitlines()
    assert len(errors) == 2 and all(e.startswith("error: ") for e in errors)
    assert any("blank.png: no ink found" in e for e in errors)
    assert any("notes.txt.png: not an image" in e for e in errors)
    assert "Traceback" not in err


def test_predict_json_glob_and_show(run, images, tmp_path, capsys):
    show = tmp_path / "show.png"
    pattern = str(images / "digit*.png")
    assert main(["predict", str(run), pattern, "--json", "--show", str(show)]) == 0
    data = json.loads(capsys.readouterr().out.split("\nwrote")[0])
    assert [d["file"].rsplit("/", 1)[1] for d in data] == sorted(
        p.name for p in images.glob("digit*")
    )
    for d in data:
        assert d["label"] == d["file"].rsplit("_", 1)[1][0]
        assert len(d["top3"]) == 3 and d["top3"][0]["probability"] == d["confidence"]
        assert sum(t["probability"] for t in d["top3"]) <= 1 + 1e-9
        assert d["not_digit"] is False and d["digit_score"] == d["confidence"]
        assert sum(d["probabilities"]) == pytest.approx(1)
    assert Image.open(show).size[1] > 300


def test_predict_from_stdin(run, images):
    data = next(images.glob("digit0_*.png")).read_bytes()
    proc = subprocess.run(
        [sys.executable, "-m", "mnistlab", "predict", str(run), "-"],
        input=data,
        capture_output=True,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.decode().startswith("-: 7 (")  # the first MNIST test digit is a 7


def test_onnx_gives_torch_logits_on_1000_test_images(run, mnist, tmp_path, capsys):
    path = tmp_path / "model.onnx"
    assert main(["export", str(run), "--format", "onnx", "-o", str(path)]) == 0
    model, _ = load_checkpoint(run)
    x = normalize(mnist.test[0][:1000], model.meta.mean, model.meta.std)
    with torch.no_grad():
        want = model(x).numpy()
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = session.run(None, {"input": x.numpy()})[0]
    assert got.shape == (1000, 10)
    assert np.abs(got - want).max() <= 1e-4


def test_predict_from_onnx_matches_the_checkpoint(run, images, tmp_path, capsys):
    path = tmp_path / "m.onnx"
    assert main(["export", str(run), "-o", str(path)]) == 0
    capsys.readouterr()
    files = sorted(str(p) for p in images.glob("digit*.png"))
    assert main(["predict", str(path), *files, "--json"]) == 0
    from_onnx = json.loads(capsys.readouterr().out)
    assert main(["predict", str(run), *files, "--json"]) == 0
    from_ckpt = json.loads(capsys.readouterr().out)
    assert [d["label"] for d in from_onnx] == [d["label"] for d in from_ckpt]
    for a, b in zip(from_onnx, from_ckpt, strict=True):
        assert a["confidence"] == pytest.approx(b["confidence"], abs=1e-5)


def test_torchscript_export_carries_metadata(run, tmp_path):
    path = tmp_path / "m.pt"
    assert main(["export", str(run), "--format", "torchscript", "-o", str(path)]) == 0
    files = {"mnistlab.json": ""}
    loaded = torch.jit.load(str(path), _extra_files=files)
    meta = json.loads(files["mnistlab.json"])
    assert meta["name"] == "cnn" and meta["class_names"][3] == "3"
    model, _ = load_checkpoint(run)
    x = torch.randn(4, 1, 28, 28)
    assert torch.allclose(loaded(x), model(x), atol=1e-5)


@pytest.mark.parametrize(
    "args,code,needle",
    [
        (["predict", "RUN", "/no/such.png"], 1, "no/such.png: file not found"),
        (["predict", "RUN", "/tmp/*.nothing-matches"], 2, "no files match"),
        (["predict", "/no/run", "x.png"], 1, "no checkpoint"),
        (["export", "RUN", "--format", "tflite"], 2, "--format must be onnx or torchscript"),
    ],
)
def test_bad_predict_and_export_input(run, args, code, needle, capsys):
    args = [str(run) if a == "RUN" else a for a in args]
    assert main(args) == code
    err = capsys.readouterr().err
    assert needle in err and "Traceback" not in err


def test_predict_an_empty_name_does_not_classify_the_current_folder(trained_run, capsys):
    assert main(["predict", str(trained_run), ""]) == 2
    error_from(capsys, "an empty name is not an image")


def test_show_refuses_to_overwrite_an_input_or_a_wrong_extension(untrained_run, tmp_path):
    one = stroke_png(tmp_path / "one.png")
    before = one.read_bytes()
    proc = run_main("predict", untrained_run, one, "--show", one)
    error_line(proc, 2, "--show", "overwritten")
    assert one.read_bytes() == before and proc.stdout == ""
    for name in ("out.txt", "out.jpg"):
        proc = run_main("predict", untrained_run, one, "--show", tmp_path / name)
        error_line(proc, 2, "--show", ".png")
        assert not (tmp_path / name).exists()
    link = tmp_path / "link.png"  # another name for the input is still the input
    link.symlink_to(one)
    error_line(run_main("predict", untrained_run, one, "--show", link), 2, "overwritten")
    assert one.read_bytes() == before


def test_predict_a_folder_with_thin_images_classifies_every_other_file(untrained_run, tmp_path):
    for w, h in [(300, 2), (1000, 3), (10000, 2)]:
        thin_png(tmp_path / f"thin{w}x{h}.png", w, h)
    stroke_png(tmp_path / "good.png")
    proc = run_main("predict", untrained_run, tmp_path, "--json")
    assert "Traceback" not in proc.stderr and "unexpected" not in proc.stderr
    data = json.loads(proc.stdout)
    assert [Path(d["file"]).name for d in data] == sorted(p.name for p in tmp_path.iterdir())
    assert any(d["file"].endswith("good.png") and "label" in d for d in data)
    assert proc.returncode == (1 if any("error" in d for d in data) else 0)


def test_show_into_an_unwritable_folder(untrained_run, tmp_path):
    one = stroke_png(tmp_path / "one.png")
    proc = run_main("predict", untrained_run, one, "--show", one / "s.png")
    error_line(proc, 2, "--show", "not a folder")
    ro = tmp_path / "ro"
    ro.mkdir()
    with immutable(ro):  # not even root can write into it
        proc = run_main("predict", untrained_run, one, "--show", ro / "s.png")
        error_line(proc, 1, "--show", str(ro))
        assert proc.stdout == ""  # refused before any work


def test_predict_refuses_a_fifo_and_keeps_going(untrained_run, tmp_path, mnist_dir):
    stroke_png(tmp_path / "a.png")
    os.mkfifo(tmp_path / "b.png")
    stroke_png(tmp_path / "c.png")
    proc = run_cli(mnist_dir, "predict", untrained_run, tmp_path, timeout=60)
    err = error_line(proc, 1, "b.png", "FIFO")
    assert "corrupt" not in err
    assert [line.split(":")[0] for line in proc.stdout.splitlines()] == [
        str(tmp_path / "a.png"),
        str(tmp_path / "c.png"),
    ]


def test_a_newline_in_a_file_name_cannot_fake_a_line(untrained_run, tmp_path, mnist_dir):
    fake = stroke_png(tmp_path / "x\nfake.png: 9 (99.9%)  top 3: 9 99.9%.png")
    bad = tmp_path / "y\nerror: nothing.png"
    bad.write_bytes(b"not an image")
    proc = run_cli(mnist_dir, "predict", untrained_run, fake, bad)
    error_line(proc, 1, "y\\nerror: nothing.png")
    (line,) = proc.stdout.splitlines()
    assert line.startswith(str(tmp_path / "x\\nfake.png"))
    proc = run_cli(mnist_dir, "predict", untrained_run, fake, "--json")  # JSON escapes it already
    assert json.loads(proc.stdout)[0]["file"] == str(fake)
    assert shown("a\nb\x1b[2Jc\udcff") == "a\\nb\\x1b[2Jc\\udcff" and shown("é.png") == "é.png"


def test_rich_markup_in_a_file_name_is_printed_as_is(untrained_run, tmp_path, mnist_dir):
    odd = stroke_png(tmp_path / "[bold]x[red].png")
    proc = run_cli(mnist_dir, "predict", untrained_run, odd)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith(f"{odd}: ")


def test_streamed_json_is_the_same_text_as_one_dump(untrained_run, tmp_path):
    stroke_png(tmp_path / "a.png")
    (tmp_path / "b.png").write_bytes(b"broken")
    proc = run_main("predict", untrained_run, tmp_path, "--json")
    assert proc.returncode == 1
    assert proc.stdout == json.dumps(json.loads(proc.stdout), indent=2) + "\n"


def _many(folder: Path, n: int) -> Path:
    folder.mkdir()
    buf = io.BytesIO()
    Image.open(stroke_png(folder / "0000.png")).save(buf, "PNG")
    for i in range(1, n):
        (folder / f"{i:04d}.png").write_bytes(buf.getvalue())
    return folder


@pytest.mark.slow
def test_progress_bar_only_on_a_terminal_and_never_in_json(untrained_run, tmp_path, mnist_dir):
    folder = _many(tmp_path / "many", 300)
    proc = run_cli(mnist_dir, "predict", untrained_run, folder, "--json", timeout=300)
    assert proc.returncode == 0 and proc.stderr == ""  # stderr not a terminal: no bar
    assert len(json.loads(proc.stdout)) == 300
    main, sub = pty.openpty()
    seen = []

    def drain():  # read the terminal as it is written, so the child never blocks on it
        while True:
            try:
                chunk = os.read(main, 65536)
            except OSError:
                return
            if not chunk:
                return
            seen.append(chunk)

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    try:
        child = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "mnistlab",
                "predict",
                str(untrained_run),
                str(folder),
                "--json",
            ],
            stdout=subprocess.PIPE,
            stderr=sub,
            env={**cli_env(mnist_dir), "TERM": "xterm", "COLUMNS": "100"},
        )
        os.close(sub)
        out, _ = child.communicate(timeout=300)
        reader.join(10)
    finally:
        os.close(main)
    assert child.returncode == 0
    assert len(json.loads(out)) == 300  # stdout is pure JSON
    assert b"/300" in b"".join(seen)  # the bar was drawn on the terminal


def test_predict_tta_with_an_onnx_file_is_refused(saved_runs, tmp_path, capsys):
    pytest.importorskip("onnx")
    runs, png = saved_runs
    onnx_path = tmp_path / "model.onnx"
    assert main(["export", str(runs[0]), "-o", str(onnx_path)]) == 0
    capsys.readouterr()
    assert main(["predict", "--tta", str(onnx_path), str(png)]) == 2
    error_from(capsys, "--tta needs the run folder or checkpoint")
