"""dlgpu.ops.reduce: gradients over various axes and keepdims, dtypes, values against numpy."""

import numpy as np
import pytest

from dlgpu import ops
from dlgpu.autograd import GradientTape, Tensor

from helpers import check_gradients

rng = np.random.default_rng(1)

AXES = [None, 0, 1, -1, (0, 2), (0, 1, 2)]


def distinct(*shape):
    """Values with no ties and no zeros (max/min/prod have kinks there)."""
    x = rng.permutation(np.arange(1, int(np.prod(shape)) + 1)).reshape(shape).astype(np.float64)
    return (x / x.size + 0.1) * rng.choice([-1.0, 1.0], shape)


@pytest.mark.parametrize("keepdims", [False, True])
@pytest.mark.parametrize("axis", AXES, ids=str)
@pytest.mark.parametrize("name", ["sum", "mean", "max", "min", "prod", "var", "std", "logsumexp"])
def test_reduction_gradients(name, axis, keepdims):
    x = distinct(2, 3, 4)
    op = getattr(ops, name)
    check_gradients(lambda t: op(t, axis=axis, keepdims=keepdims), [x], rtol=1e-4)


@pytest.mark.parametrize("keepdims", [False, True])
@pytest.mark.parametrize("axis", AXES, ids=str)
@pytest.mark.parametrize("name", ["sum", "mean", "max", "min", "prod", "var", "std", "logsumexp"])
def test_reduction_values_and_float32(name, axis, keepdims):
    x = distinct(2, 3, 4).astype(np.float32)
    if name == "logsumexp":
        def ref(a, axis, keepdims):
            return np.log(np.sum(np.exp(a), axis=axis, keepdims=keepdims))
    else:
        ref = getattr(np, name)
    t = Tensor(x)
    with GradientTape() as tape:
        tape.watch(t)
        y = getattr(ops, name)(t, axis=axis, keepdims=keepdims)
    np.testing.assert_allclose(y.numpy(), ref(x.astype(np.float64), axis=axis, keepdims=keepdims), rtol=1e-5, atol=1e-6)
    assert y.dtype == "float32"
    assert tape.gradient(y, t).dtype == "float32"


def test_max_ties_share_gradient():
    x = Tensor(np.array([[1.0, 3.0, 3.0]], np.float32))
    with GradientTape() as tape:
        tape.watch(x)
        y = ops.max(x, axis=1)
    np.testing.assert_allclose(tape.gradient(y, x).numpy(), [[0.0, 0.5, 0.5]])


def test_norm_gradient():
    check_gradients(lambda t: ops.norm(t, axis=-1), [distinct(3, 4)])


@pytest.mark.parametrize("axis", [None, 0, 1])
def test_cumsum_gradient(axis):
    check_gradients(lambda t: ops.cumsum(t, axis=axis), [distinct(3, 4)])


def test_moments():
    x = distinct(4, 3)
    mean, var = ops.moments(Tensor(x, dtype="float64"), axes=[0])
    np.testing.assert_allclose(mean.numpy(), x.mean(0))
    np.testing.assert_allclose(var.numpy(), x.var(0))
    check_gradients(lambda t: ops.moments(t, axes=[0]), [x])


def test_mean_of_int_is_float32():
    assert ops.mean(Tensor(np.array([1, 2], np.int32))).dtype == "float32"


def test_sum_of_int_labels_stays_int():
    assert ops.sum(Tensor(np.array([1, 2], np.int64))).dtype == "int64"


@pytest.mark.parametrize("keepdims", [False, True])
@pytest.mark.parametrize("axis", [None, 0, 1, -1], ids=str)
@pytest.mark.parametrize("name", ["argmax", "argmin"])
def test_index_reductions(name, axis, keepdims):
    x = distinct(3, 4)
    out = getattr(ops, name)(Tensor(x), axis=axis, keepdims=keepdims)
    expected = getattr(np, name)(x, axis=axis, keepdims=keepdims)
    assert out.dtype == "int32"  # Keras 3; numpy says int64
    assert out.shape == expected.shape
    np.testing.assert_array_equal(out.numpy(), expected)


def test_argmax_argmin_keras_examples():
    x = ops.arange(6).reshape(2, 3) + 10
    assert int(ops.argmax(x)) == 5 and int(ops.argmin(x)) == 0  # axis=None: into the flattened tensor
    np.testing.assert_array_equal(ops.argmax(x, axis=0).numpy(), [1, 1, 1])
    np.testing.assert_array_equal(ops.argmax(x, axis=1).numpy(), [2, 2])


def test_sum_of_scalar_target_gradient():
    x = Tensor(distinct(3), dtype="float64")
    with GradientTape() as tape:
        tape.watch(x)
        y = ops.sum(x * x)
    np.testing.assert_allclose(tape.gradient(y, x).numpy(), 2 * x.numpy())


@pytest.mark.parametrize("axis", [None, 0, 1, (0, 1)], ids=str)
@pytest.mark.parametrize("zeros", [[(0, 0)], [(0, 0), (1, 2)], [(0, 0), (0, 1)]], ids=["one", "two apart", "two together"])
def test_prod_gradient_with_zeros(zeros, axis):
    x = distinct(2, 3)
    for index in zeros:
        x[index] = 0.0
    check_gradients(lambda t: ops.prod(t, axis=axis), [x])


def test_prod_gradient_of_scalar():
    check_gradients(ops.prod, [np.array(1.5)])
