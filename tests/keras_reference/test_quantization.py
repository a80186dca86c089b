"""Post-training int8 quantization against real Keras (torch backend): the same float weights quantized by
both give the same int8 kernels and scales (bit for bit), the same variables in the same order, outputs and
gradients within float32 rounding, the same configs, and files each reads from the other."""

import warnings

import numpy as np
import pytest

import dlgpu

from .kref import dlgpu_forward_and_grads, keras_forward_and_grads, plain

pytestmark = [pytest.mark.filterwarnings("ignore::DeprecationWarning"),
              pytest.mark.filterwarnings("ignore::UserWarning")]

# (layer class, args, kwargs, input shape without batch, integer ids?)
CASES = [
    ("Dense", (5,), {"activation": "relu"}, (7,), False),
    ("Dense", (4,), {"use_bias": False}, (3, 6), False),
    ("Dense", (3,), {}, (1500,), False),  # a contraction over 1024 terms: the int8 product in pieces
    ("EinsumDense", ("ab,bc->ac", 4), {"bias_axes": "c"}, (5,), False),
    ("EinsumDense", ("abc,cd->abd", (None, 6)), {"bias_axes": "d", "activation": "tanh"}, (3, 4), False),
    ("EinsumDense", ("abc,cde->abde", (3, 4, 5)), {"bias_axes": "e"}, (3, 2), False),
    ("EinsumDense", ("abcd,cde->abe", (3, 5)), {"bias_axes": "e"}, (3, 2, 4), False),
    ("Embedding", (9, 4), {}, (3,), True),
]


def _pair(keras, name, args, kwargs, shape, seed=0):
    """A Keras and a dlgpu layer built on ``shape`` with the same random float weights."""
    kwargs = {**kwargs, "name": "q"}  # names are counted per process: tests run in any order
    kl, dl = getattr(keras.layers, name)(*args, **kwargs), getattr(dlgpu.layers, name)(*args, **kwargs)
    kl.build((None,) + shape)
    dl.build((None,) + shape)
    rng = np.random.default_rng(seed)
    weights = [rng.standard_normal(w.shape).astype("float32") for w in kl.get_weights()]
    kl.set_weights(weights)
    dl.set_weights(weights)
    return kl, dl


def _inputs(shape, ids, seed=1):
    rng = np.random.default_rng(seed)
    if ids:
        return rng.integers(0, 9, (2,) + shape).astype("int32")
    return rng.standard_normal((2,) + shape).astype("float32")


def _config(layer):
    """get_config in one comparable form; dlgpu writes ``activity_regularizer: None`` where Keras leaves the key
    out (both read either)."""
    config = plain(layer.get_config())
    if config.get("activity_regularizer", 0) is None:
        del config["activity_regularizer"]
    return config


def _values(keras, weights):
    return [keras.ops.convert_to_numpy(w) for w in weights]


@pytest.mark.parametrize("name,args,kwargs,shape,ids", CASES)
def test_quantized_layer_matches_keras(keras, name, args, kwargs, shape, ids):
    kl, dl = _pair(keras, name, args, kwargs, shape)
    kl.quantize("int8")
    dl.quantize("int8")
    # the variables: names, order, dtypes, trainability, values (int8 and scales exactly)
    assert [(w.name, w.dtype, w.trainable) for w in dl.weights] == \
        [(w.name, w.dtype, w.trainable) for w in kl.weights]
    assert [w.name for w in dl.trainable_weights] == [w.name for w in kl.trainable_weights]
    for k, d in zip(_values(keras, kl.weights), dl.get_weights()):
        assert k.shape == d.shape and k.dtype == d.dtype
        np.testing.assert_array_equal(d, k)
    assert (dl.quantization_mode, dl.dtype_policy.name) == (kl.quantization_mode, kl.dtype_policy.name) == \
        ("int8", "int8_from_float32")
    assert _config(dl) == _config(kl)
    # outputs, and gradients for the float inputs and the trainable weights (the bias)
    x = _inputs(shape, ids)
    k_out, k_grads = keras_forward_and_grads(kl, [x], {})
    d_out, d_grads = dlgpu_forward_and_grads(dl, [x], {})
    np.testing.assert_allclose(d_out[0], k_out[0], rtol=1e-5, atol=1e-5)
    assert len(d_grads) == len(k_grads)
    for d, k in zip(d_grads, k_grads):
        np.testing.assert_allclose(d, k, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("name,args,kwargs,shape,ids", [CASES[0], CASES[4]])
def test_weight_only_config_matches_keras(keras, name, args, kwargs, shape, ids):
    """Int8QuantizationConfig(activation_quantizer=None): float inputs times the int8 kernel; and a weight
    quantizer of its own (a narrower range)."""
    kl, dl = _pair(keras, name, args, kwargs, shape)
    axis = 0 if name == "Dense" else (0,)
    kl.quantize(config=keras.quantizers.Int8QuantizationConfig(
        weight_quantizer=keras.quantizers.AbsMaxQuantizer(axis=axis, value_range=(-100, 100)),
        activation_quantizer=None))
    dl.quantize(config=dlgpu.quantizers.Int8QuantizationConfig(
        weight_quantizer=dlgpu.quantizers.AbsMaxQuantizer(axis=axis, value_range=(-100, 100)),
        activation_quantizer=None))
    for k, d in zip(_values(keras, kl.weights), dl.get_weights()):
        np.testing.assert_array_equal(d, k)
    assert _config(dl) == _config(kl)
    x = _inputs(shape, ids)
    k_out, k_grads = keras_forward_and_grads(kl, [x], {})
    d_out, d_grads = dlgpu_forward_and_grads(dl, [x], {})
    np.testing.assert_allclose(d_out[0], k_out[0], rtol=1e-5, atol=1e-5)
    for d, k in zip(d_grads, k_grads):
        np.testing.assert_allclose(d, k, rtol=1e-4, atol=1e-4)


def _model(K):
    return K.Sequential([K.Input((3,), dtype="int32"), K.layers.Embedding(10, 4, name="embedding"),
                         K.layers.EinsumDense("abc,cd->abd", (3, 6), bias_axes="d", name="einsum_dense"),
                         K.layers.Flatten(name="flatten"), K.layers.Dropout(0.1, name="dropout"),
                         K.layers.Dense(2, activation="softmax", name="dense")], name="model")


def test_model_quantize_and_files_both_ways(keras, tmp_path):
    x = np.random.default_rng(2).integers(0, 10, (5, 3)).astype("int32")
    km, dm = _model(keras), _model(dlgpu)
    dm.set_weights(km.get_weights())
    with warnings.catch_warnings(record=True) as k_warned:
        warnings.simplefilter("always")
        km.quantize("int8")
    with warnings.catch_warnings(record=True) as d_warned:
        warnings.simplefilter("always")
        dm.quantize("int8")
    # Dropout and Flatten cannot be quantized: both warn and go on
    assert any("Dropout does not have a `quantize` method" in str(w.message) for w in k_warned)
    assert any("Dropout does not have a `quantize` method" in str(w.message) for w in d_warned)
    assert [w.path for w in dm.weights] == [w.path for w in km.weights]
    for k, d in zip(_values(keras, km.weights), dm.get_weights()):
        np.testing.assert_array_equal(d, k)
    k_out = keras.ops.convert_to_numpy(km(x))
    np.testing.assert_allclose(dm(x).numpy(), k_out, rtol=1e-5, atol=1e-6)

    # .keras: dlgpu's file read by Keras, Keras's read by dlgpu
    dm.save(tmp_path / "d.keras")
    km.save(tmp_path / "k.keras")
    k_loaded = keras.saving.load_model(tmp_path / "d.keras")
    d_loaded = dlgpu.saving.load_model(tmp_path / "k.keras")
    for loaded in (k_loaded, d_loaded):
        assert [layer.dtype_policy.name for layer in loaded.layers] == \
            ["int8_from_float32", "int8_from_float32", "float32", "float32", "int8_from_float32"]
    np.testing.assert_allclose(keras.ops.convert_to_numpy(k_loaded(x)), k_out, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(d_loaded(x).numpy(), k_out, rtol=1e-5, atol=1e-6)
    for k, d in zip(_values(keras, km.weights), d_loaded.get_weights()):
        np.testing.assert_array_equal(d, k)

    # .weights.h5 into quantized models of the other library
    dm.save_weights(tmp_path / "d.weights.h5")
    km.save_weights(tmp_path / "k.weights.h5")
    k_fresh, d_fresh = _model(keras), _model(dlgpu)
    k_fresh.quantize("int8")
    d_fresh.quantize("int8")
    k_fresh.load_weights(tmp_path / "d.weights.h5")
    d_fresh.load_weights(tmp_path / "k.weights.h5")
    np.testing.assert_allclose(keras.ops.convert_to_numpy(k_fresh(x)), k_out, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(d_fresh(x).numpy(), k_out, rtol=1e-5, atol=1e-6)


def test_quantizers_match_keras(keras):
    x = np.random.default_rng(3).standard_normal((4, 6)).astype("float32")
    for axis in (-1, 0, (0, 1)):
        kq, ks = keras.quantizers.abs_max_quantize(x, axis)
        dq, ds = dlgpu.quantizers.abs_max_quantize(x, axis)
        np.testing.assert_array_equal(dq.numpy(), keras.ops.convert_to_numpy(kq))
        np.testing.assert_array_equal(ds.numpy(), keras.ops.convert_to_numpy(ks))
        assert dq.dtype == "int8" and ds.dtype == "float32"
    kq, ks = keras.quantizers.AbsMaxQuantizer(value_range=(-8, 7))(x, axis=1)
    dq, ds = dlgpu.quantizers.AbsMaxQuantizer(value_range=(-8, 7))(x, axis=1)
    np.testing.assert_array_equal(dq.numpy(), keras.ops.convert_to_numpy(kq))
    # float8 helpers (dlgpu rounds to float8 in float32 arithmetic: the same values)
    scale = np.float32(0.37)
    wide = np.concatenate([x.ravel() * 300, x.ravel() * 1e-3, [1e6, -1e6, 0.0]]).astype("float32")
    for dtype in ("float8_e4m3fn", "float8_e5m2"):
        k = keras.quantizers.quantize_and_dequantize(wide, scale, dtype, "float32")
        d = dlgpu.quantizers.quantize_and_dequantize(wide, scale, dtype, "float32")
        np.testing.assert_array_equal(d.numpy(), keras.ops.convert_to_numpy(k))
    amax = np.array([0.0, 3.0, np.inf, 0.5], "float32")
    old = np.array([0.5, 0.5, 0.25, 2.0], "float32")
    np.testing.assert_allclose(dlgpu.quantizers.compute_float8_scale(amax, old, 448.0, margin=1).numpy(),
                               keras.ops.convert_to_numpy(keras.quantizers.compute_float8_scale(amax, old, 448.0, 1)),
                               rtol=1e-6)
    # configs both ways
    for k_obj, d_obj in [(keras.quantizers.AbsMaxQuantizer(axis=0, value_range=(-100, 100)),
                          dlgpu.quantizers.AbsMaxQuantizer(axis=0, value_range=(-100, 100))),
                         (keras.quantizers.Int8QuantizationConfig(), dlgpu.quantizers.Int8QuantizationConfig())]:
        k_config, d_config = keras.quantizers.serialize(k_obj), dlgpu.quantizers.serialize(d_obj)
        assert plain(d_config) == plain(k_config)
        assert plain(keras.quantizers.serialize(keras.quantizers.deserialize(d_config))) == plain(k_config)
        assert plain(dlgpu.quantizers.serialize(dlgpu.quantizers.deserialize(k_config))) == plain(d_config)


# the quantized policies themselves are compared in test_mixed_precision.py with the float ones


def test_errors_match_keras(keras):
    for lib in (keras, dlgpu):
        layer = lib.layers.Dense(2)
        with pytest.raises(ValueError, match="Cannot quantize a layer that isn't yet built"):
            layer.quantize("int8")
        layer.build((None, 3))
        with pytest.raises(ValueError, match="Invalid quantization mode"):
            layer.quantize("int3")
        with pytest.raises(ValueError, match="You must provide either `mode` or `config`"):
            layer.quantize()
        with pytest.raises(ValueError, match="Contradictory arguments"):
            layer.quantize("int4", config=lib.quantizers.Int8QuantizationConfig())
        layer.quantize("int8")
        with pytest.raises(ValueError, match="is already quantized"):
            layer.quantize("int8")

        class MyDense(lib.layers.Dense):
            pass
        sub = MyDense(2)
        sub.build((None, 3))
        with pytest.raises(NotImplementedError, match="MyDense does not have a `quantize` method"):
            sub.quantize("int8")
        norm = lib.layers.LayerNormalization()
        norm.build((None, 3))
        with pytest.raises(NotImplementedError, match="LayerNormalization does not have a `quantize` method"):
            norm.quantize("int8")


def test_setting_a_quantized_policy_quantizes_like_keras(keras):
    kl, dl = _pair(keras, "Dense", (3,), {}, (4,))
    kl.dtype_policy = "int8_from_float32"
    dl.dtype_policy = "int8_from_float32"
    assert kl.quantization_mode == dl.quantization_mode == "int8"
    for k, d in zip(_values(keras, kl.weights), dl.get_weights()):
        np.testing.assert_array_equal(d, k)
