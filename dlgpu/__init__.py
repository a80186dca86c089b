"""dlgpu: a GPU-accelerated deep-learning framework with a Keras-shaped API.

``import dlgpu as keras`` and Keras code runs: layers, models, compile/fit/evaluate/predict, losses,
optimizers, metrics, callbacks, GradientTape.  Arrays live on the CPU (numpy) or an NVIDIA GPU (CuPy with
our own CUDA kernels); see :func:`set_device`.
"""

import logging as _logging

from dlgpu.backend import host_memory as _host_memory

_host_memory.tune()

from dlgpu.autograd import GradientTape, Tensor, Variable, name_scope, no_grad  # noqa: E402
from dlgpu.backend.device import (Device, DeviceError, device, get_device, gpu_available, set_device, to_device,
                                  to_numpy)
from dlgpu import ops
from dlgpu.ops import set_random_seed, stop_gradient

__version__ = "0.1.0"


def _default_log_handler():
    """dlgpu says a few things worth seeing (which device `auto` chose and why) on stderr, unless the
    application configured logging itself."""
    logger = _logging.getLogger("dlgpu")
    if not logger.handlers and not _logging.getLogger().handlers:
        handler = _logging.StreamHandler()
        handler.setFormatter(_logging.Formatter("%(message)s"))
        logger.addHandler(handler)
        logger.setLevel(_logging.INFO)


_default_log_handler()

from dlgpu import activations, constraints, initializers, regularizers  # noqa: E402
from dlgpu import losses, metrics, optimizers  # noqa: E402
from dlgpu import callbacks, layers, models, datasets  # noqa: E402
from dlgpu.layers import Input, InputSpec, Layer  # noqa: E402
from dlgpu.layers.base import KerasTensor  # noqa: E402
from dlgpu.models import Model, Sequential  # noqa: E402
from dlgpu import data, preprocessing, saving, utils  # noqa: E402
from dlgpu import random  # noqa: E402
from dlgpu import applications, config, tree  # noqa: E402
from dlgpu import distillation  # noqa: E402
from dlgpu import dtype_policies, mixed_precision, quantizers  # noqa: E402
from dlgpu.quantizers import Quantizer  # noqa: E402
from dlgpu.dtype_policies import DTypePolicy, FloatDTypePolicy  # noqa: E402
# keras.Loss, keras.Metric, ...: the base classes at the top level, as Keras exports them
from dlgpu.initializers import Initializer  # noqa: E402
from dlgpu.losses import Loss  # noqa: E402
from dlgpu.metrics import Metric  # noqa: E402
from dlgpu.optimizers import Optimizer  # noqa: E402
from dlgpu.regularizers import Regularizer  # noqa: E402
from dlgpu.rematerialization import RematScope, remat  # noqa: E402
from dlgpu.scopes import StatelessScope, SymbolicScope  # noqa: E402
from dlgpu.operation import Function, Operation  # noqa: E402


def version():
    """dlgpu's version (keras.version() gives Keras's; dlgpu implements the Keras 3 API but is not Keras)."""
    return __version__


def __getattr__(name):
    """dlgpu.wrappers (scikit-learn), dlgpu.visualization (matplotlib) and dlgpu.export (keras.export: ONNX
    here) load on first use, so that ``import dlgpu`` needs none of their packages and pays for no import."""
    if name in ("wrappers", "visualization", "export"):
        import importlib
        return importlib.import_module(f"dlgpu.{name}")
    raise AttributeError(f"module 'dlgpu' has no attribute {name!r}")


__all__ = ["GradientTape", "Tensor", "Variable", "no_grad", "Device", "DeviceError", "device", "get_device",
           "gpu_available", "set_device", "to_device", "to_numpy", "ops", "stop_gradient", "set_random_seed",
           "activations", "constraints", "initializers", "regularizers", "losses", "metrics", "optimizers",
           "callbacks", "layers", "models", "data", "datasets", "saving", "random", "Input", "InputSpec", "Layer", "Model", "Sequential", "utils",
           "config", "tree", "KerasTensor", "name_scope", "DTypePolicy", "FloatDTypePolicy", "dtype_policies",
           "quantizers", "Quantizer",
           "mixed_precision", "applications", "Initializer", "Loss", "Metric", "Optimizer", "Regularizer", "version",
           "distillation", "wrappers", "visualization"]
