"""Losses with the Keras 3 names, signatures, defaults and reductions.

Function forms (``mean_squared_error(y_true, y_pred)``) return one value per sample, as in Keras.
Class forms (``MeanSquaredError(reduction=...)``) reduce them, weighting by ``sample_weight``.

Cross-entropies always go through the fused, numerically stable ops ``ops.softmax_cross_entropy`` and
``ops.sigmoid_cross_entropy``.  With ``from_logits=False`` a prediction that came out of ``ops.softmax``
(or ``activations.sigmoid``) still carries its logits in ``y_pred._logits`` and the fused op runs on
them -- what Keras does with ``_keras_logits``.  Only a probability tensor without logits takes Keras's
clipped-log path (probabilities clipped to [1e-7, 1 - 1e-7]).

``get(identifier)`` returns a ``Loss`` *instance* for strings ("mse" -> ``MeanSquaredError()``), so the
trainer can always call ``loss(y_true, y_pred, sample_weight=...)`` and get a scalar.  (Keras returns the
bare function for "mse" and wraps it later in compile; we wrap it here.)
"""

from __future__ import annotations

import numbers

import numpy as np

from dlgpu import ops, tree
from dlgpu.autograd import Tensor
from dlgpu.backend import device as _device
from dlgpu.naming import auto_name
from dlgpu.ops._core import array_module
from dlgpu.utils import unknown_name_error

EPSILON = 1e-7
_REDUCTIONS = ("sum_over_batch_size", "sum", "mean", "mean_with_sample_weight", "none", None)


# -- conversion and shape helpers ----------------------------------------------------------------

def _pred(y_pred):
    """y_pred as a float Tensor (kept as is when it already is one, so its ``_logits`` survive)."""
    if isinstance(y_pred, Tensor):
        return y_pred if y_pred.data.dtype.kind == "f" else ops.cast(y_pred, "float32")
    return ops.convert_to_tensor(y_pred, dtype="float32")


def _like(y, ref, dtype="float32"):
    """y as a Tensor on ref's device (host labels follow a GPU prediction); dtype None keeps y's dtype."""
    if isinstance(y, Tensor):
        t = y
    else:
        data = y if isinstance(y, np.ndarray) or type(y).__module__.startswith("cupy") else np.asarray(y)
        t = Tensor(data)
    if type(t.data) is not type(ref.data) and not isinstance(ref.data, np.ndarray):
        t = Tensor(_device.to_device(t.data, ref.device))
    elif isinstance(ref.data, np.ndarray) and not isinstance(t.data, (np.ndarray, np.generic)):
        t = Tensor(_device.to_numpy(t.data))
    if dtype is not None and t.data.dtype != np.dtype(dtype):
        t = ops.cast(t, dtype)
    return t


def squeeze_or_expand_to_same_rank(x1, x2, expand_rank_1=True):
    """Keras's rule: when ranks differ by one and the longer has a trailing 1, make them equal."""
    r1, r2 = x1.ndim, x2.ndim
    if r1 == r2:
        return x1, x2
    if r1 == r2 + 1 and x1.shape[-1] == 1:
        if r2 == 1 and expand_rank_1:
            x2 = ops.expand_dims(x2, -1)
        else:
            x1 = ops.squeeze(x1, -1)
    if r2 == r1 + 1 and x2.shape[-1] == 1:
        if r1 == 1 and expand_rank_1:
            x1 = ops.expand_dims(x1, -1)
        else:
            x2 = ops.squeeze(x2, -1)
    return x1, x2


def _check_broadcastable(y_true, y_pred, name):
    try:
        np.broadcast_shapes(y_true.shape, y_pred.shape)
    except ValueError:
        raise ValueError(f"{name}: arguments `target` and `output` must have the same shape. "
                         f"Received: target.shape={y_true.shape}, output.shape={y_pred.shape}") from None


def _check_same_shape(y_true, y_pred, name):
    if y_true.ndim != y_pred.ndim:
        raise ValueError(f"{name}: arguments `target` and `output` must have the same rank (ndim). "
                         f"Received: target.shape={y_true.shape}, output.shape={y_pred.shape}")
    if y_true.shape != y_pred.shape:
        raise ValueError(f"{name}: arguments `target` and `output` must have the same shape. "
                         f"Received: target.shape={y_true.shape}, output.shape={y_pred.shape}")


def _regression_inputs(y_true, y_pred, name):
    y_pred = _pred(y_pred)
    y_true = _like(y_true, y_pred, y_pred.dtype)
    y_true, y_pred = squeeze_or_expand_to_same_rank(y_true, y_pred)
    _check_broadcastable(y_true, y_pred, name)
    return y_true, y_pred


def _softmax_logits(y_pred, axis):
    """The logits behind a softmax output along ``axis``, or None."""
    logits = getattr(y_pred, "_logits", None)
    if logits is not None and isinstance(logits[1], numbers.Integral) and logits[1] == axis % y_pred.ndim:
        return logits[0]
    return None


def _sigmoid_logits(y_pred):
    logits = getattr(y_pred, "_logits", None)
    if logits is not None and logits[1] == "sigmoid":
        return logits[0]
    return None


# -- sparse labels ---------------------------------------------------------------------------------

def sparse_labels(y_true, num_classes, name="sparse_categorical_crossentropy", pred_shape=None, ignore_class=None):
    """Integer class ids as an int32 array on the labels' device, checked to lie in [0, num_classes).

    Float labels are accepted when they are whole numbers (Keras casts them); NaN, inf, fractions and
    out-of-range ids raise a ValueError naming the loss, the shapes and the offending values.  Positions
    equal to ``ignore_class`` are exempt.  One device sync (a single ``any``) when all is well.
    """
    data = y_true.data if isinstance(y_true, Tensor) else y_true
    if not (isinstance(data, np.ndarray) or type(data).__module__.startswith("cupy")):
        data = np.asarray(data)
    xp = array_module(data)

    def shown():  # built only for an error: this check runs every training step
        return f"y_true.shape={tuple(data.shape)}" + ("" if pred_shape is None else f", y_pred.shape={tuple(pred_shape)}")
    kind = data.dtype.kind
    if kind == "b":
        data = data.astype(np.int32)
        kind = "i"
    if kind not in "iuf":
        raise ValueError(f"{name}: labels must be integer class ids; received dtype {data.dtype} ({shown()}).")
    valid = None if ignore_class is None else data != ignore_class
    if kind == "f":
        bad = ~xp.isfinite(data) | (xp.floor(data) != data)
        if valid is not None:
            bad &= valid
        if bool(bad.any()):
            example = _device.to_numpy(data[bad][:3]).tolist()
            raise ValueError(f"{name}: labels must be whole-number class ids in [0, {num_classes}); received "
                             f"float labels such as {example} ({shown()}).")
        data = data.astype(np.int64)  # whole floats are cast, as Keras does (int64 so huge values stay visible)
    out_of_range = (data < 0) | (data >= num_classes)
    if valid is not None:
        out_of_range &= valid
    if bool(out_of_range.any()):
        checked = data if valid is None else data[valid]
        lo, hi = int(checked.min()), int(checked.max())
        first = int(out_of_range.reshape(-1).argmax())
        raise ValueError(f"{name}: labels must be integers in [0, {num_classes}) because y_pred has {num_classes} "
                         f"classes; received label {int(data.reshape(-1)[first])} at index {first} (labels range "
                         f"from {lo} to {hi}; {shown()}).")
    if valid is not None:
        data = xp.where(valid, data, 0)
    return data if data.dtype == np.int32 else data.astype(np.int32)


# -- function forms (one value per sample) --------------------------------------------------------

def mean_squared_error(y_true, y_pred):
    y_true, y_pred = _regression_inputs(y_true, y_pred, "mean_squared_error")
    return ops.mean(ops.square(ops.subtract(y_true, y_pred)), axis=-1)


def mean_absolute_error(y_true, y_pred):
    y_true, y_pred = _regression_inputs(y_true, y_pred, "mean_absolute_error")
    return ops.mean(ops.abs(ops.subtract(y_true, y_pred)), axis=-1)


def mean_absolute_percentage_error(y_true, y_pred):
    y_true, y_pred = _regression_inputs(y_true, y_pred, "mean_absolute_percentage_error")
    diff = ops.abs(ops.divide(ops.subtract(y_true, y_pred), ops.maximum(ops.abs(y_true), EPSILON)))
    return ops.multiply(ops.mean(diff, axis=-1), 100.0)


def mean_squared_logarithmic_error(y_true, y_pred):
    y_true, y_pred = _regression_inputs(y_true, y_pred, "mean_squared_logarithmic_error")
    first = ops.log(ops.add(ops.maximum(y_pred, EPSILON), 1.0))
    second = ops.log(ops.add(ops.maximum(y_true, EPSILON), 1.0))
    return ops.mean(ops.square(ops.subtract(first, second)), axis=-1)


def huber(y_true, y_pred, delta=1.0):
    y_true, y_pred = _regression_inputs(y_true, y_pred, "huber")
    error = ops.subtract(y_pred, y_true)
    abs_error = ops.abs(error)
    quadratic = ops.multiply(ops.square(error), 0.5)
    linear = ops.subtract(ops.multiply(abs_error, float(delta)), 0.5 * float(delta) ** 2)
    return ops.mean(ops.where(ops.less_equal(abs_error, float(delta)), quadratic, linear), axis=-1)


def log_cosh(y_true, y_pred):
    # log(cosh(x)) = x + softplus(-2x) - log(2): finite for large |x|.
    y_true, y_pred = _regression_inputs(y_true, y_pred, "log_cosh")
    x = ops.subtract(y_pred, y_true)
    values = ops.subtract(ops.add(x, ops.softplus(ops.multiply(x, -2.0))), float(np.log(2.0)))
    return ops.mean(values, axis=-1)


def cosine_similarity(y_true, y_pred, axis=-1):
    y_true, y_pred = _regression_inputs(y_true, y_pred, "cosine_similarity")

    def normalize(x):
        norm = ops.sqrt(ops.sum(ops.square(x), axis=axis, keepdims=True))
        return ops.divide(x, ops.maximum(norm, 1e-12))
    return ops.negative(ops.sum(ops.multiply(normalize(y_true), normalize(y_pred)), axis=axis))


def _hinge_labels(y_true):
    d = y_true.data
    xp = array_module(d)
    if bool(xp.all((d == 0) | (d == 1))):
        return ops.subtract(ops.multiply(y_true, 2.0), 1.0)
    return y_true


def hinge(y_true, y_pred):
    y_true, y_pred = _regression_inputs(y_true, y_pred, "hinge")
    return ops.mean(ops.relu(ops.subtract(1.0, ops.multiply(_hinge_labels(y_true), y_pred))), axis=-1)


def squared_hinge(y_true, y_pred):
    y_true, y_pred = _regression_inputs(y_true, y_pred, "squared_hinge")
    return ops.mean(ops.square(ops.relu(ops.subtract(1.0, ops.multiply(_hinge_labels(y_true), y_pred)))), axis=-1)


def categorical_hinge(y_true, y_pred):
    y_true, y_pred = _regression_inputs(y_true, y_pred, "categorical_hinge")
    pos = ops.sum(ops.multiply(y_true, y_pred), axis=-1)
    neg = ops.max(ops.multiply(ops.subtract(1.0, y_true), y_pred), axis=-1)
    return ops.relu(ops.add(ops.subtract(neg, pos), 1.0))


def kl_divergence(y_true, y_pred):
    y_true, y_pred = _regression_inputs(y_true, y_pred, "kl_divergence")
    y_true = ops.clip(y_true, EPSILON, 1.0)
    y_pred = ops.clip(y_pred, EPSILON, 1.0)
    return ops.sum(ops.multiply(y_true, ops.log(ops.divide(y_true, y_pred))), axis=-1)


def poisson(y_true, y_pred):
    y_true, y_pred = _regression_inputs(y_true, y_pred, "poisson")
    return ops.mean(ops.subtract(y_pred, ops.multiply(y_true, ops.log(ops.add(y_pred, EPSILON)))), axis=-1)


def _categorical_inputs(y_true, y_pred, label_smoothing, axis, name):
    """Distribution targets of y_pred's shape and dtype, label-smoothed over ``axis`` (the classes): what
    the categorical cross-entropies take."""
    if isinstance(axis, bool):
        raise ValueError(f"{name}: `axis` must be an integer; received axis={axis}")
    y_pred = _pred(y_pred)
    y_true = _like(y_true, y_pred, y_pred.dtype)
    _check_same_shape(y_true, y_pred, name)
    if label_smoothing:
        classes = y_pred.shape[axis]
        y_true = ops.add(ops.multiply(y_true, 1.0 - label_smoothing), label_smoothing / classes)
    return y_true, y_pred


def categorical_crossentropy(y_true, y_pred, from_logits=False, label_smoothing=0.0, axis=-1):
    """Per-sample cross-entropy against distributions (one-hot or soft) along ``axis``."""
    y_true, y_pred = _categorical_inputs(y_true, y_pred, label_smoothing, axis, "categorical_crossentropy")
    logits = y_pred if from_logits else _softmax_logits(y_pred, axis)
    if logits is not None:
        return ops.softmax_cross_entropy(logits, y_true, axis=axis)
    # Probabilities without logits: Keras's normalise, clip, log.
    probs = ops.divide(y_pred, ops.sum(y_pred, axis=axis, keepdims=True))
    probs = ops.clip(probs, EPSILON, 1.0 - EPSILON)
    return ops.negative(ops.sum(ops.multiply(y_true, ops.log(probs)), axis=axis))


def sparse_categorical_crossentropy(y_true, y_pred, from_logits=False, ignore_class=None, axis=-1):
    """Per-sample cross-entropy against integer class ids (shape y_pred.shape without ``axis``)."""
    y_pred = _pred(y_pred)
    ax = axis % y_pred.ndim
    labels_shape = tuple(np.shape(y_true.data if isinstance(y_true, Tensor) else y_true))
    expected = y_pred.shape[:ax] + y_pred.shape[ax + 1:]
    if len(labels_shape) == y_pred.ndim and labels_shape[-1:] == (1,):
        labels_shape = labels_shape[:-1]
    if labels_shape != expected:
        raise ValueError("sparse_categorical_crossentropy: arguments `target` and `output` must have the same shape "
                         "up until the last dimension (target holds class ids, output one score per class). "
                         f"Received: target.shape={tuple(np.shape(getattr(y_true, 'data', y_true)))}, "
                         f"output.shape={y_pred.shape}")
    labels = sparse_labels(y_true, y_pred.shape[ax], "sparse_categorical_crossentropy", y_pred.shape, ignore_class)
    labels = _like(labels.reshape(expected), y_pred, None)
    logits = y_pred if from_logits else _softmax_logits(y_pred, ax)
    if logits is not None:
        values = ops.softmax_cross_entropy(logits, labels, axis=ax)
    else:
        probs = ops.divide(y_pred, ops.sum(y_pred, axis=ax, keepdims=True))
        log_probs = ops.log(ops.clip(probs, EPSILON, 1.0 - EPSILON))
        picked = ops.take_along_axis(log_probs, ops.expand_dims(labels, ax), axis=ax)
        values = ops.negative(ops.squeeze(picked, ax))
    if ignore_class is not None:
        raw = _like(y_true, y_pred, None).data.reshape(expected)
        values = ops.multiply(values, Tensor((raw != ignore_class).astype(values.data.dtype)))
    return values


def binary_crossentropy(y_true, y_pred, from_logits=False, label_smoothing=0.0, axis=-1):
    """Mean over ``axis`` of the elementwise binary cross-entropy."""
    y_pred = _pred(y_pred)
    y_true = _like(y_true, y_pred, y_pred.dtype)
    _check_same_shape(y_true, y_pred, "binary_crossentropy")
    if label_smoothing:
        y_true = ops.add(ops.multiply(y_true, 1.0 - label_smoothing), 0.5 * label_smoothing)
    logits = y_pred if from_logits else _sigmoid_logits(y_pred)
    if logits is not None:
        values = ops.sigmoid_cross_entropy(logits, y_true)
    else:
        p = ops.clip(y_pred, EPSILON, 1.0 - EPSILON)
        values = ops.negative(ops.add(ops.multiply(y_true, ops.log(p)),
                                      ops.multiply(ops.subtract(1.0, y_true), ops.log(ops.subtract(1.0, p)))))
    return ops.mean(values, axis=axis)


def _focal_alpha(alpha, y_pred, axis):
    """alpha as a number, or a per-class Tensor on y_pred's device shaped to broadcast along ``axis``."""
    if isinstance(alpha, numbers.Number):
        return float(alpha)
    values = np.asarray(_device.to_numpy(alpha.data) if isinstance(alpha, Tensor) else alpha, np.float32).reshape(-1)
    ax = axis % y_pred.ndim
    if values.shape[0] != y_pred.shape[ax]:
        raise ValueError(f"categorical_focal_crossentropy: `alpha` must be a number or hold one weight per class "
                         f"({y_pred.shape[ax]} along axis {axis}); received {values.shape[0]} values.")
    values = values.reshape((-1,) + (1,) * (y_pred.ndim - 1 - ax))
    return _like(values, y_pred)


def binary_focal_crossentropy(y_true, y_pred, apply_class_balancing=False, alpha=0.25, gamma=2.0, from_logits=False,
                              label_smoothing=0.0, axis=-1):
    """Mean over ``axis`` of the binary cross-entropy scaled by the focal factor ``(1 - p_t) ** gamma`` (and by
    ``alpha`` / ``1 - alpha`` for classes 1 / 0 with ``apply_class_balancing``)."""
    y_pred = _pred(y_pred)
    y_true = _like(y_true, y_pred, y_pred.dtype)
    _check_same_shape(y_true, y_pred, "binary_focal_crossentropy")
    if label_smoothing:
        y_true = ops.add(ops.multiply(y_true, 1.0 - label_smoothing), 0.5 * label_smoothing)
    logits = y_pred if from_logits else _sigmoid_logits(y_pred)
    if logits is not None:
        # Keras takes sigmoid then the clipped log; the fused op is the same away from saturation and keeps a
        # gradient there.
        probs = ops.sigmoid(logits)
        bce = ops.sigmoid_cross_entropy(logits, y_true)
    else:
        probs = y_pred
        p = ops.clip(y_pred, EPSILON, 1.0 - EPSILON)
        bce = ops.negative(ops.add(ops.multiply(y_true, ops.log(p)),
                                   ops.multiply(ops.subtract(1.0, y_true), ops.log(ops.subtract(1.0, p)))))
    p_t = ops.add(ops.multiply(y_true, probs), ops.multiply(ops.subtract(1.0, y_true), ops.subtract(1.0, probs)))
    values = bce
    if gamma:  # gamma 0 is plain cross-entropy (and 0 ** -1 would make the power's gradient NaN at p_t = 1)
        values = ops.multiply(ops.power(ops.subtract(1.0, p_t), float(gamma)), values)
    if apply_class_balancing:
        weight = ops.add(ops.multiply(y_true, float(alpha)), ops.multiply(ops.subtract(1.0, y_true), 1.0 - alpha))
        values = ops.multiply(weight, values)
    return ops.mean(values, axis=axis)


def categorical_focal_crossentropy(y_true, y_pred, alpha=0.25, gamma=2.0, from_logits=False, label_smoothing=0.0,
                                   axis=-1):
    """Sum over ``axis`` of ``alpha * (1 - p) ** gamma * (-y_true * log p)`` (Lin et al., 2018)."""
    y_true, y_pred = _categorical_inputs(y_true, y_pred, label_smoothing, axis, "categorical_focal_crossentropy")
    logits = y_pred if from_logits else _softmax_logits(y_pred, axis)
    if logits is not None:
        # log_softmax rather than Keras's clipped log of the softmax: equal away from saturation, finite always
        log_probs = ops.log_softmax(logits, axis=axis)
        probs = ops.exp(log_probs)
    else:
        probs = ops.divide(y_pred, ops.sum(y_pred, axis=axis, keepdims=True))
        probs = ops.clip(probs, EPSILON, 1.0 - EPSILON)
        log_probs = ops.log(probs)
    values = ops.negative(ops.multiply(y_true, log_probs))
    if gamma:
        values = ops.multiply(ops.power(ops.subtract(1.0, probs), float(gamma)), values)
    values = ops.multiply(_focal_alpha(alpha, y_pred, axis), values)
    return ops.sum(values, axis=axis)


def dice(y_true, y_pred, axis=None):
    """``1 - 2 sum(y_true y_pred) / (sum(y_true) + sum(y_pred) + eps)`` over ``axis`` (all axes by default)."""
    y_pred = _pred(y_pred)
    y_true = _like(y_true, y_pred, y_pred.dtype)
    _check_broadcastable(y_true, y_pred, "dice")
    axis = tuple(axis) if isinstance(axis, list) else axis
    intersection = ops.sum(ops.multiply(y_true, y_pred), axis=axis)
    denominator = ops.add(ops.add(ops.sum(y_true, axis=axis), ops.sum(y_pred, axis=axis)), EPSILON)
    return ops.subtract(1.0, ops.divide(ops.multiply(intersection, 2.0), denominator))


def tversky(y_true, y_pred, alpha=0.5, beta=0.5, axis=None):
    """``1 - TP / (TP + alpha FN + beta FP + eps)`` with soft counts over ``axis``, as Keras 3 computes it: its
    code weights the false negatives by ``alpha`` although its docstring (and Salehi et al., 2017) put
    ``alpha`` on the false positives; dlgpu gives Keras's numbers, so ported code trains the same."""
    y_pred = _pred(y_pred)
    y_true = _like(y_true, y_pred, y_pred.dtype)
    _check_broadcastable(y_true, y_pred, "tversky")
    axis = tuple(axis) if isinstance(axis, list) else axis
    intersection = ops.sum(ops.multiply(y_pred, y_true), axis=axis)
    fp = ops.sum(ops.multiply(ops.subtract(1.0, y_true), y_pred), axis=axis)
    fn = ops.sum(ops.multiply(y_true, ops.subtract(1.0, y_pred)), axis=axis)
    denominator = ops.add(ops.add(ops.add(intersection, ops.multiply(fn, float(alpha))),
                                  ops.multiply(fp, float(beta))), EPSILON)
    return ops.subtract(1.0, ops.divide(intersection, denominator))


def ctc(y_true, y_pred):
    """Per-sample CTC loss of ``(batch, max_time, classes)`` logits against ``(batch, max_length)`` labels
    padded with 0, which is also the blank: every frame counts and each label length is its count of
    non-zero labels (Keras 3's ``keras.losses.ctc``)."""
    y_pred = _pred(y_pred)
    if len(y_pred.shape) != 3:
        raise ValueError(f"ctc: logits `y_pred` must be (batch_size, max_length, num_classes); received shape "
                         f"{tuple(y_pred.shape)}.")
    xp = array_module(y_pred.data)
    labels = y_true.data if isinstance(y_true, Tensor) else y_true
    labels = xp.asarray(labels) if isinstance(labels, (list, tuple)) else labels
    if len(labels.shape) != 2:
        raise ValueError(f"ctc: targets `y_true` must be (batch_size, max_length) integer labels; received shape "
                         f"{tuple(labels.shape)}.")
    batch, time = y_pred.shape[:2]
    label_length = (labels != 0).sum(axis=-1).astype(np.int32)
    return ops.ctc_loss(labels, y_pred, label_length, xp.full((batch,), time, dtype=np.int32), mask_index=0)


def circle(y_true, y_pred, ref_labels=None, ref_embeddings=None, remove_diagonal=True, gamma=80, margin=0.4):
    """Per-sample Circle loss (Sun et al. 2020) of integer labels and L2-normalized embeddings, against the
    batch itself or given reference embeddings, with Keras 3's arithmetic.  A sample with no positive or no
    negative pair gives 0, and the result's mask drops it from a mean (Keras marks it the same way)."""
    y_pred = _pred(y_pred)
    labels = ops.cast(_like(y_true, y_pred, dtype=None), "int32")
    ref = y_pred if ref_embeddings is None else _like(ref_embeddings, y_pred)
    ref_labels = labels if ref_labels is None else ops.cast(_like(ref_labels, y_pred, dtype=None), "int32")
    if len(y_pred.shape) != 2 or len(ref.shape) != 2:
        raise ValueError(f"circle: embeddings must be (batch_size, dim); received y_pred {tuple(y_pred.shape)} "
                         f"and ref_embeddings {tuple(ref.shape)}.")
    distances = ops.maximum(ops.subtract(1.0, ops.matmul(y_pred, ops.transpose(ref))), 0.0)
    positive = ops.equal(ops.reshape(labels, (-1, 1)), ops.reshape(ref_labels, (1, -1)))
    negative = ops.logical_not(positive)
    if remove_diagonal:
        positive = ops.logical_and(positive, ops.logical_not(ops.eye(positive.shape[0], positive.shape[1],
                                                                     dtype="bool")))
    pos_weights = ops.maximum(ops.multiply(ops.add(distances, float(margin)), ops.cast(positive, "float32")), 0.0)
    neg_weights = ops.maximum(ops.multiply(ops.subtract(1.0 + margin, distances), ops.cast(negative, "float32")),
                              0.0)
    pos = ops.multiply(ops.multiply(pos_weights, ops.subtract(float(margin), distances)), -float(gamma))
    neg = ops.multiply(ops.multiply(neg_weights, ops.subtract(1.0 - margin, distances)), float(gamma))
    p_loss = ops.logsumexp(ops.where(positive, pos, float("-inf")), axis=1)
    n_loss = ops.logsumexp(ops.where(negative, neg, float("-inf")), axis=1)
    loss = ops.softplus(ops.add(p_loss, n_loss))
    loss._keras_mask = ops.greater(loss, 0.0)
    return loss


def categorical_generalized_cross_entropy(y_true, y_pred, q):
    """Per-sample (1 - p^q) / q of the probability p given to the integer label (Zhang & Sabuncu 2018)."""
    y_pred = _pred(y_pred)
    labels = _like(y_true, y_pred, dtype=None)
    one_hot = ops.one_hot(ops.cast(labels, "int32"), y_pred.shape[-1])
    p = ops.sum(ops.multiply(y_pred, ops.cast(one_hot, y_pred.dtype)), axis=-1)
    return ops.divide(ops.subtract(1.0, ops.power(p, float(q))), float(q))


# Keras names these too.
mse = MSE = mean_squared_error
mae = MAE = mean_absolute_error
mape = MAPE = mean_absolute_percentage_error
msle = MSLE = mean_squared_logarithmic_error
kld = KLD = kullback_leibler_divergence = kl_divergence
logcosh = log_cosh
bce = BCE = binary_crossentropy


# -- reduction -------------------------------------------------------------------------------------

def _standardize_reduction(reduction):
    if reduction not in _REDUCTIONS:
        raise ValueError(f"Invalid value for argument `reduction`. Expected one of {_REDUCTIONS}. "
                         f"Received: reduction={reduction!r}")
    return reduction


def _prediction_mask(y_pred):
    """The bool array of the mask riding on a model output (Keras: a masked output weights the loss, so
    padded steps of a sequence output count for nothing and the mean is over the real steps), or None."""
    mask = getattr(y_pred, "_keras_mask", None)
    if mask is None:
        return None
    data = mask.data if isinstance(mask, Tensor) else mask
    return data if data.dtype == bool else data != 0


_HALF = np.dtype(np.float16)


def half_to_float32(y_pred):
    """A float16 prediction (a mixed_float16 model's output) as float32, as Keras's Loss converts y_pred to
    its float32 dtype: the loss and its reduction would overflow or round in float16.  Its mask and the
    logits a softmax left on it (for the fused cross-entropy) come along, cast too; anything else is
    returned as it is, at the cost of one dtype comparison."""
    if not isinstance(y_pred, Tensor) or y_pred.data.dtype is not _HALF:
        return y_pred
    out = ops.cast(y_pred, "float32")
    out._keras_mask = y_pred._keras_mask
    if y_pred._logits is not None:  # (logits tensor, softmax axis or "sigmoid")
        logits, how = y_pred._logits
        out._logits = (ops.cast(logits, "float32"), how)
    return out


def _over_trailing_axes(sample_weight, values):
    """Per-sample weights (batch,) against per-step values (batch, steps): one weight for all of a sample's
    steps (Keras raises a shape error here; a weight per sample is what such a call means)."""
    extra = values.ndim - sample_weight.ndim
    if extra > 0 and sample_weight.ndim and sample_weight.shape[0] == values.shape[0]:
        return ops.reshape(sample_weight, tuple(sample_weight.shape) + (1,) * extra)
    return sample_weight


def reduce_weighted_values(values, sample_weight=None, reduction="sum_over_batch_size", mask=None):
    """Keras's reduction: weight (and mask), then none / sum / sum divided by the number of values."""
    if mask is not None:
        mask = mask.astype(values.data.dtype)
        if reduction in ("sum_over_batch_size", "mean"):
            valid = float(mask.sum())  # entries kept weigh total/valid, so the mean is over kept entries
            mask = mask * (mask.size / valid if valid else 0.0)
        weights = Tensor(mask) if sample_weight is None else None
        if sample_weight is not None:
            sw = _like(sample_weight, values)
            m, sw = squeeze_or_expand_to_same_rank(Tensor(mask), sw)
            weights = ops.multiply(_over_trailing_axes(sw, m), m)
        sample_weight = weights
    if sample_weight is not None:
        sample_weight = _like(sample_weight, values)
        values, sample_weight = squeeze_or_expand_to_same_rank(values, sample_weight)
        values = ops.multiply(values, _over_trailing_axes(sample_weight, values))
    if reduction is None or reduction == "none" or values.ndim == 0 or values.shape == (0,):
        return values
    if reduction == "sum":
        return ops.sum(values)
    if reduction == "mean_with_sample_weight" and sample_weight is not None:
        # divide_no_nan: an all-zero weight gives 0 (the weighted sum is 0 too), never NaN
        return ops.divide(ops.sum(values), ops.maximum(ops.sum(sample_weight), float(np.finfo(np.float32).tiny)))
    return ops.mean(values)


# -- classes ----------------------------------------------------------------------------------------

class Loss:
    """Base class: subclasses implement ``call(y_true, y_pred)`` returning per-sample values."""

    def __init__(self, name=None, reduction="sum_over_batch_size", dtype=None):
        self.name = name or auto_name(type(self).__name__)
        self.reduction = _standardize_reduction(reduction)
        self.dtype = dtype or "float32"

    def __call__(self, y_true, y_pred, sample_weight=None):
        y_pred = half_to_float32(y_pred)
        if type(self) is LossFunctionWrapper or type(self).__module__ != __name__:
            y_true = _targets_in_loss_dtype(y_true, y_pred, self.dtype)
        values = self.call(y_true, y_pred)
        # a mask on the per-sample values (Circle marks the samples it has no pairs for) joins the prediction's
        mask, own = _prediction_mask(y_pred), _prediction_mask(values)
        mask = own if mask is None else mask if own is None else mask & own
        return reduce_weighted_values(values, sample_weight, self.reduction, mask=mask)

    def call(self, y_true, y_pred):
        raise NotImplementedError(f"{type(self).__name__} must implement call(y_true, y_pred).")

    def get_config(self):
        return {"name": self.name, "reduction": self.reduction}

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def __repr__(self):
        return f"<{type(self).__name__} name={self.name!r} reduction={self.reduction!r}>"


def _targets_in_loss_dtype(y_true, y_pred, dtype):
    """Numeric targets cast to the loss's dtype, as Keras's Loss does before a user's function or ``call``
    sees them: integer labels ``y_true - y_pred`` would otherwise mix dtypes.  dlgpu's own losses check and
    cast their targets themselves (the sparse ones want integer class ids)."""
    if not isinstance(y_pred, Tensor) or y_true is None:
        return y_true
    def cast(y):
        data = y.data if isinstance(y, Tensor) else y
        current = data.dtype if hasattr(data, "dtype") else np.asarray(data).dtype  # (a device array stays put)
        if current.kind in "biuf" and current != np.dtype(dtype):
            return _like(y, y_pred, dtype)
        return y

    return tree.map_structure(cast, y_true)


class LossFunctionWrapper(Loss):
    """A Loss around a per-sample function ``fn(y_true, y_pred, **kwargs)``."""

    def __init__(self, fn, reduction="sum_over_batch_size", name=None, dtype=None, **kwargs):
        super().__init__(name=name or getattr(fn, "__name__", None), reduction=reduction, dtype=dtype)
        self.fn = fn
        self._fn_kwargs = kwargs

    def call(self, y_true, y_pred):
        if type(self) is LossFunctionWrapper and isinstance(y_pred, Tensor) and \
                not isinstance(y_true, (list, tuple, dict)) and y_true is not None:
            # As Keras's wrapper: a user's function sees targets (n,) beside predictions (n, 1) as (n, 1), not
            # broadcast into an (n, n) matrix (keras.io's contrastive loss is written for that).
            y_true, y_pred = squeeze_or_expand_to_same_rank(_like(y_true, y_pred, dtype=None), y_pred)
        return self.fn(y_true, y_pred, **self._fn_kwargs)

    def get_config(self):
        config = super().get_config()
        config.update(self._fn_kwargs)
        if type(self) is LossFunctionWrapper:
            config["fn"] = serialize(self.fn)
        return config

    @classmethod
    def from_config(cls, config):
        if cls is LossFunctionWrapper:
            config = dict(config)
            config["fn"] = deserialize(config["fn"]) if isinstance(config["fn"], (str, dict)) else config["fn"]
        return cls(**config)


class _MeanOfElementwise(LossFunctionWrapper):
    """Losses that are a mean over the last axis of an elementwise term: with the default reduction and
    no weights the whole loss is one ``mean`` of that term (MSE: one subtract, one square, one mean)."""

    def _elementwise(self, y_true, y_pred):
        raise NotImplementedError

    def __call__(self, y_true, y_pred, sample_weight=None):
        y_pred = half_to_float32(y_pred)
        if sample_weight is None and self.reduction in ("sum_over_batch_size", "mean") \
                and _prediction_mask(y_pred) is None:
            y_true, y_pred = _regression_inputs(y_true, y_pred, self.fn.__name__)
            if y_true.shape == y_pred.shape and y_pred.ndim:
                return ops.mean(self._elementwise(y_true, y_pred))
        return super().__call__(y_true, y_pred, sample_weight)

    def get_config(self):
        return Loss.get_config(self)


class MeanSquaredError(_MeanOfElementwise):
    def __init__(self, reduction="sum_over_batch_size", name="mean_squared_error", dtype=None):
        super().__init__(mean_squared_error, reduction=reduction, name=name, dtype=dtype)

    def _elementwise(self, y_true, y_pred):
        return ops.square(ops.subtract(y_true, y_pred))


class MeanAbsoluteError(_MeanOfElementwise):
    def __init__(self, reduction="sum_over_batch_size", name="mean_absolute_error", dtype=None):
        super().__init__(mean_absolute_error, reduction=reduction, name=name, dtype=dtype)

    def _elementwise(self, y_true, y_pred):
        return ops.abs(ops.subtract(y_true, y_pred))


def _simple(fn, default_name):
    """A Loss class around a per-sample function with no extra arguments."""
    class _Simple(LossFunctionWrapper):
        def __init__(self, reduction="sum_over_batch_size", name=default_name, dtype=None):
            super().__init__(fn, reduction=reduction, name=name, dtype=dtype)

        def get_config(self):
            return Loss.get_config(self)
    return _Simple


class MeanAbsolutePercentageError(_simple(mean_absolute_percentage_error, "mean_absolute_percentage_error")):
    pass


class MeanSquaredLogarithmicError(_simple(mean_squared_logarithmic_error, "mean_squared_logarithmic_error")):
    pass


class LogCosh(_simple(log_cosh, "log_cosh")):
    pass


class Hinge(_simple(hinge, "hinge")):
    pass


class SquaredHinge(_simple(squared_hinge, "squared_hinge")):
    pass


class CategoricalHinge(_simple(categorical_hinge, "categorical_hinge")):
    pass


class KLDivergence(_simple(kl_divergence, "kl_divergence")):
    pass


class Poisson(_simple(poisson, "poisson")):
    pass


class Huber(LossFunctionWrapper):
    def __init__(self, delta=1.0, reduction="sum_over_batch_size", name="huber_loss", dtype=None):
        super().__init__(huber, reduction=reduction, name=name, dtype=dtype, delta=delta)


class CosineSimilarity(LossFunctionWrapper):
    def __init__(self, axis=-1, reduction="sum_over_batch_size", name="cosine_similarity", dtype=None):
        super().__init__(cosine_similarity, reduction=reduction, name=name, dtype=dtype, axis=axis)


class BinaryCrossentropy(LossFunctionWrapper):
    def __init__(self, from_logits=False, label_smoothing=0.0, axis=-1, reduction="sum_over_batch_size",
                 name="binary_crossentropy", dtype=None):
        super().__init__(binary_crossentropy, reduction=reduction, name=name, dtype=dtype,
                         from_logits=from_logits, label_smoothing=label_smoothing, axis=axis)
        self.from_logits = from_logits
        self.label_smoothing = label_smoothing
        self.axis = axis

    def call(self, y_true, y_pred):
        return _call_binary(binary_crossentropy, y_true, y_pred, self._fn_kwargs)


def _call_binary(fn, y_true, y_pred, kwargs):
    """fn on Keras's same-rank pair (labels (B,) against predictions (B, 1)), keeping a sigmoid's logits."""
    y_pred = _pred(y_pred)
    y_true, y_pred_sq = squeeze_or_expand_to_same_rank(_like(y_true, y_pred), y_pred)
    if y_pred_sq is not y_pred:  # the squeezed copy lost _logits; keep the original's by squeezing it too
        logits = _sigmoid_logits(y_pred)
        if logits is not None:
            y_pred_sq._logits = (ops.reshape(logits, y_pred_sq.shape), "sigmoid")
    return fn(y_true, y_pred_sq, **kwargs)


class BinaryFocalCrossentropy(LossFunctionWrapper):
    def __init__(self, apply_class_balancing=False, alpha=0.25, gamma=2.0, from_logits=False, label_smoothing=0.0,
                 axis=-1, reduction="sum_over_batch_size", name="binary_focal_crossentropy", dtype=None):
        super().__init__(binary_focal_crossentropy, reduction=reduction, name=name, dtype=dtype,
                         apply_class_balancing=apply_class_balancing, alpha=alpha, gamma=gamma,
                         from_logits=from_logits, label_smoothing=label_smoothing, axis=axis)
        self.apply_class_balancing = apply_class_balancing
        self.alpha = alpha
        self.gamma = gamma
        self.from_logits = from_logits
        self.label_smoothing = label_smoothing
        self.axis = axis

    def call(self, y_true, y_pred):
        return _call_binary(binary_focal_crossentropy, y_true, y_pred, self._fn_kwargs)


class CategoricalCrossentropy(LossFunctionWrapper):
    def __init__(self, from_logits=False, label_smoothing=0.0, axis=-1, reduction="sum_over_batch_size",
                 name="categorical_crossentropy", dtype=None):
        super().__init__(categorical_crossentropy, reduction=reduction, name=name, dtype=dtype,
                         from_logits=from_logits, label_smoothing=label_smoothing, axis=axis)
        self.from_logits = from_logits
        self.label_smoothing = label_smoothing
        self.axis = axis


class CategoricalFocalCrossentropy(LossFunctionWrapper):
    def __init__(self, alpha=0.25, gamma=2.0, from_logits=False, label_smoothing=0.0, axis=-1,
                 reduction="sum_over_batch_size", name="categorical_focal_crossentropy", dtype=None):
        if not isinstance(alpha, numbers.Number):  # a list keeps its config JSON-friendly
            alpha = [float(a) for a in np.asarray(_device.to_numpy(alpha.data) if isinstance(alpha, Tensor)
                                                  else alpha).reshape(-1)]
        super().__init__(categorical_focal_crossentropy, reduction=reduction, name=name, dtype=dtype,
                         alpha=alpha, gamma=gamma, from_logits=from_logits, label_smoothing=label_smoothing,
                         axis=axis)
        self.alpha = alpha
        self.gamma = gamma
        self.from_logits = from_logits
        self.label_smoothing = label_smoothing
        self.axis = axis


class Dice(LossFunctionWrapper):
    def __init__(self, reduction="sum_over_batch_size", name="dice", axis=None, dtype=None):
        super().__init__(dice, reduction=reduction, name=name, dtype=dtype, axis=axis)
        self.axis = axis


class Tversky(LossFunctionWrapper):
    def __init__(self, alpha=0.5, beta=0.5, reduction="sum_over_batch_size", name="tversky", axis=None, dtype=None):
        super().__init__(tversky, reduction=reduction, name=name, dtype=dtype, alpha=alpha, beta=beta, axis=axis)
        self.alpha = alpha
        self.beta = beta
        self.axis = axis


class CTC(LossFunctionWrapper):
    def __init__(self, reduction="sum_over_batch_size", name="ctc", dtype=None):
        super().__init__(ctc, reduction=reduction, name=name, dtype=dtype)


class Circle(LossFunctionWrapper):
    def __init__(self, gamma=80.0, margin=0.4, remove_diagonal=True, reduction="sum_over_batch_size", name="circle",
                 dtype=None):
        super().__init__(circle, reduction=reduction, name=name, dtype=dtype, gamma=gamma, margin=margin,
                         remove_diagonal=remove_diagonal)
        self.gamma = gamma
        self.margin = margin
        self.remove_diagonal = remove_diagonal


class CategoricalGeneralizedCrossEntropy(LossFunctionWrapper):
    def __init__(self, q=0.5, reduction="sum_over_batch_size", name="categorical_generalized_cross_entropy",
                 dtype=None):
        if not 0 < q < 1:
            raise ValueError(f"CategoricalGeneralizedCrossEntropy: q must be in the interval (0, 1); received q={q}")
        super().__init__(categorical_generalized_cross_entropy, reduction=reduction, name=name, dtype=dtype, q=q)
        self.q = q


class SparseCategoricalCrossentropy(LossFunctionWrapper):
    def __init__(self, from_logits=False, ignore_class=None, reduction="sum_over_batch_size",
                 name="sparse_categorical_crossentropy", dtype=None):
        super().__init__(sparse_categorical_crossentropy, reduction=reduction, name=name, dtype=dtype,
                         from_logits=from_logits, ignore_class=ignore_class)
        self.from_logits = from_logits
        self.ignore_class = ignore_class

    def __call__(self, y_true, y_pred, sample_weight=None):
        y_pred = half_to_float32(y_pred)
        values = self.call(y_true, y_pred)
        mask = None
        if self.ignore_class is not None:
            raw = y_true.data if isinstance(y_true, Tensor) else np.asarray(y_true)
            mask = (raw.reshape(values.shape) != self.ignore_class)
            if type(mask) is not type(values.data):
                mask = _device.to_device(mask, values.device) if not isinstance(values.data, np.ndarray) \
                    else _device.to_numpy(mask)
        predicted = _prediction_mask(y_pred)
        if predicted is not None:
            mask = predicted if mask is None else mask & predicted
        return reduce_weighted_values(values, sample_weight, self.reduction, mask=mask)

    def check_labels(self, y_true, y_pred_shape):
        """Validate a whole label array (e.g. all of fit's y) before training starts."""
        sparse_labels(y_true, y_pred_shape[-1], self.name, y_pred_shape, self.ignore_class)


# -- lookup ---------------------------------------------------------------------------------------

_CLASSES = {cls.__name__: cls for cls in (
    MeanSquaredError, MeanAbsoluteError, MeanAbsolutePercentageError, MeanSquaredLogarithmicError, Huber,
    LogCosh, CosineSimilarity, Hinge, SquaredHinge, CategoricalHinge, KLDivergence, Poisson,
    BinaryCrossentropy, CategoricalCrossentropy, SparseCategoricalCrossentropy, BinaryFocalCrossentropy,
    CategoricalFocalCrossentropy, Dice, Tversky, CTC, Circle, CategoricalGeneralizedCrossEntropy, LossFunctionWrapper)}

_FUNCTIONS = {fn.__name__: fn for fn in (
    mean_squared_error, mean_absolute_error, mean_absolute_percentage_error, mean_squared_logarithmic_error,
    huber, log_cosh, cosine_similarity, hinge, squared_hinge, categorical_hinge, kl_divergence, poisson,
    binary_crossentropy, categorical_crossentropy, sparse_categorical_crossentropy, binary_focal_crossentropy,
    categorical_focal_crossentropy, dice, tversky, ctc, circle, categorical_generalized_cross_entropy)}

_ALIASES = {"mse": "mean_squared_error", "MSE": "mean_squared_error", "mae": "mean_absolute_error",
            "MAE": "mean_absolute_error", "mape": "mean_absolute_percentage_error",
            "MAPE": "mean_absolute_percentage_error", "msle": "mean_squared_logarithmic_error",
            "MSLE": "mean_squared_logarithmic_error", "kld": "kl_divergence", "KLD": "kl_divergence",
            "kullback_leibler_divergence": "kl_divergence", "logcosh": "log_cosh", "bce": "binary_crossentropy",
            "BCE": "binary_crossentropy", "huber_loss": "huber"}

# Which class a function name becomes when a string is resolved.
_CLASS_OF_FUNCTION = {
    "mean_squared_error": MeanSquaredError, "mean_absolute_error": MeanAbsoluteError,
    "mean_absolute_percentage_error": MeanAbsolutePercentageError,
    "mean_squared_logarithmic_error": MeanSquaredLogarithmicError, "huber": Huber, "log_cosh": LogCosh,
    "cosine_similarity": CosineSimilarity, "hinge": Hinge, "squared_hinge": SquaredHinge,
    "categorical_hinge": CategoricalHinge, "kl_divergence": KLDivergence, "poisson": Poisson,
    "binary_crossentropy": BinaryCrossentropy, "categorical_crossentropy": CategoricalCrossentropy,
    "sparse_categorical_crossentropy": SparseCategoricalCrossentropy,
    "binary_focal_crossentropy": BinaryFocalCrossentropy,
    "categorical_focal_crossentropy": CategoricalFocalCrossentropy,
    "dice": Dice, "tversky": Tversky, "ctc": CTC, "circle": Circle,
    "categorical_generalized_cross_entropy": CategoricalGeneralizedCrossEntropy}


def _valid_names():
    return sorted(set(_FUNCTIONS) | set(_ALIASES) | set(_CLASSES) - {"LossFunctionWrapper"})


def _unknown(identifier):
    return unknown_name_error("loss", identifier, _valid_names())


def get(identifier):
    """A Loss from a string, config dict, class, Loss instance or callable; None stays None.

    Strings give a Loss instance whose name is the string's function name ("mse" -> MeanSquaredError
    named "mean_squared_error"); other callables are returned unchanged (as in Keras).
    """
    if identifier is None or isinstance(identifier, Loss):
        return identifier
    if isinstance(identifier, dict):
        return deserialize(identifier)
    if isinstance(identifier, str):
        name = _ALIASES.get(identifier, identifier)
        if name in _CLASS_OF_FUNCTION:
            cls = _CLASS_OF_FUNCTION[name]
            return cls(name=name)
        if name in _CLASSES and name != "LossFunctionWrapper":
            return _CLASSES[name]()
        raise _unknown(identifier)
    if isinstance(identifier, type) and issubclass(identifier, Loss):
        return identifier()
    if callable(identifier):
        return identifier
    raise ValueError(f"Could not interpret loss identifier: {identifier!r}")


def as_loss(identifier):
    """Like ``get``, but a plain per-sample function is wrapped in LossFunctionWrapper, so the result can
    always be called as ``loss(y_true, y_pred, sample_weight=...)`` and returns a reduced scalar."""
    loss = get(identifier)
    if loss is None or isinstance(loss, Loss):
        return loss
    if loss.__name__ in _CLASS_OF_FUNCTION and _FUNCTIONS.get(loss.__name__) is loss:
        return get(loss.__name__)
    return LossFunctionWrapper(loss)


def serialize(loss):
    if loss is None:
        return None
    if isinstance(loss, Loss):
        return {"module": "keras.losses", "class_name": type(loss).__name__, "config": loss.get_config(),
                "registered_name": None}
    name = getattr(loss, "__name__", None)
    if name in _FUNCTIONS and _FUNCTIONS[name] is loss:
        return name
    raise ValueError(f"Cannot serialize loss {loss!r}: only dlgpu losses and Loss instances are serializable.")


def deserialize(config, custom_objects=None):
    custom_objects = custom_objects or {}
    if isinstance(config, str):
        if config in custom_objects:
            return custom_objects[config]
        name = _ALIASES.get(config, config)
        if name in _FUNCTIONS:
            return _FUNCTIONS[name]
        if name in _CLASSES:
            return _CLASSES[name]()
        raise _unknown(config)
    if isinstance(config, dict):
        class_name = config.get("class_name")
        cls = custom_objects.get(class_name) or _CLASSES.get(class_name)
        if cls is None:
            if class_name == "function":
                return deserialize(config["config"], custom_objects)
            raise _unknown(str(class_name))
        return cls.from_config(config.get("config", {}))
    raise ValueError(f"Could not deserialize loss from {config!r}")
