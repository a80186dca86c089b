"""tf.data.experimental's names that Keras code still uses: AUTOTUNE, the cardinality constants and
``cardinality(dataset)``."""

from dlgpu.data.dataset import AUTOTUNE, INFINITE_CARDINALITY, UNKNOWN_CARDINALITY


def cardinality(dataset):
    """``dataset.cardinality()`` (tf.data.experimental.cardinality)."""
    return dataset.cardinality()


__all__ = ["AUTOTUNE", "INFINITE_CARDINALITY", "UNKNOWN_CARDINALITY", "cardinality"]
