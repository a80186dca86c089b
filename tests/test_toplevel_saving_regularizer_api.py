"""Top-level keras names (Loss, Metric, Optimizer, Initializer, Regularizer, version), keras.saving's
save_weights/load_weights functions, and OrthogonalRegularizer inside a trained, saved and reloaded model."""

import numpy as np
import pytest

import dlgpu
from dlgpu import layers, regularizers, saving


def test_top_level_base_classes_and_version():
    assert dlgpu.Loss is dlgpu.losses.Loss and dlgpu.Metric is dlgpu.metrics.Metric
    assert dlgpu.Optimizer is dlgpu.optimizers.Optimizer and dlgpu.Initializer is dlgpu.initializers.Initializer
    assert dlgpu.Regularizer is regularizers.Regularizer
    assert dlgpu.version() == dlgpu.__version__
    assert isinstance(dlgpu.losses.MeanSquaredError(), dlgpu.Loss)


def _model(regularizer=None):
    model = dlgpu.Sequential([layers.Dense(4, input_shape=(3,), kernel_regularizer=regularizer), layers.Dense(1)])
    model.compile(optimizer="adam", loss="mse")
    return model


@pytest.mark.parametrize("name", ["w.weights.h5", "w.weights.dlgpu"])
def test_saving_functions_round_trip(tmp_path, name):
    model = _model()
    x = np.random.RandomState(0).rand(8, 3).astype(np.float32)
    model.fit(x, x[:, :1], epochs=1, verbose=0)
    path = tmp_path / name
    saving.save_weights(model, path)
    other = _model()
    other.build((None, 3))
    saving.load_weights(other, path)
    np.testing.assert_array_equal(model.predict(x, verbose=0), other.predict(x, verbose=0))
    with pytest.raises(FileExistsError):
        saving.save_weights(model, path, overwrite=False)
    with pytest.raises(NotImplementedError, match="max_shard_size"):
        saving.save_weights(model, tmp_path / "s.weights.json", max_shard_size=1)
    with pytest.raises(NotImplementedError, match="skip_mismatch"):
        saving.load_weights(other, path, skip_mismatch=True)
    with pytest.raises(NotImplementedError, match="by_name"):
        saving.load_weights(other, path, by_name=True)
    with pytest.raises(ValueError, match="invalid keyword"):
        saving.load_weights(other, path, bogus=1)


def test_orthogonal_regularizer_in_a_model(tmp_path):
    reg = regularizers.OrthogonalRegularizer(factor=0.5, mode="columns")
    model = _model(reg)
    x = np.random.RandomState(1).rand(16, 3).astype(np.float32)
    model(x)
    kernel = model.layers[0].kernel.numpy()
    unit = kernel / np.linalg.norm(kernel, axis=0, keepdims=True)
    gram = np.abs(unit.T @ unit)
    expected = 0.5 * 0.5 * (gram.sum() - np.trace(gram)) / (4 * 3 / 2)
    np.testing.assert_allclose(float(model.losses[0]), expected, rtol=1e-5)
    model.fit(x, x[:, :1], epochs=2, batch_size=8, verbose=0)
    path = tmp_path / "m.keras"
    model.save(path)
    loaded = dlgpu.saving.load_model(path)
    assert loaded.layers[0].kernel_regularizer.get_config() == {"factor": 0.5, "mode": "columns"}
    np.testing.assert_allclose(float(loaded.losses[0]), float(model.losses[0]), rtol=1e-6)
    assert isinstance(regularizers.get("orthogonal_regularizer"), regularizers.OrthogonalRegularizer)
    with pytest.raises(ValueError, match="rank 2"):
        reg(np.ones((2, 2, 2), np.float32))
    with pytest.raises(ValueError, match="mode"):
        regularizers.OrthogonalRegularizer(mode="diagonal")
    with pytest.raises(ValueError, match="factor"):
        regularizers.OrthogonalRegularizer(factor=-1)
