"""keras.remat and keras.RematScope (dlgpu/rematerialization.py): a rematerialized call gives the gradients
of the plain call, drops its intermediate tensors after the forward, runs again in the backward (replaying
its random draws, without repeating its state updates), and only where its scope's mode says."""

import gc
import weakref

import numpy as np
import pytest

import dlgpu
import dlgpu as keras
from dlgpu import layers, ops


def _x(shape=(5, 8), seed=1):
    return np.random.default_rng(seed).normal(size=shape).astype(np.float32)


def _gradients(model, x, loss_fn=lambda y: ops.sum(y * y)):
    keras.utils.set_random_seed(3)  # the same dropout masks for every model
    with keras.GradientTape() as tape:
        y = model(x, training=True)
        loss = loss_fn(y)
    grads = tape.gradient(loss, model.trainable_variables)
    return keras.to_numpy(y), [keras.to_numpy(g) for g in grads]


def _model(mode, **scope):
    keras.utils.set_random_seed(0)
    with keras.RematScope(mode, **scope):
        return keras.Sequential([keras.Input((8,)), layers.Dense(16, activation="relu"), layers.Dropout(0.3),
                                 layers.BatchNormalization(), layers.Dense(6, activation="gelu"), layers.Dense(1)],
                                name="net")


@pytest.mark.parametrize("mode, scope", [("full", {}), ("activations", {}), ("larger_than", {"output_size_threshold": 40}),
                                         ("list_of_layers", {"layer_names": ["dense", "dropout", "dense_1"]})])
def test_rematerialized_models_give_the_plain_models_outputs_gradients_and_statistics(mode, scope):
    x = _x()
    plain, remat = _model(None), _model(mode, **scope)
    y0, g0 = _gradients(plain, x)
    y1, g1 = _gradients(remat, x)
    np.testing.assert_array_equal(y1, y0)
    for a, b in zip(g1, g0):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
    # BatchNormalization's moving statistics moved once, in the forward, not again in the backward's rerun
    for a, b in zip(remat.non_trainable_variables, plain.non_trainable_variables):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    assert np.abs(remat.layers[2].moving_mean.numpy()).max() > 0


class _Counting(layers.Layer):
    """Dense-like; counts its calls and keeps a weak reference to the last intermediate tensor it made."""

    def __init__(self, units=4, **kwargs):
        super().__init__(**kwargs)
        self.units, self.calls, self.intermediate = units, 0, None

    def build(self, input_shape):
        self.w = self.add_weight((input_shape[-1], self.units), "glorot_uniform", name="w")

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], self.units)

    def call(self, x):
        self.calls += 1
        hidden = ops.tanh(ops.matmul(x, self.w))
        self.intermediate = weakref.ref(hidden)
        return ops.square(hidden)


def test_a_rematerialized_call_lets_its_intermediates_go_and_runs_again_in_the_backward():
    x = _x((3, 8))
    with keras.RematScope("full"):
        layer = _Counting()
    plain = _Counting()
    plain.build((None, 8))
    layer.build((None, 8))
    layer.w.assign(plain.w.numpy())
    with keras.GradientTape() as tape:
        loss = ops.sum(layer(x))
    gc.collect()
    assert layer.intermediate() is None  # freed after the forward; the plain layer's graph keeps it
    assert layer.calls == 1
    (grad,) = tape.gradient(loss, [layer.w])
    assert layer.calls == 2  # the rerun
    with keras.GradientTape() as tape:
        loss = ops.sum(plain(x))
    gc.collect()
    assert plain.intermediate() is not None
    np.testing.assert_allclose(keras.to_numpy(grad), keras.to_numpy(tape.gradient(loss, [plain.w])[0]), rtol=1e-6)
    # outside a tape (predict, inference) nothing is rematerialized: one call
    layer.calls = 0
    layer(x)
    assert layer.calls == 1


def test_the_scope_at_construction_decides_and_each_mode_picks_its_layers():
    x = _x((2, 8))
    with keras.RematScope("list_of_layers", layer_names=["picked"]):
        picked, other = _Counting(name="picked"), _Counting(name="other")
    with keras.RematScope("larger_than", output_size_threshold=10):
        wide, narrow = _Counting(units=6), _Counting(units=5)  # outputs of 2*6 = 12 and 2*5 = 10 elements
    with keras.RematScope("full"):
        with keras.RematScope(None):  # an inner scope turns it off
            off = _Counting()
        on = _Counting()
    outside = _Counting()
    everything = [picked, other, wide, narrow, off, on, outside]
    with keras.RematScope("full"):  # a scope open at call time changes nothing
        with keras.GradientTape() as tape:
            loss = sum(ops.sum(layer(x)) for layer in everything)
    tape.gradient(loss, [v for layer in everything for v in layer.trainable_variables])
    assert {layer.name: layer.calls for layer in everything} == {
        "picked": 2, "other": 1, wide.name: 2, narrow.name: 1, off.name: 1, on.name: 2, outside.name: 1}


def test_activations_mode_reruns_only_the_activation():
    calls = []

    def traced_relu(x):
        calls.append(1)
        return ops.relu(x)
    keras.utils.set_random_seed(0)
    with keras.RematScope("activations"):
        dense = layers.Dense(3, activation=traced_relu)
    x = _x((4, 8))
    with keras.GradientTape() as tape:
        loss = ops.sum(dense(x))
    grads = tape.gradient(loss, dense.trainable_variables)
    assert len(calls) == 2
    expected_kernel = x.T @ ((x @ dense.kernel.numpy() + dense.bias.numpy()) > 0).astype(np.float32)
    np.testing.assert_allclose(keras.to_numpy(grads[0]), expected_kernel, rtol=1e-5, atol=1e-6)
    assert dense.activation is traced_relu  # put back after the call


def test_remat_function_as_keras_documents_it_with_random_draws_replayed():
    class Noisy(layers.Layer):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.seed = keras.random.SeedGenerator(7)
            self.step = keras.remat(self.intermediate)
            self.draws = 0

        def build(self, input_shape):
            self.scale = self.add_weight((input_shape[-1],), "ones", name="scale")

        def intermediate(self, x):
            self.draws += 1
            noise = keras.random.normal(ops.shape(x), seed=self.seed)  # replayed in the rerun
            for _ in range(2):
                x = x + x * 0.1 * self.scale
            return keras.random.dropout(x * (1 + 0.01 * noise), 0.5, seed=self.seed)

        def call(self, x):
            return self.step(x)

    x = keras.ops.convert_to_tensor(_x((4, 3)))
    layer = Noisy()
    layer.build((None, 3))
    with keras.GradientTape() as tape:
        tape.watch(x)
        y = layer(x)
        loss = ops.sum(y * y)
    gx, gs = tape.gradient(loss, [x, layer.scale])
    assert layer.draws == 2
    # y = x * c with c = 1.21 (1 + 0.01 noise) mask / 0.5 for the forward's draws: the gradient 2 y c must use
    # the forward's noise and mask, read off its output as c = y / x
    factor = keras.to_numpy(y) / keras.to_numpy(x)
    np.testing.assert_allclose(keras.to_numpy(gx), 2 * keras.to_numpy(y) * factor, rtol=1e-4, atol=1e-6)
    assert gs is not None and np.isfinite(keras.to_numpy(gs)).all()


def test_fit_with_a_remat_scope_trains_the_same_weights():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(48, 8)).astype(np.float32), rng.integers(0, 3, 48)

    def train(mode):
        keras.utils.set_random_seed(0)
        with keras.RematScope(mode):
            inputs = keras.Input((8,))
            h = layers.Dropout(0.2)(layers.Dense(16, activation="relu")(inputs))
            model = keras.Model(inputs, layers.Dense(3)(layers.BatchNormalization()(h)))
        model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        keras.utils.set_random_seed(1)
        history = model.fit(x, y, epochs=2, batch_size=16, verbose=0).history["loss"]
        return history, model.get_weights()
    (loss0, w0), (loss1, w1) = train(None), train("full")
    np.testing.assert_allclose(loss1, loss0, rtol=1e-6)
    for a, b in zip(w1, w0):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)


def test_a_model_made_in_a_remat_scope_takes_the_taped_step_that_rematerializes():
    def compiled(mode):
        with keras.RematScope(mode):
            model = keras.Sequential([keras.Input((8,)), layers.Dense(16, activation="relu"), layers.Dense(3)])
        model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        return model
    # the tape-free step keeps every forward's activations for its backward: not for a rematerialized model
    assert compiled(None)._static_step() is not None
    assert compiled("full")._static_step() is None


def test_refusals():
    with pytest.raises(ValueError, match="invalid mode 'some'"):
        keras.RematScope("some")
    with pytest.raises(ValueError, match="output_size_threshold"):
        keras.RematScope("larger_than", output_size_threshold=-1)
    with pytest.raises(ValueError, match="layer_names"):
        keras.RematScope("list_of_layers", layer_names="dense")
    with keras.RematScope("full"):
        rnn = layers.SimpleRNN(2, stateful=True)
    x = _x((2, 3, 4))
    rnn(x)  # inference: nothing to rematerialize
    with pytest.raises(NotImplementedError, match="stateful"):
        with keras.GradientTape():
            rnn(x)
    # second-order gradients through a rematerialized function are refused, as with torch's checkpoint
    f = keras.remat(lambda v: ops.tanh(v) * 2)
    v = keras.ops.convert_to_tensor(_x((3,)))
    with keras.GradientTape() as outer:
        outer.watch(v)
        with keras.GradientTape() as inner:
            inner.watch(v)
            out = ops.sum(f(v))
        g = inner.gradient(out, v)
        second = ops.sum(g)
    with pytest.raises(NotImplementedError, match="second-order"):
        outer.gradient(second, v)


@pytest.mark.gpu
def test_rematerialized_model_on_the_gpu_matches_the_plain_one():
    x = _x()
    with dlgpu.device("gpu"):
        plain, remat = _model(None), _model("full")
        y0, g0 = _gradients(plain, x)
        y1, g1 = _gradients(remat, x)
    np.testing.assert_allclose(y1, y0, rtol=1e-6)
    for a, b in zip(g1, g0):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("make_noise", [lambda: layers.GaussianNoise(0.5, seed=3),
                                        lambda: layers.RandomContrast(0.5, seed=3),
                                        lambda: layers.RandomTranslation(0.2, 0.2, seed=3)])
def test_seeded_random_layers_replay_their_draws_in_the_rerun(make_noise):
    x = np.random.default_rng(2).uniform(size=(2, 6, 6, 1)).astype(np.float32)

    def build(mode):
        keras.utils.set_random_seed(0)
        with keras.RematScope(mode):
            return keras.Sequential([keras.Input((6, 6, 1)), make_noise(), layers.Conv2D(2, 3), layers.Flatten(),
                                     layers.Dense(1)])
    (y0, g0), (y1, g1) = _gradients(build(None), x), _gradients(build("full"), x)
    np.testing.assert_allclose(y1, y0, rtol=1e-6)
    for a, b in zip(g1, g0):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
