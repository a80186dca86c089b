"""More colour layers of NHWC images, with Keras 3's arguments and arithmetic: Equalization (histogram
equalization per image and channel), and the augmentations RandomSharpness, RandomSaturation, RandomHue,
RandomColorDegeneration and RandomColorJitter.  Like the layers of image_color.py they act only when training
(Keras's Equalization too: its transform checks the training flag), draw their per-image numbers on the host
and compute on the input's array module.

Keras's quirks are kept where they change numbers: RandomSaturation multiplies the HSV saturation without
rescaling the image and clips it to ``value_range``; RandomSaturation and RandomColorDegeneration take the
base factor rule with bounds [-1, 1] (a number f gives [-f, f]); RandomSharpness blurs with zero padding.
"""

from __future__ import annotations

import numpy as np

from dlgpu import ops
from dlgpu.layers.image_augmentation import RandomBrightness, RandomContrast
from dlgpu.layers.image_color import _bounded_factor, _per_image, _value_range
from dlgpu.layers.image_preprocessing import ImageLayer, RandomImageLayer
from dlgpu.ops._core import array_module
from dlgpu.ops.image_filters import hsv_planes_to_rgb, rgb_planes_to_hsv

# the HSV formulas are ops.image's (rgb_to_hsv / hsv_to_rgb), here on channels-last planes
_rgb_to_hsv, _hsv_to_rgb = rgb_planes_to_hsv, hsv_planes_to_rgb

_EPSILON = 1e-7  # keras.config.epsilon(), in RandomSaturation's s / (1 - s + eps)


def _channel(x, i):
    return ops._getitem(x, (Ellipsis, i))


def _check_rgb(layer, images):
    if images.shape[-1] != 3:
        raise layer._error(f"expected RGB images (3 channels); received images of shape {tuple(images.shape)}")


def _scale_like_keras(x, source, target):
    """Keras's _scale_values (Equalization): x * scale + offset, the two computed in Python floats."""
    scale = (target[1] - target[0]) / (source[1] - source[0])
    return ops.add(ops.multiply(x, np.float32(scale)), np.float32(target[0] - source[0] * scale))


def _transform_value_range(x, source, target):
    """Keras's base _transform_value_range: through [0, 1]."""
    if source[0] == target[0] and source[1] == target[1]:
        return x
    x = ops.divide(ops.subtract(x, float(source[0])), float(source[1] - source[0]))
    return ops.add(ops.multiply(x, float(target[1] - target[0])), float(target[0]))


class Equalization(ImageLayer):
    """Histogram equalization per channel: pixel values (on the 0..255 scale) binned into ``bins`` bins,
    each bin mapped to round(255 * (cdf - cdf_min) / (n - cdf_min)); a channel whose values fall in one bin
    is left as it is.  As in Keras, one histogram per channel covers the whole batch (not each image).  Applied only when training, as in Keras (predict leaves images as
    they are).  The output is piecewise constant in the input: its gradient is zero."""

    def __init__(self, value_range=(0, 255), bins=256, data_format=None, **kwargs):
        super().__init__(data_format=data_format, **kwargs)
        if not isinstance(bins, (int, np.integer)) or isinstance(bins, bool) or bins < 1:
            raise self._error(f"`bins` must be a positive integer. Received: bins={bins!r}")
        self.bins = int(bins)
        self.value_range = _value_range(self, value_range)

    def call(self, inputs, training=True):
        if isinstance(inputs, dict):
            return self._call_dict(inputs, training)
        if training is None:
            training = True
        if not training:
            return inputs
        xp = array_module(inputs.data)
        bins = self.bins
        # Keras compares the sorted list with the tuple (0, 255), never equal: it always rescales
        x = _scale_like_keras(inputs, self.value_range, (0, 255))
        v = ops.stop_gradient(x).data
        channels = v.shape[-1]
        # the histogram's bins: Keras truncates, then clips; the lookup's index: Keras clips, then truncates
        hist_index = xp.clip((v * np.float32(bins - 1) / np.float32(255)).astype(np.int32), 0, bins - 1)
        lut_index = xp.clip(v / np.float32(255) * np.float32(bins - 1), 0, bins - 1).astype(np.int32)
        # one bincount for every channel, each channel's bins in its own block
        offsets = xp.arange(channels) * bins
        hist = xp.bincount((hist_index + offsets).ravel(), minlength=channels * bins).reshape(channels, bins)
        cdf = xp.cumsum(hist, axis=-1)
        cdf_min = xp.min(xp.where(cdf > 0, cdf, cdf[:, -1:]), axis=-1, keepdims=True)
        denominator = cdf[:, -1:] - cdf_min
        denominator = xp.where(denominator == 0, 1, denominator)
        lut = xp.clip(xp.round(((cdf - cdf_min) * 255).astype(np.float32) / denominator.astype(np.float32)), 0, 255)
        equalized = lut.astype(v.dtype).reshape(-1)[lut_index + offsets]
        keep = xp.count_nonzero(hist, axis=-1) <= 1  # (channels,)
        out = ops.where(xp.asarray(keep), x, ops.convert_to_tensor(equalized))
        return _scale_like_keras(out, (0, 255), self.value_range)

    def get_config(self):
        return {**super().get_config(), "bins": self.bins, "value_range": self.value_range}


class RandomSharpness(RandomImageLayer):
    """x + (1 - 2s) * (blur(x) - x), clipped to value_range, s drawn per image from factor (a number f gives
    [0, f]; s = 0.5 leaves images as they are, 0 blurs, 1 sharpens).  The blur is Keras's 3x3 kernel
    (1/13 around, 5/13 in the centre) with zero padding."""

    def __init__(self, factor, value_range=(0, 255), data_format=None, seed=None, **kwargs):
        super().__init__(seed=seed, data_format=data_format, **kwargs)
        self.factor = _bounded_factor(self, factor, 0, 1)
        self.value_range = _value_range(self, value_range)

    def _augment(self, images):
        xp = array_module(images.data)
        sharpness = _per_image(images, np.float32(self._uniform(self.factor[0], self.factor[1], images.shape[0]))
                               * np.float32(2))
        a, b = 1.0 / 13.0, 5.0 / 13.0
        kernel = np.array([[a, a, a], [a, b, a], [a, a, a]], dtype=images.dtype).reshape(3, 3, 1, 1)
        kernel = xp.asarray(np.tile(kernel, (1, 1, images.shape[-1], 1)))
        smoothed = ops.depthwise_conv(images, kernel, strides=1, padding="same")
        out = ops.add(images, ops.multiply(ops.subtract(1.0, sharpness), ops.subtract(smoothed, images)))
        return ops.clip(out, float(self.value_range[0]), float(self.value_range[1]))

    def get_config(self):
        return {**super().get_config(), "factor": self.factor, "value_range": self.value_range, "seed": self.seed}


class RandomSaturation(RandomImageLayer):
    """The HSV saturation multiplied by s / (1 - s) per image, s drawn from factor (Keras's base rule: a
    number f gives [-f, f]; s = 0.5 leaves images as they are, 0 or less greys them, 1 saturates), the
    saturation clipped to value_range as Keras does."""

    def __init__(self, factor, value_range=(0, 255), data_format=None, seed=None, **kwargs):
        super().__init__(seed=seed, data_format=data_format, **kwargs)
        self.factor = _bounded_factor(self, factor, -1, 1)
        self.value_range = _value_range(self, value_range)

    def _augment(self, images):
        _check_rgb(self, images)
        s = np.float32(self._uniform(self.factor[0], self.factor[1], images.shape[0]))
        scale = _per_image(images, s / (np.float32(1) - s + np.float32(_EPSILON)))[..., 0]
        hue, saturation, value = _rgb_to_hsv(images)
        saturation = ops.clip(ops.multiply(saturation, scale), float(self.value_range[0]),
                              float(self.value_range[1]))
        return _hsv_to_rgb(hue, saturation, value)

    def get_config(self):
        return {**super().get_config(), "factor": self.factor, "value_range": self.value_range, "seed": self.seed}


class RandomHue(RandomImageLayer):
    """The HSV hue shifted by ±h / 2 per image (wrapped to [0, 1]), h drawn from factor (a number f gives
    [0, f]) and the sign by a fair coin; images are taken to [0, 1] from value_range and back."""

    def __init__(self, factor, value_range=(0, 255), data_format=None, seed=None, **kwargs):
        super().__init__(seed=seed, data_format=data_format, **kwargs)
        self.factor = _bounded_factor(self, factor, 0, 1)
        _value_range(self, value_range)
        self.value_range = value_range  # as given: Keras's RandomHue does not sort it

    def _augment(self, images):
        _check_rgb(self, images)
        batch = images.shape[0]
        sign = np.where(self._uniform(0.0, 1.0, batch) > 0.5, -1.0, 1.0)
        shift = _per_image(images, np.float32(sign * self._uniform(self.factor[0], self.factor[1], batch)) *
                           np.float32(0.5))[..., 0]
        x = _transform_value_range(images, self.value_range, (0, 1))
        hue, saturation, value = _rgb_to_hsv(x)
        hue = ops.add(hue, shift)
        hue = ops.where(ops.greater(hue, 1.0), ops.subtract(hue, 1.0), hue)
        hue = ops.where(ops.less(hue, 0.0), ops.add(hue, 1.0), hue)
        x = ops.clip(_hsv_to_rgb(hue, saturation, value), 0.0, 1.0)
        return _transform_value_range(x, (0, 1), self.value_range)

    def get_config(self):
        return {**super().get_config(), "factor": self.factor, "value_range": self.value_range, "seed": self.seed}


class RandomColorDegeneration(RandomImageLayer):
    """x + d * (luma(x) - x), clipped to value_range, d drawn per image from factor (Keras's base rule: a
    number f gives [-f, f]; 0 leaves images as they are, 1 greys them).  A one-channel image is its own luma,
    as in Keras: it is only clipped (so RandAugment, which picks this layer at random, takes grayscale)."""

    def __init__(self, factor, value_range=(0, 255), data_format=None, seed=None, **kwargs):
        super().__init__(seed=seed, data_format=data_format, **kwargs)
        self.factor = _bounded_factor(self, factor, -1, 1)
        self.value_range = _value_range(self, value_range)

    def _augment(self, images):
        if images.shape[-1] not in (1, 3):
            raise self._error(f"expected RGB images (3 channels) or grayscale (1 channel); received images of "
                              f"shape {tuple(images.shape)}")
        degree = _per_image(images, self._uniform(self.factor[0], self.factor[1], images.shape[0]))
        # a one-channel image is its own luma
        gray = images if images.shape[-1] == 1 else ops.image.rgb_to_grayscale(images, "channels_last")
        out = ops.add(images, ops.multiply(degree, ops.subtract(gray, images)))
        return ops.clip(out, float(self.value_range[0]), float(self.value_range[1]))

    def compute_output_shape(self, input_shape):
        if input_shape[-1] not in (None, 1, 3):
            raise self._error(f"expected RGB images (3 channels) or grayscale (1 channel); received "
                              f"input_shape={tuple(input_shape)}")
        return input_shape

    def get_config(self):
        return {**super().get_config(), "factor": self.factor, "value_range": self.value_range, "seed": self.seed}


class RandomColorJitter(RandomImageLayer):
    """RandomBrightness, RandomContrast, RandomSaturation and RandomHue in that order, each present when its
    factor is given (each with the layer's seed, as in Keras)."""

    def __init__(self, value_range=(0, 255), brightness_factor=None, contrast_factor=None, saturation_factor=None,
                 hue_factor=None, seed=None, data_format=None, **kwargs):
        super().__init__(seed=seed, data_format=data_format, **kwargs)
        _value_range(self, value_range)
        self.value_range = value_range
        self.brightness_factor = brightness_factor
        self.contrast_factor = contrast_factor
        self.saturation_factor = saturation_factor
        self.hue_factor = hue_factor
        parts = ((RandomBrightness, brightness_factor), (RandomContrast, contrast_factor),
                 (RandomSaturation, saturation_factor), (RandomHue, hue_factor))
        self._parts = [cls(factor=factor, value_range=value_range, seed=seed, name=f"{self.name}_{cls.__name__}")
                       for cls, factor in parts if factor is not None]

    def _augment(self, images):
        for part in self._parts:
            images = part._augment(images)
        return self._in_compute_dtype(images)

    def get_config(self):
        return {**super().get_config(), "value_range": self.value_range, "brightness_factor": self.brightness_factor,
                "contrast_factor": self.contrast_factor, "saturation_factor": self.saturation_factor,
                "hue_factor": self.hue_factor, "seed": self.seed}
