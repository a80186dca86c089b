"""MultiHeadAttention and Attention: PyTorch's nn.MultiheadAttention as the reference (Keras's per-head kernels
reshaped into torch's in_proj/out_proj layout), finite differences in float64, shapes, config, dropout,
a model that learns and survives save/load, and the errors."""

import json

import numpy as np
import pytest

import dlgpu
from dlgpu import layers, ops
from dlgpu.models import load_model
from helpers import check_gradients, numerical_gradient

from .layer_test_case import run_layer_test
from .torch_ref import assert_close

torch = pytest.importorskip("torch")


# -- PyTorch reference -------------------------------------------------------------------------------------
def _randomize(mha, rng):
    """Give every weight (biases too, which start at zero) random values so that each one matters."""
    mha.set_weights([rng.standard_normal(w.shape).astype(w.dtype) * 0.5 for w in mha.weights])


def _torch_mha(mha, kv_dim):
    """An nn.MultiheadAttention with the Keras layer's weights.  Keras's query kernel (E, N, H) is torch's
    (N*H, E) weight transposed; the output kernel (N, H, E) likewise; torch packs q, k, v into in_proj_* when
    key/value have the query's width."""
    wq, bq, wk, bk, wv, bv, wo, bo = (w.numpy() for w in mha.weights)
    e, n = wq.shape[0], mha.num_heads
    ref = torch.nn.MultiheadAttention(e, n, kdim=kv_dim, vdim=kv_dim, batch_first=True)
    with torch.no_grad():
        proj = [torch.tensor(w.reshape(w.shape[0], -1).T) for w in (wq, wk, wv)]
        if ref._qkv_same_embed_dim:
            ref.in_proj_weight.copy_(torch.cat(proj))
        else:
            ref.q_proj_weight.copy_(proj[0])
            ref.k_proj_weight.copy_(proj[1])
            ref.v_proj_weight.copy_(proj[2])
        ref.in_proj_bias.copy_(torch.tensor(np.concatenate([bq.ravel(), bk.ravel(), bv.ravel()])))
        ref.out_proj.weight.copy_(torch.tensor(wo.reshape(-1, e).T))
        ref.out_proj.bias.copy_(torch.tensor(bo))
    return ref


def _torch_weight_grads(ref, mha):
    """torch's parameter gradients in Keras's weight layout and order."""
    wq = mha.weights[0]
    e, n, h = wq.shape
    if ref._qkv_same_embed_dim:
        gq, gk, gv = ref.in_proj_weight.grad.split(n * h)
    else:
        gq, gk, gv = ref.q_proj_weight.grad, ref.k_proj_weight.grad, ref.v_proj_weight.grad
    gb = ref.in_proj_bias.grad.split(n * h)
    grads = []
    for g, b, w in zip((gq, gk, gv), gb, mha.weights[0:6:2]):
        grads += [g.T.reshape(w.shape), b.reshape(n, h)]
    grads += [ref.out_proj.weight.grad.T.reshape(mha.weights[6].shape), ref.out_proj.bias.grad]
    return [g.numpy() for g in grads]


def _torch_mask(keep, causal, b, t, s, n):
    """torch's attn_mask is True where attention is *forbidden*, per (batch * head) or shared."""
    allowed = np.ones((b, t, s), bool) if keep is None else np.broadcast_to(keep, (b, t, s))
    if causal:
        allowed = allowed & np.tril(np.ones((t, s), bool))
    return torch.tensor(~np.repeat(allowed, n, axis=0))


CASES = {
    # name: (batch, query length, key length, heads, key_dim, key/value width, mask, causal, separate key)
    "self": (2, 5, 5, 2, 3, None, False, False, False),
    "self_mask": (2, 5, 5, 3, 2, None, True, False, False),
    "self_causal": (2, 6, 6, 2, 4, None, False, True, False),
    "mask_and_causal": (3, 4, 4, 2, 2, None, True, True, False),
    "cross": (2, 3, 7, 2, 3, 5, False, False, False),
    "cross_mask_key": (2, 6, 4, 4, 2, 3, True, False, True),
}


def _case(name, seed=0):
    b, t, s, n, h, kv, masked, causal, separate_key = CASES[name]
    rng = np.random.default_rng(seed)
    e = n * h  # torch projects to embed_dim = heads * head_dim, and back to it
    kv = kv or e
    query = rng.standard_normal((b, t, e)).astype(np.float32)
    value = query if kv == e and t == s and not separate_key else rng.standard_normal((b, s, kv)).astype(np.float32)
    key = rng.standard_normal((b, s, kv)).astype(np.float32) if separate_key else None
    mask = None
    if masked:
        mask = rng.random((b, t, s)) > 0.4
        mask[..., 0] = True  # every query keeps one key: torch gives NaN for fully masked rows
    mha = layers.MultiHeadAttention(n, h)
    mha(query, value, key)
    _randomize(mha, rng)
    return mha, query, value, key, mask, causal, kv


@pytest.mark.parametrize("name", list(CASES))
def test_forward_and_scores_match_torch(name):
    mha, query, value, key, mask, causal, kv = _case(name)
    out, scores = mha(query, value, key, attention_mask=mask, use_causal_mask=causal, return_attention_scores=True)
    b, t, s, n = query.shape[0], query.shape[1], value.shape[1], mha.num_heads
    assert out.shape == query.shape and scores.shape == (b, n, t, s)
    ref = _torch_mha(mha, kv)
    tk = torch.tensor(value if key is None else key)
    ref_out, ref_scores = ref(torch.tensor(query), tk, torch.tensor(value),
                              attn_mask=_torch_mask(mask, causal, b, t, s, n), average_attn_weights=False)
    assert_close(out.numpy(), ref_out)
    assert_close(scores.numpy(), ref_scores, atol=1e-6)
    if causal:
        assert np.all(scores.numpy()[..., np.triu_indices(t, 1)[0], np.triu_indices(t, 1)[1]] == 0)


@pytest.mark.parametrize("name", ["self_mask", "mask_and_causal", "cross_mask_key"])
def test_gradients_match_torch(name):
    mha, query, value, key, mask, causal, kv = _case(name, seed=1)
    b, t, s, n = query.shape[0], query.shape[1], value.shape[1], mha.num_heads
    key = value.copy() if key is None else key  # a separate tensor, so that its gradient is its own
    up = np.random.default_rng(2).standard_normal(query.shape).astype(np.float32)
    xs = [dlgpu.Tensor(a) for a in (query, value, key)]
    with dlgpu.GradientTape() as tape:
        tape.watch(xs)
        out = mha(xs[0], xs[1], xs[2], attention_mask=mask, use_causal_mask=causal)
        loss = ops.sum(ops.multiply(out, up))
    grads = [g.numpy() for g in tape.gradient(loss, xs + mha.weights)]

    ref = _torch_mha(mha, kv)
    tq, tv, tk = (torch.tensor(a, requires_grad=True) for a in (query, value, key))
    ref_out, _ = ref(tq, tk, tv, attn_mask=_torch_mask(mask, causal, b, t, s, n))
    (ref_out * torch.tensor(up)).sum().backward()
    expected = [tq.grad.numpy(), tv.grad.numpy(), tk.grad.numpy()] + _torch_weight_grads(ref, mha)
    names = ["query", "value", "key"] + [w.path for w in mha.weights]
    for got, want, what in zip(grads, expected, names):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5, err_msg=what)


def test_gradients_match_finite_differences_float64():
    """Inputs and every weight, through the output *and* the scores, with a mask, a causal mask,
    value_dim != key_dim, a separate key and a 2-D output_shape."""
    rng = np.random.default_rng(3)
    mha = layers.MultiHeadAttention(2, 2, value_dim=3, output_shape=(2, 2), dtype="float64")
    q, v, k = rng.standard_normal((2, 3, 4)), rng.standard_normal((2, 3, 5)), rng.standard_normal((2, 3, 2))
    mask = np.array([[[1, 1, 0], [1, 0, 1], [0, 1, 1]], [[1, 1, 1], [1, 1, 0], [1, 0, 0]]], bool)
    mha(q, v, k)
    _randomize(mha, rng)
    assert all(w.dtype == "float64" for w in mha.weights)

    def forward(query, value, key):
        out, scores = mha(query, value, key, attention_mask=mask, use_causal_mask=True,
                          return_attention_scores=True)
        return [out, scores]
    check_gradients(forward, [q, v, k], rtol=1e-6, atol=1e-8)

    seeds = [rng.standard_normal((2, 3, 2, 2)), rng.standard_normal((2, 2, 3, 3))]
    tensors = [dlgpu.Tensor(a, dtype="float64") for a in (q, v, k)]

    def objective():
        return sum(ops.sum(ops.multiply(o, s)) for o, s in zip(forward(*tensors), seeds))
    with dlgpu.GradientTape() as tape:
        loss = objective()
    grads = tape.gradient(loss, mha.weights)
    for w, g in zip(mha.weights, grads):
        original = w.numpy().copy()

        def at(value, w=w):
            w.assign(value)
            return float(objective().numpy())
        expected = numerical_gradient(at, original)
        w.assign(original)
        np.testing.assert_allclose(g.numpy(), expected, rtol=1e-6, atol=1e-8, err_msg=w.path)


# -- shapes, weights, config ----------------------------------------------------------------------------------
def test_weights_have_keras_shapes_and_order():
    mha = layers.MultiHeadAttention(num_heads=3, key_dim=4, value_dim=5, output_shape=(2, 6))
    mha(np.zeros((2, 7, 8), np.float32), np.zeros((2, 9, 10), np.float32), np.zeros((2, 9, 11), np.float32))
    assert [(w.path.split("/", 1)[1], w.shape) for w in mha.weights] == [
        ("query/kernel", (8, 3, 4)), ("query/bias", (3, 4)), ("key/kernel", (11, 3, 4)), ("key/bias", (3, 4)),
        ("value/kernel", (10, 3, 5)), ("value/bias", (3, 5)),
        ("attention_output/kernel", (3, 5, 2, 6)), ("attention_output/bias", (2, 6))]
    no_bias = layers.MultiHeadAttention(2, 4, use_bias=False)
    no_bias(np.zeros((1, 3, 8), np.float32), np.zeros((1, 3, 8), np.float32))
    assert [w.shape for w in no_bias.weights] == [(8, 2, 4), (8, 2, 4), (8, 2, 4), (2, 4, 8)]
    assert no_bias.count_params() == 4 * 64


@pytest.mark.parametrize("kwargs,out_tail", [({}, (16,)), ({"value_dim": 3}, (16,)),
                                             ({"value_dim": 6, "output_shape": 5}, (5,)),
                                             ({"output_shape": (2, 3)}, (2, 3))])
def test_output_shapes_eager_and_symbolic(kwargs, out_tail):
    x = np.random.default_rng(0).standard_normal((3, 7, 16)).astype(np.float32)
    y = np.random.default_rng(1).standard_normal((3, 4, 9)).astype(np.float32)
    mha = layers.MultiHeadAttention(2, 4, **kwargs)
    out, scores = mha(x, y, return_attention_scores=True)
    assert out.shape == (3, 7) + out_tail and scores.shape == (3, 2, 7, 4)
    assert mha.compute_output_shape((None, 7, 16), (None, 4, 9)) == (None, 7) + out_tail

    q_in, v_in = dlgpu.Input(shape=(None, 16)), dlgpu.Input(shape=(4, 9))
    sym = layers.MultiHeadAttention(2, 4, **kwargs)
    assert sym(q_in, v_in).shape == (None, None) + out_tail
    sym_out, sym_scores = sym(q_in, v_in, return_attention_scores=True)
    assert sym_out.shape == (None, None) + out_tail and sym_scores.shape == (None, 2, None, 4)
    model = dlgpu.Model([q_in, v_in], [sym_out, sym_scores])
    got = model.predict([x, y], verbose=0)
    assert got[0].shape == (3, 7) + out_tail and got[1].shape == (3, 2, 7, 4)


def test_config_round_trip():
    mha = layers.MultiHeadAttention(num_heads=2, key_dim=3, value_dim=4, dropout=0.25, output_shape=(5,),
                                    attention_axes=(1,), kernel_initializer="he_normal", bias_initializer="ones",
                                    kernel_regularizer="l2", seed=7, name="attend")
    config = mha.get_config()
    assert json.loads(json.dumps(config)) == config
    assert {k: config[k] for k in ("num_heads", "key_dim", "value_dim", "dropout", "output_shape",
                                   "attention_axes", "seed")} == {
        "num_heads": 2, "key_dim": 3, "value_dim": 4, "dropout": 0.25, "output_shape": [5],
        "attention_axes": [1], "seed": 7}
    x = np.random.default_rng(0).standard_normal((2, 4, 6)).astype(np.float32)
    ref = mha(x, x).numpy()
    for clone in (layers.MultiHeadAttention.from_config(config), layers.deserialize(layers.serialize(mha))):
        assert clone.get_config() == config
        clone(x, x)
        clone.set_weights(mha.get_weights())
        np.testing.assert_array_equal(clone(x, x).numpy(), ref)
    assert len(mha.losses) == 4  # the l2 kernel regularizer on each of the four kernels


def test_trainable_false_and_one_training_step():
    mha = layers.MultiHeadAttention(2, 3)
    x = np.random.default_rng(0).standard_normal((2, 4, 6)).astype(np.float32)
    mha(x, x)
    mha.trainable = False
    assert mha.trainable_weights == [] and len(mha.non_trainable_weights) == 8
    mha.trainable = True
    _randomize(mha, np.random.default_rng(1))
    before = mha.get_weights()
    with dlgpu.GradientTape() as tape:
        loss = ops.sum(ops.square(ops.subtract(mha(x, x), 0.5)))
    grads = tape.gradient(loss, mha.trainable_weights)
    for w, g in zip(mha.trainable_weights, grads):
        w.assign(w.numpy() - 0.01 * g.numpy())
    for w, g, b in zip(mha.weights, grads, before):
        if w.path.endswith("key/bias"):
            # q . (k + b_k) shifts every logit of a query by the same q . b_k: softmax ignores it (in Keras too)
            np.testing.assert_allclose(g.numpy(), 0, atol=1e-5)
        else:
            assert not np.allclose(w.numpy(), b), w.path


def test_dropout_acts_on_probabilities_in_training_only(monkeypatch):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 5, 8)).astype(np.float32)
    mha = layers.MultiHeadAttention(2, 4, dropout=0.5)
    plain = layers.MultiHeadAttention(2, 4)
    mha(x, x)
    plain(x, x)
    _randomize(mha, rng)
    plain.set_weights(mha.get_weights())
    reference, ref_scores = plain(x, x, return_attention_scores=True)
    for training in (None, False):
        np.testing.assert_array_equal(mha(x, x, training=training).numpy(), reference.numpy())

    seen = []
    original = ops.dropout

    def spy(values, rate, *args, **kwargs):
        dropped = original(values, rate, *args, **kwargs)
        seen.append((values.numpy(), rate, dropped.numpy()))
        return dropped
    monkeypatch.setattr(ops, "dropout", spy)
    out, scores = mha(x, x, training=True, return_attention_scores=True)
    (probs, rate, dropped), = seen
    assert rate == 0.5
    np.testing.assert_allclose(probs, ref_scores.numpy(), rtol=1e-6)   # dropout sees the softmax probabilities
    np.testing.assert_allclose(scores.numpy(), probs, rtol=1e-6)     # and the returned scores are before it
    assert 0.3 < np.mean(dropped == 0) < 0.7
    # the output is the usual attention with the dropped probabilities
    wq, bq, wk, bk, wv, bv, wo, bo = mha.get_weights()
    v = np.einsum("bsd,dnh->bnsh", x, wv) + bv[:, None]
    context = dropped @ v
    expected = np.einsum("bnth,nhe->bte", context, wo) + bo
    np.testing.assert_allclose(out.numpy(), expected, rtol=1e-4, atol=1e-5)
    assert not np.allclose(out.numpy(), reference.numpy())

    # inside a model, fit's training=True reaches the layer and predict's inference does not
    monkeypatch.setattr(ops, "dropout", original)
    inp = dlgpu.Input(shape=(5, 8))
    model = dlgpu.Model(inp, mha(inp, inp))
    np.testing.assert_array_equal(model.predict(x, verbose=0), reference.numpy())
    assert not np.allclose(model(x, training=True).numpy(), reference.numpy())


def test_fully_masked_query_attends_uniformly():
    """Keras adds -1e9 rather than -inf: a query with no visible key averages all values instead of NaN."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((1, 3, 4)).astype(np.float32)
    mask = np.ones((1, 3, 3), bool)
    mask[0, 1] = False
    mha = layers.MultiHeadAttention(2, 2)
    _, scores = mha(x, x, attention_mask=mask, return_attention_scores=True)
    np.testing.assert_allclose(scores.numpy()[0, :, 1], np.full((2, 3), 1 / 3), rtol=1e-6)
    assert np.isfinite(scores.numpy()).all()


@pytest.mark.parametrize("mask_shape", [(5, 5), (1, 5, 5), (2, 1, 5), (2, 2, 5, 5), (2, 1, 5, 5)])
def test_attention_mask_broadcasts_like_keras(mask_shape):
    """(T, S), (B, T, S) with size-1 axes, and per-head (B, N, T, S) masks all equal the explicit mask."""
    rng = np.random.default_rng(4)
    x = rng.standard_normal((2, 5, 4)).astype(np.float32)
    mask = rng.random(mask_shape) > 0.3
    mask[..., 0] = True
    mha = layers.MultiHeadAttention(2, 2)
    _, scores = mha(x, x, attention_mask=mask, return_attention_scores=True)
    full = np.broadcast_to(mask if len(mask_shape) == 4 else np.expand_dims(mask, -3), (2, 2, 5, 5))
    assert np.all(scores.numpy()[~full] == 0)
    _, explicit = mha(x, x, attention_mask=full.copy(), return_attention_scores=True)
    np.testing.assert_array_equal(scores.numpy(), explicit.numpy())
    _, as_float = mha(x, x, attention_mask=mask.astype(np.float32), return_attention_scores=True)
    np.testing.assert_array_equal(as_float.numpy(), scores.numpy())


# -- in a model ----------------------------------------------------------------------------------------------
def _token_task(n, rng, length=8, vocab=12):
    """Label 1 when token 1 occurs more often than token 2: the pooled attention output must count."""
    x = rng.integers(0, vocab, (n, length))
    y = (np.sum(x == 1, axis=1) > np.sum(x == 2, axis=1)).astype(np.int64)
    return x, y


def test_model_with_self_attention_learns_and_round_trips(tmp_path):
    dlgpu.set_random_seed(0)
    rng = np.random.default_rng(0)
    x, y = _token_task(512, rng)
    ids = dlgpu.Input(shape=(8,), dtype="int32")
    h = layers.Embedding(12, 16)(ids)
    h = layers.MultiHeadAttention(num_heads=2, key_dim=8, dropout=0.1)(h, h, use_causal_mask=True)
    h = layers.GlobalAveragePooling1D()(h)
    out = layers.Dense(2, activation="softmax")(h)
    model = dlgpu.Model(ids, out)
    model.compile(optimizer=dlgpu.optimizers.Adam(0.01), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    history = model.fit(x, y, epochs=12, batch_size=32, verbose=0).history
    assert history["loss"][-1] < 0.6 * history["loss"][0], history["loss"]
    assert history["accuracy"][-1] > 0.85, history["accuracy"]

    path = tmp_path / "attention.dlgpu"
    model.save(path)
    loaded = load_model(path)
    assert [l.get_config() for l in loaded.layers] == [l.get_config() for l in model.layers]
    x_test, _ = _token_task(64, np.random.default_rng(1))
    np.testing.assert_array_equal(loaded.predict(x_test, verbose=0), model.predict(x_test, verbose=0))
    # use_causal_mask was saved with the call: without it the same weights predict differently
    mha = next(l for l in loaded.layers if isinstance(l, layers.MultiHeadAttention))
    emb = loaded.layers[1](x_test[:4])
    assert not np.allclose(mha(emb, emb).numpy(), mha(emb, emb, use_causal_mask=True).numpy())


def test_model_with_mask_input_and_scores_output_round_trips(tmp_path):
    rng = np.random.default_rng(0)
    q_in, v_in, m_in = dlgpu.Input(shape=(4, 6)), dlgpu.Input(shape=(3, 5)), dlgpu.Input(shape=(4, 3), dtype="bool")
    out, scores = layers.MultiHeadAttention(2, 3, name="cross")(q_in, v_in, attention_mask=m_in,
                                                                return_attention_scores=True)
    model = dlgpu.Model([q_in, v_in, m_in], [out, scores])
    q, v = rng.standard_normal((5, 4, 6)).astype(np.float32), rng.standard_normal((5, 3, 5)).astype(np.float32)
    mask = rng.random((5, 4, 3)) > 0.5
    mask[..., 1] = True
    got = model.predict([q, v, mask], verbose=0)
    assert np.all(got[1][np.broadcast_to(~mask[:, None], got[1].shape)] == 0)
    model.save(tmp_path / "cross.dlgpu")
    again = load_model(tmp_path / "cross.dlgpu").predict([q, v, mask], verbose=0)
    for a, b in zip(again, got):
        np.testing.assert_array_equal(a, b)


@pytest.mark.gpu
def test_gpu_matches_cpu():
    mha_args = dict(num_heads=2, key_dim=4, value_dim=3)
    rng = np.random.default_rng(0)
    q, v = rng.standard_normal((2, 6, 8)).astype(np.float32), rng.standard_normal((2, 5, 7)).astype(np.float32)
    mask = rng.random((2, 6, 5)) > 0.3
    results = []
    weights = None
    for device in ("cpu", "gpu"):
        with dlgpu.device(device):
            mha = layers.MultiHeadAttention(**mha_args)
            mha(q, v)
            if weights is None:
                _randomize(mha, rng)
                weights = mha.get_weights()
            mha.set_weights(weights)
            xs = [ops.convert_to_tensor(a) for a in (q, v)]
            with dlgpu.GradientTape() as tape:
                tape.watch(xs)
                out, scores = mha(xs[0], xs[1], attention_mask=mask, use_causal_mask=True,
                                  return_attention_scores=True)
                loss = ops.sum(ops.square(out))
            grads = tape.gradient(loss, xs + mha.weights)
            results.append([out.numpy(), scores.numpy()] + [g.numpy() for g in grads])
    for a, b in zip(*results):
        np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-5)


# -- Attention (no projections) ------------------------------------------------------------------------------
@pytest.mark.parametrize("kwargs,weights", [({}, 0), ({"use_scale": True}, 1), ({"score_mode": "concat"}, 1),
                                            ({"score_mode": "concat", "use_scale": True}, 2)])
def test_attention_contract(kwargs, weights):
    run_layer_test(layers.Attention, kwargs, [(2, 3, 4), (2, 5, 4)], (2, 3, 4),
                   expected_num_trainable_weights=weights)
    run_layer_test(layers.Attention, kwargs, [(2, 3, 4), (2, 5, 6), (2, 5, 4)], (2, 3, 6),
                   expected_num_trainable_weights=weights)


@pytest.mark.parametrize("score_mode", ["dot", "concat"])
@pytest.mark.parametrize("masked", [False, True])
def test_attention_matches_torch_with_gradients(score_mode, masked):
    rng = np.random.default_rng(0)
    q, v, k = (rng.standard_normal(s).astype(np.float32) for s in ((2, 4, 3), (2, 5, 6), (2, 5, 3)))
    q_mask = rng.random((2, 4)) > 0.3 if masked else None
    v_mask = rng.random((2, 5)) > 0.3 if masked else None
    if masked:
        v_mask[:, 0] = True
    layer = layers.Attention(use_scale=True, score_mode=score_mode)
    layer([q, v, k])
    layer.set_weights([np.array(0.7 + 0.2 * i, np.float32) for i in range(len(layer.weights))])
    xs = [dlgpu.Tensor(a) for a in (q, v, k)]
    up = rng.standard_normal((2, 4, 6)).astype(np.float32)
    with dlgpu.GradientTape() as tape:
        tape.watch(xs)
        out, scores = layer(xs, mask=[q_mask, v_mask] if masked else None, use_causal_mask=masked,
                            return_attention_scores=True)
        loss = ops.sum(ops.multiply(out, up))
    grads = [g.numpy() for g in tape.gradient(loss, xs + layer.weights)]

    tq, tv, tk = (torch.tensor(a, requires_grad=True) for a in (q, v, k))
    tw = [torch.tensor(w.numpy(), requires_grad=True) for w in layer.weights]
    if score_mode == "dot":
        logits = tq @ tk.transpose(1, 2) * tw[0]
    else:
        logits = tw[1] * torch.tanh(tw[0] * (tq[:, :, None] + tk[:, None])).sum(-1)
    if masked:
        allowed = torch.tensor(v_mask[:, None, :] & np.tril(np.ones((4, 5), bool)))
        logits = logits.masked_fill(~allowed, float("-inf"))
    probs = torch.softmax(logits, -1)
    ref = probs @ tv
    if masked:
        ref = ref * torch.tensor(q_mask[:, :, None].astype(np.float32))
    (ref * torch.tensor(up)).sum().backward()
    assert_close(out.numpy(), ref)
    assert_close(scores.numpy(), probs, atol=1e-6)
    for got, want in zip(grads, [tq.grad, tv.grad, tk.grad] + [w.grad for w in tw]):
        np.testing.assert_allclose(got, want.numpy(), rtol=1e-4, atol=1e-5)


def test_attention_symbolic_scores_and_config():
    q_in, v_in = dlgpu.Input(shape=(3, 4)), dlgpu.Input(shape=(None, 4))
    layer = layers.Attention(use_scale=True, dropout=0.2)
    out, scores = layer([q_in, v_in], return_attention_scores=True)
    assert out.shape == (None, 3, 4) and scores.shape == (None, 3, None)
    config = layer.get_config()
    assert layers.deserialize(layers.serialize(layer)).get_config() == config
    assert config["use_scale"] and config["dropout"] == 0.2 and config["score_mode"] == "dot"


# -- errors --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("kwargs,error,argument", [
    ({"num_heads": 0, "key_dim": 4}, ValueError, "num_heads"),
    ({"num_heads": 2, "key_dim": 2.5}, ValueError, "key_dim"),
    ({"num_heads": 2, "key_dim": 4, "value_dim": -1}, ValueError, "value_dim"),
    ({"num_heads": 2, "key_dim": 4, "dropout": 1.0}, ValueError, "dropout"),
    ({"num_heads": 2, "key_dim": 4, "output_shape": (0, 3)}, ValueError, "output_shape"),
    ({"num_heads": 2, "key_dim": 4, "output_shape": "wide"}, ValueError, "output_shape"),
    ({"num_heads": 2, "key_dim": 4, "attention_axes": 2}, NotImplementedError, "attention_axes"),
    ({"num_heads": 2, "key_dim": 4, "attention_axes": (1, 2)}, NotImplementedError, "attention_axes"),
    ({"num_heads": 2, "key_dim": 4, "kernel_constraint": "nonneg"}, ValueError, "kernel_constraint"),
    ({"num_heads": 2, "key_dim": 4, "flash_attention": True}, NotImplementedError, "flash_attention"),
])
def test_bad_constructor_arguments(kwargs, error, argument):
    with pytest.raises(error, match=rf"'bad_mha' \(MultiHeadAttention\).*`{argument}`"):
        layers.MultiHeadAttention(name="bad_mha", **kwargs)


def test_bad_call_arguments():
    x = np.zeros((2, 4, 6), np.float32)
    mha = layers.MultiHeadAttention(2, 3, name="mha_calls")
    with pytest.raises(ValueError, match=r"'mha_calls'.*`query` and `value`"):
        mha(x)
    with pytest.raises(NotImplementedError, match=r"'mha_calls'.*`query`.*\(2, 4, 4, 6\)"):
        mha(np.zeros((2, 4, 4, 6), np.float32), x)
    with pytest.raises(ValueError, match=r"'mha_calls'.*`value` and `key`"):
        mha(x, x, np.zeros((2, 5, 6), np.float32))
    mha(x, x)
    with pytest.raises(ValueError, match=r"'mha_calls'.*`query` must have shape \(batch, sequence, 6\)"):
        mha(np.zeros((2, 4, 5), np.float32), x)
    with pytest.raises(ValueError, match=r"'mha_calls'.*`attention_mask`.*\(2, 4, 4\).*\(2, 3, 4\)"):
        mha(x, x, attention_mask=np.ones((2, 3, 4), bool))
    with pytest.raises(ValueError, match=r"'mha_calls'.*`attention_mask`"):
        mha(x, x, attention_mask=np.ones((3, 4, 4), bool))  # would broadcast, but to a larger batch
    with pytest.raises(ValueError, match=r"'mha_calls'.*share the batch size"):
        mha(x, np.zeros((3, 4, 6), np.float32))
    with pytest.raises(ValueError, match=r"'att' \(Attention\).*`score_mode`"):
        layers.Attention(score_mode="additive", name="att")
    with pytest.raises(ValueError, match=r"'att2' \(Attention\).*\[query, value\]"):
        layers.Attention(name="att2")(x)
    with pytest.raises(ValueError, match=r"'att3' \(Attention\).*`mask`"):
        layers.Attention(name="att3")([x, x], mask=np.ones((2, 4), bool))
