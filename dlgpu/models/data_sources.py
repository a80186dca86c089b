"""Data that arrives one batch at a time: a dlgpu.utils.PyDataset, a dlgpu.data.Dataset, a torch DataLoader
or an iterator (a generator).

As in Keras 3 (keras/src/trainers/data_adapters/): a PyDataset is read by index, ``len(ds)`` batches a
pass, with ``on_epoch_end()`` after each; a Dataset (as a tf.data.Dataset) or a DataLoader is iterated
afresh for each pass; an iterator is read with ``next`` and cannot be rewound.  Each
batch is checked here as fit's arrays are (dtypes, NaN, cardinality, labels; a dry run when its shapes are
new) before it reaches the model, so a bad batch raises before it changes any weight.
"""

from __future__ import annotations

import collections.abc
import inspect
import warnings

import numpy as np

from dlgpu.data.dataset import INFINITE_CARDINALITY, Dataset
from dlgpu.layers.base import flatten
from dlgpu.models.data import (class_weights_to_sample_weights, length, prepare_host_data, slice_structure,
                               unreadable_part)
from dlgpu.models.prefetch import BatchReader
from dlgpu.utils.py_dataset import PyDataset


def is_batch_stream(data):
    return isinstance(data, (PyDataset, Dataset, collections.abc.Iterator)) or is_torch_dataloader(data)


def is_restartable(data):
    """Whether every pass over ``data`` can start again from its beginning (not so for an iterator)."""
    return isinstance(data, (PyDataset, Dataset)) or is_torch_dataloader(data)


def is_torch_dataloader(data):
    """A torch.utils.data.DataLoader (or a subclass), recognised without importing torch: Keras 3 reads one
    on every backend, a pass over it per epoch."""
    return any(cls.__name__ == "DataLoader" and cls.__module__.startswith("torch.utils.data")
               for cls in type(data).__mro__)


def check_data_source(data, name, what, arrays="an array (or a list, tuple or dict of arrays)"):
    """Reject, before numpy ever reads it, what is neither arrays nor a batch stream: np.asarray walks an
    object with __len__ and __getitem__ index by index, forever if __getitem__ never raises IndexError."""
    if is_batch_stream(data) or isinstance(data, dict) or unreadable_part(data) is not data:
        return
    raise TypeError(f"{what}: `{name}` must be {arrays}, a dlgpu.data.Dataset, a dlgpu.utils.PyDataset, or an "
                    f"iterator yielding batches (e.g. a generator); received "
                    f"{type(data).__module__}.{type(data).__qualname__}."
                    f"{_hint(data)}")


def _hint(data):
    if isinstance(data, (str, bytes)):
        return " Load the data into arrays first."
    if inspect.isgeneratorfunction(data):
        return f" It is a generator function: call it, {getattr(data, '__name__', 'gen')}(), and pass the generator."
    if isinstance(data, type):
        return " It is a class: pass an instance of it."
    if callable(data):
        return " It is a function: pass what it returns."
    if hasattr(data, "__getitem__"):
        return (" To serve batches by index, subclass dlgpu.utils.PyDataset and implement __len__ and "
                "__getitem__ (a keras.utils.PyDataset from Keras itself is not recognised).")
    if hasattr(data, "__iter__"):
        return " It is iterable but not an iterator: pass iter(...) of it, or subclass dlgpu.utils.PyDataset."
    return ""


def reject_with_stream(data, name, what, batch_size=None, y=None, sample_weight=None, validation_split=0.0,
                       batch_size_name="batch_size"):
    """Keras's errors for arguments that a batch stream already carries (or cannot provide)."""
    kind = ("a PyDataset" if isinstance(data, PyDataset) else "a dlgpu.data.Dataset" if isinstance(data, Dataset) else
            "a torch DataLoader" if is_torch_dataloader(data) else "an iterator")
    if batch_size is not None:
        # Keras ignores it without a word (keras.io's own guide passes batch_size=64 with a PyDataset), so
        # it is no error here either; but it is said, not silently dropped.
        warnings.warn(f"{what}: `{batch_size_name}={batch_size}` is ignored because `{name}` is {kind}, whose "
                      f"batches already have their size.", stacklevel=3)
    for arg, value, inside in (("y", y, "its batches carry the targets: (x, y)"),
                               ("sample_weight", sample_weight,
                                "its batches carry the sample weights: (x, y, sample_weight)")):
        if value is not None:
            raise ValueError(f"{what}: `{arg}` must not be given when `{name}` is {kind}; {inside}. "
                             f"Received: {arg}={_short(value)}")
    if validation_split:
        raise ValueError(f"{what}: `validation_split` is only supported for arrays; `{name}` is {kind}, which "
                         f"cannot be split. Pass validation_data instead. Received: "
                         f"validation_split={validation_split}")


def _short(value):
    text = repr(value)
    return text if len(text) <= 60 else f"{type(value).__name__} {text[:40]}..."


def check_steps(steps, steps_name, what):
    if steps is not None and (not isinstance(steps, (int, np.integer)) or isinstance(steps, bool) or steps <= 0):
        raise ValueError(f"{what}: `{steps_name}` must be a positive integer or None; received "
                         f"{steps_name}={steps!r}")


def batch_stream(data, steps, steps_name, name, what, rng=None):
    """The batches of a PyDataset (in an order drawn from ``rng`` when one is given) or of an iterator."""
    check_steps(steps, steps_name, what)
    if isinstance(data, PyDataset):
        return PyDatasetBatches(data, steps, steps_name, name, what, rng)
    if isinstance(data, Dataset):
        return DatasetBatches(data, steps, steps_name, name, what)
    if is_torch_dataloader(data):
        return DataLoaderBatches(data, steps, steps_name, name, what)
    return IteratorBatches(data, steps, steps_name, name, what)


class PyDatasetBatches:
    """A PyDataset, ``steps`` batches an epoch (default: one pass).  As in Keras, a pass that an epoch leaves
    unfinished goes on in the next epoch, and an epoch ends early when its pass does."""

    finished = False  # an index can always be read again

    def __init__(self, dataset, steps, steps_name, name, what, rng):
        total = dataset.num_batches
        if total is None and steps is None:
            raise ValueError(f"{what}: `{name}` is a PyDataset without end (num_batches is None); pass "
                             f"`{steps_name}` to say how many batches to take.")
        if total is not None and total <= 0:
            raise ValueError(f"{what}: `{name}` is a PyDataset with no batches (len {total}).")
        self.dataset, self.steps, self._total, self._rng = dataset, steps or total, total, rng
        self._steps_name, self._what = steps_name, what
        self._order, self._next = None, None  # no pass started yet
        self._reader = BatchReader(dataset)

    def epoch(self):
        if self._next is None or self._next == self._total:
            self._next = 0
            self._order = self._rng.permutation(self._total) if self._rng is not None and self._total else None
        self.dataset.on_epoch_begin()
        end = self._next + self.steps if self._total is None else min(self._next + self.steps, self._total)
        positions = range(self._next, end)
        indices = positions if self._order is None else [int(self._order[p]) for p in positions]
        for batch in self._reader.read(indices):
            self._next += 1
            yield batch
        if len(positions) < self.steps:
            warnings.warn(f"{self._what}: the PyDataset ran out of batches after {len(positions)} of "
                          f"{self._steps_name}={self.steps} in this epoch; the next epoch starts a new pass "
                          f"over its {self._total} batches.", stacklevel=2)

    def end_epoch(self):
        self.dataset.on_epoch_end()

    def restart(self):
        """The next epoch starts a new pass (Keras's EpochIterator.reset, which evaluate calls)."""
        self._next = None


class IteratorBatches:
    """An iterator, ``steps`` batches an epoch, or up to its end when steps is None.  It cannot be rewound:
    once ``finished``, it has nothing more to give."""

    def __init__(self, iterator, steps, steps_name, name, what):
        self._iterator, self.steps = iterator, steps
        self._steps_name, self._name, self._what = steps_name, name, what
        self.finished = False
        self._yielded_before = False

    def epoch(self):
        taken = 0
        while self.steps is None or taken < self.steps:
            try:
                batch = next(self._iterator)
            except StopIteration:
                self.finished = True
                break
            taken += 1
            yield batch
        if taken == 0:
            used_up = " (an earlier pass used it up)" if self._yielded_before else ""
            raise ValueError(f"{self._what}: `{self._name}` yielded no batches{used_up}.")
        self._yielded_before = True
        if self.finished and self.steps is not None:
            warnings.warn(f"{self._what}: `{self._name}` ran out of batches after {taken} of "
                          f"{self._steps_name}={self.steps}; it must yield {self._steps_name} batches for every "
                          f"pass (e.g. loop forever).", stacklevel=2)

    def end_epoch(self):
        pass

    def restart(self):
        pass  # an iterator cannot be rewound: it goes on where it stopped, in Keras too


class DataLoaderBatches:
    """A torch DataLoader, ``steps`` batches an epoch (default: one pass, ``len(loader)``), its tensors
    handed on as numpy arrays.  It can be iterated again, so, as a PyDataset, a pass that an epoch leaves
    unfinished goes on in the next epoch, and an epoch ends early when its pass does; the loader's own
    sampler decides the order (shuffle=True in the DataLoader, not fit's `shuffle`)."""

    finished = False

    def __init__(self, loader, steps, steps_name, name, what):
        try:
            total = len(loader)
        except TypeError:  # an IterableDataset without __len__
            total = None
        if total is None and steps is None:
            raise ValueError(f"{what}: `{name}` is a DataLoader without a length; pass `{steps_name}` to say "
                             f"how many batches to take.")
        if total == 0:
            raise ValueError(f"{what}: `{name}` is a DataLoader with no batches (len 0).")
        self._loader, self.steps = loader, steps or total
        self._steps_name, self._name, self._what = steps_name, name, what
        self._iterator = None

    def epoch(self):
        for taken in range(self.steps):
            batch = self._next_batch(fresh=self._iterator is None)
            if batch is None and taken == 0:  # the last epoch ended exactly at the end of a pass
                batch = self._next_batch(fresh=True)
            if batch is None:
                if taken == 0:
                    raise ValueError(f"{self._what}: `{self._name}` yielded no batches.")
                warnings.warn(f"{self._what}: the DataLoader ran out of batches after {taken} of "
                              f"{self._steps_name}={self.steps} in this epoch; the next epoch starts a new pass.",
                              stacklevel=2)
                return
            yield self._convert(batch)

    def _convert(self, batch):
        return _torch_to_numpy(batch)

    def _next_batch(self, fresh):
        if fresh:
            self._iterator = iter(self._loader)
        try:
            return next(self._iterator)
        except StopIteration:
            self._iterator = None
            return None

    def end_epoch(self):
        pass

    def restart(self):
        self._iterator = None


class DatasetBatches(DataLoaderBatches):
    """A dlgpu.data.Dataset read as Keras 3 reads a tf.data.Dataset: each element is a batch.  Without
    ``steps`` an epoch is one whole pass, a new iteration of the dataset each time (its shuffles draw a new
    order); with ``steps`` (needed for an infinite dataset, ``repeat()``) an epoch takes that many batches
    and the pass goes on in the next epoch, a new one starting when it ends, as Keras's EpochIterator.
    fit's ``shuffle`` does not apply: the dataset orders its elements itself."""

    def __init__(self, dataset, steps, steps_name, name, what):
        n = dataset.cardinality()
        if n == INFINITE_CARDINALITY and steps is None:
            raise ValueError(f"{what}: `{name}` is an infinite dlgpu.data.Dataset (repeat() without a count); pass "
                             f"`{steps_name}` to say how many batches to take.")
        if n == 0:
            raise ValueError(f"{what}: `{name}` is a dlgpu.data.Dataset with no elements (cardinality 0).")
        if dataset._batched is False:
            warnings.warn(f"{what}: `{name}` is a dlgpu.data.Dataset of single samples (no .batch() after "
                          f"from_tensor_slices or unbatch()): each element is taken as one batch, as Keras takes "
                          f"a tf.data.Dataset's. Add .batch(batch_size).", stacklevel=4)
        self._loader, self._whole_passes = _SourceBatches.of(dataset) or dataset, steps is None
        self.steps = steps if steps is not None else (int(n) if n >= 0 else None)
        self._steps_name, self._name, self._what = steps_name, name, what
        self._iterator = None

    def epoch(self):
        if not self._whole_passes:
            yield from super().epoch()
            return
        taken = 0
        for batch in self._loader:
            taken += 1
            yield batch
        if taken == 0:
            raise ValueError(f"{self._what}: `{self._name}` yielded no batches.")

    def _convert(self, batch):
        return batch  # host arrays already; BatchChecks copies a Tensor a map returned to the host


class SourceBatch:
    """A batch of a dlgpu.data.Dataset that is rows ``index`` of arrays (``Dataset.from_tensor_slices(...)``
    shuffled, repeated, batched): BatchChecks checks and converts those arrays once, as fit's array path
    does, and then only slices them, instead of checking every batch.  So all their rows are checked (NaN,
    label range), also rows a take() or skip() leaves out."""

    __slots__ = ("source", "index")

    def __init__(self, source, index):
        self.source, self.index = source, index

    def materialize(self):
        from dlgpu import tree
        return tree.map_structure(lambda a: a[self.index], self.source)


class _SourceBatches:
    """Iterating it iterates the dataset's batch indices, as SourceBatch objects; None where the dataset's
    batches are not rows of arrays (a map or filter before batch, a generator...)."""

    def __init__(self, dataset):
        self._dataset = dataset

    @classmethod
    def of(cls, dataset):
        return cls(dataset) if dataset._index_batches() is not None else None

    def __iter__(self):
        arrays, batches = self._dataset._index_batches()
        return (SourceBatch(arrays, index) for index in batches)


def materialize(batch):
    return batch.materialize() if isinstance(batch, SourceBatch) else batch


def _torch_to_numpy(structure):
    if isinstance(structure, (list, tuple)):
        return type(structure)(_torch_to_numpy(s) for s in structure)
    if isinstance(structure, dict):
        return {k: _torch_to_numpy(v) for k, v in structure.items()}
    if type(structure).__module__.startswith("torch") and hasattr(structure, "detach"):
        return structure.detach().cpu().numpy()
    return structure


def unpack_batch(batch, name, what):
    """(x, y, sample_weight) from one batch, read as Keras reads it: a tuple or list of 1 to 3 entries, or
    anything else as x alone (an array, a dict of inputs)."""
    if isinstance(batch, list):
        batch = tuple(batch)
    if not isinstance(batch, tuple):
        return batch, None, None
    if len(batch) not in (1, 2, 3):
        raise ValueError(f"{what}: each batch from `{name}` must be x, (x,), (x, y) or (x, y, sample_weight); "
                         f"received a tuple of {len(batch)} entries.")
    return batch + (None,) * (3 - len(batch))


class BatchChecks:
    """Checks each (x, y) batch of a stream as fit checks whole arrays, before the model sees it: prepare_host_data
    (dtypes, NaN, cardinality), then a dry run whenever the batch's per-sample shapes or dtypes differ from
    the last batch that had one (a stream may change shapes, e.g. sequence lengths, from batch to batch),
    else the label check against the output shapes that dry run saw."""

    def __init__(self, model, name, what, class_weight=None, targets_optional=False):
        self._model, self._name, self._what, self._class_weight = model, name, what, class_weight
        self._signature, self._output_shapes, self._source = None, None, None
        # a custom train_step/test_step decides itself what a batch holds: x alone is fine (Keras's GAN)
        self._targets_optional = targets_optional

    def __call__(self, batch):
        if isinstance(batch, SourceBatch):
            xs, ys, sw = self._checked_source(batch.source, batch.index)
            return tuple(None if part is None else slice_structure(part, batch.index) for part in (xs, ys, sw))
        return self._check(batch)

    def _checked_source(self, source, index):
        """The whole arrays a SourceBatch slices, checked (and converted: float64 to float32, class weights)
        once, with one dry run: what the array path of fit does."""
        if self._source is None or self._source[0] is not source:
            self._signature = None
            rows = len(range(*index.indices(length(source)))) if isinstance(index, slice) else len(index)
            self._source = (source, self._check(source, rows))
        return self._source[1]

    def _check(self, batch, rows=None):
        """``rows``: the batch size, for the dry run of a model with stateful layers, when ``batch`` is
        the whole source of the batches."""
        x, y, sample_weight = unpack_batch(batch, self._name, self._what)
        if y is None and self._model._loss_fns is not None and not self._targets_optional:
            raise ValueError(f"{self._what}: each batch from `{self._name}` must be (x, y) or "
                             f"(x, y, sample_weight); received a batch without targets "
                             f"({type(batch).__name__}).")
        xs, ys, sw, n = prepare_host_data(x, y, sample_weight, f"{self._what} (a batch of `{self._name}`)",
                                          strings=self._model._takes_strings())
        if self._class_weight is not None:
            sw = class_weights_to_sample_weights(self._class_weight, ys, sw)
        signature = (_per_sample(xs), _per_sample(ys), sw is None)
        if signature != self._signature:
            self._output_shapes = self._model._dry_run(xs, ys, sw, n if rows is None else rows)
            self._signature = signature
        elif ys is not None and self._output_shapes is not None:
            self._model._check_labels(ys, [(n,) + shape[1:] for shape in self._output_shapes])
        return xs, ys, sw


def _per_sample(structure):
    return None if structure is None else tuple((a.shape[1:], a.dtype) for a in flatten(structure))
