"""The kernel tests again, on a real GPU: KernelLibrary(cupy.RawModule, cupy) instead of the emulator.

Every test of test_activations.py, test_softmax_xent.py and test_gemm_bias_act.py that takes the
``kb`` fixture is re-run here with ``kb`` on the GPU, plus a few sizes too large for the emulator.
Skipped, with the reason, where CuPy sees no GPU (tests/kernels/conftest.py).
"""
from pathlib import Path

import numpy as np
import pytest

from dlgpu.backend import cpu
from gpu_rerun import backend_tests

pytestmark = pytest.mark.gpu

HERE = Path(__file__).resolve().parent
globals().update(backend_tests(HERE, "test_activations", "test_softmax_xent", "test_gemm_bias_act"))


@pytest.fixture(scope="module")
def kb(backend_factory):
    import cupy

    return backend_factory(cupy.RawModule, cupy, "gpu")


@pytest.fixture
def rng():
    return np.random.default_rng(99)


@pytest.mark.gpu_sized
@pytest.mark.parametrize("ta", [False, True])
@pytest.mark.parametrize("tb", [False, True])
def test_large_gemm_bias_relu(kb, rng, ta, tb):
    m, n, k = 1031, 517, 777
    a = rng.standard_normal((k, m) if ta else (m, k)).astype(np.float32)
    b = rng.standard_normal((n, k) if tb else (k, n)).astype(np.float32)
    bias = rng.standard_normal(n).astype(np.float32)
    c = kb.asnumpy(kb.lib.gemm(kb.asarray(a), kb.asarray(b), ta, tb, bias=kb.asarray(bias), activation="relu"))
    a64 = a.T.astype(np.float64) if ta else a.astype(np.float64)
    b64 = b.T.astype(np.float64) if tb else b.astype(np.float64)
    np.testing.assert_allclose(c, np.maximum(a64 @ b64 + bias, 0), rtol=1e-4, atol=1e-3)


@pytest.mark.gpu_sized
def test_large_softmax_xent(kb, rng):
    for cols in (1000, 5000):
        x = (rng.standard_normal((2049, cols)) * 3).astype(np.float32)
        labels = rng.integers(0, cols, 2049)
        loss, probs = kb.lib.softmax_cross_entropy(kb.asarray(x), kb.asarray(labels))
        ref_loss, ref_probs = cpu.softmax_cross_entropy(x, labels)
        np.testing.assert_allclose(kb.asnumpy(loss), ref_loss, rtol=1e-5, atol=1e-4)
        np.testing.assert_allclose(kb.asnumpy(probs), ref_probs, rtol=1e-5, atol=1e-7)


@pytest.mark.gpu_sized
def test_large_dense_backward(kb, rng):
    x = rng.standard_normal((4096, 300)).astype(np.float32)
    w = rng.standard_normal((300, 130)).astype(np.float32)
    b = rng.standard_normal(130).astype(np.float32)
    y, ctx = kb.lib.dense_forward(kb.asarray(x), kb.asarray(w), kb.asarray(b), "gelu")
    y_ref, ctx_ref = cpu.dense_forward(x, w, b, "gelu")
    dy = rng.standard_normal(y_ref.shape).astype(np.float32)
    got = kb.lib.dense_backward(kb.asarray(dy), ctx)
    for g, r in zip(got, cpu.dense_backward(dy, ctx_ref)):
        np.testing.assert_allclose(kb.asnumpy(g), r, rtol=1e-3, atol=1e-2)
