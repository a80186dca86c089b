"""Patterns of keras.io's traffic-forecasting example: two timeseries_dataset_from_array streams (windows
and shifted targets) zipped into one dataset, a graph-convolution Layer that owns a keras.Variable made in
__init__ and takes neighbours by a Python list of ids, and an LSTM wrapper Layer that reshapes with
ops.shape inside call (also when the functional model is traced with a free batch axis)."""

import numpy as np

import dlgpu as keras
from dlgpu import layers, ops
from dlgpu.utils import timeseries_dataset_from_array


class _GraphConv(layers.Layer):
    def __init__(self, in_feat, out_feat, edges, num_nodes, **kwargs):
        super().__init__(**kwargs)
        self.edges, self.num_nodes = edges, num_nodes
        self.weight = keras.Variable(initializer=keras.initializers.GlorotUniform(), shape=(in_feat, out_feat),
                                     dtype="float32", trainable=True)

    def call(self, features):  # (nodes, batch, time, feat)
        neighbours = ops.take(features, self.edges[1], axis=0)
        summed = ops.segment_sum(neighbours, self.edges[0], num_segments=self.num_nodes)
        return ops.concatenate([ops.matmul(features, self.weight), ops.matmul(summed, self.weight)], axis=-1)


class _LSTMGC(layers.Layer):
    def __init__(self, out_feat, units, horizon, edges, num_nodes, **kwargs):
        super().__init__(**kwargs)
        self.graph_conv = _GraphConv(1, out_feat, edges, num_nodes)
        self.lstm = layers.LSTM(units, activation="relu")
        self.dense = layers.Dense(horizon)
        self.horizon = horizon

    def call(self, inputs):  # (batch, time, nodes, 1)
        out = self.graph_conv(ops.transpose(inputs, [2, 0, 1, 3]))
        shape = ops.shape(out)
        nodes, batch, steps, feat = shape[0], shape[1], shape[2], shape[3]
        out = self.dense(self.lstm(ops.reshape(out, (batch * nodes, steps, feat))))
        return ops.transpose(ops.reshape(out, (nodes, batch, self.horizon)), [1, 2, 0])


class _Zip(keras.utils.PyDataset):
    def __init__(self, a, b):
        super().__init__()
        self.a, self.b = a, b

    def __len__(self):
        return len(self.a)

    def __getitem__(self, i):
        return self.a[i], self.b[i]


def _windows(series, length, horizon, batch_size):
    inputs = timeseries_dataset_from_array(series[:-horizon, :, None], None, sequence_length=length,
                                           batch_size=batch_size)
    targets = timeseries_dataset_from_array(series[length + horizon - 1:], None, sequence_length=1,
                                            batch_size=batch_size)
    return _Zip(inputs, targets)


def test_zipped_windows_line_up_with_their_targets():
    series = np.arange(30, dtype=np.float32)[:, None] * [1.0, 10.0]
    data = _windows(series, length=4, horizon=3, batch_size=8)
    x, y = data[1]
    assert x.shape == (8, 4, 2, 1) and y.shape == (8, 1, 2)
    # window i covers steps i..i+3; its target is step i+3+3
    np.testing.assert_array_equal(y[:, 0, :], x[:, -1, :, 0] + np.array([3.0, 30.0]))
    assert len(data) == len(data.a) == -(-(30 - 3 - 4 + 1) // 8)


def test_graph_lstm_forecaster_traces_trains_and_matches_numpy_graph_conv():
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    nodes, steps = 4, 120
    series = (np.sin(np.arange(steps)[:, None] / 6 + np.arange(nodes)) + 0.05 * rng.normal(size=(steps, nodes)))
    series = series.astype(np.float32)
    adjacency = np.ones((nodes, nodes)) - np.eye(nodes)
    src, dst = np.where(adjacency == 1)
    edges = (src.tolist(), dst.tolist())
    block = _LSTMGC(3, 8, 1, edges, nodes)
    inputs = layers.Input((6, nodes, 1))
    outputs = block(inputs)
    assert outputs.shape == (None, 1, nodes)
    assert any(w is block.graph_conv.weight for w in block.trainable_weights)
    model = keras.Model(inputs, outputs)
    model.compile(optimizer=keras.optimizers.RMSprop(learning_rate=0.005), loss=keras.losses.MeanSquaredError())
    data = _windows(series, 6, 1, 16)
    hist = model.fit(data, validation_data=data, epochs=4, verbose=0,
                     callbacks=[keras.callbacks.EarlyStopping(patience=10)]).history
    assert hist["loss"][-1] < hist["loss"][0] and len(hist["val_loss"]) == 4
    x, _ = data[0]
    assert model.predict(x, verbose=0).shape == (16, 1, nodes)

    features = rng.normal(size=(nodes, 2, 6, 1)).astype(np.float32)
    w = keras.to_numpy(block.graph_conv.weight)
    summed = np.zeros_like(features)
    np.add.at(summed, src, features[dst])
    np.testing.assert_allclose(keras.to_numpy(block.graph_conv(features)),
                               np.concatenate([features @ w, summed @ w], axis=-1), rtol=1e-5, atol=1e-6)
