"""LossScaleOptimizer, Keras 3's dynamic loss scaling around an inner optimizer.

fit multiplies the loss by ``scale_loss`` before the backward pass; ``apply`` then
  - with any non-finite gradient: skips the step (the inner optimizer, its iterations included, is
    untouched), halves the scale and resets the growth counter;
  - otherwise: hands the inner optimizer the gradients divided by the scale, then doubles the scale when
    ``dynamic_growth_steps`` finite steps have passed since it last changed.
dlgpu trains in float32, where the scale rarely matters for underflow, but the step skipping does: a batch
whose gradients overflow leaves the weights as they were.  Deciding whether to skip reads one flag from the
device per step.
"""

import numpy as np

from dlgpu.autograd import Tensor
from dlgpu.ops._core import array_module
from dlgpu.optimizers.base import Optimizer, _host_variable

# Keras accepts these base arguments only at their defaults (configs written by older Keras carry them).
_BASE_DEFAULTS = {"weight_decay": None, "clipnorm": None, "global_clipnorm": None, "clipvalue": None,
                  "use_ema": False, "ema_momentum": 0.99, "ema_overwrite_frequency": None,
                  "loss_scale_factor": None, "gradient_accumulation_steps": None}


class LossScaleOptimizer(Optimizer):
    def __init__(self, inner_optimizer, initial_scale=2.0 ** 15, dynamic_growth_steps=2000, name=None, **kwargs):
        if not kwargs.pop("dynamic", True):
            raise ValueError("LossScaleOptimizer no longer supports `dynamic=False`. Instead, simply set "
                             "`loss_scale_factor` directly on the `inner_optimizer`.")
        for arg, default in _BASE_DEFAULTS.items():
            if arg in kwargs and kwargs.pop(arg) != default:
                raise ValueError(f"LossScaleOptimizer does not support `{arg}`. Instead, set `{arg}` on the "
                                 f"`inner_optimizer`.")
        if kwargs:
            raise ValueError(f"LossScaleOptimizer does not support arguments: `{'`, `'.join(kwargs)}`.")
        if not isinstance(inner_optimizer, Optimizer):
            raise TypeError(f"LossScaleOptimizer: `inner_optimizer` must be a dlgpu optimizer instance. Received: "
                            f"inner_optimizer={inner_optimizer!r}")
        if isinstance(inner_optimizer, LossScaleOptimizer):
            raise ValueError("LossScaleOptimizer: `inner_optimizer` is itself a LossScaleOptimizer; the loss "
                             "would be scaled twice.")
        if not float(initial_scale) > 0:
            raise ValueError(f"LossScaleOptimizer: `initial_scale` must be positive. Received: "
                             f"initial_scale={initial_scale}")
        if int(dynamic_growth_steps) != dynamic_growth_steps or dynamic_growth_steps < 1:
            raise ValueError(f"LossScaleOptimizer: `dynamic_growth_steps` must be a positive integer. Received: "
                             f"dynamic_growth_steps={dynamic_growth_steps}")
        super().__init__(learning_rate=0.0, name=name)
        self.inner_optimizer = inner_optimizer
        self.initial_scale = initial_scale
        self.dynamic_growth_steps = dynamic_growth_steps
        # the inner optimizer's own scaling would unscale the gradients a second time
        self.inner_optimizer.loss_scale_factor = None
        self.step_counter = None
        self.dynamic_scale = None

    def build(self, variables):
        if self.step_counter is None:
            # on the host, as the iteration counter: read every step to decide the branch
            self.step_counter = _host_variable(0, np.int64, "step_counter")
            self.dynamic_scale = _host_variable(self.initial_scale, np.float32, "dynamic_scale")
        self.inner_optimizer.build([v for v in variables if id(v) not in self.inner_optimizer._index])
        super().build(variables)

    @property
    def variables(self):
        own = [self._iterations, self._learning_rate]
        if self.step_counter is not None:
            own += [self.step_counter, self.dynamic_scale]
        return own + self.inner_optimizer.variables

    def _scales_loss(self):
        return True

    def scale_loss(self, loss):
        scale = self.dynamic_scale.data if self.built else np.float32(self.initial_scale)
        return loss * np.float32(scale)

    def check_finite(self, grads):
        arrays = [g.data if isinstance(g, Tensor) else g for g in grads if g is not None]
        # one flag per gradient on its device, one transfer for all of them
        flags = [array_module(a).isfinite(a).all() for a in arrays]
        if not flags:
            return True
        return bool(array_module(flags[0]).stack(flags).all())

    def apply(self, grads, trainable_variables=None):
        grads = list(grads)
        if trainable_variables is not None:
            trainable_variables = list(trainable_variables)
            if not self.built:
                self.build(trainable_variables)
            elif any(id(v) not in self._index for v in trainable_variables):
                self.build(trainable_variables)
        elif not self.built:
            raise ValueError("LossScaleOptimizer.apply: pass `trainable_variables` on the first call (the "
                             "optimizer has not been built yet).")
        if not grads:
            return
        if not self.check_finite(grads):
            self.step_counter.data[...] = 0
            self.dynamic_scale.data[...] = self.dynamic_scale.data * np.float32(0.5)
            return
        scale = np.float32(self.dynamic_scale.data)
        unscaled = [None if g is None else (g.data if isinstance(g, Tensor) else g) / scale for g in grads]
        self.inner_optimizer.apply(unscaled, trainable_variables)
        if int(self.step_counter.data) == self.dynamic_growth_steps - 1:
            self.step_counter.data[...] = 0
            self.dynamic_scale.data[...] = self.dynamic_scale.data * np.float32(2.0)
        else:
            self.step_counter.data += 1

    def _gradient_destinations(self, variables):
        return [None] * len(variables)

    def finalize_variable_values(self, var_list):
        self.inner_optimizer.finalize_variable_values(var_list)

    @property
    def learning_rate(self):
        return self.inner_optimizer.learning_rate

    @learning_rate.setter
    def learning_rate(self, value):
        self.inner_optimizer.learning_rate = value

    lr = learning_rate

    def _current_learning_rate(self):
        return self.inner_optimizer._current_learning_rate()

    @property
    def iterations(self):
        return self.inner_optimizer.iterations

    @iterations.setter
    def iterations(self, value):
        self.inner_optimizer.iterations = value

    def get_config(self):
        from dlgpu.saving import serialize_keras_object
        # only the name of the base arguments, as Keras: the others belong to the inner optimizer
        return {"name": self.name, "inner_optimizer": serialize_keras_object(self.inner_optimizer),
                "initial_scale": self.initial_scale, "dynamic_growth_steps": self.dynamic_growth_steps}

    @classmethod
    def from_config(cls, config, custom_objects=None):
        from dlgpu import optimizers
        config = dict(config)
        inner = config.pop("inner_optimizer")
        inner = inner if isinstance(inner, Optimizer) else optimizers.deserialize(inner, custom_objects)
        return cls(inner, **config)

    def __repr__(self):
        return f"<LossScaleOptimizer name={self.name!r} inner_optimizer={self.inner_optimizer!r}>"
