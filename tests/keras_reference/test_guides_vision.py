"""Behaviours the keras.io vision examples rely on, side by side with Keras: predict's nested output
structure, Constant's array config, the rank of targets a wrapped loss function sees, and load_img."""

import json

import numpy as np
import pytest

import dlgpu


def _structure(tree):
    if isinstance(tree, dict):
        return {k: _structure(v) for k, v in tree.items()}
    if isinstance(tree, (list, tuple)):
        return [type(tree).__name__] + [_structure(v) for v in tree]
    return tuple(np.shape(tree))


def test_predict_nested_structure_as_keras(keras):
    x = np.random.default_rng(0).random((5, 3)).astype("float32")
    results = []
    for lib in (keras, dlgpu):
        inputs = lib.Input((3,))
        a, b = lib.layers.Dense(2)(inputs), lib.layers.Dense(4)(inputs)
        model = lib.Model(inputs, {"x": a, "y": [a, b], "z": [[a], [b, a]]})
        results.append(_structure(model.predict(x, batch_size=2, verbose=0)))
    assert results[0] == results[1]


def test_constant_array_config_as_keras(keras):
    value = np.eye(2).flatten()
    ours = dlgpu.initializers.Constant(value).get_config()
    theirs = keras.initializers.Constant(value).get_config()
    assert json.loads(json.dumps(ours)) == json.loads(json.dumps(theirs))
    back = keras.initializers.Constant.from_config(ours)
    np.testing.assert_array_equal(np.asarray(back.value), value)


def test_wrapped_function_sees_targets_at_prediction_rank_as_keras(keras):
    shapes = {}
    for name, lib in (("keras", keras), ("dlgpu", dlgpu)):
        def fn(y_true, y_pred, name=name, lib=lib):
            shapes[name] = (tuple(y_true.shape), tuple(y_pred.shape))
            return lib.ops.mean(lib.ops.square(y_true - y_pred), axis=-1)
        wrapper = lib.losses.LossFunctionWrapper if lib is dlgpu else \
            __import__("keras.src.losses.losses", fromlist=["LossFunctionWrapper"]).LossFunctionWrapper
        value = wrapper(fn)(np.array([1.0, 0.0, 1.0], "float32"),
                                                   lib.ops.convert_to_tensor(np.full((3, 1), 0.25, "float32")))
        shapes[name + "_value"] = float(lib.ops.convert_to_numpy(value))
    assert shapes["keras"] == shapes["dlgpu"] == ((3, 1), (3, 1))
    assert shapes["keras_value"] == pytest.approx(shapes["dlgpu_value"])


def test_load_img_as_keras(keras, tmp_path):
    image = pytest.importorskip("PIL.Image")
    pixels = np.random.default_rng(1).integers(0, 256, (9, 13, 3)).astype("uint8")
    image.fromarray(pixels).save(tmp_path / "x.png")
    for kwargs in ({}, {"target_size": (4, 5)}, {"target_size": (4, 5), "color_mode": "grayscale"},
                   {"target_size": (6, 6), "interpolation": "bilinear"}, {"keep_aspect_ratio": True, "target_size": (4, 4)}):
        ours = np.asarray(dlgpu.utils.load_img(str(tmp_path / "x.png"), **kwargs))
        theirs = np.asarray(keras.utils.load_img(str(tmp_path / "x.png"), **kwargs))
        np.testing.assert_array_equal(ours, theirs, err_msg=str(kwargs))
