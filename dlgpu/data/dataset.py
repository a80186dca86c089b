"""dlgpu.data.Dataset: tf.data.Dataset's API over numpy arrays, on the host.

A Dataset is a recipe; every ``iter(ds)`` runs it afresh (a new epoch: shuffles draw a new order, unless
``reshuffle_each_iteration=False``).  Elements are numpy arrays and numpy scalars in tf.data's structures
(tuples, dicts, nested); user functions (map, filter, flat_map, from_generator) run lazily, one element
at a time, in the thread that iterates, and whatever they return is kept (a dlgpu Tensor stays one until
a batch stacks it on the host).

The fast path.  A pipeline of ``from_tensor_slices`` followed only by ``shuffle``, ``repeat``, ``take``,
``skip``, ``cache`` and ``prefetch`` is carried out on sample *indices* (an "index plan"), and ``batch``
then gathers each batch from the source arrays in one fancy-indexing operation per array (a slice when
the indices are consecutive): no per-sample Python work, as fit's own array path.  A ``map`` or ``filter``
before ``batch`` ends the plan, and batching falls back to stacking elements.
"""

from __future__ import annotations

import itertools
import math

import numpy as np

from dlgpu.data import structure as st
from dlgpu.data.index_plan import _buffer_shuffle, _chunked, _gather, _index_batches, _Plan
from dlgpu.data.structure import TensorSpec

AUTOTUNE = -1
INFINITE_CARDINALITY = -1
UNKNOWN_CARDINALITY = -2


class Cardinality(int):
    """What ``Dataset.cardinality()`` returns: an int (compare it with INFINITE_CARDINALITY and
    UNKNOWN_CARDINALITY) that also answers ``.numpy()``, as the scalar tensor TensorFlow returns does."""

    def numpy(self):
        return np.int64(self)


# -- argument checks --------------------------------------------------------------------------------------

def _is_int(value):
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def _check_int(value, name, method, minimum, allow_none=False):
    if value is None and allow_none:
        return None
    if not _is_int(value) or value < minimum:
        bound = {1: "a positive integer", 0: "a non-negative integer", -1: "an integer >= -1"}[minimum]
        raise ValueError(f"Dataset.{method}: `{name}` must be {bound}{' or None' if allow_none else ''}; "
                         f"received {name}={value!r}")
    return int(value)


def _check_parallel(num_parallel_calls, method):
    if num_parallel_calls is not None and (not _is_int(num_parallel_calls) or num_parallel_calls < -1
                                           or num_parallel_calls == 0):
        raise ValueError(f"Dataset.{method}: `num_parallel_calls` must be None, AUTOTUNE (-1) or a positive integer; "
                         f"received num_parallel_calls={num_parallel_calls!r}")


def _check_callable(fn, name, method):
    if not callable(fn):
        raise TypeError(f"Dataset.{method}: `{name}` must be callable; received {type(fn).__name__}")


def _call(fn, element):
    """tf.data's calling convention: a tuple element is spread over the arguments, anything else
    (a dict, an array) is one argument."""
    return fn(*element) if type(element) is tuple else fn(element)


def _function_output(value, method):
    if isinstance(value, (np.ndarray, np.generic)) or (
            type(value) is tuple and all(isinstance(v, (np.ndarray, np.generic)) for v in value)):
        return value  # numpy already: nothing to convert (the common case, checked cheaply)
    if isinstance(value, list):  # tf.data makes a returned list a tuple
        value = tuple(value)
    if isinstance(value, Dataset):
        raise TypeError(f"Dataset.{method}: the function returned a Dataset; use flat_map for that.")
    return st.map_with_path(lambda p, v: v if type(v).__name__ == "Tensor" else st.as_array(v, f"Dataset.{method}", p),
                            value)


def _cardinality_name(n):
    return {INFINITE_CARDINALITY: "infinite", UNKNOWN_CARDINALITY: "unknown"}.get(n, str(n))


# -- Dataset ----------------------------------------------------------------------------------------------

class Dataset:
    """A tf.data.Dataset work-alike over numpy arrays (see the module docstring).  Build one with
    ``Dataset.from_tensor_slices``, ``from_tensors``, ``range``, ``from_generator`` or ``zip``; iterate it with
    ``for element in ds`` or ``ds.as_numpy_iterator()``; give it to ``model.fit`` / ``evaluate`` /
    ``predict``, whose batches it then provides (``(x, y)``, ``(x, y, sample_weight)`` or ``x``)."""

    # Whether the elements are batches: False where they are single samples by construction (a
    # from_tensor_slices or range pipeline without batch), True after batch, None when not known.
    _batched = None

    # what subclasses implement
    def _elements(self):
        raise NotImplementedError

    def _plan(self):
        return None

    def _index_batches(self):
        return None

    def _cardinality(self):
        return UNKNOWN_CARDINALITY

    def _spec(self):
        return st.map_structure(TensorSpec.from_value, self._peek())

    def _peek(self):
        """One element, for element_spec: the first, without advancing any shuffle's generator."""
        for element in self:
            return element
        raise ValueError(f"{type(self).__name__}: the dataset is empty, so its element_spec cannot be found")

    # -- iteration and inspection
    def __iter__(self):
        plan = self._plan()
        if plan is not None:
            return (_gather(plan.arrays, i) for chunk in plan.chunks() for i in chunk)
        return iter(self._elements())

    def __bool__(self):  # __len__ may raise (an infinite dataset); a dataset is always true, as in TensorFlow
        return True

    def __len__(self):
        n = self._cardinality()
        if n == INFINITE_CARDINALITY:
            raise TypeError("The dataset is infinite.")
        if n == UNKNOWN_CARDINALITY:
            raise TypeError("The dataset length is unknown.")
        return n

    def cardinality(self):
        """The number of elements, or INFINITE_CARDINALITY (-1) or UNKNOWN_CARDINALITY (-2) as tf.data
        computes it: a filter, unbatch, flat_map or from_generator makes it unknown."""
        return Cardinality(self._cardinality())

    @property
    def element_spec(self):
        """The structure of the elements, a TensorSpec per component.  Where a user function made the
        elements (map, from a PyDataset) the shapes are those of the first element, which is computed for
        it; tf.data traces the function instead and may leave some sizes None."""
        return self._spec()

    def as_numpy_iterator(self):
        """The elements with every component a numpy array or scalar (a Tensor a map returned is copied to
        the host).  Strings stay Python/numpy str where TensorFlow would give bytes."""
        return (st.map_structure(st.to_host_leaf, element) for element in self)

    def __repr__(self):
        return f"<{type(self).__name__.lstrip('_')} cardinality={_cardinality_name(self._cardinality())}>"

    # -- sources
    @staticmethod
    def from_tensor_slices(tensors, name=None):
        """One element per index of the first axis of ``tensors`` (an array, or a tuple/dict, possibly
        nested, of arrays sharing that axis's size).  The arrays are used as given, not copied."""
        return _TensorSlices(tensors)

    @staticmethod
    def from_tensors(tensors, name=None):
        """A dataset of one element, ``tensors`` itself."""
        return _Tensors(tensors)

    @staticmethod
    def range(*args, output_type="int64", name=None):
        """``range(stop)``, ``range(start, stop)``, ``range(start, stop, step)``: numpy scalars of
        ``output_type`` (int64, as tf.data's default)."""
        return _Range(args, output_type)

    @staticmethod
    def from_generator(generator, output_types=None, output_shapes=None, args=None, output_signature=None,
                       name=None):
        """The elements ``generator(*args)`` yields; ``generator`` is called again for every iteration.
        ``output_signature`` (a structure of TensorSpec; or the older ``output_types`` with
        ``output_shapes``) describes them and is checked on every element: its structure, its shapes
        (None matches any size), and its dtypes, to which the values are converted as tf.data converts them."""
        return _Generator(generator, output_types, output_shapes, args, output_signature)

    @staticmethod
    def zip(*args, datasets=None, name=None):
        """Elements of several datasets side by side, in the structure they are given in (``zip(a, b)``,
        ``zip((a, b))`` or ``zip({"x": a, "y": b})``); it ends with the shortest."""
        if datasets is not None and args:
            raise TypeError("Dataset.zip: pass the datasets either positionally or as `datasets`, not both")
        if datasets is None:
            if not args:
                raise TypeError("Dataset.zip: expected at least one dataset")
            datasets = args[0] if len(args) == 1 else tuple(args)
        return _Zip(datasets)

    # -- transformations
    def batch(self, batch_size, drop_remainder=False, num_parallel_calls=None, deterministic=None, name=None):
        """Consecutive elements stacked along a new first axis, ``batch_size`` at a time (the last batch
        smaller unless ``drop_remainder``).  All elements of a batch need the same shapes (padded_batch pads)."""
        _check_parallel(num_parallel_calls, "batch")
        return _Batch(self, _check_int(batch_size, "batch_size", "batch", 1), bool(drop_remainder))

    def padded_batch(self, batch_size, padded_shapes=None, padding_values=None, drop_remainder=False, name=None):
        """batch() for elements of different shapes: each component is padded at the end of its axes, to
        ``padded_shapes`` (a shape per component, None or -1 for "the longest in the batch"; default: every
        axis to the longest in the batch) with ``padding_values`` (one scalar, or one per component; default
        0, and "" for strings)."""
        return _PaddedBatch(self, _check_int(batch_size, "batch_size", "padded_batch", 1), padded_shapes,
                            padding_values, bool(drop_remainder))

    def unbatch(self, name=None):
        """The slices of each element along its first axis (the inverse of batch)."""
        return _Unbatch(self)

    def map(self, map_func, num_parallel_calls=None, deterministic=None, name=None):
        """``map_func`` of every element (a tuple element spread over its arguments).  Runs lazily, one
        element at a time, in the iterating thread: ``num_parallel_calls`` and ``deterministic`` are accepted
        and change nothing in the results."""
        _check_callable(map_func, "map_func", "map")
        _check_parallel(num_parallel_calls, "map")
        return _Map(self, map_func)

    def filter(self, predicate, name=None):
        """The elements for which ``predicate`` (called as map calls its function) returns True."""
        _check_callable(predicate, "predicate", "filter")
        return _Filter(self, predicate)

    def flat_map(self, map_func, name=None):
        """The elements of the datasets ``map_func`` returns for each element, one after another."""
        _check_callable(map_func, "map_func", "flat_map")
        return _FlatMap(self, map_func)

    def shuffle(self, buffer_size, seed=None, reshuffle_each_iteration=True, name=None):
        """tf.data's buffered shuffle: a buffer of ``buffer_size`` elements, each output drawn uniformly from
        it and replaced by the next input element.  It is a full random permutation only when
        ``buffer_size`` is at least the number of elements; with a smaller buffer an element moves at most
        ``buffer_size - 1`` places earlier.  ``seed`` (or, without one, a seed drawn from dlgpu's generator,
        which dlgpu.set_random_seed seeds) makes the sequence of orders repeatable; with
        ``reshuffle_each_iteration=False`` every iteration has the same order."""
        buffer_size = _check_int(buffer_size, "buffer_size", "shuffle", 1)
        if seed is not None and not _is_int(seed):
            raise ValueError(f"Dataset.shuffle: `seed` must be an integer or None; received seed={seed!r}")
        return _Shuffle(self, buffer_size, seed, True if reshuffle_each_iteration is None
                        else bool(reshuffle_each_iteration))

    def repeat(self, count=None, name=None):
        """The elements ``count`` times over (forever for None or -1), each pass a new iteration."""
        count = _check_int(count, "count", "repeat", -1, allow_none=True)
        return _Repeat(self, -1 if count is None else count)

    def take(self, count, name=None):
        """The first ``count`` elements (all for -1)."""
        return _Take(self, _check_int(count, "count", "take", -1))

    def skip(self, count, name=None):
        """All but the first ``count`` elements (none for -1)."""
        return _Skip(self, _check_int(count, "count", "skip", -1))

    def shard(self, num_shards, index, name=None):
        """Every ``num_shards``-th element, starting at ``index``."""
        num_shards = _check_int(num_shards, "num_shards", "shard", 1)
        index = _check_int(index, "index", "shard", 0)
        if index >= num_shards:
            raise ValueError(f"Dataset.shard: `index` must be smaller than `num_shards`; received index={index}, "
                             f"num_shards={num_shards}")
        return _Shard(self, num_shards, index)

    def cache(self, filename="", name=None):
        """Keeps the elements of the first complete iteration in memory and replays them afterwards (so
        a shuffle before cache() keeps its first order; put shuffle after it to reshuffle).  An iteration
        stopped early caches nothing, as in tf.data.  Caching to a file (``filename``) is not supported."""
        if filename:
            raise NotImplementedError(f"Dataset.cache: caching to a file is not supported in dlgpu (the cache is "
                                      f"held in memory); received filename={filename!r}. Call cache() without it.")
        return _Cache(self)

    def prefetch(self, buffer_size, name=None):
        """Returns the dataset itself: elements are made on demand in the thread that iterates, so there
        is nothing to prefetch (the training loop moves each batch to the device as it comes)."""
        _check_int(buffer_size, "buffer_size", "prefetch", -1)
        return self

    def concatenate(self, dataset, name=None):
        """This dataset's elements, then ``dataset``'s (whose elements must have the same structure and dtypes)."""
        dataset = _as_dataset(dataset)
        if not isinstance(dataset, Dataset):
            raise TypeError(f"Dataset.concatenate: `dataset` must be a Dataset; received {type(dataset).__name__}")
        return _Concatenate(self, dataset)

    def enumerate(self, start=0, name=None):
        """``(index, element)`` pairs, the index an int64 counting from ``start``."""
        if not _is_int(start):
            raise ValueError(f"Dataset.enumerate: `start` must be an integer; received start={start!r}")
        return Dataset.zip((Dataset.range(int(start), np.iinfo(np.int64).max), self))

    def reduce(self, initial_state, reduce_func, name=None):
        """``reduce_func(state, element)`` folded over the elements from ``initial_state`` (the element is
        one argument, as in tf.data); returns the final state."""
        _check_callable(reduce_func, "reduce_func", "reduce")
        state = initial_state
        for element in self:
            state = reduce_func(state, element)
        return state

    def apply(self, transformation_func):
        """``transformation_func(self)``, which must return a Dataset."""
        result = transformation_func(self)
        if not isinstance(result, Dataset):
            raise TypeError(f"Dataset.apply: `transformation_func` must return a Dataset; it returned "
                            f"{type(result).__name__}")
        return result

    def __getattr__(self, name):
        if name in _NOT_OFFERED:
            raise AttributeError(f"'{type(self).__name__.lstrip('_')}' object has no attribute '{name}': "
                                 f"dlgpu.data.Dataset does not implement tf.data's `{name}`. Build the elements "
                                 f"with map/flat_map/from_generator instead.")
        raise AttributeError(f"'{type(self).__name__}' object has no attribute '{name}'")


_NOT_OFFERED = frozenset(("interleave", "window", "rebatch", "with_options", "options", "ignore_errors",
                          "snapshot", "save", "load", "unique", "bucket_by_sequence_length", "group_by_window",
                          "scan", "sample_from_datasets", "choose_from_datasets", "random", "list_files",
                          "get_single_element", "ragged_batch", "sparse_batch", "distribute"))


# -- transformations ---------------------------------------------------------------------------------------------

class _Unary(Dataset):
    """A transformation of one input dataset that keeps its elements' spec, batching and (by default) count."""

    def __init__(self, source):
        self._input = source
        self._batched = source._batched

    def _cardinality(self):
        return self._input._cardinality()

    def _spec(self):
        return self._input._spec()

    def _peek(self):
        return self._input._peek()


class _Map(_Unary):
    def __init__(self, source, fn):
        super().__init__(source)
        self._fn = fn

    def _elements(self):
        fn = self._fn
        return (_function_output(_call(fn, element), "map") for element in self._input)

    def _spec(self):
        return st.map_structure(TensorSpec.from_value, self._peek())

    def _peek(self):
        return _function_output(_call(self._fn, self._input._peek()), "map")


class _Filter(_Unary):
    def __init__(self, source, predicate):
        super().__init__(source)
        self._predicate = predicate

    def _elements(self):
        for element in self._input:
            keep = np.asarray(st.to_host_leaf(_call(self._predicate, element)))
            if keep.shape != () or keep.dtype != np.bool_:
                raise TypeError(f"Dataset.filter: `predicate` must return a scalar boolean; it returned "
                                f"{keep.dtype} of shape {keep.shape}")
            if keep:
                yield element

    def _cardinality(self):
        return UNKNOWN_CARDINALITY


class _FlatMap(_Unary):
    def __init__(self, source, fn):
        super().__init__(source)
        self._fn = fn
        self._batched = None

    def _inner(self, element):
        inner = _call(self._fn, element)
        if not isinstance(inner, Dataset):
            raise TypeError(f"Dataset.flat_map: `map_func` must return a Dataset; it returned {type(inner).__name__}")
        return inner

    def _elements(self):
        for element in self._input:
            yield from self._inner(element)

    def _cardinality(self):
        return UNKNOWN_CARDINALITY

    def _spec(self):
        return self._inner(self._input._peek())._spec()

    def _peek(self):
        return self._inner(self._input._peek())._peek()


class _Batch(_Unary):
    def __init__(self, source, batch_size, drop_remainder):
        super().__init__(source)
        self._batch_size, self._drop = batch_size, drop_remainder
        self._batched = True

    def _index_batches(self):
        """(source arrays, a fresh iterator of each batch's indices into them) when the input is an index
        plan, else None: what fit reads to slice batches from arrays it checked once."""
        plan = self._input._plan()
        if plan is None:
            return None
        return plan.arrays, _index_batches(plan.chunks(), self._batch_size, self._drop)

    def _elements(self):
        planned = self._index_batches()
        if planned is not None:  # the fast path: one gather per array per batch
            arrays, batches = planned
            for index in batches:
                yield _gather(arrays, index)
            return
        pending = []
        for element in self._input:
            pending.append(element)
            if len(pending) == self._batch_size:
                yield self._stack(pending)
                pending = []
        if pending and not self._drop:
            yield self._stack(pending)

    def _stack(self, elements):
        first = elements[0]
        flat = [st.flatten(e) for e in elements]
        paths = [p for p, _ in st.flatten_with_paths(first)]
        if any(len(f) != len(paths) for f in flat):
            bad = next(i for i, f in enumerate(flat) if len(f) != len(paths))
            raise ValueError(f"Dataset.batch: elements differ in structure: the first is {st.describe(first)}, "
                             f"element {bad} of the batch is {st.describe(elements[bad])}")
        stacked = []
        for k, path in enumerate(paths):
            parts = [st.to_host_leaf(f[k]) for f in flat]
            try:
                stacked.append(np.stack(parts))
            except ValueError:
                shapes = [np.shape(p) for p in parts]
                bad = next(i for i, s in enumerate(shapes) if s != shapes[0])
                raise ValueError(f"Dataset.batch: cannot batch elements with different shapes in component "
                                 f"{path or 0}: the first element of the batch has shape {shapes[0]}, element {bad} "
                                 f"has shape {shapes[bad]}. Use padded_batch to pad them to one shape, or map them "
                                 f"to one shape first.") from None
        return st.pack_as(first, stacked)

    def _cardinality(self):
        n = self._input._cardinality()
        if n < 0:
            return n
        return n // self._batch_size if self._drop else math.ceil(n / self._batch_size)

    def _spec(self):
        size = self._batch_size if self._drop else None
        return st.map_structure(lambda s: TensorSpec(None if s.shape is None else (size,) + s.shape, s.dtype),
                                self._input._spec())

    def _peek(self):
        """A batch shaped as the first one, made without advancing any shuffle: copies of the input's
        first element (the values do not matter to element_spec, the shapes do)."""
        n = self._input._cardinality()
        count = self._batch_size if n < 0 else max(1, min(n, self._batch_size))
        return self._stack([self._input._peek()] * count)


class _PaddedBatch(_Batch):
    def __init__(self, source, batch_size, padded_shapes, padding_values, drop_remainder):
        super().__init__(source, batch_size, drop_remainder)
        self._shapes, self._values = padded_shapes, padding_values

    def _index_batches(self):
        return None

    def _elements(self):
        pending = []
        for element in self._input:
            pending.append(element)
            if len(pending) == self._batch_size:
                yield self._stack(pending)
                pending = []
        if pending and not self._drop:
            yield self._stack(pending)

    def _per_component(self, arg, structure, name, is_leaf):
        """``arg`` (a padded_shapes/padding_values argument) as one entry per component of ``structure``."""
        if arg is None:
            return [None] * len(st.flatten(structure))
        if is_leaf(arg):
            if st.is_nested(structure) and name == "padded_shapes":
                raise ValueError(f"Dataset.padded_batch: `padded_shapes` must have the structure of the elements, "
                                 f"{st.describe(structure)}; received padded_shapes={arg!r}")
            return [arg] * len(st.flatten(structure))
        if not st.same_structure(arg, structure):
            raise ValueError(f"Dataset.padded_batch: `{name}` must have the structure of the elements, "
                             f"{st.describe(structure)}; received {name}={arg!r}")
        out = []
        st.map_structure(out.append, arg)
        return out

    def _stack(self, elements):
        first = elements[0]
        paths = [p for p, _ in st.flatten_with_paths(first)]
        shapes = self._per_component(self._shapes, first, "padded_shapes",
                                     lambda a: a is None or _is_int(a) or isinstance(a, list) or (
                                         isinstance(a, tuple) and all(d is None or _is_int(d) for d in a)))
        values = self._per_component(self._values, first, "padding_values", lambda a: not st.is_nested(a))
        flat = [st.flatten(e) for e in elements]
        stacked = []
        for k, path in enumerate(paths):
            parts = [np.asarray(st.to_host_leaf(f[k])) for f in flat]
            stacked.append(self._pad(parts, shapes[k], values[k], path or "0"))
        return st.pack_as(first, stacked)

    def _pad(self, parts, padded_shape, value, path):
        ranks = {p.ndim for p in parts}
        if len(ranks) > 1:
            raise ValueError(f"Dataset.padded_batch: component {path} has elements of different ranks: shapes "
                             f"{[p.shape for p in parts]}")
        rank = ranks.pop()
        longest = [max(p.shape[a] for p in parts) for a in range(rank)]
        if padded_shape is None:
            target = longest
        else:
            padded_shape = [padded_shape] if _is_int(padded_shape) else list(padded_shape)
            if len(padded_shape) != rank:
                raise ValueError(f"Dataset.padded_batch: `padded_shapes` for component {path} is {padded_shape}, of "
                                 f"rank {len(padded_shape)}, but its elements have rank {rank} (shape "
                                 f"{parts[0].shape})")
            target = [m if d is None or d == -1 else int(d) for d, m in zip(padded_shape, longest)]
            for axis, (d, m) in enumerate(zip(target, longest)):
                if m > d:
                    bad = next(p.shape for p in parts if p.shape[axis] > d)
                    raise ValueError(f"Dataset.padded_batch: component {path} has an element of shape {bad}, longer "
                                     f"than padded_shapes {tuple(padded_shape)} along axis {axis}; attempted to pad "
                                     f"to a smaller size than the input element.")
        dtype = np.result_type(*[p.dtype for p in parts]) if parts[0].dtype.kind not in "USO" else parts[0].dtype
        if value is None:
            value = "" if dtype.kind in "USO" else 0
        if dtype.kind == "U":
            dtype = np.dtype(object)  # so a longer padding string is not cut to the elements' width
        out = np.full([len(parts)] + target, st.to_host_leaf(value), dtype=dtype)
        for i, p in enumerate(parts):
            out[(i,) + tuple(slice(0, s) for s in p.shape)] = p
        return out

    def _spec(self):
        size = self._batch_size if self._drop else None
        specs = self._input._spec()
        shapes = self._per_component(self._shapes, specs, "padded_shapes", lambda a: a is None or _is_int(a)
                                     or isinstance(a, list) or (isinstance(a, tuple) and all(
                                         d is None or _is_int(d) for d in a)))
        leaves = st.flatten(specs)
        out = []
        for s, shape in zip(leaves, shapes):
            if shape is None:
                dims = None if s.shape is None else tuple(None for _ in s.shape)
            else:
                dims = tuple(None if d is None or d == -1 else int(d)
                             for d in ([shape] if _is_int(shape) else shape))
            out.append(TensorSpec(None if dims is None else (size,) + dims, s.dtype))
        return st.pack_as(specs, out)


class _Unbatch(_Unary):
    def __init__(self, source):
        super().__init__(source)
        self._batched = False

    def _elements(self):
        for element in self._input:
            leaves = [st.to_host_leaf(v) for v in st.flatten(element)]
            if any(np.ndim(v) == 0 for v in leaves):
                raise ValueError(f"Dataset.unbatch: unbatching needs every component to have a first axis "
                                 f"(rank >= 1); received an element {st.describe(element)}")
            sizes = {len(v) for v in leaves}
            if len(sizes) > 1:
                raise ValueError(f"Dataset.unbatch: the components of an element must have the same size in their "
                                 f"first dimension; received {st.describe(element)}")
            element = st.pack_as(element, leaves)
            for i in range(sizes.pop()):
                yield _gather(element, i)

    def _cardinality(self):
        n = self._input._cardinality()
        return INFINITE_CARDINALITY if n == INFINITE_CARDINALITY else UNKNOWN_CARDINALITY

    def _spec(self):
        return st.map_structure(lambda s: TensorSpec(None if s.shape is None else s.shape[1:], s.dtype),
                                self._input._spec())

    def _peek(self):
        return _gather(self._input._peek(), 0)


class _Shuffle(_Unary):
    def __init__(self, source, buffer_size, seed, reshuffle):
        super().__init__(source)
        if seed is None:
            from dlgpu.ops.nn import _generator
            seed = int(_generator(np).integers(2 ** 63))  # dlgpu.set_random_seed makes pipelines repeatable
        self._buffer_size, self._seed, self._reshuffle = buffer_size, seed, reshuffle
        self._rng = np.random.default_rng(seed)

    def _generator(self):
        return self._rng if self._reshuffle else np.random.default_rng(self._seed)

    def _plan(self):
        plan = self._input._plan()
        if plan is None:
            return None
        source_chunks, size = plan.chunks, self._buffer_size

        def chunks():
            rng = self._generator()
            n = self._input._cardinality()
            if 0 <= n <= size:  # the whole input fits in the buffer: a uniform permutation, drawn at once
                whole = [np.arange(c.start, c.stop, c.step) if isinstance(c, range) else c for c in source_chunks()]
                if whole:
                    order = np.concatenate(whole)
                    yield order[rng.permutation(len(order))]
                return
            lists = (c.tolist() if isinstance(c, np.ndarray) else list(c) for c in source_chunks())
            for out in _buffer_shuffle(lists, size, rng):
                yield np.asarray(out, dtype=np.int64)
        return _Plan(plan.arrays, chunks)

    def _elements(self):
        rng = self._generator()
        for out in _buffer_shuffle(_chunked(iter(self._input)), self._buffer_size, rng):
            yield from out


class _Repeat(_Unary):
    def __init__(self, source, count):
        super().__init__(source)
        self._count = count

    def _passes(self):
        return itertools.count() if self._count < 0 else range(self._count)

    def _plan(self):
        plan = self._input._plan()
        if plan is None:
            return None

        def chunks():
            for _ in self._passes():
                empty = True
                for chunk in plan.chunks():
                    empty = empty and len(chunk) == 0
                    yield chunk
                if empty:  # repeating nothing forever is nothing
                    return
        return _Plan(plan.arrays, chunks)

    def _elements(self):
        for _ in self._passes():
            empty = True
            for element in self._input:
                empty = False
                yield element
            if empty:
                return

    def _cardinality(self):
        n = self._input._cardinality()
        if self._count < 0:
            return 0 if n == 0 else INFINITE_CARDINALITY
        if self._count == 0:
            return 0
        return n if n < 0 else self._count * n


class _Take(_Unary):
    def __init__(self, source, count):
        super().__init__(source)
        self._count = count

    def _plan(self):
        plan = self._input._plan()
        if plan is None or self._count < 0:
            return plan

        def chunks():
            left = self._count
            if left == 0:
                return
            for chunk in plan.chunks():
                yield chunk[:left]
                left -= min(left, len(chunk))
                if left == 0:
                    return
        return _Plan(plan.arrays, chunks)

    def _elements(self):
        return iter(self._input) if self._count < 0 else itertools.islice(iter(self._input), self._count)

    def _cardinality(self):
        n = self._input._cardinality()
        if n == UNKNOWN_CARDINALITY or self._count < 0:
            return n
        return self._count if n == INFINITE_CARDINALITY else min(n, self._count)


class _Skip(_Unary):
    def __init__(self, source, count):
        super().__init__(source)
        self._count = count

    def _plan(self):
        plan = self._input._plan()
        if plan is None:
            return None

        def chunks():
            if self._count < 0:
                return
            left = self._count
            for chunk in plan.chunks():
                if left >= len(chunk):
                    left -= len(chunk)
                    continue
                yield chunk[left:]
                left = 0
        return _Plan(plan.arrays, chunks)

    def _elements(self):
        if self._count < 0:
            return iter(())
        return itertools.islice(iter(self._input), self._count, None)

    def _cardinality(self):
        n = self._input._cardinality()
        if n < 0:
            return n
        return 0 if self._count < 0 else max(0, n - self._count)


class _Shard(_Unary):
    def __init__(self, source, num_shards, index):
        super().__init__(source)
        self._num_shards, self._index = num_shards, index

    def _elements(self):
        return itertools.islice(iter(self._input), self._index, None, self._num_shards)

    def _cardinality(self):
        n = self._input._cardinality()
        if n < 0:
            return n
        return n // self._num_shards + (1 if self._index < n % self._num_shards else 0)


class _Cache(_Unary):
    """The first complete iteration's elements (or, over an index plan, its indices), replayed."""

    def __init__(self, source):
        super().__init__(source)
        self._cached = None

    def _plan(self):
        plan = self._input._plan()
        if plan is None:
            return None

        def chunks():
            if self._cached is not None:
                yield from self._cached
                return
            seen = []
            for chunk in plan.chunks():
                seen.append(chunk)
                yield chunk
            self._cached = seen  # only reached when the iteration ran to its end
        return _Plan(plan.arrays, chunks)

    def _elements(self):
        if self._cached is not None:
            yield from self._cached
            return
        seen = []
        for element in self._input:
            seen.append(element)
            yield element
        self._cached = seen


class _Concatenate(Dataset):
    def __init__(self, first, second):
        a, b = first._spec(), second._spec()
        if not st.same_structure(a, b) or st.is_nested(a) != st.is_nested(b) or any(
                x.dtype != y.dtype for x, y in zip(st.flatten(a), st.flatten(b))):
            raise TypeError(f"Dataset.concatenate: the two datasets' elements must have the same structure and "
                            f"dtypes; received {a} and {b}")
        self._first, self._second = first, second
        self._batched = first._batched if first._batched == second._batched else None

    def _elements(self):
        yield from self._first
        yield from self._second

    def _cardinality(self):
        n1, n2 = self._first._cardinality(), self._second._cardinality()
        if INFINITE_CARDINALITY in (n1, n2):
            return INFINITE_CARDINALITY
        if UNKNOWN_CARDINALITY in (n1, n2):
            return UNKNOWN_CARDINALITY
        return n1 + n2

    def _spec(self):
        a, b = self._first._spec(), self._second._spec()
        return st.pack_as(a, [x.most_specific_common(y) for x, y in zip(st.flatten(a), st.flatten(b))])

    def _peek(self):
        return self._first._peek()


def from_py_dataset(py_dataset):
    """A dlgpu.utils.PyDataset (e.g. what image_dataset_from_directory returns) as a Dataset of its batches."""
    return _PyDatasetSource(py_dataset)


# The classes the methods above build are Dataset subclasses, in modules that import this one, so they are
# imported last, once Dataset exists (dlgpu/data/__init__.py imports this module first).
from dlgpu.data.sources import (_as_dataset, _Generator, _PyDatasetSource, _Range, _Tensors,  # noqa: E402
                                _TensorSlices, _Zip)
