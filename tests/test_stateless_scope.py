"""keras.StatelessScope, Layer.stateless_call, Optimizer.stateless_apply, the metrics' stateless forms and
keras.SymbolicScope (dlgpu/scopes.py): values in, values out, the variables untouched; gradients reach
values given as watched tensors.  tests/keras_reference/test_stateless.py compares the numbers with Keras."""

import numpy as np
import pytest

import dlgpu
import dlgpu as keras
from dlgpu import layers, ops
from dlgpu.scopes import in_stateless_scope, in_symbolic_scope


def _model():
    keras.utils.set_random_seed(0)
    return keras.Sequential([keras.Input((4,)), layers.Dense(3, kernel_regularizer="l2"),
                             layers.BatchNormalization(), layers.Dense(1)])


def _x():
    return np.random.default_rng(0).normal(size=(6, 4)).astype(np.float32)


def test_stateless_call_matches_a_call_with_those_values_and_changes_no_variable():
    model, x = _model(), _x()
    model(x)
    before = [w.copy() for w in model.get_weights()]
    trainable = [ops.convert_to_tensor(v.numpy() * 2 + 0.1) for v in model.trainable_variables]
    non_trainable = [v.numpy() + 0.5 for v in model.non_trainable_variables]
    with keras.GradientTape() as tape:
        tape.watch(trainable)
        out, new_non_trainable, losses = model.stateless_call(trainable, non_trainable, x, training=True,
                                                              return_losses=True)
        loss = ops.sum(out * out) + sum(losses)
    grads = tape.gradient(loss, trainable)
    for a, b in zip(before, model.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert len(losses) == 1  # the kernel's l2 penalty, on the given kernel

    reference = _model()
    for v, value in zip(reference.trainable_variables, trainable):
        v.assign(keras.to_numpy(value))
    for v, value in zip(reference.non_trainable_variables, non_trainable):
        v.assign(value)
    with keras.GradientTape() as tape:
        expected = reference(x, training=True)
        expected_loss = ops.sum(expected * expected) + sum(reference.losses)
    expected_grads = tape.gradient(expected_loss, reference.trainable_variables)
    np.testing.assert_allclose(keras.to_numpy(out), keras.to_numpy(expected), rtol=1e-6)
    np.testing.assert_allclose(keras.to_numpy(losses[0]), keras.to_numpy(reference.losses[0]), rtol=1e-6)
    for got, want in zip(grads, expected_grads):
        np.testing.assert_allclose(keras.to_numpy(got), keras.to_numpy(want), rtol=1e-5, atol=1e-6)
    for got, want in zip(new_non_trainable, reference.non_trainable_variables):  # the statistics moved
        np.testing.assert_allclose(keras.to_numpy(got), want.numpy(), rtol=1e-6)
    assert not np.allclose(keras.to_numpy(new_non_trainable[0]), non_trainable[0])
    np.testing.assert_array_equal(non_trainable[0], model.non_trainable_variables[0].numpy() + 0.5)  # not written


def test_a_jax_style_training_loop_on_values():
    """Keras's functional loop: the state as values, threaded through stateless_call and stateless_apply."""
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(32, 4)).astype(np.float32), rng.normal(size=(32, 1)).astype(np.float32)
    model, optimizer = _model(), keras.optimizers.Adam(0.05)
    model(x)
    optimizer.build(model.trainable_variables)
    state = ([v.numpy() for v in model.trainable_variables], [v.numpy() for v in model.non_trainable_variables],
             [v.numpy() for v in optimizer.variables])
    frozen = [w.copy() for w in model.get_weights()]
    first = last = None
    for _ in range(15):
        trainable, non_trainable, optimizer_variables = state
        trainable = [ops.convert_to_tensor(t) for t in trainable]
        with keras.GradientTape() as tape:
            tape.watch(trainable)
            pred, non_trainable = model.stateless_call(trainable, non_trainable, x, training=True)
            loss = ops.mean((pred - y) ** 2)
        grads = tape.gradient(loss, trainable)
        trainable, optimizer_variables = optimizer.stateless_apply(optimizer_variables, grads, trainable)
        state = (trainable, non_trainable, optimizer_variables)
        first = float(loss) if first is None else first
        last = float(loss)
    assert last < 0.7 * first
    for a, b in zip(frozen, model.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert int(optimizer.iterations.numpy()) == 0 and int(keras.to_numpy(state[2][0])) == 15


def test_optimizer_stateless_apply_equals_apply():
    grads = [np.array([1.0, -2.0, 0.5], np.float32), np.array([[0.3]], np.float32)]
    start = [np.array([2.0, 0.0, -1.0], np.float32), np.array([[4.0]], np.float32)]
    for make in (lambda: keras.optimizers.Adam(0.1), lambda: keras.optimizers.SGD(0.1, momentum=0.9),
                 lambda: keras.optimizers.AdamW(0.1, weight_decay=0.1)):
        stateless, plain = make(), make()
        variables = [keras.Variable(s) for s in start]
        stateless.build(variables)
        values = [s.copy() for s in start]
        optimizer_values = [v.numpy() for v in stateless.variables]
        reference = [keras.Variable(s) for s in start]
        for _ in range(3):
            values, optimizer_values = stateless.stateless_apply(optimizer_values, grads, values)
            plain.apply(grads, reference)
        for got, want in zip(values, reference):
            np.testing.assert_allclose(keras.to_numpy(got), want.numpy(), rtol=1e-6)
        for got, want in zip(optimizer_values, plain.variables):
            np.testing.assert_allclose(keras.to_numpy(got), want.numpy(), rtol=1e-6)
        for v, s in zip(variables, start):
            np.testing.assert_array_equal(v.numpy(), s)


class _SumAndCount(keras.metrics.Metric):
    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.total = self.add_variable((), "zeros", name="total")
        self.count = self.add_variable((), "zeros", name="count")

    def update_state(self, values):
        self.total.assign_add(ops.sum(values))
        self.count.assign_add(float(np.size(values)))

    def result(self):
        return self.total / self.count


def test_metric_stateless_forms_thread_the_state_and_leave_the_metric():
    metric = _SumAndCount()
    state = metric.stateless_reset_state()
    state = metric.stateless_update_state(state, np.array([1.0, 2.0, 3.0], np.float32))
    state = metric.stateless_update_state(state, np.array([10.0], np.float32))
    assert [float(keras.to_numpy(s)) for s in state] == [16.0, 4.0]
    assert float(keras.to_numpy(metric.stateless_result(state))) == 4.0
    assert float(metric.total.numpy()) == 0.0 and float(metric.count.numpy()) == 0.0
    with pytest.raises(ValueError, match="corresponding 1:1"):
        metric.stateless_update_state(state[:1], np.ones(2))
    with pytest.raises(NotImplementedError, match="host arrays"):
        keras.metrics.Mean().stateless_update_state([], np.ones(2))


def test_stateless_scope_reads_mapped_values_and_keeps_writes():
    v = keras.Variable(np.array([1.0, 2.0], np.float32))
    other = keras.Variable(np.array([5.0], np.float32))
    given = np.array([10.0, 20.0], np.float32)
    with keras.StatelessScope(state_mapping=[(v, given)]) as scope:
        assert in_stateless_scope()
        np.testing.assert_array_equal(keras.to_numpy(v * 1.0), [10.0, 20.0])
        v.assign_add(np.array([1.0, 1.0], np.float32))
        other.assign(np.array([7.0], np.float32))  # unmapped: written in the scope only
        np.testing.assert_array_equal(other.numpy(), [7.0])
        np.testing.assert_array_equal(keras.to_numpy(scope.get_current_value(v)), [11.0, 21.0])
    assert not in_stateless_scope()
    np.testing.assert_array_equal(v.numpy(), [1.0, 2.0])
    np.testing.assert_array_equal(other.numpy(), [5.0])
    np.testing.assert_array_equal(given, [10.0, 20.0])  # the caller's array is never written
    np.testing.assert_array_equal(keras.to_numpy(scope.get_current_value(v)), [11.0, 21.0])
    np.testing.assert_array_equal(keras.to_numpy(scope.get_current_value(other)), [7.0])

    layer = layers.ActivityRegularization(l1=1.0)
    with keras.StatelessScope(collect_losses=True) as scope:
        layer(np.array([[1.0, -2.0]], np.float32))
    assert len(scope.losses) == 1 and layer.losses == []
    with keras.StatelessScope():
        layer(np.array([[1.0, -2.0]], np.float32))  # without collect_losses the term is dropped, as in Keras
    assert layer.losses == []

    with pytest.raises(ValueError, match="Invalid reference variable"):
        keras.StatelessScope(state_mapping=[(np.zeros(2), np.zeros(2))])
    with pytest.raises(ValueError, match="shape .3,."):
        keras.StatelessScope(state_mapping=[(v, np.zeros(3, np.float32))])
    model = keras.Sequential([layers.Dense(2)])
    with pytest.raises(ValueError, match="must be built"):
        model.stateless_call([], [], np.zeros((1, 3), np.float32))
    model.build((None, 3))
    with pytest.raises(ValueError, match="Received list with length 1, but expected 2"):
        model.stateless_call([np.zeros((3, 2), np.float32)], [], np.zeros((1, 3), np.float32))


def test_symbolic_scope_marks_shape_inference():
    seen = []

    class Probe(layers.Layer):
        def call(self, x):
            seen.append(in_symbolic_scope())
            return x * 2
    Probe()(keras.Input((3,)))
    Probe()(np.ones((1, 3), np.float32))
    assert seen == [True, False]
    with keras.SymbolicScope():
        assert in_symbolic_scope()
    assert not in_symbolic_scope()


@pytest.mark.gpu
def test_stateless_call_on_the_gpu():
    x = _x()
    with dlgpu.device("gpu"):
        model = _model()
        model(x)
        values = [v.numpy() * 2 for v in model.trainable_variables]
        out, new = model.stateless_call(values, [v.numpy() for v in model.non_trainable_variables], x, training=True)
        assert out.device.kind == "gpu" and new[0].device.kind == "gpu"
    reference = _model()
    reference(x)
    for v, value in zip(reference.trainable_variables, values):
        v.assign(value)
    np.testing.assert_allclose(keras.to_numpy(out), keras.to_numpy(reference(x, training=True)), rtol=1e-5)
