"""What the tests share that is not a fixture: real processes and servers, images
as files, a headless browser, and the inputs the fuzzers found (``fuzz_inputs/``)."""

from pathlib import Path

FUZZ_INPUTS = Path(__file__).parent / "fuzz_inputs"  # exact inputs the fuzzers found
