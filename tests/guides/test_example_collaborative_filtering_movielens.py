"""Patterns of keras.io's collaborative-filtering example: a subclassed Model that slices integer
(user, item) pairs out of one input, looks each column up in its own Embedding, joins them with a Dot
layer built inside call(), adds per-id biases and squashes with a sigmoid; called once on an Input, then
fit with validation data and used to rank items."""

import numpy as np
import pytest

import dlgpu as keras
from dlgpu import layers, ops


class _Recommender(keras.Model):
    def __init__(self, n_users, n_items, dim, **kwargs):
        super().__init__(**kwargs)
        self.user_vec = layers.Embedding(n_users, dim, embeddings_initializer="he_normal",
                                         embeddings_regularizer=keras.regularizers.l2(1e-6))
        self.user_bias = layers.Embedding(n_users, 1)
        self.item_vec = layers.Embedding(n_items, dim, embeddings_initializer="he_normal",
                                         embeddings_regularizer=keras.regularizers.l2(1e-6))
        self.item_bias = layers.Embedding(n_items, 1)
        self.seen_dtypes = []

    def call(self, pairs):
        self.seen_dtypes.append(str(pairs.dtype))
        u, i = pairs[:, 0], pairs[:, 1]
        score = layers.Dot(axes=1)([self.user_vec(u), self.item_vec(i)])
        return ops.sigmoid(score + self.user_bias(u) + self.item_bias(i))


def _ratings(n=600, n_users=12, n_items=15, seed=0):
    rng = np.random.default_rng(seed)
    taste = rng.normal(size=(n_users, 3))
    kind = rng.normal(size=(n_items, 3))
    pairs = np.stack([rng.integers(0, n_users, n), rng.integers(0, n_items, n)], axis=1)
    score = (taste[pairs[:, 0]] * kind[pairs[:, 1]]).sum(1)
    return pairs, (1 / (1 + np.exp(-score))).astype(np.float32)


def test_forward_is_sigmoid_of_dot_plus_biases_and_ids_stay_integers():
    keras.utils.set_random_seed(0)
    model = _Recommender(12, 15, 4)
    out = model(keras.Input(shape=(2,), dtype="int32"))
    assert out.shape == (None, 1)
    pairs, _ = _ratings(8)
    got = keras.to_numpy(model(pairs))
    assert model.seen_dtypes[-1].startswith("int")  # Keras casts only floating inputs
    uv, iv = keras.to_numpy(model.user_vec.embeddings), keras.to_numpy(model.item_vec.embeddings)
    ub, ib = keras.to_numpy(model.user_bias.embeddings), keras.to_numpy(model.item_bias.embeddings)
    logits = (uv[pairs[:, 0]] * iv[pairs[:, 1]]).sum(1, keepdims=True) + ub[pairs[:, 0]] + ib[pairs[:, 1]]
    np.testing.assert_allclose(got, 1 / (1 + np.exp(-logits)), rtol=1e-5, atol=1e-6)
    # the embedding regularizers add one penalty each
    assert len(model.losses) == 2


def test_fit_with_validation_learns_and_ranks():
    keras.utils.set_random_seed(1)
    pairs, y = _ratings()
    model = _Recommender(12, 15, 8)
    model.compile(loss=keras.losses.BinaryCrossentropy(), optimizer=keras.optimizers.Adam(learning_rate=0.02))
    hist = model.fit(pairs[:500], y[:500], batch_size=64, epochs=6, verbose=0,
                     validation_data=(pairs[500:], y[500:])).history
    assert set(hist) == {"loss", "val_loss"}
    assert hist["loss"][-1] < hist["loss"][0]
    candidates = np.hstack([[[3]] * 15, np.arange(15)[:, None]])
    ranked = model.predict(candidates, verbose=0).flatten().argsort()[::-1]
    assert sorted(ranked.tolist()) == list(range(15))


def test_the_old_lr_argument_is_refused_by_name():
    with pytest.raises(ValueError, match="lr"):
        keras.optimizers.Adam(lr=0.001)


def test_a_user_layer_keeps_integers_and_casts_floats():
    class Probe(layers.Layer):
        def call(self, x):
            return x

    probe = Probe()
    assert keras.to_numpy(probe(np.array([1, 2], np.int64))).dtype == np.int64
    assert keras.to_numpy(probe(np.array([1.5], np.float64))).dtype == np.float32
    # dlgpu's own float layers still turn integers into floats
    assert keras.to_numpy(layers.Dense(1)(np.ones((1, 2), np.int32))).dtype == np.float32
