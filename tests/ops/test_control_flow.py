"""dlgpu.ops control flow (cond, switch, while_loop, fori_loop, scan, map, vectorized_map, associative_scan):
eager semantics as Keras's numpy backend gives them, and gradients through the traced functions."""

import numpy as np
import pytest

from dlgpu import ops
from dlgpu.autograd import GradientTape

from helpers import check_gradients

rng = np.random.default_rng(5)


def randn(*shape):
    return rng.standard_normal(shape)


def test_cond_and_switch_pick_a_branch():
    x = ops.convert_to_tensor(np.array([1.0, 2.0]))
    assert ops.cond(ops.sum(x) > 2, lambda: 1, lambda: 2) == 1
    assert ops.cond(False, lambda: 1, lambda: 2) == 2
    check_gradients(lambda t: ops.cond(ops.sum(t) > 0, lambda: ops.square(t), lambda: ops.exp(t)),
                    [np.abs(randn(3)) + 0.1])
    branches = [lambda a: a + 1, lambda a: a * 10, lambda a: a - 1]
    assert [ops.switch(i, branches, 1) for i in (-3, 0, 1, 2, 7)] == [2, 2, 10, 0, 0]
    assert ops.switch(ops.convert_to_tensor(np.array(1)), branches, 2) == 20
    with pytest.raises(ValueError, match="cond: the predicate must be a single value"):
        ops.cond(x > 0, lambda: 1, lambda: 2)


def test_while_loop_and_fori_loop():
    i, total = ops.while_loop(lambda i, t: i < 5, lambda i, t: (i + 1, t + i), (0, 0))
    assert (i, total) == (5, 10)
    assert ops.while_loop(lambda v: v < 100, lambda v: v * 2, 3) == 192
    assert ops.while_loop(lambda v: True, lambda v: v + 1, 0, maximum_iterations=4) == 4
    x = ops.convert_to_tensor(np.array(1.0))
    out = ops.while_loop(lambda v: ops.less(v, 10.0), lambda v: [v * 3.0], [x])
    assert isinstance(out, tuple) and float(out[0].numpy()) == 27.0
    assert ops.fori_loop(0, 4, lambda i, v: v + i, 10) == 16
    check_gradients(lambda t: ops.fori_loop(0, 3, lambda i, v: ops.sin(v) * t, t), [randn(4)])
    check_gradients(lambda t: ops.while_loop(lambda k, v: k < 3, lambda k, v: (k + 1, v * t), (0, t))[1], [randn(4)])


def test_scan_matches_a_python_loop_and_differentiates():
    xs, init = randn(5, 3), randn(3)

    def step(carry, x):
        carry = ops.tanh(carry * 0.5 + x)
        return carry, carry * 2.0

    carry, ys = ops.scan(step, init, xs)
    want, c = [], init
    for x in xs:
        c = np.tanh(c * 0.5 + x)
        want.append(2 * c)
    np.testing.assert_allclose(carry.numpy(), c, rtol=1e-5)
    np.testing.assert_allclose(ys.numpy(), np.stack(want), rtol=1e-5)
    check_gradients(lambda i, s: list(ops.scan(step, i, s)), [init, xs])
    _, rev = ops.scan(step, init, xs, reverse=True)
    _, flipped = ops.scan(step, init, xs[::-1].copy())
    np.testing.assert_allclose(rev.numpy(), flipped.numpy()[::-1], rtol=1e-6)


def test_scan_structures_length_and_none_outputs():
    xs = {"a": np.arange(4.0), "b": (np.ones((4, 2)), np.zeros(4))}
    carry, ys = ops.scan(lambda c, x: (c + x["a"], {"s": x["b"][0] * x["a"], "t": x["b"][1]}), 0.0, xs)
    assert float(carry.numpy()) == 6.0 and ys["s"].shape == (4, 2) and ys["t"].shape == (4,)
    carry, ys = ops.scan(lambda c, _: (c * 2, None), 1, length=3)
    assert carry == 8 and ys is None
    with pytest.raises(ValueError, match="scan: the leading axes"):
        ops.scan(lambda c, x: (c, x), 0, (np.ones(3), np.ones(4)))
    with pytest.raises(ValueError, match="scan: needs xs or length"):
        ops.scan(lambda c, x: (c, x), 0)
    with pytest.raises(ValueError, match="scan: unroll"):
        ops.scan(lambda c, x: (c, x), 0, np.ones(2), unroll=0)


def test_map_and_vectorized_map():
    x = randn(4, 3)
    np.testing.assert_allclose(ops.map(lambda r: ops.sum(r * r), x).numpy(), (x * x).sum(1), rtol=1e-5)
    out = ops.map(lambda d: (d["p"] + 1, d["q"]), {"p": x, "q": np.arange(4)})
    assert out[0].shape == (4, 3) and out[1].numpy().tolist() == [0, 1, 2, 3]
    np.testing.assert_allclose(ops.vectorized_map(lambda r: ops.outer(r, r), x).numpy(),
                               np.einsum("bi,bj->bij", x, x), rtol=1e-5)
    pair = ops.vectorized_map(lambda p: p[0] * p[1], (x, x))
    np.testing.assert_allclose(pair.numpy(), x * x, rtol=1e-5)
    check_gradients(lambda t: ops.map(lambda r: ops.logsumexp(r), t), [x])
    check_gradients(lambda t, u: ops.vectorized_map(lambda p: ops.dot(p[0], p[1]), [t, u]), [x, randn(4, 3)])


@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("axis", [0, 1])
def test_associative_scan_cumulative_sum_and_max(reverse, axis):
    x = randn(3, 4)
    flip = (lambda a: np.flip(a, axis)) if reverse else (lambda a: a)
    np.testing.assert_allclose(ops.associative_scan(ops.add, x, reverse=reverse, axis=axis).numpy(),
                               flip(np.cumsum(flip(x), axis)), rtol=1e-5)
    np.testing.assert_allclose(ops.associative_scan(ops.maximum, x, reverse=reverse, axis=axis).numpy(),
                               flip(np.maximum.accumulate(flip(x), axis)), rtol=1e-6)
    check_gradients(lambda t: ops.associative_scan(ops.multiply, t, reverse=reverse, axis=axis), [x])


@pytest.mark.gpu
def test_control_flow_on_gpu_match_cpu():
    import dlgpu
    xs, init = randn(5, 3), randn(3)
    results = []
    for device in ("cpu", "gpu"):
        with dlgpu.device(device):
            xt, it = ops.convert_to_tensor(xs), ops.convert_to_tensor(init)
            with GradientTape() as tape:
                tape.watch([xt, it])
                carry, ys = ops.scan(lambda c, x: (ops.tanh(c + x), c * x), it, xt)
                outs = [carry, ys, ops.map(ops.sum, xt), ops.vectorized_map(lambda p: p[0] * p[1], [xt, xt]),
                        ops.associative_scan(ops.add, xt, axis=1),
                        ops.cond(ops.sum(it) > 0, lambda: it * 2.0, lambda: it - 1.0),
                        ops.while_loop(lambda v: ops.sum(v) < 50.0, lambda v: v + 1.0, ops.abs(it)),
                        ops.fori_loop(0, 3, lambda i, v: v * it, it)]
                loss = sum(ops.sum(o) for o in outs)
            grads = tape.gradient(loss, [xt, it])
            results.append([o.numpy() for o in outs] + [g.numpy() for g in grads])
    for on_cpu, on_gpu in zip(*results):
        np.testing.assert_allclose(on_gpu, on_cpu, rtol=1e-5, atol=1e-5)
