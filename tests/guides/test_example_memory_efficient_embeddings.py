"""Patterns of keras.io's memory-efficient embeddings recipe (its baseline model): scalar string Inputs
(shape=()) named after the columns of a dict of arrays, Sequential([StringLookup, Embedding]) encoders
called on them, a Dot of the two embeddings and keras.activations.sigmoid applied to a symbolic tensor;
and its memory-efficient model: user layers called on a string Input, holding a StringLookup (with
num_oov_indices=0) and Embeddings combined through integer ops (quotient-remainder) or masks per block
(mixed dimensions).  Such a layer has no compute_output_shape, so its symbolic call runs it on dummies of
the Input's dtype (empty strings), which the lookup must accept while shapes are being inferred."""

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


class _QuotientRemainderEmbedding(keras.layers.Layer):
    """An id's embedding as the product of two rows of small tables: (index // buckets) and (index % buckets)."""

    def __init__(self, vocabulary, dim, buckets, **kwargs):
        super().__init__(**kwargs)
        self.vocabulary, self.dim, self.buckets = list(vocabulary), dim, buckets
        self.lookup = layers.StringLookup(vocabulary=self.vocabulary, mask_token=None, num_oov_indices=0)
        self.quotient = layers.Embedding(buckets, dim)
        self.remainder = layers.Embedding(buckets, dim)

    def call(self, ids):
        index = self.lookup(ids)
        return self.quotient(keras.ops.floor_divide(index, self.buckets)) * self.remainder(
            keras.ops.mod(index, self.buckets))

    def get_config(self):
        return {**super().get_config(), "vocabulary": self.vocabulary, "dim": self.dim, "buckets": self.buckets}


class _BlockEmbedding(keras.layers.Layer):
    """Mixed-dimension embeddings: each block of the vocabulary has its own width, projected to ``dim``; an
    id takes the row of its own block, the other blocks' rows are masked to zero."""

    def __init__(self, blocks, widths, dim, **kwargs):
        super().__init__(**kwargs)
        self.dim = dim
        self.block_index = layers.StringLookup(vocabulary=[v for b in blocks for v in b], mask_token=None)
        self.block_of_index = np.array([-1] + [i for i, b in enumerate(blocks) for _ in b])
        self.encoders = [keras.Sequential([layers.StringLookup(vocabulary=b, mask_token=None),
                                           layers.Embedding(len(b) + 1, w)]) for b, w in zip(blocks, widths)]
        self.projections = [layers.Lambda(lambda x: x) if w == dim else layers.Dense(dim) for w in widths]

    def call(self, ids):
        block = keras.ops.take(keras.ops.convert_to_tensor(self.block_of_index), self.block_index(ids))
        out = keras.ops.zeros((keras.ops.shape(ids)[0], self.dim))
        for i, (encode, project) in enumerate(zip(self.encoders, self.projections)):
            mine = keras.ops.expand_dims(keras.ops.cast(block == i, "float32"), 1)
            out = out + project(encode(ids)) * mine
        return out


def _ratings(users, items, n, seed=0):
    rng = np.random.default_rng(seed)
    u, i = rng.integers(0, len(users), n), rng.integers(0, len(items), n)
    return ({"user_id": np.array(users)[u], "item_id": np.array(items)[i]},
            (1 + (u % 3) + (i % 2)).astype(np.float32))


def test_user_layers_on_string_inputs_build_train_and_compute_the_recipes_embeddings():
    keras.utils.set_random_seed(1)
    users, items = [f"user_{i}" for i in range(30)], [f"item_{i}" for i in range(12)]
    user_in = layers.Input(name="user_id", shape=(), dtype="string")
    item_in = layers.Input(name="item_id", shape=(), dtype="string")
    user_layer = _QuotientRemainderEmbedding(users, 6, 7, name="user_embedding")
    item_layer = _BlockEmbedding([items[:4], items[4:9], items[9:]], [6, 3, 2], 6, name="item_embedding")
    user_vec, item_vec = user_layer(user_in), item_layer(item_in)
    assert user_vec.shape == (None, 6) and item_vec.shape == (None, 6)
    logits = layers.Dot(axes=1)([user_vec, item_vec])
    model = keras.Model([user_in, item_in], keras.activations.sigmoid(logits) * 5)
    # the recipe's counts: two 7x6 tables; three blocks of 5x6, 6x3 and 4x2 rows plus 3->6 and 2->6 projections
    assert model.count_params() == 2 * 7 * 6 + (5 * 6 + 6 * 3 + 4 * 2) + (3 * 6 + 6) + (2 * 6 + 6)

    data, rating = _ratings(users, items, 600)
    model.compile(optimizer=keras.optimizers.Adam(0.05), loss="mse")
    hist = model.fit(data, rating, batch_size=64, epochs=6, verbose=0).history
    assert hist["loss"][-1] < 0.7 * hist["loss"][0]

    # the user vector is the product of the quotient and remainder rows of the id's vocabulary index
    probe = np.array(["user_0", "user_8", "user_29"])
    index = np.array([0, 8, 29])
    q, r = (keras.to_numpy(t.embeddings) for t in (user_layer.quotient, user_layer.remainder))
    np.testing.assert_allclose(keras.to_numpy(user_layer(probe)), q[index // 7] * r[index % 7], rtol=1e-6)
    # an item of the third block: its 2-wide row (string index + 1 for the OOV slot) through its projection
    dense = item_layer.projections[2]
    row = keras.to_numpy(item_layer.encoders[2].layers[1].embeddings)[1 + 1]
    expected = row @ keras.to_numpy(dense.kernel) + keras.to_numpy(dense.bias)
    np.testing.assert_allclose(keras.to_numpy(item_layer(np.array(["item_10"])))[0], expected, rtol=1e-5)

    # outside shape inference, an id missing from a num_oov_indices=0 vocabulary is still an error
    with pytest.raises(ValueError, match="num_oov_indices=0.*'nobody'"):
        user_layer(np.array(["nobody"]))


def test_a_user_layer_on_an_integer_input_infers_its_shape_from_integer_dummies():
    class Gather(keras.layers.Layer):
        def call(self, index):
            if not np.issubdtype(np.dtype(str(index.dtype)), np.integer):
                raise TypeError(f"Gather needs integer indices, got {index.dtype}")
            return keras.ops.take(keras.ops.arange(10.0), index)

    x = keras.Input((3,), dtype="int32")
    model = keras.Model(x, Gather()(x))
    assert model.output_shape == (None, 3)
    np.testing.assert_array_equal(model.predict(np.array([[1, 2, 9]]), verbose=0), [[1.0, 2.0, 9.0]])
