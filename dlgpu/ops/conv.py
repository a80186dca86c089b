"""Convolution and pooling ops (NHWC), with 'valid'/'same' padding resolved here once."""

from __future__ import annotations

from dlgpu.autograd import is_recording
from dlgpu.ops._core import backend_of, make_result, same_device, to_tensor
from dlgpu.ops.nn import ACTIVATION_NAMES
from dlgpu.ops.window import normalize_tuple


def resolve_padding(padding, in_hw, window, strides, op="conv2d"):
    """(top, bottom, left, right) for 'valid' or 'same' (TensorFlow's rule: extra padding at the end)."""
    padding = padding.lower() if isinstance(padding, str) else padding
    if padding == "valid":
        for size, k in zip(in_hw, window):
            if size < k:
                raise ValueError(f"{op}: the window {tuple(window)} is larger than the input {tuple(in_hw)} "
                                 f"with padding='valid'")
        return (0, 0, 0, 0)
    if padding != "same":
        raise ValueError(f"{op}: padding must be 'valid' or 'same'; received padding={padding!r}")
    pads = []
    for size, k, s in zip(in_hw, window, strides):
        out = -(-size // s)
        total = max((out - 1) * s + k - size, 0)
        pads += [total // 2, total - total // 2]
    return tuple(pads)


def _conv_operands(x, kernel, bias, strides, padding, activation, op):
    x, kernel = to_tensor(x), to_tensor(kernel)
    parents = (x, kernel) if bias is None else (x, kernel, to_tensor(bias))
    same_device(op, *parents)
    if x.ndim != 4 or kernel.ndim != 4:
        raise ValueError(f"{op}: expected a 4-D NHWC input and a 4-D (kh, kw, Cin, Cout) kernel; "
                         f"received shapes {x.shape} and {kernel.shape}")
    if x.shape[-1] != kernel.shape[2]:
        raise ValueError(f"{op}: input has {x.shape[-1]} channels (shape {x.shape}) but the kernel expects "
                         f"{kernel.shape[2]} (kernel shape {kernel.shape})")
    if activation not in ACTIVATION_NAMES:
        raise ValueError(f"{op}: unsupported fused activation {activation!r}; expected one of {ACTIVATION_NAMES}")
    strides = normalize_tuple(strides, 2, "strides", op)
    pads = resolve_padding(padding, x.shape[1:3], kernel.shape[:2], strides, op)
    return parents, strides, pads


def conv2d(x, kernel, bias=None, strides=1, padding="valid", activation="linear", alpha=0.2):
    """activation(conv(x, kernel) + bias) for NHWC x and (kh, kw, Cin, Cout) kernels, one primitive."""
    parents, strides, pads = _conv_operands(x, kernel, bias, strides, padding, activation, "conv2d")
    x, kernel = parents[:2]
    be = backend_of(x.data)
    y, ctx = be.conv2d_forward(x.data, kernel.data, None if bias is None else parents[2].data,
                               strides, pads, activation, alpha)

    def backward(g):
        dx, dw, db = be.conv2d_backward(g, ctx, need_dx=x._tracked)
        return (dx, dw) if bias is None else (dx, dw, db)
    return make_result(y, parents, backward)


def conv2d_maxpool(x, kernel, bias=None, strides=1, padding="valid", activation="linear"):
    """max_pool2d(conv2d(x, kernel, bias, strides, padding, activation), 2): a convolution layer and the
    2x2 max-pooling after it.  On the CPU one primitive computes it with the bias and activation applied
    after the pooling, on a quarter of the elements, and without ever holding the whole convolution
    output (Sequential and functional models call this for a Conv2D followed by MaxPooling2D); elsewhere,
    or for an activation that does not commute with max, it is the two ops."""
    parents, strides, pads = _conv_operands(x, kernel, bias, strides, padding, activation, "conv2d_maxpool")
    x, kernel = parents[:2]
    be = backend_of(x.data)
    fused = getattr(be, "conv2d_maxpool_forward", None)
    out_hw = [(size + before + after - k) // s + 1 for size, before, after, k, s in
              zip(x.shape[1:3], pads[::2], pads[1::2], kernel.shape[:2], strides)]
    if fused is None or activation not in be.POOL_FUSABLE_ACTIVATIONS or min(out_hw) < 2:
        return max_pool2d(conv2d(x, kernel, bias, strides, padding, activation), 2)
    keep = is_recording() and any(p._tracked for p in parents)
    y, ctx = fused(x.data, kernel.data, None if bias is None else parents[2].data, strides, pads, activation,
                   keep_for_backward=keep)
    if not keep:
        return make_result(y, parents, None)

    def backward(g):
        dx, dw, db = be.conv2d_maxpool_backward(g, ctx, need_dx=x._tracked)
        return (dx, dw) if bias is None else (dx, dw, db)
    return make_result(y, parents, backward)


def conv(inputs, kernel, strides=1, padding="valid", data_format=None, dilation_rate=1):
    """keras.ops.conv for the 2-D channels_last case."""
    if data_format not in (None, "channels_last"):
        raise ValueError(f"conv: only data_format='channels_last' is supported; received {data_format!r}")
    if dilation_rate not in (1, (1, 1)):
        raise ValueError(f"conv: only dilation_rate=1 is supported; received {dilation_rate!r}")
    return conv2d(inputs, kernel, None, strides, padding)


def _pool_args(x, pool_size, strides, padding, op):
    x = to_tensor(x)
    if x.ndim != 4:
        raise ValueError(f"{op}: expected a 4-D NHWC input; received shape {x.shape}")
    pool = normalize_tuple(pool_size, 2, "pool_size", op)
    strides = pool if strides is None else normalize_tuple(strides, 2, "strides", op)
    pads = resolve_padding(padding, x.shape[1:3], pool, strides, op)
    return x, pool, strides, pads


def max_pool2d(x, pool_size=2, strides=None, padding="valid"):
    x, pool, strides, pads = _pool_args(x, pool_size, strides, padding, "max_pool2d")
    be = backend_of(x.data)
    if not (x._tracked and is_recording()):  # inference: no backward, so no argmax to keep
        return make_result(be.max_pool2d(x.data, pool, strides, pads), (x,), None)
    y, argmax = be.max_pool2d_forward(x.data, pool, strides, pads)
    shape = x.data.shape
    return make_result(y, (x,), lambda g: (be.max_pool2d_backward(g, argmax, shape, pool, strides, pads),))


def avg_pool2d(x, pool_size=2, strides=None, padding="valid"):
    x, pool, strides, pads = _pool_args(x, pool_size, strides, padding, "avg_pool2d")
    be = backend_of(x.data)
    y, _ = be.avg_pool2d_forward(x.data, pool, strides, pads)
    shape = x.data.shape
    return make_result(y, (x,), lambda g: (be.avg_pool2d_backward(g, shape, pool, strides, pads),))


def max_pool(inputs, pool_size, strides=None, padding="valid", data_format=None):
    return max_pool2d(inputs, pool_size, strides, padding)


def average_pool(inputs, pool_size, strides=None, padding="valid", data_format=None):
    return avg_pool2d(inputs, pool_size, strides, padding)
