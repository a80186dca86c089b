"""BatchNormalization and LayerNormalization: contract, PyTorch reference in training and inference mode,
Keras's moving-average convention (moving = moving * momentum + batch * (1 - momentum), biased variance)."""

import numpy as np
import pytest

from dlgpu import layers

from .layer_test_case import run_layer_test
from .torch_ref import assert_close, grads_of


def test_batch_normalization_contract():
    run_layer_test(layers.BatchNormalization, {}, (4, 3), (4, 3), expected_num_trainable_weights=2,
                   expected_num_non_trainable_weights=2, expected_weight_shapes=[(3,), (3,), (3,), (3,)])
    run_layer_test(layers.BatchNormalization, {"momentum": 0.9, "epsilon": 1e-5}, (2, 4, 4, 3), (2, 4, 4, 3),
                   expected_num_trainable_weights=2, expected_num_non_trainable_weights=2)


def test_layer_normalization_contract():
    run_layer_test(layers.LayerNormalization, {}, (4, 5), (4, 5), expected_num_trainable_weights=2)


def _bn_with_params(shape, momentum, rng):
    c = shape[-1]
    layer = layers.BatchNormalization(momentum=momentum, epsilon=1e-3)
    layer.build((None,) + shape[1:])
    gamma = rng.uniform(0.5, 1.5, c).astype(np.float32)
    beta = rng.standard_normal(c).astype(np.float32)
    mm = rng.standard_normal(c).astype(np.float32)
    mv = rng.uniform(0.5, 2.0, c).astype(np.float32)
    layer.set_weights([gamma, beta, mm, mv])
    return layer, gamma, beta, mm, mv


@pytest.mark.parametrize("shape", [(16, 5), (4, 3, 5, 6)])
def test_batch_norm_training_matches_torch(shape):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    x = (rng.standard_normal(shape) * 2 + 1).astype(np.float32)
    momentum = 0.9
    layer, gamma, beta, mm, mv = _bn_with_params(shape, momentum, rng)
    up = rng.standard_normal(shape).astype(np.float32)
    out, (gx, gg, gb) = grads_of(lambda t: layer(t, training=True), [x], [layer.gamma, layer.beta], up)

    tx = torch.tensor(x, requires_grad=True)
    tg = torch.tensor(gamma, requires_grad=True)
    tb = torch.tensor(beta, requires_grad=True)
    flat = tx.reshape(-1, shape[-1])  # channels last: every axis but the last is reduced
    ref = torch.nn.functional.batch_norm(flat, None, None, tg, tb, training=True, eps=1e-3).reshape(shape)
    (ref * torch.tensor(up)).sum().backward()
    assert_close(out, ref)
    assert_close(gx, tx.grad, atol=1e-4)
    assert_close(gg, tg.grad, atol=1e-4)
    assert_close(gb, tb.grad, atol=1e-4)

    # moving statistics: Keras's momentum convention and the *biased* batch variance (torch would use unbiased)
    axes = tuple(range(len(shape) - 1))
    np.testing.assert_allclose(layer.moving_mean.numpy(), mm * momentum + x.mean(axes) * (1 - momentum),
                               rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(layer.moving_variance.numpy(), mv * momentum + x.var(axes) * (1 - momentum),
                               rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("shape", [(16, 5), (4, 3, 5, 6)])
def test_batch_norm_inference_matches_torch(shape):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(1)
    x = rng.standard_normal(shape).astype(np.float32)
    layer, gamma, beta, mm, mv = _bn_with_params(shape, 0.99, rng)
    up = rng.standard_normal(shape).astype(np.float32)
    out, (gx, gg, gb) = grads_of(lambda t: layer(t, training=False), [x], [layer.gamma, layer.beta], up)
    tx = torch.tensor(x, requires_grad=True)
    tg = torch.tensor(gamma, requires_grad=True)
    tb = torch.tensor(beta, requires_grad=True)
    ref = torch.nn.functional.batch_norm(tx.reshape(-1, shape[-1]), torch.tensor(mm), torch.tensor(mv), tg, tb,
                                         training=False, eps=1e-3).reshape(shape)
    (ref * torch.tensor(up)).sum().backward()
    assert_close(out, ref)
    assert_close(gx, tx.grad)
    assert_close(gg, tg.grad, atol=1e-4)
    assert_close(gb, tb.grad, atol=1e-4)
    # inference never touches the moving statistics
    np.testing.assert_array_equal(layer.moving_mean.numpy(), mm)
    np.testing.assert_array_equal(layer.moving_variance.numpy(), mv)
    # no training flag = inference too
    np.testing.assert_allclose(layer(x).numpy(), out, rtol=1e-6)


def test_frozen_batch_norm_runs_in_inference_mode():
    # Keras 3: trainable=False makes BatchNormalization use (and keep) its moving statistics
    rng = np.random.default_rng(2)
    x = rng.standard_normal((8, 3)).astype(np.float32)
    layer, _, _, mm, mv = _bn_with_params((8, 3), 0.99, rng)
    layer.trainable = False
    np.testing.assert_allclose(layer(x, training=True).numpy(), layer(x, training=False).numpy())
    np.testing.assert_array_equal(layer.moving_mean.numpy(), mm)


def test_layer_norm_matches_torch():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(3)
    x = rng.standard_normal((4, 6)).astype(np.float32)
    layer = layers.LayerNormalization(epsilon=1e-3)
    layer.build((None, 6))
    g = rng.uniform(0.5, 1.5, 6).astype(np.float32)
    b = rng.standard_normal(6).astype(np.float32)
    layer.set_weights([g, b])
    up = rng.standard_normal((4, 6)).astype(np.float32)
    out, (gx, gg, gb) = grads_of(layer, [x], [layer.gamma, layer.beta], up)
    tx, tg, tb = (torch.tensor(a, requires_grad=True) for a in (x, g, b))
    ref = torch.nn.functional.layer_norm(tx, (6,), tg, tb, eps=1e-3)
    (ref * torch.tensor(up)).sum().backward()
    assert_close(out, ref)
    assert_close(gx, tx.grad, atol=1e-4)
    assert_close(gg, tg.grad)
    assert_close(gb, tb.grad)


def test_batch_norm_wrong_channels():
    layer = layers.BatchNormalization(name="bn")
    layer(np.zeros((2, 3), np.float32))
    with pytest.raises(ValueError, match=r"'bn'.*3.*\(2, 4\)"):
        layer(np.zeros((2, 4), np.float32))
