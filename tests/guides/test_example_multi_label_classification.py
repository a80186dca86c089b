"""Patterns of keras.io's multi-label text classification example: label sets of different lengths
binarized by StringLookup(output_mode="multi_hot") (Keras takes them as a tf.RaggedTensor; dlgpu as
lists of different lengths), a bigram TF-IDF TextVectorization adapted from a dataset, a sigmoid MLP
with binary cross-entropy, and a Sequential([vectorizer, mlp]) that predicts from raw strings."""

import numpy as np
import pytest

import dlgpu as keras
from dlgpu import layers

_AREAS = ["cs.CV", "cs.LG", "stat.ML", "cs.CL"]


def test_multi_hot_of_label_sets_of_different_lengths():
    sets = [["cs.CV"], ["cs.LG", "stat.ML"], ["cs.LG", "cs.CV", "cs.CL"], ["cs.LG"]]
    lookup = layers.StringLookup(output_mode="multi_hot")
    lookup.adapt(sets)
    vocab = lookup.get_vocabulary()
    assert vocab[0] == "[UNK]" and vocab[1] == "cs.LG"  # the most frequent label first
    got = keras.to_numpy(lookup(sets + [["new.area", "cs.CV"]]))
    want = np.zeros((5, len(vocab)), np.float32)
    for row, labels in enumerate(sets + [["new.area", "cs.CV"]]):
        for label in labels:
            want[row, vocab.index(label) if label in vocab else 0] = 1
    np.testing.assert_array_equal(got, want)
    hot = np.argwhere(got[2] == 1.0)[..., 0]  # the example's inverse mapping
    assert sorted(np.take(vocab, hot).tolist()) == sorted(sets[2])
    # one label set inside a list is rectangular: the ordinary path
    np.testing.assert_array_equal(keras.to_numpy(lookup([sets[1]])), want[1:2])


def test_ragged_rows_in_count_and_tf_idf_and_refused_where_the_result_would_be_ragged():
    rows = [[3, 3, 5], [5], [7, 3]]
    counts = layers.IntegerLookup(output_mode="count", vocabulary=[3, 5, 7])
    np.testing.assert_array_equal(keras.to_numpy(counts(rows)), [[0, 2, 1, 0], [0, 0, 1, 0], [0, 1, 0, 1]])
    tfidf = layers.StringLookup(output_mode="tf_idf")
    tfidf.adapt([["a", "b"], ["a"], ["a", "c", "c"]])
    weights = keras.to_numpy(tfidf.idf_weights)
    got = keras.to_numpy(tfidf([["c", "c"], ["a"]]))
    vocab = tfidf.get_vocabulary()
    assert got[0, vocab.index("c")] == pytest.approx(2 * weights[vocab.index("c")])
    np.testing.assert_array_equal(np.flatnonzero(got[1]), [vocab.index("a")])
    with pytest.raises(ValueError, match="string_lookup.*output_mode='int'"):
        layers.StringLookup(vocabulary=["a"])([["a"], ["a", "a"]])


def _abstracts(n=96, seed=0):
    rng = np.random.default_rng(seed)
    words = {a: [f"{a.split('.')[1].lower()}{k}" for k in range(3)] for a in _AREAS}
    texts, sets = [], []
    for _ in range(n):
        labels = list(rng.choice(_AREAS, rng.integers(1, 3), replace=False))
        toks = [str(rng.choice(words[a])) for a in labels for _ in range(4)]
        toks += [f"w{rng.integers(20)}" for _ in range(8)]
        rng.shuffle(toks)
        texts.append(" ".join(toks))
        sets.append(labels)
    return np.array(texts), sets


class _Batches(keras.utils.PyDataset):
    def __init__(self, texts, targets, batch_size, vectorizer=None):
        super().__init__()
        self.texts, self.targets, self.batch_size, self.vectorizer = texts, targets, batch_size, vectorizer

    def __len__(self):
        return -(-len(self.texts) // self.batch_size)

    def __getitem__(self, i):
        part = slice(i * self.batch_size, (i + 1) * self.batch_size)
        text = self.texts[part]
        return (self.vectorizer(text) if self.vectorizer else text), self.targets[part]


def test_tf_idf_bigrams_mlp_and_a_sequential_that_reads_strings(tmp_path):
    keras.utils.set_random_seed(0)
    texts, sets = _abstracts()
    lookup = layers.StringLookup(output_mode="multi_hot")
    lookup.adapt(sets)
    targets = keras.to_numpy(lookup(sets))
    vec = layers.TextVectorization(max_tokens=200, ngrams=2, output_mode="tf_idf")
    vec.adapt(_Batches(texts, targets, 32))  # (text, labels) batches: adapt reads the text
    assert any(" " in token for token in vec.get_vocabulary())  # bigrams are tokens
    mlp = keras.Sequential([layers.Dense(32, activation="relu"),
                            layers.Dense(lookup.vocabulary_size(), activation="sigmoid")])
    mlp.compile(loss="binary_crossentropy", optimizer="adam", metrics=["binary_accuracy"])
    hist = mlp.fit(_Batches(texts[:80], targets[:80], 16, vec), epochs=5, verbose=0,
                   validation_data=_Batches(texts[80:], targets[80:], 16, vec)).history
    assert hist["loss"][-1] < hist["loss"][0] and hist["binary_accuracy"][-1] > 0.7
    _, accuracy = mlp.evaluate(_Batches(texts[80:], targets[80:], 16, vec), verbose=0)
    assert 0 <= accuracy <= 1

    reader = keras.Sequential([vec, mlp])  # no Input: built from the first strings it sees
    probs = reader.predict(texts[80:], verbose=0)
    assert reader.inputs[0].dtype == "string"
    np.testing.assert_allclose(probs, mlp.predict(keras.to_numpy(vec(texts[80:])), verbose=0), rtol=1e-5,
                               atol=1e-6)
    path = str(tmp_path / "reader.keras")
    reader.save(path)
    np.testing.assert_allclose(keras.saving.load_model(path).predict(texts[80:], verbose=0), probs, rtol=1e-5,
                               atol=1e-6)
