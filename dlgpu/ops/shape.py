"""Shape and indexing ops, plus tensor creation and conversion."""

from __future__ import annotations

import numpy as np

from dlgpu.autograd import FLOATX, Tensor
from dlgpu.backend import device as _device
from dlgpu.ops._core import (array_module, backend_of, linear_vjp, make_result, open_grid, same_device, to_tensor,
                             unbroadcast_graph)


def convert_to_tensor(x, dtype=None, sparse=None):
    """A Tensor from an array-like.  Host data goes to the current device; device arrays stay put."""
    if isinstance(x, Tensor):
        return to_tensor(x, dtype)
    if isinstance(x, np.ndarray) or not type(x).__module__.startswith("cupy"):
        strings = _host_strings(x, dtype)
        if strings is not None:
            return strings
        dev = _device.get_device()
        t = Tensor(x, dtype=dtype)
        if dev.kind != "cpu":
            t = Tensor(_device.to_device(t.data, dev), dtype=t.data.dtype)  # the dtype is settled already
        return t
    return Tensor(x, dtype=dtype)


def _host_strings(x, dtype):
    """Strings stay a numpy array on the host (what a string Input and TextVectorization take), as Keras's
    TensorFlow backend keeps them a string tensor; None when ``x`` is not strings."""
    if isinstance(x, (str, bytes)):
        a = np.asarray(x, dtype=object)
    elif dtype == "string" or isinstance(x, (list, tuple, np.ndarray)):
        try:
            a = np.asarray(x)
        except ValueError:  # ragged lists: not strings we can hold; Tensor() says why
            return None
        if a.dtype.kind == "O" and not (a.size and all(isinstance(v, (str, bytes)) for v in a.flat)):
            return None
    else:
        return None
    if a.dtype.kind not in "USO":
        if dtype == "string":
            raise ValueError(f"convert_to_tensor: dtype='string' needs strings; received dtype {a.dtype}")
        return None
    if dtype not in (None, "string"):
        raise ValueError(f"convert_to_tensor: strings cannot become dtype {dtype!r}; leave dtype out or pass "
                         f"'string'")
    return a


def convert_to_numpy(x):
    return x.numpy() if isinstance(x, Tensor) else np.asarray(x)


def stop_gradient(x):
    """The same values, cut out of the graph: no gradient flows through."""
    x = to_tensor(x)
    return Tensor(x.data, dtype=x.data.dtype)  # Tensor() alone would turn float64 into float32


def shape(x):
    return tuple(to_tensor(x).shape)


def reshape(x, new_shape):
    x = to_tensor(x)
    old = x.data.shape
    try:
        out = x.data.reshape(new_shape)
    except ValueError:
        target = (new_shape,) if isinstance(new_shape, int) else tuple(new_shape)
        raise ValueError(f"reshape: cannot reshape a tensor of shape {old} ({x.size} values) into {target}") from None
    return make_result(out, (x,), lambda g: (g.reshape(old),), _reshape_vjp)


# The ``_*_vjp`` functions: the backwards written with ops, for higher-order gradients (dlgpu/autograd.py,
# backward_graph).  ``out`` is the op's result, its parents are the operands.
def _reshape_vjp(out, g):
    """The gradient in its operand's shape: the vjp of every op that only changes the shape."""
    return (reshape(g, out._parents[0].data.shape),)


def transpose(x, axes=None):
    x = to_tensor(x)
    xp = array_module(x.data)
    perm = tuple(reversed(range(x.ndim))) if axes is None else tuple(a % x.ndim for a in axes)
    inverse = tuple(np.argsort(perm))
    return make_result(xp.transpose(x.data, perm), (x,), lambda g: (xp.transpose(g, inverse),),
                       (_transpose_vjp, inverse))


def _transpose_vjp(out, g, inverse):
    return (transpose(g, inverse),)


def swapaxes(x, axis1, axis2):
    x = to_tensor(x)
    perm = list(range(x.ndim))
    perm[axis1], perm[axis2] = perm[axis2], perm[axis1]
    return transpose(x, perm)


def moveaxis(x, source, destination):
    x = to_tensor(x)
    perm = list(range(x.ndim))
    src = source % x.ndim
    perm.remove(src)
    perm.insert(destination % x.ndim, src)
    return transpose(x, perm)


def expand_dims(x, axis):
    x = to_tensor(x)
    xp = array_module(x.data)
    old = x.data.shape
    return make_result(xp.expand_dims(x.data, axis), (x,), lambda g: (g.reshape(old),), _reshape_vjp)


def squeeze(x, axis=None):
    x = to_tensor(x)
    xp = array_module(x.data)
    old = x.data.shape
    return make_result(xp.squeeze(x.data, axis=axis), (x,), lambda g: (g.reshape(old),), _reshape_vjp)


def broadcast_to(x, new_shape):
    from dlgpu.ops._core import unbroadcast
    x = to_tensor(x)
    xp = array_module(x.data)
    old = x.data.shape
    return make_result(xp.broadcast_to(x.data, new_shape), (x,), lambda g: (unbroadcast(g, old),), _broadcast_to_vjp)


def _broadcast_to_vjp(out, g):
    return (unbroadcast_graph(g, out._parents[0].data.shape),)


def concatenate(xs, axis=0):
    tensors = [to_tensor(t) for t in xs]
    if not tensors:
        raise ValueError("concatenate: needs at least one tensor")
    same_device("concatenate", *tensors)
    xp = array_module(tensors[0].data)
    ax = axis % tensors[0].ndim
    for t in tensors[1:]:
        if t.ndim != tensors[0].ndim or any(a != b for i, (a, b) in enumerate(zip(t.shape, tensors[0].shape)) if i != ax):
            raise ValueError(f"concatenate: shapes {[tt.shape for tt in tensors]} differ outside axis {axis}")
    bounds = np.cumsum([t.data.shape[ax] for t in tensors])[:-1]
    return make_result(xp.concatenate([t.data for t in tensors], axis=ax), tuple(tensors),
                       lambda g: tuple(xp.split(g, bounds, axis=ax)), (_concatenate_vjp, ax))


def _concatenate_vjp(out, g, ax):
    grads, start = [], 0
    for t in out._parents:
        stop = start + t.data.shape[ax]
        grads.append(_getitem(g, (slice(None),) * ax + (slice(start, stop),)) if t._tracked else None)
        start = stop
    return tuple(grads)


def stack(xs, axis=0):
    tensors = [to_tensor(t) for t in xs]
    same_device("stack", *tensors)
    xp = array_module(tensors[0].data)
    out = xp.stack([t.data for t in tensors], axis=axis)
    ax = axis % out.ndim
    return make_result(out, tuple(tensors),
                       lambda g: tuple(xp.take(g, i, axis=ax) for i in range(len(tensors))), (_stack_vjp, ax))


def _stack_vjp(out, g, ax):
    return tuple(_getitem(g, (slice(None),) * ax + (i,)) if t._tracked else None for i, t in enumerate(out._parents))


def unstack(x, num=None, axis=0):
    """keras.ops.unstack: the slices of ``x`` along ``axis``, as a list (an RNN's time steps, a gate's parts).

    Slicing each piece with ``x[i]`` would give every piece's backward a zero array of x's full shape, so
    n pieces cost O(n^2) in the backward.  Here the pieces write their gradients into one shared buffer,
    and a hidden identity node between ``x`` and the pieces hands that buffer to ``x`` once: the tape runs
    it after every piece (it is their only parent), so the buffer is complete by then.
    """
    x = to_tensor(x)
    xp = array_module(x.data)
    ax = axis % x.ndim
    count = x.data.shape[ax]
    if num is not None and num != count:
        raise ValueError(f"unstack: num={num} but axis {axis} of the tensor (shape {x.shape}) has length {count}")
    shape = x.data.shape
    pending = {}  # the buffer of the backward pass under way, if any

    def gather(g):
        # g is the zero placeholder handed up by the first piece; the gradient is in the buffer
        return (pending.pop("buffer"),)
    # For higher orders the pieces are plain slices of the hub (their vjps scatter as recorded ops, summed
    # by the graph sweep) and the hub is the identity.
    hub = make_result(x.data, (x,), gather, (_identity_vjp,))

    def piece(i):
        index = (slice(None),) * ax + (i,)

        def backward(g):
            first = "buffer" not in pending
            if first:
                pending["buffer"] = xp.zeros(shape, g.dtype)
            pending["buffer"][index] = g
            # One piece gives the hub a (free, broadcast) zero gradient so that the tape visits it; the
            # others give None, so the tape adds nothing up.
            return (xp.broadcast_to(xp.zeros((), g.dtype), shape) if first else None,)
        return make_result(x.data[index], (hub,), backward, (_getitem_vjp, index, True))
    return [piece(i) for i in range(count)]


def _identity_vjp(out, g):
    return (g,)


def split(x, indices_or_sections, axis=0):
    x = to_tensor(x)
    ax = axis % x.ndim
    length = x.data.shape[ax]
    if isinstance(indices_or_sections, int):
        if length % indices_or_sections:
            raise ValueError(f"split: axis {axis} of length {length} does not divide into {indices_or_sections} parts")
        step = length // indices_or_sections
        bounds = list(range(step, length, step))
    else:
        bounds = list(indices_or_sections)
    edges = [0] + bounds + [length]
    outs = []
    for start, stop in zip(edges[:-1], edges[1:]):
        index = [slice(None)] * x.ndim
        index[ax] = slice(start, stop)
        outs.append(_getitem(x, tuple(index)))
    return outs


def _getitem(x, index):
    x = to_tensor(x)  # a Variable indexed inside a mixed-precision layer is read in its compute dtype
    xp = array_module(x.data)
    if isinstance(index, Tensor):
        index = index.data
    elif isinstance(index, tuple):
        index = tuple(i.data if isinstance(i, Tensor) else i for i in index)
    out = x.data[index]
    shape, dtype = x.data.shape, x.data.dtype
    # Basic indexing (ints, slices, None, ...) reaches each element at most once, so the gradient can be
    # assigned; np.add.at is unbuffered and ~45x slower for a (32, 26, 26, 16) crop on numpy 2.4.
    basic = all(i is None or i is Ellipsis or isinstance(i, (int, np.integer, slice))
                for i in (index if isinstance(index, tuple) else (index,)))

    def backward(g):
        full = xp.zeros(shape, dtype)
        if basic:
            full[index] = g
        else:
            backend_of(full).scatter_add(full, index, g)
        return (full,)
    return make_result(out if isinstance(out, type(x.data)) else xp.asarray(out), (x,), backward,
                       (_getitem_vjp, index, basic))


def _getitem_vjp(out, g, index, basic):
    """The gradient scattered into zeros of the operand's shape, as a node whose own backward gathers
    (scattering is linear: its gradient is the indexing it undoes)."""
    x, = out._parents
    full = array_module(g.data).zeros(x.data.shape, g.data.dtype)
    if basic:
        full[index] = g.data
    else:
        backend_of(full).scatter_add(full, index, g.data)
    return (make_result(full, (g,), lambda gg: (gg[index],), (_scatter_vjp, index)),)


def _scatter_vjp(out, g, index):
    return (_getitem(g, index),)


def take(x, indices, axis=None):
    x = to_tensor(x)
    idx = indices.data if isinstance(indices, Tensor) else indices
    xp = array_module(x.data)
    idx = xp.asarray(idx)
    if axis is None:
        flat = reshape(x, (-1,))
        return _getitem(flat, idx)
    ax = axis % x.ndim
    index = (slice(None),) * ax + (idx,)
    return _getitem(x, index)


def take_along_axis(x, indices, axis=None):
    x = to_tensor(x)
    if axis is None:  # numpy's and Keras's meaning: along the flattened array
        x, axis = reshape(x, (-1,)), 0
    xp = array_module(x.data)
    idx = indices.data if isinstance(indices, Tensor) else xp.asarray(indices)
    out = xp.take_along_axis(x.data, idx, axis=axis)
    shape = x.data.shape
    return make_result(out, (x,), lambda g: (_put_along(g, idx, axis, shape),),
                       (linear_vjp, _take_along, _put_along, idx, axis, shape))


# take_along_axis, tile and repeat are linear in x: each (map, transpose) pair below, with the same
# trailing arguments, gives the first-order backward and, through linear_vjp, every higher order.
def _take_along(h, idx, axis, shape):
    return array_module(h).take_along_axis(h, idx, axis=axis)


def _put_along(g, idx, axis, shape):
    xp = array_module(g)
    full = xp.zeros(shape, g.dtype)
    # idx and x broadcast against each other off the axis, so g has the broadcast shape: the grid follows
    # g, and an axis where x has one entry gathers index 0 for every entry of g.
    grids = open_grid(xp, g.shape)
    for i, n in enumerate(shape):
        if n == 1 and g.shape[i] != 1:
            grids[i] = xp.zeros_like(grids[i])
    grids[axis % len(shape)] = idx
    backend_of(full).scatter_add(full, tuple(grids), g)
    return full


def tile(x, repeats):
    x = to_tensor(x)
    xp = array_module(x.data)
    reps = (repeats,) if isinstance(repeats, int) else tuple(repeats)
    reps = (1,) * (x.ndim - len(reps)) + reps
    shape = (1,) * (len(reps) - x.ndim) + x.data.shape
    out = xp.tile(x.data, reps)
    args = (reps, shape, x.data.shape)
    return make_result(out, (x,), lambda g: (_tile_adjoint(g, *args),), (linear_vjp, _tile_apply, _tile_adjoint) + args)


def _tile_apply(h, reps, shape, original):
    return array_module(h).tile(h, reps)


def _tile_adjoint(g, reps, shape, original):
    folded = g.reshape([v for pair in zip(reps, shape) for v in pair])
    return folded.sum(axis=tuple(range(0, 2 * len(reps), 2))).reshape(original)


def repeat(x, repeats, axis=None):
    """keras.ops.repeat: ``repeats`` is one count (an int, or a one-entry list as keras.io's conditional GAN
    passes it) or one count per entry along ``axis``, as numpy.repeat takes them."""
    x = to_tensor(x)
    if axis is None:
        x = reshape(x, (-1,))
        axis = 0
    ax = axis % x.ndim
    raw = _device.to_numpy(repeats.data) if isinstance(repeats, Tensor) else repeats
    counts = np.asarray(raw)
    if counts.size and counts.dtype.kind not in "iu":
        raise ValueError(f"repeat: repeats must be integers; received {repeats!r}")
    if counts.ndim > 1 or (counts.size != 1 and counts.size != x.data.shape[ax]):
        raise ValueError(f"repeat: repeats must be one count or one count per entry of axis {axis} "
                         f"({x.data.shape[ax]} entries, input shape {x.data.shape}); received {counts.size} counts")
    if counts.size and int(counts.min()) < 0:
        raise ValueError(f"repeat: repeats must not be negative; received {repeats!r}")
    shape = x.data.shape
    counts = int(counts.reshape(-1)[0]) if counts.size == 1 else counts.astype(np.int64)
    out = _repeat_apply(x.data, counts, ax, shape)
    return make_result(out, (x,), lambda g: (_repeat_adjoint(g, counts, ax, shape),),
                       (linear_vjp, _repeat_apply, _repeat_adjoint, counts, ax, shape))


def _repeat_apply(h, counts, ax, shape):
    return array_module(h).repeat(h, counts if isinstance(counts, int) else counts.tolist(), axis=ax)


def _repeat_adjoint(g, counts, ax, shape):
    if isinstance(counts, int):
        return g.reshape(shape[:ax] + (shape[ax], counts) + shape[ax + 1:]).sum(axis=ax + 1)
    # entries with the same count c own c consecutive outputs each: gather them as (entries, c) and sum
    xp = array_module(g)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    moved = xp.moveaxis(g, ax, 0)
    grad = xp.zeros((shape[ax],) + moved.shape[1:], dtype=g.dtype)
    for c in np.unique(counts[counts > 0]):
        entries = np.flatnonzero(counts == c)
        positions = starts[entries][:, None] + np.arange(c)[None, :]
        grad[xp.asarray(entries)] = moved[xp.asarray(positions.reshape(-1))].reshape(
            (len(entries), int(c)) + moved.shape[1:]).sum(axis=1)
    return xp.moveaxis(grad, 0, ax)


def pad(x, pad_width, mode="constant", constant_values=0):
    x = to_tensor(x)
    xp = array_module(x.data)
    if mode != "constant":
        raise ValueError(f"pad: only mode='constant' is supported; received {mode!r}")
    widths = [tuple(p) for p in pad_width]
    index = tuple(slice(before, before + size) for (before, _), size in zip(widths, x.data.shape))
    return make_result(xp.pad(x.data, widths, constant_values=constant_values), (x,), lambda g: (g[index],),
                       (_scatter_vjp, index))


def flip(x, axis=None):
    x = to_tensor(x)
    xp = array_module(x.data)
    return make_result(xp.flip(x.data, axis=axis), (x,), lambda g: (xp.flip(g, axis=axis),), (_flip_vjp, axis))


def _flip_vjp(out, g, axis):
    return (flip(g, axis),)


def one_hot(x, num_classes, dtype="float32"):
    x = to_tensor(x)
    xp = array_module(x.data)
    labels = x.data.astype(np.int64)
    if labels.size and (int(labels.min()) < 0 or int(labels.max()) >= num_classes):
        raise ValueError(f"one_hot: labels must lie in [0, {num_classes}); received values from "
                         f"{int(labels.min())} to {int(labels.max())}")
    out = xp.zeros(labels.shape + (num_classes,), dtype=dtype)
    xp.put_along_axis(out, labels[..., None], 1, axis=-1)
    return Tensor(out)


def _creation(name):
    def op(shape, dtype="float32"):
        dev = _device.get_device()
        return Tensor(getattr(dev.xp, name)(shape, dtype=dtype))
    op.__name__ = name
    return op


zeros = _creation("zeros")
ones = _creation("ones")
empty = _creation("empty")


def full(shape, fill_value, dtype="float32"):
    return Tensor(_device.get_device().xp.full(shape, fill_value, dtype=dtype))


def zeros_like(x, dtype=None):
    x = to_tensor(x)
    return Tensor(array_module(x.data).zeros_like(x.data, dtype=dtype))


def ones_like(x, dtype=None):
    x = to_tensor(x)
    return Tensor(array_module(x.data).ones_like(x.data, dtype=dtype))


def full_like(x, fill_value, dtype=None):
    x = to_tensor(x)
    return Tensor(array_module(x.data).full_like(x.data, fill_value, dtype=dtype))


def arange(start, stop=None, step=None, dtype=None):
    """keras.ops.arange: ``arange(stop)``, ``arange(start, stop[, step])``, or ``arange(stop, step=s)``."""
    if stop is None:
        start, stop = 0, start
    xp = _device.get_device().xp
    out = xp.arange(start, stop, 1 if step is None else step)
    if dtype is None:
        # int32 or floatx, as Keras gives for Python numbers (numpy would say int64 or float64)
        dtype = np.int32 if out.dtype.kind in "iu" else FLOATX
    return Tensor(out, dtype=dtype)


def eye(n, m=None, dtype="float32"):
    return Tensor(_device.get_device().xp.eye(n, m, dtype=dtype))


def linspace(start, stop, num=50, dtype="float32"):
    return Tensor(_device.get_device().xp.linspace(start, stop, num, dtype=dtype))


def size(x):
    return to_tensor(x).size


def ndim(x):
    return to_tensor(x).ndim


def flatten(x):
    return reshape(x, (-1,))



# Triangles, diagonals, grids, slices and scatters (keras.ops names).
def _index_data(xp, indices, op, name="indices"):
    """An integer index array on the device of the data it indexes."""
    idx = indices.data if isinstance(indices, Tensor) else xp.asarray(indices)
    if array_module(idx) is not xp:
        raise _device.DeviceError(f"{op}: {name} live on another device than the data they index")
    if idx.dtype.kind not in "iu":
        raise TypeError(f"{op}: {name} must be integers; received dtype {idx.dtype}")
    return idx


def _triangle(name, lower):
    def op(x, k=0):
        x = to_tensor(x)
        if x.ndim < 2:
            raise ValueError(f"{name}: needs a tensor of rank >= 2; received shape {x.data.shape}")
        xp = array_module(x.data)
        n, m = x.data.shape[-2:]
        keep = xp.tri(n, m, k, dtype=bool) if lower else ~xp.tri(n, m, k - 1, dtype=bool)
        # masking is linear and its own transpose: the vjp masks again, as a recorded op (linalg's
        # solve_triangular and the Cholesky and QR vjps differentiate through it)
        return make_result(_masked(x.data, keep), (x,), lambda g: (_masked(g, keep),),
                           (linear_vjp, _masked, _masked, keep))
    op.__name__ = name
    return op


def _masked(data, keep):
    return array_module(data).where(keep, data, array_module(data).zeros((), data.dtype))


tril = _triangle("tril", lower=True)
triu = _triangle("triu", lower=False)


def _diagonal_indices(xp, n, m, offset):
    length = max(0, min(n + min(offset, 0), m - max(offset, 0)))
    rows = xp.arange(length) + max(-offset, 0)
    return rows, rows - max(-offset, 0) + max(offset, 0)


def diagonal(x, offset=0, axis1=0, axis2=1):
    """numpy.diagonal: the diagonal becomes the last axis of the result."""
    x = to_tensor(x)
    if x.ndim < 2:
        raise ValueError(f"diagonal: needs a tensor of rank >= 2; received shape {x.data.shape}")
    xp = array_module(x.data)
    a1, a2 = axis1 % x.ndim, axis2 % x.ndim
    if a1 == a2:
        raise ValueError(f"diagonal: axis1 and axis2 must differ; received {axis1} and {axis2}")
    moved = xp.moveaxis(x.data, (a1, a2), (-2, -1))
    rows, cols = _diagonal_indices(xp, moved.shape[-2], moved.shape[-1], offset)

    def backward(g):
        full = xp.zeros(moved.shape, g.dtype)
        full[..., rows, cols] = g
        return (xp.moveaxis(full, (-2, -1), (a1, a2)),)
    return make_result(moved[..., rows, cols], (x,), backward)


def diag(x, k=0):
    """numpy.diag: a 1-D tensor becomes a square matrix with it on diagonal ``k``; a 2-D tensor gives its
    diagonal ``k``."""
    x = to_tensor(x)
    if x.ndim == 2:
        return diagonal(x, k)
    if x.ndim != 1:
        raise ValueError(f"diag: needs a 1-D or 2-D tensor; received shape {x.data.shape}")
    xp = array_module(x.data)
    n = x.data.shape[0] + abs(k)
    rows, cols = _diagonal_indices(xp, n, n, k)
    out = xp.zeros((n, n), x.data.dtype)
    out[rows, cols] = x.data
    return make_result(out, (x,), lambda g: (g[rows, cols],))


def tri(N, M=None, k=0, dtype=None):
    return Tensor(_device.get_device().xp.tri(N, M, k, dtype=dtype or FLOATX))


def identity(n, dtype=None):
    return eye(n, dtype=dtype or FLOATX)


def meshgrid(*x, indexing="xy"):
    if indexing not in ("xy", "ij"):
        raise ValueError(f"meshgrid: indexing must be 'xy' or 'ij'; received {indexing!r}")
    vectors = [reshape(to_tensor(v), (-1,)) for v in x]
    sizes = [v.data.shape[0] for v in vectors]
    if indexing == "xy" and len(vectors) >= 2:
        sizes[0], sizes[1] = sizes[1], sizes[0]
    grids = []
    for i, v in enumerate(vectors):
        axis = (1 if i == 0 else 0 if i == 1 else i) if indexing == "xy" and len(vectors) >= 2 else i
        shaped = [1] * len(vectors)
        shaped[axis] = sizes[axis]
        grids.append(broadcast_to(reshape(v, shaped), tuple(sizes)))
    return grids


def nonzero(x):
    """A tuple of int32 index tensors, one per axis."""
    x = to_tensor(x)
    xp = array_module(x.data)
    return tuple(Tensor(i.astype(np.int32)) for i in xp.nonzero(x.data))


def ravel(x):
    return reshape(x, (-1,))


def copy(x):
    x = to_tensor(x)
    return make_result(x.data.copy(), (x,), lambda g: (g,), _copy_vjp)


def _copy_vjp(out, g):
    return (g,)


def empty_like(x, dtype=None):
    x = to_tensor(x)
    return Tensor(array_module(x.data).empty_like(x.data, dtype=dtype))


def roll(x, shift, axis=None):
    x = to_tensor(x)
    xp = array_module(x.data)
    back = tuple(-s for s in shift) if isinstance(shift, (tuple, list)) else -shift
    return make_result(xp.roll(x.data, shift, axis=axis), (x,), lambda g: (xp.roll(g, back, axis=axis),))


def flipud(x):
    return flip(x, 0)


def fliplr(x):
    return flip(x, 1)


def hstack(xs):
    tensors = [to_tensor(t) for t in xs]
    return concatenate(tensors, axis=0 if tensors and tensors[0].ndim == 1 else 1)


def vstack(xs):
    return concatenate([reshape(t, (1, -1)) if to_tensor(t).ndim < 2 else t for t in xs], axis=0)


def _start_slices(op, shape, start_indices, sizes):
    starts = [int(s) for s in (start_indices.numpy() if isinstance(start_indices, Tensor) else start_indices)]
    if len(starts) != len(shape) or len(sizes) != len(shape):
        raise ValueError(f"{op}: start_indices ({len(starts)}) and the slice shape ({len(sizes)}) must name "
                         f"every axis of the input of shape {shape}")
    for axis, (start, size, dim) in enumerate(zip(starts, sizes, shape)):
        if start < 0 or start + size > dim:
            raise ValueError(f"{op}: a slice of size {size} at {start} leaves axis {axis} of size {dim}")
    return tuple(slice(s, s + n) for s, n in zip(starts, sizes))


def slice_op(inputs, start_indices, shape):
    """keras.ops.slice (exported under that name; here it would shadow the builtin)."""
    x = to_tensor(inputs)
    sizes = [x.data.shape[i] - int(s) if n == -1 else int(n)
             for i, (s, n) in enumerate(zip(list(start_indices), shape))]
    return _getitem(x, _start_slices("slice", x.data.shape, start_indices, sizes))


def slice_update(inputs, start_indices, updates):
    x, u = to_tensor(inputs), to_tensor(updates)
    same_device("slice_update", x, u)
    if u.ndim != x.ndim:
        raise ValueError(f"slice_update: updates of shape {u.data.shape} must have the rank of inputs "
                         f"of shape {x.data.shape}")
    return _overwritten(x, u, _start_slices("slice_update", x.data.shape, start_indices, u.data.shape))


def _overwritten(x, u, where):
    """``x`` with ``x[where]`` replaced by ``u`` (cast to x's dtype): slice_update's and scatter_update's
    result.  The gradient goes to ``u`` from ``where`` and to ``x`` everywhere else."""
    if u.data.dtype != x.data.dtype:
        from dlgpu.ops.math import cast
        u = cast(u, x.data.dtype)
    out = x.data.copy()
    out[where] = u.data

    def backward(g):
        gx = g.copy()
        gx[where] = 0
        return gx, g[where]
    return make_result(out, (x, u), backward)


def _scatter_index(op, xp, indices, shape):
    idx = _index_data(xp, indices, op)
    if idx.ndim < 1 or idx.shape[-1] > len(shape):
        raise ValueError(f"{op}: indices of shape {idx.shape} must end in an axis of at most {len(shape)} "
                         f"coordinates (the rank of the target)")
    return tuple(xp.moveaxis(idx, -1, 0))


def scatter(indices, values, shape):
    """A zero tensor of ``shape`` with ``values`` added at ``indices`` (repeated indices accumulate)."""
    v = to_tensor(values)
    xp = array_module(v.data)
    shape = tuple(int(s) for s in shape)
    index = _scatter_index("scatter", xp, indices, shape)
    out = xp.zeros(shape, v.data.dtype)
    backend_of(out).scatter_add(out, index, v.data)
    return make_result(out, (v,), lambda g: (g[index],))


def scatter_update(inputs, indices, updates):
    x, u = to_tensor(inputs), to_tensor(updates)
    same_device("scatter_update", x, u)
    return _overwritten(x, u, _scatter_index("scatter_update", array_module(x.data), indices, x.data.shape))


slice_op.__name__ = "slice"
get_item = _getitem


def rot90(array, k=1, axes=(0, 1)):
    x = to_tensor(array)
    xp = array_module(x.data)
    return make_result(xp.rot90(x.data, k, axes), (x,), lambda g: (xp.rot90(g, -k, axes),))


def column_stack(xs):
    return concatenate([reshape(t, (-1, 1)) if to_tensor(t).ndim < 2 else t for t in xs], axis=1)


def dstack(xs):
    def three_d(t):
        t = to_tensor(t)
        return reshape(t, (1, -1, 1)) if t.ndim < 2 else expand_dims(t, -1) if t.ndim == 2 else t
    return concatenate([three_d(t) for t in xs], axis=2)


def array_split(x, indices_or_sections, axis=0):
    """split(), but a section count need not divide the axis: the first parts get one more element."""
    x = to_tensor(x)
    if not isinstance(indices_or_sections, int):
        return split(x, indices_or_sections, axis)
    if indices_or_sections < 1:
        raise ValueError(f"array_split: the number of sections must be positive; received {indices_or_sections}")
    length = x.data.shape[axis % x.ndim]
    size, extra = divmod(length, indices_or_sections)
    bounds, edge = [], 0
    for i in range(indices_or_sections - 1):
        edge += size + (i < extra)
        bounds.append(edge)
    return split(x, bounds, axis)


def hsplit(x, indices_or_sections):
    x = to_tensor(x)
    return split(x, indices_or_sections, 0 if x.ndim == 1 else 1)


def vsplit(x, indices_or_sections):
    return split(x, indices_or_sections, 0)


def dsplit(x, indices_or_sections):
    return split(x, indices_or_sections, 2)


def _creation_range(name):
    def op(start, stop, num=50, endpoint=True, dtype=None, axis=0, **kwargs):
        xp = _device.get_device().xp
        if name == "geomspace":  # CuPy has no geomspace: a logspace between the logs, signs kept
            if start == 0 or stop == 0 or (start < 0) != (stop < 0):
                raise ValueError(f"geomspace: start and stop must be nonzero and of one sign; received {start}, {stop}")
            sign = -1.0 if start < 0 else 1.0
            out = sign * xp.logspace(np.log10(abs(start)), np.log10(abs(stop)), num, endpoint=endpoint)
        else:
            out = xp.logspace(start, stop, num, endpoint=endpoint, base=kwargs.pop("base", 10.0))
        if kwargs:
            raise TypeError(f"{name}: unexpected arguments {sorted(kwargs)}")
        out = out.astype(dtype or FLOATX)
        return Tensor(xp.moveaxis(out, 0, axis) if axis else out)
    op.__name__ = name
    return op


logspace = _creation_range("logspace")
geomspace = _creation_range("geomspace")


def unravel_index(indices, shape):
    x = to_tensor(indices)
    xp = array_module(x.data)
    return tuple(Tensor(i.astype(np.int32)) for i in xp.unravel_index(x.data, tuple(shape)))


def is_tensor(x):
    return isinstance(x, Tensor)


def dtype(x):
    """The dtype's name, as keras.ops.dtype gives it ("float32")."""
    return to_tensor(x).dtype


def array(x, dtype=None):
    """keras.ops.array: convert_to_tensor under numpy's name."""
    return convert_to_tensor(x, dtype=dtype)


def append(x1, x2, axis=None):
    """x2 after x1 along ``axis`` (both flattened when axis is None), in their promoted dtype."""
    from dlgpu.ops._core import binary_operands
    a, b = binary_operands("append", x1, x2)
    if axis is None:
        return concatenate([reshape(a, (-1,)), reshape(b, (-1,))], axis=0)
    return concatenate([a, b], axis=axis)


def diagflat(x, k=0):
    """A square matrix with the flattened x on its diagonal ``k``."""
    return diag(reshape(to_tensor(x), (-1,)), k)


def view(x, dtype=None):
    """The same bytes read as ``dtype`` (no copy where the array allows): a dtype of another width changes
    the last axis's size, as numpy's and torch's view.  Not differentiable: the values are reinterpreted."""
    x = to_tensor(x)
    if dtype is None:
        return x
    target = np.dtype(dtype)
    width, new_width = x.data.dtype.itemsize, target.itemsize
    if width != new_width:
        if x.ndim == 0 or (x.data.shape[-1] * width) % new_width:
            raise ValueError(f"view: cannot view a tensor of shape {x.data.shape} and dtype {x.dtype} as "
                             f"{target.name}: the last axis's {x.data.shape[-1] if x.ndim else 0} x {width} "
                             f"bytes must divide into {new_width}-byte values")
    data = x.data if x.data.flags.c_contiguous else array_module(x.data).ascontiguousarray(x.data)
    return make_result(data.view(target), (x,), lambda g: (None,))
