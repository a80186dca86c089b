"""Bounding boxes and segmentation masks through the image layers: Keras 3's dict inputs
``{"images": ..., "bounding_boxes": {"boxes": (B, N, 4), "labels": (B, N)}, "segmentation_masks": ...,
"labels": ...}`` (unbatched: (N, 4) and (N,) beside one image), checked here before anything is converted,
and the box arithmetic the geometric layers share.

Boxes are host-side preprocessing data, not differentiable: the arithmetic runs on the raw arrays of the
boxes' Tensors with their array module (numpy or CuPy), in float32; the per-image matrices are built on the
host (float64, as the layers draw them) and moved once.  A box that ends with no area inside the image gets
label -1, as Keras's clip_to_image_size does.
"""

from __future__ import annotations

import numpy as np

from dlgpu.autograd import Tensor
from dlgpu.backend.cpu._common import array_module
from dlgpu.utils.bounding_boxes import SUPPORTED_FORMATS, _convert

DICT_KEYS = ("images", "labels", "bounding_boxes", "segmentation_masks")


def check_format(layer, bounding_box_format):
    if bounding_box_format is None:
        return None
    if not isinstance(bounding_box_format, str) or bounding_box_format.lower() not in SUPPORTED_FORMATS:
        raise ValueError(f"Layer '{layer.name}' ({type(layer).__name__}): `bounding_box_format` must be one of "
                         f"{SUPPORTED_FORMATS}. Received: bounding_box_format={bounding_box_format!r}")
    return bounding_box_format.lower()


def _shape(x):
    return tuple(x.shape) if hasattr(x, "shape") else np.shape(x)


def _dtype(x):
    return x.dtype if hasattr(x, "dtype") else np.asarray(x).dtype


def prepare(layer, data):
    """The dict checked (shapes, keys, the layer's format), with the boxes as float32; and the integer
    dtypes to give back to the labels and masks after the layer's input conversion (which makes every
    integer input float32, as it does for images)."""
    who = f"Layer '{layer.name}' ({type(layer).__name__})"
    if "images" not in data:
        raise ValueError(f"{who}: a dict input needs 'images' of rank 3 (one image) or 4 (a batch); received "
                         f"keys {sorted(data)}")
    image_shape = _shape(data["images"])
    if len(image_shape) not in (3, 4):
        raise ValueError(f"{who}: expected 'images' of rank 3 (one image) or 4 (a batch); received shape "
                         f"{image_shape}")
    for key in getattr(layer, "_REFUSED_KEYS", ()):
        if key in data:
            raise NotImplementedError(f"{who}: dict inputs with {key!r} are not supported by this layer")
    single = len(image_shape) == 3
    data = dict(data)
    restore = {}
    if "bounding_boxes" in data:
        data["bounding_boxes"], restore["bounding_boxes"] = _prepare_boxes(layer, who, data["bounding_boxes"],
                                                                           image_shape, single)
    if "segmentation_masks" in data:
        masks = data["segmentation_masks"]
        mask_shape = _shape(masks)
        spatial = slice(-3, -1) if layer.data_format == "channels_last" else slice(-2, None)
        if len(mask_shape) != len(image_shape) or mask_shape[spatial] != image_shape[spatial] \
                or (not single and mask_shape[0] != image_shape[0]):
            raise ValueError(f"{who}: `segmentation_masks` must have the images' rank, batch size, height and "
                             f"width; received segmentation_masks of shape {mask_shape} for images of shape "
                             f"{image_shape}")
        restore["segmentation_masks"] = _dtype(masks)
    if "labels" in data and not getattr(layer, "_MIXES_LABELS", False):
        restore["labels"] = _dtype(data["labels"])
    return data, restore


def _prepare_boxes(layer, who, bounding_boxes, image_shape, single):
    if not layer.bounding_box_format:
        raise ValueError(f"{who}: you passed an input with a 'bounding_boxes' key, but the layer has no "
                         f"bounding box format. Pass a `bounding_box_format` argument to the "
                         f"{type(layer).__name__} layer, e.g. `bounding_box_format='xyxy'`.")
    if not isinstance(bounding_boxes, dict) or "boxes" not in bounding_boxes or "labels" not in bounding_boxes:
        raise ValueError(f"{who}: `bounding_boxes` must be a dict with keys 'boxes' and 'labels'. Received: "
                         f"bounding_boxes={bounding_boxes!r}")
    boxes, labels = bounding_boxes["boxes"], bounding_boxes["labels"]
    if isinstance(boxes, (list, tuple)):
        try:
            boxes = np.asarray(boxes, dtype=np.float32)
        except ValueError as e:
            raise ValueError(f"{who}: `bounding_boxes['boxes']` as nested lists must be rectangular (pad every "
                             f"image to the same number of boxes, e.g. with MaxNumBoundingBoxes): {e}") from None
    if isinstance(labels, (list, tuple)):
        labels = np.asarray(labels)
    box_shape, label_shape = _shape(boxes), _shape(labels)
    expected = "(num_boxes, 4) beside one image" if single else "(batch, num_boxes, 4) beside a batch of images"
    if len(box_shape) != (2 if single else 3) or box_shape[-1] != 4 \
            or (not single and box_shape[0] != image_shape[0]):
        raise ValueError(f"{who}: `bounding_boxes['boxes']` must have shape {expected} of shape {image_shape}; "
                         f"received boxes of shape {box_shape}")
    if tuple(label_shape) != tuple(box_shape[:-1]):
        raise ValueError(f"{who}: `bounding_boxes['labels']` must have shape {tuple(box_shape[:-1])} (one integer "
                         f"class per box); received labels of shape {label_shape}")
    if isinstance(boxes, Tensor):
        boxes = boxes if boxes.dtype == "float32" else Tensor(boxes.data.astype(np.float32))
    elif not type(boxes).__module__.startswith("cupy"):
        boxes = np.asarray(boxes, dtype=np.float32)
    else:
        boxes = boxes.astype(np.float32, copy=False)
    return {**bounding_boxes, "boxes": boxes, "labels": labels}, _dtype(labels)


def restore(out, dtypes):
    """The integer dtypes of labels and masks given back (the values are whole numbers)."""
    from dlgpu import ops
    if not isinstance(out, dict):
        return out

    def cast(x, dtype):
        dtype = np.dtype(str(dtype))
        if not isinstance(x, Tensor) or np.dtype(x.dtype) == dtype:
            return x
        return ops.cast(ops.round(x) if dtype.kind in "iu" else x, dtype)
    out = dict(out)
    for key in ("labels", "segmentation_masks"):
        if key in dtypes and key in out:
            out[key] = cast(out[key], dtypes[key])
    if "bounding_boxes" in dtypes and isinstance(out.get("bounding_boxes"), dict):
        out["bounding_boxes"] = {**out["bounding_boxes"],
                                 "labels": cast(out["bounding_boxes"]["labels"], dtypes["bounding_boxes"])}
    return out


# ---- arithmetic on raw arrays -------------------------------------------------------------------------------

def raw(x):
    """A raw float32 array (numpy or CuPy) of boxes or labels."""
    if isinstance(x, Tensor):
        return x.data
    return x if type(x).__module__.startswith("cupy") else np.asarray(x)


def to_xyxy(boxes, fmt, height, width):
    return _convert(raw(boxes).astype(np.float32, copy=False), fmt, "xyxy", height, width)


def from_xyxy(boxes, fmt, height, width):
    return _convert(boxes, "xyxy", fmt, height, width)


def clip(boxes, labels, height, width):
    """Keras's clip_to_image_size on "xyxy" boxes: clipped to [0, width] x [0, height] (scalars or arrays
    that broadcast against the boxes' leading axes), label -1 where nothing is left."""
    xp = array_module(boxes)
    upper = xp.stack(xp.broadcast_arrays(*[xp.asarray(v, dtype=boxes.dtype) for v in (width, height)]), -1)
    upper = xp.concatenate([upper, upper], axis=-1)
    boxes = xp.minimum(xp.maximum(boxes, np.float32(0)), upper)
    area = (boxes[..., 2] - boxes[..., 0]) * (boxes[..., 3] - boxes[..., 1])
    labels = raw(labels)
    return boxes, xp.where(area > 0, labels, xp.asarray(-1, dtype=labels.dtype))


def result(bounding_boxes, boxes, labels):
    """The dict given back: the input's other entries, Tensors for the boxes and labels."""
    return {**bounding_boxes, "boxes": Tensor(boxes), "labels": Tensor(labels)}


def affine_forward(rows):
    """(batch, 3, 3): where each source point lands, from the (batch, 8) rows of an output-to-source transform
    (a0 a1 a2 b0 b1 b2 c0 c1, Keras's layout; a projective one when c0, c1 are set)."""
    rows = np.asarray(rows, dtype=np.float64).reshape(-1, 8)
    matrix = np.concatenate([rows, np.ones((rows.shape[0], 1))], axis=1).reshape(-1, 3, 3)
    return np.linalg.inv(matrix)


def homography(source, target):
    """(batch, 3, 3) taking each of the four ``source`` points (batch, 4, 2) to its ``target`` point, solved on
    the host (the same 8x8 system as Keras's compute_homography_matrix)."""
    source, target = np.asarray(source, np.float64), np.asarray(target, np.float64)
    batch = source.shape[0]
    a = np.zeros((batch, 8, 8))
    sx, sy, tx, ty = source[..., 0], source[..., 1], target[..., 0], target[..., 1]
    a[:, 0::2, 0], a[:, 0::2, 1], a[:, 0::2, 2] = sx, sy, 1.0
    a[:, 1::2, 3], a[:, 1::2, 4], a[:, 1::2, 5] = sx, sy, 1.0
    a[:, 0::2, 6], a[:, 0::2, 7] = -tx * sx, -tx * sy
    a[:, 1::2, 6], a[:, 1::2, 7] = -ty * sx, -ty * sy
    b = np.stack([tx, ty], axis=-1).reshape(batch, 8)
    h = np.linalg.solve(a, b[..., None])[..., 0]
    return np.concatenate([h, np.ones((batch, 1))], axis=1).reshape(batch, 3, 3)


def warp(boxes, forward):
    """The axis-aligned boxes around the four corners of each "xyxy" box (batch, N, 4) carried by its image's
    ``forward`` (batch, 3, 3) host matrix."""
    xp = array_module(boxes)
    m = xp.asarray(np.asarray(forward, dtype=np.float32))[:, None]  # (batch, 1, 3, 3)
    x1, y1, x2, y2 = (boxes[..., i] for i in range(4))
    xs = xp.stack([x1, x2, x1, x2], axis=-1)  # (batch, N, 4 corners)
    ys = xp.stack([y1, y1, y2, y2], axis=-1)

    def row(r):
        return m[..., r, 0:1] * xs + m[..., r, 1:2] * ys + m[..., r, 2:3]
    w = row(2)
    px, py = row(0) / w, row(1) / w
    return xp.stack([px.min(-1), py.min(-1), px.max(-1), py.max(-1)], axis=-1).astype(np.float32)
