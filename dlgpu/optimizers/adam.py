"""Adam and AdamW, Keras form (eps added to sqrt(v), bias corrections folded into the step size):

    m = b1*m + (1-b1)*g;  v = b2*v + (1-b2)*g^2
    alpha = lr * sqrt(1 - b2^t) / (1 - b1^t);  p -= alpha * m / (sqrt(v) + eps)

AdamW (and Adam with ``weight_decay``) first decays p -= lr*wd*p.  Without amsgrad the whole update is one
``backend.adam_update`` call over all parameters (on the GPU one multi-tensor kernel launch).

On the CPU the m and v slots of every parameter below a million values live in one flat buffer each,
their Variables being views of it, so that one pass of numpy calls updates them all
(``cpu.adam_update_packed``; larger parameters take ``adam_update``, which splits each across the
threads): numpy costs ~1 us per call whatever the size, and the seed MLP's five small parameters took
81 us in 60 calls, 45 us packed (2-core CPU, 2026-11-23).  Their gradients are gathered into a third flat
buffer; the planned training step (models/static_step.py) writes them there in the first place
(``_gradient_destinations``), so the whole MLP's update is twelve numpy calls and no copies.
"""

import numpy as np

from dlgpu.backend import cpu
from dlgpu.ops._core import array_module, backend_of
from dlgpu.optimizers.base import Optimizer, hyperparameter_value

# Parameters with fewer values than this have their slots packed (CPU, float32); larger ones are updated
# on their own, split across the CPU threads (cpu.optim._ADAM_SPLIT_SIZE).
PACK_BELOW = cpu.optim._ADAM_SPLIT_SIZE


class Adam(Optimizer):
    def __init__(self, learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7, amsgrad=False,
                 weight_decay=None, clipnorm=None, clipvalue=None, global_clipnorm=None, use_ema=False,
                 ema_momentum=0.99, ema_overwrite_frequency=None, loss_scale_factor=None,
                 gradient_accumulation_steps=None, name=None, **kwargs):
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
        self._packed = None  # see _pack_small_slots

    def build(self, variables):
        new = [v for v in variables if id(v) not in self._index]
        super().build(variables)
        for v in new:
            self._momentums.append(self.add_variable_from_reference(v, "momentum"))
            self._velocities.append(self.add_variable_from_reference(v, "velocity"))
            if self.amsgrad:
                self._velocity_hats.append(self.add_variable_from_reference(v, "velocity_hat"))
        if new:
            self._pack_small_slots()

    def _pack_small_slots(self):
        """Move the m and v slots of the small float32 CPU parameters into one flat buffer each (the slot
        Variables become views of it, values kept).  Sets ``self._packed`` to (parameters, m buffer,
        v buffer, the slot Variables, their views, gradient buffer, {id(parameter): its view of the
        gradient buffer}), or None when fewer than two parameters qualify."""
        self._packed = None
        if self.amsgrad:
            return
        members = [i for i, var in enumerate(self._trainable_variables)
                   if type(var.data) is np.ndarray and var.data.dtype == np.float32 and var.data.size < PACK_BELOW]
        if len(members) < 2:
            return
        total = sum(self._trainable_variables[i].data.size for i in members)
        slots, views, buffers = [], [], []
        for kind in (self._momentums, self._velocities):
            flat = np.empty(total, np.float32)
            offset = 0
            for i in members:
                slot = kind[i]
                size = slot.data.size
                flat[offset:offset + size] = slot.data.reshape(-1)
                slot.data = flat[offset:offset + size].reshape(slot.data.shape)
                slots.append(slot)
                views.append(slot.data)
                offset += size
            buffers.append(flat)
        params = tuple(self._trainable_variables[i] for i in members)
        gradients = np.zeros(total, np.float32)
        destinations, offset = {}, 0
        for var in params:
            destinations[id(var)] = gradients[offset:offset + var.data.size].reshape(var.data.shape)
            offset += var.data.size
        self._packed = (params, buffers[0], buffers[1], slots, views, gradients, destinations)

    def _gradient_destinations(self, variables):
        """For each variable, the array the next update reads its gradient from without a copy (a view of
        the packed gradient buffer), or None.  A gradient written anywhere else is copied in."""
        packed = self._packed
        if packed is None:
            return [None] * len(variables)
        destinations = packed[6]
        return [destinations.get(id(var)) for var in variables]

    def _packed_positions(self, params):
        """Where the packed parameters sit in ``params``, or None when the packed update does not apply
        (not all of them are being updated, or something replaced a slot's array)."""
        packed = self._packed
        if packed is None:
            return None
        members, _, _, slots, views, _, _ = packed
        if any(slot.data is not view for slot, view in zip(slots, views)):
            self._pack_small_slots()  # e.g. slots moved to another device: pack what qualifies now
            return self._packed_positions(params) if self._packed is not None else None
        position = {id(p): k for k, p in enumerate(params)}
        found = [position.get(id(var)) for var in members]
        return None if None in found else found

    def _update(self, params, grads, lr, step):
        b1, b2 = hyperparameter_value(self.beta_1), hyperparameter_value(self.beta_2)
        decay = self._fused_weight_decay(params, lr)
        if not self.amsgrad:
            packed = self._packed_positions(params) if backend_of(params[0].data) is cpu else None
            if packed is not None:
                members, m_flat, v_flat, _, _, g_flat, destinations = self._packed
                cpu.adam_update_packed([params[k].data for k in packed], [grads[k] for k in packed],
                                       [destinations[id(var)] for var in members], g_flat, m_flat, v_flat,
                                       lr, b1, b2, self.epsilon, step, decay)
                in_pack = set(packed)
                rest = [k for k in range(len(params)) if k not in in_pack]
                params, grads = [params[k] for k in rest], [grads[k] for k in rest]
                if not params:
                    return
            ms = self._slots("_momentums", params)
            vs = self._slots("_velocities", params)
            self._backend(params).adam_update([p.data for p in params], grads, ms, vs, lr, b1, b2,
                                              self.epsilon, step, decay)
            return
        ms = self._slots("_momentums", params)
        vs = self._slots("_velocities", params)
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
                 gradient_accumulation_steps=None, name=None, **kwargs):
        if weight_decay is None:
            raise ValueError("Argument `weight_decay` must be a float. Received: weight_decay=None")
        super().__init__(learning_rate=learning_rate, beta_1=beta_1, beta_2=beta_2, epsilon=epsilon,
                         amsgrad=amsgrad, name=name, weight_decay=weight_decay, clipnorm=clipnorm,
                         clipvalue=clipvalue, global_clipnorm=global_clipnorm, use_ema=use_ema,
                         ema_momentum=ema_momentum, ema_overwrite_frequency=ema_overwrite_frequency,
                         loss_scale_factor=loss_scale_factor,
                         gradient_accumulation_steps=gradient_accumulation_steps, **kwargs)
