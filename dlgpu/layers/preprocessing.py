"""Rescaling: inputs * scale + offset, in training and inference alike (integer images become float32)."""

from __future__ import annotations

import numpy as np

from dlgpu import ops
from dlgpu.layers.base import Layer
from dlgpu.ops._core import array_module


class Rescaling(Layer):
    """``scale`` and ``offset`` are numbers, or per-channel sequences that broadcast against the last axis."""

    def __init__(self, scale, offset=0.0, **kwargs):
        super().__init__(**kwargs)
        self.supports_masking = True
        self.scale = self._constant("scale", scale)
        self.offset = self._constant("offset", offset)

    def _constant(self, name, value):
        try:
            array = np.asarray(value, dtype=np.float64)
        except (TypeError, ValueError):
            array = None
        if array is None or isinstance(value, (str, bool)):  # asarray takes "0.5" and True
            raise ValueError(f"Layer '{self.name}' (Rescaling): `{name}` must be a number or a sequence of numbers. "
                             f"Received: {name}={value!r}")
        return float(array) if array.ndim == 0 else array.tolist()

    def call(self, inputs):
        xp = array_module(inputs.data)
        scale, offset = self.scale, self.offset
        # Sequences become arrays of the input's dtype on the input's device; numbers stay Python floats,
        # which never widen a float32 tensor.
        if isinstance(scale, list):
            scale = xp.asarray(scale, dtype=inputs.data.dtype)
        if isinstance(offset, list):
            offset = xp.asarray(offset, dtype=inputs.data.dtype)
        return ops.add(ops.multiply(inputs, scale), offset)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "scale": self.scale, "offset": self.offset}
