"""ops.conv2d_maxpool: a convolution and the 2x2 max-pooling after it, fused on the CPU.

Checked against the two separate ops (values and gradients), against finite differences in float64,
on odd sizes (the last row/column of an odd convolution output belongs to no window), strides, 'same'
padding and every activation the fusion accepts; the others fall back to the two ops.
"""

import numpy as np
import pytest

from dlgpu import ops
from dlgpu.autograd import GradientTape, Tensor, no_grad
from dlgpu.backend import cpu

from helpers import check_gradients

rng = np.random.default_rng(21)


def randn(*shape):
    return rng.standard_normal(shape)


def unfused(x, k, b, strides, padding, activation):
    return ops.max_pool2d(ops.conv2d(x, k, b, strides=strides, padding=padding, activation=activation), 2)


CASES = [((2, 9, 11, 3), (3, 3, 3, 4), (1, 1), "valid"),
         ((3, 8, 7, 2), (3, 3, 2, 5), (1, 1), "same"),
         ((1, 13, 12, 2), (2, 3, 2, 3), (2, 1), "same")]


@pytest.mark.parametrize("activation", ["relu", "linear", "sigmoid", "tanh", "gelu", "leaky_relu"])
@pytest.mark.parametrize("x_shape,k_shape,strides,padding", CASES)
def test_matches_the_two_ops_in_values_and_gradients(activation, x_shape, k_shape, strides, padding):
    arrays = [randn(*x_shape).astype(np.float32), randn(*k_shape).astype(np.float32),
              randn(k_shape[-1]).astype(np.float32)]
    results = []
    for fn in (ops.conv2d_maxpool, unfused):
        x, k, b = (Tensor(a) for a in arrays)
        with GradientTape() as tape:
            tape.watch([x, k, b])
            y = fn(x, k, b, strides, padding, activation)
        upstream = np.linspace(-1, 1, y.size, dtype=np.float32).reshape(y.shape)
        grads = tape.gradient(y, [x, k, b], output_gradients=Tensor(upstream))
        results.append([y.numpy()] + [g.numpy() for g in grads])
    for name, got, want in zip(["y", "dx", "dkernel", "dbias"], *results):
        assert got.shape == want.shape and got.dtype == want.dtype == np.float32, name
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5, err_msg=name)


@pytest.mark.parametrize("activation", ["relu", "linear", "sigmoid", "tanh"])
def test_gradients_match_finite_differences(activation):
    while True:  # keep pooled pre-activations off the relu kink and window maxima apart
        inputs = [randn(2, 7, 6, 2), randn(3, 3, 2, 3), randn(3)]
        with no_grad():
            z = ops.max_pool2d(ops.conv2d(Tensor(inputs[0], dtype="float64"), Tensor(inputs[1], dtype="float64"),
                                          padding="same"), 2).numpy() + inputs[2]
        if np.abs(z).min() > 1e-2:
            break
    check_gradients(lambda x, k, b: ops.conv2d_maxpool(x, k, b, padding="same", activation=activation), inputs,
                    rtol=1e-4)


def test_inference_and_training_give_the_same_output():
    x, k, b = randn(4, 10, 10, 3).astype(np.float32), randn(3, 3, 3, 8).astype(np.float32), randn(8).astype(np.float32)
    with no_grad():
        inference = ops.conv2d_maxpool(x, k, b, activation="relu").numpy()
    kt = Tensor(k)
    with GradientTape() as tape:
        tape.watch(kt)
        training = ops.conv2d_maxpool(x, kt, b, activation="relu").numpy()
    np.testing.assert_array_equal(inference, training)


def test_without_bias_and_with_a_one_pixel_output_falls_back_cleanly():
    x, k = randn(2, 6, 6, 1).astype(np.float32), randn(3, 3, 1, 2).astype(np.float32)
    np.testing.assert_allclose(ops.conv2d_maxpool(x, k, None).numpy(),
                               unfused(Tensor(x), Tensor(k), None, 1, "valid", "linear").numpy(), rtol=1e-6)
    with pytest.raises(ValueError, match="max_pool2d: the window .* is larger than the input"):
        ops.conv2d_maxpool(randn(1, 3, 3, 1), randn(3, 3, 1, 1))  # a 1x1 convolution output: no 2x2 window


def test_bad_operands_name_the_op_and_shapes():
    with pytest.raises(ValueError, match=r"conv2d_maxpool: input has 3 channels \(shape \(1, 8, 8, 3\)\) but the "
                                         r"kernel expects 2"):
        ops.conv2d_maxpool(randn(1, 8, 8, 3), randn(3, 3, 2, 4))
    with pytest.raises(ValueError, match="conv2d_maxpool: unsupported fused activation 'swish'"):
        ops.conv2d_maxpool(randn(1, 8, 8, 2), randn(3, 3, 2, 4), activation="swish")


def test_the_primitive_refuses_activations_that_do_not_commute_with_max():
    with pytest.raises(ValueError, match="conv2d_maxpool: activation 'gelu' does not commute with max"):
        cpu.conv2d_maxpool_forward(np.zeros((1, 6, 6, 1), np.float32), np.zeros((3, 3, 1, 1), np.float32), None,
                                   (1, 1), (0, 0, 0, 0), "gelu")


def test_backward_after_an_inference_forward_is_a_clear_error():
    _, ctx = cpu.conv2d_maxpool_forward(np.zeros((1, 6, 6, 1), np.float32), np.zeros((3, 3, 1, 1), np.float32),
                                        None, (1, 1), (0, 0, 0, 0), "relu", keep_for_backward=False)
    with pytest.raises(RuntimeError, match="keep_for_backward=False"):
        cpu.conv2d_maxpool_backward(np.zeros((1, 2, 2, 1), np.float32), ctx)
