"""Model(inputs=<intermediate tensor>, ...): as Keras's clone_graph_nodes, the model starts from a fresh Input
(named "<tensor name>CLONE") and replays the layer calls after it, sharing the layers (and their weights)
with the graph it was cut from.  keras.io's FeatureSpace example trains such a model on encoded features."""

import numpy as np
import pytest

import dlgpu as keras
from dlgpu import layers


def _graph():
    keras.utils.set_random_seed(0)
    x = keras.Input((4,), name="x")
    h = layers.Dense(6, activation="relu", name="encoder")(x)
    skip = layers.Dense(6, name="skip")(h)
    out = layers.Dense(1, name="head")(layers.Add(name="sum")([skip, h]))  # h is used twice after the cut
    return x, h, out


def test_cut_model_shares_layers_and_matches_the_full_model(tmp_path):
    x, h, out = _graph()
    full = keras.Model(x, out)
    tail = keras.Model(inputs=h, outputs=out)
    assert [t.name for t in tail.inputs] == ["encoderCLONE"] and tail.inputs[0].shape == (None, 6)
    assert [l.name for l in tail.layers][1:] == ["skip", "sum", "head"]
    data = np.random.default_rng(0).normal(size=(5, 4)).astype(np.float32)
    hidden = keras.Model(x, h).predict(data, verbose=0)
    np.testing.assert_allclose(tail.predict(hidden, verbose=0), full.predict(data, verbose=0), rtol=1e-5, atol=1e-6)
    # training the cut model trains the shared layers of the full one
    before = full.predict(data, verbose=0)
    tail.compile(keras.optimizers.SGD(0.1), "mse")
    tail.fit(hidden, np.ones((5, 1), np.float32), epochs=3, verbose=0)
    assert not np.allclose(full.predict(data, verbose=0), before)
    np.testing.assert_allclose(tail.predict(hidden, verbose=0), full.predict(data, verbose=0), rtol=1e-5, atol=1e-6)
    # and it saves and loads as any functional model
    tail.save(tmp_path / "tail.keras")
    restored = keras.models.load_model(tmp_path / "tail.keras")
    np.testing.assert_allclose(restored.predict(hidden, verbose=0), tail.predict(hidden, verbose=0), rtol=1e-6)


def test_an_input_left_out_is_reported():
    x, h, _ = _graph()
    other = keras.Input((6,), name="other")
    out = layers.Add()([layers.Dense(6)(h), other])
    with pytest.raises(ValueError, match="Graph disconnected.*'other'"):
        keras.Model(inputs=h, outputs=out)
