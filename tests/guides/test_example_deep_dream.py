"""Patterns of keras.io's Deep Dream example (a small CNN in place of InceptionV3): a feature extractor
with a free image size returning a dict of named layers' outputs, a loss over the inner pixels of each
activation scaled by its size (ops.prod of ops.shape), gradient ascent on a watched image with the
gradient normalized by its mean magnitude, and octaves of ops.image.resize with lost detail put back."""

import numpy as np
import pytest

import dlgpu as keras
from dlgpu import layers, ops

_WEIGHTS = {"mixed_a": 1.0, "mixed_b": 2.5}


def _extractor():
    keras.utils.set_random_seed(0)
    inputs = keras.Input((None, None, 3))
    a = layers.Conv2D(4, 3, padding="same", activation="relu", name="mixed_a")(inputs)
    b = layers.Conv2D(4, 3, padding="same", activation="relu", name="mixed_b")(a)
    model = keras.Model(inputs, layers.GlobalAveragePooling2D()(b))
    return keras.Model(model.inputs, {name: model.get_layer(name).output for name in _WEIGHTS})


def _loss(extractor, image):
    features = extractor(image)
    loss = ops.zeros(())
    for name, activation in features.items():
        scaling = ops.prod(ops.cast(ops.shape(activation), "float32"))
        loss += _WEIGHTS[name] * ops.sum(ops.square(activation[:, 2:-2, 2:-2, :])) / scaling
    return loss


def _ascent_step(extractor, image, rate):
    with keras.GradientTape() as tape:
        tape.watch(image)
        loss = _loss(extractor, image)
    grads = tape.gradient(loss, image)
    grads /= ops.maximum(ops.mean(ops.abs(grads)), 1e-6)
    return loss, image + rate * grads


def test_loss_on_two_image_sizes_against_numpy():
    extractor = _extractor()
    for shape in [(1, 9, 11, 3), (2, 14, 8, 3)]:
        image = np.random.default_rng(0).normal(size=shape).astype(np.float32)
        feats = {k: keras.to_numpy(v) for k, v in extractor(image).items()}
        assert feats["mixed_b"].shape == shape[:3] + (4,)
        want = sum(_WEIGHTS[k] * (f[:, 2:-2, 2:-2] ** 2).sum() / f.size for k, f in feats.items())
        assert float(_loss(extractor, image)) == pytest.approx(float(want), rel=1e-5)


def test_octaves_of_gradient_ascent_raise_the_loss():
    extractor = _extractor()
    original = np.random.default_rng(1).uniform(-1, 1, size=(1, 18, 24, 3)).astype(np.float32)
    shapes = [(18, 24), (12, 17), (9, 12)][::-1]
    shrunk = ops.image.resize(original, shapes[0])
    image = ops.copy(original)
    history = []
    for shape in shapes:
        image = ops.image.resize(image, shape)
        assert tuple(image.shape) == (1,) + shape + (3,)
        for _ in range(3):
            loss, image = _ascent_step(extractor, image, 0.05)
            history.append(float(loss))
        image += ops.image.resize(original, shape) - ops.image.resize(shrunk, shape)
        shrunk = ops.image.resize(original, shape)
    assert history[2] > history[0] and history[-1] > history[-3]
    assert tuple(image.shape) == original.shape
    # resizing to the same size changes nothing, so the last octave put back no detail of its own
    np.testing.assert_allclose(keras.to_numpy(ops.image.resize(original, (18, 24))), original, atol=1e-5)
