"""Patterns of keras.io's fast gradient sign attack: a trained classifier, a GradientTape that watches
the input images (a constant tensor) and float16 labels, the gradient of SparseCategoricalCrossentropy
with respect to the images, and images moved by epsilon * sign(gradient)."""

import numpy as np

import dlgpu as keras
from dlgpu import layers, ops


def _classifier():
    inputs = keras.Input((6, 6, 1))
    x = layers.Conv2D(4, 3, activation="relu")(inputs)
    x = layers.Dropout(0.25)(layers.MaxPooling2D(2)(x))
    x = layers.Dense(8, activation="relu")(layers.Flatten()(x))
    return keras.Model(inputs, layers.Dense(3, activation="softmax")(layers.Dropout(0.5)(x)))


def test_input_gradient_matches_finite_differences_and_the_attack_hurts():
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 3, 96)
    images = (rng.random((96, 6, 6, 1)) * 0.3 + labels[:, None, None, None] * 0.3).astype("float32")
    model = _classifier()
    model.compile(optimizer="rmsprop", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(images, labels, epochs=6, batch_size=16, validation_split=0.2, verbose=0)

    data = ops.convert_to_tensor(images[:32])
    targets = ops.convert_to_tensor(labels[:32].astype("float16"))
    with keras.GradientTape() as tape:
        tape.watch(data)
        tape.watch(targets)
        loss = keras.losses.SparseCategoricalCrossentropy()(targets, model(data))
    grad = tape.gradient(loss, data)
    assert grad.shape == data.shape and grad.dtype == "float32"

    def loss_at(x):
        return float(keras.losses.SparseCategoricalCrossentropy()(labels[:32], model(x)))

    flat = np.argsort(np.abs(grad.numpy()).ravel())[-3:]  # the most sensitive pixels
    for index in flat:
        step = np.zeros(32 * 36, "float32")
        step[index] = 1e-3
        step = step.reshape(32, 6, 6, 1)
        numeric = (loss_at(images[:32] + step) - loss_at(images[:32] - step)) / 2e-3
        np.testing.assert_allclose(grad.numpy().ravel()[index], numeric, rtol=3e-2, atol=2e-4)

    attacked = data + 0.2 * ops.sign(grad)
    assert loss_at(attacked) > loss_at(data)
    before = model(data).numpy().argmax(axis=1)
    after = model(attacked).numpy().argmax(axis=1)
    changed = np.argwhere(before != after).squeeze()
    assert changed.size > 0
    assert ops.squeeze(attacked[int(np.atleast_1d(changed)[0])]).numpy().shape == (6, 6)
