"""Forward values and gradients against PyTorch CPU in float32 (thinc's test_ops habit).

NHWC tensors are permuted to NCHW for torch; Keras 'same' padding (TensorFlow's rule: the odd pixel
of padding goes at the end) is applied to torch's input explicitly with F.pad.
"""

import numpy as np
import pytest

torch = pytest.importorskip("torch")
F = torch.nn.functional

from dlgpu import ops  # noqa: E402
from dlgpu.autograd import GradientTape, Tensor  # noqa: E402
from dlgpu.ops.conv import resolve_padding  # noqa: E402

RTOL, ATOL = 1e-4, 1e-5
rng = np.random.default_rng(5)


@pytest.fixture(autouse=True, scope="module")
def _deterministic_torch():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def randn(*shape):
    return rng.standard_normal(shape).astype(np.float32)


def compare(dl_fn, torch_fn, arrays, diff=None, rtol=RTOL, atol=ATOL):
    """Run both frameworks on the same float32 arrays; compare outputs and the gradients of
    <upstream, output> with respect to the inputs listed in ``diff`` (default: all float inputs)."""
    diff = [i for i, a in enumerate(arrays) if a.dtype.kind == "f"] if diff is None else diff
    ts = [Tensor(a) for a in arrays]
    with GradientTape() as tape:
        tape.watch([ts[i] for i in diff])
        out = dl_fn(*ts)
    upstream = randn(*out.shape)
    grads = tape.gradient(out, [ts[i] for i in diff], output_gradients=Tensor(upstream))

    tts = [torch.tensor(a, requires_grad=i in diff) for i, a in enumerate(arrays)]
    tout = torch_fn(*tts)
    tout.backward(torch.tensor(upstream))

    assert out.dtype == "float32"
    np.testing.assert_allclose(out.numpy(), tout.detach().numpy(), rtol=rtol, atol=atol, err_msg="forward")
    for i, g in zip(diff, grads):
        assert g.dtype == "float32"
        np.testing.assert_allclose(g.numpy(), tts[i].grad.numpy(), rtol=rtol, atol=atol, err_msg=f"grad {i}")


ELEMENTWISE = {
    "relu": F.relu, "sigmoid": torch.sigmoid, "tanh": torch.tanh, "gelu": F.gelu,
    "leaky_relu": lambda t: F.leaky_relu(t, 0.2), "softplus": F.softplus, "silu": F.silu, "elu": F.elu,
    "selu": F.selu, "mish": F.mish, "softsign": F.softsign, "log_sigmoid": F.logsigmoid,
    "exp": torch.exp, "abs": torch.abs, "square": torch.square, "sin": torch.sin,
    "relu6": F.relu6, "hard_sigmoid": lambda t: torch.clamp(t / 6 + 0.5, 0, 1), "erf": torch.erf,
}


@pytest.mark.parametrize("name", sorted(ELEMENTWISE))
def test_elementwise(name):
    compare(getattr(ops, name), ELEMENTWISE[name], [randn(4, 6) * 3])


def test_gelu_approximate():
    compare(lambda t: ops.gelu(t, approximate=True), lambda t: F.gelu(t, approximate="tanh"), [randn(4, 6) * 3])


@pytest.mark.parametrize("name,torch_fn", [("add", torch.add), ("subtract", torch.sub), ("multiply", torch.mul),
                                           ("divide", torch.div), ("maximum", torch.maximum),
                                           ("minimum", torch.minimum), ("power", torch.pow)])
def test_binary_broadcast(name, torch_fn):
    a = np.abs(randn(3, 1, 4)) + 0.5
    compare(getattr(ops, name), torch_fn, [a, randn(2, 1)])


@pytest.mark.parametrize("shapes", [((3, 4), (4, 5)), ((2, 3, 4), (4, 5)), ((2, 3, 4), (2, 4, 5)), ((4,), (4, 5))],
                         ids=str)
def test_matmul(shapes):
    compare(ops.matmul, torch.matmul, [randn(*shapes[0]), randn(*shapes[1])])


def test_erfinv():
    compare(ops.erfinv, torch.erfinv, [rng.uniform(-0.95, 0.95, (4, 6)).astype(np.float32)])


@pytest.mark.parametrize("subscripts,shapes", [
    ("ij,jk->ik", [(3, 4), (4, 5)]), ("bij,bjk->bik", [(2, 3, 4), (2, 4, 5)]),
    ("ij,jk,kl->il", [(2, 3), (3, 4), (4, 2)]), ("Ab,aB", [(2, 3), (4, 5)]), ("ij,jk->k", [(3, 4), (4, 5)]), ("i,j->ij", [(3,), (4,)]), ("ii->i", [(4, 4)]),
    ("ii", [(4, 4)]), ("iij->j", [(3, 3, 2)]), ("...ij,...jk->...ik", [(2, 1, 3, 4), (5, 4, 2)]),
    ("ij,ij->ij", [(1, 3), (2, 3)]), ("bhqd,bhkd->bhqk", [(2, 2, 3, 4), (2, 2, 5, 4)]),
], ids=str)
def test_einsum(subscripts, shapes):
    compare(lambda *ts: ops.einsum(subscripts, *ts), lambda *ts: torch.einsum(subscripts, *ts),
            [randn(*shape) for shape in shapes])


@pytest.mark.parametrize("shapes,axes", [(((3, 4), (4, 5)), 1), (((2, 3, 4), (3, 4, 5)), 2),
                                         (((3, 4, 5), (5, 4)), ([1, 2], [1, 0]))], ids=str)
def test_tensordot(shapes, axes):
    compare(lambda a, b: ops.tensordot(a, b, axes=axes), lambda a, b: torch.tensordot(a, b, dims=axes),
            [randn(*shape) for shape in shapes])


@pytest.mark.parametrize("axis", [0, 1, -1])
def test_sort(axis):
    compare(lambda t: ops.sort(t, axis=axis), lambda t: torch.sort(t, dim=axis).values, [randn(3, 4, 5)])


def test_top_k():
    x = randn(3, 4, 7)
    compare(lambda t: ops.top_k(t, 3)[0], lambda t: torch.topk(t, 3).values, [x])
    np.testing.assert_array_equal(ops.top_k(x, 3)[1].numpy(), torch.topk(torch.tensor(x), 3).indices.numpy())


@pytest.mark.parametrize("axis", [0, 1, -1])
@pytest.mark.parametrize("name,torch_fn", [("softmax", torch.softmax), ("log_softmax", torch.log_softmax)])
def test_softmax(name, torch_fn, axis):
    compare(lambda t: getattr(ops, name)(t, axis=axis), lambda t: torch_fn(t, dim=axis), [randn(2, 3, 4)])


@pytest.mark.parametrize("keepdims", [False, True])
@pytest.mark.parametrize("axis", [0, (1, 2), -1])
@pytest.mark.parametrize("name,torch_fn", [
    ("sum", lambda t, a, k: t.sum(dim=a, keepdim=k)), ("mean", lambda t, a, k: t.mean(dim=a, keepdim=k)),
    ("var", lambda t, a, k: t.var(dim=a, keepdim=k, unbiased=False)),
    ("logsumexp", lambda t, a, k: torch.logsumexp(t, dim=a, keepdim=k)),
    ("max", lambda t, a, k: torch.amax(t, dim=a, keepdim=k))], ids=lambda v: v if isinstance(v, str) else "")
def test_reductions(name, torch_fn, axis, keepdims):
    compare(lambda t: getattr(ops, name)(t, axis=axis, keepdims=keepdims), lambda t: torch_fn(t, axis, keepdims),
            [randn(2, 3, 4)])


TORCH_ACT = {"linear": lambda t: t, "relu": F.relu, "sigmoid": torch.sigmoid, "tanh": torch.tanh, "gelu": F.gelu,
             "leaky_relu": lambda t: F.leaky_relu(t, 0.2)}


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("activation", sorted(TORCH_ACT))
def test_dense(activation, bias):
    arrays = [randn(2, 3, 8), randn(8, 5)] + ([randn(5)] if bias else [])
    compare(lambda x, w, *b: ops.dense(x, w, b[0] if b else None, activation=activation),
            lambda x, w, *b: TORCH_ACT[activation](x @ w + (b[0] if b else 0)), arrays)


def _torch_same_pad(x_nchw, window, strides, padding, value=0.0):
    top, bottom, left, right = resolve_padding(padding, x_nchw.shape[2:], window, strides)
    return F.pad(x_nchw, (left, right, top, bottom), value=value)


CONV_CASES = [(2, 6, 6, 3, 3, 4, 1, "same"), (1, 7, 7, 3, 3, 1, 2, "same"), (2, 7, 6, 1, 5, 3, 2, "valid"),
              (1, 8, 8, 3, 1, 3, 2, "same"), (1, 6, 6, 3, 4, 2, 2, "same"), (1, 9, 9, 3, 5, 3, 1, "same")]


@pytest.mark.parametrize("activation", ["linear", "relu", "gelu"])
@pytest.mark.parametrize("case", CONV_CASES, ids=["N{}_{}x{}_Cin{}_k{}_Cout{}_s{}_{}".format(*c) for c in CONV_CASES])
def test_conv2d(case, activation):
    n, h, w, cin, k, cout, s, padding = case

    def torch_conv(x, kern, b):
        xt = _torch_same_pad(x.permute(0, 3, 1, 2), (k, k), (s, s), padding)
        y = F.conv2d(xt, kern.permute(3, 2, 0, 1).contiguous(), b, stride=s)  # torch wants it contiguous
        return TORCH_ACT[activation](y).permute(0, 2, 3, 1)
    compare(lambda x, kern, b: ops.conv2d(x, kern, b, strides=s, padding=padding, activation=activation),
            torch_conv, [randn(n, h, w, cin), randn(k, k, cin, cout) * 0.3, randn(cout)])


POOL_CASES = [(2, 4, 4, 3, 2, 2, "valid"), (1, 5, 5, 2, 2, 2, "same"), (1, 7, 7, 2, 3, 2, "valid"),
              (2, 7, 6, 3, 3, 2, "same"), (1, 6, 6, 1, 3, 1, "same")]


@pytest.mark.parametrize("case", POOL_CASES, ids=["N{}_{}x{}_C{}_p{}_s{}_{}".format(*c) for c in POOL_CASES])
def test_max_pool(case):
    n, h, w, c, p, s, padding = case

    def torch_pool(x):
        xt = _torch_same_pad(x.permute(0, 3, 1, 2), (p, p), (s, s), padding, value=-float("inf"))
        return F.max_pool2d(xt, p, s).permute(0, 2, 3, 1)
    compare(lambda x: ops.max_pool2d(x, p, s, padding), torch_pool, [randn(n, h, w, c)])


@pytest.mark.parametrize("case", POOL_CASES, ids=["N{}_{}x{}_C{}_p{}_s{}_{}".format(*c) for c in POOL_CASES])
def test_avg_pool(case):
    n, h, w, c, p, s, padding = case
    top, bottom, left, right = resolve_padding(padding, (h, w), (p, p), (s, s))
    if (top, left) != (bottom, right):
        # torch pads symmetrically; with TF's asymmetric rule there is no exact torch call, so emulate the
        # count_include_pad=False average: sum over windows / number of real pixels in each window.
        def torch_pool(x):
            xt = _torch_same_pad(x.permute(0, 3, 1, 2), (p, p), (s, s), padding)
            ones = _torch_same_pad(torch.ones_like(x[:1, :, :, :1]).permute(0, 3, 1, 2), (p, p), (s, s), padding)
            return (F.avg_pool2d(xt, p, s) / F.avg_pool2d(ones, p, s)).permute(0, 2, 3, 1)
    else:
        def torch_pool(x):
            return F.avg_pool2d(x.permute(0, 3, 1, 2), p, s, padding=top, count_include_pad=False).permute(0, 2, 3, 1)
    compare(lambda x: ops.avg_pool2d(x, p, s, padding), torch_pool, [randn(n, h, w, c)])


def test_softmax_cross_entropy_sparse():
    labels = rng.integers(0, 7, size=(5,))
    compare(ops.softmax_cross_entropy, lambda z, t: F.cross_entropy(z, t, reduction="none"),
            [randn(5, 7) * 3, labels])


def test_softmax_cross_entropy_dense():
    labels = rng.dirichlet(np.ones(7), size=5).astype(np.float32)
    compare(ops.softmax_cross_entropy, lambda z, t: F.cross_entropy(z, t, reduction="none"),
            [randn(5, 7) * 3, labels], diff=[0])


def test_softmax_cross_entropy_from_softmax_probs_grad_matches_mean():
    labels = rng.integers(0, 4, size=(6,))
    compare(lambda z, t: ops.mean(ops.softmax_cross_entropy(z, t)),
            lambda z, t: F.cross_entropy(z, t), [randn(6, 4), labels])


def test_sigmoid_cross_entropy():
    compare(ops.sigmoid_cross_entropy,
            lambda z, t: F.binary_cross_entropy_with_logits(z, t, reduction="none"),
            [randn(4, 5) * 4, rng.random((4, 5)).astype(np.float32)], diff=[0])


@pytest.mark.parametrize("shape,axes", [((8, 3), (0,)), ((2, 4, 4, 3), (0, 1, 2))], ids=str)
def test_batch_norm_train(shape, axes):
    c = shape[-1]

    def torch_bn(x, g, b):
        xt = x.reshape(-1, c) if len(shape) == 2 else x.permute(0, 3, 1, 2)
        y = F.batch_norm(xt, None, None, g, b, training=True, eps=1e-3)
        return y if len(shape) == 2 else y.permute(0, 2, 3, 1)
    compare(lambda x, g, b: ops.batch_norm_train(x, g, b, axes, 1e-3)[0], torch_bn,
            [randn(*shape), randn(c), randn(c)], atol=1e-4)
