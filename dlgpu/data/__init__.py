"""dlgpu.data: tf.data's Dataset API over numpy arrays, so that porting Keras code is ``tf.data`` ->
``dlgpu.data`` (``import dlgpu.data as tf_data``).

    ds = dlgpu.data.Dataset.from_tensor_slices((x, y)).shuffle(1024).batch(32).prefetch(dlgpu.data.AUTOTUNE)
    model.fit(ds, epochs=3, validation_data=val_ds)

Everything runs on the host, lazily, in the thread that iterates; elements are numpy arrays in tf.data's
structures (tuples, dicts, nested).  fit/evaluate/predict read a Dataset's elements as batches, and the
training loop moves each batch to the model's device.  See dlgpu/data/dataset.py for what each method
does and where it differs from tf.data (prefetch does nothing, cache is in memory only, strings stay str).
"""

from dlgpu.data import experimental
from dlgpu.data.dataset import (AUTOTUNE, INFINITE_CARDINALITY, UNKNOWN_CARDINALITY, Cardinality, Dataset,
                                from_py_dataset)
from dlgpu.data.structure import TensorSpec

__all__ = ["AUTOTUNE", "INFINITE_CARDINALITY", "UNKNOWN_CARDINALITY", "Cardinality", "Dataset", "TensorSpec",
           "experimental", "from_py_dataset"]
