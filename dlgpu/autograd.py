"""Tensors, variables and the reverse-mode tape.

A :class:`Tensor` wraps one numpy or CuPy array.  While a :class:`GradientTape` is recording, every op
whose inputs include a *tracked* tensor (a trainable :class:`Variable`, a watched tensor, or the result
of a recorded op) stores its parents and a ``backward`` closure on its output.  ``tape.gradient`` sorts
that graph topologically and walks it in reverse (micrograd's shape, with arrays instead of scalars).
Outside a tape nothing is recorded, so inference pays no bookkeeping.

Backward closures take the upstream gradient (an array) and return one array (or None) per parent.

Higher-order gradients (a tape's ``gradient`` called while another tape records, or inside a persistent
tape's own context) take a second sweep, ``backward_graph``: there each op's *vjp* runs instead, a
module-level function that computes the parents' gradients with dlgpu ops from the output gradient as a
Tensor, so the outer tape records them (torch's ``create_graph=True``).  An op hands its vjp to
``make_result`` as a function ``vjp(out, g)``, or as a tuple ``(vjp, *extra)`` for ``vjp(out, g, *extra)``;
a node without one gives its raw gradient, wrapped so that the outer tape raises if it differentiates it.
"""

from __future__ import annotations

import threading

import numpy as np

from dlgpu.backend import device as _device
from dlgpu.naming import auto_name

FLOATX = "float32"


class _TapeState(threading.local):
    def __init__(self):
        self.tapes = []  # active GradientTapes, innermost last
        self.paused = 0  # >0 inside no_grad / stop_recording
        self.recomputing = 0  # >0 while a rematerialized function reruns for its backward (dlgpu/rematerialization.py)
        self.stateless = None  # the innermost open StatelessScope (dlgpu/scopes.py), which keeps the writes


_tape_state = _TapeState()


def is_recording():
    return bool(_tape_state.tapes) and not _tape_state.paused


class _AutocastState(threading.local):
    dtype = None  # a numpy float dtype while a mixed-precision layer's call runs; else None


# Keras's AutocastScope: inside the call of a layer whose compute dtype differs from its variables' (a
# "mixed_float16" layer), the ops read each float Variable made with autocast=True as a recorded cast to
# that dtype (ops/_core.py's to_tensor and friends), so its gradient comes back in the variable's own
# dtype.  Outside such calls this stays None and an op pays one attribute read.
autocast_state = _AutocastState()
# How many autocast scopes are open in any thread: the ops test this list's one entry first, so that a
# process that never opens a scope (every float32 model) reads no thread-local state per op.
autocast_active = [0]


class AutocastScope:
    """``with AutocastScope("float16"):`` float variables read by ops are cast to float16; None turns it off."""

    def __init__(self, dtype):
        self.dtype = None if dtype is None else np.dtype(dtype)
        if self.dtype is not None and self.dtype.kind != "f":
            raise ValueError(f"AutocastScope can only be used with a floating-point target dtype, such as "
                             f"'float16'. Received: dtype={dtype}")

    def __enter__(self):
        self._previous = autocast_state.dtype
        autocast_state.dtype = self.dtype
        autocast_active[0] += 1
        return self

    def __exit__(self, *exc):
        autocast_active[0] -= 1
        autocast_state.dtype = self._previous


def autocast_variable(v, dtype):
    """What an op reads for Variable ``v`` inside an autocast scope of ``dtype``: ``v`` itself, or a
    recorded cast of it (a float variable made with autocast=True, of another dtype)."""
    if not isinstance(v, Variable) or not v._autocast:
        return v
    src = v.data.dtype
    if src is dtype or src.kind != "f" or src == dtype:
        return v
    from dlgpu.ops.math import cast
    return cast(v, dtype)


class Tensor:
    """An immutable array on a device, with an optional link into the autograd graph."""

    # _keras_mask: the mask a layer attached to this tensor (Keras's masking; dlgpu/layers/masking.py), or None
    # _vjp: the op's differentiable backward (see backward_graph); set only on recorded results
    __slots__ = ("data", "_parents", "_backward", "_vjp", "_tracked", "_logits", "_keras_mask", "__weakref__")
    __array_priority__ = 100  # numpy defers `ndarray op Tensor` to our reflected operators

    def __init__(self, data, dtype=None):
        if isinstance(data, Tensor):
            data = data.data
        data = _as_array(data, dtype)
        self.data = data
        self._parents = None
        self._backward = None
        self._tracked = False
        self._logits = None  # set by softmax: lets cross-entropy fuse with it (Keras does the same)
        self._keras_mask = None

    # -- array facts -------------------------------------------------------------------------
    @property
    def shape(self):
        return tuple(self.data.shape)

    @property
    def dtype(self):
        return self.data.dtype.name

    @property
    def ndim(self):
        return self.data.ndim

    @property
    def size(self):
        return int(self.data.size)

    @property
    def device(self):
        return _device.device_of_array(self.data)

    def numpy(self):
        """A numpy array with the values (copied from the GPU when the tensor lives there)."""
        return _device.to_numpy(self.data)

    def __array__(self, dtype=None, copy=None):
        array = self.numpy()
        return array.astype(dtype) if dtype is not None else array

    def __len__(self):
        return len(self.data)

    def __repr__(self):
        dev = "" if isinstance(self.data, np.ndarray) else f", device={self.device}"
        values = np.array2string(self.numpy(), separator=", ", threshold=50, edgeitems=3)
        return f"<{type(self).__name__} shape={self.shape}, dtype={self.dtype}{dev}, numpy={values}>"

    def __format__(self, spec):
        """f"{loss:.4f}" works on a scalar tensor, as on TF's and numpy's (an empty spec gives the repr)."""
        if not spec:
            return repr(self)
        return format(self.numpy()[()], spec)

    def __bool__(self):
        return bool(self.data)

    def __float__(self):
        return float(self.data)

    def __int__(self):
        return int(self.data)

    def __index__(self):
        return int(self.data)

    def __hash__(self):
        return id(self)

    def item(self):
        return self.data.item()

    def to(self, dev):
        """An explicit copy of this tensor on another device (not differentiable)."""
        return Tensor(_device.to_device(self.data, dev))

    # Operators are attached in dlgpu/ops/__init__.py, where the ops are defined.


def _as_array(data, dtype=None):
    """numpy/cupy array from any array-like.  float64 becomes float32 unless a dtype is asked for:
    float32 is the default everywhere, and a stray float64 would halve the speed of every op after it.
    Python ints (and lists of them) become int32, as in Keras; anything with a dtype of its own keeps it."""
    if not (isinstance(data, np.ndarray) or type(data).__module__.startswith("cupy")):
        python_ints = dtype is None and not hasattr(data, "dtype")
        data = np.asarray(data, dtype=dtype)
        if python_ints and data.dtype == np.int64:
            narrow = data.astype(np.int32)
            # ints beyond int32 keep int64 (Keras's numpy backend would raise OverflowError instead)
            return narrow if (narrow == data).all() else data
    if dtype is not None:
        dtype = np.dtype(dtype)
        return data if data.dtype == dtype else data.astype(dtype)
    return data.astype(np.float32) if data.dtype == np.float64 else data


def make_result(data, parents, backward, vjp=None):
    """Wrap an op's output array; link it into the graph when recording and some parent is tracked.

    ``vjp``: the differentiable backward higher-order gradients use (see backward_graph), a module-level
    function or a tuple ``(function, *extra)``: nothing is built per call beyond that tuple."""
    out = Tensor.__new__(Tensor)
    out.data = data
    out._logits = None
    out._keras_mask = None  # always set: reading it then costs a slot read, not a caught AttributeError
    if _tape_state.tapes and not _tape_state.paused:
        for p in parents:
            if p._tracked:
                out._tracked = True
                out._parents = parents
                out._backward = backward
                out._vjp = vjp
                return out
    out._tracked = False
    out._parents = None
    out._backward = None
    return out




class _ScopeState(threading.local):
    def __init__(self):
        self.stack = []  # the open name_scope objects, innermost last


_scope_state = _ScopeState()


def current_path():
    """The open name scopes joined with "/" ("" outside any); a scope with ``override_parent`` starts the
    path afresh from it (Keras's rule, which layers use to stay under the scope they were first built in)."""
    parts = []
    for scope in _scope_state.stack:
        if scope.override_parent is not None:
            parts = [p for p in scope.override_parent.split("/") if p]
        parts.append(scope.name)
    return "/".join(parts)


def scoped_path(name):
    """``name`` under the open name scopes: the ``path`` a variable created now gets."""
    prefix = current_path()
    return f"{prefix}/{name}" if prefix else name


class name_scope:  # noqa: N801 - Keras's name
    """keras.name_scope: variables created inside get ``scope/`` before their path (``block1/dense/kernel``),
    as in Keras; their ``name`` stays as it was.  Only the path changes: saved files match weights by
    position, so a scope never stops a file from loading.

    ``override_parent`` starts the path afresh from that value (a ``caller`` layer's first-build path when
    not given); with ``deduplicate``, the same caller re-entering its own scope adds nothing (a layer's call
    inside its build)."""

    def __init__(self, name, caller=None, deduplicate=True, override_parent=None):
        if not isinstance(name, str) or not name or "/" in name:
            raise ValueError(f"name_scope: `name` must be a non-empty string without '/'. Received: name={name!r}")
        self.name = name
        self.caller = caller
        self.deduplicate = deduplicate
        if override_parent is None and deduplicate and getattr(caller, "_parent_path", None) is not None:
            override_parent = caller._parent_path
        self.override_parent = override_parent
        self._pushed = False

    def __enter__(self):
        stack = _scope_state.stack
        if self.deduplicate and stack and self.caller is not None and stack[-1].caller is self.caller \
                and stack[-1].name == self.name:
            return self
        stack.append(self)
        self._pushed = True
        return self

    def __exit__(self, *exc_info):
        if self._pushed:
            _scope_state.stack.pop()
            self._pushed = False
        return False


# Bumped whenever a variable gains or loses a constraint, so that an optimizer re-lists its constrained
# variables only then, not by scanning every variable every step.
constraint_version = [0]


def _note_constraint_change():
    constraint_version[0] += 1


class Variable(Tensor):
    """A mutable tensor: model weights and optimizer state.

    ``trainable`` variables are watched by every GradientTape automatically, as in Keras.
    """

    __slots__ = ("name", "trainable", "_regularizer", "_constraint", "path", "_autocast")

    def __init__(self, initializer=None, shape=None, dtype=None, trainable=True, name=None,
                 regularizer=None, constraint=None, autocast=True):
        if callable(initializer) and not isinstance(initializer, (np.ndarray, Tensor)):
            if shape is None:
                raise ValueError("dlgpu.Variable: an initializer function needs `shape`.")
            value = initializer(tuple(shape), dtype or FLOATX)
        else:
            value = initializer
        dev = _device.get_device()
        value = _as_array(value.data if isinstance(value, Tensor) else value, dtype)
        if not value.flags.c_contiguous:
            # the fused optimizer kernels update a variable in place as one flat C-ordered buffer (an
            # orthogonal initializer's transposed Q, an LSTM's recurrent kernel, would be refused on the GPU)
            value = value.copy(order="C")
        if dev.kind != "cpu" and isinstance(value, np.ndarray):
            value = _device.to_device(value, dev)
        super().__init__(value, dtype=value.dtype)  # Tensor() alone would turn a requested float64 into float32
        if shape is not None and tuple(self.data.shape) != tuple(shape):
            raise ValueError(f"dlgpu.Variable '{name}': initial value has shape {self.data.shape}, expected {tuple(shape)}.")
        self.name = name or auto_name("Variable")  # variable, variable_1... as Keras names them
        self.path = scoped_path(self.name)
        self.trainable = bool(trainable)
        self._tracked = self.trainable
        self._regularizer = regularizer
        self._constraint = constraint
        # False for variables a layer keeps in float32 whatever its policy (BatchNormalization's moving
        # statistics, as Keras); see AutocastScope
        self._autocast = bool(autocast)
        if constraint is not None:
            _note_constraint_change()

    @property
    def constraint(self):
        """Applied by the optimizer after each update: the variable becomes ``constraint(variable)``."""
        return self._constraint

    @constraint.setter
    def constraint(self, value):
        self._constraint = value
        _note_constraint_change()

    def __setattr__(self, key, value):
        if key == "trainable":
            object.__setattr__(self, "_tracked", bool(value))
        object.__setattr__(self, key, value)

    def numpy(self):
        """A copy of the values: a variable changes in place as it trains, a snapshot must not."""
        array = _device.to_numpy(self.data)
        return array.copy() if array is self.data else array

    @property
    def value(self):
        return Tensor(self.data)

    def _operand(self, value, op):
        """The array to write: the variable's shape (or a scalar), never broadcast.  Host data (numpy
        arrays, Python numbers, lists) is input like fit's x and is copied to the variable's device, as
        Keras's assign converts it; a dlgpu Tensor or device array elsewhere is a device mix, refused."""
        new = value.data if isinstance(value, Tensor) else value
        if np.isscalar(new):
            return self.data.dtype.type(new)
        if not isinstance(value, Tensor) and (isinstance(new, np.ndarray) or not hasattr(new, "shape")):
            new = np.asarray(new, dtype=self.data.dtype)
            if new.ndim != 0 and tuple(new.shape) != self.data.shape:
                raise ValueError(f"Variable '{self.name}': cannot {op} a value of shape {tuple(new.shape)} "
                                 f"to a variable of shape {self.shape}.")
            return new if type(self.data) is np.ndarray else _device.to_device(new, self.device)
        if _device.device_of_array(new) != self.device:
            raise _device.DeviceError(
                f"Variable '{self.name}' lives on {self.device} but the value given to {op} is on "
                f"{_device.device_of_array(new)}; move it with dlgpu.to_device first.")
        if new.ndim != 0 and tuple(new.shape) != self.data.shape:
            raise ValueError(f"Variable '{self.name}': cannot {op} a value of shape {tuple(new.shape)} "
                             f"to a variable of shape {self.shape}.")
        return new

    # A rematerialized function's rerun (dlgpu/rematerialization.py) repeats a forward whose writes were already
    # made; inside a StatelessScope (dlgpu/scopes.py) a write goes to the scope's private copy.
    def _prepare_write(self):
        """Whether a write to this variable happens now (not in a rematerialized rerun); in a StatelessScope
        it then goes to the scope's private copy."""
        state = _tape_state
        if state.recomputing:
            return False
        if state.stateless is not None:
            state.stateless._before_write(self)
        return True

    def assign(self, value):
        if self._prepare_write():
            self.data[...] = self._operand(value, "assign")
        return self

    def assign_add(self, delta):
        if self._prepare_write():
            self.data += self._operand(delta, "assign_add")
        return self

    def assign_sub(self, delta):
        if self._prepare_write():
            self.data -= self._operand(delta, "assign_sub")
        return self

    def __repr__(self):
        return f"<Variable path={self.path}, shape={self.shape}, dtype={self.dtype}, value={self.numpy()!r}>"


class GradientTape:
    """Records ops on trainable variables and watched tensors, like ``tf.GradientTape``."""

    def __init__(self, persistent=False, watch_accessed_variables=True):
        self.persistent = persistent
        self.watch_accessed_variables = watch_accessed_variables
        self._watched = []
        self._used = False
        self._recording = False

    def __enter__(self):
        _tape_state.tapes.append(self)
        self._recording = True
        return self

    def __exit__(self, *exc):
        _tape_state.tapes.remove(self)
        self._recording = False
        return False

    def watch(self, tensor):
        """Track gradients with respect to a tensor that is not a trainable variable."""
        for t in tensor if isinstance(tensor, (list, tuple)) else [tensor]:
            if not isinstance(t, Tensor):
                raise TypeError(f"GradientTape.watch expects dlgpu tensors, received {type(t).__name__}.")
            if not t._tracked:
                t._tracked = True
                self._watched.append(t)
            elif t._parents is None and not (isinstance(t, Variable) and t.trainable):
                # tracked only because another (nested) tape watches it: remember it here too, so
                # that tape's release does not silently stop this one from seeing it
                if not any(t is w for w in self._watched):
                    self._watched.append(t)

    def stop_recording(self):
        return no_grad()

    def gradient(self, target, sources, output_gradients=None, unconnected_gradients="none"):
        """d(sum of target)/d(source) for each source; None for unconnected sources (as in Keras)."""
        if self._used and not self.persistent:
            raise RuntimeError("A non-persistent GradientTape can only compute one gradient; "
                               "use GradientTape(persistent=True) to call gradient() several times.")
        if unconnected_gradients not in ("none", "zero"):
            raise ValueError(f"GradientTape.gradient: unconnected_gradients must be 'none' or 'zero'; "
                             f"received {unconnected_gradients!r}")
        self._used = True
        # Record the gradient computation (differentiable gradients) when a tape could differentiate it:
        # another tape is recording, or this persistent one is (called inside its own context, as in TF).
        # Otherwise the first-order sweep on raw arrays, which costs nothing extra.
        graph = is_recording() and any(tape is not self or self.persistent for tape in _tape_state.tapes)
        flat_sources, rebuild = _flatten(sources)
        targets, _ = _flatten(target)
        if output_gradients is not None:
            seeds, _ = _flatten(output_gradients)
            for t, seed in zip(targets, seeds):
                elsewhere = None if seed is None or not isinstance(t, Tensor) else \
                    _device.foreign_device(getattr(seed, "data", seed), t.data)
                if elsewhere is not None:
                    raise _device.DeviceError(f"GradientTape.gradient: an output gradient is on {elsewhere} but "
                                              f"its target lives on {t.device}; move it with dlgpu.to_device.")
        else:
            seeds = [None] * len(targets)
        if graph:
            return self._graph_gradient(targets, seeds, flat_sources, rebuild, unconnected_gradients)
        grads = backward(targets, seeds)
        result = []
        for s in flat_sources:
            if not isinstance(s, Tensor):
                raise TypeError(f"GradientTape.gradient: sources must be dlgpu tensors or variables, received {type(s).__name__}.")
            g = grads.get(id(s))
            if g is None and unconnected_gradients == "zero":
                g = _device.device_of_array(s.data).xp.zeros_like(s.data)  # not s.data * 0: inf * 0 is nan
            # Keep the gradient's own dtype: Tensor() alone would turn float64 gradients into float32.
            result.append(None if g is None else Tensor(g, dtype=g.dtype))
        if not self.persistent:
            self._release()
        return rebuild(result)

    def _graph_gradient(self, targets, seeds, flat_sources, rebuild, unconnected_gradients):
        for s in flat_sources:
            if not isinstance(s, Tensor):
                raise TypeError(f"GradientTape.gradient: sources must be dlgpu tensors or variables, received {type(s).__name__}.")
        grads = backward_graph(targets, seeds, flat_sources)
        result = []
        for s in flat_sources:
            g = grads.get(id(s))
            if g is None and unconnected_gradients == "zero":
                g = make_result(_device.device_of_array(s.data).xp.zeros_like(s.data), (), None)
            result.append(g)
        if not self.persistent:
            self._release()
        return rebuild(result)

    def _release(self):
        still_watched = [w for tape in _tape_state.tapes if tape is not self for w in tape._watched]
        for t in self._watched:
            if not any(t is w for w in still_watched):
                t._tracked = isinstance(t, Variable) and t.trainable
        self._watched = []


def _flatten(obj):
    """(leaves, rebuild): as tf.GradientTape, sources (and targets) may be nested lists, tuples and dicts, and
    the gradients come back in the same structure (keras.io's ShiftViT asks for [[layer vars], ...])."""
    leaves = []

    def walk(node):
        if isinstance(node, (list, tuple)):
            return (type(node), [walk(item) for item in node])
        if isinstance(node, dict):
            return (dict, {key: walk(value) for key, value in node.items()})
        leaves.append(node)
        return None

    shape = walk(obj)

    def rebuild(values):
        values = iter(values)

        def build(node):
            if node is None:
                return next(values)
            kind, children = node
            if kind is dict:
                return {key: build(child) for key, child in children.items()}
            items = [build(child) for child in children]
            if issubclass(kind, list):
                return items
            return kind(*items) if hasattr(kind, "_fields") else tuple(items)  # a namedtuple keeps its type
        return build(shape)
    return leaves, rebuild


def _topological_order(roots):
    """Recorded tensors reachable from roots, each after all of its parents (iterative DFS)."""
    order, seen = [], set()
    for root in roots:
        if id(root) in seen or root._parents is None:
            continue
        stack = [(root, False)]
        while stack:
            node, expanded = stack.pop()
            if expanded:
                order.append(node)
                continue
            if id(node) in seen:
                continue
            seen.add(id(node))
            stack.append((node, True))
            for p in node._parents:
                if p._parents is not None and id(p) not in seen:
                    stack.append((p, False))
    return order


def backward(targets, seeds):
    """Reverse-mode sweep: returns {id(tensor): gradient array} for every tracked tensor reached."""
    grads = {}
    for t, seed in zip(targets, seeds):
        if not isinstance(t, Tensor):
            raise TypeError(f"GradientTape.gradient: target must be a dlgpu tensor, received {type(t).__name__}.")
        if seed is None:
            # ones_like, not t * 0 + 1: an infinite loss (an impossible CTC alignment) still seeds 1
            from dlgpu.ops._core import array_module
            g = array_module(t.data).ones_like(t.data)
        else:
            g = seed.data if isinstance(seed, Tensor) else seed
        if isinstance(g, np.generic):  # numpy turns 0-d results into scalars; backwards expect arrays
            g = np.asarray(g)
        _accumulate(grads, t, g)
    for node in reversed(_topological_order(targets)):
        g = grads.get(id(node))
        if g is None:
            continue
        parent_grads = node._backward(g)
        for p, pg in zip(node._parents, parent_grads):
            if pg is not None and p._tracked:
                _accumulate(grads, p, pg)
    return grads


def _accumulate(grads, tensor, g):
    key = id(tensor)
    prev = grads.get(key)
    if prev is None:
        if g.shape != tensor.data.shape:  # broadcasting leftovers must already be reduced by the op
            g = g.reshape(tensor.data.shape)
        grads[key] = g
    else:
        grads[key] = prev + g


def _constant(array):
    """A Tensor of ``array`` outside the graph, in the array's own dtype (Tensor() makes float64 float32)."""
    if isinstance(array, np.generic):
        array = np.asarray(array)
    return make_result(array, (), None)


def backward_graph(targets, seeds, sources):
    """The reverse sweep with differentiable vjps: {id(tensor): gradient Tensor}, recorded by the tapes
    that are recording.  Only nodes on a path to a tracked source are visited."""
    grads = {}
    for t, seed in zip(targets, seeds):
        if not isinstance(t, Tensor):
            raise TypeError(f"GradientTape.gradient: target must be a dlgpu tensor, received {type(t).__name__}.")
        if seed is None:
            from dlgpu.ops._core import array_module
            g = _constant(array_module(t.data).ones_like(t.data))
        else:
            g = seed if isinstance(seed, Tensor) else _constant(seed if hasattr(seed, "dtype") else np.asarray(seed, t.data.dtype))
        _accumulate_graph(grads, t, g)
    order = _topological_order(targets)
    leads = {id(s) for s in sources if s._tracked}  # the sources, and every node with a path to one
    visit = []
    for node in order:
        if any(id(p) in leads for p in node._parents):
            leads.add(id(node))
            visit.append(node)
    for node in reversed(visit):
        g = grads.get(id(node))
        if g is None:
            continue
        vjp = getattr(node, "_vjp", None)
        if vjp is None:
            parent_grads = _unsupported_vjp(node, g)
        elif type(vjp) is tuple:
            parent_grads = vjp[0](node, g, *vjp[1:])
        else:
            parent_grads = vjp(node, g)
        for p, pg in zip(node._parents, parent_grads):
            if pg is not None and id(p) in leads:
                _accumulate_graph(grads, p, pg)
    return grads


def _accumulate_graph(grads, tensor, g):
    key = id(tensor)
    prev = grads.get(key)
    if prev is None:
        if g.data.shape != tensor.data.shape:
            from dlgpu.ops.shape import reshape
            g = reshape(g, tensor.data.shape)
        grads[key] = g
    else:
        from dlgpu.ops.math import add
        grads[key] = add(prev, g)


def op_name(backward_fn):
    """"ops.conv2d" for the backward closure of dlgpu.ops.conv.conv2d (what an error message can name)."""
    qualname = getattr(backward_fn, "__qualname__", None) or repr(backward_fn)
    name = qualname.split(".<locals>")[0]
    module = getattr(backward_fn, "__module__", None) or ""
    if module.startswith("dlgpu.ops"):
        return f"ops.{name}"
    return f"{module}.{name}" if module else name


def _unsupported_vjp(node, g):
    """An op without a vjp: its raw gradient, each wrapped in a node that depends on everything the raw
    gradient was computed from and raises when an outer tape differentiates it; a gradient only used as a
    value (an optimizer step, a metric) stays usable."""
    raw = node._backward(g.data)
    if all(pg is None for pg in raw):
        return raw
    refuse = _refusal(op_name(node._backward))
    deps = tuple(node._parents) + ((g,) if g._tracked else ())
    return tuple(None if pg is None else make_result(np.asarray(pg) if isinstance(pg, np.generic) else pg, deps, refuse)
                 for pg in raw)


def _refusal(name):
    def backward(g):
        raise NotImplementedError(
            f"GradientTape.gradient: second-order gradients through {name} are not supported yet: a gradient "
            f"that another tape computed through {name} is being differentiated.  Ops with higher-order "
            f"gradients include the arithmetic and elementwise math ops, matmul, ops.dense, the convolutions "
            f"(conv2d, ops.conv of any rank with dilation and groups, depthwise_conv, conv_transpose, and "
            f"Conv2D+MaxPooling2D's fused conv2d_maxpool), max and average pooling (1-D to 3-D), layer and batch "
            f"normalization, the activations, the reductions sum/mean/max/min/prod/logsumexp, cumsum/cumprod, "
            f"reshape/transpose/concatenate/stack/unstack/slicing/pad/tile/repeat/take_along_axis, dropout, "
            f"softmax and the cross-entropies, linalg inv/det/logdet/slogdet/solve/solve_triangular/cholesky/eigh/qr/"
            f"svd/lstsq/pinv, tril/triu, and the recurrent layers built "
            f"from them.")
    return backward


class no_grad:
    """Context manager (and decorator) under which nothing is recorded: inference mode."""

    def __enter__(self):
        _tape_state.paused += 1
        return self

    def __exit__(self, *exc):
        _tape_state.paused -= 1
        return False

    def __call__(self, fn):
        def wrapper(*args, **kwargs):
            with no_grad():
                return fn(*args, **kwargs)
        wrapper.__wrapped__ = fn
        wrapper.__name__ = getattr(fn, "__name__", "wrapper")
        return wrapper
