"""CIFAR-100: 50,000 training and 10,000 test colour images, 32x32, in 100 classes grouped into 20.

``load_data(label_mode)`` is Keras's ``keras.datasets.cifar100.load_data``: the same arrays, shapes
and dtypes.  It reads the python-version archive ``cifar-100-python.tar.gz`` (from
$DLGPU_DATASETS/cifar100/, else the cache, else downloaded from the authors' site, as Keras does).
"""

from __future__ import annotations

from . import _cifar

NAME = "cifar100"
ARCHIVE = "cifar-100-python.tar.gz"
TRAIN = "cifar-100-python/train"
TEST = "cifar-100-python/test"

_NUM_CLASSES = {"fine": 100, "coarse": 20}


def load_data(label_mode="fine"):
    """Load CIFAR-100 as ``(x_train, y_train), (x_test, y_test)``.

    label_mode: ``"fine"`` for the 100 classes, ``"coarse"`` for the 20 superclasses.
    x: uint8 arrays (50000, 32, 32, 3) and (10000, 32, 32, 3), channels_last, values 0-255.
    y: int64 arrays (50000, 1) and (10000, 1).  (Keras's docstring says uint8, but its code reshapes
    the pickled Python list, which gives int64; we return what Keras returns.)
    """
    if label_mode not in _NUM_CLASSES:
        raise ValueError(
            f'cifar100.load_data: `label_mode` must be one of "fine", "coarse". Received: label_mode={label_mode!r}.'
        )
    key = f"{label_mode}_labels"
    batches = _cifar.load_batches(NAME, ARCHIVE, (TRAIN, TEST), key, _NUM_CLASSES[label_mode])
    (x_train, y_train), (x_test, y_test) = batches
    return (x_train, y_train.reshape(-1, 1)), (x_test, y_test.reshape(-1, 1))
