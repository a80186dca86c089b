"""Patterns of keras.io's EDSR example: a functional model of a Model subclass whose train_step uses a
GradientTape with Keras 2's compiled_loss / compiled_metrics and whose predict_step post-processes one
image (expand_dims, clip, round, cast to uint8), ops.depth_to_space upsampling in a graph with free
spatial sizes, Rescaling in and out, an L1 loss with a plain function metric (PSNR) named after itself,
PiecewiseConstantDecay, steps_per_epoch over a PyDataset, and random crops/rotations/flips of paired images."""

import warnings

import numpy as np
import pytest

import dlgpu as keras
from dlgpu import layers, ops


class SuperResolution(keras.Model):
    def train_step(self, data):
        x, y = data
        with keras.GradientTape() as tape:
            y_pred = self(x, training=True)
            loss = self.compiled_loss(y, y_pred, regularization_losses=self.losses)
        grads = tape.gradient(loss, self.trainable_variables)
        self.optimizer.apply_gradients(zip(grads, self.trainable_variables))
        self.compiled_metrics.update_state(y, y_pred)
        return {m.name: m.result() for m in self.metrics}

    def predict_step(self, x):
        x = ops.cast(ops.expand_dims(x, axis=0), "float32")
        out = ops.round(ops.clip(self(x, training=False), 0, 255))
        return ops.squeeze(ops.cast(out, "uint8"), axis=0)


def PSNR(super_resolution, high_resolution):  # noqa: N802 - the metric is logged under this name
    return ops.psnr(high_resolution, super_resolution, max_val=255)


def _model(filters=4, factor=2):
    inputs = layers.Input(shape=(None, None, 3))
    x = start = layers.Conv2D(filters, 3, padding="same")(layers.Rescaling(scale=1.0 / 255)(inputs))
    y = layers.Conv2D(filters, 3, padding="same", activation="relu")(x)
    x = layers.Add()([start, layers.Conv2D(filters, 3, padding="same")(y)])
    x = ops.depth_to_space(layers.Conv2D(filters * factor ** 2, 3, padding="same")(x), block_size=factor)
    outputs = layers.Rescaling(scale=255)(layers.Conv2D(3, 3, padding="same")(x))
    return SuperResolution(inputs, outputs)


def test_depth_to_space_orders_blocks_as_tensorflow():
    x = np.arange(2 * 2 * 3 * 8, dtype="float32").reshape(2, 2, 3, 8)
    out = ops.depth_to_space(x, block_size=2).numpy()
    assert out.shape == (2, 4, 6, 2)
    # output (i*2+a, j*2+b, c) = input (i, j, (a*2+b)*2+c)
    want = x.reshape(2, 2, 3, 2, 2, 2).transpose(0, 1, 3, 2, 4, 5).reshape(2, 4, 6, 2)
    np.testing.assert_array_equal(out, want)
    high = np.random.default_rng(0).random((2, 5, 5, 3)).astype("float32") * 255
    noisy = high + 3.0
    np.testing.assert_allclose(float(ops.psnr(high, noisy, max_val=255)), 10 * np.log10(255 ** 2 / 9.0), rtol=1e-5)


class Pairs(keras.utils.PyDataset):
    def __init__(self, low, high, training):
        super().__init__()
        self.low, self.high, self.training = low, high, training
        self.rng = np.random.default_rng(0)

    def __len__(self):
        return len(self.low) // 4

    def __getitem__(self, index):
        lows, highs = [], []
        for low, high in zip(self.low[index * 4:(index + 1) * 4], self.high[index * 4:(index + 1) * 4]):
            top, left = self.rng.integers(0, 3, 2)
            low, high = low[top:top + 4, left:left + 4], high[2 * top:2 * top + 8, 2 * left:2 * left + 8]
            if self.training:
                turns = int(self.rng.integers(0, 4))
                low, high = np.rot90(low, turns), np.rot90(high, turns)
                if self.rng.random() < 0.5:
                    low, high = ops.flip(low, axis=1).numpy(), ops.flip(high, axis=1).numpy()
            lows.append(low)
            highs.append(high)
        return np.stack(lows).astype("float32"), np.stack(highs).astype("float32")


def test_custom_train_and_predict_steps_with_a_piecewise_schedule():
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    high = rng.integers(0, 256, (16, 12, 12, 3)).astype("uint8")
    low = high.reshape(16, 6, 2, 6, 2, 3).mean(axis=(2, 4)).astype("uint8")
    schedule = keras.optimizers.schedules.PiecewiseConstantDecay(boundaries=[3], values=[1e-3, 5e-4])
    assert [float(schedule(s)) for s in (0, 3, 4)] == [pytest.approx(1e-3), pytest.approx(1e-3), pytest.approx(5e-4)]
    model = _model()
    model.compile(optimizer=keras.optimizers.Adam(learning_rate=schedule), loss="mae", metrics=[PSNR])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        history = model.fit(Pairs(low, high, True), epochs=3, steps_per_epoch=2, validation_data=Pairs(low, high, False),
                            verbose=0).history
    assert set(history) == {"loss", "PSNR", "val_loss", "val_PSNR"}
    assert int(model.optimizer.iterations) == 6
    np.testing.assert_allclose(float(model.optimizer.learning_rate), 5e-4, rtol=1e-6)

    x, y = Pairs(low, high, False)[0]
    logs = model.evaluate(x, y, verbose=0, return_dict=True)
    pred = model(x).numpy()
    np.testing.assert_allclose(logs["loss"], np.mean(np.abs(pred - y)), rtol=1e-4)
    np.testing.assert_allclose(logs["PSNR"], float(ops.psnr(y, pred, max_val=255)), rtol=1e-4)

    image = low[0, :5, :3]  # any size: the graph has free spatial axes
    upscaled = model.predict_step(image)
    assert upscaled.shape == (10, 6, 3) and upscaled.dtype == "uint8"
    raw = model(image[None].astype("float32")).numpy()[0]
    np.testing.assert_array_equal(upscaled.numpy(), np.round(np.clip(raw, 0, 255)).astype("uint8"))
    np.testing.assert_array_equal(model.predict_on_batch(image).astype("uint8"), upscaled.numpy())
