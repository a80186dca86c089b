"""Shared fixtures for the kernel tests.

``kb`` is the backend the tests run on: by default our kernels through the SIMT emulator
(``KernelLibrary(EmuModule, numpy)``); tests/kernels/test_gpu_kernels.py overrides it with
``KernelLibrary(cupy.RawModule, cupy)``.  In both, arrays the wrappers allocate come back filled
with NaN (``NanFilled``), so a kernel that forgets to write an element fails the comparison.
Tests marked ``gpu`` are skipped here, with the reason, when CuPy sees no GPU.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from dlgpu.backend.kernels import KernelLibrary
from dlgpu.testing.emu import EmuModule

HERE = Path(__file__).resolve().parent


class NanFilled:
    """The array module ``xp`` whose ``empty``/``empty_like`` return NaN-filled (float) arrays."""

    def __init__(self, xp):
        self._xp = xp
        self.__name__ = xp.__name__

    def __getattr__(self, name):
        return getattr(self._xp, name)

    def _fill(self, a):
        if a.dtype.kind == "f":
            a.fill(np.nan)
        elif a.dtype.kind in "iu":
            a.fill(-1)
        return a

    def empty(self, *args, **kwargs):
        return self._fill(self._xp.empty(*args, **kwargs))

    def empty_like(self, *args, **kwargs):
        return self._fill(self._xp.empty_like(*args, **kwargs))


class Backend:
    """A kernel library plus conversions between numpy and its array module."""

    def __init__(self, lib, name):
        self.lib = lib
        self.name = name
        self.xp = lib.xp

    def asarray(self, a):
        return self.xp.asarray(a)

    def asnumpy(self, a):
        if a is None:
            return None
        return a.get() if hasattr(a, "get") and not isinstance(a, np.ndarray) else np.asarray(a)


_gpu_reason: list = []


def gpu_unavailable_reason():
    """None when a CUDA GPU is usable through CuPy, else why not."""
    if not _gpu_reason:
        try:
            import cupy
        except Exception as exc:  # not installed or broken
            _gpu_reason.append(f"CuPy is not importable ({exc})")
        else:
            try:
                ok = cupy.cuda.is_available()
            except Exception as exc:
                ok, why = False, f"CuPy could not query CUDA ({exc})"
            else:
                why = "no CUDA GPU here (cupy.cuda.is_available() is False)"
            _gpu_reason.append(None if ok else why)
    return _gpu_reason[0]


def pytest_collection_modifyitems(config, items):
    reason = None
    for item in items:
        if HERE not in Path(str(item.fspath)).resolve().parents and Path(str(item.fspath)).resolve().parent != HERE:
            continue
        if item.get_closest_marker("gpu") is None:
            continue
        if reason is None:
            reason = gpu_unavailable_reason() or ""
        if reason:
            item.add_marker(pytest.mark.skip(reason=reason))


def make_backend(module_factory, xp, name):
    """A Backend over KernelLibrary(module_factory, xp) whose allocations are NaN-filled."""
    return Backend(KernelLibrary(module_factory, NanFilled(xp)), name)


@pytest.fixture(scope="session")
def backend_factory():
    return make_backend


@pytest.fixture(scope="session")
def emu_backend():
    return make_backend(EmuModule, np, "emu")


@pytest.fixture
def kb(emu_backend):
    return emu_backend


@pytest.fixture
def rng():
    return np.random.default_rng(1234)
