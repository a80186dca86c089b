"""Patterns of keras.io's Forward-Forward example: a Layer that trains itself (its own GradientTape,
an optimizer shared between layers, a Mean metric it updates) from a Model's train_step; labels written
into the first pixels with ops.slice_update; ops.map over a tuple of per-sample tensors; a Model that
keeps a keras.Input and its layers in a list attribute and overrides predict."""

import numpy as np

import dlgpu as keras
from dlgpu import ops


class _FFDense(keras.layers.Layer):
    def __init__(self, units, optimizer, loss_metric, num_epochs=3, **kwargs):
        super().__init__(**kwargs)
        self.dense = keras.layers.Dense(units)
        self.relu = keras.layers.ReLU()
        self.optimizer, self.loss_metric, self.num_epochs, self.threshold = optimizer, loss_metric, num_epochs, 1.5

    def call(self, x):
        return self.relu(self.dense(x / (ops.norm(x, ord=2, axis=1, keepdims=True) + 1e-4)))

    def forward_forward(self, x_pos, x_neg):
        for _ in range(self.num_epochs):
            with keras.GradientTape() as tape:
                g_pos = ops.mean(ops.power(self.call(x_pos), 2), 1)
                g_neg = ops.mean(ops.power(self.call(x_neg), 2), 1)
                loss = ops.log(1 + ops.exp(ops.concatenate([-g_pos + self.threshold, g_neg - self.threshold], 0)))
                mean_loss = ops.mean(loss)
                self.loss_metric.update_state([mean_loss])
            grads = tape.gradient(mean_loss, self.dense.trainable_weights)
            self.optimizer.apply_gradients(zip(grads, self.dense.trainable_weights))
        return ops.stop_gradient(self.call(x_pos)), ops.stop_gradient(self.call(x_neg)), self.loss_metric.result()


class _FFNetwork(keras.Model):
    def __init__(self, dims, **kwargs):
        super().__init__(**kwargs)
        self.layer_optimizer = keras.optimizers.Adam(learning_rate=0.03)
        self.loss_var = keras.Variable(0.0, trainable=False, dtype="float32")
        self.loss_count = keras.Variable(0.0, trainable=False, dtype="float32")
        self.layer_list = [keras.Input(shape=(dims[0],))]
        self.layer_list += [_FFDense(d, self.layer_optimizer, keras.metrics.Mean()) for d in dims[1:]]

    def overlay(self, data):
        x, label = data
        top = ops.cast(ops.amax(x, axis=0, keepdims=True), "float32")
        marks = ops.slice_update(ops.zeros([4], dtype="float32"), [label], top)
        return ops.slice_update(x, [0], marks), label

    def goodness(self, x):
        scores = []
        for label in range(4):
            h, _ = self.overlay((x, label))
            h = ops.reshape(h, [1, -1])
            total = 0.0
            for layer in self.layer_list[1:]:
                h = layer(h)
                total = total + ops.mean(ops.power(h, 2), 1)
            scores.append(total)
        return ops.argmax(ops.concatenate(scores, 0))

    def predict(self, data):
        return np.asarray(ops.map(self.goodness, data), dtype=int)

    def train_step(self, data):
        x, y = data
        x_pos, y = ops.map(self.overlay, (x, y))
        x_neg, _ = ops.map(self.overlay, (x, keras.random.shuffle(y, seed=1)))
        h_pos, h_neg = x_pos, x_neg
        for layer in self.layers:
            if isinstance(layer, _FFDense):
                h_pos, h_neg, loss = layer.forward_forward(h_pos, h_neg)
                self.loss_var.assign_add(loss)
                self.loss_count.assign_add(1.0)
        return {"FinalLoss": ops.divide(self.loss_var, self.loss_count)}


def test_slice_update_writes_the_label_marks():
    x = np.arange(1, 9, dtype=np.float32)
    marks = ops.slice_update(ops.zeros([4]), [2], ops.amax(x, axis=0, keepdims=True))
    np.testing.assert_array_equal(keras.to_numpy(ops.slice_update(x, [0], marks)), [0, 0, 8, 0, 5, 6, 7, 8])


def test_ops_map_over_a_tuple_returns_a_tuple_of_stacked_results():
    xs, ys = ops.map(lambda pair: (pair[0] * 2, pair[1] + 1), (np.ones((3, 2), np.float32), np.arange(3)))
    np.testing.assert_array_equal(keras.to_numpy(xs), np.full((3, 2), 2.0))
    np.testing.assert_array_equal(keras.to_numpy(ys), [1, 2, 3])


def test_layers_train_themselves_from_train_step_and_predict_is_overridden():
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 4, 96)
    x = rng.random((96, 12)) * 0.2
    x[np.arange(96), 4 + 2 * labels] += 1.0  # class evidence beyond the label slots
    model = _FFNetwork([12, 16, 16])
    assert [type(layer).__name__ for layer in model.layers] == ["_FFDense", "_FFDense"]
    model.compile(optimizer=keras.optimizers.Adam(learning_rate=0.03), loss="mse")
    before = [keras.to_numpy(w).copy() for w in model.trainable_weights]
    hist = model.fit(x, labels, batch_size=96, epochs=4, verbose=0).history
    assert list(hist) == ["FinalLoss"] and len(hist["FinalLoss"]) == 4
    assert hist["FinalLoss"][-1] < hist["FinalLoss"][0]
    assert all(np.any(keras.to_numpy(w) != b) for w, b in zip(model.trainable_weights, before))
    # the shared layer optimizer stepped once per local epoch of each layer: 4 fits x 2 layers x 3
    assert int(keras.to_numpy(model.layer_optimizer.iterations)) == 24
    assert float(keras.to_numpy(model.loss_count)) == 8.0
    preds = model.predict(ops.convert_to_tensor(x[:10]))
    assert preds.shape == (10,) and preds.dtype.kind == "i" and set(preds.tolist()) <= {0, 1, 2, 3}
