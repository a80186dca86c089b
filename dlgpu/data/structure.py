"""Element structures as tf.data sees them, and TensorSpec.

tf.data nests tuples (namedtuples too) and dicts; a Python list is not a structure but one tensor
(``from_tensor_slices([[1, 2], [3, 4]])`` has two elements, each ``[1, 2]``-like), so lists are converted
to arrays here, as tf.data converts them.  Leaves are numpy arrays or numpy scalars (what ``a[i]`` of an
array gives, and what TensorFlow's ``as_numpy_iterator`` hands out); a dlgpu Tensor appears only where a
user function returned one.
"""

from __future__ import annotations

import collections.abc

import numpy as np

from dlgpu.autograd import Tensor


_ARRAYS = (np.ndarray, np.generic)


def is_nested(value):
    if isinstance(value, _ARRAYS):  # the common case first: the Mapping check is an ABC check, slower
        return False
    return isinstance(value, (tuple, collections.abc.Mapping))


def _rebuild(like, children):
    if isinstance(like, collections.abc.Mapping):
        return type(like)(zip(like.keys(), children)) if type(like) is not dict else dict(zip(like.keys(), children))
    if hasattr(type(like), "_fields"):  # namedtuple
        return type(like)(*children)
    return tuple(children)


def children(value):
    return list(value.values()) if isinstance(value, collections.abc.Mapping) else list(value)


def map_structure(fn, structure):
    if type(structure) is tuple:  # the usual (x, y) element, without the general checks
        return tuple(map_structure(fn, c) for c in structure)
    if is_nested(structure):
        return _rebuild(structure, [map_structure(fn, c) for c in children(structure)])
    return fn(structure)


def map_with_path(fn, structure, path=""):
    """``fn(path, leaf)`` over the leaves; ``path`` reads like an index into the element: ``[0]['age']``."""
    if isinstance(structure, collections.abc.Mapping):
        return _rebuild(structure, [map_with_path(fn, v, f"{path}[{k!r}]") for k, v in structure.items()])
    if isinstance(structure, tuple):
        return _rebuild(structure, [map_with_path(fn, v, f"{path}[{i}]") for i, v in enumerate(structure)])
    return fn(path, structure)


def flatten(structure):
    if type(structure) is tuple and all(isinstance(c, _ARRAYS) for c in structure):
        return list(structure)
    if not is_nested(structure):
        return [structure]
    out = []
    for child in children(structure):
        out.extend(flatten(child))
    return out


def flatten_with_paths(structure):
    out = []
    map_with_path(lambda p, leaf: out.append((p, leaf)), structure)
    return out


def pack_as(structure, leaves):
    """``leaves`` (in flatten's order) arranged as ``structure``."""
    it = iter(leaves)
    return map_structure(lambda _: next(it), structure)


def same_structure(a, b):
    """Whether ``a`` and ``b`` nest alike (tuples of the same lengths, dicts with the same keys)."""
    if isinstance(a, collections.abc.Mapping) or isinstance(b, collections.abc.Mapping):
        return (isinstance(a, collections.abc.Mapping) and isinstance(b, collections.abc.Mapping)
                and set(a) == set(b) and all(same_structure(a[k], b[k]) for k in a))
    if isinstance(a, tuple) or isinstance(b, tuple):
        return (isinstance(a, tuple) and isinstance(b, tuple) and len(a) == len(b)
                and all(same_structure(x, y) for x, y in zip(a, b)))
    return True


def describe(structure):
    """The structure with every leaf replaced by its shape and dtype, for error messages."""
    def leaf(v):
        if isinstance(v, TensorSpec):
            return v
        v = np.asarray(v.numpy() if isinstance(v, Tensor) else v)
        return f"{v.dtype.name if dtype_name(v.dtype) != 'string' else 'string'}{list(v.shape)}"
    return map_structure(leaf, structure) if is_nested(structure) else leaf(structure)


# -- leaves ---------------------------------------------------------------------------------------------

def dtype_name(dtype):
    """A dtype as dlgpu names dtypes ("float32", "int64", "bool"); every kind of string is "string"."""
    dtype = np.dtype(dtype)
    return "string" if dtype.kind in "USO" else dtype.name


def normalize_dtype(dtype, what):
    if isinstance(dtype, str) and dtype == "string" or dtype in (str, bytes, object):
        return "string"
    try:
        return dtype_name(np.dtype(dtype))
    except TypeError:
        raise TypeError(f"{what}: `dtype` must be a numpy dtype or a dtype name ('float32', 'int64', 'string'...); "
                        f"received {dtype!r}") from None


def to_host_leaf(value):
    """A dlgpu Tensor or CuPy array as a numpy array (a dataset's elements live on the host)."""
    if isinstance(value, _ARRAYS):
        return value
    if isinstance(value, Tensor):
        return value.numpy()
    if type(value).__module__.startswith("cupy"):
        return value.get()
    return value


def as_array(value, what, path=""):
    """A leaf given to from_tensor_slices/from_tensors (or returned by a map) as tf.convert_to_tensor
    would make it: numpy arrays keep their dtype, Python floats become float32 and Python ints int32
    (TensorFlow's defaults; no hidden float64), strings a numpy str array; a ragged list is refused."""
    value = to_host_leaf(value)
    if isinstance(value, (np.ndarray, np.generic)):
        return value
    if hasattr(value, "__array__") or hasattr(value, "__array_interface__"):  # pandas Series, torch tensors
        return np.asarray(value)
    try:
        arr = np.asarray(value)
    except ValueError:
        arr = None
    if arr is None or (arr.dtype == object and not all(isinstance(v, (str, bytes)) for v in arr.reshape(-1))):
        kind = type(value).__name__
        raise ValueError(f"{what}: the component at {path or 'the top'} ({kind}) cannot become one array: a list "
                         f"is one tensor in tf.data, so its rows must have equal lengths (pad them, e.g. "
                         f"keras.utils.pad_sequences, or use Dataset.from_generator), and several components "
                         f"go in a tuple, not a list.")
    if arr.dtype == np.float64:
        arr = arr.astype(np.float32)
    elif arr.dtype == np.int64 and not _holds_big_ints(arr):
        arr = arr.astype(np.int32)
    return arr[()] if arr.ndim == 0 else arr  # a numpy scalar, as slicing an array gives one


def _holds_big_ints(arr):
    return arr.size > 0 and (arr.max() > np.iinfo(np.int32).max or arr.min() < np.iinfo(np.int32).min)


def as_structure(value, what):
    """``value`` with lists and scalars turned into numpy arrays, tuples and dicts kept as structure."""
    from dlgpu.data.dataset import Dataset
    if isinstance(value, Dataset):
        raise TypeError(f"{what}: received a Dataset where tensors (arrays) were expected; to combine datasets "
                        f"use Dataset.zip or concatenate.")
    return map_with_path(lambda p, v: as_array(v, what, p), value)


class TensorSpec:
    """The shape and dtype of one component of a dataset's elements (tf.TensorSpec): ``shape`` a tuple
    with None for a size that varies (or None for an unknown rank), ``dtype`` a dtype name ("float32",
    "int64", "string"...).  Given to Dataset.from_generator as its ``output_signature``."""

    def __init__(self, shape, dtype="float32", name=None):
        if shape is not None:
            try:
                shape = tuple(None if d is None or d == -1 else int(d) for d in
                              ((shape,) if isinstance(shape, (int, np.integer)) else shape))
            except (TypeError, ValueError):
                raise TypeError(f"TensorSpec: `shape` must be a tuple/list of ints and None (or None); received "
                                f"shape={shape!r}") from None
        self.shape, self.dtype, self.name = shape, normalize_dtype(dtype, "TensorSpec"), name

    @classmethod
    def from_value(cls, value, batch_dim=False):
        value = np.asarray(to_host_leaf(value))
        shape = value.shape[1:] if batch_dim else value.shape
        return cls(((None,) + shape) if batch_dim else shape, dtype_name(value.dtype))

    def is_compatible_with(self, value):
        """Whether an array (or a spec) has this spec's dtype and a shape this spec allows."""
        if isinstance(value, TensorSpec):
            shape, dtype = value.shape, value.dtype
        else:
            arr = np.asarray(to_host_leaf(value))
            shape, dtype = arr.shape, dtype_name(arr.dtype)
        return dtype == self.dtype and self.shape_allows(shape)

    def shape_allows(self, shape):
        if self.shape is None or shape is None:
            return True
        return len(shape) == len(self.shape) and all(a is None or b is None or a == b
                                                     for a, b in zip(self.shape, shape))

    def most_specific_common(self, other):
        """The spec that both this one's and ``other``'s values satisfy (for concatenate)."""
        if self.shape is None or other.shape is None or len(self.shape) != len(other.shape):
            shape = None
        else:
            shape = tuple(a if a == b else None for a, b in zip(self.shape, other.shape))
        return TensorSpec(shape, self.dtype)

    def __eq__(self, other):
        return isinstance(other, TensorSpec) and (self.shape, self.dtype, self.name) == (other.shape, other.dtype,
                                                                                         other.name)

    def __hash__(self):
        return hash((self.shape, self.dtype, self.name))

    def __repr__(self):
        return f"TensorSpec(shape={self.shape}, dtype={self.dtype}, name={self.name!r})"
