"""dlgpu.ops.math: gradients against finite differences (float64), dtypes, error messages."""

import math

import numpy as np
import pytest

from dlgpu import ops
from dlgpu.autograd import GradientTape, Tensor

from helpers import away_from, check_gradients

rng = np.random.default_rng(0)


def randn(*shape):
    return rng.standard_normal(shape)


def positive(*shape):
    return rng.uniform(0.5, 2.0, shape)


BINARY_SHAPES = [((3, 4), (3, 4)), ((3, 4), (4,)), ((2, 1, 4), (3, 1)), ((), (2, 3)), ((1, 3), (2, 1))]


@pytest.mark.parametrize("shapes", BINARY_SHAPES, ids=str)
@pytest.mark.parametrize("op", ["add", "subtract", "multiply", "divide"])
def test_binary_gradients_broadcast(op, shapes):
    a = randn(*shapes[0])
    b = positive(*shapes[1]) if op == "divide" else randn(*shapes[1])
    check_gradients(getattr(ops, op), [a, b])


@pytest.mark.parametrize("shapes", BINARY_SHAPES, ids=str)
def test_power_gradient_both_operands(shapes):
    check_gradients(ops.power, [positive(*shapes[0]), randn(*shapes[1])])


def test_power_scalar_exponent_and_negative_base():
    x = away_from(randn(3, 4), [0.0])
    check_gradients(lambda t: ops.power(t, 3.0), [x])
    check_gradients(lambda t: t ** 2, [x])


@pytest.mark.parametrize("op", ["maximum", "minimum"])
@pytest.mark.parametrize("shapes", [((3, 4), (3, 4)), ((3, 4), (4,)), ((2, 3), ())], ids=str)
def test_maximum_minimum_gradients(op, shapes):
    a = randn(*shapes[0])
    b = randn(*shapes[1])
    # keep a and b apart so the finite difference never crosses a tie
    a = np.where(np.abs(a - b) < 0.1, a + 0.3, a)
    check_gradients(getattr(ops, op), [a, b])


def test_maximum_with_scalar_gradient():
    x = away_from(randn(4, 5), [0.0])
    check_gradients(lambda t: ops.maximum(t, 0.0), [x])


UNARY = {
    "negative": randn, "abs": lambda *s: away_from(randn(*s), [0.0]), "square": randn,
    "sqrt": positive, "rsqrt": positive, "exp": randn, "expm1": randn, "log": positive,
    "log1p": positive, "log2": positive, "log10": positive, "sin": randn, "cos": randn,
    "reciprocal": positive,
}


@pytest.mark.parametrize("name", sorted(UNARY))
def test_unary_gradients(name):
    check_gradients(getattr(ops, name), [UNARY[name](3, 4)])


@pytest.mark.parametrize("name", sorted(UNARY))
def test_unary_keeps_float32(name):
    x = Tensor(UNARY[name](3, 4).astype(np.float32))
    with GradientTape() as tape:
        tape.watch(x)
        y = getattr(ops, name)(x)
    assert y.dtype == "float32"
    assert tape.gradient(y, x).dtype == "float32"


def test_clip_gradient():
    x = away_from(randn(4, 5) * 2, [-1.0, 1.0])
    check_gradients(lambda t: ops.clip(t, -1.0, 1.0), [x])


@pytest.mark.parametrize("shapes", [((3, 4), (3, 4), (3, 4)), ((3, 4), (4,), (3, 1)), ((3, 1), (3, 4), ())], ids=str)
def test_where_gradient(shapes):
    cond = rng.random(shapes[0]) > 0.5
    check_gradients(lambda c, a, b: ops.where(c, a, b), [cond, randn(*shapes[1]), randn(*shapes[2])])


@pytest.mark.parametrize("shapes", [((3, 4), (4, 5)), ((2, 3, 4), (4, 5)), ((2, 3, 4), (2, 4, 5)), ((4,), (4, 5)),
                                    ((3, 4), (4,)), ((4,), (4,)), ((2, 1, 3, 4), (5, 4, 2))], ids=str)
def test_matmul_gradient(shapes):
    check_gradients(ops.matmul, [randn(*shapes[0]), randn(*shapes[1])])


def test_matmul_operator_and_dot():
    check_gradients(lambda a, b: a @ b, [randn(2, 3), randn(3, 2)])
    check_gradients(ops.dot, [randn(2, 3), randn(3, 2)])


def test_matmul_inner_dim_error_names_both_shapes():
    with pytest.raises(ValueError, match=r"\(3, 4\).*\(5, 2\)"):
        ops.matmul(np.ones((3, 4), np.float32), np.ones((5, 2), np.float32))


def test_cast_gradient_between_floats_keeps_source_dtype():
    x = Tensor(randn(3), dtype="float64")
    with GradientTape() as tape:
        tape.watch(x)
        y = ops.cast(x, "float32")
    assert y.dtype == "float32"
    g = tape.gradient(y, x, output_gradients=Tensor(np.array([1.0, 2.0, 3.0], np.float32)))
    assert g.dtype == "float64"
    np.testing.assert_array_equal(g.numpy(), [1.0, 2.0, 3.0])


def test_cast_to_int_has_no_gradient():
    x = Tensor(np.array([1.5, 2.5], np.float32))
    with GradientTape() as tape:
        tape.watch(x)
        y = ops.cast(x, "int32")
    assert y.dtype == "int32"
    assert tape.gradient(y, x) is None


def test_operators_with_python_scalars_keep_float32():
    x = Tensor(np.ones((2, 3), np.float32))
    for y in (x + 1, 1 + x, x - 2.5, 2.5 - x, x * 3, 3.0 * x, x / 2, 2 / x, x ** 2, 2.0 ** x, -x, abs(x)):
        assert y.dtype == "float32"


def test_numpy_scalars_do_not_upcast():
    x = Tensor(np.ones((2, 3), np.float32))
    assert (x * np.float64(2.0)).dtype == "float32"
    assert ops.maximum(x, np.float64(0.5)).dtype == "float32"


def test_int_tensor_arithmetic_stays_int():
    labels = Tensor(np.array([0, 2, 1], np.int64))
    assert (labels + 1).dtype == "int64"
    assert (labels * 2).dtype == "int64"
    assert (labels == 1).dtype == "bool"


def test_int_division_gives_float32():
    a = Tensor(np.array([1, 2, 3], np.int32))
    assert ops.divide(a, a).dtype == "float32"
    assert ops.divide(a, 2).dtype == "float32"


@pytest.mark.parametrize("name", ["equal", "not_equal", "greater", "greater_equal", "less", "less_equal"])
def test_comparisons(name):
    a, b = randn(3, 4), randn(3, 4)
    out = getattr(ops, name)(Tensor(a), Tensor(b))
    np.testing.assert_array_equal(out.numpy(), getattr(np, name)(a.astype(np.float32), b.astype(np.float32)))


def test_comparison_has_no_gradient():
    x = Tensor(np.ones(3, np.float32))
    with GradientTape() as tape:
        tape.watch(x)
        y = ops.greater(x, 0.0)
    assert tape.gradient(y, x) is None


@pytest.mark.parametrize("shapes", [((3, 4), (3, 4)), ((4,), (3, 4)), ((3, 4), ())], ids=str)
def test_mod_gradient_broadcast(shapes):
    a = rng.uniform(0.1, 10, shapes[0])
    b = rng.uniform(1, 3, shapes[1])
    r = np.mod(a, b)
    a = np.where((r < 0.05) | (r > b - 0.05), a + 0.1, a)  # stay off the jumps
    check_gradients(ops.mod, [a, b])


def test_erf_values_and_dtypes():
    x = np.linspace(-4, 4, 161)
    exact = np.vectorize(math.erf)(x)
    np.testing.assert_allclose(ops.erf(Tensor(x, dtype="float64")).numpy(), exact, atol=1.5e-7)  # A&S 7.1.26 bound
    y = ops.erf(Tensor(x.astype(np.float32)))
    assert y.dtype == "float32"
    np.testing.assert_allclose(y.numpy(), exact, atol=6e-7)
    assert ops.erf(Tensor(np.array([0, 1, 2], np.int32))).dtype == "float32"  # Keras: floatx for integers
    assert ops.erf(Tensor(np.array([0.5], np.float16))).dtype == "float16"


def test_erfinv_values_and_dtypes():
    x = np.array([-0.999, -0.5, -0.1, 0.0, 0.3, 0.9, 0.9999])
    exact = np.array([-2.326753765513524, -0.4769362762044699, -0.08885599049425769, 0.0, 0.2724627147267544,
                      1.1630871536766743, 2.7510639057120803])  # scipy.special.erfinv
    np.testing.assert_allclose(ops.erfinv(Tensor(x, dtype="float64")).numpy(), exact, rtol=3e-7)
    x32 = x.astype(np.float32)
    y = ops.erfinv(Tensor(x32))
    assert y.dtype == "float32"
    # against float64 at the same (rounded) inputs: near 1, rounding x to float32 moves erfinv(x) by 1e-5
    np.testing.assert_allclose(y.numpy(), ops.erfinv(Tensor(x32, dtype="float64")).numpy(), rtol=1e-6)
    np.testing.assert_array_equal(ops.erfinv(np.array([-1.0, 1.0], np.float32)).numpy(), [-np.inf, np.inf])
    assert ops.erfinv(Tensor(np.array([0, 1], np.int32))).dtype == "float32"


@pytest.mark.parametrize("name,inputs,exact_derivative", [
    ("erf", randn(3, 4) * 1.5, lambda x, y: 2 / np.sqrt(np.pi) * np.exp(-x * x)),
    ("erfinv", rng.uniform(-0.95, 0.95, (3, 4)), lambda x, y: np.sqrt(np.pi) / 2 * np.exp(y * y)),
])
def test_erf_erfinv_gradients(name, inputs, exact_derivative):
    # The forwards approximate to ~1e-7, and central differences of an approximation stray from the true
    # derivative by up to 7e-6 (measured for erf on [-4, 4]), hence atol; the formula itself is checked exactly.
    check_gradients(getattr(ops, name), [inputs], atol=1e-5)
    x = Tensor(inputs, dtype="float64")
    with GradientTape() as tape:
        tape.watch(x)
        y = getattr(ops, name)(x)
    np.testing.assert_allclose(tape.gradient(y, x).numpy(), exact_derivative(inputs, y.numpy()), rtol=1e-12)


@pytest.mark.parametrize("name", ["erf", "erfinv"])
def test_erf_erfinv_keep_float32(name):
    x = Tensor(rng.uniform(-0.9, 0.9, (3, 4)).astype(np.float32))
    with GradientTape() as tape:
        tape.watch(x)
        y = getattr(ops, name)(x)
    assert y.dtype == "float32"
    assert tape.gradient(y, x).dtype == "float32"
