"""einsum and tensordot.  The backward of a contraction is a contraction: the gradient of one operand is the
einsum of the upstream gradient with the other operands, written to that operand's subscripts."""

from __future__ import annotations

import functools
import numbers
import string
from typing import NamedTuple

import numpy as np

from dlgpu.ops._core import array_module, binary_operands, make_result, open_grid, promoted_operands, to_tensor


class _Plan(NamedTuple):
    inputs: tuple  # each operand's subscripts, with '...' spelled out in letters the subscripts leave unused
    output: str
    sizes: dict  # label -> its size; an operand axis of size 1 broadcasts to it


@functools.lru_cache(maxsize=512)
def _plan(op, subscripts, shapes):
    """The subscripts of an einsum over operands of ``shapes`` in explicit form, checked for what numpy would
    refuse, so that the error names the operands' shapes.  Cached: a model calls it with the same shapes every
    step."""
    def fail(reason):
        return ValueError(f"{op}: subscripts {subscripts!r} do not fit operands of shapes {list(shapes)}: {reason}")

    spec = subscripts.replace(" ", "")
    lhs, arrow, rhs = spec.partition("->")
    terms = lhs.split(",")
    if len(terms) != len(shapes):
        raise fail(f"they name {len(terms)} operand(s), {len(shapes)} were given")
    split_terms = []
    for k, (term, shape) in enumerate(zip(terms, shapes)):
        before, ellipsis, after = term.partition("...")
        if not set(before + after) <= set(string.ascii_letters):
            raise fail(f"operand {k}'s subscripts {term!r} must be letters, with at most one '...'")
        named = len(before) + len(after)
        if (len(shape) != named) if not ellipsis else (len(shape) < named):
            raise fail(f"operand {k} has {len(shape)} axes, its subscripts {term!r} name {named}")
        split_terms.append((before, len(shape) - named, after))

    spare = sorted(set(string.ascii_letters) - set(spec))
    ellipsis_rank = max(rank for _, rank, _ in split_terms)
    if ellipsis_rank > len(spare):
        raise fail("too many axes under '...' for the 52 letters einsum has")
    ellipsis_labels = "".join(spare[:ellipsis_rank])
    # '...' axes align from the right, as in broadcasting
    inputs = tuple(before + ellipsis_labels[ellipsis_rank - rank:] + after for before, rank, after in split_terms)

    if arrow:
        output = rhs.replace("...", ellipsis_labels)
        if not set(output) <= set("".join(inputs)) or len(set(output)) != len(output):
            raise fail(f"the output {rhs!r} must name each input label at most once")
    else:  # numpy's implicit output: the '...' axes, then the labels used once, in alphabetical order
        named = lhs.replace(",", "").replace("...", "")
        output = ellipsis_labels + "".join(sorted(label for label in set(named) if named.count(label) == 1))

    sizes, seen_at = {}, {}
    for k, (labels, shape) in enumerate(zip(inputs, shapes)):
        within = {}
        for label, size in zip(labels, shape):
            if within.setdefault(label, size) != size:  # a diagonal needs equal axes: no broadcasting there
                raise fail(f"index {label!r} is repeated in operand {k} over axes of sizes {within[label]} and {size}")
            known = sizes.get(label, 1)
            if size != 1 and known not in (1, size):
                name = "an axis under '...'" if label in ellipsis_labels else f"index {label!r}"
                raise fail(f"{name} has size {known} in operand {seen_at[label]} but {size} in operand {k}")
            if size != 1 or label not in sizes:
                sizes[label], seen_at[label] = size, k
    return _Plan(inputs, output, sizes)


def _without_broadcast_axes(labels, array, sizes):
    """The operand with its size-1 axes that broadcast in the forward squeezed out, and its labels to match:
    with them gone every label has one size in the gradient's einsum."""
    keep = [i for i, (label, size) in enumerate(zip(labels, array.shape)) if size == sizes[label]]
    if len(keep) == len(labels):
        return labels, array
    return "".join(labels[i] for i in keep), array.reshape([array.shape[i] for i in keep])


def _operand_gradient(plan, k, g, arrays, xp):
    """d <g, einsum(...)> / d operand k."""
    terms, operands = [plan.output], [g]
    for j, (labels, array) in enumerate(zip(plan.inputs, arrays)):
        if j != k:
            labels, array = _without_broadcast_axes(labels, array, plan.sizes)
            terms.append(labels)
            operands.append(array)
    labels, shape = plan.inputs[k], arrays[k].shape
    broadcast = {label for label, size in zip(labels, shape) if size != plan.sizes[label]}
    distinct = "".join(dict.fromkeys(label for label in labels if label not in broadcast))
    reachable = set("".join(terms))
    kept = "".join(label for label in distinct if label in reachable)
    grad = xp.asarray(xp.einsum(",".join(terms) + "->" + kept, *operands, optimize=True))
    if kept != distinct:
        # A label that only operand k carries was summed over in k alone: the gradient is the same all along it.
        grad = xp.broadcast_to(grad.reshape([plan.sizes[label] if label in kept else 1 for label in distinct]),
                               [plan.sizes[label] for label in distinct])
    if len(set(labels)) == len(labels):
        return grad.reshape(shape)  # the broadcast axes come back with size 1
    # A repeated label ("ii->i" reads a diagonal) touches only the entries where its axes agree.
    full = xp.zeros(shape, grad.dtype)
    grids = dict(zip(distinct, open_grid(xp, grad.shape)))
    full[tuple(grids.get(label, 0) for label in labels)] = grad
    return full


def _contract(op, subscripts, tensors, options):
    arrays = [t.data for t in tensors]
    plan = _plan(op, subscripts, tuple(tuple(a.shape) for a in arrays))
    xp = array_module(arrays[0])
    # numpy's default, optimize=False, never calls BLAS: a matrix product through einsum ran 4x slower at 256x256.
    options = {"optimize": True, **options}
    out = xp.asarray(xp.einsum(subscripts, *arrays, **options))

    def backward(g):
        return tuple(_operand_gradient(plan, k, g, arrays, xp) if t._tracked else None for k, t in enumerate(tensors))
    return make_result(out, tuple(tensors), backward)


def einsum(subscripts, *operands, **kwargs):
    """keras.ops.einsum: numpy's einsum, '...' and implicit output included; kwargs (optimize) go to it.

    Differentiable in every operand, including broadcast axes, repeated labels (diagonals, traces) and labels
    summed over a single operand.
    """
    if not isinstance(subscripts, str):
        raise TypeError(f"einsum: subscripts must be a string such as 'ij,jk->ik'; received {subscripts!r}")
    if not operands:
        raise ValueError(f"einsum: subscripts {subscripts!r} need at least one operand; none were given")
    tensors = [to_tensor(x) for x in operands]
    if all(t.data.dtype == np.int8 for t in tensors):
        tensors = [to_tensor(t, "int32") for t in tensors]  # int8 products overflow; Keras (after JAX) gives int32
    return _contract("einsum", subscripts, promoted_operands("einsum", tensors), kwargs)


def _tensordot_axes(axes, shape1, shape2):
    """The contracted axes of x1 and x2 (non-negative), from numpy's two ways of saying them."""
    def fail(reason):
        return ValueError(f"tensordot: axes={axes!r} do not fit x1 of shape {shape1} and x2 of shape {shape2}: "
                          f"{reason}")

    def integer(value):
        return isinstance(value, numbers.Integral) and not isinstance(value, bool)

    if integer(axes):
        if not 0 <= axes <= min(len(shape1), len(shape2)):
            raise fail("an integer must lie between 0 and the smaller rank")
        pair = [tuple(range(len(shape1) - axes, len(shape1))), tuple(range(axes))]
    else:
        if isinstance(axes, str) or not hasattr(axes, "__len__") or len(axes) != 2:
            raise fail("expected an integer or a pair (axes of x1, axes of x2)")
        pair = []
        for given, shape in zip(axes, (shape1, shape2)):
            given = [given] if integer(given) else list(given)
            if not all(integer(a) and -len(shape) <= a < len(shape) for a in given):
                raise fail(f"axes must be integers from -{len(shape)} to {len(shape) - 1}; received {given}")
            given = tuple(a % len(shape) for a in given)
            if len(set(given)) != len(given):
                raise fail(f"an axis is repeated in {given}")
            pair.append(given)
    axes1, axes2 = pair
    if len(axes1) != len(axes2):
        raise fail(f"{len(axes1)} axes of x1 against {len(axes2)} of x2")
    sizes1, sizes2 = [shape1[a] for a in axes1], [shape2[a] for a in axes2]
    if sizes1 != sizes2:
        raise fail(f"the contracted axes have sizes {sizes1} in x1 and {sizes2} in x2")
    return axes1, axes2


def tensordot(x1, x2, axes=2):
    """keras.ops.tensordot, as an einsum (which gives it its gradient)."""
    a, b = binary_operands("tensordot", x1, x2)
    axes1, axes2 = _tensordot_axes(axes, a.shape, b.shape)
    if a.ndim + b.ndim > len(string.ascii_letters):
        raise ValueError(f"tensordot: x1 of shape {a.shape} and x2 of shape {b.shape} have more axes than the "
                         f"52 einsum can name")
    labels1 = string.ascii_letters[:a.ndim]
    labels2 = list(string.ascii_letters[a.ndim:a.ndim + b.ndim])
    for i, j in zip(axes1, axes2):
        labels2[j] = labels1[i]
    output = [label for i, label in enumerate(labels1) if i not in axes1]
    output += [label for j, label in enumerate(labels2) if j not in axes2]
    return _contract("tensordot", f"{labels1},{''.join(labels2)}->{''.join(output)}", [a, b], {})
