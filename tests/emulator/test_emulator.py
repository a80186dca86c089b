"""Feature tests of the SIMT emulator (dlgpu/testing/emu) on tests/emulator/feature_kernels.cu."""
from pathlib import Path

import numpy as np
import pytest

from dlgpu.testing.emu import EmuCompileError, EmuLaunchError, EmuModule, preprocess

SRC = Path(__file__).with_name("feature_kernels.cu")


@pytest.fixture(scope="module")
def mod():
    return EmuModule(path=SRC)


def i32(v):
    return np.int32(v)


def test_axpy_multiple_blocks(mod):
    n = 1000
    x = np.arange(n, dtype=np.float32)
    y = np.ones(n, np.float32)
    mod.get_function("axpy")((8,), (128,), (x, y, np.float32(0.5), i32(n)))
    np.testing.assert_allclose(y, 0.5 * np.arange(n) + 1)


@pytest.mark.parametrize("kernel,smem", [("reverse_block", 0), ("reverse_dynamic", 256 * 4)])
def test_shared_memory_reverse(mod, kernel, smem):
    n = 300  # last block partial
    x = np.arange(n, dtype=np.int32)
    out = np.full(n, -7, np.int32)
    mod.get_function(kernel)((2,), (256,), (x, out, i32(n)), shared_mem=smem)
    expect = np.concatenate([x[:256][::-1], x[256:][::-1]])
    np.testing.assert_array_equal(out, expect)


def test_unwritten_shared_memory_reads_nan_in_every_block(mod):
    out = np.zeros(3, np.float32)
    mod.get_function("read_unwritten_shared")((3,), (64,), (out,))
    assert np.isnan(out).all()


@pytest.mark.parametrize("width", [32, 16, 8])
def test_shuffles_with_width(mod, width):
    nthreads = 64
    out = np.full((nthreads, 4), -1, np.int32)
    mod.get_function("shuffles")((1,), (nthreads,), (out, i32(width)))
    lane = np.arange(nthreads) % 32
    base = (lane // width) * width
    v = lane * 10
    idx = base + 3 % width
    up = np.where(lane - 2 >= base, lane - 2, lane)
    down = np.where(lane + 5 < base + width, lane + 5, lane)
    xr = lane ^ 6
    xr = np.where(xr < base + width, xr, lane)
    np.testing.assert_array_equal(out[:, 0], idx * 10)
    np.testing.assert_array_equal(out[:, 1], up * 10)
    np.testing.assert_array_equal(out[:, 2], down * 10)
    np.testing.assert_array_equal(out[:, 3], xr * 10)


def test_warp_sum_over_padded_block(mod):
    n = 50  # threads past n contribute 0
    x = np.random.default_rng(0).standard_normal(n).astype(np.float32)
    out = np.zeros(2, np.float32)
    mod.get_function("warp_sum")((1,), (64,), (x, out, i32(n)))
    np.testing.assert_allclose(out, [x[:32].sum(), x[32:].sum()], rtol=1e-5)


def test_partial_warp_collectives(mod):
    # a block of 50 threads: the second warp has 18 lanes
    x = np.arange(50, dtype=np.float32)
    out = np.zeros(50, np.float32)
    mod.get_function("warp_broadcast")((1,), (50,), (x, out))
    lane = np.arange(50) % 32
    first = np.where(np.arange(50) < 32, 0, 32)
    up = np.where(lane >= 1, x - 1, x)
    np.testing.assert_array_equal(out, x[first] + up)


def test_votes(mod):
    pred = np.zeros(96, np.int32)
    pred[[1, 4, 31]] = 1          # warp 0: some
    pred[32:64] = 1               # warp 1: all
    out_b = np.zeros(3, np.uint32)
    out_any = np.zeros(3, np.int32)
    out_all = np.zeros(3, np.int32)
    mod.get_function("votes")((1,), (96,), (pred, out_b, out_any, out_all))
    assert out_b.tolist() == [(1 << 1) | (1 << 4) | (1 << 31), 0xFFFFFFFF, 0]
    assert out_any.tolist() == [1, 1, 0]
    assert out_all.tolist() == [0, 1, 0]


def test_syncthreads_count_and_or(mod):
    pred = np.zeros((3, 64), np.int32)
    pred[0, :10] = 1
    pred[1, :] = 1
    out = np.zeros((3, 3), np.int32)
    mod.get_function("sync_counts")((3,), (64,), (pred, out))
    assert out.tolist() == [[10, 0, 1], [64, 1, 1], [0, 0, 0]]


def test_returned_threads_drop_out_of_barrier(mod):
    x = np.arange(128, dtype=np.float32)
    out = np.full(128, np.nan, np.float32)
    mod.get_function("early_return_barrier")((1,), (128,), (x, out, i32(37)))
    np.testing.assert_array_equal(out[:37], x[:37][::-1])
    assert np.isnan(out[37:]).all()


def test_atomics(mod):
    fsum = np.zeros(1, np.float32)
    isum = np.zeros(1, np.int32)
    imax = np.full(1, -1, np.int32)
    imin = np.full(1, 1, np.int32)
    cas = np.zeros(2, np.int32)
    exch = np.zeros(1, np.int32)
    mod.get_function("atomics")((3,), (100,), (fsum, isum, imax, imin, cas, exch))
    n = 300
    assert fsum[0] == 0.5 * n
    assert isum[0] == n * (n - 1) // 2
    assert imax[0] == n - 1 and imin[0] == -(n - 1)
    assert cas.tolist() == [1, 1]
    assert exch[0] == 7


def test_math_intrinsics_and_vector_types(mod):
    rng = np.random.default_rng(1)
    n = 37
    x = rng.standard_normal((n, 4)).astype(np.float32)
    y = np.zeros((n, 4), np.float32)
    z = np.zeros((n, 2), np.float32)
    mod.get_function("math_and_vectors")((2,), (32,), (x, y, z, i32(n)))
    from math import erf
    np.testing.assert_allclose(y[:, 0], np.exp(x[:, 0]), rtol=1e-5)
    np.testing.assert_allclose(y[:, 1], np.log(np.abs(x[:, 1]) + 1), rtol=1e-5)
    np.testing.assert_allclose(y[:, 2], 1 / np.sqrt(np.abs(x[:, 2]) + 1), rtol=1e-5)
    np.testing.assert_allclose(y[:, 3], [erf(v) / 2 for v in x[:, 3]], rtol=1e-5, atol=1e-7)
    np.testing.assert_array_equal(z[:, 0], x[:, 0])
    assert (z[:, 1] == 1).all()


def test_3d_grid_and_block_indices(mod):
    grid, block = (2, 3, 2), (4, 2, 3)
    nb, nt = 12, 24
    out = np.full(nb * nt, -1, np.int32)
    mod.get_function("index_3d")(grid, block, (out,))
    b, t = np.divmod(np.arange(nb * nt), nt)
    np.testing.assert_array_equal(out, b * 1000 + t)


def test_deadlock_is_reported_not_hung(mod, monkeypatch):
    monkeypatch.setenv("EMU_DEADLOCK_SECONDS", "0.5")
    x = np.zeros(64, np.float32)
    with pytest.raises(EmuLaunchError, match="deadlock"):
        mod.get_function("divergent_shuffle")((1,), (64,), (x,))
    # the module still works afterwards
    test_axpy_multiple_blocks(mod)


@pytest.mark.parametrize("grid,block,smem", [((1,), (1025,), 0), ((1,), (32, 1, 65), 0),
                                             ((1, 70000), (32,), 0), ((0,), (32,), 0),
                                             ((1,), (32,), 300_000)])
def test_invalid_launch_configuration(mod, grid, block, smem):
    x = np.zeros(4, np.float32)
    with pytest.raises(EmuLaunchError, match="invalid launch configuration"):
        mod.get_function("axpy")(grid, block, (x, x, np.float32(1), i32(4)), shared_mem=smem)


def test_argument_types_checked(mod):
    k = mod.get_function("axpy")
    x = np.zeros(4, np.float32)
    with pytest.raises(TypeError, match="Python float"):
        k((1,), (4,), (x, x, 1.0, i32(4)))
    with pytest.raises(TypeError, match="float64"):
        k((1,), (4,), (x, x, np.float64(1), i32(4)))
    with pytest.raises(TypeError, match="int64"):
        k((1,), (4,), (x, x, np.float32(1), np.int64(4)))
    with pytest.raises(TypeError, match="numpy array"):
        k((1,), (4,), ([0.0], x, np.float32(1), i32(4)))
    with pytest.raises(TypeError, match="takes 4 arguments"):
        k((1,), (4,), (x, x, np.float32(1)))
    k((1,), (4,), (x, x, np.float32(1), 4))  # a Python int that fits is fine


def test_scalar_parameter_types(mod):
    out = np.zeros(5, np.float32)
    mod.get_function("scalar_types")((1,), (1,), (out, np.float32(1.5), np.float64(2.5), i32(-3),
                                                 np.int64(1 << 40), np.uint32(7)))
    np.testing.assert_array_equal(out, [1.5, 2.5, -3, float(1 << 40), 7])


def test_compile_error_names_the_file(tmp_path):
    bad = tmp_path / "broken.cu"
    bad.write_text('extern "C" __global__ void k(float* x) {\n  x[0] = undefined_thing;\n}\n')
    with pytest.raises(EmuCompileError, match=r"broken\.cu:2"):
        EmuModule(path=bad).get_function("k")


def test_missing_kernel_name(mod):
    with pytest.raises(AttributeError, match="no_such_kernel"):
        mod.get_function("no_such_kernel")


def test_extern_shared_rewrite_keeps_line_numbers():
    src = "extern __shared__ float a[];\nvoid f() {\n  extern __shared__ __align__(16) float4 b[];\n}\n"
    out = preprocess(src)
    assert out.count("\n") == src.count("\n")
    lines = out.split("\n")
    assert lines[0].startswith("#define a ")
    assert lines[2] == "  float4* const b = (float4*)emu::dynamic_smem();"
