"""Rematerialization (gradient checkpointing): keras.remat and keras.RematScope.

``remat(f)`` runs f's forward once, as usual, but does not keep f's intermediate tensors for the backward
pass: the backward runs f again from its inputs and differentiates that run.  Memory then holds f's inputs
and outputs across the step instead of everything inside f (the activations of a block of layers), for the
price of one more forward of f per backward.  As Keras's torch backend (torch.utils.checkpoint), the
second-order gradient through a rematerialized function is not supported.

How: the first run is recorded as usual, which tells which tracked tensors f depends on (its tensor
arguments, the variables it reads, the tensors it closes over); then that graph is let go.  f's outputs
become nodes under one hidden node whose parents are those tensors and whose backward reruns f under a
fresh tape.  The rerun must compute what the first run computed:

- random draws (dropout masks, noise) are replayed: while f first runs, dlgpu's generators hand out values
  through a log, and the rerun reads them back in the same order instead of drawing anew (the log holds
  a copy of each random array until the backward);
- the training flag and the mixed-precision autocast state the first run saw are restored;
- writes the first run made are not made twice: BatchNormalization's moving statistics, variable
  assignments and add_loss terms are skipped during the rerun (``is_recomputing``).  A stateful RNN inside
  f would start the rerun from the states the first run left, so layers holding one refuse RematScope.

``RematScope`` (Keras's modes "full", "activations", "larger_than", "list_of_layers", or None) applies
to the layers *created* inside it, as in Keras: a layer remembers the scope open at its construction and
rematerializes its calls accordingly, whatever scope is open when it is called.
"""

from __future__ import annotations

import collections
import contextlib
import functools
import math
import threading

from dlgpu import tree
from dlgpu.autograd import GradientTape, Tensor, Variable, _tape_state, backward, is_recording, make_result

__all__ = ["RematScope", "remat", "get_current_remat_mode", "is_recomputing"]

_MODES = ("full", "activations", "larger_than", "list_of_layers", None)

RematMode = collections.namedtuple("RematMode", ["mode", "output_size_threshold", "layer_names"])


class _State(threading.local):
    def __init__(self):
        self.scopes = []         # the open RematScopes, innermost last
        self.random_log = None   # the _RandomLog of the function running now, if any


_state = _State()


class RematScope:
    """keras.RematScope: layers created inside rematerialize their calls per ``mode``:

    - ``"full"``: every call;
    - ``"activations"``: only the activation function of layers that have one (Dense, Conv2D, ...);
    - ``"larger_than"``: calls whose output has more than ``output_size_threshold`` elements;
    - ``"list_of_layers"``: the layers whose names are in ``layer_names``;
    - ``None``: none (turns an outer scope off)."""

    def __init__(self, mode="full", output_size_threshold=1024, layer_names=None):
        if mode not in _MODES:
            raise ValueError(f"RematScope: invalid mode {mode!r}. Supported modes are: 'full', 'activations', "
                             f"'larger_than', 'list_of_layers', or None.")
        if isinstance(output_size_threshold, bool) or not isinstance(output_size_threshold, int) \
                or output_size_threshold < 0:
            raise ValueError(f"RematScope: `output_size_threshold` must be a non-negative integer; received "
                             f"output_size_threshold={output_size_threshold!r}")
        if layer_names is not None and (isinstance(layer_names, str)
                                        or not all(isinstance(n, str) for n in layer_names)):
            raise ValueError(f"RematScope: `layer_names` must be a list of layer names; received "
                             f"layer_names={layer_names!r}")
        self.mode = mode
        self.output_size_threshold = output_size_threshold
        self.layer_names = list(layer_names or [])
        self._pushed = False

    def __enter__(self):
        _state.scopes.append(self)
        self._pushed = True
        return self

    def __exit__(self, *exc_info):
        if self._pushed:
            _state.scopes.pop()
            self._pushed = False
        return False


def get_current_remat_mode():
    """The innermost open RematScope as a RematMode(mode, output_size_threshold, layer_names), or None."""
    if not _state.scopes:
        return None
    scope = _state.scopes[-1]
    return RematMode(scope.mode, scope.output_size_threshold, list(scope.layer_names))


def is_recomputing():
    """True while a rematerialized function reruns for its backward: state updates are skipped then."""
    return _tape_state.recomputing > 0


# -- random draws: logged in the first run, replayed in the rerun ---------------------------------------------

class _RandomLog:
    """The draws of one rematerialized function.  A function rematerialized inside another (a RematScope
    layer inside a RematScope model) takes its first run's values from the outer log, so that the outer
    rerun replays the inner draws too."""

    def __init__(self, parent):
        self.parent = parent
        self.draws = collections.deque()
        self.replaying = False

    def draw(self, name, method, args, kwargs):
        if self.replaying:
            if not self.draws or self.draws[0][0] != name:
                raise RuntimeError(
                    f"remat: the rerun of a rematerialized function drew random numbers ({name}) that its first "
                    f"run did not draw in this order; the function must compute the same thing each time it is "
                    f"called with the same inputs.")
            return _copy(self.draws.popleft()[1])
        value = method(*args, **kwargs) if self.parent is None else self.parent.draw(name, method, args, kwargs)
        self.draws.append((name, _copy(value)))  # kept apart: callers scale their draws in place
        return value


def _copy(value):
    return value.copy() if hasattr(value, "copy") else value


class _LoggedGenerator:
    """A numpy/CuPy generator whose draws go through the log of the rematerialized function running now."""

    def __init__(self, generator, log):
        self._generator = generator
        self._log = log

    def __getattr__(self, name):
        attr = getattr(self._generator, name)
        if not callable(attr):
            return attr
        log = self._log

        def draw(*args, **kwargs):
            return log.draw(name, attr, args, kwargs)
        return draw


def observed(generator):
    """``generator``, or inside a rematerialized function a view of it whose draws are logged/replayed.
    dlgpu's random draws all take their generator through here (ops.nn._generator, random._rng)."""
    log = _state.random_log
    if log is None or isinstance(generator, _LoggedGenerator):
        return generator
    return _LoggedGenerator(generator, log)


@contextlib.contextmanager
def _random_log(log):
    previous, _state.random_log = _state.random_log, log
    try:
        yield
    finally:
        _state.random_log = previous


# -- remat ----------------------------------------------------------------------------------------------------

def remat(f):
    """keras.remat: ``f`` whose intermediate tensors are recomputed in the backward pass instead of kept.

    Outside a GradientTape (inference, predict) the wrapper is f itself."""
    @functools.wraps(f)
    def rematerialized(*args, **kwargs):
        from dlgpu.ops.symbolic import _has_symbolic
        if not is_recording() or _has_symbolic([args, kwargs]):
            return f(*args, **kwargs)
        return _run_rematerialized(f, args, kwargs)
    return rematerialized


def _run_rematerialized(f, args, kwargs):
    from dlgpu.autograd import autocast_state
    from dlgpu.layers.base import _call_context
    # The arguments as fresh leaves: the first run's graph then stops at them, and the rerun starts from them.
    originals = {}

    def leaf(x):
        if not isinstance(x, Tensor) or isinstance(x, Variable) or not x._tracked:
            return x
        fresh = Tensor(x.data, dtype=x.data.dtype)
        fresh._tracked = True
        fresh._keras_mask = getattr(x, "_keras_mask", None)
        originals[id(fresh)] = x
        return fresh
    call_args, call_kwargs = tree.map_structure(leaf, (list(args), dict(kwargs)))
    training, autocast = _call_context.training, autocast_state.dtype
    log = _RandomLog(_state.random_log)
    with _random_log(log):
        output = f(*call_args, **call_kwargs)
    outputs = tree.flatten(output)
    if not all(isinstance(o, Tensor) or o is None for o in outputs):
        raise TypeError(f"remat: the rematerialized function must return tensors (or a structure of them); "
                        f"received {[type(o).__name__ for o in outputs]}")
    sources = _tracked_leaves([o for o in outputs if o is not None])
    if not sources:
        return output
    parents = tuple(originals.get(id(s), s) for s in sources)
    count = len(outputs)
    upstream = {}  # output index -> its gradient, gathered before the hidden node's backward runs

    def rerun_backward(_):
        seeds = [upstream.get(k) for k in range(count)]
        upstream.clear()
        log.replaying = True
        log_copy = collections.deque(log.draws)
        try:
            with _recording_rerun(training, autocast), _random_log(log):
                again = tree.flatten(f(*call_args, **call_kwargs))
        finally:
            log.draws = log_copy  # a second gradient from a persistent tape replays the same draws
        targets = [(o, s) for o, s in zip(again, seeds) if o is not None and s is not None]
        grads = backward([o for o, _ in targets], [s for _, s in targets])
        return tuple(grads.get(id(s)) for s in sources)

    # Only the outputs' arrays are kept: the first run's graph (f's intermediate tensors) goes with `output`.
    from dlgpu.ops._core import array_module
    first = next(o for o in outputs if o is not None)
    hub = make_result(array_module(first.data).zeros((), first.data.dtype), parents, rerun_backward)
    results = []
    for k, o in enumerate(outputs):
        if o is None:
            results.append(None)
            continue

        def output_backward(g, k=k):
            upstream[k] = g if k not in upstream else upstream[k] + g
            return (hub.data,)
        result = make_result(o.data, (hub,), output_backward)
        result._keras_mask = getattr(o, "_keras_mask", None)
        results.append(result)
    del outputs, first, o
    return tree.pack_sequence_as(output, results)


def _tracked_leaves(outputs):
    """The tracked tensors without parents (variables, watched tensors, the fresh argument leaves) that the
    recorded graph of ``outputs`` reaches, in a fixed order."""
    found, seen = [], set()
    stack = list(outputs)
    while stack:
        node = stack.pop()
        if id(node) in seen or not node._tracked:
            continue
        seen.add(id(node))
        if node._parents is None:
            found.append(node)
        else:
            stack.extend(node._parents)
    return found


@contextlib.contextmanager
def _recording_rerun(training, autocast):
    """The rerun records (whatever tape or no_grad is active when the backward runs), in the training mode
    and autocast state of the first run, as a call nested in a layer call (so that layers do not clear the
    add_loss terms of the step), with state updates skipped."""
    from dlgpu.autograd import AutocastScope
    from dlgpu.layers.base import _call_context
    saved = (_tape_state.paused, _call_context.training, _call_context.depth)
    _tape_state.paused = 0
    _call_context.training, _call_context.depth = training, saved[2] + 1
    _tape_state.recomputing += 1
    try:
        with GradientTape(), AutocastScope(autocast):
            yield
    finally:
        _tape_state.recomputing -= 1
        _tape_state.paused, _call_context.training, _call_context.depth = saved


# -- layers ---------------------------------------------------------------------------------------------------

def layer_call(layer, call, shapes):
    """``call`` (a layer's call) as the layer's RematScope mode wants it rematerialized, ``shapes`` being its
    input shapes (for "larger_than").  Returns the function to call with the layer's arguments."""
    mode = layer._remat_mode
    if mode.mode == "full" or (mode.mode == "list_of_layers" and layer.name in mode.layer_names):
        return remat(call)
    if mode.mode == "larger_than":
        size = _output_size(layer, shapes)
        return remat(call) if size and size > mode.output_size_threshold else call
    if mode.mode == "activations" and getattr(layer, "activation", None) is not None:
        @functools.wraps(call)
        def with_rematerialized_activation(*args, **kwargs):
            original = layer.activation
            layer.activation = remat(original)
            try:
                return call(*args, **kwargs)
            finally:
                layer.activation = original
        return with_rematerialized_activation
    return call


def _output_size(layer, shapes):
    """Elements in the layer's output for these (concrete) input shapes, computed once per input shape (a
    layer without a compute_output_shape formula runs once on zeros for it).  A batch axis the shape
    inference leaves unknown is the inputs' batch size; other unknown sizes count as 1, as in Keras."""
    cache = layer.__dict__.setdefault("_remat_output_sizes", {})
    key = repr(shapes)
    if key not in cache:
        inputs = []
        tree.map_shape_structure(inputs.append, shapes)
        batch = next((s[0] for s in inputs if s), None)
        sizes = []
        tree.map_shape_structure(
            lambda s: sizes.append(math.prod((batch or 1) if i == 0 and d is None else d or 1 for i, d in enumerate(s))),
            layer.compute_output_shape(shapes))
        cache[key] = sum(sizes)
    return cache[key]
