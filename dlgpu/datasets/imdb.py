"""IMDB movie-review sentiment: 25,000 training and 25,000 test reviews as word-index sequences, labels 0/1.

``load_data(...)`` and ``get_word_index()`` are Keras's ``keras.datasets.imdb`` functions, with the same
arguments, results and quirks (see ``_sequences.py``).  They read Keras's ``imdb.npz`` and
``imdb_word_index.json`` from $DLGPU_DATASETS/imdb/, else the cache, else Keras's bucket.
"""

from __future__ import annotations

import numpy as np

from . import _files, _pickles, _sequences

NAME = "imdb"
DATA = "imdb.npz"
WORD_INDEX = "imdb_word_index.json"


def load_data(path=DATA, num_words=None, skip_top=0, maxlen=None, seed=113, start_char=1, oov_char=2, index_from=3,
              **kwargs):
    """Load IMDB as ``(x_train, y_train), (x_test, y_test)``.

    x: 1-D object arrays of lists of ints, each list a review: ``start_char``, then the words' frequency
    ranks plus ``index_from``; ranks outside ``skip_top <= w < num_words`` become ``oov_char`` (dropped if
    None).  With ``maxlen``, reviews of ``maxlen`` words or more are left out.  y: int64 arrays of 0/1.
    ``seed`` shuffles train and test (numpy RandomState, as Keras, so the order matches Keras's).
    ``path`` is the local file name (relative to the dataset directory, or absolute).
    """
    if kwargs:
        hint = " (Keras 1's nb_words is num_words)" if "nb_words" in kwargs else ""
        raise TypeError(f"imdb.load_data: unrecognized keyword arguments {sorted(kwargs)}{hint}.")
    _sequences.check_arguments("imdb.load_data", num_words, skip_top, maxlen, start_char, oov_char, index_from)
    source, data = _files.read_keras_file(NAME, DATA, path)  # verified before its object arrays are unpickled
    arrays = _pickles.load_npz(data, source)
    x_train, y_train, x_test, y_test = _pickles.require(arrays, ("x_train", "y_train", "x_test", "y_test"), source)
    _sequences.check_sequences(x_train, y_train, source, "x_train", "y_train")
    _sequences.check_sequences(x_test, y_test, source, "x_test", "y_test")

    # One generator shuffles train, then test, exactly as Keras draws them.
    rng = np.random.RandomState(seed)
    order = np.arange(len(x_train))
    rng.shuffle(order)
    x_train, y_train = x_train[order], y_train[order]
    order = np.arange(len(x_test))
    rng.shuffle(order)
    x_test, y_test = x_test[order], y_test[order]

    train = _sequences.Sequences.from_object_array(x_train, start_char, index_from)
    test = _sequences.Sequences.from_object_array(x_test, start_char, index_from)
    if maxlen:
        keep_train, keep_test = train.lengths < maxlen, test.lengths < maxlen
        train, y_train = train.select(keep_train), y_train[keep_train]
        test, y_test = test.select(keep_test), y_test[keep_test]
        if not len(train) or not len(test):
            raise ValueError(
                f"imdb.load_data: after filtering for sequences shorter than maxlen={maxlen}, no sequence was kept "
                "(in the training or the test set). Increase maxlen."
            )
    if not num_words:
        num_words = max(train.max_word(), test.max_word())
    train = train.limit_vocabulary(num_words, skip_top, oov_char)
    test = test.limit_vocabulary(num_words, skip_top, oov_char)
    return (train.to_object_array(), np.array(y_train)), (test.to_object_array(), np.array(y_test))


def get_word_index(path=WORD_INDEX):
    """The dict mapping each word to its frequency rank (1 = most frequent); add ``index_from`` for ``x``."""
    return _files.read_keras_json(NAME, WORD_INDEX, path)

