"""kernels/softmax_xent.cu through dlgpu.backend.kernel_ops.softmax_xent, against dlgpu.backend.cpu."""
import numpy as np
import pytest

from dlgpu.backend import cpu

# (rows, cols): single element, short rows, a full warp row, exactly the warp/block switch (1024),
# just past it (1025, block per row), long rows, and a 3-D input.
SHAPES = [(1, 1), (1, 7), (7, 33), (33, 127), (3, 1024), (3, 1025), (2, 3000), (2, 3, 17)]


def _logits(rng, shape, scale=4.0):
    return (rng.standard_normal(shape) * scale).astype(np.float32)


@pytest.mark.parametrize("shape", SHAPES)
def test_softmax(kb, rng, shape):
    x = _logits(rng, shape)
    y = kb.asnumpy(kb.lib.softmax(kb.asarray(x)))
    assert y.shape == x.shape
    np.testing.assert_allclose(y, cpu.softmax(x), rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("cols", [5, 2000])
def test_softmax_is_stable_for_huge_logits(kb, cols):
    x = np.zeros((2, cols), np.float32)
    x[0, 1], x[1, 3] = 1e4, -1e4  # exp would overflow without the max subtraction
    y = kb.asnumpy(kb.lib.softmax(kb.asarray(x)))
    assert np.isfinite(y).all()
    np.testing.assert_allclose(y, cpu.softmax(x), rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("label_dtype", [np.int32, np.int64])
def test_xent_sparse(kb, rng, shape, label_dtype):
    x = _logits(rng, shape)
    labels = rng.integers(0, shape[-1], shape[:-1]).astype(label_dtype)
    loss, probs = kb.lib.softmax_cross_entropy(kb.asarray(x), kb.asarray(labels))
    ref_loss, ref_probs = cpu.softmax_cross_entropy(x, labels)
    assert loss.shape == shape[:-1] and probs.shape == shape
    np.testing.assert_allclose(kb.asnumpy(loss), ref_loss, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(kb.asnumpy(probs), ref_probs, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("shape", [(1, 1), (7, 33), (3, 1025), (2, 3, 17)])
def test_xent_dense(kb, rng, shape):
    x = _logits(rng, shape)
    t = rng.random(shape).astype(np.float32)
    t[0] *= 0.5  # a row whose labels do not sum to 1: the loss scales with sum(t)
    loss, probs = kb.lib.softmax_cross_entropy(kb.asarray(x), kb.asarray(t))
    ref_loss, ref_probs = cpu.softmax_cross_entropy(x, t)
    np.testing.assert_allclose(kb.asnumpy(loss), ref_loss, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(kb.asnumpy(probs), ref_probs, rtol=1e-5, atol=1e-7)


def test_xent_out_of_range_label_gives_nan(kb, rng):
    x = _logits(rng, (3, 5))
    loss, _ = kb.lib.softmax_cross_entropy(kb.asarray(x), kb.asarray(np.array([0, 5, -1], np.int32)))
    loss = kb.asnumpy(loss)
    assert np.isfinite(loss[0]) and np.isnan(loss[1:]).all()


@pytest.mark.parametrize("shape", [(1, 1), (7, 33), (3, 1025), (2, 3, 17)])
@pytest.mark.parametrize("kind", ["sparse", "dense"])
def test_xent_backward(kb, rng, shape, kind):
    x = _logits(rng, shape)
    if kind == "sparse":
        labels = rng.integers(0, shape[-1], shape[:-1]).astype(np.int64)
    else:
        labels = rng.random(shape).astype(np.float32)
    _, probs = cpu.softmax_cross_entropy(x, labels)
    dloss = rng.standard_normal(shape[:-1]).astype(np.float32)
    got = kb.lib.softmax_cross_entropy_backward(kb.asarray(dloss), kb.asarray(probs), kb.asarray(labels))
    # the reference takes 2-D (rows, classes); the kernels take any leading shape
    c = shape[-1]
    ref = cpu.softmax_cross_entropy_backward(dloss.reshape(-1), probs.reshape(-1, c),
                                             labels.reshape(-1) if kind == "sparse" else labels.reshape(-1, c))
    np.testing.assert_allclose(kb.asnumpy(got), ref.reshape(shape), rtol=1e-5, atol=1e-6)


def test_xent_backward_scalar_dloss_broadcasts(kb, rng):
    x = _logits(rng, (4, 9))
    labels = rng.integers(0, 9, 4)
    _, probs = cpu.softmax_cross_entropy(x, labels)
    got = kb.lib.softmax_cross_entropy_backward(kb.asarray(np.float32(0.25)), kb.asarray(probs),
                                                kb.asarray(labels))
    ref = cpu.softmax_cross_entropy_backward(np.full(4, 0.25, np.float32), probs, labels)
    np.testing.assert_allclose(kb.asnumpy(got), ref, rtol=1e-6, atol=1e-7)


def test_validation_errors(kb):
    lib, xp = kb.lib, kb.xp
    x = xp.zeros((3, 4), np.float32)
    with pytest.raises(TypeError, match=r"softmax: x must be a float32 array; received dtype=float64"):
        lib.softmax(xp.zeros((3, 4)))
    with pytest.raises(ValueError, match=r"softmax_cross_entropy: integer labels must have shape"):
        lib.softmax_cross_entropy(x, xp.zeros((3, 1), np.int32))
    with pytest.raises(ValueError, match=r"softmax_cross_entropy: float labels must have the shape of logits"):
        lib.softmax_cross_entropy(x, xp.zeros((3, 5), np.float32))
    with pytest.raises(TypeError, match=r"softmax_cross_entropy: labels must be integer class ids or float32"):
        lib.softmax_cross_entropy(x, xp.zeros((3, 4), np.float64))
    with pytest.raises(ValueError, match=r"softmax_cross_entropy: logits have 0 classes"):
        lib.softmax_cross_entropy(xp.zeros((3, 0), np.float32), xp.zeros(3, np.int32))
    with pytest.raises(ValueError, match=r"softmax_cross_entropy_backward: dloss must have shape"):
        lib.softmax_cross_entropy_backward(xp.zeros(2, np.float32), x, xp.zeros(3, np.int32))


def test_mutated_warp_reduction_is_caught(rng):
    # Off by one in the butterfly: the last xor-1 step is skipped, so each lane sums only half its warp.
    from dlgpu.backend.kernels import KernelLibrary, kernel_dir
    from dlgpu.testing.emu import EmuModule

    src = (kernel_dir() / "softmax_xent.cu").read_text()
    old = "for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(FULL_MASK, v, o);"
    assert src.count(old) == 1, "the mutation no longer applies: update it with the kernel"
    lib = KernelLibrary(EmuModule, np, sources={"softmax_xent": src.replace(old, old.replace("o > 0", "o > 1"))})
    x = _logits(rng, (7, 33))
    with pytest.raises(AssertionError):
        np.testing.assert_allclose(lib.softmax(x), cpu.softmax(x), rtol=1e-5, atol=1e-7)
