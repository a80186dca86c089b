"""Wrappers of one layer (Wrapper, their base): TimeDistributed (the layer applied to every time step of a sequence, with one set
of weights) and SpectralNormalization (the layer's kernel divided by its spectral norm while training)."""

from __future__ import annotations

import numpy as np

from dlgpu import initializers, ops
from dlgpu.layers.base import Layer, _is_shape


class Wrapper(Layer):
    """keras.layers.Wrapper: the base of layers that wrap one other layer (``self.layer``), which its config
    holds serialized.  Subclass it for a wrapper of your own, as TimeDistributed and SpectralNormalization do."""

    def __init__(self, layer, **kwargs):
        if not isinstance(layer, Layer):
            raise ValueError(f"Please initialize `{type(self).__name__}` layer with a `keras.layers.Layer` "
                             f"instance. Received: {layer!r}")
        super().__init__(**kwargs)
        self.layer = layer

    def build(self, input_shape=None):
        self.layer._maybe_build(input_shape)
        self.built = True

    def get_config(self):
        from dlgpu import layers
        return {**super().get_config(), "layer": layers.serialize(self.layer)}

    @classmethod
    def from_config(cls, config, custom_objects=None):
        from dlgpu import layers
        config = dict(config)
        config["layer"] = layers.deserialize(config["layer"], custom_objects)
        return cls(**config)


class TimeDistributed(Wrapper):
    """Applies ``layer`` to each slice ``inputs[:, t]`` of a (batch, time, ...) input.

    The time axis is folded into the batch, (batch * time, ...), so the wrapped layer runs once per call
    rather than once per step (Keras loops over the steps).  The results are the same for every layer that
    treats samples independently (Dense, Conv2D, pooling, ...); a layer that computes batch statistics in
    training (BatchNormalization) sees all batch * time samples at once instead of one step's batch.
    """

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


_EPSILON = 1e-7  # keras.config.epsilon(), the floor of Keras's normalize (x * min(rsqrt(sum x^2), 1 / eps))


def _normalize(xp, x):
    """Keras's ops.normalize(x, axis=None): 1 / sqrt(max(s, eps^2)) is its min(rsqrt(s), 1 / eps) without
    the division by zero."""
    return x / xp.sqrt(xp.maximum(xp.sum(x * x), np.float32(_EPSILON * _EPSILON)))


class SpectralNormalization(Wrapper):
    """Wraps a layer with a ``kernel`` (Dense, Conv...) or ``embeddings`` (Embedding).  Each training call
    first runs ``power_iterations`` steps of the power method on the kernel reshaped to (-1, last axis),
    from the non-trainable ``vector_u``, and assigns kernel / sigma to the kernel and the new u to
    ``vector_u`` (Keras's arithmetic; a kernel of zeros is left alone); then the layer runs.  The update is
    outside the gradient: the gradient is the wrapped layer's, with the normalized kernel.  Inference calls
    run the layer on the kernel as it stands (the kernel normalized by the last training step)."""

    def __init__(self, layer, power_iterations=1, **kwargs):
        super().__init__(layer, **kwargs)
        if (not isinstance(power_iterations, (int, np.integer)) or isinstance(power_iterations, bool)
                or power_iterations <= 0):
            raise ValueError(f"Layer '{self.name}' (SpectralNormalization): `power_iterations` should be an "
                             f"integer greater than zero. Received: `power_iterations={power_iterations!r}`")
        self.power_iterations = int(power_iterations)

    def build(self, input_shape):
        self.layer._maybe_build(input_shape)
        kernel = getattr(self.layer, "kernel", None)
        if kernel is None:
            kernel = getattr(self.layer, "embeddings", None)
        if kernel is None:
            raise ValueError(f"Layer '{self.name}' (SpectralNormalization): {type(self.layer).__name__} object "
                             f"has no attribute 'kernel' nor 'embeddings'")
        # tracked here as in Keras, so that the weights come in Keras's order: kernel, vector_u, the rest
        self.kernel = kernel
        self.kernel_shape = tuple(kernel.shape)
        self.vector_u = self.add_weight(shape=(1, self.kernel_shape[-1]),
                                        initializer=initializers.TruncatedNormal(stddev=0.02),
                                        trainable=False, name="vector_u", dtype=kernel.dtype)

    def normalized_weights(self):
        """(new vector_u, kernel / sigma) as arrays of the kernel's module, from the current values."""
        from dlgpu.ops._core import array_module
        kernel = self.kernel.data
        xp = array_module(kernel)
        weights = kernel.reshape(-1, self.kernel_shape[-1])
        vector_u = self.vector_u.data
        for _ in range(self.power_iterations):
            vector_v = _normalize(xp, vector_u @ weights.T)
            vector_u = _normalize(xp, vector_v @ weights)
        sigma = (vector_v @ weights) @ vector_u.T  # (1, 1)
        return vector_u.astype(self.vector_u.data.dtype), (kernel / sigma.reshape(())).astype(kernel.dtype)

    def call(self, inputs, training=False):
        if training and bool((self.kernel.data != 0).any()):
            new_u, new_kernel = self.normalized_weights()
            self.vector_u.assign(new_u)
            self.kernel.assign(new_kernel)
        output = self.layer(inputs, training=training)
        # Keras casts the output to the input's dtype; only for float inputs here (an Embedding's integer
        # ids would turn its vectors into integers)
        if inputs.dtype in ("float16", "bfloat16", "float32", "float64") and output.dtype != inputs.dtype:
            output = ops.cast(output, inputs.dtype)
        return output

    def compute_output_shape(self, input_shape):
        return self.layer.compute_output_shape(input_shape)

    def get_config(self):
        return {**super().get_config(), "power_iterations": self.power_iterations}
