"""dlgpu.utils.get_file with file:// URLs and local archives (no network): cache, hashes, extraction."""

import hashlib
import io
import os
import tarfile
import urllib.request
import zipfile

import pytest

from dlgpu.datasets import _files
from dlgpu.utils import get_file

DATA = b"a,b\n1,2\n"


@pytest.fixture
def source(tmp_path):
    path = tmp_path / "remote" / "table.csv"
    path.parent.mkdir()
    path.write_bytes(DATA)
    return path


def _count_downloads(monkeypatch):
    calls = []

    def counting(url, timeout=None):
        calls.append(url)
        return urllib.request.urlopen(url, timeout=timeout)
    monkeypatch.setattr(_files, "urlopen", counting)
    return calls


@pytest.mark.parametrize("algorithm", ["md5", "sha256"])
def test_downloads_once_verifies_and_redownloads_a_corrupt_copy(tmp_path, source, monkeypatch, algorithm):
    calls = _count_downloads(monkeypatch)
    digest = hashlib.new(algorithm, DATA).hexdigest()
    cache = tmp_path / "cache"
    path = get_file("t.csv", source.as_uri(), file_hash=digest, cache_dir=cache)
    assert path == os.path.join(cache, "datasets", "t.csv") and open(path, "rb").read() == DATA
    assert get_file("t.csv", source.as_uri(), file_hash=digest, cache_dir=cache) == path and len(calls) == 1
    with open(path, "ab") as f:  # a cached file that no longer matches its hash is fetched again
        f.write(b"junk")
    get_file("t.csv", source.as_uri(), file_hash=digest, hash_algorithm=algorithm, cache_dir=cache)
    assert open(path, "rb").read() == DATA and len(calls) == 2
    get_file("t.csv", source.as_uri(), cache_dir=cache, force_download=True)
    assert len(calls) == 3
    get_file("t.csv", source.as_uri(), cache_dir=cache)  # no hash: a cached file is used as it is
    assert len(calls) == 3


def test_name_from_url_subdir_and_md5_hash_alias(tmp_path, source):
    path = get_file(origin=source.as_uri(), cache_subdir="mine", cache_dir=tmp_path / "c",
                    md5_hash=hashlib.md5(DATA).hexdigest())
    assert path == os.path.join(tmp_path / "c", "mine", "table.csv")


def test_wrong_hash_keeps_no_file(tmp_path, source):
    with pytest.raises(ValueError, match="corrupted file.*checksum mismatch .sha256 [0-9a-f]{64}, expected 0{64}"):
        get_file("t.csv", source.as_uri(), file_hash="0" * 64, cache_dir=tmp_path)
    assert os.listdir(tmp_path / "datasets") == []
    with pytest.raises(ValueError, match="32 .MD5. or 64 .SHA-256."):
        get_file("t.csv", source.as_uri(), file_hash="abc", cache_dir=tmp_path)


def test_bad_arguments_and_unreachable_origin(tmp_path, source):
    with pytest.raises(ValueError, match="origin"):
        get_file("t.csv", cache_dir=tmp_path)
    with pytest.raises(ValueError, match="cache_dir"):
        get_file(os.path.join("sub", "t.csv"), source.as_uri(), cache_dir=tmp_path)
    with pytest.raises(ValueError, match="hash_algorithm"):
        get_file("t.csv", source.as_uri(), hash_algorithm="sha1", cache_dir=tmp_path)
    missing = (tmp_path / "nowhere.csv").as_uri()
    with pytest.raises(OSError, match="URL fetch failure on " + missing):
        get_file("x.csv", missing, cache_dir=tmp_path)
    assert os.listdir(tmp_path / "datasets") == []


def _zip(path, members):
    with zipfile.ZipFile(path, "w") as z:
        for name, data in members.items():
            z.writestr(name, data)


def _tar(path, members):
    with tarfile.open(path, "w:gz") as t:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            t.addfile(info, io.BytesIO(data))


@pytest.mark.parametrize("make, suffix", [(_zip, ".zip"), (_tar, ".tar.gz")])
def test_extracts_archives_where_keras_does(tmp_path, make, suffix):
    archive = tmp_path / f"data{suffix}"
    make(archive, {"data/a.txt": b"A", "data/sub/b.txt": b"B"})
    out = get_file(f"data{suffix}", archive.as_uri(), extract=True, cache_dir=tmp_path / "c")
    assert out == os.path.join(tmp_path / "c", "datasets", "data_extracted")
    assert open(os.path.join(out, "data", "sub", "b.txt"), "rb").read() == b"B"
    # Without fname: the archive is kept as <name>_archive and extracted to <name>.
    out = get_file(origin=archive.as_uri(), extract=True, cache_dir=tmp_path / "d")
    assert out == os.path.join(tmp_path / "d", "datasets", f"data{suffix}")
    assert os.path.isfile(out + "_archive") and os.path.isfile(os.path.join(out, "data", "a.txt"))


def test_untar_and_members_outside_the_directory_are_skipped(tmp_path):
    archive = tmp_path / "evil.tar.gz"
    _tar(archive, {"ok.txt": b"fine", "../escaped.txt": b"bad"})
    with pytest.warns(UserWarning, match="escaped.txt"):
        out = get_file("evil.tgz", archive.as_uri(), untar=True, cache_dir=tmp_path / "c")
    assert os.listdir(out) == ["ok.txt"] and not (tmp_path / "c" / "datasets" / "escaped.txt").exists()
    plain = tmp_path / "plain.bin"
    plain.write_bytes(b"not an archive")
    with pytest.warns(UserWarning, match="could not extract"):
        get_file("plain.bin", plain.as_uri(), extract=True, cache_dir=tmp_path / "e")


def test_default_cache_is_dlgpus(tmp_path, source, monkeypatch):
    monkeypatch.setenv("DLGPU_CACHE", str(tmp_path / "dl"))
    assert get_file("t.csv", source.as_uri()) == os.path.join(tmp_path / "dl", "datasets", "t.csv")
