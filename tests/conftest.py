"""Central test configuration.  The markers (gpu, slow) are registered in pyproject.toml.

Tests marked ``gpu`` are skipped here, with the reason CuPy gives, when no CUDA GPU is usable
(Keras' root conftest skips per backend the same way).
"""

import os
import pathlib

import pytest

REPO = pathlib.Path(__file__).resolve().parent.parent

# CI passes DLGPU_DATASETS relative to the repository (../shared/data); tests may run from elsewhere.
if os.environ.get("DLGPU_DATASETS") and not os.path.isabs(os.environ["DLGPU_DATASETS"]):
    os.environ["DLGPU_DATASETS"] = str((REPO / os.environ["DLGPU_DATASETS"]).resolve())

# The real MNIST files, read before any test changes the environment: the folder holding mnist/, or None.
_REAL_DATASETS = os.environ.get("DLGPU_DATASETS") or None


@pytest.fixture(scope="session")
def real_mnist_root():
    """The folder holding mnist/ with the four real IDX files, or a skip saying how to provide them."""
    if _REAL_DATASETS is None:
        pytest.skip("DLGPU_DATASETS is not set; point it at the folder holding mnist/ (CI: ../shared/data)")
    root = pathlib.Path(_REAL_DATASETS)
    if not (root / "mnist").is_dir():
        pytest.skip(f"no mnist/ folder under DLGPU_DATASETS={root}; put the four MNIST IDX .gz files there")
    return root


# Tests place what they create on the CPU unless they ask for the GPU explicitly (`with dlgpu.device`).
os.environ.setdefault("DLGPU_DEVICE", "cpu")

from dlgpu.backend import device as _device  # noqa: E402 - after the environment above


def pytest_addoption(parser):
    parser.addoption("--simulated-gpu", action="store_true",
                     help="run the GPU code paths on dlgpu.testing.simulated_cupy (numpy memory under CuPy's rules, "
                          "our kernels in the SIMT emulator): a check of the Python around the GPU, not of a GPU")


def pytest_configure(config):
    if config.getoption("--simulated-gpu"):
        from dlgpu.testing import simulated_cupy
        simulated_cupy.install()


def pytest_report_header(config):
    if config.getoption("--simulated-gpu"):
        return "GPU: SIMULATED (dlgpu.testing.simulated_cupy) -- these results say nothing about CUDA itself"
    return None


def pytest_collection_modifyitems(config, items):
    if config.getoption("--simulated-gpu"):
        too_big = pytest.mark.skip(reason="runs our kernels at GPU-sized shapes: the SIMT emulator would take minutes "
                                          "(the CPU suite runs every kernel at small, awkward shapes)")
        for item in items:
            if item.get_closest_marker("gpu_sized") is not None:
                item.add_marker(too_big)
    if _device.gpu_available():
        return
    skip_gpu = pytest.mark.skip(reason=f"needs a CUDA GPU: {_device.gpu_unavailable_reason()}")
    for item in items:
        if item.get_closest_marker("gpu") is not None:  # not item.keywords: a param id "gpu" is a keyword too
            item.add_marker(skip_gpu)


@pytest.fixture(autouse=True)
def _global_dtype_policy_restored():
    """A test that sets a global dtype policy (mixed_float16) must not hand it to the tests after it."""
    yield
    import sys
    policies = sys.modules.get("dlgpu.dtype_policies")
    if policies is not None and policies.dtype_policy().name != "float32":
        policies.set_dtype_policy("float32")
