"""dlgpu.data.Dataset against tf.data's documented behaviour.  TensorFlow is not installed: the expected
values are the ones the tf.data.Dataset API documentation prints for the same calls (its docstring
examples), written here by hand; where dlgpu differs on purpose (strings stay str, not bytes) the test
says so."""

import itertools

import numpy as np
import pytest

import dlgpu
from dlgpu import data as tf_data
from dlgpu.data import Dataset, TensorSpec


def _list(ds):
    return list(ds.as_numpy_iterator())


def _assert_elements(ds, expected):
    got = _list(ds)
    assert len(got) == len(expected), (got, expected)
    for g, e in zip(got, expected):
        _assert_same(g, e)


def _assert_same(got, expected):
    if isinstance(expected, dict):
        assert isinstance(got, dict) and list(got) == list(expected)
        for k in expected:
            _assert_same(got[k], expected[k])
    elif isinstance(expected, tuple):
        assert type(got) is tuple and len(got) == len(expected), (got, expected)
        for g, e in zip(got, expected):
            _assert_same(g, e)
    else:
        assert isinstance(got, (np.ndarray, np.generic)), type(got)
        np.testing.assert_array_equal(got, expected)


# -- sources ---------------------------------------------------------------------------------------------

def test_from_tensor_slices_structures_as_documented():
    _assert_elements(Dataset.from_tensor_slices([1, 2, 3]), [1, 2, 3])
    # a list is one tensor in tf.data: its rows are the elements
    _assert_elements(Dataset.from_tensor_slices([[1, 2], [3, 4]]), [np.array([1, 2]), np.array([3, 4])])
    _assert_elements(Dataset.from_tensor_slices(([1, 2], [3, 4], [5, 6])), [(1, 3, 5), (2, 4, 6)])
    _assert_elements(Dataset.from_tensor_slices({"a": [1, 2], "b": [3, 4]}), [{"a": 1, "b": 3}, {"a": 2, "b": 4}])
    _assert_elements(Dataset.from_tensor_slices({"a": ([1, 2], [3, 4]), "b": [5, 6]}),
                     [{"a": (1, 3), "b": 5}, {"a": (2, 4), "b": 6}])
    features = np.array([[[1, 3], [2, 3]], [[2, 1], [1, 2]], [[3, 3], [3, 2]]], np.int32)
    labels = np.array([["A", "A"], ["B", "B"], ["A", "B"]]).reshape(3, 2, 1)
    first = _list(Dataset.from_tensor_slices((features, labels)))[0]
    np.testing.assert_array_equal(first[0], [[1, 3], [2, 3]])
    assert first[1].tolist() == [["A"], ["A"]]  # tf.data gives bytes (b'A'); dlgpu keeps numpy str


def test_python_values_get_tensorflow_dtypes_and_arrays_keep_theirs():
    ds = Dataset.from_tensor_slices(([1.5, 2.5], [1, 2], [True, False], ["a", "bc"]))
    f, i, b, s = next(iter(ds))
    assert (f.dtype, i.dtype, b.dtype, s.dtype.kind) == (np.float32, np.int32, np.bool_, "U")
    x64 = np.zeros((3, 2))
    assert next(iter(Dataset.from_tensor_slices(x64))).dtype == np.float64  # as tf.convert_to_tensor
    assert Dataset.from_tensor_slices(x64).element_spec == TensorSpec((2,), "float64")
    assert isinstance(next(iter(Dataset.from_tensor_slices(dlgpu.ops.ones((2, 3))))), np.ndarray)


def test_namedtuple_elements_keep_their_type():
    import collections
    Pair = collections.namedtuple("Pair", "x y")
    element = next(iter(Dataset.from_tensor_slices(Pair(np.arange(3), np.arange(3) * 2)).skip(1)))
    assert type(element) is Pair and element.y == 2


def test_from_tensors_and_range():
    _assert_elements(Dataset.from_tensors([1, 2, 3]), [np.array([1, 2, 3])])
    (element,) = _list(Dataset.from_tensors(([1, 2, 3], "A")))
    np.testing.assert_array_equal(element[0], [1, 2, 3])
    assert element[1] == "A"
    _assert_elements(Dataset.range(5), [0, 1, 2, 3, 4])
    _assert_elements(Dataset.range(2, 5), [2, 3, 4])
    _assert_elements(Dataset.range(1, 5, 2), [1, 3])
    _assert_elements(Dataset.range(1, 5, -2), [])
    _assert_elements(Dataset.range(5, 1), [])
    _assert_elements(Dataset.range(5, 1, -2), [5, 3])
    assert _list(Dataset.range(2, 5, output_type="int32"))[0].dtype == np.int32
    out = _list(Dataset.range(1, 5, 2, output_type="float32"))
    assert out == [1.0, 3.0] and out[0].dtype == np.float32
    assert _list(Dataset.range(3))[0].dtype == np.int64
    assert Dataset.range(3).element_spec == TensorSpec((), "int64")


def test_from_generator_with_output_signature():
    def gen():
        for i in itertools.count(1):
            yield (i, [1] * i)
    ds = Dataset.from_generator(gen, output_signature=(TensorSpec(shape=(), dtype="int32"),
                                                       TensorSpec(shape=(None,), dtype="int32")))
    _assert_elements(ds.take(3), [(1, np.array([1])), (2, np.array([1, 1])), (3, np.array([1, 1, 1]))])
    first = _list(ds.take(1))[0]
    assert first[0].dtype == np.int32 and first[1].dtype == np.int32
    assert ds.cardinality() == tf_data.UNKNOWN_CARDINALITY
    assert ds.element_spec == (TensorSpec((), "int32"), TensorSpec((None,), "int32"))


def test_from_generator_is_called_again_for_every_iteration_with_args():
    calls = []

    def gen(stop):
        calls.append(stop)
        yield from range(int(stop))
    ds = Dataset.from_generator(gen, output_signature=TensorSpec((), "int64"), args=(3,))
    assert _list(ds) == [0, 1, 2] and _list(ds) == [0, 1, 2] and len(calls) == 2


def test_from_generator_checks_every_element():
    def gen(values):
        return lambda: iter(values)
    spec = (TensorSpec((2,), "float32"), TensorSpec((), "string"))
    with pytest.raises(TypeError, match="did not match the expected structure"):
        _list(Dataset.from_generator(gen([np.zeros(2)]), output_signature=spec))
    with pytest.raises(ValueError, match=r"shape \(3,\).*\[0\].*shape \(2,\)"):
        _list(Dataset.from_generator(gen([(np.zeros(3), "a")]), output_signature=spec))
    with pytest.raises(TypeError, match="type string"):
        _list(Dataset.from_generator(gen([(np.zeros(2), 5)]), output_signature=spec))
    with pytest.raises(TypeError, match="cannot be converted to float32"):
        _list(Dataset.from_generator(gen([(["x", "y"], "a")]), output_signature=spec))
    # values are converted to the declared dtype, as tf.data converts them
    (x, s), = _list(Dataset.from_generator(gen([(np.zeros(2, np.float64), "a")]), output_signature=spec))
    assert x.dtype == np.float32 and s == "a"
    with pytest.raises(TypeError, match="output_signature"):
        Dataset.from_generator(gen([1]))
    with pytest.raises(TypeError, match="TensorSpec"):
        Dataset.from_generator(gen([1]), output_signature=("int32",))
    with pytest.raises(TypeError, match="generator"):
        Dataset.from_generator(5, output_signature=TensorSpec(()))


# -- batching --------------------------------------------------------------------------------------------

def test_batch_and_drop_remainder():
    _assert_elements(Dataset.range(8).batch(3), [[0, 1, 2], [3, 4, 5], [6, 7]])
    _assert_elements(Dataset.range(8).batch(3, drop_remainder=True), [[0, 1, 2], [3, 4, 5]])
    assert Dataset.range(8).batch(3).cardinality() == 3
    assert Dataset.range(8).batch(3, drop_remainder=True).cardinality() == 2
    assert Dataset.range(8).batch(3).element_spec == TensorSpec((None,), "int64")
    assert Dataset.range(8).batch(3, True).element_spec == TensorSpec((3,), "int64")


@pytest.mark.parametrize("through_map", [False, True])
def test_batch_of_structures_fast_and_general_paths_agree(through_map):
    x = np.arange(20, dtype=np.float32).reshape(10, 2)
    ds = Dataset.from_tensor_slices(({"a": x, "b": (np.arange(10), np.array(list("abcdefghij")))}, x[:, 0] > 4))
    if through_map:  # a map ends the index plan: batches are stacked element by element
        ds = ds.map(lambda features, label: (features, label))
    batches = _list(ds.repeat(2).batch(4))
    assert len(batches) == 5
    features, label = batches[2]  # samples 8, 9, 0, 1 (the batch crosses the repetition)
    np.testing.assert_array_equal(features["a"], x[[8, 9, 0, 1]])
    np.testing.assert_array_equal(features["b"][0], [8, 9, 0, 1])
    assert features["b"][1].tolist() == ["i", "j", "a", "b"]
    np.testing.assert_array_equal(label, [True, True, False, False])
    assert features["a"].dtype == np.float32


def test_unbatch_as_documented():
    elements = [[1, 2, 3], [1, 2], [1, 2, 3, 4]]
    ds = Dataset.from_generator(lambda: elements, "int64").unbatch()
    assert _list(ds) == [1, 2, 3, 1, 2, 1, 2, 3, 4]
    pairs = Dataset.from_tensor_slices((np.arange(6), np.arange(6) * 10)).batch(4).unbatch()
    _assert_elements(pairs, [(i, i * 10) for i in range(6)])
    assert pairs.cardinality() == tf_data.UNKNOWN_CARDINALITY


def test_padded_batch_as_documented():
    A = Dataset.range(1, 5, output_type="int32").map(lambda x: np.full([x], x))
    _assert_elements(A.padded_batch(2), [[[1, 0], [2, 2]], [[3, 3, 3, 0], [4, 4, 4, 4]]])
    _assert_elements(A.padded_batch(2, padded_shapes=5),
                     [[[1, 0, 0, 0, 0], [2, 2, 0, 0, 0]], [[3, 3, 3, 0, 0], [4, 4, 4, 4, 0]]])
    _assert_elements(A.padded_batch(2, padded_shapes=5, padding_values=-1),
                     [[[1, -1, -1, -1, -1], [2, 2, -1, -1, -1]], [[3, 3, 3, -1, -1], [4, 4, 4, 4, -1]]])
    assert _list(A.padded_batch(2))[0].dtype == np.int32
    elements = [([1, 2, 3], [10]), ([4, 5], [11, 12])]
    ds = Dataset.from_generator(lambda: iter(elements), ("int32", "int32"))
    ds = ds.padded_batch(2, padded_shapes=([4], [None]), padding_values=(-1, 100))
    _assert_elements(ds, [([[1, 2, 3, -1], [4, 5, -1, -1]], [[10, 100], [11, 12]])])
    E = Dataset.zip((A, A)).padded_batch(2, padding_values=-1)
    _assert_elements(E, [([[1, -1], [2, 2]], [[1, -1], [2, 2]]),
                         ([[3, 3, 3, -1], [4, 4, 4, 4]], [[3, 3, 3, -1], [4, 4, 4, 4]])])
    assert A.padded_batch(2, padded_shapes=5, drop_remainder=True).element_spec == TensorSpec((2, 5), "int32")


def test_padded_batch_of_2d_strings_and_errors():
    words = Dataset.from_generator(lambda: iter([["a"], ["bb", "c"]]), output_signature=TensorSpec((None,), "string"))
    (batch,) = _list(words.padded_batch(2, padding_values="<pad>"))
    assert batch.tolist() == [["a", "<pad>"], ["bb", "c"]]
    grids = Dataset.from_generator(lambda: iter([np.ones((1, 2)), np.ones((3, 1))]), "float32")
    (batch,) = _list(grids.padded_batch(2, padded_shapes=(None, 4)))
    assert batch.shape == (2, 3, 4) and batch.sum() == 5
    A = Dataset.range(1, 5).map(lambda x: np.full([x], x))
    with pytest.raises(ValueError, match=r"padded_batch.*shape \(3,\).*smaller size"):
        _list(A.padded_batch(2, padded_shapes=[2]))
    with pytest.raises(ValueError, match="padded_batch.*rank"):
        _list(A.padded_batch(2, padded_shapes=[2, 2]))
    with pytest.raises(ValueError, match="padded_batch.*structure"):
        _list(Dataset.zip((A, A)).padded_batch(2, padded_shapes=[5]))


# -- element-wise transformations -----------------------------------------------------------------------

def test_map_calling_convention_and_outputs():
    _assert_elements(Dataset.range(1, 6).map(lambda x: x * 2), [2, 4, 6, 8, 10])
    elements = [(1, "foo"), (2, "bar"), (3, "baz")]
    ds = Dataset.from_generator(lambda: elements, ("int32", "string"))
    assert _list(ds.map(lambda x_int, y_str: x_int)) == [1, 2, 3]  # a tuple is spread over the arguments
    dicts = Dataset.from_tensor_slices({"a": [1, 2], "b": ["foo", "bar"]})
    assert _list(dicts.map(lambda d: d["b"])) == ["foo", "bar"]  # a dict is one argument
    listed = _list(Dataset.range(2).map(lambda x: [x, 1.5], num_parallel_calls=tf_data.AUTOTUNE))
    assert type(listed[0]) is tuple and listed[0][1].dtype == np.float32  # a returned list is a tuple, as tf.data


def test_map_returning_tensors_keeps_them_until_batch_stacks_them_on_the_host():
    ds = Dataset.from_tensor_slices(np.arange(6, dtype=np.float32)).map(lambda x: dlgpu.ops.multiply(x, 2.0))
    assert isinstance(next(iter(ds)), dlgpu.Tensor)
    assert isinstance(next(ds.as_numpy_iterator()), np.ndarray)
    batch = next(iter(ds.batch(4)))
    assert isinstance(batch, np.ndarray)
    np.testing.assert_array_equal(batch, [0, 2, 4, 6])


def test_filter_take_skip_repeat_shard():
    _assert_elements(Dataset.from_tensor_slices([1, 2, 3]).filter(lambda x: x < 3), [1, 2])
    assert _list(Dataset.range(10).take(3)) == [0, 1, 2]
    assert _list(Dataset.range(10).take(-1)) == list(range(10))
    assert _list(Dataset.range(10).skip(7)) == [7, 8, 9]
    assert _list(Dataset.range(10).skip(-1)) == []
    _assert_elements(Dataset.from_tensor_slices([1, 2, 3]).repeat(3), [1, 2, 3] * 3)
    assert _list(Dataset.range(5).repeat().take(7)) == [0, 1, 2, 3, 4, 0, 1]
    assert _list(Dataset.range(0).repeat()) == []  # nothing repeated forever is nothing
    assert _list(Dataset.range(10).shard(3, 1)) == [1, 4, 7]
    # the index plan (from_tensor_slices) and the general path (range) agree
    sliced = Dataset.from_tensor_slices(np.arange(10))
    for make in (lambda d: d.skip(3).take(4), lambda d: d.repeat(2).skip(8).take(5), lambda d: d.take(0),
                 lambda d: d.repeat(3).batch(4).unbatch()):
        assert _list(make(sliced)) == _list(make(Dataset.range(10)))
    with pytest.raises(TypeError, match="filter.*scalar boolean"):
        _list(Dataset.range(3).filter(lambda x: x * 2))


def test_zip_concatenate_enumerate_reduce():
    a, b = Dataset.range(1, 4), Dataset.range(4, 7)
    _assert_elements(Dataset.zip(a, b), [(1, 4), (2, 5), (3, 6)])
    _assert_elements(Dataset.zip((b, a)), [(4, 1), (5, 2), (6, 3)])
    c = Dataset.range(7, 13).batch(2)
    _assert_elements(Dataset.zip(a, b, c), [(1, 4, [7, 8]), (2, 5, [9, 10]), (3, 6, [11, 12])])
    _assert_elements(Dataset.zip(a, Dataset.range(13, 15)), [(1, 13), (2, 14)])
    _assert_elements(Dataset.zip({"x": a, "y": (b, a)}).take(1), [{"x": 1, "y": (4, 1)}])
    _assert_elements(Dataset.range(1, 4).concatenate(Dataset.range(4, 8)), list(range(1, 8)))
    _assert_elements(Dataset.from_tensor_slices([1, 2, 3]).enumerate(start=5), [(5, 1), (6, 2), (7, 3)])
    _assert_elements(Dataset.from_tensor_slices([(7, 8), (9, 10)]).enumerate(),
                     [(0, np.array([7, 8])), (1, np.array([9, 10]))])
    assert Dataset.range(5).reduce(np.int64(0), lambda x, _: x + 1) == 5
    assert Dataset.range(5).reduce(np.int64(0), lambda x, y: x + y) == 10
    with pytest.raises(TypeError, match="concatenate.*same structure and dtypes"):
        a.concatenate(Dataset.zip(a, b))
    with pytest.raises(TypeError, match="concatenate.*same structure and dtypes"):
        a.concatenate(Dataset.from_tensor_slices([1.0]))
    with pytest.raises(TypeError, match=r"zip.*\[1\] is a ndarray"):
        Dataset.zip(a, np.arange(3))


def test_cardinality_as_documented_and_through_the_methods():
    ds = Dataset.range(42)
    assert ds.cardinality() == 42 and ds.cardinality().numpy() == 42 and len(ds) == 42
    assert ds.repeat().cardinality() == tf_data.INFINITE_CARDINALITY == tf_data.experimental.INFINITE_CARDINALITY
    assert ds.filter(lambda x: True).cardinality() == tf_data.UNKNOWN_CARDINALITY
    assert tf_data.experimental.cardinality(ds.batch(5)) == 9
    for made, n in [(ds.take(5), 5), (ds.skip(40), 2), (ds.skip(50), 0), (ds.repeat(2), 84), (ds.repeat(0), 0),
                    (ds.shuffle(4), 42), (ds.map(lambda x: x), 42), (ds.cache(), 42), (ds.enumerate(), 42),
                    (Dataset.zip(ds, ds.take(3)), 3), (Dataset.zip(ds, ds.repeat()), 42),
                    (ds.concatenate(ds.take(1)), 43), (ds.concatenate(ds.repeat()), -1),
                    (ds.repeat().take(7), 7), (ds.shard(5, 1), 9), (ds.shard(5, 3), 8),
                    (Dataset.zip(ds, ds.filter(lambda x: True)), -2), (Dataset.from_tensors(1), 1)]:
        assert made.cardinality() == n
    with pytest.raises(TypeError, match="infinite"):
        len(ds.repeat())
    with pytest.raises(TypeError, match="unknown"):
        len(ds.filter(lambda x: True))
    assert bool(ds.repeat()) and bool(Dataset.range(0))


# -- shuffle ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("source", ["slices", "range"])  # the index plan and the element path
def test_shuffle_each_iteration_and_seed(source):
    make = (lambda: Dataset.from_tensor_slices(np.arange(20))) if source == "slices" else (lambda: Dataset.range(20))
    ds = make().shuffle(20, seed=3)
    first, second = _list(ds), _list(ds)
    assert sorted(first) == list(range(20)) and sorted(second) == list(range(20))
    assert first != second  # reshuffle_each_iteration=True (the default): a new order every epoch
    again = make().shuffle(20, seed=3)
    assert _list(again) == first and _list(again) == second  # a seed repeats the whole sequence of orders
    fixed = make().shuffle(20, seed=3, reshuffle_each_iteration=False)
    assert _list(fixed) == _list(fixed)
    repeated = _list(make().shuffle(20, seed=1).repeat(2))  # the documented range(3) example, at 20
    assert sorted(repeated[:20]) == sorted(repeated[20:]) == list(range(20)) and repeated[:20] != repeated[20:]
    dlgpu.set_random_seed(7)
    unseeded = _list(make().shuffle(20))
    dlgpu.set_random_seed(7)
    assert _list(make().shuffle(20)) == unseeded  # without a seed, dlgpu.set_random_seed decides


@pytest.mark.parametrize("source", ["slices", "range"])
def test_shuffle_buffer_semantics(source):
    """A buffer of B: the element at position p was one of the first p + B inputs, so an element comes
    out at most B - 1 places early; B = 1 keeps the order."""
    make = (lambda: Dataset.from_tensor_slices(np.arange(300))) if source == "slices" else (lambda: Dataset.range(300))
    assert _list(make().shuffle(1, seed=0)) == list(range(300))
    for seed in range(5):
        out = np.array(_list(make().shuffle(10, seed=seed)))
        assert sorted(out.tolist()) == list(range(300))
        assert np.all(out <= np.arange(300) + 9)
        assert not np.all(out <= np.arange(300) + 8)  # and the bound is reached


def test_shuffle_buffer_distribution():
    """With a buffer of B the first output is uniform over the first B inputs, and the first input stays in
    the buffer a geometric number of draws: P(position k) = (1 - 1/B)^k / B, mean B - 1.  Seeded: the
    counts below are fixed numbers, the bounds are ~4 standard deviations wide."""
    B, runs = 8, 1200
    firsts, positions = np.zeros(100), []
    for seed in range(runs):
        out = np.array(_list(Dataset.from_tensor_slices(np.arange(100)).shuffle(B, seed=seed).batch(100))[0])
        firsts[out[0]] += 1
        positions.append(int(np.flatnonzero(out == 0)[0]))
    assert np.all(firsts[B:] == 0)  # the first output is one of the first B inputs
    expected = runs / B
    assert np.all(np.abs(firsts[:B] - expected) < 4 * np.sqrt(expected * (1 - 1 / B)))
    mean, sd = np.mean(positions), np.sqrt(B * (B - 1)) / np.sqrt(runs)
    assert abs(mean - (B - 1)) < 4 * sd
    assert np.mean(np.array(positions) == 0) == pytest.approx(1 / B, abs=4 * np.sqrt((1 / B) * (1 - 1 / B) / runs))


# -- cache, prefetch, inspection ---------------------------------------------------------------------------

def test_cache_replays_the_first_complete_iteration():
    calls = []

    def square(x):
        calls.append(int(x))
        return x ** 2
    ds = Dataset.range(5).map(square).cache()
    assert _list(ds) == [0, 1, 4, 9, 16] and _list(ds) == [0, 1, 4, 9, 16]
    assert len(calls) == 5  # the second pass reads the cache
    partial = Dataset.range(5).map(square).cache()
    calls.clear()
    _list(partial.take(2))
    assert _list(partial) == [0, 1, 4, 9, 16] and len(calls) == 7  # a stopped iteration caches nothing
    frozen = Dataset.from_tensor_slices(np.arange(30)).shuffle(30, seed=0).cache()
    assert _list(frozen) == _list(frozen)  # a shuffle before cache keeps its first order
    reshuffled = Dataset.from_tensor_slices(np.arange(30)).cache().shuffle(30, seed=0)
    assert _list(reshuffled) != _list(reshuffled)
    with pytest.raises(NotImplementedError, match="filename"):
        ds.cache("/tmp/cache")


def test_prefetch_autotune_and_experimental_names():
    ds = Dataset.range(3)
    assert ds.prefetch(tf_data.AUTOTUNE) is ds and ds.prefetch(2) is ds
    assert tf_data.AUTOTUNE == tf_data.experimental.AUTOTUNE == -1
    assert tf_data.UNKNOWN_CARDINALITY == -2
    assert dlgpu.data is tf_data
    assert ds.apply(lambda d: d.map(lambda x: x + 1)).reduce(0, lambda s, x: s + x) == 6


def test_element_spec_through_the_methods():
    x, y = np.zeros((10, 4, 3), np.float32), np.zeros(10, np.int64)
    ds = Dataset.from_tensor_slices(({"img": x}, y))
    assert ds.element_spec == ({"img": TensorSpec((4, 3), "float32")}, TensorSpec((), "int64"))
    assert ds.batch(2).unbatch().element_spec == ds.element_spec
    assert ds.shuffle(3).repeat().element_spec == ds.element_spec
    mapped = ds.batch(5).map(lambda f, label: (f["img"][:, 0], label))  # a map's spec: its first element's
    assert mapped.element_spec == (TensorSpec((5, 3), "float32"), TensorSpec((5,), "int64"))
    strings = Dataset.from_tensor_slices(np.array(["a", "b"], dtype=object))
    assert strings.element_spec == TensorSpec((), "string")
    assert "TensorSpec(shape=(None, 2), dtype=float32" in repr(TensorSpec([-1, 2]))


# -- errors ------------------------------------------------------------------------------------------------

def test_from_tensor_slices_errors_name_the_method_and_shapes():
    with pytest.raises(ValueError, match=r"from_tensor_slices.*same size.*\[0\]: \(10, 2\), \[1\]: \(9,\)"):
        Dataset.from_tensor_slices((np.zeros((10, 2)), np.zeros(9)))
    with pytest.raises(ValueError, match=r"from_tensor_slices.*\['b'\]: \(3,\)"):
        Dataset.from_tensor_slices({"a": np.zeros(4), "b": np.zeros(3)})
    with pytest.raises(ValueError, match="from_tensor_slices.*scalar.*from_tensors"):
        Dataset.from_tensor_slices(5)
    with pytest.raises(ValueError, match="from_tensor_slices.*equal lengths.*tuple"):
        Dataset.from_tensor_slices([[1, 2], [3]])
    with pytest.raises(TypeError, match="from_tensor_slices.*Dataset"):
        Dataset.from_tensor_slices(Dataset.range(3))


def test_batch_errors_name_the_method_and_shapes():
    ragged = Dataset.range(1, 4).map(lambda x: np.zeros(x))
    with pytest.raises(ValueError, match=r"batch.*shape \(1,\).*element 1 has shape \(2,\).*padded_batch"):
        _list(ragged.batch(3))
    with pytest.raises(ValueError, match="unbatch.*rank >= 1"):
        _list(Dataset.range(3).unbatch())


@pytest.mark.parametrize("call,match", [
    (lambda d: d.batch(0), "batch.*batch_size"), (lambda d: d.batch(2.0), "batch.*batch_size"),
    (lambda d: d.shuffle(0), "shuffle.*buffer_size"), (lambda d: d.shuffle(4, seed="a"), "shuffle.*seed"),
    (lambda d: d.take(-2), "take.*count"), (lambda d: d.skip(None), "skip.*count"),
    (lambda d: d.repeat(-3), "repeat.*count"), (lambda d: d.map(5), "map.*map_func"),
    (lambda d: d.map(abs, num_parallel_calls=0), "map.*num_parallel_calls"),
    (lambda d: d.prefetch(-5), "prefetch.*buffer_size"), (lambda d: d.shard(2, 2), "shard.*index"),
    (lambda d: d.padded_batch(-1), "padded_batch.*batch_size"), (lambda d: d.concatenate([1]), "concatenate"),
    (lambda d: d.apply(lambda x: 3), "apply"), (lambda d: Dataset.range(1, 2, 0), "range.*step"),
])
def test_bad_arguments_are_named(call, match):
    with pytest.raises((ValueError, TypeError), match=match):
        call(Dataset.range(4))


def test_methods_dlgpu_does_not_offer_say_so():
    with pytest.raises(AttributeError, match="interleave.*dlgpu.data.Dataset does not implement"):
        Dataset.range(3).interleave(lambda x: x)
    with pytest.raises(AttributeError, match="no attribute 'nonsense'"):
        Dataset.range(3).nonsense
