"""Elementwise and linear-algebra ops, each with its backward beside its forward."""

from __future__ import annotations

import numpy as np

from dlgpu.autograd import FLOATX, Tensor
from dlgpu.ops._core import (array_module, backend_of, binary_operands, constant, float_operand, make_result,
                              to_tensor, unbroadcast, unbroadcast_graph)
from dlgpu.ops.fft import fft, fft2, ifft2, irfft, istft, rfft, stft  # noqa: F401  (keras.ops.math.*)

# Each backward closure receives the upstream gradient ``g`` and returns one gradient per parent.
# Closures never write into ``g``: the same array may be handed to several parents.
# The ``_*_vjp`` functions are the same rules written with ops, for higher-order gradients
# (dlgpu/autograd.py, backward_graph): ``out`` is the op's result, its parents are the operands.


def _both(out, gx, gy):
    """The two operands' gradients, each summed back to its operand's shape; None for an untracked one."""
    a, b = out._parents
    return (unbroadcast_graph(gx(), a.data.shape) if a._tracked else None,
            unbroadcast_graph(gy(), b.data.shape) if b._tracked else None)


def _add_vjp(out, g):
    return _both(out, lambda: g, lambda: g)


def _subtract_vjp(out, g):
    return _both(out, lambda: g, lambda: negative(g))


def _multiply_vjp(out, g):
    a, b = out._parents
    return _both(out, lambda: multiply(g, b), lambda: multiply(g, a))


def _divide_vjp(out, g):
    a, b = out._parents
    gx = divide(g, b)
    return _both(out, lambda: gx, lambda: negative(multiply(gx, out)))


def add(a, b):
    a, b = binary_operands("add", a, b)
    sa, sb = a.data.shape, b.data.shape
    return make_result(a.data + b.data, (a, b), lambda g: (unbroadcast(g, sa), unbroadcast(g, sb)), _add_vjp)


def subtract(a, b):
    a, b = binary_operands("subtract", a, b)
    sa, sb = a.data.shape, b.data.shape
    return make_result(a.data - b.data, (a, b), lambda g: (unbroadcast(g, sa), unbroadcast(-g, sb)), _subtract_vjp)


def multiply(a, b):
    a, b = binary_operands("multiply", a, b)
    x, y = a.data, b.data
    return make_result(x * y, (a, b), lambda g: (unbroadcast(g * y, x.shape), unbroadcast(g * x, y.shape)),
                       _multiply_vjp)


def divide(a, b):
    a, b = binary_operands("divide", a, b)
    x, y = a.data, b.data
    if x.dtype.kind in "iub":  # the operands share one dtype; an integer quotient is floatx, as in Keras
        x, y = x.astype(FLOATX), y.astype(FLOATX)

    def backward(g):
        gx = g / y
        return unbroadcast(gx, a.data.shape), unbroadcast(-gx * x / y, b.data.shape)
    return make_result(x / y, (a, b), backward, _divide_vjp)


true_divide = divide


def floor_divide(a, b):
    a, b = binary_operands("floor_divide", a, b)
    return make_result(a.data // b.data, (a, b), lambda g: (None, None))


def mod(a, b):
    # a mod b = a - b floor(a / b): d/da = 1, d/db = -floor(a / b) (away from the jumps)
    a, b = binary_operands("mod", a, b)
    x, y = a.data, b.data

    def backward(g):
        gy = unbroadcast(-g * array_module(x).floor(x / y), y.shape) if b._tracked else None
        return unbroadcast(g, x.shape), gy
    return make_result(x % y, (a, b), backward)


def power(a, b):
    a, b = binary_operands("power", a, b)
    x, y = a.data, b.data
    out = x ** y

    def backward(g):
        gx = unbroadcast(g * y * x ** (y - 1), x.shape)
        gy = None
        if b._tracked:
            xp = array_module(x)
            safe = xp.where(x > 0, x, xp.ones_like(x))
            gy = unbroadcast(g * out * xp.log(safe), y.shape)
        return gx, gy
    return make_result(out, (a, b), backward, _power_vjp)


def _power_vjp(out, g):
    a, b = out._parents

    def gy():
        safe = where(a.data > 0, a, 1.0)
        return multiply(multiply(g, out), log(safe))
    return _both(out, lambda: multiply(multiply(g, b), power(a, subtract(b, 1.0))), gy)


def negative(x):
    x = to_tensor(x)
    return make_result(-x.data, (x,), lambda g: (-g,), _negative_vjp)


def _negative_vjp(out, g):
    return (negative(g),)


def abs(x):  # noqa: A001 - keras.ops name
    x = to_tensor(x)
    xp = array_module(x.data)
    return make_result(xp.abs(x.data), (x,), lambda g: (g * xp.sign(x.data),), _abs_vjp)


def _abs_vjp(out, g):
    x, = out._parents
    return (multiply(g, constant(array_module(x.data).sign(x.data))),)


absolute = abs


def sign(x):
    x = to_tensor(x)
    return make_result(array_module(x.data).sign(x.data), (x,), lambda g: (None,))


def square(x):
    x = to_tensor(x)
    if x.data.dtype.kind == "b":  # numpy would keep bool (True * True); Keras counts in int32
        x = cast(x, "int32")
    d = x.data
    return make_result(d * d, (x,), lambda g: (g * (2 * d),), _square_vjp)


def _square_vjp(out, g):
    return (multiply(g, multiply(out._parents[0], 2)),)


def sqrt(x):
    x = float_operand(x)
    y = array_module(x.data).sqrt(x.data)
    return make_result(y, (x,), lambda g: (g / (2 * y),), _sqrt_vjp)


def _sqrt_vjp(out, g):
    return (divide(g, multiply(out, 2.0)),)


def rsqrt(x):
    x = float_operand(x)
    y = 1 / array_module(x.data).sqrt(x.data)
    return make_result(y, (x,), lambda g: (g * -0.5 * y * y * y,), _rsqrt_vjp)


def _rsqrt_vjp(out, g):
    return (multiply(g, multiply(power(out, 3.0), -0.5)),)


def exp(x):
    x = float_operand(x)
    y = array_module(x.data).exp(x.data)
    return make_result(y, (x,), lambda g: (g * y,), _exp_vjp)


def _exp_vjp(out, g):
    return (multiply(g, out),)


def expm1(x):
    x = float_operand(x)
    xp = array_module(x.data)
    return make_result(xp.expm1(x.data), (x,), lambda g: (g * xp.exp(x.data),), _expm1_vjp)


def _expm1_vjp(out, g):
    return (multiply(g, exp(out._parents[0])),)


def log(x):
    x = float_operand(x)
    return make_result(array_module(x.data).log(x.data), (x,), lambda g: (g / x.data,), _log_vjp)


def _log_vjp(out, g):
    return (divide(g, out._parents[0]),)


def log1p(x):
    x = float_operand(x)
    return make_result(array_module(x.data).log1p(x.data), (x,), lambda g: (g / (1 + x.data),), _log1p_vjp)


def _log1p_vjp(out, g):
    return (divide(g, add(out._parents[0], 1.0)),)


def log2(x):
    x = float_operand(x)
    return make_result(array_module(x.data).log2(x.data), (x,), lambda g: (g / (x.data * np.log(2.0).astype(x.data.dtype)),))


def log10(x):
    x = float_operand(x)
    return make_result(array_module(x.data).log10(x.data), (x,), lambda g: (g / (x.data * np.log(10.0).astype(x.data.dtype)),))


def sin(x):
    x = float_operand(x)
    xp = array_module(x.data)
    return make_result(xp.sin(x.data), (x,), lambda g: (g * xp.cos(x.data),), _sin_vjp)


def _sin_vjp(out, g):
    return (multiply(g, cos(out._parents[0])),)


def cos(x):
    x = float_operand(x)
    xp = array_module(x.data)
    return make_result(xp.cos(x.data), (x,), lambda g: (-g * xp.sin(x.data),), _cos_vjp)


def _cos_vjp(out, g):
    return (negative(multiply(g, sin(out._parents[0]))),)


def erf(x):
    # d/dx erf(x) = 2/sqrt(pi) e^(-x^2).  The forward is the backend's approximation (|error| < 1.5e-7, in float64
    # too); the gradient is the exact derivative.
    x = float_operand(x)
    d = x.data
    scale = d.dtype.type(2.0 / np.sqrt(np.pi))
    return make_result(backend_of(d).erf(d), (x,), lambda g: (g * (scale * array_module(d).exp(-d * d)),), _erf_vjp)


def _erf_vjp(out, g):
    x, = out._parents
    return (multiply(g, multiply(exp(negative(square(x))), 2.0 / np.sqrt(np.pi))),)


def erfinv(x):
    # d/dx erfinv(x) = sqrt(pi)/2 e^(erfinv(x)^2)
    x = float_operand(x)
    d = x.data
    y = backend_of(d).erfinv(d)
    scale = d.dtype.type(np.sqrt(np.pi) / 2.0)
    return make_result(y, (x,), lambda g: (g * (scale * array_module(d).exp(y * y)),))


def reciprocal(x):
    x = float_operand(x)
    y = 1 / x.data
    return make_result(y, (x,), lambda g: (-g * y * y,), _reciprocal_vjp)


def _reciprocal_vjp(out, g):
    return (negative(multiply(g, square(out))),)


def maximum(a, b):
    a, b = binary_operands("maximum", a, b)
    xp = array_module(a.data)
    x, y = a.data, b.data
    pick_x = x >= y

    def backward(g):
        zero = xp.zeros((), g.dtype)
        return unbroadcast(xp.where(pick_x, g, zero), x.shape), unbroadcast(xp.where(pick_x, zero, g), y.shape)
    return make_result(xp.maximum(x, y), (a, b), backward, _maximum_vjp)


def _pick_vjp(out, g, pick_x):
    """The gradient routed to whichever operand was picked: maximum, minimum, where, fmax, fmin."""
    pick = constant(pick_x)
    return _both(out, lambda: where(pick, g, 0.0), lambda: where(pick, 0.0, g))


def _maximum_vjp(out, g):
    a, b = out._parents
    return _pick_vjp(out, g, a.data >= b.data)


def _minimum_vjp(out, g):
    a, b = out._parents
    return _pick_vjp(out, g, a.data <= b.data)


def minimum(a, b):
    a, b = binary_operands("minimum", a, b)
    xp = array_module(a.data)
    x, y = a.data, b.data
    pick_x = x <= y

    def backward(g):
        zero = xp.zeros((), g.dtype)
        return unbroadcast(xp.where(pick_x, g, zero), x.shape), unbroadcast(xp.where(pick_x, zero, g), y.shape)
    return make_result(xp.minimum(x, y), (a, b), backward, _minimum_vjp)


def clip(x, x_min, x_max):
    x = to_tensor(x)
    xp = array_module(x.data)
    d = x.data
    inside = (d >= x_min) & (d <= x_max)
    out = xp.clip(d, x_min, x_max)
    if out.dtype != d.dtype:  # clip keeps x's dtype in Keras; numpy makes int32 clipped to 0.5 float64
        out = out.astype(d.dtype)
    return make_result(out, (x,), lambda g: (xp.where(inside, g, xp.zeros((), g.dtype)),), (_clip_vjp, inside))


def _clip_vjp(out, g, inside):
    return (where(constant(inside), g, 0.0),)


def where(condition, x1, x2):
    condition = to_tensor(condition)
    a, b = binary_operands("where", x1, x2)
    xp = array_module(a.data)
    c = condition.data.astype(bool)

    def backward(g):
        zero = xp.zeros((), g.dtype)
        return (None, unbroadcast(xp.where(c, g, zero), a.data.shape), unbroadcast(xp.where(c, zero, g), b.data.shape))
    return make_result(xp.where(c, a.data, b.data), (condition, a, b), backward, _where_vjp)


def _where_vjp(out, g):
    condition, a, b = out._parents
    pick = constant(condition.data.astype(bool))
    return (None,
            unbroadcast_graph(where(pick, g, 0.0), a.data.shape) if a._tracked else None,
            unbroadcast_graph(where(pick, 0.0, g), b.data.shape) if b._tracked else None)


def matmul(a, b):
    """Matrix product with numpy's broadcasting rules; 1-D operands handled as numpy does."""
    a, b = binary_operands("matmul", a, b)
    x, y = a.data, b.data
    if x.ndim == 0 or y.ndim == 0:
        raise ValueError(f"matmul: operands must be at least 1-D; received shapes {x.shape} and {y.shape}")
    if x.shape[-1] != y.shape[-2 if y.ndim > 1 else 0]:
        raise ValueError(f"matmul: inner dimensions differ: {x.shape} @ {y.shape}")
    xp = array_module(x)
    product = backend_of(x).matmul  # on the CPU it may split the rows across the cores (cpu_threads)

    def backward(g):
        x2 = x[None] if x.ndim == 1 else x
        y2 = y[..., None] if y.ndim == 1 else y
        # Undo numpy's 1-D promotion: y's axis first, so 1-D @ 1-D (a 0-d g) becomes (1, 1).
        g2 = xp.asarray(g)
        if y.ndim == 1:
            g2 = g2[..., None]
        if x.ndim == 1:
            g2 = g2[..., None, :]
        gx = unbroadcast(product(g2, xp.swapaxes(y2, -1, -2)), x2.shape) if a._tracked else None
        gy = unbroadcast(product(xp.swapaxes(x2, -1, -2), g2), y2.shape) if b._tracked else None
        if gx is not None and x.ndim == 1:
            gx = gx.reshape(x.shape)
        if gy is not None and y.ndim == 1:
            gy = gy.reshape(y.shape)
        return gx, gy
    return make_result(product(x, y), (a, b), backward, _matmul_vjp)


def _matmul_vjp(out, g):
    from dlgpu.ops.shape import expand_dims, reshape, swapaxes
    a, b = out._parents
    x2 = expand_dims(a, 0) if a.ndim == 1 else a
    y2 = expand_dims(b, -1) if b.ndim == 1 else b
    g2 = g
    if b.ndim == 1:
        g2 = expand_dims(g2, -1)
    if a.ndim == 1:
        g2 = expand_dims(g2, -2)
    gx = gy = None
    if a._tracked:
        gx = reshape(unbroadcast_graph(matmul(g2, swapaxes(y2, -1, -2)), x2.data.shape), a.data.shape)
    if b._tracked:
        gy = reshape(unbroadcast_graph(matmul(swapaxes(x2, -1, -2), g2), y2.data.shape), b.data.shape)
    return gx, gy


def dot(a, b):
    return matmul(a, b)


def cast(x, dtype):
    # a Variable is read as it is, not autocast first: cast(variable, "float32") in a float16 layer keeps
    # all of the variable's float32 digits
    x = x if isinstance(x, Tensor) else to_tensor(x)
    src = x.data.dtype
    dtype = np.dtype(dtype)
    if src == dtype:
        return x
    differentiable = dtype.kind == "f" and src.kind == "f"
    return make_result(x.data.astype(dtype), (x,), lambda g: (g.astype(src) if differentiable else None,), _cast_vjp)


def _cast_vjp(out, g):
    x, = out._parents
    return (cast(g, x.data.dtype) if x.data.dtype.kind == "f" and out.data.dtype.kind == "f" else None,)


# Comparisons and logic: no gradient.
def _compare(name):
    def op(a, b):
        a, b = binary_operands(name, a, b)
        return make_result(getattr(array_module(a.data), name)(a.data, b.data), (a, b), lambda g: (None, None))
    op.__name__ = name
    return op


equal = _compare("equal")
not_equal = _compare("not_equal")
greater = _compare("greater")
greater_equal = _compare("greater_equal")
less = _compare("less")
less_equal = _compare("less_equal")
logical_and = _compare("logical_and")
logical_or = _compare("logical_or")


def logical_not(x):
    x = to_tensor(x)
    return make_result(array_module(x.data).logical_not(x.data), (x,), lambda g: (None,))


def _no_grad_unary(name, operand=to_tensor):
    def op(x):
        x = operand(x)
        return make_result(getattr(array_module(x.data), name)(x.data), (x,), lambda g: (None,))
    op.__name__ = name
    return op


# Keras gives floatx for the floor and ceiling of an integer tensor (numpy 2 keeps the integer dtype).
floor = _no_grad_unary("floor", float_operand)
ceil = _no_grad_unary("ceil", float_operand)
round = _no_grad_unary("round")  # noqa: A001 - keras.ops name
isnan = _no_grad_unary("isnan")
isfinite = _no_grad_unary("isfinite")
isinf = _no_grad_unary("isinf")


# More elementwise ops (keras.ops names).  Each derivative is written in terms of the input ``d`` and the
# output ``y`` so the backward reuses the forward's work.
def _float_unary(name, derivative, graph_derivative):
    """An elementwise op whose derivative is ``derivative(xp, x, y)`` on arrays, and
    ``graph_derivative(x, y)`` on Tensors (with ops, for higher-order gradients)."""
    vjp = (_float_unary_vjp, graph_derivative)  # built once per op, not per call

    def op(x):
        x = float_operand(x)
        xp = array_module(x.data)
        d = x.data
        y = getattr(xp, name)(d)
        return make_result(y, (x,), lambda g: (g * derivative(xp, d, y),), vjp)
    op.__name__ = name
    return op


def _float_unary_vjp(out, g, graph_derivative):
    return (multiply(g, graph_derivative(out._parents[0], out)),)


tan = _float_unary("tan", lambda xp, d, y: 1 + y * y, lambda x, y: add(square(y), 1.0))
sinh = _float_unary("sinh", lambda xp, d, y: xp.cosh(d), lambda x, y: cosh(x))
cosh = _float_unary("cosh", lambda xp, d, y: xp.sinh(d), lambda x, y: sinh(x))
arcsin = _float_unary("arcsin", lambda xp, d, y: 1 / xp.sqrt(1 - d * d), lambda x, y: rsqrt(subtract(1.0, square(x))))
arccos = _float_unary("arccos", lambda xp, d, y: -1 / xp.sqrt(1 - d * d),
                      lambda x, y: negative(rsqrt(subtract(1.0, square(x)))))
arctan = _float_unary("arctan", lambda xp, d, y: 1 / (1 + d * d), lambda x, y: reciprocal(add(square(x), 1.0)))
arcsinh = _float_unary("arcsinh", lambda xp, d, y: 1 / xp.sqrt(d * d + 1), lambda x, y: rsqrt(add(square(x), 1.0)))
arccosh = _float_unary("arccosh", lambda xp, d, y: 1 / xp.sqrt(d * d - 1), lambda x, y: rsqrt(subtract(square(x), 1.0)))
arctanh = _float_unary("arctanh", lambda xp, d, y: 1 / (1 - d * d), lambda x, y: reciprocal(subtract(1.0, square(x))))
cbrt = _float_unary("cbrt", lambda xp, d, y: 1 / (3 * y * y), lambda x, y: reciprocal(multiply(square(y), 3.0)))
exp2 = _float_unary("exp2", lambda xp, d, y: y * d.dtype.type(np.log(2.0)), lambda x, y: multiply(y, float(np.log(2.0))))


def _float_binary(name, a, b):
    """Both operands promoted together, then to floatx if that is an integer or bool dtype."""
    a, b = binary_operands(name, a, b)
    if a.data.dtype.kind in "biu":
        a, b = cast(a, FLOATX), cast(b, FLOATX)
    return a, b


def arctan2(x1, x2):
    a, b = _float_binary("arctan2", x1, x2)
    x, y = a.data, b.data
    xp = array_module(x)

    def backward(g):
        r2 = x * x + y * y
        return unbroadcast(g * y / r2, x.shape), unbroadcast(-g * x / r2, y.shape)
    return make_result(xp.arctan2(x, y), (a, b), backward)


def hypot(x1, x2):
    a, b = _float_binary("hypot", x1, x2)
    x, y = a.data, b.data
    h = array_module(x).hypot(x, y)
    return make_result(h, (a, b), lambda g: (unbroadcast(g * x / h, x.shape), unbroadcast(g * y / h, y.shape)))


def logaddexp(x1, x2):
    a, b = _float_binary("logaddexp", x1, x2)
    x, y = a.data, b.data
    xp = array_module(x)
    out = xp.logaddexp(x, y)
    return make_result(out, (a, b), lambda g: (unbroadcast(g * xp.exp(x - out), x.shape),
                                               unbroadcast(g * xp.exp(y - out), y.shape)))


def logaddexp2(x1, x2):
    a, b = _float_binary("logaddexp2", x1, x2)
    x, y = a.data, b.data
    xp = array_module(x)
    out = xp.logaddexp2(x, y)
    return make_result(out, (a, b), lambda g: (unbroadcast(g * xp.exp2(x - out), x.shape),
                                               unbroadcast(g * xp.exp2(y - out), y.shape)))


def divide_no_nan(x1, x2):
    """x1 / x2, and 0 wherever x2 is 0 (with a zero gradient there, not a NaN)."""
    a, b = binary_operands("divide_no_nan", x1, x2)
    if a.data.dtype.kind in "biu":
        a, b = cast(a, FLOATX), cast(b, FLOATX)
    x, y = a.data, b.data
    xp = array_module(x)
    zero = y == 0
    safe = xp.where(zero, xp.ones((), y.dtype), y)
    out = xp.where(zero, xp.zeros((), x.dtype), x / safe)

    def backward(g):
        gx = xp.where(zero, xp.zeros((), g.dtype), g / safe)
        return unbroadcast(gx, x.shape), unbroadcast(-gx * out, y.shape)
    return make_result(out, (a, b), backward)


def erfc(x):
    return subtract(1.0, erf(x))


def deg2rad(x):
    return multiply(float_operand(x), np.pi / 180.0)


def rad2deg(x):
    return multiply(float_operand(x), 180.0 / np.pi)


def nan_to_num(x, nan=0.0, posinf=None, neginf=None):
    x = to_tensor(x)
    xp = array_module(x.data)
    d = x.data
    if d.dtype.kind != "f":
        return x
    out = xp.nan_to_num(d, nan=nan, posinf=posinf, neginf=neginf)
    finite = xp.isfinite(d)
    return make_result(out, (x,), lambda g: (xp.where(finite, g, xp.zeros((), g.dtype)),))


logical_xor = _compare("logical_xor")
trunc = _no_grad_unary("trunc")
signbit = _no_grad_unary("signbit")
isposinf = _no_grad_unary("isposinf")
isneginf = _no_grad_unary("isneginf")


def isclose(x1, x2, rtol=1e-5, atol=1e-8, equal_nan=False):
    a, b = binary_operands("isclose", x1, x2)
    out = array_module(a.data).isclose(a.data, b.data, rtol=rtol, atol=atol, equal_nan=equal_nan)
    return make_result(out, (a, b), lambda g: (None, None))


def allclose(x1, x2, rtol=1e-5, atol=1e-8, equal_nan=False):
    """A 0-d bool tensor (on the operands' device), as keras.ops.allclose gives."""
    close = isclose(x1, x2, rtol=rtol, atol=atol, equal_nan=equal_nan)
    return make_result(close.data.all(), (close,), lambda g: (None,))


def outer(x1, x2):
    from dlgpu.ops.shape import reshape
    return multiply(reshape(x1, (-1, 1)), reshape(x2, (1, -1)))


def inner(x1, x2):
    """numpy.inner: a sum over the last axes (a product when either operand is 0-d)."""
    from dlgpu.ops.einsum import tensordot
    a, b = binary_operands("inner", x1, x2)
    if a.ndim == 0 or b.ndim == 0:
        return multiply(a, b)
    if a.data.shape[-1] != b.data.shape[-1]:
        raise ValueError(f"inner: the last axes differ: shapes {a.data.shape} and {b.data.shape}")
    return tensordot(a, b, axes=([a.ndim - 1], [b.ndim - 1]))


def vdot(x1, x2):
    from dlgpu.ops.reduce import sum as _sum
    from dlgpu.ops.shape import reshape
    a, b = binary_operands("vdot", x1, x2)
    if a.data.size != b.data.size:
        raise ValueError(f"vdot: operands have different sizes: shapes {a.data.shape} and {b.data.shape}")
    return _sum(multiply(reshape(a, (-1,)), reshape(b, (-1,))))


def _nan_aware_extreme(name, pick_first):
    def op(x1, x2):
        a, b = binary_operands(name, x1, x2)
        xp = array_module(a.data)
        x, y = a.data, b.data
        # where fmax returns x1: x1 wins the comparison, or x2 is NaN
        pick_x = pick_first(x, y) | xp.isnan(y)

        def backward(g):
            zero = xp.zeros((), g.dtype)
            return unbroadcast(xp.where(pick_x, g, zero), x.shape), unbroadcast(xp.where(pick_x, zero, g), y.shape)
        return make_result(getattr(xp, name)(x, y), (a, b), backward)
    op.__name__ = name
    return op


fmax = _nan_aware_extreme("fmax", lambda x, y: x >= y)
fmin = _nan_aware_extreme("fmin", lambda x, y: x <= y)


def heaviside(x1, x2):
    a, b = _float_binary("heaviside", x1, x2)
    return make_result(array_module(a.data).heaviside(a.data, b.data), (a, b), lambda g: (None, None))


def fabs(x):
    return abs(float_operand(x))


def sinc(x):
    """sin(pi x) / (pi x), 1 at 0 (with the gradient 0 there, not NaN)."""
    x = float_operand(x)
    at_zero = equal(x, 0.0)
    safe = multiply(where(at_zero, 1.0, x), np.pi)
    return where(at_zero, 1.0, divide(sin(safe), safe))


def kron(x1, x2):
    """numpy.kron, as one broadcast product: a's axes interleaved with b's, then merged pairwise."""
    from dlgpu.ops.shape import reshape
    a, b = binary_operands("kron", x1, x2)
    rank = a.ndim if a.ndim > b.ndim else b.ndim
    sa = (1,) * (rank - a.ndim) + a.data.shape
    sb = (1,) * (rank - b.ndim) + b.data.shape
    spread_a = reshape(a, [v for s in sa for v in (s, 1)])
    spread_b = reshape(b, [v for s in sb for v in (1, s)])
    return reshape(multiply(spread_a, spread_b), [p * q for p, q in zip(sa, sb)])


def isin(x1, x2, assume_unique=False, invert=False):
    a, b = to_tensor(x1), to_tensor(x2)
    out = array_module(a.data).isin(a.data, b.data, assume_unique=assume_unique, invert=invert)
    return make_result(out, (a, b), lambda g: (None, None))


def select(condlist, choicelist, default=0):
    """numpy.select as nested where(): the first true condition picks its choice."""
    if len(condlist) != len(choicelist) or not condlist:
        raise ValueError(f"select: condlist and choicelist must be non-empty and of one length; received "
                         f"{len(condlist)} and {len(choicelist)}")
    out = default
    for condition, choice in zip(reversed(condlist), reversed(choicelist)):
        out = where(condition, choice, out)
    return out
