"""The Optimizer base class: learning rate (float or schedule), step counter, clipping, weight decay,
slot variables, and the per-step driver ``apply``.

The hot path works on the variables' arrays in place: per step it gathers ``.data`` of the parameters,
gradients and slots into lists and hands them to one update (Adam and SGD: one backend primitive call
for all parameters, which the GPU backend runs as one fused multi-tensor kernel).  No Tensor is made per
parameter per step.
"""

from __future__ import annotations

import re
import warnings

import numpy as np

from dlgpu.autograd import Tensor, Variable, no_grad
from dlgpu.autograd import constraint_version as _constraint_version
from dlgpu.backend import device as _device
from dlgpu.naming import auto_name
from dlgpu.ops._core import array_module, backend_of
from dlgpu.optimizers import schedules as _schedules


def slot_name(reference_variable, name):
    """Keras's name for an optimizer slot: the variable's path with "_" for "/", then the slot's name
    (dense_1_kernel_momentum)."""
    return f"{getattr(reference_variable, 'path', reference_variable.name).replace('/', '_')}_{name or 'var'}"


def _host_variable(value, dtype, name):
    """A non-trainable Variable whose array stays on the host whatever the current device (the
    optimizer's step counter and learning rate: read every step, so they must not need a device sync)."""
    var = Variable(np.zeros((), dtype), trainable=False, name=name)
    var.data = np.asarray(value, dtype=dtype)  # 0-d ndarray: `+=`/`[...] =` update it in place
    return var


def hyperparameter_value(hyperparameter):
    """A hyperparameter given as a number or, as Keras allows for beta_1/beta_2, a callable returning one."""
    return float(hyperparameter() if callable(hyperparameter) else hyperparameter)


class Optimizer:
    """Base class.  Subclasses define ``build`` (slot variables) and ``_update(params, grads, lr, step)``
    on lists of arrays."""

    def __init__(self, learning_rate, weight_decay=None, clipnorm=None, clipvalue=None, global_clipnorm=None,
                 use_ema=False, ema_momentum=0.99, ema_overwrite_frequency=None, loss_scale_factor=None,
                 gradient_accumulation_steps=None, name=None, **kwargs):
        if kwargs:
            if "lr" in kwargs:
                raise ValueError("Argument `lr` is no longer supported. Use `learning_rate` instead.")
            if "decay" in kwargs:
                raise ValueError("Argument `decay` is no longer supported. Use a learning rate schedule instead "
                                 "(dlgpu.optimizers.schedules).")
            raise ValueError(f"Argument(s) not recognized by {type(self).__name__}: {sorted(kwargs)}")
        if use_ema:
            if isinstance(ema_momentum, bool) or not isinstance(ema_momentum, (int, float)) or \
                    not 0 <= ema_momentum <= 1:
                raise ValueError(f"`ema_momentum` must be in the range [0, 1]. Received: ema_momentum={ema_momentum}")
            if ema_overwrite_frequency and (not isinstance(ema_overwrite_frequency, int) or ema_overwrite_frequency < 1):
                raise ValueError(f"`ema_overwrite_frequency` must be an integer >= 1 or None. Received: "
                                 f"ema_overwrite_frequency={ema_overwrite_frequency}")
        if gradient_accumulation_steps:
            raise NotImplementedError(f"{type(self).__name__}: gradient_accumulation_steps is not supported by dlgpu yet.")
        if sum(c is not None for c in (clipnorm, clipvalue, global_clipnorm)) > 1:
            raise ValueError("Only one of `clipnorm`, `clipvalue` and `global_clipnorm` can be set. Received: "
                             f"clipnorm={clipnorm}, clipvalue={clipvalue}, global_clipnorm={global_clipnorm}")
        for arg, value in (("clipnorm", clipnorm), ("clipvalue", clipvalue), ("global_clipnorm", global_clipnorm)):
            if value is not None and not value > 0:
                raise ValueError(f"Argument `{arg}` must be a positive float. Received: {arg}={value}")
        if weight_decay is not None and not weight_decay >= 0:
            raise ValueError(f"Argument `weight_decay` must be a non-negative float. Received: weight_decay={weight_decay}")
        self.name = name or auto_name(type(self).__name__)
        self.weight_decay = weight_decay
        self.clipnorm = clipnorm
        self.clipvalue = clipvalue
        self.global_clipnorm = global_clipnorm
        self.use_ema = use_ema
        self.ema_momentum = ema_momentum
        self.ema_overwrite_frequency = ema_overwrite_frequency
        self.loss_scale_factor = loss_scale_factor
        self.gradient_accumulation_steps = gradient_accumulation_steps
        self._iterations = _host_variable(0, np.int64, "iteration")
        self._learning_rate = None  # host Variable, or None when a schedule drives the rate
        self._schedule = None
        self._set_learning_rate(learning_rate)
        self._index = {}  # id(variable) -> position in self._trainable_variables
        self._trainable_variables = []
        self._slot_variables = []
        # use_ema: the moving average of each registered variable, in the order of _trainable_variables
        # (Keras's attribute name: SwapEMAWeights and user code read it)
        self._model_variables_moving_average = []
        self._exclude_ids = set()
        self._exclude_names = ()
        self._warned_none = False
        self._constrained = []  # the registered variables that have a constraint (see _apply_constraints)
        self._constraint_version = None
        self.built = False

    # -- learning rate ----------------------------------------------------------------------------
    def _set_learning_rate(self, value):
        if isinstance(value, _schedules.LearningRateSchedule) or (callable(value) and not isinstance(value, Tensor)):
            self._schedule = value
            self._learning_rate = None
            return
        if self._schedule is not None:
            raise TypeError("This optimizer was created with a `LearningRateSchedule` object as its "
                            "`learning_rate` constructor argument, hence its learning rate is not settable. If "
                            "you need the learning rate to be settable, you should instantiate the optimizer "
                            "with a float `learning_rate` argument.")
        value = float(value.numpy() if isinstance(value, Tensor) else value)
        if self._learning_rate is None:
            self._learning_rate = _host_variable(value, np.float32, "learning_rate")
        else:
            self._learning_rate.data[...] = value

    @property
    def learning_rate(self):
        """The current rate: a host Variable (float()-able, settable) or, with a schedule, its value now."""
        if self._schedule is not None:
            return self._schedule(int(self._iterations.data))
        return self._learning_rate

    @learning_rate.setter
    def learning_rate(self, value):
        self._set_learning_rate(value)

    lr = learning_rate  # tf.keras-era alias still found in callbacks

    def _current_learning_rate(self):
        if self._schedule is not None:
            return float(self._schedule(int(self._iterations.data)))
        return float(self._learning_rate.data)

    @property
    def iterations(self):
        return self._iterations

    @iterations.setter
    def iterations(self, value):
        self._iterations.data[...] = int(value.numpy() if isinstance(value, Tensor) else value)

    # -- variables --------------------------------------------------------------------------------
    @property
    def variables(self):
        head = [self._iterations] + ([self._learning_rate] if self._learning_rate is not None else [])
        return head + list(self._slot_variables)

    def add_variable_from_reference(self, reference_variable, name=None, initializer="zeros"):
        """A slot Variable shaped like ``reference_variable`` on its device (zeros, or a constant)."""
        xp = array_module(reference_variable.data)
        fill = 0.0 if initializer == "zeros" else float(initializer)
        slot = Variable(np.zeros((), reference_variable.data.dtype), trainable=False,
                        name=slot_name(reference_variable, name))
        slot.data = xp.full_like(reference_variable.data, fill)
        self._slot_variables.append(slot)
        return slot

    def build(self, variables):
        """Register variables (slots are created by subclasses, which call this first)."""
        for var in variables:
            if id(var) not in self._index:
                self._index[id(var)] = len(self._trainable_variables)
                self._trainable_variables.append(var)
                if self.use_ema:  # created first, before the subclass's slots, as in Keras
                    average = self.add_variable_from_reference(var, "average")
                    # Keras starts from zeros and takes momentum 0 at the first step; starting from the
                    # value itself gives the same averages and a sensible one for a variable added later.
                    average.data[...] = var.data
                    self._model_variables_moving_average.append(average)
        self._list_constrained()
        self.built = True

    def _build_new(self, variables):
        """Slots for variables not seen yet (Keras raises here; we extend, e.g. after a layer is unfrozen)."""
        self.build([v for v in variables if id(v) not in self._index])

    # -- weight decay -----------------------------------------------------------------------------
    def exclude_from_weight_decay(self, var_list=None, var_names=None):
        if var_list:
            self._exclude_ids.update(id(v) for v in var_list)
        if var_names:
            self._exclude_names = tuple(self._exclude_names) + tuple(var_names)

    def _decays(self, variable):
        if id(variable) in self._exclude_ids:
            return False
        return not any(re.search(name, variable.name) for name in self._exclude_names)

    def _apply_weight_decay(self, variables, lr):
        """Decoupled decay p -= lr * wd * p, for optimizers whose primitive does not do it."""
        if not self.weight_decay:
            return
        factor = 1.0 - lr * self.weight_decay
        for var in variables:
            if self._decays(var):
                var.data *= var.data.dtype.type(factor)

    def _fused_weight_decay(self, variables, lr):
        """The weight decay to hand to a primitive that applies it to every parameter: all of it when no
        variable is excluded; otherwise decay the others here and hand it 0."""
        if not self.weight_decay:
            return 0.0
        if not self._exclude_ids and not self._exclude_names:
            return float(self.weight_decay)
        self._apply_weight_decay(variables, lr)
        return 0.0

    # -- clipping ---------------------------------------------------------------------------------
    def _gradient_destinations(self, variables):
        """For each variable, an array that the next apply() reads its gradient from without copying it
        (see Adam), or None; the planned training step writes gradients there when it can."""
        return [None] * len(variables)

    def _clip(self, grads):
        if self.clipvalue is not None:
            return [array_module(g).clip(g, -self.clipvalue, self.clipvalue) for g in grads]
        if self.clipnorm is not None:
            out = []
            for g in grads:
                xp = array_module(g)
                norm = xp.sqrt((g * g).sum())
                out.append(g * (self.clipnorm / xp.maximum(norm, self.clipnorm)).astype(g.dtype))
            return out
        if self.global_clipnorm is not None:
            xp = array_module(grads[0])
            norm = xp.sqrt(sum((g * g).sum() for g in grads))
            scale = (self.global_clipnorm / xp.maximum(norm, self.global_clipnorm)).astype(grads[0].dtype)
            return [g * scale for g in grads]
        return grads

    # -- the step ---------------------------------------------------------------------------------
    def apply_gradients(self, grads_and_vars):
        pairs = list(grads_and_vars)
        if not pairs:
            return self._iterations
        grads, variables = zip(*pairs)
        self.apply(list(grads), list(variables))
        return self._iterations

    def apply(self, grads, trainable_variables=None):
        """One update of ``trainable_variables`` (default: those the optimizer was built with)."""
        grads = list(grads)
        if trainable_variables is None:
            if not self.built:
                raise ValueError(f"{type(self).__name__}.apply: pass `trainable_variables` on the first call "
                                 "(the optimizer has not been built yet).")
            variables = self._trainable_variables
        else:
            variables = list(trainable_variables)
        if len(grads) != len(variables):
            raise ValueError(f"{type(self).__name__}.apply: received {len(grads)} gradients for "
                             f"{len(variables)} variables; they must pair up one to one.")
        if not self.built:
            self.build(variables)
        else:
            index = self._index
            if any(id(v) not in index for v in variables):
                self._build_new(variables)
        params, arrays, missing = [], [], []
        for g, v in zip(grads, variables):
            if g is None:
                missing.append(v)
                continue
            a = g.data if isinstance(g, Tensor) else g
            if a.shape != v.data.shape:
                raise ValueError(f"{type(self).__name__}: the gradient for variable '{v.name}' has shape "
                                 f"{tuple(a.shape)} but the variable has shape {v.shape}.")
            elsewhere = _device.foreign_device(a, v.data)  # checked before any variable changes
            if elsewhere is not None:
                raise _device.DeviceError(
                    f"{type(self).__name__}: the gradient for variable '{v.name}' is on {elsewhere} but the "
                    f"variable lives on {v.device}; dlgpu never copies between devices silently (move it with "
                    f"dlgpu.to_device).")
            params.append(v)
            arrays.append(a)
        if missing and not self._warned_none:
            self._warned_none = True
            warnings.warn(f"Gradients do not exist for variables {[v.name for v in missing]} when minimizing "
                          "the loss. If using `model.compile()`, did you forget to provide a `loss` argument?",
                          stacklevel=2)
        if not params:
            return
        if self.loss_scale_factor is not None:  # Keras: fit scaled the loss by it (scale_loss)
            arrays = [a / a.dtype.type(self.loss_scale_factor) for a in arrays]
        lr = self._current_learning_rate()
        if self.clipvalue is not None or self.clipnorm is not None or self.global_clipnorm is not None:
            arrays = self._clip(arrays)
        self._update(params, arrays, lr, int(self._iterations.data) + 1)
        if self.use_ema:
            self._update_model_variables_moving_average()
        if self._constraint_version != _constraint_version[0]:
            self._list_constrained()
        if self._constrained:
            self._apply_constraints(params)
        self._iterations.data += 1

    # -- exponential moving average (use_ema) -----------------------------------------------------
    def _update_model_variables_moving_average(self):
        """Keras: average = m * average + (1 - m) * variable for every registered variable, with m = 0 at the
        first step; then, every ``ema_overwrite_frequency`` steps, the variables take their averages."""
        step = int(self._iterations.data)
        momentum = self.ema_momentum if step else 0.0
        for var, average in zip(self._trainable_variables, self._model_variables_moving_average):
            kind = average.data.dtype.type
            average.data *= kind(momentum)
            average.data += kind(1.0 - momentum) * var.data
        if self.ema_overwrite_frequency and (step + 1) % self.ema_overwrite_frequency == 0:
            self._overwrite_model_variables_with_average_value(self._trainable_variables)

    def _overwrite_model_variables_with_average_value(self, variables):
        for var in variables:
            position = self._index.get(id(var))
            if position is None:
                raise ValueError(f"{type(self).__name__}: variable '{var.name}' has no moving average: the "
                                 f"optimizer was not applied to it.")
            var.data[...] = self._model_variables_moving_average[position].data

    def stateless_apply(self, optimizer_variables, grads, trainable_variables):
        """Keras's functional step: apply ``grads`` to these values of the trainable variables, with these
        values of the optimizer's variables (``optimizer.variables`` order); returns the new
        ``(trainable_variables, optimizer_variables)``, every variable keeping its own value."""
        from dlgpu.scopes import StatelessScope
        if not self.built:
            raise ValueError(f"To call `stateless_apply`, {type(self).__name__} must be built (i.e. its variables "
                             f"must have been created). You can build it via `optimizer.build(trainable_variables)`.")
        own = self.variables
        if len(optimizer_variables) != len(own):
            raise ValueError(f"Argument `optimizer_variables` must be a list of tensors corresponding 1:1 to "
                             f"{type(self).__name__}().variables. Received list with length {len(optimizer_variables)}, "
                             f"but expected {len(own)} variables.")
        if len(trainable_variables) != len(self._trainable_variables):
            raise ValueError(f"Argument `trainable_variables` must be a list of tensors corresponding 1:1 to the "
                             f"trainable variables list that the optimizer was built with. Received "
                             f"len(trainable_variables) == {len(trainable_variables)} whereas the optimizer was built "
                             f"with {len(self._trainable_variables)} variables.")
        mapping = list(zip(self._trainable_variables, trainable_variables)) + list(zip(own, optimizer_variables))
        with StatelessScope(state_mapping=mapping) as scope:
            self.apply(grads)
        return ([scope.get_current_value(v) for v in self._trainable_variables],
                [scope.get_current_value(v) for v in own])

    def finalize_variable_values(self, var_list):
        """Called by fit when training ends: with use_ema, the variables take their moving averages."""
        if self.use_ema and self.built:
            # only the variables this optimizer averages (a model may hold some it never updated)
            self._overwrite_model_variables_with_average_value([v for v in var_list if id(v) in self._index])

    def scale_loss(self, loss):
        """The loss fit differentiates (Keras's trainer calls this before the backward pass); apply divides
        the gradients by the same factor."""
        if self.loss_scale_factor is not None:
            return loss * np.float32(self.loss_scale_factor)
        return loss

    def _scales_loss(self):
        """Whether scale_loss changes the loss (fit then takes the taped step, which calls it)."""
        return self.loss_scale_factor is not None

    # -- constraints ------------------------------------------------------------------------------
    def _list_constrained(self):
        """Re-list the constrained variables: only when some variable's constraint changed, so that a
        model without constraints pays one integer comparison per step."""
        self._constraint_version = _constraint_version[0]
        self._constrained = [v for v in self._trainable_variables if v._constraint is not None]

    def _apply_constraints(self, params):
        """Keras: after the update, each updated variable with a constraint becomes constraint(variable).
        Runs after the whole update (Adam's packed one included), so every path, the planned CPU training
        step too, sees the same projection.  Values are written into the variable's array, which keeps
        packed views and the optimizer's references valid."""
        updated = {id(p) for p in params}
        with no_grad():
            for var in self._constrained:
                if id(var) in updated:
                    var.assign(var._constraint(var))

    def _update(self, params, grads, lr, step):
        raise NotImplementedError

    def _slots(self, kind, params):
        """The arrays of slot ``kind`` for ``params``, in order."""
        slots = getattr(self, kind)
        index = self._index
        return [slots[index[id(p)]].data for p in params]

    @staticmethod
    def _backend(params):
        return backend_of(params[0].data)

    # -- config -----------------------------------------------------------------------------------
    def get_config(self):
        if self._schedule is not None:
            lr = _schedules.serialize(self._schedule) if isinstance(self._schedule, _schedules.LearningRateSchedule) \
                else self._schedule
        else:
            lr = float(self._learning_rate.data)
        return {"name": self.name, "learning_rate": lr, "weight_decay": self.weight_decay,
                "clipnorm": self.clipnorm, "global_clipnorm": self.global_clipnorm, "clipvalue": self.clipvalue,
                "use_ema": self.use_ema, "ema_momentum": self.ema_momentum,
                "ema_overwrite_frequency": self.ema_overwrite_frequency,
                "loss_scale_factor": self.loss_scale_factor,
                "gradient_accumulation_steps": self.gradient_accumulation_steps}

    @classmethod
    def from_config(cls, config, custom_objects=None):
        config = dict(config)
        if isinstance(config.get("learning_rate"), dict):
            config["learning_rate"] = _schedules.deserialize(config["learning_rate"], custom_objects)
        return cls(**config)

    # -- saving -----------------------------------------------------------------------------------
    def save_own_variables(self, store):
        for i, var in enumerate(self.variables):
            store[str(i)] = var.numpy()

    def load_own_variables(self, store):
        variables = self.variables
        if len(store.keys()) != len(variables):
            raise ValueError(f"{type(self).__name__}: the saved state has {len(store.keys())} variables but this "
                             f"optimizer has {len(variables)} (build it on the model's variables first).")
        values = [np.asarray(store[str(i)]) for i in range(len(variables))]
        for var, value in zip(variables, values):  # all checked before any is assigned: no half-loaded state
            if value.shape != var.data.shape:
                raise ValueError(f"{type(self).__name__}: the saved value of variable '{var.name}' has shape "
                                 f"{value.shape} but the variable has shape {tuple(var.data.shape)}.")
        for var, value in zip(variables, values):
            xp = array_module(var.data)
            # Written into the existing arrays: Adam's packed slots are views of one buffer and stay so.
            var.data[...] = value if xp is np else xp.asarray(value)

    def __repr__(self):
        return f"<{type(self).__name__} name={self.name!r} learning_rate={self.get_config()['learning_rate']}>"
