"""Patterns of keras.io's mixture-of-experts example: a Layer with a list of expert Dense layers, a
softmax gate, ops.top_k routing, a non-trainable usage counter updated with ops.scatter and assign inside
call, the chosen experts' outputs picked with take_along_axis, auxiliary losses kept as attributes; a
subclassed Model whose train_step/test_step add those losses and update metrics through the
(deprecated) compiled_metrics; evaluate's list order."""

import numpy as np
import pytest
import torch

import dlgpu as keras
from dlgpu import layers, ops


class _MoE(layers.Layer):
    def __init__(self, units, num_experts=4, top_k=2, capacity=8):
        super().__init__()
        init = keras.initializers.RandomNormal(mean=0.0, stddev=0.1)
        self.experts = [layers.Dense(units, kernel_initializer=init) for _ in range(num_experts)]
        self.gate = layers.Dense(num_experts, kernel_initializer=init)
        self.num_experts, self.top_k, self.capacity = num_experts, top_k, capacity
        self.usage = keras.Variable(ops.zeros((num_experts,), dtype="float32"), trainable=False)

    def call(self, x):
        weights = ops.softmax(self.gate(x))
        self.diversity_loss = ops.mean(ops.sum(weights * ops.log(weights + 1e-10), axis=1))
        top_w, top_i = ops.top_k(weights, k=self.top_k)
        self.usage.assign(self.usage + ops.scatter(ops.reshape(top_i, [-1, 1]),
                                                   ops.ones_like(ops.reshape(top_i, [-1]), dtype="float32"),
                                                   (self.num_experts,)))
        self.overflow = ops.sum(ops.relu(ops.convert_to_tensor(self.usage) - self.capacity))
        outputs = ops.stack([expert(x) for expert in self.experts], axis=1)
        chosen = ops.take_along_axis(outputs, ops.expand_dims(top_i, -1), axis=1)
        return ops.sum(chosen * ops.expand_dims(top_w, -1), axis=1)

    def aux_loss(self, coef=0.01):
        return coef * (self.diversity_loss + self.overflow)


class _MoEModel(keras.Model):
    def __init__(self):
        super().__init__()
        self.body = keras.Sequential([layers.Flatten(), layers.Dense(16, activation="relu")])
        self.moe = _MoE(3)
        self.softmax = layers.Softmax()

    def call(self, x, training=False):
        return self.softmax(self.moe(self.body(x)))

    def train_step(self, data):
        x, y = data
        with keras.GradientTape() as tape:
            y_pred = self(x, training=True)
            total = self.compute_loss(x, y, y_pred) + self.moe.aux_loss()
        grads = tape.gradient(total, self.trainable_variables)
        self.optimizer.apply_gradients(zip(grads, self.trainable_variables))
        self.compiled_metrics.update_state(y, y_pred)
        return {"loss": total, "moe_loss": self.moe.aux_loss(), **{m.name: m.result() for m in self.metrics}}

    def test_step(self, data):
        x, y = data
        y_pred = self(x, training=False)
        total = self.compute_loss(x, y, y_pred) + self.moe.aux_loss()
        self.compiled_metrics.update_state(y, y_pred)
        return {"loss": total, "moe_loss": self.moe.aux_loss(), **{m.name: m.result() for m in self.metrics}}


def test_routing_counts_and_mixes_the_top_experts():
    keras.utils.set_random_seed(0)
    moe = _MoE(5, num_experts=4, top_k=2)
    x = np.random.default_rng(0).normal(size=(6, 3)).astype(np.float32)
    out = keras.to_numpy(moe(x))
    gate = keras.to_numpy(moe.gate(x))
    weights = np.exp(gate) / np.exp(gate).sum(1, keepdims=True)
    top = np.argsort(-weights, axis=1)[:, :2]
    experts = np.stack([keras.to_numpy(e(x)) for e in moe.experts], axis=1)
    want = sum(np.take_along_axis(weights, top[:, j:j + 1], 1) * experts[np.arange(6), top[:, j]] for j in range(2))
    np.testing.assert_allclose(out, want, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(keras.to_numpy(moe.usage), np.bincount(top.ravel(), minlength=4))
    assert all(w is not moe.usage for w in moe.trainable_weights)


def test_take_along_axis_broadcast_indices_forward_and_gradient_against_torch():
    rng = np.random.default_rng(1)
    for x_shape, idx_shape, axis in [((3, 4, 5), (3, 2, 1), 1), ((3, 1, 5), (3, 2, 5), 1), ((6,), (4,), None)]:
        x = rng.normal(size=x_shape).astype(np.float32)
        size = x.size if axis is None else x_shape[axis]
        idx = rng.integers(0, size, idx_shape)
        var = keras.Variable(x)
        with keras.GradientTape() as tape:
            y = ops.take_along_axis(var, idx, axis=axis)
            loss = ops.sum(y * y)
        grad = keras.to_numpy(tape.gradient(loss, var))
        xt = torch.tensor(x, requires_grad=True)
        if axis is None:
            yt = torch.take(xt, torch.tensor(idx))
        else:
            out_shape = np.broadcast_shapes(tuple(1 if i == axis else n for i, n in enumerate(x_shape)),
                                            tuple(1 if i == axis else n for i, n in enumerate(idx_shape)))
            xs, ids = list(out_shape), list(out_shape)
            xs[axis], ids[axis] = x_shape[axis], idx_shape[axis]
            yt = torch.gather(xt.expand(xs), axis, torch.tensor(idx).expand(ids))
        (yt * yt).sum().backward()
        np.testing.assert_allclose(keras.to_numpy(y), yt.detach().numpy(), rtol=1e-6)
        np.testing.assert_allclose(grad, xt.grad.numpy(), rtol=1e-5, atol=1e-6)


def test_custom_steps_with_auxiliary_loss_and_evaluate_order():
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    x = rng.random((64, 4, 4, 1)).astype(np.float32)
    y = keras.utils.to_categorical((x.reshape(64, -1).mean(1) > 0.5).astype(int) + (x[:, 0, 0, 0] > 0.5), 3)
    model = _MoEModel()
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss=keras.losses.CategoricalCrossentropy(),
                  metrics=["accuracy"])
    with pytest.warns(DeprecationWarning, match="compiled_metrics"):
        hist = model.fit(x, y, batch_size=16, epochs=2, validation_data=(x, y), verbose=0).history
    # The loss tracker is never updated by these steps and its "loss" entry comes last, so it wins, as in Keras.
    assert hist["loss"] == [0.0, 0.0]
    assert set(hist) == {"loss", "moe_loss", "accuracy", "val_loss", "val_moe_loss", "val_accuracy"}
    assert keras.to_numpy(model.moe.usage).sum() > 0
    with pytest.warns(DeprecationWarning):
        model.moe.usage.assign(np.zeros(4, np.float32))  # the same counts in both calls: the same moe_loss
        score = model.evaluate(x, y, verbose=0)
        model.moe.usage.assign(np.zeros(4, np.float32))
        logs = model.evaluate(x, y, verbose=0, return_dict=True)
    # Keras's order: the model's metrics (loss, accuracy), then the other entries sorted by name
    assert score == pytest.approx([logs["loss"], logs["accuracy"], logs["moe_loss"]])


@pytest.mark.gpu
def test_take_along_axis_broadcast_gradient_on_gpu_matches_cpu():
    import dlgpu
    rng = np.random.default_rng(3)
    x = rng.normal(size=(3, 1, 5)).astype(np.float32)
    idx = rng.integers(0, 5, (3, 2, 4))
    results = []
    for device in ("cpu", "gpu"):
        with dlgpu.device(device):
            xt = ops.convert_to_tensor(x)
            with keras.GradientTape() as tape:
                tape.watch(xt)
                y = ops.take_along_axis(xt, ops.convert_to_tensor(idx), axis=2)
                loss = ops.sum(y * y)
            results.append([keras.to_numpy(y), keras.to_numpy(tape.gradient(loss, xt))])
    for on_cpu, on_gpu in zip(*results):
        np.testing.assert_allclose(on_gpu, on_cpu, rtol=1e-6)
