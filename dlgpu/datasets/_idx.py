"""Reader for the gzip-compressed IDX files of MNIST and Fashion-MNIST.

IDX layout (http://yann.lecun.com/exdb/mnist/): a big-endian uint32 magic number whose third byte
is the element type (0x08 = unsigned byte) and whose fourth byte is the number of dimensions, then
one big-endian uint32 per dimension, then the elements in C order.  So unsigned-byte images
(n, rows, cols) have magic 0x00000803 = 2051 and unsigned-byte labels (n,) have 0x00000801 = 2049.

The whole file is decompressed in memory (47 MB for the MNIST training images) and viewed with
``numpy.frombuffer``; nothing is done per pixel in Python.
"""

from __future__ import annotations

import gzip
import os
import zlib

import numpy as np

from ._errors import DatasetFormatError

IMAGES_MAGIC = 2051
LABELS_MAGIC = 2049


class IDXFormatError(DatasetFormatError):
    """A file is not a well-formed gzip IDX file of the expected kind (truncated, corrupt, foreign)."""

    __module__ = "dlgpu.datasets"  # the public name, in tracebacks


def read_idx_gz(path, magic, shape=None):
    """Read one gzip IDX file of unsigned bytes and return it as a read-only uint8 array.

    ``magic`` is the expected magic number (``IMAGES_MAGIC`` or ``LABELS_MAGIC``); ``shape`` is the
    expected shape with ``None`` for a dimension that may take any size, e.g. ``(None, 28, 28)``.
    Raises ``IDXFormatError`` naming the file and what was wrong.
    """
    path = os.fspath(path)
    try:
        with gzip.open(path, "rb") as f:
            data = f.read()
    except (gzip.BadGzipFile, EOFError, zlib.error) as e:
        # EOFError: the gzip stream ends before its end-of-stream marker, i.e. a truncated download.
        raise IDXFormatError(
            f"{path}: not a readable gzip file ({type(e).__name__}: {e}); it is truncated or corrupt. "
            "Replace it (a file in the dlgpu cache can simply be deleted: the next load downloads it again)."
        ) from e
    return parse_idx(data, magic, shape, source=path)


def parse_idx(data, magic, shape=None, source="<bytes>"):
    """Parse the decompressed bytes of an IDX file of unsigned bytes (see ``read_idx_gz``)."""
    if len(data) < 4:
        raise IDXFormatError(f"{source}: {len(data)} bytes after decompression, too short for an IDX header.")
    found_magic = int.from_bytes(data[:4], "big")
    if found_magic != magic:
        kind = {IMAGES_MAGIC: "images", LABELS_MAGIC: "labels"}.get(magic, "IDX")
        raise IDXFormatError(
            f"{source}: bad magic number {found_magic} (0x{found_magic:08x}); expected {magic} "
            f"(0x{magic:08x}, an unsigned-byte {kind} file). Is it the wrong file, or not an IDX file?"
        )
    ndim = data[3]
    header = 4 + 4 * ndim
    if len(data) < header:
        raise IDXFormatError(f"{source}: truncated in the header ({len(data)} bytes, the {ndim} dimensions need {header}).")
    dims = tuple(int(d) for d in np.frombuffer(data, dtype=">u4", count=ndim, offset=4))
    if shape is not None and (len(dims) != len(shape) or any(s is not None and s != d for s, d in zip(shape, dims))):
        expected = "(" + ", ".join("any" if s is None else str(s) for s in shape) + ")"
        raise IDXFormatError(f"{source}: dimensions {dims}, expected {expected}.")
    expected_bytes = int(np.prod(dims, dtype=np.int64))
    found_bytes = len(data) - header
    if found_bytes < expected_bytes:
        raise IDXFormatError(
            f"{source}: truncated: the header declares {dims} = {expected_bytes} bytes of data, "
            f"but only {found_bytes} follow it."
        )
    if found_bytes > expected_bytes:
        raise IDXFormatError(
            f"{source}: {found_bytes - expected_bytes} unexpected bytes after the {expected_bytes} bytes of "
            f"data the header declares {dims}."
        )
    # A read-only view over the immutable decompressed bytes: callers copy what they hand out.
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(dims)
