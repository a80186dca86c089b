"""RNN with cells: SimpleRNNCell, LSTMCell, GRUCell against PyTorch's nn.RNNCell / LSTMCell / GRUCell (values
and gradients, weights copied over); RNN(cell) against SimpleRNN / LSTM / GRU with the same weights (masked,
go_backwards, return_state, dropout with a seed); StackedRNNCells against stacked layers; a user-written cell
(Keras's guide's MinimalRNNCell) against numpy, trained, saved and loaded; finite differences; bad arguments."""

import numpy as np
import pytest

import dlgpu
from dlgpu import layers, ops
from dlgpu.models import load_model

from helpers import assert_model_on_gpu_matches_cpu, check_gradients

from .layer_test_case import run_layer_test

torch = pytest.importorskip("torch")

CELLS = {"simple_rnn": layers.SimpleRNNCell, "lstm": layers.LSTMCell, "gru": layers.GRUCell}
LAYERS = {"simple_rnn": layers.SimpleRNN, "lstm": layers.LSTM, "gru": layers.GRU}
GATES = {"simple_rnn": 1, "lstm": 4, "gru": 3}
B, T, F, U = 3, 6, 5, 4


def _x(shape=(B, T, F), seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def _padding_mask():
    mask = np.ones((B, T), bool)
    mask[0, 4:] = False   # right padding
    mask[1, :2] = False   # left padding
    mask[2, 3] = False    # a hole
    return mask


# -- the layer contract ---------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", sorted(CELLS))
def test_contract(kind):
    k = GATES[kind]
    bias = (2, 3 * U) if kind == "gru" else (k * U,)
    run_layer_test(layers.RNN, {"cell": CELLS[kind](U), "return_sequences": True}, (2, T, F), (2, T, U),
                   expected_num_trainable_weights=3, expected_weight_shapes=[(F, k * U), (U, k * U), bias])


def test_contract_stacked_and_list():
    run_layer_test(layers.RNN, {"cell": [layers.LSTMCell(U), layers.GRUCell(3, reset_after=False)]}, (2, T, F),
                   (2, 3), expected_num_trainable_weights=6,
                   expected_weight_shapes=[(F, 4 * U), (U, 4 * U), (4 * U,), (U, 9), (3, 9), (9,)])


def test_cell_configs_and_weight_paths():
    cell = layers.LSTMCell(U, recurrent_activation="hard_sigmoid", unit_forget_bias=False, dropout=0.1, seed=3,
                           name="cell")
    config = cell.get_config()
    assert {"units", "activation", "recurrent_activation", "use_bias", "kernel_initializer",
            "recurrent_initializer", "bias_initializer", "unit_forget_bias", "kernel_regularizer",
            "recurrent_regularizer", "bias_regularizer", "kernel_constraint", "recurrent_constraint",
            "bias_constraint", "dropout", "recurrent_dropout", "seed"} <= set(config)
    assert layers.LSTMCell.from_config(config).get_config() == config
    assert layers.GRUCell(U).get_config()["reset_after"] is True
    assert cell.state_size == [U, U] and cell.output_size == U
    assert layers.GRUCell(U).state_size == U and layers.SimpleRNNCell(U).state_size == U
    rnn = layers.RNN(cell, name="rnn")
    rnn(_x())
    assert [w.path for w in rnn.weights] == ["rnn/cell/kernel", "rnn/cell/recurrent_kernel", "rnn/cell/bias"]
    config = rnn.get_config()
    assert config["cell"]["class_name"] == "LSTMCell"
    for key in ("return_sequences", "return_state", "go_backwards", "stateful", "unroll", "zero_output_for_mask"):
        assert key in config
    clone = layers.deserialize(layers.serialize(rnn))
    assert isinstance(clone.cell, layers.LSTMCell) and clone.cell is not cell
    assert clone.get_config() == config


# -- cells against PyTorch ------------------------------------------------------------------------------
def _zrh_to_rzn(w):
    z, r, h = np.split(w, 3, axis=-1)
    return np.concatenate([r, z, h], axis=-1)


def _torch_cell(kind, cell):
    kernel, recurrent_kernel, bias = (w.numpy().astype(np.float64) for w in cell.weights)
    if kind == "gru":
        module = torch.nn.GRUCell(F, U).double()
        kernel, recurrent_kernel = _zrh_to_rzn(kernel), _zrh_to_rzn(recurrent_kernel)
        bias_ih, bias_hh = _zrh_to_rzn(bias[0]), _zrh_to_rzn(bias[1])
    else:
        module = (torch.nn.LSTMCell if kind == "lstm" else torch.nn.RNNCell)(F, U).double()
        bias_ih, bias_hh = bias, np.zeros_like(bias)
    with torch.no_grad():
        for name, value in (("weight_ih", kernel.T), ("weight_hh", recurrent_kernel.T), ("bias_ih", bias_ih),
                            ("bias_hh", bias_hh)):
            getattr(module, name).copy_(torch.from_numpy(np.ascontiguousarray(value)))
    return module


@pytest.mark.parametrize("kind", sorted(CELLS))
def test_cell_matches_torch(kind):
    """One step: output, new states, and the gradients for the input, the states and the weights."""
    cell = CELLS[kind](U, dtype="float64")
    cell.build((None, F))
    rng = np.random.default_rng(1)
    cell.set_weights([rng.standard_normal(w.shape) * 0.5 for w in cell.weights])
    n_states = 2 if kind == "lstm" else 1
    x = rng.standard_normal((B, F))
    states = [rng.standard_normal((B, U)) for _ in range(n_states)]
    seeds = [rng.standard_normal((B, U)) for _ in range(1 + n_states)]

    xs = [dlgpu.Tensor(a, dtype="float64") for a in [x] + states]
    with dlgpu.GradientTape() as tape:
        tape.watch(xs)
        output, new_states = cell(xs[0], list(xs[1:]))
        new_states = new_states if isinstance(new_states, list) else [new_states]
        loss = sum(ops.sum(ops.multiply(t, dlgpu.Tensor(s, dtype="float64")))
                   for t, s in zip([output] + new_states, seeds))
    grads = tape.gradient(loss, xs + cell.trainable_weights)

    module = _torch_cell(kind, cell)
    txs = [torch.tensor(a, requires_grad=True) for a in [x] + states]
    if kind == "lstm":
        h, c = module(txs[0], (txs[1], txs[2]))
        touts = [h, h, c]
    else:
        h = module(txs[0], txs[1])
        touts = [h, h]
    sum((t * torch.from_numpy(s)).sum() for t, s in zip(touts, seeds)).backward()
    for ours, theirs in zip([output] + new_states, touts):
        np.testing.assert_allclose(ours.numpy(), theirs.detach().numpy(), rtol=1e-10, atol=1e-12)
    for ours, theirs in zip(grads[:1 + n_states], txs):
        np.testing.assert_allclose(ours.numpy(), theirs.grad.numpy(), rtol=1e-10, atol=1e-12)
    # weight gradients, mapped back to Keras's layout
    dk, drk = module.weight_ih.grad.numpy().T, module.weight_hh.grad.numpy().T
    db_ih, db_hh = module.bias_ih.grad.numpy(), module.bias_hh.grad.numpy()
    if kind == "gru":
        back = (lambda w: np.concatenate([np.split(w, 3, -1)[i] for i in (1, 0, 2)], -1))
        expected = [back(dk), back(drk), np.stack([back(db_ih), back(db_hh)])]
    else:
        expected = [dk, drk, db_ih]
    for ours, theirs in zip(grads[1 + n_states:], expected):
        np.testing.assert_allclose(ours.numpy(), theirs, rtol=1e-10, atol=1e-12)


def test_cell_state_structure_as_keras():
    """A single-state cell given a tensor returns a tensor; given a list, a list (Keras's tree rule)."""
    cell = layers.GRUCell(U)
    x, h = _x((B, F)), np.zeros((B, U), np.float32)
    out, state = cell(x, h)
    assert not isinstance(state, list) and state.shape == (B, U)
    out, states = cell(x, [h])
    assert isinstance(states, list) and len(states) == 1
    np.testing.assert_array_equal(out.numpy(), states[0].numpy())


# -- RNN(cell) is the layer --------------------------------------------------------------------------------
def _pair(kind, kwargs, seq_kwargs, cell_kwargs=None):
    rnn = layers.RNN(CELLS[kind](U, **kwargs, **(cell_kwargs or {})), **seq_kwargs)
    layer = LAYERS[kind](U, **kwargs, **seq_kwargs, **(cell_kwargs or {}))
    rnn.build((None, None, F))
    layer.build((None, None, F))
    rng = np.random.default_rng(2)
    weights = [rng.standard_normal(w.shape).astype(np.float32) * 0.5 for w in rnn.weights]
    rnn.set_weights(weights)
    layer.set_weights(weights)
    return rnn, layer


def _grads_of(layer, x, mask):
    xt = dlgpu.Tensor(x)
    with dlgpu.GradientTape() as tape:
        tape.watch(xt)
        out = layer(xt, mask=mask)
        outs = out if isinstance(out, list) else [out]
        loss = sum(ops.sum(ops.square(o)) for o in outs)
    return [o.numpy() for o in outs] + [g.numpy() for g in tape.gradient(loss, [xt] + layer.trainable_weights)]


@pytest.mark.parametrize("kind,kwargs", [("simple_rnn", {}), ("lstm", {}), ("gru", {}),
                                         ("gru", {"reset_after": False}), ("lstm", {"use_bias": False})])
@pytest.mark.parametrize("go_backwards", [False, True])
@pytest.mark.parametrize("masked", [False, True])
def test_rnn_of_cell_equals_layer(kind, kwargs, go_backwards, masked):
    seq = {"return_sequences": True, "return_state": True, "go_backwards": go_backwards}
    rnn, layer = _pair(kind, kwargs, seq)
    x, mask = _x(), (_padding_mask() if masked else None)
    for ours, theirs in zip(_grads_of(rnn, x, mask), _grads_of(layer, x, mask)):
        np.testing.assert_array_equal(ours, theirs)


@pytest.mark.parametrize("kind", sorted(CELLS))
def test_rnn_of_cell_dropout_equals_layer(kind):
    """With a seed, the cell draws the same masks as the layer (one per gate with recurrent dropout)."""
    rnn, layer = _pair(kind, {}, {"return_sequences": True},
                       {"dropout": 0.3, "recurrent_dropout": 0.4, "seed": 5})
    x = _x()
    np.testing.assert_array_equal(rnn(x, training=True).numpy(), layer(x, training=True).numpy())
    np.testing.assert_array_equal(rnn(x, training=False).numpy(), layer(x, training=False).numpy())


def test_initial_state_and_last_output():
    rnn, layer = _pair("lstm", {}, {"return_state": True})
    x, rng = _x(), np.random.default_rng(3)
    states = [rng.standard_normal((B, U)).astype(np.float32) for _ in range(2)]
    for ours, theirs in zip(rnn(x, initial_state=states), layer(x, initial_state=states)):
        np.testing.assert_array_equal(ours.numpy(), theirs.numpy())
    with pytest.raises(ValueError, match="expects 2 initial state"):
        rnn(x, initial_state=states[:1])


def test_bidirectional_of_rnn_cell_equals_bidirectional_layer():
    bi_rnn = layers.Bidirectional(layers.RNN(layers.GRUCell(U), return_sequences=True))
    bi_gru = layers.Bidirectional(layers.GRU(U, return_sequences=True))
    x, mask = _x(), _padding_mask()
    bi_rnn(x)
    bi_gru(x)
    bi_gru.set_weights(bi_rnn.get_weights())
    np.testing.assert_array_equal(bi_rnn(x, mask=mask).numpy(), bi_gru(x, mask=mask).numpy())
    clone = layers.deserialize(layers.serialize(bi_rnn))
    clone(x)
    clone.set_weights(bi_rnn.get_weights())
    np.testing.assert_array_equal(clone(x).numpy(), bi_rnn(x).numpy())


def test_stacked_cells_equal_stacked_layers():
    stacked = layers.RNN([layers.LSTMCell(U), layers.GRUCell(3)], return_sequences=True, return_state=True)
    lstm, gru = layers.LSTM(U, return_sequences=True, return_state=True), \
        layers.GRU(3, return_sequences=True, return_state=True)
    x, mask = _x(), _padding_mask()
    stacked(x)
    seq, h1, c1 = lstm(x)
    gru(seq)
    lstm.set_weights(stacked.get_weights()[:3])
    gru.set_weights(stacked.get_weights()[3:])
    out, s1, s2, s3 = stacked(x, mask=mask)  # flat states: h and c of the LSTM cell, then the GRU's h
    seq, h1, c1 = lstm(x, mask=mask)
    y, h2 = gru(seq, mask=mask)
    for ours, theirs in zip([out, s1, s2, s3], [y, h1, c1, h2]):
        np.testing.assert_allclose(ours.numpy(), theirs.numpy(), rtol=1e-6, atol=1e-7)
    assert stacked.compute_output_shape((None, T, F)) == [(None, T, 3), (None, U), (None, U), (None, 3)]


def test_stacked_cells_dropout_masks_fixed_within_a_call(monkeypatch):
    """Inside StackedRNNCells a built-in cell draws its masks at the first step and keeps them for the
    sequence (Keras's DropoutRNNCell), and RNN resets them each call."""
    cell = layers.SimpleRNNCell(U, dropout=0.5, seed=1)
    rnn = layers.RNN(layers.StackedRNNCells([cell]), return_sequences=True)
    x = np.ones((B, T, F), np.float32)
    rnn(x, training=True)
    first = [m if m is None else m.numpy().copy() for m in cell._masks]
    drawn = []
    original = cell._dropout_masks
    monkeypatch.setattr(cell, "_dropout_masks", lambda *a: drawn.append(1) or original(*a))
    rnn(x, training=True)
    assert len(drawn) == 1  # one draw for the six steps
    assert not np.array_equal(first[0], cell._masks[0].numpy())


# -- a user-written cell (Keras's "custom RNN cell" guide) -----------------------------------------------
@dlgpu.saving.register_keras_serializable(package="test_rnn_cells")
class MinimalRNNCell(layers.Layer):
    def __init__(self, units, **kwargs):
        super().__init__(**kwargs)
        self.units = units
        self.state_size = units

    def build(self, input_shape):
        self.kernel = self.add_weight(shape=(input_shape[-1], self.units), initializer="uniform", name="kernel")
        self.recurrent_kernel = self.add_weight(shape=(self.units, self.units), initializer="uniform",
                                                name="recurrent_kernel")
        self.built = True

    def call(self, inputs, states):
        prev_output = states[0]
        h = ops.matmul(inputs, self.kernel)
        output = h + ops.matmul(prev_output, self.recurrent_kernel)
        return output, [output]

    def get_config(self):
        return {**super().get_config(), "units": self.units}


def _minimal_reference(x, kernel, recurrent_kernel, mask=None, go_backwards=False):
    h = np.zeros((x.shape[0], kernel.shape[1]))
    outputs = []
    steps = range(x.shape[1])[::-1] if go_backwards else range(x.shape[1])
    for t in steps:
        new = x[:, t] @ kernel + h @ recurrent_kernel
        h = new if mask is None else np.where(mask[:, t:t + 1], new, h)
        outputs.append(h)
    return np.stack(outputs, 1)


@pytest.mark.parametrize("go_backwards", [False, True])
def test_custom_cell_matches_numpy(go_backwards):
    rnn = layers.RNN(MinimalRNNCell(U), return_sequences=True, return_state=True, go_backwards=go_backwards)
    x, mask = _x(), _padding_mask()
    for m in (None, mask):
        seq, state = rnn(x, mask=m)
        ref = _minimal_reference(x, rnn.cell.kernel.numpy(), rnn.cell.recurrent_kernel.numpy(), m, go_backwards)
        np.testing.assert_allclose(seq.numpy(), ref, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(state.numpy(), ref[:, -1], rtol=1e-5, atol=1e-6)
    assert rnn.compute_output_shape((None, None, F)) == [(None, None, U), (None, U)]
    assert dlgpu.Sequential([dlgpu.Input((None, F)), layers.RNN(MinimalRNNCell(U))]).output_shape == (None, U)


def test_custom_cells_stacked_gradients_finite_differences():
    rnn = layers.RNN([MinimalRNNCell(3, dtype="float64"), layers.GRUCell(2, dtype="float64")],
                     return_sequences=True, dtype="float64")
    rnn.build((None, None, 2))
    cells = rnn.cell.cells

    def run(x, k1, rk1, k2, rk2, b2):
        cells[0].kernel, cells[0].recurrent_kernel = k1, rk1
        cells[1].kernel, cells[1].recurrent_kernel, cells[1].bias = k2, rk2, b2
        return rnn(x, mask=np.array([[True, True, False], [True, True, True]]))

    rng = np.random.default_rng(4)
    arrays = [rng.standard_normal((2, 3, 2))] + [rng.standard_normal(w.shape) * 0.5 for w in rnn.weights]
    check_gradients(run, arrays, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("kind", sorted(CELLS))
def test_cell_gradients_finite_differences(kind):
    cell = CELLS[kind](3, dtype="float64")
    cell.build((None, 2))
    n_states = 2 if kind == "lstm" else 1

    def run(x, *args):
        states, weights = args[:n_states], args[n_states:]
        cell.kernel, cell.recurrent_kernel, cell.bias = weights
        output, new = cell(x, list(states))
        return [output] + list(new)

    rng = np.random.default_rng(6)
    arrays = [rng.standard_normal((2, 2))] + [rng.standard_normal((2, 3)) for _ in range(n_states)] + \
        [rng.standard_normal(w.shape) * 0.5 for w in cell.weights]
    check_gradients(run, arrays, rtol=1e-5, atol=1e-7)


def test_custom_cell_trains_and_round_trips(tmp_path):
    dlgpu.set_random_seed(0)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((256, 5, 3)).astype(np.float32)
    y = x.sum(axis=(1, 2))[:, None].astype(np.float32) * 0.1
    model = dlgpu.Sequential([dlgpu.Input((5, 3)), layers.RNN(MinimalRNNCell(8)), layers.Dense(1)])
    model.compile(optimizer=dlgpu.optimizers.Adam(0.01), loss="mse")
    history = model.fit(x, y, epochs=10, batch_size=32, verbose=0).history
    assert history["loss"][-1] < 0.2 * history["loss"][0], history["loss"]
    path = tmp_path / "minimal.dlgpu"
    model.save(path)
    loaded = load_model(path)
    assert isinstance(loaded.layers[0].cell, MinimalRNNCell)
    np.testing.assert_array_equal(loaded.predict(x[:8], verbose=0), model.predict(x[:8], verbose=0))


def test_stacked_builtin_cells_save_and_load(tmp_path):
    inputs = dlgpu.Input((None, F))
    out, h, c = layers.RNN(layers.LSTMCell(U), return_sequences=True, return_state=True)(inputs)
    out = layers.RNN([layers.GRUCell(3), layers.SimpleRNNCell(2)])(out)
    model = dlgpu.Model(inputs, layers.Concatenate()([out, h, c]))
    model.save(tmp_path / "cells.dlgpu")
    loaded = load_model(tmp_path / "cells.dlgpu")
    x = _x()
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))
    assert model.predict(x, verbose=0).shape == (B, 2 + 2 * U)


# -- bad arguments ----------------------------------------------------------------------------------------
def test_bad_arguments():
    with pytest.raises(ValueError, match="stateful"):  # stateful RNNs: tests/layers/test_stateful_rnn.py
        layers.RNN(layers.LSTMCell(U), stateful=True).build((None, T, F))
    with pytest.raises(ValueError, match="state_size"):
        layers.RNN(layers.Dense(3))
    with pytest.raises(ValueError, match="StackedRNNCells.*non-empty"):
        layers.StackedRNNCells([])
    with pytest.raises(ValueError, match="units"):
        layers.LSTMCell(0)
    with pytest.raises(ValueError, match="dropout"):
        layers.GRUCell(3, dropout=1.5)
    with pytest.raises(ValueError, match=r"rnn_x.*ndim=3.*\(3, 5\)"):
        layers.RNN(layers.SimpleRNNCell(3), name="rnn_x")(_x((3, 5)))
    with pytest.raises(ValueError, match="expects 2 state"):
        layers.LSTMCell(3)(_x((B, F)), [np.zeros((B, 3), np.float32)])


# -- GPU (skipped without one) ---------------------------------------------------------------------------
def _cells_model():
    return dlgpu.Sequential([dlgpu.Input((T, F)),
                             layers.Bidirectional(layers.RNN(layers.LSTMCell(U), return_sequences=True)),
                             layers.RNN([layers.GRUCell(U), MinimalRNNCell(3)], return_sequences=True),
                             layers.RNN(layers.SimpleRNNCell(U)), layers.Dense(2)])


@pytest.mark.gpu
def test_rnn_cells_on_gpu_match_cpu():
    assert_model_on_gpu_matches_cpu(_cells_model, _x((4, T, F), seed=9))
