"""Metrics (Keras 3 names and semantics): stateful objects with ``update_state``, ``result``, ``reset_state``.

One small module per family: base.py (Metric, Mean, Sum, MeanMetricWrapper), per_sample.py (accuracies,
regression errors), loss_metrics.py (losses as metrics: cross-entropies, KL, Poisson, hinges, log-cosh, cosine,
MAPE, MSLE), regression_metrics.py (R2Score), confusion_metrics.py (Precision, Recall, the rate-at-rate metrics,
AUC, F1), iou_metrics.py (the IoU family).  This module resolves names:
``get``, ``serialize``/``deserialize`` and ``resolve_accuracy(loss, y_true_shape, y_pred_shape)``, which picks
the accuracy flavour for ``metrics=["accuracy"]``.
"""

from __future__ import annotations

from dlgpu.autograd import Tensor
from dlgpu.naming import to_snake_case
from dlgpu.metrics.base import EPSILON, Mean, MeanMetricWrapper, Metric, Sum, _array  # noqa: F401
from dlgpu.metrics.confusion_metrics import (AUC, F1Score, FBetaScore, FalseNegatives, FalsePositives,  # noqa: F401
                                             Precision, PrecisionAtRecall, Recall, RecallAtPrecision,
                                             SensitivityAtSpecificity, SpecificityAtSensitivity, TrueNegatives,
                                             TruePositives)
from dlgpu.metrics.correlation_metrics import (ConcordanceCorrelation, PearsonCorrelation,  # noqa: F401
                                                concordance_correlation, pearson_correlation)
from dlgpu.metrics.iou_metrics import BinaryIoU, IoU, MeanIoU, OneHotIoU, OneHotMeanIoU  # noqa: F401
from dlgpu.metrics.loss_metrics import (BinaryCrossentropy, CategoricalCrossentropy, CategoricalHinge,  # noqa: F401
                                        CosineSimilarity, Hinge, KLDivergence, LogCoshError,
                                        MeanAbsolutePercentageError, MeanSquaredLogarithmicError, Poisson,
                                        SparseCategoricalCrossentropy, SquaredHinge)
from dlgpu.metrics.regression_metrics import R2Score  # noqa: F401
from dlgpu.metrics.per_sample import (Accuracy, BinaryAccuracy, CategoricalAccuracy, MeanAbsoluteError,  # noqa: F401
                                      MeanSquaredError, RootMeanSquaredError, SparseCategoricalAccuracy,
                                      SparseTopKCategoricalAccuracy, TopKCategoricalAccuracy, _LossMetric,
                                      _accuracy, _binary_accuracy, _categorical_accuracy, _mean_absolute_error,
                                      _mean_squared_error, _sparse_categorical_accuracy, accuracy,
                                      binary_accuracy, categorical_accuracy, mean_absolute_error,
                                      mean_squared_error, sparse_categorical_accuracy,
                                      sparse_top_k_categorical_accuracy, top_k_categorical_accuracy)
from dlgpu.utils import unknown_name_error

# keras.metrics exports these loss functions under the same names (one value per sample, as Tensors).
from dlgpu.losses import (binary_crossentropy, binary_focal_crossentropy, categorical_crossentropy,  # noqa: E402,F401
                          categorical_focal_crossentropy, categorical_hinge, hinge, huber, kl_divergence, log_cosh,
                          mean_absolute_percentage_error, mean_squared_logarithmic_error, poisson,
                          sparse_categorical_crossentropy, squared_hinge)


# -- accuracy resolution and lookup -----------------------------------------------------------------

def _loss_kind(loss):
    """'sparse', 'categorical', 'binary' or None from a loss given as string, Loss or function."""
    if loss is None:
        return None
    if isinstance(loss, str):
        key = loss.lower()
    else:
        key = to_snake_case(type(loss).__name__) if not callable(loss) or hasattr(loss, "get_config") \
            else getattr(loss, "__name__", "")
        if key in ("loss_function_wrapper",) and hasattr(loss, "fn"):
            key = getattr(loss.fn, "__name__", "")
        key = key.lower()
    if "sparse_categorical_crossentropy" in key:
        return "sparse"
    if "categorical_crossentropy" in key or "categorical_focal_crossentropy" in key:
        return "categorical"
    if "binary_crossentropy" in key or "binary_focal_crossentropy" in key or key in ("bce",):
        return "binary"
    return None


def resolve_accuracy(loss, y_true_shape, y_pred_shape):
    """The metric behind ``metrics=["accuracy"]``: chosen by the loss when it is a cross-entropy (sparse ->
    SparseCategoricalAccuracy, categorical -> CategoricalAccuracy, binary -> BinaryAccuracy), else by
    shapes with Keras 3's rule (y_pred last dim 1 -> binary; y_true of lower rank, or last dim 1 against
    several classes -> sparse; otherwise categorical).  The trainer sets ``.name`` to the string used."""
    kind = _loss_kind(loss)
    if kind is None:
        yt, yp = tuple(y_true_shape), tuple(y_pred_shape)
        if yp and yp[-1] == 1:
            kind = "binary"
        elif len(yt) < len(yp) or (yt and yt[-1] == 1 and yp and yp[-1] > 1):
            kind = "sparse"
        else:
            kind = "categorical"
    return {"sparse": SparseCategoricalAccuracy, "categorical": CategoricalAccuracy,
            "binary": BinaryAccuracy}[kind](name="accuracy")


_CLASSES = {cls.__name__: cls for cls in (
    Mean, Sum, Accuracy, BinaryAccuracy, CategoricalAccuracy, SparseCategoricalAccuracy, TopKCategoricalAccuracy,
    SparseTopKCategoricalAccuracy, MeanSquaredError, MeanAbsoluteError, RootMeanSquaredError, Precision, Recall,
    TruePositives, FalsePositives, TrueNegatives, FalseNegatives, AUC, FBetaScore, F1Score, PrecisionAtRecall,
    RecallAtPrecision, SensitivityAtSpecificity, SpecificityAtSensitivity, BinaryCrossentropy,
    CategoricalCrossentropy, SparseCategoricalCrossentropy, KLDivergence, Poisson, Hinge, SquaredHinge,
    CategoricalHinge, LogCoshError, CosineSimilarity, MeanAbsolutePercentageError, MeanSquaredLogarithmicError,
    R2Score, IoU, MeanIoU, BinaryIoU, OneHotIoU, OneHotMeanIoU, PearsonCorrelation, ConcordanceCorrelation)}

_STRINGS = {"accuracy": Accuracy, "acc": Accuracy, "binary_accuracy": BinaryAccuracy,
            "categorical_accuracy": CategoricalAccuracy, "sparse_categorical_accuracy": SparseCategoricalAccuracy,
            "top_k_categorical_accuracy": TopKCategoricalAccuracy,
            "sparse_top_k_categorical_accuracy": SparseTopKCategoricalAccuracy,
            "mean_squared_error": MeanSquaredError, "mse": MeanSquaredError, "MSE": MeanSquaredError,
            "mean_absolute_error": MeanAbsoluteError, "mae": MeanAbsoluteError, "MAE": MeanAbsoluteError,
            "root_mean_squared_error": RootMeanSquaredError, "rmse": RootMeanSquaredError,
            "precision": Precision, "recall": Recall, "auc": AUC, "f1_score": F1Score, "fbeta_score": FBetaScore,
            "true_positives": TruePositives, "false_positives": FalsePositives, "true_negatives": TrueNegatives,
            "false_negatives": FalseNegatives,
            # Keras resolves a string through its classes' snake-case names (and a few aliases)
            "binary_crossentropy": BinaryCrossentropy, "bce": BinaryCrossentropy, "BCE": BinaryCrossentropy,
            "categorical_crossentropy": CategoricalCrossentropy,
            "sparse_categorical_crossentropy": SparseCategoricalCrossentropy, "kl_divergence": KLDivergence,
            "poisson": Poisson, "hinge": Hinge, "squared_hinge": SquaredHinge, "categorical_hinge": CategoricalHinge,
            "log_cosh_error": LogCoshError, "cosine_similarity": CosineSimilarity,
            "mean_absolute_percentage_error": MeanAbsolutePercentageError, "mape": MeanAbsolutePercentageError,
            "MAPE": MeanAbsolutePercentageError, "mean_squared_logarithmic_error": MeanSquaredLogarithmicError,
            "msle": MeanSquaredLogarithmicError, "MSLE": MeanSquaredLogarithmicError, "r2_score": R2Score,
            "binary_io_u": BinaryIoU, "pearson_correlation": PearsonCorrelation,
            "concordance_correlation": ConcordanceCorrelation}
# Loss functions that are metrics by name only through the function (Keras: keras.metrics.<name>).
_LOSS_METRICS = ("log_cosh", "logcosh", "kld", "KLD", "huber", "binary_focal_crossentropy",
                 "categorical_focal_crossentropy")


# The per-sample functions that save by name (as Keras saves its own functions): no code is ever saved.
_FUNCTIONS = {fn.__name__: fn for fn in (
    accuracy, binary_accuracy, categorical_accuracy, sparse_categorical_accuracy, top_k_categorical_accuracy,
    sparse_top_k_categorical_accuracy, mean_squared_error, mean_absolute_error, binary_crossentropy,
    binary_focal_crossentropy, categorical_crossentropy, categorical_focal_crossentropy, categorical_hinge, hinge,
    huber, kl_divergence, log_cosh, mean_absolute_percentage_error, mean_squared_logarithmic_error, poisson,
    sparse_categorical_crossentropy, squared_hinge, pearson_correlation, concordance_correlation)}


# The classes that cannot be built without arguments, under their names and Keras's snake-case names.
_NEEDS_ARGUMENTS = {}
for _cls, _args in ((IoU, "num_classes, target_class_ids"), (MeanIoU, "num_classes"),
                    (OneHotIoU, "num_classes, target_class_ids"), (OneHotMeanIoU, "num_classes"),
                    (PrecisionAtRecall, "recall"), (RecallAtPrecision, "precision"),
                    (SensitivityAtSpecificity, "specificity"), (SpecificityAtSensitivity, "sensitivity")):
    _NEEDS_ARGUMENTS[_cls.__name__] = _NEEDS_ARGUMENTS[to_snake_case(_cls.__name__)] = (_args, _cls.__name__)


def _valid_names():
    return sorted(set(_STRINGS) | set(_CLASSES) | set(_LOSS_METRICS))


def get(identifier):
    """A Metric instance from a string (named as the string, as Keras's compile does), config dict, class,
    instance, or per-sample function (wrapped in MeanMetricWrapper)."""
    if identifier is None or isinstance(identifier, Metric):
        return identifier
    if isinstance(identifier, dict):
        return deserialize(identifier)
    if isinstance(identifier, str):
        if identifier in _NEEDS_ARGUMENTS:
            args, class_name = _NEEDS_ARGUMENTS[identifier]
            raise ValueError(f"Metric {identifier!r} needs constructor arguments ({args}); pass an instance, e.g. "
                             f"metrics=[keras.metrics.{class_name}(...)].")
        cls = _STRINGS.get(identifier) or _CLASSES.get(identifier)
        if cls is not None:
            return cls(name=identifier)
        if identifier in _LOSS_METRICS:
            from dlgpu import losses
            return _LossMetric(getattr(losses, identifier), name=identifier)
        raise unknown_name_error("metric", identifier, _valid_names())
    if isinstance(identifier, type) and issubclass(identifier, Metric):
        return identifier()
    if callable(identifier):
        public = {f.__name__: fn for f, fn in ((accuracy, _accuracy), (binary_accuracy, _binary_accuracy),
                                                (categorical_accuracy, _categorical_accuracy),
                                                (sparse_categorical_accuracy, _sparse_categorical_accuracy),
                                                (mean_squared_error, _mean_squared_error),
                                                (mean_absolute_error, _mean_absolute_error))}
        name = getattr(identifier, "__name__", "metric")
        if name in public and globals().get(name) is identifier:
            return MeanMetricWrapper(public[name], name=name)

        def values(yt, yp, **kw):
            out = identifier(Tensor(yt), Tensor(yp), **kw)
            return _array(out)
        return MeanMetricWrapper(values, name=name)
    raise ValueError(f"Could not interpret metric identifier: {identifier!r}")


def serialize(metric):
    """A Metric as its class name and config; one of dlgpu's metric functions as its name."""
    if isinstance(metric, Metric):
        return {"module": "keras.metrics", "class_name": type(metric).__name__, "config": metric.get_config(),
                "registered_name": None}
    name = getattr(metric, "__name__", None)
    if name in _FUNCTIONS and _FUNCTIONS[name] is metric:
        return {"module": "keras.metrics", "class_name": "function", "config": name, "registered_name": None}
    raise ValueError(f"Cannot serialize metric {metric!r}: only Metric instances and dlgpu's metric functions "
                     f"are serializable.")


def deserialize(config, custom_objects=None):
    custom_objects = custom_objects or {}
    if isinstance(config, str):
        return get(config)
    name = config.get("class_name")
    if name == "function" and config.get("config") in _FUNCTIONS:
        return _FUNCTIONS[config["config"]]
    cls = custom_objects.get(name) or _CLASSES.get(name)
    if cls is None:
        raise ValueError(f"Unknown metric class: {name!r}. Valid: {', '.join(sorted(_CLASSES))}.")
    return cls.from_config(config.get("config", {}))
