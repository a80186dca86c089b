"""Muon (Jordan et al., 2024), Keras 3's form: 2-D weights follow momentum orthogonalized by a quintic
Newton-Schulz iteration; every other variable (biases, norms, convolution kernels: anything not 2-D), and 2-D
ones whose path contains "embedding" (``exclude_embeddings``) or matches an ``exclude_layers`` pattern, takes
an AdamW step at ``learning_rate * adam_lr_ratio``.

    Muon:  m += g + (mu-1) m;  u = g + mu m (nesterov) or m;  w -= lr * NS5(u) * sqrt(max(n, k)) * rms_rate
    NS5:   X = u (transposed when tall) / (||u||_F + 1e-7);  5 times: A = X X^T;  X = a X + (b A + c A A) X
    AdamW: m += (1-b1)(g - m);  v += (1-b2)(g^2 - v);  w -= lr' sqrt(1-b2^t)/(1-b1^t) m / (sqrt(v) + eps)

Weight decay first, as Keras: w -= w * wd * lr with ``weight_decay`` for the Muon weights and
``adam_weight_decay`` for the AdamW ones.
"""

import re

from dlgpu.ops._core import array_module
from dlgpu.optimizers.base import Optimizer


class Muon(Optimizer):
    def __init__(self, learning_rate=0.001, adam_beta_1=0.9, adam_beta_2=0.999, adam_weight_decay=0.004,
                 epsilon=1e-7, weight_decay=0.004, clipnorm=None, clipvalue=None, global_clipnorm=None,
                 use_ema=False, ema_momentum=0.99, ema_overwrite_frequency=None, loss_scale_factor=None,
                 gradient_accumulation_steps=None, name=None, exclude_layers=None, exclude_embeddings=True,
                 muon_a=3.4445, muon_b=-4.7750, muon_c=2.0315, adam_lr_ratio=1, momentum=0.95, ns_steps=5,
                 nesterov=True, rms_rate=0.2, **kwargs):
        super().__init__(learning_rate=learning_rate, name=name, weight_decay=weight_decay, clipnorm=clipnorm,
                         clipvalue=clipvalue, global_clipnorm=global_clipnorm, use_ema=use_ema,
                         ema_momentum=ema_momentum, ema_overwrite_frequency=ema_overwrite_frequency,
                         loss_scale_factor=loss_scale_factor,
                         gradient_accumulation_steps=gradient_accumulation_steps, **kwargs)
        if int(ns_steps) != ns_steps or ns_steps < 0:
            raise ValueError(f"Muon: `ns_steps` must be a non-negative integer. Received: ns_steps={ns_steps}")
        if adam_weight_decay is not None and not adam_weight_decay >= 0:
            raise ValueError(f"Muon: `adam_weight_decay` must be a non-negative float. Received: "
                             f"adam_weight_decay={adam_weight_decay}")
        self.adam_beta_1 = adam_beta_1
        self.adam_beta_2 = adam_beta_2
        self.epsilon = epsilon
        self.muon_a = muon_a
        self.muon_b = muon_b
        self.muon_c = muon_c
        self.adam_lr_ratio = adam_lr_ratio
        self.momentum = momentum
        self.ns_steps = ns_steps
        self.nesterov = nesterov
        self.exclude_embeddings = exclude_embeddings
        self.exclude_layers = exclude_layers or []
        self.adam_weight_decay = adam_weight_decay
        self.rms_rate = rms_rate
        self._momentums = []
        self._velocities = []  # None for the Muon variables: a velocity marks an AdamW one

    def _should_use_adamw(self, variable):
        if len(variable.shape) != 2:
            return True
        path = getattr(variable, "path", variable.name)
        if self.exclude_embeddings and "embedding" in path.lower():
            return True
        return any(re.search(keyword, path) for keyword in self.exclude_layers)

    def build(self, variables):
        new = [v for v in variables if id(v) not in self._index]
        super().build(variables)
        for var in new:  # Keras's order: each variable's momentum, then its velocity if it has one
            self._momentums.append(self.add_variable_from_reference(var, "momentum"))
            self._velocities.append(self.add_variable_from_reference(var, "velocity")
                                    if self._should_use_adamw(var) else None)

    def _apply_weight_decay(self, variables, lr):
        for var in variables:
            if not self._decays(var):
                continue
            wd = self.adam_weight_decay if self._should_use_adamw(var) else self.weight_decay
            if wd is None:
                continue
            f = var.data.dtype.type
            var.data -= var.data * f(wd) * f(lr)

    def _update(self, params, grads, lr, step):
        self._apply_weight_decay(params, lr)
        index = self._index
        for p, g in zip(params, grads):
            i = index[id(p)]
            m, v = self._momentums[i].data, self._velocities[i]
            if v is not None:
                self._adamw_step(p.data, g, m, v.data, lr * self.adam_lr_ratio, step)
            else:
                self._muon_step(p.data, g, m, lr)

    def _muon_step(self, w, g, m, lr):
        xp = array_module(g)
        f = w.dtype.type
        m += g + m * f(self.momentum - 1)
        u = g + f(self.momentum) * m if self.nesterov else m
        update = f(lr) * self.zeropower_via_newtonschulz5(u, self.ns_steps)
        if self.rms_rate is not None:
            update = update * xp.sqrt(f(max(update.shape[0], update.shape[1]))) * f(self.rms_rate)
        w -= update

    def _adamw_step(self, w, g, m, v, lr, step):
        xp = array_module(g)
        f = w.dtype.type
        t, b1, b2 = f(step), f(self.adam_beta_1), f(self.adam_beta_2)
        alpha = f(lr) * xp.sqrt(f(1) - b2 ** t) / (f(1) - b1 ** t)
        m += (g - m) * f(1 - self.adam_beta_1)
        v += (g * g - v) * f(1 - self.adam_beta_2)
        w -= m * alpha / (xp.sqrt(v) + f(self.epsilon))

    def zeropower_via_newtonschulz5(self, x, steps):
        """The quintic Newton-Schulz iteration towards the orthogonal factor of ``x`` (its last two axes)."""
        if x.ndim < 2:
            raise ValueError(f"Muon: expected a gradient or momentum with at least 2 dimensions. Received: "
                             f"shape={tuple(x.shape)}")
        xp = array_module(x)
        f = x.dtype.type
        a, b, c = f(self.muon_a), f(self.muon_b), f(self.muon_c)
        tall = x.shape[-2] > x.shape[-1]
        if tall:
            x = xp.swapaxes(x, -1, -2)
        x = x / (xp.sqrt((x * x).sum(axis=(-2, -1), keepdims=True)) + f(1e-7))
        for _ in range(int(steps)):
            gram = x @ xp.swapaxes(x, -1, -2)
            x = a * x + (b * gram + (c * gram) @ gram) @ x
        return xp.swapaxes(x, -1, -2) if tall else x

    def get_config(self):
        return {**super().get_config(), "adam_beta_1": self.adam_beta_1, "adam_beta_2": self.adam_beta_2,
                "epsilon": self.epsilon, "exclude_layers": self.exclude_layers, "muon_a": self.muon_a,
                "muon_b": self.muon_b, "muon_c": self.muon_c, "adam_lr_ratio": self.adam_lr_ratio,
                "momentum": self.momentum, "ns_steps": self.ns_steps, "nesterov": self.nesterov,
                "exclude_embeddings": self.exclude_embeddings, "adam_weight_decay": self.adam_weight_decay,
                "rms_rate": self.rms_rate}
