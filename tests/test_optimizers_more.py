"""Nadam, Adamax, Adadelta, Lion, Ftrl, Adafactor: trajectories against torch.optim where torch computes the
same rule (mapping noted per case) and against Keras 3's update equations transcribed in float64 numpy;
weight decay, clipping and schedules with each; config, names and errors; fit, save, load and resume;
the GPU against the CPU."""

import math

import numpy as np
import pytest

import dlgpu
from dlgpu import Variable, layers, losses, optimizers
from dlgpu.backend import device as _device
from dlgpu.models import load_model
from dlgpu.optimizers import schedules

from helpers import tiny_classification_data, tiny_mlp

rng = np.random.default_rng(11)
SHAPES = [(3, 4), (4,), (2, 3, 2)]  # rank 2, 1 and 3: Adafactor factors the first and last, not the second
W0 = [rng.normal(size=s).astype(np.float32) for s in SHAPES]
GRADS = [[rng.normal(size=s).astype(np.float32) for s in SHAPES] for _ in range(6)]
NAMES = ["Nadam", "Adamax", "Adadelta", "Lion", "Ftrl", "Adafactor", "Lamb"]


def run_ours(opt, steps=GRADS, device=None):
    with dlgpu.device(device or "cpu"):
        variables = [Variable(w.copy(), name=f"w{i}") for i, w in enumerate(W0)]
        for grads in steps:
            opt.apply([_device.to_device(g.copy(), variables[0].device) for g in grads], variables)
    return [v.numpy() for v in variables]


def run_torch(make, steps=GRADS):
    torch = pytest.importorskip("torch")
    params = [torch.tensor(w.copy(), requires_grad=True) for w in W0]
    opt = make(torch, params)
    for grads in steps:
        for p, g in zip(params, grads):
            p.grad = torch.tensor(g)
        opt.step()
    return [p.detach().numpy() for p in params]


def assert_same_path(ours, reference, rtol=1e-4, atol=1e-6):
    """The displacements from W0 agree (comparing only the end points would hide a small step's error)."""
    for w0, a, b in zip(W0, ours, reference):
        assert a.dtype == np.float32
        np.testing.assert_allclose(a - w0, np.asarray(b, np.float64) - w0, rtol=rtol, atol=atol)


# -- Keras 3's equations (keras/src/optimizers/<name>.py), float64 ------------------------------------

def keras_reference(kind, lr, steps=GRADS, weight_decay=None, **hp):
    """``lr`` a float or a function of the step index (0-based, as schedules are called)."""
    ws = [w.astype(np.float64) for w in W0]
    state = [{} for _ in ws]
    u_product = 1.0
    for t, grads in enumerate(steps, start=1):
        rate = float(lr(t - 1)) if callable(lr) else lr
        if weight_decay:  # Keras: before the update, p -= p * wd * lr
            ws = [w - w * weight_decay * rate for w in ws]
        if kind == "nadam":
            b1, b2, eps = hp.get("beta_1", 0.9), hp.get("beta_2", 0.999), hp.get("epsilon", 1e-7)
            u_t = b1 * (1 - 0.5 * 0.96 ** t)
            u_next = b1 * (1 - 0.5 * 0.96 ** (t + 1))
            u_product *= u_t
        for i, (g, s) in enumerate(zip(grads, state)):
            g, w = g.astype(np.float64), ws[i]
            zeros = np.zeros_like(w)
            if kind == "nadam":
                m = s["m"] = s.get("m", zeros) + (g - s.get("m", zeros)) * (1 - b1)
                v = s["v"] = s.get("v", zeros) + (g * g - s.get("v", zeros)) * (1 - b2)
                m_hat = u_next * m / (1 - u_product * u_next) + (1 - u_t) * g / (1 - u_product)
                w = w - m_hat * rate / (np.sqrt(v / (1 - b2 ** t)) + eps)
            elif kind == "adamax":
                b1, b2, eps = hp.get("beta_1", 0.9), hp.get("beta_2", 0.999), hp.get("epsilon", 1e-7)
                m = s["m"] = s.get("m", zeros) + (g - s.get("m", zeros)) * (1 - b1)
                u = s["u"] = np.maximum(b2 * s.get("u", zeros), np.abs(g))
                w = w - rate * m / ((1 - b1 ** t) * (u + eps))
            elif kind == "adadelta":
                rho, eps = hp.get("rho", 0.95), hp.get("epsilon", 1e-7)
                acc_g = s["g"] = rho * s.get("g", zeros) + (1 - rho) * g * g
                delta = -np.sqrt(s.get("d", zeros) + eps) * g / np.sqrt(acc_g + eps)
                s["d"] = rho * s.get("d", zeros) + (1 - rho) * delta * delta
                w = w + rate * delta
            elif kind == "lion":
                b1, b2 = hp.get("beta_1", 0.9), hp.get("beta_2", 0.99)
                m = s.get("m", zeros)
                w = w - rate * np.sign(m * b1 + g * (1 - b1))
                s["m"] = m * b2 + g * (1 - b2)
            elif kind == "lamb":
                b1, b2, eps = hp.get("beta_1", 0.9), hp.get("beta_2", 0.999), hp.get("epsilon", 1e-7)
                m = s["m"] = s.get("m", zeros) + (g - s.get("m", zeros)) * (1 - b1)
                v = s["v"] = s.get("v", zeros) + (g * g - s.get("v", zeros)) * (1 - b2)
                u = (m / (1 - b1 ** t)) / (np.sqrt(v / (1 - b2 ** t)) + eps)
                w_norm, u_norm = np.linalg.norm(w), np.linalg.norm(u)
                w = w - (w_norm / u_norm if w_norm > 0 and u_norm > 0 else 1.0) * rate * u
            elif kind == "ftrl":
                power, l1 = hp.get("learning_rate_power", -0.5), hp.get("l1_regularization_strength", 0.0)
                l2 = hp.get("l2_regularization_strength", 0.0) + hp.get("beta", 0.0) / (2 * rate)
                shrinkage = hp.get("l2_shrinkage_regularization_strength", 0.0)
                acc = s.get("n", zeros + hp.get("initial_accumulator_value", 0.1))
                z = s.get("z", zeros)
                new_acc = acc + g * g
                z = s["z"] = z + (g + 2 * shrinkage * w) - (new_acc ** -power - acc ** -power) / rate * w
                quadratic = new_acc ** -power / rate + 2 * l2
                w = (np.clip(z, -l1, l1) - z) / quadratic
                s["n"] = new_acc
            elif kind == "adafactor":
                decay, eps1 = hp.get("beta_2_decay", -0.8), hp.get("epsilon_1", 1e-30)
                eps2, clip = hp.get("epsilon_2", 1e-3), hp.get("clip_threshold", 1.0)
                step_lr = min(rate, 1 / math.sqrt(t)) if not callable(lr) and hp.get("relative_step", True) \
                    else rate
                rho_t = min(step_lr, 1 / math.sqrt(t))
                alpha_t = max(eps2, np.sqrt(np.mean(w * w))) * rho_t
                square = g * g + eps1
                beta_2_t = 1 - t ** decay
                if w.ndim >= 2:
                    r = s["r"] = beta_2_t * s.get("r", 0.0) + (1 - beta_2_t) * square.mean(axis=-1)
                    c = s["c"] = beta_2_t * s.get("c", 0.0) + (1 - beta_2_t) * square.mean(axis=-2)
                    v = (r / r.mean(axis=-1, keepdims=True))[..., None] * c[..., None, :]
                else:
                    v = s["v"] = beta_2_t * s.get("v", zeros) + (1 - beta_2_t) * square
                u = g / np.sqrt(v)
                u = u / max(1.0, np.sqrt(np.mean(u * u)) / clip)
                w = w - alpha_t * u
            ws[i] = w
    return ws


# (our optimizer, the reference's kind, lr and hyperparameters)
KERAS_CASES = {
    "nadam": (lambda: optimizers.Nadam(0.01), "nadam", 0.01, {}),
    "nadam_betas": (lambda: optimizers.Nadam(0.02, beta_1=0.8, beta_2=0.9, epsilon=0.1), "nadam", 0.02,
                    {"beta_1": 0.8, "beta_2": 0.9, "epsilon": 0.1}),
    # a large eps shows where it goes (Keras: added to u; torch: added to |g| inside the max)
    "adamax_eps": (lambda: optimizers.Adamax(0.01, epsilon=0.5), "adamax", 0.01, {"epsilon": 0.5}),
    "adadelta": (lambda: optimizers.Adadelta(1.0, rho=0.9, epsilon=1e-3), "adadelta", 1.0,
                 {"rho": 0.9, "epsilon": 1e-3}),
    "adadelta_defaults": (lambda: optimizers.Adadelta(), "adadelta", 0.001, {}),
    "lion": (lambda: optimizers.Lion(0.01), "lion", 0.01, {}),
    "lion_betas": (lambda: optimizers.Lion(0.01, beta_1=0.5, beta_2=0.7), "lion", 0.01,
                   {"beta_1": 0.5, "beta_2": 0.7}),
    "ftrl": (lambda: optimizers.Ftrl(0.1), "ftrl", 0.1, {}),
    "ftrl_regularized": (
        lambda: optimizers.Ftrl(0.5, learning_rate_power=-0.3, initial_accumulator_value=0.0,
                                l1_regularization_strength=0.05, l2_regularization_strength=0.2,
                                l2_shrinkage_regularization_strength=0.1, beta=0.3),
        "ftrl", 0.5, {"learning_rate_power": -0.3, "initial_accumulator_value": 0.0,
                      "l1_regularization_strength": 0.05, "l2_regularization_strength": 0.2,
                      "l2_shrinkage_regularization_strength": 0.1, "beta": 0.3}),
    "ftrl_fixed_rate": (lambda: optimizers.Ftrl(0.1, learning_rate_power=0.0, l1_regularization_strength=2.0),
                        "ftrl", 0.1, {"learning_rate_power": 0.0, "l1_regularization_strength": 2.0}),
    "adafactor": (lambda: optimizers.Adafactor(0.01), "adafactor", 0.01, {}),
    "lamb": (lambda: optimizers.Lamb(0.02, beta_1=0.8, epsilon=1e-3), "lamb", 0.02, {"beta_1": 0.8, "epsilon": 1e-3}),
    # lr above 1/sqrt(t) from t = 3: the relative-step cap matters
    "adafactor_capped": (lambda: optimizers.Adafactor(0.6, beta_2_decay=-0.5, clip_threshold=0.5, epsilon_2=0.1),
                         "adafactor", 0.6, {"beta_2_decay": -0.5, "clip_threshold": 0.5, "epsilon_2": 0.1}),
}


@pytest.mark.parametrize("case", sorted(KERAS_CASES))
def test_trajectory_matches_keras_equations(case):
    make, kind, lr, hp = KERAS_CASES[case]
    assert_same_path(run_ours(make()), keras_reference(kind, lr, **hp))


def test_ftrl_l1_zeroes_weights_whose_linear_term_stays_small():
    ws = run_ours(optimizers.Ftrl(0.1, learning_rate_power=0.0, l1_regularization_strength=2.0))
    assert any(np.any(w == 0) for w in ws) and any(np.any(w != 0) for w in ws)  # the case above is not trivial


# torch.optim computes the same rule: NAdam with momentum_decay=1 (torch's 0.004 slows Keras's 0.96^t
# schedule 250-fold), and decoupled weight decay is Keras's; Adadelta is the same rule; Adamax differs
# only in where eps goes, so eps is tiny on both sides.
TORCH_CASES = {
    "nadam": (lambda: optimizers.Nadam(0.01),
              lambda t, p: t.optim.NAdam(p, lr=0.01, eps=1e-7, momentum_decay=1.0)),
    "nadam_weight_decay": (lambda: optimizers.Nadam(0.01, beta_1=0.8, weight_decay=0.5),
                           lambda t, p: t.optim.NAdam(p, lr=0.01, betas=(0.8, 0.999), eps=1e-7, momentum_decay=1.0,
                                                      weight_decay=0.5, decoupled_weight_decay=True)),
    "adamax": (lambda: optimizers.Adamax(0.01, epsilon=1e-12),
               lambda t, p: t.optim.Adamax(p, lr=0.01, eps=1e-12)),
    "adamax_betas": (lambda: optimizers.Adamax(0.05, beta_1=0.5, beta_2=0.8, epsilon=1e-12),
                     lambda t, p: t.optim.Adamax(p, lr=0.05, betas=(0.5, 0.8), eps=1e-12)),
    "adadelta": (lambda: optimizers.Adadelta(1.0, rho=0.9, epsilon=1e-6),
                 lambda t, p: t.optim.Adadelta(p, lr=1.0, rho=0.9, eps=1e-6)),
    "adadelta_defaults": (lambda: optimizers.Adadelta(),
                          lambda t, p: t.optim.Adadelta(p, lr=0.001, rho=0.95, eps=1e-7)),
}


@pytest.mark.parametrize("case", sorted(TORCH_CASES))
def test_trajectory_matches_torch(case):
    make_ours, make_torch = TORCH_CASES[case]
    assert_same_path(run_ours(make_ours()), run_torch(make_torch))


def test_torch_nadam_default_momentum_decay_is_not_keras():
    """The mapping above matters: with torch's default momentum_decay the paths part."""
    ours = run_ours(optimizers.Nadam(0.01))
    theirs = run_torch(lambda t, p: t.optim.NAdam(p, lr=0.01, eps=1e-7))
    assert not np.allclose(ours[0] - W0[0], theirs[0] - W0[0], rtol=1e-3)


# -- what the base class adds, with each optimizer ---------------------------------------------------

SMALL = {"Nadam": ("nadam", 0.01), "Adamax": ("adamax", 0.01), "Adadelta": ("adadelta", 1.0),
         "Lion": ("lion", 0.01), "Ftrl": ("ftrl", 0.1), "Adafactor": ("adafactor", 0.01), "Lamb": ("lamb", 0.01)}


@pytest.mark.parametrize("name", NAMES)
def test_weight_decay(name):
    kind, lr = SMALL[name]
    ours = run_ours(getattr(optimizers, name)(lr, weight_decay=0.5))
    assert_same_path(ours, keras_reference(kind, lr, weight_decay=0.5))
    assert not np.allclose(ours[0], run_ours(getattr(optimizers, name)(lr))[0])


@pytest.mark.parametrize("name", NAMES)
def test_weight_decay_exclusion(name):
    kind, lr = SMALL[name]
    opt = getattr(optimizers, name)(lr, weight_decay=0.5)
    opt.exclude_from_weight_decay(var_names=["w1"])
    ours = run_ours(opt)
    decayed, plain = keras_reference(kind, lr, weight_decay=0.5), keras_reference(kind, lr)
    assert_same_path(ours, [decayed[0], plain[1], decayed[2]])


def _clipped(grads, kind):
    """The base class's clipping, in float32 numpy."""
    if kind == "clipvalue":
        return [np.clip(g, -0.3, 0.3) for g in grads]
    if kind == "clipnorm":
        return [g * np.float32(0.5 / max(np.sqrt((g * g).sum()), 0.5)) for g in grads]
    norm = np.sqrt(sum((g * g).sum() for g in grads))
    return [g * np.float32(0.8 / max(norm, 0.8)) for g in grads]


@pytest.mark.parametrize("clip", ["clipvalue", "clipnorm", "global_clipnorm"])
@pytest.mark.parametrize("name", NAMES)
def test_clipping(name, clip):
    _, lr = SMALL[name]
    value = {"clipvalue": 0.3, "clipnorm": 0.5, "global_clipnorm": 0.8}[clip]
    ours = run_ours(getattr(optimizers, name)(lr, **{clip: value}))
    preclipped = run_ours(getattr(optimizers, name)(lr), [_clipped(grads, clip) for grads in GRADS])
    for a, b in zip(ours, preclipped):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
    assert not np.allclose(ours[0], run_ours(getattr(optimizers, name)(lr))[0])  # the clipping bit


@pytest.mark.parametrize("name", NAMES)
def test_learning_rate_schedule(name):
    kind, lr = SMALL[name]
    schedule = schedules.ExponentialDecay(lr, decay_steps=2, decay_rate=0.3)
    opt = getattr(optimizers, name)(schedule)
    # Adafactor: with a schedule Keras skips the relative-step cap (the reference knows)
    assert_same_path(run_ours(opt), keras_reference(kind, schedule))
    assert int(opt.iterations) == len(GRADS)
    assert isinstance(optimizers.deserialize(optimizers.serialize(opt))._schedule, schedules.ExponentialDecay)


# -- config, names, errors -----------------------------------------------------------------------------

BASE_KEYS = {"name", "learning_rate", "weight_decay", "clipnorm", "global_clipnorm", "clipvalue", "use_ema",
             "ema_momentum", "ema_overwrite_frequency", "loss_scale_factor", "gradient_accumulation_steps"}
# Keras 3's own keys and defaults
DEFAULTS = {
    "Nadam": {"beta_1": 0.9, "beta_2": 0.999, "epsilon": 1e-7},
    "Adamax": {"beta_1": 0.9, "beta_2": 0.999, "epsilon": 1e-7},
    "Adadelta": {"rho": 0.95, "epsilon": 1e-7},
    "Lion": {"beta_1": 0.9, "beta_2": 0.99},
    "Lamb": {"beta_1": 0.9, "beta_2": 0.999, "epsilon": 1e-7},
    "Ftrl": {"learning_rate_power": -0.5, "initial_accumulator_value": 0.1, "l1_regularization_strength": 0.0,
             "l2_regularization_strength": 0.0, "l2_shrinkage_regularization_strength": 0.0, "beta": 0.0},
    "Adafactor": {"beta_2_decay": -0.8, "epsilon_1": 1e-30, "epsilon_2": 1e-3, "clip_threshold": 1.0,
                  "relative_step": True},
}


@pytest.mark.parametrize("name", NAMES)
def test_defaults_config_round_trip_and_string_name(name):
    cls = getattr(optimizers, name)
    dlgpu.backend.clear_session()  # default names are numbered per process (nadam, nadam_1...) until cleared
    config = cls().get_config()
    assert set(config) == BASE_KEYS | set(DEFAULTS[name])
    assert {k: config[k] for k in DEFAULTS[name]} == DEFAULTS[name]
    assert config["name"] == name.lower() and math.isclose(config["learning_rate"], 0.001, rel_tol=1e-6)
    assert type(optimizers.get(name.lower())) is cls and type(optimizers.get(name)) is cls
    custom = cls(learning_rate=0.25, clipnorm=2.0, weight_decay=0.01, name="mine")
    back = optimizers.deserialize(optimizers.serialize(custom))
    assert type(back) is cls and back.get_config() == custom.get_config()
    assert optimizers.serialize(custom)["class_name"] == name


@pytest.mark.parametrize("name", NAMES)
def test_compile_accepts_the_string_name(name):
    model = dlgpu.Sequential([layers.Input((3,)), layers.Dense(2)])
    model.compile(optimizer=name.lower(), loss="mse")
    assert type(model.optimizer) is getattr(optimizers, name)


@pytest.mark.parametrize("name", NAMES)
def test_slot_variables_and_state_round_trip(name):
    opt = getattr(optimizers, name)(SMALL[name][1])
    run_ours(opt, GRADS[:2])
    store = {}
    opt.save_own_variables(store)
    fresh = getattr(optimizers, name)(SMALL[name][1])
    fresh.build([Variable(w.copy(), name=f"w{i}") for i, w in enumerate(W0)])
    assert [v.name for v in fresh.variables] == [v.name for v in opt.variables]
    fresh.load_own_variables(store)
    for a, b in zip(fresh.variables, opt.variables):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
        assert a.numpy().dtype == b.numpy().dtype
    assert all(v.numpy().dtype == np.float32 for v in opt.variables[2:])


def test_slot_shapes():
    nadam, adafactor = optimizers.Nadam(), optimizers.Adafactor()
    run_ours(nadam, GRADS[:2])
    run_ours(adafactor, GRADS[:1])
    assert nadam.variables[-1].name == "u_product"
    u_t = [0.9 * (1 - 0.5 * 0.96 ** t) for t in (1, 2)]
    assert float(nadam.variables[-1].numpy()) == pytest.approx(u_t[0] * u_t[1], rel=1e-6)
    # per weight: r, c, v; r and c drop the last and second-to-last axis, placeholders below rank 2
    shapes = [v.numpy().shape for v in adafactor.variables[2:]]
    assert shapes == [(3,), (4,), (3, 4), (), (), (4,), (2, 3), (2, 2), (2, 3, 2)]


@pytest.mark.parametrize("make, message", [
    (lambda: optimizers.Lion(beta_1=0.0), "beta_1"),
    (lambda: optimizers.Lion(beta_1=1.5), "beta_1"),
    (lambda: optimizers.Ftrl(initial_accumulator_value=-0.1), "initial_accumulator_value"),
    (lambda: optimizers.Ftrl(learning_rate_power=0.5), "learning_rate_power"),
    (lambda: optimizers.Ftrl(l1_regularization_strength=-1.0), "l1_regularization_strength"),
    (lambda: optimizers.Ftrl(l2_regularization_strength=-1.0), "l2_regularization_strength"),
    (lambda: optimizers.Ftrl(l2_shrinkage_regularization_strength=-1.0), "l2_shrinkage_regularization_strength"),
    (lambda: optimizers.Nadam(momentum_decay=0.004), "momentum_decay"),
    (lambda: optimizers.Adafactor(lr=0.1), "`lr` is no longer supported"),
])
def test_bad_arguments_are_refused_by_name(make, message):
    with pytest.raises(ValueError, match=message):
        make()


@pytest.mark.parametrize("name", NAMES)
def test_use_ema_keeps_an_average_per_variable(name):
    opt = getattr(optimizers, name)(use_ema=True, ema_momentum=0.5)
    variables = [Variable(np.full((2, 3), 0.5, np.float32)), Variable(np.full((3,), -0.5, np.float32))]
    grads = [np.full((2, 3), 0.1, np.float32), np.full((3,), 0.2, np.float32)]
    opt.apply(grads, variables)  # the first step: the averages are the weights
    assert len(opt._model_variables_moving_average) == 2
    first = [v.numpy().copy() for v in variables]
    for average, value in zip(opt._model_variables_moving_average, first):
        np.testing.assert_array_equal(average.numpy(), value)
    opt.apply(grads, variables)
    for average, before, var in zip(opt._model_variables_moving_average, first, variables):
        np.testing.assert_allclose(average.numpy(), 0.5 * before + 0.5 * var.numpy(), rtol=1e-6)


# -- fit, save, load, resume ----------------------------------------------------------------------------

FIT_CASES = {"Nadam": 0.01, "Adamax": 0.02, "Adadelta": 1.0, "Lion": 0.003, "Ftrl": 0.2, "Adafactor": 0.05,
             "Lamb": 0.02}


@pytest.mark.parametrize("name", NAMES)
def test_fit_save_load_resumes_exactly(tmp_path, name):
    x, y = tiny_classification_data()
    dlgpu.set_random_seed(0)
    weights = tiny_mlp().get_weights()

    def compiled(model):
        model.compile(optimizer=getattr(optimizers, name)(FIT_CASES[name], clipnorm=5.0),
                      loss=losses.SparseCategoricalCrossentropy(from_logits=True))
        return model

    fit = dict(batch_size=16, shuffle=False, verbose=0)
    unbroken = compiled(tiny_mlp(weights)).fit(x, y, epochs=4, **fit).history["loss"]
    assert unbroken[-1] < unbroken[0]  # it trains
    first = compiled(tiny_mlp(weights))
    before = first.fit(x, y, epochs=2, **fit).history["loss"]
    first.save(tmp_path / "m.dlgpu")
    loaded = load_model(tmp_path / "m.dlgpu")
    assert type(loaded.optimizer) is getattr(optimizers, name)
    assert loaded.optimizer.get_config() == first.optimizer.get_config()
    assert int(loaded.optimizer.iterations) == 6
    for saved, restored in zip(first.optimizer.variables, loaded.optimizer.variables):
        # (the names may differ, in Keras too: a loaded Sequential's layers are built outside its scope)
        np.testing.assert_array_equal(restored.numpy(), saved.numpy())
    after = loaded.fit(x, y, epochs=2, **fit).history["loss"]
    assert before + after == unbroken  # bit for bit: no optimizer state was lost or reset


# -- the GPU --------------------------------------------------------------------------------------------

GPU_CASES = {
    "Nadam": lambda: optimizers.Nadam(0.01, weight_decay=0.1),
    "Adamax": lambda: optimizers.Adamax(0.01, global_clipnorm=1.0),
    "Adadelta": lambda: optimizers.Adadelta(1.0, clipvalue=0.5),
    "Lion": lambda: optimizers.Lion(schedules.ExponentialDecay(0.01, 2, 0.5), weight_decay=0.1),
    "Ftrl": lambda: optimizers.Ftrl(0.5, l1_regularization_strength=0.05, l2_shrinkage_regularization_strength=0.1,
                                    beta=0.2, clipnorm=1.0),
    "Adafactor": lambda: optimizers.Adafactor(0.6, weight_decay=0.1),
    "Lamb": lambda: optimizers.Lamb(0.05, weight_decay=0.1, clipnorm=1.0),
}


@pytest.mark.gpu
@pytest.mark.parametrize("name", NAMES)
def test_gpu_matches_cpu(tmp_path, name):
    on_cpu = run_ours(GPU_CASES[name]())
    opt = GPU_CASES[name]()
    on_gpu = run_ours(opt, device="gpu")
    for a, b in zip(on_gpu, on_cpu):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    assert all(_device.device_of_array(v.data).kind == "gpu" for v in opt._slot_variables)  # Nadam's u_product: host
    # and with fit: the losses and the weights, then save on the GPU, load on the CPU
    x, y = tiny_classification_data()
    dlgpu.set_random_seed(0)
    weights = tiny_mlp().get_weights()
    results = {}
    for device in ("cpu", "gpu"):
        with dlgpu.device(device):
            model = tiny_mlp(weights)
            model.compile(optimizer=GPU_CASES[name](), loss=losses.SparseCategoricalCrossentropy(from_logits=True))
            history = model.fit(x, y, batch_size=16, epochs=2, shuffle=False, verbose=0).history["loss"]
            results[device] = (history, model.get_weights())
    np.testing.assert_allclose(results["gpu"][0], results["cpu"][0], rtol=1e-5)
    for a, b in zip(results["gpu"][1], results["cpu"][1]):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)
    model.save(tmp_path / "m.dlgpu")
    loaded = load_model(tmp_path / "m.dlgpu")
    for saved, restored in zip(model.optimizer.variables, loaded.optimizer.variables):
        np.testing.assert_array_equal(restored.numpy(), saved.numpy())
