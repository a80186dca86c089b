"""FTRL-Proximal (McMahan et al., 2013), Keras form.  With n the accumulator (starting at
``initial_accumulator_value``), z the linear term, c = -learning_rate_power and
l2 = l2_regularization_strength + beta / (2*lr):

    n_new = n + g^2;  z += g + 2*l2_shrinkage*p - (n_new^c - n^c) / lr * p
    p = (clip(z, -l1, l1) - z) / (n_new^c / lr + 2*l2);  n = n_new
"""

from dlgpu.ops._core import array_module
from dlgpu.optimizers.base import Optimizer


class Ftrl(Optimizer):
    def __init__(self, learning_rate=0.001, learning_rate_power=-0.5, initial_accumulator_value=0.1,
                 l1_regularization_strength=0.0, l2_regularization_strength=0.0,
                 l2_shrinkage_regularization_strength=0.0, beta=0.0, weight_decay=None, clipnorm=None,
                 clipvalue=None, global_clipnorm=None, use_ema=False, ema_momentum=0.99,
                 ema_overwrite_frequency=None, name=None, **kwargs):
        super().__init__(learning_rate=learning_rate, name=name, weight_decay=weight_decay, clipnorm=clipnorm,
                         clipvalue=clipvalue, global_clipnorm=global_clipnorm, use_ema=use_ema,
                         ema_momentum=ema_momentum, ema_overwrite_frequency=ema_overwrite_frequency, **kwargs)
        if initial_accumulator_value < 0.0:
            raise ValueError("`initial_accumulator_value` needs to be positive or zero. Received: "
                             f"initial_accumulator_value={initial_accumulator_value}.")
        if learning_rate_power > 0.0:
            raise ValueError("`learning_rate_power` needs to be negative or zero. Received: "
                             f"learning_rate_power={learning_rate_power}.")
        for arg, value in (("l1_regularization_strength", l1_regularization_strength),
                           ("l2_regularization_strength", l2_regularization_strength),
                           ("l2_shrinkage_regularization_strength", l2_shrinkage_regularization_strength)):
            if value < 0.0:
                raise ValueError(f"`{arg}` needs to be positive or zero. Received: {arg}={value}.")
        self.learning_rate_power = learning_rate_power
        self.initial_accumulator_value = initial_accumulator_value
        self.l1_regularization_strength = l1_regularization_strength
        self.l2_regularization_strength = l2_regularization_strength
        self.l2_shrinkage_regularization_strength = l2_shrinkage_regularization_strength
        self.beta = beta
        self._accumulators = []
        self._linears = []

    def build(self, variables):
        new = [v for v in variables if id(v) not in self._index]
        super().build(variables)
        for v in new:
            self._accumulators.append(
                self.add_variable_from_reference(v, "accumulator", initializer=self.initial_accumulator_value))
            self._linears.append(self.add_variable_from_reference(v, "linear"))

    def _update(self, params, grads, lr, step):
        self._apply_weight_decay(params, lr)
        power = -float(self.learning_rate_power)
        l1 = float(self.l1_regularization_strength)
        l2 = float(self.l2_regularization_strength) + float(self.beta) / (2.0 * lr)
        shrinkage = float(self.l2_shrinkage_regularization_strength)
        for p, g, acc, linear in zip(params, grads, self._slots("_accumulators", params),
                                     self._slots("_linears", params)):
            xp = array_module(g)
            f = p.data.dtype.type
            w = p.data
            new_acc = acc + g * g
            new_scale = xp.power(new_acc, f(power))
            sigma = (new_scale - xp.power(acc, f(power))) / f(lr)
            linear += (g + f(2.0 * shrinkage) * w if shrinkage else g) - sigma * w
            quadratic = new_scale / f(lr) + f(2.0 * l2)
            w[...] = (xp.clip(linear, f(-l1), f(l1)) - linear) / quadratic
            acc[...] = new_acc

    def get_config(self):
        return {**super().get_config(), "learning_rate_power": self.learning_rate_power,
                "initial_accumulator_value": self.initial_accumulator_value,
                "l1_regularization_strength": self.l1_regularization_strength,
                "l2_regularization_strength": self.l2_regularization_strength,
                "l2_shrinkage_regularization_strength": self.l2_shrinkage_regularization_strength,
                "beta": self.beta}
