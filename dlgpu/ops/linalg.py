"""keras.ops.linalg: matrix ops over the last two axes (batched), on the array module of their inputs.

Backwards follow the standard matrix-calculus rules (Giles, "An extended collection of matrix derivative
results", 2008; Murray 2016 for the Cholesky factor).  Ops whose gradient is not written raise when a
gradient is asked of them, rather than give a silent zero.
"""

from __future__ import annotations

import numpy as np

from dlgpu.autograd import Tensor
from dlgpu.ops._core import array_module, binary_operands, float_operand, make_result
from dlgpu.ops.reduce import norm  # noqa: F401  (keras.ops.linalg.norm)
from dlgpu.ops.transforms import jvp  # noqa: F401  (keras.ops.linalg.jvp)

__all__ = ["cholesky", "cholesky_inverse", "det", "eig", "eigh", "inv", "lstsq", "norm", "qr", "solve",
           "solve_triangular", "svd", "logdet", "slogdet", "matrix_power", "matrix_rank", "pinv", "lu_factor", "jvp"]


def _mT(a):
    return a.swapaxes(-1, -2)


def _square(op, x):
    x = float_operand(x)
    if x.ndim < 2 or x.data.shape[-1] != x.data.shape[-2]:
        raise ValueError(f"{op}: needs square matrices in the last two axes; received shape {x.data.shape}")
    return x


def _no_gradient(op, detail=""):
    def backward(g):
        raise NotImplementedError(f"{op}: no gradient is implemented{detail}; wrap it in ops.stop_gradient if "
                                  f"the gradient is not needed")
    return backward


# The ``_*_vjp`` functions: the same backwards written with ops (inv, det, logdet and solve recorded again),
# so that nested tapes differentiate them once more.
def _T(t):
    from dlgpu.ops.shape import swapaxes
    return swapaxes(t, -1, -2)


def _scaled_inverse_transpose(scale, x):
    """scale[..., None, None] * inv(x)^T as recorded ops."""
    from dlgpu.ops.math import multiply
    from dlgpu.ops.shape import expand_dims
    return multiply(expand_dims(expand_dims(scale, -1), -1), _T(inv(x)))


def inv(x):
    x = _square("inv", x)
    xp = array_module(x.data)
    y = xp.linalg.inv(x.data)
    return make_result(y, (x,), lambda g: (-(_mT(y) @ g @ _mT(y)),), (_inv_vjp,))


def _inv_vjp(out, g):
    from dlgpu.ops.math import matmul, negative
    return (negative(matmul(matmul(_T(out), g), _T(out))),)


def det(x):
    x = _square("det", x)
    xp = array_module(x.data)
    d = xp.linalg.det(x.data)
    # d det(A) / dA = det(A) A^-T
    return make_result(d, (x,), lambda g: ((g * d)[..., None, None] * _mT(xp.linalg.inv(x.data)),),
                       (_det_vjp,))


def _det_vjp(out, g):
    from dlgpu.ops.math import multiply
    return (_scaled_inverse_transpose(multiply(g, out), out._parents[0]),)


def logdet(x):
    """log det(x) of positive-definite matrices (keras.ops.logdet)."""
    x = _square("logdet", x)
    xp = array_module(x.data)
    _, out = xp.linalg.slogdet(x.data)
    return make_result(out, (x,), lambda g: (g[..., None, None] * _mT(xp.linalg.inv(x.data)),),
                       (_logdet_vjp,))


def _logdet_vjp(out, g):
    return (_scaled_inverse_transpose(g, out._parents[0]),)


def solve(a, b):
    """x with a @ x = b; a 1-D b is one right-hand side."""
    a, b = binary_operands("solve", float_operand(a), float_operand(b))
    a = _square("solve", a)
    xp = array_module(a.data)
    vector = b.ndim == 1
    rhs = b.data[:, None] if vector else b.data
    if rhs.shape[-2] != a.data.shape[-1]:
        raise ValueError(f"solve: a of shape {a.data.shape} and b of shape {b.data.shape} do not match")
    x = xp.linalg.solve(a.data, rhs)

    def backward(g):
        g = g[:, None] if vector else g
        gb = xp.linalg.solve(_mT(a.data), g)
        ga = -(gb @ _mT(x))
        while ga.ndim > a.ndim:  # b's batch axes broadcast over a
            ga = ga.sum(axis=0)
        return ga, gb[:, 0] if vector else gb
    return make_result(x[:, 0] if vector else x, (a, b), backward, (_solve_vjp, vector))


def _solve_vjp(out, g, vector):
    from dlgpu.ops.math import matmul, negative
    from dlgpu.ops.reduce import sum as sum_
    from dlgpu.ops.shape import expand_dims, squeeze
    a, _ = out._parents
    x = expand_dims(out, -1) if vector else out
    gb = solve(_T(a), expand_dims(g, -1) if vector else g)
    ga = negative(matmul(gb, _T(x)))
    if ga.ndim > a.ndim:  # b's batch axes broadcast over a
        ga = sum_(ga, axis=tuple(range(ga.ndim - a.ndim)))
    return ga, squeeze(gb, -1) if vector else gb


def solve_triangular(a, b, lower=False):
    """solve() on the lower (or upper) triangle of a; the other triangle is not read and gets no gradient."""
    from dlgpu.ops.shape import tril, triu
    a = _square("solve_triangular", a)
    return solve(tril(a) if lower else triu(a), b)


def cholesky(x, upper=False):
    x = _square("cholesky", x)
    xp = array_module(x.data)
    try:
        lower = xp.linalg.cholesky(x.data)
    except np.linalg.LinAlgError as error:
        raise ValueError(f"cholesky: the input is not positive definite ({error})") from None
    if xp is not np and bool(xp.isnan(lower).any()):  # cuSOLVER fills NaN where numpy raises
        raise ValueError("cholesky: the input is not positive definite")

    def backward(g):
        gl = _mT(g) if upper else g
        # A-bar = sym(L^-T Phi(L^T L-bar) L^-1), Phi = lower triangle with half its diagonal
        n = lower.shape[-1]
        phi = _mT(lower) @ gl
        phi = xp.where(xp.tri(n, dtype=bool), phi, xp.zeros((), phi.dtype))
        phi = phi - 0.5 * (phi * xp.eye(n, dtype=phi.dtype))
        inv_l = xp.linalg.inv(lower)
        s = _mT(inv_l) @ phi @ inv_l
        return (0.5 * (s + _mT(s)),)
    return make_result(_mT(lower) if upper else lower, (x,), backward)


def cholesky_inverse(x, upper=False):
    """The inverse of A from its Cholesky factor (L with A = L L^T, or U with A = U^T U)."""
    from dlgpu.ops.math import matmul
    from dlgpu.ops.shape import transpose
    x = _square("cholesky_inverse", x)
    perm = list(range(x.ndim - 2)) + [x.ndim - 1, x.ndim - 2]
    xt = transpose(x, perm)
    return inv(matmul(xt, x) if upper else matmul(x, xt))


def eigh(x):
    """Eigenvalues (ascending) and eigenvectors of symmetric matrices; the lower triangle is read."""
    x = _square("eigh", x)
    xp = array_module(x.data)
    w, v = xp.linalg.eigh(x.data)
    pair = make_result(xp.concatenate([w[..., None, :], v], axis=-2), (x,), None)  # one node, two outputs

    def backward(g):
        gw, gv = g[..., 0, :], g[..., 1:, :]
        # A-bar = V (diag(w-bar) + F o (V^T V-bar)) V^T with F_ij = 1 / (w_j - w_i), i != j
        diff = w[..., None, :] - w[..., :, None]
        n = w.shape[-1]
        off = ~xp.eye(n, dtype=bool)
        f = xp.where(off, 1 / xp.where(off, diff, xp.ones((), diff.dtype)), xp.zeros((), diff.dtype))
        inner = f * (_mT(v) @ gv) + gw[..., None, :] * xp.eye(n, dtype=gw.dtype)
        s = v @ inner @ _mT(v)
        return (0.5 * (s + _mT(s)),)
    if pair._tracked:
        pair._backward = backward
    from dlgpu.ops.shape import _getitem
    return _getitem(pair, (Ellipsis, 0, slice(None))), _getitem(pair, (Ellipsis, slice(1, None), slice(None)))


def eig(x):
    """Eigenvalues and eigenvectors of general matrices (complex in general); no gradient."""
    x = _square("eig", x)
    xp = array_module(x.data)
    w, v = xp.linalg.eig(x.data)
    back = _no_gradient("eig")
    return make_result(w, (x,), lambda g: back(g)), make_result(v, (x,), lambda g: back(g))


def qr(x, mode="reduced"):
    """Q and R (mode "reduced" or "complete"); differentiable for reduced mode with rows >= columns."""
    if mode not in ("reduced", "complete"):
        raise ValueError(f"qr: mode must be 'reduced' or 'complete'; received {mode!r}")
    x = float_operand(x)
    if x.ndim < 2:
        raise ValueError(f"qr: needs a tensor of rank >= 2; received shape {x.data.shape}")
    xp = array_module(x.data)
    q, r = xp.linalg.qr(x.data, mode=mode)
    m_, n = x.data.shape[-2:]
    if mode != "reduced" or m_ < n:
        back = _no_gradient("qr", " for mode='complete' or for matrices wider than tall")
        return make_result(q, (x,), lambda g: back(g)), make_result(r, (x,), lambda g: back(g))
    k = q.shape[-1]
    pair = make_result(xp.concatenate([q, r], axis=-2), (x,), None)

    def backward(g):
        gq, gr = g[..., :m_, :], g[..., m_:, :]
        # M = R R-bar^T - Q-bar^T Q; A-bar = (Q-bar + Q copyltu(M)) R^-T
        mm = r @ _mT(gr) - _mT(gq) @ q
        low = xp.tri(k, dtype=bool)
        lower = xp.where(low, mm, xp.zeros((), mm.dtype))
        strict = xp.where(xp.tri(k, k, -1, dtype=bool), mm, xp.zeros((), mm.dtype))
        copyltu = lower + _mT(strict)
        rhs = gq + q @ copyltu
        return (_mT(xp.linalg.solve(r, _mT(rhs))),)  # rhs R^-T, R square (k = n)
    if pair._tracked:
        pair._backward = backward
    from dlgpu.ops.shape import _getitem
    rows = slice(None)
    return (_getitem(pair, (Ellipsis, slice(0, m_), rows)), _getitem(pair, (Ellipsis, slice(m_, None), rows)))


def svd(x, full_matrices=True, compute_uv=True):
    """(u, s, vh) as numpy gives them, or s alone; only the singular values are differentiable
    (compute_uv=False)."""
    x = float_operand(x)
    if x.ndim < 2:
        raise ValueError(f"svd: needs a tensor of rank >= 2; received shape {x.data.shape}")
    xp = array_module(x.data)
    if not compute_uv:
        u, s, vh = xp.linalg.svd(x.data, full_matrices=False)
        # d s_i / dA = u_i v_i^T
        return make_result(s, (x,), lambda g: ((u * g[..., None, :]) @ vh,))
    u, s, vh = xp.linalg.svd(x.data, full_matrices=full_matrices)
    back = _no_gradient("svd", " for u and vh (compute_uv=False gives differentiable singular values)")
    return tuple(make_result(a, (x,), lambda g: back(g)) for a in (u, s, vh))


def lstsq(a, b, rcond=None):
    """The least-squares solution x of a @ x = b (2-D a); no gradient."""
    a, b = binary_operands("lstsq", float_operand(a), float_operand(b))
    if a.ndim != 2 or b.ndim not in (1, 2) or b.data.shape[0] != a.data.shape[0]:
        raise ValueError(f"lstsq: needs a 2-D a and a 1-D or 2-D b with as many rows; received shapes "
                         f"{a.data.shape} and {b.data.shape}")
    xp = array_module(a.data)
    solution = xp.linalg.lstsq(a.data, b.data, rcond=rcond)[0]
    back = _no_gradient("lstsq")
    return make_result(solution, (a, b), lambda g: back(g))


def slogdet(x):
    """(sign, log|det|); log|det| is differentiable (its gradient is A^-T)."""
    x = _square("slogdet", x)
    xp = array_module(x.data)
    sign, logabs = xp.linalg.slogdet(x.data)
    return (make_result(sign, (x,), None),
            make_result(logabs, (x,), lambda g: (g[..., None, None] * _mT(xp.linalg.inv(x.data)),)))


def matrix_power(x, n):
    from dlgpu.ops.math import matmul
    from dlgpu.ops.shape import broadcast_to
    x = _square("matrix_power", x)
    if int(n) != n:
        raise ValueError(f"matrix_power: n must be an integer; received {n!r}")
    n = int(n)
    if n < 0:
        x, n = inv(x), -n
    if n == 0:
        return broadcast_to(Tensor(array_module(x.data).eye(x.data.shape[-1], dtype=x.data.dtype)), x.data.shape)
    out, base = None, x
    while n:  # square-and-multiply
        if n & 1:
            out = base if out is None else matmul(out, base)
        n >>= 1
        if n:
            base = matmul(base, base)
    return out


def matrix_rank(x, tol=None):
    x = float_operand(x)
    out = array_module(x.data).linalg.matrix_rank(x.data, tol=tol).astype(np.int32)
    return make_result(out, (x,), None)


def pinv(x, rcond=1e-15):
    """The Moore-Penrose pseudo-inverse; no gradient."""
    x = float_operand(x)
    back = _no_gradient("pinv")
    return make_result(array_module(x.data).linalg.pinv(x.data, rcond=rcond), (x,), lambda g: back(g))


def lu_factor(x):
    """(LU, pivots) of the LU factorization with partial pivoting of each matrix in the last two axes, as
    LAPACK's getrf (and Keras's): L's unit diagonal is implied, U is the upper triangle, and row i was
    swapped with row pivots[i] (0-based, int32).  Column by column over the batch at once, so it runs on
    numpy and CuPy alike.  No gradient."""
    x = float_operand(x)
    if x.ndim < 2:
        raise ValueError(f"lu_factor: needs matrices in the last two axes; received shape {x.data.shape}")
    xp = array_module(x.data)
    lu = x.data.copy()
    m, n = lu.shape[-2:]
    batch = lu.shape[:-2]
    pivots = xp.zeros(batch + (min(m, n),), np.int32)
    flat, flat_pivots = lu.reshape((-1, m, n)), pivots.reshape((-1, min(m, n)))
    rows = xp.arange(flat.shape[0])
    for j in range(min(m, n)):
        p = j + xp.argmax(xp.abs(flat[:, j:, j]), axis=1)
        flat_pivots[:, j] = p
        row_j, row_p = flat[rows, j].copy(), flat[rows, p].copy()
        flat[rows, j], flat[rows, p] = row_p, row_j
        head = flat[:, j, j]
        safe = xp.where(head == 0, xp.ones((), head.dtype), head)  # a singular column: LAPACK leaves it
        flat[:, j + 1:, j] /= safe[:, None]
        flat[:, j + 1:, j + 1:] -= flat[:, j + 1:, j:j + 1] * flat[:, j:j + 1, j + 1:]
    return (make_result(flat.reshape(lu.shape), (x,), _no_gradient("lu_factor")),
            make_result(flat_pivots.reshape(pivots.shape), (x,), lambda g: (None,)))
