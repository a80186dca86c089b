"""Finding, downloading and loading the four IDX files of an MNIST-style dataset.

Where the files come from, in order:

1. ``$DLGPU_DATASETS/<name>/`` when ``DLGPU_DATASETS`` is set.  This is an explicit instruction, so
   nothing is downloaded: missing files are an error that lists them.
2. The cache, ``<cache>/datasets/<name>/``, where ``<cache>`` is ``$DLGPU_CACHE``, else
   ``$XDG_CACHE_HOME/dlgpu``, else ``~/.cache/dlgpu``.  (Keras uses ``~/.keras/datasets``; we
   follow the XDG base-directory convention instead.)
3. A download from the dataset's mirrors into that cache, tried in order, each file checked against
   its published MD5 before it is renamed into place, so the cache never holds a partial file.

Checksums guard the download.  Files found in the directories above are not re-hashed (a user may
hold a re-compressed copy with the same content); they are validated structurally by the IDX reader.
"""

from __future__ import annotations

import functools
import hashlib
import http.client
import logging
import os
import tempfile
import urllib.error
from pathlib import Path
from urllib.request import urlopen

import numpy as np

from ._idx import IMAGES_MAGIC, LABELS_MAGIC, IDXFormatError, read_idx_gz

logger = logging.getLogger("dlgpu")

TRAIN_IMAGES = "train-images-idx3-ubyte.gz"
TRAIN_LABELS = "train-labels-idx1-ubyte.gz"
TEST_IMAGES = "t10k-images-idx3-ubyte.gz"
TEST_LABELS = "t10k-labels-idx1-ubyte.gz"
FILES = (TRAIN_IMAGES, TRAIN_LABELS, TEST_IMAGES, TEST_LABELS)

DOWNLOAD_TIMEOUT_S = 60
_CHUNK = 1 << 20


class DatasetNotFoundError(FileNotFoundError):
    """The files of a dataset are not on this machine and could not be downloaded."""

    __module__ = "dlgpu.datasets"  # the public name, in tracebacks


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


def _how_to_supply(name, directory, missing):
    return (
        f"Put these files in {directory}:\n"
        + "".join(f"    {f}\n" for f in missing)
        + f"or set DLGPU_DATASETS to a directory whose '{name}/' subdirectory holds all four files "
        "(dlgpu then reads only from there and never downloads)."
    )


def fetch(name, md5, mirrors):
    """Return the local paths of the four files of dataset ``name``, downloading the missing ones.

    ``md5`` maps each file name to its expected MD5 hex digest; ``mirrors`` are base URLs ending in "/".
    """
    directory, explicit = dataset_dir(name)
    paths = {f: directory / f for f in FILES}
    missing = [f for f in FILES if not paths[f].is_file()]
    if not missing:
        return paths
    if explicit:
        state = "does not exist" if not directory.is_dir() else f"lacks {len(missing)} of the 4 files"
        raise DatasetNotFoundError(
            f"DLGPU_DATASETS is set ({os.environ['DLGPU_DATASETS']!r}), so the {name} files are read only from "
            f"{directory}, which {state}; nothing is downloaded when DLGPU_DATASETS is set.\n"
            f"Put these files in {directory}:\n"
            + "".join(f"    {f}\n" for f in missing)
            + "or unset DLGPU_DATASETS to use the cache and download them."
        )
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise DatasetNotFoundError(
            f"Cannot create the cache directory {directory} to download {name} into ({e}). "
            "Set DLGPU_CACHE to a writable directory, or supply the files yourself. "
            + _how_to_supply(name, directory, missing)
        ) from e
    failures = []
    for f in missing:
        if not _download(f, md5[f], mirrors, paths[f], failures):
            still_missing = [m for m in missing if not paths[m].is_file()]
            raise DatasetNotFoundError(
                f"Could not download {name} file {f} (offline, or every mirror failed):\n"
                + "".join(f"    {line}\n" for line in failures)
                + _how_to_supply(name, directory, still_missing)
            )
    return paths


def _download(filename, expected_md5, mirrors, dest, failures):
    """Try each mirror in turn; on success the verified file is at ``dest``. Appends reasons to ``failures``."""
    for base in mirrors:
        url = base + filename
        logger.info("Downloading %s", url)
        # The temporary file sits beside the destination so that os.replace is an atomic rename.
        fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{filename}.", suffix=".part")
        try:
            digest = hashlib.md5(usedforsecurity=False)
            with os.fdopen(fd, "wb") as out, urlopen(url, timeout=DOWNLOAD_TIMEOUT_S) as response:
                while chunk := response.read(_CHUNK):
                    digest.update(chunk)
                    out.write(chunk)
                out.flush()
                os.fsync(out.fileno())
            if digest.hexdigest() == expected_md5:
                os.replace(tmp, dest)
                return True
            reason = (
                f"{url}: checksum mismatch (md5 {digest.hexdigest()}, expected {expected_md5}); "
                "deleted the partial download"
            )
            logger.warning(reason)
            failures.append(reason)
        except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError) as e:
            # URLError: no network or DNS; HTTPError (a URLError): 404 and friends; HTTPException:
            # IncompleteRead when the connection drops; OSError: timeouts, resets, disk full;
            # ValueError: a malformed mirror URL.
            failures.append(f"{url}: {type(e).__name__}: {e}")
        finally:
            # Whatever happened (Ctrl-C included), no partial file stays in the cache.
            if os.path.exists(tmp):
                os.unlink(tmp)
    return False


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
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()
