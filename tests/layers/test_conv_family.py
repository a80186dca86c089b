"""Dilated and grouped Conv1D/Conv2D, Conv1D/2DTranspose, DepthwiseConv1D/2D and SeparableConv1D/2D: the
layer contract, values and gradients (input, kernel, bias) against PyTorch, Keras's output shapes,
bad arguments, and two small models (an autoencoder and a MobileNet-like block) that train with fit and
come back from a saved file."""

import numpy as np
import pytest

import dlgpu
from dlgpu import layers
from dlgpu.models import load_model
from helpers import assert_model_on_gpu_matches_cpu

from .layer_test_case import run_layer_test
from .torch_ref import assert_close, grads_of

torch = pytest.importorskip("torch")
F = torch.nn.functional

from torch_conv_ref import torch_conv, torch_conv_transpose  # noqa: E402 - after the torch skip


# -- the layer contract ---------------------------------------------------------------------------
CONTRACTS = [
    (layers.Conv2D, {"filters": 6, "kernel_size": 3, "groups": 2, "activation": "relu"}, (2, 7, 6, 4), (2, 5, 4, 6),
     [(3, 3, 2, 6), (6,)]),
    (layers.Conv2D, {"filters": 4, "kernel_size": (3, 2), "dilation_rate": (2, 1), "padding": "same"},
     (2, 7, 6, 3), (2, 7, 6, 4), [(3, 2, 3, 4), (4,)]),
    (layers.Conv1D, {"filters": 4, "kernel_size": 3, "dilation_rate": 2, "padding": "causal", "groups": 2},
     (2, 9, 4), (2, 9, 4), [(3, 2, 4), (4,)]),
    (layers.Conv1D, {"filters": 3, "kernel_size": 2, "dilation_rate": 3, "use_bias": False}, (1, 9, 2), (1, 6, 3),
     [(2, 2, 3)]),
    # Keras's own ConvTransposeBasicTest cases, then ours
    (layers.Conv1DTranspose, {"filters": 5, "kernel_size": 2, "strides": 2}, (2, 8, 4), (2, 16, 5), [(2, 5, 4), (5,)]),
    (layers.Conv1DTranspose, {"filters": 6, "kernel_size": 2, "strides": 3, "padding": "same", "output_padding": 2},
     (2, 8, 4), (2, 23, 6), [(2, 6, 4), (6,)]),
    (layers.Conv2DTranspose, {"filters": 5, "kernel_size": 2, "strides": 2}, (2, 8, 8, 4), (2, 16, 16, 5),
     [(2, 2, 5, 4), (5,)]),
    (layers.Conv2DTranspose, {"filters": 6, "kernel_size": 2, "strides": 3, "padding": "same", "output_padding": 2},
     (2, 8, 8, 4), (2, 23, 23, 6), [(2, 2, 6, 4), (6,)]),
    (layers.Conv2DTranspose, {"filters": 3, "kernel_size": 3, "dilation_rate": 2, "activation": "tanh"},
     (1, 5, 4, 2), (1, 9, 8, 3), [(3, 3, 3, 2), (3,)]),
    (layers.DepthwiseConv2D, {"kernel_size": 3, "depth_multiplier": 2, "padding": "same"}, (2, 6, 5, 3),
     (2, 6, 5, 6), [(3, 3, 3, 2), (6,)]),
    (layers.DepthwiseConv2D, {"kernel_size": (3, 2), "strides": 2, "dilation_rate": 2, "use_bias": False},
     (1, 9, 8, 2), (1, 3, 3, 2), [(3, 2, 2, 1)]),
    (layers.DepthwiseConv1D, {"kernel_size": 3, "depth_multiplier": 3, "strides": 2}, (2, 9, 2), (2, 4, 6),
     [(3, 2, 3), (6,)]),
    (layers.SeparableConv2D, {"filters": 5, "kernel_size": 3, "depth_multiplier": 2, "activation": "relu"},
     (2, 7, 6, 3), (2, 5, 4, 5), [(3, 3, 3, 2), (1, 1, 6, 5), (5,)]),
    (layers.SeparableConv1D, {"filters": 4, "kernel_size": 3, "padding": "same", "dilation_rate": 2},
     (2, 9, 3), (2, 9, 4), [(3, 3, 1), (1, 3, 4), (4,)]),
]


@pytest.mark.parametrize("cls,kwargs,input_shape,output_shape,weight_shapes", CONTRACTS,
                         ids=[f"{c[0].__name__}-{i}" for i, c in enumerate(CONTRACTS)])
def test_contract(cls, kwargs, input_shape, output_shape, weight_shapes):
    run_layer_test(cls, kwargs, input_shape, output_shape, expected_num_trainable_weights=len(weight_shapes),
                   expected_weight_shapes=weight_shapes)


def test_aliases_and_keras_config_keys():
    assert layers.Convolution2DTranspose is layers.Conv2DTranspose
    assert layers.Convolution1DTranspose is layers.Conv1DTranspose
    assert layers.SeparableConvolution2D is layers.SeparableConv2D
    assert layers.SeparableConvolution1D is layers.SeparableConv1D
    assert {"dilation_rate", "groups", "kernel_constraint", "bias_constraint"} <= set(layers.Conv2D(2, 3).get_config())
    assert {"output_padding", "dilation_rate", "kernel_initializer"} <= set(layers.Conv2DTranspose(2, 3).get_config())
    assert {"depth_multiplier", "depthwise_initializer", "depthwise_regularizer", "depthwise_constraint"} <= \
        set(layers.DepthwiseConv2D(3).get_config())
    assert {"filters", "depth_multiplier", "pointwise_initializer", "pointwise_regularizer",
            "pointwise_constraint"} <= set(layers.SeparableConv2D(4, 3).get_config())


# -- values and gradients against PyTorch -------------------------------------------------------------
def _set_random_weights(layer, input_shape, rng):
    layer.build((None, *input_shape[1:]))
    weights = [(rng.standard_normal(w.shape) * 0.4).astype(np.float32) for w in layer.weights]
    layer.set_weights(weights)
    return weights


def _check_layer(layer, x, reference, rng):
    """layer(x) and the gradients of sum(out * up) for x and every weight, against reference(tx, *tweights)."""
    weights = _set_random_weights(layer, x.shape, rng)
    up = rng.standard_normal(layer.compute_output_shape(x.shape)).astype(np.float32)
    out, grads = grads_of(layer, [x], layer.weights, up)
    tx = torch.tensor(x, requires_grad=True)
    tws = [torch.tensor(w, requires_grad=True) for w in weights]
    ref = reference(tx, *tws)
    (ref * torch.tensor(up)).sum().backward()
    assert out.shape == tuple(ref.shape)
    assert_close(out, ref)
    for g, t in zip(grads, [tx] + tws):
        assert_close(g, t.grad)


@pytest.mark.parametrize("cls,kwargs,input_shape", [
    (layers.Conv2D, {"filters": 6, "kernel_size": 3, "groups": 3, "activation": "relu"}, (2, 7, 6, 3)),
    (layers.Conv2D, {"filters": 4, "kernel_size": (2, 3), "dilation_rate": (2, 3), "padding": "same",
                     "activation": "sigmoid", "groups": 2}, (1, 9, 10, 4)),
    (layers.Conv1D, {"filters": 4, "kernel_size": 3, "dilation_rate": 2, "padding": "same", "groups": 2},
     (2, 11, 2)),
    (layers.Conv1D, {"filters": 2, "kernel_size": 3, "dilation_rate": 3, "padding": "causal"}, (1, 10, 3)),
])
def test_conv_layers_match_torch(cls, kwargs, input_shape):
    rng = np.random.default_rng(0)
    layer = cls(**kwargs)
    rank = len(input_shape) - 2
    strides = (1,) * rank
    dilation = layer.dilation_rate
    act = {None: lambda t: t, "relu": torch.relu, "sigmoid": torch.sigmoid}[kwargs.get("activation")]

    def reference(tx, tw, tb):
        if layer.padding == "causal":
            tx = F.pad(tx, (0, 0, (layer.kernel_size[0] - 1) * dilation[0], 0))
        padding = "valid" if layer.padding == "causal" else layer.padding
        return act(torch_conv(tx, tw, strides, padding, dilation, layer.groups) + tb)
    _check_layer(layer, rng.standard_normal(input_shape).astype(np.float32), reference, rng)


@pytest.mark.parametrize("cls,kwargs,input_shape", [
    (layers.Conv2DTranspose, {"filters": 4, "kernel_size": 3, "strides": 2, "padding": "same"}, (2, 5, 6, 3)),
    (layers.Conv2DTranspose, {"filters": 2, "kernel_size": (3, 2), "strides": (3, 2), "output_padding": (2, 1),
                              "activation": "relu"}, (1, 3, 4, 2)),
    (layers.Conv2DTranspose, {"filters": 3, "kernel_size": 2, "strides": 3, "padding": "same", "output_padding": 1},
     (2, 4, 3, 2)),
    (layers.Conv2DTranspose, {"filters": 3, "kernel_size": 3, "dilation_rate": (2, 1), "padding": "same"},
     (1, 5, 5, 2)),
    (layers.Conv1DTranspose, {"filters": 3, "kernel_size": 4, "strides": 3, "output_padding": 2}, (2, 5, 2)),
    (layers.Conv1DTranspose, {"filters": 2, "kernel_size": 3, "strides": 2, "padding": "same", "activation": "tanh"},
     (1, 7, 3)),
])
def test_conv_transpose_layers_match_torch(cls, kwargs, input_shape):
    rng = np.random.default_rng(1)
    layer = cls(**kwargs)
    act = {None: lambda t: t, "relu": torch.relu, "tanh": torch.tanh}[kwargs.get("activation")]

    def reference(tx, tw, tb):
        return act(torch_conv_transpose(tx, tw, layer.strides, layer.padding, layer.output_padding,
                                        layer.dilation_rate) + tb)
    _check_layer(layer, rng.standard_normal(input_shape).astype(np.float32), reference, rng)


@pytest.mark.parametrize("kwargs,input_shape", [
    ({"kernel_size": 3, "depth_multiplier": 2, "padding": "same", "activation": "relu"}, (2, 7, 6, 3)),
    ({"kernel_size": (3, 2), "strides": (2, 3), "padding": "valid"}, (1, 9, 10, 4)),
    ({"kernel_size": 3, "depth_multiplier": 3, "dilation_rate": 2, "padding": "same"}, (2, 9, 2)),
])
def test_depthwise_layers_match_torch(kwargs, input_shape):
    rng = np.random.default_rng(2)
    rank, channels = len(input_shape) - 2, input_shape[-1]
    layer = (layers.DepthwiseConv2D if rank == 2 else layers.DepthwiseConv1D)(**kwargs)
    m = layer.depth_multiplier
    act = {None: lambda t: t, "relu": torch.relu}[kwargs.get("activation")]

    def reference(tx, tw, tb):
        grouped = tw.reshape(*layer.kernel_size, 1, channels * m)
        return act(torch_conv(tx, grouped, layer.strides, layer.padding, layer.dilation_rate, channels) + tb)
    _check_layer(layer, rng.standard_normal(input_shape).astype(np.float32), reference, rng)


@pytest.mark.parametrize("kwargs,input_shape", [
    ({"filters": 5, "kernel_size": 3, "depth_multiplier": 2, "padding": "same", "activation": "relu"}, (2, 7, 6, 3)),
    ({"filters": 2, "kernel_size": 3, "strides": 2}, (1, 8, 9, 4)),
    ({"filters": 4, "kernel_size": 2, "dilation_rate": 2, "padding": "same"}, (2, 9, 3)),
])
def test_separable_layers_match_torch(kwargs, input_shape):
    rng = np.random.default_rng(3)
    rank, channels = len(input_shape) - 2, input_shape[-1]
    layer = (layers.SeparableConv2D if rank == 2 else layers.SeparableConv1D)(**kwargs)
    m = layer.depth_multiplier
    act = {None: lambda t: t, "relu": torch.relu}[kwargs.get("activation")]

    def reference(tx, tdw, tpw, tb):
        grouped = tdw.reshape(*layer.kernel_size, 1, channels * m)
        y = torch_conv(tx, grouped, layer.strides, layer.padding, layer.dilation_rate, channels)
        return act(torch_conv(y, tpw, (1,) * rank, "valid", (1,) * rank, 1) + tb)
    _check_layer(layer, rng.standard_normal(input_shape).astype(np.float32), reference, rng)


# -- bad arguments and inputs -------------------------------------------------------------------------
@pytest.mark.parametrize("make,error,match", [
    (lambda: layers.Conv2D(4, 3, strides=2, dilation_rate=2, name="c"), ValueError,
     r"'c'.*strides > 1.*dilation_rate > 1.*strides=\(2, 2\).*dilation_rate=\(2, 2\)"),
    (lambda: layers.Conv2D(5, 3, groups=2, name="c"), ValueError, r"'c'.*filters.*divisible.*groups=2, filters=5"),
    (lambda: layers.Conv2D(4, 3, groups=0), ValueError, r"groups"),
    (lambda: layers.Conv2D(4, 3, dilation_rate=(1, 0), name="c"), ValueError, r"'c'.*dilation_rate"),
    (lambda: layers.Conv2D(4, 3, kernel_constraint="nonneg", name="c"), ValueError,
     r"'c'.*kernel_constraint.*Unknown constraint: 'nonneg'. Did you mean 'non_neg'"),
    (lambda: layers.Conv2DTranspose(4, 3, strides=2, output_padding=2, name="t"), ValueError,
     r"'t'.*output_padding.*strictly less than.*strides"),
    (lambda: layers.Conv2DTranspose(4, 3, output_padding=(1, -1), name="t"), ValueError, r"'t'.*output_padding"),
    (lambda: layers.Conv2DTranspose(4, 3, strides=2, dilation_rate=2, name="t"), ValueError, r"'t'.*strides > 1"),
    (lambda: layers.Conv2DTranspose(4, 3, padding="causal", name="t"), ValueError, r"'t'.*padding"),
    (lambda: layers.Conv1DTranspose(4, 3, data_format="channels_first", name="t"), ValueError,
     r"'t'.*data_format='channels_last'"),
    (lambda: layers.Conv2DTranspose(0, 3), ValueError, r"filters=0"),
    (lambda: layers.Conv2DTranspose(4, 3, bias_constraint=3), ValueError, r"bias_constraint.*3"),
    (lambda: layers.DepthwiseConv2D(3, depth_multiplier=0), ValueError, r"depth_multiplier=0"),
    (lambda: layers.DepthwiseConv2D(3, padding="causal", name="d"), ValueError, r"'d'.*padding"),
    (lambda: layers.DepthwiseConv1D(3, data_format="channels_first", name="d"), ValueError, r"'d'.*data_format"),
    (lambda: layers.DepthwiseConv2D(3, depthwise_constraint="maxnorm"), ValueError, r"depthwise_constraint"),
    (lambda: layers.SeparableConv2D(4, 3, pointwise_constraint="unit"), ValueError, r"pointwise_constraint"),
    (lambda: layers.SeparableConv2D(0, 3), ValueError, r"filters=0"),
    (lambda: layers.SeparableConv1D(4, (3, 3), name="s"), ValueError, r"'s'.*kernel_size"),
])
def test_bad_arguments(make, error, match):
    with pytest.raises(error, match=match):
        make()


def test_bad_inputs_name_the_layer_and_change_nothing():
    with pytest.raises(ValueError, match=r"'g'.*input channels.*divisible.*groups=2.*3 channels"):
        layers.Conv2D(4, 3, groups=2, name="g")(np.zeros((1, 5, 5, 3), np.float32))
    with pytest.raises(ValueError, match=r"window|larger"):
        layers.Conv2D(4, 3, dilation_rate=3)(dlgpu.Input(shape=(6, 6, 1)))  # spans 7 pixels
    with pytest.raises(ValueError, match=r"'t'.*ndim=4.*ndim=3"):
        layers.Conv2DTranspose(4, 3, name="t")(np.zeros((2, 8, 8), np.float32))
    with pytest.raises(ValueError, match=r"'d'.*ndim=3.*ndim=4"):
        layers.DepthwiseConv1D(3, name="d")(np.zeros((2, 8, 8, 1), np.float32))
    with pytest.raises(ValueError, match=r"window|larger"):
        layers.SeparableConv2D(4, 5)(dlgpu.Input(shape=(3, 3, 1)))
    for layer in (layers.Conv2DTranspose(2, 3, name="t"), layers.DepthwiseConv2D(3, name="t"),
                  layers.SeparableConv2D(2, 3, name="t"), layers.Conv2D(4, 3, groups=2, name="t")):
        layer(np.zeros((1, 5, 5, 4), np.float32))
        before = [w.copy() for w in layer.get_weights()]
        with pytest.raises(ValueError, match=r"'t'.*axis -1.*4"):
            layer(np.zeros((1, 5, 5, 2), np.float32))
        for a, b in zip(layer.get_weights(), before):
            np.testing.assert_array_equal(a, b)


# -- small models: fit, save, load ---------------------------------------------------------------------
def _autoencoder():
    return dlgpu.Sequential([
        dlgpu.Input(shape=(8, 8, 1)),
        layers.Conv2D(8, 3, strides=2, padding="same", activation="relu"),
        layers.Conv2D(8, 3, padding="same", dilation_rate=2, groups=2, activation="relu"),
        layers.Conv2DTranspose(4, 3, strides=2, padding="same", activation="relu"),
        layers.Conv2D(1, 1),
    ])


def _mobilenet_block():
    inputs = dlgpu.Input(shape=(8, 8, 3))
    x = layers.Conv2D(8, 3, strides=2, padding="same", activation="relu")(inputs)
    x = layers.DepthwiseConv2D(3, padding="same", activation="relu")(x)
    x = layers.Conv2D(8, 1, activation="relu")(x)
    skip = x
    x = layers.SeparableConv2D(8, 3, padding="same", depth_multiplier=2, activation="relu")(x)
    x = layers.Add()([x, skip])
    x = layers.GlobalAveragePooling2D()(x)
    return dlgpu.Model(inputs, layers.Dense(3, activation="softmax")(x), name="mobilenet_block")


def _blobs(n, rng):
    """Images that are smooth bumps: an autoencoder can learn them."""
    yy, xx = np.mgrid[:8, :8]
    cy, cx = rng.uniform(1, 6, (2, n, 1, 1))
    return np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / 4.0)[..., None].astype(np.float32)


def _three_classes(n, rng):
    """Which of the three channels is bright."""
    y = rng.integers(0, 3, n)
    x = rng.standard_normal((n, 8, 8, 3)).astype(np.float32) * 0.3
    x[np.arange(n), :, :, y] += 1.0
    return x, y


def _round_trip(model, x, tmp_path):
    path = tmp_path / "model.dlgpu"
    model.save(path)
    loaded = load_model(path)
    assert [type(l) for l in loaded.layers] == [type(l) for l in model.layers]
    assert [l.get_config() for l in loaded.layers] == [l.get_config() for l in model.layers]
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))
    return loaded


def test_autoencoder_trains_and_round_trips(tmp_path):
    dlgpu.set_random_seed(0)
    rng = np.random.default_rng(0)
    x = _blobs(64, rng)
    model = _autoencoder()
    model.compile(optimizer=dlgpu.optimizers.Adam(0.01), loss="mse")
    history = model.fit(x, x, epochs=15, batch_size=16, verbose=0).history
    assert history["loss"][-1] < 0.5 * history["loss"][0], history["loss"]
    assert model.predict(x[:2], verbose=0).shape == (2, 8, 8, 1)
    loaded = _round_trip(model, _blobs(4, np.random.default_rng(1)), tmp_path)
    loaded.fit(x, x, epochs=1, verbose=0)


def test_mobilenet_block_trains_and_round_trips(tmp_path):
    dlgpu.set_random_seed(0)
    rng = np.random.default_rng(0)
    x, y = _three_classes(96, rng)
    model = _mobilenet_block()
    model.compile(optimizer=dlgpu.optimizers.Adam(0.01), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    history = model.fit(x, y, epochs=10, batch_size=32, verbose=0).history
    assert history["loss"][-1] < 0.7 * history["loss"][0], history["loss"]
    assert history["accuracy"][-1] > 0.8, history["accuracy"]
    loaded = _round_trip(model, _three_classes(8, np.random.default_rng(1))[0], tmp_path)
    loaded.fit(x, y, epochs=1, verbose=0)


@pytest.mark.gpu
@pytest.mark.parametrize("make_model,shape", [(_autoencoder, (4, 8, 8, 1)), (_mobilenet_block, (4, 8, 8, 3))],
                         ids=["autoencoder", "mobilenet_block"])
def test_models_on_gpu_match_cpu(make_model, shape):
    x = np.random.default_rng(2).standard_normal(shape).astype(np.float32)
    assert_model_on_gpu_matches_cpu(make_model, x)


def test_dilated_and_grouped_conv_skip_the_fused_paths():
    """Sequential fuses Conv2D + MaxPooling2D and fit may run a static step on conv2d primitives; neither
    knows dilation or groups, so those layers must go the general way (the shapes would not even agree)."""
    dlgpu.set_random_seed(0)
    model = dlgpu.Sequential([dlgpu.Input((10, 10, 2)), layers.Conv2D(4, 3, dilation_rate=2, activation="relu"),
                              layers.MaxPooling2D(), layers.Conv2D(4, 1, groups=2, activation="relu"),
                              layers.MaxPooling2D(), layers.Flatten(), layers.Dense(3, activation="softmax")])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    rng = np.random.default_rng(0)
    x, y = rng.random((16, 10, 10, 2), dtype=np.float32), rng.integers(0, 3, 16)
    model.fit(x, y, epochs=1, batch_size=8, verbose=0)
    h = x
    for layer in model.layers:
        h = layer(h)
    np.testing.assert_allclose(model.predict(x, verbose=0), h.numpy(), rtol=1e-6, atol=1e-7)
