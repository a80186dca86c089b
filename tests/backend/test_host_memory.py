"""The host allocator tuning applied at import: it can be switched off, and it reports what it did."""

import sys

import pytest

from dlgpu.backend import host_memory


def test_switched_off_by_the_environment(monkeypatch):
    monkeypatch.setenv("DLGPU_HOST_MALLOC", "default")
    assert host_memory.tune() is False


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="mallopt is glibc's")
def test_glibc_takes_the_settings(monkeypatch):
    monkeypatch.delenv("DLGPU_HOST_MALLOC", raising=False)
    assert host_memory.tune() is True
