"""keras.io example "Text classification with Transformer": two custom layers (a TransformerBlock of
MultiHeadAttention, a Sequential feed-forward, LayerNormalization and Dropout; a TokenAndPositionEmbedding
that adds an Embedding of ops.arange(ops.shape(x)[-1])) in a functional classifier."""

import numpy as np
import torch

import dlgpu as keras
from dlgpu import layers, ops


class TransformerBlock(layers.Layer):
    def __init__(self, embed_dim, num_heads, ff_dim, rate=0.1):
        super().__init__()
        self.att = layers.MultiHeadAttention(num_heads=num_heads, key_dim=embed_dim)
        self.ffn = keras.Sequential([layers.Dense(ff_dim, activation="relu"), layers.Dense(embed_dim)])
        self.layernorm1 = layers.LayerNormalization(epsilon=1e-6)
        self.layernorm2 = layers.LayerNormalization(epsilon=1e-6)
        self.dropout1 = layers.Dropout(rate)
        self.dropout2 = layers.Dropout(rate)

    def call(self, inputs):  # no `training` argument: the dropouts read it from the outer call
        attended = self.dropout1(self.att(inputs, inputs))
        out1 = self.layernorm1(inputs + attended)
        return self.layernorm2(out1 + self.dropout2(self.ffn(out1)))


class TokenAndPositionEmbedding(layers.Layer):
    def __init__(self, maxlen, vocab_size, embed_dim):
        super().__init__()
        self.token_emb = layers.Embedding(input_dim=vocab_size, output_dim=embed_dim)
        self.pos_emb = layers.Embedding(input_dim=maxlen, output_dim=embed_dim)

    def call(self, x):
        positions = self.pos_emb(ops.arange(start=0, stop=ops.shape(x)[-1], step=1))
        return self.token_emb(x) + positions


def _classifier(maxlen=10, vocab=20, dim=8):
    inputs = layers.Input(shape=(maxlen,))
    x = TokenAndPositionEmbedding(maxlen, vocab, dim)(inputs)
    x = TransformerBlock(dim, 2, 8)(x)
    x = layers.GlobalAveragePooling1D()(x)
    x = layers.Dropout(0.1)(x)
    outputs = layers.Dense(2, activation="softmax")(x)
    return keras.Model(inputs=inputs, outputs=outputs)


def test_position_embedding_adds_one_row_per_step():
    layer = TokenAndPositionEmbedding(6, 9, 4)
    tokens = np.array([[1, 2, 3, 0, 0], [4, 4, 4, 4, 4]])
    out = layer(tokens).numpy()
    table, positions = layer.token_emb.embeddings.numpy(), layer.pos_emb.embeddings.numpy()
    np.testing.assert_allclose(out, table[tokens] + positions[:5], rtol=1e-6)


def test_transformer_block_matches_torch_in_inference():
    block = TransformerBlock(4, 2, 6)
    x = np.random.default_rng(0).normal(size=(2, 5, 4)).astype(np.float32)
    out = block(x, training=False).numpy()
    # Keras's weight order: query, key, value, attention_output; each kernel then bias
    names = ["/".join(w.path.split("/")[-2:]) for w in block.att.weights]
    assert names == [f"{part}/{kind}" for part in ("query", "key", "value", "attention_output")
                     for kind in ("kernel", "bias")]
    q, qb, k, kb, v, vb, o, ob = block.att.get_weights()
    t = torch.from_numpy(x)
    heads = [torch.einsum("btd,dhk->bhtk", t, torch.from_numpy(w)) + torch.from_numpy(b)[None, :, None]
             for w, b in ((q, qb), (k, kb), (v, vb))]
    scores = torch.softmax(heads[0] @ heads[1].transpose(-1, -2) / np.sqrt(4), -1)
    attended = torch.einsum("bhtk,hkd->btd", scores @ heads[2], torch.from_numpy(o)) + torch.from_numpy(ob)

    def norm(z, layer):
        return torch.nn.functional.layer_norm(z, (4,), torch.from_numpy(layer.gamma.numpy()),
                                              torch.from_numpy(layer.beta.numpy()), eps=1e-6)
    out1 = norm(t + attended, block.layernorm1)
    d1, d2 = block.ffn.layers
    ffn = torch.relu(out1 @ torch.from_numpy(d1.kernel.numpy()) + torch.from_numpy(d1.bias.numpy()))
    ffn = ffn @ torch.from_numpy(d2.kernel.numpy()) + torch.from_numpy(d2.bias.numpy())
    np.testing.assert_allclose(out, norm(out1 + ffn, block.layernorm2).numpy(), rtol=1e-4, atol=1e-5)


def test_classifier_trains_with_sparse_labels():
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, 64)
    x = rng.integers(3, 20, (64, 10))
    x[:, 0] = 1 + labels  # the class is written in the first token
    model = _classifier()
    assert model.layers[1].output.shape == (None, 10, 8) and model.layers[2].output.shape == (None, 10, 8)
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    history = model.fit(x, labels, batch_size=16, epochs=10, validation_data=(x[:16], labels[:16]), verbose=0)
    assert history.history["loss"][-1] < 0.5 * history.history["loss"][0]
    assert history.history["val_accuracy"][-1] >= 0.9
    # dropout inside the custom block follows fit/predict: predictions repeat exactly
    np.testing.assert_array_equal(model.predict(x[:4], verbose=0), model.predict(x[:4], verbose=0))
