"""Losses as metrics (Keras's probabilistic, hinge and regression metric classes): the mean over samples of
a per-sample loss from dlgpu.losses, with Keras 3's names, arguments and get_config keys."""

from __future__ import annotations

import numpy as np

from dlgpu import losses as _losses
from dlgpu import ops
from dlgpu.autograd import Tensor
from dlgpu.metrics.base import Mean, _array, _pair, with_output_mask
from dlgpu.metrics.per_sample import _LossMetric


def _cosine_similarity(y_true, y_pred, axis=-1):
    # The metric is the similarity itself; the loss of the same name is its negative.
    return ops.negative(_losses.cosine_similarity(y_true, y_pred, axis=axis))


class BinaryCrossentropy(_LossMetric):
    def __init__(self, name="binary_crossentropy", dtype=None, from_logits=False, label_smoothing=0):
        super().__init__(_losses.binary_crossentropy, name=name, dtype=dtype, from_logits=from_logits,
                         label_smoothing=label_smoothing)
        self.from_logits = from_logits
        self.label_smoothing = label_smoothing

    def update_state(self, y_true, y_pred, sample_weight=None):
        sample_weight = with_output_mask(sample_weight, y_pred)
        yp = y_pred if isinstance(y_pred, Tensor) else Tensor(_array(y_pred))
        yt = y_true if isinstance(y_true, Tensor) else Tensor(_pair(y_true, yp.data)[0])
        # labels (B,) against a (B, 1) column, as the loss class allows
        values = _losses._call_binary(_losses.binary_crossentropy, yt, yp, self._fn_kwargs)
        Mean.update_state(self, values.data, sample_weight)


class CategoricalCrossentropy(_LossMetric):
    def __init__(self, name="categorical_crossentropy", dtype=None, from_logits=False, label_smoothing=0, axis=-1):
        super().__init__(_losses.categorical_crossentropy, name=name, dtype=dtype, from_logits=from_logits,
                         label_smoothing=label_smoothing, axis=axis)
        self.from_logits = from_logits
        self.label_smoothing = label_smoothing
        self.axis = axis


class SparseCategoricalCrossentropy(_LossMetric):
    def __init__(self, name="sparse_categorical_crossentropy", dtype=None, from_logits=False, ignore_class=None,
                 axis=-1):
        super().__init__(_losses.sparse_categorical_crossentropy, name=name, dtype=dtype, from_logits=from_logits,
                         ignore_class=ignore_class, axis=axis)
        self.from_logits = from_logits
        self.ignore_class = ignore_class
        self.axis = axis

    def update_state(self, y_true, y_pred, sample_weight=None):
        if self.ignore_class is None:
            return super().update_state(y_true, y_pred, sample_weight)
        # Keras masks the ignored positions out of the mean (their loss is 0 and they do not count).
        yp = y_pred if isinstance(y_pred, Tensor) else Tensor(_array(y_pred))
        yt = _pair(y_true, yp.data)[0]
        ax = self.axis % yp.ndim
        kept = (yt != self.ignore_class).reshape(yp.shape[:ax] + yp.shape[ax + 1:]).astype(np.float32)
        sample_weight = with_output_mask(sample_weight, y_pred)
        if sample_weight is not None:
            sw = _pair(sample_weight, kept)[0].astype(np.float32)
            sw = sw.reshape(sw.shape + (1,) * (kept.ndim - sw.ndim))
            kept = kept * sw
        values = self._fn(Tensor(yt), yp, **self._fn_kwargs)
        Mean.update_state(self, values, kept)


class _NoArgs(_LossMetric):
    _fn_default = None
    _name_default = None

    def __init__(self, name=None, dtype=None):
        super().__init__(type(self)._fn_default, name=name or self._name_default, dtype=dtype)


class KLDivergence(_NoArgs):
    _fn_default, _name_default = staticmethod(_losses.kl_divergence), "kl_divergence"


class Poisson(_NoArgs):
    _fn_default, _name_default = staticmethod(_losses.poisson), "poisson"


class Hinge(_NoArgs):
    _fn_default, _name_default = staticmethod(_losses.hinge), "hinge"


class SquaredHinge(_NoArgs):
    _fn_default, _name_default = staticmethod(_losses.squared_hinge), "squared_hinge"


class CategoricalHinge(_NoArgs):
    _fn_default, _name_default = staticmethod(_losses.categorical_hinge), "categorical_hinge"


class LogCoshError(_NoArgs):
    _fn_default, _name_default = staticmethod(_losses.log_cosh), "logcosh"


class MeanAbsolutePercentageError(_NoArgs):
    _fn_default, _name_default = staticmethod(_losses.mean_absolute_percentage_error), "mean_absolute_percentage_error"


class MeanSquaredLogarithmicError(_NoArgs):
    _fn_default, _name_default = staticmethod(_losses.mean_squared_logarithmic_error), "mean_squared_logarithmic_error"


class CosineSimilarity(_LossMetric):
    def __init__(self, name="cosine_similarity", dtype=None, axis=-1):
        super().__init__(_cosine_similarity, name=name, dtype=dtype, axis=axis)
        self.axis = axis
