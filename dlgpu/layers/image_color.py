"""Colour transforms of NHWC images, with Keras 3's arguments and numbers: AutoContrast (deterministic, applied
in training and inference alike), and the augmentations Solarization, RandomInvert, RandomGrayscale and
RandomPosterization (only when training; see image_preprocessing.py for seeds and the training flag).

Pixel values are read in ``value_range`` and handled internally on Keras's 0..255 scale, as Keras does.  The
per-image draws happen on the host (the layer's generator or dlgpu's), so CPU and GPU see the same numbers;
the images themselves go through dlgpu.ops on the input's array module.
"""

from __future__ import annotations

import numpy as np

from dlgpu import ops
from dlgpu.layers.image_preprocessing import ImageLayer, RandomImageLayer
from dlgpu.ops._core import array_module
from dlgpu.ops.nn import _generator
from dlgpu.rematerialization import observed


def _number(v):
    return isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool)


def _value_range(layer, value_range):
    if not isinstance(value_range, (tuple, list)) or len(value_range) != 2 or not all(map(_number, value_range)):
        raise layer._error(f"The `value_range` argument should be a list of two numbers. Received: "
                           f"value_range={value_range!r}")
    return sorted(value_range)


def _to_255(images, value_range):
    low, high = (float(v) for v in value_range)
    if (low, high) == (0.0, 255.0):
        return images
    return ops.multiply(ops.divide(ops.subtract(images, low), high - low), 255.0)


def _from_255(images, value_range):
    low, high = (float(v) for v in value_range)
    if (low, high) == (0.0, 255.0):
        return images
    return ops.add(ops.multiply(ops.divide(images, 255.0), high - low), low)


def _per_image(images, values):
    """Host draws, one per image, as a (batch, 1, 1, 1) array of the images' module and dtype."""
    xp = array_module(images.data)
    return xp.asarray(np.asarray(values, dtype=images.dtype).reshape(-1, 1, 1, 1))


def _unit_factor(layer, name, factor):
    """Solarization's rule: a number f gives (0, f), a pair is sorted; all in [0, 1]."""
    message = (f"The `{name}` argument should be a number (or a list of two numbers) in the range [0, 1]. "
               f"Received: {name}={factor!r}")
    if isinstance(factor, (tuple, list)):
        if len(factor) != 2 or not all(map(_number, factor)) or any(f < 0 or f > 1 for f in factor):
            raise layer._error(message)
        return tuple(sorted(float(f) for f in factor))
    if not _number(factor) or factor < 0 or factor > 1:
        raise layer._error(message)
    return (0.0, float(factor))


def _bounded_factor(layer, factor, low, high):
    """Keras's base image-layer rule: a number f gives (max(-f, low), f), a pair is sorted."""
    message = (f"The `factor` argument should be a number (or a list of two numbers) in the range [{low}, {high}]. "
               f"Received: factor={factor!r}")
    if isinstance(factor, (tuple, list)):
        if len(factor) != 2 or not all(map(_number, factor)) or factor[0] > high or factor[1] < low:
            raise layer._error(message)
        return tuple(sorted(factor))
    if not _number(factor) or factor < low or factor > high:
        raise layer._error(message)
    return (max(-abs(factor), low), abs(factor))


class AutoContrast(ImageLayer):
    """Stretches each image's channels to the full range: (x - min) / (max - min) per image and channel,
    min and max over height and width; a flat channel (max == min) is left as it is."""

    def __init__(self, value_range=(0, 255), **kwargs):
        if kwargs.get("factor") is not None:
            raise ValueError(f"Layer AutoContrast does not take a `factor` argument. Received: "
                             f"factor={kwargs['factor']!r}")
        kwargs.pop("factor", None)
        super().__init__(**kwargs)
        self.value_range = _value_range(self, value_range)

    def call(self, inputs, training=True):
        if isinstance(inputs, dict):
            return self._call_dict(inputs, training)
        images = _to_255(inputs, self.value_range)
        low = ops.min(images, axis=(-3, -2), keepdims=True)
        high = ops.max(images, axis=(-3, -2), keepdims=True)
        # Keras divides by zero on a flat channel and puts the input back where the result is NaN; choosing
        # before dividing gives the same values without NaN in the gradients
        flat = ops.less_equal(high, low)
        spread = ops.where(flat, 1.0, ops.subtract(high, low))
        out = ops.clip(ops.multiply(ops.subtract(images, low), ops.divide(255.0, spread)), 0.0, 255.0)
        return ops.where(flat, inputs, _from_255(out, self.value_range))

    def get_config(self):
        return {**super().get_config(), "value_range": self.value_range}


class Solarization(RandomImageLayer):
    """x + a, clipped to [0, 255], then inverted (255 - x) where it is at or above a threshold t; a drawn from
    [addition_factor[0], addition_factor[1] * 255] and t from [threshold_factor[0], threshold_factor[1] * 255]
    per image (Keras's bounds, lower ends not scaled).  The defaults (0, 0) invert every pixel."""

    def __init__(self, addition_factor=0.0, threshold_factor=0.0, value_range=(0, 255), seed=None, **kwargs):
        super().__init__(seed=seed, **kwargs)
        self.addition_factor = _unit_factor(self, "addition_factor", addition_factor)
        self.threshold_factor = _unit_factor(self, "threshold_factor", threshold_factor)
        self.value_range = _value_range(self, value_range)

    def _augment(self, images):
        batch = images.shape[0]
        additions = self._uniform(self.addition_factor[0], self.addition_factor[1] * 255, batch)
        thresholds = self._uniform(self.threshold_factor[0], self.threshold_factor[1] * 255, batch)
        x = ops.clip(ops.add(_to_255(images, self.value_range), _per_image(images, additions)), 0.0, 255.0)
        x = ops.where(x < _per_image(images, thresholds), x, ops.subtract(255.0, x))
        return _from_255(x, self.value_range)

    def get_config(self):
        return {**super().get_config(), "value_range": self.value_range, "addition_factor": self.addition_factor,
                "threshold_factor": self.threshold_factor, "seed": self.seed}


class RandomInvert(RandomImageLayer):
    """value_range[1] - x for each image with probability p, p itself drawn from factor (a number f gives
    [0, f]; pass (1, 1) to invert every image)."""

    def __init__(self, factor=1.0, value_range=(0, 255), seed=None, data_format=None, **kwargs):
        super().__init__(seed=seed, data_format=data_format, **kwargs)
        self.factor = _bounded_factor(self, factor, 0, 1)
        _value_range(self, value_range)
        self.value_range = value_range  # as given: Keras's RandomInvert does not sort it

    def _augment(self, images):
        batch = images.shape[0]
        probability = self._uniform(self.factor[0], self.factor[1], batch)
        invert = self._uniform(0.0, 1.0, batch) < probability
        xp = array_module(images.data)
        return ops.where(xp.asarray(invert.reshape(-1, 1, 1, 1)), ops.subtract(float(self.value_range[1]), images),
                         images)

    def get_config(self):
        return {**super().get_config(), "factor": self.factor, "value_range": self.value_range, "seed": self.seed}


class RandomGrayscale(RandomImageLayer):
    """Each image replaced, with probability ``factor``, by its luma (0.2989 R + 0.587 G + 0.114 B) in every
    channel; one-channel images stay as they are."""

    def __init__(self, factor=0.5, data_format=None, seed=None, **kwargs):
        super().__init__(seed=seed, data_format=data_format, **kwargs)
        if not _number(factor) or factor < 0 or factor > 1:
            raise self._error(f"`factor` should be between 0 and 1. Received: factor={factor!r}")
        self.factor = factor

    def _augment(self, images):
        channels = images.shape[-1]
        if channels not in (1, 3):
            raise self._error(f"expected 3 (RGB) or 1 (grayscale) channels; received images of shape "
                              f"{tuple(images.shape)}")
        apply = self._uniform(0.0, 1.0, images.shape[0]) < self.factor
        if channels == 1:
            return images
        xp = array_module(images.data)
        gray = ops.image.rgb_to_grayscale(images, "channels_last")  # (batch, h, w, 1)
        return ops.where(xp.asarray(apply.reshape(-1, 1, 1, 1)), ops.broadcast_to(gray, images.shape), images)

    def get_config(self):
        # Keras's RandomGrayscale does not write its seed; dlgpu does, so that a round trip keeps it
        return {**super().get_config(), "factor": self.factor, "seed": self.seed}


class RandomPosterization(RandomImageLayer):
    """Keeps the top b bits of each 8-bit pixel value (on the 0..255 scale), b an integer drawn per image from
    [factor[0], factor[1]) (a number f gives [1, f); a pair (b, b) always keeps b bits).  The output is
    piecewise constant in the input: its gradient is zero."""

    _MAX_BITS = 8

    def __init__(self, factor, value_range=(0, 255), data_format=None, seed=None, **kwargs):
        super().__init__(seed=seed, data_format=data_format, **kwargs)
        self.factor = _bounded_factor(self, factor, 1, self._MAX_BITS)
        self.value_range = _value_range(self, value_range)

    def _augment(self, images):
        batch = images.shape[0]
        low, high = int(self.factor[0]), int(self.factor[1])
        if low != high:
            bits = observed(self._rng or _generator(np)).integers(low, high, size=batch)
        else:
            bits = np.full(batch, low)
        step = _per_image(images, 2.0 ** (self._MAX_BITS - bits))
        # the uint8 cast Keras makes (truncation of values in [0, 255]), then the shifts: floor(v / step) * step
        x = ops.clip(_to_255(images, self.value_range), 0.0, 255.0)
        x = ops.multiply(ops.floor(ops.divide(ops.stop_gradient(x), step)), step)
        return _from_255(x, self.value_range)

    def get_config(self):
        return {**super().get_config(), "factor": self.factor, "value_range": self.value_range, "seed": self.seed}
