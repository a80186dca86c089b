"""Layers that merge several inputs: Add, Subtract, Multiply, Average, Maximum, Minimum, Concatenate."""

from __future__ import annotations

from functools import reduce

import numpy as np

from dlgpu import ops
from dlgpu.layers.base import Layer


class _Merge(Layer):
    _combine = None

    def _check(self, shapes):
        if not isinstance(shapes, (list, tuple)) or len(shapes) < 2 or not all(isinstance(s, tuple) for s in shapes):
            raise ValueError(f"Layer '{self.name}' ({type(self).__name__}) should be called on a list of at least 2 "
                             f"inputs. Received: input_shape={shapes}")
        out = list(shapes[0])
        for shape in shapes[1:]:
            if len(shape) != len(out):
                raise ValueError(f"Layer '{self.name}': inputs must have the same rank; received shapes {list(shapes)}")
            for i, (a, b) in enumerate(zip(out, shape)):
                if a is not None and b is not None and a != b and 1 not in (a, b):
                    raise ValueError(f"Layer '{self.name}': inputs have incompatible shapes {list(shapes)}")
                out[i] = b if a in (None, 1) else a
        return tuple(out)

    def build(self, input_shape):
        self._check(input_shape)
        self.built = True

    def call(self, inputs):
        return reduce(type(self)._combine, inputs)

    def compute_output_shape(self, input_shape):
        return self._check(input_shape)


class Add(_Merge):
    _combine = staticmethod(ops.add)


class Subtract(_Merge):
    _combine = staticmethod(ops.subtract)

    def _check(self, shapes):
        if len(shapes) != 2:
            raise ValueError(f"Layer '{self.name}' (Subtract) takes exactly 2 inputs; received {len(shapes)}")
        return super()._check(shapes)


class Multiply(_Merge):
    _combine = staticmethod(ops.multiply)


class Maximum(_Merge):
    _combine = staticmethod(ops.maximum)


class Minimum(_Merge):
    _combine = staticmethod(ops.minimum)


class Average(_Merge):
    def call(self, inputs):
        return ops.multiply(reduce(ops.add, inputs), 1.0 / len(inputs))


class Concatenate(Layer):
    def __init__(self, axis=-1, **kwargs):
        super().__init__(**kwargs)
        self.axis = axis

    def compute_output_shape(self, input_shape):
        if not isinstance(input_shape, (list, tuple)) or len(input_shape) < 1 or not all(isinstance(s, tuple) for s in input_shape):
            raise ValueError(f"Layer '{self.name}' (Concatenate) should be called on a list of inputs. "
                             f"Received: input_shape={input_shape}")
        rank = len(input_shape[0])
        axis = self.axis % rank
        out = list(input_shape[0])
        for shape in input_shape[1:]:
            if len(shape) != rank or any(a is not None and b is not None and a != b
                                         for i, (a, b) in enumerate(zip(out, shape)) if i != axis):
                raise ValueError(f"Layer '{self.name}': a Concatenate layer requires inputs with matching shapes "
                                 f"except for the concatenation axis. Received: input_shape={list(input_shape)}")
        sizes = [s[axis] for s in input_shape]
        out[axis] = None if any(s is None for s in sizes) else int(np.sum(sizes))
        return tuple(out)

    def build(self, input_shape):
        self.compute_output_shape(input_shape)
        self.built = True

    def call(self, inputs):
        return ops.concatenate(list(inputs), axis=self.axis)

    def get_config(self):
        return {**super().get_config(), "axis": self.axis}


def add(inputs, **kwargs):
    return Add(**kwargs)(inputs)


def concatenate(inputs, axis=-1, **kwargs):
    return Concatenate(axis=axis, **kwargs)(inputs)
