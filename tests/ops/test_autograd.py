"""dlgpu.autograd: GradientTape semantics (after tf.GradientTape), Variable, no_grad, stop_gradient."""

import numpy as np
import pytest

from dlgpu import ops
from dlgpu.autograd import GradientTape, Tensor, Variable, no_grad


def f32(*values):
    return np.array(values, np.float32)


def test_gradient_of_trainable_variable():
    v = Variable(f32(1.0, 2.0, 3.0))
    with GradientTape() as tape:
        y = ops.sum(v * v)
    g = tape.gradient(y, v)
    assert isinstance(g, Tensor) and g.dtype == "float32"
    np.testing.assert_allclose(g.numpy(), [2.0, 4.0, 6.0])


def test_non_persistent_tape_raises_on_second_call():
    v = Variable(f32(1.0))
    with GradientTape() as tape:
        y = v * 2
    tape.gradient(y, v)
    with pytest.raises(RuntimeError, match="persistent=True"):
        tape.gradient(y, v)


def test_persistent_tape_allows_repeated_calls():
    v = Variable(f32(3.0))
    x = Tensor(f32(2.0))
    with GradientTape(persistent=True) as tape:
        tape.watch(x)
        y = v * v
        z = x * v
    np.testing.assert_allclose(tape.gradient(y, v).numpy(), [6.0])
    np.testing.assert_allclose(tape.gradient(z, v).numpy(), [2.0])
    np.testing.assert_allclose(tape.gradient(z, x).numpy(), [3.0])
    np.testing.assert_allclose(tape.gradient(y, v).numpy(), [6.0])


def test_watch_constant_and_unwatched_constant_gets_none():
    a, b = Tensor(f32(2.0)), Tensor(f32(5.0))
    with GradientTape() as tape:
        tape.watch(a)
        y = a * b
    ga, gb = tape.gradient(y, [a, b])
    np.testing.assert_allclose(ga.numpy(), [5.0])
    assert gb is None


def test_watch_rejects_non_tensors():
    with GradientTape() as tape:
        with pytest.raises(TypeError, match="watch expects dlgpu tensors"):
            tape.watch(np.ones(2))


def test_watched_constant_is_released_after_gradient():
    a = Tensor(f32(2.0))
    with GradientTape() as tape:
        tape.watch(a)
        y = a * a
    tape.gradient(y, a)
    with GradientTape() as tape2:
        y2 = a * a
    assert tape2.gradient(y2, a) is None


def test_non_trainable_variable_gets_none_unless_watched():
    v = Variable(f32(2.0), trainable=False)
    with GradientTape() as tape:
        y = v * v
    assert tape.gradient(y, v) is None
    with GradientTape() as tape:
        tape.watch(v)
        y = v * v
    np.testing.assert_allclose(tape.gradient(y, v).numpy(), [4.0])
    assert v._tracked is False  # watching it once did not make it trainable


def test_trainable_toggle():
    v = Variable(f32(2.0))
    v.trainable = False
    with GradientTape() as tape:
        y = v * 3
    assert tape.gradient(y, v) is None
    v.trainable = True
    with GradientTape() as tape:
        y = v * 3
    np.testing.assert_allclose(tape.gradient(y, v).numpy(), [3.0])


def test_gradient_of_list_of_targets_sums():
    v = Variable(f32(2.0))
    with GradientTape() as tape:
        y1 = v * v
        y2 = v * 3
    np.testing.assert_allclose(tape.gradient([y1, y2], v).numpy(), [7.0])


def test_sources_structure_is_kept():
    a, b = Variable(f32(1.0)), Variable(f32(2.0))
    with GradientTape(persistent=True) as tape:
        y = a * b
    grads = tape.gradient(y, [a, b])
    assert isinstance(grads, list) and len(grads) == 2
    grads = tape.gradient(y, {"a": a, "b": b})
    np.testing.assert_allclose(grads["a"].numpy(), [2.0])
    np.testing.assert_allclose(grads["b"].numpy(), [1.0])


def test_output_gradients():
    v = Variable(f32(1.0, 2.0))
    with GradientTape() as tape:
        y = v * v
    g = tape.gradient(y, v, output_gradients=Tensor(f32(10.0, 100.0)))
    np.testing.assert_allclose(g.numpy(), [20.0, 400.0])


def test_output_gradients_for_list_of_targets():
    v = Variable(f32(3.0))
    with GradientTape() as tape:
        y1, y2 = v * 2, v * v
    g = tape.gradient([y1, y2], v, output_gradients=[Tensor(f32(1.0)), Tensor(f32(0.5))])
    np.testing.assert_allclose(g.numpy(), [2.0 + 3.0])


def test_unconnected_gradients_zero():
    a, b = Variable(f32(1.0, 2.0)), Variable(np.ones((2, 2), np.float32))
    with GradientTape(persistent=True) as tape:
        y = a * 2
    assert tape.gradient(y, b) is None
    g = tape.gradient(y, b, unconnected_gradients="zero")
    assert g.shape == (2, 2) and g.dtype == "float32"
    np.testing.assert_array_equal(g.numpy(), 0)


def test_unconnected_gradients_zero_even_with_inf_values():
    b = Variable(f32(np.inf, np.nan))
    a = Variable(f32(1.0))
    with GradientTape() as tape:
        y = a * 2
    np.testing.assert_array_equal(tape.gradient(y, b, unconnected_gradients="zero").numpy(), [0.0, 0.0])


def test_unconnected_gradients_invalid_value():
    a = Variable(f32(1.0))
    with GradientTape() as tape:
        y = a * 2
    with pytest.raises(ValueError, match="unconnected_gradients"):
        tape.gradient(y, a, unconnected_gradients="nan")


def test_gradient_wrt_target_itself():
    a = Variable(f32(1.0, 2.0))
    with GradientTape() as tape:
        y = a * 2
        tape.watch(y)
    np.testing.assert_allclose(tape.gradient(y, a).numpy(), [2.0, 2.0])


def test_nested_tapes():
    x = Variable(f32(3.0))
    with GradientTape() as outer:
        with GradientTape() as inner:
            y = x * x * x
        dy = inner.gradient(y, x)
        z = x * 2 + y
    np.testing.assert_allclose(dy.numpy(), [27.0])
    np.testing.assert_allclose(outer.gradient(z, x).numpy(), [2.0 + 27.0])


def test_tapes_record_only_while_entered():
    v = Variable(f32(2.0))
    tape = GradientTape()
    with tape:
        y = v * v
    z = y * 3  # outside the tape: not recorded
    assert z._parents is None
    np.testing.assert_allclose(tape.gradient(y, v).numpy(), [4.0])


def test_no_grad_records_nothing():
    v = Variable(f32(2.0))
    with GradientTape() as tape:
        with no_grad():
            y = v * v
        assert y._parents is None and y._backward is None
        z = y * v
    np.testing.assert_allclose(tape.gradient(z, v).numpy(), [4.0])  # only through the recorded factor


def test_no_grad_as_decorator():
    @no_grad()
    def square(t):
        return t * t
    v = Variable(f32(2.0))
    with GradientTape() as tape:
        y = square(v)
    assert y._parents is None
    assert tape.gradient(y, v) is None


def test_stop_recording():
    v = Variable(f32(2.0))
    with GradientTape() as tape:
        with tape.stop_recording():
            y = v * v
    assert tape.gradient(y, v) is None


def test_stop_gradient():
    v = Variable(f32(2.0))
    with GradientTape() as tape:
        y = ops.stop_gradient(v * v) * v
    np.testing.assert_allclose(tape.gradient(y, v).numpy(), [4.0])


def test_diamond_graph_accumulates():
    v = Variable(f32(1.5))
    with GradientTape() as tape:
        a = v * 2
        b = ops.exp(a)
        c = ops.sin(a)
        y = b + c + a * a
    expected = 2 * np.exp(3.0) + 2 * np.cos(3.0) + 8 * 1.5
    np.testing.assert_allclose(tape.gradient(y, v).numpy(), [expected], rtol=1e-5)


def test_same_tensor_twice_in_one_op():
    v = Variable(f32(3.0))
    with GradientTape() as tape:
        y = v * v + v
    np.testing.assert_allclose(tape.gradient(y, v).numpy(), [7.0])


def test_long_chain_has_no_recursion_limit():
    v = Variable(f32(1.0))
    with GradientTape() as tape:
        y = v
        for _ in range(10_000):
            y = y + 1e-4
    g = tape.gradient(y, v)
    np.testing.assert_allclose(g.numpy(), [1.0])


def test_gradient_errors_for_bad_sources_and_targets():
    v = Variable(f32(1.0))
    with GradientTape(persistent=True) as tape:
        y = v * 2
    with pytest.raises(TypeError, match="sources must be dlgpu tensors"):
        tape.gradient(y, np.ones(1))
    with pytest.raises(TypeError, match="target must be a dlgpu tensor"):
        tape.gradient(np.ones(1), v)


# -- Variable -------------------------------------------------------------------------------------

def test_variable_from_initializer_and_defaults():
    v = Variable(lambda shape, dtype: np.ones(shape, dtype), shape=(2, 3))
    assert v.shape == (2, 3) and v.dtype == "float32" and v.trainable
    assert Variable(np.zeros(2)).dtype == "float32"  # float64 data becomes float32 by default
    assert Variable(np.zeros(2), dtype="float64").dtype == "float64"
    with pytest.raises(ValueError, match="needs `shape`"):
        Variable(lambda shape, dtype: np.ones(shape, dtype))
    with pytest.raises(ValueError, match=r"initial value has shape \(2,\), expected \(3,\)"):
        Variable(f32(1.0, 2.0), shape=(3,))


def test_variable_assign_family():
    v = Variable(f32(1.0, 2.0))
    before = v.data
    v.assign(f32(5.0, 6.0))
    np.testing.assert_array_equal(v.numpy(), [5.0, 6.0])
    v.assign(Tensor(f32(1.0, 1.0)))
    v.assign_add(f32(1.0, 2.0))
    np.testing.assert_array_equal(v.numpy(), [2.0, 3.0])
    v.assign_sub(Tensor(f32(1.0, 1.0)))
    np.testing.assert_array_equal(v.numpy(), [1.0, 2.0])
    v.assign(0.5)
    np.testing.assert_array_equal(v.numpy(), [0.5, 0.5])
    assert v.data is before and v.dtype == "float32"  # updated in place, dtype kept


def test_variable_assign_keeps_dtype_from_float64_value():
    v = Variable(f32(1.0, 2.0))
    v.assign(np.array([3.0, 4.0]))
    v.assign_add(np.array([1.0, 1.0]))
    assert v.dtype == "float32"
    np.testing.assert_array_equal(v.numpy(), [4.0, 5.0])


@pytest.mark.parametrize("method", ["assign", "assign_add", "assign_sub"])
def test_variable_assign_shape_errors(method):
    v = Variable(np.zeros((2, 3), np.float32), name="kernel")
    with pytest.raises(ValueError, match=r"Variable 'kernel'.*shape \(3, 2\).*\(2, 3\)"):
        getattr(v, method)(np.ones((3, 2), np.float32))
    with pytest.raises(ValueError, match=r"Variable 'kernel'.*shape \(3,\).*\(2, 3\)"):
        getattr(v, method)(np.ones((3,), np.float32))  # would broadcast: still refused


@pytest.mark.parametrize("method", ["assign", "assign_add", "assign_sub"])
def test_variable_assign_scalar_ok(method):
    v = Variable(np.zeros((2, 3), np.float32))
    getattr(v, method)(1.0)
    assert v.shape == (2, 3)


def test_assign_inside_tape_does_not_break_recorded_gradient():
    v = Variable(f32(2.0))
    with GradientTape() as tape:
        y = v * 3
    v.assign(f32(100.0))
    np.testing.assert_allclose(tape.gradient(y, v).numpy(), [3.0])


def test_nested_tapes_watching_the_same_constant():
    x = Tensor(f32(2.0))
    with GradientTape() as outer:
        with GradientTape() as inner:
            inner.watch(x)
            outer.watch(x)
            y = x * x
        np.testing.assert_allclose(inner.gradient(y, x).numpy(), [4.0])
        z = x * 3  # the inner tape is done; the outer one still watches x
    np.testing.assert_allclose(outer.gradient(z, x).numpy(), [3.0])
