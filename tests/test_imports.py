"""``import sepconv`` must not import any optional framework (a subprocess, so this session's imports don't count)."""

from __future__ import annotations

import subprocess
import sys

OPTIONAL = ["torch", "tensorflow", "jax", "onnxruntime", "sklearn", "matplotlib"]


def modules_loaded_after(statement: str) -> set[str]:
    code = f"import sys; {statement}; print(' '.join(m for m in {OPTIONAL!r} if m in sys.modules))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return set(result.stdout.split())


def test_import_sepconv_loads_no_optional_framework():
    assert modules_loaded_after("import sepconv") == set()


def test_the_check_sees_an_import():
    assert "torch" in modules_loaded_after("import sepconv.torch")
