"""Adagrad, Keras form: acc += g^2;  p -= lr * g / sqrt(acc + eps)  (acc starts at 0.1; eps inside the root)."""

from dlgpu.ops._core import array_module
from dlgpu.optimizers.base import Optimizer


class Adagrad(Optimizer):
    def __init__(self, learning_rate=0.001, initial_accumulator_value=0.1, epsilon=1e-7, weight_decay=None,
                 clipnorm=None, clipvalue=None, global_clipnorm=None, use_ema=False, ema_momentum=0.99,
                 ema_overwrite_frequency=None, loss_scale_factor=None, gradient_accumulation_steps=None,
                 name=None, **kwargs):
        super().__init__(learning_rate=learning_rate, name=name, weight_decay=weight_decay, clipnorm=clipnorm,
                         clipvalue=clipvalue, global_clipnorm=global_clipnorm, use_ema=use_ema,
                         ema_momentum=ema_momentum, ema_overwrite_frequency=ema_overwrite_frequency,
                         loss_scale_factor=loss_scale_factor,
                         gradient_accumulation_steps=gradient_accumulation_steps, **kwargs)
        self.initial_accumulator_value = initial_accumulator_value
        self.epsilon = epsilon
        self._accumulators = []

    def build(self, variables):
        new = [v for v in variables if id(v) not in self._index]
        super().build(variables)
        self._accumulators.extend(
            self.add_variable_from_reference(v, "accumulator", initializer=self.initial_accumulator_value)
            for v in new)

    def _update(self, params, grads, lr, step):
        self._apply_weight_decay(params, lr)
        for p, g, acc in zip(params, grads, self._slots("_accumulators", params)):
            f = p.data.dtype.type
            acc += g * g
            p.data -= f(lr) * g / array_module(g).sqrt(acc + f(self.epsilon))

    def get_config(self):
        return {**super().get_config(), "initial_accumulator_value": self.initial_accumulator_value,
                "epsilon": self.epsilon}
