"""LAMB (You et al., 2019), Keras form: Adam's bias-corrected direction, rescaled per variable by the trust
ratio ||w|| / ||direction|| (1 when either norm is 0):

    m += (1-b1)(g - m);  v += (1-b2)(g^2 - v);  u = (m / (1-b1^t)) / (sqrt(v / (1-b2^t)) + eps)
    w -= ratio * lr * u
"""

from dlgpu.ops._core import array_module
from dlgpu.optimizers.base import Optimizer


class Lamb(Optimizer):
    def __init__(self, learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7, weight_decay=None, clipnorm=None,
                 clipvalue=None, global_clipnorm=None, use_ema=False, ema_momentum=0.99,
                 ema_overwrite_frequency=None, name=None, **kwargs):
        super().__init__(learning_rate=learning_rate, name=name, weight_decay=weight_decay, clipnorm=clipnorm,
                         clipvalue=clipvalue, global_clipnorm=global_clipnorm, use_ema=use_ema,
                         ema_momentum=ema_momentum, ema_overwrite_frequency=ema_overwrite_frequency, **kwargs)
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon
        self._momentums = []
        self._velocities = []

    def build(self, variables):
        new = [v for v in variables if id(v) not in self._index]
        super().build(variables)
        self._momentums.extend(self.add_variable_from_reference(v, "momentum") for v in new)
        self._velocities.extend(self.add_variable_from_reference(v, "velocity") for v in new)

    def _update(self, params, grads, lr, step):
        self._apply_weight_decay(params, lr)
        b1, b2 = float(self.beta_1), float(self.beta_2)
        for p, g, m, v in zip(params, grads, self._slots("_momentums", params), self._slots("_velocities", params)):
            xp = array_module(g)
            f = p.data.dtype.type
            m += (g - m) * f(1.0 - b1)
            v += (g * g - v) * f(1.0 - b2)
            # Keras raises the float32 betas to the step in float32: the same rounding of the bias corrections
            update = (m / (f(1) - f(b1) ** f(step))) / (xp.sqrt(v / (f(1) - f(b2) ** f(step))) + f(self.epsilon))
            # the norms stay on the device: no host sync per variable
            w_norm, u_norm = xp.sqrt((p.data * p.data).sum()), xp.sqrt((update * update).sum())
            ratio = xp.where((w_norm > 0) & (u_norm > 0), w_norm / xp.where(u_norm > 0, u_norm, 1), 1).astype(
                p.data.dtype)
            p.data -= ratio * f(lr) * update

    def get_config(self):
        return {**super().get_config(), "beta_1": self.beta_1, "beta_2": self.beta_2, "epsilon": self.epsilon}
