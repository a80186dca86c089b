"""dlgpu.visualization: the pixels draw_bounding_boxes paints (every box format, thickness, labels, padding),
draw_segmentation_masks by hand, and the galleries written as PNG files (matplotlib's Agg) read back:
where each image lands and what is drawn on it.  draw_segmentation_masks against Keras:
tests/keras_reference/test_visualization_keras.py."""

import sys

import numpy as np
import pytest

import dlgpu
from dlgpu import visualization
from dlgpu.utils import bounding_boxes

matplotlib = pytest.importorskip("matplotlib")
matplotlib.use("Agg")
import matplotlib.image  # noqa: E402

RED, BLUE, GREEN = (255, 0, 0), (0, 0, 255), (0, 255, 0)


def _boxes(xyxy, labels, fmt="xyxy", height=40, width=50):
    boxes = bounding_boxes.convert_format(np.asarray(xyxy, "f4"), "xyxy", fmt, height=height, width=width)
    return {"boxes": boxes, "labels": np.asarray(labels)}


@pytest.mark.parametrize("fmt", bounding_boxes.SUPPORTED_FORMATS)
def test_a_thin_box_paints_exactly_its_outline(fmt):
    images = np.zeros((1, 40, 50, 3), np.uint8)
    out = visualization.draw_bounding_boxes(images, _boxes([[[10, 5, 30, 20]]], [[0]], fmt), fmt, color=RED,
                                            line_thickness=1)
    assert out.dtype == np.uint8 and out.shape == images.shape and not images.any()  # input untouched
    expected = np.zeros((40, 50), bool)
    expected[5, 10:31] = expected[20, 10:31] = expected[5:21, 10] = expected[5:21, 30] = True
    np.testing.assert_array_equal(out[0, ..., 0] == 255, expected)
    assert not out[0, ..., 1:].any()


def test_thickness_padding_labels_and_float_images():
    images = np.full((2, 40, 50, 3), 0.5, np.float32)  # floats in [0, 1]: scaled to [0, 255] as in Keras
    boxes = _boxes([[[10, 10, 30, 30], [0, 0, 5, 5]], [[-5, 20, 60, 39], [1, 1, 2, 2]]], [[1, -1], [2, 0]])
    out = visualization.draw_bounding_boxes(images, boxes, "xyxy", color=BLUE, line_thickness=3)
    background = np.array([127, 127, 127])
    first = out[0]
    np.testing.assert_array_equal(first[9:12, 10:31], np.broadcast_to(BLUE, (3, 21, 3)))  # 3 rows around y=10
    np.testing.assert_array_equal(first[8, 15], background)
    np.testing.assert_array_equal(first[12, 15], background)
    np.testing.assert_array_equal(first[20, 20], background)  # the inside stays as it was
    np.testing.assert_array_equal(first[2, 2], background)  # label -1: padding, not drawn
    second = out[1]
    np.testing.assert_array_equal(second[19:22, 0:50], np.broadcast_to(BLUE, (3, 50, 3)))  # clipped at the sides
    np.testing.assert_array_equal(second[38:40, 25], [BLUE, BLUE])  # the bottom edge at y=39, clipped below
    # a class name is written beside its box (here inside it, since there is no room above)
    labelled = visualization.draw_bounding_boxes(np.zeros((1, 40, 50, 3), np.uint8), _boxes([[[2, 2, 45, 35]]], [[4]]),
                                                 "xyxy", class_mapping={4: "cat"}, color=GREEN, line_thickness=1,
                                                 font_scale=0.5)
    unlabelled = visualization.draw_bounding_boxes(np.zeros((1, 40, 50, 3), np.uint8), _boxes([[[2, 2, 45, 35]]],
                                                                                              [[4]]), "xyxy",
                                                   color=GREEN, line_thickness=1)
    text = (labelled != unlabelled).any(axis=-1)[0]
    assert text[3:35, 3:45].sum() > 10 and not text[:, 46:].any()


def test_draw_bounding_boxes_channels_first_tensors_and_errors():
    images = dlgpu.Tensor(np.zeros((1, 3, 20, 20), np.float32))
    out = visualization.draw_bounding_boxes(images, {"boxes": dlgpu.Tensor(np.array([[[0.1, 0.1, 0.5, 0.5]]], "f4")),
                                                     "labels": np.array([[0]])}, "rel_xyxy", color=RED,
                                            line_thickness=1, data_format="channels_first")
    assert out.shape == (1, 3, 20, 20)
    assert out[0, 0, 2, 2:11].tolist() == [255] * 9 and not out[0, 1:].any()
    with pytest.raises(ValueError, match="batched 4D"):
        visualization.draw_bounding_boxes(np.zeros((20, 20, 3)), {"boxes": [], "labels": []}, "xyxy")
    with pytest.raises(TypeError, match="should be a dict"):
        visualization.draw_bounding_boxes(np.zeros((1, 20, 20, 3)), [[0, 0, 1, 1]], "xyxy")
    with pytest.raises(ValueError, match="'boxes' and 'labels'"):
        visualization.draw_bounding_boxes(np.zeros((1, 20, 20, 3)), {"boxes": np.zeros((1, 1, 4))}, "xyxy")


def test_draw_segmentation_masks_by_hand():
    images = np.full((1, 2, 3, 3), 100, np.float32)
    masks = np.array([[[0, 1, 2], [-1, 1, 5]]])  # 3-D masks are taken too; 5 is beyond num_classes
    colors = {0: (0, 0, 0), 1: (200, 0, 0), 2: (0, 200, 0)}
    out = visualization.draw_segmentation_masks(images, masks, num_classes=3, color_mapping=colors, alpha=0.5)
    np.testing.assert_array_equal(out[0, 0], [[50, 50, 50], [150, 50, 50], [50, 150, 50]])
    np.testing.assert_array_equal(out[0, 1], [[100, 100, 100], [150, 50, 50], [100, 100, 100]])
    inferred = visualization.draw_segmentation_masks(images, np.array([[[0, 1, 2], [2, 2, 2]]]), alpha=1.0,
                                                     color_mapping=colors)
    np.testing.assert_array_equal(inferred[0, 1], [[0, 200, 0]] * 3)  # num_classes = 3: the top class is painted
    with pytest.raises(TypeError, match="integer dtype"):
        visualization.draw_segmentation_masks(images, masks.astype("f4"))
    with pytest.raises(ValueError, match="missing \\[2\\]"):
        visualization.draw_segmentation_masks(images, masks, num_classes=3, color_mapping={0: RED, 1: RED})


def _read(path):
    return (matplotlib.image.imread(path)[..., :3] * 255).round().astype(int)


def _fraction(picture, color):
    return np.mean(np.all(np.abs(picture - np.array(color)) <= 2, axis=-1))


def test_image_gallery_puts_each_image_in_its_cell(tmp_path):
    images = np.zeros((4, 16, 16, 3), np.float32)
    images[0, ..., 0] = 1.0  # red, green, blue, white with value_range (0, 1)
    images[1, ..., 1] = 1.0
    images[2, ..., 2] = 1.0
    images[3] = 1.0
    path = tmp_path / "gallery.png"
    visualization.plot_image_gallery(images, value_range=(0, 1), path=path, scale=1, dpi=40, transparent=False)
    picture = _read(path)
    h, w = picture.shape[:2]
    quarters = {RED: picture[: h // 2, : w // 2], GREEN: picture[: h // 2, w // 2:],
                BLUE: picture[h // 2:, : w // 2], (255, 255, 255): picture[h // 2:, w // 2:]}
    for color, quarter in quarters.items():
        assert _fraction(quarter, color) > 0.6, color
    labelled = tmp_path / "labelled.png"
    visualization.plot_image_gallery(images[:2] * 255, y_true=np.array([0, 1]), y_pred=np.array([1, 1]),
                                     label_map={0: "cat", 1: "dog"}, path=labelled, rows=1, cols=2, dpi=60,
                                     transparent=False)
    plain = tmp_path / "plain.png"
    visualization.plot_image_gallery(images[:2] * 255, path=plain, rows=1, cols=2, dpi=60, transparent=False)
    dark = [np.all(_read(p) < 100, axis=-1) for p in (labelled, plain)]
    assert dark[0][: dark[0].shape[0] // 3].sum() > 20 and not dark[1].any()  # the titles' black text, on top


def test_gallery_arguments_are_checked(tmp_path):
    images = np.zeros((2, 8, 8, 3))
    with pytest.raises(ValueError, match="either `path` to be set, or `show`"):
        visualization.plot_image_gallery(images, path=tmp_path / "x.png", show=True)
    with pytest.raises(ValueError, match="`label_map` must also be provided"):
        visualization.plot_image_gallery(images, y_true=[0, 1], path=tmp_path / "x.png")
    with pytest.raises(ValueError, match="batch"):
        visualization.plot_image_gallery(images[0], path=tmp_path / "x.png")
    with pytest.raises(ValueError, match="Only pass `legend` OR `legend_handles`"):
        visualization.plot_bounding_box_gallery(images, "xyxy", legend=True, legend_handles=[1], path=tmp_path / "y")


def test_bounding_box_gallery_draws_truth_and_predictions(tmp_path):
    images = np.zeros((1, 40, 40, 3), np.uint8)
    y_true = {"boxes": np.array([[[0.1, 0.1, 0.45, 0.9]]], "f4"), "labels": np.array([[0]])}
    y_pred = {"boxes": np.array([[[0.55, 0.1, 0.9, 0.9]]], "f4"), "labels": np.array([[0]])}
    path = tmp_path / "boxes.png"
    visualization.plot_bounding_box_gallery(images, "rel_xyxy", y_true=y_true, y_pred=y_pred, true_color=RED,
                                            pred_color=GREEN, line_thickness=2, path=path, scale=4, dpi=50,
                                            transparent=False)
    picture = _read(path)
    w = picture.shape[1]
    left, right = picture[:, : int(w * 0.46)], picture[:, int(w * 0.54):]  # the boxes' halves, off the seam
    assert _fraction(left, RED) > 0.02 and _fraction(left, GREEN) == 0
    assert _fraction(right, GREEN) > 0.02 and _fraction(right, RED) == 0
    dark = []
    for legend in (True, False):  # on white images the legend's black text is the only dark ink
        visualization.plot_bounding_box_gallery(images + 255, "rel_xyxy", y_true=y_true, legend=legend,
                                                path=tmp_path / "legend.png", scale=4, dpi=50, transparent=False)
        dark.append(np.all(_read(tmp_path / "legend.png") < 60, axis=-1).sum())
    assert dark[0] > 20 and dark[1] == 0


def test_segmentation_mask_gallery_rows_and_columns(tmp_path):
    images = np.full((2, 12, 12, 3), 128, np.uint8)
    masks = np.zeros((2, 12, 12, 1), np.int32)
    masks[:, 6:] = 1
    path = tmp_path / "masks.png"
    visualization.plot_segmentation_mask_gallery(images, num_classes=2, y_true=masks, y_pred=1 - masks,
                                                 color_mapping={0: BLUE, 1: RED}, alpha=1.0, path=path, scale=1,
                                                 dpi=40, transparent=False)
    picture = _read(path)
    h, w = picture.shape[:2]
    cell = lambda r, c: picture[r * h // 2: (r + 1) * h // 2, c * w // 3: (c + 1) * w // 3]  # noqa: E731
    for row in range(2):
        assert _fraction(cell(row, 0), (128, 128, 128)) > 0.6  # the image itself
        true_cell, pred_cell = cell(row, 1), cell(row, 2)
        ch = true_cell.shape[0]
        assert _fraction(true_cell[: ch // 2], BLUE) > 0.5 and _fraction(true_cell[ch // 2:], RED) > 0.5
        assert _fraction(pred_cell[: ch // 2], RED) > 0.5 and _fraction(pred_cell[ch // 2:], BLUE) > 0.5


def test_without_matplotlib_says_what_to_install(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "matplotlib.pyplot", None)
    with pytest.raises(ImportError, match="pip install matplotlib"):
        visualization.plot_image_gallery(np.zeros((1, 4, 4, 3)), path=tmp_path / "x.png")
