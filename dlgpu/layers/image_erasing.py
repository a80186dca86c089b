"""RandomErasing (keras.layers.RandomErasing): a random rectangle of each image replaced by a constant or by
noise, with Keras 3's draws.  Like the other augmentations it acts only when training, draws its numbers on
the host and takes channels_first as well as channels_last."""

from __future__ import annotations

import numpy as np

from dlgpu import ops
from dlgpu.layers.image_blur import _named_factor
from dlgpu.layers.image_color import _bounded_factor, _number, _value_range
from dlgpu.layers.image_preprocessing import RandomImageLayer
from dlgpu.ops._core import array_module


class RandomErasing(RandomImageLayer):
    """With a probability drawn per image from ``factor``, the pixels (x, y) with x0 <= x < x1 and
    y0 <= y < y1 are replaced: x1 - x0 = sqrt(a) w and y1 - y0 = sqrt(b) h, a and b drawn independently from
    ``scale`` (Keras calls it an aspect ratio; it is a fraction of the area per side), the rectangle placed
    uniformly inside the image.  The replacement is ``fill_value`` (a number, or one per channel for 3
    channels) or, when None, standard normal noise times value_range[1]; either clipped to value_range.

    The noise is drawn on the host for the whole batch (one float32 number per pixel and channel, as
    Keras draws it) so that a seed repeats it on any device."""

    _CHANNELS_FIRST = True

    def __init__(self, factor=1.0, scale=(0.02, 0.33), fill_value=None, value_range=(0, 255), seed=None,
                 data_format=None, **kwargs):
        super().__init__(seed=seed, data_format=data_format, **kwargs)
        self.factor = _bounded_factor(self, factor, 0, 1)
        self.scale = _named_factor(self, "scale", scale)
        if not (fill_value is None or _number(fill_value)
                or (isinstance(fill_value, (tuple, list)) and len(fill_value) == 3 and all(map(_number, fill_value)))):
            raise self._error(f"The `fill_value` argument should be a number (or a list of three numbers). "
                              f"Received: fill_value={fill_value!r}")
        _value_range(self, value_range)
        self.fill_value = fill_value
        self.value_range = value_range  # as given: Keras clips with it unsorted

    def _draw(self, batch, height, width, channels):
        side = np.sqrt(self._uniform(self.scale[0], self.scale[1], (batch, 2)))
        crop_w, crop_h = side[:, 0] * width, side[:, 1] * height
        x0 = self._uniform(0.0, 1.0, batch) * (width - crop_w)
        y0 = self._uniform(0.0, 1.0, batch) * (height - crop_h)
        probability = self._uniform(self.factor[0], self.factor[1], batch)
        threshold = self._uniform(0.0, 1.0, batch)
        noise = self._normal((batch, height, width, channels)) if self.fill_value is None else None
        return {"boxes": np.stack([x0, x0 + crop_w, y0, y0 + crop_h], axis=1),
                "apply_erasing": threshold < probability, "noise": noise}

    def _augment(self, images):
        batch, height, width, channels = images.shape
        if isinstance(self.fill_value, (tuple, list)) and channels != 3:
            raise self._error(f"a `fill_value` of three numbers needs 3 channels; received images of shape "
                              f"{tuple(images.shape)}")
        draw = self._draw(batch, height, width, channels)
        xp = array_module(images.data)
        x0, x1, y0, y1 = (xp.asarray(draw["boxes"][:, i].astype(np.float32).reshape(-1, 1, 1)) for i in range(4))
        cols = xp.arange(width, dtype=xp.float32)[None, None, :]
        rows = xp.arange(height, dtype=xp.float32)[None, :, None]
        inside = (cols >= x0) & (cols < x1) & (rows >= y0) & (rows < y1)
        erase = (inside & xp.asarray(draw["apply_erasing"]).reshape(-1, 1, 1))[..., None]
        low, high = (float(v) for v in self.value_range)
        if self.fill_value is None:
            fill = xp.clip(xp.asarray(draw["noise"]) * np.float32(high), low, high).astype(np.float32)
        else:
            fill = xp.asarray(np.clip(np.asarray(self.fill_value, dtype=np.float32), low, high))
        return ops.where(erase, fill, images)

    def get_config(self):
        return {**super().get_config(), "factor": self.factor, "scale": self.scale, "fill_value": self.fill_value,
                "value_range": self.value_range}
