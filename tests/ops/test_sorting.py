"""dlgpu.ops.sort, argsort and top_k: values and dtypes against numpy, gradients against finite differences
(float64), ties, error messages.  PyTorch comparisons are in test_against_torch.py."""

import numpy as np
import pytest

from dlgpu import ops
from dlgpu.autograd import GradientTape, Tensor

from helpers import check_gradients

rng = np.random.default_rng(4)


def distinct(*shape):
    """Values without ties: a sort's gradient is only defined where the order does not flip."""
    return rng.permutation(np.arange(int(np.prod(shape)))).reshape(shape) / np.prod(shape) - 0.5


def with_ties(*shape):
    return rng.integers(0, 3, shape).astype(np.float32)


AXES = [-1, 0, 1, None]


@pytest.mark.parametrize("axis", AXES, ids=str)
@pytest.mark.parametrize("dtype", ["float32", "float64", "int32", "uint8"])
def test_sort_values_and_dtype(axis, dtype):
    x = (with_ties(3, 5) * 7).astype(dtype)
    out = ops.sort(Tensor(x, dtype=dtype), axis=axis)
    assert out.dtype == dtype
    np.testing.assert_array_equal(out.numpy(), np.sort(x, axis=axis))


@pytest.mark.parametrize("axis", AXES, ids=str)
def test_sort_values_while_recording(axis):
    # the tape path sorts through the permutation, not numpy's sort: same values, ties included
    x = Tensor(with_ties(3, 5))
    with GradientTape() as tape:
        tape.watch(x)
        out = ops.sort(x, axis=axis)
    np.testing.assert_array_equal(out.numpy(), np.sort(x.numpy(), axis=axis))


@pytest.mark.parametrize("axis", [-1, 0, 1, 2, None], ids=str)
def test_sort_gradient(axis):
    check_gradients(lambda t: ops.sort(t, axis=axis), [distinct(2, 3, 4)])


def test_sort_gradient_goes_back_through_the_permutation():
    x = Tensor(np.array([3.0, 1.0, 2.0], np.float32))
    with GradientTape() as tape:
        tape.watch(x)
        y = ops.sort(x)
    grad = tape.gradient(y, x, output_gradients=Tensor(np.array([10.0, 20.0, 30.0], np.float32)))
    np.testing.assert_array_equal(grad.numpy(), [30.0, 10.0, 20.0])


@pytest.mark.parametrize("axis", AXES, ids=str)
def test_argsort_is_stable_int32(axis):
    x = with_ties(4, 6)
    out = ops.argsort(x, axis=axis)
    assert out.dtype == "int32"
    np.testing.assert_array_equal(out.numpy(), np.argsort(x, axis=axis, kind="stable"))


def test_argsort_keras_examples():
    np.testing.assert_array_equal(ops.argsort(np.array([3, 1, 2])).numpy(), [1, 2, 0])
    x = np.array([[0, 3], [3, 2], [4, 5]])
    np.testing.assert_array_equal(ops.argsort(x, axis=0).numpy(), [[0, 1], [1, 0], [2, 2]])
    np.testing.assert_array_equal(ops.argsort(x, axis=1).numpy(), [[0, 1], [1, 0], [0, 1]])


def test_argsort_has_no_gradient():
    x = Tensor(distinct(5).astype(np.float32))
    with GradientTape() as tape:
        tape.watch(x)
        y = ops.argsort(x)
    assert tape.gradient(y, x) is None


@pytest.mark.parametrize("name", ["sort", "argsort"])
def test_sort_axis_out_of_range(name):
    with pytest.raises(ValueError, match=rf"{name}: axis 2 is out of range for x of shape \(3, 4\) \(rank 2\)"):
        getattr(ops, name)(np.ones((3, 4), np.float32), axis=2)


def reference_top_k(x, k):
    """Descending, ties by lower index: a stable sort on the negated values (exact for these floats)."""
    indices = np.argsort(-x, axis=-1, kind="stable")[..., :k]
    return np.take_along_axis(x, indices, -1), indices


@pytest.mark.parametrize("k", [0, 1, 3, 6])
@pytest.mark.parametrize("shape", [(6,), (4, 6), (2, 3, 6)], ids=str)
def test_top_k_values_indices_dtypes(shape, k):
    x = with_ties(*shape)
    values, indices = ops.top_k(x, k)
    expected_values, expected_indices = reference_top_k(x, k)
    assert values.dtype == "float32" and indices.dtype == "int32"
    assert values.shape == shape[:-1] + (k,)
    np.testing.assert_array_equal(values.numpy(), expected_values)
    np.testing.assert_array_equal(indices.numpy(), expected_indices)


def test_top_k_keras_example_and_ties():
    values, indices = ops.top_k(np.array([5, 2, 7, 1, 9, 3], np.int32), k=3)
    assert values.dtype == "int32"
    np.testing.assert_array_equal(values.numpy(), [9, 7, 5])
    np.testing.assert_array_equal(indices.numpy(), [4, 2, 0])
    _, indices = ops.top_k(np.array([1.0, 3.0, 3.0, 2.0, 3.0], np.float32), k=2)
    np.testing.assert_array_equal(indices.numpy(), [1, 2])


@pytest.mark.parametrize("sorted_", [True, False])
def test_top_k_gradient(sorted_):
    check_gradients(lambda t: ops.top_k(t, 3, sorted=sorted_)[0], [distinct(3, 5)])


def test_top_k_gradient_reaches_only_the_chosen_entries():
    x = Tensor(np.array([[0.1, 0.9, 0.5, 0.7]], np.float32))
    with GradientTape() as tape:
        tape.watch(x)
        values, indices = ops.top_k(x, 2)
    np.testing.assert_array_equal(tape.gradient(values, x).numpy(), [[0.0, 1.0, 0.0, 1.0]])


@pytest.mark.parametrize("k,message", [
    (4, r"top_k: k must be an integer from 0 to 3, the size of the last axis of x \(shape \(2, 3\)\); received k=4"),
    (-1, r"received k=-1"),
    (1.5, r"received k=1.5"),
    (True, r"received k=True"),
])
def test_top_k_bad_k(k, message):
    with pytest.raises(ValueError, match=message):
        ops.top_k(np.ones((2, 3), np.float32), k)


def test_top_k_of_a_scalar():
    with pytest.raises(ValueError, match=r"top_k: x must have at least one axis .*received shape \(\)"):
        ops.top_k(np.float32(1.0), 1)


@pytest.mark.gpu
def test_sorting_on_cupy_matches_numpy():
    import cupy
    x = with_ties(4, 6)
    for axis in AXES:
        np.testing.assert_array_equal(ops.sort(cupy.asarray(x), axis=axis).numpy(), np.sort(x, axis=axis))
        np.testing.assert_array_equal(ops.argsort(cupy.asarray(x), axis=axis).numpy(),
                                      np.argsort(x, axis=axis, kind="stable"))
    values, indices = ops.top_k(cupy.asarray(x), 3)
    np.testing.assert_array_equal(values.numpy(), reference_top_k(x, 3)[0])
    np.testing.assert_array_equal(indices.numpy(), reference_top_k(x, 3)[1])
    no_ties = distinct(4, 6).astype(np.float32)
    gradients = []
    for wrap in (np.asarray, cupy.asarray):
        t = Tensor(wrap(no_ties))
        with GradientTape(persistent=True) as tape:
            tape.watch(t)
            y = ops.sort(t, axis=0)
            top = ops.top_k(t, 2)[0]
        # distinct upstream values, so a gradient sent to the wrong entry shows
        up_sort, up_top = (Tensor(wrap(np.arange(np.prod(shape), dtype=np.float32).reshape(shape)))
                           for shape in (y.shape, top.shape))
        gradients.append([tape.gradient(y, t, output_gradients=up_sort).numpy(),
                          tape.gradient(top, t, output_gradients=up_top).numpy()])
    for on_cpu, on_gpu in zip(*gradients):
        np.testing.assert_array_equal(on_gpu, on_cpu)
