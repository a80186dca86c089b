"""Thresholded metrics from a confusion matrix: Precision, Recall, TP/FP/TN/FN counts, the rate-at-rate
metrics (PrecisionAtRecall, RecallAtPrecision, SensitivityAtSpecificity, SpecificityAtSensitivity), AUC,
F-beta/F1.

Every prediction is binned with one ``searchsorted`` + ``bincount`` instead of being compared against each
threshold."""

from __future__ import annotations

import numpy as np

from dlgpu.backend import device as _device
from dlgpu.metrics.base import EPSILON, Metric, _divide_no_nan, _pair, _result, _squeeze_or_expand
from dlgpu.ops._core import array_module


# -- confusion-matrix metrics ---------------------------------------------------------------------

def _evenly_spaced(thresholds):
    """Keras's is_evenly_distributed_thresholds: three or more thresholds at [0, 1/(n-1), ..., 1] (within
    1e-7, so AUC's -eps and 1+eps ends count).  Keras bins predictions against such thresholds only after
    clipping them to [0, 1], which decides where a logit of -3 or 1.5 falls; the metrics here clip alike."""
    n = len(thresholds)
    return n >= 3 and np.allclose(thresholds, np.arange(n, dtype=np.float32) / (n - 1), atol=1e-7)


def _confusion(y_true, y_pred, sample_weight, thresholds, clip=False):
    """tp, fp, tn, fn (float64, one per threshold) for predictions ``> threshold``; thresholds sorted;
    ``clip`` clips the predictions to [0, 1] first (see _evenly_spaced).

    Each prediction's bin k = number of thresholds strictly below it, so pred > thresholds[j] iff j < k;
    per-bin weighted counts (bincount) and a cumulative sum give every threshold at once.
    """
    xp = array_module(y_pred)
    yp = y_pred.reshape(-1).astype(np.float64)
    if clip:
        yp = xp.clip(yp, 0.0, 1.0)
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
        self._clip = _evenly_spaced(values)
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
        tp, fp, tn, fn = _confusion(yt, yp, sw, thr, self._clip)
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
    def __init__(self, thresholds=None, top_k=None, class_id=None, name=None, dtype=None):
        super().__init__(thresholds, top_k, class_id, name, dtype)

    def result(self):
        return self._per_threshold(self.true_positives, self.true_positives + self.false_positives)


class Recall(_ThresholdMetric):
    def __init__(self, thresholds=None, top_k=None, class_id=None, name=None, dtype=None):
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

    def get_config(self):  # no top_k/class_id: the counts take thresholds only
        return {**Metric.get_config(self), "thresholds": self.init_thresholds}


class TruePositives(_Counts):
    _which = "true_positives"


class FalsePositives(_Counts):
    _which = "false_positives"


class TrueNegatives(_Counts):
    _which = "true_negatives"


class FalseNegatives(_Counts):
    _which = "false_negatives"


class _AtConstraint(Metric):
    """Keras's SensitivitySpecificityBase: the confusion counts at ``num_thresholds`` evenly spaced
    thresholds in [0, 1] (0.5 alone when 1); ``result`` is the best ``dependent`` rate among the thresholds
    whose ``constrained`` rate is at least ``value`` (0 when none is)."""

    _value_name = None

    def __init__(self, value, num_thresholds=200, class_id=None, name=None, dtype=None):
        if value < 0 or value > 1:
            raise ValueError(f"Argument `{self._value_name}` must be in the range [0, 1]. "
                             f"Received: {self._value_name}={value}")
        if num_thresholds <= 0:
            raise ValueError("Argument `num_thresholds` must be an integer > 0. "
                             f"Received: num_thresholds={num_thresholds}")
        self.value = value
        setattr(self, self._value_name, value)
        self.num_thresholds = num_thresholds
        self.class_id = class_id
        if num_thresholds == 1:
            self.thresholds = [0.5]
        else:
            self.thresholds = [0.0] + [(i + 1) * 1.0 / (num_thresholds - 1) for i in range(num_thresholds - 2)] + [1.0]
        self._sorted = np.asarray(self.thresholds, np.float64)
        self._clip = _evenly_spaced(self.thresholds)
        super().__init__(name=name, dtype=dtype)

    def reset_state(self):
        self.true_positives = self.false_positives = self.true_negatives = self.false_negatives = 0.0

    def update_state(self, y_true, y_pred, sample_weight=None):
        yt, yp = _pair(y_true, y_pred)
        yt, yp = _squeeze_or_expand(yt, yp)
        if self.class_id is not None:
            yt, yp = yt[..., self.class_id], yp[..., self.class_id]
        sw = None if sample_weight is None else _pair(sample_weight, yp)[0]
        if sw is not None and self.class_id is not None and sw.ndim == yp.ndim + 1:
            sw = sw[..., self.class_id]
        xp = array_module(yp)
        thr = self._sorted if xp is np else xp.asarray(self._sorted)
        tp, fp, tn, fn = _confusion(yt, yp, sw, thr, self._clip)
        self.true_positives = self.true_positives + tp
        self.false_positives = self.false_positives + fp
        self.true_negatives = self.true_negatives + tn
        self.false_negatives = self.false_negatives + fn

    def _rates(self):
        counts = [np.zeros(len(self.thresholds)) if isinstance(a, float) else _device.to_numpy(a) for a in
                  (self.true_positives, self.false_positives, self.true_negatives, self.false_negatives)]
        tp, fp, tn, fn = counts
        return {"sensitivity": _divide_no_nan(tp, tp + fn), "specificity": _divide_no_nan(tn, tn + fp),
                "precision": _divide_no_nan(tp, tp + fp)}

    def _best(self, constrained, dependent):
        rates = self._rates()
        feasible = rates[constrained] >= self.value
        return _result(np.where(feasible, rates[dependent], 0.0).max(initial=0.0))

    def get_config(self):
        return {**super().get_config(), "class_id": self.class_id, "num_thresholds": self.num_thresholds,
                self._value_name: self.value}


class SensitivityAtSpecificity(_AtConstraint):
    _value_name = "specificity"

    def __init__(self, specificity, num_thresholds=200, class_id=None, name=None, dtype=None):
        super().__init__(specificity, num_thresholds, class_id, name, dtype)

    def result(self):
        return self._best("specificity", "sensitivity")


class SpecificityAtSensitivity(_AtConstraint):
    _value_name = "sensitivity"

    def __init__(self, sensitivity, num_thresholds=200, class_id=None, name=None, dtype=None):
        super().__init__(sensitivity, num_thresholds, class_id, name, dtype)

    def result(self):
        return self._best("sensitivity", "specificity")


class PrecisionAtRecall(_AtConstraint):
    _value_name = "recall"

    def __init__(self, recall, num_thresholds=200, class_id=None, name=None, dtype=None):
        super().__init__(recall, num_thresholds, class_id, name, dtype)

    def result(self):
        return self._best("sensitivity", "precision")


class RecallAtPrecision(_AtConstraint):
    _value_name = "precision"

    def __init__(self, precision, num_thresholds=200, class_id=None, name=None, dtype=None):
        super().__init__(precision, num_thresholds, class_id, name, dtype)

    def result(self):
        return self._best("precision", "sensitivity")


class AUC(Metric):
    """Area under the ROC or PR curve from a thresholded confusion matrix (Keras's AUC).

    Thresholds: ``num_thresholds - 2`` evenly spaced in (0, 1) plus -1e-7 and 1 + 1e-7; the area is a
    Riemann sum over them (``interpolation``: trapezoids for ROC, Davis & Goadrich for PR).
    """

    def __init__(self, num_thresholds=200, curve="ROC", summation_method="interpolation", name=None, dtype=None,
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
        self._clip = _evenly_spaced(self._thresholds)
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
            parts = [_confusion(yt2[:, j], yp2[:, j], None if sw2 is None else sw2[:, j], thr, self._clip)
                     for j in range(labels)]
            tp, fp, tn, fn = (xp.stack([p[i] for p in parts], axis=1) for i in range(4))
        else:
            tp, fp, tn, fn = _confusion(yt, yp, sw, thr, self._clip)
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
