"""Metrics against straightforward numpy formulas on random data (several batches, with sample weights)."""

import numpy as np
import pytest

from dlgpu import losses, metrics, ops

rng = np.random.default_rng(3)
N, C = 120, 5
LABELS = rng.integers(0, C, N)
ONEHOT = np.eye(C, dtype=np.float32)[LABELS]
SCORES = rng.random((N, C)).astype(np.float32)
PROBS = SCORES / SCORES.sum(-1, keepdims=True)
WEIGHTS = rng.random(N).astype(np.float32)


def batched(metric, y_true, y_pred, sample_weight=None, batch=32):
    metric.reset_state()
    for i in range(0, len(y_true), batch):
        sl = slice(i, i + batch)
        metric.update_state(y_true[sl], y_pred[sl], None if sample_weight is None else sample_weight[sl])
    return np.asarray(metric.result())


def weighted_mean(values, w=None):
    return values.mean() if w is None else (values * w).sum() / w.sum()


@pytest.mark.parametrize("w", [None, WEIGHTS])
def test_accuracies(w):
    hits = (PROBS.argmax(-1) == LABELS).astype(np.float64)
    np.testing.assert_allclose(batched(metrics.SparseCategoricalAccuracy(), LABELS, PROBS, w), weighted_mean(hits, w), rtol=1e-6)
    np.testing.assert_allclose(batched(metrics.SparseCategoricalAccuracy(), LABELS[:, None], PROBS, w),
                               weighted_mean(hits, w), rtol=1e-6)
    np.testing.assert_allclose(batched(metrics.CategoricalAccuracy(), ONEHOT, PROBS, w), weighted_mean(hits, w), rtol=1e-6)
    top3 = (np.argsort(-PROBS, axis=-1)[:, :3] == LABELS[:, None]).any(-1).astype(np.float64)
    np.testing.assert_allclose(batched(metrics.TopKCategoricalAccuracy(k=3), ONEHOT, PROBS, w), weighted_mean(top3, w), rtol=1e-6)
    np.testing.assert_allclose(batched(metrics.SparseTopKCategoricalAccuracy(k=3), LABELS, PROBS, w),
                               weighted_mean(top3, w), rtol=1e-6)
    binary_true = (LABELS % 2).astype(np.float32)[:, None]
    pred = PROBS[:, :1] * 3
    bin_hits = ((pred > 0.4) == binary_true).astype(np.float64)[:, 0]
    np.testing.assert_allclose(batched(metrics.BinaryAccuracy(threshold=0.4), binary_true, pred, w),
                               weighted_mean(bin_hits, w), rtol=1e-6)
    np.testing.assert_allclose(batched(metrics.Accuracy(), LABELS, PROBS.argmax(-1), w), weighted_mean(hits, w), rtol=1e-6)


def test_function_forms():
    out = metrics.sparse_categorical_accuracy(LABELS, PROBS)
    assert out.shape == (N,)
    np.testing.assert_array_equal(out.numpy(), (PROBS.argmax(-1) == LABELS).astype(np.float32))
    assert metrics.top_k_categorical_accuracy(ONEHOT, PROBS, k=C).numpy().all()


@pytest.mark.parametrize("w", [None, WEIGHTS])
def test_regression_metrics(w):
    t, p = rng.normal(size=(N, 3)).astype(np.float32), rng.normal(size=(N, 3)).astype(np.float32)
    mse = ((t - p) ** 2).mean(-1)
    np.testing.assert_allclose(batched(metrics.MeanSquaredError(), t, p, w), weighted_mean(mse, w), rtol=1e-5)
    np.testing.assert_allclose(batched(metrics.MeanAbsoluteError(), t, p, w), weighted_mean(np.abs(t - p).mean(-1), w), rtol=1e-5)
    np.testing.assert_allclose(batched(metrics.RootMeanSquaredError(), t, p, w), np.sqrt(weighted_mean(mse, w)), rtol=1e-5)


def test_mean_as_loss_tracker_and_reset():
    m = metrics.Mean(name="loss")
    m.update_state(ops.convert_to_tensor(np.float32(2.0)), sample_weight=32)
    m.update_state(np.float32(5.0), sample_weight=8)
    assert float(m.result()) == pytest.approx((2 * 32 + 5 * 8) / 40)
    m.reset_state()
    assert float(m.result()) == 0.0
    m.update_state([1.0, 2.0, 3.0])
    assert float(m.result()) == pytest.approx(2.0)
    assert float(metrics.Mean()([[1.0, 3.0], [5.0, 7.0]], sample_weight=[1.0, 3.0])) == pytest.approx((2 + 3 * 6) / 4)


def confusion(y_true, y_pred, threshold, w=None):
    w = np.ones_like(y_pred, dtype=np.float64) if w is None else np.broadcast_to(w.reshape(-1, *[1] * (y_pred.ndim - 1)), y_pred.shape)
    pred, true = y_pred > threshold, y_true.astype(bool)
    return ((pred & true) * w).sum(), ((pred & ~true) * w).sum(), ((~pred & ~true) * w).sum(), ((~pred & true) * w).sum()


@pytest.mark.parametrize("w", [None, WEIGHTS])
def test_precision_recall(w):
    thresholds = [0.7, 0.1, 0.45]
    got_p = batched(metrics.Precision(thresholds=thresholds), ONEHOT, SCORES, w)
    got_r = batched(metrics.Recall(thresholds=thresholds), ONEHOT, SCORES, w)
    for i, t in enumerate(thresholds):
        tp, fp, tn, fn = confusion(ONEHOT, SCORES, t, w)
        np.testing.assert_allclose(got_p[i], tp / (tp + fp), rtol=1e-5)
        np.testing.assert_allclose(got_r[i], tp / (tp + fn), rtol=1e-5)
    tp, fp, _, _ = confusion(ONEHOT[:, 2], SCORES[:, 2], 0.5, w)
    np.testing.assert_allclose(batched(metrics.Precision(class_id=2), ONEHOT, SCORES, w), tp / (tp + fp), rtol=1e-5)
    assert batched(metrics.Recall(), ONEHOT, SCORES).shape == ()


def reference_auc(y_true, y_pred, num_thresholds=200, curve="ROC", w=None):
    """Keras's thresholded Riemann sum (interpolation), one threshold at a time."""
    eps = 1e-7
    thresholds = [0.0 - eps] + [(i + 1) / (num_thresholds - 1) for i in range(num_thresholds - 2)] + [1.0 + eps]
    counts = np.array([confusion(y_true, y_pred, t, w) for t in thresholds])
    tp, fp, tn, fn = counts.T
    div = lambda a, b: np.where(b > 0, a / np.where(b > 0, b, 1), 0.0)  # noqa: E731
    recall = div(tp, tp + fn)
    if curve == "ROC":
        x, y = div(fp, fp + tn), recall
        return np.sum((x[:-1] - x[1:]) * (y[:-1] + y[1:]) / 2)
    x, y = recall, div(tp, tp + fp)
    return np.sum((x[:-1] - x[1:]) * np.minimum(y[:-1], y[1:]))


@pytest.mark.parametrize("w", [None, WEIGHTS])
def test_auc_matches_numpy_reference(w):
    y = (LABELS % 2).astype(np.float32)
    score = np.clip(0.4 * y + 0.6 * SCORES[:, 0], 0, 1)
    np.testing.assert_allclose(batched(metrics.AUC(), y, score, w), reference_auc(y, score, w=w), rtol=1e-6)
    np.testing.assert_allclose(batched(metrics.AUC(num_thresholds=17), y, score, w),
                               reference_auc(y, score, num_thresholds=17, w=w), rtol=1e-6)
    np.testing.assert_allclose(batched(metrics.AUC(curve="PR", summation_method="minoring"), y, score, w),
                               reference_auc(y, score, curve="PR", w=w), rtol=1e-6)
    # Interpolated ROC AUC of a well-separated score is close to the exact rank statistic.
    pos, neg = score[y == 1], score[y == 0]
    exact = (pos[:, None] > neg[None, :]).mean()
    if w is None:
        assert abs(float(batched(metrics.AUC(num_thresholds=1000), y, score)) - exact) < 0.01
    pr = float(batched(metrics.AUC(curve="PR"), y, score, w))
    assert 0.0 < pr <= 1.0


def test_auc_multi_label_and_from_logits():
    y = (ONEHOT[:, :3] > 0).astype(np.float32)
    s = SCORES[:, :3]
    by_label = [reference_auc(y[:, j], s[:, j]) for j in range(3)]
    np.testing.assert_allclose(batched(metrics.AUC(multi_label=True), y, s), np.mean(by_label), rtol=1e-6)
    logits = np.log(s / (1 - s + 1e-6) + 1e-6)
    np.testing.assert_allclose(batched(metrics.AUC(from_logits=True), y[:, 0], logits[:, 0]),
                               reference_auc(y[:, 0], s[:, 0]), rtol=1e-3)


@pytest.mark.parametrize("average", [None, "micro", "macro", "weighted"])
@pytest.mark.parametrize("threshold", [None, 0.3])
def test_f1_score(average, threshold):
    got = batched(metrics.F1Score(average=average, threshold=threshold), ONEHOT, PROBS)
    pred = (PROBS >= PROBS.max(-1, keepdims=True)) if threshold is None else PROBS > threshold
    pred, true = pred.astype(np.float64), ONEHOT.astype(np.float64)
    axis = None if average == "micro" else 0
    tp, fp, fn = (pred * true).sum(axis), (pred * (1 - true)).sum(axis), ((1 - pred) * true).sum(axis)
    precision, recall = tp / (tp + fp + 1e-7), tp / (tp + fn + 1e-7)
    f1 = 2 * precision * recall / (precision + recall + 1e-7)
    if average == "weighted":
        support = true.sum(0)
        f1 = (f1 * support / support.sum()).sum()
    elif average is not None:
        f1 = f1.mean()
    np.testing.assert_allclose(got, f1, rtol=1e-5)


def test_resolve_accuracy():
    assert isinstance(metrics.resolve_accuracy("sparse_categorical_crossentropy", (8,), (8, 5)), metrics.SparseCategoricalAccuracy)
    assert isinstance(metrics.resolve_accuracy(losses.CategoricalCrossentropy(), (8, 5), (8, 5)), metrics.CategoricalAccuracy)
    # multi-label binary cross-entropy: the loss decides (shapes alone would say categorical)
    assert isinstance(metrics.resolve_accuracy(losses.get("binary_crossentropy"), (8, 3), (8, 3)), metrics.BinaryAccuracy)
    assert isinstance(metrics.resolve_accuracy(losses.binary_crossentropy, (8, 1), (8, 1)), metrics.BinaryAccuracy)
    # other losses: Keras 3's shape rule
    assert isinstance(metrics.resolve_accuracy("mse", (8, 1), (8, 1)), metrics.BinaryAccuracy)
    assert isinstance(metrics.resolve_accuracy(None, (8,), (8, 4)), metrics.SparseCategoricalAccuracy)
    assert isinstance(metrics.resolve_accuracy(None, (8, 1), (8, 4)), metrics.SparseCategoricalAccuracy)
    assert isinstance(metrics.resolve_accuracy(None, (8, 4), (8, 4)), metrics.CategoricalAccuracy)
    assert metrics.resolve_accuracy(None, (8, 4), (8, 4)).name == "accuracy"


def test_get_names_and_errors():
    m = metrics.get("mae")
    assert isinstance(m, metrics.MeanAbsoluteError) and m.name == "mae"
    assert isinstance(metrics.get("AUC"), metrics.AUC)
    ce = metrics.get("sparse_categorical_crossentropy")
    ce.update_state(LABELS, PROBS)
    expected = -np.log(PROBS[np.arange(N), LABELS]).mean()
    np.testing.assert_allclose(float(ce.result()), expected, rtol=1e-5)
    wrapped = metrics.get(lambda t, p: ops.abs(ops.subtract(t, p)))
    wrapped.update_state(np.zeros(4, np.float32), np.ones(4, np.float32))
    assert float(wrapped.result()) == 1.0
    with pytest.raises(ValueError, match=r"Unknown metric: 'acuracy'.*Did you mean 'accuracy'.*Valid:"):
        metrics.get("acuracy")
    with pytest.raises(ValueError, match="average"):
        metrics.F1Score(average="mean")
    with pytest.raises(ValueError, match="2D inputs"):
        metrics.F1Score().update_state(LABELS, PROBS)


def test_config_round_trip():
    for m in (metrics.AUC(num_thresholds=50, curve="PR"), metrics.Precision(thresholds=[0.2, 0.4]),
              metrics.F1Score(average="macro", threshold=0.5), metrics.BinaryAccuracy(threshold=0.3),
              metrics.TopKCategoricalAccuracy(k=2), metrics.TruePositives(thresholds=0.7)):
        back = metrics.deserialize(metrics.serialize(m))
        assert type(back) is type(m) and back.get_config() == m.get_config()
