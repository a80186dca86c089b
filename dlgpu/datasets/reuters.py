"""Reuters newswire topics: 11,228 newswires as word-index sequences, labelled with 46 topics.

``load_data(...)``, ``get_word_index()`` and ``get_label_names()`` are Keras's ``keras.datasets.reuters``
functions, with the same arguments, results and quirks (see ``_sequences.py``).  They read Keras's
``reuters.npz`` and ``reuters_word_index.json`` from $DLGPU_DATASETS/reuters/, else the cache, else
Keras's bucket.
"""

from __future__ import annotations

import numbers

import numpy as np

from . import _files, _pickles, _sequences

NAME = "reuters"
DATA = "reuters.npz"
WORD_INDEX = "reuters_word_index.json"

LABEL_NAMES = (
    "cocoa", "grain", "veg-oil", "earn", "acq", "wheat", "copper", "housing", "money-supply", "coffee",
    "sugar", "trade", "reserves", "ship", "cotton", "carcass", "crude", "nat-gas", "cpi", "money-fx",
    "interest", "gnp", "meal-feed", "alum", "oilseed", "gold", "tin", "strategic-metal", "livestock", "retail",
    "ipi", "iron-steel", "rubber", "heat", "jobs", "lei", "bop", "zinc", "orange", "pet-chem",
    "dlr", "gas", "silver", "wpi", "hog", "lead",
)


def load_data(path=DATA, num_words=None, skip_top=0, maxlen=None, test_split=0.2, seed=113, start_char=1, oov_char=2,
              index_from=3):
    """Load Reuters as ``(x_train, y_train), (x_test, y_test)``.

    x: 1-D object arrays of lists of ints, encoded as in ``imdb.load_data``.  y: int64 topic indices
    0-45 (see ``get_label_names``).  The newswires are shuffled with ``seed`` (numpy RandomState, as
    Keras), filtered by ``maxlen``, and the last ``test_split`` fraction becomes the test set.
    """
    _sequences.check_arguments("reuters.load_data", num_words, skip_top, maxlen, start_char, oov_char, index_from)
    if isinstance(test_split, bool) or not isinstance(test_split, numbers.Real) or not 0 <= test_split <= 1:
        raise ValueError(
            f"reuters.load_data: `test_split` must be a number between 0 and 1. Received: test_split={test_split!r}."
        )
    source, data = _files.read_keras_file(NAME, DATA, path)  # verified before its object arrays are unpickled
    xs, labels = _pickles.require(_pickles.load_npz(data, source), ("x", "y"), source)
    _sequences.check_sequences(xs, labels, source, "x", "y")

    order = np.arange(len(xs))
    np.random.RandomState(seed).shuffle(order)
    xs, labels = xs[order], labels[order]

    seqs = _sequences.Sequences.from_object_array(xs, start_char, index_from)
    if maxlen:
        keep = seqs.lengths < maxlen
        seqs, labels = seqs.select(keep), labels[keep]
        if not len(seqs):
            raise ValueError(f"reuters.load_data: no sequence is shorter than maxlen={maxlen}. Increase maxlen.")
    if not num_words:
        num_words = seqs.max_word()
    x = seqs.limit_vocabulary(num_words, skip_top, oov_char).to_object_array()
    split = int(len(x) * (1 - test_split))
    return (x[:split], np.array(labels[:split])), (x[split:], np.array(labels[split:]))


def get_word_index(path=WORD_INDEX):
    """The dict mapping each word to its frequency rank (1 = most frequent); add ``index_from`` for ``x``."""
    return _files.read_keras_json(NAME, WORD_INDEX, path)


def get_label_names():
    """The 46 topic names, indexed by label, as a tuple (as Keras returns)."""
    return LABEL_NAMES
