"""Keras's legacy HDF5 model files (``model.save("model.h5")``, the format before ``.keras``): read, and
written by model.save for a ``.h5`` name.

Such a file keeps the architecture as JSON in the root attribute ``model_config`` and the weights under
``model_weights/<layer>/``, one group per layer, listed in order by the attribute ``layer_names``; each
group names its arrays in ``weight_names``, in the order of the layer's weights.  Keras's published
application weights are files of this layout without the architecture.  Layers with weights are matched
by name, or in order as Keras's own reader does, and every shape is checked before any weight is
assigned.  The compile settings (``training_config``) come back when dlgpu knows them; the
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
    with _h5py("pip install h5py").File(filepath, "r") as h5:
        return "model_config" in h5.attrs or "layer_names" in h5.attrs or "model_weights" in h5


def _text(value):
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def load_legacy_h5_model(filepath, custom_objects=None, compile=True):  # noqa: A002 - Keras's argument name
    import h5py
    from dlgpu.models.keras_format import _model_from_keras_config
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
            load_legacy_h5_weights(model, filepath)
            training = h5.attrs.get("training_config")
            if compile and training is not None:
                _compile_from_training_config(model, json.loads(_text(training)), custom_objects, source)
                if "optimizer_weights" in h5:
                    warnings.warn(f"load_model: {source} is a legacy HDF5 file; its optimizer state is not read, so "
                                  f"training resumes with a fresh optimizer state.", stacklevel=3)
    return model


def _h5py(install_hint):
    try:
        import h5py
    except ImportError as e:
        raise ImportError(f"Reading Keras's .h5 files needs h5py: {install_hint}") from e
    return h5py


def read_legacy_h5(path, install_hint="pip install h5py"):
    """``{layer name: [weight arrays]}`` from a Keras legacy .h5 file (weights alone, or a whole model's
    ``model_weights``), in the file's layer order, layers without weights left out."""
    with _h5py(install_hint).File(path, "r") as f:
        group = f
        if "layer_names" not in group.attrs and "model_weights" in group:
            group = group["model_weights"]
        if "layer_names" not in group.attrs:
            raise ValueError(
                f"{path}: not a Keras legacy .h5 weights file (no 'layer_names' attribute). Keras 3's "
                "'.weights.h5' and '.keras' files are read by model.load_weights and load_model.")
        out = {}
        for name in (_text(n) for n in group.attrs["layer_names"]):
            layer_group = group[name]
            names = [_text(w) for w in layer_group.attrs.get("weight_names", [])]
            if names:
                out[name] = [np.asarray(layer_group[w]) for w in names]
        return out


def _stored_arrays(layer, arrays):
    """The file's arrays for ``layer``, less what Keras stores and dlgpu does not keep: Normalization's
    integer ``count`` (EfficientNet's stem), which nothing reads."""
    from dlgpu.layers import Normalization
    if isinstance(layer, Normalization) and len(arrays) == len(layer.weights) + 1 and arrays[-1].ndim == 0:
        return arrays[:-1]
    return arrays


def load_legacy_h5_weights(model, path, install_hint="pip install h5py"):
    """Set the weights of ``model``'s layers from a Keras legacy .h5 file.

    Layers are matched by name when the file has every name the model's weighted layers carry; otherwise,
    when the file holds as many weighted layers as the model, by order (``model.layers``, Keras's order),
    as Keras's own legacy loader always does (InceptionV3's published file names its layers ``conv2d_1``
    ...: names Keras generated, which no two sessions share).  Every layer is checked before any changes.
    """
    stored = read_legacy_h5(path, install_hint)
    weighted = [layer for layer in model.layers if layer.weights]
    if all(layer.name in stored for layer in weighted) or len(stored) != len(weighted):
        pairs = [(layer, layer.name) for layer in weighted]
    else:
        pairs = list(zip(weighted, stored))
    pending = []
    for layer, stored_name in pairs:
        params = layer.weights
        if stored_name not in stored:
            raise ValueError(f"{path}: no weights for layer '{layer.name}' ({type(layer).__name__}) of model "
                             f"'{model.name}'; the file holds layers {sorted(stored)[:8]}"
                             f"{' ...' if len(stored) > 8 else ''} ({len(stored)} with weights, the model has "
                             f"{len(weighted)}). Was it saved from another architecture?")
        arrays = _stored_arrays(layer, stored[stored_name])
        where = f"layer '{layer.name}'" + (f" (file layer '{stored_name}')" if stored_name != layer.name else "")
        if len(arrays) != len(params):
            raise ValueError(f"{path}: {where} has {len(params)} weights but the file holds {len(arrays)}.")
        for v, a in zip(params, arrays):
            if tuple(a.shape) != tuple(v.shape):
                raise ValueError(f"{path}: {where}: weight '{v.path}' has shape {tuple(v.shape)}, the "
                                 f"file holds {tuple(a.shape)} (another input size, `classes` or `alpha`?).")
        pending.append((layer, arrays))
    for layer, arrays in pending:
        layer.set_weights(arrays)


def _compile_from_training_config(model, training, custom_objects, source):
    from dlgpu.models.keras_format import _compile_from_keras
    settings = {key: training.get(key) for key in ("loss", "loss_weights", "metrics", "weighted_metrics")}
    optimizer = training.get("optimizer_config")
    if isinstance(optimizer, dict) and "module" not in optimizer:
        optimizer = {"module": "keras.optimizers", "registered_name": None, **optimizer}
    settings["optimizer"] = optimizer
    _compile_from_keras(model, settings, custom_objects, source, None)


def _legacy_names(spec):
    """Loss and metric functions by their names, as the legacy training_config keeps them ("mse")."""
    if isinstance(spec, dict) and spec.get("class_name") == "function":
        return spec.get("config")
    if isinstance(spec, dict) and "class_name" not in spec:
        return {key: _legacy_names(value) for key, value in spec.items()}
    if isinstance(spec, list):
        return [_legacy_names(value) for value in spec]
    return spec


def save_legacy_h5(model, filepath):
    """model.save("m.h5"): Keras's legacy HDF5 layout, which Keras 3 (and Keras 2 for the layers both
    know) reads with load_model; the optimizer's state is not written, as Keras 3 warns it is not kept."""
    import h5py
    from dlgpu.models.keras_format import _keras_model_config
    from dlgpu.models.saving import _atomic_write, _version
    entry = _keras_model_config(model)
    compile_config = entry.get("compile_config") or {}

    def write(handle):
        with h5py.File(handle, "w") as h5:
            h5.attrs["backend"] = "dlgpu"
            h5.attrs["keras_version"] = _version()
            h5.attrs["model_config"] = json.dumps({"class_name": entry["class_name"], "config": entry["config"]})
            if compile_config.get("optimizer"):
                training = {key: _legacy_names(compile_config.get(key))
                            for key in ("loss", "loss_weights", "metrics", "weighted_metrics")}
                training["optimizer_config"] = {key: compile_config["optimizer"][key]
                                                for key in ("class_name", "config")}
                h5.attrs["training_config"] = json.dumps(training)
            weights = h5.create_group("model_weights")
            weights.attrs["layer_names"] = np.array([layer.name.encode() for layer in model.layers])
            for layer in model.layers:
                group = weights.create_group(layer.name)
                names = [f"{layer.name}/{variable.name}_{i}" for i, variable in enumerate(layer.weights)]
                group.attrs["weight_names"] = np.array([name.encode() for name in names])
                for name, variable in zip(names, layer.weights):
                    group[name] = variable.numpy()
    _atomic_write(filepath, write)
