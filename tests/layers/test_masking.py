"""Keras masking: masks created by Embedding(mask_zero=True) and Masking, carried on tensors through eager
calls, Sequential and functional models, and used by the recurrent layers, GlobalAveragePooling1D, the
attention layers, the merge layers, the losses and the metrics.

The strongest check is that padding changes nothing: a padded batch gives each sample the final state it
gets alone without padding (and PyTorch's pack_padded_sequence agrees); gradients by finite differences in
float64; pooling and attention against numpy; a padded toy task trained with fit and saved/loaded."""

import warnings

import numpy as np
import pytest

import dlgpu
from dlgpu import layers, ops
from dlgpu.layers import recurrent
from dlgpu.models import load_model
from helpers import check_gradients

from .layer_test_case import run_layer_test

torch = pytest.importorskip("torch")

CLASSES = {"simple_rnn": layers.SimpleRNN, "lstm": layers.LSTM, "gru": layers.GRU}
F, U = 5, 4


def _padded(rng, lengths, steps, padding="post", vocab=20):
    """Token ids 1..vocab-1 for each length, padded with 0 to ``steps`` before or after."""
    x = np.zeros((len(lengths), steps), np.int32)
    for i, n in enumerate(lengths):
        ids = rng.integers(1, vocab, n)
        if padding == "post":
            x[i, :n] = ids
        else:
            x[i, steps - n:] = ids
    return x


def _rnn(kind, rng, **kwargs):
    layer = CLASSES[kind](U, **kwargs)
    layer.build((None, None, F))
    layer.set_weights([(rng.standard_normal(w.shape) * 0.5).astype(np.float32) for w in layer.weights])
    return layer


# -- the contract of the new pieces -----------------------------------------------------------------------
def test_masking_layer_contract_and_values():
    run_layer_test(layers.Masking, {"mask_value": 0.0}, (2, 4, 3), (2, 4, 3))
    x = np.arange(24, dtype=np.float32).reshape(2, 4, 3) + 1
    x[0, 1] = 7.5
    x[1, 3] = 7.5
    x[1, 0, 0] = 7.5  # one feature equal to mask_value does not mask the step
    y = layers.Masking(mask_value=7.5)(x)
    expected_mask = np.array([[True, False, True, True], [True, True, True, False]])
    np.testing.assert_array_equal(y._keras_mask.numpy(), expected_mask)
    np.testing.assert_array_equal(y.numpy(), x * expected_mask[..., None])
    assert layers.Masking(mask_value=7.5).compute_mask(dlgpu.Tensor(x)).numpy().tolist() == expected_mask.tolist()
    assert layers.deserialize(layers.serialize(layers.Masking(2.0))).mask_value == 2.0


def test_embedding_mask_zero():
    emb = layers.Embedding(10, 3, mask_zero=True)
    x = np.array([[1, 2, 0], [0, 0, 4]])
    y = emb(x)
    np.testing.assert_array_equal(y._keras_mask.numpy(), x != 0)
    np.testing.assert_array_equal(emb.compute_mask(dlgpu.Tensor(x)).numpy(), x != 0)
    assert emb.supports_masking and emb.get_config()["mask_zero"] is True
    clone = layers.Embedding.from_config(emb.get_config())
    assert clone.mask_zero and clone.supports_masking
    plain = layers.Embedding(10, 3)
    assert plain.get_config()["mask_zero"] is False and plain.compute_mask(dlgpu.Tensor(x)) is None
    assert getattr(plain(x), "_keras_mask", None) is None


def test_supports_masking_follows_keras():
    assert layers.Dense(2).supports_masking and layers.Dropout(0.1).supports_masking
    assert layers.Activation("relu").supports_masking and layers.ReLU().supports_masking
    assert layers.LayerNormalization().supports_masking and layers.Masking().supports_masking
    assert layers.LSTM(2).supports_masking and layers.Bidirectional(layers.GRU(2)).supports_masking
    assert layers.GlobalAveragePooling1D().supports_masking and layers.Add().supports_masking
    assert layers.Concatenate().supports_masking and layers.MultiHeadAttention(2, 2).supports_masking
    assert not layers.Flatten().supports_masking and not layers.GlobalMaxPooling1D().supports_masking
    assert not layers.Conv1D(2, 3).supports_masking and not layers.Embedding(3, 2).supports_masking
    layer = layers.Flatten()
    layer.supports_masking = True
    assert layer.supports_masking


# -- recurrent layers: padding changes nothing ----------------------------------------------------------
RNN_CASES = [(kind, go_backwards, padding) for kind in sorted(CLASSES) for go_backwards in (False, True)
             for padding in ("post", "pre")]


@pytest.mark.parametrize("kind,go_backwards,padding", RNN_CASES)
def test_padded_batch_matches_each_sample_alone(kind, go_backwards, padding):
    rng = np.random.default_rng(RNN_CASES.index((kind, go_backwards, padding)))
    lengths = [5, 2, 7, 1]
    ids = _padded(rng, lengths, 7, padding)
    emb = layers.Embedding(20, F, mask_zero=True)
    rnn = _rnn(kind, rng, return_sequences=True, return_state=True, go_backwards=go_backwards)
    seq, *states = rnn(emb(ids))
    for i, n in enumerate(lengths):
        real = ids[i:i + 1, :n] if padding == "post" else ids[i:i + 1, 7 - n:]
        seq_alone, *states_alone = rnn(emb(real))
        for s, s_alone in zip(states, states_alone):
            np.testing.assert_allclose(s.numpy()[i], s_alone.numpy()[0], rtol=1e-5, atol=1e-6)
        # the output sequence, in processing order: the real steps give what they give alone, and a masked
        # step repeats the previous output (zeros before the first real step), as Keras's backend rnn
        keep = ids[i] != 0
        if go_backwards:
            keep = keep[::-1]
        got = seq.numpy()[i]
        np.testing.assert_allclose(got[keep], seq_alone.numpy()[0], rtol=1e-5, atol=1e-6)
        previous = np.zeros(U, np.float32)
        for t in range(7):
            if not keep[t]:
                np.testing.assert_array_equal(got[t], previous)
            previous = got[t]
    np.testing.assert_array_equal(seq._keras_mask.numpy(), ids != 0)  # the input's mask, unflipped
    assert all(getattr(s, "_keras_mask", None) is None for s in states)


def test_zero_output_for_mask_and_initial_state():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 4, F)).astype(np.float32)
    mask = np.array([[True, True, False, False], [False, True, True, True]])
    h0, c0 = rng.standard_normal((2, 2, U)).astype(np.float32)
    rnn = _rnn("lstm", rng, return_sequences=True, return_state=True, zero_output_for_mask=True)
    seq, h, c = rnn(x, initial_state=[h0, c0], mask=mask)
    np.testing.assert_array_equal(seq.numpy()[~mask], 0)
    # sample 1 starts masked: its states stay at the initial ones until the first real step
    alone_seq, alone_h, alone_c = rnn(x[1:, 1:], initial_state=[h0[1:], c0[1:]])
    np.testing.assert_allclose(h.numpy()[1], alone_h.numpy()[0], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(c.numpy()[1], alone_c.numpy()[0], rtol=1e-5, atol=1e-6)
    first_h = rnn(x[:1, :2], initial_state=[h0[:1], c0[:1]])[1]
    np.testing.assert_allclose(h.numpy()[0], first_h.numpy()[0], rtol=1e-5, atol=1e-6)


def test_all_masked_steps_and_int_masks():
    rng = np.random.default_rng(4)
    x = rng.standard_normal((3, 5, F)).astype(np.float32)
    rnn = _rnn("gru", rng, return_sequences=True)
    full = rnn(x, mask=np.ones((3, 5), np.int32)).numpy()  # a 0/1 integer mask reads as booleans
    np.testing.assert_allclose(full, rnn(x).numpy(), rtol=1e-6)
    out = rnn(x, mask=np.zeros((3, 5), bool)).numpy()  # nothing is real: zeros, no NaN
    np.testing.assert_array_equal(out, 0)


def test_unmasked_calls_keep_the_plain_loop(monkeypatch):
    """No mask, no extra work: the masked loop is never entered without a mask (or with Embedding
    whose mask_zero is False)."""
    def refuse(*args, **kwargs):
        raise AssertionError("masked loop used without a mask")
    monkeypatch.setattr(recurrent._RNN, "_masked_loop", refuse)
    rng = np.random.default_rng(0)
    model = dlgpu.Sequential([dlgpu.Input((6,), dtype="int32"), layers.Embedding(10, F),
                              layers.Bidirectional(layers.LSTM(U, return_sequences=True)), layers.GRU(U)])
    model(rng.integers(0, 10, (2, 6)))


@pytest.mark.parametrize("kind", sorted(CLASSES))
def test_bidirectional_matches_torch_pack_padded_sequence(kind):
    rng = np.random.default_rng(11)
    lengths = [6, 3, 1, 4]
    x = rng.standard_normal((4, 6, F)).astype(np.float32)
    mask = np.arange(6)[None, :] < np.array(lengths)[:, None]
    x[~mask] = 0.0
    bi = layers.Bidirectional(CLASSES[kind](U, return_sequences=True, return_state=True))
    bi.build((None, None, F))
    weights = [(rng.standard_normal(w.shape) * 0.5).astype(np.float32) for w in bi.weights]
    bi.set_weights(weights)
    seq, *states = bi(layers.Masking()(x))

    module = {"simple_rnn": torch.nn.RNN, "lstm": torch.nn.LSTM, "gru": torch.nn.GRU}[kind](
        F, U, batch_first=True, bidirectional=True)
    order = (lambda w: np.concatenate([np.split(w, 3, -1)[i] for i in (1, 0, 2)], -1)) if kind == "gru" \
        else (lambda w: w)
    n = len(weights) // 2
    with torch.no_grad():
        for suffix, (kernel, rec, bias) in (("", weights[:n]), ("_reverse", weights[n:])):
            getattr(module, "weight_ih_l0" + suffix).copy_(torch.tensor(order(kernel).T))
            getattr(module, "weight_hh_l0" + suffix).copy_(torch.tensor(order(rec).T))
            if kind == "gru":
                getattr(module, "bias_ih_l0" + suffix).copy_(torch.tensor(order(bias[0])))
                getattr(module, "bias_hh_l0" + suffix).copy_(torch.tensor(order(bias[1])))
            else:
                getattr(module, "bias_ih_l0" + suffix).copy_(torch.tensor(bias))
                getattr(module, "bias_hh_l0" + suffix).zero_()
        packed = torch.nn.utils.rnn.pack_padded_sequence(torch.tensor(x), torch.tensor(lengths), batch_first=True,
                                                         enforce_sorted=False)
        out, last = module(packed)
        out, _ = torch.nn.utils.rnn.pad_packed_sequence(out, batch_first=True, total_length=6)
    np.testing.assert_allclose(seq.numpy(), out.numpy(), rtol=1e-4, atol=1e-5)  # zeros at the padding
    h = last[0] if kind == "lstm" else last
    np.testing.assert_allclose(states[0].numpy(), h[0].numpy(), rtol=1e-4, atol=1e-5)     # forward h
    backward_h = states[2] if kind == "lstm" else states[1]
    np.testing.assert_allclose(backward_h.numpy(), h[1].numpy(), rtol=1e-4, atol=1e-5)
    np.testing.assert_array_equal(seq._keras_mask.numpy(), mask)


@pytest.mark.parametrize("kind,kwargs", [("simple_rnn", {}), ("lstm", {"go_backwards": True}), ("gru", {}),
                                         ("gru", {"reset_after": False, "zero_output_for_mask": True})])
def test_masked_gradients_finite_differences(kind, kwargs):
    layer = CLASSES[kind](3, return_sequences=True, return_state=True, dtype="float64", **kwargs)
    layer.build((None, None, 2))
    mask = np.array([[True, True, False, True], [False, True, True, False], [True, True, True, True]])

    def run(x, m, *weights):
        layer.kernel, layer.recurrent_kernel, layer.bias = weights
        return layer(x, mask=m)

    rng = np.random.default_rng(8)
    arrays = [rng.standard_normal((3, 4, 2)), mask] + [rng.standard_normal(w.shape) * 0.5 for w in layer.weights]
    grads = check_gradients(run, arrays, rtol=1e-5, atol=1e-7)
    # a step that is masked everywhere it appears gets no gradient through the input
    assert np.abs(grads[0][~mask]).max() == 0


# -- propagation through models ----------------------------------------------------------------------
def test_sequential_propagates_through_time_preserving_layers():
    rng = np.random.default_rng(5)
    model = dlgpu.Sequential([dlgpu.Input((None,), dtype="int32"), layers.Embedding(20, 6, mask_zero=True),
                              layers.Dense(5, activation="relu"), layers.Dropout(0.5), layers.Activation("tanh"),
                              layers.LayerNormalization(), layers.LSTM(U, return_sequences=True),
                              layers.GRU(U)])
    ids = _padded(rng, [2, 6, 4], 6)
    out = model(ids).numpy()
    for i, n in enumerate([2, 6, 4]):
        np.testing.assert_allclose(out[i], model(ids[i:i + 1, :n]).numpy()[0], rtol=1e-5, atol=1e-6)
    # the symbolic graph carries the masks too (x._keras_mask, as in Keras)
    assert model.outputs[0]._keras_mask is None
    masks = [layer._inbound_nodes[-1].outputs._keras_mask for layer in model.layers[:-1]]
    assert all(m is not None and m.shape == (None, None) and m.dtype == "bool" for m in masks)


def test_functional_bidirectional_pooling_and_nested_models():
    rng = np.random.default_rng(6)
    inp = dlgpu.Input((None,), dtype="int32")
    h = layers.Embedding(20, 6, mask_zero=True)(inp)
    h = layers.Bidirectional(layers.LSTM(U, return_sequences=True))(h)
    assert h._keras_mask is not None and h._keras_mask.shape == (None, None)
    pooled = layers.GlobalAveragePooling1D()(h)
    assert pooled._keras_mask is None
    model = dlgpu.Model(inp, layers.Dense(1)(pooled))
    ids = _padded(rng, [3, 6, 1], 6, padding="pre")
    out = model(ids).numpy()
    for i, n in enumerate([3, 6, 1]):
        np.testing.assert_allclose(out[i], model(ids[i:i + 1, 6 - n:]).numpy()[0], rtol=1e-5, atol=1e-6)
    # a model inside a model: the inner Embedding's mask reaches the outer LSTM
    inner = dlgpu.Sequential([dlgpu.Input((None,), dtype="int32"), layers.Embedding(20, 6, mask_zero=True)])
    outer_in = dlgpu.Input((None,), dtype="int32")
    seq = inner(outer_in)
    assert seq._keras_mask is not None
    outer = dlgpu.Model(outer_in, layers.SimpleRNN(U)(seq))
    got = outer(ids).numpy()
    np.testing.assert_allclose(got[2], outer(ids[2:, 5:]).numpy()[0], rtol=1e-5, atol=1e-6)
    # Keras's Functional.call(mask=...): a mask given to the model rides on its input
    float_in = dlgpu.Input((None, F))
    rnn_model = dlgpu.Model(float_in, layers.SimpleRNN(U)(float_in))
    x = rng.standard_normal((2, 4, F)).astype(np.float32)
    masked = rnn_model(x, mask=np.array([[True, True, False, False]] * 2)).numpy()
    np.testing.assert_allclose(masked, rnn_model(x[:, :2]).numpy(), rtol=1e-5, atol=1e-6)


def test_mask_reaching_a_layer_without_masking_warns_and_stops():
    x = layers.Embedding(10, 4, mask_zero=True)(np.array([[1, 2, 0]]))
    with pytest.warns(UserWarning, match="does not support masking"):
        y = layers.GlobalMaxPooling1D()(x)  # Keras 3: no masking here, padded steps take part in the max
    np.testing.assert_array_equal(y.numpy(), x.numpy().max(axis=1))
    assert getattr(y, "_keras_mask", None) is None
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no mask, no warning
        layers.GlobalMaxPooling1D()(layers.Embedding(10, 4)(np.array([[1, 2, 0]])))


# -- pooling, attention and merging -----------------------------------------------------------------
def test_global_average_pooling_1d_with_mask_matches_numpy():
    rng = np.random.default_rng(7)
    x = rng.standard_normal((3, 5, 4)).astype(np.float32)
    mask = np.array([[1, 1, 0, 0, 0], [1, 1, 1, 1, 1], [0, 0, 0, 0, 0]], bool)
    pool = layers.GlobalAveragePooling1D()
    got = pool(x, mask=mask).numpy()
    np.testing.assert_allclose(got[:2], [x[0, :2].mean(0), x[1].mean(0)], rtol=1e-6)
    np.testing.assert_array_equal(got[2], 0)  # all padding: zeros (Keras's 0/0 would be NaN)
    kept = layers.GlobalAveragePooling1D(keepdims=True)(x, mask=mask)
    assert kept.shape == (3, 1, 4)
    w = rng.standard_normal((3, 4))
    check_gradients(lambda t: layers.GlobalAveragePooling1D(dtype="float64")(t, mask=mask), [x])
    check_gradients(lambda t: ops.multiply(layers.GlobalAveragePooling1D(dtype="float64")(t, mask=mask), w), [x])


def _softmax(z):
    z = z - z.max(-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(-1, keepdims=True)


def test_attention_uses_the_inputs_masks():
    rng = np.random.default_rng(9)
    q = rng.standard_normal((2, 3, 4)).astype(np.float32)
    v = rng.standard_normal((2, 5, 4)).astype(np.float32)
    q_mask = np.array([[1, 1, 0], [1, 1, 1]], bool)
    v_mask = np.array([[1, 1, 1, 0, 0], [1, 0, 1, 1, 1]], bool)
    qt, vt = dlgpu.Tensor(q), dlgpu.Tensor(v)
    qt._keras_mask, vt._keras_mask = dlgpu.Tensor(q_mask), dlgpu.Tensor(v_mask)
    out = layers.Attention()([qt, vt])
    scores = q @ v.transpose(0, 2, 1) - 1e9 * ~v_mask[:, None, :]
    expected = (_softmax(scores) @ v) * q_mask[..., None]
    np.testing.assert_allclose(out.numpy(), expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(out._keras_mask.numpy(), q_mask)


def test_multi_head_attention_padding_mask_matches_explicit_attention_mask():
    rng = np.random.default_rng(10)
    ids = _padded(rng, [4, 2], 5)
    emb = layers.Embedding(20, 8, mask_zero=True)
    x = emb(ids)
    mha = layers.MultiHeadAttention(num_heads=2, key_dim=3)
    auto = mha(x, x)
    keep = ids != 0
    explicit = mha(x.numpy(), x.numpy(), attention_mask=keep[:, :, None] & keep[:, None, :])
    np.testing.assert_allclose(auto.numpy(), explicit.numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(auto._keras_mask.numpy(), keep)
    # the real steps of sample 1 do not see its padding: its first two rows match the unpadded sample
    alone = mha(emb(ids[1:, :2]), emb(ids[1:, :2]))
    np.testing.assert_allclose(auto.numpy()[1, :2], alone.numpy()[0], rtol=1e-5, atol=1e-6)
    # in a functional model (self-attention, a residual Add, pooling) the mask goes with the tensors
    inp = dlgpu.Input((None,), dtype="int32")
    h = layers.Embedding(20, 8, mask_zero=True)(inp)
    a = layers.MultiHeadAttention(2, 4)(h, h)
    assert a._keras_mask is not None
    s = layers.Add()([h, a])
    assert s._keras_mask is not None
    model = dlgpu.Model(inp, layers.GlobalAveragePooling1D()(s))
    np.testing.assert_allclose(model(ids).numpy()[1], model(ids[1:, :2]).numpy()[0], rtol=1e-5, atol=1e-6)


def test_merge_layers_combine_masks_as_keras():
    a, b = dlgpu.Tensor(np.ones((1, 3, 2), np.float32) * 2), dlgpu.Tensor(np.arange(6, dtype=np.float32).reshape(1, 3, 2))
    a._keras_mask = dlgpu.Tensor(np.array([[True, False, False]]))
    b._keras_mask = dlgpu.Tensor(np.array([[False, True, False]]))
    assert layers.Add()([a, b])._keras_mask.numpy().tolist() == [[True, True, False]]
    assert layers.Concatenate()([a, b])._keras_mask.numpy().tolist() == [[True, True, False]]
    assert layers.Concatenate(axis=1)([a, b])._keras_mask.numpy().tolist() == [[True, False, False, False, True,
                                                                               False]]
    plain = dlgpu.Tensor(np.ones((1, 3, 2), np.float32))
    assert getattr(layers.Add()([a, plain]), "_keras_mask", None) is None
    assert layers.Concatenate()([a, plain])._keras_mask.numpy().tolist() == [[True, True, True]]
    # Maximum/Minimum: a masked entry takes the other operand's value; Multiply: masked entries count as 1
    # and a step no input keeps is 0
    bn = b.numpy()
    np.testing.assert_array_equal(layers.Maximum()([a, b]).numpy()[0], [[2, 2], bn[0, 1], [2, 2]])
    np.testing.assert_array_equal(layers.Multiply()([a, b]).numpy()[0], [[2, 2], bn[0, 1], [0, 0]])


# -- losses, metrics, and training ---------------------------------------------------------------------
def test_loss_and_metrics_weight_by_the_output_mask():
    rng = np.random.default_rng(12)
    probs = _softmax(rng.standard_normal((2, 4, 3))).astype(np.float32)
    labels = rng.integers(0, 3, (2, 4))
    mask = np.array([[True, True, True, False], [True, False, False, False]])
    y_pred = dlgpu.Tensor(probs)
    y_pred._keras_mask = dlgpu.Tensor(mask)
    per_step = -np.log(np.take_along_axis(probs, labels[..., None], -1)[..., 0])
    loss = dlgpu.losses.SparseCategoricalCrossentropy()(labels, y_pred)
    np.testing.assert_allclose(float(loss), per_step[mask].mean(), rtol=1e-5)
    mse = dlgpu.losses.MeanSquaredError()(probs * 0, y_pred)
    np.testing.assert_allclose(float(mse), (probs ** 2).mean(-1)[mask].mean(), rtol=1e-5)
    acc = dlgpu.metrics.SparseCategoricalAccuracy()
    acc.update_state(labels, y_pred)
    np.testing.assert_allclose(float(acc.result()), (probs.argmax(-1) == labels)[mask].mean(), rtol=1e-6)


def test_sequence_tagging_fit_ignores_padding():
    """A model whose output keeps the mask: fit/evaluate average over real steps only, so labels under
    the padding (garbage here) change nothing."""
    rng = np.random.default_rng(13)
    ids = _padded(rng, rng.integers(2, 7, 32), 6)
    labels = (ids > 10).astype(np.int32)
    garbage = labels.copy()
    garbage[ids == 0] = 1
    model = dlgpu.Sequential([dlgpu.Input((None,), dtype="int32"), layers.Embedding(20, 8, mask_zero=True),
                              layers.SimpleRNN(8, return_sequences=True), layers.Dense(2, activation="softmax")])
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    a = model.evaluate(ids, labels, verbose=0)
    b = model.evaluate(ids, garbage, verbose=0)
    np.testing.assert_allclose(a, b, rtol=1e-6)


def _sentiment_data(rng, n):
    """Variable-length 'reviews': the label is whether word 1 ('good') outnumbers word 2 ('bad'); pre-padded
    with 0 as keras.utils.pad_sequences does."""
    x = np.zeros((n, 12), np.int32)
    y = np.zeros(n, np.float32)
    for i in range(n):
        length = rng.integers(3, 13)
        words = rng.integers(3, 30, length)
        good, bad = rng.integers(0, 3, 2)
        if good == bad:
            good += 1
        spots = rng.permutation(length)[:good + bad]
        words[spots[:good]], words[spots[good:]] = 1, 2
        x[i, 12 - length:] = words
        y[i] = good > bad
    return x, y


def test_padded_sentiment_task_trains_and_round_trips(tmp_path):
    dlgpu.set_random_seed(0)
    x, y = _sentiment_data(np.random.default_rng(14), 200)
    inp = dlgpu.Input((None,), dtype="int32")
    h = layers.Embedding(30, 12, mask_zero=True)(inp)
    h = layers.Bidirectional(layers.LSTM(8, return_sequences=True))(h)
    h = layers.GlobalAveragePooling1D()(h)
    model = dlgpu.Model(inp, layers.Dense(1, activation="sigmoid")(h))
    model.compile(optimizer=dlgpu.optimizers.Adam(0.03), loss="binary_crossentropy", metrics=["accuracy"])
    model.fit(x, y, epochs=5, batch_size=25, verbose=0)
    _, accuracy = model.evaluate(x, y, verbose=0)
    assert accuracy > 0.95, accuracy
    x_new, y_new = _sentiment_data(np.random.default_rng(99), 200)  # reviews it never saw
    _, accuracy = model.evaluate(x_new, y_new, verbose=0)
    assert accuracy > 0.85, accuracy
    path = tmp_path / "sentiment.dlgpu"
    model.save(path)
    loaded = load_model(path)
    assert loaded.get_layer(model.layers[1].name).mask_zero
    np.testing.assert_allclose(loaded.predict(x[:50], verbose=0), model.predict(x[:50], verbose=0), rtol=1e-5,
                               atol=1e-6)


def test_masking_layer_before_rnn_in_sequential_saves():
    rng = np.random.default_rng(15)
    x = rng.standard_normal((3, 5, 2)).astype(np.float32)
    x[0, 3:] = 0.0
    x[2, :2] = 0.0
    model = dlgpu.Sequential([dlgpu.Input((None, 2)), layers.Masking(0.0), layers.LSTM(3), layers.Dense(1)])
    out = model(x).numpy()
    np.testing.assert_allclose(out[0], model(x[:1, :3]).numpy()[0], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(out[2], model(x[2:, 2:]).numpy()[0], rtol=1e-5, atol=1e-6)
    clone = dlgpu.Sequential.from_config(model.get_config())
    clone.set_weights(model.get_weights())
    np.testing.assert_allclose(clone(x).numpy(), out, rtol=1e-6)


def test_lambda_mask_argument_as_keras():
    x = layers.Embedding(10, 3, mask_zero=True)(np.array([[1, 0, 2]]))
    with pytest.warns(UserWarning, match="does not support masking"):  # no `mask` argument: dropped, as Keras
        assert getattr(layers.Lambda(lambda t: t * 2)(x), "_keras_mask", None) is None
    halved = layers.Lambda(lambda t, mask=None: t * ops.cast(ops.expand_dims(mask, -1), "float32"),
                           mask=lambda t, mask: mask)(x)
    np.testing.assert_array_equal(halved._keras_mask.numpy(), [[True, False, True]])
    np.testing.assert_array_equal(halved.numpy()[0, 1], 0)


# -- bad masks -----------------------------------------------------------------------------------------
def test_bad_masks_name_the_layer():
    x = np.zeros((2, 4, F), np.float32)
    lstm = layers.LSTM(U, name="my_lstm")
    with pytest.raises(ValueError, match=r"my_lstm.*\(2, 4\).*\(2, 3\)"):
        lstm(x, mask=np.ones((2, 3), bool))
    with pytest.raises(TypeError, match=r"my_lstm.*dtype"):
        lstm(x, mask=np.array([["a"] * 4] * 2))
    pool = layers.GlobalAveragePooling1D(name="pool")
    with pytest.raises(ValueError, match=r"'pool'.*\(2, 4\)"):
        pool(x, mask=np.ones((4, 2), bool))
    q = dlgpu.Tensor(np.zeros((2, 3, 4), np.float32))
    q._keras_mask = dlgpu.Tensor(np.ones((2, 5), bool))
    with pytest.raises(ValueError, match=r"MultiHeadAttention.*query mask"):
        layers.MultiHeadAttention(2, 2, name="mha")(q, q)
    inp, mask_in = dlgpu.Input((None, F)), dlgpu.Input((None,), dtype="bool")
    with pytest.raises(NotImplementedError, match=r"'my_lstm'.*symbolic `mask=`"):
        lstm(inp, mask=mask_in)
    with pytest.raises(ValueError, match=r"'att'.*value mask"):
        layers.Attention(name="att")([np.zeros((2, 3, 4), np.float32), np.zeros((2, 3, 4), np.float32)],
                                     mask=[None, np.ones((2, 2), bool)])


# -- GPU (skipped without one) ---------------------------------------------------------------------------
@pytest.mark.gpu
def test_masked_recurrent_model_on_gpu_matches_cpu():
    rng = np.random.default_rng(16)
    ids = _padded(rng, [5, 2, 7, 3], 7)

    def run(device, weights=None):
        with dlgpu.device(device):
            dlgpu.set_random_seed(1)
            model = dlgpu.Sequential([dlgpu.Input((None,), dtype="int32"), layers.Embedding(20, F, mask_zero=True),
                                      layers.Bidirectional(layers.LSTM(U, return_sequences=True)),
                                      layers.GRU(U, return_sequences=True), layers.GlobalAveragePooling1D(),
                                      layers.Dense(2)])
            if weights is not None:
                model.set_weights(weights)
            with dlgpu.GradientTape() as tape:
                loss = ops.sum(ops.square(model(ids)))
            grads = tape.gradient(loss, model.trainable_weights)
        return model.get_weights(), [loss.numpy()] + [g.numpy() for g in grads]

    weights, on_cpu = run("cpu")
    _, on_gpu = run("gpu", weights)
    for a, b in zip(on_gpu, on_cpu):
        np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-5)
