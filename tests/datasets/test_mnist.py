"""dlgpu.datasets: the real MNIST files, the IDX reader's errors, DLGPU_DATASETS, the cache and the download.

The real files are found through DLGPU_DATASETS (CI sets it to ../shared/data; a relative value is
taken relative to the repository root).  Without it the real-data tests skip.  No test touches the
network: urlopen is replaced by a stub that fails unless a test installs its own, and the cache is a
temporary directory.
"""

from __future__ import annotations

import gzip
import http.client
import io
import logging
import os
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest

import dlgpu.datasets
from dlgpu.datasets import DatasetNotFoundError, IDXFormatError, _files, fashion_mnist, mnist
from dlgpu.datasets._idx import IMAGES_MAGIC, LABELS_MAGIC, parse_idx

FILES = _files.FILES

# Published class counts of MNIST (train, test).
MNIST_TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
MNIST_TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


def _no_network(url, timeout=None):
    raise urllib.error.URLError(f"network disabled in tests ({url})")


@pytest.fixture(autouse=True)
def isolated(monkeypatch, tmp_path):
    """No DLGPU_DATASETS, a temporary cache, no network, and no parse cached from another test."""
    monkeypatch.delenv("DLGPU_DATASETS", raising=False)
    monkeypatch.setenv("DLGPU_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(_files, "urlopen", _no_network)
    _files._parse.cache_clear()
    yield
    _files._parse.cache_clear()




def cache_dir(tmp_path, name):
    return tmp_path / "cache" / "datasets" / name


# ---- synthetic IDX files ---------------------------------------------------------------------------

def idx_bytes(magic, array):
    array = np.asarray(array, dtype=np.uint8)
    header = magic.to_bytes(4, "big") + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    return header + array.tobytes()


def synthetic_split(n_train=7, n_test=3, seed=0):
    rng = np.random.default_rng(seed)
    x_train = rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8)
    y_train = rng.integers(0, 10, n_train, dtype=np.uint8)
    x_test = rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8)
    y_test = rng.integers(0, 10, n_test, dtype=np.uint8)
    return (x_train, y_train), (x_test, y_test)


def synthetic_files(split):
    """File name -> gzip bytes of the four IDX files holding ``split``."""
    (x_train, y_train), (x_test, y_test) = split
    raw = {
        _files.TRAIN_IMAGES: idx_bytes(IMAGES_MAGIC, x_train),
        _files.TRAIN_LABELS: idx_bytes(LABELS_MAGIC, y_train),
        _files.TEST_IMAGES: idx_bytes(IMAGES_MAGIC, x_test),
        _files.TEST_LABELS: idx_bytes(LABELS_MAGIC, y_test),
    }
    return {name: gzip.compress(data, mtime=0) for name, data in raw.items()}


def write_files(directory, files):
    directory.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        (directory / name).write_bytes(data)


def md5_table(files):
    import hashlib

    return {name: hashlib.md5(data).hexdigest() for name, data in files.items()}


def assert_split_equal(got, expected):
    for g, e in zip((*got[0], *got[1]), (*expected[0], *expected[1])):
        assert g.dtype == np.uint8 and g.shape == e.shape
        np.testing.assert_array_equal(g, e)


class FakeServer:
    """Stands in for urlopen: serves ``files`` under ``base``, 404 elsewhere, and records the URLs asked for."""

    def __init__(self, base, files):
        self.base, self.files, self.requests = base, files, []

    def __call__(self, url, timeout=None):
        self.requests.append(url)
        name = url[len(self.base):] if url.startswith(self.base) else None
        if name not in self.files:
            raise urllib.error.HTTPError(url, 404, "Not Found", {}, io.BytesIO(b""))
        return io.BytesIO(self.files[name])


# ---- the real MNIST files --------------------------------------------------------------------------

def test_real_mnist_matches_keras_contract(real_mnist_root, monkeypatch):
    monkeypatch.setenv("DLGPU_DATASETS", str(real_mnist_root))
    (x_train, y_train), (x_test, y_test) = mnist.load_data()
    assert x_train.shape == (60000, 28, 28) and x_test.shape == (10000, 28, 28)
    assert y_train.shape == (60000,) and y_test.shape == (10000,)
    for a in (x_train, y_train, x_test, y_test):
        assert a.dtype == np.uint8 and a.flags.writeable and a.flags.c_contiguous
    assert x_train.min() == 0 and x_train.max() == 255 and x_test.min() == 0 and x_test.max() == 255
    assert np.bincount(y_train, minlength=10).tolist() == MNIST_TRAIN_COUNTS
    assert np.bincount(y_test, minlength=10).tolist() == MNIST_TEST_COUNTS
    assert y_train[:10].tolist() == [5, 0, 4, 1, 9, 2, 1, 3, 1, 4]  # the well-known first labels

    # Keras hands out new arrays each call: writing into one result leaves the next untouched.
    x_train[:] = 0
    y_train[:] = 0
    (x_again, y_again), _ = mnist.load_data()
    assert x_again.max() == 255 and np.bincount(y_again).tolist() == MNIST_TRAIN_COUNTS


def test_real_files_match_the_checksum_table(real_mnist_root):
    for name in FILES:
        assert _files.file_md5(real_mnist_root / "mnist" / name) == mnist.MD5[name], name


def test_download_from_mirror_into_cache_atomically(real_mnist_root, monkeypatch, tmp_path):
    # A file:// mirror with the real bytes, after one that does not exist: the first fails, the second serves.
    missing = tmp_path / "no-such-mirror"
    monkeypatch.setattr(mnist, "MIRRORS", [missing.as_uri() + "/", (real_mnist_root / "mnist").as_uri() + "/"])
    monkeypatch.setattr(_files, "urlopen", urllib.request.urlopen)
    (x_train, y_train), (x_test, y_test) = mnist.load_data()
    assert x_train.shape == (60000, 28, 28) and np.bincount(y_test).tolist() == MNIST_TEST_COUNTS

    cached = cache_dir(tmp_path, "mnist")
    assert sorted(p.name for p in cached.iterdir()) == sorted(FILES)  # no .part left behind
    for name in FILES:
        assert _files.file_md5(cached / name) == mnist.MD5[name]

    # Second load, offline and with a fresh parse: read from the cache, nothing downloaded.
    monkeypatch.setattr(_files, "urlopen", _no_network)
    _files._parse.cache_clear()
    (x2, _), _ = mnist.load_data()
    np.testing.assert_array_equal(x2, x_train)


# ---- downloads: checksums and offline --------------------------------------------------------------

def test_checksum_mismatch_deletes_partial_and_tries_next_mirror(monkeypatch, tmp_path, caplog):
    split = synthetic_split()
    good = synthetic_files(split)
    bad = {name: data[:-5] + b"xxxxx" for name, data in good.items()}
    for name in FILES:
        monkeypatch.setitem(mnist.MD5, name, md5_table(good)[name])
    bad_server, good_server = FakeServer("https://bad/", bad), FakeServer("https://good/", good)
    monkeypatch.setattr(mnist, "MIRRORS", ["https://bad/", "https://good/"])
    monkeypatch.setattr(_files, "urlopen", lambda url, timeout=None: (bad_server if url.startswith("https://bad/") else good_server)(url))

    with caplog.at_level(logging.WARNING, logger="dlgpu"):
        got = mnist.load_data()
    assert_split_equal(got, split)
    assert "checksum mismatch" in caplog.text and "deleted the partial download" in caplog.text
    assert sorted(p.name for p in cache_dir(tmp_path, "mnist").iterdir()) == sorted(FILES)


def test_checksum_mismatch_on_every_mirror_leaves_nothing(monkeypatch, tmp_path):
    good = synthetic_files(synthetic_split())
    for name in FILES:
        monkeypatch.setitem(mnist.MD5, name, md5_table(good)[name])
    corrupted = {name: b"\x1f\x8b" + data[2:-1] for name, data in good.items()}
    monkeypatch.setattr(mnist, "MIRRORS", ["https://only/"])
    monkeypatch.setattr(_files, "urlopen", FakeServer("https://only/", corrupted))

    with pytest.raises(DatasetNotFoundError) as err:
        mnist.load_data()
    message = str(err.value)
    assert "https://only/train-images-idx3-ubyte.gz: checksum mismatch" in message
    assert "deleted the partial download" in message
    assert list(cache_dir(tmp_path, "mnist").iterdir()) == []


class _DroppedConnection(io.BytesIO):
    """A response that delivers some bytes, then fails with ``exc``."""

    def __init__(self, exc):
        super().__init__(b"\x1f\x8b partial bytes")
        self.exc, self.calls = exc, 0

    def read(self, n=-1):
        self.calls += 1
        if self.calls > 1:
            raise self.exc
        return super().read(n)


@pytest.mark.parametrize(
    "exc, raised",
    [(http.client.IncompleteRead(b"abc", 100), DatasetNotFoundError), (KeyboardInterrupt(), KeyboardInterrupt)],
)
def test_interrupted_download_leaves_no_partial_file(monkeypatch, tmp_path, exc, raised):
    monkeypatch.setattr(_files, "urlopen", lambda url, timeout=None: _DroppedConnection(exc))
    with pytest.raises(raised):
        mnist.load_data()
    assert list(cache_dir(tmp_path, "mnist").iterdir()) == []


def test_offline_error_says_which_files_go_where(monkeypatch, tmp_path):
    monkeypatch.setattr(_files, "urlopen", _no_network)
    with pytest.raises(DatasetNotFoundError) as err:
        mnist.load_data()
    assert isinstance(err.value, FileNotFoundError)
    message = str(err.value)
    target = cache_dir(tmp_path, "mnist")
    assert f"Put these files in {target}:" in message
    for name in FILES:
        assert name in message
    for mirror in mnist.MIRRORS:
        assert mirror + _files.TRAIN_IMAGES in message and "network disabled in tests" in message
    assert "DLGPU_DATASETS" in message
    assert list(target.iterdir()) == []  # no partial file from the failed attempts


def test_http_error_is_reported_per_mirror(monkeypatch):
    monkeypatch.setattr(fashion_mnist, "MIRRORS", ["https://a/", "https://b/"])
    monkeypatch.setattr(_files, "urlopen", FakeServer("https://a/", {}))
    with pytest.raises(DatasetNotFoundError, match=r"(?s)https://a/train-images-idx3-ubyte.gz: HTTPError: HTTP Error 404.*"
                       r"https://b/train-images-idx3-ubyte.gz: HTTPError: HTTP Error 404"):
        fashion_mnist.load_data()


# ---- DLGPU_DATASETS --------------------------------------------------------------------------------

def test_dlgpu_datasets_empty_dir_errors_without_downloading(monkeypatch, tmp_path):
    root = tmp_path / "datasets"
    root.mkdir()
    monkeypatch.setenv("DLGPU_DATASETS", str(root))
    server = FakeServer("https://x/", {})
    monkeypatch.setattr(_files, "urlopen", server)
    with pytest.raises(DatasetNotFoundError) as err:
        mnist.load_data()
    message = str(err.value)
    assert "DLGPU_DATASETS is set" in message and str(root / "mnist") in message and "does not exist" in message
    assert all(name in message for name in FILES)
    assert server.requests == []


def test_dlgpu_datasets_lists_only_the_missing_files(monkeypatch, tmp_path):
    files = synthetic_files(synthetic_split())
    write_files(tmp_path / "d" / "fashion_mnist", {_files.TRAIN_IMAGES: files[_files.TRAIN_IMAGES]})
    monkeypatch.setenv("DLGPU_DATASETS", str(tmp_path / "d"))
    with pytest.raises(DatasetNotFoundError, match="lacks 3 of the 4 files") as err:
        fashion_mnist.load_data()
    listed = str(err.value).split("Put these files in", 1)[1]
    assert _files.TRAIN_IMAGES not in listed
    assert all(name in listed for name in FILES[1:])


def test_dlgpu_datasets_files_are_used_and_reparsed_when_replaced(monkeypatch, tmp_path):
    directory = tmp_path / "d" / "mnist"
    first, second = synthetic_split(seed=1), synthetic_split(n_train=5, seed=2)
    write_files(directory, synthetic_files(first))
    monkeypatch.setenv("DLGPU_DATASETS", str(tmp_path / "d"))
    assert_split_equal(mnist.load_data(), first)
    write_files(directory, synthetic_files(second))
    os.utime(directory / _files.TRAIN_IMAGES, ns=(0, 0))  # a different stamp even on coarse file systems
    assert_split_equal(mnist.load_data(), second)


# ---- corrupt, truncated and foreign files ----------------------------------------------------------

def corrupt_case(monkeypatch, tmp_path, name, data):
    """DLGPU_DATASETS/mnist holding good synthetic files except ``name``, which holds ``data``."""
    files = synthetic_files(synthetic_split())
    files[name] = data
    write_files(tmp_path / "d" / "mnist", files)
    monkeypatch.setenv("DLGPU_DATASETS", str(tmp_path / "d"))
    return tmp_path / "d" / "mnist" / name


def test_truncated_gzip_names_the_file(monkeypatch, tmp_path):
    good = synthetic_files(synthetic_split())[_files.TRAIN_IMAGES]
    path = corrupt_case(monkeypatch, tmp_path, _files.TRAIN_IMAGES, good[: len(good) // 2])
    with pytest.raises(IDXFormatError, match="truncated or corrupt") as err:
        mnist.load_data()
    assert str(path) in str(err.value)


def test_not_gzip_names_the_file(monkeypatch, tmp_path):
    raw = idx_bytes(LABELS_MAGIC, np.zeros(7, np.uint8))  # an uncompressed IDX file under the .gz name
    path = corrupt_case(monkeypatch, tmp_path, _files.TRAIN_LABELS, raw)
    with pytest.raises(IDXFormatError, match="not a readable gzip file") as err:
        mnist.load_data()
    assert str(path) in str(err.value)


def test_truncated_data_inside_valid_gzip(monkeypatch, tmp_path):
    raw = idx_bytes(IMAGES_MAGIC, np.zeros((3, 28, 28), np.uint8))[:-100]
    path = corrupt_case(monkeypatch, tmp_path, _files.TEST_IMAGES, gzip.compress(raw))
    with pytest.raises(IDXFormatError) as err:
        mnist.load_data()
    assert str(path) in str(err.value)
    assert "truncated: the header declares (3, 28, 28) = 2352 bytes of data, but only 2252 follow it" in str(err.value)


def test_bad_magic_labels_file_in_place_of_images(monkeypatch, tmp_path):
    labels = synthetic_files(synthetic_split())[_files.TRAIN_LABELS]
    path = corrupt_case(monkeypatch, tmp_path, _files.TRAIN_IMAGES, labels)
    with pytest.raises(IDXFormatError) as err:
        mnist.load_data()
    assert str(path) in str(err.value)
    assert "bad magic number 2049 (0x00000801); expected 2051 (0x00000803, an unsigned-byte images file)" in str(err.value)


@pytest.mark.parametrize(
    "name, raw, expected",
    [
        (_files.TRAIN_IMAGES, idx_bytes(IMAGES_MAGIC, np.zeros((7, 32, 32))), "dimensions (7, 32, 32), expected (any, 28, 28)"),
        (_files.TRAIN_LABELS, idx_bytes(LABELS_MAGIC, np.zeros(7)) + b"\0\0", "2 unexpected bytes after the 7 bytes"),
        (_files.TRAIN_LABELS, idx_bytes(LABELS_MAGIC, np.zeros(6)), "7 images but 6 labels"),
        (_files.TEST_LABELS, idx_bytes(LABELS_MAGIC, [1, 2, 10]), "label 10 out of range"),
        (_files.TEST_LABELS, b"\0\0", "too short for an IDX header"),
    ],
)
def test_malformed_contents(monkeypatch, tmp_path, name, raw, expected):
    corrupt_case(monkeypatch, tmp_path, name, gzip.compress(raw))
    with pytest.raises(IDXFormatError, match=expected.replace("(", r"\(").replace(")", r"\)")):
        mnist.load_data()


def test_parse_idx_returns_the_array():
    a = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    np.testing.assert_array_equal(parse_idx(idx_bytes(IMAGES_MAGIC, a), IMAGES_MAGIC), a)
    with pytest.raises(IDXFormatError, match="truncated in the header"):
        parse_idx(idx_bytes(IMAGES_MAGIC, a)[:10], IMAGES_MAGIC)


# ---- Fashion-MNIST through the mocked download -----------------------------------------------------

def test_fashion_mnist_downloads_verifies_and_loads(monkeypatch, tmp_path):
    split = synthetic_split(n_train=11, n_test=4, seed=3)
    files = synthetic_files(split)
    for name, digest in md5_table(files).items():
        monkeypatch.setitem(fashion_mnist.MD5, name, digest)
    server = FakeServer(fashion_mnist.MIRRORS[0], files)
    monkeypatch.setattr(_files, "urlopen", server)

    got = fashion_mnist.load_data()
    assert_split_equal(got, split)
    assert server.requests == [fashion_mnist.MIRRORS[0] + name for name in FILES]
    cached = cache_dir(tmp_path, "fashion_mnist")
    assert sorted(p.name for p in cached.iterdir()) == sorted(FILES)
    assert md5_table({p.name: p.read_bytes() for p in cached.iterdir()}) == md5_table(files)

    # Loaded again: from the cache, no new request.
    assert_split_equal(fashion_mnist.load_data(), split)
    assert len(server.requests) == 4


def test_fashion_mnist_checksum_table_is_the_published_one():
    # Zalando Research's published MD5s (github.com/zalandoresearch/fashion-mnist README).
    assert fashion_mnist.MD5 == {
        "train-images-idx3-ubyte.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
        "train-labels-idx1-ubyte.gz": "25c81989df183df01b3e8a0aad5dffbe",
        "t10k-images-idx3-ubyte.gz": "bef4ecab320f06d8554ea6380940ec79",
        "t10k-labels-idx1-ubyte.gz": "bb300cfdad3c16e7a12a480ee83cd310",
    }


# ---- the Keras path argument and the cache location ------------------------------------------------

def test_mnist_path_loads_a_keras_npz(monkeypatch, tmp_path):
    split = synthetic_split(seed=4)
    (x_train, y_train), (x_test, y_test) = split
    npz = tmp_path / "elsewhere" / "my_mnist.npz"
    npz.parent.mkdir()
    np.savez(npz, x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test)
    assert_split_equal(mnist.load_data(path=str(npz)), split)

    # A relative name is looked up in the dataset directory, as Keras looks in ~/.keras/datasets.
    directory = tmp_path / "d" / "mnist"
    directory.mkdir(parents=True)
    (directory / "mnist.npz").write_bytes(npz.read_bytes())
    monkeypatch.setenv("DLGPU_DATASETS", str(tmp_path / "d"))
    assert_split_equal(mnist.load_data(), split)


def test_mnist_path_missing_falls_back_to_idx_with_a_warning(monkeypatch, tmp_path, caplog):
    split = synthetic_split(seed=5)
    write_files(tmp_path / "d" / "mnist", synthetic_files(split))
    monkeypatch.setenv("DLGPU_DATASETS", str(tmp_path / "d"))
    with caplog.at_level(logging.WARNING, logger="dlgpu"):
        assert_split_equal(mnist.load_data(path="custom.npz"), split)
    assert "custom.npz" in caplog.text and "loading the IDX files instead" in caplog.text


def test_mnist_npz_with_wrong_contents(tmp_path):
    npz = tmp_path / "bad.npz"
    np.savez(npz, x_train=np.zeros((2, 28, 28), np.uint8))
    with pytest.raises(IDXFormatError, match="lacks the arrays"):
        mnist.load_data(path=str(npz))


def test_cache_root_follows_xdg(monkeypatch, tmp_path):
    monkeypatch.delenv("DLGPU_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert _files.dataset_dir("mnist") == (tmp_path / "xdg" / "dlgpu" / "datasets" / "mnist", False)
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/ignored")
    assert _files.cache_root() == Path.home() / ".cache" / "dlgpu"
    monkeypatch.setenv("DLGPU_CACHE", str(tmp_path / "c"))
    assert _files.cache_root() == tmp_path / "c"


def test_package_exposes_the_loaders():
    assert dlgpu.datasets.mnist.load_data is mnist.load_data
    assert dlgpu.datasets.fashion_mnist.load_data is fashion_mnist.load_data
