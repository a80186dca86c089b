"""test_conv2d.py, test_pooling.py and test_optim.py again on a real GPU (KernelLibrary(cupy.RawModule,
cupy) instead of the emulator), same pattern as test_gpu_kernels.py, plus the seed CNN's full-size
layers (batch 64), too large for the emulator.  Skipped, with the reason, where CuPy sees no GPU
(tests/kernels/conftest.py).
"""
from pathlib import Path

import numpy as np
import pytest

from dlgpu.backend import cpu
from gpu_rerun import backend_tests

pytestmark = pytest.mark.gpu

HERE = Path(__file__).resolve().parent
globals().update(backend_tests(HERE, "test_conv2d", "test_pooling", "test_optim"))


@pytest.fixture(scope="module")
def kb(backend_factory):
    import cupy

    return backend_factory(cupy.RawModule, cupy, "gpu")


@pytest.fixture
def rng():
    return np.random.default_rng(77)


# The seed CNN: Conv2D(32, 3x3) on 28x28x1 and Conv2D(64, 3x3) on 13x13x32, batch 64, 'valid', relu.
SEED_LAYERS = [((64, 28, 28, 1), (3, 3, 1, 32)), ((64, 13, 13, 32), (3, 3, 32, 64))]


@pytest.mark.gpu_sized
@pytest.mark.parametrize("shapes", SEED_LAYERS, ids=["conv1", "conv2"])
def test_seed_cnn_conv_layers(kb, rng, shapes):
    xs, ws = shapes
    x = rng.standard_normal(xs).astype(np.float32)
    w = (rng.standard_normal(ws) / np.sqrt(np.prod(ws[:3]))).astype(np.float32)
    b = rng.standard_normal(ws[3]).astype(np.float32)
    y, ctx = kb.lib.conv2d_forward(kb.asarray(x), kb.asarray(w), kb.asarray(b), (1, 1), (0, 0, 0, 0), "relu")
    y_ref, ctx_ref = cpu.conv2d_forward(x, w, b, (1, 1), (0, 0, 0, 0), "relu")
    np.testing.assert_allclose(kb.asnumpy(y), y_ref, rtol=1e-4, atol=1e-4)
    dy = rng.standard_normal(y_ref.shape).astype(np.float32)
    got = kb.lib.conv2d_backward(kb.asarray(dy), ctx)
    for g, r in zip(got, cpu.conv2d_backward(dy, ctx_ref)):
        np.testing.assert_allclose(kb.asnumpy(g), r, rtol=1e-3, atol=1e-2)  # dW sums 43264 products


@pytest.mark.gpu_sized
def test_seed_cnn_max_pool(kb, rng):
    x = rng.standard_normal((64, 26, 26, 32)).astype(np.float32)
    y, argmax = kb.lib.max_pool2d_forward(kb.asarray(x), (2, 2), (2, 2), (0, 0, 0, 0))
    y_ref, argmax_ref = cpu.max_pool2d_forward(x, (2, 2), (2, 2), (0, 0, 0, 0))
    np.testing.assert_array_equal(kb.asnumpy(y), y_ref)
    np.testing.assert_array_equal(kb.asnumpy(argmax), argmax_ref)
    dy = rng.standard_normal(y_ref.shape).astype(np.float32)
    dx = kb.lib.max_pool2d_backward(kb.asarray(dy), argmax, x.shape, (2, 2), (2, 2), (0, 0, 0, 0))
    np.testing.assert_array_equal(kb.asnumpy(dx), cpu.max_pool2d_backward(dy, argmax_ref, x.shape, (2, 2), (2, 2),
                                                                            (0, 0, 0, 0)))


@pytest.mark.gpu_sized
def test_large_adam(kb, rng):
    shapes = [(3, 3, 32, 64), (64,), (1600, 128), (128,), (128, 10), (10,), (3_000_001,)]
    params = [rng.standard_normal(s).astype(np.float32) for s in shapes]
    ms = [np.zeros_like(p) for p in params]
    vs = [np.zeros_like(p) for p in params]
    d = [[kb.asarray(a.copy()) for a in arrs] for arrs in (params, ms, vs)]
    for step in (1, 2):
        grads = [rng.standard_normal(s).astype(np.float32) for s in shapes]
        cpu.adam_update(params, grads, ms, vs, 1e-3, 0.9, 0.999, 1e-7, step, 0.004)
        kb.lib.adam_update(d[0], [kb.asarray(g) for g in grads], d[1], d[2], 1e-3, 0.9, 0.999, 1e-7, step, 0.004)
    for got, want in zip(d[0], params):
        np.testing.assert_allclose(kb.asnumpy(got), want, rtol=1e-5, atol=1e-6)
