"""Reductions: sum, mean, max/min, var/std, logsumexp, argmax…"""

from __future__ import annotations

import math

import numpy as np

from dlgpu.autograd import FLOATX, Tensor
from dlgpu.ops._core import (array_module, binary_operands, constant, float_operand, make_result, normalize_axis,
                             recompute_vjp, to_tensor)


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
    return make_result(out, (x,), lambda g: (xp.broadcast_to(_expand(g, shape, axes, keepdims), shape),),
                       (_sum_vjp, axes, keepdims))


def _expand_graph(g, in_shape, axes, keepdims):
    """_expand for a gradient Tensor (higher-order gradients)."""
    if keepdims:
        return g
    from dlgpu.ops.shape import reshape
    return reshape(g, [1 if i in axes else s for i, s in enumerate(in_shape)])


def _sum_vjp(out, g, axes, keepdims):
    from dlgpu.ops.shape import broadcast_to
    shape = out._parents[0].data.shape
    return (broadcast_to(_expand_graph(g, shape, axes, keepdims), shape),)


def _mean_vjp(out, g, axes, keepdims):
    from dlgpu.ops.math import divide
    shape = out._parents[0].data.shape
    return _sum_vjp(out, divide(g, float(math.prod(shape[a] for a in axes))), axes, keepdims)


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
    return make_result(out, (x,), lambda g: (xp.broadcast_to(_expand(g / count, shape, axes, keepdims), shape),),
                       (_mean_vjp, axes, keepdims))


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
        return make_result(result, (x,), backward, (_extreme_vjp, out, axes, keepdims))
    op.__name__ = name
    return op


def _extreme_vjp(out, g, kept, axes, keepdims):
    from dlgpu.ops.math import multiply
    x, = out._parents
    mask = (x.data == kept).astype(g.data.dtype)
    mask /= mask.sum(axis=axes, keepdims=True)
    return (multiply(constant(mask), _expand_graph(g, x.data.shape, axes, keepdims)),)


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
    return make_result(result, (x,), backward, (recompute_vjp, _prod_graph, axes, keepdims))


def _prod_graph(x, axes, keepdims):
    """prod as the last of the reduced values' cumulative products (cumprod's vjp is exact at zeros and
    differentiable again), for higher-order gradients."""
    from dlgpu.ops.shape import reshape, transpose
    if not axes:
        return x
    kept = [i for i in range(x.ndim) if i not in axes]
    moved = transpose(x, (*kept, *axes))
    product = cumprod(reshape(moved, (*(x.shape[i] for i in kept), -1)), axis=-1)[..., -1]
    return reshape(product, [1 if i in axes else s for i, s in enumerate(x.shape)]) if keepdims else product


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
    # an all -inf slice (a fully masked row) sums to nothing: -inf with no gradient, not NaN
    peak = xp.where(xp.isfinite(peak), peak, xp.zeros_like(peak))
    e = xp.exp(x.data - peak)
    total = e.sum(axis=axes, keepdims=True)
    with np.errstate(divide="ignore"):
        out = xp.log(total) + peak
    result = out if keepdims else out.reshape([s for i, s in enumerate(shape) if i not in axes])
    return make_result(result, (x,), lambda g: (e / xp.where(total > 0, total, 1) * _expand(g, shape, axes, keepdims),),
                       (_logsumexp_vjp, axes, keepdims))


def _logsumexp_vjp(out, g, axes, keepdims):
    from dlgpu.ops.math import exp, multiply, subtract
    x, = out._parents
    softmax = exp(subtract(x, _expand_graph(out, x.data.shape, axes, keepdims)))
    return (multiply(softmax, _expand_graph(g, x.data.shape, axes, keepdims)),)


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
                           lambda g: (xp.flip(xp.cumsum(xp.flip(g))).reshape(x.data.shape),), (_cumsum_vjp, None))
    return make_result(xp.cumsum(x.data, axis=axis, dtype=dtype), (x,),
                       lambda g: (xp.flip(xp.cumsum(xp.flip(g, axis), axis=axis), axis),), (_cumsum_vjp, axis))


def _cumsum_vjp(out, g, axis):
    # the transpose of a cumulative sum is the cumulative sum from the other end
    from dlgpu.ops.shape import flip, reshape
    if axis is None:
        return (reshape(flip(cumsum(flip(g, 0), 0), 0), out._parents[0].data.shape),)
    return (flip(cumsum(flip(g, axis), axis), axis),)


def cumprod(x, axis=None, dtype=None):
    from dlgpu.ops.shape import reshape
    x = to_tensor(x)
    if dtype is not None:
        from dlgpu.ops.math import cast
        x = cast(x, dtype)
    if axis is None:
        return cumprod(reshape(x, (-1,)), 0)
    xp = array_module(x.data)
    axis = normalize_axis(axis, x.ndim)[0]
    d = x.data
    out = xp.cumprod(d, axis=axis, dtype=_ACCUMULATOR_DTYPES.get(d.dtype) if d.dtype.kind == "b" else d.dtype)

    def backward(g):
        # d y_j / d x_i = prod_{k <= j, k != i} x_k (j >= i): cumulative products of x with x_i set to 1,
        # for every i at once, so zeros in x get their exact gradient (out / x would divide by them).
        n = d.shape[axis]
        moved = xp.moveaxis(d, axis, -1)
        gm = xp.moveaxis(g, axis, -1)
        eye = xp.eye(n, dtype=bool)
        without_i = xp.where(eye, xp.ones((), d.dtype), moved[..., None, :])  # (..., i, k)
        partial = xp.cumprod(without_i, axis=-1) * (xp.arange(n)[None, :] >= xp.arange(n)[:, None])
        return (xp.moveaxis((partial * gm[..., None, :]).sum(axis=-1), -1, axis),)
    return make_result(out, (x,), backward, (recompute_vjp, _cumprod_graph, axis))


def _cumprod_graph(x, axis):
    """cumprod as a chain of recorded products (its vjp differentiates through them): exact where x has
    zeros, which out / x is not."""
    from dlgpu.ops.math import multiply
    from dlgpu.ops.shape import stack
    lead = (slice(None),) * axis
    parts = [x[lead + (0,)]]
    for j in range(1, x.data.shape[axis]):
        parts.append(multiply(parts[-1], x[lead + (j,)]))
    return stack(parts, axis=axis)


def average(x, axis=None, weights=None):
    from dlgpu.ops import math as m
    from dlgpu.ops.shape import reshape
    x = float_operand(x)
    if weights is None:
        return mean(x, axis)
    w = to_tensor(weights)
    if w.data.shape != x.data.shape:
        if axis is None or w.ndim != 1 or w.data.shape[0] != x.data.shape[axis]:
            raise ValueError(f"average: weights of shape {w.data.shape} must match x of shape {x.data.shape}, "
                             f"or be 1-D along axis={axis}")
        ax = normalize_axis(axis, x.ndim)[0]
        w = reshape(w, [-1 if i == ax else 1 for i in range(x.ndim)])
    from dlgpu.ops.shape import broadcast_to
    x, w = binary_operands("average", x, w)
    return m.divide(sum(m.multiply(x, w), axis), sum(broadcast_to(w, x.data.shape), axis))


_QUANTILE_METHODS = ("linear", "lower", "higher", "midpoint", "nearest")


def _sorted_slices(op, x, q, axis, method):
    """What quantile and nanquantile share: the checks, then x's reduced axes flattened into one last axis
    and sorted.  Returns (x, qs, axes, ordered)."""
    from dlgpu.ops.shape import reshape, transpose
    from dlgpu.ops.sorting import sort
    if method not in _QUANTILE_METHODS:
        raise ValueError(f"{op}: method must be one of {_QUANTILE_METHODS}; received {method!r}")
    x = float_operand(x)
    qs = q.numpy() if isinstance(q, Tensor) else np.asarray(q)
    if qs.size and (qs.min() < 0 or qs.max() > 1):
        raise ValueError(f"{op}: q must lie in [0, 1]; received {qs}")
    axes = normalize_axis(axis, x.ndim)
    kept = [i for i in range(x.ndim) if i not in axes]
    flat = reshape(transpose(x, kept + list(axes)), [x.data.shape[i] for i in kept] + [-1])
    if flat.data.shape[-1] == 0:
        raise ValueError(f"{op}: cannot take a quantile over empty axes {axes} of shape {x.data.shape}")
    return x, qs, axes, sort(flat, -1)


def _neighbours(xp, position, method):
    """The sorted positions (lo, hi) a quantile at fractional ``position`` reads, and the weight of hi."""
    lo, hi = xp.floor(position).astype(np.int64), xp.ceil(position).astype(np.int64)
    if method == "lower":
        hi = lo
    elif method == "higher":
        lo = hi
    elif method == "nearest":
        lo = hi = xp.around(position).astype(np.int64)  # numpy rounds half to even here too
    if method == "linear":
        return lo, hi, position - lo
    return lo, hi, xp.full(position.shape, 0.5 if method == "midpoint" else 0.0)


def _interpolated(low, high, frac, x, qs, axes, keepdims, empty=None):
    """low + (high - low) * frac (NaN where ``empty``), the quantile axis moved first, shaped as numpy shapes
    quantile's result."""
    from dlgpu.ops import math as m
    from dlgpu.ops.shape import moveaxis, reshape
    out = m.add(low, m.multiply(m.subtract(high, low), Tensor(frac.astype(x.data.dtype))))
    if empty is not None:
        out = m.where(Tensor(empty), np.nan, out)
    out = moveaxis(out, -1, 0)  # (..., len(q)) kept axes first
    if keepdims:
        out = reshape(out, [out.data.shape[0]] + [1 if i in axes else x.data.shape[i] for i in range(x.ndim)])
    return reshape(out, qs.shape + tuple(out.data.shape[1:]))


def quantile(x, q, axis=None, method="linear", keepdims=False):
    """numpy.quantile (the five classic methods), differentiable in x through the sorted values it picks."""
    from dlgpu.ops.shape import take
    x, qs, axes, ordered = _sorted_slices("quantile", x, q, axis, method)
    xp = array_module(x.data)
    lo, hi, frac = _neighbours(np, qs.astype(np.float64).reshape(-1) * (ordered.data.shape[-1] - 1), method)
    low, high = take(ordered, xp.asarray(lo), axis=-1), take(ordered, xp.asarray(hi), axis=-1)
    return _interpolated(low, high, xp.asarray(frac), x, qs, axes, keepdims)


def percentile(x, q, axis=None, method="linear", keepdims=False):
    qs = (q.numpy() if isinstance(q, Tensor) else np.asarray(q, dtype=np.float64)) / 100.0
    return quantile(x, qs, axis=axis, method=method, keepdims=keepdims)


def median(x, axis=None, keepdims=False):
    return quantile(x, 0.5, axis=axis, keepdims=keepdims)


def nanquantile(x, q, axis=None, method="linear", keepdims=False):
    """quantile over the values that are not NaN (NaN where a slice holds nothing else), differentiable in x.
    Sorting puts NaNs last (numpy and CuPy alike), so each slice's quantile positions scale with its own
    count of numbers."""
    from dlgpu.ops.shape import take_along_axis
    x, qs, axes, ordered = _sorted_slices("nanquantile", x, q, axis, method)
    xp = array_module(x.data)
    count = (~xp.isnan(ordered.data)).sum(axis=-1, keepdims=True)  # (..., 1)
    position = xp.asarray(qs.astype(np.float64).reshape(-1)) * (xp.maximum(count, 1) - 1)  # (..., len(q))
    lo, hi, frac = _neighbours(xp, position, method)
    return _interpolated(take_along_axis(ordered, lo, -1), take_along_axis(ordered, hi, -1), frac, x, qs, axes,
                         keepdims, empty=xp.broadcast_to(count == 0, position.shape))


def nanpercentile(x, q, axis=None, method="linear", keepdims=False):
    qs = (q.numpy() if isinstance(q, Tensor) else np.asarray(q, dtype=np.float64)) / 100.0
    return nanquantile(x, qs, axis=axis, method=method, keepdims=keepdims)


def nanmedian(x, axis=None, keepdims=False):
    return nanquantile(x, 0.5, axis=axis, keepdims=keepdims)


def trapezoid(y, x=None, dx=1.0, axis=-1):
    """The trapezoidal rule along ``axis``: sum of (y[i] + y[i+1]) / 2 times the spacing (``x``'s
    differences, or ``dx``), differentiable in y and x."""
    from dlgpu.ops import math as m
    from dlgpu.ops.shape import _getitem
    y = float_operand(y)
    ax = normalize_axis(axis, y.ndim)[0]
    head = (slice(None),) * ax + (slice(1, None),)
    tail = (slice(None),) * ax + (slice(None, -1),)
    mid = m.multiply(m.add(_getitem(y, head), _getitem(y, tail)), 0.5)
    if x is None:
        return m.multiply(sum(mid, ax), dx)
    x = to_tensor(x)
    if x.ndim == 1:
        spacing = diff(x)
        if spacing.data.shape[0] != mid.data.shape[ax]:
            raise ValueError(f"trapezoid: x has {x.data.shape[0]} points but y has {y.data.shape[ax]} along "
                             f"axis {axis}")
        from dlgpu.ops.shape import reshape
        spacing = reshape(spacing, [-1 if i == ax else 1 for i in range(y.ndim)])
    else:
        spacing = diff(x, axis=axis)
    return sum(m.multiply(mid, spacing), ax)


def ptp(x, axis=None, keepdims=False):
    from dlgpu.ops.math import subtract
    return subtract(max(x, axis, keepdims), min(x, axis, keepdims))


def trace(x, offset=0, axis1=0, axis2=1):
    from dlgpu.ops.shape import diagonal
    return sum(diagonal(x, offset, axis1, axis2), -1)


def _segment_operands(op, data, segment_ids, num_segments):
    data = to_tensor(data)
    xp = array_module(data.data)
    ids = segment_ids.data if isinstance(segment_ids, Tensor) else xp.asarray(segment_ids)
    if ids.ndim != 1 or data.ndim < 1 or ids.shape[0] != data.data.shape[0]:
        raise ValueError(f"{op}: segment_ids must be 1-D, one per row of data; received shapes {ids.shape} "
                         f"and {data.data.shape}")
    if ids.dtype.kind not in "iu":
        raise TypeError(f"{op}: segment_ids must be integers; received dtype {ids.dtype}")
    if num_segments is None:
        num_segments = int(ids.max()) + 1 if ids.size else 0
    valid = (ids >= 0) & (ids < num_segments)  # Keras drops ids of -1 (and TF those out of range)
    return data, xp, ids, valid, int(num_segments)


def segment_sum(data, segment_ids, num_segments=None, sorted=False):  # noqa: A002 - keras.ops signature
    from dlgpu.ops._core import backend_of
    data, xp, ids, valid, k = _segment_operands("segment_sum", data, segment_ids, num_segments)
    d = data.data
    out = xp.zeros((k,) + d.shape[1:], _ACCUMULATOR_DTYPES.get(d.dtype, d.dtype) if d.dtype.kind == "b" else d.dtype)
    backend_of(d).scatter_add(out, ids[valid], d[valid])
    safe = xp.where(valid, ids, 0)
    mask = valid.reshape((-1,) + (1,) * (d.ndim - 1))
    return make_result(out, (data,), lambda g: (xp.where(mask, g[safe], xp.zeros((), g.dtype)),))


def _segment_extreme(name, largest):
    def op(data, segment_ids, num_segments=None, sorted=False):  # noqa: A002 - keras.ops signature
        from dlgpu.ops._core import backend_of
        data, xp, ids, valid, k = _segment_operands(name, data, segment_ids, num_segments)
        d = data.data
        if d.dtype.kind == "f":
            start = -np.inf if largest else np.inf
        else:
            info = np.iinfo(d.dtype) if d.dtype.kind in "iu" else None
            start = (info.min if largest else info.max) if info else (not largest)
        out = xp.full((k,) + d.shape[1:], start, d.dtype)
        backend_of(d).scatter_extreme(out, ids[valid], d[valid], largest)
        safe = xp.where(valid, ids, 0)
        mask = valid.reshape((-1,) + (1,) * (d.ndim - 1))

        def backward(g):
            # ties in a segment share its gradient equally, as reduce.max does
            hit = (mask & (d == out[safe])).astype(g.dtype)
            count = xp.zeros(out.shape, g.dtype)
            backend_of(d).scatter_add(count, safe, hit)
            return (hit * g[safe] / xp.maximum(count[safe], 1),)
        return make_result(out, (data,), backward)
    op.__name__ = name
    return op


segment_max = _segment_extreme("segment_max", largest=True)
segment_min = _segment_extreme("segment_min", largest=False)


def segment_prod(data, segment_ids, num_segments=None, sorted=False):  # noqa: A002 - keras.ops signature
    """The product of each segment's rows (1 for an empty segment), differentiable: each row is placed in a
    dense (segments, longest segment, ...) block padded with ones, which prod reduces with its zero-safe
    gradient.  (CuPy has no multiply.at to scatter a product with.)"""
    from dlgpu.ops.shape import scatter_update, take
    data, xp, ids, valid, k = _segment_operands("segment_prod", data, segment_ids, num_segments)
    d = data.data
    kept = xp.nonzero(valid)[0]
    seg = ids[kept].astype(np.int64)
    # each kept row's position within its segment: its rank among the rows with the same id
    order = xp.argsort(seg, kind="stable")
    counts = xp.bincount(seg, minlength=k)
    starts = xp.cumsum(counts) - counts
    position = xp.empty_like(order)
    position[order] = xp.arange(order.size) - starts[seg[order]]
    longest = int(counts.max()) if counts.size else 0
    dtype = _ACCUMULATOR_DTYPES.get(d.dtype, d.dtype)
    block = Tensor(xp.ones((k, longest) + d.shape[1:], dtype))
    rows = take(data, kept, axis=0)
    if rows.data.dtype != dtype:
        from dlgpu.ops.math import cast
        rows = cast(rows, dtype)
    block = scatter_update(block, xp.stack([seg, position], axis=-1), rows)
    return prod(block, axis=1)


def diff(a, n=1, axis=-1):
    from dlgpu.ops.math import subtract
    from dlgpu.ops.shape import _getitem
    x = to_tensor(a)
    ax = normalize_axis(axis, x.ndim)[0]
    for _ in range(n):
        head = (slice(None),) * ax + (slice(1, None),)
        tail = (slice(None),) * ax + (slice(None, -1),)
        x = subtract(_getitem(x, head), _getitem(x, tail))
    return x


def _without_nans(x, fill):
    from dlgpu.ops.math import isnan, where
    x = to_tensor(x)
    return x if x.data.dtype.kind != "f" else where(isnan(x), fill, x)


def nansum(x, axis=None, keepdims=False):
    return sum(_without_nans(x, 0.0), axis, keepdims)


def nanprod(x, axis=None, keepdims=False):
    return prod(_without_nans(x, 1.0), axis, keepdims)


def nanmax(x, axis=None, keepdims=False):
    return max(_without_nans(x, -np.inf), axis, keepdims)


def nanmin(x, axis=None, keepdims=False):
    return min(_without_nans(x, np.inf), axis, keepdims)


def nanmean(x, axis=None, keepdims=False):
    from dlgpu.ops.math import divide, isnan, logical_not
    x = float_operand(x)
    return divide(nansum(x, axis, keepdims), sum(logical_not(isnan(x)), axis, keepdims))


def nanvar(x, axis=None, keepdims=False):
    from dlgpu.ops.math import isnan, square, subtract, where
    x = float_operand(x)
    centred = subtract(x, nanmean(x, axis, keepdims=True))
    return nanmean(where(isnan(x), np.nan, square(centred)), axis, keepdims)


def nanstd(x, axis=None, keepdims=False):
    from dlgpu.ops.math import sqrt
    return sqrt(nanvar(x, axis, keepdims))


def nancumsum(x, axis=None):
    return cumsum(_without_nans(x, 0.0), axis)


def nancumprod(x, axis=None):
    return cumprod(_without_nans(x, 1.0), axis)


def nanargmax(x, axis=None, keepdims=False):
    return argmax(_without_nans(x, -np.inf), axis, keepdims)


def nanargmin(x, axis=None, keepdims=False):
    return argmin(_without_nans(x, np.inf), axis, keepdims)


def bincount(x, weights=None, minlength=0, sparse=False):
    """Counts (or summed weights) per value of non-negative integers; a 2-D x counts each row."""
    from dlgpu.ops._core import backend_of
    if sparse:
        raise NotImplementedError("bincount: sparse=True is not supported (dlgpu has no sparse tensors)")
    x = to_tensor(x)
    xp = array_module(x.data)
    if x.ndim not in (1, 2) or x.data.dtype.kind not in "iu":
        raise ValueError(f"bincount: x must be a 1-D or 2-D integer tensor; received shape {x.data.shape}, "
                         f"dtype {x.data.dtype}")
    if x.data.size and int(x.data.min()) < 0:
        raise ValueError("bincount: x must be non-negative")
    seen = int(x.data.max()) + 1 if x.data.size else 0
    length = seen if seen > int(minlength) else int(minlength)
    rows = x.data.reshape(-1, x.data.shape[-1]) if x.ndim == 2 else x.data.reshape(1, -1)
    index = (xp.arange(rows.shape[0])[:, None] + xp.zeros_like(rows), rows)
    if weights is None:
        out = xp.zeros((rows.shape[0], length), np.int32)
        backend_of(out).scatter_add(out, index, xp.ones(rows.shape, np.int32))
        return Tensor(out if x.ndim == 2 else out[0])
    w = to_tensor(weights)
    if w.data.shape != x.data.shape:
        raise ValueError(f"bincount: weights of shape {w.data.shape} must match x of shape {x.data.shape}")
    out = xp.zeros((rows.shape[0], length), _ACCUMULATOR_DTYPES.get(w.data.dtype, w.data.dtype))
    backend_of(out).scatter_add(out, index, w.data.reshape(rows.shape))
    return make_result(out if x.ndim == 2 else out[0], (w,),
                       lambda g: (g.reshape(rows.shape[0], length)[index].reshape(x.data.shape),))


def searchsorted(sorted_sequence, values, side="left"):
    if side not in ("left", "right"):
        raise ValueError(f"searchsorted: side must be 'left' or 'right'; received {side!r}")
    s, v = to_tensor(sorted_sequence), to_tensor(values)
    if s.ndim != 1:
        raise ValueError(f"searchsorted: sorted_sequence must be 1-D; received shape {s.data.shape}")
    out = array_module(s.data).searchsorted(s.data, v.data, side=side).astype(np.int32)
    return make_result(out, (s, v), lambda g: (None, None))


def digitize(x, bins):
    x, b = to_tensor(x), to_tensor(bins)
    out = array_module(x.data).digitize(x.data, b.data).astype(np.int32)
    return make_result(out, (x, b), lambda g: (None, None))


def argpartition(x, kth, axis=-1):
    x = to_tensor(x)
    out = array_module(x.data).argpartition(x.data, kth, axis=axis).astype(np.int32)
    return make_result(out, (x,), lambda g: (None,))


def in_top_k(targets, predictions, k):
    """True where the target class's score is among the k largest of its row (ties count in, as in TF)."""
    from dlgpu.ops.shape import take_along_axis
    p, t = to_tensor(predictions), to_tensor(targets)
    if p.ndim != 2 or t.ndim != 1 or t.data.shape[0] != p.data.shape[0]:
        raise ValueError(f"in_top_k: needs predictions (batch, classes) and targets (batch,); received shapes "
                         f"{p.data.shape} and {t.data.shape}")
    score = take_along_axis(p, t.data.astype(np.int64)[:, None], 1).data
    return Tensor((p.data > score).sum(axis=1) < k)
