"""Conv2D (channels_last, dilation 1): one fused op for convolution, bias and activation."""

from __future__ import annotations

from dlgpu import activations, initializers, ops, regularizers
from dlgpu.layers.base import InputSpec, Layer
from dlgpu.layers.core import _positive_int
from dlgpu.ops.shapes import conv_output_length, normalize_tuple


class Conv2D(Layer):
    def __init__(self, filters, kernel_size, strides=(1, 1), padding="valid", data_format=None,
                 dilation_rate=(1, 1), groups=1, activation=None, use_bias=True,
                 kernel_initializer="glorot_uniform", bias_initializer="zeros", kernel_regularizer=None,
                 bias_regularizer=None, activity_regularizer=None, kernel_constraint=None, bias_constraint=None,
                 **kwargs):
        super().__init__(**kwargs)
        self.filters = _positive_int("Conv2D", "filters", filters)
        self.kernel_size = normalize_tuple(kernel_size, 2, "kernel_size", self.name)
        self.strides = normalize_tuple(strides, 2, "strides", self.name)
        self.padding = str(padding).lower()
        if self.padding not in ("valid", "same"):
            raise ValueError(f"Layer '{self.name}': padding must be 'valid' or 'same'; received padding={padding!r}")
        if data_format not in (None, "channels_last"):
            raise ValueError(f"Layer '{self.name}': only data_format='channels_last' (NHWC) is supported; "
                             f"received data_format={data_format!r}")
        if normalize_tuple(dilation_rate, 2, "dilation_rate", self.name) != (1, 1) or groups != 1:
            raise ValueError(f"Layer '{self.name}': dilation_rate and groups other than 1 are not supported; "
                             f"received dilation_rate={dilation_rate!r}, groups={groups!r}")
        self.activation = activations.get(activation)
        self._fused = activations.fused_name(self.activation)
        self.use_bias = use_bias
        self.kernel_initializer = initializers.get(kernel_initializer)
        self.bias_initializer = initializers.get(bias_initializer)
        self.kernel_regularizer = regularizers.get(kernel_regularizer)
        self.bias_regularizer = regularizers.get(bias_regularizer)
        self.activity_regularizer = regularizers.get(activity_regularizer)
        self.input_spec = InputSpec(ndim=4)

    def build(self, input_shape):
        channels = input_shape[-1]
        if channels is None:
            raise ValueError(f"Layer '{self.name}': the channel axis (last) of the input must be known; received {input_shape}")
        self.compute_output_shape(input_shape)  # fails early when the window does not fit
        self.kernel = self.add_weight(self.kernel_size + (channels, self.filters), self.kernel_initializer,
                                      name="kernel", regularizer=self.kernel_regularizer)
        self.bias = self.add_weight((self.filters,), self.bias_initializer, name="bias",
                                    regularizer=self.bias_regularizer) if self.use_bias else None
        self.input_spec = InputSpec(ndim=4, axes={-1: channels})
        self.built = True

    def call(self, inputs):
        if self._fused is not None:
            out = ops.conv2d(inputs, self.kernel, self.bias, self.strides, self.padding, self._fused)
        else:
            out = self.activation(ops.conv2d(inputs, self.kernel, self.bias, self.strides, self.padding))
        if self.activity_regularizer is not None:
            self.add_loss(self.activity_regularizer(out))
        return out

    def compute_output_shape(self, input_shape):
        n, h, w, _ = input_shape
        oh = conv_output_length(h, self.kernel_size[0], self.padding, self.strides[0], self.name)
        ow = conv_output_length(w, self.kernel_size[1], self.padding, self.strides[1], self.name)
        return (n, oh, ow, self.filters)

    def get_config(self):
        return {**super().get_config(), "filters": self.filters, "kernel_size": list(self.kernel_size),
                "strides": list(self.strides), "padding": self.padding, "data_format": "channels_last",
                "activation": activations.serialize(self.activation), "use_bias": self.use_bias,
                "kernel_initializer": initializers.serialize(self.kernel_initializer),
                "bias_initializer": initializers.serialize(self.bias_initializer),
                "kernel_regularizer": regularizers.serialize(self.kernel_regularizer),
                "bias_regularizer": regularizers.serialize(self.bias_regularizer),
                "activity_regularizer": regularizers.serialize(self.activity_regularizer)}


Convolution2D = Conv2D
