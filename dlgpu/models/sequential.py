"""Sequential: a plain stack of layers, each with one input and one output."""

from __future__ import annotations

from dlgpu.layers.base import Input, InputLayer, KerasTensor, Layer, stateful_layers
from dlgpu.models import fusion
from dlgpu.models.model import Model


class Sequential(Model):
    def __init__(self, layers=None, name=None, trainable=True):
        super().__init__(name=name, trainable=trainable)
        self._functional = False
        self._stack = []
        self._input_batch_shape = None
        self.inputs, self.outputs = [], []
        for layer in layers or []:
            self.add(layer)

    def add(self, layer, rebuild=True):
        """Append a layer; with a known input shape the model is built at once (shape errors surface here)."""
        if isinstance(layer, KerasTensor) and isinstance(layer._history[0], InputLayer):
            layer = layer._history[0]
        if isinstance(layer, InputLayer):
            if self._stack or self._input_batch_shape is not None:
                raise ValueError(f"Sequential '{self.name}': an Input can only be the first entry.")
            self._input_batch_shape = layer.batch_shape
            return
        if not isinstance(layer, Layer):
            raise TypeError(f"Sequential.add expects a dlgpu Layer; received {layer!r} ({type(layer).__name__})")
        if not self._stack and self._input_batch_shape is None and layer._batch_input_shape is not None:
            self._input_batch_shape = layer._batch_input_shape
        self._stack.append(layer)
        self._layers.append(layer)
        if rebuild and self._input_batch_shape is not None:
            if self.built and self.outputs:
                with self._open_name_scope():
                    self.outputs = [layer(self.outputs[0])]  # extend the symbolic graph by one call
            else:
                self._build_graph(self._input_batch_shape)

    def pop(self):
        if not self._stack:
            raise IndexError(f"Sequential '{self.name}' has no layers to pop.")
        layer = self._stack.pop()
        self._layers.remove(layer)
        self.built = False
        if self._stack and self._input_batch_shape is not None:
            self._build_graph(self._input_batch_shape)
        return layer

    @property
    def layers(self):
        return list(self._stack)

    # As Keras: a Sequential called inside another model answers with that first call's tensors, so that a
    # feature extractor over the outer model reaches it; one never called answers with its own graph's ends.
    @property
    def input(self):
        return Layer.input.fget(self) if self.__dict__.get("_inbound_nodes") else super().input

    @property
    def output(self):
        return Layer.output.fget(self) if self.__dict__.get("_inbound_nodes") else super().output

    def _build_graph(self, batch_shape):
        """Wire the stack symbolically from an Input: builds every layer and gives each an output shape."""
        x = Input(batch_shape=tuple(batch_shape), dtype="string" if self._starts_with_strings() else None)
        self.inputs = [x]
        with self._open_name_scope():  # the layers' variables under the model's name, as in Keras
            for layer in self._stack:
                x = layer(x)
        self.outputs = [x]
        self._build_shapes = tuple(batch_shape)
        self.built = True

    def _starts_with_strings(self):
        """Whether the first layer takes strings (TextVectorization, StringLookup): Keras builds the Input with
        the first layer's compute dtype, which is "string" for those."""
        from dlgpu.layers.lookup import _HostLayer
        first = self._stack[0] if self._stack else None
        return isinstance(first, _HostLayer) and not first._takes_numbers()

    def _takes_strings(self):
        return super()._takes_strings() if self.inputs else self._starts_with_strings()

    def build(self, input_shape=None):
        shape = tuple(input_shape) if input_shape is not None else self._input_batch_shape
        if shape is None:
            raise ValueError(f"Sequential '{self.name}': build() needs an input shape, e.g. build((None, 784)).")
        if not self._stack:
            raise ValueError(f"Sequential '{self.name}' has no layers to build.")
        self._input_batch_shape = shape
        self._build_graph(shape)

    def _maybe_build(self, input_shape):
        if isinstance(input_shape, dict):
            # Keras's Sequential builds no graph for inputs that are not one tensor (a preprocessing dict of
            # images and bounding boxes): its layers then run in turn
            return
        if not self.built:
            # the batch axis stays free, unless a stateful layer needs it fixed (Keras keeps the first call's)
            batch = input_shape[0] if stateful_layers(self) else None
            self.build((batch,) + tuple(input_shape[1:]))

    def call(self, inputs, training=None, mask=None):
        if not self._stack:
            raise ValueError(f"Sequential '{self.name}' has no layers; add some with .add(layer).")
        if mask is not None:
            from dlgpu.models.model import _attach_masks
            _attach_masks(inputs, mask)
        return fusion.run_sequence(self._stack, inputs, training)

    def compute_output_shape(self, input_shape):
        shape = input_shape
        for layer in self._stack:
            shape = layer.compute_output_shape(shape)
        return shape

    def get_config(self):
        from dlgpu.saving import serialize_keras_object
        # Each layer with its build_config, as Keras: a layer whose build needs more than the input shape
        # (a custom build_from_config) is rebuilt by it before the model builds.
        from dlgpu import dtype_policies
        config = {"name": self.name, "trainable": self.trainable,
                  "dtype": dtype_policies.serialize(self.dtype_policy),
                  "layers": [serialize_keras_object(l) for l in self._stack]}
        if self._input_batch_shape is not None:
            config["build_input_shape"] = list(self._input_batch_shape)
        return config

    @classmethod
    def from_config(cls, config, custom_objects=None):
        from dlgpu import layers as layers_module
        model = cls(name=config.get("name"), trainable=config.get("trainable", True))
        if config.get("dtype") is not None:  # the model's own policy (compile wraps the optimizer by it)
            model.dtype_policy = config["dtype"]
        for entry in config.get("layers", []):
            model.add(layers_module.deserialize(entry, custom_objects), rebuild=False)
        if config.get("build_input_shape") is not None:
            model.build(tuple(config["build_input_shape"]))
        return model
