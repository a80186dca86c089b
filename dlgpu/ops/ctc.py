"""Connectionist temporal classification: ``ctc_loss`` and ``ctc_decode`` with Keras 3's semantics.

``ctc_loss`` takes logits (softmax is applied inside, as in every Keras backend) and returns one loss per
sample.  It runs the forward (alpha) recursion in log space over the extended label sequence
``blank, l1, blank, l2, ..., blank`` -- vectorised over the batch and the label positions, one step per
time frame -- and the backward (beta) recursion only when a gradient is asked for; the gradient with
respect to the logits is then ``softmax - occupancy`` (Graves et al., 2006), one fused primitive.

A sample whose labels cannot be aligned to its frames (too many labels for ``output_length``) gets an
infinite loss, as ``tf.nn.ctc_loss`` and ``torch.nn.functional.ctc_loss`` give, and a zero gradient
(torch's ``zero_infinity`` convention for the gradient), so one bad sample does not poison a batch.
"""

from __future__ import annotations

import numpy as np

from dlgpu.autograd import Tensor
from dlgpu.ops._core import array_module, float_operand, make_result

__all__ = ["ctc_loss", "ctc_decode"]


def _raw(value):
    return value.data if isinstance(value, Tensor) else value


def _int_array(op, name, value, xp, shape):
    """An integer argument as an int64 array on ``xp``'s device, checked for dtype and shape."""
    data = _raw(value)
    if isinstance(data, (np.ndarray, np.generic)) or hasattr(data, "__cuda_array_interface__"):
        if array_module(data) is not xp:
            raise ValueError(f"{op}: `{name}` lives on a different device from the logits; dlgpu never copies "
                             f"between devices silently: move it explicitly, e.g. dlgpu.to_device(...).")
    data = xp.asarray(data)
    if data.dtype.kind not in "iu":
        if data.dtype.kind == "f" and bool(xp.all(data == xp.round(data))):
            data = data.astype(np.int64)
        else:
            raise ValueError(f"{op}: `{name}` must hold integers; received dtype {data.dtype}.")
    if data.shape != shape:
        raise ValueError(f"{op}: `{name}` must have shape {shape}; received {data.shape}.")
    return data.astype(np.int64, copy=False)


def _logsumexp3(a, b, c, xp):
    m = xp.maximum(xp.maximum(a, b), c)
    m = xp.where(m == -np.inf, 0, m)
    return m + xp.log(xp.exp(a - m) + xp.exp(b - m) + xp.exp(c - m))


def _shift_right(a, k, xp):
    """a[:, s - k] with -inf shifted in (the states s can be reached from)."""
    pad = xp.full(a.shape[:-1] + (k,), -np.inf, dtype=a.dtype)
    return xp.concatenate([pad, a], axis=-1)[..., :a.shape[-1]]


def _shift_left(a, k, xp):
    pad = xp.full(a.shape[:-1] + (k,), -np.inf, dtype=a.dtype)
    return xp.concatenate([a, pad], axis=-1)[..., k:]


def ctc_loss(target, output, target_length, output_length, mask_index=0):
    """Per-sample CTC loss, shape ``(batch,)``.

    target: ``(batch, max_label_length)`` integer labels (positions past ``target_length`` are ignored);
    output: ``(batch, max_time, num_classes)`` logits, *not* softmax-normalised;
    target_length, output_length: ``(batch,)`` integers; mask_index: the blank class.
    """
    output = float_operand(output)
    if output.data.dtype == np.float16:  # computed in float32 at least, as tf.nn.ctc_loss does
        from dlgpu.ops.math import cast
        output = cast(output, "float32")
    if output.ndim != 3:
        raise ValueError(f"ctc_loss: `output` must be (batch_size, max_length, num_classes) logits; received "
                         f"shape {output.shape}.")
    z = output.data
    xp = array_module(z)
    batch, time, classes = z.shape
    if time == 0 or classes == 0:
        raise ValueError(f"ctc_loss: `output` needs at least one frame and one class; received shape {z.shape}.")
    target_shape = getattr(_raw(target), "shape", None)
    if target_shape is None:
        target_shape = np.shape(target)
    if len(target_shape) != 2 or target_shape[0] != batch:
        raise ValueError(f"ctc_loss: `target` must be (batch_size, max_label_length) = ({batch}, L) integer "
                         f"labels; received shape {tuple(target_shape)} for output shape {z.shape}.")
    labels_max = target_shape[1]
    labels = _int_array("ctc_loss", "target", target, xp, tuple(target_shape))
    lab_len = _int_array("ctc_loss", "target_length", target_length, xp, (batch,))
    out_len = _int_array("ctc_loss", "output_length", output_length, xp, (batch,))
    mask_index = int(mask_index)
    if not 0 <= mask_index < classes:
        raise ValueError(f"ctc_loss: `mask_index` must lie in [0, {classes}); received {mask_index}.")
    valid = xp.arange(labels_max)[None, :] < lab_len[:, None]
    bad_label = valid & ((labels < 0) | (labels >= classes) | (labels == mask_index))
    bad = xp.stack([xp.any(bad_label), xp.any((lab_len < 0) | (lab_len > labels_max)),
                    xp.any((out_len < 0) | (out_len > time))])
    bad = [bool(v) for v in (bad.get() if hasattr(bad, "get") else bad)]  # one device sync for all checks
    if bad[0]:
        raise ValueError(f"ctc_loss: labels within `target_length` must lie in [0, {classes}) and differ from "
                         f"the blank `mask_index`={mask_index}.")
    if bad[1]:
        raise ValueError(f"ctc_loss: `target_length` must lie in [0, {labels_max}] (target.shape[1]).")
    if bad[2]:
        raise ValueError(f"ctc_loss: `output_length` must lie in [0, {time}] (output.shape[1]).")

    dtype = z.dtype
    width = 2 * labels_max + 1
    # the extended sequence: blank, l1, blank, l2, ..., blank (positions past the label length are blank too)
    ext = xp.full((batch, width), mask_index, dtype=np.int64)
    ext[:, 1::2] = xp.where(valid, labels, mask_index)
    # s-2 -> s skips a blank: only onto a label that differs from the previous label
    skip = xp.zeros((batch, width), dtype=bool)
    if labels_max > 1:
        skip[:, 3::2] = (labels[:, 1:] != labels[:, :-1]) & valid[:, 1:]
    ext_len = 2 * lab_len + 1

    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        logprobs = z - z.max(axis=-1, keepdims=True)
        logprobs = logprobs - xp.log(xp.exp(logprobs).sum(axis=-1, keepdims=True))
        # log y[b, t, ext[b, s]]: the emission of every extended state at every frame, shape (T, B, S)
        emit = xp.take_along_axis(logprobs, xp.broadcast_to(ext[:, None, :], (batch, time, width)), axis=2)
        emit = xp.ascontiguousarray(emit.transpose(1, 0, 2))
        neg_inf = xp.asarray(-np.inf, dtype=dtype)
        skip_from = xp.where(skip, 0, neg_inf).astype(dtype)      # added to alpha[s - 2]
        alphas = xp.empty((time, batch, width), dtype=dtype)
        # a path starts in the leading blank or on the first label
        alpha = xp.full((batch, width), -np.inf, dtype=dtype)
        alpha[:, :2] = 0
        alpha = xp.where((out_len > 0)[:, None], alpha + emit[0], -np.inf)
        alphas[0] = alpha
        for t in range(1, time):
            new = _logsumexp3(alpha, _shift_right(alpha, 1, xp), _shift_right(alpha, 2, xp) + skip_from, xp)
            alpha = xp.where((t < out_len)[:, None], new + emit[t], alpha)  # frozen past the sample's length
            alphas[t] = alpha
        last = xp.take_along_axis(alpha, ext_len[:, None] - 1, axis=1)[:, 0]
        before = xp.take_along_axis(alpha, xp.maximum(ext_len - 2, 0)[:, None], axis=1)[:, 0]
        before = xp.where(ext_len >= 2, before, -np.inf)
        m = xp.maximum(last, before)
        m_safe = xp.where(m == -np.inf, 0, m)
        logp = m_safe + xp.log(xp.exp(last - m_safe) + xp.exp(before - m_safe))
        # no frames at all: only the empty label sequence is possible
        logp = xp.where(out_len == 0, xp.where(lab_len == 0, 0, -np.inf), logp).astype(dtype)
    loss = -logp

    def backward(g):
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            # beta[t, s]: log probability of finishing from state s at frame t, emissions after t only
            skip_to = xp.where(_shift_left(skip, 2, xp), 0, neg_inf).astype(dtype)  # s -> s + 2
            end = xp.full((batch, width), -np.inf, dtype=dtype)
            positions = xp.arange(width)[None, :]
            end = xp.where((positions == ext_len[:, None] - 1) | (positions == ext_len[:, None] - 2), 0, end)
            end = end.astype(dtype)
            beta = end
            occupancy = xp.empty((time, batch, width), dtype=dtype)
            feasible = xp.isfinite(logp)
            shift = xp.where(feasible, logp, 0)[:, None]
            for t in range(time - 1, -1, -1):
                if t < time - 1:
                    nxt = beta + emit[t + 1]
                    new = _logsumexp3(nxt, _shift_left(nxt, 1, xp), _shift_left(nxt, 2, xp) + skip_to, xp)
                    beta = xp.where((t < out_len - 1)[:, None], new, end)
                occupancy[t] = xp.exp(alphas[t] + beta - shift)
            occupancy = xp.where(((xp.arange(time)[:, None] < out_len[None, :]) & feasible[None, :])[:, :, None],
                                 occupancy, 0)
            # sum the occupancy of the states that emit each class: (B, T, S) @ (B, S, C)
            onehot = (ext[:, :, None] == xp.arange(classes)[None, None, :]).astype(dtype)
            gamma = xp.matmul(occupancy.transpose(1, 0, 2), onehot)
            probs = xp.exp(logprobs)
            grad = probs * gamma.sum(axis=-1, keepdims=True) - gamma
        return (grad * g.astype(dtype, copy=False)[:, None, None],)
    return make_result(loss, (output,), backward)


def _greedy(xp, inputs, lengths, merge_repeated, mask_index):
    batch, time, _ = inputs.shape
    indices = inputs.argmax(axis=-1).astype(np.int32)
    scores = inputs.max(axis=-1)
    beyond = xp.arange(time)[None, :] >= lengths[:, None]
    indices = xp.where(beyond, mask_index, indices)
    scores = xp.where(beyond, 0, scores)
    if merge_repeated:
        repeat = xp.zeros_like(beyond)
        repeat[:, 1:] = indices[:, 1:] == indices[:, :-1]
        indices = xp.where(repeat, mask_index, indices)
    blank = indices == mask_index
    indices = xp.where(blank, -1, indices).astype(np.int32)
    # move the kept labels to the front, in order (a stable sort on "is blank")
    order = xp.argsort(xp.where(blank, time, xp.arange(time)[None, :]), axis=-1)  # unique keys: any sort
    indices = xp.take_along_axis(indices, order, axis=-1)
    return indices[None], -scores.sum(axis=1, keepdims=True)


def _beam_search(inputs, lengths, beam_width, top_paths, mask_index):
    """Prefix beam search on the host, following Keras's numpy backend (which matches tf.nn's) step by step:
    decoding is post-processing on small arrays, and its sets of unique prefixes do not map onto kernels."""
    batch, max_len, classes = inputs.shape
    inputs = inputs - inputs.max(axis=-1, keepdims=True)
    inputs = inputs - np.log(np.exp(inputs).sum(axis=-1, keepdims=True))
    beyond = np.arange(max_len)[None, :] >= lengths[:, None]
    # flipping the classes makes argsort's tie order match TensorFlow's
    inputs = np.flip(inputs, axis=2)
    mask_index = classes - mask_index - 1
    pad = -1
    width2 = 2 * beam_width
    init_paths = np.full((batch, width2, max_len), pad, dtype=np.int32)
    n_init = min(classes, beam_width)
    best = np.argsort(inputs[:, 0], axis=1)[:, -n_init:]
    init_paths[:, :n_init, 0] = np.where(best == mask_index, pad, best)
    init_scores = np.full((batch, width2), -np.inf, dtype=inputs.dtype)
    init_scores[:, :n_init] = np.take_along_axis(inputs[:, 0], best, axis=1)
    init_masked = init_paths[:, :, 0] == pad

    def merge(inverse, scores):
        top = np.max(scores)
        if not np.isfinite(top):
            top = 0.0
        summed = np.zeros_like(scores)
        np.add.at(summed, inverse, np.exp(scores - top))
        with np.errstate(divide="ignore"):
            return np.log(summed) + top

    def unique_paths(paths):
        paths, inverse = np.unique(paths, return_inverse=True, axis=0)
        short = width2 * classes - len(paths)
        if short > 0:
            paths = np.pad(paths, [[0, short], [0, 0]], constant_values=pad)
        return paths[:width2 * classes], inverse.reshape(-1)

    def step(paths, scores, masked, x):
        paths = np.repeat(paths, classes, axis=0)
        scores = np.repeat(scores, classes)
        masked_prev = np.repeat(masked, classes)
        tail_at = np.argmax(paths == pad, axis=1)
        rows = np.arange(width2 * classes)
        tails = np.where(tail_at == 0, pad, paths[rows, tail_at - 1])
        cls = np.arange(classes)
        cls[mask_index] = pad
        cls = np.tile(cls, width2)
        masked = cls == pad
        cls = np.where(~masked_prev & (tails == cls), pad, cls)
        paths[rows, tail_at] = cls
        scores = scores + np.tile(x, width2)
        paths, inverse = unique_paths(paths)
        emit = merge(inverse, np.where(masked, -np.inf, scores))
        blank = merge(inverse, np.where(masked, scores, -np.inf))
        top = np.argsort(np.logaddexp(emit, blank), kind="stable")[-beam_width:]
        paths = np.tile(paths[top], (2, 1))
        scores = np.concatenate([emit[top], blank[top]])
        masked = np.concatenate([np.zeros(beam_width, bool), np.ones(beam_width, bool)])
        return paths, scores, masked

    all_paths, all_scores = [], []
    for b in range(batch):
        paths, scores, masked = init_paths[b], init_scores[b], init_masked[b]
        for t in range(1, max_len):
            if not beyond[b, t]:
                paths, scores, masked = step(paths, scores, masked, inputs[b, t])
        paths, inverse = unique_paths(paths)
        scores = merge(inverse, scores)
        top = np.argsort(scores)[-top_paths:][::-1]
        all_paths.append(paths[top])
        all_scores.append(scores[top])
    paths = np.stack(all_paths)
    scores = np.stack(all_scores)
    paths = np.where(paths == pad, pad, classes - paths - 1).astype(np.int32)
    return np.transpose(paths, (1, 0, 2)), scores


def ctc_decode(inputs, sequence_lengths, strategy="greedy", beam_width=100, top_paths=1, merge_repeated=True,
               mask_index=0):
    """Decode CTC logits ``(batch, max_length, num_classes)``; Keras 3's results and layout.

    Returns ``(decoded, scores)``: decoded is int32 ``(top_paths, batch, max_length)`` with the labels packed
    to the front and -1 after them (top_paths is 1 for greedy); scores is ``(batch, top_paths)``: for greedy
    the negated sum of each frame's largest logit, for beam search each path's log probability.
    Not differentiable (decoding is a discrete search).
    """
    inputs = float_operand(inputs)
    data = inputs.data
    if data.dtype == np.float16:
        data = data.astype(np.float32)
    if data.ndim != 3:
        raise ValueError(f"ctc_decode: `inputs` must be (batch_size, max_length, num_classes); received shape "
                         f"{data.shape}.")
    xp = array_module(data)
    batch, time, classes = data.shape
    lengths = _int_array("ctc_decode", "sequence_lengths", sequence_lengths, xp, (batch,))
    if mask_index is None:
        mask_index = classes - 1
    mask_index = int(mask_index)
    if not 0 <= mask_index < classes:
        raise ValueError(f"ctc_decode: `mask_index` must lie in [0, {classes}); received {mask_index}.")
    if strategy == "greedy":
        decoded, scores = _greedy(xp, data, lengths, bool(merge_repeated), mask_index)
    elif strategy == "beam_search":
        if not merge_repeated:
            raise NotImplementedError("ctc_decode: strategy='beam_search' always merges repeated labels (as "
                                      "Keras's beam search does); merge_repeated=False is not supported with it.")
        if int(beam_width) < 1 or int(top_paths) < 1 or int(top_paths) > int(beam_width):
            raise ValueError(f"ctc_decode: need 1 <= top_paths <= beam_width; received top_paths={top_paths}, "
                             f"beam_width={beam_width}.")
        host = data.get() if hasattr(data, "get") else data
        host_len = lengths.get() if hasattr(lengths, "get") else lengths
        decoded, scores = _beam_search(np.asarray(host), np.asarray(host_len), int(beam_width), int(top_paths),
                                       mask_index)
        decoded, scores = xp.asarray(decoded), xp.asarray(scores.astype(data.dtype, copy=False))
    else:
        raise ValueError(f"ctc_decode: invalid strategy {strategy!r}; supported values are 'greedy' and "
                         f"'beam_search'.")
    return make_result(decoded, (), None), make_result(scores.astype(data.dtype, copy=False), (), None)
