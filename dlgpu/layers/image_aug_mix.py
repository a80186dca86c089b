"""AugMix (keras.layers.AugMix; Hendrycks et al., 2019): ``num_chains`` chains of up to ``chain_depth`` random
operations, their results mixed with Dirichlet(alpha) weights, then mixed with the original images by a
Beta(alpha, alpha) weight and clipped to ``value_range``.

As in Keras, one draw per batch picks each chain's operations (each of ``chain_depth`` steps is one of the
operations or nothing, uniformly) and the mixing weights; each operation then draws its own numbers per
image.  The operations are dlgpu's layers with Keras's arguments (RandomTranslation, RandomRotation,
Solarization, RandomPosterization, AutoContrast, Equalization, and with ``all_ops`` RandomBrightness,
RandomColorDegeneration, RandomContrast, RandomSharpness) and RandomShear.

Unlike Keras, which picks the operations with Python's unseeded ``random.choice``, every draw comes from the
layer's generator (``seed=``) or dlgpu's, so a seed repeats the augmentation.
"""

from __future__ import annotations

import numpy as np

from dlgpu import ops
from dlgpu.layers.image_augmentation import RandomBrightness, RandomContrast, RandomRotation, RandomTranslation
from dlgpu.layers.image_color import (AutoContrast, RandomPosterization, Solarization, _bounded_factor, _number,
                                      _value_range)
from dlgpu.layers.image_color_adjust import Equalization, RandomColorDegeneration, RandomSharpness
from dlgpu.layers.image_geometry import RandomShear
from dlgpu.layers.image_preprocessing import RandomImageLayer, _positive_int
from dlgpu.ops.nn import _generator
from dlgpu.rematerialization import observed

AUGMENT_LAYERS = ("random_shear", "random_translation", "random_rotation", "random_posterization", "solarization",
                  "auto_contrast", "equalization")
AUGMENT_LAYERS_ALL = AUGMENT_LAYERS + ("random_brightness", "random_color_degeneration", "random_contrast",
                                       "random_sharpness")
_INTERPOLATIONS = ("nearest", "bilinear")


class AugMix(RandomImageLayer):
    """AugMix: random chains of augmentations mixed together and with the original images.  Takes images, or
    a dict {"images": ..., "labels": ..., "bounding_boxes": ...} whose other entries pass through, as in
    Keras (boxes unchanged)."""

    # Keras's AugMix gives bounding boxes back as they came (the mixed images have no single geometry)
    _REFUSED_KEYS = ("segmentation_masks",)

    def __init__(self, value_range=(0, 255), num_chains=3, chain_depth=3, factor=0.3, alpha=1.0, all_ops=True,
                 interpolation="bilinear", seed=None, data_format=None, **kwargs):
        super().__init__(seed=seed, data_format=data_format, **kwargs)
        _value_range(self, value_range)
        self.value_range = value_range  # as given, as Keras writes it
        self.num_chains = _positive_int(self, "num_chains", num_chains)
        self.chain_depth = _positive_int(self, "chain_depth", chain_depth)
        self.factor = _bounded_factor(self, factor, 0, 1)
        if not _number(alpha) or alpha <= 0:
            raise self._error(f"`alpha` must be a positive number (the Beta and Dirichlet parameter). "
                              f"Received: alpha={alpha!r}")
        self.alpha = alpha
        if not isinstance(all_ops, (bool, np.bool_)):
            raise self._error(f"`all_ops` must be True or False. Received: all_ops={all_ops!r}")
        self.all_ops = bool(all_ops)
        if interpolation not in _INTERPOLATIONS:
            raise NotImplementedError(f"Layer '{self.name}' (AugMix): unknown `interpolation` {interpolation!r}; "
                                      f"expected one of {_INTERPOLATIONS}")
        self.interpolation = interpolation
        self._layer_names = AUGMENT_LAYERS_ALL if self.all_ops else AUGMENT_LAYERS
        self._ops = self._make_ops()

    def _make_ops(self):
        factor, value_range, name = self.factor, self.value_range, self.name
        made = {
            "random_shear": RandomShear(factor, factor, interpolation=self.interpolation),
            "random_translation": RandomTranslation(factor, factor, interpolation=self.interpolation),
            "random_rotation": RandomRotation(factor, interpolation=self.interpolation),
            "random_posterization": RandomPosterization(max(1, int(8 * factor[1])), value_range=value_range),
            "solarization": Solarization(factor, factor, value_range=value_range),
            "auto_contrast": AutoContrast(value_range=value_range),
            "equalization": Equalization(value_range=value_range),
        }
        if self.all_ops:
            made.update({
                "random_brightness": RandomBrightness(factor, value_range=value_range),
                "random_color_degeneration": RandomColorDegeneration(factor, value_range=value_range),
                "random_contrast": RandomContrast(factor, value_range=value_range),
                "random_sharpness": RandomSharpness(factor, value_range=value_range),
            })
        for key, layer in made.items():
            layer.name = f"{name}_{key}"
            if isinstance(layer, RandomImageLayer):
                layer._rng = self._rng  # one stream of draws for the whole layer, repeated by its seed
        return made

    def _rng_for(self, seed=None):
        if seed is not None:
            return np.random.default_rng(seed)
        return observed(self._rng or _generator(np))

    def get_random_transformation(self, data, training=True, seed=None):
        """{"chain_mixing_weights": (num_chains,) float32, "weight_sample": float32, "chain_transforms": a list
        per chain of the operations' names}; the operations draw their own numbers when applied."""
        if not training:
            return None
        rng = self._rng_for(seed)
        weights = rng.dirichlet([self.alpha] * self.num_chains).astype(np.float32)
        weight_sample = np.float32(rng.beta(self.alpha, self.alpha))
        choices = self._layer_names + (None,)
        chains = [[choices[i] for i in rng.integers(0, len(choices), self.chain_depth) if choices[i] is not None]
                  for _ in range(self.num_chains)]
        return {"chain_mixing_weights": weights, "weight_sample": weight_sample, "chain_transforms": chains}

    def _apply(self, name, images):
        if name not in self._ops:
            raise self._error(f"unknown operation {name!r} in the transformation; expected one of "
                              f"{self._layer_names}")
        layer = self._ops[name]
        if isinstance(layer, RandomImageLayer):
            return layer._augment(images)
        return layer.call(images, training=True)  # AutoContrast, Equalization

    def transform_images(self, images, transformation, training=True):
        """Images (a batch) through the transformation's chains, mixed as Keras's AugMix.transform_images."""
        images = ops.convert_to_tensor(images)
        if images.dtype != "float32":
            images = ops.cast(images, "float32")
        if not training or transformation is None:
            return images
        weights = np.asarray(transformation["chain_mixing_weights"], dtype=np.float32)
        weight_sample = np.float32(transformation["weight_sample"])
        mixed = None
        for weight, chain in zip(weights, transformation["chain_transforms"]):
            x = images
            for name in chain:
                x = self._apply(name, x)
            term = ops.multiply(x, weight)
            mixed = term if mixed is None else ops.add(mixed, term)
        out = ops.add(ops.multiply(images, weight_sample), ops.multiply(mixed, np.float32(1) - weight_sample))
        return ops.clip(out, float(self.value_range[0]), float(self.value_range[1]))

    def call(self, inputs, training=True):
        if not isinstance(inputs, dict):
            return super().call(inputs, training)
        if "images" not in inputs or inputs["images"].ndim not in (3, 4):
            raise self._error(f"a dict input needs 'images' of rank 3 (one image) or 4 (a batch); received "
                              f"{ {k: tuple(getattr(v, 'shape', ())) for k, v in inputs.items()} }")
        return {**inputs, "images": super().call(inputs["images"], training)}

    def _augment(self, images):
        return self.transform_images(images, self.get_random_transformation(images))

    def get_config(self):
        return {**super().get_config(), "value_range": self.value_range, "num_chains": self.num_chains,
                "chain_depth": self.chain_depth, "factor": self.factor, "alpha": self.alpha, "all_ops": self.all_ops,
                "interpolation": self.interpolation, "seed": self.seed}
