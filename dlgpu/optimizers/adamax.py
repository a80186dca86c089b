"""Adamax, Keras form (eps added to the infinity norm u; torch adds it to |g| inside the max):

    m = b1*m + (1-b1)*g;  u = max(b2*u, |g|);  p -= lr * m / ((1 - b1^t) * (u + eps))
"""

from dlgpu.ops._core import array_module
from dlgpu.optimizers.base import Optimizer


class Adamax(Optimizer):
    def __init__(self, learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7, weight_decay=None,
                 clipnorm=None, clipvalue=None, global_clipnorm=None, use_ema=False, ema_momentum=0.99,
                 ema_overwrite_frequency=None, loss_scale_factor=None, gradient_accumulation_steps=None,
                 name=None, **kwargs):
        super().__init__(learning_rate=learning_rate, name=name, weight_decay=weight_decay, clipnorm=clipnorm,
                         clipvalue=clipvalue, global_clipnorm=global_clipnorm, use_ema=use_ema,
                         ema_momentum=ema_momentum, ema_overwrite_frequency=ema_overwrite_frequency,
                         loss_scale_factor=loss_scale_factor,
                         gradient_accumulation_steps=gradient_accumulation_steps, **kwargs)
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon
        self._m = []
        self._u = []

    def build(self, variables):
        new = [v for v in variables if id(v) not in self._index]
        super().build(variables)
        for v in new:
            self._m.append(self.add_variable_from_reference(v, "momentum"))
            self._u.append(self.add_variable_from_reference(v, "norm"))

    def _update(self, params, grads, lr, step):
        self._apply_weight_decay(params, lr)
        b1, b2 = float(self.beta_1), float(self.beta_2)
        step_size = lr / (1.0 - b1 ** step)
        for p, g, m, u in zip(params, grads, self._slots("_m", params), self._slots("_u", params)):
            xp = array_module(g)
            f = p.data.dtype.type
            m += (g - m) * f(1.0 - b1)
            u *= f(b2)
            xp.maximum(u, xp.abs(g), out=u)
            p.data -= f(step_size) * m / (u + f(self.epsilon))

    def get_config(self):
        return {**super().get_config(), "beta_1": self.beta_1, "beta_2": self.beta_2, "epsilon": self.epsilon}
