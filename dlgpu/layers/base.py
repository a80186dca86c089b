"""The Layer base class, InputSpec, InputLayer and Input (symbolic tensors: dlgpu/layers/keras_tensor.py).

A layer creates its weights in ``build(input_shape)`` (called once, on first use) and computes in
``call(inputs, training=None)``.  Calling a layer on a :class:`KerasTensor` (what ``Input`` returns)
records a :class:`Node` instead of computing, which is how functional models are wired.

Masks (Keras's masking, see dlgpu/layers/masking.py) ride on tensors as ``x._keras_mask``: __call__ hands
the inputs' masks to a ``call`` that takes ``mask=`` and attaches ``compute_mask``'s result to the outputs,
in eager calls and, as bool KerasTensors over the same axes, in symbolic ones.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import threading
import warnings

import numpy as np

from dlgpu import dtype_policies, ops
from dlgpu.autograd import (AutocastScope, Tensor, Variable, autocast_active, autocast_state, current_path, is_recording,
                            name_scope, no_grad)
from dlgpu.backend import device as _device
from dlgpu.operation import Operation
from dlgpu.naming import reset_names, to_snake_case, unique_name  # noqa: F401 - re-exported
from dlgpu.layers.keras_tensor import (  # noqa: F401 - re-exported: the rest of dlgpu imports them from here
    KerasTensor, Node, flatten, get_keras_mask, is_string_array, is_string_dtype, is_symbolic, map_structure,
    ordered_nodes, set_keras_mask, _structure_mask)
from dlgpu.layers.input_spec import InputSpec  # noqa: F401 - re-exported: layers import it from here
from dlgpu.layers.shape_inference import _is_shape, _map_shapes, _shapes_by_running, _to_list, _to_tuple
from dlgpu.layers.tracking import _is_metric, _TrackedDict, _TrackedList
from dlgpu.rematerialization import get_current_remat_mode, is_recomputing
from dlgpu.rematerialization import layer_call as remat_layer_call
from dlgpu.scopes import StatelessScope, SymbolicScope, get_stateless_scope


class _CallContext(threading.local):
    def __init__(self):
        self.training = None  # set by the outermost call that was given `training`
        self.depth = 0        # nesting of layer calls: 0 outside any call
        self.probing = 0      # > 0 inside calls whose results are thrown away (see probing())


_call_context = _CallContext()


@contextlib.contextmanager
def probing():
    """Calls made only to learn shapes or to check data (compute_output_shape by running, fit's dry run):
    inside them a stateful layer (stateful RNNs) starts from zeros and keeps its states unchanged, so that a
    check run on two samples neither disturbs nor trips over the states of the real batches."""
    _call_context.probing += 1
    try:
        yield
    finally:
        _call_context.probing -= 1


def is_probing():
    return _call_context.probing > 0


def _dtypes_of(inputs):
    """The dtypes of the symbolic inputs, flat in the order _map_shapes visits their shapes."""
    return [t.dtype if isinstance(t, KerasTensor) else None for t in flatten(inputs)]


def stateful_layers(layer):
    """``layer`` and the layers under it that keep states across calls (``stateful=True``), in order."""
    found, seen = [], set()

    def walk(item):
        if id(item) in seen:
            return
        seen.add(id(item))
        if getattr(item, "stateful", False) is True:
            found.append(item)
        for sub in item.__dict__.get("_layers", ()):
            walk(sub)
    walk(layer)
    return found


_LAYER_KWARGS = {"input_shape", "batch_input_shape", "batch_size", "input_dim", "dynamic", "autocast"}


class Layer(Operation):
    """Base class of every layer (and of Model)."""

    _accepts_integer_inputs = False
    _quantizable = False  # implements quantize("int8") (Dense, EinsumDense, Embedding)
    # Keras's _convert_input_args: False for functional models, whose inputs take their Input's dtype
    _convert_input_args = True

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        build = cls.__dict__.get("build")
        # Keras marks a layer built when its build() returns, also when user code calls build() itself
        # (a build with extra arguments, then Sequential([layer, ...])).  dlgpu's own layers do it already.
        if build is not None and not cls.__module__.startswith("dlgpu.") and not getattr(build, "_marks_built", 0):
            @functools.wraps(build)
            def build_and_mark(self, *args, **kw):
                result = build(self, *args, **kw)
                self.built = True
                return result
            build_and_mark._marks_built = True
            cls.build = build_and_mark
        # Keras casts only floating inputs to the layer's dtype: integer ids reach a user's own Layer or Model
        # as integers (for ops.take, segment_sum, Embedding).  dlgpu's own layers that need floats cast them.
        if not cls.__module__.startswith("dlgpu.") and "_accepts_integer_inputs" not in cls.__dict__:
            nearest = next(c for c in cls.__mro__[1:] if c.__module__.startswith("dlgpu."))
            if nearest.__name__ in ("Layer", "Model") and nearest.__module__ in ("dlgpu.layers.base",
                                                                                  "dlgpu.models.model"):
                cls._accepts_integer_inputs = True

    def __new__(cls, *args, **kwargs):
        obj = super().__new__(cls)
        object.__setattr__(obj, "_auto_config", _auto_config(cls, args, kwargs))
        return obj

    def __init__(self, trainable=True, name=None, dtype=None, activity_regularizer=None, **kwargs):
        from dlgpu import regularizers
        unknown = set(kwargs) - _LAYER_KWARGS
        if unknown:
            raise TypeError(f"{type(self).__name__}.__init__() got unexpected keyword argument(s) {sorted(unknown)}; "
                            f"valid base-layer arguments are trainable, name, dtype, activity_regularizer, "
                            f"input_shape, batch_size")
        object.__setattr__(self, "_layers", [])
        object.__setattr__(self, "_tracked_variables", [])
        object.__setattr__(self, "_metrics", [])
        self.name = name or unique_name(to_snake_case(type(self).__name__))
        # As Keras: a layer's variables go under the name scopes open when it is first built or called
        # (a Sequential's or a subclassed model's layers under the model's name), set by _open_name_scope.
        self._parent_path = None
        self._trainable = bool(trainable)
        # Keras's base Layer: a penalty on every output of every call (__call__ adds it), for any layer
        try:
            self.activity_regularizer = regularizers.get(activity_regularizer)
        except ValueError as error:
            raise ValueError(f"Layer '{self.name}' ({type(self).__name__}): invalid `activity_regularizer`: "
                             f"{error}") from None
        self.autocast = bool(kwargs.get("autocast", True))
        self.dtype_policy = self._policy_of(dtype)
        self.built = False
        self.input_spec = None
        self._checked_shape = None  # the last input shape that passed input_spec (checked once per shape)
        self._inbound_nodes = []
        self._losses = []
        self._build_shapes = None
        # Keras: the RematScope open when the layer is made; None also for RematScope(None), which turns it off
        remat = get_current_remat_mode()
        self._remat_mode = remat if remat is not None and remat.mode is not None else None
        input_shape = kwargs.get("input_shape")
        if kwargs.get("input_dim") is not None and input_shape is None:
            input_shape = (kwargs["input_dim"],)
        if input_shape is not None:
            self._batch_input_shape = (kwargs.get("batch_size"),) + tuple(input_shape)
        elif kwargs.get("batch_input_shape") is not None:
            self._batch_input_shape = tuple(kwargs["batch_input_shape"])
        else:
            self._batch_input_shape = None
        params = inspect.signature(self.call).parameters
        self._call_takes_training = "training" in params or any(
            p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
        self._call_takes_mask = "mask" in params
        # Keras lets the first input come by keyword too, layer(logits=x, targets=t) (keras.io's endpoint
        # layer pattern); the name of call's first parameter says which keyword that is.
        first = next(iter(params.values()), None)
        self._call_first_arg = first.name if first is not None and first.kind in (
            inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD) else None
        # Keras's rule: a layer that overrides compute_mask supports masking; others set supports_masking.
        self._computes_mask = type(self).compute_mask is not Layer.compute_mask
        self._supports_masking = self._computes_mask

    # -- dtype policy: the dtype the layer computes in, and the one its variables are stored in ------------
    def _policy_of(self, dtype):
        try:
            return dtype_policies.get(dtype)
        except (TypeError, ValueError, NotImplementedError) as error:
            raise type(error)(f"Layer '{self.name}' ({type(self).__name__}): invalid `dtype`: {error}") from None

    @property
    def dtype_policy(self):
        return self._dtype_policy

    @dtype_policy.setter
    def dtype_policy(self, value):
        policy = self._policy_of(value)
        mode = policy.quantization_mode
        if mode is not None and not getattr(self, "_is_quantized", False):
            self._accept_quantized_policy(policy)
        compute = policy.compute_dtype
        object.__setattr__(self, "_dtype_policy", policy)
        # Read on every call, so kept as plain attributes: the float dtype inputs are cast to (None for an
        # integer, bool or string policy) and whether the layer computes in another dtype than its variables.
        object.__setattr__(self, "_compute_float", np.dtype(compute) if compute.startswith("float") else None)
        object.__setattr__(self, "_mixed", compute != policy.variable_dtype)

    def _accept_quantized_policy(self, policy):
        """A quantized policy ("int8_from_float32") given to a layer that is not quantized yet: a layer that
        can be quantized builds quantized variables (from a saved config) or, built already, is quantized
        now, as Keras does; any other layer refuses it."""
        from dlgpu.layers import quantized
        if not self._quantizable:
            raise NotImplementedError(f"Layer '{self.name}' ({type(self).__name__}): dtype policy '{policy.name}' is "
                                      f"quantized, and dlgpu quantizes only Dense, EinsumDense and Embedding.")
        quantized.refuse_mode(self, policy.quantization_mode)
        if self.__dict__.get("built"):
            self.quantize(policy.quantization_mode)

    @property
    def quantization_mode(self):
        """The quantization mode of this layer ("int8"), None if it is not quantized."""
        return self._dtype_policy.quantization_mode

    def quantize(self, mode=None, type_check=True, config=None):
        """Keras's layer.quantize: only Dense, EinsumDense and Embedding implement it (dlgpu/layers/quantized.py)."""
        from dlgpu.layers import quantized
        mode, config = quantized.resolve_config(mode, config)
        quantized.check_quantize_args(self, mode)
        raise quantized.not_implemented(self, "quantize")

    @property
    def dtype(self):
        """The dtype of the layer's variables (Keras 3: an alias of variable_dtype)."""
        return self._dtype_policy.variable_dtype

    @dtype.setter
    def dtype(self, value):
        self.dtype_policy = value

    @property
    def compute_dtype(self):
        """The dtype of the layer's computations: its float inputs are cast to it."""
        return self._dtype_policy.compute_dtype

    @property
    def variable_dtype(self):
        """The dtype of the layer's variables."""
        return self._dtype_policy.variable_dtype

    @property
    def input_dtype(self):
        return self._dtype_policy.compute_dtype

    # -- attribute tracking: sub-layers and variables assigned as attributes -----------------
    def __setattr__(self, name, value):
        if "_layers" in self.__dict__ and not name.startswith("__"):
            # A plain list or dict is held as a tracked one, so that layers put in it later count as well
            # (``self.blocks = []`` then ``self.blocks.append(Block())`` in build), as Keras's TrackedList.
            # Private names keep the plain containers and the old rule (list and tuple items, no dict values):
            # dlgpu's own registries (a Sequential's _stack, a model's per-output loss trackers) track by hand.
            public = not name.startswith("_")
            if type(value) is list and public:
                value = _TrackedList(value, self)
            elif type(value) is dict and public:
                value = _TrackedDict(value, self)
            self._track(value.values() if isinstance(value, dict) and public else () if isinstance(value, dict)
                        else value if isinstance(value, (list, tuple)) else [value], nested=public)
        object.__setattr__(self, name, value)

    def _track(self, items, nested=True, depth=0):
        for item in items:
            if nested and isinstance(item, (list, tuple, dict)) and depth < 8:
                # nested containers in public attributes count too, as Keras tracks them:
                # self.blocks = [[Dense(...)], Dense(...)] trains both
                self._track(item.values() if isinstance(item, dict) else item, nested, depth + 1)
            elif isinstance(item, Layer) and item is not self and not any(item is l for l in self._layers):
                self._layers.append(item)
            elif isinstance(item, Variable) and not any(item is v for v in self._tracked_variables):
                self._tracked_variables.append(item)
            elif _is_metric(item) and not any(item is m for m in self._metrics):
                self._metrics.append(item)

    @property
    def metrics(self):
        """The Metric objects assigned to this layer's attributes and its sub-layers' (Keras: a layer that
        updates ``self.accuracy_metric`` in call() has its result logged by fit and evaluate)."""
        out = list(self.__dict__.get("_metrics", ()))
        for layer in self._layers:
            out.extend(m for m in layer.metrics if all(m is not k for k in out))
        return out

    # -- weights ------------------------------------------------------------------------------
    def add_weight(self, shape=None, initializer="glorot_uniform", dtype=None, trainable=True, name=None,
                   regularizer=None, constraint=None, autocast=True, **kwargs):
        from dlgpu import constraints, initializers, regularizers
        shape = tuple(int(s) for s in (shape or ()))
        init = initializers.get(initializer)
        dtype = dtype or self._dtype_policy.variable_dtype
        value = init(shape, dtype) if callable(init) else init
        with self._open_name_scope():
            variable = Variable(value, dtype=dtype, trainable=trainable,
                                name=name, regularizer=regularizers.get(regularizer),
                                constraint=constraints.get(constraint), autocast=autocast)
        if not any(variable is v for v in self._tracked_variables):
            self._tracked_variables.append(variable)
        return variable

    def add_variable(self, shape, initializer, dtype=None, trainable=True, autocast=True, regularizer=None,
                     constraint=None, name=None):
        """Keras 3's add_weight with its initializer required (keras.layers.Layer.add_variable)."""
        return self.add_weight(shape=shape, initializer=initializer, dtype=dtype, trainable=trainable, name=name,
                               regularizer=regularizer, constraint=constraint, autocast=autocast)

    def symbolic_call(self, *args, **kwargs):
        """Keras's Operation.symbolic_call: a layer's call on KerasTensors is its own graph node."""
        return self(*args, **kwargs)

    def stateless_call(self, trainable_variables, non_trainable_variables, *args, return_losses=False, **kwargs):
        """Keras's functional call: the layer run with these values for its trainable and non-trainable
        variables (in ``trainable_variables`` / ``non_trainable_variables`` order), which stay unchanged.
        Returns ``(outputs, non_trainable_variables)`` with the values the call left (BatchNormalization's
        updated statistics), and the losses too with ``return_losses``.  A gradient with respect to a value
        given as a watched Tensor sees the call (see dlgpu/scopes.py)."""
        if not self.built:
            raise ValueError(f"To call stateless_call, {type(self).__name__} must be built (i.e. its variables "
                             f"must have been already created). You can build it by calling it on some data.")
        for given, own, which in ((trainable_variables, self.trainable_variables, "trainable_variables"),
                                  (non_trainable_variables, self.non_trainable_variables, "non_trainable_variables")):
            if len(given) != len(own):
                raise ValueError(f"Argument `{which}` must be a list of tensors corresponding 1:1 to "
                                 f"{type(self).__name__}().{which}. Received list with length {len(given)}, but "
                                 f"expected {len(own)} variables.")
        mapping = list(zip(self.trainable_variables, trainable_variables)) + \
            list(zip(self.non_trainable_variables, non_trainable_variables))
        with StatelessScope(state_mapping=mapping, collect_losses=return_losses) as scope:
            outputs = self(*args, **kwargs)
            losses = (list(scope.losses) + [v._regularizer(v) for v in self.trainable_weights
                                            if v._regularizer is not None]) if return_losses else []
        scope._repoint(flatten(outputs) + losses)
        new_non_trainable = [scope.get_current_value(v) for v in self.non_trainable_variables]
        if return_losses:
            return outputs, new_non_trainable, losses
        return outputs, new_non_trainable

    def compute_output_spec(self, *args, **kwargs):
        """KerasTensors shaped and typed like this layer's outputs for these inputs (KerasTensors or arrays),
        without adding the call to any graph, as Keras's compute_output_spec."""
        def symbolic(value):
            if isinstance(value, KerasTensor) or not (hasattr(value, "shape") and hasattr(value, "dtype")):
                return value
            return KerasTensor(tuple(value.shape), str(value.dtype))
        args = map_structure(symbolic, args)
        kwargs = {key: map_structure(symbolic, value) for key, value in kwargs.items()}
        calls = len(self._inbound_nodes)
        outputs = self._symbolic_call(*args, **kwargs)
        del self._inbound_nodes[calls:]  # a probe, not a call in a graph
        return map_structure(lambda t: KerasTensor(t.shape, t.dtype), outputs)

    def _get_constraint(self, argument, identifier):
        """constraints.get(identifier), its error naming the layer and the argument."""
        from dlgpu import constraints
        try:
            return constraints.get(identifier)
        except ValueError as error:
            raise ValueError(f"Layer '{self.name}' ({type(self).__name__}): invalid `{argument}`: {error}") from None

    @property
    def trainable(self):
        return self._trainable

    @trainable.setter
    def trainable(self, value):
        self._trainable = bool(value)
        for layer in self._layers:
            layer.trainable = value

    def _all_variables(self, seen=None):
        seen = set() if seen is None else seen
        out = []
        for v in self._tracked_variables:
            if id(v) not in seen:
                seen.add(id(v))
                out.append(v)
        for layer in self._layers:
            out.extend(layer._all_variables(seen))
        return out

    @property
    def variables(self):
        return self._all_variables()

    weights = variables

    @property
    def trainable_variables(self):
        return self._collect(trainable=True)

    trainable_weights = trainable_variables

    @property
    def non_trainable_variables(self):
        return self._collect(trainable=False)

    non_trainable_weights = non_trainable_variables

    def _collect(self, trainable, seen=None):
        """Variables split by effective trainability: a frozen layer freezes all its weights."""
        seen = set() if seen is None else seen
        out = []
        for v in self._tracked_variables:
            if id(v) in seen:
                continue
            effective = v.trainable and self._trainable
            if effective == trainable:
                seen.add(id(v))
                out.append(v)
        for layer in self._layers:
            if not self._trainable and trainable:
                continue
            if not self._trainable and not trainable:
                for v in layer._all_variables():
                    if id(v) not in seen:
                        seen.add(id(v))
                        out.append(v)
                continue
            out.extend(layer._collect(trainable, seen))
        return out

    def get_weights(self):
        """Copies of the weights: on the CPU ``Variable.numpy()`` is a view of the live array, and a caller
        keeping these (EarlyStopping's best weights) must not see later optimizer steps."""
        out = []
        for v in self.weights:
            a = v.numpy()
            on_host = isinstance(v.data, np.ndarray)  # a GPU weight's .numpy() is already a copy
            out.append(a.copy() if on_host and (a is v.data or np.shares_memory(a, v.data)) else a)
        return out

    def set_weights(self, weights):
        params = self.weights
        if len(weights) != len(params):
            raise ValueError(f"Layer '{self.name}' expects {len(params)} weight arrays but received {len(weights)}.")
        for v, w in zip(params, weights):
            w = np.asarray(w)
            if tuple(w.shape) != v.shape:
                raise ValueError(f"Layer '{self.name}': weight '{v.path}' has shape {v.shape}, received {tuple(w.shape)}.")
        for v, w in zip(params, weights):
            v.assign(_device.to_device(np.asarray(w, dtype=v.data.dtype), v.device))

    # -- the layer's place in functional graphs -----------------------------------------------------
    @property
    def input(self):
        """The symbolic input of the layer's first call in a functional graph (Keras: node 0)."""
        return self._first_node("input").inputs

    @property
    def output(self):
        """The symbolic output of the layer's first call in a functional graph, e.g. to build a feature
        extractor: ``Model(model.inputs, model.get_layer("conv").output)``."""
        return self._first_node("output").outputs

    def _first_node(self, what):
        nodes = self.__dict__.get("_inbound_nodes")
        if not nodes:
            raise AttributeError(f"Layer '{self.name}' has never been called on a symbolic input (dlgpu.Input) and "
                                 f"thus has no defined {what}.")
        return nodes[0]

    def count_params(self):
        if not self.built:
            raise ValueError(f"You tried to call `count_params` on layer '{self.name}', but the layer isn't built. "
                             f"Build it first by calling it on data or with build(input_shape).")
        return int(sum(int(np.prod(v.shape)) for v in self.weights))

    # -- losses added during the forward pass (activity regularizers, add_loss) ---------------
    def add_loss(self, loss):
        if is_recomputing():  # a rematerialized call's rerun: its first run added the term
            return
        scope = get_stateless_scope()
        if scope is not None:  # Keras: collected by a scope that asks for them, else dropped
            if scope.collect_losses:
                scope.add_loss(loss)
            return
        self._losses.append(loss)

    def _add_activity_loss(self, regularizer, outputs):
        """Keras's Layer: regularizer(output) for each output tensor, divided by its batch size (Keras >= 3.14,
        so that the penalty's weight does not grow with the batch); an empty batch adds zero."""
        for output in flatten(outputs):
            if not isinstance(output, Tensor):
                continue
            loss = regularizer(output)
            if output.ndim > 0:
                batch = output.shape[0]
                loss = ops.multiply(loss, 1.0 / batch) if batch else ops.multiply(loss, 0.0)
            self.add_loss(loss)

    @property
    def losses(self):
        """As Keras orders them: the losses added during the last call (this layer's, then its sublayers'),
        then the regularization penalty of each trainable weight, in ``trainable_weights`` order (a frozen
        layer's weights are not penalized)."""
        return self._call_losses() + [v._regularizer(v) for v in self.trainable_weights if v._regularizer is not None]

    def _call_losses(self):
        out = list(self._losses)
        for layer in self._layers:
            out.extend(layer._call_losses())
        return out

    def _clear_losses(self):
        self._losses = []
        for layer in self._layers:
            layer._clear_losses()

    # -- masks: which steps of a padded sequence are real (Keras's masking) ------------------------
    @property
    def supports_masking(self):
        """Whether the layer passes a mask on (compute_mask); a mask reaching a layer without it is dropped
        with a warning, as in Keras."""
        return self._supports_masking

    @supports_masking.setter
    def supports_masking(self, value):
        self._supports_masking = bool(value)

    def compute_mask(self, inputs, mask=None):
        """The mask of the output given the inputs and their mask: by default the input's mask unchanged."""
        return mask

    def _set_output_masks(self, inputs, outputs, previous_mask):
        """Keras's _set_mask_metadata: attach compute_mask's result to outputs that carry no mask yet (a
        layer may set its output's mask in call, as Masking does, or return its input unchanged)."""
        if not self._supports_masking:
            if previous_mask is not None:
                _warn_mask_dropped(self)
            return
        flat_outputs = flatten(outputs)
        if all(get_keras_mask(t) is not None for t in flat_outputs):
            return
        masks = self.compute_mask(inputs, previous_mask)
        if masks is None:
            return
        for t, m in zip(flat_outputs, flatten(masks)):
            if m is not None and isinstance(t, Tensor) and get_keras_mask(t) is None:
                t._keras_mask = m if isinstance(m, Tensor) else Tensor(m)

    # -- building and calling -----------------------------------------------------------------
    def build(self, input_shape):
        self.built = True

    def call(self, inputs, *args, **kwargs):
        raise NotImplementedError(f"Layer {type(self).__name__} must implement call()")

    def _placement(self):
        """Where this layer computes: its weights' device, or the current device before it has any."""
        for v in self._all_variables():
            return v.device
        return _device.get_device()

    def _zeros_like_shape(self, shape, dtype="float32", fill=0, steps=1):
        """A dummy input for shape and mask inference, on the layer's device: an unknown batch size is
        read as 1, any other unknown size as ``steps``.  A string dummy is a host array of empty strings, as
        string tensors live on the host (lookup layers map them to indices there)."""
        dims = tuple((1 if i == 0 else steps) if s is None else s for i, s in enumerate(shape))
        if is_string_dtype(dtype):
            return np.full(dims, "", dtype=object)
        host = np.full(dims, fill, dtype)
        return Tensor(_device.to_device(host, self._placement()), dtype=host.dtype)

    def compute_output_shape(self, input_shape):
        """Shape inference by running the layer on zeros (built-in layers override with a formula)."""
        return self._output_shape_by_running(input_shape)

    def _output_shape_by_running(self, input_shape, mask_shapes=None, dtypes=None):
        """``dtypes``: the inputs' dtypes in the order of their shapes (float32 where not given), so that
        a layer fed strings or integers runs on dummies of the kind it will see."""
        def run(steps):
            dtype_of = iter(dtypes or ())

            def zeros_for(shape):
                return self._zeros_like_shape(shape, next(dtype_of, None) or "float32", steps=steps)
            dummy = _map_shapes(zeros_for, input_shape)  # a tuple of shapes (z_mean, z_log_var) is two inputs
            extra = {"training": False} if self._call_takes_training else {}
            if mask_shapes is not None:
                extra["mask"] = _map_shapes(
                    lambda m: None if m is None else self._zeros_like_shape(m, "bool", fill=True, steps=steps),
                    mask_shapes)
            with no_grad(), probing(), SymbolicScope():
                return self.call(dummy, **extra)
        return _shapes_by_running(run, input_shape, self)

    def _symbolic_output_shape(self, inputs, shapes, kwargs):
        """compute_output_shape; but a mask-consuming call that infers its shape by running gets an all-True
        mask when the inputs carry one, as Keras passes the mask to call in a symbolic call too."""
        if (self._call_takes_mask and kwargs.get("mask") is None
                and type(self).compute_output_shape is Layer.compute_output_shape):
            previous = inputs._keras_mask if isinstance(inputs, KerasTensor) else _structure_mask(inputs)
            if previous is not None:
                return self._output_shape_by_running(shapes, map_structure(lambda m: None if m is None else m.shape,
                                                                           previous), _dtypes_of(inputs))
        if type(self).compute_output_shape is Layer.compute_output_shape:
            return self._output_shape_by_running(shapes, dtypes=_dtypes_of(inputs))
        return self.compute_output_shape(shapes)

    def _maybe_build(self, input_shape):
        if not self.built:
            if self.input_spec is not None and _is_shape(input_shape):
                self.input_spec.check(self.name, input_shape)
            self._build_shapes = input_shape
            with self._open_name_scope():
                self.build(input_shape)
            self.built = True

    def _open_name_scope(self):
        """This layer's name scope, under the path that was open when it was first built or called."""
        if self._parent_path is None:
            self._parent_path = current_path()
        return name_scope(self.name, caller=self)

    def __call__(self, *args, **kwargs):
        # Under the layer's name scope while it or a sublayer may still create variables; a built leaf
        # layer (most calls of a training step) skips it.
        if self.built and not self._layers:
            return self._call(*args, **kwargs)
        with self._open_name_scope():
            return self._call(*args, **kwargs)

    def _call(self, *args, **kwargs):
        if not args:
            if self._call_first_arg not in kwargs:
                raise ValueError(f"Layer '{self.name}' was called without inputs.")
            args = (kwargs.pop(self._call_first_arg),)
        inputs = args[0]
        if not isinstance(inputs, (Tensor, KerasTensor, list, tuple, dict)) and inputs is not None:
            inputs = self._convert_input(inputs)  # one array: a tensor from here on
        if isinstance(inputs, Tensor):  # the common case, kept short: it runs for every layer every step
            previous_mask = getattr(inputs, "_keras_mask", None)
            inputs = self._accept_tensor(inputs)
        elif is_symbolic(inputs):
            return self._symbolic_call(inputs, *args[1:], **kwargs)
        else:
            inputs = map_structure(self._convert_input, inputs)
            previous_mask = _structure_mask(inputs)
            # a string array (kept on the host) has a shape too: a Sequential starting with TextVectorization
            # builds from it
            shapes = map_structure(lambda t: t.shape if isinstance(t, Tensor) or is_string_array(t) else None,
                                   inputs)
            if not self.built:
                self._maybe_build(shapes)
        # Keras: an explicit mask= wins; else the inputs' masks go to a call that takes `mask`
        explicit_mask = kwargs.get("mask")
        if explicit_mask is not None:
            previous_mask = explicit_mask
        elif previous_mask is not None and self._call_takes_mask:
            kwargs["mask"] = previous_mask
        training = kwargs.pop("training", None)
        ctx = _call_context
        outer = ctx.training
        if training is None:
            training = outer
        if self._call_takes_training:
            kwargs["training"] = training
        if ctx.depth == 0:
            # add_loss terms (activity regularizers) belong to one forward pass, as in Keras: without this
            # they would pile up across calls (predict batches, custom training loops).
            self._clear_losses()
        ctx.training = training
        ctx.depth += 1
        try:
            if self._remat_mode is not None and is_recording():
                outputs = self._rematerialized_call(inputs, args[1:], kwargs)
            elif self._mixed or autocast_active[0]:  # one comparison for a float32 layer outside mixed models
                outputs = self._call_autocast(inputs, args[1:], kwargs)
            else:
                outputs = self.call(inputs, *args[1:], **kwargs)
        finally:
            ctx.training = outer
            ctx.depth -= 1
        if self.activity_regularizer is not None:
            self._add_activity_loss(self.activity_regularizer, outputs)
        if previous_mask is not None or self._computes_mask:  # nothing to do, and no cost, without masks
            self._set_output_masks(inputs, outputs, previous_mask)
        return outputs

    def _rematerialized_call(self, inputs, args, kwargs):
        """call() rematerialized as the RematScope this layer was made in says (dlgpu/rematerialization.py)."""
        stateful = stateful_layers(self)
        if stateful:
            raise NotImplementedError(
                f"Layer '{self.name}' ({type(self).__name__}) was made in a RematScope but holds the stateful layer "
                f"'{stateful[0].name}': recomputing its call in the backward pass would start from the states the "
                f"forward left.  Make stateful layers outside the RematScope.")

        def call(inputs, *args, **kwargs):
            if self._mixed or autocast_active[0]:
                return self._call_autocast(inputs, args, kwargs)
            return self.call(inputs, *args, **kwargs)
        shapes = map_structure(lambda t: tuple(t.shape) if isinstance(t, Tensor) else None, inputs)
        return remat_layer_call(self, call, shapes)(inputs, *args, **kwargs)

    def _call_autocast(self, inputs, args, kwargs):
        """call() under Keras's autocast rules: a mixed layer reads its float variables in its compute dtype
        (an AutocastScope); inside another layer's scope, a layer of another compute dtype opens its own,
        and one that computes in no float type (or autocast=False) turns it off.  The other tensor
        arguments (MultiHeadAttention's value and key) are cast as the first input was."""
        current = autocast_state.dtype
        compute = self._compute_float
        scope = None
        if current is not None:
            if not self.autocast or compute is None:
                scope = AutocastScope(None)
            elif current != compute:
                scope = AutocastScope(compute)
        elif self._mixed and compute is not None:
            scope = AutocastScope(compute)
        if self.autocast and compute is not None:
            args = map_structure(self._cast_float, args) if args else args
            for key, value in kwargs.items():
                if key not in ("mask", "training") and value is not None:
                    kwargs[key] = map_structure(self._cast_float, value)
        if scope is None:
            return self.call(inputs, *args, **kwargs)
        with scope:
            return self.call(inputs, *args, **kwargs)

    def _in_compute_dtype(self, out):
        """``out`` cast to the compute dtype when it is a float tensor of another float dtype: for layers
        whose float32 constants (statistics, interpolation weights) lift a float16 input to float32."""
        compute = self._compute_float
        if compute is None or not isinstance(out, Tensor) or out.data.dtype is compute or out.data.dtype.kind != "f":
            return out
        return ops.cast(out, compute)

    def _cast_float(self, x):
        if isinstance(x, Tensor) and x.data.dtype.kind == "f" and x.data.dtype != self._compute_float:
            y = ops.cast(x, self._compute_float)
            if getattr(x, "_keras_mask", None) is not None:
                y._keras_mask = x._keras_mask
            return y
        return x

    def _accept_tensor(self, inputs):
        """One tensor input converted to this layer's dtype, shape-checked, the layer built on first use."""
        inputs = self._convert_input(inputs)
        shape = inputs.data.shape
        if not self.built:
            self._maybe_build(tuple(shape))
        elif self.input_spec is not None and shape != self._checked_shape:
            self.input_spec.check(self.name, tuple(shape))
            self._checked_shape = shape
        return inputs

    def _convert_input(self, x):
        if x is None or isinstance(x, (int, float, str, bool)) and not isinstance(x, (np.generic,)):
            return x
        if is_string_array(x):  # for a string Input of a model; host-side layers read it as it is
            return x
        t = x if isinstance(x, Tensor) else ops.convert_to_tensor(x)
        dtype = t.data.dtype
        compute = self._compute_float
        if dtype is compute:  # the common case: a float32 tensor into a float32 layer
            return t
        kind = dtype.kind
        if not self._accepts_integer_inputs and kind in "iub":
            t = ops.cast(t, self._dtype_policy.compute_dtype)
        elif kind == "f" and compute is not None and dtype != compute and self.autocast \
                and self._convert_input_args:
            t = ops.cast(t, compute)  # Keras's autocast: float inputs in the compute dtype
        else:
            return t
        mask = getattr(x, "_keras_mask", None)
        if mask is not None:  # the cast copy keeps the mask, as Keras's maybe_convert does
            t._keras_mask = mask
        return t

    def _symbolic_call(self, inputs, *args, **kwargs):
        shapes = map_structure(lambda t: t.shape if isinstance(t, KerasTensor) else None, inputs)
        if not self.built:
            self._maybe_build(shapes)
        elif self.input_spec is not None and isinstance(inputs, KerasTensor):
            self.input_spec.check(self.name, inputs.shape)
        if is_symbolic([list(args), list(kwargs.values())]):
            # Keras layers may take several tensors, call(targets, logits): compute_output_shape sees only
            # the first, so the shapes come from a call on zeros shaped like all of them.
            out_shapes = self._dummy_call_shapes(inputs, args, kwargs)
        else:
            out_shapes = self._symbolic_output_shape(inputs, shapes, kwargs)
        node_index = len(self._inbound_nodes)
        counter = iter(range(1 << 30))

        def make(shape):
            i = next(counter)
            return KerasTensor(shape, self._output_dtype(), name=self.name if i == 0 else f"{self.name}_{i}",
                               history=(self, node_index, i))
        outputs = _map_shapes(make, out_shapes)
        self._symbolic_masks(inputs, outputs, kwargs)
        self._inbound_nodes.append(Node(self, inputs, outputs, dict(kwargs), args))
        return outputs

    def _dummy_call_shapes(self, inputs, args, kwargs):
        def run(steps):
            def zeros(v):
                return self._zeros_like_shape(v.shape, v.dtype, steps=steps) if isinstance(v, KerasTensor) else v
            call_kwargs = {k: map_structure(zeros, v) for k, v in kwargs.items()}
            if self._call_takes_training:
                call_kwargs.setdefault("training", False)
            with no_grad(), probing(), SymbolicScope():
                return self.call(map_structure(zeros, inputs), *map_structure(zeros, args), **call_kwargs)
        shapes = [t.shape for t in flatten([inputs, list(args), list(kwargs.values())]) if isinstance(t, KerasTensor)]
        return _shapes_by_running(run, shapes, self)

    def _symbolic_masks(self, inputs, outputs, kwargs):
        """Give the output KerasTensors the masks an eager call would give (x._keras_mask, as in Keras).
        Only the shape of a mask is symbolic: compute_mask runs on zeros shaped like the inputs, and each
        mask it returns becomes a bool KerasTensor over the leading axes of its output (Keras masks are
        the output's shape without the feature axes: (batch, steps) for (batch, steps, features))."""
        explicit = kwargs.get("mask")
        if explicit is not None and is_symbolic(explicit):
            raise NotImplementedError(
                f"Layer '{self.name}' ({type(self).__name__}): a symbolic `mask=` argument in a functional "
                f"model is not supported; masks travel with the tensors (Embedding(mask_zero=True), Masking) "
                f"or can be passed as arrays in eager calls.")
        previous = _structure_mask(inputs) if not isinstance(inputs, KerasTensor) else inputs._keras_mask
        if not self._supports_masking:
            if previous is not None:
                _warn_mask_dropped(self)
            return
        creates = self._computes_mask or type(self)._symbolic_compute_mask is not Layer._symbolic_compute_mask
        if previous is None and not creates:
            return
        if not creates:
            masks = previous
        else:
            masks = self._symbolic_compute_mask(inputs, previous)
        if masks is None:
            return
        if isinstance(masks, KerasTensor):
            masks = [masks]
        for kt, m in zip(flatten(outputs), flatten(masks)):
            if isinstance(kt, KerasTensor) and m is not None:
                if not isinstance(m, KerasTensor):  # a new mask: its shape is the output's leading axes
                    m = KerasTensor(kt.shape[:m.ndim], "bool", name=f"{kt.name}_mask")
                kt._keras_mask = m

    def _symbolic_compute_mask(self, inputs, previous):
        """compute_mask run on zeros shaped like the inputs (None read as 1) and all-True dummy masks; an
        input mask handed through comes back as that input's KerasTensor mask."""
        originals = {}

        def zeros(kt):
            if not isinstance(kt, KerasTensor):
                return kt
            return self._zeros_like_shape(kt.shape, kt.dtype)

        def ones(kt):
            if not isinstance(kt, KerasTensor):
                return None
            t = self._zeros_like_shape(kt.shape, bool, fill=True)
            originals[id(t)] = kt
            return t
        dummies = zeros(inputs) if isinstance(inputs, KerasTensor) else map_structure(zeros, inputs)
        dummy_masks = None if previous is None else (
            ones(previous) if isinstance(previous, KerasTensor) else map_structure(ones, previous))
        with no_grad():
            result = self.compute_mask(dummies, dummy_masks)
        if result is None:
            return None
        return [None if m is None else originals.get(id(m), m) for m in flatten(result)]

    def _output_dtype(self):
        return self._dtype_policy.compute_dtype

    # -- config -------------------------------------------------------------------------------
    def get_config(self):
        # as Keras 3 writes it: the policy's config, {"module": "keras", "class_name": "DTypePolicy", ...}
        config = {"name": self.name, "trainable": self.trainable,
                  "dtype": dtype_policies.serialize(self._dtype_policy)}
        if self.activity_regularizer is not None:  # as Keras: the key only when there is a penalty
            from dlgpu import regularizers
            config["activity_regularizer"] = regularizers.serialize(self.activity_regularizer)
        if self._batch_input_shape is not None:
            config["batch_input_shape"] = list(self._batch_input_shape)
        if type(self).get_config is Layer.get_config:
            return _with_auto_config(self, config)
        return config

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def get_build_config(self):
        return {"input_shape": _to_list(self._build_shapes)} if self._build_shapes is not None else None

    def build_from_config(self, build_config):
        if build_config and build_config.get("input_shape") is not None:
            shape = _to_tuple(build_config["input_shape"])
            self._maybe_build(shape)

    # -- Keras's saving hooks: model.save and load_model call those a layer overrides ----------
    def _own_variables(self):
        """This layer's own variables (not its sublayers'), trainable first, as Keras orders its store."""
        own = self._tracked_variables
        return [v for v in own if v.trainable] + [v for v in own if not v.trainable]

    def save_own_variables(self, store):
        """Put this layer's own variables in ``store`` (a dict) under "0", "1", ..."""
        for i, v in enumerate(self._own_variables()):
            store[str(i)] = v.numpy()

    def load_own_variables(self, store):
        """Assign what save_own_variables put in ``store``; every shape is checked before anything changes."""
        own = self._own_variables()
        if len(store) != len(own):
            raise ValueError(f"Layer '{self.name}' expected {len(own)} variables, but received {len(store)} "
                             f"variables during loading. Expected: {[v.name for v in own]}")
        for i, v in enumerate(own):
            if tuple(np.shape(store[str(i)])) != v.shape:
                raise ValueError(f"Layer '{self.name}': saved variable {i} has shape {tuple(np.shape(store[str(i)]))} "
                                 f"but {v.name!r} has shape {v.shape}")
        for i, v in enumerate(own):
            v.assign(_device.to_device(np.asarray(store[str(i)], dtype=v.data.dtype), v.device))

    def __repr__(self):
        return f"<{type(self).__name__} name={self.name}, built={self.built}>"


_AUTO_CONFIG_TYPES = (str, int, float, bool, type(None))
_BASE_ARGUMENTS = ("trainable", "dtype", "activity_regularizer", "autocast", "input_shape", "batch_size")


def _auto_config(cls, args, kwargs):
    """Keras 3's auto config: the arguments a layer or model was made with, when its class has no get_config
    of its own and they are all plain values (so the object can be saved and made again from them)."""
    if cls.get_config.__qualname__ not in ("Layer.get_config", "Model.get_config", "Operation.get_config"):
        return None
    try:
        bound = inspect.signature(cls.__init__).bind(None, *args, **kwargs)
    except TypeError:
        return None
    passed = set(bound.arguments)
    bound.apply_defaults()  # as Keras: the defaults too, so the config says what the object was made with
    values = {}
    for name, value in list(bound.arguments.items())[1:]:
        if name == "name" or (name in _BASE_ARGUMENTS and name not in passed):
            continue  # the base config has these (and the name, which Keras's auto config leaves out)
        kind = inspect.signature(cls.__init__).parameters[name].kind
        if kind is inspect.Parameter.VAR_POSITIONAL:
            if value:
                return None  # positional extras have no name to be given back under
            continue
        if kind is inspect.Parameter.VAR_KEYWORD:
            values.update(value)
        else:
            values[name] = value

    def plain(v):
        if isinstance(v, (list, tuple)):
            return all(plain(x) for x in v)
        if isinstance(v, dict):
            return all(isinstance(k, str) and plain(x) for k, x in v.items())
        return isinstance(v, _AUTO_CONFIG_TYPES)
    return values if plain(values) else None


def _with_auto_config(layer, config):
    """``config`` plus the layer's auto config; base keys its __init__ cannot take are dropped (as Keras)."""
    auto = layer.__dict__.get("_auto_config")
    if auto is None:
        return config
    params = inspect.signature(type(layer).__init__).parameters
    if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        config = {k: v for k, v in config.items() if k in params}
    return {**config, **auto}


def _warn_mask_dropped(layer):
    warnings.warn(f"Layer '{layer.name}' (of type {type(layer).__name__}) was passed an input with a mask "
                  f"attached to it. However, this layer does not support masking and will therefore destroy "
                  f"the mask information. Downstream layers will not see the mask.", stacklevel=3)


class InputLayer(Layer):
    """The layer behind ``Input``: it holds the model's input KerasTensor."""

    _accepts_integer_inputs = True

    def __init__(self, shape=None, batch_size=None, dtype=None, name=None, batch_shape=None, input_shape=None, **kwargs):
        strings = is_string_dtype(dtype)
        # As Keras: the layer takes the global policy, but its tensor's dtype is its own, floatx (float32)
        # unless given, whatever that policy computes in.  Strings stay on the host as numpy arrays (never a
        # Tensor): only host-side layers (TextVectorization, StringLookup, Hashing) may take them, and they
        # hand numbers on to the rest of the graph.
        super().__init__(name=name or unique_name("input_layer"))
        self._input_dtype = "string" if strings else np.dtype(dtype or "float32").name
        shape = shape if shape is not None else input_shape
        if batch_shape is None:
            if shape is None:
                raise ValueError("Input: give `shape` (without the batch axis), e.g. Input(shape=(28, 28)).")
            if isinstance(shape, int):
                shape = (shape,)
            batch_shape = (batch_size,) + tuple(shape)
        for s in batch_shape[1:]:
            if s is not None and (not isinstance(s, (int, np.integer)) or s <= 0):
                raise ValueError(f"Input '{self.name}': shape entries must be positive integers or None; "
                                 f"received shape={tuple(batch_shape[1:])}")
        self.batch_shape = tuple(batch_shape)
        self.built = True
        tensor = KerasTensor(self.batch_shape, self.dtype, name=self.name, history=(self, 0, 0))
        self._inbound_nodes.append(Node(self, [], tensor, {}))  # `self.output` reads it back

    @property
    def dtype(self):
        return self._input_dtype

    def call(self, inputs):
        return inputs

    def get_config(self):
        return {"batch_shape": list(self.batch_shape), "dtype": self.dtype, "name": self.name}


def Input(shape=None, batch_size=None, dtype=None, name=None, batch_shape=None, **kwargs):  # noqa: N802 - Keras API
    """A symbolic input for functional models: ``x = Input(shape=(28, 28))``."""
    return InputLayer(shape=shape, batch_size=batch_size, dtype=dtype, name=name, batch_shape=batch_shape, **kwargs).output
