"""Nadam, Keras form (Dozat's momentum schedule mu_t = b1*(1 - 0.5*0.96^t); torch's NAdam with
``momentum_decay=1``, where torch's default 4e-3 stretches the same schedule over 250x more steps):

    m = b1*m + (1-b1)*g;  v = b2*v + (1-b2)*g^2;  mu_prod_t = mu_prod_{t-1} * mu_t
    m_hat = mu_{t+1}*m / (1 - mu_prod_t*mu_{t+1}) + (1-mu_t)*g / (1 - mu_prod_t)
    p -= lr * m_hat / (sqrt(v / (1-b2^t)) + eps)

mu_prod is optimizer state (a float32 scalar, as in Keras), saved with the other variables.
"""

import numpy as np

from dlgpu.ops._core import array_module
from dlgpu.optimizers.base import Optimizer, _host_variable, hyperparameter_value


class Nadam(Optimizer):
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
        self._momentums = []
        self._velocities = []
        self._u_product = None  # made by the first build, as Keras does

    @property
    def variables(self):
        return super().variables + ([self._u_product] if self._u_product is not None else [])

    def build(self, variables):
        new = [v for v in variables if id(v) not in self._index]
        super().build(variables)
        for v in new:
            self._momentums.append(self.add_variable_from_reference(v, "momentum"))
            self._velocities.append(self.add_variable_from_reference(v, "velocity"))
        if self._u_product is None:
            self._u_product = _host_variable(1.0, np.float32, "u_product")

    def _update(self, params, grads, lr, step):
        self._apply_weight_decay(params, lr)
        b1, b2 = hyperparameter_value(self.beta_1), hyperparameter_value(self.beta_2)
        u_t = b1 * (1.0 - 0.5 * 0.96 ** step)
        u_next = b1 * (1.0 - 0.5 * 0.96 ** (step + 1))
        # Once per step, whatever subset of the variables this step updates (Keras: _backend_update_step).
        self._u_product.data[...] = np.float32(self._u_product.data) * np.float32(u_t)
        u_product = float(self._u_product.data)
        momentum_scale = u_next / (1.0 - u_product * u_next)
        gradient_scale = (1.0 - u_t) / (1.0 - u_product)
        bias_correction_2 = 1.0 - b2 ** step
        for p, g, m, v in zip(params, grads, self._slots("_momentums", params), self._slots("_velocities", params)):
            xp = array_module(g)
            f = p.data.dtype.type
            m += (g - m) * f(1.0 - b1)
            v += (g * g - v) * f(1.0 - b2)
            m_hat = m * f(momentum_scale) + g * f(gradient_scale)
            p.data -= f(lr) * m_hat / (xp.sqrt(v / f(bias_correction_2)) + f(self.epsilon))

    def get_config(self):
        return {**super().get_config(), "beta_1": self.beta_1, "beta_2": self.beta_2, "epsilon": self.epsilon}
