"""Where datasets start: the classes behind Dataset.from_tensor_slices, from_tensors, range,
from_generator and zip, and the Dataset of a dlgpu.utils.PyDataset's batches (from_py_dataset).

``from_tensor_slices`` is the one source with an index plan (dlgpu/data/index_plan.py); the others make
their elements one at a time.
"""

from __future__ import annotations

import itertools

import numpy as np

from dlgpu.data import structure as st
from dlgpu.data.dataset import INFINITE_CARDINALITY, UNKNOWN_CARDINALITY, Dataset, _check_callable, _is_int
from dlgpu.data.index_plan import _gather, _Plan
from dlgpu.data.structure import TensorSpec


class _TensorSlices(Dataset):
    _batched = False

    def __init__(self, tensors):
        arrays = st.as_structure(tensors, "Dataset.from_tensor_slices")
        leaves = st.flatten_with_paths(arrays)
        if not leaves:
            raise ValueError("Dataset.from_tensor_slices: `tensors` holds no arrays")
        scalars = [p or "tensors" for p, a in leaves if np.ndim(a) == 0]
        if scalars:
            raise ValueError(f"Dataset.from_tensor_slices: every component needs a first axis to slice along; "
                             f"{', '.join(scalars)} is a scalar (use from_tensors for one element)")
        sizes = {len(a) for _, a in leaves}
        if len(sizes) > 1:
            shapes = ", ".join(f"{p or 'tensors'}: {tuple(a.shape)}" for p, a in leaves)
            raise ValueError(f"Dataset.from_tensor_slices: all components must have the same size in their first "
                             f"dimension; received shapes {shapes}")
        self._arrays, self._n = arrays, sizes.pop()

    def _plan(self):
        n = self._n
        return _Plan(self._arrays, lambda: iter([range(n)]))

    def _cardinality(self):
        return self._n

    def _spec(self):
        return st.map_structure(lambda a: TensorSpec(a.shape[1:], st.dtype_name(a.dtype)), self._arrays)

    def _peek(self):
        if self._n == 0:
            return super()._peek()
        return _gather(self._arrays, 0)


class _Tensors(Dataset):
    def __init__(self, tensors):
        self._element = st.as_structure(tensors, "Dataset.from_tensors")

    def _elements(self):
        yield self._element

    def _cardinality(self):
        return 1


class _Range(Dataset):
    _batched = False

    def __init__(self, args, output_type):
        if not 1 <= len(args) <= 3 or not all(_is_int(a) for a in args):
            raise ValueError(f"Dataset.range: expected range(stop), range(start, stop) or range(start, stop, step) "
                             f"with integers; received {args!r}")
        self._range = range(*[int(a) for a in args]) if args[-1] != 0 or len(args) < 3 else None
        if self._range is None:
            raise ValueError("Dataset.range: `step` must not be 0")
        self._dtype = np.dtype(st.normalize_dtype(output_type, "Dataset.range"))

    def _elements(self):
        cast = self._dtype.type
        return (cast(i) for i in self._range)

    def _cardinality(self):
        r = self._range  # len() overflows past sys.maxsize (enumerate counts up to the int64 limit)
        return max(0, (r.stop - r.start + r.step - (1 if r.step > 0 else -1)) // r.step)

    def _spec(self):
        return TensorSpec((), self._dtype.name)


class _Generator(Dataset):
    def __init__(self, generator, output_types, output_shapes, args, output_signature):
        _check_callable(generator, "generator", "from_generator")
        if output_signature is not None:
            if output_types is not None or output_shapes is not None:
                raise TypeError("Dataset.from_generator: `output_types` and `output_shapes` cannot be used together "
                                "with `output_signature`")
            signature = output_signature
            leaves = st.flatten(signature)
            if not all(isinstance(s, TensorSpec) for s in leaves):
                raise TypeError(f"Dataset.from_generator: `output_signature` must be a TensorSpec or a tuple/dict of "
                                f"them (dlgpu.data.TensorSpec); received {output_signature!r}")
        else:
            if output_types is None:
                raise TypeError("Dataset.from_generator: describe the elements with `output_signature` (a structure "
                                "of dlgpu.data.TensorSpec) or with `output_types` (and `output_shapes`)")
            if output_shapes is None:
                signature = st.map_structure(lambda t: TensorSpec(None, t), output_types)
            else:
                types = st.flatten(output_types)
                shapes = _flatten_shapes(output_shapes, output_types)
                signature = st.pack_as(output_types, [TensorSpec(s, t) for t, s in zip(types, shapes)])
        self._generator, self._signature = generator, signature
        self._args = () if args is None else tuple(st.as_structure(tuple(args), "Dataset.from_generator"))

    def _elements(self):
        for value in self._generator(*self._args):
            yield self._check(value)

    def _check(self, value):
        signature = self._signature
        if isinstance(value, list) and isinstance(signature, tuple) and len(value) == len(signature):
            value = tuple(value)
        if not st.same_structure(value, signature) or (st.is_nested(signature) != st.is_nested(value)):
            raise TypeError(f"Dataset.from_generator: `generator` yielded an element that did not match the expected "
                            f"structure. The expected structure was {signature}, but the yielded element was "
                            f"{st.describe(value)}.")
        return st.map_with_path(lambda p, v: _conform(v, _at(signature, p), p), value)

    def _spec(self):
        return self._signature


def _flatten_shapes(output_shapes, output_types):
    if not st.is_nested(output_types):
        return [output_shapes]
    if not st.same_structure(output_shapes, output_types):
        raise ValueError(f"Dataset.from_generator: `output_shapes` must have the structure of `output_types`; "
                         f"received output_shapes={output_shapes!r}, output_types={output_types!r}")
    return st.flatten(output_shapes)


def _at(structure, path):
    """The leaf of ``structure`` at a map_with_path path."""
    found = []
    st.map_with_path(lambda p, v: found.append(v) if p == path else None, structure)
    return found[0]


def _conform(value, spec, path):
    where = f" (component {path})" if path else ""
    value = st.to_host_leaf(value)
    try:
        arr = np.asarray(value) if spec.dtype == "string" else np.asarray(value, dtype=spec.dtype)
    except (TypeError, ValueError):
        raise TypeError(f"Dataset.from_generator: `generator` yielded {type(value).__name__} {value!r:.60}{where} "
                        f"that cannot be converted to {spec.dtype}, the dtype its output_signature expects.") from None
    if spec.dtype == "string" and arr.dtype.kind not in "USO":
        raise TypeError(f"Dataset.from_generator: `generator` yielded an element of type {arr.dtype}{where} where an "
                        f"element of type string was expected.")
    if not spec.shape_allows(arr.shape):
        raise ValueError(f"Dataset.from_generator: `generator` yielded an element of shape {arr.shape}{where} where an "
                         f"element of shape {spec.shape} was expected.")
    return arr[()] if arr.ndim == 0 else arr


class _PyDatasetSource(Dataset):
    """A dlgpu.utils.PyDataset's batches (what the *_dataset_from_directory helpers return), in index
    order, with on_epoch_end() after each complete pass (which reshuffles a shuffled BatchDataset)."""

    def __init__(self, py_dataset):
        self._source = py_dataset
        self._batched = getattr(py_dataset, "_batch_size", True) is not None

    def _elements(self):
        total = self._source.num_batches
        for index in (itertools.count() if total is None else range(total)):
            yield self._batch(index)
        self._source.on_epoch_end()

    def _batch(self, index):
        batch = self._source[index]
        return tuple(batch) if isinstance(batch, list) else batch

    def _peek(self):
        return self._batch(0)

    def _spec(self):
        return st.map_structure(lambda v: TensorSpec.from_value(v, batch_dim=self._batched), self._peek())

    def _cardinality(self):
        total = self._source.num_batches
        return INFINITE_CARDINALITY if total is None else total


def _as_dataset(value):
    """A dlgpu.utils.PyDataset (a BatchDataset from the *_dataset_from_directory helpers) as the Dataset of
    its batches; anything else as it is."""
    from dlgpu.utils.py_dataset import PyDataset
    return _PyDatasetSource(value) if isinstance(value, PyDataset) else value


class _Zip(Dataset):
    def __init__(self, datasets):
        datasets = st.map_structure(_as_dataset, datasets)
        for path, leaf in st.flatten_with_paths(datasets):
            if not isinstance(leaf, Dataset):
                raise TypeError(f"Dataset.zip: every entry of `datasets` must be a Dataset; the one at "
                                f"{path or 'the top'} is a {type(leaf).__name__}")
        self._datasets = datasets

    def _elements(self):
        iterators = [iter(d) for d in st.flatten(self._datasets)]
        while True:
            try:
                leaves = [next(it) for it in iterators]
            except StopIteration:
                return
            yield st.pack_as(self._datasets, leaves)

    def _cardinality(self):
        result = INFINITE_CARDINALITY
        for n in (d._cardinality() for d in st.flatten(self._datasets)):
            if n == UNKNOWN_CARDINALITY:
                return UNKNOWN_CARDINALITY
            if n != INFINITE_CARDINALITY and (result == INFINITE_CARDINALITY or n < result):
                result = n
        return result

    def _spec(self):
        return st.map_structure(lambda d: d._spec(), self._datasets)

    def _peek(self):
        return st.map_structure(lambda d: d._peek(), self._datasets)
