"""int8 post-training quantization (dlgpu/layers/quantized.py, dlgpu/quantizers.py): a trained MLP keeps its
accuracy, trains its biases afterwards, saves and loads; the int8 arithmetic against numpy references; the
refusals.  Values against real Keras: tests/keras_reference/test_quantization.py."""

import warnings

import numpy as np
import pytest

import dlgpu
from dlgpu import dtype_policies, layers, quantizers
from dlgpu.layers import quantized
from dlgpu.models import load_model


def _task(n=512, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 8)).astype("float32")
    y = (x[:, :4].sum(1) > x[:, 4:].sum(1)).astype("int64")
    return x, y


def _trained_mlp():
    dlgpu.set_random_seed(0)
    x, y = _task()
    model = dlgpu.Sequential([dlgpu.Input((8,)), layers.Dense(32, activation="relu", name="hidden"),
                              layers.Dropout(0.1), layers.Dense(2, activation="softmax", name="out")])
    model.compile(dlgpu.optimizers.Adam(0.01), "sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(x, y, epochs=15, batch_size=64, verbose=0)
    return model, x, y


def test_quantized_mlp_keeps_its_accuracy_trains_its_biases_and_saves(tmp_path):
    model, x, y = _trained_mlp()
    float_probs = model.predict(x, verbose=0)
    float_accuracy = model.evaluate(x, y, verbose=0)[1]
    assert float_accuracy > 0.9
    with pytest.warns(UserWarning, match="Dropout does not have a `quantize` method"):
        model.quantize("int8")
    assert [layer.dtype_policy.name for layer in model.layers] == ["int8_from_float32", "float32", "int8_from_float32"]
    assert [(w.path, w.dtype, w.trainable) for w in model.weights] == [
        (f"{model.name}/hidden/bias", "float32", True), (f"{model.name}/hidden/kernel", "int8", False),
        (f"{model.name}/hidden/kernel_scale", "float32", False), (f"{model.name}/out/bias", "float32", True),
        (f"{model.name}/out/kernel", "int8", False), (f"{model.name}/out/kernel_scale", "float32", False)]
    probs = model.predict(x, verbose=0)
    assert np.abs(probs - float_probs).max() < 0.05
    assert abs(model.evaluate(x, y, verbose=0)[1] - float_accuracy) <= 0.02
    model.summary(print_fn=lambda *a, **k: None)

    # training goes on for what Keras leaves trainable: the biases; the int8 kernels stay as they are
    kernel, bias = model.get_layer("hidden").kernel.numpy(), model.get_layer("hidden").bias.numpy()
    assert [w.name for w in model.trainable_weights] == ["bias", "bias"]
    model.fit(x, y, epochs=1, batch_size=64, verbose=0)
    np.testing.assert_array_equal(model.get_layer("hidden").kernel.numpy(), kernel)
    assert not np.array_equal(model.get_layer("hidden").bias.numpy(), bias)

    expected = model.predict(x[:16], verbose=0)
    for name in ("model.dlgpu", "model.keras"):
        # the optimizer still holds the float kernels' slots (Keras's keeps them too), so dlgpu saves the
        # model without its optimizer state and says so
        with pytest.warns(UserWarning, match="without its optimizer's state"):
            model.save(tmp_path / name)
        loaded = load_model(tmp_path / name)
        assert [layer.dtype_policy.name for layer in loaded.layers] == \
            ["int8_from_float32", "float32", "int8_from_float32"]
        assert [w.dtype for w in loaded.weights] == [w.dtype for w in model.weights]
        np.testing.assert_array_equal(loaded.predict(x[:16], verbose=0), expected)
        assert loaded.get_layer("hidden").get_config() == model.get_layer("hidden").get_config()
    model.save_weights(tmp_path / "w.weights.h5")
    fresh = dlgpu.Sequential([dlgpu.Input((8,)), layers.Dense(32, activation="relu", name="hidden"),
                              layers.Dropout(0.1), layers.Dense(2, activation="softmax", name="out")])
    fresh.quantize("int8", filters=["^hidden$", "^out$"])
    fresh.load_weights(tmp_path / "w.weights.h5")
    np.testing.assert_array_equal(fresh.predict(x[:16], verbose=0), expected)


def test_int8_dense_values_and_input_gradient_against_numpy():
    rng = np.random.default_rng(0)
    layer = layers.Dense(4, use_bias=False)
    layer.build((None, 3, 6))
    kernel = rng.normal(size=(6, 4)).astype("float32")
    layer.set_weights([kernel])
    layer.quantize("int8")
    # the weights: one scale per column, 127 / max|column|
    scale = 127 / (np.abs(kernel).max(0) + 1e-7)
    np.testing.assert_allclose(layer.kernel_scale.numpy(), scale, rtol=1e-6)
    np.testing.assert_array_equal(layer.kernel.numpy(), np.clip(np.round(kernel * scale), -127, 127))
    # the forward: inputs quantized per row, an integer product, both scales divided out
    x = rng.normal(size=(2, 3, 6)).astype("float32")
    x_scale = 127 / (np.abs(x).max(-1, keepdims=True) + 1e-7)
    xq = np.round(x * x_scale)
    expected = (xq.astype(np.int64) @ layer.kernel.numpy().astype(np.int64)) / (x_scale * layer.kernel_scale.numpy())
    xt = dlgpu.Tensor(x)
    with dlgpu.GradientTape() as tape:
        tape.watch(xt)
        out = layer(xt)
        loss = dlgpu.ops.sum(out * dlgpu.Tensor(np.arange(24, dtype="float32").reshape(2, 3, 4)))
    np.testing.assert_allclose(out.numpy(), expected, rtol=1e-5, atol=1e-6)
    assert out.dtype == "float32"
    # Keras's custom gradient: through the dequantized kernel (rounding passes the gradient straight through)
    upstream = np.arange(24, dtype="float32").reshape(2, 3, 4)
    dequantized = layer.kernel.numpy() / layer.kernel_scale.numpy()
    np.testing.assert_allclose(tape.gradient(loss, xt).numpy(), upstream @ dequantized.T, rtol=1e-5, atol=1e-5)
    # close to the float layer: half a step of each scale
    np.testing.assert_allclose(out.numpy(), x @ kernel, atol=0.1)


def test_integer_products_are_exact_beyond_float32s_range():
    """int8 sums over more than 1024 terms leave float32's exact integers: the product goes in pieces."""
    rng = np.random.default_rng(1)
    a = rng.integers(-127, 128, (3, 2500)).astype("int8")
    b = rng.integers(-127, 128, (2500, 5)).astype("int8")
    a[0], b[:, 0] = 127, 127  # the largest possible sums
    exact = a.astype(np.int64) @ b.astype(np.int64)
    np.testing.assert_array_equal(quantized.int_matmul(a, b), exact.astype("float32"))
    np.testing.assert_array_equal(quantized.int_einsum("ab,bc->ac", a, b, 2500), exact.astype("float32"))
    assert quantized.int_matmul(a, b).dtype == np.float32


def test_einsum_with_ellipsis_quantizes():
    """Keras's EinsumDense.quantize fails on "..." equations (it takes the input's rank for its shape); dlgpu
    spells the elided axes out and quantizes them like the others."""
    rng = np.random.default_rng(2)
    layer = layers.EinsumDense("...b,bc->...c", 4, bias_axes="c")
    layer.build((None, 3, 5))
    kernel = rng.normal(size=(5, 4)).astype("float32")
    layer.set_weights([kernel, np.zeros(4, "float32")])
    x = rng.normal(size=(2, 3, 5)).astype("float32")
    layer.quantize("int8")
    assert layer.kernel_scale.shape == (1, 1, 4)
    np.testing.assert_allclose(layer(x).numpy(), x @ kernel, atol=0.1)


def test_embedding_int8_rows():
    rng = np.random.default_rng(3)
    layer = layers.Embedding(6, 5, mask_zero=True)
    layer.build((None, 4))
    table = rng.normal(size=(6, 5)).astype("float32")
    layer.set_weights([table])
    layer.quantize("int8")
    assert [w.name for w in layer.weights] == ["embeddings", "embeddings_scale"] and not layer.trainable_weights
    ids = np.array([[0, 1, 5, 2]])
    out = layer(ids)
    np.testing.assert_allclose(out.numpy(), table[ids], atol=np.abs(table).max() / 127)
    np.testing.assert_array_equal(out._keras_mask.numpy(), ids != 0)
    with pytest.raises(ValueError, match=r"ids must lie in \[0, 6\)"):
        layer(np.array([[6]]))


def test_quantized_layer_from_its_config():
    """A layer made with an int8 policy (a quantized model's config) builds int8 variables."""
    layer = layers.Dense(3, dtype="int8_from_float32")
    layer.build((None, 4))
    assert [(w.name, w.dtype) for w in layer.weights] == [("bias", "float32"), ("kernel", "int8"),
                                                         ("kernel_scale", "float32")]
    clone = layers.Dense.from_config(layer.get_config())
    clone.build((None, 4))
    assert clone.quantization_mode == "int8" and isinstance(clone.inputs_quantizer, quantizers.AbsMaxQuantizer)
    assert clone(np.ones((1, 4), "float32")).shape == (1, 3)


def test_float8_rounding_matches_ml_dtypes():
    ml_dtypes = pytest.importorskip("ml_dtypes")
    values = np.concatenate([np.random.default_rng(4).normal(scale=s, size=2000) for s in (1e-4, 0.01, 1, 100)])
    values = np.concatenate([values, [0.0, -0.0, 448.0, -448.0, 2.0 ** -9, 2.0 ** -10, 3 * 2.0 ** -11]]).astype("float32")
    for dtype, top in (("float8_e4m3fn", 448.0), ("float8_e5m2", 57344.0)):
        expected = np.clip(values, -top, top).astype(getattr(ml_dtypes, dtype)).astype("float32")
        got = quantizers.quantize_and_dequantize(values, np.float32(1.0), dtype, "float32").numpy()
        np.testing.assert_array_equal(got, expected)


# -- refusals ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("mode,why", [("int4", "packed 4-bit"), ("float8", "float8 training")])
def test_int4_and_float8_are_refused_by_name(mode, why):
    layer = layers.Dense(2)
    layer.build((None, 3))
    with pytest.raises(NotImplementedError, match=f"'{mode}' is not implemented by dlgpu.*{why}"):
        layer.quantize(mode)
    assert layer.quantization_mode is None and layer.kernel.dtype == "float32"
    model = dlgpu.Sequential([dlgpu.Input((3,)), layers.Dense(2), layers.Embedding(4, 2)])
    with pytest.raises(NotImplementedError, match=f"'{mode}' is not implemented"):
        model.quantize(mode)
    assert all(layer.quantization_mode is None for layer in model.layers)  # nothing changed
    with pytest.raises(NotImplementedError, match=f"'{mode}' is not implemented"):
        layers.Dense(2, dtype=f"{mode}_from_float32")
    for mode_name in ("gptq", "awq"):
        with pytest.raises(ValueError, match=f"For {mode_name.upper()}, you must pass"):
            layer.quantize(mode_name)


def test_bad_arguments_are_refused():
    with pytest.raises(NotImplementedError, match=r"Layer 'c' \(Conv2D\).*quantized.*only Dense, EinsumDense"):
        layers.Conv2D(2, 3, dtype="int8_from_float32", name="c")
    with pytest.raises(NotImplementedError, match="quantized global policy"):
        dlgpu.config.set_dtype_policy("int8_from_float32")
    assert dtype_policies.dtype_policy().name == "float32"
    with pytest.raises(ValueError, match="compute_dtype='float16'"):
        dtype_policies.get("int8_from_mixed_float16")
    with pytest.raises(ValueError, match="must be None or a keras.quantizers.QuantizationConfig"):
        layers.Dense(2, quantization_config="int8")
    with pytest.raises(NotImplementedError, match="Int4QuantizationConfig.*'int4'"):
        layers.Dense(2, quantization_config={"class_name": "Int4QuantizationConfig", "config": {}})
    with pytest.raises(NotImplementedError, match="ReversibleEmbedding does not have a `quantize`"):
        rev = layers.ReversibleEmbedding(4, 2)
        rev.build((None, 3))
        rev.quantize("int8")
    model = dlgpu.Sequential([dlgpu.Input((3,)), layers.Dense(2)])
    with pytest.raises(ValueError, match="`filters` argument must be"):
        model.quantize("int8", filters=3)
    with pytest.raises(ValueError, match="Unrecognized keyword arguments"):
        model.quantize("int8", bits=8)
    with pytest.raises(ValueError, match="Argument `config` must be an instance of `QuantizationConfig`"):
        model.quantize(config={"mode": "int8"})
    with pytest.raises(TypeError, match="expected a float input"):
        quantizers.abs_max_quantize(np.ones((2, 2), "int32"), -1)
    with pytest.raises(ValueError, match="axis 2 is out of range"):
        quantizers.abs_max_quantize(np.ones((2, 2), "float32"), 2)
    with pytest.raises(ValueError, match=r"within the interval \[-128, 127\]"):
        quantizers.AbsMaxQuantizer(value_range=(-200, 200))
    with pytest.raises(ValueError, match="quantized_dtype must be one of"):
        quantizers.quantize_and_dequantize(np.ones(2, "float32"), 1.0, "int8", "float32")
    with pytest.raises(ValueError, match="Could not interpret quantizer identifier"):
        quantizers.get(3)


def test_filters_pick_the_layers():
    model = dlgpu.Sequential([dlgpu.Input((3,)), layers.Dense(4, name="keep"), layers.Dense(2, name="q1"),
                              layers.Dense(2, name="q2")])
    model.quantize("int8", filters=lambda layer: layer.name != "keep")
    assert [layer.quantization_mode for layer in model.layers] == [None, "int8", "int8"]
    model = dlgpu.Sequential([dlgpu.Input((3,)), layers.Dense(4, name="keep"), layers.Dense(2, name="q1")])
    model.quantize("int8", filters="^q")
    assert [layer.quantization_mode for layer in model.layers] == [None, "int8"]


def test_quantizers_get_serialize():
    assert isinstance(quantizers.get("abs_max_quantizer"), quantizers.AbsMaxQuantizer)
    assert quantizers.get(None) is None and dlgpu.Quantizer is quantizers.Quantizer
    config = quantizers.serialize(quantizers.AbsMaxQuantizer(axis=(0, 1), value_range=(-8, 7)))
    again = quantizers.get(config)
    assert (again.axis, again.value_range) == ((0, 1), (-8, 7))
    assert quantizers.Quantizer()(5) == 5


def test_onnx_export_refuses_quantized_layers(tmp_path):
    pytest.importorskip("onnx")
    model = dlgpu.Sequential([dlgpu.Input((3,)), layers.Dense(2)])
    model.quantize("int8")
    with pytest.raises(Exception, match="is quantized"):
        model.export(tmp_path / "m.onnx")


@pytest.mark.gpu
def test_on_gpu_matches_cpu():
    """Quantizing on the GPU gives the CPU's int8 values and scales; the quantized model's outputs and
    gradients agree."""
    rng = np.random.default_rng(5)
    x = rng.normal(size=(4, 3, 6)).astype("float32")
    results = {}
    for device in ("cpu", "gpu"):
        with dlgpu.device(device):
            dlgpu.set_random_seed(0)
            model = dlgpu.Sequential([dlgpu.Input((3, 6)), layers.Dense(1100, activation="relu"),
                                      layers.EinsumDense("abc,cd->abd", (3, 4), bias_axes="d")])
            if not results:
                weights = model.get_weights()
            model.set_weights(weights)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                model.quantize("int8")
            xt = dlgpu.ops.convert_to_tensor(x)
            with dlgpu.GradientTape() as tape:
                tape.watch(xt)
                loss = dlgpu.ops.sum(dlgpu.ops.square(model(xt)))
            grads = tape.gradient(loss, [xt] + model.trainable_weights)
            results[device] = (model.get_weights(), model(xt).numpy(), [g.numpy() for g in grads])
    for cpu, gpu in zip(results["cpu"][0], results["gpu"][0]):
        np.testing.assert_array_equal(gpu, cpu)
    np.testing.assert_allclose(results["gpu"][1], results["cpu"][1], rtol=1e-4, atol=1e-4)
    for cpu, gpu in zip(results["cpu"][2], results["gpu"][2]):
        np.testing.assert_allclose(gpu, cpu, rtol=1e-3, atol=1e-3)
