"""Dense, Activation, Dropout, SpatialDropout1D/2D/3D, Flatten, Reshape, Lambda, Identity, Embedding."""

from __future__ import annotations

import inspect

import numpy as np

from dlgpu import activations, constraints, initializers, ops, quantizers, regularizers
from dlgpu.autograd import Tensor
from dlgpu.layers import quantized
from dlgpu.layers.base import InputSpec, Layer
from dlgpu.layers.regularization import check_seed
from dlgpu.ops._core import array_module
from dlgpu.ops.nn import seeded_generator


def _positive_int(layer, name, value):
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value <= 0:
        raise ValueError(f"Received an invalid value for `{name}` of layer {layer}, expected a positive integer. "
                         f"Received: {name}={value!r}")
    return int(value)


class KernelBiasLayer(Layer):
    """What Dense and Conv2D share: a kernel, an optional bias, an activation that runs inside the op when
    the backend fuses it, their initializers, regularizers and constraints, and the config entries for all
    of them."""

    def _init_kernel_bias(self, activation, use_bias, kernel_initializer, bias_initializer, kernel_regularizer,
                          bias_regularizer, activity_regularizer, kernel_constraint=None, bias_constraint=None):
        self.activation = activation
        self.use_bias = use_bias
        self.kernel_initializer = initializers.get(kernel_initializer)
        self.bias_initializer = initializers.get(bias_initializer)
        self.kernel_regularizer = regularizers.get(kernel_regularizer)
        self.bias_regularizer = regularizers.get(bias_regularizer)
        self.activity_regularizer = regularizers.get(activity_regularizer)
        self.kernel_constraint = self._get_constraint("kernel_constraint", kernel_constraint)
        self.bias_constraint = self._get_constraint("bias_constraint", bias_constraint)

    @property
    def activation(self):
        return self._activation

    @activation.setter
    def activation(self, value):
        # Keras code switches a built layer's activation off (`model.layers[-1].activation = None` in
        # keras.io's grad_cam); the fused op must follow it, or the old activation would still run inside.
        # A layer that set _fused = None after __init__ has no fused op, and keeps calling self.activation.
        self._activation = activations.get(value)
        if "_fused" not in self.__dict__ or self._fused is not None:
            self._fused = activations.fused_name(self._activation)

    def _add_kernel_and_bias(self, kernel_shape, units):
        self.kernel = self.add_weight(kernel_shape, self.kernel_initializer, name="kernel",
                                      regularizer=self.kernel_regularizer, constraint=self.kernel_constraint)
        self.bias = self.add_weight((units,), self.bias_initializer, name="bias", regularizer=self.bias_regularizer,
                                    constraint=self.bias_constraint) if self.use_bias else None

    def _apply(self, op, inputs, *args):
        """op(inputs, kernel, bias, *args, activation), fused when it can be (Layer.__call__ adds the activity
        penalty)."""
        if self._fused is not None:
            return op(inputs, self.kernel, self.bias, *args, activation=self._fused)
        return self.activation(op(inputs, self.kernel, self.bias, *args))

    def _kernel_bias_config(self):
        return {"activation": activations.serialize(self.activation), "use_bias": self.use_bias,
                "kernel_initializer": initializers.serialize(self.kernel_initializer),
                "bias_initializer": initializers.serialize(self.bias_initializer),
                "kernel_regularizer": regularizers.serialize(self.kernel_regularizer),
                "bias_regularizer": regularizers.serialize(self.bias_regularizer),
                "activity_regularizer": regularizers.serialize(self.activity_regularizer),
                "kernel_constraint": constraints.serialize(self.kernel_constraint),
                "bias_constraint": constraints.serialize(self.bias_constraint)}


def _quantization_config(cls_name, kwargs):
    """The ``quantization_config`` Keras 3.14+ writes into Dense/Embedding configs: None, or the config a
    quantized layer was quantized with (a QuantizationConfig or its serialized dict)."""
    value = kwargs.pop("quantization_config", None)
    if isinstance(value, dict):
        value = quantizers.deserialize(value)
    if value is not None and not isinstance(value, quantizers.QuantizationConfig):
        raise ValueError(f"{cls_name}: `quantization_config` must be None or a keras.quantizers.QuantizationConfig. "
                         f"Received: quantization_config={value!r}")
    return value


class Dense(KernelBiasLayer):
    """activation(inputs @ kernel + bias), run as one fused op when the activation allows it.

    ``quantize("int8")`` turns the kernel into int8 values and one float32 scale per unit (dlgpu/layers/quantized.py)."""

    _quantizable = True

    def __init__(self, units, activation=None, use_bias=True, kernel_initializer="glorot_uniform",
                 bias_initializer="zeros", kernel_regularizer=None, bias_regularizer=None,
                 activity_regularizer=None, kernel_constraint=None, bias_constraint=None, **kwargs):
        self.quantization_config = _quantization_config(type(self).__name__, kwargs)
        super().__init__(**kwargs)
        self.units = _positive_int(type(self).__name__, "units", units)
        self._init_kernel_bias(activation, use_bias, kernel_initializer, bias_initializer, kernel_regularizer,
                               bias_regularizer, activity_regularizer, kernel_constraint, bias_constraint)
        self.input_spec = InputSpec(min_ndim=2)
        self.supports_masking = True  # on (batch, steps, features) it acts per step, so the steps' mask holds

    def build(self, input_shape):
        features = input_shape[-1]
        if features is None:
            raise ValueError(f"Layer '{self.name}': the last axis of the input must be known; received {input_shape}")
        if self.quantization_mode is not None:  # from a quantized model's config
            self.bias = self.add_weight((self.units,), self.bias_initializer, name="bias",
                                        regularizer=self.bias_regularizer,
                                        constraint=self.bias_constraint) if self.use_bias else None
            self._int8_build((features, self.units), self.quantization_config)
        else:
            self._add_kernel_and_bias((features, self.units), self.units)
        self.input_spec = InputSpec(min_ndim=2, axes={-1: features})
        self.built = True

    def call(self, inputs):
        if self._is_quantized:
            x = quantized.int8_dense(inputs, self.kernel, self.kernel_scale, self.inputs_quantizer)
            if self.bias is not None:
                x = ops.add(x, self.bias)
            return self.activation(x)
        return self._apply(ops.dense, inputs)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (self.units,)

    # -- int8 quantization (Keras's Dense.quantize, _int8_build, _int8_call) --------------------------------
    _is_quantized = False

    def quantize(self, mode=None, type_check=True, config=None):
        mode, config = quantized.begin(self, Dense, mode, config, type_check)
        self.quantization_config = config
        weight_quantizer = quantizers.QuantizationConfig.weight_quantizer_or_default(
            config, quantizers.AbsMaxQuantizer(axis=0))
        values, scale = weight_quantizer(self.kernel, to_numpy=True)
        quantized.replace_variable(self, self.kernel)
        self._int8_build(self.kernel.shape, config)
        self.kernel.assign(values)
        self.kernel_scale.assign(ops.squeeze(scale, 0))
        quantized.finish(self, mode)

    def _int8_build(self, kernel_shape, config):
        # after the bias, as Keras lists them: trainable variables first, then the non-trainable ones
        self.inputs_quantizer = quantizers.QuantizationConfig.activation_quantizer_or_default(
            config, quantizers.AbsMaxQuantizer())
        self.kernel = self.add_weight(kernel_shape, "zeros", dtype="int8", trainable=False, name="kernel")
        self.kernel_scale = self.add_weight((self.units,), "ones", trainable=False, name="kernel_scale")
        self._is_quantized = True

    def _own_variables(self):
        if self._is_quantized:  # Keras's variable_serialization_spec["int8"]
            return [v for v in (self.kernel, self.bias, self.kernel_scale) if v is not None]
        return super()._own_variables()

    def get_config(self):
        return {**super().get_config(), "units": self.units, **self._kernel_bias_config(),
                "quantization_config": quantizers.serialize(self.quantization_config)}


class Activation(Layer):
    def __init__(self, activation, **kwargs):
        super().__init__(**kwargs)
        self.activation = activations.get(activation)
        self.supports_masking = True

    def call(self, inputs):
        return self.activation(inputs)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "activation": activations.serialize(self.activation)}


class Dropout(Layer):
    """Zeroes a fraction ``rate`` of the inputs during training only; identity at inference.

    With a ``seed`` the layer draws its masks from its own generator (ops.nn.seeded_generator), as Keras's
    Dropout does with its SeedGenerator: the same masks, step after step, in every run."""

    def __init__(self, rate, noise_shape=None, seed=None, **kwargs):
        super().__init__(**kwargs)
        if not isinstance(rate, (int, float)) or not 0 <= rate <= 1:
            raise ValueError(f"Invalid value received for argument `rate` of layer {self.name}. Expected a float "
                             f"value between 0 and 1. Received: rate={rate!r}")
        self.rate = float(rate)
        self.noise_shape = noise_shape
        self.seed = check_seed(self, seed)
        self._generators = {}
        self.supports_masking = True

    def _generator(self, data):
        """The generator this layer's masks come from (also used by the planned training step)."""
        return seeded_generator(self._generators, self.seed, array_module(data))

    def call(self, inputs, training=None):
        if training and self.rate > 0:
            return ops.dropout(inputs, self.rate, self.noise_shape, generator=self._generator(inputs.data))
        return inputs

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "rate": self.rate, "noise_shape": self.noise_shape, "seed": self.seed}


class _SpatialDropout(Dropout):
    """Dropout of whole channels (channels_last): one draw per (sample, channel), shared by every step or
    pixel, because neighbouring values of a feature map are too correlated for per-value dropout to
    regularise."""

    _rank = None  # spatial axes

    def __init__(self, rate, data_format=None, seed=None, **kwargs):
        name = type(self).__name__
        if "noise_shape" in kwargs:  # Dropout's argument; here it is (batch, 1, ..., channels) by definition
            raise TypeError(f"{name}.__init__() got an unexpected keyword argument 'noise_shape'")
        super().__init__(rate, seed=seed, **kwargs)
        if data_format not in (None, "channels_last"):
            raise ValueError(f"Layer '{self.name}' ({name}): only data_format='channels_last' is supported; "
                             f"received data_format={data_format!r}")
        self.noise_shape = (None,) + (1,) * self._rank + (None,)
        self.input_spec = InputSpec(ndim=self._rank + 2)

    def get_config(self):
        config = {**super().get_config(), "data_format": "channels_last"}
        del config["noise_shape"]  # fixed by the layer, not an argument
        del config["trainable"]  # Keras's spatial dropouts take no `trainable` and fail on a config that has it
        config["dtype"] = self.dtype  # Keras writes these layers' variable dtype, a name, not the policy
        return config


class SpatialDropout1D(_SpatialDropout):
    """Drops whole channels of (batch, steps, channels) sequences."""

    _rank = 1

    def __init__(self, rate, seed=None, **kwargs):
        if "data_format" in kwargs:  # not an argument of Keras's SpatialDropout1D
            raise TypeError("SpatialDropout1D.__init__() got an unexpected keyword argument 'data_format'")
        super().__init__(rate, seed=seed, **kwargs)

    def get_config(self):
        config = super().get_config()
        del config["data_format"]
        return config


class SpatialDropout2D(_SpatialDropout):
    """Drops whole channels of NHWC images."""

    _rank = 2


class SpatialDropout3D(_SpatialDropout):
    """Drops whole channels of (batch, depth, height, width, channels) volumes."""

    _rank = 3


class Flatten(Layer):
    def __init__(self, data_format=None, **kwargs):
        super().__init__(**kwargs)
        if data_format not in (None, "channels_last", "channels_first"):
            raise ValueError(f"Layer '{self.name}' (Flatten): `data_format` must be 'channels_last' or "
                             f"'channels_first'. Received: data_format={data_format!r}")
        self.data_format = data_format or "channels_last"  # resolved as Keras does (its config has the value)

    def call(self, inputs):
        if self.data_format == "channels_first" and inputs.ndim > 2:
            # Keras moves the channels last first, so that the flat order is the channels_last one.
            inputs = ops.transpose(inputs, (0, *range(2, inputs.ndim), 1))
        return ops.reshape(inputs, (inputs.shape[0], -1))

    def compute_output_shape(self, input_shape):
        rest = input_shape[1:]
        size = None if any(s is None for s in rest) else int(np.prod(rest))
        return (input_shape[0], size)

    def get_config(self):
        return {**super().get_config(), "data_format": self.data_format}


class Reshape(Layer):
    def __init__(self, target_shape, **kwargs):
        super().__init__(**kwargs)
        self.target_shape = tuple(target_shape)
        if sum(1 for s in self.target_shape if s == -1) > 1:
            raise ValueError(f"Layer '{self.name}': target_shape may contain at most one -1; received {self.target_shape}")

    def _resolve(self, input_shape):
        known = [s for s in input_shape[1:]]
        if any(s is None for s in known):
            return tuple(None if s == -1 else s for s in self.target_shape)
        total = int(np.prod(known))
        fixed = int(np.prod([s for s in self.target_shape if s != -1]))
        if -1 in self.target_shape:
            if total % fixed:
                raise ValueError(f"Layer '{self.name}': cannot reshape input of shape {tuple(input_shape)} "
                                 f"into target_shape {self.target_shape}")
            return tuple(total // fixed if s == -1 else s for s in self.target_shape)
        if total != fixed:
            raise ValueError(f"Layer '{self.name}': total size of the input {tuple(input_shape[1:])} ({total}) does "
                             f"not match target_shape {self.target_shape} ({fixed})")
        return self.target_shape

    def build(self, input_shape):
        self._resolve(input_shape)
        self.built = True

    def call(self, inputs):
        return ops.reshape(inputs, (inputs.shape[0],) + self._resolve(inputs.shape))

    def compute_output_shape(self, input_shape):
        return (input_shape[0],) + self._resolve(input_shape)

    def get_config(self):
        return {**super().get_config(), "target_shape": list(self.target_shape)}


class Lambda(Layer):
    """Wraps a Python function of tensors.  Not saved with the model: loading needs the function again.

    ``output_shape`` (without the batch axis, or a function of the input shape) is used for symbolic calls
    when given; otherwise the shape comes from running the function on zeros.  A function with a
    ``training`` argument receives the call's training flag, as in Keras; so does a
    ``mask`` argument (Keras's ``mask``: a compute_mask-like function or a fixed mask).
    """

    def __init__(self, function, output_shape=None, mask=None, arguments=None, **kwargs):
        super().__init__(**kwargs)
        if not callable(function):
            raise ValueError(f"Layer '{self.name}' (Lambda): `function` must be callable. Received: "
                             f"function={function!r}")
        if arguments is not None and not isinstance(arguments, dict):
            raise ValueError(f"Layer '{self.name}' (Lambda): `arguments` must be a dict of keyword arguments for "
                             f"the function. Received: arguments={arguments!r}")
        if output_shape is not None and not callable(output_shape) and not _is_shape_like(output_shape) and not (
                isinstance(output_shape, list) and all(_is_shape_like(o) for o in output_shape)):
            raise ValueError(f"Layer '{self.name}' (Lambda): `output_shape` must be a tuple of ints or None "
                             f"(without the batch axis), a list of such tuples, or a function of the input "
                             f"shape. Received: output_shape={output_shape!r}")
        self.function = function
        self.arguments = arguments or {}
        self._output_shape = output_shape
        # Keras: `mask` is a compute_mask-like function or a fixed mask; the layer passes masks only with one
        self.mask = mask
        self.supports_masking = mask is not None
        try:
            parameters = inspect.signature(function).parameters
        except (TypeError, ValueError):  # builtins without a signature
            parameters = {}
        self._fn_expects_training = "training" in parameters
        self._fn_takes_mask = "mask" in parameters

    def call(self, inputs, training=None, mask=None):
        kwargs = dict(self.arguments)
        if self._fn_expects_training:
            kwargs["training"] = training
        if self._fn_takes_mask:
            kwargs["mask"] = mask
        return self.function(inputs, **kwargs)

    def compute_output_shape(self, input_shape):
        if self._output_shape is None:
            return super().compute_output_shape(input_shape)
        if callable(self._output_shape):
            shape = self._output_shape(input_shape)
            return tuple(shape) if _is_shape_like(shape) else shape
        batch = input_shape[0] if _is_shape_like(input_shape) else input_shape[0][0]
        if _is_shape_like(self._output_shape):
            return (batch,) + tuple(self._output_shape)
        return [(batch,) + tuple(shape) for shape in self._output_shape]

    def compute_mask(self, inputs, mask=None):
        return self.mask(inputs, mask) if callable(self.mask) else self.mask

    def get_config(self):
        raise ValueError(f"Layer '{self.name}' (Lambda) wraps Python code, which dlgpu never saves or loads; "
                         f"rewrite it as a subclassed Layer with get_config, or save only the weights.")


def _is_shape_like(value):
    """A tuple/list of ints or None: one shape without (or, for input shapes, with) the batch axis."""
    return isinstance(value, (list, tuple)) and all(
        s is None or isinstance(s, (int, np.integer)) and not isinstance(s, bool) for s in value)


class Identity(Layer):
    """Returns its inputs unchanged: a placeholder where a model needs a layer but no operation."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.supports_masking = True

    def call(self, inputs):
        return inputs

    def compute_output_shape(self, input_shape):
        return input_shape


class Embedding(Layer):
    """Rows of a (input_dim, output_dim) table looked up by integer ids."""

    _accepts_integer_inputs = True
    _quantizable = True

    def __init__(self, input_dim, output_dim, embeddings_initializer="uniform", embeddings_regularizer=None,
                 embeddings_constraint=None, mask_zero=False, **kwargs):
        self.quantization_config = _quantization_config(type(self).__name__, kwargs)
        super().__init__(**kwargs)
        self.input_dim = _positive_int(type(self).__name__, "input_dim", input_dim)
        self.output_dim = _positive_int(type(self).__name__, "output_dim", output_dim)
        self.embeddings_initializer = initializers.get(embeddings_initializer)
        self.embeddings_regularizer = regularizers.get(embeddings_regularizer)
        self.embeddings_constraint = self._get_constraint("embeddings_constraint", embeddings_constraint)
        self.mask_zero = bool(mask_zero)
        self.supports_masking = self.mask_zero
        # As Keras: the table is read in its float32, not cast whole to float16 each call; the rows taken
        # are cast to the compute dtype instead.
        self.autocast = False

    def build(self, input_shape):
        if self.quantization_mode is not None:  # from a quantized model's config
            self._int8_build()
        else:
            self.embeddings = self.add_weight((self.input_dim, self.output_dim), self.embeddings_initializer,
                                              name="embeddings", regularizer=self.embeddings_regularizer,
                                              constraint=self.embeddings_constraint)
        self.built = True

    # -- int8 quantization (Keras's Embedding.quantize): one scale per row, the row being what a lookup reads
    _is_quantized = False

    def quantize(self, mode=None, type_check=True, config=None):
        mode, config = quantized.begin(self, Embedding, mode, config, type_check)
        self.quantization_config = config
        weight_quantizer = quantizers.QuantizationConfig.weight_quantizer_or_default(
            config, quantizers.AbsMaxQuantizer(axis=-1))
        values, scale = weight_quantizer(self.embeddings, to_numpy=True)
        quantized.replace_variable(self, self.embeddings)
        self._int8_build()
        self.embeddings.assign(values)
        self.embeddings_scale.assign(ops.squeeze(scale, -1))
        quantized.finish(self, mode)

    def _int8_build(self):
        self.embeddings = self.add_weight((self.input_dim, self.output_dim), "zeros", dtype="int8", trainable=False,
                                          name="embeddings")
        self.embeddings_scale = self.add_weight((self.input_dim,), "ones", trainable=False, name="embeddings_scale")
        self._is_quantized = True

    def call(self, inputs):
        ids = inputs.data
        if ids.dtype.kind == "f":
            ids = ids.astype(np.int64)
        if ids.size and (int(ids.min()) < 0 or int(ids.max()) >= self.input_dim):
            raise ValueError(f"Layer '{self.name}': ids must lie in [0, {self.input_dim}); received values from "
                             f"{int(ids.min())} to {int(ids.max())}")
        out = ops.take(self.embeddings, ids, axis=0)
        if self._is_quantized:  # int8 rows over their scales; nothing here trains
            scale = ops.take(self.embeddings_scale, ids, axis=0)
            return ops.divide(ops.cast(out, self.compute_dtype), ops.expand_dims(scale, -1))
        return out if not self._mixed else ops.cast(out, self.compute_dtype)

    def compute_mask(self, inputs, mask=None):
        """With mask_zero, id 0 is padding: the mask is True where the id is not 0 (Keras)."""
        if not self.mask_zero:
            return None
        # Called by hand with a numpy array too (as Keras allows): ndarray.data is a raw buffer, not the values.
        ids = inputs if isinstance(inputs, Tensor) else ops.convert_to_tensor(inputs)
        return Tensor(ids.data != 0)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape) + (self.output_dim,)

    def get_config(self):
        return {**super().get_config(), "input_dim": self.input_dim, "output_dim": self.output_dim,
                "embeddings_initializer": initializers.serialize(self.embeddings_initializer),
                "embeddings_regularizer": regularizers.serialize(self.embeddings_regularizer),
                "activity_regularizer": regularizers.serialize(self.activity_regularizer),
                "embeddings_constraint": constraints.serialize(self.embeddings_constraint),
                "mask_zero": self.mask_zero, "quantization_config": quantizers.serialize(self.quantization_config)}
