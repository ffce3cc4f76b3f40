"""Shared test fixtures: the implementation table, and TensorFlow set up as an oracle."""

from __future__ import annotations

import importlib
import os

import numpy as np
import pytest

import sepconv
import sepconv.fast  # the fixtures set its plans (import sepconv alone leaves it for the first op call)

# TensorFlow as an oracle: oneDNN off (with it on, rank-3 conv2d aborts and empty batches
# come back misshaped; see shared/TF_NOTES.md), and quiet.
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

IMPLEMENTATIONS = sorted(sepconv.api.IMPLEMENTATIONS)


# SEPCONV_TEST_PLANS=narrow runs the tests on the plans of CPUs without AVX-512 instead: the ops' results are checked
# the same way, but the tests that name a kernel of the AVX-512 plans then fail (run the others: the ops, TensorFlow,
# properties, gradients, layers, PyTorch bridge files).
WIDE_TEST_PLANS = os.environ.get("SEPCONV_TEST_PLANS", "wide") != "narrow"


@pytest.fixture(autouse=True)
def wide_register_plans():
    """Every test runs with the AVX-512 plans (sepconv.fast.registers), whatever this CPU, so that each kernel's
    tests reach the kernel they name (unless ``SEPCONV_TEST_PLANS=narrow``); the tests of the other plans set them
    themselves.  This CPU's plans come back afterwards."""
    sepconv.fast.use_wide_register_plans(WIDE_TEST_PLANS)
    yield
    sepconv.fast.registers.use_this_cpus_plans()


@pytest.fixture(params=IMPLEMENTATIONS)
def impl(request):
    """Run the test once per implementation ("fast" and "reference")."""
    with sepconv.use_implementation(request.param):
        yield request.param


@pytest.fixture(scope="session")
def tf():
    """TensorFlow (installed by the test extra)."""
    return pytest.importorskip("tensorflow")


def fast_and_reference(fn, *args, **kwargs):
    """``fn(*args, **kwargs)`` on the fast implementation and on the reference: ``(fast, reference)``."""
    with sepconv.use_implementation("fast"):
        fast = fn(*args, **kwargs)
    with sepconv.use_implementation("reference"):
        ref = fn(*args, **kwargs)
    return fast, ref


def record_calls(monkeypatch, module, name: str, record=lambda args: args[3], serial: str | None = None,
                 as_parallel=lambda args: (*args[:3], 1, *args[5:]), ops: str = "sepconv.fast.depthwise") -> list:
    """Wrap ``module.name`` (a kernel) for the test: each call appends ``record(args)`` (by default its fourth
    argument, the kernels' thread count) to the list returned, then runs the kernel.  ``serial`` names the
    kernel's one-thread function (``(..., begin, end, ...)`` where the parallel one takes ``n_chunks``), which the
    ops call instead of a parallel launch of one chunk: its calls are recorded as that launch's would be
    (``as_parallel`` maps its arguments to the parallel function's; wrapped where the module ``ops`` finds it).
    """
    calls = []
    kernel = getattr(module, name)
    monkeypatch.setattr(module, name, lambda *args: calls.append(record(args)) or kernel(*args))
    if serial is not None:  # wrapped where the ops find it: the parallel kernel's global must stay the kernel
        one_thread = getattr(module, serial)
        ops = importlib.import_module(ops)
        for attr, value in list(vars(ops).items()):
            if value is module or (isinstance(value, KernelsSeenByOps) and value.module is module):
                seen = value if isinstance(value, KernelsSeenByOps) else KernelsSeenByOps(module)
                seen.wrapped[serial] = lambda *args: calls.append(record(as_parallel(args))) or one_thread(*args)
                monkeypatch.setattr(ops, attr, seen)
    return calls


class KernelsSeenByOps:
    """A kernels module as the ops (:mod:`sepconv.fast`) see it in a test: the functions in ``wrapped`` replaced.
    The module's own globals stay the kernels, which Numba types when it compiles the kernels that call them."""

    def __init__(self, module) -> None:
        self.module, self.wrapped = module, {}

    def __getattr__(self, name: str):
        return self.wrapped[name] if name in self.wrapped else getattr(self.module, name)


# The dtypes the shape-tuned kernels run for (sepconv.fast.tuned): tests of those kernels take these; float64 takes
# the general kernels (tests/test_fast_tuned.py).
TUNED_DTYPES = [np.float32]


def rand(rng: np.random.Generator, shape, dtype=np.float64) -> np.ndarray:
    return rng.standard_normal(shape).astype(dtype)


def tol(dtype) -> dict:
    return {"rtol": 1e-4, "atol": 1e-4} if np.dtype(dtype) == np.float32 else {"rtol": 1e-10, "atol": 1e-10}
