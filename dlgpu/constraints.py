"""Weight constraints (Keras 3): ``MaxNorm``, ``MinMaxNorm``, ``NonNeg``, ``UnitNorm``.

``constraint(w)`` returns the projection of ``w`` (e.g. its columns rescaled to a norm of at most
``max_value``); the optimizer assigns it back to every constrained variable after each update, as Keras does.
The built-in constraints compute on the array module of ``w`` (numpy or CuPy), in its dtype.
"""

from __future__ import annotations

import inspect
import numbers

from dlgpu.autograd import Tensor
from dlgpu.ops._core import array_module
from dlgpu.utils import deserialize_by_class_name, unknown_name_error

EPSILON = 1e-7  # keras.backend.epsilon(): a zero-norm column stays zero instead of becoming NaN


def _array(w):
    return w.data if isinstance(w, Tensor) else w


def _axis(name, axis):
    """Keras takes an int or a list of ints; a list is kept as a tuple for numpy and as a list in the config."""
    if isinstance(axis, numbers.Integral) and not isinstance(axis, bool):
        return int(axis)
    if isinstance(axis, (list, tuple)) and axis and all(
            isinstance(a, numbers.Integral) and not isinstance(a, bool) for a in axis):
        return tuple(int(a) for a in axis)
    raise ValueError(f"{name}: `axis` must be an int or a list of ints. Received: axis={axis!r}")


def _axis_config(axis):
    return list(axis) if isinstance(axis, tuple) else axis


def _norms(w, axis):
    xp = array_module(w)
    if w.dtype.kind != "f":
        raise TypeError(f"Constraints apply to floating-point weights; received dtype {w.dtype}")
    return xp.sqrt(xp.sum(w * w, axis=axis, keepdims=True))


def _tensor(array):
    return Tensor(array, dtype=array.dtype)  # Tensor() alone would make float64 weights float32


def _scaled(w, norms, desired):
    """w * desired / (eps + norms), every operand in w's dtype (numpy scalars, never 0-d arrays)."""
    return _tensor(w * (desired / (norms + w.dtype.type(EPSILON))))


class Constraint:
    """Base class: ``__call__(w)`` returns the projected weights (here ``w`` unchanged)."""

    def __call__(self, w):
        return w

    def get_config(self):
        return {}

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def __repr__(self):
        return f"{type(self).__name__}({', '.join(f'{k}={v!r}' for k, v in self.get_config().items())})"


class MaxNorm(Constraint):
    """Rescales the slices along ``axis`` (Dense: each unit's incoming weights, axis 0) whose L2 norm exceeds
    ``max_value`` down to ``max_value``."""

    def __init__(self, max_value=2, axis=0):
        if isinstance(max_value, bool) or not isinstance(max_value, numbers.Real) or not max_value >= 0:
            raise ValueError(f"MaxNorm: `max_value` must be a non-negative number. Received: max_value={max_value!r}")
        self.max_value = max_value
        self.axis = _axis("MaxNorm", axis)

    def __call__(self, w):
        w = _array(w)
        norms = _norms(w, self.axis)
        desired = array_module(w).clip(norms, w.dtype.type(0), w.dtype.type(self.max_value))
        return _scaled(w, norms, desired)

    def get_config(self):
        return {"max_value": self.max_value, "axis": _axis_config(self.axis)}


class MinMaxNorm(Constraint):
    """Moves the L2 norm of the slices along ``axis`` towards [min_value, max_value]: the new norm is
    ``rate * clip(norm, min_value, max_value) + (1 - rate) * norm`` (rate 1: strictly inside)."""

    def __init__(self, min_value=0.0, max_value=1.0, rate=1.0, axis=0):
        for name, value in (("min_value", min_value), ("max_value", max_value), ("rate", rate)):
            if isinstance(value, bool) or not isinstance(value, numbers.Real) or not value >= 0:
                raise ValueError(f"MinMaxNorm: `{name}` must be a non-negative number. Received: {name}={value!r}")
        if min_value > max_value:
            raise ValueError(f"MinMaxNorm: `min_value` must not exceed `max_value`. Received: min_value={min_value}, "
                             f"max_value={max_value}")
        self.min_value = min_value
        self.max_value = max_value
        self.rate = rate
        self.axis = _axis("MinMaxNorm", axis)

    def __call__(self, w):
        w = _array(w)
        dtype = w.dtype.type
        norms = _norms(w, self.axis)
        clipped = array_module(w).clip(norms, dtype(self.min_value), dtype(self.max_value))
        desired = clipped * dtype(self.rate) + norms * dtype(1 - self.rate)
        return _scaled(w, norms, desired)

    def get_config(self):
        return {"min_value": self.min_value, "max_value": self.max_value, "rate": self.rate,
                "axis": _axis_config(self.axis)}


class NonNeg(Constraint):
    """Negative weights become zero."""

    def __call__(self, w):
        w = _array(w)
        return _tensor(array_module(w).maximum(w, w.dtype.type(0)))


class UnitNorm(Constraint):
    """Divides the slices along ``axis`` by their L2 norm (a zero slice stays zero)."""

    def __init__(self, axis=0):
        self.axis = _axis("UnitNorm", axis)

    def __call__(self, w):
        w = _array(w)
        return _tensor(w / (_norms(w, self.axis) + w.dtype.type(EPSILON)))

    def get_config(self):
        return {"axis": _axis_config(self.axis)}


max_norm = MaxNorm
min_max_norm = MinMaxNorm
non_neg = NonNeg
unit_norm = UnitNorm

_CLASSES = {"Constraint": Constraint, "MaxNorm": MaxNorm, "MinMaxNorm": MinMaxNorm, "NonNeg": NonNeg,
            "UnitNorm": UnitNorm}
_ALIASES = {"constraint": Constraint, "max_norm": MaxNorm, "min_max_norm": MinMaxNorm, "non_neg": NonNeg,
            "unit_norm": UnitNorm}


def _unknown(identifier):
    return unknown_name_error("constraint", identifier, set(_CLASSES) | set(_ALIASES))


def get(identifier):
    """None, a Constraint or any callable unchanged; a name or a class instantiated with its defaults; a
    serialized dict deserialized."""
    if identifier is None:
        return None
    if isinstance(identifier, dict):
        return deserialize(identifier)
    if isinstance(identifier, str):
        cls = _ALIASES.get(identifier) or _CLASSES.get(identifier)
        if cls is None:
            raise _unknown(identifier)
        return cls()
    if inspect.isclass(identifier) and issubclass(identifier, Constraint):
        return identifier()
    if callable(identifier):
        return identifier
    raise ValueError(f"Could not interpret constraint identifier: {identifier!r}")


def serialize(constraint):
    if constraint is None:
        return None
    if not hasattr(constraint, "get_config"):
        raise ValueError(f"Cannot serialize constraint {constraint!r}: it has no get_config() (subclass "
                         f"dlgpu.constraints.Constraint and define get_config, so that it can be saved).")
    return {"module": "keras.constraints", "class_name": type(constraint).__name__,
            "config": constraint.get_config(), "registered_name": None}


def deserialize(config, custom_objects=None):
    """A constraint from its serialized dict: a built-in class, one in ``custom_objects``, or one registered
    with ``dlgpu.saving.register_keras_serializable`` (names only, never code)."""
    return deserialize_by_class_name(config, custom_objects, {**_ALIASES, **_CLASSES}, get, _unknown)
