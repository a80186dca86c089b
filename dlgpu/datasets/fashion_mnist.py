"""Fashion-MNIST (Zalando): 60,000 training and 10,000 test images of clothing, 28x28 grayscale.

Labels: 0 T-shirt/top, 1 Trouser, 2 Pullover, 3 Dress, 4 Coat, 5 Sandal, 6 Shirt, 7 Sneaker,
8 Bag, 9 Ankle boot.  ``load_data()`` is Keras's ``keras.datasets.fashion_mnist.load_data``.
Where the files come from is described in ``dlgpu/datasets/_files.py``.
"""

from __future__ import annotations

from . import _files

NAME = "fashion_mnist"

CLASS_NAMES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")

# MD5 published by Zalando Research (github.com/zalandoresearch/fashion-mnist), as also used by torchvision.
MD5 = {
    _files.TRAIN_IMAGES: "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
    _files.TRAIN_LABELS: "25c81989df183df01b3e8a0aad5dffbe",
    _files.TEST_IMAGES: "bef4ecab320f06d8554ea6380940ec79",
    _files.TEST_LABELS: "bb300cfdad3c16e7a12a480ee83cd310",
}

# Keras's mirror first (https); Zalando's own S3 website serves plain http, so the MD5 check matters.
MIRRORS = [
    "https://storage.googleapis.com/tensorflow/tf-keras-datasets/",
    "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
]


def load_data():
    """Load Fashion-MNIST as ``(x_train, y_train), (x_test, y_test)``.

    x: uint8 arrays of shape (60000, 28, 28) and (10000, 28, 28), values 0-255.
    y: uint8 arrays of shape (60000,) and (10000,), values 0-9 (see ``CLASS_NAMES``).
    Each call returns new, writable arrays; the parsing is cached per process.
    """
    return _files.load_idx_dataset(NAME, MD5, MIRRORS)
