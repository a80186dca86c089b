"""Datasets with Keras's ``load_data()``: ``dlgpu.datasets.mnist``, ``dlgpu.datasets.fashion_mnist``."""

from . import fashion_mnist, mnist
from ._files import DatasetNotFoundError
from ._idx import IDXFormatError

__all__ = ["mnist", "fashion_mnist", "DatasetNotFoundError", "IDXFormatError"]
