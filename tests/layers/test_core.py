"""Dense, Activation, Dropout, SpatialDropout2D, Flatten, Reshape: the layer contract, PyTorch CPU as reference, bad arguments."""

import numpy as np
import pytest

import dlgpu
from dlgpu import layers

from .layer_test_case import run_layer_test

RTOL = 1e-4
ATOL = 1e-5


# -- contract -------------------------------------------------------------------------------------
def test_dense_contract():
    run_layer_test(layers.Dense, {"units": 5, "activation": "relu"}, (4, 3), (4, 5),
                   expected_num_trainable_weights=2, expected_weight_shapes=[(3, 5), (5,)])


def test_dense_contract_no_bias_3d_input():
    run_layer_test(layers.Dense, {"units": 2, "use_bias": False}, (4, 6, 3), (4, 6, 2),
                   expected_num_trainable_weights=1, expected_weight_shapes=[(3, 2)])


def test_activation_contract():
    run_layer_test(layers.Activation, {"activation": "tanh"}, (2, 3, 4), (2, 3, 4))


def test_dropout_contract():
    run_layer_test(layers.Dropout, {"rate": 0.5}, (2, 3), (2, 3))


def test_flatten_contract():
    run_layer_test(layers.Flatten, {}, (2, 3, 4, 5), (2, 60))


def test_reshape_contract():
    run_layer_test(layers.Reshape, {"target_shape": (4, -1)}, (2, 3, 4), (2, 4, 3))


# -- against PyTorch --------------------------------------------------------------------------------
def _torch():
    return pytest.importorskip("torch")


def _torch_activation(name):
    torch = _torch()
    F = torch.nn.functional
    return {
        None: lambda x: x,
        "linear": lambda x: x,
        "relu": F.relu,
        "sigmoid": torch.sigmoid,
        "tanh": torch.tanh,
        "softmax": lambda x: F.softmax(x, dim=-1),
        "log_softmax": lambda x: F.log_softmax(x, dim=-1),
        "gelu": F.gelu,
        "elu": F.elu,
        "selu": F.selu,
        "softplus": F.softplus,
        "softsign": F.softsign,
        "swish": F.silu,
        "silu": F.silu,
        "leaky_relu": lambda x: F.leaky_relu(x, 0.2),  # keras.activations.leaky_relu: negative_slope=0.2
        "relu6": F.relu6,
        "hard_sigmoid": F.hardsigmoid,  # Keras 3: relu6(x + 3) / 6
        "exponential": torch.exp,
        "mish": F.mish,
    }[name]


ACTIVATIONS = [None, "linear", "relu", "sigmoid", "tanh", "softmax", "log_softmax", "gelu", "elu", "selu",
               "softplus", "softsign", "swish", "silu", "leaky_relu", "relu6", "hard_sigmoid", "exponential",
               "mish"]


def _grads_of(layer_out_fn, x_np, weights, upstream):
    """Forward, then gradients of sum(out * upstream) w.r.t. the input and each weight."""
    x = dlgpu.Tensor(x_np)
    with dlgpu.GradientTape() as tape:
        tape.watch(x)
        out = layer_out_fn(x)
        loss = dlgpu.ops.sum(dlgpu.ops.multiply(out, upstream))
    grads = tape.gradient(loss, [x] + list(weights))
    return out.numpy(), [g.numpy() for g in grads]


@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_dense_matches_torch(activation):
    torch = _torch()
    rng = np.random.default_rng(1)
    x = rng.standard_normal((8, 5)).astype(np.float32)
    layer = layers.Dense(4, activation=activation)
    layer.build((None, 5))
    w = rng.standard_normal((5, 4)).astype(np.float32) * 0.5
    b = rng.standard_normal(4).astype(np.float32) * 0.1
    layer.set_weights([w, b])
    upstream = rng.standard_normal((8, 4)).astype(np.float32)
    out, (gx, gw, gb) = _grads_of(layer, x, [layer.kernel, layer.bias], upstream)

    tx = torch.tensor(x, requires_grad=True)
    tw = torch.tensor(w, requires_grad=True)
    tb = torch.tensor(b, requires_grad=True)
    ref = _torch_activation(activation)(tx @ tw + tb)
    (ref * torch.tensor(upstream)).sum().backward()
    np.testing.assert_allclose(out, ref.detach().numpy(), rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(gx, tx.grad.numpy(), rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(gw, tw.grad.numpy(), rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(gb, tb.grad.numpy(), rtol=RTOL, atol=ATOL)


def test_dropout_training_vs_inference():
    dlgpu.set_random_seed(3)
    rate = 0.3
    layer = layers.Dropout(rate)
    x = np.ones((200, 50), np.float32)
    np.testing.assert_array_equal(layer(x).numpy(), x)                  # no training flag: inference
    np.testing.assert_array_equal(layer(x, training=False).numpy(), x)
    xt = dlgpu.Tensor(x)
    with dlgpu.GradientTape() as tape:
        tape.watch(xt)
        y = layer(xt, training=True)
        loss = dlgpu.ops.sum(y)
    (gx,) = tape.gradient(loss, [xt])
    y = y.numpy()
    kept = y != 0
    assert abs(1 - kept.mean() - rate) < 0.02, f"dropped fraction {1 - kept.mean():.3f}, rate {rate}"
    np.testing.assert_allclose(y[kept], 1 / (1 - rate), rtol=1e-6)       # inverted dropout scaling
    # the gradient is the same mask and scale (what torch's dropout backward gives)
    np.testing.assert_allclose(gx.numpy(), kept / (1 - rate), rtol=1e-6)
    assert layers.Dropout(0.0)(x, training=True).numpy().tolist() == x.tolist()


def test_spatial_dropout2d_contract():
    run_layer_test(layers.SpatialDropout2D, {"rate": 0.5}, (2, 4, 5, 3), (2, 4, 5, 3))


def test_spatial_dropout2d_drops_whole_channels_in_training_only():
    dlgpu.set_random_seed(4)
    rate = 0.4
    layer = layers.SpatialDropout2D(rate)
    x = np.random.default_rng(5).uniform(1, 2, (50, 3, 4, 40)).astype(np.float32)  # no zeros of its own
    np.testing.assert_array_equal(layer(x).numpy(), x)
    np.testing.assert_array_equal(layer(x, training=False).numpy(), x)
    xt = dlgpu.Tensor(x)
    with dlgpu.GradientTape() as tape:
        tape.watch(xt)
        y = layer(xt, training=True)
        loss = dlgpu.ops.sum(y)
    (gx,) = tape.gradient(loss, [xt])
    y = y.numpy()
    kept = y != 0
    # one decision per (sample, channel): every pixel of a feature map is kept, or none is
    per_map = kept.reshape(50, 12, 40)
    assert (per_map.all(axis=1) | ~per_map.any(axis=1)).all()
    assert abs(1 - per_map[:, 0].mean() - rate) < 0.05, f"dropped fraction {1 - per_map[:, 0].mean():.3f}"
    np.testing.assert_allclose(y[kept], x[kept] / (1 - rate), rtol=1e-6)
    np.testing.assert_allclose(gx.numpy(), kept / (1 - rate), rtol=1e-6)


def test_spatial_dropout2d_bad_arguments():
    with pytest.raises(ValueError, match=r"sd.*rate=1.5"):
        layers.SpatialDropout2D(1.5, name="sd")
    with pytest.raises(ValueError, match=r"'sd'.*data_format"):
        layers.SpatialDropout2D(0.5, data_format="channels_first", name="sd")
    with pytest.raises(TypeError, match="noise_shape"):
        layers.SpatialDropout2D(0.5, noise_shape=(None, 1, 1, None))
    with pytest.raises(ValueError, match=r"'sd3'.*ndim=4.*ndim=3"):
        layers.SpatialDropout2D(0.5, name="sd3")(np.ones((2, 3, 4), np.float32), training=True)


def test_flatten_reshape_match_torch():
    torch = _torch()
    rng = np.random.default_rng(2)
    x = rng.standard_normal((3, 4, 5, 2)).astype(np.float32)
    up = rng.standard_normal((3, 40)).astype(np.float32)
    out, (gx,) = _grads_of(layers.Flatten(), x, [], up)
    tx = torch.tensor(x, requires_grad=True)
    ref = tx.flatten(1)
    (ref * torch.tensor(up)).sum().backward()
    np.testing.assert_array_equal(out, ref.detach().numpy())
    np.testing.assert_array_equal(gx, tx.grad.numpy())

    up = rng.standard_normal((3, 10, 4)).astype(np.float32)
    out, (gx,) = _grads_of(layers.Reshape((10, -1)), x, [], up)
    tx = torch.tensor(x, requires_grad=True)
    ref = tx.reshape(3, 10, 4)
    (ref * torch.tensor(up)).sum().backward()
    np.testing.assert_array_equal(out, ref.detach().numpy())
    np.testing.assert_array_equal(gx, tx.grad.numpy())


# -- bad arguments: clear errors naming the argument ------------------------------------------------
@pytest.mark.parametrize("units", [0, -3, 2.5, "8", None, True])
def test_dense_bad_units(units):
    with pytest.raises(ValueError, match="units"):
        layers.Dense(units)


def test_unknown_activation_names_it():
    with pytest.raises(ValueError, match="rellu"):
        layers.Dense(3, activation="rellu")


@pytest.mark.parametrize("rate", [1.5, -0.1, "half"])
def test_dropout_bad_rate(rate):
    with pytest.raises(ValueError, match="rate"):
        layers.Dropout(rate)


def test_dropout_rate_one_is_rejected_or_zeroes():
    # Keras rejects rate=1 ("between 0 and 1", exclusive of 1 in the op); either way it must not divide by zero.
    try:
        layer = layers.Dropout(1.0)
    except ValueError as exc:
        assert "rate" in str(exc)
        return
    with pytest.raises(ValueError, match="rate"):
        layer(np.ones((2, 2), np.float32), training=True)


def test_reshape_incompatible():
    with pytest.raises(ValueError, match=r"reshape|target_shape"):
        layers.Reshape((7,))(np.zeros((2, 3, 4), np.float32))
    with pytest.raises(ValueError, match="target_shape"):
        layers.Reshape((5, -1))(dlgpu.Input(shape=(3, 4)))
    with pytest.raises(ValueError, match="-1"):
        layers.Reshape((-1, -1))


def test_dense_wrong_feature_count_names_layer_and_shapes():
    layer = layers.Dense(3, name="my_dense")
    layer(np.zeros((2, 4), np.float32))
    before = [w.copy() for w in layer.get_weights()]
    with pytest.raises(ValueError, match=r"my_dense.*(4|axis)") as info:
        layer(np.zeros((2, 5), np.float32))
    assert "(2, 5)" in str(info.value)
    for a, b in zip(layer.get_weights(), before):
        np.testing.assert_array_equal(a, b)


def test_unknown_layer_kwarg():
    with pytest.raises(TypeError, match="unitz"):
        layers.Dense(3, unitz=4)
