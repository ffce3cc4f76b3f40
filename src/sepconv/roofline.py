"""This machine's roofline: measured memory bandwidth and fp32 peak, to turn a cost into a time bound.

An op cannot run faster than its FLOPs at the machine's peak rate, nor faster than its
bytes at the memory bandwidth; the larger of the two times is its roofline bound.  The
probe measures (in a few seconds; it prints its progress on stderr):

- **bandwidth** with a STREAM-style triad ``a[i] = b[i] + s * c[i]`` (a Numba kernel,
  12 bytes per element counted as in STREAM), at footprints from in-cache (32 KiB) to
  DRAM (256 MiB);
- **fp32 peak** with twelve independent chains of vector multiply-adds per thread (a Numba kernel; no memory
  traffic: the most arithmetic the cores can do), and, for comparison, the rate of a NumPy (BLAS) matrix
  product, ``2 n^3`` FLOPs (what a good library's product reaches; a kernel can beat it, never the peak).

Each figure is the best of many short runs, with one thread and with all threads, the
higher kept: on a machine shared with other work, the runs that nobody interrupted show
what the hardware can do.

Bandwidth depends on the footprint: an op whose tensors fit in cache streams them faster.
:meth:`Roofline.bandwidth_at` interpolates the measured curve at an op's ``bytes_total``.

The result is cached per machine as JSON in ``$SEPCONV_CACHE_DIR`` (default
``~/.cache/sepconv``); ``machine_roofline(refresh=True)`` (or ``sepconv explain
--refresh-roofline``) measures again.  The machine is shared by other processes, so the
figures are best-of-N estimates, not guarantees.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import os
import platform
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numba
import numpy as np

from .cost import Cost
from .kernels._jit import kernel
from .kernels._simd import hzeros, load_like, vadd, vfma, vsum, vzeros

FOOTPRINTS_BYTES = (32 << 10, 256 << 10, 2 << 20, 16 << 20, 64 << 20, 256 << 20)
GEMM_SIZE = 768
_TRIAD_BYTES_PER_ELEMENT = 12  # float32: read b and c, write a


@dataclass(frozen=True)
class Bound:
    """A roofline bound: the time the FLOPs need at peak, the time the bytes need, and which wins."""

    seconds: float
    compute_seconds: float
    memory_seconds: float
    bandwidth_gbs: float

    @property
    def limiter(self) -> str:
        """``"memory"`` or ``"compute"``: the roof that sets the bound."""
        return "memory" if self.memory_seconds >= self.compute_seconds else "compute"


@dataclass(frozen=True)
class Roofline:
    """Measured memory bandwidth curve and fp32 peak of one machine.

    Attributes
    ----------
    peak_gflops : float
        fp32 GFLOP/s of independent vector multiply-adds on all cores: the compute roof.
    footprints_bytes, bandwidths_gbs : tuple
        The bandwidth curve: triad GB/s (1e9 bytes/s) at each footprint.
    threads : int
        Threads used by the bandwidth probe.
    machine : str
        CPU model and core count.
    measured_at : str
        UTC time of the measurement.
    probe_seconds : float
        How long the probe took.
    load_average : float
        The machine's 1-minute load average when the probe started (other work lowers the figures).
    gemm_gflops : float
        fp32 GFLOP/s of a NumPy (BLAS) matrix product (0 if not measured): below the peak by what the
        product's loads, packing and edges cost.
    """

    peak_gflops: float
    footprints_bytes: tuple[int, ...]
    bandwidths_gbs: tuple[float, ...]
    threads: int
    machine: str
    measured_at: str
    probe_seconds: float
    load_average: float = 0.0
    gemm_gflops: float = 0.0

    @property
    def dram_bandwidth_gbs(self) -> float:
        """Bandwidth at the largest footprint measured (out of cache)."""
        return self.bandwidths_gbs[-1]

    @property
    def ridge_intensity(self) -> float:
        """FLOPs per byte where the DRAM roof meets the compute roof: below it an op is memory-bound."""
        return self.peak_gflops / self.dram_bandwidth_gbs

    def bandwidth_at(self, footprint_bytes: float) -> float:
        """Bandwidth in GB/s for a working set of ``footprint_bytes``.

        Linear interpolation in log(footprint) between measured points; clamped at both ends.

        Examples
        --------
        >>> r = Roofline(100.0, (1000, 100000), (50.0, 10.0), 2, "test", "", 0.0)
        >>> [round(r.bandwidth_at(size), 6) for size in (10, 10000, 10**9)]
        [50.0, 30.0, 10.0]
        """
        sizes = np.log(np.asarray(self.footprints_bytes, dtype=float))
        return float(np.interp(math.log(max(footprint_bytes, 1.0)), sizes, self.bandwidths_gbs))

    def bound(self, cost: Cost, bandwidth_gbs: float | None = None) -> Bound:
        """The roofline bound of ``cost``.

        Parameters
        ----------
        cost : Cost
        bandwidth_gbs : float, optional
            Memory bandwidth to assume; default: the bandwidth measured at the op's own
            footprint (``bytes_total``), i.e. its tensors as warm in cache as they fit.  Pass
            :attr:`dram_bandwidth_gbs` for tensors that come from memory.

        Examples
        --------
        >>> from sepconv.cost import op_cost
        >>> r = Roofline(100.0, (1000, 100000), (50.0, 10.0), 2, "test", "", 0.0)
        >>> r.bound(op_cost("depthwise_conv2d", (1, 56, 56, 64), (3, 3, 64, 1))).limiter
        'memory'
        """
        bandwidth = self.bandwidth_at(cost.bytes_total) if bandwidth_gbs is None else bandwidth_gbs
        compute = cost.flops / (self.peak_gflops * 1e9)
        memory = cost.bytes_total / (bandwidth * 1e9)
        return Bound(max(compute, memory), compute, memory, bandwidth)

    def bound_seconds(self, cost: Cost) -> float:
        """Lower bound on the time of ``cost``: ``max(flops / peak, bytes_total / bandwidth)``.

        Examples
        --------
        >>> from sepconv.cost import op_cost
        >>> r = Roofline(100.0, (1000, 100000), (50.0, 10.0), 2, "test", "", 0.0)
        >>> c = op_cost("conv2d", (1, 56, 56, 64), (3, 3, 64, 64))
        >>> r.bound_seconds(c) == c.flops / 100e9
        True
        """
        return self.bound(cost).seconds

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready fields, plus the DRAM bandwidth and ridge point.

        Examples
        --------
        >>> Roofline(100.0, (1000,), (10.0,), 2, "test", "", 0.0).as_dict()["ridge_intensity_flops_per_byte"]
        10.0
        """
        return {**asdict(self), "dram_bandwidth_gbs": self.dram_bandwidth_gbs,
                "ridge_intensity_flops_per_byte": self.ridge_intensity}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Roofline:
        """Inverse of :meth:`as_dict` (extra keys ignored; a dict without ``gemm_gflops``, cached before the peak
        was the multiply-add rate, raises ``KeyError``: measure again).

        Examples
        --------
        >>> r = Roofline(100.0, (1000,), (10.0,), 2, "test", "", 0.0)
        >>> Roofline.from_dict(r.as_dict()) == r
        True
        """
        return cls(float(data["peak_gflops"]), tuple(int(v) for v in data["footprints_bytes"]),
                   tuple(float(v) for v in data["bandwidths_gbs"]), int(data["threads"]), str(data["machine"]),
                   str(data["measured_at"]), float(data["probe_seconds"]), float(data.get("load_average", 0.0)),
                   float(data["gemm_gflops"]))


# --------------------------------------------------------------------------- machine identity and cache


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_description() -> str:
    """CPU model and logical core count, e.g. ``"Intel(R) Xeon(R) Processor, 2 cores"``.

    Examples
    --------
    >>> "cores" in machine_description()
    True
    """
    return f"{_cpu_model()}, {os.cpu_count()} cores"


def cache_path() -> Path:
    """Where this machine's roofline is cached: ``$SEPCONV_CACHE_DIR`` or ``~/.cache/sepconv``.

    The file name carries a hash of the host name and CPU, so a shared home directory keeps
    one file per machine.

    Examples
    --------
    >>> cache_path().name.startswith("roofline-")
    True
    """
    root = Path(os.environ.get("SEPCONV_CACHE_DIR") or Path.home() / ".cache" / "sepconv")
    key = hashlib.sha1(f"{platform.node()}|{machine_description()}".encode()).hexdigest()[:12]
    return root / f"roofline-{key}.json"


def save_roofline(roofline: Roofline, path: Path | None = None) -> Path:
    """Write ``roofline`` as this machine's cached roofline (or to ``path``); return the path.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> r = Roofline(100.0, (1000,), (10.0,), 2, "test", "", 0.0)
    >>> p = save_roofline(r, pathlib.Path(tempfile.mkdtemp()) / "r.json")
    >>> Roofline.from_dict(json.loads(p.read_text())) == r
    True
    """
    path = path or cache_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    tmp.write_text(json.dumps(roofline.as_dict(), indent=2))
    tmp.replace(path)
    return path


def _load_average() -> float:
    return os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0


def _measured_busy_now_quiet(cached: Roofline) -> bool:
    """True if the cached probe ran with other work on half the cores or more, and now there is little.

    Half is enough: on 2 cores one busy process halves every 2-thread probe (measured here: a
    probe at load average 1.0 found 160 GFLOP/s and 35 GB/s at 2 MiB; at 0.4, 271 and 78)."""
    cores = os.cpu_count() or 1
    return cached.load_average >= cores / 2 and _load_average() < cores / 4


def machine_roofline(refresh: bool = False, verbose: bool = True) -> Roofline:
    """This machine's roofline: from the cache, or measured (and cached) if absent or ``refresh``.

    A cached roofline measured while the machine was busy (load average at half the core count
    or more) is measured again once the machine is quiet (load average below a quarter of it).

    Parameters
    ----------
    refresh : bool
        Measure again even if a cached roofline exists.
    verbose : bool
        Print the probe's progress on stderr.

    Returns
    -------
    Roofline

    Examples
    --------
    >>> r = machine_roofline(verbose=False)
    >>> r.peak_gflops > 0 and r.dram_bandwidth_gbs > 0
    True
    """
    path = cache_path()
    if not refresh and path.exists():
        try:
            cached = Roofline.from_dict(json.loads(path.read_text()))
        except (ValueError, KeyError, TypeError):
            cached = None  # unreadable cache: measure again
        if cached is not None and not _measured_busy_now_quiet(cached):
            return cached
        if cached is not None and verbose:
            print(f"roofline: the cached figures were measured at load average {cached.load_average:.1f}; "
                  "the machine is quieter now, measuring again", file=sys.stderr)
    roofline = measure_roofline(verbose=verbose)
    try:
        save_roofline(roofline, path)
    except OSError as e:
        if verbose:
            print(f"roofline: could not cache to {path}: {e}", file=sys.stderr)
    return roofline


# --------------------------------------------------------------------------- the probe


@kernel
def _triad_chunk(a, b, c, scalar):
    for i in range(a.size):
        a[i] = b[i] + scalar * c[i]


@kernel(parallel=True)
def _triad(a, b, c, scalar, offset, count, threads):
    """Each thread walks ``count`` elements of its own region, circularly, from ``offset``."""
    n = a.size
    for t in numba.prange(threads):
        lo = n * t // threads
        size = n * (t + 1) // threads - lo
        done = 0
        j = offset % size
        while done < count:
            m = min(count - done, size - j)
            _triad_chunk(a[lo + j:lo + j + m], b[lo + j:lo + j + m], c[lo + j:lo + j + m], scalar)
            done += m
            j = 0


def _best_seconds(runs: dict[Any, Any], min_runs: int, budget_seconds: float, max_runs: int = 400) -> dict:
    """Fastest time of each callable in ``runs``, called in turn (so each sees the same machine load).

    On a shared machine the fastest of many short runs is the one nobody interrupted.
    """
    best = dict.fromkeys(runs, math.inf)
    start, done = time.perf_counter(), 0
    while done < min_runs or (time.perf_counter() - start < budget_seconds and done < max_runs):
        for key, fn in runs.items():
            t = time.perf_counter()
            fn()
            best[key] = min(best[key], time.perf_counter() - t)
        done += 1
    return best


def measure_bandwidth(footprints_bytes: tuple[int, ...] = FOOTPRINTS_BYTES, run_bytes: int = 8 << 20,
                      verbose: bool = True) -> tuple[tuple[float, ...], int]:
    """Triad bandwidth in GB/s at each footprint (three float32 arrays totalling the footprint).

    Each timed run moves ``run_bytes``, each thread cycling through its own part of the arrays.
    Runs are short so that, on a busy machine, some run uninterrupted; the fastest counts.
    Runs alternate between one thread and all of Numba's threads and the higher figure is
    kept (on a machine busy with other work, all threads are rarely scheduled at once).  A
    larger footprint's figure is also a floor for a smaller one (cache is never slower than
    DRAM).  Returns the bandwidths and Numba's thread count.

    Examples
    --------
    >>> bandwidths, threads = measure_bandwidth((1 << 20,), verbose=False)
    >>> bandwidths[0] > 0 and threads >= 1
    True
    """
    all_threads = numba.get_num_threads()
    thread_counts = sorted({1, all_threads})
    results = []
    for footprint in footprints_bytes:
        n = max(footprint // _TRIAD_BYTES_PER_ELEMENT, 16 * all_threads)
        a, b, c = np.zeros(n, np.float32), np.ones(n, np.float32), np.full(n, 0.5, np.float32)
        counts = {t: max(run_bytes // _TRIAD_BYTES_PER_ELEMENT // t, 1) for t in thread_counts}
        offsets = dict.fromkeys(thread_counts, 0)

        def run(threads: int) -> None:
            numba.set_num_threads(threads)
            _triad(a, b, c, np.float32(1.5), offsets[threads], counts[threads], threads)  # noqa: B023
            offsets[threads] = (offsets[threads] + counts[threads]) % (n // threads)  # noqa: B023

        try:
            for threads in thread_counts:
                numba.set_num_threads(threads)
                _triad(a, b, c, np.float32(1.5), 0, n // threads, threads)  # compile, page in
            seconds = _best_seconds({t: functools.partial(run, t) for t in thread_counts}, 5, 0.3)
        finally:
            numba.set_num_threads(all_threads)
        by_threads = {t: counts[t] * t * _TRIAD_BYTES_PER_ELEMENT / seconds[t] / 1e9 for t in thread_counts}
        results.append(max(by_threads.values()))
        if verbose:
            detail = ", ".join(f"{t} thread{'s' * (t > 1)} {v:.1f}" for t, v in by_threads.items())
            print(f"roofline: bandwidth at {_human_bytes(footprint):>8}: {results[-1]:7.1f} GB/s ({detail})",
                  file=sys.stderr)
    envelope = np.maximum.accumulate(np.asarray(results)[::-1])[::-1]
    return tuple(float(v) for v in envelope), all_threads


# Independent multiply-add chains per thread: enough to cover the latency (4-5 cycles) of two FMA units a cycle, and
# few enough that they and the two operands stay in sixteen AVX2 registers when the vectors are half ones.
_FMA_CHAINS = 12
_FMA_ROUNDS = 200_000


@kernel
def _fma_chains(values, zero, rounds):
    """``rounds`` rounds of :data:`_FMA_CHAINS` independent ``acc = acc * x + y`` on vectors as wide as ``zero``
    (``values``: ``x``, ``y``, then each chain's start, a vector's lanes each); the sum of the results, so that none
    is dead code.  Loaded from an array, the starts are unknown to LLVM, which cannot merge the chains."""
    n = 16  # a slot of ``values`` per vector, as wide as the widest
    x = load_like(values, 0, zero)
    y = load_like(values, n, zero)
    a0, a1, a2, a3 = (load_like(values, 2 * n, zero), load_like(values, 3 * n, zero),
                      load_like(values, 4 * n, zero), load_like(values, 5 * n, zero))
    a4, a5, a6, a7 = (load_like(values, 6 * n, zero), load_like(values, 7 * n, zero),
                      load_like(values, 8 * n, zero), load_like(values, 9 * n, zero))
    a8, a9, a10, a11 = (load_like(values, 10 * n, zero), load_like(values, 11 * n, zero),
                        load_like(values, 12 * n, zero), load_like(values, 13 * n, zero))
    for _ in range(rounds):
        a0, a1, a2, a3 = vfma(a0, x, y), vfma(a1, x, y), vfma(a2, x, y), vfma(a3, x, y)
        a4, a5, a6, a7 = vfma(a4, x, y), vfma(a5, x, y), vfma(a6, x, y), vfma(a7, x, y)
        a8, a9, a10, a11 = vfma(a8, x, y), vfma(a9, x, y), vfma(a10, x, y), vfma(a11, x, y)
    total = vadd(vadd(vadd(a0, a1), vadd(a2, a3)), vadd(vadd(a4, a5), vadd(a6, a7)))
    return vsum(vadd(total, vadd(vadd(a8, a9), vadd(a10, a11))))


@kernel(parallel=True)
def _fma_whole(values, rounds, threads, sums):
    """:func:`_fma_chains` on 64-byte vectors, on each of ``threads`` threads."""
    for t in numba.prange(threads):
        sums[t] = _fma_chains(values, vzeros(values), rounds)


@kernel(parallel=True)
def _fma_half(values, rounds, threads, sums):
    """:func:`_fma_chains` on 32-byte vectors (AVX2's registers: twelve whole vectors would not fit sixteen)."""
    for t in numba.prange(threads):
        sums[t] = _fma_chains(values, hzeros(values), rounds)


def measure_fma_gflops(verbose: bool = True) -> float:
    """fp32 GFLOP/s of independent vector multiply-adds (the compute roof), best of many short runs.

    Runs alternate between one thread and all of Numba's threads, and between 64-byte and 32-byte
    vectors (the wider ones spill on a CPU with sixteen 32-byte registers; a CPU with AVX-512 units
    runs the wider ones at twice the rate); the highest figure is kept.

    Examples
    --------
    >>> measure_fma_gflops(verbose=False) > 0
    True
    """
    all_threads = numba.get_num_threads()
    values = np.concatenate([np.full(16, 0.5), np.full(16, 1.0), np.arange(16 * _FMA_CHAINS) / 64.0]).astype(
        np.float32)
    sums = np.zeros(all_threads, np.float32)
    runs = {}
    for name, fn, lane_count in (("64-byte", _fma_whole, 16), ("32-byte", _fma_half, 8)):
        for threads in sorted({1, all_threads}):
            def run(fn=fn, threads=threads) -> None:
                numba.set_num_threads(threads)
                fn(values, _FMA_ROUNDS, threads, sums)

            run()  # compile (or load from the cache)
            runs[(name, threads, lane_count)] = run
    try:
        seconds = _best_seconds(runs, 5, 0.3)
    finally:
        numba.set_num_threads(all_threads)
    by_run = {key: 2 * key[2] * _FMA_CHAINS * _FMA_ROUNDS * key[1] / t / 1e9 for key, t in seconds.items()}
    gflops = max(by_run.values())
    if not np.all(np.isfinite(sums)):
        raise RuntimeError("the multiply-add probe's sums are not finite")
    if verbose:
        detail = ", ".join(f"{name} {threads} thread{'s' * (threads > 1)} {v:.1f}"
                           for (name, threads, _), v in by_run.items())
        print(f"roofline: fp32 peak (independent multiply-adds): {gflops:7.1f} GFLOP/s ({detail})", file=sys.stderr)
    return gflops


def measure_gemm_gflops(size: int = GEMM_SIZE, verbose: bool = True) -> float:
    """fp32 GFLOP/s of ``size x size`` NumPy matrix products (best of several runs).

    With ``threadpoolctl`` installed, a one-thread BLAS is measured as well and the higher
    figure kept (see :func:`measure_bandwidth` for why).

    Examples
    --------
    >>> measure_gemm_gflops(256, verbose=False) > 0
    True
    """
    rng = np.random.default_rng(0)
    a = rng.standard_normal((size, size), dtype=np.float32)
    b = rng.standard_normal((size, size), dtype=np.float32)
    a @ b  # warm up the BLAS threads
    runs = {"all threads": lambda: a @ b}
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        pass
    else:
        def one_thread() -> None:
            with threadpool_limits(1, user_api="blas"):
                a @ b

        runs["1 thread"] = one_thread
    seconds = _best_seconds(runs, 3, 0.6)
    by_threads = {k: 2 * size**3 / v / 1e9 for k, v in seconds.items()}
    gflops = max(by_threads.values())
    if verbose:
        detail = ", ".join(f"{k} {v:.1f}" for k, v in by_threads.items())
        print(f"roofline: fp32 GEMM rate (NumPy {size}x{size} matmul): {gflops:7.1f} GFLOP/s ({detail})",
              file=sys.stderr)
    return gflops


def measure_roofline(verbose: bool = True) -> Roofline:
    """Run the probe (a few seconds) and return the result, uncached.

    Examples
    --------
    >>> measure_roofline(verbose=False).threads >= 1  # doctest: +SKIP
    True
    """
    start = time.perf_counter()
    load = _load_average()
    if verbose:
        print(f"roofline: measuring this machine ({machine_description()}, load average {load:.1f}); "
              f"cached in {cache_path()}", file=sys.stderr)
    bandwidths, threads = measure_bandwidth(verbose=verbose)
    peak = measure_fma_gflops(verbose=verbose)
    gemm = measure_gemm_gflops(verbose=verbose)
    elapsed = time.perf_counter() - start
    return Roofline(peak, FOOTPRINTS_BYTES, bandwidths, threads, machine_description(),
                    time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), round(elapsed, 3), round(load, 2), gemm)


def _human_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB"):
        if n < 1024:
            return f"{n:.0f} {unit}"
        n /= 1024
    return f"{n:.0f} GiB"
