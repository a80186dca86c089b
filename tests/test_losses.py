"""Losses: values and gradients against PyTorch (where it has the loss) or numpy, reductions, the fused
softmax/sigmoid paths, and the error messages."""

import numpy as np
import pytest

import dlgpu
from dlgpu import GradientTape, Variable, activations, losses, ops

RTOL, ATOL = 1e-4, 1e-6
rng = np.random.default_rng(1234)


def f32(*shape, scale=1.0):
    return (rng.normal(size=shape) * scale).astype(np.float32)


def ours(loss, y_true, y_pred, transform=None, **kw):
    """Loss value and d loss / d y_pred (or d/d the pre-transform input) through GradientTape."""
    v = Variable(y_pred.copy())
    with GradientTape() as tape:
        out = loss(y_true, transform(v) if transform else v, **kw)
    return out.numpy(), tape.gradient(out, v).numpy()


def theirs(fn, y_true, y_pred):
    torch = pytest.importorskip("torch")
    p = torch.tensor(y_pred, requires_grad=True)
    out = fn(torch.tensor(y_true), p)
    out.backward()
    return out.detach().numpy(), p.grad.numpy()


def check(a, b):
    np.testing.assert_allclose(a[0], b[0], rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(a[1], b[1], rtol=RTOL, atol=ATOL)


# -- against PyTorch -------------------------------------------------------------------------------

def test_regression_losses_match_torch():
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    t, p = f32(8, 5), f32(8, 5)
    check(ours(losses.MeanSquaredError(), t, p), theirs(F.mse_loss, t, p))
    check(ours(losses.MeanAbsoluteError(), t, p), theirs(F.l1_loss, t, p))
    check(ours(losses.Huber(delta=0.7), t, p), theirs(lambda a, b: F.huber_loss(b, a, delta=0.7), t, p))
    check(ours(losses.CosineSimilarity(), t, p), theirs(lambda a, b: -F.cosine_similarity(a, b, dim=-1).mean(), t, p))
    pos_t, pos_p = np.abs(t) + 0.1, np.abs(p) + 0.1
    check(ours(losses.Poisson(), pos_t, pos_p),
          theirs(lambda a, b: F.poisson_nll_loss(b, a, log_input=False, eps=1e-7, full=False), pos_t, pos_p))
    dist_t = np.exp(t) / np.exp(t).sum(-1, keepdims=True)
    dist_p = np.exp(p) / np.exp(p).sum(-1, keepdims=True)
    check(ours(losses.KLDivergence(), dist_t, dist_p),
          theirs(lambda a, b: F.kl_div(b.log(), a, reduction="sum") / a.shape[0], dist_t, dist_p))


@pytest.mark.parametrize("smoothing", [0.0, 0.1])
def test_categorical_crossentropy_matches_torch(smoothing):
    torch = pytest.importorskip("torch")
    z = f32(16, 7, scale=3)
    labels = rng.integers(0, 7, 16)
    onehot = np.eye(7, dtype=np.float32)[labels]
    ref = theirs(lambda a, b: torch.nn.functional.cross_entropy(b, a, label_smoothing=smoothing), onehot, z)
    check(ours(losses.CategoricalCrossentropy(from_logits=True, label_smoothing=smoothing), onehot, z), ref)
    # Probabilities out of softmax: the loss finds the logits and gives the same value and gradient.
    check(ours(losses.CategoricalCrossentropy(label_smoothing=smoothing), onehot, z, transform=activations.softmax), ref)
    if smoothing == 0:
        ref_sparse = theirs(lambda a, b: torch.nn.functional.cross_entropy(b, a), labels, z)
        check(ours(losses.SparseCategoricalCrossentropy(from_logits=True), labels, z), ref_sparse)
        check(ours(losses.SparseCategoricalCrossentropy(), labels, z, transform=ops.softmax), ref_sparse)


def test_probability_path_matches_torch_when_no_logits():
    torch = pytest.importorskip("torch")
    z = f32(10, 4)
    probs = (np.exp(z) / np.exp(z).sum(-1, keepdims=True)).astype(np.float32)
    labels = rng.integers(0, 4, 10)
    # Keras renormalises probabilities (p / sum p) before the log, and so does its gradient.
    ref = theirs(lambda a, b: torch.nn.functional.nll_loss((b / b.sum(-1, keepdim=True)).log(), a), labels, probs)
    check(ours(losses.SparseCategoricalCrossentropy(), labels, probs), ref)
    onehot = np.eye(4, dtype=np.float32)[labels]
    check(ours(losses.CategoricalCrossentropy(), onehot, probs), ref)


@pytest.mark.parametrize("smoothing", [0.0, 0.2])
def test_binary_crossentropy_matches_torch(smoothing):
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    z = f32(12, 3, scale=2)
    t = rng.integers(0, 2, (12, 3)).astype(np.float32)
    smooth = t * (1 - smoothing) + 0.5 * smoothing
    ref = theirs(lambda a, b: F.binary_cross_entropy_with_logits(b, a * (1 - smoothing) + 0.5 * smoothing), t, z)
    check(ours(losses.BinaryCrossentropy(from_logits=True, label_smoothing=smoothing), t, z), ref)
    check(ours(losses.BinaryCrossentropy(label_smoothing=smoothing), t, z, transform=activations.sigmoid), ref)
    probs = (1 / (1 + np.exp(-z))).astype(np.float32)
    check(ours(losses.BinaryCrossentropy(label_smoothing=smoothing), t, probs),
          theirs(lambda a, b: F.binary_cross_entropy(b, a * 0 + torch.tensor(smooth)), t, probs))


# -- numpy references ---------------------------------------------------------------------------------

def test_other_losses_match_numpy():
    t, p = f32(6, 5), f32(6, 5)
    np.testing.assert_allclose(losses.LogCosh()(t, p).numpy(), np.mean(np.log(np.cosh(p - t))), rtol=RTOL)
    sign = np.where(t > 0, 1.0, -1.0).astype(np.float32)
    np.testing.assert_allclose(losses.Hinge()(sign, p).numpy(), np.mean(np.maximum(1 - sign * p, 0)), rtol=RTOL)
    binary = (t > 0).astype(np.float32)  # {0,1} labels become {-1,1}, as Keras
    np.testing.assert_allclose(losses.Hinge()(binary, p).numpy(), np.mean(np.maximum(1 - sign * p, 0)), rtol=RTOL)
    np.testing.assert_allclose(losses.SquaredHinge()(sign, p).numpy(), np.mean(np.maximum(1 - sign * p, 0) ** 2), rtol=RTOL)
    a, b = np.abs(t), np.abs(p)
    np.testing.assert_allclose(losses.MeanSquaredLogarithmicError()(a, b).numpy(),
                               np.mean((np.log1p(b) - np.log1p(a)) ** 2), rtol=RTOL)
    np.testing.assert_allclose(losses.mean_absolute_percentage_error(t, p).numpy(),
                               100 * np.mean(np.abs((t - p) / np.abs(t)), axis=-1), rtol=RTOL)


def test_function_forms_return_one_value_per_sample():
    t, p = f32(4, 3), f32(4, 3)
    out = losses.mean_squared_error(t, p)
    assert out.shape == (4,)
    np.testing.assert_allclose(out.numpy(), ((t - p) ** 2).mean(-1), rtol=RTOL)
    assert losses.sparse_categorical_crossentropy(np.array([0, 1, 2, 0]), p, from_logits=True).shape == (4,)


def test_reductions_and_sample_weight():
    t, p = f32(5, 3), f32(5, 3)
    per = ((t - p) ** 2).mean(-1)
    w = np.array([1, 0, 2, 0.5, 1], np.float32)
    np.testing.assert_allclose(losses.MeanSquaredError(reduction="sum")(t, p).numpy(), per.sum(), rtol=RTOL)
    np.testing.assert_allclose(losses.MeanSquaredError(reduction=None)(t, p).numpy(), per, rtol=RTOL)
    np.testing.assert_allclose(losses.MeanSquaredError(reduction="none")(t, p).numpy(), per, rtol=RTOL)
    np.testing.assert_allclose(losses.MeanSquaredError()(t, p, sample_weight=w).numpy(), (per * w).mean(), rtol=RTOL)
    np.testing.assert_allclose(losses.MeanSquaredError(reduction="mean_with_sample_weight")(t, p, sample_weight=w).numpy(),
                               (per * w).sum() / w.sum(), rtol=RTOL)
    with pytest.raises(ValueError, match="reduction"):
        losses.MeanSquaredError(reduction="avg")


def test_rank_one_targets_against_column_predictions():
    t = np.array([1.0, 2.0, 3.0], np.float32)
    p = np.array([[1.5], [2.0], [2.0]], np.float32)
    np.testing.assert_allclose(losses.get("mse")(t, p).numpy(), np.mean((t - p[:, 0]) ** 2), rtol=RTOL)
    y = np.array([1, 0, 1], np.float32)
    out = losses.BinaryCrossentropy(from_logits=True)(y, p)
    assert np.isfinite(out.numpy())


def test_ignore_class_averages_over_kept_labels():
    z = f32(6, 4)
    labels = np.array([0, 3, 1, -1, 2, -1])
    got = losses.SparseCategoricalCrossentropy(from_logits=True, ignore_class=-1)(labels, z).numpy()
    keep = labels != -1
    logp = z - np.log(np.exp(z).sum(-1, keepdims=True))
    expected = -logp[np.arange(6)[keep], labels[keep]].mean()
    np.testing.assert_allclose(got, expected, rtol=RTOL)


# -- fusion with softmax / sigmoid -----------------------------------------------------------------

@pytest.mark.parametrize("sparse", [True, False])
def test_softmax_output_with_huge_logits_is_finite_and_fused(sparse):
    z = np.array([[1000.0, -1000.0, 0.0], [-500.0, 800.0, 10.0]], np.float32)
    labels = np.array([1, 0])
    y = labels if sparse else np.eye(3, dtype=np.float32)[labels]
    cls = losses.SparseCategoricalCrossentropy if sparse else losses.CategoricalCrossentropy
    value_p, grad_p = ours(cls(), y, z, transform=ops.softmax)
    value_l, grad_l = ours(cls(from_logits=True), y, z)
    assert np.isfinite(value_p) and np.all(np.isfinite(grad_p))
    np.testing.assert_allclose(value_p, value_l, rtol=RTOL)
    np.testing.assert_allclose(value_p, (2000.0 + 1300.0) / 2, rtol=RTOL)  # exact, not clipped at -log(1e-7)
    np.testing.assert_allclose(grad_p, grad_l, rtol=RTOL, atol=ATOL)


def test_sigmoid_output_with_huge_logits_is_finite_and_fused():
    z = np.array([[60.0], [-70.0]], np.float32)
    t = np.array([[0.0], [1.0]], np.float32)
    value, grad = ours(losses.BinaryCrossentropy(), t, z, transform=activations.sigmoid)
    np.testing.assert_allclose(value, 65.0, rtol=RTOL)
    np.testing.assert_allclose(grad, [[0.5], [-0.5]], rtol=RTOL)


def test_softmax_along_another_axis_only_fuses_on_that_axis():
    z = f32(3, 4, 5)
    labels = rng.integers(0, 4, (3, 5))
    onehot = np.moveaxis(np.eye(4, dtype=np.float32)[labels], -1, 1)
    fused = losses.categorical_crossentropy(onehot, ops.softmax(z, axis=1), axis=1).numpy()
    logits = losses.categorical_crossentropy(onehot, z, from_logits=True, axis=1).numpy()
    np.testing.assert_allclose(fused, logits, rtol=RTOL)


# -- errors ----------------------------------------------------------------------------------------

def test_unknown_string_lists_valid_names():
    with pytest.raises(ValueError, match=r"Unknown loss: 'msee'.*Did you mean 'mse'.*Valid:.*mean_squared_error"):
        losses.get("msee")


def test_get_resolves_strings_to_instances():
    loss = losses.get("sparse_categorical_crossentropy")
    assert isinstance(loss, losses.SparseCategoricalCrossentropy)
    assert isinstance(losses.get("mse"), losses.MeanSquaredError) and losses.get("mse").name == "mean_squared_error"
    assert isinstance(losses.get("CategoricalCrossentropy"), losses.CategoricalCrossentropy)
    assert losses.get(None) is None
    wrapped = losses.as_loss(lambda t, p: ops.mean(ops.square(ops.subtract(t, p)), axis=-1))
    assert float(wrapped(np.ones((2, 2), np.float32), np.zeros((2, 2), np.float32), sample_weight=None)) == 1.0
    assert isinstance(losses.as_loss(losses.mean_absolute_error), losses.MeanAbsoluteError)


def test_config_round_trip():
    loss = losses.CategoricalCrossentropy(from_logits=True, label_smoothing=0.1, name="cce", reduction="sum")
    back = losses.deserialize(losses.serialize(loss))
    assert isinstance(back, losses.CategoricalCrossentropy)
    assert back.get_config() == loss.get_config()
    assert losses.deserialize(losses.serialize(losses.Huber(delta=2.0))).get_config()["delta"] == 2.0
    assert losses.deserialize("mse") is losses.mean_squared_error


@pytest.mark.parametrize("labels, pattern", [
    (np.array([0, 1, 5, 2]), r"SparseCategoricalCrossentropy|sparse_categorical_crossentropy.*\[0, 4\).*label 5 at index 2 \(labels range from 0 to 5"),
    (np.array([0, -1, 2, 2]), r"label -1 at index 1 \(labels range from -1 to 2"),
    (np.array([0, np.nan, 2, 1]), r"whole-number.*nan"),
    (np.array([0, 1.5, 2, 1]), r"whole-number.*1\.5"),
])
def test_bad_sparse_labels_raise_before_anything_changes(labels, pattern):
    z = Variable(f32(4, 4))
    before = z.numpy().copy()
    with pytest.raises(ValueError, match=pattern):
        losses.SparseCategoricalCrossentropy(from_logits=True)(labels, z)
    with pytest.raises(ValueError, match=r"y_pred.shape=\(4, 4\)"):
        losses.get("sparse_categorical_crossentropy").check_labels(labels, (4, 4))
    np.testing.assert_array_equal(z.numpy(), before)


def test_whole_float_labels_are_cast():
    z = f32(3, 3)
    a = losses.SparseCategoricalCrossentropy(from_logits=True)(np.array([0.0, 2.0, 1.0]), z).numpy()
    b = losses.SparseCategoricalCrossentropy(from_logits=True)(np.array([0, 2, 1]), z).numpy()
    np.testing.assert_allclose(a, b)
    c = losses.SparseCategoricalCrossentropy(from_logits=True)(np.array([[0], [2], [1]]), z).numpy()
    np.testing.assert_allclose(a, c)


def test_mismatched_shapes_have_keras_messages():
    with pytest.raises(ValueError, match=r"must have the same shape. Received: target.shape=\(4, 3\), output.shape=\(4, 5\)"):
        losses.CategoricalCrossentropy()(np.zeros((4, 3), np.float32), f32(4, 5))
    with pytest.raises(ValueError, match=r"same rank"):
        losses.categorical_crossentropy(np.zeros((4,), np.float32), f32(4, 5))
    with pytest.raises(ValueError, match=r"same shape up until the last dimension.*target.shape=\(3,\)"):
        losses.SparseCategoricalCrossentropy()(np.array([0, 1, 2]), f32(4, 5))
    with pytest.raises(ValueError, match=r"target.shape=\(4, 3\), output.shape=\(4, 5\)"):
        losses.MeanSquaredError()(np.zeros((4, 3), np.float32), f32(4, 5))


def test_per_sample_weights_spread_over_masked_steps():
    """sample_weight (batch,) with a per-step loss and a padding mask: each sample's weight covers its real
    steps (Keras raises a shape error for this call; the meaning is unambiguous)."""
    constant = dlgpu.initializers.Constant
    rng = np.random.default_rng(0)
    tokens = rng.integers(1, 9, size=(8, 6))
    tokens[:4, 3:] = 0
    labels, weights = rng.integers(0, 3, size=(8, 6)), np.linspace(0.1, 1, 8).astype("float32")
    inputs = dlgpu.Input((6,), dtype="int32")
    hidden = dlgpu.layers.Embedding(10, 3, mask_zero=True, embeddings_initializer=constant(0.05))(inputs)
    hidden = dlgpu.layers.SimpleRNN(4, return_sequences=True, kernel_initializer=constant(0.1))(hidden)
    model = dlgpu.Model(inputs, dlgpu.layers.Dense(3, kernel_initializer=constant(0.2))(hidden))
    model.compile("sgd", dlgpu.losses.SparseCategoricalCrossentropy(from_logits=True))
    loss = model.evaluate(tokens, labels, sample_weight=weights, verbose=0)
    logits = model.predict(tokens, verbose=0)
    log_p = logits - logits.max(-1, keepdims=True)
    log_p -= np.log(np.exp(log_p).sum(-1, keepdims=True))
    per_step = -np.take_along_axis(log_p, labels[..., None], -1)[..., 0]
    mask = (tokens != 0).astype("float32")
    assert loss == pytest.approx((per_step * weights[:, None] * mask).sum() / mask.sum(), rel=1e-5)
    unmasked = dlgpu.losses.MeanSquaredError(reduction="sum")
    values = unmasked(np.ones((2, 3, 1), "float32"), np.zeros((2, 3, 1), "float32"), sample_weight=np.array([1.0, 2.0]))
    assert float(values) == pytest.approx(9.0)  # 3 steps x 1 + 3 steps x 2
