"""``sepconv demo`` (being written)."""

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the demo's options."""


def run(args: argparse.Namespace) -> int:
    """Run the demo."""
    return 0
