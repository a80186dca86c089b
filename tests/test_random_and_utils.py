"""keras.random and keras.utils names: shapes, dtypes, seeding, ranges, errors."""

import numpy as np
import pytest

import dlgpu
from dlgpu import random, utils


def test_seeded_draws_repeat_and_have_the_asked_shape_and_dtype():
    a, b = random.normal((3, 4), seed=7), random.normal((3, 4), seed=7)
    assert a.shape == (3, 4) and a.dtype == "float32"
    np.testing.assert_array_equal(a.numpy(), b.numpy())
    assert not np.array_equal(a.numpy(), random.normal((3, 4), seed=8).numpy())


def test_set_random_seed_makes_unseeded_draws_reproducible():
    dlgpu.set_random_seed(3)
    first = random.uniform((5,)).numpy()
    dlgpu.set_random_seed(3)
    np.testing.assert_array_equal(first, random.uniform((5,)).numpy())


def test_ranges():
    u = random.uniform((1000,), minval=2.0, maxval=3.0, seed=0).numpy()
    assert u.min() >= 2.0 and u.max() < 3.0
    t = random.truncated_normal((5000,), mean=1.0, stddev=0.5, seed=0).numpy()
    assert np.abs(t - 1.0).max() <= 1.0 and abs(t.mean() - 1.0) < 0.05
    r = random.randint((1000,), 0, 4, seed=0)
    assert r.dtype == "int32" and set(np.unique(r.numpy())) == {0, 1, 2, 3}


def test_shuffle_permutes_along_the_axis():
    x = np.arange(12).reshape(6, 2)
    out = random.shuffle(x, seed=1).numpy()
    assert sorted(map(tuple, out)) == sorted(map(tuple, x)) and not np.array_equal(out, x)


def test_to_categorical():
    np.testing.assert_array_equal(utils.to_categorical([0, 2, 1], 3), np.eye(3, dtype=np.float32)[[0, 2, 1]])
    assert utils.to_categorical(np.array([[1], [0]])).shape == (2, 2)  # a trailing axis of 1 is dropped
    with pytest.raises(ValueError, match=r"\[0, 3\)"):
        utils.to_categorical([0, 3], 3)
    with pytest.raises(ValueError, match="whole numbers"):
        utils.to_categorical([0.5, 1.0])


def test_normalize_gives_unit_rows():
    out = utils.normalize(np.array([[3.0, 4.0], [0.0, 0.0]]))
    np.testing.assert_allclose(out, [[0.6, 0.8], [0.0, 0.0]])
