"""MaxNumBoundingBoxes (keras.layers.MaxNumBoundingBoxes): every image's boxes padded or cut to ``max_number``,
so that a batch of detection targets has one shape."""

from __future__ import annotations

import numpy as np

from dlgpu.layers import image_boxes
from dlgpu.layers.image_preprocessing import ImageLayer
from dlgpu.ops._core import array_module


class MaxNumBoundingBoxes(ImageLayer):
    """Boxes (batch, N, 4) and labels (batch, N) cut to the first ``max_number`` or padded to it with
    ``fill_value`` (boxes and labels alike, as Keras); images, labels and masks pass through.  As every
    Keras image layer given boxes, it needs ``bounding_box_format``."""

    def __init__(self, max_number, fill_value=-1, **kwargs):
        super().__init__(**kwargs)
        if isinstance(max_number, bool) or not isinstance(max_number, (int, np.integer)) or max_number < 1:
            raise self._error(f"`max_number` must be a positive integer. Received: max_number={max_number!r}")
        if isinstance(fill_value, bool) or not isinstance(fill_value, (int, float, np.integer, np.floating)):
            raise self._error(f"`fill_value` must be a number. Received: fill_value={fill_value!r}")
        self.max_number = int(max_number)
        self.fill_value = int(fill_value)

    def call(self, inputs, training=None):
        if isinstance(inputs, dict):
            return self._call_dict(inputs, training)
        return inputs

    def transform_images(self, images, transformation=None, training=True):
        return images

    def transform_bounding_boxes(self, bounding_boxes, transformation=None, training=True):
        boxes = image_boxes.raw(bounding_boxes["boxes"])
        labels = image_boxes.raw(bounding_boxes["labels"])
        xp = array_module(boxes)
        batch, count = boxes.shape[:2]
        keep = min(count, self.max_number)
        out_boxes = xp.full((batch, self.max_number, 4), self.fill_value, dtype=boxes.dtype)
        out_labels = xp.full((batch, self.max_number), self.fill_value, dtype=labels.dtype)
        out_boxes[:, :keep] = boxes[:, :keep]
        out_labels[:, :keep] = labels[:, :keep]
        return image_boxes.result(bounding_boxes, out_boxes, out_labels)

    def compute_output_shape(self, input_shape):
        if isinstance(input_shape, dict) and "bounding_boxes" in input_shape:
            boxes = dict(input_shape["bounding_boxes"])
            boxes["boxes"] = tuple(boxes["boxes"][:-2]) + (self.max_number, 4)
            boxes["labels"] = tuple(boxes["labels"][:-1]) + (self.max_number,)
            return {**input_shape, "bounding_boxes": boxes}
        return input_shape

    def get_config(self):
        # Keras writes max_number only, so its fill_value does not survive a round trip; dlgpu writes both
        return {**super().get_config(), "max_number": self.max_number, "fill_value": self.fill_value}
