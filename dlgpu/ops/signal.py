"""Signal ops: window functions, correlate, extract_sequences.

The windows are numpy's (symmetric, as Keras's): computed on the host in float64, handed to the current
device in floatx.  correlate and extract_sequences are gathers and products, so they are differentiable with
every order of gradient the ops they are made of have.
"""

from __future__ import annotations

import numpy as np

from dlgpu.autograd import FLOATX, Tensor
from dlgpu.ops._core import array_module, binary_operands, to_tensor

__all__ = ["bartlett", "blackman", "hamming", "hanning", "kaiser", "correlate", "extract_sequences"]


def _window_length(op, x):
    length = x.numpy() if isinstance(x, Tensor) else np.asarray(x)
    if length.ndim != 0 or length.dtype.kind not in "iu":
        raise ValueError(f"{op}: `x` is the window's length, a non-negative integer; received {x!r}")
    return int(length)


def _window(name, numpy_window):
    def op(x):
        from dlgpu.ops.shape import convert_to_tensor
        return convert_to_tensor(numpy_window(_window_length(name, x)).astype(FLOATX))
    op.__name__ = name
    return op


bartlett = _window("bartlett", np.bartlett)
blackman = _window("blackman", np.blackman)
hamming = _window("hamming", np.hamming)
hanning = _window("hanning", np.hanning)


def kaiser(x, beta):
    from dlgpu.ops.shape import convert_to_tensor
    return convert_to_tensor(np.kaiser(_window_length("kaiser", x), float(beta)).astype(FLOATX))


def _frames(x, length, stride):
    """(..., frames, length) windows of the last axis of x, as one differentiable gather."""
    from dlgpu.ops.shape import take
    xp = array_module(x.data)
    count = (x.data.shape[-1] - length) // stride + 1
    index = xp.arange(count)[:, None] * stride + xp.arange(length)[None, :]
    return take(x, index, axis=x.ndim - 1)


def extract_sequences(x, sequence_length, sequence_stride):
    """Frames of ``sequence_length`` along the last axis, every ``sequence_stride`` samples: shape
    (..., num_sequences, sequence_length), as Keras's (torch's unfold along the last axis)."""
    x = to_tensor(x)
    for name, value in (("sequence_length", sequence_length), ("sequence_stride", sequence_stride)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"extract_sequences: `{name}` must be a positive integer; received {name}={value!r}")
    if x.ndim < 1 or x.data.shape[-1] < sequence_length:
        raise ValueError(f"extract_sequences: the last axis of x (shape {x.data.shape}) is shorter than "
                         f"sequence_length={sequence_length}")
    return _frames(x, int(sequence_length), int(sequence_stride))


_CORRELATE_MODES = ("valid", "same", "full")


def correlate(x1, x2, mode="valid"):
    """numpy.correlate of two 1-D tensors: c[k] = sum_n x1[n + k] x2[n] (x1 zero-padded for "same" and
    "full"); float32 unless an operand is float64 (or int64, as in Keras).  Differentiable in both."""
    from dlgpu.ops.math import cast, matmul
    from dlgpu.ops.shape import pad
    if mode not in _CORRELATE_MODES:
        raise ValueError(f"correlate: mode must be one of {_CORRELATE_MODES}; received mode={mode!r}")
    a, v = binary_operands("correlate", x1, x2)
    if a.ndim != 1 or v.ndim != 1:
        raise ValueError(f"correlate: needs two 1-D tensors; received shapes {a.data.shape} and {v.data.shape}")
    dtype = a.data.dtype
    wide = dtype in (np.dtype(np.int64), np.dtype(np.float64))
    target = np.float64 if wide else (np.float16 if dtype == np.float16 else np.float32)
    a, v = cast(a, target), cast(v, target)
    n, m = a.data.shape[0], v.data.shape[0]
    if n == 0 or m == 0:
        raise ValueError(f"correlate: the operands must not be empty; received shapes {a.data.shape} and "
                         f"{v.data.shape}")
    full = matmul(_frames(pad(a, [(m - 1, m - 1)]), m, 1), v)  # lags -(m-1) .. n-1
    low, high = min(n, m), max(n, m)
    if mode == "full":
        return full
    if mode == "valid":
        return full[low - 1:high]
    start = (m - 1) // 2 if n >= m else n // 2  # numpy's centring (it swaps the operands when x2 is longer)
    return full[start:start + high]
