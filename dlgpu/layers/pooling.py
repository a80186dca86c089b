"""MaxPooling2D, AveragePooling2D, GlobalAveragePooling2D, GlobalMaxPooling2D (channels_last)."""

from __future__ import annotations

from dlgpu import ops
from dlgpu.layers.base import InputSpec, Layer
from dlgpu.ops.window import conv_output_length, normalize_tuple


class _Pooling2D(Layer):
    _op = None

    def __init__(self, pool_size=(2, 2), strides=None, padding="valid", data_format=None, **kwargs):
        super().__init__(**kwargs)
        owner = f"Layer '{self.name}'"
        self.pool_size = normalize_tuple(pool_size, 2, "pool_size", owner)
        self.strides = self.pool_size if strides is None else normalize_tuple(strides, 2, "strides", owner)
        self.padding = str(padding).lower()
        if self.padding not in ("valid", "same"):
            raise ValueError(f"Layer '{self.name}': padding must be 'valid' or 'same'; received padding={padding!r}")
        if data_format not in (None, "channels_last"):
            raise ValueError(f"Layer '{self.name}': only data_format='channels_last' is supported; "
                             f"received data_format={data_format!r}")
        self.input_spec = InputSpec(ndim=4)

    def call(self, inputs):
        return type(self)._op(inputs, self.pool_size, self.strides, self.padding)

    def compute_output_shape(self, input_shape):
        n, h, w, c = input_shape
        return (n, conv_output_length(h, self.pool_size[0], self.padding, self.strides[0], self.name),
                conv_output_length(w, self.pool_size[1], self.padding, self.strides[1], self.name), c)

    def build(self, input_shape):
        self.compute_output_shape(input_shape)
        self.built = True

    def get_config(self):
        return {**super().get_config(), "pool_size": list(self.pool_size), "strides": list(self.strides),
                "padding": self.padding, "data_format": "channels_last"}


class MaxPooling2D(_Pooling2D):
    _op = staticmethod(ops.max_pool2d)


class AveragePooling2D(_Pooling2D):
    _op = staticmethod(ops.avg_pool2d)


MaxPool2D = MaxPooling2D
AvgPool2D = AveragePooling2D


class _GlobalPooling2D(Layer):
    def __init__(self, data_format=None, keepdims=False, **kwargs):
        super().__init__(**kwargs)
        if data_format not in (None, "channels_last"):
            raise ValueError(f"Layer '{self.name}': only data_format='channels_last' is supported; "
                             f"received data_format={data_format!r}")
        self.keepdims = keepdims
        self.input_spec = InputSpec(ndim=4)

    def compute_output_shape(self, input_shape):
        n, _, _, c = input_shape
        return (n, 1, 1, c) if self.keepdims else (n, c)

    def get_config(self):
        return {**super().get_config(), "data_format": "channels_last", "keepdims": self.keepdims}


class GlobalAveragePooling2D(_GlobalPooling2D):
    def call(self, inputs):
        return ops.mean(inputs, axis=(1, 2), keepdims=self.keepdims)


class GlobalMaxPooling2D(_GlobalPooling2D):
    def call(self, inputs):
        return ops.max(inputs, axis=(1, 2), keepdims=self.keepdims)


GlobalAvgPool2D = GlobalAveragePooling2D
GlobalMaxPool2D = GlobalMaxPooling2D
