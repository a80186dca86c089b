"""A functional model's graph as JSON-ready config, and back (Keras's layout: layers with inbound nodes)."""

from __future__ import annotations

import contextlib
import threading

from dlgpu.layers.base import InputLayer, KerasTensor, map_structure
from dlgpu.layers.op_node import OpLayer


_STATE = threading.local()


@contextlib.contextmanager
def keras_tensor_refs():
    """Inside it, a node's tensor arguments are written as Keras 3 writes them (``__keras_tensor__`` dicts
    with shape, dtype and keras_history), for Keras's own .keras files; dlgpu reads plain references."""
    outer = getattr(_STATE, "keras", False)
    _STATE.keras = True
    try:
        yield
    finally:
        _STATE.keras = outer


def functional_config(model):
    from dlgpu.saving import layer_entry
    # Node indices are counted within this model, so layers shared with other graphs still round-trip.
    local_index = {}
    per_layer = {}
    for node in model._nodes:
        k = per_layer.get(id(node.layer), 0)
        local_index[id(node)] = k
        per_layer[id(node.layer)] = k + 1

    def ref(tensor):
        layer, node_index, tensor_index = tensor._history
        node = layer._inbound_nodes[node_index]
        return [layer.name, local_index[id(node)], tensor_index]

    def arg_ref(tensor):
        history = ref(tensor)
        if not getattr(_STATE, "keras", False):
            return history
        return {"class_name": "__keras_tensor__",
                "config": {"shape": list(tensor.shape), "dtype": str(tensor.dtype), "keras_history": history}}

    layers = []
    for layer in model._layers:
        nodes = [n for n in model._nodes if n.layer is layer]
        if isinstance(layer, OpLayer):
            if getattr(_STATE, "keras", False):  # Keras's Operation classes (keras.src.ops.numpy.Pad ...)
                from dlgpu.models.keras_format import keras_op_entry
                layers.append(keras_op_entry(layer, nodes, arg_ref))
            else:
                layers.append(_op_entry(layer, nodes, ref))
            continue
        entry = {**layer_entry(layer), "name": layer.name,
                 "inbound_nodes": [] if isinstance(layer, InputLayer) else [_node_config(n, arg_ref) for n in nodes]}
        if not isinstance(layer, InputLayer) and layer.built and layer._build_shapes is not None:
            entry["build_config"] = layer.get_build_config()
        layers.append(entry)
    return {"name": model.name, "trainable": model.trainable, "layers": layers,
            "input_layers": map_structure(ref, model._nested_inputs),
            "output_layers": map_structure(ref, model._nested_outputs)}


def _op_entry(layer, nodes, ref):
    """An ops call: the op's public name, and each node's arguments (see dlgpu/layers/op_node.py)."""
    inbound = []
    for node in nodes:
        args, kwargs = layer.encode_arguments(node, ref)
        inbound.append({"args": args, "kwargs": kwargs})
    return {"module": "dlgpu.ops", "class_name": "OpLayer", "config": layer.get_config(), "registered_name": None,
            "name": layer.name, "inbound_nodes": inbound}


def _node_config(node, ref):
    first, more, kwargs = node.call_arguments(ref)
    if getattr(_STATE, "keras", False):  # Keras: "args" is the list of all positional arguments
        return {"args": [first, *more], "kwargs": kwargs}
    config = {"args": first, "kwargs": kwargs}
    if more:  # a call with several positional arguments, layer(targets, logits)
        config["more_args"] = list(more)
    return config


def _is_ref(obj):
    return isinstance(obj, list) and len(obj) == 3 and isinstance(obj[0], str) and isinstance(obj[1], int)


def _map_refs(fn, obj):
    if _is_ref(obj):
        return fn(obj)
    if isinstance(obj, list):
        return [_map_refs(fn, o) for o in obj]
    if isinstance(obj, dict):
        return {k: _map_refs(fn, v) for k, v in obj.items()}
    return obj


def functional_from_config(cls, config, custom_objects=None):
    from dlgpu import layers as layers_module
    created = {}
    outputs_of = {}  # (layer name, local node index) -> output structure

    def tensor_for(ref):
        name, node_index, tensor_index = ref
        out = outputs_of[(name, node_index)]
        return out if isinstance(out, KerasTensor) else _flat(out)[tensor_index]

    # Every layer is made first, then its calls are replayed as their inputs become available: a shared layer
    # (a tied ReversibleEmbedding, called on the ids and again on the last hidden states) is listed once, where
    # it is first used, but its later calls take tensors of layers listed after it (Keras's loader defers
    # such nodes the same way).  A layer's calls keep their order, so node k stays node k.
    pending = []
    for entry in config["layers"]:
        if entry.get("class_name") == "OpLayer" and entry.get("module") == "dlgpu.ops":
            layer = OpLayer.from_config(entry["config"])
        else:
            layer = layers_module.deserialize({"class_name": entry["class_name"], "config": entry["config"],
                                               "registered_name": entry.get("registered_name")}, custom_objects)
        created[entry["name"]] = layer
        if isinstance(layer, InputLayer):
            outputs_of[(entry["name"], 0)] = layer.output
            continue
        pending.extend((entry["name"], layer, k, node) for k, node in enumerate(entry["inbound_nodes"]))
    while pending:
        waiting, blocked, missing = [], set(), []
        for name, layer, k, node in pending:
            if name in blocked:
                waiting.append((name, layer, k, node))
                continue
            try:
                if isinstance(layer, OpLayer):
                    args = OpLayer.decode_arguments(node["args"], tensor_for, _is_ref)
                    more_args = []
                    kwargs = OpLayer.decode_arguments(node.get("kwargs", {}), tensor_for, _is_ref)
                else:
                    args = _map_refs(tensor_for, node["args"])
                    more_args = _map_refs(tensor_for, node.get("more_args", []))
                    kwargs = _map_refs(tensor_for, node.get("kwargs", {}))
            except KeyError as exc:
                waiting.append((name, layer, k, node))
                blocked.add(name)
                missing.append((name, exc.args[0], isinstance(layer, OpLayer)))
                continue
            outputs_of[(name, k)] = layer(args, *more_args, **kwargs)
        if len(waiting) == len(pending):
            # name a reference to a layer that does not exist, if any; else the first call left waiting
            name, ref, is_op = next((m for m in missing if m[1][0] not in created), missing[0])
            raise ValueError(f"Corrupt model config: {'op node' if is_op else 'layer'} {name!r} refers to {ref}, "
                             f"which does not exist or depends on that layer's own output")
        pending = waiting
    inputs = _map_refs(tensor_for, config["input_layers"])
    outputs = _map_refs(tensor_for, config["output_layers"])
    return cls(inputs=inputs, outputs=outputs, name=config.get("name"))


def _flat(obj):
    if isinstance(obj, (list, tuple)):
        return [t for o in obj for t in _flat(o)]
    return [obj]
