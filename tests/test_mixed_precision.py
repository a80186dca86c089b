"""Dtype policies and mixed precision (dlgpu/dtype_policies.py, the Layer's autocast, compile's loss scaling).

Keras is the reference for the policies' API and configs and for the values of a mixed_float16 model:
tests/keras_reference/test_mixed_precision.py.  Here: what dlgpu itself promises -- variables stay float32,
float16 inside the layers, float32 losses, the loss scale moving, saving, the float32 fast paths kept
for float32 models only, and the GPU against the CPU.
"""

import numpy as np
import pytest

import dlgpu
from dlgpu import dtype_policies, layers, mixed_precision

F16, F32 = "float16", "float32"


@pytest.fixture
def mixed():
    """The global policy set to mixed_float16 for one test (tests/conftest.py puts float32 back)."""
    mixed_precision.set_global_policy("mixed_float16")
    yield
    mixed_precision.set_global_policy("float32")


def _data(n=64, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 6)).astype(np.float32)
    y = (x[:, :3].sum(axis=1) > 0).astype(np.int64)
    return x, y


# -- the policies -----------------------------------------------------------------------------------------
def test_policy_names_give_compute_and_variable_dtypes():
    cases = {"float32": (F32, F32), "float16": (F16, F16), "float64": ("float64", "float64"),
             "mixed_float16": (F16, F32), "int32": ("int32", "int32")}
    for name, (compute, variable) in cases.items():
        policy = dlgpu.DTypePolicy(name)
        assert (policy.name, policy.compute_dtype, policy.variable_dtype) == (name, compute, variable)
        assert policy.quantization_mode is None and repr(policy) == f'<DTypePolicy "{name}">'
    assert dlgpu.FloatDTypePolicy("mixed_float16") == dlgpu.DTypePolicy("mixed_float16") != dlgpu.DTypePolicy(F16)
    assert mixed_precision.Policy is dlgpu.DTypePolicy is dlgpu.config.DTypePolicy
    assert mixed_precision.LossScaleOptimizer is dlgpu.optimizers.LossScaleOptimizer


def test_get_serialize_deserialize():
    policy = dtype_policies.get("mixed_float16")
    config = dtype_policies.serialize(policy)
    assert config == {"module": "keras", "class_name": "DTypePolicy", "config": {"name": "mixed_float16"},
                      "registered_name": None}
    assert dtype_policies.deserialize(config) == policy == dtype_policies.get(config)
    assert dtype_policies.get({"class_name": "FloatDTypePolicy", "config": {"name": F16}}).compute_dtype == F16
    assert dtype_policies.get(np.float64).name == "float64" and dtype_policies.get(policy) is policy
    assert dtype_policies.get(None) is dtype_policies.dtype_policy()
    with pytest.raises(ValueError, match="Cannot interpret `dtype`"):
        dtype_policies.get(3.5)
    with pytest.raises(ValueError, match="unknown dtype policy class 'Nope'"):
        dtype_policies.deserialize({"class_name": "Nope", "config": {}})


@pytest.mark.parametrize("name", ["bfloat16", "mixed_bfloat16"])
def test_bfloat16_is_refused_naming_the_policy_and_why(name):
    with pytest.raises(NotImplementedError, match=f"DTypePolicy\\('{name}'\\): dlgpu has no bfloat16.*numpy and CuPy"):
        dlgpu.DTypePolicy(name)
    with pytest.raises(NotImplementedError, match=f"Layer 'b' \\(Dense\\): invalid `dtype`.*'{name}'"):
        layers.Dense(2, dtype=name, name="b")
    with pytest.raises(NotImplementedError, match=name):
        mixed_precision.set_global_policy(name)
    assert mixed_precision.global_policy().name == F32


@pytest.mark.parametrize("name", ["gptq/4/128_from_float32", "awq/4/128_from_float32"])
def test_calibrated_quantized_policies_are_refused_by_name(name):
    # int8, int4 and float8 policies exist (tests/test_quantization.py); GPTQ and AWQ need calibration
    with pytest.raises(NotImplementedError, match=f"'{name}'.*GPTQ and AWQ"):
        dtype_policies.get(name)
    with pytest.raises(NotImplementedError, match="GPTQDTypePolicy is the policy of a GPTQ or AWQ"):
        dtype_policies.deserialize({"class_name": "GPTQDTypePolicy",
                                    "config": {"mode": "gptq/4/128", "source_name": "float32"}})


def test_global_policy_is_what_new_layers_take(mixed):
    assert mixed_precision.global_policy() == dlgpu.config.dtype_policy() == dlgpu.DTypePolicy("mixed_float16")
    dense, plain = layers.Dense(2), layers.Dense(2, dtype="float32")
    assert (dense.dtype_policy.name, dense.compute_dtype, dense.variable_dtype, dense.dtype) == \
        ("mixed_float16", F16, F32, F32)
    assert plain.compute_dtype == F32
    assert dlgpu.Input((3,)).dtype == F32  # an Input is floatx whatever the policy, as in Keras


# -- the layer side -----------------------------------------------------------------------------------------
def test_mixed_layer_casts_inputs_and_reads_float32_variables_as_float16():
    dense = layers.Dense(3, dtype="mixed_float16")
    x = np.random.default_rng(0).normal(size=(4, 5)).astype(np.float32)
    with dlgpu.GradientTape() as tape:
        y = dense(x)
        loss = dlgpu.ops.sum(dlgpu.ops.cast(y, F32))
    assert y.dtype == F16 and dense.kernel.dtype == dense.bias.dtype == F32
    grads = tape.gradient(loss, dense.trainable_variables)
    assert [g.dtype for g in grads] == [F32, F32]  # back through the cast into the float32 variables
    ref = x.astype(np.float16) @ dense.kernel.numpy().astype(np.float16) + dense.bias.numpy().astype(np.float16)
    np.testing.assert_allclose(y.numpy().astype(np.float32), ref.astype(np.float32), rtol=1e-2, atol=1e-2)
    np.testing.assert_allclose(grads[0].numpy(), np.repeat(x.sum(0)[:, None], 3, 1), rtol=1e-2, atol=1e-2)
    # integer inputs are cast to the compute dtype too (float layers take no integers), float16 ones kept
    assert dense(np.ones((2, 5), np.int32)).dtype == F16
    # outside the layer's call the variables read as they are
    assert (dlgpu.ops.add(dense.kernel, 0.0)).dtype == F32


def test_autocast_false_keeps_inputs_and_variables_in_their_dtypes():
    class Probe(layers.Layer):
        def build(self, shape):
            self.w = self.add_weight((shape[-1],), "ones")
            self.keep = self.add_weight((shape[-1],), "ones", autocast=False)

        def call(self, x):
            return x, dlgpu.ops.multiply(self.w, 1.0), dlgpu.ops.multiply(self.keep, 1.0)

    x = np.ones((2, 3), np.float32)
    seen = [t.dtype for t in Probe(dtype="mixed_float16")(x)]
    assert seen == [F16, F16, F32]  # the variable made with autocast=False stays float32
    # autocast=False: the inputs keep their dtype; a mixed layer still reads its variables in float16 when
    # it opens the scope itself (Keras's rule: autocast=False only clears a scope opened around it)
    seen = [t.dtype for t in Probe(dtype="mixed_float16", autocast=False)(x)]
    assert seen == [F32, F16, F32]
    outer = dlgpu.Sequential([Probe(dtype="float32", autocast=False)], name="outer")
    outer.dtype_policy = "mixed_float16"
    assert [t.dtype for t in outer(x)] == [F16, F32, F32]  # the Sequential cast its input, as Keras's does


def test_a_float32_layer_inside_a_mixed_model_computes_in_float32(mixed):
    inputs = dlgpu.Input((4,))
    hidden = layers.Dense(8, activation="relu")(inputs)
    outputs = layers.Dense(2, dtype="float32")(hidden)
    model = dlgpu.Model(inputs, outputs)
    assert (hidden.dtype, outputs.dtype) == (F16, F32)
    y = model(np.ones((3, 4), np.float32))
    assert y.dtype == F32  # the second Dense read its kernel in float32 and cast its float16 input up
    inner = dlgpu.Model(inputs, hidden)(np.ones((3, 4), np.float32))
    assert inner.dtype == F16


def test_other_tensor_arguments_are_cast_too(mixed):
    mha = layers.MultiHeadAttention(2, 4)
    q = np.random.default_rng(0).normal(size=(2, 3, 8)).astype(np.float32)
    v = np.random.default_rng(1).normal(size=(2, 5, 8)).astype(np.float32)
    out, scores = mha(q, v, return_attention_scores=True)
    assert out.dtype == scores.dtype == F16
    assert {w.dtype for w in mha.weights} == {F32}
    np.testing.assert_allclose(scores.numpy().astype(np.float32).sum(-1), 1.0, atol=2e-3)


def test_normalization_statistics_and_softmax_are_computed_in_float32():
    # 300 * 300 overflows float16 (max 65504): the variance of these values only exists in float32
    x = np.full((4, 6), 300.0, np.float32)
    x[::2] = -300.0
    bn = layers.BatchNormalization(dtype="mixed_float16")
    out = bn(x, training=True)
    assert out.dtype == F16 and np.isfinite(out.numpy()).all()
    np.testing.assert_allclose(out.numpy().astype(np.float32), np.sign(x), atol=1e-2)
    assert {w.dtype for w in bn.weights} == {F32}
    np.testing.assert_allclose(bn.moving_variance.numpy(), 0.99 + 0.01 * 90000.0, rtol=1e-5)
    ln = layers.LayerNormalization(dtype="mixed_float16")(np.array([[300.0, -300.0, 300.0, -300.0]], np.float32))
    assert ln.dtype == F16
    np.testing.assert_allclose(ln.numpy().astype(np.float32), [[1, -1, 1, -1]], atol=1e-2)
    logits = dlgpu.Tensor(np.array([[20.0, 0.0, -20.0]], np.float16), dtype=F16)
    probs = dlgpu.ops.softmax(logits)
    assert probs.dtype == F16 and probs._logits[0].dtype == F32
    np.testing.assert_allclose(probs.numpy().astype(np.float32), [[1, 0, 0]], atol=1e-3)


def test_config_writes_the_policy_as_keras_and_reads_both_forms():
    dense = layers.Dense(2, dtype="mixed_float16")
    config = dense.get_config()
    assert config["dtype"] == {"module": "keras", "class_name": "DTypePolicy",
                               "config": {"name": "mixed_float16"}, "registered_name": None}
    assert layers.Dense.from_config(config).dtype_policy.name == "mixed_float16"
    assert layers.Dense.from_config({**config, "dtype": "mixed_float16"}).compute_dtype == F16
    assert layers.Dense.from_config({**config, "dtype": "float64"}).variable_dtype == "float64"
    assert layers.deserialize(layers.serialize(dense)).dtype_policy == dense.dtype_policy


# -- training -----------------------------------------------------------------------------------------------
def test_fit_under_mixed_float16_scales_the_loss_and_keeps_float32_variables(mixed):
    x, y = _data()
    model = dlgpu.Sequential([dlgpu.Input((6,)), layers.Dense(16, activation="relu"), layers.Dense(2),
                              layers.Activation("softmax", dtype="float32")])
    model.compile(optimizer=dlgpu.optimizers.Adam(0.01), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    assert isinstance(model.optimizer, dlgpu.optimizers.LossScaleOptimizer)
    assert model.optimizer.name == "loss_scale_optimizer"
    history = model.fit(x, y, epochs=8, batch_size=16, verbose=0)
    losses = history.history["loss"]
    assert losses[-1] < 0.7 * losses[0] and history.history["accuracy"][-1] > 0.8
    assert {v.dtype for v in model.variables} == {F32}
    assert model.predict(x[:4], verbose=0).dtype == np.float32
    assert model.layers[0](x[:4]).dtype == F16
    assert model._static_step() is None  # the planned float32 step never runs a mixed model


def test_float16_output_gives_a_float32_loss_and_metrics(mixed):
    x, y = _data()
    model = dlgpu.Sequential([dlgpu.Input((6,)), layers.Dense(8, activation="relu"), layers.Dense(2, activation="softmax")])
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    assert model(x[:2]).dtype == F16
    logs = model.evaluate(x, y, verbose=0, return_dict=True)
    assert np.isfinite(logs["loss"]) and 0.0 <= logs["accuracy"] <= 1.0
    loss = dlgpu.losses.SparseCategoricalCrossentropy()(y[:4], model(x[:4]))
    assert loss.dtype == F32


def test_loss_scale_halves_on_overflow_and_grows_after_finite_steps(mixed):
    dlgpu.set_random_seed(0)
    x, y = _data(32)
    model = dlgpu.Sequential([dlgpu.Input((6,)), layers.Dense(4), layers.Dense(2, dtype="float32")])
    # a scale past float16's range overflows every float16 gradient: those steps are skipped and halve it
    optimizer = dlgpu.optimizers.LossScaleOptimizer(dlgpu.optimizers.SGD(0.01), initial_scale=2.0 ** 40,
                                                    dynamic_growth_steps=2)
    model.compile(optimizer=optimizer, loss="mse")
    before = model.get_weights()
    model.fit(x, y.astype(np.float32)[:, None].repeat(2, 1), epochs=1, batch_size=32, verbose=0)
    assert float(optimizer.dynamic_scale.numpy()) == 2.0 ** 39
    assert all(np.array_equal(a, b) for a, b in zip(before, model.get_weights()))  # the step was skipped
    scales = []
    for _ in range(30):
        model.fit(x, y.astype(np.float32)[:, None].repeat(2, 1), epochs=1, batch_size=32, verbose=0)
        scales.append(float(optimizer.dynamic_scale.numpy()))
    assert min(scales) <= 2.0 ** 30  # down to where the float16 gradients are finite
    assert any(b == 2 * a for a, b in zip(scales, scales[1:]))  # and up again after finite steps
    assert not all(np.array_equal(a, b) for a, b in zip(before, model.get_weights()))


def test_auto_scale_loss_false_and_float32_models_keep_their_optimizer(mixed):
    model = dlgpu.Sequential([dlgpu.Input((6,)), layers.Dense(2)])
    model.compile(optimizer="adam", loss="mse", auto_scale_loss=False)
    assert type(model.optimizer).__name__ == "Adam"
    plain = dlgpu.Sequential([dlgpu.Input((6,)), layers.Dense(2, dtype="float32")], name="plain")
    plain.dtype_policy = "float32"
    plain.compile(optimizer="adam", loss="mse")
    assert type(plain.optimizer).__name__ == "Adam"


@pytest.mark.parametrize("suffix", [".keras", ".dlgpu"])
def test_save_and_load_keep_the_policies(tmp_path, suffix):
    x, y = _data(32)
    mixed_precision.set_global_policy("mixed_float16")
    try:
        inputs = dlgpu.Input((6,))
        hidden = layers.BatchNormalization()(layers.Dense(8, activation="relu")(inputs))
        outputs = layers.Dense(2, activation="softmax", dtype="float32")(hidden)
        model = dlgpu.Model(inputs, outputs)
        model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
        model.fit(x, y, epochs=2, verbose=0)
    finally:
        mixed_precision.set_global_policy("float32")
    path = tmp_path / f"model{suffix}"
    model.save(path)
    loaded = dlgpu.models.load_model(path)
    # (the InputLayer takes the global policy where it is loaded, as in Keras: its config has none)
    assert [l.dtype_policy.name for l in loaded.layers[1:]] == ["mixed_float16", "mixed_float16", "float32"]
    assert isinstance(loaded.optimizer, dlgpu.optimizers.LossScaleOptimizer)
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))
    assert {v.dtype for v in loaded.variables} == {F32}
    loaded.fit(x, y, epochs=1, verbose=0)


def test_sequential_config_keeps_its_own_policy(mixed):
    model = dlgpu.Sequential([dlgpu.Input((3,)), layers.Dense(2)])
    config = model.get_config()
    assert config["dtype"]["config"]["name"] == "mixed_float16"
    mixed_precision.set_global_policy("float32")
    clone = dlgpu.Sequential.from_config(config)
    assert clone.dtype_policy.name == "mixed_float16" and clone.layers[0].compute_dtype == F16


# -- the float32 path stays as it was ------------------------------------------------------------------------
def test_float32_models_keep_the_fused_paths():
    from dlgpu.models import fusion
    model = dlgpu.Sequential([dlgpu.Input((8, 8, 1)), layers.Conv2D(2, 3, activation="relu"), layers.MaxPooling2D(),
                              layers.Flatten(), layers.Dense(2, activation="softmax")])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    assert model._static_step() is not None and fusion.fusable(model.layers[0], model.layers[1])
    half = dlgpu.Sequential([dlgpu.Input((8, 8, 1)), layers.Conv2D(2, 3, activation="relu", dtype="mixed_float16"),
                             layers.MaxPooling2D(), layers.Flatten(), layers.Dense(2, activation="softmax")])
    half.compile(optimizer="adam", loss="sparse_categorical_crossentropy", auto_scale_loss=False)
    assert half._static_step() is None and not fusion.fusable(half.layers[0], half.layers[1])
    y = half(np.ones((2, 8, 8, 1), np.float32))
    assert y.dtype == F32  # the float16 pooled features met the float32 Dense, which cast them up


@pytest.mark.gpu
def test_mixed_model_on_the_gpu_matches_the_cpu():
    """float16 takes the generic CuPy path (never a float32 kernel): the same values as numpy's, and training
    keeps float32 variables on the device."""
    x, y = _data(32)
    mixed_precision.set_global_policy("mixed_float16")
    try:
        def build():
            dlgpu.set_random_seed(3)
            inputs = dlgpu.Input((6,))
            h = layers.Reshape((6, 1))(inputs)
            h = layers.Conv1D(4, 3, activation="relu")(h)
            h = layers.LSTM(5)(h)
            h = layers.BatchNormalization()(h)
            return dlgpu.Model(inputs, layers.Dense(2, activation="softmax", dtype="float32")(layers.Dense(8)(h)))
        with dlgpu.device("cpu"):
            cpu_model = build()
            expected = cpu_model.predict(x, verbose=0)
        with dlgpu.device("gpu"):
            gpu_model = build()
            gpu_model.set_weights(cpu_model.get_weights())
            np.testing.assert_allclose(gpu_model.predict(x, verbose=0), expected, rtol=1e-2, atol=1e-2)
            gpu_model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
            history = gpu_model.fit(x, y, epochs=3, verbose=0)
            assert np.isfinite(history.history["loss"]).all()
            assert {v.dtype for v in gpu_model.variables} == {F32}
            assert all(v.device.kind == "gpu" for v in gpu_model.variables)
    finally:
        mixed_precision.set_global_policy("float32")


def test_variables_are_c_contiguous():
    """The GPU's fused optimizer kernels update a variable as one flat C-ordered buffer; an orthogonal
    initializer returns a transposed Q (an LSTM's recurrent kernel), which the GPU Adam kernel refused."""
    assert dlgpu.Variable(np.ones((3, 4), np.float32).T).data.flags.c_contiguous
    lstm = layers.LSTM(3)
    lstm(np.ones((1, 2, 4), np.float32))
    assert all(v.data.flags.c_contiguous for v in lstm.weights)
