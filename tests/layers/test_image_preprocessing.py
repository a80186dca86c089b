"""Image preprocessing and augmentation layers (ops.image itself: tests/ops/test_image.py): the layer
contract for each layer;
hand-computed geometry (90-degree rotation = np.rot90, flips = np.flip, whole-pixel translations = a
shift with the fill rule, zoom 0 = identity); inference is the identity; seeds make runs repeat; value
ranges; the Keras tutorial's augmentation block inside a small CNN trained with fit, saved and loaded;
bad inputs; CPU against GPU."""

import numpy as np
import pytest

import dlgpu
from dlgpu import layers, ops
from dlgpu.models import load_model

from helpers import check_gradients, scipy_affine_transform

from .layer_test_case import run_layer_test

def _images(shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


# -- the layer contract ---------------------------------------------------------------------------------
CONTRACTS = [
    (layers.Resizing, {"height": 3, "width": 7}, (2, 5, 4, 3), (2, 3, 7, 3)),
    (layers.Resizing, {"height": 4, "width": 4, "interpolation": "nearest", "crop_to_aspect_ratio": True},
     (2, 5, 8, 1), (2, 4, 4, 1)),
    (layers.CenterCrop, {"height": 3, "width": 2}, (2, 5, 4, 3), (2, 3, 2, 3)),
    (layers.CenterCrop, {"height": 6, "width": 6}, (2, 5, 4, 3), (2, 6, 6, 3)),
    (layers.RandomCrop, {"height": 3, "width": 2, "seed": 1}, (2, 5, 4, 3), (2, 3, 2, 3)),
    (layers.RandomFlip, {"mode": "horizontal", "seed": 1}, (2, 5, 4, 3), (2, 5, 4, 3)),
    (layers.RandomRotation, {"factor": 0.2, "fill_mode": "constant"}, (2, 5, 4, 3), (2, 5, 4, 3)),
    (layers.RandomZoom, {"height_factor": (-0.2, 0.3), "width_factor": 0.1}, (2, 5, 4, 3), (2, 5, 4, 3)),
    (layers.RandomTranslation, {"height_factor": 0.2, "width_factor": (0, 0.3), "interpolation": "nearest"},
     (2, 5, 4, 3), (2, 5, 4, 3)),
    (layers.RandomContrast, {"factor": 0.5, "value_range": (-3, 3)}, (2, 5, 4, 3), (2, 5, 4, 3)),
    (layers.RandomBrightness, {"factor": (-0.2, 0.1), "value_range": (-3, 3)}, (2, 5, 4, 3), (2, 5, 4, 3)),
]


@pytest.mark.parametrize("cls, kwargs, in_shape, out_shape", CONTRACTS, ids=lambda v: getattr(v, "__name__", ""))
def test_contract(cls, kwargs, in_shape, out_shape):
    run_layer_test(cls, kwargs, in_shape, out_shape)
    # one image (rank 3) and integer images (float32 out), as Keras allows
    single = cls(**kwargs)(_images(in_shape[1:]))
    assert single.shape == out_shape[1:]
    images = np.random.default_rng(0).integers(0, 255, in_shape).astype(np.uint8)
    for training in (True, False):
        out = cls(**kwargs)(images, training=training)
        assert out.dtype == "float32"
        assert out.shape == out_shape


def test_config_has_keras_keys():
    config = layers.RandomRotation(0.1, seed=3).get_config()
    assert {"factor", "fill_mode", "interpolation", "fill_value", "seed", "data_format"} <= set(config)
    assert config["factor"] == (-0.1, 0.1)
    assert set(layers.RandomZoom(0.1).get_config()) >= {"height_factor", "width_factor", "fill_mode",
                                                        "interpolation", "seed", "fill_value", "data_format"}
    assert set(layers.Resizing(2, 3).get_config()) >= {"height", "width", "interpolation", "crop_to_aspect_ratio",
                                                       "pad_to_aspect_ratio", "fill_mode", "fill_value",
                                                       "antialias", "data_format"}
    assert layers.RandomContrast(0.2).get_config()["factor"] == (0.0, 0.2)  # Keras 3's rule for contrast
    assert layers.RandomBrightness(0.2, value_range=(1, 0)).get_config()["value_range"] == [0, 1]


# -- geometry by hand -----------------------------------------------------------------------------------
def test_rotation_by_90_degrees_is_rot90():
    x = _images((3, 5, 5, 2))
    out = layers.RandomRotation((0.25, 0.25))(x, training=True).numpy()
    np.testing.assert_allclose(out, np.rot90(x, k=1, axes=(1, 2)), atol=1e-5)  # counter-clockwise as displayed
    out = layers.RandomRotation((-0.25, -0.25), interpolation="nearest")(x, training=True).numpy()
    np.testing.assert_array_equal(out, np.rot90(x, k=-1, axes=(1, 2)))
    # a non-square image: the central square rotates as rot90 does
    wide = _images((1, 4, 6, 1))
    out = layers.RandomRotation((0.25, 0.25), fill_mode="constant")(wide, training=True).numpy()
    np.testing.assert_allclose(out[:, :, 1:5], np.rot90(wide[:, :, 1:5], axes=(1, 2)), atol=1e-5)


def test_rotation_matches_scipy_for_each_fill_mode():
    pytest.importorskip("scipy")
    x = _images((2, 6, 7, 1))
    for fill_mode in ("reflect", "wrap", "constant", "nearest"):
        layer = layers.RandomRotation((0.1, 0.1), fill_mode=fill_mode, fill_value=2.0)
        theta, cx, cy = np.deg2rad(36.0), 3.0, 2.5
        c, s = np.cos(theta), np.sin(theta)
        t = np.array([c, -s, cx - cx * c + cy * s, s, c, cy - cx * s - cy * c, 0, 0], np.float32)
        np.testing.assert_allclose(layer(x, training=True).numpy(),
                                   scipy_affine_transform(x, np.stack([t, t]), 1, fill_mode, 2.0), atol=1e-5)


@pytest.mark.parametrize("mode, axes", [("horizontal", (2,)), ("vertical", (1,)),
                                        ("horizontal_and_vertical", (1, 2))])
def test_flip_is_np_flip_or_identity(mode, axes):
    x = _images((16, 3, 4, 2))
    out = layers.RandomFlip(mode, seed=7)(x, training=True).numpy()
    flipped = np.array([np.array_equal(o, np.flip(i, axis=tuple(a - 1 for a in axes))) for o, i in zip(out, x)])
    same = np.array([np.array_equal(o, i) for o, i in zip(out, x)])
    assert (flipped | same).all() and flipped.any() and same.any()


@pytest.mark.parametrize("fill_mode, pad_mode", [("reflect", "symmetric"), ("wrap", "wrap"), ("nearest", "edge"),
                                                 ("constant", "constant")])
@pytest.mark.parametrize("interpolation", ["bilinear", "nearest"])
def test_translation_by_whole_pixels_is_a_shift(fill_mode, pad_mode, interpolation):
    x = _images((2, 4, 6, 2))
    # 0.25 * 4 rows = 1 row down, -0.5 * 6 columns = 3 columns left: out[y, x] = in[y - 1, x + 3]
    layer = layers.RandomTranslation((0.25, 0.25), (-0.5, -0.5), fill_mode=fill_mode, interpolation=interpolation,
                                     fill_value=-1.0)
    kwargs = {"constant_values": -1.0} if pad_mode == "constant" else {}
    padded = np.pad(x, [(0, 0), (6, 6), (6, 6), (0, 0)], mode=pad_mode, **kwargs)
    expected = padded[:, 6 - 1:6 - 1 + 4, 6 + 3:6 + 3 + 6]
    np.testing.assert_allclose(layer(x, training=True).numpy(), expected, atol=1e-6)


def test_zoom():
    x = _images((2, 5, 5, 1))
    np.testing.assert_array_equal(layers.RandomZoom(0.0)(x, training=True).numpy(), x)  # factor 0: identity
    # zoom out by 2 (f = 1): output pixel x reads 2x - 2, so pixels 1..3 hold the even source pixels
    out = layers.RandomZoom((1.0, 1.0), fill_mode="constant")(x, training=True).numpy()
    np.testing.assert_allclose(out[:, 1:4, 1:4], x[:, ::2, ::2], atol=1e-6)
    assert (out[:, 0] == 0).all() and (out[:, :, 4] == 0).all()
    # zoom in by 2 on the width only: column x reads 0.5 x + 1
    out = layers.RandomZoom(0.0, width_factor=(-0.5, -0.5))(x, training=True).numpy()
    np.testing.assert_allclose(out[:, :, 0], x[:, :, 1], atol=1e-6)
    np.testing.assert_allclose(out[:, :, 1], (x[:, :, 1] + x[:, :, 2]) / 2, atol=1e-6)


def test_random_crop():
    x = _images((6, 7, 8, 2))
    out = layers.RandomCrop(4, 5, seed=2)(x, training=True).numpy()
    offsets = set()
    for o, i in zip(out, x):
        found = [(t, l) for t in range(4) for l in range(4) if np.array_equal(i[t:t + 4, l:l + 5], o)]
        assert len(found) == 1
        offsets.add(found[0])
    assert len(offsets) > 1  # one window per image
    # inference: the largest centred 4:5 window of a 7x8 image (6 rows, 8 columns), resized to 4x5
    at_rest = layers.RandomCrop(4, 5)(x, training=False)
    np.testing.assert_allclose(at_rest.numpy(), ops.image.resize(x, (4, 5), crop_to_aspect_ratio=True).numpy())
    np.testing.assert_array_equal(layers.RandomCrop(7, 8)(x, training=False).numpy(), x)
    # images smaller than the target are resized while training too
    assert layers.RandomCrop(9, 9)(x, training=True).shape == (6, 9, 9, 2)


def test_center_crop_and_resizing_values():
    x = _images((2, 7, 8, 3))
    np.testing.assert_array_equal(layers.CenterCrop(3, 4)(x).numpy(), x[:, 2:5, 2:6])
    np.testing.assert_allclose(layers.CenterCrop(9, 4)(x).numpy(),
                               ops.image.resize(x, (9, 4), crop_to_aspect_ratio=True).numpy())
    np.testing.assert_allclose(layers.Resizing(5, 11)(x).numpy(), ops.image.resize(x, (5, 11)).numpy())
    # 6x8 to 8x8: one row of fill_value above and below
    padded = layers.Resizing(8, 8, pad_to_aspect_ratio=True, fill_value=3.0)(x[:, :6]).numpy()
    assert (padded[:, 0] == 3.0).all() and (padded[:, 7] == 3.0).all()
    np.testing.assert_array_equal(padded[:, 1:7], x[:, :6])


# -- training only, seeds, value ranges -----------------------------------------------------------------
RANDOM_LAYERS = [lambda **k: layers.RandomFlip(**k), lambda **k: layers.RandomRotation(0.3, **k),
                 lambda **k: layers.RandomZoom(0.3, **k), lambda **k: layers.RandomTranslation(0.3, 0.3, **k),
                 lambda **k: layers.RandomContrast(0.5, value_range=(-5, 5), **k),
                 lambda **k: layers.RandomBrightness(0.3, value_range=(-5, 5), **k),
                 lambda **k: layers.RandomCrop(5, 5, **k)]


@pytest.mark.parametrize("make", RANDOM_LAYERS)
def test_inference_identity_and_seeds(make):
    x = _images((8, 6, 6, 3))
    layer = make()
    at_rest = layer(x, training=False).numpy()
    if isinstance(layer, layers.RandomCrop):  # at rest: the centred window, resized (here 6x6 -> 5x5)
        np.testing.assert_array_equal(at_rest, ops.image.resize(x, (5, 5), crop_to_aspect_ratio=True).numpy())
    else:
        np.testing.assert_array_equal(at_rest, x)
    # the same seed repeats the same sequence; successive calls differ
    a, b = make(seed=11), make(seed=11)
    first, second = a(x, training=True).numpy(), a(x, training=True).numpy()
    np.testing.assert_array_equal(b(x, training=True).numpy(), first)
    np.testing.assert_array_equal(b(x, training=True).numpy(), second)
    assert not np.array_equal(first, second)
    # without a seed, dlgpu.utils.set_random_seed makes a run repeat
    unseeded = make()
    dlgpu.utils.set_random_seed(5)
    run1 = unseeded(x, training=True).numpy()
    dlgpu.utils.set_random_seed(5)
    np.testing.assert_array_equal(unseeded(x, training=True).numpy(), run1)
    # a direct call with no training flag augments (Keras's default), predict does not
    assert not np.array_equal(make(seed=3)(x).numpy(), at_rest)


def test_contrast_and_brightness_value_ranges():
    x = np.random.default_rng(0).uniform(0, 255, (32, 4, 4, 3)).astype(np.float32)
    out = layers.RandomContrast((0.5, 0.5), seed=1)(x, training=True).numpy()
    assert out.min() >= 0 and out.max() <= 255
    unclipped = layers.RandomContrast((0.5, 0.5), value_range=(-1e9, 1e9), seed=1)(x, training=True).numpy()
    mean = x.mean(axis=(1, 2), keepdims=True)
    factor = ((unclipped - mean) / (x - mean)).reshape(32, -1)
    np.testing.assert_allclose(factor, factor[:, :1] * np.ones_like(factor), rtol=1e-3)  # one factor per image
    assert factor.min() >= 0.5 - 1e-3 and factor.max() <= 1.5 + 1e-3 and np.ptp(factor[:, 0]) > 0.3
    out = layers.RandomBrightness((-0.1, 0.2), seed=1)(x, training=True).numpy()
    assert out.min() >= 0 and out.max() <= 255
    # delta = u * (high - low) with u in [-0.1, 0.2]: within [-200, 400] for a range of 2000 (no clipping here)
    shifted = layers.RandomBrightness((-0.1, 0.2), value_range=(-1000, 1000), seed=1)(x, training=True).numpy()
    delta = (shifted - x).reshape(32, -1)
    np.testing.assert_allclose(delta, delta[:, :1] * np.ones_like(delta), atol=1e-3)
    assert delta.min() >= -200 - 1e-3 and delta.max() <= 400 + 1e-3 and np.ptp(delta[:, 0]) > 200
    unit = layers.RandomBrightness(0.5, value_range=(0, 1), seed=0)(x / 255, training=True).numpy()
    assert unit.min() >= 0 and unit.max() <= 1


@pytest.mark.parametrize("make", [
    lambda: layers.RandomFlip(seed=0, dtype="float64"),
    lambda: layers.RandomRotation(0.2, seed=0, dtype="float64"),
    lambda: layers.RandomContrast(0.4, value_range=(-10, 10), seed=0, dtype="float64"),
    lambda: layers.RandomBrightness(0.4, value_range=(-1, 1), seed=0, dtype="float64"),
    lambda: layers.RandomCrop(2, 2, seed=0, dtype="float64")])
def test_gradient_flows_through_augmentation(make):
    """An augmentation placed after trainable layers passes gradients back (a fresh seeded layer per call,
    so that every evaluation of the finite differences draws the same transform)."""
    check_gradients(lambda t: make()(t, training=True), [_images((1, 3, 4, 2))])


# -- the Keras tutorial's augmentation block, trained, saved and loaded ----------------------------------
def test_augmentation_block_in_a_cnn_fit_save_load(tmp_path):
    dlgpu.set_random_seed(0)
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (48, 12, 12, 3)).astype(np.uint8)
    y = (x[:, :, :, 0].mean(axis=(1, 2)) > 127).astype(np.int64)
    data_augmentation = dlgpu.Sequential([layers.RandomFlip("horizontal"), layers.RandomRotation(0.1),
                                          layers.RandomZoom(0.1)], name="augmentation")
    inputs = dlgpu.Input(shape=(12, 12, 3))
    h = data_augmentation(inputs)
    h = layers.Rescaling(1.0 / 255)(h)
    h = layers.Conv2D(4, 3, activation="relu")(h)
    h = layers.MaxPooling2D()(h)
    h = layers.Flatten()(h)
    outputs = layers.Dense(2, activation="softmax")(h)
    model = dlgpu.Model(inputs, outputs)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    before = model.get_weights()
    history = model.fit(x, y, epochs=2, batch_size=16, verbose=0)
    assert np.isfinite(history.history["loss"]).all()
    assert any(not np.array_equal(a, b) for a, b in zip(before, model.get_weights()))
    # predict is inference: the augmentation is the identity, so predictions repeat exactly
    np.testing.assert_array_equal(model.predict(x, verbose=0), model.predict(x, verbose=0))
    model.save(tmp_path / "augmented.dlgpu")
    loaded = load_model(tmp_path / "augmented.dlgpu")
    np.testing.assert_allclose(loaded.predict(x, verbose=0), model.predict(x, verbose=0), rtol=1e-6)
    block = loaded.get_layer("augmentation")
    assert [type(l).__name__ for l in block.layers] == ["RandomFlip", "RandomRotation", "RandomZoom"]
    assert block.layers[1].factor == (-0.1, 0.1)


# -- bad inputs -----------------------------------------------------------------------------------------
def test_bad_inputs_name_the_layer():
    with pytest.raises(ValueError, match="'rot'.*expected min_ndim=3, found ndim=2"):
        layers.RandomRotation(0.1, name="rot")(np.zeros((4, 4)))
    with pytest.raises(ValueError, match="'flip'.*expected max_ndim=4, found ndim=5"):
        layers.RandomFlip(name="flip")(np.zeros((1, 2, 4, 4, 1)))
    with pytest.raises(ValueError, match="'zoom'.*`bounding_box_format` must be one of.*'xyz'"):
        layers.RandomZoom(0.1, name="zoom", bounding_box_format="xyz")
    with pytest.raises(ValueError, match="'rot_b'.*`factor` must be a number or a pair.*factor=1.5"):
        layers.RandomRotation(1.5, name="rot_b")
    with pytest.raises(ValueError, match="`height_factor`.*\\(-1.0, 1.0\\]"):
        layers.RandomZoom(-1.0)
    with pytest.raises(ValueError, match="`width_factor`"):
        layers.RandomTranslation(0.1, (0.1, 0.2, 0.3))
    with pytest.raises(ValueError, match="`mode` must be one of"):
        layers.RandomFlip("diagonal")
    with pytest.raises(NotImplementedError, match="unknown `fill_mode` 'mirror'"):
        layers.RandomRotation(0.1, fill_mode="mirror")
    with pytest.raises(NotImplementedError, match="unknown `interpolation` 'bicubic'"):
        layers.RandomTranslation(0.1, 0.1, interpolation="bicubic")
    with pytest.raises(NotImplementedError, match="data_format='channels_last'"):
        layers.RandomFlip(data_format="channels_first")
    with pytest.raises(ValueError, match="`seed` must be an integer"):
        layers.RandomFlip(seed=1.5)
    with pytest.raises(ValueError, match="`value_range` must be a pair"):
        layers.RandomBrightness(0.1, value_range=255)
    with pytest.raises(ValueError, match="'crop'.*`height` must be a positive integer"):
        layers.CenterCrop(0, 3, name="crop")
    with pytest.raises(NotImplementedError, match="antialias"):
        layers.Resizing(3, 3, antialias=True)
    with pytest.raises(ValueError, match="only one of"):
        layers.Resizing(3, 3, crop_to_aspect_ratio=True, pad_to_aspect_ratio=True)


# -- GPU (skipped without one) ---------------------------------------------------------------------------
@pytest.mark.gpu
def test_augmentation_on_gpu_matches_cpu():
    x = _images((4, 9, 7, 3))
    makers = [lambda: layers.RandomFlip(seed=1), lambda: layers.RandomRotation(0.2, seed=1),
              lambda: layers.RandomZoom(0.2, fill_mode="wrap", seed=1),
              lambda: layers.RandomTranslation(0.2, 0.3, fill_mode="constant", interpolation="nearest", seed=1),
              lambda: layers.RandomContrast(0.3, seed=1), lambda: layers.RandomBrightness(0.3, seed=1),
              lambda: layers.RandomCrop(5, 4, seed=1), lambda: layers.Resizing(11, 5),
              lambda: layers.CenterCrop(10, 3), lambda: layers.Normalization(mean=[1, 2, 3], variance=[1, 4, 9])]
    for make in makers:
        results = []
        for device in ("cpu", "gpu"):
            with dlgpu.device(device):
                xt = ops.convert_to_tensor(x)
                with dlgpu.GradientTape() as tape:
                    tape.watch(xt)
                    loss = ops.sum(ops.square(make()(xt, training=True)))
                results.append([loss.numpy(), tape.gradient(loss, xt).numpy()])
        for a, b in zip(*results):
            np.testing.assert_allclose(b, a, rtol=1e-4, atol=1e-4)
