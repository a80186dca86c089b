"""dlgpu.utils.bounding_boxes by hand-computed values (Keras's docstring examples) and on the GPU; the
full comparison with Keras is tests/keras_reference/test_bounding_boxes_keras.py."""

import numpy as np
import pytest

import dlgpu
from dlgpu.utils import bounding_boxes as bb


def test_docstring_examples():
    boxes = np.array([[10, 20, 30, 40], [50, 60, 70, 80]])
    np.testing.assert_array_equal(bb.convert_format(boxes, "xyxy", "xywh"), [[10, 20, 20, 20], [50, 60, 20, 20]])
    np.testing.assert_allclose(bb.convert_format(boxes, "xyxy", "rel_xyxy", height=200, width=300)[0],
                               [10 / 300, 20 / 200, 30 / 300, 40 / 200], rtol=1e-6)
    clipped = bb.clip_to_image_size({"boxes": np.array([[-10, -20, 150, 160], [50, 40, 70, 80]], "f4"),
                                     "labels": np.array([0, 1])}, height=100, width=120)
    np.testing.assert_array_equal(clipped["boxes"], [[0, 0, 120, 100], [50, 40, 70, 80]])
    cropped = bb.crop(np.array([[10, 20, 50, 60], [70, 80, 100, 120]], "f4"), top=10, left=20, height=40, width=30)
    np.testing.assert_array_equal(cropped, [[0, 10, 30, 40], [30, 40, 30, 40]])
    # an identity affine map leaves boxes where they are; a 90-degree turn of a centred square keeps it
    square = np.array([[[10, 10, 30, 30]]], "f4")
    zeros = np.zeros(1, "f4")
    np.testing.assert_allclose(bb.affine_transform(square, zeros, zeros, zeros, np.ones(1, "f4"), zeros, zeros,
                                                   41, 41), square, atol=1e-4)
    np.testing.assert_allclose(bb.affine_transform(square, np.full(1, 90, "f4"), zeros, zeros, np.ones(1, "f4"),
                                                   zeros, zeros, 41, 41), square, atol=1e-4)
    assert bb.convert_format(boxes, "xyxy", "yxyx", dtype="float64").dtype == np.float64


@pytest.mark.gpu
def test_bounding_boxes_on_gpu_match_cpu():
    import cupy
    rng = np.random.default_rng(0)
    xy = rng.uniform(0, 30, (2, 6, 2)).astype("f4")
    boxes = np.concatenate([xy, xy + rng.uniform(1, 20, (2, 6, 2)).astype("f4")], axis=-1)
    on_gpu = cupy.asarray(boxes)
    for fmt in bb.SUPPORTED_FORMATS:
        got = bb.convert_format(on_gpu, "xyxy", fmt, height=50, width=60)
        assert isinstance(got, cupy.ndarray)
        np.testing.assert_allclose(got.get(), bb.convert_format(boxes, "xyxy", fmt, height=50, width=60), rtol=1e-6)
    np.testing.assert_allclose(bb.compute_iou(on_gpu, on_gpu[0], "xyxy", use_masking=True).get(),
                               bb.compute_iou(boxes, boxes[0], "xyxy", use_masking=True), rtol=1e-5)
    np.testing.assert_allclose(bb.compute_ciou(on_gpu, on_gpu[::-1], "xyxy").get(),
                               bb.compute_ciou(boxes, boxes[::-1], "xyxy"), rtol=1e-5, atol=1e-6)
    params = [np.array([20.0, -10.0], "f4"), np.array([0.1, 0.0], "f4"), np.array([0.0, -0.1], "f4"),
              np.array([1.1, 0.9], "f4"), np.array([5.0, 0.0], "f4"), np.array([0.0, 8.0], "f4")]
    np.testing.assert_allclose(bb.affine_transform(on_gpu, *[cupy.asarray(p) for p in params], 50, 60).get(),
                               bb.affine_transform(boxes, *params, 50, 60), rtol=1e-5, atol=1e-4)
    deltas = bb.encode_box_to_deltas(on_gpu[0], on_gpu[1], "xyxy", "xyxy", variance=[0.1, 0.1, 0.2, 0.2])
    np.testing.assert_allclose(bb.decode_deltas_to_boxes(on_gpu[0], deltas, "xyxy", "xyxy",
                                                         variance=[0.1, 0.1, 0.2, 0.2]).get(), boxes[1], rtol=1e-4)
    assert isinstance(bb.pad(dlgpu.Tensor(boxes), 1, 2), dlgpu.Tensor)
