"""Masking, and the checks every layer applies to a mask it uses.

A mask (Keras's convention) is a bool tensor over the leading axes of a tensor, True where a step holds
data and False where it is padding: (batch, steps) for a (batch, steps, features) sequence.  It rides on
the tensor as ``x._keras_mask`` (Layer.__call__ passes it to a ``call`` that takes ``mask=`` and attaches
``compute_mask``'s result to the output).  Embedding(mask_zero=True) and Masking create masks; recurrent
layers, GlobalAveragePooling1D, the attention layers and the losses use them.
"""

from __future__ import annotations

import numpy as np

from dlgpu import ops
from dlgpu.autograd import Tensor
from dlgpu.layers.base import Layer
from dlgpu.ops._core import array_module


def mask_array(layer, mask, expected_shape, what="mask"):
    """``mask`` (a Tensor or an array) as a bool array, after checking that its dtype can be read as booleans
    (Keras casts non-bool masks: non-zero is True) and that its shape is ``expected_shape``; the errors name
    the layer."""
    data = mask.data if isinstance(mask, Tensor) else mask
    if not hasattr(data, "dtype"):
        data = np.asarray(data)
    kind = data.dtype.kind
    if kind not in "biuf":
        raise TypeError(f"Layer '{layer.name}' ({type(layer).__name__}): `{what}` must be a boolean tensor (or "
                        f"integers/floats read as booleans). Received: {what} dtype {data.dtype}")
    if tuple(data.shape) != tuple(expected_shape):
        raise ValueError(f"Layer '{layer.name}' ({type(layer).__name__}): `{what}` must have shape "
                         f"{tuple(expected_shape)}. Received: {what} shape {tuple(data.shape)}")
    return data if kind == "b" else data != 0


def on_device_of(array, like):
    """``array`` moved to the device of the array ``like`` (a host mask meeting a GPU tensor)."""
    xp = array_module(like)
    return array if array_module(array) is xp else xp.asarray(array)


class Masking(Layer):
    """Masks the steps of a sequence whose every feature equals ``mask_value``: they are set to 0 and the
    output carries the mask (True where some feature differs), so downstream layers skip them."""

    def __init__(self, mask_value=0.0, **kwargs):
        super().__init__(**kwargs)
        if isinstance(mask_value, bool) or not isinstance(mask_value, (int, float)):
            raise ValueError(f"Layer '{self.name}' (Masking): `mask_value` must be a number. "
                             f"Received: mask_value={mask_value!r}")
        self.mask_value = mask_value
        self.supports_masking = True

    def compute_mask(self, inputs, mask=None):
        return ops.any(ops.not_equal(inputs, self.mask_value), axis=-1)

    def call(self, inputs):
        keep = ops.any(ops.not_equal(inputs, self.mask_value), axis=-1, keepdims=True)
        outputs = ops.multiply(inputs, ops.cast(keep, inputs.dtype))  # where(keep, x, 0), as one product
        outputs._keras_mask = ops.squeeze(keep, axis=-1)
        return outputs

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "mask_value": self.mask_value}
