"""The index plan: Dataset's fast path over ``from_tensor_slices`` arrays.

While a pipeline is ``from_tensor_slices`` followed only by shuffle, repeat, take, skip, cache and prefetch,
each step rewrites a stream of sample *indices* (chunks: a range, or an int64 array) instead of elements;
``batch`` then cuts the stream into batches and gathers each from the source arrays at once (see the
dlgpu/data/dataset.py docstring).  These helpers are that machinery, free of Dataset itself.
"""

from __future__ import annotations

import itertools

import numpy as np

from dlgpu.data import structure as st


class _Plan:
    """Elements ``arrays[i]`` for the indices ``chunks()`` yields, chunk by chunk (a range or an int64 array
    each), one fresh run per iteration."""

    def __init__(self, arrays, chunks):
        self.arrays, self.chunks = arrays, chunks


def _gather(arrays, index):
    return st.map_structure(lambda a: a[index], arrays)


def _index_batches(chunks, batch_size, drop_remainder):
    """The indices of each batch: ``batch_size`` consecutive entries of the chunk stream, as a slice when
    they come from one range (a view, as fit slices unshuffled arrays), else one int64 array."""
    pending, count = [], 0
    for chunk in chunks:
        pos = 0
        while pos < len(chunk):
            piece = chunk[pos:pos + batch_size - count]
            pending.append(piece)
            count += len(piece)
            pos += len(piece)
            if count == batch_size:
                yield _join(pending)
                pending, count = [], 0
    if pending and not drop_remainder:
        yield _join(pending)


def _join(pieces):
    if len(pieces) == 1 and isinstance(pieces[0], range) and pieces[0].step == 1:
        return slice(pieces[0].start, pieces[0].stop)
    if len(pieces) == 1:
        return np.asarray(pieces[0])
    return np.concatenate([_as_indices(p) for p in pieces])


def _as_indices(chunk):
    """A chunk (a range or an int64 array) as an int64 array."""
    return np.arange(chunk.start, chunk.stop, chunk.step) if isinstance(chunk, range) else chunk


def _buffer_shuffle(chunks, buffer_size, rng):
    """tf.data's shuffle over a stream of chunks (lists of items), yielding chunks of output: a buffer holds
    the next ``buffer_size`` items; each output is a uniformly drawn buffer entry, whose slot the next input
    item takes; once the input ends the buffer empties in random order.  So an item can come out at most
    ``buffer_size - 1`` places earlier than it went in; with a buffer at least as long as the stream this is
    a uniform random permutation."""
    buffer = []
    for chunk in chunks:
        if len(buffer) < buffer_size:
            fill = buffer_size - len(buffer)
            buffer.extend(chunk[:fill])
            chunk = chunk[fill:]
        if not chunk:
            continue
        draws = rng.integers(0, buffer_size, len(chunk)).tolist()
        out = []
        for item, j in zip(chunk, draws):
            out.append(buffer[j])
            buffer[j] = item
        yield out
    if buffer:
        yield [buffer[j] for j in rng.permutation(len(buffer)).tolist()]


def _chunked(iterator, size=256):
    while True:
        chunk = list(itertools.islice(iterator, size))
        if not chunk:
            return
        yield chunk
