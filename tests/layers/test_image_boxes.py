"""Bounding boxes and segmentation masks through the image layers (dict inputs), checked against the images:
each box is drawn as its own class in a segmentation mask, the dict goes through the layer (one random
transformation for images, masks and boxes), and every transformed box must enclose what is left of its
class in the transformed mask, to within a pixel (nearest sampling).  This holds for every format and for
non-square images, where Keras's own arithmetic does not (see tests/keras_reference/test_image_boxes_keras.py
for the cases that follow Keras)."""

import numpy as np
import pytest

import dlgpu
from dlgpu import layers
from dlgpu.utils import bounding_boxes as bbox

from helpers import pixels

FORMATS = ["xyxy", "yxyx", "xywh", "center_xywh", "center_yxhw", "rel_xyxy", "rel_yxyx", "rel_xywh",
           "rel_center_xywh"]


def _scene(batch=3, height=18, width=26, seed=0):
    """Images, masks with one class per box (1, 2, ...; boxes on whole pixels), xyxy boxes and labels."""
    rng = np.random.default_rng(seed)
    boxes = np.zeros((batch, 2, 4), np.float32)
    masks = np.zeros((batch, height, width, 1), np.int32)
    for b in range(batch):
        for n in range(2):
            x1, y1 = rng.integers(2, width // 2), rng.integers(2, height // 2)
            x2, y2 = x1 + rng.integers(3, width // 2), y1 + rng.integers(3, height // 2)
            boxes[b, n] = (x1, y1, x2, y2)
            masks[b, y1:y2, x1:x2, 0] = n + 1  # the second box may cover part of the first
    return pixels((batch, height, width, 3)), masks, boxes, np.tile(np.array([[1, 2]], np.int32), (batch, 1))


def _check_enclosing(boxes_xyxy, labels, masks, tol=1.01):
    for b in range(masks.shape[0]):
        for n in range(boxes_xyxy.shape[1]):
            rows, cols = np.nonzero(masks[b, :, :, 0] == n + 1)
            if labels[b, n] == -1:
                continue
            x1, y1, x2, y2 = boxes_xyxy[b, n]
            if rows.size == 0:
                continue
            assert x1 - tol <= cols.min() and cols.max() + 1 <= x2 + tol, (b, n, boxes_xyxy[b, n], cols.min(), cols.max())
            assert y1 - tol <= rows.min() and rows.max() + 1 <= y2 + tol, (b, n, boxes_xyxy[b, n], rows.min(), rows.max())


GEOMETRIC = [
    lambda f: layers.RandomFlip(bounding_box_format=f, seed=1),
    lambda f: layers.RandomTranslation(0.2, 0.3, fill_mode="constant", interpolation="nearest", bounding_box_format=f,
                                       seed=2),
    lambda f: layers.RandomZoom((-0.4, 0.3), (-0.3, 0.2), fill_mode="constant", interpolation="nearest",
                                bounding_box_format=f, seed=3),
    lambda f: layers.RandomRotation(0.1, fill_mode="constant", interpolation="nearest", bounding_box_format=f, seed=4),
    lambda f: layers.RandomShear(0.3, 0.2, fill_mode="constant", interpolation="nearest", bounding_box_format=f,
                                 seed=5),
    lambda f: layers.RandomPerspective(scale=0.4, interpolation="nearest", bounding_box_format=f, seed=6),
    lambda f: layers.RandomCrop(12, 15, bounding_box_format=f, seed=7),
    lambda f: layers.CenterCrop(12, 15, bounding_box_format=f),
    lambda f: layers.Resizing(9, 13, interpolation="nearest", bounding_box_format=f),
]


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("make", GEOMETRIC, ids=["flip", "translation", "zoom", "rotation", "shear", "perspective",
                                                 "random_crop", "center_crop", "resizing"])
def test_boxes_follow_the_images(fmt, make):
    images, masks, boxes, labels = _scene()
    height, width = images.shape[1:3]
    layer = make(fmt)
    data = {"images": images, "segmentation_masks": masks,
            "bounding_boxes": {"boxes": bbox.convert_format(boxes, "xyxy", fmt, height, width), "labels": labels}}
    out = layer(data, training=True)
    out_masks = out["segmentation_masks"].numpy()
    assert out["segmentation_masks"].dtype == "int32" and out["bounding_boxes"]["labels"].dtype == "int32"
    assert out_masks.shape[:3] == out["images"].shape[:3]
    assert set(np.unique(out_masks)) <= {0, 1, 2}  # nearest sampling keeps classes whole
    out_h, out_w = out["images"].shape[1:3]
    xyxy = bbox.convert_format(out["bounding_boxes"]["boxes"].numpy(), fmt, "xyxy", out_h, out_w)
    _check_enclosing(xyxy, out["bounding_boxes"]["labels"].numpy(), out_masks)
    assert (xyxy >= -1e-4).all() and (xyxy[..., 2] <= out_w + 1e-4).all() and (xyxy[..., 3] <= out_h + 1e-4).all()


def test_unbatched_is_the_batch_of_one():
    images, masks, boxes, labels = _scene(batch=1)
    for make in GEOMETRIC:
        one = make("xywh")(
            {"images": images[0], "bounding_boxes": {"boxes": bbox.convert_format(boxes[0], "xyxy", "xywh"),
                                                      "labels": labels[0]}})
        batch = make("xywh")(
            {"images": images, "bounding_boxes": {"boxes": bbox.convert_format(boxes, "xyxy", "xywh"),
                                                   "labels": labels}})
        assert one["bounding_boxes"]["boxes"].shape == (2, 4) and one["bounding_boxes"]["labels"].shape == (2,)
        np.testing.assert_allclose(one["bounding_boxes"]["boxes"].numpy(), batch["bounding_boxes"]["boxes"].numpy()[0],
                                   rtol=1e-6, atol=1e-5)
        np.testing.assert_allclose(one["images"].numpy(), batch["images"].numpy()[0], rtol=1e-6, atol=1e-4)


def test_inference_leaves_boxes_and_random_crop_resizes_them():
    images, masks, boxes, labels = _scene()
    data = {"images": images, "bounding_boxes": {"boxes": boxes, "labels": labels}, "segmentation_masks": masks}
    out = layers.RandomRotation(0.3, bounding_box_format="xyxy")(data, training=False)
    np.testing.assert_array_equal(out["bounding_boxes"]["boxes"].numpy(), boxes)
    np.testing.assert_array_equal(out["segmentation_masks"].numpy(), masks)
    # RandomCrop resizes at inference (the target's aspect ratio, centred): boxes and masks follow
    out = layers.RandomCrop(9, 9, bounding_box_format="xyxy")(data, training=False)
    assert out["images"].shape == (3, 9, 9, 3) and out["segmentation_masks"].shape == (3, 9, 9, 1)
    _check_enclosing(out["bounding_boxes"]["boxes"].numpy(), out["bounding_boxes"]["labels"].numpy(),
                     out["segmentation_masks"].numpy(), tol=1.5)


def test_random_crop_windows_and_empty_boxes():
    """Per-image windows; a box the window misses gets label -1 (the cut is hand-computed)."""
    layer = layers.RandomCrop(4, 5, bounding_box_format="xyxy")
    boxes = np.array([[[1, 1, 3, 3], [6, 6, 8, 8]], [[0, 0, 10, 10], [2, 5, 4, 9]]], np.float32)
    t = {"top": np.array([0, 2]), "left": np.array([1, 3]), "input_shape": (2, 10, 10, 3)}
    out = layer.transform_bounding_boxes({"boxes": boxes, "labels": np.array([[1, 2], [3, 4]])}, t)
    np.testing.assert_allclose(out["boxes"].numpy(), [[[0, 1, 2, 3], [5, 4, 5, 4]], [[0, 0, 5, 4], [0, 3, 1, 4]]])
    np.testing.assert_array_equal(out["labels"].numpy(), [[1, -1], [3, 4]])


def test_resizing_pads_whole_pixels():
    """14 x 11 padded to 12 x 12: 1 column each side, none above (Keras's float32 floor gives -1 there)."""
    layer = layers.Resizing(12, 12, pad_to_aspect_ratio=True, bounding_box_format="xyxy")
    out = layer({"images": np.zeros((14, 11, 1), np.float32),
                 "bounding_boxes": {"boxes": np.array([[0, 0, 11, 14]], np.float32), "labels": np.array([0])}})
    ratio = np.float32(12) / np.float32(14)
    np.testing.assert_allclose(out["bounding_boxes"]["boxes"].numpy(), [[1, 0, 1 + 11 * ratio, 12]], rtol=1e-6)


def test_max_num_bounding_boxes_pads_and_cuts():
    boxes = np.arange(24, dtype=np.float32).reshape(2, 3, 4)
    labels = np.array([[1, 2, 3], [4, 5, 6]])
    images = np.zeros((2, 4, 4, 3), np.float32)
    out = layers.MaxNumBoundingBoxes(5, bounding_box_format="xyxy")(
        {"images": images, "bounding_boxes": {"boxes": boxes, "labels": labels}})
    assert out["bounding_boxes"]["boxes"].shape == (2, 5, 4)
    np.testing.assert_array_equal(out["bounding_boxes"]["boxes"].numpy()[:, 3:], -1)
    np.testing.assert_array_equal(out["bounding_boxes"]["labels"].numpy(), [[1, 2, 3, -1, -1], [4, 5, 6, -1, -1]])
    out = layers.MaxNumBoundingBoxes(2, fill_value=0, bounding_box_format="xyxy")(
        {"images": images[0], "bounding_boxes": {"boxes": boxes[0], "labels": labels[0]}})
    np.testing.assert_array_equal(out["bounding_boxes"]["boxes"].numpy(), boxes[0, :2])
    np.testing.assert_array_equal(layers.MaxNumBoundingBoxes(2)(images).numpy(), images)
    config = layers.MaxNumBoundingBoxes(2, fill_value=0, bounding_box_format="yxyx").get_config()
    assert config["max_number"] == 2 and config["fill_value"] == 0 and config["bounding_box_format"] == "yxyx"
    assert layers.MaxNumBoundingBoxes.from_config(config).get_config() == config
    shape = layers.MaxNumBoundingBoxes(7).compute_output_shape(
        {"images": (None, 4, 4, 3), "bounding_boxes": {"boxes": (None, 3, 4), "labels": (None, 3)}})
    assert shape["bounding_boxes"] == {"boxes": (None, 7, 4), "labels": (None, 7)}
    with pytest.raises(ValueError, match="'mx'.*`max_number` must be a positive integer"):
        layers.MaxNumBoundingBoxes(0, name="mx")


def test_mix_up_joins_the_boxes_and_aug_mix_keeps_them():
    images, _, boxes, labels = _scene(batch=4)
    layer = layers.MixUp(bounding_box_format="xyxy", seed=1)
    t = layer.get_random_transformation(images)
    out = layer.transform_bounding_boxes({"boxes": boxes, "labels": labels}, t)
    order = t["permutation_order"]
    np.testing.assert_array_equal(out["boxes"].numpy(), np.concatenate([boxes, boxes[order]], axis=1))
    np.testing.assert_array_equal(out["labels"].numpy(), np.concatenate([labels, labels[order]], axis=1))
    called = layer({"images": images, "bounding_boxes": {"boxes": boxes, "labels": labels}})
    assert called["bounding_boxes"]["boxes"].shape == (4, 4, 4)
    assert called["bounding_boxes"]["labels"].dtype == "int32"
    kept = layers.AugMix(bounding_box_format="xyxy", seed=0)(
        {"images": images, "bounding_boxes": {"boxes": boxes, "labels": labels}})
    np.testing.assert_array_equal(kept["bounding_boxes"]["boxes"].numpy(), boxes)


def test_a_sequential_of_augmentations_keeps_boxes_with_images():
    images, masks, boxes, labels = _scene(batch=4, seed=3)
    model = dlgpu.Sequential([
        layers.RandomFlip(bounding_box_format="rel_xyxy", seed=1),
        layers.RandomRotation(0.05, fill_mode="constant", interpolation="nearest", bounding_box_format="rel_xyxy",
                              seed=2),
        layers.RandomZoom(0.2, fill_mode="constant", interpolation="nearest", bounding_box_format="rel_xyxy", seed=3),
        layers.RandomBrightness(0.1, bounding_box_format="rel_xyxy", seed=4),
        layers.MaxNumBoundingBoxes(3, bounding_box_format="rel_xyxy"),
    ])
    height, width = images.shape[1:3]
    rel = bbox.convert_format(boxes, "xyxy", "rel_xyxy", height, width)
    out = model({"images": images, "segmentation_masks": masks,
                 "bounding_boxes": {"boxes": rel, "labels": labels}}, training=True)
    assert out["bounding_boxes"]["boxes"].shape == (4, 3, 4)
    np.testing.assert_array_equal(out["bounding_boxes"]["labels"].numpy()[:, 2], -1)
    xyxy = bbox.convert_format(out["bounding_boxes"]["boxes"].numpy()[:, :2], "rel_xyxy", "xyxy", height, width)
    _check_enclosing(xyxy, out["bounding_boxes"]["labels"].numpy()[:, :2], out["segmentation_masks"].numpy(), tol=1.5)


def test_get_config_writes_the_format_and_loads_back():
    layer = layers.RandomZoom(0.2, bounding_box_format="center_xywh", seed=1)
    config = layer.get_config()
    assert config["bounding_box_format"] == "center_xywh"
    assert layers.RandomZoom.from_config(config).bounding_box_format == "center_xywh"
    assert "bounding_box_format" not in layers.RandomZoom(0.2).get_config()  # as Keras: only when set


def test_bad_dicts_name_the_layer_and_argument():
    images, masks, boxes, labels = _scene(batch=2)
    good = {"boxes": boxes, "labels": labels}
    with pytest.raises(ValueError, match="'flip'.*Pass a `bounding_box_format` argument"):
        layers.RandomFlip(name="flip")({"images": images, "bounding_boxes": good})
    with pytest.raises(ValueError, match="'rs'.*`bounding_box_format` must be one of.*'xxyy'"):
        layers.Resizing(4, 4, bounding_box_format="xxyy", name="rs")
    with pytest.raises(ValueError, match="'rs'.*`bounding_boxes\\['boxes'\\]` must have shape \\(batch, num_boxes, "
                                         "4\\).*received boxes of shape \\(2, 2, 3\\)"):
        layers.Resizing(4, 4, bounding_box_format="xyxy", name="rs")(
            {"images": images, "bounding_boxes": {"boxes": boxes[..., :3], "labels": labels}})
    with pytest.raises(ValueError, match="'rs'.*\\(num_boxes, 4\\) beside one image.*\\(2, 2, 4\\)"):
        layers.Resizing(4, 4, bounding_box_format="xyxy", name="rs")({"images": images[0], "bounding_boxes": good})
    with pytest.raises(ValueError, match="'rs'.*`bounding_boxes\\['labels'\\]` must have shape \\(2, 2\\).*\\(2,\\)"):
        layers.Resizing(4, 4, bounding_box_format="xyxy", name="rs")(
            {"images": images, "bounding_boxes": {"boxes": boxes, "labels": labels[0]}})
    with pytest.raises(ValueError, match="'rs'.*dict with keys 'boxes' and 'labels'"):
        layers.Resizing(4, 4, bounding_box_format="xyxy", name="rs")(
            {"images": images, "bounding_boxes": {"boxes": boxes}})
    with pytest.raises(ValueError, match="'cc'.*`segmentation_masks`.*\\(2, 5, 26, 1\\)"):
        layers.CenterCrop(4, 4, name="cc")({"images": images, "segmentation_masks": masks[:, :5]})
    with pytest.raises(ValueError, match="'cc'.*nested lists must be rectangular"):
        layers.CenterCrop(4, 4, bounding_box_format="xyxy", name="cc")(
            {"images": images, "bounding_boxes": {"boxes": [[[0, 0, 1, 1]], [[0, 0, 1, 1], [1, 1, 2, 2]]],
                                                  "labels": [[0], [0, 1]]}})
    with pytest.raises(NotImplementedError, match="'el'.*'segmentation_masks'"):
        layers.RandomElasticTransform(name="el")({"images": images, "segmentation_masks": masks})


@pytest.mark.gpu
def test_boxes_on_gpu_match_cpu():
    images, masks, boxes, labels = _scene()
    makers = GEOMETRIC + [lambda f: layers.MaxNumBoundingBoxes(3, bounding_box_format=f),
                          lambda f: layers.MixUp(bounding_box_format=f, seed=1)]
    for make in makers:
        results = []
        for device in ("cpu", "gpu"):
            with dlgpu.device(device):
                layer = make("center_xywh")
                data = {"images": images, "bounding_boxes": {"boxes": bbox.convert_format(boxes, "xyxy", "center_xywh"),
                                                             "labels": labels}}
                if not isinstance(layer, layers.MixUp):  # MixUp refuses masks
                    data["segmentation_masks"] = masks
                out = layer(data, training=True)
                results.append([out["bounding_boxes"]["boxes"].numpy(), out["bounding_boxes"]["labels"].numpy(),
                                out["images"].numpy()])
        for a, b in zip(*results):
            np.testing.assert_allclose(b, a, rtol=1e-4, atol=1e-4)
