"""keras.visualization's drawing functions: boxes and segmentation masks painted into image arrays.

Host-side numpy (images of any device are copied to the host first).  Boxes are drawn without OpenCV,
which Keras 3.15 needs for them: an outline ``line_thickness`` pixels wide centred on the box's edges
(exactly cv2.rectangle's for thickness 1); labels are written with Pillow (``pip install pillow``), so their
glyphs differ from OpenCV's Hershey font.
"""

from __future__ import annotations

import numpy as np

from dlgpu.utils import bounding_boxes as _boxes


def _host(x):
    from dlgpu.backend.device import to_numpy
    return np.asarray(to_numpy(x) if not isinstance(x, (np.ndarray, list, tuple)) else x)


def _data_format(data_format):
    from dlgpu import config
    data_format = data_format or config.image_data_format()
    if data_format not in ("channels_last", "channels_first"):
        raise ValueError(f"data_format must be 'channels_last' or 'channels_first'; received {data_format!r}")
    return data_format


def _batched_images(images, function):
    images = _host(images)
    if images.ndim != 4:
        raise ValueError(f"{function}: `images` must be batched 4D tensor. Received: images.shape={images.shape}")
    return images


def _to_uint8(images):
    """As Keras: floats in [0, 1] are scaled to [0, 255], other floats clipped to it."""
    if images.dtype.kind == "f" and images.size > 0:
        images = np.clip(images, 0, 1) * 255 if images.max() <= 1.0 else np.clip(images, 0, 255)
    return images.astype("uint8")


def _paint_rectangle(image, x1, y1, x2, y2, color, thickness):
    """An outline ``thickness`` pixels wide centred on the edges of [x1, x2] x [y1, y2] (inclusive), clipped
    to the image; ``thickness`` < 0 fills the box, as cv2.rectangle."""
    height, width = image.shape[:2]
    color = np.asarray(color, np.float64)[: image.shape[-1]].astype(image.dtype)
    x1, x2 = min(x1, x2), max(x1, x2)
    y1, y2 = min(y1, y2), max(y1, y2)
    if thickness < 0:
        bands = [(y1, y2 + 1, x1, x2 + 1)]
    else:
        thickness = max(int(thickness), 1)
        before, after = (thickness - 1) // 2, thickness // 2 + 1  # thickness rows/columns around each edge
        bands = [(y1 - before, y1 + after, x1 - before, x2 + after), (y2 - before, y2 + after, x1 - before, x2 + after),
                 (y1 - before, y2 + after, x1 - before, x1 + after), (y1 - before, y2 + after, x2 - before, x2 + after)]
    for top, bottom, left, right in bands:
        top, left = max(top, 0), max(left, 0)
        bottom, right = min(bottom, height), min(right, width)
        if top < bottom and left < right:
            image[top:bottom, left:right] = color


def _find_text_location(x, y, font_scale, thickness):
    """Keras's: above the box when there is room, else just inside its top-left corner."""
    font_height = int(font_scale * 12)
    if y - 8 - 2 * font_height > 0:
        return x, y - 8
    return x + 3, y + 2 * font_height + thickness + 3


def _write_text(image, text, origin, color, font_scale, thickness):
    try:
        from PIL import Image, ImageDraw, ImageFont
    except ImportError:
        raise ImportError("draw_bounding_boxes writes class labels with Pillow: pip install pillow (or "
                          "`pip install 'dlgpu[images]'`), or pass class_mapping=None to draw boxes only.") from None
    canvas = Image.fromarray(image if image.shape[-1] != 1 else image[..., 0])
    try:
        font = ImageFont.load_default(size=max(int(round(20 * font_scale)), 6))
    except TypeError:  # Pillow < 10.1: one bitmap size
        font = ImageFont.load_default()
    fill = tuple(int(c) for c in color[: image.shape[-1]]) if image.shape[-1] != 1 else int(color[0])
    # cv2.putText's origin is the bottom-left of the text: the baseline ("ls")
    ImageDraw.Draw(canvas).text(origin, text, fill=fill, font=font, anchor="ls", stroke_width=max(thickness - 1, 0),
                                stroke_fill=fill)
    image[...] = np.asarray(canvas).reshape(image.shape)


def draw_bounding_boxes(images, bounding_boxes, bounding_box_format, class_mapping=None, color=(128, 128, 128),
                        line_thickness=2, text_thickness=1, font_scale=1.0, data_format=None):
    """The images (uint8, same shape) with the boxes drawn; ``bounding_boxes`` is a dict with "boxes"
    (batch, num_boxes, 4) in ``bounding_box_format``, "labels" (batch, num_boxes; -1 marks padding, not
    drawn) and optionally "confidences".  Boxes whose label is in ``class_mapping`` get the class name (and
    confidence) written above them."""
    class_mapping = class_mapping or {}
    text_thickness = text_thickness or line_thickness
    data_format = _data_format(data_format)
    images = _batched_images(images, "draw_bounding_boxes")
    if not isinstance(bounding_boxes, dict):
        raise TypeError(f"`bounding_boxes` should be a dict. Received: bounding_boxes={bounding_boxes} of type "
                        f"{type(bounding_boxes)}")
    if "boxes" not in bounding_boxes or "labels" not in bounding_boxes:
        raise ValueError(f"`bounding_boxes` should be a dict containing 'boxes' and 'labels' keys. Received: "
                         f"bounding_boxes={bounding_boxes}")
    if data_format == "channels_first":
        images = images.transpose(0, 2, 3, 1)
    height, width = images.shape[1:3]
    boxes = _host(_boxes.convert_format(_host(bounding_boxes["boxes"]), bounding_box_format, "xyxy", height, width))
    labels = _host(bounding_boxes["labels"])
    confidences = _host(bounding_boxes["confidences"]) if "confidences" in bounding_boxes else None
    if boxes.ndim != 3 or boxes.shape[0] != images.shape[0] or labels.shape != boxes.shape[:2]:
        raise ValueError(f"draw_bounding_boxes: expected boxes of shape (batch, num_boxes, 4) and labels of shape "
                         f"(batch, num_boxes) for {images.shape[0]} images; received boxes {boxes.shape} and "
                         f"labels {labels.shape}")
    images = _to_uint8(images)
    for i in range(images.shape[0]):
        for j in range(boxes.shape[1]):
            c = int(labels[i, j])
            if c == -1:
                continue
            x1, y1, x2, y2 = (int(v) for v in boxes[i, j].astype("int32"))
            _paint_rectangle(images[i], x1, y1, x2, y2, color, line_thickness)
            if c in class_mapping:
                label = str(class_mapping[c])
                if confidences is not None:
                    label = f"{label} | {float(confidences[i, j]):.2f}"
                origin = _find_text_location(x1, y1, font_scale, text_thickness)
                _write_text(images[i], label, origin, color, font_scale, text_thickness)
    return images.transpose(0, 3, 1, 2) if data_format == "channels_first" else images


def _generate_color_palette(num_classes):
    palette = np.array([2 ** 25 - 1, 2 ** 15 - 1, 2 ** 21 - 1])
    return [((i * palette) % 255).tolist() for i in range(num_classes)]


def draw_segmentation_masks(images, segmentation_masks, num_classes=None, color_mapping=None, alpha=0.8, blend=True,
                            ignore_index=-1, data_format=None):
    """The images with each class of ``segmentation_masks`` (integer, (batch, H, W, 1) or (batch, H, W))
    painted in its colour: blended with weight ``alpha`` (uint8 result), or, with ``blend=False``, painted
    over (float32, as Keras).  Pixels equal to ``ignore_index`` stay as they were.  ``color_mapping`` maps
    each class 0 .. num_classes-1 to an RGB colour (default: Keras's palette).  ``num_classes`` defaults
    to the largest class present plus one (Keras 3.15 infers the largest class itself, which then goes
    unpainted)."""
    data_format = _data_format(data_format)
    images = _batched_images(images, "draw_segmentation_masks").astype(np.float32)
    masks = _host(segmentation_masks)
    if masks.dtype.kind not in "iu":
        raise TypeError(f"`segmentation_masks` must be in integer dtype. Received: "
                        f"segmentation_masks.dtype={masks.dtype}")
    if data_format == "channels_first":
        images = images.transpose(0, 2, 3, 1)
        masks = masks.transpose(0, 2, 3, 1) if masks.ndim == 4 else masks
    if masks.ndim == 4:
        if masks.shape[-1] != 1:
            raise ValueError(f"`segmentation_masks` must have one channel; received shape {masks.shape}")
        masks = masks[..., 0]
    if masks.shape != images.shape[:3]:
        raise ValueError(f"draw_segmentation_masks: masks of shape {masks.shape} do not match images of shape "
                         f"{images.shape} (expected (batch, height, width) or (batch, height, width, 1))")
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"`alpha` must be in [0, 1]; received alpha={alpha}")
    if num_classes is None:
        num_classes = int(masks.max()) + 1 if masks.size else 0
    if color_mapping is None:
        colors = _generate_color_palette(num_classes)
    else:
        missing = [i for i in range(num_classes) if i not in color_mapping]
        if missing:
            raise ValueError(f"`color_mapping` needs a colour for every class 0 .. {num_classes - 1}; missing "
                             f"{missing}")
        colors = [color_mapping[i] for i in range(num_classes)]
    drawn = images.copy()
    # one pass over the classes, as a palette lookup: pixels of classes outside [0, num_classes) keep theirs
    palette = np.asarray(colors, np.float32).reshape(num_classes, -1)[:, : images.shape[-1]]
    painted = (masks >= 0) & (masks < num_classes)
    drawn[painted] = palette[masks[painted]]
    if blend:
        out = images * (1 - alpha) + drawn * alpha
        out = np.where((masks != ignore_index)[..., None], out, images).astype("uint8")
    else:
        out = drawn
    # (Keras 3.15 returns channels_last whatever the input's format; dlgpu returns the input's)
    return out.transpose(0, 3, 1, 2) if data_format == "channels_first" else out
