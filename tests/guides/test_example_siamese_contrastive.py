"""Patterns of keras.io's siamese network with a contrastive loss: one embedding model called on two
inputs (its weights shared), a Lambda computing the Euclidean distance with keras.backend.epsilon() as
floor, BatchNormalization on that distance, a closure loss ``loss(margin)`` returning the contrastive loss,
``optimizer="RMSprop"`` by name, "accuracy" on a one-unit sigmoid (binary accuracy), and images of shape
(28, 28) fed to an Input((28, 28, 1))."""

import numpy as np
import pytest

import dlgpu as keras
from dlgpu import layers, ops


def euclidean_distance(vectors):
    x, y = vectors
    return ops.sqrt(ops.maximum(ops.sum(ops.square(x - y), axis=1, keepdims=True), keras.backend.epsilon()))


def contrastive(margin=1):
    def contrastive_loss(y_true, y_pred):
        return ops.mean((1 - y_true) * ops.square(y_pred) + y_true * ops.square(ops.maximum(margin - y_pred, 0)))
    return contrastive_loss


def _siamese(size=12):
    image = layers.Input((size, size, 1))
    x = layers.BatchNormalization()(image)
    x = layers.AveragePooling2D((2, 2))(layers.Conv2D(3, (3, 3), activation="tanh")(x))
    x = layers.Dense(4, activation="tanh")(layers.BatchNormalization()(layers.Flatten()(x)))
    embed = keras.Model(image, x)
    first, second = layers.Input((size, size, 1)), layers.Input((size, size, 1))
    distance = layers.Lambda(euclidean_distance)([embed(first), embed(second)])
    out = layers.Dense(1, activation="sigmoid")(layers.BatchNormalization()(distance))
    return keras.Model(inputs=[first, second], outputs=out), embed


def test_distance_floor_and_contrastive_loss_against_numpy():
    same = np.ones((2, 3), "float32")
    assert keras.backend.epsilon() == 1e-7
    np.testing.assert_allclose(euclidean_distance([same, same]).numpy(), np.full((2, 1), np.sqrt(1e-7)), rtol=1e-6)
    y_true = np.array([[0.0], [1.0], [1.0]], "float32")
    y_pred = np.array([[0.3], [0.2], [1.4]], "float32")
    want = np.mean([0.3 ** 2, 0.8 ** 2, 0.0])
    np.testing.assert_allclose(float(contrastive(margin=1)(y_true, y_pred)), want, rtol=1e-6)


def test_siamese_shares_one_tower_and_trains_on_pairs():
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    model, embed = _siamese()
    assert len(model.trainable_weights) == len(embed.trainable_weights) + 2 + 2  # distance BN, Dense
    base = rng.random((4, 12, 12)).astype("float32")
    kind = rng.integers(0, 4, 64)
    left = base[kind] + 0.05 * rng.standard_normal((64, 12, 12)).astype("float32")
    match = rng.integers(0, 2, 64)
    right = np.where(match[:, None, None] == 1, base[kind], base[(kind + 1) % 4]) + \
        0.05 * rng.standard_normal((64, 12, 12)).astype("float32")
    labels = match.astype("float32")
    model.compile(loss=contrastive(margin=1), optimizer="RMSprop", metrics=["accuracy"])
    assert type(model.optimizer).__name__ == "RMSprop"
    history = model.fit([left, right], labels, validation_data=([left, right], labels), batch_size=16, epochs=4,
                        verbose=0).history  # (n, 12, 12) arrays meet Input((12, 12, 1)): a unit axis is added
    assert history["loss"][-1] < history["loss"][0]
    loss, accuracy = model.evaluate([left, right], labels, verbose=0)
    pred = model.predict([left[..., None], right[..., None]], verbose=0)
    assert pred.shape == (64, 1)
    np.testing.assert_allclose(accuracy, np.mean((pred[:, 0] > 0.5) == (labels == 1)), rtol=1e-6)
    np.testing.assert_allclose(loss, float(contrastive()(labels[:, None], pred)), rtol=1e-4)
    shown = ops.concatenate([left[0], right[0]], axis=1)  # the example's side-by-side picture of a pair
    assert shown.shape == (12, 24)


def test_a_wrapped_function_sees_targets_at_the_rank_of_its_predictions():
    seen = []

    def loss_fn(y_true, y_pred):
        seen.append((tuple(y_true.shape), tuple(y_pred.shape)))
        return ops.mean(ops.square(y_true - y_pred), axis=-1)

    wrapped = keras.losses.LossFunctionWrapper(loss_fn)
    value = wrapped(np.array([1.0, 0.0, 1.0], "float32"), ops.convert_to_tensor(np.full((3, 1), 0.5, "float32")))
    assert seen == [((3, 1), (3, 1))]
    np.testing.assert_allclose(float(value), 0.25, rtol=1e-6)


@pytest.mark.gpu
def test_siamese_on_the_gpu_matches_the_cpu():
    rng = np.random.default_rng(2)
    left, right = rng.random((16, 12, 12)).astype("float32"), rng.random((16, 12, 12)).astype("float32")
    labels = rng.integers(0, 2, 16).astype("float32")
    results = []
    for device in ("cpu", "gpu"):
        keras.utils.set_random_seed(0)
        with keras.device(device):
            model, _ = _siamese()
            model.compile(loss=contrastive(margin=1), optimizer="RMSprop", metrics=["accuracy"])
            model.fit([left, right], labels, batch_size=8, epochs=1, verbose=0)
            results.append((model.evaluate([left, right], labels, verbose=0),
                            model.predict([left, right], verbose=0)))
    np.testing.assert_allclose(results[0][0], results[1][0], rtol=1e-4)
    np.testing.assert_allclose(results[0][1], results[1][1], rtol=1e-4, atol=1e-5)
