"""kernels/optim.cu (one fused launch over all parameters) through dlgpu.backend.kernel_ops.optim,
against dlgpu.backend.cpu's in-place updates.

Parameter sets mix sizes around the chunk boundary (1, 3, 33, CHUNK - 1, CHUNK, CHUNK + 1 elements, a
0-element tensor) and shapes of 0 to 4 dimensions, and run several steps so the bias corrections and
the momentum carry over.
"""
import numpy as np
import pytest

from dlgpu.backend import cpu
from dlgpu.backend.kernel_ops.optim import CHUNK

SHAPES = [(3, 3, 1, 5), (5,), (1,), (33, 7), (CHUNK + 1,), (0,), (), (CHUNK - 1,), (2, CHUNK // 2)]


def _arrays(rng, shapes, scale=1.0):
    # np.array: a 0-d result of arithmetic is a numpy scalar, which the reference could not update in place
    return [np.array(rng.standard_normal(s) * scale, dtype=np.float32) for s in shapes]


def _dev(kb, arrs):
    return [kb.asarray(a.copy()) for a in arrs]


def _check(kb, got, want, tol):
    for k, (g, w) in enumerate(zip(got, want)):
        np.testing.assert_allclose(kb.asnumpy(g), w, err_msg=f"tensor {k} shape {w.shape}", **tol)


@pytest.mark.parametrize("weight_decay", [0.0, 0.01], ids=["adam", "adamw"])
def test_adam_update(kb, rng, weight_decay):
    params = _arrays(rng, SHAPES)
    ms = [np.zeros_like(p) for p in params]
    vs = [np.zeros_like(p) for p in params]
    d_params, d_ms, d_vs = _dev(kb, params), _dev(kb, ms), _dev(kb, vs)
    for step in range(1, 4):
        grads = _arrays(rng, SHAPES, 0.1)
        cpu.adam_update(params, grads, ms, vs, 1e-2, 0.9, 0.999, 1e-7, step, weight_decay)
        kb.lib.adam_update(d_params, _dev(kb, grads), d_ms, d_vs, 1e-2, 0.9, 0.999, 1e-7, step, weight_decay)
    tol = dict(rtol=1e-5, atol=1e-6)
    _check(kb, d_params, params, tol)
    _check(kb, d_ms, ms, tol)
    _check(kb, d_vs, vs, tol)


@pytest.mark.parametrize("momentum,nesterov", [(0.0, False), (0.9, False), (0.9, True)],
                         ids=["plain", "momentum", "nesterov"])
@pytest.mark.parametrize("weight_decay", [0.0, 0.05], ids=["nowd", "wd"])
def test_sgd_update(kb, rng, momentum, nesterov, weight_decay):
    params = _arrays(rng, SHAPES)
    vels = [np.zeros_like(p) for p in params] if momentum else None
    d_params = _dev(kb, params)
    d_vels = _dev(kb, vels) if momentum else None
    for _ in range(3):
        grads = _arrays(rng, SHAPES)
        cpu.sgd_update(params, grads, vels, 0.1, momentum, nesterov, weight_decay)
        kb.lib.sgd_update(d_params, _dev(kb, grads), d_vels, 0.1, momentum, nesterov, weight_decay)
    tol = dict(rtol=1e-6, atol=1e-6)
    _check(kb, d_params, params, tol)
    if momentum:
        _check(kb, d_vels, vels, tol)


def test_optim_updates_in_place_and_reuses_the_table(kb, rng):
    p = [kb.asarray(np.ones(5, np.float32)), kb.asarray(np.ones((2, 2), np.float32))]
    ids = [id(a) for a in p]
    g = [kb.asarray(np.ones(5, np.float32)), kb.asarray(np.ones((2, 2), np.float32))]
    from dlgpu.backend.kernel_ops import optim
    kb.lib.sgd_update(p, g, None, 0.5, 0.0, False)
    kb.lib.sgd_update(p, g, None, 0.5, 0.0, False)
    assert [id(a) for a in p] == ids
    np.testing.assert_array_equal(kb.asnumpy(p[0]), np.zeros(5, np.float32))
    assert len(optim._tables[kb.lib]) >= 1


def test_optim_empty_lists(kb):
    kb.lib.sgd_update([], [], None, 0.1, 0.0, False)
    kb.lib.adam_update([], [], [], [], 1e-3, 0.9, 0.999, 1e-7, 1)


def test_optim_errors_name_the_op(kb):
    p = kb.asarray(np.zeros((4, 4), np.float32))
    g = kb.asarray(np.zeros((4, 4), np.float32))
    with pytest.raises(TypeError, match=r"sgd_update: params\[0\] must be C-contiguous"):
        kb.lib.sgd_update([p.T], [g], None, 0.1, 0.0, False)
    with pytest.raises(TypeError, match=r"adam_update: grads\[0\] must be float32"):
        kb.lib.adam_update([p], [g.astype(np.float64)], [p.copy()], [p.copy()], 1e-3, 0.9, 0.999, 1e-7, 1)
    with pytest.raises(ValueError, match="adam_update: params and vs must have the same length"):
        kb.lib.adam_update([p], [g], [p.copy()], [], 1e-3, 0.9, 0.999, 1e-7, 1)
    with pytest.raises(ValueError, match=r"sgd_update: grads\[0\].shape=\(16,\) differs"):
        kb.lib.sgd_update([p], [g.reshape(16)], None, 0.1, 0.0, False)
    with pytest.raises(ValueError, match="needs velocities"):
        kb.lib.sgd_update([p], [g], None, 0.1, 0.9, False)
    with pytest.raises(ValueError, match="step counts from 1"):
        kb.lib.adam_update([p], [g], [p.copy()], [p.copy()], 1e-3, 0.9, 0.999, 1e-7, 0)
