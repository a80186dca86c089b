"""dlgpu.ops.linalg: values against numpy, gradients by finite differences (float64), errors, GPU vs CPU."""

import numpy as np
import pytest

from dlgpu import ops
from dlgpu.autograd import GradientTape, Tensor

from helpers import check_gradients

rng = np.random.default_rng(7)


def randn(*shape):
    return rng.standard_normal(shape)


def well_conditioned(*shape):
    return randn(*shape) + 3 * np.eye(shape[-1])


def spd(a):
    """A symmetric positive-definite function of any square a, so finite differences stay symmetric."""
    n = a.shape[-1]
    perm = list(range(a.ndim - 2)) + [a.ndim - 1, a.ndim - 2]
    return ops.add(ops.matmul(a, ops.transpose(a, perm)), ops.multiply(ops.eye(n, dtype="float64"), 0.5))


SHAPES = [(3, 3), (2, 4, 4), (1, 1)]


def test_linalg_is_a_submodule_with_the_keras_names():
    for name in ["cholesky", "cholesky_inverse", "det", "eig", "eigh", "inv", "lstsq", "norm", "qr", "solve",
                 "solve_triangular", "svd"]:
        assert callable(getattr(ops.linalg, name))
    assert ops.inv is ops.linalg.inv


@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_inv_det_logdet(shape):
    a = well_conditioned(*shape)
    np.testing.assert_allclose(ops.linalg.inv(a).numpy(), np.linalg.inv(a), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(ops.linalg.det(a).numpy(), np.linalg.det(a), rtol=1e-4)
    check_gradients(ops.linalg.inv, [a])
    check_gradients(ops.linalg.det, [a])
    check_gradients(lambda t: ops.logdet(spd(t)), [a])
    assert ops.linalg.inv(a.astype(np.float32)).dtype == "float32"
    assert ops.linalg.det(np.eye(2, dtype=np.int32)).dtype == "float32"


@pytest.mark.parametrize("shapes", [((3, 3), (3,)), ((3, 3), (3, 2)), ((2, 3, 3), (2, 3, 1)), ((3, 3), (4, 3, 2))],
                         ids=str)
def test_solve(shapes):
    a, b = well_conditioned(*shapes[0]), randn(*shapes[1])
    want = np.linalg.solve(a, b)
    np.testing.assert_allclose(ops.linalg.solve(a, b).numpy(), want, rtol=1e-4, atol=1e-5)
    check_gradients(ops.linalg.solve, [a, b])


@pytest.mark.parametrize("lower", [True, False])
def test_solve_triangular_reads_one_triangle(lower):
    a, b = well_conditioned(3, 3), randn(3, 2)
    tri = np.tril(a) if lower else np.triu(a)
    np.testing.assert_allclose(ops.linalg.solve_triangular(a, b, lower=lower).numpy(), np.linalg.solve(tri, b),
                               rtol=1e-5, atol=1e-6)
    grads = check_gradients(lambda t, u: ops.linalg.solve_triangular(t, u, lower=lower), [a, b])
    untouched = np.triu(np.ones((3, 3)), 1) if lower else np.tril(np.ones((3, 3)), -1)
    assert not grads[0].numpy()[untouched.astype(bool)].any()


@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("upper", [False, True])
def test_cholesky_and_cholesky_inverse(shape, upper):
    a = randn(*shape)
    m = a @ np.swapaxes(a, -1, -2) + 0.5 * np.eye(shape[-1])
    want = np.linalg.cholesky(m)
    if upper:
        want = np.swapaxes(want, -1, -2)
    np.testing.assert_allclose(ops.linalg.cholesky(m, upper=upper).numpy(), want, rtol=1e-4, atol=1e-5)
    check_gradients(lambda t: ops.linalg.cholesky(spd(t), upper=upper), [a])
    np.testing.assert_allclose(ops.linalg.cholesky_inverse(want, upper=upper).numpy(), np.linalg.inv(m),
                               rtol=1e-3, atol=1e-4)
    check_gradients(lambda t: ops.linalg.cholesky_inverse(t, upper=upper), [want])


def test_cholesky_refuses_an_indefinite_matrix():
    with pytest.raises(ValueError, match="cholesky: the input is not positive definite"):
        ops.linalg.cholesky(np.array([[1.0, 2.0], [2.0, 1.0]]))


@pytest.mark.parametrize("shape", [(3, 3), (2, 4, 4)], ids=str)
def test_eigh(shape):
    a = randn(*shape)
    m = a + np.swapaxes(a, -1, -2)
    w, v = ops.linalg.eigh(m)
    np.testing.assert_allclose(w.numpy(), np.linalg.eigvalsh(m), rtol=1e-4, atol=1e-5)
    rebuilt = v.numpy() @ (w.numpy()[..., :, None] * np.swapaxes(v.numpy(), -1, -2))
    np.testing.assert_allclose(rebuilt, m, rtol=1e-4, atol=1e-4)
    check_gradients(lambda t: ops.linalg.eigh(spd(t)), [a])


@pytest.mark.parametrize("shape", [(4, 3), (3, 3), (2, 5, 2)], ids=str)
def test_qr(shape):
    a = randn(*shape)
    q, r = ops.linalg.qr(a)
    wq, wr = np.linalg.qr(a)
    np.testing.assert_allclose(q.numpy(), wq, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(r.numpy(), wr, rtol=1e-4, atol=1e-5)
    check_gradients(ops.linalg.qr, [a])
    q, r = ops.linalg.qr(a, mode="complete")
    assert q.shape == shape[:-1] + (shape[-2],)


def test_qr_and_svd_refuse_gradients_they_do_not_have():
    # complete Q and full U / Vh of a non-square matrix: their extra columns are not unique
    for fn in (lambda t: ops.linalg.qr(t, mode="complete")[0], lambda t: ops.linalg.svd(t)[0],
               lambda t: ops.linalg.svd(t)[2], lambda t: ops.linalg.eig(t[:3])[0]):
        x = Tensor(randn(4, 3))
        with GradientTape() as tape:
            tape.watch(x)
            y = ops.sum(fn(x))
        with pytest.raises(NotImplementedError, match="no gradient is implemented"):
            tape.gradient(y, x)
    with pytest.raises(ValueError, match="qr: mode"):
        ops.linalg.qr(np.eye(2), mode="r")


@pytest.mark.parametrize("shape", [(4, 3), (3, 5), (2, 3, 3)], ids=str)
def test_svd(shape):
    a = randn(*shape)
    u, s, vh = ops.linalg.svd(a, full_matrices=False)
    np.testing.assert_allclose(s.numpy(), np.linalg.svd(a, compute_uv=False), rtol=1e-4)
    rebuilt = (u.numpy() * s.numpy()[..., None, :]) @ vh.numpy()
    np.testing.assert_allclose(rebuilt, a, rtol=1e-4, atol=1e-4)
    assert ops.linalg.svd(a)[0].shape == shape[:-1] + (shape[-2],)
    check_gradients(lambda t: ops.linalg.svd(t, compute_uv=False), [a])


def test_eig_and_lstsq():
    a = well_conditioned(3, 3)
    w, v = ops.linalg.eig(a)
    np.testing.assert_allclose(a @ v.numpy(), v.numpy() * w.numpy()[None], rtol=1e-4, atol=1e-4)
    a, b = randn(5, 3), randn(5, 2)
    np.testing.assert_allclose(ops.linalg.lstsq(a, b).numpy(), np.linalg.lstsq(a, b, rcond=None)[0], rtol=1e-4,
                               atol=1e-5)
    with pytest.raises(ValueError, match="lstsq: needs a 2-D a"):
        ops.linalg.lstsq(a, b[:4])


def test_square_ops_name_bad_shapes():
    for op in ("inv", "det", "cholesky", "eigh"):
        with pytest.raises(ValueError, match=rf"{op}: needs square matrices.*\(2, 3\)"):
            getattr(ops.linalg, op)(np.ones((2, 3)))
    with pytest.raises(ValueError, match="solve: a of shape"):
        ops.linalg.solve(np.eye(3), np.ones(4))


@pytest.mark.gpu
def test_linalg_on_gpu_match_cpu():
    import dlgpu
    a, b, c = well_conditioned(2, 3, 3), randn(2, 3, 2), randn(4, 3)
    results = []
    for device in ("cpu", "gpu"):
        with dlgpu.device(device):
            at, bt, ct = (ops.convert_to_tensor(x) for x in (a, b, c))
            with GradientTape() as tape:
                tape.watch([at, bt, ct])
                m = ops.matmul(at, ops.transpose(at, (0, 2, 1)))
                outs = [ops.linalg.inv(at), ops.linalg.det(at), ops.logdet(m), ops.linalg.solve(at, bt),
                        ops.linalg.solve_triangular(at, bt, lower=True), ops.linalg.cholesky(m),
                        ops.linalg.cholesky_inverse(ops.linalg.cholesky(m)), ops.linalg.eigh(m)[0],
                        ops.linalg.qr(ct)[1], ops.linalg.svd(ct, compute_uv=False), ops.linalg.norm(ct)]
                loss = sum(ops.sum(o) for o in outs)
            grads = tape.gradient(loss, [at, bt, ct])
            results.append([o.numpy() for o in outs] + [g.numpy() for g in grads])
    for on_cpu, on_gpu in zip(*results):
        np.testing.assert_allclose(on_gpu, on_cpu, rtol=1e-4, atol=1e-4)


def test_slogdet_matrix_power_rank_pinv():
    a = well_conditioned(2, 3, 3)
    sign, logabs = ops.linalg.slogdet(a)
    want_sign, want_log = np.linalg.slogdet(a)
    np.testing.assert_allclose(sign.numpy(), want_sign)
    np.testing.assert_allclose(logabs.numpy(), want_log, rtol=1e-5)
    check_gradients(lambda t: ops.linalg.slogdet(t)[1], [a])
    for n in (0, 1, 3, 5, -2):
        np.testing.assert_allclose(ops.linalg.matrix_power(a, n).numpy(), np.linalg.matrix_power(a, n), rtol=1e-4,
                                   atol=1e-5)
    check_gradients(lambda t: ops.linalg.matrix_power(t, 3), [a])
    check_gradients(lambda t: ops.linalg.matrix_power(t, -1), [a])
    assert ops.linalg.matrix_rank(np.ones((3, 3))).numpy() == 1
    b = randn(4, 3)
    np.testing.assert_allclose(ops.linalg.pinv(b).numpy(), np.linalg.pinv(b), rtol=1e-4, atol=1e-5)


def test_slogdet_sign_and_matrix_rank_have_zero_gradients():
    # piecewise constant outputs inside a loss: no gradient from them (they once had no backward at all)
    a = well_conditioned(3, 3) * np.array([1.0, 1.0, -1.0])
    x = Tensor(a)
    with GradientTape() as tape:
        tape.watch(x)
        sign, logabs = ops.linalg.slogdet(x)
        rank = ops.cast(ops.linalg.matrix_rank(x), "float32")
        y = sign * logabs + rank
    np.testing.assert_allclose(tape.gradient(y, x).numpy(), np.sign(np.linalg.det(a)) * np.linalg.inv(a).T,
                               rtol=1e-5, atol=1e-6)
