"""Host-side lookup layers: StringLookup, IntegerLookup (keras IndexLookup semantics) and Hashing.

Strings cannot live on a GPU, so these layers work on the host: they take Python/numpy data (lists, numpy
unicode/bytes/object arrays, a single value, or a dlgpu tensor of integers), map it with numpy, and return a
dlgpu Tensor on the current device, so that the next layer (Embedding, Dense) runs there.  Lookups go through
``np.unique(..., return_inverse=True)``: Python touches each distinct value of a batch once, not each token.

Where Keras hashes (Hashing, and the OOV buckets when ``num_oov_indices > 1``) it uses TensorFlow's
FarmHash Fingerprint64, or SipHash keyed by a salt; dlgpu/layers/fingerprint.py writes both out, so the
bins are Keras's.
"""

from __future__ import annotations

import collections
import itertools

import numpy as np

from dlgpu import ops
from dlgpu.autograd import Tensor
from dlgpu.layers.base import KerasTensor, Layer, flatten, is_probing, is_symbolic
from dlgpu.layers.fingerprint import hash_buckets

_OUTPUT_MODES = ("int", "one_hot", "multi_hot", "count", "tf_idf")


def _error(layer, message):
    return ValueError(f"Layer '{layer.name}' ({type(layer).__name__}): {message}")


def to_host(layer, x):
    """A numpy array from whatever a host-side layer was given (tensors come back from their device)."""
    if isinstance(x, KerasTensor):
        raise _error(layer, "received a symbolic tensor where it needs data")
    if isinstance(x, Tensor):
        x = x.data
    if hasattr(x, "__cuda_array_interface__"):
        from dlgpu.backend import device as _device
        x = _device.to_numpy(x)
    if isinstance(x, (str, bytes)):
        return np.asarray(x, dtype=object)
    try:
        return np.asarray(x) if not isinstance(x, np.ndarray) else x
    except ValueError as err:  # ragged nested lists
        raise _error(layer, f"inputs must be rectangular; {err}") from None


def as_strings(layer, x, what="inputs"):
    """``x`` as a numpy array of Python str (dtype object); bytes are read as UTF-8."""
    a = to_host(layer, x)
    if a.dtype.kind == "U":
        return a.astype(object)
    if a.dtype.kind == "S":
        return np.char.decode(a, "utf-8").astype(object)
    if a.dtype.kind == "O":
        flat = a.reshape(-1)
        if all(isinstance(v, str) for v in flat):
            return a
        if all(isinstance(v, (str, bytes)) for v in flat):
            return np.array([v.decode("utf-8") if isinstance(v, bytes) else v for v in flat],
                            dtype=object).reshape(a.shape)
    raise _error(layer, f"{what} must be strings (a str, a list of str, or a numpy unicode/bytes/object "
                        f"array of str); received dtype {a.dtype} and shape {a.shape}")


def _is_int(value):
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def stable_hash(values, num_buckets, salt=None):
    """Bucket of each distinct value as TensorFlow puts it for Keras: Fingerprint64 of its UTF-8 text (str(v)
    for integers, as tf.as_string), or SipHash-2-4 keyed by ``salt`` (a pair), modulo num_buckets."""
    return hash_buckets(values, num_buckets, salt)


def _ragged_rows(x):
    """A list of rows of different lengths (what tf.ragged.constant takes) as (its entries in one flat list,
    the row lengths); None for anything else, rectangular lists included."""
    if not isinstance(x, (list, tuple)) or not x or not all(isinstance(r, (list, tuple, np.ndarray)) for r in x):
        return None
    lengths = np.array([len(r) for r in x], np.int64)
    if np.all(lengths == lengths[0]):
        return None
    flat = [v for r in x for v in r]
    if any(isinstance(v, (list, tuple, np.ndarray)) for v in flat):
        return None  # deeper nesting: left to the rectangular path, which says why it fails
    return flat, lengths


def encode(layer, indices, mode, depth, idf_weights=None):
    """Keras's encode_categorical_inputs on host int64 ``indices`` (-1 marks a value to drop: a mask token).
    one_hot adds an axis (replacing a trailing axis of size 1); multi_hot/count/tf_idf count over the last
    axis (a rank-1 input is one sample)."""
    if indices.ndim == 0:
        indices = indices[None]
    if mode == "one_hot":
        if indices.ndim > 1 and indices.shape[-1] == 1:
            indices = indices[..., 0]
        out = (indices[..., None] == np.arange(depth)).astype(np.float32)
        return out
    lead = indices.shape[:-1]
    rows = indices.reshape(-1, indices.shape[-1]) if indices.ndim > 1 else indices[None]
    keep = rows >= 0
    flat = (np.arange(rows.shape[0])[:, None] * depth + rows)[keep]
    counts = np.bincount(flat, minlength=rows.shape[0] * depth).reshape(rows.shape[0], depth).astype(np.float32)
    if mode == "multi_hot":
        counts = np.minimum(counts, 1.0)
    elif mode == "tf_idf":
        counts = counts * idf_weights.astype(np.float32)
    return counts.reshape(lead + (depth,)) if indices.ndim > 1 else counts[0]


def to_device(array):
    """A host result as a Tensor on the current device (for the next layer)."""
    return ops.convert_to_tensor(array)


class _HostLayer(Layer):
    """A layer that computes on the host from data (not a differentiable op): __call__ skips the float cast,
    masks and the training context of Layer.__call__.  In a functional model it takes a string Input
    (Input(dtype="string"), whose data stays a numpy array on the host) or, when the layer takes numbers
    (``_symbolic_ok``), a numeric tensor."""

    _accepts_integer_inputs = True
    _symbolic_ok = False

    def __call__(self, inputs, *args, **kwargs):
        if is_symbolic(inputs):
            numeric = [t for t in flatten(inputs) if isinstance(t, KerasTensor) and t.dtype != "string"]
            if numeric and not self._takes_numbers():
                raise ValueError(
                    f"Layer '{self.name}' ({type(self).__name__}) takes strings; in a functional model give it a "
                    f"string input, Input(shape=..., dtype='string'). Received a symbolic tensor of dtype "
                    f"{numeric[0].dtype} and shape {numeric[0].shape}.")
            return super().__call__(inputs, *args, **kwargs)
        self.built = True
        return self.call(inputs)

    def _takes_numbers(self):
        return self._symbolic_ok

    def _output_dtype(self):
        return "int64" if self.output_mode == "int" else "float32"


class IndexLookup(_HostLayer):
    """Shared logic of StringLookup and IntegerLookup (Keras's IndexLookup): vocabulary[0] is the mask token
    (when one is set and output_mode='int'), then ``num_oov_indices`` OOV slots, then the tokens."""

    built_once = False  # set by the first call: outside int mode the output width is fixed from then on

    def __init__(self, max_tokens, num_oov_indices, mask_token, oov_token, vocabulary_dtype, vocabulary=None,
                 idf_weights=None, invert=False, output_mode="int", sparse=False, pad_to_max_tokens=False,
                 oov_method="floormod", salt=None, **kwargs):
        has_input_vocabulary = kwargs.pop("has_input_vocabulary", vocabulary is not None)
        frozen = kwargs.pop("vocabulary_size", None)
        super().__init__(**kwargs)
        if output_mode == "binary":
            output_mode = "multi_hot"
        if output_mode == "tf-idf":
            output_mode = "tf_idf"
        if max_tokens is not None and (not isinstance(max_tokens, (int, np.integer)) or max_tokens <= 1):
            raise _error(self, f"if set, `max_tokens` must be an integer greater than 1. Received: "
                               f"max_tokens={max_tokens!r}")
        if pad_to_max_tokens and max_tokens is None:
            raise _error(self, "if pad_to_max_tokens is True, `max_tokens` must be set. Received: max_tokens=None")
        if not isinstance(num_oov_indices, (int, np.integer)) or num_oov_indices < 0:
            raise _error(self, f"`num_oov_indices` must be an integer >= 0. Received: "
                               f"num_oov_indices={num_oov_indices!r}")
        if output_mode not in _OUTPUT_MODES:
            raise _error(self, f"`output_mode` must be one of {_OUTPUT_MODES}. Received: output_mode={output_mode!r}")
        if oov_method not in ("floormod", "farmhash"):
            raise _error(self, f"`oov_method` must be 'floormod' or 'farmhash'. Received: oov_method={oov_method!r}")
        if salt is not None:  # the key of the SipHash that then buckets the OOV values
            if vocabulary_dtype != "string" and oov_method != "farmhash":
                raise _error(self, f"`salt` can only be used when `oov_method='farmhash'`. Received: "
                                   f"oov_method={oov_method!r}")
            if isinstance(salt, (tuple, list)) and len(salt) == 2 and all(_is_int(v) for v in salt):
                salt = [int(v) for v in salt]
            elif _is_int(salt):
                salt = [int(salt), int(salt)]
            else:
                raise _error(self, f"the `salt` argument can only be a tuple of 2 integers, or a single "
                                   f"integer. Received: salt={salt!r}")
        if invert and output_mode != "int":
            raise _error(self, f"`output_mode` must be 'int' when `invert` is true. Received: "
                               f"output_mode={output_mode!r}")
        if sparse:
            raise NotImplementedError(f"Layer '{self.name}' ({type(self).__name__}): `sparse=True` is not "
                                      f"supported by dlgpu (no sparse tensors); use sparse=False")
        if idf_weights is not None and output_mode != "tf_idf":
            raise _error(self, f"`idf_weights` should only be set if output_mode is 'tf_idf'. Received: "
                               f"output_mode={output_mode!r}")
        if output_mode == "tf_idf" and has_input_vocabulary and idf_weights is None and vocabulary is not None:
            raise _error(self, "when specifying the `vocabulary` argument in output_mode='tf_idf', the "
                               "`idf_weights` argument must also be provided")
        self.invert = bool(invert)
        self.max_tokens = None if max_tokens is None else int(max_tokens)
        self.num_oov_indices = int(num_oov_indices)
        self.mask_token = mask_token
        self.oov_token = oov_token
        self.output_mode = output_mode
        self.sparse = False
        self.pad_to_max_tokens = bool(pad_to_max_tokens)
        self.vocabulary_dtype = vocabulary_dtype
        self.oov_method = oov_method
        self.salt = salt
        self._has_input_vocabulary = has_input_vocabulary
        self._frozen_vocab_size = frozen
        self.input_vocabulary = None if vocabulary is None else self._listify(vocabulary)
        self.input_idf_weights = None if idf_weights is None else np.asarray(idf_weights, np.float64).tolist()
        self._tokens = []          # learned/given tokens, in index order from _token_start_index()
        self._index = {}           # token -> index
        self._table = {}           # ... and the mask token -> 0 (int mode) or -1 (dropped)
        self.idf_weights = None    # float32 host array over the whole vocabulary (tf_idf)
        self._adapted = False
        self.built = True
        if vocabulary is not None:
            self.set_vocabulary(vocabulary, idf_weights)

    # -- values of this layer's vocabulary type --------------------------------------------------
    def _listify(self, values):
        return [self._python_token(v) for v in np.asarray(values, dtype=object).reshape(-1)]

    def _python_token(self, v):
        raise NotImplementedError

    def _host_keys(self, x):
        raise NotImplementedError

    def _oov_buckets(self, values):
        raise NotImplementedError

    # -- vocabulary --------------------------------------------------------------------------------
    def _oov_start_index(self):
        return 1 if self.mask_token is not None and self.output_mode == "int" else 0

    def _token_start_index(self):
        return self._oov_start_index() + self.num_oov_indices

    def vocabulary_size(self):
        """Size of the vocabulary, mask and OOV slots included."""
        return len(self._tokens) + self._token_start_index()

    def get_vocabulary(self, include_special_tokens=True):
        vocab = ([self.mask_token] * self._oov_start_index() + [self.oov_token] * self.num_oov_indices
                 + list(self._tokens))
        return vocab if include_special_tokens else vocab[self._token_start_index():]

    def set_vocabulary(self, vocabulary, idf_weights=None):
        """Use ``vocabulary`` (with or without the special tokens at its start, as Keras) and, in tf_idf mode,
        ``idf_weights`` of the same length."""
        if self.output_mode == "tf_idf":
            if idf_weights is None:
                raise _error(self, "`idf_weights` must be set if output_mode is 'tf_idf'")
        elif idf_weights is not None:
            raise _error(self, f"`idf_weights` should only be set if output_mode is 'tf_idf'. Received: "
                               f"output_mode={self.output_mode!r}")
        if isinstance(vocabulary, str):
            raise NotImplementedError(f"Layer '{self.name}' ({type(self).__name__}): a vocabulary file path is not "
                                      f"supported; pass the vocabulary as a list")
        vocabulary = self._listify(vocabulary)
        if not vocabulary:
            raise _error(self, "cannot set an empty vocabulary")
        start = self._token_start_index()
        special = [self.mask_token] * self._oov_start_index() + [self.oov_token] * self.num_oov_indices
        found_special = vocabulary[:start] == special
        tokens = vocabulary[start:] if found_special else vocabulary
        repeated = [t for t, c in collections.Counter(tokens).items() if c > 1]
        if repeated:
            raise _error(self, f"the vocabulary has repeated terms {repeated}; please uniquify it")
        if self.mask_token is not None and self.mask_token in tokens:
            raise _error(self, f"found the mask token {self.mask_token!r} at an unexpected place in `vocabulary`: "
                               f"give the vocabulary without mask and OOV tokens, or with them only at its start "
                               f"in this order: {special}")
        if self.oov_token is not None and self.invert and self.oov_token in tokens:
            raise _error(self, f"found the OOV token {self.oov_token!r} at an unexpected place in `vocabulary`: "
                               f"give the vocabulary without mask and OOV tokens, or with them only at its start "
                               f"in this order: {special}")
        if self.max_tokens is not None and start + len(tokens) > self.max_tokens:
            raise _error(self, f"attempted to set a vocabulary larger than the maximum vocab size. Received "
                               f"vocabulary size is {start + len(tokens)}; `max_tokens` is {self.max_tokens}")
        if idf_weights is not None:
            idf = np.asarray(idf_weights, np.float64)
            if idf.ndim != 1 or len(idf) != len(vocabulary):
                raise _error(self, f"`idf_weights` must be 1-D and as long as the vocabulary ({len(vocabulary)}); "
                                   f"received shape {idf.shape}")
            front = 0 if found_special else start
            idf = np.concatenate([np.full(front, idf.mean()), idf])
            self._set_idf(idf)
        self._set_tokens(tokens)

    def _set_idf(self, idf):
        size = len(idf)
        if self.pad_to_max_tokens and self.max_tokens is not None:
            idf = np.concatenate([idf, np.zeros(self.max_tokens - size)])
        self.idf_weights = idf.astype(np.float32)

    def _set_tokens(self, tokens):
        start = self._token_start_index()
        if self._frozen_vocab_size is not None and self.output_mode != "int" and not self.pad_to_max_tokens \
                and self.built_once and start + len(tokens) != self._frozen_vocab_size:
            raise RuntimeError(f"Layer '{self.name}' ({type(self).__name__}): with output_mode="
                               f"{self.output_mode!r} and pad_to_max_tokens=False the vocabulary size cannot "
                               f"change after the layer was called. Old vocab size is {self._frozen_vocab_size}, "
                               f"new vocab size is {start + len(tokens)}")
        self._tokens = list(tokens)
        self._index = {t: start + i for i, t in enumerate(self._tokens)}
        # The mask maps to 0 in int mode and is dropped (-1) by the encodings otherwise.
        self._table = dict(self._index)
        if self.mask_token is not None:
            self._table[self.mask_token] = 0 if self.output_mode == "int" else -1
        self._vocab_array = None
        self._frozen_vocab_size = self.vocabulary_size()


    # -- adapt -------------------------------------------------------------------------------------
    def adapt(self, data, batch_size=None, steps=None):
        """Learn the vocabulary from ``data``: a list/array (each element a document), or an iterable of
        batches (each batch a document if 1-D, else one per row, as Keras).  Tokens are ordered by count,
        ties by the token, both from high to low (Keras's lexsort(...)[::-1])."""
        if self._has_input_vocabulary:
            raise _error(self, "cannot adapt a layer after setting a static vocabulary via the `vocabulary` "
                               "argument or set_vocabulary()")
        counts, doc_counts, num_docs = collections.Counter(), collections.Counter(), 0
        ragged = _ragged_rows(data)
        if ragged is not None:
            flat, lengths = ragged
            batches = [np.split(self._host_keys(flat), np.cumsum(lengths)[:-1])]
        elif isinstance(data, (list, tuple, np.ndarray, str, bytes, Tensor)):
            batches = [self._host_keys(data)]
            batches = [b.reshape(-1, 1) if b.ndim == 1 else b for b in batches]
        elif hasattr(data, "__iter__"):
            batches = (self._host_keys(b) for b in data)
        else:
            raise TypeError(f"Layer '{self.name}' ({type(self).__name__}): adapt() takes a list, a numpy array "
                            f"or an iterable of batches; received {type(data).__name__}")
        seen = False
        for step, batch in enumerate(batches):
            if steps is not None and step >= steps:
                break
            seen = True
            if isinstance(batch, list):  # ragged rows: one document each
                self._count(batch, counts, doc_counts)
                num_docs += len(batch)
                continue
            if batch.ndim == 0:
                batch = batch[None]
            if batch.ndim == 1:
                batch = batch[None]  # Keras: a 1-D batch from an iterable is one document
            docs = batch.reshape(batch.shape[0], -1)
            self._count(list(docs), counts, doc_counts)
            num_docs += docs.shape[0]
        if not seen:
            raise _error(self, "adapt() received no data")
        self._finalize(counts, doc_counts, num_docs)

    def _count(self, docs, counts, doc_counts):
        """Token counts of a list of documents (each a sequence of tokens), and in how many documents each
        token occurs (tf_idf).  Integers are counted by numpy; strings by Counter, which (a hash per token)
        is several times faster than np.unique's sort of Python strings."""
        if docs and isinstance(docs[0], np.ndarray) and docs[0].dtype.kind in "iu":
            values, n = np.unique(np.concatenate(docs), return_counts=True)
            counts.update(dict(zip(values.tolist(), n.tolist())))
            if self.output_mode == "tf_idf":
                for d in docs:
                    doc_counts.update(np.unique(d).tolist())
            return
        counts.update(itertools.chain.from_iterable(docs))
        if self.output_mode == "tf_idf":
            for d in docs:
                doc_counts.update(set(d))

    def _finalize(self, counts, doc_counts, num_docs):
        for special in (self.mask_token, self.oov_token):
            if special is not None:
                counts.pop(special, None)
        order = sorted(counts.items(), key=lambda kv: (kv[1], kv[0]), reverse=True)
        if self.max_tokens:
            order = order[:max(self.max_tokens - self._token_start_index(), 0)]
        tokens = [t for t, _ in order]
        if self.output_mode == "tf_idf":
            dc = np.array([doc_counts[t] for t in tokens], np.float64)
            idf = np.log(1 + num_docs / (1 + dc))
            mean = idf.mean() if idf.size else 0.0
            self._set_idf(np.concatenate([np.full(self._token_start_index(), mean), idf]))
        self._set_tokens(tokens)
        self._adapted = True

    # -- call --------------------------------------------------------------------------------------
    def lookup(self, keys):
        """Host int64 indices of a host array of keys (mask -> 0 in int mode, -1 = dropped otherwise)."""
        if not self._tokens and not self._has_input_vocabulary and self.output_mode != "int" \
                and not self.pad_to_max_tokens:
            raise RuntimeError(f"Layer '{self.name}' ({type(self).__name__}): when using output_mode="
                               f"{self.output_mode!r} and pad_to_max_tokens=False, you must set the layer's "
                               f"vocabulary before calling it: pass a `vocabulary` argument, or call adapt() with "
                               f"some sample data")
        flat = keys.reshape(-1)
        if flat.size == 0:
            return np.zeros(keys.shape, np.int64)
        default = -2
        table = self._table
        if flat.dtype == object:
            # Strings: one dict probe per token.  Measured on 1M tokens, this is ~9x faster than
            # np.unique(return_inverse=True) + a probe per distinct token, whose sort compares Python strings.
            found = np.fromiter(map(table.get, flat.tolist(), itertools.repeat(default)), np.int64, flat.size)
            values = flat
        else:
            values, inverse = np.unique(flat, return_inverse=True)
            found = np.fromiter(map(table.get, values.tolist(), itertools.repeat(default)), np.int64,
                                values.size)
        oov = found == default
        if oov.any():
            if self.num_oov_indices == 0 and is_probing():
                found[oov] = 0  # the dummies of shape inference ("" or 0) need not be in the vocabulary
            elif self.num_oov_indices == 0:
                bad = list(dict.fromkeys(values[oov].tolist()))[:10]
                raise _error(self, f"when num_oov_indices=0 all inputs should be in the vocabulary; found OOV "
                                   f"values {bad}. Consider setting num_oov_indices=1")
            elif self.num_oov_indices == 1:
                found[oov] = self._oov_start_index()
            else:
                oov_values, oov_inverse = np.unique(values[oov], return_inverse=True)
                found[oov] = self._oov_start_index() + self._oov_buckets(oov_values)[oov_inverse.reshape(-1)]
        if flat.dtype != object:
            found = found[inverse.reshape(-1)]
        return found.reshape(keys.shape)

    def _depth(self):
        return self.max_tokens if self.pad_to_max_tokens else self.vocabulary_size()

    def call(self, inputs):
        self.built_once = True
        if self.invert:
            return self._invert(inputs)
        ragged = _ragged_rows(inputs)
        if ragged is not None:
            return self._call_ragged(*ragged)
        indices = self.lookup(self._host_keys(inputs))
        if self.output_mode == "int":
            return to_device(indices)
        return to_device(encode(self, indices, self.output_mode, self._depth(), self.idf_weights))

    def _call_ragged(self, flat, lengths):
        """Rows of different lengths (Keras takes a tf.RaggedTensor): each row is encoded on its own, which
        has a rectangular result only for the counting modes."""
        if self.invert or self.output_mode not in ("multi_hot", "count", "tf_idf"):
            raise _error(self, f"rows of different lengths (lengths {sorted(set(lengths.tolist()))}) need "
                               f"output_mode 'multi_hot', 'count' or 'tf_idf'; dlgpu has no ragged tensors to "
                               f"return for output_mode={self.output_mode!r}" + (" with invert=True" if self.invert
                                                                                else ""))
        found = self.lookup(self._host_keys(flat))
        # Pad with -1, which the encodings drop (as they drop the mask token).
        padded = np.full((lengths.size, max(int(lengths.max()), 1)), -1, np.int64)
        padded[np.arange(padded.shape[1]) < lengths[:, None]] = found
        return to_device(encode(self, padded, self.output_mode, self._depth(), self.idf_weights))

    def _invert(self, inputs):
        idx = to_host(self, inputs)
        if idx.dtype.kind not in "iu":
            raise _error(self, f"with invert=True the inputs must be integer indices; received dtype {idx.dtype}")
        vocab = self.get_vocabulary()
        if self._vocab_array is None:
            self._vocab_array = np.array(vocab + [self.oov_token], dtype=object)
        idx = idx.astype(np.int64)
        idx = np.where((idx < 0) | (idx >= len(vocab)), len(vocab), idx)
        return self._vocab_array[idx]

    def compute_output_shape(self, input_shape):
        input_shape = tuple(input_shape)
        if self.output_mode == "int":
            return input_shape
        depth = self._depth()
        if self.output_mode == "one_hot":
            if len(input_shape) > 1 and input_shape[-1] == 1:
                return input_shape[:-1] + (depth,)
            return input_shape + (depth,)
        return input_shape[:-1] + (depth,)

    def get_config(self):
        # Keras keeps an adapted vocabulary in a saved asset; dlgpu's saved model is JSON + npz, so the
        # vocabulary rides in the config (with its special tokens, and the matching idf weights).
        vocabulary, idf = self.input_vocabulary, self.input_idf_weights
        if self._adapted:
            vocabulary = self.get_vocabulary()
            if self.output_mode == "tf_idf":
                idf = self.idf_weights[:self.vocabulary_size()].astype(np.float64).tolist()
        return {**super().get_config(), "invert": self.invert, "max_tokens": self.max_tokens,
                "num_oov_indices": self.num_oov_indices, "oov_token": self.oov_token,
                "mask_token": self.mask_token, "output_mode": self.output_mode, "sparse": self.sparse,
                "pad_to_max_tokens": self.pad_to_max_tokens, "vocabulary_dtype": self.vocabulary_dtype,
                "idf_weights": idf, "vocabulary": vocabulary, "vocabulary_size": self._frozen_vocab_size,
                "oov_method": self.oov_method, "salt": self.salt}


class StringLookup(IndexLookup):
    """Strings to indices (or back, with invert=True) through a vocabulary (keras.layers.StringLookup)."""

    def _takes_numbers(self):
        return self.invert  # indices back to strings

    def _output_dtype(self):
        return "string" if self.invert else super()._output_dtype()

    def __init__(self, max_tokens=None, num_oov_indices=1, mask_token=None, oov_token="[UNK]", vocabulary=None,
                 idf_weights=None, invert=False, output_mode="int", pad_to_max_tokens=False, sparse=False,
                 encoding="utf-8", name=None, salt=None, **kwargs):
        kwargs.pop("vocabulary_dtype", None)
        if encoding.lower().replace("-", "") != "utf8":
            raise NotImplementedError(f"StringLookup: only encoding='utf-8' is supported. Received: "
                                      f"encoding={encoding!r}")
        self.encoding = "utf-8"
        super().__init__(max_tokens=max_tokens, num_oov_indices=num_oov_indices, mask_token=mask_token,
                         oov_token=oov_token, vocabulary_dtype="string", vocabulary=vocabulary,
                         idf_weights=idf_weights, invert=invert, output_mode=output_mode, sparse=sparse,
                         pad_to_max_tokens=pad_to_max_tokens, name=name, salt=salt, **kwargs)

    def _python_token(self, v):
        return v.decode("utf-8") if isinstance(v, bytes) else str(v)

    def _host_keys(self, x):
        return as_strings(self, x)

    def _oov_buckets(self, values):
        return stable_hash(values.tolist(), self.num_oov_indices, self.salt)

    def get_config(self):
        config = super().get_config()
        del config["vocabulary_dtype"]  # one valid dtype for strings, as Keras
        return {**config, "encoding": self.encoding}


class IntegerLookup(IndexLookup):
    """Integers to indices (or back, with invert=True) through a vocabulary (keras.layers.IntegerLookup)."""

    _symbolic_ok = True

    def __init__(self, max_tokens=None, num_oov_indices=1, mask_token=None, oov_token=-1, vocabulary=None,
                 vocabulary_dtype="int64", idf_weights=None, invert=False, output_mode="int", sparse=False,
                 pad_to_max_tokens=False, name=None, **kwargs):
        if vocabulary_dtype != "int64":
            raise ValueError(f"IntegerLookup: only vocabulary_dtype='int64' is supported. Received: "
                             f"vocabulary_dtype={vocabulary_dtype!r}")
        for arg, value in (("mask_token", mask_token), ("oov_token", oov_token)):
            if value is not None and (isinstance(value, bool) or not isinstance(value, (int, np.integer))):
                raise ValueError(f"IntegerLookup: `{arg}` must be an integer or None. Received: {arg}={value!r}")
        super().__init__(max_tokens=max_tokens, num_oov_indices=num_oov_indices,
                         mask_token=None if mask_token is None else int(mask_token),
                         oov_token=None if oov_token is None else int(oov_token), vocabulary_dtype="int64",
                         vocabulary=vocabulary, idf_weights=idf_weights, invert=invert, output_mode=output_mode,
                         sparse=sparse, pad_to_max_tokens=pad_to_max_tokens, name=name, **kwargs)

    def _python_token(self, v):
        if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, np.integer)):
            raise _error(self, f"vocabulary entries must be integers; received {v!r}")
        return int(v)

    def _host_keys(self, x):
        a = to_host(self, x)
        if a.dtype.kind == "f" and a.size and np.all(a == np.round(a)):
            a = a.astype(np.int64)  # a float tensor of whole numbers (dlgpu casts model inputs to float32)
        if a.dtype.kind not in "iu":
            raise _error(self, f"inputs must be integers; received dtype {a.dtype} and shape {a.shape}")
        return a.astype(np.int64)

    def _oov_buckets(self, values):
        if self.oov_method == "farmhash":
            return stable_hash(values.tolist(), self.num_oov_indices, self.salt)
        return np.mod(values, self.num_oov_indices)


class Hashing(_HostLayer):
    """Hash each string or integer into ``num_bins`` bins (keras.layers.Hashing): FarmHash Fingerprint64 of its
    text, or SipHash keyed by ``salt``, as TensorFlow computes them for Keras (the same bins).
    With ``mask_value``, that value maps to 0 and the others to [1, num_bins)."""

    _symbolic_ok = True

    def __init__(self, num_bins, mask_value=None, salt=None, output_mode="int", sparse=False, **kwargs):
        super().__init__(**kwargs)
        if output_mode == "binary":
            output_mode = "multi_hot"
        if not isinstance(num_bins, (int, np.integer)) or isinstance(num_bins, bool) or num_bins <= 0:
            raise _error(self, f"`num_bins` must be a positive integer. Received: num_bins={num_bins!r}")
        if output_mode not in ("int", "one_hot", "multi_hot", "count"):
            raise _error(self, f"`output_mode` must be one of ('int', 'one_hot', 'multi_hot', 'count'). "
                               f"Received: output_mode={output_mode!r}")
        if sparse:
            raise NotImplementedError(f"Layer '{self.name}' (Hashing): `sparse=True` is not supported by dlgpu")
        if mask_value is not None and num_bins < 2:
            raise _error(self, f"with `mask_value` set, `num_bins` must be at least 2. Received: num_bins={num_bins}")
        if salt is not None:
            if isinstance(salt, (int, np.integer)) and not isinstance(salt, bool):
                salt = [int(salt), int(salt)]
            elif not (isinstance(salt, (list, tuple)) and len(salt) == 2
                      and all(isinstance(s, (int, np.integer)) for s in salt)):
                raise _error(self, f"`salt` must be an integer or a pair of integers. Received: salt={salt!r}")
            salt = [int(s) for s in salt]
            if any(s < 0 or s >= 2 ** 64 for s in salt):
                raise _error(self, f"`salt` values must lie in [0, 2**64). Received: salt={salt!r}")
        self.num_bins = int(num_bins)
        self.mask_value = mask_value
        self.salt = salt
        self.output_mode = output_mode
        self.sparse = False
        self.built = True

    def call(self, inputs):
        a = to_host(self, inputs)
        if a.dtype.kind in "USO":
            a = as_strings(self, a)
        elif a.dtype.kind == "f" and a.size and np.all(a == np.round(a)):
            a = a.astype(np.int64)
        elif a.dtype.kind not in "iu":
            raise _error(self, f"inputs must be strings or integers; received dtype {a.dtype} and shape {a.shape}")
        flat = a.reshape(-1)
        if flat.size == 0:
            bins = np.zeros(a.shape, np.int64)
        else:
            uniques, inverse = np.unique(flat, return_inverse=True)
            values = [int(u) if a.dtype.kind in "iu" else u for u in uniques.tolist()]
            if self.mask_value is None:
                hashed = stable_hash(values, self.num_bins, self.salt)
            else:
                hashed = stable_hash(values, self.num_bins - 1, self.salt) + 1
                hashed[np.array([v == self.mask_value for v in values], bool)] = 0
            bins = hashed[inverse.reshape(-1)].reshape(a.shape)
        if self.output_mode == "int":
            return to_device(bins)
        return to_device(encode(self, bins, self.output_mode, self.num_bins))

    def compute_output_shape(self, input_shape):
        input_shape = tuple(input_shape)
        if self.output_mode == "int":
            return input_shape
        if self.output_mode == "one_hot":
            if len(input_shape) > 1 and input_shape[-1] == 1:
                return input_shape[:-1] + (self.num_bins,)
            return input_shape + (self.num_bins,)
        return input_shape[:-1] + (self.num_bins,)

    def get_config(self):
        return {**super().get_config(), "num_bins": self.num_bins, "salt": self.salt, "mask_value": self.mask_value,
                "output_mode": self.output_mode, "sparse": self.sparse}
