"""Boston housing prices: 506 districts, 13 features, the median home value in k$ as target.

``load_data(...)`` is Keras's ``keras.datasets.boston_housing.load_data``: the same arrays, shapes,
dtypes and shuffle.  It reads Keras's ``boston_housing.npz`` from $DLGPU_DATASETS/boston_housing/,
else the cache, else Keras's bucket.  Keras warns that one of the features (B) encodes an ethically
problematic assumption and discourages using this dataset except to discuss that problem;
``california_housing`` is its suggested replacement.
"""

from __future__ import annotations

from . import _tabular

NAME = "boston_housing"
DATA = "boston_housing.npz"


def load_data(path=DATA, test_split=0.2, seed=113):
    """Load Boston housing as ``(x_train, y_train), (x_test, y_test)``.

    x: arrays (n, 13); y: arrays (n,) of prices in k$ (dtypes as stored in Keras's file).  The 506 samples are
    shuffled with ``seed`` (numpy RandomState, as Keras) and the last ``test_split`` fraction is the test set.
    """
    _tabular.check_test_split("boston_housing.load_data", test_split)
    x, y = _tabular.load_xy(NAME, DATA, path, 13)
    return _tabular.shuffle_split(x, y, test_split, seed)
