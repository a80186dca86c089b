"""keras.io example "Structured data classification with FeatureSpace", at tiny size: a dict dataset of
numeric, integer-categorical and string-categorical columns (the heart-disease columns' kinds), a
FeatureSpace adapted on it with crosses, a training model fit on the encoded features
(``Model(inputs=encoded_features, ...)``), then the end-to-end inference model that takes raw dicts.

The datasets are built as the example builds them, with dlgpu.data in place of tf.data:
``Dataset.from_tensor_slices((dict(dataframe), labels)).shuffle(len(dataframe))``, then ``.batch(32)``."""

import numpy as np
import pytest

import dlgpu as keras
from dlgpu import data as tf_data
from dlgpu.utils import FeatureSpace


def _dataframe(n, seed):
    rng = np.random.default_rng(seed)
    cols = {"sex": rng.integers(0, 2, n), "cp": rng.integers(0, 5, n), "fbs": rng.integers(0, 2, n),
            "ca": rng.integers(0, 4, n), "thal": rng.choice(["normal", "fixed", "reversible"], n),
            "age": rng.uniform(29, 77, n), "trestbps": rng.normal(130, 17, n), "chol": rng.normal(246, 50, n),
            "thalach": rng.normal(150, 22, n), "oldpeak": rng.exponential(1.0, n)}
    target = (((cols["thal"] == "reversible") | (cols["cp"] == 4)) ^ (cols["oldpeak"] > 2.5)).astype(np.int64)
    return cols, target


def dataframe_to_dataset(dataframe, labels):
    ds = tf_data.Dataset.from_tensor_slices((dict(dataframe), labels))
    ds = ds.shuffle(buffer_size=len(labels))
    return ds


@pytest.fixture(scope="module")
def trained():
    keras.utils.set_random_seed(1337)
    train_ds = dataframe_to_dataset(*_dataframe(160, 0)).batch(32)
    val_ds = dataframe_to_dataset(*_dataframe(48, 1)).batch(32)
    feature_space = FeatureSpace(
        features={
            # Categorical features encoded as integers
            "sex": FeatureSpace.integer_categorical(num_oov_indices=0),
            "cp": FeatureSpace.integer_categorical(num_oov_indices=0),
            "fbs": FeatureSpace.integer_categorical(num_oov_indices=0),
            "ca": FeatureSpace.integer_categorical(num_oov_indices=0),
            # Categorical feature encoded as string
            "thal": FeatureSpace.string_categorical(num_oov_indices=0),
            # Numerical features to discretize
            "age": FeatureSpace.float_discretized(num_bins=5),
            # Numerical features to normalize
            "trestbps": FeatureSpace.float_normalized(),
            "chol": FeatureSpace.float_normalized(),
            "thalach": FeatureSpace.float_normalized(),
            "oldpeak": FeatureSpace.float_normalized(),
        },
        crosses=[
            FeatureSpace.cross(feature_names=("sex", "age"), crossing_dim=8),
            FeatureSpace.cross(feature_names=("thal", "ca"), crossing_dim=4),
        ],
        output_mode="concat",
    )
    train_ds_with_no_labels = train_ds.map(lambda x, _: x)
    feature_space.adapt(train_ds_with_no_labels)
    for x, _ in train_ds.take(1):
        preprocessed_x = feature_space(x)
    preprocessed_train_ds = train_ds.map(lambda x, y: (feature_space(x), y), num_parallel_calls=tf_data.AUTOTUNE)
    preprocessed_train_ds = preprocessed_train_ds.prefetch(tf_data.AUTOTUNE)
    preprocessed_val_ds = val_ds.map(lambda x, y: (feature_space(x), y), num_parallel_calls=tf_data.AUTOTUNE)
    preprocessed_val_ds = preprocessed_val_ds.prefetch(tf_data.AUTOTUNE)

    dict_inputs = feature_space.get_inputs()
    encoded_features = feature_space.get_encoded_features()
    x = keras.layers.Dense(32, activation="relu")(encoded_features)
    x = keras.layers.Dropout(0.5)(x)
    predictions = keras.layers.Dense(1, activation="sigmoid")(x)
    training_model = keras.Model(inputs=encoded_features, outputs=predictions)
    training_model.compile(optimizer=keras.optimizers.Adam(0.02), loss="binary_crossentropy", metrics=["accuracy"])
    inference_model = keras.Model(inputs=dict_inputs, outputs=predictions)
    history = training_model.fit(preprocessed_train_ds, epochs=25, validation_data=preprocessed_val_ds, verbose=0)
    return feature_space, preprocessed_x, training_model, inference_model, history


def test_encoded_batch_and_training(trained):
    feature_space, preprocessed_x, training_model, _, history = trained
    # sex 2 + cp 5 + fbs 2 + ca 4 + thal 3 (no OOV slots) + age 5 bins + 4 normalized + crosses 8 + 4
    assert preprocessed_x.shape == (32, 2 + 5 + 2 + 4 + 3 + 5 + 4 + 8 + 4)
    assert preprocessed_x.dtype == "float32"
    assert training_model.inputs[0].shape == (None, 37)
    assert history.history["loss"][-1] < 0.7 * history.history["loss"][0]
    assert history.history["accuracy"][-1] > 0.8
    assert "val_loss" in history.history


def test_inference_model_on_raw_dicts(trained, tmp_path):
    feature_space, _, training_model, inference_model, _ = trained
    sample = {"age": 60, "sex": 1, "cp": 1, "fbs": 0, "trestbps": 145, "chol": 233, "thalach": 150,
              "oldpeak": 2.3, "ca": 0, "thal": "fixed"}
    input_dict = {name: keras.ops.convert_to_tensor([value]) for name, value in sample.items()}
    predictions = inference_model.predict(input_dict, verbose=0)
    assert predictions.shape == (1, 1) and 0 <= predictions[0, 0] <= 1
    # the end-to-end model is the training model after the FeatureSpace
    cols, _ = _dataframe(20, 2)
    np.testing.assert_allclose(inference_model.predict(cols, verbose=0),
                               training_model.predict(feature_space(cols), verbose=0), rtol=1e-5, atol=1e-6)
    encoded_one = feature_space(sample)
    assert encoded_one.shape == (37,)
    np.testing.assert_allclose(training_model.predict(encoded_one.numpy()[None], verbose=0), predictions, rtol=1e-5)
    # saved and loaded, the end-to-end model still takes raw dicts
    inference_model.save(tmp_path / "inference.keras")
    restored = keras.models.load_model(tmp_path / "inference.keras")
    np.testing.assert_allclose(restored.predict(cols, verbose=0), inference_model.predict(cols, verbose=0),
                               rtol=1e-5, atol=1e-6)
