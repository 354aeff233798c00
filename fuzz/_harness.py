"""What the harnesses share: instrumenting imports, the seed corpus, the rule
that only mnistlab's own errors may escape, and running libFuzzer through atheris.

atheris is imported only when a harness runs as a script, so the harness modules
import without it and ``tests/fuzz/test_harnesses.py`` replays their ``check``
functions in CI without atheris installed.
"""

from __future__ import annotations

import contextlib
import sys
import warnings
from collections.abc import Callable, Iterable
from pathlib import Path

from mnistlab.errors import MnistlabError

HERE = Path(__file__).resolve().parent
CORPUS = HERE / "corpus"  # one folder per harness: the seeds plus what libFuzzer found (ignored)


def instrumented(module_name: str, *include: str):
    """``atheris.instrument_imports`` for the named packages when the harness runs as
    a script (the coverage feedback libFuzzer mutates by), otherwise nothing.

    Only the packages named are instrumented: instrumenting torch or numpy would cost
    minutes at start-up and slow every execution for code no input reaches.
    """
    if module_name != "__main__":
        return contextlib.nullcontext()
    import atheris

    return atheris.instrument_imports(include=list(include))


def expect_own_error(e: MnistlabError, need_kind: bool = False) -> None:
    """An error that escapes must be the project's, one line, and carry a ``kind``
    where callers (the web app) pick the status code from it."""
    message = str(e)
    if not message or "\n" in message:
        raise AssertionError(f"{type(e).__name__} is not one line: {message!r}")
    if need_kind and not e.kind:
        raise AssertionError(f"{type(e).__name__} without a kind: {message!r}")


def main(name: str, check: Callable[[bytes], None], seeds: Callable[[], Iterable[bytes]]):
    """Fuzz ``check`` with libFuzzer's flags from the command line. With no corpus
    folder given, the harness's own one (``fuzz/corpus/NAME``) is used, with the seeds
    written into it first, so mutations start from valid inputs and not from nothing."""
    import atheris

    # Pillow warns of every corrupt tag it skips: millions of lines that hide the stats
    warnings.simplefilter("ignore")
    argv = list(sys.argv)
    if not any(not a.startswith("-") for a in argv[1:]):
        folder = CORPUS / name
        folder.mkdir(parents=True, exist_ok=True)
        for i, seed in enumerate(seeds()):
            (folder / f"seed-{i:03d}").write_bytes(seed)
        argv.append(str(folder))
    atheris.Setup(argv, _timed(name, check))
    atheris.Fuzz()


def _timed(name: str, check: Callable[[bytes], None]) -> Callable[[bytes], None]:
    """``check``, printing each new slowest input's CPU time (``fuzz/run.py`` reports
    the last) and keeping that input as ``fuzz/artifacts/NAME-slowest`` to replay:
    libFuzzer's own figure is in whole seconds, and a hostile input that costs 0.4 s
    matters to a server long before one costs a second."""
    import time

    slowest = 0.0
    keep = HERE / "artifacts" / f"{name}-slowest"

    def timed(data: bytes) -> None:
        nonlocal slowest
        start = time.process_time()
        try:
            check(data)
        finally:
            spent = time.process_time() - start
            if spent > slowest:
                slowest = spent
                keep.parent.mkdir(exist_ok=True)
                keep.write_bytes(data)
                print(f"slowest input so far: {spent:.4f} s ({len(data)} bytes)", flush=True)

    return timed
