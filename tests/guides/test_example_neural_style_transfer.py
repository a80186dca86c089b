"""Patterns of keras.io's neural style transfer example: VGG19 without its top (weights=None here), a
feature extractor returning a dict of every layer's output, Gram-matrix style, content and total-
variation losses in keras.ops, the gradient of that loss with respect to a keras.Variable image, and SGD
with an ExponentialDecay schedule applied to the image itself."""

import numpy as np
import pytest

import dlgpu as keras
from dlgpu import ops
from dlgpu.applications import vgg19


def _gram(x):
    features = ops.reshape(ops.transpose(x, (2, 0, 1)), (ops.shape(x)[2], -1))
    return ops.matmul(features, ops.transpose(features))


def _total_variation(x, rows, cols):
    a = ops.square(x[:, :rows - 1, :cols - 1, :] - x[:, 1:, :cols - 1, :])
    b = ops.square(x[:, :rows - 1, :cols - 1, :] - x[:, :rows - 1, 1:, :])
    return ops.sum(ops.power(a + b, 1.25))


def test_gram_and_total_variation_against_numpy():
    x = np.random.default_rng(0).normal(size=(4, 5, 3)).astype(np.float32)
    flat = x.transpose(2, 0, 1).reshape(3, -1)
    np.testing.assert_allclose(keras.to_numpy(_gram(x)), flat @ flat.T, rtol=1e-5)
    img = x[None]
    a = (img[:, :3, :4] - img[:, 1:, :4]) ** 2
    b = (img[:, :3, :4] - img[:, :3, 1:]) ** 2
    assert float(_total_variation(img, 4, 5)) == pytest.approx(float(((a + b) ** 1.25).sum()), rel=1e-5)


def test_style_transfer_steps_move_a_variable_image_downhill(tmp_path):
    keras.utils.set_random_seed(0)
    rows, cols = 32, 32
    model = vgg19.VGG19(weights=None, include_top=False)
    features = {layer.name: layer.output for layer in model.layers}
    extractor = keras.Model(inputs=model.inputs, outputs=features)
    style_layers = ["block1_conv1", "block2_conv1", "block3_conv1"]
    rng = np.random.default_rng(0)
    base = vgg19.preprocess_input(rng.random((1, rows, cols, 3)).astype(np.float32) * 255)
    style = vgg19.preprocess_input(rng.random((1, rows, cols, 3)).astype(np.float32) * 255)

    def loss_of(image):
        out = extractor(ops.concatenate([base, style, image], axis=0))
        assert set(style_layers + ["block5_conv2"]) <= set(out)
        content = out["block3_conv2"]
        loss = ops.zeros(()) + 2.5e-8 * ops.sum(ops.square(content[2] - content[0]))
        for name in style_layers:
            s, c = _gram(out[name][1]), _gram(out[name][2])
            loss += 1e-6 / len(style_layers) * ops.sum(ops.square(s - c)) / (4.0 * 9 * (rows * cols) ** 2)
        return loss + 1e-6 * _total_variation(image, rows, cols)

    image = keras.Variable(base.copy())
    schedule = keras.optimizers.schedules.ExponentialDecay(initial_learning_rate=1.0, decay_steps=2,
                                                           decay_rate=0.5)
    optimizer = keras.optimizers.SGD(schedule)
    losses = []
    for _ in range(3):
        with keras.GradientTape() as tape:
            loss = loss_of(image)
        grads = tape.gradient(loss, image)
        assert grads.shape == (1, rows, cols, 3)
        before = keras.to_numpy(image).copy()
        rate = float(schedule(int(keras.to_numpy(optimizer.iterations))))
        optimizer.apply_gradients([(grads, image)])
        np.testing.assert_allclose(keras.to_numpy(image), before - rate * keras.to_numpy(grads), rtol=1e-5,
                                   atol=1e-4)
        losses.append(float(loss))
    assert losses[-1] < losses[0]
    assert float(optimizer.learning_rate) == pytest.approx(0.5 ** 1.5, rel=1e-5)

    pixels = keras.to_numpy(image).reshape(rows, cols, 3).copy()
    pixels += [103.939, 116.779, 123.68]
    keras.utils.save_img(str(tmp_path / "out.png"), np.clip(pixels[:, :, ::-1], 0, 255).astype("uint8"))
    assert keras.utils.load_img(str(tmp_path / "out.png")).size == (cols, rows)
