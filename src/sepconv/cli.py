"""The ``sepconv`` command: a thin layer of subcommands over the library.

Each subcommand lives in its own module, which provides ``add_arguments(parser)`` and
``run(args) -> int``; modules are imported only when their subcommand is used (or for ``--help``).
"""

from __future__ import annotations

import argparse
import importlib
import sys

COMMANDS: dict[str, tuple[str, str]] = {
    "demo": ("sepconv.demo", "train a standard CNN and depthwise-separable CNNs on real digits and compare them"),
    "explain": ("sepconv.explain", "shapes, parameters, multiply-adds, bytes and roofline of conv vs depthwise vs separable"),
    "bench": ("sepconv.bench", "time sepconv's kernels against the installed frameworks, side by side"),
}


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``sepconv`` command; returns the exit code."""
    parser = argparse.ArgumentParser(
        prog="sepconv",
        description="TensorFlow's 2-D convolutions on NumPy: exact, explained, fast.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, (module, summary) in COMMANDS.items():
        p = sub.add_parser(name, help=summary, description=summary)
        p.set_defaults(_module=module)
        importlib.import_module(module).add_arguments(p)
    args = parser.parse_args(argv)
    try:
        return int(importlib.import_module(args._module).run(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # the output went to a pipe that closed early (``sepconv bench --list | head``)
        sys.stdout = None  # nothing more to flush at exit
        return 0
