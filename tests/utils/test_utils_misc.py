"""keras.utils Config, standardize_dtype, is_keras_tensor, get_source_inputs, clear_session and the interactive
logging switches; keras.config's max_epochs / max_steps_per_epoch (honoured by fit, evaluate, predict) and
flash-attention flag."""

import json
import subprocess
import sys

import numpy as np
import pytest

import dlgpu
from dlgpu import config, layers, utils


@pytest.fixture
def restore_config():
    saved = dict(config._state)
    yield
    config._state.clear()
    config._state.update(saved)


def test_config_is_an_attribute_dict_that_freezes():
    c = utils.Config(learning_rate=0.1, momentum=0.9)
    c.seed = 1
    c["use_ema"] = True
    assert c.seed == 1 and c["learning_rate"] == 0.1 and c.get("missing", 5) == 5
    assert list(c) == ["learning_rate", "momentum", "seed", "use_ema"] and len(c) == 4 and "seed" in c
    assert json.loads(c.to_json()) == c.as_dict() and c.as_dict() is not c._config
    with pytest.raises(AttributeError, match="Did you mean 'momentum'"):
        c.momentun
    c.freeze()
    assert c.frozen
    for change in (lambda: setattr(c, "seed", 2), lambda: c.update(seed=2), lambda: c.pop("seed"),
                   lambda: c.__delitem__("seed"), lambda: c.__setitem__("seed", 2)):
        with pytest.raises(ValueError, match="frozen"):
            change()
    c.unfreeze()
    del c["seed"]
    assert "seed" not in c.keys()


def test_standardize_dtype():
    cases = [(None, "float32"), (int, "int32"), (float, "float32"), (bool, "bool"), (str, "string"),
             ("int", "int32"), (np.float32, "float32"), (np.dtype("int64"), "int64"), ("uint8", "uint8"),
             ("bfloat16", "bfloat16")]
    for given, expected in cases:
        assert utils.standardize_dtype(given) == expected, given
    with pytest.raises(ValueError, match="Invalid dtype: float31"):
        utils.standardize_dtype("float31")


def test_is_keras_tensor_and_get_source_inputs():
    a, b, c = dlgpu.Input((3,), name="a"), dlgpu.Input((3,), name="b"), dlgpu.Input((2,), name="c")
    shared = layers.Dense(3)
    h = layers.Add()([shared(a), shared(b)])
    out = layers.Concatenate()([h, a, c * 2.0])
    assert utils.is_keras_tensor(out) and not utils.is_keras_tensor(np.ones(3))
    assert not utils.is_keras_tensor(dlgpu.ops.ones((3,)))
    assert utils.get_source_inputs(out) == [a, b, c]  # each Input once, in the order first reached
    assert utils.get_source_inputs(h) == [a, b] and utils.get_source_inputs(a) == [a]
    values = np.ones(3)
    assert utils.get_source_inputs(values) is values
    model = dlgpu.Model([a, b, c], out)
    assert utils.get_source_inputs(model(model.inputs)) == model.inputs


def test_clear_session_resets_names_and_session_settings(restore_config):
    utils.clear_session()
    assert layers.Dense(2).name == "dense" and layers.Dense(2).name == "dense_1"
    config.disable_interactive_logging()
    config.disable_traceback_filtering()
    config.disable_flash_attention()
    config.set_max_epochs(3)
    utils.clear_session(free_memory=False)
    assert layers.Dense(2).name == "dense"
    # As Keras: these live in Keras's global state, which clear_session replaces; max_epochs does not.
    assert utils.is_interactive_logging_enabled() and config.is_traceback_filtering_enabled()
    assert config.is_flash_attention_enabled() is None and config.max_epochs() == 3
    assert utils.enable_interactive_logging is config.enable_interactive_logging
    assert dlgpu.backend.clear_session is utils.clear_session


def test_flash_attention_flag(restore_config):
    assert config.is_flash_attention_enabled() is None
    config.disable_flash_attention()
    assert config.is_flash_attention_enabled() is False
    config.enable_flash_attention()
    assert config.is_flash_attention_enabled() is None


def _model():
    model = dlgpu.Sequential([layers.Dense(1, input_shape=(2,))])
    model.compile(optimizer="sgd", loss="mse")
    return model


class _Counter(dlgpu.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.train, self.test, self.predict, self.epochs = 0, 0, 0, 0

    def on_train_batch_end(self, batch, logs=None):
        self.train += 1

    def on_test_batch_end(self, batch, logs=None):
        self.test += 1

    def on_predict_batch_end(self, batch, logs=None):
        self.predict += 1

    def on_epoch_end(self, epoch, logs=None):
        self.epochs += 1


def test_max_epochs_and_max_steps_per_epoch_cap_fit_evaluate_predict(restore_config):
    x, y = np.ones((40, 2), np.float32), np.zeros((40, 1), np.float32)
    model = _model()
    assert config.max_epochs() is None and config.max_steps_per_epoch() is None
    config.set_max_epochs(2)
    config.set_max_steps_per_epoch(3)
    count = _Counter()
    with pytest.warns(UserWarning) as caught:
        history = model.fit(x, y, batch_size=4, epochs=5, verbose=0, validation_data=(x, y), callbacks=[count])
    assert {"Limiting epochs to 2", "Limiting steps_per_epoch to 3"} <= {str(w.message) for w in caught}
    assert len(history.epoch) == 2 and count.epochs == 2 and count.train == 6 and count.test == 6
    assert int(model.optimizer.iterations) == 6
    count = _Counter()
    with pytest.warns(UserWarning, match="Limiting steps_per_epoch to 3"):
        model.evaluate(x, y, batch_size=4, verbose=0, callbacks=[count])
    with pytest.warns(UserWarning, match="Limiting steps_per_epoch to 3"):
        assert model.predict(x, batch_size=4, verbose=0, callbacks=[count]).shape == (12, 1)
    assert count.test == 3 and count.predict == 3
    config.set_max_epochs(None)
    config.set_max_steps_per_epoch(None)
    assert len(model.fit(x, y, batch_size=20, epochs=3, verbose=0).epoch) == 3
    for bad in (0, -1, 2.5, True):
        with pytest.raises(ValueError, match="max_epochs"):
            config.set_max_epochs(bad)


def test_max_epochs_from_the_environment():
    code = ("import dlgpu; print(dlgpu.config.max_epochs(), dlgpu.config.max_steps_per_epoch())")
    env = {"KERAS_MAX_EPOCHS": "4", "KERAS_MAX_STEPS_PER_EPOCH": "7"}
    import os
    out = subprocess.run([sys.executable, "-c", code], env={**os.environ, **env}, capture_output=True, text=True,
                         check=True).stdout.split()
    assert out == ["4", "7"]
