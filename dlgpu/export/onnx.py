"""Export a built Sequential or functional model to ONNX (opset 17), for onnxruntime and friends.

    model.export("m.onnx")                    # or dlgpu.export.onnx.export(model, "m.onnx")

One converter per layer class, in ``CONVERTERS``; each turns one layer call into a few ONNX nodes.  The
lookup is by exact class, so a subclass of Dense with its own ``call`` is refused rather than exported as
a plain Dense.  A layer without a converter, or with arguments its converter cannot express (an
Embedding with mask_zero=True, a recurrent layer with an activation ONNX's recurrent ops lack), is
refused by name with the reason.

Layout: the exported graph keeps Keras's channels_last everywhere, so its inputs and outputs are the
arrays ``model.predict`` takes and returns.  ONNX's Conv, ConvTranspose, pooling and linear Resize ops
read channels-first data, so each of them is wrapped in Transpose(channels_last -> channels_first) ...
Transpose(back), for 1-D, 2-D and 3-D alike.  Everything else (Flatten, Reshape, Concatenate's axis,
the normalizations' axes, Dense on 4-d inputs) then needs no layout logic at all, and Flatten flattens
in NHWC order exactly as Keras does.  The back-to-back pairs between two convolutions cost little:
onnxruntime's transpose optimizer cancels them when it loads the model.  The recurrent layers use ONNX's
RNN, LSTM and GRU ops, which read (steps, batch, features): one Transpose each way.

Inference only: Dropout and the other training-time noise layers are Identity, BatchNormalization uses
its moving statistics (folded into one multiply and one add).  The file is written to a temporary file
and renamed, so a failed export leaves nothing behind; every check (built model, supported layers,
onnx.checker) runs before the file is opened.
"""

from __future__ import annotations

import errno
import os

import numpy as np

from dlgpu import activations
from dlgpu.layers import activation as _act
from dlgpu.layers import base as _base
from dlgpu.layers import conv as _conv
from dlgpu.layers import conv_transpose as _convt
from dlgpu.layers import core as _core
from dlgpu.layers import depthwise_conv as _dw
from dlgpu.layers import einsum_dense as _einsum
from dlgpu.layers import merge as _merge
from dlgpu.layers import normalization as _norm
from dlgpu.layers import op_node as _op_node_module
from dlgpu.layers import pooling as _pool
from dlgpu.layers import preprocessing as _prep
from dlgpu.layers import recurrent as _rec
from dlgpu.layers import regularization as _reg
from dlgpu.layers import reshaping as _reshaping

OPSET = 17
IR_VERSION = 8  # the IR version that goes with opset 17; newer IR versions are refused by older runtimes


class ExportError(ValueError):
    """The model cannot be exported: not built, or it holds a layer without an ONNX converter."""


def _require_onnx():
    try:
        import onnx
    except ImportError as exc:
        raise ImportError("ONNX export needs the onnx package: pip install 'dlgpu[onnx]' (or pip install onnx)") from exc
    return onnx


class _Graph:
    """What converters write into: nodes, initializers (weights) and fresh value names."""

    def __init__(self, onnx):
        self.onnx = onnx
        self.helper = onnx.helper
        self.numpy_helper = onnx.numpy_helper
        self.nodes, self.initializers = [], []
        self._used = set()

    def fresh(self, base):
        name, i = base, 0
        while name in self._used:
            i += 1
            name = f"{base}_{i}"
        self._used.add(name)
        return name

    def const(self, base, array, dtype=np.float32):
        name = self.fresh(base)
        self.initializers.append(self.numpy_helper.from_array(np.asarray(array, dtype=dtype), name))
        return name

    def node(self, op_type, inputs, outputs=None, name=None, **attrs):
        """Add one node; returns its (first) output name.  ``outputs`` defaults to one fresh name."""
        outputs = outputs or [self.fresh(f"{name or op_type}_out")]
        self.nodes.append(self.helper.make_node(op_type, list(inputs), list(outputs),
                                                name=self.fresh(name or op_type), **attrs))
        return outputs[0]


# -- activations -----------------------------------------------------------------------------------

def _activation_name(fn):
    name = activations.serialize(fn)
    if isinstance(name, dict):  # {"class_name": ..., "config": {"name": ...}} style
        name = name.get("config", {}).get("name") or name.get("class_name")
    return name or getattr(fn, "__name__", repr(fn))


def _gelu(g, x, out, prefix):
    # exact GELU, as dlgpu computes it: x * 0.5 * (1 + erf(x / sqrt(2))); opset 17 has no Gelu op.
    scaled = g.node("Mul", [x, g.const(f"{prefix}/inv_sqrt2", np.sqrt(0.5))], name=f"{prefix}/gelu_scale")
    erf = g.node("Erf", [scaled], name=f"{prefix}/gelu_erf")
    one_plus = g.node("Add", [erf, g.const(f"{prefix}/one", 1.0)], name=f"{prefix}/gelu_add")
    half_x = g.node("Mul", [x, g.const(f"{prefix}/half", 0.5)], name=f"{prefix}/gelu_half")
    return g.node("Mul", [half_x, one_plus], [out] if out else None, name=f"{prefix}/gelu")


def _swish(g, x, out, prefix):
    return g.node("Mul", [x, g.node("Sigmoid", [x], name=f"{prefix}/sigmoid")], [out] if out else None,
                  name=f"{prefix}/swish")


_SIMPLE_ACTIVATIONS = {  # name -> (ONNX op, attributes)
    "relu": ("Relu", {}), "sigmoid": ("Sigmoid", {}), "tanh": ("Tanh", {}), "softmax": ("Softmax", {"axis": -1}),
    "leaky_relu": ("LeakyRelu", {"alpha": 0.2}), "elu": ("Elu", {"alpha": 1.0}), "selu": ("Selu", {}),
    "softplus": ("Softplus", {}), "softsign": ("Softsign", {}), "exponential": ("Exp", {}),
    "hard_sigmoid": ("HardSigmoid", {"alpha": 1.0 / 6.0, "beta": 0.5}),
}
_COMPOSED_ACTIVATIONS = {"gelu": _gelu, "swish": _swish, "silu": _swish}


def _emit_activation(g, layer, fn, x, out=None):
    """Apply activation ``fn`` of ``layer`` to value ``x``; write to ``out`` when given."""
    name = _activation_name(fn)
    prefix = layer.name
    if name == "linear":
        return g.node("Identity", [x], [out], name=f"{prefix}/linear") if out else x
    if name in _SIMPLE_ACTIVATIONS:
        op, attrs = _SIMPLE_ACTIVATIONS[name]
        return g.node(op, [x], [out] if out else None, name=f"{prefix}/{name}", **attrs)
    if name in _COMPOSED_ACTIVATIONS:
        return _COMPOSED_ACTIVATIONS[name](g, x, out, prefix)
    supported = sorted(["linear", *_SIMPLE_ACTIVATIONS, *_COMPOSED_ACTIVATIONS])
    raise ExportError(f"ONNX export: layer '{layer.name}' ({type(layer).__name__}) uses activation {name!r}, which "
                      f"has no ONNX conversion. Supported activations: {supported}")


# -- one converter per layer class: (graph, layer, input names, output name, input shapes) -> None ---------

def _weight(variable):
    return variable.numpy().astype(np.float32, copy=False)


def _dense(g, layer, inputs, out, shapes):
    y = g.node("MatMul", [inputs[0], g.const(f"{layer.name}/kernel", _weight(layer.kernel))], name=f"{layer.name}/matmul")
    if layer.use_bias:
        y = g.node("Add", [y, g.const(f"{layer.name}/bias", _weight(layer.bias))], name=f"{layer.name}/bias_add")
    _emit_activation(g, layer, layer.activation, y, out)


def _layout_perms(rank):
    """(channels_last -> channels_first, channels_first -> channels_last) permutations for ``rank`` spatial axes."""
    return [0, rank + 1, *range(1, rank + 1)], [0, *range(2, rank + 2), 1]


def _channels_first(g, layer, x, rank):
    return g.node("Transpose", [x], perm=_layout_perms(rank)[0], name=f"{layer.name}/to_channels_first")


def _channels_last(g, layer, y, rank, out=None):
    return g.node("Transpose", [y], [out] if out else None, perm=_layout_perms(rank)[1],
                  name=f"{layer.name}/to_channels_last")


def _window_attrs(layer, shape, window, strides, padding, dilation=None):
    """kernel/strides and explicit pads from the same rule the ops use (TensorFlow's 'same': extra at the end).
    ONNX lists the pads as all the 'before' ones, then all the 'after' ones."""
    rank = len(window)
    dilation = tuple(dilation or (1,) * rank)
    dilated = dilation != (1,) * rank
    attrs = {"kernel_shape": list(window), "strides": list(strides)}
    if dilated:
        attrs["dilations"] = list(dilation)
    if padding == "causal":  # Conv1D: (k - 1) * dilation zeros before the sequence, none after
        attrs["pads"] = [(window[0] - 1) * dilation[0], 0]
    elif padding == "same":
        spatial = tuple(shape[1:-1])
        if any(s is None for s in spatial):
            if dilated:
                raise ExportError(f"ONNX export: layer '{layer.name}' ({type(layer).__name__}) is dilated with "
                                  f"padding='same' on an input of unknown spatial size {tuple(shape)}; "
                                  f"onnxruntime computes no 'same' padding for dilated windows. Give the model's "
                                  f"Input a fixed spatial size.")
            attrs["auto_pad"] = "SAME_UPPER"  # unknown spatial size: ONNX's rule is the same one
        else:
            from dlgpu.ops.conv import spatial_pads
            pads = spatial_pads("same", spatial, window, strides, dilation)
            attrs["pads"] = [before for before, _ in pads] + [after for _, after in pads]
    return attrs


def _onnx_kernel(kernel):
    """Keras's (*k, in, out) kernel as ONNX's (out, in, *k)."""
    rank = kernel.ndim - 2
    return np.ascontiguousarray(np.moveaxis(kernel, (rank + 1, rank), (0, 1)))


def _conv_node(g, layer, x, kernel, bias, attrs, op_type="Conv", suffix="conv"):
    conv_inputs = [x, g.const(f"{layer.name}/{suffix}_kernel", kernel)]
    if bias is not None:
        conv_inputs.append(g.const(f"{layer.name}/{suffix}_bias", _weight(bias)))
    return g.node(op_type, conv_inputs, name=f"{layer.name}/{suffix}", **attrs)


def _convolution(g, layer, inputs, out, shapes):
    """Conv1D, Conv2D, Conv3D: dilated, grouped and (1-D) causal too."""
    rank = len(layer.kernel_size)
    attrs = _window_attrs(layer, shapes[0], layer.kernel_size, layer.strides, layer.padding, layer.dilation_rate)
    if layer.groups != 1:
        attrs["group"] = layer.groups  # ONNX's (Cout, Cin/group, *k) kernel is Keras's, transposed
    y = _conv_node(g, layer, _channels_first(g, layer, inputs[0], rank), _onnx_kernel(_weight(layer.kernel)),
                   layer.bias if layer.use_bias else None, attrs)
    _emit_activation(g, layer, layer.activation, _channels_last(g, layer, y, rank), out)


def _depthwise_kernel(kernel):
    """(*k, C, multiplier) as a grouped convolution's (C * multiplier, 1, *k): output c * multiplier + m."""
    k = kernel.shape[:-2]
    return _onnx_kernel(kernel.reshape(k + (1, kernel.shape[-2] * kernel.shape[-1])))


def _depthwise_conv(g, layer, inputs, out, shapes):
    rank = len(layer.kernel_size)
    kernel = _weight(layer.kernel)
    attrs = _window_attrs(layer, shapes[0], layer.kernel_size, layer.strides, layer.padding, layer.dilation_rate)
    attrs["group"] = kernel.shape[-2]
    y = _conv_node(g, layer, _channels_first(g, layer, inputs[0], rank), _depthwise_kernel(kernel),
                   layer.bias if layer.use_bias else None, attrs)
    _emit_activation(g, layer, layer.activation, _channels_last(g, layer, y, rank), out)


def _separable_conv(g, layer, inputs, out, shapes):
    rank = len(layer.kernel_size)
    depthwise = _weight(layer.depthwise_kernel)
    attrs = _window_attrs(layer, shapes[0], layer.kernel_size, layer.strides, layer.padding, layer.dilation_rate)
    attrs["group"] = depthwise.shape[-2]
    y = _conv_node(g, layer, _channels_first(g, layer, inputs[0], rank), _depthwise_kernel(depthwise), None,
                   attrs, suffix="depthwise")
    pointwise = _onnx_kernel(_weight(layer.pointwise_kernel))
    y = _conv_node(g, layer, y, pointwise, layer.bias, {"kernel_shape": [1] * rank}, suffix="pointwise")
    _emit_activation(g, layer, layer.activation, _channels_last(g, layer, y, rank), out)


def _conv_transpose(g, layer, inputs, out, shapes):
    """Conv1D/2D/3DTranspose: the geometry (pads, zeros appended at the end) is the one ops.conv_transpose uses,
    and it does not depend on the input's size; ONNX's output_padding appends those positions, which receive
    no input, so they hold the bias, as in dlgpu where the bias is added after the zeros."""
    from dlgpu.ops.conv import transpose_geometry
    rank = len(layer.kernel_size)
    output_padding = layer.output_padding or (None,) * rank
    geometry = [transpose_geometry(1, k, s, d, layer.padding, p)
                for k, s, d, p in zip(layer.kernel_size, layer.strides, layer.dilation_rate, output_padding)]
    attrs = {"kernel_shape": list(layer.kernel_size), "strides": list(layer.strides),
             "pads": [pads[0] for _, pads, _ in geometry] + [pads[1] for _, pads, _ in geometry]}
    if layer.dilation_rate != (1,) * rank:
        attrs["dilations"] = list(layer.dilation_rate)
    appended = [extra for _, _, extra in geometry]
    if any(appended):
        attrs["output_padding"] = appended
    # ConvTranspose's kernel is (Cin, Cout, *k); Keras's is (*k, Cout, Cin)
    y = _conv_node(g, layer, _channels_first(g, layer, inputs[0], rank), _onnx_kernel(_weight(layer.kernel)),
                   layer.bias if layer.use_bias else None, attrs, op_type="ConvTranspose")
    _emit_activation(g, layer, layer.activation, _channels_last(g, layer, y, rank), out)


def _pooling(op_type, **extra):
    def convert(g, layer, inputs, out, shapes):
        rank = len(layer.pool_size)
        y = g.node(op_type, [_channels_first(g, layer, inputs[0], rank)], name=f"{layer.name}/pool",
                   **_window_attrs(layer, shapes[0], layer.pool_size, layer.strides, layer.padding), **extra)
        _channels_last(g, layer, y, rank, out)
    return convert


def _global_pooling(op_type):
    def convert(g, layer, inputs, out, shapes):
        g.node(op_type, inputs, [out], axes=list(range(1, len(shapes[0]) - 1)), keepdims=int(bool(layer.keepdims)),
               name=layer.name)
    return convert


def _zero_padding(g, layer, inputs, out, shapes):
    pads = [0, *(before for before, _ in layer.padding), 0, 0, *(after for _, after in layer.padding), 0]
    g.node("Pad", [inputs[0], g.const(f"{layer.name}/pads", pads, dtype=np.int64)], [out], mode="constant",
           name=layer.name)


def _cropping(g, layer, inputs, out, shapes):
    rank = len(layer.cropping)
    # an 'after' crop of 0 keeps the axis to its end, which a negative end cannot say
    ends = [-after if after else np.iinfo(np.int64).max for _, after in layer.cropping]
    g.node("Slice", [inputs[0], g.const(f"{layer.name}/starts", [b for b, _ in layer.cropping], dtype=np.int64),
                     g.const(f"{layer.name}/ends", ends, dtype=np.int64),
                     g.const(f"{layer.name}/axes", list(range(1, rank + 1)), dtype=np.int64)], [out], name=layer.name)


def _upsampling(g, layer, inputs, out, shapes):
    """Nearest: entry i of the output is entry floor(i / size) of the input (Keras's repeat).  Bilinear: ONNX's
    linear Resize with half-pixel centres, clamped at the edges, as dlgpu computes it."""
    rank = len(layer.size)
    scales = g.const(f"{layer.name}/scales", [1.0, *map(float, layer.size), 1.0])
    if layer.interpolation == "bilinear":  # on channels-first data, the layout every runtime's linear Resize takes
        x = _channels_first(g, layer, inputs[0], rank)
        scales = g.const(f"{layer.name}/scales_cf", [1.0, 1.0, *map(float, layer.size)])
        y = g.node("Resize", [x, "", scales], name=f"{layer.name}/resize", mode="linear",
                   coordinate_transformation_mode="half_pixel")
        _channels_last(g, layer, y, rank, out)
        return
    g.node("Resize", [inputs[0], "", scales], [out], name=layer.name, mode="nearest",
           coordinate_transformation_mode="asymmetric", nearest_mode="floor")


def _flatten(g, layer, inputs, out, shapes):
    g.node("Flatten", inputs, [out], axis=1, name=layer.name)  # the input is NHWC, so this is Keras's order


def _reshape(g, layer, inputs, out, shapes):
    target = g.const(f"{layer.name}/shape", [0, *layer.target_shape], dtype=np.int64)  # 0: keep the batch size
    g.node("Reshape", [inputs[0], target], [out], name=layer.name)


def _identity(g, layer, inputs, out, shapes):
    g.node("Identity", inputs, [out], name=layer.name)


def _activation(g, layer, inputs, out, shapes):
    _emit_activation(g, layer, layer.activation, inputs[0], out)


def _batch_norm(g, layer, inputs, out, shapes):
    # y = (x - mean) / sqrt(var + eps) * gamma + beta  ==  x * scale + shift, folded in float64 once.
    mean = layer.moving_mean.numpy().astype(np.float64)
    var = layer.moving_variance.numpy().astype(np.float64)
    gamma = layer.gamma.numpy().astype(np.float64) if layer.gamma is not None else 1.0
    beta = layer.beta.numpy().astype(np.float64) if layer.beta is not None else 0.0
    scale = gamma / np.sqrt(var + layer.epsilon)
    shift = beta - mean * scale
    shape = layer._param_shape  # size on the normalized axis, 1 elsewhere: broadcasts over NHWC or (N, C)
    y = g.node("Mul", [inputs[0], g.const(f"{layer.name}/scale", scale.reshape(shape))], name=f"{layer.name}/scale")
    g.node("Add", [y, g.const(f"{layer.name}/shift", shift.reshape(shape))], [out], name=f"{layer.name}/shift")


def _axes_of(layer, rank):
    return sorted(a % rank for a in ([layer.axis] if isinstance(layer.axis, int) else layer.axis))


def _spanning(array, axes, rank):
    """A parameter over ``axes`` reshaped to broadcast over the whole input: its sizes there, 1 elsewhere."""
    shape = [1] * rank
    for a, size in zip(axes, np.shape(array)):
        shape[a] = size
    return np.asarray(array, np.float32).reshape(shape)


def _reduce_mean(g, prefix, x, axes, name):
    return g.node("ReduceMean", [x], axes=list(axes), keepdims=1, name=f"{prefix}/{name}")


def _rsqrt_of(g, prefix, x, epsilon):
    """1 / sqrt(x + epsilon)."""
    shifted = g.node("Add", [x, g.const(f"{prefix}/epsilon", epsilon)], name=f"{prefix}/add_epsilon")
    return g.node("Reciprocal", [g.node("Sqrt", [shifted], name=f"{prefix}/sqrt")], name=f"{prefix}/reciprocal")


def _standardize(g, prefix, x, axes, epsilon):
    """(x - mean) / sqrt(var + epsilon) over ``axes``; the variance is the biased one, as dlgpu's."""
    centred = g.node("Sub", [x, _reduce_mean(g, prefix, x, axes, "mean")], name=f"{prefix}/centre")
    squared = g.node("Mul", [centred, centred], name=f"{prefix}/square")
    variance = _reduce_mean(g, prefix, squared, axes, "variance")
    return g.node("Mul", [centred, _rsqrt_of(g, prefix, variance, epsilon)], name=f"{prefix}/standardize")


def _affine(g, layer, y, gamma, beta, out):
    """y * gamma + beta for the (already broadcastable) arrays that are not None; writes ``out``."""
    steps = [(op, value) for op, value in (("Mul", gamma), ("Add", beta)) if value is not None]
    if not steps:
        return g.node("Identity", [y], [out], name=f"{layer.name}/identity")
    for i, (op, value) in enumerate(steps):
        name = "gamma" if op == "Mul" else "beta"
        y = g.node(op, [y, g.const(f"{layer.name}/{name}", value)], [out] if i == len(steps) - 1 else None,
                   name=f"{layer.name}/{name}")
    return y


def _layer_norm(g, layer, inputs, out, shapes):
    rank = len(shapes[0])
    axes = _axes_of(layer, rank)
    size = tuple(shapes[0][a] for a in axes)
    gamma = _weight(layer.gamma) if layer.gamma is not None else None
    beta = _weight(layer.beta) if layer.beta is not None else None
    if layer.rms_scaling:  # Keras's deprecated variant: x / sqrt(var + eps) * gamma, the mean not subtracted
        prefix = layer.name
        centred = g.node("Sub", [inputs[0], _reduce_mean(g, prefix, inputs[0], axes, "mean")], name=f"{prefix}/centre")
        variance = _reduce_mean(g, prefix, g.node("Mul", [centred, centred], name=f"{prefix}/square"), axes,
                                "variance")
        y = g.node("Mul", [inputs[0], _rsqrt_of(g, prefix, variance, layer.epsilon)], name=f"{prefix}/scale")
        _affine(g, layer, y, None if gamma is None else _spanning(gamma, axes, rank), None, out)
    elif axes == list(range(axes[0], rank)):  # a run of trailing axes: ONNX's own op
        gamma = np.ones(size, np.float32) if gamma is None else gamma
        beta = np.zeros(size, np.float32) if beta is None else beta
        g.node("LayerNormalization", [inputs[0], g.const(f"{layer.name}/gamma", gamma),
                                      g.const(f"{layer.name}/beta", beta)],
               [out], axis=axes[0] - rank, epsilon=layer.epsilon, name=layer.name)
    else:
        y = _standardize(g, layer.name, inputs[0], axes, layer.epsilon)
        _affine(g, layer, y, None if gamma is None else _spanning(gamma, axes, rank),
                None if beta is None else _spanning(beta, axes, rank), out)


def _group_norm(g, layer, inputs, out, shapes):
    """(..., C, ...) -> (..., groups, C // groups, ...), standardized over every axis but the batch and the
    group axis, reshaped back; then the per-channel gamma and beta.  The grouped shape is built from the
    input's runtime shape, so unknown spatial sizes and any batch size work."""
    rank = len(shapes[0])
    axis = layer.axis % rank
    channels = shapes[0][axis]
    prefix = layer.name
    x = inputs[0]
    shape = g.node("Shape", [x], name=f"{prefix}/shape")
    parts = [g.node("Shape", [x], end=axis, name=f"{prefix}/shape_before"),
             g.const(f"{prefix}/groups", [layer.groups, channels // layer.groups], dtype=np.int64)]
    if axis + 1 < rank:
        parts.append(g.node("Shape", [x], start=axis + 1, name=f"{prefix}/shape_after"))
    grouped_shape = g.node("Concat", parts, axis=0, name=f"{prefix}/grouped_shape")
    grouped = g.node("Reshape", [x, grouped_shape], name=f"{prefix}/group")
    reduce = [a for a in range(1, rank + 1) if a != axis]
    y = _standardize(g, prefix, grouped, reduce, layer.epsilon)
    y = g.node("Reshape", [y, shape], name=f"{prefix}/ungroup")
    param = [channels if a == axis else 1 for a in range(rank)]
    _affine(g, layer, y, None if layer.gamma is None else _weight(layer.gamma).reshape(param),
            None if layer.beta is None else _weight(layer.beta).reshape(param), out)


def _sum_of_squares(g, prefix, x, axes):
    squared = g.node("Mul", [x, x], name=f"{prefix}/square")
    return g.node("ReduceSum", [squared, g.const(f"{prefix}/axes", list(axes), dtype=np.int64)], keepdims=1,
                  name=f"{prefix}/sum_of_squares")


def _l2_normalize(g, prefix, x, axes, epsilon, out=None):
    """x / sqrt(max(sum(x^2), epsilon^2)), ops.normalize's order-2 rule."""
    clamped = g.node("Max", [_sum_of_squares(g, prefix, x, axes), g.const(f"{prefix}/epsilon_squared", epsilon ** 2)],
                     name=f"{prefix}/clamp")
    inverse = g.node("Reciprocal", [g.node("Sqrt", [clamped], name=f"{prefix}/sqrt")], name=f"{prefix}/reciprocal")
    return g.node("Mul", [x, inverse], [out] if out else None, name=f"{prefix}/normalize")


def _unit_norm(g, layer, inputs, out, shapes):
    _l2_normalize(g, layer.name, inputs[0], _axes_of(layer, len(shapes[0])), 1e-12, out)


def _rms_norm(g, layer, inputs, out, shapes):
    rank = len(shapes[0])
    axes = _axes_of(layer, rank)
    x = inputs[0]
    mean_square = _reduce_mean(g, layer.name, g.node("Mul", [x, x], name=f"{layer.name}/square"), axes, "mean_square")
    y = g.node("Mul", [x, _rsqrt_of(g, layer.name, mean_square, layer.epsilon)], name=f"{layer.name}/scale")
    g.node("Mul", [y, g.const(f"{layer.name}/gain", _spanning(_weight(layer.scale), axes, rank))], [out],
           name=f"{layer.name}/gain")


# -- activations, lookups and contractions ----------------------------------------------------------

def _prelu(g, layer, inputs, out, shapes):
    # ONNX's PRelu is x if x >= 0 else slope * x; alpha (the input's shape without the batch, 1 on shared
    # axes) broadcasts onto the input from the right
    g.node("PRelu", [inputs[0], g.const(f"{layer.name}/alpha", _weight(layer.alpha))], [out], name=layer.name)


def _relu_layer(g, layer, inputs, out, shapes):
    """ReLU(max_value, negative_slope, threshold) as activations.relu computes it."""
    x, prefix = inputs[0], layer.name
    last = layer.max_value is None
    target = [out] if last else None
    if layer.threshold != 0.0:
        threshold = g.const(f"{prefix}/threshold", layer.threshold)
        below = g.node("Mul", [g.node("Sub", [x, threshold], name=f"{prefix}/shift"),
                               g.const(f"{prefix}/negative_slope", layer.negative_slope)], name=f"{prefix}/below")
        y = g.node("Where", [g.node("GreaterOrEqual", [x, threshold], name=f"{prefix}/above"), x, below], target,
                   name=f"{prefix}/where")
    elif layer.negative_slope != 0.0:
        y = g.node("LeakyRelu", [x], target, alpha=layer.negative_slope, name=f"{prefix}/leaky_relu")
    else:
        y = g.node("Relu", [x], target, name=f"{prefix}/relu")
    if not last:
        g.node("Min", [y, g.const(f"{prefix}/max_value", layer.max_value)], [out], name=f"{prefix}/max_value")


def _leaky_relu_layer(g, layer, inputs, out, shapes):
    g.node("LeakyRelu", inputs, [out], alpha=layer.negative_slope, name=layer.name)


def _elu_layer(g, layer, inputs, out, shapes):
    g.node("Elu", inputs, [out], alpha=layer.alpha, name=layer.name)


def _softmax_layer(g, layer, inputs, out, shapes):
    rank = len(shapes[0])
    axes = sorted(a % rank for a in (layer.axis if isinstance(layer.axis, list) else [layer.axis]))
    if len(axes) == 1:
        g.node("Softmax", inputs, [out], axis=axes[0], name=layer.name)
        return
    # several axes normalized together: exp(x - logsumexp(x)) as dlgpu computes it
    lse = g.node("ReduceLogSumExp", inputs, axes=axes, keepdims=1, name=f"{layer.name}/logsumexp")
    g.node("Exp", [g.node("Sub", [inputs[0], lse], name=f"{layer.name}/sub")], [out], name=layer.name)


def _permute(g, layer, inputs, out, shapes):
    g.node("Transpose", inputs, [out], perm=[0, *layer.dims], name=layer.name)


def _repeat_vector(g, layer, inputs, out, shapes):
    y = g.node("Unsqueeze", [inputs[0], g.const(f"{layer.name}/axis", [1], dtype=np.int64)],
               name=f"{layer.name}/unsqueeze")
    g.node("Tile", [y, g.const(f"{layer.name}/repeats", [1, layer.n, 1], dtype=np.int64)], [out], name=layer.name)


def _rescaling(g, layer, inputs, out, shapes):
    y = g.node("Mul", [inputs[0], g.const(f"{layer.name}/scale", layer.scale)], name=f"{layer.name}/scale")
    g.node("Add", [y, g.const(f"{layer.name}/offset", layer.offset)], [out], name=f"{layer.name}/offset")


def _embedding(g, layer, inputs, out, shapes):
    if layer.mask_zero:
        raise ExportError(f"ONNX export: layer '{layer.name}' (Embedding) has mask_zero=True; the exported graph "
                          f"carries no masks, so the layers after it would see the padding. Export a model "
                          f"built with mask_zero=False.")
    # float ids truncate, as dlgpu's astype does
    ids = g.node("Cast", [inputs[0]], to=g.onnx.TensorProto.INT64, name=f"{layer.name}/ids")
    g.node("Gather", [g.const(f"{layer.name}/embeddings", _weight(layer.embeddings)), ids], [out], axis=0,
           name=layer.name)


def _letters(equation):
    """An einsum equation with its letters renamed to lowercase ones (onnxruntime reads only a-z)."""
    import string
    mapping, free = {}, iter(string.ascii_lowercase)
    renamed = []
    for c in equation:
        if c.isalpha():
            if c not in mapping:
                mapping[c] = next(free)
            c = mapping[c]
        renamed.append(c)
    return "".join(renamed)


def _einsum_dense(g, layer, inputs, out, shapes):
    y = g.node("Einsum", [inputs[0], g.const(f"{layer.name}/kernel", _weight(layer.kernel))],
               equation=_letters(layer.equation.replace(" ", "")), name=f"{layer.name}/einsum")
    if layer.bias is not None:
        y = g.node("Add", [y, g.const(f"{layer.name}/bias", _weight(layer.bias))], name=f"{layer.name}/bias_add")
    _emit_activation(g, layer, layer.activation, y, out)


def _dot(g, layer, inputs, out, shapes):
    import string
    a1, a2 = layer._axes([tuple(s) for s in shapes])
    x, y = inputs
    if layer.normalize:  # ops.normalize's default epsilon
        x = _l2_normalize(g, f"{layer.name}/x", x, [a1], 1e-7)
        y = _l2_normalize(g, f"{layer.name}/y", y, [a2], 1e-7)
    letters = iter(string.ascii_lowercase[2:])
    x_labels = ["a"] + [("b" if i == a1 else next(letters)) for i in range(1, len(shapes[0]))]
    y_labels = ["a"] + [("b" if i == a2 else next(letters)) for i in range(1, len(shapes[1]))]
    out_labels = [c for c in x_labels if c != "b"] + [c for c in y_labels[1:] if c != "b"]
    equation = f"{''.join(x_labels)},{''.join(y_labels)}->{''.join(out_labels)}"
    if len(out_labels) == 1:  # (batch, n) . (batch, n) gives (batch, 1), as Keras
        z = g.node("Einsum", [x, y], equation=equation, name=f"{layer.name}/einsum")
        g.node("Unsqueeze", [z, g.const(f"{layer.name}/axis", [1], dtype=np.int64)], [out], name=layer.name)
    else:
        g.node("Einsum", [x, y], [out], equation=equation, name=layer.name)


# -- recurrent layers: ONNX's RNN, LSTM and GRU ops ------------------------------------------------------
# ONNX's ops take (steps, batch, features), weights as (gates * units, rows) per direction, and one bias
# row of input biases then recurrent biases.  LSTM gates are [i, o, f, c] in ONNX and [i, f, c, o] in
# Keras; GRU gates are [z, r, h] in both, and ONNX's linear_before_reset=1 is Keras's reset_after=True
# (r multiplies h @ U_h + b'_h), linear_before_reset=0 its reset_after=False (r multiplies h first).

_RNN_ACTIVATIONS = {"tanh": "Tanh", "sigmoid": "Sigmoid", "relu": "Relu"}
_KERAS_TO_ONNX_GATES = {1: [0], 4: [0, 3, 1, 2], 3: [0, 1, 2]}


def _rnn_activation(layer, fn, argument):
    name = _activation_name(fn)
    if name not in _RNN_ACTIVATIONS:
        raise ExportError(f"ONNX export: layer '{layer.name}' ({type(layer).__name__}) has {argument}={name!r}; "
                          f"ONNX's recurrent ops are exported here only with {sorted(_RNN_ACTIVATIONS)}.")
    return _RNN_ACTIVATIONS[name]


def _gate_blocks(matrix, gates):
    """Keras's (rows, gates * units) matrix as ONNX's (1, gates * units, rows), the gates in ONNX's order."""
    rows, width = matrix.shape
    blocks = matrix.reshape(rows, gates, width // gates)[:, _KERAS_TO_ONNX_GATES[gates], :]
    return np.ascontiguousarray(blocks.reshape(rows, width).T[None])


def _recurrent(g, layer, inputs, out, shapes):
    """SimpleRNN, LSTM, GRU; with return_state=True ``out`` is the list [output, h] (LSTM: [output, h, c])."""
    kind = type(layer).__name__
    if len(inputs) != 1:
        raise ExportError(f"ONNX export: layer '{layer.name}' ({kind}) is called with an initial_state; only "
                          f"recurrent layers that start from zeros are exported.")
    out, *state_outs = out if layer.return_state else [out]
    gates, units, prefix = layer._gates, layer.units, layer.name
    kernel, recurrent = _weight(layer.kernel), _weight(layer.recurrent_kernel)
    attrs = {"hidden_size": units}
    if kind == "SimpleRNN":
        op = "RNN"
        attrs["activations"] = [_rnn_activation(layer, layer.activation, "activation")]
    else:
        op = kind
        gate = _rnn_activation(layer, layer.recurrent_activation, "recurrent_activation")
        act = _rnn_activation(layer, layer.activation, "activation")
        attrs["activations"] = [gate, act, act] if kind == "LSTM" else [gate, act]
    bias = np.zeros((2, gates * units), np.float32)
    if layer.bias is not None:
        b = _weight(layer.bias)
        if b.ndim == 2:  # GRU(reset_after=True): input biases, recurrent biases
            bias = b
        else:
            bias[0] = b
    if kind == "GRU":
        attrs["linear_before_reset"] = int(layer.reset_after)
    onnx_bias = np.concatenate([_gate_blocks(bias[i:i + 1], gates)[0, :, 0] for i in (0, 1)])[None]
    x = g.node("Transpose", [inputs[0]], perm=[1, 0, 2], name=f"{prefix}/to_time_major")
    if layer.go_backwards:  # Keras returns the steps in the order it processed them: reverse the input itself
        x = _reverse_steps(g, prefix, x, 0)
    y_all, y_last = g.fresh(f"{prefix}/Y"), g.fresh(f"{prefix}/Y_h")
    outputs = [y_all, y_last] + ([g.fresh(f"{prefix}/Y_c")] if kind == "LSTM" else [])
    weights = [g.const(f"{prefix}/W", _gate_blocks(kernel, gates)),
               g.const(f"{prefix}/R", _gate_blocks(recurrent, gates)), g.const(f"{prefix}/B", onnx_bias)]
    g.node(op, [x, *weights], outputs, name=f"{prefix}/{op.lower()}", **attrs)
    for name, state in zip(state_outs, outputs[1:]):  # [h] or [h, c]: (directions=1, batch, units)
        g.node("Squeeze", [state, g.const(f"{prefix}/direction_axis", [0], dtype=np.int64)], [name],
               name=f"{prefix}/state")
    if layer.return_sequences:  # Y: (steps, directions=1, batch, units)
        y = g.node("Squeeze", [y_all, g.const(f"{prefix}/direction_axis", [1], dtype=np.int64)],
                   name=f"{prefix}/squeeze")
        g.node("Transpose", [y], [out], perm=[1, 0, 2], name=f"{prefix}/to_batch_major")
    else:  # Y_h: (directions=1, batch, units)
        g.node("Squeeze", [y_last, g.const(f"{prefix}/direction_axis", [0], dtype=np.int64)], [out],
               name=f"{prefix}/squeeze")


def _reverse_steps(g, prefix, x, axis, out=None):
    """``x`` with its steps along ``axis`` in reverse order (a Slice with step -1)."""
    return g.node("Slice", [x, g.const(f"{prefix}/rev_start", [-1], dtype=np.int64),
                            g.const(f"{prefix}/rev_end", [np.iinfo(np.int64).min], dtype=np.int64),
                            g.const(f"{prefix}/rev_axis", [axis], dtype=np.int64),
                            g.const(f"{prefix}/rev_step", [-1], dtype=np.int64)], [out] if out else None,
                  name=f"{prefix}/reverse")


def _bidirectional(g, layer, inputs, out, shapes):
    """The forward and backward layers each as one recurrent op (the backward one on the reversed input),
    the backward sequence flipped back to the input's order, then merged.  ``out`` lists [output(s), forward
    states, backward states] when there are several."""
    if len(inputs) != 1:
        raise ExportError(f"ONNX export: layer '{layer.name}' (Bidirectional) is called with an initial_state; "
                          f"only recurrent layers that start from zeros are exported.")
    for sub in (layer.forward_layer, layer.backward_layer):
        if type(sub) not in (_rec.SimpleRNN, _rec.LSTM, _rec.GRU):
            raise ExportError(f"ONNX export: layer '{layer.name}' (Bidirectional) wraps '{sub.name}' "
                              f"({type(sub).__name__}); only SimpleRNN, LSTM and GRU are exported.")
    outs = out if isinstance(out, list) else [out]
    merged = 2 if layer.merge_mode is None else 1
    outputs, states = outs[:merged], outs[merged:]
    halves = []
    for i, sub in enumerate((layer.forward_layer, layer.backward_layer)):
        y = g.fresh(f"{sub.name}/output")
        half = states[i * len(states) // 2:(i + 1) * len(states) // 2]
        _recurrent(g, sub, inputs, [y, *half] if layer.return_state else y, shapes)
        halves.append(y)
    forward, backward = halves
    if layer.return_sequences:
        backward = _reverse_steps(g, f"{layer.name}/backward", backward, 1)
    if layer.merge_mode is None:
        g.node("Identity", [forward], [outputs[0]], name=f"{layer.name}/forward")
        g.node("Identity", [backward], [outputs[1]], name=f"{layer.name}/backward")
    elif layer.merge_mode == "concat":
        g.node("Concat", [forward, backward], outputs, axis=-1, name=layer.name)
    elif layer.merge_mode == "ave":
        total = g.node("Add", [forward, backward], name=f"{layer.name}/sum")
        g.node("Mul", [total, g.const(f"{layer.name}/half", 0.5)], outputs, name=layer.name)
    else:
        g.node({"sum": "Add", "mul": "Mul"}[layer.merge_mode], [forward, backward], outputs, name=layer.name)


def _merge_op(op_type, variadic):
    def convert(g, layer, inputs, out, shapes):
        if variadic or len(inputs) == 2:
            g.node(op_type, inputs, [out], name=layer.name)
            return
        y = inputs[0]
        for i, x in enumerate(inputs[1:], 1):
            y = g.node(op_type, [y, x], [out] if i == len(inputs) - 1 else None, name=f"{layer.name}/{i}")
    return convert


def _concatenate(g, layer, inputs, out, shapes):
    g.node("Concat", inputs, [out], axis=layer.axis % len(shapes[0]), name=layer.name)


# ops on KerasTensors (OpLayer nodes) with an ONNX form: two tensors of one dtype, nothing else (x + y was an
# Add layer before ops became graph nodes)
_BINARY_OPS = {"add": "Add", "subtract": "Sub", "multiply": "Mul", "divide": "Div", "true_divide": "Div"}


def _op_node_problem(layer):
    """Why an op node cannot be exported, or None."""
    node = layer._inbound_nodes[0]
    if layer.op not in _BINARY_OPS:
        return f"ops.{layer.op} has no ONNX converter (supported: {', '.join(sorted(_BINARY_OPS))})"
    args = list(node.inputs)
    if len(args) != 2 or node.kwargs or not all(isinstance(a, _base.KerasTensor) for a in args) \
            or args[0].dtype != args[1].dtype or args[0].dtype not in ("float32", "float64", "float16"):
        return f"ops.{layer.op} is exported only between two float tensors of one dtype"
    return None


def _op_node(g, layer, inputs, out, shapes):
    g.node(_BINARY_OPS[layer.op], inputs, [out], name=layer.name)


CONVERTERS = {
    _core.Dense: _dense,
    _core.Activation: _activation,
    _core.Identity: _identity,
    # what acts only in training is the identity in the exported (inference) graph
    **{cls: _identity for cls in (_core.Dropout, _core.SpatialDropout1D, _core.SpatialDropout2D,
                                  _core.SpatialDropout3D, _reg.GaussianNoise, _reg.GaussianDropout,
                                  _reg.AlphaDropout, _reg.ActivityRegularization)},
    _core.Flatten: _flatten,
    _core.Reshape: _reshape,
    _core.Embedding: _embedding,
    _einsum.EinsumDense: _einsum_dense,
    _act.PReLU: _prelu,
    _act.ReLU: _relu_layer,
    _act.LeakyReLU: _leaky_relu_layer,
    _act.ELU: _elu_layer,
    _act.Softmax: _softmax_layer,
    _reshaping.Permute: _permute,
    _reshaping.RepeatVector: _repeat_vector,
    _prep.Rescaling: _rescaling,
    _conv.Conv1D: _convolution,
    _conv.Conv2D: _convolution,
    _conv.Conv3D: _convolution,
    _convt.Conv1DTranspose: _conv_transpose,
    _convt.Conv2DTranspose: _conv_transpose,
    _convt.Conv3DTranspose: _conv_transpose,
    _dw.DepthwiseConv1D: _depthwise_conv,
    _dw.DepthwiseConv2D: _depthwise_conv,
    _dw.SeparableConv1D: _separable_conv,
    _dw.SeparableConv2D: _separable_conv,
    **{cls: _pooling("MaxPool") for cls in (_pool.MaxPooling1D, _pool.MaxPooling2D, _pool.MaxPooling3D)},
    # dlgpu averages over real entries only
    **{cls: _pooling("AveragePool", count_include_pad=0)
       for cls in (_pool.AveragePooling1D, _pool.AveragePooling2D, _pool.AveragePooling3D)},
    **{cls: _global_pooling("ReduceMean")
       for cls in (_pool.GlobalAveragePooling1D, _pool.GlobalAveragePooling2D, _pool.GlobalAveragePooling3D)},
    **{cls: _global_pooling("ReduceMax")
       for cls in (_pool.GlobalMaxPooling1D, _pool.GlobalMaxPooling2D, _pool.GlobalMaxPooling3D)},
    **{cls: _zero_padding for cls in (_reshaping.ZeroPadding1D, _reshaping.ZeroPadding2D, _reshaping.ZeroPadding3D)},
    **{cls: _cropping for cls in (_reshaping.Cropping1D, _reshaping.Cropping2D, _reshaping.Cropping3D)},
    **{cls: _upsampling for cls in (_reshaping.UpSampling1D, _reshaping.UpSampling2D, _reshaping.UpSampling3D)},
    _norm.BatchNormalization: _batch_norm,
    _norm.LayerNormalization: _layer_norm,
    _norm.GroupNormalization: _group_norm,
    _norm.UnitNormalization: _unit_norm,
    _norm.RMSNormalization: _rms_norm,
    _merge.Add: _merge_op("Sum", variadic=True),
    _merge.Subtract: _merge_op("Sub", variadic=False),
    _merge.Multiply: _merge_op("Mul", variadic=False),
    _merge.Average: _merge_op("Mean", variadic=True),
    _merge.Maximum: _merge_op("Max", variadic=True),
    _merge.Minimum: _merge_op("Min", variadic=True),
    _merge.Concatenate: _concatenate,
    _merge.Dot: _dot,
    _rec.SimpleRNN: _recurrent,
    _rec.LSTM: _recurrent,
    _rec.GRU: _recurrent,
    _rec.Bidirectional: _bidirectional,
    _op_node_module.OpLayer: _op_node,
}
# converters that take a list of output names when a layer returns several tensors
_MULTIPLE_OUTPUTS = {_recurrent, _bidirectional}


# -- the model graph -------------------------------------------------------------------------------

def _graph_of(model):
    """(input KerasTensors, output KerasTensors, nodes in topological order), or ExportError saying why not."""
    name = getattr(model, "name", type(model).__name__)
    inputs, outputs = list(getattr(model, "inputs", None) or []), list(getattr(model, "outputs", None) or [])
    if not getattr(model, "built", False) or not inputs or not outputs:
        from dlgpu.models import Sequential
        if isinstance(model, Sequential):
            raise ExportError(f"ONNX export: model '{name}' is not built yet, so its input shape is unknown. Give the "
                              f"first layer an input (keras.Input(shape=...) or input_shape=...), call "
                              f"model.build((None, ...)), or call the model on data first.")
        raise ExportError(f"ONNX export: model '{name}' has no layer graph to export: a subclassed model's call() "
                          f"is Python code. Build it as a Sequential or functional Model(inputs, outputs).")
    order = _base.ordered_nodes(outputs)
    return inputs, outputs, order


def _check_supported(nodes):
    for node in nodes:
        layer = node.layer
        if isinstance(layer, _op_node_module.OpLayer):
            problem = _op_node_problem(layer)
            if problem is not None:
                raise ExportError(f"ONNX export: op node '{layer.name}': {problem}; do this in a layer "
                                  f"(keras.layers.Add, Multiply ...) to export the model.")
            continue
        if isinstance(layer, _base.InputLayer) or type(layer) in CONVERTERS:
            continue
        supported = sorted(cls.__name__ for cls in CONVERTERS)
        from dlgpu.models import Model
        hint = (" Nested models are not inlined: build one functional model from the inner layers."
                if isinstance(layer, Model) else "")
        raise ExportError(f"ONNX export: layer '{layer.name}' ({type(layer).__name__}) has no ONNX converter.{hint} "
                          f"Supported layers: {', '.join(supported)}.")


def to_onnx_model(model, opset=OPSET):
    """The ``onnx.ModelProto`` of a built Sequential or functional model, checked by onnx.checker."""
    onnx = _require_onnx()
    helper = onnx.helper
    inputs, outputs, nodes = _graph_of(model)
    _check_supported(nodes)  # before any work, so the error names the first layer we cannot convert
    g = _Graph(onnx)
    names = {}  # id(KerasTensor) -> ONNX value name

    def value_info(kt, name):
        dims = ["batch" if s is None and i == 0 else (f"{name}_dim{i}" if s is None else int(s))
                for i, s in enumerate(kt.shape)]
        return helper.make_tensor_value_info(name, helper.np_dtype_to_tensor_dtype(np.dtype(kt.dtype)), dims)

    graph_inputs = []
    for kt in inputs:
        names[id(kt)] = g.fresh(kt._history[0].name)
        graph_inputs.append(value_info(kt, names[id(kt)]))
    output_ids = {id(kt) for kt in outputs}
    for node in nodes:
        layer = node.layer
        if isinstance(layer, _base.InputLayer):
            continue
        in_names = [names[id(kt)] for kt in node.parent_tensors]
        shapes = [kt.shape for kt in node.parent_tensors]
        outs = _base.flatten(node.outputs)
        converter = CONVERTERS[type(layer)]
        if layer.quantization_mode is not None:
            raise ExportError(f"ONNX export: layer '{layer.name}' ({type(layer).__name__}) is quantized "
                              f"({layer.dtype_policy.name}); the exporter writes float layers only.")
        if len(outs) != 1 and converter not in _MULTIPLE_OUTPUTS:
            raise ExportError(f"ONNX export: layer '{layer.name}' returns {len(outs)} tensors; only single-output "
                              f"layers are supported.")
        for kt in outs:
            names[id(kt)] = g.fresh(layer.name if id(kt) in output_ids else f"{layer.name}/output")
        out_names = [names[id(kt)] for kt in outs]
        converter(g, layer, in_names, out_names if len(outs) > 1 else out_names[0], shapes)

    graph_outputs, seen = [], set()
    for kt in outputs:
        name = names[id(kt)]
        if name in seen or any(name == vi.name for vi in graph_inputs):  # one value listed twice: give it a copy
            name = g.node("Identity", [name], [g.fresh(f"{name}_copy")], name=f"{name}/copy")
        seen.add(name)
        graph_outputs.append(value_info(kt, name))

    graph = helper.make_graph(g.nodes, model.name, graph_inputs, graph_outputs, initializer=g.initializers)
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)],
                              producer_name="dlgpu", producer_version=_version())
    proto.ir_version = IR_VERSION
    onnx.checker.check_model(proto, full_check=True)
    return proto


def _version():
    import dlgpu
    return dlgpu.__version__


def export(model, filepath, opset=OPSET):
    """Write ``model`` as an ONNX file at ``filepath``; returns the path.  Nothing is left behind on failure."""
    path = os.fspath(filepath)
    proto = to_onnx_model(model, opset=opset)  # every refusal happens here, before the file system is touched
    data = proto.SerializeToString()
    from dlgpu.models.saving import _atomic_write
    what = f"ONNX export of model '{model.name}' could not write {path!r}"
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise FileNotFoundError(errno.ENOENT, f"{what}: the directory {directory!r} does not exist")
    try:
        _atomic_write(path, lambda handle: handle.write(data))
    except OSError as exc:
        # OSError(errno, message) comes back as the matching subclass (PermissionError, IsADirectoryError…).
        raise OSError(exc.errno, f"{what}: {exc.strerror or exc}") from exc
    return path
