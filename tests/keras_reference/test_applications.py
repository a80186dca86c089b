"""dlgpu.applications against real Keras (torch backend): each family is built in Keras with weights=None,
its weights are randomised, written to a legacy .h5 file the way Keras publishes them (layer_names,
weight_names, trainable then non-trainable weights per layer) and loaded through dlgpu's ``weights=`` path;
then the predictions, parameter counts, layer classes and names, and preprocess_input are compared.

Models are built at the smallest input Keras allows and with few classes; the largest variants are only
built (parameter count and layer names), not run.
"""

from __future__ import annotations

import gc
import importlib
import re

import numpy as np
import pytest


h5py = pytest.importorskip("h5py")

pytestmark = [pytest.mark.filterwarnings("ignore::DeprecationWarning"),
              pytest.mark.filterwarnings("ignore:This model usually expects:UserWarning")]


@pytest.fixture(autouse=True)
def fresh_keras_session(keras):
    """Each test's Keras models are dropped after it: Keras keeps every layer it made in a global graph
    state, and the tests slow down threefold by the last family without this."""
    yield
    keras.backend.clear_session()
    gc.collect()


def write_keras_h5(keras, model, path, seed=0):
    """Randomise ``model``'s weights (distinct values everywhere, variances positive) and write them in
    Keras's legacy layout; the order per layer is Keras's legacy one (trainable, then non-trainable).
    Batch normalization scales stay below 1: with the moving statistics far from the activations' own, deep
    networks otherwise grow activations into the thousands, where float32 rounding decides sigmoid gates.
    Layers Keras named from a counter get other names in the file, as in Keras's published files (Keras 2
    counted from 1): dlgpu must then pair layers by order, as Keras does."""
    rng = np.random.default_rng(seed)
    stored = {layer.name: layer.name + "_published" if _name(layer) == "<auto>" else layer.name
              for layer in model.layers}
    with h5py.File(path, "w") as f:
        f.attrs["layer_names"] = [stored[layer.name].encode() for layer in model.layers]
        f.attrs["backend"] = b"tensorflow"
        f.attrs["keras_version"] = b"2.2.4"
        for layer in model.layers:
            variables = layer.trainable_weights + layer.non_trainable_weights
            values = []
            for v in variables:
                a = keras.ops.convert_to_numpy(v)
                if np.issubdtype(a.dtype, np.floating):
                    low, high = (0.2, 0.5) if v.path.endswith("gamma") else (0.5, 1.5)
                    a = (rng.uniform(low, high, a.shape) * np.where(a != 0, a, 1.0)).astype(a.dtype)
                    v.assign(a)
                values.append(a)
            group = f.create_group(stored[layer.name])
            names = [f"{stored[layer.name]}/{v.path.split('/')[-1]}_{i}:0" for i, v in enumerate(variables)]
            group.attrs["weight_names"] = [n.encode() for n in names]
            for n, a in zip(names, values):
                group.create_dataset(n, data=a)
    return path


def _build(keras, builder, kwargs):
    """(Keras's model, dlgpu's function) for ``builder`` "module.Name"."""
    module, name = builder.split(".")
    kmodule = importlib.import_module(f"keras.src.applications.{module}")
    if name == "NASNetMobile":  # refused on Keras's torch backend: its builder with NASNetMobile's arguments
        kmodel = kmodule.NASNet(None, penultimate_filters=1056, num_blocks=4, stem_block_filters=32,
                                skip_reduction=False, default_size=224, weights=None, name="nasnet_mobile", **kwargs)
    else:
        kmodel = getattr(kmodule, name)(weights=None, **kwargs)
    dmodule = importlib.import_module(f"dlgpu.applications.{module}")
    return kmodel, getattr(dmodule, name)


def _name(layer):
    """The layer's name, or "<auto>" for one generated from its class (a session-wide counter numbers them)."""
    base = re.sub("(.)([A-Z][a-z]+)", r"\1_\2", type(layer).__name__)  # Keras's to_snake_case
    base = re.sub("([a-z])([A-Z])", r"\1_\2", base).lower()
    return "<auto>" if re.fullmatch(rf"{re.escape(base)}(_\d+)?", layer.name) else layer.name


def assert_same_architecture(kmodel, dmodel):
    """Same parameter count, output shape and name; the same layer classes, weight shapes and (unless
    Keras generates them) names, in Keras's order of a functional model's layers."""
    # dlgpu's Normalization keeps no integer `count` weight (EfficientNet's stem has one in Keras)
    counts = sum(int(np.prod(w.shape)) for w in kmodel.weights if "int" in w.dtype)
    assert dmodel.count_params() == kmodel.count_params() - counts
    assert dmodel.output_shape == tuple(kmodel.output_shape)
    assert dmodel.name == kmodel.name
    ordered = dmodel.layers  # a functional model lists its layers in Keras's order
    assert [type(layer).__name__ for layer in ordered] == [type(layer).__name__ for layer in kmodel.layers]
    assert [_name(layer) for layer in ordered] == [_name(layer) for layer in kmodel.layers]
    for kl, dl in zip(kmodel.layers, ordered):
        assert [tuple(w.shape) for w in dl.weights] == [tuple(w.shape) for w in kl.weights
                                                        if "int" not in w.dtype], kl.name


# (builder, kwargs, run a forward): the forward runs at the smallest size Keras allows; rows without one are
# the largest variants, only built (a few seconds each, in Keras and in dlgpu), and marked slow
CASES = [
    ("resnet_v2.ResNet50V2", {"input_shape": (32, 32, 3), "classes": 5}, True),
    ("resnet_v2.ResNet101V2", {"include_top": False, "pooling": "max"}, False),
    ("resnet_v2.ResNet152V2", {}, False),
    ("densenet.DenseNet121", {"input_shape": (32, 32, 3), "classes": 4}, True),
    ("densenet.DenseNet169", {"include_top": False, "input_shape": (32, 32, 3), "pooling": "avg"}, False),
    ("densenet.DenseNet201", {}, False),
    ("efficientnet.EfficientNetB0", {"input_shape": (32, 32, 3), "classes": 3}, True),
    ("efficientnet.EfficientNetB2", {"include_top": False, "input_shape": (32, 32, 3), "pooling": "avg"}, False),
    ("efficientnet.EfficientNetB7", {}, False),
    ("efficientnet_v2.EfficientNetV2B0", {"input_shape": (32, 32, 3), "classes": 3}, True),
    ("efficientnet_v2.EfficientNetV2S", {"include_top": False, "input_shape": (32, 32, 3), "pooling": "max"}, True),
    ("efficientnet_v2.EfficientNetV2L", {}, False),
    ("mobilenet_v3.MobileNetV3Small", {"input_shape": (40, 32, 3), "alpha": 0.75, "classes": 3}, True),
    ("mobilenet_v3.MobileNetV3Large", {"minimalistic": True, "alpha": 1.25, "input_shape": (32, 32, 3),
                                       "include_preprocessing": False, "include_top": False, "pooling": "avg"},
     True),
    ("mobilenet_v3.MobileNetV3Large", {}, False),
    # ConvNeXt's builder at toy widths: the same blocks, stem and downsampling Sequentials as the variants
    ("convnext.ConvNeXt", {"depths": [1, 1, 2, 1], "projection_dims": [8, 8, 16, 16], "name": "convnext_toy",
                           "input_shape": (32, 32, 3), "classes": 3}, True),
    ("convnext.ConvNeXt", {"depths": [1, 1, 1, 1], "projection_dims": [8, 16, 16, 24], "name": "convnext_toy",
                           "input_shape": (32, 32, 3), "include_top": False, "pooling": "avg"}, True),
    ("convnext.ConvNeXtTiny", {"input_shape": (32, 32, 3), "classes": 3}, False),
    ("convnext.ConvNeXtXLarge", {}, False),
    ("xception.Xception", {"input_shape": (71, 80, 3), "include_top": False, "pooling": "max"}, True),
    ("xception.Xception", {}, False),
    ("inception_v3.InceptionV3", {"input_shape": (75, 75, 3), "classes": 3}, True),
    ("inception_v3.InceptionV3", {"include_top": False, "pooling": "avg"}, False),
    ("inception_resnet_v2.InceptionResNetV2", {"input_shape": (75, 75, 3), "classes": 3}, True),
    ("inception_resnet_v2.InceptionResNetV2", {"include_top": False, "pooling": "max"}, False),
    # NASNet at a tenth of NASNetMobile's width and one cell per stack (Keras refuses NASNetMobile itself on
    # torch, not the NASNet builder); 33x33 makes every reduction meet an odd size
    ("nasnet.NASNet", {"input_shape": (33, 33, 3), "penultimate_filters": 96, "num_blocks": 1,
                       "stem_block_filters": 8, "classes": 3}, True),
    ("nasnet.NASNetMobile", {}, False),
    ("nasnet.NASNetLarge", {}, False),
]


def _case_id(case):
    return f"{case[0].split('.')[1]}-{'-'.join(f'{k}={v}' for k, v in case[1].items())}"


@pytest.mark.parametrize("builder, kwargs, forward", [
    c if c[2] else pytest.param(*c, marks=pytest.mark.slow) for c in CASES], ids=[_case_id(c) for c in CASES])
def test_architecture_weights_and_predictions_match_keras(keras, builder, kwargs, forward, tmp_path):
    kmodel, build = _build(keras, builder, kwargs)
    if not forward:
        assert_same_architecture(kmodel, build(weights=None, **kwargs))
        return
    path = write_keras_h5(keras, kmodel, tmp_path / "keras.h5")
    dmodel = build(weights=str(path), **kwargs)
    assert_same_architecture(kmodel, dmodel)
    x = np.random.default_rng(1).uniform(0, 255, (2,) + tuple(kmodel.input_shape[1:])).astype("float32")
    module = importlib.import_module(f"dlgpu.applications.{builder.split('.')[0]}")
    x = module.preprocess_input(x)
    expected = keras.ops.convert_to_numpy(kmodel(x, training=False))
    got = dmodel.predict(x, verbose=0)
    scale = float(np.abs(expected).max())
    np.testing.assert_allclose(got, expected, rtol=1e-3, atol=1e-4 * max(scale, 1.0))


PREPROCESS = ["resnet_v2", "densenet", "efficientnet", "efficientnet_v2", "mobilenet_v3", "convnext", "xception",
              "inception_v3", "inception_resnet_v2", "nasnet"]


@pytest.mark.parametrize("module", PREPROCESS)
@pytest.mark.parametrize("data_format", [None, "channels_first"])
def test_preprocess_input_matches_keras(keras, module, data_format):
    x = np.random.default_rng(2).uniform(0, 255, (2, 5, 4, 3)).astype("float32")
    if data_format == "channels_first":
        x = np.moveaxis(x, -1, 1).copy()
    kmod = importlib.import_module(f"keras.applications.{module}")
    dmod = importlib.import_module(f"dlgpu.applications.{module}")
    expected = kmod.preprocess_input(x.copy(), data_format=data_format)
    np.testing.assert_allclose(dmod.preprocess_input(x.copy(), data_format=data_format), expected, rtol=1e-5,
                               atol=1e-5)
    ints = np.full((1, 2, 2, 3), 200, np.uint8)
    np.testing.assert_allclose(dmod.preprocess_input(ints), kmod.preprocess_input(ints.copy()), rtol=1e-5,
                               atol=1e-5)
