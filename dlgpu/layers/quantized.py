"""Keras 3's post-training int8 quantization: ``layer.quantize("int8")`` for Dense, EinsumDense and Embedding,
and ``model.quantize("int8")`` over a model's layers (keras/src/layers/core/dense.py and its siblings).

Quantizing replaces the float kernel by an int8 one plus a float32 scale per output channel
(quantizers.abs_max_quantize over the contracted axes), both non-trainable, and gives the layer the policy
"int8_from_<its policy>".  A quantized Dense also quantizes its inputs, one scale per row, multiplies int8
by int8 exactly, and divides the product by both scales.  Gradients reach the inputs (through the
dequantized kernel, Keras's custom gradient) and the bias, which stays trainable; the int8 kernel never
trains.  The variables, their names, their order in ``weights`` and in Keras's weights files, and the
values are Keras's, so quantized models go both ways through .keras and .weights.h5 files.

The int8 products are exact: float32 BLAS is exact for int8 operands while every partial sum stays below
2**24 (at most 1024 terms); longer contractions are cut into such pieces whose results add up as int32.

Only "int8" is implemented.  Keras's "int4" (sub-channel groups with zero points by default), "float8"
(delayed-scaling training with amax histories), "gptq" and "awq" (calibration on data) are refused by name
with NotImplementedError; so is LoRA, which dlgpu's layers do not have.
"""

from __future__ import annotations

import re
import string
import warnings

from dlgpu import dtype_policies, quantizers
from dlgpu.autograd import make_result
from dlgpu.ops._core import array_module, backend_of

IMPLEMENTED = ("int8",)
_CHUNK = 1024  # int8 terms whose float32 sum is exact: 1024 * 128 * 128 = 2**24


def resolve_config(mode, config):
    """Keras's validate_and_resolve_config: (mode, config) from either; the default config of "int8" is
    Int8QuantizationConfig() (inputs quantized too)."""
    if isinstance(config, str):
        mode, config = config, None
    if mode is not None and mode not in dtype_policies.QUANTIZATION_MODES:
        raise ValueError(f"Invalid quantization mode. Expected one of {dtype_policies.QUANTIZATION_MODES}. "
                         f"Received: mode={mode}")
    if config is None:
        if mode == "int8":
            return mode, quantizers.Int8QuantizationConfig()
        if mode in ("gptq", "awq"):
            raise ValueError(f"For {mode.upper()}, you must pass a `{mode.upper()}Config` object in the `config` "
                             f"argument.")
        if mode is None:
            raise ValueError("You must provide either `mode` or `config` to `quantize`.")
        return mode, None  # int4, float8: refused by the layer, naming the mode
    if not isinstance(config, quantizers.QuantizationConfig):
        raise ValueError(f"Argument `config` must be an instance of `QuantizationConfig`. Received: config={config} "
                         f"(of type {type(config)})")
    if mode is not None and config.mode != mode:
        raise ValueError(f"Contradictory arguments: mode='{mode}' but config.mode='{config.mode}'")
    return config.mode, config


def check_quantize_args(layer, mode):
    """Keras's _check_quantize_args: built, not quantized yet, a known mode, no float16 compute for int8."""
    if not layer.built:
        raise ValueError(f"Cannot quantize a layer that isn't yet built. Layer '{layer.name}' (of type "
                         f"'{type(layer).__name__}') is not built yet.")
    if getattr(layer, "_is_quantized", False):
        raise ValueError(f"Layer '{layer.name}' is already quantized with dtype_policy='{layer.dtype_policy.name}'. "
                         f"Received: mode={mode}")
    if mode == "int8" and layer.compute_dtype == "float16":
        raise ValueError(f"Quantization mode='{mode}' doesn't work well with compute_dtype='float16'. Consider "
                         f"loading model/layer with another dtype policy such as 'mixed_bfloat16' or "
                         f"'mixed_float16' before calling `quantize()`.")


def refuse_mode(layer, mode):
    """NotImplementedError for the modes dlgpu does not compute in."""
    if mode not in IMPLEMENTED:
        raise NotImplementedError(
            f"Layer '{layer.name}' ({type(layer).__name__}): quantization mode '{mode}' is not implemented by dlgpu; "
            f"only 'int8' is (Keras's '{mode}' needs "
            + {"int4": "packed 4-bit kernels with per-group zero points",
               "float8": "float8 training with delayed scaling",
               "gptq": "GPTQ calibration on data", "awq": "AWQ calibration on data"}.get(mode, "its own kernels")
            + ").")


def begin(layer, cls, mode, config, type_check):
    """The checks before ``cls.quantize`` changes anything; returns (mode, config)."""
    mode, config = resolve_config(mode, config)
    check_quantize_args(layer, mode)
    if type_check and type(layer) is not cls:
        raise not_implemented(layer, "quantize")
    refuse_mode(layer, mode)
    return mode, config


def finish(layer, mode):
    """The layer's new policy: "int8_from_float32" for a float32 layer (kept when it already had one)."""
    layer._is_quantized = True
    if layer.dtype_policy.quantization_mode is None:
        layer.dtype_policy = dtype_policies.get(f"{mode}_from_{layer.dtype_policy.name}")


def not_implemented(layer, method):
    return NotImplementedError(f"Layer {type(layer).__name__} does not have a `{method}` method implemented.")


def replace_variable(layer, old):
    """Forget ``old`` (the float kernel a quantized one replaces), as Keras's ``del self._kernel`` does."""
    layer._tracked_variables[:] = [v for v in layer._tracked_variables if v is not old]


def quantize_model(model, mode=None, config=None, filters=None, type_check=True):
    """Model.quantize: quantize every leaf layer that can be (filters: a regex, a list of them, or a
    callable on the layer); the others are skipped with Keras's warning."""
    from dlgpu.layers.base import Layer
    if filters is not None and not isinstance(filters, (str, list, tuple)) and not callable(filters):
        raise ValueError(f"The `filters` argument must be a regex string, a list of regex strings, or a callable. "
                         f"Received: {type(filters)}")
    mode, config = resolve_config(mode, config)
    refuse_mode(model, mode)  # before any layer changes: a model half in one mode is worse than an error
    changed = False
    for layer in _leaf_layers(model):
        if not _selected(layer, filters):
            continue
        if type(layer).quantize is Layer.quantize:
            warnings.warn(str(not_implemented(layer, "quantize")), stacklevel=3)
            continue
        try:
            layer.quantize(mode, type_check=type_check, config=config)
            changed = True
        except NotImplementedError as error:  # a subclass of Dense (type_check), as Keras warns and goes on
            warnings.warn(str(error), stacklevel=3)
    if changed:
        # the planned training step and any fused inference path were made for the float layers
        object.__setattr__(model, "_static_plan", None)


def _leaf_layers(model):
    seen, out = set(), []

    def walk(layer):
        if id(layer) in seen:
            return
        seen.add(id(layer))
        subs = layer.__dict__.get("_layers", ())
        if not subs:
            out.append(layer)
        for sub in subs:
            walk(sub)
    for layer in model._layers:
        walk(layer)
    return out


def _selected(layer, filters):
    if filters is None:
        return True
    if isinstance(filters, str):
        return bool(re.search(filters, layer.name))
    if isinstance(filters, (list, tuple)):
        return any(re.search(pattern, layer.name) for pattern in filters)
    return bool(filters(layer))


# -- the int8 arithmetic ----------------------------------------------------------------------------------
def quantize_inputs(quantizer, x, axis):
    """(int8 array, scale array) of the float array ``x``: the AbsMaxQuantizer on arrays, any other
    Quantizer through its Tensor interface."""
    if type(quantizer) is quantizers.AbsMaxQuantizer:
        return quantizers.abs_max_quantize_array(x, axis, quantizer.value_range, quantizer.output_dtype,
                                                 quantizer.epsilon)
    q, scale = quantizer(x, axis=axis)
    return getattr(q, "data", q), getattr(scale, "data", scale)


def int_matmul(a, b):
    """a @ b of two int8 arrays, exact, as float32 (Keras's int32 product cast to float)."""
    xp = array_module(a)
    product = backend_of(a).matmul
    f32 = xp.float32
    k = a.shape[-1]
    if k <= _CHUNK:
        return product(a.astype(f32), b.astype(f32))
    total = None
    for start in range(0, k, _CHUNK):
        part = product(a[..., start:start + _CHUNK].astype(f32), b[start:start + _CHUNK].astype(f32)).astype(xp.int32)
        total = part if total is None else total + part
    return total.astype(f32)


def int_einsum(equation, a, b, contracted):
    """einsum of two int8 arrays, exact, as float32: in float32 while the contraction has at most 1024
    terms, else in int32 (numpy's and CuPy's integer einsum: exact, without BLAS)."""
    xp = array_module(a)
    if contracted <= _CHUNK:
        return xp.einsum(equation, a.astype(xp.float32), b.astype(xp.float32))
    return xp.einsum(equation, a.astype(xp.int32), b.astype(xp.int32)).astype(xp.float32)


def with_inputs_gradient(inputs, out, grad):
    """``out`` (an array computed from ``inputs``) as a Tensor whose gradient to ``inputs`` is ``grad(g)``:
    Keras's custom gradient around the int8 product, which autodiff cannot go through."""
    return make_result(out, (inputs,), lambda g: (grad(g),))


def int8_dense(inputs, kernel, kernel_scale, inputs_quantizer):
    """inputs @ kernel for an int8 kernel with one scale per column, as Keras's Dense._int8_call."""
    x, k, ks = inputs.data, kernel.data, kernel_scale.data
    compute = x.dtype
    if inputs_quantizer is not None:
        xq, xs = quantize_inputs(inputs_quantizer, x, -1)
        out = int_matmul(xq, k).astype(compute, copy=False) / (ks * xs)
    else:  # weight-only: a float matmul with the int8 values, then the column scales
        out = backend_of(x).matmul(x, k.astype(compute)) / ks

    def grad(g):
        return backend_of(g).matmul(g, (k.astype(g.dtype) / ks).T)
    return with_inputs_gradient(inputs, out.astype(compute, copy=False), grad)


# -- EinsumDense: which axes the scales run over (Keras's _analyze_quantization_info) -----------------------
def einsum_quantization_info(equation, input_ndim):
    """The axes Keras's EinsumDense quantizes over and how its scales line up with the output, for an
    equation and the rank of the input.  Keras passes the rank where this needs the shape's length, which
    makes its quantize fail on equations with "..."; here the rank is used, so those work too."""
    input_spec, weight_spec, output_spec = _full_specs(equation, input_ndim)
    input_reduced = [i for i, c in enumerate(input_spec) if c not in output_spec]
    weight_reduced = [i for i, c in enumerate(weight_spec) if c not in output_spec]
    input_expand = [i for i, c in enumerate(output_spec) if c not in input_spec]
    weight_expand = [i for i, c in enumerate(output_spec) if c not in weight_spec]
    input_transpose = [input_spec.index(c) for c in output_spec if c in input_spec]
    weight_transpose = [weight_spec.index(c) for c in output_spec if c in weight_spec]
    input_squeeze = _place_reduced(input_reduced, input_expand, input_transpose)
    weight_squeeze = _place_reduced(weight_reduced, weight_expand, weight_transpose)
    return {"input_reduced": input_reduced, "kernel_reduced": weight_reduced,
            "input_transpose": input_transpose, "kernel_transpose": weight_transpose,
            "input_expand": input_expand, "kernel_expand": weight_expand,
            "input_squeeze": input_squeeze, "kernel_squeeze": weight_squeeze,
            "gradient_equation": f"{output_spec},{weight_spec}->{input_spec}",
            "equation": f"{input_spec},{weight_spec}->{output_spec}"}


def _place_reduced(reduced, expand, transpose):
    """Keras's post-processing of one operand, kept as it is: each reduced axis takes the next expand axis
    (popped from ``expand``) and is inserted into ``transpose`` there; `index` carries over when the expand
    axes run out (where Keras would have none yet and fail, the axis goes last).  Returns the squeeze axes."""
    squeeze, index = [], None
    for original in reduced:
        if expand:
            index = expand.pop(0)
        else:
            squeeze.append(original)
        transpose.insert(len(transpose) if index is None else index, original)
    return squeeze


def _full_specs(equation, ndim):
    """(input, kernel, output) letters with "..." spelled out as letters for an input of rank ``ndim``."""
    compact = re.sub(r"\.\.\.", "0", equation.replace(" ", ""))
    for pattern, side in (("([a-zA-Z]+),([a-zA-Z]+)->([a-zA-Z]+)$", None),
                          ("0([a-zA-Z]+),([a-zA-Z]+)->0([a-zA-Z]+)$", "left"),
                          ("([a-zA-Z]{2,})0,([a-zA-Z]+)->([a-zA-Z]+)0$", "right")):
        match = re.match(pattern, compact)
        if match is None:
            continue
        input_spec, weight_spec, output_spec = match.groups()
        if side is not None:
            free = sorted(set(string.ascii_letters) - set(input_spec) - set(weight_spec) - set(output_spec))
            extra = "".join(free[:ndim - len(input_spec)])
            if side == "left":
                input_spec, output_spec = extra + input_spec, extra + output_spec
            else:
                input_spec, output_spec = input_spec + extra, output_spec + extra
        return input_spec, weight_spec, output_spec
    raise ValueError(f"Invalid einsum equation '{equation}'. Equations must be in the form [X],[Y]->[Z], "
                     f"...[X],[Y]->...[Z], or [X]...,[Y]->[Z]....")


def scale_for_output(xp, scale, info, kind):
    """Keras's _adjust_scale_for_quant: a scale with the quantized axes kept (size 1) laid out to broadcast
    against the output."""
    transpose, expand, squeeze = info[f"{kind}_transpose"], info[f"{kind}_expand"], info[f"{kind}_squeeze"]
    if transpose:
        scale = xp.transpose(scale, transpose)
    if expand:
        scale = xp.expand_dims(scale, tuple(expand))
    if squeeze:
        scale = xp.squeeze(scale, tuple(squeeze))
    return scale


def scale_for_kernel(xp, scale, info):
    """Keras's _adjust_scale_for_dequant: the kernel's scale back in the kernel's layout."""
    if info["kernel_squeeze"]:
        scale = xp.expand_dims(scale, tuple(info["kernel_squeeze"]))
    if info["kernel_expand"]:
        scale = xp.squeeze(scale, tuple(info["kernel_expand"]))
    transpose = info["kernel_transpose"]
    if transpose:
        scale = xp.transpose(scale, sorted(range(len(transpose)), key=transpose.__getitem__))
    return scale


def kernel_scale_shape(kernel_shape, info):
    """Keras's _get_kernel_scale_shape (one scale per output channel)."""
    shape = list(kernel_shape)
    for axis in info["kernel_reduced"]:
        shape[axis] = 1
    shape = [shape[i] for i in info["kernel_transpose"]]
    for axis in sorted(info["kernel_expand"]):
        shape.insert(axis, 1)
    for axis in sorted(info["kernel_squeeze"], reverse=True):
        shape.pop(axis)
    return tuple(shape)


def int8_einsum(inputs, kernel, kernel_scale, info, inputs_quantizer):
    """einsum(equation, inputs, kernel) for EinsumDense's int8 kernel, as Keras's _int8_call (torch)."""
    x, k, ks = inputs.data, kernel.data, kernel_scale.data
    xp = array_module(x)
    compute = x.dtype
    equation = info["equation"]
    if inputs_quantizer is not None:
        xq, xs = quantize_inputs(inputs_quantizer, x, tuple(info["input_reduced"]))
        xs = scale_for_output(xp, xs, info, "input")
        contracted = 1
        for axis in info["kernel_reduced"]:
            contracted *= k.shape[axis]
        out = int_einsum(equation, xq, k, contracted).astype(compute, copy=False) / (xs * ks)
    else:
        out = xp.einsum(equation, x, k.astype(compute) / scale_for_kernel(xp, ks, info))

    def grad(g):
        return xp.einsum(info["gradient_equation"], g, k.astype(g.dtype) / scale_for_kernel(xp, ks, info))
    return with_inputs_gradient(inputs, out.astype(compute, copy=False), grad)
