"""MNIST handwritten digits: 60,000 training and 10,000 test images, 28x28 grayscale, classes 0-9.

``load_data()`` is Keras's ``keras.datasets.mnist.load_data``: the same arrays, shapes and dtypes.
Where the files come from (``DLGPU_DATASETS``, the cache, a download) is described in
``dlgpu/datasets/_files.py``.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from . import _files
from ._idx import IDXFormatError

logger = logging.getLogger("dlgpu")

NAME = "mnist"

# MD5 of the original distribution's files (yann.lecun.com/exdb/mnist), as also published by torchvision.
MD5 = {
    _files.TRAIN_IMAGES: "f68b3c2dcbeaaa9fbdd348bbdeb94873",
    _files.TRAIN_LABELS: "d53e105ee54ea40749a09fcbcd1e9432",
    _files.TEST_IMAGES: "9fb629c4189551a2d022fa330f9573f3",
    _files.TEST_LABELS: "ec29112dd5afa0611ce80d1b7f02629c",
}

# Tried in order; yann.lecun.com itself is left out because it now often refuses downloads.
MIRRORS = [
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
]

_KERAS_DEFAULT_PATH = "mnist.npz"


def load_data(path=_KERAS_DEFAULT_PATH):
    """Load MNIST as ``(x_train, y_train), (x_test, y_test)``.

    x: uint8 arrays of shape (60000, 28, 28) and (10000, 28, 28), values 0-255.
    y: uint8 arrays of shape (60000,) and (10000,), values 0-9.
    Each call returns new, writable arrays; the parsing is cached per process.

    ``path`` is accepted for compatibility with Keras, where it names the cached ``.npz`` file.
    Here the data come from the four IDX files, but if ``path`` names an existing ``.npz`` file in
    Keras's layout (arrays ``x_train``, ``y_train``, ``x_test``, ``y_test``), that file is loaded
    instead: an absolute path as given, a relative one inside the dataset directory
    (``$DLGPU_DATASETS/mnist/`` or ``<cache>/datasets/mnist/``).  If no such file exists the IDX
    files are used, with a logged warning when ``path`` is not the default ``"mnist.npz"``.
    """
    npz = Path(path).expanduser()
    if not npz.is_absolute():
        npz = _files.dataset_dir(NAME)[0] / npz
    if npz.is_file():
        return _load_npz(npz)
    if str(path) != _KERAS_DEFAULT_PATH:
        logger.warning("mnist.load_data: path=%r: %s does not exist; loading the IDX files instead.", path, npz)
    return _files.load_idx_dataset(NAME, MD5, MIRRORS)


def _load_npz(npz):
    with np.load(npz, allow_pickle=False) as f:
        missing = [k for k in ("x_train", "y_train", "x_test", "y_test") if k not in f]
        if missing:
            raise IDXFormatError(f"{npz}: lacks the arrays {missing} that a Keras mnist.npz holds.")
        x_train, y_train, x_test, y_test = f["x_train"], f["y_train"], f["x_test"], f["y_test"]
    for key, a, ndim in (("x_train", x_train, 3), ("y_train", y_train, 1), ("x_test", x_test, 3), ("y_test", y_test, 1)):
        if a.dtype != np.uint8 or a.ndim != ndim or (ndim == 3 and a.shape[1:] != (28, 28)):
            raise IDXFormatError(f"{npz}: {key} has dtype {a.dtype} and shape {a.shape}; expected uint8 (n, 28, 28) images or (n,) labels.")
    return (x_train, y_train), (x_test, y_test)
