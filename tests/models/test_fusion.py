"""Models run a Conv2D followed by a 2x2 MaxPooling2D as one op (dlgpu/models/fusion.py).

The fused model must compute what its layers compute one by one, in values and in gradients, and the
fusion must stay away from the cases where it would change the meaning: a convolution output that
something else reads, subclassed layers, other pool shapes.
"""

import numpy as np
import pytest

import dlgpu as keras
from dlgpu import layers, ops
from dlgpu.autograd import GradientTape
from dlgpu.models import fusion

rng = np.random.default_rng(8)


@pytest.fixture
def fused_calls(monkeypatch):
    """Counts the calls of ops.conv2d_maxpool made through the model runners."""
    calls = []
    original = ops.conv2d_maxpool

    def spy(*args, **kwargs):
        calls.append(kwargs.get("activation"))
        return original(*args, **kwargs)
    monkeypatch.setattr(fusion.ops, "conv2d_maxpool", spy)
    return calls


def seed_cnn():
    return keras.Sequential([keras.Input(shape=(12, 12, 1)), layers.Conv2D(4, 3, activation="relu"),
                             layers.MaxPooling2D(), layers.Conv2D(6, 3, activation="tanh"), layers.MaxPooling2D(),
                             layers.Flatten(), layers.Dense(3, activation="softmax")])


def layer_by_layer(model, x):
    for layer in model.layers:
        x = layer(x)
    return x


def test_sequential_fuses_both_pairs_and_matches_its_layers(fused_calls):
    model = seed_cnn()
    x = rng.standard_normal((5, 12, 12, 1)).astype(np.float32)
    y = ops.convert_to_tensor(np.eye(3, dtype=np.float32)[rng.integers(0, 3, 5)])
    results = []
    for run in (model, lambda inputs: layer_by_layer(model, inputs)):
        with GradientTape() as tape:
            loss = ops.mean(keras.losses.categorical_crossentropy(y, run(x)))
        results.append([loss.numpy()] + [g.numpy() for g in tape.gradient(loss, model.trainable_variables)])
    assert fused_calls == ["relu", "tanh"]
    for got, want in zip(*results):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(model.predict(x, verbose=0), layer_by_layer(model, x).numpy(), rtol=1e-5, atol=1e-6)


def test_functional_fuses_a_pair_whose_output_only_the_pool_reads(fused_calls):
    inputs = keras.Input(shape=(10, 10, 2))
    conv_a, pool_a = layers.Conv2D(3, 3, padding="same", activation="relu"), layers.MaxPooling2D()
    a = pool_a(conv_a(inputs))
    conv_b_layer, pool_b, concat = layers.Conv2D(3, 3, padding="same"), layers.MaxPooling2D(), layers.Concatenate()
    conv_b = conv_b_layer(inputs)  # read by the pool and by the output: not fused
    b = pool_b(conv_b)
    merged = concat([a, b])
    model = keras.Model(inputs, [merged, conv_b])
    x = rng.standard_normal((2, 10, 10, 2)).astype(np.float32)
    merged_out, conv_out = model(x)
    assert fused_calls == ["relu"]
    want = concat([pool_a(conv_a(x)), pool_b(conv_b_layer(x))])
    np.testing.assert_allclose(merged_out.numpy(), want.numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(conv_out.numpy(), conv_b_layer(x).numpy(), rtol=1e-6)


class ScaledConv(layers.Conv2D):
    def call(self, inputs):
        return super().call(inputs) * 2.0


@pytest.mark.parametrize("pair", [
    [ScaledConv(2, 3, activation="relu"), layers.MaxPooling2D()],  # a subclass may change call
    [layers.Conv2D(2, 3, activation="relu"), layers.MaxPooling2D(pool_size=3)],
    [layers.Conv2D(2, 3, activation="relu"), layers.MaxPooling2D(strides=1)],
    [layers.Conv2D(2, 3, activation="relu"), layers.MaxPooling2D(padding="same")],
    [layers.Conv2D(2, 3, activation="relu", activity_regularizer="l2"), layers.MaxPooling2D()],
    [layers.Conv2D(2, 3, activation=lambda t: ops.relu(t) * 0.5), layers.MaxPooling2D()],
    [layers.Conv2D(2, 3, activation="relu"), layers.AveragePooling2D()],
])
def test_pairs_that_do_not_qualify_run_as_two_layers(fused_calls, pair):
    model = keras.Sequential([keras.Input(shape=(9, 9, 1))] + pair)
    x = rng.standard_normal((2, 9, 9, 1)).astype(np.float32)
    np.testing.assert_allclose(model(x).numpy(), layer_by_layer(model, x).numpy(), rtol=1e-6)
    assert fused_calls == []


def test_a_fused_conv_still_checks_its_input_and_names_itself():
    model = seed_cnn()
    model(np.zeros((1, 12, 12, 1), np.float32))
    with pytest.raises(ValueError, match=r"layer 'conv2d(_\d+)?' is incompatible.*received input with shape \(1, 12, 12, 3\)"):
        model(np.zeros((1, 12, 12, 3), np.float32))


def test_fit_with_fused_pairs_learns():
    keras.set_random_seed(5)
    model = keras.Sequential([keras.Input(shape=(8, 8, 1)), layers.Conv2D(4, 3, padding="same", activation="relu"),
                              layers.MaxPooling2D(), layers.Flatten(), layers.Dense(2, activation="softmax")])
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    x = rng.standard_normal((64, 8, 8, 1)).astype(np.float32)
    y = (x[:, :4].sum(axis=(1, 2, 3)) > x[:, 4:].sum(axis=(1, 2, 3))).astype(np.int32)
    history = model.fit(x, y, epochs=15, batch_size=16, verbose=0)
    assert history.history["loss"][-1] < 0.5 * history.history["loss"][0]
    assert history.history["accuracy"][-1] > 0.9
