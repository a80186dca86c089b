"""Patterns of keras.io's involution example: a layer that builds its sublayers (a Sequential kernel
generator, Reshapes, an identity or pooling stride path) in build() and returns two tensors, patches from
ops.image.extract_patches with "same" padding, and a visualisation model built from several layers'
``.output`` pairs whose predict answers in that nested structure."""

import numpy as np
import pytest

import dlgpu as keras
from dlgpu import layers, ops


class PixelKernels(layers.Layer):
    """Location-specific, channel-shared kernels generated from the input (one group)."""

    def __init__(self, size, stride=1, **kwargs):
        super().__init__(**kwargs)
        self.size, self.stride = size, stride

    def build(self, input_shape):
        _, height, width, channels = input_shape
        height, width = height // self.stride, width // self.stride
        self.down = (layers.AveragePooling2D(self.stride, self.stride, padding="same") if self.stride > 1
                     else layers.Identity())
        self.make_kernel = keras.Sequential([layers.Conv2D(2, 1), layers.BatchNormalization(), layers.ReLU(),
                                             layers.Conv2D(self.size * self.size, 1)])
        self.to_kernel = layers.Reshape((height, width, self.size * self.size, 1, 1))
        self.to_patches = layers.Reshape((height, width, self.size * self.size, channels, 1))
        self.to_output = layers.Reshape((height, width, channels))

    def call(self, x):
        kernel = self.to_kernel(self.make_kernel(self.down(x)))
        patches = ops.image.extract_patches(x, size=self.size, strides=self.stride, padding="same")
        out = ops.sum(ops.multiply(kernel, self.to_patches(patches)), axis=3)
        return self.to_output(out), kernel


def _reference(x, kernel, size):
    """out[b, i, j, c] = sum over the window offsets of kernel * the zero-padded input (stride 1)."""
    pad = (size - 1) // 2
    padded = np.pad(x, ((0, 0), (pad, size - 1 - pad), (pad, size - 1 - pad), (0, 0)))
    out = np.zeros_like(x)
    height, width = x.shape[1:3]
    for k, (di, dj) in enumerate((di, dj) for di in range(size) for dj in range(size)):
        out += kernel[:, :, :, k, 0, 0][..., None] * padded[:, di:di + height, dj:dj + width, :]
    return out


@pytest.mark.parametrize("size", [3, 4])
def test_involution_matches_a_windowed_numpy_sum(size):
    keras.utils.set_random_seed(1)
    x = np.random.default_rng(0).standard_normal((2, 5, 6, 3)).astype("float32")
    out, kernel = PixelKernels(size)(x)
    assert out.shape == (2, 5, 6, 3) and kernel.shape == (2, 5, 6, size * size, 1, 1)
    np.testing.assert_allclose(out.numpy(), _reference(x, kernel.numpy(), size), rtol=1e-5, atol=1e-5)
    strided, kernel = PixelKernels(3, stride=2)(x[:, :4])  # sizes the stride divides, as the example's
    assert strided.shape == (2, 2, 3, 3) and kernel.shape == (2, 2, 3, 9, 1, 1)


def test_pairs_of_outputs_train_and_predict_in_their_structure():
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    inputs = keras.Input((8, 8, 3))
    x, _ = PixelKernels(3, name="inv_1")(inputs)
    x = layers.MaxPooling2D(2)(layers.ReLU()(x))
    x, _ = PixelKernels(3, name="inv_2")(x)
    outputs = layers.Dense(4)(layers.Flatten()(layers.ReLU()(x)))
    model = keras.Model(inputs=[inputs], outputs=[outputs], name="inv_model")
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
    images, labels = rng.random((32, 8, 8, 3)), rng.integers(0, 4, (32, 1))
    history = model.fit(images, labels, batch_size=8, epochs=4, verbose=0, validation_data=(images, labels))
    assert history.history["loss"][-1] < history.history["loss"][0]
    assert 0 < model.get_layer("inv_1").count_params() < 100

    pairs = [model.get_layer(name).output for name in ("inv_1", "inv_2")]
    assert all(len(pair) == 2 for pair in pairs)
    shown = keras.Model(model.input, pairs)
    result = shown.predict(images[:3], verbose=0)
    assert isinstance(result, list) and len(result) == 2 and all(len(pair) == 2 for pair in result)
    (out_1, kernel_1), (out_2, kernel_2) = result
    assert out_1.shape == (3, 8, 8, 3) and kernel_1.shape == (3, 8, 8, 9, 1, 1)
    assert out_2.shape == (3, 4, 4, 3) and kernel_2.shape == (3, 4, 4, 9, 1, 1)
    direct = shown(images[:3])
    np.testing.assert_allclose(kernel_2, direct[1][1].numpy(), rtol=1e-5, atol=1e-6)
    heat = ops.sum(kernel_1, axis=[-1, -2, -3])  # the example's per-pixel map, shown as an image
    assert keras.utils.array_to_img(heat[0, ..., None]).size == (8, 8)


def test_predict_keeps_nested_lists_and_dicts_per_batch():
    inputs = keras.Input((3,))
    a, b = layers.Dense(2)(inputs), layers.Dense(4)(inputs)
    x = np.random.default_rng(1).random((5, 3)).astype("float32")
    nested = keras.Model(inputs, {"first": a, "both": [a, (a, b)]})
    result = nested.predict(x, batch_size=2, verbose=0)  # three batches concatenated leaf by leaf
    assert set(result) == {"first", "both"} and isinstance(result["both"][1], tuple)
    np.testing.assert_allclose(result["both"][1][1], nested(x)["both"][1][1].numpy(), rtol=1e-6)
    assert result["both"][0].shape == (5, 2)
    once = nested.predict_on_batch(x)
    assert isinstance(once, dict) and once["both"][1][1].shape == (5, 4)
