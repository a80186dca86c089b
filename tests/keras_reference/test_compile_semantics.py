"""What compile() does with names, targets and sample weights, program for program against Keras 3."""

import numpy as np
import pytest

import dlgpu


def _run_both(keras, program):
    """``program(lib)`` run with Keras and with dlgpu, each from fresh automatic names."""
    keras.backend.clear_session()
    dlgpu.backend.clear_session()
    return program(keras), program(dlgpu)


def test_default_names_are_numbered_snake_case(keras):
    def program(lib):
        class MyLoss(lib.losses.Loss):
            def call(self, y_true, y_pred):
                return lib.ops.mean(y_pred, axis=-1)

        class MyMetric(lib.metrics.Metric):
            def update_state(self, *args, **kwargs):
                pass

            def result(self):
                return 0.0
        objects = [lib.optimizers.SGD(), lib.optimizers.SGD(), lib.optimizers.RMSprop(), lib.optimizers.AdamW(),
                   lib.optimizers.Adam(), lib.metrics.AUC(), lib.metrics.AUC(), lib.metrics.Precision(),
                   lib.metrics.Recall(), lib.metrics.MeanIoU(3), MyLoss(), MyLoss(), MyMetric(), MyMetric()]
        return [o.name for o in objects]
    in_keras, in_dlgpu = _run_both(keras, program)
    assert in_dlgpu == in_keras
    assert "rm_sprop" in in_dlgpu and "auc_1" in in_dlgpu  # (what the comparison covers)


def _fit_and_evaluate(lib, seen_dtypes):
    def loss_fn(y_true, y_pred):
        seen_dtypes.append(str(y_true.dtype).replace("torch.", ""))
        return lib.ops.mean(lib.ops.square(y_true - y_pred), axis=-1)
    rng = np.random.default_rng(3)
    x = rng.normal(size=(12, 3)).astype("float32")
    y = rng.integers(0, 3, size=(12, 2)).astype("int32")
    weights = np.array([1.0, 0.0, 2.0, 0.0, 1.0, 1.0, 0.5, 0.0, 0.0, 3.0, 1.0, 0.0], "float32")
    model = lib.Sequential([lib.Input((3,)), lib.layers.Dense(2, kernel_initializer="ones")])
    model.compile(lib.optimizers.SGD(0.01), loss_fn,
                  metrics=["mae", lib.metrics.MeanSquaredError(), lib.metrics.AUC(), lib.metrics.AUC()],
                  weighted_metrics=["mae", "mse"])
    model.fit(x, y, sample_weight=weights, batch_size=4, epochs=1, verbose=0, shuffle=False)
    return model.evaluate(x, y, sample_weight=weights, batch_size=12, verbose=0, return_dict=True)


def test_user_loss_sees_float_targets_and_only_weighted_metrics_take_weights(keras):
    seen_keras, seen_dlgpu = [], []
    logs_keras = (keras.backend.clear_session(), _fit_and_evaluate(keras, seen_keras))[1]
    logs_dlgpu = (dlgpu.backend.clear_session(), _fit_and_evaluate(dlgpu, seen_dlgpu))[1]
    assert set(seen_dlgpu) == set(seen_keras) == {"float32"}  # int labels cast to the loss's dtype
    assert set(logs_dlgpu) == set(logs_keras)  # mae/weighted_mae, mean_squared_error/mse, auc/auc_1
    for name, value in logs_keras.items():
        assert logs_dlgpu[name] == pytest.approx(value, rel=1e-5, abs=1e-6), name
    assert logs_dlgpu["mae"] != pytest.approx(logs_dlgpu["weighted_mae"])  # the weights mattered


def test_weighted_metrics_survive_saving(tmp_path):
    model = dlgpu.Sequential([dlgpu.Input((2,)), dlgpu.layers.Dense(1)])
    model.compile("sgd", "mse", metrics=["mae"], weighted_metrics=["mae"])
    x, y = np.ones((4, 2), "float32"), np.arange(4, dtype="float32")[:, None]
    weights = np.array([1.0, 0.0, 0.0, 2.0], "float32")
    before = model.evaluate(x, y, sample_weight=weights, verbose=0, return_dict=True)
    for name in ("m.keras", "m.dlgpu"):
        model.save(tmp_path / name)
        loaded = dlgpu.models.load_model(tmp_path / name)
        assert loaded.evaluate(x, y, sample_weight=weights, verbose=0, return_dict=True) == pytest.approx(before)


def test_unnamed_variables_are_named_as_keras_names_them(keras):
    def program(lib):
        return [lib.Variable(np.ones(2, "float32")).name for _ in range(3)]
    in_keras, in_dlgpu = _run_both(keras, program)
    assert in_dlgpu == in_keras == ["variable", "variable_1", "variable_2"]


def _penalized_model(lib):
    class AddsLoss(lib.layers.Layer):
        def call(self, x):
            self.add_loss(0.01 * lib.ops.sum(lib.ops.square(x)))
            return x
    constant = lib.initializers.Constant
    inputs = lib.Input((4,))
    hidden = lib.layers.Dense(3, kernel_initializer=constant(0.2), kernel_regularizer=lib.regularizers.L2(0.01),
                              activity_regularizer=lib.regularizers.L1(0.001), bias_regularizer="l1")(inputs)
    frozen = lib.layers.Dense(3, kernel_initializer=constant(0.1), kernel_regularizer="l2", trainable=False)
    outputs = lib.layers.Dense(1, kernel_initializer=constant(-0.1))(frozen(AddsLoss()(hidden)))
    return lib.Model(inputs, outputs)


def test_losses_order_and_frozen_weights_as_keras(keras):
    """Call-time losses first, then the trainable weights' penalties (a frozen layer's are not counted)."""
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(16, 4)).astype("float32"), rng.normal(size=(16, 1)).astype("float32")

    def program(lib):
        model = _penalized_model(lib)
        model(x)
        losses = [float(lib.ops.convert_to_numpy(loss)) for loss in model.losses]
        model.compile(lib.optimizers.SGD(0.05), "mse")
        history = model.fit(x, y, batch_size=8, epochs=2, verbose=0, shuffle=False).history
        return losses, history["loss"]
    (losses_keras, fit_keras), (losses_dlgpu, fit_dlgpu) = _run_both(keras, program)
    np.testing.assert_allclose(losses_dlgpu, losses_keras, rtol=1e-5)
    np.testing.assert_allclose(fit_dlgpu, fit_keras, rtol=1e-5)


def test_optimizer_slots_are_named_from_variable_paths(keras):
    def program(lib):
        dense = lib.layers.Dense(2)
        dense(np.ones((1, 3), "float32"))
        optimizer = lib.optimizers.SGD(0.1, momentum=0.9)
        optimizer.build(dense.trainable_variables)
        return [v.name for v in optimizer.variables]
    in_keras, in_dlgpu = _run_both(keras, program)
    assert in_dlgpu == in_keras == ["iteration", "learning_rate", "dense_kernel_momentum", "dense_bias_momentum"]


def _paths_program(lib):
    x = np.ones((1, 3), "float32")
    paths = []
    with lib.name_scope("block1"):
        made_inside = lib.layers.Dense(2)
    made_inside(x)  # the scope open at the first call counts, not the one at construction
    paths.append(made_inside.kernel.path)
    late = lib.layers.Dense(2)
    with lib.name_scope("late"):
        late(x)
    paths.append(late.kernel.path)
    deferred = lib.Sequential([lib.layers.Dense(2), lib.layers.Dense(1)])
    deferred(x)
    eager = lib.Sequential([lib.Input((3,)), lib.layers.Dense(2)])
    eager.add(lib.layers.Dense(1))
    inputs = lib.Input((3,))
    functional = lib.Model(inputs, lib.layers.Dense(2)(inputs))

    class Sub(lib.Model):
        def __init__(self):
            super().__init__()
            self.dense = lib.layers.Dense(2)
            self.blocks = [lib.layers.LayerNormalization()]

        def call(self, x):
            return self.blocks[0](self.dense(x))
    subclassed = Sub()
    subclassed(x)

    class Own(lib.layers.Layer):
        def __init__(self):
            super().__init__()
            self.dense = lib.layers.Dense(2)

        def build(self, input_shape):
            self.w = self.add_weight(shape=(3,))

        def call(self, x):
            return self.dense(x * self.w)
    own = Own()
    own(lib.Input((3,)))
    recurrent = lib.Sequential([lib.Input((4, 3)), lib.layers.LSTM(2), lib.layers.Dense(1)])
    wrapped = lib.Sequential([lib.Input((4, 3)), lib.layers.Bidirectional(lib.layers.GRU(2))])
    convolutional = lib.Sequential([lib.Input((4, 5, 2)), lib.layers.ConvLSTM1D(2, 2)])
    for model in (deferred, eager, functional, subclassed, own, recurrent, wrapped, convolutional):
        paths.append([w.path for w in model.weights])
    with lib.name_scope("a"), lib.name_scope("a"):
        paths.append(lib.Variable(1.0, name="x").path)
    with lib.name_scope("a"), lib.name_scope("b", override_parent="top"):
        paths.append(lib.Variable(1.0, name="x").path)
    return paths


def test_variable_paths_as_keras_gives_them(keras):
    """A layer's variables go under the scope open at its first build or call: a Sequential's or a
    subclassed model's under the model's name, a recurrent layer's under its cell's."""
    in_keras, in_dlgpu = _run_both(keras, _paths_program)
    for k, d in zip(in_keras, in_dlgpu):
        assert d == k
    assert len(in_dlgpu) == len(in_keras)


def _branching_models(lib):
    dense = lib.layers.Dense
    a, b = lib.Input((4,), name="a"), lib.Input((4,), name="b")
    x = dense(4, name="a3")(dense(4, name="a2")(dense(4, name="a1")(a)))
    y = dense(4, name="b1")(b)
    two_inputs = lib.Model([a, b], dense(2, name="head")(lib.layers.Concatenate(name="cat")([y, x])))
    i = lib.Input((4,), name="i")
    p, q = dense(4, name="p1")(i), dense(4, name="q1")(i)
    p2, shared = dense(4, name="p2")(p), dense(4, name="r1")
    merged = lib.layers.Add(name="add")([shared(q), shared(p2)])
    return [two_inputs, lib.Model(i, merged), lib.Model(i, [p2, q])]


def test_functional_layers_in_keras_order(keras, tmp_path):
    """Deepest first, ties by first visit from the outputs: model.layers, get_weights() and the layers of a
    .keras weights file all follow this order, so weights land on the same layers in both libraries."""
    in_keras, in_dlgpu = _run_both(keras, _branching_models)
    assert [[l.name for l in m.layers] for m in in_dlgpu] == [[l.name for l in m.layers] for m in in_keras]
    rng = np.random.default_rng(0)
    for k, d in zip(in_keras, in_dlgpu):
        d.set_weights([rng.normal(size=w.shape).astype("float32") for w in d.get_weights()])
        d.save(tmp_path / "m.keras")
        loaded = keras.models.load_model(tmp_path / "m.keras")
        x = [rng.normal(size=(3, 4)).astype("float32") for _ in d.inputs]
        for got, want in zip(keras.tree.flatten(loaded.predict(x, verbose=0)),
                             dlgpu.tree.flatten(d.predict(x, verbose=0))):
            np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
