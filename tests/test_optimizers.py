"""Optimizers: trajectories against torch.optim (hyperparameter mapping noted per case) and against the
Keras update rules in numpy; learning-rate handling, clipping, weight decay, errors; schedules."""

import math
import warnings

import numpy as np
import pytest

from dlgpu import Variable, optimizers
from dlgpu.optimizers import schedules

rng = np.random.default_rng(7)
SHAPES = [(3, 4), (4,), (2, 3, 2)]
W0 = [rng.normal(size=s).astype(np.float32) for s in SHAPES]
GRADS = [[rng.normal(size=s).astype(np.float32) for s in SHAPES] for _ in range(5)]


def run_ours(opt, steps=GRADS):
    variables = [Variable(w.copy(), name=f"w{i}") for i, w in enumerate(W0)]
    for grads in steps:
        opt.apply([g.copy() for g in grads], variables)
    return [v.numpy() for v in variables]


def run_torch(make):
    torch = pytest.importorskip("torch")
    params = [torch.tensor(w.copy(), requires_grad=True) for w in W0]
    opt = make(params)
    for grads in GRADS:
        for p, g in zip(params, grads):
            p.grad = torch.tensor(g)
        opt.step()
    return [p.detach().numpy() for p in params]


def close(a, b, rtol=1e-4, atol=1e-6):
    for x, y in zip(a, b):
        np.testing.assert_allclose(x, y, rtol=rtol, atol=atol)


# Mapping: Keras Adam folds the bias corrections into the step size and adds eps to sqrt(v) (not to
# sqrt(v_hat) as torch does), so Keras eps = torch eps * sqrt(1 - b2^t); with eps small against sqrt(v)
# the trajectories agree to float32 precision.  Keras RMSprop/Adagrad put eps inside the square root
# (torch: outside), so we compare with eps tiny on both sides; Keras RMSprop's rho is torch's alpha and
# Keras Adagrad's initial_accumulator_value (0.1 by default) must be passed to torch explicitly.
TORCH_CASES = {
    "adam": (lambda: optimizers.Adam(0.01), lambda t: lambda p: t.optim.Adam(p, lr=0.01, eps=1e-7)),
    "adam_amsgrad": (lambda: optimizers.Adam(0.01, amsgrad=True),
                     lambda t: lambda p: t.optim.Adam(p, lr=0.01, eps=1e-7, amsgrad=True)),
    "adamw": (lambda: optimizers.AdamW(0.01, weight_decay=0.1),
              lambda t: lambda p: t.optim.AdamW(p, lr=0.01, eps=1e-7, weight_decay=0.1)),
    "sgd": (lambda: optimizers.SGD(0.1), lambda t: lambda p: t.optim.SGD(p, lr=0.1)),
    "sgd_momentum": (lambda: optimizers.SGD(0.1, momentum=0.9),
                     lambda t: lambda p: t.optim.SGD(p, lr=0.1, momentum=0.9)),
    "sgd_nesterov": (lambda: optimizers.SGD(0.1, momentum=0.9, nesterov=True),
                     lambda t: lambda p: t.optim.SGD(p, lr=0.1, momentum=0.9, nesterov=True)),
    "rmsprop": (lambda: optimizers.RMSprop(0.01, rho=0.9, epsilon=1e-12),
                lambda t: lambda p: t.optim.RMSprop(p, lr=0.01, alpha=0.9, eps=0.0)),
    "rmsprop_centered_momentum": (
        lambda: optimizers.RMSprop(0.01, rho=0.8, momentum=0.5, centered=True, epsilon=1e-12),
        lambda t: lambda p: t.optim.RMSprop(p, lr=0.01, alpha=0.8, eps=0.0, momentum=0.5, centered=True)),
    "adagrad": (lambda: optimizers.Adagrad(0.1, epsilon=1e-12),
                lambda t: lambda p: t.optim.Adagrad(p, lr=0.1, initial_accumulator_value=0.1, eps=0.0)),
}


@pytest.mark.parametrize("case", sorted(TORCH_CASES))
def test_trajectory_matches_torch(case):
    torch = pytest.importorskip("torch")
    make_ours, make_torch = TORCH_CASES[case]
    close(run_ours(make_ours()), run_torch(make_torch(torch)))


def keras_reference(kind, lr, steps, **hp):
    """The Keras update rules written out in float64 numpy."""
    ws = [w.astype(np.float64) for w in W0]
    state = [dict(m=np.zeros_like(w), v=np.zeros_like(w), a=np.zeros_like(w) + hp.get("init", 0.0),
                  mom=np.zeros_like(w), avg=np.zeros_like(w)) for w in ws]
    for t, grads in enumerate(steps, start=1):
        for w, g, s in zip(ws, grads, state):
            g = g.astype(np.float64)
            if kind == "adam":
                b1, b2, eps = 0.9, 0.999, hp["eps"]
                s["m"] += (g - s["m"]) * (1 - b1)
                s["v"] += (g * g - s["v"]) * (1 - b2)
                alpha = lr * math.sqrt(1 - b2 ** t) / (1 - b1 ** t)
                w -= alpha * s["m"] / (np.sqrt(s["v"]) + eps)
            elif kind == "rmsprop":
                s["v"] = 0.9 * s["v"] + 0.1 * g * g
                w -= lr * g / np.sqrt(s["v"] + hp["eps"])
            elif kind == "adagrad":
                s["a"] += g * g
                w -= lr * g / np.sqrt(s["a"] + hp["eps"])
    return ws


@pytest.mark.parametrize("kind, opt, hp", [
    ("adam", lambda: optimizers.Adam(0.01, epsilon=0.5), {"eps": 0.5}),  # a large eps shows its placement
    ("rmsprop", lambda: optimizers.RMSprop(0.01, epsilon=0.3), {"eps": 0.3}),
    ("adagrad", lambda: optimizers.Adagrad(0.1, epsilon=0.3), {"eps": 0.3, "init": 0.1}),
])
def test_keras_epsilon_placement(kind, opt, hp):
    lr = {"adam": 0.01, "rmsprop": 0.01, "adagrad": 0.1}[kind]
    close(run_ours(opt()), keras_reference(kind, lr, GRADS, **hp), rtol=1e-5)


def test_keras_defaults():
    assert optimizers.Adam().get_config()["epsilon"] == 1e-7
    assert math.isclose(float(optimizers.Adam().learning_rate), 0.001, rel_tol=1e-6)
    assert optimizers.AdamW().weight_decay == 0.004
    assert math.isclose(float(optimizers.SGD().learning_rate), 0.01, rel_tol=1e-6)
    assert optimizers.RMSprop().rho == 0.9 and optimizers.Adagrad().initial_accumulator_value == 0.1


def test_adam_and_sgd_call_the_backend_primitive_once_per_step(monkeypatch):
    from dlgpu.backend import cpu
    calls = []
    for name in ("adam_update", "adam_update_packed", "sgd_update"):
        original = getattr(cpu, name)

        def spy(*args, _original=original, _name=name, **kw):
            calls.append((_name, len(args[0])))
            return _original(*args, **kw)
        monkeypatch.setattr(cpu, name, spy)
    run_ours(optimizers.Adam(), GRADS[:2])  # three small parameters: their slots are packed (one call)
    monkeypatch.setattr(optimizers.adam, "PACK_BELOW", 0)
    run_ours(optimizers.Adam(), GRADS[:2])
    run_ours(optimizers.SGD(momentum=0.5), GRADS[:2])
    assert calls == [("adam_update_packed", 3)] * 2 + [("adam_update", 3)] * 2 + [("sgd_update", 3)] * 2


@pytest.mark.parametrize("weight_decay", [None, 0.01])
def test_packed_slots_update_exactly_as_separate_ones(monkeypatch, weight_decay):
    packed_opt = optimizers.Adam(learning_rate=0.01, weight_decay=weight_decay)
    packed = run_ours(packed_opt, GRADS)
    assert packed_opt._packed is not None
    flat_m = packed_opt._packed[1]
    assert all(slot.data.base is flat_m for slot in packed_opt._momentums)
    monkeypatch.setattr(optimizers.adam, "PACK_BELOW", 0)
    separate_opt = optimizers.Adam(learning_rate=0.01, weight_decay=weight_decay)
    separate = run_ours(separate_opt, GRADS)
    assert separate_opt._packed is None
    for a, b in zip(packed, separate):
        np.testing.assert_array_equal(a, b)
    for a, b in zip(packed_opt.variables, separate_opt.variables):
        np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_packing_survives_a_replaced_slot_and_a_subset_of_variables():
    opt = optimizers.Adam(learning_rate=0.01)
    variables = [Variable(w.copy(), name=f"w{i}") for i, w in enumerate(W0)]
    opt.apply([g.copy() for g in GRADS[0]], variables)
    replaced = opt._momentums[1]
    replaced.data = replaced.data.copy()  # something swapped the array: packing is redone, values kept
    kept = replaced.numpy().copy()
    opt.apply([g.copy() for g in GRADS[1]], variables)
    assert opt._momentums[1].data.base is opt._packed[1]
    assert not np.array_equal(opt._momentums[1].numpy(), kept)  # and it was updated
    before = variables[0].numpy().copy()
    opt.apply([GRADS[2][1].copy()], [variables[1]])  # only one variable: the separate path
    np.testing.assert_array_equal(variables[0].numpy(), before)


def test_learning_rate_is_settable_and_float_like():
    opt = optimizers.Adam(learning_rate=0.01)
    assert math.isclose(float(opt.learning_rate), 0.01, rel_tol=1e-6)
    opt.learning_rate = 0.5
    assert math.isclose(float(opt.learning_rate), 0.5) and opt.get_config()["learning_rate"] == 0.5
    opt.learning_rate.assign(0.25)
    ws = run_ours(opt, [[np.ones(s, np.float32) for s in SHAPES]])
    # first Adam step moves every weight by lr (m/sqrt(v) = 1)
    np.testing.assert_allclose(ws[0], W0[0] - 0.25, rtol=1e-5, atol=1e-5)


def test_schedule_drives_the_rate_and_is_not_settable():
    sched = schedules.PiecewiseConstantDecay([1], [1.0, 0.1])
    opt = optimizers.SGD(learning_rate=sched)
    ones = [[np.ones(s, np.float32) for s in SHAPES]] * 3
    ws = run_ours(opt, ones)
    np.testing.assert_allclose(ws[0], W0[0] - (1.0 + 1.0 + 0.1), rtol=1e-5)  # steps 0, 1 use 1.0; step 2 uses 0.1
    assert int(opt.iterations) == 3 and math.isclose(float(opt.learning_rate), 0.1, rel_tol=1e-6)
    with pytest.raises(TypeError, match="not settable"):
        opt.learning_rate = 0.3
    back = optimizers.deserialize(optimizers.serialize(opt))
    assert isinstance(back._schedule, schedules.PiecewiseConstantDecay)


def test_clipping():
    g = [np.full(s, 3.0, np.float32) for s in SHAPES]
    ws = run_ours(optimizers.SGD(1.0, clipvalue=0.5), [g])
    np.testing.assert_allclose(ws[1], W0[1] - 0.5)
    ws = run_ours(optimizers.SGD(1.0, clipnorm=1.0), [g])
    np.testing.assert_allclose(ws[1], W0[1] - 3.0 / np.sqrt(9 * 4), rtol=1e-6)
    total = math.sqrt(sum(9 * np.prod(s) for s in SHAPES))
    ws = run_ours(optimizers.SGD(1.0, global_clipnorm=2.0), [g])
    np.testing.assert_allclose(ws[2], W0[2] - 3.0 * 2.0 / total, rtol=1e-6)
    with pytest.raises(ValueError, match="Only one of"):
        optimizers.SGD(clipnorm=1.0, clipvalue=1.0)


def test_weight_decay_and_exclusion():
    opt = optimizers.SGD(0.1, weight_decay=0.5)
    variables = [Variable(np.ones(3, np.float32), name="kernel"), Variable(np.ones(3, np.float32), name="bias")]
    opt.exclude_from_weight_decay(var_names=["bias"])
    opt.apply([np.zeros(3, np.float32)] * 2, variables)
    np.testing.assert_allclose(variables[0].numpy(), 1 - 0.1 * 0.5)
    np.testing.assert_allclose(variables[1].numpy(), 1.0)
    adamw = optimizers.AdamW(0.1, weight_decay=0.5)
    adamw.exclude_from_weight_decay(var_list=[variables[1]])
    adamw.apply([np.zeros(3, np.float32)] * 2, variables)
    np.testing.assert_allclose(variables[0].numpy(), 0.95 * 0.95, rtol=1e-6)
    np.testing.assert_allclose(variables[1].numpy(), 1.0)


def test_none_gradients_are_skipped_with_a_warning():
    opt = optimizers.Adam()
    a, b = Variable(np.ones(2, np.float32), name="a"), Variable(np.ones(2, np.float32), name="b")
    with pytest.warns(UserWarning, match=r"Gradients do not exist for variables \['b'\]"):
        opt.apply_gradients([(np.ones(2, np.float32), a), (None, b)])
    np.testing.assert_array_equal(b.numpy(), 1.0)
    assert int(opt.iterations) == 1
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        opt.apply([None, None], [a, b])  # all missing: nothing happens, no second warning
    assert int(opt.iterations) == 1


def test_gradient_shape_mismatch_names_the_variable():
    opt = optimizers.SGD()
    v = Variable(np.ones((2, 3), np.float32), name="dense/kernel")
    with pytest.raises(ValueError, match=r"'dense/kernel'.*\(3, 2\).*\(2, 3\)"):
        opt.apply([np.ones((3, 2), np.float32)], [v])


def test_get_and_unknown_names():
    assert isinstance(optimizers.get("adam"), optimizers.Adam)
    assert isinstance(optimizers.get("RMSprop"), optimizers.RMSprop)
    assert isinstance(optimizers.get("adamw"), optimizers.AdamW)
    with pytest.raises(ValueError, match=r"Unknown optimizer: 'adamm'.*Did you mean 'adam'.*Valid:.*SGD"):
        optimizers.get("adamm")
    with pytest.raises(ValueError, match="`lr` is no longer supported"):
        optimizers.Adam(lr=0.1)


def test_config_round_trip_and_variables():
    opt = optimizers.SGD(0.05, momentum=0.9, nesterov=True, clipnorm=1.0, name="s")
    back = optimizers.deserialize(optimizers.serialize(opt))
    assert back.get_config() == opt.get_config()
    run_ours(opt, GRADS[:1])
    assert len(opt.variables) == 2 + len(SHAPES)  # iterations, learning_rate, one momentum per weight
    store = {}
    opt.save_own_variables(store)
    fresh = optimizers.SGD(0.05, momentum=0.9, nesterov=True)
    fresh.build([Variable(w) for w in W0])
    fresh.load_own_variables(store)
    assert int(fresh.iterations) == 1
    np.testing.assert_array_equal(fresh.variables[-1].numpy(), opt.variables[-1].numpy())


# -- schedules ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("step", [0, 1, 7, 50, 120])
def test_schedules_closed_form(step):
    f = lambda s: float(s)  # noqa: E731
    assert math.isclose(f(schedules.ExponentialDecay(0.1, 10, 0.5)(step)), 0.1 * 0.5 ** (step / 10), rel_tol=1e-6)
    assert math.isclose(f(schedules.ExponentialDecay(0.1, 10, 0.5, staircase=True)(step)),
                        0.1 * 0.5 ** (step // 10), rel_tol=1e-6)
    assert math.isclose(f(schedules.InverseTimeDecay(0.1, 10, 0.5)(step)), 0.1 / (1 + 0.5 * step / 10), rel_tol=1e-6)
    assert math.isclose(f(schedules.InverseTimeDecay(0.1, 10, 0.5, staircase=True)(step)),
                        0.1 / (1 + 0.5 * (step // 10)), rel_tol=1e-6)
    s = min(step, 100)
    assert math.isclose(f(schedules.PolynomialDecay(0.1, 100, 0.01, power=2)(step)),
                        (0.1 - 0.01) * (1 - s / 100) ** 2 + 0.01, rel_tol=1e-6)
    cos = lambda s, peak: peak * (0.9 * 0.5 * (1 + math.cos(math.pi * s / 100)) + 0.1)  # noqa: E731
    assert math.isclose(f(schedules.CosineDecay(0.1, 100, alpha=0.1)(step)), cos(min(step, 100), 0.1), rel_tol=1e-5)
    warm = schedules.CosineDecay(0.0, 100, alpha=0.1, warmup_target=0.2, warmup_steps=10)
    expected = 0.2 * step / 10 if step < 10 else cos(min(step - 10, 100), 0.2)
    assert math.isclose(f(warm(step)), expected, rel_tol=1e-5, abs_tol=1e-9)
    piecewise = schedules.PiecewiseConstantDecay([5, 60], [1.0, 0.5, 0.1])
    assert f(piecewise(step)) == pytest.approx(1.0 if step <= 5 else 0.5 if step <= 60 else 0.1)


def test_schedule_config_and_errors():
    sched = schedules.CosineDecay(0.1, 100, alpha=0.1, warmup_target=0.2, warmup_steps=10)
    back = schedules.deserialize(schedules.serialize(sched))
    assert back.get_config() == sched.get_config()
    with pytest.raises(ValueError, match="length of boundaries"):
        schedules.PiecewiseConstantDecay([1, 2], [1.0])


@pytest.mark.parametrize("schedule", ["ExponentialDecay", "InverseTimeDecay"])
def test_rate_decays_need_positive_decay_steps(schedule):
    from dlgpu.optimizers import schedules
    with pytest.raises(ValueError, match="decay_steps"):
        getattr(schedules, schedule)(0.1, 0, 0.5)
