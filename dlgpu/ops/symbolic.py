"""keras.ops on symbolic tensors: an op given a KerasTensor (from dlgpu.Input) records a graph node.

As Keras's Operation.__call__ -> symbolic_call: every public function of dlgpu.ops is wrapped once, at import,
by :func:`wrap`.  The wrapper calls the op first (the eager path pays one try frame); only when that fails and
an argument (or an entry of a list/tuple argument, as concatenate/stack take) is a KerasTensor does it make an
:class:`dlgpu.layers.op_node.OpLayer` node instead, which a functional model runs on the real tensors later.

Output shapes and dtypes come from running the op itself on small dummy arrays of the symbolic shapes (the op's
own code is its compute_output_spec): once with each None axis as 2 and once as 3, so an output axis whose size
follows a None axis stays None and the others are known; a third run with other dummy values catches ops whose
output shape depends on values (nonzero, x[mask], arange(n)), which a graph node cannot describe.
"""

from __future__ import annotations

import functools
import types

import numpy as np

from dlgpu.autograd import Tensor, no_grad

# name -> the undecorated op, for OpLayer (running a node, and finding its op again when a model is loaded)
RAW_OPS = {}


class _NoKerasTensor:  # replaced by layers.base.KerasTensor once that module is imported
    pass


KerasTensor = _NoKerasTensor


def register_keras_tensor(cls):
    global KerasTensor
    KerasTensor = cls


# Ops whose result's shape comes from values, not shapes: refused on symbolic inputs with this reason.
_REFUSED = {
    "nonzero": "its output's length is the number of nonzero values",
    "convert_to_numpy": "a symbolic tensor has no values yet",
}


# Ops whose result's shape comes from values unless an argument (name, position) fixes it.
_REFUSED_WITHOUT = {
    "unique": ("size", 6, "the number of distinct values depends on the data; pass size= to fix it"),
}


# Ops whose dummy run cannot work (a perspective transform of the dummy points solves a singular system):
# name -> fn(*args, **kwargs) giving the output's (shape, dtype) from the arguments' shapes, as a Keras
# Operation's compute_output_spec does.  Registered by the op's module.
OUTPUT_SPECS = {}


# Questions about a KerasTensor that its own attributes answer
_ATTRIBUTES = ("shape", "ndim", "dtype")


def _has_symbolic(obj):
    """Whether a KerasTensor is anywhere in ``obj`` (lists, tuples, dicts)."""
    if isinstance(obj, KerasTensor):
        return True
    if isinstance(obj, (list, tuple)):
        return any(_has_symbolic(o) for o in obj)
    if isinstance(obj, dict):
        return any(_has_symbolic(o) for o in obj.values())
    return False


def wrap(name, fn):
    """``fn`` (a dlgpu op) that also takes KerasTensors, registered under its public ``name``."""
    RAW_OPS.setdefault(name, fn)

    @functools.wraps(fn)
    def op(*args, **kwargs):
        # The eager call comes first and costs one try frame: an op given a KerasTensor fails (a KerasTensor
        # cannot become an array), and only then are the arguments searched.  A few ops answer a KerasTensor
        # without failing (shape, ndim, dtype: its own attributes, as Keras), which is right as it is.
        try:
            return fn(*args, **kwargs)
        except Exception:
            if _has_symbolic([args, kwargs]):
                return symbolic_call(name, args, kwargs)
            raise
    op._dlgpu_op = name
    return op


def reflected_operator(fn, swap=False):
    """A Tensor operator (Tensor.__mul__ = ...) that hands a KerasTensor operand to the symbolic op: Python
    tries KerasTensor.__rmul__ only when Tensor.__mul__ returns NotImplemented.  The check costs nothing on
    the eager path, where the op succeeds."""
    def operator(self, other):
        try:
            return fn(other, self) if swap else fn(self, other)
        except Exception:
            if isinstance(other, KerasTensor):
                return NotImplemented
            raise
    return operator


def wrap_namespace(namespace, prefix="", skip=()):
    """Wrap every public function in ``namespace`` (a module's globals or a dict) in place."""
    wrapped = {}  # an alias (hard_swish = hard_silu) stays the same function
    for key, value in list(namespace.items()):
        if key.startswith("_") or key in skip or not isinstance(value, types.FunctionType):
            continue
        if getattr(value, "_dlgpu_op", None) is not None:  # already wrapped (linalg.norm is reduce's norm)
            continue
        if id(value) not in wrapped:
            wrapped[id(value)] = wrap(prefix + key, value)
        else:
            RAW_OPS.setdefault(prefix + key, value)
        namespace[key] = wrapped[id(value)]


# -- symbolic calls ---------------------------------------------------------------------------------------

def symbolic_call(name, args, kwargs):
    """A KerasTensor (or structure of them) for ``ops.<name>(*args, **kwargs)``: a new OpLayer's node."""
    if name in _ATTRIBUTES and len(args) == 1 and not kwargs and isinstance(args[0], KerasTensor):
        return getattr(args[0], name)  # as Keras: ops.shape(x) is x.shape, None for the unknown batch
    if name in _REFUSED:
        raise NotImplementedError(f"ops.{name} cannot take a symbolic tensor (KerasTensor) in a functional "
                                  f"graph: {_REFUSED[name]}; call it inside a layer's call() instead.")
    if name in _REFUSED_WITHOUT:
        argument, position, reason = _REFUSED_WITHOUT[name]
        if kwargs.get(argument, args[position] if len(args) > position else None) is None:
            raise NotImplementedError(f"ops.{name} cannot take a symbolic tensor (KerasTensor) in a functional "
                                      f"graph without `{argument}`: {reason}.")
    from dlgpu.layers.op_node import OpLayer
    return OpLayer(name)(list(args), **kwargs)


def _map(fn, obj):
    if isinstance(obj, list):
        return [_map(fn, o) for o in obj]
    if isinstance(obj, tuple):
        return tuple(_map(fn, o) for o in obj)
    if isinstance(obj, dict):
        return {k: _map(fn, v) for k, v in obj.items()}
    return fn(obj)


def _leaves(obj):
    if isinstance(obj, (list, tuple)):
        return [leaf for o in obj for leaf in _leaves(o)]
    if isinstance(obj, dict):
        return [leaf for o in obj.values() for leaf in _leaves(o)]
    return [obj]


def describe(value):
    """An argument as an error message shows it: shapes and dtypes for tensors."""
    if isinstance(value, KerasTensor):
        return f"KerasTensor(shape={value.shape}, dtype={value.dtype})"
    if isinstance(value, (Tensor, np.ndarray)):
        return f"{type(value).__name__}(shape={tuple(value.shape)}, dtype={value.dtype})"
    if isinstance(value, list):
        return "[" + ", ".join(describe(v) for v in value) + "]"
    if isinstance(value, tuple):
        return "(" + ", ".join(describe(v) for v in value) + ("," if len(value) == 1 else "") + ")"
    return repr(value)


def describe_call(name, args, kwargs):
    parts = [describe(a) for a in args] + [f"{k}={describe(v)}" for k, v in kwargs.items()]
    return f"ops.{name}({', '.join(parts)})"


def _dummy_array(kt, size, alternative, substitutes):
    shape = tuple(substitutes.get((id(kt), i), size) if s is None else s for i, s in enumerate(kt.shape))
    dtype = np.dtype(kt.dtype)
    if dtype.kind == "f" or dtype.kind == "c":
        if alternative:
            return np.zeros(shape, dtype)
        if len(shape) >= 2 and shape[-1] == shape[-2]:
            # square matrices: 2 * identity, so that inv, solve and cholesky have something to work on
            return np.broadcast_to(2 * np.eye(shape[-1], dtype=dtype), shape).copy()
        return np.ones(shape, dtype)
    if dtype.kind == "b":
        return np.full(shape, not alternative, dtype)
    # integers: 0 is a valid index along any axis, 1 the alternative
    return np.full(shape, 1 if alternative else 0, dtype)


def _broadcast_substitutes(kts, leaves):
    """For ops that broadcast: a None axis lined up (from the right) against a known size other than 1 in
    another operand takes that size, as Keras's broadcast_shapes reads None against n as n."""
    shapes = [tuple(leaf.shape) for leaf in leaves
              if isinstance(leaf, (KerasTensor, Tensor, np.ndarray)) and getattr(leaf, "shape", None) is not None]
    substitutes = {}
    for kt in kts:
        for i, s in enumerate(kt.shape):
            if s is not None:
                continue
            from_right = len(kt.shape) - i
            for shape in shapes:
                if len(shape) >= from_right:
                    other = shape[len(shape) - from_right]
                    if other is not None and other != 1:
                        substitutes[(id(kt), i)] = other
                        break
    return substitutes


def infer_outputs(name, fn, args, kwargs):
    """The structure the op returns with each Tensor replaced by its OutputSpec; raises the op's
    error, naming the op and the argument shapes, when the op cannot take these shapes."""
    if name in OUTPUT_SPECS:
        try:
            shape, dtype = OUTPUT_SPECS[name](*args, **kwargs)
        except Exception as error:
            _raise_for(name, args, kwargs, error)
        return OutputSpec(tuple(shape), str(dtype))
    leaves = _leaves([args, kwargs])
    kts = [leaf for leaf in leaves if isinstance(leaf, KerasTensor)]
    for kt in kts:
        if kt.dtype == "string":
            raise TypeError(f"{describe_call(name, args, kwargs)}: string tensors only feed host-side layers "
                            f"(TextVectorization, StringLookup, Hashing), not ops.")
    device = next((leaf.device for leaf in leaves if isinstance(leaf, Tensor)), None)

    def run(size, alternative=False, substitutes=None):
        substitutes = substitutes or {}

        def dummy(value):
            if not isinstance(value, KerasTensor):
                return value
            array = _dummy_array(value, size, alternative, substitutes)
            if device is not None:
                from dlgpu.backend import device as _device
                array = _device.to_device(array, device)
            return Tensor(array, dtype=array.dtype)
        with no_grad(), np.errstate(all="ignore"):
            return fn(*_map(dummy, list(args)), **_map(dummy, kwargs))

    substitutes = {}
    try:
        first = run(2)
    except Exception as error:
        substitutes = _broadcast_substitutes(kts, leaves)
        try:
            if not substitutes:
                raise
            first = run(2, substitutes=substitutes)
        except Exception:
            _raise_for(name, args, kwargs, error)
    if not kts or all(None not in kt.shape for kt in kts):
        second = first
    else:
        second = None
        for size in (3, 4, 5):
            try:
                second = run(size, substitutes=substitutes)
                break
            except Exception:
                continue
        if second is None:
            second = first
    try:
        other_values = run(2, alternative=True, substitutes=substitutes)
    except Exception:
        other_values = None
    first_leaves = _leaves(first)
    for leaf in first_leaves:
        if isinstance(leaf, KerasTensor):
            raise NotImplementedError(
                f"{describe_call(name, args, kwargs)}: a function given to the op used a symbolic tensor "
                f"(KerasTensor) it did not receive as an argument; the graph cannot see that input.  Pass the "
                f"tensors to the op (ops.vectorized_map(fn, x)), or compute this in a layer's call().")
        if not isinstance(leaf, Tensor):
            raise NotImplementedError(f"{describe_call(name, args, kwargs)}: the op returns {type(leaf).__name__}, "
                                      f"not a tensor, so it cannot be a node of a functional graph; call it "
                                      f"inside a layer's call() instead.")
    if other_values is not None:
        if [leaf.shape for leaf in first_leaves] != [getattr(leaf, "shape", None) for leaf in _leaves(other_values)]:
            raise NotImplementedError(
                f"{describe_call(name, args, kwargs)}: the shape of the result depends on the values of the "
                f"symbolic input(s), not only on their shapes, so it cannot be a node of a functional graph; "
                f"call it inside a layer's call() instead.")
    second_leaves = _leaves(second)
    specs = []
    for a, b in zip(first_leaves, second_leaves):
        if a.ndim != b.ndim:
            raise NotImplementedError(f"{describe_call(name, args, kwargs)}: the rank of the result depends on "
                                      f"the unknown (None) sizes of the inputs.")
        specs.append(OutputSpec(tuple(x if x == y else None for x, y in zip(a.shape, b.shape)), a.dtype))
    spec_iter = iter(specs)
    return _map(lambda leaf: next(spec_iter), first)


class OutputSpec:
    """The shape (None where unknown) and dtype of one output of a symbolic op."""

    def __init__(self, shape, dtype):
        self.shape = shape
        self.dtype = dtype


_KEPT_ERRORS = (ValueError, TypeError, IndexError, NotImplementedError)


def _raise_for(name, args, kwargs, error):
    message = f"{describe_call(name, args, kwargs)} is invalid for these shapes: {error}"
    cls = type(error) if isinstance(error, _KEPT_ERRORS) else ValueError
    try:
        new = cls(message)
    except Exception:
        new = ValueError(message)
    raise new from error
