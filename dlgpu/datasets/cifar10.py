"""CIFAR-10: 50,000 training and 10,000 test colour images, 32x32, in 10 classes.

``load_data()`` is Keras's ``keras.datasets.cifar10.load_data``: the same arrays, shapes and dtypes.
It reads the python-version archive ``cifar-10-python.tar.gz`` (from $DLGPU_DATASETS/cifar10/, else
the cache, else downloaded from the authors' site, as Keras does); see ``dlgpu/datasets/_files.py``.
"""

from __future__ import annotations

import numpy as np

from . import _cifar

NAME = "cifar10"
ARCHIVE = "cifar-10-python.tar.gz"
TRAIN_BATCHES = tuple(f"cifar-10-batches-py/data_batch_{i}" for i in range(1, 6))
TEST_BATCH = "cifar-10-batches-py/test_batch"

CLASS_NAMES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")


def load_data():
    """Load CIFAR-10 as ``(x_train, y_train), (x_test, y_test)``.

    x: uint8 arrays (50000, 32, 32, 3) and (10000, 32, 32, 3), channels_last, values 0-255.
    y: uint8 arrays (50000, 1) and (10000, 1), values 0-9 (see ``CLASS_NAMES``).
    """
    batches = _cifar.load_batches(NAME, ARCHIVE, TRAIN_BATCHES + (TEST_BATCH,), "labels", 10)
    train, (x_test, y_test) = batches[:-1], batches[-1]
    x_train = np.concatenate([x for x, _ in train])
    # Keras fills a uint8 label array, then reshapes to a column.
    y_train = np.concatenate([y for _, y in train]).astype(np.uint8).reshape(-1, 1)
    return (x_train, y_train), (x_test, y_test.astype(np.uint8).reshape(-1, 1))
