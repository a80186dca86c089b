"""dlgpu.ops.einsum and tensordot: values against numpy, gradients against finite differences (float64),
dtypes, error messages.  PyTorch comparisons are in test_against_torch.py."""

import numpy as np
import pytest

from dlgpu import ops
from dlgpu.autograd import GradientTape, Tensor

from helpers import check_gradients

rng = np.random.default_rng(3)

# (subscripts, operand shapes): each case exercises one way a label can behave in the backward
EINSUM_CASES = [
    ("ij,jk->ik", [(3, 4), (4, 5)]),                       # matrix product
    ("bij,bjk->bik", [(2, 3, 4), (2, 4, 5)]),              # batched
    ("ij,jk,kl->il", [(2, 3), (3, 4), (4, 2)]),            # three operands
    ("ij,jk", [(3, 4), (4, 5)]),                           # implicit output
    ("Ab,aB", [(2, 3), (4, 5)]),                           # implicit output: capitals sort first
    ("ij->ji", [(3, 4)]),                                  # transpose
    ("ij->", [(3, 4)]),                                    # every label summed over one operand
    ("ij,jk->k", [(3, 4), (4, 5)]),                        # i summed over operand 0 alone
    ("i,j->ij", [(3,), (4,)]),                             # outer product
    ("i,i->", [(5,), (5,)]),                               # inner product, 0-d output
    (",ij->ij", [(), (3, 4)]),                             # a 0-d operand
    ("ii->i", [(4, 4)]),                                   # diagonal
    ("ii", [(4, 4)]),                                      # trace
    ("iij->j", [(3, 3, 2)]),                               # diagonal then sum
    ("ii,i->i", [(3, 3), (3,)]),                           # repeated label beside another operand
    ("...ij,...jk->...ik", [(2, 1, 3, 4), (5, 4, 2)]),     # '...' of different ranks, broadcasting
    ("...i,i", [(2, 3), (3,)]),                            # '...' in implicit mode
    ("ij,ij->ij", [(1, 3), (2, 3)]),                       # a named size-1 axis broadcasts
    ("ij,jk->ik", [(2, 1), (3, 4)]),                       # ... a contracted one too
    ("ii,i->i", [(1, 1), (3,)]),                           # ... a repeated one too
    ("bhqd,bhkd->bhqk", [(2, 2, 3, 4), (2, 2, 5, 4)]),     # attention scores
]
CASE_IDS = [s for s, _ in EINSUM_CASES]


def operands(shapes):
    return [rng.standard_normal(s) for s in shapes]


@pytest.mark.parametrize("subscripts,shapes", EINSUM_CASES, ids=CASE_IDS)
def test_einsum_values_match_numpy(subscripts, shapes):
    arrays = [a.astype(np.float32) for a in operands(shapes)]
    out = ops.einsum(subscripts, *arrays)
    expected = np.einsum(subscripts, *arrays)
    assert out.shape == expected.shape and out.dtype == "float32"
    np.testing.assert_allclose(out.numpy(), expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("subscripts,shapes", EINSUM_CASES, ids=CASE_IDS)
def test_einsum_gradients(subscripts, shapes):
    check_gradients(lambda *ts: ops.einsum(subscripts, *ts), operands(shapes))


def test_einsum_gradient_of_a_diagonal_is_zero_off_it():
    x = Tensor(np.ones((3, 3), np.float32))
    with GradientTape() as tape:
        tape.watch(x)
        y = ops.einsum("ii->i", x)
    grad = tape.gradient(y, x, output_gradients=Tensor(np.array([1.0, 2.0, 3.0], np.float32)))
    np.testing.assert_array_equal(grad.numpy(), np.diag([1.0, 2.0, 3.0]))


def test_einsum_only_tracked_operands_get_gradients():
    a, b = Tensor(np.ones((2, 3), np.float32)), Tensor(np.ones((3, 2), np.float32))
    with GradientTape() as tape:
        tape.watch(a)
        y = ops.einsum("ij,jk->ik", a, b)
    assert tape.gradient(y, [a, b])[1] is None


def test_einsum_passes_keywords_to_numpy():
    a, b = operands([(3, 4), (4, 5)])
    np.testing.assert_allclose(ops.einsum("ij,jk->ik", a, b, optimize=False).numpy(), (a @ b).astype(np.float32),
                               rtol=1e-5)


@pytest.mark.parametrize("dtypes,expected", [
    (("float32", "float32"), "float32"),
    (("float64", "float64"), "float64"),
    (("int32", "float32"), "float32"),
    (("int8", "int8"), "int32"),      # Keras: int8 einsums count in int32
    (("int8", "int16"), "int16"),
    (("int32", "int32"), "int32"),
    (("float16", "float32"), "float32"),
])
def test_einsum_dtypes(dtypes, expected):
    a = np.arange(6).reshape(2, 3).astype(dtypes[0])
    b = np.arange(6).reshape(3, 2).astype(dtypes[1])
    out = ops.einsum("ij,jk->ik", Tensor(a, dtype=dtypes[0]), Tensor(b, dtype=dtypes[1]))
    assert out.dtype == expected
    np.testing.assert_array_equal(out.numpy(), a.astype(np.float64) @ b.astype(np.float64))


def test_einsum_int8_does_not_overflow():
    a = Tensor(np.full((1, 4), 100, np.int8))
    assert int(ops.einsum("ij,ij->", a, a)) == 40000


def test_einsum_gradient_keeps_each_operands_dtype():
    a = Tensor(rng.standard_normal((2, 3)), dtype="float64")
    b = Tensor(rng.standard_normal((3, 2)).astype(np.float32))
    with GradientTape() as tape:
        tape.watch([a, b])
        y = ops.einsum("ij,jk->ik", a, b)
    assert y.dtype == "float64"
    ga, gb = tape.gradient(y, [a, b])
    assert ga.dtype == "float64" and gb.dtype == "float32"


@pytest.mark.parametrize("subscripts,shapes,message", [
    ("ij,jk->ik", [(2, 3), (4, 5)],
     r"einsum: subscripts 'ij,jk->ik' do not fit operands of shapes \[\(2, 3\), \(4, 5\)\]: "
     r"index 'j' has size 3 in operand 0 but 4 in operand 1"),
    ("ij,jk->ik", [(2, 3)], r"einsum: .*\[\(2, 3\)\].*name 2 operand\(s\), 1 were given"),
    ("ij->i", [(2, 3), (3,)], r"name 1 operand\(s\), 2 were given"),
    ("ijk->i", [(2, 3)], r"\[\(2, 3\)\].*operand 0 has 2 axes, its subscripts 'ijk' name 3"),
    ("ij->ik", [(2, 3)], r"the output 'ik' must name each input label at most once"),
    ("ij->ii", [(2, 3)], r"the output 'ii'"),
    ("i1,j->ij", [(2, 2), (3,)], r"must be letters"),
    ("...i,...i->...i", [(2, 3), (4, 3)], r"an axis under '...' has size 2 in operand 0 but 4 in operand 1"),
    ("ii->i", [(2, 3)], r"\[\(2, 3\)\].*index 'i' is repeated in operand 0 over axes of sizes 2 and 3"),
    ("ii->i", [(1, 3)], r"index 'i' is repeated in operand 0 over axes of sizes 1 and 3"),
])
def test_einsum_errors_name_the_op_and_shapes(subscripts, shapes, message):
    with pytest.raises(ValueError, match=message):
        ops.einsum(subscripts, *[np.ones(s, np.float32) for s in shapes])


def test_einsum_sums_axes_under_an_ellipsis_the_output_leaves_out():
    # numpy's optimized einsum (the one dlgpu calls) sums them; its unoptimized one refuses
    x = rng.standard_normal((2, 3, 4))
    np.testing.assert_allclose(ops.einsum("...i->i", x.astype(np.float32)).numpy(), x.sum((0, 1)), rtol=1e-5)
    check_gradients(lambda t: ops.einsum("...i->i", t), [x])


def test_einsum_needs_a_string_and_an_operand():
    with pytest.raises(TypeError, match="einsum: subscripts must be a string"):
        ops.einsum(np.ones(3), np.ones(3))
    with pytest.raises(ValueError, match="einsum: subscripts 'ij' need at least one operand"):
        ops.einsum("ij")


TENSORDOT_CASES = [
    ((3, 4), (4, 5), 1),
    ((2, 3, 4), (3, 4, 5), 2),
    ((2, 3), (4, 5), 0),
    ((3, 4, 5), (5, 4), ([1, 2], [1, 0])),
    ((3, 4), (5, 3), (0, 1)),
    ((3, 4), (3, 4), ((0, 1), (0, 1))),
    ((2, 3, 4), (4, 3), ([-1], [0])),
]


@pytest.mark.parametrize("shape1,shape2,axes", TENSORDOT_CASES, ids=str)
def test_tensordot_values_and_gradients(shape1, shape2, axes):
    a, b = operands([shape1, shape2])
    out = ops.tensordot(a.astype(np.float32), b.astype(np.float32), axes=axes)
    np.testing.assert_allclose(out.numpy(), np.tensordot(a, b, axes=axes), rtol=1e-5, atol=1e-5)
    assert out.dtype == "float32"
    check_gradients(lambda x, y: ops.tensordot(x, y, axes=axes), [a, b])


def test_tensordot_default_contracts_two_axes():
    a, b = operands([(2, 3, 4), (3, 4, 5)])
    # sums of 12 products: a result near 0 has no relative precision
    np.testing.assert_allclose(ops.tensordot(a, b).numpy(), np.tensordot(a, b).astype(np.float32), rtol=1e-5,
                               atol=1e-5)


def test_tensordot_dtypes_follow_keras():
    ints8 = Tensor(np.ones((2, 2), np.int8))
    assert ops.tensordot(ints8, ints8, axes=1).dtype == "int8"  # Keras widens int8 in einsum, not here
    assert ops.tensordot(Tensor(np.ones((2, 2), np.int32)), np.ones((2, 2), np.float32), axes=1).dtype == "float32"


@pytest.mark.parametrize("shape1,shape2,axes,message", [
    ((2, 3), (4, 5), 1, r"tensordot: axes=1 do not fit x1 of shape \(2, 3\) and x2 of shape \(4, 5\): "
                        r"the contracted axes have sizes \[3\] in x1 and \[4\] in x2"),
    ((2, 3), (3,), 2, r"axes=2 .*\(2, 3\).*\(3,\).*between 0 and the smaller rank"),
    ((2, 3), (3, 2), ([0, 1], [0]), r"2 axes of x1 against 1 of x2"),
    ((2, 3), (3, 2), ([2], [0]), r"axes must be integers from -2 to 1; received \[2\]"),
    ((2, 3), (3, 2), ([0.5], [0]), r"axes must be integers"),
    ((2, 3), (3, 2), ([0, 0], [1, 1]), r"an axis is repeated"),
    ((2, 3), (3, 2), "ij", r"expected an integer or a pair"),
])
def test_tensordot_errors(shape1, shape2, axes, message):
    with pytest.raises(ValueError, match=message):
        ops.tensordot(np.ones(shape1, np.float32), np.ones(shape2, np.float32), axes=axes)


@pytest.mark.gpu
@pytest.mark.parametrize("subscripts,shapes", EINSUM_CASES, ids=CASE_IDS)
def test_einsum_on_cupy_matches_numpy(subscripts, shapes):
    import cupy
    arrays = [a.astype(np.float32) for a in operands(shapes)]
    results = []
    for wrap in (np.asarray, cupy.asarray):
        ts = [Tensor(wrap(a)) for a in arrays]
        with GradientTape() as tape:
            tape.watch(ts)
            out = ops.einsum(subscripts, *ts)
        upstream = Tensor(wrap(np.ones(out.shape, np.float32)))
        results.append([out.numpy()] + [g.numpy() for g in tape.gradient(out, ts, output_gradients=upstream)])
    for on_gpu, on_cpu in zip(*results):
        np.testing.assert_allclose(on_gpu, on_cpu, rtol=1e-5, atol=1e-5)
