"""ContrastLimitedAdaptiveHistogramEqualization (compared with Keras itself in tests/keras_reference: the table
where Keras's torch backend computes the algorithm, test_image_mixing_keras.py for its one difference): the
layer contract; values against a plain numpy reference written tile by tile and pixel by pixel; applied in
training and inference; no gradient; a small CNN behind it trained, saved and loaded; bad arguments; CPU
against GPU."""

import math

import numpy as np
import pytest

import dlgpu
from dlgpu import layers, ops

from helpers import assert_image_layers_train_save_load, pixels

from .layer_test_case import run_layer_test

CLAHE = layers.ContrastLimitedAdaptiveHistogramEqualization


def reference_clahe(channel, clip_limit, grid):
    """CLAHE of one (h, w) channel on the 0..255 scale, the plain way: a lookup table per tile, then each
    pixel's value through the tables of the tiles whose centres surround it, weighted bilinearly."""
    h, w = channel.shape
    (gh, gw), th, tw = grid, math.ceil(h / grid[0]), math.ceil(w / grid[1])
    values = np.clip(np.pad(channel, ((0, th * gh - h), (0, tw * gw - w)), mode="symmetric"), 0, 255).astype(int)
    tables = np.zeros((gh, gw, 256))
    for i in range(gh):
        for j in range(gw):
            hist = np.bincount(values[i * th:(i + 1) * th, j * tw:(j + 1) * tw].ravel(), minlength=256).astype(float)
            if clip_limit > 0:
                limit = clip_limit * th * tw / 256
                hist = np.minimum(hist, limit) + np.maximum(hist - limit, 0).sum() / 256
            cdf = np.cumsum(hist)
            tables[i, j] = np.clip((cdf - cdf[0]) * 255 / ((th * tw - cdf[0]) or 1), 0, 255)
    out = np.zeros((h, w))
    for y in range(h):
        fy = (y - th / 2) / th  # in tile units from tile 0's centre
        rows, wy = np.clip([math.floor(fy), math.floor(fy) + 1], 0, gh - 1), fy - math.floor(fy)
        for x in range(w):
            fx = (x - tw / 2) / tw
            cols, wx = np.clip([math.floor(fx), math.floor(fx) + 1], 0, gw - 1), fx - math.floor(fx)
            v = values[y, x]
            top = tables[rows[0], cols[0], v] * (1 - wx) + tables[rows[0], cols[1], v] * wx
            bottom = tables[rows[1], cols[0], v] * (1 - wx) + tables[rows[1], cols[1], v] * wx
            out[y, x] = top * (1 - wy) + bottom * wy
    return out


def reference(images, value_range=(0, 255), clip_limit=4.0, tile_grid_size=(8, 8)):
    low, high = (np.float32(v) for v in value_range)
    scaled = (images - low) / (high - low) * np.float32(255)  # float32, as the layer: the same bins
    out = np.stack([np.stack([reference_clahe(img[..., c], clip_limit, tile_grid_size)
                              for c in range(img.shape[-1])], axis=-1) for img in scaled])
    return out / 255 * (float(high) - float(low)) + float(low)


@pytest.mark.parametrize("shape, kwargs", [
    ((2, 16, 16, 3), {}),  # 2x2-pixel tiles, the default limit below one count: the excess spread everywhere
    ((2, 13, 10, 2), {"tile_grid_size": (3, 4)}),  # padded by reflection to 15x12
    ((1, 9, 7, 1), {"tile_grid_size": (2, 2), "clip_limit": 0.0}),  # no clipping
    ((2, 24, 20, 3), {"tile_grid_size": (2, 3), "clip_limit": 2.5}),
    ((2, 12, 12, 3), {"value_range": (0, 1), "tile_grid_size": (4, 3), "clip_limit": 40.0}),
    ((1, 5, 6, 3), {"value_range": (-1, 1), "tile_grid_size": (1, 1)}),  # one tile: plain clipped equalization
    ((1, 3, 2, 1), {"tile_grid_size": (5, 4)}),  # more tiles than pixels: one-pixel tiles, padded past the image
])
def test_values_match_the_reference(shape, kwargs):
    low, high = kwargs.get("value_range", (0, 255))
    x = pixels(shape, seed=sum(shape), low=low, high=high)
    x[0, :2, :2] = low  # flat corners: tables of near-constant tiles
    out = CLAHE(**kwargs)(x).numpy()
    scale = (high - low) / 255
    np.testing.assert_allclose(out, reference(x, **kwargs), rtol=1e-4, atol=2e-3 * scale)


def test_contract_inference_and_one_image():
    run_layer_test(CLAHE, {"tile_grid_size": (2, 2)}, (2, 5, 4, 3), (2, 5, 4, 3))
    x = pixels((3, 10, 12, 3))
    layer = CLAHE(tile_grid_size=(2, 3))
    out = layer(x).numpy()
    np.testing.assert_array_equal(layer(x, training=False).numpy(), out)  # applied at inference too, as Keras
    np.testing.assert_allclose(layer(x[1]).numpy(), out[1], rtol=1e-6)  # one image
    np.testing.assert_allclose(layer(x.astype(np.uint8)).numpy(), layer(x.astype(np.uint8).astype(np.float32)).numpy())
    assert layer(x.astype(np.uint8)).dtype == "float32"
    assert CLAHE()(pixels((1, 1, 1, 1))).shape == (1, 1, 1, 1)
    assert out.min() >= 0 and out.max() <= 255
    # contrast stretched: a dim, low-contrast image spreads over most of the range
    dim = pixels((1, 32, 32, 1), low=40.0, high=60.0)
    stretched = CLAHE(tile_grid_size=(2, 2), clip_limit=40.0)(dim).numpy()
    assert np.ptp(stretched) > 150


def test_no_gradient_as_in_keras():
    xt = ops.convert_to_tensor(pixels((1, 6, 6, 3)))
    with dlgpu.GradientTape() as tape:
        tape.watch(xt)
        loss = ops.sum(ops.square(CLAHE(tile_grid_size=(2, 2))(xt)))
    grad = tape.gradient(loss, xt)
    assert grad is None or not np.any(grad.numpy())


def test_in_a_cnn_fit_save_load(tmp_path):
    loaded = assert_image_layers_train_save_load([CLAHE(tile_grid_size=(2, 2), clip_limit=3.0)], tmp_path)
    config = loaded.layers[1].get_config()
    assert type(loaded.layers[1]) is CLAHE and list(config["tile_grid_size"]) == [2, 2] and config["clip_limit"] == 3.0


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="'c'.*`tile_grid_size` must be a pair of positive integers"):
        CLAHE(tile_grid_size=(0, 2), name="c")
    with pytest.raises(ValueError, match="`tile_grid_size`"):
        CLAHE(tile_grid_size=8)
    with pytest.raises(ValueError, match="`clip_limit` must be a number"):
        CLAHE(clip_limit="4")
    with pytest.raises(ValueError, match="`value_range`"):
        CLAHE(value_range=(0, 1, 2))
    with pytest.raises(NotImplementedError, match="channels_last"):
        CLAHE(data_format="channels_first")
    with pytest.raises(ValueError, match="expected.*ndim"):
        CLAHE()(pixels((2, 3)))


@pytest.mark.gpu
def test_on_gpu_matches_cpu():
    x = pixels((2, 13, 10, 3))
    results = []
    for device in ("cpu", "gpu"):
        with dlgpu.device(device):
            results.append(CLAHE(tile_grid_size=(3, 4), clip_limit=2.0)(ops.convert_to_tensor(x)).numpy())
    np.testing.assert_allclose(results[1], results[0], rtol=1e-5, atol=1e-3)
