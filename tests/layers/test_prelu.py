"""PReLU: the contract, values and gradients against torch.nn.PReLU (alpha per channel, shared over the other
axes) and a numpy formula (alpha per position), constraints, a model trained and saved, bad arguments."""

import numpy as np
import pytest

import dlgpu
from dlgpu import layers, ops
from dlgpu.models import load_model

from helpers import assert_model_on_gpu_matches_cpu, away_from, check_gradients

from .layer_test_case import run_layer_test

torch = pytest.importorskip("torch")


@pytest.mark.parametrize("shared_axes,alpha_shape", [(None, (4, 3)), ([1], (1, 3)), (2, (4, 1)), ([1, 2], (1, 1))])
def test_contract(shared_axes, alpha_shape):
    run_layer_test(layers.PReLU, {"shared_axes": shared_axes, "alpha_initializer": "ones"}, (2, 4, 3), (2, 4, 3),
                   expected_num_trainable_weights=1, expected_weight_shapes=[alpha_shape])


def test_config_as_keras():
    config = layers.PReLU().get_config()
    assert {"alpha_initializer", "alpha_regularizer", "alpha_constraint", "shared_axes"} <= set(config)
    assert config["shared_axes"] is None
    layer = layers.PReLU(shared_axes=1)
    assert layer.get_config()["shared_axes"] == [1]
    layer(np.ones((2, 3, 4), np.float32))
    np.testing.assert_array_equal(layer.alpha.numpy(), np.zeros((1, 4)))  # Keras's default: zeros, a ReLU
    assert layer.alpha.path == f"{layer.name}/alpha"


def test_matches_torch_per_channel():
    """Keras's (batch, steps, channels) with shared_axes=[1] is torch's (batch, channels, steps) PReLU."""
    rng = np.random.default_rng(0)
    x = away_from(rng.standard_normal((3, 5, 4)), [0.0])
    layer = layers.PReLU(shared_axes=[1], dtype="float64")
    layer.build((None, 5, 4))
    alpha = rng.uniform(0.05, 0.5, (1, 4))
    layer.set_weights([alpha])
    upstream = rng.standard_normal(x.shape)
    xt = dlgpu.Tensor(x, dtype="float64")
    with dlgpu.GradientTape() as tape:
        tape.watch(xt)
        y = layer(xt)
        loss = ops.sum(ops.multiply(y, dlgpu.Tensor(upstream, dtype="float64")))
    dx, dalpha = tape.gradient(loss, [xt, layer.alpha])

    module = torch.nn.PReLU(4).double()
    with torch.no_grad():
        module.weight.copy_(torch.from_numpy(alpha[0]))
    tx = torch.tensor(x.transpose(0, 2, 1), requires_grad=True)
    ty = module(tx)
    (ty * torch.from_numpy(upstream.transpose(0, 2, 1))).sum().backward()
    np.testing.assert_allclose(y.numpy(), ty.detach().numpy().transpose(0, 2, 1), rtol=1e-12)
    np.testing.assert_allclose(dx.numpy(), tx.grad.numpy().transpose(0, 2, 1), rtol=1e-12)
    np.testing.assert_allclose(dalpha.numpy()[0], module.weight.grad.numpy(), rtol=1e-10)


def test_per_position_alpha_values_and_finite_differences():
    rng = np.random.default_rng(1)
    x = away_from(rng.standard_normal((2, 3, 4)), [0.0])
    alpha = rng.uniform(-0.5, 0.5, (3, 4))
    layer = layers.PReLU(dtype="float64")
    layer.build((None, 3, 4))
    layer.set_weights([alpha])
    np.testing.assert_allclose(layer(dlgpu.Tensor(x, dtype="float64")).numpy(), np.where(x >= 0, x, alpha * x),
                               rtol=1e-12)

    def run(x, a):
        layer.alpha = a
        return layer(x)
    check_gradients(run, [x, alpha])


def test_batch_one_and_images():
    layer = layers.PReLU(alpha_initializer=dlgpu.initializers.Constant(0.25), shared_axes=[1, 2])
    x = -np.ones((1, 5, 6, 2), np.float32)
    np.testing.assert_allclose(layer(x).numpy(), -0.25 * np.ones_like(x))
    assert layer.alpha.shape == (1, 1, 2)
    # the shared axes may change size after the build, the others may not
    assert layer(-np.ones((1, 7, 3, 2), np.float32)).shape == (1, 7, 3, 2)
    with pytest.raises(ValueError, match="axis -1|axis 3"):
        layer(np.ones((1, 5, 6, 3), np.float32))


def test_constraint_applies_after_a_step():
    model = dlgpu.Sequential([dlgpu.Input((3,)), layers.PReLU(alpha_initializer="ones",
                                                                alpha_constraint="non_neg")])
    model.compile(optimizer=dlgpu.optimizers.SGD(10.0), loss="mse")
    model.fit(-np.ones((4, 3), np.float32), np.full((4, 3), 5.0, np.float32), epochs=1, verbose=0)
    assert (model.layers[0].alpha.numpy() >= 0).all()


def test_model_learns_slope_and_round_trips(tmp_path):
    rng = np.random.default_rng(2)
    x = rng.standard_normal((256, 4)).astype(np.float32)
    y = np.where(x >= 0, x, 0.3 * x)
    model = dlgpu.Sequential([dlgpu.Input((4,)), layers.PReLU(alpha_regularizer="l2")])
    model.compile(optimizer=dlgpu.optimizers.Adam(0.05), loss="mse")
    model.fit(x, y, epochs=30, batch_size=32, verbose=0)
    np.testing.assert_allclose(model.layers[0].alpha.numpy(), 0.3, atol=0.05)
    model.save(tmp_path / "prelu.dlgpu")
    loaded = load_model(tmp_path / "prelu.dlgpu")
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))


def test_bad_arguments():
    with pytest.raises(ValueError, match=r"PReLU.*shared_axes.*0"):
        layers.PReLU(shared_axes=[0])
    with pytest.raises(ValueError, match=r"PReLU.*shared axis 3 is out of range"):
        layers.PReLU(shared_axes=[3])(np.ones((2, 3, 4), np.float32))
    with pytest.raises(ValueError, match="alpha_constraint"):
        layers.PReLU(alpha_constraint="no_such_constraint")


@pytest.mark.gpu
def test_prelu_on_gpu_matches_cpu():
    x = np.random.default_rng(3).standard_normal((4, 5, 3)).astype(np.float32)
    assert_model_on_gpu_matches_cpu(lambda: dlgpu.Sequential([
        dlgpu.Input((5, 3)), layers.PReLU(alpha_initializer="random_normal", shared_axes=[1]), layers.Dense(2)]), x)
