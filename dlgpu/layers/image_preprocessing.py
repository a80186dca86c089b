"""Image preprocessing on NHWC images: the shared base of the image layers, Resizing, CenterCrop, RandomCrop.

Images are channels_last, rank 3 (one image) or 4 (a batch); integer images become float32 (Layer's input
conversion), so every output is float32 as in Keras.  The geometry lives in dlgpu.ops.image.

Random layers (here RandomCrop; the augmentations in image_augmentation.py) draw their few numbers per image
on the host, from their own generator when given ``seed=`` (each layer then repeats its sequence from
construction) and otherwise from dlgpu's generator, which dlgpu.utils.set_random_seed reseeds.  The same
numbers therefore drive the CPU and the GPU.  They transform only when training: fit passes training=True,
predict and evaluate training=False, and a direct call ``layer(x)`` augments, as Keras's
``call(..., training=True)`` default does.

Every image layer also takes Keras's dicts {"images", "labels", "bounding_boxes", "segmentation_masks"}: one
transformation moves the images, the boxes (given ``bounding_box_format``) and the masks (image_boxes.py).
"""

from __future__ import annotations

import numpy as np

from dlgpu import ops
from dlgpu.layers import image_boxes
from dlgpu.layers.base import InputSpec, Layer
from dlgpu.ops import _getitem, image, reshape, transpose
from dlgpu.ops._core import array_module
from dlgpu.ops.nn import _generator
from dlgpu.rematerialization import observed


class ImageLayer(Layer):
    """What every image layer shares: channels_last (channels_first where a layer sets _CHANNELS_FIRST), rank 3
    or 4, and Keras's dict inputs {"images", "labels", "bounding_boxes", "segmentation_masks"} (image_boxes.py
    checks them): ``call`` hands a dict to ``_call_dict``, which follows Keras's
    BaseImagePreprocessingLayer.call (one transformation for the images, the boxes and the masks).  A layer
    that does not move pixels leaves boxes and masks as they are."""

    # Random layers whose output has the input's shape take channels_first: call moves the channels last
    # around _augment (see RandomImageLayer.call).
    _CHANNELS_FIRST = False
    _REFUSED_KEYS = ()  # dict entries a layer cannot transform (as in Keras, which raises for them)

    def __init__(self, data_format=None, bounding_box_format=None, **kwargs):
        super().__init__(**kwargs)
        if self._CHANNELS_FIRST and data_format not in (None, "channels_last", "channels_first"):
            raise ValueError(f"Layer '{self.name}' ({type(self).__name__}): `data_format` must be "
                             f"'channels_last' or 'channels_first'. Received: data_format={data_format!r}")
        if not self._CHANNELS_FIRST and data_format not in (None, "channels_last"):
            raise NotImplementedError(f"Layer '{self.name}' ({type(self).__name__}): only data_format="
                                      f"'channels_last' (NHWC) is supported; received data_format={data_format!r}")
        self.bounding_box_format = image_boxes.check_format(self, bounding_box_format)
        self.data_format = data_format or "channels_last"
        self.input_spec = InputSpec(min_ndim=3, max_ndim=4)

    def __call__(self, inputs, *args, **kwargs):
        if isinstance(inputs, dict):
            data, dtypes = image_boxes.prepare(self, inputs)
            return image_boxes.restore(super().__call__(data, *args, **kwargs), dtypes)
        return super().__call__(inputs, *args, **kwargs)

    def _error(self, message):
        return ValueError(f"Layer '{self.name}' ({type(self).__name__}): {message}")

    def _height_width(self, shape):
        """(height, width) of images of ``shape`` (rank 3 or 4) in the layer's data_format."""
        shape = tuple(shape)
        return (shape[-3], shape[-2]) if self.data_format == "channels_last" else (shape[-2], shape[-1])

    # ---- Keras's transformation protocol, for dict inputs --------------------------------------------------

    def get_random_transformation(self, data, training=True, seed=None):
        images = data["images"] if isinstance(data, dict) else data
        return {"input_shape": tuple(images.shape)}

    def transform_labels(self, labels, transformation=None, training=True):
        return labels

    def transform_bounding_boxes(self, bounding_boxes, transformation=None, training=True):
        return bounding_boxes

    def _dict_images(self, images, transformation, training):
        return self.call(images, training=training)

    def _dict_masks(self, masks, transformation, training):
        return masks

    def _call_dict(self, data, training):
        images = data["images"]
        single = images.ndim == 3
        transformation = self.get_random_transformation(data, training=training)
        out = dict(data)
        out["images"] = self._dict_images(images, transformation, training)
        if "bounding_boxes" in data:
            boxes = data["bounding_boxes"]
            if single:  # Keras's transform_single_bounding_box
                boxes = {**boxes, "boxes": ops.expand_dims(boxes["boxes"], 0),
                         "labels": ops.expand_dims(boxes["labels"], 0)}
            boxes = self.transform_bounding_boxes(boxes, transformation, training=training)
            if single:
                boxes = {**boxes, "boxes": ops.squeeze(boxes["boxes"], 0), "labels": ops.squeeze(boxes["labels"], 0)}
            out["bounding_boxes"] = boxes
        if "labels" in data:
            out["labels"] = self.transform_labels(data["labels"], transformation, training=training)
        if "segmentation_masks" in data:
            out["segmentation_masks"] = self._dict_masks(data["segmentation_masks"], transformation, training)
        return out

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = {**super().get_config(), "data_format": self.data_format}
        if self.bounding_box_format is not None:  # Keras writes it only when set
            config["bounding_box_format"] = self.bounding_box_format
        return config


class RandomImageLayer(ImageLayer):
    """An image layer that draws per-image random numbers and acts only when training.

    A geometric layer (``_GEOMETRIC``) splits its work as Keras does: ``_draw(batch, height, width)`` returns
    its numbers under the names of Keras's transformation dict, ``_apply(images, transformation,
    interpolation)`` moves the pixels of an NHWC batch, and ``transform_bounding_boxes`` the boxes, so that a
    dict's images, boxes and masks see the same numbers.  The others draw inside ``_augment``; their boxes and
    masks stay as they are (Keras's colour layers)."""

    _GEOMETRIC = False

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
        if isinstance(inputs, dict):
            return self._call_dict(inputs, training)
        if not training:
            return self._inference(inputs)
        return self._channels_last(inputs, self._augment)

    def _channels_last(self, inputs, fn):
        """``fn`` applied to ``inputs`` as an NHWC batch, the result given back in the inputs' layout."""
        single = inputs.ndim == 3
        x = reshape(inputs, (1,) + tuple(inputs.shape)) if single else inputs
        channels_first = self.data_format == "channels_first"
        out = fn(transpose(x, (0, 2, 3, 1)) if channels_first else x)
        out = transpose(out, (0, 3, 1, 2)) if channels_first else out
        return reshape(out, tuple(out.shape[1:])) if single else out

    def _inference(self, inputs):
        return inputs

    def _augment(self, images):
        if not self._GEOMETRIC:
            raise NotImplementedError
        batch, height, width = images.shape[:3]
        transformation = {**self._draw(batch, height, width), "input_shape": tuple(images.shape)}
        return self._apply(images, transformation, getattr(self, "interpolation", "bilinear"))

    # ---- Keras's transformation protocol ----------------------------------------------------------------

    def get_random_transformation(self, data, training=True, seed=None):
        """The numbers of one call, under Keras's names, with "input_shape"; None when not training or for
        a layer that draws inside its augmentation.  ``seed``: a one-off draw from that seed."""
        if not training or not self._GEOMETRIC:
            return None
        images = data["images"] if isinstance(data, dict) else data
        shape = tuple(images.shape)
        height, width = self._height_width(shape)
        saved = self._rng
        if seed is not None:
            self._rng = np.random.default_rng(seed)
        try:
            draw = self._draw(1 if len(shape) == 3 else shape[0], height, width)
        finally:
            self._rng = saved
        return {**draw, "input_shape": shape}

    def transform_images(self, images, transformation, training=True):
        """Images (rank 3 or 4, the layer's data_format) moved by ``transformation``."""
        return self._transform(images, transformation, training, getattr(self, "interpolation", "bilinear"))

    def transform_segmentation_masks(self, segmentation_masks, transformation, training=True):
        """Masks moved as the images, read with nearest interpolation (Keras's rule) so classes stay whole."""
        return self._transform(segmentation_masks, transformation, training, "nearest")

    def _transform(self, images, transformation, training, interpolation):
        images = ops.convert_to_tensor(images)
        images = images if images.dtype == "float32" else ops.cast(images, "float32")
        if not training or transformation is None:
            return images
        return self._channels_last(images, lambda x: self._apply(x, transformation, interpolation))

    def _dict_images(self, images, transformation, training):
        if not training:
            return self._inference(images)
        if transformation is None:
            return self.call(images, training=True)
        return self.transform_images(images, transformation)

    def _dict_masks(self, masks, transformation, training):
        if not self._GEOMETRIC:
            return masks
        if not training:
            return self._inference_masks(masks)
        return self.transform_segmentation_masks(masks, transformation)

    def _inference_masks(self, masks):
        return masks

    def _transformation_size(self, transformation):
        """(height, width) of the images a transformation was drawn for (Keras's RandomRotation writes
        image_height and image_width instead of input_shape)."""
        if "input_shape" in transformation:
            return self._height_width(transformation["input_shape"])
        return int(transformation["image_height"]), int(transformation["image_width"])

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

    def call(self, inputs, training=None):
        if isinstance(inputs, dict):
            return self._call_dict(inputs, training)
        return self._in_compute_dtype(self._resize(inputs, self.interpolation))

    def _resize(self, images, interpolation):
        return image.resize(images, (self.height, self.width), interpolation,
                            crop_to_aspect_ratio=self.crop_to_aspect_ratio,
                            pad_to_aspect_ratio=self.pad_to_aspect_ratio, fill_value=self.fill_value)

    def get_random_transformation(self, data, training=True, seed=None):
        """(input height, input width), as Keras's Resizing."""
        images = data["images"] if isinstance(data, dict) else data
        return self._height_width(images.shape)

    def _dict_masks(self, masks, transformation, training):
        return self._resize(masks, "nearest")

    def transform_bounding_boxes(self, bounding_boxes, transformation, training=True):
        """Keras's arithmetic: boxes scaled (and offset by the padding, or the crop, to the target aspect
        ratio), clipped to the output, and the padding rows (all 0 or all -1) set to 0."""
        in_h, in_w = (int(v) for v in transformation)
        boxes = image_boxes.raw(bounding_boxes["boxes"]).astype(np.float32, copy=False)
        xp = array_module(boxes)
        padding = xp.all(boxes == -1, axis=-1) | xp.all(boxes == 0, axis=-1)
        xyxy = image_boxes.to_xyxy(boxes, self.bounding_box_format, in_h, in_w)
        scale_x, scale_y, offset_x, offset_y = self._box_map(in_h, in_w)
        scale = xp.asarray(np.array([scale_x, scale_y, scale_x, scale_y], np.float32))
        offset = xp.asarray(np.array([offset_x, offset_y, offset_x, offset_y], np.float32))
        xyxy, labels = image_boxes.clip(xyxy * scale + offset, bounding_boxes["labels"], self.height, self.width)
        xyxy = xp.where(padding[..., None], np.float32(0), xyxy)
        return image_boxes.result(bounding_boxes, image_boxes.from_xyxy(xyxy, self.bounding_box_format,
                                                                        self.height, self.width), labels)

    def _box_map(self, in_h, in_w):
        """(scale_x, scale_y, offset_x, offset_y) in float32, as Keras's _transform_boxes_* compute them."""
        f = np.float32
        in_h, in_w = f(in_h), f(in_w)
        if self.pad_to_aspect_ratio:
            ratio = min(f(self.height) / in_h, f(self.width) / in_w)
            # the padding each side, floored; the 1e-4 keeps the side that fills the target at 0 (Keras's
            # float32 product can land an ulp above the target there and floor to -1, a pixel off)
            return ratio, ratio, f(np.floor((self.width - in_w * ratio) / 2 + 1e-4)), \
                f(np.floor((self.height - in_h * ratio) / 2 + 1e-4))
        if self.crop_to_aspect_ratio:
            source, target = in_w / in_h, self.width / self.height
            new_w = f(self.height) * source if source > target else f(self.width)
            new_h = f(self.height) if source > target else f(self.width) / source
            return new_w / in_w, new_h / in_h, -((new_w - f(self.width)) // f(2)), -((new_h - f(self.height)) // f(2))
        return f(self.width) / in_w, f(self.height) / in_h, f(0), f(0)

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


def _window_boxes(layer, bounding_boxes, xyxy, top, left, crop_h, crop_w):
    """"xyxy" boxes cut to the window (top, left, crop_h, crop_w) of their image (numbers, or (batch,) arrays
    for one window per image) and scaled from the window to the layer's (height, width), clipped there and
    given back in the layer's format (Keras's CenterCrop arithmetic)."""
    xp = array_module(xyxy)

    def column(v):
        v = np.asarray(v, dtype=np.float32)
        return xp.asarray(v.reshape(v.shape + (1,) * (xyxy.ndim - 1 - v.ndim)))
    top, left, crop_h, crop_w = (column(v) for v in (top, left, crop_h, crop_w))
    x1, y1, x2, y2 = (xyxy[..., i] for i in range(4))
    sx, sy = np.float32(layer.width) / crop_w, np.float32(layer.height) / crop_h
    cut = [(xp.clip(x1, left, left + crop_w) - left) * sx, (xp.clip(y1, top, top + crop_h) - top) * sy,
           (xp.clip(x2, left, left + crop_w) - left) * sx, (xp.clip(y2, top, top + crop_h) - top) * sy]
    xyxy, labels = image_boxes.clip(xp.stack(cut, axis=-1), bounding_boxes["labels"], layer.height, layer.width)
    return image_boxes.result(bounding_boxes, image_boxes.from_xyxy(xyxy, layer.bounding_box_format, layer.height,
                                                                    layer.width), labels)


class CenterCrop(ImageLayer):
    """The central (height, width) window; an image smaller on either side is instead cropped to the target
    aspect ratio and resized (keras.layers.CenterCrop)."""

    def __init__(self, height, width, data_format=None, **kwargs):
        super().__init__(data_format=data_format, **kwargs)
        self.height = _positive_int(self, "height", height)
        self.width = _positive_int(self, "width", width)

    def call(self, inputs, training=None):
        if isinstance(inputs, dict):
            return self._call_dict(inputs, training)
        in_h, in_w = inputs.shape[-3], inputs.shape[-2]
        if in_h < self.height or in_w < self.width:
            return _smart_resize(inputs, self.height, self.width)
        top, left = (in_h - self.height) // 2, (in_w - self.width) // 2
        window = (slice(top, top + self.height), slice(left, left + self.width))
        return _getitem(inputs, window if inputs.ndim == 3 else (slice(None),) + window)

    def _dict_masks(self, masks, transformation, training):
        return self.call(masks)  # as Keras: the images' transform, bilinear where it resizes

    def transform_bounding_boxes(self, bounding_boxes, transformation, training=True):
        """Keras's: boxes cut to the central window; for an image smaller than the target, to the window of
        the target's aspect ratio, then scaled to the target."""
        in_h, in_w = (int(v) for v in self._height_width(transformation["input_shape"]))
        xyxy = image_boxes.to_xyxy(bounding_boxes["boxes"], self.bounding_box_format, in_h, in_w)
        if in_h >= self.height and in_w >= self.width:
            window = ((in_h - self.height) // 2, (in_w - self.width) // 2, self.height, self.width)
        else:
            crop_h, crop_w = image.aspect_crop_box(in_h, in_w, self.height, self.width)
            window = ((in_h - crop_h) // 2, (in_w - crop_w) // 2, crop_h, crop_w)
        return _window_boxes(self, bounding_boxes, xyxy, *window)

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

    _GEOMETRIC = True

    def __init__(self, height, width, seed=None, data_format=None, **kwargs):
        super().__init__(seed=seed, data_format=data_format, **kwargs)
        self.height = _positive_int(self, "height", height)
        self.width = _positive_int(self, "width", width)

    def _inference(self, inputs):
        return self._inference_resize(inputs, "bilinear")

    def _inference_masks(self, masks):
        return self._inference_resize(masks, "nearest")

    def _inference_resize(self, inputs, interpolation):
        if tuple(inputs.shape[-3:-1]) == (self.height, self.width):
            return inputs
        return image.resize(inputs, (self.height, self.width), interpolation, crop_to_aspect_ratio=True)

    def _draw(self, batch, in_h, in_w):
        """{"top", "left"}: (batch,) window corners; {} for images smaller than the target (resized)."""
        if in_h < self.height or in_w < self.width:
            return {}
        top = np.floor(self._uniform(0, 1, batch) * (in_h - self.height + 1)).astype(np.int64)
        left = np.floor(self._uniform(0, 1, batch) * (in_w - self.width + 1)).astype(np.int64)
        return {"top": top, "left": left}

    def _apply(self, images, transformation, interpolation):
        if "top" not in transformation:
            return image.resize(images, (self.height, self.width), interpolation, crop_to_aspect_ratio=True)
        xp = array_module(images.data)
        batch = images.shape[0]
        top, left = (np.asarray(transformation[k], np.int64).reshape(-1) for k in ("top", "left"))
        rows = top[:, None, None] + np.arange(self.height)[None, :, None]
        cols = left[:, None, None] + np.arange(self.width)[None, None, :]
        index = (np.arange(batch)[:, None, None], rows, cols)
        return _getitem(images, tuple(xp.asarray(i) for i in index))

    def get_random_transformation(self, data, training=True, seed=None):
        if training:
            return super().get_random_transformation(data, training, seed)
        images = data["images"] if isinstance(data, dict) else data
        return {"input_shape": tuple(images.shape), "inference": True}

    def transform_bounding_boxes(self, bounding_boxes, transformation, training=True):
        """Boxes cut to each image's window and clipped there (a box left empty gets label -1); where the
        images are resized instead (smaller than the target, or at inference), as CenterCrop's boxes.

        Keras's RandomCrop subtracts the window's top from x and its left from y and does not clip
        (keras/src/layers/preprocessing/image_preprocessing/random_crop.py, 3.15), so it is not followed."""
        in_h, in_w = (int(v) for v in self._transformation_size(transformation))
        xyxy = image_boxes.to_xyxy(bounding_boxes["boxes"], self.bounding_box_format, in_h, in_w)
        if "top" in transformation:
            window = (transformation["top"], transformation["left"], self.height, self.width)
        elif (in_h, in_w) == (self.height, self.width):
            return bounding_boxes
        else:
            crop_h, crop_w = image.aspect_crop_box(in_h, in_w, self.height, self.width)
            window = ((in_h - crop_h) // 2, (in_w - crop_w) // 2, crop_h, crop_w)
        return _window_boxes(self, bounding_boxes, xyxy, *window)

    def compute_output_shape(self, input_shape):
        return _resized_shape(input_shape, self.height, self.width)

    def get_config(self):
        return {**super().get_config(), "height": self.height, "width": self.width}
