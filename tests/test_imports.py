"""``import sepconv`` must not import any optional framework (a subprocess, so this session's imports don't count)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

OPTIONAL = ["torch", "tensorflow", "jax", "onnxruntime", "sklearn", "matplotlib"]


def modules_loaded_after(statement: str) -> set[str]:
    code = f"import sys; {statement}; print(' '.join(m for m in {OPTIONAL!r} if m in sys.modules))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return set(result.stdout.split())


def test_import_sepconv_loads_no_optional_framework():
    assert modules_loaded_after("import sepconv") == set()


def test_the_kernels_load_at_the_first_op_call_not_at_import():
    """``import sepconv`` leaves out Numba and the fast implementation; the first op call on it imports them."""
    code = ("import sys, numpy as np, sepconv\n"
            "before = [m for m in ('numba', 'sepconv.fast', 'sepconv.kernels') if m in sys.modules]\n"
            "y = sepconv.depthwise_conv2d(np.ones((1, 5, 5, 16), np.float32), np.ones((3, 3, 16, 1), np.float32), 1, "
            "'SAME')\n"
            "print(before, 'sepconv.fast' in sys.modules, 'numba' in sys.modules, float(y[0, 2, 2, 0]))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.split("\n")[0] == "[] True True 9.0"


def test_concurrent_first_calls_share_one_import_of_the_kernels():
    """Eight threads make their first calls at once (the import of sepconv.fast under way in one of them): every
    result is right."""
    code = ("import threading, numpy as np, sepconv\n"
            "x, w = np.ones((2, 9, 9, 24), np.float32), np.ones((3, 3, 24, 2), np.float32)\n"
            "results, start = [None] * 8, threading.Barrier(8)\n"
            "def run(i):\n"
            "    start.wait()\n"
            "    results[i] = float(sepconv.depthwise_conv2d(x, w, 1, 'SAME')[1, 4, 4, 5])\n"
            "threads = [threading.Thread(target=run, args=(i,)) for i in range(8)]\n"
            "[t.start() for t in threads]; [t.join() for t in threads]\n"
            "print(results)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == str([9.0] * 8)


def test_the_check_sees_an_import():
    assert "torch" in modules_loaded_after("import sepconv.torch")


def environment_after_import(env_extra: dict[str, str]) -> dict[str, str | None]:
    """``GOMP_SPINCOUNT`` and ``OMP_WAIT_POLICY`` as a process sees them after ``import sepconv`` and
    one parallel kernel, and Numba's threading layer; ``env_extra`` added to the environment."""
    code = ("import json, os, numpy as np, sepconv\n"
            "from sepconv.kernels import _jit\n"
            "x = np.ones((2, 64, 64, 32), np.float32)\n"
            "sepconv.depthwise_conv2d(x, np.ones((3, 3, 32, 1), np.float32), 1, 'SAME')\n"
            "print(json.dumps({k: os.environ.get(k) for k in ('GOMP_SPINCOUNT', 'OMP_WAIT_POLICY')}"
            " | {'layer': _jit.numba.threading_layer()}))")
    env = {k: v for k, v in os.environ.items() if k not in ("GOMP_SPINCOUNT", "OMP_WAIT_POLICY")} | env_extra
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env)
    return json.loads(result.stdout.splitlines()[-1])


def test_the_openmp_spin_setting_is_not_left_in_the_environment():
    seen = environment_after_import({})
    assert seen["GOMP_SPINCOUNT"] is None and seen["OMP_WAIT_POLICY"] is None
    assert seen["layer"] in ("omp", "tbb", "workqueue")


def test_a_users_openmp_wait_policy_is_kept():
    assert environment_after_import({"OMP_WAIT_POLICY": "PASSIVE"})["OMP_WAIT_POLICY"] == "PASSIVE"
    assert environment_after_import({"GOMP_SPINCOUNT": "5"})["GOMP_SPINCOUNT"] == "5"


def kernel_cache_hits(folder, hash_override: bytes | None) -> int:
    """Cache hits of a small kernel (module ``little.py`` in ``folder``, Numba's cache there too) in a fresh
    process, after ``sepconv.kernels._jit.KERNELS_SOURCE_HASH`` is set to ``hash_override`` (if given)."""
    code = ("import sys; sys.path.insert(0, sys.argv[1])\n"
            "from sepconv.kernels import _jit\n"
            f"if {hash_override!r} is not None: _jit.KERNELS_SOURCE_HASH = {hash_override!r}\n"
            "import little\n"
            "assert little.twice(21) == 42\n"
            "print(sum(little.twice.stats.cache_hits.values()))")
    env = dict(os.environ, NUMBA_CACHE_DIR=str(folder / "cache"))
    result = subprocess.run([sys.executable, "-c", code, str(folder)], capture_output=True, text=True, check=True,
                            env=env)
    return int(result.stdout.split()[-1])


def test_a_change_anywhere_in_the_kernels_package_recompiles_every_kernel(tmp_path):
    """Numba alone keys a kernel's disk cache on its own file; ours also on the whole kernels package (an edit to
    a shared helper must not leave other modules' machine code in use)."""
    (tmp_path / "little.py").write_text("from sepconv.kernels._jit import kernel\n\n\n"
                                        "@kernel\ndef twice(x):\n    return 2 * x\n")
    assert kernel_cache_hits(tmp_path, None) == 0  # compiled and saved
    assert kernel_cache_hits(tmp_path, None) == 1  # loaded
    assert kernel_cache_hits(tmp_path, b"the package changed") == 0  # compiled again


def test_the_sources_hash_sees_every_file(tmp_path):
    from sepconv.kernels._jit import sources_hash

    (tmp_path / "a.py").write_text("x = 1\n")
    (tmp_path / "b.py").write_text("y = 2\n")
    before = sources_hash(tmp_path)
    assert sources_hash(tmp_path) == before
    (tmp_path / "b.py").write_text("y = 3\n")
    assert sources_hash(tmp_path) != before
