"""numpy implementations of the backend primitives: the reference every GPU kernel is checked against.

dlgpu/backend/gpu.py has the same names and signatures.  Forward primitives return ``(y, ctx)``, where
``ctx`` is whatever that backend's backward needs (here: arrays kept from the forward, so the backward
does not redo im2col).  Layouts are channels_last (NHWC) with filters (kh, kw, Cin, Cout), as in Keras.
Conventions: float32 throughout; no Python loop runs per element or per sample (only per window offset).
"""

from __future__ import annotations

import math

import numpy as np
from numpy.lib.stride_tricks import as_strided

xp = np
ACTIVATIONS = ("linear", "relu", "sigmoid", "tanh", "gelu", "leaky_relu")

_SQRT_HALF = np.float32(math.sqrt(0.5))
_INV_SQRT_2PI = np.float32(1.0 / math.sqrt(2.0 * math.pi))


# -- elementwise ---------------------------------------------------------------------------------

def erf(x):
    """erf for float32 arrays (numpy has none): Abramowitz & Stegun 7.1.26, |error| < 1.5e-7."""
    a = np.abs(x)
    t = 1.0 / (1.0 + np.float32(0.3275911) * a)
    poly = t * (np.float32(0.254829592) + t * (np.float32(-0.284496736) + t * (
        np.float32(1.421413741) + t * (np.float32(-1.453152027) + t * np.float32(1.061405429)))))
    y = 1.0 - poly * np.exp(-a * a)
    return np.copysign(y, x).astype(x.dtype, copy=False)


def sigmoid(x):
    # Computed from exp(-|x|) so neither branch overflows.
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1.0 / (1.0 + e), e / (1.0 + e)).astype(x.dtype, copy=False)


def activation(x, name, alpha=0.2):
    if name == "linear":
        return x
    if name == "relu":
        return np.maximum(x, np.array(0, x.dtype))
    if name == "sigmoid":
        return sigmoid(x)
    if name == "tanh":
        return np.tanh(x)
    if name == "gelu":
        return x * (0.5 * (1.0 + erf(x * _SQRT_HALF)))
    if name == "leaky_relu":
        return np.where(x > 0, x, x * np.array(alpha, x.dtype))
    raise ValueError(f"unknown activation {name!r}; expected one of {ACTIVATIONS}")


def activation_grad(dy, x, y, name, alpha=0.2):
    """dL/dx given dL/dy, the pre-activation x and the output y (whichever the rule needs)."""
    if name == "linear":
        return dy
    if name == "relu":
        return np.where(y > 0, dy, np.array(0, dy.dtype))
    if name == "sigmoid":
        return dy * (y * (1.0 - y))
    if name == "tanh":
        return dy * (1.0 - y * y)
    if name == "gelu":
        # d/dx [x Φ(x)] = Φ(x) + x φ(x)
        cdf = 0.5 * (1.0 + erf(x * _SQRT_HALF))
        return dy * (cdf + x * _INV_SQRT_2PI * np.exp(-0.5 * x * x))
    if name == "leaky_relu":
        return np.where(x > 0, dy, dy * np.array(alpha, dy.dtype))
    raise ValueError(f"unknown activation {name!r}; expected one of {ACTIVATIONS}")


def _needs_preactivation(name):
    return name in ("gelu", "leaky_relu")


def _apply_activation_inplace(z, name, alpha=0.2):
    """Activation written into z where that is safe (z is a fresh buffer); returns y."""
    if name == "linear":
        return z
    if name == "relu":
        return np.maximum(z, np.array(0, z.dtype), out=z)
    if name == "tanh":
        return np.tanh(z, out=z)
    return activation(z, name, alpha)


def scatter_add(target, index, values):
    """target[index] += values, accumulating repeated indices (the backward of gathers)."""
    np.add.at(target, index, values)


# -- dense ---------------------------------------------------------------------------------------

def dense_forward(x, w, b, activation_name="linear", alpha=0.2):
    z = np.matmul(x, w)
    if b is not None:
        z += b
    if _needs_preactivation(activation_name):
        y = activation(z, activation_name, alpha)
        return y, (x, w, b is not None, y, z, activation_name, alpha)
    y = _apply_activation_inplace(z, activation_name, alpha)
    return y, (x, w, b is not None, y, None, activation_name, alpha)


def dense_backward(dy, ctx, need_dx=True):
    x, w, has_bias, y, z, name, alpha = ctx
    dz = activation_grad(dy, z, y, name, alpha)
    x2 = x.reshape(-1, x.shape[-1])
    dz2 = dz.reshape(-1, dz.shape[-1])
    dw = np.matmul(x2.T, dz2)
    db = dz2.sum(axis=0) if has_bias else None
    dx = np.matmul(dz, w.T) if need_dx else None
    return dx, dw, db


# -- convolution ---------------------------------------------------------------------------------

def conv_output_size(size, k, stride, pad_before, pad_after):
    return (size + pad_before + pad_after - k) // stride + 1


def _pad_nhwc(x, pads, value=0.0):
    top, bottom, left, right = pads
    if top or bottom or left or right:
        return np.pad(x, ((0, 0), (top, bottom), (left, right), (0, 0)), constant_values=value)
    return x


def _windows(xp_, kh, kw, sh, sw, ho, wo):
    """A (N, Ho, Wo, kh, kw, C) strided view of the padded input: no copy."""
    n, _, _, c = xp_.shape
    s0, s1, s2, s3 = xp_.strides
    return as_strided(xp_, (n, ho, wo, kh, kw, c), (s0, s1 * sh, s2 * sw, s1, s2, s3), writeable=False)


def conv2d_forward(x, w, b, strides, pads, activation_name="linear", alpha=0.2):
    """im2col as a strided view, then one BLAS call: (N*Ho*Wo, kh*kw*Cin) @ (kh*kw*Cin, Cout)."""
    n, h, wd, c = x.shape
    kh, kw, _, cout = w.shape
    sh, sw = strides
    ho = conv_output_size(h, kh, sh, pads[0], pads[1])
    wo = conv_output_size(wd, kw, sw, pads[2], pads[3])
    xpad = _pad_nhwc(x, pads)
    cols = _windows(xpad, kh, kw, sh, sw, ho, wo).reshape(n * ho * wo, kh * kw * c)
    z = np.matmul(cols, w.reshape(kh * kw * c, cout))
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
    x_shape, cols, w, has_bias, y, z, strides, pads, name, alpha = ctx
    kh, kw, cin, cout = w.shape
    dz = activation_grad(dy, z, y, name, alpha).reshape(-1, cout)
    dw = np.matmul(cols.T, dz).reshape(w.shape)
    db = dz.sum(axis=0) if has_bias else None
    dx = None
    if need_dx:
        n, h, wd, _ = x_shape
        _, ho, wo, _ = dy.shape
        sh, sw = strides
        dcols = np.matmul(dz, w.reshape(kh * kw * cin, cout).T).reshape(n, ho, wo, kh, kw, cin)
        dxpad = np.zeros((n, h + pads[0] + pads[1], wd + pads[2] + pads[3], cin), dy.dtype)
        # col2im: one strided add per filter offset (kh*kw of them), never per pixel.
        for i in range(kh):
            for j in range(kw):
                dxpad[:, i:i + sh * (ho - 1) + 1:sh, j:j + sw * (wo - 1) + 1:sw, :] += dcols[:, :, :, i, j, :]
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


def max_pool2d_forward(x, pool, strides, pads):
    """Max over each window; argmax is the flat offset i*pw+j of the first maximum (int32)."""
    n, h, w, c, ho, wo = _pool_geometry(x.shape, pool, strides, pads)
    xpad = _pad_nhwc(x, pads, value=-np.inf)
    y = xpad[_window_slice(0, 0, strides, ho, wo)].copy()
    argmax = np.zeros(y.shape, np.int32)
    for i in range(pool[0]):
        for j in range(pool[1]):
            if i == 0 and j == 0:
                continue
            candidate = xpad[_window_slice(i, j, strides, ho, wo)]
            better = candidate > y  # strict: the first maximum wins, as in PyTorch
            np.copyto(y, candidate, where=better)
            np.copyto(argmax, np.int32(i * pool[1] + j), where=better)
    return y, argmax


def max_pool2d_backward(dy, argmax, x_shape, pool, strides, pads):
    n, h, w, c, ho, wo = _pool_geometry(x_shape, pool, strides, pads)
    dxpad = np.zeros((n, h + pads[0] + pads[1], w + pads[2] + pads[3], c), dy.dtype)
    zero = np.array(0, dy.dtype)
    for i in range(pool[0]):
        for j in range(pool[1]):
            dxpad[_window_slice(i, j, strides, ho, wo)] += np.where(argmax == i * pool[1] + j, dy, zero)
    return dxpad[:, pads[0]:pads[0] + h, pads[2]:pads[2] + w, :]


def _avg_counts(h, w, pool, strides, pads, ho, wo, dtype):
    """How many real (unpadded) inputs each output window covers: padding is not counted (Keras/TF)."""
    def counts(size, k, s, before, out):
        starts = np.arange(out) * s - before
        return (np.minimum(starts + k, size) - np.maximum(starts, 0)).astype(dtype)
    return np.multiply.outer(counts(h, pool[0], strides[0], pads[0], ho),
                             counts(w, pool[1], strides[1], pads[2], wo))[None, :, :, None]


def avg_pool2d_forward(x, pool, strides, pads):
    n, h, w, c, ho, wo = _pool_geometry(x.shape, pool, strides, pads)
    xpad = _pad_nhwc(x, pads)
    y = np.zeros((n, ho, wo, c), x.dtype)
    for i in range(pool[0]):
        for j in range(pool[1]):
            y += xpad[_window_slice(i, j, strides, ho, wo)]
    y /= _avg_counts(h, w, pool, strides, pads, ho, wo, x.dtype)
    return y, None


def avg_pool2d_backward(dy, x_shape, pool, strides, pads):
    n, h, w, c, ho, wo = _pool_geometry(x_shape, pool, strides, pads)
    share = dy / _avg_counts(h, w, pool, strides, pads, ho, wo, dy.dtype)
    dxpad = np.zeros((n, h + pads[0] + pads[1], w + pads[2] + pads[3], c), dy.dtype)
    for i in range(pool[0]):
        for j in range(pool[1]):
            dxpad[_window_slice(i, j, strides, ho, wo)] += share
    return dxpad[:, pads[0]:pads[0] + h, pads[2]:pads[2] + w, :]


# -- softmax and cross-entropy -------------------------------------------------------------------

def softmax(x):
    """Softmax over the last axis, stable: exp(x - max)."""
    e = x - x.max(axis=-1, keepdims=True)
    np.exp(e, out=e)
    e /= e.sum(axis=-1, keepdims=True)
    return e


def softmax_cross_entropy(logits, labels):
    """Per-row loss logsumexp(z) * sum(t) - <t, z> and the softmax, from one exp pass.

    ``labels`` are integer class ids (sparse) or float distributions shaped like ``logits``.
    """
    shifted = logits - logits.max(axis=-1, keepdims=True)
    probs = np.exp(shifted)
    total = probs.sum(axis=-1, keepdims=True)
    probs /= total
    log_total = np.log(total[..., 0])
    if labels.dtype.kind in "iu":
        picked = np.take_along_axis(shifted, labels[..., None].astype(np.intp), axis=-1)[..., 0]
        loss = log_total - picked
    else:
        loss = log_total * labels.sum(axis=-1) - (labels * shifted).sum(axis=-1)
    return loss, probs


def softmax_cross_entropy_backward(dloss, probs, labels):
    if labels.dtype.kind in "iu":
        grad = probs * dloss[..., None]
        np.put_along_axis(grad, labels[..., None].astype(np.intp),
                          np.take_along_axis(grad, labels[..., None].astype(np.intp), axis=-1) - dloss[..., None], axis=-1)
        return grad
    return probs * (labels.sum(axis=-1) * dloss)[..., None] - labels * dloss[..., None]


# -- optimizers (in place, over lists of arrays) -------------------------------------------------

def adam_update(params, grads, ms, vs, lr, beta1, beta2, eps, step, weight_decay=0.0):
    alpha = lr * math.sqrt(1.0 - beta2 ** step) / (1.0 - beta1 ** step)
    for p, g, m, v in zip(params, grads, ms, vs):
        if weight_decay:
            p *= np.float32(1.0 - lr * weight_decay)
        m += (g - m) * np.float32(1.0 - beta1)          # m = b1 m + (1-b1) g
        v += (g * g - v) * np.float32(1.0 - beta2)      # v = b2 v + (1-b2) g^2
        denom = np.sqrt(v)
        denom += np.float32(eps)
        p -= np.float32(alpha) * m / denom


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
