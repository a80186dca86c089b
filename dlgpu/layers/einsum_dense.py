"""EinsumDense (Keras 3's keras/src/layers/core/einsum_dense.py): activation(einsum(equation, x, kernel) + bias).

The equation is "<input>,<kernel>-><output>" with one letter per axis, the input's batch axis included, and
optionally "..." at the start of the input and output (leading axes carried through) or at the end of both
(trailing axes carried through).  ``output_shape`` gives the output's axes besides the batch (and besides the
elided ones); an entry may be None where the axis comes from the input.  The kernel's shape follows from the
equation: each kernel letter takes its size from the input, else from the output.  ``bias_axes`` (output
letters) gets a bias spanning the output from its first biased axis to the end, size 1 on the unbiased ones.

``quantize("int8")`` turns the kernel into int8 values with one float32 scale per output channel, laid out as
Keras lays them out (dlgpu/layers/quantized.py).
"""

from __future__ import annotations

import numbers
import re

from dlgpu import activations, constraints, initializers, ops, quantizers, regularizers
from dlgpu.layers import quantized
from dlgpu.layers.base import Layer


class EinsumDense(Layer):
    _quantizable = True
    _is_quantized = False

    def __init__(self, equation, output_shape, activation=None, bias_axes=None, kernel_initializer="glorot_uniform",
                 bias_initializer="zeros", kernel_regularizer=None, bias_regularizer=None, kernel_constraint=None,
                 bias_constraint=None, lora_rank=None, lora_alpha=None, **kwargs):
        activity_regularizer = kwargs.pop("activity_regularizer", None)
        if kwargs.pop("gptq_unpacked_column_size", None) is not None:
            raise NotImplementedError("EinsumDense: `gptq_unpacked_column_size` (GPTQ quantization) is not supported "
                                      "by dlgpu")
        from dlgpu.layers.core import _quantization_config
        self.quantization_config = _quantization_config("EinsumDense", kwargs)
        super().__init__(**kwargs)
        if lora_rank:
            raise NotImplementedError(f"Layer '{self.name}' (EinsumDense): `lora_rank` (LoRA) is not supported by "
                                      f"dlgpu. Received: lora_rank={lora_rank!r}")
        if not isinstance(equation, str):
            raise ValueError(f"Layer '{self.name}' (EinsumDense): `equation` must be a string such as "
                             f"'ab,bc->ac'. Received: equation={equation!r}")
        self.equation = equation
        self._specs = _parse(self.name, equation)  # bad equations fail here, before any build
        shape = output_shape if isinstance(output_shape, (list, tuple)) else (output_shape,)
        if not all(s is None or (isinstance(s, numbers.Integral) and not isinstance(s, bool) and s > 0)
                   for s in shape):
            raise ValueError(f"Layer '{self.name}' (EinsumDense): `output_shape` must be a positive int or a tuple "
                             f"of positive ints or None. Received: output_shape={output_shape!r}")
        self.partial_output_shape = tuple(None if s is None else int(s) for s in shape)
        self.activation = activations.get(activation)
        if bias_axes is not None and (not isinstance(bias_axes, str)
                                      or any(c not in self._specs[2] for c in bias_axes)):
            raise ValueError(f"Layer '{self.name}' (EinsumDense): `bias_axes` must be letters of the output "
                             f"'{self._specs[2]}' in equation '{equation}'. Received: bias_axes={bias_axes!r}")
        self.bias_axes = bias_axes
        self.kernel_initializer = initializers.get(kernel_initializer)
        self.bias_initializer = initializers.get(bias_initializer)
        self.kernel_regularizer = regularizers.get(kernel_regularizer)
        self.bias_regularizer = regularizers.get(bias_regularizer)
        self.activity_regularizer = regularizers.get(activity_regularizer)
        self.kernel_constraint = self._get_constraint("kernel_constraint", kernel_constraint)
        self.bias_constraint = self._get_constraint("bias_constraint", bias_constraint)
        self.lora_rank, self.lora_alpha = None, lora_alpha
        self.full_output_shape = None

    def build(self, input_shape):
        kernel_shape, bias_shape, self.full_output_shape = _shapes(
            self, tuple(input_shape), self.partial_output_shape, self.bias_axes)
        self._input_ndim = len(input_shape)
        quantize = self.quantization_mode is not None  # from a quantized model's config
        if not quantize:
            self.kernel = self.add_weight(kernel_shape, self.kernel_initializer, name="kernel",
                                          regularizer=self.kernel_regularizer, constraint=self.kernel_constraint)
        self.bias = None if bias_shape is None else self.add_weight(
            bias_shape, self.bias_initializer, name="bias", regularizer=self.bias_regularizer,
            constraint=self.bias_constraint)
        if quantize:
            self._int8_build(kernel_shape, self.quantization_config)
        self.built = True

    # -- int8 quantization (Keras's EinsumDense.quantize, _int8_build, _int8_call) ----------------------------
    def quantize(self, mode=None, type_check=True, config=None):
        mode, config = quantized.begin(self, EinsumDense, mode, config, type_check)
        self.quantization_config = config
        info = quantized.einsum_quantization_info(self.equation, self._input_ndim)
        weight_quantizer = quantizers.QuantizationConfig.weight_quantizer_or_default(
            config, quantizers.AbsMaxQuantizer(axis=tuple(info["kernel_reduced"])))
        values, scale = weight_quantizer(self.kernel, to_numpy=True)
        from dlgpu.ops._core import array_module
        scale = quantized.scale_for_output(array_module(scale.data), scale.data, info, "kernel")
        quantized.replace_variable(self, self.kernel)
        self._int8_build(self.kernel.shape, config)
        self.kernel.assign(values)
        self.kernel_scale.assign(scale)
        quantized.finish(self, mode)

    def _int8_build(self, kernel_shape, config):
        self._quantization_info = info = quantized.einsum_quantization_info(self.equation, self._input_ndim)
        self.inputs_quantizer = quantizers.QuantizationConfig.activation_quantizer_or_default(
            config, quantizers.AbsMaxQuantizer())
        self.quantization_axis = tuple(info["input_reduced"])
        self.kernel = self.add_weight(kernel_shape, "zeros", dtype="int8", trainable=False, name="kernel")
        self.kernel_scale = self.add_weight(quantized.kernel_scale_shape(kernel_shape, info), "ones",
                                            trainable=False, name="kernel_scale")
        self._is_quantized = True

    def _own_variables(self):
        if self._is_quantized:  # Keras's variable_serialization_spec["int8"]
            return [v for v in (self.kernel, self.bias, self.kernel_scale) if v is not None]
        return super()._own_variables()

    def call(self, inputs, training=None):
        if self._is_quantized:
            x = quantized.int8_einsum(inputs, self.kernel, self.kernel_scale, self._quantization_info,
                                      self.inputs_quantizer)
        else:
            x = ops.einsum(self.equation, inputs, self.kernel)
        if self.bias is not None:
            x = ops.add(x, self.bias)
        return self.activation(x)

    def compute_output_shape(self, input_shape):
        return _shapes(self, tuple(input_shape), self.partial_output_shape, self.bias_axes)[2]

    def get_config(self):
        return {**super().get_config(), "output_shape": list(self.partial_output_shape), "equation": self.equation,
                "activation": activations.serialize(self.activation), "bias_axes": self.bias_axes,
                "kernel_initializer": initializers.serialize(self.kernel_initializer),
                "bias_initializer": initializers.serialize(self.bias_initializer),
                "kernel_regularizer": regularizers.serialize(self.kernel_regularizer),
                "bias_regularizer": regularizers.serialize(self.bias_regularizer),
                "activity_regularizer": regularizers.serialize(self.activity_regularizer),
                "kernel_constraint": constraints.serialize(self.kernel_constraint),
                "bias_constraint": constraints.serialize(self.bias_constraint),
                "quantization_config": quantizers.serialize(self.quantization_config)}


_FORMS = ((re.compile(r"([a-zA-Z]+),([a-zA-Z]+)->([a-zA-Z]+)$"), None),
          (re.compile(r"\.\.\.([a-zA-Z]+),([a-zA-Z]+)->\.\.\.([a-zA-Z]+)$"), "left"),
          (re.compile(r"([a-zA-Z]{2,})\.\.\.,([a-zA-Z]+)->([a-zA-Z]+)\.\.\.$"), "right"))


def _parse(name, equation):
    """(input letters, kernel letters, output letters, where '...' stands) of a Keras EinsumDense equation."""
    compact = equation.replace(" ", "")
    for pattern, elided in _FORMS:
        match = pattern.match(compact)
        if match:
            return match.group(1), match.group(2), match.group(3), elided
    raise ValueError(f"Layer '{name}' (EinsumDense): invalid equation '{equation}'. Equations must be in the form "
                     f"[X],[Y]->[Z], ...[X],[Y]->...[Z], or [X]...,[Y]->[Z]....")


def _shapes(layer, input_shape, partial, bias_axes):
    """(kernel shape, bias shape or None, full output shape) for an input of ``input_shape``."""
    in_spec, kernel_spec, out_spec, elided_side = layer._specs
    elided = len(input_shape) - len(in_spec)
    if elided < 0 or (elided > 0 and elided_side is None) or (elided_side == "right" and elided == 0):
        raise ValueError(f"Layer '{layer.name}' (EinsumDense): equation '{layer.equation}' does not fit an input of "
                         f"shape {input_shape}")
    # the output as the equation's letters see it, and the elided axes around it
    expected = len(out_spec) if elided_side == "left" else len(out_spec) - 1
    if len(partial) != expected:
        raise ValueError(f"Layer '{layer.name}' (EinsumDense): `output_shape` {partial} must have {expected} "
                         f"entries for equation '{layer.equation}' (the output '{out_spec}' without the batch axis"
                         f"{'' if elided_side != 'left' else ', which is among the elided axes'})")
    if elided_side == "left":
        lettered_in, lettered_out = input_shape[elided:], list(partial)
    else:
        lettered_in, lettered_out = input_shape[:len(in_spec)], [input_shape[0], *partial]
    sizes_in = dict(zip(in_spec, lettered_in))
    for i, letter in enumerate(out_spec):
        if letter in sizes_in:
            if lettered_out[i] is None:
                lettered_out[i] = sizes_in[letter]
            elif sizes_in[letter] is not None and lettered_out[i] != sizes_in[letter]:
                raise ValueError(f"Layer '{layer.name}' (EinsumDense): output axis '{letter}' has size "
                                 f"{lettered_out[i]} in output_shape but {sizes_in[letter]} in the input "
                                 f"{input_shape} (equation '{layer.equation}')")
        elif lettered_out[i] is None and (i > 0 or elided_side == "left"):
            raise ValueError(f"Layer '{layer.name}' (EinsumDense): output axis '{letter}' is not in the input, so "
                             f"output_shape must give its size. Received: output_shape={partial}")
    if elided_side == "left":
        full = [*input_shape[:elided], *lettered_out]
    else:
        full = [*lettered_out, *input_shape[len(in_spec):]]
    sizes_out = dict(zip(out_spec, lettered_out))
    kernel_shape = []
    for letter in kernel_spec:
        size = sizes_in.get(letter, sizes_out.get(letter))
        if letter not in sizes_in and letter not in sizes_out:
            raise ValueError(f"Layer '{layer.name}' (EinsumDense): kernel axis '{letter}' of equation "
                             f"'{layer.equation}' is in neither the input nor the output")
        if size is None:
            raise ValueError(f"Layer '{layer.name}' (EinsumDense): kernel axis '{letter}' needs a known size; "
                             f"input shape {input_shape}, output_shape {partial}")
        kernel_shape.append(int(size))
    bias_shape = None
    if bias_axes:
        first = min(out_spec.index(c) for c in bias_axes)
        bias_shape = [sizes_out[c] if c in bias_axes else 1 for c in out_spec[first:]]
        if elided_side != "left":
            bias_shape += [1] * elided
        bias_shape = tuple(bias_shape)
    return tuple(kernel_shape), bias_shape, tuple(full)
