"""Keras's convolution family computed by PyTorch, for the reference checks: channels_last arrays,
(*k, Cin/groups, Cout) and (*k, Cout, Cin) kernels, TensorFlow's 'same' padding and Keras's transposed
padding rule."""

import math

import pytest

torch = pytest.importorskip("torch")
F = torch.nn.functional


def same_pads(size, span, stride):
    """TensorFlow's 'same' (the extra pixel goes after) for a window spanning ``span`` inputs."""
    total = max((math.ceil(size / stride) - 1) * stride + span - size, 0)
    return total // 2, total - total // 2


def torch_conv(tx, tw, strides, padding, dilation, groups):
    """Keras's conv in PyTorch: channels_last x, (*k, Cin/groups, Cout) kernel, TF's 'same' padding."""
    rank = tx.ndim - 2
    x = tx.permute(0, rank + 1, *range(1, rank + 1))
    if padding == "same":
        widths = []
        for size, k, s, d in reversed(list(zip(tx.shape[1:-1], tw.shape[:-2], strides, dilation))):
            widths += same_pads(size, (k - 1) * d + 1, s)
        x = F.pad(x, widths)
    w = tw.permute(rank + 1, rank, *range(rank))
    y = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}[rank](x, w, stride=strides, dilation=dilation, groups=groups)
    return y.permute(0, *range(2, rank + 2), 1)


def keras_transpose_pads(size, k, stride, dilation, padding, output_padding):
    """(left, right) padding of Keras's conv_transpose, as its JAX backend computes it
    (keras/src/backend/common/backend_utils.py, _convert_conv_transpose_padding_args_from_keras_to_jax)."""
    span = (k - 1) * dilation + 1
    if padding == "valid":
        extra = max(span, stride) - span if output_padding is None else output_padding
        return span - 1, span - 1 + extra
    total = stride + span - 2 if output_padding is None else span + span % 2 - 2 + output_padding
    left = min(total // 2 + total % 2, span - 1)
    return left, total - left


def torch_conv_transpose(tx, tw, strides, padding, output_padding, dilation):
    """Keras's conv_transpose in PyTorch: the full transposed convolution, then Keras's window of it
    (cropped by span - 1 - left before and span - 1 - right after; a negative crop appends zeros)."""
    rank = tx.ndim - 2
    x = tx.permute(0, rank + 1, *range(1, rank + 1))
    w = tw.permute(rank + 1, rank, *range(rank))  # (*k, Cout, Cin) -> (Cin, Cout, *k)
    transpose = {1: F.conv_transpose1d, 2: F.conv_transpose2d, 3: F.conv_transpose3d}[rank]
    full = transpose(x, w, stride=strides, dilation=dilation)
    for axis in range(rank):
        op = None if output_padding is None else output_padding[axis]
        k, d = tw.shape[axis], dilation[axis]
        left, right = keras_transpose_pads(tx.shape[axis + 1], k, strides[axis], d, padding, op)
        span = (k - 1) * d + 1
        before, after = span - 1 - left, span - 1 - right
        full = full.narrow(axis + 2, before, full.shape[axis + 2] - before - max(after, 0))
        if after < 0:
            widths = [0, 0] * (rank - 1 - axis) + [0, -after]
            full = F.pad(full, widths)
    return full.permute(0, *range(2, rank + 2), 1)
