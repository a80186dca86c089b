"""Image augmentation, active only when training (see image_preprocessing.py for inputs, seeds and the
training flag): RandomFlip, RandomRotation, RandomZoom, RandomTranslation, RandomContrast, RandomBrightness.

Rotation, zoom and translation each build one affine transform per image (Keras's 8-vectors: output
pixel (x, y) reads source ((a0 x + a1 y + a2), (b0 x + b1 y + b2))) and hand the batch to the single
sampler, dlgpu.ops.image.affine_transform.
"""

from __future__ import annotations

import numpy as np

from dlgpu import ops
from dlgpu.backend.device import to_numpy
from dlgpu.layers import image_boxes
from dlgpu.layers.image_preprocessing import RandomImageLayer
from dlgpu.ops import image
from dlgpu.ops._core import array_module
from dlgpu.utils.bounding_boxes import _convert

HORIZONTAL, VERTICAL, HORIZONTAL_AND_VERTICAL = "horizontal", "vertical", "horizontal_and_vertical"


def _host(value):
    """A transformation entry (numpy, CuPy, a Tensor or a Keras transformation's torch tensor) on the host."""
    from dlgpu.autograd import Tensor
    if isinstance(value, Tensor):
        value = value.data
    if hasattr(value, "detach"):  # a torch tensor, from Keras's get_random_transformation
        value = value.detach().cpu().numpy()
    return np.asarray(to_numpy(value))


def _factor_range(layer, name, factor, low, high, low_open=False):
    """Keras's factor rule: a number f gives (-f, f) (clipped below at ``low``), a pair (a, b) gives
    sorted (a, b); every number must lie in [low, high] (or (low, high] with ``low_open``)."""
    def bad(value):
        return (not isinstance(value, (int, float, np.integer, np.floating)) or isinstance(value, bool)
                or value > high or value < low or (low_open and value <= low))
    bound = f"({low}, {high}]" if low_open else f"[{low}, {high}]"
    message = f"`{name}` must be a number or a pair of numbers in {bound}. Received: {name}={factor!r}"
    if isinstance(factor, (tuple, list)):
        if len(factor) != 2 or bad(factor[0]) or bad(factor[1]):
            raise layer._error(message)
        lower, upper = sorted(float(f) for f in factor)
        return lower, upper
    if bad(factor):
        raise layer._error(message)
    f = abs(float(factor))
    return max(-f, low), f


class RandomFlip(RandomImageLayer):
    """Each image flipped with probability 1/2; 'horizontal_and_vertical' flips both axes of the chosen
    images together (one draw per image, as Keras 3)."""

    _GEOMETRIC = True

    def __init__(self, mode=HORIZONTAL_AND_VERTICAL, seed=None, data_format=None, **kwargs):
        super().__init__(seed=seed, data_format=data_format, **kwargs)
        if mode not in (HORIZONTAL, VERTICAL, HORIZONTAL_AND_VERTICAL):
            raise self._error(f"`mode` must be one of {(HORIZONTAL, VERTICAL, HORIZONTAL_AND_VERTICAL)}. "
                              f"Received: mode={mode!r}")
        self.mode = mode

    def _draw(self, batch, height, width):
        return {"flips": (self._uniform(0, 1, batch) <= 0.5).reshape(-1, 1, 1, 1)}

    def _apply(self, images, transformation, interpolation):
        xp = array_module(images.data)
        flips = xp.asarray(_host(transformation["flips"]).reshape(-1, 1, 1, 1))
        axes = {HORIZONTAL: (2,), VERTICAL: (1,), HORIZONTAL_AND_VERTICAL: (1, 2)}[self.mode]
        return ops.where(flips, ops.flip(images, axis=axes), images)

    def transform_bounding_boxes(self, bounding_boxes, transformation, training=True):
        """Keras's arithmetic: the flipped images' boxes mirrored in relative coordinates; as in Keras they are
        not clipped to the image (its clip_to_image_size there gets relative boxes and pixel sizes), only a
        box with no area gets label -1."""
        if not training or transformation is None:
            return bounding_boxes
        height, width = self._transformation_size(transformation)
        rel = image_boxes.raw(bounding_boxes["boxes"]).astype(np.float32, copy=False)
        rel = _convert(rel, self.bounding_box_format, "rel_xyxy", height, width)
        xp = array_module(rel)
        flips = xp.asarray(_host(transformation["flips"]).reshape(-1, 1, 1))
        x1, y1, x2, y2 = (rel[..., i:i + 1] for i in range(4))
        one = np.float32(1)
        if self.mode in (HORIZONTAL, HORIZONTAL_AND_VERTICAL):
            rel = xp.where(flips, xp.concatenate([one - x2, y1, one - x1, y2], axis=-1), rel)
            x1, y1, x2, y2 = (rel[..., i:i + 1] for i in range(4))
        if self.mode in (VERTICAL, HORIZONTAL_AND_VERTICAL):
            rel = xp.where(flips, xp.concatenate([x1, one - y2, x2, one - y1], axis=-1), rel)
        rel, labels = image_boxes.clip(rel, bounding_boxes["labels"], height, width)
        return image_boxes.result(bounding_boxes, _convert(rel, "rel_xyxy", self.bounding_box_format, height, width),
                                  labels)

    def get_config(self):
        return {**super().get_config(), "mode": self.mode}


class _AffineLayer(RandomImageLayer):
    """The arguments and sampling shared by rotation, zoom and translation."""

    _GEOMETRIC = True

    def __init__(self, fill_mode="reflect", interpolation="bilinear", seed=None, fill_value=0.0, data_format=None,
                 **kwargs):
        super().__init__(seed=seed, data_format=data_format, **kwargs)
        if fill_mode not in ("reflect", "wrap", "constant", "nearest"):
            raise NotImplementedError(f"Layer '{self.name}' ({type(self).__name__}): unknown `fill_mode` "
                                      f"{fill_mode!r}; expected one of ('reflect', 'wrap', 'constant', 'nearest')")
        if interpolation not in image.INTERPOLATIONS:
            raise NotImplementedError(f"Layer '{self.name}' ({type(self).__name__}): unknown `interpolation` "
                                      f"{interpolation!r}; expected one of {image.INTERPOLATIONS}")
        self.fill_mode = fill_mode
        self.interpolation = interpolation
        self.fill_value = float(fill_value)

    def _apply(self, images, transformation, interpolation):
        height, width = images.shape[1:3]
        rows = self._rows(transformation, height, width)  # (batch, 8), float64 on the host
        return image.affine_transform(images, array_module(images.data).asarray(rows, dtype=np.float32),
                                      interpolation, self.fill_mode, self.fill_value)

    def _draw(self, batch, height, width):
        raise NotImplementedError

    def _rows(self, transformation, height, width):
        """(batch, 8): each output pixel's source, Keras's 8-vector layout."""
        raise NotImplementedError

    def transform_bounding_boxes(self, bounding_boxes, transformation, training=True):
        """The box around each box's four corners carried by the inverse of the images' transform, clipped to
        the image (a box left empty gets label -1).  This is Keras's result for RandomTranslation, RandomZoom
        and RandomRotation, whose formulas are this map written out; Keras's RandomRotation skips the
        conversion from the layer's format (right for "xyxy" only) and its RandomShear shears relative
        coordinates (right for square images and one axis): here every format and shape is exact."""
        if not training or transformation is None:
            return bounding_boxes
        height, width = self._transformation_size(transformation)
        xyxy = image_boxes.to_xyxy(bounding_boxes["boxes"], self.bounding_box_format, height, width)
        forward = image_boxes.affine_forward(self._rows(transformation, height, width))
        xyxy, labels = image_boxes.clip(image_boxes.warp(xyxy, forward), bounding_boxes["labels"], height, width)
        return image_boxes.result(bounding_boxes, image_boxes.from_xyxy(xyxy, self.bounding_box_format, height,
                                                                        width), labels)

    def get_config(self):
        return {**super().get_config(), "fill_mode": self.fill_mode, "interpolation": self.interpolation,
                "fill_value": self.fill_value}


def _transform_rows(a0, a1, a2, b0, b1, b2):
    a0 = np.asarray(a0, dtype=np.float64)
    columns = np.broadcast_arrays(a0, a1, a2, b0, b1, b2, np.zeros_like(a0), np.zeros_like(a0))
    return np.stack(columns, axis=1)


class RandomRotation(_AffineLayer):
    """Each image rotated about its centre by an angle drawn from factor * 360 degrees (positive:
    counter-clockwise as displayed, rows downwards)."""

    def __init__(self, factor, fill_mode="reflect", interpolation="bilinear", seed=None, fill_value=0.0,
                 data_format=None, **kwargs):
        super().__init__(fill_mode, interpolation, seed, fill_value, data_format, **kwargs)
        self.factor = _factor_range(self, "factor", factor, -1.0, 1.0)

    def _draw(self, batch, height, width):
        angle = self._uniform(self.factor[0] * 360.0, self.factor[1] * 360.0, batch)
        # Keras's keys; its transform_bounding_boxes reads the size and batch from them
        return {"angle": angle, "image_height": height, "image_width": width, "batch_size": batch,
                "rotation_matrix": self._rows({"angle": angle}, height, width).astype(np.float32)}

    def _rows(self, transformation, height, width):
        angle = np.deg2rad(_host(transformation["angle"]).astype(np.float64).reshape(-1))
        cos, sin = np.cos(angle), np.sin(angle)
        cx, cy = (width - 1) / 2, (height - 1) / 2
        # source = R (p - c) + c, with R = [[cos, -sin], [sin, cos]] in (x, y)
        return _transform_rows(cos, -sin, cx - cx * cos + cy * sin, sin, cos, cy - cx * sin - cy * cos)

    def get_config(self):
        return {**super().get_config(), "factor": self.factor}


class RandomZoom(_AffineLayer):
    """Each image scaled about its centre: the source window is (1 + f) times the image, f drawn from
    height_factor (and width_factor, else the same draw): positive f zooms out, negative zooms in."""

    def __init__(self, height_factor, width_factor=None, fill_mode="reflect", interpolation="bilinear", seed=None,
                 fill_value=0.0, data_format=None, **kwargs):
        super().__init__(fill_mode, interpolation, seed, fill_value, data_format, **kwargs)
        self.height_factor = height_factor
        self.width_factor = width_factor
        self._height_range = _factor_range(self, "height_factor", height_factor, -1.0, 1.0, low_open=True)
        self._width_range = None if width_factor is None else \
            _factor_range(self, "width_factor", width_factor, -1.0, 1.0, low_open=True)

    def _draw(self, batch, height, width):
        zoom_y = 1.0 + self._uniform(*self._height_range, batch)
        zoom_x = zoom_y if self._width_range is None else 1.0 + self._uniform(*self._width_range, batch)
        return {"height_zoom": zoom_y.reshape(-1, 1), "width_zoom": zoom_x.reshape(-1, 1)}

    def _rows(self, transformation, height, width):
        zoom_y = _host(transformation["height_zoom"]).astype(np.float64).reshape(-1)
        zoom_x = _host(transformation["width_zoom"]).astype(np.float64).reshape(-1)
        return _transform_rows(zoom_x, 0.0, (width - 1) / 2 * (1 - zoom_x),
                               0.0, zoom_y, (height - 1) / 2 * (1 - zoom_y))

    def get_config(self):
        return {**super().get_config(), "height_factor": self.height_factor, "width_factor": self.width_factor}


class RandomTranslation(_AffineLayer):
    """Each image shifted by a fraction of its size drawn from height_factor (rows, positive: down) and
    width_factor (columns, positive: right)."""

    def __init__(self, height_factor, width_factor, fill_mode="reflect", interpolation="bilinear", seed=None,
                 fill_value=0.0, data_format=None, **kwargs):
        super().__init__(fill_mode, interpolation, seed, fill_value, data_format, **kwargs)
        self.height_factor = height_factor
        self.width_factor = width_factor
        self._height_range = _factor_range(self, "height_factor", height_factor, -1.0, 1.0)
        self._width_range = _factor_range(self, "width_factor", width_factor, -1.0, 1.0)

    def _draw(self, batch, height, width):
        dy = self._uniform(*self._height_range, batch) * height
        dx = self._uniform(*self._width_range, batch) * width
        return {"translations": np.stack([dx, dy], axis=1)}

    def _rows(self, transformation, height, width):
        translations = _host(transformation["translations"]).astype(np.float64).reshape(-1, 2)
        return _transform_rows(1.0, 0.0, -translations[:, 0], 0.0, 1.0, -translations[:, 1])

    def get_config(self):
        return {**super().get_config(), "height_factor": self.height_factor, "width_factor": self.width_factor}


def _value_range(layer, value_range):
    if (not isinstance(value_range, (tuple, list)) or len(value_range) != 2
            or any(isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating))
                   for v in value_range)):
        raise layer._error(f"`value_range` must be a pair of numbers (low, high). Received: "
                           f"value_range={value_range!r}")
    return value_range


class RandomContrast(RandomImageLayer):
    """(x - mean) * c + mean per image and channel (mean over height and width), then clipped to value_range.

    c is drawn from [1 - factor[0], 1 + factor[1]] with Keras 3's factor rule for this layer: a number f
    gives factor (0, f), so c lies in [1, 1 + f]; pass (f, f) for [1 - f, 1 + f].
    """

    def __init__(self, factor, value_range=(0, 255), seed=None, **kwargs):
        super().__init__(seed=seed, **kwargs)
        self.factor = _factor_range(self, "factor", factor, 0.0, 1.0)
        self.value_range = _value_range(self, value_range)

    def _augment(self, images):
        xp = array_module(images.data)
        c = self._uniform(1.0 - self.factor[0], 1.0 + self.factor[1], images.shape[0])
        c = xp.asarray(c.astype(np.float32).reshape(-1, 1, 1, 1))
        mean = ops.mean(images, axis=(1, 2), keepdims=True)
        out = ops.add(ops.multiply(ops.subtract(images, mean), c), mean)
        return ops.clip(out, float(self.value_range[0]), float(self.value_range[1]))

    def get_config(self):
        return {**super().get_config(), "factor": self.factor, "value_range": self.value_range}


class RandomBrightness(RandomImageLayer):
    """x + delta per image, delta drawn from factor * (value_range[1] - value_range[0]), then clipped to
    value_range."""

    def __init__(self, factor, value_range=(0, 255), seed=None, **kwargs):
        super().__init__(seed=seed, **kwargs)
        self.factor = _factor_range(self, "factor", factor, -1.0, 1.0)
        self.value_range = sorted(_value_range(self, value_range))

    def _augment(self, images):
        xp = array_module(images.data)
        low, high = self.value_range
        delta = self._uniform(self.factor[0], self.factor[1], images.shape[0]) * (high - low)
        delta = xp.asarray(delta.astype(np.float32).reshape(-1, 1, 1, 1))
        return ops.clip(ops.add(images, delta), float(low), float(high))

    def get_config(self):
        return {**super().get_config(), "factor": self.factor, "value_range": self.value_range}
