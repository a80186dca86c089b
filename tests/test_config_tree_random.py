"""keras.config, keras.tree, keras.random.SeedGenerator, keras.name_scope and keras.KerasTensor."""

import collections

import numpy as np
import pytest

import dlgpu
import dlgpu as keras
from dlgpu import config, tree


@pytest.fixture
def restore_config():
    eps, interactive = config.epsilon(), config.is_interactive_logging_enabled()
    yield
    config.set_epsilon(eps)
    (config.enable_interactive_logging if interactive else config.disable_interactive_logging)()


# -- config ---------------------------------------------------------------------------------------------
def test_floatx_accepts_float32_and_refuses_the_others_by_name():
    keras.config.set_floatx("float32")
    keras.config.set_floatx(np.float32)
    assert keras.config.floatx() == "float32" == keras.backend.floatx()
    for other in ("float64", "float16", "bfloat16"):
        with pytest.raises(NotImplementedError, match=f"set_floatx.*{other}.*float32 only"):
            keras.config.set_floatx(other)
    with pytest.raises(ValueError, match="not a float type"):
        keras.config.set_floatx("int32")
    with pytest.raises(ValueError, match="Unknown `floatx`"):
        keras.config.set_floatx("nonsense")
    assert keras.config.floatx() == "float32"


def test_set_epsilon_changes_the_clipping_of_losses_and_metrics(restore_config):
    y_true, y_pred = np.ones((1, 1), np.float32), np.zeros((1, 1), np.float32)
    bce = keras.losses.BinaryCrossentropy()
    default = float(bce(y_true, y_pred).numpy())
    np.testing.assert_allclose(default, -np.log(1e-7), rtol=1e-3)
    keras.config.set_epsilon(1e-3)
    assert keras.config.epsilon() == 1e-3 == keras.backend.epsilon()
    np.testing.assert_allclose(float(bce(y_true, y_pred).numpy()), -np.log(1e-3), rtol=1e-3)
    np.testing.assert_allclose(keras.losses.mean_absolute_percentage_error(
        np.zeros((1, 1), np.float32), np.ones((1, 1), np.float32)).numpy(), [100 / 1e-3], rtol=1e-4)
    from dlgpu.metrics import confusion_metrics
    assert confusion_metrics.EPSILON == 1e-3
    for bad in (0, -1.0, 2.0, "1e-7", True):
        with pytest.raises(ValueError, match="set_epsilon"):
            keras.config.set_epsilon(bad)
    assert keras.config.epsilon() == 1e-3


def test_image_data_format_and_backend():
    keras.config.set_image_data_format("channels_last")
    assert keras.config.image_data_format() == "channels_last" == keras.backend.image_data_format()
    with pytest.raises(NotImplementedError, match="channels_last.*only"):
        keras.config.set_image_data_format("channels_first")
    with pytest.raises(ValueError, match="channels_first' or 'channels_last"):
        keras.config.set_image_data_format("nhwc")
    assert keras.config.backend() == "dlgpu" == keras.backend.backend()


def test_dtype_policy_defaults_to_float32_and_bfloat16_is_refused_with_the_reason():
    # the policies themselves are tested in tests/test_dtype_policies.py
    assert keras.config.dtype_policy().name == "float32"
    assert keras.config.dtype_policy().compute_dtype == "float32" == keras.config.dtype_policy().variable_dtype
    keras.config.set_dtype_policy("float32")
    keras.config.set_dtype_policy(keras.DTypePolicy("float32"))
    for name in ("bfloat16", "mixed_bfloat16"):
        with pytest.raises(NotImplementedError, match=f"{name}.*no bfloat16"):
            keras.config.set_dtype_policy(name)
    with pytest.raises(ValueError, match="Cannot convert 'float31'"):
        keras.DTypePolicy("float31")
    with pytest.raises(ValueError, match="Invalid `policy`"):
        keras.config.set_dtype_policy(3)
    assert keras.config.dtype_policy().name == "float32"
    assert keras.DTypePolicy.from_config(keras.DTypePolicy().get_config()) == keras.config.dtype_policy()


def test_flags_keras_scripts_set_are_accepted():
    keras.config.enable_unsafe_deserialization()
    assert config.is_unsafe_deserialization_enabled()
    keras.config.disable_traceback_filtering()
    assert not keras.config.is_traceback_filtering_enabled()
    keras.config.enable_traceback_filtering()
    assert keras.config.is_traceback_filtering_enabled()


def _fit_output(capsys):
    x = np.zeros((8, 2), np.float32)
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    capsys.readouterr()
    model.fit(x, x[:, :1], epochs=2, batch_size=4, verbose=1)
    return capsys.readouterr()


def test_disable_interactive_logging_prints_one_line_per_epoch(capsys, restore_config):
    keras.config.disable_interactive_logging()
    assert not keras.config.is_interactive_logging_enabled()
    out = _fit_output(capsys)
    lines = [line for line in out.out.splitlines() if line.startswith("Epoch ")]
    assert [line.split(" - ")[0] for line in lines] == ["Epoch 1/2", "Epoch 2/2"]
    assert "step" not in out.out + out.err  # no tqdm bar
    keras.config.enable_interactive_logging()
    pytest.importorskip("tqdm")
    out = _fit_output(capsys)
    assert "step" in out.out + out.err


# -- tree -----------------------------------------------------------------------------------------------
Point = collections.namedtuple("Point", ["x", "y"])


def test_tree_flatten_and_pack_follow_keras_order():
    structure = {"key3": "value3", "key1": "value1", "key2": [None, (4, Point(5, 6))]}
    assert tree.flatten(structure) == ["value1", None, 4, 5, 6, "value3"]
    assert tree.flatten(7) == [7] and tree.flatten([]) == []
    packed = tree.pack_sequence_as(structure, list(range(6)))
    assert list(packed) == ["key3", "key1", "key2"]  # the structure's key order is kept
    assert packed == {"key3": 5, "key1": 0, "key2": [1, (2, Point(3, 4))]}
    assert isinstance(packed["key2"][1][1], Point)
    ordered = collections.OrderedDict([("b", 1), ("a", 2)])
    assert tree.flatten(ordered) == [1, 2]
    with pytest.raises(ValueError, match="3 leaves but flat_sequence has 2"):
        tree.pack_sequence_as([1, [2, 3]], [1, 2])
    assert tree.flatten_with_path({"b": [1, 2], "a": 3}) == [(("a",), 3), (("b", 0), 1), (("b", 1), 2)]


def test_tree_map_structure_and_is_nested():
    assert tree.map_structure(lambda v: v * 2, {"a": [1, 2], "b": (3,)}) == {"a": [2, 4], "b": (6,)}
    assert tree.map_structure(lambda a, b: a + b, [1, (2, 3)], [10, (20, 30)]) == [11, (22, 33)]
    assert tree.map_structure(lambda p: p, Point(1, [2])) == Point(1, [2])
    with pytest.raises(ValueError, match="differ"):
        tree.map_structure(lambda a, b: a, [1, 2], [1, [2]])
    assert tree.is_nested([1]) and tree.is_nested({}) and tree.is_nested(Point(1, 2))
    assert not tree.is_nested(np.zeros(3)) and not tree.is_nested("ab") and not tree.is_nested(None)


def test_tree_assert_same_structure():
    tree.assert_same_structure({"a": [1, (2,)]}, {"a": [np.ones(2), ("x",)]})
    with pytest.raises(ValueError, match="list of length 1 vs tuple of length 1"):
        tree.assert_same_structure([1], (1,))
    with pytest.raises(ValueError, match=r"\['a'\].*keys"):
        tree.assert_same_structure({"a": {"x": 1}}, {"a": {"y": 1}})
    with pytest.raises(ValueError, match="a leaf"):
        tree.assert_same_structure([1, 2], [1, [2]])


def test_tree_traverse_top_down_and_bottom_up():
    visited = []
    tree.traverse(lambda node: visited.append(node), [1, (2, 3)])
    assert visited == [[1, (2, 3)], 1, (2, 3), 2, 3]
    # top down: a result replaces the node and its children are not visited
    assert tree.traverse(lambda n: "T" if isinstance(n, tuple) else None, [1, (2, 3)]) == [1, "T"]
    assert tree.traverse(lambda n: tree.MAP_TO_NONE if n == 1 else None, [1, 2]) == [None, 2]
    # bottom up: func sees each node rebuilt from its traversed children
    summed = tree.traverse(lambda n: sum(n) if isinstance(n, (list, tuple)) else n * 10, [1, (2, 3)],
                           top_down=False)
    assert summed == 60
    assert tree.lists_to_tuples([1, {"a": [2]}]) == (1, {"a": (2,)})


# -- SeedGenerator --------------------------------------------------------------------------------------
def test_seed_generator_advances_and_repeats_from_its_seed():
    gen = keras.random.SeedGenerator(42)
    np.testing.assert_array_equal(gen.next(), [0, 42])
    np.testing.assert_array_equal(gen.next(), [0, 43])
    assert gen.next().dtype == np.uint32
    a, b = keras.random.SeedGenerator(7), keras.random.SeedGenerator(7)
    first = keras.random.normal((4,), seed=a).numpy()
    second = keras.random.normal((4,), seed=a).numpy()
    assert not np.array_equal(first, second)  # a new draw each call
    np.testing.assert_array_equal(first, keras.random.normal((4,), seed=b).numpy())  # same sequence per seed
    np.testing.assert_array_equal(second, keras.random.normal((4,), seed=b).numpy())
    for fn in (lambda s: keras.random.uniform((3,), seed=s), lambda s: keras.random.truncated_normal((3,), seed=s),
               lambda s: keras.random.randint((3,), 0, 9, seed=s), lambda s: keras.random.shuffle(np.arange(5), seed=s)):
        np.testing.assert_array_equal(fn(keras.random.SeedGenerator(3)).numpy(),
                                      fn(keras.random.SeedGenerator(3)).numpy())
    assert keras.random.SeedGenerator.from_config(gen.get_config()).get_config() == {"seed": 42}


def test_seed_generator_errors_and_unseeded_reproducibility():
    with pytest.raises(ValueError, match="`seed` must be an integer"):
        keras.random.SeedGenerator("1")
    with pytest.raises(ValueError, match="seed=1.5"):
        keras.random.normal((2,), seed=1.5)
    keras.set_random_seed(5)
    s1 = keras.random.SeedGenerator().get_config()["seed"]
    keras.set_random_seed(5)
    assert keras.random.SeedGenerator().get_config()["seed"] == s1


def test_keras_snippet_custom_layer_with_seed_generator_runs_unchanged():
    class RandomNoise(keras.layers.Layer):
        def __init__(self, noise, **kwargs):
            super().__init__(**kwargs)
            self.noise = noise
            self.seed_generator = keras.random.SeedGenerator(1337)

        def call(self, x):
            return x + keras.random.normal(keras.ops.shape(x), stddev=self.noise, seed=self.seed_generator)

    layer = RandomNoise(0.5)
    x = np.zeros((2, 3), np.float32)
    first, second = layer(x).numpy(), layer(x).numpy()
    assert first.shape == (2, 3) and first.dtype == np.float32 and not np.array_equal(first, second)
    np.testing.assert_array_equal(first, RandomNoise(0.5)(x).numpy())


# -- name_scope, KerasTensor ----------------------------------------------------------------------------
def test_name_scope_prefixes_variable_paths():
    with keras.name_scope("block1") as scope:
        assert scope.name == "block1"
        dense = keras.layers.Dense(2, name="proj")
        with keras.name_scope("inner"):
            v = keras.Variable(np.ones(2, np.float32), name="v")
    outside = keras.Variable(np.ones(2, np.float32), name="w")
    dense.build((None, 3))  # built outside: as in Keras, the scope open at its first build counts
    assert [w.path for w in dense.weights] == ["proj/kernel", "proj/bias"]
    assert [w.name for w in dense.weights] == ["kernel", "bias"]
    assert v.path == "block1/inner/v" and v.name == "v" and outside.path == "w"
    late = keras.layers.Dense(2, name="late")
    with keras.name_scope("block2"):
        late.build((None, 3))
    assert late.kernel.path == "block2/late/kernel"
    with keras.name_scope("a"), keras.name_scope("a"):  # only a layer re-entering its own scope is deduplicated
        assert keras.Variable(1.0, name="x").path == "a/a/x"
    with keras.name_scope("a"), keras.name_scope("b", override_parent="top"):
        assert keras.Variable(1.0, name="x").path == "top/b/x"
    with pytest.raises(ValueError, match="non-empty string"):
        keras.name_scope("")


def test_scoped_model_saves_and_loads(tmp_path):
    with keras.name_scope("encoder"):
        model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    model.compile(optimizer="adam", loss="mse")
    model.fit(np.ones((4, 3), np.float32), np.ones((4, 2), np.float32), epochs=1, verbose=0)
    model.save(tmp_path / "m.dlgpu")
    loaded = keras.models.load_model(tmp_path / "m.dlgpu")
    for a, b in zip(model.get_weights(), loaded.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_keras_tensor_is_exported():
    x = keras.Input((4,))
    assert isinstance(x, keras.KerasTensor) and x.shape == (None, 4)
    assert dlgpu.KerasTensor is dlgpu.layers.base.KerasTensor
