"""fit/evaluate/predict on dlgpu.data.Dataset pipelines, as Keras code feeds them tf.data pipelines."""

import warnings

import numpy as np
import pytest

import dlgpu
from dlgpu import callbacks, layers
from dlgpu.data import AUTOTUNE, Dataset


def _mnist_like(n=64, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 10, n)
    x = rng.random((n, 8, 8, 1), dtype=np.float32) * 0.5
    x[np.arange(n), y % 8, y // 2 % 8, 0] += 1.0  # a bright pixel that says the class
    return x, y


def _convnet(seed=0):
    dlgpu.set_random_seed(seed)
    model = dlgpu.Sequential([layers.Input((8, 8, 1)), layers.Conv2D(4, 3, activation="relu"), layers.Flatten(),
                              layers.Dense(10, activation="softmax")])
    model.compile(optimizer=dlgpu.optimizers.Adam(0.01), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    return model


class _CountBatches(callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.per_epoch, self.sizes = [], []

    def on_epoch_begin(self, epoch, logs=None):
        self.per_epoch.append(0)

    def on_train_batch_end(self, batch, logs=None):
        self.per_epoch[-1] += 1


@pytest.mark.parametrize("pipeline", ["slices", "mapped"])
def test_training_from_a_dataset_equals_training_from_the_arrays(pipeline):
    """The same batches in the same order (shuffle=False for the arrays): the same weights.  Through the
    index plan, and through map (element by element), which must not change a thing."""
    x, y = _mnist_like()
    ds = Dataset.from_tensor_slices((x, y))
    if pipeline == "mapped":
        ds = ds.map(lambda image, label: (image, label), num_parallel_calls=AUTOTUNE)
    ds = ds.batch(16).prefetch(AUTOTUNE)
    from_arrays, from_dataset = _convnet(), _convnet()
    h_arrays = from_arrays.fit(x, y, batch_size=16, epochs=2, shuffle=False, verbose=0)
    h_dataset = from_dataset.fit(ds, epochs=2, verbose=0)
    for a, b in zip(from_arrays.get_weights(), from_dataset.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert h_arrays.history == h_dataset.history


def test_fit_evaluate_predict_on_a_shuffled_pipeline():
    x, y = _mnist_like(96)
    train = Dataset.from_tensor_slices((x[:64], y[:64])).shuffle(64, seed=0).batch(16).prefetch(AUTOTUNE)
    val = Dataset.from_tensor_slices((x[64:], y[64:])).batch(16)
    model = _convnet()
    history = model.fit(train, epochs=12, validation_data=val, verbose=0)
    assert history.history["loss"][-1] < 0.6 * history.history["loss"][0]
    assert set(history.history) == {"loss", "accuracy", "val_loss", "val_accuracy"}
    # the last validation is evaluate() on the same data, and evaluate(dataset) equals evaluate(arrays)
    assert history.history["val_loss"][-1] == pytest.approx(model.evaluate(x[64:], y[64:], verbose=0)[0], rel=1e-6)
    assert model.evaluate(val, verbose=0) == pytest.approx(model.evaluate(x[64:], y[64:], verbose=0), rel=1e-6)
    # predict: an x-only dataset, and an (x, y) one whose targets it ignores
    expected = model.predict(x, verbose=0)
    np.testing.assert_allclose(model.predict(Dataset.from_tensor_slices(x).batch(20), verbose=0), expected,
                               rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(model.predict(Dataset.from_tensor_slices((x, y)).batch(32), verbose=0), expected,
                               rtol=1e-5, atol=1e-6)
    assert model.evaluate(val.take(2), verbose=0, return_dict=True)["loss"] == pytest.approx(
        model.evaluate(x[64:96], y[64:96], verbose=0)[0], rel=1e-6)


def test_infinite_repeat_with_steps_per_epoch():
    x, y = _mnist_like(40)
    forever = Dataset.from_tensor_slices((x, y)).shuffle(40, seed=1).repeat().batch(16)
    assert forever.cardinality() == dlgpu.data.INFINITE_CARDINALITY
    counter = _CountBatches()
    model = _convnet()
    model.fit(forever, epochs=3, steps_per_epoch=4, verbose=0, callbacks=[counter],
              validation_data=forever, validation_steps=2)
    assert counter.per_epoch == [4, 4, 4]
    with pytest.raises(ValueError, match="infinite.*steps_per_epoch"):
        model.fit(forever, epochs=1, verbose=0)
    with pytest.raises(ValueError, match="infinite.*validation_steps"):
        model.fit(forever, steps_per_epoch=1, validation_data=forever, verbose=0)
    with pytest.raises(ValueError, match="infinite.*steps"):
        model.predict(Dataset.from_tensor_slices(x).repeat().batch(8), verbose=0)
    assert model.predict(Dataset.from_tensor_slices(x).repeat().batch(8), steps=3, verbose=0).shape == (24, 10)


def test_steps_per_epoch_carries_a_finite_pass_over_epochs_as_keras():
    """Keras's EpochIterator: with steps_per_epoch an epoch goes on where the last stopped, and a pass that
    runs out ends the epoch with a warning; the next epoch starts a new pass."""
    x, y = _mnist_like(48)
    ds = Dataset.from_tensor_slices((x, y)).batch(16)  # 3 batches a pass
    counter = _CountBatches()
    with pytest.warns(UserWarning, match="ran out of batches after 1 of steps_per_epoch=2"):
        _convnet().fit(ds, epochs=3, steps_per_epoch=2, verbose=0, callbacks=[counter])
    assert counter.per_epoch == [2, 1, 2]


def test_unknown_cardinality_runs_whole_passes():
    x, y = _mnist_like(64)
    ds = Dataset.from_tensor_slices((x, y)).filter(lambda image, label: label < 5).batch(8)
    counter = _CountBatches()
    _convnet().fit(ds, epochs=2, verbose=0, callbacks=[counter])
    expected = int(np.ceil(np.sum(y < 5) / 8))
    assert counter.per_epoch == [expected, expected]


def test_dict_inputs_into_named_inputs_and_structured_targets():
    rng = np.random.default_rng(0)
    n = 48
    features = {"age": rng.uniform(20, 70, (n, 1)).astype(np.float32),
                "pixels": rng.random((n, 6), dtype=np.float32)}
    target = (features["age"][:, 0] > 45).astype(np.float32)[:, None]
    age, pixels = layers.Input((1,), name="age"), layers.Input((6,), name="pixels")
    merged = layers.concatenate([layers.Normalization(mean=45.0, variance=200.0)(age), pixels])
    dlgpu.set_random_seed(0)
    model = dlgpu.Model({"age": age, "pixels": pixels}, layers.Dense(1, activation="sigmoid")(merged))
    model.compile(dlgpu.optimizers.Adam(0.05), "binary_crossentropy")
    ds = Dataset.from_tensor_slices((features, target)).shuffle(n, seed=0).batch(8)
    history = model.fit(ds, epochs=8, verbose=0)
    assert history.history["loss"][-1] < 0.5 * history.history["loss"][0]
    np.testing.assert_allclose(model.predict(Dataset.from_tensor_slices(features).batch(10), verbose=0),
                               model.predict(features, verbose=0), rtol=1e-6)
    weights = np.linspace(0.5, 2.0, n).astype(np.float32)
    weighted = Dataset.from_tensor_slices((features, target, weights)).batch(8)
    assert model.evaluate(weighted, verbose=0) == pytest.approx(
        model.evaluate(features, target, sample_weight=weights, batch_size=8, verbose=0), rel=1e-5)


def test_a_map_returning_tensors_and_a_generator_source_train():
    x, y = _mnist_like(32)
    scaled = Dataset.from_tensor_slices((x, y)).batch(8).map(
        lambda image, label: (dlgpu.ops.multiply(image, 2.0), label))
    model = _convnet()
    model.fit(scaled, epochs=1, verbose=0)

    def samples():
        yield from zip(x, y)
    generated = Dataset.from_generator(samples, output_signature=(dlgpu.data.TensorSpec((8, 8, 1), "float32"),
                                                                  dlgpu.data.TensorSpec((), "int64"))).batch(8)
    counter = _CountBatches()
    model.fit(generated, epochs=2, verbose=0, callbacks=[counter])  # called afresh each epoch
    assert counter.per_epoch == [4, 4]


def test_class_weight_with_a_dataset_equals_with_arrays():
    x, y = _mnist_like(32)
    weights = {c: 1.0 + c for c in range(10)}
    a, b = _convnet(), _convnet()
    a.fit(x, y, batch_size=8, epochs=1, shuffle=False, class_weight=weights, verbose=0)
    b.fit(Dataset.from_tensor_slices((x, y)).batch(8), epochs=1, class_weight=weights, verbose=0)
    for wa, wb in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_allclose(wa, wb, rtol=1e-6, atol=1e-7)


def test_errors_come_before_any_weight_changes():
    x, y = _mnist_like(32)
    model = _convnet()
    before = model.get_weights()
    bad = x.copy()
    bad[20, 0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        model.fit(Dataset.from_tensor_slices((bad, y)).shuffle(32).batch(8), verbose=0)
    labels = y.copy()
    labels[30] = 12
    with pytest.raises(ValueError, match="12"):
        model.fit(Dataset.from_tensor_slices((x, labels)).batch(8), verbose=0)
    with pytest.raises(ValueError, match="`y` must not be given.*dlgpu.data.Dataset"):
        model.fit(Dataset.from_tensor_slices((x, y)).batch(8), y, verbose=0)
    with pytest.raises(ValueError, match="validation_split"):
        model.fit(Dataset.from_tensor_slices((x, y)).batch(8), validation_split=0.2, verbose=0)
    with pytest.raises(ValueError, match="no elements"):
        model.fit(Dataset.from_tensor_slices((x, y)).batch(8).take(0), verbose=0)
    with pytest.raises(ValueError, match="without targets"):
        model.fit(Dataset.from_tensor_slices(x).batch(8), verbose=0)
    for a, b in zip(before, model.get_weights()):
        np.testing.assert_array_equal(a, b)
    with pytest.warns(UserWarning, match="batch_size=8.*ignored"):
        model.fit(Dataset.from_tensor_slices((x, y)).batch(16), batch_size=8, verbose=0)


def test_an_unbatched_dataset_is_taken_element_by_element_with_a_warning():
    x, y = _mnist_like(8)
    model = _convnet()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        model.fit(Dataset.from_tensor_slices((x, y)).batch(4), verbose=0)  # builds the model
    with pytest.warns(UserWarning, match=r"single samples.*\.batch\(batch_size\)"), pytest.raises(ValueError):
        model.fit(Dataset.from_tensor_slices((x, y)), verbose=0)  # each (8, 8, 1) image is taken as a batch


@pytest.mark.gpu
def test_training_from_a_dataset_on_the_gpu_matches_the_cpu():
    x, y = _mnist_like()
    results = []
    for device in ("cpu", "gpu"):
        with dlgpu.device(device):
            # one dataset per run: each iteration of one dataset reshuffles, so a shared one would give the
            # second run other batches
            ds = Dataset.from_tensor_slices((x, y)).shuffle(64, seed=0).batch(16)
            model = _convnet()
            model.fit(ds, epochs=2, verbose=0)
            results.append(model.get_weights())
    for cpu, gpu in zip(*results):
        np.testing.assert_allclose(gpu, cpu, rtol=1e-3, atol=1e-4)
