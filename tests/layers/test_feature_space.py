"""keras.utils.FeatureSpace: each feature type's encoding against a numpy reference, crosses (Keras's
HashedCrossing bins of the preprocessed indices), dict vs concat output, single samples, adapt on the
kinds of data dlgpu has, config and save/load round trips, and the errors (naming the feature).

Keras's FeatureSpace needs TensorFlow (tf.data, HashedCrossing), which is not installed, so the
reference is written out here from Keras's source: columns as (batch, 1), features in sorted name order
then crosses in sorted name order, one_hot as CategoryEncoding(multi_hot) of the preprocessor's indices."""

import json

import numpy as np
import pytest

import dlgpu
import dlgpu as keras
from dlgpu import layers
from dlgpu.layers.fingerprint import cross_hashed, fingerprint64
from dlgpu.utils import FeatureSpace
from dlgpu.utils.dataset_utils import ArrayDataset

N = 24


def _np(t):
    return t.numpy() if hasattr(t, "numpy") else np.asarray(t)


def _data(seed=0, n=N):
    rng = np.random.default_rng(seed)
    return {"f": rng.normal(0.0, 3.0, n), "fn": rng.normal(10.0, 2.0, n), "fr": rng.uniform(0, 5, n),
            "fd": rng.uniform(0, 100, n), "ic": rng.choice([3, 7, 7, 9, 9, 9], n),
            "sc": rng.choice(["red", "blue", "blue", "green"], n), "ih": rng.integers(-50, 50, n),
            "sh": rng.choice(["a", "bb", "ccc", "dddd", "eeeee"], n)}


def _space(output_mode="dict", crosses=None, **kwargs):
    return FeatureSpace(features={"f": "float", "fn": "float_normalized",
                                  "fr": FeatureSpace.float_rescaled(scale=2.0, offset=1.0),
                                  "fd": FeatureSpace.float_discretized(num_bins=4), "ic": "integer_categorical",
                                  "sc": FeatureSpace.string_categorical(), "ih": "integer_hashed",
                                  "sh": FeatureSpace.string_hashed(num_bins=5)},
                        output_mode=output_mode, crosses=crosses, hashing_dim=8, **kwargs)


def _vocab_index(values):
    """IndexLookup's indices: tokens by count then value, both descending, after the OOV slot 0."""
    uniq, counts = np.unique(values, return_counts=True)
    order = sorted(zip(counts.tolist(), uniq.tolist()), reverse=True)
    return {tok: i + 1 for i, (_, tok) in enumerate(order)}, len(order) + 1


def _only(data, *names):
    return {k: data[k] for k in names}


def _one_hot(indices, depth):
    return np.eye(depth, dtype=np.float32)[np.asarray(indices)]


def _reference(data, adapt_data):
    """Each feature's encoding, written out with numpy."""
    out = {"f": data["f"][:, None].astype(np.float32)}
    mean, std = adapt_data["fn"].mean(), adapt_data["fn"].std()
    out["fn"] = ((data["fn"] - mean) / std)[:, None]
    out["fr"] = (data["fr"] * 2.0 + 1.0)[:, None]
    bounds = np.quantile(adapt_data["fd"], [0.25, 0.5, 0.75], method="interpolated_inverted_cdf")
    out["fd"] = _one_hot(np.searchsorted(bounds, data["fd"], side="right"), 4)
    for name in ("ic", "sc"):
        index, depth = _vocab_index(adapt_data[name])
        out[name] = _one_hot([index.get(v, 0) for v in data[name].tolist()], depth)
    out["ih"] = _one_hot([fingerprint64(str(v)) % 8 for v in data["ih"]], 8)
    out["sh"] = _one_hot([fingerprint64(v) % 5 for v in data["sh"]], 5)
    return out


@pytest.fixture(scope="module")
def adapted():
    data = _data()
    space = _space()
    space.adapt(data)
    return space, data


def test_each_feature_type_against_numpy(adapted):
    space, data = adapted
    encoded = space(data)
    assert sorted(encoded) == sorted(data)
    expected = _reference(data, data)
    for name, value in expected.items():
        assert encoded[name].dtype == "float32", name
        np.testing.assert_allclose(_np(encoded[name]), value, rtol=1e-5, atol=1e-5, err_msg=name)
    # unseen data: unseen categories go to the OOV slot 0
    new = _data(seed=1)
    new["ic"][:3] = [100, 3, 101]
    new["sc"][:2] = ["purple", "red"]
    encoded = space(new)
    expected = _reference(new, data)
    for name, value in expected.items():
        np.testing.assert_allclose(_np(encoded[name]), value, rtol=1e-5, atol=1e-5, err_msg=name)
    assert _np(encoded["ic"])[0, 0] == 1 and _np(encoded["ic"])[2, 0] == 1 and _np(encoded["sc"])[0, 0] == 1


def test_concat_is_the_sorted_dict_and_single_samples(adapted):
    space, data = adapted
    concat = _space(output_mode="concat")
    concat.adapt(data)
    by_dict = space(data)
    full = _np(concat(data))
    np.testing.assert_allclose(full, np.concatenate([_np(by_dict[k]) for k in sorted(by_dict)], axis=1), rtol=1e-6)
    assert full.shape == (N, 1 + 1 + 1 + 4 + 4 + 4 + 8 + 5) and full.dtype == np.float32
    assert concat.get_encoded_features().shape == (None, full.shape[1])
    # columns as (batch, 1) give the same; one sample of scalars gives the row without a batch axis
    np.testing.assert_allclose(_np(concat({k: v[:, None] for k, v in data.items()})), full, rtol=1e-6)
    one = concat({k: v[5] for k, v in data.items()})
    assert one.shape == (full.shape[1],)
    np.testing.assert_allclose(_np(one), full[5], rtol=1e-6)
    single = space({k: v[5].item() for k, v in data.items()})  # plain Python scalars
    assert single["fd"].shape == (4,) and single["f"].shape == (1,)
    np.testing.assert_allclose(_np(single["sc"]), _np(by_dict["sc"])[5])
    # batch 1 keeps its batch axis
    assert concat({k: v[:1] for k, v in data.items()}).shape == (1, full.shape[1])


def test_crosses_hash_the_preprocessed_indices():
    data = _data()
    space = FeatureSpace(features={"sc": "string_categorical", "ic": "integer_categorical", "fd": "float_discretized",
                                   "fn": "float_normalized"},
                         crosses=[("sc", "ic"), FeatureSpace.cross(("fd", "ic"), crossing_dim=7, output_mode="int")],
                         crossing_dim=16, num_discretization_bins=3, output_mode="dict")
    data = _only(data, "sc", "ic", "fd", "fn")
    space.adapt(data)
    out = space(data)
    assert sorted(out) == ["fd", "fd_X_ic", "fn", "ic", "sc", "sc_X_ic"]
    assert isinstance(space.crossers["sc_X_ic"], layers.HashedCrossing)
    # HashedCrossing (checked against TensorFlow's values in test_hashed_crossing.py) of the lookups' indices
    sc_index, _ = _vocab_index(data["sc"])
    ic_index, _ = _vocab_index(data["ic"])
    sc_ids = np.array([sc_index[v] for v in data["sc"].tolist()], np.int64)
    ic_ids = np.array([ic_index[v] for v in data["ic"].tolist()], np.int64)
    bins = cross_hashed([sc_ids.view(np.uint64), ic_ids.view(np.uint64)], 16)
    np.testing.assert_array_equal(_np(out["sc_X_ic"]), _one_hot(bins, 16))
    bounds = np.quantile(data["fd"], [1 / 3, 2 / 3], method="interpolated_inverted_cdf")
    fd_ids = np.searchsorted(bounds, data["fd"], side="right").astype(np.int64)
    int_cross = _np(out["fd_X_ic"])
    assert int_cross.shape == (N, 1) and int_cross.dtype == np.int64
    np.testing.assert_array_equal(int_cross[:, 0], cross_hashed([fd_ids.view(np.uint64), ic_ids.view(np.uint64)], 7))
    # in concat mode an int-mode cross cannot be concatenated: the error names it
    with pytest.raises(ValueError, match="feature 'fd_X_ic' has not been encoded.*int64.*output_mode='dict'"):
        FeatureSpace(features={"fd": "float_discretized", "ic": "integer_categorical"},
                     crosses=[FeatureSpace.cross(("fd", "ic"), crossing_dim=7, output_mode="int")]).adapt(
            _only(data, "fd", "ic"))


def test_int_output_modes_and_custom_features():
    data = _only(_data(), "sc", "ic", "sh")
    space = FeatureSpace(features={"sc": FeatureSpace.string_categorical(output_mode="int"),
                                   "ic": FeatureSpace.integer_categorical(output_mode="int", max_tokens=3),
                                   "sh": FeatureSpace.feature(dtype="string", output_mode="one_hot",
                                                              preprocessor=layers.Hashing(num_bins=6))},
                         output_mode="dict")
    space.adapt(data)
    out = space(data)
    sc_index, _ = _vocab_index(data["sc"])
    np.testing.assert_array_equal(_np(out["sc"])[:, 0], [sc_index[v] for v in data["sc"].tolist()])
    assert space.preprocessors["ic"].vocabulary_size() == 3  # max_tokens counts the OOV slot
    np.testing.assert_array_equal(_np(out["sh"]), _one_hot([fingerprint64(v) % 6 for v in data["sh"]], 6))
    # a custom preprocessor with no known output size cannot be one-hot encoded
    odd = FeatureSpace(features={"x": FeatureSpace.feature(dtype="int32", output_mode="one_hot",
                                                           preprocessor=layers.Identity())})
    with pytest.raises(ValueError, match="'x' has `output_mode='one_hot'`.*integer dtype"):
        odd.get_encoded_features()


def test_adapt_on_datasets_of_batches_and_of_samples():
    data = _data()
    reference = _space()
    reference.adapt(data)
    labels = np.arange(N)
    for source in (ArrayDataset((data, labels), batch_size=5),          # (dict, y) batches
                   ArrayDataset(data, batch_size=7).map(lambda x: x),   # a mapped dataset of dicts
                   ArrayDataset(data),                                   # single samples
                   [{k: v[i] for k, v in data.items()} for i in range(N)]):  # a list of dicts of scalars
        space = _space()
        space.adapt(source)
        for name in ("sc", "ic"):
            assert space.preprocessors[name].get_vocabulary() == reference.preprocessors[name].get_vocabulary()
        assert space.preprocessors["fd"].bin_boundaries == reference.preprocessors["fd"].bin_boundaries
        np.testing.assert_allclose(space.preprocessors["fn"].mean.numpy(), reference.preprocessors["fn"].mean.numpy(),
                                   rtol=1e-6)
        np.testing.assert_allclose(space.preprocessors["fn"].variance.numpy(),
                                   reference.preprocessors["fn"].variance.numpy(), rtol=1e-5)


def test_adapt_again_makes_new_encoders():
    space = FeatureSpace(features={"c": "string_categorical"})
    space.adapt({"c": np.array(["a", "b"])})
    assert space({"c": np.array(["a"])}).shape == (1, 3)
    space.adapt({"c": np.array(["a", "b", "c", "c"])})
    np.testing.assert_array_equal(_np(space({"c": np.array(["c", "z"])})), [[0, 1, 0, 0], [1, 0, 0, 0]])
    assert space.get_encoded_features().shape == (None, 4)


def test_inside_dataset_map_and_fit():
    data = _data(n=64)
    y = (data["sc"] == "blue").astype(np.float32)
    ds = ArrayDataset((data, y), batch_size=16)
    space = _space(output_mode="concat")
    space.adapt(ds.map(lambda x, _: x))
    encoded = ds.map(lambda x, labels: (space(x), labels))
    x0, y0 = encoded[0]
    assert x0.shape == (16, 28) and x0.dtype == "float32"
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((28,)), layers.Dense(1, activation="sigmoid")])
    model.compile(keras.optimizers.Adam(0.1), "binary_crossentropy", metrics=["accuracy"])
    history = model.fit(encoded, epochs=10, verbose=0)
    assert history.history["loss"][-1] < 0.5 * history.history["loss"][0]
    assert history.history["accuracy"][-1] == 1.0


def test_config_round_trip_and_adapt_state():
    space = _space(output_mode="concat", crosses=[("sc", "ic")], crossing_dim=4, num_discretization_bins=3)
    config = space.get_config()
    assert set(config) == {"features", "output_mode", "crosses", "crossing_dim", "hashing_dim",
                           "num_discretization_bins"}
    assert config["features"]["sc"]["class_name"] == "Feature"
    assert config["crosses"][0]["config"] == {"feature_names": ("sc", "ic"), "crossing_dim": 4,
                                              "output_mode": "one_hot"}
    text = json.dumps(config)
    again = FeatureSpace.from_config(json.loads(text))
    assert json.dumps(again.get_config()) == text
    with pytest.raises(ValueError, match="call `.adapt\\(dataset\\)`"):
        again(_data())
    # an adapted space's config carries the vocabularies and boundaries; its weights hold the statistics
    data = _data()
    space.adapt(data)
    copy = FeatureSpace.from_config(json.loads(json.dumps(space.get_config())))
    copy.build_from_config(json.loads(json.dumps(space.get_build_config())))
    copy.set_weights(space.get_weights())
    np.testing.assert_allclose(_np(copy(data)), _np(space(data)), rtol=1e-6)
    assert [w.shape for w in space.weights] == [(1,), (1,)]  # Normalization's mean and variance


def test_save_and_load_model(tmp_path):
    data = _data()
    space = _space(output_mode="concat", crosses=[FeatureSpace.cross(("sh", "ih"), crossing_dim=6)])
    space.adapt(data)
    space.save(tmp_path / "space.keras")
    restored = keras.saving.load_model(tmp_path / "space.keras")
    assert isinstance(restored, FeatureSpace)
    np.testing.assert_allclose(_np(restored(data)), _np(space(data)), rtol=1e-6)
    one = {k: v[3] for k, v in data.items()}
    np.testing.assert_allclose(_np(restored(one)), _np(space(one)), rtol=1e-6)
    # the restored space builds the same functional graph
    inputs, encoded = restored.get_inputs(), restored.get_encoded_features()
    model = keras.Model(inputs, layers.Dense(2)(encoded))
    assert model.predict(data, verbose=0).shape == (N, 2)
    space.save(tmp_path / "space.dlgpu")
    np.testing.assert_allclose(_np(dlgpu.models.load_model(tmp_path / "space.dlgpu")(data)), _np(space(data)),
                               rtol=1e-6)


def test_errors_name_the_feature(adapted):
    space, data = adapted
    with pytest.raises(ValueError, match="cannot be None or empty"):
        FeatureSpace(features={})
    with pytest.raises(ValueError, match="feature 'age': 'floaty'.*Expected one of"):
        FeatureSpace(features={"age": "floaty"})
    with pytest.raises(ValueError, match="unknown features \\['zip'\\] in cross \\('age', 'zip'\\)"):
        FeatureSpace(features={"age": "float"}, crosses=[("age", "zip")])
    with pytest.raises(ValueError, match="unknown features \\['zip'\\]"):
        FeatureSpace(features={"age": "float", "n": "integer_categorical"},
                     crosses=[FeatureSpace.cross(("n", "zip"), 4)])
    with pytest.raises(ValueError, match="`output_mode`.*'dict', 'concat'.*output_mode=vector"):
        FeatureSpace(features={"age": "float"}, output_mode="vector")
    with pytest.raises(ValueError, match="only be called with a dict"):
        space(np.ones((3, 8)))
    missing = {k: v for k, v in data.items() if k != "sc"}
    with pytest.raises(ValueError, match="no value for feature 'sc'"):
        space(missing)
    with pytest.raises(ValueError, match="unknown features \\['extra'\\]"):
        space({**data, "extra": data["f"]})
    with pytest.raises(ValueError, match="feature 'fn' \\(dtype float32\\) expects numbers.*received strings"):
        space({**data, "fn": data["sc"]})
    with pytest.raises(ValueError, match="feature 'ic' \\(dtype int32\\) expects integers.*float64"):
        space({**data, "ic": data["f"]})
    with pytest.raises(ValueError, match="feature 'sc' \\(dtype string\\) expects strings.*int64"):
        space({**data, "sc": data["ic"]})
    with pytest.raises(ValueError, match="symbolic tensor.*get_inputs"):
        space({**data, "f": keras.Input((1,))})
    fresh = _space()
    with pytest.raises(ValueError, match="call `.adapt\\(dataset\\)`"):
        fresh(data)
    with pytest.raises(ValueError, match="call `.adapt\\(dataset\\)`"):
        fresh.get_inputs()
    with pytest.raises(ValueError, match="adapt\\(\\) received no value for feature 'sc'"):
        fresh.adapt({k: v for k, v in data.items() if k != "sc"})
    with pytest.raises(ValueError, match="adapt\\(\\) received strings"):
        fresh.adapt({**data, "fd": data["sc"]})
    with pytest.raises(ValueError, match="dataset of dicts or a dict of arrays.*ndarray"):
        fresh.adapt(np.ones((4, 8)))
    with pytest.raises(ValueError, match="elements are dicts.*ndarray"):
        fresh.adapt(ArrayDataset(np.ones((4, 8)), batch_size=2))
    with pytest.raises(ValueError, match="empty dataset"):
        fresh.adapt([])


def test_no_adaptable_features_needs_no_adapt():
    space = FeatureSpace(features={"x": "float", "h": FeatureSpace.string_hashed(num_bins=3)})
    out = _np(space({"x": np.array([1.5, 2.0]), "h": np.array(["A", "B"])}))
    np.testing.assert_allclose(out, [[0, 1, 0, 1.5], [1, 0, 0, 2.0]])  # Keras's doc bins: A -> 1, B -> 0
    # given boundaries need no adapt either (Keras reads num_bins, None here, for the one-hot width)
    binned = FeatureSpace(features={"v": FeatureSpace.float_discretized(num_bins=None, bin_boundaries=[0.0, 1.0])})
    np.testing.assert_array_equal(_np(binned({"v": np.array([-1.0, 0.5, 3.0])})), np.eye(3, dtype=np.float32))


@pytest.mark.gpu
def test_encodes_on_the_gpu_as_on_the_cpu():
    data = _data()
    space = _space(output_mode="concat", crosses=[("sc", "ic")])
    space.adapt(data)
    on_cpu = _np(space(data))
    with dlgpu.device("gpu"):  # its encoders' variables live where it is adapted
        on_gpu = _space(output_mode="concat", crosses=[("sc", "ic")])
        on_gpu.adapt(data)
        out = on_gpu(data)
        assert type(out.data).__module__.startswith("cupy")
    np.testing.assert_allclose(_np(out), on_cpu, rtol=1e-5, atol=1e-6)
