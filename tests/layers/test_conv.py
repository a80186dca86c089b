"""Conv2D and Conv1D: the layer contract, PyTorch CPU and finite differences as references (strides, 'same' as
TF's asymmetric padding, causal), bad arguments."""

import numpy as np
import pytest

import dlgpu
from dlgpu import layers
from dlgpu.layers.conv import _conv1d

from helpers import check_gradients

from .layer_test_case import run_layer_test
from .torch_ref import assert_close, grads_of, pad_nchw, same_padding, to_nchw, to_nhwc


def test_conv2d_contract():
    run_layer_test(layers.Conv2D, {"filters": 4, "kernel_size": 3, "activation": "relu"}, (2, 7, 6, 3), (2, 5, 4, 4),
                   expected_num_trainable_weights=2, expected_weight_shapes=[(3, 3, 3, 4), (4,)])


def test_conv2d_contract_same_strided():
    run_layer_test(layers.Conv2D, {"filters": 2, "kernel_size": (3, 2), "strides": 2, "padding": "same"},
                   (2, 7, 6, 3), (2, 4, 3, 2), expected_num_trainable_weights=2)


CASES = [
    # (input HxW, kernel, strides, padding, activation)
    ((8, 8), (3, 3), (1, 1), "valid", None),
    ((8, 8), (3, 3), (1, 1), "same", "relu"),
    ((9, 7), (3, 3), (2, 2), "same", None),     # odd sizes, stride 2: asymmetric 'same' padding
    ((8, 8), (2, 2), (2, 2), "same", None),     # even kernel: TF pads after only
    ((10, 9), (4, 3), (3, 2), "valid", "tanh"),
    ((6, 6), (5, 5), (1, 1), "same", "sigmoid"),
    ((7, 8), (1, 1), (2, 3), "valid", None),
]


@pytest.mark.parametrize("hw,kernel,strides,padding,activation", CASES)
def test_conv2d_matches_torch(hw, kernel, strides, padding, activation):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    n, cin, cout = 2, 3, 4
    x = rng.standard_normal((n, *hw, cin)).astype(np.float32)
    layer = layers.Conv2D(cout, kernel, strides=strides, padding=padding, activation=activation)
    layer.build((None, *hw, cin))
    w = (rng.standard_normal((*kernel, cin, cout)) * 0.3).astype(np.float32)
    b = (rng.standard_normal(cout) * 0.1).astype(np.float32)
    layer.set_weights([w, b])
    out_shape = layer.compute_output_shape((n, *hw, cin))
    up = rng.standard_normal(out_shape).astype(np.float32)
    out, (gx, gw, gb) = grads_of(layer, [x], [layer.kernel, layer.bias], up)

    tx = torch.tensor(x, requires_grad=True)
    tw = torch.tensor(w, requires_grad=True)
    tb = torch.tensor(b, requires_grad=True)
    xin = pad_nchw(torch, to_nchw(torch, tx), kernel, strides, padding)
    ref = torch.nn.functional.conv2d(xin, tw.permute(3, 2, 0, 1), tb, stride=strides)
    act = {None: lambda t: t, "relu": torch.relu, "tanh": torch.tanh, "sigmoid": torch.sigmoid}[activation]
    ref = to_nhwc(act(ref))
    (ref * torch.tensor(up)).sum().backward()
    assert out.shape == tuple(ref.shape)
    assert_close(out, ref)
    assert_close(gx, tx.grad)
    assert_close(gw, tw.grad)
    assert_close(gb, tb.grad)


def test_conv2d_bad_arguments():
    with pytest.raises(ValueError, match="padding"):
        layers.Conv2D(4, 3, padding="full")
    with pytest.raises(ValueError, match="filters"):
        layers.Conv2D(0, 3)
    with pytest.raises(ValueError, match="kernel_size"):
        layers.Conv2D(4, 0)
    with pytest.raises(ValueError, match="strides"):
        layers.Conv2D(4, 3, strides=(1, 2, 3))
    with pytest.raises(ValueError, match="data_format"):
        layers.Conv2D(4, 3, data_format="channels_first")


def test_conv2d_wrong_rank_and_too_small_input():
    with pytest.raises(ValueError, match=r"conv.*ndim=4.*ndim=3") as info:
        layers.Conv2D(4, 3, name="conv")(np.zeros((2, 8, 8), np.float32))
    assert "(2, 8, 8)" in str(info.value)
    with pytest.raises(ValueError, match=r"window|larger"):
        layers.Conv2D(4, 5, name="conv_small")(dlgpu.Input(shape=(3, 3, 1)))


def test_conv2d_channel_mismatch_after_build_changes_nothing():
    layer = layers.Conv2D(2, 3, name="c")
    layer(np.zeros((1, 5, 5, 3), np.float32))
    before = [w.copy() for w in layer.get_weights()]
    with pytest.raises(ValueError, match=r"'c'.*axis -1.*3"):
        layer(np.zeros((1, 5, 5, 4), np.float32))
    for a, b in zip(layer.get_weights(), before):
        np.testing.assert_array_equal(a, b)


# -- Conv1D: (N, L, C) as a unit-height Conv2D ------------------------------------------------------
def test_conv1d_contract():
    run_layer_test(layers.Conv1D, {"filters": 4, "kernel_size": 3, "activation": "relu"}, (2, 9, 3), (2, 7, 4),
                   expected_num_trainable_weights=2, expected_weight_shapes=[(3, 3, 4), (4,)])


@pytest.mark.parametrize("padding,strides,expected", [("same", 2, (2, 5, 2)), ("causal", 1, (2, 9, 2)),
                                                      ("causal", 3, (2, 3, 2))])
def test_conv1d_contract_padding(padding, strides, expected):
    run_layer_test(layers.Conv1D, {"filters": 2, "kernel_size": 4, "strides": strides, "padding": padding,
                                   "use_bias": False}, (2, 9, 3), expected, expected_num_trainable_weights=1)


CASES_1D = [
    # (length, kernel, stride, padding, activation)
    (10, 3, 1, "valid", None),
    (10, 3, 1, "same", "relu"),
    (9, 4, 2, "same", None),       # even kernel, odd length: TF's extra padding goes after
    (11, 5, 3, "valid", "tanh"),
    (8, 3, 1, "causal", None),
    (9, 4, 2, "causal", "sigmoid"),
    (7, 1, 2, "valid", None),
]


@pytest.mark.parametrize("length,kernel,stride,padding,activation", CASES_1D)
def test_conv1d_matches_torch(length, kernel, stride, padding, activation):
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    rng = np.random.default_rng(0)
    n, cin, cout = 2, 3, 4
    x = rng.standard_normal((n, length, cin)).astype(np.float32)
    layer = layers.Conv1D(cout, kernel, strides=stride, padding=padding, activation=activation)
    layer.build((None, length, cin))
    w = (rng.standard_normal((kernel, cin, cout)) * 0.3).astype(np.float32)
    b = (rng.standard_normal(cout) * 0.1).astype(np.float32)
    layer.set_weights([w, b])
    up = rng.standard_normal(layer.compute_output_shape(x.shape)).astype(np.float32)
    out, (gx, gw, gb) = grads_of(layer, [x], [layer.kernel, layer.bias], up)

    tx = torch.tensor(x, requires_grad=True)
    tw = torch.tensor(w, requires_grad=True)
    tb = torch.tensor(b, requires_grad=True)
    xin = tx.permute(0, 2, 1)  # (N, C, L)
    if padding == "causal":
        xin = F.pad(xin, (kernel - 1, 0))
    elif padding == "same":
        xin = F.pad(xin, same_padding(length, kernel, stride))
    ref = F.conv1d(xin, tw.permute(2, 1, 0), tb, stride=stride)  # kernel (k, Cin, Cout) -> (Cout, Cin, k)
    act = {None: lambda t: t, "relu": torch.relu, "tanh": torch.tanh, "sigmoid": torch.sigmoid}[activation]
    ref = act(ref).permute(0, 2, 1)
    (ref * torch.tensor(up)).sum().backward()
    assert out.shape == tuple(ref.shape)
    assert_close(out, ref)
    assert_close(gx, tx.grad)
    assert_close(gw, tw.grad)
    assert_close(gb, tb.grad)


def test_conv1d_causal_output_sees_only_the_past():
    layer = layers.Conv1D(1, 3, padding="causal", use_bias=False, kernel_initializer="ones")
    x = np.zeros((1, 6, 1), np.float32)
    x[0, 3, 0] = 1.0  # an impulse at t=3 reaches outputs t=3..5 only
    np.testing.assert_array_equal(layer(x).numpy()[0, :, 0], [0, 0, 0, 1, 1, 1])


@pytest.mark.parametrize("padding", ["valid", "same", "causal"])
def test_conv1d_input_gradient_finite_differences(padding):
    layer = layers.Conv1D(2, 3, strides=2, padding=padding, activation="tanh", dtype="float64")
    check_gradients(layer, [np.random.default_rng(1).standard_normal((2, 7, 3))])


def test_conv1d_kernel_and_bias_gradients_finite_differences():
    rng = np.random.default_rng(2)
    check_gradients(lambda x, w, b: _conv1d(x, w, b, 2, "same"),
                    [rng.standard_normal((2, 7, 3)), rng.standard_normal((3, 3, 2)), rng.standard_normal(2)])


def test_conv1d_bad_arguments():
    with pytest.raises(ValueError, match=r"'c1'.*padding.*'causal'.*padding='full'"):
        layers.Conv1D(4, 3, padding="full", name="c1")
    with pytest.raises(ValueError, match=r"Conv1D.*filters=0"):
        layers.Conv1D(0, 3)
    with pytest.raises(ValueError, match=r"'c1'.*kernel_size.*\(3, 3\)"):
        layers.Conv1D(4, (3, 3), name="c1")
    with pytest.raises(ValueError, match=r"'c1'.*strides"):
        layers.Conv1D(4, 3, strides=0, name="c1")
    with pytest.raises(ValueError, match=r"'c1'.*strides=\(2,\).*dilation_rate=\(2,\)"):
        layers.Conv1D(4, 3, strides=2, dilation_rate=2, name="c1")  # Keras refuses the pair too
    with pytest.raises(ValueError, match=r"'c1'.*data_format"):
        layers.Conv1D(4, 3, data_format="channels_first", name="c1")
    with pytest.raises(ValueError, match=r"padding"):
        layers.Conv2D(4, 3, padding="causal")  # causal is 1-D only, as in Keras
    with pytest.raises(ValueError, match=r"'c1'.*ndim=3.*ndim=4"):
        layers.Conv1D(4, 3, name="c1")(np.zeros((2, 8, 8, 1), np.float32))
    with pytest.raises(ValueError, match=r"window|larger"):
        layers.Conv1D(4, 5)(dlgpu.Input(shape=(3, 1)))
