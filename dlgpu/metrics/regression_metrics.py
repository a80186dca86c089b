"""R2Score: the coefficient of determination per output column, from running weighted sums."""

from __future__ import annotations

import warnings

import numpy as np

from dlgpu.backend import device as _device
from dlgpu.metrics.base import Metric, _pair, _result, _squeeze_or_expand
from dlgpu.ops._core import array_module

_AGGREGATIONS = (None, "uniform_average", "variance_weighted_average")


class R2Score(Metric):
    """``1 - sum((y - y_hat)^2) / sum((y - mean(y))^2)`` per column of 2D (batch, outputs) data, aggregated
    by ``class_aggregation``; ``num_regressors > 0`` gives the adjusted R2.  The sums are kept (float64,
    on the inputs' device) so the result over many batches equals the result over all data at once."""

    def __init__(self, class_aggregation="uniform_average", num_regressors=0, name="r2_score", dtype=None):
        if class_aggregation not in _AGGREGATIONS:
            raise ValueError(f"Invalid value for argument `class_aggregation`. Expected one of {_AGGREGATIONS}. "
                             f"Received: class_aggregation={class_aggregation}")
        if num_regressors < 0:
            raise ValueError("Invalid value for argument `num_regressors`. Expected a value >= 0. "
                             f"Received: num_regressors={num_regressors}")
        self.class_aggregation = class_aggregation
        self.num_regressors = num_regressors
        super().__init__(name=name, dtype=dtype)

    def reset_state(self):
        self.sum = self.squared_sum = self.total_mse = self.count = 0.0
        self.num_samples = 0.0
        self._outputs = None

    def update_state(self, y_true, y_pred, sample_weight=None):
        yt, yp = _pair(y_true, y_pred)
        yt, yp = _squeeze_or_expand(yt, yp)
        if yp.ndim != 2 or yt.ndim != 2:
            raise ValueError("R2Score expects 2D inputs with shape (batch_size, output_dim). Received input shapes: "
                             f"y_pred.shape={tuple(yp.shape)} and y_true.shape={tuple(yt.shape)}.")
        if self._outputs is not None and yp.shape[-1] != self._outputs:
            raise ValueError(f"R2Score was built for output_dim={self._outputs}; received y_pred.shape="
                             f"{tuple(yp.shape)}. Call reset_state() before feeding data of another width.")
        xp = array_module(yp)
        yt, yp = yt.astype(np.float64), yp.astype(np.float64)
        if sample_weight is None:
            sw = xp.ones_like(yt)
        else:
            sw = _pair(sample_weight, yp)[0].astype(np.float64)
            if sw.ndim == 1:
                sw = sw[:, None]
            sw = xp.broadcast_to(sw, yt.shape)
        weighted = yt * sw
        self.sum = self.sum + weighted.sum(axis=0)
        self.squared_sum = self.squared_sum + (yt * weighted).sum(axis=0)
        self.total_mse = self.total_mse + ((yt - yp) ** 2 * sw).sum(axis=0)
        self.count = self.count + sw.sum(axis=0)
        # a sample counts once when any of its outputs has a weight (Keras: no N x K inflation)
        self.num_samples = self.num_samples + (sw != 0).any(axis=-1).sum()
        self._outputs = yp.shape[-1]

    def result(self):
        if self._outputs is None:
            return _result(np.float64("nan") if self.class_aggregation else np.zeros(0))
        total_sum, squared_sum, total_mse, count = (_device.to_numpy(a) for a in (
            self.sum, self.squared_sum, self.total_mse, self.count))
        with np.errstate(divide="ignore", invalid="ignore"):
            mean = total_sum / count
            total = squared_sum - total_sum * mean
            raw = 1.0 - total_mse / total
        raw = np.where(np.isinf(raw), 0.0, raw)
        if self.class_aggregation == "uniform_average":
            score = raw.mean()
        elif self.class_aggregation == "variance_weighted_average":
            with np.errstate(divide="ignore", invalid="ignore"):
                score = (total * raw).sum() / total.sum()
        else:
            score = raw
        if self.num_regressors:
            n = float(_device.to_numpy(self.num_samples))
            p = self.num_regressors
            if p > n - 1:
                warnings.warn("More independent predictors than datapoints in adjusted R2 score. Falling back to "
                              "standard R2 score.", stacklevel=2)
            elif p == n - 1:
                warnings.warn("Division by zero in Adjusted R2 score. Falling back to standard R2 score.", stacklevel=2)
            else:
                score = 1.0 - (1.0 - score) * (n - 1.0) / (n - p - 1.0)
        return _result(score)

    def get_config(self):
        return {**super().get_config(), "class_aggregation": self.class_aggregation,
                "num_regressors": self.num_regressors}
