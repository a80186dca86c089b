"""dlgpu.wrappers: scikit-learn's own estimator checks (skipping what Keras's wrappers/sklearn_test.py
skips), Pipelines, cross_val_score, clone, get_params/set_params, a compiled Model as `model`, warm_start,
metadata routing, and the error without scikit-learn."""

import subprocess
import sys

import numpy as np
import pytest

import dlgpu as keras

sklearn = pytest.importorskip("sklearn", reason="scikit-learn is not installed: pip install scikit-learn")

from sklearn.base import clone  # noqa: E402
from sklearn.linear_model import LogisticRegression  # noqa: E402
from sklearn.model_selection import cross_val_score  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402
from sklearn.utils.estimator_checks import parametrize_with_checks  # noqa: E402

from dlgpu.wrappers import SKLearnClassifier, SKLearnRegressor, SKLearnTransformer  # noqa: E402


class _DynamicModel:
    """Keras's test model function: an MLP sized from X and y (y one-hot for a classifier).  A callable
    object so that its repr, which names the parametrized checks, is the same in every pytest-xdist
    worker (a function's repr holds its address)."""

    def __repr__(self):
        return "dynamic_model"

    def __call__(self, X, y, **kwargs):
        return _dynamic_model(X, y, **kwargs)


def _dynamic_model(X, y, loss, out_activation_function="softmax", layers=[10], learning_rate=0.001):
    inp = keras.Input(shape=(X.shape[1],))
    hidden = inp
    for size in layers:
        hidden = keras.layers.Dense(size, activation="relu")(hidden)
    n_outputs = y.shape[1] if len(y.shape) > 1 else 1
    out = [keras.layers.Dense(n_outputs, activation=out_activation_function)(hidden)]
    model = keras.Model(inp, out)
    model.compile(loss=loss, optimizer=keras.optimizers.RMSprop(learning_rate))
    return model


dynamic_model = _DynamicModel()


# Keras 3.15's keras/src/wrappers/sklearn_test.py list, less the checks dlgpu passes (with scikit-learn
# 1.6+: the parameters, a regression target, a zero sample weight); each check starts from one seed.
EXPECTED_FAILED_CHECKS = {
    "SKLearnClassifier": {
        "check_classifiers_classes": "with small test cases the estimator returns not all classes sometimes",
        "check_classifier_data_not_an_array": "This test assumes reproducibility in fit.",
        "check_supervised_y_2d": "This test assumes reproducibility in fit.",
        "check_fit_idempotent": "This test assumes reproducibility in fit.",
        "check_classifiers_train": "decision_function can return both probabilities and logits",
    },
    "SKLearnRegressor": {},
    "SKLearnTransformer": {},
}


@parametrize_with_checks(
    [SKLearnClassifier(model=dynamic_model, model_kwargs={"loss": "categorical_crossentropy", "layers": [20, 20, 20]},
                       fit_kwargs={"epochs": 5, "verbose": 0}),
     SKLearnRegressor(model=dynamic_model, model_kwargs={"loss": "mse"}, fit_kwargs={"verbose": 0}),
     SKLearnTransformer(model=dynamic_model, model_kwargs={"loss": "mse"}, fit_kwargs={"verbose": 0})],
    expected_failed_checks=lambda estimator: EXPECTED_FAILED_CHECKS[type(estimator).__name__])
def test_sklearn_estimator_checks(estimator, check):
    keras.utils.set_random_seed(0)  # the checks train small models: the same weights whatever ran before
    check(estimator)


@pytest.mark.parametrize("activation", ["softmax", "linear"])
def test_decision_function_argmax_is_predict(activation):
    X, y = sklearn.datasets.make_classification(n_samples=10, n_features=10, n_informative=4, n_classes=2,
                                                random_state=42)
    estimator = SKLearnClassifier(model=dynamic_model, model_kwargs={"out_activation_function": activation,
                                                                     "loss": "binary_crossentropy"},
                                  fit_kwargs={"epochs": 1, "verbose": 0}).fit(X, y)
    np.testing.assert_array_equal(estimator.decision_function(X).argmax(axis=-1), estimator.predict(X))
    if activation == "linear":
        with pytest.raises(ValueError, match="not probabilities"):
            estimator.predict_proba(X)


def _blobs(n=120, seed=0):
    X, y = sklearn.datasets.make_blobs(n_samples=n, centers=3, n_features=4, cluster_std=1.0, random_state=seed)
    return X * 5 + 20, y  # far from zero-mean: the scaler in the pipeline matters


CLASSIFIER_KWARGS = dict(model=dynamic_model, model_kwargs={"loss": "categorical_crossentropy", "layers": [16],
                                                            "learning_rate": 0.05},
                         fit_kwargs={"epochs": 30, "batch_size": 16, "verbose": 0})


def test_classifier_in_a_pipeline_and_cross_val_score():
    keras.utils.set_random_seed(0)
    X, y = _blobs()
    labels = np.array(["ant", "bee", "cat"])[y]  # string labels come back as strings
    pipe = make_pipeline(StandardScaler(), SKLearnClassifier(**CLASSIFIER_KWARGS))
    pipe.fit(X, labels)
    classifier = pipe[-1]
    assert list(classifier.classes_) == ["ant", "bee", "cat"]
    assert classifier.n_features_in_ == 4 and classifier.epoch_ == 30
    assert set(classifier.history_) == {"loss"}
    assert classifier.history_["loss"][-1] < classifier.history_["loss"][0]
    predicted = pipe.predict(X)
    assert predicted.dtype.kind == "U" and pipe.score(X, labels) > 0.9
    proba = pipe.predict_proba(X)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-5)
    np.testing.assert_array_equal(classifier.classes_[proba.argmax(axis=1)], predicted)
    scores = cross_val_score(make_pipeline(StandardScaler(), SKLearnClassifier(**CLASSIFIER_KWARGS)), X, y, cv=3)
    assert scores.shape == (3,) and scores.min() > 0.85  # cloned for each fold with fit_kwargs (epochs) kept


def test_regressor_learns_a_linear_target():
    keras.utils.set_random_seed(1)
    rng = np.random.default_rng(1)
    X = rng.normal(size=(200, 3))
    y = X @ np.array([1.5, -2.0, 0.5]) + 0.3
    regressor = SKLearnRegressor(model=dynamic_model, model_kwargs={"loss": "mse", "out_activation_function": "linear",
                                                                    "layers": [], "learning_rate": 0.05},
                                 fit_kwargs={"epochs": 40, "batch_size": 32, "verbose": 0})
    regressor.fit(X, y)
    assert regressor.predict(X).shape == (200,)
    assert regressor.score(X, y) > 0.99
    weights = regressor.model_.get_weights()
    np.testing.assert_allclose(weights[0][:, 0], [1.5, -2.0, 0.5], atol=0.05)


def test_transformer_feeds_the_next_pipeline_step():
    keras.utils.set_random_seed(2)
    X, y = _blobs(90, seed=2)
    embed = SKLearnTransformer(model=dynamic_model, model_kwargs={"loss": "categorical_crossentropy",
                                                                  "layers": [8], "learning_rate": 0.05},
                               fit_kwargs={"epochs": 20, "verbose": 0})
    pipe = make_pipeline(StandardScaler(), embed, LogisticRegression())
    pipe.fit(X, y)
    features = pipe[:-1].transform(X)
    assert features.shape == (90, 1)  # the model's output width (y is 1-D here)
    np.testing.assert_allclose(features, pipe[1].model_.predict(pipe[0].transform(X), verbose=0), rtol=1e-6)
    # fit_transform (TransformerMixin): a fresh fit, then the outputs of the model it trained
    scaled = pipe[0].transform(X)
    again = pipe[1].fit_transform(scaled, y)
    np.testing.assert_allclose(again, pipe[1].model_.predict(scaled, verbose=0), rtol=1e-6)


def test_get_params_set_params_and_clone():
    estimator = SKLearnClassifier(**CLASSIFIER_KWARGS)
    params = estimator.get_params()
    assert {"model", "warm_start", "model_kwargs", "fit_kwargs"} <= set(params)
    copy = clone(estimator)
    assert copy.model is estimator.model and copy.fit_kwargs == estimator.fit_kwargs
    assert copy.fit_kwargs is not estimator.fit_kwargs and copy.model_kwargs is not estimator.model_kwargs
    copy.set_params(fit_kwargs={"epochs": 2, "verbose": 0}, warm_start=True)
    assert copy.warm_start and copy.fit_kwargs["epochs"] == 2 and estimator.fit_kwargs["epochs"] == 30
    X, y = _blobs(30)
    copy.fit(X, y, epochs=1)
    assert copy.epoch_ == 1 and copy.fit_kwargs == {"epochs": 2, "verbose": 0}  # fit's kwargs win, not stored
    assert not hasattr(clone(copy), "model_")


def test_compiled_model_is_cloned_and_warm_start_continues():
    keras.utils.set_random_seed(3)
    X, y = _blobs(60)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, activation="softmax")])
    model.compile(optimizer=keras.optimizers.Adam(0.05), loss="categorical_crossentropy")
    before = [w.copy() for w in model.get_weights()]
    estimator = SKLearnClassifier(model=model, fit_kwargs={"epochs": 2, "verbose": 0}).fit(X, y)
    assert estimator.model_ is not model and float(estimator.model_.optimizer.learning_rate) == pytest.approx(0.05)
    for a, b in zip(before, model.get_weights()):
        np.testing.assert_array_equal(a, b)  # the given model is a template, untouched
    warm = SKLearnClassifier(model=model, warm_start=True, fit_kwargs={"epochs": 2, "verbose": 0}).fit(X, y)
    first_model, first_loss = warm.model_, warm.history_["loss"][-1]
    warm.fit(X, y)
    assert warm.model_ is first_model
    assert warm.history_["loss"][0] <= first_loss * 1.05  # picks up where the first fit stopped
    cold = SKLearnClassifier(model=model, fit_kwargs={"epochs": 2, "verbose": 0}).fit(X, y)
    first_cold = cold.model_
    assert cold.fit(X, y).model_ is not first_cold  # without warm_start each fit starts from a fresh clone


def test_fit_request_routes_sample_weight_to_model_fit():
    X, y = _blobs(60)
    weights = np.where(y == 0, 0.0, 1.0)
    with sklearn.config_context(enable_metadata_routing=True):
        estimator = SKLearnClassifier(**CLASSIFIER_KWARGS).set_fit_request(sample_weight=True)
        estimator.set_score_request(sample_weight=False)
        scores = cross_val_score(estimator, X, y, cv=2, params={"sample_weight": weights})
        assert scores.shape == (2,)
    with pytest.raises(RuntimeError, match="metadata routing"):
        SKLearnClassifier(**CLASSIFIER_KWARGS).set_fit_request(sample_weight=True)


def test_bad_models_and_targets_are_refused():
    X, y = _blobs(20)
    uncompiled = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
    with pytest.raises(RuntimeError, match="needs to be compiled"):
        SKLearnClassifier(model=uncompiled).fit(X, y)
    with pytest.raises(TypeError, match="must be a compiled dlgpu Model or a function"):
        SKLearnRegressor(model="mlp").fit(X, y.astype(float))
    with pytest.raises(TypeError, match="must be a dlgpu Model"):
        SKLearnRegressor(model=lambda X, y: "not a model").fit(X, y.astype(float))
    with pytest.raises(ValueError, match="Only binary and multiclass"):
        SKLearnClassifier(**CLASSIFIER_KWARGS).fit(X, np.linspace(0, 1, 20))
    with pytest.raises(ValueError, match="only one class"):
        SKLearnClassifier(**CLASSIFIER_KWARGS).fit(X, np.zeros(20, int))
    with pytest.raises(sklearn.exceptions.NotFittedError):
        SKLearnClassifier(**CLASSIFIER_KWARGS).predict(X)


def test_import_dlgpu_needs_no_sklearn_and_the_error_names_the_install():
    code = ("import sys; sys.modules['sklearn'] = None\n"
            "import dlgpu\n"
            "assert 'sklearn' not in [m for m in sys.modules if sys.modules[m] is not None]\n"
            "assert 'matplotlib' not in sys.modules\n"
            "try:\n"
            "    dlgpu.wrappers.SKLearnClassifier(model=None)\n"
            "except ImportError as e:\n"
            "    print(e)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         env={**__import__("os").environ, "DLGPU_DEVICE": "cpu"})
    assert out.returncode == 0, out.stderr
    assert "SKLearnClassifier requires `scikit-learn`" in out.stdout and "pip install scikit-learn" in out.stdout
