"""The metric base classes (Metric, Mean, Sum, MeanMetricWrapper) and the array helpers they share.

State is accumulated in float64 with the inputs' array module: numpy on the CPU; on the GPU the sums stay
on the device (no sync per batch) until ``result()`` converts them once.
"""

from __future__ import annotations


import numpy as np

from dlgpu.autograd import Tensor
from dlgpu.backend import device as _device
from dlgpu.naming import auto_name
from dlgpu.ops._core import array_module

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


# -- base classes -------------------------------------------------------------------------------------

class Metric:
    """Stateful metric: ``update_state`` per batch, ``result`` any time, ``reset_state`` per epoch.

    A metric of one's own follows Keras's contract: state made by ``add_weight`` after
    ``super().__init__``, updated with ``assign``/``assign_add``; the default ``reset_state`` zeroes it."""

    def __init__(self, name=None, dtype=None):
        self.name = name or auto_name(type(self).__name__)
        self.dtype = dtype or "float32"
        self._variables = []
        # dlgpu's own metrics keep their state as attributes that reset_state sets, so the state starts with
        # that reset_state, the nearest one dlgpu defines.  A subclass's override is not called here: as in
        # Keras, it may read variables that its __init__ only creates after super().__init__().
        _own_reset_state(type(self))(self)

    def update_state(self, *args, **kwargs):
        raise NotImplementedError

    def result(self):
        raise NotImplementedError

    # -- Keras's stateless forms: the state passed in and returned, the metric left as it was ---------------
    def _stateless_mapping(self, metric_variables, method):
        if not self._variables:
            raise NotImplementedError(
                f"{type(self).__name__}.{method}: this metric keeps its state in host arrays, not in variables "
                f"(dlgpu's built-in metrics accumulate in float64 on the host), so there is no variable state to "
                f"pass in and out.  The stateless forms work for metrics whose state is made with add_variable.")
        if len(metric_variables) != len(self._variables):
            raise ValueError(f"Argument `metric_variables` must be a list of tensors corresponding 1:1 to "
                             f"{type(self).__name__}().variables. Received list with length {len(metric_variables)}, "
                             f"but expected {len(self._variables)} variables.")
        return list(zip(self._variables, metric_variables))

    def stateless_update_state(self, metric_variables, *args, **kwargs):
        """update_state on these values of the metric's variables; returns the updated values."""
        from dlgpu.scopes import StatelessScope
        with StatelessScope(state_mapping=self._stateless_mapping(metric_variables, "stateless_update_state")) \
                as scope:
            self.update_state(*args, **kwargs)
        return [scope.get_current_value(v) for v in self._variables]

    def stateless_result(self, metric_variables):
        """result() for these values of the metric's variables."""
        from dlgpu.scopes import StatelessScope
        with StatelessScope(state_mapping=self._stateless_mapping(metric_variables, "stateless_result")):
            return self.result()

    def stateless_reset_state(self):
        """The values reset_state would give the variables, which keep theirs."""
        from dlgpu.scopes import StatelessScope
        self._stateless_mapping(list(self._variables), "stateless_reset_state")
        with StatelessScope() as scope:
            self.reset_state()
        return [v if scope.get_current_value(v) is None else scope.get_current_value(v) for v in self._variables]

    def reset_state(self):
        """Keras's default: every variable made by add_variable back to zero."""
        for variable in self._variables:
            variable.assign(0)

    def add_variable(self, shape, initializer, dtype=None, aggregation="sum", name=None):
        """A non-trainable state variable, as Keras's Metric.add_variable (``aggregation`` only matters to
        distributed training, which dlgpu does not do; it is checked and kept for the config's sake)."""
        from dlgpu import initializers
        from dlgpu.autograd import Variable
        if aggregation not in ("none", "mean", "sum", "only_first_replica"):
            raise ValueError(f"Metric '{self.name}'.add_variable: invalid `aggregation`; expected one of "
                             f"'none', 'mean', 'sum', 'only_first_replica'. Received: aggregation={aggregation!r}")
        if initializer is None:
            raise ValueError(f"Metric '{self.name}'.add_variable: `initializer` is required (e.g. 'zeros').")
        shape = tuple(int(s) for s in (shape or ()))
        dtype = dtype or self.dtype
        init = initializers.get(initializer)
        variable = Variable(init(shape, dtype) if callable(init) else init, shape=shape, dtype=dtype,
                            trainable=False, name=name)
        variable.path = f"{self.name}/{variable.name}"
        self._variables.append(variable)
        return variable

    def add_weight(self, shape=(), initializer=None, dtype=None, name=None):
        return self.add_variable(shape, "zeros" if initializer is None else initializer, dtype=dtype, name=name)

    def __call__(self, *args, **kwargs):
        self.update_state(*args, **kwargs)
        return self.result()

    @property
    def variables(self):
        return list(self._variables)

    def get_config(self):
        return {"name": self.name, "dtype": self.dtype}

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def __repr__(self):
        return f"<{type(self).__name__} name={self.name}>"


def _own_reset_state(cls):
    for klass in cls.__mro__:
        if "reset_state" in vars(klass) and klass.__module__.startswith("dlgpu."):
            return vars(klass)["reset_state"]
    return Metric.reset_state


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
            if sw.ndim > 1:  # Keras's reduce_to_samplewise_values: weights and values both per sample
                sw = sw.mean(axis=tuple(range(1, sw.ndim)))
                v = v.mean(axis=tuple(range(1, v.ndim)))
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


def with_output_mask(sample_weight, y_pred):
    """Keras's MeanMetricWrapper: a mask riding on the prediction becomes a (further) sample weight, so
    padded steps of a sequence output do not count."""
    mask = getattr(y_pred, "_keras_mask", None)
    if mask is None:
        return sample_weight
    weights = _array(mask).astype(np.float32)
    if sample_weight is None:
        return weights
    sw = _array(sample_weight)
    if array_module(sw) is not array_module(weights):
        sw = array_module(weights).asarray(_device.to_numpy(sw))
    weights, sw = _squeeze_or_expand(weights, sw.astype(np.float32))
    return weights * sw


class MeanMetricWrapper(Mean):
    """Mean over samples of ``fn(y_true, y_pred, **kwargs)``."""

    def __init__(self, fn, name=None, dtype=None, **kwargs):
        self._fn = fn
        self._fn_kwargs = kwargs
        super().__init__(name=name or getattr(fn, "__name__", None), dtype=dtype)

    def update_state(self, y_true, y_pred, sample_weight=None):
        sample_weight = with_output_mask(sample_weight, y_pred)
        yt, yp = _pair(y_true, y_pred)
        values = self._fn(yt, yp, **self._fn_kwargs)
        super().update_state(values, sample_weight)

    def get_config(self):
        return {**super().get_config(), **self._fn_kwargs}
