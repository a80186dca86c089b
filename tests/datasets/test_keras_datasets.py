"""cifar10, cifar100, imdb, reuters, boston_housing, california_housing: Keras's load_data on synthetic files.

No real data here (this machine may be offline): every test builds small archives in the exact upstream
formats (a .tar.gz of Python-2-style pickled batches, .npz files with object arrays, a JSON word index),
puts their digests into the one checksum table (``_checksums.CHECKSUMS``), and points DLGPU_DATASETS or
the cache at them.  urlopen is replaced by a stub that fails unless a test installs a fake server.
"""

from __future__ import annotations

import hashlib
import io
import json
import pickle
import tarfile
import urllib.error
import warnings

import numpy as np
import pytest

import dlgpu
from dlgpu.datasets import (DatasetChecksumError, DatasetFormatError, DatasetNotFoundError, _checksums, _files,
                            boston_housing, california_housing, cifar10, cifar100, imdb, reuters)


def _no_network(url, timeout=None):
    raise urllib.error.URLError(f"network disabled in tests ({url})")


@pytest.fixture(autouse=True)
def isolated(monkeypatch, tmp_path):
    """No DLGPU_DATASETS, a temporary cache, no network."""
    monkeypatch.delenv("DLGPU_DATASETS", raising=False)
    monkeypatch.setenv("DLGPU_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(_files, "urlopen", _no_network)


class FakeServer:
    """Stands in for urlopen: serves ``files`` (URL -> bytes), 404 elsewhere, and records the URLs asked for."""

    def __init__(self, files):
        self.files, self.requests = files, []

    def __call__(self, url, timeout=None):
        self.requests.append(url)
        if url not in self.files:
            raise urllib.error.HTTPError(url, 404, "Not Found", {}, io.BytesIO(b""))
        return io.BytesIO(self.files[url])


def publish(monkeypatch, name, filename, data):
    """Make ``data`` the published file: its SHA-256 (MD5 for the JSON word indexes, as Keras) in the table."""
    digest = hashlib.md5(data) if filename.endswith(".json") else hashlib.sha256(data)
    monkeypatch.setitem(_checksums.CHECKSUMS[name], filename, digest.hexdigest())


def supply(monkeypatch, tmp_path, name, filename, data):
    """``data`` published and placed at $DLGPU_DATASETS/<name>/<filename>; returns its path."""
    publish(monkeypatch, name, filename, data)
    path = tmp_path / "data" / name / filename
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    monkeypatch.setenv("DLGPU_DATASETS", str(tmp_path / "data"))
    return path


# ---- the upstream formats --------------------------------------------------------------------------

class _Python2Pickler(pickle._Pickler):
    """Writes str and bytes as Python 2 ``str`` (BINSTRING), as the cPickle that wrote CIFAR's batches did."""

    dispatch = dict(pickle._Pickler.dispatch)

    def _save_py2_str(self, obj):
        raw = obj if isinstance(obj, bytes) else obj.encode("latin1")
        if len(raw) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(raw)]) + raw)
        else:
            self.write(pickle.BINSTRING + len(raw).to_bytes(4, "little") + raw)
        self.memoize(obj)

    dispatch[str] = _save_py2_str
    dispatch[bytes] = _save_py2_str


def python2_pickle(obj):
    out = io.BytesIO()
    _Python2Pickler(out, protocol=2).dump(obj)
    # Python 2's numpy lived at numpy.core; GLOBAL opcodes are text lines, so renaming is safe.
    return out.getvalue().replace(b"numpy._core.multiarray", b"numpy.core.multiarray")


def tar_gz(members):
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w:gz") as archive:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return out.getvalue()


def npz(**arrays):
    out = io.BytesIO()
    np.savez(out, **arrays)
    return out.getvalue()


def object_array(seqs):
    out = np.empty(len(seqs), dtype=object)
    for i, s in enumerate(seqs):
        out[i] = list(s)
    return out


def cifar_images(n, seed):
    return np.random.default_rng(seed).integers(0, 256, (n, 3072), dtype=np.uint8)


def cifar10_archive(batch_sizes=(3, 2, 3, 1, 2), n_test=4, seed=0):
    """A cifar-10-python.tar.gz; returns (bytes, train data rows, train labels, test rows, test labels)."""
    rng = np.random.default_rng(seed)
    members, datas, labels = {}, [], []
    for i, n in enumerate(batch_sizes, 1):
        data, lab = cifar_images(n, seed + i), rng.integers(0, 10, n).tolist()
        datas.append(data)
        labels += lab
        members[f"cifar-10-batches-py/data_batch_{i}"] = python2_pickle(
            {"batch_label": f"training batch {i} of 5", "labels": lab, "data": data,
             "filenames": [f"img_{i}_{j}.png" for j in range(n)]})
    test_data, test_labels = cifar_images(n_test, seed + 99), rng.integers(0, 10, n_test).tolist()
    members["cifar-10-batches-py/test_batch"] = python2_pickle(
        {"batch_label": "testing batch 1 of 1", "labels": test_labels, "data": test_data,
         "filenames": [f"t_{j}.png" for j in range(n_test)]})
    members["cifar-10-batches-py/batches.meta"] = python2_pickle({"label_names": list(cifar10.CLASS_NAMES)})
    members["cifar-10-batches-py/readme.html"] = b"<html></html>"
    return tar_gz(members), np.concatenate(datas), labels, test_data, test_labels


def cifar100_archive(n_train=5, n_test=3, seed=0):
    rng = np.random.default_rng(seed)
    parts = {}
    members = {}
    for split, n in (("train", n_train), ("test", n_test)):
        data = cifar_images(n, seed + len(split))
        fine, coarse = rng.integers(0, 100, n).tolist(), rng.integers(0, 20, n).tolist()
        parts[split] = (data, fine, coarse)
        members[f"cifar-100-python/{split}"] = python2_pickle(
            {"filenames": [f"{split}_{j}.png" for j in range(n)], "batch_label": f"{split}ing batch 1 of 1",
             "fine_labels": fine, "coarse_labels": coarse, "data": data})
    members["cifar-100-python/meta"] = python2_pickle({"fine_label_names": [], "coarse_label_names": []})
    return tar_gz(members), parts


def chw_to_hwc(rows):
    """CIFAR's rows (1024 red, 1024 green, 1024 blue, each in row order) as (n, 32, 32, 3), by index."""
    n = len(rows)
    out = np.empty((n, 32, 32, 3), np.uint8)
    for c in range(3):
        out[..., c] = rows[:, c * 1024:(c + 1) * 1024].reshape(n, 32, 32)
    return out


# ---- CIFAR -----------------------------------------------------------------------------------------

def test_cifar10_shapes_dtypes_and_pixels(monkeypatch, tmp_path):
    data, train_rows, train_labels, test_rows, test_labels = cifar10_archive()
    supply(monkeypatch, tmp_path, "cifar10", "cifar-10-python.tar.gz", data)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # numpy 1's module names resolve without numpy 2's deprecation shim
        (x_train, y_train), (x_test, y_test) = dlgpu.datasets.cifar10.load_data()
    assert x_train.shape == (11, 32, 32, 3) and x_test.shape == (4, 32, 32, 3)
    assert y_train.shape == (11, 1) and y_test.shape == (4, 1)
    for a in (x_train, y_train, x_test, y_test):
        assert a.dtype == np.uint8 and a.flags.writeable and a.flags.c_contiguous
    # Batches 1..5 in order; pixel (r, c) of channel ch is byte ch*1024 + r*32 + c of the row.
    np.testing.assert_array_equal(x_train, chw_to_hwc(train_rows))
    np.testing.assert_array_equal(x_test, chw_to_hwc(test_rows))
    assert x_train[0, 1, 2, 1] == train_rows[0, 1024 + 1 * 32 + 2]
    assert y_train[:, 0].tolist() == train_labels and y_test[:, 0].tolist() == test_labels


@pytest.mark.parametrize("label_mode, index", [("fine", 1), ("coarse", 2)])
def test_cifar100_label_modes(monkeypatch, tmp_path, label_mode, index):
    data, parts = cifar100_archive()
    supply(monkeypatch, tmp_path, "cifar100", "cifar-100-python.tar.gz", data)
    (x_train, y_train), (x_test, y_test) = cifar100.load_data(label_mode=label_mode)
    assert x_train.shape == (5, 32, 32, 3) and x_test.shape == (3, 32, 32, 3) and x_train.dtype == np.uint8
    np.testing.assert_array_equal(x_train, chw_to_hwc(parts["train"][0]))
    # Keras reshapes the pickled list of labels: int64 (n, 1).
    assert y_train.dtype == np.int64 and y_train.shape == (5, 1) and y_test.shape == (3, 1)
    assert y_train[:, 0].tolist() == parts["train"][index] and y_test[:, 0].tolist() == parts["test"][index]


def test_cifar100_bad_label_mode_is_refused_before_any_file_is_read():
    with pytest.raises(ValueError, match=r"label_mode.*Received: label_mode='medium'"):
        cifar100.load_data("medium")


def test_cifar_label_out_of_range(monkeypatch, tmp_path):
    members = {f"cifar-10-batches-py/data_batch_{i}": python2_pickle({"labels": [0], "data": cifar_images(1, i)})
               for i in range(1, 6)}
    members["cifar-10-batches-py/test_batch"] = python2_pickle({"labels": [10], "data": cifar_images(1, 0)})
    supply(monkeypatch, tmp_path, "cifar10", "cifar-10-python.tar.gz", tar_gz(members))
    with pytest.raises(DatasetFormatError, match=r"test_batch: 'labels' outside 0-9"):
        cifar10.load_data()


def test_cifar_archive_lacking_a_batch(monkeypatch, tmp_path):
    members = {"cifar-10-batches-py/data_batch_1": python2_pickle({"labels": [0], "data": cifar_images(1, 0)})}
    supply(monkeypatch, tmp_path, "cifar10", "cifar-10-python.tar.gz", tar_gz(members))
    with pytest.raises(DatasetFormatError, match=r"the archive lacks \['cifar-10-batches-py/data_batch_2'"):
        cifar10.load_data()


def _touch(path):  # what a malicious pickle would run, were its global resolved
    open(path, "w").close()


class _Exploit:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (_touch, (str(self.marker),))


def test_pickle_with_a_foreign_global_is_refused_even_with_a_matching_checksum(monkeypatch, tmp_path):
    marker = tmp_path / "executed"
    members = {f"cifar-10-batches-py/data_batch_{i}": pickle.dumps(_Exploit(marker), protocol=2) for i in range(1, 6)}
    members["cifar-10-batches-py/test_batch"] = members["cifar-10-batches-py/data_batch_1"]
    supply(monkeypatch, tmp_path, "cifar10", "cifar-10-python.tar.gz", tar_gz(members))
    with pytest.raises(DatasetFormatError, match=r"data_batch_1: not a readable dataset pickle.*refusing to load the g"):
        cifar10.load_data()
    assert not marker.exists()


def test_object_array_with_a_foreign_global_is_refused(monkeypatch, tmp_path):
    marker = tmp_path / "executed"
    bad = np.empty(1, dtype=object)
    bad[0] = _Exploit(marker)
    data = npz(x=bad, y=np.zeros(1, np.int64))
    supply(monkeypatch, tmp_path, "reuters", "reuters.npz", data)
    with pytest.raises(DatasetFormatError, match="refusing to load the global"):
        reuters.load_data()
    assert not marker.exists()


# ---- checksums, missing files, downloads -----------------------------------------------------------

def test_checksum_mismatch_names_the_file_and_reads_nothing(monkeypatch, tmp_path):
    marker = tmp_path / "executed"
    members = {f"cifar-10-batches-py/data_batch_{i}": pickle.dumps(_Exploit(marker), protocol=2) for i in range(1, 6)}
    path = supply(monkeypatch, tmp_path, "cifar10", "cifar-10-python.tar.gz", tar_gz(members))
    path.write_bytes(path.read_bytes() + b"tampered")
    expected = _checksums.CHECKSUMS["cifar10"]["cifar-10-python.tar.gz"]
    found = hashlib.sha256(path.read_bytes()).hexdigest()
    with pytest.raises(DatasetChecksumError) as err:
        cifar10.load_data()
    message = str(err.value)
    assert str(path) in message and f"sha256 {found} does not match the published {expected}" in message
    assert "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz" in message
    assert not marker.exists()


def test_the_published_keras_checksums_are_in_the_table():
    # The file_hash values of keras/src/datasets/*.py.
    assert _checksums.CHECKSUMS["cifar10"]["cifar-10-python.tar.gz"].startswith("6d958be0")
    assert _checksums.CHECKSUMS["imdb"]["imdb_word_index.json"] == "bfafd718b763782e994055a2d397834f"
    for name, files in _checksums.CHECKSUMS.items():
        assert _checksums.MIRRORS[name], name
        for digest in files.values():
            assert len(digest) in (32, 64) and int(digest, 16) >= 0


@pytest.mark.parametrize("loader, name, filename", [
    (cifar10.load_data, "cifar10", "cifar-10-python.tar.gz"),
    (imdb.get_word_index, "imdb", "imdb_word_index.json"),
    (california_housing.load_data, "california_housing", "california_housing.npz"),
])
def test_missing_file_with_dlgpu_datasets_names_folder_and_file(monkeypatch, tmp_path, loader, name, filename):
    (tmp_path / "data" / name).mkdir(parents=True)
    monkeypatch.setenv("DLGPU_DATASETS", str(tmp_path / "data"))
    server = FakeServer({})
    monkeypatch.setattr(_files, "urlopen", server)
    with pytest.raises(DatasetNotFoundError) as err:
        loader()
    message = str(err.value)
    assert f"Put these files in {tmp_path / 'data' / name}:\n    {filename}\n" in message
    assert f"which lacks {filename}" in message and "nothing is downloaded" in message
    assert server.requests == []


def test_offline_error_names_the_cache_folder_and_the_url(tmp_path):
    with pytest.raises(DatasetNotFoundError) as err:
        imdb.load_data()
    message = str(err.value)
    cache = tmp_path / "cache" / "datasets" / "imdb"
    assert f"Put these files in {cache}:\n    imdb.npz\n" in message
    assert "https://storage.googleapis.com/tensorflow/tf-keras-datasets/imdb.npz: URLError" in message
    assert "DLGPU_DATASETS" in message
    assert list(cache.iterdir()) == []


def test_download_verifies_sha256_caches_atomically_and_never_downloads_again(monkeypatch, tmp_path):
    data = npz(x=np.arange(26.0).reshape(2, 13), y=np.array([1.0, 2.0]))
    publish(monkeypatch, "boston_housing", "boston_housing.npz", data)
    url = "https://storage.googleapis.com/tensorflow/tf-keras-datasets/boston_housing.npz"
    server = FakeServer({url: data})
    monkeypatch.setattr(_files, "urlopen", server)
    (x_train, _), (x_test, _) = boston_housing.load_data(test_split=0.5)
    assert server.requests == [url] and len(x_train) == 1 and len(x_test) == 1
    cache = tmp_path / "cache" / "datasets" / "boston_housing"
    assert [p.name for p in cache.iterdir()] == ["boston_housing.npz"]  # no .part left
    assert (cache / "boston_housing.npz").read_bytes() == data

    monkeypatch.setattr(_files, "urlopen", _no_network)
    boston_housing.load_data()
    assert server.requests == [url]


def test_download_with_the_wrong_sha256_is_discarded(monkeypatch, tmp_path):
    data = npz(x=np.zeros((2, 13)), y=np.zeros(2))
    publish(monkeypatch, "boston_housing", "boston_housing.npz", data)
    url = "https://storage.googleapis.com/tensorflow/tf-keras-datasets/boston_housing.npz"
    monkeypatch.setattr(_files, "urlopen", FakeServer({url: data + b"!"}))
    with pytest.raises(DatasetNotFoundError, match=r"boston_housing.npz: checksum mismatch \(sha256 [0-9a-f]{64}, exp"):
        boston_housing.load_data()
    assert list((tmp_path / "cache" / "datasets" / "boston_housing").iterdir()) == []


def test_files_in_the_cache_are_used_offline(monkeypatch, tmp_path):
    index = {"the": 1, "movie": 2}
    data = json.dumps(index).encode()
    publish(monkeypatch, "imdb", "imdb_word_index.json", data)
    cache = tmp_path / "cache" / "datasets" / "imdb"
    cache.mkdir(parents=True)
    (cache / "imdb_word_index.json").write_bytes(data)
    assert imdb.get_word_index() == index  # urlopen fails in every test unless replaced


def test_word_index_md5_mismatch(monkeypatch, tmp_path):
    path = supply(monkeypatch, tmp_path, "reuters", "reuters_word_index.json", b'{"a": 1}')
    path.write_bytes(b'{"a": 2}')
    with pytest.raises(DatasetChecksumError, match=r"reuters_word_index.json: md5 [0-9a-f]{32} does not match"):
        reuters.get_word_index()


def test_path_argument_names_the_local_file(monkeypatch, tmp_path):
    data = npz(x=np.arange(26.0).reshape(2, 13), y=np.array([1.0, 2.0]))
    publish(monkeypatch, "boston_housing", "boston_housing.npz", data)
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "b.npz").write_bytes(data)
    (x_train, _), (x_test, _) = boston_housing.load_data(path=str(tmp_path / "elsewhere" / "b.npz"), test_split=0)
    assert x_train.shape == (2, 13) and x_test.shape == (0, 13)

    # A relative name is looked up in the dataset directory, and downloaded under that name.
    url = "https://storage.googleapis.com/tensorflow/tf-keras-datasets/boston_housing.npz"
    monkeypatch.setattr(_files, "urlopen", FakeServer({url: data}))
    boston_housing.load_data(path="renamed.npz")
    assert (tmp_path / "cache" / "datasets" / "boston_housing" / "renamed.npz").read_bytes() == data


# ---- IMDB and Reuters ------------------------------------------------------------------------------

def keras_sequences(xs, labels, num_words, skip_top, maxlen, start_char, oov_char, index_from):
    """Keras's rules written out word by word (imdb.py / reuters.py), on already shuffled lists."""
    if start_char is not None:
        xs = [[start_char] + [w + index_from for w in x] for x in xs]
    else:
        xs = [[w + index_from for w in x] for x in xs]
    if maxlen:
        kept = [(x, y) for x, y in zip(xs, labels) if len(x) < maxlen]
        xs, labels = [x for x, _ in kept], [y for _, y in kept]
    if not num_words:
        num_words = max(max(x) for x in xs)
    if oov_char is not None:
        xs = [[w if skip_top <= w < num_words else oov_char for w in x] for x in xs]
    else:
        xs = [[w for w in x if skip_top <= w < num_words] for x in xs]
    return xs, labels


def random_corpus(n, seed, vocab=40, longest=12):
    rng = np.random.default_rng(seed)
    xs = [rng.integers(1, vocab, rng.integers(1, longest)).tolist() for _ in range(n)]
    return xs, rng.integers(0, 2, n).astype(np.int64)


def supply_imdb(monkeypatch, tmp_path, train, test):
    data = npz(x_train=object_array(train[0]), y_train=np.asarray(train[1], np.int64),
               x_test=object_array(test[0]), y_test=np.asarray(test[1], np.int64))
    supply(monkeypatch, tmp_path, "imdb", "imdb.npz", data)


def test_imdb_hand_computed_example(monkeypatch, tmp_path):
    train = ([[1, 2, 3], [4, 5], [1, 1, 6, 7]], [0, 1, 0])
    test = ([[2, 8], [9]], [1, 0])
    supply_imdb(monkeypatch, tmp_path, train, test)
    # seed=113 orders train as [2, 0, 1] and test as [1, 0]: numpy RandomState(113), two shuffles in turn.
    rng = np.random.RandomState(113)
    assert rng.permutation(3).tolist() == [2, 0, 1] and rng.permutation(2).tolist() == [1, 0]

    (x_train, y_train), (x_test, y_test) = imdb.load_data()
    # start_char 1, words + 3; num_words = the largest index (9 + 3 = 12), which is then itself oov (2).
    assert x_train.tolist() == [[1, 4, 4, 9, 10], [1, 4, 5, 6], [1, 7, 8]]
    assert y_train.tolist() == [0, 0, 1]
    assert x_test.tolist() == [[1, 2], [1, 5, 11]] and y_test.tolist() == [0, 1]
    assert x_train.dtype == object and x_train.shape == (3,) and type(x_train[0][0]) is int
    assert y_train.dtype == np.int64

    # num_words=7, skip_top=5: indices outside 5 <= w < 7 (start_char 1 included) become oov_char 0;
    # maxlen=5 drops, not truncates, reviews of 5 marks or more; index_from=2.
    (x_train, y_train), (x_test, _) = imdb.load_data(num_words=7, skip_top=5, maxlen=5, oov_char=0, index_from=2)
    assert x_train.tolist() == [[0, 0, 0, 5], [0, 6, 0]] and y_train.tolist() == [0, 1]
    assert x_test.tolist() == [[0, 0], [0, 0, 0]]

    # No start mark, oov dropped, no shift.
    (x_train, _), _ = imdb.load_data(start_char=None, oov_char=None, index_from=0, num_words=5)
    assert x_train.tolist() == [[1, 1], [1, 2, 3], [4]]


@pytest.mark.parametrize("knobs", [
    {},
    {"num_words": 20, "skip_top": 3},
    {"maxlen": 8, "seed": 7},
    {"start_char": None, "oov_char": None, "index_from": 0},
    {"start_char": 5, "oov_char": 9, "index_from": 10, "num_words": 30, "skip_top": 12, "maxlen": 10, "seed": 0},
])
def test_imdb_matches_keras_rules_on_random_data(monkeypatch, tmp_path, knobs):
    train, test = random_corpus(30, 1), random_corpus(20, 2)
    supply_imdb(monkeypatch, tmp_path, train, test)
    (x_train, y_train), (x_test, y_test) = imdb.load_data(**knobs)

    rng = np.random.RandomState(knobs.get("seed", 113))
    order_train, order_test = np.arange(30), np.arange(20)
    rng.shuffle(order_train)
    rng.shuffle(order_test)
    xs = [train[0][i] for i in order_train] + [test[0][i] for i in order_test]
    labels = train[1][order_train].tolist() + test[1][order_test].tolist()
    is_train = [True] * 30 + [False] * 20
    args = {k: knobs.get(k, d) for k, d in (("num_words", None), ("skip_top", 0), ("maxlen", None),
                                              ("start_char", 1), ("oov_char", 2), ("index_from", 3))}
    # Keras filters train and test by maxlen separately but takes num_words over both: tag, filter, split.
    tagged, kept_labels = keras_sequences(xs, list(zip(labels, is_train)), **args)
    expected_train = [x for x, (_, t) in zip(tagged, kept_labels) if t]
    expected_test = [x for x, (_, t) in zip(tagged, kept_labels) if not t]
    assert x_train.tolist() == expected_train and x_test.tolist() == expected_test
    assert y_train.tolist() == [y for y, t in kept_labels if t]
    assert y_test.tolist() == [y for y, t in kept_labels if not t]


def test_imdb_same_seed_same_order_other_seed_other_order(monkeypatch, tmp_path):
    supply_imdb(monkeypatch, tmp_path, random_corpus(30, 1), random_corpus(20, 2))
    a, b, c = imdb.load_data(seed=3), imdb.load_data(seed=3), imdb.load_data(seed=4)
    assert a[0][0].tolist() == b[0][0].tolist() and a[1][1].tolist() == b[1][1].tolist()
    assert a[0][0].tolist() != c[0][0].tolist()


def test_imdb_argument_errors(monkeypatch, tmp_path):
    with pytest.raises(TypeError, match=r"unrecognized keyword arguments \['nb_words'\].*nb_words is num_words"):
        imdb.load_data(nb_words=100)
    with pytest.raises(ValueError, match=r"imdb.load_data: `num_words` must be an integer >= 0 or None. Received: num_wo"):
        imdb.load_data(num_words=2.5)
    with pytest.raises(ValueError, match=r"`skip_top` must be an integer >= 0. Received: skip_top=-1"):
        imdb.load_data(skip_top=-1)
    supply_imdb(monkeypatch, tmp_path, ([[1, 2, 3]], [0]), ([[1]], [1]))
    with pytest.raises(ValueError, match=r"maxlen=3, no sequence was kept"):
        imdb.load_data(maxlen=3)


def test_reuters_test_split_knobs_and_names(monkeypatch, tmp_path):
    xs, labels = random_corpus(25, 3)
    labels = np.random.default_rng(3).integers(0, 46, 25).astype(np.int64)
    supply(monkeypatch, tmp_path, "reuters", "reuters.npz", npz(x=object_array(xs), y=labels))
    (x_train, y_train), (x_test, y_test) = reuters.load_data(test_split=0.3, num_words=25, skip_top=2, maxlen=9)

    order = np.arange(25)
    np.random.RandomState(113).shuffle(order)
    expected, kept = keras_sequences([xs[i] for i in order], labels[order].tolist(), num_words=25, skip_top=2,
                                     maxlen=9, start_char=1, oov_char=2, index_from=3)
    split = int(len(expected) * 0.7)
    assert x_train.tolist() == expected[:split] and x_test.tolist() == expected[split:]
    assert y_train.tolist() == kept[:split] and y_test.tolist() == kept[split:]
    assert y_train.dtype == np.int64 and x_train.dtype == object and x_train.ndim == 1

    (x_train, _), (x_test, _) = reuters.load_data(test_split=0)
    assert len(x_train) == 25 and len(x_test) == 0
    with pytest.raises(ValueError, match=r"`test_split` must be a number between 0 and 1. Received: test_split=1.5"):
        reuters.load_data(test_split=1.5)
    names = reuters.get_label_names()
    assert len(names) == 46 and names[3] == "earn" and names[-1] == "lead"


def test_reuters_word_index(monkeypatch, tmp_path):
    supply(monkeypatch, tmp_path, "reuters", "reuters_word_index.json", b'{"the": 1, "of": 2}')
    assert reuters.get_word_index() == {"the": 1, "of": 2}


@pytest.mark.parametrize("loader, name, filename, expected", [
    (cifar10.load_data, "cifar10", "cifar-10-python.tar.gz", "not a readable .tar.gz archive"),
    (imdb.load_data, "imdb", "imdb.npz", "not a readable .npz archive"),
    (boston_housing.load_data, "boston_housing", "boston_housing.npz", "not a readable .npz of numeric arrays"),
    (imdb.get_word_index, "imdb", "imdb_word_index.json", "not JSON"),
])
def test_published_but_unreadable_files_name_the_file(monkeypatch, tmp_path, loader, name, filename, expected):
    path = supply(monkeypatch, tmp_path, name, filename, b"\x1f\x8b not what it should be")
    with pytest.raises(DatasetFormatError, match=expected) as err:
        loader()
    assert str(path) in str(err.value)


def test_npz_lacking_arrays(monkeypatch, tmp_path):
    supply(monkeypatch, tmp_path, "imdb", "imdb.npz", npz(x_train=object_array([[1]])))
    with pytest.raises(DatasetFormatError, match=r"imdb/imdb.npz: lacks the arrays \['y_train', 'x_test', 'y_test'\]"):
        imdb.load_data()


# ---- Boston and California housing -----------------------------------------------------------------

def test_boston_housing_split_and_seed(monkeypatch, tmp_path):
    x = np.arange(20 * 13, dtype=np.float64).reshape(20, 13)
    y = np.arange(20, dtype=np.float64) * 10
    supply(monkeypatch, tmp_path, "boston_housing", "boston_housing.npz", npz(x=x, y=y))
    (x_train, y_train), (x_test, y_test) = boston_housing.load_data()
    assert x_train.shape == (16, 13) and x_test.shape == (4, 13) and y_train.shape == (16,) and y_test.shape == (4,)
    assert x_train.dtype == np.float64 and y_train.dtype == np.float64
    order = np.arange(20)
    np.random.RandomState(113).shuffle(order)
    np.testing.assert_array_equal(np.concatenate([x_train, x_test]), x[order])
    np.testing.assert_array_equal(np.concatenate([y_train, y_test]), y[order])

    (x_a, _), _ = boston_housing.load_data(test_split=0.25, seed=5)
    (x_b, _), (x_b_test, _) = boston_housing.load_data(test_split=0.25, seed=5)
    assert len(x_a) == 15 and len(x_b_test) == 5
    np.testing.assert_array_equal(x_a, x_b)
    (x_c, _), _ = boston_housing.load_data(test_split=0.25, seed=6)
    assert not np.array_equal(x_a, x_c)
    with pytest.raises(ValueError, match=r"boston_housing.load_data: invalid `test_split` argument: 1"):
        boston_housing.load_data(test_split=1)


def test_california_housing_versions(monkeypatch, tmp_path):
    x = np.random.default_rng(0).random((700, 8)).astype(np.float32)
    y = np.arange(700, dtype=np.float32)
    supply(monkeypatch, tmp_path, "california_housing", "california_housing.npz", npz(x=x, y=y))
    (x_train, y_train), (x_test, y_test) = california_housing.load_data()
    assert x_train.shape == (560, 8) and x_test.shape == (140, 8) and x_train.dtype == np.float32
    (x_train, y_train), (x_test, y_test) = california_housing.load_data(version="small", test_split=0.5, seed=1)
    assert x_train.shape == (300, 8) and x_test.shape == (300, 8)
    assert sorted(np.concatenate([y_train, y_test]).tolist()) == list(range(600))  # the first 600 rows
    with pytest.raises(ValueError, match=r"`version` must be one of 'small', 'large'. Received: version='tiny'"):
        california_housing.load_data(version="tiny")


def test_housing_npz_with_the_wrong_width(monkeypatch, tmp_path):
    supply(monkeypatch, tmp_path, "boston_housing", "boston_housing.npz", npz(x=np.zeros((3, 8)), y=np.zeros(3)))
    with pytest.raises(DatasetFormatError, match=r"x \(3, 8\) and y \(3,\); expected \(n, 13\) and \(n,\)"):
        boston_housing.load_data()


# ---- the public names ------------------------------------------------------------------------------

def test_keras_names():
    import dlgpu as keras

    for module in ("cifar10", "cifar100", "imdb", "reuters", "boston_housing", "california_housing"):
        assert callable(getattr(keras.datasets, module).load_data), module
    assert callable(keras.datasets.imdb.get_word_index) and callable(keras.datasets.reuters.get_word_index)
    assert callable(keras.datasets.reuters.get_label_names)
    assert issubclass(DatasetChecksumError, ValueError)
    assert issubclass(keras.datasets.IDXFormatError, DatasetFormatError)
