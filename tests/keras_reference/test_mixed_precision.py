"""Dtype policies and mixed_float16 against real Keras (torch backend, CPU, which computes float16 too).

The policies' API and configs must be Keras's; a layer or model under mixed_float16 must give Keras's float16
outputs (to a float16 tolerance), keep float32 variables and float32 gradients as Keras does, and train one
step under the same loss scale."""

import numpy as np
import pytest

import dlgpu

from .kref import _call, dlgpu_forward_and_grads, keras_forward_and_grads, make_inputs, make_layer, randomize_weights
from .layer_cases import C

pytestmark = [pytest.mark.filterwarnings("ignore::DeprecationWarning"),
              pytest.mark.filterwarnings("ignore:You passed `rms_scaling=True`:UserWarning")]

NAMES = ["float32", "float16", "float64", "mixed_float16", "int32", "bool",
         # the quantized policies (dlgpu quantizes int8 only, but names, parses and saves them all as Keras)
         "int8_from_float32", "int8_from_float64", "int4_from_float32", "int4/128_from_float32",
         "float8_from_float32", "float8_from_mixed_float16"]


@pytest.fixture
def both_mixed(keras):
    """The global policy of Keras and of dlgpu set to mixed_float16 for one test."""
    keras.config.set_dtype_policy("mixed_float16")
    dlgpu.config.set_dtype_policy("mixed_float16")
    yield keras
    keras.config.set_dtype_policy("float32")
    dlgpu.config.set_dtype_policy("float32")


@pytest.mark.parametrize("name", NAMES)
def test_policies_match_keras(keras, name):
    k, d = keras.dtype_policies.get(name), dlgpu.dtype_policies.get(name)
    assert (d.name, d.compute_dtype, d.variable_dtype, d.quantization_mode, repr(d)) == \
        (k.name, k.compute_dtype, k.variable_dtype, k.quantization_mode, repr(k))
    assert dlgpu.dtype_policies.serialize(d) == keras.dtype_policies.serialize(k)
    assert dlgpu.dtype_policies.deserialize(keras.dtype_policies.serialize(k)) == d
    assert keras.dtype_policies.deserialize(dlgpu.dtype_policies.serialize(d)) == k
    assert d.get_config() == k.get_config()


def test_module_names_match_keras(keras):
    for module, names in ((dlgpu.mixed_precision, ("DTypePolicy", "Policy", "dtype_policy", "global_policy",
                                                   "set_dtype_policy", "set_global_policy", "LossScaleOptimizer")),
                          (dlgpu.dtype_policies, ("DTypePolicy", "FloatDTypePolicy", "get", "serialize",
                                                  "deserialize"))):
        keras_module = getattr(keras, module.__name__.split(".")[-1])
        assert all(hasattr(keras_module, n) and hasattr(module, n) for n in names)
    for name in ("dtype_policy", "set_dtype_policy"):
        assert hasattr(keras.config, name) and hasattr(dlgpu.config, name)
    assert dlgpu.FloatDTypePolicy("float16") == dlgpu.DTypePolicy("float16")
    assert keras.FloatDTypePolicy("float16") == keras.DTypePolicy("float16")
    # Keras has bfloat16 policies; dlgpu refuses them by name (tests/test_mixed_precision.py)
    assert keras.DTypePolicy("mixed_bfloat16").compute_dtype == "bfloat16"


@pytest.mark.parametrize("dtype", [None, "float32", "mixed_float16", "float64"])
def test_layer_dtype_entries_match_keras(keras, dtype):
    kl, dl = keras.layers.Dense(2, dtype=dtype), dlgpu.layers.Dense(2, dtype=dtype)
    assert dl.get_config()["dtype"] == kl.get_config()["dtype"]
    assert (dl.dtype, dl.compute_dtype, dl.variable_dtype) == (kl.dtype, kl.compute_dtype, kl.variable_dtype)
    # each reads the other's config, in the dict form and in the older name form
    assert keras.layers.Dense.from_config(dl.get_config()).dtype_policy == kl.dtype_policy
    assert dlgpu.layers.Dense.from_config(kl.get_config()).dtype_policy == dl.dtype_policy
    named = {**kl.get_config(), "dtype": kl.dtype_policy.name}
    assert dlgpu.layers.Dense.from_config(named).dtype_policy.name == kl.dtype_policy.name
    kmodel = keras.Sequential([keras.Input((3,)), kl], name="s")
    dmodel = dlgpu.Sequential([dlgpu.Input((3,)), dl], name="s")
    assert dmodel.get_config()["dtype"] == kmodel.get_config()["dtype"]


# The layers a mixed model is made of, from the table of tests/keras_reference/layer_cases.py.
MIXED_CASES = [c for c in C if c[0] in ("Dense", "EinsumDense", "Embedding", "Conv1D", "Conv2D", "LSTM", "GRU",
                                         "SimpleRNN", "BatchNormalization", "LayerNormalization",
                                         "GroupNormalization", "MultiHeadAttention", "Softmax", "Attention")]


def _ids():
    seen = {}
    out = []
    for name, *_ in MIXED_CASES:
        seen[name] = seen.get(name, -1) + 1
        out.append(f"{name}-{seen[name]}")
    return out


@pytest.mark.parametrize("name,kwargs,shapes,opts", MIXED_CASES, ids=_ids())
def test_layer_under_mixed_float16_matches_keras(keras, name, kwargs, shapes, opts):
    import torch
    positional = opts.get("positional", False)
    call = opts.get("call", {})
    kwargs = {**kwargs, "dtype": "mixed_float16"}
    xs = make_inputs(shapes, opts)
    kl, dl = make_layer(keras, name, kwargs), make_layer(dlgpu, name, kwargs)
    _call(kl, [torch.tensor(a) for a in xs], call, positional)
    randomize_weights(kl)
    _call(dl, [dlgpu.Tensor(a) for a in xs], call, positional)
    dl.set_weights(kl.get_weights())
    assert [w.dtype for w in dl.get_weights()] == [w.dtype for w in kl.get_weights()]  # float32, as Keras's
    for training in ([False, True] if opts.get("train") else [False]):
        kwargs_call = dict(call, training=True) if training else call
        kout, kgrads = keras_forward_and_grads(kl, xs, kwargs_call, positional)
        dout, dgrads = dlgpu_forward_and_grads(dl, xs, kwargs_call, positional)
        assert [o.dtype for o in dout] == [o.dtype for o in kout]
        for a, b in zip(kout, dout):
            # float16 keeps 11 significant bits: both round the same float32 products differently
            np.testing.assert_allclose(b.astype(np.float32), a.astype(np.float32), rtol=2e-2, atol=2e-2)
        if not opts.get("no_grad"):
            for i, (a, b) in enumerate(zip(kgrads, dgrads)):
                assert (a is None) == (b is None), f"gradient {i}"
                if a is not None:
                    assert b.dtype == a.dtype, f"gradient {i}"
                    scale = max(1.0, float(np.abs(a).max()))
                    np.testing.assert_allclose(b, a, rtol=3e-2, atol=3e-2 * scale, err_msg=f"gradient {i}")
    for a, b in zip(kl.get_weights(), dl.get_weights()):  # moving statistics after a training call
        np.testing.assert_allclose(b, a, rtol=1e-3, atol=1e-3)


def _model(lib):
    """A small model of the layer kinds mixed precision touches most, under the global policy."""
    L = lib.layers
    inputs = lib.Input((6, 6, 2))
    x = L.Conv2D(4, 3, activation="relu")(inputs)
    x = L.BatchNormalization()(x)
    x = L.Reshape((4, 16))(x)
    x = L.LSTM(6, return_sequences=True)(x)
    x = L.MultiHeadAttention(2, 3)(x, x)
    x = L.LayerNormalization()(x)
    x = L.Flatten()(x)
    x = L.Dense(5, activation="relu")(x)
    outputs = L.Dense(3, activation="softmax", dtype="float32")(x)
    return lib.Model(inputs, outputs)


def test_model_under_mixed_float16_matches_keras(both_mixed):
    keras = both_mixed
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, (8, 6, 6, 2)).astype(np.float32)
    y = rng.integers(0, 3, 8)
    kmodel, dmodel = _model(keras), _model(dlgpu)
    dmodel.set_weights(kmodel.get_weights())
    for klayer, dlayer in zip(kmodel.layers, dmodel.layers):
        assert dlayer.dtype_policy.name == klayer.dtype_policy.name, klayer.name
        assert str(dlayer.output.dtype) == str(klayer.output.dtype), klayer.name
    np.testing.assert_allclose(dmodel.predict(x, verbose=0), kmodel.predict(x, verbose=0), atol=2e-2)

    for model in (kmodel, dmodel):
        model.compile(optimizer=model.__class__.__module__.startswith("keras") and keras.optimizers.SGD(0.1)
                      or dlgpu.optimizers.SGD(0.1), loss="sparse_categorical_crossentropy")
    assert type(dmodel.optimizer).__name__ == type(kmodel.optimizer).__name__ == "LossScaleOptimizer"
    for _ in range(2):
        kloss = kmodel.train_on_batch(x, y)
        dloss = dmodel.train_on_batch(x, y)
        np.testing.assert_allclose(dloss, kloss, rtol=2e-2)
    # the same steps taken or skipped, the same scale, and weights that moved alike
    assert float(dmodel.optimizer.dynamic_scale.numpy()) == float(keras.ops.convert_to_numpy(
        kmodel.optimizer.dynamic_scale))
    for a, b in zip(kmodel.get_weights(), dmodel.get_weights()):
        assert b.dtype == a.dtype == np.float32
        np.testing.assert_allclose(b, a, rtol=2e-2, atol=2e-2)


def test_mixed_model_files_cross_over(both_mixed, tmp_path):
    keras = both_mixed
    model = _model(dlgpu)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    kmodel = _model(keras)
    kmodel.save(tmp_path / "k.keras")
    dlgpu.config.set_dtype_policy("float32")
    keras.config.set_dtype_policy("float32")
    model.save(tmp_path / "m.keras")
    loaded = keras.models.load_model(tmp_path / "m.keras")
    # (an InputLayer's config has no policy: it takes the global one where it is loaded, in both)
    assert [l.dtype_policy.name for l in loaded.layers[1:]] == [l.dtype_policy.name for l in model.layers[1:]]
    assert loaded.layers[-1].dtype_policy.name == "float32" and loaded.layers[1].compute_dtype == "float16"
    x = np.random.default_rng(1).uniform(-1, 1, (4, 6, 6, 2)).astype(np.float32)
    np.testing.assert_allclose(loaded.predict(x, verbose=0), model.predict(x, verbose=0), atol=2e-2)
    from_keras = dlgpu.models.load_model(tmp_path / "k.keras")
    assert [l.dtype_policy.name for l in from_keras.layers[1:]] == [l.dtype_policy.name for l in kmodel.layers[1:]]
    np.testing.assert_allclose(from_keras.predict(x, verbose=0), kmodel.predict(x, verbose=0), atol=2e-2)
