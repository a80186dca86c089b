"""keras.saving: load_model, save_model, registering custom classes, and serialize/deserialize_keras_object.

``serialize_keras_object`` turns a layer, model, loss, metric, optimizer, initializer, regularizer,
constraint or activation into Keras's JSON-able dict (``module``, ``class_name``, ``config``,
``registered_name``); ``deserialize_keras_object`` sends such a dict to the module it names (the
``deserialize`` of dlgpu.layers, dlgpu.losses …).  Only known classes, registered ones and
``custom_objects`` are ever made: no code is read.
"""

from __future__ import annotations

import threading

import numpy as np

from dlgpu.models.saving import SavedModelError, load_model, save_model  # noqa: F401

# Keras's global registry: "package>name" -> object, and object -> "package>name".
_REGISTERED_OBJECTS = {}
_REGISTERED_NAMES = {}


def save_weights(model, filepath, overwrite=True, max_shard_size=None, **kwargs):
    """keras.saving.save_weights: ``model.save_weights(filepath, overwrite)`` (``*.weights.h5`` in Keras 3's
    layout, other names in dlgpu's).  Sharding (``max_shard_size``) is not supported."""
    if max_shard_size is not None:
        raise NotImplementedError(f"save_weights: `max_shard_size` is not supported by dlgpu (weights are written "
                                  f"to one file). Received: max_shard_size={max_shard_size!r}")
    if kwargs:
        raise ValueError(f"save_weights: invalid keyword arguments: {sorted(kwargs)}")
    model.save_weights(filepath, overwrite=overwrite)


def load_weights(model, filepath, skip_mismatch=False, **kwargs):
    """keras.saving.load_weights: ``model.load_weights(filepath)`` from a ``.weights.h5``, ``.keras`` or dlgpu
    weights file.  ``skip_mismatch=True`` and the legacy ``by_name``/``objects_to_skip`` are refused."""
    for legacy in ("by_name", "objects_to_skip"):
        if kwargs.get(legacy) is not None:
            raise NotImplementedError(f"load_weights: `{legacy}` (legacy loading) is not supported by dlgpu.")
        kwargs.pop(legacy, None)
    if kwargs:
        raise ValueError(f"load_weights: invalid keyword arguments: {sorted(kwargs)}")
    model.load_weights(filepath, skip_mismatch=skip_mismatch)


def register_keras_serializable(package="Custom", name=None):
    """Decorator making a custom class (layer, model, regularizer, initializer, constraint...) or function
    loadable by name (no code is ever saved): under ``"package>name"`` as Keras, and under its bare name,
    which is how dlgpu's own files refer to it."""
    from dlgpu.layers import register

    def decorator(obj):
        if isinstance(obj, type) and not hasattr(obj, "get_config"):
            raise ValueError(f"register_keras_serializable: class {obj.__name__} must implement get_config() to "
                             f"be serializable.")
        registered_name = f"{package}>{name or obj.__name__}"
        _REGISTERED_OBJECTS[registered_name] = obj
        _REGISTERED_NAMES[obj] = registered_name
        return register(obj, name=name)
    return decorator


register_serializable = register_keras_serializable


def get_registered_name(obj):
    """The name ``obj`` (a class or function) was registered under ("package>name"), else its own name."""
    if obj in _REGISTERED_NAMES:
        return _REGISTERED_NAMES[obj]
    return getattr(obj, "__name__", type(obj).__name__)


def get_registered_object(name, custom_objects=None, module_objects=None):
    """The class or function registered (or given in ``custom_objects``, an enclosing custom_object_scope or
    ``module_objects``) as ``name``, or None."""
    from dlgpu.layers import _custom
    for table in (custom_objects or {}, scoped_custom_objects(), _REGISTERED_OBJECTS, _custom, module_objects or {}):
        if name in table:
            return table[name]
    return None


# Per thread, as in Keras: a scope opened in one thread must not let another thread load its classes.
_SCOPE = threading.local()


def scoped_custom_objects():
    """The objects of the custom_object_scope(s) open in this thread (inner ones win), else {}."""
    return getattr(_SCOPE, "objects", {})


class CustomObjectScope:
    """``with custom_object_scope({"MyLayer": MyLayer}):`` makes these names loadable inside the block
    (load_model, from_config, deserialize...), as if passed as ``custom_objects`` to each call."""

    def __init__(self, custom_objects=None):
        if custom_objects is not None and not isinstance(custom_objects, dict):
            raise TypeError(f"custom_object_scope: custom_objects must be a dict of name -> class or function; "
                            f"received {type(custom_objects).__name__}")
        self.custom_objects = dict(custom_objects or {})
        self._outer = None

    def __enter__(self):
        self._outer = scoped_custom_objects()
        _SCOPE.objects = {**self._outer, **self.custom_objects}
        return self

    def __exit__(self, *exc_info):
        _SCOPE.objects = self._outer


custom_object_scope = CustomObjectScope


def get_custom_objects():
    """The registry ("package>name" -> object) that register_keras_serializable fills."""
    return _REGISTERED_OBJECTS


# -- serialize / deserialize ------------------------------------------------------------------------------
def _kinds():
    """(module name, base class or None, the module, its own functions) per kind of object, in the order
    serialize tries them."""
    from dlgpu import activations, constraints, initializers, layers, losses, metrics, optimizers, regularizers
    return [("layers", layers.Layer, layers, {}),
            ("losses", losses.Loss, losses, losses._FUNCTIONS),
            ("metrics", metrics.Metric, metrics, metrics._FUNCTIONS),
            ("optimizers", optimizers.Optimizer, optimizers, {}),
            ("initializers", initializers.Initializer, initializers, {}),
            ("regularizers", regularizers.Regularizer, regularizers, {}),
            ("constraints", constraints.Constraint, constraints, {}),
            ("activations", None, activations, activations._FUNCTIONS)]


_PLAIN = (str, int, float, bool, type(None))


def serialize_keras_object(obj):
    """``obj`` as Keras's JSON-able dict; plain values, lists and dicts of them as they are."""
    if isinstance(obj, _PLAIN):
        return obj
    if isinstance(obj, (list, tuple)):
        return [serialize_keras_object(x) for x in obj]
    if isinstance(obj, dict):
        return {k: serialize_keras_object(v) for k, v in obj.items()}
    if isinstance(obj, (np.ndarray, np.generic)):
        return {"class_name": "__numpy__", "config": {"value": np.asarray(obj).tolist(),
                                                       "dtype": np.asarray(obj).dtype.name}}
    registered = _REGISTERED_NAMES.get(obj if callable(obj) and not hasattr(obj, "get_config") else type(obj))
    for kind, base, module, functions in _kinds():
        if base is not None and isinstance(obj, base):
            if kind == "layers":
                config = layer_entry(obj)
                build = obj.get_build_config()
                if build is not None:
                    config["build_config"] = build
                return config
            else:
                config = dict(module.serialize(obj))
            config["registered_name"] = registered
            return config
        name = getattr(obj, "__name__", None)
        if name in functions and functions[name] is obj:
            return {"module": f"keras.{kind}", "class_name": "function", "config": name, "registered_name": name}
    if registered is not None:  # a registered function
        return {"module": getattr(obj, "__module__", None), "class_name": "function", "config": obj.__name__,
                "registered_name": registered}
    if hasattr(obj, "get_config"):
        return {"module": type(obj).__module__, "class_name": type(obj).__name__, "config": obj.get_config(),
                "registered_name": None}
    raise TypeError(f"serialize_keras_object: cannot serialize {obj!r} ({type(obj).__name__}): not a dlgpu "
                    f"layer, loss, metric, optimizer, initializer, regularizer, constraint or activation, and it has "
                    f"no get_config(). dlgpu saves no code; register the class with register_keras_serializable "
                    f"and give it get_config().")


def layer_entry(layer):
    """A layer's ``module``, ``class_name``, ``config`` and ``registered_name``, as Keras stores each layer
    (alone, inside a wrapper, or in a model's config).  A user's class keeps its own module and its
    registered name, so it is found again under the name it was registered with."""
    cls = type(layer)
    builtin = cls.__module__.startswith("dlgpu.")
    module = "keras.distillation" if cls.__module__.startswith("dlgpu.distillation") else "keras.layers"
    return {"module": module if builtin else cls.__module__, "class_name": cls.__name__,
            "config": serialize_config_values(layer.get_config()),
            "registered_name": None if builtin else get_registered_name(cls)}


def serialize_config_values(value):
    """A get_config() dict as Keras stores it: Keras objects inside it (a sublayer, a regularizer object, a
    user's function) become serialize_keras_object dicts; plain values and arrays stay as they are."""
    if isinstance(value, dict):
        return {k: serialize_config_values(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        values = [serialize_config_values(v) for v in value]
        return tuple(values) if isinstance(value, tuple) else values
    if isinstance(value, _PLAIN) or isinstance(value, (np.ndarray, np.generic, type)):
        return value
    if hasattr(value, "get_config") or callable(value):
        return serialize_keras_object(value)
    return value


def deserialize_keras_object(config, custom_objects=None, safe_mode=True, **kwargs):
    """The object a serialize_keras_object dict describes (plain values come back as they are)."""
    module_objects = kwargs.pop("module_objects", None)
    if kwargs:
        raise TypeError(f"deserialize_keras_object: unexpected keyword argument(s) {sorted(kwargs)}")
    custom_objects = {**scoped_custom_objects(), **(custom_objects or {})}
    if isinstance(config, str):
        found = get_registered_object(config, custom_objects, module_objects)
        return config if found is None else found
    if isinstance(config, _PLAIN):
        return config
    if isinstance(config, (list, tuple)):
        return [deserialize_keras_object(x, custom_objects, safe_mode, module_objects=module_objects) for x in config]
    if not isinstance(config, dict):
        raise TypeError(f"deserialize_keras_object: expected a dict from serialize_keras_object; received "
                        f"{type(config).__name__}")
    if "class_name" not in config:
        return {k: deserialize_keras_object(v, custom_objects, safe_mode, module_objects=module_objects)
                for k, v in config.items()}
    class_name, inner = config["class_name"], config.get("config")
    if class_name == "__numpy__":
        return np.asarray(inner["value"], dtype=inner["dtype"])
    found = None
    for key in (config.get("registered_name"), inner if class_name == "function" else class_name):
        if isinstance(key, str) and found is None:
            found = get_registered_object(key, custom_objects, module_objects)
    if found is not None and class_name == "function":
        return found
    module_name = str(config.get("module") or "")
    for kind, base, module, _ in _kinds():
        if f".{kind}" in module_name or module_name.endswith(kind) or (
                found is not None and base is not None and isinstance(found, type) and issubclass(found, base)):
            if found is not None and class_name != "function":
                custom_objects.setdefault(class_name, found)
            return _with_build(module.deserialize(config, custom_objects), config)
    if found is not None:
        return found.from_config(inner or {}) if hasattr(found, "from_config") else found(**(inner or {}))
    # No module (or Keras's "keras" for models): a layer or model, as Keras files hold most often.
    from dlgpu import layers
    return _with_build(layers.deserialize(config, custom_objects), config)


def _with_build(obj, config):
    build = config.get("build_config")
    if build and hasattr(obj, "build_from_config") and not getattr(obj, "built", True):
        obj.build_from_config(build)
    return obj


def __getattr__(name):
    # KerasFileEditor reads HDF5 through keras_format: imported when first asked for, not at `import dlgpu`
    if name == "KerasFileEditor":
        from dlgpu.models.file_editor import KerasFileEditor
        return KerasFileEditor
    raise AttributeError(f"module 'dlgpu.saving' has no attribute {name!r}")
