"""AdditiveAttention: the contract; values, scores and gradients against Keras's formulas written out in numpy
and torch autograd (masks, causal mask, no scale); finite differences; dropout; a model trained and saved."""

import numpy as np
import pytest

import dlgpu
from dlgpu import layers, ops
from dlgpu.models import load_model

from helpers import assert_model_on_gpu_matches_cpu, check_gradients

from .layer_test_case import run_layer_test

torch = pytest.importorskip("torch")


@pytest.mark.parametrize("use_scale,weights", [(True, 1), (False, 0)])
def test_contract(use_scale, weights):
    run_layer_test(layers.AdditiveAttention, {"use_scale": use_scale}, [(2, 3, 4), (2, 5, 4)], (2, 3, 4),
                   expected_num_trainable_weights=weights, expected_weight_shapes=[(4,)] * weights)
    run_layer_test(layers.AdditiveAttention, {"use_scale": use_scale}, [(2, 3, 4), (2, 5, 6), (2, 5, 4)],
                   (2, 3, 6), expected_num_trainable_weights=weights)


def test_config_as_keras():
    layer = layers.AdditiveAttention(dropout=0.1)
    config = layer.get_config()
    assert config["use_scale"] is True and config["dropout"] == 0.1 and "score_mode" not in config
    assert layers.deserialize(layers.serialize(layer)).get_config() == config
    assert isinstance(layer, layers.Attention)


def _numpy_reference(q, v, k, scale, q_mask=None, v_mask=None, causal=False):
    """Keras's AdditiveAttention: scores = sum(scale * tanh(q[:, :, None] + k[:, None]), -1), masked with
    -1e9, softmax, @ value, query-masked rows zeroed."""
    scores = (scale * np.tanh(q[:, :, None] + k[:, None])).sum(-1)
    keep = np.ones(scores.shape, bool)
    if v_mask is not None:
        keep &= v_mask[:, None, :]
    if causal:
        keep &= np.tril(np.ones(scores.shape[1:], bool))
    scores = scores + np.where(keep, 0.0, -1e9)
    weights = np.exp(scores - scores.max(-1, keepdims=True))
    weights /= weights.sum(-1, keepdims=True)
    out = weights @ v
    if q_mask is not None:
        out = out * q_mask[:, :, None]
    return out, weights


@pytest.mark.parametrize("use_scale", [True, False])
@pytest.mark.parametrize("masked", [False, True])
def test_matches_numpy_and_torch_gradients(use_scale, masked):
    rng = np.random.default_rng(0)
    q, v, k = (rng.standard_normal(s) for s in ((2, 4, 3), (2, 5, 6), (2, 5, 3)))
    q_mask = rng.random((2, 4)) > 0.3 if masked else None
    v_mask = rng.random((2, 5)) > 0.3 if masked else None
    if masked:
        v_mask[:, 0] = True
    layer = layers.AdditiveAttention(use_scale=use_scale, dtype="float64")
    layer.build([(None, 4, 3), (None, 5, 6), (None, 5, 3)])
    scale = rng.uniform(0.5, 1.5, 3) if use_scale else np.ones(3)
    if use_scale:
        layer.set_weights([scale])
    xs = [dlgpu.Tensor(a, dtype="float64") for a in (q, v, k)]
    up = rng.standard_normal((2, 4, 6))
    with dlgpu.GradientTape() as tape:
        tape.watch(xs)
        out, scores = layer(xs, mask=[q_mask, v_mask] if masked else None, use_causal_mask=masked,
                            return_attention_scores=True)
        loss = ops.sum(ops.multiply(out, dlgpu.Tensor(up, dtype="float64")))
    grads = [g.numpy() for g in tape.gradient(loss, xs + layer.weights)]
    ref_out, ref_scores = _numpy_reference(q, v, k, scale, q_mask, v_mask, causal=masked)
    np.testing.assert_allclose(out.numpy(), ref_out, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(scores.numpy(), ref_scores, rtol=1e-10, atol=1e-12)

    tq, tv, tk, ts = (torch.tensor(a, requires_grad=True) for a in (q, v, k, scale))
    logits = (ts * torch.tanh(tq[:, :, None] + tk[:, None])).sum(-1)
    if masked:
        logits = logits.masked_fill(torch.tensor(~(v_mask[:, None, :] & np.tril(np.ones((4, 5), bool)))), -1e9)
    ref = torch.softmax(logits, -1) @ tv
    if masked:
        ref = ref * torch.tensor(q_mask[:, :, None].astype(np.float64))
    (ref * torch.tensor(up)).sum().backward()
    for got, want in zip(grads, [tq.grad, tv.grad, tk.grad] + ([ts.grad] if use_scale else [])):
        np.testing.assert_allclose(got, want.numpy(), rtol=1e-9, atol=1e-12)


def test_finite_differences():
    layer = layers.AdditiveAttention(dtype="float64")
    layer.build([(None, 3, 2), (None, 4, 2)])

    def run(q, v, scale):
        layer.scale = scale
        return layer([q, v], mask=[None, np.array([[True, True, False, True], [True] * 4])])
    rng = np.random.default_rng(1)
    check_gradients(run, [rng.standard_normal((2, 3, 2)), rng.standard_normal((2, 4, 2)), rng.standard_normal(2)])


def test_batch_one_and_dropout():
    rng = np.random.default_rng(2)
    q, v = rng.standard_normal((1, 1, 3)).astype(np.float32), rng.standard_normal((1, 4, 3)).astype(np.float32)
    layer = layers.AdditiveAttention(dropout=0.5, seed=3)
    out, scores = layer([q, v], return_attention_scores=True)
    assert out.shape == (1, 1, 3) and scores.shape == (1, 1, 4)
    np.testing.assert_allclose(scores.numpy().sum(-1), 1.0, rtol=1e-6)
    dropped = layer([q, v], training=True).numpy()
    assert not np.allclose(dropped, out.numpy())  # dropout acts on the weights in training only
    np.testing.assert_array_equal(layer([q, v], training=False).numpy(), out.numpy())


def _model():
    q_in, v_in = dlgpu.Input((3, 4)), dlgpu.Input((5, 4))
    attended = layers.AdditiveAttention()([q_in, v_in])
    return dlgpu.Model([q_in, v_in], layers.Dense(1)(layers.GlobalAveragePooling1D()(attended)))


def test_model_trains_and_round_trips(tmp_path):
    dlgpu.set_random_seed(0)
    rng = np.random.default_rng(4)
    q, v = rng.standard_normal((128, 3, 4)).astype(np.float32), rng.standard_normal((128, 5, 4)).astype(np.float32)
    y = v[:, :, :1].mean(1)
    model = _model()
    model.compile(optimizer=dlgpu.optimizers.Adam(0.01), loss="mse")
    history = model.fit([q, v], y, epochs=10, batch_size=16, verbose=0).history
    assert history["loss"][-1] < history["loss"][0]
    model.save(tmp_path / "additive.dlgpu")
    loaded = load_model(tmp_path / "additive.dlgpu")
    np.testing.assert_array_equal(loaded.predict([q, v], verbose=0), model.predict([q, v], verbose=0))


def test_bad_arguments():
    with pytest.raises(ValueError, match="score_mode"):
        layers.AdditiveAttention(score_mode="dot")
    with pytest.raises(ValueError, match="dropout"):
        layers.AdditiveAttention(dropout=1.0)
    with pytest.raises(ValueError, match=r"AdditiveAttention.*same known last dimension"):
        layers.AdditiveAttention()([np.ones((1, 2, 3), np.float32), np.ones((1, 4, 5), np.float32)])
    with pytest.raises(ValueError, match=r"\(AdditiveAttention\) must be called on a list"):
        layers.AdditiveAttention()(np.ones((1, 2, 3), np.float32))


@pytest.mark.gpu
def test_additive_attention_on_gpu_matches_cpu():
    rng = np.random.default_rng(5)
    x = rng.standard_normal((2, 5, 4)).astype(np.float32)

    def make():
        inputs = dlgpu.Input((5, 4))
        return dlgpu.Model(inputs, layers.AdditiveAttention()([inputs, inputs], use_causal_mask=True))
    assert_model_on_gpu_matches_cpu(make, x)
