"""Decoding CIFAR's python-version batches, as Keras's ``keras/src/datasets/cifar.py`` does.

Each batch is a pickled dict (written by Python 2, so read with ``encoding="bytes"``: the keys come
back as bytes) whose ``data`` is a uint8 array (n, 3072), each row the 1024 red, then green, then blue
pixels of a 32x32 image in row order, and whose labels are a list of ints under ``labels`` (CIFAR-10)
or ``fine_labels``/``coarse_labels`` (CIFAR-100).
"""

from __future__ import annotations

import numpy as np

from . import _files, _pickles
from ._errors import DatasetFormatError


def load_batches(name, archive, members, label_key, num_classes):
    """``[(x, y), ...]`` for the ``members`` of ``archive``: x uint8 (n, 32, 32, 3), y int64 (n,)."""
    source, data = _files.read_keras_file(name, archive)  # verified before anything is unpickled
    raw = _pickles.tar_members(data, members, source)
    return [_decode(raw[m], f"{source}:{m}", label_key, num_classes) for m in members]


def _decode(raw, source, label_key, num_classes):
    batch = _pickles.unpickle(raw, source, encoding="bytes")
    if not isinstance(batch, dict):
        raise DatasetFormatError(f"{source}: a CIFAR batch is a dict, found {type(batch).__name__}.")
    batch = {k.decode("utf8") if isinstance(k, bytes) else k: v for k, v in batch.items()}
    data, labels = _pickles.require(batch, ("data", label_key), source)
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
        found = f"{data.dtype} {data.shape}" if isinstance(data, np.ndarray) else type(data).__name__
        raise DatasetFormatError(f"{source}: 'data' is {found}; expected uint8 (n, 3072).")
    labels = np.asarray(labels)
    if labels.size == 0:  # np.asarray([]) is float64
        labels = labels.astype(np.int64)
    if labels.shape != (data.shape[0],) or labels.dtype.kind not in "iu":
        raise DatasetFormatError(
            f"{source}: {labels.dtype} {labels.shape} {label_key!r} for {data.shape[0]} images; expected one int each."
        )
    if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
        raise DatasetFormatError(f"{source}: {label_key!r} outside 0-{num_classes - 1}.")
    # channels_last, the only layout dlgpu has; Keras transposes the same (n, 3, 32, 32) view.
    x = np.ascontiguousarray(data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))
    return x, labels.astype(np.int64)
