"""HashedCrossing, and the TensorFlow hashes behind it and Hashing (dlgpu/layers/fingerprint.py).

Keras's Hashing and HashedCrossing need TensorFlow, which is not installed, so their bins are checked
against values published by the algorithms' authors and users: FarmHash Fingerprint64 against Guava's
FarmHashFingerprint64Test, SipHash-2-4 against the reference vectors of the SipHash paper, Hashing and
HashedCrossing against Keras's docstring examples, and the crossing against TensorFlow's
sparse_cross_op_test (test_hashed_zero_bucket_no_hash_key and friends)."""

import numpy as np
import pytest

import dlgpu as keras
from dlgpu import layers
from dlgpu.layers.fingerprint import DEFAULT_CROSS_HASH_KEY, cross_hashed, fingerprint64, siphash64
from tests.layers.layer_test_case import run_layer_test


def _np(t):
    return t.numpy() if hasattr(t, "numpy") else np.asarray(t)


@pytest.mark.parametrize("text, expected", [
    ("", 0x9AE16A3B2F90404F),                           # length 0
    (")D<l91", 6440615040757739207),                    # 4..7 bytes
    ("test", 8581389452482819506),
    ("test" * 8, -4196240717365766262 % 2 ** 64),      # 17..32
    ("2/?98ns)xbzEVL^:wCS$7l3@_g!zP^<D.-bd6", 9728733090894310797),  # 33..64
    ("F7479877-4690-4A44-AFC9-8FE987EA512F:some_other_id", 6862335115798125349),
    ("test" * 64, 3500507768004279527),                 # > 64: the loop
])
def test_fingerprint64_matches_farmhash(text, expected):
    assert fingerprint64(text) == expected
    assert fingerprint64(text.encode()) == expected


def test_siphash_reference_vectors():
    key = bytes(range(16))
    k = (int.from_bytes(key[:8], "little"), int.from_bytes(key[8:], "little"))
    assert siphash64(k, b"") == 0x726FDB47DD0E0E31
    assert siphash64(k, bytes(range(15))) == 0xA129CA6149BE45E5
    assert siphash64(k, bytes(range(63))) == 0x958A324CEB064572


def test_cross_hashed_matches_tensorflow():
    columns = [np.array([fingerprint64(s)], np.uint64) for s in ("batch1-FC1-F1", "batch1-FC2-F1", "batch1-FC3-F1")]
    assert cross_hashed(columns, 0)[0] == 1971693436396284976
    assert cross_hashed(columns, 0, DEFAULT_CROSS_HASH_KEY + 1)[0] == 4847552627144134031
    assert cross_hashed(columns, 100)[0] == 83
    assert cross_hashed(columns, 100, DEFAULT_CROSS_HASH_KEY + 1)[0] == 31


def test_hashing_bins_are_keras_bins():
    letters = [["A"], ["B"], ["C"], ["D"], ["E"]]
    np.testing.assert_array_equal(_np(layers.Hashing(num_bins=3)(letters)), [[1], [0], [1], [1], [2]])
    np.testing.assert_array_equal(_np(layers.Hashing(num_bins=3, mask_value="")([["A"], ["B"], [""], ["C"], ["D"]])),
                                  [[1], [1], [0], [2], [2]])
    np.testing.assert_array_equal(_np(layers.Hashing(num_bins=3, salt=[133, 137])(letters)), [[1], [2], [1], [0], [2]])
    np.testing.assert_array_equal(_np(layers.Hashing(num_bins=3, salt=133)(letters)), [[0], [0], [2], [1], [0]])
    # integers hash as their decimal text (tf.as_string), numpy reference: fingerprint of str(i) mod bins
    ints = np.array([[0, 7, -3, 123456789012]])
    expected = [[fingerprint64(str(i)) % 11 for i in ints[0]]]
    np.testing.assert_array_equal(_np(layers.Hashing(num_bins=11)(ints)), expected)


def test_lookup_oov_buckets_use_farmhash():
    # StringLookup with several OOV slots: FarmHash of the token, as Keras's to_hash_bucket_fast
    lookup = layers.StringLookup(vocabulary=["a", "b"], num_oov_indices=3)
    out = _np(lookup(np.array(["a", "zz", "qq", "b"])))
    np.testing.assert_array_equal(out, [3, fingerprint64("zz") % 3, fingerprint64("qq") % 3, 4])
    ints = layers.IntegerLookup(vocabulary=[5, 6], num_oov_indices=3, oov_method="farmhash")
    np.testing.assert_array_equal(_np(ints(np.array([9, 5, 40]))), [fingerprint64("9") % 3, 3, fingerprint64("40") % 3])


def test_lookup_oov_buckets_with_a_salt_use_siphash():
    # Keras 3.15's `salt`: SipHash-2-4 keyed by it (to_hash_bucket_strong), as Hashing(salt=...) buckets
    lookup = layers.StringLookup(vocabulary=["a", "b"], num_oov_indices=3, salt=(7, 11))
    out = _np(lookup(np.array(["a", "zz", "qq", "b"])))
    np.testing.assert_array_equal(out, [3, siphash64((7, 11), "zz") % 3, siphash64((7, 11), "qq") % 3, 4])
    np.testing.assert_array_equal(out[1:3], _np(layers.Hashing(num_bins=3, salt=(7, 11))(np.array(["zz", "qq"]))))
    assert lookup.get_config()["salt"] == [7, 11]
    again = layers.StringLookup.from_config(lookup.get_config())
    np.testing.assert_array_equal(_np(again(np.array(["zz", "qq"]))), out[1:3])
    ints = layers.IntegerLookup(vocabulary=[5, 6], num_oov_indices=3, oov_method="farmhash", salt=9)
    np.testing.assert_array_equal(_np(ints(np.array([40]))), [siphash64((9, 9), "40") % 3])
    with pytest.raises(ValueError, match="IntegerLookup.*`salt` can only be used when `oov_method='farmhash'`"):
        layers.IntegerLookup(vocabulary=[5], num_oov_indices=2, salt=9)
    with pytest.raises(ValueError, match="StringLookup.*tuple of 2 integers.*salt=1.5"):
        layers.StringLookup(vocabulary=["a"], num_oov_indices=2, salt=1.5)


# -- HashedCrossing ----------------------------------------------------------------------------------------
def test_keras_docstring_examples():
    feat1 = np.array(["A", "B", "A", "B", "A"])
    feat2 = np.array([101, 101, 101, 102, 102])
    out = layers.HashedCrossing(num_bins=5)((feat1, feat2))
    assert out.dtype == "int64"
    np.testing.assert_array_equal(_np(out), [1, 4, 1, 1, 3])
    hot = _np(layers.HashedCrossing(num_bins=5, output_mode="one_hot")((feat1, feat2)))
    np.testing.assert_array_equal(hot, np.eye(5, dtype=np.float32)[[1, 4, 1, 1, 3]])
    assert hot.dtype == np.float32


def test_values_against_a_numpy_reference_and_shapes():
    rng = np.random.default_rng(0)
    words = rng.choice(["red", "green", "blue", "a much longer colour name than the others"], 40)
    ints = rng.integers(-5, 2 ** 40, 40)
    more = rng.integers(0, 3, 40).astype(np.int32)
    layer = layers.HashedCrossing(num_bins=97)
    # the reference, written out per sample: fold the key, the string's fingerprint, the integers' bits
    mask, mul = 2 ** 64 - 1, 0xC6A4A7935BD1E995

    def cat(fp1, fp2):
        def mix(v):
            return v ^ (v >> 47)
        r = fp1 ^ mul
        r ^= (mix((fp2 * mul) & mask) * mul) & mask
        r = (r * mul) & mask
        r = (mix(r) * mul) & mask
        return mix(r)
    expected = []
    for w, i, m in zip(words, ints, more):
        h = cat(cat(cat(DEFAULT_CROSS_HASH_KEY, fingerprint64(str(w))), int(i) & mask), int(m) & mask)
        expected.append(h % 97)
    np.testing.assert_array_equal(_np(layer([words, ints, more])), expected)
    # (batch, 1) keeps its shape, a scalar gives a scalar; the order of the features matters
    np.testing.assert_array_equal(_np(layer([words[:, None], ints[:, None], more[:, None]])),
                                  np.array(expected)[:, None])
    assert _np(layer([words[0], ints[0], more[0]])).shape == ()
    assert _np(layer([words[0], ints[0], more[0]])) == expected[0]
    assert (_np(layer([ints, words, more])) != np.array(expected)).any()
    # batch 1 and an empty batch
    assert _np(layer([words[:1], ints[:1], more[:1]])).tolist() == expected[:1]
    assert _np(layer([words[:0], ints[:0], more[:0]])).shape == (0,)
    # negative integers use their two's-complement bits, as tf's int64 -> uint64
    np.testing.assert_array_equal(_np(layers.HashedCrossing(num_bins=1000)([np.array([-1]), np.array([2])])),
                                  [cat(cat(DEFAULT_CROSS_HASH_KEY, mask), 2) % 1000])


def test_contract_config_and_symbolic_shapes():
    run_layer_test(layers.HashedCrossing, {"num_bins": 7, "output_mode": "one_hot"}, [(4, 1), (4, 1)], (4, 7),
                   input_dtype="int64")
    run_layer_test(layers.HashedCrossing, {"num_bins": 7}, [(3,), (3,)], (3,), input_dtype="int64")
    layer = layers.HashedCrossing(num_bins=9, output_mode="one_hot", name="hc")
    config = layer.get_config()
    assert config == {"num_bins": 9, "output_mode": "one_hot", "sparse": False, "name": "hc", "dtype": "float32"}
    assert layers.HashedCrossing.from_config(config).get_config() == config
    assert layers.HashedCrossing(num_bins=3).get_config()["dtype"] == "int64"
    assert layer.compute_output_shape([(None,), (None,)]) == (None, 9)
    assert layer.compute_output_shape([(), ()]) == (9,)


def test_in_a_model_saved_and_loaded(tmp_path):
    colour = keras.Input(shape=(1,), name="colour", dtype="string")
    size = keras.Input(shape=(1,), name="size", dtype="int64")
    crossed = layers.HashedCrossing(num_bins=16, output_mode="one_hot")([colour, size])
    assert crossed.shape == (None, 16) and crossed.dtype == "float32"
    out = layers.Dense(1, activation="sigmoid")(crossed)
    model = keras.Model({"colour": colour, "size": size}, out)
    rng = np.random.default_rng(1)
    cols = {"colour": rng.choice(["red", "green", "blue"], 64)[:, None], "size": rng.integers(0, 4, (64, 1))}
    y = ((cols["colour"][:, 0] == "red") & (cols["size"][:, 0] > 1)).astype(np.float32)
    model.compile(keras.optimizers.Adam(0.1), "binary_crossentropy")
    history = model.fit(cols, y, epochs=8, batch_size=16, verbose=0)
    assert history.history["loss"][-1] < history.history["loss"][0]
    model.save(tmp_path / "crossed.keras")
    restored = keras.models.load_model(tmp_path / "crossed.keras")
    np.testing.assert_allclose(restored.predict(cols, verbose=0), model.predict(cols, verbose=0), rtol=1e-6)


def test_bad_arguments_and_inputs_are_refused():
    with pytest.raises(ValueError, match="'hc'.*`num_bins` must be a positive integer.*num_bins=0"):
        layers.HashedCrossing(num_bins=0, name="hc")
    with pytest.raises(ValueError, match="'hc2'.*`output_mode`.*'multi_hot'"):
        layers.HashedCrossing(num_bins=3, output_mode="multi_hot", name="hc2")
    with pytest.raises(NotImplementedError, match="sparse=True"):
        layers.HashedCrossing(num_bins=3, sparse=True)
    layer = layers.HashedCrossing(num_bins=3, name="hc3")
    with pytest.raises(ValueError, match="'hc3'.*list or tuple"):
        layer(np.array([1, 2]))
    with pytest.raises(ValueError, match="'hc3'.*at least two inputs"):
        layer([np.array([1, 2])])
    with pytest.raises(ValueError, match="'hc3'.*equal shape.*\\(2,\\), \\(3,\\)"):
        layer([np.array([1, 2]), np.array([1, 2, 3])])
    with pytest.raises(ValueError, match="'hc3'.*shape \\(\\), \\(batch_size,\\) or \\(batch_size, 1\\)"):
        layer([np.ones((2, 2), np.int64), np.ones((2, 2), np.int64)])
    with pytest.raises(ValueError, match="'hc3'.*integer or string dtype.*float64 for input 1"):
        layer([np.array([1, 2]), np.array([0.5, 1.0])])
