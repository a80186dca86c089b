"""MixUp, CutMix and AugMix (compared with Keras's own transforms in tests/keras_reference/test_image_mixing_keras.py):
the layer contract; images and {"images", "labels"} dicts mixed as numpy references of the transformation
say; the draws' statistics; seeds and inference; gradients; a small model fit on MixUp/CutMix-mixed batches
of a mapped dataset, saved and loaded; AugMix in front of a CNN; bad inputs; CPU against GPU."""

import numpy as np
import pytest

import dlgpu
from dlgpu import layers, ops
from dlgpu.models import load_model
from dlgpu.utils.dataset_utils import ArrayDataset

from helpers import assert_image_layers_train_save_load, assert_random_image_layer_contract, pixels

from .layer_test_case import run_layer_test


def one_hot(n, classes=4, seed=0):
    return np.eye(classes, dtype=np.float32)[np.random.default_rng(seed).integers(0, classes, n)]


CONTRACTS = [(layers.MixUp, {"alpha": 0.4, "seed": 1}), (layers.CutMix, {"factor": 0.7, "seed": 1}),
             (layers.AugMix, {"seed": 1}), (layers.AugMix, {"all_ops": False, "chain_depth": 2, "num_chains": 2,
                                                            "interpolation": "nearest", "value_range": (0, 1)})]


@pytest.mark.parametrize("cls, kwargs", CONTRACTS, ids=lambda v: getattr(v, "__name__", ""))
def test_contract(cls, kwargs):
    run_layer_test(cls, kwargs, (2, 5, 4, 3), (2, 5, 4, 3))
    assert cls(**kwargs)(pixels((5, 4, 3))).shape == (5, 4, 3)  # one image
    assert cls(**kwargs)(pixels((1, 1, 1, 3))).shape == (1, 1, 1, 3)  # batch 1 of 1x1 pixels
    out = cls(**kwargs)(np.random.default_rng(0).integers(0, 255, (2, 5, 4, 3)).astype(np.uint8))
    assert out.dtype == "float32"


@pytest.mark.parametrize("make", [lambda **k: layers.MixUp(**k), lambda **k: layers.CutMix(**k),
                                  lambda **k: layers.AugMix(**k)])
def test_inference_identity_and_seeds(make):
    assert_random_image_layer_contract(make)


def test_mix_up_images_and_labels_follow_the_transformation():
    x, y = pixels((6, 5, 4, 3)), one_hot(6)
    t = layers.MixUp(alpha=0.5, seed=4).get_random_transformation(x)
    out = layers.MixUp(alpha=0.5, seed=4)({"images": x, "labels": y, "ids": np.arange(6)})
    assert set(out) == {"images", "labels", "ids"}
    np.testing.assert_array_equal(out["ids"], np.arange(6))  # other entries pass through
    w, p = t["mix_weight"], t["permutation_order"]
    assert t["mix_weight"].dtype == np.float32 and sorted(p) == list(range(6))
    np.testing.assert_allclose(out["images"].numpy(), w[:, None, None, None] * x + (1 - w[:, None, None, None]) * x[p],
                               rtol=1e-6, atol=1e-4)
    np.testing.assert_allclose(out["labels"].numpy(), w[:, None] * y + (1 - w[:, None]) * y[p], rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(out["labels"].numpy().sum(axis=1), 1.0, rtol=1e-6)
    # labels of higher rank (per-pixel classes) take the same weights
    seg = np.random.default_rng(1).uniform(size=(6, 5, 4, 2)).astype(np.float32)
    mixed = layers.MixUp(alpha=0.5, seed=4)({"images": x, "labels": seg})["labels"].numpy()
    np.testing.assert_allclose(mixed, w[:, None, None, None] * seg + (1 - w[:, None, None, None]) * seg[p], rtol=1e-6)


def test_cut_mix_pastes_one_rectangle_and_weights_labels_by_its_area():
    x, y = pixels((8, 9, 7, 2)), one_hot(8)
    layer = layers.CutMix(seed=5)
    t = layers.CutMix(seed=5).get_random_transformation(x)
    out = layer({"images": x, "labels": y})
    masks, p = np.asarray(t["batch_masks"]), t["permutation_order"]
    assert masks.shape == x.shape and masks.dtype == bool
    np.testing.assert_array_equal(out["images"].numpy(), np.where(masks, x[p], x))
    w = t["mix_weight"].reshape(-1)
    np.testing.assert_allclose(out["labels"].numpy(), w[:, None] * y + (1 - w[:, None]) * y[p], rtol=1e-6)
    for mask, weight in zip(masks[..., 0], w):
        rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
        # one axis-aligned block, the same in every channel; its pixel count within a pixel per side of the
        # continuous area the label weight stands for
        assert mask.sum() == len(rows) * len(cols)
        if len(rows):
            assert rows[-1] - rows[0] + 1 == len(rows) and cols[-1] - cols[0] + 1 == len(cols)
        area = (1 - weight) * 9 * 7
        assert mask.sum() <= area + 9 + 7 + 1 and mask.sum() >= area - 9 - 7 - 1
    assert np.array_equal(masks[..., 0], masks[..., 1])


def test_the_draws_have_the_documented_distributions():
    x = pixels((4000, 2, 2, 1))
    w = layers.MixUp(alpha=0.2, seed=0).get_random_transformation(x)["mix_weight"]
    # Beta(0.2, 0.2): mean 1/2, variance 1 / (4 (2 alpha + 1))
    assert abs(w.mean() - 0.5) < 0.03 and abs(w.var() - 1 / (4 * 1.4)) < 0.01
    # CutMix with factor (1, 1): Beta(1, 1) weights, uniform on [0, 1]; the label weight is the kept area
    t = layers.CutMix(factor=(1.0, 1.0), seed=0).get_random_transformation(pixels((4000, 20, 20, 1)))
    kept = t["mix_weight"].reshape(-1)
    assert abs(kept.mean() - 0.5) < 0.03 and abs(kept.var() - 1 / 12) < 0.01
    # and factor 0: Beta(1e-6, 1e-6), all or nothing
    kept = layers.CutMix(factor=0.0, seed=0).get_random_transformation(pixels((400, 4, 4, 1)))["mix_weight"]
    assert np.all((kept < 1e-3) | (kept > 1 - 1e-3))


def test_single_images_inference_and_dict_outputs():
    x, y = pixels((4, 5, 5, 3)), one_hot(4)
    for layer in (layers.MixUp(seed=0), layers.CutMix(seed=0)):
        # one image has nothing to mix with
        out = layer({"images": x[0], "labels": y[0]})
        np.testing.assert_array_equal(out["images"].numpy(), x[0])
        np.testing.assert_array_equal(out["labels"].numpy(), y[0])
        out = layer({"images": x, "labels": y}, training=False)
        np.testing.assert_array_equal(out["images"].numpy(), x)
        np.testing.assert_array_equal(out["labels"].numpy(), y)
        mixed = layer({"images": x, "labels": (y * 1).astype(np.int64)})  # integer one-hot labels mix as floats
        assert mixed["labels"].dtype == "float32" and mixed["images"].dtype == "float32"
        # symbolic dicts keep their structure
        sym = layer({"images": dlgpu.Input((5, 5, 3)), "labels": dlgpu.Input((4,))})
        assert sym["images"].shape == (None, 5, 5, 3) and sym["labels"].shape == (None, 4)


def test_gradients_follow_the_mix():
    x = pixels((5, 3, 4, 2))
    g = np.random.default_rng(1).normal(size=x.shape).astype(np.float32)
    for make in (lambda: layers.MixUp(alpha=1.0, seed=2), lambda: layers.CutMix(seed=2)):
        t = make().get_random_transformation(x)
        xt = ops.convert_to_tensor(x)
        with dlgpu.GradientTape() as tape:
            tape.watch(xt)
            loss = ops.sum(ops.multiply(make()(xt), g))
        grad = tape.gradient(loss, xt).numpy()
        p = t["permutation_order"]
        if "batch_masks" in t:
            masks = np.asarray(t["batch_masks"])
            own, other = np.where(masks, 0, g), np.where(masks, g, 0)
        else:
            w = t["mix_weight"][:, None, None, None]
            own, other = w * g, (1 - w) * g
        expected = own.copy()
        np.add.at(expected, p, other)  # output i reads image p[i]
        np.testing.assert_allclose(grad, expected, rtol=1e-5, atol=1e-6)


def test_aug_mix_mixes_its_chains_as_the_transformation_says():
    x = pixels((3, 6, 5, 3))
    layer = layers.AugMix(factor=(0.0, 0.0), num_chains=2, seed=0)
    t = layer.get_random_transformation(x)
    assert t["chain_mixing_weights"].shape == (2,) and abs(t["chain_mixing_weights"].sum() - 1) < 1e-6
    assert len(t["chain_transforms"]) == 2 and all(len(c) <= 3 for c in t["chain_transforms"])
    # with zero factors every operation is fixed: the chains by hand, each through its dlgpu layer
    t["chain_transforms"] = [["solarization", "auto_contrast"], ["random_sharpness"]]
    t["weight_sample"] = np.float32(0.25)
    chain0 = layers.AutoContrast()(layers.Solarization()(x)).numpy()  # factors 0: 255 - x
    chain1 = layers.RandomSharpness((0.0, 0.0))(x).numpy()
    aug = chain0 * t["chain_mixing_weights"][0] + chain1 * t["chain_mixing_weights"][1]
    np.testing.assert_allclose(layer.transform_images(x, t).numpy(), np.clip(0.25 * x + 0.75 * aug, 0, 255),
                               rtol=1e-5, atol=1e-3)
    # an empty chain (every step drew "nothing") contributes the images themselves
    t["chain_transforms"] = [[], []]
    np.testing.assert_allclose(layer.transform_images(x, t).numpy(), x, rtol=1e-6, atol=1e-4)


def test_aug_mix_takes_dicts_and_leaves_the_labels():
    x, y = pixels((4, 6, 6, 3)), one_hot(4)
    out = layers.AugMix(seed=2)({"images": x, "labels": y})
    np.testing.assert_array_equal(out["images"].numpy(), layers.AugMix(seed=2)(x).numpy())
    np.testing.assert_array_equal(out["labels"].numpy(), y)
    np.testing.assert_array_equal(layers.AugMix()({"images": x, "labels": y}, training=False)["images"].numpy(), x)
    sym = layers.AugMix()({"images": dlgpu.Input((6, 6, 3)), "labels": dlgpu.Input((4,))})
    assert sym["images"].shape == (None, 6, 6, 3) and sym["labels"].shape == (None, 4)


def test_aug_mix_draws_every_operation_and_keeps_the_value_range():
    layer = layers.AugMix(value_range=(-1, 1), chain_depth=4, seed=0)
    names = set()
    for _ in range(40):
        names.update(n for chain in layer.get_random_transformation(None)["chain_transforms"] for n in chain)
    assert names == set(layer._layer_names) and len(names) == 11
    assert len(layers.AugMix(all_ops=False)._layer_names) == 7
    out = layer(pixels((4, 6, 6, 3), low=-1.0, high=1.0)).numpy()
    assert out.min() >= -1 and out.max() <= 1 and not np.allclose(out, 0)


def _classifier():
    inputs = dlgpu.Input((8, 8, 3))
    h = layers.Rescaling(1 / 255)(inputs)
    h = layers.Conv2D(4, 3, activation="relu")(h)
    outputs = layers.Dense(3, activation="softmax")(layers.GlobalAveragePooling2D()(h))
    model = dlgpu.Model(inputs, outputs)
    model.compile(optimizer="adam", loss="categorical_crossentropy")
    return model


@pytest.mark.parametrize("mixer", [layers.MixUp(alpha=0.4, seed=0), layers.CutMix(seed=0)], ids=["MixUp", "CutMix"])
def test_fit_on_a_mapped_dataset_then_save_and_load(mixer, tmp_path):
    dlgpu.set_random_seed(0)
    rng = np.random.default_rng(0)
    classes = rng.integers(0, 3, 32)
    x = (classes[:, None, None, None] * 90 + rng.integers(0, 70, (32, 8, 8, 3))).astype(np.uint8)  # class: brightness
    y = np.eye(3, dtype=np.float32)[classes]

    def mix(images, labels):
        out = mixer({"images": images, "labels": labels})
        return out["images"], out["labels"]
    dataset = ArrayDataset((x, y), batch_size=8).map(mix)
    images, labels = dataset[0]
    assert images.shape == (8, 8, 8, 3) and labels.shape == (8, 3)
    assert not np.array_equal(labels.numpy(), y[:8])  # soft labels
    model = _classifier()
    before = model.get_weights()
    history = model.fit(dataset, epochs=2, verbose=0)
    assert np.isfinite(history.history["loss"]).all()
    assert any(not np.array_equal(a, b) for a, b in zip(before, model.get_weights()))
    model.save(tmp_path / "mixed.dlgpu")
    np.testing.assert_allclose(load_model(tmp_path / "mixed.dlgpu").predict(x, verbose=0),
                               model.predict(x, verbose=0), rtol=1e-6)


def test_image_mixing_layers_in_a_cnn_fit_save_load(tmp_path):
    loaded = assert_image_layers_train_save_load(
        [layers.AugMix(factor=0.5, num_chains=2), layers.MixUp(alpha=0.3), layers.CutMix(factor=0.5)], tmp_path)
    assert [type(l).__name__ for l in loaded.layers[1:4]] == ["AugMix", "MixUp", "CutMix"]
    assert list(loaded.layers[1].get_config()["factor"]) == [0, 0.5]
    assert loaded.layers[1].get_config()["num_chains"] == 2


def test_bad_inputs_and_arguments_are_refused():
    x = pixels((4, 3, 3, 3))
    for layer in (layers.MixUp(name="m"), layers.CutMix(name="m")):
        with pytest.raises(ValueError, match="'m'.*one-hot.*\\(4,\\)"):
            layer({"images": x, "labels": np.arange(4)})  # integer class ids
        with pytest.raises(ValueError, match="'m'.*labels of shape \\(3, 2\\)"):
            layer({"images": x, "labels": np.ones((3, 2), np.float32)})
        with pytest.raises(ValueError, match="'m'.*'images'"):
            layer({"labels": np.ones((4, 2), np.float32)})
        with pytest.raises(ValueError, match="'m'.*rank 3.*or 4"):
            layer({"images": x[..., 0, 0]})
        # MixUp takes boxes given a format; CutMix refuses them (below)
        error = ValueError if isinstance(layer, layers.MixUp) else NotImplementedError
        with pytest.raises(error, match="'m'.*(`bounding_box_format`|'bounding_boxes' are not supported)"):
            layer({"images": x, "bounding_boxes": {"boxes": np.zeros((4, 1, 4)), "labels": np.zeros((4, 1))}})
        with pytest.raises(NotImplementedError, match="channels_last"):
            type(layer)(data_format="channels_first")
    with pytest.raises(ValueError, match="`alpha` must be a positive number"):
        layers.MixUp(alpha=0.0)
    with pytest.raises(ValueError, match="`factor`.*\\[0, 1\\]"):
        layers.CutMix(factor=1.5)
    with pytest.raises(ValueError, match="`factor`.*\\[0, 1\\]"):
        layers.AugMix(factor=(2, 3))
    with pytest.raises(ValueError, match="`num_chains` must be a positive integer"):
        layers.AugMix(num_chains=0)
    with pytest.raises(ValueError, match="`chain_depth` must be a positive integer"):
        layers.AugMix(chain_depth=1.5)
    with pytest.raises(ValueError, match="`alpha`"):
        layers.AugMix(alpha=-1)
    with pytest.raises(ValueError, match="`all_ops`"):
        layers.AugMix(all_ops="yes")
    with pytest.raises(NotImplementedError, match="`interpolation`"):
        layers.AugMix(interpolation="bicubic")
    with pytest.raises(ValueError, match="`value_range`"):
        layers.AugMix(value_range=(0,))
    with pytest.raises(ValueError, match="'a'.*'images' of rank 3.*or 4"):
        layers.AugMix(name="a")({"labels": np.ones((4, 2))})
    with pytest.raises(NotImplementedError, match="'a'.*'segmentation_masks'"):
        layers.AugMix(name="a")({"images": x, "segmentation_masks": x})
    with pytest.raises(NotImplementedError, match="'c'.*'bounding_boxes'"):
        layers.CutMix(name="c", bounding_box_format="xyxy")(
            {"images": x, "bounding_boxes": {"boxes": np.zeros((4, 1, 4)), "labels": np.zeros((4, 1))}})


@pytest.mark.gpu
def test_mixing_layers_on_gpu_match_cpu():
    x, y = pixels((4, 7, 5, 3)), one_hot(4)
    makers = [lambda: layers.MixUp(alpha=0.5, seed=1), lambda: layers.CutMix(seed=1),
              lambda: layers.AugMix(seed=1, chain_depth=4)]
    for make in makers:
        results = []
        for device in ("cpu", "gpu"):
            with dlgpu.device(device):
                xt, yt = ops.convert_to_tensor(x), ops.convert_to_tensor(y)
                with dlgpu.GradientTape() as tape:
                    tape.watch(xt)
                    out = make()({"images": xt, "labels": yt} if not isinstance(make(), layers.AugMix) else xt)
                    images = out["images"] if isinstance(out, dict) else out
                    loss = ops.sum(ops.square(images))
                grad = tape.gradient(loss, xt)
                results.append([images.numpy(), loss.numpy()] + ([] if grad is None else [grad.numpy()])
                               + ([out["labels"].numpy()] if isinstance(out, dict) else []))
        assert len(results[0]) == len(results[1])
        for a, b in zip(*results):
            np.testing.assert_allclose(b, a, rtol=1e-4, atol=1e-2)
