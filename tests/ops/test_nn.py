"""dlgpu.ops.nn: activations, fused dense, softmax, cross-entropies, dropout, batch norm."""

import numpy as np
import pytest

from dlgpu import ops
from dlgpu.autograd import GradientTape, Tensor

from helpers import away_from, check_gradients

rng = np.random.default_rng(3)


def randn(*shape):
    return rng.standard_normal(shape)


ACTIVATIONS = ["relu", "sigmoid", "tanh", "gelu", "leaky_relu", "relu6", "softplus", "softsign", "silu", "elu",
               "selu", "hard_sigmoid", "log_sigmoid", "mish", "exponential"]
KINKS = {"relu": [0.0], "leaky_relu": [0.0], "relu6": [0.0, 6.0], "elu": [0.0], "selu": [0.0],
         "hard_sigmoid": [-3.0, 3.0]}


@pytest.mark.parametrize("name", ACTIVATIONS)
def test_activation_gradients(name):
    x = away_from(randn(3, 5) * 3, KINKS.get(name, []))
    check_gradients(getattr(ops, name), [x], rtol=1e-4)


@pytest.mark.parametrize("name", ACTIVATIONS)
def test_activation_keeps_float32(name):
    x = Tensor(randn(3, 5).astype(np.float32))
    with GradientTape() as tape:
        tape.watch(x)
        y = getattr(ops, name)(x)
    assert y.dtype == "float32"
    assert tape.gradient(y, x).dtype == "float32"


def test_gelu_approximate_gradient():
    check_gradients(lambda t: ops.gelu(t, approximate=True), [randn(3, 4)])


def test_leaky_relu_slope():
    check_gradients(lambda t: ops.leaky_relu(t, negative_slope=0.1), [away_from(randn(3, 4), [0.0])])


@pytest.mark.parametrize("axis", [-1, 0, 1])
@pytest.mark.parametrize("name", ["softmax", "log_softmax"])
def test_softmax_gradients(name, axis):
    check_gradients(lambda t: getattr(ops, name)(t, axis=axis), [randn(2, 3, 4)])


@pytest.mark.parametrize("axis", [-1, 0, 1])
def test_softmax_values(axis):
    x = randn(2, 3, 4)
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    expected = e / e.sum(axis=axis, keepdims=True)
    np.testing.assert_allclose(ops.softmax(Tensor(x), axis=axis).numpy(), expected, rtol=1e-5)
    np.testing.assert_allclose(ops.log_softmax(Tensor(x), axis=axis).numpy(), np.log(expected), rtol=1e-5, atol=1e-6)


def _dense_inputs(x_shape, units, bias, activation):
    """x, kernel, bias with every pre-activation well away from the relu/leaky_relu kink at 0."""
    while True:
        x, w = randn(*x_shape), randn(x_shape[-1], units)
        b = randn(units) if bias else None
        z = x @ w + (b if bias else 0)
        if activation not in ("relu", "leaky_relu") or np.abs(z).min() > 1e-2:
            return [x, w] + ([b] if bias else [])


@pytest.mark.parametrize("x_shape", [(4, 3), (2, 3, 3), (1, 3)], ids=str)
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("activation", ["linear", "relu", "sigmoid", "tanh", "gelu", "leaky_relu"])
def test_dense_gradients(activation, bias, x_shape):
    inputs = _dense_inputs(x_shape, 5, bias, activation)
    check_gradients(lambda *ts: ops.dense(*ts, activation=activation) if bias
                    else ops.dense(ts[0], ts[1], None, activation=activation), inputs, rtol=1e-4)


@pytest.mark.parametrize("activation", ["linear", "relu", "sigmoid", "tanh", "gelu", "leaky_relu"])
def test_dense_matches_composed_ops(activation):
    x, w, b = (Tensor(a.astype(np.float32)) for a in _dense_inputs((2, 3, 4), 5, True, activation))
    fused = ops.dense(x, w, b, activation=activation)
    composed = ops.add(ops.matmul(x, w), b)
    composed = composed if activation == "linear" else getattr(ops, activation)(composed)
    assert fused.shape == (2, 3, 5) and fused.dtype == "float32"
    np.testing.assert_allclose(fused.numpy(), composed.numpy(), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("activation", ["linear", "relu", "gelu", "leaky_relu"])
def test_dense_keeps_float32(activation):
    x, w, b = (Tensor(a.astype(np.float32)) for a in _dense_inputs((4, 3), 5, True, activation))
    with GradientTape() as tape:
        tape.watch([x, w, b])
        y = ops.dense(x, w, b, activation=activation)
    assert y.dtype == "float32"
    assert all(g.dtype == "float32" for g in tape.gradient(y, [x, w, b]))


def test_dense_feature_mismatch_error():
    with pytest.raises(ValueError, match=r"dense: input has 3 features \(shape \(2, 3\)\).*expects 4.*\(4, 5\)"):
        ops.dense(np.ones((2, 3), np.float32), np.ones((4, 5), np.float32))


def test_dense_unknown_activation_error():
    with pytest.raises(ValueError, match="unsupported fused activation 'swish'"):
        ops.dense(np.ones((2, 3), np.float32), np.ones((3, 5), np.float32), activation="swish")


@pytest.mark.parametrize("shape", [(4, 5), (2, 3, 5), (1, 2)], ids=str)
def test_softmax_cross_entropy_sparse_gradient(shape):
    labels = rng.integers(0, shape[-1], size=shape[:-1])
    grads = check_gradients(ops.softmax_cross_entropy, [randn(*shape), labels])
    assert len(grads) == 1


@pytest.mark.parametrize("shape", [(4, 5), (2, 3, 5)], ids=str)
def test_softmax_cross_entropy_dense_gradient(shape):
    labels = rng.dirichlet(np.ones(shape[-1]), size=shape[:-1])
    check_gradients(ops.softmax_cross_entropy, [randn(*shape), labels], wrt=[0])


def test_softmax_cross_entropy_other_axis():
    labels = rng.integers(0, 3, size=(4,))
    check_gradients(lambda z, t: ops.softmax_cross_entropy(z, t, axis=0), [randn(3, 4), labels])


def test_softmax_cross_entropy_values():
    z = randn(4, 5)
    labels = np.array([0, 4, 2, 2])
    expected = -np.log(np.exp(z) / np.exp(z).sum(-1, keepdims=True))[np.arange(4), labels]
    np.testing.assert_allclose(ops.softmax_cross_entropy(Tensor(z), labels).numpy(), expected, rtol=1e-5)
    onehot = np.eye(5)[labels]
    np.testing.assert_allclose(ops.softmax_cross_entropy(Tensor(z), Tensor(onehot)).numpy(), expected, rtol=1e-5)


def test_softmax_cross_entropy_extreme_logits_are_finite():
    z = Tensor(np.array([[1000.0, -1000.0, 0.0]], np.float32))
    loss = ops.softmax_cross_entropy(z, np.array([1]))
    assert np.isfinite(loss.numpy()).all()
    np.testing.assert_allclose(loss.numpy(), [2000.0])


def test_softmax_cross_entropy_keeps_float32_and_int_labels():
    z = Tensor(randn(4, 5).astype(np.float32))
    labels = Tensor(np.array([0, 1, 2, 3], np.int64))
    with GradientTape() as tape:
        tape.watch(z)
        loss = ops.softmax_cross_entropy(z, labels)
    assert loss.dtype == "float32" and labels.dtype == "int64"
    assert tape.gradient(loss, z).dtype == "float32"


@pytest.mark.parametrize("label_shape", [(3, 4), (4,)], ids=str)
def test_sigmoid_cross_entropy_gradient(label_shape):
    labels = rng.random(label_shape)
    check_gradients(ops.sigmoid_cross_entropy, [randn(3, 4) * 3, labels], wrt=[0])


def test_sigmoid_cross_entropy_values_and_extremes():
    z = np.array([-50.0, -1.0, 0.0, 2.0, 50.0])
    t = np.array([0.0, 1.0, 0.5, 0.0, 1.0])
    expected = np.logaddexp(0.0, z) - z * t  # -t log p - (1-t) log(1-p), written without overflow
    out = ops.sigmoid_cross_entropy(Tensor(z.astype(np.float32)), Tensor(t.astype(np.float32)))
    assert out.dtype == "float32"
    np.testing.assert_allclose(out.numpy(), expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("with_params", [True, False])
@pytest.mark.parametrize("shape,axes", [((6, 3), (0,)), ((2, 3, 3, 2), (0, 1, 2)), ((4, 5), (0, 1))], ids=str)
def test_batch_norm_train_gradient(shape, axes, with_params):
    param_shape = tuple(s for i, s in enumerate(shape) if i not in axes) or (1,)
    if with_params:
        inputs = [randn(*shape), rng.uniform(0.5, 1.5, param_shape), randn(*param_shape)]
        check_gradients(lambda x, g, b: ops.batch_norm_train(x, g, b, axes, 1e-3)[0], inputs, rtol=1e-4)
    else:
        check_gradients(lambda x: ops.batch_norm_train(x, None, None, axes, 1e-3)[0], [randn(*shape)], rtol=1e-4)


def test_batch_norm_train_statistics_and_float32():
    x = randn(8, 3).astype(np.float32)
    gamma, beta = Tensor(np.ones(3, np.float32)), Tensor(np.zeros(3, np.float32))
    y, mean, var = ops.batch_norm_train(Tensor(x), gamma, beta, (0,), 1e-3)
    assert y.dtype == "float32" and mean.dtype == np.float32 and var.dtype == np.float32
    np.testing.assert_allclose(np.squeeze(mean), x.mean(0), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(np.squeeze(var), x.var(0), rtol=1e-4)
    np.testing.assert_allclose(y.numpy(), (x - x.mean(0)) / np.sqrt(x.var(0) + 1e-3), rtol=1e-4, atol=1e-5)


def test_batch_normalization_inference_gradient():
    x, mean, var = randn(4, 3), randn(3), rng.uniform(0.5, 2, 3)
    check_gradients(lambda x, m, v, o, s: ops.batch_normalization(x, m, v, offset=o, scale=s),
                    [x, mean, var, randn(3), randn(3)])


@pytest.mark.parametrize("rate", [0.25, 0.5, 0.9])
def test_dropout_grad_is_mask_scaled(rate):
    x = Tensor(randn(20, 30).astype(np.float32) + 5.0)  # no zeros in x: zeros in y are dropped entries
    with GradientTape() as tape:
        tape.watch(x)
        y = ops.dropout(x, rate, seed=7)
    kept = y.numpy() != 0
    assert 0 < kept.mean() < 1
    expected_mask = kept / np.float32(1 - rate)
    np.testing.assert_allclose(y.numpy(), x.numpy() * expected_mask, rtol=1e-6)
    g = tape.gradient(y, x)
    assert y.dtype == "float32" and g.dtype == "float32"
    np.testing.assert_allclose(g.numpy(), expected_mask, rtol=1e-6)


def test_dropout_fixed_seed_gradient_check():
    check_gradients(lambda t: ops.dropout(t, 0.5, seed=3), [randn(4, 5)])


def test_dropout_noise_shape_and_rate_zero():
    x = Tensor(np.ones((4, 6), np.float32))
    y = ops.dropout(x, 0.5, noise_shape=(None, 1), seed=1).numpy()
    assert (np.ptp(y, axis=1) == 0).all()  # one decision per row
    assert ops.dropout(x, 0.0) is x
    with pytest.raises(ValueError, match="rate must be in"):
        ops.dropout(x, 1.0)
