"""Metrics (Keras 3 names and semantics): stateful objects with ``update_state``, ``result``, ``reset_state``.

State is accumulated in float64 with the inputs' array module: numpy on the CPU; on the GPU the sums stay
on the device (no sync per batch) until ``result()`` converts them once.  Updates are vectorised; the
thresholded metrics (Precision, Recall, AUC) bin every prediction with one ``searchsorted`` + ``bincount``
instead of comparing it against each threshold.

``resolve_accuracy(loss, y_true_shape, y_pred_shape)`` picks the accuracy flavour for ``metrics=["accuracy"]``.
"""

from __future__ import annotations

import re

import numpy as np

from dlgpu.autograd import Tensor
from dlgpu.backend import device as _device
from dlgpu.ops._core import array_module
from dlgpu.utils import unknown_name_error

EPSILON = 1e-7


# -- array helpers ------------------------------------------------------------------------------------

def _array(x):
    if isinstance(x, Tensor):
        return x.data
    if isinstance(x, np.ndarray) or type(x).__module__.startswith("cupy"):
        return x
    return np.asarray(x)


def _pair(y_true, y_pred):
    """Both as arrays of y_pred's module (host labels follow a device prediction)."""
    yp = _array(y_pred)
    yt = _array(y_true)
    if array_module(yt) is not array_module(yp):
        yt = _device.to_numpy(yt) if array_module(yp) is np else array_module(yp).asarray(yt)
    return yt, yp


def _squeeze_or_expand(x1, x2):
    r1, r2 = x1.ndim, x2.ndim
    if r1 == r2 + 1 and x1.shape[-1] == 1:
        x1 = x1.reshape(x1.shape[:-1]) if r2 != 1 else x1
        x2 = x2[..., None] if r2 == 1 else x2
    elif r2 == r1 + 1 and x2.shape[-1] == 1:
        x2 = x2.reshape(x2.shape[:-1]) if r1 != 1 else x2
        x1 = x1[..., None] if r1 == 1 else x1
    return x1, x2


def _result(value):
    """A Tensor on the host (float32), from a numpy/cupy array or scalar."""
    return Tensor(np.asarray(_device.to_numpy(value) if not isinstance(value, (float, int, np.generic, np.ndarray))
                             else value, dtype=np.float32))


def _divide_no_nan(a, b):
    xp = array_module(b) if hasattr(b, "dtype") else np
    return xp.where(b != 0, a / xp.where(b != 0, b, 1), 0.0)


def _snake(name):
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


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


# -- base classes -------------------------------------------------------------------------------------

class Metric:
    """Stateful metric: ``update_state`` per batch, ``result`` any time, ``reset_state`` per epoch."""

    def __init__(self, name=None, dtype=None):
        self.name = name or _snake(type(self).__name__)
        self.dtype = dtype or "float32"
        self.reset_state()

    def update_state(self, *args, **kwargs):
        raise NotImplementedError

    def result(self):
        raise NotImplementedError

    def reset_state(self):
        pass

    def __call__(self, *args, **kwargs):
        self.update_state(*args, **kwargs)
        return self.result()

    @property
    def variables(self):
        return []

    def get_config(self):
        return {"name": self.name, "dtype": self.dtype}

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def __repr__(self):
        return f"<{type(self).__name__} name={self.name}>"


class Mean(Metric):
    """Weighted mean of the values seen (Keras: values reduced per sample, then weighted by sample)."""

    def reset_state(self):
        self.total = 0.0
        self.count = 0.0

    def update_state(self, values, sample_weight=None):
        v = _array(values)
        if v.ndim == 0 and (sample_weight is None or np.ndim(_array(sample_weight)) == 0):
            # The loss tracker's path: one scalar per batch, weighted by the batch size.
            w = 1.0 if sample_weight is None else (_array(sample_weight) if isinstance(sample_weight, Tensor)
                                                   else float(sample_weight))
            self.total = self.total + v.astype(np.float64) * w
            self.count = self.count + w
            return
        xp = array_module(v)
        v = v.astype(np.float64)
        if sample_weight is not None:
            sw = _array(sample_weight)
            if array_module(sw) is not xp:
                sw = xp.asarray(_device.to_numpy(sw)) if xp is not np else _device.to_numpy(sw)
            sw = sw.astype(np.float64)
            v, sw = _squeeze_or_expand(v, sw)
            if v.ndim > sw.ndim:
                v = v.mean(axis=tuple(range(sw.ndim, v.ndim)))
            sw = xp.broadcast_to(sw, v.shape)
            v = v * sw
            if sw.ndim > 1:
                sw = sw.mean(axis=tuple(range(1, sw.ndim)))
            self.count = self.count + sw.sum()
        else:
            if v.ndim > 1:
                v = v.mean(axis=tuple(range(1, v.ndim)))
            self.count = self.count + (v.shape[0] if v.ndim else 1)
        self.total = self.total + v.sum()

    def result(self):
        total, count = float(self.total), float(self.count)
        return _result(total / count if count else 0.0)


class Sum(Metric):
    def reset_state(self):
        self.total = 0.0

    def update_state(self, values, sample_weight=None):
        v = _array(values).astype(np.float64)
        if sample_weight is not None:
            v = v * _array(sample_weight)
        self.total = self.total + v.sum()

    def result(self):
        return _result(float(self.total))


class MeanMetricWrapper(Mean):
    """Mean over samples of ``fn(y_true, y_pred, **kwargs)``."""

    def __init__(self, fn, name=None, dtype=None, **kwargs):
        self._fn = fn
        self._fn_kwargs = kwargs
        super().__init__(name=name or getattr(fn, "__name__", None), dtype=dtype)

    def update_state(self, y_true, y_pred, sample_weight=None):
        yt, yp = _pair(y_true, y_pred)
        values = self._fn(yt, yp, **self._fn_kwargs)
        super().update_state(values, sample_weight)

    def get_config(self):
        return {**super().get_config(), **self._fn_kwargs}


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
        yp = y_pred if isinstance(y_pred, Tensor) else Tensor(_array(y_pred))
        yt = y_true if isinstance(y_true, Tensor) else Tensor(_pair(y_true, yp.data)[0])
        Mean.update_state(self, self._fn(yt, yp, **self._fn_kwargs), sample_weight)


# -- confusion-matrix metrics ---------------------------------------------------------------------

def _confusion(y_true, y_pred, sample_weight, thresholds):
    """tp, fp, tn, fn (float64, one per threshold) for predictions ``> threshold``; thresholds sorted.

    Each prediction's bin k = number of thresholds strictly below it, so pred > thresholds[j] iff j < k;
    per-bin weighted counts (bincount) and a cumulative sum give every threshold at once.
    """
    xp = array_module(y_pred)
    yp = y_pred.reshape(-1).astype(np.float64)
    yt = y_true.reshape(-1) if y_true.shape == y_pred.shape else xp.broadcast_to(y_true, y_pred.shape).reshape(-1)
    pos = yt.astype(bool).astype(np.float64)
    if sample_weight is not None:  # per-sample weights (B,) spread over the other axes, as Keras
        sw = sample_weight.astype(np.float64)
        sw = sw.reshape(sw.shape + (1,) * (y_pred.ndim - sw.ndim))
        w = xp.broadcast_to(sw, y_pred.shape).reshape(-1)
    else:
        w = xp.ones_like(yp)
    n_thr = thresholds.shape[0]
    bins = xp.searchsorted(thresholds, yp, side="left")
    pos_hist = xp.bincount(bins, weights=w * pos, minlength=n_thr + 1)
    neg_hist = xp.bincount(bins, weights=w * (1.0 - pos), minlength=n_thr + 1)
    total_pos, total_neg = pos_hist.sum(), neg_hist.sum()
    tp = total_pos - xp.cumsum(pos_hist)[:n_thr]
    fp = total_neg - xp.cumsum(neg_hist)[:n_thr]
    return tp, fp, total_neg - fp, total_pos - tp


def _top_k_filter(yp, k):
    """Keep each row's top-k scores, others -inf (Keras's _filter_top_k)."""
    xp = array_module(yp)
    classes = yp.shape[-1]
    if k >= classes:
        return yp
    kth = xp.partition(yp, classes - k, axis=-1)[..., classes - k:classes - k + 1]
    return xp.where(yp >= kth, yp, -np.inf)


class _ThresholdMetric(Metric):
    def __init__(self, thresholds=None, top_k=None, class_id=None, name=None, dtype=None):
        default = 0.5 if top_k is None else -np.inf
        self._scalar = thresholds is None or np.ndim(thresholds) == 0
        values = [default if thresholds is None else thresholds] if self._scalar else list(thresholds)
        for t in values:
            if t != -np.inf and not 0 <= t <= 1:
                raise ValueError(f"Threshold values must be in [0, 1]. Received: {thresholds}")
        self.init_thresholds = thresholds
        self.thresholds = values
        self.top_k = top_k
        self.class_id = class_id
        self._order = np.argsort(values, kind="stable")
        self._sorted = np.asarray(values, np.float64)[self._order]
        super().__init__(name=name, dtype=dtype)

    def reset_state(self):
        self.true_positives = self.false_positives = self.true_negatives = self.false_negatives = 0.0

    def update_state(self, y_true, y_pred, sample_weight=None):
        yt, yp = _pair(y_true, y_pred)
        yt, yp = _squeeze_or_expand(yt, yp)
        if self.top_k is not None:
            yp = _top_k_filter(yp, self.top_k)
        if self.class_id is not None:
            yt, yp = yt[..., self.class_id], yp[..., self.class_id]
        sw = None if sample_weight is None else _pair(sample_weight, yp)[0]
        if sw is not None and self.class_id is not None and sw.ndim == yp.ndim + 1:
            sw = sw[..., self.class_id]
        xp = array_module(yp)
        thr = self._sorted if xp is np else xp.asarray(self._sorted)
        tp, fp, tn, fn = _confusion(yt, yp, sw, thr)
        self.true_positives = self.true_positives + tp
        self.false_positives = self.false_positives + fp
        self.true_negatives = self.true_negatives + tn
        self.false_negatives = self.false_negatives + fn

    def _per_threshold(self, num, den):
        num = _device.to_numpy(num) if not isinstance(num, float) else np.zeros(len(self.thresholds))
        den = _device.to_numpy(den) if not isinstance(den, float) else np.zeros(len(self.thresholds))
        values = np.empty(len(self.thresholds))
        values[self._order] = _divide_no_nan(num, den)
        return _result(values[0] if self._scalar else values)

    def get_config(self):
        return {**super().get_config(), "thresholds": self.init_thresholds, "top_k": self.top_k,
                "class_id": self.class_id}


class Precision(_ThresholdMetric):
    def __init__(self, thresholds=None, top_k=None, class_id=None, name="precision", dtype=None):
        super().__init__(thresholds, top_k, class_id, name, dtype)

    def result(self):
        return self._per_threshold(self.true_positives, self.true_positives + self.false_positives)


class Recall(_ThresholdMetric):
    def __init__(self, thresholds=None, top_k=None, class_id=None, name="recall", dtype=None):
        super().__init__(thresholds, top_k, class_id, name, dtype)

    def result(self):
        return self._per_threshold(self.true_positives, self.true_positives + self.false_negatives)


class _Counts(_ThresholdMetric):
    _which = None

    def __init__(self, thresholds=None, name=None, dtype=None):
        super().__init__(thresholds, None, None, name, dtype)

    def result(self):
        value = getattr(self, self._which)
        values = np.zeros(len(self.thresholds)) if isinstance(value, float) else _device.to_numpy(value)
        out = np.empty(len(self.thresholds))
        out[self._order] = values
        return _result(out[0] if self._scalar else out)


class TruePositives(_Counts):
    _which = "true_positives"


class FalsePositives(_Counts):
    _which = "false_positives"


class TrueNegatives(_Counts):
    _which = "true_negatives"


class FalseNegatives(_Counts):
    _which = "false_negatives"


class AUC(Metric):
    """Area under the ROC or PR curve from a thresholded confusion matrix (Keras's AUC).

    Thresholds: ``num_thresholds - 2`` evenly spaced in (0, 1) plus -1e-7 and 1 + 1e-7; the area is a
    Riemann sum over them (``interpolation``: trapezoids for ROC, Davis & Goadrich for PR).
    """

    def __init__(self, num_thresholds=200, curve="ROC", summation_method="interpolation", name="auc", dtype=None,
                 thresholds=None, multi_label=False, num_labels=None, label_weights=None, from_logits=False):
        curve = curve.upper() if isinstance(curve, str) else curve
        if curve not in ("ROC", "PR"):
            raise ValueError(f'Invalid `curve` argument value "{curve}". Expected one of: ROC, PR')
        summation_method = summation_method.lower()
        if summation_method not in ("interpolation", "minoring", "majoring"):
            raise ValueError(f'Invalid `summation_method` argument value "{summation_method}". Expected one of: '
                             "interpolation, minoring, majoring")
        self.curve = curve
        self.summation_method = summation_method
        self._init_from_thresholds = thresholds is not None
        if thresholds is not None:
            self.num_thresholds = len(thresholds) + 2
            middle = sorted(float(t) for t in thresholds)
        else:
            if num_thresholds <= 1:
                raise ValueError(f"Argument `num_thresholds` must be an integer > 1. Received: num_thresholds={num_thresholds}")
            self.num_thresholds = num_thresholds
            middle = [(i + 1) * 1.0 / (num_thresholds - 1) for i in range(num_thresholds - 2)]
        self._thresholds = np.array([0.0 - EPSILON] + middle + [1.0 + EPSILON])
        self.multi_label = multi_label
        self.num_labels = num_labels
        self.label_weights = None if label_weights is None else np.asarray(label_weights, np.float64)
        self._from_logits = from_logits
        super().__init__(name=name, dtype=dtype)

    @property
    def thresholds(self):
        return list(self._thresholds)

    def reset_state(self):
        self.true_positives = self.false_positives = self.true_negatives = self.false_negatives = 0.0

    def update_state(self, y_true, y_pred, sample_weight=None):
        yt, yp = _pair(y_true, y_pred)
        yt, yp = _squeeze_or_expand(yt, yp)
        xp = array_module(yp)
        if self._from_logits:
            yp = 1.0 / (1.0 + xp.exp(-yp.astype(np.float64)))
        sw = None if sample_weight is None else _pair(sample_weight, yp)[0]
        thr = self._thresholds if xp is np else xp.asarray(self._thresholds)
        if self.multi_label:
            labels = yp.shape[-1]
            yt2, yp2 = yt.reshape(-1, labels), yp.reshape(-1, labels)
            sw2 = None if sw is None else xp.broadcast_to(
                sw.reshape(sw.shape + (1,) * (yp.ndim - sw.ndim)), yp.shape).reshape(-1, labels)
            parts = [_confusion(yt2[:, j], yp2[:, j], None if sw2 is None else sw2[:, j], thr) for j in range(labels)]
            tp, fp, tn, fn = (xp.stack([p[i] for p in parts], axis=1) for i in range(4))
        else:
            tp, fp, tn, fn = _confusion(yt, yp, sw, thr)
        self.true_positives = self.true_positives + tp
        self.false_positives = self.false_positives + fp
        self.true_negatives = self.true_negatives + tn
        self.false_negatives = self.false_negatives + fn

    def _combine(self, per_label_terms):
        if not self.multi_label:
            return per_label_terms.sum()
        by_label = per_label_terms.sum(axis=0)
        if self.label_weights is None:
            return by_label.mean()
        return _divide_no_nan((by_label * self.label_weights).sum(), self.label_weights.sum())

    def result(self):
        if isinstance(self.true_positives, float):
            return _result(0.0)
        tp, fp, tn, fn = (_device.to_numpy(a) for a in (self.true_positives, self.false_positives,
                                                         self.true_negatives, self.false_negatives))
        n = self.num_thresholds
        if self.curve == "PR" and self.summation_method == "interpolation":
            dtp = tp[:n - 1] - tp[1:]
            p = tp + fp
            dp = p[:n - 1] - p[1:]
            slope = _divide_no_nan(dtp, np.maximum(dp, 0))
            intercept = tp[1:] - slope * p[1:]
            both = (p[:n - 1] > 0) & (p[1:] > 0)
            ratio = np.where(both, _divide_no_nan(p[:n - 1], np.maximum(p[1:], 0)), 1.0)
            terms = _divide_no_nan(slope * (dtp + intercept * np.log(ratio)), np.maximum(tp[1:] + fn[1:], 0))
            return _result(self._combine(terms))
        recall = _divide_no_nan(tp, tp + fn)
        if self.curve == "ROC":
            x, y = _divide_no_nan(fp, fp + tn), recall
        else:
            x, y = recall, _divide_no_nan(tp, tp + fp)
        if self.summation_method == "interpolation":
            heights = (y[:n - 1] + y[1:]) / 2.0
        elif self.summation_method == "minoring":
            heights = np.minimum(y[:n - 1], y[1:])
        else:
            heights = np.maximum(y[:n - 1], y[1:])
        return _result(self._combine((x[:n - 1] - x[1:]) * heights))

    def get_config(self):
        config = {**super().get_config(), "num_thresholds": self.num_thresholds, "curve": self.curve,
                  "summation_method": self.summation_method, "multi_label": self.multi_label,
                  "num_labels": self.num_labels, "from_logits": self._from_logits,
                  "label_weights": None if self.label_weights is None else self.label_weights.tolist()}
        if self._init_from_thresholds:
            config["thresholds"] = self.thresholds[1:-1]
        return config


class FBetaScore(Metric):
    """F-beta per class from thresholded (or arg-max) predictions; averaged None/micro/macro/weighted."""

    def __init__(self, average=None, beta=1.0, threshold=None, name="fbeta_score", dtype=None):
        if average not in (None, "micro", "macro", "weighted"):
            raise ValueError("Invalid `average` argument value. Expected one of: {None, 'micro', 'macro', "
                             f"'weighted'}}. Received: average={average}")
        if not isinstance(beta, (int, float)) or beta <= 0:
            raise ValueError(f"Invalid `beta` argument value. It should be a Python float > 0. Received: beta={beta}")
        if threshold is not None and (not isinstance(threshold, float) or not 0 < threshold <= 1):
            raise ValueError("Invalid `threshold` argument value. It should be a Python float in the range ]0, 1]. "
                             f"Received: threshold={threshold}")
        self.average = average
        self.beta = float(beta)
        self.threshold = threshold
        self.axis = None if average == "micro" else 0
        super().__init__(name=name, dtype=dtype)

    def reset_state(self):
        self.true_positives = self.false_positives = self.false_negatives = self.intermediate_weights = 0.0

    def update_state(self, y_true, y_pred, sample_weight=None):
        yt, yp = _pair(y_true, y_pred)
        if yp.ndim != 2 or yt.ndim != 2:
            raise ValueError("FBetaScore expects 2D inputs with shape (batch_size, output_dim). Received input "
                             f"shapes: y_pred.shape={tuple(yp.shape)} and y_true.shape={tuple(yt.shape)}.")
        xp = array_module(yp)
        if self.threshold is None:
            pred = (yp >= yp.max(axis=-1, keepdims=True)) & (xp.abs(yp) > 1e-9)
        else:
            pred = yp > self.threshold
        pred = pred.astype(np.float64)
        yt = yt.astype(np.float64)
        w = None
        if sample_weight is not None:
            w = _pair(sample_weight, yp)[0].astype(np.float64)
            w = w.reshape(w.shape + (1,) * (yt.ndim - w.ndim))

        def weighted_sum(val):
            return (val if w is None else val * w).sum(axis=self.axis)
        self.true_positives = self.true_positives + weighted_sum(pred * yt)
        self.false_positives = self.false_positives + weighted_sum(pred * (1 - yt))
        self.false_negatives = self.false_negatives + weighted_sum((1 - pred) * yt)
        self.intermediate_weights = self.intermediate_weights + weighted_sum(yt)

    def result(self):
        tp, fp, fn, iw = (np.asarray(_device.to_numpy(a) if not isinstance(a, float) else a, np.float64)
                          for a in (self.true_positives, self.false_positives, self.false_negatives,
                                    self.intermediate_weights))
        precision = tp / (tp + fp + EPSILON)
        recall = tp / (tp + fn + EPSILON)
        b2 = self.beta ** 2
        f = precision * recall / (b2 * precision + recall + EPSILON) * (1 + b2)
        if self.average == "weighted":
            f = (f * (iw / (iw.sum() + EPSILON))).sum()
        elif self.average is not None:
            f = f.mean()
        return _result(f)

    def get_config(self):
        return {**super().get_config(), "average": self.average, "beta": self.beta, "threshold": self.threshold}


class F1Score(FBetaScore):
    def __init__(self, average=None, threshold=None, name="f1_score", dtype=None):
        super().__init__(average=average, beta=1.0, threshold=threshold, name=name, dtype=dtype)

    def get_config(self):
        config = super().get_config()
        del config["beta"]
        return config


# -- accuracy resolution and lookup -----------------------------------------------------------------

def _loss_kind(loss):
    """'sparse', 'categorical', 'binary' or None from a loss given as string, Loss or function."""
    if loss is None:
        return None
    if isinstance(loss, str):
        key = loss.lower()
    else:
        key = _snake(type(loss).__name__) if not callable(loss) or hasattr(loss, "get_config") \
            else getattr(loss, "__name__", "")
        if key in ("loss_function_wrapper",) and hasattr(loss, "fn"):
            key = getattr(loss.fn, "__name__", "")
        key = key.lower()
    if "sparse_categorical_crossentropy" in key:
        return "sparse"
    if "categorical_crossentropy" in key:
        return "categorical"
    if "binary_crossentropy" in key or key in ("bce",):
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
    TruePositives, FalsePositives, TrueNegatives, FalseNegatives, AUC, FBetaScore, F1Score)}

_STRINGS = {"accuracy": Accuracy, "acc": Accuracy, "binary_accuracy": BinaryAccuracy,
            "categorical_accuracy": CategoricalAccuracy, "sparse_categorical_accuracy": SparseCategoricalAccuracy,
            "top_k_categorical_accuracy": TopKCategoricalAccuracy,
            "sparse_top_k_categorical_accuracy": SparseTopKCategoricalAccuracy,
            "mean_squared_error": MeanSquaredError, "mse": MeanSquaredError,
            "mean_absolute_error": MeanAbsoluteError, "mae": MeanAbsoluteError,
            "root_mean_squared_error": RootMeanSquaredError, "rmse": RootMeanSquaredError,
            "precision": Precision, "recall": Recall, "auc": AUC, "f1_score": F1Score, "fbeta_score": FBetaScore,
            "true_positives": TruePositives, "false_positives": FalsePositives, "true_negatives": TrueNegatives,
            "false_negatives": FalseNegatives}
_LOSS_METRICS = ("binary_crossentropy", "categorical_crossentropy", "sparse_categorical_crossentropy",
                 "kl_divergence", "poisson", "hinge", "squared_hinge", "categorical_hinge", "log_cosh",
                 "mean_absolute_percentage_error", "mean_squared_logarithmic_error", "cosine_similarity")


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
    return {"module": "keras.metrics", "class_name": type(metric).__name__, "config": metric.get_config(),
            "registered_name": None}


def deserialize(config, custom_objects=None):
    custom_objects = custom_objects or {}
    if isinstance(config, str):
        return get(config)
    name = config.get("class_name")
    cls = custom_objects.get(name) or _CLASSES.get(name)
    if cls is None:
        raise ValueError(f"Unknown metric class: {name!r}. Valid: {', '.join(sorted(_CLASSES))}.")
    return cls.from_config(config.get("config", {}))
