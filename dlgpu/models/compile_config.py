"""The compile settings a saved model keeps, as Keras 3's ``compile_config``: optimizer, loss, loss_weights
metrics and weighted_metrics as JSON, and back into ``compile`` arguments.

Losses and metrics are saved by class name and ``get_config``, dlgpu's own functions by name.  dlgpu saves
no code, so a custom function or lambda cannot be saved: it is left out with a warning naming it, and the
rest of the model still saves (Keras likewise warns when it cannot restore a compile argument).
"""

from __future__ import annotations

import json
import warnings

from dlgpu import losses, metrics, optimizers

_LEFT_OUT = object()  # a leaf that could not be saved or restored


def compile_config(model):
    """The JSON-ready compile settings of ``model``, or None when it is not compiled."""
    if not getattr(model, "compiled", False):
        return None
    left_out = []

    def saved(serialize, what):
        return lambda spec: _saved_leaf(spec, serialize, what, left_out)
    config = {"optimizer": _none_if_left_out(saved(optimizers.serialize, "optimizer")(model.optimizer)),
              "loss": _map_spec(model._loss_config, saved(losses.serialize, "loss"), keep_positions=True),
              "loss_weights": model._loss_weights,
              "metrics": _map_spec(model._compile_metrics, saved(metrics.serialize, "metric"), keep_positions=False),
              "weighted_metrics": _map_spec(getattr(model, "_compile_weighted_metrics", None),
                                            saved(metrics.serialize, "metric"), keep_positions=False)}
    if left_out:
        warnings.warn(f"Model '{model.name}' was saved without these compile arguments, which dlgpu cannot save "
                      f"(it saves no code: only dlgpu's own losses, metrics and optimizers, and classes with "
                      f"get_config): {', '.join(left_out)}. After load_model, call compile() again with them.",
                      stacklevel=4)
    return config


def compile_arguments(config, custom_objects, source):
    """``compile`` keyword arguments from a saved compile config, or None when there is nothing to compile
    with (no config, or no optimizer).  What cannot be restored is left out with a warning."""
    if not config or config.get("optimizer") is None:
        return None
    left_out = []

    def restored(deserialize, what):
        return lambda spec: _restored_leaf(spec, deserialize, custom_objects, what, left_out)
    optimizer = restored(optimizers.deserialize, "optimizer")(config["optimizer"])
    if optimizer is _LEFT_OUT:
        warnings.warn(f"load_model: {source!r} is loaded uncompiled, its {left_out[0]} could not be restored. "
                      f"Pass the class in custom_objects, or compile the model yourself.", stacklevel=4)
        return None
    arguments = {"optimizer": optimizer,
                 "loss": _map_spec(config.get("loss"), restored(losses.deserialize, "loss"), keep_positions=True),
                 "loss_weights": config.get("loss_weights"),
                 "metrics": _map_spec(config.get("metrics"), restored(metrics.deserialize, "metric"),
                                      keep_positions=False),
                 "weighted_metrics": _map_spec(config.get("weighted_metrics"),
                                               restored(metrics.deserialize, "metric"), keep_positions=False)}
    if left_out:
        warnings.warn(f"load_model: {source!r} is compiled without these compile arguments, which could not be "
                      f"restored: {'; '.join(left_out)}. Pass their classes in custom_objects, or call compile() "
                      f"again with them.", stacklevel=4)
    return arguments


def _map_spec(spec, leaf, keep_positions):
    """``spec`` (one entry, or a list or dict of them, nested) with ``leaf`` applied to each entry.  An entry
    left out becomes None where positions matter (losses, one per output) and is dropped from lists
    otherwise (metrics)."""
    def walk(part):
        if isinstance(part, dict) and "class_name" not in part:  # output names, not a serialized object
            return {name: _none_if_left_out(walk(entry)) for name, entry in part.items()}
        if isinstance(part, (list, tuple)):
            entries = [walk(entry) for entry in part]
            if keep_positions:
                return [_none_if_left_out(e) for e in entries]
            return [e for e in entries if e is not _LEFT_OUT]
        return leaf(part)
    return _none_if_left_out(walk(spec))


def _none_if_left_out(value):
    return None if value is _LEFT_OUT else value


def _saved_leaf(spec, serialize, what, left_out):
    if spec is None or isinstance(spec, str):
        return spec
    try:
        saved = serialize(spec() if isinstance(spec, type) else spec)  # a class means its default instance
        json.dumps(saved)
    except (ValueError, TypeError, AttributeError, NotImplementedError):
        left_out.append(f"{what} {_label(spec)!r}")
        return _LEFT_OUT
    return saved


def _restored_leaf(saved, deserialize, custom_objects, what, left_out):
    if saved is None or isinstance(saved, str):
        return saved
    try:
        return deserialize(saved, custom_objects)
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        name = saved.get("class_name") if isinstance(saved, dict) else saved
        left_out.append(f"{what} {name!r} ({exc})")
        return _LEFT_OUT


def _label(obj):
    """How the user wrote it: a function's name ('<lambda>' for a lambda), else the class name."""
    return getattr(obj, "__name__", None) or type(obj).__name__
