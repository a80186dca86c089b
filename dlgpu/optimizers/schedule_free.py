"""Schedule-Free AdamW (Defazio et al., 2024), Keras 3's form.  Per variable y (the model's weight), z (the
``momentum`` slot, starting as a copy of y) and v (``velocity``); with w = 1/t and lr warmed up linearly
over ``warmup_steps``:

    v += (1-b2)(g^2 - v);  z_new = z - lr * g / (sqrt(v / (1-b2^t)) + eps)
    x = (y - (1-b1) z) / b1                      (the average, recovered from y and the old z)
    y = (1-b1) z_new + b1 ((1-w) x + w z_new)

Keras keeps no separate evaluation weights (no train/eval swap): the model always holds y, and so here.
Keras's torch backend reads "the old z" after updating z in place (its ``momentum.value`` is the same tensor),
so from the second step on it recovers x from the new z; this follows the rule as Keras writes it, which is
what its other backends compute (tests/keras_reference/test_functions.py compares with Keras with that
aliasing removed).
"""

from dlgpu.ops._core import array_module
from dlgpu.optimizers.base import Optimizer, hyperparameter_value


class ScheduleFreeAdamW(Optimizer):
    def __init__(self, learning_rate=0.0025, beta_1=0.9, beta_2=0.999, epsilon=1e-8, warmup_steps=0,
                 weight_decay=None, clipnorm=None, clipvalue=None, global_clipnorm=None, use_ema=False,
                 ema_momentum=0.99, ema_overwrite_frequency=None, loss_scale_factor=None,
                 gradient_accumulation_steps=None, name=None, **kwargs):
        super().__init__(learning_rate=learning_rate, name=name, weight_decay=weight_decay, clipnorm=clipnorm,
                         clipvalue=clipvalue, global_clipnorm=global_clipnorm, use_ema=use_ema,
                         ema_momentum=ema_momentum, ema_overwrite_frequency=ema_overwrite_frequency,
                         loss_scale_factor=loss_scale_factor,
                         gradient_accumulation_steps=gradient_accumulation_steps, **kwargs)
        if int(warmup_steps) != warmup_steps or warmup_steps < 0:
            raise ValueError(f"ScheduleFreeAdamW: `warmup_steps` must be a non-negative integer. Received: "
                             f"warmup_steps={warmup_steps}")
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon
        self.warmup_steps = warmup_steps
        self._momentums = []
        self._velocities = []

    def build(self, variables):
        new = [v for v in variables if id(v) not in self._index]
        super().build(variables)
        for var in new:
            momentum = self.add_variable_from_reference(var, "momentum")
            momentum.data[...] = var.data  # z starts at the weights
            self._momentums.append(momentum)
        self._velocities.extend(self.add_variable_from_reference(v, "velocity") for v in new)

    def _update(self, params, grads, lr, step):
        self._apply_weight_decay(params, lr)
        b1, b2 = hyperparameter_value(self.beta_1), hyperparameter_value(self.beta_2)
        for p, g, z, v in zip(params, grads, self._slots("_momentums", params), self._slots("_velocities", params)):
            xp = array_module(g)
            f = p.data.dtype.type
            t, b1f, b2f = f(step), f(b1), f(b2)
            rate = f(lr)
            if self.warmup_steps > 0:
                rate = rate * min(t / f(self.warmup_steps), f(1.0))
            # float32 throughout, in Keras's order of operations
            v += (g * g - v) * (f(1) - b2f)
            denom = xp.sqrt(v / (f(1) - b2f ** t)) + f(self.epsilon)
            x = (p.data - (f(1) - b1f) * z) / b1f
            z -= rate * g / denom
            w = f(1) / t
            p.data[...] = (f(1) - b1f) * z + b1f * ((f(1) - w) * x + w * z)

    def get_config(self):
        return {**super().get_config(), "beta_1": self.beta_1, "beta_2": self.beta_2, "epsilon": self.epsilon,
                "warmup_steps": self.warmup_steps}
