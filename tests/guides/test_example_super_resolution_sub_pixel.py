"""Patterns of keras.io's ESPCN super-resolution example: image_dataset_from_directory with
label_mode=None and a seeded validation split, ``.map`` to scale and then to (low-res input, high-res
target) pairs, a sub-pixel model (orthogonal-initialised convs, then a DepthToSpace layer written with
reshape/transpose), a callback that turns each validation batch's loss into PSNR in on_test_batch_end,
EarlyStopping and ModelCheckpoint on "loss", and PIL images through img_to_array / array_to_img / load_img."""

import math
import os

import numpy as np
import pytest

import dlgpu as keras
from dlgpu import layers, ops

PIL = pytest.importorskip("PIL.Image")


class DepthToSpace(layers.Layer):
    def __init__(self, block_size, **kwargs):
        super().__init__(**kwargs)
        self.block_size = block_size

    def call(self, x):
        batch, height, width, depth = ops.shape(x)
        depth = depth // (self.block_size ** 2)
        x = ops.reshape(x, [batch, height, width, self.block_size, self.block_size, depth])
        x = ops.transpose(x, [0, 1, 3, 2, 4, 5])
        return ops.reshape(x, [batch, height * self.block_size, width * self.block_size, depth])


def _espcn(factor=2):
    conv = {"activation": "relu", "kernel_initializer": "Orthogonal", "padding": "same"}
    inputs = keras.Input(shape=(None, None, 1))
    x = layers.Conv2D(8, 3, **conv)(layers.Conv2D(8, 5, **conv)(inputs))
    return keras.Model(inputs, DepthToSpace(factor)(layers.Conv2D(factor ** 2, 3, **conv)(x)))


def test_reshape_transpose_layer_equals_depth_to_space():
    x = np.random.default_rng(0).random((2, 3, 4, 9)).astype("float32")
    np.testing.assert_array_equal(DepthToSpace(3)(x).numpy(), ops.depth_to_space(x, 3).numpy())
    kernel = _espcn().layers[1].kernel.numpy().reshape(-1, 8)
    np.testing.assert_allclose(kernel.T @ kernel, np.eye(8), atol=1e-5)  # "Orthogonal" by its class name


def _write_images(root, count, rng):
    for split in ("train", "test"):
        os.makedirs(root / "images" / split, exist_ok=True)
        for i in range(count):
            pixels = rng.integers(0, 256, (10 + i, 9, 3)).astype("uint8")
            PIL.fromarray(pixels).save(root / "images" / split / f"{i}.png")


def _luma(images):
    return images[..., :1] * 0.299 + images[..., 1:2] * 0.587 + images[..., 2:3] * 0.114


def test_espcn_pipeline_trains_with_psnr_callback_and_checkpoint(tmp_path):
    keras.utils.set_random_seed(0)
    _write_images(tmp_path, 5, np.random.default_rng(0))
    common = dict(batch_size=2, image_size=(8, 8), validation_split=0.2, seed=1337, label_mode=None, verbose=False)
    train = keras.utils.image_dataset_from_directory(tmp_path, subset="training", **common)
    valid = keras.utils.image_dataset_from_directory(tmp_path, subset="validation", **common)
    assert len(train.file_paths) == 8 and len(valid.file_paths) == 2
    assert not set(train.file_paths) & set(valid.file_paths)
    for batch in train.map(lambda x: x / 255.0).take(1):
        assert batch.shape == (2, 8, 8, 3) and 0 <= batch.min() and batch.max() <= 1

    def pairs(images):
        luma = _luma(images / 255.0)
        low = luma.reshape(len(luma), 4, 2, 4, 2, 1).mean(axis=(2, 4))  # area downscale by 2
        return low.astype("float32"), luma.astype("float32")
    train, valid = train.map(pairs), valid.map(pairs)

    class PSNRCallback(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.per_epoch, self.batch_losses = [], []

        def on_epoch_begin(self, epoch, logs=None):
            self.psnr = []

        def on_test_batch_end(self, batch, logs=None):
            self.batch_losses.append(logs["loss"])
            self.psnr.append(10 * math.log10(1 / logs["loss"]))

        def on_epoch_end(self, epoch, logs=None):
            self.per_epoch.append(np.mean(self.psnr))

    watch = PSNRCallback()
    path = str(tmp_path / "best.weights.h5")
    model = _espcn()
    model.compile(optimizer=keras.optimizers.Adam(learning_rate=0.003), loss=keras.losses.MeanSquaredError())
    history = model.fit(train, epochs=3, validation_data=valid, verbose=0, callbacks=[
        watch, keras.callbacks.EarlyStopping(monitor="loss", patience=10),
        keras.callbacks.ModelCheckpoint(path, save_weights_only=True, monitor="loss", mode="min",
                                        save_best_only=True)]).history
    assert len(watch.per_epoch) == 3 and len(watch.batch_losses) == 3  # one validation batch per epoch
    np.testing.assert_allclose(watch.batch_losses, history["val_loss"], rtol=1e-6)
    best = model.get_weights() if history["loss"][-1] == min(history["loss"]) else None
    model.load_weights(path)
    if best is not None:
        for a, b in zip(best, model.get_weights()):
            np.testing.assert_array_equal(a, b)

    # Upscale the luma of a PIL image as the example does, and put it back with the colour channels.
    image = keras.utils.load_img(str(tmp_path / "images" / "test" / "0.png"))
    low = image.resize((image.size[0] // 2, image.size[1] // 2), PIL.BICUBIC)
    y, cb, cr = low.convert("YCbCr").split()
    y = keras.utils.img_to_array(y)
    assert y.shape == (low.size[1], low.size[0], 1) and y.dtype == "float32"
    out = model.predict(np.expand_dims(y / 255.0, axis=0), verbose=0)[0]
    assert out.shape == (2 * low.size[1], 2 * low.size[0], 1)
    out_y = PIL.fromarray(np.uint8(np.clip(out * 255.0, 0, 255)[..., 0]), mode="L")
    merged = PIL.merge("YCbCr", (out_y, cb.resize(out_y.size, PIL.BICUBIC), cr.resize(out_y.size, PIL.BICUBIC)))
    rgb = keras.utils.img_to_array(merged.convert("RGB"))
    assert rgb.shape == (2 * low.size[1], 2 * low.size[0], 3)
    assert keras.utils.array_to_img(rgb).size == out_y.size
