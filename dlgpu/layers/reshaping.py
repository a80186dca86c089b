"""ZeroPadding, Cropping and UpSampling in 1, 2 and 3 dimensions (channels_last), Permute, RepeatVector: shape
ops as layers."""

from __future__ import annotations

import numpy as np

from dlgpu import ops
from dlgpu.autograd import Tensor
from dlgpu.layers.base import InputSpec, Layer
from dlgpu.layers.core import _positive_int
from dlgpu.ops._core import array_module
from dlgpu.ops.window import normalize_tuple


def _channels_last(layer, data_format):
    if data_format not in (None, "channels_last"):
        raise ValueError(f"Layer '{layer.name}': only data_format='channels_last' (NHWC) is supported; "
                         f"received data_format={data_format!r}")


_AXIS_NAMES = {1: ("step",), 2: ("row", "column"), 3: ("depth slice", "row", "column")}


def _count(v):
    return isinstance(v, (int, np.integer)) and not isinstance(v, bool) and v >= 0


def _pair(v):
    if _count(v):
        return (int(v), int(v))
    if isinstance(v, (list, tuple)) and len(v) == 2 and all(_count(e) for e in v):
        return (int(v[0]), int(v[1]))
    return None


def _pairs(layer, name, value, rank):
    """(before, after) per spatial axis.  2-D and 3-D: an int, ``rank`` ints (symmetric per axis) or ``rank``
    pairs.  1-D: an int or one pair (before, after), as Keras's ZeroPadding1D and Cropping1D take them."""
    if rank == 1:
        pairs = [_pair(value)]
        forms = "a non-negative int or a tuple of 2 ints (before, after)"
    else:
        per_axis = (value,) * rank if _count(value) else value
        pairs = ([_pair(v) for v in per_axis] if isinstance(per_axis, (list, tuple)) and len(per_axis) == rank
                 else [None])
        forms = ("a non-negative int, a tuple of 2 ints (rows, cols) or a tuple of 2 tuples of 2 ints ((top, "
                 "bottom), (left, right))" if rank == 2 else
                 f"a non-negative int, a tuple of {rank} ints or a tuple of {rank} tuples of 2 ints")
    if None in pairs:
        raise ValueError(f"Layer '{layer.name}' ({type(layer).__name__}): `{name}` must be {forms}. "
                         f"Received: {name}={value!r}")
    return tuple(pairs)


def _pairs_config(layer, pairs):
    return list(pairs[0]) if layer._rank == 1 else [list(p) for p in pairs]


class _ZeroPadding(Layer):
    """Zeros before and after each spatial axis of channels_last inputs."""

    _rank = None

    def __init__(self, padding, data_format, **kwargs):
        super().__init__(**kwargs)
        _channels_last(self, data_format)
        self.padding = _pairs(self, "padding", padding, self._rank)
        self.input_spec = InputSpec(ndim=self._rank + 2)

    def call(self, inputs):
        return ops.pad(inputs, ((0, 0), *self.padding, (0, 0)))

    def compute_output_shape(self, input_shape):
        spatial = [None if s is None else s + before + after
                   for s, (before, after) in zip(input_shape[1:-1], self.padding)]
        return (input_shape[0], *spatial, input_shape[-1])

    def get_config(self):
        return {**super().get_config(), "padding": _pairs_config(self, self.padding), "data_format": "channels_last"}


class ZeroPadding1D(_ZeroPadding):
    """Zeros before and after the steps of (batch, steps, features) inputs."""

    _rank = 1

    def __init__(self, padding=1, data_format=None, **kwargs):
        super().__init__(padding, data_format, **kwargs)


class ZeroPadding2D(_ZeroPadding):
    """Rows of zeros above and below, columns left and right, of NHWC images."""

    _rank = 2

    def __init__(self, padding=(1, 1), data_format=None, **kwargs):
        super().__init__(padding, data_format, **kwargs)


class ZeroPadding3D(_ZeroPadding):
    """Zeros before and after each of the three spatial axes of (batch, d1, d2, d3, channels) volumes."""

    _rank = 3

    def __init__(self, padding=((1, 1), (1, 1), (1, 1)), data_format=None, **kwargs):
        super().__init__(padding, data_format, **kwargs)


class _Cropping(Layer):
    """Drops entries at the start and end of each spatial axis of channels_last inputs."""

    _rank = None

    def __init__(self, cropping, data_format, **kwargs):
        super().__init__(**kwargs)
        _channels_last(self, data_format)
        self.cropping = _pairs(self, "cropping", cropping, self._rank)
        self.input_spec = InputSpec(ndim=self._rank + 2)

    def _kept(self, size, axis, input_shape):
        """Entries of one spatial axis left after cropping; at least one must remain."""
        if size is None:
            return None
        kept = size - sum(self.cropping[axis])
        if kept <= 0:
            crop = self.cropping[0] if self._rank == 1 else self.cropping
            raise ValueError(f"Layer '{self.name}' ({type(self).__name__}): `cropping` {crop} removes every "
                             f"{_AXIS_NAMES[self._rank][axis]} of an input of shape {tuple(input_shape)}; each "
                             f"crop must be smaller than the input.")
        return kept

    def call(self, inputs):
        self.compute_output_shape(inputs.shape)  # input_spec does not see the sizes: check every call
        index = tuple(slice(before, size - after) for (before, after), size in zip(self.cropping, inputs.shape[1:]))
        return inputs[(slice(None), *index, slice(None))]

    def compute_output_shape(self, input_shape):
        spatial = [self._kept(size, axis, input_shape) for axis, size in enumerate(input_shape[1:-1])]
        return (input_shape[0], *spatial, input_shape[-1])

    def build(self, input_shape):
        self.compute_output_shape(input_shape)
        self.built = True

    def get_config(self):
        config = {**super().get_config(), "cropping": _pairs_config(self, self.cropping)}
        if self._rank > 1:  # Keras's Cropping1D takes no data_format
            config["data_format"] = "channels_last"
        return config


class Cropping1D(_Cropping):
    """Drops steps at the start and end of (batch, steps, features) inputs."""

    _rank = 1

    def __init__(self, cropping=(1, 1), **kwargs):
        super().__init__(cropping, None, **kwargs)  # no data_format argument in Keras


class Cropping2D(_Cropping):
    """Drops rows at the top and bottom and columns at the left and right of NHWC images."""

    _rank = 2

    def __init__(self, cropping=((0, 0), (0, 0)), data_format=None, **kwargs):
        super().__init__(cropping, data_format, **kwargs)


class Cropping3D(_Cropping):
    """Drops entries at the start and end of each spatial axis of (batch, d1, d2, d3, channels) volumes."""

    _rank = 3

    def __init__(self, cropping=((1, 1), (1, 1), (1, 1)), data_format=None, **kwargs):
        super().__init__(cropping, data_format, **kwargs)


def _upsample_bilinear(x, axis, factor):
    """``x`` upsampled ``factor`` times along ``axis`` by linear interpolation with half-pixel centres and
    edge clamping (TensorFlow's and JAX's resize, torch's align_corners=False, which Keras's backends share).

    Output entry k * factor + r samples the input at k + d_r, d_r = (r + 0.5) / factor - 0.5 in (-0.5, 0.5):
    so it mixes entry k with its previous (d_r < 0) or next (d_r > 0) neighbour, with the same weights for
    every k.  Three shifted copies (edges repeated, which is the clamping) and a broadcast product do it.
    """
    xp = array_module(x.data)
    size = x.shape[axis]

    def take(start, stop):
        return x[(slice(None),) * axis + (slice(start, stop),)]
    prev = ops.concatenate([take(0, 1), take(0, size - 1)], axis=axis)
    nxt = ops.concatenate([take(1, size), take(size - 1, size)], axis=axis)
    d = (np.arange(factor) + 0.5) / factor - 0.5
    trailing = (1,) * (x.ndim - axis - 1)
    out = None
    for neighbour, weights in ((prev, np.maximum(-d, 0)), (x, 1 - np.abs(d)), (nxt, np.maximum(d, 0))):
        w = Tensor(xp.asarray(weights.reshape((factor,) + trailing), dtype=x.data.dtype))
        term = ops.multiply(ops.expand_dims(neighbour, axis + 1), w)  # (..., size, factor, ...)
        out = term if out is None else ops.add(out, term)
    return ops.reshape(out, x.shape[:axis] + (size * factor,) + x.shape[axis + 1:])


class _UpSampling(Layer):
    """Each entry of each spatial axis repeated ``size`` times (nearest neighbour) or interpolated."""

    _rank = None

    def __init__(self, size, data_format, interpolation, **kwargs):
        super().__init__(**kwargs)
        _channels_last(self, data_format)
        self.size = normalize_tuple(size, self._rank, "size", f"Layer '{self.name}'")
        self.interpolation = interpolation
        self.input_spec = InputSpec(ndim=self._rank + 2)

    def call(self, inputs):
        for axis, factor in enumerate(self.size, start=1):
            if factor == 1:
                continue
            if self.interpolation == "bilinear":
                inputs = _upsample_bilinear(inputs, axis, factor)
            else:
                inputs = ops.repeat(inputs, factor, axis=axis)
        return inputs

    def compute_output_shape(self, input_shape):
        spatial = [None if s is None else s * f for s, f in zip(input_shape[1:-1], self.size)]
        return (input_shape[0], *spatial, input_shape[-1])


class UpSampling1D(_UpSampling):
    """Each step of (batch, steps, features) inputs repeated ``size`` times."""

    _rank = 1

    def __init__(self, size=2, **kwargs):
        if not isinstance(size, (int, np.integer)) or isinstance(size, bool):
            raise TypeError(f"UpSampling1D: expected an integer value for `size`, got {type(size).__name__}: "
                            f"size={size!r}")
        super().__init__(int(size), None, "nearest", **kwargs)  # Keras takes neither argument here

    def get_config(self):
        return {**super().get_config(), "size": self.size[0]}


class UpSampling2D(_UpSampling):
    """Rows repeated size[0] times and columns size[1] times (nearest), or interpolated bilinearly."""

    _rank = 2
    _NOT_IMPLEMENTED = ("bicubic", "lanczos3", "lanczos5")

    def __init__(self, size=(2, 2), data_format=None, interpolation="nearest", **kwargs):
        super().__init__(size, data_format, "nearest", **kwargs)
        self.interpolation = str(interpolation).lower()
        if self.interpolation in self._NOT_IMPLEMENTED:
            raise NotImplementedError(f"Layer '{self.name}' (UpSampling2D): interpolation={interpolation!r} is not "
                                      f"implemented in dlgpu; only 'nearest' and 'bilinear' are.")
        if self.interpolation not in ("nearest", "bilinear"):
            raise ValueError(f"Layer '{self.name}' (UpSampling2D): `interpolation` must be one of 'nearest', "
                             f"'bilinear', {', '.join(repr(m) for m in self._NOT_IMPLEMENTED)}. Received: "
                             f"interpolation={interpolation!r}")

    def get_config(self):
        return {**super().get_config(), "size": list(self.size), "data_format": "channels_last",
                "interpolation": self.interpolation}


class UpSampling3D(_UpSampling):
    """Each entry of the three spatial axes repeated size[i] times (nearest neighbour, as Keras)."""

    _rank = 3

    def __init__(self, size=(2, 2, 2), data_format=None, **kwargs):
        super().__init__(size, data_format, "nearest", **kwargs)

    def get_config(self):
        return {**super().get_config(), "size": list(self.size), "data_format": "channels_last"}


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
