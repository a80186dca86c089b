"""keras.ops on symbolic tensors: ops and Tensor operators applied to KerasTensors make graph nodes of a
functional model (shapes and dtypes inferred, run later on the real tensors, trained, saved and loaded)."""

from __future__ import annotations

import json

import numpy as np
import pytest

import dlgpu
from dlgpu import layers, ops
from dlgpu.models import load_model, model_from_json

from helpers import assert_model_on_gpu_matches_cpu

RNG = np.random.default_rng(0)


def _x(*shape):
    return RNG.standard_normal(shape).astype("float32")


# (builder of a symbolic result from inputs x: (None, 8) float32, s: (None, None, 4) float32, n: (None,) int32;
#  expected shape, expected dtype)
CASES = {
    "square": (lambda x, s, n: ops.square(x), (None, 8), "float32"),
    "exp_of_int": (lambda x, s, n: ops.exp(n), (None,), "float32"),
    "sqrt_chain": (lambda x, s, n: ops.sqrt(ops.abs(x)) + 1, (None, 8), "float32"),
    "sum_axis_keepdims": (lambda x, s, n: ops.sum(x, axis=-1, keepdims=True), (None, 1), "float32"),
    "mean_all": (lambda x, s, n: ops.mean(x), (), "float32"),
    "max_over_time": (lambda x, s, n: ops.max(s, axis=1), (None, 4), "float32"),
    "var_keepdims": (lambda x, s, n: ops.var(s, axis=(1, 2), keepdims=True), (None, 1, 1), "float32"),
    "argmax": (lambda x, s, n: ops.argmax(x, axis=-1), (None,), "int32"),
    "matmul_constant": (lambda x, s, n: ops.matmul(x, np.ones((8, 3), "float32")), (None, 3), "float32"),
    "matmul_operator_batched": (lambda x, s, n: s @ np.ones((4, 5), "float32"), (None, None, 5), "float32"),
    "concatenate_mixed": (lambda x, s, n: ops.concatenate([x, ops.square(x), np.zeros((1, 2), "float32")
                                                           * ops.ones((4, 2))], axis=-1), None, None),
    "concatenate_two": (lambda x, s, n: ops.concatenate([x, ops.exp(x)], axis=-1), (None, 16), "float32"),
    "stack": (lambda x, s, n: ops.stack([x, -x, x * 2], axis=1), (None, 3, 8), "float32"),
    "reshape": (lambda x, s, n: ops.reshape(x, (-1, 2, 4)), (None, 2, 4), "float32"),
    "reshape_time": (lambda x, s, n: ops.reshape(s, (-1, 4)), (None, 4), "float32"),
    "transpose": (lambda x, s, n: ops.transpose(s, (0, 2, 1)), (None, 4, None), "float32"),
    "expand_dims": (lambda x, s, n: ops.expand_dims(x, 1), (None, 1, 8), "float32"),
    "where": (lambda x, s, n: ops.where(x > 0, x, 0.0), (None, 8), "float32"),
    "slice_last": (lambda x, s, n: x[..., 0], (None,), "float32"),
    "slice_step": (lambda x, s, n: s[:, -1, 1:3], (None, 2), "float32"),
    "newaxis": (lambda x, s, n: x[:, None, ::2], (None, 1, 4), "float32"),
    "neg_pow_div": (lambda x, s, n: (-x) ** 2 / 3.0, (None, 8), "float32"),
    "rsub_rtruediv": (lambda x, s, n: 1.0 - 2.0 / (x * x + 1), (None, 8), "float32"),
    "comparison": (lambda x, s, n: x >= 0.5, (None, 8), "bool"),
    "logical": (lambda x, s, n: (x > 0) & ~(x > 1), (None, 8), "bool"),
    "cast": (lambda x, s, n: ops.cast(x, "int32"), (None, 8), "int32"),
    "int_plus_float": (lambda x, s, n: n + 0.5, (None,), "float32"),
    "one_hot": (lambda x, s, n: ops.one_hot(n, 5), (None, 5), "float32"),
    "take_rows": (lambda x, s, n: ops.take(ops.ones((10, 3)), n, axis=0), (None, 3), "float32"),
    "einsum": (lambda x, s, n: ops.einsum("btf,bf->bt", s, x[:, :4]), (None, None), "float32"),
    "softmax": (lambda x, s, n: ops.softmax(s, axis=1), (None, None, 4), "float32"),
    "pad": (lambda x, s, n: ops.pad(x, [[0, 0], [1, 2]]), (None, 11), "float32"),
    "tile": (lambda x, s, n: ops.tile(x, (1, 2)), (None, 16), "float32"),
    "broadcast_none_against_constant": (lambda x, s, n: s + np.ones((5, 4), "float32"), (None, 5, 4), "float32"),
    "image_resize": (lambda x, s, n: ops.image.resize(ops.reshape(x, (-1, 2, 4, 1)), (4, 8)), (None, 4, 8, 1),
                     "float32"),
    "linalg_norm": (lambda x, s, n: ops.linalg.norm(x, axis=-1), (None,), "float32"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_shapes_and_dtypes_of_ops_on_keras_tensors(case):
    build, shape, dtype = CASES[case]
    x, s, n = dlgpu.Input((8,)), dlgpu.Input((None, 4)), dlgpu.Input((), dtype="int32")
    out = build(x, s, n)
    assert isinstance(out, dlgpu.KerasTensor)
    if shape is None:  # concatenate_mixed: the constant block fixes the batch to 4
        shape, dtype = (4, 18), "float32"
    assert out.shape == shape and out.dtype == dtype
    # the graph runs on real tensors with the shape and dtype it promised
    model = dlgpu.Model([x, s, n], out)
    batch = 4
    real = model([_x(batch, 8), _x(batch, 5, 4), RNG.integers(0, 5, (batch,)).astype("int32")])
    assert real.dtype == dtype
    assert len(real.shape) == len(shape)
    assert all(e is None or e == r for e, r in zip(shape, real.shape))


def test_several_outputs_shape_and_attribute_questions():
    x = dlgpu.Input((8,))
    first, second = ops.split(x, 2, axis=-1)
    mean, variance = ops.moments(x, axes=[1])
    assert first.shape == second.shape == (None, 4)
    assert mean.shape == variance.shape == (None,)
    assert ops.shape(x) == x.shape == (None, 8)
    assert ops.ndim(x) == 2 and ops.dtype(x) == "float32"
    model = dlgpu.Model(x, [second, variance])
    a = _x(3, 8)
    got = model(a)
    np.testing.assert_allclose(got[0].numpy(), a[:, 4:])
    np.testing.assert_allclose(got[1].numpy(), a.var(axis=1), rtol=1e-5)


def test_concrete_tensor_and_array_on_the_left_of_an_operator():
    x = dlgpu.Input((3,))
    t = ops.convert_to_tensor(np.array([1.0, 2.0, 3.0], "float32"))
    for out in (t * x, t - x, np.array([1.0, 2.0, 3.0], "float32") @ ops.expand_dims(x, -1), 2 ** x):
        assert isinstance(out, dlgpu.KerasTensor)
    model = dlgpu.Model(x, [t - x, 2 ** x])
    a = _x(2, 3)
    got = model(a)
    np.testing.assert_allclose(got[0].numpy(), [1, 2, 3] - a)
    np.testing.assert_allclose(got[1].numpy(), 2 ** a, rtol=1e-6)


def _mixed_model():
    x = dlgpu.Input((6,), name="x")
    h = layers.Dense(4, name="dense_a")(x)
    gate = ops.sigmoid(h[:, :2])
    mixed = ops.concatenate([gate * h[:, 2:], ops.square(h)], axis=-1)
    y = layers.Dense(1, name="dense_b")(mixed) + ops.sum(x, axis=-1, keepdims=True) * 0.1
    return dlgpu.Model(x, y)


def _numpy_forward(model, a):
    k1, b1, k2, b2 = model.get_weights()
    h = a @ k1 + b1
    gate = 1 / (1 + np.exp(-h[:, :2]))
    mixed = np.concatenate([gate * h[:, 2:], h ** 2], axis=-1)
    return mixed @ k2 + b2 + a.sum(axis=-1, keepdims=True) * 0.1


def test_model_mixing_layers_and_ops_matches_numpy_and_trains():
    dlgpu.set_random_seed(1)
    model = _mixed_model()
    a = _x(64, 6)
    np.testing.assert_allclose(model.predict(a, verbose=0), _numpy_forward(model, a), rtol=1e-4, atol=1e-5)
    target = (a[:, :1] - a[:, 1:2]).astype("float32")
    model.compile(optimizer=dlgpu.optimizers.Adam(0.02), loss="mse")
    history = model.fit(a, target, epochs=30, batch_size=16, verbose=0)
    assert history.history["loss"][-1] < 0.5 * history.history["loss"][0]
    np.testing.assert_allclose(model.predict(a, verbose=0), _numpy_forward(model, a), rtol=1e-4, atol=1e-5)
    assert [layer.name for layer in model.layers] == ["x", "dense_a", "dense_b"]  # ops are not layers


def test_gradients_flow_through_op_nodes():
    """d/dK sum((x K)^2 * w) with w a constant in the graph: 2 x^T (h * w), against numpy."""
    x = dlgpu.Input((3,))
    dense = layers.Dense(2, use_bias=False)
    w = np.array([1.0, -2.0], "float32")
    model = dlgpu.Model(x, ops.sum(ops.square(dense(x)) * w, axis=-1))
    a = _x(5, 3)
    xt = ops.convert_to_tensor(a)
    with dlgpu.GradientTape() as tape:
        tape.watch(xt)
        loss = ops.sum(model(xt))
    grad_kernel, grad_x = tape.gradient(loss, [dense.kernel, xt])
    kernel = dense.kernel.numpy()
    h = a @ kernel
    np.testing.assert_allclose(grad_kernel.numpy(), a.T @ (2 * h * w), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(grad_x.numpy(), (2 * h * w) @ kernel.T, rtol=1e-5, atol=1e-6)


def test_save_load_round_trips_predict_the_same(tmp_path):
    dlgpu.set_random_seed(2)
    model = _mixed_model()
    model.compile(optimizer="adam", loss="mse")
    a = _x(8, 6)
    model.fit(a, a[:, :1], epochs=1, verbose=0)
    expected = model.predict(a, verbose=0)
    for path in (tmp_path / "mixed.keras", tmp_path / "mixed.dlgpu"):
        model.save(path)
        np.testing.assert_allclose(load_model(path).predict(a, verbose=0), expected, rtol=1e-6)
    rebuilt = dlgpu.Model.from_config(model.get_config())
    rebuilt.set_weights(model.get_weights())
    np.testing.assert_allclose(rebuilt.predict(a, verbose=0), expected, rtol=1e-6)
    from_json = model_from_json(model.to_json())
    from_json.set_weights(model.get_weights())
    np.testing.assert_allclose(from_json.predict(a, verbose=0), expected, rtol=1e-6)


def test_saved_form_of_op_nodes_names_the_op_and_its_arguments():
    x = dlgpu.Input((4, 3), name="x")
    y = ops.sum(x[..., 1:, None], axis=(1, 3), keepdims=False)
    z = ops.where(y > 0, ops.cast(y, "float16"), np.float16(0.5))
    config = json.loads(json.dumps(dlgpu.Model(x, z).get_config()))  # dlgpu's own form (to_json writes Keras's)
    ops_by_name = {e["config"]["op"]: e for e in config["layers"] if e["class_name"] == "OpLayer"}
    assert set(ops_by_name) == {"get_item", "sum", "greater", "cast", "where"}
    entry = ops_by_name["sum"]
    assert entry["module"] == "dlgpu.ops"
    assert entry["inbound_nodes"] == [{"args": [[ops_by_name["get_item"]["name"], 0, 0]],
                                       "kwargs": {"axis": {"class_name": "__tuple__", "config": {"value": [1, 3]}},
                                                  "keepdims": False}}]
    index = ops_by_name["get_item"]["inbound_nodes"][0]["args"][1]
    assert index["class_name"] == "__tuple__"
    assert [v["class_name"] if isinstance(v, dict) else v for v in index["config"]["value"]] == \
        ["__ellipsis__", "__slice__", None]
    rebuilt = dlgpu.Model.from_config(config)
    a = _x(2, 4, 3)
    np.testing.assert_array_equal(rebuilt(a).numpy(), dlgpu.Model(x, z)(a).numpy())
    assert rebuilt.output.dtype == "float16"


def test_constant_arguments_survive_saving(tmp_path):
    x = dlgpu.Input((3,))
    table = ops.convert_to_tensor(np.arange(12, dtype="float32").reshape(4, 3))
    y = ops.concatenate([x, ops.matmul(x, np.eye(3, dtype="float64").astype("float32") * 2)], axis=-1)
    z = ops.stack([y[:, :3], table[1:2] + ops.zeros_like(x)], axis=1)
    model = dlgpu.Model(x, z)
    model.save(tmp_path / "constants.keras")
    a = _x(2, 3)
    np.testing.assert_allclose(load_model(tmp_path / "constants.keras")(a).numpy(), model(a).numpy())


def test_summary_lists_op_nodes():
    lines = []
    _mixed_model().summary(print_fn=lines.append)
    text = "\n".join(lines)
    for row in ("get_item", "(GetItem)", "sigmoid", "(Sigmoid)", "concatenate", "(Concatenate)", "square",
                "(Square)", "(Sum)", "dense_b (Dense)"):
        assert row in text, row


def test_mismatched_shapes_raise_when_the_graph_is_built():
    x, y = dlgpu.Input((8,)), dlgpu.Input((5,))
    with pytest.raises(ValueError, match=r"ops\.add\(KerasTensor\(shape=\(None, 8\).*KerasTensor\(shape=\(None, 5\)"):
        x + y
    with pytest.raises(ValueError, match=r"ops\.matmul.*\(None, 8\).*\(3, 3\)"):
        ops.matmul(x, np.ones((3, 3), "float32"))
    with pytest.raises(ValueError, match=r"ops\.concatenate\(\[KerasTensor\(shape=\(None, 8\).*\(None, 5\)"):
        ops.concatenate([x, y], axis=0)
    with pytest.raises(ValueError, match=r"ops\.reshape.*\(None, 8\).*\(3, 5\)"):
        ops.reshape(x, (3, 5))


def test_what_a_symbolic_tensor_cannot_do():
    x = dlgpu.Input((4,))
    with pytest.raises(TypeError, match="boolean"):
        bool(x > 0)
    with pytest.raises(TypeError, match="no values"):
        np.asarray(x)
    with pytest.raises(NotImplementedError, match="Iterating"):
        list(x)
    with pytest.raises(NotImplementedError, match=r"ops\.nonzero"):
        ops.nonzero(x)
    with pytest.raises(NotImplementedError, match="depends on the values"):
        x[x > 0]
    with pytest.raises(NotImplementedError, match="depends on the values"):
        ops.arange(ops.cast(ops.sum(x), "int32"))
    with pytest.raises(NotImplementedError, match=r"ops\.convert_to_numpy"):
        ops.convert_to_numpy(x)
    assert x == x and not (x == dlgpu.Input((4,)))  # == is identity, as in Keras (lookups in lists)


def test_a_function_argument_runs_but_cannot_be_saved(tmp_path):
    x = dlgpu.Input((3,))
    # a Python function as an argument: the op node works in memory ...
    model = dlgpu.Model(x, ops.vectorized_map(lambda row: row * 3, x) + 1)
    a = _x(2, 3)
    np.testing.assert_allclose(model(a).numpy(), a * 3 + 1, rtol=1e-6)
    # ... and saving names the op and the argument
    with pytest.raises(ValueError, match=r"op node 'vectorized_map.*ops\.vectorized_map.*args\[0\] is a Python "
                                         r"function"):
        model.save(tmp_path / "fn.keras")
    with pytest.raises(ValueError, match=r"ops\.vectorized_map"):
        model.to_json()
    # a function that reaches for a KerasTensor it was not given cannot be a node
    with pytest.raises(NotImplementedError, match="did not receive"):
        ops.cond(ops.sum(x) > 0, lambda: x * 2, lambda: x * 0)


def test_variable_argument_refused_at_save_time(tmp_path):
    x = dlgpu.Input((3,))
    dense = layers.Dense(3)
    dense.build((None, 3))
    model = dlgpu.Model(x, ops.matmul(x, dense.kernel))
    with pytest.raises(ValueError, match=r"ops\.matmul.*variable"):
        model.get_config()


class _KLLoss(layers.Layer):
    """The VAE pattern: a term computed in the graph becomes a loss of the model."""

    def call(self, kl):
        self.add_loss(ops.mean(kl))
        return kl


def test_vae_style_kl_term_in_the_functional_graph():
    dlgpu.set_random_seed(3)
    x = dlgpu.Input((6,))
    h = layers.Dense(8, activation="relu")(x)
    z_mean, z_log_var = layers.Dense(2)(h), layers.Dense(2)(h)
    kl = -0.5 * ops.mean(1 + z_log_var - ops.square(z_mean) - ops.exp(z_log_var), axis=-1)
    assert kl.shape == (None,)
    kl = _KLLoss()(kl)
    z = z_mean + ops.exp(0.5 * z_log_var) * 0.0
    out = layers.Dense(6)(z)
    model = dlgpu.Model(x, [out, kl])
    a = _x(32, 6)
    got_out, got_kl = model(a)
    assert got_out.shape == (32, 6) and got_kl.shape == (32,)
    enc = dlgpu.Model(x, [z_mean, z_log_var])
    m, lv = (t.numpy() for t in enc(a))
    np.testing.assert_allclose(got_kl.numpy(), -0.5 * np.mean(1 + lv - m ** 2 - np.exp(lv), axis=-1), rtol=1e-5)
    assert len(model.losses) == 1
    trainer = dlgpu.Model(x, out)
    trainer.compile(optimizer=dlgpu.optimizers.Adam(0.01), loss="mse")
    history = trainer.fit(a, a, epochs=5, batch_size=8, verbose=0)
    assert np.isfinite(history.history["loss"]).all()


def _op_model():
    x = dlgpu.Input((6,))
    h = layers.Dense(4)(x)
    return dlgpu.Model(x, ops.concatenate([ops.tanh(h) * h[:, :1], ops.sum(ops.square(x), -1, keepdims=True)], -1))


@pytest.mark.gpu
def test_op_nodes_on_gpu_match_cpu():
    assert_model_on_gpu_matches_cpu(_op_model, _x(4, 6))


def test_onnx_export_of_tensor_sums_and_a_clear_refusal_for_other_ops(tmp_path):
    """x + y between two tensors exported as before (when it was an Add layer); other op nodes are named."""
    pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    from onnx_helpers import assert_export_matches
    from dlgpu.export.onnx import ExportError
    x = dlgpu.Input((4,))
    h = layers.Dense(4)(x)
    model = dlgpu.Model(x, layers.Dense(2)(h + x) * layers.Dense(2)(x))
    assert_export_matches(model, _x(3, 4), tmp_path=tmp_path)
    with pytest.raises(ExportError, match=r"op node 'square.*ops\.square"):
        dlgpu.Model(x, ops.square(h)).export(tmp_path / "square.onnx")
    with pytest.raises(ExportError, match=r"ops\.add is exported only between two float tensors"):
        dlgpu.Model(x, h + 1.0).export(tmp_path / "plus_one.onnx")
