"""BatchNormalization and LayerNormalization."""

from __future__ import annotations

from dlgpu import initializers, ops, regularizers
from dlgpu.layers.base import InputSpec, Layer


class BatchNormalization(Layer):
    """Normalises with batch statistics while training and with moving averages at inference.

    moving = moving * momentum + batch * (1 - momentum), Keras's convention (momentum=0.99).
    """

    def __init__(self, axis=-1, momentum=0.99, epsilon=1e-3, center=True, scale=True,
                 beta_initializer="zeros", gamma_initializer="ones", moving_mean_initializer="zeros",
                 moving_variance_initializer="ones", beta_regularizer=None, gamma_regularizer=None, **kwargs):
        super().__init__(**kwargs)
        self.axis = axis
        self.momentum = float(momentum)
        self.epsilon = float(epsilon)
        self.center = center
        self.scale = scale
        self.beta_initializer = initializers.get(beta_initializer)
        self.gamma_initializer = initializers.get(gamma_initializer)
        self.moving_mean_initializer = initializers.get(moving_mean_initializer)
        self.moving_variance_initializer = initializers.get(moving_variance_initializer)
        self.beta_regularizer = regularizers.get(beta_regularizer)
        self.gamma_regularizer = regularizers.get(gamma_regularizer)

    def build(self, input_shape):
        rank = len(input_shape)
        axis = self.axis % rank
        size = input_shape[axis]
        if size is None:
            raise ValueError(f"Layer '{self.name}': axis {self.axis} of the input must be known; received {input_shape}")
        self._axis = axis
        self._reduce_axes = tuple(i for i in range(rank) if i != axis)
        self._param_shape = tuple(size if i == axis else 1 for i in range(rank))
        self.gamma = self.add_weight((size,), self.gamma_initializer, name="gamma",
                                     regularizer=self.gamma_regularizer) if self.scale else None
        self.beta = self.add_weight((size,), self.beta_initializer, name="beta",
                                    regularizer=self.beta_regularizer) if self.center else None
        self.moving_mean = self.add_weight((size,), self.moving_mean_initializer, name="moving_mean", trainable=False)
        self.moving_variance = self.add_weight((size,), self.moving_variance_initializer, name="moving_variance",
                                               trainable=False)
        self.input_spec = InputSpec(ndim=rank, axes={axis: size})
        self.built = True

    def _shaped(self, variable):
        return None if variable is None else ops.reshape(variable, self._param_shape)

    def call(self, inputs, training=None):
        if training and self.trainable:
            out, mean, var = ops.batch_norm_train(inputs, self._shaped(self.gamma), self._shaped(self.beta),
                                                  self._reduce_axes, self.epsilon)
            keep = self.momentum
            self.moving_mean.data *= keep
            self.moving_mean.data += (1.0 - keep) * mean.reshape(-1)
            self.moving_variance.data *= keep
            self.moving_variance.data += (1.0 - keep) * var.reshape(-1)
            return out
        return ops.batch_normalization(inputs, self._shaped(self.moving_mean), self._shaped(self.moving_variance),
                                       offset=self._shaped(self.beta), scale=self._shaped(self.gamma),
                                       epsilon=self.epsilon)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "axis": self.axis, "momentum": self.momentum, "epsilon": self.epsilon,
                "center": self.center, "scale": self.scale,
                "beta_initializer": initializers.serialize(self.beta_initializer),
                "gamma_initializer": initializers.serialize(self.gamma_initializer),
                "moving_mean_initializer": initializers.serialize(self.moving_mean_initializer),
                "moving_variance_initializer": initializers.serialize(self.moving_variance_initializer),
                "beta_regularizer": regularizers.serialize(self.beta_regularizer),
                "gamma_regularizer": regularizers.serialize(self.gamma_regularizer)}


class LayerNormalization(Layer):
    def __init__(self, axis=-1, epsilon=1e-3, center=True, scale=True, **kwargs):
        super().__init__(**kwargs)
        self.supports_masking = True  # each step is normalised on its own: padding does not leak in
        self.axis = axis
        self.epsilon = float(epsilon)
        self.center = center
        self.scale = scale

    def build(self, input_shape):
        size = input_shape[self.axis]
        self.gamma = self.add_weight((size,), "ones", name="gamma") if self.scale else None
        self.beta = self.add_weight((size,), "zeros", name="beta") if self.center else None
        self.built = True

    def call(self, inputs):
        mean = ops.mean(inputs, axis=self.axis, keepdims=True)
        var = ops.var(inputs, axis=self.axis, keepdims=True)
        return ops.batch_normalization(inputs, mean, var, offset=self.beta, scale=self.gamma, epsilon=self.epsilon)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "axis": self.axis, "epsilon": self.epsilon, "center": self.center,
                "scale": self.scale}
