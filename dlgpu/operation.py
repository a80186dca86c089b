"""keras.Operation and keras.Function.

Operation is the base of everything that computes in a graph: every Layer is one.  Subclassed directly, it
is a stateless computation (no weights) with a ``call``: called on tensors it runs ``call``; called on
KerasTensors (a functional model being built) it adds one node to the graph, whose output shapes come from
``compute_output_spec`` (by default ``call`` run on dummies of the inputs' shapes and dtypes).  In a
functional model the node is an OperationNode (dlgpu/layers/op_node.py), which, like the nodes of
dlgpu.ops calls, is in the model's graph, config and summary but not in ``model.layers``; a model holding
one is saved with the operation's config (its constructor arguments, or its own get_config) and loads back
given the class (``custom_objects`` or ``register_keras_serializable``).

Function is a graph of operations from input KerasTensors to output KerasTensors, callable on real tensors:
a functional model without the model (no training, no weights of its own).
"""

from __future__ import annotations

from dlgpu.naming import auto_name

__all__ = ["Operation", "Function"]


class Operation:
    """keras.Operation: ``call`` on tensors; one graph node on KerasTensors."""

    def __new__(cls, *args, **kwargs):
        from dlgpu.layers.base import _auto_config
        obj = super().__new__(cls)
        object.__setattr__(obj, "_auto_config", _auto_config(cls, args, kwargs))
        return obj

    def __init__(self, name=None):
        if name is not None and (not isinstance(name, str) or "/" in name):
            raise ValueError(f"Argument `name` of {type(self).__name__} must be a string without '/'. "
                             f"Received: name={name!r}")
        self.name = name or auto_name(type(self).__name__)

    def __call__(self, *args, **kwargs):
        from dlgpu.ops.symbolic import _has_symbolic
        if _has_symbolic([args, kwargs]):
            return self.symbolic_call(*args, **kwargs)
        return self.call(*args, **kwargs)

    def call(self, *args, **kwargs):
        raise NotImplementedError(f"Operation {type(self).__name__} must implement call()")

    def symbolic_call(self, *args, **kwargs):
        """The call on KerasTensors: one node of this operation in the graph being built."""
        node = self.__dict__.get("_graph_node")
        if node is None:
            from dlgpu.layers.op_node import OperationNode
            node = OperationNode(self)
            self._graph_node = node
        return node(list(args), **kwargs)

    def compute_output_spec(self, *args, **kwargs):
        """KerasTensors shaped like the outputs of ``call`` on these arguments (by default found by running
        ``call`` on dummies of the KerasTensors' shapes and dtypes)."""
        from dlgpu.layers.keras_tensor import KerasTensor
        from dlgpu.ops import symbolic
        specs = symbolic.infer_outputs(self.name, self.call, list(args), kwargs)
        return symbolic._map(lambda s: KerasTensor(s.shape, s.dtype), specs)

    def get_config(self):
        """The constructor's arguments (Keras's auto config), when they are plain values; else a class with
        other arguments must define get_config."""
        config = {"name": self.name}
        auto = self.__dict__.get("_auto_config")
        if auto is None:
            if type(self).__init__ is not Operation.__init__:
                raise NotImplementedError(
                    f"Operation {type(self).__name__} takes arguments that are not plain values (numbers, strings, "
                    f"lists, dicts); define get_config() for it to be saved.")
            return config
        return {**config, **auto}

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def __repr__(self):
        return f"<Operation name={self.name}>"


class Function:
    """keras.Function(inputs, outputs, name=None): the graph from ``inputs`` to ``outputs`` (KerasTensors, or
    structures of them), run on real tensors by calling it."""

    def __init__(self, inputs, outputs, name=None):
        from dlgpu.models.model import Model
        self.name = name or auto_name("function")
        self._graph = Model(inputs, outputs, name=self.name)

    @property
    def inputs(self):
        return self._graph.inputs

    @property
    def outputs(self):
        return self._graph.outputs

    @property
    def operations(self):
        """The graph's operations (input layers, layers and op nodes) in the order they run."""
        return list(self._graph._layers)

    def __call__(self, inputs):
        return self._graph(inputs)

    call = __call__

    def compute_output_spec(self, inputs):
        return self._graph.compute_output_spec(inputs)

    def __repr__(self):
        return f"<Function name={self.name}>"
