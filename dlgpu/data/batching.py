"""batch, padded_batch and unbatch.

Over an index plan (dlgpu/data/index_plan.py) ``batch`` gathers each batch from the source arrays at once;
otherwise it stacks the elements, which must then have one shape per component (padded_batch pads them).
"""

from __future__ import annotations

import math

import numpy as np

from dlgpu.data import structure as st
from dlgpu.data.dataset import INFINITE_CARDINALITY, UNKNOWN_CARDINALITY, _is_int
from dlgpu.data.index_plan import _gather, _index_batches
from dlgpu.data.structure import TensorSpec
from dlgpu.data.transformations import _Unary


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


def _is_shape(arg):
    """Whether a padded_shapes entry is one component's shape (rather than a structure of them)."""
    return arg is None or _is_int(arg) or isinstance(arg, list) or (
        isinstance(arg, tuple) and all(d is None or _is_int(d) for d in arg))


class _PaddedBatch(_Batch):
    def __init__(self, source, batch_size, padded_shapes, padding_values, drop_remainder):
        super().__init__(source, batch_size, drop_remainder)
        self._shapes, self._values = padded_shapes, padding_values

    def _index_batches(self):
        return None  # so _Batch._elements stacks the elements, through this class's _stack, which pads

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
        return st.flatten(arg)

    def _stack(self, elements):
        first = elements[0]
        paths = [p for p, _ in st.flatten_with_paths(first)]
        shapes = self._per_component(self._shapes, first, "padded_shapes", _is_shape)
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
        shapes = self._per_component(self._shapes, specs, "padded_shapes", _is_shape)
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
