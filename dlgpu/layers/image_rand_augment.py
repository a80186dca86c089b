"""RandAugment (keras.layers.RandAugment): ``num_ops`` augmentations picked per batch from Keras's eleven
(shear, translation, rotation, brightness, colour degeneration, contrast, sharpness, posterization,
solarization, auto-contrast, equalization), all of strength ``factor``, applied one after the other.  It
acts only when training, like the layers it composes."""

from __future__ import annotations

import copy

import numpy as np

from dlgpu.layers.image_augmentation import RandomBrightness, RandomContrast, RandomRotation, RandomTranslation
from dlgpu.layers.image_color import AutoContrast, RandomPosterization, Solarization, _bounded_factor, _value_range
from dlgpu.layers.image_color_adjust import Equalization, RandomColorDegeneration, RandomSharpness
from dlgpu.layers.image_geometry import RandomShear, _check_interpolation
from dlgpu.layers.image_preprocessing import RandomImageLayer
from dlgpu.ops.nn import _generator
from dlgpu.rematerialization import observed


class RandAugment(RandomImageLayer):
    """Keras's policy: one list of ``num_ops`` indices per batch (repeats allowed), and for each the layer's
    augmentation of every image with its own per-image draws.  A layer picked twice in a batch applies the
    same draws twice, as Keras draws each layer's transformation once per call.  Images have 1 or 3
    channels (colour degeneration's rule)."""

    _CHANNELS_FIRST = True
    # Keras moves boxes and masks with the geometric operations it picks; not implemented here yet
    _REFUSED_KEYS = ("bounding_boxes", "segmentation_masks")

    def __init__(self, value_range=(0, 255), num_ops=2, factor=0.5, interpolation="bilinear", seed=None,
                 data_format=None, **kwargs):
        super().__init__(seed=seed, data_format=data_format, **kwargs)
        _value_range(self, value_range)
        if not isinstance(num_ops, (int, np.integer)) or isinstance(num_ops, bool) or num_ops < 0:
            raise self._error(f"`num_ops` must be a non-negative integer. Received: num_ops={num_ops!r}")
        _check_interpolation(self, interpolation)
        self.value_range = value_range
        self.num_ops = int(num_ops)
        self.factor = _bounded_factor(self, factor, 0, 1)
        self.interpolation = interpolation
        f = self.factor

        def named(cls, **kw):
            return cls(name=f"{self.name}_{cls.__name__}", **kw)
        # Keras's order: an index drawn in [0, 11) picks from this list
        self._augmenters = [
            named(RandomShear, x_factor=f, y_factor=f, interpolation=interpolation),
            named(RandomTranslation, height_factor=f, width_factor=f, interpolation=interpolation),
            named(RandomRotation, factor=f, interpolation=interpolation),
            named(RandomBrightness, factor=f, value_range=value_range),
            named(RandomColorDegeneration, factor=f, value_range=value_range),
            named(RandomContrast, factor=f, value_range=value_range),
            named(RandomSharpness, factor=f, value_range=value_range),
            named(RandomPosterization, factor=max(1, int(8 * f[1])), value_range=value_range),
            named(Solarization, addition_factor=f, threshold_factor=f, value_range=value_range),
            named(AutoContrast, value_range=value_range),
            named(Equalization, value_range=value_range),
        ]

    def _draw(self):
        generator = observed(self._rng or _generator(np))
        return {"layer_idxes": generator.integers(0, len(self._augmenters), self.num_ops)}

    def _augment(self, images):
        if images.shape[-1] not in (1, 3):  # refused every time, not only when colour degeneration is picked
            raise self._error(f"expected RGB images (3 channels) or grayscale (1 channel); received images of "
                              f"shape {tuple(images.shape)}")
        generator = observed(self._rng or _generator(np))
        before_first_use = {}
        for i in self._draw()["layer_idxes"]:
            layer = self._augmenters[int(i)]
            if not isinstance(layer, RandomImageLayer):  # AutoContrast, Equalization: nothing drawn
                images = layer.call(images, training=True)
                continue
            if int(i) in before_first_use:  # again in this batch: replay the draws of its first use
                layer._rng = copy.deepcopy(before_first_use[int(i)])
            else:
                before_first_use[int(i)] = copy.deepcopy(generator)
                layer._rng = generator  # the parts draw from this layer's generator (seed), as in Keras
            try:
                images = layer._augment(images)
            finally:
                layer._rng = None
        return images

    def get_config(self):
        return {**super().get_config(), "value_range": self.value_range, "num_ops": self.num_ops,
                "factor": self.factor, "interpolation": self.interpolation}
