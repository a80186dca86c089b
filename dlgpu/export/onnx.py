"""Export a built Sequential or functional model to ONNX (opset 17), for onnxruntime and friends.

    model.export("m.onnx")                    # or dlgpu.export.onnx.export(model, "m.onnx")

One converter per layer class, in ``CONVERTERS``; each turns one layer call into a few ONNX nodes.  The
lookup is by exact class, so a subclass of Dense with its own ``call`` is refused rather than exported as
a plain Dense.

Layout: the exported graph keeps Keras's NHWC everywhere, so its inputs and outputs are the arrays
``model.predict`` takes and returns.  ONNX's Conv and pooling ops only read NCHW, so each of them is
wrapped in Transpose(NHWC->NCHW) ... Transpose(NCHW->NHWC).  Everything else (Flatten, Reshape,
Concatenate's axis, BatchNormalization's axis, Dense on 4-d inputs) then needs no layout logic at all,
and Flatten flattens in NHWC order exactly as Keras does.  The back-to-back pairs between two convolutions
cost little: onnxruntime's transpose optimizer cancels them when it loads the model.

Inference only: Dropout is an Identity, BatchNormalization uses its moving statistics (folded into one
multiply and one add).  The file is written to a temporary file and renamed, so a failed export leaves
nothing behind; every check (built model, supported layers, onnx.checker) runs before the file is opened.
"""

from __future__ import annotations

import errno
import os

import numpy as np

from dlgpu import activations
from dlgpu.layers import base as _base
from dlgpu.layers import conv as _conv
from dlgpu.layers import core as _core
from dlgpu.layers import merge as _merge
from dlgpu.layers import normalization as _norm
from dlgpu.layers import pooling as _pool

OPSET = 17
IR_VERSION = 8  # the IR version that goes with opset 17; newer IR versions are refused by older runtimes
_TO_NCHW, _TO_NHWC = [0, 3, 1, 2], [0, 2, 3, 1]


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


def _nchw(g, layer, x):
    return g.node("Transpose", [x], perm=_TO_NCHW, name=f"{layer.name}/to_nchw")


def _window_attrs(layer, shape, window, dilation=(1, 1)):
    """kernel/strides and explicit pads from the same rule the ops use (TensorFlow's 'same': extra at the end)."""
    attrs = {"kernel_shape": list(window), "strides": list(layer.strides)}
    if dilation != (1, 1):
        attrs["dilations"] = list(dilation)
    if layer.padding == "same":
        if shape[1] is None or shape[2] is None:
            if dilation != (1, 1):
                raise ExportError(f"ONNX export: layer '{layer.name}' ({type(layer).__name__}) is dilated with "
                                  f"padding='same' on an input of unknown height or width {tuple(shape)}; "
                                  f"onnxruntime computes no 'same' padding for dilated windows. Give the model's "
                                  f"Input a fixed spatial size.")
            attrs["auto_pad"] = "SAME_UPPER"  # unknown spatial size: ONNX's rule is the same one
        else:
            from dlgpu.ops.conv import spatial_pads
            (top, bottom), (left, right) = spatial_pads("same", shape[1:3], window, layer.strides, dilation)
            attrs["pads"] = [top, left, bottom, right]
    return attrs


def _conv2d(g, layer, inputs, out, shapes):
    kernel_hwio = _weight(layer.kernel)
    conv_inputs = [_nchw(g, layer, inputs[0]), g.const(f"{layer.name}/kernel", kernel_hwio.transpose(3, 2, 0, 1))]
    if layer.use_bias:
        conv_inputs.append(g.const(f"{layer.name}/bias", _weight(layer.bias)))
    attrs = _window_attrs(layer, shapes[0], layer.kernel_size, layer.dilation_rate)
    if layer.groups != 1:
        attrs["group"] = layer.groups  # ONNX's (Cout, Cin/group, kh, kw) kernel is Keras's, transposed
    y = g.node("Conv", conv_inputs, name=f"{layer.name}/conv", **attrs)
    y = g.node("Transpose", [y], perm=_TO_NHWC, name=f"{layer.name}/to_nhwc")
    _emit_activation(g, layer, layer.activation, y, out)


def _pooling(op_type, **extra):
    def convert(g, layer, inputs, out, shapes):
        y = g.node(op_type, [_nchw(g, layer, inputs[0])], name=f"{layer.name}/pool",
                   **_window_attrs(layer, shapes[0], layer.pool_size), **extra)
        g.node("Transpose", [y], [out], perm=_TO_NHWC, name=f"{layer.name}/to_nhwc")
    return convert


def _global_pooling(op_type):
    def convert(g, layer, inputs, out, shapes):
        g.node(op_type, inputs, [out], axes=[1, 2], keepdims=int(bool(layer.keepdims)), name=layer.name)
    return convert


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


def _layer_norm(g, layer, inputs, out, shapes):
    rank = len(shapes[0])
    axes = sorted(a % rank for a in ([layer.axis] if isinstance(layer.axis, int) else layer.axis))
    size = tuple(shapes[0][a] for a in axes)
    gamma = _weight(layer.gamma) if layer.gamma is not None else np.ones(size, np.float32)
    beta = _weight(layer.beta) if layer.beta is not None else np.zeros(size, np.float32)
    # ONNX normalizes over every axis from `axis` to the last, so only trailing axes map onto it
    if axes != list(range(axes[0], rank)) or getattr(layer, "rms_scaling", False):
        raise ExportError(f"ONNX export: layer '{layer.name}' (LayerNormalization) normalizes axes {layer.axis}"
                          f"{' with rms_scaling' if getattr(layer, 'rms_scaling', False) else ''}; only the "
                          f"last axes, without rms_scaling, are supported.")
    g.node("LayerNormalization", [inputs[0], g.const(f"{layer.name}/gamma", gamma), g.const(f"{layer.name}/beta", beta)],
           [out], axis=axes[0] - rank, epsilon=layer.epsilon, name=layer.name)


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


CONVERTERS = {
    _core.Dense: _dense,
    _core.Activation: _activation,
    _core.Dropout: _identity,
    _core.Flatten: _flatten,
    _core.Reshape: _reshape,
    _conv.Conv2D: _conv2d,
    _pool.MaxPooling2D: _pooling("MaxPool"),
    _pool.AveragePooling2D: _pooling("AveragePool", count_include_pad=0),  # dlgpu averages over real pixels only
    _pool.GlobalAveragePooling2D: _global_pooling("ReduceMean"),
    _pool.GlobalMaxPooling2D: _global_pooling("ReduceMax"),
    _norm.BatchNormalization: _batch_norm,
    _norm.LayerNormalization: _layer_norm,
    _merge.Add: _merge_op("Sum", variadic=True),
    _merge.Subtract: _merge_op("Sub", variadic=False),
    _merge.Multiply: _merge_op("Mul", variadic=False),
    _merge.Average: _merge_op("Mean", variadic=True),
    _merge.Maximum: _merge_op("Max", variadic=True),
    _merge.Minimum: _merge_op("Min", variadic=True),
    _merge.Concatenate: _concatenate,
}


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
        if len(outs) != 1:
            raise ExportError(f"ONNX export: layer '{layer.name}' returns {len(outs)} tensors; only single-output "
                              f"layers are supported.")
        kt = outs[0]
        names[id(kt)] = g.fresh(layer.name if id(kt) in output_ids else f"{layer.name}/output")
        CONVERTERS[type(layer)](g, layer, in_names, names[id(kt)], shapes)

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
