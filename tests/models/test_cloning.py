"""models.clone_model: same architecture, new weights, nothing shared with the original."""

import numpy as np
import pytest

import dlgpu
from dlgpu import layers


def test_a_clone_has_the_architecture_and_new_weights():
    dlgpu.set_random_seed(0)
    model = dlgpu.Sequential([dlgpu.Input((5,)), layers.Dense(4, activation="relu"), layers.Dropout(0.1),
                              layers.Dense(2, activation="softmax")])
    model.compile("adam", "sparse_categorical_crossentropy")
    clone = dlgpu.models.clone_model(model)
    assert type(clone) is dlgpu.Sequential and clone.built and not clone.compiled
    assert [w.shape for w in clone.get_weights()] == [w.shape for w in model.get_weights()]
    assert not np.array_equal(clone.get_weights()[0], model.get_weights()[0])  # re-initialised
    assert clone.layers[0] is not model.layers[0]
    x = np.random.default_rng(1).standard_normal((6, 5)).astype(np.float32)
    clone.set_weights(model.get_weights())
    np.testing.assert_array_equal(clone.predict(x, verbose=0), model.predict(x, verbose=0))
    clone.compile("sgd", "sparse_categorical_crossentropy")
    before = [w.copy() for w in model.get_weights()]
    clone.fit(x, np.arange(6) % 2, epochs=1, verbose=0)
    for a, b in zip(model.get_weights(), before):  # training the clone leaves the original alone
        np.testing.assert_array_equal(a, b)


def test_functional_and_unbuilt_models_clone():
    a, b = dlgpu.Input((4,), name="a"), dlgpu.Input((3,), name="b")
    model = dlgpu.Model([a, b], [layers.Dense(2)(layers.Concatenate()([a, b])), layers.Dense(1)(b)])
    clone = dlgpu.models.clone_model(model)
    assert clone.input_shape == model.input_shape and clone.output_shape == model.output_shape
    assert not dlgpu.models.clone_model(dlgpu.Sequential([layers.Dense(3)])).built


def test_graph_rewriting_hooks_are_refused():
    model = dlgpu.Sequential([dlgpu.Input((5,)), layers.Dense(2)])
    with pytest.raises(NotImplementedError, match="clone_function"):
        dlgpu.models.clone_model(model, clone_function=lambda layer: layer)
