"""The errors of dlgpu.datasets, in one place so that every reader can raise them."""

from __future__ import annotations


class DatasetNotFoundError(FileNotFoundError):
    """The files of a dataset are not on this machine and could not be downloaded."""

    __module__ = "dlgpu.datasets"  # the public name, in tracebacks


class DatasetFormatError(ValueError):
    """A dataset file is not in the expected format (truncated, corrupt, or a different file)."""

    __module__ = "dlgpu.datasets"


class DatasetChecksumError(ValueError):
    """A dataset file on disk does not have the published checksum, so it is not read."""

    __module__ = "dlgpu.datasets"
