"""The training loop: compile, fit, evaluate, predict, *_on_batch, weighting, regularization, custom loops."""

import numpy as np
import pytest

import dlgpu
from dlgpu import layers


def _clf_data(n=120, d=6, classes=3, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, d)).astype(np.float32)
    y = (np.argmax(x[:, :classes], axis=1)).astype(np.int64)
    return x, y


def _clf_model(d=6, classes=3, seed=0):
    dlgpu.set_random_seed(seed)
    return dlgpu.Sequential([layers.Dense(16, activation="relu", input_shape=(d,)),
                             layers.Dense(classes, activation="softmax")])


def _compiled(loss="sparse_categorical_crossentropy", metrics=("accuracy",), **kwargs):
    model = _clf_model(**kwargs)
    model.compile(optimizer="adam", loss=loss, metrics=list(metrics))
    return model


class Recorder(dlgpu.Model):
    """A model that records what reaches it (batch contents and the training flag)."""

    def __init__(self):
        super().__init__()
        self.dense = layers.Dense(1)
        self.batches = []

    def call(self, inputs, training=None):
        self.batches.append((inputs.numpy()[:, 0].copy(), training))
        return self.dense(inputs)


# -- compile ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("loss,make_y,acc", [
    ("sparse_categorical_crossentropy", lambda y: y, "sparse"),
    ("categorical_crossentropy", lambda y: np.eye(3, dtype=np.float32)[y], "categorical"),
])
def test_accuracy_string_resolves_per_loss(loss, make_y, acc):
    x, y = _clf_data()
    model = _compiled(loss=loss)
    model.fit(x, make_y(y), epochs=2, batch_size=32, verbose=0)
    logs = model.evaluate(x, make_y(y), verbose=0, return_dict=True)
    expected = float((model.predict(x, verbose=0).argmax(1) == y).mean())
    assert logs["accuracy"] == pytest.approx(expected, abs=1e-6)


def test_binary_accuracy_with_binary_crossentropy():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((100, 4)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.float32)[:, None]
    model = dlgpu.Sequential([layers.Dense(1, activation="sigmoid", input_shape=(4,))])
    model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"])
    logs = model.evaluate(x, y, verbose=0, return_dict=True)
    expected = float(((model.predict(x, verbose=0) > 0.5) == y).mean())
    assert logs["accuracy"] == pytest.approx(expected, abs=1e-6)


def test_compile_accepts_objects():
    model = _clf_model()
    model.compile(optimizer=dlgpu.optimizers.Adam(learning_rate=0.01),
                  loss=dlgpu.losses.SparseCategoricalCrossentropy(),
                  metrics=[dlgpu.metrics.SparseCategoricalAccuracy()])
    x, y = _clf_data()
    hist = model.fit(x, y, epochs=1, verbose=0)
    assert set(hist.history) == {"loss", "sparse_categorical_accuracy"}


def test_compile_accepts_plain_loss_functions():
    """A dlgpu loss function, a per-sample custom function and one that reduces by itself, as in Keras:
    each trains and evaluates to the mean of its per-sample values."""
    rng = np.random.default_rng(3)
    x, y = rng.standard_normal((32, 5)).astype(np.float32), rng.standard_normal((32, 1)).astype(np.float32)
    per_sample = lambda t, p: dlgpu.ops.mean(dlgpu.ops.square(t - p), axis=-1)  # noqa: E731
    reduced = lambda t, p: dlgpu.ops.mean(dlgpu.ops.abs(t - p))  # noqa: E731
    for loss, reference in [(dlgpu.losses.mean_absolute_error, lambda p: np.abs(y - p).mean()),
                            (per_sample, lambda p: ((y - p) ** 2).mean()), (reduced, lambda p: np.abs(y - p).mean())]:
        model = dlgpu.Sequential([dlgpu.Input((5,)), layers.Dense(1)])
        model.compile("sgd", loss)
        history = model.fit(x, y, epochs=3, verbose=0).history["loss"]
        assert history[-1] < history[0]
        assert model.evaluate(x, y, verbose=0) == pytest.approx(reference(model.predict(x, verbose=0)), rel=1e-5)


def test_a_per_class_metric_is_logged_as_an_array():
    rng = np.random.default_rng(4)
    x = rng.standard_normal((40, 5)).astype(np.float32)
    y = np.eye(3, dtype=np.float32)[rng.integers(0, 3, 40)]
    model = dlgpu.Sequential([dlgpu.Input((5,)), layers.Dense(3, activation="softmax")])
    model.compile("adam", "categorical_crossentropy", metrics=[dlgpu.metrics.F1Score()])  # average=None
    history = model.fit(x, y, epochs=2, verbose=0).history
    assert [np.shape(v) for v in history["f1_score"]] == [(3,), (3,)]
    loss, f1 = model.evaluate(x, y, verbose=0)
    reference = dlgpu.metrics.F1Score()
    reference.update_state(y, model.predict(x, verbose=0))
    np.testing.assert_allclose(f1, reference.result().numpy(), rtol=1e-6)


# -- fit ----------------------------------------------------------------------------------------------
def test_fit_history_contents_and_learning():
    x, y = _clf_data(300)
    model = _clf_model()
    model.compile(optimizer=dlgpu.optimizers.Adam(learning_rate=0.01), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    hist = model.fit(x, y, epochs=5, batch_size=32, verbose=0, validation_data=(x[:50], y[:50]))
    assert hist is model.history
    assert hist.epoch == [0, 1, 2, 3, 4]
    assert set(hist.history) == {"loss", "accuracy", "val_loss", "val_accuracy"}
    assert all(len(v) == 5 for v in hist.history.values())
    assert all(isinstance(v, float) for vs in hist.history.values() for v in vs)
    assert hist.history["loss"][-1] < hist.history["loss"][0]
    assert hist.history["accuracy"][-1] > 0.7


def test_validation_data_logs_equal_evaluate():
    x, y = _clf_data()
    xv, yv = _clf_data(40, seed=1)
    model = _compiled()
    hist = model.fit(x, y, epochs=1, verbose=0, validation_data=(xv, yv))
    logs = model.evaluate(xv, yv, verbose=0, return_dict=True)
    assert hist.history["val_loss"][0] == pytest.approx(logs["loss"], rel=1e-5)
    assert hist.history["val_accuracy"][0] == pytest.approx(logs["accuracy"], rel=1e-6)


def test_validation_split_takes_the_last_fraction_before_shuffling():
    x, y = _clf_data(100)
    model = _compiled()
    hist = model.fit(x, y, epochs=1, validation_split=0.2, shuffle=True, verbose=0)
    logs = model.evaluate(x[80:], y[80:], verbose=0, return_dict=True)
    assert hist.history["val_loss"][0] == pytest.approx(logs["loss"], rel=1e-5)

    rec = Recorder()
    rec.compile(optimizer="adam", loss="mse")
    xs = np.arange(10, dtype=np.float32)[:, None]
    rec.fit(xs, xs, epochs=1, batch_size=4, validation_split=0.3, shuffle=True, verbose=0)
    seen_training = np.concatenate([b for b, t in rec.batches if t])
    seen_validation = np.concatenate([b for b, t in rec.batches if t is False and len(b) > 2])
    assert sorted(seen_training.tolist()) == list(range(7))
    assert seen_validation.tolist() == [7, 8, 9]


def test_shuffle_false_keeps_order_and_true_permutes_each_epoch():
    xs = np.arange(20, dtype=np.float32)[:, None]
    rec = Recorder()
    rec.compile(optimizer="adam", loss="mse")
    rec.fit(xs, xs, epochs=2, batch_size=6, shuffle=False, verbose=0)
    train = [b for b, t in rec.batches if t]
    assert [len(b) for b in train] == [6, 6, 6, 2] * 2   # last batch is the remainder
    assert np.concatenate(train).tolist() == list(range(20)) * 2

    rec.batches.clear()
    dlgpu.set_random_seed(0)
    rec.fit(xs, xs, epochs=2, batch_size=6, shuffle=True, verbose=0)
    train = [b for b, t in rec.batches if t]
    epoch1, epoch2 = np.concatenate(train[:4]), np.concatenate(train[4:])
    assert sorted(epoch1.tolist()) == list(range(20)) and sorted(epoch2.tolist()) == list(range(20))
    assert epoch1.tolist() != list(range(20)) and epoch1.tolist() != epoch2.tolist()


def test_initial_epoch():
    x, y = _clf_data()
    seen = []
    cb = dlgpu.callbacks.LambdaCallback(on_epoch_begin=lambda epoch, logs: seen.append(epoch))
    hist = _compiled().fit(x, y, epochs=5, initial_epoch=3, callbacks=[cb], verbose=0)
    assert seen == [3, 4]
    assert hist.epoch == [3, 4] and len(hist.history["loss"]) == 2


def test_epochs_zero_does_nothing():
    x, y = _clf_data()
    model = _compiled()
    before = model.get_weights()
    hist = model.fit(x, y, epochs=0, verbose=0)
    assert hist.history == {}
    for a, b in zip(model.get_weights(), before):
        np.testing.assert_array_equal(a, b)


def test_verbose_zero_prints_nothing(capsys):
    x, y = _clf_data()
    model = _compiled()
    model.fit(x, y, epochs=2, verbose=0, validation_split=0.2)
    model.evaluate(x, y, verbose=0)
    model.predict(x, verbose=0)
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == ""


def test_verbose_two_prints_one_line_per_epoch(capsys):
    x, y = _clf_data()
    _compiled().fit(x, y, epochs=3, verbose=2)
    out = capsys.readouterr().out
    lines = [l for l in out.splitlines() if l.strip()]
    assert len(lines) == 3, out
    for i, line in enumerate(lines):
        assert line.startswith(f"Epoch {i + 1}/3") and "loss:" in line and "accuracy:" in line


def test_verbose_one_draws_a_progress_bar(capsys):
    pytest.importorskip("tqdm")
    x, y = _clf_data()
    _compiled().fit(x, y, epochs=2, batch_size=40, verbose=1)
    out = capsys.readouterr()
    text = out.out + out.err
    assert "Epoch 1/2" in text and "Epoch 2/2" in text
    assert "3/3" in text                          # steps done / steps per epoch
    assert "loss" in text


def test_batch_size_validation():
    x, y = _clf_data()
    model = _compiled()
    for bad in (0, -1, 2.5, "32"):
        with pytest.raises(ValueError, match="batch_size"):
            model.fit(x, y, batch_size=bad, verbose=0)


# -- evaluate / predict ---------------------------------------------------------------------------------
def test_evaluate_return_types():
    x, y = _clf_data()
    model = _compiled()
    values = model.evaluate(x, y, verbose=0)
    assert isinstance(values, list) and len(values) == 2
    assert model.metrics_names == ["loss", "accuracy"]
    logs = model.evaluate(x, y, verbose=0, return_dict=True)
    assert list(logs) == ["loss", "accuracy"] and logs["loss"] == pytest.approx(values[0])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    scalar = model.evaluate(x, y, verbose=0)
    assert isinstance(scalar, float) and scalar == pytest.approx(values[0], rel=1e-6)


def test_evaluate_is_batch_size_independent():
    x, y = _clf_data(101)
    model = _compiled()
    a = model.evaluate(x, y, batch_size=7, verbose=0)
    b = model.evaluate(x, y, batch_size=101, verbose=0)
    np.testing.assert_allclose(a, b, rtol=1e-5)


def test_predict_batches_and_matches_call():
    rec = Recorder()
    x = np.random.default_rng(0).standard_normal((23, 3)).astype(np.float32)
    out = rec.predict(x, batch_size=10, verbose=0)
    assert isinstance(out, np.ndarray) and out.shape == (23, 1)
    assert [len(b) for b, _ in rec.batches] == [10, 10, 3]
    np.testing.assert_allclose(out, rec(x).numpy(), rtol=1e-6)
    np.testing.assert_allclose(rec.predict_on_batch(x), out, rtol=1e-6)


def test_on_batch_methods():
    x, y = _clf_data(32)
    model = _compiled()
    before = [w.copy() for w in model.get_weights()]
    loss_before = model.test_on_batch(x, y)
    assert isinstance(loss_before, list) and len(loss_before) == 2
    for a, b in zip(model.get_weights(), before):   # test_on_batch changes nothing
        np.testing.assert_array_equal(a, b)
    logs = model.train_on_batch(x, y, return_dict=True)
    assert set(logs) == {"loss", "accuracy"}
    assert logs["loss"] == pytest.approx(loss_before[0], rel=1e-5)  # loss of the batch before the update
    assert any(not np.array_equal(a, b) for a, b in zip(model.get_weights(), before))
    for _ in range(30):
        model.train_on_batch(x, y)
    assert model.test_on_batch(x, y)[0] < loss_before[0]
    assert model.predict_on_batch(x).shape == (32, 3)


# -- weighting --------------------------------------------------------------------------------------------
def _per_sample_sparse_ce(probs, y):
    return -np.log(np.clip(probs[np.arange(len(y)), y], 1e-7, 1.0))


def test_sample_weight_scales_the_loss_as_in_keras():
    # Keras reduces with sum_over_batch_size: sum(w_i * l_i) / N
    x, y = _clf_data(50)
    model = _compiled(metrics=())
    w = np.random.default_rng(1).uniform(0, 3, 50).astype(np.float32)
    per_sample = _per_sample_sparse_ce(model.predict(x, verbose=0), y)
    got = model.evaluate(x, y, sample_weight=w, batch_size=50, verbose=0)
    assert got == pytest.approx(float((w * per_sample).sum() / 50), rel=1e-4)
    assert model.evaluate(x, y, batch_size=50, verbose=0) == pytest.approx(float(per_sample.mean()), rel=1e-4)


def test_class_weight_changes_the_loss_as_in_keras():
    x, y = _clf_data(48)
    model = _compiled(metrics=())
    class_weight = {0: 1.0, 1: 5.0, 2: 0.0}
    per_sample = _per_sample_sparse_ce(model.predict(x, verbose=0), y)
    expected = float((np.array([class_weight[c] for c in y]) * per_sample).sum() / 48)
    loss = model.train_on_batch(x, y, class_weight=class_weight)
    assert loss == pytest.approx(expected, rel=1e-4)


def test_class_weight_zero_class_is_not_learned():
    x, y = _clf_data(300)
    model = _compiled()
    model.fit(x, y, epochs=10, class_weight={0: 1.0, 1: 1.0, 2: 0.0}, verbose=0)
    pred = model.predict(x, verbose=0).argmax(1)
    assert (pred[y == 2] == 2).mean() < (pred[y == 0] == 0).mean()


def test_regularizer_penalty_is_added_to_the_training_loss():
    x, y = _clf_data(32)
    dlgpu.set_random_seed(0)
    model = dlgpu.Sequential([layers.Dense(3, activation="softmax", input_shape=(6,),
                                           kernel_regularizer=dlgpu.regularizers.L2(0.1))])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    plain = float(_per_sample_sparse_ce(model.predict(x, verbose=0), y).mean())
    penalty = 0.1 * float((model.layers[0].kernel.numpy() ** 2).sum())
    loss = model.train_on_batch(x, y)
    assert loss == pytest.approx(plain + penalty, rel=1e-4)
    assert len(model.losses) == 1 and float(model.losses[0]) > 0


def test_bias_regularizer_penalty_counts_and_pulls_the_bias():
    x, y = _clf_data(32)
    dlgpu.set_random_seed(0)
    model = dlgpu.Sequential([layers.Dense(3, activation="softmax", input_shape=(6,), bias_initializer="ones",
                                           bias_regularizer=dlgpu.regularizers.L1L2(l1=0.5, l2=0.25))])
    model.compile(optimizer=dlgpu.optimizers.SGD(0.1), loss="sparse_categorical_crossentropy")
    plain = float(_per_sample_sparse_ce(model.predict(x, verbose=0), y).mean())
    bias = model.layers[0].bias.numpy()
    assert model.test_on_batch(x, y) == pytest.approx(plain + 0.5 * np.abs(bias).sum() + 0.25 * (bias ** 2).sum(),
                                                      rel=1e-5)
    for _ in range(20):
        model.train_on_batch(x, y)
    assert np.abs(model.layers[0].bias.numpy()).sum() < np.abs(bias).sum() * 0.5


# -- custom training loops ---------------------------------------------------------------------------------
def test_gradient_tape_custom_loop_converges():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((128, 3)).astype(np.float32)
    y = (x @ np.array([[1.5], [-2.0], [0.5]], np.float32) + 0.3).astype(np.float32)
    dlgpu.set_random_seed(0)
    model = dlgpu.Sequential([layers.Dense(8, activation="tanh", input_shape=(3,)), layers.Dense(1)])
    optimizer = dlgpu.optimizers.Adam(learning_rate=0.02)
    loss_fn = dlgpu.losses.MeanSquaredError()
    losses = []
    for step in range(400):
        idx = slice((step % 4) * 32, (step % 4 + 1) * 32)
        with dlgpu.GradientTape() as tape:
            pred = model(x[idx], training=True)
            loss = loss_fn(y[idx], pred)
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables))
        losses.append(float(loss))
    assert losses[0] > 1.0
    assert np.mean(losses[-4:]) < 0.02


def test_functional_regression_converges():
    rng = np.random.default_rng(1)
    x = rng.uniform(-1, 1, (256, 2)).astype(np.float32)
    y = (np.sin(2 * x[:, :1]) + x[:, 1:] ** 2).astype(np.float32)
    dlgpu.set_random_seed(1)
    inp = dlgpu.Input(shape=(2,))
    h = layers.Dense(32, activation="tanh")(inp)
    h = layers.Dense(32, activation="tanh")(h)
    model = dlgpu.Model(inp, layers.Dense(1)(h))
    model.compile(optimizer=dlgpu.optimizers.Adam(learning_rate=0.01), loss="mse")
    hist = model.fit(x, y, epochs=60, batch_size=32, verbose=0)
    assert hist.history["loss"][-1] < 0.01, hist.history["loss"][-5:]


def test_regularization_counts_in_evaluate_as_in_keras():
    x, y = _clf_data(32)
    model = dlgpu.Sequential([layers.Dense(3, activation="softmax", input_shape=(6,),
                                           kernel_regularizer=dlgpu.regularizers.L2(0.1))])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    plain = float(_per_sample_sparse_ce(model.predict(x, verbose=0), y).mean())
    penalty = 0.1 * float((model.layers[0].kernel.numpy() ** 2).sum())
    assert model.evaluate(x, y, verbose=0) == pytest.approx(plain + penalty, rel=1e-4)


class _ActivityPenalty(layers.Layer):
    def call(self, inputs):
        self.add_loss(dlgpu.ops.sum(dlgpu.ops.abs(inputs)))
        return inputs


def test_add_loss_terms_belong_to_the_last_forward_pass():
    model = dlgpu.Sequential([layers.Dense(2, input_shape=(3,)), _ActivityPenalty()])
    x = np.ones((4, 3), np.float32)
    for _ in range(3):
        out = model(x)
    assert len(model.losses) == 1, "add_loss terms piled up across calls"
    assert float(model.losses[0]) == pytest.approx(float(np.abs(out.numpy()).sum()), rel=1e-5)
    model.predict(np.ones((100, 3), np.float32), batch_size=10, verbose=0)
    assert len(model.losses) <= 1
    model.compile(optimizer="adam", loss="mse")
    y = np.zeros((4, 2), np.float32)
    plain = float(np.mean(model.predict(x, verbose=0) ** 2))
    penalty = float(np.abs(model.predict(x, verbose=0)).sum())
    assert model.evaluate(x, y, verbose=0) == pytest.approx(plain + penalty, rel=1e-4)
    assert model.train_on_batch(x, y) == pytest.approx(plain + penalty, rel=1e-4)
