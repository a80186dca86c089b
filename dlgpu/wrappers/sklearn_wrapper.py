"""keras.wrappers: scikit-learn estimators around a dlgpu model (SKLearnClassifier, SKLearnRegressor,
SKLearnTransformer), as Keras 3.15's.

scikit-learn is optional (``pip install scikit-learn``, or ``pip install 'dlgpu[sklearn]'``): without it the
classes exist, and making one says how to install it.  Where Keras 3.15's code falls short of its own
documentation, dlgpu follows the documentation, and says so below: a compiled Model given as ``model`` is
cloned *and compiled like the original* (Keras's clone is uncompiled, so fit refuses it); ``warm_start=True``
keeps training the fitted model (Keras stores the flag and ignores it); sklearn's ``clone`` keeps
``fit_kwargs`` (Keras's drops them, so cross_val_score forgot e.g. ``epochs``); ``fit`` does not write
its keyword arguments into ``fit_kwargs``.
"""

from __future__ import annotations

import copy

import numpy as np

try:
    import sklearn
    from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin, TransformerMixin
except ImportError:  # the classes still exist; making one raises assert_sklearn_installed's error
    sklearn = None

    class BaseEstimator:
        pass

    class ClassifierMixin:
        pass

    class RegressorMixin:
        pass

    class TransformerMixin:
        pass


def assert_sklearn_installed(symbol_name):
    if sklearn is None:
        raise ImportError(f"{symbol_name} requires `scikit-learn` to be installed. Run `pip install scikit-learn` "
                          f"(or `pip install 'dlgpu[sklearn]'`) to install it.")


def _validate_data(estimator, *args, **kwargs):
    """sklearn.utils.validation.validate_data (scikit-learn >= 1.6), else the older method."""
    try:
        from sklearn.utils.validation import validate_data
    except ImportError:
        return estimator._validate_data(*args, **kwargs)
    return validate_data(estimator, *args, **kwargs)


def _type_of_target(y):
    from sklearn.utils.multiclass import type_of_target
    target_type = type_of_target(y)
    if target_type == "unknown":
        raise ValueError(f"Unknown label type for data: {y!r}")
    return target_type


def _routing_enabled():
    return bool(sklearn is not None and sklearn.get_config().get("enable_metadata_routing", False))


def _check_model(model):
    from dlgpu.models.model import Model
    if not isinstance(model, Model):
        raise TypeError(f"The scikit-learn wrapper's `model` must be a dlgpu Model or a function returning one; "
                        f"it gave {type(model).__name__}")
    if not model.compiled or model._loss_fns is None or model.optimizer is None:
        raise RuntimeError("Given model needs to be compiled, and have a loss and an optimizer.")


class TargetReshaper(TransformerMixin, BaseEstimator):
    """1-D targets as a column for the model (and OneHotEncoder), and back to 1-D for predict."""

    def fit(self, y):
        self.ndim_ = y.ndim
        return self

    def transform(self, y):
        return y.reshape(-1, 1) if y.ndim == 1 else y

    def inverse_transform(self, y):
        from sklearn.utils.validation import check_is_fitted
        check_is_fitted(self)
        return np.squeeze(y, axis=1) if self.ndim_ == 1 and y.ndim == 2 else y


class SKLBase(BaseEstimator):
    """Base of the scikit-learn wrappers.

    ``model``: a compiled Model (cloned, and compiled the same way, at each fit unless ``warm_start``), or
    a function ``model(X=..., y=..., **model_kwargs)`` returning a compiled Model (``y`` as the model will
    see it: one-hot for a classifier, a column for 1-D regression targets).  ``fit_kwargs`` go to
    ``model.fit`` (``epochs``, ``batch_size``, ``verbose`` ...); those given to ``fit`` itself win.
    Attributes after fit: ``model_``, ``history_`` (the History's ``history`` dict), ``n_features_in_``."""

    def __init__(self, model, warm_start=False, model_kwargs=None, fit_kwargs=None):
        assert_sklearn_installed(type(self).__name__)
        self.model = model
        self.warm_start = warm_start
        self.model_kwargs = model_kwargs
        self.fit_kwargs = fit_kwargs

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.non_deterministic = True
        return tags

    def __sklearn_clone__(self):
        # the model (a function, or a Model that fit clones anyway) is shared, not deep-copied
        params = self.get_params(deep=False)
        return type(self)(**{k: (copy.copy(v) if isinstance(v, dict) else v) for k, v in params.items()})

    @property
    def epoch_(self):
        """The number of epochs trained so far by the last fit."""
        history = getattr(self, "history_", None) or {}
        return len(next(iter(history.values()), []))

    def set_fit_request(self, **kwargs):
        """Which metadata (e.g. ``sample_weight=True``) a meta-estimator routes to ``fit`` (and from there
        to model.fit), with scikit-learn's metadata routing enabled."""
        if not _routing_enabled():
            raise RuntimeError("This method is only available when metadata routing is enabled. You can enable it "
                               "using sklearn.set_config(enable_metadata_routing=True).")
        from sklearn.utils.metadata_routing import MetadataRequest
        request = getattr(self, "_metadata_request", None)
        if not isinstance(request, MetadataRequest):
            request = MetadataRequest(owner=type(self).__name__)
        for param, alias in kwargs.items():
            request.fit.add_request(param=param, alias=alias)
        self._metadata_request = request
        return self

    def _get_model(self, X, y):
        from dlgpu.models.model import Model
        if self.warm_start and hasattr(self, "model_"):
            return self.model_
        if isinstance(self.model, Model):
            from dlgpu.models.cloning import clone_model
            _check_model(self.model)
            clone = clone_model(self.model)
            clone.compile_from_config(self.model.get_compile_config())
            return clone
        if not callable(self.model):
            raise TypeError(f"{type(self).__name__}: `model` must be a compiled dlgpu Model or a function returning "
                            f"one; received {type(self.model).__name__}")
        return self.model(X=X, y=y, **(self.model_kwargs or {}))

    def fit(self, X, y, **kwargs):
        """Fit the model to ``X`` (n_samples, n_features) and ``y``; ``kwargs`` go to ``model.fit``."""
        X, y = _validate_data(self, X, y, reset=not (self.warm_start and hasattr(self, "model_")))
        y = self._process_target(y, reset=not (self.warm_start and hasattr(self, "_target_encoder")))
        model = self._get_model(X, y)
        _check_model(model)
        fit_kwargs = {**(self.fit_kwargs or {}), **kwargs}
        self.history_ = model.fit(X, y, **fit_kwargs).history
        self.model_ = model
        return self

    def _raw_predict(self, X):
        from sklearn.utils.validation import check_is_fitted
        check_is_fitted(self)
        X = _validate_data(self, X, reset=False)
        return np.asarray(self.model_.predict(X, verbose=0))

    def predict(self, X):
        """The model's predictions for ``X``, as targets (class labels for a classifier)."""
        return self._reverse_process_target(self._raw_predict(X))

    def _process_target(self, y, reset=False):
        _type_of_target(y)
        if reset:
            self._target_encoder = TargetReshaper().fit(y)
        return self._target_encoder.transform(y)

    def _reverse_process_target(self, y):
        return self._target_encoder.inverse_transform(y)


class SKLearnClassifier(ClassifierMixin, SKLBase):
    """A scikit-learn classifier around a dlgpu model (as keras.wrappers.SKLearnClassifier).

    Targets reach the model one-hot encoded (one column per class, binary included), so the model ends in
    ``n_classes`` units; ``predict`` gives back labels (the argmax), ``decision_function`` the raw outputs
    and ``predict_proba`` the outputs as probabilities (a softmax model's outputs are; others are refused).
    ``classes_`` holds the labels seen by fit."""

    def decision_function(self, X):
        """The model's raw outputs for ``X``, one column per class."""
        return self._raw_predict(X)

    def predict_proba(self, X):
        """Class probabilities, one column per class in ``classes_`` order: the model's outputs, which must
        be probabilities (end the model with a softmax).  Not in Keras 3.15's wrapper; scikit-learn tools
        (roc_auc scoring, CalibratedClassifierCV, VotingClassifier(voting="soft")) ask for it."""
        outputs = self._raw_predict(X)
        if outputs.ndim != 2 or outputs.shape[1] != len(self.classes_):
            raise ValueError(f"predict_proba: the model gives outputs of shape {outputs.shape}; expected one column "
                             f"per class ({len(self.classes_)}).")
        if outputs.size and (outputs.min() < -1e-6 or outputs.max() > 1 + 1e-6
                             or not np.allclose(outputs.sum(axis=1), 1.0, atol=1e-3)):
            raise ValueError("predict_proba: the model's outputs are not probabilities (each row should lie in "
                             "[0, 1] and sum to 1): end the model with a softmax, or use decision_function for "
                             "raw scores.")
        return outputs

    def _process_target(self, y, reset=False):
        target_type = _type_of_target(y)
        if target_type not in ("binary", "multiclass"):
            raise ValueError(f"Only binary and multiclass target types are supported. Target type: {target_type}")
        if reset:
            from sklearn.pipeline import make_pipeline
            from sklearn.preprocessing import OneHotEncoder
            self._target_encoder = make_pipeline(TargetReshaper(), OneHotEncoder(sparse_output=False)).fit(y)
            self.classes_ = np.unique(y)
            if len(self.classes_) == 1:
                raise ValueError("Classifier can't train when only one class is present.")
        return self._target_encoder.transform(y)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.classifier_tags.poor_score = True
        return tags


class SKLearnRegressor(RegressorMixin, SKLBase):
    """A scikit-learn regressor around a dlgpu model (as keras.wrappers.SKLearnRegressor); 1-D targets reach
    the model as a column and come back 1-D from predict."""

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.regressor_tags.poor_score = True
        return tags


class SKLearnTransformer(TransformerMixin, SKLBase):
    """A scikit-learn transformer around a dlgpu model (as keras.wrappers.SKLearnTransformer): ``transform``
    gives the model's outputs (e.g. an embedding), for the next step of a Pipeline."""

    def transform(self, X):
        """The model's outputs for ``X``."""
        return self._raw_predict(X)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.transformer_tags.preserves_dtype = []
        return tags
