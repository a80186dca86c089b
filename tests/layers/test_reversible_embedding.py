"""ReversibleEmbedding: both directions, tied and untied, soft cap, masks, gradients, a small language model
trained with fit and saved/loaded, bad arguments, GPU against CPU.  Keras is compared in
tests/keras_reference (layer_cases.py rows and test_audio.py)."""

import numpy as np
import pytest

import dlgpu
from dlgpu import layers, ops
from dlgpu.models import load_model

from helpers import assert_model_on_gpu_matches_cpu, check_gradients
from layers.layer_test_case import run_layer_test


def test_contract_forward_tied_and_untied():
    run_layer_test(layers.ReversibleEmbedding, dict(input_dim=10, output_dim=4), (3, 5), (3, 5, 4),
                   expected_num_trainable_weights=1, input_dtype="int32")
    layer = run_layer_test(layers.ReversibleEmbedding, dict(input_dim=10, output_dim=4, tie_weights=False), (3, 5),
                           (3, 5, 4), expected_num_trainable_weights=2, input_dtype="int32",
                           expected_weight_shapes=[(10, 4), (4, 10)],
                           run_training_step=False)  # a forward call leaves reverse_embeddings out: trained below
    assert [w.name for w in layer.weights] == ["embeddings", "reverse_embeddings"]


@pytest.mark.parametrize("tie_weights", [True, False])
@pytest.mark.parametrize("cap", [None, 1.5])
def test_reverse_values(tie_weights, cap):
    layer = layers.ReversibleEmbedding(7, 3, tie_weights=tie_weights, logit_soft_cap=cap,
                                       embeddings_initializer="random_normal")
    ids = np.array([[0, 6, 2]])
    emb = layer(ids).numpy()
    table = layer.embeddings.numpy()
    np.testing.assert_array_equal(emb, table[ids])
    hidden = np.random.default_rng(0).standard_normal((2, 5, 3)).astype(np.float32)
    logits = layer(hidden, reverse=True).numpy()
    kernel = table.T if tie_weights else layer.reverse_embeddings.numpy()
    ref = hidden @ kernel
    if cap is not None:
        ref = np.tanh(ref / cap) * cap
        assert np.abs(logits).max() < cap
    assert logits.shape == (2, 5, 7) and logits.dtype == np.float32
    np.testing.assert_allclose(logits, ref, rtol=1e-5, atol=1e-6)
    assert layer.compute_output_shape((2, 5, 3), reverse=True) == (2, 5, 7)


@pytest.mark.parametrize("tie_weights", [True, False])
def test_gradients_both_directions(tie_weights):
    layer = layers.ReversibleEmbedding(6, 4, tie_weights=tie_weights, logit_soft_cap=2.0, dtype="float64")
    layer.build(None)
    hidden = np.random.default_rng(1).standard_normal((2, 3, 4))
    check_gradients(lambda h: layer(h, reverse=True), [hidden])
    table = layer.embeddings.numpy().copy()
    ids = np.array([[1, 5, 1], [0, 2, 3]])
    if tie_weights:
        # one table serves both directions: its gradient collects the lookup and the projection
        with dlgpu.GradientTape() as tape:
            out = layer(layer(ids), reverse=True)
            loss = ops.sum(ops.square(out))
        (g,) = tape.gradient(loss, [layer.embeddings])
        eps, numeric = 1e-6, np.zeros_like(table)
        for i in range(table.shape[0]):
            for j in range(table.shape[1]):
                vals = []
                for sign in (1, -1):
                    t = table.copy()
                    t[i, j] += sign * eps
                    layer.embeddings.assign(t)
                    vals.append(float(np.sum(layer(layer(ids), reverse=True).numpy() ** 2)))
                numeric[i, j] = (vals[0] - vals[1]) / (2 * eps)
        layer.embeddings.assign(table)
        np.testing.assert_allclose(g.numpy(), numeric, rtol=1e-5, atol=1e-6)
    else:
        with dlgpu.GradientTape() as tape:
            loss = ops.sum(ops.square(layer(dlgpu.Tensor(hidden, dtype="float64"), reverse=True)))
        g_table, g_reverse = tape.gradient(loss, [layer.embeddings, layer.reverse_embeddings])
        assert g_table is None or not np.any(g_table.numpy())  # untied: the projection does not touch the table
        assert np.any(g_reverse.numpy())


def test_masks_forward_only():
    layer = layers.ReversibleEmbedding(5, 3, mask_zero=True)
    out = layer(np.array([[0, 1, 2, 0]]))
    np.testing.assert_array_equal(out._keras_mask.numpy(), [[False, True, True, False]])
    hidden = dlgpu.Tensor(np.ones((1, 4, 3), np.float32))
    assert getattr(layer(hidden, reverse=True), "_keras_mask", None) is None
    # symbolic: the forward output carries the mask, the logits do not
    ids = dlgpu.Input((4,), dtype="int32")
    emb = layer(ids)
    assert emb._keras_mask is not None and emb._keras_mask.shape == (None, 4)
    logits = layer(emb, reverse=True)
    assert logits.shape == (None, 4, 5) and logits._keras_mask is None


def test_reverse_dtype_and_batch_one():
    layer = layers.ReversibleEmbedding(8, 2, reverse_dtype="float64")
    out = layer(np.ones((1, 2), np.float32), reverse=True)
    assert out.dtype == "float64" and out.shape == (1, 8)
    sym = layers.ReversibleEmbedding(8, 2, reverse_dtype="float64")(dlgpu.Input((2,)), reverse=True)
    assert sym.shape == (None, 8) and sym.dtype == "float64"
    assert layers.ReversibleEmbedding(8, 2)(np.array([3]), reverse=False).shape == (1, 2)


@pytest.mark.parametrize("kwargs, match", [
    (dict(reverse_dtype="int32"), "reverse_dtype"), (dict(reverse_dtype="bfloat16"), "reverse_dtype"),
    (dict(logit_soft_cap=0.0), "logit_soft_cap"), (dict(logit_soft_cap="2"), "logit_soft_cap"),
    (dict(output_dim=0), "output_dim"),
])
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        layers.ReversibleEmbedding(**{"input_dim": 5, "output_dim": 3, **kwargs})


def test_bad_inputs():
    layer = layers.ReversibleEmbedding(5, 3, name="rev")
    with pytest.raises(ValueError, match=r"'rev'.*output_dim=3.*\(2, 4\)"):
        layer(np.ones((2, 4), np.float32), reverse=True)
    with pytest.raises(ValueError, match=r"'rev'.*\[0, 5\)"):
        layer(np.array([[1, 5]]))
    with pytest.raises(NotImplementedError):
        layers.ReversibleEmbedding(5, 3, quantization_config={"mode": "int8"})


# -- a small language model: next token of a cyclic sequence ------------------------------------------------
def _next_token_task(n, vocab, length, seed):
    rng = np.random.default_rng(seed)
    start = rng.integers(1, vocab, (n, 1))
    step = rng.integers(1, 3, (n, 1))
    seq = (start + step * np.arange(length + 1)) % vocab
    return seq[:, :-1].astype(np.int32), seq[:, 1:].astype(np.int32)


def _language_model(tie_weights, vocab=12, dim=16, length=6):
    ids = dlgpu.Input((length,), dtype="int32")
    embedding = layers.ReversibleEmbedding(vocab, dim, tie_weights=tie_weights, logit_soft_cap=20.0, name="tokens")
    hidden = embedding(ids)
    # the step between tokens is read from the previous token: a convolution over two positions
    hidden = layers.Conv1D(dim, 2, padding="causal", activation="relu")(hidden)
    hidden = layers.Dense(dim)(hidden)
    return dlgpu.Model(ids, embedding(hidden, reverse=True))


@pytest.mark.parametrize("tie_weights", [True, False])
def test_language_model_trains_saves_and_loads(tie_weights, tmp_path):
    dlgpu.set_random_seed(2)
    x, y = _next_token_task(256, 12, 6, 0)
    model = _language_model(tie_weights)
    model.compile(optimizer=dlgpu.optimizers.Adam(0.02),
                  loss=dlgpu.losses.SparseCategoricalCrossentropy(from_logits=True))
    history = model.fit(x, y, epochs=12, batch_size=32, verbose=0).history
    assert history["loss"][-1] < 0.3 * history["loss"][0], history["loss"]
    x_test, y_test = _next_token_task(64, 12, 6, 1)
    # positions after the first know the step; they are predicted
    accuracy = (model.predict(x_test, verbose=0).argmax(-1)[:, 1:] == y_test[:, 1:]).mean()
    assert accuracy > 0.9
    assert len(model.get_layer("tokens").weights) == (1 if tie_weights else 2)
    model.save(tmp_path / "lm.dlgpu")
    loaded = load_model(tmp_path / "lm.dlgpu")
    assert loaded.get_layer("tokens").get_config() == model.get_layer("tokens").get_config()
    np.testing.assert_array_equal(loaded.predict(x_test, verbose=0), model.predict(x_test, verbose=0))


@pytest.mark.gpu
@pytest.mark.parametrize("tie_weights", [True, False])
def test_on_gpu_matches_cpu(tie_weights):
    x, _ = _next_token_task(4, 12, 6, 3)
    assert_model_on_gpu_matches_cpu(lambda: _language_model(tie_weights), x)
