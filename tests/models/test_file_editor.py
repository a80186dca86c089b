"""dlgpu.saving.KerasFileEditor on files dlgpu writes: inspect, edit, re-save, and the refusals
(tests/keras_reference/test_file_editor.py compares it with Keras's editor)."""

import numpy as np
import pytest

import dlgpu as keras
from dlgpu import layers


def _recurrent_model():
    keras.utils.set_random_seed(0)
    return keras.Sequential([keras.Input((5, 3)), layers.LSTM(4, return_sequences=True), layers.GRU(2),
                             layers.Dense(1)])


def test_a_resave_keeps_every_weight_including_rnn_cells(tmp_path, capsys):
    model = _recurrent_model()
    path = str(tmp_path / "rnn.keras")
    model.save(path)
    editor = keras.saving.KerasFileEditor(path)
    assert editor.config["class_name"] == "Sequential" and editor.metadata["keras_version"]
    editor.summary()
    printed = capsys.readouterr().out
    assert "cell" in printed and "shape=(3, 16)" in printed  # the LSTM kernel, under its cell
    assert editor.compare(model) == {"status": "success", "error_count": 0, "match_count": len(model.weights)}
    out = str(tmp_path / "again.weights.h5")
    editor.save(out)
    fresh = _recurrent_model()
    for v in fresh.weights:
        v.assign(np.zeros(v.shape, np.float32))
    fresh.load_weights(out)
    for a, b in zip(fresh.get_weights(), model.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_weight_edits_and_refusals(tmp_path):
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((4,)), layers.Dense(3), layers.Dense(2, use_bias=False)])
    path = str(tmp_path / "m.weights.h5")
    model.save_weights(path)
    editor = keras.saving.KerasFileEditor(path)
    editor.add_weights("dense_1", {"1": np.ones(2, np.float32)})  # the bias a use_bias=True layer wants
    with_bias = keras.Sequential([keras.Input((4,)), layers.Dense(3), layers.Dense(2)])
    assert editor.compare(with_bias)["status"] == "success"
    editor.delete_weight("layers/dense_1", "1")
    assert editor.compare(model)["status"] == "success"
    report = editor.compare(with_bias)
    assert report["status"] == "error" and report["error_count"] == 1

    with pytest.raises(ValueError, match="Weight 7 not found in object dense.*Weights found: \\['0', '1'\\]"):
        editor.delete_weight("dense", "7")
    with pytest.raises(ValueError, match="Path 'layers/nothing' not found"):
        editor.delete_object("layers/nothing")
    with pytest.raises(ValueError, match="does not appear in the model"):
        editor.rename_object("nothing", "x")
    editor.add_object("layers/dense_1/dense", {"0": np.zeros(1, np.float32)})  # a sub-object named dense too
    with pytest.raises(ValueError, match="occurs more than once"):
        editor.delete_object("dense")
    with pytest.raises(ValueError, match="leaf name"):
        editor.rename_object("layers/dense", "a/b")
    with pytest.raises(ValueError, match="already there"):
        editor.rename_object("layers/dense", "dense_1")
    with pytest.raises(ValueError, match="should be a dict"):
        editor.add_object("layers/x", [np.zeros(2)])
    with pytest.raises(ValueError, match="expected a `.weights.h5` extension"):
        editor.save(str(tmp_path / "m.h5"))
    with pytest.raises(ValueError, match="expected a `.keras` `.weights.h5` extension"):
        keras.saving.KerasFileEditor(str(tmp_path / "m.h5"))
