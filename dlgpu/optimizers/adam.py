"""Adam and AdamW, Keras form (eps added to sqrt(v), bias corrections folded into the step size):

    m = b1*m + (1-b1)*g;  v = b2*v + (1-b2)*g^2
    alpha = lr * sqrt(1 - b2^t) / (1 - b1^t);  p -= alpha * m / (sqrt(v) + eps)

AdamW (and Adam with ``weight_decay``) first decays p -= lr*wd*p.  Without amsgrad the whole update is one
``backend.adam_update`` call over all parameters.
"""

import numpy as np

from dlgpu.ops._core import array_module
from dlgpu.optimizers.base import Optimizer


class Adam(Optimizer):
    def __init__(self, learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7, amsgrad=False,
                 weight_decay=None, clipnorm=None, clipvalue=None, global_clipnorm=None, use_ema=False,
                 ema_momentum=0.99, ema_overwrite_frequency=None, loss_scale_factor=None,
                 gradient_accumulation_steps=None, name="adam", **kwargs):
        super().__init__(learning_rate=learning_rate, name=name, weight_decay=weight_decay, clipnorm=clipnorm,
                         clipvalue=clipvalue, global_clipnorm=global_clipnorm, use_ema=use_ema,
                         ema_momentum=ema_momentum, ema_overwrite_frequency=ema_overwrite_frequency,
                         loss_scale_factor=loss_scale_factor,
                         gradient_accumulation_steps=gradient_accumulation_steps, **kwargs)
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon
        self.amsgrad = amsgrad
        self._momentums = []
        self._velocities = []
        self._velocity_hats = []

    def build(self, variables):
        new = [v for v in variables if id(v) not in self._index]
        super().build(variables)
        for v in new:
            self._momentums.append(self.add_variable_from_reference(v, "momentum"))
            self._velocities.append(self.add_variable_from_reference(v, "velocity"))
            if self.amsgrad:
                self._velocity_hats.append(self.add_variable_from_reference(v, "velocity_hat"))

    def _update(self, params, grads, lr, step):
        b1 = float(self.beta_1() if callable(self.beta_1) else self.beta_1)
        b2 = float(self.beta_2() if callable(self.beta_2) else self.beta_2)
        decay = self._fused_weight_decay(params, lr)
        ms = self._slots("_momentums", params)
        vs = self._slots("_velocities", params)
        if not self.amsgrad:
            self._backend(params).adam_update([p.data for p in params], grads, ms, vs, lr, b1, b2,
                                              self.epsilon, step, decay)
            return
        # amsgrad has no primitive: the same rule with v replaced by its running maximum.
        alpha = lr * np.sqrt(1.0 - b2 ** step) / (1.0 - b1 ** step)
        for p, g, m, v, v_hat in zip(params, grads, ms, vs, self._slots("_velocity_hats", params)):
            xp = array_module(g)
            d = p.data
            if decay:
                d *= d.dtype.type(1.0 - lr * decay)
            m += (g - m) * d.dtype.type(1.0 - b1)
            v += (g * g - v) * d.dtype.type(1.0 - b2)
            xp.maximum(v_hat, v, out=v_hat)
            d -= d.dtype.type(alpha) * m / (xp.sqrt(v_hat) + d.dtype.type(self.epsilon))

    def get_config(self):
        return {**super().get_config(), "beta_1": self.beta_1, "beta_2": self.beta_2, "epsilon": self.epsilon,
                "amsgrad": self.amsgrad}


class AdamW(Adam):
    def __init__(self, learning_rate=0.001, weight_decay=0.004, beta_1=0.9, beta_2=0.999, epsilon=1e-7,
                 amsgrad=False, clipnorm=None, clipvalue=None, global_clipnorm=None, use_ema=False,
                 ema_momentum=0.99, ema_overwrite_frequency=None, loss_scale_factor=None,
                 gradient_accumulation_steps=None, name="adamw", **kwargs):
        if weight_decay is None:
            raise ValueError("Argument `weight_decay` must be a float. Received: weight_decay=None")
        super().__init__(learning_rate=learning_rate, beta_1=beta_1, beta_2=beta_2, epsilon=epsilon,
                         amsgrad=amsgrad, name=name, weight_decay=weight_decay, clipnorm=clipnorm,
                         clipvalue=clipvalue, global_clipnorm=global_clipnorm, use_ema=use_ema,
                         ema_momentum=ema_momentum, ema_overwrite_frequency=ema_overwrite_frequency,
                         loss_scale_factor=loss_scale_factor,
                         gradient_accumulation_steps=gradient_accumulation_steps, **kwargs)
