"""The application families added after VGG/ResNet/MobileNet, without Keras: their own layers (ConvNeXt's
LayerScale and StochasticDepth, InceptionResNetV2's CustomScaleLayer), the ImageNet file each asks for,
EfficientNet's ImageNet-only stem, loading by layer order, saving, and GPU against CPU.  Their
architectures, weights and predictions are compared with real Keras in tests/keras_reference/test_applications.py.
"""

from __future__ import annotations

import hashlib
import urllib.error

import numpy as np
import pytest

import dlgpu
from dlgpu import applications, layers, ops
from dlgpu.applications import (_weights, convnext, densenet, efficientnet, efficientnet_v2, imagenet_utils,
                                inception_resnet_v2, inception_v3, mobilenet_v3, nasnet, resnet, xception)
from dlgpu.datasets import _files
from dlgpu.models import load_model

from helpers import assert_model_on_gpu_matches_cpu
from layers.layer_test_case import run_layer_test

try:
    import h5py
except ImportError:
    h5py = None
needs_h5py = pytest.mark.skipif(h5py is None, reason="h5py is not installed: pip install 'dlgpu[applications]'")

SMALL = (32, 32, 3)


def _no_network(url, timeout=None):
    raise urllib.error.URLError(f"network disabled in tests ({url})")


@pytest.fixture(autouse=True)
def isolated(monkeypatch, tmp_path):
    monkeypatch.setenv("DLGPU_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(_files, "urlopen", _no_network)


def write_legacy_h5(model, path, rename=None):
    """Keras's legacy layout from a dlgpu model; ``rename(name)`` gives the name a layer has in the file."""
    rename = rename or (lambda n: n)
    with h5py.File(path, "w") as f:
        f.attrs["layer_names"] = [rename(layer.name).encode() for layer in model.layers]
        for layer in model.layers:
            group = f.create_group(rename(layer.name))
            names = [f"{rename(layer.name)}/{i}:0" for i in range(len(layer.weights))]
            group.attrs["weight_names"] = [n.encode() for n in names]
            for n, v in zip(names, layer.weights):
                group.create_dataset(n, data=v.numpy())
    return path


def _perturb(model, seed=0):
    rng = np.random.default_rng(seed)
    model.set_weights([rng.uniform(0.5, 1.5, w.shape).astype("float32") * (w if w.any() else 1.0)
                       for w in model.get_weights()])


# -- the families' own layers ----------------------------------------------------------------------------

def test_layer_scale_contract_values_and_gradient():
    layer = run_layer_test(convnext.LayerScale, {"init_values": 0.5, "projection_dim": 4}, (2, 3, 4), (2, 3, 4),
                           expected_num_trainable_weights=1, expected_weight_shapes=[(4,)])
    x = np.random.default_rng(0).normal(size=(2, 3, 4)).astype("float32")
    gamma = np.array([0.5, -1.0, 2.0, 0.0], "float32")
    layer.set_weights([gamma])
    xt = ops.convert_to_tensor(x)
    with dlgpu.GradientTape() as tape:
        tape.watch(xt)
        loss = ops.sum(ops.square(layer(xt)))
    dx, dgamma = tape.gradient(loss, [xt, layer.gamma])
    np.testing.assert_allclose(layer(x).numpy(), x * gamma, rtol=1e-6)
    np.testing.assert_allclose(dx.numpy(), 2 * x * gamma**2, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(dgamma.numpy(), (2 * x**2 * gamma).sum(axis=(0, 1)), rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match=r"LayerScale.*projection_dim=4.*\(2, 3, 5\)"):
        convnext.LayerScale(0.1, 4)(np.zeros((2, 3, 5), "float32"))


def test_stochastic_depth_drops_whole_samples_while_training_only():
    run_layer_test(convnext.StochasticDepth, {"drop_path_rate": 0.3}, (2, 3, 4, 5), (2, 3, 4, 5),
                   deterministic=False)
    layer = convnext.StochasticDepth(0.5, seed=3)
    assert layer.get_config()["drop_path_rate"] == 0.5 and "noise_shape" not in layer.get_config()
    x = np.ones((400, 2, 3, 4), "float32")
    np.testing.assert_array_equal(layer(x).numpy(), x)
    out = layer(x, training=True).numpy()
    per_sample = out.reshape(400, -1)
    assert np.all(per_sample == per_sample[:, :1])  # one draw per sample
    assert set(np.unique(per_sample)) == {0.0, 2.0}  # kept samples scaled by 1 / (1 - rate)
    assert 0.35 < (per_sample[:, 0] == 0).mean() < 0.65
    assert convnext.StochasticDepth(0.0)(x, training=True) is not None
    np.testing.assert_array_equal(convnext.StochasticDepth(0.0)(x, training=True).numpy(), x)


def test_custom_scale_layer():
    layer = run_layer_test(inception_resnet_v2.CustomScaleLayer, {"scale": 0.17}, [(2, 3, 4), (2, 3, 4)], (2, 3, 4))
    a, b = np.ones((1, 2), "float32"), np.full((1, 2), 2.0, "float32")
    np.testing.assert_allclose(layer([a, b]).numpy(), 1 + 2 * 0.17, rtol=1e-6)
    with pytest.raises(ValueError, match="CustomScaleLayer.*two tensors"):
        layer(a)


def test_convnext_with_stochastic_depth_trains_saves_and_loads(tmp_path):
    model = convnext.ConvNeXt([1, 1, 1, 1], [8, 8, 16, 16], drop_path_rate=0.5, include_top=True, weights=None,
                              input_shape=SMALL, classes=3, name="convnext_toy")
    assert isinstance(model.get_layer("convnext_toy_stage_3_block_0_stochastic_depth"), convnext.StochasticDepth)
    assert model.get_layer("convnext_toy_stage_0_block_0_identity").activation is dlgpu.activations.linear
    x = np.random.default_rng(0).uniform(0, 255, (6,) + SMALL).astype("float32")
    y = np.arange(6) % 3
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    history = model.fit(x, y, batch_size=3, epochs=2, verbose=0)
    assert np.isfinite(history.history["loss"]).all()
    # the residual sum is an op on symbolic tensors, as in Keras: dlgpu's own format keeps it
    model.save(tmp_path / "convnext.dlgpu")
    restored = load_model(tmp_path / "convnext.dlgpu")
    np.testing.assert_allclose(restored.predict(x, verbose=0), model.predict(x, verbose=0), rtol=1e-4, atol=1e-5)


def test_inception_resnet_block_saves_and_loads(tmp_path):
    inp = dlgpu.Input((8, 8, 32))
    out = inception_resnet_v2.inception_resnet_block(inp, scale=0.1, block_type="block17", block_idx=1)
    model = dlgpu.Model(inp, out)
    x = np.random.default_rng(1).normal(size=(2, 8, 8, 32)).astype("float32")
    model.save(tmp_path / "block.keras")
    np.testing.assert_allclose(load_model(tmp_path / "block.keras").predict(x, verbose=0),
                               model.predict(x, verbose=0), rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="block35.*block17.*block8"):
        inception_resnet_v2.inception_resnet_block(inp, 0.1, "block99", 1)


# -- the ImageNet files each family asks for -----------------------------------------------------------

@pytest.mark.parametrize("build, kwargs, file_name, url_base", [
    (applications.ResNet50V2, {}, "resnet50v2_weights_tf_dim_ordering_tf_kernels_notop.h5", resnet.BASE_WEIGHTS_PATH),
    (applications.DenseNet121, {}, "densenet121_weights_tf_dim_ordering_tf_kernels_notop.h5",
     densenet.BASE_WEIGHTS_PATH),
    (applications.EfficientNetB0, {}, "efficientnetb0_notop.h5", efficientnet.BASE_WEIGHTS_PATH),
    (applications.EfficientNetV2B0, {}, "efficientnetv2-b0_notop.h5", efficientnet_v2.BASE_WEIGHTS_PATH),
    (applications.MobileNetV3Small, {"alpha": 0.75}, "weights_mobilenet_v3_small_224_0.75_float_no_top_v2.h5",
     mobilenet_v3.BASE_WEIGHT_PATH),
    (applications.ConvNeXtTiny, {}, "convnext_tiny_notop.h5", convnext.BASE_WEIGHTS_PATH),
    (applications.Xception, {"input_shape": (71, 71, 3)}, "xception_weights_tf_dim_ordering_tf_kernels_notop.h5",
     "https://storage.googleapis.com/tensorflow/keras-applications/xception/"),
    (applications.InceptionV3, {"input_shape": (75, 75, 3)},
     "inception_v3_weights_tf_dim_ordering_tf_kernels_notop.h5",
     "https://storage.googleapis.com/tensorflow/keras-applications/inception_v3/"),
    (applications.NASNetMobile, {}, "nasnet_mobile_no_top.h5", nasnet.BASE_WEIGHTS_PATH),
])
def test_imagenet_file_names_and_urls(build, kwargs, file_name, url_base, tmp_path, recwarn):
    kwargs.setdefault("input_shape", SMALL)
    with pytest.raises(FileNotFoundError) as info:
        build(include_top=False, weights="imagenet", **kwargs)
    message = str(info.value)
    remote = {"nasnet_mobile_no_top.h5": "NASNet-mobile-no-top.h5"}.get(file_name, file_name)
    assert url_base + remote in message
    assert str(tmp_path / "cache" / "models" / file_name) in message


@pytest.mark.parametrize("build, kwargs, match", [
    (applications.ConvNeXtTiny, {"name": "my_model"}, "must contain the weights variant"),
    (lambda **kw: convnext.ConvNeXt([1, 1, 1, 1], [8, 8, 8, 8], weights_name="convnext_tiny", **kw),
     {"weights": "imagenet", "name": "convnext_tiny"},
     "does not match convnext_tiny variant"),
    (applications.MobileNetV3Large, {"alpha": 0.5}, "alpha can be one of"),
    (applications.MobileNetV3Small, {"input_shape": (31, 64, 3), "weights": None}, "at least 32x32"),
    (applications.Xception, {"input_shape": (70, 71, 3), "include_top": False, "weights": None}, "at least 71x71"),
    (applications.NASNetLarge, {"input_shape": (None, None, 3), "include_top": False}, "must be static"),
    (lambda **kw: nasnet.NASNet(penultimate_filters=100, **kw), {"weights": None}, "multiple of 24"),
    (lambda **kw: efficientnet_v2.EfficientNetV2(1.0, 1.0, 224, **kw), {"weights": None, "name": "mine"},
     "no default blocks_args"),
    (applications.DenseNet121, {"weights": "imagenet", "classes": 10}, "classes` should be 1000"),
])
def test_bad_arguments_are_refused(build, kwargs, match):
    with pytest.raises(ValueError, match=match):
        build(**kwargs)


@needs_h5py
def test_efficientnet_imagenet_stem_and_the_published_count_weight(monkeypatch, tmp_path):
    """With ImageNet weights EfficientNet divides once more by sqrt(std) (Keras's fix for the original
    model); Keras's files hold Normalization's integer count too, which dlgpu skips."""
    source = applications.EfficientNetB0(include_top=False, weights=None, input_shape=SMALL)
    _perturb(source)
    path = tmp_path / "cache" / "models" / "efficientnetb0_notop.h5"
    path.parent.mkdir(parents=True)
    write_legacy_h5(source, path)
    with h5py.File(path, "a") as f:  # Keras's Normalization weights: mean, variance, count
        norm = next(layer.name for layer in source.layers if isinstance(layer, layers.Normalization))
        group = f[norm]
        group.create_dataset(f"{norm}/count:0", data=np.int64(1000))
        names = [n.decode() if isinstance(n, bytes) else str(n) for n in group.attrs["weight_names"]]
        names.append(f"{norm}/count:0")
        group.attrs["weight_names"] = [n.encode() for n in names]
    monkeypatch.setitem(efficientnet.WEIGHTS_HASHES, "b0", ("unused", hashlib.md5(path.read_bytes()).hexdigest()))
    model = applications.EfficientNetB0(include_top=False, input_shape=SMALL)
    rescalings = [layer for layer in model.layers if isinstance(layer, layers.Rescaling)]
    assert len(rescalings) == 2 and len(model.layers) == len(source.layers) + 1
    np.testing.assert_allclose(rescalings[1].scale, [1 / np.sqrt(s) for s in (0.229, 0.224, 0.225)], rtol=1e-6)
    for a, b in zip(source.get_weights(), model.get_weights()):
        np.testing.assert_array_equal(a, b)


@needs_h5py
def test_legacy_files_load_by_order_when_names_differ(tmp_path):
    source = applications.Xception(include_top=False, weights=None, input_shape=(71, 71, 3), pooling="avg")
    _perturb(source, seed=2)
    path = write_legacy_h5(source, tmp_path / "x.h5", rename=lambda n: f"keras2_{n}")
    model = applications.Xception(include_top=False, weights=str(path), input_shape=(71, 71, 3), pooling="avg")
    for a, b in zip(source.get_weights(), model.get_weights()):
        np.testing.assert_array_equal(a, b)
    # another architecture: neither every name nor the number of weighted layers match
    with pytest.raises(ValueError, match=r"no weights for layer .*\(\d+ with weights, the model has \d+\)"):
        applications.InceptionV3(include_top=False, weights=str(path), input_shape=(75, 75, 3))
    # the same count but another width: the shape error names the file's layer
    narrow = dlgpu.Sequential([dlgpu.Input((4,)), layers.Dense(3, name="a"), layers.Dense(2, name="b")])
    wide = dlgpu.Sequential([dlgpu.Input((4,)), layers.Dense(5, name="c"), layers.Dense(2, name="d")])
    small = write_legacy_h5(narrow, tmp_path / "narrow.h5")
    with pytest.raises(ValueError, match=r"layer 'c' \(file layer 'a'\).*\(4, 5\).*\(4, 3\)"):
        _weights.load_weights(wide, small)


def test_keras_layer_order_puts_a_shortcut_after_its_branch():
    model = applications.ResNet50V2(include_top=False, weights=None, input_shape=SMALL)
    names = [layer.name for layer in model.layers]  # Keras's order
    assert names.index("conv2_block1_0_conv") > names.index("conv2_block1_2_relu")
    assert names[1:6] == ["conv1_pad", "conv1_conv", "pool1_pad", "pool1_pool", "conv2_block1_preact_bn"]
    assert names[0] == model.layers[0].name and names[-1] == "post_relu"


def test_preprocess_inputs_of_the_families():
    x = np.random.default_rng(4).uniform(0, 255, (2, 4, 4, 3)).astype("float32")
    for module in (efficientnet, efficientnet_v2, mobilenet_v3, convnext):
        assert module.preprocess_input(x) is x  # the models scale their inputs themselves
    for module in (xception, inception_v3, inception_resnet_v2, nasnet, applications.resnet_v2):
        np.testing.assert_allclose(module.preprocess_input(x.copy()), x / 127.5 - 1, rtol=1e-6, atol=1e-6)
    torch_mode = (x / 255 - np.array([0.485, 0.456, 0.406])) / np.array([0.229, 0.224, 0.225])
    np.testing.assert_allclose(densenet.preprocess_input(x.copy()), torch_mode, rtol=1e-5, atol=1e-5)
    assert densenet.decode_predictions.__doc__ == imagenet_utils.decode_predictions.__doc__


# -- GPU against CPU ---------------------------------------------------------------------------------------

GPU_CASES = [
    lambda: applications.ResNet50V2(include_top=False, weights=None, input_shape=SMALL, pooling="avg"),
    lambda: applications.DenseNet121(include_top=False, weights=None, input_shape=SMALL, pooling="avg"),
    lambda: applications.EfficientNetB0(include_top=False, weights=None, input_shape=SMALL, pooling="avg"),
    lambda: applications.EfficientNetV2B0(include_top=False, weights=None, input_shape=SMALL, pooling="avg"),
    lambda: applications.MobileNetV3Small(include_top=False, weights=None, input_shape=SMALL, pooling="avg"),
    lambda: applications.ConvNeXtTiny(include_top=False, weights=None, input_shape=SMALL, pooling="avg"),
    lambda: applications.Xception(include_top=False, weights=None, input_shape=(71, 71, 3), pooling="avg"),
    lambda: applications.InceptionV3(include_top=False, weights=None, input_shape=(75, 75, 3), pooling="avg"),
    lambda: applications.InceptionResNetV2(include_top=False, weights=None, input_shape=(75, 75, 3), pooling="avg"),
    lambda: nasnet.NASNet(SMALL, penultimate_filters=96, num_blocks=1, stem_block_filters=8, include_top=False,
                          weights=None, pooling="avg"),
]


@pytest.mark.gpu
@pytest.mark.parametrize("make", GPU_CASES, ids=["resnet_v2", "densenet", "efficientnet", "efficientnet_v2",
                                                 "mobilenet_v3", "convnext", "xception", "inception_v3",
                                                 "inception_resnet_v2", "nasnet"])
def test_families_on_gpu_match_cpu(make):
    model = make()
    x = np.random.default_rng(7).uniform(-1, 1, (2,) + tuple(model.input_shape[1:])).astype("float32")  # preprocessed
    dlgpu.utils.set_random_seed(1)
    # deep networks: float32 rounding flips the odd ReLU near zero (see test_applications_on_gpu_match_cpu)
    assert_model_on_gpu_matches_cpu(make, x, rtol=2e-3, atol=1e-4, atol_of_largest=2e-2)
