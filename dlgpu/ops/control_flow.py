"""keras.ops control flow, run eagerly: Python loops over the given functions, as Keras's numpy and torch
backends do.  Gradients flow through whatever ops the functions call; the loops themselves add none.

Nested structures (lists, tuples, dicts of tensors) are walked by the small tree helpers below.
"""

from __future__ import annotations

import numpy as np

from dlgpu.autograd import Tensor
from dlgpu.ops._core import to_tensor

__all__ = ["cond", "switch", "while_loop", "fori_loop", "scan", "map", "vectorized_map", "associative_scan"]


def _leaves(tree):
    if isinstance(tree, (list, tuple)):
        return [leaf for item in tree for leaf in _leaves(item)]
    if isinstance(tree, dict):
        return [leaf for key in sorted(tree) for leaf in _leaves(tree[key])]
    return [] if tree is None else [tree]


def _rebuild(tree, leaves):
    """``tree``'s structure with its leaves taken in order from the iterator ``leaves``."""
    if isinstance(tree, (list, tuple)):
        items = [_rebuild(item, leaves) for item in tree]
        return type(tree)(*items) if hasattr(tree, "_fields") else type(tree)(items)
    if isinstance(tree, dict):
        return {key: _rebuild(tree[key], leaves) for key in sorted(tree)}
    return None if tree is None else next(leaves)


def _map(fn, tree):
    return _rebuild(tree, iter([fn(leaf) for leaf in _leaves(tree)]))


def _truth(op, value):
    """A Python bool from a Python value or a one-element tensor (a device scalar is read back once)."""
    if isinstance(value, Tensor):
        if value.size != 1:
            raise ValueError(f"{op}: the predicate must be a single value; received shape {value.shape}")
        return bool(value.data.reshape(()).item())
    return bool(value)


def cond(pred, true_fn, false_fn):
    return true_fn() if _truth("cond", pred) else false_fn()


def switch(index, branches, *operands):
    """branches[index](*operands), index clipped into range as Keras does."""
    if not branches:
        raise ValueError("switch: branches must not be empty")
    i = int(index.data.reshape(()).item()) if isinstance(index, Tensor) else int(index)
    return branches[min(max(i, 0), len(branches) - 1)](*operands)


def while_loop(cond, body, loop_vars, maximum_iterations=None):  # noqa: A002 - keras.ops signature
    packed = isinstance(loop_vars, (list, tuple))
    state = tuple(loop_vars) if packed else (loop_vars,)
    steps = 0
    while (maximum_iterations is None or steps < maximum_iterations) and _truth("while_loop", cond(*state)):
        state = body(*state)
        state = tuple(state) if isinstance(state, (list, tuple)) else (state,)
        steps += 1
    return state if packed else state[0]


def fori_loop(lower, upper, body_fun, init_val):
    value = init_val
    for i in range(int(lower), int(upper)):
        value = body_fun(i, value)
    return value


def _length(op, leaves, length):
    sizes = {int(leaf.shape[0]) for leaf in leaves}
    if length is not None:
        sizes.add(int(length))
    if len(sizes) > 1:
        raise ValueError(f"{op}: the leading axes of the inputs (and length) differ: {sorted(sizes)}")
    if not sizes:
        raise ValueError(f"{op}: needs xs or length")
    return sizes.pop()


def _stack_outputs(outputs):
    """A list of same-structured outputs as one structure of stacked tensors."""
    from dlgpu.ops.shape import stack
    if not outputs:
        return None
    per_leaf = zip(*[_leaves(out) for out in outputs])
    return _rebuild(outputs[0], iter([stack([to_tensor(v) for v in values]) for values in per_leaf]))


def _slices(xs, op, length=None):
    """The i-th slices of every leaf of ``xs`` (a structure), as a list of structures."""
    from dlgpu.ops.shape import unstack
    leaves = [to_tensor(leaf) for leaf in _leaves(xs)]
    n = _length(op, leaves, length)
    pieces = [unstack(leaf, axis=0) for leaf in leaves]
    return [_rebuild(xs, iter([p[i] for p in pieces])) for i in range(n)]


def scan(f, init, xs=None, length=None, reverse=False, unroll=1):
    """carry, y = f(carry, x) over the leading axis of xs; returns the last carry and the stacked ys."""
    if not callable(f):
        raise TypeError(f"scan: f must be callable; received {type(f).__name__}")
    if not isinstance(unroll, (bool, int, np.integer)) or (not isinstance(unroll, bool) and unroll < 1):
        raise ValueError(f"scan: unroll must be a positive integer or a bool; received {unroll!r}")
    if xs is None:
        if length is None:
            raise ValueError("scan: needs xs or length")
        steps = [None] * int(length)
    else:
        steps = _slices(xs, "scan", length)
    if reverse:
        steps = steps[::-1]
    carry, ys = init, []
    for x in steps:
        carry, y = f(carry, x)
        ys.append(y)
    if reverse:
        ys = ys[::-1]
    if not ys or all(y is None for y in ys):
        return carry, None
    return carry, _stack_outputs(ys)


def map(f, xs):  # noqa: A001 - keras.ops name
    return _stack_outputs([f(x) for x in _slices(xs, "map")])


def vectorized_map(function, elements):
    """function over the leading axis of elements, one slice at a time; a list or tuple of tensors is
    sliced together and passed as a list, as Keras does."""
    if isinstance(elements, (list, tuple)):
        return _stack_outputs([function(list(piece)) for piece in _slices(list(elements), "vectorized_map")])
    return _stack_outputs([function(piece) for piece in _slices(elements, "vectorized_map")])


def associative_scan(f, elems, reverse=False, axis=0):
    """Inclusive scan of the associative f along ``axis`` (sequentially: the result is the same)."""
    from dlgpu.ops.shape import moveaxis
    leaves = [to_tensor(leaf) for leaf in _leaves(elems)]
    if not leaves:
        raise ValueError("associative_scan: elems is empty")
    moved = _rebuild(elems, iter([moveaxis(leaf, axis, 0) for leaf in leaves]))
    steps = _slices(moved, "associative_scan")
    if reverse:
        steps = steps[::-1]
    out, acc = [], None
    for x in steps:
        acc = x if acc is None else (f(x, acc) if reverse else f(acc, x))
        out.append(acc)
    if reverse:
        out = out[::-1]
    stacked = _stack_outputs(out)
    return _map(lambda t: moveaxis(t, 0, axis), stacked)
