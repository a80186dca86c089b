"""Patterns of keras.io's node-classification GNN example: a graph-convolution Layer whose call gets
(node states, integer edge list, edge weights), gathers neighbours with ops.take, aggregates messages
with ops.segment_sum / segment_max, and combines; a subclassed Model that holds the whole graph as
attributes, is called with a batch of node ids, trained with fit(validation_split, EarlyStopping) and
then given a larger graph by reassigning those attributes."""

import numpy as np
import pytest

import dlgpu as keras
from dlgpu import layers, ops


def _ffn(units, name=None):
    return keras.Sequential([layers.BatchNormalization(), layers.Dropout(0.2), layers.Dense(units, activation="gelu")],
                            name=name)


class _GraphConv(layers.Layer):
    def __init__(self, units, aggregation="sum", combination="concat", **kwargs):
        super().__init__(**kwargs)
        self.aggregation, self.combination = aggregation, combination
        self.prepare = _ffn(units)
        self.update = _ffn(units)

    def call(self, inputs):
        nodes, edges, weights = inputs
        assert str(edges.dtype).startswith("int")  # ids arrive as integers
        messages = self.prepare(ops.take(nodes, edges[1], axis=0)) * ops.expand_dims(weights, -1)
        agg = {"sum": ops.segment_sum, "max": ops.segment_max}[self.aggregation]
        gathered = agg(messages, edges[0], num_segments=nodes.shape[0])
        h = ops.concatenate([nodes, gathered], axis=1) if self.combination == "concat" else nodes + gathered
        return ops.normalize(self.update(h), axis=-1)


class _NodeClassifier(keras.Model):
    def __init__(self, features, edges, weights, classes, units=8, **kwargs):
        super().__init__(**kwargs)
        self.features, self.edges = features, edges
        self.weights_ = weights / ops.sum(weights)
        self.pre = _ffn(units, name="pre")
        self.conv = _GraphConv(units, name="conv")
        self.logits = layers.Dense(classes)

    def call(self, node_ids):
        x = self.pre(self.features)
        x = x + self.conv((x, self.edges, self.weights_))
        return self.logits(ops.take(x, node_ids, axis=0))


def _graph(n=60, f=12, classes=3, seed=0):
    rng = np.random.default_rng(seed)
    label = rng.integers(0, classes, n)
    features = (rng.random((n, f)) < 0.15) | (rng.random((n, f)) < 0.5) & (np.arange(f) % classes == label[:, None])
    src = rng.integers(0, n, 200)
    dst = np.array([rng.choice(np.flatnonzero(label == label[s])) for s in src])
    return features.astype(np.float32), np.stack([src, dst]), label


@pytest.mark.parametrize("aggregation", ["sum", "max"])
def test_graph_conv_aggregates_like_numpy(aggregation):
    keras.utils.set_random_seed(0)
    conv = _GraphConv(4, aggregation=aggregation, combination="add")
    nodes = np.random.default_rng(1).normal(size=(5, 4)).astype(np.float32)
    edges = np.array([[0, 0, 2, 4, 4, 1, 3], [1, 3, 3, 0, 2, 2, 4]])  # every node receives a message
    weights = np.array([1.0, 0.5, 2.0, 1.0, 1.0, -1.0, 3.0], np.float32)
    out = keras.to_numpy(conv((nodes, edges, weights), training=False))
    messages = keras.to_numpy(conv.prepare(nodes[edges[1]], training=False)) * weights[:, None]
    gathered = np.zeros_like(nodes) if aggregation == "sum" else np.full_like(nodes, -np.inf)
    for e, target in enumerate(edges[0]):
        gathered[target] = gathered[target] + messages[e] if aggregation == "sum" else np.maximum(
            gathered[target], messages[e])
    h = keras.to_numpy(conv.update(nodes + gathered, training=False))
    np.testing.assert_allclose(out, h / np.linalg.norm(h, axis=-1, keepdims=True), rtol=1e-4, atol=1e-5)


def test_node_classifier_trains_on_ids_and_takes_a_bigger_graph():
    keras.utils.set_random_seed(0)
    features, edges, label = _graph()
    model = _NodeClassifier(ops.convert_to_tensor(features), edges, ops.ones((edges.shape[1],)), 3, name="gnn")
    assert model([1, 10, 20]).shape == (3, 3)
    model.compile(optimizer=keras.optimizers.Adam(0.01),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=[keras.metrics.SparseCategoricalAccuracy(name="acc")])
    stop = keras.callbacks.EarlyStopping(monitor="val_acc", patience=50, restore_best_weights=True)
    ids = np.arange(40)
    hist = model.fit(ids, label[ids], epochs=15, batch_size=16, validation_split=0.15, callbacks=[stop],
                     verbose=0).history
    assert {"loss", "acc", "val_loss", "val_acc"} <= set(hist)
    assert hist["loss"][-1] < hist["loss"][0]
    _, acc = model.evaluate(np.arange(40, 60), label[40:], verbose=0)
    assert 0 <= acc <= 1

    # two new nodes linked to nodes of class 0: the model now runs on the larger graph
    new_features = np.concatenate([features, features[label == 0][:2]])
    links = np.array([[60, 61, 60, 61], np.flatnonzero(label == 0)[:4]])
    model.features = new_features
    model.edges = np.concatenate([edges, links], axis=1)
    model.weights_ = ops.ones((model.edges.shape[1],))
    logits = model.predict(ops.convert_to_tensor([60, 61]), verbose=0)
    probs = keras.to_numpy(keras.activations.softmax(ops.convert_to_tensor(logits)))
    assert probs.shape == (2, 3)
    np.testing.assert_allclose(probs.sum(1), 1, rtol=1e-5)


def test_gradients_flow_through_take_and_segment_sum():
    nodes = keras.Variable(np.random.default_rng(2).normal(size=(4, 3)).astype(np.float32))
    edges = np.array([[0, 0, 3], [1, 2, 2]])
    with keras.GradientTape() as tape:
        out = ops.segment_sum(ops.take(nodes, edges[1], axis=0), edges[0], num_segments=4)
        loss = ops.sum(out * np.arange(12, dtype=np.float32).reshape(4, 3))
    grad = keras.to_numpy(tape.gradient(loss, nodes))
    upstream = np.arange(12, dtype=np.float32).reshape(4, 3)
    want = np.zeros((4, 3), np.float32)
    for target, source in edges.T:
        want[source] += upstream[target]
    np.testing.assert_allclose(grad, want)
