"""TimeDistributed: one layer applied to every time step of a sequence, with one set of weights."""

from __future__ import annotations

from dlgpu import ops
from dlgpu.layers.base import Layer, _is_shape


class TimeDistributed(Layer):
    """Applies ``layer`` to each slice ``inputs[:, t]`` of a (batch, time, ...) input.

    The time axis is folded into the batch, (batch * time, ...), so the wrapped layer runs once per call
    rather than once per step (Keras loops over the steps).  The results are the same for every layer that
    treats samples independently (Dense, Conv2D, pooling, ...); a layer that computes batch statistics in
    training (BatchNormalization) sees all batch * time samples at once instead of one step's batch.
    """

    def __init__(self, layer, **kwargs):
        if not isinstance(layer, Layer):
            raise ValueError(f"Please initialize `TimeDistributed` layer with a `keras.layers.Layer` instance. "
                             f"Received: {layer!r}")
        super().__init__(**kwargs)
        self.layer = layer

    def _child_shape(self, input_shape):
        """What the wrapped layer sees: (None, ...) with the time axis folded into the unknown batch."""
        if not _is_shape(input_shape) or len(input_shape) < 3:
            raise ValueError(f"Layer '{self.name}' (TimeDistributed) expects one input of rank >= 3 (batch, time, "
                             f"...); received input shape {input_shape}")
        return (None,) + tuple(input_shape[2:])

    def build(self, input_shape):
        self.layer._maybe_build(self._child_shape(input_shape))
        self.built = True

    def call(self, inputs, training=None, mask=None):
        if mask is not None:
            raise NotImplementedError(f"Layer '{self.name}' (TimeDistributed): masks are not supported in dlgpu")
        shape = tuple(inputs.shape)
        self._child_shape(shape)
        out = self.layer(ops.reshape(inputs, (shape[0] * shape[1],) + shape[2:]), training=training)
        if not hasattr(out, "shape") or isinstance(out, (list, tuple)):
            raise ValueError(f"Layer '{self.name}' (TimeDistributed): the wrapped layer '{self.layer.name}' must "
                             f"return one tensor; it returned {type(out).__name__}")
        return ops.reshape(out, shape[:2] + tuple(out.shape[1:]))

    def compute_output_shape(self, input_shape):
        child = self.layer.compute_output_shape(self._child_shape(input_shape))
        if not _is_shape(child):
            raise ValueError(f"Layer '{self.name}' (TimeDistributed): the wrapped layer '{self.layer.name}' must "
                             f"return one tensor; its output shapes are {child}")
        return tuple(input_shape[:2]) + tuple(child[1:])

    def get_config(self):
        from dlgpu import layers
        return {**super().get_config(), "layer": layers.serialize(self.layer)}

    @classmethod
    def from_config(cls, config, custom_objects=None):
        from dlgpu import layers
        config = dict(config)
        config["layer"] = layers.deserialize(config["layer"], custom_objects)
        return cls(**config)
