"""dlgpu.ops.shape: indexing and shape ops, gradients against finite differences (float64)."""

import numpy as np
import pytest

from dlgpu import ops
from dlgpu.autograd import GradientTape, Tensor

from helpers import check_gradients

rng = np.random.default_rng(2)


def randn(*shape):
    return rng.standard_normal(shape)


INDICES = {
    "int": 1,
    "negative int": -1,
    "slice": slice(1, 3),
    "step slice": slice(None, None, 2),
    "tuple": (slice(None), 2),
    "ellipsis": (Ellipsis, 1),
    "newaxis": (None, slice(0, 2)),
    "fancy": [0, 2],
    "repeated fancy": [0, 2, 0, 0],
    "fancy pair": ([0, 1, 1], [2, 3, 3]),
    "bool mask": np.array([True, False, True]),
    "mixed": (slice(0, 2), [1, 1, 3]),
}


@pytest.mark.parametrize("key", sorted(INDICES))
def test_getitem_gradient(key):
    index = INDICES[key]
    check_gradients(lambda t: t[index], [randn(3, 4)])


def test_getitem_repeated_indices_accumulate():
    x = Tensor(np.zeros(3, np.float32))
    with GradientTape() as tape:
        tape.watch(x)
        y = x[[0, 0, 2, 0]]
    np.testing.assert_array_equal(tape.gradient(y, x).numpy(), [3.0, 0.0, 1.0])


def test_getitem_with_tensor_index():
    idx = Tensor(np.array([2, 0, 2]))
    check_gradients(lambda t: t[idx], [randn(3, 2)])


@pytest.mark.parametrize("axis", [0, 1, -1])
def test_concatenate_gradient(axis):
    shapes = [(2, 3), (2, 3), (2, 3)]
    shapes = [tuple(s + k if i == axis % 2 else s for i, s in enumerate(sh)) for k, sh in enumerate(shapes)]
    check_gradients(lambda *ts: ops.concatenate(ts, axis=axis), [randn(*s) for s in shapes])


def test_concatenate_mismatched_shapes_error():
    with pytest.raises(ValueError, match=r"\(2, 3\).*\(3, 3\).*axis 1"):
        ops.concatenate([np.ones((2, 3), np.float32), np.ones((3, 3), np.float32)], axis=1)


@pytest.mark.parametrize("axis", [0, 1, 2, -1])
def test_stack_gradient(axis):
    check_gradients(lambda *ts: ops.stack(ts, axis=axis), [randn(2, 3), randn(2, 3)])


@pytest.mark.parametrize("sections,axis", [(2, 0), (3, 1), ([1, 3], 1), ([2], -1)], ids=str)
def test_split_gradient(sections, axis):
    check_gradients(lambda t: ops.split(t, sections, axis=axis), [randn(4, 6)])


@pytest.mark.parametrize("axes", [None, (1, 0, 2), (2, 0, 1), (-1, 0, 1)], ids=str)
def test_transpose_gradient(axes):
    check_gradients(lambda t: ops.transpose(t, axes), [randn(2, 3, 4)])


def test_swapaxes_moveaxis_gradient():
    check_gradients(lambda t: ops.swapaxes(t, 0, 2), [randn(2, 3, 4)])
    check_gradients(lambda t: ops.moveaxis(t, 0, -1), [randn(2, 3, 4)])


@pytest.mark.parametrize("shape", [(6, 2), (-1,), (3, -1, 2), (1, 12)], ids=str)
def test_reshape_gradient(shape):
    check_gradients(lambda t: ops.reshape(t, shape), [randn(3, 4)])


def test_reshape_mismatch_error():
    with pytest.raises(ValueError, match=r"\(3, 4\).*12 values.*\(5, 2\)"):
        ops.reshape(np.ones((3, 4), np.float32), (5, 2))


def test_expand_squeeze_broadcast_flatten_gradients():
    check_gradients(lambda t: ops.expand_dims(t, 1), [randn(3, 4)])
    check_gradients(lambda t: ops.squeeze(t, 1), [randn(3, 1, 4)])
    check_gradients(lambda t: ops.squeeze(t), [randn(3, 1, 4, 1)])
    check_gradients(lambda t: ops.broadcast_to(t, (2, 3, 4)), [randn(3, 1)])
    check_gradients(ops.flatten, [randn(3, 4)])
    check_gradients(lambda t: ops.flip(t, axis=1), [randn(3, 4)])


@pytest.mark.parametrize("widths", [((1, 2), (0, 3)), ((0, 0), (2, 2)), ((3, 0), (0, 0))], ids=str)
def test_pad_gradient(widths):
    check_gradients(lambda t: ops.pad(t, widths), [randn(2, 3)])


@pytest.mark.parametrize("reps", [2, (2, 1), (1, 3), (2, 2, 2)], ids=str)
def test_tile_gradient(reps):
    check_gradients(lambda t: ops.tile(t, reps), [randn(2, 3)])


@pytest.mark.parametrize("axis", [None, 0, 1, -1])
def test_repeat_gradient(axis):
    check_gradients(lambda t: ops.repeat(t, 3, axis=axis), [randn(2, 3)])


@pytest.mark.parametrize("repeats, axis", [([4], None), (np.int64(2), 1), ([1, 0, 3], 0), ([2, 1, 2, 0], -1),
                                           (np.array([3, 1, 1]), 0)], ids=str)
def test_repeat_counts_as_numpy_takes_them(repeats, axis):
    # one count given as a one-entry list (keras.io's conditional GAN), a numpy int, or a count per entry
    x = randn(3, 4)
    x32 = x.astype(np.float32)
    np.testing.assert_array_equal(np.asarray(ops.repeat(x32, repeats, axis=axis)), np.repeat(x32, repeats, axis=axis))
    check_gradients(lambda t: ops.repeat(t, repeats, axis=axis), [x])


@pytest.mark.gpu
def test_repeat_counts_on_gpu_match_cpu():
    import dlgpu
    x, w = randn(3, 4), randn(3, 6)
    results = []
    for device in ("cpu", "gpu"):
        with dlgpu.device(device):
            xt = ops.convert_to_tensor(x)
            with GradientTape() as tape:
                tape.watch(xt)
                loss = ops.sum(ops.repeat(xt, [2, 0, 1, 3], axis=1) * ops.convert_to_tensor(w))
            results.append((loss.numpy(), tape.gradient(loss, xt).numpy()))
    for a, b in zip(*results):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_repeat_refuses_bad_counts():
    with pytest.raises(ValueError, match="one count per entry"):
        ops.repeat(randn(3, 4), [1, 2], axis=0)
    with pytest.raises(ValueError, match="negative"):
        ops.repeat(randn(3, 4), -1, axis=0)
    with pytest.raises(ValueError, match="integers"):
        ops.repeat(randn(3, 4), 1.5, axis=0)


@pytest.mark.parametrize("axis", [None, 0, 1])
def test_take_gradient_with_repeats(axis):
    check_gradients(lambda t: ops.take(t, np.array([[0, 1], [1, 1]]), axis=axis), [randn(3, 4)])


@pytest.mark.parametrize("axis", [0, 1, -1])
def test_take_along_axis_gradient(axis):
    x = randn(3, 4)
    idx = rng.integers(0, x.shape[axis], size=(3, 4) if axis == 0 else (3, 5))
    check_gradients(lambda t: ops.take_along_axis(t, idx, axis=axis), [x])


def test_stop_gradient_in_graph():
    x = Tensor(randn(3), dtype="float64")
    with GradientTape() as tape:
        tape.watch(x)
        y = x * ops.stop_gradient(x)
    np.testing.assert_allclose(tape.gradient(y, x).numpy(), x.numpy())
    assert ops.stop_gradient(x).dtype == "float64"  # the dtype is kept


@pytest.mark.parametrize("labels", [[0, 3], [-1, 1], [[0, 4]]], ids=str)
def test_one_hot_out_of_range_error(labels):
    if np.min(labels) >= 0 and np.max(labels) < 4:
        out = ops.one_hot(np.array(labels), 4)
        assert out.shape == (2, 4) and out.dtype == "float32"
        return
    with pytest.raises(ValueError, match=r"one_hot: labels must lie in \[0, 4\)"):
        ops.one_hot(np.array(labels), 4)


def test_one_hot_values():
    out = ops.one_hot(Tensor(np.array([[0, 2], [1, 1]], np.int32)), 3)
    np.testing.assert_array_equal(out.numpy(), np.eye(3, dtype=np.float32)[[[0, 2], [1, 1]]])


def test_int_labels_through_shape_ops_stay_int():
    labels = Tensor(np.array([[0, 2], [1, 1]], np.int64))
    for out in (labels[0], ops.reshape(labels, (-1,)), ops.transpose(labels), ops.concatenate([labels, labels]),
                ops.take(labels, [0]), ops.expand_dims(labels, 0)):
        assert out.dtype == "int64"


@pytest.mark.parametrize("fn", [
    lambda t: t[[0, 0, 1]], lambda t: ops.concatenate([t, t], axis=1), lambda t: ops.stack([t, t]),
    lambda t: ops.pad(t, ((1, 1), (0, 1))), lambda t: ops.tile(t, (2, 1)), lambda t: ops.repeat(t, 2, axis=0),
    lambda t: ops.take(t, [1, 1], axis=1), lambda t: ops.split(t, 2, axis=0)[0], lambda t: ops.transpose(t),
    lambda t: ops.take_along_axis(t, np.array([[0], [1]]), axis=1),
], ids=["getitem", "concatenate", "stack", "pad", "tile", "repeat", "take", "split", "transpose", "take_along_axis"])
def test_shape_ops_keep_float32(fn):
    x = Tensor(randn(2, 4).astype(np.float32))
    with GradientTape() as tape:
        tape.watch(x)
        y = fn(x)
    assert y.dtype == "float32"
    assert tape.gradient(y, x).dtype == "float32"


def test_creation_defaults_float32():
    for t in (ops.zeros((2,)), ops.ones((2,)), ops.full((2,), 3.0), ops.eye(2), ops.linspace(0, 1, 3),
              ops.zeros_like(np.ones(2, np.float32)), ops.convert_to_tensor([1.0, 2.0]), ops.arange(0.0, 1.0, 0.5)):
        assert t.dtype == "float32"
    assert ops.arange(3).dtype.startswith("int")
    assert ops.convert_to_tensor([1, 2]).dtype.startswith("int")


@pytest.mark.parametrize("args,kwargs,expected", [
    ((3,), {}, [0, 1, 2]),
    ((3, 7), {}, [3, 4, 5, 6]),
    ((3, 7, 2), {}, [3, 5]),
    ((6,), {"step": 2}, [0, 2, 4]),  # a single positional is the stop, also with a step
    ((2.0,), {"step": 0.5}, [0.0, 0.5, 1.0, 1.5]),
    ((5, 0, -2), {}, [5, 3, 1]),
    ((1,), {"stop": 4}, [1, 2, 3]),
], ids=str)
def test_arange_follows_keras(args, kwargs, expected):
    out = ops.arange(*args, **kwargs)
    assert out.dtype == ("float32" if any(isinstance(v, float) for v in (*args, *kwargs.values())) else "int32")
    np.testing.assert_array_equal(out.numpy(), expected)


def test_reshape_to_int_shape():
    assert ops.reshape(Tensor(np.ones(6, np.float32)), 6).shape == (6,)
    with pytest.raises(ValueError, match=r"\(6,\).*into \(7,\)"):
        ops.reshape(Tensor(np.ones(6, np.float32)), 7)


@pytest.mark.parametrize("axis", [0, 1, -1])
def test_unstack_gradient(axis):
    x = randn(3, 4, 2)
    pieces = ops.unstack(Tensor(x), axis=axis)
    assert [p.shape for p in pieces] == [np.take(x, 0, axis=axis).shape] * x.shape[axis]
    np.testing.assert_array_equal(np.stack([p.numpy() for p in pieces], axis=axis), x.astype(np.float32))
    check_gradients(lambda t: ops.unstack(t, axis=axis), [x])


def test_unstack_some_pieces_used_and_persistent_tape():
    """Pieces that do not reach the target give zero rows; a second gradient() starts from a fresh buffer."""
    x = Tensor(np.arange(6, dtype=np.float32).reshape(3, 2))
    with GradientTape(persistent=True) as tape:
        tape.watch(x)
        a, b, c = ops.unstack(x)
        first = ops.sum(ops.multiply(a, 2.0))
        second = ops.add(ops.sum(c), ops.sum(ops.multiply(a, c)))
    np.testing.assert_array_equal(tape.gradient(first, x).numpy(), [[2, 2], [0, 0], [0, 0]])
    np.testing.assert_array_equal(tape.gradient(second, x).numpy(), [[4, 5], [0, 0], [1, 2]])
    np.testing.assert_array_equal(tape.gradient(first, x).numpy(), [[2, 2], [0, 0], [0, 0]])


def test_unstack_num_mismatch_error():
    with pytest.raises(ValueError, match=r"num=2.*\(3, 2\).*length 3"):
        ops.unstack(Tensor(np.zeros((3, 2))), num=2)


# Triangles, diagonals, grids, slices and scatters.
@pytest.mark.parametrize("op", ["tril", "triu"])
@pytest.mark.parametrize("shape", [(3, 4), (2, 4, 3), (1, 1)], ids=str)
@pytest.mark.parametrize("k", [-1, 0, 2])
def test_triangles(op, shape, k):
    x = randn(*shape)
    np.testing.assert_array_equal(getattr(ops, op)(x, k).numpy(), getattr(np, op)(x, k).astype(np.float32))
    check_gradients(lambda t: getattr(ops, op)(t, k), [x])
    assert getattr(ops, op)(np.ones((2, 2), np.int32)).dtype == "int32"


def test_triangles_need_a_matrix():
    with pytest.raises(ValueError, match="tril.*rank >= 2"):
        ops.tril(np.ones(3))


@pytest.mark.parametrize("shape, offset, axes", [((3, 4), 0, (0, 1)), ((3, 4), 2, (0, 1)), ((3, 4), -2, (0, 1)),
                                                 ((2, 3, 4, 5), 1, (3, 1)), ((2, 3, 4), -1, (-1, 0)),
                                                 ((3, 4), 7, (0, 1))], ids=str)
def test_diagonal_and_trace(shape, offset, axes):
    x = randn(*shape)
    np.testing.assert_array_equal(ops.diagonal(x, offset, *axes).numpy(),
                                  np.diagonal(x, offset, *axes).astype(np.float32))
    np.testing.assert_allclose(ops.trace(x, offset, *axes).numpy(), np.trace(x, offset, *axes), rtol=1e-5, atol=1e-6)
    check_gradients(lambda t: ops.diagonal(t, offset, *axes), [x])
    check_gradients(lambda t: ops.trace(t, offset, *axes), [x])


@pytest.mark.parametrize("shape, k", [((3,), 0), ((3,), 2), ((2,), -1), ((3, 4), 1), ((4, 3), -2)], ids=str)
def test_diag(shape, k):
    x = randn(*shape)
    np.testing.assert_array_equal(ops.diag(x, k).numpy(), np.diag(x, k).astype(np.float32))
    check_gradients(lambda t: ops.diag(t, k), [x])


def test_diag_and_diagonal_name_bad_ranks():
    with pytest.raises(ValueError, match="diag: needs a 1-D or 2-D"):
        ops.diag(np.ones((2, 2, 2)))
    with pytest.raises(ValueError, match="diagonal: axis1 and axis2 must differ"):
        ops.diagonal(np.ones((2, 2)), 0, 1, 1)


@pytest.mark.parametrize("indexing", ["xy", "ij"])
@pytest.mark.parametrize("count", [1, 2, 3])
def test_meshgrid(indexing, count):
    vectors = [randn(n) for n in (2, 3, 4)[:count]]
    for got, want in zip(ops.meshgrid(*vectors, indexing=indexing), np.meshgrid(*vectors, indexing=indexing)):
        np.testing.assert_array_equal(got.numpy(), want.astype(np.float32))
    check_gradients(lambda *t: ops.meshgrid(*t, indexing=indexing), vectors)
    with pytest.raises(ValueError, match="meshgrid: indexing"):
        ops.meshgrid(*vectors, indexing="ji")


def test_nonzero_ravel_roll_copy_and_stacks():
    x = np.array([[0, 3, 0], [4, 0, 5]], np.float32)
    for got, want in zip(ops.nonzero(x), np.nonzero(x)):
        assert got.dtype == "int32"
        np.testing.assert_array_equal(got.numpy(), want)
    np.testing.assert_array_equal(ops.ravel(x).numpy(), x.ravel())
    for shift, axis in [(1, None), (-2, 1), ((1, 2), (0, 1))]:
        np.testing.assert_array_equal(ops.roll(x, shift, axis).numpy(), np.roll(x, shift, axis))
        check_gradients(lambda t: ops.roll(t, shift, axis), [randn(2, 3)])
    check_gradients(ops.copy, [randn(2, 3)])
    check_gradients(lambda a, b: ops.hstack([a, b]), [randn(2, 3), randn(2, 1)])
    check_gradients(lambda a, b: ops.vstack([a, b]), [randn(3), randn(2, 3)])
    np.testing.assert_array_equal(ops.hstack([np.ones(2), np.zeros(3)]).numpy(), np.hstack([np.ones(2), np.zeros(3)]))
    np.testing.assert_array_equal(ops.vstack([x, x[0]]).numpy(), np.vstack([x, x[0]]))
    np.testing.assert_array_equal(ops.flipud(x).numpy(), np.flipud(x))
    np.testing.assert_array_equal(ops.fliplr(x).numpy(), np.fliplr(x))
    np.testing.assert_array_equal(ops.tri(3, 4, 1).numpy(), np.tri(3, 4, 1))
    assert ops.tri(2).dtype == ops.identity(2).dtype == "float32" and ops.empty_like(x, "int32").dtype == "int32"


def test_slice_and_slice_update():
    x = randn(4, 5, 3)
    np.testing.assert_array_equal(ops.slice(x, (1, 2, 0), (2, 3, 3)).numpy(), x[1:3, 2:5, 0:3].astype(np.float32))
    np.testing.assert_array_equal(ops.slice(x, (1, 0, 1), (-1, 5, 1)).numpy(), x[1:, :, 1:2].astype(np.float32))
    check_gradients(lambda t: ops.slice(t, (1, 2, 0), (2, 3, 3)), [x])
    u = randn(2, 2, 3)
    want = x.copy()
    want[2:4, 1:3, 0:3] = u
    np.testing.assert_allclose(ops.slice_update(x, (2, 1, 0), u).numpy(), want.astype(np.float32))
    check_gradients(lambda t, v: ops.slice_update(t, (2, 1, 0), v), [x, u])
    assert ops.slice_update(np.zeros(3, np.int32), (1,), np.ones(1, np.float32)).dtype == "int32"
    with pytest.raises(ValueError, match="slice: a slice of size 3 at 2 leaves axis 0 of size 4"):
        ops.slice(x, (2, 0, 0), (3, 1, 1))
    with pytest.raises(ValueError, match="slice_update: start_indices"):
        ops.slice_update(x, (0, 0), u)


def test_scatter_accumulates_and_scatter_update_overwrites():
    idx = np.array([[0, 1], [2, 0], [0, 1]])
    values = randn(3)
    want = np.zeros((3, 2))
    np.add.at(want, (idx[:, 0], idx[:, 1]), values)
    np.testing.assert_allclose(ops.scatter(idx, values, (3, 2)).numpy(), want, rtol=1e-6)
    check_gradients(lambda v: ops.scatter(idx, v, (3, 2)), [values])
    rows = randn(2, 4)  # partial indices scatter whole rows
    out = ops.scatter(np.array([[1], [1]]), rows, (3, 4)).numpy()
    np.testing.assert_allclose(out[1], rows.sum(0), rtol=1e-6)
    x = randn(3, 2)
    upd_idx = np.array([[0, 1], [2, 0]])
    want = x.copy()
    want[0, 1], want[2, 0] = 7.0, 8.0
    np.testing.assert_allclose(ops.scatter_update(x, upd_idx, [7.0, 8.0]).numpy(), want.astype(np.float32))
    check_gradients(lambda t, v: ops.scatter_update(t, upd_idx, v), [x, randn(2)])
    with pytest.raises(TypeError, match="scatter: indices must be integers"):
        ops.scatter(np.array([[0.5]]), [1.0], (2,))
    with pytest.raises(ValueError, match="scatter_update: indices of shape"):
        ops.scatter_update(np.zeros(2), np.zeros((1, 3), np.int32), [1.0])


@pytest.mark.gpu
def test_new_shape_ops_on_gpu_match_cpu():
    import dlgpu
    x, u, v = randn(4, 5), randn(2, 2), randn(3)
    idx = np.array([[0, 1], [3, 4], [0, 1]])
    results = []
    for device in ("cpu", "gpu"):
        with dlgpu.device(device):
            xt, ut, vt = (ops.convert_to_tensor(a) for a in (x, u, v))
            with GradientTape() as tape:
                tape.watch([xt, ut, vt])
                outs = [ops.tril(xt, 1), ops.triu(xt, -1), ops.diagonal(xt, 1), ops.diag(vt, -1), ops.diag(xt),
                        ops.trace(xt), ops.roll(xt, 2, 1), ops.slice(xt, (1, 1), (2, 3)),
                        ops.slice_update(xt, (1, 2), ut), ops.scatter(ops.convert_to_tensor(idx), vt, (4, 5)),
                        ops.scatter_update(xt, ops.convert_to_tensor(idx[:2]), vt[:2]), ops.hstack([xt, xt]),
                        ops.vstack([xt, xt[0]])] + ops.meshgrid(vt, xt[0])
                loss = sum(ops.sum(ops.square(o)) for o in outs)
            grads = tape.gradient(loss, [xt, ut, vt])
            results.append([o.numpy() for o in outs + list(ops.nonzero(xt > 0))] + [g.numpy() for g in grads])
    for on_cpu, on_gpu in zip(*results):
        np.testing.assert_allclose(on_gpu, on_cpu, rtol=1e-5, atol=1e-5)


def test_rot90_stacks_splits_and_ranges():
    x = randn(2, 3, 4)
    for k, axes in [(1, (0, 1)), (2, (1, 2)), (-1, (2, 0))]:
        np.testing.assert_array_equal(ops.rot90(x, k, axes).numpy(), np.rot90(x, k, axes).astype(np.float32))
        check_gradients(lambda t: ops.rot90(t, k, axes), [x])
    a, b = randn(3), randn(3, 2)
    np.testing.assert_allclose(ops.column_stack([a, b]).numpy(), np.column_stack([a, b]), rtol=1e-6)
    np.testing.assert_allclose(ops.dstack([a, a]).numpy(), np.dstack([a, a]), rtol=1e-6)
    np.testing.assert_allclose(ops.dstack([b, b]).numpy(), np.dstack([b, b]), rtol=1e-6)
    check_gradients(lambda s, t: ops.column_stack([s, t]), [a, b])
    for sections in (3, [1, 4]):
        for got, want in zip(ops.array_split(randn(7, 2) * 0 + np.arange(7)[:, None], sections),
                             np.array_split(np.arange(7)[:, None] * np.ones((7, 2)), sections)):
            np.testing.assert_array_equal(got.numpy(), want)
    assert [p.shape for p in ops.hsplit(x, 3)] == [(2, 1, 4)] * 3
    assert [p.shape for p in ops.vsplit(x, 2)] == [(1, 3, 4)] * 2
    assert [p.shape for p in ops.dsplit(x, [1])] == [(2, 3, 1), (2, 3, 3)]
    np.testing.assert_allclose(ops.logspace(0, 2, 3).numpy(), [1, 10, 100], rtol=1e-6)
    np.testing.assert_allclose(ops.logspace(0, 3, 4, base=2.0).numpy(), [1, 2, 4, 8], rtol=1e-6)
    np.testing.assert_allclose(ops.geomspace(-1, -8, 4).numpy(), [-1, -2, -4, -8], rtol=1e-5)
    with pytest.raises(ValueError, match="geomspace: start and stop"):
        ops.geomspace(0, 1)
    rows, cols = ops.unravel_index(np.array([1, 5]), (2, 3))
    assert rows.dtype == "int32" and rows.numpy().tolist() == [0, 1] and cols.numpy().tolist() == [1, 2]
    assert ops.is_tensor(ops.ones(2)) and not ops.is_tensor(np.ones(2))
    assert ops.dtype(np.ones(2, np.int32)) == "int32"
