"""keras.utils.split_dataset and what the *_dataset_from_directory helpers share: indexing a directory of
class subfolders, the validation split, label encodings, and the batched PyDataset they return.

Keras returns tf.data.Dataset objects; these helpers return ``BatchDataset``s, dlgpu.utils.PyDataset
subclasses that fit/evaluate/predict read by index.  ``prefetch(n)`` and ``cache()`` return the dataset
itself (tutorials call ``ds.prefetch(tf_data.AUTOTUNE)``; batches are read in the training thread, so there
is nothing to prefetch), ``map`` maps it batch by batch, still read by index, and the other tf.data methods
that dlgpu.data.Dataset implements (``take``, ``unbatch``, ``shuffle``, ``repeat``, ``filter``…) turn it into
a dlgpu.data.Dataset of its batches first (``dlgpu.data.from_py_dataset``), so they mean what they mean on
the tf.data.Dataset Keras returns; what dlgpu.data lacks raises an AttributeError that says so.
"""

from __future__ import annotations

import math
import os

import numpy as np

from dlgpu.utils.py_dataset import PyDataset

# tf.data.Dataset methods that a BatchDataset offers by becoming a dlgpu.data.Dataset of its batches.
_AS_DATASET = frozenset(("batch", "unbatch", "shuffle", "repeat", "filter", "flat_map", "concatenate", "skip",
                         "as_numpy_iterator", "cardinality", "apply", "padded_batch", "enumerate", "reduce",
                         "shard", "element_spec"))
# and those tutorials call that dlgpu.data does not implement: an AttributeError saying so, instead of
# Python's bare "object has no attribute".
_TF_DATA_METHODS = ("interleave", "zip", "with_options", "rebatch", "window", "ignore_errors", "snapshot",
                    "save", "unique", "bucket_by_sequence_length", "group_by_window")


class BatchDataset(PyDataset):
    """Batches of numpy arrays served by index (a dlgpu.utils.PyDataset): what dlgpu's
    timeseries_dataset_from_array, image_dataset_from_directory, text_dataset_from_directory and
    split_dataset return where Keras returns a tf.data.Dataset.

    A subclass passes the number of samples and ``batch_size`` (None: one sample at a time, as Keras's
    ``batch_size=None``) to ``__init__`` and implements ``_samples(indices, single)``, the batch of the
    samples at ``indices`` (sample numbers, already put in the current order), or the one sample when
    ``single``.  With ``shuffle`` the order is a fresh permutation every epoch
    (drawn in ``on_epoch_end`` from a generator seeded with ``seed``, so a seed repeats the whole
    sequence of epochs)."""

    def __init__(self, num_samples, batch_size, shuffle=False, seed=None):
        super().__init__()
        self._num_samples, self._batch_size, self._shuffle = int(num_samples), batch_size, bool(shuffle)
        self._rng = np.random.default_rng(seed) if shuffle else None
        self._order = self._rng.permutation(self._num_samples) if shuffle else np.arange(self._num_samples)

    def __len__(self):
        if self._batch_size is None:
            return self._num_samples
        return math.ceil(self._num_samples / self._batch_size)

    def __getitem__(self, index):
        n = len(self)
        if not isinstance(index, (int, np.integer)) or isinstance(index, bool):
            raise TypeError(f"{type(self).__name__}: batches are read by integer index; received "
                            f"{type(index).__name__}")
        if index < 0:
            index += n
        if not 0 <= index < n:
            raise IndexError(f"{type(self).__name__}: batch index {index} out of range for {n} batches")
        if self._batch_size is None:
            return self._samples(self._order[index:index + 1], single=True)
        return self._samples(self._order[index * self._batch_size:(index + 1) * self._batch_size], single=False)

    def __iter__(self):
        """One pass over the batches, as iterating a tf.data.Dataset gives; the order is reshuffled after it."""
        for index in range(len(self)):
            yield self[index]
        self.on_epoch_end()

    def on_epoch_end(self):
        if self._shuffle:
            self._order = self._rng.permutation(self._num_samples)

    def _samples(self, indices, single):
        raise NotImplementedError

    # tf.data.Dataset look-alikes that make sense for batches served by index.
    def prefetch(self, buffer_size=None):
        """No-op: dlgpu reads batches in the training thread. Returns the dataset itself."""
        return self

    def cache(self, filename=""):
        """No-op (the dataset is not cached). Returns the dataset itself."""
        return self

    def take(self, count):
        """A dlgpu.data.Dataset of the first ``count`` batches (all of them for -1), for
        ``for x, y in ds.take(1):`` loops."""
        if not isinstance(count, (int, np.integer)) or isinstance(count, bool) or count < -1:
            raise ValueError(f"{type(self).__name__}.take: `count` must be an integer >= -1; received count={count!r}")
        return self._as_dataset().take(count)

    def _as_dataset(self):
        from dlgpu.data import from_py_dataset
        return from_py_dataset(self)

    def map(self, map_func, num_parallel_calls=None, deterministic=None, name=None):
        """A dataset whose every element is ``map_func`` of this one's (a tuple element is spread over the
        arguments, as tf.data does: ``ds.map(lambda x, y: (augment(x), y))``).  The elements here are
        batches, or single samples for ``batch_size=None``.  Mapped lazily, in the training thread, one
        element at a time: ``num_parallel_calls`` and ``deterministic`` are tf.data's parallelism hints and
        change nothing in the results."""
        if not callable(map_func):
            raise TypeError(f"{type(self).__name__}.map: `map_func` must be callable; received {map_func!r}")
        return MappedDataset(self, map_func)

    def __getattr__(self, name):
        if name in _AS_DATASET:
            return getattr(self._as_dataset(), name)
        if name in _TF_DATA_METHODS:
            hint = (" Zip datasets with dlgpu.data.Dataset.zip((a, b)), which takes BatchDatasets too."
                    if name == "zip" else "")
            raise AttributeError(
                f"'{type(self).__name__}' has no attribute '{name}': dlgpu returns a dlgpu.utils.PyDataset (batches "
                f"of numpy arrays read by index, ds[i]), and dlgpu.data.Dataset, which it becomes for the other "
                f"tf.data methods, does not implement `{name}`.{hint} Transform the arrays of each batch in a loop "
                f"or in your own PyDataset subclass, or build the transformation into the model as a layer.")
        raise AttributeError(f"'{type(self).__name__}' object has no attribute '{name}'")


class MappedDataset(BatchDataset):
    """``source.map(map_func)``: ``source``'s elements through ``map_func``, read by index like the source
    (fit, evaluate and predict take it as any PyDataset); shuffling stays the source's."""

    def __init__(self, source, map_func):
        PyDataset.__init__(self)
        self._source, self._map_func = source, map_func

    def __len__(self):
        return len(self._source)

    def __getitem__(self, index):
        element = self._source[index]
        return self._map_func(*element) if isinstance(element, tuple) else self._map_func(element)

    def on_epoch_end(self):
        self._source.on_epoch_end()


def encode_labels(labels, label_mode, num_classes):
    """Integer class labels in Keras's encoding: int32 (n,) for 'int', float32 (n, 1) for 'binary',
    float32 one-hot (n, num_classes) for 'categorical'."""
    labels = np.asarray(labels, dtype=np.int32)
    if label_mode == "categorical" and labels.size and labels.max() >= num_classes:
        raise ValueError(f"label_mode='categorical': the labels must lie in [0, {num_classes}) (one per class); "
                         f"received a label {labels.max()}")
    if label_mode == "binary":
        return labels.astype(np.float32)[:, None]
    if label_mode == "categorical":
        return np.eye(num_classes, dtype=np.float32)[labels]
    return labels


def check_label_args(labels, label_mode, class_names, what):
    if labels not in ("inferred", None) and not isinstance(labels, str):
        if not isinstance(labels, (list, tuple)):
            raise ValueError(f"{what}: `labels` must be 'inferred', None, or a list/tuple of integer labels, one per "
                             f"file in the directory; received labels={labels!r}")
        if class_names:
            raise ValueError(f"{what}: `class_names` can only be passed with labels='inferred'; received "
                             f"labels={labels!r}, class_names={class_names!r}")
    elif isinstance(labels, str) and labels != "inferred":
        raise ValueError(f"{what}: `labels` must be 'inferred', None, or a list/tuple of integer labels; received "
                         f"labels={labels!r}")
    if label_mode not in ("int", "categorical", "binary", None):
        raise ValueError(f"{what}: `label_mode` must be one of 'int', 'categorical', 'binary' or None; received "
                         f"label_mode={label_mode!r}")
    if labels is None or label_mode is None:
        return None, None
    return labels, label_mode


def check_validation_split_arg(validation_split, subset, shuffle, seed, what):
    if validation_split is not None and not (isinstance(validation_split, (int, float)) and
                                             0 < validation_split < 1) and validation_split != 0:
        raise ValueError(f"{what}: `validation_split` must be between 0 and 1; received "
                         f"validation_split={validation_split!r}")
    if (validation_split or subset) and not (validation_split and subset):
        raise ValueError(f"{what}: `subset` and `validation_split` go together: pass both or neither; received "
                         f"validation_split={validation_split!r}, subset={subset!r}")
    if subset not in ("training", "validation", "both", None):
        raise ValueError(f"{what}: `subset` must be 'training', 'validation' or 'both'; received subset={subset!r}")
    if validation_split and shuffle and seed is None:
        raise ValueError(f"{what}: with `validation_split` and shuffle=True, pass a `seed`, so that the training "
                         f"and validation subsets do not overlap.")


def check_batch_size(batch_size, what):
    if batch_size is not None and (not isinstance(batch_size, (int, np.integer)) or isinstance(batch_size, bool)
                                   or batch_size < 1):
        raise ValueError(f"{what}: `batch_size` must be a positive integer or None; received batch_size={batch_size!r}")


def index_directory(directory, labels, formats, class_names, shuffle, seed, follow_links, verbose, what):
    """(file_paths, labels, class_names) as Keras's index_directory lists them: class subfolders in
    alphanumeric order (or class_names's), the files under each walked recursively in sorted order, then
    one shuffle of the whole list when ``shuffle`` (seeded), which the validation split cuts."""
    if not isinstance(directory, (str, os.PathLike)) or not os.path.isdir(directory):
        raise ValueError(f"{what}: `directory` must be an existing directory; received directory={directory!r}")
    directory = os.fspath(directory)
    if labels == "inferred":
        subdirs = [d for d in sorted(os.listdir(directory))
                   if os.path.isdir(os.path.join(directory, d)) and not d.startswith(".")]
        if class_names is not None:
            if not set(class_names).issubset(subdirs):
                raise ValueError(f"{what}: `class_names` must name subdirectories of {directory!r}: expected "
                                 f"{subdirs} (or a subset of it); received class_names={list(class_names)}")
            subdirs = list(class_names)
    else:
        if class_names is not None:
            raise ValueError(f"{what}: `class_names` can only be passed with labels='inferred'; received "
                             f"labels={labels!r}, class_names={class_names!r}")
        subdirs = [""]
    file_paths, inferred = [], []
    for label, subdir in enumerate(subdirs):
        root_dir = os.path.join(directory, subdir)
        for root, _, files in sorted(os.walk(root_dir, followlinks=follow_links), key=lambda entry: entry[0]):
            for name in sorted(files):
                if name.lower().endswith(formats):
                    file_paths.append(os.path.join(root, name))
                    inferred.append(label)
    if labels == "inferred":
        labels, class_names = np.asarray(inferred, dtype=np.int32), subdirs
    elif labels is None:
        class_names = None
    else:
        if len(labels) != len(file_paths):
            raise ValueError(f"{what}: `labels` must have one label per file: len(labels) is {len(labels)} but "
                             f"{len(file_paths)} files were found in {directory!r}")
        labels = np.asarray(labels)
        if labels.dtype.kind not in "iu" or (labels.size and labels.min() < 0):
            raise ValueError(f"{what}: `labels` must be non-negative integers; received dtype {labels.dtype}")
        labels = labels.astype(np.int32)
        class_names = [str(label) for label in sorted(set(labels.tolist()))]
    if verbose:
        if labels is None:
            print(f"Found {len(file_paths)} files.")
        else:
            print(f"Found {len(file_paths)} files belonging to {len(class_names)} classes.")
    if shuffle:
        order = np.random.default_rng(seed).permutation(len(file_paths))
        file_paths = [file_paths[i] for i in order]
        if labels is not None:
            labels = labels[order]
    return file_paths, labels, class_names


def training_or_validation_split(samples, labels, validation_split, subset, verbose=True):
    """The last int(validation_split * n) samples are the validation subset, the rest the training one."""
    if not validation_split:
        return samples, labels
    num_val = int(validation_split * len(samples))
    cut = len(samples) - num_val
    if subset == "training":
        if verbose:
            print(f"Using {cut} files for training.")
        part = slice(0, cut)
    else:
        if verbose:
            print(f"Using {num_val} files for validation.")
        part = slice(cut, len(samples))
    return samples[part], (None if labels is None else labels[part])


# split_dataset ----------------------------------------------------------------------------------------


class ArrayDataset(BatchDataset):
    """Samples held in arrays sharing their first axis, served in batches: one half of a split_dataset, or
    what tf.data.Dataset.from_tensor_slices(...).batch(n) gives for an array, a tuple/list of arrays, or
    nested dicts and tuples of them (``({"age": ages, "city": cities}, labels)``, a dataframe's columns)."""

    def __init__(self, arrays, batch_size=None):
        from dlgpu import tree
        arrays = tree.map_structure(np.asarray, tuple(arrays) if isinstance(arrays, list) else arrays)
        lengths = {len(a) if a.ndim else None for a in tree.flatten(arrays)}
        if len(lengths) != 1 or None in lengths:
            raise ValueError(f"ArrayDataset: every array must hold the samples along its first axis, the same "
                             f"number in each; received shapes {[a.shape for a in tree.flatten(arrays)]}")
        self._arrays = arrays
        super().__init__(lengths.pop(), batch_size)

    def _samples(self, indices, single):
        from dlgpu import tree
        pick = (lambda a: a[indices[0]]) if single else (lambda a: a[indices])
        return tree.map_structure(pick, self._arrays)


def _split_sizes(left_size, right_size, total):
    for name, size in (("left_size", left_size), ("right_size", right_size)):
        if size is None:
            continue
        if isinstance(size, bool) or not isinstance(size, (int, float, np.integer, np.floating)):
            raise TypeError(f"split_dataset: `{name}` must be an int, a float or None; received "
                            f"{name}={size!r} of type {type(size).__name__}")
        if isinstance(size, (float, np.floating)) and not 0 < size < 1:
            raise ValueError(f"split_dataset: `{name}` as a fraction must lie strictly between 0 and 1; received "
                             f"{name}={size}")
        if isinstance(size, (int, np.integer)) and not 0 < size < total:
            raise ValueError(f"split_dataset: `{name}` as a count must be a positive integer smaller than the "
                             f"{total} samples; received {name}={size}")
    if isinstance(left_size, float) and isinstance(right_size, float) and left_size + right_size > 1:
        raise ValueError(f"split_dataset: left_size + right_size must not exceed 1; received left_size={left_size}, "
                         f"right_size={right_size}")
    left = None if left_size is None else (round(left_size * total) if isinstance(left_size, (float, np.floating))
                                           else int(left_size))
    right = None if right_size is None else (round(right_size * total) if isinstance(right_size, (float, np.floating))
                                             else int(right_size))
    left = total - right if left is None else left
    right = total - left if right is None else right
    if left + right > total:
        raise ValueError(f"split_dataset: left and right sizes ({left} + {right}) exceed the {total} samples")
    if left == 0 or right == 0:
        side = "left" if left == 0 else "right"
        raise ValueError(f"split_dataset: with {total} samples, left_size={left_size} and right_size={right_size} "
                         f"leave the {side} split empty")
    return left, right


def _dataset_samples(dataset):
    """The samples of ``dataset`` as an array or a tuple of arrays, and the batch size it was read in."""
    if isinstance(dataset, np.ndarray):
        if dataset.ndim == 0:
            raise ValueError("split_dataset: `dataset` must hold samples along its first axis; received a 0-d array")
        return dataset, None
    if isinstance(dataset, (tuple, list)):
        if not dataset:
            raise ValueError("split_dataset: `dataset` is an empty tuple/list; pass arrays of samples")
        arrays = tuple(np.asarray(a) for a in dataset)
        lengths = [len(a) if a.ndim else None for a in arrays]
        if None in lengths or len(set(lengths)) != 1:
            raise ValueError(f"split_dataset: the arrays in `dataset` must share their first dimension; received "
                             f"shapes {[a.shape for a in arrays]}")
        return arrays, None
    if isinstance(dataset, PyDataset):
        batches = [dataset[i] for i in range(len(dataset))]
        if not batches:
            raise ValueError("split_dataset: `dataset` is a PyDataset with no batches")
        if isinstance(batches[0], dict):
            raise TypeError("split_dataset: `dataset` is a PyDataset whose batches are dicts; only array or tuple "
                            "batches can be split")
        batch_size = len(batches[0][0] if isinstance(batches[0], (tuple, list)) else batches[0])
        if isinstance(batches[0], (tuple, list)):
            parts = range(len(batches[0]))
            return tuple(np.concatenate([np.asarray(b[k]) for b in batches]) for k in parts), batch_size
        return np.concatenate([np.asarray(b) for b in batches]), batch_size
    raise TypeError(f"split_dataset: `dataset` must be a numpy array, a tuple/list of arrays, or a "
                    f"dlgpu.utils.PyDataset; received {type(dataset).__module__}.{type(dataset).__qualname__}")


def split_dataset(dataset, left_size=None, right_size=None, shuffle=False, seed=None):
    """Split ``dataset`` into a left and a right part (keras.utils.split_dataset).

    ``dataset`` is a numpy array, a tuple/list of arrays with the same length (e.g. ``(x, y)``), or a
    dlgpu.utils.PyDataset (read whole into memory, as Keras reads a tf.data.Dataset: for small data).
    ``left_size``/``right_size`` are a fraction in (0, 1) or a count; either may be None (the complement).
    With ``shuffle`` the samples are permuted first (seeded by ``seed``).

    Returns two BatchDatasets.  As in Keras, samples of unbatched data come one at a time (an array, or a
    tuple for a tuple of arrays); a PyDataset's halves keep its batch size.
    """
    if left_size is None and right_size is None:
        raise ValueError("split_dataset: pass `left_size` or `right_size` (or both); received left_size=None and "
                         "right_size=None")
    arrays, batch_size = _dataset_samples(dataset)
    total = len(arrays[0] if isinstance(arrays, tuple) else arrays)
    if total == 0:
        raise ValueError("split_dataset: `dataset` holds no samples")
    left, right = _split_sizes(left_size, right_size, total)
    order = np.random.default_rng(seed).permutation(total) if shuffle else np.arange(total)
    take = (lambda part: tuple(a[part] for a in arrays)) if isinstance(arrays, tuple) else (lambda part: arrays[part])
    return (ArrayDataset(take(order[:left]), batch_size), ArrayDataset(take(order[total - right:]), batch_size))
