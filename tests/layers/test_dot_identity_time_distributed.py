"""Dot, Identity, TimeDistributed and Lambda's Keras arguments: contract, numpy/PyTorch references, finite
differences, shared weights, errors."""

import numpy as np
import pytest

import dlgpu
from dlgpu import layers, ops

from helpers import check_gradients
from .layer_test_case import run_layer_test
from .torch_ref import assert_close, grads_of


@pytest.mark.parametrize("kwargs,shapes,out_shape", [
    ({"axes": 1}, [(4, 5), (4, 5)], (4, 1)),
    ({"axes": -1}, [(2, 3, 5), (2, 4, 5)], (2, 3, 4)),
    ({"axes": (1, 2)}, [(2, 3, 5), (2, 4, 3)], (2, 5, 4)),
    ({"axes": [2, 1], "normalize": True}, [(2, 3, 4), (2, 4, 6, 2)], (2, 3, 6, 2)),
    ({"axes": 1}, [(1, 3), (1, 3, 2)], (1, 2)),
])
def test_dot_contract(kwargs, shapes, out_shape):
    run_layer_test(layers.Dot, kwargs, shapes, out_shape)


def _batch_dot_reference(x, y, a1, a2):
    """Keras's batch_dot spelled with numpy: contract x's axis a1 with y's a2, sample by sample."""
    out = np.stack([np.tensordot(x[i], y[i], axes=(a1 - 1, a2 - 1)) for i in range(x.shape[0])])
    return out[:, None] if out.ndim == 1 else out


@pytest.mark.parametrize("axes,shapes,normalize", [
    (1, [(3, 4), (3, 4)], False),
    ((1, 2), [(2, 3, 5), (2, 4, 3)], False),
    ((2, 1), [(2, 3, 4), (2, 4, 6, 2)], False),
    (-1, [(2, 3, 5), (2, 4, 5)], True),
    ((1, 1), [(2, 3, 4), (2, 3)], True),
])
def test_dot_matches_reference_and_torch_gradients(axes, shapes, normalize):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    x, y = (rng.standard_normal(s).astype(np.float32) for s in shapes)
    a1, a2 = (axes, axes) if isinstance(axes, int) else axes
    a1, a2 = a1 % x.ndim, a2 % y.ndim
    layer = layers.Dot(axes=axes, normalize=normalize)
    expected_shape = layer.compute_output_shape([x.shape, y.shape])
    up = rng.standard_normal(expected_shape).astype(np.float32)
    out, (gx, gy) = grads_of(layer, [x, y], [], up)
    tx, ty = torch.tensor(x, requires_grad=True), torch.tensor(y, requires_grad=True)
    nx = torch.nn.functional.normalize(tx, dim=a1, eps=1e-7) if normalize else tx
    ny = torch.nn.functional.normalize(ty, dim=a2, eps=1e-7) if normalize else ty
    ref = torch.stack([torch.tensordot(nx[i], ny[i], dims=([a1 - 1], [a2 - 1])) for i in range(x.shape[0])])
    ref = ref.reshape(expected_shape)
    (ref * torch.tensor(up)).sum().backward()
    if not normalize:
        np.testing.assert_allclose(out, _batch_dot_reference(x, y, a1, a2), rtol=1e-5, atol=1e-5)
    assert_close(out, ref)
    assert_close(gx, tx.grad, atol=1e-4)
    assert_close(gy, ty.grad, atol=1e-4)


def test_dot_cosine_and_finite_differences():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((3, 4)).astype(np.float32)
    cos = layers.Dot(axes=1, normalize=True)([x, 2 * x]).numpy()
    np.testing.assert_allclose(cos, np.ones((3, 1)), rtol=1e-6)
    check_gradients(lambda a, b: layers.Dot(axes=(2, 1), normalize=True, dtype="float64")([a, b]),
                    [rng.standard_normal((2, 3, 4)), rng.standard_normal((2, 4, 5))])
    out = layers.dot([x, x], axes=-1)
    np.testing.assert_allclose(out.numpy(), np.sum(x * x, axis=1, keepdims=True), rtol=1e-5)


@pytest.mark.parametrize("make,error,match", [
    (lambda: layers.Dot(axes="1", name="d"), TypeError, r"'d'.*axes='1'"),
    (lambda: layers.Dot(axes=(1, 2, 3), name="d"), ValueError, r"'d'.*two integers.*axes=\(1, 2, 3\)"),
    (lambda: layers.Dot(axes=(1, 1.5)), ValueError, r"axes"),
])
def test_dot_bad_arguments(make, error, match):
    with pytest.raises(error, match=match):
        make()


def test_dot_bad_shapes():
    a, b = np.ones((2, 3), np.float32), np.ones((2, 4), np.float32)
    with pytest.raises(ValueError, match=r"'d'.*axis values 3.*!= 4"):
        layers.Dot(axes=1, name="d")([a, b])
    with pytest.raises(ValueError, match=r"'d'.*list of 2 inputs"):
        layers.Dot(axes=1, name="d")([a, a, a])
    with pytest.raises(ValueError, match=r"'d'.*axis 0"):
        layers.Dot(axes=0, name="d")([a, a])
    with pytest.raises(ValueError, match=r"'d'.*rank >= 2"):
        layers.Dot(axes=1, name="d")([np.ones((2,), np.float32), a])
    with pytest.raises(ValueError, match=r"'d'.*axis 3 is out of bounds"):
        layers.Dot(axes=3, name="d")([a, a])
    with pytest.raises(ValueError, match=r"'d'.*batch sizes"):
        layers.Dot(axes=1, name="d")([a, np.ones((3, 3), np.float32)])
    with pytest.raises(ValueError, match=r"'d'.*axis values 3"):
        layers.Dot(axes=1, name="d")([dlgpu.Input((3,)), dlgpu.Input((4,))])


def test_identity():
    layer = run_layer_test(layers.Identity, {}, (2, 3, 4), (2, 3, 4))
    x = dlgpu.Tensor(np.ones((2, 3), np.float32))
    assert layer(x) is x
    inputs = dlgpu.Input((3,))
    assert layers.Identity()(inputs).shape == (None, 3)


@pytest.mark.parametrize("inner,in_shape,out_shape,weights", [
    (lambda: layers.Dense(3), (2, 4, 5), (2, 4, 3), 2),
    (lambda: layers.Conv2D(3, 2, padding="same"), (2, 3, 5, 5, 2), (2, 3, 5, 5, 3), 2),
    (lambda: layers.MaxPooling2D(), (1, 2, 4, 4, 3), (1, 2, 2, 2, 3), 0),
    (lambda: layers.Flatten(), (2, 3, 4, 2), (2, 3, 8), 0),
])
def test_time_distributed_contract(inner, in_shape, out_shape, weights):
    layer = run_layer_test(layers.TimeDistributed, {"layer": inner()}, in_shape, out_shape,
                           expected_num_trainable_weights=weights)
    assert layer.get_config()["layer"]["class_name"] == type(inner()).__name__


def test_time_distributed_equals_the_layer_on_each_step_and_shares_weights():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(2)
    x = rng.standard_normal((2, 3, 6, 6, 2)).astype(np.float32)
    conv = layers.Conv2D(4, 3, activation="relu")
    td = layers.TimeDistributed(conv)
    up = rng.standard_normal((2, 3, 4, 4, 4)).astype(np.float32)
    td(x)  # build, then take gradients with the weights known
    out, (gx, gk, gb) = grads_of(td, [x], [conv.kernel, conv.bias], up)
    assert len(td.weights) == 2 and td.weights[0] is conv.kernel  # one set of weights for every step
    for t in range(3):
        np.testing.assert_allclose(out[:, t], conv(x[:, t]).numpy(), rtol=1e-5, atol=1e-6)
    # torch: the same convolution on every step, weights (kh, kw, in, out) -> (out, in, kh, kw)
    tx = torch.tensor(x, requires_grad=True)
    tk = torch.tensor(conv.kernel.numpy(), requires_grad=True)
    tb = torch.tensor(conv.bias.numpy(), requires_grad=True)
    steps = tx.reshape(6, 6, 6, 2).permute(0, 3, 1, 2)
    ref = torch.relu(torch.nn.functional.conv2d(steps, tk.permute(3, 2, 0, 1), tb)).permute(0, 2, 3, 1)
    ref = ref.reshape(2, 3, 4, 4, 4)
    (ref * torch.tensor(up)).sum().backward()
    assert_close(out, ref)
    assert_close(gx, tx.grad, atol=1e-4)
    assert_close(gk, tk.grad, atol=1e-3)
    assert_close(gb, tb.grad, atol=1e-3)


def test_time_distributed_finite_differences_and_symbolic_shapes():
    rng = np.random.default_rng(3)
    dense = layers.Dense(2, activation="tanh", dtype="float64")
    td = layers.TimeDistributed(dense, dtype="float64")
    td(dlgpu.Tensor(rng.standard_normal((1, 2, 3)), dtype="float64"))
    check_gradients(td, [rng.standard_normal((2, 4, 3))])
    inputs = dlgpu.Input((None, 8, 8, 1))
    out = layers.TimeDistributed(layers.Conv2D(2, 3))(inputs)
    assert out.shape == (None, None, 6, 6, 2)
    model = dlgpu.Model(inputs, out)
    assert model.predict(np.zeros((1, 5, 8, 8, 1), np.float32), verbose=0).shape == (1, 5, 6, 6, 2)


def test_time_distributed_passes_training_on():
    x = np.ones((2, 3, 50), np.float32)
    td = layers.TimeDistributed(layers.Dropout(0.5))
    np.testing.assert_array_equal(td(x).numpy(), x)
    assert (td(x, training=True).numpy() == 0).any()


def test_time_distributed_errors():
    with pytest.raises(ValueError, match=r"keras.layers.Layer.*Received: 3"):
        layers.TimeDistributed(3)
    with pytest.raises(ValueError, match=r"'td'.*rank >= 3.*\(2, 3\)"):
        layers.TimeDistributed(layers.Dense(2), name="td")(np.ones((2, 3), np.float32))
    with pytest.raises(ValueError, match=r"'td'.*rank >= 3"):
        layers.TimeDistributed(layers.Dense(2), name="td")(dlgpu.Input((3,)))
    td = layers.TimeDistributed(layers.Dense(2, name="inner"), name="td")
    td(np.ones((2, 3, 4), np.float32))
    with pytest.raises(ValueError, match=r"'inner'.*value 4"):
        td(np.ones((2, 3, 5), np.float32))


def test_lambda_output_shape_training_and_refusals():
    lam = layers.Lambda(lambda t: ops.concatenate([t, t], axis=-1), output_shape=(6,))
    assert lam(dlgpu.Input((3,))).shape == (None, 6)
    lam = layers.Lambda(lambda t: t[:, :1], output_shape=lambda shape: [shape[0], 1])
    assert lam(dlgpu.Input((3,))).shape == (None, 1)
    seen = []

    def fn(t, scale, training=None):
        seen.append(training)
        return t * scale
    lam = layers.Lambda(fn, arguments={"scale": 2.0})
    x = np.ones((2, 3), np.float32)
    np.testing.assert_array_equal(lam(x, training=True).numpy(), 2 * x)
    lam(x)
    assert seen == [True, None]
    received = []

    def fn_with_mask(t, training=None, mask=None):  # a function may take the training flag and the mask
        received.append((training, None if mask is None else mask.numpy().tolist()))
        return t
    masked = dlgpu.Tensor(x)
    masked._keras_mask = dlgpu.Tensor(np.array([True, False]))
    layers.Lambda(fn_with_mask, mask=lambda inputs, mask: mask)(masked, training=False)
    assert received == [(False, [True, False])]
    with pytest.raises(ValueError, match=r"'lm'.*callable"):
        layers.Lambda(3, name="lm")
    with pytest.raises(ValueError, match=r"'lm'.*output_shape='x'"):
        layers.Lambda(fn, output_shape="x", name="lm")
    with pytest.raises(ValueError, match=r"'lm'.*arguments"):
        layers.Lambda(fn, arguments=[1], name="lm")


@pytest.mark.gpu
def test_dot_and_time_distributed_on_gpu_match_cpu():
    rng = np.random.default_rng(4)
    x, y = rng.standard_normal((2, 3, 4)).astype(np.float32), rng.standard_normal((2, 5, 4)).astype(np.float32)
    results = {}
    weights = None
    for device in ("cpu", "gpu"):
        with dlgpu.device(device):
            td = layers.TimeDistributed(layers.Dense(4))
            td.build((None, 3, 4))
            if weights is None:
                weights = td.get_weights()
            td.set_weights(weights)
            xt, yt = ops.convert_to_tensor(x), ops.convert_to_tensor(y)
            with dlgpu.GradientTape() as tape:
                tape.watch([xt, yt])
                out = layers.Dot(axes=-1, normalize=True)([td(xt), yt])
                loss = ops.sum(ops.square(out))
            grads = tape.gradient(loss, [xt, yt] + td.trainable_weights)
            results[device] = [out.numpy()] + [g.numpy() for g in grads]
    for a, b in zip(results["gpu"], results["cpu"]):
        np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-5)


def test_a_wrapper_of_ones_own():
    """keras.layers.Wrapper: the base a user's wrapper subclasses; it builds the wrapped layer and carries
    it in its config."""
    import dlgpu

    @dlgpu.saving.register_keras_serializable(package="tests")
    class Doubled(dlgpu.layers.Wrapper):
        def call(self, inputs):
            return self.layer(inputs) * 2.0

    wrapped = Doubled(dlgpu.layers.Dense(3))
    x = np.ones((2, 4), np.float32)
    out = wrapped(x).numpy()
    np.testing.assert_allclose(out, 2 * wrapped.layer(x).numpy(), rtol=1e-6)
    assert isinstance(dlgpu.layers.TimeDistributed(dlgpu.layers.Dense(2)), dlgpu.layers.Wrapper)
    again = Doubled.from_config(wrapped.get_config())
    assert isinstance(again.layer, dlgpu.layers.Dense) and again.layer.units == 3
    with pytest.raises(ValueError, match="Doubled.*keras.layers.Layer"):
        Doubled("dense")
