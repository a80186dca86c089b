"""SimpleRNN, LSTM, GRU and Bidirectional: the layer contract; outputs, states and gradients against PyTorch
(nn.RNN / nn.LSTM / nn.GRU with the weights copied over) and against Keras's cell equations written out in
numpy (GRU reset_after=False, dropout masks); finite differences in float64; shapes, configs, training and
saving inside models; bad inputs."""

import functools
import json

import numpy as np
import pytest

import dlgpu
from dlgpu import layers, ops
from dlgpu.layers import recurrent
from dlgpu.models import load_model

from helpers import assert_model_on_gpu_matches_cpu, check_gradients

from .layer_test_case import run_layer_test

torch = pytest.importorskip("torch")

CLASSES = {"simple_rnn": layers.SimpleRNN, "lstm": layers.LSTM, "gru": layers.GRU}
GATES = {"simple_rnn": 1, "lstm": 4, "gru": 3}
B, T, F, U = 3, 7, 5, 4


# -- the layer contract ---------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", sorted(CLASSES))
@pytest.mark.parametrize("return_sequences", [False, True])
def test_contract(kind, return_sequences):
    k = GATES[kind]
    bias = (2, 3 * U) if kind == "gru" else (k * U,)
    run_layer_test(CLASSES[kind], {"units": U, "return_sequences": return_sequences}, (2, 6, F),
                   (2, 6, U) if return_sequences else (2, U), expected_num_trainable_weights=3,
                   expected_weight_shapes=[(F, k * U), (U, k * U), bias])


def test_contract_gru_reset_before_and_no_bias():
    run_layer_test(layers.GRU, {"units": U, "reset_after": False}, (2, 6, F), (2, U),
                   expected_num_trainable_weights=3, expected_weight_shapes=[(F, 3 * U), (U, 3 * U), (3 * U,)])
    run_layer_test(layers.LSTM, {"units": U, "use_bias": False, "go_backwards": True}, (2, 6, F), (2, U),
                   expected_num_trainable_weights=2, expected_weight_shapes=[(F, 4 * U), (U, 4 * U)])


def test_contract_bidirectional():
    run_layer_test(layers.Bidirectional, {"layer": layers.LSTM(U, return_sequences=True)}, (2, 6, F),
                   (2, 6, 2 * U), expected_num_trainable_weights=6)
    run_layer_test(layers.Bidirectional, {"layer": layers.GRU(U), "merge_mode": "sum"}, (2, 6, F), (2, U),
                   expected_num_trainable_weights=6)


def test_initial_weights_as_keras():
    """glorot_uniform kernel, orthogonal recurrent kernel, zero bias with LSTM's forget gate at 1."""
    lstm = layers.LSTM(U)
    lstm.build((None, None, F))
    kernel, recurrent_kernel, bias = lstm.get_weights()
    limit = np.sqrt(6 / (F + 4 * U))
    assert np.abs(kernel).max() <= limit and np.abs(kernel).max() > 0.5 * limit
    # (U, 4U) orthogonal: its rows are orthonormal
    np.testing.assert_allclose(recurrent_kernel @ recurrent_kernel.T, np.eye(U), atol=1e-5)
    np.testing.assert_array_equal(bias, np.r_[np.zeros(U), np.ones(U), np.zeros(2 * U)])
    plain = layers.LSTM(U, unit_forget_bias=False)
    plain.build((None, None, F))
    np.testing.assert_array_equal(plain.get_weights()[2], np.zeros(4 * U))
    # Keras's paths: the weights live in the layer's cell (lstm/lstm_cell/kernel)
    assert [w.path for w in lstm.weights] == [f"{lstm.name}/lstm_cell/kernel", f"{lstm.name}/lstm_cell/recurrent_kernel",
                                              f"{lstm.name}/lstm_cell/bias"]


# -- PyTorch references --------------------------------------------------------------------------------
def _zrh_to_rzn(w):
    """Keras GRU column blocks [z, r, h] in torch's order [r, z, n] (last axis)."""
    z, r, h = np.split(w, 3, axis=-1)
    return np.concatenate([r, z, h], axis=-1)


def _rzn_to_zrh(w):
    r, z, n = np.split(w, 3, axis=-1)
    return np.concatenate([z, r, n], axis=-1)


def _pair(kind, rng, use_bias=True, activation="tanh", **kwargs):
    """A built dlgpu layer with random weights and the torch module computing the same function."""
    layer = CLASSES[kind](U, use_bias=use_bias, activation=activation, **kwargs)
    layer.build((None, None, F))
    weights = [(rng.standard_normal(w.shape) * 0.5).astype(np.float32) for w in layer.weights]
    layer.set_weights(weights)
    kernel, recurrent_kernel = weights[:2]
    module = {"simple_rnn": lambda: torch.nn.RNN(F, U, nonlinearity=activation, batch_first=True, bias=use_bias),
              "lstm": lambda: torch.nn.LSTM(F, U, batch_first=True, bias=use_bias),
              "gru": lambda: torch.nn.GRU(F, U, batch_first=True, bias=use_bias)}[kind]()
    to_torch = _zrh_to_rzn if kind == "gru" else (lambda w: w)
    with torch.no_grad():
        module.weight_ih_l0.copy_(torch.tensor(to_torch(kernel).T))
        module.weight_hh_l0.copy_(torch.tensor(to_torch(recurrent_kernel).T))
        if use_bias:
            bias = weights[2]
            if kind == "gru":  # (2, 3U): input biases, recurrent biases -- torch's b_i*, b_h*
                module.bias_ih_l0.copy_(torch.tensor(to_torch(bias[0])))
                module.bias_hh_l0.copy_(torch.tensor(to_torch(bias[1])))
            else:  # Keras has one bias where torch adds two
                module.bias_ih_l0.copy_(torch.tensor(bias))
                module.bias_hh_l0.zero_()
    return layer, module


def _torch_weight_grads(kind, module, use_bias):
    back = _rzn_to_zrh if kind == "gru" else (lambda w: w)
    grads = [back(module.weight_ih_l0.grad.numpy().T), back(module.weight_hh_l0.grad.numpy().T)]
    if use_bias:
        if kind == "gru":
            grads.append(np.stack([back(module.bias_ih_l0.grad.numpy()), back(module.bias_hh_l0.grad.numpy())]))
        else:
            grads.append(module.bias_ih_l0.grad.numpy())
    return grads


CASES = [
    # (return_sequences, return_state, go_backwards, initial_state, use_bias)
    (False, False, False, False, True),
    (True, False, False, False, True),
    (True, True, False, True, True),
    (False, True, True, False, True),
    (True, False, True, True, True),
    (True, True, False, False, False),
]


@pytest.mark.parametrize("kind", sorted(CLASSES))
@pytest.mark.parametrize("return_sequences,return_state,go_backwards,initial_state,use_bias", CASES)
def test_matches_torch(kind, return_sequences, return_state, go_backwards, initial_state, use_bias):
    rng = np.random.default_rng(CASES.index((return_sequences, return_state, go_backwards, initial_state, use_bias)))
    layer, module = _pair(kind, rng, use_bias, return_sequences=return_sequences, return_state=return_state,
                          go_backwards=go_backwards)
    x = rng.standard_normal((B, T, F)).astype(np.float32)
    n_states = 2 if kind == "lstm" else 1
    states0 = [rng.standard_normal((B, U)).astype(np.float32) for _ in range(n_states)] if initial_state else None

    # dlgpu: outputs and gradients of a random linear function of everything returned
    xs = [dlgpu.Tensor(x)] + ([dlgpu.Tensor(s) for s in states0] if initial_state else [])
    with dlgpu.GradientTape() as tape:
        tape.watch(xs)
        result = layer(xs[0], initial_state=xs[1:] or None)
        result = result if return_state else [result]
        ups = [rng.standard_normal(r.shape).astype(np.float32) for r in result]
        loss = functools.reduce(ops.add, [ops.sum(ops.multiply(r, u)) for r, u in zip(result, ups)])
    grads = tape.gradient(loss, xs + layer.trainable_weights)

    # torch: go_backwards is the reversed sequence; outputs come in processing order, as Keras returns them
    tx = torch.tensor(x, requires_grad=True)
    t_states = [torch.tensor(s[None], requires_grad=True) for s in states0] if initial_state else []
    seq = torch.flip(tx, [1]) if go_backwards else tx
    if kind == "lstm":
        out, (h, c) = module(seq, tuple(t_states) if initial_state else None)
        finals = [h[0], c[0]]
    else:
        out, h = module(seq, t_states[0] if initial_state else None)
        finals = [h[0]]
    ref = [out if return_sequences else out[:, -1]] + (finals if return_state else [])
    sum((r * torch.tensor(u)).sum() for r, u in zip(ref, ups)).backward()

    assert [tuple(r.shape) for r in result] == [tuple(r.shape) for r in ref]
    for got, want in zip(result, ref):
        np.testing.assert_allclose(got.numpy(), want.detach().numpy(), rtol=1e-4, atol=1e-5)
    want_grads = [tx.grad.numpy()] + [s.grad.numpy()[0] for s in t_states] + \
        _torch_weight_grads(kind, module, use_bias)
    assert len(grads) == len(want_grads)
    for got, want in zip(grads, want_grads):
        np.testing.assert_allclose(got.numpy(), want, rtol=1e-4, atol=1e-5)


def test_simple_rnn_relu_matches_torch():
    rng = np.random.default_rng(5)
    layer, module = _pair("simple_rnn", rng, activation="relu", return_sequences=True)
    x = rng.standard_normal((B, T, F)).astype(np.float32)
    np.testing.assert_allclose(layer(x).numpy(), module(torch.tensor(x))[0].detach().numpy(), rtol=1e-4, atol=1e-5)


# -- Keras's equations in numpy: GRU reset_after=False and the dropout masks ----------------------------
def _sigmoid(v):
    return 1 / (1 + np.exp(-v))


def _keras_reference(kind, x, weights, *, reset_after=True, go_backwards=False, input_masks=None,
                     state_masks=None):
    """The sequence of outputs and the final states from Keras's cell equations (simple_rnn.py, lstm.py,
    gru.py: implementation 1, one matmul per gate), with the dropout masks given per gate (None: no dropout)."""
    k = GATES[kind]
    kernel, recurrent_kernel = weights[:2]
    bias = weights[2] if len(weights) > 2 else np.zeros((2, k * U) if kind == "gru" and reset_after else k * U)
    n = x.shape[0]
    in_m = input_masks if input_masks is not None else [np.ones((n, x.shape[2]))] * k
    st_m = state_masks if state_masks is not None else [np.ones((n, U))] * k
    blocks = [slice(g * U, (g + 1) * U) for g in range(k)]
    h, c = np.zeros((n, U)), np.zeros((n, U))
    outputs = []
    for t in (range(x.shape[1] - 1, -1, -1) if go_backwards else range(x.shape[1])):
        x_t = x[:, t]
        in_bias = bias[0] if kind == "gru" and reset_after else bias
        xg = [(x_t * in_m[g]) @ kernel[:, blocks[g]] + in_bias[blocks[g]] for g in range(k)]
        if kind == "simple_rnn":
            h = np.tanh(xg[0] + (h * st_m[0]) @ recurrent_kernel)
        elif kind == "lstm":
            hg = [(h * st_m[g]) @ recurrent_kernel[:, blocks[g]] for g in range(4)]
            i, f, o = _sigmoid(xg[0] + hg[0]), _sigmoid(xg[1] + hg[1]), _sigmoid(xg[3] + hg[3])
            c = f * c + i * np.tanh(xg[2] + hg[2])
            h = o * np.tanh(c)
        else:
            rec_bias = bias[1] if reset_after else np.zeros(3 * U)
            hz = (h * st_m[0]) @ recurrent_kernel[:, blocks[0]] + rec_bias[blocks[0]]
            hr = (h * st_m[1]) @ recurrent_kernel[:, blocks[1]] + rec_bias[blocks[1]]
            z, r = _sigmoid(xg[0] + hz), _sigmoid(xg[1] + hr)
            if reset_after:
                hh = np.tanh(xg[2] + r * ((h * st_m[2]) @ recurrent_kernel[:, blocks[2]] + rec_bias[blocks[2]]))
            else:
                hh = np.tanh(xg[2] + (r * (h * st_m[2])) @ recurrent_kernel[:, blocks[2]])
            h = z * h + (1 - z) * hh
        outputs.append(h)
    return np.stack(outputs, axis=1), h, c


@pytest.mark.parametrize("go_backwards", [False, True])
def test_gru_reset_before_matches_keras_equations(go_backwards):
    rng = np.random.default_rng(3)
    layer = layers.GRU(U, reset_after=False, return_sequences=True, return_state=True, go_backwards=go_backwards)
    layer.build((None, None, F))
    weights = [rng.standard_normal(w.shape).astype(np.float32) * 0.5 for w in layer.weights]
    layer.set_weights(weights)
    x = rng.standard_normal((B, T, F)).astype(np.float32)
    out, h = layer(x)
    ref_out, ref_h, _ = _keras_reference("gru", x, weights, reset_after=False, go_backwards=go_backwards)
    np.testing.assert_allclose(out.numpy(), ref_out, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(h.numpy(), ref_h, rtol=1e-4, atol=1e-5)


def _fixed_masks(data, rate, generator=None):
    """A stand-in for ops.nn.dropout_mask: the same mask for the same shape, every time."""
    keep = np.random.default_rng(sum(data.shape) * 7 + data.ndim).random(data.shape) >= rate
    return (keep / (1 - rate)).astype(data.dtype)


DROPOUT_CASES = [
    # (kind, reset_after, dropout, recurrent_dropout): with recurrent_dropout Keras draws one mask per gate
    ("simple_rnn", True, 0.3, 0.4),
    ("lstm", True, 0.3, 0.0),
    ("lstm", True, 0.3, 0.4),
    ("gru", True, 0.3, 0.0),
    ("gru", True, 0.0, 0.4),
    ("gru", False, 0.3, 0.4),
]


@pytest.mark.parametrize("kind,reset_after,rate,recurrent_rate", DROPOUT_CASES)
def test_dropout_masks_as_keras(kind, reset_after, rate, recurrent_rate, monkeypatch):
    monkeypatch.setattr(recurrent, "dropout_mask", _fixed_masks)
    rng = np.random.default_rng(4)
    kwargs = {"reset_after": reset_after} if kind == "gru" else {}
    layer = CLASSES[kind](U, dropout=rate, recurrent_dropout=recurrent_rate, return_sequences=True, **kwargs)
    layer.build((None, None, F))
    weights = [rng.standard_normal(w.shape).astype(np.float32) * 0.5 for w in layer.weights]
    layer.set_weights(weights)
    x = rng.standard_normal((B, T, F)).astype(np.float32)

    count = GATES[kind] if recurrent_rate > 0 and kind != "simple_rnn" else None

    def masks(shape, r):
        if r == 0:
            return None
        full = _fixed_masks(np.empty(shape if count is None else (count,) + shape), r)
        return [full] * GATES[kind] if count is None else list(full)
    ref, _, _ = _keras_reference(kind, x, weights, reset_after=reset_after, input_masks=masks((B, F), rate),
                                 state_masks=masks((B, U), recurrent_rate))
    np.testing.assert_allclose(layer(x, training=True).numpy(), ref, rtol=1e-4, atol=1e-5)
    plain, _, _ = _keras_reference(kind, x, weights, reset_after=reset_after)
    np.testing.assert_allclose(layer(x, training=False).numpy(), plain, rtol=1e-4, atol=1e-5)
    assert not np.allclose(ref, plain)


def test_dropout_draws_new_masks_each_call():
    layer = layers.LSTM(U, dropout=0.5, recurrent_dropout=0.5)
    x = np.random.default_rng(0).standard_normal((B, T, F)).astype(np.float32)
    a, b = layer(x, training=True).numpy(), layer(x, training=True).numpy()
    assert not np.allclose(a, b)
    np.testing.assert_array_equal(layer(x).numpy(), layer(x, training=False).numpy())


# -- finite differences (float64, tiny) -----------------------------------------------------------------
FD_CASES = [
    ("simple_rnn", {}),
    ("lstm", {}),
    ("lstm", {"go_backwards": True, "dropout": 0.3, "recurrent_dropout": 0.4}),
    ("gru", {}),
    ("gru", {"reset_after": False}),
    ("gru", {"reset_after": False, "dropout": 0.3, "recurrent_dropout": 0.4}),
]


@pytest.mark.parametrize("kind,kwargs", FD_CASES)
def test_gradients_finite_differences(kind, kwargs, monkeypatch):
    """Gradients w.r.t. inputs, initial states and every weight; dropout cases run in training mode with
    fixed masks, so each gate's masked path is checked too."""
    monkeypatch.setattr(recurrent, "dropout_mask", _fixed_masks)
    layer = CLASSES[kind](3, return_sequences=True, return_state=True, dtype="float64", **kwargs)
    layer.build((None, None, 2))
    training = bool(kwargs.get("dropout"))
    n_states = 2 if kind == "lstm" else 1

    def run(x, *args):
        states, weights = args[:n_states], args[n_states:]
        # the layer computes with whatever tensors its weight attributes hold
        layer.kernel, layer.recurrent_kernel, layer.bias = weights
        return layer(x, initial_state=list(states), training=training)

    rng = np.random.default_rng(6)
    arrays = [rng.standard_normal((2, 3, 2))] + [rng.standard_normal((2, 3)) for _ in range(n_states)] + \
        [rng.standard_normal(w.shape) * 0.5 for w in layer.weights]
    check_gradients(run, arrays, rtol=1e-5, atol=1e-7)


# -- shapes ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", sorted(CLASSES))
def test_shapes_with_unknown_batch_and_time(kind):
    n_states = 2 if kind == "lstm" else 1
    inputs = dlgpu.Input((None, F))
    assert CLASSES[kind](U)(inputs).shape == (None, U)
    assert CLASSES[kind](U, return_sequences=True)(inputs).shape == (None, None, U)
    out = CLASSES[kind](U, return_sequences=True, return_state=True)(inputs)
    assert [t.shape for t in out] == [(None, None, U)] + [(None, U)] * n_states
    layer = CLASSES[kind](U, return_state=True)
    assert layer.compute_output_shape((None, None, F)) == [(None, U)] + [(None, U)] * n_states
    # one layer, sequences of different lengths and batch sizes
    seq = CLASSES[kind](U, return_sequences=True)
    for shape in [(2, 3, F), (5, 9, F), (1, 1, F)]:
        assert seq(np.zeros(shape, np.float32)).shape == shape[:2] + (U,)


def test_bidirectional_shapes_and_merge_modes():
    rng = np.random.default_rng(7)
    x = rng.standard_normal((B, T, F)).astype(np.float32)
    inputs = dlgpu.Input((None, F))
    for mode, width in [("concat", 2 * U), ("sum", U), ("mul", U), ("ave", U)]:
        assert layers.Bidirectional(layers.GRU(U, return_sequences=True), merge_mode=mode)(inputs).shape == \
            (None, None, width)
    both = layers.Bidirectional(layers.LSTM(U, return_state=True), merge_mode=None)(inputs)
    assert [t.shape for t in both] == [(None, U)] * 6
    bi = layers.Bidirectional(layers.LSTM(U, return_sequences=True, return_state=True))
    out, *states = bi(x)
    assert out.shape == (B, T, 2 * U) and [s.shape for s in states] == [(B, U)] * 4
    # forward half = a forward LSTM; backward half = a go_backwards LSTM's sequence flipped back to input order
    fwd, bwd = bi.forward_layer, bi.backward_layer
    assert (fwd.name, bwd.name, bwd.go_backwards) == (f"forward_{_last_lstm_name(bi)}",
                                                      f"backward_{_last_lstm_name(bi)}", True)
    np.testing.assert_allclose(out.numpy()[..., :U], fwd(x)[0].numpy(), rtol=1e-6)
    np.testing.assert_allclose(out.numpy()[..., U:], bwd(x)[0].numpy()[:, ::-1], rtol=1e-6)
    np.testing.assert_allclose(states[2].numpy(), bwd(x)[1].numpy(), rtol=1e-6)


def _last_lstm_name(bi):
    return bi.forward_layer.name[len("forward_"):]


# -- config ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", sorted(CLASSES))
def test_config_round_trip(kind):
    extra = {"gru": {"reset_after": False}, "lstm": {"unit_forget_bias": False}, "simple_rnn": {}}[kind]
    layer = CLASSES[kind](U, activation="relu", dropout=0.25, recurrent_dropout=0.1, return_sequences=True,
                          return_state=True, go_backwards=True, kernel_regularizer="l2", use_bias=False,
                          name=f"my_{kind}", **extra)
    config = json.loads(json.dumps(layer.get_config()))
    clone = CLASSES[kind].from_config(config)
    assert clone.get_config() == config
    for key, value in {"units": U, "activation": "relu", "dropout": 0.25, "recurrent_dropout": 0.1,
                       "return_sequences": True, "return_state": True, "go_backwards": True, "use_bias": False,
                       "name": f"my_{kind}", **extra}.items():
        assert config[key] == value, key
    assert layers.deserialize(layers.serialize(layer)).get_config() == config


def test_keras_written_config_loads():
    """The config Keras 3 writes for an LSTM (keys of its RNN base included) builds the same layer."""
    init = lambda name, config: {"module": "keras.initializers", "class_name": name, "config": config,  # noqa: E731
                                 "registered_name": None}
    config = {"name": "lstm_3", "trainable": True,
              "dtype": {"module": "keras", "class_name": "DTypePolicy", "config": {"name": "float32"},
                        "registered_name": None},
              "return_sequences": True, "return_state": False, "go_backwards": False, "stateful": False,
              "unroll": False, "zero_output_for_mask": False, "units": 8, "activation": "tanh",
              "recurrent_activation": "sigmoid", "use_bias": True, "unit_forget_bias": True,
              "kernel_initializer": init("GlorotUniform", {"seed": None}),
              "recurrent_initializer": init("Orthogonal", {"gain": 1.0, "seed": None}),
              "bias_initializer": init("Zeros", {}), "kernel_regularizer": None, "recurrent_regularizer": None,
              "bias_regularizer": None, "activity_regularizer": None, "kernel_constraint": None,
              "recurrent_constraint": None, "bias_constraint": None, "dropout": 0.0, "recurrent_dropout": 0.0,
              "seed": None}
    layer = layers.deserialize({"class_name": "LSTM", "config": config})
    assert isinstance(layer, layers.LSTM) and layer.units == 8 and layer.return_sequences
    assert layer(np.zeros((2, 3, 5), np.float32)).shape == (2, 3, 8)


def test_regularizers_add_losses():
    layer = layers.GRU(U, kernel_regularizer="l2", recurrent_regularizer="l1", bias_regularizer="l2",
                       activity_regularizer="l2")
    layer(np.ones((2, 3, F), np.float32))
    assert len(layer.losses) == 4
    k, rk, b = layer.get_weights()
    expected = 0.01 * (np.sum(k ** 2) + np.sum(np.abs(rk)) + np.sum(b ** 2))
    np.testing.assert_allclose(sum(float(l.numpy()) for l in layer.losses[1:]), expected, rtol=1e-5)


# -- inside models: training, saving, functional wiring of initial_state ---------------------------------
def _token_task(n, rng):
    """Is the first token of a 8-token sequence >= 5?  Only a memory of step 0 answers it at step 7."""
    x = rng.integers(0, 10, (n, 8))
    return x, (x[:, 0] >= 5).astype(np.int32)


@pytest.mark.parametrize("recurrent_layer", ["lstm", "gru", "bidirectional_simple_rnn"])
def test_sequential_learns_and_round_trips(recurrent_layer, tmp_path):
    dlgpu.set_random_seed(0)
    rng = np.random.default_rng(0)
    x, y = _token_task(512, rng)
    rnn = {"lstm": lambda: layers.LSTM(16), "gru": lambda: layers.GRU(16, dropout=0.1),
           "bidirectional_simple_rnn": lambda: layers.Bidirectional(layers.SimpleRNN(8))}[recurrent_layer]()
    model = dlgpu.Sequential([dlgpu.Input((8,), dtype="int32"), layers.Embedding(10, 8), rnn,
                              layers.Dense(2, activation="softmax")])
    model.compile(optimizer=dlgpu.optimizers.Adam(0.01), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    history = model.fit(x, y, epochs=8, batch_size=32, verbose=0).history
    assert history["loss"][-1] < 0.3 * history["loss"][0], history["loss"]
    x_test, y_test = _token_task(200, np.random.default_rng(1))
    assert model.evaluate(x_test, y_test, verbose=0)[1] > 0.9

    path = tmp_path / "model.dlgpu"
    model.save(path)
    loaded = load_model(path)
    assert [l.get_config() for l in loaded.layers] == [l.get_config() for l in model.layers]
    np.testing.assert_array_equal(loaded.predict(x_test, verbose=0), model.predict(x_test, verbose=0))


def test_encoder_decoder_initial_state_wiring_survives_saving(tmp_path):
    """The seq2seq idiom: an encoder's states start a decoder; the graph (and its saved config) carries
    them as inputs of the decoder's call."""
    enc_in, dec_in = dlgpu.Input((None, 3)), dlgpu.Input((None, 4))
    _, h, c = layers.LSTM(6, return_state=True)(enc_in)
    seq = layers.LSTM(6, return_sequences=True)(dec_in, initial_state=[h, c])
    model = dlgpu.Model([enc_in, dec_in], layers.Dense(2)(seq))
    rng = np.random.default_rng(8)
    a, b = rng.standard_normal((2, 5, 3)).astype(np.float32), rng.standard_normal((2, 4, 4)).astype(np.float32)
    out = model.predict([a, b], verbose=0)
    assert out.shape == (2, 4, 2)
    assert not np.allclose(out, model.predict([a * 0, b], verbose=0))  # the encoder reaches the decoder
    model.save(tmp_path / "s2s.dlgpu")
    loaded = load_model(tmp_path / "s2s.dlgpu")
    np.testing.assert_array_equal(loaded.predict([a, b], verbose=0), out)


# -- bad inputs and arguments ---------------------------------------------------------------------------
@pytest.mark.parametrize("kind", sorted(CLASSES))
def test_two_dimensional_input_errors(kind):
    with pytest.raises(ValueError, match=r"layer 'rnn_a'.*expected ndim=3, found ndim=2.*\(4, 5\)"):
        CLASSES[kind](U, name="rnn_a")(np.zeros((4, 5), np.float32))
    with pytest.raises(ValueError, match=r"layer 'rnn_b'.*expected ndim=3, found ndim=2.*\(None, 5\)"):
        CLASSES[kind](U, name="rnn_b")(dlgpu.Input((5,)))
    with pytest.raises(ValueError, match=r"'rnn_c'.*ndim=3.*found ndim=2.*\(4, 5\)"):
        CLASSES[kind](U, name="rnn_c")(np.zeros((4, 5), np.float32), initial_state=np.zeros((4, U), np.float32))
    with pytest.raises(ValueError, match=r"'bi'.*expected ndim=3, found ndim=2"):
        layers.Bidirectional(CLASSES[kind](U), name="bi")(np.zeros((4, 5), np.float32))


def test_wrong_features_and_states_errors():
    layer = layers.LSTM(U, name="enc")
    layer(np.zeros((2, 3, F), np.float32))
    with pytest.raises(ValueError, match=rf"'enc'.*axis -1.*value {F}.*\(2, 3, 7\)"):
        layer(np.zeros((2, 3, 7), np.float32))
    with pytest.raises(ValueError, match=r"'enc' \(LSTM\) expects 2 initial state.*\(h, c\).*received 1"):
        layer(np.zeros((2, 3, F), np.float32), initial_state=[np.zeros((2, U), np.float32)])
    with pytest.raises(ValueError, match=rf"'enc': initial state c.*\(2, {U}\).*\(2, 9\)"):
        layer(np.zeros((2, 3, F), np.float32), initial_state=[np.zeros((2, U)), np.zeros((2, 9))])
    with pytest.raises(ValueError, match=r"'enc'.*no time steps"):
        layer(np.zeros((2, 0, F), np.float32))


def test_bad_arguments():
    with pytest.raises(ValueError, match=r"LSTM.*units=0"):
        layers.LSTM(0)
    with pytest.raises(ValueError, match=r"GRU.*dropout=1.5"):
        layers.GRU(4, dropout=1.5)
    with pytest.raises(ValueError, match=r"SimpleRNN.*recurrent_dropout=-0.1"):
        layers.SimpleRNN(4, recurrent_dropout=-0.1)
    with pytest.raises(ValueError, match=r"'s'.*stateful=True.*batch size must be static"):  # test_stateful_rnn.py
        layers.LSTM(4, stateful=True, name="s")(dlgpu.Input((3, 2)))
    with pytest.raises(ValueError, match=r"GRU.*kernel_constraint.*'nonneg'"):
        layers.GRU(4, kernel_constraint="nonneg")
    with pytest.raises(ValueError, match=r"'m'.*mask.*\(2, 3\)"):  # masks: tests/layers/test_masking.py
        layers.GRU(4, name="m")(np.zeros((2, 3, 4), np.float32), mask=np.ones((3, 2), bool))
    with pytest.raises(ValueError, match=r"recurrent layer"):
        layers.Bidirectional(layers.Dense(3))
    with pytest.raises(ValueError, match=r"merge_mode 'max'"):
        layers.Bidirectional(layers.LSTM(3), merge_mode="max")
    with pytest.raises(ValueError, match=r"go_backwards"):
        layers.Bidirectional(layers.LSTM(3), backward_layer=layers.LSTM(3))
    with pytest.raises(ValueError, match=r"return_sequences"):
        layers.Bidirectional(layers.LSTM(3), backward_layer=layers.LSTM(3, go_backwards=True, return_sequences=True))


# -- GPU (skipped without one) ---------------------------------------------------------------------------
def _recurrent_model():
    return dlgpu.Sequential([dlgpu.Input((6, F)), layers.Bidirectional(layers.LSTM(U, return_sequences=True)),
                             layers.GRU(U, reset_after=False, return_sequences=True), layers.SimpleRNN(U),
                             layers.Dense(2)])


@pytest.mark.gpu
def test_recurrent_layers_on_gpu_match_cpu():
    x = np.random.default_rng(9).standard_normal((4, 6, F)).astype(np.float32)
    assert_model_on_gpu_matches_cpu(_recurrent_model, x)
