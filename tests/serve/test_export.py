"""``mnistlab export`` (``serve/export.py``): where the ONNX file may go, said in one line
where it cannot, and the folder it creates said so."""

from __future__ import annotations

from tests.support.cli import error_line, immutable, run_main
from tests.support.images import stroke_png


def test_export_to_unwritable_places(untrained_run, tmp_path):
    a_file = stroke_png(tmp_path / "a.png")
    error_line(run_main("export", untrained_run, "-o", tmp_path), 2, "--out")
    error_line(run_main("export", untrained_run, "-o", ""), 2, "--out", "file name")
    error_line(run_main("export", untrained_run, "-o", a_file / "m.onnx"), 2, "not a folder")
    error_line(run_main("export", untrained_run, "-o", untrained_run / "best.json"), 2, ".onnx")
    ro = tmp_path / "ro"
    ro.mkdir()
    with immutable(ro):  # not even root can write into it
        proc = run_main("export", untrained_run, "-o", ro / "m.onnx")
        error_line(proc, 1, str(ro), "write")
        assert list(ro.iterdir()) == []


def test_export_says_it_created_the_missing_folder(untrained_run, tmp_path):
    out = tmp_path / "new" / "sub" / "m.onnx"
    proc = run_main("export", untrained_run, "-o", out)
    assert proc.returncode == 0, proc.stderr
    assert f"created folder {out.parent}" in proc.stdout and out.is_file()
