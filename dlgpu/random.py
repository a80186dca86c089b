"""keras.random-style random tensors on the current device."""

from __future__ import annotations

import numpy as np

from dlgpu.autograd import Tensor
from dlgpu.backend import device as _device


def _generator(seed):
    from dlgpu.ops.nn import _generator as gen
    return gen(_device.get_device().xp, seed)


def normal(shape, mean=0.0, stddev=1.0, dtype="float32", seed=None):
    dev = _device.get_device()
    values = np.random.default_rng(seed).normal(mean, stddev, shape) if seed is not None else \
        _generator(None).normal(mean, stddev, shape) if dev.kind == "cpu" else None
    if values is None:  # pragma: no cover - GPU path
        values = dev.xp.random.normal(mean, stddev, shape)
    return Tensor(_device.to_device(np.asarray(values, dtype) if dev.kind == "cpu" else values.astype(dtype), dev))


def uniform(shape, minval=0.0, maxval=1.0, dtype="float32", seed=None):
    rng = np.random.default_rng(seed) if seed is not None else _generator(None) if _device.get_device().kind == "cpu" \
        else np.random.default_rng()
    return Tensor(_device.to_device(rng.uniform(minval, maxval, shape).astype(dtype), _device.get_device()))


def randint(shape, minval, maxval, dtype="int32", seed=None):
    rng = np.random.default_rng(seed)
    return Tensor(_device.to_device(rng.integers(minval, maxval, shape).astype(dtype), _device.get_device()))


def shuffle(x, axis=0, seed=None):
    from dlgpu import ops
    x = ops.convert_to_tensor(x)
    order = np.random.default_rng(seed).permutation(x.shape[axis])
    return ops.take(x, order, axis=axis)
