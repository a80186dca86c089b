"""The word-index processing of Keras's IMDB and Reuters loaders, on flat numpy arrays.

Keras walks every word of every review in Python list comprehensions; the rules are kept exactly,
quirks included, but applied to one flat int64 array of all words plus the per-sequence lengths:

- ``start_char`` (unless None) is put in front of each sequence and every word is shifted by
  ``index_from``;
- ``maxlen`` (when truthy) drops, not truncates, every sequence whose length (start mark included)
  is not *strictly* below it;
- ``num_words`` (when falsy) becomes the largest index left, and then every index outside
  ``skip_top <= w < num_words`` becomes ``oov_char`` (or is dropped when ``oov_char`` is None).  So
  by default the largest index itself is out of vocabulary, and ``skip_top`` can hit ``start_char``.
"""

from __future__ import annotations

import itertools
import numbers

import numpy as np

from ._errors import DatasetFormatError


class Sequences:
    """Sequences as one flat int64 array of words and the int64 length of each."""

    def __init__(self, flat, lengths):
        self.flat, self.lengths = flat, lengths

    @classmethod
    def from_object_array(cls, seqs, start_char, index_from):
        lengths = np.fromiter(map(len, seqs), dtype=np.int64, count=len(seqs))
        words = np.fromiter(itertools.chain.from_iterable(seqs), dtype=np.int64, count=int(lengths.sum()))
        words += index_from
        if start_char is None:
            return cls(words, lengths)
        lengths += 1
        flat = np.empty(words.size + len(seqs), dtype=np.int64)
        is_start = np.zeros(flat.size, dtype=bool)
        is_start[np.cumsum(lengths) - lengths] = True
        flat[is_start] = start_char
        flat[~is_start] = words
        return cls(flat, lengths)

    def __len__(self):
        return len(self.lengths)

    def select(self, keep):
        """The sequences where the per-sequence boolean ``keep`` is True."""
        return Sequences(self.flat[np.repeat(keep, self.lengths)], self.lengths[keep])

    def max_word(self):
        return int(self.flat.max()) if self.flat.size else 0

    def limit_vocabulary(self, num_words, skip_top, oov_char):
        in_vocabulary = (self.flat >= skip_top) & (self.flat < num_words)
        if oov_char is not None:
            return Sequences(np.where(in_vocabulary, self.flat, oov_char), self.lengths)
        owner = np.repeat(np.arange(len(self)), self.lengths)
        kept = np.bincount(owner[in_vocabulary], minlength=len(self)).astype(np.int64)
        return Sequences(self.flat[in_vocabulary], kept)

    def to_object_array(self):
        """A 1-D object array of lists of Python ints, as Keras returns (1-D even when all lengths agree)."""
        words = self.flat.tolist()
        ends = np.cumsum(self.lengths).tolist()
        out = np.empty(len(self), dtype=object)
        start = 0
        for i, end in enumerate(ends):
            out[i] = words[start:end]
            start = end
        return out


def check_int(function, name, value, *, optional=False, minimum=None):
    """Raise ValueError naming ``function`` and the argument unless ``value`` is an int (or None if optional)."""
    if value is None and optional:
        return
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or (minimum is not None and value < minimum):
        what = "an integer" + (f" >= {minimum}" if minimum is not None else "") + (" or None" if optional else "")
        raise ValueError(f"{function}: `{name}` must be {what}. Received: {name}={value!r}.")


def check_arguments(function, num_words, skip_top, maxlen, start_char, oov_char, index_from):
    check_int(function, "num_words", num_words, optional=True, minimum=0)
    check_int(function, "skip_top", skip_top, minimum=0)
    check_int(function, "maxlen", maxlen, optional=True, minimum=0)
    check_int(function, "start_char", start_char, optional=True)
    check_int(function, "oov_char", oov_char, optional=True)
    check_int(function, "index_from", index_from)


def check_sequences(x, y, source, x_key, y_key):
    if not isinstance(x, np.ndarray) or x.ndim != 1 or not isinstance(y, np.ndarray) or y.shape != x.shape:
        raise DatasetFormatError(
            f"{source}: {x_key} {getattr(x, 'shape', type(x).__name__)} and "
            f"{y_key} {getattr(y, 'shape', type(y).__name__)}; "
            "expected a 1-D array of sequences and one label per sequence."
        )
