"""MixUp, CutMix, AugMix and CLAHE against Keras itself (torch backend).  The random layers by Keras's
deterministic path: dlgpu draws a transformation, Keras's ``transform_images``/``transform_labels`` replay it.
CLAHE where Keras's torch backend departs from its own algorithm (the table in layer_cases.py covers the rest)."""

import math

import numpy as np
import pytest

import dlgpu
from dlgpu import layers
from dlgpu.layers.image_aug_mix import AUGMENT_LAYERS_ALL

from .kref import config_diff, rand

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")  # torch's warnings inside Keras's colour ops


def images(shape, seed=0):
    return rand(shape, seed=seed, low=0.0, high=255.0)


def probabilities(batch, classes, seed=1):
    p = np.random.default_rng(seed).uniform(size=(batch, classes)).astype(np.float32)
    return p / p.sum(axis=1, keepdims=True)


def torch_dict(transformation):
    import torch
    return {k: torch.tensor(np.asarray(v)) for k, v in transformation.items()}


@pytest.mark.parametrize("alpha", [0.2, 1.5])
def test_mix_up_replays_in_keras(keras, alpha):
    import torch
    x, y = images((6, 5, 4, 3)), probabilities(6, 4)
    layer = layers.MixUp(alpha=alpha, seed=3)
    t = layer.get_random_transformation(x)
    k = keras.layers.MixUp(alpha=alpha)
    np.testing.assert_allclose(layer.transform_images(x, t).numpy(),
                               k.transform_images(torch.tensor(x), torch_dict(t)).numpy(), rtol=1e-6, atol=1e-5)
    np.testing.assert_allclose(layer.transform_labels(y, t).numpy(),
                               k.transform_labels(torch.tensor(y), torch_dict(t)).numpy(), rtol=1e-6, atol=1e-7)
    # the call draws exactly that transformation from the same seed
    out = layers.MixUp(alpha=alpha, seed=3)({"images": x, "labels": y})
    np.testing.assert_array_equal(out["images"].numpy(), layer.transform_images(x, t).numpy())


def test_cut_mix_replays_in_keras(keras):
    import torch
    x, y = images((5, 7, 6, 2)), probabilities(5, 3)
    layer = layers.CutMix(factor=(0.3, 0.9), seed=2)
    t = layer.get_random_transformation(x)
    k = keras.layers.CutMix(factor=(0.3, 0.9))
    np.testing.assert_array_equal(layer.transform_images(x, t).numpy(),
                                  k.transform_images(torch.tensor(x), torch_dict(t)).numpy())
    np.testing.assert_allclose(layer.transform_labels(y, t).numpy(),
                               k.transform_labels(torch.tensor(y), torch_dict(t)).numpy(), rtol=1e-6, atol=1e-7)
    # the masks and label weights from rectangle corners, as Keras's _generate_batch_mask makes them
    rng = np.random.default_rng(0)
    x0, y0 = rng.uniform(-1, 6, 5).astype(np.float32), rng.uniform(-1, 7, 5).astype(np.float32)
    corners = (x0, x0 + rng.uniform(0, 5, 5).astype(np.float32), y0, y0 + rng.uniform(0, 6, 5).astype(np.float32))
    masks, weights = layers.CutMix._batch_masks(x.shape, corners)
    kmasks, kweights = k._generate_batch_mask(x.shape, tuple(torch.tensor(c) for c in corners))
    np.testing.assert_array_equal(np.asarray(masks), kmasks.numpy())
    np.testing.assert_allclose(weights, kweights.numpy(), rtol=1e-6)


def _keras_chains(kl, x_torch, chains):
    return [[{"layer_name": n, "transformation": getattr(kl, n).get_random_transformation(x_torch)} for n in c]
            for c in chains]


@pytest.mark.parametrize("factor, names, value_range", [
    # zero factors fix every operation (shear, translation, rotation by 0; solarization inverts; contrast 1...)
    ((0.0, 0.0), AUGMENT_LAYERS_ALL, (0, 255)),
    # equal factors fix these (the others draw a sign or a second bound; posterization keeps 1 bit up to 0.25)
    ((0.3, 0.3), ("random_translation", "random_rotation", "random_posterization", "auto_contrast", "equalization",
                  "random_brightness", "random_color_degeneration", "random_sharpness"), (0, 255)),
    ((0.6, 0.6), ("random_translation", "auto_contrast", "random_brightness", "random_sharpness"), (0, 1)),
])
def test_aug_mix_replays_in_keras(keras, factor, names, value_range):
    import torch
    x = rand((3, 7, 6, 3), low=value_range[0], high=value_range[1])
    layer = layers.AugMix(factor=factor, value_range=value_range, num_chains=3, seed=0)
    kl = keras.layers.AugMix(factor=factor, value_range=value_range, num_chains=3)
    t = layer.get_random_transformation(x)
    # the sampling's float rounding (dlgpu's and torch's differ in the last bits) could move a value across a bin
    # of the discrete operations after it: the other chains sample last
    rng = np.random.default_rng(1)
    colour = [n for n in names if n not in ("random_shear", "random_translation", "random_rotation")]
    geometric = [n for n in names if n not in colour]
    t["chain_transforms"] = [list(names)] + [list(rng.choice(colour, 2)) + list(rng.choice(geometric, 1))
                                             for _ in range(2)]
    xt = torch.tensor(x)
    kt = {"chain_mixing_weights": torch.tensor(t["chain_mixing_weights"]),
          "weight_sample": torch.tensor(t["weight_sample"]),
          "chain_transforms": _keras_chains(kl, xt, t["chain_transforms"])}
    expected = kl.transform_images(xt.clone(), kt).numpy()  # clone: some of Keras's operations write in place
    scale = value_range[1] - value_range[0]
    np.testing.assert_allclose(layer.transform_images(x, t).numpy(), expected, rtol=1e-5, atol=2e-5 * scale)
    # and each operation alone
    for name in names:
        op = getattr(kl, name)
        kout = op.transform_images(xt.clone(), op.get_random_transformation(xt)).numpy()
        np.testing.assert_allclose(layer._apply(name, dlgpu.ops.convert_to_tensor(x)).numpy(), kout, rtol=1e-5,
                                   atol=2e-5 * scale, err_msg=name)


@pytest.mark.parametrize("shape, kwargs", [
    ((2, 13, 10, 2), {"tile_grid_size": (3, 4), "clip_limit": 20.0}),  # limit 3.75, padding 2 and 2
    ((3, 11, 3), {"tile_grid_size": (3, 3)}),  # one image; limit 0.25, below one count
    ((2, 12, 12, 3), {"value_range": (0, 1), "tile_grid_size": (4, 3), "clip_limit": 30.0}),
    ((1, 7, 9, 1), {"value_range": (-1, 1), "tile_grid_size": (3, 2), "clip_limit": 0.0}),  # padding 2 and 1
])
def test_clahe_against_kerass_torch_backend(keras, shape, kwargs):
    """Keras on torch truncates the clip limit and pads by edge replication; dlgpu follows the algorithm as
    Keras's other backends compute it.  Given Keras-torch's limit (below one count: every count clipped to
    zero) and an image padded by replication beforehand, dlgpu gives Keras-torch's numbers."""
    import torch
    low, high = kwargs.get("value_range", (0, 255))
    x = rand(shape, seed=sum(shape), low=low, high=high)
    expected = keras.layers.ContrastLimitedAdaptiveHistogramEqualization(**kwargs)(torch.tensor(x)).numpy()
    grid = kwargs.get("tile_grid_size", (8, 8))
    height, width = shape[-3:-1]
    tile_h, tile_w = -(-height // grid[0]), -(-width // grid[1])
    area = tile_h * tile_w
    truncated = math.floor(kwargs.get("clip_limit", 4.0) * area / 256)
    # a limit of 0 counts would mean "no clipping" to the layer; 1e-9 clips every count to (almost) nothing
    clip_limit = kwargs.get("clip_limit", 4.0) if kwargs.get("clip_limit") == 0 else \
        max(truncated, 1e-9) * 256 / area
    padding = [(0, 0)] * (len(shape) - 3) + [(0, tile_h * grid[0] - height), (0, tile_w * grid[1] - width), (0, 0)]
    padded = np.pad(x, padding, mode="edge")
    layer = layers.ContrastLimitedAdaptiveHistogramEqualization(**dict(kwargs, clip_limit=clip_limit))
    out = layer(padded).numpy()[..., :height, :width, :]
    scale = (high - low) / 255
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=5e-4 * scale)
    # and the layer as it is differs from Keras-torch here, by its padding or its limit
    assert not np.allclose(layers.ContrastLimitedAdaptiveHistogramEqualization(**kwargs)(x).numpy(), expected,
                           atol=1e-2 * scale)


@pytest.mark.parametrize("name, kwargs", [
    ("MixUp", {}), ("MixUp", {"alpha": 0.7, "seed": 4}), ("CutMix", {}), ("CutMix", {"factor": (0.2, 0.5), "seed": 1}),
    ("AugMix", {}), ("AugMix", {"value_range": (0, 1), "num_chains": 2, "chain_depth": 4, "factor": 0.6, "alpha": 0.5,
                                "all_ops": False, "interpolation": "nearest", "seed": 9}),
])
def test_configs_match_kerass(keras, name, kwargs):
    k, d = getattr(keras.layers, name)(**kwargs), getattr(layers, name)(**kwargs)
    assert config_diff(k.get_config(), d.get_config()) == ([], [], {})
    type(d).from_config(k.get_config())
    type(k).from_config(d.get_config())
