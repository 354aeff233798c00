"""Classify your own images, files in and one answer per file out.

``load_predictor`` (``serve/predictor.py``) takes a run folder, a checkpoint
(.json/.safetensors) or an exported .onnx file; ``iter_predictions`` runs the shared
preprocessing on each image and yields one result per input, in order, errors
included, so one bad file never stops a batch; it works through the files ``BATCH``
at a time. Every answer carries a digit score; below the model's reject threshold
it is "not a digit" (label None, the best guess kept), an answer rather than an error.
"""

from __future__ import annotations

import glob
import os
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import MnistlabError, UsageError
from .predictor import Predictor, load_predictor
from .preprocess import PreprocessError, load_digit

__all__ = [
    "BATCH",
    "Predictor",
    "expand_inputs",
    "iter_predictions",
    "load_predictor",
    "predict_files",
    "shown",
]

BATCH = 256  # files read, preprocessed and classified together
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".pgm", ".ppm"}


def expand_inputs(items: list[str]) -> list[str]:
    """Files as given, folders' images (sorted), quoted globs expanded; ``-`` is stdin."""
    out: list[str] = []
    for item in items:
        p = Path(item)
        if not item:  # Path("") is the current folder: never classify it by accident
            raise UsageError("an empty name is not an image; give files, folders or -")
        if item == "-":
            out.append("-")
        elif p.is_dir():
            try:
                found = sorted(str(f) for f in p.iterdir() if f.suffix.lower() in IMAGE_SUFFIXES)
            except OSError as e:
                raise MnistlabError(
                    f"{shown(item)}: cannot list the folder ({e.strerror}); check its permissions"
                ) from None
            if not found:
                raise UsageError(f"{shown(item)}: folder has no image files")
            out += found
        elif any(c in item for c in "*?[") and not p.exists():
            found = sorted(glob.glob(item))
            if not found:
                raise UsageError(f"{shown(item)}: no files match")
            out += found
        else:
            out.append(item)
    return out


def shown(text: str) -> str:
    """``text`` with what would not print as itself escaped (a newline as ``\\n``, a
    control character, an undecodable byte): a file name cannot fake an output line."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else ascii(c)[1:-1] for c in text)


@dataclass
class Result:
    source: str
    label: str | None = None  # None for an error, and for "not a digit"
    confidence: float | None = None  # the probability of ``label``
    top3: list[tuple[str, float]] = field(default_factory=list)
    digit: np.ndarray | None = None  # the 28x28 the model saw
    error: str | None = None
    digit_score: float | None = None  # in [0, 1], higher = more digit-like (models/_reject.py)
    not_digit: bool = False  # the score is below the model's reject threshold
    best_guess: str | None = None  # the top class, a digit or not
    probabilities: list[float] = field(default_factory=list)  # (C,) in class order

    def to_json(self) -> dict:
        if self.error:
            return {"file": self.source, "error": self.error}
        return {
            "file": self.source,
            "label": self.label,
            "confidence": self.confidence,
            "not_digit": self.not_digit,
            "digit_score": self.digit_score,
            "best_guess": self.best_guess,
            "top3": [{"label": k, "probability": v} for k, v in self.top3],
            "probabilities": self.probabilities,
        }


def _read(src: str) -> Result:
    """One file (or stdin, ``-``) through ``load_digit``: its digit, or its error. A
    failure that is not the image's (a bug) is still this file's error only."""
    try:
        data = sys.stdin.buffer.read() if src == "-" else src
        return Result(src, digit=load_digit(data, "stdin" if src == "-" else src))
    except PreprocessError as e:
        return Result(src, error=shown(str(e)))
    except Exception as e:  # a bug in preprocessing must not stop the other files
        return Result(src, error=shown(f"{src}: could not be processed ({type(e).__name__}: {e})"))


def iter_predictions(
    predictor: Predictor, sources: list[str], workers: int | None = None, batch: int = BATCH
) -> Iterator[Result]:
    """One result per source, in order, as they come: ``batch`` files at a time are read
    and preprocessed by ``workers`` threads (default: one per CPU, at most 8; Pillow's
    decoding and most of numpy's and scipy's work release the GIL), then classified
    together, so memory stays flat however many files there are."""
    workers = workers or min(os.cpu_count() or 1, 8)
    pool = ThreadPoolExecutor(workers) if workers > 1 and len(sources) >= 2 * workers else None
    try:
        for start in range(0, len(sources), batch):
            chunk = sources[start : start + batch]
            results = list(pool.map(_read, chunk)) if pool else [_read(src) for src in chunk]
            _classify(predictor, results)
            yield from results
    finally:
        if pool is not None:
            pool.shutdown(cancel_futures=True)


def _classify(predictor: Predictor, results: list[Result]) -> None:
    digits = [r.digit for r in results if r.error is None]
    if not digits:
        return
    probs, scores, ok = predictor.judge(np.stack(digits))  # (N, C), (N,), (N,)
    answers = iter(zip(probs, scores.tolist(), ok.tolist(), strict=True))
    names = predictor.class_names
    for r in results:
        if r.error is None:
            p, r.digit_score, is_digit = next(answers)
            order = np.argsort(-p)[:3]
            r.best_guess = names[order[0]]
            r.not_digit = not is_digit
            if is_digit:
                r.label, r.confidence = r.best_guess, float(p[order[0]])
            r.top3 = [(names[i], float(p[i])) for i in order]
            r.probabilities = p.tolist()


def predict_files(
    predictor: Predictor, sources: list[str], workers: int | None = None, batch: int = BATCH
) -> list[Result]:
    """``iter_predictions`` as a list."""
    return list(iter_predictions(predictor, sources, workers, batch))
