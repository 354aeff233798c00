"""Same as `mnistlab bench`: speed side by side, written to benchmarks/results.md.

python benchmarks/bench.py            # the full run (~30 min on a 2-core CPU)
python benchmarks/bench.py --quick    # smoke run
"""

import sys

from mnistlab.cli import main

if __name__ == "__main__":
    sys.exit(main(["bench", *sys.argv[1:]]))
