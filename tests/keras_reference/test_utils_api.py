"""keras.utils / keras.callbacks / keras.regularizers / keras.optimizers names compared with real Keras: the
values, configs and bookkeeping both compute for the same input."""

import numpy as np
import pytest

import dlgpu


def test_progbar_bookkeeping_matches_keras(keras):
    updates = [(1, [("loss", 2.0), ("m", 1.0)], None), (2, [("loss", 1.0), ("m", 3.0)], None),
               (5, [("loss", 0.5), ("m", 2.0)], None), (7, [("loss", 0.25), ("m", 1.0)], True)]
    for kwargs in ({}, {"stateful_metrics": ["m"]}, {"stateless_metrics": ["loss"]}):
        ours, theirs = dlgpu.utils.Progbar(None, verbose=0, **kwargs), keras.utils.Progbar(None, verbose=0, **kwargs)
        for current, values, finalize in updates:
            ours.update(current, values, finalize=finalize)
            theirs.update(current, values, finalize=finalize)
            assert ours._values == theirs._values and ours._values_order == theirs._values_order, kwargs


@pytest.mark.parametrize("fname, extract", [("t.csv", False), (None, False), ("data.zip", True), (None, True)])
def test_get_file_puts_files_where_keras_does(keras, tmp_path, fname, extract):
    import os
    import zipfile
    archive = tmp_path / "data.zip"
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("inner/a.txt", "A")
    origin = archive.as_uri()
    for name in ("ours", "theirs"):  # Keras falls back to /tmp/.keras when cache_dir does not exist
        (tmp_path / name).mkdir()
    paths = [module.utils.get_file(fname, origin, extract=extract, cache_dir=tmp_path / name)
             for module, name in ((dlgpu, "ours"), (keras, "theirs"))]
    assert os.path.relpath(paths[0], tmp_path / "ours") == os.path.relpath(paths[1], tmp_path / "theirs")
    if extract:
        assert os.listdir(paths[0]) == os.listdir(paths[1]) == ["inner"]


def test_standardize_dtype_and_config_match_keras(keras):
    for given in (None, int, float, bool, str, complex, "int", np.float32, np.dtype("int64"), "uint16",
                  "bfloat16", "string"):
        assert dlgpu.utils.standardize_dtype(given) == keras.utils.standardize_dtype(given), given
    ours, theirs = dlgpu.utils.Config(b=1, a=2), keras.utils.Config(b=1, a=2)
    for c in (ours, theirs):
        c.z = 3
        c.freeze()
    assert list(ours) == list(theirs) and ours.to_json() == theirs.to_json() and repr(ours) == repr(theirs)


@pytest.mark.parametrize("mode", ["rows", "columns"])
@pytest.mark.parametrize("shape", [(4, 3), (2, 7), (5, 5)])
def test_orthogonal_regularizer_matches_keras(keras, mode, shape):
    import torch
    w = np.random.RandomState(sum(shape)).randn(*shape).astype(np.float32)
    w[0] = 0.0  # a zero row: normalize must not divide by zero
    ours = dlgpu.regularizers.OrthogonalRegularizer(factor=0.3, mode=mode)
    theirs = keras.regularizers.OrthogonalRegularizer(factor=0.3, mode=mode)
    assert ours.get_config() == theirs.get_config()
    assert dlgpu.regularizers.serialize(ours) == keras.regularizers.serialize(theirs)
    variable = dlgpu.Variable(w)
    with dlgpu.GradientTape() as tape:
        penalty = ours(variable)
    grad = tape.gradient(penalty, variable).numpy()
    reference = torch.tensor(w, requires_grad=True)
    expected = theirs(reference)
    expected.backward()
    np.testing.assert_allclose(penalty.numpy(), expected.detach().numpy(), rtol=1e-5, atol=1e-7)
    # Keras's torch gradient through the zero row's norm is nan; ours is finite (0) there, equal elsewhere.
    finite = np.isfinite(reference.grad.numpy())
    assert np.isfinite(grad).all() and finite.sum() >= grad.size - max(shape)
    np.testing.assert_allclose(grad[finite], reference.grad.numpy()[finite], rtol=1e-4, atol=1e-6)
    again = dlgpu.regularizers.get(keras.regularizers.serialize(theirs))
    assert isinstance(again, dlgpu.regularizers.OrthogonalRegularizer) and again.get_config() == ours.get_config()


@pytest.mark.parametrize("name, kwargs", [("SGD", dict(learning_rate=0.1, momentum=0.9)),
                                          ("Adam", dict(learning_rate=0.01))])
@pytest.mark.parametrize("ema", [dict(ema_momentum=0.9), dict(ema_momentum=0.5, ema_overwrite_frequency=2)])
def test_use_ema_matches_keras(keras, name, kwargs, ema):
    import torch
    rs = np.random.RandomState(0)
    w0 = rs.randn(3, 2).astype(np.float32)
    grads = [rs.randn(3, 2).astype(np.float32) for _ in range(5)]
    theirs = getattr(keras.optimizers, name)(**kwargs, use_ema=True, **ema)
    ours = getattr(dlgpu.optimizers, name)(**kwargs, use_ema=True, **ema)
    kv, dv = keras.Variable(w0), dlgpu.Variable(w0.copy())
    for g in grads:
        theirs.apply([torch.tensor(g)], [kv])
        ours.apply([g], [dv])
        np.testing.assert_allclose(dv.numpy(), kv.numpy(), rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(ours._model_variables_moving_average[0].numpy(),
                                   theirs._model_variables_moving_average[0].numpy(), rtol=1e-5, atol=1e-6)
    assert [v.name.split("_")[-1] for v in ours.variables] == [v.name.split("_")[-1] for v in theirs.variables]
    theirs.finalize_variable_values([kv])
    ours.finalize_variable_values([dv])
    np.testing.assert_allclose(dv.numpy(), kv.numpy(), rtol=1e-5, atol=1e-6)
    keys = ("use_ema", "ema_momentum", "ema_overwrite_frequency")
    assert {k: ours.get_config()[k] for k in keys} == {k: theirs.get_config()[k] for k in keys}


def test_tree_up_to_shapes_and_paths_match_keras(keras):
    import collections
    nested = {"a": [1], "b": [2]}, {"a": 3, "b": [(4,)]}
    for shallow, func, structures in [([None, None], len, ([[1, 1], [2, 2]],)),
                                      ([None, [None, None]], str, ([[1, 1], [2, 2]],)),
                                      ({"a": None, "b": [None]}, lambda x, y: (x, y), nested)]:
        assert dlgpu.tree.map_structure_up_to(shallow, func, *structures) == \
            keras.tree.map_structure_up_to(shallow, func, *structures)
    shapes = {"x": (None, 3), "y": [(2, 4, 5), [1]], "z": (), "w": 7}
    assert dlgpu.tree.map_shape_structure(str, shapes) == keras.tree.map_shape_structure(str, shapes)
    first, second = collections.namedtuple("First", "x y"), collections.namedtuple("Second", "x y")
    for a, b in [([0, 1], (2, 3)), (first(0, 1), second(2, 3)), ([0, 1], [0]), ({"a": 1}, {"b": 1}),
                 ([1, [2]], [1, 2])]:
        outcomes = []
        for tree in (dlgpu.tree, keras.tree):
            try:
                tree.assert_same_paths(a, b)
                outcomes.append(None)
            except ValueError as error:
                outcomes.append(str(error))
        assert outcomes[0] == outcomes[1], (a, b)
    for shallow, structure in [([None, None], [1, 2, 3]), ([None, [None]], [1, 2])]:
        for tree in (dlgpu.tree, keras.tree):
            with pytest.raises(ValueError):
                tree.map_structure_up_to(shallow, str, structure)
