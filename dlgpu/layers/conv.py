"""Conv1D and Conv2D (channels_last, dilation 1): one fused op for convolution, bias and activation.

Conv1D runs as a 2-D convolution over a unit-height image, so the 2-D primitives (CPU threads, GPU
kernels) serve it too.
"""

from __future__ import annotations

from dlgpu import ops
from dlgpu.layers.base import InputSpec
from dlgpu.layers.core import KernelBiasLayer, _positive_int
from dlgpu.ops.window import conv_output_length, normalize_tuple


class _Conv(KernelBiasLayer):
    """What Conv1D and Conv2D share: arguments, the (*kernel_size, Cin, filters) kernel, shapes, config."""

    _rank = None                     # spatial axes
    _paddings = ("valid", "same")

    def __init__(self, filters, kernel_size, strides, padding, data_format, dilation_rate, groups, activation,
                 use_bias, kernel_initializer, bias_initializer, kernel_regularizer, bias_regularizer,
                 activity_regularizer, **kwargs):
        super().__init__(**kwargs)
        self.filters = _positive_int(type(self).__name__, "filters", filters)
        owner = f"Layer '{self.name}'"
        self.kernel_size = normalize_tuple(kernel_size, self._rank, "kernel_size", owner)
        self.strides = normalize_tuple(strides, self._rank, "strides", owner)
        self.padding = str(padding).lower()
        if self.padding not in self._paddings:
            raise ValueError(f"Layer '{self.name}': padding must be {' or '.join(map(repr, self._paddings))}; "
                             f"received padding={padding!r}")
        if data_format not in (None, "channels_last"):
            raise ValueError(f"Layer '{self.name}': only data_format='channels_last' is supported; "
                             f"received data_format={data_format!r}")
        if normalize_tuple(dilation_rate, self._rank, "dilation_rate", owner) != (1,) * self._rank or groups != 1:
            raise ValueError(f"Layer '{self.name}': dilation_rate and groups other than 1 are not supported; "
                             f"received dilation_rate={dilation_rate!r}, groups={groups!r}")
        self._init_kernel_bias(activation, use_bias, kernel_initializer, bias_initializer, kernel_regularizer,
                               bias_regularizer, activity_regularizer)
        self.input_spec = InputSpec(ndim=self._rank + 2)

    def build(self, input_shape):
        channels = input_shape[-1]
        if channels is None:
            raise ValueError(f"Layer '{self.name}': the channel axis (last) of the input must be known; received {input_shape}")
        self.compute_output_shape(input_shape)  # fails early when the window does not fit
        self._add_kernel_and_bias(self.kernel_size + (channels, self.filters), self.filters)
        self.input_spec = InputSpec(ndim=self._rank + 2, axes={-1: channels})
        self.built = True

    def compute_output_shape(self, input_shape):
        # causal pads k - 1 before the sequence, which leaves ceil(length / stride) outputs, as 'same' does
        padding = "same" if self.padding == "causal" else self.padding
        spatial = [conv_output_length(size, k, padding, s, self.name)
                   for size, k, s in zip(input_shape[1:-1], self.kernel_size, self.strides)]
        return (input_shape[0], *spatial, self.filters)

    def get_config(self):
        return {**super().get_config(), "filters": self.filters, "kernel_size": list(self.kernel_size),
                "strides": list(self.strides), "padding": self.padding, "data_format": "channels_last",
                **self._kernel_bias_config()}


class Conv2D(_Conv):
    _rank = 2

    def __init__(self, filters, kernel_size, strides=(1, 1), padding="valid", data_format=None,
                 dilation_rate=(1, 1), groups=1, activation=None, use_bias=True,
                 kernel_initializer="glorot_uniform", bias_initializer="zeros", kernel_regularizer=None,
                 bias_regularizer=None, activity_regularizer=None, kernel_constraint=None, bias_constraint=None,
                 **kwargs):
        super().__init__(filters, kernel_size, strides, padding, data_format, dilation_rate, groups, activation,
                         use_bias, kernel_initializer, bias_initializer, kernel_regularizer, bias_regularizer,
                         activity_regularizer, **kwargs)

    def call(self, inputs):
        return self._apply(ops.conv2d, inputs, self.strides, self.padding)


def _conv1d(x, kernel, bias, stride, padding, activation="linear"):
    """activation(conv(x, kernel) + bias) for (N, L, Cin) x and a (k, Cin, Cout) kernel, computed by
    ops.conv2d on (N, 1, L, Cin) and (1, k, Cin, Cout); the reshapes are views, and carry the gradients."""
    n, length, channels = x.shape
    y = ops.conv2d(ops.reshape(x, (n, 1, length, channels)), ops.reshape(kernel, (1,) + kernel.shape), bias,
                   (1, stride), padding, activation)
    return ops.reshape(y, (n,) + y.shape[2:])


class Conv1D(_Conv):
    """1-D convolution over (batch, steps, channels); padding='causal' lets output t see inputs up to t only."""

    _rank = 1
    _paddings = ("valid", "same", "causal")

    def __init__(self, filters, kernel_size, strides=1, padding="valid", data_format=None, dilation_rate=1,
                 groups=1, activation=None, use_bias=True, kernel_initializer="glorot_uniform",
                 bias_initializer="zeros", kernel_regularizer=None, bias_regularizer=None,
                 activity_regularizer=None, kernel_constraint=None, bias_constraint=None, **kwargs):
        super().__init__(filters, kernel_size, strides, padding, data_format, dilation_rate, groups, activation,
                         use_bias, kernel_initializer, bias_initializer, kernel_regularizer, bias_regularizer,
                         activity_regularizer, **kwargs)

    def call(self, inputs):
        padding = self.padding
        if padding == "causal":
            inputs = ops.pad(inputs, ((0, 0), (self.kernel_size[0] - 1, 0), (0, 0)))
            padding = "valid"
        return self._apply(_conv1d, inputs, self.strides[0], padding)


Convolution1D = Conv1D
Convolution2D = Conv2D
