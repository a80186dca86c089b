"""Finding, downloading and verifying the files of a dataset; loading the four IDX files of MNIST-style ones.

Where the files come from, in order:

1. ``$DLGPU_DATASETS/<name>/`` when ``DLGPU_DATASETS`` is set.  This is an explicit instruction, so
   nothing is downloaded: missing files are an error that lists them.
2. The cache, ``<cache>/datasets/<name>/``, where ``<cache>`` is ``$DLGPU_CACHE``, else
   ``$XDG_CACHE_HOME/dlgpu``, else ``~/.cache/dlgpu``.  (Keras uses ``~/.keras/datasets``; we
   follow the XDG base-directory convention instead.)
3. A download from the dataset's mirrors into that cache, tried in order, each file checked against
   its published checksum (MD5, or SHA-256 as Keras publishes; told apart by length as Keras's
   ``get_file`` does) before it is renamed into place, so the cache never holds a partial file.
   A file that is present is never downloaded again.

For the IDX files, checksums guard only the download: files found in the directories above are not
re-hashed (a user may hold a re-compressed copy with the same content); the IDX reader validates them
structurally.  The Keras-distributed files (``read_keras_file``) are different: some hold pickles,
which must not be read unless they are byte for byte the published file, so they are hashed on every
load, wherever they come from.
"""

from __future__ import annotations

import functools
import hashlib
import http.client
import json
import logging
import os
import tempfile
import urllib.error
from pathlib import Path
from urllib.request import urlopen

import numpy as np

from . import _checksums
from ._errors import DatasetChecksumError, DatasetFormatError, DatasetNotFoundError
from ._idx import IMAGES_MAGIC, LABELS_MAGIC, IDXFormatError, read_idx_gz

logger = logging.getLogger("dlgpu")

TRAIN_IMAGES = "train-images-idx3-ubyte.gz"
TRAIN_LABELS = "train-labels-idx1-ubyte.gz"
TEST_IMAGES = "t10k-images-idx3-ubyte.gz"
TEST_LABELS = "t10k-labels-idx1-ubyte.gz"
FILES = (TRAIN_IMAGES, TRAIN_LABELS, TEST_IMAGES, TEST_LABELS)

DOWNLOAD_TIMEOUT_S = 60
_CHUNK = 1 << 20


def cache_root():
    """The root of dlgpu's cache: ``$DLGPU_CACHE``, else ``$XDG_CACHE_HOME/dlgpu``, else ``~/.cache/dlgpu``."""
    if os.environ.get("DLGPU_CACHE"):
        return Path(os.environ["DLGPU_CACHE"]).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    # The XDG spec says a relative XDG_CACHE_HOME is invalid and must be ignored.
    if xdg and os.path.isabs(xdg):
        return Path(xdg) / "dlgpu"
    return Path.home() / ".cache" / "dlgpu"


def dataset_dir(name):
    """The directory the files of dataset ``name`` are read from, and whether it came from DLGPU_DATASETS."""
    if os.environ.get("DLGPU_DATASETS"):
        return Path(os.environ["DLGPU_DATASETS"]).expanduser() / name, True
    return cache_root() / "datasets" / name, False


def _how_to_supply(name, directory, missing, n_files):
    holds = "all its files" if n_files > 1 else "it"
    return (
        f"Put these files in {directory}:\n"
        + "".join(f"    {f}\n" for f in missing)
        + f"or set DLGPU_DATASETS to a directory whose '{name}/' subdirectory holds {holds} "
        "(dlgpu then reads only from there and never downloads)."
    )


def fetch(name, checksums, mirrors, files=FILES, *, remote=None, directory=None):
    """Return the local paths of ``files`` of dataset ``name``, downloading the missing ones.

    ``checksums`` maps each file name to its expected MD5 or SHA-256 hex digest; ``mirrors`` are base
    URLs ending in "/".  ``remote`` maps a local file name to the name it has on the mirrors (Keras
    lets ``path=`` rename the local copy); ``directory`` replaces the dataset directory (an absolute
    ``path=``).  Missing files are downloaded unless DLGPU_DATASETS is set.
    """
    default_dir, explicit = dataset_dir(name)
    directory = default_dir if directory is None else directory
    remote = remote or {}
    paths = {f: directory / f for f in files}
    missing = [f for f in files if not paths[f].is_file()]
    if not missing:
        return paths
    if explicit:
        if not directory.is_dir():
            state = "does not exist"
        elif len(files) == 1:
            state = f"lacks {files[0]}"
        else:
            state = f"lacks {len(missing)} of the {len(files)} files"
        raise DatasetNotFoundError(
            f"DLGPU_DATASETS is set ({os.environ['DLGPU_DATASETS']!r}), so the {name} files are read only from "
            f"{directory}, which {state}; nothing is downloaded when DLGPU_DATASETS is set.\n"
            f"Put these files in {directory}:\n"
            + "".join(f"    {f}\n" for f in missing)
            + "or unset DLGPU_DATASETS to use the cache and download them."
        )
    try:
        for f in missing:
            paths[f].parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise DatasetNotFoundError(
            f"Cannot create the cache directory {directory} to download {name} into ({e}). "
            "Set DLGPU_CACHE to a writable directory, or supply the files yourself. "
            + _how_to_supply(name, directory, missing, len(files))
        ) from e
    failures = []
    for f in missing:
        if not _download(remote.get(f, f), checksums[f], mirrors, paths[f], failures):
            still_missing = [m for m in missing if not paths[m].is_file()]
            raise DatasetNotFoundError(
                f"Could not download {name} file {remote.get(f, f)} (offline, or every mirror failed):\n"
                + "".join(f"    {line}\n" for line in failures)
                + _how_to_supply(name, directory, still_missing, len(files))
            )
    return paths


def new_hasher(expected, algorithm="auto"):
    """A hashlib object for ``expected``: with ``algorithm="auto"``, SHA-256 for 64 hex digits and MD5 for 32,
    as Keras's ``get_file`` decides; ``"md5"`` or ``"sha256"`` choose explicitly."""
    if algorithm not in ("auto", "md5", "sha256"):
        raise ValueError(f"hash algorithm must be 'auto', 'md5' or 'sha256'; received {algorithm!r}.")
    if algorithm == "sha256" or (algorithm == "auto" and len(expected) == 64):
        return hashlib.sha256()
    if algorithm == "md5" or len(expected) == 32:
        return hashlib.md5(usedforsecurity=False)
    raise ValueError(f"checksum {expected!r}: expected 32 (MD5) or 64 (SHA-256) hex digits, got {len(expected)}.")


def _algorithm(hasher):
    return "sha256" if hasher.name == "sha256" else "md5"


class ChecksumMismatch(ValueError):
    """A downloaded file did not have the expected checksum (it was deleted)."""


def download_url(url, dest, expected=None, algorithm="auto"):
    """Download ``url`` to ``dest`` (a Path), checked against ``expected`` (a hex digest, or None for no check)
    before it is renamed into place, so ``dest`` is never a partial or unverified file.  Raises
    ChecksumMismatch, or what urlopen and the disk raise (URLError, HTTPException, OSError, ValueError)."""
    logger.info("Downloading %s", url)
    # The temporary file sits beside the destination so that os.replace is an atomic rename.
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
    try:
        # Keras publishes no checksum for some files (MobileNetV2's weights): ``expected=None`` downloads
        # them unverified, as Keras's ``get_file(file_hash=None)`` does.
        digest = new_hasher(expected, algorithm) if expected is not None else hashlib.sha256()
        with os.fdopen(fd, "wb") as out, urlopen(url, timeout=DOWNLOAD_TIMEOUT_S) as response:
            while chunk := response.read(_CHUNK):
                digest.update(chunk)
                out.write(chunk)
            out.flush()
            os.fsync(out.fileno())
        if expected is not None and digest.hexdigest() != expected:
            raise ChecksumMismatch(f"{url}: checksum mismatch ({_algorithm(digest)} {digest.hexdigest()}, expected "
                                   f"{expected}); deleted the partial download")
        os.replace(tmp, dest)
    finally:
        # Whatever happened (Ctrl-C included), no partial file stays in the cache.
        if os.path.exists(tmp):
            os.unlink(tmp)


def _download(filename, expected, mirrors, dest, failures):
    """Try each mirror in turn; on success the verified file is at ``dest``. Appends reasons to ``failures``."""
    for base in mirrors:
        url = base + filename
        try:
            download_url(url, dest, expected)
            return True
        except ChecksumMismatch as e:
            logger.warning(str(e))
            failures.append(str(e))
        except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError) as e:
            # URLError: no network or DNS; HTTPError (a URLError): 404 and friends; HTTPException:
            # IncompleteRead when the connection drops; OSError: timeouts, resets, disk full;
            # ValueError: a malformed mirror URL.
            failures.append(f"{url}: {type(e).__name__}: {e}")
    return False


def read_keras_file(name, remote_name, path=None):
    """The local path and verified bytes of one file Keras distributes for dataset ``name`` (see ``_checksums``).

    ``path`` is Keras's ``path=`` argument: the local file name, relative to the dataset directory, or
    an absolute path; by default the file keeps its name on the mirror.  The file is fetched if missing
    (as ``fetch`` does), then read whole and hashed; the bytes are returned only if they match the
    published checksum, so a caller may unpickle them.  Hashing the very bytes that are returned leaves
    no window for the file to change between the check and the read.
    """
    expected = _checksums.CHECKSUMS[name][remote_name]
    mirrors = _checksums.MIRRORS[name]
    local = Path(os.fspath(remote_name if path is None else path)).expanduser()
    directory = None
    if local.is_absolute():
        directory, local = local.parent, Path(local.name)
    local = str(local)
    paths = fetch(name, {local: expected}, mirrors, (local,), remote={local: remote_name}, directory=directory)
    file_path = paths[local]
    data = file_path.read_bytes()
    digest = new_hasher(expected)
    digest.update(data)
    if digest.hexdigest() != expected:
        url = mirrors[0] + remote_name
        raise DatasetChecksumError(
            f"{file_path}: {_algorithm(digest)} {digest.hexdigest()} does not match the published {expected} of "
            f"{remote_name} ({name}), so it is not read: it is truncated, corrupt, or another file. "
            f"Delete it (the next load downloads it again unless DLGPU_DATASETS is set) or replace it "
            f"with the file from {url}."
        )
    return file_path, data


def read_keras_json(name, remote_name, path=None):
    """The JSON object in a verified Keras file (the word indexes)."""
    file_path, data = read_keras_file(name, remote_name, path)
    try:
        value = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise DatasetFormatError(f"{file_path}: not JSON ({e}).") from e
    if not isinstance(value, dict):
        raise DatasetFormatError(f"{file_path}: expected a JSON object, found {type(value).__name__}.")
    return value


def _check_split(images, labels, source):
    if images.shape[0] != labels.shape[0]:
        raise IDXFormatError(f"{source}: {images.shape[0]} images but {labels.shape[0]} labels.")
    if labels.size and labels.max() > 9:
        raise IDXFormatError(f"{source}: label {int(labels.max())} out of range; these datasets have classes 0-9.")


@functools.lru_cache(maxsize=4)
def _parse(files_key):
    """Parse the four files once per process; ``files_key`` holds (path, mtime_ns, size) so edits invalidate it."""
    p = {Path(path).name: path for path, _, _ in files_key}
    x_train = read_idx_gz(p[TRAIN_IMAGES], IMAGES_MAGIC, (None, 28, 28))
    y_train = read_idx_gz(p[TRAIN_LABELS], LABELS_MAGIC, (None,))
    x_test = read_idx_gz(p[TEST_IMAGES], IMAGES_MAGIC, (None, 28, 28))
    y_test = read_idx_gz(p[TEST_LABELS], LABELS_MAGIC, (None,))
    _check_split(x_train, y_train, f"{p[TRAIN_IMAGES]} and {p[TRAIN_LABELS]}")
    _check_split(x_test, y_test, f"{p[TEST_IMAGES]} and {p[TEST_LABELS]}")
    return x_train, y_train, x_test, y_test


def load_idx_dataset(name, md5, mirrors):
    """``(x_train, y_train), (x_test, y_test)`` of dataset ``name`` as fresh, writable uint8 arrays."""
    paths = fetch(name, md5, mirrors)
    key = []
    for f in FILES:
        st = os.stat(paths[f])
        key.append((str(paths[f]), st.st_mtime_ns, st.st_size))
    # Keras hands out new arrays on each call; the cached parse is read-only, so copy.
    x_train, y_train, x_test, y_test = (np.array(a) for a in _parse(tuple(key)))
    return (x_train, y_train), (x_test, y_test)


def file_md5(path):
    """MD5 hex digest of a file, read in chunks."""
    return file_digest(path, "0" * 32)


def file_digest(path, like, algorithm="auto"):
    """Hex digest of a file with the algorithm of checksum ``like`` (MD5 or SHA-256; or ``algorithm``), read
    in chunks."""
    digest = new_hasher(like, algorithm)
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()
