"""dlgpu.utils.bounding_boxes against keras.utils.bounding_boxes (Keras 3.15.1, torch backend): every
format pair, clipping, crop, pad, the affine map, the delta encoding both ways, IoU (all rank pairs,
masking) and CIoU."""

import itertools

import numpy as np
import pytest

import dlgpu
from dlgpu.utils import bounding_boxes as bb

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")  # Keras's variables on numpy 2

RNG = np.random.default_rng(5)
H, W = 40, 60
XY = RNG.uniform(0, 30, (2, 5, 2)).astype("f4")
XYXY = np.concatenate([XY, XY + RNG.uniform(1, 25, (2, 5, 2)).astype("f4")], axis=-1)  # (2, 5, 4) valid boxes
FORMATS = bb.SUPPORTED_FORMATS


def _np(x):
    return np.asarray(x.detach().cpu().numpy() if hasattr(x, "detach") else dlgpu.to_numpy(x)
                      if isinstance(x, dlgpu.Tensor) else x)


def _in(fmt, keras):
    """XYXY written in ``fmt`` by Keras (so each source format gets genuine boxes)."""
    return _np(keras.utils.bounding_boxes.convert_format(XYXY.copy(), "xyxy", fmt, height=H, width=W))


@pytest.mark.parametrize("source,target", list(itertools.product(FORMATS, FORMATS)))
def test_convert_format(keras, source, target):
    boxes = _in(source, keras)
    expected = _np(keras.utils.bounding_boxes.convert_format(boxes.copy(), source, target, height=H, width=W))
    got = bb.convert_format(boxes, source.upper(), target, height=H, width=W)
    assert got.dtype == np.float32 and got.shape == boxes.shape
    np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-5)


def test_convert_format_dicts_tensors_and_errors(keras):
    labels = np.arange(10).reshape(2, 5)
    got = bb.convert_format({"boxes": XYXY, "labels": labels}, "xyxy", "center_xywh")
    assert got["labels"] is labels
    expected = _np(keras.utils.bounding_boxes.convert_format({"boxes": XYXY.copy(), "labels": labels}, "xyxy",
                                                             "center_xywh")["boxes"])
    np.testing.assert_allclose(got["boxes"], expected, rtol=1e-6)
    as_tensor = bb.convert_format(dlgpu.Tensor(XYXY[0]), "xyxy", "yxyx")
    assert isinstance(as_tensor, dlgpu.Tensor)
    np.testing.assert_array_equal(dlgpu.to_numpy(as_tensor), XYXY[0][:, [1, 0, 3, 2]])
    np.testing.assert_array_equal(bb.convert_format([[1, 2, 3, 4]], "xywh", "xyxy"), [[1, 2, 4, 6]])
    with pytest.raises(ValueError, match="last dimension of 4"):
        bb.convert_format(np.zeros((3, 5)), "xyxy", "xywh")
    with pytest.raises(ValueError, match="Invalid source or target format"):
        bb.convert_format(XYXY, "xyxy", "polygon")
    with pytest.raises(ValueError, match="must receive `height` and `width`"):
        bb.convert_format(XYXY, "xyxy", "rel_xyxy")


@pytest.mark.parametrize("fmt", ["xyxy", "rel_xyxy"])
def test_clip_to_image_size(keras, fmt):
    boxes = np.array([[[-10, -20, 50, 30], [70, 10, 90, 30], [5, 5, 20, 50]]], "f4")
    if fmt == "rel_xyxy":
        boxes = boxes / np.array([W, H, W, H], "f4")
    labels = np.array([[1, 2, 3]])
    expected = keras.utils.bounding_boxes.clip_to_image_size({"boxes": boxes.copy(), "labels": labels}, H, W, fmt)
    got = bb.clip_to_image_size({"boxes": boxes, "labels": labels}, H, W, fmt)
    np.testing.assert_allclose(got["boxes"], _np(expected["boxes"]), rtol=1e-6)
    np.testing.assert_array_equal(got["labels"], _np(expected["labels"]))
    assert list(got["labels"][0]) == [1, -1, 3]  # the box beyond the right edge is dropped
    with pytest.raises(NotImplementedError, match="xyxy"):
        bb.clip_to_image_size({"boxes": boxes}, H, W, "xywh")


def test_crop_pad_and_affine(keras):
    k = keras.utils.bounding_boxes
    np.testing.assert_allclose(bb.crop(XYXY, 5, 8, 20, 25), _np(k.crop(XYXY.copy(), 5, 8, 20, 25)), rtol=1e-6)
    np.testing.assert_allclose(bb.pad(XYXY, 3, 7), _np(k.pad(XYXY.copy(), 3, 7)), rtol=1e-6)
    params = [RNG.uniform(-30, 30, 2).astype("f4"), RNG.uniform(-0.2, 0.2, 2).astype("f4"),
              RNG.uniform(-0.2, 0.2, 2).astype("f4"), RNG.uniform(0.7, 1.3, 2).astype("f4"),
              RNG.uniform(-20, 20, 2).astype("f4"), RNG.uniform(-20, 20, 2).astype("f4")]
    import torch
    expected = _np(k.affine_transform(torch.tensor(XYXY), *[torch.tensor(p) for p in params], H, W,
                                      center_x=0.4, center_y=0.6))
    got = bb.affine_transform(XYXY, *params, H, W, center_x=0.4, center_y=0.6)
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-3)
    for fn in (bb.crop, bb.pad):
        with pytest.raises(NotImplementedError, match="xyxy"):
            fn(XYXY, 1, 1, 5, 5, bounding_box_format="yxyx")


@pytest.mark.parametrize("encoding", ["center_yxhw", "center_xywh"])
@pytest.mark.parametrize("variance", [None, [0.1, 0.1, 0.2, 0.2]])
def test_encode_and_decode_deltas(keras, encoding, variance):
    k = keras.utils.bounding_boxes
    anchors = _in("xywh", keras)[0]
    boxes = XYXY[1]
    expected = _np(k.encode_box_to_deltas(anchors, boxes, "xywh", "xyxy", encoding, variance))
    got = bb.encode_box_to_deltas(anchors, boxes, "xywh", "xyxy", encoding, variance)
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
    back = bb.decode_deltas_to_boxes(anchors, got, "xywh", "rel_xyxy", encoding, variance, image_shape=(H, W, 3))
    import torch  # Keras's decode multiplies a numpy delta by its own tensor, which numpy refuses
    np.testing.assert_allclose(back, _np(k.decode_deltas_to_boxes(anchors, torch.tensor(expected), "xywh", "rel_xyxy",
                                                                  encoding, variance, image_shape=(H, W, 3))),
                               rtol=1e-5)
    np.testing.assert_allclose(back * np.array([W, H, W, H]), boxes, rtol=1e-4, atol=1e-3)
    levels = bb.decode_deltas_to_boxes({"P3": anchors, "P4": anchors[:2]}, {"P3": got, "P4": got[:2]}, "xywh",
                                       "xyxy", encoding, variance)
    np.testing.assert_allclose(levels["P4"], boxes[:2], rtol=1e-4, atol=1e-3)
    with pytest.raises(ValueError, match="length 4"):
        bb.encode_box_to_deltas(anchors, boxes, "xywh", "xyxy", variance=[1, 1])


@pytest.mark.parametrize("ranks", [(2, 2), (3, 3), (3, 2), (2, 3)])
@pytest.mark.parametrize("use_masking", [False, True])
def test_compute_iou(keras, ranks, use_masking):
    b1 = XYXY if ranks[0] == 3 else XYXY[0]
    b2 = XYXY[:, ::-1][:, :4] if ranks[1] == 3 else XYXY[1, :4]
    b1 = b1.copy()
    b1[..., 0, :] = -1  # a padding box
    yxyx1, yxyx2 = (bb.convert_format(b, "xyxy", "yxyx") for b in (b1, b2))
    # Keras 3.15 masks with boxes1's rank for boxes2's transpose, which fails when the ranks differ: there
    # its unmasked values are masked here by hand
    mixed = ranks[0] != ranks[1]
    expected = _np(keras.utils.bounding_boxes.compute_iou(yxyx1, yxyx2, "yxyx", use_masking=use_masking and not mixed,
                                                          mask_val=-2))
    if use_masking and mixed:
        padding1 = (b1 < 0).all(axis=-1)[..., :, None]
        expected = np.where(padding1 | (b2 < 0).all(axis=-1)[..., None, :], -2, expected)
    got = bb.compute_iou(yxyx1, yxyx2, "yxyx", use_masking=use_masking, mask_val=-2)
    assert got.shape == expected.shape
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
    # the IoU of a box with itself is 1, of disjoint boxes 0
    same = bb.compute_iou(XYXY[0], XYXY[0], "xyxy")
    np.testing.assert_allclose(np.diag(same), 1.0, rtol=1e-5)
    np.testing.assert_allclose(bb.compute_iou(np.array([[0, 0, 1, 1]]), np.array([[2, 2, 3, 3]]), "xyxy"), [[0]])


def test_compute_ciou(keras):
    b1, b2 = XYXY[0], XYXY[1]
    expected = _np(keras.utils.bounding_boxes.compute_ciou(b1, b2, "xyxy"))
    np.testing.assert_allclose(bb.compute_ciou(b1, b2, "xyxy"), expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(bb.compute_ciou(XYXY, XYXY, "xyxy"), 1.0, rtol=1e-5)
    with pytest.raises(ValueError, match="relative"):
        bb.compute_ciou(b1, b2, "rel_xyxy", image_shape=(H, W, 3))
