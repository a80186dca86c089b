"""What Dataset's methods do to a dataset's elements: map, filter, flat_map, shuffle, repeat, take,
skip, shard, cache and concatenate (batch, padded_batch and unbatch are in dlgpu/data/batching.py).

Each is a Dataset holding its input.  Those that keep an index plan (shuffle, repeat, take, skip, cache;
dlgpu/data/index_plan.py) implement ``_plan`` on the input's plan as well as ``_elements``; a map or filter
ends the plan.
"""

from __future__ import annotations

import itertools

import numpy as np

from dlgpu.data import structure as st
from dlgpu.data.dataset import INFINITE_CARDINALITY, UNKNOWN_CARDINALITY, Dataset
from dlgpu.data.index_plan import _as_indices, _buffer_shuffle, _chunked, _Plan
from dlgpu.data.structure import TensorSpec


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

    def _input_plan(self, rewrite):
        """The input's index plan with its chunk stream rewritten, ``rewrite(input_chunks)`` (a fresh
        iterator of chunks from a function that gives the input's); None where the input has no plan."""
        plan = self._input._plan()
        return None if plan is None else _Plan(plan.arrays, lambda: rewrite(plan.chunks))


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
        return self._input_plan(self._shuffled_chunks)

    def _shuffled_chunks(self, source_chunks):
        rng, size = self._generator(), self._buffer_size
        n = self._input._cardinality()
        if 0 <= n <= size:  # the whole input fits in the buffer: a uniform permutation, drawn at once
            whole = [_as_indices(c) for c in source_chunks()]
            if whole:
                order = np.concatenate(whole)
                yield order[rng.permutation(len(order))]
            return
        lists = (c.tolist() if isinstance(c, np.ndarray) else list(c) for c in source_chunks())
        for out in _buffer_shuffle(lists, size, rng):
            yield np.asarray(out, dtype=np.int64)

    def _elements(self):
        rng = self._generator()
        for out in _buffer_shuffle(_chunked(iter(self._input)), self._buffer_size, rng):
            yield from out


class _Repeat(_Unary):
    def __init__(self, source, count):
        super().__init__(source)
        self._count = count

    def _plan(self):
        return self._input_plan(lambda chunks: self._repeated(chunks, len))

    def _elements(self):
        return self._repeated(lambda: iter(self._input), lambda element: 1)

    def _repeated(self, fresh, size):
        """The items of ``fresh()``, one call per pass (elements, or an index plan's chunks, which
        ``size`` counts)."""
        for _ in (itertools.count() if self._count < 0 else range(self._count)):
            total = 0
            for item in fresh():
                total += size(item)
                yield item
            if total == 0:  # repeating nothing forever is nothing
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
        if self._count < 0:
            return self._input._plan()
        return self._input_plan(self._taken_chunks)

    def _taken_chunks(self, source_chunks):
        left = self._count
        if left == 0:
            return
        for chunk in source_chunks():
            yield chunk[:left]
            left -= min(left, len(chunk))
            if left == 0:
                return

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
        return self._input_plan(self._kept_chunks)

    def _kept_chunks(self, source_chunks):
        if self._count < 0:
            return
        left = self._count
        for chunk in source_chunks():
            if left >= len(chunk):
                left -= len(chunk)
                continue
            yield chunk[left:]
            left = 0

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
        return self._input_plan(self._replayed)

    def _elements(self):
        return self._replayed(lambda: iter(self._input))

    def _replayed(self, fresh):
        """The cached items, or those of ``fresh()`` (elements, or an index plan's chunks), recorded."""
        if self._cached is not None:
            yield from self._cached
            return
        seen = []
        for item in fresh():
            seen.append(item)
            yield item
        self._cached = seen  # only reached when the iteration ran to its end


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
