"""keras.distillation against real Keras 3.15.1 (torch backend): the losses' values, and a Distiller's
logged losses and one SGD step from the same weights (which checks the gradients through the student and
its feature extractor)."""

import json

import numpy as np
import pytest

import dlgpu
from dlgpu import distillation

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")  # Keras's variables on numpy 2

RNG = np.random.default_rng(3)
TEACHER = RNG.normal(size=(6, 5)).astype("f4") * 2
STUDENT = RNG.normal(size=(6, 5)).astype("f4") * 2


def _np(x):
    return np.asarray(x.detach().cpu().numpy() if hasattr(x, "detach") else dlgpu.to_numpy(x))


def _both(keras, name, *args, **kwargs):
    """The same loss object in Keras and dlgpu; string losses stay strings, Loss classes are made in each."""
    def make(mod):
        def resolve(v):
            return getattr(mod.losses, v[1])(**v[2]) if isinstance(v, tuple) else v
        kw = {k: ([resolve(x) for x in v] if isinstance(v, list) else resolve(v)) for k, v in kwargs.items()}
        return getattr(mod.distillation, name)(*args, **kw)
    return make(keras), make(dlgpu)


@pytest.mark.parametrize("kwargs", [
    dict(loss=("cls", "KLDivergence", {})),
    dict(temperature=5.0, loss=("cls", "KLDivergence", {})),
    dict(temperature=2, loss="categorical_crossentropy"),
    dict(loss=("cls", "CategoricalCrossentropy", {"from_logits": True})),
    dict(temperature=1.5, loss="mse"),
])
def test_logits_distillation_values(keras, kwargs):
    k, d = _both(keras, "LogitsDistillation", **kwargs)
    expected = _np(k.compute_loss(TEACHER, STUDENT))
    got = d.compute_loss(dlgpu.Tensor(TEACHER), dlgpu.Tensor(STUDENT))
    np.testing.assert_allclose(_np(got), expected, rtol=1e-5, atol=1e-6)


def test_default_logits_distillation_softmaxes_as_keras_kl_instance(keras):
    """Keras 3.15's default loss="kl_divergence" is a function there, which its isinstance check misses (it
    compares clipped logits); dlgpu applies the documented softmax-and-T² rule to it, giving what Keras gives
    for KLDivergence()."""
    expected = _np(keras.distillation.LogitsDistillation(loss=keras.losses.KLDivergence()).compute_loss(TEACHER,
                                                                                                        STUDENT))
    got = distillation.LogitsDistillation().compute_loss(dlgpu.Tensor(TEACHER), dlgpu.Tensor(STUDENT))
    np.testing.assert_allclose(_np(got), expected, rtol=1e-5)


def test_multi_output_losses_with_a_skipped_output(keras):
    t2, s2 = TEACHER[:, :3], STUDENT[:, :3]
    k = keras.distillation.LogitsDistillation(temperature=2.0, loss=[keras.losses.KLDivergence(), None, "mse"])
    d = distillation.LogitsDistillation(temperature=2.0, loss=[dlgpu.losses.KLDivergence(), None, "mse"])
    expected = _np(k.compute_loss([TEACHER, t2, t2 * 3], [STUDENT, s2, s2]))
    got = d.compute_loss([dlgpu.Tensor(a) for a in (TEACHER, t2, t2 * 3)], [dlgpu.Tensor(a) for a in (STUDENT, s2, s2)])
    np.testing.assert_allclose(_np(got), expected, rtol=1e-5)


@pytest.mark.parametrize("loss", ["mse", "mae", "cosine_similarity", ["mse", None], {"a": "mae", "b": "mse"}])
def test_feature_distillation_values(keras, loss):
    if isinstance(loss, list):
        teacher, student = [TEACHER, TEACHER.T], [STUDENT, STUDENT.T]
    elif isinstance(loss, dict):
        teacher, student = {"a": TEACHER, "b": TEACHER[:2]}, {"a": STUDENT, "b": STUDENT[:2]}
    else:
        teacher, student = TEACHER, STUDENT
    expected = _np(keras.distillation.FeatureDistillation(loss=loss).compute_loss(teacher, student))
    got = distillation.FeatureDistillation(loss=loss).compute_loss(
        dlgpu.tree.map_structure(dlgpu.Tensor, teacher), dlgpu.tree.map_structure(dlgpu.Tensor, student))
    np.testing.assert_allclose(_np(got), expected, rtol=1e-5, atol=1e-6)


def test_loss_configs_load_in_each_other(keras):
    for name, kwargs in (("LogitsDistillation", {"temperature": 4.0, "loss": "categorical_crossentropy"}),
                         ("FeatureDistillation", {"loss": ["mse", None], "teacher_layer_name": "a",
                                                  "student_layer_name": "b"})):
        ours = getattr(distillation, name)(**kwargs)
        theirs = getattr(keras.distillation, name)(**kwargs)
        ours_config = json.loads(json.dumps(ours.get_config()))
        back = getattr(keras.distillation, name).from_config(ours_config)
        again = getattr(distillation, name).from_config(json.loads(json.dumps(theirs.get_config())))
        assert set(ours_config) == set(theirs.get_config())
        for obj in (back, again):
            for key in set(kwargs) - {"loss"}:
                assert getattr(obj, key) == kwargs[key]
        assert (again.loss[1] is None) if isinstance(kwargs["loss"], list) else again.loss is not None


def _pair(mod, width, prefix):
    return mod.Sequential([mod.Input((5,)), mod.layers.Dense(width, activation="tanh", name=f"{prefix}_hidden"),
                           mod.layers.Dense(4, name=f"{prefix}_out")], name=prefix)


def _distillers(keras, student_loss_weight):
    built = {}
    for mod in (keras, dlgpu):
        teacher, student = _pair(mod, 6, "teacher"), _pair(mod, 6, "student")
        built[mod] = (teacher, student)
    for k_model, d_model in zip(built[keras], built[dlgpu]):
        d_model.set_weights([w * 0 + RNG.normal(size=w.shape).astype("f4") for w in d_model.get_weights()])
        k_model.set_weights(d_model.get_weights())
    out = []
    for mod in (keras, dlgpu):
        teacher, student = built[mod]
        d = mod.distillation.Distiller(
            teacher, student,
            [mod.distillation.LogitsDistillation(temperature=2.0, loss=mod.losses.KLDivergence()),
             mod.distillation.FeatureDistillation(loss="mse", teacher_layer_name="teacher_hidden",
                                                  student_layer_name="student_hidden")],
            distillation_loss_weights=[1.0, 0.25], student_loss_weight=student_loss_weight)
        d.compile(optimizer=mod.optimizers.SGD(0.1),
                  loss=mod.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
        out.append(d)
    return out


@pytest.mark.parametrize("student_loss_weight", [0.0, 0.3, 1.0])
def test_distiller_logs_and_one_step_match_keras(keras, student_loss_weight):
    x = RNG.normal(size=(12, 5)).astype("f4")
    y = RNG.integers(0, 4, 12)
    k, d = _distillers(keras, student_loss_weight)
    k_logs = k.evaluate(x, y, batch_size=12, verbose=0, return_dict=True)
    d_logs = d.evaluate(x, y, batch_size=12, verbose=0, return_dict=True)
    assert set(d_logs) == set(k_logs)
    for key in k_logs:
        assert d_logs[key] == pytest.approx(k_logs[key], rel=1e-5, abs=1e-6), key
    k.fit(x, y, batch_size=12, epochs=1, shuffle=False, verbose=0)
    d.fit(x, y, batch_size=12, epochs=1, shuffle=False, verbose=0)
    for kw, dw in zip(k.student.get_weights(), d.student.get_weights()):
        np.testing.assert_allclose(dw, kw, rtol=1e-4, atol=1e-6)
    for kw, dw in zip(k.teacher.get_weights(), d.teacher.get_weights()):
        np.testing.assert_array_equal(dw, kw)
    np.testing.assert_allclose(d.predict(x, verbose=0), _np(k.predict(x, verbose=0)), rtol=1e-4, atol=1e-5)


def test_keras_distiller_config_builds_a_dlgpu_distiller(keras):
    k, _ = _distillers(keras, 0.4)
    config = json.loads(json.dumps(k.get_config()))
    d = distillation.Distiller.from_config(config)
    assert d.student_loss_weight == 0.4 and d.distillation_loss_weights == [1.0, 0.25]
    assert [type(loss).__name__ for loss in d.distillation_losses] == ["LogitsDistillation", "FeatureDistillation"]
    assert d.distillation_losses[1].teacher_layer_name == "teacher_hidden"
    assert not d.teacher.trainable and d.student.trainable
    d.teacher.set_weights(k.teacher.get_weights())
    d.student.set_weights(k.student.get_weights())
    x = RNG.normal(size=(3, 5)).astype("f4")
    np.testing.assert_allclose(d.predict(x, verbose=0), _np(k.predict(x, verbose=0)), rtol=1e-5, atol=1e-6)
