"""kernels/gemm_bias_act.cu through dlgpu.backend.kernel_ops.gemm_bias_act, against numpy / dlgpu.backend.cpu.

Shapes are chosen to hit every edge of the 128 x 128 x 8 tiling (1, 7, 33, 127, 129, 130: not multiples
of any tile size) and both the float4 and the scalar load/store paths, while keeping the emulator
to a handful of 256-thread blocks per launch.
"""
import numpy as np
import pytest

from dlgpu.backend import cpu

# (M, N, K)
GEMM_SHAPES = [(1, 1, 1), (7, 33, 5), (33, 7, 127), (130, 129, 9), (1, 200, 16), (64, 132, 16), (5, 3, 0)]


def _ref_gemm(a, b, ta, tb, bias=None):
    a64 = a.astype(np.float64).T if ta else a.astype(np.float64)
    b64 = b.astype(np.float64).T if tb else b.astype(np.float64)
    c = a64 @ b64
    return c + bias if bias is not None else c


def _tol(k):
    return dict(rtol=1e-5, atol=2e-6 * max(1, k) ** 0.5 * 4)


@pytest.mark.parametrize("tile", [128, 64])
@pytest.mark.parametrize("ta", [False, True], ids=["a", "aT"])
@pytest.mark.parametrize("tb", [False, True], ids=["b", "bT"])
@pytest.mark.parametrize("mnk", GEMM_SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_gemm(kb, rng, mnk, ta, tb, tile):
    m, n, k = mnk
    a = rng.standard_normal((k, m) if ta else (m, k)).astype(np.float32)
    b = rng.standard_normal((n, k) if tb else (k, n)).astype(np.float32)
    c = kb.asnumpy(kb.lib.gemm(kb.asarray(a), kb.asarray(b), trans_a=ta, trans_b=tb, tile=tile))
    assert c.shape == (m, n) and c.dtype == np.float32
    np.testing.assert_allclose(c, _ref_gemm(a, b, ta, tb), **_tol(k))


@pytest.mark.parametrize("name", cpu.ACTIVATIONS)
@pytest.mark.parametrize("with_bias", [True, False], ids=["bias", "nobias"])
@pytest.mark.parametrize("tile", [128, 64])
def test_gemm_fused_epilogue(kb, rng, name, with_bias, tile):
    m, n, k = 33, 45, 17
    a = rng.standard_normal((m, k)).astype(np.float32)
    b = rng.standard_normal((k, n)).astype(np.float32)
    bias = rng.standard_normal(n).astype(np.float32) if with_bias else None
    c = kb.lib.gemm(kb.asarray(a), kb.asarray(b), bias=None if bias is None else kb.asarray(bias),
                    activation=name, alpha=0.1, tile=tile)
    z = _ref_gemm(a, b, False, False, bias).astype(np.float32)
    np.testing.assert_allclose(kb.asnumpy(c), cpu.activation(z, name, alpha=0.1), rtol=1e-5, atol=2e-5)


def test_gemm_unaligned_operands_take_the_scalar_path(kb, rng):
    if kb.name != "emu":
        pytest.skip("alignment of host buffers is an emulator detail")
    m, n, k = 9, 12, 8  # leading dimensions are multiples of 4: only the base address is off
    a = rng.standard_normal(m * k + 1).astype(np.float32)[1:].reshape(m, k)
    b = rng.standard_normal(k * n + 1).astype(np.float32)[1:].reshape(k, n)
    assert a.ctypes.data % 16 and b.ctypes.data % 16
    np.testing.assert_allclose(kb.lib.gemm(a, b), _ref_gemm(a, b, False, False), **_tol(k))


@pytest.mark.parametrize("ta", [False, True], ids=["a", "aT"])
@pytest.mark.parametrize("tb", [False, True], ids=["b", "bT"])
@pytest.mark.parametrize("mnk", [(7, 33, 5), (33, 8, 127), (5, 3, 0)], ids=lambda s: "x".join(map(str, s)))
def test_gemm_matmul_path(kb, rng, mnk, ta, tb):
    # xp.matmul (numpy here, cuBLAS on a GPU) + our one-pass epilogue; N = 33: scalar epilogue, 8: float4
    m, n, k = mnk
    a = rng.standard_normal((k, m) if ta else (m, k)).astype(np.float32)
    b = rng.standard_normal((n, k) if tb else (k, n)).astype(np.float32)
    bias = rng.standard_normal(n).astype(np.float32)
    c = kb.asnumpy(kb.lib.gemm(kb.asarray(a), kb.asarray(b), trans_a=ta, trans_b=tb, path="matmul"))
    np.testing.assert_allclose(c, _ref_gemm(a, b, ta, tb), **_tol(k))
    c = kb.asnumpy(kb.lib.gemm(kb.asarray(a), kb.asarray(b), trans_a=ta, trans_b=tb, bias=kb.asarray(bias),
                               activation="tanh", path="matmul"))
    assert c.shape == (m, n) and c.dtype == np.float32
    np.testing.assert_allclose(c, np.tanh(_ref_gemm(a, b, ta, tb, bias)), rtol=1e-5, atol=2e-5)


@pytest.mark.parametrize("n", [12, 13])
@pytest.mark.parametrize("name", cpu.ACTIVATIONS)
def test_bias_act_forward(kb, rng, name, n):
    x = rng.standard_normal((9, n)).astype(np.float32)
    bias = rng.standard_normal(n).astype(np.float32)
    xd = kb.asarray(x.copy())
    y, z = kb.lib.bias_act_forward(xd, kb.asarray(bias), name, 0.1, store_z=True)
    np.testing.assert_allclose(kb.asnumpy(z), x + bias, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(kb.asnumpy(y), cpu.activation(x + bias, name, alpha=0.1), rtol=1e-5, atol=2e-6)
    np.testing.assert_allclose(kb.asnumpy(xd), kb.asnumpy(y))  # in place
    y, z = kb.lib.bias_act_forward(kb.asarray(x.copy()), None, name, 0.1)
    assert z is None
    np.testing.assert_allclose(kb.asnumpy(y), cpu.activation(x, name, alpha=0.1), rtol=1e-5, atol=2e-6)


def test_dispatch_rule(monkeypatch):
    from dlgpu.backend.kernel_ops import gemm_bias_act as g
    assert g._choose_path(128, 128, 784) == "fused"
    assert g._choose_path(4096, 4096, 4096) == "matmul"
    assert g._choose_path(128, 4096, 4096) == "matmul"
    monkeypatch.setattr(g, "MATMUL_MIN_FLOP", 1)
    assert g._choose_path(1, 1, 1) == "matmul"


@pytest.mark.parametrize("branch", ["fused", "matmul"])
@pytest.mark.parametrize("name", ["relu", "gelu"])
def test_dense_both_branches(kb, rng, monkeypatch, branch, name):
    # The size rule (thresholds monkeypatched to send these small problems one way or the other) through
    # dense_forward and both backward GEMMs; gelu keeps z, which the matmul branch writes over the product.
    from dlgpu.backend.kernel_ops import gemm_bias_act as g
    if branch == "matmul":
        monkeypatch.setattr(g, "MATMUL_MIN_FLOP", 1)
    else:
        monkeypatch.setattr(g, "MATMUL_MIN_FLOP", 1 << 62)
        monkeypatch.setattr(g, "MATMUL_MIN_K_DEEP", 1 << 30)
    calls = []
    real = g._choose_path
    monkeypatch.setattr(g, "_choose_path", lambda *s: calls.append(real(*s)) or calls[-1])
    x = rng.standard_normal((6, 9)).astype(np.float32)
    w = rng.standard_normal((9, 20)).astype(np.float32)
    b = rng.standard_normal(20).astype(np.float32)
    y, ctx = kb.lib.dense_forward(kb.asarray(x), kb.asarray(w), kb.asarray(b), name)
    y_ref, ctx_ref = cpu.dense_forward(x, w, b, name)
    np.testing.assert_allclose(kb.asnumpy(y), y_ref, rtol=1e-5, atol=2e-5)
    if name == "gelu":
        np.testing.assert_allclose(kb.asnumpy(ctx[4]), ctx_ref[4], rtol=1e-5, atol=2e-5)
    dy = rng.standard_normal(y_ref.shape).astype(np.float32)
    dx, dw, db = kb.lib.dense_backward(kb.asarray(dy), ctx)
    for got, ref in zip((dx, dw, db), cpu.dense_backward(dy, ctx_ref)):
        np.testing.assert_allclose(kb.asnumpy(got), ref, rtol=1e-4, atol=1e-4)
    assert calls == [branch] * 3


def test_gemm_variant_tilings(rng):
    # gemm_bias_act_variant built with other -D tilings (as bench/gemm_sweep.py does): a 64 x 32 tile with
    # 4 x 8 micro-tiles and warps of 4 x 8 threads, BK 8; odd sizes and all transposes.
    from dlgpu.testing.emu import EmuModule
    from dlgpu.backend.kernels import NVRTC_OPTIONS, kernel_dir, read_source, i32, f32, cdiv
    defs = dict(GV_BM=64, GV_BN=32, GV_BK=8, GV_TM=4, GV_TN=8, GV_WTX=4, GV_MINB=1)
    mod = EmuModule(code=read_source(kernel_dir() / "gemm_bias_act.cu"),
                    options=NVRTC_OPTIONS + tuple(f"-D{k}={v}" for k, v in defs.items()))
    fn = mod.get_function("gemm_bias_act_variant")
    m, n, k = 70, 37, 19
    for ta in (False, True):
        for tb in (False, True):
            a = rng.standard_normal((k, m) if ta else (m, k)).astype(np.float32)
            b = rng.standard_normal((n, k) if tb else (k, n)).astype(np.float32)
            bias = rng.standard_normal(n).astype(np.float32)
            c = np.full((m, n), np.nan, np.float32)
            fn((cdiv(n, 32), cdiv(m, 64)), ((64 // 4) * (32 // 8),),
               (a, b, bias, c, c, i32(m), i32(n), i32(k), i32(ta), i32(tb), i32(1), i32(1), f32(0), i32(0)))
            np.testing.assert_allclose(c, np.maximum(_ref_gemm(a, b, ta, tb, bias), 0), **_tol(k))


@pytest.mark.parametrize("name", cpu.ACTIVATIONS)
def test_dense_forward_backward(kb, rng, name):
    x = rng.standard_normal((2, 5, 7)).astype(np.float32)   # leading dims flatten to M = 10
    w = rng.standard_normal((7, 33)).astype(np.float32)
    b = rng.standard_normal(33).astype(np.float32)
    y, ctx = kb.lib.dense_forward(kb.asarray(x), kb.asarray(w), kb.asarray(b), name, 0.1)
    y_ref, ctx_ref = cpu.dense_forward(x, w, b, name, 0.1)
    assert y.shape == (2, 5, 33)
    np.testing.assert_allclose(kb.asnumpy(y), y_ref, rtol=1e-5, atol=2e-5)
    assert (ctx[4] is None) == (ctx_ref[4] is None)  # z kept exactly when the backward needs it
    dy = rng.standard_normal(y_ref.shape).astype(np.float32)
    dx, dw, db = kb.lib.dense_backward(kb.asarray(dy), ctx)
    dx_ref, dw_ref, db_ref = cpu.dense_backward(dy, ctx_ref)
    np.testing.assert_allclose(kb.asnumpy(dx), dx_ref, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(kb.asnumpy(dw), dw_ref, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(kb.asnumpy(db), db_ref, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("name", ["linear", "relu"])
def test_dense_without_bias_and_dx(kb, rng, name):
    x = rng.standard_normal((1, 127)).astype(np.float32)    # batch 1, K one short of a tile multiple
    w = rng.standard_normal((127, 3)).astype(np.float32)
    y, ctx = kb.lib.dense_forward(kb.asarray(x), kb.asarray(w), None, name)
    y_ref, ctx_ref = cpu.dense_forward(x, w, None, name)
    np.testing.assert_allclose(kb.asnumpy(y), y_ref, rtol=1e-5, atol=1e-4)
    dy = rng.standard_normal(y_ref.shape).astype(np.float32)
    dx, dw, db = kb.lib.dense_backward(kb.asarray(dy), ctx, need_dx=False)
    assert dx is None and db is None
    np.testing.assert_allclose(kb.asnumpy(dw), cpu.dense_backward(dy, ctx_ref, need_dx=False)[1],
                               rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("mn", [(300, 5), (3, 70), (1, 1)])
def test_bias_act_backward_column_sums(kb, rng, mn):
    # (300, 5): several row splits whose partial sums column_sum adds; (3, 70): three column blocks
    dy = rng.standard_normal(mn).astype(np.float32)
    z = rng.standard_normal(mn).astype(np.float32)
    y = cpu.activation(z, "gelu")
    dz, db = kb.lib.bias_act_backward(kb.asarray(dy), kb.asarray(z), kb.asarray(y), "gelu")
    dz_ref = cpu.activation_grad(dy, z, y, "gelu")
    np.testing.assert_allclose(kb.asnumpy(dz), dz_ref, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(kb.asnumpy(db), dz_ref.astype(np.float64).sum(0), rtol=1e-5, atol=1e-5)


def test_validation_errors(kb):
    lib, xp = kb.lib, kb.xp
    a = xp.zeros((3, 4), np.float32)
    with pytest.raises(TypeError, match=r"gemm: a must be a float32 array; received dtype=float64 shape=\(3, 4\)"):
        lib.gemm(xp.zeros((3, 4)), a)
    with pytest.raises(ValueError, match=r"gemm: inner dimensions differ: op\(a\) is \(3, 4\).*op\(b\) is \(3, 4\)"):
        lib.gemm(a, a)
    with pytest.raises(ValueError, match=r"gemm: bias must have shape \(3,\); received bias.shape=\(4,\)"):
        lib.gemm(a, a, trans_b=True, bias=xp.zeros(4, np.float32))
    with pytest.raises(ValueError, match=r"gemm: unknown activation 'swish'"):
        lib.gemm(a, a, trans_b=True, activation="swish")
    with pytest.raises(ValueError, match=r"gemm: tile must be one of \[64, 128\] or None; received tile=32"):
        lib.gemm(a, a, trans_b=True, tile=32)
    with pytest.raises(ValueError, match=r"gemm: path must be one of \('auto', 'fused', 'matmul'\)"):
        lib.gemm(a, a, trans_b=True, path="cublas")
    with pytest.raises(ValueError, match=r"gemm: a and b must be 2-D"):
        lib.gemm(xp.zeros(4, np.float32), a)
    with pytest.raises(ValueError, match=r"dense_forward: expected x \(..., K\) and w \(K, N\)"):
        lib.dense_forward(a, xp.zeros((5, 2), np.float32), None)
    with pytest.raises(TypeError, match=r"dense_forward: b must be a float32 array"):
        lib.dense_forward(a, xp.zeros((4, 2), np.float32), xp.zeros(2, np.int32))
    _, ctx = lib.dense_forward(a, xp.zeros((4, 2), np.float32), None, "relu")
    with pytest.raises(ValueError, match=r"dense_backward: dy must have shape \(3, 2\)"):
        lib.dense_backward(xp.zeros((3, 3), np.float32), ctx)


def test_kernel_launch_uses_int32_scalars(kb):
    # The raw kernel rejects what CuPy would silently misread (a Python float is passed as a double).
    if kb.name != "emu":
        pytest.skip("argument checking is the emulator's")
    k = kb.lib.function("gemm_bias_act", "column_sum")
    p = np.zeros((1, 4), np.float32)
    with pytest.raises(TypeError, match="Python float"):
        k((1,), (32,), (p, p, np.int32(1), 4.0))


# -- the tests catch broken kernels ---------------------------------------------------------------
# Textual mutations of kernels/gemm_bias_act.cu, built through the emulator: each must fail the same
# comparison the real kernel passes.  (Built once, then cached under EMU_CACHE_DIR.)
MUTATIONS = {
    # the barrier that separates reading one shared buffer from refilling the other
    "missing_syncthreads": ("store_tile<BN, BK, NT>(Bs[cur ^ 1], b_along_k, rb);\n    }\n    __syncthreads();",
                            "store_tile<BN, BK, NT>(Bs[cur ^ 1], b_along_k, rb);\n    }\n"),
    # off by one in the number of K tiles: the last (partial) tile is dropped
    "k_tiles_off_by_one": ("const int ntiles = (K + BK - 1) / BK;", "const int ntiles = (K - 1) / BK;"),
}


@pytest.mark.parametrize("mutation", sorted(MUTATIONS))
def test_mutated_gemm_is_caught(rng, mutation):
    from dlgpu.backend.kernels import KernelLibrary, kernel_dir, read_source
    from dlgpu.testing.emu import EmuModule

    src = read_source(kernel_dir() / "gemm_bias_act.cu")
    old, new = MUTATIONS[mutation]
    assert src.count(old) == 1, "the mutation no longer applies: update it with the kernel"
    lib = KernelLibrary(EmuModule, np, sources={"gemm_bias_act": src.replace(old, new)})
    a = rng.standard_normal((33, 21)).astype(np.float32)
    b = rng.standard_normal((21, 20)).astype(np.float32)
    for tile in (128, 64):
        with pytest.raises(AssertionError):
            np.testing.assert_allclose(lib.gemm(a, b, tile=tile), _ref_gemm(a, b, False, False), **_tol(21))
