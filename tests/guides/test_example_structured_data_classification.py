"""keras.io example "Structured data classification from scratch": one named Input per column (integers,
floats and a string column), each encoded inside the model by an adapted IntegerLookup / StringLookup
(output_mode="binary") or Normalization, concatenated, then a small classifier fed with dicts of columns.
The data pipeline is the example's, with dlgpu.data in place of tf.data: a shuffled dataset of
({column: value}, label) batched by 16, and each encoder adapted on ``ds.map(lambda x, y: x[name])``."""

import numpy as np
import pytest

import dlgpu as keras
from dlgpu import data as tf_data
from dlgpu import layers

N = 96


def _columns(seed=0):
    rng = np.random.default_rng(seed)
    cols = {"colour": rng.choice(["red", "green", "blue"], N), "doors": rng.integers(2, 6, N),
            "weight": rng.normal(1200.0, 200.0, N)}
    target = ((cols["colour"] == "red") | (cols["doors"] == 5)).astype(np.int64)
    return cols, target


def dataframe_to_dataset(cols, target):
    ds = tf_data.Dataset.from_tensor_slices((dict(cols), target))
    ds = ds.shuffle(buffer_size=len(target))
    return ds


def _one_column(dataset, name):
    """The example's get_dataset_feature path: the column alone, with a feature axis."""
    feature_ds = dataset.map(lambda x, y: x[name])
    return feature_ds.map(lambda x: np.expand_dims(x, -1))


@pytest.fixture(scope="module")
def model_and_data():
    keras.utils.set_random_seed(0)
    cols, target = _columns()
    train = dataframe_to_dataset(cols, target).batch(16)
    colour = keras.Input(shape=(1,), name="colour", dtype="string")
    doors = keras.Input(shape=(1,), name="doors", dtype="int64")
    weight = keras.Input(shape=(1,), name="weight")
    colour_lookup = layers.StringLookup(output_mode="binary")
    colour_lookup.adapt(_one_column(train, "colour"))
    doors_lookup = layers.IntegerLookup(output_mode="binary")
    doors_lookup.adapt(_one_column(train, "doors"))
    weight_norm = layers.Normalization()
    weight_norm.adapt(_one_column(train, "weight"))
    features = layers.concatenate([colour_lookup(colour), doors_lookup(doors), weight_norm(weight)])
    x = layers.Dense(16, activation="relu")(features)
    output = layers.Dense(1, activation="sigmoid")(x)
    model = keras.Model([colour, doors, weight], output)
    model.compile(keras.optimizers.Adam(0.05), "binary_crossentropy", metrics=["accuracy"])
    history = model.fit(train, epochs=15, verbose=0)
    return model, cols, target, history, (colour_lookup, doors_lookup, weight_norm)


def test_encoders_inside_the_model(model_and_data):
    model, cols, _, _, (colour_lookup, doors_lookup, weight_norm) = model_and_data
    assert [t.dtype for t in model.inputs] == ["string", "int64", "float32"]
    assert colour_lookup.output.shape == (None, 4)  # [UNK] + three colours
    assert doors_lookup.output.shape == (None, 5)   # [UNK] + four door counts
    assert model.get_layer(index=-3).output.shape == (None, 10)
    encoded = colour_lookup(np.array([["red"], ["pink"]])).numpy()
    vocabulary = colour_lookup.get_vocabulary()
    assert encoded[0, vocabulary.index("red")] == 1 and encoded[0].sum() == 1
    np.testing.assert_array_equal(encoded[1], [1, 0, 0, 0])  # an unseen colour lands in the OOV slot
    w = cols["weight"]
    np.testing.assert_allclose(weight_norm(w[:3, None].astype(np.float32)).numpy()[:, 0],
                               (w[:3] - w.mean()) / w.std(), rtol=1e-3, atol=1e-4)


def test_learns_from_dict_batches(model_and_data):
    model, cols, target, history, _ = model_and_data
    assert history.history["loss"][-1] < 0.6 * history.history["loss"][0]
    assert model.evaluate(cols, target, verbose=0)[1] >= 0.85


def test_one_sample_dict_of_scalars_in_lists(model_and_data, tmp_path):
    model = model_and_data[0]
    sample = {"colour": ["red"], "doors": [3], "weight": [1150.0]}
    by_lists = model.predict(sample, verbose=0)
    by_arrays = model.predict({k: np.array(v) for k, v in sample.items()}, verbose=0)
    assert by_lists.shape == (1, 1) and by_lists[0, 0] > 0.5
    np.testing.assert_allclose(by_lists, by_arrays)
    # the columns may come in any order by name, and as (batch, 1) as well as (batch,)
    shuffled = {"weight": np.array([[1150.0]]), "doors": np.array([[3]]), "colour": np.array([["red"]])}
    np.testing.assert_allclose(model.predict(shuffled, verbose=0), by_lists, rtol=1e-6)
    model.save(tmp_path / "columns.keras")
    restored = keras.models.load_model(tmp_path / "columns.keras")
    np.testing.assert_allclose(restored.predict(sample, verbose=0), by_lists, rtol=1e-6)


def test_string_column_into_a_numeric_input_is_refused(model_and_data):
    model, cols, target, *_ = model_and_data
    bad = dict(cols, doors=cols["colour"])
    with pytest.raises(ValueError, match="'doors'.*has dtype int64; received strings"):
        model.predict(bad, verbose=0)
