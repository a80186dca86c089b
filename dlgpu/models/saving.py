"""Saving and loading: one ``.dlgpu`` file = a zip of config.json, metadata.json and model.weights.npz.

The architecture and compile settings are JSON (compile_config.py) and the weights an ``.npz`` read with
``allow_pickle=False``: loading never unpickles and never runs code from the file.  The npz also holds the
optimizer's variables (step counter, learning rate, slots such as Adam's moments) under ``optimizer/``, so
that fit after load_model resumes where it stopped, as with Keras's ``.keras`` files.  Files are written to
a temporary file beside the target and renamed over it, so a crash mid-save never leaves a half-written
model where a good one was.
"""

from __future__ import annotations

import io
import json
import os
import tempfile
import time
import warnings
import zipfile

import numpy as np

from dlgpu import optimizers
from dlgpu.models.compile_config import compile_arguments, compile_config

FORMAT = "dlgpu-model"
# 2: the npz may hold optimizer variables, which a version-1 reader would take for extra model weights
# ("saved from a different architecture"); it says "upgrade dlgpu" instead.  Version-1 files still load.
# 3: the file also holds what layers' own save_own_variables / save_assets wrote ("own/", "assets/"); files
# without them are still written as version 2, which older readers take.
FORMAT_VERSION = 3
_CONFIG, _METADATA, _WEIGHTS = "config.json", "metadata.json", "model.weights.npz"
# A layer that overrides save_own_variables: "own/00004:name/key" is store[key] of the 5th layer of
# _layers_in_order(model).  One that has save_assets: its files under "assets/00004:name/".
_OWN, _ASSETS = "own/", "assets/"
# Optimizer entries: "optimizer/00003:kernel_momentum" for optimizer.variables[3], and which of the model's
# weights (positions in model.weights) the optimizer was built on, in its order, to build it the same way.
_OPTIMIZER = "optimizer/"
_OPTIMIZER_BUILT_ON = _OPTIMIZER + "built_on"


class SavedModelError(ValueError):
    """A file that is not a dlgpu model, or one that is damaged or does not fit the model."""


def _atomic_write(path, write):
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise FileNotFoundError(f"Cannot save to {path!r}: the directory {directory!r} does not exist.")
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".part", dir=directory)
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def _weights_bytes(model, optimizer_arrays=None):
    arrays = {f"{i:05d}:{v.path}": v.numpy() for i, v in enumerate(model.weights)}
    arrays.update(optimizer_arrays or {})
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def _optimizer_arrays(model):
    """The optimizer's variables as npz entries; none when it has not been built (no step taken yet)."""
    optimizer = model.optimizer if getattr(model, "compiled", False) else None
    if optimizer is None or not getattr(optimizer, "built", False):
        return {}
    position = {id(v): i for i, v in enumerate(model.weights)}
    built_on = [position.get(id(v)) for v in optimizer._trainable_variables]
    if None in built_on:
        warnings.warn(f"Model '{model.name}' was saved without its optimizer's state: the optimizer also updates "
                      f"variables that are not the model's; training after load_model starts a fresh optimizer.",
                      stacklevel=4)
        return {}
    store = {}
    optimizer.save_own_variables(store)
    arrays = {f"{_OPTIMIZER}{i:05d}:{var.name}": store[str(i)] for i, var in enumerate(optimizer.variables)}
    arrays[_OPTIMIZER_BUILT_ON] = np.asarray(built_on, np.int64)
    return arrays


def save_model(model, filepath, overwrite=True):
    """``.keras``: Keras 3's own format (keras_format.py), which Keras's load_model opens, when the model can
    be written in it (else dlgpu's format, with a warning saying why); ``.h5``: Keras's legacy HDF5 layout
    (legacy_h5.py) under the same condition; any other name: dlgpu's format."""
    filepath = os.fspath(filepath)
    from dlgpu.models import keras_format
    if not overwrite and os.path.exists(filepath):
        raise FileExistsError(f"{filepath!r} exists; pass overwrite=True to replace it.")
    if not model.built:
        raise ValueError(f"Model '{model.name}' is not built yet, so it has no weights to save; call it on data, "
                         f"fit it, or build(input_shape) first.")
    legacy = filepath.endswith((".h5", ".hdf5"))
    if keras_format.is_keras_path(filepath) or legacy:
        refusal = keras_format.keras_format_refusal(model)
        if refusal is None and legacy:
            from dlgpu.models.legacy_h5 import save_legacy_h5
            return save_legacy_h5(model, filepath)
        if refusal is None:
            return keras_format.save_keras_model(model, filepath)
        warnings.warn(f"{refusal} {filepath!r} is written in dlgpu's format, which dlgpu's load_model reads but "
                      f"Keras does not.", stacklevel=3)
    write_dlgpu_model(model, filepath)


def write_dlgpu_model(model, filepath):
    """Write ``model`` (or another built layer with a config, such as a FeatureSpace) in dlgpu's format,
    whatever the file's name; load_model reads it back."""
    config = _model_config(model)
    own = _own_variable_arrays(model)
    assets = _asset_files(model)
    metadata = {"format": FORMAT, "format_version": FORMAT_VERSION if own or assets else 2,
                "saved_at": time.strftime("%Y-%m-%dT%H:%M:%S"), "dlgpu_version": _version(),
                "num_weights": len(model.weights)}
    weights = _weights_bytes(model, {**_optimizer_arrays(model), **own})

    def write(handle):
        with zipfile.ZipFile(handle, "w", compression=zipfile.ZIP_STORED) as archive:
            archive.writestr(_METADATA, json.dumps(metadata, indent=1))
            archive.writestr(_CONFIG, json.dumps(config, indent=1))
            archive.writestr(_WEIGHTS, weights)
            for name, data in assets:
                archive.writestr(name, data)
    _atomic_write(filepath, write)


def _layers_in_order(model):
    """The model and every layer inside it, depth first, each once: the order the saving hooks are called in."""
    out, seen = [], set()

    def visit(layer):
        if id(layer) in seen:
            return
        seen.add(id(layer))
        out.append(layer)
        for sub in layer._layers:
            visit(sub)
    visit(model)
    return out


def _overrides(layer, hook):
    from dlgpu.layers.base import Layer
    return getattr(type(layer), hook) is not getattr(Layer, hook)


def _layer_key(index, layer):
    return f"{index:05d}:{layer.name}"


def _own_variable_arrays(model):
    """npz entries for the layers that override save_own_variables (the others' weights are in the flat list)."""
    arrays = {}
    for index, layer in enumerate(_layers_in_order(model)):
        if _overrides(layer, "save_own_variables"):
            store = {}
            layer.save_own_variables(store)
            for key, value in store.items():
                arrays[f"{_OWN}{_layer_key(index, layer)}/{key}"] = np.asarray(
                    value.numpy() if hasattr(value, "numpy") else value)
    return arrays


def _asset_files(model):
    """(name in the archive, bytes) for every file the layers' save_assets(directory) wrote."""
    files = []
    for index, layer in enumerate(_layers_in_order(model)):
        if callable(getattr(layer, "save_assets", None)):
            with tempfile.TemporaryDirectory() as directory:
                layer.save_assets(directory)
                for root, _, names in os.walk(directory):
                    for name in sorted(names):
                        path = os.path.join(root, name)
                        relative = os.path.relpath(path, directory).replace(os.sep, "/")
                        with open(path, "rb") as handle:
                            files.append((f"{_ASSETS}{_layer_key(index, layer)}/{relative}", handle.read()))
    return files


def _load_layer_state(model, own_state, archive, names, filepath):
    """Call load_own_variables with what each overriding layer saved, then load_assets(directory) on each layer
    that has it (Keras's order); a layer whose name does not match the file's is an error."""
    layers = _layers_in_order(model)
    stores = {}
    for key, array in own_state.items():
        layer_key, _, store_key = key[len(_OWN):].partition("/")
        stores.setdefault(layer_key, {})[store_key] = array
    for index, layer in enumerate(layers):
        if _overrides(layer, "load_own_variables"):
            store = stores.pop(_layer_key(index, layer), None)
            if store is None and _overrides(layer, "save_own_variables"):
                raise SavedModelError(f"{os.fspath(filepath)!r} holds no saved variables for layer '{layer.name}' "
                                      f"(its load_own_variables has nothing to read); it was saved from a "
                                      f"different model.")
            if store is not None:
                layer.load_own_variables(store)
    if stores:
        raise SavedModelError(f"{os.fspath(filepath)!r} holds variables saved by layers {sorted(stores)} that this "
                              f"model does not have at those positions; it was saved from a different model.")
    for index, layer in enumerate(layers):
        if callable(getattr(layer, "load_assets", None)):
            prefix = f"{_ASSETS}{_layer_key(index, layer)}/"
            with tempfile.TemporaryDirectory() as directory:
                for name in sorted(n for n in names if n.startswith(prefix) and not n.endswith("/")):
                    relative = os.path.normpath(name[len(prefix):])
                    if relative.startswith("..") or os.path.isabs(relative):
                        raise SavedModelError(f"{os.fspath(filepath)!r}: asset path {name!r} leaves its folder.")
                    target = os.path.join(directory, relative)
                    os.makedirs(os.path.dirname(target), exist_ok=True)
                    with open(target, "wb") as handle:
                        handle.write(archive.read(name))
                layer.load_assets(directory)


def _model_config(model):
    """The architecture (and compile settings) as a JSON-able dict: config.json, and Model.to_json."""
    from dlgpu.saving import serialize_config_values
    # A subclassed model's get_config may hold layers (keras.io's ShiftViT returns its sublayers), which
    # Keras serializes as nested configs.
    return {"class_name": type(model).__name__, "config": serialize_config_values(model.get_config()),
            "compile_config": _saved_compile_config(model), "build_input_shape": _jsonable_shape(model._build_shapes)}


def _saved_compile_config(model):
    """The model's own get_compile_config() (serialized, as Keras) when its class overrides it, else dlgpu's."""
    from dlgpu.models.model import Model
    if getattr(model, "compiled", False) and type(model).get_compile_config is not Model.get_compile_config:
        from dlgpu.saving import serialize_keras_object
        return serialize_keras_object(model.get_compile_config())
    return compile_config(model)


def _model_from_config(config, custom_objects, source):
    """An unbuilt-weights model from _model_config's dict, built to its saved input shape."""
    from dlgpu import layers
    try:
        model = layers.deserialize({"class_name": config["class_name"], "config": config["config"]}, custom_objects)
    except (KeyError, TypeError) as exc:
        raise SavedModelError(f"{source}: the architecture config is damaged: {exc}") from None
    if not model.built and config.get("build_input_shape") is not None:
        shape = config["build_input_shape"]
        model.build(tuple(shape) if all(s is None or isinstance(s, int) for s in shape) else shape)
    return model


def model_to_json(model, **kwargs):
    """Model.to_json: the architecture and compile settings (no weights) as a JSON string; ``kwargs`` go
    to json.dumps (``indent=2`` …)."""
    if not isinstance(model, _model_class()):
        raise TypeError(f"to_json: expected a dlgpu Model; received {type(model).__name__}")
    from dlgpu.models.keras_format import keras_model_json
    keras_json = keras_model_json(model, **kwargs)  # Keras's layout when Keras can express the model
    if keras_json is not None:
        return keras_json
    return json.dumps({**_model_config(model), "keras_version": _version(), "backend": "dlgpu"}, **kwargs)


def _with_scope(custom_objects):
    """custom_objects plus those of an enclosing custom_object_scope (the explicit ones win), so the compile
    settings (losses, metrics) find them as well as the layers."""
    from dlgpu.saving import scoped_custom_objects
    return {**scoped_custom_objects(), **(custom_objects or {})}


def model_from_json(json_string, custom_objects=None):
    """keras.models.model_from_json: the model Model.to_json described, with fresh weights (compiled if it
    was).  Only known or ``custom_objects`` classes are made: no code is read from the string."""
    try:
        config = json.loads(json_string)
    except (TypeError, json.JSONDecodeError) as exc:
        raise ValueError(f"model_from_json: not a JSON string: {exc}") from None
    if not isinstance(config, dict) or "class_name" not in config or "config" not in config:
        raise ValueError("model_from_json: expected the JSON of a model (a dict with 'class_name' and 'config', "
                         "as Model.to_json writes).")
    if config.get("backend") != "dlgpu" and "module" in config:  # Keras's to_json (dlgpu's own says its backend)
        from dlgpu.models.keras_format import model_from_keras_json
        return model_from_keras_json(config, custom_objects)
    custom_objects = _with_scope(custom_objects)
    model = _model_from_config(config, custom_objects, "model_from_json")
    compile_settings = config.get("compile_config")
    if compile_settings:
        arguments = compile_arguments(compile_settings, custom_objects, "model_from_json")
        if arguments is not None:
            model.compile(**arguments)
    return model


def _model_class():
    from dlgpu.models.model import Model
    return Model


def _jsonable_shape(shape):
    if shape is None:
        return None
    if isinstance(shape, (list, tuple)):
        return [_jsonable_shape(s) for s in shape]
    return shape


def _version():
    from dlgpu import __version__
    return __version__


def _open(filepath, keras_ok=False):
    """(archive, names) of a dlgpu file; with ``keras_ok``, a Keras .keras archive too: then (archive, names,
    True) — dlgpu's files give (archive, names, False)."""
    filepath = os.fspath(filepath)
    if not os.path.exists(filepath):
        raise FileNotFoundError(f"No such file: {filepath!r}")
    if not zipfile.is_zipfile(filepath):
        raise SavedModelError(f"{filepath!r} is not a dlgpu model file, nor a Keras .keras file (expected a zip "
                              f"archive written by model.save or model.save_weights).")
    try:
        archive = zipfile.ZipFile(filepath)
        names = set(archive.namelist())
    except (zipfile.BadZipFile, OSError) as exc:
        raise SavedModelError(f"{filepath!r} is damaged: {exc}") from None
    if _METADATA not in names:
        raise SavedModelError(f"{filepath!r} is a zip archive but not a dlgpu model (no {_METADATA}); "
                              f"it contains {sorted(names)[:5]}")
    metadata = _read_json(archive, _METADATA, filepath)
    if keras_ok and isinstance(metadata, dict) and metadata.get("format") is None and "keras_version" in metadata:
        return archive, names, True
    if not isinstance(metadata, dict) or metadata.get("format") != FORMAT:
        raise SavedModelError(f"{filepath!r}: unknown format {metadata.get('format')!r}")
    if metadata.get("format_version", 0) > FORMAT_VERSION:
        raise SavedModelError(f"{filepath!r} was written by a newer dlgpu (format {metadata['format_version']}); "
                              f"upgrade dlgpu to read it.")
    return (archive, names, False) if keras_ok else (archive, names)


def _read_json(archive, name, filepath):
    try:
        return json.loads(archive.read(name).decode("utf-8"))
    except (KeyError, UnicodeDecodeError, json.JSONDecodeError, zipfile.BadZipFile, OSError) as exc:
        raise SavedModelError(f"{filepath!r}: cannot read {name}: {exc}") from None


def _read_weights(archive, filepath):
    """The model's weights as (path, array) in saved order, and the optimizer's entries as a dict."""
    try:
        data = archive.read(_WEIGHTS)
        with np.load(io.BytesIO(data), allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
    except KeyError:
        raise SavedModelError(f"{filepath!r} holds no weights ({_WEIGHTS} is missing).") from None
    except (ValueError, OSError, zipfile.BadZipFile) as exc:
        raise SavedModelError(f"{filepath!r}: the weights are damaged or not plain arrays: {exc}") from None
    weights = [(k.split(":", 1)[1], arrays[k]) for k in sorted(arrays) if not k.startswith((_OPTIMIZER, _OWN))]
    optimizer_state = {k: a for k, a in arrays.items() if k.startswith(_OPTIMIZER)}
    return weights, optimizer_state


def _read_own_state(archive, filepath):
    """The "own/" entries of the weights (what layers' save_own_variables wrote)."""
    with np.load(io.BytesIO(archive.read(_WEIGHTS)), allow_pickle=False) as npz:
        return {k: npz[k] for k in npz.files if k.startswith(_OWN)}


def _assign_weights(model, saved, filepath):
    variables = model.weights
    if len(saved) != len(variables):
        raise SavedModelError(f"{filepath!r} holds {len(saved)} weight arrays but model '{model.name}' has "
                              f"{len(variables)}; the file was saved from a different architecture.")
    # By path when the file's paths are exactly the model's (a file written before the order of a graph's
    # layers changed still loads right), else by position.
    by_path = {v.path: v for v in variables}
    paths = [path for path, _ in saved]
    if len(by_path) == len(variables) and len(set(paths)) == len(paths) and set(paths) == set(by_path):
        variables = [by_path[path] for path in paths]
    for v, (path, array) in zip(variables, saved):
        if tuple(array.shape) != v.shape:
            raise SavedModelError(f"{filepath!r}: weight {path!r} has shape {tuple(array.shape)} but the model's "
                                  f"{v.path!r} has shape {v.shape}.")
    from dlgpu.backend.device import to_device
    for v, (_, array) in zip(variables, saved):  # checked everything first: a mismatch changes nothing
        v.assign(to_device(array.astype(v.data.dtype, copy=False), v.device))


def load_model(filepath, custom_objects=None, compile=True, safe_mode=True):  # noqa: A002 - Keras signature
    """Rebuild a model saved with ``model.save``: architecture, weights and (if any, unless compile=False)
    compile settings and optimizer state."""
    from dlgpu.models import legacy_h5
    if os.path.exists(os.fspath(filepath)) and legacy_h5.is_legacy_h5(os.fspath(filepath)):
        return legacy_h5.load_legacy_h5_model(os.fspath(filepath), custom_objects, compile)
    archive, names, is_keras = _open(filepath, keras_ok=True)
    if is_keras:
        from dlgpu.models.keras_format import load_keras_model
        with archive:
            return load_keras_model(filepath, archive, names, custom_objects, compile)
    with archive:
        if _CONFIG not in names:
            raise SavedModelError(f"{os.fspath(filepath)!r} holds only weights (written by save_weights); build the "
                                  f"model in code and call model.load_weights on it.")
        config = _read_json(archive, _CONFIG, filepath)
        saved, optimizer_state = _read_weights(archive, filepath)
        own_state = _read_own_state(archive, filepath)
        custom_objects = _with_scope(custom_objects)
        from dlgpu.saving import CustomObjectScope
        # Inside the scope, as Keras: a user's from_config / compile_from_config that deserializes things
        # itself finds the custom_objects given here.
        with CustomObjectScope(custom_objects):
            model = _model_from_config(config, custom_objects, repr(os.fspath(filepath)))
            _assign_weights(model, saved, filepath)
            _load_layer_state(model, own_state, archive, names, filepath)
            if compile:
                _compile_from_config(model, config.get("compile_config"), optimizer_state, custom_objects, filepath)
    return model


def _compile_from_config(model, config, optimizer_state, custom_objects, filepath):
    from dlgpu.models.model import Model
    if config is not None and type(model).compile_from_config is not Model.compile_from_config:
        model.compile_from_config(config)
        optimizer = model.optimizer if getattr(model, "compiled", False) else None
        if optimizer_state and optimizer is not None:
            _restore_optimizer_state(model, optimizer, optimizer_state, filepath)
        return
    arguments = compile_arguments(config, custom_objects, os.fspath(filepath))
    if arguments is None:
        return
    if optimizer_state and not _restore_optimizer_state(model, arguments["optimizer"], optimizer_state, filepath):
        arguments["optimizer"] = optimizers.deserialize(config["optimizer"], custom_objects)
    try:
        model.compile(**arguments)
    except (ValueError, TypeError) as exc:
        raise SavedModelError(f"{os.fspath(filepath)!r}: the compile config does not fit the model: {exc}. "
                              f"load_model(..., compile=False) loads it uncompiled.") from None


def _restore_optimizer_state(model, optimizer, state, filepath):
    """Build ``optimizer`` on the model's weights as the saved one was, then load its variables; False,
    with a warning, when the saved state does not fit (the optimizer may then be half-built: discard it)."""
    state = dict(state)
    try:
        built_on = state.pop(_OPTIMIZER_BUILT_ON).tolist()
        weights = model.weights
        if not all(isinstance(i, int) and 0 <= i < len(weights) for i in built_on):
            raise ValueError(f"it refers to model weights {built_on} but the model has {len(weights)}")
        optimizer.build([weights[i] for i in built_on])
        store = {str(int(key[len(_OPTIMIZER):].split(":", 1)[0])): array for key, array in state.items()}
        optimizer.load_own_variables(store)
    except (KeyError, ValueError, TypeError, AttributeError) as exc:
        warnings.warn(f"load_model: skipped the optimizer state in {os.fspath(filepath)!r}, which does not fit "
                      f"optimizer '{optimizer.name}' on this model ({exc}); training starts from a fresh "
                      f"optimizer state.", stacklevel=4)
        return False
    return True


def save_weights(model, filepath, overwrite=True):
    """``*.weights.h5``: Keras 3's layout (HDF5, which Keras's load_weights reads); any other name: dlgpu's."""
    filepath = os.fspath(filepath)
    from dlgpu.models import keras_format
    if not overwrite and os.path.exists(filepath):
        raise FileExistsError(f"{filepath!r} exists; pass overwrite=True to replace it.")
    if keras_format.is_keras_weights_path(filepath) and model.built:
        refusal = keras_format.keras_format_refusal(model)
        if refusal is None:
            return keras_format.save_keras_weights(model, filepath)
        warnings.warn(f"{refusal} {filepath!r} is written in dlgpu's format, which dlgpu's load_weights reads but "
                      f"Keras does not.", stacklevel=3)
    _write_weights_file(filepath, model, _weights_bytes(model))


def _write_weights_file(filepath, model, weights, **metadata):
    """A weights-only dlgpu file (save_weights, save_training_state): metadata.json and the npz, atomically."""
    metadata = {"format": FORMAT, "format_version": FORMAT_VERSION, "weights_only": True,
                "num_weights": len(model.weights), "dlgpu_version": _version(), **metadata}

    def write(handle):
        with zipfile.ZipFile(handle, "w") as archive:
            archive.writestr(_METADATA, json.dumps(metadata))
            archive.writestr(_WEIGHTS, weights)
    _atomic_write(filepath, write)


def load_weights(model, filepath):
    from dlgpu.models import keras_format
    if os.path.exists(os.fspath(filepath)) and keras_format.is_hdf5(os.fspath(filepath)):
        from dlgpu.models import legacy_h5
        if legacy_h5.is_legacy_h5(os.fspath(filepath)):  # Keras 2's save_weights("w.h5"): groups by layer
            return legacy_h5.load_legacy_h5_weights(model, os.fspath(filepath))
        return keras_format.load_keras_weights(model, filepath)
    archive, names, is_keras = _open(filepath, keras_ok=True)
    if is_keras:  # the weights inside a whole-model Keras .keras file, as Keras's load_weights reads them
        with archive:
            return keras_format.load_keras_archive_weights(model, filepath, archive, names)
    with archive:
        saved, _ = _read_weights(archive, filepath)
    if not model.built:
        raise ValueError(f"Model '{model.name}' is not built, so its weights cannot be loaded yet; call it on data "
                         f"or build(input_shape) first.")
    _assign_weights(model, saved, filepath)


def save_training_state(model, filepath, progress=None):
    """The weights and the optimizer's state, without the architecture: what callbacks.BackupAndRestore
    needs to resume a fit in the model that is training (which may be a subclassed model with no config).
    ``progress`` (a JSON-able dict, e.g. the epoch reached) goes in the same file, so that the two can
    never disagree."""
    _write_weights_file(filepath, model, _weights_bytes(model, _optimizer_arrays(model)), progress=progress)


def load_training_state(model, filepath):
    """Put back what save_training_state wrote: the weights, and the optimizer's state when the model is
    compiled and the file has one (the optimizer is built on the model's weights first, as load_model does).
    Returns the ``progress`` saved with them."""
    archive, _ = _open(filepath)
    with archive:
        progress = _read_json(archive, _METADATA, filepath).get("progress")
        saved, optimizer_state = _read_weights(archive, filepath)
    _assign_weights(model, saved, filepath)
    optimizer = model.optimizer if getattr(model, "compiled", False) else None
    if optimizer_state and optimizer is not None:
        _restore_optimizer_state(model, optimizer, optimizer_state, filepath)
    return progress
