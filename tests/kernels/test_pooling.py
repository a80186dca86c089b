"""kernels/pooling.cu through dlgpu.backend.kernel_ops.pooling, against dlgpu.backend.cpu.

Awkward shapes: batch 1, 1-pixel and odd images, C of 1, 3 and 33, pool 2x2 / 3x3 / 1x1 / 2x3, strides
1, 2 and 3 (windows that overlap, tile exactly, and skip inputs), 'valid', 'same' and asymmetric pads.
Outputs come back NaN / -1 filled from the wrappers' allocations (conftest), so an element a kernel
forgets to write fails.
"""
import numpy as np
import pytest

from dlgpu.backend import cpu


def same_pads(size, k, s):
    out = -(-size // s)
    total = max((out - 1) * s + k - size, 0)
    return total // 2, total - total // 2


def resolve(h, w, pool, strides, padding):
    if padding == "valid":
        return (0, 0, 0, 0)
    if padding == "same":
        return same_pads(h, pool[0], strides[0]) + same_pads(w, pool[1], strides[1])
    return padding


# (x shape, pool, strides, padding)
CASES = [
    ((1, 1, 1, 1), (1, 1), (1, 1), "valid"),
    ((1, 1, 1, 3), (2, 2), (2, 2), "same"),
    ((2, 4, 4, 3), (2, 2), (2, 2), "valid"),
    ((1, 7, 7, 33), (2, 2), (2, 2), "valid"),       # the odd last row / column is dropped
    ((1, 7, 7, 33), (2, 2), (2, 2), "same"),
    ((2, 7, 9, 1), (3, 3), (2, 2), "valid"),        # overlapping windows
    ((2, 7, 9, 3), (3, 3), (2, 2), "same"),
    ((1, 8, 5, 2), (3, 3), (1, 1), "same"),         # every input in up to 9 windows
    ((1, 9, 8, 4), (2, 3), (3, 1), (1, 0, 2, 1)),   # stride > pool rows skips inputs; asymmetric pads
    ((1, 26, 26, 32), (2, 2), (2, 2), "valid"),     # the seed CNN's pooling, batch 1
]


def _ids(case):
    shape, pool, strides, p = case
    pid = p if isinstance(p, str) else "p" + "".join(map(str, p))
    return f"{'x'.join(map(str, shape))}-p{pool[0]}{pool[1]}-s{strides[0]}{strides[1]}-{pid}"


@pytest.mark.parametrize("case", CASES, ids=_ids)
def test_max_pool2d(kb, rng, case):
    shape, pool, strides, padding = case
    pads = resolve(shape[1], shape[2], pool, strides, padding)
    x = rng.standard_normal(shape).astype(np.float32)
    y, argmax = kb.lib.max_pool2d_forward(kb.asarray(x), pool, strides, pads)
    y_ref, argmax_ref = cpu.max_pool2d_forward(x, pool, strides, pads)
    assert y.shape == y_ref.shape and argmax.dtype == np.int32
    np.testing.assert_array_equal(kb.asnumpy(y), y_ref)
    np.testing.assert_array_equal(kb.asnumpy(argmax), argmax_ref)
    dy = rng.standard_normal(y_ref.shape).astype(np.float32)
    dx = kb.lib.max_pool2d_backward(kb.asarray(dy), argmax, x.shape, pool, strides, pads)
    dx_ref = cpu.max_pool2d_backward(dy, argmax_ref, x.shape, pool, strides, pads)
    assert dx.shape == x.shape
    np.testing.assert_allclose(kb.asnumpy(dx), dx_ref, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("case", CASES, ids=_ids)
def test_avg_pool2d(kb, rng, case):
    shape, pool, strides, padding = case
    pads = resolve(shape[1], shape[2], pool, strides, padding)
    x = rng.standard_normal(shape).astype(np.float32)
    y, none = kb.lib.avg_pool2d_forward(kb.asarray(x), pool, strides, pads)
    y_ref, _ = cpu.avg_pool2d_forward(x, pool, strides, pads)
    assert none is None and y.shape == y_ref.shape
    np.testing.assert_allclose(kb.asnumpy(y), y_ref, rtol=1e-6, atol=1e-6)
    dy = rng.standard_normal(y_ref.shape).astype(np.float32)
    dx = kb.lib.avg_pool2d_backward(kb.asarray(dy), x.shape, pool, strides, pads)
    dx_ref = cpu.avg_pool2d_backward(dy, x.shape, pool, strides, pads)
    assert dx.shape == x.shape
    np.testing.assert_allclose(kb.asnumpy(dx), dx_ref, rtol=1e-6, atol=1e-6)


def test_max_pool2d_ties_first_wins_and_padding_never_wins(kb):
    # All-equal negative inputs: every tap ties, so argmax must be the first *real* tap; the -inf padding
    # (top-left of the first 'same' window) never wins even though all real values are negative.
    x = np.full((1, 3, 3, 2), -5.0, np.float32)
    pool, strides, pads = (3, 3), (2, 2), (1, 1, 1, 1)
    y, argmax = kb.lib.max_pool2d_forward(kb.asarray(x), pool, strides, pads)
    y_ref, argmax_ref = cpu.max_pool2d_forward(x, pool, strides, pads)
    np.testing.assert_array_equal(kb.asnumpy(y), y_ref)
    np.testing.assert_array_equal(kb.asnumpy(argmax), argmax_ref)
    assert kb.asnumpy(argmax)[0, 0, 0, 0] == 4  # tap (1, 1): the first real one
    assert np.all(kb.asnumpy(y) == -5.0)


def test_max_pool2d_backward_routes_ties_to_one_input(kb):
    x = np.zeros((1, 4, 4, 1), np.float32)  # every window ties
    y, argmax = kb.lib.max_pool2d_forward(kb.asarray(x), (2, 2), (2, 2), (0, 0, 0, 0))
    dx = kb.asnumpy(kb.lib.max_pool2d_backward(kb.asarray(np.ones(y.shape, np.float32)), argmax, x.shape,
                                               (2, 2), (2, 2), (0, 0, 0, 0)))
    expected = np.zeros((4, 4), np.float32)
    expected[::2, ::2] = 1.0
    np.testing.assert_array_equal(dx[0, :, :, 0], expected)


def test_pooling_errors_name_the_op(kb):
    x = kb.asarray(np.zeros((1, 4, 4, 2), np.float32))
    with pytest.raises(TypeError, match="max_pool2d_forward: x must be a float32"):
        kb.lib.max_pool2d_forward(x.astype(np.float64), (2, 2), (2, 2), (0, 0, 0, 0))
    with pytest.raises(ValueError, match="avg_pool2d_forward: x must be"):
        kb.lib.avg_pool2d_forward(x[0], (2, 2), (2, 2), (0, 0, 0, 0))
    with pytest.raises(ValueError, match="smaller than the pool size"):
        kb.lib.avg_pool2d_forward(x, (2, 2), (2, 2), (2, 0, 0, 0))
    with pytest.raises(ValueError, match="strides must be >= 1"):
        kb.lib.max_pool2d_forward(x, (2, 2), (0, 2), (0, 0, 0, 0))
    y, argmax = kb.lib.max_pool2d_forward(x, (2, 2), (2, 2), (0, 0, 0, 0))
    with pytest.raises(ValueError, match=r"max_pool2d_backward: dy must have shape \(1, 2, 2, 2\)"):
        kb.lib.max_pool2d_backward(kb.asarray(np.zeros((1, 2, 2, 3), np.float32)), argmax, (1, 4, 4, 2),
                                   (2, 2), (2, 2), (0, 0, 0, 0))
    with pytest.raises(TypeError, match="argmax must be an int32"):
        kb.lib.max_pool2d_backward(y, argmax.astype(np.int64), (1, 4, 4, 2), (2, 2), (2, 2), (0, 0, 0, 0))
