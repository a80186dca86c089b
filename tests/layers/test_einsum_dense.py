"""EinsumDense: the contract; Keras's kernel/bias shapes for its documented equations; values against
np.einsum; finite differences; a model trained and saved; bad equations and shapes named."""

import numpy as np
import pytest

import dlgpu
from dlgpu import layers
from dlgpu.models import load_model

from helpers import assert_model_on_gpu_matches_cpu, check_gradients

from .layer_test_case import run_layer_test

# (equation, output_shape, bias_axes, input shape, kernel shape, bias shape, output shape): Keras's own cases
CASES = [
    ("ab,bc->ac", 4, "c", (2, 3), (3, 4), (4,), (2, 4)),
    ("ab,bc->ac", (4,), None, (2, 3), (3, 4), None, (2, 4)),
    ("abc,cd->abd", (5, 4), "d", (2, 5, 3), (3, 4), (4,), (2, 5, 4)),
    ("abc,cd->abd", (None, 4), "bd", (2, 5, 3), (3, 4), (5, 4), (2, 5, 4)),
    ("abc,cde->abde", (5, 2, 4), "de", (2, 5, 3), (3, 2, 4), (2, 4), (2, 5, 2, 4)),
    ("abcd,cde->abe", (5, 4), "e", (2, 5, 3, 2), (3, 2, 4), (4,), (2, 5, 4)),
    ("...b,bc->...c", 4, "c", (2, 5, 3), (3, 4), (4,), (2, 5, 4)),
    ("...b,bc->...c", 4, "c", (2, 3), (3, 4), (4,), (2, 4)),
    ("ab...,bc->ac...", (4,), "c", (2, 3, 6), (3, 4), (4, 1), (2, 4, 6)),
    ("abc,dc->abd", (5, 4), "bd", (2, 5, 3), (4, 3), (5, 4), (2, 5, 4)),
]


@pytest.mark.parametrize("equation,output_shape,bias_axes,x_shape,kernel,bias,out", CASES)
def test_shapes_and_values_against_numpy(equation, output_shape, bias_axes, x_shape, kernel, bias, out):
    layer = layers.EinsumDense(equation, output_shape, bias_axes=bias_axes, bias_initializer="random_normal")
    x = np.random.default_rng(0).standard_normal(x_shape).astype(np.float32)
    y = layer(x)
    assert layer.kernel.shape == kernel
    assert (layer.bias is None and bias is None) or layer.bias.shape == bias
    assert y.shape == out
    assert layer.compute_output_shape(x_shape) == out
    ref = np.einsum(equation, x.astype(np.float64), layer.kernel.numpy().astype(np.float64))
    if layer.bias is not None:
        ref = ref + layer.bias.numpy()
    np.testing.assert_allclose(y.numpy(), ref, rtol=1e-5, atol=1e-6)


def test_contract():
    run_layer_test(layers.EinsumDense, {"equation": "abc,cde->abde", "output_shape": (5, 2, 4), "bias_axes": "de",
                                        "activation": "relu"}, (2, 5, 3), (2, 5, 2, 4),
                   expected_num_trainable_weights=2, expected_weight_shapes=[(3, 2, 4), (2, 4)])
    run_layer_test(layers.EinsumDense, {"equation": "ab,bc->ac", "output_shape": 4}, (1, 3), (1, 4),
                   expected_num_trainable_weights=1, expected_weight_shapes=[(3, 4)])


def test_config_as_keras():
    layer = layers.EinsumDense("abc,cd->abd", output_shape=(None, 4), bias_axes="d", activation="tanh")
    config = layer.get_config()
    for key in ("output_shape", "equation", "activation", "bias_axes", "kernel_initializer", "bias_initializer",
                "kernel_regularizer", "bias_regularizer", "activity_regularizer", "kernel_constraint",
                "bias_constraint"):
        assert key in config
    assert config["output_shape"] == [None, 4]
    assert layers.deserialize(layers.serialize(layer)).get_config() == config
    layer(np.ones((2, 3, 5), np.float32))
    assert [w.path for w in layer.weights] == [f"{layer.name}/kernel", f"{layer.name}/bias"]
    assert dlgpu.Sequential([dlgpu.Input((None, 5)), layer]).output_shape == (None, None, 4)


def test_finite_differences():
    layer = layers.EinsumDense("abc,cde->abde", (4, 2, 3), bias_axes="e", activation="tanh", dtype="float64")
    layer.build((None, 4, 2))

    def run(x, kernel, bias):
        layer.kernel, layer.bias = kernel, bias
        return layer(x)
    rng = np.random.default_rng(1)
    check_gradients(run, [rng.standard_normal((2, 4, 2)), rng.standard_normal((2, 2, 3)), rng.standard_normal(3)])


def test_model_trains_and_round_trips(tmp_path):
    rng = np.random.default_rng(2)
    x = rng.standard_normal((128, 6, 4)).astype(np.float32)
    y = x @ rng.standard_normal((4, 3)).astype(np.float32)
    model = dlgpu.Sequential([dlgpu.Input((6, 4)), layers.EinsumDense("abc,cd->abd", (None, 3), bias_axes="d",
                                                                      kernel_regularizer="l2")])
    model.compile(optimizer=dlgpu.optimizers.Adam(0.05), loss="mse")
    history = model.fit(x, y, epochs=20, batch_size=32, verbose=0).history
    assert history["loss"][-1] < 0.1 * history["loss"][0]
    model.save(tmp_path / "einsum.dlgpu")
    loaded = load_model(tmp_path / "einsum.dlgpu")
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))


@pytest.mark.parametrize("kwargs,error,match", [
    ({"equation": "ab->b", "output_shape": 2}, ValueError, "invalid equation 'ab->b'"),
    ({"equation": 3, "output_shape": 2}, ValueError, "equation"),
    ({"equation": "ab,bc->ac", "output_shape": 0}, ValueError, "output_shape"),
    ({"equation": "ab,bc->ac", "output_shape": 2, "bias_axes": "x"}, ValueError, "bias_axes"),
    ({"equation": "ab,bc->ac", "output_shape": 2, "lora_rank": 4}, NotImplementedError, "lora_rank"),
    ({"equation": "ab,bc->ac", "output_shape": 2, "kernel_constraint": "nope"}, ValueError, "kernel_constraint"),
])
def test_bad_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        layers.EinsumDense(**kwargs)


def test_bad_shapes():
    x = np.ones((2, 3), np.float32)
    with pytest.raises(ValueError, match=r"output_shape.*must have 1 entries"):
        layers.EinsumDense("ab,bc->ac", (2, 3))(x)
    with pytest.raises(ValueError, match=r"does not fit an input of shape \(2, 3, 4\)"):
        layers.EinsumDense("ab,bc->ac", 2)(np.ones((2, 3, 4), np.float32))
    with pytest.raises(ValueError, match=r"output axis 'b' has size 5 in output_shape but 3"):
        layers.EinsumDense("abc,cd->abd", (5, 2))(np.ones((2, 3, 4), np.float32))
    with pytest.raises(ValueError, match=r"kernel axis 'x'.*neither"):
        layers.EinsumDense("ab,bx->ab", (3,))(x)


@pytest.mark.gpu
def test_einsum_dense_on_gpu_matches_cpu():
    x = np.random.default_rng(3).standard_normal((2, 5, 3)).astype(np.float32)
    assert_model_on_gpu_matches_cpu(lambda: dlgpu.Sequential([
        dlgpu.Input((5, 3)), layers.EinsumDense("abc,cde->abde", (5, 2, 4), bias_axes="de", activation="gelu",
                                                bias_initializer="random_normal")]), x)
