"""Utilities with keras.utils names."""

from __future__ import annotations

import difflib

import numpy as np

from dlgpu.utils.py_dataset import PyDataset, Sequence  # noqa: F401  (keras.utils names)
from dlgpu.utils.sequence_utils import pad_sequences  # noqa: F401
from dlgpu.utils.dataset_utils import split_dataset  # noqa: F401
from dlgpu.utils.data_adapter_utils import pack_x_y_sample_weight, unpack_x_y_sample_weight  # noqa: F401
from dlgpu.utils.audio_dataset_utils import audio_dataset_from_directory  # noqa: F401
from dlgpu.utils.image_dataset_utils import image_dataset_from_directory  # noqa: F401
from dlgpu.utils.image_utils import array_to_img, img_to_array, load_img, save_img  # noqa: F401
from dlgpu.utils.text_dataset_utils import text_dataset_from_directory  # noqa: F401
from dlgpu.utils.timeseries_dataset_utils import timeseries_dataset_from_array  # noqa: F401
from dlgpu.utils.model_visualization import model_to_dot, plot_model  # noqa: F401
from dlgpu.utils import progbar  # noqa: F401
from dlgpu.utils.progbar import Progbar  # noqa: F401
from dlgpu.utils.file_utils import get_file  # noqa: F401
from dlgpu.utils.config import Config  # noqa: F401
from dlgpu.utils.tensor_utils import get_source_inputs, is_keras_tensor, standardize_dtype  # noqa: F401
from dlgpu.backend import clear_session  # noqa: F401
from dlgpu.config import (disable_interactive_logging, enable_interactive_logging,  # noqa: F401
                          is_interactive_logging_enabled)
from dlgpu.utils import bounding_boxes  # noqa: F401  (keras.utils.bounding_boxes)


def to_categorical(y, num_classes=None, dtype="float32"):
    """One-hot encode integer class labels (keras.utils.to_categorical)."""
    y = np.asarray(y)
    if y.dtype.kind == "f":
        if not np.all(np.isfinite(y)) or not np.all(y == np.round(y)):
            raise ValueError("to_categorical: labels must be whole numbers")
    y = y.astype(np.int64)
    shape = y.shape[:-1] if y.ndim > 1 and y.shape[-1] == 1 else y.shape
    y = y.reshape(-1)
    if num_classes is None:
        num_classes = int(y.max()) + 1 if y.size else 0
    if y.size and (y.min() < 0 or y.max() >= num_classes):
        raise ValueError(f"to_categorical: labels must lie in [0, {num_classes}); received values from {y.min()} "
                         f"to {y.max()}")
    out = np.zeros((y.size, num_classes), dtype=dtype)
    out[np.arange(y.size), y] = 1
    return out.reshape(shape + (num_classes,))


def normalize(x, axis=-1, order=2):
    x = np.asarray(x, dtype=np.float32)
    norm = np.linalg.norm(x, ord=order, axis=axis, keepdims=True)
    return x / np.where(norm == 0, 1, norm)


def set_random_seed(seed):
    """Seed Python's, numpy's and dlgpu's generators (keras.utils.set_random_seed)."""
    import random as _random
    from dlgpu import ops
    _random.seed(seed)
    np.random.seed(seed)
    ops.set_random_seed(seed)


def unknown_name_error(kind, identifier, valid, candidates=None, normalize=str):
    """The ValueError for an unknown string (loss 'crossentropyy', optimizer 'adamm'…): it names the string,
    suggests the closest of ``candidates`` (default: the valid names) and lists the valid names.  Shared by
    every get()/deserialize() lookup."""
    names = sorted(valid)
    close = difflib.get_close_matches(normalize(identifier), list(candidates or names), n=1)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    return ValueError(f"Unknown {kind}: {identifier!r}.{hint} Valid: {', '.join(names)}.")


def deserialize_by_class_name(config, custom_objects, classes, get, unknown):
    """The object a ``{"class_name", "config"}`` dict (or a bare name) describes, for modules whose objects
    are plain classes with ``from_config`` (initializers, regularizers, constraints).  Names only, never code.

    Besides ``custom_objects``, classes registered with ``dlgpu.saving.register_keras_serializable`` are
    found: a layer's from_config receives no custom_objects, so loading a model relies on the registry."""
    from dlgpu.layers import _custom as registered
    from dlgpu.saving import scoped_custom_objects
    custom_objects = {**registered, **scoped_custom_objects(), **(custom_objects or {})}
    if config is None:
        return None
    if isinstance(config, str):
        return custom_objects[config]() if config in custom_objects else get(config)
    name = config.get("class_name")
    cls = custom_objects.get(name) or classes.get(name)
    if cls is None:
        raise unknown(str(name))
    return cls.from_config(config.get("config", {}))


# keras.utils also holds the serialization names; they live in dlgpu.saving, which imports models and
# layers, so they are looked up on first use rather than imported here (that would be circular).
_SAVING_NAMES = ("register_keras_serializable", "serialize_keras_object", "deserialize_keras_object",
                 "custom_object_scope", "CustomObjectScope", "get_custom_objects", "get_registered_name",
                 "get_registered_object")


def __getattr__(name):
    if name == "FeatureSpace":  # a layer (dlgpu/layers/feature_space.py); the layers import this module
        from dlgpu.layers.feature_space import FeatureSpace
        return FeatureSpace
    if name in _SAVING_NAMES:
        from dlgpu import saving
        return getattr(saving, name)
    raise AttributeError(f"module 'dlgpu.utils' has no attribute {name!r}")
