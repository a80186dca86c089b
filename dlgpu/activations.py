"""Activation functions with the Keras 3 names and signatures: thin wrappers over dlgpu.ops.

``get("relu")`` returns the function; ``fused_name(fn)`` says whether the fused dense/conv primitives
can apply it themselves (``ops.nn.ACTIVATION_NAMES``), so a layer runs one primitive instead of two.
"""

from __future__ import annotations

import functools
import inspect

from dlgpu import ops
from dlgpu.ops import nn as _nn
from dlgpu.ops._core import to_tensor
from dlgpu.layers.keras_tensor import KerasTensor
from dlgpu.utils import unknown_name_error


def relu(x, negative_slope=0.0, max_value=None, threshold=0.0):
    """max(x, 0); Keras's extra arguments give leaky, capped and shifted variants."""
    if negative_slope == 0.0 and max_value is None and threshold == 0.0:
        return ops.relu(x)
    x = to_tensor(x)
    if threshold != 0.0:
        # x where x >= threshold, else negative_slope * (x - threshold)
        below = ops.multiply(ops.subtract(x, float(threshold)), float(negative_slope))
        out = ops.where(ops.greater_equal(x, float(threshold)), x, below)
    elif negative_slope != 0.0:
        out = ops.leaky_relu(x, float(negative_slope))
    else:
        out = ops.relu(x)
    if max_value is not None:
        out = ops.minimum(out, float(max_value))
    return out


def leaky_relu(x, negative_slope=0.2):
    return ops.leaky_relu(x, negative_slope)


def relu6(x):
    return ops.relu6(x)


def elu(x, alpha=1.0):
    return ops.elu(x, alpha)


def selu(x):
    return ops.selu(x)


def softplus(x):
    return ops.softplus(x)


def softsign(x):
    return ops.softsign(x)


def silu(x):
    return ops.silu(x)


swish = silu


def gelu(x, approximate=False):
    return ops.gelu(x, approximate)


def sigmoid(x):
    """Sigmoid whose output remembers its logits, so binary cross-entropy can use the stable fused form
    (Keras's TensorFlow backend does the same with ``_keras_logits``)."""
    x = to_tensor(x)
    out = ops.sigmoid(x)
    out._logits = (x, "sigmoid")
    return out


def tanh(x):
    return ops.tanh(x)


def exponential(x):
    return ops.exp(x)


def hard_sigmoid(x):
    return ops.hard_sigmoid(x)


def hard_silu(x):
    x = to_tensor(x)
    return ops.multiply(x, ops.hard_sigmoid(x))


hard_swish = hard_silu


def linear(x):
    return x


def mish(x):
    return ops.mish(x)


def softmax(x, axis=-1):
    """Softmax; its output carries its logits so cross-entropy fuses with it."""
    return ops.softmax(x, axis=axis)


def log_softmax(x, axis=-1):
    return ops.log_softmax(x, axis=axis)


def celu(x, alpha=1.0):
    return ops.celu(x, alpha=alpha)


def glu(x, axis=-1):
    return ops.glu(x, axis=axis)


def hard_shrink(x, threshold=0.5):
    return ops.hard_shrink(x, threshold=threshold)


def hard_tanh(x):
    return ops.hard_tanh(x)


def log_sigmoid(x):
    return ops.log_sigmoid(x)


def soft_shrink(x, threshold=0.5):
    return ops.soft_shrink(x, threshold=threshold)


def sparse_plus(x):
    return ops.sparse_plus(x)


def sparse_sigmoid(x):
    return ops.sparse_sigmoid(x)


def sparsemax(x, axis=-1):
    """The simplex projection; see ``ops.sparsemax`` for where it differs from Keras 3.15 (a Keras bug)."""
    return ops.sparsemax(x, axis=axis)


def squareplus(x, b=4):
    return ops.squareplus(x, b=b)


def tanh_shrink(x):
    return ops.tanh_shrink(x)


def threshold(x, threshold, default_value):  # noqa: A002 - Keras's signature
    return ops.threshold(x, threshold, default_value)


def _takes_keras_tensors(fn):
    """``fn`` that also takes a KerasTensor, as Keras's activations (built from keras.ops) do: it becomes the
    node of the same-named op, so ``keras.activations.sigmoid(dense_output) * 5`` builds a functional model."""
    name = fn.__name__

    @functools.wraps(fn)
    def activation(x, *args, **kwargs):
        if not isinstance(x, KerasTensor):
            return fn(x, *args, **kwargs)
        if name == "linear":
            return x
        bound = inspect.signature(fn).bind(x, *args, **kwargs)
        extra = {k: v for k, v in bound.arguments.items() if k != "x"}
        if name == "relu":  # ops.relu has none of these arguments
            defaults = {"negative_slope": 0.0, "max_value": None, "threshold": 0.0}
            changed = [k for k, v in extra.items() if v != defaults[k]]
            if changed:
                raise NotImplementedError(f"activations.relu on a symbolic tensor (KerasTensor) takes only its "
                                          f"default arguments; received {changed}. Use layers.ReLU instead.")
            extra = {}
        return getattr(ops, name)(x, **extra)
    return activation


for _fn in (relu, leaky_relu, relu6, elu, selu, softplus, softsign, silu, gelu, sigmoid, tanh, exponential,
            hard_sigmoid, hard_silu, linear, mish, softmax, log_softmax, celu, glu, hard_shrink, hard_tanh,
            log_sigmoid, soft_shrink, sparse_plus, sparse_sigmoid, sparsemax, squareplus, tanh_shrink, threshold):
    globals()[_fn.__name__] = _takes_keras_tensors(_fn)
swish, hard_swish = silu, hard_silu
del _fn


_FUNCTIONS = {fn.__name__: fn for fn in (
    relu, leaky_relu, relu6, elu, selu, softplus, softsign, silu, gelu, sigmoid, tanh, exponential, hard_sigmoid,
    hard_silu, linear, mish, softmax, log_softmax, celu, glu, hard_shrink, hard_tanh, log_sigmoid, soft_shrink,
    sparse_plus, sparse_sigmoid, sparsemax, squareplus, tanh_shrink, threshold)}
_ALIASES = {"swish": "silu", "hard_swish": "hard_silu"}

# Our functions the fused dense/conv primitives compute exactly (with these functions' defaults).
_FUSABLE = {relu: "relu", sigmoid: "sigmoid", tanh: "tanh", gelu: "gelu", leaky_relu: "leaky_relu",
            linear: "linear", ops.relu: "relu", ops.sigmoid: "sigmoid", ops.tanh: "tanh"}


def fused_name(activation):
    """The primitive's name for ``activation`` when ``ops.dense``/``ops.conv2d`` can fuse it, else None.

    Accepts a string or a function; None means linear.  softmax is never fused: its output must keep
    its logits for the cross-entropy.
    """
    if activation is None:
        return "linear"
    if isinstance(activation, str):
        activation = get(activation)
    name = _FUSABLE.get(activation)
    return name if name in _nn.ACTIVATION_NAMES else None


def _unknown(identifier):
    return unknown_name_error("activation", identifier, set(_FUNCTIONS) | set(_ALIASES))


def get(identifier):
    """A function from a name, config dict or callable; None means linear."""
    if identifier is None:
        return linear
    if isinstance(identifier, str):
        name = _ALIASES.get(identifier, identifier)
        if name in _FUNCTIONS:
            return _FUNCTIONS[name]
        # A layer's from_config hands its activation here without custom_objects: a function registered
        # with register_keras_serializable (or given to custom_object_scope) is found by name.
        from dlgpu.saving import get_registered_object
        found = get_registered_object(identifier)
        if callable(found):
            return found
        raise _unknown(identifier)
    if isinstance(identifier, dict):
        return deserialize(identifier)
    if callable(identifier):
        return identifier
    raise ValueError(f"Could not interpret activation function identifier: {identifier!r}")


def serialize(activation):
    """A built-in activation's name (Keras layer configs hold e.g. ``"relu"``)."""
    if activation is None:
        return "linear"
    name = getattr(activation, "__name__", None)
    if name in _FUNCTIONS and _FUNCTIONS[name] is activation:
        return name
    if activation in _FUSABLE:  # the bare ops (ops.relu …) a user may pass
        return _FUSABLE[activation]
    if hasattr(activation, "get_config"):
        return {"module": type(activation).__module__, "class_name": type(activation).__name__,
                "config": activation.get_config(), "registered_name": None}
    if callable(activation) and name and name != "<lambda>":
        # A user's function goes by name, as in Keras; loading it needs register_keras_serializable,
        # custom_objects or custom_object_scope, since no code is saved.
        from dlgpu.saving import get_registered_name
        return {"module": getattr(activation, "__module__", None), "class_name": "function", "config": name,
                "registered_name": get_registered_name(activation)}
    raise ValueError(f"Cannot serialize activation {activation!r}: dlgpu saves no code, so a lambda cannot be "
                     f"saved; define it with def (and register it with register_keras_serializable).")


def deserialize(config, custom_objects=None):
    custom_objects = custom_objects or {}
    if isinstance(config, str):
        return custom_objects.get(config) or get(config)
    if isinstance(config, dict):
        name = config.get("class_name")
        if name == "function":
            registered = config.get("registered_name")
            if isinstance(registered, str) and registered != config["config"]:
                from dlgpu.saving import get_registered_object
                found = get_registered_object(registered, custom_objects)
                if callable(found):
                    return found
            return deserialize(config["config"], custom_objects)
        if name in custom_objects:
            obj = custom_objects[name]
            return obj.from_config(config.get("config", {})) if hasattr(obj, "from_config") else obj
        if name in _FUNCTIONS or name in _ALIASES:
            return get(name)
        raise _unknown(str(name))
    raise ValueError(f"Could not deserialize activation from {config!r}")
