"""The reference implementations of the backend primitives: numpy on the CPU.

Every GPU kernel is checked against these.  They are written against the array module of their inputs
(``xp``: numpy here, CuPy when dlgpu/backend/gpu.py runs them as its generic path with
``DLGPU_KERNELS=generic``), so the CPU path and the generic GPU path are one algorithm.
dlgpu/backend/gpu.py has the same names and signatures.  Forward primitives return ``(y, ctx)``, where
``ctx`` is whatever that backend's backward needs (here: arrays kept from the forward, so the backward
does not redo im2col).  Layouts are channels_last (NHWC) with filters (kh, kw, Cin, Cout), as in Keras.
Conventions: float32 throughout; no Python loop runs per element or per sample (only per window offset).
"""

from __future__ import annotations

import math

import numpy as np

xp = np
ACTIVATIONS = ("linear", "relu", "sigmoid", "tanh", "gelu", "leaky_relu")

_SQRT_HALF = np.float32(math.sqrt(0.5))
_INV_SQRT_2PI = np.float32(1.0 / math.sqrt(2.0 * math.pi))


def array_module(array):
    """numpy, or cupy for CuPy arrays (imported only then)."""
    if type(array) is np.ndarray:  # the common case first: this runs for every primitive call
        return np
    if type(array).__module__.startswith("cupy"):
        import cupy
        return cupy
    return np


# -- elementwise ---------------------------------------------------------------------------------

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


def sigmoid(x):
    """1 / (1 + e^-x).  e^-x overflows to inf below x = -88, where 1/inf = 0 is the right answer, so
    that overflow is expected (3x faster than the two-branch exp(-|x|) form, measured on 4M values)."""
    xp = array_module(x)
    if xp is np:
        with np.errstate(over="ignore"):
            e = np.exp(-x)
    else:
        e = xp.exp(-x)
    e += 1
    return xp.reciprocal(e, out=e)


def activation(x, name, alpha=0.2):
    xp = array_module(x)
    if name == "linear":
        return x
    if name == "relu":
        return xp.maximum(x, x.dtype.type(0))
    if name == "sigmoid":
        return sigmoid(x)
    if name == "tanh":
        return xp.tanh(x)
    if name == "gelu":
        return x * (0.5 * (1.0 + erf(x * _SQRT_HALF)))
    if name == "leaky_relu":
        return xp.where(x > 0, x, x * x.dtype.type(alpha))
    raise ValueError(f"unknown activation {name!r}; expected one of {ACTIVATIONS}")


def activation_grad(dy, x, y, name, alpha=0.2):
    """dL/dx given dL/dy, the pre-activation x and the output y (whichever the rule needs)."""
    xp = array_module(dy)
    if name == "linear":
        return dy
    if name == "relu":
        return dy * (y > 0)  # 8x faster than np.where(y > 0, dy, 0) at layer sizes (measured)
    if name == "sigmoid":
        return dy * (y * (1.0 - y))
    if name == "tanh":
        return dy * (1.0 - y * y)
    if name == "gelu":
        # d/dx [x Φ(x)] = Φ(x) + x φ(x)
        cdf = 0.5 * (1.0 + erf(x * _SQRT_HALF))
        return dy * (cdf + x * _INV_SQRT_2PI * xp.exp(-0.5 * x * x))
    if name == "leaky_relu":
        return xp.where(x > 0, dy, dy * dy.dtype.type(alpha))
    raise ValueError(f"unknown activation {name!r}; expected one of {ACTIVATIONS}")


def _needs_preactivation(name):
    return name in ("gelu", "leaky_relu")


def _apply_activation_inplace(z, name, alpha=0.2):
    """Activation written into z where that is safe (z is a fresh buffer); returns y."""
    xp = array_module(z)
    if name == "linear":
        return z
    if name == "relu":
        return xp.maximum(z, z.dtype.type(0), out=z)
    if name == "tanh":
        return xp.tanh(z, out=z)
    return activation(z, name, alpha)


def scatter_add(target, index, values):
    """target[index] += values, accumulating repeated indices (the backward of gathers)."""
    if array_module(target) is np:
        np.add.at(target, index, values)
    else:
        import cupyx
        cupyx.scatter_add(target, index, values)


_ones_vectors = {}


def _column_sums(matrix):
    """Bias gradient: column sums as a vector-matrix product, which BLAS runs 6x faster than numpy's
    axis-0 reduction (measured on (43264, 32), the seed CNN's first layer)."""
    xp = array_module(matrix)
    key = (type(matrix), getattr(getattr(matrix, "device", None), "id", None), matrix.shape[0], matrix.dtype.str)
    ones = _ones_vectors.get(key)
    if ones is None:
        ones = _ones_vectors[key] = xp.ones(matrix.shape[0], matrix.dtype)
    return xp.matmul(ones, matrix)


# -- dense ---------------------------------------------------------------------------------------

def dense_forward(x, w, b, activation_name="linear", alpha=0.2):
    xp = array_module(x)
    z = xp.matmul(x, w)
    if b is not None:
        z += b
    if _needs_preactivation(activation_name):
        y = activation(z, activation_name, alpha)
        return y, (x, w, b is not None, y, z, activation_name, alpha)
    y = _apply_activation_inplace(z, activation_name, alpha)
    return y, (x, w, b is not None, y, None, activation_name, alpha)


def dense_backward(dy, ctx, need_dx=True):
    xp = array_module(dy)
    x, w, has_bias, y, z, name, alpha = ctx
    dz = activation_grad(dy, z, y, name, alpha)
    x2 = x.reshape(-1, x.shape[-1])
    dz2 = dz.reshape(-1, dz.shape[-1])
    dw = xp.matmul(x2.T, dz2)
    db = _column_sums(dz2) if has_bias else None
    dx = xp.matmul(dz, w.T) if need_dx else None
    return dx, dw, db


# -- convolution ---------------------------------------------------------------------------------

def conv_output_size(size, k, stride, pad_before, pad_after):
    return (size + pad_before + pad_after - k) // stride + 1


def _pad_nhwc(x, pads, value=0.0):
    xp = array_module(x)
    top, bottom, left, right = pads
    if top or bottom or left or right:
        return xp.pad(x, ((0, 0), (top, bottom), (left, right), (0, 0)), constant_values=value)
    return x


def _windows(padded, kh, kw, sh, sw, ho, wo):
    """A (N, Ho, Wo, kh, kw, C) strided view of the padded input: no copy."""
    n, _, _, c = padded.shape
    s0, s1, s2, s3 = padded.strides
    as_strided = array_module(padded).lib.stride_tricks.as_strided
    return as_strided(padded, (n, ho, wo, kh, kw, c), (s0, s1 * sh, s2 * sw, s1, s2, s3))


def conv2d_forward(x, w, b, strides, pads, activation_name="linear", alpha=0.2):
    """im2col as a strided view, then one BLAS call: (N*Ho*Wo, kh*kw*Cin) @ (kh*kw*Cin, Cout)."""
    xp = array_module(x)
    n, h, wd, c = x.shape
    kh, kw, _, cout = w.shape
    sh, sw = strides
    ho = conv_output_size(h, kh, sh, pads[0], pads[1])
    wo = conv_output_size(wd, kw, sw, pads[2], pads[3])
    xpad = _pad_nhwc(x, pads)
    cols = _windows(xpad, kh, kw, sh, sw, ho, wo).reshape(n * ho * wo, kh * kw * c)
    z = xp.matmul(cols, w.reshape(kh * kw * c, cout))
    if b is not None:
        z += b
    z = z.reshape(n, ho, wo, cout)
    if _needs_preactivation(activation_name):
        y = activation(z, activation_name, alpha)
    else:
        y = _apply_activation_inplace(z, activation_name, alpha)
        z = None
    return y, (x.shape, cols, w, b is not None, y, z, strides, pads, activation_name, alpha)


def conv2d_backward(dy, ctx, need_dx=True):
    xp = array_module(dy)
    x_shape, cols, w, has_bias, y, z, strides, pads, name, alpha = ctx
    kh, kw, cin, cout = w.shape
    dz = activation_grad(dy, z, y, name, alpha).reshape(-1, cout)
    dw = xp.matmul(cols.T, dz).reshape(w.shape)
    db = _column_sums(dz) if has_bias else None
    dx = None
    if need_dx:
        n, h, wd, _ = x_shape
        _, ho, wo, _ = dy.shape
        sh, sw = strides
        # One batched GEMM gives each filter offset's input gradient as a contiguous block (offset,
        # N*Ho*Wo, Cin); adding contiguous blocks is 2x faster than slicing one (N*Ho*Wo, kh*kw*Cin) result.
        per_offset = xp.matmul(dz, w.reshape(kh * kw, cin, cout).transpose(0, 2, 1)).reshape(kh * kw, n, ho, wo, cin)
        dxpad = xp.zeros((n, h + pads[0] + pads[1], wd + pads[2] + pads[3], cin), dy.dtype)
        for i in range(kh):  # col2im: one strided add per filter offset (kh*kw of them), never per pixel
            for j in range(kw):
                dxpad[:, i:i + sh * (ho - 1) + 1:sh, j:j + sw * (wo - 1) + 1:sw, :] += per_offset[i * kw + j]
        dx = dxpad[:, pads[0]:pads[0] + h, pads[2]:pads[2] + wd, :]
    return dx, dw, db


# -- pooling -------------------------------------------------------------------------------------

def _pool_geometry(x_shape, pool, strides, pads):
    n, h, w, c = x_shape
    ho = conv_output_size(h, pool[0], strides[0], pads[0], pads[1])
    wo = conv_output_size(w, pool[1], strides[1], pads[2], pads[3])
    return n, h, w, c, ho, wo


def _window_slice(i, j, strides, ho, wo):
    sh, sw = strides
    return (slice(None), slice(i, i + sh * (ho - 1) + 1, sh), slice(j, j + sw * (wo - 1) + 1, sw), slice(None))


def max_pool2d(x, pool, strides, pads):
    """Max over each window, without the argmax: inference needs no backward (4x cheaper for 2x2)."""
    xp = array_module(x)
    n, h, w, c, ho, wo = _pool_geometry(x.shape, pool, strides, pads)
    if pool == (2, 2) and strides == (2, 2) and not any(pads):
        corners = x[:, :2 * ho, :2 * wo, :].reshape(n, ho, 2, wo, 2, c)
        rows = xp.maximum(corners[:, :, 0], corners[:, :, 1])  # the two rows first: longer contiguous runs
        return xp.maximum(rows[:, :, :, 0], rows[:, :, :, 1])
    xpad = _pad_nhwc(x, pads, value=-xp.inf)
    y = xpad[_window_slice(0, 0, strides, ho, wo)].copy()
    for i in range(pool[0]):
        for j in range(pool[1]):
            if i or j:
                xp.maximum(y, xpad[_window_slice(i, j, strides, ho, wo)], out=y)
    return y


def max_pool2d_forward(x, pool, strides, pads):
    """Max over each window; argmax is the flat offset i*pw+j of the first maximum (int32)."""
    xp = array_module(x)
    n, h, w, c, ho, wo = _pool_geometry(x.shape, pool, strides, pads)
    if pool == (2, 2) and strides == (2, 2) and not any(pads):
        return _max_pool_2x2(x, ho, wo)
    xpad = _pad_nhwc(x, pads, value=-np.inf)
    y = xpad[_window_slice(0, 0, strides, ho, wo)].copy()
    argmax = xp.zeros(y.shape, np.int32)
    for i in range(pool[0]):
        for j in range(pool[1]):
            if i == 0 and j == 0:
                continue
            candidate = xpad[_window_slice(i, j, strides, ho, wo)]
            better = candidate > y  # strict: the first maximum wins, as in PyTorch
            xp.maximum(y, candidate, out=y)
            argmax = xp.where(better, np.int32(i * pool[1] + j), argmax)  # beats copyto(where=) 3x
    return y, argmax


def _max_pool_2x2(x, ho, wo):
    """The common 2x2/stride-2 case as a tournament of the four window corners (2x faster)."""
    xp = array_module(x)
    n, _, _, c = x.shape
    corners = x[:, :2 * ho, :2 * wo, :].reshape(n, ho, 2, wo, 2, c)
    a, b = corners[:, :, 0, :, 0], corners[:, :, 0, :, 1]
    d, e = corners[:, :, 1, :, 0], corners[:, :, 1, :, 1]
    top, bottom = xp.maximum(a, b), xp.maximum(d, e)
    y = xp.maximum(top, bottom)
    top_arg = (b > a).astype(np.int32)
    bottom_arg = (e > d).astype(np.int32) + np.int32(2)
    return y, xp.where(bottom > top, bottom_arg, top_arg)


def max_pool2d_backward(dy, argmax, x_shape, pool, strides, pads):
    xp = array_module(dy)
    n, h, w, c, ho, wo = _pool_geometry(x_shape, pool, strides, pads)
    dxpad = xp.zeros((n, h + pads[0] + pads[1], w + pads[2] + pads[3], c), dy.dtype)
    overlapping = strides[0] < pool[0] or strides[1] < pool[1]
    for i in range(pool[0]):
        for j in range(pool[1]):
            share = dy * (argmax == i * pool[1] + j)
            window = _window_slice(i, j, strides, ho, wo)
            if overlapping:
                dxpad[window] += share
            else:  # each input belongs to one window at most: assignment is enough
                dxpad[window] = share
    return dxpad[:, pads[0]:pads[0] + h, pads[2]:pads[2] + w, :]


def _avg_counts(xp, h, w, pool, strides, pads, ho, wo, dtype):
    """How many real (unpadded) inputs each output window covers: padding is not counted (Keras/TF)."""
    def counts(size, k, s, before, out):
        starts = xp.arange(out) * s - before
        return (xp.minimum(starts + k, size) - xp.maximum(starts, 0)).astype(dtype)
    return (counts(h, pool[0], strides[0], pads[0], ho)[:, None] *
            counts(w, pool[1], strides[1], pads[2], wo)[None, :])[None, :, :, None]


def avg_pool2d_forward(x, pool, strides, pads):
    xp = array_module(x)
    n, h, w, c, ho, wo = _pool_geometry(x.shape, pool, strides, pads)
    xpad = _pad_nhwc(x, pads)
    y = xp.zeros((n, ho, wo, c), x.dtype)
    for i in range(pool[0]):
        for j in range(pool[1]):
            y += xpad[_window_slice(i, j, strides, ho, wo)]
    y /= _avg_counts(xp, h, w, pool, strides, pads, ho, wo, x.dtype)
    return y, None


def avg_pool2d_backward(dy, x_shape, pool, strides, pads):
    xp = array_module(dy)
    n, h, w, c, ho, wo = _pool_geometry(x_shape, pool, strides, pads)
    share = dy / _avg_counts(xp, h, w, pool, strides, pads, ho, wo, dy.dtype)
    dxpad = xp.zeros((n, h + pads[0] + pads[1], w + pads[2] + pads[3], c), dy.dtype)
    for i in range(pool[0]):
        for j in range(pool[1]):
            dxpad[_window_slice(i, j, strides, ho, wo)] += share
    return dxpad[:, pads[0]:pads[0] + h, pads[2]:pads[2] + w, :]


# -- softmax and cross-entropy -------------------------------------------------------------------

def softmax(x):
    """Softmax over the last axis, stable: exp(x - max)."""
    xp = array_module(x)
    e = x - x.max(axis=-1, keepdims=True)
    xp.exp(e, out=e)
    e /= e.sum(axis=-1, keepdims=True)
    return e


def softmax_cross_entropy(logits, labels):
    """Per-row loss logsumexp(z) * sum(t) - <t, z> and the softmax, from one exp pass.

    ``labels`` are integer class ids (sparse) or float distributions shaped like ``logits``.
    """
    xp = array_module(logits)
    shifted = logits - logits.max(axis=-1, keepdims=True)
    probs = xp.exp(shifted)
    total = probs.sum(axis=-1, keepdims=True)
    probs /= total
    log_total = xp.log(total[..., 0])
    if labels.dtype.kind in "iu":
        if labels.ndim == 1:  # the ops layer always passes rows: 6x cheaper than take_along_axis
            picked = shifted[xp.arange(len(labels)), labels]
        else:
            picked = xp.take_along_axis(shifted, labels[..., None].astype(np.intp), axis=-1)[..., 0]
        loss = log_total - picked
    else:
        loss = log_total * labels.sum(axis=-1) - (labels * shifted).sum(axis=-1)
    return loss, probs


def softmax_cross_entropy_backward(dloss, probs, labels):
    xp = array_module(probs)
    if labels.dtype.kind in "iu":
        grad = probs * dloss[..., None]
        rows = xp.arange(len(labels))
        grad[rows, labels] -= dloss  # one label per row, so no index repeats
        return grad
    return probs * (labels.sum(axis=-1) * dloss)[..., None] - labels * dloss[..., None]


# -- optimizers (in place, over lists of arrays) -------------------------------------------------

_scratch_buffers = {}


def _scratch(like):
    """A reusable temporary shaped like ``like``: the optimizer runs every step, allocations add up."""
    xp = array_module(like)
    key = (type(like), getattr(getattr(like, "device", None), "id", None), like.shape, like.dtype.str)
    buf = _scratch_buffers.get(key)
    if buf is None:
        buf = _scratch_buffers[key] = xp.empty_like(like)
    return buf


def adam_update(params, grads, ms, vs, lr, beta1, beta2, eps, step, weight_decay=0.0):
    xp = array_module(params[0])
    dtype = params[0].dtype.type if params else np.float32
    alpha = dtype(lr * math.sqrt(1.0 - beta2 ** step) / (1.0 - beta1 ** step))
    one_minus_b1, one_minus_b2, eps = dtype(1.0 - beta1), dtype(1.0 - beta2), dtype(eps)
    for p, g, m, v in zip(params, grads, ms, vs):
        if weight_decay:
            p *= dtype(1.0 - lr * weight_decay)
        t = _scratch(p)
        xp.subtract(g, m, out=t)       # m = b1 m + (1-b1) g, written as m += (1-b1)(g - m)
        t *= one_minus_b1
        m += t
        xp.multiply(g, g, out=t)       # v = b2 v + (1-b2) g^2
        t -= v
        t *= one_minus_b2
        v += t
        xp.sqrt(v, out=t)              # p -= alpha m / (sqrt(v) + eps)
        t += eps
        xp.divide(m, t, out=t)
        t *= alpha
        p -= t


def sgd_update(params, grads, velocities, lr, momentum, nesterov, weight_decay=0.0):
    lr32 = np.float32(lr)
    for k, (p, g) in enumerate(zip(params, grads)):
        if weight_decay:
            p *= np.float32(1.0 - lr * weight_decay)
        if not momentum:
            p -= lr32 * g
            continue
        v = velocities[k]
        v *= np.float32(momentum)
        v -= lr32 * g
        if nesterov:
            p += np.float32(momentum) * v - lr32 * g
        else:
            p += v
