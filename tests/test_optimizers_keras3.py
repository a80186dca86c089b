"""LossScaleOptimizer, ScheduleFreeAdamW and Muon beyond the step-by-step comparison with Keras
(tests/keras_reference/test_functions.py): configs, refusals, fit with save/load and resume, the GPU against
the CPU."""

import numpy as np
import pytest

import dlgpu
from dlgpu import Variable, losses, optimizers
from dlgpu.backend import device as _device
from dlgpu.models import load_model

from helpers import tiny_classification_data, tiny_mlp

rng = np.random.default_rng(12)
SHAPES = [(3, 4), (4,), (2, 3, 2)]
W0 = [rng.normal(size=s).astype(np.float32) for s in SHAPES]
GRADS = [[rng.normal(size=s).astype(np.float32) for s in SHAPES] for _ in range(6)]
NON_FINITE = [[g.copy() for g in grads] for grads in GRADS]
NON_FINITE[2][1][0] = np.inf  # LossScaleOptimizer skips these two steps
NON_FINITE[4][2][1, 1, 0] = np.nan


def run_ours(opt, steps=GRADS, device=None):
    with dlgpu.device(device or "cpu"):
        variables = [Variable(w.copy(), name=f"w{i}") for i, w in enumerate(W0)]
        for grads in steps:
            opt.apply([_device.to_device(g.copy(), variables[0].device) for g in grads], variables)
    return [v.numpy() for v in variables]


def _fit(make, weights, epochs, x=None, y=None):
    if x is None:
        x, y = tiny_classification_data()
    model = tiny_mlp(weights)
    model.compile(optimizer=make(), loss=losses.SparseCategoricalCrossentropy(from_logits=True))
    history = model.fit(x, y, batch_size=16, epochs=epochs, shuffle=False, verbose=0).history["loss"]
    return model, history


# -- LossScaleOptimizer ---------------------------------------------------------------------------------

def test_loss_scale_steps_unscale_skip_and_rescale():
    inner = optimizers.SGD(0.1)
    opt = optimizers.LossScaleOptimizer(inner, initial_scale=8.0, dynamic_growth_steps=2)
    scaled = [[g * np.float32(8.0) for g in grads] for grads in GRADS[:2]]
    ours = run_ours(opt, scaled)
    plain = run_ours(optimizers.SGD(0.1), GRADS[:2])
    for a, b in zip(ours, plain):  # a power-of-two scale divides back exactly
        np.testing.assert_array_equal(a, b)
    assert float(opt.dynamic_scale.numpy()) == 16.0 and int(opt.step_counter.numpy()) == 0
    assert int(opt.iterations.numpy()) == 2 and opt.iterations is inner.iterations
    variables = [Variable(w.copy()) for w in W0]
    opt = optimizers.LossScaleOptimizer(optimizers.SGD(0.1), initial_scale=8.0)
    opt.apply(NON_FINITE[2], variables)  # an inf: nothing moves, the scale halves
    for v, w in zip(variables, W0):
        np.testing.assert_array_equal(v.numpy(), w)
    assert float(opt.dynamic_scale.numpy()) == 4.0 and int(opt.iterations.numpy()) == 0
    assert float(opt.scale_loss(dlgpu.Tensor(np.float32(3.0))).numpy()) == 12.0


def test_loss_scale_config_round_trip_and_refusals():
    opt = optimizers.LossScaleOptimizer(optimizers.Adam(0.01, clipnorm=1.0), initial_scale=64.0,
                                        dynamic_growth_steps=10, name="scaled")
    config = opt.get_config()
    assert set(config) == {"name", "inner_optimizer", "initial_scale", "dynamic_growth_steps"}
    assert config["inner_optimizer"]["class_name"] == "Adam"
    back = optimizers.deserialize(optimizers.serialize(opt))
    assert type(back) is optimizers.LossScaleOptimizer and back.get_config() == config
    assert type(back.inner_optimizer) is optimizers.Adam
    assert optimizers.LossScaleOptimizer(optimizers.SGD()).get_config()["initial_scale"] == 2.0 ** 15
    # Keras's older configs carry the base arguments at their defaults
    optimizers.LossScaleOptimizer(optimizers.SGD(), clipnorm=None, use_ema=False)
    with pytest.raises(ValueError, match="clipnorm"):
        optimizers.LossScaleOptimizer(optimizers.SGD(), clipnorm=1.0)
    with pytest.raises(ValueError, match="dynamic=False"):
        optimizers.LossScaleOptimizer(optimizers.SGD(), dynamic=False)
    with pytest.raises(ValueError, match="foo"):
        optimizers.LossScaleOptimizer(optimizers.SGD(), foo=1)
    with pytest.raises(TypeError, match="inner_optimizer"):
        optimizers.LossScaleOptimizer("adam")
    with pytest.raises(ValueError, match="dynamic_growth_steps"):
        optimizers.LossScaleOptimizer(optimizers.SGD(), dynamic_growth_steps=0)
    # the inner optimizer's own scaling is switched off, as in Keras
    inner = optimizers.SGD(loss_scale_factor=4.0)
    optimizers.LossScaleOptimizer(inner)
    assert inner.loss_scale_factor is None
    # the learning rate is the inner optimizer's
    opt.learning_rate = 0.5
    assert float(opt.inner_optimizer.learning_rate) == 0.5 == float(opt.learning_rate)


def test_fit_scales_the_loss_and_matches_the_unscaled_optimizer():
    dlgpu.set_random_seed(0)
    weights = tiny_mlp().get_weights()
    plain, plain_loss = _fit(lambda: optimizers.Adam(0.01), weights, 2)
    scaled, scaled_loss = _fit(lambda: optimizers.LossScaleOptimizer(optimizers.Adam(0.01), dynamic_growth_steps=4),
                               weights, 2)
    assert scaled_loss == plain_loss  # the logged loss is unscaled; 2**k scaling is exact
    for a, b in zip(scaled.get_weights(), plain.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
    assert float(scaled.optimizer.dynamic_scale.numpy()) == 2.0 ** 16  # 6 finite steps: one doubling
    # loss_scale_factor on a plain optimizer: fit scales the loss, apply unscales the gradients
    factor, factor_loss = _fit(lambda: optimizers.Adam(0.01, loss_scale_factor=8.0), weights, 2)
    assert factor_loss == plain_loss
    for a, b in zip(factor.get_weights(), plain.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)


@pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning",
                            "ignore:invalid value encountered:RuntimeWarning")  # numpy's, on the skipped steps
def test_fit_with_an_overflowing_scale_skips_steps_until_it_fits():
    dlgpu.set_random_seed(0)
    x, _ = tiny_classification_data()
    y = 30.0 * x[:, :3]  # an mse near 300: 300 * 2**127 overflows float32
    model = tiny_mlp()
    model.compile(optimizer=optimizers.LossScaleOptimizer(optimizers.SGD(0.01), initial_scale=2.0 ** 127), loss="mse")
    history = model.fit(x, y, batch_size=16, epochs=4, shuffle=False, verbose=0).history["loss"]
    opt = model.optimizer
    # the first steps are skipped, each halving the scale, until the scaled loss is finite
    skipped = 12 - int(opt.iterations.numpy())
    assert 2 <= skipped <= 12 - 2 and float(opt.dynamic_scale.numpy()) == 2.0 ** (127 - skipped)
    assert int(opt.step_counter.numpy()) == 12 - skipped  # the finite steps since the last halving
    assert history[-1] < history[0]


# -- ScheduleFreeAdamW ----------------------------------------------------------------------------------

def test_schedule_free_config_slots_and_refusals():
    opt = optimizers.ScheduleFreeAdamW()
    config = opt.get_config()
    assert config["name"] == "schedule_free_adam_w" and config["learning_rate"] == pytest.approx(0.0025)
    assert {k: config[k] for k in ("beta_1", "beta_2", "epsilon", "warmup_steps")} == \
        {"beta_1": 0.9, "beta_2": 0.999, "epsilon": 1e-8, "warmup_steps": 0}
    custom = optimizers.ScheduleFreeAdamW(0.01, warmup_steps=5, weight_decay=0.1, name="sf")
    back = optimizers.deserialize(optimizers.serialize(custom))
    assert type(back) is optimizers.ScheduleFreeAdamW and back.get_config() == custom.get_config()
    assert type(optimizers.get("schedulefreeadamw")) is optimizers.ScheduleFreeAdamW
    with pytest.raises(ValueError, match="warmup_steps"):
        optimizers.ScheduleFreeAdamW(warmup_steps=-1)
    assert optimizers.ScheduleFreeAdamW(use_ema=True).use_ema  # the base class's moving averages
    # the momentum (z) starts at the weights; with a zero gradient nothing moves
    variables = [Variable(w.copy()) for w in W0]
    opt.apply([np.zeros_like(w) for w in W0], variables)
    for var, w, z in zip(variables, W0, opt._momentums):
        np.testing.assert_allclose(var.numpy(), w, rtol=1e-6)
        np.testing.assert_allclose(z.numpy(), w, rtol=1e-6)


# -- Muon -----------------------------------------------------------------------------------------------

def test_muon_routes_variables_and_orthogonalizes():
    opt = optimizers.Muon(exclude_layers=["skip_me"])
    kernel, bias, conv = Variable(W0[0].copy(), name="kernel"), Variable(W0[1].copy()), Variable(W0[2].copy())
    embedding, excluded = Variable(W0[0].copy(), name="embeddings"), Variable(W0[0].copy(), name="skip_me")
    opt.build([kernel, bias, conv, embedding, excluded])
    assert [v is None for v in opt._velocities] == [True, False, False, False, False]
    assert [v.name for v in opt.variables[2:4]] == ["kernel_momentum", f"{bias.name}_momentum"]
    # NS5 brings every singular value of a wide or tall matrix near 1 (Keras's coefficients: 0.68 to 1.13)
    for shape in ((3, 7), (7, 3), (2, 5, 4)):
        u = opt.zeropower_via_newtonschulz5(rng.normal(size=shape).astype(np.float32), 5)
        assert u.dtype == np.float32 and u.shape == shape
        singular = np.linalg.svd(u, compute_uv=False)
        assert singular.min() > 0.6 and singular.max() < 1.2
    with pytest.raises(ValueError, match="2 dimensions"):
        opt.zeropower_via_newtonschulz5(np.ones(3, np.float32), 5)
    config = opt.get_config()
    assert config["exclude_layers"] == ["skip_me"] and config["ns_steps"] == 5 and config["rms_rate"] == 0.2
    back = optimizers.deserialize(optimizers.serialize(opt))
    assert type(back) is optimizers.Muon and back.get_config() == config
    assert optimizers.Muon().get_config()["exclude_layers"] == []
    with pytest.raises(ValueError, match="ns_steps"):
        optimizers.Muon(ns_steps=-1)


# -- fit, save, load, resume ----------------------------------------------------------------------------

FIT_CASES = {
    "LossScaleOptimizer": lambda: optimizers.LossScaleOptimizer(optimizers.Adam(0.01), initial_scale=2.0 ** 20,
                                                                dynamic_growth_steps=2),
    "ScheduleFreeAdamW": lambda: optimizers.ScheduleFreeAdamW(0.02, warmup_steps=3, weight_decay=0.01),
    "Muon": lambda: optimizers.Muon(0.02),
}


@pytest.mark.parametrize("name", sorted(FIT_CASES))
def test_fit_save_load_resumes_exactly(tmp_path, name):
    dlgpu.set_random_seed(0)
    weights = tiny_mlp().get_weights()
    unbroken = _fit(FIT_CASES[name], weights, 4)[1]
    assert unbroken[-1] < unbroken[0]
    first, before = _fit(FIT_CASES[name], weights, 2)
    x, y = tiny_classification_data()
    first.save(tmp_path / "m.dlgpu")
    loaded = load_model(tmp_path / "m.dlgpu")
    assert type(loaded.optimizer) is getattr(optimizers, name)
    assert loaded.optimizer.get_config() == first.optimizer.get_config()
    assert int(loaded.optimizer.iterations) == 6
    assert len(loaded.optimizer.variables) == len(first.optimizer.variables)
    for saved, restored in zip(first.optimizer.variables, loaded.optimizer.variables):
        # (the names may differ, in Keras too: a loaded Sequential's layers are built outside its scope)
        np.testing.assert_array_equal(restored.numpy(), saved.numpy())
    after = loaded.fit(x, y, batch_size=16, epochs=2, shuffle=False, verbose=0).history["loss"]
    assert before + after == unbroken


# -- the GPU --------------------------------------------------------------------------------------------

GPU_CASES = {
    "LossScaleOptimizer": lambda: optimizers.LossScaleOptimizer(optimizers.Adam(0.01), initial_scale=4.0,
                                                                dynamic_growth_steps=2),
    "ScheduleFreeAdamW": lambda: optimizers.ScheduleFreeAdamW(0.05, warmup_steps=2, weight_decay=0.1, clipnorm=1.0),
    "Muon": lambda: optimizers.Muon(0.05, weight_decay=0.1, clipvalue=0.5),
}


@pytest.mark.gpu
@pytest.mark.parametrize("name", sorted(GPU_CASES))
def test_gpu_matches_cpu(tmp_path, name):
    steps = NON_FINITE if name == "LossScaleOptimizer" else GRADS
    on_cpu = run_ours(GPU_CASES[name](), steps)
    opt = GPU_CASES[name]()
    on_gpu = run_ours(opt, steps, device="gpu")
    for a, b in zip(on_gpu, on_cpu):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)
    assert all(_device.device_of_array(v.data).kind == "gpu" for v in opt._slot_variables)
    dlgpu.set_random_seed(0)
    weights = tiny_mlp().get_weights()
    results = {}
    for device in ("cpu", "gpu"):
        with dlgpu.device(device):
            model, history = _fit(GPU_CASES[name], weights, 2)
            results[device] = (history, model.get_weights())
    np.testing.assert_allclose(results["gpu"][0], results["cpu"][0], rtol=1e-5)
    for a, b in zip(results["gpu"][1], results["cpu"][1]):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)
    model.save(tmp_path / "m.dlgpu")
    loaded = load_model(tmp_path / "m.dlgpu")
    for saved, restored in zip(model.optimizer.variables, loaded.optimizer.variables):
        np.testing.assert_array_equal(restored.numpy(), saved.numpy())
