"""dlgpu.distillation: a Distiller trained with fit (the student learns, the teacher stays as it was),
evaluate/predict, config and save/load, and the errors Keras raises for bad arguments.  Values against
Keras: tests/keras_reference/test_distillation_keras.py."""

import json
import warnings

import numpy as np
import pytest

import dlgpu as keras
from dlgpu import layers
from dlgpu.distillation import DistillationLoss, Distiller, FeatureDistillation, LogitsDistillation


def _data(n=64, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 6)).astype(np.float32)
    return x, np.argmax(x[:, :3] + 0.5 * x[:, 3:], axis=1)


def _net(width, prefix, classes=3):
    return keras.Sequential([keras.Input((6,)), layers.Dense(width, activation="relu", name=f"{prefix}_hidden"),
                             layers.Dense(classes, name=f"{prefix}_out")], name=prefix)


@pytest.fixture(scope="module")
def teacher():
    keras.utils.set_random_seed(1)
    x, y = _data(256, seed=1)
    model = _net(32, "teacher")
    model.compile(keras.optimizers.Adam(1e-2), keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    model.fit(x, y, epochs=15, batch_size=32, verbose=0)
    return model


def _fresh_teacher(teacher):
    """A copy, since a Distiller freezes the teacher it is given."""
    copy = _net(32, "teacher")
    copy.set_weights(teacher.get_weights())
    return copy


def _kl(teacher_logits, student_logits, temperature):
    def softmax(z):
        e = np.exp(z - z.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)
    p, q = softmax(teacher_logits / temperature), softmax(student_logits / temperature)
    q = np.clip(q, 1e-7, 1)
    return np.mean(np.sum(p * np.log(np.clip(p, 1e-7, 1) / q), axis=1)) * temperature ** 2


def test_fit_distills_the_teacher_into_the_student_and_leaves_the_teacher_alone(teacher):
    keras.utils.set_random_seed(0)
    x, y = _data()
    frozen = _fresh_teacher(teacher)
    before_teacher = [w.copy() for w in frozen.get_weights()]
    student = _net(8, "student")
    distiller = Distiller(frozen, student, LogitsDistillation(temperature=3.0), student_loss_weight=0.2)
    assert not frozen.trainable and student.trainable
    assert {id(v) for v in distiller.trainable_weights} == {id(v) for v in student.trainable_weights}
    distiller.compile(optimizer=keras.optimizers.Adam(1e-2),
                      loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
    kl_before = _kl(keras.to_numpy(frozen(x)), keras.to_numpy(student(x)), 3.0)
    logs = distiller.evaluate(x, y, batch_size=len(x), verbose=0, return_dict=True)
    assert logs["distillation_loss"] == pytest.approx(kl_before, rel=1e-4)
    history = distiller.fit(x, y, epochs=12, batch_size=16, verbose=0, validation_data=(x[:16], y[:16]))
    assert set(history.history) == {"loss", "accuracy", "student_loss", "distillation_loss", "total_loss",
                                    "val_loss", "val_accuracy", "val_student_loss", "val_distillation_loss",
                                    "val_total_loss"}
    assert history.history["loss"] == pytest.approx(history.history["total_loss"], rel=1e-5)
    kl_after = _kl(keras.to_numpy(frozen(x)), keras.to_numpy(student(x)), 3.0)
    assert kl_after < 0.5 * kl_before
    for before, after in zip(before_teacher, frozen.get_weights()):
        np.testing.assert_array_equal(before, after)
    student_accuracy = np.mean(np.argmax(keras.to_numpy(student(x)), axis=1) == y)
    assert student_accuracy > 0.7
    # evaluate: loss, the compiled metric, then the three trackers (Keras's order); predict is the student's
    results = distiller.evaluate(x, y, batch_size=len(x), verbose=0)
    assert len(results) == 5 and results[1] == pytest.approx(student_accuracy, abs=1e-6)
    np.testing.assert_allclose(distiller.predict(x, verbose=0), keras.to_numpy(student(x)), rtol=1e-6)


def test_total_loss_is_the_weighted_mix(teacher):
    x, y = _data(20)
    losses = [LogitsDistillation(temperature=2.0), FeatureDistillation("mse", "teacher_hidden", "student_hidden")]
    # the feature loss compares the hidden layers element by element, so the student's is as wide
    student = _net(32, "student")
    distiller = Distiller(_fresh_teacher(teacher), student, losses, distillation_loss_weights=[0.7, 0.2],
                          student_loss_weight=0.4)
    distiller.compile(optimizer="sgd", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    logs = distiller.evaluate(x, y, batch_size=len(x), verbose=0, return_dict=True)
    t_hidden = keras.to_numpy(distiller._teacher_feature_extractor(x)["teacher_hidden"])
    s_hidden = keras.to_numpy(distiller._student_feature_extractor(x)["student_hidden"])
    t_out, s_out = keras.to_numpy(distiller.teacher(x)), keras.to_numpy(student(x))
    distill = 0.7 * _kl(t_out, s_out, 2.0) + 0.2 * np.mean((t_hidden - s_hidden) ** 2)
    log_p = s_out - s_out.max(1, keepdims=True)
    log_p -= np.log(np.exp(log_p).sum(1, keepdims=True))
    hard = -np.mean(log_p[np.arange(len(y)), y])
    assert logs["distillation_loss"] == pytest.approx(distill, rel=1e-4)
    assert logs["student_loss"] == pytest.approx(hard, rel=1e-5)
    assert logs["loss"] == pytest.approx(0.4 * hard + 0.6 * distill, rel=1e-4)
    assert len(distiller._teacher_feature_extractor.outputs) == 2


def test_sample_weight_weights_the_student_loss(teacher):
    x, y = _data(8)
    weights = np.array([1, 0, 0, 2, 1, 0, 1, 3], np.float32)
    distiller = Distiller(_fresh_teacher(teacher), _net(8, "student"), LogitsDistillation(), student_loss_weight=1.0)
    distiller.compile(loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    logs = distiller.evaluate(x, y, sample_weight=weights, batch_size=8, verbose=0, return_dict=True)
    per_sample = keras.to_numpy(keras.losses.sparse_categorical_crossentropy(y, distiller.student(x),
                                                                             from_logits=True))
    assert logs["student_loss"] == pytest.approx(np.sum(per_sample * weights) / len(y), rel=1e-5)
    assert logs["distillation_loss"] == 0.0


class SubclassedStudent(keras.Model):
    def __init__(self):
        super().__init__()
        self.hidden = layers.Dense(8, activation="relu")
        self.out = layers.Dense(3)

    def call(self, inputs, training=None):
        return self.out(self.hidden(inputs))


def test_subclassed_student_with_logits_distillation_trains(teacher):
    x, y = _data(32)
    student = SubclassedStudent()
    distiller = Distiller(_fresh_teacher(teacher), student, LogitsDistillation(temperature=2.0))
    distiller.compile(optimizer=keras.optimizers.Adam(1e-2), loss="sparse_categorical_crossentropy")
    history = distiller.fit(x, y, epochs=5, batch_size=8, verbose=0)
    assert history.history["distillation_loss"][-1] < history.history["distillation_loss"][0]
    with pytest.raises(ValueError, match="requires Functional or Sequential models. The student"):
        Distiller(_fresh_teacher(teacher), SubclassedStudent(),
                  FeatureDistillation(teacher_layer_name="teacher_hidden", student_layer_name="x"))


@pytest.mark.parametrize("suffix", [".dlgpu", ".keras"])
def test_config_round_trip_and_save_load(teacher, tmp_path, suffix):
    x, y = _data(16)
    distiller = Distiller(_fresh_teacher(teacher), _net(32, "student"),
                          [LogitsDistillation(temperature=4.0, loss="categorical_crossentropy"),
                           FeatureDistillation(loss=keras.losses.MeanAbsoluteError(),
                                               teacher_layer_name="teacher_hidden",
                                               student_layer_name="student_hidden")],
                          distillation_loss_weights=[1.0, 0.5], student_loss_weight=0.7)
    distiller.compile(optimizer=keras.optimizers.Adam(1e-2), loss="sparse_categorical_crossentropy",
                      metrics=["accuracy"])
    distiller.fit(x, y, epochs=1, batch_size=8, verbose=0)
    config = json.loads(json.dumps(distiller.get_config()))
    assert set(config) >= {"teacher", "student", "distillation_losses", "distillation_loss_weights",
                           "student_loss_weight"}
    rebuilt = Distiller.from_config(config)
    assert rebuilt.student_loss_weight == 0.7 and rebuilt.distillation_loss_weights == [1.0, 0.5]
    assert rebuilt.distillation_losses[0].temperature == 4.0
    assert isinstance(rebuilt.distillation_losses[1].loss, keras.losses.MeanAbsoluteError)
    path = tmp_path / f"distiller{suffix}"
    distiller.save(path)  # .keras: Keras's layout, the teacher and student under their attribute names
    loaded = keras.models.load_model(path)
    assert type(loaded) is Distiller and loaded.compiled
    assert not loaded.teacher.trainable
    np.testing.assert_allclose(loaded.predict(x, verbose=0), distiller.predict(x, verbose=0), rtol=1e-6)
    for a, b in zip(loaded.teacher.get_weights(), distiller.teacher.get_weights()):
        np.testing.assert_array_equal(a, b)
    expected = distiller.evaluate(x, y, verbose=0, return_dict=True)
    got = loaded.evaluate(x, y, verbose=0, return_dict=True)
    assert got == pytest.approx(expected, rel=1e-5)
    loaded.fit(x, y, epochs=1, verbose=0)  # the optimizer state came back and training goes on


def test_custom_distillation_loss(teacher):
    class MeanGap(DistillationLoss):
        def compute_loss(self, teacher_outputs, student_outputs, **kwargs):
            return keras.ops.mean(keras.ops.abs(teacher_outputs - student_outputs))

    class NotScalar(DistillationLoss):
        def compute_loss(self, teacher_outputs, student_outputs, **kwargs):
            return teacher_outputs - student_outputs

    x, y = _data(16)
    distiller = Distiller(_fresh_teacher(teacher), _net(8, "student"), MeanGap(), student_loss_weight=0.0)
    distiller.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    logs = distiller.evaluate(x, y, batch_size=16, verbose=0, return_dict=True)
    gap = np.mean(np.abs(keras.to_numpy(distiller.teacher(x)) - keras.to_numpy(distiller.student(x))))
    assert logs["loss"] == pytest.approx(gap, rel=1e-5)
    bad = Distiller(_fresh_teacher(teacher), _net(8, "student"), NotScalar())
    bad.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    with pytest.raises(ValueError, match="NotScalar returned a non-scalar loss"):
        bad.fit(x, y, verbose=0)
    with pytest.raises(NotImplementedError, match="compute_loss"):
        DistillationLoss().compute_loss(x, x)


def test_bad_arguments_are_refused(teacher):
    student = _net(8, "student")
    losses = LogitsDistillation()
    with pytest.raises(ValueError, match="Teacher must be a keras.Model"):
        Distiller("not a model", student, losses)
    with pytest.raises(ValueError, match="Student must be a keras.Model"):
        Distiller(_fresh_teacher(teacher), layers.Dense(3), losses)
    with pytest.raises(ValueError, match="between 0.0 and 1.0"):
        Distiller(_fresh_teacher(teacher), student, losses, student_loss_weight=1.5)
    with pytest.raises(ValueError, match="cannot be `None`"):
        Distiller(_fresh_teacher(teacher), student, None)
    with pytest.raises(ValueError, match=r"distillation_loss_weights \(1\) must match .* \(2\)"):
        Distiller(_fresh_teacher(teacher), student, [losses, losses], distillation_loss_weights=[1.0])
    with pytest.raises(ValueError, match="output shapes are incompatible"):
        Distiller(_fresh_teacher(teacher), _net(8, "student", classes=5), losses)
    with pytest.raises(ValueError, match="In teacher model: No such layer: nope"):
        Distiller(_fresh_teacher(teacher), student, FeatureDistillation(teacher_layer_name="nope"))
    with pytest.raises(ValueError, match="must be a DistillationLoss"):
        Distiller(_fresh_teacher(teacher), student, "kl_divergence")
    with pytest.raises(ValueError, match="temperature must be positive"):
        LogitsDistillation(temperature=0)
    with pytest.raises(ValueError, match="temperature must be a number"):
        LogitsDistillation(temperature="3")
    with pytest.raises(ValueError, match="at least one non-`None`"):
        FeatureDistillation(loss=[None, None])
    with pytest.raises(ValueError, match="Unknown loss"):
        LogitsDistillation(loss="no_such_loss")
    distiller = Distiller(_fresh_teacher(teacher), student, losses)
    with pytest.raises(ValueError, match="'loss' cannot be `None`"):
        distiller.compile(optimizer="adam")
    with pytest.raises(ValueError, match="metrics must be a list or tuple"):
        distiller.compile(optimizer="adam", loss="mse", metrics="accuracy")
    with pytest.raises(ValueError, match="Loss structure mismatch"):
        FeatureDistillation(loss=["mse", "mse"]).validate_outputs(np.zeros((2, 3)), np.zeros((2, 3)))
    with pytest.raises(ValueError):
        LogitsDistillation().validate_outputs(np.zeros((2, 3)), {"a": np.zeros((2, 3))})


def test_batch_of_one_and_reset_metrics(teacher):
    x, y = _data(1)
    distiller = Distiller(_fresh_teacher(teacher), _net(4, "student"), LogitsDistillation())
    distiller.compile(optimizer="adam", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    logs = distiller.fit(x, y, batch_size=1, epochs=2, verbose=0).history
    assert all(np.isfinite(v[-1]) for v in logs.values())
    distiller.reset_metrics()
    assert float(distiller.total_loss_tracker.result()) == 0.0


def _distill_on(device, teacher_weights, student_weights, x, y):
    with keras.device(device):
        teacher, student = _net(32, "teacher"), _net(32, "student")
        teacher.set_weights(teacher_weights)
        student.set_weights(student_weights)
        distiller = Distiller(teacher, student, [LogitsDistillation(temperature=2.0),
                                                 FeatureDistillation("mse", "teacher_hidden", "student_hidden")],
                              student_loss_weight=0.3)
        distiller.compile(optimizer=keras.optimizers.SGD(0.1),
                          loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        logs = distiller.evaluate(x, y, batch_size=len(x), verbose=0, return_dict=True)
        distiller.fit(x, y, batch_size=len(x), epochs=1, shuffle=False, verbose=0)
        return logs, student.get_weights(), teacher.get_weights()


@pytest.mark.gpu
def test_distiller_on_gpu_matches_cpu(teacher):
    x, y = _data(32)
    student_weights = _net(32, "student").get_weights()
    cpu = _distill_on("cpu", teacher.get_weights(), student_weights, x, y)
    gpu = _distill_on("gpu", teacher.get_weights(), student_weights, x, y)
    assert gpu[0] == pytest.approx(cpu[0], rel=1e-4)
    for on_gpu, on_cpu in zip(gpu[1] + gpu[2], cpu[1] + cpu[2]):
        np.testing.assert_allclose(on_gpu, on_cpu, rtol=1e-4, atol=1e-5)
