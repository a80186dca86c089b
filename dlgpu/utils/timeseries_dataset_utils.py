"""keras.utils.timeseries_dataset_from_array: sliding windows over an array, as batches of numpy arrays."""

from __future__ import annotations

import numpy as np

from dlgpu.utils.dataset_utils import BatchDataset, check_batch_size

_WHAT = "timeseries_dataset_from_array"


class TimeseriesDataset(BatchDataset):
    """The windows of ``data`` (each a fancy-indexed gather at batch time, so only a batch of windows is
    ever copied) with the target of each window's first step."""

    def __init__(self, data, targets, starts, sequence_length, sampling_rate, batch_size, shuffle, seed):
        self.data, self.targets, self.starts = data, targets, starts
        self._steps = np.arange(sequence_length) * sampling_rate
        super().__init__(len(starts), batch_size, shuffle, seed)

    def _samples(self, indices, single):
        starts = self.starts[indices]
        windows = self.data[starts[:, None] + self._steps]  # (batch, sequence_length) + data.shape[1:]
        targets = None if self.targets is None else self.targets[starts]
        if single:
            windows, targets = windows[0], (None if targets is None else targets[0])
        return windows if targets is None else (windows, targets)


def _check_int(name, value, low):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
        raise ValueError(f"{_WHAT}: `{name}` must be an integer >= {low}; received {name}={value!r}")


def timeseries_dataset_from_array(data, targets, sequence_length, sequence_stride=1, sampling_rate=1,
                                  batch_size=128, shuffle=False, seed=None, start_index=None, end_index=None):
    """Batches of sliding windows over ``data`` (axis 0 is time), with ``targets[i]`` the target of the
    window that starts at step ``start_index + i`` (keras.utils.timeseries_dataset_from_array).

    Windows start every ``sequence_stride`` steps and take every ``sampling_rate``-th step,
    ``sequence_length`` of them; only steps in [start_index, end_index) are used.  Returns a dlgpu
    PyDataset (dlgpu.utils.dataset_utils.BatchDataset) yielding ``(windows, targets)`` numpy batches, or
    windows alone when ``targets`` is None; ``batch_size=None`` yields single windows.  With ``shuffle``
    the windows are drawn in a new random order every epoch (seeded by ``seed``); Keras shuffles
    within a buffer of batch_size * 8 windows, this shuffles them all.
    """
    data = np.asarray(data)
    if data.ndim == 0:
        raise ValueError(f"{_WHAT}: `data` must have a time axis (axis 0); received a scalar")
    n = len(data)
    if targets is not None:
        targets = np.asarray(targets)
        if targets.ndim == 0:
            raise ValueError(f"{_WHAT}: `targets` must be an array with one target per step, or None; received "
                             f"a scalar")
    _check_int("sequence_length", sequence_length, 1)
    _check_int("sequence_stride", sequence_stride, 1)
    _check_int("sampling_rate", sampling_rate, 1)
    check_batch_size(batch_size, _WHAT)
    if sampling_rate >= n:
        raise ValueError(f"{_WHAT}: `sampling_rate` must be lower than the length of the data; received "
                         f"sampling_rate={sampling_rate}, for data of length {n}")
    if sequence_stride >= n:
        raise ValueError(f"{_WHAT}: `sequence_stride` must be lower than the length of the data; received "
                         f"sequence_stride={sequence_stride}, for data of length {n}")
    if start_index is not None:
        _check_int("start_index", start_index, 0)
        if start_index >= n:
            raise ValueError(f"{_WHAT}: `start_index` must be lower than the length of the data; received "
                             f"start_index={start_index}, for data of length {n}")
    if end_index is not None:
        _check_int("end_index", end_index, 1)
        if start_index and end_index <= start_index:
            raise ValueError(f"{_WHAT}: `end_index` must be higher than `start_index`; received "
                             f"start_index={start_index}, end_index={end_index}")
        if end_index >= n:
            raise ValueError(f"{_WHAT}: `end_index` must be lower than the length of the data; received "
                             f"end_index={end_index}, for data of length {n}")
    start_index = start_index or 0
    end_index = n if end_index is None else end_index
    # Keras's count: windows that fit in [start_index, end_index), and no more than there are targets
    # (targets are read from targets[start_index:end_index]: the window starting at step s has targets[s]).
    # Keras bounds the count by len(targets) alone, and then fails reading past the end when start_index > 0.
    num_seqs = end_index - start_index - (sequence_length - 1) * sampling_rate
    if targets is not None:
        num_seqs = min(num_seqs, len(targets) - start_index)
    starts = np.arange(0, max(num_seqs, 0), sequence_stride) + start_index
    if len(starts) == 0:
        raise ValueError(f"{_WHAT}: no window of sequence_length={sequence_length} and sampling_rate={sampling_rate} "
                         f"fits in steps [{start_index}, {end_index}) of the data")
    return TimeseriesDataset(data, targets, starts, sequence_length, sampling_rate, batch_size, shuffle, seed)
