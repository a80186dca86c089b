"""kernels/activations.cu through dlgpu.backend.kernel_ops.activations, against dlgpu.backend.cpu."""
import numpy as np
import pytest

from dlgpu.backend import cpu

ACTS = cpu.ACTIVATIONS
# sizes: 1, the float4 tail (n % 4 = 1..3), several blocks, and a multi-dimensional array
SHAPES = [(1,), (7,), (33, 3), (4097,), (2, 5, 127)]


def _inputs(rng, shape):
    x = (rng.standard_normal(shape) * 3).astype(np.float32)
    x.flat[0] = 0.0  # the kink of relu / leaky_relu
    return x


@pytest.mark.parametrize("name", ACTS)
@pytest.mark.parametrize("shape", SHAPES)
def test_activation_forward(kb, rng, name, shape):
    x = _inputs(rng, shape)
    y = kb.asnumpy(kb.lib.activation(kb.asarray(x), name, alpha=0.1))
    assert y.shape == x.shape and y.dtype == np.float32
    np.testing.assert_allclose(y, cpu.activation(x, name, alpha=0.1), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", ACTS)
@pytest.mark.parametrize("shape", [(7,), (2, 5, 127)])
def test_activation_backward(kb, rng, name, shape):
    x = _inputs(rng, shape)
    y = cpu.activation(x, name, alpha=0.1)
    dy = rng.standard_normal(shape).astype(np.float32)
    dx = kb.asnumpy(kb.lib.activation_grad(kb.asarray(dy), kb.asarray(x), kb.asarray(y), name, alpha=0.1))
    np.testing.assert_allclose(dx, cpu.activation_grad(dy, x, y, name, alpha=0.1), rtol=1e-5, atol=1e-6)


def test_activation_extremes_do_not_overflow(kb):
    x = np.array([-1e4, -88.0, -20.0, 0.0, 20.0, 88.0, 1e4], np.float32)
    for name in ("sigmoid", "tanh", "gelu"):
        y = kb.asnumpy(kb.lib.activation(kb.asarray(x), name))
        assert np.isfinite(y).all(), name
        np.testing.assert_allclose(y, cpu.activation(x, name), rtol=1e-5, atol=1e-6)


def test_unaligned_input_takes_the_scalar_path(kb, rng):
    if kb.name != "emu":
        pytest.skip("alignment of host buffers is an emulator detail")
    base = rng.standard_normal(101).astype(np.float32)
    x = base[1:]  # contiguous but 4 bytes past a 16-byte boundary
    assert x.ctypes.data % 16 != 0
    np.testing.assert_allclose(kb.lib.activation(x, "gelu"), cpu.activation(x, "gelu"), rtol=1e-5, atol=1e-6)


def test_empty_input(kb):
    x = kb.xp.zeros((0, 3), np.float32)
    assert kb.lib.activation(x, "relu").shape == (0, 3)


def test_grad_from_x_when_y_missing(kb, rng):
    x = _inputs(rng, (33,))
    dy = rng.standard_normal(33).astype(np.float32)
    dx = kb.asnumpy(kb.lib.activation_grad(kb.asarray(dy), kb.asarray(x), None, "sigmoid"))
    np.testing.assert_allclose(dx, cpu.activation_grad(dy, x, cpu.activation(x, "sigmoid"), "sigmoid"),
                               rtol=1e-5, atol=1e-6)


def test_validation_errors(kb):
    lib = kb.lib
    x = kb.xp.zeros(4, np.float32)
    with pytest.raises(TypeError, match=r"activation: x must be a float32 array; received dtype=float64"):
        lib.activation(kb.xp.zeros(4), "relu")
    with pytest.raises(ValueError, match=r"activation: unknown activation 'swish'"):
        lib.activation(x, "swish")
    with pytest.raises(TypeError, match=r"activation: x must be a .* array"):
        lib.activation([1.0, 2.0], "relu")
    with pytest.raises(ValueError, match=r"activation_grad: y must have the shape of dy"):
        lib.activation_grad(x, x, kb.xp.zeros(5, np.float32), "relu")
    with pytest.raises(ValueError, match=r"activation_grad: activation 'gelu' needs the pre-activation x"):
        lib.activation_grad(x, None, x, "gelu")
