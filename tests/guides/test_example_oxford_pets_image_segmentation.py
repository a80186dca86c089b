"""Patterns of keras.io's U-Net-like segmentation of Oxford pets: a keras.utils.Sequence that loads
image files with load_img(target_size=...) and grayscale masks (labels 1..3 shifted to 0..2, uint8), an
Xception-style encoder (SeparableConv2D, strided MaxPooling2D, strided 1x1 residual projections added
with layers.add) and decoder (Conv2DTranspose, UpSampling2D), a per-pixel softmax trained with sparse
categorical cross-entropy and rmsprop, the best checkpoint kept by val_loss, clear_session, and the
argmax mask of predict turned back into an image."""

import os

import numpy as np
import pytest

import dlgpu as keras
from dlgpu import layers

PIL = pytest.importorskip("PIL.Image")


class Pets(keras.utils.Sequence):
    def __init__(self, batch_size, img_size, inputs, targets):
        super().__init__()
        self.batch_size, self.img_size, self.inputs, self.targets = batch_size, img_size, inputs, targets

    def __len__(self):
        return len(self.targets) // self.batch_size

    def __getitem__(self, idx):
        i = idx * self.batch_size
        x = np.zeros((self.batch_size,) + self.img_size + (3,), dtype="float32")
        for j, path in enumerate(self.inputs[i:i + self.batch_size]):
            x[j] = keras.utils.load_img(path, target_size=self.img_size)
        y = np.zeros((self.batch_size,) + self.img_size + (1,), dtype="uint8")
        for j, path in enumerate(self.targets[i:i + self.batch_size]):
            y[j] = np.expand_dims(keras.utils.load_img(path, target_size=self.img_size, color_mode="grayscale"), 2)
            y[j] -= 1
        return x, y


def unet(img_size, classes):
    inputs = keras.Input(shape=img_size + (3,))
    x = layers.Activation("relu")(layers.BatchNormalization()(layers.Conv2D(8, 3, strides=2, padding="same")(inputs)))
    previous = x
    for filters in (8, 16):
        for _ in range(2):
            x = layers.BatchNormalization()(layers.SeparableConv2D(filters, 3, padding="same")(layers.Activation("relu")(x)))
        x = layers.MaxPooling2D(3, strides=2, padding="same")(x)
        x = previous = layers.add([x, layers.Conv2D(filters, 1, strides=2, padding="same")(previous)])
    for filters in (16, 8, 4):
        for _ in range(2):
            x = layers.BatchNormalization()(layers.Conv2DTranspose(filters, 3, padding="same")(layers.Activation("relu")(x)))
        x = layers.UpSampling2D(2)(x)
        residual = layers.Conv2D(filters, 1, padding="same")(layers.UpSampling2D(2)(previous))
        x = previous = layers.add([x, residual])
    return keras.Model(inputs, layers.Conv2D(classes, 3, activation="softmax", padding="same")(x))


def _write_pets(root, count, rng):
    os.makedirs(root / "images")
    os.makedirs(root / "trimaps")
    for i in range(count):
        mask = np.ones((20, 26), "uint8")
        mask[4:14, 5:18] = 2  # the pet
        mask[4:14, 5] = 3  # its border
        shade = np.where(mask[..., None] == 2, 200, 40) + rng.integers(0, 30, (20, 26, 3))
        PIL.fromarray(shade.astype("uint8")).save(root / "images" / f"pet_{i}.jpg")
        PIL.fromarray(mask).save(root / "trimaps" / f"pet_{i}.png")


def test_load_img_resizes_with_nearest_and_reads_grayscale(tmp_path):
    pixels = np.arange(4 * 6, dtype="uint8").reshape(4, 6) * 10
    PIL.fromarray(pixels).save(tmp_path / "mask.png")
    rgb = keras.utils.load_img(str(tmp_path / "mask.png"), target_size=(2, 3))
    assert rgb.mode == "RGB" and rgb.size == (3, 2)
    gray = np.asarray(keras.utils.load_img(str(tmp_path / "mask.png"), target_size=(2, 3), color_mode="grayscale"))
    np.testing.assert_array_equal(gray, pixels[1::2, 1::2])  # Pillow's nearest: the pixel under each centre


def test_unet_segments_from_a_sequence_of_files(tmp_path):
    keras.backend.clear_session()
    keras.utils.set_random_seed(0)
    _write_pets(tmp_path, 8, np.random.default_rng(0))
    inputs = sorted(str(p) for p in (tmp_path / "images").iterdir())
    targets = sorted(str(p) for p in (tmp_path / "trimaps").iterdir() if not p.name.startswith("."))
    size = (16, 16)
    train, val = Pets(2, size, inputs[:6], targets[:6]), Pets(2, size, inputs[6:], targets[6:])
    x, y = train[0]
    assert x.shape == (2, 16, 16, 3) and y.dtype == np.uint8 and set(np.unique(y)) <= {0, 1, 2}

    model = unet(size, 3)
    assert model.output_shape == (None, 16, 16, 3)
    model.compile(optimizer="rmsprop", loss="sparse_categorical_crossentropy")
    path = str(tmp_path / "segmentation.keras")
    history = model.fit(train, epochs=3, validation_data=val, verbose=0,
                        callbacks=[keras.callbacks.ModelCheckpoint(path, save_best_only=True)]).history
    assert history["loss"][-1] < history["loss"][0]

    preds = model.predict(Pets(2, size, inputs[6:], targets[6:]), verbose=0)
    assert preds.shape == (2, 16, 16, 3)
    np.testing.assert_allclose(preds.sum(axis=-1), 1.0, rtol=1e-5)
    _, y_val = val[0]
    picked = np.take_along_axis(preds, y_val.astype("int64"), axis=-1)
    loss = model.evaluate(val, verbose=0)
    np.testing.assert_allclose(loss, -np.log(picked).mean(), rtol=1e-4)  # per-pixel sparse cross-entropy

    best = keras.models.load_model(path)
    np.testing.assert_allclose(best.evaluate(val, verbose=0), min(history["val_loss"]), rtol=1e-5)
    mask = np.expand_dims(np.argmax(preds[1], axis=-1), axis=-1)
    assert keras.utils.array_to_img(mask).size == (16, 16)
