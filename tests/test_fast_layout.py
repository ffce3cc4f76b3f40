"""The NCHW <-> NHWC copies of ``sepconv.fast.layout`` against NumPy's transposes: shapes whose sides
are and are not multiples of a vector, few-channel ones, both dtypes, on one thread and split."""

from __future__ import annotations

import numpy as np
import pytest

from sepconv.fast import layout

# ... and few-channel ones (at most FEW channels, or pixels, on one side: the pixel-by-pixel kernels, every count)
SHAPES = [(1, 1, 1, 1), (2, 17, 5, 3), (3, 40, 9, 7), (1, 16, 4, 4), (2, 33, 17, 1), (4, 96, 7, 7),
          *[(2, c, 11, 13) for c in range(2, 9)], (1, 3, 30, 30), (3, 5, 2, 3), (2, 20, 2, 2), (2, 9, 1, 8)]


@pytest.mark.parametrize("threads", ["serial", "split"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", SHAPES)
def test_layout_copies_match_numpy(shape, dtype, threads, monkeypatch):
    monkeypatch.setattr(layout, "PARALLEL_MIN_VALUES", 10**18 if threads == "serial" else 0)
    x = np.random.default_rng(sum(shape)).standard_normal(shape).astype(dtype)
    nhwc = layout.nchw_to_nhwc(x)
    assert nhwc.flags.c_contiguous and nhwc.dtype == dtype
    np.testing.assert_array_equal(nhwc, x.transpose(0, 2, 3, 1))
    back = layout.nhwc_to_nchw(nhwc)
    assert back.flags.c_contiguous
    np.testing.assert_array_equal(back, x)


def test_non_contiguous_inputs_are_copied_first():
    x = np.random.default_rng(0).standard_normal((2, 20, 9, 11)).astype(np.float32)
    view = x[:, ::-1, 1:, ::2]
    np.testing.assert_array_equal(layout.nchw_to_nhwc(view), view.transpose(0, 2, 3, 1))
    np.testing.assert_array_equal(layout.nhwc_to_nchw(view), view.transpose(0, 3, 1, 2))
