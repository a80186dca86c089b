"""Patterns of keras.io's PixelCNN example: a Layer wrapping a Conv2D that it builds itself in build(),
derives a numpy mask from the kernel's shape, and re-masks the kernel with Variable.assign inside call()
(so fit's updates never leak into masked taps); residual blocks of such layers joined with
keras.layers.add; pixel-by-pixel sampling with predict."""

import numpy as np

import dlgpu as keras
from dlgpu import layers, ops


class _MaskedConv(layers.Layer):
    def __init__(self, mask_type, **kwargs):
        super().__init__()
        self.mask_type = mask_type
        self.conv = layers.Conv2D(**kwargs)

    def build(self, input_shape):
        self.conv.build(input_shape)
        kh, kw = ops.shape(self.conv.kernel)[:2]
        self.mask = np.zeros(ops.shape(self.conv.kernel))
        self.mask[:kh // 2] = 1.0
        self.mask[kh // 2, :kw // 2] = 1.0
        if self.mask_type == "B":
            self.mask[kh // 2, kw // 2] = 1.0

    def call(self, inputs):
        self.conv.kernel.assign(self.conv.kernel * self.mask)
        return self.conv(inputs)


class _Residual(layers.Layer):
    def __init__(self, filters, **kwargs):
        super().__init__(**kwargs)
        self.a = layers.Conv2D(filters, 1, activation="relu")
        self.b = _MaskedConv("B", filters=filters, kernel_size=3, padding="same", activation="relu")

    def call(self, inputs):
        return layers.add([inputs, self.b(self.a(inputs))])


def _pixel_cnn(size=8):
    inputs = keras.Input((size, size, 1))
    x = _MaskedConv("A", filters=6, kernel_size=5, padding="same", activation="relu")(inputs)
    x = _Residual(6)(x)
    x = _MaskedConv("B", filters=6, kernel_size=1, padding="valid", activation="relu")(x)
    return keras.Model(inputs, layers.Conv2D(1, 1, activation="sigmoid")(x))


def _data(n=64, size=8, seed=0):
    rng = np.random.default_rng(seed)
    return (rng.random((n, size, size, 1)) < 0.3).astype(np.float32)


def test_masks_hold_through_training_and_outputs_are_causal():
    keras.utils.set_random_seed(0)
    model = _pixel_cnn()
    first = model.layers[1]
    assert first.mask.shape == (5, 5, 1, 6) and first.mask.sum() == (2 * 5 + 2) * 6
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss="binary_crossentropy")
    data = _data()
    hist = model.fit(data, data, batch_size=16, epochs=3, validation_split=0.25, verbose=0).history
    assert hist["loss"][-1] < hist["loss"][0] and len(hist["val_loss"]) == 3
    kernel = keras.to_numpy(first.conv.kernel)
    assert np.all(kernel[first.mask == 0] == 0)  # the optimizer's step on the masked taps is undone
    assert np.any(kernel[first.mask == 1] != 0)

    base = np.zeros((1, 8, 8, 1), np.float32)
    poked = base.copy()
    poked[0, 4, 4, 0] = 1.0
    diff = np.abs(model.predict(poked, verbose=0) - model.predict(base, verbose=0))[0, :, :, 0]
    assert diff[:4].max() == 0 and diff[4, :5].max() == 0  # nothing at or before the poked pixel moves
    assert diff[4, 5:].max() + diff[5:].max() > 0


def test_sampling_pixel_by_pixel_and_saving_images(tmp_path):
    keras.utils.set_random_seed(1)
    model = _pixel_cnn()
    pixels = np.zeros((2,) + model.input_shape[1:])
    for row in range(2):
        for col in range(8):
            probs = model.predict(pixels, verbose=0)[:, row, col, 0]
            pixels[:, row, col, 0] = keras.to_numpy(ops.ceil(probs - keras.random.uniform(probs.shape)))
    assert set(np.unique(pixels)) <= {0.0, 1.0} and not pixels[:, 2:].any()
    image = np.clip(np.stack([pixels[0, :, :, 0]] * 3, 2) * 255.0, 0, 255).astype("uint8")
    keras.utils.save_img(str(tmp_path / "sample.png"), image)
    np.testing.assert_array_equal(keras.utils.img_to_array(keras.utils.load_img(str(tmp_path / "sample.png"))),
                                  image.astype(np.float32))
