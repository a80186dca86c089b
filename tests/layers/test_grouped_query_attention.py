"""GroupedQueryAttention (keras.layers.GroupQueryAttention): the contract, Keras's weights and config; values and
gradients against the equations written in torch (repeated key/value heads, masks); equal to MultiHeadAttention
when every query head has its own key/value head; finite differences; a model trained and saved; bad arguments."""

import numpy as np
import pytest

import dlgpu
from dlgpu import layers, ops
from dlgpu.models import load_model

from helpers import assert_model_on_gpu_matches_cpu, check_gradients

from .layer_test_case import run_layer_test

torch = pytest.importorskip("torch")


@layers.register
class _ListCalledGQA(layers.GroupedQueryAttention):
    """run_layer_test calls a multi-input layer on a list: [query, value(, key)] unpacked into Keras's call."""

    def __call__(self, query=None, *args, **kwargs):
        if isinstance(query, list):
            return super().__call__(*query, **kwargs)
        return super().__call__(query, *args, **kwargs)

    def compute_output_shape(self, query_shape, *args):
        if isinstance(query_shape, list):
            return super().compute_output_shape(*query_shape)
        return super().compute_output_shape(query_shape, *args)


def test_contract():
    # no training step: the key bias adds q.b to every key's logit alike, so the softmax ignores it and its
    # gradient is exactly zero (as in MultiHeadAttention); the torch test checks every gradient instead
    run_layer_test(_ListCalledGQA, {"head_dim": 3, "num_query_heads": 4, "num_key_value_heads": 2},
                   [(2, 5, 6), (2, 7, 6)], (2, 5, 6), expected_num_trainable_weights=8, run_training_step=False,
                   expected_weight_shapes=[(6, 4, 3), (4, 3), (6, 2, 3), (2, 3), (6, 2, 3), (2, 3), (4, 3, 6), (6,)])
    run_layer_test(_ListCalledGQA, {"head_dim": 2, "num_query_heads": 2, "num_key_value_heads": 1,
                                                  "use_bias": False},
                   [(1, 3, 4), (1, 2, 4), (1, 2, 5)], (1, 3, 4), expected_num_trainable_weights=4,
                   run_training_step=True,
                   expected_weight_shapes=[(4, 2, 2), (5, 1, 2), (4, 1, 2), (2, 2, 4)])


def test_config_and_names_as_keras():
    assert layers.GroupQueryAttention is layers.GroupedQueryAttention
    layer = layers.GroupQueryAttention(4, 6, 3, dropout=0.1, seed=2, name="gqa")
    config = layer.get_config()
    assert {k: config[k] for k in ("head_dim", "num_query_heads", "num_key_value_heads", "use_bias", "dropout",
                                   "seed")} == {"head_dim": 4, "num_query_heads": 6, "num_key_value_heads": 3,
                                                "use_bias": True, "dropout": 0.1, "seed": 2}
    assert "num_heads" not in config and "key_dim" not in config
    assert layers.deserialize({"class_name": "GroupQueryAttention", "config": config}).get_config() == config
    x = np.ones((1, 2, 5), np.float32)
    layer(x, x)
    assert [w.path for w in layer.weights][::2] == ["gqa/query/kernel", "gqa/key/kernel", "gqa/value/kernel",
                                                    "gqa/attention_output/kernel"]


def _torch_reference(q, v, k, weights, heads, kv_heads, mask=None, causal=False):
    """Keras's GroupedQueryAttention call in torch: projections, key/value heads repeated (np.repeat order),
    query scaled by 1/sqrt(head_dim), masked softmax, combine, output projection."""
    wq, bq, wk, bk, wv, bv, wo, bo = weights
    query = torch.einsum("bqm,muh->bquh", q, wq) + bq
    key = torch.repeat_interleave(torch.einsum("bkm,mvh->bkvh", k, wk) + bk, heads // kv_heads, dim=2)
    value = torch.repeat_interleave(torch.einsum("bkm,mvh->bkvh", v, wv) + bv, heads // kv_heads, dim=2)
    query = query / np.sqrt(wq.shape[-1])
    scores = torch.einsum("bquh,bkuh->buqk", query, key)
    keep = torch.ones(scores.shape, dtype=torch.bool)
    if mask is not None:
        keep = keep & torch.tensor(mask)[:, None]
    if causal:
        keep = keep & torch.tril(torch.ones(scores.shape[-2:], dtype=torch.bool))
    scores = torch.softmax(scores + torch.where(keep, 0.0, -1e9).double(), -1)
    out = torch.einsum("buqk,bkuh->bquh", scores, value)
    return torch.einsum("bquh,uhm->bqm", out, wo) + bo, scores


@pytest.mark.parametrize("kv_heads", [1, 2, 4])
@pytest.mark.parametrize("masked", [False, True])
def test_matches_torch_with_gradients(kv_heads, masked):
    rng = np.random.default_rng(0)
    q, v, k = (rng.standard_normal(s) for s in ((2, 4, 6), (2, 5, 6), (2, 5, 3)))
    mask = rng.random((2, 4, 5)) > 0.3 if masked else None
    layer = layers.GroupedQueryAttention(3, 4, kv_heads, dtype="float64")
    layer.build((None, 4, 6), (None, 5, 6), (None, 5, 3))
    layer.set_weights([rng.standard_normal(w.shape) * 0.5 for w in layer.weights])
    xs = [dlgpu.Tensor(a, dtype="float64") for a in (q, v, k)]
    up = rng.standard_normal((2, 4, 6))
    with dlgpu.GradientTape() as tape:
        tape.watch(xs)
        out, scores = layer(xs[0], xs[1], xs[2], attention_mask=mask, use_causal_mask=masked,
                            return_attention_scores=True)
        loss = ops.sum(ops.multiply(out, dlgpu.Tensor(up, dtype="float64")))
    grads = tape.gradient(loss, xs + layer.weights)

    tx = [torch.tensor(a, requires_grad=True) for a in (q, v, k)]
    tw = [torch.tensor(w.numpy(), requires_grad=True) for w in layer.weights]
    ref, ref_scores = _torch_reference(*tx, tw, 4, kv_heads, mask, causal=masked)
    (ref * torch.tensor(up)).sum().backward()
    np.testing.assert_allclose(out.numpy(), ref.detach().numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(scores.numpy(), ref_scores.detach().numpy(), rtol=1e-10, atol=1e-12)
    for got, want in zip(grads, tx + tw):
        np.testing.assert_allclose(got.numpy(), want.grad.numpy(), rtol=1e-9, atol=1e-12)


def test_equals_multi_head_attention_without_grouping():
    x = np.random.default_rng(1).standard_normal((2, 3, 4)).astype(np.float32)
    gqa = layers.GroupedQueryAttention(2, 3, 3)
    mha = layers.MultiHeadAttention(3, 2)
    gqa(x, x)
    mha(x, x)
    mha.set_weights(gqa.get_weights())
    np.testing.assert_array_equal(gqa(x, x).numpy(), mha(x, x).numpy())


def test_padding_masks_travel_and_explicit_masks():
    tokens = np.array([[1, 2, 3, 0], [4, 5, 0, 0]])
    embed = layers.Embedding(6, 4, mask_zero=True)
    x = embed(tokens)
    layer = layers.GroupedQueryAttention(2, 2, 1)
    with_keras_mask = layer(x, x).numpy()
    plain = x.numpy()
    explicit = layer(plain, plain, query_mask=tokens != 0, value_mask=tokens != 0).numpy()
    np.testing.assert_array_equal(with_keras_mask, explicit)
    assert not np.allclose(explicit, layer(plain, plain).numpy())


def test_finite_differences():
    layer = layers.GroupedQueryAttention(2, 2, 1, dtype="float64")
    layer.build((None, 3, 2), (None, 3, 2))

    def run(q, v, *weights):
        for (name, _), kernel, bias in zip(layer._projections.items(), weights[::2], weights[1::2]):
            layer._projections[name] = (kernel, bias)
        return layer(q, v, use_causal_mask=True)
    rng = np.random.default_rng(2)
    arrays = [rng.standard_normal((2, 3, 2)), rng.standard_normal((2, 3, 2))] + \
        [rng.standard_normal(w.shape) * 0.5 for w in layer.weights]
    check_gradients(run, arrays)


def _model():
    inputs = dlgpu.Input((6, 8))
    attended = layers.GroupQueryAttention(4, 4, 2)(inputs, inputs, use_causal_mask=True)
    return dlgpu.Model(inputs, layers.Dense(1)(layers.GlobalAveragePooling1D()(attended)))


def test_model_trains_and_round_trips(tmp_path):
    dlgpu.set_random_seed(0)
    rng = np.random.default_rng(3)
    x = rng.standard_normal((128, 6, 8)).astype(np.float32)
    y = x[:, :, :2].mean((1, 2))[:, None]
    model = _model()
    model.compile(optimizer=dlgpu.optimizers.Adam(0.01), loss="mse")
    history = model.fit(x, y, epochs=10, batch_size=16, verbose=0).history
    assert history["loss"][-1] < history["loss"][0]
    model.save(tmp_path / "gqa.dlgpu")
    loaded = load_model(tmp_path / "gqa.dlgpu")
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))


@pytest.mark.parametrize("kwargs,match", [
    ({"head_dim": 2, "num_query_heads": 3, "num_key_value_heads": 2}, "divisible"),
    ({"head_dim": 0, "num_query_heads": 2, "num_key_value_heads": 1}, "key_dim|head_dim"),
    ({"head_dim": 2, "num_query_heads": 2, "num_key_value_heads": 0}, "num_key_value_heads"),
    ({"head_dim": 2, "num_query_heads": 2, "num_key_value_heads": 1, "dropout": 1.0}, "dropout"),
])
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        layers.GroupedQueryAttention(**kwargs)
    with pytest.raises(NotImplementedError, match="flash_attention"):
        layers.GroupedQueryAttention(2, 2, 1, flash_attention=True)
    with pytest.raises(ValueError, match=r"GroupedQueryAttention.*last dimension of `query` and `value`"):
        layers.GroupedQueryAttention(2, 2, 1)(np.ones((1, 2, 3), np.float32), np.ones((1, 2, 4), np.float32))


@pytest.mark.gpu
def test_grouped_query_attention_on_gpu_matches_cpu():
    x = np.random.default_rng(4).standard_normal((2, 6, 8)).astype(np.float32)
    assert_model_on_gpu_matches_cpu(_model, x)
