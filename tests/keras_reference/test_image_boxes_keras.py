"""Bounding boxes through the image layers against Keras 3 (torch backend): the deterministic layers (Resizing,
CenterCrop, MaxNumBoundingBoxes) called with the same dict, and the random ones through Keras's own
transformation: Keras's get_random_transformation draws it, and both layers' transform_bounding_boxes (and
transform_images) are handed that same dict.

Where Keras's arithmetic is not the images' geometry (RandomRotation for formats other than "xyxy", RandomShear
on non-square images or both axes, RandomCrop), dlgpu follows the images instead; tests/layers/test_image_boxes.py
checks those against the images themselves."""

import numpy as np
import pytest

import dlgpu
from dlgpu import layers

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::UserWarning")

FORMATS = ["xyxy", "yxyx", "xywh", "center_xywh", "center_yxhw", "rel_xyxy", "rel_yxyx", "rel_xywh",
           "rel_center_xywh"]


def _xyxy_boxes(batch, height, width, count=3, seed=0, outside=False):
    """Boxes inside the image (or reaching out of it), the last row of every image a padding row of zeros."""
    rng = np.random.default_rng(seed)
    low, high = (-0.3, 1.3) if outside else (0.0, 1.0)
    corners = rng.uniform(low, high, (batch, count, 2, 2)) * np.array([width, height])
    boxes = np.concatenate([corners.min(2), corners.max(2)], axis=-1).astype(np.float32)
    boxes[:, -1] = 0
    labels = rng.integers(0, 5, (batch, count)).astype(np.int32)
    labels[:, -1] = -1
    return boxes, labels


def _in_format(keras, boxes, fmt, height, width):
    return keras.utils.bounding_boxes.convert_format(boxes, "xyxy", fmt, height=height, width=width).numpy() \
        if fmt != "xyxy" else boxes


def _data(keras, shape, fmt, outside=False, seed=0):
    batch, height, width = (1,) + tuple(shape[:2]) if len(shape) == 3 else shape[:3]
    boxes, labels = _xyxy_boxes(batch, height, width, outside=outside, seed=seed)
    boxes = _in_format(keras, boxes, fmt, height, width)
    images = np.random.default_rng(seed).uniform(0, 255, shape).astype(np.float32)
    if len(shape) == 3:
        boxes, labels = boxes[0], labels[0]
    return {"images": images, "bounding_boxes": {"boxes": boxes, "labels": labels}}


def _copy(data):
    return {"images": data["images"].copy(),
            "bounding_boxes": {k: v.copy() for k, v in data["bounding_boxes"].items()}}


def _numpy(x):
    return x.numpy() if hasattr(x, "numpy") else np.asarray(x)


def _assert_same(ours, theirs, atol=1e-4):
    np.testing.assert_allclose(_numpy(ours["boxes"]), _numpy(theirs["boxes"]), rtol=1e-5, atol=atol)
    np.testing.assert_array_equal(_numpy(ours["labels"]), _numpy(theirs["labels"]))


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("shape", [(2, 12, 16, 3), (10, 7, 3)], ids=["batch", "single"])
@pytest.mark.parametrize("mode", ["stretch", "pad_to_aspect_ratio", "crop_to_aspect_ratio"])
def test_resizing_matches_keras(keras, fmt, shape, mode):
    kwargs = dict(height=8, width=9, bounding_box_format=fmt)
    if mode != "stretch":
        kwargs[mode] = True
    data = _data(keras, shape, fmt, outside=True)
    theirs = keras.layers.Resizing(**kwargs)(_copy(data))
    ours = layers.Resizing(**kwargs)(_copy(data))
    _assert_same(ours["bounding_boxes"], theirs["bounding_boxes"])
    assert ours["images"].shape == tuple(theirs["images"].shape)
    assert ours["bounding_boxes"]["labels"].dtype == "int32"


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("shape", [(2, 12, 16, 3), (2, 5, 16, 3), (9, 7, 3)], ids=["larger", "smaller", "single"])
def test_center_crop_matches_keras(keras, fmt, shape):
    data = _data(keras, shape, fmt, outside=True)
    theirs = keras.layers.CenterCrop(6, 8, bounding_box_format=fmt)(_copy(data))
    ours = layers.CenterCrop(6, 8, bounding_box_format=fmt)(_copy(data))
    _assert_same(ours["bounding_boxes"], theirs["bounding_boxes"])
    np.testing.assert_allclose(ours["images"].numpy(), _numpy(theirs["images"]), rtol=1e-5, atol=1e-3)


@pytest.mark.parametrize("max_number", [2, 3, 5])
@pytest.mark.parametrize("batched", [True, False])
def test_max_num_bounding_boxes_matches_keras(keras, max_number, batched):
    data = _data(keras, (2, 6, 6, 3) if batched else (6, 6, 3), "xyxy")
    kwargs = dict(max_number=max_number, bounding_box_format="xyxy")
    theirs = keras.layers.MaxNumBoundingBoxes(**kwargs)(_copy(data))
    ours = layers.MaxNumBoundingBoxes(**kwargs)(_copy(data))
    _assert_same(ours["bounding_boxes"], theirs["bounding_boxes"])
    assert ours["bounding_boxes"]["boxes"].shape == tuple(theirs["bounding_boxes"]["boxes"].shape)
    config = layers.MaxNumBoundingBoxes(**kwargs).get_config()
    assert keras.layers.MaxNumBoundingBoxes.from_config(config).get_config()["max_number"] == max_number
    assert set(keras.layers.MaxNumBoundingBoxes(**kwargs).get_config()) <= set(config)


def _same_transformation(keras, kl, dl, data, fmt, atol=1e-4):
    """Keras's transformation handed to both layers' transform_bounding_boxes and transform_images."""
    import torch
    images = torch.tensor(data["images"])
    t = kl.get_random_transformation(images, training=True)
    theirs = kl.transform_bounding_boxes({k: torch.tensor(v) for k, v in data["bounding_boxes"].items()}, t)
    ours = dl.transform_bounding_boxes(dict(data["bounding_boxes"]), t)
    _assert_same(ours, theirs, atol=atol)
    np.testing.assert_allclose(dl.transform_images(data["images"], t).numpy(),
                               kl.transform_images(images, t).numpy(), rtol=1e-5, atol=2e-2)


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("mode", ["horizontal", "vertical", "horizontal_and_vertical"])
def test_flip_matches_keras_for_the_same_transformation(keras, fmt, mode):
    data = _data(keras, (6, 10, 14, 3), fmt, outside=True)
    kwargs = dict(mode=mode, bounding_box_format=fmt)
    _same_transformation(keras, keras.layers.RandomFlip(seed=3, **kwargs), layers.RandomFlip(**kwargs), data, fmt)


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("name, kwargs", [
    ("RandomTranslation", dict(height_factor=0.3, width_factor=(-0.2, 0.4))),
    ("RandomZoom", dict(height_factor=(-0.3, 0.4))),
    ("RandomZoom", dict(height_factor=0.3, width_factor=(-0.4, 0.2))),
], ids=["translation", "zoom", "zoom_xy"])
def test_affine_layers_match_keras_for_the_same_transformation(keras, fmt, name, kwargs):
    data = _data(keras, (4, 10, 14, 3), fmt, outside=True)
    kwargs = dict(kwargs, bounding_box_format=fmt, fill_mode="constant")
    kl, dl = getattr(keras.layers, name)(seed=5, **kwargs), getattr(layers, name)(**kwargs)
    _same_transformation(keras, kl, dl, data, fmt)


def test_rotation_matches_keras_for_xyxy(keras):
    """Keras's RandomRotation reads the boxes as "xyxy" whatever its format; for "xyxy" both agree."""
    data = _data(keras, (5, 11, 11, 3), "xyxy", outside=True)
    kwargs = dict(factor=0.2, bounding_box_format="xyxy", fill_mode="constant")
    _same_transformation(keras, keras.layers.RandomRotation(seed=1, **kwargs), layers.RandomRotation(**kwargs),
                         data, "xyxy", atol=2e-3)


@pytest.mark.parametrize("factors", [dict(x_factor=0.3), dict(y_factor=0.3)], ids=["x", "y"])
def test_shear_matches_keras_on_square_images_and_one_axis(keras, factors):
    """Keras shears relative coordinates: the images' shear only for square images and one axis."""
    data = _data(keras, (5, 12, 12, 3), "rel_xyxy")
    kwargs = dict(factors, bounding_box_format="rel_xyxy", fill_mode="constant")
    _same_transformation(keras, keras.layers.RandomShear(seed=2, **kwargs), layers.RandomShear(**kwargs), data,
                         "rel_xyxy", atol=1e-4)


def test_perspective_matches_keras_for_xyxy(keras):
    """Keras 3.15 gives perspective boxes back in "xyxy" whatever its format: compared for "xyxy"."""
    data = _data(keras, (6, 10, 13, 3), "xyxy")
    kwargs = dict(factor=(0.4, 1.0), scale=0.6, bounding_box_format="xyxy")
    _same_transformation(keras, keras.layers.RandomPerspective(seed=4, **kwargs), layers.RandomPerspective(**kwargs),
                         data, "xyxy", atol=2e-3)


@pytest.mark.parametrize("name, kwargs", [
    ("RandomBrightness", dict(factor=0.2)), ("RandomContrast", dict(factor=0.2)),
    ("RandomInvert", dict()), ("AutoContrast", dict()), ("RandomSharpness", dict(factor=0.2)),
    ("RandomErasing", dict()), ("RandomGaussianBlur", dict()), ("RandomColorJitter", dict(brightness_factor=0.2)),
])
def test_colour_layers_leave_boxes_as_keras(keras, name, kwargs):
    data = _data(keras, (2, 8, 9, 3), "center_xywh")
    kwargs = dict(kwargs, bounding_box_format="center_xywh")
    theirs = getattr(keras.layers, name)(**kwargs)(_copy(data))
    ours = getattr(layers, name)(**kwargs)(_copy(data))
    _assert_same(ours["bounding_boxes"], theirs["bounding_boxes"])


@pytest.mark.parametrize("fmt", ["xyxy", "rel_yxyx", "center_xywh"])
def test_a_sequential_pipeline_matches_keras(keras, fmt):
    # 16 x 12 padded to 12 x 12: Keras's float32 arithmetic floors the padding of the side that fills the target
    # to -1 for some sizes (e.g. 14 x 11), dlgpu to 0
    data = _data(keras, (3, 16, 12, 3), fmt, outside=True)
    data["labels"] = np.eye(3, dtype=np.float32)

    def stack(lib):
        return [lib.layers.Resizing(12, 12, pad_to_aspect_ratio=True, bounding_box_format=fmt),
                lib.layers.CenterCrop(10, 8, bounding_box_format=fmt),
                lib.layers.RandomBrightness(0.1, bounding_box_format=fmt),
                lib.layers.MaxNumBoundingBoxes(4, bounding_box_format=fmt)]
    kd = _copy(data)
    kd["labels"] = data["labels"]
    theirs = keras.Sequential(stack(keras))(kd, training=False)
    dd = _copy(data)
    dd["labels"] = data["labels"]
    ours = dlgpu.Sequential(stack(dlgpu))(dd, training=False)
    _assert_same(ours["bounding_boxes"], theirs["bounding_boxes"])
    np.testing.assert_allclose(ours["images"].numpy(), _numpy(theirs["images"]), rtol=1e-5, atol=1e-3)
    np.testing.assert_array_equal(ours["labels"].numpy(), data["labels"])
