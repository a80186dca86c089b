"""Numeric preprocessing: Rescaling, Normalization (with adapt), Discretization, CategoryEncoding."""

from __future__ import annotations

import numpy as np

from dlgpu import ops
from dlgpu.autograd import Tensor
from dlgpu.layers.base import KerasTensor, Layer, flatten
from dlgpu.ops._core import array_module


class Rescaling(Layer):
    """``scale`` and ``offset`` are numbers, or per-channel sequences that broadcast against the last axis."""

    def __init__(self, scale, offset=0.0, **kwargs):
        super().__init__(**kwargs)
        self.supports_masking = True
        self.scale = self._constant("scale", scale)
        self.offset = self._constant("offset", offset)

    def _constant(self, name, value):
        try:
            array = np.asarray(value, dtype=np.float64)
        except (TypeError, ValueError):
            array = None
        if array is None or isinstance(value, (str, bool)):  # asarray takes "0.5" and True
            raise ValueError(f"Layer '{self.name}' (Rescaling): `{name}` must be a number or a sequence of numbers. "
                             f"Received: {name}={value!r}")
        return float(array) if array.ndim == 0 else array.tolist()

    def call(self, inputs):
        xp = array_module(inputs.data)
        scale, offset = self.scale, self.offset
        # Sequences become arrays of the input's dtype on the input's device; numbers stay Python floats,
        # which never widen a float32 tensor.
        if isinstance(scale, list):
            scale = xp.asarray(scale, dtype=inputs.data.dtype)
        if isinstance(offset, list):
            offset = xp.asarray(offset, dtype=inputs.data.dtype)
        return ops.add(ops.multiply(inputs, scale), offset)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "scale": self.scale, "offset": self.offset}


class _ArrayInputLayer(Layer):
    """A layer whose input may be a plain (nested) list of numbers, as Keras's preprocessing layers accept:
    Layer.__call__ would otherwise read a list as several inputs."""

    def __call__(self, inputs, *args, **kwargs):
        if isinstance(inputs, (list, tuple)) and not any(isinstance(t, (Tensor, KerasTensor)) for t in flatten(inputs)):
            inputs = np.asarray(inputs)
        return super().__call__(inputs, *args, **kwargs)


def _layer_error(layer, message):
    return ValueError(f"Layer '{layer.name}' ({type(layer).__name__}): {message}")


def _host(x):
    """A numpy array from a numpy/CuPy array, Tensor or nested list (adapt() statistics are computed on the host)."""
    from dlgpu.backend import device as _device
    return _device.to_numpy(x.data if isinstance(x, Tensor) else x)


def _batches(layer, data):
    """adapt() data as a stream of host arrays: from one array, a PyDataset, or an iterable of batches
    (an (x, y) or (x, y, sample_weight) tuple counts by its x, as Keras's _extract_batch)."""
    from dlgpu.utils import PyDataset
    if isinstance(data, (np.ndarray, Tensor)) or hasattr(data, "__cuda_array_interface__"):
        yield _host(data)
        return
    if isinstance(data, PyDataset):
        count = data.num_batches
        if count is None:
            raise _layer_error(layer, "adapt() needs a PyDataset with an end (num_batches is None)")
        dataset = data
        data = (dataset[i] for i in range(count))
    elif isinstance(data, (list, tuple)) and data and np.isscalar(data[0]):
        yield np.asarray(data)  # a flat list of numbers is one batch, not a list of scalar batches
        return
    elif not hasattr(data, "__iter__"):
        raise TypeError(f"Layer '{layer.name}' ({type(layer).__name__}): adapt() takes a numpy array, a tensor, a "
                        f"PyDataset or an iterable of batches; received {type(data).__name__}")
    empty = True
    for batch in data:
        empty = False
        yield _host(batch[0] if isinstance(batch, tuple) else batch)
    if empty:
        raise _layer_error(layer, "adapt() received no batches")


class Normalization(_ArrayInputLayer):
    """(x - mean) / sqrt(variance), per index of the kept ``axis`` (keras.layers.Normalization).

    The statistics come from ``mean``/``variance`` given here, or from ``adapt(data)``, which stores them in
    the non-trainable weights ``mean`` and ``variance`` (saved with the model).  ``invert=True`` maps
    normalised values back.  Keras also keeps an integer ``count`` weight that nothing reads; it is left
    out here, since every dlgpu weight is float32.
    """

    def __init__(self, axis=-1, mean=None, variance=None, invert=False, **kwargs):
        super().__init__(**kwargs)
        self.supports_masking = True
        if axis is None:
            axis = ()
        elif isinstance(axis, (int, np.integer)):
            axis = (int(axis),)
        else:
            axis = tuple(int(a) for a in axis)
        self.axis = axis
        self.invert = bool(invert)
        if (mean is None) != (variance is None):
            raise _layer_error(self, f"`mean` and `variance` must be set together. Received: mean={mean!r}, "
                                     f"variance={variance!r}")
        if mean is not None:
            if np.shape(mean) != np.shape(variance):
                raise _layer_error(self, f"`mean` and `variance` must have the same shape. Received: mean shape "
                                         f"{np.shape(mean)}, variance shape {np.shape(variance)}")
            if np.ndim(mean) > len(axis):
                raise _layer_error(self, f"the rank of `mean` must be at most the number of axes ({len(axis)}). "
                                         f"Received: mean shape {np.shape(mean)} for axis={axis}")
        self.input_mean = mean
        self.input_variance = variance
        self._constants = None  # given mean/variance, broadcast to the input's rank (host arrays)
        self._on_device = {}    # ... and their copies per array module (numpy, CuPy)

    def build(self, input_shape):
        ndim = len(input_shape)
        if any(a < -ndim or a >= ndim for a in self.axis):
            raise _layer_error(self, f"every `axis` must lie in [-{ndim}, {ndim}) for inputs of rank {ndim}. "
                                     f"Received: axis={self.axis}, input shape {tuple(input_shape)}")
        keep = tuple(sorted(a % ndim for a in self.axis))
        for d in keep:
            if input_shape[d] is None:
                raise _layer_error(self, f"the kept axes must have a known size. Received: axis={self.axis}, "
                                         f"input shape {tuple(input_shape)} (axis {d} is None)")
        self._keep_axis = keep
        self._reduce_axis = tuple(d for d in range(ndim) if d not in keep)
        self._broadcast_shape = tuple(input_shape[d] if d in keep else 1 for d in range(ndim))
        self._build_input_shape = tuple(input_shape)
        stats_shape = tuple(input_shape[d] for d in keep)
        if self.input_mean is None:
            self.mean = self.add_weight(stats_shape, "zeros", name="mean", trainable=False)
            self.variance = self.add_weight(stats_shape, "ones", name="variance", trainable=False)
        else:
            # Keras's rule: the given values fill the last kept axes, the rest broadcast.
            def expand(value):
                value = np.asarray(value, dtype=np.float32)
                shape = [1] * ndim
                for i in range(1, value.ndim + 1):
                    shape[keep[-i]] = value.shape[-i]
                try:
                    return np.broadcast_to(value.reshape(shape), self._broadcast_shape)
                except ValueError:
                    raise _layer_error(self, f"`mean`/`variance` of shape {value.shape} do not broadcast to the "
                                             f"kept axes {stats_shape} of input shape {tuple(input_shape)}") from None
            self._constants = (expand(self.input_mean), expand(self.input_variance))
        self.built = True

    def adapt(self, data):
        """Mean and variance of ``data`` (an array, a PyDataset, or an iterable of batches) over the reduced
        axes, merged batch by batch with Chan's rule as Keras does; stored in the ``mean``/``variance`` weights."""
        if self.input_mean is not None:
            raise _layer_error(self, "adapt() cannot be used on a layer built with fixed `mean` and `variance`")
        total_mean = total_var = None
        total_count = 0
        for batch in _batches(self, data):
            if not self.built:
                self._maybe_build(tuple(batch.shape))
            elif batch.ndim != len(self._build_input_shape) or any(
                    batch.shape[d] != self._build_input_shape[d] for d in self._keep_axis):
                raise _layer_error(self, f"the layer was built for input shape {self._build_input_shape} but "
                                         f"adapt() received a batch of shape {batch.shape}")
            # float64 on the host: a float32 sum over 60000 images loses digits of the mean and variance.
            batch = batch.astype(np.float64, copy=False)
            mean = batch.mean(axis=self._reduce_axis)
            var = batch.var(axis=self._reduce_axis)
            count = int(np.prod([batch.shape[d] for d in self._reduce_axis]))
            if total_mean is None:
                total_mean, total_var, total_count = mean, var, count
                continue
            new_count = total_count + count
            w_new = count / new_count
            merged = total_mean * (1 - w_new) + mean * w_new
            total_var = ((total_var + (total_mean - merged) ** 2) * (1 - w_new)
                         + (var + (mean - merged) ** 2) * w_new)
            total_mean, total_count = merged, new_count
        from dlgpu.backend import device as _device
        self.mean.assign(_device.to_device(total_mean.astype(np.float32), self.mean.device))
        self.variance.assign(_device.to_device(total_var.astype(np.float32), self.variance.device))

    def _statistics(self, xp):
        if self._constants is None:
            return (ops.reshape(self.mean, self._broadcast_shape), ops.reshape(self.variance, self._broadcast_shape))
        if xp not in self._on_device:
            self._on_device[xp] = tuple(xp.asarray(c) for c in self._constants)
        return self._on_device[xp]

    def call(self, inputs):
        mean, variance = self._statistics(array_module(inputs.data))
        from dlgpu.backend import epsilon
        scale = ops.maximum(ops.sqrt(variance), epsilon())
        if self.invert:
            return self._in_compute_dtype(ops.add(mean, ops.multiply(inputs, scale)))
        return self._in_compute_dtype(ops.divide(ops.subtract(inputs, mean), scale))

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        as_list = (lambda v: None if v is None else np.asarray(v).tolist())
        return {**super().get_config(), "axis": self.axis, "invert": self.invert,
                "mean": as_list(self.input_mean), "variance": as_list(self.input_variance)}


def _encode(layer, indices, mode, depth, count_weights=None):
    """Integer ``indices`` (a device array) as int32, or one_hot / multi_hot / count vectors of ``depth``
    (Keras's encode_categorical_inputs): one_hot adds an axis (replacing a trailing axis of size 1);
    multi_hot and count reduce the last axis of a rank-2 input, or the only axis of a rank-1 one."""
    xp = array_module(indices)
    if mode == "int":
        return Tensor(indices.astype(np.int32))
    if indices.ndim == 0:
        indices = indices[None]
    if mode != "one_hot" and indices.ndim > 2:
        raise _layer_error(layer, f"output_mode={mode!r} takes inputs of rank 1 or 2; received shape "
                                  f"{tuple(indices.shape)}")
    if indices.size and (int(indices.min()) < 0 or int(indices.max()) >= depth):
        raise _layer_error(layer, f"input values must lie in [0, {depth}); received values from "
                                  f"{int(indices.min())} to {int(indices.max())}")
    if mode == "one_hot" and indices.ndim > 1 and indices.shape[-1] == 1:
        indices = indices[..., 0]
    hot = indices[..., None] == xp.arange(depth)
    if mode == "one_hot":
        return Tensor(hot.astype(np.float32))
    if mode == "multi_hot":
        return Tensor(hot.any(axis=-2).astype(np.float32))
    if count_weights is None:
        return Tensor(hot.sum(axis=-2, dtype=np.float32))
    return Tensor((hot * count_weights.astype(np.float32)[..., None]).sum(axis=-2))


class Discretization(_ArrayInputLayer):
    """Bucket index of each value: i where bin_boundaries[i-1] <= x < bin_boundaries[i] (numpy.digitize),
    as int32 or encoded (keras.layers.Discretization)."""

    _MODES = ("int", "one_hot", "multi_hot", "count")

    def __init__(self, bin_boundaries=None, num_bins=None, epsilon=0.01, output_mode="int", sparse=False, **kwargs):
        super().__init__(**kwargs)
        if sparse:
            raise NotImplementedError(f"Layer '{self.name}' (Discretization): sparse=True is not supported "
                                      f"(dlgpu has no sparse tensors)")
        if output_mode not in self._MODES:
            raise _layer_error(self, f"`output_mode` must be one of {self._MODES}. Received: "
                                     f"output_mode={output_mode!r}")
        if num_bins is not None and num_bins < 0:
            raise _layer_error(self, f"`num_bins` must be >= 0. Received: num_bins={num_bins}")
        if num_bins is not None and bin_boundaries is not None:
            raise _layer_error(self, f"set only one of `num_bins` and `bin_boundaries`. Received: "
                                     f"num_bins={num_bins}, bin_boundaries={bin_boundaries}")
        if num_bins is None and bin_boundaries is None:
            raise _layer_error(self, "set either `num_bins` (then call adapt) or `bin_boundaries`")
        if bin_boundaries is not None:
            bin_boundaries = [float(b) for b in bin_boundaries]
            if any(a > b for a, b in zip(bin_boundaries, bin_boundaries[1:])):
                raise _layer_error(self, f"`bin_boundaries` must be sorted. Received: {bin_boundaries}")
        self.bin_boundaries = bin_boundaries
        self.num_bins = num_bins
        self.epsilon = epsilon
        self.output_mode = output_mode
        self.sparse = False
        self._bins_on_device = {}

    def adapt(self, data, steps=None):
        """Boundaries at the quantiles 1/num_bins, ..., (num_bins-1)/num_bins of ``data``.  Exact quantiles
        (numpy's 'interpolated_inverted_cdf', which is what Keras's summary computes while it holds every value);
        Keras's streaming summary approximates them within ``epsilon`` on large data."""
        if self.num_bins is None:
            raise _layer_error(self, "adapt() needs `num_bins`; this layer was built with `bin_boundaries`")
        values = []
        for i, batch in enumerate(_batches(self, data)):
            if steps is not None and i >= steps:
                break
            values.append(batch.astype(np.float32).reshape(-1))
        values = np.concatenate(values)
        quantiles = np.arange(1, self.num_bins) / self.num_bins
        self.bin_boundaries = np.quantile(values, quantiles, method="interpolated_inverted_cdf").tolist()
        self._bins_on_device = {}

    def call(self, inputs):
        if self.bin_boundaries is None:
            raise _layer_error(self, "pass `bin_boundaries`, or call adapt(data) first")
        xp = array_module(inputs.data)
        if xp not in self._bins_on_device:
            self._bins_on_device[xp] = xp.asarray(self.bin_boundaries, dtype=np.float32)
        # searchsorted(side='right') is digitize(right=False), and CuPy has it on every version
        indices = xp.searchsorted(self._bins_on_device[xp], inputs.data, side="right")
        return _encode(self, indices, self.output_mode, len(self.bin_boundaries) + 1)

    def _output_dtype(self):
        return "int32" if self.output_mode == "int" else self.dtype

    def compute_output_shape(self, input_shape):
        depth = len(self.bin_boundaries) + 1 if self.bin_boundaries is not None else self.num_bins
        return _encoded_shape(self.output_mode, tuple(input_shape), depth)

    def get_config(self):
        config = {**super().get_config(), "bin_boundaries": self.bin_boundaries, "num_bins": self.num_bins,
                  "epsilon": self.epsilon, "output_mode": self.output_mode, "sparse": self.sparse}
        del config["trainable"]  # Keras's Discretization takes no `trainable` and fails on a config that has it
        config["dtype"] = self.dtype  # Keras writes its variable dtype, a name, not the policy
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        # An adapted layer has both; __init__ refuses both, so the boundaries are restored afterwards (as Keras).
        boundaries = config.pop("bin_boundaries") if config.get("num_bins") is not None else None
        layer = cls(**config)
        if boundaries is not None:
            layer.bin_boundaries = boundaries
        return layer


def _encoded_shape(mode, shape, depth):
    if mode == "int":
        return shape
    if len(shape) == 0:
        return (depth,)
    if mode == "one_hot":
        return (shape[:-1] if len(shape) > 1 and shape[-1] == 1 else shape) + (depth,)
    return shape[:-1] + (depth,)


class CategoryEncoding(_ArrayInputLayer):
    """Integer category ids as one_hot, multi_hot (default) or count vectors of ``num_tokens`` floats
    (keras.layers.CategoryEncoding); ids must lie in [0, num_tokens)."""

    _accepts_integer_inputs = True

    def __init__(self, num_tokens=None, output_mode="multi_hot", sparse=False, **kwargs):
        super().__init__(**kwargs)
        if output_mode == "binary":  # Keras's deprecated name
            output_mode = "multi_hot"
        if output_mode not in ("count", "one_hot", "multi_hot"):
            raise _layer_error(self, f"`output_mode` must be one of ('count', 'one_hot', 'multi_hot'). Received: "
                                     f"output_mode={output_mode!r}")
        if sparse:
            raise NotImplementedError(f"Layer '{self.name}' (CategoryEncoding): sparse=True is not supported "
                                      f"(dlgpu has no sparse tensors)")
        if num_tokens is None:
            raise _layer_error(self, "`num_tokens` must be set (the number of categories)")
        if not isinstance(num_tokens, (int, np.integer)) or isinstance(num_tokens, bool) or num_tokens < 1:
            raise _layer_error(self, f"`num_tokens` must be an integer >= 1. Received: num_tokens={num_tokens!r}")
        self.num_tokens = int(num_tokens)
        self.output_mode = output_mode
        self.sparse = False

    def call(self, inputs, count_weights=None):
        data = inputs.data
        if data.dtype.kind == "f":
            if not bool((data == array_module(data).round(data)).all()):
                raise _layer_error(self, "inputs must be integer category ids; received non-integer floats")
            data = data.astype(np.int64)
        if count_weights is not None:
            if self.output_mode != "count":
                raise _layer_error(self, f"`count_weights` is only used with output_mode='count'. Received: "
                                         f"output_mode={self.output_mode!r}")
            count_weights = count_weights.data if isinstance(count_weights, Tensor) else \
                array_module(data).asarray(count_weights)
            if tuple(count_weights.shape) != tuple(data.shape):
                raise _layer_error(self, f"`count_weights` must have the inputs' shape {tuple(data.shape)}; "
                                         f"received {tuple(count_weights.shape)}")
        return _encode(self, data, self.output_mode, self.num_tokens, count_weights)

    def compute_output_shape(self, input_shape):
        return _encoded_shape(self.output_mode, tuple(input_shape), self.num_tokens)

    def get_config(self):
        return {**super().get_config(), "num_tokens": self.num_tokens, "output_mode": self.output_mode,
                "sparse": self.sparse}
