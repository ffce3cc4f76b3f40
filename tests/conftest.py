"""Shared test fixtures: the implementation table, and TensorFlow set up as an oracle."""

from __future__ import annotations

import os

import numpy as np
import pytest

import sepconv

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
    sepconv.fast.use_wide_register_plans(sepconv.fast.registers.WIDE_REGISTERS)


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


def record_calls(monkeypatch, module, name: str, record=lambda args: args[3]) -> list:
    """Wrap ``module.name`` (a kernel) for the test: each call appends ``record(args)`` (by default its fourth
    argument, the kernels' thread count) to the list returned, then runs the kernel."""
    calls = []
    kernel = getattr(module, name)
    monkeypatch.setattr(module, name, lambda *args: calls.append(record(args)) or kernel(*args))
    return calls


def rand(rng: np.random.Generator, shape, dtype=np.float64) -> np.ndarray:
    return rng.standard_normal(shape).astype(dtype)


def tol(dtype) -> dict:
    return {"rtol": 1e-4, "atol": 1e-4} if np.dtype(dtype) == np.float32 else {"rtol": 1e-10, "atol": 1e-10}
