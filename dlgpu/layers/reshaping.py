"""ZeroPadding2D, Cropping2D, UpSampling2D (channels_last), Permute, RepeatVector: shape ops as layers."""

from __future__ import annotations

import numpy as np

from dlgpu import ops
from dlgpu.layers.base import InputSpec, Layer
from dlgpu.layers.core import _positive_int
from dlgpu.ops.window import normalize_tuple


def _channels_last(layer, data_format):
    if data_format not in (None, "channels_last"):
        raise ValueError(f"Layer '{layer.name}': only data_format='channels_last' (NHWC) is supported; "
                         f"received data_format={data_format!r}")


def _two_pairs(layer, name, value):
    """An int, (rows, cols) or ((top, bottom), (left, right)) of non-negative ints as the last form."""
    def count(v):
        return isinstance(v, (int, np.integer)) and not isinstance(v, bool) and v >= 0

    def pair(v):
        if count(v):
            return (int(v), int(v))
        if isinstance(v, (list, tuple)) and len(v) == 2 and all(count(e) for e in v):
            return (int(v[0]), int(v[1]))
        return None
    rows_cols = (value, value) if count(value) else value
    pairs = [pair(v) for v in rows_cols] if isinstance(rows_cols, (list, tuple)) and len(rows_cols) == 2 else [None]
    if None in pairs:
        raise ValueError(f"Layer '{layer.name}' ({type(layer).__name__}): `{name}` must be a non-negative int, a "
                         f"tuple of 2 ints (rows, cols) or a tuple of 2 tuples of 2 ints ((top, bottom), (left, "
                         f"right)). Received: {name}={value!r}")
    return tuple(pairs)


class ZeroPadding2D(Layer):
    """Rows of zeros above and below, columns left and right, of NHWC images."""

    def __init__(self, padding=(1, 1), data_format=None, **kwargs):
        super().__init__(**kwargs)
        _channels_last(self, data_format)
        self.padding = _two_pairs(self, "padding", padding)
        self.input_spec = InputSpec(ndim=4)

    def call(self, inputs):
        return ops.pad(inputs, ((0, 0), *self.padding, (0, 0)))

    def compute_output_shape(self, input_shape):
        n, h, w, c = input_shape
        (top, bottom), (left, right) = self.padding
        return (n, None if h is None else h + top + bottom, None if w is None else w + left + right, c)

    def get_config(self):
        return {**super().get_config(), "padding": [list(p) for p in self.padding], "data_format": "channels_last"}


class Cropping2D(Layer):
    """Drops rows at the top and bottom and columns at the left and right of NHWC images."""

    def __init__(self, cropping=((0, 0), (0, 0)), data_format=None, **kwargs):
        super().__init__(**kwargs)
        _channels_last(self, data_format)
        self.cropping = _two_pairs(self, "cropping", cropping)
        self.input_spec = InputSpec(ndim=4)

    def _kept(self, size, axis, input_shape):
        """Rows (axis 0) or columns (axis 1) left after cropping; at least one must remain."""
        if size is None:
            return None
        kept = size - sum(self.cropping[axis])
        if kept <= 0:
            raise ValueError(f"Layer '{self.name}' (Cropping2D): `cropping` {self.cropping} removes every "
                             f"{('row', 'column')[axis]} of an input of shape {tuple(input_shape)}; each crop "
                             f"must be smaller than the image.")
        return kept

    def call(self, inputs):
        self.compute_output_shape(inputs.shape)  # input_spec does not see the sizes: check every call
        (top, bottom), (left, right) = self.cropping
        _, h, w, _ = inputs.shape
        return inputs[:, top:h - bottom, left:w - right, :]

    def compute_output_shape(self, input_shape):
        n, h, w, c = input_shape
        return (n, self._kept(h, 0, input_shape), self._kept(w, 1, input_shape), c)

    def build(self, input_shape):
        self.compute_output_shape(input_shape)
        self.built = True

    def get_config(self):
        return {**super().get_config(), "cropping": [list(p) for p in self.cropping], "data_format": "channels_last"}


class UpSampling2D(Layer):
    """Each row repeated size[0] times and each column size[1] times (nearest-neighbour upsampling)."""

    _NOT_IMPLEMENTED = ("bilinear", "bicubic", "lanczos3", "lanczos5")

    def __init__(self, size=(2, 2), data_format=None, interpolation="nearest", **kwargs):
        super().__init__(**kwargs)
        _channels_last(self, data_format)
        self.size = normalize_tuple(size, 2, "size", f"Layer '{self.name}'")
        self.interpolation = str(interpolation).lower()
        if self.interpolation in self._NOT_IMPLEMENTED:
            raise NotImplementedError(f"Layer '{self.name}' (UpSampling2D): interpolation={interpolation!r} is not "
                                      f"implemented in dlgpu; only interpolation='nearest' is.")
        if self.interpolation != "nearest":
            raise ValueError(f"Layer '{self.name}' (UpSampling2D): `interpolation` must be one of 'nearest', "
                             f"{', '.join(repr(m) for m in self._NOT_IMPLEMENTED)}. Received: "
                             f"interpolation={interpolation!r}")
        self.input_spec = InputSpec(ndim=4)

    def call(self, inputs):
        return ops.repeat(ops.repeat(inputs, self.size[0], axis=1), self.size[1], axis=2)

    def compute_output_shape(self, input_shape):
        n, h, w, c = input_shape
        return (n, None if h is None else h * self.size[0], None if w is None else w * self.size[1], c)

    def get_config(self):
        return {**super().get_config(), "size": list(self.size), "data_format": "channels_last",
                "interpolation": self.interpolation}


class Permute(Layer):
    """Reorders the non-batch axes: dims=(2, 1) swaps the two axes after the batch (indices start at 1)."""

    def __init__(self, dims, **kwargs):
        super().__init__(**kwargs)
        dims = tuple(dims) if isinstance(dims, (list, tuple)) else dims
        if not isinstance(dims, tuple) or sorted(dims) != list(range(1, len(dims) + 1)):
            raise ValueError(f"Layer '{self.name}' (Permute): `dims` must be a permutation of 1..n (the batch axis "
                             f"0 stays first). Received: dims={dims!r}")
        self.dims = tuple(int(d) for d in dims)
        self.input_spec = InputSpec(ndim=len(self.dims) + 1)

    def call(self, inputs):
        return ops.transpose(inputs, (0,) + self.dims)

    def compute_output_shape(self, input_shape):
        return (input_shape[0],) + tuple(input_shape[d] for d in self.dims)

    def get_config(self):
        return {**super().get_config(), "dims": list(self.dims)}


class RepeatVector(Layer):
    """(batch, features) -> (batch, n, features): the input repeated n times along a new axis 1."""

    def __init__(self, n, **kwargs):
        super().__init__(**kwargs)
        self.n = _positive_int(f"'{self.name}' (RepeatVector)", "n", n)
        self.input_spec = InputSpec(ndim=2)

    def call(self, inputs):
        return ops.repeat(ops.expand_dims(inputs, 1), self.n, axis=1)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.n, input_shape[1])

    def get_config(self):
        return {**super().get_config(), "n": self.n}
