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


# The keras.ops elementwise ops added beside the first set: values against numpy, gradients, dtypes.
def unit(*shape):
    return rng.uniform(-0.8, 0.8, shape)


MORE_UNARY = {"tan": unit, "sinh": randn, "cosh": randn, "arcsin": unit, "arccos": unit, "arctan": randn,
              "arcsinh": randn, "arccosh": lambda *s: rng.uniform(1.5, 3.0, s), "arctanh": unit,
              "cbrt": lambda *s: away_from(randn(*s), [0.0], 0.2), "exp2": randn}


@pytest.mark.parametrize("name", sorted(MORE_UNARY))
def test_more_unary_values_gradients_and_dtypes(name):
    x = MORE_UNARY[name](3, 4)
    np.testing.assert_allclose(getattr(ops, name)(x.astype(np.float32)).numpy(), getattr(np, name)(x), rtol=2e-6,
                               atol=1e-6)
    check_gradients(getattr(ops, name), [x])
    assert getattr(ops, name)(np.array([1 if name == "arccosh" else 0], np.int32)).dtype == "float32"


@pytest.mark.parametrize("name", ["arctan2", "hypot", "logaddexp", "logaddexp2"])
@pytest.mark.parametrize("shapes", [((3, 4), (3, 4)), ((3, 4), (4,)), ((2, 1, 3), (4, 1)), ((), (2, 3))], ids=str)
def test_more_binary_values_and_gradients(name, shapes):
    a, b = randn(*shapes[0]), randn(*shapes[1])
    np.testing.assert_allclose(getattr(ops, name)(a, b).numpy(), getattr(np, name)(a, b).astype(np.float32),
                               rtol=2e-6, atol=1e-6)
    check_gradients(getattr(ops, name), [a, b])


@pytest.mark.parametrize("name", ["arctan2", "hypot", "logaddexp", "divide_no_nan"])
def test_more_binary_dtypes_follow_keras(name):
    op = getattr(ops, name)
    assert op(np.array([1, 2], np.int32), np.array([3, 4], np.int32)).dtype == "float32"
    assert op(np.ones(2, np.float16), 2.0).dtype == "float16"
    assert op(np.ones(2, np.float32), Tensor(np.ones(2), dtype="float64")).dtype == "float64"


def test_divide_no_nan_is_zero_with_zero_gradient_at_zero_divisors():
    a, b = randn(3, 4), positive(3, 4)
    b[0, 1] = b[2, 3] = 0.0
    out = ops.divide_no_nan(a, b).numpy()
    assert out[0, 1] == 0 and out[2, 3] == 0
    np.testing.assert_allclose(out[b != 0], (a / np.where(b == 0, 1, b))[b != 0], rtol=1e-6)
    check_gradients(ops.divide_no_nan, [a, b], wrt=[0])  # b's finite differences would cross the jump at 0
    check_gradients(ops.divide_no_nan, [a, positive(3, 4)])
    at, bt = Tensor(a), Tensor(b)
    with GradientTape() as tape:
        tape.watch([at, bt])
        loss = ops.sum(ops.divide_no_nan(at, bt))
    ga, gb = (g.numpy() for g in tape.gradient(loss, [at, bt]))
    assert ga[0, 1] == gb[0, 1] == ga[2, 3] == gb[2, 3] == 0 and np.isfinite(gb).all()


def test_isclose_allclose_logical_xor_trunc_signbit():
    a = np.array([1.0, 2.0, np.nan, np.inf, -np.inf], np.float32)
    b = np.array([1.0 + 1e-7, 2.1, np.nan, np.inf, 0.0], np.float32)
    np.testing.assert_array_equal(ops.isclose(a, b).numpy(), np.isclose(a, b))
    np.testing.assert_array_equal(ops.isclose(a, b, equal_nan=True).numpy(), np.isclose(a, b, equal_nan=True))
    assert bool(ops.allclose(a[:2], b[:2], rtol=0.1).numpy()) and not bool(ops.allclose(a, b).numpy())
    np.testing.assert_array_equal(ops.logical_xor(a > 1, b > 1).numpy(), np.logical_xor(a > 1, b > 1))
    np.testing.assert_array_equal(ops.trunc(np.array([-1.5, 2.7])).numpy(), [-1.0, 2.0])
    assert ops.trunc(np.array([3], np.int32)).dtype == "int32"
    np.testing.assert_array_equal(ops.signbit(np.array([-0.0, 1.0])).numpy(), [True, False])
    np.testing.assert_array_equal(ops.isposinf(a).numpy(), np.isposinf(a))
    np.testing.assert_array_equal(ops.isneginf(a).numpy(), np.isneginf(a))


def test_nan_to_num_erfc_and_angle_conversions():
    x = np.array([np.nan, np.inf, -np.inf, 1.5], np.float32)
    np.testing.assert_array_equal(ops.nan_to_num(x, posinf=9.0, neginf=-9.0).numpy(), [0.0, 9.0, -9.0, 1.5])
    check_gradients(ops.nan_to_num, [randn(3)])
    np.testing.assert_allclose(ops.erfc(np.array([0.0, 1.0])).numpy(), [1.0, 0.15729921], rtol=1e-6)
    np.testing.assert_allclose(ops.deg2rad(np.array([180], np.int32)).numpy(), [np.pi], rtol=1e-7)
    np.testing.assert_allclose(ops.rad2deg(np.array([np.pi / 2])).numpy(), [90.0], rtol=1e-7)


@pytest.mark.parametrize("shapes", [((3,), (4,)), ((2, 3), (4,)), ((), (2,))], ids=str)
def test_outer(shapes):
    a, b = randn(*shapes[0]), randn(*shapes[1])
    np.testing.assert_allclose(ops.outer(a, b).numpy(), np.outer(a, b), rtol=1e-6)
    check_gradients(ops.outer, [a, b])


@pytest.mark.parametrize("shapes", [((3,), (3,)), ((2, 3), (4, 3)), ((2, 5, 3), (3,)), ((), (2, 3))], ids=str)
def test_inner_and_vdot(shapes):
    a, b = randn(*shapes[0]), randn(*shapes[1])
    np.testing.assert_allclose(ops.inner(a, b).numpy(), np.inner(a, b), rtol=1e-5, atol=1e-6)
    check_gradients(ops.inner, [a, b])
    if a.size == b.size:
        np.testing.assert_allclose(ops.vdot(a, b).numpy(), np.vdot(a, b), rtol=1e-5)
        check_gradients(ops.vdot, [a, b])


def test_inner_and_vdot_name_mismatched_shapes():
    with pytest.raises(ValueError, match=r"inner.*\(2, 3\).*\(4,\)"):
        ops.inner(np.ones((2, 3)), np.ones(4))
    with pytest.raises(ValueError, match="vdot"):
        ops.vdot(np.ones(3), np.ones(4))


@pytest.mark.gpu
def test_more_math_on_gpu_match_cpu():
    import dlgpu
    a, b = unit(3, 4), positive(4)
    b[1] = 0.0
    results = []
    for device in ("cpu", "gpu"):
        with dlgpu.device(device):
            at, bt = ops.convert_to_tensor(a), ops.convert_to_tensor(b)
            with GradientTape() as tape:
                tape.watch([at, bt])
                outs = [getattr(ops, n)(at) for n in ("tan", "sinh", "arcsin", "arctanh", "cbrt", "exp2")]
                outs += [getattr(ops, n)(at, bt) for n in ("arctan2", "hypot", "logaddexp", "logaddexp2",
                                                          "divide_no_nan")]
                outs += [ops.outer(at[0], bt), ops.inner(at, bt), ops.vdot(at[0], bt), ops.erfc(at),
                         ops.nan_to_num(at), ops.deg2rad(at)]
                loss = sum(ops.sum(o) for o in outs)
            flags = [ops.isclose(at, bt), ops.allclose(at, at), ops.logical_xor(at > 0, bt > 0), ops.trunc(at),
                     ops.signbit(at), ops.isposinf(at), ops.isneginf(at)]
            results.append([o.numpy() for o in outs + flags] + [g.numpy() for g in tape.gradient(loss, [at, bt])])
    for on_cpu, on_gpu in zip(*results):
        np.testing.assert_allclose(on_gpu, on_cpu, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", ["fmax", "fmin"])
def test_fmax_fmin_skip_nans(name):
    a = np.array([1.0, np.nan, 3.0, np.nan], np.float32)
    b = np.array([2.0, 5.0, np.nan, np.nan], np.float32)
    np.testing.assert_array_equal(getattr(ops, name)(a, b).numpy(), getattr(np, name)(a, b))
    x, y = randn(3, 4), randn(4)
    x = np.where(np.abs(x - y) < 0.1, x + 0.3, x)
    check_gradients(getattr(ops, name), [x, y])


def test_heaviside_fabs_sinc_kron_isin_select():
    x = np.array([-1.0, 0.0, 2.0])
    np.testing.assert_array_equal(ops.heaviside(x, 0.5).numpy(), np.heaviside(x, 0.5))
    assert ops.fabs(np.array([-2], np.int32)).dtype == "float32"
    s = np.array([0.0, 0.3, -1.7])
    np.testing.assert_allclose(ops.sinc(s).numpy(), np.sinc(s), rtol=1e-6)
    grad = check_gradients(ops.sinc, [np.array([0.0, 0.3, -1.7])], atol=1e-5)
    assert grad[0].numpy()[0] == 0
    for sa, sb in [((2, 3), (3, 2)), ((3,), (2, 2)), ((2, 1, 2), (3, 2))]:
        a, b = randn(*sa), randn(*sb)
        np.testing.assert_allclose(ops.kron(a, b).numpy(), np.kron(a, b), rtol=1e-6)
        check_gradients(ops.kron, [a, b])
    np.testing.assert_array_equal(ops.isin(np.array([1, 2, 5]), np.array([5, 1])).numpy(), [True, False, True])
    v = randn(5)
    conds, choices = [v < -0.5, v > 0.5], [v * 2, v * 3]
    np.testing.assert_allclose(ops.select(conds, choices, -1.0).numpy(), np.select(conds, choices, -1.0), rtol=1e-6)
    check_gradients(lambda t: ops.select([t < 0], [t * 2], t), [away_from(v, [0.0])])
    with pytest.raises(ValueError, match="select: condlist and choicelist"):
        ops.select([v > 0], [])
