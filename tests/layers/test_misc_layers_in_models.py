"""The regularization, normalization, Dot, TimeDistributed and 1-D/3-D reshaping layers together in models:
trained with fit, saved and loaded, Keras-written configs read, and the same model on a GPU against the CPU."""

import numpy as np
import pytest

import dlgpu
from dlgpu import layers
from dlgpu.models import load_model
from helpers import assert_model_on_gpu_matches_cpu


def _video_model():
    """(time, height, width, channels) clips -> 3 classes, through most of the new layers."""
    inputs = dlgpu.Input((4, 6, 6, 2))
    x = layers.GaussianNoise(0.05, seed=0)(inputs)
    x = layers.TimeDistributed(layers.Conv2D(4, 3, padding="same", activation="relu"))(x)
    x = layers.TimeDistributed(layers.UpSampling2D(interpolation="bilinear"))(x)
    x = layers.TimeDistributed(layers.GlobalAveragePooling2D(keepdims=False))(x)    # (4, 4)
    x = layers.GroupNormalization(groups=2)(x)
    a = layers.TimeDistributed(layers.Dense(5))(x)
    b = layers.Cropping1D(1)(layers.UpSampling1D(2)(layers.ZeroPadding1D(1)(x)))    # (8, 4)
    b = layers.Dense(5)(b)
    scores = layers.Dot(axes=2, normalize=True)([a, b])                               # (4, 8)
    x = layers.Flatten()(scores)
    x = layers.ActivityRegularization(l2=1e-4)(x)
    x = layers.AlphaDropout(0.05, seed=1)(x)
    x = layers.GaussianDropout(0.05, seed=2)(x)
    x = layers.UnitNormalization()(layers.Identity()(x))
    x = layers.LayerNormalization(rms_scaling=False)(x)
    outputs = layers.Dense(3, activation="softmax")(x)
    return dlgpu.Model(inputs, outputs)


def _data(n=48, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    x = rng.standard_normal((n, 4, 6, 6, 2)).astype(np.float32) * 0.5
    x[..., 0] += y[:, None, None, None]  # the class shows in the first channel's level
    return x, y


def test_model_of_new_layers_trains_saves_and_loads(tmp_path):
    dlgpu.set_random_seed(0)
    model = _video_model()
    model.compile(optimizer=dlgpu.optimizers.Adam(0.02), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    x, y = _data()
    history = model.fit(x, y, batch_size=16, epochs=6, verbose=0)
    losses = history.history["loss"]
    assert losses[-1] < 0.7 * losses[0], losses
    path = tmp_path / "video.dlgpu"
    model.save(path)
    loaded = load_model(path)
    np.testing.assert_allclose(loaded.predict(x, verbose=0), model.predict(x, verbose=0), rtol=1e-5, atol=1e-6)
    assert [type(l).__name__ for l in loaded.layers] == [type(l).__name__ for l in model.layers]
    loaded.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    loaded.fit(x[:1], y[:1], batch_size=1, epochs=1, verbose=0)  # batch 1 trains too


def test_sequential_with_batch_one_and_keras_style_config():
    """A Sequential of the simpler layers, built from the config Keras writes for them."""
    keras_config = [
        {"class_name": "ZeroPadding3D", "config": {"name": "zp", "padding": [[1, 1], [0, 0], [1, 1]],
                                                   "data_format": "channels_last", "trainable": True}},
        {"class_name": "Cropping3D", "config": {"name": "cr", "cropping": [[1, 1], [0, 0], [1, 1]],
                                                "data_format": "channels_last"}},
        {"class_name": "UpSampling3D", "config": {"name": "up", "size": [1, 2, 1], "data_format": "channels_last"}},
        {"class_name": "Reshape", "config": {"name": "rs", "target_shape": [4, 12]}},
        {"class_name": "GroupNormalization", "config": {"name": "gn", "groups": 4, "axis": -1, "epsilon": 0.001,
                                                        "center": True, "scale": True, "beta_constraint": None,
                                                        "gamma_constraint": None}},
        {"class_name": "RMSNormalization", "config": {"name": "rms", "axis": -1, "epsilon": 1e-6}},
        {"class_name": "GaussianNoise", "config": {"name": "noise", "stddev": 0.1, "seed": 3}},
        {"class_name": "UnitNormalization", "config": {"name": "un", "axis": -1}},
        {"class_name": "GlobalMaxPooling1D", "config": {"name": "gmp", "data_format": "channels_last",
                                                        "keepdims": True}},
        {"class_name": "Flatten", "config": {"name": "fl"}},
        {"class_name": "Dense", "config": {"name": "out", "units": 2}},
    ]
    model = dlgpu.Sequential([dlgpu.Input((2, 1, 2, 6))] + [layers.deserialize(c) for c in keras_config])
    x = np.random.default_rng(1).standard_normal((1, 2, 1, 2, 6)).astype(np.float32)
    assert model(x, training=True).shape == (1, 2)
    model.compile(optimizer="adam", loss="mse")
    model.fit(x, np.zeros((1, 2), np.float32), batch_size=1, epochs=2, verbose=0)
    assert model.get_layer("gmp").compute_output_shape((None, 4, 12)) == (None, 1, 12)


@pytest.mark.gpu
def test_model_of_new_layers_on_gpu_matches_cpu():
    x, _ = _data(n=4, seed=1)
    assert_model_on_gpu_matches_cpu(_video_model, x)
