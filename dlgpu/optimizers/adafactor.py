"""Adafactor (Shazeer & Stern, 2018), Keras form.  For a parameter of rank >= 2 the second moment is
kept factored over the last two axes (row means r, column means c); below rank 2 it is kept whole (v).
With t the step and s = g^2 + eps_1:

    b2_t = 1 - t^beta_2_decay;  rho_t = min(lr, 1/sqrt(t));  alpha_t = max(eps_2, rms(p)) * rho_t
    rank >= 2: r = b2_t*r + (1-b2_t)*mean(s, -1);  c = b2_t*c + (1-b2_t)*mean(s, -2)
               v = (r / mean(r, -1))[..., None] * c[..., None, :]
    else:      v = b2_t*v + (1-b2_t)*s
    u = g / sqrt(v);  p -= alpha_t * u / max(1, rms(u) / clip_threshold)

``relative_step`` is kept for Keras's config only: Keras caps a constant rate at 1/sqrt(t) when it is
set, which rho_t does anyway.  v is a full-size slot even when factored, as in Keras.
"""

import numpy as np

from dlgpu.autograd import Variable
from dlgpu.ops._core import array_module
from dlgpu.optimizers.base import Optimizer, slot_name


def _rms(xp, x):
    return xp.sqrt(xp.mean(x * x))


class Adafactor(Optimizer):
    def __init__(self, learning_rate=0.001, beta_2_decay=-0.8, epsilon_1=1e-30, epsilon_2=1e-3,
                 clip_threshold=1.0, relative_step=True, weight_decay=None, clipnorm=None, clipvalue=None,
                 global_clipnorm=None, use_ema=False, ema_momentum=0.99, ema_overwrite_frequency=None,
                 name=None, **kwargs):
        super().__init__(learning_rate=learning_rate, name=name, weight_decay=weight_decay, clipnorm=clipnorm,
                         clipvalue=clipvalue, global_clipnorm=global_clipnorm, use_ema=use_ema,
                         ema_momentum=ema_momentum, ema_overwrite_frequency=ema_overwrite_frequency, **kwargs)
        self.beta_2_decay = beta_2_decay
        self.epsilon_1 = epsilon_1
        self.epsilon_2 = epsilon_2
        self.clip_threshold = clip_threshold
        self.relative_step = relative_step
        self._r = []
        self._c = []
        self._v = []

    def _add_slot(self, reference, shape, name):
        """A zero slot of ``shape`` on the reference's device (the factored moments are not its shape)."""
        data = reference.data
        slot = Variable(np.zeros((), data.dtype), trainable=False, name=slot_name(reference, name))
        slot.data = array_module(data).zeros(shape, data.dtype)
        self._slot_variables.append(slot)
        return slot

    def build(self, variables):
        new = [v for v in variables if id(v) not in self._index]
        super().build(variables)
        for var in new:
            shape = tuple(var.data.shape)
            factored = len(shape) >= 2
            # Below rank 2 Keras still makes r and c, as scalar placeholders; kept so the states line up.
            self._r.append(self._add_slot(var, shape[:-1] if factored else (), "r"))
            self._c.append(self._add_slot(var, shape[:-2] + shape[-1:] if factored else (), "c"))
            self._v.append(self.add_variable_from_reference(var, "velocity"))

    def _update(self, params, grads, lr, step):
        self._apply_weight_decay(params, lr)
        rho_t = min(lr, 1.0 / np.sqrt(step))
        beta_2_t = 1.0 - float(step) ** float(self.beta_2_decay)
        for p, g, r, c, v in zip(params, grads, self._slots("_r", params), self._slots("_c", params),
                                 self._slots("_v", params)):
            xp = array_module(g)
            f = p.data.dtype.type
            alpha_t = xp.maximum(f(self.epsilon_2), _rms(xp, p.data)) * f(rho_t)
            square = g * g + f(self.epsilon_1)
            if g.ndim >= 2:
                r *= f(beta_2_t)
                r += f(1.0 - beta_2_t) * xp.mean(square, axis=-1)
                c *= f(beta_2_t)
                c += f(1.0 - beta_2_t) * xp.mean(square, axis=-2)
                v[...] = (r / xp.mean(r, axis=-1, keepdims=True))[..., None] * c[..., None, :]
            else:
                v *= f(beta_2_t)
                v += f(1.0 - beta_2_t) * square
            u = g / xp.sqrt(v)
            u /= xp.maximum(f(1.0), _rms(xp, u) / f(self.clip_threshold))
            p.data -= alpha_t * u

    def get_config(self):
        return {**super().get_config(), "beta_2_decay": self.beta_2_decay, "epsilon_1": self.epsilon_1,
                "epsilon_2": self.epsilon_2, "clip_threshold": self.clip_threshold,
                "relative_step": self.relative_step}
