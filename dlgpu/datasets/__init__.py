"""Datasets with Keras's ``load_data()``: ``dlgpu.datasets.mnist``, ``fashion_mnist``, ``cifar10``,
``cifar100``, ``imdb``, ``reuters``, ``boston_housing``, ``california_housing``.

Where the files come from (``DLGPU_DATASETS``, the cache, a download) is described in ``_files.py``;
the published checksums of the Keras-distributed files are in ``_checksums.py``.
"""

from . import boston_housing, california_housing, cifar10, cifar100, fashion_mnist, imdb, mnist, reuters
from ._errors import DatasetChecksumError, DatasetFormatError, DatasetNotFoundError
from ._idx import IDXFormatError

__all__ = ["mnist", "fashion_mnist", "cifar10", "cifar100", "imdb", "reuters", "boston_housing", "california_housing",
           "DatasetNotFoundError", "DatasetFormatError", "DatasetChecksumError", "IDXFormatError"]
