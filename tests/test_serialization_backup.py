"""keras.saving.serialize/deserialize_keras_object, the registry, Model.to_json / models.model_from_json, and
callbacks.BackupAndRestore."""

import json
import os

import numpy as np
import pytest

import dlgpu as keras
from dlgpu import saving


# -- serialize / deserialize ----------------------------------------------------------------------------
@pytest.mark.parametrize("obj", [
    keras.layers.Dense(3, activation="relu", kernel_regularizer="l2"),
    keras.layers.Conv2D(4, 3, padding="same"),
    keras.losses.CategoricalCrossentropy(from_logits=True, label_smoothing=0.1),
    keras.metrics.AUC(num_thresholds=50),
    keras.optimizers.Adam(learning_rate=0.01, beta_1=0.8),
    keras.initializers.RandomNormal(stddev=0.3, seed=2),
    keras.regularizers.L1L2(l1=0.1, l2=0.2),
    keras.constraints.MinMaxNorm(0.5, 2.0),
], ids=lambda o: type(o).__name__)
def test_objects_round_trip_through_json(obj):
    config = saving.serialize_keras_object(obj)
    assert set(config) >= {"module", "class_name", "config", "registered_name"}
    assert config["class_name"] == type(obj).__name__
    restored = saving.deserialize_keras_object(json.loads(json.dumps(config)))
    assert type(restored) is type(obj) and restored is not obj
    assert restored.get_config() == obj.get_config()


@pytest.mark.parametrize("fn,module", [(keras.activations.gelu, "keras.activations"),
                                       (keras.losses.mean_squared_error, "keras.losses"),
                                       (keras.metrics.binary_accuracy, "keras.metrics")])
def test_functions_serialize_by_name(fn, module):
    config = saving.serialize_keras_object(fn)
    assert config == {"module": module, "class_name": "function", "config": fn.__name__,
                      "registered_name": fn.__name__}
    assert saving.deserialize_keras_object(config) is fn


def test_plain_values_arrays_and_containers():
    assert saving.serialize_keras_object([1, "a", None, {"k": 2.5}]) == [1, "a", None, {"k": 2.5}]
    array = np.arange(6, dtype=np.float32).reshape(2, 3)
    restored = saving.deserialize_keras_object(json.loads(json.dumps(saving.serialize_keras_object(array))))
    assert restored.dtype == np.float32
    np.testing.assert_array_equal(restored, array)
    assert saving.deserialize_keras_object("relu") == "relu"  # unresolved strings come back as they are
    both = saving.deserialize_keras_object(saving.serialize_keras_object(
        {"act": keras.activations.relu, "reg": keras.regularizers.L2(0.5)}))
    assert both["act"] is keras.activations.relu and both["reg"].get_config() == {"l2": 0.5}


def test_serialize_errors_name_the_object():
    with pytest.raises(TypeError, match="cannot serialize.*object.*get_config"):
        saving.serialize_keras_object(object())
    with pytest.raises(ValueError, match="Unknown layer class 'NoSuchLayer'"):
        saving.deserialize_keras_object({"module": "keras.layers", "class_name": "NoSuchLayer", "config": {}})
    with pytest.raises(TypeError, match="unexpected keyword"):
        saving.deserialize_keras_object({}, bogus=1)


class ScaleBy(keras.layers.Layer):
    def __init__(self, factor=2.0, **kwargs):
        super().__init__(**kwargs)
        self.factor = factor

    def call(self, x):
        return x * self.factor

    def get_config(self):
        return {**super().get_config(), "factor": self.factor}


@pytest.fixture
def registered_scale():
    """ScaleBy registered as Keras's "MyPkg>ScaleBy" for one test (the registry is process-wide)."""
    from dlgpu.layers import _custom
    saving.register_keras_serializable(package="MyPkg")(ScaleBy)
    yield
    saving._REGISTERED_OBJECTS.pop("MyPkg>ScaleBy")
    saving._REGISTERED_NAMES.pop(ScaleBy)
    _custom.pop("ScaleBy")


def test_registered_classes_keras_names(registered_scale):
    assert saving.get_registered_name(ScaleBy) == "MyPkg>ScaleBy"
    assert saving.get_registered_object("MyPkg>ScaleBy") is ScaleBy
    assert saving.get_registered_name(keras.layers.Dense) == "Dense"
    assert saving.get_registered_object("Nope") is None
    assert saving.get_registered_object("Nope", custom_objects={"Nope": int}) is int
    config = saving.serialize_keras_object(ScaleBy(3.0))
    assert config["registered_name"] == "MyPkg>ScaleBy"
    restored = saving.deserialize_keras_object(config)
    assert isinstance(restored, ScaleBy) and restored.factor == 3.0
    with pytest.raises(ValueError, match="get_config"):
        saving.register_keras_serializable()(type("NoConfig", (), {}))


# -- to_json / model_from_json --------------------------------------------------------------------------
def _functional():
    inputs = keras.Input((5,))
    hidden = keras.layers.Dense(4, activation="tanh")(inputs)
    outputs = keras.layers.Dense(2)(ScaleBy(0.5)(hidden))
    return keras.Model(inputs, outputs)


def test_model_from_json_rebuilds_the_architecture_keras_snippet():
    model = _functional()
    model.compile(optimizer=keras.optimizers.SGD(0.05), loss="mse", metrics=["mae"])
    json_string = model.to_json()
    assert json.loads(json_string)["class_name"] in ("Model", "Functional")
    new_model = keras.models.model_from_json(json_string, custom_objects={"ScaleBy": ScaleBy})
    assert [type(layer).__name__ for layer in new_model.layers] == [type(layer).__name__ for layer in model.layers]
    assert [w.shape for w in new_model.weights] == [w.shape for w in model.weights]
    assert new_model.compiled and type(new_model.optimizer).__name__ == "SGD"
    new_model.set_weights(model.get_weights())
    x = np.random.default_rng(0).normal(size=(3, 5)).astype(np.float32)
    np.testing.assert_allclose(new_model.predict(x, verbose=0), model.predict(x, verbose=0), rtol=1e-6)
    assert "\n  " in model.to_json(indent=2)


def test_model_from_json_sequential_custom_objects_and_errors():
    model = keras.Sequential([keras.layers.Dense(3), keras.layers.Dense(1)])
    model.build((None, 4))
    rebuilt = keras.models.model_from_json(model.to_json())
    assert rebuilt.built and not rebuilt.compiled and [w.shape for w in rebuilt.weights] == [(4, 3), (3,), (3, 1), (1,)]

    class Unregistered(keras.layers.Layer):
        def call(self, x):
            return x
    custom = keras.Sequential([keras.Input((2,)), Unregistered()])
    with pytest.raises(ValueError, match="classes dlgpu does not have.*Unregistered"):
        keras.models.model_from_json(custom.to_json())
    assert isinstance(keras.models.model_from_json(custom.to_json(), custom_objects={"Unregistered": Unregistered})
                      .layers[-1], Unregistered)
    with pytest.raises(ValueError, match="not a JSON string"):
        keras.models.model_from_json("{oops")
    with pytest.raises(ValueError, match="class_name"):
        keras.models.model_from_json('{"a": 1}')


# -- BackupAndRestore -----------------------------------------------------------------------------------
X = np.random.default_rng(0).normal(size=(32, 4)).astype(np.float32)
Y = (X.sum(axis=1, keepdims=True) > 0).astype(np.float32)


def _model():
    keras.set_random_seed(1)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(8, activation="relu"), keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss="mse", metrics=["mae"])
    return model


class _Interrupt(keras.callbacks.Callback):
    def __init__(self, epoch, batch=None):
        super().__init__()
        self.epoch, self.batch, self.current = epoch, batch, None

    def on_epoch_begin(self, epoch, logs=None):
        self.current = epoch
        if epoch == self.epoch and self.batch is None:
            raise RuntimeError("interrupted")

    def on_train_batch_begin(self, batch, logs=None):
        if self.current == self.epoch and batch == self.batch:
            raise RuntimeError("interrupted")


class _Snapshot(keras.callbacks.Callback):
    """The weights and optimizer variables when training (re)starts, after the backup is restored."""

    def on_train_begin(self, logs=None):
        self.weights = self.model.get_weights()
        self.optimizer = [v.numpy().copy() for v in self.model.optimizer.variables] if self.model.optimizer.built else []


def _fit(model, callbacks, **kwargs):
    return model.fit(X, Y, epochs=5, batch_size=8, shuffle=False, verbose=0, callbacks=callbacks, **kwargs)


@pytest.mark.parametrize("fresh_model", [True, False])
def test_interrupted_fit_resumes_with_identical_weights_and_optimizer_state(tmp_path, fresh_model):
    reference = _model()
    _fit(reference, [])
    model = _model()
    backup = keras.callbacks.BackupAndRestore(tmp_path / "backup")
    with pytest.raises(RuntimeError, match="interrupted"):
        _fit(model, [backup, _Interrupt(epoch=3)])
    assert os.listdir(tmp_path / "backup") == ["latest.weights.dlgpu"]
    after_three = (model.get_weights(), [v.numpy().copy() for v in model.optimizer.variables])
    if fresh_model:  # as in a new process
        model = _model()
    snapshot = _Snapshot()
    history = _fit(model, [keras.callbacks.BackupAndRestore(tmp_path / "backup"), snapshot])
    assert history.epoch == [3, 4]
    for a, b in zip(snapshot.weights, after_three[0]):
        np.testing.assert_array_equal(a, b)
    assert len(snapshot.optimizer) == len(after_three[1]) and int(after_three[1][0]) == 12  # 3 epochs x 4 steps
    for a, b in zip(snapshot.optimizer, after_three[1]):
        np.testing.assert_array_equal(a, b)
    for a, b in zip(model.get_weights(), reference.get_weights()):
        np.testing.assert_array_equal(a, b)  # as if never interrupted
    for a, b in zip(model.optimizer.variables, reference.optimizer.variables):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    assert not os.path.exists(tmp_path / "backup")  # a completed fit deletes its backup
    assert _fit(model, [keras.callbacks.BackupAndRestore(tmp_path / "backup")]).epoch == [0, 1, 2, 3, 4]


def test_batch_save_freq_resumes_the_interrupted_epoch_from_the_last_backup(tmp_path):
    model = _model()
    saved = []

    class Record(keras.callbacks.Callback):
        """The weights at each backup: save_freq=3 counts batches across epochs."""
        count = 0

        def on_train_batch_end(self, batch, logs=None):
            Record.count += 1
            if Record.count % 3 == 0:
                saved.append(self.model.get_weights())

    backup = keras.callbacks.BackupAndRestore(tmp_path, save_freq=3, delete_checkpoint=False)
    with pytest.raises(RuntimeError):
        # 4 batches an epoch; stopped before epoch 1's 4th batch: backups after batches 3 and 6, in epoch 1
        _fit(model, [backup, Record(), _Interrupt(epoch=1, batch=3)])
    assert len(saved) == 2
    snapshot = _Snapshot()
    history = _fit(_model(), [keras.callbacks.BackupAndRestore(tmp_path, save_freq=3, delete_checkpoint=False),
                              snapshot])
    assert history.epoch == [1, 2, 3, 4]  # the epoch in progress at the last backup, from its first batch
    for a, b in zip(snapshot.weights, saved[-1]):
        np.testing.assert_array_equal(a, b)
    assert int(snapshot.optimizer[0]) == 6
    assert os.path.exists(tmp_path / "latest.weights.dlgpu")  # delete_checkpoint=False keeps it


def test_backup_and_restore_argument_errors(tmp_path):
    with pytest.raises(ValueError, match="empty `backup_dir`"):
        keras.callbacks.BackupAndRestore("")
    for bad in (0, -2, "batch", 1.5, True):
        with pytest.raises(ValueError, match="save_freq"):
            keras.callbacks.BackupAndRestore(tmp_path, save_freq=bad)
    with pytest.raises(NotImplementedError, match="double_checkpoint"):
        keras.callbacks.BackupAndRestore(tmp_path, double_checkpoint=True)


def test_backup_dir_keeps_other_files(tmp_path):
    (tmp_path / "notes.txt").write_text("keep me")
    _fit(_model(), [keras.callbacks.BackupAndRestore(tmp_path)])
    assert sorted(os.listdir(tmp_path)) == ["notes.txt"]


@pytest.mark.gpu
def test_backup_on_gpu_resumes_and_matches_the_cpu_run(tmp_path):
    """A backup written while training on the GPU restores into GPU arrays (weights and Adam's slots) and the
    resumed run ends where an uninterrupted CPU run does."""
    import dlgpu
    reference = _model()
    _fit(reference, [])
    with dlgpu.device("gpu"):
        model = _model()
        with pytest.raises(RuntimeError):
            _fit(model, [keras.callbacks.BackupAndRestore(tmp_path), _Interrupt(epoch=2)])
        model = _model()
        _fit(model, [keras.callbacks.BackupAndRestore(tmp_path)])
        assert all(w.device.kind == "gpu" for w in model.weights)
        assert all(v.device.kind == "gpu" for v in model.optimizer._slot_variables)
    for a, b in zip(model.get_weights(), reference.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
