"""More numpy-style math with the keras.ops names: fmod, ldexp, nextafter, i0, cross, cdist, corrcoef,
vander, histogram, saturate_cast.

Most are compositions of differentiable ops (cross, cdist, corrcoef, vander, saturate_cast), so they have every
order of gradient those ops have; fmod, ldexp and i0 carry their own first-order backward; nextafter and
histogram have none (their results are steps and counts).
"""

from __future__ import annotations

import numpy as np

from dlgpu.autograd import FLOATX
from dlgpu.ops._core import (array_module, binary_operands, float_operand, make_result, normalize_axis, to_tensor,
                             unbroadcast)

__all__ = ["fmod", "ldexp", "nextafter", "i0", "cross", "cdist", "corrcoef", "vander", "histogram",
           "saturate_cast"]


def fmod(x1, x2):
    """The remainder with the sign of x1 (C's fmod; ops.mod follows x2's sign).  x1 - trunc(x1/x2) x2, so
    d/dx1 = 1 and d/dx2 = -trunc(x1/x2), as torch's."""
    from dlgpu.ops.math import cast
    a, b = binary_operands("fmod", x1, x2)
    if a.data.dtype.kind == "b":  # Keras counts bools in int32 here
        a, b = cast(a, "int32"), cast(b, "int32")
    x, y = a.data, b.data
    xp = array_module(x)

    def backward(g):
        gy = unbroadcast(-g * xp.trunc(x / y).astype(g.dtype), y.shape) if b._tracked else None
        return unbroadcast(g, x.shape), gy
    return make_result(xp.fmod(x, y), (a, b), backward)


def ldexp(x1, x2):
    """x1 * 2**x2 for an integer x2, exactly; floatx when x1 is an integer too.  d/dx1 = 2**x2."""
    from dlgpu.ops._core import result_type
    from dlgpu.ops.math import cast
    a, e = to_tensor(x1), to_tensor(x2)
    if e.data.dtype.kind not in "iu":
        raise TypeError(f"ldexp: the exponent x2 must be an integer tensor; received dtype {e.dtype}")
    dtype = result_type(result_type(a.data.dtype, e.data.dtype), "float")
    a = cast(a, dtype)
    xp = array_module(a.data)
    x, k = a.data, e.data
    out = xp.ldexp(x, k).astype(dtype)
    return make_result(out, (a, e), lambda g: (unbroadcast(xp.ldexp(g, k).astype(g.dtype), x.shape), None))


def nextafter(x1, x2):
    """The next float after x1 towards x2, in the operands' float dtype (floatx for integers)."""
    from dlgpu.ops.math import cast
    a, b = binary_operands("nextafter", x1, x2)
    if a.data.dtype.kind != "f":
        a, b = cast(a, FLOATX), cast(b, FLOATX)
    return make_result(array_module(a.data).nextafter(a.data, b.data), (a, b), lambda g: (None, None))


def _bessel_i1(xp, x):
    """The modified Bessel function I1 by its power series sum (x/2)^(2k+1) / (k! (k+1)!): every term is
    positive for x > 0, so summing to the float's precision loses nothing to cancellation; the number of
    terms grows like |x|/2 (numpy has no i1, and scipy is not a dependency)."""
    half = xp.abs(x.astype(np.float64)) / 2
    term = half.copy()
    total = term.copy()
    k = 0
    while True:
        k += 1
        term = term * half * half / (k * (k + 1))
        total = total + term
        if not bool((term > 1e-17 * total).any()):
            break
    return (xp.sign(x) * total).astype(x.dtype)


def i0(x):
    """The modified Bessel function of the first kind, order 0 (float64 for int64 and float64 inputs, floatx
    for other integers, as Keras's).  d/dx I0(x) = I1(x)."""
    from dlgpu.ops.math import cast
    x = to_tensor(x)
    if x.data.dtype == np.int64:
        x = cast(x, "float64")
    x = float_operand(x)
    xp = array_module(x.data)
    d = x.data
    return make_result(xp.i0(d).astype(d.dtype), (x,), lambda g: (g * _bessel_i1(xp, d),))


def cross(x1, x2, axisa=-1, axisb=-1, axisc=-1, axis=None):
    """numpy.cross of 3-vectors (or 2-vectors, whose third component is 0: two 2-vectors give the z
    component alone), as differentiable products of their components."""
    from dlgpu.ops.math import multiply, subtract
    from dlgpu.ops.shape import moveaxis, stack
    a, b = binary_operands("cross", x1, x2)
    if axis is not None:
        axisa = axisb = axisc = axis
    a = moveaxis(a, normalize_axis(axisa, a.ndim)[0], -1)
    b = moveaxis(b, normalize_axis(axisb, b.ndim)[0], -1)
    na, nb = a.data.shape[-1], b.data.shape[-1]
    if na not in (2, 3) or nb not in (2, 3):
        raise ValueError(f"cross: the vector axes must have 2 or 3 components; received {na} and {nb} "
                         f"(shapes {_shape_of(x1)} and {_shape_of(x2)})")

    def component(v, n, i):
        return v[..., i] if i < n else None

    def term(p, q):  # p * q, where None stands for a zero component
        return None if p is None or q is None else multiply(p, q)

    def minus(p, q):
        if q is None:
            return p
        from dlgpu.ops.math import negative
        return negative(q) if p is None else subtract(p, q)

    ax, ay, az = (component(a, na, i) for i in range(3))
    bx, by, bz = (component(b, nb, i) for i in range(3))
    z = minus(term(ax, by), term(ay, bx))
    if na == 2 and nb == 2:
        return z
    x = minus(term(ay, bz), term(az, by))
    y = minus(term(az, bx), term(ax, bz))
    out = stack(_broadcast_all([x, y, z]), axis=-1)
    return moveaxis(out, -1, normalize_axis(axisc, out.ndim)[0])


def _shape_of(v):
    return tuple(getattr(v, "shape", np.shape(v)))


def _broadcast_all(tensors):
    from dlgpu.ops.shape import broadcast_to
    shape = np.broadcast_shapes(*(t.data.shape for t in tensors))
    return [t if t.data.shape == shape else broadcast_to(t, shape) for t in tensors]


def cdist(x, y):
    """Euclidean distances between the rows of x (..., n, d) and of y (..., m, d): shape (..., n, m).  As
    Keras's, its gradient is NaN where two rows coincide (the square root's slope at 0)."""
    from dlgpu.ops.math import sqrt, square, subtract
    from dlgpu.ops.reduce import sum as sum_
    from dlgpu.ops.shape import expand_dims
    a, b = binary_operands("cdist", x, y)
    if a.ndim < 2 or b.ndim < 2 or a.data.shape[-1] != b.data.shape[-1]:
        raise ValueError(f"cdist: needs tensors of rank >= 2 with the same last axis; received shapes "
                         f"{a.data.shape} and {b.data.shape}")
    a, b = float_operand(a), float_operand(b)
    return sqrt(sum_(square(subtract(expand_dims(a, -2), expand_dims(b, -3))), -1))


def corrcoef(x):
    """Pearson correlation coefficients of the rows of x (variables) over its columns (observations), clipped
    to [-1, 1] as numpy and torch do."""
    from dlgpu.ops.math import clip, divide, matmul, multiply, sqrt, subtract
    from dlgpu.ops.reduce import mean
    from dlgpu.ops.shape import diagonal, expand_dims, reshape, transpose
    x = to_tensor(x)
    if x.data.dtype == np.int64:
        from dlgpu.ops.math import cast
        x = cast(x, "float64")
    x = float_operand(x)
    if x.ndim not in (1, 2):
        raise ValueError(f"corrcoef: needs a 1-D or 2-D tensor; received shape {x.data.shape}")
    if x.ndim == 1:
        x = reshape(x, (1, -1))
    centred = subtract(x, mean(x, axis=1, keepdims=True))
    cov = matmul(centred, transpose(centred))
    scale = sqrt(diagonal(cov))
    out = clip(divide(cov, multiply(expand_dims(scale, 1), expand_dims(scale, 0))), -1.0, 1.0)
    return reshape(out, ()) if out.data.shape == (1, 1) else out


def vander(x, N=None, increasing=False):  # noqa: N803 - keras.ops signature
    """Columns x^(N-1) ... x^0 (x^0 ... x^(N-1) when increasing) of a 1-D x, in x's dtype: a cumulative product
    of [1, x, x, ...], so the gradient needs no division and stays finite at x = 0."""
    from dlgpu.ops.reduce import cumprod
    from dlgpu.ops.shape import concatenate, expand_dims, flip, ones_like, tile
    x = to_tensor(x)
    if x.ndim != 1:
        raise ValueError(f"vander: needs a 1-D tensor; received shape {x.data.shape}")
    n = x.data.shape[0] if N is None else int(N)
    if n < 0:
        raise ValueError(f"vander: N must be non-negative; received N={N!r}")
    column = expand_dims(x, 1)
    if n == 0:
        return column[:, :0]
    powers = cumprod(concatenate([ones_like(column), tile(column, (1, n - 1))], axis=1), axis=1)[:, :n]
    return powers if increasing else flip(powers, axis=1)


def histogram(x, bins=10, range=None):  # noqa: A002 - keras.ops signature
    """(counts, bin_edges) of a 1-D tensor over ``bins`` equal bins of ``range`` (default: min to max), the
    last bin closed as numpy's; both float32, as Keras's torch backend returns them."""
    x = to_tensor(x)
    if isinstance(bins, bool) or not isinstance(bins, (int, np.integer)) or bins < 1:
        raise ValueError(f"histogram: `bins` must be a positive integer; received bins={bins!r}")
    if x.ndim != 1:
        raise ValueError(f"histogram: needs a 1-D tensor; received shape {x.data.shape}")
    if range is not None and (len(range) != 2 or range[0] > range[1]):
        raise ValueError(f"histogram: `range` must be (min, max) with min <= max; received range={range!r}")
    xp = array_module(x.data)
    counts, edges = xp.histogram(x.data, bins=int(bins), range=range)
    dtype = x.data.dtype if x.data.dtype.kind == "f" else np.dtype(FLOATX)
    return (make_result(counts.astype(dtype), (x,), lambda g: (None,)),
            make_result(edges.astype(dtype), (x,), lambda g: (None,)))


def _limits(dtype):
    dtype = np.dtype(dtype)
    if dtype.kind == "b":
        return 0, 1
    info = np.iinfo(dtype) if dtype.kind in "iu" else np.finfo(dtype)
    return info.min, info.max


def saturate_cast(x, dtype):
    """Cast, clipping first to the range of the target dtype (so 300.0 becomes 255 in uint8, not 44), as
    Keras's: the limits are nudged inward where the input dtype cannot hold them exactly."""
    from dlgpu.ops.math import cast, clip
    x = to_tensor(x)
    source, target = x.data.dtype, np.dtype(dtype)
    (in_min, in_max), (out_min, out_max) = _limits(source), _limits(target)
    low = np.asarray(max(in_min, out_min)).astype(source)
    if low < out_min:
        low = np.nextafter(low, 0, dtype=source)
    high = np.asarray(min(in_max, out_max)).astype(source)
    if high > out_max:
        high = np.nextafter(high, 0, dtype=source)
    return cast(clip(x, low.item(), high.item()), target)
