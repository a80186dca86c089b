"""dlgpu.visualization.draw_segmentation_masks against Keras 3.15.1 (torch backend), pixel for pixel.
(Keras's draw_bounding_boxes needs OpenCV, which is not installed: boxes are checked by their pixels in
tests/visualization/test_visualization.py.)"""

import numpy as np
import pytest

from dlgpu import visualization

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

RNG = np.random.default_rng(7)
IMAGES = RNG.uniform(0, 255, (2, 6, 7, 3)).astype("f4")
MASKS = RNG.integers(-1, 4, (2, 6, 7, 1)).astype("int32")  # -1: ignored pixels


@pytest.mark.parametrize("blend,alpha", [(True, 0.8), (True, 0.3), (False, 0.8)])
@pytest.mark.parametrize("colors", [None, {0: (255, 0, 0), 1: (0, 255, 0), 2: (0, 0, 255), 3: (9, 9, 9)}])
def test_draw_segmentation_masks(keras, blend, alpha, colors):
    expected = keras.visualization.draw_segmentation_masks(IMAGES, MASKS, num_classes=4, color_mapping=colors,
                                                           alpha=alpha, blend=blend)
    expected = np.asarray(expected.cpu().numpy() if hasattr(expected, "cpu") else expected)
    got = visualization.draw_segmentation_masks(IMAGES, MASKS, num_classes=4, color_mapping=colors, alpha=alpha,
                                                blend=blend)
    assert got.dtype == expected.dtype and got.shape == expected.shape
    np.testing.assert_allclose(got, expected, atol=1 if blend else 1e-4)  # uint8 truncation after float32 sums
    if blend:
        assert np.mean(got == expected) > 0.99


def test_channels_first_masks(keras):
    chw, masks = IMAGES.transpose(0, 3, 1, 2), MASKS.transpose(0, 3, 1, 2)
    expected = np.asarray(keras.visualization.draw_segmentation_masks(chw, masks, num_classes=4,
                                                                      data_format="channels_first"))
    got = visualization.draw_segmentation_masks(chw, masks, num_classes=4, data_format="channels_first")
    # Keras answers channels_last whatever it was given; dlgpu keeps the input's layout
    np.testing.assert_allclose(got.transpose(0, 2, 3, 1), expected, atol=1)
