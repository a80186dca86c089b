"""Patterns of keras.io's Compact Convolutional Transformer example: a tokenizer layer holding a
Sequential filled with add() in __init__, a reshape from ops.shape products, stochastic depth drawn from a
SeedGenerator, a learned position embedding sliced with ops.slice, sequence pooling (softmax over the
tokens, then a transposed matmul), label-smoothed categorical cross-entropy from logits, top-k accuracy,
and a weights-only best checkpoint that load_weights reads back."""

import numpy as np
import pytest

import dlgpu as keras
from dlgpu import layers, ops


class Tokenizer(layers.Layer):
    def __init__(self, channels=(4, 6), **kwargs):
        super().__init__(**kwargs)
        self.convs = keras.Sequential()
        for filters in channels:
            self.convs.add(layers.Conv2D(filters, 3, 1, padding="valid", use_bias=False, activation="relu",
                                         kernel_initializer="he_normal"))
            self.convs.add(layers.ZeroPadding2D(1))
            self.convs.add(layers.MaxPooling2D(3, 2, "same"))

    def call(self, images):
        out = self.convs(images)
        return ops.reshape(out, (-1, ops.shape(out)[1] * ops.shape(out)[2], ops.shape(out)[-1]))


class DropBlock(layers.Layer):
    def __init__(self, rate, **kwargs):
        super().__init__(**kwargs)
        self.rate = rate
        self.seeds = keras.random.SeedGenerator(7)

    def call(self, x, training=None):
        if not training:
            return x
        keep = 1 - self.rate
        shape = (ops.shape(x)[0],) + (1,) * (len(x.shape) - 1)
        mask = ops.floor(keep + keras.random.uniform(shape, 0, 1, seed=self.seeds))
        return x / keep * mask


class Positions(layers.Layer):
    def __init__(self, length, **kwargs):
        super().__init__(**kwargs)
        self.length = length

    def build(self, input_shape):
        self.table = self.add_weight(shape=(self.length, input_shape[-1]), initializer="glorot_uniform", name="table")

    def call(self, x):
        shape = ops.shape(x)
        return ops.broadcast_to(ops.slice(ops.convert_to_tensor(self.table), (0, 0), (shape[-2], shape[-1])), shape)


class SequencePool(layers.Layer):
    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.score = layers.Dense(1)

    def call(self, x):
        weights = ops.transpose(ops.softmax(self.score(x), axis=1), axes=(0, 2, 1))
        return ops.squeeze(ops.matmul(weights, x), -2)


def test_tokenizer_sequence_pooling_and_stochastic_depth():
    keras.utils.set_random_seed(0)
    tokens = Tokenizer()(np.ones((2, 12, 12, 3), "float32"))
    assert tokens.shape == (2, 9, 6)  # 12 -> conv 10 -> pad 12 -> pool 6 -> conv 4 -> pad 6 -> pool 3

    pool = SequencePool()
    x = np.random.default_rng(0).standard_normal((2, 5, 4)).astype("float32")
    out = pool(x).numpy()
    kernel, bias = (w.numpy() for w in pool.score.weights)
    scores = x @ kernel + bias
    weights = np.exp(scores - scores.max(axis=1, keepdims=True))
    weights /= weights.sum(axis=1, keepdims=True)
    np.testing.assert_allclose(out, (weights * x).sum(axis=1), rtol=1e-5, atol=1e-6)

    drop = DropBlock(0.5)
    ones = np.ones((64, 3, 2), "float32")
    assert np.array_equal(drop(ones).numpy(), ones)
    dropped = drop(ones, training=True).numpy()
    per_sample = dropped.reshape(64, -1)
    assert set(np.unique(per_sample)) <= {0.0, 2.0}
    assert all(len(set(row)) == 1 for row in per_sample)  # a whole sample is kept or dropped
    assert 0 < (per_sample[:, 0] == 0).sum() < 64
    assert not np.array_equal(dropped, drop(ones, training=True).numpy())  # the generator moves on


def test_label_smoothing_and_top_k_against_numpy():
    logits = np.array([[2.0, 0.5, -1.0, 0.0], [0.1, 0.2, 3.0, -2.0]], "float32")
    onehot = keras.utils.to_categorical([1, 2], 4)
    loss = keras.losses.CategoricalCrossentropy(from_logits=True, label_smoothing=0.1)(onehot, logits)
    smooth = onehot * 0.9 + 0.1 / 4
    log_p = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
    np.testing.assert_allclose(float(loss), np.mean(-(smooth * log_p).sum(axis=1)), rtol=1e-5)
    top2 = keras.metrics.TopKCategoricalAccuracy(2, name="top-2")
    top2.update_state(onehot, logits)
    assert float(top2.result()) == 1.0  # class 1 is the second-best logit in row 0
    top1 = keras.metrics.TopKCategoricalAccuracy(1)
    top1.update_state(onehot, logits)
    assert float(top1.result()) == 0.5


def _cct(classes=3):
    inputs = layers.Input((12, 12, 3))
    x = keras.Sequential([layers.Rescaling(1 / 255), layers.RandomCrop(12, 12), layers.RandomFlip("horizontal")],
                         name="augment")(inputs)
    tokens = Tokenizer()(x)
    tokens = tokens + Positions(tokens.shape[1])(tokens)
    for rate in np.linspace(0, 0.1, 2):
        y = layers.MultiHeadAttention(num_heads=2, key_dim=6, dropout=0.1)(
            layers.LayerNormalization(epsilon=1e-5)(tokens), layers.LayerNormalization(epsilon=1e-5)(tokens))
        tokens = layers.Add()([DropBlock(rate)(y), tokens])
        y = layers.Dense(6, activation=ops.gelu)(layers.LayerNormalization(epsilon=1e-5)(tokens))
        tokens = layers.Add()([DropBlock(rate)(layers.Dropout(0.1)(y)), tokens])
    pooled = SequencePool()(layers.LayerNormalization(epsilon=1e-5)(tokens))
    return keras.Model(inputs, layers.Dense(classes)(pooled))


# A layer holding a Sequential has no mapping to Keras's HDF5 layout: dlgpu writes its own format there.
@pytest.mark.filterwarnings("ignore:Keras's .keras format")
def test_cct_trains_with_adamw_and_restores_the_best_weights(tmp_path):
    keras.utils.set_random_seed(3)
    rng = np.random.default_rng(3)
    x = rng.integers(0, 256, (40, 12, 12, 3)).astype("uint8")
    y = keras.utils.to_categorical(rng.integers(0, 3, 40), 3)
    model = _cct()
    model.compile(optimizer=keras.optimizers.AdamW(learning_rate=1e-3, weight_decay=1e-4),
                  loss=keras.losses.CategoricalCrossentropy(from_logits=True, label_smoothing=0.1),
                  metrics=[keras.metrics.CategoricalAccuracy(name="accuracy"),
                           keras.metrics.TopKCategoricalAccuracy(2, name="top-2-accuracy")])
    path = str(tmp_path / "best.weights.h5")
    saves = []

    class Watch(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            saves.append(model.get_weights())

    check = keras.callbacks.ModelCheckpoint(path, monitor="val_accuracy", save_best_only=True,
                                            save_weights_only=True)
    history = model.fit(x, y, batch_size=8, epochs=3, validation_split=0.25, callbacks=[check, Watch()],
                        verbose=0).history
    assert set(history) == {"loss", "accuracy", "top-2-accuracy", "val_loss", "val_accuracy",
                            "val_top-2-accuracy"}
    best = int(np.argmax(history["val_accuracy"]))  # the first of equal bests: later ties do not improve
    model.load_weights(path)
    for saved, now in zip(saves[best], model.get_weights()):
        np.testing.assert_array_equal(saved, now)
    _, accuracy, top2 = model.evaluate(x, y, verbose=0)
    assert 0 <= accuracy <= top2 <= 1
