"""Central test configuration.  The markers (gpu, slow) are registered in pyproject.toml.

Tests marked ``gpu`` are skipped here, with the reason CuPy gives, when no CUDA GPU is usable
(Keras' root conftest skips per backend the same way).
"""

import pytest

from dlgpu.backend import device as _device


def pytest_collection_modifyitems(config, items):
    if _device.gpu_available():
        return
    skip_gpu = pytest.mark.skip(reason=f"no CUDA GPU visible to CuPy: {_device.gpu_unavailable_reason()}")
    for item in items:
        if item.get_closest_marker("gpu") is not None:  # not item.keywords: a param id "gpu" is a keyword too
            item.add_marker(skip_gpu)
