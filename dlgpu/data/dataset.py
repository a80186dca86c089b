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

Where things are.  This module holds Dataset: its public methods (each documented here, with how it
differs from tf.data), its argument checks, and what a subclass implements (``_elements``, ``_plan``,
``_cardinality``, ``_spec``, ``_peek``).  The subclasses each method builds live in
dlgpu/data/sources.py (from_tensor_slices, from_tensors, range, from_generator, zip, from_py_dataset),
dlgpu/data/transformations.py (map, filter, flat_map, shuffle, repeat, take, skip, shard, cache,
concatenate) and dlgpu/data/batching.py (batch, padded_batch, unbatch); the fast path's index machinery
in dlgpu/data/index_plan.py, and element structures and TensorSpec in dlgpu/data/structure.py.
"""

from __future__ import annotations

import numpy as np

from dlgpu.data import structure as st
from dlgpu.data.index_plan import _gather
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


def from_py_dataset(py_dataset):
    """A dlgpu.utils.PyDataset (e.g. what image_dataset_from_directory returns) as a Dataset of its batches."""
    return _PyDatasetSource(py_dataset)


# The classes the methods above build are Dataset subclasses, in modules that import this one, so they are
# imported last, once Dataset exists (dlgpu/data/__init__.py imports this module first).
from dlgpu.data.sources import (_as_dataset, _Generator, _PyDatasetSource, _Range, _Tensors,  # noqa: E402
                                _TensorSlices, _Zip)
from dlgpu.data.transformations import (_Cache, _Concatenate, _Filter, _FlatMap, _Map, _Repeat,  # noqa: E402
                                        _Shard, _Shuffle, _Skip, _Take)
from dlgpu.data.batching import _Batch, _PaddedBatch, _Unbatch  # noqa: E402
