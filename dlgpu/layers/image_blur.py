"""RandomGaussianBlur: a Gaussian blur of NHWC images, applied to each image with a probability drawn from
``factor``, with Keras 3's rules: per image, blur when u < p (u uniform in [0, 1), p drawn from factor); one
pair of standard deviations per batch (sigma_x along the width, sigma_y along the height, each drawn from
``sigma`` plus 1e-6); a separable kernel exp(-x^2 / (2 sigma^2)) normalized to sum 1 over ``kernel_size``
taps, zero padding; the result clipped to ``value_range``.  Like the other augmentations it acts only when
training and draws its numbers on the host."""

from __future__ import annotations

from dlgpu import ops
from dlgpu.layers.image_color import _bounded_factor, _number, _value_range
from dlgpu.layers.image_preprocessing import RandomImageLayer
from dlgpu.ops._core import array_module


def _named_factor(layer, name, value, low=0, high=1):
    """Keras's factor rule (a number f in [low, high] gives (max(-f, low), f), a pair is sorted) for `sigma`."""
    message = (f"The `{name}` argument should be a number (or a list of two numbers) in the range [{low}, {high}]. "
               f"Received: {name}={value!r}")
    if isinstance(value, (tuple, list)):
        if len(value) != 2 or not all(map(_number, value)) or value[0] > high or value[1] < low:
            raise layer._error(message)
        return tuple(sorted(value))
    if not _number(value) or value < low or value > high:
        raise layer._error(message)
    return (max(-abs(value), low), abs(value))


class RandomGaussianBlur(RandomImageLayer):
    """Gaussian blur with a random probability per image and random standard deviations per batch
    (keras.layers.RandomGaussianBlur).  ``factor=0`` leaves images as they are, ``factor=(1, 1)`` blurs every
    image.  Keras checks ``sigma`` against the factor bounds [0, 1], so sigma is at most 1; kept."""

    def __init__(self, factor=1.0, kernel_size=3, sigma=1.0, value_range=(0, 255), data_format=None, seed=None,
                 **kwargs):
        super().__init__(seed=seed, data_format=data_format, **kwargs)
        self.factor = _bounded_factor(self, factor, 0, 1)
        self.kernel_size = self._kernel_size(kernel_size)
        self.sigma = _named_factor(self, "sigma", sigma)
        self.value_range = _value_range(self, value_range)

    def _kernel_size(self, value):
        pair = tuple(value) if isinstance(value, (tuple, list)) else (value, value)
        if (len(pair) != 2 or not all(_number(v) and float(v).is_integer() and v > 0 and v % 2 == 1 for v in pair)):
            raise self._error(f"`kernel_size` must be an odd positive integer or a pair of them. Received: "
                              f"kernel_size={value!r}")
        if pair[0] != pair[1]:
            # Keras's torch backend views an (h, w) kernel of an unequal pair as (w, h) and pads both sides by
            # the first size: no defined result to match
            raise NotImplementedError(f"Layer '{self.name}' (RandomGaussianBlur): only square kernels are "
                                      f"supported; received kernel_size={value!r}")
        return int(pair[0]), int(pair[1])

    def _augment(self, images):
        xp = array_module(images.data)
        batch = images.shape[0]
        probability = self._uniform(self.factor[0], self.factor[1], batch)
        threshold = self._uniform(0.0, 1.0, batch)
        sigma_x, sigma_y = self._uniform(self.sigma[0], self.sigma[1], 2) + 1e-6
        # ops.image.gaussian_blur's pairs are (width, height), as Keras's kernels
        blurred = ops.image.gaussian_blur(images, self.kernel_size, (float(sigma_x), float(sigma_y)),
                                          "channels_last")
        apply = xp.asarray((threshold < probability).reshape(-1, 1, 1, 1))
        out = ops.where(apply, blurred, images)
        return ops.clip(out, float(self.value_range[0]), float(self.value_range[1]))

    def get_config(self):
        return {**super().get_config(), "factor": self.factor, "kernel_size": self.kernel_size, "sigma": self.sigma,
                "value_range": self.value_range, "seed": self.seed}
