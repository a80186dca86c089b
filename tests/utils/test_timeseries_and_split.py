"""timeseries_dataset_from_array against Keras's docstring examples and a numpy reference; split_dataset."""

import numpy as np
import pytest

import dlgpu as keras
from dlgpu.utils import PyDataset, split_dataset, timeseries_dataset_from_array


def all_batches(ds):
    return [ds[i] for i in range(len(ds))]


def reference_windows(data, targets, length, stride, rate, start, end):
    """Window starts and contents by the definition: every window lies in [start, end); target of the
    window starting at s is targets[s]."""
    starts = []
    s = start
    while s + (length - 1) * rate < end and (targets is None or s < len(targets)):
        starts.append(s)
        s += stride
    windows = np.stack([data[s:s + (length - 1) * rate + 1:rate] for s in starts])
    return windows, (None if targets is None else targets[np.array(starts)])


def test_docstring_example_1_indices():
    # Keras: indices [0 .. 98], sequence_length=10, sampling_rate=2, sequence_stride=3.
    ds = timeseries_dataset_from_array(np.arange(99), None, sequence_length=10, sampling_rate=2,
                                       sequence_stride=3, batch_size=128)
    assert isinstance(ds, PyDataset) and len(ds) == 1
    windows = ds[0]
    np.testing.assert_array_equal(windows[0], [0, 2, 4, 6, 8, 10, 12, 14, 16, 18])
    np.testing.assert_array_equal(windows[1], [3, 5, 7, 9, 11, 13, 15, 17, 19, 21])
    np.testing.assert_array_equal(windows[2], [6, 8, 10, 12, 14, 16, 18, 20, 22, 24])
    np.testing.assert_array_equal(windows[-1], [78, 80, 82, 84, 86, 88, 90, 92, 94, 96])


def test_docstring_example_2_temporal_regression():
    data = np.random.default_rng(0).random(50).astype("float32")
    inputs, targets = next(iter(timeseries_dataset_from_array(data[:-10], data[10:], sequence_length=10)))
    np.testing.assert_array_equal(inputs[0], data[:10])
    assert targets[0] == data[10]
    assert inputs.dtype == np.float32 and inputs.shape == (31, 10)


def test_docstring_example_3_many_to_many():
    x = np.arange(100)
    y = x * 2
    inputs = timeseries_dataset_from_array(x, None, sequence_length=20, sequence_stride=20)
    targets = timeseries_dataset_from_array(y, None, sequence_length=20, sequence_stride=20)
    a, b = inputs[0], targets[0]
    np.testing.assert_array_equal(a[0], x[:20])
    np.testing.assert_array_equal(b[1], y[20:40])
    assert a.shape == (5, 20)


@pytest.mark.parametrize("length,stride,rate,start,end,batch", [
    (5, 1, 1, None, None, 7), (4, 3, 2, None, None, 4), (3, 2, 3, 5, 40, 3), (6, 1, 1, 10, None, 128),
    (2, 5, 1, None, 30, 1), (1, 1, 1, 3, 9, 2)])
def test_against_numpy_reference(length, stride, rate, start, end, batch):
    rng = np.random.default_rng(1)
    data = rng.standard_normal((50, 3)).astype("float32")
    targets = rng.integers(0, 5, size=50)
    ds = timeseries_dataset_from_array(data, targets, length, sequence_stride=stride, sampling_rate=rate,
                                       batch_size=batch, start_index=start, end_index=end)
    want_x, want_y = reference_windows(data, targets, length, stride, rate, start or 0, end or 50)
    got = all_batches(ds)
    assert all(len(x) <= batch for x, _ in got) and len(ds) == -(-len(want_x) // batch)
    np.testing.assert_array_equal(np.concatenate([x for x, _ in got]), want_x)
    np.testing.assert_array_equal(np.concatenate([y for _, y in got]), want_y)


def test_short_targets_bound_the_windows_and_unbatched_windows():
    data = np.arange(20)
    ds = timeseries_dataset_from_array(data, np.arange(8) * 10, sequence_length=3, batch_size=None, start_index=2)
    # Windows start at 2..7 (targets[s] must exist), one at a time.
    assert len(ds) == 6
    x, y = ds[0]
    np.testing.assert_array_equal(x, [2, 3, 4])
    assert y == 20 and x.shape == (3,)
    np.testing.assert_array_equal(ds[-1][0], [7, 8, 9])


def test_shuffle_is_seeded_and_reshuffles_every_epoch():
    data = np.arange(40)

    def epochs(seed, n=3):
        ds = timeseries_dataset_from_array(data, data, sequence_length=4, batch_size=8, shuffle=True, seed=seed)
        out = []
        for _ in range(n):
            out.append(np.concatenate([y for _, y in ds]))  # iterating ends the epoch
        return out, ds

    first, ds = epochs(3)
    again, _ = epochs(3)
    for a, b in zip(first, again):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(first[0], first[1])
    for order in first:  # a permutation of all window starts, each window still matching its target
        np.testing.assert_array_equal(np.sort(order), np.arange(37))
    x, y = ds[0]
    np.testing.assert_array_equal(x[:, 0], y)


def test_trains_with_fit():
    rng = np.random.default_rng(0)
    series = rng.standard_normal((60, 2)).astype("float32")
    ds = timeseries_dataset_from_array(series[:-4], series[4:, 0], sequence_length=4, batch_size=16, shuffle=True,
                                       seed=0)
    model = keras.Sequential([keras.Input((4, 2)), keras.layers.Flatten(), keras.layers.Dense(1)])
    model.compile(optimizer="adam", loss="mse")
    history = model.fit(ds, epochs=2, verbose=0)
    assert len(history.history["loss"]) == 2 and np.isfinite(history.history["loss"]).all()


@pytest.mark.parametrize("kwargs,name", [
    (dict(sequence_length=0), "sequence_length"), (dict(sequence_stride=0), "sequence_stride"),
    (dict(sampling_rate=0), "sampling_rate"), (dict(sampling_rate=30), "sampling_rate"),
    (dict(sequence_stride=30), "sequence_stride"), (dict(start_index=-1), "start_index"),
    (dict(start_index=30), "start_index"), (dict(start_index=10, end_index=5), "end_index"),
    (dict(end_index=30), "end_index"), (dict(batch_size=0), "batch_size"), (dict(sequence_length=40), "window")])
def test_bad_arguments_are_named(kwargs, name):
    args = dict(sequence_length=3)
    args.update(kwargs)
    with pytest.raises(ValueError, match=name):
        timeseries_dataset_from_array(np.arange(30), None, **args)


def test_tf_data_methods():
    ds = timeseries_dataset_from_array(np.arange(30), None, sequence_length=3, batch_size=4)
    assert ds.prefetch(-1) is ds and ds.cache() is ds
    taken = list(ds.take(2))
    assert len(taken) == 2
    np.testing.assert_array_equal(taken[1], ds[1])
    doubled = ds.map(lambda x: x * 2)  # a batch without targets is one argument
    np.testing.assert_array_equal(doubled[1], ds[1] * 2)
    # the tf.data methods dlgpu.data implements work on the dataset of batches, as on Keras's tf.data.Dataset
    assert ds.cardinality() == len(ds) and ds.take(2).cardinality() == 2
    samples = list(ds.unbatch().as_numpy_iterator())
    assert len(samples) == 28 and samples[5].tolist() == [5, 6, 7]
    shuffled = list(ds.shuffle(8, seed=0).as_numpy_iterator())
    assert sorted(b[0, 0] for b in shuffled) == [b[0, 0] for b in ds]
    assert ds.skip(6).repeat(2).reduce(0, lambda n, batch: n + len(batch)) == 2 * 4
    with pytest.raises(AttributeError, match="interleave.*does not implement"):
        ds.interleave(lambda x: x)
    with pytest.raises(AttributeError, match="no attribute 'nonsense'"):
        ds.nonsense
    with pytest.raises(IndexError):
        ds[len(ds)]


# split_dataset -----------------------------------------------------------------------------------------

def test_split_array_sizes_and_order():
    data = np.arange(100, dtype="float32").reshape(50, 2)
    left, right = split_dataset(data, left_size=0.8)
    assert len(left) == 40 and len(right) == 10  # unbatched: one sample per item, as Keras
    np.testing.assert_array_equal(np.stack(list(left)), data[:40])
    np.testing.assert_array_equal(np.stack(list(right)), data[40:])
    left, right = split_dataset(data, left_size=10, right_size=5)
    assert (len(left), len(right)) == (10, 5)
    np.testing.assert_array_equal(np.stack(list(right)), data[45:])
    left, right = split_dataset(data, right_size=0.3)
    assert (len(left), len(right)) == (35, 15)


def test_split_tuple_shuffled_and_seeded():
    x = np.arange(30)
    y = x * 10
    left, right = split_dataset((x, y), left_size=20, shuffle=True, seed=4)
    lx = np.array([s[0] for s in left])
    ly = np.array([s[1] for s in left])
    rx = np.array([s[0] for s in right])
    np.testing.assert_array_equal(ly, lx * 10)
    np.testing.assert_array_equal(np.sort(np.concatenate([lx, rx])), x)
    assert not np.array_equal(lx, x[:20])
    again, _ = split_dataset((x, y), left_size=20, shuffle=True, seed=4)
    np.testing.assert_array_equal(np.array([s[0] for s in again]), lx)


def test_split_pydataset_keeps_its_batch_size():
    ds = timeseries_dataset_from_array(np.arange(40), np.arange(40), sequence_length=1, batch_size=8)
    left, right = split_dataset(ds, left_size=0.75)
    assert (len(left), len(right)) == (4, 2)
    x, y = left[0]
    assert x.shape == (8, 1)
    np.testing.assert_array_equal(np.concatenate([b[1] for b in right]), np.arange(30, 40))


@pytest.mark.parametrize("kwargs,error,name", [
    (dict(), ValueError, "left_size"), (dict(left_size=1.5), ValueError, "left_size"),
    (dict(left_size=0), ValueError, "left_size"), (dict(right_size=10), ValueError, "right_size"),
    (dict(left_size="half"), TypeError, "left_size"), (dict(left_size=0.6, right_size=0.6), ValueError, "exceed"),
    (dict(left_size=0.01), ValueError, "empty")])
def test_split_bad_sizes(kwargs, error, name):
    with pytest.raises(error, match=name):
        split_dataset(np.arange(10), **kwargs)


def test_split_bad_dataset():
    with pytest.raises(TypeError, match="dataset"):
        split_dataset("abc", left_size=0.5)
    with pytest.raises(ValueError, match="first dimension"):
        split_dataset((np.arange(4), np.arange(5)), left_size=0.5)

    class Dicts(PyDataset):
        def __len__(self):
            return 2

        def __getitem__(self, index):
            return {"a": np.zeros((2, 1))}

    with pytest.raises(TypeError, match="dicts"):
        split_dataset(Dicts(), left_size=0.5)


def test_array_dataset_of_dicts_of_columns():
    from dlgpu.utils.dataset_utils import ArrayDataset
    cols = {"age": np.arange(5.0), "city": np.array(list("abcde"))}
    ds = ArrayDataset((cols, np.arange(5)), batch_size=2)
    assert len(ds) == 3
    x, y = ds[1]
    np.testing.assert_array_equal(x["age"], [2.0, 3.0])
    np.testing.assert_array_equal(x["city"], ["c", "d"])
    np.testing.assert_array_equal(y, [2, 3])
    x, y = ArrayDataset((cols, np.arange(5)))[4]  # one sample at a time without a batch size
    assert x["city"] == "e" and y == 4
    assert [b["age"].tolist() for b in ds.map(lambda x, y: x)] == [[0.0, 1.0], [2.0, 3.0], [4.0]]
    with pytest.raises(ValueError, match="same number in each.*\\(5,\\), \\(4,\\)"):
        ArrayDataset({"age": np.arange(5.0), "city": np.array(list("abcd"))})
