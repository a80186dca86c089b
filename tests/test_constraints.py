"""dlgpu.constraints (Keras 3's keras/src/constraints/constraints.py) and the optimizer applying them.

Values against a numpy reference written from Keras's formulas (float64, then compared in float32), on
several axes and with all-zero slices; configs, aliases and custom classes; and training: after every
step of fit, with SGD, with Adam (packed slots) and through the planned CPU step, each constrained
variable equals constraint(its value before), e.g. kernel column norms <= max_value.
"""

import numpy as np
import pytest

import dlgpu
import dlgpu as keras
from dlgpu import constraints, layers
from dlgpu.autograd import Tensor
from dlgpu.models import load_model

EPS = 1e-7
rng = np.random.default_rng(23)


def _norms(w, axis):
    return np.sqrt(np.sum(np.square(w.astype(np.float64)), axis=axis, keepdims=True))


def ref_max_norm(w, max_value, axis):
    n = _norms(w, axis)
    return w * (np.clip(n, 0, max_value) / (EPS + n))


def ref_min_max_norm(w, min_value, max_value, rate, axis):
    n = _norms(w, axis)
    desired = rate * np.clip(n, min_value, max_value) + (1 - rate) * n
    return w * (desired / (EPS + n))


def ref_unit_norm(w, axis):
    return w / (EPS + _norms(w, axis))


def weights(shape, zero_slice=True):
    """Random weights with large and small slices, and (axis 0 reading) one all-zero column."""
    w = (rng.standard_normal(shape) * rng.choice([0.1, 3.0], size=shape[-1])).astype(np.float32)
    if zero_slice:
        w[..., 0] = 0
    return w


AXES = [(0, (5, 4)), (1, (5, 4)), (-1, (5, 4)), ([0, 1, 2], (3, 3, 2, 4)), (3, (3, 3, 2, 4))]


@pytest.mark.parametrize("axis,shape", AXES)
def test_max_norm_values(axis, shape):
    w = weights(shape)
    out = constraints.MaxNorm(1.5, axis=axis)(w)
    assert isinstance(out, Tensor) and out.data.dtype == np.float32 and out.shape == shape
    np.testing.assert_allclose(out.numpy(), ref_max_norm(w, 1.5, tuple(np.atleast_1d(axis))), rtol=1e-6, atol=1e-7)
    assert np.all(_norms(out.numpy(), tuple(np.atleast_1d(axis))) <= 1.5 + 1e-5)


@pytest.mark.parametrize("axis,shape", AXES)
@pytest.mark.parametrize("rate", [1.0, 0.3])
def test_min_max_norm_values(axis, shape, rate):
    w = weights(shape)
    out = constraints.MinMaxNorm(0.5, 2.0, rate=rate, axis=axis)(w).numpy()
    np.testing.assert_allclose(out, ref_min_max_norm(w, 0.5, 2.0, rate, tuple(np.atleast_1d(axis))),
                               rtol=1e-6, atol=1e-7)
    assert out[..., 0].max() == 0 and out[..., 0].min() == 0  # a zero slice has no direction: it stays zero


@pytest.mark.parametrize("axis,shape", AXES)
def test_unit_norm_values(axis, shape):
    w = weights(shape)
    out = constraints.UnitNorm(axis=axis)(w).numpy()
    np.testing.assert_allclose(out, ref_unit_norm(w, tuple(np.atleast_1d(axis))), rtol=1e-6, atol=1e-7)
    assert not np.isnan(out).any()


def test_non_neg_and_base_values():
    w = np.array([[-1.5, 0.0, 2.0], [3.0, -0.0, -1e-8]], np.float32)
    np.testing.assert_array_equal(constraints.NonNeg()(w).numpy(), np.maximum(w, 0))
    variable = dlgpu.Variable(w)
    assert constraints.Constraint()(variable) is variable  # the base constraint changes nothing
    # a Variable in, float64 kept: the arithmetic runs in the weights' own dtype
    w64 = w.astype(np.float64)
    assert constraints.MaxNorm(1.0)(dlgpu.Variable(w64, dtype="float64")).data.dtype == np.float64


@pytest.mark.parametrize("constraint", [constraints.MaxNorm(3, axis=[0, 1]), constraints.MinMaxNorm(0.1, 0.9, 0.5, 1),
                                        constraints.NonNeg(), constraints.UnitNorm(axis=-1), constraints.Constraint()])
def test_config_round_trip(constraint):
    config = constraints.serialize(constraint)
    assert config["module"] == "keras.constraints" and config["class_name"] == type(constraint).__name__
    again = constraints.deserialize(config)
    assert type(again) is type(constraint) and again.get_config() == constraint.get_config()
    assert constraints.get(config).get_config() == constraint.get_config()
    assert type(constraint).from_config(constraint.get_config()).get_config() == constraint.get_config()
    w = weights((4, 3))
    np.testing.assert_array_equal(values(again(w)), values(constraint(w)))


def values(out):
    return out.numpy() if isinstance(out, Tensor) else np.asarray(out)


def test_keras_config_keys_and_defaults():
    assert constraints.MaxNorm().get_config() == {"max_value": 2, "axis": 0}
    assert constraints.MinMaxNorm().get_config() == {"min_value": 0.0, "max_value": 1.0, "rate": 1.0, "axis": 0}
    assert constraints.UnitNorm().get_config() == {"axis": 0}
    assert constraints.NonNeg().get_config() == {}
    assert constraints.MaxNorm(axis=(0, 1)).get_config()["axis"] == [0, 1]  # JSON-friendly, as Keras writes it


@pytest.mark.parametrize("name,cls", [("max_norm", constraints.MaxNorm), ("MaxNorm", constraints.MaxNorm),
                                      ("min_max_norm", constraints.MinMaxNorm), ("non_neg", constraints.NonNeg),
                                      ("NonNeg", constraints.NonNeg), ("unit_norm", constraints.UnitNorm),
                                      ("UnitNorm", constraints.UnitNorm)])
def test_get_by_name(name, cls):
    assert type(constraints.get(name)) is cls
    assert type(constraints.deserialize(name)) is cls


def test_get_passes_objects_and_functions_and_instantiates_classes():
    c = constraints.UnitNorm(1)
    assert constraints.get(c) is c and constraints.get(None) is None
    assert type(constraints.get(constraints.NonNeg)) is constraints.NonNeg
    fn = lambda w: w  # noqa: E731 - any callable is a constraint, as in Keras
    assert constraints.get(fn) is fn
    assert constraints.max_norm is constraints.MaxNorm and constraints.non_neg is constraints.NonNeg
    assert keras.constraints is constraints


def test_bad_identifiers_and_arguments():
    with pytest.raises(ValueError, match=r"Unknown constraint: 'maxnorm'. Did you mean 'max_norm'\?"):
        constraints.get("maxnorm")
    with pytest.raises(ValueError, match=r"Could not interpret constraint identifier: 3"):
        constraints.get(3)
    with pytest.raises(ValueError, match=r"Unknown constraint: 'Mine'"):
        constraints.deserialize({"class_name": "Mine", "config": {}})
    with pytest.raises(ValueError, match=r"MaxNorm.*max_value=-1"):
        constraints.MaxNorm(-1)
    with pytest.raises(ValueError, match=r"MinMaxNorm.*min_value=2.*max_value=1"):
        constraints.MinMaxNorm(2, 1)
    with pytest.raises(ValueError, match=r"UnitNorm.*axis='rows'"):
        constraints.UnitNorm("rows")
    with pytest.raises(ValueError, match=r"Cannot serialize constraint.*get_config"):
        constraints.serialize(lambda w: w)
    with pytest.raises(TypeError, match=r"floating-point.*int32"):
        constraints.MaxNorm()(np.ones((2, 2), np.int32))


class ClipTo(constraints.Constraint):
    """A custom constraint written as in Keras's docs: keras.ops on the weights, a get_config."""

    def __init__(self, limit):
        self.limit = limit

    def __call__(self, w):
        return keras.ops.clip(w, -self.limit, self.limit)

    def get_config(self):
        return {"limit": self.limit}


def test_custom_constraint_serializes_with_custom_objects():
    config = constraints.serialize(ClipTo(0.25))
    assert config["class_name"] == "ClipTo" and config["config"] == {"limit": 0.25}
    again = constraints.deserialize(config, custom_objects={"ClipTo": ClipTo})
    assert isinstance(again, ClipTo) and again.limit == 0.25


# -- training: the optimizer applies them after every update ----------------------------------------------

class CheckAfterEachBatch(keras.callbacks.Callback):
    """Checks the constrained kernel after every training batch."""

    def __init__(self, variable, check):
        super().__init__()
        self.variable, self.check, self.batches = variable, check, 0

    def on_train_batch_end(self, batch, logs=None):
        self.check(self.variable.numpy())
        self.batches += 1


def max_norm_model(optimizer, run_eagerly=False, bias_constraint=None):
    keras.set_random_seed(1)
    model = keras.Sequential([keras.Input((6,)),
                              layers.Dense(8, activation="relu", kernel_constraint=constraints.MaxNorm(1.0),
                                           bias_constraint=bias_constraint, kernel_initializer="ones"),
                              layers.Dense(3, activation="softmax")])
    model.compile(optimizer=optimizer, loss="sparse_categorical_crossentropy", run_eagerly=run_eagerly)
    return model


def data(n=64, features=6, classes=3):
    x = rng.standard_normal((n, features)).astype(np.float32) * 4
    return x, rng.integers(0, classes, n)


def column_norms_at_most_one(kernel):
    assert np.all(np.linalg.norm(kernel, axis=0) <= 1.0 + 1e-5), np.linalg.norm(kernel, axis=0)


@pytest.mark.parametrize("optimizer,eager", [(lambda: keras.optimizers.SGD(0.5, momentum=0.9), False),
                                             (lambda: keras.optimizers.Adam(0.05), False),
                                             (lambda: keras.optimizers.Adam(0.05), True),
                                             (lambda: keras.optimizers.RMSprop(0.05), True)])
def test_max_norm_holds_after_every_step_of_fit(optimizer, eager):
    model = max_norm_model(optimizer(), run_eagerly=eager)
    kernel = model.layers[0].kernel
    assert np.linalg.norm(kernel.numpy(), axis=0).max() > 2  # the ones initializer breaks it at first
    check = CheckAfterEachBatch(kernel, column_norms_at_most_one)
    x, y = data()
    history = model.fit(x, y, batch_size=8, epochs=2, verbose=0, callbacks=[check])
    assert check.batches == 16
    assert np.isfinite(history.history["loss"]).all()
    # the step actually moved the kernel: the constraint projects, it does not freeze
    assert not np.allclose(kernel.numpy(), constraints.MaxNorm(1.0)(np.ones((6, 8), np.float32)).numpy())


def test_adam_packed_and_planned_step_apply_constraints():
    """The planned CPU step and Adam's packed update (several small float32 parameters) are the paths
    taken here; the constraint must hold after every step all the same."""
    model = max_norm_model(keras.optimizers.Adam(0.05), bias_constraint=constraints.NonNeg())
    x, y = data()
    model.fit(x[:8], y[:8], batch_size=8, epochs=1, verbose=0)
    assert model._static_step() is not None, "this model should take the planned step"
    assert model.optimizer._packed is not None, "Adam should pack these small parameters"
    dense = model.layers[0]
    assert dense.kernel.data is not None and dense.kernel in model.optimizer._constrained
    check = CheckAfterEachBatch(dense.bias, lambda b: np.testing.assert_array_less(-1e-12, b))
    kernel_check = CheckAfterEachBatch(dense.kernel, column_norms_at_most_one)
    model.fit(x, y, batch_size=8, epochs=2, verbose=0, callbacks=[check, kernel_check])
    assert kernel_check.batches == 16


def test_planned_step_with_constraints_and_seeded_dropout_matches_taped_step():
    def build(eager):
        keras.set_random_seed(4)
        model = keras.Sequential([keras.Input((6,)),
                                  layers.Dense(8, activation="relu", kernel_constraint=constraints.UnitNorm(),
                                               kernel_initializer="ones"),
                                  layers.Dropout(0.3, seed=11),
                                  layers.Dense(3, activation="softmax", kernel_constraint="non_neg")])
        model.compile(optimizer=keras.optimizers.Adam(0.05), loss="sparse_categorical_crossentropy",
                      run_eagerly=eager)
        return model
    planned, taped = build(False), build(True)
    taped.set_weights(planned.get_weights())
    x, y = data(16)
    for model in (planned, taped):
        for _ in range(4):
            model._train_batch(Tensor(x), Tensor(y))
    assert planned._static_step() is not None and taped._static_step() is None
    for wp, wt in zip(planned.get_weights(), taped.get_weights()):
        np.testing.assert_allclose(wp, wt, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(planned.layers[0].kernel.numpy(), axis=0), 1.0, rtol=1e-5)
    assert planned.layers[2].kernel.numpy().min() >= 0


def test_non_neg_keeps_weights_non_negative():
    keras.set_random_seed(2)
    model = keras.Sequential([keras.Input((6,)), layers.Dense(5, kernel_constraint="non_neg",
                                                               bias_constraint=constraints.NonNeg()),
                              layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
    # its own generator: the module's shared one gives data that depends on which tests ran before (xdist)
    x = np.random.default_rng(6).standard_normal((32, 6)).astype(np.float32)
    y = -np.abs(x).sum(axis=1, keepdims=True)  # pushes the first layer's weights negative
    check = CheckAfterEachBatch(model.layers[0].kernel, lambda k: np.testing.assert_array_less(-1e-12, k))
    model.fit(x, y, batch_size=8, epochs=3, verbose=0, callbacks=[check])
    assert check.batches == 12
    assert model.layers[0].kernel.numpy().min() == 0  # the projection was needed: some weights sit at zero
    assert model.layers[0].bias.numpy().min() >= 0


def test_apply_gradients_and_the_variable_property():
    """Keras's contract outside fit: optimizer.apply_gradients projects each variable with a constraint,
    and a constraint set on the Variable after the optimizer was built is seen at the next step."""
    a = dlgpu.Variable(np.full((3, 2), 2.0, np.float32), constraint=constraints.MaxNorm(1.0))
    b = dlgpu.Variable(np.full((2,), -1.0, np.float32))
    opt = keras.optimizers.SGD(0.1)
    opt.apply_gradients([(np.zeros((3, 2), np.float32), a), (np.zeros(2, np.float32), b)])
    np.testing.assert_allclose(np.linalg.norm(a.numpy(), axis=0), 1.0, rtol=1e-6)
    np.testing.assert_array_equal(b.numpy(), -1.0)
    assert opt._constrained == [a]
    b.constraint = constraints.NonNeg()
    opt.apply_gradients([(np.zeros((3, 2), np.float32), a), (np.zeros(2, np.float32), b)])
    np.testing.assert_array_equal(b.numpy(), 0.0)
    assert a.constraint.get_config() == {"max_value": 1.0, "axis": 0}


def test_no_constraint_no_work(monkeypatch):
    """Without constraints the optimizer's step does not visit the variables for them."""
    calls = []
    monkeypatch.setattr(keras.optimizers.Optimizer, "_apply_constraints", lambda self, params: calls.append(1))
    model = keras.Sequential([keras.Input((6,)), layers.Dense(4), layers.Dense(3, activation="softmax")])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    x, y = data(16)
    model.fit(x, y, batch_size=8, epochs=1, verbose=0)
    assert calls == [] and model.optimizer._constrained == []


def test_custom_constraint_trains_and_survives_save_load(tmp_path):
    keras.saving.register_keras_serializable()(ClipTo)
    keras.set_random_seed(3)
    model = keras.Sequential([keras.Input((6,)), layers.Dense(4, kernel_constraint=ClipTo(0.2),
                                                               kernel_initializer="ones"),
                              layers.Dense(3, activation="softmax", kernel_constraint=constraints.MaxNorm(0.5))])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    x, y = data(32)
    model.fit(x, y, batch_size=8, epochs=1, verbose=0)
    assert np.abs(model.layers[0].kernel.numpy()).max() <= 0.2 + 1e-7
    path = tmp_path / "constrained.dlgpu"
    model.save(path)
    loaded = load_model(path)
    first, last = loaded.layers
    assert isinstance(first.kernel_constraint, ClipTo) and first.kernel_constraint.limit == 0.2
    assert first.kernel.constraint is first.kernel_constraint
    assert last.kernel_constraint.get_config() == {"max_value": 0.5, "axis": 0}
    for a, b in zip(model.get_weights(), loaded.get_weights()):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_allclose(loaded.predict(x, verbose=0), model.predict(x, verbose=0), rtol=1e-6)
    loaded.fit(x, y, batch_size=8, epochs=1, verbose=0)  # the loaded model goes on applying them
    assert np.abs(first.kernel.numpy()).max() <= 0.2 + 1e-7
    assert np.linalg.norm(last.kernel.numpy(), axis=0).max() <= 0.5 + 1e-6


@pytest.mark.gpu
def test_constraints_on_gpu_match_cpu():
    """The built-in constraints on device arrays give the CPU's values, and fit on the GPU applies them."""
    w = weights((3, 3, 2, 4))
    cases = [constraints.MaxNorm(1.5, axis=[0, 1, 2]), constraints.MinMaxNorm(0.5, 2.0, 0.7, axis=3),
             constraints.NonNeg(), constraints.UnitNorm(axis=0)]
    with dlgpu.device("gpu"):
        variable = dlgpu.Variable(w)
        assert variable.device.kind == "gpu"
        for constraint in cases:
            out = constraint(variable)
            assert out.device.kind == "gpu"
            np.testing.assert_allclose(out.numpy(), constraint(w).numpy(), rtol=1e-5, atol=1e-6)
        model = max_norm_model(keras.optimizers.Adam(0.05), bias_constraint=constraints.NonNeg())
        kernel = model.layers[0].kernel
        assert kernel.device.kind == "gpu"
        check = CheckAfterEachBatch(kernel, column_norms_at_most_one)
        x, y = data(32)
        model.fit(x, y, batch_size=8, epochs=1, verbose=0, callbacks=[check])
        assert check.batches == 4
        assert model.layers[0].bias.numpy().min() >= 0
