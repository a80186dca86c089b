"""Neural-network ops: activations, the fused dense layer, softmax, cross-entropies, dropout, batch norm.

Fused ops (dense, softmax_cross_entropy, batch_norm_train) have fused backwards too: one primitive call
each way, so the GPU backend can run each in one or two kernels.
"""

from __future__ import annotations

import numpy as np

from dlgpu.autograd import Tensor
from dlgpu.rematerialization import observed
from dlgpu.ops import math as m
from dlgpu.ops.ctc import ctc_decode, ctc_loss  # noqa: F401  (keras.ops.nn.ctc_*)
from dlgpu.ops._core import (array_module, backend_of, binary_operands, constant, float_operand, make_result,
                             recompute_vjp, same_device, to_tensor, unbroadcast, unbroadcast_graph)

# keras.ops.nn's names (Keras 3.15.1), the public namespace ``dlgpu.ops.nn``.  The functions defined here
# that are not in it (dense, dropout, batch_norm_train, seeded_generator, ...) are dlgpu's internals, imported
# by name by other modules; dlgpu.ops binds each of these names to its public op (the one that also takes
# KerasTensors), also those defined in other modules (conv, max_pool, one_hot, moments, ...).
__all__ = [
    "adaptive_average_pool", "adaptive_max_pool", "average_pool", "batch_normalization", "binary_crossentropy",
    "categorical_crossentropy", "celu", "conv", "conv_transpose", "ctc_decode", "ctc_loss", "depth_to_space",
    "depthwise_conv", "dot_product_attention", "elu", "fold", "gelu", "glu", "hard_shrink", "hard_sigmoid",
    "hard_silu", "hard_swish", "hard_tanh", "layer_normalization", "leaky_relu", "log_sigmoid", "log_softmax",
    "max_pool", "moments", "multi_hot", "normalize", "one_hot", "polar", "psnr", "relu", "relu6",
    "rms_normalization", "selu", "separable_conv", "sigmoid", "silu", "soft_shrink", "softmax", "softplus",
    "softsign", "space_to_depth", "sparse_categorical_crossentropy", "sparse_plus", "sparse_sigmoid", "sparsemax",
    "squareplus", "swish", "tanh_shrink", "threshold", "unfold"
]


def _primitive_activation(name, operand=float_operand):
    def op(x, alpha=0.2):
        x = operand(x)
        be = backend_of(x.data)
        y = be.activation(x.data, name, alpha)
        return make_result(y, (x,), lambda g: (be.activation_grad(g, x.data, y, name, alpha),),
                           (_activation_vjp, name, alpha))
    op.__name__ = name
    return op


# The ``_*_vjp`` functions: the backwards written with ops, for higher-order gradients (dlgpu/autograd.py,
# backward_graph).  ``out`` is the op's result, its parents are the operands.
def _activation_grad_graph(g, z, y, name, alpha):
    """dL/dz of y = activation(z) from dL/dy, with ops (the rules of backend activation_grad).  ``z`` is
    the pre-activation Tensor, or a function that computes it (only gelu needs it as a Tensor)."""
    if name == "linear":
        return g
    if name == "relu":
        return m.where(constant(y.data > 0), g, 0.0)
    if name == "sigmoid":
        return m.multiply(g, m.multiply(y, m.subtract(1.0, y)))
    if name == "tanh":
        return m.multiply(g, m.subtract(1.0, m.square(y)))
    z = z() if callable(z) else z
    if name == "leaky_relu":
        return m.where(constant(z.data > 0), g, m.multiply(g, alpha))
    if name == "gelu":  # d/dz [z Φ(z)] = Φ(z) + z φ(z)
        cdf = m.multiply(m.add(m.erf(m.multiply(z, float(np.sqrt(0.5)))), 1.0), 0.5)
        pdf = m.multiply(m.exp(m.multiply(m.square(z), -0.5)), float(1.0 / np.sqrt(2.0 * np.pi)))
        return m.multiply(g, m.add(cdf, m.multiply(z, pdf)))
    raise ValueError(f"unknown activation {name!r}")


def _activation_vjp(out, g, name, alpha):
    return (_activation_grad_graph(g, out._parents[0], out, name, alpha),)


relu = _primitive_activation("relu", to_tensor)  # max(x, 0) of integers is an integer, as in Keras
sigmoid = _primitive_activation("sigmoid")
tanh = _primitive_activation("tanh")
_gelu_exact = _primitive_activation("gelu")
_leaky_relu = _primitive_activation("leaky_relu")


def gelu(x, approximate=False):
    if not approximate:
        return _gelu_exact(x)
    # 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))
    x = to_tensor(x)
    inner = m.multiply(m.add(x, m.multiply(m.power(x, 3.0), 0.044715)), float(np.sqrt(2.0 / np.pi)))
    return m.multiply(m.multiply(x, 0.5), m.add(tanh(inner), 1.0))


def leaky_relu(x, negative_slope=0.2):
    return _leaky_relu(x, negative_slope)


def relu6(x):
    return m.minimum(relu(x), 6.0)


def softplus(x):
    # log(1 + e^x) = max(x, 0) + log1p(e^-|x|): no overflow for large |x|.
    x = float_operand(x)
    xp = array_module(x.data)
    d = x.data
    out = xp.maximum(d, 0) + xp.log1p(xp.exp(-xp.abs(d)))
    return make_result(out.astype(d.dtype, copy=False), (x,), lambda g: (g * backend_of(d).sigmoid(d),), _softplus_vjp)


def _softplus_vjp(out, g):
    return (m.multiply(g, sigmoid(out._parents[0])),)


def softsign(x):
    x = to_tensor(x)
    return m.divide(x, m.add(m.abs(x), 1.0))


def silu(x):
    x = to_tensor(x)
    return m.multiply(x, sigmoid(x))


swish = silu


def elu(x, alpha=1.0):
    x = float_operand(x)
    xp = array_module(x.data)
    d = x.data
    neg = alpha * xp.expm1(xp.minimum(d, 0))
    out = xp.where(d > 0, d, neg).astype(d.dtype, copy=False)
    return make_result(out, (x,), lambda g: (xp.where(d > 0, g, g * (neg + alpha)),), (_elu_vjp, alpha))


def _elu_vjp(out, g, alpha):
    # below 0 the derivative alpha e^x is out + alpha
    positive = constant(out._parents[0].data > 0)
    return (m.where(positive, g, m.multiply(g, m.add(out, alpha))),)


def selu(x):
    alpha, scale = 1.6732632423543772, 1.0507009873554805
    return m.multiply(elu(x, alpha), scale)


def hard_sigmoid(x):
    return m.clip(m.add(m.multiply(x, 1.0 / 6.0), 0.5), 0.0, 1.0)


def exponential(x):
    return m.exp(x)


def log_sigmoid(x):
    return m.negative(softplus(m.negative(float_operand(x))))


def mish(x):
    return m.multiply(x, tanh(softplus(x)))


_HALF = np.dtype(np.float16)


def _in_float32(op, x, *args, **kwargs):
    """``op`` of a float16 ``x`` computed in float32 and given back in float16, as Keras computes softmax and
    the normalisations in half precision: exp and the variance would overflow or lose their digits."""
    from dlgpu.ops.math import cast
    out = op(cast(x, "float32"), *args, **kwargs)
    logits = out._logits
    result = cast(out, _HALF)
    if logits is not None:  # softmax: the fused cross-entropy reads the float32 logits
        result._logits = logits
    return result


def softmax(x, axis=-1):
    """Softmax along ``axis``; its output remembers the logits so cross-entropy can fuse with it."""
    x = float_operand(x)
    if x.data.dtype is _HALF:
        return _in_float32(softmax, x, axis)
    xp = array_module(x.data)
    ax = axis % x.ndim
    if ax == x.ndim - 1:
        y = backend_of(x.data).softmax(x.data.reshape(-1, x.data.shape[-1])).reshape(x.data.shape)
    else:
        e = xp.exp(x.data - x.data.max(axis=ax, keepdims=True))
        y = e / e.sum(axis=ax, keepdims=True)

    def backward(g):
        return (y * (g - (g * y).sum(axis=ax, keepdims=True)),)
    out = make_result(y, (x,), backward, (_softmax_vjp, ax))
    out._logits = (x, ax)
    return out


def _softmax_vjp(out, g, ax):
    from dlgpu.ops.reduce import sum as sum_
    return (m.multiply(out, m.subtract(g, sum_(m.multiply(g, out), axis=ax, keepdims=True))),)


def log_softmax(x, axis=-1):
    x = float_operand(x)
    if x.data.dtype is _HALF:
        return _in_float32(log_softmax, x, axis)
    xp = array_module(x.data)
    shifted = x.data - x.data.max(axis=axis, keepdims=True)
    out = shifted - xp.log(xp.exp(shifted).sum(axis=axis, keepdims=True))

    def backward(g):
        return (g - xp.exp(out) * g.sum(axis=axis, keepdims=True),)
    return make_result(out, (x,), backward, (_log_softmax_vjp, axis))


def _log_softmax_vjp(out, g, axis):
    from dlgpu.ops.reduce import sum as sum_
    return (m.subtract(g, m.multiply(m.exp(out), sum_(g, axis=axis, keepdims=True))),)


ACTIVATION_NAMES = ("linear", "relu", "sigmoid", "tanh", "gelu", "leaky_relu")


def dense(x, kernel, bias=None, activation="linear", alpha=0.2):
    """activation(x @ kernel + bias) in one primitive; x may have leading batch axes beyond the first."""
    x, kernel = to_tensor(x), to_tensor(kernel)
    parents = (x, kernel) if bias is None else (x, kernel, to_tensor(bias))
    same_device("dense", *parents)
    if x.data.shape[-1] != kernel.data.shape[0]:
        raise ValueError(f"dense: input has {x.data.shape[-1]} features (shape {x.shape}) but the kernel "
                         f"expects {kernel.data.shape[0]} (kernel shape {kernel.shape})")
    if activation not in ACTIVATION_NAMES:
        raise ValueError(f"dense: unsupported fused activation {activation!r}; expected one of {ACTIVATION_NAMES}")
    be = backend_of(x.data)
    lead = x.data.shape[:-1]
    x2 = x.data.reshape(-1, x.data.shape[-1])
    y, ctx = be.dense_forward(x2, kernel.data, None if bias is None else parents[2].data, activation, alpha)

    def backward(g):
        dx, dw, db = be.dense_backward(g.reshape(-1, g.shape[-1]), ctx, need_dx=x._tracked)
        if dx is not None:
            dx = dx.reshape(x.data.shape)
        return (dx, dw) if bias is None else (dx, dw, db)
    return make_result(y.reshape(lead + (y.shape[-1],)), parents, backward, (_dense_vjp, activation, alpha))


def _dense_vjp(out, g, activation, alpha):
    from dlgpu.ops.reduce import sum as sum_
    from dlgpu.ops.shape import reshape, transpose
    x, kernel = out._parents[:2]
    bias = out._parents[2] if len(out._parents) == 3 else None

    def preactivation():
        z = m.matmul(x, kernel)
        return z if bias is None else m.add(z, bias)
    units = kernel.data.shape[1]
    gz = reshape(_activation_grad_graph(g, preactivation, out, activation, alpha), (-1, units))
    dx = reshape(m.matmul(gz, transpose(kernel)), x.data.shape) if x._tracked else None
    dw = m.matmul(transpose(reshape(x, (-1, kernel.data.shape[0]))), gz) if kernel._tracked else None
    if bias is None:
        return dx, dw
    return dx, dw, sum_(gz, axis=0) if bias._tracked else None


def softmax_cross_entropy(logits, labels, axis=-1):
    """Per-example -log softmax(logits)[label]; labels are class ids or distributions.

    One fused primitive: logsumexp and softmax from a single exp pass, and a backward of probs - onehot.
    """
    logits = to_tensor(logits)
    labels = to_tensor(labels)
    same_device("softmax_cross_entropy", logits, labels)
    if axis % logits.ndim != logits.ndim - 1:
        logits = _move_to_last(logits, axis)
        if labels.data.dtype.kind == "f":
            labels = _move_to_last(labels, axis)
    be = backend_of(logits.data)
    classes = logits.data.shape[-1]
    lead = logits.data.shape[:-1]
    z = logits.data.reshape(-1, classes)
    t = labels.data.reshape(-1) if labels.data.dtype.kind in "iu" else labels.data.reshape(-1, classes)
    loss, probs = be.softmax_cross_entropy(z, t)

    def backward(g):
        return be.softmax_cross_entropy_backward(g.reshape(-1), probs, t).reshape(logits.data.shape), None
    return make_result(loss.reshape(lead), (logits, labels), backward, _softmax_cross_entropy_vjp)


def _softmax_cross_entropy_vjp(out, g):
    # d/dz = g (softmax(z) - t), t the one-hot labels or the given distribution (labels get no gradient,
    # as in the first-order backward)
    from dlgpu.ops.shape import expand_dims
    logits, labels = out._parents
    t = labels.data
    if t.dtype.kind in "iu":
        t = (t[..., None] == array_module(t).arange(logits.data.shape[-1])).astype(logits.data.dtype)
    return (m.multiply(expand_dims(g, -1), m.subtract(softmax(logits), constant(t.astype(logits.data.dtype)))), None)


def _move_to_last(x, axis):
    from dlgpu.ops.shape import moveaxis
    return moveaxis(x, axis, -1)


def sigmoid_cross_entropy(logits, labels):
    """Elementwise binary cross-entropy from logits: max(z,0) - z t + log1p(exp(-|z|)), stable."""
    logits, labels = to_tensor(logits), to_tensor(labels)
    same_device("sigmoid_cross_entropy", logits, labels)
    xp = array_module(logits.data)
    z = logits.data
    t = labels.data.astype(z.dtype, copy=False)
    out = xp.maximum(z, 0) - z * t + xp.log1p(xp.exp(-xp.abs(z)))
    shapes = (z.shape, t.shape)

    def backward(g):
        p = backend_of(z).sigmoid(z)
        return unbroadcast(g * (p - t), shapes[0]), None
    return make_result(out, (logits, labels), backward, _sigmoid_cross_entropy_vjp)


def _sigmoid_cross_entropy_vjp(out, g):
    logits, labels = out._parents
    t = constant(labels.data.astype(logits.data.dtype, copy=False))
    return unbroadcast_graph(m.multiply(g, m.subtract(sigmoid(logits), t)), logits.data.shape), None


_rng = {}


def _generator(xp, seed=None):
    """dlgpu's shared generator for array module ``xp`` (or a new one from ``seed``).  Every random draw of
    dlgpu takes its generator through here or random._rng, so that a rematerialized function replays its
    draws in its backward rerun (remat.observed)."""
    if seed is not None:
        return observed(xp.random.default_rng(seed) if xp is np else xp.random.RandomState(seed))
    key = xp.__name__
    if key not in _rng:
        _rng[key] = np.random.default_rng() if xp is np else xp.random.RandomState()
    return observed(_rng[key])


def seeded_generator(generators, seed, xp):
    """A layer's generator for array module ``xp``: with a seed, its own one, made once from the seed and
    kept in ``generators`` (a dict the layer owns), so that it advances with every draw as Keras's
    SeedGenerator does (a seeded model repeats its masks from run to run, not from step to step); without a
    seed, dlgpu's shared generator (reseeded by ``dlgpu.set_random_seed``)."""
    if seed is None:
        return _generator(xp)
    key = xp.__name__
    if key not in generators:
        generators[key] = xp.random.default_rng(seed) if xp is np else xp.random.RandomState(seed)
    return observed(generators[key])


def set_random_seed(seed):
    """Seed dlgpu's own generators (dropout masks, initializers) for reproducible runs."""
    _rng.clear()
    _rng["numpy"] = np.random.default_rng(seed)
    from dlgpu import initializers
    initializers.set_seed(seed)
    from dlgpu.backend import device as _device
    if _device.gpu_available():  # pragma: no cover - GPU only
        import cupy
        _rng["cupy"] = cupy.random.RandomState(seed)


def dropout(x, rate, noise_shape=None, seed=None, generator=None):
    """Zero each value with probability ``rate`` and scale the rest by 1/(1-rate) (inverted dropout).
    ``generator`` (a generator of x's array module, see seeded_generator) draws the mask instead of ``seed``."""
    x = to_tensor(x)
    if not 0 <= rate < 1:
        raise ValueError(f"dropout: rate must be in [0, 1); received rate={rate}")
    if rate == 0:
        return x
    mask = dropout_mask(x.data, rate, noise_shape, seed, generator)
    return make_result(x.data * mask, (x,), lambda g: (g * mask,), (_dropout_vjp, mask))


def _dropout_vjp(out, g, mask):
    # the same mask again: a WGAN-GP critic with Dropout differentiates its input gradient
    return (m.multiply(g, constant(mask)),)


def dropout_mask(data, rate, noise_shape=None, seed=None, generator=None):
    """The array dropout multiplies ``data`` by: 0 with probability ``rate``, else 1/(1-rate)."""
    xp = array_module(data)
    gen = generator if generator is not None else _generator(xp, seed)
    if noise_shape is not None and len(noise_shape) != data.ndim:
        raise ValueError(f"dropout: `noise_shape` {tuple(noise_shape)} must have one entry per axis of the input, "
                         f"of shape {tuple(data.shape)}")
    shape = data.shape if noise_shape is None else tuple(s if n is None else n for s, n in zip(data.shape, noise_shape))
    if xp is np:
        keep = gen.random(shape, dtype=np.float32) >= rate
    else:  # pragma: no cover - GPU path
        keep = gen.random_sample(shape, dtype=np.float32) >= rate
    scale = data.dtype.type(1.0 / (1.0 - rate))  # a numpy scalar: CuPy refuses 0-d numpy arrays as operands
    mask = keep * scale if data.dtype.kind == "f" else keep
    return mask.astype(data.dtype, copy=False)


def batch_norm_train(x, gamma, beta, axes, epsilon):
    """Normalise over ``axes`` with the batch statistics; returns (y, batch_mean, batch_var arrays).

    Backward (fused): dx = gamma/σ · (dy - mean(dy) - x̂ · mean(dy · x̂)).
    """
    x = to_tensor(x)
    params = [p for p in (gamma, beta) if p is not None]
    same_device("batch_normalization", x, *params)
    xp = array_module(x.data)
    d = x.data
    count = int(np.prod([d.shape[a] for a in axes]))
    mean = d.mean(axis=axes, keepdims=True)
    centered = d - mean
    var = (centered * centered).mean(axis=axes, keepdims=True)
    inv_std = 1.0 / xp.sqrt(var + d.dtype.type(epsilon))
    x_hat = centered * inv_std
    scale = gamma.data if gamma is not None else None
    y = x_hat * scale if scale is not None else x_hat.copy()
    if beta is not None:
        y += beta.data

    def backward(g):
        g_sum = g.sum(axis=axes, keepdims=True)
        gx_sum = (g * x_hat).sum(axis=axes, keepdims=True)
        factor = inv_std if scale is None else inv_std * scale
        dx = factor * (g - g_sum / count - x_hat * (gx_sum / count))
        grads = [dx]
        if gamma is not None:
            grads.append(gx_sum.reshape(gamma.data.shape))
        if beta is not None:
            grads.append(g_sum.reshape(beta.data.shape))
        return tuple(grads)
    out = make_result(y, (x, *params), backward, (recompute_vjp, _batch_norm_graph, axes, epsilon, gamma is not None))
    return out, mean, var


def _batch_norm_graph(x, *rest):
    """batch_norm_train's output as recorded ops with vjps (its vjp differentiates through them)."""
    from dlgpu.ops import reduce as r
    *params, axes, epsilon, has_gamma = rest
    centered = m.subtract(x, r.mean(x, axis=axes, keepdims=True))
    variance = r.mean(m.square(centered), axis=axes, keepdims=True)
    y = m.multiply(centered, m.rsqrt(m.add(variance, float(epsilon))))
    if has_gamma:
        y = m.multiply(y, params.pop(0))
    return m.add(y, params[0]) if params else y


def batch_normalization(x, mean, variance, axis=-1, offset=None, scale=None, epsilon=1e-3):
    """keras.ops.batch_normalization: (x - mean) / sqrt(variance + eps) * scale + offset."""
    inv = m.rsqrt(m.add(variance, epsilon))
    if scale is not None:
        inv = m.multiply(inv, scale)
    out = m.multiply(m.subtract(x, mean), inv)
    return m.add(out, offset) if offset is not None else out


def _as_axes(axis, ndim):
    axes = [axis] if isinstance(axis, (int, np.integer)) else list(axis)
    for a in axes:
        if not -ndim <= a < ndim:
            raise ValueError(f"axis {a} is out of bounds for a tensor of rank {ndim}; received axis={axis!r}")
    return sorted(a % ndim for a in axes)


def _spanning(param, axes, shape):
    """A weight over ``axes`` (shape ``shape[axes]``) reshaped to broadcast against the full tensor."""
    if param is None:
        return None
    broadcast = [1] * len(shape)
    for a in axes:
        broadcast[a] = shape[a]
    param = to_tensor(param)
    return param if tuple(param.shape) == tuple(broadcast) else param.reshape(tuple(broadcast))


def normalize(x, axis=-1, order=2, epsilon=None):
    """keras.ops.normalize: x / max(||x||_order, epsilon) along ``axis``; for order 2 the squared norm is
    clamped at epsilon^2 before the rsqrt, as Keras does, so a zero vector gets a finite gradient."""
    if isinstance(order, bool) or not isinstance(order, (int, np.integer)) or order < 1:
        raise ValueError(f"normalize: argument `order` must be an int >= 1. Received: order={order!r}")
    x = float_operand(x)
    if x.ndim == 0:
        x = x.reshape((1,))
    from dlgpu.ops import reduce as r
    eps = 1e-7 if epsilon is None else float(epsilon)
    if order == 2:
        return m.multiply(x, m.rsqrt(m.maximum(r.sum(m.square(x), axis=axis, keepdims=True), eps * eps)))
    norm = m.power(r.sum(m.power(m.abs(x), float(order)), axis=axis, keepdims=True), 1.0 / order)
    return m.divide(x, m.maximum(norm, eps))


def layer_normalization(x, gamma=None, beta=None, axis=-1, epsilon=None, rms_scaling=False):
    """keras.ops.layer_normalization: (x - mean) / sqrt(var + eps) * gamma + beta over ``axis`` (an int or a
    list), ``gamma`` and ``beta`` spanning those axes.  The normalisation is batch_norm_train's fused op
    without parameters (its backward assumes per-channel parameters, which these are not); gamma and beta
    follow as ordinary broadcasts.  rms_scaling=True is Keras's deprecated variant: x / sqrt(var + eps) *
    gamma, no centring and no beta."""
    x = float_operand(x)
    if x.data.dtype is _HALF:
        return _in_float32(layer_normalization, x, gamma, beta, axis, epsilon, rms_scaling)
    axes = _as_axes(axis, x.ndim)
    eps = 1e-7 if epsilon is None else float(epsilon)
    gamma, beta = _spanning(gamma, axes, x.shape), _spanning(beta, axes, x.shape)
    if rms_scaling:
        from dlgpu.ops import reduce as r
        out = m.multiply(x, m.rsqrt(m.add(r.var(x, axis=tuple(axes), keepdims=True), eps)))
        return m.multiply(out, gamma) if gamma is not None else out
    out, _, _ = batch_norm_train(x, None, None, tuple(axes), eps)
    if gamma is not None:
        out = m.multiply(out, gamma)
    return m.add(out, beta) if beta is not None else out


def rms_normalization(x, scale=None, axis=-1, epsilon=None):
    """keras.ops.rms_normalization: x / sqrt(mean(x^2) + eps) * scale over ``axis``."""
    x = float_operand(x)
    if x.data.dtype is _HALF:
        return _in_float32(rms_normalization, x, scale, axis, epsilon)
    if x.ndim == 0:
        x = x.reshape((1,))
    axes = _as_axes(axis, x.ndim)
    eps = 1e-7 if epsilon is None else float(epsilon)
    from dlgpu.ops import reduce as r
    out = m.multiply(x, m.rsqrt(m.add(r.mean(m.square(x), axis=tuple(axes), keepdims=True), eps)))
    scale = _spanning(scale, axes, x.shape)
    return m.multiply(out, scale) if scale is not None else out


# More activations (keras.ops.nn names), composed from differentiable ops so their gradients follow.
def hard_silu(x):
    x = float_operand(x)
    return m.multiply(x, m.divide(relu6(m.add(x, 3.0)), 6.0))


hard_swish = hard_silu


def glu(x, axis=-1):
    from dlgpu.ops.shape import split
    x = float_operand(x)
    if x.data.shape[axis] % 2:
        raise ValueError(f"glu: axis {axis} must have an even size to split in two; received shape {x.data.shape}")
    a, b = split(x, 2, axis)
    return m.multiply(a, sigmoid(b))


def celu(x, alpha=1.0):
    x = float_operand(x)
    return m.add(relu(x), m.minimum(m.multiply(m.expm1(m.divide(x, alpha)), alpha), 0.0))


def sparse_plus(x):
    # 0 below -1, x above 1, (x + 1)^2 / 4 between: once differentiable
    x = float_operand(x)
    middle = m.multiply(m.square(m.add(x, 1.0)), 0.25)
    return m.where(m.less_equal(x, -1.0), 0.0, m.where(m.greater_equal(x, 1.0), x, middle))


def sparse_sigmoid(x):
    x = float_operand(x)
    return m.clip(m.multiply(m.add(x, 1.0), 0.5), 0.0, 1.0)


def squareplus(x, b=4):
    x = float_operand(x)
    return m.multiply(m.add(x, m.sqrt(m.add(m.square(x), float(b)))), 0.5)


def hard_tanh(x):
    return m.clip(float_operand(x), -1.0, 1.0)


def hard_shrink(x, threshold=0.5):
    x = float_operand(x)
    return m.where(m.greater(m.abs(x), threshold), x, 0.0)


def soft_shrink(x, threshold=0.5):
    x = float_operand(x)
    return m.where(m.greater(x, threshold), m.subtract(x, threshold),
                   m.where(m.less(x, -threshold), m.add(x, threshold), 0.0))


def tanh_shrink(x):
    x = float_operand(x)
    return m.subtract(x, tanh(x))


def threshold(x, threshold, default_value):  # noqa: A002 - keras.ops signature
    x = float_operand(x)
    return m.where(m.greater(x, threshold), x, default_value)


def sparsemax(x, axis=-1):
    """Euclidean projection of ``x`` onto the probability simplex along ``axis`` (Martins & Astudillo 2016):
    max(x - tau, 0) with tau = (sum of the support - 1) / |support|.

    Keras 3.15's backends build tau from the sum of the cumulative sums over the support, so their outputs
    do not sum to 1 once two or more entries survive (keras-team/keras#23425, fixed upstream by #23469);
    this is the paper's (and fixed Keras's) threshold.  The support is found with the array module and held
    constant; tau is then written with ops, so the gradient is the exact Jacobian (g - mean of g over the
    support, on the support) and higher-order gradients follow."""
    from dlgpu.ops import reduce as r
    x = float_operand(x)
    xp = array_module(x.data)
    d = x.data
    axis = axis % d.ndim if d.ndim else 0
    ranked = -xp.sort(-d, axis=axis)
    shape = [1] * d.ndim
    shape[axis] = -1
    ranks = xp.arange(1, d.shape[axis] + 1, dtype=d.dtype).reshape(shape)
    in_support = ranked - (xp.cumsum(ranked, axis=axis) - 1) / ranks > 0
    size = in_support.sum(axis=axis, keepdims=True)
    # the support holds the `size` largest entries: those at least the size-th largest
    cutoff = xp.take_along_axis(ranked, size - 1, axis=axis)
    support = constant(d >= cutoff)
    tau = m.divide(m.subtract(r.sum(m.where(support, x, 0.0), axis=axis, keepdims=True), 1.0),
                   constant(size.astype(d.dtype)))
    return m.where(support, m.subtract(x, tau), 0.0)


def multi_hot(inputs, num_classes=None, axis=-1, dtype=None, sparse=False, **kwargs):
    """keras.ops.multi_hot: a 1 for every class present along axis 1 (axis 0 of a 1-D input); labels outside
    [0, num_classes) mark nothing."""
    if "num_tokens" in kwargs:  # Keras's legacy name for num_classes
        num_classes = kwargs.pop("num_tokens")
    if kwargs:
        raise TypeError(f"multi_hot: unexpected arguments {sorted(kwargs)}")
    if sparse:
        raise NotImplementedError("multi_hot: sparse=True is not supported (dlgpu has no sparse tensors)")
    if num_classes is None:
        raise ValueError("multi_hot: num_classes is required")
    x = to_tensor(inputs)
    if x.data.dtype.kind not in "iub":
        raise TypeError(f"multi_hot: inputs must be integer labels; received dtype {x.data.dtype}")
    xp = array_module(x.data)
    hot = x.data[..., None] == xp.arange(int(num_classes))
    hot = hot.any(axis=1 if x.ndim > 1 else 0)
    if axis != -1:
        hot = xp.moveaxis(hot, -1, axis)
    return make_result(hot.astype(dtype or "float32"), (x,), None)


_EPSILON = 1e-7  # keras.config.epsilon(), what Keras clips probabilities to


def _check_same_shape(op, target, output):
    if target.data.shape != output.data.shape:
        raise ValueError(f"{op}: target and output must have the same shape; received target.shape="
                         f"{target.data.shape}, output.shape={output.data.shape}")


def binary_crossentropy(target, output, from_logits=False):
    """Elementwise, as keras.ops.binary_crossentropy (no reduction)."""
    target, output = float_operand(target), float_operand(output)
    _check_same_shape("binary_crossentropy", target, output)
    target, output = binary_operands("binary_crossentropy", target, output)
    if from_logits:  # max(z, 0) - z t + log1p(exp(-|z|)), stable for any z
        return m.add(m.subtract(relu(output), m.multiply(output, target)), m.log1p(m.exp(m.negative(m.abs(output)))))
    p = m.clip(output, _EPSILON, 1.0 - _EPSILON)
    return m.negative(m.add(m.multiply(target, m.log(p)),
                            m.multiply(m.subtract(1.0, target), m.log(m.subtract(1.0, p)))))


def _log_probabilities(output, from_logits, axis):
    from dlgpu.ops.reduce import sum as _sum
    if from_logits:
        return log_softmax(output, axis)
    output = m.divide(output, _sum(output, axis, keepdims=True))
    return m.log(m.clip(output, _EPSILON, 1.0 - _EPSILON))


def categorical_crossentropy(target, output, from_logits=False, axis=-1):
    from dlgpu.ops.reduce import sum as _sum
    target, output = float_operand(target), float_operand(output)
    _check_same_shape("categorical_crossentropy", target, output)
    if output.ndim < 1:
        raise ValueError("categorical_crossentropy: target and output must be at least rank 1")
    target, output = binary_operands("categorical_crossentropy", target, output)
    return m.negative(_sum(m.multiply(target, _log_probabilities(output, from_logits, axis)), axis))


def sparse_categorical_crossentropy(target, output, from_logits=False, axis=-1):
    from dlgpu.ops.shape import expand_dims, squeeze, take_along_axis
    output = float_operand(output)
    target = to_tensor(target)
    if target.ndim == output.ndim and target.data.shape[-1] == 1:
        target = squeeze(target, -1)
    if axis not in (-1, output.ndim - 1):
        raise ValueError(f"sparse_categorical_crossentropy: only axis=-1 is supported; received axis={axis}")
    if target.data.shape != output.data.shape[:-1]:
        raise ValueError(f"sparse_categorical_crossentropy: target of shape {target.data.shape} must be output's "
                         f"shape {output.data.shape} without its last axis")
    if target.data.dtype.kind not in "iu":
        target = m.cast(target, "int32")
    same_device("sparse_categorical_crossentropy", output, target)
    picked = take_along_axis(_log_probabilities(output, from_logits, -1), expand_dims(target, -1).data, -1)
    return m.negative(squeeze(picked, -1))


def psnr(x1, x2, max_val):
    from dlgpu.ops.reduce import mean
    x1, x2 = binary_operands("psnr", float_operand(x1), float_operand(x2))
    if x1.data.shape != x2.data.shape:
        raise ValueError(f"psnr: x1 and x2 must have the same shape; received {x1.data.shape} and {x2.data.shape}")
    mse = mean(m.square(m.subtract(x1, x2)))
    return m.subtract(20.0 * float(np.log10(max_val)), m.multiply(m.log10(mse), 10.0))


def dot_product_attention(query, key, value, bias=None, mask=None, scale=None, is_causal=False,
                          flash_attention=None, attn_logits_soft_cap=None):
    """softmax(q k^T * scale + bias, masked) v over (batch, seq, heads, head_dim) tensors (the batch axis
    optional); key and value may have fewer heads than query (grouped-query attention)."""
    from dlgpu.ops.einsum import einsum
    from dlgpu.ops.shape import expand_dims, repeat, squeeze
    if flash_attention:
        raise NotImplementedError("dot_product_attention: flash_attention=True is not supported; pass None")
    q, k, v = (float_operand(t) for t in (query, key, value))
    unbatched = q.ndim == 3
    if unbatched:
        q, k, v = (expand_dims(t, 0) for t in (q, k, v))
    if not q.ndim == k.ndim == v.ndim == 4:
        raise ValueError(f"dot_product_attention: query, key and value must be rank 3 or 4 (batch, seq, heads, "
                         f"head_dim); received shapes {q.data.shape}, {k.data.shape}, {v.data.shape}")
    heads, kv_heads = q.data.shape[2], k.data.shape[2]
    if k.data.shape != v.data.shape or heads % kv_heads or q.data.shape[-1] != k.data.shape[-1]:
        raise ValueError(f"dot_product_attention: incompatible shapes query {q.data.shape}, key {k.data.shape}, "
                         f"value {v.data.shape}")
    if heads != kv_heads:
        k, v = repeat(k, heads // kv_heads, axis=2), repeat(v, heads // kv_heads, axis=2)
    if scale is None:
        scale = 1.0 / float(np.sqrt(q.data.shape[-1]))
    logits = m.multiply(einsum("btnh,bsnh->bnts", q, k), float(scale))
    if attn_logits_soft_cap is not None:
        cap = float(attn_logits_soft_cap)
        logits = m.multiply(tanh(m.divide(logits, cap)), cap)
    if bias is not None:
        logits = m.add(logits, bias)
    xp = array_module(logits.data)
    keep = None
    if mask is not None:
        keep = to_tensor(mask).data.astype(bool)
    if is_causal:
        t, s = logits.data.shape[-2:]
        causal = xp.tri(t, s, 0, dtype=bool)
        keep = causal if keep is None else keep & causal
    if keep is not None:
        # Keras's large negative rather than -inf, so a fully masked row stays finite (uniform)
        large_negative = float(np.finfo(logits.data.dtype).min) * 0.7
        logits = m.where(Tensor(keep), logits, large_negative)
    out = einsum("bnts,bsnh->btnh", softmax(logits, -1), v)
    return squeeze(out, 0) if unbatched else out
