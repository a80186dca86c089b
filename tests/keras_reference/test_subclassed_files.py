"""Subclassed models and user layers holding layers, in Keras's .keras and .weights.h5 files, both ways.

Keras finds such a model's weights by walking its attributes (sorted, private ones last; a list's layers
named by class); the same class written once for each library must read the other's files, optimizer
state included."""

import numpy as np
import pytest

import dlgpu

rng = np.random.default_rng(0)
X = rng.normal(size=(8, 5)).astype("float32")
Y = rng.normal(size=(8, 1)).astype("float32")


def _classes(lib):
    class Block(lib.layers.Layer):
        def __init__(self, units=3, **kwargs):
            super().__init__(**kwargs)
            self.units = units
            self.proj = lib.layers.Dense(units)
            self.norms = {"a": lib.layers.LayerNormalization(), "b": lib.layers.BatchNormalization()}
            self._private = lib.layers.Dense(units)
            self.stack = lib.Sequential([lib.layers.Dense(units), lib.layers.Dense(units)])
            self.nested = [[lib.layers.Dense(units)], lib.layers.Dense(units)]

        def build(self, input_shape):
            self.scale = self.add_weight(shape=(self.units,), initializer="ones", name="scale")
            self.offset = self.add_weight(shape=(), initializer="zeros", trainable=False, name="offset")

        def call(self, x):
            y = self.norms["b"](self.norms["a"](self.proj(x))) + self._private(x)
            y = self.stack(y) + self.nested[0][0](y) + self.nested[1](y)
            return y * self.scale + self.offset

        def get_config(self):
            return {**super().get_config(), "units": self.units}

    class Regressor(lib.Model):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.encoder = Block(4)
            self.head = lib.layers.Dense(1)
            self.total_loss_tracker = lib.metrics.Mean(name="total_loss")

        def call(self, x):
            return self.head(self.encoder(x))

    return {"Block": Block, "Regressor": Regressor}


def _write(lib, folder):
    classes = _classes(lib)
    inputs = lib.Input((5,))
    functional = lib.Model(inputs, lib.layers.Dense(2)(classes["Block"](3)(inputs)))
    functional.compile("adam", "mse")
    functional.fit(X, rng.normal(size=(8, 2)).astype("float32"), verbose=0)
    functional.save(folder / "functional.keras")
    subclassed = classes["Regressor"]()
    subclassed.compile("adam", "mse")
    subclassed.fit(X, Y, epochs=2, verbose=0)
    subclassed.save(folder / "subclassed.keras")
    subclassed.save_weights(folder / "subclassed.weights.h5")
    return {"functional": functional.predict(X, verbose=0), "subclassed": subclassed.predict(X, verbose=0)}


def _read(lib, folder, expected):
    classes = _classes(lib)
    for name, iterations in (("functional", 1), ("subclassed", 2)):
        model = lib.models.load_model(folder / f"{name}.keras", custom_objects=classes)
        np.testing.assert_allclose(model.predict(X, verbose=0), expected[name], rtol=1e-5, atol=1e-6, err_msg=name)
        assert int(np.asarray(model.optimizer.iterations)) == iterations, name  # the optimizer state came too
        model.fit(X, Y if name == "subclassed" else np.zeros((8, 2), "float32"), verbose=0)  # and trains on
    fresh = classes["Regressor"]()
    fresh(X)
    fresh.load_weights(folder / "subclassed.weights.h5")
    np.testing.assert_allclose(fresh.predict(X, verbose=0), expected["subclassed"], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("writer", ["keras", "dlgpu"])
def test_subclassed_models_and_layers_cross_over(keras, writer, tmp_path):
    libs = {"keras": keras, "dlgpu": dlgpu}
    reader = "dlgpu" if writer == "keras" else "keras"
    expected = _write(libs[writer], tmp_path)
    _read(libs[reader], tmp_path, expected)


def test_nested_lists_of_layers_are_trained():
    block = _classes(dlgpu)["Block"](3)
    block(X)
    nested = block.nested[0][0]
    assert all(any(v is w for w in block.trainable_weights) for v in nested.trainable_weights)


def _json_models(lib):
    inputs = lib.Input((6,), name="x")
    hidden = lib.layers.Dropout(0.2)(lib.layers.Dense(4, activation="relu", name="h")(inputs))
    functional = lib.Model(inputs, lib.layers.Dense(2, name="o")(hidden), name="functional_json")
    functional.compile("adam", "mse", metrics=["mae"])
    return [functional, lib.Sequential([lib.Input((3,)), lib.layers.Dense(2)], name="sequential_json")]


@pytest.mark.parametrize("writer", ["keras", "dlgpu"])
def test_to_json_is_read_by_the_other_library(keras, writer):
    libs = {"keras": keras, "dlgpu": dlgpu}
    reader = libs["dlgpu" if writer == "keras" else "keras"]
    for model in _json_models(libs[writer]):
        rebuilt = reader.models.model_from_json(model.to_json())
        assert rebuilt.name == model.name and [l.name for l in rebuilt.layers] == [l.name for l in model.layers]
        assert [tuple(w.shape) for w in rebuilt.weights] == [tuple(w.shape) for w in model.weights]
    assert rebuilt.compiled is False and reader.models.model_from_json(
        _json_models(libs[writer])[0].to_json()).compiled  # the compile settings came across too
