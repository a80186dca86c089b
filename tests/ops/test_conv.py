"""dlgpu.ops.conv: conv2d and pooling (NHWC) against finite differences and a direct numpy reference."""

import numpy as np
import pytest

from dlgpu import ops
from dlgpu.autograd import GradientTape, Tensor
from dlgpu.ops.conv import resolve_padding

from helpers import check_gradients

rng = np.random.default_rng(4)


def randn(*shape):
    return rng.standard_normal(shape)


def reference_conv2d(x, w, strides, padding):
    """Direct loops over output pixels: slow and obviously right."""
    n, h, wd, cin = x.shape
    kh, kw, _, cout = w.shape
    top, bottom, left, right = resolve_padding(padding, (h, wd), (kh, kw), strides)
    xp = np.pad(x, ((0, 0), (top, bottom), (left, right), (0, 0)))
    ho = (h + top + bottom - kh) // strides[0] + 1
    wo = (wd + left + right - kw) // strides[1] + 1
    out = np.zeros((n, ho, wo, cout))
    for i in range(ho):
        for j in range(wo):
            patch = xp[:, i * strides[0]:i * strides[0] + kh, j * strides[1]:j * strides[1] + kw, :]
            out[:, i, j, :] = np.tensordot(patch, w, axes=([1, 2, 3], [0, 1, 2]))
    return out


def reference_pool(x, pool, strides, padding, kind):
    n, h, wd, c = x.shape
    top, bottom, left, right = resolve_padding(padding, (h, wd), pool, strides)
    ho = (h + top + bottom - pool[0]) // strides[0] + 1
    wo = (wd + left + right - pool[1]) // strides[1] + 1
    out = np.zeros((n, ho, wo, c))
    for i in range(ho):
        for j in range(wo):
            r0, c0 = i * strides[0] - top, j * strides[1] - left
            patch = x[:, max(r0, 0):r0 + pool[0], max(c0, 0):c0 + pool[1], :]  # padding excluded
            out[:, i, j, :] = patch.max(axis=(1, 2)) if kind == "max" else patch.mean(axis=(1, 2))
    return out


CONV_CASES = [
    # (N, H, W, Cin, k, Cout, stride, padding)
    (2, 5, 5, 3, 3, 2, 1, "valid"),
    (2, 5, 5, 3, 3, 2, 1, "same"),
    (1, 6, 7, 1, 3, 3, 2, "same"),
    (1, 7, 6, 3, 3, 1, 2, "valid"),
    (2, 4, 4, 3, 1, 3, 1, "valid"),
    (1, 5, 5, 1, 1, 1, 2, "same"),
    (1, 7, 7, 1, 5, 2, 1, "same"),
    (1, 8, 7, 3, 5, 1, 2, "same"),
    (1, 6, 6, 2, 5, 2, 1, "valid"),
    (1, 4, 4, 2, 2, 2, 1, "same"),  # even kernel: TF puts the extra padding at the end
]
CONV_IDS = ["N{}_{}x{}_Cin{}_k{}_Cout{}_s{}_{}".format(*c) for c in CONV_CASES]


@pytest.mark.parametrize("case", CONV_CASES, ids=CONV_IDS)
def test_conv2d_values(case):
    n, h, w, cin, k, cout, s, padding = case
    x, kern = randn(n, h, w, cin), randn(k, k, cin, cout)
    out = ops.conv2d(Tensor(x, dtype="float64"), Tensor(kern, dtype="float64"), strides=s, padding=padding)
    assert out.dtype == "float64"
    np.testing.assert_allclose(out.numpy(), reference_conv2d(x, kern, (s, s), padding), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("case", CONV_CASES, ids=CONV_IDS)
def test_conv2d_gradients(case, bias):
    n, h, w, cin, k, cout, s, padding = case
    inputs = [randn(n, h, w, cin), randn(k, k, cin, cout)] + ([randn(cout)] if bias else [])
    check_gradients(lambda *ts: ops.conv2d(*ts, strides=s, padding=padding) if bias
                    else ops.conv2d(ts[0], ts[1], None, strides=s, padding=padding), inputs, rtol=1e-4)


@pytest.mark.parametrize("activation", ["relu", "sigmoid", "tanh", "gelu", "leaky_relu"])
def test_conv2d_fused_activation_gradients(activation):
    while True:  # keep pre-activations off the relu kink
        inputs = [randn(1, 5, 5, 2), randn(3, 3, 2, 2), randn(2)]
        z = reference_conv2d(inputs[0], inputs[1], (1, 1), "same") + inputs[2]
        if np.abs(z).min() > 1e-2:
            break
    check_gradients(lambda x, k, b: ops.conv2d(x, k, b, padding="same", activation=activation), inputs, rtol=1e-4)


def test_conv2d_rectangular_strides():
    x, kern = randn(1, 7, 8, 2), randn(3, 2, 2, 3)
    out = ops.conv2d(Tensor(x, dtype="float64"), Tensor(kern, dtype="float64"), strides=(2, 3), padding="same")
    np.testing.assert_allclose(out.numpy(), reference_conv2d(x, kern, (2, 3), "same"), rtol=1e-10)
    check_gradients(lambda a, b: ops.conv2d(a, b, strides=(2, 3), padding="same"), [x, kern])


def test_conv2d_keeps_float32():
    x, k, b = (Tensor(a.astype(np.float32)) for a in (randn(2, 5, 5, 3), randn(3, 3, 3, 4), randn(4)))
    with GradientTape() as tape:
        tape.watch([x, k, b])
        y = ops.conv2d(x, k, b, strides=2, padding="same", activation="relu")
    assert y.dtype == "float32"
    assert all(g.dtype == "float32" for g in tape.gradient(y, [x, k, b]))


def test_conv2d_channel_mismatch_error():
    with pytest.raises(ValueError, match=r"conv2d: input has 3 channels \(shape \(1, 5, 5, 3\)\).*expects 2"):
        ops.conv2d(np.ones((1, 5, 5, 3), np.float32), np.ones((3, 3, 2, 4), np.float32))


def test_conv2d_rank_and_padding_errors():
    with pytest.raises(ValueError, match="4-D NHWC"):
        ops.conv2d(np.ones((5, 5, 3), np.float32), np.ones((3, 3, 3, 4), np.float32))
    with pytest.raises(ValueError, match="padding must be 'valid' or 'same'"):
        ops.conv2d(np.ones((1, 5, 5, 3), np.float32), np.ones((3, 3, 3, 4), np.float32), padding="full")
    with pytest.raises(ValueError, match="larger than the input"):
        ops.conv2d(np.ones((1, 2, 2, 3), np.float32), np.ones((3, 3, 3, 4), np.float32))


POOL_CASES = [
    # (N, H, W, C, pool, stride, padding)
    (2, 4, 4, 3, 2, 2, "valid"),
    (1, 5, 5, 2, 2, 2, "valid"),
    (1, 5, 5, 2, 2, 2, "same"),
    (2, 7, 7, 1, 3, 2, "valid"),
    (1, 7, 6, 3, 3, 2, "same"),
    (1, 6, 6, 1, 3, 1, "same"),
    (1, 4, 5, 2, 2, 1, "valid"),
]
POOL_IDS = ["N{}_{}x{}_C{}_p{}_s{}_{}".format(*c) for c in POOL_CASES]


def distinct(*shape):
    """No ties inside a window: max pooling is differentiable there."""
    return rng.permutation(np.arange(int(np.prod(shape)))).reshape(shape) / np.prod(shape) - 0.5


@pytest.mark.parametrize("kind", ["max", "avg"])
@pytest.mark.parametrize("case", POOL_CASES, ids=POOL_IDS)
def test_pool_values(case, kind):
    n, h, w, c, p, s, padding = case
    x = distinct(n, h, w, c)
    op = ops.max_pool2d if kind == "max" else ops.avg_pool2d
    out = op(Tensor(x, dtype="float64"), p, s, padding)
    assert out.dtype == "float64"
    np.testing.assert_allclose(out.numpy(), reference_pool(x, (p, p), (s, s), padding, kind), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("kind", ["max", "avg"])
@pytest.mark.parametrize("case", POOL_CASES, ids=POOL_IDS)
def test_pool_gradients(case, kind):
    n, h, w, c, p, s, padding = case
    op = ops.max_pool2d if kind == "max" else ops.avg_pool2d
    check_gradients(lambda t: op(t, p, s, padding), [distinct(n, h, w, c)], eps=1e-7)


def test_max_pool_ties_go_to_first_maximum():
    x = Tensor(np.ones((1, 2, 2, 1), np.float32))
    with GradientTape() as tape:
        tape.watch(x)
        y = ops.max_pool2d(x, 2)
    np.testing.assert_array_equal(tape.gradient(y, x).numpy()[0, :, :, 0], [[1.0, 0.0], [0.0, 0.0]])


@pytest.mark.parametrize("kind", ["max", "avg"])
def test_pool_keeps_float32(kind):
    x = Tensor(randn(1, 5, 5, 2).astype(np.float32))
    op = ops.max_pool2d if kind == "max" else ops.avg_pool2d
    with GradientTape() as tape:
        tape.watch(x)
        y = op(x, 3, 2, "same")
    assert y.dtype == "float32" and tape.gradient(y, x).dtype == "float32"


def test_pool_rank_error():
    with pytest.raises(ValueError, match="max_pool2d: expected a 4-D NHWC input"):
        ops.max_pool2d(np.ones((4, 4, 1), np.float32))


def test_keras_names():
    x = Tensor(randn(1, 4, 4, 2).astype(np.float32))
    np.testing.assert_array_equal(ops.max_pool(x, 2).numpy(), ops.max_pool2d(x, 2).numpy())
    np.testing.assert_array_equal(ops.average_pool(x, 2).numpy(), ops.avg_pool2d(x, 2).numpy())
    k = Tensor(randn(3, 3, 2, 2).astype(np.float32))
    np.testing.assert_array_equal(ops.conv(x, k, padding="same").numpy(), ops.conv2d(x, k, padding="same").numpy())
