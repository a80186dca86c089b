"""keras.ops.linalg: matrix ops over the last two axes (batched), on the array module of their inputs.

Backwards follow the standard matrix-calculus rules (Giles, "An extended collection of matrix derivative
results", 2008; Murray 2016 for the Cholesky factor; PyTorch's svd_backward and linalg_qr_backward for the
SVD and the QR of wide matrices).  Every gradient here is written with differentiable ops as well, so it
has derivatives of any order (nested GradientTapes).  Where no gradient is written (eig, lu_factor, lstsq and
pinv at a rank-deficient matrix, and the extra columns of a complete Q or of a full U / Vh of a non-square
matrix, which are not unique), asking for one raises, rather than give a silent zero.
"""

from __future__ import annotations

import numpy as np

from dlgpu.autograd import Tensor
from dlgpu.ops._core import array_module, binary_operands, constant, float_operand, linear_result, make_result
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


def _zero_gradient(g):
    return (None,)


# The ``_*_vjp`` functions: the same backwards written with ops (inv, det, logdet and solve recorded again),
# so that nested tapes differentiate them once more.
def _T(t):
    """The transpose of the last two axes as a recorded op (a linear op: its vjp is itself)."""
    return linear_result(t, _mT, _mT, ())


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
    """The determinant.  Its gradient, det(A) A^-T, is written with inv: it needs a nonsingular A (numpy
    raises at a singular one)."""
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


# The factorizations below (cholesky, eigh, qr, svd) write their backward once, with dlgpu ops on Tensors
# (``_*_grad``): the vjp runs it on the recorded outputs, so nested tapes differentiate it again, and the
# first-order backward runs the same function unrecorded on constants (``_unrecorded``).  A numpy copy of
# each formula would be a little faster on tiny matrices, but two copies of a matrix-calculus rule drift.
def _unrecorded(grad_fn, *arrays):
    """grad_fn's value on raw arrays, outside the graph: the first-order sweep of a factorization."""
    from dlgpu.autograd import no_grad
    with no_grad():
        return grad_fn(*(constant(a) for a in arrays)).data


def _divide_at_ties(num, den):
    """num / den, where a zero in den (two equal eigen- or singular values, a zero singular value) gives 0
    where num is 0 there too (the loss does not see the vectors it would rotate: eigenvalues or singular
    values alone keep their right gradient), and NaN where it is not (the gradient is not defined there)."""
    from dlgpu.ops.math import divide, where
    xp = array_module(den.data)
    tie = den.data == 0
    if not bool(tie.any()):  # the generic case: one device sync, no extra ops
        return divide(num, den)
    quotient = where(constant(tie), 0.0, divide(num, where(constant(tie), 1.0, den)))
    undefined = tie & (num.data != 0)
    if bool(xp.any(undefined)):
        quotient = where(constant(undefined), float("nan"), quotient)
    return quotient


def _eye_like(t, n):
    return constant(array_module(t.data).eye(n, dtype=t.data.dtype))


def _diag_mask(t, n):
    return constant(array_module(t.data).eye(n, dtype=bool))


def cholesky(x, upper=False):
    """The Cholesky factor L (A = L L^T), or U = L^T with ``upper``.  Only the lower triangle of A is read by
    the factorization; the gradient is the symmetric one (the rule for symmetric A), to any order."""
    x = _square("cholesky", x)
    xp = array_module(x.data)
    try:
        lower = xp.linalg.cholesky(x.data)
    except np.linalg.LinAlgError as error:
        raise ValueError(f"cholesky: the input is not positive definite ({error})") from None
    if xp is not np and bool(xp.isnan(lower).any()):  # cuSOLVER fills NaN where numpy raises
        raise ValueError("cholesky: the input is not positive definite")
    out = _mT(lower) if upper else lower
    return make_result(out, (x,), lambda g: (_unrecorded(_cholesky_grad, out, g, upper),), (_cholesky_vjp, upper))


def _cholesky_grad(out, g, upper):
    from dlgpu.ops.math import matmul, multiply
    from dlgpu.ops.shape import tril
    lower, gl = (_T(out), _T(g)) if upper else (out, g)
    # A-bar = sym(L^-T Phi(L^T L-bar) L^-1), Phi = lower triangle with half its diagonal (Murray 2016)
    n = lower.shape[-1]
    phi = multiply(tril(matmul(_T(lower), gl)), constant(1 - 0.5 * array_module(g.data).eye(n, dtype=g.data.dtype)))
    inv_l = inv(lower)
    s = matmul(matmul(_T(inv_l), phi), inv_l)
    return multiply(s + _T(s), 0.5)


def _cholesky_vjp(out, g, upper):
    return (_cholesky_grad(out, g, upper),)


def cholesky_inverse(x, upper=False):
    """The inverse of A from its Cholesky factor (L with A = L L^T, or U with A = U^T U).  Only that
    triangle is read, as Keras's (a triangular solve) and torch's: the other gets no gradient."""
    from dlgpu.ops.math import matmul
    from dlgpu.ops.shape import transpose, tril, triu
    x = _square("cholesky_inverse", x)
    x = triu(x) if upper else tril(x)
    perm = list(range(x.ndim - 2)) + [x.ndim - 1, x.ndim - 2]
    xt = transpose(x, perm)
    return inv(matmul(xt, x) if upper else matmul(x, xt))


def eigh(x):
    """Eigenvalues (ascending) and eigenvectors of symmetric matrices; the lower triangle is read.

    Gradients (any order) take A symmetric and come back symmetric.  They need distinct eigenvalues: the
    eigenvector terms divide by w_j - w_i.  Near a repeated eigenvalue they grow without bound; at an
    exactly repeated one (a diagonal or identity matrix) a loss that sees the eigenvectors gets NaN (the
    eigenvectors are not unique there), while one on the eigenvalues alone keeps its right first derivative.
    Second derivatives there are not defined (eigenvalues cross), and are not tested.  An eigenvector's
    sign is arbitrary: only losses that do not depend on it (v v^T, v**2) have a meaningful gradient."""
    x = _square("eigh", x)
    xp = array_module(x.data)
    w, v = xp.linalg.eigh(x.data)
    packed = xp.concatenate([w[..., None, :], v], axis=-2)  # one node, two outputs
    pair = make_result(packed, (x,), lambda g: (_unrecorded(_eigh_grad, packed, g),), _eigh_vjp)
    from dlgpu.ops.shape import _getitem
    return _getitem(pair, (Ellipsis, 0, slice(None))), _getitem(pair, (Ellipsis, slice(1, None), slice(None)))


def _eigh_grad(packed, g):
    from dlgpu.ops.math import add, matmul, multiply, subtract, where
    from dlgpu.ops.shape import _getitem, expand_dims
    w, v = _getitem(packed, (Ellipsis, 0, slice(None))), _getitem(packed, (Ellipsis, slice(1, None), slice(None)))
    gw, gv = _getitem(g, (Ellipsis, 0, slice(None))), _getitem(g, (Ellipsis, slice(1, None), slice(None)))
    # A-bar = V (diag(w-bar) + F o (V^T V-bar)) V^T with F_ij = 1 / (w_j - w_i), i != j, and F_ii = 0
    n = w.shape[-1]
    diagonal = _diag_mask(w, n)
    diff = where(diagonal, 1.0, subtract(expand_dims(w, -2), expand_dims(w, -1)))
    rotation = where(diagonal, 0.0, _divide_at_ties(matmul(_T(v), gv), diff))
    inner = add(rotation, multiply(expand_dims(gw, -2), _eye_like(w, n)))
    s = matmul(matmul(v, inner), _T(v))
    return multiply(s + _T(s), 0.5)


def _eigh_vjp(out, g):
    return (_eigh_grad(out, g),)


def eig(x):
    """Eigenvalues and eigenvectors of general matrices (complex in general); no gradient."""
    x = _square("eig", x)
    xp = array_module(x.data)
    w, v = xp.linalg.eig(x.data)
    back = _no_gradient("eig")
    return make_result(w, (x,), lambda g: back(g)), make_result(v, (x,), lambda g: back(g))


def qr(x, mode="reduced"):
    """Q and R (mode "reduced" or "complete").  Differentiable, to any order, for the reduced factorization
    of any shape (and so for "complete" when rows <= columns, where it is the same); the complete Q of a
    taller-than-wide matrix has columns that are not unique, and no gradient.  Gradients need A of full
    rank (R's diagonal nonzero): the backward solves with R (with its leading square block when wide)."""
    if mode not in ("reduced", "complete"):
        raise ValueError(f"qr: mode must be 'reduced' or 'complete'; received {mode!r}")
    x = float_operand(x)
    if x.ndim < 2:
        raise ValueError(f"qr: needs a tensor of rank >= 2; received shape {x.data.shape}")
    xp = array_module(x.data)
    q, r = xp.linalg.qr(x.data, mode=mode)
    m_, n = x.data.shape[-2:]
    if mode == "complete" and m_ > n:
        back = _no_gradient("qr", " for mode='complete' with more rows than columns (Q's extra columns are not "
                                  "unique); mode='reduced' has one")
        return make_result(q, (x,), lambda g: back(g)), make_result(r, (x,), lambda g: back(g))
    # Q^T (k x m) beside R (k x n): one node, two outputs, whatever the shape
    packed = xp.concatenate([_mT(q), r], axis=-1)
    a = x.data
    pair = make_result(packed, (x,), lambda g: (_unrecorded(lambda p, gg, aa: _qr_grad(p, gg, aa, m_), packed, g, a),),
                       (_qr_vjp, m_))
    from dlgpu.ops.shape import _getitem
    return _T(_getitem(pair, (Ellipsis, slice(0, m_)))), _getitem(pair, (Ellipsis, slice(m_, None)))


def _qr_grad(packed, g, a, m):
    from dlgpu.ops.math import add, matmul
    from dlgpu.ops.shape import _getitem, concatenate
    q, r = _T(_getitem(packed, (Ellipsis, slice(0, m)))), _getitem(packed, (Ellipsis, slice(m, None)))
    gq, gr = _T(_getitem(g, (Ellipsis, slice(0, m)))), _getitem(g, (Ellipsis, slice(m, None)))
    n = r.shape[-1]
    if m >= n:
        return _qr_square_r_grad(q, r, gq, gr)
    # wider than tall: A = [X | Y], R = [U | V] with X = Q U and V = Q^T Y; Y reaches Q through V
    left, right = (Ellipsis, slice(0, m)), (Ellipsis, slice(m, None))
    gv = _getitem(gr, right)
    gx = _qr_square_r_grad(q, _getitem(r, left), add(gq, matmul(_getitem(a, right), _T(gv))), _getitem(gr, left))
    return concatenate([gx, matmul(q, gv)], axis=-1)


def _qr_square_r_grad(q, r, gq, gr):
    from dlgpu.ops.math import add, matmul, subtract
    from dlgpu.ops.shape import tril
    # M = R R-bar^T - Q-bar^T Q; A-bar = (Q-bar + Q copyltu(M)) R^-T, copyltu: M's lower triangle mirrored
    mm = subtract(matmul(r, _T(gr)), matmul(_T(gq), q))
    copyltu = add(tril(mm), _T(tril(mm, -1)))
    rhs = add(gq, matmul(q, copyltu))
    return _T(solve(r, _T(rhs)))


def _qr_vjp(out, g, m):
    return (_qr_grad(out, g, out._parents[0], m),)


def svd(x, full_matrices=True, compute_uv=True):
    """(u, s, vh) as numpy gives them, or s alone (compute_uv=False).

    Differentiable to any order: s always, u and vh when full_matrices=False or the matrices are square
    (the extra columns of a full u or vh are not unique, and have no gradient).  u's and vh's gradients
    need distinct, nonzero singular values (the backward divides by s_j^2 - s_i^2, and by s_i when
    non-square): near repeated or zero ones they grow without bound, and exactly there a loss that sees u
    or vh gets NaN (they are not unique), while one on s alone keeps its right first derivative.  s's
    second derivative goes through u and vh, so it is not defined there either (only the generic case is
    tested).  A singular pair's sign is arbitrary: only losses that do not depend on it (u_i v_i^T, u**2)
    have a meaningful gradient."""
    x = float_operand(x)
    if x.ndim < 2:
        raise ValueError(f"svd: needs a tensor of rank >= 2; received shape {x.data.shape}")
    xp = array_module(x.data)
    m, n = x.data.shape[-2:]
    k = min(m, n)
    if not compute_uv:
        u, s, vh = xp.linalg.svd(x.data, full_matrices=False)
        # d s_i / dA = u_i v_i^T; the vjp records u and vh, so that s's higher orders go through them
        return make_result(s, (x,), lambda g: ((u * g[..., None, :]) @ vh,), (_singular_values_vjp, u, vh))
    u, s, vh = xp.linalg.svd(x.data, full_matrices=full_matrices)
    from dlgpu.ops.shape import _getitem
    pair = _svd_node(x, u[..., :k], s, vh[..., :k, :])
    s_t = _getitem(pair, (Ellipsis, m))
    if m != n and full_matrices:
        back = _no_gradient("svd", " for u and vh when full_matrices=True and the matrices are not square (their "
                                   "extra columns are not unique); full_matrices=False has one")
        return make_result(u, (x,), lambda g: back(g)), s_t, make_result(vh, (x,), lambda g: back(g))
    return _T(_getitem(pair, (Ellipsis, slice(0, m)))), s_t, _getitem(pair, (Ellipsis, slice(m + 1, None)))


def _svd_node(x, u, s, vh):
    """u^T (k x m), s (k x 1) and vh (k x n) side by side: one node, three outputs."""
    xp = array_module(s)
    m = u.shape[-2]
    packed = xp.concatenate([_mT(u), s[..., None], vh], axis=-1)
    return make_result(packed, (x,), lambda g: (_unrecorded(lambda p, gg: _svd_grad(p, gg, m), packed, g),),
                       (_svd_vjp, m))


def _singular_values_vjp(out, g, u, vh):
    from dlgpu.ops.math import matmul, multiply
    from dlgpu.ops.shape import _getitem, expand_dims
    m = u.shape[-2]
    pair = _svd_node(out._parents[0], u, out.data, vh)
    u_t, vh_t = _T(_getitem(pair, (Ellipsis, slice(0, m)))), _getitem(pair, (Ellipsis, slice(m + 1, None)))
    return (matmul(multiply(u_t, expand_dims(g, -2)), vh_t),)


def _svd_grad(packed, g, m):
    from dlgpu.ops.math import add, matmul, multiply, subtract, where
    from dlgpu.ops.shape import _getitem, expand_dims
    parts = [(Ellipsis, slice(0, m)), (Ellipsis, m), (Ellipsis, slice(m + 1, None))]
    ut, s, vh = (_getitem(packed, p) for p in parts)
    gut, gs, gvh = (_getitem(g, p) for p in parts)
    u, gu, v, gv = _T(ut), _T(gut), _T(vh), _T(gvh)
    k, n = s.shape[-1], vh.shape[-1]
    # torch's svd_backward (real case): A-bar = U [(skew(U^T U-bar) / E) S + S (skew(V^T V-bar) / E)
    # + diag(s-bar)] V^T, E_ij = s_j^2 - s_i^2 off the diagonal, plus the parts outside U's or V's span
    row, col = expand_dims(s, -2), expand_dims(s, -1)  # s_j along a row, s_i down a column
    utgu = matmul(ut, gu)
    vtgv = matmul(vh, gv)
    diagonal = _diag_mask(s, k)
    e = where(diagonal, 1.0, subtract(multiply(row, row), multiply(col, col)))
    ga = _divide_at_ties(add(multiply(subtract(utgu, _T(utgu)), row), multiply(col, subtract(vtgv, _T(vtgv)))), e)
    ga = add(ga, multiply(expand_dims(gs, -2), _eye_like(s, k)))
    if m > k:  # A-bar += (I - U U^T) U-bar S^-1 V^T
        gu_sinv = _divide_at_ties(gu, row)
        ga = add(matmul(u, ga), subtract(gu_sinv, matmul(u, matmul(ut, gu_sinv))))
        return matmul(ga, vh)
    if n > k:  # A-bar += U S^-1 V-bar^T (I - V V^T)
        sinv_gvh = _divide_at_ties(gvh, col)
        ga = add(matmul(ga, vh), subtract(sinv_gvh, matmul(matmul(sinv_gvh, v), vh)))
        return matmul(u, ga)
    return matmul(u, matmul(ga, vh))


def _svd_vjp(out, g, m):
    return (_svd_grad(out, g, m),)


def lstsq(a, b, rcond=None):
    """The least-squares solution x of a @ x = b (2-D a): for a taller than wide, the x minimizing
    |a x - b|; for a wider than tall, the minimum-norm x.  Differentiable to any order where a has full
    rank; at a rank-deficient a (where x jumps as singular values cross ``rcond``) a gradient raises."""
    a, b = binary_operands("lstsq", float_operand(a), float_operand(b))
    if a.ndim != 2 or b.ndim not in (1, 2) or b.data.shape[0] != a.data.shape[0]:
        raise ValueError(f"lstsq: needs a 2-D a and a 1-D or 2-D b with as many rows; received shapes "
                         f"{a.data.shape} and {b.data.shape}")
    xp = array_module(a.data)
    solution, _, rank, _ = xp.linalg.lstsq(a.data, b.data, rcond=rcond)
    full_rank = rank == min(a.data.shape)  # read only if a gradient is asked for (a device sync on the GPU)
    a_data, b_data = a.data, b.data

    def backward(g):
        _check_full_rank("lstsq", full_rank, a_data.shape)
        return _unrecorded_pair(_lstsq_grad, a_data, b_data, solution, g)
    return make_result(solution, (a, b), backward, (_lstsq_vjp, full_rank))


def _check_full_rank(op, full_rank, shape):
    if not bool(full_rank.all() if hasattr(full_rank, "all") else full_rank):
        raise NotImplementedError(f"{op}: no gradient at a rank-deficient matrix (shape {shape}): the result is not "
                                  f"differentiable there; wrap it in ops.stop_gradient if the gradient is not needed")


def _unrecorded_pair(grad_fn, *arrays):
    from dlgpu.autograd import no_grad
    with no_grad():
        return tuple(t.data for t in grad_fn(*(constant(x) for x in arrays)))


def _lstsq_grad(a, b, x, g):
    from dlgpu.ops.math import matmul, subtract
    from dlgpu.ops.shape import expand_dims, squeeze
    vector = b.ndim == 1
    if vector:
        b, x, g = expand_dims(b, -1), expand_dims(x, -1), expand_dims(g, -1)
    m, n = a.shape[-2:]
    if m >= n:
        # x = (A^T A)^-1 A^T b; with z = (A^T A)^-1 x-bar and r = b - A x: A-bar = r z^T - A z x^T, b-bar = A z
        z = solve(matmul(_T(a), a), g)
        az = matmul(a, z)
        ga = subtract(matmul(subtract(b, matmul(a, x)), _T(z)), matmul(az, _T(x)))
        gb = az
    else:
        # x = A^T y, y = (A A^T)^-1 b; with w = (A A^T)^-1 A x-bar: A-bar = y x-bar^T - w x^T - y w^T A, b-bar = w
        gram = matmul(a, _T(a))
        y = solve(gram, b)
        w = solve(gram, matmul(a, g))
        ga = subtract(subtract(matmul(y, _T(g)), matmul(w, _T(x))), matmul(matmul(y, _T(w)), a))
        gb = w
    return ga, squeeze(gb, -1) if vector else gb


def _lstsq_vjp(out, g, full_rank):
    a, b = out._parents
    _check_full_rank("lstsq", full_rank, a.data.shape)
    return _lstsq_grad(a, b, out, g)


def slogdet(x):
    """(sign, log|det|); log|det| is differentiable (its gradient is A^-T)."""
    x = _square("slogdet", x)
    xp = array_module(x.data)
    sign, logabs = xp.linalg.slogdet(x.data)
    # the sign is piecewise constant: a zero gradient (None), not a missing backward
    return (make_result(sign, (x,), _zero_gradient),
            make_result(logabs, (x,), lambda g: (g[..., None, None] * _mT(xp.linalg.inv(x.data)),), (_logdet_vjp,)))


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
    return make_result(out, (x,), _zero_gradient)


def pinv(x, rcond=1e-15):
    """The Moore-Penrose pseudo-inverse (numpy's: singular values at most ``rcond`` times the largest count
    as zero).  Differentiable to any order where x has full rank, where pinv(x) is lstsq(x, I); at a
    rank-deficient x (where pinv jumps as singular values cross the cut-off) a gradient raises."""
    x = float_operand(x)
    if x.ndim < 2:
        raise ValueError(f"pinv: needs a tensor of rank >= 2; received shape {x.data.shape}")
    xp = array_module(x.data)
    if x.data.size == 0:  # numpy's answer for empty matrices: an empty (n, m)
        return make_result(xp.zeros(x.data.shape[:-2] + x.data.shape[-2:][::-1], x.data.dtype), (x,), _zero_gradient)
    u, s, vh = xp.linalg.svd(x.data, full_matrices=False)
    large = s > rcond * s.max(axis=-1, keepdims=True)
    inv_s = xp.where(large, 1 / xp.where(large, s, xp.ones((), s.dtype)), xp.zeros((), s.dtype))
    out = _mT(vh) @ (inv_s[..., None] * _mT(u))
    a = x.data

    def backward(g):
        _check_full_rank("pinv", large, a.shape)
        return (_unrecorded_pair(_pinv_grad, a, out, g)[0],)
    return make_result(out, (x,), backward, (_pinv_vjp, large))


def _pinv_grad(a, out, g):
    m = a.shape[-2]
    return _lstsq_grad(a, _eye_like(a, m), out, g)[:1]


def _pinv_vjp(out, g, large):
    a, = out._parents
    _check_full_rank("pinv", large, a.data.shape)
    return _pinv_grad(a, out, g)


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
