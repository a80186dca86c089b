"""keras.utils.PyDataset (and its older name, Sequence): batches served by index, for fit/evaluate/predict."""

from __future__ import annotations

import itertools
import warnings


class PyDataset:
    """Base class for a dataset written in Python that hands out whole batches by index.

    A subclass implements ``__len__`` (the number of batches) and ``__getitem__(index)`` returning one
    batch: ``x``, ``(x,)``, ``(x, y)`` or ``(x, y, sample_weight)``.  An endless dataset implements the
    ``num_batches`` property returning None instead of ``__len__`` (fit then needs ``steps_per_epoch``).
    ``on_epoch_begin()`` and ``on_epoch_end()`` are called around every pass fit, evaluate or predict makes,
    e.g. to reshuffle the samples.

    ``workers > 1`` has fit, evaluate and predict read up to ``max_queue_size`` batches ahead in that many
    threads (processes with ``use_multiprocessing=True``), in order, while the model works
    (dlgpu/models/prefetch.py).

    Example::

        class Batches(dlgpu.utils.PyDataset):
            def __init__(self, x, y, batch_size, **kwargs):
                super().__init__(**kwargs)
                self.x, self.y, self.batch_size = x, y, batch_size

            def __len__(self):
                return math.ceil(len(self.x) / self.batch_size)

            def __getitem__(self, index):
                part = slice(index * self.batch_size, (index + 1) * self.batch_size)
                return self.x[part], self.y[part]
    """

    def __init__(self, workers=1, use_multiprocessing=False, max_queue_size=10):
        self._workers = workers
        self._use_multiprocessing = use_multiprocessing
        self._max_queue_size = max_queue_size

    def _warn_if_super_not_called(self):
        # Keras warns too: a subclass that skips super().__init__ silently loses these settings.
        if not hasattr(self, "_workers"):
            self._workers, self._use_multiprocessing, self._max_queue_size = 1, False, 10
            warnings.warn("Your `PyDataset` class should call `super().__init__(**kwargs)` in its constructor. "
                          "`**kwargs` can include `workers`, `use_multiprocessing`, `max_queue_size`.", stacklevel=3)

    @property
    def workers(self):
        self._warn_if_super_not_called()
        return self._workers

    @workers.setter
    def workers(self, value):
        self._workers = value

    @property
    def use_multiprocessing(self):
        self._warn_if_super_not_called()
        return self._use_multiprocessing

    @use_multiprocessing.setter
    def use_multiprocessing(self, value):
        self._use_multiprocessing = value

    @property
    def max_queue_size(self):
        self._warn_if_super_not_called()
        return self._max_queue_size

    @max_queue_size.setter
    def max_queue_size(self, value):
        self._max_queue_size = value

    def __getitem__(self, index):
        """The batch at position ``index``."""
        raise NotImplementedError(f"{type(self).__name__} must implement __getitem__(index), returning one batch.")

    def __iter__(self):
        """The batches in order, ``self[0]``, ``self[1]``, ...: ``num_batches`` of them, or without end when
        ``num_batches`` is None or not implemented (as Keras 3).  No worker prefetches here."""
        index_range = None
        try:
            num_batches = self.num_batches
            if num_batches is not None:
                index_range = range(num_batches)
        except NotImplementedError:
            pass
        for index in itertools.count() if index_range is None else index_range:
            yield self[index]

    @property
    def num_batches(self):
        """The number of batches, or None for a dataset without end.  Defaults to ``len(self)``."""
        # The base class defines no __len__, so that an endless dataset can leave it out.
        if hasattr(self, "__len__"):
            return len(self)
        raise NotImplementedError(f"{type(self).__name__} must implement __len__ (the number of batches), or the "
                                  "`num_batches` property (None for a dataset without end).")

    def on_epoch_begin(self):
        """Called before every pass over the dataset."""

    def on_epoch_end(self):
        """Called after every pass over the dataset."""


Sequence = PyDataset  # keras.utils.Sequence is the same class in Keras 3
