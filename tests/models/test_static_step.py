"""The planned training step (dlgpu/models/static_step.py) against the taped one.

A qualifying Sequential model must train exactly as it does under the tape (same losses, same weights
after several steps, same dropout masks from the same seed), and everything outside the plan must
fall back to the tape: other models, losses, layers, sample weights, frozen layers, run_eagerly.
"""

import numpy as np
import pytest

import dlgpu as keras
from dlgpu import layers
from dlgpu.autograd import Tensor
from dlgpu.models import static_step

rng = np.random.default_rng(17)


def mlp(dropout=0.2, last="softmax"):
    return [keras.Input(shape=(12,)), layers.Dense(16, activation="relu"), layers.Dropout(dropout),
            layers.Dense(16, activation="tanh"), layers.Dense(4, activation=last)]


def cnn():
    return [keras.Input(shape=(10, 10, 2)), layers.Conv2D(4, 3, padding="same", activation="relu"),
            layers.MaxPooling2D(), layers.Conv2D(5, 3, activation="sigmoid"), layers.MaxPooling2D(pool_size=(1, 2)),
            layers.Flatten(), layers.Dense(3, activation="softmax")]


def twins(stack_fn, loss=lambda: "sparse_categorical_crossentropy", optimizer=lambda: keras.optimizers.Adam(0.01)):
    """The same model twice, from the same weights: planned step and taped step (run_eagerly)."""
    models = []
    for eager in (False, True):
        keras.set_random_seed(3)
        model = keras.Sequential(stack_fn())
        model.compile(optimizer=optimizer(), loss=loss(), run_eagerly=eager)
        models.append(model)
    models[1].set_weights(models[0].get_weights())
    return models


def run_steps(model, x, y, steps=4, seed=9):
    keras.set_random_seed(seed)  # the dropout masks come from dlgpu's generator
    losses = [float(model._train_batch(Tensor(x), Tensor(y))[0]) for _ in range(steps)]
    return losses, model.get_weights()


@pytest.mark.parametrize("stack_fn,shape,classes", [(mlp, (12,), 4), (cnn, (10, 10, 2), 3)])
def test_planned_step_trains_exactly_as_the_taped_step(stack_fn, shape, classes):
    planned, taped = twins(stack_fn)
    assert planned._static_step() is not None and taped._static_step() is None
    x = rng.standard_normal((8,) + shape).astype(np.float32)
    y = rng.integers(0, classes, 8).astype(np.int32)
    (losses_p, weights_p), (losses_t, weights_t) = run_steps(planned, x, y), run_steps(taped, x, y)
    np.testing.assert_allclose(losses_p, losses_t, rtol=1e-5)
    for wp, wt in zip(weights_p, weights_t):
        np.testing.assert_allclose(wp, wt, rtol=1e-4, atol=1e-6)


def test_dense_gradients_are_written_where_adam_reads_them(monkeypatch):
    """No gather copy: the planned step hands Adam the views of its packed gradient buffer."""
    from dlgpu.backend import cpu
    planned, taped = twins(mlp)
    x, y = rng.standard_normal((8, 12)).astype(np.float32), rng.integers(0, 4, 8).astype(np.int32)
    for model in (planned, taped):
        run_steps(model, x, y, steps=1)  # builds the optimizer and packs its slots
    seen = []
    original = cpu.adam_update_packed
    monkeypatch.setattr(cpu, "adam_update_packed", lambda params, grads, destinations, *rest: seen.append(
        [g is d for g, d in zip(grads, destinations)]) or original(params, grads, destinations, *rest))
    (losses_p, weights_p), (losses_t, weights_t) = run_steps(planned, x, y, steps=2), run_steps(taped, x, y, steps=2)
    assert seen[:2] == [[True] * 6] * 2  # the planned steps'; the taped ones' gradients are copied in
    assert seen[2:] == [[False] * 6] * 2
    np.testing.assert_allclose(losses_p, losses_t, rtol=1e-5)
    for wp, wt in zip(weights_p, weights_t):
        np.testing.assert_allclose(wp, wt, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("last,loss,sparse", [
    ("softmax", lambda: "categorical_crossentropy", False),
    (None, lambda: keras.losses.CategoricalCrossentropy(from_logits=True), False),
    (None, lambda: keras.losses.SparseCategoricalCrossentropy(from_logits=True), True)])
def test_categorical_and_from_logits_losses_take_the_planned_step(last, loss, sparse):
    x = rng.standard_normal((6, 12)).astype(np.float32)
    classes = rng.integers(0, 4, 6)
    labels = classes.astype(np.int32) if sparse else np.eye(4, dtype=np.float32)[classes]
    planned, taped = twins(lambda: mlp(0.0, last), loss=loss)
    assert planned._static_step() is not None
    np.testing.assert_allclose(run_steps(planned, x, labels)[0], run_steps(taped, x, labels)[0], rtol=1e-5)


def frozen_first():
    stack = mlp()
    stack[1].trainable = False
    return stack


@pytest.mark.parametrize("build,why", [
    (lambda: keras.Sequential(mlp(last="sigmoid")), "a last activation the cross-entropy cannot fuse"),
    (lambda: keras.Sequential(frozen_first()), "a frozen layer"),
    (lambda: keras.Sequential([keras.Input(shape=(12,)), layers.Dense(8, kernel_regularizer="l2"),
                               layers.Dense(4, activation="softmax")]), "a weight penalty"),
    (lambda: keras.Sequential([keras.Input(shape=(12,)), layers.BatchNormalization(),
                               layers.Dense(4, activation="softmax")]), "a layer without a planned backward"),
    (lambda: keras.Model(*(lambda i: (i, layers.Dense(4, activation="softmax")(i)))(keras.Input(shape=(12,)))),
     "a functional model"),
])
def test_models_outside_the_plan_take_the_tape(build, why):
    model = build()
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    assert model._static_step() is None, why
    x = rng.standard_normal((5, 12)).astype(np.float32)
    before = [w.copy() for w in model.get_weights()]
    history = model.fit(x, rng.integers(0, 4, 5), epochs=1, verbose=0)  # and the tape still trains it
    assert np.isfinite(history.history["loss"][0])
    assert any(not np.array_equal(a, b) for a, b in zip(before, model.get_weights()))


def test_other_losses_and_compile_switches_take_the_tape():
    for kwargs in ({"loss": "mse"}, {"loss": "sparse_categorical_crossentropy", "jit_compile": False},
                   {"loss": "sparse_categorical_crossentropy", "run_eagerly": True},
                   {"loss": keras.losses.SparseCategoricalCrossentropy(ignore_class=0)},
                   {"loss": "sparse_categorical_crossentropy", "loss_weights": [2.0]}):
        model = keras.Sequential(mlp())
        model.compile(optimizer="adam", **kwargs)
        assert model._static_step() is None, kwargs


def test_freezing_a_layer_after_training_started_replans(monkeypatch):
    model = keras.Sequential(mlp())
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    x, y = rng.standard_normal((8, 12)).astype(np.float32), rng.integers(0, 4, 8)
    model.fit(x, y, epochs=1, verbose=0)
    assert model._static_step() is not None
    model.layers[0].trainable = False
    frozen = model.layers[0].get_weights()
    assert model._static_step() is None
    model.fit(x, y, epochs=1, verbose=0)
    for before, after in zip(frozen, model.layers[0].get_weights()):
        np.testing.assert_array_equal(before, after)


def test_batches_the_plan_does_not_take_fall_back_to_the_tape(monkeypatch):
    planned, taped = twins(mlp)
    calls = []
    original = static_step.StaticStep.__call__
    monkeypatch.setattr(static_step.StaticStep, "__call__", lambda self, *a: calls.append(1) or original(self, *a))
    x, y = rng.standard_normal((6, 12)).astype(np.float32), rng.integers(0, 4, 6)
    weights = np.linspace(0.5, 1.5, 6).astype(np.float32)
    for model in (planned, taped):
        keras.set_random_seed(1)
        model.fit(x, y, sample_weight=weights, epochs=2, batch_size=3, shuffle=False, verbose=0)
    assert calls == []
    for wp, wt in zip(planned.get_weights(), taped.get_weights()):
        np.testing.assert_allclose(wp, wt, rtol=1e-6)
    planned.fit(x, y, epochs=1, batch_size=3, verbose=0)
    assert calls == [1, 1]


def test_bad_labels_raise_the_loss_error_before_any_update():
    model = keras.Sequential(mlp())
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    x = rng.standard_normal((4, 12)).astype(np.float32)
    model(x)
    before = model.get_weights()
    with pytest.raises(ValueError, match=r"labels must be integers in \[0, 4\).*received label 7 at index 2"):
        model._train_batch(Tensor(x), Tensor(np.array([0, 1, 7, 2], np.int32)))
    for a, b in zip(before, model.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_labels_the_plan_cannot_read_get_the_taped_steps_error():
    model = keras.Sequential(mlp())
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    x = rng.standard_normal((4, 12)).astype(np.float32)
    model(x)
    with pytest.raises(ValueError, match="must have the same shape up until the last dimension"):
        model._train_batch(Tensor(x), Tensor(np.zeros((4, 2), np.int32)))
    # column labels and whole-number float labels are read as Keras reads them
    for labels in (np.array([[0], [1], [3], [2]], np.int64), np.array([0.0, 1.0, 3.0, 2.0])):
        assert np.isfinite(float(model._train_batch(Tensor(x), Tensor(labels))[0]))


@pytest.mark.gpu
@pytest.mark.parametrize("loss", ["sparse_categorical_crossentropy", "categorical_crossentropy"])
@pytest.mark.parametrize("stack_fn,shape,classes", [(mlp, (12,), 4), (cnn, (10, 10, 2), 3)], ids=["mlp", "cnn"])
def test_planned_step_on_the_gpu_trains_as_the_taped_step(stack_fn, shape, classes, loss):
    """On the GPU the plan calls gpu.py's primitives (our kernels; no conv+pool fusion, no packed Adam)."""
    with keras.device("gpu"):
        planned, taped = twins(stack_fn, loss=lambda: loss)
        assert planned._static_step() is not None and taped._static_step() is None
        assert not any(isinstance(s, static_step._ConvPoolStage) for s in planned._static_step()._stages)
        x = keras.to_device(rng.standard_normal((8,) + shape).astype(np.float32), "gpu")
        labels = rng.integers(0, classes, 8)
        y = keras.to_device(labels.astype(np.int32) if loss.startswith("sparse")
                            else np.eye(classes, dtype=np.float32)[labels], "gpu")
        assert planned._static_step().accepts(Tensor(x), Tensor(y), None)
        (losses_p, weights_p), (losses_t, weights_t) = run_steps(planned, x, y), run_steps(taped, x, y)
    np.testing.assert_allclose(losses_p, losses_t, rtol=1e-5)
    for wp, wt in zip(weights_p, weights_t):
        np.testing.assert_allclose(wp, wt, rtol=1e-4, atol=1e-6)


@pytest.mark.gpu
def test_host_batches_for_a_gpu_model_take_the_taped_step_error():
    with keras.device("gpu"):
        planned, _ = twins(mlp)
        step = planned._static_step()
    x, y = rng.standard_normal((4, 12)).astype(np.float32), rng.integers(0, 4, 4)
    assert not step.accepts(Tensor(x), Tensor(y), None)  # the taped step then names the device mismatch
