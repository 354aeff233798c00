"""Temperature scaling, ensembles and test-time augmentation, checked against
references computed here: scipy's minimiser, softmax by hand, integer shifts and
scipy's rotation, and (marked slow) real MNIST runs through the command line."""

from __future__ import annotations

import contextlib
import io
import itertools
import json
import math
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from safetensors.torch import load_file
from torch import nn

from mnistlab import load_checkpoint
from mnistlab.cli import main
from mnistlab.errors import MnistlabError
from mnistlab.models import (
    Ensemble,
    ModelMeta,
    _tta,
    create_model,
    fit_temperature,
    set_temperature,
    with_tta,
)
from mnistlab.models._tta import VIEWS, _grid
from mnistlab.runs.checkpoint import CheckpointError, save_checkpoint
from mnistlab.serve.predict import load_predictor
from tests.support.processes import cli_env

MNIST_MEAN, MNIST_STD = 0.1307, 0.3081
CLI = [sys.executable, "-m", "mnistlab"]


# --- helpers: references that do not use the code under test -----------------------


def _nll(z: np.ndarray, y: np.ndarray, t: float) -> float:
    """Mean cross-entropy of softmax(z / t) on labels y, in numpy float64."""
    s = z / t
    s = s - s.max(1, keepdims=True)
    return float(np.mean(np.log(np.exp(s).sum(1)) - s[np.arange(len(y)), y]))


def _ece(probs: np.ndarray, labels: np.ndarray, bins: int = 15) -> float:
    """Expected calibration error over equal-width bins (lo, hi], written out in numpy."""
    conf, pred = probs.max(1), probs.argmax(1)
    correct = (pred == labels).astype(np.float64)
    edges = np.linspace(0, 1, bins + 1)
    total = 0.0
    for lo, hi in itertools.pairwise(edges):
        m = (conf > lo) & (conf <= hi) if lo > 0 else (conf <= hi)
        if m.any():
            total += m.sum() / len(labels) * abs(correct[m].mean() - conf[m].mean())
    return total


def _shifted(raw: torch.Tensor, dx: int, dy: int) -> torch.Tensor:
    """``raw`` (N, 1, H, W) moved dx pixels right and dy down, background (0) let in."""
    out = torch.zeros_like(raw)
    h, w = raw.shape[-2:]
    src = raw[..., max(0, -dy) : h - max(0, dy), max(0, -dx) : w - max(0, dx)]
    out[..., max(0, dy) : h - max(0, -dy), max(0, dx) : w - max(0, -dx)] = src
    return out


def _views_by_hand(raw: torch.Tensor) -> list[torch.Tensor]:
    """The 7 TTA views of un-normalised images, made with slicing and scipy's rotate
    (bilinear, about the image centre, zeros outside): the documented VIEWS."""
    from scipy import ndimage

    views = [raw] + [_shifted(raw, dx, dy) for dx, dy in ((1, 0), (-1, 0), (0, 1), (0, -1))]
    for degrees in (10, -10):
        turned = ndimage.rotate(
            raw.numpy(), degrees, axes=(3, 2), reshape=False, order=1, mode="constant", cval=0.0
        )
        views.append(torch.from_numpy(turned))
    return views


def _tta_probs_by_hand(forward, raw: torch.Tensor, mean: float, std: float) -> torch.Tensor:
    """Mean softmax over the 7 views; ``forward`` maps normalised images to logits."""
    with torch.no_grad():
        return torch.stack(
            [F.softmax(forward((v - mean) / std).double(), 1) for v in _views_by_hand(raw)]
        ).mean(0)


def _randomised(model: nn.Module, seed: int, logit_scale: float = 1.0) -> nn.Module:
    """``model`` freshly initialised from ``seed``, BatchNorm statistics drawn too (not
    0 and 1), logits enlarged by ``logit_scale`` so that a temperature visibly changes
    them; in eval mode."""
    g = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng(), torch.no_grad():
        torch.manual_seed(seed)
        for m in model.modules():
            if hasattr(m, "reset_parameters"):
                m.reset_parameters()
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.1)
                m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
        last = [m for m in model.modules() if isinstance(m, nn.Linear)][-1]
        last.weight.mul_(logit_scale)
        last.bias.mul_(logit_scale)
    return model.eval()


def _one_line_error(err: str, needle: str) -> None:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("error: ") and needle in lines[0], err
    assert "Traceback" not in err and "unexpected" not in err, err


def _ort_session(graph):
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    return ort.InferenceSession(graph, providers=["CPUExecutionProvider"])


# --- 1. fitting a temperature ------------------------------------------------------


@pytest.mark.parametrize("t_true", [0.5, 2.0])
def test_fit_temperature_recovers_a_known_temperature_and_matches_scipy(t_true):
    optimize = pytest.importorskip("scipy.optimize")
    g = torch.Generator().manual_seed(int(t_true * 10))
    z = torch.randn(20_000, 10, generator=g, dtype=torch.float64) * 3
    y = torch.multinomial(torch.softmax(z / t_true, 1), 1, generator=g).squeeze(1)

    t = fit_temperature(z.float(), y)
    assert t == pytest.approx(t_true, rel=0.05)

    zn, yn = z.float().double().numpy(), y.numpy()
    best = optimize.minimize_scalar(
        lambda log_t: _nll(zn, yn, math.exp(log_t)),
        bounds=(math.log(1e-2), math.log(1e2)),
        method="bounded",
        options={"xatol": 1e-9},
    )
    assert t == pytest.approx(math.exp(best.x), rel=1e-3)
    # and it is a minimum: both neighbours cost more
    assert _nll(zn, yn, t) <= min(_nll(zn, yn, t * 1.01), _nll(zn, yn, t / 1.01))


# --- 2. applying it ----------------------------------------------------------------


def test_set_temperature_divides_logits_and_keeps_the_prediction():
    torch.manual_seed(0)
    raw_model = _randomised(create_model("cnn"), seed=1, logit_scale=20)
    model = _randomised(create_model("cnn"), seed=1, logit_scale=20)
    x = torch.randn(64, 1, 28, 28)
    with torch.no_grad():
        raw = raw_model(x)
        set_temperature(model, 2.0)
        hot = model(x)
        set_temperature(model, 4.0)  # replaces 2.0, does not divide twice
        hotter = model(x)
        set_temperature(model, 1.0)
        back = model(x)
    assert model.meta.temperature == 1.0
    assert raw.abs().max() > 1.0  # large enough for T to matter
    assert torch.equal(hot.argmax(1), raw.argmax(1))
    e = torch.exp(raw.double() / 2.0)
    by_hand = e / e.sum(1, keepdim=True)
    assert torch.allclose(F.softmax(hot.double(), 1), by_hand, atol=1e-6)
    assert torch.allclose(hotter, raw / 4.0, atol=1e-5)
    assert torch.allclose(back, raw, atol=1e-6)


def test_temperature_survives_a_checkpoint_round_trip_and_onnx(tmp_path):
    model = _randomised(create_model("cnn", temperature=2.5), seed=2, logit_scale=20)
    assert model.meta.temperature == 2.5
    x = torch.randn(16, 1, 28, 28)
    with torch.no_grad():
        want = model(x)
        raw = want * 2.5
    save_checkpoint(tmp_path / "best", model, {"dataset": "mnist"})
    doc = json.loads((tmp_path / "best.json").read_text())
    assert doc["model"]["temperature"] == 2.5
    loaded, _ = load_checkpoint(tmp_path / "best.json")
    assert loaded.meta.temperature == 2.5
    with torch.no_grad():
        assert torch.allclose(loaded(x), want, atol=1e-6)

    from mnistlab.serve.export import onnx_graph

    session = _ort_session(onnx_graph(loaded))
    got = session.run(None, {"input": x.numpy()})[0]
    assert np.abs(got - want.numpy()).max() <= 1e-4
    assert np.abs(got - raw.numpy()).max() > 0.1  # the graph divides by T too


# --- 3. ensembles ------------------------------------------------------------------


def _two_members():
    a = _randomised(create_model("cnn", mean=0.5, std=0.5, temperature=2.0), 3, 20)
    b = _randomised(create_model("fast"), 4, 5)
    return a, b


def _ensemble_of(a, b) -> Ensemble:
    e = create_model(
        "ensemble", members=[a.meta.to_dict(), b.meta.to_dict()], mean=MNIST_MEAN, std=MNIST_STD
    )
    state = {f"members.{i}.{k}": v for i, m in enumerate((a, b)) for k, v in m.state_dict().items()}
    e.load_state_dict(state)
    return e.eval()


def test_ensemble_is_the_mean_of_its_members_probabilities(tmp_path):
    a, b = _two_members()
    e = _ensemble_of(a, b)
    keys = list(e.state_dict())
    assert keys[0] == "members.0.conv1.weight"
    assert "members.1.bn1.running_mean" in keys and "members.1.fc2.bias" in keys
    assert {k.split(".")[1] for k in keys} == {"0", "1"}

    # each member fresh, without temperature, fed the raw pixels normalised its own way
    a_raw = create_model("cnn")
    a_raw.load_state_dict(a.state_dict())
    b_raw = create_model("fast")
    b_raw.load_state_dict(b.state_dict())
    a_raw.eval()
    b_raw.eval()
    pixels = torch.rand(32, 1, 28, 28)
    with torch.no_grad():
        za = a_raw((pixels - 0.5) / 0.5).double()
        zb = b_raw((pixels - MNIST_MEAN) / MNIST_STD).double()
        got = e((pixels - MNIST_MEAN) / MNIST_STD)
    by_hand = torch.log((F.softmax(za / 2.0, 1) + F.softmax(zb, 1)) / 2)
    assert (za.abs().max() > 2) and not torch.allclose(F.softmax(za / 2, 1), F.softmax(zb, 1))
    assert torch.allclose(got.double(), by_hand, atol=1e-5)
    assert torch.allclose(torch.logsumexp(got, 1), torch.zeros(32), atol=1e-5)

    save_checkpoint(tmp_path / "best", e, {"dataset": "mnist"})
    loaded, doc = load_checkpoint(tmp_path / "best.json")
    assert isinstance(loaded, Ensemble) and loaded.meta.name == "ensemble"
    members = doc["model"]["kwargs"]["members"]
    assert [m["name"] for m in members] == ["cnn", "fast"]
    assert (members[0]["mean"], members[0]["std"], members[0]["temperature"]) == (0.5, 0.5, 2.0)
    with torch.no_grad():
        again = loaded((pixels - MNIST_MEAN) / MNIST_STD)
    assert torch.allclose(again, got, atol=1e-6)


def test_ensemble_in_onnx_gives_the_torch_output():
    from mnistlab.serve.export import onnx_graph

    a, b = _two_members()
    e = _ensemble_of(a, b)
    set_temperature(e, 0.7)  # the ensemble's own temperature, on top of its members'
    x = torch.randn(8, 1, 28, 28)
    with torch.no_grad():
        want = e(x).numpy()
    session = _ort_session(onnx_graph(e))
    got = session.run(None, {"input": x.numpy()})[0]
    assert got.shape == (8, 10)
    assert np.abs(got - want).max() <= 1e-4


def test_ensemble_refuses_a_nested_ensemble_and_other_classes():
    a, b = _two_members()
    inner = _ensemble_of(a, b)
    with pytest.raises(MnistlabError, match="member 1 is an ensemble"):
        create_model("ensemble", members=[a.meta.to_dict(), inner.meta.to_dict()])
    letters = create_model("cnn", class_names=list("abcdefghij"))
    with pytest.raises(MnistlabError, match=r"member 1 .* same classes"):
        create_model("ensemble", members=[a.meta.to_dict(), letters.meta.to_dict()])
    with pytest.raises(MnistlabError, match="1 to 64 members"):
        create_model("ensemble", members=[])
    bad = {**a.meta.to_dict(), "temperature": -1}
    with pytest.raises(MnistlabError, match=r"member 0: model\.temperature"):
        create_model("ensemble", members=[bad])


# --- 4. test-time augmentation -----------------------------------------------------


class Quadrants(nn.Module):
    """Logits = 20 x the ink (un-normalised pixel values) in each quadrant: top-left,
    top-right, bottom-left, bottom-right. Records the pixel values it was shown."""

    def __init__(self):
        super().__init__()
        self.meta = ModelMeta(
            name="quadrants", mean=0.25, std=0.5, class_names=("tl", "tr", "bl", "br")
        )
        self.seen: list[torch.Tensor] = []

    def forward(self, x):
        raw = x * self.meta.std + self.meta.mean
        self.seen.append(raw.detach().clone())
        q = raw[:, 0]
        parts = [q[:, :14, :14], q[:, :14, 14:], q[:, 14:, :14], q[:, 14:, 14:]]
        return 20 * torch.stack([p.sum((1, 2)) for p in parts], 1)


def test_grid_moves_a_pixel_one_column_right_and_one_row_down():
    img = torch.zeros(1, 1, 28, 28)
    img[0, 0, 9, 17] = 1.0
    cases = {(1, 0): (9, 18), (-1, 0): (9, 16), (0, 1): (10, 17), (0, -1): (8, 17)}
    for (dx, dy), (row, col) in cases.items():
        out = F.grid_sample(img, _grid(dx, dy, 0), align_corners=False)[0, 0]
        want = torch.zeros(28, 28)
        want[row, col] = 1.0
        assert torch.allclose(out, want, atol=1e-5), (dx, dy)


def test_rotation_views_turn_anticlockwise_about_the_centre():
    img = torch.zeros(1, 1, 28, 28)
    img[0, 0, 12:16, 21:25] = 1.0  # a blob centred on (13.5, 22.5): 9 px right of the centre
    rows = torch.arange(28.0)[:, None]
    for degrees, up in ((10, True), (-10, False)):
        out = F.grid_sample(img, _grid(0, 0, degrees), align_corners=False)[0, 0]
        centroid_row = (out * rows).sum() / out.sum()
        # 9 px from the centre turned 10 degrees: 9 * sin(10) = 1.56 px up (or down)
        shift = 13.5 - centroid_row.item() if up else centroid_row.item() - 13.5
        assert shift == pytest.approx(9 * math.sin(math.radians(10)), abs=0.15)


def test_tta_views_move_the_pixels_and_let_in_background():
    model = Quadrants()
    m = model.meta
    dot = torch.zeros(1, 1, 28, 28)
    dot[0, 0, 13, 13] = 1.0  # the last pixel of the top-left quadrant
    expected = {(1, 0, 0): ("tr", (13, 14)), (0, 1, 0): ("bl", (14, 13))}
    for view, (quadrant, (row, col)) in expected.items():
        tta = _tta.TestTimeAugmentation(model, views=(view,)).eval()
        with torch.no_grad():
            out = tta((dot - m.mean) / m.std)
        seen = model.seen[-1][0, 0]
        want = torch.zeros(28, 28)
        want[row, col] = 1.0
        assert torch.allclose(seen, want, atol=1e-5), view  # background stays 0, not the mean
        assert m.class_names[int(out.argmax())] == quadrant
    # a page full of ink moved right: the column let in on the left is background
    full = torch.ones(1, 1, 28, 28)
    tta = _tta.TestTimeAugmentation(model, views=((1, 0, 0),))
    with torch.no_grad():
        tta((full - m.mean) / m.std)
    seen = model.seen[-1][0, 0]
    assert torch.allclose(seen[:, 0], torch.zeros(28), atol=1e-5)
    assert torch.allclose(seen[:, 1:], torch.ones(28, 27), atol=1e-5)


def test_tta_with_only_the_identity_view_is_the_model():
    model = _randomised(create_model("cnn", temperature=1.5), seed=5, logit_scale=10)
    tta = _tta.TestTimeAugmentation(model, views=((0, 0, 0),)).eval()
    x = torch.randn(16, 1, 28, 28)
    with torch.no_grad():
        assert torch.allclose(tta(x), F.log_softmax(model(x), 1), atol=1e-5)


def test_tta_averages_the_seven_views_made_by_hand(mnist):
    pytest.importorskip("scipy")
    assert VIEWS == (
        (0, 0, 0),
        (1, 0, 0),
        (-1, 0, 0),
        (0, 1, 0),
        (0, -1, 0),
        (0, 0, 10),
        (0, 0, -10),
    )
    a, b = _two_members()
    for model in (a, _ensemble_of(a, b)):  # one model; an ensemble of two (its own mean/std)
        m = model.meta
        raw = mnist.test[0][:24].float() / 255
        tta = with_tta(model)
        with torch.no_grad():
            got = tta((raw - m.mean) / m.std)
        want = _tta_probs_by_hand(model, raw, m.mean, m.std)
        assert torch.allclose(torch.logsumexp(got, 1), torch.zeros(24), atol=1e-5)
        assert torch.allclose(got.exp().double(), want, atol=1e-5), m.name


# --- 6. bad input that needs no trained model (one line, no traceback) ---------------


@pytest.fixture
def saved_runs(tmp_path):
    """Two run folders holding an untrained (but valid) cnn checkpoint each, and a PNG."""
    runs = []
    for i in range(2):
        run = tmp_path / f"run{i}"
        run.mkdir()
        save_checkpoint(run / "best", _randomised(create_model("cnn"), seed=10 + i), {})
        runs.append(run)
    png = tmp_path / "digit.png"
    canvas = np.full((80, 80), 255, np.uint8)
    canvas[15:65, 35:45] = 0  # a dark "1" on white paper
    Image.fromarray(canvas).save(png)
    return runs, png


def test_ensemble_of_one_run_is_refused(saved_runs, tmp_path, capsys):
    runs, _ = saved_runs
    assert main(["ensemble", str(runs[0]), "-o", str(tmp_path / "e")]) == 2
    _one_line_error(capsys.readouterr().err, "at least 2 runs")
    assert not (tmp_path / "e").exists()


def test_a_run_given_twice_is_refused(saved_runs, tmp_path, capsys):
    runs, _ = saved_runs
    again = runs[0].parent / "." / runs[0].name  # the same folder, spelled otherwise
    assert (
        main(["ensemble", str(runs[0]), str(runs[1]), str(again), "-o", str(tmp_path / "e")]) == 2
    )
    _one_line_error(capsys.readouterr().err, "is given twice")
    assert not (tmp_path / "e").exists()


def test_ensemble_into_a_folder_holding_a_model_is_refused(saved_runs, capsys):
    runs, _ = saved_runs
    before = (runs[0] / "best.json").read_bytes()
    weights = (runs[0] / "best.safetensors").read_bytes()
    # writing the ensemble over one of its own members
    assert main(["ensemble", str(runs[0]), str(runs[1]), "-o", str(runs[0])]) == 2
    _one_line_error(capsys.readouterr().err, "already holds a model")
    assert (runs[0] / "best.json").read_bytes() == before
    assert (runs[0] / "best.safetensors").read_bytes() == weights
    assert not (runs[0] / "ensemble.json").exists()


@pytest.mark.parametrize("what", ["empty folder", "missing", "image"])
def test_ensemble_of_something_that_is_not_a_run_is_refused(saved_runs, tmp_path, capsys, what):
    runs, png = saved_runs
    other = {"empty folder": tmp_path / "empty", "missing": tmp_path / "nope", "image": png}[what]
    if what == "empty folder":
        other.mkdir()
    assert main(["ensemble", str(runs[0]), str(other), "-o", str(tmp_path / "e")]) == 1
    _one_line_error(capsys.readouterr().err, "no checkpoint at")
    assert not (tmp_path / "e" / "best.json").exists()


def test_ensemble_of_runs_with_other_classes_is_refused(saved_runs, tmp_path, capsys):
    runs, _ = saved_runs
    letters = tmp_path / "letters"
    letters.mkdir()
    save_checkpoint(letters / "best", create_model("cnn", class_names=list("abcdefghij")), {})
    assert main(["ensemble", str(runs[0]), str(letters), "-o", str(tmp_path / "e")]) == 1
    _one_line_error(capsys.readouterr().err, "same classes")


def test_predict_tta_with_an_onnx_file_is_refused(saved_runs, tmp_path, capsys):
    pytest.importorskip("onnx")
    runs, png = saved_runs
    onnx_path = tmp_path / "model.onnx"
    assert main(["export", str(runs[0]), "-o", str(onnx_path)]) == 0
    capsys.readouterr()
    assert main(["predict", "--tta", str(onnx_path), str(png)]) == 2
    _one_line_error(capsys.readouterr().err, "--tta needs the run folder or checkpoint")


@pytest.mark.parametrize("where", ["model", "member"])
@pytest.mark.parametrize("value", [-1, "x", 0, None])
def test_an_edited_temperature_is_refused_on_load(saved_runs, tmp_path, capsys, where, value):
    runs, png = saved_runs
    run = runs[0]
    if where == "member":
        a, b = _two_members()
        save_checkpoint(run / "best", _ensemble_of(a, b), {})
    doc = json.loads((run / "best.json").read_text())
    target = doc["model"] if where == "model" else doc["model"]["kwargs"]["members"][1]
    target["temperature"] = value
    (run / "best.json").write_text(json.dumps(doc))
    with pytest.raises(CheckpointError, match="temperature must be a finite number above 0"):
        load_checkpoint(run)
    assert main(["predict", str(run), str(png)]) == 1
    _one_line_error(capsys.readouterr().err, "temperature must be a finite number above 0")


# --- 5. the command line on real MNIST (slow: trains) --------------------------------


@pytest.fixture(scope="module")
def second_run(tmp_path_factory, mnist_dir):
    """A cheap second run of another architecture and another normalisation: ``fast``,
    one epoch on 2,000 images, mean 0.5 / std 0.5, seed 1 (about 80% on MNIST test)."""
    out = tmp_path_factory.mktemp("fast-cli")
    cmd = ["train", "--model", "fast", "--epochs", "1", "--augment", "none"]
    cmd += ["--train-subset", "2000", "--mean", "0.5", "--std", "0.5", "--seed", "1"]
    cmd += ["--threads", "1", "--out-dir", str(out)]
    proc = subprocess.run(
        [*CLI, *cmd],
        capture_output=True,
        text=True,
        timeout=600,
        env=cli_env(mnist_dir),
    )
    assert proc.returncode == 0, proc.stderr
    (run,) = out.iterdir()
    return run


@pytest.fixture(scope="module")
def ensemble_run(tmp_path_factory, trained_run, second_run, mnist_dir):
    """(folder, completed process) of ``mnistlab ensemble CNN FAST -o DIR``."""
    out = tmp_path_factory.mktemp("ens") / "ens"
    proc = subprocess.run(
        [*CLI, "ensemble", str(trained_run), str(second_run), "-o", str(out), "--device", "cpu"],
        capture_output=True,
        text=True,
        timeout=600,
        env=cli_env(mnist_dir),
    )
    return out, proc


def _member_probs(run, images: torch.Tensor) -> torch.Tensor:
    """Softmax(logits / T) of a run's best model, from its files: the architecture built
    fresh (no temperature), the weights read with safetensors, normalised and divided
    by the stored temperature here."""
    doc = json.loads((run / "best.json").read_text())
    meta = doc["model"]
    model = create_model(meta["name"], **meta["kwargs"])
    model.load_state_dict(load_file(str(run / doc["weights"])))
    model.eval()
    x = (images.float() / 255 - meta["mean"]) / meta["std"]
    with torch.no_grad():
        z = torch.cat([model(x[i : i + 2000]) for i in range(0, len(x), 2000)]).double()
    return F.softmax(z / meta["temperature"], 1)


def _digit_png(path, pixels: np.ndarray, scale: int = 4) -> None:
    """A 28x28 MNIST digit as dark ink on white paper, enlarged."""
    Image.fromarray(255 - pixels).resize((28 * scale, 28 * scale), Image.BICUBIC).save(path)


@pytest.mark.slow
def test_train_prints_and_stores_its_calibration(cnn_cli_run):
    run, stdout = cnn_cli_run
    doc = json.loads((run / "best.json").read_text())
    t = doc["model"]["temperature"]
    m = re.search(r"calibrated: temperature (\d+\.\d{3})", stdout)
    assert m, stdout
    assert float(m[1]) == pytest.approx(t, abs=5e-4)
    assert doc["calibration"]["temperature"] == t
    assert doc["calibration"]["fitted_on"] == "the validation split (5,000 images)"
    # label smoothing 0.1 leaves the model under-confident: the fit sharpens it
    assert 0.1 < t < 1.0


@pytest.mark.slow
def test_calibrate_cli_fits_on_the_validation_split(trained_run, mnist, tmp_path, capsys):
    optimize = pytest.importorskip("scipy.optimize")
    run = tmp_path / "run"  # a copy: the shared run's checkpoints must not change
    shutil.copytree(trained_run, run, ignore=shutil.ignore_patterns("eval", "inspect", "*.png"))
    weights = (run / "best.safetensors").read_bytes()
    stored_before = json.loads((run / "best.json").read_text())["model"]["temperature"]

    assert main(["calibrate", str(run), "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    m = re.search(r"calibrated: temperature (\d+\.\d{3}), fitted on the validation split", out)
    assert m, out
    doc = json.loads((run / "best.json").read_text())
    t, record = doc["model"]["temperature"], doc["calibration"]
    assert float(m[1]) == pytest.approx(t, abs=5e-4) and record["temperature"] == t
    assert (run / "best.safetensors").read_bytes() == weights  # weights untouched
    # fitted again from the raw logits, not on top of the stored temperature
    assert t == pytest.approx(stored_before, rel=1e-4)

    # the same fit, by hand: raw logits on the run's validation split (seed 0, 5,000)
    model = create_model("cnn")
    model.load_state_dict(load_file(str(run / "best.safetensors")))
    model.eval()
    with torch.no_grad():
        zv = model((mnist.val[0].float() / 255 - MNIST_MEAN) / MNIST_STD).double().numpy()
        zt = model((mnist.test[0].float() / 255 - MNIST_MEAN) / MNIST_STD).double().numpy()
    yv, yt = mnist.val[1].numpy(), mnist.test[1].numpy()
    best = optimize.minimize_scalar(
        lambda lt: _nll(zv, yv, math.exp(lt)), bounds=(-4.6, 4.6), method="bounded"
    )
    assert t == pytest.approx(math.exp(best.x), rel=1e-3)

    def probs(z, temp):
        e = np.exp(z / temp - (z / temp).max(1, keepdims=True))
        return e / e.sum(1, keepdims=True)

    assert record["ece_before"] == pytest.approx(_ece(probs(zv, 1.0), yv), abs=1e-5)
    assert record["ece_after"] == pytest.approx(_ece(probs(zv, t), yv), abs=1e-5)
    assert record["test_ece_before"] == pytest.approx(_ece(probs(zt, 1.0), yt), abs=1e-5)
    assert record["test_ece_after"] == pytest.approx(_ece(probs(zt, t), yt), abs=1e-5)
    assert record["test_ece_after"] < record["test_ece_before"]  # it helps on unseen images
    # and the loaded model uses it
    loaded, _ = load_checkpoint(run)
    with torch.no_grad():
        z = loaded((mnist.test[0][:100].float() / 255 - MNIST_MEAN) / MNIST_STD).double().numpy()
    assert np.abs(z - zt[:100] / t).max() < 1e-4


@pytest.mark.slow
def test_ensemble_cli_is_the_mean_of_the_members(ensemble_run, trained_run, second_run, mnist):
    out, proc = ensemble_run
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    assert sorted(p.name for p in out.iterdir()) == [
        "best.json",
        "best.onnx",
        "best.safetensors",
        "ensemble.json",
    ]
    assert "calibrated: temperature" in proc.stdout and "ensemble of 2" in proc.stdout

    x, y = mnist.test
    pa, pb = _member_probs(trained_run, x), _member_probs(second_run, x)
    mean = (pa + pb) / 2
    acc = [(p.argmax(1) == y).double().mean().item() for p in (pa, pb, mean)]
    summary = json.loads((out / "ensemble.json").read_text())
    rows = summary["test"]
    assert [r["architecture"] for r in rows] == ["cnn", "fast", "ensemble"]
    for row, want in zip(rows, acc, strict=True):
        assert row["test_accuracy"] == pytest.approx(want, abs=1.5e-4), row  # at most 1 image
    assert acc[0] > 0.97 and 0.5 < acc[1] < acc[0]  # two real, different models

    # the saved ensemble, its own temperature undone, gives that mean probability
    model, doc = load_checkpoint(out)
    members = doc["model"]["kwargs"]["members"]
    assert [(m["name"], m["mean"], m["std"]) for m in members] == [
        ("cnn", MNIST_MEAN, MNIST_STD),
        ("fast", 0.5, 0.5),
    ]
    assert [r["run"] for r in doc["ensemble"]["members"]] == [str(trained_run), str(second_run)]
    t = doc["model"]["temperature"]
    assert t == summary["calibration"]["temperature"] and t != 1.0
    assert "training images" in summary["calibration"]["fitted_on"]  # no shared val split
    with torch.no_grad():
        z = torch.cat(
            [
                model((x[i : i + 2000].float() / 255 - MNIST_MEAN) / MNIST_STD)
                for i in range(0, 10_000, 2000)
            ]
        ).double()
    assert torch.allclose(torch.softmax(z * t, 1), mean, atol=1e-5)
    e = torch.exp(torch.log(mean) / t)
    assert torch.allclose(torch.softmax(z, 1), e / e.sum(1, keepdim=True), atol=1e-5)
    assert rows[2]["test_ece"] == pytest.approx(
        _ece((e / e.sum(1, keepdim=True)).numpy(), y.numpy()), abs=1e-4
    )


@pytest.mark.slow
def test_evaluate_ensemble_agrees_with_ensemble_json(ensemble_run, capsys):
    out, proc = ensemble_run
    assert proc.returncode == 0, proc.stderr
    assert main(["evaluate", str(out), "--device", "cpu"]) == 0
    res = json.loads((out / "eval" / "eval.json").read_text())
    summary = json.loads((out / "ensemble.json").read_text())
    row = summary["test"][-1]
    assert res["model"] == "ensemble" and res["n"] == 10_000
    assert res["accuracy"] == row["test_accuracy"]
    assert res["ece"] == pytest.approx(row["test_ece"], abs=1e-6)
    assert res["temperature"] == summary["calibration"]["temperature"]
    assert res["ece_uncalibrated"] == pytest.approx(
        summary["calibration"]["test_ece_before"], abs=1e-6
    )
    assert f"accuracy {res['accuracy']:.2%}" in capsys.readouterr().out


@pytest.mark.slow
def test_predict_ensemble_plain_tta_number_and_onnx(ensemble_run, mnist, tmp_path, capsys):
    pytest.importorskip("scipy")
    out, proc = ensemble_run
    assert proc.returncode == 0, proc.stderr
    from mnistlab.serve.preprocess import load_digit

    x, y = mnist.test
    png = tmp_path / "seven.png"
    _digit_png(png, x[0, 0].numpy())
    assert int(y[0]) == 7
    model, _ = load_checkpoint(out)
    m = model.meta
    digit = torch.from_numpy(load_digit(png)).float()[None, None] / 255  # what predict sees

    assert main(["predict", str(out), str(png), "--json"]) == 0
    plain = json.loads(capsys.readouterr().out)[0]
    with torch.no_grad():
        p = torch.softmax(model((digit - m.mean) / m.std).double(), 1)[0]
    assert plain["label"] == "7" == str(int(p.argmax()))
    assert plain["confidence"] == pytest.approx(p.max().item(), abs=1e-5)

    assert main(["predict", "--tta", str(out), str(png), "--json"]) == 0
    tta = json.loads(capsys.readouterr().out)[0]
    want = _tta_probs_by_hand(model, digit, m.mean, m.std)[0]
    assert tta["label"] == "7" == str(int(want.argmax()))
    assert tta["confidence"] == pytest.approx(want.max().item(), abs=1e-5)

    # a number: the first two test digits (7 and 2) side by side, dark on white
    canvas = np.zeros((48, 100), np.uint8)
    canvas[10:38, 14:42] = x[0, 0].numpy()
    canvas[10:38, 58:86] = x[1, 0].numpy()
    row = tmp_path / "row.png"
    Image.fromarray(255 - canvas).resize((400, 192), Image.BILINEAR).save(row)
    assert int(y[1]) == 2
    assert main(["predict", "--number", str(out), str(row), "--json"]) == 0
    number = json.loads(capsys.readouterr().out)[0]
    assert number["number"] == "72" and len(number["digits"]) == 2
    assert main(["predict", "--number", "--tta", str(out), str(row)]) == 0
    assert capsys.readouterr().out.startswith(f"{row}: 72 (")

    # exported: one ONNX graph with the ensemble's logits, read by predict
    onnx_path = tmp_path / "x.onnx"
    assert main(["export", str(out), "-o", str(onnx_path)]) == 0
    capsys.readouterr()
    imgs = (x[:200].float() / 255 - m.mean) / m.std
    with torch.no_grad():
        want_logits = model(imgs).numpy()
    got = _ort_session(str(onnx_path)).run(None, {"input": imgs.numpy()})[0]
    assert np.abs(got - want_logits).max() <= 1e-4
    assert main(["predict", str(onnx_path), str(png), "--json"]) == 0
    from_onnx = json.loads(capsys.readouterr().out)[0]
    assert from_onnx["label"] == plain["label"]
    assert from_onnx["confidence"] == pytest.approx(plain["confidence"], abs=1e-5)


@pytest.mark.slow
def test_the_ensembles_own_onnx_file_answers_as_torch_does(ensemble_run, mnist):
    out, proc = ensemble_run
    assert proc.returncode == 0, proc.stderr
    digits = mnist.test[0][:1000, 0].numpy()  # (1000, 28, 28) uint8
    onnx, torch_ = load_predictor(out), load_predictor(out, backend="torch")
    assert (onnx.backend, torch_.backend) == ("onnxruntime", "torch")
    p_onnx, p_torch = onnx.probs(digits), torch_.probs(digits)
    assert (p_onnx.argmax(1) == p_torch.argmax(1)).all()
    assert np.abs(p_onnx - p_torch).max() < 1e-5


@pytest.mark.slow
def test_inspect_ensemble_writes_a_folder_per_member(ensemble_run, capsys):
    out, proc = ensemble_run
    assert proc.returncode == 0, proc.stderr
    assert main(["inspect", str(out), "--index", "3"]) == 0
    folder = out / "inspect"
    assert sorted(p.name for p in folder.iterdir()) == ["member0-cnn", "member1-fast"]
    for sub in folder.iterdir():
        files = sorted(p.name for p in sub.iterdir())
        assert files == [
            "features_00_conv1.png",
            "features_01_conv2.png",
            "input.png",
            "kernels_conv1.png",
            "kernels_conv2.png",
        ], sub
        assert all((sub / f).read_bytes()[:4] == b"\x89PNG" for f in files)
    said = capsys.readouterr().out
    assert "member 0 (cnn)" in said and "member 1 (fast)" in said


@pytest.fixture(scope="module")
def tta_eval(trained_run, mnist, mnist_dir, tmp_path_factory):
    """eval.json of ``mnistlab evaluate --tta CNN``, what it printed, the stored
    temperature, and the cnn's raw logits (T = 1) on the 7 test views made by hand."""
    pytest.importorskip("scipy")
    out = tmp_path_factory.mktemp("tta-eval")
    with contextlib.redirect_stdout(io.StringIO()) as said:
        args = ["evaluate", "--tta", str(trained_run), "--out", str(out), "--device", "cpu"]
        rc = main([*args, "--data-dir", str(mnist_dir)])
    assert rc == 0
    res = json.loads((out / "eval.json").read_text())
    t = json.loads((trained_run / "best.json").read_text())["model"]["temperature"]
    model = create_model("cnn")  # no temperature: divided by hand
    model.load_state_dict(load_file(str(trained_run / "best.safetensors")))
    model.eval()
    raw = mnist.test[0].float() / 255
    with torch.no_grad():
        z = torch.stack(
            [model((v - MNIST_MEAN) / MNIST_STD).double() for v in _views_by_hand(raw)]
        )  # (7, N, C)
    return res, said.getvalue(), t, z


@pytest.mark.slow
def test_evaluate_tta_is_the_tta_of_the_model(tta_eval, mnist):
    res, said, t, z = tta_eval
    assert "cnn with TTA" in said
    y = mnist.test[1]
    probs = F.softmax(z / t, 2).mean(0)  # the calibrated model's TTA
    acc = (probs.argmax(1) == y).double().mean().item()
    assert res["accuracy"] == pytest.approx(acc, abs=1.5e-4)
    assert res["ece"] == pytest.approx(_ece(probs.numpy(), y.numpy()), abs=1e-4)
    assert res["temperature"] == t


@pytest.mark.slow
def test_evaluate_tta_reports_the_uncalibrated_tta_ece(tta_eval, mnist):
    """``ece_uncalibrated`` with --tta: the ECE of the same TTA without the temperature
    (the mean over the views of softmax(z)), the number calibration is measured against."""
    res, _, _, z = tta_eval
    y = mnist.test[1]
    probs = F.softmax(z, 2).mean(0)  # T = 1
    assert res["ece_uncalibrated"] == pytest.approx(_ece(probs.numpy(), y.numpy()), abs=1e-3)
