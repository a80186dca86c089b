"""Patterns of keras.io's 3D CT-scan classifier: volumes normalised and augmented with scipy (rotation,
Gaussian blur) in a PyDataset, Conv3D / MaxPool3D / BatchNormalization / GlobalAveragePooling3D, an
ExponentialDecay(staircase=True) schedule, metrics=["acc"] logged as "acc" and "val_acc", EarlyStopping on
val_acc, the best model checkpointed and its weights loaded back, and ``model.history`` after fit."""

import random

import numpy as np
import pytest

import dlgpu as keras
from dlgpu import layers

ndimage = pytest.importorskip("scipy.ndimage")


def normalize(volume):
    volume = (volume - -1000) / (400 - -1000)
    volume[volume > 1] = 1.0
    volume[volume < 0] = 0.0
    return np.expand_dims(volume, axis=3).astype("float32")


def augment(volume):
    choice = random.choice(["rotate", "blur", "normal"])
    if choice == "rotate":
        volume = ndimage.rotate(volume, random.choice([-20, -10, 10, 20]), reshape=False)
    elif choice == "blur":
        volume = ndimage.gaussian_filter(volume, sigma=1)
    return normalize(volume)


class Scans(keras.utils.PyDataset):
    def __init__(self, volumes, labels, train, **kwargs):
        super().__init__(**kwargs)
        self.volumes, self.labels, self.train = volumes, labels, train

    def __len__(self):
        return len(self.volumes) // 2

    def __getitem__(self, index):
        part = slice(2 * index, 2 * index + 2)
        prepare = augment if self.train else normalize
        return np.stack([prepare(v.copy()) for v in self.volumes[part]]), self.labels[part]


def test_normalize_clips_hounsfield_units():
    volume = np.array([[[-2000.0, -1000.0], [-300.0, 900.0]]])
    out = normalize(volume)
    assert out.shape == (1, 2, 2, 1)
    np.testing.assert_allclose(out[..., 0], [[[0.0, 0.0], [0.5, 1.0]]])


def test_3d_cnn_trains_checkpoints_and_reloads(tmp_path):
    keras.utils.set_random_seed(0)
    random.seed(0)
    rng = np.random.default_rng(0)
    labels = np.array([1, 0] * 4)
    volumes = rng.uniform(-1200, 0, (8, 10, 10, 10)) + labels[:, None, None, None] * 700

    inputs = keras.Input((10, 10, 10, 1))
    x = layers.BatchNormalization()(layers.MaxPool3D(pool_size=2)(layers.Conv3D(4, 3, activation="relu")(inputs)))
    x = layers.GlobalAveragePooling3D()(layers.Conv3D(4, 3, activation="relu")(x))
    outputs = layers.Dense(1, activation="sigmoid")(layers.Dropout(0.3)(layers.Dense(8, activation="relu")(x)))
    model = keras.Model(inputs, outputs, name="3dcnn")
    assert model.name == "3dcnn" and model.output_shape == (None, 1)

    schedule = keras.optimizers.schedules.ExponentialDecay(0.01, decay_steps=3, decay_rate=0.5, staircase=True)
    assert [float(schedule(s)) for s in (0, 2, 3, 7)] == [pytest.approx(v) for v in (0.01, 0.01, 0.005, 0.0025)]
    model.compile(loss="binary_crossentropy", optimizer=keras.optimizers.Adam(learning_rate=schedule), metrics=["acc"])
    path = str(tmp_path / "best.keras")
    model.fit(Scans(volumes[:6], labels[:6], True), validation_data=Scans(volumes[6:], labels[6:], False),
              epochs=4, shuffle=True, verbose=0,
              callbacks=[keras.callbacks.ModelCheckpoint(path, save_best_only=True),
                         keras.callbacks.EarlyStopping(monitor="val_acc", patience=10)])
    logs = model.history.history
    assert set(logs) == {"acc", "loss", "val_acc", "val_loss"} and len(logs["acc"]) == 4
    assert logs["loss"][-1] < logs["loss"][0]

    fresh = keras.models.load_model(path)
    model.load_weights(path)
    scan = np.expand_dims(normalize(volumes[6].copy()), axis=0)
    prediction = model.predict(scan, verbose=0)[0]
    np.testing.assert_allclose(prediction, fresh.predict(scan, verbose=0)[0], rtol=1e-6)
    assert 0 <= prediction[0] <= 1
    # the file holds the epoch with the lowest val_loss (ModelCheckpoint's default monitor)
    best = fresh.evaluate(Scans(volumes[6:], labels[6:], False), verbose=0)[0]
    np.testing.assert_allclose(best, min(logs["val_loss"]), rtol=1e-5)
