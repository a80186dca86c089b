"""Lion (Chen et al., 2023), Keras form: the step is the sign of an interpolation, the momentum another:

    p -= lr * sign(b1*m + (1-b1)*g);  m = b2*m + (1-b2)*g
"""

from dlgpu.ops._core import array_module
from dlgpu.optimizers.base import Optimizer


class Lion(Optimizer):
    def __init__(self, learning_rate=0.001, beta_1=0.9, beta_2=0.99, weight_decay=None, clipnorm=None,
                 clipvalue=None, global_clipnorm=None, use_ema=False, ema_momentum=0.99,
                 ema_overwrite_frequency=None, name=None, **kwargs):
        super().__init__(learning_rate=learning_rate, name=name, weight_decay=weight_decay, clipnorm=clipnorm,
                         clipvalue=clipvalue, global_clipnorm=global_clipnorm, use_ema=use_ema,
                         ema_momentum=ema_momentum, ema_overwrite_frequency=ema_overwrite_frequency, **kwargs)
        if beta_1 <= 0 or beta_1 > 1:
            raise ValueError("Argument `beta_1` must be in the [0, 1] range. Otherwise, the optimizer degenerates "
                             f"to SignSGD. Received: beta_1={beta_1}.")
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self._momentums = []

    def build(self, variables):
        new = [v for v in variables if id(v) not in self._index]
        super().build(variables)
        self._momentums.extend(self.add_variable_from_reference(v, "momentum") for v in new)

    def _update(self, params, grads, lr, step):
        self._apply_weight_decay(params, lr)
        b1, b2 = float(self.beta_1), float(self.beta_2)
        for p, g, m in zip(params, grads, self._slots("_momentums", params)):
            f = p.data.dtype.type
            p.data -= f(lr) * array_module(g).sign(m * f(b1) + g * f(1.0 - b1))
            m *= f(b2)
            m += g * f(1.0 - b2)

    def get_config(self):
        return {**super().get_config(), "beta_1": self.beta_1, "beta_2": self.beta_2}
