"""The paths a benchmark runs on, each with whether it is available here and, if not, why.

    dlgpu-cpu           dlgpu on numpy (dlgpu.backend.cpu)
    numpy-handwritten   a hand-written numpy MLP training step (bench/reference_numpy.py): the floor
    torch-cpu           PyTorch on the CPU: the yardstick for dlgpu-cpu
    keras-cpu           Keras 3 (whatever backend it is configured with), when installed
    dlgpu-gpu-kernels   dlgpu on CuPy with our CUDA kernels (dlgpu.backend.gpu, the default)
    dlgpu-gpu-generic   the same calls with DLGPU_KERNELS=generic: plain CuPy, our kernels off
    torch-gpu           PyTorch on the same GPU (TF32 off): the yardstick for both GPU paths

A path that cannot run is kept in the list with its reason, and every result row for it says so.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass, field

ORDER = ("dlgpu-cpu", "numpy-handwritten", "torch-cpu", "keras-cpu",
         "dlgpu-gpu-kernels", "dlgpu-gpu-generic", "torch-gpu")
# The yardstick a path is compared with ("x PyTorch"), by device.
YARDSTICK = {"cpu": "torch-cpu", "gpu": "torch-gpu"}


@dataclass
class Path:
    name: str
    framework: str  # "dlgpu", "numpy", "torch", "keras"
    device: str     # "cpu" or "gpu"
    description: str
    available: bool = False
    reason: str | None = None
    _sync: object = field(default=None, repr=False)
    _events: object = field(default=None, repr=False)

    def sync(self):
        if self._sync is not None:
            self._sync()

    def events(self):
        """(start, end, elapsed_s) CUDA events for GPU paths, None for CPU paths."""
        return self._events() if self._events is not None else None

    @contextlib.contextmanager
    def activate(self):
        """Run inside: dlgpu's device and DLGPU_KERNELS set for this path, restored afterwards."""
        old = os.environ.get("DLGPU_KERNELS")
        if self.name == "dlgpu-gpu-generic":
            os.environ["DLGPU_KERNELS"] = "generic"
        elif self.name == "dlgpu-gpu-kernels":
            os.environ.pop("DLGPU_KERNELS", None)
        try:
            if self.framework == "dlgpu":
                import dlgpu
                with dlgpu.device(self.device):
                    yield self
            else:
                yield self
        finally:
            if old is None:
                os.environ.pop("DLGPU_KERNELS", None)
            else:
                os.environ["DLGPU_KERNELS"] = old

    def as_dict(self):
        return {"name": self.name, "framework": self.framework, "device": self.device,
                "description": self.description, "available": self.available, "reason": self.reason}


def _cupy_timing():
    import cupy

    def events():
        return cupy.cuda.Event(), cupy.cuda.Event(), lambda s, e: cupy.cuda.get_elapsed_time(s, e) / 1e3
    return cupy.cuda.Device().synchronize, events


def _torch_timing():
    import torch

    def events():
        return (torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True),
                lambda s, e: s.elapsed_time(e) / 1e3)
    return torch.cuda.synchronize, events


def _probe_dlgpu_gpu(kernels):
    from dlgpu.backend import device
    if not device.gpu_available():
        return device.gpu_unavailable_reason()
    try:
        import dlgpu.backend.gpu  # noqa: F401
    except Exception as exc:
        return f"dlgpu.backend.gpu does not import ({type(exc).__name__}: {exc})"
    if kernels:
        try:
            from dlgpu.backend.kernels import gpu_library
            gpu_library()
        except Exception as exc:
            return f"our kernel library does not load ({type(exc).__name__}: {exc})"
    return None


def _probe_torch(gpu):
    try:
        import torch
    except Exception as exc:
        return f"PyTorch is not installed ({exc}); pip install torch==2.13.0"
    if gpu and not torch.cuda.is_available():
        return f"PyTorch {torch.__version__} sees no CUDA GPU (CPU build or no driver)"
    return None


def _probe_keras():
    try:
        import keras
    except Exception as exc:
        return f"Keras is not installed ({type(exc).__name__}); optional: pip install keras"
    return None if hasattr(keras, "Sequential") else f"keras {getattr(keras, '__version__', '?')} has no Sequential"


def discover(devices=("cpu", "gpu"), only=None):
    """Every path in ORDER, each marked available or not with the reason; ``only`` narrows by name."""
    specs = [
        ("dlgpu-cpu", "dlgpu", "cpu", "dlgpu on numpy", lambda: None),
        ("numpy-handwritten", "numpy", "cpu", "hand-written numpy MLP step (the floor; MLP train only)", lambda: None),
        ("torch-cpu", "torch", "cpu", "PyTorch eager on the CPU", lambda: _probe_torch(False)),
        ("keras-cpu", "keras", "cpu", "Keras 3 on its configured backend (CPU)", _probe_keras),
        ("dlgpu-gpu-kernels", "dlgpu", "gpu", "dlgpu on CuPy with our CUDA kernels", lambda: _probe_dlgpu_gpu(True)),
        ("dlgpu-gpu-generic", "dlgpu", "gpu", "dlgpu on plain CuPy (DLGPU_KERNELS=generic)",
         lambda: _probe_dlgpu_gpu(False)),
        ("torch-gpu", "torch", "gpu", "PyTorch eager on the GPU (TF32 off)", lambda: _probe_torch(True)),
    ]
    paths = []
    for name, framework, dev, description, probe in specs:
        path = Path(name, framework, dev, description)
        if dev not in devices:
            path.reason = f"not requested (--device {','.join(devices)})"
        elif only and name not in only:
            path.reason = "not requested (--paths)"
        else:
            try:
                path.reason = probe()
            except Exception as exc:  # a probe must never take the run down
                path.reason = f"probe failed: {type(exc).__name__}: {exc}"
            path.available = path.reason is None
        if path.available and dev == "gpu":
            if framework == "torch":
                import torch
                torch.backends.cuda.matmul.allow_tf32 = False
                torch.backends.cudnn.allow_tf32 = False
                path._sync, path._events = _torch_timing()
            else:
                path._sync, path._events = _cupy_timing()
        paths.append(path)
    return paths
