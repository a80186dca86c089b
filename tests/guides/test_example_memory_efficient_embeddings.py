"""Patterns of keras.io's memory-efficient embeddings recipe (its baseline model): scalar string Inputs
(shape=()) named after the columns of a dict of arrays, Sequential([StringLookup, Embedding]) encoders
called on them, a Dot of the two embeddings and keras.activations.sigmoid applied to a symbolic tensor.
The recipe's QR and mixed-dimension embedding layers (user layers fed a string symbolic input) are not
covered: see the report of this branch."""

import numpy as np
import pytest

import dlgpu as keras
from dlgpu import layers


def _encoder(vocabulary, dim, name):
    return keras.Sequential([layers.StringLookup(vocabulary=vocabulary, mask_token=None, num_oov_indices=0),
                             layers.Embedding(len(vocabulary), dim)], name=name)


def test_string_id_model_with_a_symbolic_activation_trains_saves_and_loads(tmp_path):
    keras.utils.set_random_seed(0)
    users, items = [f"user_{i}" for i in range(10)], [f"item_{i}" for i in range(8)]
    rng = np.random.default_rng(0)
    u, i = rng.integers(0, 10, 400), rng.integers(0, 8, 400)
    data = {"user_id": np.array(users)[u], "item_id": np.array(items)[i]}
    rating = (1 + (u % 3) + (i % 2)).astype(np.float32)

    user_in = layers.Input(name="user_id", shape=(), dtype="string")
    item_in = layers.Input(name="item_id", shape=(), dtype="string")
    logits = layers.Dot(axes=1)([_encoder(users, 6, "users")(user_in), _encoder(items, 6, "items")(item_in)])
    model = keras.Model([user_in, item_in], keras.activations.sigmoid(logits) * 5)
    model.compile(optimizer=keras.optimizers.Adam(0.05), loss=keras.losses.MeanSquaredError(),
                  metrics=[keras.metrics.MeanAbsoluteError(name="mae")])
    hist = model.fit(data, rating, batch_size=64, epochs=5, validation_split=0.15, verbose=0).history
    assert hist["loss"][-1] < hist["loss"][0] and "val_mae" in hist

    probe = {"user_id": np.array(["user_3", "user_7"]), "item_id": np.array(["item_0", "item_5"])}
    got = model.predict(probe, verbose=0)
    emb_u = keras.to_numpy(model.get_layer("users").layers[1].embeddings)[[3, 7]]
    emb_i = keras.to_numpy(model.get_layer("items").layers[1].embeddings)[[0, 5]]
    np.testing.assert_allclose(got[:, 0], 5 / (1 + np.exp(-(emb_u * emb_i).sum(1))), rtol=1e-5)
    path = str(tmp_path / "ids.keras")
    model.save(path)
    np.testing.assert_allclose(keras.saving.load_model(path).predict(probe, verbose=0), got, rtol=1e-5)


def test_activations_on_symbolic_tensors():
    x = keras.Input((4,))
    outs = [keras.activations.softmax(x, axis=-1), keras.activations.relu(x), keras.activations.linear(x),
            keras.activations.gelu(x, approximate=True), keras.activations.leaky_relu(x, negative_slope=0.1)]
    model = keras.Model(x, outs)
    v = np.array([[-2.0, -0.5, 0.5, 3.0]], np.float32)
    got = [keras.to_numpy(o) for o in model(v)]
    np.testing.assert_allclose(got[0], np.exp(v) / np.exp(v).sum(), rtol=1e-5)
    np.testing.assert_allclose(got[1], np.maximum(v, 0))
    np.testing.assert_allclose(got[2], v)
    np.testing.assert_allclose(got[3], keras.to_numpy(keras.activations.gelu(v, approximate=True)), rtol=1e-6)
    np.testing.assert_allclose(got[4], np.where(v > 0, v, 0.1 * v), rtol=1e-6)
    with pytest.raises(NotImplementedError, match="max_value"):
        keras.activations.relu(x, max_value=6.0)
    assert keras.activations.get("swish") is keras.activations.silu
    assert keras.activations.serialize(keras.activations.sigmoid) == "sigmoid"
