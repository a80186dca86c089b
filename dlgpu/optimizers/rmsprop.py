"""RMSprop, Keras form: eps sits *inside* the square root (torch adds it outside):

    v = rho*v + (1-rho)*g^2;  [centered: a = rho*a + (1-rho)*g;  v_eff = v - a^2]
    step = lr * g / sqrt(v_eff + eps);  with momentum: mom = momentum*mom + step;  p -= mom (else p -= step)
"""

from dlgpu.ops._core import array_module
from dlgpu.optimizers.base import Optimizer


class RMSprop(Optimizer):
    def __init__(self, learning_rate=0.001, rho=0.9, momentum=0.0, epsilon=1e-7, centered=False,
                 weight_decay=None, clipnorm=None, clipvalue=None, global_clipnorm=None, use_ema=False,
                 ema_momentum=0.99, ema_overwrite_frequency=None, loss_scale_factor=None,
                 gradient_accumulation_steps=None, name=None, **kwargs):
        super().__init__(learning_rate=learning_rate, name=name, weight_decay=weight_decay, clipnorm=clipnorm,
                         clipvalue=clipvalue, global_clipnorm=global_clipnorm, use_ema=use_ema,
                         ema_momentum=ema_momentum, ema_overwrite_frequency=ema_overwrite_frequency,
                         loss_scale_factor=loss_scale_factor,
                         gradient_accumulation_steps=gradient_accumulation_steps, **kwargs)
        self.rho = rho
        self.momentum = momentum
        self.epsilon = epsilon
        self.centered = centered
        self._velocities = []
        self._momentums = []
        self._average_gradients = []

    def build(self, variables):
        new = [v for v in variables if id(v) not in self._index]
        super().build(variables)
        for v in new:
            self._velocities.append(self.add_variable_from_reference(v, "velocity"))
            if self.momentum > 0:
                self._momentums.append(self.add_variable_from_reference(v, "momentum"))
            if self.centered:
                self._average_gradients.append(self.add_variable_from_reference(v, "average_gradient"))

    def _update(self, params, grads, lr, step):
        self._apply_weight_decay(params, lr)
        velocities = self._slots("_velocities", params)
        moms = self._slots("_momentums", params) if self.momentum > 0 else [None] * len(params)
        avgs = self._slots("_average_gradients", params) if self.centered else [None] * len(params)
        for p, g, v, mom, avg in zip(params, grads, velocities, moms, avgs):
            xp = array_module(g)
            f = p.data.dtype.type
            v *= f(self.rho)
            v += f(1.0 - self.rho) * (g * g)
            if avg is not None:
                avg *= f(self.rho)
                avg += f(1.0 - self.rho) * g
                denominator = v - avg * avg + f(self.epsilon)
            else:
                denominator = v + f(self.epsilon)
            increment = f(lr) * g / xp.sqrt(denominator)
            if mom is not None:
                mom *= f(self.momentum)
                mom += increment
                p.data -= mom
            else:
                p.data -= increment

    def get_config(self):
        return {**super().get_config(), "rho": self.rho, "momentum": self.momentum, "epsilon": self.epsilon,
                "centered": self.centered}
