"""FeatureSpace: one object that preprocesses and encodes a dict of structured-data columns
(keras.utils.FeatureSpace, from Keras's keras/src/layers/preprocessing/feature_space.py).

Each feature gets a preprocessing layer (Normalization, Rescaling, Discretization, IntegerLookup,
StringLookup, Hashing, or the caller's own), adapted on a dataset; crosses of features hash the
preprocessed values with HashedCrossing; what is marked ``output_mode="one_hot"`` is one-hot encoded with
CategoryEncoding; the results are concatenated (``output_mode="concat"``) or returned as a dict.  As in
Keras, every column is handled as shape ``(batch, 1)``, the features in sorted name order, then the crosses
in sorted name order.

Where Keras switches to TensorFlow to run it on any backend, dlgpu runs the same layers: strings stay numpy
arrays on the host, numbers become Tensors on the current device.  ``get_inputs()`` and
``get_encoded_features()`` give the symbolic Inputs and encoded tensors of a functional model that takes
raw dicts.
"""

from __future__ import annotations

import numpy as np

from dlgpu.autograd import Tensor
from dlgpu.layers.base import Input, KerasTensor, Layer, flatten, unique_name

_MODULE = "keras.src.layers.preprocessing.feature_space"  # where Keras's Feature and Cross live
_TYPES = ("float", "float_normalized", "float_rescaled", "float_discretized", "integer_categorical",
          "string_categorical", "integer_hashed", "string_hashed")


def _layers():
    from dlgpu import layers  # the package imports this module: look it up at call time
    return layers


class Cross:
    """A cross of features (FeatureSpace.cross): their preprocessed values hashed together into
    ``crossing_dim`` bins, one-hot encoded (``output_mode="one_hot"``) or left as bin indices ("int")."""

    def __init__(self, feature_names, crossing_dim, output_mode="one_hot"):
        if output_mode not in {"int", "one_hot"}:
            raise ValueError(f"Invalid value for argument `output_mode`. Expected one of {{'int', 'one_hot'}}. "
                             f"Received: output_mode={output_mode}")
        if isinstance(feature_names, str) or len(feature_names) < 2:
            raise ValueError(f"A cross needs at least two feature names. Received: feature_names={feature_names!r}")
        if not isinstance(crossing_dim, (int, np.integer)) or isinstance(crossing_dim, bool) or crossing_dim < 1:
            raise ValueError(f"Cross {'_X_'.join(map(str, feature_names))!r}: `crossing_dim` must be a positive "
                             f"integer. Received: crossing_dim={crossing_dim!r}")
        self.feature_names = tuple(feature_names)
        self.crossing_dim = int(crossing_dim)
        self.output_mode = output_mode

    @property
    def name(self):
        return "_X_".join(self.feature_names)

    def get_config(self):
        return {"feature_names": self.feature_names, "crossing_dim": self.crossing_dim,
                "output_mode": self.output_mode}

    @classmethod
    def from_config(cls, config):
        return cls(**config)


class Feature:
    """A feature (FeatureSpace.feature and the typed constructors): the ``dtype`` of its Input, the layer
    that preprocesses it, and ``output_mode``: "float" (used as it is), "int" or "one_hot"."""

    def __init__(self, dtype, preprocessor, output_mode):
        if output_mode not in {"int", "one_hot", "float"}:
            raise ValueError(f"Invalid value for argument `output_mode`. Expected one of {{'int', 'one_hot', "
                             f"'float'}}. Received: output_mode={output_mode}")
        if isinstance(preprocessor, dict):
            from dlgpu.saving import deserialize_keras_object
            preprocessor = deserialize_keras_object(preprocessor)
        if not callable(preprocessor):
            raise TypeError(f"A feature's `preprocessor` must be a layer (callable); received {preprocessor!r}")
        self.dtype = dtype
        self.preprocessor = preprocessor
        self.output_mode = output_mode

    def get_config(self):
        from dlgpu.saving import serialize_keras_object
        return {"dtype": self.dtype, "preprocessor": serialize_keras_object(self.preprocessor),
                "output_mode": self.output_mode}

    @classmethod
    def from_config(cls, config):
        return cls(**config)


def _serialize(obj):
    """A Feature or Cross as Keras's serialize_keras_object writes it."""
    name = type(obj).__name__
    return {"module": _MODULE, "class_name": name, "config": obj.get_config(), "registered_name": name}


def _deserialize(config, cls):
    if not isinstance(config, dict) or config.get("class_name") != cls.__name__:
        raise ValueError(f"Expected the config of a {cls.__name__} (a dict with class_name={cls.__name__!r}); "
                         f"received {config!r}")
    return cls.from_config(config["config"])


def _kind(array):
    return "string" if array.dtype.kind in "USO" else array.dtype.kind


def _host(value):
    """A host numpy array of one column (strings stay numpy str/object arrays)."""
    from dlgpu.backend import device as _device
    if isinstance(value, Tensor):
        value = value.data
    if hasattr(value, "__cuda_array_interface__"):
        return _device.to_numpy(value)
    return np.asarray(value)


class FeatureSpace(Layer):
    """One-stop preprocessing and encoding of structured data (keras.utils.FeatureSpace).

    ``features`` maps each input name to a type name ("float", "float_normalized", "float_rescaled",
    "float_discretized", "integer_categorical", "string_categorical", "integer_hashed", "string_hashed")
    or to a feature object (FeatureSpace.float_normalized(), FeatureSpace.integer_categorical(max_tokens=10),
    FeatureSpace.feature(dtype, preprocessor, output_mode) ...).  ``crosses`` lists tuples of feature names
    (crossed into ``crossing_dim`` bins) or FeatureSpace.cross(...) objects.  ``hashing_dim`` and
    ``num_discretization_bins`` are the defaults of the hashed and discretized types given by name.

    Call ``adapt(dataset)`` (a dict of arrays, a dlgpu dataset or any iterable of dict batches), then call
    the FeatureSpace on a dict of columns (batched, or one sample of scalars) or build a model from
    ``get_inputs()`` and ``get_encoded_features()``.  ``save(path)`` writes it in dlgpu's format;
    ``dlgpu.saving.load_model(path)`` reads it back.
    """

    # -- feature constructors (Keras's classmethods) -------------------------------------------------
    @classmethod
    def cross(cls, feature_names, crossing_dim, output_mode="one_hot"):
        return Cross(feature_names, crossing_dim, output_mode=output_mode)

    @classmethod
    def feature(cls, dtype, preprocessor, output_mode):
        return Feature(dtype, preprocessor, output_mode)

    @classmethod
    def float(cls, name=None):
        name = name or unique_name("float")
        return Feature("float32", _layers().Identity(name=f"{name}_preprocessor"), "float")

    @classmethod
    def float_rescaled(cls, scale=1.0, offset=0.0, name=None):
        name = name or unique_name("float_rescaled")
        return Feature("float32", _layers().Rescaling(scale=scale, offset=offset, name=f"{name}_preprocessor"),
                       "float")

    @classmethod
    def float_normalized(cls, name=None):
        name = name or unique_name("float_normalized")
        return Feature("float32", _layers().Normalization(axis=-1, name=f"{name}_preprocessor"), "float")

    @classmethod
    def float_discretized(cls, num_bins, bin_boundaries=None, output_mode="one_hot", name=None):
        name = name or unique_name("float_discretized")
        preprocessor = _layers().Discretization(num_bins=num_bins, bin_boundaries=bin_boundaries,
                                                name=f"{name}_preprocessor")
        return Feature("float32", preprocessor, output_mode)

    @classmethod
    def integer_categorical(cls, max_tokens=None, num_oov_indices=1, output_mode="one_hot", name=None):
        name = name or unique_name("integer_categorical")
        preprocessor = _layers().IntegerLookup(name=f"{name}_preprocessor", max_tokens=max_tokens,
                                               num_oov_indices=num_oov_indices)
        return Feature("int32", preprocessor, output_mode)

    @classmethod
    def string_categorical(cls, max_tokens=None, num_oov_indices=1, output_mode="one_hot", name=None):
        name = name or unique_name("string_categorical")
        preprocessor = _layers().StringLookup(name=f"{name}_preprocessor", max_tokens=max_tokens,
                                              num_oov_indices=num_oov_indices)
        return Feature("string", preprocessor, output_mode)

    @classmethod
    def string_hashed(cls, num_bins, output_mode="one_hot", name=None):
        name = name or unique_name("string_hashed")
        return Feature("string", _layers().Hashing(name=f"{name}_preprocessor", num_bins=num_bins), output_mode)

    @classmethod
    def integer_hashed(cls, num_bins, output_mode="one_hot", name=None):
        name = name or unique_name("integer_hashed")
        return Feature("int32", _layers().Hashing(name=f"{name}_preprocessor", num_bins=num_bins), output_mode)

    # -- construction ---------------------------------------------------------------------------------
    def __init__(self, features, output_mode="concat", crosses=None, crossing_dim=32, hashing_dim=32,
                 num_discretization_bins=32, name=None):
        super().__init__(name=name)
        if not features:
            raise ValueError("The `features` argument cannot be None or empty.")
        if not isinstance(features, dict):
            raise TypeError(f"FeatureSpace: `features` must be a dict mapping each feature name to its type; "
                            f"received {type(features).__name__}")
        if output_mode not in {"dict", "concat"}:
            raise ValueError(f"Invalid value for argument `output_mode`. Expected one of {{'dict', 'concat'}}. "
                             f"Received: output_mode={output_mode}")
        self.crossing_dim = crossing_dim
        self.hashing_dim = hashing_dim
        self.num_discretization_bins = num_discretization_bins
        self.features = {name: self._standardize_feature(name, value) for name, value in features.items()}
        self.crosses = [self._standardize_cross(cross) for cross in (crosses or [])]
        self.crosses_by_name = {cross.name: cross for cross in self.crosses}
        self.output_mode = output_mode
        self.inputs = {name: Input(shape=(1,), dtype=feature.dtype, name=name)
                       for name, feature in self.features.items()}
        self.preprocessors = {name: feature.preprocessor for name, feature in self.features.items()}
        self.crossers = {cross.name: _layers().HashedCrossing(cross.crossing_dim, name=cross.name)
                         for cross in self.crosses}
        # Sublayers in a list, so that the Layer tracks them (their weights, e.g. Normalization's statistics,
        # are this layer's weights, saved and loaded in this order).
        self._is_adapted = False
        self._reset_encoding()

    def _reset_encoding(self):
        """Forget the encoders and the encoded graph (made again on first use, after a new adapt())."""
        self._sublayers = [p for p in self.preprocessors.values() if isinstance(p, Layer)] + \
            list(self.crossers.values())
        self.one_hot_encoders = {}
        self.encoded_features = None
        self.concat = None
        self._preprocessed_features_names = None
        self._crossed_features_names = None
        self._sublayers_built = False

    def _standardize_feature(self, name, feature):
        if isinstance(feature, Feature):
            return feature
        if isinstance(feature, dict):
            return _deserialize(feature, Feature)
        if feature == "float":
            return self.float(name=name)
        if feature == "float_normalized":
            return self.float_normalized(name=name)
        if feature == "float_rescaled":
            return self.float_rescaled(name=name)
        if feature == "float_discretized":
            return self.float_discretized(name=name, num_bins=self.num_discretization_bins)
        if feature == "integer_categorical":
            return self.integer_categorical(name=name)
        if feature == "string_categorical":
            return self.string_categorical(name=name)
        if feature == "integer_hashed":
            return self.integer_hashed(self.hashing_dim, name=name)
        if feature == "string_hashed":
            return self.string_hashed(self.hashing_dim, name=name)
        raise ValueError(f"Invalid feature type for feature {name!r}: {feature!r}. Expected one of {_TYPES} or a "
                         f"feature object such as FeatureSpace.float_normalized().")

    def _standardize_cross(self, cross):
        if isinstance(cross, dict):
            cross = _deserialize(cross, Cross)
        elif not isinstance(cross, Cross):
            if not self.crossing_dim:
                raise ValueError("When specifying `crosses`, the argument `crossing_dim` (dimensionality of the "
                                 "crossing space) should be specified as well.")
            cross = Cross(cross, crossing_dim=self.crossing_dim)
        unknown = [name for name in cross.feature_names if name not in self.features]
        if unknown:
            raise ValueError(f"All features referenced in the `crosses` argument should be present in the "
                             f"`features` dict. Received unknown features {unknown} in cross "
                             f"{cross.feature_names}; the features are {list(self.features)}")
        return cross

    # -- adapt ----------------------------------------------------------------------------------------
    def _list_adaptable_preprocessors(self):
        layers = _layers()
        names = []
        for name in self.features:
            preprocessor = self.preprocessors[name]
            # Preset statistics or vocabularies are not learned again (as Keras); nor are a Discretization's
            # given boundaries (Keras's would refuse adapt()).
            if isinstance(preprocessor, layers.Normalization) and preprocessor.input_mean is not None:
                continue
            if isinstance(preprocessor, layers.TextVectorization) and preprocessor._has_input_vocabulary:
                continue
            if isinstance(preprocessor, layers.Discretization) and preprocessor.num_bins is None:
                continue
            if hasattr(preprocessor, "adapt"):
                names.append(name)
        return names

    def adapt(self, dataset):
        """Adapt every feature's preprocessor (Normalization's statistics, lookups' vocabularies,
        Discretization's boundaries) on ``dataset``: a dict of arrays or lists (one column per feature), a
        dlgpu dataset (dlgpu.utils.PyDataset, e.g. ``ds.map(lambda x, y: x)``) of dict batches, or any
        iterable of dicts (batches, or single samples of scalars).  An ``(x, y)`` element counts by its x.
        The dataset is read once."""
        names = self._list_adaptable_preprocessors()
        columns = {name: [] for name in names}
        count = 0
        for element in self._elements(dataset):
            count += 1
            for name in names:
                columns[name].append(self._column(element, name, "adapt()"))
        if count == 0:
            raise ValueError(f"FeatureSpace '{self.name}': adapt() received an empty dataset")
        for name in names:
            batches = columns[name]
            if batches[0].ndim == 0:  # single samples: one batch of them, as Keras batches a dataset of scalars
                batches = [np.stack(batches)]
            batches = [b[:, None] if b.ndim == 1 else b for b in batches]
            self.preprocessors[name].adapt(iter(batches))
        if self._sublayers_built:  # adapted again: vocabulary sizes may have changed, so new encoders
            self._reset_encoding()
        self._is_adapted = True
        self.get_encoded_features()  # finish building: the encoders and the concatenation
        self._finish_build()

    def _elements(self, dataset):
        from dlgpu.utils import PyDataset
        if isinstance(dataset, dict):
            yield dataset
            return
        if isinstance(dataset, PyDataset):
            count = dataset.num_batches
            if count is None:
                raise ValueError(f"FeatureSpace '{self.name}': adapt() needs a dataset with an end "
                                 f"(num_batches is None)")
            elements = (dataset[i] for i in range(count))
        elif hasattr(dataset, "__iter__") and not isinstance(dataset, (str, bytes, np.ndarray, Tensor)):
            elements = iter(dataset)
        else:
            raise ValueError(f"`adapt()` can only be called on a dataset of dicts or a dict of arrays/lists. "
                             f"Received instead: {type(dataset).__name__}")
        for element in elements:
            if isinstance(element, tuple) and element and isinstance(element[0], dict):
                element = element[0]
            if not isinstance(element, dict):
                raise ValueError(f"FeatureSpace '{self.name}': adapt() expects a dataset whose elements are dicts "
                                 f"of features (or (dict, labels) tuples); received an element of type "
                                 f"{type(element).__name__}")
            yield element

    def _column(self, data, name, where):
        """Feature ``name`` of the dict ``data`` as a host array, its dtype checked against the feature's."""
        if name not in data:
            raise ValueError(f"FeatureSpace '{self.name}': {where} received no value for feature {name!r}; the "
                             f"dict has keys {sorted(data)} and the features are {list(self.features)}")
        value = data[name]
        if isinstance(value, KerasTensor):
            raise ValueError(f"FeatureSpace '{self.name}': feature {name!r} is a symbolic tensor; a FeatureSpace "
                             f"is called on data. For a functional model use get_inputs() and "
                             f"get_encoded_features().")
        array = _host(value)
        dtype = str(self.features[name].dtype)
        kind = _kind(array)
        if dtype == "string":
            ok = kind == "string"
            expected = "strings"
        elif dtype.startswith(("int", "uint")):
            ok = kind in "iub" or (kind == "f" and bool(np.all(array == np.round(array))))
            expected = "integers"
        elif dtype.startswith(("float", "bfloat")):
            ok = kind in "iubf"
            expected = "numbers"
        else:
            ok, expected = True, None
        if not ok:
            received = "strings" if kind == "string" else f"dtype {array.dtype}"
            raise ValueError(f"FeatureSpace '{self.name}': feature {name!r} (dtype {dtype}) expects {expected}; "
                             f"{where} received {received} of shape {array.shape}")
        return array

    # -- the encoded graph ----------------------------------------------------------------------------
    def get_inputs(self):
        """The dict of Inputs (shape (1,), each feature's dtype) of a model that takes raw dicts."""
        self._check_if_built()
        return self.inputs

    def get_encoded_features(self):
        """The encoded features of get_inputs() (a KerasTensor, or a dict of them in dict mode)."""
        self._check_if_adapted()
        if self.encoded_features is None:
            preprocessed = self._preprocess_features(self.inputs)
            crossed = self._cross_features(preprocessed)
            self.encoded_features = self._merge_features(preprocessed, crossed)
        return self.encoded_features

    def _preprocess_features(self, features):
        return {name: self.preprocessors[name](features[name]) for name in features}

    def _cross_features(self, features):
        return {cross.name: self.crossers[cross.name]([features[name] for name in cross.feature_names])
                for cross in self.crosses}

    def _cardinality(self, name, preprocessor):
        layers = _layers()
        if isinstance(preprocessor, (layers.IntegerLookup, layers.StringLookup)):
            return preprocessor.vocabulary_size()
        if isinstance(preprocessor, layers.CategoryEncoding):
            return preprocessor.num_tokens
        if isinstance(preprocessor, layers.Discretization):
            # Keras reads num_bins only, which is None when the boundaries were given
            return preprocessor.num_bins if preprocessor.num_bins is not None else \
                len(preprocessor.bin_boundaries) + 1
        if isinstance(preprocessor, (layers.HashedCrossing, layers.Hashing)):
            return preprocessor.num_bins
        raise ValueError(f"Feature '{name}' has `output_mode='one_hot'`. However it isn't a standard feature and "
                         f"the dimensionality of its output space is not known, thus it cannot be one-hot encoded. "
                         f"Try using `output_mode='int'`.")

    def _merge_features(self, preprocessed, crossed):
        if not self._preprocessed_features_names:
            self._preprocessed_features_names = sorted(preprocessed)
            self._crossed_features_names = sorted(crossed)
        names = self._preprocessed_features_names + self._crossed_features_names
        values = [preprocessed[n] for n in self._preprocessed_features_names] + \
            [crossed[n] for n in self._crossed_features_names]
        if not self._sublayers_built:
            self._make_encoders(names, values)
        encoded = [self.one_hot_encoders[n](v) if n in self.one_hot_encoders else v for n, v in zip(names, values)]
        if self.output_mode == "dict":
            return dict(zip(names, encoded))
        if self.concat is None:
            for name, value in zip(names, encoded):
                dtype = _dtype_name(value)
                if dtype.startswith(("int", "uint")) or dtype == "string":
                    raise ValueError(f"Cannot concatenate features because feature '{name}' has not been encoded "
                                     f"(it has dtype {dtype}). Consider using `output_mode='dict'`.")
            self.concat = _layers().Concatenate(axis=-1, name=f"{self.name}_concat")
        return encoded[0] if len(encoded) == 1 else self.concat(encoded)

    def _make_encoders(self, names, values):
        """CategoryEncoding layers for the features and crosses marked one_hot (made once, on first use)."""
        specs = {**self.features, **self.crosses_by_name}
        for name, value in zip(names, values):
            if specs[name].output_mode != "one_hot" or name in self.one_hot_encoders:
                continue
            dtype = _dtype_name(value)
            if not dtype.startswith(("int", "uint")):
                raise ValueError(f"Feature '{name}' has `output_mode='one_hot'`. Thus its preprocessor should return "
                                 f"an integer dtype. Instead it returns a {dtype} dtype.")
            preprocessor = self.preprocessors.get(name) or self.crossers.get(name)
            encoder = _layers().CategoryEncoding(num_tokens=self._cardinality(name, preprocessor),
                                                 output_mode="multi_hot", name=f"{self.name}_{name}_encoder")
            self.one_hot_encoders[name] = encoder
            self._sublayers = self._sublayers + [encoder]

    def _check_if_adapted(self):
        if not self._is_adapted:
            if not self._list_adaptable_preprocessors():
                self._is_adapted = True
            else:
                raise ValueError("You need to call `.adapt(dataset)` on the FeatureSpace before you can start "
                                 "using it.")

    def _check_if_built(self):
        if not self._sublayers_built:
            self._check_if_adapted()
            self.get_encoded_features()
            self._finish_build()

    def _finish_build(self):
        self._sublayers_built = True
        self.built = True
        # What load_model hands back to build() (dlgpu saves a layer's build shapes with it).
        self._build_shapes = self.get_build_config()

    # -- calling on data ------------------------------------------------------------------------------
    def __call__(self, data):
        """Encode ``data``, a dict of columns: batched ((batch,) or (batch, 1) each) or one sample (scalars,
        whose result has no batch axis)."""
        self._check_if_built()
        if not isinstance(data, dict):
            raise ValueError(f"A FeatureSpace can only be called with a dict. Received: data={data!r} "
                             f"(of type {type(data)})")
        unknown = [k for k in data if k not in self.features]
        if unknown:
            raise ValueError(f"FeatureSpace '{self.name}' received unknown features {unknown}; its features are "
                             f"{list(self.features)}")
        columns, rebatched = {}, False
        for name in self.features:
            x = self._column(data, name, "__call__()")
            if x.ndim == 0:
                x, rebatched = x.reshape(1, 1), True
            elif x.ndim == 1:
                x = x[:, None]
            columns[name] = x
        preprocessed = self._preprocess_features(columns)
        crossed = self._cross_features(preprocessed)
        merged = self._merge_features(preprocessed, crossed)
        if rebatched:
            if isinstance(merged, dict):
                merged = {k: _squeeze0(v) for k, v in merged.items()}
            else:
                merged = _squeeze0(merged)
        return merged

    # -- config and saving ----------------------------------------------------------------------------
    def get_config(self):
        return {"features": {name: _serialize(f) for name, f in self.features.items()},
                "output_mode": self.output_mode,
                "crosses": [_serialize(c) for c in self.crosses],
                "crossing_dim": self.crossing_dim, "hashing_dim": self.hashing_dim,
                "num_discretization_bins": self.num_discretization_bins}

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def get_build_config(self):
        return {name: feature.preprocessor.get_build_config() if isinstance(feature.preprocessor, Layer) else None
                for name, feature in self.features.items()}

    def build_from_config(self, config):
        for name, build_config in (config or {}).items():
            preprocessor = self.features[name].preprocessor if name in self.features else None
            if build_config and isinstance(preprocessor, Layer) and not preprocessor.built:
                preprocessor.build_from_config(build_config)
        self._is_adapted = True

    def build(self, input_shape=None):
        # load_model builds a layer from its saved build shapes, which for a FeatureSpace are its build config:
        # the preprocessors' state is in their configs and weights, so it counts as adapted.
        self.build_from_config(input_shape if isinstance(input_shape, dict) else None)
        self._check_if_built()

    def save(self, filepath):
        """Save to ``filepath`` (any name, ``.keras`` included) in dlgpu's format; ``dlgpu.saving.load_model``
        reads it back.  (Keras's own loader could not use the file: its FeatureSpace needs TensorFlow.)"""
        import os
        from dlgpu.models.saving import write_dlgpu_model
        self._check_if_built()
        write_dlgpu_model(self, os.fspath(filepath))

    def __repr__(self):
        return f"<FeatureSpace name={self.name}, features={list(self.features)}, output_mode={self.output_mode}>"


def _dtype_name(value):
    """"int64", "float32", "string"... of a KerasTensor, Tensor or numpy array."""
    dtype = getattr(value, "dtype", None)
    if isinstance(dtype, str):
        return dtype
    dtype = np.dtype(dtype)
    return "string" if dtype.kind in "USO" else dtype.name


def _squeeze0(value):
    """A batch of one without its batch axis (a single sample's result)."""
    from dlgpu import ops
    if isinstance(value, Tensor):
        return ops.squeeze(value, axis=0) if value.shape[0] == 1 else value
    return value[0] if np.shape(value)[:1] == (1,) else value
