"""Where arrays live: the CPU (numpy) or an NVIDIA GPU (CuPy).

The current device is chosen, in order, by ``with dlgpu.device(...)``, ``dlgpu.set_device(...)`` and
the ``DLGPU_DEVICE`` environment variable; the default is ``auto``: the GPU when CuPy imports and sees
one, else the CPU, with one log line saying why.  Arrays never move between devices silently:
``to_device``/``to_numpy`` are the explicit transfers.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading

import numpy as np

logger = logging.getLogger("dlgpu")

_INSTALL_HINT = "install CuPy for your CUDA version: pip install 'dlgpu[gpu]' (CUDA 12) or 'dlgpu[cuda13]' (CUDA 13)"


class DeviceError(RuntimeError):
    """A device was asked for that is not usable here, or two devices were mixed."""


class Device:
    """A place arrays live: ``kind`` is "cpu" or "gpu"; ``xp`` is numpy or cupy."""

    __slots__ = ("kind", "index", "xp", "_backend")

    def __init__(self, kind, index=0, xp=np):
        self.kind = kind
        self.index = index
        self.xp = xp
        self._backend = None

    @property
    def backend(self):
        """The module of primitives for this device (dlgpu.backend.cpu or .gpu), imported lazily."""
        if self._backend is None:
            if self.kind == "cpu":
                from dlgpu.backend import cpu as backend
            else:
                from dlgpu.backend import gpu as backend
            self._backend = backend
        return self._backend

    def __repr__(self):
        return "Device('cpu')" if self.kind == "cpu" else f"Device('gpu:{self.index}')"

    def __str__(self):
        return "cpu" if self.kind == "cpu" else f"gpu:{self.index}"

    def __eq__(self, other):
        return isinstance(other, Device) and (self.kind, self.index) == (other.kind, other.index)

    def __hash__(self):
        return hash((self.kind, self.index))


CPU = Device("cpu")

# CuPy is probed once per process; the reason it is unusable is kept for error messages.
_gpu_probe = None  # (cupy module or None, reason or None)


def _probe_gpu():
    global _gpu_probe
    if _gpu_probe is None:
        try:
            import cupy
        except ImportError as exc:  # not installed, or a broken install
            _gpu_probe = (None, f"CuPy is not installed ({exc}); {_INSTALL_HINT}")
        else:
            try:
                available = cupy.cuda.is_available()
            except Exception as exc:  # pragma: no cover - depends on the driver
                available, why = False, f"CuPy could not query CUDA ({exc})"
            else:
                why = "CuPy is installed but sees no CUDA GPU (no device or no driver)"
            _gpu_probe = (cupy, None) if available else (None, why)
    return _gpu_probe


def gpu_available():
    """Whether a CUDA GPU is usable through CuPy in this process."""
    return _probe_gpu()[0] is not None


def gpu_unavailable_reason():
    """Why the GPU is not usable (None when it is)."""
    return _probe_gpu()[1]


_gpu_devices = {}


def _gpu_device(index=0):
    cupy, why = _probe_gpu()
    if cupy is None:
        raise DeviceError(f"dlgpu: device 'gpu' was requested but {why}.")
    count = cupy.cuda.runtime.getDeviceCount()
    if not 0 <= index < count:
        raise DeviceError(f"dlgpu: device 'gpu:{index}' was requested but only {count} GPU(s) are visible.")
    if index not in _gpu_devices:
        _gpu_devices[index] = Device("gpu", index, cupy)
    return _gpu_devices[index]


def resolve(spec) -> Device:
    """Turn "cpu", "gpu", "gpu:1", "cuda", "auto" or a Device into a Device."""
    if isinstance(spec, Device):
        return spec
    if not isinstance(spec, str):
        raise TypeError(f"dlgpu: a device is 'cpu', 'gpu', 'gpu:N' or 'auto'. Received: {spec!r}")
    name = spec.strip().lower()
    if name == "cpu":
        return CPU
    if name == "auto":
        cupy, why = _probe_gpu()
        if cupy is None:
            logger.info("dlgpu: using the CPU (numpy) because %s.", why)
            return CPU
        device = _gpu_device(0)
        logger.info("dlgpu: using %s (%s) because CuPy sees a CUDA GPU.", device, _gpu_name(cupy))
        return device
    for prefix in ("gpu", "cuda"):
        if name == prefix:
            return _gpu_device(0)
        if name.startswith(prefix + ":") and name[len(prefix) + 1:].isdigit():
            return _gpu_device(int(name[len(prefix) + 1:]))
    raise ValueError(f"dlgpu: unknown device {spec!r}; expected 'cpu', 'gpu', 'gpu:N' or 'auto'.")


def _gpu_name(cupy):
    try:
        return cupy.cuda.runtime.getDeviceProperties(0)["name"].decode()
    except Exception:  # pragma: no cover - cosmetic only
        return "unknown GPU"


class _State(threading.local):
    def __init__(self):
        self.stack = []


_state = _State()
_default = None


def _default_device():
    global _default
    if _default is None:
        _default = resolve(os.environ.get("DLGPU_DEVICE", "auto"))
    return _default


def get_device() -> Device:
    """The device new tensors and models are placed on."""
    return _state.stack[-1] if _state.stack else _default_device()


def set_device(spec) -> Device:
    """Set the process-wide default device: "cpu", "gpu", "gpu:N" or "auto"."""
    global _default
    _default = resolve(spec)
    return _default


@contextlib.contextmanager
def device(spec):
    """``with dlgpu.device("cpu"):`` places what is created inside on that device."""
    dev = resolve(spec)
    _state.stack.append(dev)
    try:
        yield dev
    finally:
        _state.stack.pop()


def device_of_array(array) -> Device:
    """The Device an ndarray lives on (numpy → CPU, cupy → its GPU)."""
    if isinstance(array, np.ndarray) or np.isscalar(array):
        return CPU
    mod = type(array).__module__
    if mod.startswith("cupy"):
        return _gpu_device(array.device.id)
    raise TypeError(f"dlgpu: expected a numpy or cupy array, received {type(array).__name__}")


def foreign_device(array, reference):
    """The device ``array`` lives on when that is not where ``reference`` lives, else None.  Arrays of the same
    type cost one type comparison, so a per-step check (every gradient of an update) stays cheap."""
    if type(array) is type(reference):
        return None
    where = device_of_array(array)
    return None if where == device_of_array(reference) else where


def to_device(array, dev) -> object:
    """Explicitly copy an array to ``dev`` (numpy ↔ cupy)."""
    dev = resolve(dev)
    if dev.kind == "cpu":
        return to_numpy(array)
    if isinstance(array, np.ndarray) or np.isscalar(array):
        with dev.xp.cuda.Device(dev.index):
            return dev.xp.asarray(array)
    if device_of_array(array) == dev:
        return array
    with dev.xp.cuda.Device(dev.index):
        return dev.xp.asarray(array)


def to_numpy(array):
    """A numpy copy (or view, on the CPU) of a numpy or cupy array."""
    if isinstance(array, np.ndarray):
        return array
    if type(array).__module__.startswith("cupy"):
        return array.get()
    return np.asarray(array)
