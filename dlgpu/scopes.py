"""keras.StatelessScope and keras.SymbolicScope.

StatelessScope runs code against other values of some variables without changing the variables: inside
it, each mapped variable reads as its mapped value, and whatever the code writes to a variable (assign, an
optimizer step, BatchNormalization's statistics) lands in the scope, where ``get_current_value`` finds it,
not in the variable.  It is what Layer.stateless_call, Optimizer.stateless_apply and the metrics'
stateless_update_state are made of (Keras's functional API for JAX-style training loops).

dlgpu's variables hold one array each, so the scope swaps arrays: entering it, each mapped variable takes a
private copy of its value (a copy, so that in-place updates never write into the caller's arrays); leaving
it, the scope keeps each variable's final array and gives the variable its own back.  A variable that is
not mapped but is assigned inside the scope gets a private copy at its first assign in the same way.

Gradients: a mapped value given as a dlgpu Tensor that a tape watches gets the gradient of everything
computed from it in the scope (stateless_call re-points the recorded graph from the variable to the value
when the scope closes).  The second derivative through such a call is not re-pointed: take it with
respect to the variables themselves or outside stateless_call.
"""

from __future__ import annotations

import threading

import numpy as np

from dlgpu.autograd import Tensor, Variable, _tape_state
from dlgpu.backend import device as _device

__all__ = ["StatelessScope", "SymbolicScope", "in_stateless_scope", "get_stateless_scope", "in_symbolic_scope"]


class _State(threading.local):
    def __init__(self):
        self.stateless = []  # open StatelessScopes, innermost last
        self.symbolic = 0


_state = _State()


def in_stateless_scope():
    return bool(_state.stateless)


def get_stateless_scope():
    return _state.stateless[-1] if _state.stateless else None


class StatelessScope:
    """``with StatelessScope(state_mapping=[(variable, value), ...]) as scope:`` the variables read as the
    values; writes stay in the scope (``scope.get_current_value(variable)``); with ``collect_losses``,
    add_loss terms go to ``scope.losses`` (without it they are dropped, as in Keras).

    ``initialize_variables`` is accepted for Keras's signature: dlgpu variables are initialized when made."""

    def __init__(self, state_mapping=None, collect_losses=False, initialize_variables=True):
        self.collect_losses = bool(collect_losses)
        self.initialize_variables = initialize_variables
        self.losses = []
        self._values = {}  # id(variable) -> (variable, the value as given)
        for pair in state_mapping or []:
            if not isinstance(pair, (tuple, list)) or len(pair) != 2:
                raise ValueError(f"StatelessScope: `state_mapping` must be a list of (variable, value) pairs; "
                                 f"received the entry {pair!r}")
            variable, value = pair
            if not isinstance(variable, Variable):
                raise ValueError(f"Invalid reference variable in StatelessScope: all keys in argument `mapping` "
                                 f"must be Variable instances. Received instead: {variable!r}")
            shape = tuple(getattr(value, "shape", np.shape(value)))
            if shape != variable.shape:
                raise ValueError(f"Invalid variable value in StatelessScope: all values in argument `mapping` must "
                                 f"be tensors with a shape that matches the corresponding variable shape. For "
                                 f"variable {variable.path!r} of shape {variable.shape}, received a value with "
                                 f"shape {shape}.")
            self._values[id(variable)] = (variable, value)
        self._saved = {}   # id(variable) -> (variable, its own array, its own _tracked flag)
        self._final = {}   # id(variable) -> its array when the scope closed
        self._open = False

    def __enter__(self):
        try:
            for variable, value in self._values.values():
                self._swap_in(variable, value)
        except Exception:
            self._restore()
            raise
        _state.stateless.append(self)
        _tape_state.stateless = self
        self._open = True
        return self

    def __exit__(self, *exc_info):
        if self._open:
            _state.stateless.remove(self)
            _tape_state.stateless = _state.stateless[-1] if _state.stateless else None
            self._open = False
            self._restore()
        return False

    def _swap_in(self, variable, value):
        if isinstance(value, Tensor):
            array = value.data
            elsewhere = _device.foreign_device(array, variable.data)
            if elsewhere is not None:
                raise _device.DeviceError(
                    f"StatelessScope: the value for variable {variable.path!r} is on {elsewhere} but the variable "
                    f"lives on {variable.device}; move it with dlgpu.to_device.")
        else:  # host data (numpy, lists, numbers) is input, copied to the variable's device as assign does
            array = _device.to_device(np.asarray(value, dtype=variable.data.dtype), variable.device)
        copy = array.astype(variable.data.dtype, copy=True)
        self._saved[id(variable)] = (variable, variable.data, variable._tracked)
        variable.data = copy
        if isinstance(value, Tensor) and value._tracked:
            variable._tracked = True  # ops record it, for the gradient re-pointed to the value

    def _before_write(self, variable):
        """Called by Variable.assign*: an unmapped variable gets a private copy before its first write."""
        if id(variable) not in self._saved:
            self._saved[id(variable)] = (variable, variable.data, variable._tracked)
            variable.data = variable.data.copy()

    def _restore(self):
        for variable, own, tracked in self._saved.values():
            self._final[id(variable)] = variable.data
            variable.data = own
            variable._tracked = tracked
        self._saved = {}

    def get_current_value(self, variable):
        """The variable's value in this scope (None for a variable the scope neither maps nor wrote)."""
        key = id(variable)
        if self._open and key in self._saved:
            return Tensor(variable.data, dtype=variable.data.dtype)
        if key in self._final:
            array = self._final[key]
            return Tensor(array, dtype=array.dtype)
        return None

    def add_loss(self, loss):
        self.losses.append(loss)

    def add_update(self, update):
        """Keras's (variable, value) update form: the value is written in the scope."""
        variable, value = update
        variable.assign(value)

    def _repoint(self, outputs):
        """Make the recorded graph of ``outputs`` depend on the mapped Tensor values instead of on their
        variables, so that a tape's gradient for a value sees what was computed from it."""
        targets = {key: value for key, (variable, value) in self._values.items()
                   if isinstance(value, Tensor) and not isinstance(value, Variable) and value._tracked}
        if not targets:
            return
        seen, stack = set(), [o for o in outputs if isinstance(o, Tensor)]
        while stack:
            node = stack.pop()
            if id(node) in seen or node._parents is None:
                continue
            seen.add(id(node))
            parents = node._parents
            if any(id(p) in targets for p in parents):
                node._parents = tuple(targets.get(id(p), p) for p in parents)
            stack.extend(p for p in parents if p._parents is not None)


class SymbolicScope:
    """keras.SymbolicScope: marks code that runs only to learn shapes (``in_symbolic_scope()`` is True in it).
    dlgpu's own shape inference runs layers on dummies inside one."""

    def __enter__(self):
        _state.symbolic += 1
        return self

    def __exit__(self, *exc_info):
        _state.symbolic -= 1
        return False


def in_symbolic_scope():
    return _state.symbolic > 0
