"""GaussianNoise, GaussianDropout, AlphaDropout, ActivityRegularization: contract, training-only behaviour,
the noise's statistics, seeds, gradients (by hand and finite differences), bad arguments."""

import numpy as np
import pytest

import dlgpu
from dlgpu import layers, ops

from helpers import check_gradients
from .layer_test_case import run_layer_test

ALPHA_P = -1.6732632423543772848170429916717 * 1.0507009873554804934193349852946


def _alpha_affine(rate):
    a = ((1 - rate) * (1 + rate * ALPHA_P ** 2)) ** -0.5
    return a, -a * ALPHA_P * rate


@pytest.mark.parametrize("cls,kwargs,shape", [
    (layers.GaussianNoise, {"stddev": 0.3, "seed": 1}, (3, 4)),
    (layers.GaussianDropout, {"rate": 0.4}, (2, 3, 4)),
    (layers.AlphaDropout, {"rate": 0.2, "noise_shape": (None, 1, 4), "seed": 3}, (2, 3, 4)),
    (layers.ActivityRegularization, {"l1": 0.1, "l2": 0.01}, (1, 5)),
])
def test_contract(cls, kwargs, shape):
    layer = run_layer_test(cls, kwargs, shape, shape)
    assert {k: layer.get_config()[k] for k in kwargs} == {k: list(v) if isinstance(v, tuple) else v
                                                         for k, v in kwargs.items()}


def test_keras_config_keys():
    assert set(layers.AlphaDropout(0.1).get_config()) >= {"rate", "seed", "noise_shape", "name", "trainable"}
    assert {"stddev", "seed"} <= set(layers.GaussianNoise(0.1).get_config())
    config = layers.ActivityRegularization(l2=0.5).get_config()
    assert config["l1"] == 0.0 and config["l2"] == 0.5 and "activity_regularizer" not in config


@pytest.mark.parametrize("layer", [layers.GaussianNoise(0.5), layers.GaussianDropout(0.5), layers.AlphaDropout(0.5)])
def test_identity_outside_training(layer):
    x = np.random.default_rng(0).standard_normal((4, 6)).astype(np.float32)
    for training in (None, False):
        np.testing.assert_array_equal(layer(x, training=training).numpy(), x)
    assert not np.allclose(layer(x, training=True).numpy(), x)
    model = dlgpu.Sequential([dlgpu.Input((6,)), layer])
    np.testing.assert_array_equal(model.predict(x, verbose=0), x)


def test_noise_statistics():
    x = np.full((400, 500), 2.0, np.float32)
    noise = layers.GaussianNoise(0.3, seed=0)(x, training=True).numpy() - x
    assert noise.dtype == np.float32
    assert abs(noise.mean()) < 0.01 and abs(noise.std() - 0.3) < 0.01
    factor = layers.GaussianDropout(0.2, seed=0)(x, training=True).numpy() / x
    assert abs(factor.mean() - 1) < 0.01 and abs(factor.std() - np.sqrt(0.2 / 0.8)) < 0.01


@pytest.mark.parametrize("rate", [0.1, 0.5])
def test_alpha_dropout_values_and_self_normalisation(rate):
    x = np.random.default_rng(1).standard_normal((500, 400)).astype(np.float32)
    y = layers.AlphaDropout(rate, seed=4)(x, training=True).numpy()
    a, b = _alpha_affine(rate)
    dropped = np.isclose(y, a * ALPHA_P + b, atol=1e-6)
    np.testing.assert_allclose(y[~dropped], a * x[~dropped] + b, rtol=1e-5, atol=1e-5)
    assert abs(dropped.mean() - rate) < 0.01
    # zero mean, unit variance inputs keep both (the point of alpha dropout)
    assert abs(y.mean()) < 0.02 and abs(y.std() - 1) < 0.02


def test_alpha_dropout_noise_shape_shares_the_mask():
    x = np.random.default_rng(2).standard_normal((3, 7, 5)).astype(np.float32) + 5  # never the saturation value
    y = layers.AlphaDropout(0.5, noise_shape=(None, 1, None), seed=0)(x, training=True).numpy()
    a, b = _alpha_affine(0.5)
    dropped = np.isclose(y, a * ALPHA_P + b)
    assert (dropped == dropped[:, :1, :]).all() and 0 < dropped.mean() < 1


def test_seeds_repeat_across_layers_and_advance_across_calls():
    x = np.ones((3, 8), np.float32)
    for cls, arg in ((layers.GaussianNoise, 0.5), (layers.GaussianDropout, 0.5), (layers.AlphaDropout, 0.5)):
        first, second = cls(arg, seed=7), cls(arg, seed=7)
        a1, a2 = first(x, training=True).numpy(), first(x, training=True).numpy()
        np.testing.assert_array_equal(second(x, training=True).numpy(), a1)
        assert not np.array_equal(a1, a2), f"{cls.__name__} drew the same noise twice"
        assert not np.array_equal(cls(arg, seed=8)(x, training=True).numpy(), a1)
    # unseeded layers follow dlgpu.set_random_seed
    dlgpu.set_random_seed(3)
    u1 = layers.GaussianNoise(1.0)(x, training=True).numpy()
    dlgpu.set_random_seed(3)
    np.testing.assert_array_equal(layers.GaussianNoise(1.0)(x, training=True).numpy(), u1)


@pytest.mark.parametrize("cls,arg", [(layers.GaussianNoise, 0.5), (layers.GaussianDropout, 0.4),
                                     (layers.AlphaDropout, 0.3)])
def test_gradients_in_training(cls, arg):
    """The noise is a constant: d out / d x is 1 (additive), the noise (multiplicative), a * keep (alpha)."""
    x = np.random.default_rng(3).standard_normal((4, 5)).astype(np.float32) + 3
    layer = cls(arg, seed=11)
    xt = dlgpu.Tensor(x)
    with dlgpu.GradientTape() as tape:
        tape.watch(xt)
        y = layer(xt, training=True)
        loss = ops.sum(y)
    grad = tape.gradient(loss, xt).numpy()
    y = y.numpy()
    if cls is layers.GaussianNoise:
        np.testing.assert_array_equal(grad, np.ones_like(x))
    elif cls is layers.GaussianDropout:
        np.testing.assert_allclose(grad, y / x, rtol=1e-5)
    else:
        a, b = _alpha_affine(arg)
        kept = ~np.isclose(y, a * ALPHA_P + b)
        np.testing.assert_allclose(grad, np.where(kept, a, 0.0), rtol=1e-6)


def test_activity_regularization_loss_and_gradient():
    x = np.random.default_rng(4).standard_normal((3, 4)).astype(np.float32)
    layer = layers.ActivityRegularization(l1=0.1, l2=0.02)
    np.testing.assert_array_equal(layer(x).numpy(), x)
    (loss,) = layer.losses
    expected = (0.1 * np.abs(x).sum() + 0.02 * np.square(x).sum()) / 3  # divided by the batch size (Keras >= 3.14)
    np.testing.assert_allclose(float(loss.numpy()), expected, rtol=1e-5)
    layer(x)
    assert len(layer.losses) == 1, "penalties must not pile up across calls"

    def penalty(t):
        lay = layers.ActivityRegularization(l1=0.1, l2=0.02, dtype="float64")
        lay(t)
        return lay.losses[0]
    check_gradients(penalty, [x.astype(np.float64) + 0.05])


def test_activity_regularization_adds_to_the_training_loss():
    x = np.random.default_rng(5).standard_normal((8, 3)).astype(np.float32)
    y = np.zeros((8, 2), np.float32)
    model = dlgpu.Sequential([dlgpu.Input((3,)), layers.Dense(2, kernel_initializer="ones"),
                              layers.ActivityRegularization(l2=1.0)])
    model.compile(optimizer="sgd", loss="mse")
    out = model.predict(x, verbose=0)
    expected = np.mean(out ** 2) + np.sum(out ** 2) / 8
    np.testing.assert_allclose(model.evaluate(x, y, batch_size=8, verbose=0), expected, rtol=1e-5)


@pytest.mark.parametrize("make,error,match", [
    (lambda: layers.GaussianNoise(1.5, name="gn"), ValueError, r"stddev.*'gn'.*stddev=1.5"),
    (lambda: layers.GaussianNoise("0.1"), ValueError, r"stddev"),
    (lambda: layers.GaussianDropout(-0.1, name="gd"), ValueError, r"rate.*'gd'.*rate=-0.1"),
    (lambda: layers.AlphaDropout(2, name="ad"), ValueError, r"rate.*'ad'"),
    (lambda: layers.AlphaDropout(0.1, noise_shape=(None, 0), name="ad"), ValueError, r"'ad'.*noise_shape"),
    (lambda: layers.AlphaDropout(0.1, noise_shape=3), ValueError, r"noise_shape=3"),
    (lambda: layers.GaussianNoise(0.1, seed=1.5, name="gn"), ValueError, r"'gn'.*seed=1.5"),
    (lambda: layers.ActivityRegularization(l1=-1, name="ar"), ValueError, r"'ar'.*l1=-1"),
    (lambda: layers.ActivityRegularization(l2="x"), ValueError, r"l2='x'"),
    (lambda: layers.GaussianNoise(0.1, noise_shape=(1,)), TypeError, r"noise_shape"),
])
def test_bad_arguments(make, error, match):
    with pytest.raises(error, match=match):
        make()


def test_bad_shapes_and_rate_one():
    with pytest.raises(ValueError, match=r"'ad'.*noise_shape=\(None, 2\).*\(3, 4\)"):
        layers.AlphaDropout(0.5, noise_shape=(None, 2), name="ad")(np.ones((3, 4), np.float32), training=True)
    with pytest.raises(ValueError, match=r"'gd'.*rate=1"):
        layers.GaussianDropout(1.0, name="gd")(np.ones((3, 4), np.float32), training=True)
    with pytest.raises(ValueError, match=r"'ad'.*rate=1"):
        layers.AlphaDropout(1.0, name="ad")(np.ones((3, 4), np.float32), training=True)
    with pytest.raises(ValueError, match=r"'ad'.*noise_shape=\(None, 1\).*\(None, 3, 4\)"):
        layers.AlphaDropout(0.5, noise_shape=(None, 1), name="ad")(dlgpu.Input((3, 4)))
    # rate 1 outside training is the identity, as in Keras
    np.testing.assert_array_equal(layers.GaussianDropout(1.0)(np.ones((2, 2), np.float32)).numpy(), 1)


@pytest.mark.gpu
def test_noise_layers_on_gpu():
    """On the GPU the noise is drawn there (different values from the CPU's) with the same rules."""
    x = np.random.default_rng(6).standard_normal((200, 300)).astype(np.float32) + 3
    with dlgpu.device("gpu"):
        xt = ops.convert_to_tensor(x)
        noise = layers.GaussianNoise(0.3, seed=0)(xt, training=True)
        factor = layers.GaussianDropout(0.2, seed=0)(xt, training=True)
        alpha_layer = layers.AlphaDropout(0.3, seed=0)
        with dlgpu.GradientTape() as tape:
            tape.watch(xt)
            alpha = alpha_layer(xt, training=True)
            loss = ops.sum(alpha)
        grad = tape.gradient(loss, xt)
        again = layers.AlphaDropout(0.3, seed=0)(xt, training=True)
        assert noise.device.kind == "gpu" and alpha.device.kind == "gpu"
        noise, factor, alpha, grad, again = (t.numpy() for t in (noise, factor, alpha, grad, again))
    assert abs((noise - x).std() - 0.3) < 0.01
    assert abs((factor / x).mean() - 1) < 0.02
    a, b = _alpha_affine(0.3)
    kept = ~np.isclose(alpha, a * ALPHA_P + b)
    np.testing.assert_allclose(alpha[kept], a * x[kept] + b, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(grad, np.where(kept, a, 0.0), rtol=1e-6)
    np.testing.assert_array_equal(again, alpha)
