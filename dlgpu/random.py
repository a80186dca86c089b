"""keras.random: random tensors on the current device.

Values are drawn on the host from dlgpu's generator (reseeded by ``dlgpu.set_random_seed``), or from a
fresh generator when ``seed`` is given, so a seed gives the same values on the CPU and on a GPU.
"""

from __future__ import annotations

import numpy as np

from dlgpu.autograd import Tensor
from dlgpu.backend import device as _device


def _rng(seed):
    if seed is not None:
        return np.random.default_rng(seed)
    from dlgpu.ops.nn import _generator
    return _generator(np)


def _on_device(values, dtype):
    return Tensor(_device.to_device(np.asarray(values, dtype=dtype), _device.get_device()))


def normal(shape, mean=0.0, stddev=1.0, dtype="float32", seed=None):
    return _on_device(_rng(seed).normal(mean, stddev, shape), dtype)


def uniform(shape, minval=0.0, maxval=1.0, dtype="float32", seed=None):
    return _on_device(_rng(seed).uniform(minval, maxval, shape), dtype)


def truncated_normal(shape, mean=0.0, stddev=1.0, dtype="float32", seed=None):
    """Normal values redrawn until they lie within two standard deviations of the mean (as Keras)."""
    rng = _rng(seed)
    values = rng.normal(0.0, 1.0, shape)
    outside = np.abs(values) > 2
    while outside.any():
        values[outside] = rng.normal(0.0, 1.0, int(outside.sum()))
        outside = np.abs(values) > 2
    return _on_device(mean + stddev * values, dtype)


def randint(shape, minval, maxval, dtype="int32", seed=None):
    return _on_device(_rng(seed).integers(minval, maxval, shape), dtype)


def shuffle(x, axis=0, seed=None):
    """``x`` with its entries along ``axis`` in a random order."""
    from dlgpu import ops
    x = ops.convert_to_tensor(x)
    return ops.take(x, _rng(seed).permutation(x.shape[axis]), axis=axis)
