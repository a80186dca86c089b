"""What every op needs: tensor conversion, device checks, broadcasting-aware gradients."""

from __future__ import annotations

import functools
import numbers

import numpy as np

from dlgpu.autograd import FLOATX, Tensor, _constant as constant, make_result
from dlgpu.autograd import autocast_active as _autocast_active, autocast_state as _autocast_state, autocast_variable
from dlgpu.backend import device as _device

__all__ = ["Tensor", "make_result", "to_tensor", "binary_operands", "promoted_operands", "float_operand", "result_type",
           "array_module", "backend_of", "unbroadcast", "unbroadcast_graph", "constant", "normalize_axis", "same_device", "open_grid",
           "linear_vjp", "linear_result", "recompute_vjp"]

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
        if _autocast_active[0] and _autocast_state.dtype is not None:
            x = autocast_variable(x, _autocast_state.dtype)
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


# Keras 3's type promotion lattice (keras/src/backend/common/dtypes.py, adapted from JAX): each dtype
# names the dtypes just above it.  "int" and "float" are the weak types of Python scalars: a kind without
# a width, so a scalar never widens a tensor of its kind (int8 + 1 is int8, float16 * 0.5 is float16).
_LATTICE = {
    "bool": ("int",),
    "int": ("uint8", "int8", "complex64"),
    "uint8": ("int16", "uint16"), "uint16": ("int32", "uint32"), "uint32": ("int64", "uint64"), "uint64": ("float",),
    "int8": ("int16",), "int16": ("int32",), "int32": ("int64",), "int64": ("float",),
    "float": ("float16",), "float16": ("float32",), "float32": ("float64", "complex64"),
    "float64": ("complex128",), "complex64": ("complex128",), "complex128": (),
}


def _upper_bounds(node):
    bounds = {node}
    for above in _LATTICE[node]:
        bounds |= _upper_bounds(above)
    return frozenset(bounds)


_UPPER_BOUNDS = {node: _upper_bounds(node) for node in _LATTICE}
_FLOATX = np.dtype(FLOATX)
# A weak type that ends up as the result takes the default width (Keras resolves it by floatx).
_WEAK_RESOLVED = {"int": np.dtype(np.int32), "float": _FLOATX}
_result_types = {}


def result_type(a, b):
    """The dtype Keras 3 gives an op on operands of dtypes ``a`` and ``b`` (numpy dtypes, or "int" and "float"
    for Python scalars): int32 + float32 is float32 and int64 * 0.5 is floatx, where numpy says float64."""
    key = (a, b)
    dtype = _result_types.get(key)
    if dtype is None:
        nodes = [n if isinstance(n, str) else n.name for n in key]
        if not all(n in _LATTICE for n in nodes):
            raise TypeError(f"no implicit dtype promotion for {nodes[0]} and {nodes[1]}; cast one operand "
                            f"explicitly, e.g. ops.cast(x, 'float32').")
        common = _UPPER_BOUNDS[nodes[0]] & _UPPER_BOUNDS[nodes[1]]
        least = next(n for n in common if common <= _UPPER_BOUNDS[n])
        dtype = _result_types[key] = _WEAK_RESOLVED[least] if least in _WEAK_RESOLVED else np.dtype(least)
    return dtype


_PYTHON_SCALAR_KINDS = {float: "float", int: "int", bool: "bool"}
_NUMPY_SCALAR_KINDS = {"f": "float", "i": "int", "u": "int", "b": "bool"}
_BOOL = np.dtype(bool)


def _scalar_kind(value):
    """"int" or "float" for a Python or numpy number (weak: it adapts to the tensor it meets), "bool" for a
    boolean, None for anything else (arrays, lists)."""
    kind = _PYTHON_SCALAR_KINDS.get(type(value))
    if kind is None and isinstance(value, np.generic):
        # numpy scalars count as weak too, so that x * np.float64(2) stays float32 (dlgpu's rule; Keras
        # treats only np.float64, a subclass of float, that way).
        kind = _NUMPY_SCALAR_KINDS.get(value.dtype.kind)
    return kind


def _cast(t, dtype):
    if t.data.dtype == dtype:
        return t
    from dlgpu.ops.math import cast
    return cast(t, dtype)


def binary_operands(op, a, b):
    """Two Tensors on one device, both of the dtype Keras 3 promotes their dtypes to.

    Casts are recorded ops, so a gradient flows back to each operand in that operand's own dtype.
    """
    if _autocast_active[0] and _autocast_state.dtype is not None:
        a, b = _autocast(a), _autocast(b)
    if isinstance(a, Tensor) and isinstance(b, Tensor):
        same_device(op, a, b)
        if a.data.dtype is b.data.dtype:
            return a, b
        dtype = result_type(a.data.dtype, b.data.dtype)
        return _cast(a, dtype), _cast(b, dtype)
    if isinstance(a, Tensor):
        return _with_operand(op, a, b)
    if isinstance(b, Tensor):
        b, a = _with_operand(op, b, a)
        return a, b
    if _scalar_kind(b) is not None:  # e.g. ops.add(np.ones(2), 1): the array decides, the scalar adapts
        return _with_operand(op, to_tensor(a), b)
    b, a = _with_operand(op, to_tensor(b), a)
    return a, b


def _autocast(x):
    return autocast_variable(x, _autocast_state.dtype) if isinstance(x, Tensor) else x


def promoted_operands(op, values):
    """Tensors on one device, all of the dtype Keras 3 promotes their dtypes to: binary_operands for ops
    that take any number of operands (einsum).  Each value counts as a tensor, Python scalars too."""
    tensors = [to_tensor(v) for v in values]
    same_device(op, *tensors)
    dtype = functools.reduce(result_type, (t.data.dtype for t in tensors))
    return [_cast(t, dtype) for t in tensors]


def _with_operand(op, t, value):
    """``t`` and ``value`` (not a Tensor) as two Tensors of their promoted dtype."""
    kind = _scalar_kind(value)
    if kind is None:
        other = to_tensor(value)
        same_device(op, t, other)
        dtype = result_type(t.data.dtype, other.data.dtype)
        return _cast(t, dtype), _cast(other, dtype)
    dtype = t.data.dtype
    if dtype.kind != "f":  # a scalar never widens a float tensor: skip the lookup on the training path
        dtype = result_type(dtype, _BOOL if kind == "bool" else kind)
        t = _cast(t, dtype)
    # make_result, not Tensor(): that would turn a float64 constant into float32, and costs twice as much
    return t, make_result(array_module(t.data).asarray(value, dtype=dtype), (), None)


def float_operand(x):
    """``x`` as a Tensor that a float-valued op (sqrt, exp, sigmoid, softmax…) computes in: bool and integer
    tensors become floatx, as in Keras; float16, float32 and float64 stay as they are."""
    x = to_tensor(x)
    return _cast(x, _FLOATX) if x.data.dtype.kind in "biu" else x


def unbroadcast(grad, shape):
    """Sum ``grad`` over the axes that broadcasting expanded to produce it from ``shape``."""
    if grad.shape == shape:
        return grad
    lead = grad.ndim - len(shape)
    axes = tuple(range(lead)) + tuple(lead + i for i, s in enumerate(shape) if s == 1 and grad.shape[lead + i] != 1)
    if axes:
        grad = grad.sum(axis=axes, keepdims=True)
    return grad.reshape(shape)


def unbroadcast_graph(g, shape):
    """unbroadcast for a gradient Tensor, with recorded ops (the vjps of higher-order gradients)."""
    if g.data.shape == shape:
        return g
    from dlgpu.ops.reduce import sum as sum_
    from dlgpu.ops.shape import reshape
    lead = g.ndim - len(shape)
    axes = tuple(range(lead)) + tuple(lead + i for i, s in enumerate(shape) if s == 1 and g.data.shape[lead + i] != 1)
    if axes:
        g = sum_(g, axis=axes, keepdims=True)
    return reshape(g, shape)


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


def open_grid(xp, shape):
    """One index array per axis of ``shape``, each shaped to broadcast against the others:
    ``numpy.indices(shape, sparse=True)``, which CuPy does not have."""
    return [xp.arange(n).reshape((1,) * i + (n,) + (1,) * (len(shape) - i - 1)) for i, n in enumerate(shape)]


# Higher-order gradients of ops that are linear in their one operand (pooling, tile, take_along_axis...):
# the vjp applies the op's transpose to the upstream Tensor as a recorded op whose own vjp is the op
# again, so any order of derivative runs the fast primitives.  Recording stores only the tuple
# (linear_vjp, fn, adjoint, *args); the functions are module-level and nothing else is built per call.
def linear_vjp(out, g, fn, adjoint, *args):
    """The vjp of ``out = fn(x, *args)`` for ``fn`` linear in x, ``adjoint(g, *args)`` its transpose."""
    return (linear_result(g, adjoint, fn, args),)


def linear_result(t, fn, adjoint, args):
    """``fn(t.data, *args)`` recorded with ``adjoint`` as its backward and the pair swapped as its vjp."""
    return make_result(fn(t.data, *args), (t,), lambda h: (adjoint(h, *args),), (linear_vjp, fn, adjoint) + tuple(args))


def recompute_vjp(out, g, graph_forward, *args):
    """The vjp of an op with a fused primitive: ``graph_forward(*parents, *args)`` recomputes its value with
    recorded ops, and the reverse sweep through them gives the gradients as Tensors."""
    from dlgpu.autograd import backward_graph
    parents = out._parents
    grads = backward_graph([graph_forward(*parents, *args)], [g], parents)
    return tuple(grads.get(id(p)) for p in parents)
