"""Patterns of keras.io's Neural Eikonal Solver (a physics-informed network): a functional model reused on
permuted inputs (reciprocity), Lambda layers and a lambda activation, and a loss built from the gradient of
the model's output with respect to its inputs, trained with nested GradientTapes in train_step (the
example's tf.gradients inside a Lambda is TensorFlow-only; the nested tapes are the Keras 3 way)."""

import numpy as np

import dlgpu as keras
from dlgpu import layers, ops

NAMES = ["source_coord_0", "source_coord_1", "receiver_coord_0", "receiver_coord_1"]


def _traveltime_model(vmin=1.0, vmax=3.5):
    source = [layers.Input((1,), name=n) for n in NAMES[:2]]
    receiver = [layers.Input((1,), name=n) for n in NAMES[2:]]
    s, r = layers.Concatenate()(source), layers.Concatenate()(receiver)
    h = layers.Concatenate()([s, r])
    for _ in range(2):
        h = layers.Dense(12, activation=lambda z: ops.exp(-(z ** 2)), kernel_initializer="he_normal")(h)
    body = keras.Model(source + receiver, layers.Dense(1, activation="sigmoid")(h))
    t = layers.Lambda(lambda x: 0.5 * (x[0] + x[1]))([body(source + receiver), body(receiver + source)])
    t = layers.Lambda(lambda x: (1 / vmin - 1 / vmax) * x + 1 / vmax)(t)
    distance = layers.Lambda(lambda x: ops.norm(x, axis=-1, keepdims=True))(layers.Subtract()([r, s]))
    return keras.Model(source + receiver, layers.Multiply()([t, distance]))


class _EikonalSolver(keras.Model):
    def __init__(self, traveltime, **kwargs):
        super().__init__(**kwargs)
        self.traveltime = traveltime
        self.loss_tracker = keras.metrics.Mean(name="loss")

    def eikonal_residual(self, inputs, velocity, training=False):
        with keras.GradientTape() as tape:
            tape.watch(inputs[2:])
            t = self.traveltime(inputs, training=training)
        slopes = tape.gradient(t, inputs[2:], unconnected_gradients="zero")
        norm = ops.norm(ops.concatenate(slopes, axis=-1), axis=-1, keepdims=True)
        return ((norm * velocity) ** 2 - 1.0) / 2

    def train_step(self, data):
        x, _ = data
        inputs = [ops.reshape(ops.convert_to_tensor(x[n]), (-1, 1)) for n in NAMES]
        velocity = ops.reshape(ops.convert_to_tensor(x["velocity_at_receiver"]), (-1, 1))
        with keras.GradientTape() as tape:
            loss = ops.mean(ops.abs(self.eikonal_residual(inputs, velocity, training=True)))
        variables = self.traveltime.trainable_variables
        self.optimizer.apply(tape.gradient(loss, variables), variables)
        self.loss_tracker.update_state(loss)
        return {"loss": self.loss_tracker.result()}

    @property
    def metrics(self):
        return [self.loss_tracker]


def _data(n, seed=0):
    rng = np.random.default_rng(seed)
    x = {n_: rng.uniform(0, 1, n).astype(np.float32) for n_ in NAMES}
    x["velocity_at_receiver"] = (1 + 2.5 * x["receiver_coord_0"]).astype(np.float32)
    return x


def test_eikonal_residual_trains_down_through_second_order_gradients():
    keras.utils.set_random_seed(0)
    traveltime = _traveltime_model()
    solver = _EikonalSolver(traveltime)
    solver.compile(optimizer=keras.optimizers.Adam(5e-3))
    history = solver.fit(_data(600), np.zeros(600, np.float32), batch_size=200, epochs=12, verbose=0).history
    assert history["loss"][-1] < 0.5 * history["loss"][0]

    probe = _data(3, seed=1)
    forward = [probe[n][:, None] for n in NAMES]
    swapped = forward[2:] + forward[:2]
    np.testing.assert_allclose(traveltime.predict(forward, verbose=0), traveltime.predict(swapped, verbose=0),
                               rtol=1e-5)  # reciprocity: T(s, r) = T(r, s)

    # the slopes the loss sees are the model's derivative in the receiver coordinates (central differences)
    inputs = [ops.convert_to_tensor(a) for a in forward]
    with keras.GradientTape() as tape:
        tape.watch(inputs[2])
        t = traveltime(inputs)
    slope = keras.to_numpy(tape.gradient(t, inputs[2]))
    step = 1e-2
    plus, minus = list(forward), list(forward)
    plus[2], minus[2] = forward[2] + step, forward[2] - step
    numeric = (traveltime.predict(plus, verbose=0) - traveltime.predict(minus, verbose=0)) / (2 * step)
    np.testing.assert_allclose(slope, numeric, rtol=2e-2, atol=1e-3)
