"""Geometric augmentations with Keras 3's arguments and arithmetic: RandomShear, RandomPerspective and
RandomElasticTransform.  Like the layers of image_augmentation.py they act only when training, draw their
numbers on the host (so CPU and GPU see the same ones) and take channels_first as well as channels_last.

Each layer's ``_draw`` returns its numbers under the names of Keras's transformation dict, and ``_augment``
applies them: shear and perspective as one transform per image through ops.image.affine_transform (a
perspective is its 8-vector with c0, c1 set), the elastic distortion as per-pixel source points through the
same sampler (ops.image._sample).
"""

from __future__ import annotations

import numpy as np

from dlgpu import ops
from dlgpu.layers import image_boxes
from dlgpu.layers.image_augmentation import _AffineLayer, _host, _transform_rows
from dlgpu.layers.image_blur import _named_factor
from dlgpu.layers.image_color import _bounded_factor, _number, _value_range
from dlgpu.layers.image_preprocessing import RandomImageLayer
from dlgpu.ops import image
from dlgpu.ops._core import array_module


def _check_interpolation(layer, interpolation):
    if interpolation not in image.INTERPOLATIONS:
        raise NotImplementedError(f"Layer '{layer.name}' ({type(layer).__name__}): unknown `interpolation` "
                                  f"{interpolation!r}; expected one of {image.INTERPOLATIONS}")


def _check_fill_value(layer, fill_value):
    if not _number(fill_value):
        raise layer._error(f"`fill_value` must be a number. Received: fill_value={fill_value!r}")


def _per_image_mask(images, mask):
    return array_module(images.data).asarray(np.asarray(mask, dtype=bool).reshape(-1, 1, 1, 1))


def _shear_factor(layer, name, factor):
    """RandomShear's rule: a number f in [0, 1] gives (-f, f); a pair is sorted.  Keras takes only pairs in
    [0, 1], so that the (-f, f) its get_config writes does not load back; here a pair may reach down to -1."""
    message = (f"The `{name}` argument should be a number in the range [0, 1.0] (or a list of two numbers in "
               f"[-1.0, 1.0]). Received: {name}={factor!r}")
    if isinstance(factor, (tuple, list)):
        if len(factor) != 2 or not all(_number(f) and -1 <= f <= 1 for f in factor):
            raise layer._error(message)
        lower, upper = sorted(factor)
        return lower, upper
    if not _number(factor) or factor < 0 or factor > 1:
        raise layer._error(message)
    return -abs(factor), abs(factor)


class RandomShear(_AffineLayer):
    """Each image sheared: output pixel (x, y) reads the source (x + s_x y, y + s_y x), s_x drawn from
    ``x_factor`` and s_y from ``y_factor`` per image, both negated together with probability 1/2 (Keras's
    draws).  As in Keras the shear is about the top-left corner, not the centre, and a number f gives the
    range (-f, f)."""

    _CHANNELS_FIRST = True

    def __init__(self, x_factor=0.0, y_factor=0.0, interpolation="bilinear", fill_mode="reflect", fill_value=0.0,
                 data_format=None, seed=None, **kwargs):
        super().__init__(fill_mode=fill_mode, interpolation=interpolation, seed=seed, fill_value=fill_value,
                         data_format=data_format, **kwargs)
        self.x_factor = _shear_factor(self, "x_factor", x_factor)
        self.y_factor = _shear_factor(self, "y_factor", y_factor)

    def _draw(self, batch, height, width):
        sign = np.where(self._uniform(0.0, 1.0, batch) > 0.5, -1.0, 1.0)
        shear_y = self._uniform(self.y_factor[0], self.y_factor[1], batch)
        shear_x = self._uniform(self.x_factor[0], self.x_factor[1], batch)
        return {"shear_factor": np.stack([shear_x, shear_y], axis=1) * sign[:, None]}

    def _rows(self, transformation, height, width):
        shear = _host(transformation["shear_factor"]).astype(np.float64).reshape(-1, 2)
        return _transform_rows(1.0, shear[:, 0], 0.0, shear[:, 1], 1.0, 0.0)

    def get_config(self):
        return {**super().get_config(), "x_factor": self.x_factor, "y_factor": self.y_factor}


class RandomPerspective(RandomImageLayer):
    """Each image, with a probability drawn per image from ``factor``, warped by the homography that moves
    its corners (0, 0), (w-1, 0), (0, h-1), (w-1, h-1) to p + p * d, d drawn from [-scale/2, scale/2] per
    coordinate (Keras's draws: the top-left corner never moves); outside points read ``fill_value``.
    Images with fewer than 2 rows or columns are left as they are: their corners coincide and define no
    homography (Keras's solve fails on them)."""

    _GEOMETRIC = True

    _CHANNELS_FIRST = True

    def __init__(self, factor=1.0, scale=1.0, interpolation="bilinear", fill_value=0.0, seed=None, data_format=None,
                 **kwargs):
        super().__init__(seed=seed, data_format=data_format, **kwargs)
        self.factor = _bounded_factor(self, factor, 0, 1)
        if not _number(scale) or scale < 0 or scale > 1:
            raise self._error(f"The `scale` argument should be a number in the range [0,1]. Received: "
                              f"scale={scale!r}")
        _check_interpolation(self, interpolation)
        _check_fill_value(self, fill_value)
        self.scale = scale
        self.interpolation = interpolation
        self.fill_value = fill_value

    def _draw(self, batch, height, width):
        probability = self._uniform(self.factor[0], self.factor[1], batch)
        threshold = self._uniform(0.0, 1.0, batch)
        shift = self._uniform(-0.5 * self.scale, 0.5 * self.scale, (batch, 4, 2))
        corners = np.array([[0.0, 0.0], [width - 1, 0.0], [0.0, height - 1], [width - 1, height - 1]])
        start = np.broadcast_to(corners, (batch, 4, 2))
        return {"apply_perspective": threshold < probability, "start_points": start,
                "end_points": start + start * shift}

    def _apply(self, images, transformation, interpolation):
        height, width = images.shape[1:3]
        if height < 2 or width < 2:
            return images
        start, end = (_host(transformation[k]).astype(np.float32) for k in ("start_points", "end_points"))
        warped = image.perspective_transform(images, start, end, interpolation, float(self.fill_value))
        return ops.where(_per_image_mask(images, _host(transformation["apply_perspective"])), warped, images)

    def transform_bounding_boxes(self, bounding_boxes, transformation, training=True):
        """The box around each box's corners carried by the homography taking the start points to the end
        points (where the image is warped), clipped to the image; given back in the layer's format (Keras
        3.15 leaves them in "xyxy")."""
        if not training or transformation is None:
            return bounding_boxes
        height, width = self._transformation_size(transformation)
        if height < 2 or width < 2:
            return bounding_boxes
        xyxy = image_boxes.to_xyxy(bounding_boxes["boxes"], self.bounding_box_format, height, width)
        xp = array_module(xyxy)
        forward = image_boxes.homography(_host(transformation["start_points"]), _host(transformation["end_points"]))
        apply = xp.asarray(_host(transformation["apply_perspective"]).astype(bool).reshape(-1, 1, 1))
        xyxy = xp.where(apply, image_boxes.warp(xyxy, forward), xyxy)
        xyxy, labels = image_boxes.clip(xyxy, bounding_boxes["labels"], height, width)
        return image_boxes.result(bounding_boxes, image_boxes.from_xyxy(xyxy, self.bounding_box_format, height,
                                                                        width), labels)

    def get_config(self):
        return {**super().get_config(), "factor": self.factor, "scale": self.scale,
                "interpolation": self.interpolation, "fill_value": self.fill_value}


class RandomElasticTransform(RandomImageLayer):
    """Each image, with a probability drawn per image from ``factor``, displaced pixel by pixel: output pixel
    p reads p + alpha * blur(sigma * n) (n standard normal noise per pixel and axis, blurred by a Gaussian of
    standard deviation sigma over int(6 sigma) | 1 taps with zero padding), alpha = 0.1 s max(h, w),
    sigma = 0.05 s min(h, w), s drawn once per batch from ``scale`` (Keras's numbers).  Every image is then
    clipped to ``value_range``, unless ``factor`` or ``scale`` is 0 (Keras then returns the input as it is).

    The noise is drawn on the host (2 float32 numbers per pixel) so that a seed repeats it on any device."""

    _CHANNELS_FIRST = True
    _REFUSED_KEYS = ("bounding_boxes", "segmentation_masks")

    def __init__(self, factor=1.0, scale=1.0, interpolation="bilinear", fill_mode="reflect", fill_value=0.0,
                 value_range=(0, 255), seed=None, data_format=None, **kwargs):
        super().__init__(seed=seed, data_format=data_format, **kwargs)
        self.factor = _bounded_factor(self, factor, 0, 1)
        self.scale = _named_factor(self, "scale", scale)
        _check_interpolation(self, interpolation)
        if fill_mode not in image.FILL_MODES:
            raise NotImplementedError(f"Layer '{self.name}' (RandomElasticTransform): unknown `fill_mode` "
                                      f"{fill_mode!r}; expected one of {image.FILL_MODES}")
        _check_fill_value(self, fill_value)
        _value_range(self, value_range)
        self.interpolation = interpolation
        self.fill_mode = fill_mode
        self.fill_value = fill_value
        self.value_range = value_range  # as given: Keras clips with it unsorted

    def _draw(self, batch, height, width):
        if self.scale[1] == 0 or self.factor[1] == 0:
            return None
        probability = self._uniform(self.factor[0], self.factor[1], batch)
        threshold = self._uniform(0.0, 1.0, batch)
        distortion = self._uniform(self.scale[0], self.scale[1], ())
        # Keras hands a seed to its backend's elastic_transform, which draws dx, then dy
        dx, dy = self._normal((batch, height, width)), self._normal((batch, height, width))
        return {"apply_transform": threshold < probability, "distortion_factor": distortion, "dx": dx, "dy": dy}

    def _augment(self, images):
        batch, height, width = images.shape[:3]
        draw = self._draw(batch, height, width)
        if draw is None:
            return images
        # float32 as Keras computes them (its distortion factor is a float32 tensor)
        factor = np.float32(draw["distortion_factor"])
        alpha = np.float32(max(height, width)) * (np.float32(0.1) * factor)
        sigma = np.float32(min(height, width)) * (np.float32(0.05) * factor)
        if sigma > 0:  # a zero sigma (scale drawn at 0) is no displacement; Keras's kernel would divide by it
            warped = image._elastic_warp(images, draw["dx"], draw["dy"], alpha, sigma, self.interpolation,
                                         self.fill_mode, float(self.fill_value))
        else:
            warped = images
        out = ops.where(_per_image_mask(images, draw["apply_transform"]), warped, images)
        return ops.clip(out, float(self.value_range[0]), float(self.value_range[1]))

    def get_config(self):
        return {**super().get_config(), "factor": self.factor, "scale": self.scale,
                "interpolation": self.interpolation, "fill_mode": self.fill_mode, "fill_value": self.fill_value,
                "value_range": self.value_range}
