"""Test-wide settings: the `gpu` marker skips centrally with the reason, and DLGPU_DATASETS is made absolute."""

import os
import pathlib

import pytest

REPO = pathlib.Path(__file__).resolve().parent.parent

# CI passes DLGPU_DATASETS relative to the repository (../shared/data); tests may run from elsewhere.
if os.environ.get("DLGPU_DATASETS") and not os.path.isabs(os.environ["DLGPU_DATASETS"]):
    os.environ["DLGPU_DATASETS"] = str((REPO / os.environ["DLGPU_DATASETS"]).resolve())

# Correctness tests compare against exact float32 references; keep the process on the CPU unless a
# test asks for the GPU explicitly.
os.environ.setdefault("DLGPU_DEVICE", "cpu")


def pytest_collection_modifyitems(config, items):
    from dlgpu.backend import device
    if device.gpu_available():
        return
    reason = f"needs a CUDA GPU: {device.gpu_unavailable_reason()}"
    skip = pytest.mark.skip(reason=reason)
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)
