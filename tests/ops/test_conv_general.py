"""ops.conv (dilation, groups, 1-D to 3-D), ops.conv_transpose, ops.depthwise_conv and ops.separable_conv:
values and gradients (input and kernel) against PyTorch's autograd, float64 finite differences, bad
inputs, and the GPU against the CPU."""

import numpy as np
import pytest

import dlgpu
from dlgpu import ops
from dlgpu.backend import cpu

from helpers import check_gradients
from torch_conv_ref import torch_conv, torch_conv_transpose

torch = pytest.importorskip("torch")
F = torch.nn.functional
RNG = np.random.default_rng(7)


def randn(*shape):
    return RNG.standard_normal(shape).astype(np.float32)


def compare(fn, torch_fn, arrays, rtol=1e-4, atol=1e-4):
    """fn's output and the gradients of sum(out * up) for every argument, against torch_fn's."""
    tensors = [dlgpu.Tensor(a) for a in arrays]
    with dlgpu.GradientTape() as tape:
        tape.watch(tensors)
        out = fn(*tensors)
        up = randn(*out.shape)
        loss = ops.sum(ops.multiply(out, up))
    grads = tape.gradient(loss, tensors)
    refs = [torch.tensor(a, requires_grad=True) for a in arrays]
    expected = torch_fn(*refs)
    (expected * torch.tensor(up)).sum().backward()
    assert out.shape == tuple(expected.shape)
    assert out.dtype == "float32"
    np.testing.assert_allclose(out.numpy(), expected.detach().numpy(), rtol=rtol, atol=atol)
    for g, r in zip(grads, refs):
        assert g.dtype == "float32"
        np.testing.assert_allclose(g.numpy(), r.grad.numpy(), rtol=rtol, atol=atol)


CONV_CASES = [
    # (input shape, kernel size, Cin/groups, Cout, strides, padding, dilation)
    ((2, 9, 8, 6), (3, 3), 3, 4, (1, 1), "same", (2, 2)),       # groups 2, dilated 'same'
    ((1, 7, 10, 4), (3, 2), 1, 8, (2, 3), "valid", (1, 1)),     # depthwise-like groups 4, batch 1, strides 2/3
    ((2, 11, 9, 3), (2, 3), 3, 5, (1, 1), "same", (3, 2)),      # even kernel, dilation 3: extra pad after
    ((1, 8, 8, 6), (3, 3), 2, 6, (2, 2), "same", (2, 1)),       # strides with dilation: the op allows it
    ((2, 13, 4), (3,), 2, 6, (1,), "same", (2,)),               # 1-D grouped, dilated
    ((1, 10, 3), (4,), 3, 2, (3,), "valid", (1,)),              # 1-D fast path (groups 1, dilation 1)
    ((1, 12, 4), (3,), 4, 3, (1,), "causal_like", (4,)),        # 1-D dilated with causal padding done by hand
    ((1, 5, 6, 4, 2), (2, 3, 1), 1, 4, (1, 2, 1), "same", (2, 1, 1)),  # 3-D, groups 2
    ((2, 6, 7, 3), (3, 3), 3, 4, (2, 1), "valid", (1, 1)),      # 2-D fast path
]


@pytest.mark.parametrize("shape,k,cin_g,cout,strides,padding,dilation", CONV_CASES)
def test_conv_matches_torch(shape, k, cin_g, cout, strides, padding, dilation):
    x, w = randn(*shape), randn(*k, cin_g, cout) * 0.5
    groups = shape[-1] // cin_g
    if padding == "causal_like":
        pad = ((0, 0), ((k[0] - 1) * dilation[0], 0), (0, 0))
        compare(lambda a, b: ops.conv(ops.pad(a, pad), b, strides, "valid", dilation_rate=dilation),
                lambda a, b: torch_conv(F.pad(a, (0, 0, pad[1][0], 0)), b, strides, "valid", dilation, groups),
                [x, w])
        return
    compare(lambda a, b: ops.conv(a, b, strides, padding, dilation_rate=dilation),
            lambda a, b: torch_conv(a, b, strides, padding, dilation, groups), [x, w])


TRANSPOSE_CASES = [
    # (input shape, kernel size, filters, strides, padding, output_padding, dilation)
    ((2, 5, 6, 3), (3, 3), 4, (2, 2), "same", None, (1, 1)),    # autoencoder's upsampling: 2x
    ((1, 5, 6, 3), (3, 3), 4, (2, 2), "valid", None, (1, 1)),   # batch 1
    ((2, 4, 3, 3), (2, 3), 2, (3, 2), "valid", (2, 1), (1, 1)),  # output_padding appends zeros after
    ((2, 4, 5, 2), (3, 3), 3, (3, 3), "same", (1, 2), (1, 1)),
    ((1, 3, 3, 2), (4, 4), 2, (2, 2), "same", (1, 0), (1, 1)),  # even kernel
    ((1, 3, 3, 2), (1, 1), 2, (3, 2), "same", None, (1, 1)),    # 1x1 kernel, stride 3: zeros between pixels
    ((2, 4, 5, 3), (3, 2), 2, (1, 1), "same", None, (2, 3)),    # dilated
    ((2, 4, 5, 3), (3, 2), 2, (1, 1), "valid", None, (2, 2)),
    ((2, 7, 3), (3,), 5, (2,), "same", None, (1,)),             # 1-D
    ((1, 6, 2), (4,), 3, (3,), "valid", (1,), (1,)),
    ((2, 5, 2), (2,), 3, (3,), "same", (2,), (1,)),             # Keras's test case: 8 -> 23 at this stride
]


@pytest.mark.parametrize("shape,k,filters,strides,padding,output_padding,dilation", TRANSPOSE_CASES)
def test_conv_transpose_matches_torch(shape, k, filters, strides, padding, output_padding, dilation):
    x, w = randn(*shape), randn(*k, filters, shape[-1]) * 0.5
    compare(lambda a, b: ops.conv_transpose(a, b, strides, padding, output_padding, dilation_rate=dilation),
            lambda a, b: torch_conv_transpose(a, b, strides, padding, output_padding, dilation), [x, w])


@pytest.mark.parametrize("size,k,stride,padding,output_padding,expected", [
    (8, 2, 2, "valid", None, 16), (8, 2, 3, "same", 2, 23), (8, 3, 2, "same", None, 16),
    (5, 3, 2, "valid", None, 11), (5, 1, 3, "valid", None, 15), (5, 3, 1, "same", None, 5),
    (5, 4, 2, "valid", 1, 13), (5, 4, 2, "same", 1, 9)])
def test_conv_transpose_output_length_is_keras(size, k, stride, padding, output_padding, expected):
    # Keras: 'valid' gives (size-1)*s + max(k, s), or + k + output_padding;
    # 'same' gives size*s, or (size-1)*s + k%2 + output_padding
    y = ops.conv_transpose(np.zeros((1, size, 2), np.float32), np.zeros((k, 3, 2), np.float32), stride, padding,
                           output_padding)
    assert y.shape == (1, expected, 3)


@pytest.mark.parametrize("shape,k,multiplier,strides,padding,dilation", [
    ((2, 7, 8, 3), (3, 3), 1, (1, 1), "same", (1, 1)),
    ((1, 9, 7, 4), (3, 2), 2, (2, 3), "valid", (1, 1)),
    ((2, 8, 9, 2), (3, 3), 3, (1, 1), "same", (2, 3)),
    ((2, 11, 3), (5,), 2, (2,), "same", (1,)),
])
def test_depthwise_conv_matches_torch(shape, k, multiplier, strides, padding, dilation):
    channels = shape[-1]
    x, w = randn(*shape), randn(*k, channels, multiplier)

    def reference(a, b):  # (*k, C, M) -> (*k, 1, C*M): output channel c*M + m, torch's grouped layout too
        return torch_conv(a, b.reshape(*k, 1, channels * multiplier), strides, padding, dilation, channels)
    compare(lambda a, b: ops.depthwise_conv(a, b, strides, padding, dilation_rate=dilation), reference, [x, w])


@pytest.mark.parametrize("shape,k,multiplier,filters,strides,padding,dilation", [
    ((2, 7, 8, 3), (3, 3), 2, 5, (1, 1), "same", (1, 1)),
    ((1, 9, 8, 4), (3, 3), 1, 2, (2, 2), "valid", (1, 1)),
    ((2, 10, 3), (3,), 2, 4, (1,), "same", (2,)),
])
def test_separable_conv_matches_torch(shape, k, multiplier, filters, strides, padding, dilation):
    channels, rank = shape[-1], len(k)
    x, dw, pw = randn(*shape), randn(*k, channels, multiplier), randn(*(1,) * rank, channels * multiplier, filters)

    def reference(a, b, c):
        y = torch_conv(a, b.reshape(*k, 1, channels * multiplier), strides, padding, dilation, channels)
        return torch_conv(y, c, (1,) * rank, "valid", (1,) * rank, 1)
    compare(lambda a, b, c: ops.separable_conv(a, b, c, strides, padding, dilation_rate=dilation), reference,
            [x, dw, pw])


def test_general_conv_gradients_finite_differences():
    rng = np.random.default_rng(3)
    check_gradients(lambda x, w: ops.conv(x, w, 1, "same", dilation_rate=(2, 1)),
                    [rng.standard_normal((1, 5, 4, 4)), rng.standard_normal((3, 2, 2, 4))])


def test_conv_transpose_gradients_finite_differences():
    rng = np.random.default_rng(4)
    check_gradients(lambda x, w: ops.conv_transpose(x, w, (2, 3), "same", output_padding=(1, 2)),
                    [rng.standard_normal((1, 3, 2, 2)), rng.standard_normal((3, 2, 3, 2))])


def test_float64_stays_float64():
    x = dlgpu.Tensor(np.ones((1, 5, 2)), dtype="float64")
    w = dlgpu.Tensor(np.ones((3, 2, 2)), dtype="float64")
    for y in (ops.conv(x, w, dilation_rate=2), ops.conv_transpose(x, w, 2),
              ops.depthwise_conv(x, ops.reshape(w, (3, 2, 2)))):
        assert y.dtype == "float64"


def test_bad_inputs_name_the_op_and_shapes():
    x = np.zeros((1, 6, 6, 4), np.float32)
    with pytest.raises(ValueError, match=r"conv: the input's 4 channels.*not a multiple.*3 input channels"):
        ops.conv(x, np.zeros((3, 3, 3, 2), np.float32))
    with pytest.raises(ValueError, match=r"conv: the kernel's 3 output channels.*2 groups"):
        ops.conv(x, np.zeros((3, 3, 2, 3), np.float32))
    with pytest.raises(ValueError, match=r"conv: .*rank 3, 4 or 5.*\(6, 6\)"):
        ops.conv(np.zeros((6, 6), np.float32), np.zeros((3, 3), np.float32))
    with pytest.raises(ValueError, match=r"conv: the window \(3, 3\) \(dilation_rate=\(3, 3\).*\(7, 7\).*empty"):
        ops.conv(x, np.zeros((3, 3, 4, 2), np.float32), dilation_rate=3)
    with pytest.raises(ValueError, match=r"dilation_rate"):
        ops.conv(x, np.zeros((3, 3, 4, 2), np.float32), dilation_rate=0)
    with pytest.raises(ValueError, match=r"channels_last"):
        ops.conv(x, np.zeros((3, 3, 4, 2), np.float32), data_format="channels_first")
    with pytest.raises(ValueError, match=r"conv_transpose: the input has 4 channels.*expects 3"):
        ops.conv_transpose(x, np.zeros((3, 3, 2, 3), np.float32))
    with pytest.raises(ValueError, match=r"conv_transpose: output_padding"):
        ops.conv_transpose(x, np.zeros((3, 3, 2, 4), np.float32), 2, output_padding=(1, -1))
    with pytest.raises(ValueError, match=r"conv_transpose: padding"):
        ops.conv_transpose(x, np.zeros((3, 3, 2, 4), np.float32), padding="causal")
    with pytest.raises(ValueError, match=r"conv_transpose: the output would be empty"):
        ops.conv_transpose(np.zeros((1, 1, 2), np.float32), np.zeros((2, 1, 2), np.float32), 1, "same", 0)
    with pytest.raises(ValueError, match=r"depthwise_conv: the input has 4 channels.*expects 3"):
        ops.depthwise_conv(x, np.zeros((3, 3, 3, 1), np.float32))
    with pytest.raises(ValueError, match=r"separable_conv: pointwise_kernel must have shape \(1, 1, 8"):
        ops.separable_conv(x, np.zeros((3, 3, 4, 2), np.float32), np.zeros((1, 1, 4, 5), np.float32))


@pytest.mark.parametrize("shape,w_shape,strides,dilation,pads,groups", [
    ((2, 9, 8, 6), (3, 3, 3, 4), (1, 1), (2, 2), ((2, 2), (2, 2)), 2),
    ((1, 7, 10, 4), (3, 2, 1, 8), (2, 3), (1, 1), ((0, 0), (0, 0)), 4),
    ((2, 13, 4), (3, 2, 6), (1,), (2,), ((2, 2),), 2),
])
def test_primitives_agree_with_each_other(shape, w_shape, strides, dilation, pads, groups):
    """conv_general_input_grad is the backward's dx without the forward's rows."""
    x, w = randn(*shape), randn(*w_shape)
    y, ctx = cpu.conv_general_forward(x, w, strides, dilation, pads, groups)
    dy = randn(*y.shape)
    dx, dw = cpu.conv_general_backward(dy, ctx)
    np.testing.assert_array_equal(cpu.conv_general_input_grad(dy, w, x.shape, strides, dilation, pads, groups), dx)
    assert cpu.conv_general_backward(dy, ctx, need_dx=False)[0] is None
    assert dx.dtype == dw.dtype == np.float32 and dw.shape == w.shape


# -- the GPU against the CPU ------------------------------------------------------------------------
GPU_CASES = [
    ("conv", lambda x, w: ops.conv(x, w, 1, "same", dilation_rate=2), (2, 9, 8, 6), (3, 3, 3, 4)),
    ("conv_1d", lambda x, w: ops.conv(x, w, 2, "valid"), (2, 11, 4), (3, 2, 6)),
    ("conv_transpose", lambda x, w: ops.conv_transpose(x, w, 2, "same", output_padding=1), (2, 5, 6, 3), (3, 3, 4, 3)),
    ("depthwise_conv", lambda x, w: ops.depthwise_conv(x, w, (2, 1), "same"), (2, 7, 8, 3), (3, 3, 3, 2)),
]


@pytest.mark.gpu
@pytest.mark.parametrize("name,fn,x_shape,w_shape", GPU_CASES, ids=[c[0] for c in GPU_CASES])
def test_gpu_matches_cpu(name, fn, x_shape, w_shape):
    x, w = randn(*x_shape), randn(*w_shape)
    results = {}
    for device in ("cpu", "gpu"):
        with dlgpu.device(device):
            xt, wt = ops.convert_to_tensor(x), ops.convert_to_tensor(w)
            with dlgpu.GradientTape() as tape:
                tape.watch([xt, wt])
                out = fn(xt, wt)
                loss = ops.sum(ops.square(out))
            results[device] = [t.numpy() for t in [out, *tape.gradient(loss, [xt, wt])]]
    for got, expected in zip(results["gpu"], results["cpu"]):
        np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4)


@pytest.mark.gpu
def test_separable_conv_gpu_matches_cpu():
    x, dw, pw = randn(2, 7, 8, 3), randn(3, 3, 3, 2), randn(1, 1, 6, 4)
    outs = []
    for device in ("cpu", "gpu"):
        with dlgpu.device(device):
            outs.append(ops.separable_conv(*(ops.convert_to_tensor(a) for a in (x, dw, pw)), padding="same").numpy())
    np.testing.assert_allclose(outs[1], outs[0], rtol=1e-4, atol=1e-4)
