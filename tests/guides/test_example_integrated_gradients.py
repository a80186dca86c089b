"""Patterns of keras.io's Integrated Gradients example (a small CNN in place of Xception): the gradient of
one class score with respect to a plain tensor watched by the tape, indexed by a tensor class id, over
interpolated images; the trapezoidal average of those gradients; lists of tensors turned into one
tensor; random baselines averaged; images read with load_img/img_to_array and preprocessed in "tf" mode."""

import numpy as np
import pytest

import dlgpu as keras
from dlgpu import layers, ops
from dlgpu.applications import imagenet_utils

_SIZE = (12, 12, 3)


def _model():
    keras.utils.set_random_seed(0)
    inputs = keras.Input(_SIZE)
    x = layers.Conv2D(4, 3, activation="tanh")(inputs)
    x = layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, layers.Dense(5, activation="softmax")(x))


def _grads(model, images, class_id):
    images = ops.cast(images, "float32")
    with keras.GradientTape() as tape:
        tape.watch(images)
        score = model(images)[:, class_id]
    return tape.gradient(score, images)


def _integrated(model, image, class_id, baseline, steps):
    path = np.array([baseline + (k / steps) * (image - baseline) for k in range(steps + 1)], np.float32)
    path = imagenet_utils.preprocess_input(path, mode="tf")
    grads = ops.convert_to_tensor([_grads(model, ops.expand_dims(p, 0), class_id)[0] for p in path],
                                  dtype="float32")
    average = ops.mean((grads[:-1] + grads[1:]) / 2.0, axis=0)
    return (image - baseline) * average


def test_watched_tensor_gradient_matches_finite_differences():
    model = _model()
    image = imagenet_utils.preprocess_input(np.random.default_rng(0).random((1,) + _SIZE).astype(np.float32) * 255,
                                            mode="tf")
    class_id = ops.argmax(model.predict(image, verbose=0)[0])  # a tensor index, as the example uses
    grad = keras.to_numpy(_grads(model, image, class_id))
    assert grad.shape == (1,) + _SIZE
    eps = 1e-2
    for pos in [(0, 0, 0, 0), (0, 5, 7, 1), (0, 11, 11, 2)]:
        up, down = image.copy(), image.copy()
        up[pos] += eps
        down[pos] -= eps
        c = int(class_id)
        numeric = (model.predict(up, verbose=0)[0, c] - model.predict(down, verbose=0)[0, c]) / (2 * eps)
        assert grad[pos] == pytest.approx(numeric, rel=2e-2, abs=1e-5)


def test_integrated_gradients_add_up_to_the_score_difference(tmp_path):
    model = _model()
    from PIL import Image
    pixels = (np.random.default_rng(1).random((20, 16, 3)) * 255).astype("uint8")
    Image.fromarray(pixels).save(tmp_path / "img.png")
    image = keras.utils.img_to_array(keras.utils.load_img(str(tmp_path / "img.png"), target_size=_SIZE[:2]))
    assert image.shape == _SIZE and image.dtype == np.float32
    class_id = 2
    baseline = np.zeros(_SIZE, np.float32)
    attributions = keras.to_numpy(_integrated(model, image, class_id, baseline, steps=100))
    score = lambda img: model.predict(imagenet_utils.preprocess_input(img[None].copy(), mode="tf"), verbose=0)[0, 2]
    # completeness: the attributions (in pixel units; "tf" preprocessing divides by 127.5) sum to f(x) - f(0)
    assert attributions.sum() / 127.5 == pytest.approx(score(image) - score(baseline), rel=2e-2, abs=1e-6)

    runs = [_integrated(model, image, class_id, np.random.default_rng(k).random(_SIZE) * 255, steps=10)
            for k in range(2)]
    mean = ops.mean(ops.convert_to_tensor(runs), axis=0)
    np.testing.assert_allclose(keras.to_numpy(mean), (keras.to_numpy(runs[0]) + keras.to_numpy(runs[1])) / 2,
                               rtol=1e-5, atol=1e-7)
