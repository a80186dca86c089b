"""Per-sample metrics: accuracies, top-k, MSE/MAE/RMSE, losses used as metrics: their array forms, the
keras.metrics function names, and the MeanMetricWrapper classes that average them."""

from __future__ import annotations

import numpy as np

from dlgpu.autograd import Tensor
from dlgpu.metrics.base import (Mean, MeanMetricWrapper, _array, _pair, _result, _squeeze_or_expand,
                                with_output_mask)
from dlgpu.ops._core import array_module


# -- array forms of the per-sample metric functions ----------------------------------------------------

def _accuracy(yt, yp):
    yt, yp = _squeeze_or_expand(yt, yp)
    return (yt.astype(yp.dtype, copy=False) == yp).astype(np.float32)


def _binary_accuracy(yt, yp, threshold=0.5):
    yt, yp = _squeeze_or_expand(yt, yp)
    return (yt == (yp > threshold).astype(yt.dtype)).astype(np.float32)


def _categorical_accuracy(yt, yp):
    return (yt.argmax(axis=-1) == yp.argmax(axis=-1)).astype(np.float32)


def _sparse_categorical_accuracy(yt, yp):
    if yt.ndim == yp.ndim and yt.shape[-1] == 1:
        yt = yt.reshape(yt.shape[:-1])
    matches = (yt == yp.argmax(axis=-1).astype(yt.dtype)).astype(np.float32)
    if matches.ndim > 1 and matches.shape[-1] == 1:
        matches = matches.reshape(matches.shape[:-1])
    return matches


def _top_k_hits(target_idx, yp, k):
    """Keras's in_top_k: the target's score is at least the k-th largest score (ties count as hits)."""
    xp = array_module(yp)
    classes = yp.shape[-1]
    if k >= classes:
        return xp.ones(target_idx.shape, np.float32)
    kth = xp.partition(yp, classes - k, axis=-1)[..., classes - k]
    target_score = xp.take_along_axis(yp, target_idx[..., None].astype(np.intp), axis=-1)[..., 0]
    return (target_score >= kth).astype(np.float32)


def _top_k_categorical_accuracy(yt, yp, k=5):
    return _top_k_hits(yt.argmax(axis=-1), yp, k)


def _sparse_top_k_categorical_accuracy(yt, yp, k=5):
    if yt.ndim == yp.ndim and yt.shape[-1] == 1:
        yt = yt.reshape(yt.shape[:-1])
    return _top_k_hits(yt.astype(np.int64), yp, k)


def _mean_squared_error(yt, yp):
    yt, yp = _squeeze_or_expand(yt, yp)
    d = yp - yt
    return (d * d).mean(axis=-1)


def _mean_absolute_error(yt, yp):
    yt, yp = _squeeze_or_expand(yt, yp)
    return array_module(yp).abs(yp - yt).mean(axis=-1)


def _public(fn, name):
    def metric_fn(y_true, y_pred, **kwargs):
        yt, yp = _pair(y_true, y_pred)
        return Tensor(fn(yt, yp, **kwargs))
    metric_fn.__name__ = metric_fn.__qualname__ = name
    metric_fn.__doc__ = f"Per-sample {name.replace('_', ' ')} (Keras ``keras.metrics.{name}``)."
    return metric_fn


accuracy = _public(_accuracy, "accuracy")
binary_accuracy = _public(_binary_accuracy, "binary_accuracy")
categorical_accuracy = _public(_categorical_accuracy, "categorical_accuracy")
sparse_categorical_accuracy = _public(_sparse_categorical_accuracy, "sparse_categorical_accuracy")
top_k_categorical_accuracy = _public(_top_k_categorical_accuracy, "top_k_categorical_accuracy")
sparse_top_k_categorical_accuracy = _public(_sparse_top_k_categorical_accuracy, "sparse_top_k_categorical_accuracy")
mean_squared_error = _public(_mean_squared_error, "mean_squared_error")
mean_absolute_error = _public(_mean_absolute_error, "mean_absolute_error")


def _wrapper(fn, default_name, **defaults):
    class _Wrapped(MeanMetricWrapper):
        def __init__(self, name=default_name, dtype=None, **kwargs):
            options = {**defaults, **kwargs}
            super().__init__(fn, name=name, dtype=dtype, **options)
    return _Wrapped


class Accuracy(_wrapper(_accuracy, "accuracy")):
    pass


class BinaryAccuracy(MeanMetricWrapper):
    def __init__(self, name="binary_accuracy", dtype=None, threshold=0.5):
        super().__init__(_binary_accuracy, name=name, dtype=dtype, threshold=threshold)
        self.threshold = threshold


class CategoricalAccuracy(_wrapper(_categorical_accuracy, "categorical_accuracy")):
    pass


class SparseCategoricalAccuracy(_wrapper(_sparse_categorical_accuracy, "sparse_categorical_accuracy")):
    pass


class TopKCategoricalAccuracy(MeanMetricWrapper):
    def __init__(self, k=5, name="top_k_categorical_accuracy", dtype=None):
        super().__init__(_top_k_categorical_accuracy, name=name, dtype=dtype, k=k)
        self.k = k


class SparseTopKCategoricalAccuracy(MeanMetricWrapper):
    def __init__(self, k=5, name="sparse_top_k_categorical_accuracy", dtype=None):
        super().__init__(_sparse_top_k_categorical_accuracy, name=name, dtype=dtype, k=k)
        self.k = k


class MeanSquaredError(_wrapper(_mean_squared_error, "mean_squared_error")):
    pass


class MeanAbsoluteError(_wrapper(_mean_absolute_error, "mean_absolute_error")):
    pass


class RootMeanSquaredError(Mean):
    """sqrt of the (weighted) mean squared error over everything seen."""

    def __init__(self, name="root_mean_squared_error", dtype=None):
        super().__init__(name=name, dtype=dtype)

    def update_state(self, y_true, y_pred, sample_weight=None):
        yt, yp = _pair(y_true, y_pred)
        yt, yp = _squeeze_or_expand(yt, yp)
        d = yp - yt
        super().update_state(d * d, sample_weight)

    def result(self):
        total, count = float(self.total), float(self.count)
        return _result(np.sqrt(total / count) if count else 0.0)


class _LossMetric(MeanMetricWrapper):
    """A loss function used as a metric (e.g. metrics=['binary_crossentropy'])."""

    def __init__(self, loss_fn, name=None, dtype=None, **kwargs):
        def values(yt, yp, **kw):
            return loss_fn(yt, yp, **kw).data
        values.__name__ = loss_fn.__name__
        super().__init__(values, name=name or loss_fn.__name__, dtype=dtype, **kwargs)

    def update_state(self, y_true, y_pred, sample_weight=None):
        sample_weight = with_output_mask(sample_weight, y_pred)
        yp = y_pred if isinstance(y_pred, Tensor) else Tensor(_array(y_pred))
        yt = y_true if isinstance(y_true, Tensor) else Tensor(_pair(y_true, yp.data)[0])
        Mean.update_state(self, self._fn(yt, yp, **self._fn_kwargs), sample_weight)
