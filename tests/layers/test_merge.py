"""Merge layers: contract, PyTorch reference, mismatched shapes raise naming the layer and the shapes."""

import numpy as np
import pytest

import dlgpu
from dlgpu import layers

from .layer_test_case import run_layer_test
from .torch_ref import assert_close, grads_of


@pytest.mark.parametrize("cls", [layers.Add, layers.Multiply, layers.Average, layers.Maximum, layers.Minimum])
def test_elementwise_merge_contract(cls):
    run_layer_test(cls, {}, [(2, 3, 4), (2, 3, 4), (2, 3, 4)], (2, 3, 4))


def test_subtract_contract():
    run_layer_test(layers.Subtract, {}, [(2, 5), (2, 5)], (2, 5))


def test_concatenate_contract():
    run_layer_test(layers.Concatenate, {}, [(2, 3, 4), (2, 3, 2)], (2, 3, 6))
    run_layer_test(layers.Concatenate, {"axis": 1}, [(2, 3, 4), (2, 1, 4)], (2, 4, 4))


def test_add_and_concatenate_match_torch():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((2, 3, 4)).astype(np.float32), rng.standard_normal((2, 3, 4)).astype(np.float32)
    up = rng.standard_normal((2, 3, 4)).astype(np.float32)
    out, (ga, gb) = grads_of(layers.Add(), [a, b], [], up)
    ta, tb = torch.tensor(a, requires_grad=True), torch.tensor(b, requires_grad=True)
    ((ta + tb) * torch.tensor(up)).sum().backward()
    assert_close(out, ta + tb)
    assert_close(ga, ta.grad)
    assert_close(gb, tb.grad)

    c = rng.standard_normal((2, 3, 2)).astype(np.float32)
    up = rng.standard_normal((2, 3, 6)).astype(np.float32)
    out, (ga, gc) = grads_of(layers.Concatenate(), [a, c], [], up)
    ta, tc = torch.tensor(a, requires_grad=True), torch.tensor(c, requires_grad=True)
    ref = torch.cat([ta, tc], dim=-1)
    (ref * torch.tensor(up)).sum().backward()
    assert_close(out, ref)
    assert_close(ga, ta.grad)
    assert_close(gc, tc.grad)


def test_keras_tensor_plus_is_an_add_layer():
    a, b = dlgpu.Input(shape=(3,)), dlgpu.Input(shape=(3,))
    s = a + b
    assert s.shape == (None, 3)
    model = dlgpu.Model([a, b], s)
    x = np.ones((2, 3), np.float32)
    np.testing.assert_array_equal(model([x, 2 * x]).numpy(), 3 * x)


def test_mismatched_shapes_raise():
    with pytest.raises(ValueError, match=r"add_bad.*\(None, 3\).*\(None, 4\)"):
        layers.Add(name="add_bad")([dlgpu.Input(shape=(3,)), dlgpu.Input(shape=(4,))])
    with pytest.raises(ValueError, match=r"cat_bad.*matching shapes"):
        layers.Concatenate(name="cat_bad")([dlgpu.Input(shape=(3, 2)), dlgpu.Input(shape=(4, 2))])
    with pytest.raises(ValueError, match=r"add_eager"):
        layers.Add(name="add_eager")([np.zeros((2, 3), np.float32), np.zeros((2, 4), np.float32)])
    with pytest.raises(ValueError, match=r"rank"):
        layers.Multiply()([dlgpu.Input(shape=(3,)), dlgpu.Input(shape=(3, 1))])
    with pytest.raises(ValueError, match="list"):
        layers.Add()(dlgpu.Input(shape=(3,)))
    with pytest.raises(ValueError, match="2"):
        layers.Subtract()([dlgpu.Input(shape=(3,))] * 3)
