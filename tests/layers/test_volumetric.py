"""The 3-D (volumetric) layers: Conv3D, Conv3DTranspose, MaxPooling3D, AveragePooling3D, GlobalMaxPooling3D,
GlobalAveragePooling3D.  The layer contract, Keras's aliases, signatures and config keys, values and
gradients (input, kernel, bias) against PyTorch, bad arguments and inputs naming the layer, and a small 3-D
CNN trained with fit, saved and loaded (and run on the GPU against the CPU)."""

import inspect
import math

import numpy as np
import pytest

import dlgpu
from dlgpu import layers, ops

from .layer_test_case import run_layer_test
from .test_conv_family import _check_layer, _round_trip

torch = pytest.importorskip("torch")
F = torch.nn.functional

from torch_conv_ref import same_pads, torch_conv, torch_conv_transpose  # noqa: E402 - after the torch skip


# -- the layer contract ---------------------------------------------------------------------------
CONTRACTS = [
    (layers.Conv3D, {"filters": 4, "kernel_size": 2}, (2, 4, 5, 3, 2), (2, 3, 4, 2, 4), [(2, 2, 2, 2, 4), (4,)]),
    (layers.Conv3D, {"filters": 6, "kernel_size": (3, 1, 2), "strides": (2, 1, 3), "padding": "same", "groups": 3,
                     "activation": "relu"}, (1, 5, 4, 7, 3), (1, 3, 4, 3, 6), [(3, 1, 2, 1, 6), (6,)]),
    (layers.Conv3D, {"filters": 2, "kernel_size": 2, "dilation_rate": (2, 1, 1), "use_bias": False},
     (2, 5, 3, 3, 1), (2, 3, 2, 2, 2), [(2, 2, 2, 1, 2)]),
    (layers.Conv3DTranspose, {"filters": 3, "kernel_size": 2, "strides": 2}, (2, 3, 4, 2, 2), (2, 6, 8, 4, 3),
     [(2, 2, 2, 3, 2), (3,)]),
    (layers.Conv3DTranspose, {"filters": 2, "kernel_size": (3, 2, 2), "strides": (3, 1, 2), "padding": "same",
                              "output_padding": (1, 0, 1), "activation": "tanh"}, (1, 2, 3, 3, 4),
     (1, 5, 2, 5, 2), [(3, 2, 2, 2, 4), (2,)]),  # Keras: (n - 1) * s + k - 2 * (k // 2) + output_padding
]


@pytest.mark.parametrize("cls,kwargs,input_shape,output_shape,weight_shapes", CONTRACTS,
                         ids=[f"{c[0].__name__}-{i}" for i, c in enumerate(CONTRACTS)])
def test_conv_contract(cls, kwargs, input_shape, output_shape, weight_shapes):
    run_layer_test(cls, kwargs, input_shape, output_shape, expected_num_trainable_weights=len(weight_shapes),
                   expected_weight_shapes=weight_shapes)


@pytest.mark.parametrize("cls", [layers.MaxPooling3D, layers.AveragePooling3D])
def test_pooling_contract(cls):
    run_layer_test(cls, {"pool_size": 2}, (2, 4, 5, 3, 2), (2, 2, 2, 1, 2))
    run_layer_test(cls, {"pool_size": (3, 2, 2), "strides": (2, 1, 3), "padding": "same"}, (1, 5, 4, 7, 3),
                   (1, 3, 4, 3, 3))


@pytest.mark.parametrize("cls", [layers.GlobalMaxPooling3D, layers.GlobalAveragePooling3D])
def test_global_pooling_contract(cls):
    run_layer_test(cls, {}, (2, 3, 4, 5, 2), (2, 2))
    run_layer_test(cls, {"keepdims": True}, (1, 3, 4, 5, 2), (1, 1, 1, 1, 2))


def test_aliases_signatures_and_keras_config_keys():
    assert layers.Convolution3D is layers.Conv3D
    assert layers.Convolution3DTranspose is layers.Conv3DTranspose
    assert layers.MaxPool3D is layers.MaxPooling3D
    assert layers.AvgPool3D is layers.AveragePooling3D
    assert layers.GlobalMaxPool3D is layers.GlobalMaxPooling3D
    assert layers.GlobalAvgPool3D is layers.GlobalAveragePooling3D

    def positional(cls):
        return list(inspect.signature(cls.__init__).parameters)[1:-1]
    # Keras 3's order: Conv3DTranspose takes data_format before output_padding (Conv2DTranspose the reverse)
    assert positional(layers.Conv3DTranspose)[:7] == ["filters", "kernel_size", "strides", "padding", "data_format",
                                                      "output_padding", "dilation_rate"]
    assert positional(layers.Conv3D)[:7] == ["filters", "kernel_size", "strides", "padding", "data_format",
                                             "dilation_rate", "groups"]
    assert layers.MaxPooling3D().pool_size == (2, 2, 2)
    assert inspect.signature(layers.AveragePooling3D).parameters["pool_size"].default is inspect.Parameter.empty
    assert layers.Conv3D(2, 3).strides == (1, 1, 1) and layers.Conv3DTranspose(2, 3).dilation_rate == (1, 1, 1)

    assert set(layers.Conv3D(2, 3).get_config()) >= {
        "name", "trainable", "dtype", "filters", "kernel_size", "strides", "padding", "data_format", "dilation_rate",
        "groups", "activation", "use_bias", "kernel_initializer", "bias_initializer", "kernel_regularizer",
        "bias_regularizer", "activity_regularizer", "kernel_constraint", "bias_constraint"}
    config = layers.Conv3DTranspose(2, 3, output_padding=None).get_config()
    assert config["output_padding"] is None and config["data_format"] == "channels_last"
    assert set(config) >= {"filters", "kernel_size", "strides", "padding", "output_padding", "dilation_rate"}
    assert layers.MaxPooling3D(strides=1).get_config() | {"name": None} == {
        "name": None, "trainable": True, "pool_size": (2, 2, 2), "strides": (1, 1, 1),
        "dtype": {"module": "keras", "class_name": "DTypePolicy", "config": {"name": "float32"}, "registered_name": None},
        "padding": "valid", "data_format": "channels_last"}
    assert {"data_format", "keepdims"} <= set(layers.GlobalAveragePooling3D().get_config())
    # a Keras-style config (tuples, an explicit data_format) builds the same layer
    clone = layers.Conv3DTranspose.from_config({**config, "kernel_size": (3, 3, 3), "strides": (1, 1, 1)})
    assert clone.get_config() == config


# -- values and gradients against PyTorch -------------------------------------------------------------
ACTIVATIONS = {None: lambda t: t, "relu": torch.relu, "sigmoid": torch.sigmoid, "tanh": torch.tanh}


@pytest.mark.parametrize("kwargs,input_shape", [
    ({"filters": 4, "kernel_size": 3, "padding": "same", "activation": "relu"}, (2, 5, 4, 6, 3)),
    ({"filters": 3, "kernel_size": (2, 3, 2), "strides": (2, 3, 1)}, (1, 7, 8, 5, 2)),          # strides 2/3, batch 1
    ({"filters": 2, "kernel_size": 3, "strides": 2, "padding": "same", "activation": "sigmoid"}, (2, 5, 7, 3, 1)),
    ({"filters": 6, "kernel_size": (3, 2, 2), "dilation_rate": (2, 1, 3), "padding": "same", "groups": 2},
     (1, 7, 5, 8, 4)),                                                                           # dilated, grouped
    ({"filters": 4, "kernel_size": 2, "groups": 4, "use_bias": False}, (2, 3, 4, 3, 4)),         # one channel a group
])
def test_conv3d_matches_torch(kwargs, input_shape):
    rng = np.random.default_rng(0)
    layer = layers.Conv3D(**kwargs)
    act = ACTIVATIONS[kwargs.get("activation")]

    def reference(tx, tw, tb=None):
        y = torch_conv(tx, tw, layer.strides, layer.padding, layer.dilation_rate, layer.groups)
        return act(y if tb is None else y + tb)
    _check_layer(layer, rng.standard_normal(input_shape).astype(np.float32), reference, rng)


@pytest.mark.parametrize("kwargs,input_shape", [
    ({"filters": 3, "kernel_size": 3, "strides": 2, "padding": "same"}, (2, 3, 4, 2, 2)),
    ({"filters": 2, "kernel_size": (3, 2, 2), "strides": (3, 2, 1), "output_padding": (2, 1, 0),
      "activation": "relu"}, (1, 3, 2, 4, 3)),
    ({"filters": 2, "kernel_size": 2, "strides": 3, "padding": "same", "output_padding": 1}, (1, 2, 3, 3, 2)),
    ({"filters": 3, "kernel_size": 3, "dilation_rate": (2, 1, 1), "padding": "same", "activation": "tanh"},
     (2, 4, 3, 3, 1)),
    ({"filters": 1, "kernel_size": (2, 3, 1), "use_bias": False}, (1, 3, 3, 5, 2)),
])
def test_conv3d_transpose_matches_torch(kwargs, input_shape):
    rng = np.random.default_rng(1)
    layer = layers.Conv3DTranspose(**kwargs)
    act = ACTIVATIONS[kwargs.get("activation")]

    def reference(tx, tw, tb=None):
        y = torch_conv_transpose(tx, tw, layer.strides, layer.padding, layer.output_padding, layer.dilation_rate)
        return act(y if tb is None else y + tb)
    _check_layer(layer, rng.standard_normal(input_shape).astype(np.float32), reference, rng)


def _torch_pool(kind, tx, pool, strides, padding):
    """Keras's 3-D pooling in PyTorch: TensorFlow's 'same' (extra cell after); the mean over real cells."""
    x = tx.permute(0, 4, 1, 2, 3)
    widths = []
    if padding == "same":
        for size, k, s in reversed(list(zip(tx.shape[1:4], pool, strides))):
            widths += same_pads(size, k, s)
    else:
        widths = [0] * 6
    if kind == "max":
        y = F.max_pool3d(F.pad(x, widths, value=-math.inf), pool, strides)
    else:
        y = F.avg_pool3d(F.pad(x, widths), pool, strides) / F.avg_pool3d(F.pad(torch.ones_like(x), widths), pool,
                                                                          strides)
    return y.permute(0, 2, 3, 4, 1)


@pytest.mark.parametrize("kind,cls", [("max", layers.MaxPooling3D), ("avg", layers.AveragePooling3D)])
@pytest.mark.parametrize("pool,strides,padding,shape", [
    ((2, 2, 2), None, "valid", (2, 5, 4, 7, 3)),
    ((3, 2, 3), (2, 3, 1), "same", (1, 7, 5, 6, 2)),
    ((3, 3, 3), (1, 1, 1), "same", (2, 4, 3, 5, 1)),
])
def test_pooling_layers_match_torch(kind, cls, pool, strides, padding, shape):
    rng = np.random.default_rng(2)
    x = (rng.permutation(math.prod(shape)).reshape(shape) / 10.0).astype(np.float32)  # one maximum per window
    layer = cls(pool, strides=strides, padding=padding)
    _check_layer(layer, x, lambda tx: _torch_pool(kind, tx, pool, strides or pool, padding), rng)


@pytest.mark.parametrize("cls,torch_pool", [(layers.GlobalMaxPooling3D, F.adaptive_max_pool3d),
                                            (layers.GlobalAveragePooling3D, F.adaptive_avg_pool3d)])
def test_global_pooling_matches_torch(cls, torch_pool):
    rng = np.random.default_rng(3)
    x = (rng.permutation(2 * 3 * 4 * 5 * 2).reshape(2, 3, 4, 5, 2) / 10.0).astype(np.float32)
    _check_layer(cls(), x, lambda tx: torch_pool(tx.permute(0, 4, 1, 2, 3), 1).flatten(1), rng)


# -- bad arguments and inputs --------------------------------------------------------------------------
@pytest.mark.parametrize("make,error,match", [
    (lambda: layers.Conv3D(4, 3, data_format="channels_first", name="c"), ValueError,
     r"'c'.*data_format='channels_last'.*channels_first"),
    (lambda: layers.Conv3DTranspose(4, 3, data_format="channels_first", name="t"), ValueError,
     r"'t'.*data_format='channels_last'"),
    (lambda: layers.MaxPooling3D(data_format="channels_first", name="p"), ValueError, r"'p'.*data_format"),
    (lambda: layers.AveragePooling3D(2, data_format="channels_first", name="p"), ValueError, r"'p'.*data_format"),
    (lambda: layers.GlobalMaxPooling3D(data_format="channels_first", name="g"), ValueError, r"'g'.*data_format"),
    (lambda: layers.GlobalAveragePooling3D(data_format="channels_first", name="g"), ValueError,
     r"'g'.*data_format"),
    (lambda: layers.Conv3D(4, (3, 3), name="c"), ValueError, r"'c'.*kernel_size.*\(3, 3\)"),
    (lambda: layers.Conv3D(4, 3, padding="causal", name="c"), ValueError, r"'c'.*padding"),
    (lambda: layers.Conv3D(4, 3, strides=2, dilation_rate=2, name="c"), ValueError, r"'c'.*strides.*dilation_rate"),
    (lambda: layers.Conv3D(5, 3, groups=2, name="c"), ValueError, r"'c'.*groups=2, filters=5"),
    (lambda: layers.Conv3D(0, 3), ValueError, r"filters=0"),
    (lambda: layers.Conv3D(4, 3, kernel_constraint="no_such", name="c"), ValueError, r"'c'.*kernel_constraint"),
    (lambda: layers.Conv3DTranspose(4, 3, strides=2, output_padding=2, name="t"), ValueError,
     r"'t'.*output_padding.*strictly less than.*strides"),
    (lambda: layers.Conv3DTranspose(4, 3, output_padding=(0, 0), name="t"), ValueError, r"'t'.*output_padding"),
    (lambda: layers.MaxPooling3D(2, padding="full", name="p"), ValueError, r"'p'.*padding"),
    (lambda: layers.AveragePooling3D((2, 2), name="p"), ValueError, r"'p'.*pool_size.*\(2, 2\)"),
    (lambda: layers.MaxPooling3D(2, strides=0, name="p"), ValueError, r"'p'.*strides"),
    (lambda: layers.AveragePooling3D(), TypeError, r"pool_size"),  # required, as in Keras 3
])
def test_bad_arguments(make, error, match):
    with pytest.raises(error, match=match):
        make()


def test_bad_inputs_name_the_layer_and_change_nothing():
    for layer in (layers.Conv3D(2, 2, name="v"), layers.Conv3DTranspose(2, 2, name="v"),
                  layers.MaxPooling3D(name="v"), layers.AveragePooling3D(2, name="v"),
                  layers.GlobalMaxPooling3D(name="v"), layers.GlobalAveragePooling3D(name="v")):
        with pytest.raises(ValueError, match=r"'v'.*ndim=5.*ndim=4"):
            layer(np.zeros((1, 4, 4, 2), np.float32))
    with pytest.raises(ValueError, match=r"'w'.*window.*larger"):
        layers.MaxPooling3D(3, name="w")(dlgpu.Input(shape=(4, 2, 4, 1)))
    with pytest.raises(ValueError, match=r"window|larger"):
        layers.Conv3D(2, 3, dilation_rate=2)(dlgpu.Input(shape=(5, 5, 4, 1)))  # spans 5 cells
    with pytest.raises(ValueError, match=r"'g'.*input channels.*divisible.*groups=2.*3 channels"):
        layers.Conv3D(4, 1, groups=2, name="g")(np.zeros((1, 2, 2, 2, 3), np.float32))
    for layer in (layers.Conv3D(2, 2, name="t"), layers.Conv3DTranspose(2, 2, name="t")):
        layer(np.zeros((1, 3, 3, 3, 4), np.float32))
        before = [w.copy() for w in layer.get_weights()]
        with pytest.raises(ValueError, match=r"'t'.*axis -1.*4"):
            layer(np.zeros((1, 3, 3, 3, 2), np.float32))
        for a, b in zip(layer.get_weights(), before):
            np.testing.assert_array_equal(a, b)


# -- a small 3-D CNN: fit, save, load, and the GPU against the CPU --------------------------------------
def _volume_cnn():
    inputs = dlgpu.Input(shape=(6, 6, 6, 1))
    x = layers.Conv3D(4, 3, padding="same", activation="relu")(inputs)
    x = layers.MaxPooling3D()(x)                                                   # 3x3x3
    x = layers.Conv3D(6, 2, padding="same", groups=2, activation="relu")(x)
    skip = layers.Conv3DTranspose(2, 2, strides=2, activation="relu")(x)           # back to 6x6x6
    x = layers.Concatenate()([layers.AveragePooling3D(2, strides=1)(skip),           # 5x5x5
                              layers.AvgPool3D(2, strides=1)(inputs)])
    x = layers.Concatenate()([layers.GlobalMaxPooling3D()(x), layers.GlobalAveragePooling3D()(x)])
    return dlgpu.Model(inputs, layers.Dense(2, activation="softmax")(x), name="volume_cnn")


def _bright_corner(n, rng):
    """Class 1: a bright 2x2x2 blob in the first octant; class 0: in the last."""
    y = rng.integers(0, 2, n)
    x = rng.standard_normal((n, 6, 6, 6, 1)).astype(np.float32) * 0.3
    for i, label in enumerate(y):
        d, h, w = rng.integers(0, 2, 3) + (0 if label else 3)
        x[i, d:d + 2, h:h + 2, w:w + 2] += 2.0
    return x, y


def test_volume_cnn_trains_and_round_trips(tmp_path):
    dlgpu.set_random_seed(0)
    rng = np.random.default_rng(0)
    x, y = _bright_corner(64, rng)
    model = _volume_cnn()
    model.compile(optimizer=dlgpu.optimizers.Adam(0.02), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    history = model.fit(x, y, epochs=12, batch_size=16, verbose=0).history
    assert history["loss"][-1] < 0.6 * history["loss"][0], history["loss"]
    assert history["accuracy"][-1] > 0.9, history["accuracy"]
    loaded = _round_trip(model, _bright_corner(4, np.random.default_rng(1))[0], tmp_path)
    loaded.fit(x, y, epochs=1, verbose=0)


def test_sequential_volume_cnn_matches_its_layers_and_round_trips(tmp_path):
    """Sequential runs its layers through its own loop (which fuses 2-D conv-pool pairs, never these)."""
    dlgpu.set_random_seed(1)
    x, y = _bright_corner(16, np.random.default_rng(3))
    model = dlgpu.Sequential([dlgpu.Input((6, 6, 6, 1)), layers.Conv3D(3, 3, activation="relu"),
                              layers.MaxPool3D(), layers.Convolution3DTranspose(2, 2, strides=2),
                              layers.GlobalAvgPool3D(), layers.Dense(2, activation="softmax")])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    model.fit(x, y, epochs=1, batch_size=8, verbose=0)
    h = x
    for layer in model.layers:
        h = layer(h)
    np.testing.assert_allclose(model.predict(x, verbose=0), h.numpy(), rtol=1e-6, atol=1e-7)
    _round_trip(model, x[:3], tmp_path)


@pytest.mark.gpu
def test_volume_cnn_on_gpu_matches_cpu():
    x = _bright_corner(3, np.random.default_rng(2))[0]
    results, weights = {}, None
    for device in ("cpu", "gpu"):
        with dlgpu.device(device):
            model = _volume_cnn()
            if weights is None:
                weights = model.get_weights()
            model.set_weights(weights)
            xt = ops.convert_to_tensor(x)
            with dlgpu.GradientTape() as tape:
                out = model(xt, training=False)
                loss = ops.sum(ops.square(out))
            results[device] = [out.numpy()] + [g.numpy() for g in tape.gradient(loss, model.trainable_weights)]
            results[device].append(model.predict(x, verbose=0))
    for a, b in zip(results["gpu"], results["cpu"]):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
