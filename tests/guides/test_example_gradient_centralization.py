"""Patterns of keras.io's gradient centralization example: an optimizer subclass that removes each
multi-axis gradient's mean before the update (in Keras 3 the hook that fit calls is ``apply``; the
example's Keras 2 ``get_gradients`` is never called), recompiling one model with another optimizer, a
timing callback whose hooks default ``logs={}``, and images from a directory rescaled and augmented
(RandomFlip("horizontal_and_vertical"), RandomRotation, RandomZoom with training=True) through ``.map``."""

import os
from time import time

import numpy as np
import pytest

import dlgpu as keras
from dlgpu import layers, ops
from dlgpu.optimizers import RMSprop

PIL = pytest.importorskip("PIL.Image")


class CentralizedRMSprop(RMSprop):
    def apply(self, grads, trainable_variables=None):
        centred = []
        for grad in grads:
            if grad is not None and len(grad.shape) > 1:
                grad = grad - ops.mean(grad, axis=list(range(len(grad.shape) - 1)), keepdims=True)
            centred.append(grad)
        return super().apply(centred, trainable_variables)


def test_centralized_update_matches_rmsprop_on_centred_gradients():
    kernel = keras.Variable(np.arange(6, dtype="float32").reshape(3, 2))
    bias = keras.Variable(np.array([1.0, -1.0], "float32"))
    grads = [np.array([[1.0, 2.0], [3.0, 5.0], [2.0, 2.0]], "float32"), np.array([0.5, 1.5], "float32")]
    CentralizedRMSprop(learning_rate=0.1).apply_gradients(zip([ops.convert_to_tensor(g) for g in grads],
                                                              [kernel, bias]))
    # RMSprop's first step: v = (1 - rho) g^2, w -= lr * g / sqrt(v + eps)
    def step(w, g):
        return w - 0.1 * g / np.sqrt(0.1 * g * g + 1e-7)
    centred = grads[0] - grads[0].mean(axis=0, keepdims=True)
    np.testing.assert_allclose(kernel.numpy(), step(np.arange(6, dtype="float32").reshape(3, 2), centred), rtol=1e-5)
    np.testing.assert_allclose(bias.numpy(), step(np.array([1.0, -1.0]), grads[1]), rtol=1e-5)  # 1-D: untouched


class TimeHistory(keras.callbacks.Callback):
    def on_train_begin(self, logs={}):  # noqa: B006 - the example's signature
        self.times = []

    def on_epoch_begin(self, batch, logs={}):  # noqa: B006
        self.epoch_time_start = time()

    def on_epoch_end(self, batch, logs={}):  # noqa: B006
        self.times.append(time() - self.epoch_time_start)


def test_augmented_directory_pipeline_and_recompiled_optimizer(tmp_path):
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    for folder, shade in (("horses", 40), ("humans", 200)):
        os.makedirs(tmp_path / folder)
        for i in range(8):
            pixels = np.clip(rng.normal(shade, 30, (14, 14, 3)), 0, 255).astype("uint8")
            PIL.fromarray(pixels).save(tmp_path / folder / f"{i}.png")
    rescale = keras.Sequential([layers.Rescaling(1.0 / 255)])
    augment = keras.Sequential([layers.RandomFlip("horizontal_and_vertical"), layers.RandomRotation(0.3),
                                layers.RandomZoom(0.2)])
    data = keras.utils.image_dataset_from_directory(tmp_path, image_size=(12, 12), batch_size=4, label_mode="binary",
                                                    verbose=False)
    assert data.class_names == ["horses", "humans"]
    data = data.map(lambda x, y: (rescale(x), y)).map(lambda x, y: (augment(x, training=True), y)).prefetch(1)
    images, labels = data[0]
    assert images.shape == (4, 12, 12, 3) and labels.shape == (4, 1) and float(ops.max(images)) <= 1.0

    model = keras.Sequential([keras.Input((12, 12, 3)), layers.Conv2D(4, 3, activation="relu"), layers.MaxPooling2D(2),
                              layers.Dropout(0.5), layers.Flatten(), layers.Dense(8, activation="relu"),
                              layers.Dense(1, activation="sigmoid")])
    plain, centred = TimeHistory(), TimeHistory()
    model.compile(loss="binary_crossentropy", optimizer=RMSprop(learning_rate=1e-3), metrics=["accuracy"])
    first = model.fit(data, epochs=2, verbose=0, callbacks=[plain]).history
    optimizer = CentralizedRMSprop(learning_rate=1e-3)
    model.compile(loss="binary_crossentropy", optimizer=optimizer, metrics=["accuracy"])
    before = [w.numpy().copy() for w in model.trainable_weights]
    second = model.fit(data, epochs=3, verbose=0, callbacks=[centred]).history
    assert len(plain.times) == 2 and len(centred.times) == 3 and all(t >= 0 for t in centred.times)
    assert int(optimizer.iterations) == 3 * 4  # the new optimizer took every step of the second fit
    assert len(first["loss"]) == 2 and np.all(np.isfinite(second["loss"]))
    assert all(not np.allclose(b, w.numpy()) for b, w in zip(before, model.trainable_weights))
