"""PyDataset(workers=...): batches read ahead by worker threads or processes, in order."""

import os
import threading

import numpy as np
import pytest

import dlgpu

rng = np.random.default_rng(0)
X = rng.normal(size=(48, 4)).astype("float32")
Y = (X[:, :1] > 0).astype("float32")


class Batches(dlgpu.utils.PyDataset):
    def __init__(self, barrier=None, fail_at=None, **kwargs):
        super().__init__(**kwargs)
        self.barrier, self.fail_at = barrier, fail_at
        self.readers = set()

    def __len__(self):
        return 6

    def __getitem__(self, index):
        if self.fail_at == index:
            raise RuntimeError(f"batch {index} is broken")
        self.readers.add((os.getpid(), threading.get_ident()))
        if self.barrier is not None:
            self.barrier.wait(timeout=20)  # passes only when two reads run at the same time
        return X[index * 8:(index + 1) * 8], Y[index * 8:(index + 1) * 8]


def _model():
    model = dlgpu.Sequential([dlgpu.Input((4,)), dlgpu.layers.Dense(1, kernel_initializer="ones")])
    model.compile(dlgpu.optimizers.SGD(0.1), "mse")
    return model


def _fit_history(**kwargs):
    return _model().fit(Batches(**kwargs), epochs=2, shuffle=False, verbose=0).history["loss"]


def test_threads_read_ahead_concurrently_and_in_order():
    serial = _fit_history()
    barrier = threading.Barrier(2)
    data = Batches(barrier=barrier, workers=2, max_queue_size=4)
    history = _model().fit(data, epochs=2, shuffle=False, verbose=0).history["loss"]
    assert history == serial  # the same batches in the same order
    assert len({thread for _, thread in data.readers}) == 2 and not barrier.broken


def test_processes_read_batches_in_order():
    serial = _model().predict(Batches(), verbose=0)
    forked = _model().predict(Batches(workers=2, use_multiprocessing=True), verbose=0)
    np.testing.assert_array_equal(forked, serial)


def test_a_worker_error_reaches_fit():
    with pytest.raises(RuntimeError, match="batch 3 is broken"):
        _model().fit(Batches(fail_at=3, workers=2), epochs=1, verbose=0)


def test_shuffled_and_stopped_epochs_keep_the_serial_order():
    histories = []
    for workers in (1, 3):  # 6 batches, 4 an epoch: the second epoch ends the pass early (Keras warns too)
        dlgpu.utils.set_random_seed(3)
        with pytest.warns(UserWarning, match="ran out of batches"):
            histories.append(_model().fit(Batches(workers=workers), epochs=3, steps_per_epoch=4,
                                          verbose=0).history["loss"])
    assert histories[1] == histories[0]
