"""Adadelta, Keras form (as torch's; eps inside both square roots):

    a = rho*a + (1-rho)*g^2;  delta = -sqrt(d + eps) / sqrt(a + eps) * g
    d = rho*d + (1-rho)*delta^2;  p += lr * delta
"""

from dlgpu.ops._core import array_module
from dlgpu.optimizers.base import Optimizer


class Adadelta(Optimizer):
    def __init__(self, learning_rate=0.001, rho=0.95, epsilon=1e-7, weight_decay=None, clipnorm=None,
                 clipvalue=None, global_clipnorm=None, use_ema=False, ema_momentum=0.99,
                 ema_overwrite_frequency=None, loss_scale_factor=None, gradient_accumulation_steps=None,
                 name=None, **kwargs):
        super().__init__(learning_rate=learning_rate, name=name, weight_decay=weight_decay, clipnorm=clipnorm,
                         clipvalue=clipvalue, global_clipnorm=global_clipnorm, use_ema=use_ema,
                         ema_momentum=ema_momentum, ema_overwrite_frequency=ema_overwrite_frequency,
                         loss_scale_factor=loss_scale_factor,
                         gradient_accumulation_steps=gradient_accumulation_steps, **kwargs)
        self.rho = rho
        self.epsilon = epsilon
        self._accumulated_grads = []
        self._accumulated_delta_vars = []

    def build(self, variables):
        new = [v for v in variables if id(v) not in self._index]
        super().build(variables)
        for v in new:
            self._accumulated_grads.append(self.add_variable_from_reference(v, "accumulated_grad"))
            self._accumulated_delta_vars.append(self.add_variable_from_reference(v, "accumulated_delta_var"))

    def _update(self, params, grads, lr, step):
        self._apply_weight_decay(params, lr)
        rho = float(self.rho)
        for p, g, acc_g, acc_d in zip(params, grads, self._slots("_accumulated_grads", params),
                                      self._slots("_accumulated_delta_vars", params)):
            xp = array_module(g)
            f = p.data.dtype.type
            eps = f(self.epsilon)
            acc_g *= f(rho)
            acc_g += f(1.0 - rho) * (g * g)
            delta = xp.sqrt(acc_d + eps) * g / xp.sqrt(acc_g + eps)  # the step is -delta
            acc_d *= f(rho)
            acc_d += f(1.0 - rho) * (delta * delta)
            p.data -= f(lr) * delta

    def get_config(self):
        return {**super().get_config(), "rho": self.rho, "epsilon": self.epsilon}
