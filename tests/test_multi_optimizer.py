"""MultiOptimizer / OptimizerMap in models: routing by variable path, fit, save and load, loss scaling, EMA."""

import numpy as np
import pytest

import dlgpu
from dlgpu import callbacks, layers, optimizers


def _model(optimizer):
    dlgpu.set_random_seed(2)
    inputs = dlgpu.Input((3,))
    outputs = layers.Dense(1, name="dec")(layers.Dense(4, activation="tanh", name="enc")(inputs))
    model = dlgpu.Model(inputs, outputs)
    model.compile(optimizer=optimizer, loss="mse")
    return model


def _data():
    x = np.random.RandomState(0).rand(24, 3).astype(np.float32)
    return x, x.sum(axis=1, keepdims=True)


def test_routes_by_path_trains_saves_and_loads(tmp_path):
    x, y = _data()
    frozen, adam = optimizers.SGD(0.0), optimizers.Adam(0.01)
    model = _model(optimizers.MultiOptimizer(optimizers.OptimizerMap(frozen, {"enc/.*": adam})))
    enc, dec = [w.copy() for w in model.get_layer("enc").get_weights()], model.get_layer("dec").get_weights()
    model.fit(x, y, batch_size=8, epochs=2, verbose=0)
    for before, after in zip(dec, model.get_layer("dec").get_weights()):
        np.testing.assert_array_equal(before, after)  # routed to the SGD with rate 0
    assert all(not np.allclose(b, a) for b, a in zip(enc, model.get_layer("enc").get_weights()))
    assert int(model.optimizer.iterations.numpy()) == 6 and int(adam.iterations.numpy()) == 6
    assert [v.path for v in adam._trainable_variables] == ["enc/kernel", "enc/bias"]
    path = tmp_path / "m.keras"
    model.save(path)
    loaded = dlgpu.saving.load_model(path)
    assert type(loaded.optimizer) is optimizers.MultiOptimizer
    assert [type(o) for o in loaded.optimizer.optimizers] == [optimizers.Adam, optimizers.SGD]
    for a, b in zip(model.optimizer.variables, loaded.optimizer.variables):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    # the loaded run continues exactly as the original one
    model.fit(x, y, batch_size=8, epochs=1, shuffle=False, verbose=0)
    loaded.fit(x, y, batch_size=8, epochs=1, shuffle=False, verbose=0)
    for a, b in zip(model.get_weights(), loaded.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-6)


def test_loss_scale_factor_reaches_every_inner_optimizer():
    x, y = _data()
    plain = _model(optimizers.MultiOptimizer(optimizers.OptimizerMap(optimizers.SGD(0.05),
                                                                     {"enc/.*": optimizers.Adam(0.01)})))
    scaled = _model(optimizers.MultiOptimizer(optimizers.OptimizerMap(optimizers.SGD(0.05),
                                                                      {"enc/.*": optimizers.Adam(0.01)}),
                                              loss_scale_factor=64.0))
    assert all(o.loss_scale_factor == 64.0 for o in scaled.optimizer.optimizers)
    for model in (plain, scaled):
        model.fit(x, y, batch_size=8, epochs=1, shuffle=False, verbose=0)
    for a, b in zip(plain.get_weights(), scaled.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_swap_ema_weights_with_an_averaging_inner_optimizer():
    x, y = _data()
    ema, plain = optimizers.SGD(0.1, use_ema=True, ema_momentum=0.5), optimizers.SGD(0.1)
    model = _model(optimizers.MultiOptimizer(lambda v: ema if v.path.startswith("enc") else plain))

    class AtValidation(callbacks.Callback):
        def on_test_begin(self, logs=None):
            self.enc = [w.copy() for w in self.model.get_layer("enc").get_weights()]
            self.averages = [a.numpy() for a in ema._model_variables_moving_average]
    probe = AtValidation()
    model.fit(x, y, batch_size=4, epochs=1, verbose=0, validation_data=(x, y),
              callbacks=[callbacks.SwapEMAWeights(), probe])
    assert len(ema._trainable_variables) == 2 and len(plain._trainable_variables) == 2
    for got, average in zip(probe.enc, probe.averages):
        # during validation the model holds the averages; the optimizer holds the trained weights meanwhile
        assert not np.allclose(got, average)
    for got, average in zip(model.get_layer("enc").get_weights(), ema._model_variables_moving_average):
        np.testing.assert_array_equal(got, average.numpy())  # fit ended with the averages
    no_ema = _model(optimizers.MultiOptimizer(optimizers.OptimizerMap(optimizers.SGD())))
    with pytest.raises(ValueError, match="at least one inner optimizer"):
        no_ema.fit(x, y, epochs=1, verbose=0, validation_data=(x, y), callbacks=[callbacks.SwapEMAWeights()])


def test_map_lookup_and_refusals():
    default, adam, sgd = optimizers.RMSprop(), optimizers.Adam(), optimizers.SGD()
    mapping = optimizers.OptimizerMap(default)
    mapping["encoder/layer_0/dense"] = adam
    mapping["encoder/.*"] = sgd
    mapping["decoder"] = adam
    assert mapping["decoder"] is adam and mapping["encoder/layer_0/dense"] is adam
    assert mapping["encoder/layer_0/attention/query"] is sgd and mapping["decoder/layer_0/dense"] is default
    assert len(mapping) == 3 and set(mapping) == {"encoder/layer_0/dense", "encoder/.*", "decoder"}
    mapping["enc.*"] = adam
    with pytest.raises(ValueError, match="Multiple optimizers"):
        mapping["encoder/x"]
    with pytest.raises(ValueError, match="already exists"):
        mapping["decoder"] = sgd
    with pytest.raises(ValueError, match="LossScaleOptimizer"):
        mapping["x"] = optimizers.LossScaleOptimizer(optimizers.SGD())
    with pytest.raises(ValueError, match="must be a string"):
        mapping[3] = sgd
    with pytest.raises(TypeError, match="default_optimizer"):
        optimizers.OptimizerMap("adam")
    multi = optimizers.MultiOptimizer(optimizers.OptimizerMap(default))
    with pytest.raises(ValueError, match="MultiOptimizer"):
        optimizers.OptimizerMap(default, {"x": multi})
    with pytest.raises(AttributeError, match="sub-optimizers"):
        multi.learning_rate = 0.1
    with pytest.raises(ValueError, match="not an Optimizer"):
        optimizers.MultiOptimizer(lambda v: "adam").build([dlgpu.Variable(np.ones(2, np.float32))])
    with pytest.raises(TypeError, match="optimizer_map"):
        optimizers.MultiOptimizer("adam")
