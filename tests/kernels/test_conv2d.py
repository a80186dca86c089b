"""kernels/conv2d.cu through dlgpu.backend.kernel_ops.conv2d, against dlgpu.backend.cpu.

Shapes hit the edges of the 64 (or 32) x 64 x 16 tiling (C / COUT of 1, 3, 33, 65: not multiples of any tile
size; M = N*Ho*Wo below, at and above 64), batch 1, 1-pixel images, strides 1 and 2 (also mixed),
'same' and 'valid' pads (also asymmetric), 1x1, 3x3 and 5x5 kernels, while keeping each launch to a
few dozen emulated blocks.  Outputs come back NaN-filled from the wrappers' allocations (conftest), so
an element a kernel forgets to write fails.
"""
import numpy as np
import pytest

from dlgpu.backend import cpu


def same_pads(size, k, s):
    """TF/Keras 'same': (before, after) with the extra pixel after."""
    out = -(-size // s)
    total = max((out - 1) * s + k - size, 0)
    return total // 2, total - total // 2


def resolve(h, w, kh, kw, strides, padding):
    if padding == "valid":
        return (0, 0, 0, 0)
    if padding == "same":
        return same_pads(h, kh, strides[0]) + same_pads(w, kw, strides[1])
    return padding  # explicit (top, bottom, left, right)


# (N, H, W, C, KH, KW, COUT, strides, padding)
CASES = [
    (1, 1, 1, 1, 1, 1, 1, (1, 1), "valid"),
    (1, 1, 1, 3, 3, 3, 5, (1, 1), "same"),          # 1-pixel image, 3x3 'same': only the center tap is real
    (2, 7, 7, 3, 3, 3, 33, (1, 1), "same"),
    (1, 7, 9, 33, 3, 3, 3, (2, 2), "same"),
    (2, 9, 8, 1, 5, 5, 7, (1, 1), "valid"),
    (1, 11, 10, 5, 5, 5, 65, (2, 1), "same"),       # COUT 65: two column tiles, the second 1 wide
    (3, 6, 5, 17, 1, 1, 9, (2, 2), "valid"),        # 1x1 stride 2
    (1, 8, 8, 4, 3, 3, 4, (2, 2), (1, 0, 0, 2)),    # asymmetric explicit pads
    (1, 13, 13, 32, 3, 3, 64, (1, 1), "valid"),     # the seed CNN's second conv, batch 1
]


def _ids(case):
    n, h, w, c, kh, kw, co, s, p = case
    return f"{n}x{h}x{w}x{c}-k{kh}x{kw}-o{co}-s{s[0]}{s[1]}-{p if isinstance(p, str) else 'p' + ''.join(map(str, p))}"


def _data(rng, case):
    n, h, w, c, kh, kw, co, s, p = case
    x = rng.standard_normal((n, h, w, c)).astype(np.float32)
    wt = (rng.standard_normal((kh, kw, c, co)) / np.sqrt(kh * kw * c)).astype(np.float32)
    b = rng.standard_normal(co).astype(np.float32)
    return x, wt, b, s, resolve(h, w, kh, kw, s, p)


TOL = dict(rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("rows", [64, 32], ids=["bm64", "bm32"])
@pytest.mark.parametrize("case", CASES, ids=_ids)
def test_conv2d_forward_backward(kb, rng, case, rows):
    """Both row-tile variants (the wrapper picks 32 for small problems, 64 for large ones)."""
    x, w, b, strides, pads = _data(rng, case)
    y, ctx = kb.lib.conv2d_forward(kb.asarray(x), kb.asarray(w), kb.asarray(b), strides, pads, "linear",
                                   _rows=rows)
    y_ref, ctx_ref = cpu.conv2d_forward(x, w, b, strides, pads, "linear")
    assert y.shape == y_ref.shape and y.dtype == np.float32
    np.testing.assert_allclose(kb.asnumpy(y), y_ref, **TOL)
    dy = rng.standard_normal(y_ref.shape).astype(np.float32)
    dx, dw, db = kb.lib.conv2d_backward(kb.asarray(dy), ctx, _rows=rows)
    dx_ref, dw_ref, db_ref = cpu.conv2d_backward(dy, ctx_ref)
    assert dx.shape == x.shape and dw.shape == w.shape and db.shape == b.shape
    np.testing.assert_allclose(kb.asnumpy(dx), dx_ref, **TOL)
    np.testing.assert_allclose(kb.asnumpy(dw), dw_ref, **TOL)
    np.testing.assert_allclose(kb.asnumpy(db), db_ref, **TOL)


@pytest.mark.parametrize("name", cpu.ACTIVATIONS)
@pytest.mark.parametrize("with_bias", [True, False], ids=["bias", "nobias"])
def test_conv2d_fused_activation(kb, rng, name, with_bias):
    x, w, b, strides, pads = _data(rng, (2, 6, 7, 3, 3, 3, 5, (1, 1), "same"))
    b = b if with_bias else None
    y, ctx = kb.lib.conv2d_forward(kb.asarray(x), kb.asarray(w), None if b is None else kb.asarray(b),
                                   strides, pads, name, 0.1)
    y_ref, ctx_ref = cpu.conv2d_forward(x, w, b, strides, pads, name, 0.1)
    np.testing.assert_allclose(kb.asnumpy(y), y_ref, rtol=1e-5, atol=2e-5)
    dy = rng.standard_normal(y_ref.shape).astype(np.float32)
    dx, dw, db = kb.lib.conv2d_backward(kb.asarray(dy), ctx)
    dx_ref, dw_ref, db_ref = cpu.conv2d_backward(dy, ctx_ref)
    np.testing.assert_allclose(kb.asnumpy(dx), dx_ref, **TOL)
    np.testing.assert_allclose(kb.asnumpy(dw), dw_ref, **TOL)
    if with_bias:
        np.testing.assert_allclose(kb.asnumpy(db), db_ref, **TOL)
    else:
        assert db is None


def test_conv2d_backward_without_dx(kb, rng):
    x, w, b, strides, pads = _data(rng, (1, 5, 5, 2, 3, 3, 3, (1, 1), "valid"))
    y, ctx = kb.lib.conv2d_forward(kb.asarray(x), kb.asarray(w), kb.asarray(b), strides, pads, "relu")
    dx, dw, db = kb.lib.conv2d_backward(kb.asarray(np.ones(y.shape, np.float32)), ctx, need_dx=False)
    assert dx is None and dw.shape == w.shape


@pytest.mark.parametrize("splits", [1, 3, 7])
def test_conv2d_dfilter_split_reduction(kb, rng, splits):
    """The reduction over N*Ho*Wo split into blocks (uneven last split, a split's tail shorter than a
    16-row tile) adds up to the same dW; 7 splits of 16 rows leave the last one with 2 rows."""
    x, w, b, strides, pads = _data(rng, (2, 7, 7, 3, 3, 3, 4, (1, 1), "same"))  # R = 98 rows
    _, ctx = kb.lib.conv2d_forward(kb.asarray(x), kb.asarray(w), None, strides, pads)
    _, ctx_ref = cpu.conv2d_forward(x, w, None, strides, pads)
    dy = rng.standard_normal((2, 7, 7, 4)).astype(np.float32)
    _, dw, db = kb.lib.conv2d_backward(kb.asarray(dy), ctx, need_dx=False, _dfilter_splits=splits)
    _, dw_ref, _ = cpu.conv2d_backward(dy, ctx_ref, need_dx=False)
    assert db is None
    np.testing.assert_allclose(kb.asnumpy(dw), dw_ref, **TOL)


def test_conv2d_deterministic(kb, rng):
    """No atomics anywhere: two backward passes give bitwise-equal gradients."""
    x, w, b, strides, pads = _data(rng, (2, 7, 7, 3, 3, 3, 5, (2, 2), "same"))
    y, ctx = kb.lib.conv2d_forward(kb.asarray(x), kb.asarray(w), kb.asarray(b), strides, pads, "tanh")
    dy = kb.asarray(rng.standard_normal(y.shape).astype(np.float32))
    first = [kb.asnumpy(a) for a in kb.lib.conv2d_backward(dy, ctx)]
    second = [kb.asnumpy(a) for a in kb.lib.conv2d_backward(dy, ctx)]
    for a, b_ in zip(first, second):
        np.testing.assert_array_equal(a, b_)


def test_conv2d_non_contiguous_input(kb, rng):
    x, w, b, strides, pads = _data(rng, (1, 6, 6, 3, 3, 3, 2, (1, 1), "valid"))
    xt = kb.asarray(np.ascontiguousarray(x.transpose(0, 2, 1, 3))).transpose(0, 2, 1, 3)  # same values, strided
    y, _ = kb.lib.conv2d_forward(xt, kb.asarray(w), kb.asarray(b), strides, pads)
    np.testing.assert_allclose(kb.asnumpy(y), cpu.conv2d_forward(x, w, b, strides, pads)[0], **TOL)


def test_conv2d_errors_name_the_op(kb, rng):
    x = kb.asarray(np.zeros((1, 4, 4, 3), np.float32))
    w = kb.asarray(np.zeros((3, 3, 2, 5), np.float32))
    with pytest.raises(ValueError, match=r"conv2d_forward: w's input channels \(2\) differ"):
        kb.lib.conv2d_forward(x, w, None, (1, 1), (0, 0, 0, 0))
    w = kb.asarray(np.zeros((3, 3, 3, 5), np.float32))
    with pytest.raises(TypeError, match="conv2d_forward: x must be a float32"):
        kb.lib.conv2d_forward(x.astype(np.float64), w, None, (1, 1), (0, 0, 0, 0))
    with pytest.raises(ValueError, match="conv2d_forward: b must have shape"):
        kb.lib.conv2d_forward(x, w, kb.asarray(np.zeros(4, np.float32)), (1, 1), (0, 0, 0, 0))
    with pytest.raises(ValueError, match="strides must be >= 1"):
        kb.lib.conv2d_forward(x, w, None, (0, 1), (0, 0, 0, 0))
    with pytest.raises(ValueError, match="does not fit"):
        kb.lib.conv2d_forward(x[:, :2], w, None, (1, 1), (0, 0, 0, 0))
    with pytest.raises(ValueError, match="unknown activation"):
        kb.lib.conv2d_forward(x, w, None, (1, 1), (0, 0, 0, 0), "swish")
    y, ctx = kb.lib.conv2d_forward(x, w, None, (1, 1), (0, 0, 0, 0))
    with pytest.raises(ValueError, match=r"conv2d_backward: dy must have shape \(1, 2, 2, 5\)"):
        kb.lib.conv2d_backward(kb.asarray(np.zeros((1, 2, 2, 4), np.float32)), ctx)
