"""keras.quantizers: the pieces of Keras 3's post-training quantization (keras/src/quantizers/).

``abs_max_quantize`` is the int8 scheme ``model.quantize("int8")`` uses (dlgpu/layers/quantized.py): a scale
``127 / (max|x| + epsilon)`` along ``axis``, and ``round(x * scale)`` clipped to ``value_range``, so that
``q / scale`` gives x back to half a step.  The arithmetic follows Keras's step for step in float32 (the
scale is the float32 quotient, rounding is half to even as torch and numpy round), which makes the int8
values and scales equal to Keras's, not only close.  Everything runs with the array module of the input,
so a CuPy weight is quantized on the GPU.

``compute_float8_scale`` and ``quantize_and_dequantize`` are Keras's float8 helpers.  numpy and CuPy have
no float8 dtype, so the float8 rounding is done in float32 arithmetic (round the significand to the
format's bits, half to even, as a cast to float8 does); the "float8" quantization mode itself (delayed
scaling during training) is not implemented, see dlgpu/layers/quantized.py.
"""

from __future__ import annotations

import inspect

import numpy as np

from dlgpu.autograd import Tensor

__all__ = ["Quantizer", "AbsMaxQuantizer", "QuantizationConfig", "Int8QuantizationConfig", "abs_max_quantize",
           "compute_float8_scale", "quantize_and_dequantize", "get", "serialize", "deserialize"]

_EPSILON = 1e-7  # Keras's backend.epsilon() at import time, the default of its quantizers

# (significand bits, smallest normal exponent, largest finite value) of the float8 formats Keras uses
_FLOAT8 = {"float8_e4m3fn": (3, -6, 448.0), "float8_e5m2": (2, -14, 57344.0)}


def _array(x):
    """The array of a Tensor, array or nested list (float64 lists become float32, as everywhere)."""
    return x.data if isinstance(x, Tensor) else Tensor(x).data


def _xp(array):
    from dlgpu.ops._core import array_module
    return array_module(array)


def _axes(axis, ndim):
    axes = (axis,) if isinstance(axis, (int, np.integer)) else tuple(axis)
    out = []
    for a in axes:
        if not -ndim <= int(a) < ndim:
            raise ValueError(f"abs_max_quantize: axis {a} is out of range for an input of rank {ndim}")
        out.append(int(a) % ndim)
    return tuple(out)


def abs_max_quantize_array(x, axis, value_range=(-127, 127), dtype="int8", epsilon=_EPSILON):
    """abs_max_quantize on an array: (quantized array, float scale array with ``axis`` kept as size 1)."""
    xp = _xp(x)
    if x.dtype.kind != "f":
        raise TypeError(f"abs_max_quantize: expected a float input; received dtype {x.dtype}")
    axes = _axes(axis, x.ndim)
    low, high = value_range
    # float32 throughout, as Keras computes it: divide(127, max|x| + eps), cast to the input's dtype
    amax = xp.max(xp.abs(x), axis=axes, keepdims=True)
    scale = (float(high) / (amax + float(epsilon))).astype(x.dtype, copy=False)  # Python scalars stay weak
    q = xp.clip(xp.round(x * scale), low, high).astype(dtype)
    return q, scale


def abs_max_quantize(inputs, axis, value_range=(-127, 127), dtype="int8", epsilon=_EPSILON, to_numpy=False):
    """(quantized tensor, scale): ``round(x * scale)`` clipped to ``value_range`` with
    ``scale = value_range[1] / (max(|x|, axis) + epsilon)``, the scale keeping ``axis`` as size 1.
    ``to_numpy`` (Keras: compute on the host to save device memory) quantizes a copy on the CPU and puts
    the results back where the input was."""
    x = _array(inputs)
    if not to_numpy or isinstance(x, np.ndarray):
        q, scale = abs_max_quantize_array(x, axis, value_range, dtype, epsilon)
        return Tensor(q), Tensor(scale)
    from dlgpu.backend import device as _device
    where = _device.device_of_array(x)
    q, scale = abs_max_quantize_array(_device.to_numpy(x), axis, value_range, dtype, epsilon)
    return Tensor(_device.to_device(q, where)), Tensor(_device.to_device(scale, where))


class Quantizer:
    """keras.Quantizer: the base of the quantizers a QuantizationConfig names; ``__call__`` returns its
    input unchanged."""

    def __init__(self, output_dtype="int8"):
        self.output_dtype = output_dtype

    def __call__(self, x):
        return x

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def get_config(self):
        raise NotImplementedError(f"{self} does not implement get_config()")


class AbsMaxQuantizer(Quantizer):
    """abs_max_quantize as an object: ``quantizer(x, axis=-1)`` returns (quantized, scale)."""

    def __init__(self, axis=None, value_range=(-127, 127), epsilon=_EPSILON, output_dtype="int8"):
        super().__init__(output_dtype=output_dtype)
        self.axis = None if axis is None else ((axis,) if isinstance(axis, int) else tuple(axis))
        if not (isinstance(value_range, (list, tuple)) and len(value_range) == 2 and value_range[0] < value_range[1]):
            raise ValueError(f"AbsMaxQuantizer: `value_range` must be (low, high) with low < high. Received: "
                             f"value_range={value_range!r}")
        self.value_range = tuple(value_range)
        self.epsilon = epsilon
        if output_dtype == "int8" and (value_range[0] < -128 or value_range[1] > 127):
            raise ValueError(f"Quantizer with output_dtype='int8' requires value_range to be within the interval "
                             f"[-128, 127]. Received: value_range={value_range}")

    def __call__(self, x, axis=None, to_numpy=False):
        axis = self.axis if axis is None else axis
        return abs_max_quantize(x, -1 if axis is None else axis, self.value_range, self.output_dtype, self.epsilon,
                                to_numpy)

    def get_config(self):
        config = {"value_range": self.value_range, "epsilon": self.epsilon, "output_dtype": self.output_dtype}
        if self.axis is not None:
            config["axis"] = self.axis
        return config


class QuantizationConfig:
    """keras.quantizers.QuantizationConfig: the weight and activation quantizers of one mode."""

    def __init__(self, weight_quantizer=None, activation_quantizer=None):
        self.weight_quantizer = weight_quantizer
        self.activation_quantizer = activation_quantizer

    @property
    def mode(self):
        raise NotImplementedError("Subclasses must implement this property. Do not instantiate "
                                  "QuantizationConfig directly.")

    def get_config(self):
        return {"weight_quantizer": serialize(self.weight_quantizer),
                "activation_quantizer": serialize(self.activation_quantizer)}

    @classmethod
    def from_config(cls, config):
        return cls(weight_quantizer=deserialize(config.get("weight_quantizer")),
                   activation_quantizer=deserialize(config.get("activation_quantizer")))

    @staticmethod
    def weight_quantizer_or_default(config, default):
        if config is not None and config.weight_quantizer is not None:
            return config.weight_quantizer
        return default

    @staticmethod
    def activation_quantizer_or_default(config, default):
        return config.activation_quantizer if config is not None else default


class Int8QuantizationConfig(QuantizationConfig):
    """The int8 mode's config: by default the inputs are quantized too (AbsMaxQuantizer over the last
    axis), so that Dense multiplies int8 by int8."""

    def __init__(self, weight_quantizer=None, activation_quantizer="default"):
        if isinstance(activation_quantizer, str) and activation_quantizer == "default":
            activation_quantizer = AbsMaxQuantizer()
        super().__init__(weight_quantizer, activation_quantizer)
        if self.weight_quantizer is not None and self.weight_quantizer.output_dtype != "int8":
            raise ValueError(f"Int8QuantizationConfig requires a weight_quantizer with output_dtype='int8'. "
                             f"Received: output_dtype={self.weight_quantizer.output_dtype}")

    @property
    def mode(self):
        return "int8"


def compute_float8_scale(amax, scale, dtype_max, margin=0):
    """Keras's (Transformer Engine's) delayed-scaling update: ``amax / dtype_max * 2**margin``, keeping the
    old ``scale`` where amax is 0 or not finite."""
    from dlgpu import ops
    amax, scale = ops.convert_to_tensor(amax), ops.convert_to_tensor(scale)
    old = ops.reciprocal(scale)
    valid = ops.logical_and(ops.greater(amax, 0.0), ops.isfinite(amax))
    safe = ops.where(valid, amax, ops.ones_like(amax))  # no 1/0 where the old scale is kept anyway
    sf = ops.divide(ops.divide(dtype_max, safe), 2 ** margin)
    return ops.reciprocal(ops.where(valid, sf, old))


def _round_to_float8(x, dtype):
    """x (already within the format's range) rounded to the nearest float8 value, ties to even, in x's
    float dtype: a cast to float8 and back, for array modules without float8."""
    bits, min_exponent, _ = _FLOAT8[dtype]
    xp = _xp(x)
    _, exponent = xp.frexp(x)  # |x| in [2**(e-1), 2**e)
    # the spacing of float8 values around x: 2**(e - 1 - bits), fixed below the smallest normal (subnormals)
    step_exponent = xp.maximum(exponent - 1, min_exponent) - bits
    return xp.ldexp(xp.rint(xp.ldexp(x, -step_exponent)), step_exponent).astype(x.dtype, copy=False)


def quantize_and_dequantize(inputs, scale, quantized_dtype, compute_dtype):
    """``cast(clip(x / scale), quantized_dtype) * scale`` back in ``compute_dtype``: what x looks like after a
    round trip through float8 (``quantized_dtype`` "float8_e4m3fn" or "float8_e5m2")."""
    if quantized_dtype not in _FLOAT8:
        raise ValueError(f"quantize_and_dequantize: quantized_dtype must be one of {sorted(_FLOAT8)}. Received: "
                         f"quantized_dtype={quantized_dtype!r}")
    compute = np.dtype(compute_dtype)
    if compute.kind != "f":
        raise ValueError(f"quantize_and_dequantize: compute_dtype must be a float dtype. Received: "
                         f"compute_dtype={compute_dtype!r}")
    x, s = _array(inputs).astype(compute, copy=False), _array(scale).astype(compute, copy=False)
    xp = _xp(x)
    top = _FLOAT8[quantized_dtype][2]
    q = _round_to_float8(xp.clip(x / s, -top, top), quantized_dtype)
    return Tensor(q * s)


# -- serialization ------------------------------------------------------------------------------------
_CLASSES = {cls.__name__: cls for cls in (Quantizer, AbsMaxQuantizer, QuantizationConfig, Int8QuantizationConfig)}
_ALIASES = {"quantizer": Quantizer, "abs_max_quantizer": AbsMaxQuantizer,
            "int8_quantization_config": Int8QuantizationConfig}
# Keras's other configs: recognised by name so that the refusal says what they are
_REFUSED = {"Int4QuantizationConfig": "int4", "Float8QuantizationConfig": "float8", "GPTQConfig": "gptq",
            "AWQConfig": "awq"}


def serialize(obj):
    """A quantizer or QuantizationConfig as Keras writes it: {"module": "keras.quantizers", ...}."""
    if obj is None:
        return None
    if not hasattr(obj, "get_config"):
        raise ValueError(f"quantizers.serialize: {obj!r} has no get_config()")
    config = {k: list(v) if isinstance(v, tuple) else v for k, v in obj.get_config().items()}
    return {"module": "keras.quantizers", "class_name": type(obj).__name__, "config": config,
            "registered_name": None}


def deserialize(config, custom_objects=None):
    """A quantizer or QuantizationConfig from serialize's dict (None gives None)."""
    if config is None:
        return None
    if not isinstance(config, dict) or "class_name" not in config:
        raise ValueError(f"quantizers.deserialize: expected a dict with 'class_name' and 'config'; received "
                         f"{config!r}")
    name = config["class_name"]
    cls = (custom_objects or {}).get(name) or _CLASSES.get(name)
    if cls is None:
        from dlgpu.saving import get_registered_object
        cls = get_registered_object(config.get("registered_name") or name, custom_objects)
    if cls is None:
        if name in _REFUSED:
            raise NotImplementedError(f"quantizers.deserialize: {name} configures the '{_REFUSED[name]}' "
                                      f"quantization mode, which dlgpu does not implement (only 'int8').")
        raise ValueError(f"quantizers.deserialize: unknown quantizer class {name!r}")
    inner = dict(config.get("config") or {})
    if "value_range" in inner and isinstance(inner["value_range"], list):
        inner["value_range"] = tuple(inner["value_range"])
    return cls.from_config(inner)


def get(identifier, **kwargs):
    """A quantizer or config from None, a name ("abs_max_quantizer", "AbsMaxQuantizer"), a dict or an object."""
    if identifier is None:
        return None
    if isinstance(identifier, dict):
        obj = deserialize(identifier)
    elif isinstance(identifier, str):
        obj = _CLASSES.get(identifier) or _ALIASES.get(identifier)
    else:
        obj = identifier
    if callable(obj):
        return obj(**kwargs) if inspect.isclass(obj) else obj
    raise ValueError(f"Could not interpret quantizer identifier: {identifier}")

