"""Patterns of keras.io's pre-trained word embeddings example: a TextVectorization adapted from batches
of strings, its vocabulary turned into a word->index dict, an Embedding built by hand and loaded with a
fixed matrix (trainable=False), a Conv1D classifier over the ids, and an end-to-end model from a string
Input called on ops.convert_to_tensor of strings."""

import numpy as np
import pytest

import dlgpu as keras
from dlgpu import layers, ops

_TOPICS = [["graphics", "render", "pixel"], ["orbit", "rocket", "nasa"], ["engine", "wheel", "brake"]]


def _corpus(n=90, seed=0):
    rng = np.random.default_rng(seed)
    filler = ["the", "a", "of", "and", "is", "it", "to", "on"]
    docs, labels = [], []
    for i in range(n):
        c = i % 3
        words = [str(rng.choice(_TOPICS[c])) if rng.random() < 0.4 else str(rng.choice(filler))
                 for _ in range(rng.integers(12, 30))]
        docs.append(" ".join(words).capitalize() + ".")
        labels.append(c)
    return docs, np.array(labels)


def test_vocabulary_from_batches_and_the_word_index():
    docs, _ = _corpus()
    vec = layers.TextVectorization(max_tokens=50, output_sequence_length=12)
    vec.adapt(docs[i:i + 32] for i in range(0, len(docs), 32))  # batches of different sizes
    voc = vec.get_vocabulary()
    assert voc[:2] == ["", "[UNK]"]
    index = dict(zip(voc, range(len(voc))))
    ids = keras.to_numpy(vec([["the orbit of the UNSEEN"]]))
    assert ids.shape == (1, 12)
    assert ids[0, :5].tolist() == [index["the"], index["orbit"], index["of"], index["the"], 1]
    assert (ids[0, 5:] == 0).all()


def test_frozen_pretrained_embedding_in_a_conv_classifier_and_end_to_end_strings(tmp_path):
    keras.utils.set_random_seed(0)
    docs, labels = _corpus()
    vec = layers.TextVectorization(max_tokens=60, output_sequence_length=24)
    vec.adapt(docs)
    voc = vec.get_vocabulary()
    matrix = np.zeros((len(voc) + 2, 6))  # float64, as np.zeros gives; rows for unknown words stay 0
    for i, word in enumerate(voc):
        if word in {w for t in _TOPICS for w in t}:
            matrix[i] = np.random.default_rng(i).normal(size=6)
    emb = layers.Embedding(len(voc) + 2, 6, trainable=False)
    emb.build((1,))
    emb.set_weights([matrix])

    ids = keras.Input(shape=(None,), dtype="int32")
    x = layers.Conv1D(8, 3, activation="relu")(emb(ids))
    x = layers.MaxPooling1D(2)(x)
    x = layers.GlobalMaxPooling1D()(x)
    x = layers.Dropout(0.5)(layers.Dense(8, activation="relu")(x))
    model = keras.Model(ids, layers.Dense(3, activation="softmax")(x))
    assert sum(int(np.prod(w.shape)) for w in model.non_trainable_weights) == matrix.size
    model.compile(loss="sparse_categorical_crossentropy", optimizer="rmsprop", metrics=["acc"])
    x_train = keras.to_numpy(vec(np.array([[d] for d in docs])))
    hist = model.fit(x_train, labels, batch_size=16, epochs=8, verbose=0).history
    assert "acc" in hist and hist["loss"][-1] < hist["loss"][0]
    np.testing.assert_array_equal(emb.get_weights()[0], matrix.astype(np.float32))

    text = keras.Input(shape=(1,), dtype="string")
    end_to_end = keras.Model(text, model(vec(text)))
    probe = ops.convert_to_tensor([["nasa rocket orbit"], ["pixel render graphics"]])
    assert isinstance(probe, np.ndarray) and probe.dtype.kind == "U"
    probs = keras.to_numpy(end_to_end(probe))
    np.testing.assert_allclose(probs, model.predict(keras.to_numpy(vec(probe)), verbose=0), rtol=1e-5)
    path = str(tmp_path / "e2e.keras")
    end_to_end.save(path)
    again = keras.saving.load_model(path)
    np.testing.assert_allclose(again.predict(probe, verbose=0), probs, rtol=1e-5, atol=1e-6)


def test_convert_to_tensor_keeps_strings_on_the_host():
    assert ops.convert_to_tensor("a b").dtype == object
    arr = ops.convert_to_tensor(np.array([b"x", b"y"]))
    assert isinstance(arr, np.ndarray) and arr.dtype.kind == "S"
    assert ops.convert_to_tensor(["u", "v"], dtype="string").tolist() == ["u", "v"]
    with pytest.raises(ValueError, match="strings cannot become dtype 'float32'"):
        ops.convert_to_tensor(["u"], dtype="float32")
    with pytest.raises(ValueError, match="dtype='string' needs strings"):
        ops.convert_to_tensor([1, 2], dtype="string")
    # numbers are untouched by the string path
    numbers = ops.convert_to_tensor([[1.5, 2.0]])
    assert not isinstance(numbers, np.ndarray) and numbers.dtype == "float32"
