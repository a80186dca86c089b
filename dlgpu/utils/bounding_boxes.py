"""keras.utils.bounding_boxes: box format conversion, clipping, cropping, padding, affine transforms, the
delta encoding of detection heads, IoU and CIoU, as Keras 3.15's (keras/src/layers/preprocessing/
image_preprocessing/bounding_boxes/).

Formats (case-insensitive): "xyxy" [left, top, right, bottom], "yxyx", "xywh" [left, top, width, height],
"center_xywh", "center_yxhw", and "rel_xyxy", "rel_yxyx", "rel_xywh", "rel_center_xywh", whose coordinates
are fractions of the image's width and height.

Boxes are arrays whose last axis is 4: numpy or CuPy arrays (the result is of the same kind, computed with
that array module, on that device), or dlgpu Tensors (a Tensor comes back); these are host-side
preprocessing helpers, not differentiable ops.
"""

from __future__ import annotations

import math

import numpy as np

from dlgpu.backend.cpu._common import array_module

SUPPORTED_FORMATS = ("xyxy", "yxyx", "xywh", "center_xywh", "center_yxhw", "rel_xyxy", "rel_yxyx", "rel_xywh",
                     "rel_center_xywh")

__all__ = ["affine_transform", "clip_to_image_size", "compute_ciou", "compute_iou", "convert_format", "crop",
           "decode_deltas_to_boxes", "encode_box_to_deltas", "pad"]


def _unwrap(x):
    """(raw array, whether it came as a dlgpu Tensor)."""
    from dlgpu.autograd import Tensor
    if isinstance(x, Tensor):
        return x.data, True
    if type(x).__module__.startswith("cupy"):
        return x, False
    return np.asarray(x), False


def _wrap(x, as_tensor):
    from dlgpu.autograd import Tensor
    return Tensor(x) if as_tensor else x


def _split(boxes):
    return [boxes[..., i:i + 1] for i in range(4)]


def _to_xyxy(boxes, source, height, width):
    xp = array_module(boxes)
    a, b, c, d = _split(boxes)
    if source == "xyxy":
        return boxes
    if source == "yxyx":
        return xp.concatenate([b, a, d, c], axis=-1)
    if source == "xywh":
        return xp.concatenate([a, b, a + c, b + d], axis=-1)
    if source == "center_xywh":
        return xp.concatenate([a - c / 2.0, b - d / 2.0, a + c / 2.0, b + d / 2.0], axis=-1)
    if source == "center_yxhw":
        return xp.concatenate([b - d / 2.0, a - c / 2.0, b + d / 2.0, a + c / 2.0], axis=-1)
    if source == "rel_xyxy":
        return xp.concatenate([a * width, b * height, c * width, d * height], axis=-1)
    if source == "rel_yxyx":
        return xp.concatenate([b * width, a * height, d * width, c * height], axis=-1)
    if source == "rel_xywh":
        return xp.concatenate([a * width, b * height, (a + c) * width, (b + d) * height], axis=-1)
    # rel_center_xywh
    return xp.concatenate([(a - c / 2.0) * width, (b - d / 2.0) * height, (a + c / 2.0) * width,
                           (b + d / 2.0) * height], axis=-1)


def _from_xyxy(boxes, target, height, width):
    xp = array_module(boxes)
    x1, y1, x2, y2 = _split(boxes)
    w, h = x2 - x1, y2 - y1
    cx, cy = x1 + w / 2.0, y1 + h / 2.0
    table = {"xyxy": lambda: boxes, "yxyx": lambda: [y1, x1, y2, x2], "xywh": lambda: [x1, y1, w, h],
             "center_xywh": lambda: [cx, cy, w, h], "center_yxhw": lambda: [cy, cx, h, w],
             "rel_xyxy": lambda: [x1 / width, y1 / height, x2 / width, y2 / height],
             "rel_yxyx": lambda: [y1 / height, x1 / width, y2 / height, x2 / width],
             "rel_xywh": lambda: [x1 / width, y1 / height, w / width, h / height],
             "rel_center_xywh": lambda: [cx / width, cy / height, w / width, h / height]}
    out = table[target]()
    return out if target == "xyxy" else xp.concatenate(out, axis=-1)


def _convert(boxes, source, target, height=None, width=None, dtype="float32"):
    """convert_format on a raw array."""
    if boxes.shape[-1:] != (4,):
        raise ValueError(f"`boxes` must be a tensor with the last dimension of 4. Received: "
                         f"boxes.shape={tuple(boxes.shape)}")
    source, target = str(source).lower(), str(target).lower()
    if source not in SUPPORTED_FORMATS or target not in SUPPORTED_FORMATS:
        raise ValueError(f"Invalid source or target format (source={source!r}, target={target!r}). Supported "
                         f"formats: {SUPPORTED_FORMATS}")
    if (source.startswith("rel_") or target.startswith("rel_")) and (width is None or height is None):
        raise ValueError(f"convert_format() must receive `height` and `width` transforming between relative and "
                         f"absolute formats. convert_format() received source=`{source}`, target=`{target}`, "
                         f"but height={height} and width={width}.")
    boxes = boxes.astype(dtype, copy=False)
    if source == target:
        return boxes
    np_dtype = np.dtype(dtype).type
    width = None if width is None else np_dtype(width)
    height = None if height is None else np_dtype(height)
    if source.startswith("rel_") and target.startswith("rel_"):  # no need to go through pixels
        source, target = source[4:], target[4:]
    return _from_xyxy(_to_xyxy(boxes, source, height, width), target, height, width)


def convert_format(boxes, source, target, height=None, width=None, dtype="float32"):
    """Boxes converted from format ``source`` to ``target`` (``height``/``width``: the image's, needed when
    either format is relative).  ``boxes`` may be a dict with a "boxes" entry: a dict is returned with
    that entry converted (Keras changes the given dict in place; dlgpu returns a copy)."""
    if isinstance(boxes, dict):
        if "boxes" not in boxes:
            raise ValueError(f"convert_format: a dict of boxes needs a 'boxes' entry; received keys {sorted(boxes)}")
        return {**boxes, "boxes": convert_format(boxes["boxes"], source, target, height, width, dtype)}
    raw, as_tensor = _unwrap(boxes)
    return _wrap(_convert(raw, source, target, height, width, dtype), as_tensor)


def _area(x1, y1, x2, y2):
    return (x2 - x1) * (y2 - y1)


def clip_to_image_size(bounding_boxes, height=None, width=None, bounding_box_format="xyxy"):
    """``bounding_boxes`` ({"boxes": ..., "labels": ...}) with the boxes clipped to the image ("xyxy": to
    [0, width] x [0, height]; "rel_xyxy": to [0, 1]); a box left with no area gets label -1."""
    if bounding_box_format not in ("xyxy", "rel_xyxy"):
        raise NotImplementedError(f"clip_to_image_size supports bounding_box_format 'xyxy' and 'rel_xyxy' (as "
                                  f"Keras); received {bounding_box_format!r}. Convert with convert_format first.")
    if bounding_box_format == "xyxy" and (height is None or width is None):
        raise ValueError("`height` and `width` must be set if `format='xyxy'`.")
    boxes, as_tensor = _unwrap(bounding_boxes["boxes"])
    xp = array_module(boxes)
    upper_x, upper_y = (width, height) if bounding_box_format == "xyxy" else (1.0, 1.0)
    x1, y1, x2, y2 = _split(boxes)
    clipped = [xp.clip(x1, 0, upper_x), xp.clip(y1, 0, upper_y), xp.clip(x2, 0, upper_x), xp.clip(y2, 0, upper_y)]
    boxes = xp.concatenate(clipped, axis=-1).astype(boxes.dtype, copy=False)
    result = dict(bounding_boxes)
    result["boxes"] = _wrap(boxes, as_tensor)
    if bounding_boxes.get("labels") is not None:
        labels, labels_tensor = _unwrap(bounding_boxes["labels"])
        areas = _area(*clipped)[..., 0]
        result["labels"] = _wrap(xp.where(areas > 0, labels, -1), labels_tensor)
    return result


def _require_xyxy(bounding_box_format, function):
    if bounding_box_format != "xyxy":
        raise NotImplementedError(f"{function} supports bounding_box_format='xyxy' only (as Keras); received "
                                  f"{bounding_box_format!r}. Convert with convert_format first.")


def crop(boxes, top, left, height, width, bounding_box_format="xyxy"):
    """"xyxy" boxes moved into a crop of the image at (``top``, ``left``) of size ``height`` x ``width``, and
    clipped to it."""
    _require_xyxy(bounding_box_format, "crop")
    raw, as_tensor = _unwrap(boxes)
    xp = array_module(raw)
    x1, y1, x2, y2 = _split(raw)
    out = [xp.clip(x1 - left, 0, width), xp.clip(y1 - top, 0, height), xp.clip(x2 - left, 0, width),
           xp.clip(y2 - top, 0, height)]
    return _wrap(xp.concatenate(out, axis=-1), as_tensor)


def pad(boxes, top, left, height=None, width=None, bounding_box_format="xyxy"):
    """"xyxy" boxes moved by the ``top`` and ``left`` padding added to the image."""
    _require_xyxy(bounding_box_format, "pad")
    raw, as_tensor = _unwrap(boxes)
    xp = array_module(raw)
    x1, y1, x2, y2 = _split(raw)
    return _wrap(xp.concatenate([x1 + left, y1 + top, x2 + left, y2 + top], axis=-1), as_tensor)


def _inverse_affine_matrix(xp, center_x, center_y, angle, translate_x, translate_y, scale, shear_x, shear_y, height,
                           width):
    """Keras's BoundingBox._compute_inverse_affine_matrix: (batch, 3, 3), the map applied to box corners."""
    angle, shear_x, shear_y = -angle, -shear_x, -shear_y
    cx, cy = center_x * (width - 1), center_y * (height - 1)
    rot = angle * (math.pi / 180.0)
    tx, ty = -translate_x * (width - 1), -translate_y * (height - 1)
    sx, sy = shear_x * (math.pi / 180.0), shear_y * (math.pi / 180.0)
    cos_sy, tan_sx = xp.cos(sy), xp.tan(sx)
    a = xp.cos(rot - sy) / cos_sy
    b = a * tan_sx + xp.sin(rot)
    c = -xp.sin(rot - sy) / cos_sy
    d = xp.cos(rot) - c * tan_sx
    a0, a1, b0, b1 = d * scale, -b * scale, -c * scale, a * scale
    a2 = cx - a0 * (cx + tx) - a1 * (cy + ty)
    b2 = cy - b0 * (cx + tx) - b1 * (cy + ty)
    zeros, ones = xp.zeros_like(a0), xp.ones_like(a0)
    return xp.stack([a0, a1, a2, b0, b1, b2, zeros, zeros, ones], axis=-1).reshape(-1, 3, 3)


def affine_transform(boxes, angle, translate_x, translate_y, scale, shear_x, shear_y, height, width, center_x=None,
                     center_y=None, bounding_box_format="xyxy"):
    """"xyxy" boxes (batch, N, 4) under the affine map that rotates by ``angle`` degrees, translates by
    fractions of the image, scales and shears (degrees) about (``center_x``, ``center_y``) (fractions,
    default the centre); the parameters are 1-D, one per image.  Each result is the axis-aligned box around
    the four transformed corners."""
    _require_xyxy(bounding_box_format, "affine_transform")
    raw, as_tensor = _unwrap(boxes)
    xp = array_module(raw)
    if raw.ndim != 3:
        raise ValueError(f"affine_transform: `boxes` must be batched, of shape (batch, num_boxes, 4); received "
                         f"shape {tuple(raw.shape)}")
    params = [xp.asarray(_unwrap(p)[0]) for p in (angle, translate_x, translate_y, scale, shear_x, shear_y)]
    dtype = params[0].dtype if params[0].dtype.kind == "f" else np.dtype("float32")
    params = [p.astype(dtype, copy=False) for p in params]
    matrix = _inverse_affine_matrix(xp, 0.5 if center_x is None else center_x, 0.5 if center_y is None else center_y,
                                    *params, height, width)
    batch, n = raw.shape[:2]
    boxes = raw.astype(matrix.dtype, copy=False)
    corners = xp.stack([boxes[..., 0], boxes[..., 1], boxes[..., 2], boxes[..., 1],
                        boxes[..., 2], boxes[..., 3], boxes[..., 0], boxes[..., 3]], axis=-1).reshape(batch, n, 4, 2)
    corners = xp.concatenate([corners, xp.ones((batch, n, 4, 1), corners.dtype)], axis=-1)
    moved = xp.einsum("bnxy,byz->bnxz", corners, xp.transpose(matrix[:, :2, :], (0, 2, 1)))
    return _wrap(xp.concatenate([moved.min(axis=2), moved.max(axis=2)], axis=-1), as_tensor)


def _variance(variance):
    if variance is None:
        return None
    variance = np.asarray(_unwrap(variance)[0], np.float32)
    if variance.shape[-1:] != (4,):
        raise ValueError(f"`variance` must be length 4, got {variance}")
    return variance


def _image_size(image_shape):
    if image_shape is None:
        return None, None
    height, width, _ = image_shape
    return height, width


def encode_box_to_deltas(anchors, boxes, anchor_format, box_format, encoding_format="center_yxhw", variance=None,
                         image_shape=None):
    """The deltas that move ``anchors`` (N, 4) onto ``boxes`` ((N, 4) or (B, N, 4)): centre offsets in
    anchor sizes and log size ratios, in ``encoding_format`` order ("center_yxhw" or "center_xywh"),
    divided by ``variance`` when given; ``image_shape`` (height, width, channels) for relative formats."""
    from dlgpu.config import epsilon
    variance = _variance(variance)
    if encoding_format not in ("center_xywh", "center_yxhw"):
        raise ValueError(f"`encoding_format` should be one of 'center_xywh' or 'center_yxhw', got {encoding_format}")
    height, width = _image_size(image_shape)
    raw_anchors, _ = _unwrap(anchors)
    raw_boxes, as_tensor = _unwrap(boxes)
    xp = array_module(raw_boxes)
    anchors = _convert(raw_anchors, anchor_format, encoding_format, height, width)
    boxes = _convert(raw_boxes, box_format, encoding_format, height, width)
    anchor_size = xp.maximum(anchors[..., 2:], np.float32(epsilon()))
    box_size = xp.maximum(boxes[..., 2:], np.float32(epsilon()))
    deltas = xp.concatenate([(boxes[..., :2] - anchors[..., :2]) / anchor_size, xp.log(box_size / anchor_size)],
                            axis=-1)
    if variance is not None:
        deltas = deltas / xp.asarray(variance)
    return _wrap(deltas.astype(np.float32, copy=False), as_tensor)


def decode_deltas_to_boxes(anchors, boxes_delta, anchor_format, box_format, encoded_format="center_yxhw",
                           variance=None, image_shape=None):
    """The inverse of encode_box_to_deltas: boxes in ``box_format`` from ``anchors`` and ``boxes_delta``
    (arrays, or dicts of them keyed by feature level, decoded level by level)."""
    variance = _variance(variance)
    if encoded_format not in ("center_xywh", "center_yxhw"):
        raise ValueError(f"`encoded_format` should be 'center_xywh' or 'center_yxhw', but got '{encoded_format}'.")
    height, width = _image_size(image_shape)

    def decode(anchor, delta):
        raw_anchor, _ = _unwrap(anchor)
        raw_delta, as_tensor = _unwrap(delta)
        xp = array_module(raw_delta)
        encoded = _convert(raw_anchor, anchor_format, encoded_format, height, width)
        raw_delta = raw_delta.astype(np.float32, copy=False)
        if variance is not None:
            raw_delta = raw_delta * xp.asarray(variance)
        box = xp.concatenate([raw_delta[..., :2] * encoded[..., 2:] + encoded[..., :2],
                              xp.exp(raw_delta[..., 2:]) * encoded[..., 2:]], axis=-1)
        return _wrap(_convert(box, encoded_format, box_format, height, width), as_tensor)

    if isinstance(anchors, dict) and isinstance(boxes_delta, dict):
        return {level: decode(anchor, boxes_delta[level]) for level, anchor in anchors.items()}
    return decode(anchors, boxes_delta)


def compute_iou(boxes1, boxes2, bounding_box_format, use_masking=False, mask_val=-1, image_shape=None):
    """Intersection over union of every box of ``boxes1`` with every box of ``boxes2``: (M, N) for
    unbatched (M, 4) and (N, 4), (B, M, N) when either is batched.  ``use_masking``: pairs with a box whose
    coordinates are all negative (padding) get ``mask_val``."""
    from dlgpu.config import epsilon
    raw1, as_tensor = _unwrap(boxes1)
    raw2, _ = _unwrap(boxes2)
    for name, raw in (("boxes1", raw1), ("boxes2", raw2)):
        if raw.ndim not in (2, 3):
            raise ValueError(f"compute_iou() expects {name} to be batched, or to be unbatched. Received "
                             f"len(boxes1.shape)={raw1.ndim}, len(boxes2.shape)={raw2.ndim}. Expected either "
                             f"len({name}.shape)=2 AND or len({name}.shape)=3.")
    if "rel" in bounding_box_format and image_shape is None:
        raise ValueError(f"When using relative bounding box formats (e.g. `rel_yxyx`) the `image_shape` argument "
                         f"must be provided. Received `image_shape`: {image_shape}")
    height, width = _image_size(image_shape)
    xp = array_module(raw1)
    b1 = _convert(raw1, bounding_box_format, "yxyx", height, width)
    b2 = _convert(raw2, bounding_box_format, "yxyx", height, width)
    perm = (1, 0) if b2.ndim == 2 else (0, 2, 1)
    y_min1, x_min1, y_max1, x_max1 = _split(b1)
    y_min2, x_min2, y_max2, x_max2 = [xp.transpose(c, perm) for c in _split(b2)]
    zero = np.float32(0)
    inter = (xp.maximum(zero, xp.minimum(y_max1, y_max2) - xp.maximum(y_min1, y_min2))
             * xp.maximum(zero, xp.minimum(x_max1, x_max2) - xp.maximum(x_min1, x_min2)))
    area1 = ((b1[..., 2] - b1[..., 0]) * (b1[..., 3] - b1[..., 1]))[..., :, None]
    area2 = (b2[..., 2] - b2[..., 0]) * (b2[..., 3] - b2[..., 1])
    area2 = area2[..., None, :] if area2.ndim == 2 else area2[None, :]
    result = inter / (area1 + area2 - inter + np.float32(epsilon()))
    if use_masking:
        mask1 = b1.max(axis=-1, keepdims=True) < 0
        mask2 = xp.transpose(b2.max(axis=-1, keepdims=True) < 0, perm)
        result = xp.where(mask1 | mask2, xp.asarray(mask_val, result.dtype), result)
    return _wrap(result, as_tensor)


def compute_ciou(boxes1, boxes2, bounding_box_format, image_shape=None):
    """Complete IoU of matching boxes (same shapes (..., 4)): IoU minus the centre distance over the
    enclosing box's diagonal (squared) and the aspect-ratio term (Zheng et al. 2020).  Relative formats are
    refused, as in Keras."""
    from dlgpu.config import epsilon
    if "rel" in bounding_box_format:
        raise ValueError(f"When using relative bounding box formats (e.g. `rel_yxyx`) the `image_shape` argument "
                         f"must be provided. Received `image_shape`: {image_shape}")
    height, width = _image_size(image_shape)
    raw1, as_tensor = _unwrap(boxes1)
    raw2, _ = _unwrap(boxes2)
    xp = array_module(raw1)
    eps = np.float32(epsilon())
    x_min1, y_min1, x_max1, y_max1 = _split(_convert(raw1, bounding_box_format, "xyxy", height, width))
    x_min2, y_min2, x_max2, y_max2 = _split(_convert(raw2, bounding_box_format, "xyxy", height, width))
    width_1, height_1 = x_max1 - x_min1, y_max1 - y_min1 + eps
    width_2, height_2 = x_max2 - x_min2, y_max2 - y_min2 + eps
    inter = (xp.maximum(xp.minimum(x_max1, x_max2) - xp.maximum(x_min1, x_min2), 0)
             * xp.maximum(xp.minimum(y_max1, y_max2) - xp.maximum(y_min1, y_min2), 0))
    union = width_1 * height_1 + width_2 * height_2 - inter + eps
    iou = (inter / (union + eps))[..., 0]
    convex_w = xp.maximum(x_max1, x_max2) - xp.minimum(x_min1, x_min2)
    convex_h = xp.maximum(y_max1, y_max2) - xp.minimum(y_min1, y_min2)
    diagonal = (convex_w ** 2 + convex_h ** 2 + eps)[..., 0]
    centres = (((x_min1 + x_max1) / 2 - (x_min2 + x_max2) / 2) ** 2
               + ((y_min1 + y_max1) / 2 - (y_min2 + y_max2) / 2) ** 2)[..., 0]
    v = (np.float32(4 / math.pi ** 2) * (xp.arctan(width_2 / height_2) - xp.arctan(width_1 / height_1)) ** 2)[..., 0]
    alpha = v / (v - iou + (1 + eps))
    return _wrap(iou - (centres / diagonal + v * alpha), as_tensor)
