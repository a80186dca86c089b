"""Keras's legacy HDF5 files (model.save("m.h5"), save_weights("w.h5")) read by dlgpu."""

import warnings

import numpy as np
import pytest

import dlgpu

h5py = pytest.importorskip("h5py")
rng = np.random.default_rng(0)
X = rng.normal(size=(5, 4)).astype("float32")


def _keras_models(keras):
    sequential = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, activation="relu"),
                                   keras.layers.BatchNormalization(), keras.layers.Dense(1)])
    inputs = keras.Input((4,), name="x")
    a, b = keras.layers.Dense(3, name="a")(inputs), keras.layers.Dense(3, name="b")(inputs)
    functional = keras.Model(inputs, keras.layers.Dense(2, name="head")(keras.layers.Concatenate()([a, b])))
    return {"sequential": sequential, "functional": functional}


def test_keras_legacy_h5_models_load_with_their_weights_and_compile_settings(keras, tmp_path):
    for name, model in _keras_models(keras).items():
        model.compile(keras.optimizers.Adam(0.01), "mse", metrics=["mae"])
        model.fit(X, np.ones((5, model.outputs[0].shape[-1]), "float32"), verbose=0)
        path = tmp_path / f"{name}.h5"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # Keras says the format is legacy
            model.save(path)
        with pytest.warns(UserWarning, match="optimizer state is not read"):
            loaded = dlgpu.models.load_model(path)
        np.testing.assert_allclose(loaded.predict(X, verbose=0), model.predict(X, verbose=0), rtol=1e-5, atol=1e-6)
        assert loaded.compiled and type(loaded.optimizer).__name__ == "Adam"
        assert loaded.optimizer.get_config()["learning_rate"] == pytest.approx(0.01)
        assert set(loaded.evaluate(X, np.ones((5, model.outputs[0].shape[-1])), verbose=0, return_dict=True)) \
            == {"loss", "mae"}


def test_a_keras_2_weights_file_loads_by_layer_order(tmp_path):
    """The layout Keras 2 wrote with save_weights("w.h5"): one group per layer with weights, in order."""
    model = dlgpu.Sequential([dlgpu.Input((4,)), dlgpu.layers.Dense(3), dlgpu.layers.Dropout(0.1),
                              dlgpu.layers.Dense(2)])
    arrays = [rng.normal(size=w.shape).astype("float32") for w in model.weights]
    with h5py.File(tmp_path / "w.h5", "w") as h5:
        h5.attrs["layer_names"] = np.array([b"dense_7", b"dropout_2", b"dense_8"])
        for layer, weights in (("dense_7", arrays[:2]), ("dropout_2", []), ("dense_8", arrays[2:])):
            group = h5.create_group(layer)
            names = [f"{layer}/kernel:0", f"{layer}/bias:0"][:len(weights)]
            group.attrs["weight_names"] = np.array([n.encode() for n in names])
            for n, w in zip(names, weights):
                group[n] = w
    model.load_weights(tmp_path / "w.h5")
    for got, want in zip(model.get_weights(), arrays):
        np.testing.assert_array_equal(got, want)
    wrong = dlgpu.Sequential([dlgpu.Input((4,)), dlgpu.layers.Dense(5), dlgpu.layers.Dense(2)])
    before = [w.copy() for w in wrong.get_weights()]
    with pytest.raises(ValueError, match="shape"):
        wrong.load_weights(tmp_path / "w.h5")
    assert all(np.array_equal(a, b) for a, b in zip(wrong.get_weights(), before))  # nothing changed


def test_a_weights_only_legacy_file_is_refused_by_load_model(tmp_path):
    with h5py.File(tmp_path / "w.h5", "w") as h5:
        h5.attrs["layer_names"] = np.array([b"dense"])
        h5.create_group("dense").attrs["weight_names"] = np.array([], dtype="S1")
    with pytest.raises(ValueError, match="weights only"):
        dlgpu.models.load_model(tmp_path / "w.h5")


def test_dlgpu_writes_legacy_h5_that_keras_reads(keras, tmp_path):
    for name, model in _keras_models(dlgpu).items():
        model.compile(dlgpu.optimizers.Adam(0.01), "mean_squared_error")
        model.fit(X, np.ones((5, model.outputs[0].shape[-1]), "float32"), verbose=0)
        model.save(tmp_path / f"{name}.h5")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            loaded = keras.models.load_model(tmp_path / f"{name}.h5")
        np.testing.assert_allclose(keras.ops.convert_to_numpy(loaded.predict(X, verbose=0)),
                                   model.predict(X, verbose=0), rtol=1e-5, atol=1e-6)
        assert loaded.compiled and loaded.optimizer.learning_rate.numpy() == pytest.approx(0.01)
        back = dlgpu.models.load_model(tmp_path / f"{name}.h5")
        np.testing.assert_array_equal(back.predict(X, verbose=0), model.predict(X, verbose=0))
