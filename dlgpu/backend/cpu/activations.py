"""Elementwise activations and their gradients on the CPU (numpy; CuPy on the generic GPU path).

``activation`` and ``activation_grad`` for every name in ``ACTIVATIONS``; ``relu``, ``sigmoid``, ``erf`` and
``erfinv``, which numpy lacks or runs slowly; and the helpers the fused dense and convolution primitives
use (``_apply_activation_inplace``, ``_needs_preactivation``).  Large arrays are computed in blocks across
the CPU threads (_common._split_elementwise).

GPU counterpart: dlgpu/backend/kernel_ops/activations.py, kernels/activations.cu (the math that the fused
kernels share: kernels/activation_math.cuh).
"""

from __future__ import annotations

import math

import numpy as np

from dlgpu.backend import cpu_threads
from dlgpu.backend.cpu._common import _ELEMENTWISE_BYTES, _split_elementwise, array_module


ACTIVATIONS = ("linear", "relu", "sigmoid", "tanh", "gelu", "leaky_relu")

_SQRT_HALF = np.float32(math.sqrt(0.5))
_INV_SQRT_2PI = np.float32(1.0 / math.sqrt(2.0 * math.pi))


def erf(x):
    """erf for float32 arrays (numpy has none): Abramowitz & Stegun 7.1.26, |error| < 1.5e-7 in exact
    arithmetic; float32 rounding brings it to about 5e-7 (tests/backend/test_cpu_primitives.py)."""
    xp = array_module(x)
    a = xp.abs(x)
    t = 1.0 / (1.0 + np.float32(0.3275911) * a)
    poly = t * (np.float32(0.254829592) + t * (np.float32(-0.284496736) + t * (
        np.float32(1.421413741) + t * (np.float32(-1.453152027) + t * np.float32(1.061405429)))))
    y = 1.0 - poly * xp.exp(-a * a)
    return xp.copysign(y, x).astype(x.dtype, copy=False)


# M. Giles, "Approximating the erfinv function", GPU Computing Gems Jade Edition (2011), single precision:
# erfinv(x) = x p(w) with w = -log(1 - x^2), one polynomial for w < 5 (|x| < 0.9966) and one in sqrt(w) beyond.
_ERFINV_CENTRAL = tuple(np.float32(c) for c in (
    2.81022636e-08, 3.43273939e-07, -3.5233877e-06, -4.39150654e-06, 0.00021858087, -0.00125372503,
    -0.00417768164, 0.246640727, 1.50140941))
_ERFINV_TAIL = tuple(np.float32(c) for c in (
    -0.000200214257, 0.000100950558, 0.00134934322, -0.00367342844, 0.00573950773, -0.0076224613,
    0.00943887047, 1.00167406, 2.83297682))


def _horner(t, coefficients):
    p = coefficients[0]
    for c in coefficients[1:]:
        p = c + p * t
    return p


def erfinv(x):
    """erfinv for float arrays (numpy has none): Giles' single-precision approximation, relative error below
    3e-7 for |x| < 1 - 6e-8 (tests/backend/test_cpu_primitives.py); float64 inputs nearer to +-1 than float32
    can resolve lose accuracy (1e-2 at 1 - 1e-12).  erfinv(+-1) = +-inf; |x| > 1 gives nan."""
    xp = array_module(x)
    with np.errstate(divide="ignore", invalid="ignore"):  # log(0) at +-1 and log(<0) beyond: handled below
        w = -xp.log((1.0 - x) * (1.0 + x))
        central = _horner(w - np.float32(2.5), _ERFINV_CENTRAL)
        tail = _horner(xp.sqrt(w) - np.float32(3.0), _ERFINV_TAIL)
        y = xp.where(w < 5.0, central, tail) * x
        # the tail polynomial is fitted up to float32's largest w; at w = inf it has the wrong sign
        y = xp.where(xp.abs(x) == 1.0, x * np.float32(np.inf), y)
    return y.astype(x.dtype, copy=False)


def sigmoid(x, out=None):
    """1 / (1 + e^-x), into ``out`` when given (it may be x).  e^-x overflows to inf below x = -88, where
    1/inf = 0 is the right answer, so that overflow is expected (3x faster than the two-branch
    exp(-|x|) form, measured on 4M values)."""
    xp = array_module(x)
    e = xp.negative(x, out=out)
    if xp is np:
        e = np.asarray(e)  # numpy turns a 0-d result into a scalar, which cannot be an `out=`
        with np.errstate(over="ignore"):
            np.exp(e, out=e)
    else:
        xp.exp(e, out=e)
    e += 1
    return xp.reciprocal(e, out=e)


def activation(x, name, alpha=0.2):
    """The activation of x; a large numpy array is computed in slices across the CPU threads."""
    xp = array_module(x)
    if name == "linear":
        return x
    if xp is np and x.size * _ELEMENTWISE_BYTES.get(name, 16) >= cpu_threads.MIN_PARALLEL_BYTES:
        split = _split_elementwise(lambda part, out: _activation(part, name, alpha, out), np.empty_like(x), x,
                                   name=name)
        if split is not None:
            return split
    return _activation(x, name, alpha)


_ZERO_BLOCK = 65536
_zero_blocks = {}


def relu(x, out=None):
    """max(x, 0).  numpy (2.4) takes maximum against a scalar through a loop ~6x slower than against an
    array (16K float32 values: 13 us against 2.2 us; 1M: 720 us against 60 us), so contiguous CPU
    arrays take it block by block against a block of zeros."""
    xp = array_module(x)
    if xp is not np or x.dtype.kind != "f" or not x.flags.c_contiguous \
            or (out is not None and (not out.flags.c_contiguous or out.shape != x.shape)):
        return xp.maximum(x, x.dtype.type(0), out=out)
    zeros = _zero_blocks.get(x.dtype.char)
    if zeros is None:
        zeros = _zero_blocks[x.dtype.char] = np.zeros(_ZERO_BLOCK, x.dtype)
    if out is None:
        out = np.empty_like(x)
    values, result = x.reshape(-1), out.reshape(-1)
    for begin in range(0, values.size, _ZERO_BLOCK):
        end = min(begin + _ZERO_BLOCK, values.size)
        np.maximum(values[begin:end], zeros[:end - begin], out=result[begin:end])
    return out


def _activation(x, name, alpha, out=None):
    xp = array_module(x)
    if name == "relu":
        return relu(x, out)
    if name == "sigmoid":
        return sigmoid(x, out=out)
    if name == "tanh":
        return xp.tanh(x, out=out)
    if name == "gelu":
        # float32 constants would lift a float16 x to float32 (numpy's NEP 50): back to x's dtype
        y = (x * (0.5 * (1.0 + erf(x * _SQRT_HALF)))).astype(x.dtype, copy=False)
    elif name == "leaky_relu":
        y = xp.where(x > 0, x, x * x.dtype.type(alpha))
    else:
        raise ValueError(f"unknown activation {name!r}; expected one of {ACTIVATIONS}")
    return y if out is None else _copy_into(out, y)


def activation_grad(dy, x, y, name, alpha=0.2, out=None):
    """dL/dx given dL/dy, the pre-activation x and the output y (whichever the rule needs), written
    into ``out`` when given."""
    xp = array_module(dy)
    if name == "linear":
        return dy if out is None else _copy_into(out, dy)
    if xp is np and dy.size * _ELEMENTWISE_BYTES.get(name, 16) >= cpu_threads.MIN_PARALLEL_BYTES:
        needed = (dy, x) if _needs_preactivation(name) else (dy, y)
        split = _split_elementwise(lambda g, v, out: _activation_grad(g, v, v, name, alpha, out),
                                   np.empty_like(dy) if out is None else out, *needed, name=name)
        if split is not None:
            return split
    return _activation_grad(dy, x, y, name, alpha, out)


def _copy_into(out, values):
    out[...] = values
    return out


def _activation_grad(dy, x, y, name, alpha=0.2, out=None):
    xp = array_module(dy)
    if out is not None and name in ("sigmoid", "tanh"):  # three passes in place, no temporaries
        if name == "sigmoid":
            xp.subtract(1, y, out=out)   # y (1 - y)
            out *= y
        else:
            xp.multiply(y, y, out=out)   # 1 - y^2
            xp.subtract(1, out, out=out)
        out *= dy
        return out
    if out is not None and name != "relu":
        out[...] = _activation_grad(dy, x, y, name, alpha)
        return out
    if name == "relu":
        return xp.multiply(dy, y > 0, out=out)  # 8x faster than np.where(y > 0, dy, 0) at layer sizes
    if name == "sigmoid":
        return dy * (y * (1.0 - y))
    if name == "tanh":
        return dy * (1.0 - y * y)
    if name == "gelu":
        # d/dx [x Φ(x)] = Φ(x) + x φ(x)
        cdf = 0.5 * (1.0 + erf(x * _SQRT_HALF))
        return (dy * (cdf + x * _INV_SQRT_2PI * xp.exp(-0.5 * x * x))).astype(dy.dtype, copy=False)
    if name == "leaky_relu":
        return xp.where(x > 0, dy, dy * dy.dtype.type(alpha))
    raise ValueError(f"unknown activation {name!r}; expected one of {ACTIVATIONS}")


def _needs_preactivation(name):
    return name in ("gelu", "leaky_relu")


def _apply_activation_inplace(z, name, alpha=0.2):
    """Activation written into z (a fresh buffer); returns z."""
    xp = array_module(z)
    if name == "linear":
        return z
    if name == "relu":
        return relu(z, z)
    if name == "tanh":
        return xp.tanh(z, out=z)
    if name == "sigmoid":
        return sigmoid(z, out=z)
    z[...] = activation(z, name, alpha)
    return z
