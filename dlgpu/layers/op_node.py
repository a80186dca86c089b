"""An ops call in a functional graph (``y = ops.square(x) * 2`` on a KerasTensor), as Keras's Operation.

Each symbolic call of a dlgpu.ops function makes one OpLayer with one node: its arguments as given (KerasTensors
anywhere in them, nested lists too), which the model replaces with the real tensors when it runs the graph.
An OpLayer has no weights; it is not among ``model.layers`` (as Keras's ops are not) but is in the model's
config and summary.

Saved form (dlgpu's own, in the model's "layers" list): ``{"module": "dlgpu.ops", "class_name": "OpLayer",
"config": {"name": "square_1", "op": "square"}, "inbound_nodes": [{"args": [...], "kwargs": {...}}]}``: the
op's public name (``"image.resize"`` for ops.image.resize) and its call's arguments, tensors as references
``[layer name, node index, tensor index]`` like every node, other values as JSON, with ``{"class_name":
"__tuple__" | "__slice__" | "__ellipsis__" | "__numpy__" | "__tensor__" | "__dtype__" | "__list__" | "__dict__",
"config": ...}`` for what JSON has no form of.
"""

from __future__ import annotations

import inspect
import re

import numpy as np

from dlgpu.autograd import Tensor, Variable
from dlgpu.layers.base import KerasTensor, Layer, Node, unique_name
from dlgpu.ops import symbolic

_SPECIAL = ("__tuple__", "__slice__", "__ellipsis__", "__numpy__", "__tensor__", "__dtype__", "__pytype__",
            "__list__", "__dict__")
_PYTYPES = {"float": float, "int": int, "bool": bool, "complex": complex}


def _camel(name):
    return "".join(part.capitalize() for part in re.split(r"[._]", name))


def _raw_op(op):
    fn = symbolic.RAW_OPS.get(op)
    if fn is None:
        raise ValueError(f"Unknown op {op!r} in a functional graph; dlgpu.ops has no such function.")
    return fn


class OpLayer(Layer):
    """One call of a dlgpu.ops function in a functional graph."""

    def __init__(self, op, name=None, **kwargs):
        fn = _raw_op(op)
        super().__init__(name=name or unique_name(op.replace(".", "_")), **kwargs)
        self.op = op
        self._fn = fn
        try:
            self._takes_training = "training" in inspect.signature(fn).parameters
        except (TypeError, ValueError):
            self._takes_training = False
        self.built = True

    @property
    def summary_type(self):
        """What model.summary shows in brackets: Keras's class name for the op (Square, GetItem)."""
        return _camel(self.op)

    def __call__(self, arguments, **kwargs):
        if not self._takes_training:
            kwargs.pop("training", None)  # a functional model passes it to every node
        if symbolic._has_symbolic([arguments, kwargs]):
            return self._symbolic(arguments, kwargs)
        return self._fn(*arguments, **kwargs)

    def call(self, arguments, **kwargs):
        return self._fn(*arguments, **kwargs)

    def _output_specs(self, arguments, kwargs):
        return symbolic.infer_outputs(self.op, self._fn, arguments, kwargs)

    def _symbolic(self, arguments, kwargs):
        specs = self._output_specs(arguments, kwargs)
        node_index = len(self._inbound_nodes)
        counter = iter(range(1 << 30))

        def make(spec):
            i = next(counter)
            return KerasTensor(spec.shape, spec.dtype, name=self.name if i == 0 else f"{self.name}_{i}",
                               history=(self, node_index, i))
        outputs = symbolic._map(make, specs)
        self._inbound_nodes.append(Node(self, list(arguments), outputs, dict(kwargs)))
        return outputs

    def get_config(self):
        return {"name": self.name, "op": self.op}

    @classmethod
    def from_config(cls, config):
        if "operation" in config:  # a user Operation's node (OperationNode)
            return OperationNode.from_config(config)
        return cls(**config)

    def get_build_config(self):
        return None

    # -- the node's arguments as JSON ------------------------------------------------------------------
    def encode_arguments(self, node, ref):
        """The node's (args, kwargs) as JSON-ready values, KerasTensors as ``ref(tensor)``."""
        def encode(value, where):
            if isinstance(value, KerasTensor):
                return ref(value)
            if value is None or isinstance(value, (bool, int, float, str)):
                return value
            if isinstance(value, list):
                items = [encode(v, f"{where}[{i}]") for i, v in enumerate(value)]
                # a plain list shaped like a tensor reference must not be read back as one
                looks_like_ref = len(items) == 3 and isinstance(items[0], str) and isinstance(items[1], int)
                return {"class_name": "__list__", "config": {"value": items}} if looks_like_ref else items
            if isinstance(value, tuple):
                return {"class_name": "__tuple__",
                        "config": {"value": [encode(v, f"{where}[{i}]") for i, v in enumerate(value)]}}
            if isinstance(value, dict):
                if not all(isinstance(k, str) for k in value):
                    raise self._unsaveable(where, value, "a dict with keys that are not strings")
                items = {k: encode(v, f"{where}[{k!r}]") for k, v in value.items()}
                return {"class_name": "__dict__", "config": {"value": items}} if "class_name" in items else items
            if isinstance(value, slice):
                return {"class_name": "__slice__", "config": {
                    "start": encode(value.start, where), "stop": encode(value.stop, where),
                    "step": encode(value.step, where)}}
            if value is Ellipsis:
                return {"class_name": "__ellipsis__", "config": {}}
            if isinstance(value, Variable):
                raise self._unsaveable(where, value, f"the variable {value.path!r}; saving it as a constant "
                                                     f"would cut it off from training, so let a layer own it")
            if isinstance(value, Tensor):
                return {"class_name": "__tensor__", "config": {"value": value.numpy().tolist(), "dtype": value.dtype}}
            if isinstance(value, (np.ndarray, np.generic)):
                if value.dtype.kind not in "biufc" or value.dtype.kind == "c":
                    raise self._unsaveable(where, value, f"an array of dtype {value.dtype}")
                return {"class_name": "__numpy__", "config": {"value": value.tolist(), "dtype": value.dtype.name}}
            if isinstance(value, np.dtype) or isinstance(value, type) and issubclass(value, np.generic):
                return {"class_name": "__dtype__", "config": {"value": np.dtype(value).name}}
            if value in (float, int, bool, complex):
                return {"class_name": "__pytype__", "config": {"value": value.__name__}}
            if callable(value):
                what = getattr(value, "__qualname__", None) or type(value).__name__
                raise self._unsaveable(where, value, f"a Python function ({what}); dlgpu never saves code")
            raise self._unsaveable(where, value, f"a {type(value).__name__}")
        args = encode(list(node.inputs), "args")
        if isinstance(args, dict):  # the argument list itself looked like a reference
            args = args["config"]["value"]
        return args, {k: encode(v, f"argument {k!r}") for k, v in node.kwargs.items()}

    def _unsaveable(self, where, value, what):
        return ValueError(f"Cannot save op node '{self.name}' (ops.{self.op}): its {where} is {what}, which has "
                          f"no saved form.  Ops in a functional model can be saved with tensors, numbers, "
                          f"strings, lists, tuples, slices and arrays as arguments; wrap other calls in a layer "
                          f"with get_config().")

    @staticmethod
    def decode_arguments(value, tensor_for, is_ref):
        """The inverse of encode_arguments, references becoming ``tensor_for(reference)``."""
        def decode(v):
            if is_ref(v):
                return tensor_for(v)
            if isinstance(v, list):
                return [decode(x) for x in v]
            if isinstance(v, dict):
                kind = v.get("class_name")
                if kind not in _SPECIAL:
                    return {k: decode(x) for k, x in v.items()}
                config = v.get("config", {})
                if kind == "__list__":
                    return [decode(x) for x in config["value"]]
                if kind == "__tuple__":
                    return tuple(decode(x) for x in config["value"])
                if kind == "__dict__":
                    return {k: decode(x) for k, x in config["value"].items()}
                if kind == "__slice__":
                    return slice(decode(config["start"]), decode(config["stop"]), decode(config["step"]))
                if kind == "__ellipsis__":
                    return Ellipsis
                if kind == "__numpy__":
                    array = np.asarray(config["value"], dtype=config["dtype"])
                    return array[()] if array.ndim == 0 else array
                if kind == "__tensor__":
                    return Tensor(np.asarray(config["value"], dtype=config["dtype"]), dtype=config["dtype"])
                if kind == "__dtype__":
                    return np.dtype(config["value"])
                if kind == "__pytype__":
                    return _PYTYPES[config["value"]]
            return v
        return decode(value)


class OperationNode(OpLayer):
    """The node of a keras.Operation subclass called on KerasTensors (dlgpu/operation.py): it runs the
    operation's call, its output shapes come from the operation's compute_output_spec, and it is saved with
    the operation's config (dlgpu's own format; Keras's .keras format has no entry for an unregistered op)."""

    def __init__(self, operation, name=None, **kwargs):
        Layer.__init__(self, name=name or operation.name, **kwargs)
        self.operation = operation
        self.op = f"operation:{type(operation).__name__}"  # matches no ops function: not written as a Keras op
        self._fn = operation.call
        self._takes_training = False
        self.built = True

    @property
    def summary_type(self):
        return type(self.operation).__name__

    def _output_specs(self, arguments, kwargs):
        return self.operation.compute_output_spec(*arguments, **kwargs)

    def get_config(self):
        from dlgpu.saving import serialize_keras_object
        return {"name": self.name, "operation": serialize_keras_object(self.operation)}

    @classmethod
    def from_config(cls, config):
        from dlgpu.saving import deserialize_keras_object
        operation = deserialize_keras_object(config["operation"])
        node = cls(operation, name=config.get("name"))
        operation._graph_node = node
        return node
