"""Weight regularizers (Keras 3): ``L1``, ``L2``, ``L1L2``, ``OrthogonalRegularizer``; ``regularizer(weights)``
is a scalar penalty."""

from __future__ import annotations

import math

import numpy as np

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


class OrthogonalRegularizer(Regularizer):
    """Pushes the rows (``mode="rows"``) or columns (``"columns"``) of a rank-2 weight towards orthogonality:
    ``factor * 0.5 * sum(|off-diagonal of the Gram matrix of the L2-normalized rows|) / (n * (n - 1) / 2)``,
    that is ``factor`` times half the mean absolute cosine over the ordered pairs (Keras's formula)."""

    def __init__(self, factor=0.01, mode="rows"):
        if isinstance(factor, bool) or not isinstance(factor, (int, float)) or not math.isfinite(factor) or factor < 0:
            raise ValueError(f"Invalid value for argument factor: expected a non-negative float. "
                             f"Received: factor={factor!r}")
        if mode not in ("rows", "columns"):
            raise ValueError(f'Invalid value for argument `mode`. Expected one of {{"rows", "columns"}}. '
                             f"Received: mode={mode!r}")
        self.factor = float(np.float32(factor))  # Keras keeps it as a float32 tensor: its config says 0.30000001...
        self.mode = mode

    def __call__(self, x):
        if len(x.shape) != 2:
            raise ValueError(f"Inputs to OrthogonalRegularizer must have rank 2. Received: inputs.shape={tuple(x.shape)}")
        if self.mode == "rows":
            unit = ops.normalize(x, axis=1)
            product, size = ops.matmul(unit, ops.transpose(unit)), x.shape[0]
        else:
            unit = ops.normalize(x, axis=0)
            product, size = ops.matmul(ops.transpose(unit), unit), x.shape[1]
        off_diagonal = ops.multiply(product, 1.0 - ops.eye(size, dtype=product.dtype))
        pairs = size * (size - 1.0) / 2.0
        return ops.multiply(ops.sum(ops.abs(off_diagonal)), self.factor * 0.5 / pairs)

    def get_config(self):
        return {"factor": self.factor, "mode": self.mode}


l1 = L1
l2 = L2
l1_l2 = L1L2
orthogonal_regularizer = OrthogonalRegularizer

_CLASSES = {"L1": L1, "L2": L2, "L1L2": L1L2, "OrthogonalRegularizer": OrthogonalRegularizer,
            "Regularizer": Regularizer}
_ALIASES = {"l1": L1, "l2": L2, "l1_l2": L1L2, "orthogonal_regularizer": OrthogonalRegularizer}


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
