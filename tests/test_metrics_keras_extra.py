"""The loss-based metric classes, R2Score, the IoU family and the rate-at-rate confusion metrics: Keras's own
docstring numbers, numpy references over several weighted batches, configs, string names, a model trained
with fit that reports them, and GPU-vs-CPU."""

import numpy as np
import pytest

import dlgpu
from dlgpu import layers, losses, metrics
from dlgpu.autograd import Tensor
from dlgpu.models import load_model

rng = np.random.default_rng(11)


def result(metric, *args, **kwargs):
    metric.reset_state()
    metric.update_state(*args, **kwargs)
    return float(metric.result().numpy())


def batched(metric, y_true, y_pred, sample_weight=None, batch=16):
    metric.reset_state()
    for i in range(0, len(y_true), batch):
        sl = slice(i, i + batch)
        metric.update_state(y_true[sl], y_pred[sl], None if sample_weight is None else sample_weight[sl])
    return np.asarray(metric.result().numpy())


Y2, P2 = [[0, 1], [0, 0]], [[0.6, 0.4], [0.4, 0.6]]
R2T, R2P = [[0, 1], [0, 0]], [[1, 1], [0, 0]]
CT, CP = [[0, 1, 0], [0, 0, 1]], [[0.05, 0.95, 0], [0.1, 0.8, 0.1]]


@pytest.mark.parametrize("metric, y_true, y_pred, plain, weights, weighted", [
    (metrics.KLDivergence(), Y2, P2, 0.45814306, [1, 0], 0.9162892),
    (metrics.Poisson(), R2T, R2P, 0.49999997, [1, 0], 0.99999994),
    (metrics.BinaryCrossentropy(), Y2, P2, 0.81492424, [1, 0], 0.9162905),
    (metrics.CategoricalCrossentropy(), CT, CP, 1.1769392, np.array([0.3, 0.7]), 1.6271976),
    (metrics.SparseCategoricalCrossentropy(), [1, 2], CP, 1.1769392, np.array([0.3, 0.7]), 1.6271976),
    (metrics.Hinge(), Y2, P2, 1.3, [1, 0], 1.1),
    (metrics.SquaredHinge(), Y2, P2, 1.86, [1, 0], 1.46),
    (metrics.CategoricalHinge(), Y2, P2, 1.4000001, [1, 0], 1.2),
    (metrics.MeanAbsolutePercentageError(), R2T, R2P, 250000000.0, [1, 0], 500000000.0),
    (metrics.MeanSquaredLogarithmicError(), R2T, R2P, 0.12011322, [1, 0], 0.24022643),
    (metrics.LogCoshError(), R2T, R2P, 0.10844523, [1, 0], 0.21689045),
    (metrics.CosineSimilarity(axis=1), [[0., 1.], [1., 1.]], [[1., 0.], [1., 1.]], 0.49999997, [0.3, 0.7], 0.6999999),
    (metrics.IoU(num_classes=2, target_class_ids=[0]), [0, 0, 1, 1], [0, 1, 0, 1], 0.33333334,
     [0.3, 0.3, 0.3, 0.1], 0.33333334),
    (metrics.BinaryIoU(target_class_ids=[0, 1], threshold=0.3), [0, 1, 0, 1], [0.1, 0.2, 0.4, 0.7], 0.33333334,
     [0.2, 0.3, 0.4, 0.1], 0.17361112),
    (metrics.MeanIoU(num_classes=2), [0, 0, 1, 1], [0, 1, 0, 1], 0.33333334, [0.3, 0.3, 0.3, 0.1], 0.23809525),
    (metrics.SensitivityAtSpecificity(0.5), [0, 0, 0, 1, 1], [0, 0.3, 0.8, 0.3, 0.8], 0.5, [1, 1, 2, 2, 1], 0.333333),
    (metrics.SpecificityAtSensitivity(0.5), [0, 0, 0, 1, 1], [0, 0.3, 0.8, 0.3, 0.8], 0.66666667, [1, 1, 2, 2, 2], 0.5),
    (metrics.PrecisionAtRecall(0.5), [0, 0, 0, 1, 1], [0, 0.3, 0.8, 0.3, 0.8], 0.5, [2, 2, 2, 1, 1], 0.33333333),
    (metrics.RecallAtPrecision(0.8), [0, 0, 1, 1], [0, 0.5, 0.3, 0.9], 0.5, [1, 0, 0, 1], 1.0),
])
def test_keras_docstring_numbers(metric, y_true, y_pred, plain, weights, weighted):
    assert result(metric, y_true, y_pred) == pytest.approx(plain, rel=1e-5)
    assert result(metric, y_true, y_pred, sample_weight=weights) == pytest.approx(weighted, rel=1e-5)


def test_one_hot_iou_and_r2_keras_docstrings():
    y_true = np.array([[0, 0, 1], [1, 0, 0], [0, 1, 0], [1, 0, 0]])
    y_pred = np.array([[0.2, 0.3, 0.5], [0.1, 0.2, 0.7], [0.5, 0.3, 0.1], [0.1, 0.4, 0.5]])
    sw = [0.1, 0.2, 0.3, 0.4]
    assert result(metrics.OneHotIoU(num_classes=3, target_class_ids=[0, 2]), y_true, y_pred, sample_weight=sw) == \
        pytest.approx((0 / 0.9 + 0.1 / 0.7) / 2, rel=1e-5)  # Keras: 0.071
    assert result(metrics.OneHotMeanIoU(num_classes=3), y_true, y_pred, sample_weight=sw) == \
        pytest.approx((0.1 / 0.7) / 3, rel=1e-5)  # Keras: 0.048
    r2 = result(metrics.R2Score(), np.array([[1], [4], [3]], np.float32), np.array([[2], [4], [4]], np.float32))
    assert r2 == pytest.approx(0.57142854, rel=1e-6)


# -- numpy references over weighted batches ---------------------------------------------------------------

N = 70
W = rng.uniform(0, 1, N).astype(np.float32)


def wmean(values, w):
    return values.mean() if w is None else (values * w).sum() / w.sum()


@pytest.mark.parametrize("w", [None, W])
def test_loss_metrics_equal_the_weighted_mean_of_the_loss(w):
    t = rng.integers(0, 2, (N, 3)).astype(np.float32)
    p = rng.uniform(0.05, 0.95, (N, 3)).astype(np.float32)
    onehot = np.eye(3, dtype=np.float32)[rng.integers(0, 3, N)]
    z = rng.normal(size=(N, 3)).astype(np.float32)
    cases = [(metrics.BinaryCrossentropy(from_logits=True, label_smoothing=0.1), t, z,
              losses.binary_crossentropy(t, z, from_logits=True, label_smoothing=0.1)),
             (metrics.CategoricalCrossentropy(from_logits=True), onehot, z,
              losses.categorical_crossentropy(onehot, z, from_logits=True)),
             (metrics.SparseCategoricalCrossentropy(from_logits=True), onehot.argmax(-1), z,
              losses.sparse_categorical_crossentropy(onehot.argmax(-1), z, from_logits=True)),
             (metrics.KLDivergence(), onehot, p, losses.kl_divergence(onehot, p)),
             (metrics.Poisson(), t, p, losses.poisson(t, p)),
             (metrics.LogCoshError(), t, z, losses.log_cosh(t, z)),
             (metrics.CosineSimilarity(), t + 0.5, z, -losses.cosine_similarity(t + 0.5, z).numpy())]
    for metric, yt, yp, per_sample in cases:
        expected = wmean(np.asarray(getattr(per_sample, "numpy", lambda: per_sample)(), np.float64), w)
        np.testing.assert_allclose(batched(metric, yt, yp, w), expected, rtol=1e-5, err_msg=metric.name)


def test_sparse_crossentropy_metric_ignore_class_leaves_positions_out():
    labels = np.array([[0, 2, -1], [1, -1, 1]])
    z = rng.normal(size=(2, 3, 3)).astype(np.float32)
    metric = metrics.SparseCategoricalCrossentropy(from_logits=True, ignore_class=-1)
    per_step = losses.sparse_categorical_crossentropy(labels, z, from_logits=True, ignore_class=-1).numpy()
    assert result(metric, labels, z) == pytest.approx(per_step[labels != -1].mean(), rel=1e-5)


def test_mask_on_predictions_weights_mean_metrics():
    t = rng.integers(0, 2, (2, 4, 1)).astype(np.float32)
    z = rng.normal(size=(2, 4, 1)).astype(np.float32)
    mask = np.array([[1, 1, 0, 0], [1, 1, 1, 1]], bool)
    pred = Tensor(z)
    pred._keras_mask = Tensor(mask)
    per_step = losses.binary_crossentropy(t, z, from_logits=True).numpy()
    assert result(metrics.BinaryCrossentropy(from_logits=True), t, pred) == pytest.approx(per_step[mask].mean(), rel=1e-5)


def r2_reference(t, p, w, aggregation):
    w = np.ones_like(t) if w is None else np.broadcast_to(w[:, None], t.shape)
    mean = (w * t).sum(0) / w.sum(0)
    total = (w * (t - mean) ** 2).sum(0)
    raw = 1 - (w * (t - p) ** 2).sum(0) / total
    if aggregation == "uniform_average":
        return raw.mean()
    if aggregation == "variance_weighted_average":
        return (raw * total).sum() / total.sum()
    return raw


@pytest.mark.parametrize("aggregation", [None, "uniform_average", "variance_weighted_average"])
@pytest.mark.parametrize("w", [None, W])
def test_r2_score_against_numpy(aggregation, w):
    t = rng.normal(size=(N, 3)) * [1, 2, 3]
    p = t + rng.normal(size=(N, 3)) * 0.5
    got = batched(metrics.R2Score(class_aggregation=aggregation), t.astype(np.float32), p.astype(np.float32), w)
    np.testing.assert_allclose(got, r2_reference(t, p, None if w is None else w.astype(np.float64), aggregation),
                               rtol=1e-4)


def test_r2_adjusted_and_errors():
    t = rng.normal(size=(N, 2))
    p = t + rng.normal(size=(N, 2)) * 0.3
    plain = r2_reference(t, p, None, "uniform_average")
    got = batched(metrics.R2Score(num_regressors=4), t.astype(np.float32), p.astype(np.float32))
    np.testing.assert_allclose(got, 1 - (1 - plain) * (N - 1) / (N - 4 - 1), rtol=1e-4)
    with pytest.warns(UserWarning, match="More independent predictors"):
        assert result(metrics.R2Score(num_regressors=5), t[:3], p[:3]) == pytest.approx(
            r2_reference(t[:3], p[:3], None, "uniform_average"), rel=1e-4)
    with pytest.raises(ValueError, match="class_aggregation"):
        metrics.R2Score(class_aggregation="mean")
    with pytest.raises(ValueError, match="num_regressors"):
        metrics.R2Score(num_regressors=-1)
    with pytest.raises(ValueError, match="2D"):
        metrics.R2Score().update_state(np.zeros((2, 3, 4)), np.zeros((2, 3, 4)))


def iou_reference(t, p, n, targets, w=None):
    cm = np.zeros((n, n))
    np.add.at(cm, (t.reshape(-1), p.reshape(-1)), 1.0 if w is None else w.reshape(-1))
    tp = np.diag(cm)
    den = cm.sum(0) + cm.sum(1) - tp
    ious = [tp[c] / den[c] for c in targets if den[c] > 0]
    return np.mean(ious)


@pytest.mark.parametrize("w", [None, W])
def test_iou_family_against_numpy(w):
    n = 4
    t = rng.integers(0, n, (N, 5))
    scores = rng.normal(size=(N, 5, n)).astype(np.float32)
    p = scores.argmax(-1)
    per_pos_w = None if w is None else np.broadcast_to(w[:, None], t.shape)
    np.testing.assert_allclose(batched(metrics.MeanIoU(n), t, p, w), iou_reference(t, p, n, range(n), per_pos_w),
                               rtol=1e-5)
    np.testing.assert_allclose(batched(metrics.IoU(n, [1, 3]), t, p, w), iou_reference(t, p, n, [1, 3], per_pos_w),
                               rtol=1e-5)
    onehot = np.eye(n, dtype=np.float32)[t]
    np.testing.assert_allclose(batched(metrics.OneHotMeanIoU(n), onehot, scores, w),
                               iou_reference(t, p, n, range(n), per_pos_w), rtol=1e-5)
    np.testing.assert_allclose(batched(metrics.OneHotIoU(n, [2]), onehot, scores, w),
                               iou_reference(t, p, n, [2], per_pos_w), rtol=1e-5)
    np.testing.assert_allclose(batched(metrics.IoU(n, [0, 1], sparse_y_pred=False), t, scores, w),
                               iou_reference(t, p, n, [0, 1], per_pos_w), rtol=1e-5)


def test_iou_ignore_class_and_out_of_range_ids():
    t = np.array([0, 1, 255, 2, 1])
    p = np.array([0, 1, 1, 2, 7])  # 255 is ignored, the predicted 7 is out of range: both left out
    assert result(metrics.MeanIoU(3, ignore_class=255), t, p) == pytest.approx(
        iou_reference(t[[0, 1, 3]], p[[0, 1, 3]], 3, range(3)), rel=1e-6)
    with pytest.raises(ValueError, match="out of range"):
        metrics.IoU(3, [3])
    with pytest.raises(ValueError, match="num_classes"):
        metrics.MeanIoU(0)


def rate_curves(t, p, w, thresholds):
    pos, neg = t.astype(bool), ~t.astype(bool)
    out = []
    for th in thresholds:
        pred = p > th
        tp, fp = (w * (pred & pos)).sum(), (w * (pred & neg)).sum()
        fn, tn = (w * (~pred & pos)).sum(), (w * (~pred & neg)).sum()
        div = lambda a, b: a / b if b else 0.0  # noqa: E731
        out.append((div(tp, tp + fn), div(tn, tn + fp), div(tp, tp + fp)))
    return np.array(out)


@pytest.mark.parametrize("num_thresholds", [1, 7, 200])
def test_rate_at_rate_metrics_against_numpy(num_thresholds):
    t = rng.integers(0, 2, N)
    p = np.clip(t * 0.3 + rng.uniform(0, 0.7, N), 0, 1).astype(np.float32)
    w = W.astype(np.float64)
    thresholds = [0.5] if num_thresholds == 1 else [0.0] + [(i + 1) / (num_thresholds - 1)
                                                            for i in range(num_thresholds - 2)] + [1.0]
    curves = rate_curves(t, p, w, thresholds)
    sens, spec, prec = curves.T

    def best(constrained, dependent, value):
        ok = constrained >= value
        return dependent[ok].max() if ok.any() else 0.0
    for metric, expected in ((metrics.SensitivityAtSpecificity(0.6, num_thresholds), best(spec, sens, 0.6)),
                             (metrics.SpecificityAtSensitivity(0.8, num_thresholds), best(sens, spec, 0.8)),
                             (metrics.PrecisionAtRecall(0.7, num_thresholds), best(sens, prec, 0.7)),
                             (metrics.RecallAtPrecision(0.75, num_thresholds), best(prec, sens, 0.75))):
        np.testing.assert_allclose(batched(metric, t, p, W), expected, rtol=1e-6, err_msg=metric.name)


def test_rate_at_rate_class_id_and_errors():
    t = np.eye(3, dtype=np.float32)[rng.integers(0, 3, N)]
    p = rng.uniform(0, 1, (N, 3)).astype(np.float32)
    whole = result(metrics.PrecisionAtRecall(0.5, class_id=1), t, p)
    assert whole == pytest.approx(result(metrics.PrecisionAtRecall(0.5), t[:, 1], p[:, 1]), rel=1e-6)
    with pytest.raises(ValueError, match="recall"):
        metrics.PrecisionAtRecall(1.5)
    with pytest.raises(ValueError, match="num_thresholds"):
        metrics.SensitivityAtSpecificity(0.5, num_thresholds=0)


# -- configs, names, function forms -----------------------------------------------------------------------

@pytest.mark.parametrize("metric, keys", [
    (metrics.BinaryCrossentropy(from_logits=True, label_smoothing=0.2), {"name", "dtype", "from_logits", "label_smoothing"}),
    (metrics.CategoricalCrossentropy(axis=1), {"name", "dtype", "from_logits", "label_smoothing", "axis"}),
    (metrics.SparseCategoricalCrossentropy(ignore_class=0), {"name", "dtype", "from_logits", "ignore_class", "axis"}),
    (metrics.KLDivergence(name="kl"), {"name", "dtype"}),
    (metrics.LogCoshError(), {"name", "dtype"}),
    (metrics.CosineSimilarity(axis=0), {"name", "dtype", "axis"}),
    (metrics.R2Score("variance_weighted_average", 2), {"name", "dtype", "class_aggregation", "num_regressors"}),
    (metrics.IoU(4, [1, 2], ignore_class=0), {"name", "dtype", "num_classes", "target_class_ids", "ignore_class",
                                              "sparse_y_true", "sparse_y_pred", "axis"}),
    (metrics.MeanIoU(4), {"name", "dtype", "num_classes", "ignore_class", "sparse_y_true", "sparse_y_pred", "axis"}),
    (metrics.BinaryIoU([1], 0.4), {"name", "dtype", "target_class_ids", "threshold"}),
    (metrics.OneHotIoU(3, [0]), {"name", "dtype", "num_classes", "target_class_ids", "ignore_class", "sparse_y_pred",
                                 "axis"}),
    (metrics.OneHotMeanIoU(3), {"name", "dtype", "num_classes", "ignore_class", "sparse_y_pred", "axis"}),
    (metrics.PrecisionAtRecall(0.4, num_thresholds=9, class_id=1), {"name", "dtype", "class_id", "num_thresholds", "recall"}),
    (metrics.RecallAtPrecision(0.4), {"name", "dtype", "class_id", "num_thresholds", "precision"}),
    (metrics.SensitivityAtSpecificity(0.4), {"name", "dtype", "class_id", "num_thresholds", "specificity"}),
    (metrics.SpecificityAtSensitivity(0.4), {"name", "dtype", "class_id", "num_thresholds", "sensitivity"}),
])
def test_config_round_trip(metric, keys):
    config = metric.get_config()
    assert set(config) == keys
    restored = metrics.deserialize(metrics.serialize(metric))
    assert type(restored) is type(metric) and restored.get_config() == config


def test_default_names_and_strings():
    dlgpu.backend.clear_session()  # default names are numbered per process: io_u, io_u_1... until cleared
    assert (metrics.IoU(2, [0]).name, metrics.MeanIoU(2).name, metrics.BinaryIoU().name, metrics.OneHotIoU(2, [0]).name,
            metrics.OneHotMeanIoU(2).name) == ("io_u", "mean_io_u", "binary_io_u", "one_hot_io_u", "one_hot_mean_io_u")
    assert metrics.LogCoshError().name == "logcosh" and metrics.PrecisionAtRecall(0.5).name == "precision_at_recall"
    for name, cls in (("binary_crossentropy", metrics.BinaryCrossentropy), ("bce", metrics.BinaryCrossentropy),
                      ("categorical_crossentropy", metrics.CategoricalCrossentropy),
                      ("sparse_categorical_crossentropy", metrics.SparseCategoricalCrossentropy),
                      ("kl_divergence", metrics.KLDivergence), ("poisson", metrics.Poisson), ("hinge", metrics.Hinge),
                      ("squared_hinge", metrics.SquaredHinge), ("categorical_hinge", metrics.CategoricalHinge),
                      ("log_cosh_error", metrics.LogCoshError), ("cosine_similarity", metrics.CosineSimilarity),
                      ("mape", metrics.MeanAbsolutePercentageError), ("msle", metrics.MeanSquaredLogarithmicError),
                      ("r2_score", metrics.R2Score), ("R2Score", metrics.R2Score), ("binary_io_u", metrics.BinaryIoU)):
        metric = metrics.get(name)
        assert type(metric) is cls and metric.name == name
    with pytest.raises(ValueError, match="num_classes.*MeanIoU"):
        metrics.get("mean_io_u")
    with pytest.raises(ValueError, match="recall"):
        metrics.get("PrecisionAtRecall")
    # Keras's metric is the similarity itself (the loss is its negative)
    assert result(metrics.get("cosine_similarity"), [[1.0, 0.0]], [[2.0, 0.0]]) == pytest.approx(1.0)


def test_keras_metrics_function_forms():
    t, p = np.array([[0.0, 1.0]]), np.array([[0.3, 0.7]])
    for name in ("binary_crossentropy", "binary_focal_crossentropy", "categorical_crossentropy",
                 "categorical_focal_crossentropy", "categorical_hinge", "hinge", "huber", "kl_divergence", "log_cosh",
                 "mean_absolute_percentage_error", "mean_squared_logarithmic_error", "poisson", "squared_hinge"):
        fn = getattr(metrics, name)
        assert fn is getattr(losses, name)
        assert fn(t, p).shape == (1,)
        assert metrics.deserialize(metrics.serialize(fn)) is fn
        wrapped = metrics.get(fn)
        assert result(wrapped, t, p) == pytest.approx(float(fn(t, p).numpy()[0]), rel=1e-6)
    assert metrics.sparse_categorical_crossentropy(np.array([1]), p).shape == (1,)


# -- training ------------------------------------------------------------------------------------------------

def test_fit_with_focal_loss_reports_the_new_metrics(tmp_path):
    x = rng.normal(size=(96, 4)).astype(np.float32)
    y = (x[:, :1] + 0.5 * x[:, 1:2] > 0).astype(np.float32)
    model = dlgpu.Sequential([layers.Input((4,)), layers.Dense(8, activation="relu"), layers.Dense(1, activation="sigmoid")])
    model.compile(optimizer=dlgpu.optimizers.Adam(0.05), loss=losses.BinaryFocalCrossentropy(gamma=2.0),
                  metrics=["binary_crossentropy", "r2_score", "kl_divergence", metrics.BinaryIoU(name="iou"),
                           metrics.RecallAtPrecision(0.8, name="r_at_p"), metrics.Hinge()])
    history = model.fit(x, y, batch_size=32, epochs=6, verbose=0)
    for key in ("loss", "binary_crossentropy", "r2_score", "kl_divergence", "iou", "r_at_p", "hinge"):
        assert key in history.history and len(history.history[key]) == 6, key
    assert history.history["loss"][-1] < history.history["loss"][0]
    assert history.history["iou"][-1] > history.history["iou"][0]
    evaluated = model.evaluate(x, y, batch_size=32, verbose=0, return_dict=True)
    pred = model.predict(x, verbose=0)
    bce = losses.binary_crossentropy(y, pred).numpy().mean()
    assert evaluated["binary_crossentropy"] == pytest.approx(bce, rel=1e-4)
    r2 = metrics.R2Score()
    r2.update_state(y, pred)
    assert evaluated["r2_score"] == pytest.approx(float(r2.result().numpy()), rel=1e-4)
    path = tmp_path / "focal.dlgpu"
    model.save(path)
    loaded = load_model(path)
    assert isinstance(loaded._loss_config, losses.BinaryFocalCrossentropy)
    assert loaded._loss_config.get_config() == model._loss_config.get_config()
    again = loaded.evaluate(x, y, batch_size=32, verbose=0, return_dict=True)
    for key, value in evaluated.items():
        assert again[key] == pytest.approx(value, rel=1e-5), key


def test_fit_with_categorical_focal_and_dice_losses():
    x = rng.normal(size=(64, 5)).astype(np.float32)
    y = np.eye(3, dtype=np.float32)[(x[:, 0] > 0).astype(int) + (x[:, 1] > 0.5)]
    for loss in (losses.CategoricalFocalCrossentropy(alpha=[0.3, 0.3, 0.4]), "dice", "tversky"):
        model = dlgpu.Sequential([layers.Input((5,)), layers.Dense(3, activation="softmax")])
        iou = metrics.OneHotMeanIoU(3)  # one_hot_mean_io_u, _1, ... as Keras numbers default names
        model.compile(optimizer=dlgpu.optimizers.Adam(0.05), loss=loss, metrics=["categorical_crossentropy", iou])
        history = model.fit(x, y, batch_size=16, epochs=4, verbose=0)
        assert history.history["loss"][-1] < history.history["loss"][0], loss
        assert np.isfinite(history.history[iou.name]).all()


# -- GPU --------------------------------------------------------------------------------------------------

@pytest.mark.gpu
@pytest.mark.parametrize("make", [
    lambda: metrics.BinaryCrossentropy(from_logits=True), lambda: metrics.CosineSimilarity(),
    lambda: metrics.SparseCategoricalCrossentropy(from_logits=True, ignore_class=1),
    lambda: metrics.R2Score(), lambda: metrics.R2Score(class_aggregation=None),
    lambda: metrics.MeanIoU(3, sparse_y_pred=False), lambda: metrics.OneHotIoU(3, [0, 2]),
    lambda: metrics.BinaryIoU(threshold=0.0), lambda: metrics.PrecisionAtRecall(0.5, num_thresholds=17),
    lambda: metrics.SpecificityAtSensitivity(0.5, class_id=2),
])
def test_metrics_on_gpu_match_cpu(make):
    labels = rng.integers(0, 3, 40)
    onehot = np.eye(3, dtype=np.float32)[labels]
    z = rng.normal(size=(40, 3)).astype(np.float32)
    w = rng.uniform(0, 1, 40).astype(np.float32)
    probe = make()
    if isinstance(probe, (metrics.SparseCategoricalCrossentropy, metrics.MeanIoU)):
        y_true = labels
    elif isinstance(probe, metrics.SpecificityAtSensitivity):
        y_true, z = onehot, 1 / (1 + np.exp(-z))
    elif isinstance(probe, metrics.PrecisionAtRecall):
        y_true, z = onehot[:, 0], (1 / (1 + np.exp(-z)))[:, 0]
    elif isinstance(probe, (metrics.BinaryIoU, metrics.BinaryCrossentropy)):
        y_true = onehot[:, 0:1]
        z = z[:, 0:1]
    else:
        y_true = onehot
    results = {}
    for device in ("cpu", "gpu"):
        with dlgpu.device(device):
            metric = make()
            pred = dlgpu.ops.convert_to_tensor(z)  # the prediction on the device, labels and weights on the host
            for sl in (slice(0, 16), slice(16, 40)):
                metric.update_state(y_true[sl], pred[sl] if hasattr(pred, "__getitem__") else pred, w[sl])
            results[device] = np.asarray(metric.result().numpy())
    np.testing.assert_allclose(results["gpu"], results["cpu"], rtol=1e-5, atol=1e-7)
