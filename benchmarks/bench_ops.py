"""Benchmark sepconv against the installed frameworks: the same as ``sepconv bench``.

Run from the repository (the package is imported from ``src/`` if it is not installed)::

    python benchmarks/bench_ops.py --quick
    python benchmarks/bench_ops.py --cases dw_8x56x56x144_s1 --peers torch_cl,ort_nchw
    python benchmarks/bench_ops.py --help

The cases are in ``benchmarks/cases.json``; the results go to ``benchmarks/results/latest.json``.
"""

import sys
from pathlib import Path

try:
    from sepconv.bench import main
except ImportError:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
    from sepconv.bench import main

if __name__ == "__main__":
    sys.exit(main())
