"""ops.max_pool and ops.average_pool on 3-D (N, D, H, W, C) inputs (and 1-D, now through the same ops):
values and input gradients against PyTorch's max_pool3d / avg_pool3d on awkward shapes, ties, float64
finite differences, bad inputs, and the GPU against the CPU."""

import math

import numpy as np
import pytest

import dlgpu
from dlgpu import ops

from helpers import check_gradients

torch = pytest.importorskip("torch")
F = torch.nn.functional
RNG = np.random.default_rng(11)


def _distinct(shape):
    """Distinct values: each window has one maximum, so the reference gradient is unambiguous."""
    return (RNG.permutation(math.prod(shape)).reshape(shape) / 10.0).astype(np.float32)


def _same_widths(sizes, pool, strides):
    """F.pad widths (last axis first) of TensorFlow's 'same': the extra cell goes after."""
    widths = []
    for size, k, s in reversed(list(zip(sizes, pool, strides))):
        total = max((math.ceil(size / s) - 1) * s + k - size, 0)
        widths += [total // 2, total - total // 2]
    return widths


def _to_ncdhw(t):
    return t.permute(0, 4, 1, 2, 3)


def _to_ndhwc(t):
    return t.permute(0, 2, 3, 4, 1)


def torch_max_pool3d(tx, pool, strides, padding):
    x = _to_ncdhw(tx)
    if padding == "same":  # padded cells never win a max
        x = F.pad(x, _same_widths(tx.shape[1:4], pool, strides), value=-math.inf)
    return _to_ndhwc(F.max_pool3d(x, pool, strides))


def torch_avg_pool3d(tx, pool, strides, padding):
    """Keras's mean over each window's real inputs: with 'same' the window sum over the count of real cells
    (TensorFlow's padding is asymmetric, which avg_pool3d's own padding cannot express)."""
    x = _to_ncdhw(tx)
    if padding == "valid":
        return _to_ndhwc(F.avg_pool3d(x, pool, strides))
    widths = _same_widths(tx.shape[1:4], pool, strides)
    sums = F.avg_pool3d(F.pad(x, widths), pool, strides)
    counts = F.avg_pool3d(F.pad(torch.ones_like(x), widths), pool, strides)
    return _to_ndhwc(sums / counts)


def compare(fn, torch_fn, x, rtol=1e-5, atol=1e-6):
    """fn(x) and the gradient of sum(out * up) against torch_fn's autograd."""
    xt = dlgpu.Tensor(x)
    with dlgpu.GradientTape() as tape:
        tape.watch(xt)
        out = fn(xt)
        up = RNG.standard_normal(out.shape).astype(np.float32)
        loss = ops.sum(ops.multiply(out, up))
    grad = tape.gradient(loss, xt)
    tx = torch.tensor(x, requires_grad=True)
    expected = torch_fn(tx)
    (expected * torch.tensor(up)).sum().backward()
    assert out.shape == tuple(expected.shape)
    assert out.dtype == "float32" and grad.dtype == "float32"
    np.testing.assert_allclose(out.numpy(), expected.detach().numpy(), rtol=rtol, atol=atol)
    np.testing.assert_allclose(grad.numpy(), tx.grad.numpy(), rtol=rtol, atol=atol)


CASES = [
    # (input shape, pool, strides, padding)
    ((2, 4, 6, 4, 3), (2, 2, 2), None, "valid"),            # the common case, windows tile the input
    ((1, 5, 7, 6, 2), (2, 2, 2), None, "valid"),            # batch 1, odd sizes: leftovers dropped
    ((2, 5, 7, 6, 2), (2, 2, 2), None, "same"),             # leftovers padded after
    ((1, 7, 5, 9, 1), (3, 2, 3), (2, 3, 1), "same"),        # mixed strides 1/2/3, overlapping along W
    ((2, 6, 6, 5, 2), (3, 3, 3), (1, 1, 1), "same"),        # padding on both sides, heavy overlap
    ((1, 8, 5, 7, 3), (3, 1, 2), (3, 2, 2), "valid"),       # stride larger than the window along H
    ((1, 3, 3, 3, 4), (3, 3, 3), None, "valid"),            # one window covers everything
]


@pytest.mark.parametrize("shape,pool,strides,padding", CASES)
def test_max_pool_3d_matches_torch(shape, pool, strides, padding):
    compare(lambda x: ops.max_pool(x, pool, strides, padding),
            lambda tx: torch_max_pool3d(tx, pool, strides or pool, padding), _distinct(shape))


@pytest.mark.parametrize("shape,pool,strides,padding", CASES)
def test_average_pool_3d_matches_torch(shape, pool, strides, padding):
    compare(lambda x: ops.average_pool(x, pool, strides, padding),
            lambda tx: torch_avg_pool3d(tx, pool, strides or pool, padding),
            RNG.standard_normal(shape).astype(np.float32))


def test_average_pool_3d_same_excludes_padding_as_torch_count_include_pad_false():
    # pool 3, stride 1: 'same' pads one cell on each side, which avg_pool3d's own padding can express
    x = RNG.standard_normal((2, 4, 5, 3, 2)).astype(np.float32)
    compare(lambda t: ops.average_pool(t, 3, 1, "same"),
            lambda tx: _to_ndhwc(F.avg_pool3d(_to_ncdhw(tx), 3, 1, padding=1, count_include_pad=False)), x)


@pytest.mark.parametrize("pool,strides", [(2, 1), (2, 2), ((3, 2, 2), (2, 1, 2))])
def test_max_pool_3d_ties_send_the_gradient_to_one_input_as_torch(pool, strides):
    """Equal values in a window: the whole gradient goes to the first of them (row-major in the window), as
    max_pool2d and PyTorch do, not split among them."""
    x = RNG.integers(0, 2, (2, 5, 4, 5, 2)).astype(np.float32)  # many ties
    compare(lambda t: ops.max_pool(t, pool, strides, "valid"),
            lambda tx: torch_max_pool3d(tx, (pool,) * 3 if isinstance(pool, int) else pool,
                                        (strides,) * 3 if isinstance(strides, int) else strides, "valid"), x)
    xt = dlgpu.Tensor(np.zeros((1, 2, 2, 2, 1), np.float32))
    with dlgpu.GradientTape() as tape:
        tape.watch(xt)
        loss = ops.sum(ops.max_pool(xt, 2))
    grad = tape.gradient(loss, xt).numpy().ravel()
    np.testing.assert_array_equal(grad, [1, 0, 0, 0, 0, 0, 0, 0])


def test_max_pool_3d_inference_path_matches_the_recorded_one():
    """Outside a tape the op takes the max without an argmax; both give the same values."""
    x = _distinct((2, 5, 6, 7, 3))
    with dlgpu.GradientTape() as tape:
        xt = dlgpu.Tensor(x)
        tape.watch(xt)
        recorded = ops.max_pool(xt, (3, 2, 2), (2, 2, 1), "same").numpy()
    np.testing.assert_array_equal(ops.max_pool(x, (3, 2, 2), (2, 2, 1), "same").numpy(), recorded)


@pytest.mark.parametrize("op", [ops.max_pool, ops.average_pool], ids=["max_pool", "average_pool"])
def test_3d_pooling_finite_differences_and_float64(op):
    x = _distinct((2, 5, 4, 3, 2)).astype(np.float64)
    check_gradients(lambda t: op(t, (2, 3, 2), (2, 1, 1), "same"), [x])
    assert op(dlgpu.Tensor(x, dtype="float64"), 2).dtype == "float64"


@pytest.mark.parametrize("shape,pool,strides,padding", [((2, 9, 3), (3,), (2,), "same"), ((1, 8, 2), (2,), None,
                                                                                             "valid")])
def test_1d_pooling_ops_match_torch(shape, pool, strides, padding):
    """ops.max_pool/average_pool on (N, L, C), which until now only the 1-D layers could pool."""
    st = strides or pool

    def torch_max(tx):
        x = tx.permute(0, 2, 1)
        if padding == "same":
            x = F.pad(x, _same_widths(tx.shape[1:2], pool, st), value=-math.inf)
        return F.max_pool1d(x, pool, st).permute(0, 2, 1)

    def torch_avg(tx):
        x = tx.permute(0, 2, 1)
        widths = _same_widths(tx.shape[1:2], pool, st) if padding == "same" else [0, 0]
        sums = F.avg_pool1d(F.pad(x, widths), pool, st)
        return (sums / F.avg_pool1d(F.pad(torch.ones_like(x), widths), pool, st)).permute(0, 2, 1)

    compare(lambda x: ops.max_pool(x, pool, strides, padding), torch_max, _distinct(shape))
    compare(lambda x: ops.average_pool(x, pool, strides, padding), torch_avg, _distinct(shape))


@pytest.mark.parametrize("call,error,match", [
    (lambda: ops.max_pool(np.zeros((2, 3), np.float32), 2), ValueError, r"max_pool.*rank 3, 4 or 5.*\(2, 3\)"),
    (lambda: ops.average_pool(np.zeros((1, 2, 2, 2, 2, 1), np.float32), 2), ValueError, r"average_pool.*rank"),
    (lambda: ops.max_pool(np.zeros((1, 4, 4, 4, 1), np.float32), (2, 2)), ValueError, r"max_pool.*pool_size"),
    (lambda: ops.average_pool(np.zeros((1, 4, 4, 4, 1), np.float32), 2, strides=0), ValueError,
     r"average_pool.*strides"),
    (lambda: ops.max_pool(np.zeros((1, 4, 4, 1, 1), np.float32), 2), ValueError, r"max_pool.*window.*larger"),
    (lambda: ops.max_pool(np.zeros((1, 4, 4, 4, 1), np.float32), 2, padding="full"), ValueError, r"padding"),
    (lambda: ops.average_pool(np.zeros((1, 4, 4, 4, 1), np.int32), 2), TypeError, r"average_pool.*int32"),
    (lambda: ops.max_pool(np.zeros((1, 4, 4, 4, 1), np.float32), 2, data_format="channels_first"), ValueError,
     r"max_pool.*channels_last"),
])
def test_bad_inputs(call, error, match):
    with pytest.raises(error, match=match):
        call()


GPU_CASES = [
    ("max_valid", lambda x: ops.max_pool(x, 2)),
    ("max_same", lambda x: ops.max_pool(x, (3, 2, 3), (2, 3, 1), "same")),
    ("avg_valid", lambda x: ops.average_pool(x, (2, 3, 2), (1, 2, 2))),
    ("avg_same", lambda x: ops.average_pool(x, 3, 2, "same")),
]


@pytest.mark.gpu
@pytest.mark.parametrize("name,fn", GPU_CASES, ids=[c[0] for c in GPU_CASES])
def test_gpu_matches_cpu(name, fn):
    x = _distinct((2, 7, 6, 5, 3))
    results = {}
    for device in ("cpu", "gpu"):
        with dlgpu.device(device):
            xt = ops.convert_to_tensor(x)
            with dlgpu.GradientTape() as tape:
                tape.watch(xt)
                out = fn(xt)
                loss = ops.sum(ops.square(out))
            results[device] = [out.numpy(), tape.gradient(loss, xt).numpy(), fn(xt).numpy()]
    for got, expected in zip(results["gpu"], results["cpu"]):
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
