"""Weight regularizers (Keras 3): ``L1``, ``L2``, ``L1L2``; ``regularizer(weights)`` is a scalar penalty."""

from __future__ import annotations


from dlgpu import ops
from dlgpu.utils import deserialize_by_class_name, unknown_name_error


def _check(name, value):
    value = float(value)
    if value < 0 or value != value:
        raise ValueError(f"Value for argument `{name}` must be a non-negative float. Received: {name}={value}")
    return value


class Regularizer:
    def __call__(self, x):
        return 0.0

    def get_config(self):
        return {}

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def __repr__(self):
        return f"{type(self).__name__}({', '.join(f'{k}={v}' for k, v in self.get_config().items())})"


class L1L2(Regularizer):
    """l1 * sum(|x|) + l2 * sum(x^2)."""

    def __init__(self, l1=0.0, l2=0.0):
        self.l1 = _check("l1", l1)
        self.l2 = _check("l2", l2)

    def __call__(self, x):
        penalty = None
        if self.l1:
            penalty = ops.multiply(ops.sum(ops.abs(x)), self.l1)
        if self.l2:
            term = ops.multiply(ops.sum(ops.square(x)), self.l2)
            penalty = term if penalty is None else ops.add(penalty, term)
        return penalty if penalty is not None else ops.multiply(ops.sum(x), 0.0)

    def get_config(self):
        return {"l1": self.l1, "l2": self.l2}


class L1(Regularizer):
    def __init__(self, l1=0.01):
        self.l1 = _check("l1", l1)

    def __call__(self, x):
        return ops.multiply(ops.sum(ops.abs(x)), self.l1)

    def get_config(self):
        return {"l1": self.l1}


class L2(Regularizer):
    def __init__(self, l2=0.01):
        self.l2 = _check("l2", l2)

    def __call__(self, x):
        return ops.multiply(ops.sum(ops.square(x)), self.l2)

    def get_config(self):
        return {"l2": self.l2}


l1 = L1
l2 = L2
l1_l2 = L1L2

_CLASSES = {"L1": L1, "L2": L2, "L1L2": L1L2, "Regularizer": Regularizer}
_ALIASES = {"l1": L1, "l2": L2, "l1_l2": L1L2}


def _unknown(identifier):
    return unknown_name_error("regularizer", identifier, set(_CLASSES) | set(_ALIASES))


def get(identifier):
    if identifier is None or isinstance(identifier, Regularizer):
        return identifier
    if isinstance(identifier, dict):
        return deserialize(identifier)
    if isinstance(identifier, str):
        cls = _ALIASES.get(identifier) or _CLASSES.get(identifier)
        if cls is None:
            raise _unknown(identifier)
        return cls()
    if callable(identifier):
        return identifier
    raise ValueError(f"Could not interpret regularizer identifier: {identifier!r}")


def serialize(regularizer):
    if regularizer is None:
        return None
    if not hasattr(regularizer, "get_config"):
        raise ValueError(f"Cannot serialize regularizer {regularizer!r}: it has no get_config().")
    return {"module": "keras.regularizers", "class_name": type(regularizer).__name__,
            "config": regularizer.get_config(), "registered_name": None}


def deserialize(config, custom_objects=None):
    """A regularizer from its serialized dict: a built-in class, one in ``custom_objects``, or one registered
    with ``dlgpu.saving.register_keras_serializable`` (a layer's from_config gets no custom_objects)."""
    return deserialize_by_class_name(config, custom_objects, {**_ALIASES, **_CLASSES}, get, _unknown)
