"""Reading a PyDataset's batches ahead, in worker threads or processes, as Keras's ``workers`` asks.

``PyDataset(workers=4)`` makes fit read up to ``max_queue_size`` batches ahead of the training step, in
order, while the step runs: image decoding, augmentation or file reads in ``__getitem__`` overlap with the
model's work (numpy, CuPy and most I/O release the GIL, so threads run them in parallel).  With
``use_multiprocessing=True`` the workers are processes forked from this one (the dataset is inherited, not
pickled); where fork is not available they are threads, with a warning.  ``workers=1`` reads each batch
when it is needed, in the training thread.
"""

from __future__ import annotations

import collections
import warnings
import weakref

_worker_dataset = None  # the dataset, in each worker process


def _remember_dataset(dataset):
    global _worker_dataset
    _worker_dataset = dataset


def _read_in_worker(index):
    return _worker_dataset[index]


class BatchReader:
    """``read(indices)``: the dataset's batches at ``indices``, in that order, read ahead by the workers."""

    def __init__(self, dataset):
        self.dataset = dataset
        self.workers = int(dataset.workers or 1)
        self.queue_size = max(1, int(dataset.max_queue_size or 1))
        self._pool = None
        self._read = None

    def read(self, indices):
        if self.workers <= 1:
            for index in indices:
                yield self.dataset[index]
            return
        pool, read = self._workers()
        pending, upcoming = collections.deque(), iter(indices)
        for index in upcoming:
            pending.append(pool.submit(read, index))
            if len(pending) >= self.queue_size:
                break
        try:
            while pending:
                batch = pending.popleft().result()  # a worker's exception surfaces here, in order
                index = next(upcoming, None)
                if index is not None:
                    pending.append(pool.submit(read, index))
                yield batch
        finally:  # an epoch that stops early (stop_training, an error) leaves no reads running behind it
            for future in pending:
                future.cancel()

    def _workers(self):
        if self._pool is None:
            import concurrent.futures  # (here: most fits never start workers, and `import dlgpu` stays lean)
            import multiprocessing
            processes = bool(self.dataset.use_multiprocessing)
            if processes and "fork" not in multiprocessing.get_all_start_methods():
                warnings.warn("PyDataset(use_multiprocessing=True): this platform cannot fork, so the workers "
                              "are threads.", stacklevel=4)
                processes = False
            if processes:
                self._pool = concurrent.futures.ProcessPoolExecutor(
                    self.workers, mp_context=multiprocessing.get_context("fork"),
                    initializer=_remember_dataset, initargs=(self.dataset,))
                self._read = _read_in_worker
            else:
                self._pool = concurrent.futures.ThreadPoolExecutor(self.workers, thread_name_prefix="pydataset")
                self._read = self.dataset.__getitem__
            # the workers end with the reader (fit's end), not with the process
            weakref.finalize(self, self._pool.shutdown, wait=False, cancel_futures=True)
        return self._pool, self._read
