"""PyTorch references in NHWC, Keras's padding conventions ('same' = TensorFlow's asymmetric padding)."""

import math

import numpy as np

import dlgpu


def same_padding(size, window, stride):
    """(before, after) that TensorFlow/Keras use for padding='same': the extra pixel goes after."""
    out = math.ceil(size / stride)
    total = max((out - 1) * stride + window - size, 0)
    return total // 2, total - total // 2


def pad_nchw(torch, x, window, strides, padding, value=0.0):
    if padding == "valid":
        return x
    top, bottom = same_padding(x.shape[2], window[0], strides[0])
    left, right = same_padding(x.shape[3], window[1], strides[1])
    return torch.nn.functional.pad(x, (left, right, top, bottom), value=value)


def to_nchw(torch, x_nhwc):
    return x_nhwc.permute(0, 3, 1, 2)


def to_nhwc(x_nchw):
    return x_nchw.permute(0, 2, 3, 1)


def grads_of(fn, inputs, weights, upstream):
    """dlgpu forward and gradients of sum(out * upstream) w.r.t. each input array and each weight."""
    xs = [dlgpu.Tensor(a) for a in inputs]
    with dlgpu.GradientTape() as tape:
        tape.watch(xs)
        out = fn(xs if len(xs) > 1 else xs[0])
        loss = dlgpu.ops.sum(dlgpu.ops.multiply(out, upstream))
    grads = tape.gradient(loss, xs + list(weights))
    return out.numpy(), [None if g is None else g.numpy() for g in grads]


def assert_close(a, b, rtol=1e-4, atol=1e-5):
    np.testing.assert_allclose(a, b.detach().numpy() if hasattr(b, "detach") else b, rtol=rtol, atol=atol)
