"""keras.saving.KerasFileEditor: the same edits of the same files with Keras's editor and dlgpu's give the
same weights, and the edited files load into the edited architecture in both frameworks."""

import numpy as np

import dlgpu


def _flat(tree, prefix=""):
    out = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            out.update(_flat(value, f"{prefix}{key}/"))
        else:
            out[prefix + key] = np.asarray(value)
    return out


def _model(k, units=(3, 2)):
    return k.Sequential([k.Input((4,)), *(k.layers.Dense(u, name=f"d{i}") for i, u in enumerate(units))])


def test_edits_match_keras_and_the_result_loads(keras, tmp_path):
    source = _model(keras)
    source.set_weights([np.random.default_rng(i).normal(size=w.shape).astype(np.float32)
                        for i, w in enumerate(source.get_weights())])
    original = str(tmp_path / "original.weights.h5")
    source.save_weights(original)
    archive = str(tmp_path / "model.keras")
    source.save(archive)

    new_kernel = np.full((3, 5), 0.5, np.float32)
    results = {}
    for name, k in (("keras", keras), ("dlgpu", dlgpu)):
        editor = k.saving.KerasFileEditor(original)
        assert _flat(k.saving.KerasFileEditor(archive).weights_dict).keys() == _flat(editor.weights_dict).keys()
        editor.summary()
        report = editor.compare(_model(k))
        assert report["status"] == "success" and report["error_count"] == 0, name
        # 4 weights match; Keras 3.15 says 6 (its recursive _compare adds the counts it was given back in)
        assert report["match_count"] == (4 if k is dlgpu else 6), name
        editor.delete_object("layers/dense_1")  # Keras names the groups after the classes: dense, dense_1
        editor.add_object("layers/widened", {"0": new_kernel, "1": np.zeros(5, np.float32)})
        editor.rename_object("widened", "dense_1")
        report = editor.compare(_model(k, (3, 5)))
        assert report["status"] == "success", name
        assert editor.compare(_model(k))["error_count"] == 2, name  # the two reshaped weights
        out = str(tmp_path / f"{name}.weights.h5")
        editor.save(out)
        results[name] = out

    for writer, path in results.items():
        for reader_name, k in (("keras", keras), ("dlgpu", dlgpu)):
            model = _model(k, (3, 5))
            model.load_weights(path)
            weights = model.get_weights()
            np.testing.assert_array_equal(weights[0], source.get_weights()[0], err_msg=f"{writer} -> {reader_name}")
            np.testing.assert_array_equal(weights[2], new_kernel, err_msg=f"{writer} -> {reader_name}")
    ours = _flat(dlgpu.saving.KerasFileEditor(results["dlgpu"]).weights_dict)
    theirs = _flat(keras.saving.KerasFileEditor(results["keras"]).weights_dict)
    assert ours.keys() == theirs.keys()
    for key in ours:
        np.testing.assert_array_equal(ours[key], theirs[key], err_msg=key)
