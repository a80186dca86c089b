"""HashedCrossing: crosses of scalar categorical features by the hashing trick (keras.layers.HashedCrossing).

Keras calls tf.sparse.cross_hashed: per sample, from the key 0xDECAFCAFFE, each feature in order is folded
in with FingerprintCat64 — an integer feature as its own int64 bits, a string as its FarmHash Fingerprint64 —
and the result is taken modulo ``num_bins`` as an unsigned 64-bit number.  dlgpu/layers/fingerprint.py
writes those out, so the bins are Keras's.  Strings live on the host, so this is a host-side layer (as the
lookup layers): it reads its inputs there and returns a Tensor on the current device.
"""

from __future__ import annotations

import numpy as np

from dlgpu.layers.fingerprint import cross_hashed, fingerprint64
from dlgpu.layers.lookup import _error, _HostLayer, as_strings, encode, to_device, to_host


class HashedCrossing(_HostLayer):
    """Cross two or more features of shape ``()``, ``(batch,)`` or ``(batch, 1)`` into ``num_bins`` bins:
    int64 bin indices (``output_mode="int"``) or one-hot float32 vectors (``"one_hot"``)."""

    _symbolic_ok = True

    def __init__(self, num_bins, output_mode="int", sparse=False, name=None, dtype=None, **kwargs):
        if output_mode == "int" and dtype is None:
            dtype = "int64"
        super().__init__(name=name, dtype=dtype, **kwargs)
        if not isinstance(num_bins, (int, np.integer)) or isinstance(num_bins, bool) or num_bins <= 0:
            raise _error(self, f"`num_bins` must be a positive integer. Received: num_bins={num_bins!r}")
        if output_mode not in ("int", "one_hot"):
            raise _error(self, f"`output_mode` must be one of ('int', 'one_hot'). Received: "
                               f"output_mode={output_mode!r}")
        if sparse:
            raise NotImplementedError(f"Layer '{self.name}' (HashedCrossing): `sparse=True` is not supported by "
                                      f"dlgpu (no sparse tensors); use sparse=False")
        self.num_bins = int(num_bins)
        self.output_mode = output_mode
        self.sparse = False
        self.built = True

    def _check_inputs(self, inputs):
        if not isinstance(inputs, (list, tuple)):
            raise _error(self, f"should be called on a list or tuple of inputs. Received: "
                               f"{type(inputs).__name__}")
        if len(inputs) < 2:
            raise _error(self, f"should be called on at least two inputs. Received {len(inputs)}")

    @staticmethod
    def _check_shapes(layer, shapes):
        first = tuple(shapes[0])
        if len(first) > 2 or (len(first) == 2 and first[-1] != 1):
            raise _error(layer, f"all inputs should have shape (), (batch_size,) or (batch_size, 1). Received "
                                f"shapes {[tuple(s) for s in shapes]}")
        if any(tuple(s) != first for s in shapes[1:]):
            raise _error(layer, f"all inputs should have equal shape. Received shapes {[tuple(s) for s in shapes]}")

    def _feature_bits(self, index, x):
        """One input as the uint64 numbers TensorFlow folds: an integer's bits, a string's Fingerprint64."""
        a = to_host(self, x)
        if a.dtype.kind in "USO":
            strings = as_strings(self, a, what=f"input {index}")
            uniques, inverse = np.unique(strings.reshape(-1), return_inverse=True)
            prints = np.array([fingerprint64(u) for u in uniques.tolist()], np.uint64)
            return prints[inverse.reshape(-1)].reshape(a.shape)
        if a.dtype.kind == "f" and a.size and np.all(a == np.round(a)):
            a = a.astype(np.int64)  # a float tensor of whole numbers (dlgpu casts some model inputs to float32)
        if a.dtype.kind not in "iu":
            raise _error(self, f"all inputs should have an integer or string dtype. Received dtype {a.dtype} "
                               f"for input {index}")
        return a.astype(np.int64).view(np.uint64)  # tf casts integers to int64 and folds their bits

    def call(self, inputs):
        self._check_inputs(inputs)
        columns = [self._feature_bits(i, x) for i, x in enumerate(inputs)]
        self._check_shapes(self, [c.shape for c in columns])
        shape = columns[0].shape
        bins = cross_hashed([c.reshape(-1) for c in columns], self.num_bins).reshape(shape)
        if self.output_mode == "int":
            return to_device(bins)
        hot = encode(self, bins, "one_hot", self.num_bins)
        return to_device(hot.reshape(self.num_bins) if not shape else hot)

    def compute_output_shape(self, input_shape):
        if not isinstance(input_shape, (list, tuple)) or len(input_shape) < 2 or not all(
                isinstance(s, (list, tuple)) for s in input_shape):
            raise _error(self, f"expected as input a list/tuple of at least 2 tensors. Received "
                               f"input_shape={input_shape}")
        self._check_shapes(self, input_shape)
        first = tuple(input_shape[0])
        if self.output_mode == "int":
            return first
        if not first:
            return (self.num_bins,)
        if first[-1] != 1:
            return first + (self.num_bins,)
        return first[:-1] + (self.num_bins,)

    def _output_dtype(self):
        return "int64" if self.output_mode == "int" else "float32"

    def get_config(self):
        return {"num_bins": self.num_bins, "output_mode": self.output_mode, "sparse": self.sparse,
                "name": self.name, "dtype": self.dtype}
