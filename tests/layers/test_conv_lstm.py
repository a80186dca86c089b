"""ConvLSTM1D, ConvLSTM2D, ConvLSTM3D: the layer contract; Keras's own expected values; outputs, states and
gradients against the ConvLSTM cell written in PyTorch with conv1d/2d/3d (TensorFlow's 'same' padding, the
dropout masks the layer drew, the sequence mask's keep-the-previous-state rule); awkward shapes; training and
saving inside a model; Bidirectional; bad inputs; GPU against CPU."""

import functools
import json
import math

import numpy as np
import pytest

import dlgpu
from dlgpu import initializers, layers, ops
from dlgpu.models import load_model

from helpers import assert_model_on_gpu_matches_cpu

from .layer_test_case import run_layer_test

torch = pytest.importorskip("torch")
F = torch.nn.functional

CLASSES = {1: layers.ConvLSTM1D, 2: layers.ConvLSTM2D, 3: layers.ConvLSTM3D}


@pytest.fixture(autouse=True, scope="module")
def _plain_torch_convolutions():
    """oneDNN, and torch's thread pool on a busy 2-core machine, take ~20 ms for each of these tiny
    convolutions; torch's own kernels on one thread take microseconds (the file ran 20 s instead of 3)."""
    saved = torch.backends.mkldnn.enabled, torch.get_num_threads()
    torch.backends.mkldnn.enabled = False
    torch.set_num_threads(1)
    yield
    torch.backends.mkldnn.enabled = saved[0]
    torch.set_num_threads(saved[1])


# -- the layer contract ---------------------------------------------------------------------------------
@pytest.mark.parametrize("rank", [1, 2, 3])
@pytest.mark.parametrize("return_sequences", [False, True])
def test_contract(rank, return_sequences):
    spatial, out = (5, 4, 3)[:rank], (3, 2, 1)[:rank]
    expected = (2, 3) + out + (4,) if return_sequences else (2,) + out + (4,)
    run_layer_test(CLASSES[rank], {"filters": 4, "kernel_size": 3, "return_sequences": return_sequences},
                   (2, 3) + spatial + (2,), expected, expected_num_trainable_weights=3,
                   expected_weight_shapes=[(3,) * rank + (2, 16), (3,) * rank + (4, 16), (16,)])


def test_contract_as_keras_tests_it():
    """keras/src/layers/rnn/conv_lstm2d_test.py's cases, recurrent dropout in training included."""
    run_layer_test(layers.ConvLSTM2D, {"filters": 5, "kernel_size": 3, "padding": "same"}, (3, 2, 4, 4, 3),
                   (3, 4, 4, 5), expected_num_trainable_weights=3)
    run_layer_test(layers.ConvLSTM2D, {"filters": 5, "kernel_size": 3, "recurrent_dropout": 0.5, "dropout": 0.2,
                                       "seed": 1}, (3, 2, 8, 8, 3), (3, 6, 6, 5), expected_num_trainable_weights=3)
    run_layer_test(layers.ConvLSTM1D, {"filters": 2, "kernel_size": 2, "use_bias": False, "go_backwards": True,
                                       "strides": 2, "padding": "same"}, (2, 3, 7, 1), (2, 4, 2),
                   expected_num_trainable_weights=2, expected_weight_shapes=[(2, 1, 8), (2, 2, 8)])


def test_keras_expected_values():
    """The numbers of Keras's test_correctness for each rank, and ConvLSTM's with initial states."""
    def make(rank):
        return CLASSES[rank](filters=2, kernel_size=3, kernel_initializer=initializers.Constant(0.01),
                             recurrent_initializer=initializers.Constant(0.02),
                             bias_initializer=initializers.Constant(0.03))
    out = make(1)(np.arange(120).reshape((2, 3, 4, 5)).astype("float32") / 10).numpy()
    np.testing.assert_allclose(out[..., 0], [[0.40807986, 0.46421072], [0.80933154, 0.8233646]], rtol=1e-5)
    out = make(2)(np.arange(480).reshape((2, 3, 4, 4, 5)).astype("float32") / 100).numpy()
    np.testing.assert_allclose(out[..., 0], [[[0.48694518, 0.50237733], [0.5461202, 0.5598283]],
                                             [[0.8661607, 0.86909103], [0.8774414, 0.8800861]]], rtol=1e-5)
    np.testing.assert_array_equal(out[..., 0], out[..., 1])
    out = make(3)(np.arange(1920).reshape((2, 3, 4, 4, 4, 5)).astype("float32") / 100).numpy()
    np.testing.assert_allclose(out[0, ..., 0], [[[0.99149036, 0.99180907], [0.99258363, 0.9927925]],
                                                [[0.99413764, 0.99420583], [0.9943788, 0.9944278]]], rtol=1e-5)
    np.testing.assert_allclose(out[1], 0.9950547, rtol=1e-5)

    x = np.arange(450).reshape((2, 3, 5, 5, 3)).astype("float32") / 100
    s = np.arange(200).reshape((2, 5, 5, 4)).astype("float32") / 100
    layer = layers.ConvLSTM2D(filters=4, kernel_size=3, padding="same",
                              kernel_initializer=initializers.Constant(0.01),
                              recurrent_initializer=initializers.Constant(0.02))
    np.testing.assert_allclose(np.sum(layer(x, initial_state=[s, s]).numpy()), 119.812454, rtol=1e-5)


def test_initial_weights_and_names():
    layer = layers.ConvLSTM2D(3, (2, 3))
    layer.build((None, None, 5, 6, 2))
    kernel, recurrent_kernel, bias = layer.get_weights()
    assert kernel.shape == (2, 3, 2, 12) and recurrent_kernel.shape == (2, 3, 3, 12)
    np.testing.assert_array_equal(bias, np.r_[np.zeros(3), np.ones(3), np.zeros(6)])
    assert [w.path for w in layer.weights] == [f"{layer.name}/conv_lstm_cell/{name}"
                                               for name in ("kernel", "recurrent_kernel", "bias")]
    assert layer.name.startswith("conv_lstm2d")
    plain = layers.ConvLSTM1D(3, 2, unit_forget_bias=False)
    plain.build((None, 4, 5, 2))
    np.testing.assert_array_equal(plain.get_weights()[2], np.zeros(12))


# -- the ConvLSTM cell in PyTorch ------------------------------------------------------------------------
def _torch_conv(x, w, strides, padding, dilation):
    """channels_last x (N, *S, C) and w (*k, C/groups, Cout) as Keras convolves them ('same' pads the extra
    pixel after, as TensorFlow); groups follow from the channels, as in keras.ops.conv."""
    rank = x.dim() - 2
    k = w.shape[:rank]
    xt = x.movedim(-1, 1)
    wt = w.permute(rank + 1, rank, *range(rank))
    if padding == "same":
        pads = []
        for axis in reversed(range(rank)):
            size, span, s = xt.shape[2 + axis], (k[axis] - 1) * dilation[axis] + 1, strides[axis]
            total = max((math.ceil(size / s) - 1) * s + span - size, 0)
            pads += [total // 2, total - total // 2]
        xt = F.pad(xt, pads)
    conv = (F.conv1d, F.conv2d, F.conv3d)[rank - 1]
    return conv(xt, wt, stride=strides, dilation=dilation, groups=x.shape[-1] // w.shape[-2]).movedim(1, -1)


def _torch_conv_lstm(x, h, c, kernel, recurrent_kernel, bias, *, strides, padding, dilation, go_backwards=False,
                     input_masks=None, state_masks=None, keep=None):
    """Keras's ConvLSTMCell.call step by step (one convolution per gate, as Keras writes it), run by Keras's
    backend rnn: a masked step keeps the states and repeats the previous output (zeros before the first)."""
    rank = x.dim() - 3
    ones = (1,) * rank
    filters = recurrent_kernel.shape[-2]
    gates = lambda w: torch.split(w, filters, dim=-1)  # noqa: E731
    k_g, r_g = gates(kernel), gates(recurrent_kernel)
    b_g = gates(bias) if bias is not None else [None] * 4
    steps = range(x.shape[1] - 1, -1, -1) if go_backwards else range(x.shape[1])
    previous, outputs = torch.zeros_like(h), []
    for t in steps:
        x_t = x[:, t]
        pre = []
        for g in range(4):
            xi = x_t * input_masks[g] if input_masks is not None else x_t
            hi = h * state_masks[g] if state_masks is not None else h
            z = _torch_conv(xi, k_g[g], strides, padding, dilation) + _torch_conv(hi, r_g[g], ones, "same", ones)
            pre.append(z + b_g[g] if b_g[g] is not None else z)
        i, f, o = torch.sigmoid(pre[0]), torch.sigmoid(pre[1]), torch.sigmoid(pre[3])
        new_c = f * c + i * torch.tanh(pre[2])
        new_h = o * torch.tanh(new_c)
        if keep is not None:
            k = keep[:, t].reshape((-1,) + (1,) * (h.dim() - 1))
            new_c, new_h = torch.where(k, new_c, c), torch.where(k, new_h, h)
            out = torch.where(k, new_h, previous)
        else:
            out = new_h
        h, c, previous = new_h, new_c, out
        outputs.append(out)
    return torch.stack(outputs, 1), h, c


def _random_weights(layer, rng):
    weights = [(rng.standard_normal(w.shape) * 0.3).astype(np.float32) for w in layer.weights]
    layer.set_weights(weights)
    return weights


def _compare(layer, x, rng, *, initial_state=False, training=False, mask=None, masks_drawn=None):
    """dlgpu against the torch cell: every output and the gradients (inputs, initial states, weights) of a
    random linear function of them."""
    weights = _random_weights(layer, rng)
    state_shape = (x.shape[0],) + layer._state_shape
    states0 = [rng.standard_normal(state_shape).astype(np.float32) for _ in range(2)] if initial_state else None
    xs = [dlgpu.Tensor(x)] + ([dlgpu.Tensor(s) for s in states0] if initial_state else [])
    with dlgpu.GradientTape() as tape:
        tape.watch(xs)
        result = layer(xs[0], initial_state=xs[1:] or None, training=training, mask=mask)
        result = list(result) if layer.return_state else [result]
        ups = [rng.standard_normal(r.shape).astype(np.float32) for r in result]
        loss = functools.reduce(ops.add, [ops.sum(ops.multiply(r, u)) for r, u in zip(result, ups)])
    grads = tape.gradient(loss, xs + layer.trainable_weights)

    tx = torch.tensor(x, requires_grad=True)
    t_states = [torch.tensor(s, requires_grad=True) for s in states0] if initial_state else \
        [torch.zeros(state_shape), torch.zeros(state_shape)]
    t_weights = [torch.tensor(w, requires_grad=True) for w in weights]
    kernel, recurrent_kernel = t_weights[:2]
    bias = t_weights[2] if layer.use_bias else None
    input_masks = state_masks = None
    if masks_drawn:
        input_masks, state_masks = ([torch.tensor(m) for m in drawn] if drawn is not None else None
                                    for drawn in masks_drawn)
    seq, h, c = _torch_conv_lstm(tx, *t_states, kernel, recurrent_kernel, bias, strides=layer.strides,
                                 padding=layer.padding, dilation=layer.dilation_rate, go_backwards=layer.go_backwards,
                                 input_masks=input_masks, state_masks=state_masks,
                                 keep=None if mask is None else torch.tensor(mask))
    ref = [seq if layer.return_sequences else seq[:, -1]] + ([h, c] if layer.return_state else [])
    sum((r * torch.tensor(u)).sum() for r, u in zip(ref, ups)).backward()

    assert [tuple(r.shape) for r in result] == [tuple(r.shape) for r in ref]
    for got, want in zip(result, ref):
        np.testing.assert_allclose(got.numpy(), want.detach().numpy(), rtol=1e-4, atol=1e-5)
    want_grads = [tx.grad.numpy()] + ([s.grad.numpy() for s in t_states] if initial_state else []) + \
        [w.grad.numpy() for w in t_weights]
    assert len(grads) == len(want_grads)
    for got, want in zip(grads, want_grads):
        np.testing.assert_allclose(got.numpy(), want, rtol=1e-4, atol=1e-5)


CASES = [
    # rank, spatial, channels, layer arguments, initial_state
    (1, (7,), 3, dict(kernel_size=3), False),
    (1, (8,), 2, dict(kernel_size=2, strides=2, padding="same", return_sequences=True, return_state=True), True),
    (1, (9,), 1, dict(kernel_size=3, dilation_rate=2, go_backwards=True, use_bias=False), False),
    (2, (5, 6), 3, dict(kernel_size=3, padding="same", return_sequences=True), True),
    (2, (6, 5), 2, dict(kernel_size=(2, 3), strides=(2, 1), padding="same", return_state=True), False),
    (2, (7, 7), 2, dict(kernel_size=3, dilation_rate=(2, 1), go_backwards=True, return_sequences=True), False),
    (3, (4, 5, 3), 2, dict(kernel_size=(3, 2, 2), padding="same", return_sequences=True, return_state=True), True),
    (3, (5, 4, 4), 1, dict(kernel_size=2, strides=2, go_backwards=True), False),
]


@pytest.mark.parametrize("case", range(len(CASES)))
def test_matches_torch(case):
    rank, spatial, channels, kwargs, initial_state = CASES[case]
    rng = np.random.default_rng(case)
    layer = CLASSES[rank](filters=3, **kwargs)
    x = rng.standard_normal((2, 4) + spatial + (channels,)).astype(np.float32)
    layer.build(x.shape)
    _compare(layer, x, rng, initial_state=initial_state)


@pytest.mark.parametrize("rank", [1, 2])
def test_dropout_masks_as_keras_cell(rank):
    """training=True: four masks on the step input and four on h, one per gate, the same at every step
    (recorded as the layer draws them and handed to the torch cell); inference leaves them out."""
    rng = np.random.default_rng(10 + rank)
    layer = CLASSES[rank](filters=2, kernel_size=2, padding="same", dropout=0.4, recurrent_dropout=0.3, seed=3,
                          return_sequences=True, return_state=True)
    x = rng.standard_normal((2, 3) + (5, 4)[:rank] + (3,)).astype(np.float32)
    layer.build(x.shape)
    drawn = []
    draw = layer._dropout_mask

    def record(*args):
        mask = draw(*args)
        drawn.append(None if mask is None else list(mask.numpy()))
        return mask
    layer._dropout_mask = record
    _compare(layer, x, rng, training=True, masks_drawn=drawn)
    input_masks, state_masks = drawn
    assert len(input_masks) == len(state_masks) == 4
    assert input_masks[0].shape == x[:, 0].shape and state_masks[0].shape == (2,) + (5, 4)[:rank] + (2,)
    assert not np.array_equal(input_masks[0], input_masks[1])  # one mask per gate
    assert set(np.unique(input_masks[0])) <= {0.0, np.float32(1 / 0.6)}
    drawn.clear()
    _compare(layer, x, rng, training=False)
    assert drawn == [None, None]


@pytest.mark.parametrize("go_backwards", [False, True])
def test_sequence_mask_keeps_states_as_keras(go_backwards):
    rng = np.random.default_rng(20)
    layer = layers.ConvLSTM2D(2, 3, padding="same", return_sequences=True, return_state=True,
                              go_backwards=go_backwards)
    x = rng.standard_normal((3, 5, 4, 4, 2)).astype(np.float32)
    mask = np.array([[1, 1, 1, 1, 1], [1, 1, 0, 1, 0], [0, 0, 0, 0, 0]], bool)
    layer.build(x.shape)
    _compare(layer, x, rng, mask=mask, initial_state=True)
    out = layer(x, mask=mask)[0]
    assert out._keras_mask is not None  # passed on with the sequence output, as Keras's RNN


# -- awkward shapes -------------------------------------------------------------------------------------
@pytest.mark.parametrize("shape,kwargs,expected", [
    ((1, 1, 3, 3, 1), dict(kernel_size=3), (1, 1, 1, 2)),                       # batch 1, one step, one pixel out
    ((1, 2, 1, 5, 2), dict(kernel_size=(1, 2), strides=(1, 2), padding="same"), (1, 1, 3, 2)),
    ((2, 3, 4, 3, 1), dict(kernel_size=4, padding="same"), (2, 4, 3, 2)),        # kernel larger than an axis
    ((1, 2, 5, 1), dict(kernel_size=5), (1, 1, 2)),                             # 1-D, window fills the input
])
def test_awkward_shapes(shape, kwargs, expected):
    rank = len(shape) - 3
    rng = np.random.default_rng(30)
    layer = CLASSES[rank](filters=2, **kwargs)
    x = rng.standard_normal(shape).astype(np.float32)
    assert layer(x).shape == expected
    assert layer.compute_output_shape(shape) == expected
    _compare(layer, x, rng)


def test_symbolic_shapes_and_unknown_time_axis():
    inputs = dlgpu.Input((None, 6, 5, 2))
    seq, h, c = layers.ConvLSTM2D(3, 3, strides=2, padding="same", return_sequences=True,
                                  return_state=True)(inputs)
    assert seq.shape == (None, None, 3, 3, 3) and h.shape == c.shape == (None, 3, 3, 3)
    model = dlgpu.Model(inputs, [seq, h])
    out_seq, out_h = model.predict(np.ones((2, 4, 6, 5, 2), np.float32), verbose=0)
    assert out_seq.shape == (2, 4, 3, 3, 3)
    np.testing.assert_allclose(out_seq[:, -1], out_h, rtol=1e-6)


# -- inside models: training, saving, Bidirectional -----------------------------------------------------
def _brightening_task(n, rng):
    """Does a 4-frame 6x6 clip get brighter or darker over time?  Only a memory of the frames answers it."""
    start = rng.uniform(0, 1, (n, 1, 6, 6, 1))
    slope = rng.choice([-0.15, 0.15], (n, 1, 1, 1, 1))
    x = start + slope * np.arange(4).reshape(1, 4, 1, 1, 1) + rng.normal(0, 0.05, (n, 4, 6, 6, 1))
    return x.astype(np.float32), (slope[:, 0, 0, 0, 0] > 0).astype(np.int32)


def test_model_learns_and_round_trips(tmp_path):
    dlgpu.set_random_seed(0)
    rng = np.random.default_rng(0)
    x, y = _brightening_task(256, rng)
    model = dlgpu.Sequential([dlgpu.Input((4, 6, 6, 1)),
                              layers.ConvLSTM2D(4, 3, padding="same", return_sequences=True, recurrent_dropout=0.1),
                              layers.ConvLSTM2D(4, 3),
                              layers.GlobalAveragePooling2D(), layers.Dense(2, activation="softmax")])
    model.compile(optimizer=dlgpu.optimizers.Adam(0.02), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    history = model.fit(x, y, epochs=6, batch_size=32, verbose=0).history
    assert history["loss"][-1] < 0.5 * history["loss"][0], history["loss"]
    x_test, y_test = _brightening_task(100, np.random.default_rng(1))
    assert model.evaluate(x_test, y_test, verbose=0)[1] > 0.9

    path = tmp_path / "conv_lstm.dlgpu"
    model.save(path)
    loaded = load_model(path)
    assert [l.get_config() for l in loaded.layers] == [l.get_config() for l in model.layers]
    np.testing.assert_array_equal(loaded.predict(x_test, verbose=0), model.predict(x_test, verbose=0))


def test_bidirectional_conv_lstm():
    rng = np.random.default_rng(40)
    x = rng.standard_normal((2, 3, 5, 4, 2)).astype(np.float32)
    bi = layers.Bidirectional(layers.ConvLSTM2D(3, 2, padding="same", return_sequences=True))
    out = bi(x).numpy()
    assert out.shape == (2, 3, 5, 4, 6)
    forward = bi.forward_layer(x).numpy()
    backward = bi.backward_layer(x).numpy()[:, ::-1]
    np.testing.assert_allclose(out, np.concatenate([forward, backward], axis=-1), rtol=1e-6)
    assert bi.compute_output_shape(x.shape) == (2, 3, 5, 4, 6)
    assert layers.deserialize(layers.serialize(bi)).get_config() == bi.get_config()


def test_config_has_keras_keys_and_reads_a_keras_config():
    layer = layers.ConvLSTM3D(2, 3, activity_regularizer="l2")
    config = layer.get_config()
    json.dumps(config)
    assert set(config) == {
        "name", "trainable", "dtype", "return_sequences", "return_state", "go_backwards", "stateful", "unroll",
        "zero_output_for_mask", "filters", "kernel_size", "strides", "padding", "data_format", "dilation_rate",
        "activation", "recurrent_activation", "use_bias", "kernel_initializer", "recurrent_initializer",
        "bias_initializer", "unit_forget_bias", "kernel_regularizer", "recurrent_regularizer", "bias_regularizer",
        "activity_regularizer", "kernel_constraint", "recurrent_constraint", "bias_constraint", "dropout",
        "recurrent_dropout", "seed"}
    assert config["kernel_size"] == [3, 3, 3] and config["data_format"] == "channels_last"
    init = lambda name, cfg: {"module": "keras.initializers", "class_name": name, "config": cfg,  # noqa: E731
                              "registered_name": None}
    keras_config = {  # as Keras 3 writes it (tuples become lists in JSON)
        "name": "conv_lstm2d", "trainable": True,
        "dtype": {"module": "keras", "class_name": "DTypePolicy", "config": {"name": "float32"},
                  "registered_name": None},
        "return_sequences": True, "return_state": False, "go_backwards": False, "stateful": False,
        "unroll": False, "zero_output_for_mask": False, "filters": 4, "kernel_size": [3, 3], "strides": [1, 1],
        "padding": "same", "data_format": "channels_last", "dilation_rate": [1, 1], "activation": "tanh",
        "recurrent_activation": "sigmoid", "use_bias": True, "kernel_initializer": init("GlorotUniform", {"seed": None}),
        "recurrent_initializer": init("Orthogonal", {"gain": 1.0, "seed": None}), "bias_initializer": init("Zeros", {}),
        "unit_forget_bias": True, "kernel_regularizer": None, "recurrent_regularizer": None,
        "bias_regularizer": None, "activity_regularizer": None, "kernel_constraint": None,
        "recurrent_constraint": None, "bias_constraint": None, "dropout": 0.0, "recurrent_dropout": 0.0, "seed": None}
    built = layers.deserialize({"class_name": "ConvLSTM2D", "config": keras_config})
    assert built(np.zeros((2, 3, 5, 5, 1), np.float32)).shape == (2, 3, 5, 5, 4)


def test_regularizers_add_losses():
    layer = layers.ConvLSTM1D(2, 2, kernel_regularizer="l2", recurrent_regularizer="l1", bias_regularizer="l2",
                              activity_regularizer="l2", return_state=True)
    x = np.ones((2, 3, 4, 1), np.float32)
    outputs = [t.numpy() for t in layer(x)]
    assert len(layer.losses) == 6  # an activity penalty per output (sequence output, h, c), then the weights'
    np.testing.assert_allclose(sum(float(l.numpy()) for l in layer.losses[:3]),
                               sum(0.01 * np.square(o).sum() / 2 for o in outputs), rtol=1e-5)
    k, rk, b = layer.get_weights()
    np.testing.assert_allclose(sum(float(l.numpy()) for l in layer.losses[3:]),
                               0.01 * (np.sum(k ** 2) + np.sum(np.abs(rk)) + np.sum(b ** 2)), rtol=1e-5)


# -- bad inputs and arguments ---------------------------------------------------------------------------
def test_bad_arguments():
    with pytest.raises(ValueError, match=r"'c'.*channels_last.*channels_first"):
        layers.ConvLSTM2D(2, 3, data_format="channels_first", name="c")
    with pytest.raises(ValueError, match=r"`strides > 1` is not compatible with `dilation_rate > 1`"):
        layers.ConvLSTM2D(1, 1, strides=2, padding="same", dilation_rate=3)
    with pytest.raises(ValueError, match=r"'p'.*padding.*'causal'"):
        layers.ConvLSTM1D(2, 3, padding="causal", name="p")
    with pytest.raises(ValueError, match=r"ConvLSTM3D.*filters=0"):
        layers.ConvLSTM3D(0, 3)
    with pytest.raises(ValueError, match=r"kernel_size.*\(3, 3, 3\)"):
        layers.ConvLSTM2D(2, (3, 3, 3))
    with pytest.raises(ValueError, match=r"ConvLSTM2D.*dropout=1.5"):
        layers.ConvLSTM2D(2, 3, dropout=1.5)
    with pytest.raises(ValueError, match=r"'s'.*stateful=True.*batch size must be static"):  # test_stateful_rnn.py
        layers.ConvLSTM2D(2, 3, stateful=True, name="s").build((None, 2, 5, 5, 1))
    with pytest.raises(ValueError, match=r"'k'.*recurrent_constraint"):
        layers.ConvLSTM2D(2, 3, recurrent_constraint="no_such_constraint", name="k")


def test_bad_inputs():
    with pytest.raises(ValueError, match=r"layer 'a'.*expected ndim=5.*found ndim=4.*\(2, 3, 4, 4\)"):
        layers.ConvLSTM2D(2, 3, name="a")(np.zeros((2, 3, 4, 4), np.float32))
    with pytest.raises(ValueError, match=r"layer 'b'.*expected ndim=4.*found ndim=5"):
        layers.ConvLSTM1D(2, 3, name="b")(dlgpu.Input((3, 4, 4, 1)))
    with pytest.raises(ValueError, match=r"'u'.*spatial axes.*known.*\(None, None, None, 5, 1\)"):
        layers.ConvLSTM2D(2, 3, name="u")(dlgpu.Input((None, None, 5, 1)))
    with pytest.raises(ValueError, match=r"'w'.*window \(3\) is larger than the input \(2\)"):
        layers.ConvLSTM2D(2, 3, name="w")(np.zeros((1, 2, 2, 5, 1), np.float32))
    layer = layers.ConvLSTM2D(2, 3, name="e")
    layer(np.zeros((2, 3, 5, 5, 1), np.float32))
    with pytest.raises(ValueError, match=r"'e'.*axis 2.*value 5.*\(2, 3, 6, 5, 1\)"):
        layer(np.zeros((2, 3, 6, 5, 1), np.float32))
    with pytest.raises(ValueError, match=r"'e'.*axis -1.*value 1.*\(2, 3, 5, 5, 2\)"):
        layer(np.zeros((2, 3, 5, 5, 2), np.float32))
    with pytest.raises(ValueError, match=r"'e': initial state c.*\(2, 3, 3, 2\).*\(2, 3, 3, 3\)"):
        layer(np.zeros((2, 3, 5, 5, 1), np.float32),
              initial_state=[np.zeros((2, 3, 3, 2), np.float32), np.zeros((2, 3, 3, 3), np.float32)])
    with pytest.raises(ValueError, match=r"'e'.*no time steps"):
        layer(np.zeros((2, 0, 5, 5, 1), np.float32))


# -- GPU (skipped without one) ---------------------------------------------------------------------------
def _conv_lstm_model():
    return dlgpu.Sequential([dlgpu.Input((3, 6, 5, 2)),
                             layers.ConvLSTM2D(3, 3, padding="same", return_sequences=True),
                             layers.Bidirectional(layers.ConvLSTM2D(2, 2, strides=2, padding="same"),
                                                  merge_mode="sum"),
                             layers.Flatten(), layers.Dense(2)])


def _conv_lstm_1d_3d_model():
    inputs = dlgpu.Input((3, 4, 4, 5, 2))
    seq = layers.ConvLSTM3D(2, 2, dilation_rate=(1, 2, 1), padding="same", return_sequences=True)(inputs)
    flat = layers.Reshape((3, 4 * 4, 5 * 2))(seq)
    return dlgpu.Model(inputs, layers.Dense(2)(layers.Flatten()(layers.ConvLSTM1D(2, 3, go_backwards=True)(flat))))


@pytest.mark.gpu
def test_conv_lstm_on_gpu_matches_cpu():
    rng = np.random.default_rng(50)
    assert_model_on_gpu_matches_cpu(_conv_lstm_model, rng.standard_normal((2, 3, 6, 5, 2)).astype(np.float32))
    assert_model_on_gpu_matches_cpu(_conv_lstm_1d_3d_model,
                                    rng.standard_normal((2, 3, 4, 4, 5, 2)).astype(np.float32))


@pytest.mark.gpu
def test_conv_lstm_dropout_and_mask_run_on_gpu():
    """The dropout masks are drawn on the device of the input (the draws differ from the CPU's, so only the
    shapes and the device are compared); a sequence mask there too."""
    with dlgpu.device("gpu"):
        layer = layers.ConvLSTM2D(2, 3, padding="same", dropout=0.3, recurrent_dropout=0.3, seed=2,
                                  return_sequences=True)
        x = ops.convert_to_tensor(np.random.default_rng(51).standard_normal((2, 3, 4, 4, 1)).astype(np.float32))
        with dlgpu.GradientTape() as tape:
            out = layer(x, training=True, mask=np.array([[1, 1, 0], [1, 0, 0]], bool))
            loss = ops.sum(ops.square(out))
        grads = tape.gradient(loss, layer.trainable_weights)
        assert out.device == layer.kernel.device and out.shape == (2, 3, 4, 4, 2)
        assert all(np.isfinite(g.numpy()).all() for g in grads)
