"""MixUp and CutMix: each image of a batch mixed with another image of the same batch (a random permutation),
its labels mixed in the same proportion (keras.layers.MixUp, keras.layers.CutMix).

Like Keras they take a batch of images, or a dict ``{"images": ..., "labels": ...}`` (how a data pipeline
calls them: ``ds.map(lambda x, y: ...)``), and return the same form; other keys of the dict pass through.
Labels are one-hot or class probabilities, (batch, classes) or any rank >= 2: integer class ids cannot be
mixed.  A single (rank 3) image has no other image to mix with and comes back as it is.  They act only when
training, as the other augmentations (see image_preprocessing.py).

Keras's deterministic path is kept: ``get_random_transformation(data)`` draws the numbers (on the host, from
the layer's generator with ``seed=``, else dlgpu's), ``transform_images`` and ``transform_labels`` apply a
transformation dict, with Keras's keys, shapes and float32 arithmetic.
"""

from __future__ import annotations

import numpy as np

from dlgpu import ops
from dlgpu.autograd import Tensor
from dlgpu.backend.device import to_numpy
from dlgpu.layers import image_boxes
from dlgpu.layers.image_color import _bounded_factor, _number
from dlgpu.layers.image_preprocessing import RandomImageLayer
from dlgpu.ops._core import array_module
from dlgpu.ops.nn import _generator
from dlgpu.rematerialization import observed


def _host(value, dtype):
    """A transformation entry (numpy, CuPy or a Tensor) as a numpy array of ``dtype``."""
    return np.asarray(to_numpy(value.data if isinstance(value, Tensor) else value), dtype=dtype)


def _on(xp, value):
    """A transformation entry as an array of module ``xp`` (the images')."""
    value = value.data if isinstance(value, Tensor) else value
    return xp.asarray(to_numpy(value)) if xp is np else xp.asarray(value)


def _module_of(x):
    return array_module(x.data if isinstance(x, Tensor) else x)


def _float_tensor(x):
    x = ops.convert_to_tensor(x)
    return x if x.dtype == "float32" else ops.cast(x, "float32")


class _MixingLayer(RandomImageLayer):
    """Images, or {"images", "labels"} dicts, mixed across the batch by a permutation."""

    _REFUSED_KEYS = ("segmentation_masks",)
    _MIXES_LABELS = True

    def _rng_for(self, seed):
        if seed is not None:  # Keras's `seed=` of get_random_transformation: a one-off draw
            return np.random.default_rng(seed)
        return observed(self._rng or _generator(np))

    def _check_data(self, data):
        if "images" not in data:
            raise self._error(f"a dict input needs an 'images' entry; received keys {sorted(data)}")
        images = data["images"]
        if images.ndim not in (3, 4):
            raise self._error(f"expected images of rank 3 (one image) or 4 (a batch); received shape "
                              f"{tuple(images.shape)}")
        labels = data.get("labels")
        if labels is not None and images.ndim == 4 and (labels.ndim < 2 or labels.shape[0] != images.shape[0]):
            raise self._error(f"'labels' must be one-hot or probabilities, (batch, classes), for images of shape "
                              f"{tuple(images.shape)}; received labels of shape {tuple(labels.shape)} "
                              f"(integer class ids cannot be mixed: one-hot encode them first)")

    def call(self, inputs, training=True):
        if training is None:  # no training= anywhere above: Keras's signature default, augment
            training = True
        data = dict(inputs) if isinstance(inputs, dict) else {"images": inputs}
        self._check_data(data)
        if not training or data["images"].ndim == 3:
            return inputs
        transformation = self.get_random_transformation(data)
        data["images"] = self.transform_images(data["images"], transformation)
        if data.get("labels") is not None:
            data["labels"] = self.transform_labels(data["labels"], transformation)
        if "bounding_boxes" in data:
            data["bounding_boxes"] = self.transform_bounding_boxes(data["bounding_boxes"], transformation)
        return data if isinstance(inputs, dict) else data["images"]

    @staticmethod
    def _images_of(data):
        return data["images"] if isinstance(data, dict) else data

    def _mix(self, x, other, weight):
        """weight * x + (1 - weight) * other, weight (batch,) broadcast over x's other axes."""
        xp = array_module(x.data)
        weight = _host(weight, np.float32).reshape((-1,) + (1,) * (x.ndim - 1))
        return ops.add(ops.multiply(xp.asarray(weight), x), ops.multiply(xp.asarray(np.float32(1) - weight), other))

    @staticmethod
    def _permuted(x, transformation):
        xp = array_module(x.data)
        return ops.take(x, xp.asarray(_host(transformation["permutation_order"], np.int64)), axis=0)


class MixUp(_MixingLayer):
    """Each image (and label) replaced by w * x + (1 - w) * x[p], w drawn per image from Beta(alpha, alpha)
    and p a random permutation of the batch (keras.layers.MixUp; Zhang et al., 2017)."""

    def __init__(self, alpha=0.2, data_format=None, seed=None, **kwargs):
        super().__init__(seed=seed, data_format=data_format, **kwargs)
        if not _number(alpha) or alpha <= 0:
            raise self._error(f"`alpha` must be a positive number (the Beta distribution's parameters). "
                              f"Received: alpha={alpha!r}")
        self.alpha = alpha

    def get_random_transformation(self, data, training=True, seed=None):
        """{"mix_weight": (batch,) float32, "permutation_order": (batch,) int64}, drawn on the host."""
        images = self._images_of(data)
        batch = 1 if len(images.shape) == 3 else images.shape[0]
        rng = self._rng_for(seed)
        permutation = rng.permutation(batch).astype(np.int64)
        mix_weight = rng.beta(self.alpha, self.alpha, batch).astype(np.float32)
        return {"mix_weight": mix_weight, "permutation_order": permutation}

    def transform_images(self, images, transformation=None, training=True):
        images = _float_tensor(images)
        if not training:
            return images
        return self._mix(images, self._permuted(images, transformation), transformation["mix_weight"])

    def transform_labels(self, labels, transformation, training=True):
        labels = _float_tensor(labels)
        if not training:
            return labels
        return self._mix(labels, self._permuted(labels, transformation), transformation["mix_weight"])

    def transform_bounding_boxes(self, bounding_boxes, transformation, training=True):
        """Each image keeps its boxes and gains those of the image mixed into it: (batch, 2 N, 4) boxes and
        (batch, 2 N) labels, in any format.  Keras 3.15 joins the labels along the batch axis instead,
        (2 batch, N), which no longer matches the boxes."""
        if not training:
            return bounding_boxes
        boxes, labels = (image_boxes.raw(bounding_boxes[k]) for k in ("boxes", "labels"))
        xp = array_module(boxes)
        order = xp.asarray(_host(transformation["permutation_order"], np.int64))
        return image_boxes.result(bounding_boxes, xp.concatenate([boxes, boxes[order]], axis=1),
                                  xp.concatenate([labels, labels[order]], axis=1))

    def get_config(self):
        return {**super().get_config(), "alpha": self.alpha}


class CutMix(_MixingLayer):
    """A rectangle of each image replaced by the same rectangle of image p (a random permutation of the batch),
    the labels mixed by the area kept (keras.layers.CutMix; Yun et al., 2019).

    Per batch a Beta parameter a is drawn from ``factor`` (a number f gives [0, f]) plus 1e-6; per image a
    weight w from Beta(a, a); the rectangle's sides are sqrt(1 - w) times the image's, placed uniformly at
    random.  The label weight is 1 - (rectangle area) / (image area).  Bounding boxes are refused, as by Keras
    (boxes cut by a pasted rectangle have no agreed meaning)."""

    _REFUSED_KEYS = ("bounding_boxes", "segmentation_masks")

    def __init__(self, factor=1.0, seed=None, data_format=None, **kwargs):
        super().__init__(seed=seed, data_format=data_format, **kwargs)
        self.factor = _bounded_factor(self, factor, 0, 1)

    def get_random_transformation(self, data, training=True, seed=None):
        """{"permutation_order": (batch,), "batch_masks": (batch, h, w, c) bool on the images' device,
        "mix_weight": (batch, 1, 1, 1) float32}; None for one image or at inference, as Keras."""
        images = self._images_of(data)
        if not training or len(images.shape) == 3:
            return None
        batch, height, width = images.shape[:3]
        rng = self._rng_for(seed)
        alpha = np.float32(rng.uniform(self.factor[0], self.factor[1])) + np.float32(1e-6)
        ratio = np.sqrt(np.float32(1) - rng.beta(alpha, alpha, batch).astype(np.float32))
        x0, x1 = self._crop_bounds(rng, batch, width, ratio)
        y0, y1 = self._crop_bounds(rng, batch, height, ratio)
        permutation = rng.permutation(batch).astype(np.int64)
        masks, mix_weight = self._batch_masks(tuple(images.shape), (x0, x1, y0, y1), _module_of(images))
        return {"permutation_order": permutation, "batch_masks": masks, "mix_weight": mix_weight}

    @staticmethod
    def _crop_bounds(rng, batch, length, ratio):
        crop = (ratio * np.float32(length)).astype(np.float32)
        start = rng.uniform(0.0, 1.0, batch).astype(np.float32) * (np.float32(length) - crop)
        return start, start + crop

    @staticmethod
    def _batch_masks(shape, corners, xp=np):
        """Keras's _generate_batch_mask: pixel (row y, column x) is pasted when x0 <= x < x1 and y0 <= y < y1
        (float corners, compared with the integer pixel indices)."""
        batch, height, width, channels = shape
        x0, x1, y0, y1 = (_host(c, np.float32).reshape(-1, 1, 1, 1) for c in corners)
        rows = xp.arange(height, dtype=xp.float32)[None, :, None, None]
        cols = xp.arange(width, dtype=xp.float32)[None, None, :, None]
        inside = ((cols >= xp.asarray(x0)) & (cols < xp.asarray(x1)) & (rows >= xp.asarray(y0))
                  & (rows < xp.asarray(y1)))
        mix_weight = np.float32(1) - (x1 - x0) * (y1 - y0) / np.float32(width * height)
        return xp.broadcast_to(inside, (batch, height, width, channels)), mix_weight

    def transform_images(self, images, transformation=None, training=True):
        images = _float_tensor(images)
        if not training or transformation is None:
            return images
        masks = _on(array_module(images.data), transformation["batch_masks"])
        return ops.where(masks, self._permuted(images, transformation), images)

    def transform_labels(self, labels, transformation, training=True):
        labels = _float_tensor(labels)
        if not training or transformation is None:
            return labels
        return self._mix(labels, self._permuted(labels, transformation), transformation["mix_weight"])

    def get_config(self):
        return {**super().get_config(), "factor": self.factor}
