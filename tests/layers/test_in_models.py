"""The activation, reshaping, 1-D convolution and pooling layers inside models: they train, and a saved model
loads back with the same layers and identical predictions."""

import numpy as np
import pytest

import dlgpu
from dlgpu import layers
from dlgpu.models import load_model
from helpers import assert_model_on_gpu_matches_cpu


def _image_model():
    return dlgpu.Sequential([
        dlgpu.Input(shape=(8, 8, 1)),
        layers.Rescaling(1 / 255.0, offset=-0.5),
        layers.ZeroPadding2D(1),
        layers.Conv2D(6, 3),
        layers.LeakyReLU(),
        layers.SpatialDropout2D(0.2),
        layers.MaxPooling2D(),
        layers.UpSampling2D(2),
        layers.Cropping2D(((1, 1), (2, 0))),
        layers.Conv2D(4, 3),
        layers.ELU(),
        layers.GlobalAveragePooling2D(),
        layers.Dense(3),
        layers.Softmax(),
    ])


def _images(n, rng):
    """Three classes: a bright top half, a bright left half, or dark, on uint8 images."""
    y = rng.integers(0, 3, n)
    x = rng.integers(0, 60, (n, 8, 8, 1))
    x[y == 0, :4] += 180
    x[y == 1, :, :4] += 180
    return x.astype(np.uint8), y


def _sequence_model():
    inputs = dlgpu.Input(shape=(12, 2))
    h = layers.Conv1D(8, 3, padding="causal")(inputs)
    h = layers.ReLU(max_value=6.0)(h)
    h = layers.MaxPooling1D(2)(h)
    h = layers.Conv1D(8, 3, strides=1, padding="same", activation="tanh")(h)
    h = layers.AveragePooling1D(2, padding="same")(h)
    h = layers.GlobalAveragePooling1D()(h)
    h = layers.RepeatVector(4)(h)
    h = layers.Permute((2, 1))(h)
    h = layers.Conv1D(4, 2, activation="relu")(h)
    h = layers.GlobalMaxPooling1D()(h)
    outputs = layers.Dense(2, activation="softmax")(layers.ReLU(negative_slope=0.1)(h))
    return dlgpu.Model(inputs, outputs, name="sequences")


def _sequences(n, rng):
    """Two classes: the first channel rises or falls along the sequence."""
    y = rng.integers(0, 2, n)
    ramp = np.linspace(-1, 1, 12)
    x = rng.standard_normal((n, 12, 2)) * 0.3
    x[:, :, 0] += np.where(y[:, None] == 1, ramp, -ramp)
    return x.astype(np.float32), y


@pytest.mark.parametrize("make_model,make_data", [(_image_model, _images), (_sequence_model, _sequences)],
                         ids=["images", "sequences"])
def test_model_trains_and_round_trips(make_model, make_data, tmp_path):
    dlgpu.set_random_seed(0)
    rng = np.random.default_rng(0)
    x, y = make_data(128, rng)
    model = make_model()
    model.compile(optimizer=dlgpu.optimizers.Adam(0.01), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    history = model.fit(x, y, epochs=15, batch_size=32, verbose=0).history
    assert history["loss"][-1] < 0.7 * history["loss"][0], history["loss"]
    assert history["accuracy"][-1] > 0.8, history["accuracy"]

    path = tmp_path / "model.dlgpu"
    model.save(path)
    loaded = load_model(path)
    assert [type(l) for l in loaded.layers] == [type(l) for l in model.layers]
    assert [l.get_config() for l in loaded.layers] == [l.get_config() for l in model.layers]
    x_test, _ = make_data(16, np.random.default_rng(1))
    np.testing.assert_array_equal(loaded.predict(x_test, verbose=0), model.predict(x_test, verbose=0))
    loaded.fit(x, y, epochs=1, verbose=0)  # still trainable after loading (compile config restored)


@pytest.mark.gpu
@pytest.mark.parametrize("make_model,make_data", [(_image_model, _images), (_sequence_model, _sequences)],
                         ids=["images", "sequences"])
def test_model_on_gpu_matches_cpu(make_model, make_data):
    x, _ = make_data(32, np.random.default_rng(2))
    assert_model_on_gpu_matches_cpu(make_model, x)
