"""Bad input: a clear error naming the argument/layer/shapes, raised before any weight changes, and the
model still trains afterwards."""

import numpy as np
import pytest

import dlgpu
from dlgpu import layers


def _model():
    dlgpu.set_random_seed(0)
    model = dlgpu.Sequential([layers.Dense(8, activation="relu", input_shape=(4,), name="hidden"),
                              layers.Dense(10, activation="softmax", name="probs")])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def _data(n=64):
    rng = np.random.default_rng(0)
    return rng.standard_normal((n, 4)).astype(np.float32), rng.integers(0, 10, n)


def _fails_cleanly(model, call, exc, match):
    """`call` raises `exc` matching `match`; the weights are untouched; the model still trains."""
    before = [w.copy() for w in model.get_weights()]
    with pytest.raises(exc, match=match):
        call()
    after = model.get_weights()
    assert len(after) == len(before)
    for a, b in zip(after, before):
        np.testing.assert_array_equal(a, b)
    x, y = _data()
    loss0 = model.evaluate(x, y, verbose=0)[0]
    model.fit(x, y, epochs=3, verbose=0)
    assert model.evaluate(x, y, verbose=0)[0] < loss0


def test_fit_before_compile():
    model = dlgpu.Sequential([layers.Dense(2, input_shape=(4,))])
    x, y = _data()
    for call in (lambda: model.fit(x, y), lambda: model.evaluate(x, y), lambda: model.train_on_batch(x, y)):
        with pytest.raises(RuntimeError, match="compile"):
            call()


def test_unknown_loss_optimizer_activation_are_named():
    model = dlgpu.Sequential([layers.Dense(2, input_shape=(4,))])
    with pytest.raises(ValueError, match="crossentropyy"):
        model.compile(optimizer="adam", loss="crossentropyy")
    with pytest.raises(ValueError, match="adamm"):
        model.compile(optimizer="adamm", loss="mse")
    with pytest.raises(ValueError, match="accuracyy"):
        model.compile(optimizer="adam", loss="mse", metrics=["accuracyy"])
    with pytest.raises(ValueError, match="rellu"):
        layers.Dense(2, activation="rellu")
    with pytest.raises(ValueError, match="rellu"):
        layers.Activation("rellu")


def test_wrong_input_shape():
    model = _model()
    x, y = _data()
    _fails_cleanly(model, lambda: model.fit(x[:, :3], y, verbose=0), ValueError,
                   r"(?s)hidden.*\(.*3\).*x has shape \(64, 3\)")  # the data's shape, not only the checked samples'
    _fails_cleanly(model, lambda: model.fit(x[:, :, None], y, verbose=0), ValueError, r"hidden|ndim|shape")
    _fails_cleanly(model, lambda: model.predict(x[:, :3], verbose=0), ValueError, r"hidden")


def test_xy_length_mismatch():
    model = _model()
    x, y = _data()
    _fails_cleanly(model, lambda: model.fit(x, y[:-1], verbose=0), ValueError, r"64.*63|cardinality")
    _fails_cleanly(model, lambda: model.fit(x, y, sample_weight=np.ones(5), verbose=0), ValueError,
                   "sample_weight")


def test_empty_arrays():
    model = _model()
    _fails_cleanly(model, lambda: model.fit(np.zeros((0, 4), np.float32), np.zeros((0,), np.int64), verbose=0),
                   ValueError, "empty")
    _fails_cleanly(model, lambda: model.predict(np.zeros((0, 4), np.float32), verbose=0), ValueError, "empty")


@pytest.mark.parametrize("where", ["x", "y"])
def test_nan_in_data(where):
    model = dlgpu.Sequential([layers.Dense(1, input_shape=(4,), name="hidden")])
    model.compile(optimizer="adam", loss="mse")
    x, _ = _data()
    y = x[:, :1].copy()
    (x if where == "x" else y)[-1, 0] = np.nan
    before = [w.copy() for w in model.get_weights()]
    with pytest.raises(ValueError, match=rf"`{where}`.*NaN"):
        model.fit(x, y, verbose=0)
    for a, b in zip(model.get_weights(), before):
        np.testing.assert_array_equal(a, b)


def test_huge_finite_values_are_data_not_nan():
    """Values near float32's limit are data: only NaN and inf are rejected."""
    model = dlgpu.Sequential([layers.Dense(1, input_shape=(4,), name="hidden")])
    x = np.full((64, 4), 2e37, np.float32)  # their sum would overflow float32; each value is fine
    assert model.predict(x, verbose=0).shape == (64, 1)
    x[3, 2] = -np.inf
    with pytest.raises(ValueError, match=r"`x` contains 1 NaN or infinite value"):
        model.predict(x, verbose=0)


def test_sparse_label_out_of_range_at_the_end_is_caught_before_the_first_step():
    model = _model()
    x, y = _data(200)
    y[-1] = 10   # 10 classes: labels 0..9; the bad one is in the last batch
    _fails_cleanly(model, lambda: model.fit(x, y, batch_size=16, verbose=0), ValueError, r"10")
    y[-1] = -1
    _fails_cleanly(model, lambda: model.fit(x, y, batch_size=16, verbose=0), ValueError, r"-1")


def test_sparse_label_out_of_range_in_validation_data():
    model = _model()
    x, y = _data()
    yv = y.copy()
    yv[-1] = 12
    _fails_cleanly(model, lambda: model.fit(x, y, validation_data=(x, yv), verbose=0), ValueError, "12")


def test_fractional_float_labels_for_sparse_crossentropy():
    model = _model()
    x, y = _data()
    yf = y.astype(np.float32)
    yf[-1] = 2.5
    _fails_cleanly(model, lambda: model.fit(x, yf, verbose=0), ValueError, r"2\.5|whole|integer")
    # whole-number floats are fine (Keras accepts them)
    model.fit(x, y.astype(np.float32), epochs=1, verbose=0)


@pytest.mark.parametrize("bad", [np.array([["a"] * 4] * 8), np.array([[object()] * 4] * 8, dtype=object)])
def test_non_numeric_x(bad):
    model = _model()
    _fails_cleanly(model, lambda: model.fit(bad, np.zeros(8, np.int64), verbose=0), TypeError, r"`x`.*dtype")


def test_non_numeric_y():
    model = _model()
    x, _ = _data(8)
    _fails_cleanly(model, lambda: model.fit(x, np.array(["cat"] * 8), verbose=0), TypeError, r"`y`.*dtype")


def test_bad_fit_arguments():
    model = _model()
    x, y = _data()
    _fails_cleanly(model, lambda: model.fit(x, y, epochs=-1, verbose=0), ValueError, "epochs")
    _fails_cleanly(model, lambda: model.fit(x, y, validation_split=1.5, verbose=0), ValueError, "validation_split")
    _fails_cleanly(model, lambda: model.fit(x, y, validation_data=(x,), verbose=0), ValueError, "validation_data")
    _fails_cleanly(model, lambda: model.fit(x, y, callbacks=["nope"], verbose=0), TypeError, "callbacks")


def test_wrong_target_shape_for_mse():
    model = dlgpu.Sequential([layers.Dense(3, input_shape=(4,))])
    model.compile(optimizer="adam", loss="mse")
    x, _ = _data()
    before = [w.copy() for w in model.get_weights()]
    with pytest.raises(ValueError):
        model.fit(x, np.zeros((64, 5), np.float32), verbose=0)
    for a, b in zip(model.get_weights(), before):
        np.testing.assert_array_equal(a, b)


def test_bad_label_in_the_first_batch_gets_the_same_clear_error():
    model = _model()
    x, y = _data()
    y[0] = 10
    _fails_cleanly(model, lambda: model.fit(x, y, verbose=0), ValueError, r"label 10 at index 0")
    _fails_cleanly(model, lambda: model.train_on_batch(x, y), ValueError, r"label 10")
    _fails_cleanly(model, lambda: model.evaluate(x, y, verbose=0), ValueError, r"label 10")
