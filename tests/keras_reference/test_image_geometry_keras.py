"""RandomShear, RandomPerspective, RandomElasticTransform, RandomErasing and RandAugment against Keras for the same
random numbers: Keras draws a transformation (get_random_transformation), dlgpu's layer is handed the same
numbers through its ``_draw``, and both transform the images (Keras's transform_images, dlgpu's call).

Where Keras draws inside its backend op, the numbers are reproduced: its torch elastic_transform draws dx, then
dy, with torch.normal from torch's global generator, so the test reseeds torch and draws them first.
RandomErasing's transformation holds the finished mask, not the rectangle, so dlgpu's rectangle is drawn
and turned into Keras's mask by Keras's own _generate_batch_mask."""

import numpy as np
import pytest

from dlgpu import layers

from helpers import pixels

from .kref import config_diff

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::UserWarning")


def _numpy(transformation):
    import torch
    return {k: v.numpy() if torch.is_tensor(v) else v for k, v in transformation.items()}


def _fixed(layer, draw):
    layer._draw = lambda *shape: draw
    return layer


def _keras_transform(layer, x, transformation):
    import torch
    return layer.transform_images(torch.tensor(x), transformation, training=True).numpy()


@pytest.mark.parametrize("fill_mode", ["reflect", "constant", "nearest", "wrap"])
@pytest.mark.parametrize("interpolation", ["bilinear", "nearest"])
def test_shear_matches_keras(keras, fill_mode, interpolation):
    import torch
    x = pixels((4, 9, 7, 3))
    kwargs = dict(x_factor=0.4, y_factor=(0.1, 0.3), fill_mode=fill_mode, interpolation=interpolation, fill_value=3.0)
    kl = keras.layers.RandomShear(**kwargs)
    t = kl.get_random_transformation(torch.tensor(x))
    dl = _fixed(layers.RandomShear(**kwargs), {"shear_factor": t["shear_factor"].numpy().astype(np.float64)})
    np.testing.assert_allclose(dl(x).numpy(), _keras_transform(kl, x, t), rtol=1e-5, atol=1e-3)


@pytest.mark.parametrize("interpolation", ["bilinear", "nearest"])
def test_perspective_matches_keras(keras, interpolation):
    import torch
    x = pixels((6, 9, 7, 3))
    kwargs = dict(factor=(0.3, 1.0), scale=0.8, interpolation=interpolation, fill_value=5.0)
    kl = keras.layers.RandomPerspective(**kwargs)
    t = kl.get_random_transformation(torch.tensor(x))
    # both solve for the homography in float32, by different routines: source points agree to ~1e-5 pixel
    out = _fixed(layers.RandomPerspective(**kwargs), _numpy(t))(x).numpy()
    np.testing.assert_allclose(out, _keras_transform(kl, x, t), rtol=1e-4, atol=2e-2)


@pytest.mark.parametrize("fill_mode", ["reflect", "constant", "nearest", "wrap", "mirror"])
def test_elastic_matches_keras(keras, fill_mode):
    import torch
    x = pixels((3, 20, 24, 2))
    kwargs = dict(factor=(0.5, 1.0), scale=(0.5, 1.0), fill_mode=fill_mode, fill_value=7.0, value_range=(5, 250))
    kl = keras.layers.RandomElasticTransform(**kwargs)
    t = kl.get_random_transformation(torch.tensor(x))
    torch.manual_seed(3)
    dx, dy = torch.normal(0.0, 1.0, size=(3, 20, 24)), torch.normal(0.0, 1.0, size=(3, 20, 24))
    torch.manual_seed(3)  # Keras's elastic_transform now draws the same dx and dy
    expected = _keras_transform(kl, x, t)
    draw = {"apply_transform": t["apply_transform"].numpy(), "distortion_factor": float(t["distortion_factor"]),
            "dx": dx.numpy(), "dy": dy.numpy()}
    np.testing.assert_allclose(_fixed(layers.RandomElasticTransform(**kwargs), draw)(x).numpy(), expected,
                               rtol=1e-5, atol=2e-3)


@pytest.mark.parametrize("fill_value", [None, 30.0, (10, 300, -5)], ids=str)
def test_erasing_matches_keras(keras, fill_value):
    import torch
    x = pixels((6, 9, 7, 3))
    kwargs = dict(factor=(0.5, 1.0), scale=(0.1, 0.6), fill_value=fill_value)
    draw = layers.RandomErasing(seed=2, **kwargs)._draw(6, 9, 7, 3)
    kl = keras.layers.RandomErasing(**kwargs)
    boxes = torch.tensor(draw["boxes"], dtype=torch.float32)
    masks = kl._generate_batch_mask(x.shape, tuple(boxes[:, i] for i in range(4)))
    if fill_value is None:  # Keras's _get_fill_value on dlgpu's noise
        fill = torch.clip(torch.tensor(draw["noise"]) * 255, 0, 255)
    else:
        fill = kl._get_fill_value(torch.tensor(x), x.shape, None)
    t = {"apply_erasing": torch.tensor(draw["apply_erasing"]), "batch_masks": masks, "fill_value": fill}
    out = _fixed(layers.RandomErasing(**kwargs), draw)(x).numpy()
    np.testing.assert_array_equal(out, _keras_transform(kl, x, t))
    assert 0 < draw["apply_erasing"].sum() < 6  # both branches seen


def test_channels_first_matches_keras(keras):
    import torch
    data_format = "channels_first"
    x = pixels((3, 2, 8, 6))
    kl = keras.layers.RandomShear(0.3, 0.3, data_format=data_format)
    t = kl.get_random_transformation(torch.tensor(x))
    dl = _fixed(layers.RandomShear(0.3, 0.3, data_format=data_format),
                {"shear_factor": t["shear_factor"].numpy().astype(np.float64)})
    np.testing.assert_allclose(dl(x).numpy(), _keras_transform(kl, x, t), rtol=1e-5, atol=1e-3)
    kl = keras.layers.RandomPerspective(factor=(1, 1), data_format=data_format)
    t = kl.get_random_transformation(torch.tensor(x))
    out = _fixed(layers.RandomPerspective(factor=(1, 1), data_format=data_format), _numpy(t))(x).numpy()
    np.testing.assert_allclose(out, _keras_transform(kl, x, t), rtol=1e-4, atol=2e-2)


@pytest.mark.parametrize("layer_idxes", [[i] for i in range(11)] + [[0, 6], [7, 8, 9], [10, 3, 10]], ids=str)
def test_rand_augment_ops_match_keras(keras, layer_idxes):
    """factor 0 leaves nothing to chance in any of the eleven operations (posterization keeps 1 bit,
    solarization inverts every pixel, sharpness 0 blurs), so each picked list must give Keras's values."""
    import torch
    x = pixels((4, 9, 7, 3))
    kl = keras.layers.RandAugment(factor=0.0, num_ops=len(layer_idxes))
    t = kl.get_random_transformation(torch.tensor(x))
    t["layer_idxes"] = torch.tensor(layer_idxes)
    dl = _fixed(layers.RandAugment(factor=0.0, num_ops=len(layer_idxes)), {"layer_idxes": np.array(layer_idxes)})
    np.testing.assert_allclose(dl(x).numpy(), _keras_transform(kl, x, t), rtol=1e-5, atol=1e-3)


def test_rand_augment_parts_have_keras_strengths(keras):
    """The eleven parts, in Keras's order, built with Keras's arguments from factor 0.4."""
    kl = keras.layers.RandAugment(factor=0.4, value_range=(0, 1), interpolation="nearest")
    dl = layers.RandAugment(factor=0.4, value_range=(0, 1), interpolation="nearest")
    kparts = [getattr(kl, name) for name in kl._AUGMENT_LAYERS]
    assert [type(p).__name__ for p in kparts] == [type(p).__name__ for p in dl._augmenters]
    for kpart, dpart in zip(kparts, dl._augmenters):
        konly, _, values = config_diff(kpart.get_config(), dpart.get_config())
        assert konly == [] and set(values) <= {"seed"}, (type(dpart).__name__, values)


def test_color_degeneration_of_grayscale_matches_keras(keras):
    """RandAugment may pick colour degeneration for grayscale images: Keras's call takes one channel (its own
    luma, so the image is only clipped), though its compute_output_shape refuses it; dlgpu takes it in both."""
    import torch
    x = pixels((2, 4, 5, 1), low=-1.0, high=1.0)
    kwargs = dict(factor=(0.6, 0.6), value_range=(-0.5, 0.5))
    expected = keras.layers.RandomColorDegeneration(**kwargs)(torch.tensor(x)).numpy()
    np.testing.assert_allclose(layers.RandomColorDegeneration(**kwargs)(x).numpy(), expected, rtol=1e-6)
    assert layers.RandomColorDegeneration(**kwargs).compute_output_shape((None, 4, 5, 1)) == (None, 4, 5, 1)
