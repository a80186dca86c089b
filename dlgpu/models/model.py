"""Model: a functional graph of layer calls (``Model(inputs, outputs)``) or a subclass with ``call``.

Training, evaluation and prediction live in dlgpu/models/training.py (the one training loop).
"""

from __future__ import annotations

from dlgpu.autograd import Tensor, no_grad
from dlgpu.layers import base as layer_base
from dlgpu.layers.base import InputLayer, KerasTensor, Layer, flatten, map_structure, ordered_nodes
from dlgpu.layers.op_node import OpLayer
from dlgpu.models import fusion
from dlgpu.models.training import Trainer


class Model(Trainer, Layer):
    """Group layers into an object with training and inference features (as keras.Model)."""

    def __init__(self, *args, **kwargs):
        inputs = kwargs.pop("inputs", args[0] if len(args) > 0 else None)
        outputs = kwargs.pop("outputs", args[1] if len(args) > 1 else None)
        layer_kwargs = {k: kwargs.pop(k) for k in ("name", "trainable", "dtype") if k in kwargs}
        if kwargs:
            raise TypeError(f"Model.__init__() got unexpected keyword argument(s) {sorted(kwargs)}")
        if "name" not in layer_kwargs and type(self) is Model and (inputs is not None or outputs is not None):
            # Keras 3 builds Model(inputs, outputs) as its Functional class, so it is auto-named "functional".
            layer_kwargs["name"] = layer_base.unique_name("functional")
        Layer.__init__(self, **layer_kwargs)
        # Masks: a model supports them, but an eager call has nothing to compute, since the layers inside set
        # their outputs' masks as they run (so no per-call cost); the symbolic call reads its graph's masks.
        self._computes_mask = False
        Trainer.__init__(self)
        self._functional = inputs is not None or outputs is not None
        if self._functional:
            if inputs is None or outputs is None:
                raise ValueError("A functional Model needs both `inputs` and `outputs`, e.g. Model(inputs=x_in, outputs=y).")
            self._init_graph(inputs, outputs)

    # -- functional graph ---------------------------------------------------------------------
    def _init_graph(self, inputs, outputs):
        for t in flatten(inputs) + flatten(outputs):
            if not isinstance(t, KerasTensor):
                raise ValueError(f"Model inputs and outputs must be symbolic tensors from dlgpu.Input(...) and "
                                 f"layer calls on them; received {type(t).__name__}")
        if not all(isinstance(t._history[0], InputLayer) for t in flatten(inputs)):
            inputs, outputs = _clone_from_intermediate_inputs(inputs, outputs)
        self._nested_inputs = inputs if not isinstance(inputs, tuple) else list(inputs)
        self._nested_outputs = outputs if not isinstance(outputs, tuple) else list(outputs)
        self.inputs = flatten(inputs)
        self.outputs = flatten(outputs)
        # inputs reach the graph in their Input's dtype (int32 ids stay integers for ops such as take)
        self._accepts_integer_inputs = True
        self._convert_input_args = False  # nor autocast to the model's compute dtype (Keras's Functional)
        self._nodes = self._ordered_nodes()
        self._conv_pool_pairs = fusion.conv_pool_nodes(self._nodes, self.outputs)
        known_inputs = {id(t) for t in self.inputs}
        for node in self._nodes:
            if isinstance(node.layer, InputLayer) and id(node.outputs) not in known_inputs:
                raise ValueError(f"Graph disconnected: the output depends on input {node.outputs.name!r}, "
                                 f"which is not among the model's inputs {[t.name for t in self.inputs]}")
        object.__setattr__(self, "_layers", keras_layer_order(self.outputs, self._nodes))
        self.built = True
        self._build_shapes = map_structure(lambda t: t.shape, self._nested_inputs)

    def _ordered_nodes(self):
        return ordered_nodes(self.outputs)

    def _run_graph(self, inputs, training=None):
        flat = self._match_inputs(inputs)
        values = {id(kt): t if not isinstance(t, Tensor) or t.dtype == kt.dtype or kt.dtype == "string"
                  else _cast_input(t, kt.dtype) for kt, t in zip(self.inputs, flat)}
        fused_pools = set()
        for node in self._nodes:
            if isinstance(node.layer, InputLayer) or id(node) in fused_pools:
                continue
            args, more_args, call_kwargs = node.call_arguments(lambda kt: values[id(kt)])
            pool_node = self._conv_pool_pairs.get(id(node))
            if pool_node is not None and isinstance(args, Tensor) and fusion.fusable(node.layer, pool_node.layer):
                values[id(pool_node.outputs)] = fusion.run_conv_pool(node.layer, pool_node.layer, args)
                fused_pools.add(id(pool_node))
                continue
            # training= given when the graph was built wins over the model's (as in Keras: the transfer-learning
            # idiom base(x, training=False) keeps the base in inference mode during fit)
            kwargs = call_kwargs if "training" in call_kwargs else {**call_kwargs, "training": training}
            out = node.layer(args, *more_args, **kwargs)
            for kt, t in zip(flatten(node.outputs), flatten(out)):
                values[id(kt)] = t
        return map_structure(lambda kt: values[id(kt)], self._nested_outputs)

    def _match_inputs(self, inputs):
        if isinstance(inputs, dict):
            names = [t.name for t in self.inputs]
            missing = [n for n in names if n not in inputs]
            if missing:
                raise ValueError(f"Model '{self.name}': missing inputs {missing}; the model's inputs are {names}")
            flat = [inputs[n] for n in names]
        else:
            flat = flatten(inputs) if isinstance(inputs, (list, tuple)) else [inputs]
        if len(flat) != len(self.inputs):
            raise ValueError(f"Model '{self.name}' expects {len(self.inputs)} input(s) "
                             f"({[t.name for t in self.inputs]}) but received {len(flat)}")
        flat = [self._adjust_rank(i, t, kt) for i, (t, kt) in enumerate(zip(flat, self.inputs))]
        for i, (t, kt) in enumerate(zip(flat, self.inputs)):
            shape = getattr(t, "shape", None)
            if shape is not None and any(a is not None and a != b for a, b in zip(kt.shape[1:], tuple(shape)[1:])):
                raise ValueError(f"Input {i} ('{kt.name}') of model '{self.name}' is incompatible: expected shape "
                                 f"{kt.shape}, found shape {tuple(shape)}")
        return flat

    def _adjust_rank(self, i, t, kt):
        """Keras's Functional._adjust_input_rank: an input one axis short of an Input whose last axis is 1
        gains that axis ((batch,) strings into Input(shape=(1,))), and a trailing axis of 1 beyond the Input's
        rank is dropped; other rank differences are errors."""
        if layer_base.is_string_array(t) != (kt.dtype == "string"):
            received = "strings" if layer_base.is_string_array(t) else f"dtype {getattr(t, 'dtype', type(t).__name__)}"
            raise ValueError(f"Input {i} ('{kt.name}') of model '{self.name}' has dtype {kt.dtype}; received "
                             f"{received}" + (" (an Input for strings needs dtype='string')"
                                              if kt.dtype != "string" else ""))
        shape = getattr(t, "shape", None)
        if shape is None or len(shape) == len(kt.shape):
            return t
        if len(shape) == len(kt.shape) + 1 and shape[-1] == 1:
            adjusted = t[..., 0]
        elif len(shape) == len(kt.shape) - 1 and kt.shape[-1] == 1:
            adjusted = t[..., None]
        else:
            raise ValueError(f"Input {i} ('{kt.name}') of model '{self.name}' is incompatible: expected shape "
                             f"{kt.shape}, found shape {tuple(shape)}")
        mask = layer_base.get_keras_mask(t)
        if mask is not None:
            adjusted._keras_mask = mask
        return adjusted

    def call(self, inputs, training=None, mask=None):
        if not getattr(self, "_functional", False):
            raise NotImplementedError(f"Model '{self.name}' is a subclass without a `call` method: define "
                                      f"call(self, inputs, training=None), or build a functional Model(inputs, outputs).")
        if mask is not None:  # Keras's Functional.call: given masks ride on the inputs into the graph
            _attach_masks(inputs, mask)
        outputs = self._run_graph(inputs, training)
        # Keras's Functional.call unpacks a one-element list: Model(x, [y])(data) is y's tensor, not [tensor]
        return outputs[0] if isinstance(outputs, list) and len(outputs) == 1 else outputs

    # -- masks ---------------------------------------------------------------------------------
    def compute_mask(self, inputs, mask=None):
        """None: the layers inside set their outputs' masks as they run, and those reach the model's outputs."""
        return None

    def _symbolic_compute_mask(self, inputs, previous):
        """A model called in a functional graph: its outputs get the masks its own graph gave its outputs."""
        outputs = getattr(self, "outputs", None) or []
        masks = [layer_base.get_keras_mask(t) for t in outputs]
        return masks if any(m is not None for m in masks) else None

    @property
    def layers(self):
        # ops on KerasTensors (OpLayer nodes) are in the graph but not layers, as Keras's Operations
        return [layer for layer in self._layers if (not isinstance(layer, InputLayer) or self._functional)
                and not isinstance(layer, OpLayer)]

    @property
    def input(self):
        """The model's symbolic input(s), as passed to Model(inputs=...): a tensor, or a list/dict of them."""
        ends = self._graph_ends("_nested_inputs", "inputs")
        return ends if ends is not None else super().input

    @property
    def output(self):
        ends = self._graph_ends("_nested_outputs", "outputs")
        return ends if ends is not None else super().output

    def _graph_ends(self, nested, flat):
        structure = self.__dict__.get(nested)
        if structure is not None:
            return structure
        tensors = self.__dict__.get(flat) or []
        return tensors[0] if len(tensors) == 1 else (tensors or None)

    @property
    def input_shape(self):
        """The input's shape with None for the batch (a list of them for several inputs), as in Keras."""
        return self._symbolic_shapes("inputs")

    @property
    def output_shape(self):
        return self._symbolic_shapes("outputs")

    def _symbolic_shapes(self, which):
        tensors = getattr(self, which, None) if self.built else None
        if not tensors:
            why = ("a subclassed model has no symbolic graph" if hasattr(self, "built") and self.built
                   else "it has not been built (give it an Input, call it on data, or call build(input_shape))")
            raise AttributeError(f"Model '{self.name}' has no defined {which[:-1]} shape: {why}.")
        shapes = [tuple(t.shape) for t in tensors]
        return shapes[0] if len(shapes) == 1 else shapes

    def get_layer(self, name=None, index=None):
        if index is not None:
            return self.layers[index]
        for layer in self.layers:
            if layer.name == name:
                return layer
        raise ValueError(f"No such layer: {name}. Existing layers are: {[l.name for l in self.layers]}.")

    def build(self, input_shape):
        """Create the weights of a subclassed model by running it once on zeros of that shape."""
        if self._functional or self.built:
            self.built = True
            return
        def zeros(shape):
            return self._zeros_like_shape(shape)
        single = layer_base._is_shape(tuple(input_shape))
        stateful = layer_base.stateful_layers(self)
        if stateful and single and input_shape[0] is None:  # the zeros' batch of 1 would fix theirs
            raise ValueError(f"Model '{self.name}': layer '{stateful[0].name}' is stateful. When using "
                             f"`stateful=True` in a RNN, the batch size must be static. Found dynamic batch size: "
                             f"input_shape={tuple(input_shape)}")
        dummy = zeros(input_shape) if single else map_structure(zeros, input_shape)
        with no_grad(), layer_base.probing():
            self(dummy, training=False)
        self._build_shapes = tuple(input_shape) if layer_base._is_shape(tuple(input_shape)) else input_shape
        self.built = True

    def build_from_config(self, build_config):
        """As Keras: a subclassed model is run once on zeros of its saved input shape, so that its layers'
        weights exist before a file's are loaded into them."""
        if not self._functional and not self.built and build_config and build_config.get("input_shape") is not None:
            self.build(layer_base._to_tuple(build_config["input_shape"]))
            return
        super().build_from_config(build_config)

    def _maybe_build(self, input_shape):
        if not self.built:
            self._build_shapes = input_shape
            self.built = True  # a subclass builds its sub-layers lazily inside call

    def summary(self, line_length=None, positions=None, print_fn=None, expand_nested=False, show_trainable=False,
                layer_range=None):
        """Print the layers, their output shapes and parameter counts (as keras.Model.summary)."""
        from dlgpu.models.summary import print_summary
        print_summary(self, line_length=line_length, positions=positions, print_fn=print_fn,
                      expand_nested=expand_nested, show_trainable=show_trainable, layer_range=layer_range)

    # -- saving -------------------------------------------------------------------------------
    def save(self, filepath, overwrite=True, **kwargs):
        """Architecture + weights (+ compile settings and optimizer state) in one file, written atomically:
        Keras 3's own format for a ``.keras`` name (Keras's load_model opens it), dlgpu's otherwise."""
        from dlgpu.models.saving import save_model
        save_model(self, filepath, overwrite=overwrite)

    def to_json(self, **kwargs):
        """The architecture (and compile settings) as JSON; keras.models.model_from_json rebuilds it."""
        from dlgpu.models.saving import model_to_json
        return model_to_json(self, **kwargs)

    def save_weights(self, filepath, overwrite=True):
        from dlgpu.models.saving import save_weights
        save_weights(self, filepath, overwrite=overwrite)

    def load_weights(self, filepath, skip_mismatch=False):
        if skip_mismatch:
            raise NotImplementedError(f"Model '{self.name}'.load_weights: `skip_mismatch=True` is not supported; "
                                      f"dlgpu raises on a mismatched weight instead of skipping it.")
        from dlgpu.models.saving import load_weights
        load_weights(self, filepath)

    def export(self, filepath, format="onnx", **kwargs):  # noqa: A002 - Keras's argument name
        """Write the model for inference elsewhere: ``format="onnx"`` (needs ``pip install 'dlgpu[onnx]'``)."""
        from dlgpu.export import export
        return export(self, filepath, format=format, **kwargs)

    def quantize(self, mode=None, config=None, filters=None, **kwargs):
        """Keras's Model.quantize: ``model.quantize("int8")`` quantizes every Dense, EinsumDense and Embedding
        (``filters``: a regex on layer names, a list of them, or a callable); other layers are skipped with a
        warning.  The model must be built.  See dlgpu/layers/quantized.py."""
        from dlgpu.layers import quantized
        type_check = kwargs.pop("type_check", True)
        if kwargs:
            raise ValueError(f"Unrecognized keyword arguments passed to {type(self).__name__}: {kwargs}")
        quantized.quantize_model(self, mode, config, filters, type_check)

    def get_compile_config(self):
        """What model.save keeps of compile(): override it together with compile_from_config to save your
        own compile arguments (as Keras); returned values are serialized with serialize_keras_object."""
        from dlgpu.models.compile_config import compile_config
        return compile_config(self)

    def compile_from_config(self, config):
        """Compile again from what get_compile_config returned (load_model calls it)."""
        from dlgpu.models.compile_config import compile_arguments
        arguments = compile_arguments(config, None, f"model '{self.name}'")
        if arguments is not None:
            self.compile(**arguments)

    # -- config -------------------------------------------------------------------------------
    def get_config(self):
        if not self._functional:
            base = {"name": self.name, "trainable": self.trainable}
            if type(self).get_config is Model.get_config and self.__dict__.get("_auto_config") is not None:
                return layer_base._with_auto_config(self, base)
            if type(self).get_config is Model.get_config and type(self).__init__ is not Model.__init__:
                raise NotImplementedError(
                    f"Model '{self.name}' is a subclassed model ({type(self).__name__}) without get_config(); "
                    f"dlgpu never saves Python code, so implement get_config()/from_config(), or use "
                    f"save_weights()/load_weights().")
            return base
        from dlgpu.models.functional_config import functional_config
        return functional_config(self)

    @classmethod
    def from_config(cls, config, custom_objects=None):
        if "layers" in config and "input_layers" in config:
            from dlgpu.models.functional_config import functional_from_config
            return functional_from_config(cls, config, custom_objects)
        return cls(**config)


def _cast_input(t, dtype):
    from dlgpu import ops
    out = ops.cast(t, dtype)
    mask = layer_base.get_keras_mask(t)
    if mask is not None:
        out._keras_mask = mask
    return out


def _attach_masks(inputs, mask):
    """Set each given mask (None for none) on the matching input tensor."""
    flat_inputs = flatten(inputs) if isinstance(inputs, (list, tuple, dict)) else [inputs]
    flat_masks = flatten(mask) if isinstance(mask, (list, tuple, dict)) else [mask]
    if len(flat_masks) != len(flat_inputs):
        raise ValueError(f"`mask` must have one entry per input: {len(flat_inputs)} input(s), "
                         f"{len(flat_masks)} mask(s) received")
    for x, m in zip(flat_inputs, flat_masks):
        if m is not None and isinstance(x, Tensor):
            x._keras_mask = m if isinstance(m, Tensor) else Tensor(m)


def keras_layer_order(outputs, nodes):
    """The layers of a functional graph in Keras's order (keras/src/ops/function.py, map_graph): deepest
    first, a layer's depth being its longest path to an output, ties broken by when a depth-first walk
    from the outputs first met it.  ``model.layers``, ``get_weights()`` and the weights of a .keras file
    follow this order, so it must be Keras's for weights to go to the same layers in both libraries.
    ``nodes`` are the graph's calls, each after the calls that feed it (ordered_nodes)."""
    first_met, finished = {}, set()

    def walk(tensor):  # Keras's _build_map: a layer is numbered when the walk first enters one of its calls
        layer, node_index, _ = tensor._history
        node = layer._inbound_nodes[node_index]
        if id(node) in finished:
            return
        first_met.setdefault(id(layer), len(first_met))
        for parent in node.parent_tensors:
            walk(parent)
        finished.add(id(node))
    for out in outputs:
        walk(out)
    producer = {}
    for node in nodes:
        for t in flatten(node.outputs):
            producer[id(t)] = node
    node_depth, layer_depth, layers = {}, {}, {}
    for node in reversed(nodes):
        depth = max(node_depth.setdefault(id(node), 0), layer_depth.get(id(node.layer), 0))
        layer_depth[id(node.layer)] = node_depth[id(node)] = depth
        layers[id(node.layer)] = node.layer
        for parent in node.parent_tensors:
            feeding = producer.get(id(parent))
            if feeding is not None:
                node_depth[id(feeding)] = max(depth + 1, node_depth.get(id(feeding), 0))
    return sorted(layers.values(), key=lambda layer: (-layer_depth[id(layer)], first_met[id(layer)]))


def _clone_from_intermediate_inputs(inputs, outputs):
    """Keras's clone_graph_nodes: a model may start from intermediate tensors (keras.io's FeatureSpace
    example trains Model(inputs=encoded_features, outputs=...)).  Each such input becomes a fresh Input of
    its shape and dtype, named ``<name>CLONE`` as in Keras, and the layer calls between the inputs and the
    outputs are replayed on it (the layers are shared, not copied).  Returns the new (inputs, outputs)."""
    mapping = {}
    for t in flatten(inputs):
        mapping[id(t)] = t if isinstance(t._history[0], InputLayer) else layer_base.Input(
            batch_shape=t.shape, dtype=t.dtype, name=f"{t.name}CLONE")
    order, visited = [], set()

    def visit(tensor):
        if id(tensor) in mapping:
            return
        layer, node_index, _ = tensor._history
        node = layer._inbound_nodes[node_index]
        if id(node) in visited:
            return
        visited.add(id(node))
        for parent in node.parent_tensors:
            visit(parent)
        order.append(node)
    for out in flatten(outputs):
        visit(out)
    for node in order:
        if isinstance(node.layer, InputLayer):
            continue  # an Input that is not among the inputs: the graph check reports it as disconnected
        args, more_args, kwargs = node.call_arguments(lambda kt: mapping.get(id(kt), kt))
        new = node.layer(args, *more_args, **kwargs)
        for old, fresh in zip(flatten(node.outputs), flatten(new)):
            mapping[id(old)] = fresh
    return (map_structure(lambda t: mapping[id(t)], inputs),
            map_structure(lambda t: mapping.get(id(t), t), outputs))
