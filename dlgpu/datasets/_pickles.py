"""Reading the pickles inside Keras's dataset files, and nothing but numpy arrays from them.

CIFAR's python-version batches are pickled dicts, and the IMDB/Reuters ``.npz`` files hold ragged
sequences as object arrays, which numpy can store only as pickles.  Keras reads both with pickle.
Two guards stand before any of it here: the callers hand us only bytes whose published checksum
matched (``_files.read_keras_file``), and the unpickler below resolves no global but the three that
rebuild a numpy array, so even a file that slipped past the checksum cannot run code.  (Keras 3 also
restricts its unpickler to these globals.)  Numeric arrays are read with pickling disabled.
"""

from __future__ import annotations

import io
import pickle
import tarfile
import zipfile
import zlib

import numpy as np

from ._errors import DatasetFormatError

try:  # numpy >= 2
    from numpy._core import multiarray as _multiarray
except ImportError:  # numpy 1.x
    from numpy.core import multiarray as _multiarray

# Files written under numpy 1 name the module numpy.core.multiarray, under numpy 2 numpy._core.multiarray;
# both resolve to this process's function directly, without numpy 2's deprecated numpy.core shim.
_ALLOWED_GLOBALS = {
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    ("numpy.core.multiarray", "_reconstruct"): _multiarray._reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _multiarray._reconstruct,
}


class _ArraysOnlyUnpickler(pickle.Unpickler):
    def find_class(self, module, name):
        try:
            return _ALLOWED_GLOBALS[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(
                f"refusing to load the global {module}.{name}: a dataset pickle holds only numpy arrays, "
                "lists, dicts, numbers and strings"
            ) from None


def unpickle(data, source, encoding="latin1"):
    """Unpickle ``data`` (verified bytes) allowing only numpy arrays and plain Python values.

    ``encoding`` decodes Python 2 ``str`` objects; CIFAR needs ``"bytes"`` (its keys come back as bytes).
    """
    try:
        return _ArraysOnlyUnpickler(io.BytesIO(data), encoding=encoding).load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError) as e:
        raise DatasetFormatError(f"{source}: not a readable dataset pickle ({type(e).__name__}: {e}).") from e


def _read_npy(raw, source):
    fp = io.BytesIO(raw)
    version = np.lib.format.read_magic(fp)
    # The 3.0 header differs from 2.0 only in its text encoding (utf-8, not latin-1) and ours are ASCII.
    read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
    shape, fortran_order, dtype = read_header(fp)
    if not dtype.hasobject:
        fp.seek(0)
        return np.lib.format.read_array(fp, allow_pickle=False)
    array = unpickle(fp.read(), source)
    if not isinstance(array, np.ndarray) or array.shape != shape or array.dtype != dtype:
        raise DatasetFormatError(f"{source}: the pickled array does not match its .npy header {shape}, {dtype}.")
    return array


def load_npz(data, source):
    """The arrays of the ``.npz`` archive ``data`` (verified bytes) as a dict, object arrays included."""
    arrays = {}
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            for member in archive.namelist():
                if member.endswith(".npy"):
                    arrays[member[: -len(".npy")]] = _read_npy(archive.read(member), f"{source}:{member}")
    except DatasetFormatError:
        raise
    except (zipfile.BadZipFile, zlib.error, EOFError, ValueError) as e:
        raise DatasetFormatError(f"{source}: not a readable .npz archive ({type(e).__name__}: {e}).") from e
    return arrays


def require(arrays, keys, source):
    """Raise DatasetFormatError naming the arrays ``source`` lacks."""
    missing = [k for k in keys if k not in arrays]
    if missing:
        raise DatasetFormatError(f"{source}: lacks the arrays {missing} (holds {sorted(arrays)}).")
    return [arrays[k] for k in keys]


def tar_members(data, names, source):
    """The contents of the members ``names`` of the gzip tar archive ``data`` (verified bytes)."""
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as archive:
            found = {}
            for member in archive:
                if member.name in names and member.isfile():
                    found[member.name] = archive.extractfile(member).read()
    except (tarfile.TarError, EOFError, zlib.error, OSError) as e:
        raise DatasetFormatError(f"{source}: not a readable .tar.gz archive ({type(e).__name__}: {e}).") from e
    missing = [n for n in names if n not in found]
    if missing:
        raise DatasetFormatError(f"{source}: the archive lacks {missing}.")
    return found
