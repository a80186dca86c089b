"""Patterns of keras.io's knowledge distillation example: a Model subclass holding a teacher and a
student, compile() with extra arguments forwarded to super().compile(optimizer, metrics) (no loss),
and either an overridden compute_loss (Keras 3 version; fit/evaluate use it) or an own train_step /
test_step using the deprecated self.compiled_metrics (Keras 2 version, no call() at all)."""

import numpy as np
import pytest

import dlgpu as keras
from dlgpu import layers, ops


def _net(width, name):
    return keras.Sequential([keras.Input((6,)), layers.Dense(width), layers.LeakyReLU(negative_slope=0.2),
                             layers.Dense(3)], name=name)


def _data(n=48):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(n, 6)).astype(np.float32)
    return x, np.argmax(x[:, :3], axis=1)


class Distiller(keras.Model):
    def __init__(self, student, teacher):
        super().__init__()
        self.student, self.teacher = student, teacher

    def compile(self, optimizer, metrics, student_loss_fn, distillation_loss_fn, alpha=0.1, temperature=3):
        super().compile(optimizer=optimizer, metrics=metrics)
        self.student_loss_fn, self.distillation_loss_fn = student_loss_fn, distillation_loss_fn
        self.alpha, self.temperature = alpha, temperature

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, allow_empty=False):
        teacher_pred = self.teacher(x, training=False)
        soft = self.distillation_loss_fn(ops.softmax(teacher_pred / self.temperature, axis=1),
                                         ops.softmax(y_pred / self.temperature, axis=1)) * self.temperature ** 2
        return self.alpha * self.student_loss_fn(y, y_pred) + (1 - self.alpha) * soft

    def call(self, x):
        return self.student(x)


class DistillerWithTraining(Distiller):
    """Keras >= 3.3 passes training= to a compute_loss that takes it (older overrides lack it)."""

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        self.seen_training.append(training)
        return super().compute_loss(x, y, y_pred, sample_weight)


def _distill_loss(distiller, x, y):
    t, s, temp = [keras.to_numpy(m(x)) for m in (distiller.teacher, distiller.student)] + [distiller.temperature]

    def softmax(z):
        e = np.exp(z - z.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)

    log_s = s - s.max(axis=1, keepdims=True)
    log_s = log_s - np.log(np.exp(log_s).sum(axis=1, keepdims=True))
    hard = -np.mean(log_s[np.arange(len(y)), y])
    p, q = softmax(t / temp), softmax(s / temp)
    kl = np.mean(np.sum(p * np.log(p / q), axis=1))
    return distiller.alpha * hard + (1 - distiller.alpha) * kl * temp ** 2


@pytest.mark.parametrize("with_training_arg", [False, True])
def test_fit_and_evaluate_use_the_overridden_compute_loss(with_training_arg):
    keras.utils.set_random_seed(0)
    x, y = _data()
    teacher = _net(16, "teacher")
    teacher.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    teacher.fit(x, y, epochs=5, verbose=0)
    distiller = (DistillerWithTraining if with_training_arg else Distiller)(_net(4, "student"), teacher)
    distiller.seen_training = []
    distiller.compile(optimizer=keras.optimizers.Adam(1e-2), metrics=[keras.metrics.SparseCategoricalAccuracy()],
                      student_loss_fn=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                      distillation_loss_fn=keras.losses.KLDivergence(), alpha=0.1, temperature=4)
    before = _distill_loss(distiller, x, y)
    logs = distiller.evaluate(x, y, batch_size=len(x), verbose=0, return_dict=True)
    assert logs["loss"] == pytest.approx(before, rel=1e-4)
    history = distiller.fit(x, y, epochs=4, batch_size=16, verbose=0)
    assert set(history.history) == {"loss", "sparse_categorical_accuracy"}
    assert _distill_loss(distiller, x, y) < before
    if with_training_arg:
        assert set(distiller.seen_training) == {True, False}


class OldStyleDistiller(keras.Model):
    def __init__(self, student, teacher):
        super().__init__()
        self.student, self.teacher = student, teacher

    def compile(self, optimizer, metrics, student_loss_fn, temperature=3):
        super().compile(optimizer=optimizer, metrics=metrics)
        self.student_loss_fn, self.temperature = student_loss_fn, temperature

    def train_step(self, data):
        x, y = data
        soft_targets = ops.softmax(self.teacher(x, training=False) / self.temperature, axis=1)
        with keras.GradientTape() as tape:
            logits = self.student(x, training=True)
            student_loss = self.student_loss_fn(y, logits)
            loss = student_loss + keras.losses.KLDivergence()(soft_targets, ops.softmax(logits / self.temperature))
        grads = tape.gradient(loss, self.student.trainable_variables)
        self.optimizer.apply_gradients(zip(grads, self.student.trainable_variables))
        self.compiled_metrics.update_state(y, logits)
        results = {m.name: m.result() for m in self.metrics}
        results.update({"student_loss": student_loss})
        return results

    def test_step(self, data):
        x, y = data
        logits = self.student(x, training=False)
        self.compiled_metrics.update_state(y, logits)
        return {**{m.name: m.result() for m in self.metrics}, "student_loss": self.student_loss_fn(y, logits)}


def test_keras2_style_train_step_without_call_and_compiled_metrics():
    keras.utils.set_random_seed(0)
    x, y = _data()
    distiller = OldStyleDistiller(_net(4, "student"), _net(8, "teacher"))
    distiller.compile(optimizer=keras.optimizers.Adam(1e-2), metrics=[keras.metrics.SparseCategoricalAccuracy()],
                      student_loss_fn=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    with pytest.warns(DeprecationWarning, match="compiled_metrics"):
        history = distiller.fit(x, y, epochs=3, batch_size=16, verbose=0)
    assert history.history["student_loss"][-1] < history.history["student_loss"][0]
    with pytest.warns(DeprecationWarning):
        logs = distiller.evaluate(x, y, verbose=0, return_dict=True)
    accuracy = np.mean(np.argmax(keras.to_numpy(distiller.student(x)), axis=1) == y)
    assert logs["sparse_categorical_accuracy"] == pytest.approx(accuracy, abs=1e-6)
    with pytest.raises(NotImplementedError, match="call"):
        distiller.predict(x, verbose=0)


def test_compile_without_loss_still_refused_when_nothing_computes_one():
    model = keras.Sequential([keras.Input((6,)), layers.Dense(3)])
    model.compile(optimizer="adam", metrics=["accuracy"])
    with pytest.raises(ValueError, match="No loss to compute"):
        model.fit(*_data(), verbose=0)


def test_builtin_distiller_gives_the_hand_made_loss():
    """keras.distillation.Distiller(student_loss_weight=alpha, LogitsDistillation(T, KLDivergence())) computes
    the example's alpha * hard + (1 - alpha) * T^2 * KL(teacher || student)."""
    keras.utils.set_random_seed(0)
    x, y = _data()
    teacher, student = _net(16, "teacher"), _net(4, "student")
    hand_made = Distiller(student, teacher)
    hand_made.compile(optimizer="adam", metrics=[], student_loss_fn=keras.losses.SparseCategoricalCrossentropy(
        from_logits=True), distillation_loss_fn=keras.losses.KLDivergence(), alpha=0.1, temperature=4)
    builtin = keras.distillation.Distiller(teacher, student, keras.distillation.LogitsDistillation(temperature=4),
                                           student_loss_weight=0.1)
    builtin.compile(optimizer="adam", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    expected = hand_made.evaluate(x, y, batch_size=len(x), verbose=0, return_dict=True)["loss"]
    assert builtin.evaluate(x, y, batch_size=len(x), verbose=0, return_dict=True)["loss"] == pytest.approx(
        expected, rel=1e-5)
