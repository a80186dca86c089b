"""The shuffled train/test split of Keras's two housing-price loaders (boston_housing, california_housing)."""

from __future__ import annotations

import io
import numbers

import numpy as np

from . import _files
from ._errors import DatasetFormatError


def check_test_split(function, test_split):
    if isinstance(test_split, bool) or not isinstance(test_split, numbers.Real) or not 0 <= test_split < 1:
        raise ValueError(
            f"{function}: invalid `test_split` argument: {test_split!r}. It must be between 0 and 1 (exclusive of 1)."
        )


def load_xy(name, remote_name, path, n_features):
    """The ``x`` (n, n_features) and ``y`` (n,) arrays of a verified Keras ``.npz`` (no pickles allowed)."""
    source, data = _files.read_keras_file(name, remote_name, path)
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as f:
            missing = [k for k in ("x", "y") if k not in f]
            if missing:
                raise DatasetFormatError(f"{source}: lacks the arrays {missing} (holds {sorted(f.files)}).")
            x, y = f["x"], f["y"]
    except DatasetFormatError:
        raise
    except (ValueError, OSError, EOFError) as e:
        raise DatasetFormatError(f"{source}: not a readable .npz of numeric arrays ({type(e).__name__}: {e}).") from e
    if x.ndim != 2 or x.shape[1] != n_features or y.shape != (x.shape[0],):
        raise DatasetFormatError(f"{source}: x {x.shape} and y {y.shape}; expected (n, {n_features}) and (n,).")
    return x, y


def shuffle_split(x, y, test_split, seed):
    """Shuffle with numpy's RandomState(seed), as Keras, then cut off the last ``test_split`` fraction."""
    order = np.arange(len(x))
    np.random.RandomState(seed).shuffle(order)
    x, y = x[order], y[order]
    split = int(len(x) * (1 - test_split))
    return (x[:split], y[:split]), (x[split:], y[split:])
