"""Second (and third) derivatives through dlgpu.ops.linalg: Hessian-vector products against torch.autograd
(float64, create_graph=True) with dlgpu in float32; finite differences of dlgpu's own first derivative in
float64; batched and awkward shapes (1x1, tall and wide); the refusals where a gradient is not defined.

Second derivatives are tested in the generic case only (distinct, nonzero singular values and eigenvalues,
full-rank inputs, well-conditioned matrices): elsewhere they are not defined.  Exactly repeated values
are tested at first order.  Singular vectors, eigenvectors and Q are normalized by a sign each framework
takes from its own (detached) output, since LAPACK's choice of sign is arbitrary."""

import numpy as np
import pytest
import torch

import dlgpu
from dlgpu import ops
from dlgpu.autograd import GradientTape, Tensor

torch.backends.cuda.matmul.allow_tf32 = False


# -- sign normalizations and input shapes, written for both frameworks ------------------------------------
def _column_signs(u):
    """+-1 per column of u (numpy array): the sign of the column's largest-magnitude entry."""
    u = np.asarray(u)
    pick = np.take_along_axis(u, np.abs(u).argmax(axis=-2)[..., None, :], axis=-2)
    return np.where(pick < 0, -1.0, 1.0)  # (..., 1, k)


def _our_signs(u):
    return _column_signs(u.numpy()).astype(u.dtype)


def _torch_signs(u):
    return torch.tensor(_column_signs(u.detach().numpy()))


def _ours_svd(a, full_matrices=False):
    u, s, vh = ops.linalg.svd(a, full_matrices=full_matrices)
    sign = _our_signs(u)
    return [u * sign, s, vh * ops.swapaxes(sign, -1, -2)]


def _torch_svd(a, full_matrices=False):
    u, s, vh = torch.linalg.svd(a, full_matrices=full_matrices)
    sign = _torch_signs(u)
    return [u * sign, s, vh * sign.transpose(-1, -2)]


def _ours_qr(a, mode="reduced"):
    q, r = ops.linalg.qr(a, mode=mode)
    sign = np.where(np.diagonal(r.numpy(), axis1=-2, axis2=-1) < 0, -1.0, 1.0).astype(r.dtype)
    return [q * sign[..., None, :], r * sign[..., :, None]]


def _torch_qr(a, mode="reduced"):
    q, r = torch.linalg.qr(a, mode=mode)
    sign = torch.where(torch.diagonal(r.detach(), dim1=-2, dim2=-1) < 0, -1.0, 1.0).double()
    return [q * sign[..., None, :], r * sign[..., :, None]]


def _ours_eigh(a):
    w, v = ops.linalg.eigh(a + ops.swapaxes(a, -1, -2))
    return [w, v * _our_signs(v)]


def _torch_eigh(a):
    w, v = torch.linalg.eigh(a + a.transpose(-1, -2))
    return [w, v * _torch_signs(v)]


def _spd(a):  # a a^T + I: positive definite, and symmetric under any perturbation of a
    return ops.matmul(a, ops.swapaxes(a, -1, -2)) + ops.eye(a.shape[-1], dtype=a.dtype)


def _torch_spd(a):
    return a @ a.transpose(-1, -2) + torch.eye(a.shape[-1], dtype=a.dtype)


def _shifted(shape):
    """Standard normal plus 3 I: well-conditioned, so inverses and solves stay tame."""
    return lambda rng: rng.standard_normal(shape) + 3 * np.eye(shape[-1])


def _normal(shape):
    return lambda rng: rng.standard_normal(shape)


def _tril_torch(a, lower):
    return torch.tril(a) if lower else torch.triu(a)


# name: (ours, torch's, input makers); each returns a list of outputs
CASES = {
    "cholesky_batched": (lambda a: [ops.linalg.cholesky(_spd(a))], lambda a: [torch.linalg.cholesky(_torch_spd(a))],
                         [_normal((2, 3, 3))]),
    "cholesky_upper": (lambda a: [ops.linalg.cholesky(_spd(a), upper=True)],
                       lambda a: [torch.linalg.cholesky(_torch_spd(a), upper=True)], [_normal((4, 4))]),
    "cholesky_1x1": (lambda a: [ops.linalg.cholesky(_spd(a))], lambda a: [torch.linalg.cholesky(_torch_spd(a))],
                     [_normal((2, 1, 1))]),
    "cholesky_inverse": (lambda a: [ops.linalg.cholesky_inverse(a)],
                         # tril: torch's forward reads L's lower triangle but its gradient fills the other too
                         lambda a: [torch.cholesky_inverse(torch.tril(a))], [_shifted((3, 3))]),
    "eigh_batched": (_ours_eigh, _torch_eigh, [_normal((2, 4, 4))]),
    "eigh_1x1": (_ours_eigh, _torch_eigh, [_normal((1, 1))]),
    "qr_tall": (_ours_qr, _torch_qr, [_normal((5, 3))]),
    "qr_square_batched": (_ours_qr, _torch_qr, [_normal((2, 3, 3))]),
    "qr_wide": (_ours_qr, _torch_qr, [_normal((3, 5))]),
    "qr_wide_batched": (_ours_qr, _torch_qr, [_normal((2, 2, 4))]),
    "qr_complete_wide": (lambda a: _ours_qr(a, "complete"), lambda a: _torch_qr(a, "complete"), [_normal((2, 3))]),
    "qr_1x1": (_ours_qr, _torch_qr, [_normal((1, 1))]),
    "svd_values_tall": (lambda a: [ops.linalg.svd(a, compute_uv=False)], lambda a: [torch.linalg.svdvals(a)],
                        [_normal((5, 3))]),
    "svd_values_wide_batched": (lambda a: [ops.linalg.svd(a, compute_uv=False)],
                                lambda a: [torch.linalg.svdvals(a)], [_normal((2, 3, 5))]),
    "svd_values_1x1": (lambda a: [ops.linalg.svd(a, compute_uv=False)], lambda a: [torch.linalg.svdvals(a)],
                       [_normal((1, 1))]),
    "svd_tall": (_ours_svd, _torch_svd, [_normal((5, 3))]),
    "svd_wide_batched": (_ours_svd, _torch_svd, [_normal((2, 3, 5))]),
    "svd_square_full_matrices": (lambda a: _ours_svd(a, True), lambda a: _torch_svd(a, True), [_normal((2, 3, 3))]),
    "svd_1x1": (_ours_svd, _torch_svd, [_normal((1, 1))]),
    "slogdet": (lambda a: [ops.linalg.slogdet(a)[1]], lambda a: [torch.linalg.slogdet(a)[1]], [_normal((2, 3, 3))]),
    "solve_triangular_lower": (
        lambda a, b: [ops.linalg.solve_triangular(a, b, lower=True)],
        lambda a, b: [torch.linalg.solve_triangular(_tril_torch(a, True), b, upper=False)],
        [_shifted((2, 3, 3)), _normal((2, 3, 2))]),
    "solve_triangular_upper": (
        lambda a, b: [ops.linalg.solve_triangular(a, b)],
        lambda a, b: [torch.linalg.solve_triangular(_tril_torch(a, False), b, upper=True)],
        [_shifted((3, 3)), _normal((3, 4))]),
    "matrix_power_3": (lambda a: [ops.linalg.matrix_power(a, 3)], lambda a: [torch.linalg.matrix_power(a, 3)],
                       [_normal((2, 3, 3))]),
    "matrix_power_minus_2": (lambda a: [ops.linalg.matrix_power(a, -2)],
                             lambda a: [torch.linalg.matrix_power(a, -2)], [_shifted((3, 3))]),
    "det_1x1": (lambda a: [ops.linalg.det(a)], lambda a: [torch.linalg.det(a)], [_shifted((1, 1))]),
}


def _loss(outs, weights, tanh, total):
    return total(tanh(y) * w for y, w in zip(outs, weights))  # tanh: a curvature of its own


@pytest.mark.parametrize("name", sorted(CASES))
def test_hessian_vector_product_matches_torch(name):
    ours, theirs, makers = CASES[name]
    rng = np.random.default_rng(sorted(CASES).index(name))
    values = [make(rng) for make in makers]
    vectors = [rng.standard_normal(v.shape) for v in values]
    xs = [dlgpu.Variable(v.astype("float32")) for v in values]
    with GradientTape() as outer:
        with GradientTape() as inner:
            outs = ours(*xs)
            weights = [rng.standard_normal(y.shape) for y in outs]
            loss = _loss(outs, [w.astype("float32") for w in weights], ops.tanh, lambda ys: sum(ops.sum(y) for y in ys))
        grads = inner.gradient(loss, xs)
        dot = sum(ops.sum(g * v.astype("float32")) for g, v in zip(grads, vectors))
    hvp = outer.gradient(dot, xs)

    ts = [torch.tensor(v, requires_grad=True) for v in values]
    torch_loss = _loss(theirs(*ts), [torch.tensor(w) for w in weights], torch.tanh, lambda ys: sum(y.sum() for y in ys))
    torch_grads = torch.autograd.grad(torch_loss, ts, create_graph=True)
    torch_dot = sum((g * torch.tensor(v)).sum() for g, v in zip(torch_grads, vectors))
    torch_hvp = torch.autograd.grad(torch_dot, ts)
    np.testing.assert_allclose(float(loss), torch_loss.item(), rtol=1e-4, atol=1e-4)
    for ours_g, torch_g in zip(list(grads) + list(hvp), list(torch_grads) + list(torch_hvp)):
        expected = torch_g.detach().numpy()
        assert ours_g.dtype == "float32" and ours_g.shape == expected.shape
        scale = max(1.0, float(np.abs(expected).max()))  # float32 through a factorization: relative to the largest
        np.testing.assert_allclose(ours_g.numpy(), expected, rtol=2e-3, atol=2e-4 * scale)


def _first_gradient(f, xs, seed):
    """d <w, tanh(f(x))> / dx for Tensors xs, under a tape (recorded when an outer tape is recording)."""
    rng = np.random.default_rng(seed)
    with GradientTape() as tape:
        tape.watch(list(xs))
        outs = f(*xs)
        loss = sum(ops.sum(ops.tanh(y) * rng.standard_normal(y.shape)) for y in outs)
    return tape.gradient(loss, list(xs))


def _check_hvp_by_finite_differences(f, values, seed, eps=1e-6, rtol=1e-5):
    """The Hessian-vector product H v (two nested tapes) against (g(x + eps v) - g(x - eps v)) / (2 eps),
    g the first gradient, all in float64."""
    rng = np.random.default_rng(seed)
    vectors = [rng.standard_normal(v.shape) for v in values]
    xs = [Tensor(v, dtype="float64") for v in values]
    with GradientTape() as outer:
        outer.watch(xs)
        grads = _first_gradient(f, xs, seed)
        dot = sum(ops.sum(g * v) for g, v in zip(grads, vectors))
    hvp = outer.gradient(dot, xs)

    def shifted(step):
        return [g.numpy() for g in _first_gradient(f, [Tensor(x + step * v, dtype="float64")
                                                       for x, v in zip(values, vectors)], seed)]
    expected = [(up - down) / (2 * eps) for up, down in zip(shifted(eps), shifted(-eps))]
    for ours, want in zip(hvp, expected):
        assert ours.dtype == "float64"
        np.testing.assert_allclose(ours.numpy(), want, rtol=rtol, atol=rtol * np.abs(want).max())


# The second derivative against central differences of dlgpu's own first derivative, all in float64
FINITE_DIFFERENCE_CASES = ["cholesky_batched", "cholesky_upper", "cholesky_inverse", "eigh_batched", "qr_tall",
                           "qr_wide_batched", "qr_1x1", "svd_values_wide_batched", "svd_tall", "svd_wide_batched",
                           "svd_1x1", "slogdet", "solve_triangular_lower"]


@pytest.mark.parametrize("name", FINITE_DIFFERENCE_CASES)
def test_second_derivative_matches_finite_differences_of_the_first(name):
    ours, _, makers = CASES[name]
    rng = np.random.default_rng(100 + sorted(CASES).index(name))
    _check_hvp_by_finite_differences(ours, [make(rng) for make in makers], seed=1)


def test_first_gradients_are_the_same_recorded_or_not():
    # the first-order sweep runs each factorization's backward unrecorded; the nested sweep records it
    rng = np.random.default_rng(3)
    a = dlgpu.Variable(rng.standard_normal((2, 4, 3)).astype("float32"))
    b = dlgpu.Variable(rng.standard_normal((2, 3, 3)).astype("float32"))

    def loss():
        q, r = ops.linalg.qr(ops.swapaxes(a, -1, -2))
        u, s, vh = ops.linalg.svd(a, full_matrices=False)
        w, v = ops.linalg.eigh(b + ops.swapaxes(b, -1, -2))
        return (ops.sum(q * q * 0.3) + ops.sum(ops.tanh(r)) + ops.sum(ops.tanh(u * u)) + ops.sum(s * s * s)
                + ops.sum(vh * vh * 0.7) + ops.sum(ops.tanh(w)) + ops.sum(v ** 4)
                + ops.sum(ops.linalg.cholesky(_spd(b))) + ops.sum(ops.linalg.svd(b, compute_uv=False) ** 3)
                + ops.sum(ops.linalg.slogdet(b)[1]))
    with GradientTape() as tape:
        value = loss()
    plain = tape.gradient(value, [a, b])
    with GradientTape():
        with GradientTape() as tape:
            value = loss()
        recorded = tape.gradient(value, [a, b])
    for p, g in zip(plain, recorded):
        assert g._tracked and not p._tracked
        np.testing.assert_allclose(g.numpy(), p.numpy(), rtol=1e-5, atol=1e-6)


def test_third_derivatives_match_torch():
    rng = np.random.default_rng(5)
    a0 = rng.standard_normal((4, 3))
    b0 = rng.standard_normal((3, 3))
    v = [rng.standard_normal(a0.shape), rng.standard_normal(b0.shape)]

    def ours(a, b):
        s = ops.linalg.svd(a, compute_uv=False)
        q, r = ops.linalg.qr(a)
        return (ops.sum(ops.tanh(s)) + ops.sum(ops.linalg.cholesky(_spd(b)) * b) + ops.sum(ops.sin(r))
                + ops.sum(ops.linalg.eigh(b + ops.swapaxes(b, -1, -2))[0] ** 3))

    def theirs(a, b):
        s = torch.linalg.svdvals(a)
        q, r = torch.linalg.qr(a)
        return (torch.tanh(s).sum() + (torch.linalg.cholesky(_torch_spd(b)) * b).sum() + torch.sin(r).sum()
                + (torch.linalg.eigvalsh(b + b.T) ** 3).sum())

    xs = [dlgpu.Variable(x.astype("float32")) for x in (a0, b0)]
    vs = [w.astype("float32") for w in v]
    with GradientTape() as t3:
        with GradientTape() as t2:
            with GradientTape() as t1:
                y = ours(*xs)
            d1 = sum(ops.sum(g * w) for g, w in zip(t1.gradient(y, xs), vs))
        d2 = sum(ops.sum(g * w) for g, w in zip(t2.gradient(d1, xs), vs))
    d3 = t3.gradient(d2, xs)
    ts = [torch.tensor(x, requires_grad=True) for x in (a0, b0)]
    tv = [torch.tensor(w) for w in v]
    e1 = sum((g * w).sum() for g, w in zip(torch.autograd.grad(theirs(*ts), ts, create_graph=True), tv))
    e2 = sum((g * w).sum() for g, w in zip(torch.autograd.grad(e1, ts, create_graph=True), tv))
    e3 = torch.autograd.grad(e2, ts)
    np.testing.assert_allclose(float(d2), e2.item(), rtol=1e-3)
    for ours_d, torch_d in zip(d3, e3):
        expected = torch_d.numpy()
        np.testing.assert_allclose(ours_d.numpy(), expected, rtol=3e-3, atol=3e-3 * np.abs(expected).max())


def test_gradients_that_are_not_defined_still_refuse_at_second_order():
    # the extra columns of a complete Q or a full U of a non-square matrix are not unique: no gradient at
    # any order; eig has none either
    for fn in (lambda t: ops.linalg.qr(t, mode="complete")[0], lambda t: ops.linalg.svd(t)[0],
               lambda t: ops.linalg.svd(t)[2], lambda t: ops.linalg.eig(t[:3])[0]):
        x = dlgpu.Variable(np.random.default_rng(0).standard_normal((4, 3)).astype("float32"))
        with GradientTape():
            with GradientTape() as inner:
                y = ops.sum(fn(x))
            with pytest.raises(NotImplementedError, match="no gradient is implemented"):
                inner.gradient(y, x)


def test_singular_values_of_a_full_svd_are_differentiable_twice():
    # full_matrices=True on a tall matrix: u and vh have no gradient, s has one to any order
    a0 = np.random.default_rng(8).standard_normal((5, 3))
    _check_hvp_by_finite_differences(lambda t: [ops.linalg.svd(t)[1]], [a0], seed=2)
    x = Tensor(a0, dtype="float64")
    with GradientTape() as tape:
        tape.watch(x)
        total = ops.sum(ops.linalg.svd(x)[1])
    u, _, vh = np.linalg.svd(a0, full_matrices=False)
    np.testing.assert_allclose(tape.gradient(total, x).numpy(), u @ vh, rtol=1e-10, atol=1e-12)


@pytest.mark.gpu
def test_hessian_vector_products_on_gpu_match_cpu():
    rng = np.random.default_rng(9)
    a0, b0 = rng.standard_normal((2, 4, 3)).astype("float32"), rng.standard_normal((2, 3, 3)).astype("float32")
    va, vb = rng.standard_normal(a0.shape).astype("float32"), rng.standard_normal(b0.shape).astype("float32")
    results = []
    for device in ("cpu", "gpu"):
        with dlgpu.device(device):
            a, b = ops.convert_to_tensor(a0), ops.convert_to_tensor(b0)
            with GradientTape() as outer:
                outer.watch([a, b])
                with GradientTape() as inner:
                    inner.watch([a, b])
                    u, s, vh = ops.linalg.svd(a, full_matrices=False)
                    q, r = ops.linalg.qr(ops.swapaxes(a, -1, -2))
                    w, v = ops.linalg.eigh(b + ops.swapaxes(b, -1, -2))
                    loss = (ops.sum(ops.tanh(s)) + ops.sum(u * u * 0.5) + ops.sum(ops.sin(r)) + ops.sum(q * q * 0.2)
                            + ops.sum(w ** 3) + ops.sum(v ** 4) + ops.sum(ops.tanh(ops.linalg.cholesky(_spd(b))))
                            + ops.sum(ops.linalg.slogdet(b)[1]) + ops.sum(ops.tanh(ops.linalg.lstsq(a[0], a[1])))
                            + ops.sum(ops.tanh(ops.linalg.pinv(a)))
                            + ops.sum(ops.linalg.solve_triangular(b + 3 * ops.eye(3), ops.swapaxes(a, -1, -2))))
                ga, gb = inner.gradient(loss, [a, b])
                dot = ops.sum(ga * ops.convert_to_tensor(va)) + ops.sum(gb * ops.convert_to_tensor(vb))
            ha, hb = outer.gradient(dot, [a, b])
            results.append([t.numpy() for t in (ga, gb, ha, hb)])
    for on_cpu, on_gpu in zip(*results):
        np.testing.assert_allclose(on_gpu, on_cpu, rtol=1e-3, atol=1e-3 * np.abs(on_cpu).max())


# lstsq of full-rank matrices: torch's pinv(a) @ b is the same function (least squares when tall,
# minimum norm when wide), differentiable twice in torch
LSTSQ_CASES = {"tall": ((5, 3), (5, 2)), "wide": ((2, 4), (2, 3)), "square_vector": ((3, 3), (3,)),
               "tall_vector": ((4, 2), (4,)), "one_by_one": ((1, 1), (1, 1))}


@pytest.mark.parametrize("name", sorted(LSTSQ_CASES))
def test_lstsq_hessian_vector_product_matches_torch_pinv(name):
    shapes = LSTSQ_CASES[name]
    rng = np.random.default_rng(40 + sorted(LSTSQ_CASES).index(name))
    a0, b0 = (rng.standard_normal(s) for s in shapes)
    a0 += 3 * np.eye(*a0.shape)  # well away from rank deficiency
    va, vb = (rng.standard_normal(s) for s in shapes)
    weights = rng.standard_normal(np.linalg.lstsq(a0, b0, rcond=None)[0].shape)
    a, b = dlgpu.Variable(a0.astype("float32")), dlgpu.Variable(b0.astype("float32"))
    with GradientTape() as outer:
        with GradientTape() as inner:
            loss = ops.sum(ops.tanh(ops.linalg.lstsq(a, b)) * weights.astype("float32"))
        ga, gb = inner.gradient(loss, [a, b])
        dot = ops.sum(ga * va.astype("float32")) + ops.sum(gb * vb.astype("float32"))
    ha, hb = outer.gradient(dot, [a, b])
    ta, tb = torch.tensor(a0, requires_grad=True), torch.tensor(b0, requires_grad=True)
    torch_loss = (torch.tanh(torch.linalg.pinv(ta) @ tb) * torch.tensor(weights)).sum()
    tga, tgb = torch.autograd.grad(torch_loss, [ta, tb], create_graph=True)
    tha, thb = torch.autograd.grad((tga * torch.tensor(va)).sum() + (tgb * torch.tensor(vb)).sum(), [ta, tb])
    for ours, theirs in zip([ga, gb, ha, hb], [tga, tgb, tha, thb]):
        expected = theirs.detach().numpy()
        np.testing.assert_allclose(ours.numpy(), expected, rtol=2e-3, atol=2e-4 * max(1.0, np.abs(expected).max()))
    _check_hvp_by_finite_differences(lambda x, y: [ops.linalg.lstsq(x, y)], [a0, b0], seed=3)


@pytest.mark.parametrize("shape", [(4, 3), (2, 3, 5), (1, 1)], ids=str)
def test_pinv_hessian_vector_product_matches_torch(shape):
    rng = np.random.default_rng(50 + len(shape))
    a0 = rng.standard_normal(shape) + 2 * np.eye(*shape[-2:])
    v, weights = rng.standard_normal(shape), rng.standard_normal(shape[:-2] + shape[-2:][::-1])
    a = dlgpu.Variable(a0.astype("float32"))
    with GradientTape() as outer:
        with GradientTape() as inner:
            loss = ops.sum(ops.tanh(ops.linalg.pinv(a)) * weights.astype("float32"))
        g = inner.gradient(loss, a)
        dot = ops.sum(g * v.astype("float32"))
    h = outer.gradient(dot, a)
    ta = torch.tensor(a0, requires_grad=True)
    tg, = torch.autograd.grad((torch.tanh(torch.linalg.pinv(ta)) * torch.tensor(weights)).sum(), ta, create_graph=True)
    th, = torch.autograd.grad((tg * torch.tensor(v)).sum(), ta)
    for ours, theirs in ((g, tg), (h, th)):
        expected = theirs.detach().numpy()
        np.testing.assert_allclose(ours.numpy(), expected, rtol=2e-3, atol=2e-4 * max(1.0, np.abs(expected).max()))
    _check_hvp_by_finite_differences(lambda x: [ops.linalg.pinv(x)], [a0], seed=4)


def test_pinv_of_empty_matrices_is_numpys():
    for shape in [(0, 3), (3, 0), (2, 0, 0)]:
        assert ops.linalg.pinv(np.zeros(shape, np.float32)).shape == np.linalg.pinv(np.zeros(shape)).shape


@pytest.mark.parametrize("op", ["lstsq", "pinv"])
def test_lstsq_and_pinv_refuse_a_gradient_at_a_rank_deficient_matrix(op):
    a = dlgpu.Variable(np.array([[1.0, 2.0], [2.0, 4.0], [3.0, 6.0]]), dtype="float64")
    fn = (lambda t: ops.linalg.lstsq(t, np.ones(3))) if op == "lstsq" else ops.linalg.pinv
    # the value is still numpy's (the dropped singular value counts as zero)
    want = np.linalg.lstsq(a.numpy(), np.ones(3), rcond=None)[0] if op == "lstsq" else np.linalg.pinv(a.numpy())
    np.testing.assert_allclose(fn(a).numpy(), want, rtol=1e-10, atol=1e-12)
    message = rf"{op}: no gradient at a rank-deficient matrix \(shape \(3, 2\)\)"
    with GradientTape() as tape:
        y = ops.sum(fn(a))
    with pytest.raises(NotImplementedError, match=message):
        tape.gradient(y, a)
    with GradientTape():
        with GradientTape() as inner:
            y = ops.sum(fn(a))
        with pytest.raises(NotImplementedError, match=message):
            inner.gradient(y, a)


def test_repeated_eigen_and_singular_values():
    # exactly repeated values: a loss on the values alone keeps its first derivative, one that sees the
    # (not unique) vectors gets NaN rather than a number
    a = dlgpu.Variable(np.diag([1.0, 1.0, 2.0]).astype("float32"))
    with GradientTape(persistent=True) as tape:
        w, v = ops.linalg.eigh(a)
        on_values = ops.sum(w * w)
        on_vectors = ops.sum(v * np.arange(9, dtype="float32").reshape(3, 3))
    np.testing.assert_allclose(tape.gradient(on_values, a).numpy(), 2 * a.numpy(), atol=1e-6)  # d tr(A^2) = 2A
    assert np.isnan(tape.gradient(on_vectors, a).numpy()).any()
    tall = dlgpu.Variable(np.array([[2.0, 0.0], [0.0, 2.0], [0.0, 0.0]], np.float32))  # s = (2, 2)
    with GradientTape(persistent=True) as tape:
        u, s, vh = ops.linalg.svd(tall, full_matrices=False)
        on_values = ops.sum(s)
        on_vectors = ops.sum(u * np.arange(6, dtype="float32").reshape(3, 2))
    np.testing.assert_allclose(tape.gradient(on_values, tall).numpy(), u.numpy() @ vh.numpy(), atol=1e-6)
    assert np.isnan(tape.gradient(on_vectors, tall).numpy()).any()
    rank_one = dlgpu.Variable(np.array([[1.0, 0.0], [0.0, 0.0], [0.0, 0.0]], np.float32))  # s = (1, 0)
    with GradientTape() as tape:
        total = ops.sum(ops.linalg.svd(rank_one, full_matrices=False)[1])
    assert np.isfinite(tape.gradient(total, rank_one).numpy()).all()
