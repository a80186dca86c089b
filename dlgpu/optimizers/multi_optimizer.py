"""MultiOptimizer and OptimizerMap (Keras 3.15): different optimizers for different variables.

``OptimizerMap(default_optimizer, {"encoder/.*": Adam()})`` picks an optimizer by a variable's ``path`` (an
exact key first, else the one key that ``re.fullmatch``-es it, else the default); ``MultiOptimizer(map)``
(or ``MultiOptimizer(callable)``, a function from variable to optimizer) builds each inner optimizer on its
variables and hands each the gradients of its own at every step.  Its own state is the step counter;
``learning_rate`` is an error, as in Keras, since each inner optimizer has its own.

Beyond Keras: variables met after the first build (a layer unfrozen later) are assigned then, as dlgpu's
other optimizers extend themselves, and a step may update a subset of the variables.
"""

from __future__ import annotations

import re
from collections.abc import MutableMapping

from dlgpu.optimizers.base import Optimizer
from dlgpu.optimizers.loss_scale import LossScaleOptimizer


def _serialize_map(optimizer_map):
    if isinstance(optimizer_map, OptimizerMap):
        return {"module": "keras.optimizers", "class_name": "OptimizerMap", "config": optimizer_map.get_config(),
                "registered_name": None}
    from dlgpu.saving import serialize_keras_object
    return serialize_keras_object(optimizer_map)  # a registered function; an unregistered one raises there


def _deserialize_optimizer(config, custom_objects):
    if isinstance(config, Optimizer):
        return config
    from dlgpu import optimizers
    return optimizers.deserialize(config, custom_objects)


class OptimizerMap(MutableMapping):
    """Maps variable paths (exact, or regular expressions matched whole) to optimizers; unmatched paths get
    ``default_optimizer``."""

    def __init__(self, default_optimizer, optimizer_map=None):
        if not isinstance(default_optimizer, Optimizer):
            raise TypeError(f"default_optimizer must be a Keras Optimizer instance. Received: {default_optimizer!r}")
        if optimizer_map is not None and not isinstance(optimizer_map, dict):
            raise TypeError(f"optimizer_map must be a dictionary. Received: {optimizer_map!r}")
        self._default_optimizer = default_optimizer
        self._optimizer_map = {}
        for key, optimizer in (optimizer_map or {}).items():
            self[key] = optimizer

    @property
    def default_optimizer(self):
        return self._default_optimizer

    def __getitem__(self, key):
        if key in self._optimizer_map:
            return self._optimizer_map[key]
        matching = [pattern for pattern in self._optimizer_map if re.fullmatch(pattern, key)]
        if len(matching) > 1:
            raise ValueError(f"Multiple optimizers assigned to variable {key}: the patterns {matching} all match "
                             f"its path.")
        return self._optimizer_map[matching[0]] if matching else self._default_optimizer

    def __setitem__(self, key, optimizer):
        if key in self._optimizer_map:
            raise ValueError(f"'{key}' already exists in the OptimizerMap with value {self._optimizer_map[key]}. "
                             f"Please make sure to not use duplicated keys.")
        if not isinstance(key, str):
            raise ValueError(f"key must be a string. Received: {key!r}")
        if not isinstance(optimizer, Optimizer):
            raise ValueError(f"optimizer must be a Keras Optimizer instance. Received: {optimizer!r}")
        if isinstance(optimizer, LossScaleOptimizer):
            raise ValueError("optimizer cannot be LossScaleOptimizer.")
        if isinstance(optimizer, MultiOptimizer):
            raise ValueError("optimizer cannot be MultiOptimizer.")
        self._optimizer_map[key] = optimizer

    def __delitem__(self, key):
        del self._optimizer_map[key]

    def __len__(self):
        return len(self._optimizer_map)

    def __iter__(self):
        return iter(self._optimizer_map)

    def __call__(self, variable):
        return self[variable.path]

    def get_config(self):
        from dlgpu.optimizers import serialize
        return {"default_optimizer": serialize(self._default_optimizer),
                "optimizer_map": {key: serialize(opt) for key, opt in self._optimizer_map.items()}}

    @classmethod
    def from_config(cls, config, custom_objects=None):
        return cls(_deserialize_optimizer(config["default_optimizer"], custom_objects),
                   {key: _deserialize_optimizer(opt, custom_objects)
                    for key, opt in (config.get("optimizer_map") or {}).items()})


class MultiOptimizer(Optimizer):
    """Delegates each variable to the optimizer that ``optimizer_map`` (an OptimizerMap, or a function of
    the variable) gives it.  ``loss_scale_factor`` is set on every inner optimizer."""

    def __init__(self, optimizer_map, loss_scale_factor=None, name=None):
        if not callable(optimizer_map):
            raise TypeError(f"MultiOptimizer: `optimizer_map` must be an OptimizerMap or a function from a "
                            f"variable to an optimizer. Received: {optimizer_map!r}")
        self._inner_optimizers = []
        super().__init__(learning_rate=0.0, loss_scale_factor=loss_scale_factor, name=name)
        self._optimizer_map = optimizer_map
        self._var_to_optimizer_idx = {}  # id(variable) -> position in _inner_optimizers
        if isinstance(optimizer_map, OptimizerMap):
            for opt in list(optimizer_map.values()) + [optimizer_map.default_optimizer]:
                self._add_inner(opt)

    def _add_inner(self, opt):
        if all(opt is not known for known in self._inner_optimizers):
            opt.loss_scale_factor = self.loss_scale_factor
            self._inner_optimizers.append(opt)
        return next(i for i, known in enumerate(self._inner_optimizers) if known is opt)

    @property
    def optimizers(self):
        return self._inner_optimizers

    @property
    def loss_scale_factor(self):
        return getattr(self, "_loss_scale_factor", None)

    @loss_scale_factor.setter
    def loss_scale_factor(self, value):
        self._loss_scale_factor = value
        for opt in getattr(self, "_inner_optimizers", []):
            opt.loss_scale_factor = value

    @property
    def learning_rate(self):
        raise AttributeError("Learning rate cannot be accessed on a MultiOptimizer. Access the learning rate on "
                             "the individual sub-optimizers instead.")

    @learning_rate.setter
    def learning_rate(self, value):
        raise AttributeError("Learning rate cannot be set on a MultiOptimizer. Set the learning rate on the "
                             "individual sub-optimizers instead.")

    lr = learning_rate

    @property
    def variables(self):
        own = [self._iterations] + ([self._learning_rate] if self._learning_rate is not None else [])
        return own + [v for opt in self._inner_optimizers for v in opt.variables]

    def build(self, variables):
        variables = list(variables)
        groups = {}
        for var in variables:
            if id(var) in self._var_to_optimizer_idx:
                continue
            opt = self._optimizer_map(var)
            if not isinstance(opt, Optimizer):
                raise ValueError(f"MultiOptimizer: the optimizer for variable '{var.path}' is not an Optimizer "
                                 f"instance: {opt!r}")
            if isinstance(opt, LossScaleOptimizer):
                raise ValueError("LossScaleOptimizer cannot be used inside an MultiOptimizer.")
            if isinstance(opt, MultiOptimizer):
                raise ValueError("MultiOptimizer cannot be used inside an MultiOptimizer.")
            index = self._add_inner(opt)
            self._var_to_optimizer_idx[id(var)] = index
            groups.setdefault(index, []).append(var)
        for index, group in sorted(groups.items()):
            self._inner_optimizers[index].build(group)
        super().build(variables)

    def apply(self, grads, trainable_variables=None):
        grads = list(grads)
        if not grads:
            return
        if trainable_variables is None:
            if not self.built:
                raise ValueError("MultiOptimizer.apply: pass `trainable_variables` on the first call (the optimizer "
                                 "has not been built yet).")
            variables = self._trainable_variables
        else:
            variables = list(trainable_variables)
        if len(grads) != len(variables):
            raise ValueError(f"MultiOptimizer.apply: received {len(grads)} gradients for {len(variables)} "
                             f"variables; they must pair up one to one.")
        if not self.built or any(id(v) not in self._var_to_optimizer_idx for v in variables):
            self.build(variables)
        groups = [([], []) for _ in self._inner_optimizers]
        for grad, var in zip(grads, variables):
            sub_grads, sub_vars = groups[self._var_to_optimizer_idx[id(var)]]
            sub_grads.append(grad)
            sub_vars.append(var)
        for opt, (sub_grads, sub_vars) in zip(self._inner_optimizers, groups):
            if sub_vars:
                opt.apply(sub_grads, sub_vars)  # each unscales (loss_scale_factor), clips and constrains its own
        self._iterations.data += 1

    def _current_learning_rate(self):
        raise AttributeError("A MultiOptimizer has no single learning rate; read it on MultiOptimizer.optimizers.")

    def finalize_variable_values(self, var_list):
        for opt in self._inner_optimizers:
            opt.finalize_variable_values(var_list)  # each takes the variables it averages

    def get_config(self):
        return {"optimizer_map": _serialize_map(self._optimizer_map), "loss_scale_factor": self.loss_scale_factor,
                "name": self.name}

    @classmethod
    def from_config(cls, config, custom_objects=None):
        config = dict(config)
        mapping = config["optimizer_map"]
        if isinstance(mapping, dict) and mapping.get("class_name") == "OptimizerMap":
            config["optimizer_map"] = OptimizerMap.from_config(mapping["config"], custom_objects)
        elif not callable(mapping):
            from dlgpu.saving import deserialize_keras_object
            config["optimizer_map"] = deserialize_keras_object(mapping, custom_objects)
        return cls(**config)

    def __repr__(self):
        return f"<MultiOptimizer name={self.name!r} optimizers={self._inner_optimizers!r}>"
