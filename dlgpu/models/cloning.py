"""models.clone_model: the same architecture with freshly initialised weights, as Keras's."""

from __future__ import annotations


def clone_model(model, input_tensors=None, clone_function=None, call_function=None, recursive=False, **kwargs):
    """A new model built from ``model``'s config: same layers and shapes, new (re-initialised) weights,
    not compiled.  Keras's optional hooks (``input_tensors``, ``clone_function``, ``call_function``)
    change the graph as it is copied; dlgpu copies it as it is and says so if one is given."""
    from dlgpu import layers
    from dlgpu.models.model import Model
    unsupported = {name: value for name, value in (("input_tensors", input_tensors), ("clone_function", clone_function),
                                                   ("call_function", call_function)) if value is not None}
    if unsupported or kwargs:
        raise NotImplementedError(f"clone_model: {sorted(unsupported) + sorted(kwargs)} are not supported by dlgpu; "
                                  f"clone the model as it is and change the copy.")
    if not isinstance(model, Model):
        raise TypeError(f"clone_model: expected a dlgpu Model, received {type(model).__name__}")
    config = model.get_config()  # a subclassed model without get_config says so here
    clone = layers.deserialize({"class_name": type(model).__name__, "config": config},
                               {type(model).__name__: type(model)})
    if not clone.built and model.built and getattr(model, "_build_shapes", None) is not None:
        clone.build(model._build_shapes)
    return clone
