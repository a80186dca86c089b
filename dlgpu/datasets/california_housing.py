"""California housing prices (1990 census): 20,640 block groups, 8 features, the median house value in $.

``load_data(...)`` is Keras's ``keras.datasets.california_housing.load_data``: the same arrays,
shapes, dtypes and shuffle.  It reads Keras's ``california_housing.npz`` from
$DLGPU_DATASETS/california_housing/, else the cache, else Keras's bucket.

Features: MedInc, HouseAge, AveRooms, AveBedrms, Population, AveOccup, Latitude, Longitude.
"""

from __future__ import annotations

from . import _tabular

NAME = "california_housing"
DATA = "california_housing.npz"

FEATURE_NAMES = ("MedInc", "HouseAge", "AveRooms", "AveBedrms", "Population", "AveOccup", "Latitude", "Longitude")


def load_data(version="large", path=DATA, test_split=0.2, seed=113):
    """Load California housing as ``(x_train, y_train), (x_test, y_test)``.

    version: ``"large"`` for all 20,640 samples, ``"small"`` for the first 600 (Keras's stand-in for
    Boston housing).  x: arrays (n, 8); y: arrays (n,) of prices in $ (dtypes as stored).  The samples
    are shuffled with ``seed`` (numpy RandomState, as Keras) and the last ``test_split`` fraction is the test set.
    """
    if version not in ("small", "large"):
        raise ValueError(f"california_housing.load_data: argument `version` must be one of 'small', 'large'. "
                         f"Received: version={version!r}.")
    _tabular.check_test_split("california_housing.load_data", test_split)
    x, y = _tabular.load_xy(NAME, DATA, path, 8)
    if version == "small":
        x, y = x[:600], y[:600]
    return _tabular.shuffle_split(x, y, test_split, seed)
