"""Pooling layers, 1-D and 2-D: contract, PyTorch reference (Keras 'same': TF's asymmetric padding, padding excluded from
the average's count), bad arguments."""

import numpy as np
import pytest

from dlgpu import layers

from helpers import check_gradients

from .layer_test_case import run_layer_test
from .torch_ref import assert_close, grads_of, pad_nchw, same_padding, to_nchw, to_nhwc


@pytest.mark.parametrize("cls", [layers.MaxPooling2D, layers.AveragePooling2D])
def test_pooling_contract(cls):
    run_layer_test(cls, {"pool_size": 2}, (2, 6, 5, 3), (2, 3, 2, 3))
    run_layer_test(cls, {"pool_size": 3, "strides": 2, "padding": "same"}, (2, 7, 6, 3), (2, 4, 3, 3))


@pytest.mark.parametrize("cls,expected", [(layers.GlobalAveragePooling2D, (2, 3)),
                                          (layers.GlobalMaxPooling2D, (2, 3))])
def test_global_pooling_contract(cls, expected):
    run_layer_test(cls, {}, (2, 4, 5, 3), expected)
    run_layer_test(cls, {"keepdims": True}, (2, 4, 5, 3), (2, 1, 1, 3))


CASES = [
    ((8, 8), (2, 2), None, "valid"),
    ((7, 9), (2, 2), None, "valid"),      # leftovers dropped
    ((7, 9), (2, 2), None, "same"),       # leftovers padded after
    ((7, 7), (3, 3), (2, 2), "same"),
    ((8, 6), (3, 2), (1, 2), "valid"),
    ((5, 5), (3, 3), (1, 1), "same"),     # padding on both sides
]


def _rand_distinct(rng, shape):
    # distinct values: max-pool gradients have a unique argmax, so the reference is unambiguous
    return (rng.permutation(int(np.prod(shape))).reshape(shape) / 10.0).astype(np.float32)


@pytest.mark.parametrize("hw,pool,strides,padding", CASES)
def test_max_pooling_matches_torch(hw, pool, strides, padding):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    x = _rand_distinct(rng, (2, *hw, 3))
    layer = layers.MaxPooling2D(pool, strides=strides, padding=padding)
    st = strides or pool
    up = rng.standard_normal(layer.compute_output_shape(x.shape)).astype(np.float32)
    out, (gx,) = grads_of(layer, [x], [], up)
    tx = torch.tensor(x, requires_grad=True)
    xin = pad_nchw(torch, to_nchw(torch, tx), pool, st, padding, value=-np.inf)
    ref = to_nhwc(torch.nn.functional.max_pool2d(xin, pool, st))
    (ref * torch.tensor(up)).sum().backward()
    assert_close(out, ref)
    assert_close(gx, tx.grad)


@pytest.mark.parametrize("hw,pool,strides,padding", CASES)
def test_average_pooling_matches_torch(hw, pool, strides, padding):
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, *hw, 3)).astype(np.float32)
    layer = layers.AveragePooling2D(pool, strides=strides, padding=padding)
    st = strides or pool
    up = rng.standard_normal(layer.compute_output_shape(x.shape)).astype(np.float32)
    out, (gx,) = grads_of(layer, [x], [], up)
    tx = torch.tensor(x, requires_grad=True)
    xin = to_nchw(torch, tx)
    # Keras divides by the number of real (unpadded) pixels in each window: sum over window / count of ones.
    sums = F.avg_pool2d(pad_nchw(torch, xin, pool, st, padding), pool, st)
    counts = F.avg_pool2d(pad_nchw(torch, torch.ones_like(xin), pool, st, padding), pool, st)
    ref = to_nhwc(sums / counts)
    (ref * torch.tensor(up)).sum().backward()
    assert_close(out, ref)
    assert_close(gx, tx.grad)


def test_global_average_pooling_matches_torch():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(2)
    x = rng.standard_normal((2, 5, 4, 3)).astype(np.float32)
    up = rng.standard_normal((2, 3)).astype(np.float32)
    out, (gx,) = grads_of(layers.GlobalAveragePooling2D(), [x], [], up)
    tx = torch.tensor(x, requires_grad=True)
    ref = torch.nn.functional.adaptive_avg_pool2d(to_nchw(torch, tx), 1).flatten(1)
    (ref * torch.tensor(up)).sum().backward()
    assert_close(out, ref)
    assert_close(gx, tx.grad)


def test_pooling_bad_arguments():
    with pytest.raises(ValueError, match="padding"):
        layers.MaxPooling2D(2, padding="full")
    with pytest.raises(ValueError, match="pool_size"):
        layers.AveragePooling2D(0)
    with pytest.raises(ValueError, match="strides"):
        layers.MaxPooling2D(2, strides=-1)
    with pytest.raises(ValueError, match=r"ndim=4.*ndim=2"):
        layers.MaxPooling2D(2)(np.zeros((3, 4), np.float32))
    with pytest.raises(ValueError, match="window|larger"):
        layers.MaxPooling2D(5)(np.zeros((1, 3, 3, 1), np.float32))


# -- 1-D pooling: (N, L, C) as unit-height 2-D pooling -----------------------------------------------
@pytest.mark.parametrize("cls", [layers.MaxPooling1D, layers.AveragePooling1D])
def test_pooling1d_contract(cls):
    run_layer_test(cls, {}, (2, 7, 3), (2, 3, 3))
    run_layer_test(cls, {"pool_size": 3, "strides": 2, "padding": "same"}, (2, 7, 3), (2, 4, 3))


@pytest.mark.parametrize("cls", [layers.GlobalAveragePooling1D, layers.GlobalMaxPooling1D])
def test_global_pooling1d_contract(cls):
    run_layer_test(cls, {}, (2, 7, 3), (2, 3))
    run_layer_test(cls, {"keepdims": True}, (2, 7, 3), (2, 1, 3))


CASES_1D = [
    (8, 2, None, "valid"),
    (9, 2, None, "valid"),   # leftover dropped
    (9, 2, None, "same"),    # leftover padded after
    (7, 3, 2, "same"),
    (10, 3, 1, "valid"),
    (5, 3, 1, "same"),       # padding on both sides
]


def _pad_1d(torch, x_ncl, pool, stride, padding, value=0.0):
    if padding == "valid":
        return x_ncl
    return torch.nn.functional.pad(x_ncl, same_padding(x_ncl.shape[2], pool, stride), value=value)


@pytest.mark.parametrize("length,pool,strides,padding", CASES_1D)
def test_max_pooling1d_matches_torch(length, pool, strides, padding):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(3)
    x = _rand_distinct(rng, (2, length, 3))
    layer = layers.MaxPooling1D(pool, strides=strides, padding=padding)
    st = strides or pool
    up = rng.standard_normal(layer.compute_output_shape(x.shape)).astype(np.float32)
    out, (gx,) = grads_of(layer, [x], [], up)
    tx = torch.tensor(x, requires_grad=True)
    xin = _pad_1d(torch, tx.permute(0, 2, 1), pool, st, padding, value=-np.inf)
    ref = torch.nn.MaxPool1d(pool, st)(xin).permute(0, 2, 1)
    (ref * torch.tensor(up)).sum().backward()
    assert out.shape == tuple(ref.shape)
    assert_close(out, ref)
    assert_close(gx, tx.grad)


@pytest.mark.parametrize("length,pool,strides,padding", CASES_1D)
def test_average_pooling1d_matches_torch(length, pool, strides, padding):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(4)
    x = rng.standard_normal((2, length, 3)).astype(np.float32)
    layer = layers.AveragePooling1D(pool, strides=strides, padding=padding)
    st = strides or pool
    up = rng.standard_normal(layer.compute_output_shape(x.shape)).astype(np.float32)
    out, (gx,) = grads_of(layer, [x], [], up)
    tx = torch.tensor(x, requires_grad=True)
    xin = tx.permute(0, 2, 1)
    avg = torch.nn.AvgPool1d(pool, st)
    # Keras averages over the real (unpadded) steps of each window
    ref = (avg(_pad_1d(torch, xin, pool, st, padding)) / avg(_pad_1d(torch, torch.ones_like(xin), pool, st, padding)))
    ref = ref.permute(0, 2, 1)
    (ref * torch.tensor(up)).sum().backward()
    assert out.shape == tuple(ref.shape)
    assert_close(out, ref)
    assert_close(gx, tx.grad)


@pytest.mark.parametrize("cls,torch_pool", [(layers.GlobalAveragePooling1D, "adaptive_avg_pool1d"),
                                            (layers.GlobalMaxPooling1D, "adaptive_max_pool1d")])
def test_global_pooling1d_matches_torch(cls, torch_pool):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(5)
    x = _rand_distinct(rng, (2, 6, 3))
    up = rng.standard_normal((2, 3)).astype(np.float32)
    out, (gx,) = grads_of(cls(), [x], [], up)
    tx = torch.tensor(x, requires_grad=True)
    ref = getattr(torch.nn.functional, torch_pool)(tx.permute(0, 2, 1), 1).flatten(1)
    (ref * torch.tensor(up)).sum().backward()
    assert_close(out, ref)
    assert_close(gx, tx.grad)


@pytest.mark.parametrize("layer", [
    layers.MaxPooling1D(3, strides=2, padding="same", dtype="float64"),
    layers.AveragePooling1D(3, strides=2, padding="same", dtype="float64"),
    layers.GlobalAveragePooling1D(dtype="float64"),
    layers.GlobalMaxPooling1D(keepdims=True, dtype="float64"),
], ids=lambda layer: type(layer).__name__)
def test_pooling1d_gradient_finite_differences(layer):
    # distinct, well-separated values: the max's derivative is the same on both sides of each probe
    x = _rand_distinct(np.random.default_rng(6), (2, 7, 3)).astype(np.float64)
    check_gradients(layer, [x])


def test_pooling1d_bad_arguments():
    with pytest.raises(ValueError, match=r"'p1'.*padding='causal'"):
        layers.MaxPooling1D(2, padding="causal", name="p1")
    with pytest.raises(ValueError, match=r"'p1'.*pool_size.*\(2, 2\)"):
        layers.AveragePooling1D((2, 2), name="p1")
    with pytest.raises(ValueError, match=r"'p1'.*strides"):
        layers.MaxPooling1D(2, strides=0, name="p1")
    with pytest.raises(ValueError, match=r"'g1'.*data_format"):
        layers.GlobalAveragePooling1D(data_format="channels_first", name="g1")
    with pytest.raises(ValueError, match=r"'p1'.*ndim=3.*ndim=4"):
        layers.MaxPooling1D(2, name="p1")(np.zeros((1, 4, 4, 1), np.float32))
    with pytest.raises(ValueError, match=r"'g1'.*ndim=3.*ndim=2"):
        layers.GlobalMaxPooling1D(name="g1")(np.zeros((4, 4), np.float32))
    with pytest.raises(ValueError, match="window|larger"):
        layers.MaxPooling1D(5)(np.zeros((1, 3, 1), np.float32))
