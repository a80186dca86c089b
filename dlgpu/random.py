"""keras.random: random tensors on the current device.

Values are drawn on the host from dlgpu's generator (reseeded by ``dlgpu.set_random_seed``), or from a
fresh generator when ``seed`` is given, so a seed gives the same values on the CPU and on a GPU.  An integer
seed gives the same values at every call; a SeedGenerator gives new ones at every call, in a repeatable order.
"""

from __future__ import annotations

import numpy as np

from dlgpu.autograd import Tensor
from dlgpu.backend import device as _device
from dlgpu.rematerialization import observed


class SeedGenerator:
    """keras.random.SeedGenerator: a seed that advances with each draw.  Pass it as ``seed=`` to the
    functions here: each call then gives new values, and the same sequence from run to run.

    ``next()`` returns the current state, ``[0, seed]`` then ``[0, seed + 1]`` … (uint32, as Keras).  The state
    lives on the host, where dlgpu.random draws, so advancing it costs no device transfer.  Without a seed,
    the seed is drawn from dlgpu's generator (so ``dlgpu.set_random_seed`` makes it reproducible)."""

    def __init__(self, seed=None, name=None, **kwargs):
        if kwargs:
            raise ValueError(f"SeedGenerator: unrecognized keyword argument(s) {sorted(kwargs)}")
        if seed is None:
            from dlgpu.ops.nn import _generator
            seed = int(_generator(np).integers(0, 2**31 - 1))
        elif isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
            raise ValueError(f"SeedGenerator: argument `seed` must be an integer. Received: seed={seed!r}")
        self._initial_seed = int(seed)
        self.name = name or "seed_generator"
        self.state = np.array([0, self._initial_seed % 2**32], dtype=np.uint32)

    def next(self, ordered=True):
        current = self.state.copy()
        self.state = self.state + np.array([0, 1], dtype=np.uint32)
        return current

    def get_config(self):
        return {"seed": self._initial_seed}

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def __repr__(self):
        return f"<SeedGenerator seed={self._initial_seed}, state={self.state.tolist()}>"


def _rng(seed):
    if isinstance(seed, SeedGenerator):
        return observed(np.random.default_rng([int(s) for s in seed.next()]))
    if seed is not None:
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
            raise ValueError(f"dlgpu.random: `seed` must be an integer, a dlgpu.random.SeedGenerator or None. "
                             f"Received: seed={seed!r}")
        return observed(np.random.default_rng(seed))
    from dlgpu.ops.nn import _generator
    return _generator(np)


def _on_device(values, dtype):
    array = np.asarray(values, dtype=dtype)
    return Tensor(_device.to_device(array, _device.get_device()), dtype=array.dtype)


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


def dropout(inputs, rate, noise_shape=None, seed=None):
    """Zero each entry with probability ``rate`` and scale the rest by 1/(1-rate), differentiably.  The mask
    is drawn on the host as every draw here is (a seed gives the same mask on the CPU and on a GPU), in
    ``noise_shape`` (None entries take the input's size) and broadcast over the rest, as Keras."""
    from dlgpu import ops
    from dlgpu.ops._core import array_module
    x = ops.convert_to_tensor(inputs)
    if not 0 <= rate < 1:
        raise ValueError(f"dlgpu.random.dropout: `rate` must be in [0, 1). Received: rate={rate!r}")
    if noise_shape is None:
        noise_shape = x.shape
    else:
        noise_shape = tuple(noise_shape)
        if len(noise_shape) != x.ndim:
            raise ValueError(f"dlgpu.random.dropout: `noise_shape` {noise_shape} must have one entry per axis "
                             f"of the input, of shape {tuple(x.shape)}")
        noise_shape = tuple(s if n is None else int(n) for s, n in zip(x.shape, noise_shape))
    keep = _rng(seed).uniform(0.0, 1.0, noise_shape) >= rate
    dtype = x.dtype if np.dtype(x.dtype).kind == "f" else "float32"
    mask = array_module(x.data).asarray((keep / (1.0 - rate)).astype(dtype))
    return ops.multiply(x, Tensor(mask))


def _parameter(value):
    """A distribution parameter (number, array or tensor, on any device) as a host float64 array."""
    return np.asarray(value.numpy() if isinstance(value, Tensor) else value, dtype=np.float64)


def _float_dtype(op, dtype):
    from dlgpu.autograd import FLOATX
    dtype = np.dtype(dtype or FLOATX)
    if dtype.kind != "f":
        raise ValueError(f"dlgpu.random.{op}: `dtype` must be a float dtype; received dtype={dtype.name}")
    return dtype


def categorical(logits, num_samples, dtype="int32", seed=None):
    """(batch, num_samples) class indices, each row drawn from softmax(logits[row]) (Gumbel-max on the host)."""
    scores = _parameter(logits)
    if scores.ndim != 2:
        raise ValueError(f"dlgpu.random.categorical: `logits` must be 2-D (batch, classes); received shape "
                         f"{scores.shape}")
    gumbel = _rng(seed).gumbel(size=(scores.shape[0], int(num_samples), scores.shape[1]))
    return _on_device(np.argmax(scores[:, None, :] + gumbel, axis=-1), dtype)


def gamma(shape, alpha, dtype=None, seed=None):
    """Gamma(alpha, scale 1) values; alpha broadcasts against ``shape``."""
    return _on_device(_rng(seed).gamma(_parameter(alpha), 1.0, shape), _float_dtype("gamma", dtype))


def beta(shape, alpha, beta, dtype=None, seed=None):
    """Beta(alpha, beta) values; the parameters broadcast against ``shape``."""
    return _on_device(_rng(seed).beta(_parameter(alpha), _parameter(beta), shape), _float_dtype("beta", dtype))


def binomial(shape, counts, probabilities, dtype=None, seed=None):
    """The number of successes in ``counts`` trials of probability ``probabilities``, as floats (Keras's
    dtype: floatx by default)."""
    trials = _parameter(counts)
    if (trials < 0).any() or (trials != np.round(trials)).any():
        raise ValueError(f"dlgpu.random.binomial: `counts` must be non-negative integers; received {trials}")
    draws = _rng(seed).binomial(trials.astype(np.int64), _parameter(probabilities), shape)
    return _on_device(draws, _float_dtype("binomial", dtype))
