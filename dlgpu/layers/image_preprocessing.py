"""Image preprocessing on NHWC images: the shared base of the image layers, Resizing, CenterCrop, RandomCrop.

Images are channels_last, rank 3 (one image) or 4 (a batch); integer images become float32 (Layer's input
conversion), so every output is float32 as in Keras.  The geometry lives in dlgpu.ops.image.

Random layers (here RandomCrop; the augmentations in image_augmentation.py) draw their few numbers per image
on the host, from their own generator when given ``seed=`` (each layer then repeats its sequence from
construction) and otherwise from dlgpu's generator, which dlgpu.utils.set_random_seed reseeds.  The same
numbers therefore drive the CPU and the GPU.  They transform only when training: fit passes training=True,
predict and evaluate training=False, and a direct call ``layer(x)`` augments, as Keras's
``call(..., training=True)`` default does.
"""

from __future__ import annotations

import numpy as np

from dlgpu.layers.base import InputSpec, Layer
from dlgpu.ops import _getitem, image, reshape, transpose
from dlgpu.ops._core import array_module
from dlgpu.ops.nn import _generator
from dlgpu.rematerialization import observed


class ImageLayer(Layer):
    """What every image layer shares: channels_last (channels_first where a layer sets _CHANNELS_FIRST), rank 3
    or 4, no dict inputs (bounding boxes) unless the class sets ``_takes_dicts`` (MixUp, CutMix:
    {"images": ..., "labels": ...})."""

    _takes_dicts = False
    # Random layers whose output has the input's shape take channels_first: call moves the channels last
    # around _augment (see RandomImageLayer.call).
    _CHANNELS_FIRST = False

    def __init__(self, data_format=None, bounding_box_format=None, **kwargs):
        super().__init__(**kwargs)
        if self._CHANNELS_FIRST and data_format not in (None, "channels_last", "channels_first"):
            raise ValueError(f"Layer '{self.name}' ({type(self).__name__}): `data_format` must be "
                             f"'channels_last' or 'channels_first'. Received: data_format={data_format!r}")
        if not self._CHANNELS_FIRST and data_format not in (None, "channels_last"):
            raise NotImplementedError(f"Layer '{self.name}' ({type(self).__name__}): only data_format="
                                      f"'channels_last' (NHWC) is supported; received data_format={data_format!r}")
        if bounding_box_format is not None:
            raise NotImplementedError(f"Layer '{self.name}' ({type(self).__name__}): bounding boxes are not "
                                      f"supported; received bounding_box_format={bounding_box_format!r}")
        self.data_format = data_format or "channels_last"
        self.input_spec = InputSpec(min_ndim=3, max_ndim=4)

    def __call__(self, inputs, *args, **kwargs):
        if isinstance(inputs, dict) and not self._takes_dicts:
            raise NotImplementedError(f"Layer '{self.name}' ({type(self).__name__}) takes an image tensor; dict "
                                      f"inputs (images with labels, bounding boxes or masks) are not supported")
        return super().__call__(inputs, *args, **kwargs)

    def _error(self, message):
        return ValueError(f"Layer '{self.name}' ({type(self).__name__}): {message}")

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "data_format": self.data_format}


class RandomImageLayer(ImageLayer):
    """An image layer that draws per-image random numbers and acts only when training."""

    def __init__(self, seed=None, **kwargs):
        super().__init__(**kwargs)
        if seed is not None and (not isinstance(seed, (int, np.integer)) or isinstance(seed, bool)):
            raise self._error(f"`seed` must be an integer or None. Received: seed={seed!r}")
        self.seed = None if seed is None else int(seed)
        self._rng = None if seed is None else np.random.default_rng(self.seed)

    def _uniform(self, low, high, size):
        """float64 draws on the host, from the layer's generator or dlgpu's (read at each call, so that
        set_random_seed reaches layers built before it)."""
        return observed(self._rng or _generator(np)).uniform(low, high, size)

    def _normal(self, size):
        """float32 standard normal draws on the host, from the same generator as _uniform."""
        return observed(self._rng or _generator(np)).standard_normal(size, dtype=np.float32)

    def call(self, inputs, training=True):
        if training is None:  # no training= anywhere above: Keras's signature default, augment
            training = True
        if not training:
            return self._inference(inputs)
        single = inputs.ndim == 3
        x = reshape(inputs, (1,) + tuple(inputs.shape)) if single else inputs
        channels_first = self.data_format == "channels_first"
        out = self._augment(transpose(x, (0, 2, 3, 1)) if channels_first else x)
        out = transpose(out, (0, 3, 1, 2)) if channels_first else out
        return reshape(out, tuple(out.shape[1:])) if single else out

    def _inference(self, inputs):
        return inputs

    def _augment(self, images):
        raise NotImplementedError

    def get_config(self):
        return {**super().get_config(), "seed": self.seed}


def _positive_int(layer, name, value):
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1:
        raise layer._error(f"`{name}` must be a positive integer. Received: {name}={value!r}")
    return int(value)


def _resized_shape(input_shape, height, width):
    shape = list(input_shape)
    shape[-3], shape[-2] = height, width
    return tuple(shape)


class Resizing(ImageLayer):
    """Images resized to (height, width): bilinear or nearest, optionally cropping or padding to the target's
    aspect ratio first (keras.layers.Resizing)."""

    def __init__(self, height, width, interpolation="bilinear", crop_to_aspect_ratio=False, pad_to_aspect_ratio=False,
                 fill_mode="constant", fill_value=0.0, antialias=False, data_format=None, **kwargs):
        super().__init__(data_format=data_format, **kwargs)
        self.height = _positive_int(self, "height", height)
        self.width = _positive_int(self, "width", width)
        if interpolation not in image.INTERPOLATIONS:
            raise NotImplementedError(f"Layer '{self.name}' (Resizing): `interpolation` must be one of "
                                      f"{image.INTERPOLATIONS}; received interpolation={interpolation!r}")
        if antialias:
            raise NotImplementedError(f"Layer '{self.name}' (Resizing): antialias=True is not implemented")
        if fill_mode != "constant":
            raise self._error(f"only fill_mode='constant' is supported. Received: fill_mode={fill_mode!r}")
        if crop_to_aspect_ratio and pad_to_aspect_ratio:
            raise self._error("only one of `crop_to_aspect_ratio` and `pad_to_aspect_ratio` can be True")
        self.interpolation = interpolation
        self.crop_to_aspect_ratio = bool(crop_to_aspect_ratio)
        self.pad_to_aspect_ratio = bool(pad_to_aspect_ratio)
        self.fill_mode = fill_mode
        self.fill_value = float(fill_value)
        self.antialias = False

    def call(self, inputs):
        return self._in_compute_dtype(image.resize(inputs, (self.height, self.width), self.interpolation,
                                                   crop_to_aspect_ratio=self.crop_to_aspect_ratio,
                                                   pad_to_aspect_ratio=self.pad_to_aspect_ratio,
                                                   fill_value=self.fill_value))

    def compute_output_shape(self, input_shape):
        return _resized_shape(input_shape, self.height, self.width)

    def get_config(self):
        return {**super().get_config(), "height": self.height, "width": self.width,
                "interpolation": self.interpolation, "crop_to_aspect_ratio": self.crop_to_aspect_ratio,
                "pad_to_aspect_ratio": self.pad_to_aspect_ratio, "fill_mode": self.fill_mode,
                "fill_value": self.fill_value, "antialias": self.antialias}


def _smart_resize(images, height, width):
    """The largest centred window with the target's aspect ratio, resized bilinearly (Keras's smart_resize)."""
    return image.resize(images, (height, width), "bilinear", crop_to_aspect_ratio=True)


class CenterCrop(ImageLayer):
    """The central (height, width) window; an image smaller on either side is instead cropped to the target
    aspect ratio and resized (keras.layers.CenterCrop)."""

    def __init__(self, height, width, data_format=None, **kwargs):
        super().__init__(data_format=data_format, **kwargs)
        self.height = _positive_int(self, "height", height)
        self.width = _positive_int(self, "width", width)

    def call(self, inputs):
        in_h, in_w = inputs.shape[-3], inputs.shape[-2]
        if in_h < self.height or in_w < self.width:
            return _smart_resize(inputs, self.height, self.width)
        top, left = (in_h - self.height) // 2, (in_w - self.width) // 2
        window = (slice(top, top + self.height), slice(left, left + self.width))
        return _getitem(inputs, window if inputs.ndim == 3 else (slice(None),) + window)

    def compute_output_shape(self, input_shape):
        return _resized_shape(input_shape, self.height, self.width)

    def get_config(self):
        return {**super().get_config(), "height": self.height, "width": self.width}


class RandomCrop(RandomImageLayer):
    """A random (height, width) window of each image while training (keras.layers.RandomCrop).

    Each image gets its own window (Keras 3 draws one for the whole batch).  At inference, and for images
    smaller than the target, the largest centred window of the target's aspect ratio is resized to
    (height, width): Keras's documented behaviour, which Keras 3 skips at inference (keras-team/keras#21868),
    leaving a model's predict() with the wrong shape.
    """

    def __init__(self, height, width, seed=None, data_format=None, **kwargs):
        super().__init__(seed=seed, data_format=data_format, **kwargs)
        self.height = _positive_int(self, "height", height)
        self.width = _positive_int(self, "width", width)

    def _inference(self, inputs):
        if tuple(inputs.shape[-3:-1]) == (self.height, self.width):
            return inputs
        return _smart_resize(inputs, self.height, self.width)

    def _augment(self, images):
        batch, in_h, in_w = images.shape[:3]
        if in_h < self.height or in_w < self.width:
            return _smart_resize(images, self.height, self.width)
        xp = array_module(images.data)
        top = np.floor(self._uniform(0, 1, batch) * (in_h - self.height + 1)).astype(np.int64)
        left = np.floor(self._uniform(0, 1, batch) * (in_w - self.width + 1)).astype(np.int64)
        rows = top[:, None, None] + np.arange(self.height)[None, :, None]
        cols = left[:, None, None] + np.arange(self.width)[None, None, :]
        index = (np.arange(batch)[:, None, None], rows, cols)
        return _getitem(images, tuple(xp.asarray(i) for i in index))

    def compute_output_shape(self, input_shape):
        return _resized_shape(input_shape, self.height, self.width)

    def get_config(self):
        return {**super().get_config(), "height": self.height, "width": self.width}
