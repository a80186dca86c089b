"""sort, argsort and top_k.  Sorting permutes values, so a gradient goes back through the permutation:
sort and top_k are take_along_axis with the sorting indices, and take its backward."""

from __future__ import annotations

import numbers

import numpy as np

from dlgpu.autograd import is_recording
from dlgpu.ops._core import array_module, make_result, to_tensor
from dlgpu.ops.shape import reshape, take_along_axis


def _sort_axis(op, x, axis):
    if not -x.ndim <= axis < x.ndim:
        raise ValueError(f"{op}: axis {axis} is out of range for x of shape {x.shape} (rank {x.ndim})")
    return axis % x.ndim


def _stable_argsort(data, axis):
    # stable, so ties keep their order and the result is the same on numpy and CuPy (whose sort is stable)
    return array_module(data).argsort(data, axis=axis, kind="stable")


def sort(x, axis=-1):
    """keras.ops.sort: ascending along ``axis`` (None: the flattened tensor)."""
    x = to_tensor(x)
    if axis is None:
        return sort(reshape(x, (-1,)), 0)
    axis = _sort_axis("sort", x, axis)
    if not (x._tracked and is_recording()):  # no backward, so no permutation to keep
        return make_result(array_module(x.data).sort(x.data, axis=axis), (x,), None)
    return take_along_axis(x, _stable_argsort(x.data, axis), axis)


def argsort(x, axis=-1):
    """keras.ops.argsort: int32 indices that sort ``x`` along ``axis`` (None: the flattened tensor); ties keep
    their order."""
    x = to_tensor(x)
    if axis is None:
        x, axis = reshape(x, (-1,)), 0
    axis = _sort_axis("argsort", x, axis)
    return make_result(_stable_argsort(x.data, axis).astype(np.int32), (x,), lambda g: (None,))


def top_k(x, k, sorted=True, is_stable=True):  # noqa: A002 - keras.ops signature
    """keras.ops.top_k: the ``k`` largest entries along the last axis and their int32 indices, as
    ``(values, indices)``.  The values come in descending order with ties by index, whatever ``sorted`` and
    ``is_stable`` say (Keras allows any order when sorted=False)."""
    x = to_tensor(x)
    if x.ndim == 0:
        raise ValueError(f"top_k: x must have at least one axis (top_k works along the last); received shape {x.shape}")
    n = x.shape[-1]
    if isinstance(k, bool) or not isinstance(k, numbers.Integral) or not 0 <= k <= n:
        raise ValueError(f"top_k: k must be an integer from 0 to {n}, the size of the last axis of x (shape "
                         f"{x.shape}); received k={k!r}")
    xp = array_module(x.data)
    # Descending with ties by index: a stable ascending sort of the reversed axis, read from its end.
    reversed_order = _stable_argsort(xp.flip(x.data, -1), -1)[..., ::-1][..., :k]
    indices = (n - 1 - reversed_order).astype(np.int32)
    return take_along_axis(x, indices, -1), make_result(indices, (x,), lambda g: (None,))


def unique(x, sorted=True, return_index=False, return_inverse=False, return_counts=False, axis=None,  # noqa: A002
           size=None, fill_value=None):
    """keras.ops.unique: the distinct values (rows along ``axis``) in ascending order, and optionally the first
    index of each, the inverse that rebuilds x, and the counts, in that order (int32, as argsort's).  The
    number of values depends on the data, so a functional graph can use it only with ``size``: then the
    values are cut or padded to ``size`` with ``fill_value`` (0), the counts with 0 and the indices with 1, as
    Keras's.  ``sorted=False`` is accepted and still sorts (Keras's numpy backend does the same)."""
    x = to_tensor(x)
    xp = array_module(x.data)
    if axis is not None:
        axis = _sort_axis("unique", x, axis)
    found = xp.unique(x.data, return_index=True, return_inverse=True, return_counts=True, axis=axis)
    values, first, inverse, counts = found
    if axis is None:
        inverse = inverse.reshape(x.data.shape)
    else:
        inverse = inverse.reshape(-1)
    dim = 0 if axis is None else axis
    if size is not None:
        size = int(size)
        have = values.shape[dim]
        if have >= size:
            values = xp.take(values, xp.arange(size), axis=dim)
            first, counts = first[:size], counts[:size]
        else:
            widths = [(0, 0)] * values.ndim
            widths[dim] = (0, size - have)
            values = xp.pad(values, widths, constant_values=0 if fill_value is None else fill_value)
            first = xp.pad(first, (0, size - have), constant_values=1)
            counts = xp.pad(counts, (0, size - have), constant_values=0)
    outputs = [values.astype(x.data.dtype)]
    if return_index:
        outputs.append(first)
    if return_inverse:
        outputs.append(inverse)
    if return_counts:
        outputs.append(counts)
    outputs = [outputs[0]] + [o.astype(np.int32) for o in outputs[1:]]
    results = tuple(make_result(o, (x,), lambda g: (None,)) for o in outputs)
    return results[0] if len(results) == 1 else results
