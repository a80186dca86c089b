"""Conv2D (channels_last, dilation 1): one fused op for convolution, bias and activation."""

from __future__ import annotations

from dlgpu import ops
from dlgpu.layers.base import InputSpec
from dlgpu.layers.core import KernelBiasLayer, _positive_int
from dlgpu.ops.window import conv_output_length, normalize_tuple


class Conv2D(KernelBiasLayer):
    def __init__(self, filters, kernel_size, strides=(1, 1), padding="valid", data_format=None,
                 dilation_rate=(1, 1), groups=1, activation=None, use_bias=True,
                 kernel_initializer="glorot_uniform", bias_initializer="zeros", kernel_regularizer=None,
                 bias_regularizer=None, activity_regularizer=None, kernel_constraint=None, bias_constraint=None,
                 **kwargs):
        super().__init__(**kwargs)
        self.filters = _positive_int("Conv2D", "filters", filters)
        owner = f"Layer '{self.name}'"
        self.kernel_size = normalize_tuple(kernel_size, 2, "kernel_size", owner)
        self.strides = normalize_tuple(strides, 2, "strides", owner)
        self.padding = str(padding).lower()
        if self.padding not in ("valid", "same"):
            raise ValueError(f"Layer '{self.name}': padding must be 'valid' or 'same'; received padding={padding!r}")
        if data_format not in (None, "channels_last"):
            raise ValueError(f"Layer '{self.name}': only data_format='channels_last' (NHWC) is supported; "
                             f"received data_format={data_format!r}")
        if normalize_tuple(dilation_rate, 2, "dilation_rate", owner) != (1, 1) or groups != 1:
            raise ValueError(f"Layer '{self.name}': dilation_rate and groups other than 1 are not supported; "
                             f"received dilation_rate={dilation_rate!r}, groups={groups!r}")
        self._init_kernel_bias(activation, use_bias, kernel_initializer, bias_initializer, kernel_regularizer,
                               bias_regularizer, activity_regularizer)
        self.input_spec = InputSpec(ndim=4)

    def build(self, input_shape):
        channels = input_shape[-1]
        if channels is None:
            raise ValueError(f"Layer '{self.name}': the channel axis (last) of the input must be known; received {input_shape}")
        self.compute_output_shape(input_shape)  # fails early when the window does not fit
        self._add_kernel_and_bias(self.kernel_size + (channels, self.filters), self.filters)
        self.input_spec = InputSpec(ndim=4, axes={-1: channels})
        self.built = True

    def call(self, inputs):
        return self._apply(ops.conv2d, inputs, self.strides, self.padding)

    def compute_output_shape(self, input_shape):
        n, h, w, _ = input_shape
        oh = conv_output_length(h, self.kernel_size[0], self.padding, self.strides[0], self.name)
        ow = conv_output_length(w, self.kernel_size[1], self.padding, self.strides[1], self.name)
        return (n, oh, ow, self.filters)

    def get_config(self):
        return {**super().get_config(), "filters": self.filters, "kernel_size": list(self.kernel_size),
                "strides": list(self.strides), "padding": self.padding, "data_format": "channels_last",
                **self._kernel_bias_config()}


Convolution2D = Conv2D
