"""StringLookup, IntegerLookup, Hashing, TextVectorization: Keras's docstring examples, vocabulary order,
OOV/mask handling, every output mode (tf_idf against a numpy reference), invert round trips, adapt from a
generator, sequence padding/truncation, config round trips, save/load, a text-classification toy, errors."""

import json

import numpy as np
import pytest

import dlgpu
from dlgpu import layers
from dlgpu.models import load_model
from .layer_test_case import run_layer_test


def _np(t):
    return t.numpy() if hasattr(t, "numpy") else np.asarray(t)


# -- StringLookup / IntegerLookup: Keras's docstring examples --------------------------------------------
VOCAB = ["a", "b", "c", "d"]
IVOCAB = [12, 36, 1138, 42]


def test_string_lookup_keras_examples():
    data = [["a", "c", "d"], ["d", "z", "b"]]
    out = layers.StringLookup(vocabulary=VOCAB)(data)
    assert out.dtype == "int64"
    np.testing.assert_array_equal(_np(out), [[1, 3, 4], [4, 0, 2]])
    layer = layers.StringLookup()
    layer.adapt(data)
    assert layer.get_vocabulary() == ["[UNK]", "d", "z", "c", "b", "a"]
    np.testing.assert_array_equal(_np(layers.StringLookup(vocabulary=VOCAB, output_mode="one_hot")(
        ["a", "b", "c", "d", "z"])), np.eye(5)[[1, 2, 3, 4, 0]])
    multi = [["a", "c", "d", "d"], ["d", "z", "b", "z"]]
    np.testing.assert_array_equal(_np(layers.StringLookup(vocabulary=VOCAB, output_mode="multi_hot")(multi)),
                                  [[0, 1, 0, 1, 1], [1, 0, 1, 0, 1]])
    np.testing.assert_array_equal(_np(layers.StringLookup(vocabulary=VOCAB, output_mode="count")(multi)),
                                  [[0, 1, 0, 1, 2], [2, 0, 1, 0, 1]])
    tfidf = layers.StringLookup(vocabulary=VOCAB, output_mode="tf_idf", idf_weights=[0.25, 0.75, 0.6, 0.4])
    np.testing.assert_allclose(_np(tfidf(multi)), [[0, 0.25, 0, 0.6, 0.8], [1.0, 0, 0.75, 0, 0.4]], rtol=1e-6)
    tfidf = layers.StringLookup(vocabulary=["[UNK]"] + VOCAB, output_mode="tf_idf",
                                idf_weights=[0.9, 0.25, 0.75, 0.6, 0.4])
    np.testing.assert_allclose(_np(tfidf(multi)), [[0, 0.25, 0, 0.6, 0.8], [1.8, 0, 0.75, 0, 0.4]], rtol=1e-6)
    inverted = layers.StringLookup(vocabulary=VOCAB, invert=True)(np.array([[1, 3, 4], [4, 0, 2]]))
    assert inverted.tolist() == [["a", "c", "d"], ["d", "[UNK]", "b"]]


def test_integer_lookup_keras_examples():
    data = np.array([[12, 1138, 42], [42, 1000, 36]])
    np.testing.assert_array_equal(_np(layers.IntegerLookup(vocabulary=IVOCAB)(data)), [[1, 3, 4], [4, 0, 2]])
    layer = layers.IntegerLookup()
    layer.adapt(data)
    assert layer.get_vocabulary() == [-1, 42, 1138, 1000, 36, 12]
    two = layers.IntegerLookup(vocabulary=IVOCAB, num_oov_indices=2)  # floormod buckets, as Keras
    np.testing.assert_array_equal(_np(two(np.array([[12, 1138, 42], [37, 1000, 36]]))), [[2, 4, 5], [1, 0, 3]])
    np.testing.assert_array_equal(_np(layers.IntegerLookup(vocabulary=IVOCAB, output_mode="one_hot")(
        np.array([12, 36, 1138, 42, 7]))), np.eye(5)[[1, 2, 3, 4, 0]])
    multi = np.array([[12, 1138, 42, 42], [42, 7, 36, 7]])
    np.testing.assert_array_equal(_np(layers.IntegerLookup(vocabulary=IVOCAB, output_mode="multi_hot")(multi)),
                                  [[0, 1, 0, 1, 1], [1, 0, 1, 0, 1]])
    np.testing.assert_array_equal(_np(layers.IntegerLookup(vocabulary=IVOCAB, output_mode="count")(multi)),
                                  [[0, 1, 0, 1, 2], [2, 0, 1, 0, 1]])
    tfidf = layers.IntegerLookup(vocabulary=IVOCAB, output_mode="tf_idf", idf_weights=[0.25, 0.75, 0.6, 0.4])
    np.testing.assert_allclose(_np(tfidf(multi)), [[0, 0.25, 0, 0.6, 0.8], [1.0, 0, 0.75, 0, 0.4]], rtol=1e-6)
    inverted = layers.IntegerLookup(vocabulary=IVOCAB, invert=True)(np.array([[1, 3, 4], [4, 0, 2]]))
    np.testing.assert_array_equal(_np(inverted), [[12, 1138, 42], [42, -1, 36]])


def test_lookup_vocabulary_order_max_tokens_and_special_tokens():
    # count high to low, ties broken by the token high to low (Keras's lexsort(...)[::-1])
    layer = layers.StringLookup(max_tokens=4, mask_token="")
    layer.adapt(np.array(["x", "y", "y", "b", "a", "a", "", "[UNK]", "z"]))
    assert layer.get_vocabulary() == ["", "[UNK]", "y", "a"]
    assert layer.get_vocabulary(include_special_tokens=False) == ["y", "a"]
    assert layer.vocabulary_size() == 4
    np.testing.assert_array_equal(_np(layer(["a", "", "q", "y"])), [3, 0, 1, 2])
    # a scalar input stays a scalar; a given vocabulary may include the special tokens at its start
    assert _np(layers.StringLookup(vocabulary=["[UNK]", "a", "b"])("b")).tolist() == 2


def test_lookup_oov_and_mask_handling():
    two = layers.StringLookup(vocabulary=VOCAB, num_oov_indices=2)
    assert two.get_vocabulary() == ["[UNK]", "[UNK]", "a", "b", "c", "d"]
    out = _np(two(np.array(["a", "zz", "q", "zz", "d"])))
    assert out[0] == 2 and out[4] == 5 and out[1] == out[3] and set(out[1:4]) <= {0, 1}  # stable hash buckets
    np.testing.assert_array_equal(_np(two(np.array(["zz", "q"]))), out[[1, 2]])
    masked = layers.StringLookup(vocabulary=VOCAB, mask_token="[MASK]")
    np.testing.assert_array_equal(_np(masked(["[MASK]", "a", "e"])), [0, 2, 1])
    # outside int mode the mask token is not in the vocabulary and is dropped
    hot = layers.StringLookup(vocabulary=VOCAB, mask_token="[MASK]", output_mode="multi_hot")
    assert hot.get_vocabulary() == ["[UNK]"] + VOCAB
    np.testing.assert_array_equal(_np(hot([["[MASK]", "a"], ["e", "[MASK]"]])), [[0, 1, 0, 0, 0], [1, 0, 0, 0, 0]])
    strict = layers.StringLookup(vocabulary=VOCAB, num_oov_indices=0, name="strict")
    np.testing.assert_array_equal(_np(strict(["d", "a"])), [3, 0])
    with pytest.raises(ValueError, match="'strict'.*num_oov_indices=0.*'zz'"):
        strict(["a", "zz"])
    padded = layers.StringLookup(vocabulary=VOCAB, output_mode="count", max_tokens=8, pad_to_max_tokens=True)
    assert _np(padded([["a", "a"]])).shape == (1, 8)
    # awkward shapes: rank 3 in int and one_hot mode, an empty batch
    words = np.array([[["a", "zz"], ["d", "a"]]])
    np.testing.assert_array_equal(_np(layers.StringLookup(vocabulary=VOCAB)(words)), [[[1, 0], [4, 1]]])
    assert _np(layers.StringLookup(vocabulary=VOCAB, output_mode="one_hot")(words)).shape == (1, 2, 2, 5)
    assert _np(layers.StringLookup(vocabulary=VOCAB)(np.zeros((0, 3), str))).shape == (0, 3)
    # IntegerLookup's oov_method="farmhash" hashes the integers' text with FarmHash, as Keras
    hashed = layers.IntegerLookup(vocabulary=IVOCAB, num_oov_indices=3, oov_method="farmhash")
    first = _np(hashed(np.array([5, 6, 7, 12])))
    assert first[3] == 3 and set(first[:3]) <= {0, 1, 2}
    np.testing.assert_array_equal(_np(hashed(np.array([5, 6, 7, 12]))), first)


def test_invert_round_trips():
    words = np.array([["c", "a", "zz"], ["d", "d", "b"]])
    fwd = layers.StringLookup(vocabulary=VOCAB, mask_token="")
    back = layers.StringLookup(vocabulary=fwd.get_vocabulary(), mask_token="", invert=True)
    assert back(fwd(words)).tolist() == [["c", "a", "[UNK]"], ["d", "d", "b"]]
    ints = np.array([[7, 12, 42], [36, 36, 1138]])
    fwd = layers.IntegerLookup(vocabulary=IVOCAB)
    back = layers.IntegerLookup(vocabulary=IVOCAB, invert=True)
    np.testing.assert_array_equal(_np(back(fwd(ints))), [[-1, 12, 42], [36, 36, 1138]])


def test_tf_idf_adapt_matches_numpy_reference():
    docs = [["a", "b", "a"], ["b", "c", "c"], ["a", "d", "e"], ["c", "c", "c"]]
    layer = layers.StringLookup(output_mode="tf_idf")
    layer.adapt(docs)  # a list: one document per element? no, per row of the (4, 3) array, as Keras
    vocab = layer.get_vocabulary()
    assert vocab == ["[UNK]", "c", "a", "b", "e", "d"]
    df = np.array([sum(t in d for d in docs) for t in vocab[1:]], np.float64)
    idf = np.log(1 + len(docs) / (1 + df))
    idf = np.concatenate([[idf.mean()], idf])
    counts = np.array([[d.count(t) for t in vocab] for d in [["a", "q", "a"], ["c", "e", "c"]]], np.float64)
    counts[:, 0] = [1, 0]  # "q" is OOV
    out = _np(layer([["a", "q", "a"], ["c", "e", "c"]]))
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, counts * idf, rtol=1e-6)


def test_lookup_adapt_from_generator_and_integer_contract():
    def batches():
        yield np.array([[1, 2, 2]])
        yield np.array([[3, 2, 5], [5, 5, 1]])
    layer = layers.IntegerLookup(max_tokens=4)
    layer.adapt(batches())
    assert layer.get_vocabulary() == [-1, 5, 2, 1]
    run_layer_test(layers.IntegerLookup, {"vocabulary": [0, 1, 2, 3], "output_mode": "multi_hot"}, (3, 4), (3, 5),
                   input_dtype="int64")
    run_layer_test(layers.Hashing, {"num_bins": 3, "output_mode": "count"}, (2, 6), (2, 3), input_dtype="int64")


def test_lookup_config_round_trip_keeps_adapted_vocabulary():
    layer = layers.StringLookup(output_mode="tf_idf", name="sl")
    layer.adapt([["x", "y"], ["y", "z"]])
    config = json.loads(json.dumps(layer.get_config()))
    assert {"invert", "max_tokens", "num_oov_indices", "oov_token", "mask_token", "output_mode", "sparse",
            "pad_to_max_tokens", "idf_weights", "vocabulary", "vocabulary_size", "encoding"} <= set(config)
    clone = layers.StringLookup.from_config(config)
    assert clone.get_vocabulary() == layer.get_vocabulary()
    x = [["x", "q"], ["z", "z"]]
    np.testing.assert_allclose(_np(clone(x)), _np(layer(x)), rtol=1e-6)
    clone = layers.deserialize(layers.serialize(layers.IntegerLookup(vocabulary=IVOCAB, mask_token=0)))
    assert clone.get_vocabulary() == [0, -1] + IVOCAB


def test_integer_lookup_in_a_model_saved_and_loaded(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.choice([3, 17, 40, 99], size=(96, 5))
    y = (x == 17).any(axis=1).astype(np.int64)
    lookup = layers.IntegerLookup(output_mode="multi_hot")
    lookup.adapt(x)
    dlgpu.set_random_seed(0)
    inputs = dlgpu.Input((5,), dtype="int64")
    outputs = layers.Dense(2, activation="softmax")(layers.Dense(8, activation="relu")(lookup(inputs)))
    model = dlgpu.Model(inputs, outputs)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    model.fit(x, y, epochs=2, batch_size=32, verbose=0)
    model.save(tmp_path / "lookup.dlgpu")
    loaded = load_model(tmp_path / "lookup.dlgpu")
    assert loaded.layers[1].get_vocabulary() == lookup.get_vocabulary()
    np.testing.assert_allclose(loaded.predict(x, verbose=0), model.predict(x, verbose=0), rtol=1e-6)


# -- Hashing -----------------------------------------------------------------------------------------------
def test_hashing_stable_bins_mask_and_salt():
    words = np.array([["A", "B", "C", "D", "E"]]).T
    out = _np(layers.Hashing(num_bins=3)(words))
    assert out.shape == (5, 1) and out.dtype == np.int64 and out.min() >= 0 and out.max() < 3
    np.testing.assert_array_equal(_np(layers.Hashing(num_bins=3)(words)), out)  # deterministic
    ints = np.array([[1, 2, 3], [3, 0, 7]])
    np.testing.assert_array_equal(_np(layers.Hashing(num_bins=5)(ints)),
                                  _np(layers.Hashing(num_bins=5)(ints.astype(str))))  # ints hash as their text
    masked = _np(layers.Hashing(num_bins=3, mask_value="")(np.array([["A"], [""], ["C"]])))
    assert masked[1, 0] == 0 and masked[[0, 2], 0].min() >= 1
    many = np.array([str(i) for i in range(200)])
    a, b = _np(layers.Hashing(num_bins=50, salt=1)(many)), _np(layers.Hashing(num_bins=50, salt=[1, 1])(many))
    np.testing.assert_array_equal(a, b)
    assert (a != _np(layers.Hashing(num_bins=50)(many))).any()
    assert len(np.unique(a)) > 30  # spread over the bins
    hot = _np(layers.Hashing(num_bins=4, output_mode="multi_hot")(np.array([["x", "x", "y"]])))
    assert hot.shape == (1, 4) and set(np.unique(hot)) <= {0.0, 1.0}
    config = layers.Hashing(num_bins=3, salt=5, mask_value="m").get_config()
    assert layers.Hashing.from_config(config).salt == [5, 5]


# -- TextVectorization ---------------------------------------------------------------------------------------
def test_text_vectorization_keras_examples():
    layer = layers.TextVectorization(max_tokens=5000, output_mode="int", output_sequence_length=4)
    layer.adapt(["foo bar", "bar baz", "baz bada boom"])
    out = layer([["foo qux bar"], ["qux baz"]])
    assert out.dtype == "int64"
    np.testing.assert_array_equal(_np(out), [[4, 1, 3, 0], [1, 2, 0, 0]])
    layer = layers.TextVectorization(max_tokens=5000, output_mode="int", output_sequence_length=4,
                                     vocabulary=["earth", "wind", "and", "fire"])
    assert layer.get_vocabulary() == ["", "[UNK]", "earth", "wind", "and", "fire"]


@pytest.mark.parametrize("standardize, split, expected", [
    ("lower_and_strip_punctuation", "whitespace", [["hello", "world", "café"], ["its", "Élan"]]),
    ("lower", "whitespace", [["hello,", "world!", "café"], ["it's", "Élan"]]),  # ASCII-only lowering, as TF
    ("strip_punctuation", "whitespace", [["Hello", "WORLD", "café"], ["Its", "Élan"]]),
    (None, "whitespace", [["Hello,", "WORLD!", "café"], ["It's", "Élan"]]),
    (None, None, [["Hello,  WORLD! café "], ["It's\tÉlan"]]),
    ("lower", "character", [list("hello,  world! café "), list("it's\tÉlan")]),
    (lambda s: np.array([t.replace("l", "L") for t in s], dtype=object), lambda s: [t.split(" ") for t in s],
     [["HeLLo,", "", "WORLD!", "café", ""], ["It's\tÉLan"]]),
])
def test_standardize_and_split(standardize, split, expected):
    layer = layers.TextVectorization(standardize=standardize, split=split)
    assert layer._tokens(["Hello,  WORLD! café ", "It's\tÉlan"]) == expected


def test_ngrams():
    layer = layers.TextVectorization(ngrams=2)
    assert layer._tokens(["a b c"]) == [["a", "b", "c", "a b", "b c"]]
    layer = layers.TextVectorization(ngrams=(2, 3))
    assert layer._tokens(["a b c d"]) == [["a b", "b c", "c d", "a b c", "b c d"]]
    layer = layers.TextVectorization(ngrams=3, vocabulary=["a", "a b", "a b c"], output_mode="count")
    # OOV: "b", "c", "b c"
    np.testing.assert_array_equal(_np(layer(["a b c", "b"])), [[3, 1, 1, 1], [1, 0, 0, 0]])


def test_sequence_padding_truncation_and_batch_shapes():
    layer = layers.TextVectorization(vocabulary=["a", "b", "c"], output_sequence_length=3)
    np.testing.assert_array_equal(_np(layer(np.array(["a b c a b", "c", ""]))), [[2, 3, 4], [4, 0, 0], [0, 0, 0]])
    free = layers.TextVectorization(vocabulary=["a", "b", "c"])
    np.testing.assert_array_equal(_np(free(["a x", "c b a b"])), [[2, 1, 0, 0], [4, 3, 2, 3]])
    np.testing.assert_array_equal(_np(free("b a")), [3, 2])  # one string: one sequence
    assert _np(free(np.array([["a"]]))).shape == (1, 1)  # batch 1 of shape (1, 1)
    assert _np(free(np.array([], dtype=str))).shape == (0, 0)
    assert _np(free([b"a", b"c"])).tolist() == [[2], [4]]  # bytes are UTF-8
    assert _np(free(np.array(["a b", "c"], dtype=object))).tolist() == [[2, 3], [4, 0]]


def test_text_vectorization_output_modes_and_tf_idf_reference():
    texts = ["the cat sat", "the dog sat down", "a cat a dog", "the end"]
    multi = layers.TextVectorization(output_mode="multi_hot")
    multi.adapt(texts)
    vocab = multi.get_vocabulary()
    assert vocab[0] == "[UNK]" and "" not in vocab  # no padding token outside int mode
    counts = np.array([[t.split().count(w) for w in vocab] for t in ["the cat the zebra"]], np.float32)
    counts[0, 0] = 1
    np.testing.assert_array_equal(_np(multi(["the cat the zebra"])), np.minimum(counts, 1))
    count = layers.TextVectorization(output_mode="count", vocabulary=vocab[1:])
    np.testing.assert_array_equal(_np(count(["the cat the zebra"])), counts)
    tfidf = layers.TextVectorization(output_mode="tf_idf", max_tokens=6, pad_to_max_tokens=True)
    tfidf.adapt(texts)
    vocab = tfidf.get_vocabulary()
    df = np.array([sum(w in t.split() for t in texts) for w in vocab[1:]], np.float64)
    idf = np.log(1 + len(texts) / (1 + df))
    idf = np.concatenate([[idf.mean()], idf])
    query = "the the sat zebra"
    tf = np.array([query.split().count(w) for w in vocab], np.float64)
    tf[0] = 1
    out = _np(tfidf([query]))
    assert out.shape == (1, 6)
    np.testing.assert_allclose(out[0], tf * idf, rtol=1e-6)
    # outside int mode the output width is the vocabulary size, fixed once the layer has been called
    with pytest.raises(RuntimeError, match="vocabulary size cannot change after the layer was called"):
        multi.adapt(texts + ["brand new words"])
    hot = layers.TextVectorization(output_mode="one_hot", split=None, vocabulary=["x", "y"])
    np.testing.assert_array_equal(_np(hot(["y", "q"])), [[0, 0, 1], [1, 0, 0]])


def test_adapt_from_generator_and_set_vocabulary():
    def batches():
        yield np.array(["b a", "c b"])
        yield ["b", "d d d"], np.zeros(2)  # an (x, y) pair counts by its x
    layer = layers.TextVectorization()
    layer.adapt(batches())
    assert layer.get_vocabulary() == ["", "[UNK]", "d", "b", "c", "a"]
    layer = layers.TextVectorization(max_tokens=4)
    layer.adapt(batches(), steps=1)
    assert layer.get_vocabulary() == ["", "[UNK]", "b", "c"]
    layer.set_vocabulary(["x", "y"])
    np.testing.assert_array_equal(_np(layer(["y x z"])), [[3, 2, 1]])
    layer.adapt(["e e f"])  # as Keras: only a vocabulary given at construction forbids adapt()
    assert layer.get_vocabulary() == ["", "[UNK]", "e", "f"]
    with pytest.raises(ValueError, match="'fixed'.*cannot adapt"):
        layers.TextVectorization(vocabulary=["a"], name="fixed").adapt(["a"])


def test_text_vectorization_config_round_trip():
    layer = layers.TextVectorization(max_tokens=10, ngrams=(1, 2), output_mode="tf_idf", name="tv")
    layer.adapt(["a b", "b c", "c c a"])
    config = json.loads(json.dumps(layers.serialize(layer)))
    assert {"max_tokens", "standardize", "split", "ngrams", "output_mode", "output_sequence_length",
            "pad_to_max_tokens", "sparse", "ragged", "vocabulary", "idf_weights", "encoding",
            "vocabulary_size"} <= set(config["config"])
    clone = layers.deserialize(config)
    assert clone.get_vocabulary() == layer.get_vocabulary() and clone._ngrams == (1, 2)
    np.testing.assert_allclose(_np(clone(["a b c d"])), _np(layer(["a b c d"])), rtol=1e-6)

    @dlgpu.saving.register_keras_serializable(name="upper_text")
    def upper(strings):
        return np.array([s.upper() for s in strings], dtype=object)
    custom = layers.TextVectorization(standardize=upper, vocabulary=["A"])
    clone = layers.deserialize(json.loads(json.dumps(layers.serialize(custom))))
    assert _np(clone(["a b"])).tolist() == [[2, 1]]
    with pytest.raises(ValueError, match="register_keras_serializable"):
        layers.TextVectorization(split=lambda s: [t.split() for t in s]).get_config()


def _toy_corpus(n=320, seed=0):
    rng = np.random.default_rng(seed)
    filler = ["the", "a", "movie", "was", "plot", "actor", "scene", "and", "very", "quite", "long", "story"]
    texts, labels = [], []
    for i in range(n):
        words = list(rng.choice(filler, size=rng.integers(4, 12)))
        label = i % 2
        words.insert(int(rng.integers(0, len(words))), "great!" if label else "awful.")
        texts.append(" ".join(words).capitalize())
        labels.append(label)
    return texts, np.array(labels)


def test_text_classification_from_scratch_pattern(tmp_path):
    texts, y = _toy_corpus()
    vectorize_layer = layers.TextVectorization(max_tokens=20000, output_mode="int", output_sequence_length=16)
    vectorize_layer.adapt(texts)
    x = vectorize_layer(np.array(texts))
    assert x.shape == (len(texts), 16)
    dlgpu.set_random_seed(0)
    inputs = dlgpu.Input(shape=(16,), dtype="int64")
    h = layers.Embedding(vectorize_layer.vocabulary_size(), 8)(inputs)
    h = layers.Conv1D(8, 3, activation="relu", padding="same")(h)
    h = layers.GlobalMaxPooling1D()(h)
    outputs = layers.Dense(1, activation="sigmoid")(h)
    model = dlgpu.Model(inputs, outputs)
    model.compile(optimizer=dlgpu.optimizers.Adam(0.02), loss="binary_crossentropy", metrics=["accuracy"])
    history = model.fit(x, y, epochs=8, batch_size=32, verbose=0)
    assert history.history["accuracy"][-1] > 0.95
    # the vocabulary travels with the saved config; the loaded pair predicts the same
    (tmp_path / "vectorizer.json").write_text(json.dumps(layers.serialize(vectorize_layer)))
    model.save(tmp_path / "text.dlgpu")
    vec2 = layers.deserialize(json.loads((tmp_path / "vectorizer.json").read_text()))
    model2 = load_model(tmp_path / "text.dlgpu")
    new = ["A very long great! story", "Awful. plot"]
    np.testing.assert_allclose(model2.predict(vec2(new), verbose=0), model.predict(vectorize_layer(new), verbose=0),
                               rtol=1e-6)
    assert model.predict(vectorize_layer(new), verbose=0)[:, 0].round().tolist() == [1.0, 0.0]


def test_bad_inputs_name_the_layer():
    with pytest.raises(ValueError, match="'tv'.*must be strings.*float64"):
        layers.TextVectorization(name="tv")(np.ones((2, 1)))
    with pytest.raises(ValueError, match="'tv2'.*last shape dimension must be 1.*\\(2, 2\\)"):
        layers.TextVectorization(name="tv2")(np.array([["a", "b"], ["c", "d"]]))
    with pytest.raises(ValueError, match="`standardize`.*'upper'"):
        layers.TextVectorization(standardize="upper")
    with pytest.raises(ValueError, match="`split`"):
        layers.TextVectorization(split="comma")
    with pytest.raises(ValueError, match="`ngrams`"):
        layers.TextVectorization(ngrams=0)
    with pytest.raises(ValueError, match="output_sequence_length.*must not be set"):
        layers.TextVectorization(output_mode="count", output_sequence_length=3)
    with pytest.raises(NotImplementedError, match="ragged"):
        layers.TextVectorization(ragged=True)
    with pytest.raises(ValueError, match="'tv3'.*takes strings.*dtype='string'.*dtype float32"):
        layers.TextVectorization(name="tv3")(dlgpu.Input(shape=(1,)))
    with pytest.raises(RuntimeError, match="must set the layer's vocabulary"):
        layers.TextVectorization(output_mode="multi_hot")(["a"])
    with pytest.raises(ValueError, match="'il'.*inputs must be integers"):
        layers.IntegerLookup(vocabulary=[1, 2], name="il")(np.array(["a"]))
    with pytest.raises(ValueError, match="'sl'.*repeated terms \\['a'\\]"):
        layers.StringLookup(vocabulary=["a", "b", "a"], name="sl")
    with pytest.raises(ValueError, match="maximum vocab size"):
        layers.StringLookup(vocabulary=["a", "b", "c"], max_tokens=3)
    with pytest.raises(ValueError, match="`output_mode` must be 'int' when `invert`"):
        layers.StringLookup(invert=True, output_mode="count")
    with pytest.raises(ValueError, match="`idf_weights` argument must also be provided"):
        layers.StringLookup(vocabulary=["a"], output_mode="tf_idf")
    with pytest.raises(ValueError, match="`idf_weights` must be set"):
        layers.StringLookup(output_mode="tf_idf").set_vocabulary(["a"])
    with pytest.raises(ValueError, match="`idf_weights` must be 1-D and as long"):
        layers.StringLookup(vocabulary=["a"], output_mode="tf_idf", idf_weights=[1.0, 2.0])
    with pytest.raises(ValueError, match="`max_tokens`"):
        layers.StringLookup(max_tokens=1)
    with pytest.raises(NotImplementedError, match="sparse"):
        layers.StringLookup(output_mode="count", sparse=True)
    with pytest.raises(NotImplementedError, match="vocabulary file"):
        layers.StringLookup(vocabulary="vocab.txt")
    with pytest.raises(ValueError, match="'h'.*`num_bins`"):
        layers.Hashing(num_bins=0, name="h")
    with pytest.raises(ValueError, match="'h2'.*strings or integers.*float"):
        layers.Hashing(num_bins=3, name="h2")(np.array([0.5]))
    with pytest.raises(ValueError, match="adapt\\(\\) received no data"):
        layers.TextVectorization().adapt(iter([]))


@pytest.mark.gpu
def test_vectorized_text_lands_on_the_gpu_and_embeds_there():
    from helpers import assert_model_on_gpu_matches_cpu
    layer = layers.TextVectorization(vocabulary=["a", "b", "c"], output_sequence_length=4)
    with dlgpu.device("gpu"):
        x = layer(["a b", "c a b b"])
        assert type(x.data).__module__.startswith("cupy")
    ids = layer(["a b", "c a b b"]).numpy()

    def make():
        dlgpu.set_random_seed(0)
        return dlgpu.Sequential([dlgpu.Input((4,), dtype="int64"), layers.Embedding(5, 3),
                                 layers.GlobalMaxPooling1D()])
    assert_model_on_gpu_matches_cpu(make, ids)
