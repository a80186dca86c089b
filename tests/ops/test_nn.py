"""dlgpu.ops.nn: activations, fused dense, softmax, cross-entropies, dropout, batch norm."""

import zlib

import numpy as np
import pytest

from dlgpu import ops
from dlgpu.autograd import GradientTape, Tensor

from helpers import away_from, check_gradients

rng = np.random.default_rng(3)


def randn(*shape):
    return rng.standard_normal(shape)


ACTIVATIONS = ["relu", "sigmoid", "tanh", "gelu", "leaky_relu", "relu6", "softplus", "softsign", "silu", "elu",
               "selu", "hard_sigmoid", "log_sigmoid", "mish", "exponential"]
KINKS = {"relu": [0.0], "leaky_relu": [0.0], "relu6": [0.0, 6.0], "elu": [0.0], "selu": [0.0],
         "hard_sigmoid": [-3.0, 3.0]}


@pytest.mark.parametrize("name", ACTIVATIONS)
def test_activation_gradients(name):
    x = away_from(randn(3, 5) * 3, KINKS.get(name, []))
    check_gradients(getattr(ops, name), [x], rtol=1e-4)


@pytest.mark.parametrize("name", ACTIVATIONS)
def test_activation_keeps_float32(name):
    x = Tensor(randn(3, 5).astype(np.float32))
    with GradientTape() as tape:
        tape.watch(x)
        y = getattr(ops, name)(x)
    assert y.dtype == "float32"
    assert tape.gradient(y, x).dtype == "float32"


def test_gelu_approximate_gradient():
    check_gradients(lambda t: ops.gelu(t, approximate=True), [randn(3, 4)])


def test_leaky_relu_slope():
    check_gradients(lambda t: ops.leaky_relu(t, negative_slope=0.1), [away_from(randn(3, 4), [0.0])])


@pytest.mark.parametrize("axis", [-1, 0, 1])
@pytest.mark.parametrize("name", ["softmax", "log_softmax"])
def test_softmax_gradients(name, axis):
    check_gradients(lambda t: getattr(ops, name)(t, axis=axis), [randn(2, 3, 4)])


@pytest.mark.parametrize("axis", [-1, 0, 1])
def test_softmax_values(axis):
    x = randn(2, 3, 4)
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    expected = e / e.sum(axis=axis, keepdims=True)
    np.testing.assert_allclose(ops.softmax(Tensor(x), axis=axis).numpy(), expected, rtol=1e-5)
    np.testing.assert_allclose(ops.log_softmax(Tensor(x), axis=axis).numpy(), np.log(expected), rtol=1e-5, atol=1e-6)


def _dense_inputs(x_shape, units, bias, activation):
    """x, kernel, bias with every pre-activation well away from the relu/leaky_relu kink at 0; drawn from a
    generator of their own, so a case's inputs do not depend on which tests ran before it (under xdist)."""
    local = np.random.default_rng(zlib.crc32(repr((x_shape, units, bias, activation)).encode()))
    while True:
        x, w = local.standard_normal(x_shape), local.standard_normal((x_shape[-1], units))
        b = local.standard_normal(units) if bias else None
        z = x @ w + (b if bias else 0)
        if activation not in ("relu", "leaky_relu") or np.abs(z).min() > 1e-2:
            return [x, w] + ([b] if bias else [])


@pytest.mark.parametrize("x_shape", [(4, 3), (2, 3, 3), (1, 3)], ids=str)
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("activation", ["linear", "relu", "sigmoid", "tanh", "gelu", "leaky_relu"])
def test_dense_gradients(activation, bias, x_shape):
    inputs = _dense_inputs(x_shape, 5, bias, activation)
    check_gradients(lambda *ts: ops.dense(*ts, activation=activation) if bias
                    else ops.dense(ts[0], ts[1], None, activation=activation), inputs, rtol=1e-4)


@pytest.mark.parametrize("activation", ["linear", "relu", "sigmoid", "tanh", "gelu", "leaky_relu"])
def test_dense_matches_composed_ops(activation):
    x, w, b = (Tensor(a.astype(np.float32)) for a in _dense_inputs((2, 3, 4), 5, True, activation))
    fused = ops.dense(x, w, b, activation=activation)
    composed = ops.add(ops.matmul(x, w), b)
    composed = composed if activation == "linear" else getattr(ops, activation)(composed)
    assert fused.shape == (2, 3, 5) and fused.dtype == "float32"
    np.testing.assert_allclose(fused.numpy(), composed.numpy(), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("activation", ["linear", "relu", "gelu", "leaky_relu"])
def test_dense_keeps_float32(activation):
    x, w, b = (Tensor(a.astype(np.float32)) for a in _dense_inputs((4, 3), 5, True, activation))
    with GradientTape() as tape:
        tape.watch([x, w, b])
        y = ops.dense(x, w, b, activation=activation)
    assert y.dtype == "float32"
    assert all(g.dtype == "float32" for g in tape.gradient(y, [x, w, b]))


def test_dense_feature_mismatch_error():
    with pytest.raises(ValueError, match=r"dense: input has 3 features \(shape \(2, 3\)\).*expects 4.*\(4, 5\)"):
        ops.dense(np.ones((2, 3), np.float32), np.ones((4, 5), np.float32))


def test_dense_unknown_activation_error():
    with pytest.raises(ValueError, match="unsupported fused activation 'swish'"):
        ops.dense(np.ones((2, 3), np.float32), np.ones((3, 5), np.float32), activation="swish")


@pytest.mark.parametrize("shape", [(4, 5), (2, 3, 5), (1, 2)], ids=str)
def test_softmax_cross_entropy_sparse_gradient(shape):
    labels = rng.integers(0, shape[-1], size=shape[:-1])
    grads = check_gradients(ops.softmax_cross_entropy, [randn(*shape), labels])
    assert len(grads) == 1


@pytest.mark.parametrize("shape", [(4, 5), (2, 3, 5)], ids=str)
def test_softmax_cross_entropy_dense_gradient(shape):
    labels = rng.dirichlet(np.ones(shape[-1]), size=shape[:-1])
    check_gradients(ops.softmax_cross_entropy, [randn(*shape), labels], wrt=[0])


def test_softmax_cross_entropy_other_axis():
    labels = rng.integers(0, 3, size=(4,))
    check_gradients(lambda z, t: ops.softmax_cross_entropy(z, t, axis=0), [randn(3, 4), labels])


def test_softmax_cross_entropy_values():
    z = randn(4, 5)
    labels = np.array([0, 4, 2, 2])
    expected = -np.log(np.exp(z) / np.exp(z).sum(-1, keepdims=True))[np.arange(4), labels]
    np.testing.assert_allclose(ops.softmax_cross_entropy(Tensor(z), labels).numpy(), expected, rtol=1e-5)
    onehot = np.eye(5)[labels]
    np.testing.assert_allclose(ops.softmax_cross_entropy(Tensor(z), Tensor(onehot)).numpy(), expected, rtol=1e-5)


def test_softmax_cross_entropy_extreme_logits_are_finite():
    z = Tensor(np.array([[1000.0, -1000.0, 0.0]], np.float32))
    loss = ops.softmax_cross_entropy(z, np.array([1]))
    assert np.isfinite(loss.numpy()).all()
    np.testing.assert_allclose(loss.numpy(), [2000.0])


def test_softmax_cross_entropy_keeps_float32_and_int_labels():
    z = Tensor(randn(4, 5).astype(np.float32))
    labels = Tensor(np.array([0, 1, 2, 3], np.int64))
    with GradientTape() as tape:
        tape.watch(z)
        loss = ops.softmax_cross_entropy(z, labels)
    assert loss.dtype == "float32" and labels.dtype == "int64"
    assert tape.gradient(loss, z).dtype == "float32"


@pytest.mark.parametrize("label_shape", [(3, 4), (4,)], ids=str)
def test_sigmoid_cross_entropy_gradient(label_shape):
    labels = rng.random(label_shape)
    check_gradients(ops.sigmoid_cross_entropy, [randn(3, 4) * 3, labels], wrt=[0])


def test_sigmoid_cross_entropy_values_and_extremes():
    z = np.array([-50.0, -1.0, 0.0, 2.0, 50.0])
    t = np.array([0.0, 1.0, 0.5, 0.0, 1.0])
    expected = np.logaddexp(0.0, z) - z * t  # -t log p - (1-t) log(1-p), written without overflow
    out = ops.sigmoid_cross_entropy(Tensor(z.astype(np.float32)), Tensor(t.astype(np.float32)))
    assert out.dtype == "float32"
    np.testing.assert_allclose(out.numpy(), expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("with_params", [True, False])
@pytest.mark.parametrize("shape,axes", [((6, 3), (0,)), ((2, 3, 3, 2), (0, 1, 2)), ((4, 5), (0, 1))], ids=str)
def test_batch_norm_train_gradient(shape, axes, with_params):
    param_shape = tuple(s for i, s in enumerate(shape) if i not in axes) or (1,)
    if with_params:
        inputs = [randn(*shape), rng.uniform(0.5, 1.5, param_shape), randn(*param_shape)]
        check_gradients(lambda x, g, b: ops.batch_norm_train(x, g, b, axes, 1e-3)[0], inputs, rtol=1e-4)
    else:
        check_gradients(lambda x: ops.batch_norm_train(x, None, None, axes, 1e-3)[0], [randn(*shape)], rtol=1e-4)


def test_batch_norm_train_statistics_and_float32():
    x = randn(8, 3).astype(np.float32)
    gamma, beta = Tensor(np.ones(3, np.float32)), Tensor(np.zeros(3, np.float32))
    y, mean, var = ops.batch_norm_train(Tensor(x), gamma, beta, (0,), 1e-3)
    assert y.dtype == "float32" and mean.dtype == np.float32 and var.dtype == np.float32
    np.testing.assert_allclose(np.squeeze(mean), x.mean(0), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(np.squeeze(var), x.var(0), rtol=1e-4)
    np.testing.assert_allclose(y.numpy(), (x - x.mean(0)) / np.sqrt(x.var(0) + 1e-3), rtol=1e-4, atol=1e-5)


def test_batch_normalization_inference_gradient():
    x, mean, var = randn(4, 3), randn(3), rng.uniform(0.5, 2, 3)
    check_gradients(lambda x, m, v, o, s: ops.batch_normalization(x, m, v, offset=o, scale=s),
                    [x, mean, var, randn(3), randn(3)])


@pytest.mark.parametrize("rate", [0.25, 0.5, 0.9])
def test_dropout_grad_is_mask_scaled(rate):
    x = Tensor(randn(20, 30).astype(np.float32) + 5.0)  # no zeros in x: zeros in y are dropped entries
    with GradientTape() as tape:
        tape.watch(x)
        y = ops.dropout(x, rate, seed=7)
    kept = y.numpy() != 0
    assert 0 < kept.mean() < 1
    expected_mask = kept / np.float32(1 - rate)
    np.testing.assert_allclose(y.numpy(), x.numpy() * expected_mask, rtol=1e-6)
    g = tape.gradient(y, x)
    assert y.dtype == "float32" and g.dtype == "float32"
    np.testing.assert_allclose(g.numpy(), expected_mask, rtol=1e-6)


def test_dropout_fixed_seed_gradient_check():
    check_gradients(lambda t: ops.dropout(t, 0.5, seed=3), [randn(4, 5)])


def test_dropout_noise_shape_and_rate_zero():
    x = Tensor(np.ones((4, 6), np.float32))
    y = ops.dropout(x, 0.5, noise_shape=(None, 1), seed=1).numpy()
    assert (np.ptp(y, axis=1) == 0).all()  # one decision per row
    assert ops.dropout(x, 0.0) is x
    with pytest.raises(ValueError, match="rate must be in"):
        ops.dropout(x, 1.0)


# The keras.ops.nn activations and losses added later: values against torch or numpy formulas, gradients.
def _torch(name, x, *args):
    import torch
    return getattr(torch.nn.functional, name)(torch.tensor(x), *args).numpy()


MORE_ACTIVATIONS = {
    "hard_silu": (lambda x: _torch("hardswish", x), [-3.0, 3.0]),
    "celu": (lambda x: _torch("celu", x, 1.0), [0.0]),
    "squareplus": (lambda x: (x + np.sqrt(x * x + 4)) / 2, []),
    "sparse_plus": (lambda x: np.where(x <= -1, 0, np.where(x >= 1, x, (x + 1) ** 2 / 4)), [-1.0, 1.0]),
    "sparse_sigmoid": (lambda x: np.clip((x + 1) / 2, 0, 1), [-1.0, 1.0]),
    "hard_tanh": (lambda x: _torch("hardtanh", x), [-1.0, 1.0]),
    "hard_shrink": (lambda x: _torch("hardshrink", x, 0.5), [-0.5, 0.5]),
    "soft_shrink": (lambda x: _torch("softshrink", x, 0.5), [-0.5, 0.5]),
    "tanh_shrink": (lambda x: _torch("tanhshrink", x), []),
}


@pytest.mark.parametrize("name", sorted(MORE_ACTIVATIONS))
def test_more_activations(name):
    reference, kinks = MORE_ACTIVATIONS[name]
    x = away_from(randn(4, 5) * 2, kinks, 0.05)
    np.testing.assert_allclose(getattr(ops, name)(x.astype(np.float32)).numpy(), reference(x), rtol=1e-5, atol=1e-6)
    check_gradients(getattr(ops, name), [x])
    assert getattr(ops, name)(np.array([1, -2], np.int32)).dtype == "float32"


def test_hard_swish_alias_threshold_glu_celu_alpha():
    assert ops.hard_swish is ops.hard_silu
    x = away_from(randn(3, 6), [0.3])
    np.testing.assert_allclose(ops.threshold(x, 0.3, -1.0).numpy(), np.where(x > 0.3, x, -1.0).astype(np.float32))
    check_gradients(lambda t: ops.threshold(t, 0.3, -1.0), [x])
    np.testing.assert_allclose(ops.glu(x).numpy(), _torch("glu", x, -1), rtol=1e-5)
    y = randn(4, 3)
    np.testing.assert_allclose(ops.glu(y, 0).numpy(), _torch("glu", y, 0), rtol=1e-5)
    check_gradients(ops.glu, [x])
    check_gradients(lambda t: ops.glu(t, axis=0), [y])
    with pytest.raises(ValueError, match="glu: axis -1 must have an even size"):
        ops.glu(np.ones((2, 3)))
    np.testing.assert_allclose(ops.celu(x, 0.5).numpy(), _torch("celu", x, 0.5), rtol=1e-5, atol=1e-6)


def test_sparsemax_projects_onto_the_simplex():
    # its own generator: the module's would give inputs that depend on the order xdist runs tests in
    x = np.random.default_rng(17).standard_normal((3, 4, 5))
    for axis in (-1, 0, 1):
        out = ops.sparsemax(x.astype(np.float32), axis=axis).numpy()
        assert out.dtype == np.float32 and (out >= 0).all()
        np.testing.assert_allclose(out.sum(axis), 1.0, rtol=1e-5)  # a float32 sum of up to 5 terms
        # the projection's optimality conditions: out = x - tau on the support (one tau per slice), x <= tau off it
        z, p = np.moveaxis(x, axis, -1), np.moveaxis(out, axis, -1)
        tau = np.where(p > 0, z - p, -np.inf).max(-1, keepdims=True)
        np.testing.assert_allclose(np.where(p > 0, z - p, tau), np.broadcast_to(tau, z.shape), atol=1e-6)
        assert (np.where(p > 0, -np.inf, z) <= tau + 1e-6).all()
        check_gradients(lambda t: ops.sparsemax(t, axis=axis), [x])
    # a size-1 axis is all support; a tie at the top splits evenly; a far winner takes everything
    single = np.random.default_rng(18).standard_normal((4, 1)).astype(np.float32)
    np.testing.assert_allclose(ops.sparsemax(single).numpy(), np.ones((4, 1), np.float32), rtol=1e-6)  # x - (x - 1)
    np.testing.assert_allclose(ops.sparsemax(np.array([[2.0, 2.0, -5.0]])).numpy(), [[0.5, 0.5, 0.0]])
    np.testing.assert_allclose(ops.sparsemax(np.array([9.0, 1.0, 0.0])).numpy(), [1.0, 0.0, 0.0])


def test_activation_functions_with_arguments_have_gradients():
    from dlgpu import activations
    x = away_from(randn(3, 6) * 2, [-1.2, -1.0, 0.0, 0.3, 1.0, 1.2], 0.05)
    for fn in (lambda t: activations.celu(t, alpha=0.6), lambda t: activations.hard_shrink(t, threshold=1.2),
               lambda t: activations.soft_shrink(t, threshold=1.2), lambda t: activations.squareplus(t, b=2),
               lambda t: activations.threshold(t, 0.3, -2.0), lambda t: activations.glu(t, axis=0 if t.shape[0] % 2
                                                                                      == 0 else -1),
               activations.log_sigmoid, activations.tanh_shrink, activations.sparse_plus, activations.sparse_sigmoid,
               activations.hard_tanh, lambda t: activations.sparsemax(t, axis=0)):
        check_gradients(fn, [x])
    for name in ("celu", "glu", "hard_shrink", "hard_tanh", "log_sigmoid", "soft_shrink", "sparse_plus",
                 "sparse_sigmoid", "sparsemax", "squareplus", "tanh_shrink", "threshold"):
        assert activations.get(name) is getattr(activations, name)
        assert activations.serialize(getattr(activations, name)) == name


def test_multi_hot():
    np.testing.assert_array_equal(ops.multi_hot(np.array([[0, 2], [1, 1]]), 4).numpy(), [[1, 0, 1, 0], [0, 1, 0, 0]])
    np.testing.assert_array_equal(ops.multi_hot(np.array([3, 0, 9]), 4).numpy(), [1, 0, 0, 1])
    out = ops.multi_hot(np.array([[0, 2], [1, 1]]), 3, axis=0, dtype="int32")
    assert out.dtype == "int32" and out.shape == (3, 2)
    assert ops.multi_hot(np.array([[1]]), num_tokens=2).shape == (1, 2)
    with pytest.raises(NotImplementedError, match="multi_hot: sparse=True"):
        ops.multi_hot(np.array([1]), 2, sparse=True)
    with pytest.raises(TypeError, match="multi_hot: inputs must be integer"):
        ops.multi_hot(np.array([1.0]), 2)


def _probabilities(*shape):
    p = rng.uniform(0.1, 1.0, shape)
    return p / p.sum(-1, keepdims=True)


@pytest.mark.parametrize("from_logits", [False, True])
def test_crossentropies_match_torch(from_logits):
    import torch
    logits = randn(4, 5)
    target = _probabilities(4, 5)
    labels = rng.integers(0, 5, 4)
    output = logits if from_logits else _probabilities(4, 5)
    log_p = torch.log_softmax(torch.tensor(logits), -1) if from_logits else torch.log(torch.tensor(output))
    np.testing.assert_allclose(ops.categorical_crossentropy(target, output, from_logits).numpy(),
                               -(torch.tensor(target) * log_p).sum(-1).numpy(), rtol=1e-5)
    np.testing.assert_allclose(ops.sparse_categorical_crossentropy(labels, output, from_logits).numpy(),
                               -log_p[np.arange(4), labels].numpy(), rtol=1e-5)
    np.testing.assert_allclose(ops.sparse_categorical_crossentropy(labels[:, None], output, from_logits).numpy(),
                               -log_p[np.arange(4), labels].numpy(), rtol=1e-5)
    check_gradients(lambda t, o: ops.categorical_crossentropy(t, o, from_logits), [target, output])
    check_gradients(lambda o: ops.sparse_categorical_crossentropy(labels, o, from_logits), [output])
    binary_target = rng.uniform(0, 1, (3, 4))
    binary_output = randn(3, 4) if from_logits else rng.uniform(0.05, 0.95, (3, 4))
    functional = torch.nn.functional
    fn = functional.binary_cross_entropy_with_logits if from_logits else functional.binary_cross_entropy
    np.testing.assert_allclose(ops.binary_crossentropy(binary_target, binary_output, from_logits).numpy(),
                               fn(torch.tensor(binary_output), torch.tensor(binary_target), reduction="none").numpy(),
                               rtol=1e-5)
    check_gradients(lambda t, o: ops.binary_crossentropy(t, o, from_logits), [binary_target, binary_output])


def test_crossentropies_clip_probabilities_and_name_bad_shapes():
    assert np.isfinite(ops.binary_crossentropy(np.array([1.0, 0.0]), np.array([0.0, 1.0])).numpy()).all()
    assert np.isfinite(ops.categorical_crossentropy(np.array([[1.0, 0.0]]), np.array([[0.0, 1.0]])).numpy()).all()
    with pytest.raises(ValueError, match=r"categorical_crossentropy: target and output must have the same shape"):
        ops.categorical_crossentropy(np.ones((2, 3)), np.ones((2, 4)))
    with pytest.raises(ValueError, match="sparse_categorical_crossentropy: target of shape"):
        ops.sparse_categorical_crossentropy(np.zeros(3, np.int32), np.ones((2, 4)))


def test_psnr():
    a, b = rng.uniform(0, 1, (2, 8)), rng.uniform(0, 1, (2, 8))
    mse = np.mean((a - b) ** 2)
    np.testing.assert_allclose(ops.psnr(a, b, 1.0).numpy(), 20 * np.log10(1.0) - 10 * np.log10(mse), rtol=1e-5)


def _torch_attention(q, k, v, mask=None, causal=False, scale=None):
    import torch
    group = q.shape[-2] // k.shape[-2]
    tq, tk, tv = (torch.tensor(a).transpose(-3, -2) for a in (q, k, v))
    tk, tv = tk.repeat_interleave(group, -3), tv.repeat_interleave(group, -3)
    out = torch.nn.functional.scaled_dot_product_attention(
        tq, tk, tv, attn_mask=None if mask is None else torch.tensor(mask), is_causal=causal, scale=scale)
    return out.transpose(-3, -2).numpy()


@pytest.mark.parametrize("case", ["plain", "causal", "mask", "gqa", "unbatched", "bias", "scale"])
def test_dot_product_attention_matches_torch(case):
    q, k, v = randn(2, 5, 4, 3), randn(2, 6, 4, 3), randn(2, 6, 4, 3)
    kwargs, ref = {}, {}
    if case == "causal":
        kwargs, ref = {"is_causal": True}, {"causal": True}
    elif case == "mask":
        mask = rng.random((2, 1, 5, 6)) > 0.3
        mask[..., 0] = True
        kwargs, ref = {"mask": mask}, {"mask": mask}
    elif case == "gqa":
        k, v = randn(2, 6, 2, 3), randn(2, 6, 2, 3)
    elif case == "unbatched":
        q, k, v = q[0], k[0], v[0]
    elif case == "scale":
        kwargs = ref = {"scale": 0.3}
    if case == "bias":
        bias = randn(1, 4, 5, 6)
        got = ops.dot_product_attention(q, k, v, bias=bias).numpy()
        scores = np.einsum("btnh,bsnh->bnts", q, k) / np.sqrt(3) + bias
        weights = np.exp(scores - scores.max(-1, keepdims=True))
        weights /= weights.sum(-1, keepdims=True)
        want = np.einsum("bnts,bsnh->btnh", weights, v)
    else:
        got = ops.dot_product_attention(q, k, v, **kwargs).numpy()
        want = _torch_attention(q, k, v, **ref)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)
    check_gradients(lambda a, b, c: ops.dot_product_attention(a, b, c, **kwargs), [q, k, v])


def test_dot_product_attention_refuses_flash_and_names_bad_shapes():
    q = np.ones((1, 2, 2, 4), np.float32)
    with pytest.raises(NotImplementedError, match="flash_attention=True"):
        ops.dot_product_attention(q, q, q, flash_attention=True)
    with pytest.raises(ValueError, match="dot_product_attention: incompatible shapes"):
        ops.dot_product_attention(q, np.ones((1, 2, 3, 4)), np.ones((1, 2, 3, 4)))


def test_dot_product_attention_soft_cap():
    q, k, v = randn(1, 3, 2, 4) * 3, randn(1, 4, 2, 4) * 3, randn(1, 4, 2, 4)
    scores = 5.0 * np.tanh(np.einsum("btnh,bsnh->bnts", q, k) / 2.0 / 5.0)
    weights = np.exp(scores - scores.max(-1, keepdims=True))
    weights /= weights.sum(-1, keepdims=True)
    np.testing.assert_allclose(ops.dot_product_attention(q, k, v, attn_logits_soft_cap=5.0).numpy(),
                               np.einsum("bnts,bsnh->btnh", weights, v), rtol=1e-5, atol=1e-6)
    check_gradients(lambda a, b, c: ops.dot_product_attention(a, b, c, attn_logits_soft_cap=5.0), [q, k, v])


@pytest.mark.gpu
def test_new_nn_ops_on_gpu_match_cpu():
    import dlgpu
    x, q, k = randn(3, 6), randn(2, 5, 4, 3), randn(2, 6, 2, 3)
    target, labels = _probabilities(3, 6), rng.integers(0, 6, 3)
    results = []
    for device in ("cpu", "gpu"):
        with dlgpu.device(device):
            xt, qt, kt, tt = (ops.convert_to_tensor(a) for a in (x, q, k, target))
            lt = ops.convert_to_tensor(labels)
            with GradientTape() as tape:
                tape.watch([xt, qt, kt])
                outs = [getattr(ops, n)(xt) for n in sorted(MORE_ACTIVATIONS)]
                outs += [ops.glu(xt), ops.threshold(xt, 0.1, 2.0), ops.categorical_crossentropy(tt, xt, True),
                         ops.categorical_crossentropy(tt, ops.softmax(xt)),
                         ops.sparse_categorical_crossentropy(lt, xt, True),
                         ops.binary_crossentropy(tt, ops.sigmoid(xt)), ops.binary_crossentropy(tt, xt, True),
                         ops.dot_product_attention(qt, kt, kt, is_causal=True, attn_logits_soft_cap=4.0),
                         ops.psnr(xt, tt, 1.0), ops.log_sigmoid(xt), ops.multiply(ops.sparsemax(xt), tt),
                         ops.multiply(ops.sparsemax(xt, axis=0), tt)]
                loss = sum(ops.sum(o) for o in outs)
            grads = tape.gradient(loss, [xt, qt, kt])
            results.append([o.numpy() for o in outs + [ops.multi_hot(lt[None], 6)]] + [g.numpy() for g in grads])
    for on_cpu, on_gpu in zip(*results):
        np.testing.assert_allclose(on_gpu, on_cpu, rtol=1e-5, atol=1e-5)
