"""RandomShear, RandomPerspective, RandomElasticTransform, RandomErasing and RandAugment (their values for the same
random numbers are compared with Keras itself in tests/keras_reference/test_image_geometry_keras.py): the layer
contract; the random-layer contract (seeds, inference identity); hand-computed geometry and a scipy reference
for the elastic distortion, fed fixed numbers through the layers' ``_draw``; channels_first; gradients; a small
CNN trained with fit, saved and loaded; bad arguments; CPU against GPU."""

import numpy as np
import pytest

import dlgpu
from dlgpu import layers, ops

from helpers import (SCIPY_FILL_MODES, assert_image_layers_train_save_load, assert_random_image_layer_contract,
                     check_gradients, pixels, scipy_affine_transform)

from .layer_test_case import run_layer_test

CONTRACTS = [
    (layers.RandomShear, {"x_factor": 0.3, "y_factor": (0.1, 0.2), "seed": 1}),
    (layers.RandomShear, {"x_factor": 0.5, "fill_mode": "constant", "interpolation": "nearest", "fill_value": 2.0}),
    (layers.RandomPerspective, {"scale": 0.5, "seed": 1}),
    (layers.RandomPerspective, {"factor": (1.0, 1.0), "interpolation": "nearest", "fill_value": 9.0}),
    (layers.RandomElasticTransform, {"scale": (0.5, 1.0), "value_range": (-5, 5), "seed": 1}),
    (layers.RandomElasticTransform, {"fill_mode": "constant", "interpolation": "nearest"}),
    (layers.RandomErasing, {"seed": 1}),
    (layers.RandomErasing, {"factor": (1.0, 1.0), "fill_value": (1, 2, 3), "value_range": (0, 1)}),
    (layers.RandAugment, {"value_range": (-3, 3), "num_ops": 3, "factor": 0.4, "seed": 1}),
]
RANDOM = [lambda **k: layers.RandomShear(0.4, 0.4, **k), lambda **k: layers.RandomPerspective(scale=0.6, **k),
          lambda **k: layers.RandomElasticTransform(**k), lambda **k: layers.RandomErasing(**k),
          lambda **k: layers.RandAugment(num_ops=3, **k)]


@pytest.mark.parametrize("cls, kwargs", CONTRACTS, ids=lambda v: getattr(v, "__name__", ""))
def test_contract(cls, kwargs):
    run_layer_test(cls, kwargs, (2, 5, 4, 3), (2, 5, 4, 3))
    assert cls(**kwargs)(pixels((5, 4, 3))).shape == (5, 4, 3)  # one image
    assert cls(**kwargs)(pixels((1, 1, 1, 3))).shape == (1, 1, 1, 3)  # batch 1 of 1x1 pixels
    out = cls(**kwargs)(np.random.default_rng(0).integers(0, 255, (2, 5, 4, 3)).astype(np.uint8))
    assert out.dtype == "float32"


@pytest.mark.parametrize("make", RANDOM)
def test_inference_identity_and_seeds(make):
    assert_random_image_layer_contract(make)


@pytest.mark.parametrize("make", RANDOM)
def test_channels_first_is_channels_last_transposed(make):
    x = pixels((4, 6, 5, 3))
    last = make(seed=2)(x).numpy()
    first = make(seed=2, data_format="channels_first")(np.transpose(x, (0, 3, 1, 2))).numpy()
    np.testing.assert_allclose(np.transpose(first, (0, 2, 3, 1)), last, rtol=1e-6, atol=1e-4)
    one = make(seed=2, data_format="channels_first")(np.transpose(x[0], (2, 0, 1))).numpy()  # one image
    np.testing.assert_allclose(np.transpose(one, (1, 2, 0)), make(seed=2)(x[0]).numpy(), rtol=1e-6, atol=1e-4)
    assert make(data_format="channels_first").get_config()["data_format"] == "channels_first"


def _fixed(layer, draw):
    """``layer`` with its random numbers replaced by ``draw`` (what Keras's transformation dict would hold)."""
    layer._draw = lambda *shape: draw
    return layer


# -- geometry by hand --------------------------------------------------------------------------------------
def test_shear_reads_x_plus_s_y():
    x = pixels((3, 6, 5, 2))
    # a whole-pixel shear along x with wrap: row y rolls left by s * y
    shear = np.array([[1.0, 0.0], [-1.0, 0.0], [2.0, 0.0]])
    out = _fixed(layers.RandomShear(fill_mode="wrap", interpolation="nearest"), {"shear_factor": shear})(x).numpy()
    cols = np.arange(5)
    for b, (s, _) in enumerate(shear):
        for y in range(6):
            np.testing.assert_array_equal(out[b, y], x[b, y, (cols + int(s) * y) % 5])
    # fractional shears along both axes: scipy's affine transform of the same matrix
    shear = np.array([[0.3, -0.2], [-0.45, 0.1], [0.0, 0.6]])
    for fill_mode in ("reflect", "constant", "nearest"):
        out = _fixed(layers.RandomShear(fill_mode=fill_mode, fill_value=3.0), {"shear_factor": shear})(x).numpy()
        rows = np.stack([[1, s[0], 0, s[1], 1, 0, 0, 0] for s in shear])
        np.testing.assert_allclose(out, scipy_affine_transform(x, rows, 1, fill_mode, 3.0), rtol=1e-5, atol=1e-3)


def test_shear_draws():
    layer = layers.RandomShear((0.2, 0.3), 0.1, seed=0)
    shear = layer._draw(2000, 4, 4)["shear_factor"]
    assert layer.x_factor == (0.2, 0.3) and layer.y_factor == (-0.1, 0.1)  # a number gives (-f, f)
    magnitude = np.abs(shear[:, 0])
    assert magnitude.min() >= 0.2 and magnitude.max() <= 0.3 and np.abs(shear[:, 1]).max() <= 0.1
    # one sign per image for both axes, +1 and -1 equally likely
    assert 0.45 < np.mean(shear[:, 0] > 0) < 0.55


def test_perspective_values():
    x = pixels((3, 7, 6, 2))
    # scale 0: the corners stay, the homography is the identity; factor 0: nothing is applied
    np.testing.assert_allclose(layers.RandomPerspective(factor=(1, 1), scale=0.0)(x).numpy(), x, atol=1e-3)
    np.testing.assert_array_equal(layers.RandomPerspective(factor=0.0)(x).numpy(), x)
    # corners moved to twice their place: a zoom by 2 about the top-left corner, read by scipy
    corners = np.array([[0.0, 0.0], [5.0, 0.0], [0.0, 6.0], [5.0, 6.0]])
    start = np.broadcast_to(corners, (3, 4, 2))
    draw = {"apply_perspective": np.array([True, False, True]), "start_points": start, "end_points": 2 * start}
    out = _fixed(layers.RandomPerspective(fill_value=4.0), draw)(x).numpy()
    zoom = scipy_affine_transform(x, np.tile([0.5, 0, 0, 0, 0.5, 0, 0, 0], (3, 1)), 1, "constant", 4.0)
    np.testing.assert_allclose(out[[0, 2]], zoom[[0, 2]], rtol=1e-5, atol=1e-3)
    np.testing.assert_array_equal(out[1], x[1])
    # the draws: the top-left corner never moves, the others by at most scale / 2 of their coordinates
    draw = layers.RandomPerspective(scale=0.4, seed=0)._draw(500, 7, 6)
    np.testing.assert_array_equal(draw["end_points"][:, 0], 0.0)
    ratio = draw["end_points"][:, 3] / draw["start_points"][:, 3]
    assert ratio.min() >= 0.8 and ratio.max() <= 1.2 and np.ptp(ratio) > 0.35


def _scipy_elastic(x, draw, interpolation, fill_mode, fill_value, value_range):
    """Keras's elastic_transform, written with scipy: Gaussian blur of sigma times the noise over
    int(6 sigma) | 1 taps with zero padding, then map_coordinates of p + alpha * blurred."""
    from scipy import ndimage
    batch, height, width = x.shape[:3]
    s = np.float32(draw["distortion_factor"])
    alpha = max(height, width) * 0.1 * float(s)
    sigma = min(height, width) * 0.05 * float(s)
    size = int(6 * sigma) | 1
    t = np.arange(size) - (size - 1) / 2
    k1 = np.exp(-0.5 * (t / sigma) ** 2)
    kernel = np.outer(k1, k1) / k1.sum() ** 2
    out = x.astype(np.float64).copy()
    for b in range(batch):
        if not draw["apply_transform"][b]:
            continue
        dx, dy = (ndimage.correlate(draw[n][b].astype(np.float64) * sigma, kernel, mode="constant")
                  for n in ("dx", "dy"))
        rows, cols = np.meshgrid(np.arange(height), np.arange(width), indexing="ij")
        for c in range(x.shape[3]):
            out[b, ..., c] = ndimage.map_coordinates(x[b, ..., c].astype(np.float64),
                                                     [rows + alpha * dy, cols + alpha * dx],
                                                     order=1 if interpolation == "bilinear" else 0,
                                                     mode=SCIPY_FILL_MODES[fill_mode], cval=fill_value)
    return np.clip(out, *value_range)


@pytest.mark.parametrize("fill_mode", ["reflect", "constant", "nearest", "wrap", "mirror"])
def test_elastic_matches_a_scipy_reference(fill_mode):
    x = pixels((3, 20, 24, 2))
    rng = np.random.default_rng(1)
    draw = {"apply_transform": np.array([True, False, True]), "distortion_factor": 0.83,
            "dx": rng.standard_normal((3, 20, 24)).astype(np.float32),
            "dy": rng.standard_normal((3, 20, 24)).astype(np.float32)}
    layer = _fixed(layers.RandomElasticTransform(fill_mode=fill_mode, fill_value=9.0, value_range=(10, 240)), draw)
    out = layer(x).numpy()
    np.testing.assert_allclose(out, _scipy_elastic(x, draw, "bilinear", fill_mode, 9.0, (10, 240)),
                               rtol=1e-4, atol=2e-3)
    assert out.min() >= 10 and out.max() <= 240  # every image clipped, the untouched one too


def test_elastic_draws_and_shortcuts():
    x = pixels((4, 10, 10, 3), low=-50.0, high=300.0)
    # factor 0 or scale 0: the input as it is, not even clipped (Keras returns it untouched)
    for layer in (layers.RandomElasticTransform(factor=0.0), layers.RandomElasticTransform(scale=0.0)):
        np.testing.assert_array_equal(layer(x).numpy(), x)
    draw = layers.RandomElasticTransform(factor=(0.5, 0.5), scale=(0.2, 0.4), seed=0)._draw(4000, 10, 12)
    assert 0.2 <= draw["distortion_factor"] <= 0.4 and np.ndim(draw["distortion_factor"]) == 0  # one per batch
    assert 0.47 < draw["apply_transform"].mean() < 0.53
    assert draw["dx"].dtype == np.float32 and abs(float(draw["dx"].std()) - 1) < 0.01


def test_erasing_values():
    x = pixels((64, 12, 10, 3), low=10.0, high=240.0)
    out = layers.RandomErasing(factor=(1, 1), scale=(0.1, 0.4), fill_value=-3.0, value_range=(-5, 255),
                               seed=0)(x).numpy()
    for img, src in zip(out, x):
        erased = np.all(img == -3.0, axis=-1)
        np.testing.assert_array_equal(img[~erased], src[~erased])
        rows, cols = np.nonzero(erased)
        # one full rectangle whose sides are sqrt(scale) of the image's, give or take the pixel grid
        assert erased[rows.min():rows.max() + 1, cols.min():cols.max() + 1].all()
        h, w = np.ptp(rows) + 1, np.ptp(cols) + 1
        assert np.sqrt(0.1) * 12 - 1 <= h <= np.sqrt(0.4) * 12 + 1 and np.sqrt(0.1) * 10 - 1 <= w <= np.sqrt(0.4) * 10 + 1
    # a fill per channel, clipped to value_range; noise: normal * value_range[1], clipped
    unit = x / np.float32(255)
    out = layers.RandomErasing(factor=(1, 1), fill_value=[0.2, 7.0, -1.0], value_range=(0, 1), seed=0)(unit).numpy()
    changed = np.any(out != unit, axis=-1)
    assert changed.any()
    np.testing.assert_array_equal(out[changed], np.broadcast_to(np.float32([0.2, 1.0, 0.0]), out[changed].shape))
    noise = layers.RandomErasing(factor=(1, 1), scale=(0.3, 0.3), seed=0)(x).numpy()
    filled = noise[np.any(noise != x, axis=-1)]
    assert filled.min() == 0 and filled.max() <= 255 and 0.4 < np.mean(filled == 0) < 0.6
    # factor 0: nothing erased
    np.testing.assert_array_equal(layers.RandomErasing(factor=0.0)(x).numpy(), x)


def test_rand_augment():
    x = pixels((6, 8, 8, 3))
    np.testing.assert_array_equal(layers.RandAugment(num_ops=0)(x).numpy(), x)
    layer = layers.RandAugment(factor=0.5, seed=3)
    assert [type(l).__name__ for l in layer._augmenters] == [
        "RandomShear", "RandomTranslation", "RandomRotation", "RandomBrightness", "RandomColorDegeneration",
        "RandomContrast", "RandomSharpness", "RandomPosterization", "Solarization", "AutoContrast", "Equalization"]
    # a layer picked twice in one batch applies the same draws twice, as Keras (one transformation per layer)
    twice = _fixed(layers.RandAugment(factor=0.5, seed=3), {"layer_idxes": np.array([2, 2])})(x).numpy()
    expected = x
    for _ in range(2):
        expected = layers.RandomRotation((0.0, 0.5), seed=3)(expected).numpy()
    np.testing.assert_allclose(twice, expected, rtol=1e-5, atol=1e-3)
    # two different ones: the second draws after the first, from the same generator
    pair = _fixed(layers.RandAugment(factor=0.5, seed=3), {"layer_idxes": np.array([5, 3])})(x).numpy()
    rng = np.random.default_rng(3)
    contrast = layers.RandomContrast((0.0, 0.5))
    brightness = layers.RandomBrightness((0.0, 0.5))
    contrast._rng = brightness._rng = rng
    np.testing.assert_allclose(pair, brightness(contrast(x)).numpy(), rtol=1e-5, atol=1e-3)
    # grayscale images: every operation takes them (colour degeneration only clips one channel, as Keras)
    gray = pixels((2, 6, 5, 1))
    for i in range(11):
        out = _fixed(layers.RandAugment(factor=0.5, seed=1), {"layer_idxes": np.array([i])})(gray).numpy()
        assert out.shape == gray.shape and np.isfinite(out).all()
    # the draws: num_ops indices in [0, 11) per batch
    idx = layers.RandAugment(num_ops=2000, seed=0)._draw()["layer_idxes"]
    assert idx.shape == (2000,) and set(idx.tolist()) == set(range(11))


@pytest.mark.parametrize("make", [
    lambda: layers.RandomShear(0.3, 0.3, seed=0, dtype="float64"),
    lambda: layers.RandomPerspective(scale=0.5, fill_value=1.0, seed=0, dtype="float64"),
    lambda: layers.RandomElasticTransform(factor=(1, 1), fill_mode="constant", value_range=(-9, 9), seed=0,
                                          dtype="float64"),
    lambda: layers.RandomErasing(factor=(1, 1), scale=(0.3, 0.5), seed=0, dtype="float64"),
    # shear then sharpness, rotation then colour degeneration (posterization and equalization have no gradient)
    lambda: _fixed(layers.RandAugment(value_range=(-9, 9), factor=0.3, seed=5, dtype="float64"),
                   {"layer_idxes": np.array([0, 6])}),
    lambda: _fixed(layers.RandAugment(value_range=(-9, 9), factor=0.3, seed=5, dtype="float64"),
                   {"layer_idxes": np.array([2, 4])})])
def test_gradients_against_finite_differences(make):
    """A fresh seeded layer per evaluation, so that each draws the same numbers: the output is then linear in
    the images (a weighted gather, a mask) and the gradients exact."""
    check_gradients(lambda t: make()(t, training=True), [pixels((2, 5, 4, 3), low=-1.0, high=1.0)])


def test_geometry_block_in_a_cnn_fit_save_load(tmp_path):
    loaded = assert_image_layers_train_save_load(
        [layers.RandomShear(0.2, 0.2), layers.RandomPerspective(scale=0.3), layers.RandomElasticTransform(scale=0.5),
         layers.RandomErasing(factor=0.5, fill_value=0.0), layers.RandAugment(num_ops=2, factor=0.3)], tmp_path)
    assert [type(l).__name__ for l in loaded.layers[1:6]] == [
        "RandomShear", "RandomPerspective", "RandomElasticTransform", "RandomErasing", "RandAugment"]
    assert loaded.layers[1].get_config()["x_factor"] == (-0.2, 0.2)
    assert loaded.layers[5].get_config()["factor"] == (0, 0.3)


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="'sh'.*`x_factor`.*\\[0, 1.0\\]"):
        layers.RandomShear(1.5, name="sh")
    with pytest.raises(ValueError, match="`y_factor`.*y_factor=\\(-1.2, 0.3\\)"):
        layers.RandomShear(0.1, (-1.2, 0.3))
    # the (-f, f) a number gives loads back (Keras refuses its own config there)
    assert layers.RandomShear(y_factor=(-0.2, 0.3)).y_factor == (-0.2, 0.3)
    with pytest.raises(NotImplementedError, match="unknown `fill_mode` 'mirror'"):
        layers.RandomShear(0.1, fill_mode="mirror")
    with pytest.raises(NotImplementedError, match="unknown `interpolation` 'bicubic'"):
        layers.RandomPerspective(interpolation="bicubic")
    with pytest.raises(ValueError, match="'p'.*`scale`.*\\[0,1\\].*scale=2"):
        layers.RandomPerspective(scale=2, name="p")
    with pytest.raises(ValueError, match="`factor`.*\\[0, 1\\]"):
        layers.RandomPerspective(factor=1.5)
    with pytest.raises(ValueError, match="`fill_value` must be a number"):
        layers.RandomPerspective(fill_value="black")
    with pytest.raises(ValueError, match="`scale`.*\\[0, 1\\]"):
        layers.RandomElasticTransform(scale=3)
    with pytest.raises(NotImplementedError, match="unknown `fill_mode` 'edge'"):
        layers.RandomElasticTransform(fill_mode="edge")
    with pytest.raises(ValueError, match="`value_range`"):
        layers.RandomElasticTransform(value_range=(0,))
    with pytest.raises(ValueError, match="'e'.*`fill_value`.*three numbers"):
        layers.RandomErasing(fill_value=(1, 2), name="e")
    with pytest.raises(ValueError, match="'e3'.*three numbers needs 3 channels.*\\(1, 4, 4, 2\\)"):
        layers.RandomErasing(fill_value=(1, 2, 3), name="e3")(pixels((1, 4, 4, 2)))
    with pytest.raises(ValueError, match="`num_ops` must be a non-negative integer"):
        layers.RandAugment(num_ops=-1)
    with pytest.raises(NotImplementedError, match="unknown `interpolation` 'area'"):
        layers.RandAugment(interpolation="area")
    with pytest.raises(ValueError, match="'ra'.*3 channels.*1 channel.*\\(2, 4, 4, 4\\)"):
        layers.RandAugment(num_ops=0, name="ra")(pixels((2, 4, 4, 4)))
    with pytest.raises(ValueError, match="`data_format` must be 'channels_last' or 'channels_first'"):
        layers.RandomShear(0.1, data_format="NCHW")
    boxes = {"boxes": np.zeros((1, 1, 4)), "labels": np.zeros((1, 1))}
    for make in (lambda: layers.RandomElasticTransform(bounding_box_format="xyxy"),
                 lambda: layers.RandAugment(bounding_box_format="xyxy")):
        with pytest.raises(NotImplementedError, match="dict inputs with 'bounding_boxes'"):
            make()({"images": pixels((1, 4, 4, 3)), "bounding_boxes": boxes})
    for make in (lambda: layers.RandomShear(0.1), lambda: layers.RandomPerspective(), lambda: layers.RandomErasing()):
        with pytest.raises(ValueError, match="Pass a `bounding_box_format` argument"):
            make()({"images": pixels((1, 4, 4, 3)), "bounding_boxes": boxes})


@pytest.mark.gpu
def test_geometry_layers_on_gpu_match_cpu():
    x = pixels((4, 9, 7, 3))
    makers = [lambda: layers.RandomShear(0.3, 0.3, fill_mode="wrap", seed=1),
              lambda: layers.RandomPerspective(scale=0.6, interpolation="nearest", seed=1),
              lambda: layers.RandomElasticTransform(fill_mode="mirror", seed=1),
              lambda: layers.RandomErasing(factor=(1, 1), seed=1),
              lambda: layers.RandAugment(num_ops=4, seed=1),
              lambda: layers.RandomShear(0.3, 0.3, data_format="channels_first", seed=1)]
    for make in makers:
        results = []
        for device in ("cpu", "gpu"):
            with dlgpu.device(device):
                xt = ops.convert_to_tensor(x)
                with dlgpu.GradientTape() as tape:
                    tape.watch(xt)
                    out = make()(xt, training=True)
                    loss = ops.sum(ops.square(out))
                results.append([out.numpy(), loss.numpy(), tape.gradient(loss, xt).numpy()])
        for a, b in zip(*results):
            np.testing.assert_allclose(b, a, rtol=1e-4, atol=1e-2)
