"""Reductions: sum, mean, max/min, var/std, logsumexp, argmax…"""

from __future__ import annotations

import math

import numpy as np

from dlgpu.autograd import FLOATX
from dlgpu.ops._core import array_module, float_operand, make_result, normalize_axis, to_tensor


def _expand(g, in_shape, axes, keepdims):
    """Reshape a reduced gradient so it broadcasts back over the reduced axes."""
    if not keepdims:
        shape = [1 if i in axes else s for i, s in enumerate(in_shape)]
        g = g.reshape(shape)
    return g


# The dtype Keras sums and multiplies these in (JAX's rule); numpy would widen every integer to 64 bits.
_ACCUMULATOR_DTYPES = {np.dtype(src): np.dtype(acc) for src, acc in [
    (np.bool_, np.int32), (np.int8, np.int32), (np.int16, np.int32), (np.int32, np.int32),
    (np.uint8, np.uint32), (np.uint16, np.uint32), (np.uint32, np.uint32)]}


def sum(x, axis=None, keepdims=False):  # noqa: A001 - keras.ops name
    x = to_tensor(x)
    xp = array_module(x.data)
    axes = normalize_axis(axis, x.ndim)
    shape = x.data.shape
    out = xp.asarray(x.data.sum(axis=axes, keepdims=keepdims, dtype=_ACCUMULATOR_DTYPES.get(x.data.dtype)))
    return make_result(out, (x,), lambda g: (xp.broadcast_to(_expand(g, shape, axes, keepdims), shape),))


def mean(x, axis=None, keepdims=False):
    x = to_tensor(x)
    xp = array_module(x.data)
    axes = normalize_axis(axis, x.ndim)
    shape = x.data.shape
    count = math.prod(shape[a] for a in axes)
    data = x.data if x.data.dtype.kind == "f" else x.data.astype(FLOATX)
    # sum / count is what ndarray.mean computes, without its per-call bookkeeping (the loss takes a mean
    # every step)
    out = xp.asarray(data.sum(axis=axes, keepdims=keepdims) / count)
    return make_result(out, (x,), lambda g: (xp.broadcast_to(_expand(g / count, shape, axes, keepdims), shape),))


def _extreme(name):
    def op(x, axis=None, keepdims=False):
        x = to_tensor(x)
        xp = array_module(x.data)
        axes = normalize_axis(axis, x.ndim)
        shape = x.data.shape
        out = xp.asarray(getattr(x.data, name)(axis=axes, keepdims=True))

        def backward(g):
            # Ties share the gradient equally, so the result does not depend on scan order.
            mask = (x.data == out).astype(g.dtype)
            mask /= mask.sum(axis=axes, keepdims=True)
            return (mask * _expand(g, shape, axes, keepdims),)
        result = out if keepdims else out.reshape([s for i, s in enumerate(shape) if i not in axes])
        return make_result(result, (x,), backward)
    op.__name__ = name
    return op


max = _extreme("max")  # noqa: A001
min = _extreme("min")  # noqa: A001
amax, amin = max, min


def prod(x, axis=None, keepdims=False):
    x = to_tensor(x)
    xp = array_module(x.data)
    axes = normalize_axis(axis, x.ndim)
    shape = x.data.shape
    out = xp.asarray(x.data.prod(axis=axes, keepdims=True, dtype=_ACCUMULATOR_DTYPES.get(x.data.dtype)))
    result = out if keepdims else out.reshape([s for i, s in enumerate(shape) if i not in axes])

    def backward(g):
        # d prod / d x_i = product of the other values.  Not out / x_i: that is nan wherever x_i == 0.
        # Exclusive cumulative products from both ends of the (flattened) reduced axes give it exactly.
        g = _expand(g, shape, axes, keepdims)
        if not axes:
            return (g,)
        last = tuple(range(-len(axes), 0))
        moved = xp.moveaxis(x.data, axes, last)
        flat = moved.reshape(moved.shape[:-len(axes)] + (-1,))
        ones = xp.ones_like(flat[..., :1])
        before = xp.cumprod(xp.concatenate([ones, flat[..., :-1]], axis=-1), axis=-1)
        after = xp.flip(xp.cumprod(xp.concatenate([ones, xp.flip(flat, -1)[..., :-1]], axis=-1), axis=-1), -1)
        others = xp.moveaxis((before * after).reshape(moved.shape), last, axes)
        return (g * others,)
    return make_result(result, (x,), backward)


def var(x, axis=None, keepdims=False):
    from dlgpu.ops import math as m
    x = float_operand(x)
    centered = m.subtract(x, mean(x, axis=axis, keepdims=True))
    return mean(m.square(centered), axis=axis, keepdims=keepdims)


def std(x, axis=None, keepdims=False):
    from dlgpu.ops import math as m
    return m.sqrt(var(x, axis=axis, keepdims=keepdims))


def moments(x, axes, keepdims=False):
    return mean(x, axis=axes, keepdims=keepdims), var(x, axis=axes, keepdims=keepdims)


def logsumexp(x, axis=None, keepdims=False):
    x = float_operand(x)
    xp = array_module(x.data)
    axes = normalize_axis(axis, x.ndim)
    shape = x.data.shape
    peak = x.data.max(axis=axes, keepdims=True)
    e = xp.exp(x.data - peak)
    total = e.sum(axis=axes, keepdims=True)
    out = xp.log(total) + peak
    result = out if keepdims else out.reshape([s for i, s in enumerate(shape) if i not in axes])
    return make_result(result, (x,), lambda g: (e / total * _expand(g, shape, axes, keepdims),))


def norm(x, ord=None, axis=None, keepdims=False):  # noqa: A002 - keras.ops signature
    from dlgpu.ops import math as m
    if ord not in (None, 2, "euclidean", "fro"):
        raise ValueError(f"norm: only the 2-norm is supported; received ord={ord!r}")
    return m.sqrt(sum(m.square(float_operand(x)), axis=axis, keepdims=keepdims))


def _index_reduction(name):
    def op(x, axis=None, keepdims=False):
        x = to_tensor(x)
        xp = array_module(x.data)
        # int32, as in Keras 3 (numpy gives int64); axis=None indexes the flattened tensor
        out = getattr(xp, name)(x.data, axis=axis, keepdims=keepdims).astype(np.int32)
        return make_result(xp.asarray(out), (x,), lambda g: (None,))
    op.__name__ = name
    return op


argmax = _index_reduction("argmax")
argmin = _index_reduction("argmin")


def _logic_reduction(name):
    def op(x, axis=None, keepdims=False):
        x = to_tensor(x)
        xp = array_module(x.data)
        return make_result(xp.asarray(getattr(xp, name)(x.data, axis=axis, keepdims=keepdims)), (x,), lambda g: (None,))
    op.__name__ = name
    return op


all = _logic_reduction("all")  # noqa: A001
any = _logic_reduction("any")  # noqa: A001


def count_nonzero(x, axis=None):
    x = to_tensor(x)
    xp = array_module(x.data)
    return make_result(xp.asarray(xp.count_nonzero(x.data, axis=axis)), (x,), lambda g: (None,))


def cumsum(x, axis=None):
    x = to_tensor(x)
    xp = array_module(x.data)
    # The input's own dtype, or int32 for bool, as in Keras (numpy would widen integers to 64 bits).
    dtype = np.dtype(np.int32) if x.data.dtype.kind == "b" else x.data.dtype
    if axis is None:
        flat = x.data.reshape(-1)
        return make_result(xp.cumsum(flat, dtype=dtype), (x,),
                           lambda g: (xp.flip(xp.cumsum(xp.flip(g))).reshape(x.data.shape),))
    return make_result(xp.cumsum(x.data, axis=axis, dtype=dtype), (x,),
                       lambda g: (xp.flip(xp.cumsum(xp.flip(g, axis), axis=axis), axis),))
