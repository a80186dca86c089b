"""What every op needs: tensor conversion, device checks, broadcasting-aware gradients."""

from __future__ import annotations

import numbers

import numpy as np

from dlgpu.autograd import Tensor, make_result
from dlgpu.backend import device as _device

__all__ = ["Tensor", "make_result", "to_tensor", "binary_operands", "array_module", "backend_of",
           "unbroadcast", "normalize_axis", "same_device"]

_cupy = None


def array_module(array):
    """numpy or cupy, whichever owns ``array``."""
    if isinstance(array, (np.ndarray, np.generic)):
        return np
    global _cupy
    if _cupy is None:
        import cupy as _cupy_module
        _cupy = _cupy_module
    return _cupy


def backend_of(array):
    """The primitive module (dlgpu.backend.cpu or .gpu) for an array."""
    if isinstance(array, (np.ndarray, np.generic)):
        from dlgpu.backend import cpu
        return cpu
    from dlgpu.backend import gpu
    return gpu


def to_tensor(x, dtype=None):
    """A Tensor from a Tensor, array or nested list; arrays stay on their device."""
    if isinstance(x, Tensor):
        if dtype is not None and x.dtype != np.dtype(dtype).name:
            from dlgpu.ops.math import cast
            return cast(x, dtype)
        return x
    return Tensor(x, dtype=dtype)


def _device_mismatch(op, a, b):
    return _device.DeviceError(
        f"{op}: operands live on different devices: {a.device} (shape {a.shape}, {a.dtype}) and "
        f"{b.device} (shape {b.shape}, {b.dtype}). dlgpu never copies between devices silently; "
        f"move one explicitly, e.g. dlgpu.to_device(x, '{a.device}').")


def same_device(op, *tensors):
    first = tensors[0]
    host = isinstance(first.data, (np.ndarray, np.generic))  # a numpy scalar is host data too
    for t in tensors[1:]:
        if isinstance(t.data, (np.ndarray, np.generic)):
            if not host:
                raise _device_mismatch(op, first, t)
        elif host or type(t.data) is not type(first.data) or t.data.device != first.data.device:
            raise _device_mismatch(op, first, t)


def binary_operands(op, a, b):
    """Two Tensors on one device.  A Python or numpy scalar adopts the other operand's dtype."""
    if isinstance(a, Tensor) and isinstance(b, Tensor):
        same_device(op, a, b)
        return a, b
    if isinstance(a, Tensor):
        return a, _constant_like(b, a)
    if isinstance(b, Tensor):
        return _constant_like(a, b), b
    return to_tensor(a), to_tensor(b)


def _constant_like(value, like):
    if isinstance(value, (numbers.Number, np.generic)):
        dtype = like.data.dtype
        if isinstance(value, float) and dtype.kind in "iub":
            dtype = np.dtype(np.float32)
        return Tensor(array_module(like.data).asarray(value, dtype=dtype))
    t = to_tensor(value)
    same_device("binary op", like, t)
    return t


def unbroadcast(grad, shape):
    """Sum ``grad`` over the axes that broadcasting expanded to produce it from ``shape``."""
    if grad.shape == shape:
        return grad
    lead = grad.ndim - len(shape)
    axes = tuple(range(lead)) + tuple(lead + i for i, s in enumerate(shape) if s == 1 and grad.shape[lead + i] != 1)
    if axes:
        grad = grad.sum(axis=axes, keepdims=True)
    return grad.reshape(shape)


def normalize_axis(axis, ndim):
    if axis is None:
        return tuple(range(ndim))
    axes = (axis,) if isinstance(axis, numbers.Integral) else tuple(axis)
    out = []
    for ax in axes:
        if not -ndim <= ax < ndim:
            raise ValueError(f"axis {ax} is out of range for a tensor of rank {ndim}")
        out.append(ax % ndim)
    return tuple(out)
