"""Result dtypes follow Keras 3's promotion rules (keras/src/backend/common/dtypes.py and the numpy backend's
ops, Keras 3.0-3.11, which keep 64-bit dtypes).

Every expected dtype below is written out by hand from those rules, not computed: a tensor meets a tensor on
the JAX-style lattice (int32 + float32 is float32, where numpy says float64); a Python scalar is "weak": it
adapts to the tensor unless its kind is higher (int8 + 1 is int8, int64 * 0.5 is float32); a float-valued op
(sqrt, exp, sigmoid, mean…) gives float32 for bool and integer inputs.
"""

import numpy as np
import pytest

from dlgpu import ops
from dlgpu.autograd import GradientTape, Tensor, Variable
from dlgpu.ops._core import result_type


def tensor(dtype):
    return Tensor(np.array([1, 2, 3]).astype(dtype), dtype=dtype)


def operand(spec):
    """A dtype name gives a tensor of that dtype; anything else (1, 0.5, True) is passed as it is."""
    return tensor(spec) if isinstance(spec, str) else spec


BINARY = [
    # two tensors
    ("add", "int32", "float32", "float32"),
    ("add", "int64", "float32", "float32"),
    ("add", "int8", "float16", "float16"),
    ("add", "uint8", "float16", "float16"),
    ("add", "int64", "float64", "float64"),
    ("add", "float16", "float32", "float32"),
    ("add", "float32", "float64", "float64"),
    ("add", "uint8", "int8", "int16"),
    ("add", "uint16", "int16", "int32"),
    ("add", "uint32", "int32", "int64"),
    ("add", "uint64", "int64", "float32"),
    ("add", "uint8", "uint16", "uint16"),
    ("add", "int16", "int32", "int32"),
    ("add", "int32", "int64", "int64"),
    ("add", "bool", "int8", "int8"),
    ("add", "bool", "uint8", "uint8"),
    ("add", "bool", "float16", "float16"),
    ("add", "bool", "bool", "bool"),
    ("subtract", "int32", "float32", "float32"),
    ("multiply", "float32", "int64", "float32"),
    ("maximum", "int8", "uint8", "int16"),
    ("minimum", "int32", "float32", "float32"),
    # a tensor and a weak Python scalar, either side
    ("multiply", "int32", 0.5, "float32"),
    ("add", "int32", 0.5, "float32"),
    ("multiply", "int64", 0.5, "float32"),
    ("multiply", 0.5, "int64", "float32"),
    ("subtract", 0.5, "uint8", "float32"),
    ("add", "int8", 1, "int8"),
    ("add", "uint8", 1, "uint8"),
    ("add", "int64", 1, "int64"),
    ("add", "bool", 1, "int32"),
    ("add", "bool", 0.5, "float32"),
    ("add", "bool", True, "bool"),
    ("add", "int8", True, "int8"),
    ("add", "float32", True, "float32"),
    ("multiply", "float16", 0.5, "float16"),
    ("add", "float16", 1, "float16"),
    ("multiply", "float64", 0.5, "float64"),
    ("add", 1, "float64", "float64"),
    ("maximum", "int32", 0.5, "float32"),
    ("maximum", "int32", 1, "int32"),
    ("power", "int32", 0.5, "float32"),
    ("power", "int32", 2, "int32"),
    ("power", "float16", 2, "float16"),
    ("power", 2.0, "int32", "float32"),
    # divide is float-valued: result_type(a, b, float)
    ("divide", "int32", "int32", "float32"),
    ("divide", "int64", "int64", "float32"),
    ("divide", "int8", 2, "float32"),
    ("divide", "bool", "bool", "float32"),
    ("divide", "uint8", "float16", "float16"),
    ("divide", "float16", 2, "float16"),
    ("divide", "float64", 2, "float64"),
    # two scalars: Python ints are int32, floats float32
    ("add", 1, 2, "int32"),
    ("add", 1, 2.5, "float32"),
    ("multiply", 0.5, 2, "float32"),
    ("equal", "int32", 0.5, "bool"),
    ("less", "uint8", "float16", "bool"),
]


@pytest.mark.parametrize("op, a, b, expected", BINARY, ids=[f"{op}-{a!r}-{b!r}" for op, a, b, _ in BINARY])
def test_binary_result_dtype(op, a, b, expected):
    assert getattr(ops, op)(operand(a), operand(b)).dtype == expected


def test_where_promotes_its_branches():
    condition = Tensor(np.array([True, False, True]))
    assert ops.where(condition, tensor("int32"), 0.5).dtype == "float32"
    assert ops.where(condition, tensor("int8"), tensor("uint8")).dtype == "int16"


def test_clip_keeps_the_input_dtype():
    assert ops.clip(tensor("int32"), 0.5, 1.5).dtype == "int32"
    assert ops.clip(tensor("float16"), 0, 1).dtype == "float16"
    assert ops.clip(tensor("float32"), 0.0, 1.0).dtype == "float32"


def test_cases_from_the_audit():
    ints = ops.convert_to_tensor([1, 2])
    assert ints.dtype == "int32"
    assert (ints * 0.5).dtype == "float32"
    assert (ints + 0.5).dtype == "float32"
    assert (0.5 * ints).dtype == "float32"
    assert ops.add(ints, ops.ones((2,))).dtype == "float32"
    assert ops.multiply(np.arange(3), 0.5).dtype == "float32"  # int64 array, weak float
    assert ops.add(np.arange(3), 1).dtype == "int64"  # a weak int never widens an int64 array
    for op in (ops.sqrt, ops.exp, ops.log, lambda t: ops.power(t, 0.5), lambda t: ops.maximum(t, 0.5)):
        assert op(ints).dtype == "float32"


FLOAT_VALUED = ["sqrt", "rsqrt", "exp", "expm1", "log", "log1p", "log2", "log10", "sin", "cos", "reciprocal",
                "floor", "ceil", "sigmoid", "tanh", "softplus", "softsign", "silu", "elu", "selu", "leaky_relu",
                "hard_sigmoid", "log_sigmoid", "mish", "exponential", "softmax", "log_softmax", "mean", "var",
                "std", "logsumexp", "norm"]
# (input dtype, result dtype) for every op above
FLOAT_VALUED_DTYPES = [("bool", "float32"), ("int8", "float32"), ("uint8", "float32"), ("int32", "float32"),
                       ("int64", "float32"), ("uint64", "float32"), ("float16", "float16"), ("float32", "float32"),
                       ("float64", "float64")]


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # log and reciprocal of bool's zeros
@pytest.mark.parametrize("source, expected", FLOAT_VALUED_DTYPES)
@pytest.mark.parametrize("name", FLOAT_VALUED)
def test_float_valued_op_result_dtype(name, source, expected):
    assert getattr(ops, name)(tensor(source)).dtype == expected


@pytest.mark.parametrize("source", ["bool", "int8", "int32", "int64"])
def test_gelu_of_integers_is_float32(source):
    # float16 is left out: the CPU primitive computes gelu in float32
    assert ops.gelu(tensor(source)).dtype == "float32"
    assert ops.gelu(tensor(source), approximate=True).dtype == "float32"


INTEGER_VALUED = [
    # sum and prod: JAX's accumulators, not numpy's 64-bit ones
    ("sum", "bool", "int32"), ("sum", "int8", "int32"), ("sum", "int16", "int32"), ("sum", "int32", "int32"),
    ("sum", "int64", "int64"), ("sum", "uint8", "uint32"), ("sum", "uint32", "uint32"), ("sum", "uint64", "uint64"),
    ("sum", "float16", "float16"),
    ("prod", "bool", "int32"), ("prod", "int8", "int32"), ("prod", "int32", "int32"), ("prod", "uint16", "uint32"),
    ("prod", "int64", "int64"),
    ("cumsum", "bool", "int32"), ("cumsum", "int8", "int8"), ("cumsum", "int32", "int32"),
    ("cumsum", "uint8", "uint8"), ("cumsum", "float16", "float16"),
    ("square", "bool", "int32"), ("square", "int8", "int8"), ("square", "uint8", "uint8"),
    ("relu", "int32", "int32"), ("abs", "int8", "int8"), ("negative", "int32", "int32"),
    ("max", "int32", "int32"), ("round", "int32", "int32"),
]


@pytest.mark.parametrize("name, source, expected", INTEGER_VALUED, ids=[f"{n}-{s}" for n, s, _ in INTEGER_VALUED])
def test_integer_valued_op_result_dtype(name, source, expected):
    assert getattr(ops, name)(tensor(source)).dtype == expected


def test_python_data_becomes_int32_or_float32():
    assert ops.convert_to_tensor(3).dtype == "int32"
    assert ops.convert_to_tensor([[1, 2], [3, 4]]).dtype == "int32"
    assert ops.convert_to_tensor([1.0, 2.0]).dtype == "float32"
    assert ops.convert_to_tensor([True, False]).dtype == "bool"
    assert ops.convert_to_tensor([1, 2 ** 40]).dtype == "int64"  # int32 cannot hold it
    assert ops.arange(3).dtype == "int32"
    assert ops.arange(0.0, 1.0, 0.25).dtype == "float32"


def test_arrays_keep_their_dtype_except_float64():
    assert ops.convert_to_tensor(np.arange(3)).dtype == "int64"
    assert ops.convert_to_tensor(np.arange(3, dtype=np.uint8)).dtype == "uint8"
    assert ops.convert_to_tensor(np.ones(2, np.float16)).dtype == "float16"
    # dlgpu's conversion makes float64 data float32 (Keras 3.12+ does the same on its numpy, JAX and torch
    # backends), so numpy's default float arrays do not slow every op after them ...
    assert ops.convert_to_tensor(np.ones(2)).dtype == "float32"
    assert ops.add(np.ones(2), 1).dtype == "float32"
    # ... and float64 asked for explicitly stays float64 through every op.
    x64 = ops.convert_to_tensor(np.ones(2), dtype="float64")
    assert x64.dtype == "float64"
    assert ops.add(x64, 1).dtype == "float64"
    assert ops.add(x64, tensor("int64")[:2]).dtype == "float64"
    assert ops.sqrt(x64).dtype == "float64"
    assert ops.mean(x64).dtype == "float64"


def test_explicit_dtype_wins():
    assert ops.convert_to_tensor([1, 2], dtype="int64").dtype == "int64"
    assert ops.convert_to_tensor([1.0, 2.0], dtype="float16").dtype == "float16"
    assert ops.arange(3, dtype="float64").dtype == "float64"
    assert ops.cast(ops.convert_to_tensor([1, 2]), "uint8").dtype == "uint8"


def test_numpy_scalars_are_weak_too():
    assert (tensor("float32") * np.float64(2.0)).dtype == "float32"
    assert (tensor("float16") + np.int64(1)).dtype == "float16"
    assert (tensor("int8") * np.float64(0.5)).dtype == "float32"
    assert (tensor("int8") + np.int64(1)).dtype == "int8"


GRADIENT_CASES = [
    # (variable dtype, other operand, result dtype)
    ("float32", "int32", "float32"),
    ("float32", "int64", "float32"),
    ("float32", 2, "float32"),
    ("float32", "float64", "float64"),
    ("float16", 0.5, "float16"),
    ("float16", "float32", "float32"),
    ("float64", 0.5, "float64"),
    ("float64", "int32", "float64"),
]


@pytest.mark.parametrize("op", ["add", "multiply", "maximum", "divide", "power"])
@pytest.mark.parametrize("dtype, other, expected", GRADIENT_CASES, ids=[f"{d}-{o!r}" for d, o, _ in GRADIENT_CASES])
def test_gradient_keeps_the_variable_dtype(op, dtype, other, expected):
    v = Variable(np.array([0.5, 1.5, 2.0]), dtype=dtype)
    with GradientTape() as tape:
        y = getattr(ops, op)(v, operand(other))
        total = ops.sum(y)
    assert y.dtype == expected
    g = tape.gradient(total, v)
    assert g.dtype == dtype
    assert np.all(np.isfinite(g.numpy()))
    if op == "add":
        np.testing.assert_array_equal(g.numpy(), [1.0, 1.0, 1.0])


@pytest.mark.parametrize("name", ["sqrt", "exp", "log", "sigmoid", "softmax", "mean", "sum"])
def test_unary_gradient_keeps_float16(name):
    v = Variable(np.array([0.5, 1.5, 2.0]), dtype="float16")
    with GradientTape() as tape:
        y = getattr(ops, name)(v)
        total = ops.sum(y)
    assert y.dtype == "float16"
    assert tape.gradient(total, v).dtype == "float16"


def test_promotion_is_symmetric():
    names = ["bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64",
             "float16", "float32", "float64"]
    dtypes = [np.dtype(n) for n in names] + ["int", "float"]
    for a in dtypes:
        for b in dtypes:
            assert result_type(a, b) == result_type(b, a), (a, b)


def test_unsupported_dtype_names_both_operands():
    t = Tensor(np.ones(2, "timedelta64[s]"), dtype="timedelta64[s]")
    with pytest.raises(TypeError, match=r"no implicit dtype promotion for timedelta64\[s\] and float32.*ops\.cast"):
        ops.add(t, tensor("float32")[:2])


def test_complex_promotes_as_in_keras():
    """complex64 sits above float32 in Keras's lattice: complex64 with float32 (or a Python int) is complex64,
    with float64 complex128."""
    z = Tensor(np.ones(2, np.complex64), dtype="complex64")
    assert ops.add(z, tensor("float32")[:2]).dtype == "complex64"
    assert ops.multiply(z, 2).dtype == "complex64"
    assert ops.add(z, Tensor(np.ones(2), dtype="float64")).dtype == "complex128"
