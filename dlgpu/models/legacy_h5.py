"""Reading Keras's legacy HDF5 model files (``model.save("model.h5")``, the format before ``.keras``).

Such a file keeps the architecture as JSON in the root attribute ``model_config`` and the weights under
``model_weights/<layer>/``, one group per layer that has weights, listed in order by the attribute
``layer_names``; each group names its arrays in ``weight_names``, in the order of the layer's weights.  As
Keras's own reader does, layers with weights are matched in order, and every shape is checked before any
weight is assigned.  The compile settings (``training_config``) come back when dlgpu knows them; the
optimizer's state is not read (training resumes with a fresh one, with a warning).
"""

from __future__ import annotations

import json
import warnings

import numpy as np

from dlgpu.models.saving import SavedModelError


def is_legacy_h5(filepath):
    from dlgpu.models.keras_format import is_hdf5
    if not is_hdf5(filepath):
        return False
    import h5py
    with h5py.File(filepath, "r") as h5:
        return "model_config" in h5.attrs or "layer_names" in h5.attrs or "model_weights" in h5


def _text(value):
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def load_legacy_h5_model(filepath, custom_objects=None, compile=True):  # noqa: A002 - Keras's argument name
    import h5py
    from dlgpu.models.keras_format import _compile_from_keras, _model_from_keras_config
    from dlgpu.models.saving import _with_scope
    from dlgpu.saving import CustomObjectScope
    source = repr(str(filepath))
    with h5py.File(filepath, "r") as h5:
        if "model_config" not in h5.attrs:
            raise SavedModelError(f"{source} is a Keras HDF5 file of weights only (no model_config); build the "
                                  f"model in code and call model.load_weights on it.")
        config = json.loads(_text(h5.attrs["model_config"]))
        custom_objects = _with_scope(custom_objects)
        with CustomObjectScope(custom_objects):
            model = _model_from_keras_config(config, custom_objects, source)
            if not model.built:
                raise SavedModelError(f"{source}: the model has no input shape, so its weights cannot be loaded.")
            _assign_layer_groups(model, h5["model_weights"] if "model_weights" in h5 else h5, source)
            training = h5.attrs.get("training_config")
            if compile and training is not None:
                _compile_from_training_config(model, json.loads(_text(training)), custom_objects, source,
                                              _compile_from_keras)
                if "optimizer_weights" in h5:
                    warnings.warn(f"load_model: {source} is a legacy HDF5 file; its optimizer state is not read, so "
                                  f"training resumes with a fresh optimizer state.", stacklevel=3)
    return model


def load_legacy_h5_weights(model, filepath):
    """model.load_weights from a legacy HDF5 weights file (Keras 2's ``save_weights("w.h5")``)."""
    import h5py
    with h5py.File(filepath, "r") as h5:
        _assign_layer_groups(model, h5["model_weights"] if "model_weights" in h5 else h5, repr(str(filepath)))


def _assign_layer_groups(model, group, source):
    names = [_text(n) for n in group.attrs.get("layer_names", [])]
    saved = [(name, [np.asarray(group[name][_text(w)]) for w in group[name].attrs.get("weight_names", [])])
             for name in names]
    saved = [(name, arrays) for name, arrays in saved if arrays]
    layers = [layer for layer in model.layers if layer.weights]
    if len(saved) != len(layers):
        raise SavedModelError(f"{source} holds weights for {len(saved)} layers ({[n for n, _ in saved]}) but model "
                              f"'{model.name}' has {len(layers)} layers with weights "
                              f"({[layer.name for layer in layers]}); it was saved from a different architecture.")
    pairs = []
    for (name, arrays), layer in zip(saved, layers):
        if len(arrays) != len(layer.weights):
            raise SavedModelError(f"{source}: layer '{name}' holds {len(arrays)} weights but the model's layer "
                                  f"'{layer.name}' has {len(layer.weights)}.")
        for array, variable in zip(arrays, layer.weights):
            if tuple(array.shape) != tuple(variable.shape):
                raise SavedModelError(f"{source}: a weight of layer '{name}' has shape {tuple(array.shape)} but "
                                      f"the model's {variable.path!r} has shape {tuple(variable.shape)}.")
            pairs.append((variable, array))
    from dlgpu.backend.device import to_device
    for variable, array in pairs:  # everything checked first: a mismatch changes nothing
        variable.assign(to_device(array.astype(variable.data.dtype, copy=False), variable.device))


def _compile_from_training_config(model, training, custom_objects, source, compile_from_keras):
    settings = {key: training.get(key) for key in ("loss", "loss_weights", "metrics", "weighted_metrics")}
    optimizer = training.get("optimizer_config")
    if isinstance(optimizer, dict) and "module" not in optimizer:
        optimizer = {"module": "keras.optimizers", "registered_name": None, **optimizer}
    settings["optimizer"] = optimizer
    compile_from_keras(model, settings, custom_objects, source, None)
