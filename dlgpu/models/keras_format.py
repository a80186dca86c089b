"""Keras 3's native ``.keras`` files, read and written: a zip of metadata.json, config.json (Keras's
serialization: layers with ``module``/``class_name``/``config``, functional nodes whose arguments are
``__keras_tensor__`` dicts, dtype policies as objects) and model.weights.h5, whose groups follow Keras's
saving walk (keras/src/saving/saving_lib.py): ``layers/<snake_case class name>[_n]/vars/<i>`` for a model's
layers in order, a layer's sublayers under their attribute names (``cell``, ``forward_layer``,
``query_dense`` …), and ``optimizer/vars/<i>`` for the optimizer's variables.

dlgpu layers already have Keras's get_config keys, so the translation is small: dtype policies become their
names, ``__keras_tensor__`` arguments become ``[layer, node, tensor]`` references and back, and the weights
are laid out by walking the model as Keras does.  Only families whose variable layout is known here are
written or read (see ``_keras_groups``); anything else is refused by name.  Ops called in a functional
graph are Keras Operation entries (``keras.src.ops.numpy.Pad``), translated through keras_ops_table.py.  h5py (``pip install
'dlgpu[applications]'``) reads and writes the weights.
"""

from __future__ import annotations

import io
import json
import os
import time
import warnings
import zipfile

import numpy as np

from dlgpu.models.keras_ops_table import KERAS_OPS
from dlgpu.naming import to_snake_case, unique_in
from dlgpu.models.saving import (SavedModelError, _atomic_write, _read_json, _version, _with_scope)

_CONFIG, _METADATA, _WEIGHTS = "config.json", "metadata.json", "model.weights.h5"
# The Keras release whose format this writes (metadata.json's keras_version; Keras reads it for legacy checks).
KERAS_VERSION = "3.15.1"
# The optimizer state of an optimizer whose Keras variable layout is not mapped here: dlgpu's own order, in
# a group Keras never reads (so it cannot load it into the wrong slots), for dlgpu to resume from.
_DLGPU_OPTIMIZER = "dlgpu_optimizer"
_HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"

# Per optimizer class: its slot lists in Keras's variable order.  Keras's add_optimizer_variables(vars,
# [a, b]) interleaves a and b per variable; separate calls come one after another.
_OPTIMIZER_LAYOUT = {
    "SGD": [("momentums",)],
    "Adam": [("_momentums", "_velocities"), ("_velocity_hats",)],
    "AdamW": [("_momentums", "_velocities"), ("_velocity_hats",)],
    "RMSprop": [("_velocities",), ("_momentums",), ("_average_gradients",)],
    "Adagrad": [("_accumulators",)],
    "Adamax": [("_m", "_u")],
}
# (Keras module, Operation class) -> dlgpu op; where two names write one class (abs and absolute: Absolute),
# the first in alphabetical order reads it back
_KERAS_OPERATIONS = {}
for _op, (_module, _class, _, _) in sorted(KERAS_OPS.items(), reverse=True):
    _KERAS_OPERATIONS[(_module, _class)] = _op
_RNN = ("SimpleRNN", "LSTM", "GRU")
_MODELS = ("Model", "Functional", "Sequential")
# Keras exports a few classes under another name, which its configs use (the weights walk uses the class's).
_KERAS_EXPORT_NAMES = {"GroupedQueryAttention": "GroupQueryAttention"}
# Attention layers: Keras keeps their four projections in EinsumDense sublayers (MultiHeadAttention's
# ``query_dense``..., GroupedQueryAttention's ``_query_dense``...), in dlgpu's weight order.
_ATTENTION = {"MultiHeadAttention": "", "GroupedQueryAttention": "_", "GroupQueryAttention": "_"}
# Layers whose variables Keras keeps in a cell: the layer's own group is empty, ``cell/vars`` holds them.
_CELLS = _RNN + ("ConvLSTM1D", "ConvLSTM2D", "ConvLSTM3D")


def _h5py():
    try:
        import h5py
    except ImportError:
        raise ImportError("Keras's .keras and .weights.h5 files keep their weights in HDF5, which needs h5py: "
                          "pip install 'dlgpu[applications]' (or h5py).") from None
    return h5py


def is_keras_path(filepath):
    return os.fspath(filepath).endswith(".keras")


def is_keras_weights_path(filepath):
    return os.fspath(filepath).endswith(".weights.h5")


def is_hdf5(filepath):
    try:
        with open(filepath, "rb") as handle:
            return handle.read(8) == _HDF5_SIGNATURE
    except OSError:
        return False


def _keras_class_name(layer):
    from dlgpu.models.model import Model
    from dlgpu.models.sequential import Sequential
    if isinstance(layer, Sequential):
        return "Sequential"
    if type(layer) is Model:
        return "Functional"
    return type(layer).__name__


# -- the weights walk ---------------------------------------------------------------------------------------
def _keras_groups(layer, path, out, seen):
    """Append (h5 group path, layer name, [variables]) for ``layer`` and everything inside it, as Keras's
    _save_state walks it; refuses layers whose Keras layout is not known here."""
    from dlgpu.models.model import Model
    if id(layer) in seen:
        return
    seen.add(id(layer))
    cls = _keras_class_name(layer)
    prefix = f"{path}/" if path else ""
    if isinstance(layer, Model):
        if not hasattr(layer, "_nodes") and cls != "Sequential":  # a subclassed model
            _attribute_groups(layer, prefix, out, seen)
            return
        out.append((f"{prefix}vars", layer.name, []))
        for name, sub in _numbered(layer.layers):
            _keras_groups(sub, f"{prefix}layers/{name}", out, seen)
        return
    if not layer.weights and not _overrides_saving(layer):
        out.append((f"{prefix}vars", layer.name, []))  # nothing to map, whatever sublayers it keeps
        return
    if cls == "SpectralNormalization":  # Keras tracks the wrapped kernel a second time, beside vector_u
        out.append((f"{prefix}vars", layer.name, [layer.kernel, layer.vector_u]))
        _keras_groups(layer.layer, f"{prefix}layer", out, seen)
        return
    if layer._layers and cls not in _SUBLAYERS and _user_class(layer) and not _overrides_saving(layer):
        _attribute_groups(layer, prefix, out, seen)
        return
    if (layer._layers and cls not in _SUBLAYERS) or _overrides_saving(layer):
        raise NotImplementedError(f"Keras's .keras format: layer '{layer.name}' ({cls}) keeps its variables in a "
                                  f"layout dlgpu does not map to Keras's; save it with dlgpu's own format "
                                  f"(a .dlgpu file) instead.")
    # a quantized layer's file order is Keras's variable_serialization_spec (kernel, bias, kernel_scale)
    weights = layer._own_variables() if layer.quantization_mode is not None else list(layer.weights)
    out.append((f"{prefix}vars", layer.name, [] if cls in _CELLS or cls in _SUBLAYERS or cls in _ATTENTION
                else weights))
    if cls in _CELLS:
        out.append((f"{prefix}cell/vars", f"{to_snake_case(cls)}_cell", weights))
    elif cls in _SUBLAYERS:
        for name, sub in _SUBLAYERS[cls](layer):
            _keras_groups(sub, f"{prefix}{name}", out, seen)
    elif cls in _ATTENTION:
        per = len(weights) // 4
        for k, name in enumerate(("query", "key", "value", "output")):
            out.append((f"{prefix}{_ATTENTION[cls]}{name}_dense/vars",
                        name if name != "output" else "attention_output", weights[k * per:(k + 1) * per]))


def _user_class(layer):
    return not type(layer).__module__.startswith("dlgpu.")


def _attribute_groups(layer, prefix, out, seen):
    """A subclassed model's or a user layer's groups, as Keras's _walk_saveable finds them: its own
    variables, then each attribute holding a layer (or a list, tuple or dict of layers) under the
    attribute's name, attributes sorted by name with private ones last.  Layers in a container are named by
    their class in snake case (dense, dense_1, ...), nested containers "container", "container_1"..."""
    from dlgpu.layers.base import Layer
    out.append((f"{prefix}vars", layer.name, layer._own_variables()))
    framework = _framework_attributes(layer)
    names = sorted((n for n in vars(layer) if n not in framework and not n.startswith("__")),
                   key=lambda n: f"~{n}" if n.startswith("_") else n)

    def visit(value, path):
        if isinstance(value, Layer):
            _keras_groups(value, path, out, seen)
        elif isinstance(value, (list, tuple, dict)):
            used = {}
            for item in (value.values() if isinstance(value, dict) else value):
                if isinstance(item, Layer):
                    visit(item, f"{path}/{unique_in(to_snake_case(_keras_class_name(item)), used)}")
                elif isinstance(item, (list, tuple, dict)):
                    visit(item, f"{path}/{unique_in('container', used)}")
    for name in names:
        visit(vars(layer)[name], f"{prefix}{name}")


_FRAMEWORK_ATTRIBUTES = {}


def _framework_attributes(layer):
    """The attributes dlgpu itself sets on every layer or model (Keras skips its own likewise): those of a
    bare Layer/Model, and the training state compile and fit add."""
    from dlgpu.models.model import Model
    from dlgpu.layers.base import Layer
    kind = Model if isinstance(layer, Model) else Layer
    if kind not in _FRAMEWORK_ATTRIBUTES:
        # (named, so that no automatic name is used up)
        _FRAMEWORK_ATTRIBUTES[kind] = set(vars(kind(name="probe"))) | {"optimizer", "history"}
    return _FRAMEWORK_ATTRIBUTES[kind]


def _numbered(layers):
    """(name, layer) as Keras names a list of layers in the weights file: the snake-case class name, then
    ``_1``, ``_2`` ... for repeats."""
    used = {}
    for layer in layers:
        yield unique_in(to_snake_case(_keras_class_name(layer)), used), layer


# Wrappers: (attribute path, sublayer) as Keras's saving walk finds them.
_SUBLAYERS = {
    "TimeDistributed": lambda layer: [("layer", layer.layer)],
    "Bidirectional": lambda layer: [("forward_layer", layer.forward_layer), ("backward_layer", layer.backward_layer)],
    "RNN": lambda layer: [("cell", layer.cell)],
    "StackedRNNCells": lambda layer: [(f"cells/{name}", cell) for name, cell in _numbered(layer.cells)],
    "Pipeline": lambda layer: [(f"layers/{name}", sub) for name, sub in _numbered(layer.layers)],
}


def _overrides_saving(layer):
    from dlgpu.layers.base import Layer
    return any(getattr(type(layer), hook, None) is not getattr(Layer, hook, None)
               for hook in ("save_own_variables", "load_own_variables")) or callable(getattr(layer, "save_assets", None))


def _model_groups(model):
    out = []
    _keras_groups(model, "", out, set())
    return out


# -- optimizer ------------------------------------------------------------------------------------------------
def _keras_optimizer_variables(model, optimizer):
    """The optimizer's variables in Keras's order, or None when its layout is not mapped or it was built on
    other variables than the model's trainable weights (in their order)."""
    layout = _OPTIMIZER_LAYOUT.get(type(optimizer).__name__)
    if layout is None:
        return None
    trainable = model.trainable_weights
    if [id(v) for v in optimizer._trainable_variables] != [id(v) for v in trainable]:
        return None
    head = [optimizer._iterations] + ([optimizer._learning_rate] if optimizer._learning_rate is not None else [])
    slots = []
    for group in layout:
        lists = [getattr(optimizer, attr, None) or [] for attr in group]
        lists = [lst for lst in lists if lst]
        for i in range(len(trainable)):
            slots.extend(lst[i] for lst in lists)
    if len(head) + len(slots) != len(optimizer.variables):
        return None
    return head + slots


def _optimizer_entries(model):
    """(group, name, [arrays]) for the optimizer's state: Keras's layout where mapped, else dlgpu's order in
    a group Keras does not read."""
    optimizer = model.optimizer if getattr(model, "compiled", False) else None
    if optimizer is None:
        return []
    if not optimizer.built:
        head = [optimizer._iterations] + ([optimizer._learning_rate] if optimizer._learning_rate is not None else [])
        return [("optimizer/vars", optimizer.name, [v.numpy() for v in head])]
    variables = _keras_optimizer_variables(model, optimizer)
    if variables is not None:
        return [("optimizer/vars", optimizer.name, [v.numpy() for v in variables])]
    position = {id(v): i for i, v in enumerate(model.weights)}
    built_on = [position.get(id(v)) for v in optimizer._trainable_variables]
    if None in built_on:
        warnings.warn(f"Model '{model.name}' was saved without its optimizer's state: the optimizer also updates "
                      f"variables that are not the model's.", stacklevel=4)
        return []
    store = {}
    optimizer.save_own_variables(store)
    arrays = [np.asarray(store[str(i)]) for i in range(len(store))]
    return [(f"{_DLGPU_OPTIMIZER}/vars", optimizer.name, arrays),
            (f"{_DLGPU_OPTIMIZER}/built_on", None, [np.asarray(built_on, np.int64)])]


def _restore_optimizer(model, optimizer, h5, source):
    """Build ``optimizer`` on the model's trainable weights and load the file's state into it; a state that
    does not fit is skipped with a warning (training then starts a fresh optimizer state)."""
    try:
        if f"{_DLGPU_OPTIMIZER}/vars" in h5:
            group = h5[f"{_DLGPU_OPTIMIZER}/vars"]
            built_on = np.asarray(h5[f"{_DLGPU_OPTIMIZER}/built_on/vars/0"]).tolist()
            weights = model.weights
            if not all(isinstance(i, int) and 0 <= i < len(weights) for i in built_on):
                raise ValueError(f"it refers to model weights {built_on} but the model has {len(weights)}")
            optimizer.build([weights[i] for i in built_on])
            optimizer.load_own_variables({k: np.asarray(group[k]) for k in group})
            return True
        if "optimizer/vars" not in h5:
            return False
        group = h5["optimizer/vars"]
        arrays = [np.asarray(group[str(i)]) for i in range(len(group))]
        head_len = 1 + (optimizer._learning_rate is not None)
        if len(arrays) > head_len:
            optimizer.build(model.trainable_weights)
            variables = _keras_optimizer_variables(model, optimizer)
            if variables is None:
                raise ValueError(f"Keras's variable layout of {type(optimizer).__name__} is not mapped in dlgpu")
        else:
            variables = [optimizer._iterations] + ([optimizer._learning_rate] if head_len == 2 else [])
        if len(arrays) != len(variables):
            raise ValueError(f"the file holds {len(arrays)} optimizer variables, this optimizer has {len(variables)}")
        for var, array in zip(variables, arrays):
            if tuple(array.shape) != tuple(var.data.shape):
                raise ValueError(f"optimizer variable '{var.name}' has shape {tuple(var.data.shape)}, the file's "
                                 f"{tuple(array.shape)}")
        from dlgpu.backend.cpu import array_module
        for var, array in zip(variables, arrays):
            xp = array_module(var.data)
            var.data[...] = array if xp is np else xp.asarray(array)  # in place: packed slots stay views
    except (KeyError, ValueError, TypeError, AttributeError) as exc:
        warnings.warn(f"load_model: skipped the optimizer state in {source}, which does not fit optimizer "
                      f"'{optimizer.name}' on this model ({exc}); training starts from a fresh optimizer state.",
                      stacklevel=4)
        return False
    return True


# -- weights file ---------------------------------------------------------------------------------------------
def _write_h5(handle, groups, model_optimizer_entries):
    h5py = _h5py()
    with h5py.File(handle, "w") as h5:
        for path, name, variables in groups:
            group = h5.require_group(path)
            if name is not None:
                group.attrs["name"] = name
            for i, v in enumerate(variables):
                group.create_dataset(str(i), data=v.numpy() if hasattr(v, "numpy") else np.asarray(v))
        for path, name, arrays in model_optimizer_entries:
            group = h5.require_group(path if path.endswith("/vars") else f"{path}/vars")
            if name is not None:
                group.attrs["name"] = name
            for i, a in enumerate(arrays):
                group.create_dataset(str(i), data=a)


def _h5_bytes(model, with_optimizer=True):
    groups = _model_groups(model)
    buffer = io.BytesIO()
    _write_h5(buffer, groups, _optimizer_entries(model) if with_optimizer else [])
    return buffer.getvalue()


def _assign_from_h5(model, h5, source):
    """Put the file's weights into ``model`` (all checked before any is assigned)."""
    pairs = []
    for path, name, variables in _model_groups(model):
        if not variables:
            if path in h5 and len(h5[path]):
                raise SavedModelError(f"{source} holds {len(h5[path])} weights for layer '{name}' (group {path!r}), "
                                      f"which has none in this model (is it built?).")
            continue
        if path not in h5:
            raise SavedModelError(f"{source} holds no weights for layer '{name}' (group {path!r}); it was saved "
                                  f"from a different architecture.")
        group = h5[path]
        if len(group) != len(variables):
            raise SavedModelError(f"{source}: layer '{name}' has {len(variables)} weights but the file's group "
                                  f"{path!r} holds {len(group)}; it was saved from a different architecture.")
        for i, v in enumerate(variables):
            array = np.asarray(group[str(i)])
            if tuple(array.shape) != tuple(v.shape):
                raise SavedModelError(f"{source}: weight {path}/{i} has shape {tuple(array.shape)} but the model's "
                                      f"{v.path!r} has shape {tuple(v.shape)}.")
            pairs.append((v, array))
    from dlgpu.backend.device import to_device
    for v, array in pairs:
        v.assign(to_device(array.astype(v.data.dtype, copy=False), v.device))


# -- config: dlgpu -> Keras -----------------------------------------------------------------------------------
def _keras_model_config(model):
    from dlgpu.models import functional_config
    from dlgpu.saving import layer_entry
    _check_writable(model)
    with functional_config.keras_tensor_refs():
        entry = layer_entry(model)
    entry = _to_keras(entry)
    build = model.get_build_config() if hasattr(model, "get_build_config") else None
    if _keras_class_name(model) == "Functional":
        build = {"input_shape": None}
    entry["build_config"] = build
    entry["compile_config"] = _keras_compile_config(model)
    return entry


def _check_writable(model):
    from dlgpu.layers.op_node import OperationNode, OpLayer
    _model_groups(model)  # raises for subclassed models and unmapped layers
    for layer in _all_layers(model):
        if isinstance(layer, OpLayer) and layer.op not in KERAS_OPS:
            what = f"the Operation {layer.summary_type}" if isinstance(layer, OperationNode) else f"ops.{layer.op}"
            raise NotImplementedError(f"Keras's .keras format: model '{model.name}' calls {what} "
                                      f"('{layer.name}'), which Keras has no Operation class for; dlgpu writes it "
                                      f"only in its own format (a .dlgpu file).")


def _all_layers(model):
    out, stack = [], [model]
    while stack:
        layer = stack.pop()
        out.append(layer)
        stack.extend(layer._layers)
    return out


def _to_keras(obj):
    """dlgpu's config tree with Keras's names for models (module "keras", class Functional)."""
    if isinstance(obj, list):
        return [_to_keras(o) for o in obj]
    if not isinstance(obj, dict):
        return obj
    out = {k: _to_keras(v) for k, v in obj.items()}
    if out.get("class_name") in _KERAS_EXPORT_NAMES and str(out.get("module", "")).startswith("keras"):
        out["class_name"] = _KERAS_EXPORT_NAMES[out["class_name"]]
    if out.get("class_name") in _ATTENTION and str(out.get("module", "")).startswith("keras"):
        _mha_to_keras(out)
    if out.get("class_name") in _MODELS and str(out.get("module", "")).startswith("keras"):
        if out["class_name"] == "Sequential":
            out.update(module="keras", registered_name=None)
        else:
            out.update(module="keras.src.models.functional", class_name="Functional", registered_name="Functional")
    return out


def _mha_to_keras(entry):
    """dlgpu calls MultiHeadAttention with one dict of inputs; Keras with (query, value, key=...), and builds it
    from ``shapes_dict``."""
    shapes = (entry.get("build_config") or {}).get("input_shape")
    if isinstance(shapes, dict):
        entry["build_config"] = {"shapes_dict": {f"{k}_shape": v for k, v in shapes.items() if v is not None}}
    nodes = []
    for node in entry.get("inbound_nodes", []):
        args = node.get("args")
        if len(args) == 1 and isinstance(args[0], dict) and "query" in args[0]:
            inputs = dict(args[0])
            node = {"args": [inputs.pop("query"), inputs.pop("value")],
                    "kwargs": {**{k: v for k, v in inputs.items() if v is not None}, **node.get("kwargs", {})}}
        nodes.append(node)
    if "inbound_nodes" in entry:
        entry["inbound_nodes"] = nodes


def _keras_compile_config(model):
    from dlgpu.models.saving import _saved_compile_config
    config = _saved_compile_config(model)
    if not config:
        return {}
    config = _to_keras(config)
    if _overrides_compile_config(model):  # the class's own get_compile_config, written as it is (as Keras)
        return config
    if isinstance(config.get("optimizer"), dict):
        config["optimizer"] = {**config["optimizer"], "module": "keras.optimizers",
                               "registered_name": config["optimizer"].get("registered_name")}
    config.setdefault("weighted_metrics", None)
    return {**config, "run_eagerly": False, "steps_per_execution": 1, "jit_compile": False}


def save_keras_model(model, filepath):
    """Write ``model`` (built, and accepted by keras_format_refusal) as a Keras .keras file; saving.save_model
    checks the path and the model first."""
    filepath = os.fspath(filepath)
    config = _keras_model_config(model)
    metadata = {"keras_version": KERAS_VERSION, "date_saved": time.strftime("%Y-%m-%d@%H:%M:%S"),
                "dlgpu_version": _version()}
    weights = _h5_bytes(model)

    def write(handle):
        with zipfile.ZipFile(handle, "w") as archive:
            archive.writestr(_METADATA, json.dumps(metadata))
            archive.writestr(_CONFIG, json.dumps(config))
            archive.writestr(_WEIGHTS, weights)
    _atomic_write(filepath, write)


def keras_format_refusal(model):
    """Why ``model`` cannot be written in Keras's format (a message), or None when it can."""
    try:
        _keras_model_config(model)  # also converts each op node's arguments, which can fail
    except NotImplementedError as exc:
        return str(exc)
    return None


# -- ops in a functional graph ----------------------------------------------------------------------------
def _signature(op):
    import inspect

    from dlgpu.ops import symbolic
    return inspect.signature(symbolic.RAW_OPS[op])


def _static(value, op, argument):
    """An op's constructor argument as Keras's config holds it: JSON, tuples as lists."""
    if isinstance(value, list):
        return [_static(v, op, argument) for v in value]
    if isinstance(value, dict):
        kind = value.get("class_name")
        if kind in ("__tuple__", "__list__"):
            return _static(value["config"]["value"], op, argument)
        if kind == "__dtype__":
            return value["config"]["value"]
        raise NotImplementedError(f"Keras's .keras format: ops.{op}'s argument {argument!r} is a "
                                  f"{kind or 'dict'}, which Keras's {KERAS_OPS[op][1]} cannot take in its config; "
                                  f"dlgpu writes it only in its own format (a .dlgpu file).")
    return value


def _keras_argument(value, op, argument):
    """A call argument in Keras's JSON: Keras reads slices, ellipses and numpy arrays as dlgpu writes them,
    but has no tuple (it writes them as lists)."""
    if isinstance(value, list):
        return [_keras_argument(v, op, argument) for v in value]
    if not isinstance(value, dict) or value.get("class_name") == "__keras_tensor__":
        return value
    kind, config = value.get("class_name"), value.get("config") or {}
    if kind in ("__tuple__", "__list__"):
        return _keras_argument(config["value"], op, argument)
    if kind == "__dtype__":
        return config["value"]
    if kind == "__tensor__":
        return {"class_name": "__numpy__", "config": config}
    if kind == "__slice__":
        return {"class_name": kind, "config": {k: _keras_argument(v, op, argument) for k, v in config.items()}}
    if kind in ("__ellipsis__", "__numpy__"):
        return value
    if kind == "__dict__":
        value = config["value"]
    elif kind is not None:
        raise NotImplementedError(f"Keras's .keras format: ops.{op}'s argument {argument!r} is a {kind}, which "
                                  f"Keras cannot read; dlgpu writes it only in its own format (a .dlgpu file).")
    return {k: _keras_argument(v, op, argument) for k, v in value.items()}


def keras_op_entry(layer, nodes, ref):
    """An op node as Keras writes it: the Operation's class, its constructor arguments in ``config`` and
    the call's arguments in the node (which arguments go where: dlgpu/models/keras_ops_table.py)."""
    module, class_name, call, init = KERAS_OPS[layer.op]
    inbound, config = [], {"name": layer.name}
    for node in nodes:
        args, kwargs = layer.encode_arguments(node, ref)
        # bound by dlgpu's signature, KerasTensor references being placeholders like any value
        values = dict(_signature(layer.op).bind(*args, **kwargs).arguments)
        for keras_name, dlgpu_name, _ in init:
            if dlgpu_name in values:
                config[keras_name] = _static(values.pop(dlgpu_name), layer.op, dlgpu_name)
        positional, call_args, call_kwargs = True, [], {}
        for keras_name, dlgpu_name in call:
            if keras_name.startswith("*"):
                call_args.extend(_keras_argument(v, layer.op, dlgpu_name) for v in values.pop(dlgpu_name[1:], ()))
            elif dlgpu_name in values:
                value = _keras_argument(values.pop(dlgpu_name), layer.op, dlgpu_name)
                if positional:
                    call_args.append(value)
                else:
                    call_kwargs[keras_name] = value
            else:
                positional = False
        if values:
            raise NotImplementedError(f"Keras's .keras format: ops.{layer.op} ('{layer.name}') is called with "
                                      f"{sorted(values)}, which Keras's {class_name} has no argument for; dlgpu "
                                      f"writes it only in its own format (a .dlgpu file).")
        inbound.append({"args": call_args, "kwargs": call_kwargs})
    return {"module": module, "class_name": class_name, "config": config, "registered_name": class_name,
            "name": layer.name, "inbound_nodes": inbound}


def _keras_operation(entry):
    """The dlgpu op for a Keras Operation entry (``keras.src.ops.numpy.Pad``), or None."""
    return _KERAS_OPERATIONS.get((entry.get("module"), entry.get("class_name")))


def _op_from_keras(entry, op):
    """A Keras Operation entry as dlgpu's OpLayer entry: the constructor's arguments join the call's."""
    _, class_name, call, init = KERAS_OPS[op]
    config = dict(entry.get("config") or {})
    name = config.pop("name", entry.get("name"))
    static = {}
    for keras_name, dlgpu_name, default in init:
        if keras_name not in config:
            continue
        value = _from_keras(config.pop(keras_name))
        if dlgpu_name is not None:
            static[dlgpu_name] = value
        elif value != default:
            raise NotImplementedError(f"Keras's {class_name} '{name}' has {keras_name}={value!r}; dlgpu's "
                                      f"ops.{op} has no such argument (only Keras's default {default!r} reads).")
    if config:
        raise NotImplementedError(f"Keras's {class_name} '{name}' has arguments {sorted(config)} that dlgpu's "
                                  f"ops.{op} does not know.")
    renamed = {k: d for k, d in call}
    parameters = _signature(op).parameters
    nodes = []
    for node in entry.get("inbound_nodes") or []:
        values, extra = {}, []
        args = _from_keras(list(node.get("args") or []))
        for (keras_name, dlgpu_name), value in zip(call, args):
            if keras_name.startswith("*"):
                break
            values[dlgpu_name] = value
        if call and call[-1][0].startswith("*"):
            extra = args[len(call) - 1:]
        for keras_name, value in (node.get("kwargs") or {}).items():
            values[renamed.get(keras_name, keras_name)] = _from_keras(value)
        values.update(static)
        if op == "get_item" and isinstance(values.get("index"), list):
            # Keras's JSON writes x[a, b]'s index tuple as a list, which numpy would read as fancy indexing
            values["index"] = {"class_name": "__tuple__", "config": {"value": values["index"]}}
        # dlgpu's call: positional in signature order while nothing is skipped, then keywords
        ordered, kwargs, positional = [], {}, True
        for parameter in parameters.values():
            if parameter.kind == parameter.VAR_POSITIONAL:
                ordered.extend(extra)
            elif parameter.name in values:
                if positional and parameter.kind == parameter.POSITIONAL_OR_KEYWORD:
                    ordered.append(values.pop(parameter.name))
                else:
                    kwargs[parameter.name] = values.pop(parameter.name)
            else:
                positional = False
        if values:
            raise NotImplementedError(f"Keras's {class_name} '{name}' is called with {sorted(values)}, which "
                                      f"dlgpu's ops.{op} has no argument for.")
        nodes.append({"args": ordered, "kwargs": kwargs})
    return {"module": "dlgpu.ops", "class_name": "OpLayer", "config": {"name": name, "op": op},
            "registered_name": None, "name": entry.get("name", name), "inbound_nodes": nodes}


def save_keras_weights(model, filepath):
    """Write the weights in Keras's .weights.h5 layout; saving.save_weights checks the path first."""
    filepath = os.fspath(filepath)
    data = _h5_bytes(model)
    _atomic_write(filepath, lambda handle: handle.write(data))


def load_keras_archive_weights(model, filepath, archive, names):
    if _WEIGHTS not in names:
        raise SavedModelError(f"{os.fspath(filepath)!r}: Keras archive without {_WEIGHTS}.")
    _load_h5_weights(model, io.BytesIO(archive.read(_WEIGHTS)), repr(os.fspath(filepath)))


def load_keras_weights(model, filepath):
    _load_h5_weights(model, os.fspath(filepath), repr(os.fspath(filepath)))


def _load_h5_weights(model, file, source):
    """Keras's load_weights: the model's weights and, when it is compiled, the optimizer's state."""
    if not model.built:
        raise ValueError(f"Model '{model.name}' is not built, so its weights cannot be loaded yet; call it on data "
                         f"or build(input_shape) first.")
    h5py = _h5py()
    try:
        h5 = h5py.File(file, "r")
    except OSError as exc:
        raise SavedModelError(f"{source} is not a readable HDF5 weights file: {exc}") from None
    with h5:
        _assign_from_h5(model, h5, source)
        optimizer = model.optimizer if getattr(model, "compiled", False) else None
        if optimizer is not None and ("optimizer/vars" in h5 or f"{_DLGPU_OPTIMIZER}/vars" in h5):
            _restore_optimizer(model, optimizer, h5, source)


# -- config: Keras -> dlgpu -----------------------------------------------------------------------------------
def _from_keras(obj, where="config"):
    """Keras's config tree in dlgpu's terms: dtype policies as names, tensors as [layer, node, tensor]."""
    if isinstance(obj, list):
        return [_from_keras(o, where) for o in obj]
    if not isinstance(obj, dict):
        return obj
    class_name = obj.get("class_name")
    if class_name == "__keras_tensor__":
        return list(obj["config"]["keras_history"])
    op = _keras_operation(obj)
    if op is not None:
        return _op_from_keras(obj, op)
    if class_name in ("DTypePolicy", "FloatDTypePolicy") and isinstance(obj.get("config"), dict):
        return obj["config"].get("name")
    out = {}
    for key, value in obj.items():
        if key == "shared_object_id":
            continue
        out[key] = _from_keras(value, where)
    if class_name == "InputLayer" and isinstance(out.get("config"), dict):
        inner = dict(out["config"])
        for key, plain in (("sparse", False), ("ragged", False), ("optional", False)):
            if inner.get(key, plain) != plain:
                raise NotImplementedError(f"Keras's .keras file: InputLayer '{inner.get('name')}' has {key}=True, "
                                          f"which dlgpu does not support.")
            inner.pop(key, None)
        out["config"] = inner
    if class_name == "Functional":
        out["class_name"] = "Model"
    if isinstance(out.get("inbound_nodes"), list):
        out["inbound_nodes"] = [_node_from_keras(node) for node in out["inbound_nodes"]]
    return out


def _node_from_keras(node):
    """Keras's node {"args": [first, *more], "kwargs"} as dlgpu's {"args": first, "more_args", "kwargs"}."""
    if not isinstance(node, dict) or not isinstance(node.get("args"), list) or not node["args"]:
        raise NotImplementedError(f"an inbound node in a format dlgpu does not read: {str(node)[:120]}")
    first, *more = node["args"]
    # Keras records each layer's default ``training`` in its nodes (Dropout False, the image augmentations
    # True) and overrides it with the model's whenever fit/predict/evaluate give one; dlgpu lets a training=
    # written in the graph win (the transfer-learning idiom), so Keras's recorded defaults are dropped.
    kwargs = {k: v for k, v in (node.get("kwargs") or {}).items()
              if not (k == "mask" and v is None) and k != "training"}
    return {"args": first, "more_args": more, "kwargs": kwargs} if more else {"args": first, "kwargs": kwargs}


_KINDS = {"keras.initializers": "initializers", "keras.regularizers": "regularizers",
          "keras.constraints": "constraints", "keras.losses": "losses", "keras.metrics": "metrics",
          "keras.optimizers": "optimizers", "keras.optimizers.schedules": "schedules",
          "keras.distillation": "distillation", "keras.dtype_policies": "dtype_policies",
          "keras.quantizers": "quantizers"}


def _unknown_classes(obj, custom_objects, found, in_layers=False):
    """Names (module.class) of the classes in a Keras config that dlgpu cannot make."""
    import dlgpu
    from dlgpu import layers
    from dlgpu.saving import get_registered_object
    if isinstance(obj, list):
        for o in obj:
            _unknown_classes(o, custom_objects, found, in_layers)
        return
    if not isinstance(obj, dict):
        return
    class_name, module = obj.get("class_name"), str(obj.get("module") or "")
    if isinstance(class_name, str) and "config" in obj and class_name not in ("__keras_tensor__", "__numpy__",
                                                                            "function"):
        known = True
        registered = obj.get("registered_name")
        custom = (class_name in custom_objects or get_registered_object(class_name, custom_objects) is not None
                  or (isinstance(registered, str) and get_registered_object(registered, custom_objects) is not None))
        if module.startswith("keras.src.ops."):
            known = _keras_operation(obj) is not None
        elif module.startswith("keras.layers") or module.startswith("keras.src.models") or module == "keras" \
                or in_layers:
            known = class_name in layers._BUILTIN or class_name in _MODELS + ("DTypePolicy", "FloatDTypePolicy")
        elif module.startswith("keras.optimizers.schedules"):
            known = hasattr(dlgpu.optimizers.schedules, class_name)
        elif module.startswith("keras.src.backend") or module.startswith("keras.optimizers"):
            from dlgpu.optimizers import _CLASSES
            known = class_name in _CLASSES or class_name == "OptimizerMap"  # inside a MultiOptimizer's config
        elif module.split(".")[0] == "keras":
            kind = _KINDS.get(module)
            known = kind is not None and (hasattr(getattr(dlgpu, kind, None), class_name)
                                          or class_name in getattr(getattr(dlgpu, kind, None), "_CLASSES", {}))
        if not known and not custom:
            found.append(f"{module}.{class_name}" if module else class_name)
    for key, value in obj.items():
        _unknown_classes(value, custom_objects, found, key == "layers")


def load_keras_model(filepath, archive, names, custom_objects=None, compile=True):  # noqa: A002
    """A dlgpu model from a Keras 3 ``.keras`` archive (already opened by saving.load_model)."""
    source = repr(os.fspath(filepath))
    if _CONFIG not in names:
        raise SavedModelError(f"{source} is a Keras archive without {_CONFIG}.")
    if _WEIGHTS not in names:
        raise SavedModelError(f"{source}: Keras archive without {_WEIGHTS} (holds {sorted(names)[:6]}); dlgpu "
                              f"reads Keras files whose weights are in HDF5, as model.save writes them.")
    config = _read_json(archive, _CONFIG, filepath)
    if not isinstance(config, dict) or "class_name" not in config:
        raise SavedModelError(f"{source}: {_CONFIG} is not a Keras model config.")
    custom_objects = _with_scope(custom_objects)
    compile_settings = config.get("compile_config")
    from dlgpu.saving import CustomObjectScope
    h5py = _h5py()
    with CustomObjectScope(custom_objects):
        model = _model_from_keras_config(config, custom_objects, source)
        if not model.built:
            raise SavedModelError(f"{source}: the model has no input shape, so its weights cannot be loaded.")
        with h5py.File(io.BytesIO(archive.read(_WEIGHTS)), "r") as h5:
            try:
                _assign_from_h5(model, h5, source)
            except NotImplementedError as exc:
                raise SavedModelError(f"{source}: {exc}") from None
            if compile and compile_settings:
                _compile_from_keras(model, compile_settings, custom_objects, source, h5)
    return model


def _model_from_keras_config(config, custom_objects, source):
    """A dlgpu model with fresh weights from a Keras 3 model config (a .keras file's config.json, or
    Keras's to_json); unknown classes are refused by name before anything is made."""
    unknown = []
    _unknown_classes(config, custom_objects, unknown)
    if unknown:
        raise SavedModelError(f"{source} uses Keras classes dlgpu does not have: {sorted(set(unknown))}. Pass "
                              f"equivalents in custom_objects, or rebuild the model in code.")
    try:
        dlgpu_config = _from_keras({k: v for k, v in config.items() if k != "compile_config"})
    except NotImplementedError as exc:
        raise SavedModelError(f"{source}: {exc}") from None
    from dlgpu import layers
    try:
        return layers.deserialize(dlgpu_config, custom_objects)
    except (KeyError, TypeError, ValueError) as exc:
        raise SavedModelError(f"{source}: dlgpu cannot rebuild the model from Keras's config: {exc}") from None


def model_from_keras_json(config, custom_objects):
    """model_from_json for the JSON Keras's Model.to_json writes (fresh weights, compiled if it was)."""
    from dlgpu.saving import CustomObjectScope
    custom_objects = _with_scope(custom_objects)
    with CustomObjectScope(custom_objects):
        model = _model_from_keras_config(config, custom_objects, "model_from_json")
        if config.get("compile_config"):
            _compile_from_keras(model, config["compile_config"], custom_objects, "model_from_json", None)
    return model


def keras_model_json(model, **kwargs):
    """Model.to_json in Keras's layout (what keras.models.model_from_json reads), or None when the model
    holds what Keras cannot express (then dlgpu's own JSON is written)."""
    if keras_format_refusal(model) is not None:
        return None
    return json.dumps(_keras_model_config(model), **kwargs)


def _overrides_compile_config(model):
    from dlgpu.models.model import Model
    return type(model).get_compile_config is not Model.get_compile_config


def _compile_from_keras(model, settings, custom_objects, source, h5):
    from dlgpu.models.compile_config import compile_arguments
    from dlgpu.models.model import Model
    if type(model).compile_from_config is not Model.compile_from_config:
        model.compile_from_config(settings)  # the class restores what its get_compile_config wrote
        if getattr(model, "compiled", False) and h5 is not None:
            _restore_optimizer(model, model.optimizer, h5, source)
        return
    settings = _from_keras(settings)
    arguments = compile_arguments(settings, custom_objects, source)
    if arguments is None:
        return
    try:
        model.compile(**arguments)
    except (ValueError, TypeError) as exc:
        raise SavedModelError(f"{source}: the compile config does not fit the model: {exc}. "
                              f"load_model(..., compile=False) loads it uncompiled.") from None
    if h5 is not None:  # (None: a JSON string, which holds no optimizer state)
        _restore_optimizer(model, model.optimizer, h5, source)
