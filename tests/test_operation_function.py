"""keras.Operation subclasses (eager calls, graph nodes in functional models, saving) and keras.Function
(dlgpu/operation.py)."""

import numpy as np
import pytest

import dlgpu as keras
from dlgpu import layers, ops


class ScaledSoftplus(keras.Operation):
    def __init__(self, scale=2.0, name=None):
        super().__init__(name=name)
        self.scale = scale

    def call(self, x):
        return ops.softplus(x) * self.scale


class SplitHalves(keras.Operation):
    """Two outputs, and shapes from its own compute_output_spec."""

    def call(self, x):
        half = x.shape[-1] // 2
        return x[..., :half], x[..., half:]

    def compute_output_spec(self, x):
        half = x.shape[-1] // 2
        return (keras.KerasTensor(x.shape[:-1] + (half,), x.dtype),
                keras.KerasTensor(x.shape[:-1] + (x.shape[-1] - half,), x.dtype))


def test_an_operation_runs_eagerly_and_as_a_graph_node(tmp_path):
    x = np.array([[-1.0, 0.0, 2.0, 3.0]], np.float32)
    op = ScaledSoftplus(3.0)
    assert isinstance(op, keras.Operation) and isinstance(layers.Dense(2), keras.Operation)
    np.testing.assert_allclose(keras.to_numpy(op(x)), 3 * np.log1p(np.exp(x)), rtol=1e-6)
    assert op.get_config() == {"name": op.name, "scale": 3.0}

    inputs = keras.Input((4,))
    left, right = SplitHalves()(inputs)
    assert left.shape == (None, 2) and right.shape == (None, 2)
    out = layers.Dense(1)(layers.Concatenate()([op(left), right]))
    model = keras.Model(inputs, out)
    assert [type(layer).__name__ for layer in model.layers] == ["InputLayer", "Concatenate", "Dense"]
    kernel, bias = (w for w in model.get_weights())
    h = np.concatenate([3 * np.log1p(np.exp(x[:, :2])), x[:, 2:]], axis=1)
    np.testing.assert_allclose(model.predict(x, verbose=0), h @ kernel + bias, rtol=1e-5)

    path = str(tmp_path / "with_ops.dlgpu")
    model.save(path)
    loaded = keras.saving.load_model(path, custom_objects={"ScaledSoftplus": ScaledSoftplus,
                                                           "SplitHalves": SplitHalves})
    np.testing.assert_allclose(loaded.predict(x, verbose=0), model.predict(x, verbose=0), rtol=1e-6)
    model.compile("sgd", "mse")
    model.fit(x, np.ones((1, 1), np.float32), epochs=2, verbose=0)  # trains through the op nodes
    keras_path = str(tmp_path / "m.keras")  # Keras's format has no entry for it: dlgpu's, with a warning
    with pytest.warns(UserWarning, match="the Operation ScaledSoftplus .* Keras has no Operation class"):
        model.save(keras_path)
    with keras.saving.custom_object_scope({"ScaledSoftplus": ScaledSoftplus, "SplitHalves": SplitHalves}):
        again = keras.saving.load_model(keras_path)
    np.testing.assert_allclose(again.predict(x, verbose=0), model.predict(x, verbose=0), rtol=1e-6)


def test_operation_refusals():
    class Unsaveable(keras.Operation):
        def __init__(self, table):
            super().__init__()
            self.table = table

        def call(self, x):
            return x

    with pytest.raises(NotImplementedError, match="define get_config"):
        Unsaveable(np.zeros(3)).get_config()
    with pytest.raises(NotImplementedError, match="must implement call"):
        keras.Operation()(np.zeros(2))
    with pytest.raises(ValueError, match="name"):
        ScaledSoftplus(name="a/b")


def test_function_runs_the_graph_between_tensors():
    a, b = keras.Input((3,)), keras.Input((3,))
    total = ops.add(a, b)
    fn = keras.Function([a, b], [total, ops.multiply(total, 2.0)], name="sum_and_double")
    x, y = np.ones((2, 3), np.float32), np.arange(6, dtype=np.float32).reshape(2, 3)
    s, d = fn([x, y])
    np.testing.assert_allclose(keras.to_numpy(s), x + y)
    np.testing.assert_allclose(keras.to_numpy(d), 2 * (x + y))
    assert fn.name == "sum_and_double" and len(fn.inputs) == 2 and len(fn.outputs) == 2
    assert any(type(op).__name__ == "InputLayer" for op in fn.operations)
    spec = fn.compute_output_spec([keras.Input((3,)), keras.Input((3,))])
    assert [tuple(t.shape) for t in spec] == [(None, 3), (None, 3)]
