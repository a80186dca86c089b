"""Saving and loading: round trips, compile config, weights only, atomic writes, hostile files."""

import io
import json
import os
import zipfile

import numpy as np
import pytest

import dlgpu
from dlgpu import layers
from dlgpu.models import load_model
from dlgpu.models.saving import SavedModelError


def _x(shape=(8, 6), seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def _sequential():
    model = dlgpu.Sequential([layers.Dense(8, activation="relu", input_shape=(6,)), layers.BatchNormalization(),
                              layers.Dropout(0.3), layers.Dense(3, activation="softmax")])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(_x((32, 6)), np.arange(32) % 3, epochs=1, verbose=0)  # moves the BN statistics off their init
    return model


def _multi_io_residual():
    a, b = dlgpu.Input(shape=(6,), name="a"), dlgpu.Input(shape=(4, 4, 2), name="img")
    h = layers.Dense(6, activation="tanh")(a)
    h = layers.Add()([a, h])                                  # residual
    c = layers.Conv2D(3, 3, padding="same", activation="relu")(b)
    c = layers.GlobalAveragePooling2D()(layers.MaxPooling2D()(c))
    merged = layers.Concatenate()([h, c])
    shared = layers.Dense(5, name="shared")
    out1 = layers.Dense(1, name="out1")(shared(merged))
    out2 = layers.Dense(2, activation="softmax", name="out2")(layers.Reshape((5,))(shared(merged)))
    return dlgpu.Model([a, b], [out1, out2], name="multi")


def _assert_same_predictions(m1, m2, x):
    p1, p2 = m1.predict(x, verbose=0), m2.predict(x, verbose=0)
    for a, b in zip(p1 if isinstance(p1, list) else [p1], p2 if isinstance(p2, list) else [p2]):
        np.testing.assert_array_equal(a, b)


def test_sequential_round_trip(tmp_path):
    model = _sequential()
    path = tmp_path / "model.dlgpu"
    model.save(path)
    loaded = load_model(path)
    assert type(loaded) is dlgpu.Sequential
    assert [type(l) for l in loaded.layers] == [type(l) for l in model.layers]
    _assert_same_predictions(model, loaded, _x())
    for a, b in zip(model.get_weights(), loaded.get_weights()):
        np.testing.assert_array_equal(a, b)
    # compile config restored: it evaluates and keeps training
    assert loaded.compiled
    assert loaded.evaluate(_x((32, 6)), np.arange(32) % 3, verbose=0, return_dict=True).keys() == {"loss", "accuracy"}
    loaded.fit(_x((32, 6)), np.arange(32) % 3, epochs=1, verbose=0)


def test_functional_multi_io_residual_round_trip(tmp_path):
    model = _multi_io_residual()
    model.compile(optimizer="adam", loss=["mse", "sparse_categorical_crossentropy"])
    path = tmp_path / "multi.dlgpu"
    model.save(path)
    loaded = load_model(path)
    assert loaded.name == "multi" and len(loaded.weights) == len(model.weights)
    assert [l.name for l in loaded.layers] == [l.name for l in model.layers]
    x = [_x((5, 6)), _x((5, 4, 4, 2), 1)]
    _assert_same_predictions(model, loaded, x)
    loaded.fit(x, [np.zeros((5, 1), np.float32), np.zeros(5, np.int64)], epochs=1, verbose=0)


def test_uncompiled_model_loads_uncompiled(tmp_path):
    model = dlgpu.Sequential([layers.Dense(2, input_shape=(3,))])
    model.save(tmp_path / "m.dlgpu")
    loaded = load_model(tmp_path / "m.dlgpu")
    assert not loaded.compiled
    _assert_same_predictions(model, loaded, _x((4, 3)))
    assert not load_model(tmp_path / "m.dlgpu", compile=False).compiled


def test_save_weights_load_weights(tmp_path):
    model = _sequential()
    model.save_weights(tmp_path / "w.weights.dlgpu")
    other = dlgpu.Sequential([layers.Dense(8, activation="relu", input_shape=(6,)), layers.BatchNormalization(),
                              layers.Dropout(0.3), layers.Dense(3, activation="softmax")])
    other.load_weights(tmp_path / "w.weights.dlgpu")
    _assert_same_predictions(model, other, _x())
    with pytest.raises(SavedModelError, match="weights"):
        load_model(tmp_path / "w.weights.dlgpu")
    wrong = dlgpu.Sequential([layers.Dense(5, input_shape=(6,))])
    before = wrong.get_weights()
    with pytest.raises(ValueError, match="different architecture|shape"):
        wrong.load_weights(tmp_path / "w.weights.dlgpu")
    for a, b in zip(wrong.get_weights(), before):
        np.testing.assert_array_equal(a, b)


def test_unbuilt_model_cannot_be_saved(tmp_path):
    with pytest.raises(ValueError, match="not built"):
        dlgpu.Sequential([layers.Dense(2)]).save(tmp_path / "m.dlgpu")
    assert os.listdir(tmp_path) == []


def test_overwrite_false(tmp_path):
    model = dlgpu.Sequential([layers.Dense(2, input_shape=(3,))])
    model.save(tmp_path / "m.dlgpu")
    with pytest.raises(FileExistsError):
        model.save(tmp_path / "m.dlgpu", overwrite=False)


def test_atomic_write_keeps_the_old_file_when_writing_fails(tmp_path, monkeypatch):
    model = dlgpu.Sequential([layers.Dense(2, input_shape=(3,))])
    path = tmp_path / "m.dlgpu"
    model.save(path)
    good = path.read_bytes()
    model.layers[0].kernel.assign(np.ones((3, 2), np.float32))

    real_writestr = zipfile.ZipFile.writestr
    calls = []

    def failing_writestr(self, name, data, *args, **kwargs):
        calls.append(name)
        if len(calls) == 2:   # half of the archive is written when the disk "fills up"
            raise OSError(28, "No space left on device")
        return real_writestr(self, name, data, *args, **kwargs)
    monkeypatch.setattr(zipfile.ZipFile, "writestr", failing_writestr)
    with pytest.raises(OSError, match="No space"):
        model.save(path)
    monkeypatch.undo()
    assert path.read_bytes() == good              # the old file survives intact
    assert os.listdir(tmp_path) == ["m.dlgpu"]    # and no temporary file is left behind
    loaded = load_model(path)
    assert not np.array_equal(loaded.get_weights()[0], np.ones((3, 2)))


def test_interrupt_during_save_leaves_no_temp_file(tmp_path, monkeypatch):
    model = dlgpu.Sequential([layers.Dense(2, input_shape=(3,))])

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt
    monkeypatch.setattr(os, "replace", interrupted)
    with pytest.raises(KeyboardInterrupt):
        model.save_weights(tmp_path / "w.dlgpu")
    assert os.listdir(tmp_path) == []


def test_save_to_missing_directory(tmp_path):
    model = dlgpu.Sequential([layers.Dense(2, input_shape=(3,))])
    with pytest.raises(FileNotFoundError, match="does not exist"):
        model.save(tmp_path / "nope" / "m.dlgpu")
    assert os.listdir(tmp_path) == []


# -- compile settings and optimizer state ----------------------------------------------------------
def _logits_sequential():
    return dlgpu.Sequential([layers.Dense(8, activation="relu", input_shape=(6,)), layers.Dense(3)])


def _evaluate(model, x, y):
    return model.evaluate(x, y, batch_size=16, verbose=0, return_dict=True)


def test_loss_object_round_trips_and_trains_after_load(tmp_path):
    model = _logits_sequential()
    model.compile(optimizer="adam", loss=dlgpu.losses.SparseCategoricalCrossentropy(from_logits=True))
    x, y = _x((32, 6)), np.arange(32) % 3
    model.fit(x, y, epochs=1, verbose=0)
    model.save(tmp_path / "m.dlgpu")
    loaded = load_model(tmp_path / "m.dlgpu")
    (loss,) = loaded._loss_fns
    assert type(loss) is dlgpu.losses.SparseCategoricalCrossentropy and loss.from_logits
    assert _evaluate(loaded, x, y) == _evaluate(model, x, y)
    history = loaded.fit(x, y, epochs=2, verbose=0)
    assert history.history["loss"][1] < history.history["loss"][0]


def test_metric_objects_keep_their_config(tmp_path):
    dlgpu.set_random_seed(0)
    model = dlgpu.Sequential([layers.Dense(4, activation="relu", input_shape=(6,)),
                              layers.Dense(1, activation="sigmoid")])
    model.compile(optimizer="sgd", loss="binary_crossentropy",
                  metrics=[dlgpu.metrics.BinaryAccuracy(threshold=0.3, name="acc_at_0.3"),
                           dlgpu.metrics.Precision(thresholds=0.3), dlgpu.metrics.TruePositives(thresholds=0.7),
                           dlgpu.metrics.binary_accuracy, "auc"])
    x, y = _x((40, 6)), (np.arange(40) % 2).astype(np.float32)
    before = _evaluate(model, x, y)
    model.save(tmp_path / "m.dlgpu")
    loaded = load_model(tmp_path / "m.dlgpu")
    after = _evaluate(loaded, x, y)
    assert list(after) == ["loss", "acc_at_0.3", "precision", "true_positives", "binary_accuracy", "auc"]
    assert after == before
    by_name = {name: metric for _, name, metric, _ in loaded._metric_objects}
    assert by_name["acc_at_0.3"].threshold == 0.3 and by_name["precision"].thresholds == [0.3]
    assert by_name["true_positives"].thresholds == [0.7]
    # and the thresholds matter here, so equal results are not a coincidence of the defaults
    assert after["precision"] != float(dlgpu.metrics.Precision()(y, model.predict(x, verbose=0)))


@pytest.mark.parametrize("loss_weights", [[0.25, 3.0], {"out1": 0.25, "out2": 3.0}])
def test_loss_weights_and_per_output_dicts_round_trip(tmp_path, loss_weights):
    model = _multi_io_residual()
    model.compile(optimizer="adam", loss_weights=loss_weights,
                  loss={"out1": "mse", "out2": dlgpu.losses.SparseCategoricalCrossentropy(name="cls")},
                  metrics={"out2": [dlgpu.metrics.SparseCategoricalAccuracy(name="acc")]})
    x = [_x((10, 6)), _x((10, 4, 4, 2), 1)]
    y = [_x((10, 1), 2), np.arange(10) % 2]
    before = _evaluate(model, x, y)
    model.save(tmp_path / "m.dlgpu")
    loaded = load_model(tmp_path / "m.dlgpu")
    assert _evaluate(loaded, x, y) == before
    assert list(before) == ["loss", "out1_loss", "out2_loss", "out2_acc"]
    # the weights are what makes the total: unweighted it would be the plain sum
    assert before["loss"] == pytest.approx(0.25 * before["out1_loss"] + 3.0 * before["out2_loss"], rel=1e-5)
    assert before["loss"] != pytest.approx(before["out1_loss"] + before["out2_loss"], rel=1e-3)


@pytest.mark.parametrize("optimizer", [
    lambda: dlgpu.optimizers.Adam(0.01),   # small parameters' slots packed into flat buffers
    lambda: dlgpu.optimizers.Adam(0.01, amsgrad=True),
    lambda: dlgpu.optimizers.SGD(0.05, momentum=0.9, nesterov=True),
    lambda: dlgpu.optimizers.RMSprop(0.01, momentum=0.5, centered=True),
], ids=["adam", "adam-amsgrad", "sgd-nesterov", "rmsprop-centered"])
def test_optimizer_state_round_trips_and_training_resumes_identically(tmp_path, optimizer):
    model = _logits_sequential()
    model.compile(optimizer=optimizer(), loss=dlgpu.losses.SparseCategoricalCrossentropy(from_logits=True))
    x, y = _x((32, 6)), np.arange(32) % 3
    model.fit(x, y, epochs=3, batch_size=8, verbose=0)
    model.save(tmp_path / "m.dlgpu")
    loaded = load_model(tmp_path / "m.dlgpu")
    assert int(loaded.optimizer.iterations) == int(model.optimizer.iterations) == 12
    assert [v.shape for v in loaded.optimizer.variables] == [v.shape for v in model.optimizer.variables]
    for saved, restored in zip(model.optimizer.variables, loaded.optimizer.variables):
        np.testing.assert_array_equal(restored.numpy(), saved.numpy())
    assert any(np.any(v.numpy() != 0) for v in loaded.optimizer.variables[2:])  # real state, not fresh zeros
    for m in (model, loaded):  # one more step each, on the same batch
        m.fit(x, y, epochs=1, batch_size=32, shuffle=False, verbose=0)
    assert int(loaded.optimizer.iterations) == 13
    for a, b in zip(model.get_weights(), loaded.get_weights()):
        np.testing.assert_array_equal(b, a)


def test_compile_false_skips_compile_config_and_optimizer_state(tmp_path):
    model = _logits_sequential()
    model.compile(optimizer="adam", loss=dlgpu.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(_x((16, 6)), np.arange(16) % 3, epochs=1, verbose=0)
    model.save(tmp_path / "m.dlgpu")
    loaded = load_model(tmp_path / "m.dlgpu", compile=False)
    assert not loaded.compiled and loaded.optimizer is None
    _assert_same_predictions(model, loaded, _x())


def test_file_saved_before_compile_objects_and_optimizer_state_still_loads(tmp_path):
    model = _sequential()
    entries = _valid_archive_entries(tmp_path, model)
    # what the first format wrote: version 1, no loss_weights, no optimizer entries among the weights
    meta = json.loads(entries["metadata.json"])
    meta["format_version"] = 1
    config = json.loads(entries["config.json"])
    del config["compile_config"]["loss_weights"]
    with np.load(io.BytesIO(entries["model.weights.npz"])) as npz:
        assert any(k.startswith("optimizer/") for k in npz.files)
        weights = {k: npz[k] for k in npz.files if not k.startswith("optimizer/")}
    buffer = io.BytesIO()
    np.savez(buffer, **weights)
    entries.update({"metadata.json": json.dumps(meta), "config.json": json.dumps(config),
                    "model.weights.npz": buffer.getvalue()})
    _write_zip(tmp_path / "old.dlgpu", entries)
    loaded = load_model(tmp_path / "old.dlgpu")
    _assert_same_predictions(model, loaded, _x())
    assert loaded.compiled and int(loaded.optimizer.iterations) == 0
    loaded.fit(_x((32, 6)), np.arange(32) % 3, epochs=1, verbose=0)


def test_optimizer_state_that_does_not_fit_is_skipped_with_a_warning(tmp_path):
    model = _logits_sequential()
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    model.fit(_x((16, 6)), np.arange(16) % 3, epochs=1, verbose=0)
    model.save(tmp_path / "m.dlgpu")
    entries = _valid_archive_entries(tmp_path, model)
    with np.load(io.BytesIO(entries["model.weights.npz"])) as npz:
        arrays = {k: npz[k] for k in npz.files}
    slot = next(k for k in sorted(arrays) if k.endswith("_momentum"))
    arrays[slot] = np.zeros(arrays[slot].size + 1, np.float32)
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    entries["model.weights.npz"] = buffer.getvalue()
    _write_zip(tmp_path / "bad.dlgpu", entries)
    with pytest.warns(UserWarning, match=r"skipped the optimizer state.*has shape"):
        loaded = load_model(tmp_path / "bad.dlgpu")
    _assert_same_predictions(model, loaded, _x())
    assert int(loaded.optimizer.iterations) == 0 and not loaded.optimizer.built  # fresh, not half loaded
    loaded.fit(_x((16, 6)), np.arange(16) % 3, epochs=1, verbose=0)


def my_loss(y_true, y_pred):
    return dlgpu.ops.mean(dlgpu.ops.square(y_true - y_pred), axis=-1)


def test_custom_loss_function_is_left_out_with_a_warning(tmp_path):
    model = dlgpu.Sequential([layers.Dense(1, input_shape=(6,))])
    model.compile(optimizer="adam", loss=my_loss, metrics=["mae", lambda t, p: p])
    model.fit(_x((16, 6)), _x((16, 1), 1), epochs=1, verbose=0)
    with pytest.warns(UserWarning, match=r"saved without these compile arguments.*loss 'my_loss', metric '<lambda>'"):
        model.save(tmp_path / "m.dlgpu")
    loaded = load_model(tmp_path / "m.dlgpu")
    _assert_same_predictions(model, loaded, _x())
    assert loaded.compiled and int(loaded.optimizer.iterations) == 1   # what could be saved was
    with pytest.raises(ValueError, match="No loss to compute"):
        loaded.fit(_x((16, 6)), _x((16, 1), 1), epochs=1, verbose=0)
    loaded.compile(optimizer=loaded.optimizer, loss=my_loss, metrics=["mae"])
    loaded.fit(_x((16, 6)), _x((16, 1), 1), epochs=1, verbose=0)


class ScaledMSE(dlgpu.losses.Loss):
    def __init__(self, scale=1.0, **kwargs):
        super().__init__(**kwargs)
        self.scale = scale

    def call(self, y_true, y_pred):
        return dlgpu.ops.mean(dlgpu.ops.square(y_true - y_pred), axis=-1) * self.scale

    def get_config(self):
        return {**super().get_config(), "scale": self.scale}


def test_custom_loss_class_loads_through_custom_objects(tmp_path):
    model = dlgpu.Sequential([layers.Dense(1, input_shape=(6,))])
    model.compile(optimizer="sgd", loss=ScaledMSE(scale=4.0))
    x, y = _x((16, 6)), _x((16, 1), 1)
    model.save(tmp_path / "m.dlgpu")
    with pytest.warns(UserWarning, match=r"without these compile arguments.*loss 'ScaledMSE'.*custom_objects"):
        assert load_model(tmp_path / "m.dlgpu")._loss_fns is None
    loaded = load_model(tmp_path / "m.dlgpu", custom_objects={"ScaledMSE": ScaledMSE})
    assert loaded._loss_fns[0].scale == 4.0
    assert _evaluate(loaded, x, y) == _evaluate(model, x, y)


# -- hostile and broken files ------------------------------------------------------------------------
def _write_zip(path, entries):
    with zipfile.ZipFile(path, "w") as z:
        for name, data in entries.items():
            z.writestr(name, data)


def _valid_archive_entries(tmp_path, model=None):
    model = model or dlgpu.Sequential([layers.Dense(2, input_shape=(3,))])
    model.save(tmp_path / "good.dlgpu")
    with zipfile.ZipFile(tmp_path / "good.dlgpu") as z:
        return {n: z.read(n) for n in z.namelist()}


def test_load_text_file(tmp_path):
    (tmp_path / "notes.dlgpu").write_text("hello, not a model")
    with pytest.raises(SavedModelError, match="not a dlgpu model"):
        load_model(tmp_path / "notes.dlgpu")


def test_load_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError):
        load_model(tmp_path / "absent.dlgpu")


def test_load_foreign_zip(tmp_path):
    _write_zip(tmp_path / "foreign.zip", {"readme.txt": "hi", "data.bin": b"\x00\x01"})
    with pytest.raises(SavedModelError, match="not a dlgpu model"):
        load_model(tmp_path / "foreign.zip")


def test_load_truncated_file(tmp_path):
    model = dlgpu.Sequential([layers.Dense(2, input_shape=(3,))])
    model.save(tmp_path / "m.dlgpu")
    data = (tmp_path / "m.dlgpu").read_bytes()
    for cut in (len(data) // 2, len(data) - 30, 100):
        (tmp_path / "cut.dlgpu").write_bytes(data[:cut])
        with pytest.raises(SavedModelError):
            load_model(tmp_path / "cut.dlgpu")
        with pytest.raises(SavedModelError):
            model.load_weights(tmp_path / "cut.dlgpu")


def test_corrupt_config_json(tmp_path):
    entries = _valid_archive_entries(tmp_path)
    entries["config.json"] = b"{not json"
    _write_zip(tmp_path / "bad.dlgpu", entries)
    with pytest.raises(SavedModelError, match="config.json"):
        load_model(tmp_path / "bad.dlgpu")
    entries["config.json"] = json.dumps({"class_name": "os.system", "config": {}}).encode()
    _write_zip(tmp_path / "bad2.dlgpu", entries)
    with pytest.raises(ValueError, match="Unknown layer class"):
        load_model(tmp_path / "bad2.dlgpu")


class _Boom:
    """Unpickling this would run code: the loader must never get that far."""

    def __reduce__(self):
        return (os.system, ("touch PWNED",))


def test_pickled_object_array_is_never_unpickled(tmp_path):
    entries = _valid_archive_entries(tmp_path)
    buffer = io.BytesIO()
    np.savez(buffer, **{"00000:dense/kernel": np.array([_Boom()], dtype=object),
                        "00001:dense/bias": np.zeros(2, np.float32)})
    entries["model.weights.npz"] = buffer.getvalue()
    _write_zip(tmp_path / "evil.dlgpu", entries)
    model = dlgpu.Sequential([layers.Dense(2, input_shape=(3,))])
    before = model.get_weights()
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        with pytest.raises(SavedModelError, match="not plain arrays|pickle"):
            load_model(tmp_path / "evil.dlgpu")
        with pytest.raises(SavedModelError, match="not plain arrays|pickle"):
            model.load_weights(tmp_path / "evil.dlgpu")
    finally:
        os.chdir(cwd)
    assert not (tmp_path / "PWNED").exists()
    for a, b in zip(model.get_weights(), before):   # no partial state
        np.testing.assert_array_equal(a, b)


def test_weights_with_wrong_shapes_change_nothing(tmp_path):
    entries = _valid_archive_entries(tmp_path)
    buffer = io.BytesIO()
    np.savez(buffer, **{"00000:dense/kernel": np.ones((3, 2), np.float32),
                        "00001:dense/bias": np.ones(7, np.float32)})
    entries["model.weights.npz"] = buffer.getvalue()
    _write_zip(tmp_path / "shapes.dlgpu", entries)
    model = dlgpu.Sequential([layers.Dense(2, input_shape=(3,))])
    before = model.get_weights()
    with pytest.raises(SavedModelError, match=r"\(7,\)"):
        model.load_weights(tmp_path / "shapes.dlgpu")
    for a, b in zip(model.get_weights(), before):   # the kernel (which fit) was not assigned either
        np.testing.assert_array_equal(a, b)


def test_compile_config_that_does_not_fit_the_model(tmp_path):
    inputs = dlgpu.Input(shape=(3,))
    model = dlgpu.Model(inputs, layers.Dense(2)(inputs))
    model.compile(optimizer="sgd", loss="mse")
    entries = _valid_archive_entries(tmp_path, model)
    config = json.loads(entries["config.json"])
    config["compile_config"]["loss_weights"] = [1.0, 2.0, 3.0]   # three weights for one output
    entries["config.json"] = json.dumps(config).encode()
    _write_zip(tmp_path / "bad.dlgpu", entries)
    with pytest.raises(SavedModelError, match=r"compile config does not fit.*loss_weights.*compile=False"):
        load_model(tmp_path / "bad.dlgpu")
    assert not load_model(tmp_path / "bad.dlgpu", compile=False).compiled


def test_newer_format_version(tmp_path):
    entries = _valid_archive_entries(tmp_path)
    meta = json.loads(entries["metadata.json"])
    meta["format_version"] = 999
    entries["metadata.json"] = json.dumps(meta).encode()
    _write_zip(tmp_path / "new.dlgpu", entries)
    with pytest.raises(SavedModelError, match="newer"):
        load_model(tmp_path / "new.dlgpu")


def test_subclassed_model_without_config_explains(tmp_path):
    # Keras 3 saves a subclassed model without get_config when it was made from plain values (auto config);
    # one made from a layer object cannot be made again from its config, so saving it explains why.
    class Custom(dlgpu.Model):
        def __init__(self, inner):
            super().__init__()
            self.d = inner

        def call(self, x):
            return self.d(x)
    model = Custom(layers.Dense(2))
    model(np.zeros((1, 3), np.float32))
    with pytest.raises(NotImplementedError, match="get_config"):
        model.save(tmp_path / "c.dlgpu")
    assert os.listdir(tmp_path) == []
    model.save_weights(tmp_path / "c.weights.dlgpu")
    other = Custom(layers.Dense(2))
    other(np.zeros((1, 3), np.float32))
    other.load_weights(tmp_path / "c.weights.dlgpu")
    _assert_same_predictions(model, other, _x((4, 3)))


class Scale(layers.Layer):
    """A custom layer with a config: loadable by name once registered, or through custom_objects."""

    def __init__(self, factor=2.0, **kwargs):
        super().__init__(**kwargs)
        self.factor = factor

    def call(self, inputs):
        return inputs * self.factor

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "factor": self.factor}


def test_custom_layers_load_through_custom_objects_or_registration(tmp_path):
    inp = dlgpu.Input(shape=(3,))
    model = dlgpu.Model(inp, layers.Dense(2)(Scale(3.0)(inp)))
    path = tmp_path / "custom.dlgpu"
    model.save(path)
    with pytest.raises(ValueError, match="Unknown layer class 'Scale'.*custom_objects"):
        load_model(path)
    x = _x((4, 3))
    np.testing.assert_array_equal(load_model(path, custom_objects={"Scale": Scale}).predict(x, verbose=0),
                                  model.predict(x, verbose=0))
    dlgpu.saving.register_keras_serializable()(Scale)
    np.testing.assert_array_equal(load_model(path).predict(x, verbose=0), model.predict(x, verbose=0))
