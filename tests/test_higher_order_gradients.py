"""Higher-order gradients through nested GradientTapes (dlgpu/autograd.py, backward_graph): second
derivatives against their closed forms, Hessian-vector products and the WGAN-GP gradient penalty against
torch.autograd (create_graph=True), and the refusal for ops without a differentiable backward."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import dlgpu
from dlgpu import layers, ops
from dlgpu.autograd import GradientTape

torch.backends.cuda.matmul.allow_tf32 = False
torch.backends.cudnn.allow_tf32 = False


def _sigmoid(x):
    return 1 / (1 + np.exp(-x))


def _phi(x):
    return np.exp(-0.5 * x * x) / np.sqrt(2 * np.pi)


# name: (f on Tensors, f'' on numpy arrays, points)
SECOND_DERIVATIVES = {
    "power": (lambda x: ops.power(x, 3.0), lambda x: 6 * x, [-1.5, 0.5, 2.0]),
    "multiply": (lambda x: x * x * x, lambda x: 6 * x, [-1.5, 0.5, 2.0]),
    "square_sqrt": (lambda x: ops.sqrt(ops.square(x) + 1.0), lambda x: (x * x + 1) ** -1.5, [-2.0, 0.0, 0.7]),
    "exp_log": (lambda x: ops.exp(x) + ops.log(x), lambda x: np.exp(x) - 1 / x ** 2, [0.5, 1.0, 2.5]),
    "divide": (lambda x: ops.divide(2.0, x), lambda x: 4 / x ** 3, [-2.0, 0.5, 3.0]),
    "subtract_negative": (lambda x: ops.negative(ops.subtract(1.0, x) ** 2), lambda x: -2 + 0 * x, [-1.0, 2.0]),
    "abs": (lambda x: x * ops.abs(x), lambda x: 2 * np.sign(x), [-1.5, 0.5]),
    "tanh": (ops.tanh, lambda x: -2 * np.tanh(x) * (1 - np.tanh(x) ** 2), [-1.0, 0.3, 2.0]),
    "sigmoid": (ops.sigmoid, lambda x: _sigmoid(x) * (1 - _sigmoid(x)) * (1 - 2 * _sigmoid(x)), [-1.0, 0.3, 2.0]),
    "softplus": (ops.softplus, lambda x: _sigmoid(x) * (1 - _sigmoid(x)), [-3.0, 0.3, 2.0]),
    "elu": (lambda x: ops.elu(x, 0.7), lambda x: np.where(x > 0, 0.0, 0.7 * np.exp(x)), [-1.2, -0.3, 1.0]),
    "gelu": (ops.gelu, lambda x: _phi(x) * (2 - x * x), [-1.2, 0.3, 1.5]),
    "relu_squared": (lambda x: ops.square(ops.relu(x)), lambda x: np.where(x > 0, 2.0, 0.0), [-1.0, 0.5]),
    "leaky_relu_times_x": (lambda x: ops.leaky_relu(x, 0.1) * x, lambda x: np.where(x > 0, 2.0, 0.2), [-1.0, 0.5]),
    "maximum_minimum": (lambda x: ops.maximum(x, 0.0) ** 3 + ops.minimum(x, 0.0) ** 2,
                        lambda x: np.where(x > 0, 6 * x, 2.0), [-1.0, 0.5, 2.0]),
    "where": (lambda x: ops.where(x > 0, ops.sin(x), ops.cos(x)), lambda x: np.where(x > 0, -np.sin(x), -np.cos(x)),
              [-1.0, 0.5]),
    "erf": (ops.erf, lambda x: -4 * x / np.sqrt(np.pi) * np.exp(-x * x), [-0.7, 0.4]),
    "tan": (ops.tan, lambda x: 2 * np.tan(x) * (1 + np.tan(x) ** 2), [-0.5, 0.3]),
    "logsumexp": (lambda x: ops.logsumexp(ops.stack([x, 2.0 * x]), axis=0),
                  lambda x: 1.0 * _sigmoid(x) * (1 - _sigmoid(x)), [-1.0, 0.5]),
}


@pytest.mark.parametrize("name", sorted(SECOND_DERIVATIVES))
def test_second_derivative_of_a_scalar_function(name):
    f, second, points = SECOND_DERIVATIVES[name]
    x = dlgpu.Variable(np.array(points, np.float32))
    with GradientTape() as outer:
        with GradientTape() as inner:
            y = ops.sum(f(x))
        first = inner.gradient(y, x)
    assert first._tracked  # connected to the graph the outer tape differentiates
    d2 = outer.gradient(first, x)
    np.testing.assert_allclose(d2.numpy(), second(np.array(points)), rtol=2e-5, atol=2e-6)


def test_first_order_values_are_the_same_in_both_sweeps():
    rng = np.random.default_rng(0)
    x = dlgpu.Variable(rng.standard_normal((3, 4)).astype("float32"))
    w = dlgpu.Variable(rng.standard_normal((4, 5)).astype("float32"))
    b = dlgpu.Variable(rng.standard_normal(5).astype("float32"))

    def loss():
        h = ops.dense(x, w, b, activation="gelu")
        parts = ops.concatenate([h[:, :2], ops.transpose(h)[1:3].T], axis=1)
        return ops.mean(ops.softmax(parts) * ops.expand_dims(ops.sum(x, axis=1), -1)) + ops.max(ops.squeeze(h[:1]))
    with GradientTape() as tape:
        value = loss()
    plain = tape.gradient(value, [x, w, b])
    assert not any(g._tracked for g in plain)  # no outer tape: raw arrays, nothing recorded
    with GradientTape():
        with GradientTape() as tape:
            value = loss()
        graph = tape.gradient(value, [x, w, b])
    for p, g in zip(plain, graph):
        assert g.dtype == p.dtype == "float32" and g.shape == p.shape
        np.testing.assert_allclose(g.numpy(), p.numpy(), rtol=1e-5, atol=1e-7)


def test_third_derivative():
    x = dlgpu.Variable(np.array([-1.0, 0.5, 2.0], np.float32))
    with GradientTape() as t3:
        with GradientTape() as t2:
            with GradientTape() as t1:
                y = ops.sum(x ** 4.0)
            d1 = t1.gradient(y, x)
        d2 = t2.gradient(d1, x)
    d3 = t3.gradient(d2, x)
    np.testing.assert_allclose(d2.numpy(), 12 * x.numpy() ** 2, rtol=1e-6)
    np.testing.assert_allclose(d3.numpy(), 24 * x.numpy(), rtol=1e-6)


def _mlp():
    """Flatten, Dense (fused tanh / sigmoid / leaky_relu), Reshape, LeakyReLU: the layers the HVP covers."""
    model = dlgpu.Sequential([
        layers.Input((2, 3)), layers.Flatten(), layers.Dense(8, activation="tanh"),
        layers.Reshape((2, 4)), layers.Dense(5, activation="sigmoid"), layers.Flatten(),
        layers.Dense(6, activation="leaky_relu"), layers.Dense(4), layers.LeakyReLU(0.3), layers.Dense(1)])
    return model


def _torch_mlp(weights, x):
    w1, b1, w2, b2, w3, b3, w4, b4, w5, b5 = weights
    h = torch.tanh(x.reshape(x.shape[0], -1) @ w1 + b1).reshape(-1, 2, 4)
    h = torch.sigmoid(h @ w2 + b2).reshape(x.shape[0], -1)
    h = F.leaky_relu(h @ w3 + b3, 0.2)
    h = F.leaky_relu(h @ w4 + b4, 0.3)
    return h @ w5 + b5


def _mlp_data(seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((5, 2, 3)).astype("float32"), rng.standard_normal((5, 1)).astype("float32")


def _dlgpu_hvp(model, x, y, vectors):
    weights = model.trainable_weights
    with GradientTape() as outer:
        with GradientTape() as inner:
            loss = ops.mean(ops.square(model(x) - y))
        grads = inner.gradient(loss, weights)
        dot = sum(ops.sum(g * v) for g, v in zip(grads, vectors))
    return [g.numpy() for g in grads], [h.numpy() for h in outer.gradient(dot, weights)]


def _torch_hvp(weights, x, y, vectors):
    ws = [torch.tensor(w, requires_grad=True) for w in weights]
    loss = ((_torch_mlp(ws, torch.tensor(x)) - torch.tensor(y)) ** 2).mean()
    grads = torch.autograd.grad(loss, ws, create_graph=True)
    dot = sum((g * torch.tensor(v)).sum() for g, v in zip(grads, vectors))
    return [g.detach().numpy() for g in grads], [h.numpy() for h in torch.autograd.grad(dot, ws)]


def test_hessian_vector_product_of_an_mlp_matches_torch():
    model = _mlp()
    x, y = _mlp_data()
    rng = np.random.default_rng(1)
    vectors = [rng.standard_normal(w.shape).astype("float32") for w in model.trainable_weights]
    grads, hvp = _dlgpu_hvp(model, x, y, vectors)
    torch_grads, torch_hvp = _torch_hvp([w.numpy() for w in model.trainable_weights], x, y, vectors)
    for ours, theirs in zip(grads + hvp, torch_grads + torch_hvp):
        np.testing.assert_allclose(ours, theirs, rtol=1e-4, atol=1e-5)


def _gradient_penalty(critic, real, fake, alpha, axes):
    real, fake = ops.convert_to_tensor(real), ops.convert_to_tensor(fake)
    interpolated = real + alpha * (fake - real)
    with GradientTape() as outer:
        with GradientTape() as gp_tape:  # keras.io's WGAN-GP, gradient_penalty()
            gp_tape.watch(interpolated)
            pred = critic(interpolated, training=True)
        grads = gp_tape.gradient(pred, [interpolated])[0]
        norm = ops.sqrt(ops.sum(ops.square(grads), axis=axes))
        penalty = ops.mean((norm - 1.0) ** 2)
    return penalty, outer.gradient(penalty, critic.trainable_weights)


def _torch_penalty(forward, weights, real, fake, alpha, axes):
    ws = [torch.tensor(w, requires_grad=True) for w in weights]
    interpolated = torch.tensor(real + alpha * (fake - real), requires_grad=True)
    grads, = torch.autograd.grad(forward(ws, interpolated).sum(), interpolated, create_graph=True)
    penalty = ((grads.pow(2).sum(dim=axes).sqrt() - 1) ** 2).mean()
    # the last bias does not move the input gradient: no gradient (None), in both
    return penalty.item(), [None if g is None else g.numpy() for g in torch.autograd.grad(penalty, ws, allow_unused=True)]


def test_wgan_gp_penalty_gradient_of_a_dense_critic_matches_torch():
    critic = dlgpu.Sequential([layers.Input((6,)), layers.Dense(16), layers.LeakyReLU(0.2),
                               layers.Dense(8, activation="tanh"), layers.Dense(1)])
    rng = np.random.default_rng(2)
    real, fake = (rng.standard_normal((7, 6)).astype("float32") for _ in range(2))
    alpha = rng.uniform(size=(7, 1)).astype("float32")
    penalty, grads = _gradient_penalty(critic, real, fake, alpha, axes=1)

    def forward(ws, x):
        w1, b1, w2, b2, w3, b3 = ws
        return torch.tanh(F.leaky_relu(x @ w1 + b1, 0.2) @ w2 + b2) @ w3 + b3
    expected, torch_grads = _torch_penalty(forward, [w.numpy() for w in critic.trainable_weights], real, fake,
                                           alpha, 1)
    np.testing.assert_allclose(float(penalty), expected, rtol=1e-5)
    assert grads[-1] is None and torch_grads[-1] is None
    for ours, theirs in zip(grads[:-1], torch_grads[:-1]):
        np.testing.assert_allclose(ours.numpy(), theirs, rtol=1e-4, atol=1e-6)


def test_wgan_gp_penalty_gradient_of_a_conv_critic_matches_torch():
    # keras.io's WGAN-GP critic in small: strided 'same' convolutions, LeakyReLU, Flatten, Dense
    critic = dlgpu.Sequential([layers.Input((7, 6, 2)), layers.Conv2D(4, 3, strides=2, padding="same"),
                               layers.LeakyReLU(0.2), layers.Conv2D(3, (2, 3), activation="tanh"),
                               layers.Flatten(), layers.Dense(1)])
    rng = np.random.default_rng(3)
    real, fake = (rng.standard_normal((3, 7, 6, 2)).astype("float32") for _ in range(2))
    alpha = rng.uniform(size=(3, 1, 1, 1)).astype("float32")
    penalty, grads = _gradient_penalty(critic, real, fake, alpha, axes=[1, 2, 3])

    def forward(ws, x):
        k1, b1, k2, b2, w3, b3 = ws
        # 'same' by TensorFlow's rule: rows pad (1, 1), columns (0, 1)
        h = F.conv2d(F.pad(x.permute(0, 3, 1, 2), (0, 1, 1, 1)), k1.permute(3, 2, 0, 1), b1, stride=2)
        h = torch.tanh(F.conv2d(F.leaky_relu(h, 0.2), k2.permute(3, 2, 0, 1), b2))
        return h.permute(0, 2, 3, 1).reshape(x.shape[0], -1) @ w3 + b3
    expected, torch_grads = _torch_penalty(forward, [w.numpy() for w in critic.trainable_weights], real, fake,
                                           alpha, (1, 2, 3))
    np.testing.assert_allclose(float(penalty), expected, rtol=1e-5)
    assert grads[-1] is None and torch_grads[-1] is None
    for ours, theirs in zip(grads[:-1], torch_grads[:-1]):
        np.testing.assert_allclose(ours.numpy(), theirs, rtol=1e-4, atol=1e-6)


def test_persistent_tapes():
    x = ops.convert_to_tensor(np.array([0.5, -1.0], np.float32))
    w = dlgpu.Variable(np.array([1.5, 2.0], np.float32))
    with GradientTape(persistent=True) as outer:
        outer.watch(x)
        with GradientTape() as inner:
            inner.watch(x)
            y = ops.sum(ops.exp(w * x))
        dx = inner.gradient(y, x)  # w e^(wx)
        total = ops.sum(dx)
    xs, ws = x.numpy(), w.numpy()
    # the outer tape answers twice, from one recorded first gradient
    np.testing.assert_allclose(outer.gradient(total, x).numpy(), ws ** 2 * np.exp(ws * xs), rtol=1e-6)
    np.testing.assert_allclose(outer.gradient(total, w).numpy(), (1 + ws * xs) * np.exp(ws * xs), rtol=1e-6)
    # one persistent tape, its first gradient taken inside its own context, as TF records it
    with GradientTape(persistent=True) as tape:
        y = ops.sum(w ** 3.0)
        dw = tape.gradient(y, w)
    np.testing.assert_allclose(tape.gradient(dw, w).numpy(), 6 * ws, rtol=1e-6)


def test_unconnected_sources_in_a_recorded_gradient():
    x = dlgpu.Variable(np.array([1.0, 2.0], np.float32))
    other = dlgpu.Variable(np.array([3.0], np.float32))
    with GradientTape():
        with GradientTape(persistent=True) as inner:
            y = ops.sum(x * x)
        assert inner.gradient(y, [x, other])[1] is None
        zero = inner.gradient(y, [x, other], unconnected_gradients="zero")[1]
    assert zero.dtype == "float32"
    np.testing.assert_array_equal(zero.numpy(), [0.0])


def test_an_op_without_a_second_order_gradient_raises_when_differentiated():
    # log2 stands for any op with a first-order backward only (it has no vjp)
    a = np.array([[1.0, 2.0], [0.5, 3.0]], np.float32)
    x = dlgpu.Variable(a)
    with GradientTape() as outer:
        with GradientTape() as inner:
            y = ops.sum(ops.square(ops.log2(x)))
        first = inner.gradient(y, x)
        penalty = ops.sum(first)
    # the first gradient itself is right (d log2(x)^2 = 2 log2(x) / (x ln 2)), and usable as a value
    np.testing.assert_allclose(first.numpy(), 2 * np.log2(a) / (a * np.log(2)), rtol=1e-5)
    with pytest.raises(NotImplementedError, match="second-order gradients through ops.log2 are not supported"):
        outer.gradient(penalty, x)


def test_an_op_without_a_second_order_gradient_is_fine_where_the_outer_tape_does_not_reach():
    # log2's raw gradient feeds only the first gradient; the outer target does not use it
    a = np.arange(16, dtype=np.float32).reshape(4, 4) / 8 + 0.5
    x = dlgpu.Variable(a)
    w = dlgpu.Variable(np.array(2.0, np.float32))
    with GradientTape() as outer:
        with GradientTape() as inner:
            y = ops.sum(ops.log2(x)) + w * w * w
        gx, gw = inner.gradient(y, [x, w])
    assert outer.gradient(gw, w).numpy() == pytest.approx(12.0)
    np.testing.assert_allclose(gx.numpy(), 1 / (a * np.log(2)), rtol=1e-5)


# -- Hessian-vector products through the ops with vjps of their own, against torch (create_graph=True) ----
def _nchw(t):
    return t.permute(0, t.dim() - 1, *range(1, t.dim() - 1))


def _nhwc(t):
    return t.permute(0, *range(2, t.dim()), 1)


def _conv_kernel(k, groups=1):
    # (*k, Cin/groups, Cout) as torch's (Cout, Cin/groups, *k)
    return k.permute(k.dim() - 1, k.dim() - 2, *range(k.dim() - 2))


def _depthwise_kernel(k):
    # (*k, C, M) as torch's (C*M, 1, *k): output channel c*M + m reads input channel c
    return k.reshape(*k.shape[:-2], -1).permute(k.dim() - 2, *range(k.dim() - 2)).unsqueeze(1)


_TORCH_POOL = {1: (F.max_pool1d, F.avg_pool1d), 2: (F.max_pool2d, F.avg_pool2d), 3: (F.max_pool3d, F.avg_pool3d)}


def _torch_pool(kind, x, pool, strides, pads=None):
    rank = x.dim() - 2
    x = _nchw(x)
    if pads:  # TensorFlow's 'same' for max: -inf around, more at the end
        x = F.pad(x, [p for pair in reversed(pads) for p in pair], value=-float("inf"))
    return _nhwc(_TORCH_POOL[rank][kind == "avg"](x, pool, strides))


def _dilated_same(x, k, dilation):
    return F.conv2d(_nchw(x), _conv_kernel(k), dilation=dilation, padding="same")


_EYE3 = 3 * np.eye(3, dtype=np.float32)

# name: (ours, torch's, input shapes); inputs and directions are standard normal
HVP_CASES = {
    "max_pool2d_same_overlapping": (lambda x: ops.max_pool(x, 3, 2, "same"),
                                    lambda x: _torch_pool("max", x, 3, 2, [(1, 1), (0, 1)]), [(2, 7, 6, 3)]),
    "max_pool2d_2x2": (lambda x: ops.max_pool2d(x, 2), lambda x: _torch_pool("max", x, 2, 2), [(2, 5, 4, 3)]),
    "max_pool1d": (lambda x: ops.max_pool(x, 3, 1), lambda x: _torch_pool("max", x, 3, 1), [(2, 7, 3)]),
    "max_pool3d_same": (lambda x: ops.max_pool(x, 2, 2, "same"),
                        lambda x: _torch_pool("max", x, 2, 2, [(0, 1), (0, 0), (0, 1)]), [(2, 3, 4, 5, 2)]),
    "average_pool2d": (lambda x: ops.average_pool(x, 3, 2), lambda x: _torch_pool("avg", x, 3, 2), [(2, 7, 6, 3)]),
    "average_pool1d": (lambda x: ops.average_pool(x, 2), lambda x: _torch_pool("avg", x, 2, 2), [(2, 7, 3)]),
    "average_pool3d": (lambda x: ops.average_pool(x, (2, 1, 2), 1), lambda x: _torch_pool("avg", x, (2, 1, 2), 1),
                       [(1, 3, 4, 5, 2)]),
    "conv2d_maxpool_tanh": (lambda x, k, b: ops.conv2d_maxpool(x, k, b, 1, "valid", "tanh"),
                            lambda x, k, b: _nhwc(F.max_pool2d(torch.tanh(F.conv2d(_nchw(x), _conv_kernel(k), b)), 2)),
                            [(2, 7, 6, 3), (3, 3, 3, 4), (4,)]),
    "conv2d_maxpool_same_strided": (
        lambda x, k: ops.conv2d_maxpool(x, k, None, 2, "same"),
        lambda x, k: _nhwc(F.max_pool2d(F.conv2d(F.pad(_nchw(x), (0, 1, 0, 1)), _conv_kernel(k), stride=2), 2)),
        [(2, 9, 8, 2), (2, 2, 2, 3)]),
    "layer_normalization": (lambda x, g, b: ops.layer_normalization(x, g, b, axis=-1, epsilon=1e-3),
                            lambda x, g, b: F.layer_norm(x, (5,), g, b, eps=1e-3), [(3, 4, 5), (5,), (5,)]),
    "layer_normalization_two_axes": (lambda x, g: ops.layer_normalization(x, g, None, axis=[1, 2]),
                                     lambda x, g: F.layer_norm(x, (4, 5), g, eps=1e-7), [(3, 4, 5), (4, 5)]),
    "batch_norm_train": (lambda x, g, b: ops.batch_norm_train(x, g, b, (0, 1, 2), 1e-3)[0],
                         lambda x, g, b: _nhwc(F.batch_norm(_nchw(x), None, None, g, b, training=True, eps=1e-3)),
                         [(3, 4, 2, 5), (5,), (5,)]),
    "batch_normalization_inference": (
        lambda x, mean, var, b, g: ops.batch_normalization(x, mean, ops.abs(var) + 0.5, -1, b, g, 1e-3),
        lambda x, mean, var, b, g: (x - mean) / torch.sqrt(var.abs() + 0.5 + 1e-3) * g + b,
        [(6, 5), (5,), (5,), (5,), (5,)]),
    "conv_dilated": (lambda x, k: ops.conv(x, k, 1, "same", dilation_rate=2),
                     lambda x, k: _nhwc(_dilated_same(x, k, 2)), [(2, 7, 6, 3), (3, 3, 3, 4)]),
    "conv_grouped_strided": (lambda x, k: ops.conv(x, k, 2),
                             lambda x, k: _nhwc(F.conv2d(_nchw(x), _conv_kernel(k), stride=2, groups=2)),
                             [(2, 7, 6, 4), (3, 2, 2, 6)]),
    "conv1d_dilated": (lambda x, k: ops.conv(x, k, 1, dilation_rate=2),
                       lambda x, k: _nhwc(F.conv1d(_nchw(x), _conv_kernel(k), dilation=2)), [(2, 9, 3), (3, 3, 2)]),
    "conv3d": (lambda x, k: ops.conv(x, k, (1, 2, 1)),
               lambda x, k: _nhwc(F.conv3d(_nchw(x), _conv_kernel(k), stride=(1, 2, 1))),
               [(2, 4, 5, 3, 2), (2, 2, 2, 2, 3)]),
    "depthwise_conv": (lambda x, k: ops.depthwise_conv(x, k, 1, dilation_rate=(1, 2)),
                       lambda x, k: _nhwc(F.conv2d(_nchw(x), _depthwise_kernel(k), dilation=(1, 2), groups=3)),
                       [(2, 6, 7, 3), (2, 3, 3, 2)]),
    "conv_transpose_same_strided": (
        lambda x, k: ops.conv_transpose(x, k, 2, "same"),
        # TensorFlow's 'same': the full transposed output (9 x 7) cropped at the end to input x stride
        lambda x, k: _nhwc(F.conv_transpose2d(_nchw(x), k.permute(3, 2, 0, 1), stride=2))[:, :8, :6],
        [(2, 4, 3, 3), (3, 3, 2, 3)]),
    "conv_transpose1d_dilated_output_padding": (
        lambda x, k: ops.conv_transpose(x, k, 2, output_padding=1, dilation_rate=1),
        lambda x, k: _nhwc(F.conv_transpose1d(_nchw(x), k.permute(2, 1, 0), stride=2, output_padding=1)),
        [(2, 5, 3), (3, 2, 3)]),
    "take_along_axis": (lambda x: ops.take_along_axis(x, np.array([[0, 2, 2, 1], [3, 0, 0, 0]]), 1),
                        lambda x: torch.take_along_dim(x, torch.tensor([[0, 2, 2, 1], [3, 0, 0, 0]]), 1), [(2, 4)]),
    "tile": (lambda x: ops.tile(x, (2, 1, 3)), lambda x: x.tile((2, 1, 3)), [(3, 2)]),
    "repeat": (lambda x: ops.repeat(x, 3, axis=1), lambda x: x.repeat_interleave(3, dim=1), [(2, 3)]),
    "repeat_counts": (lambda x: ops.repeat(x, [2, 0, 3], axis=0),
                      lambda x: x.repeat_interleave(torch.tensor([2, 0, 3]), dim=0), [(3, 2)]),
    "cumsum": (lambda x: ops.cumsum(x, axis=1), lambda x: x.cumsum(1), [(3, 4)]),
    "cumsum_flat": (lambda x: ops.cumsum(x), lambda x: x.reshape(-1).cumsum(0), [(3, 4)]),
    # linalg on well-conditioned matrices: a shifted by 3 I; logdet of the positive-definite a a^T + I
    "inv": (lambda a: ops.linalg.inv(a + _EYE3), lambda a: torch.linalg.inv(a + torch.tensor(_EYE3)), [(2, 3, 3)]),
    "det": (lambda a: ops.linalg.det(a + _EYE3), lambda a: torch.linalg.det(a + torch.tensor(_EYE3)), [(2, 3, 3)]),
    "logdet": (lambda a: ops.logdet(ops.matmul(a, ops.swapaxes(a, -1, -2)) + np.eye(3, dtype=np.float32)),
               lambda a: torch.logdet(a @ a.transpose(-1, -2) + torch.eye(3)), [(2, 3, 3)]),
    "solve": (lambda a, b: ops.linalg.solve(a + _EYE3, b),
              lambda a, b: torch.linalg.solve(a + torch.tensor(_EYE3), b), [(2, 3, 3), (2, 3, 2)]),
    "solve_one_vector": (lambda a, b: ops.linalg.solve(a + _EYE3, b),
                         lambda a, b: torch.linalg.solve(a + torch.tensor(_EYE3), b), [(3, 3), (3,)]),
    "prod_with_a_zero": (lambda x: ops.prod(x * np.array([1, 0, 1, 1], np.float32), axis=1, keepdims=True),
                         lambda x: (x * torch.tensor([1.0, 0.0, 1.0, 1.0])).prod(1, keepdim=True), [(3, 4)]),
    "prod_all": (lambda x: ops.prod(x), lambda x: x.prod(), [(2, 3)]),
    "cumprod_with_zeros": (lambda x: ops.cumprod(x * np.array([1, 0, 1, 1], np.float32), axis=1),
                           lambda x: (x * torch.tensor([1.0, 0.0, 1.0, 1.0])).cumprod(1), [(3, 4)]),
}


@pytest.mark.parametrize("name", sorted(HVP_CASES))
def test_hessian_vector_product_through_an_op_matches_torch(name):
    ours, theirs, shapes = HVP_CASES[name]
    rng = np.random.default_rng(sorted(HVP_CASES).index(name))
    values = [rng.standard_normal(s).astype("float32") for s in shapes]
    vectors = [rng.standard_normal(s).astype("float32") for s in shapes]
    xs = [dlgpu.Variable(v) for v in values]
    with GradientTape() as outer:
        with GradientTape() as inner:
            y = ours(*xs)
            weights = rng.standard_normal(y.shape).astype("float32")
            loss = ops.sum(ops.tanh(y) * weights)  # tanh: a curvature of its own, so no term vanishes
        grads = inner.gradient(loss, xs)
        dot = sum(ops.sum(g * v) for g, v in zip(grads, vectors))
    hvp = outer.gradient(dot, xs)

    ts = [torch.tensor(v, requires_grad=True) for v in values]
    torch_loss = (torch.tanh(theirs(*ts)) * torch.tensor(weights)).sum()
    torch_grads = torch.autograd.grad(torch_loss, ts, create_graph=True)
    torch_dot = sum((g * torch.tensor(v)).sum() for g, v in zip(torch_grads, vectors))
    torch_hvp = torch.autograd.grad(torch_dot, ts, allow_unused=True)
    np.testing.assert_allclose(float(loss), torch_loss.item(), rtol=1e-5, atol=1e-5)
    for ours_g, torch_g in zip(grads, torch_grads):
        np.testing.assert_allclose(ours_g.numpy(), torch_g.detach().numpy(), rtol=1e-4, atol=1e-5)
    for ours_h, torch_h in zip(hvp, torch_hvp):
        assert ours_h is not None
        expected = np.zeros(ours_h.shape, np.float32) if torch_h is None else torch_h.numpy()
        np.testing.assert_allclose(ours_h.numpy(), expected, rtol=1e-4, atol=1e-5)


def test_third_order_directional_derivatives_match_torch():
    # three nested tapes: the vjps' own vjps (the transposed pools, the convolution's input and kernel
    # gradients, the recomputed layer normalization) are differentiated once more
    rng = np.random.default_rng(11)
    x0 = rng.standard_normal((2, 6, 5, 2)).astype("float32")
    k0 = rng.standard_normal((2, 2, 2, 4)).astype("float32")
    g0 = rng.standard_normal(4).astype("float32")
    v = [rng.standard_normal(a.shape).astype("float32") for a in (x0, k0, g0)]

    def ours(x, k, g):
        h = ops.conv(ops.average_pool(x, 2, 1), k, 1, dilation_rate=2)
        return ops.sum(ops.tanh(ops.layer_normalization(ops.max_pool(h, 2, 1), g, None, epsilon=1e-3)))

    def theirs(x, k, g):
        h = F.conv2d(F.avg_pool2d(_nchw(x), 2, 1), _conv_kernel(k), dilation=2)
        h = _nhwc(F.max_pool2d(h, 2, 1))
        # composed: torch's fused layer_norm has a wrong third derivative (its double backward is not
        # differentiated exactly); this formula's agrees with ours and with finite differences of the HVP
        h = h - h.mean(-1, keepdim=True)
        return torch.tanh(h * torch.rsqrt((h * h).mean(-1, keepdim=True) + 1e-3) * g).sum()

    xs = [dlgpu.Variable(a) for a in (x0, k0, g0)]
    with GradientTape() as t3:
        with GradientTape() as t2:
            with GradientTape() as t1:
                y = ours(*xs)
            d1 = sum(ops.sum(g * w) for g, w in zip(t1.gradient(y, xs), v))
        d2 = sum(ops.sum(g * w) for g, w in zip(t2.gradient(d1, xs), v))
    d3 = t3.gradient(d2, xs)
    ts = [torch.tensor(a, requires_grad=True) for a in (x0, k0, g0)]
    vs = [torch.tensor(w) for w in v]
    e1 = sum((g * w).sum() for g, w in zip(torch.autograd.grad(theirs(*ts), ts, create_graph=True), vs))
    e2 = sum((g * w).sum() for g, w in zip(torch.autograd.grad(e1, ts, create_graph=True), vs))
    e3 = torch.autograd.grad(e2, ts)
    np.testing.assert_allclose(float(d2), e2.item(), rtol=1e-4)
    for ours_d, torch_d in zip(d3, e3):
        np.testing.assert_allclose(ours_d.numpy(), torch_d.numpy(), rtol=1e-3, atol=1e-4)


def test_wgan_gp_penalty_through_a_fused_conv_maxpool_and_layer_normalization_matches_torch(monkeypatch):
    # Sequential runs Conv2D + MaxPooling2D(2) as ops.conv2d_maxpool: the penalty differentiates through it
    fused_calls = []
    fused = dlgpu.ops.conv2d_maxpool
    monkeypatch.setattr(dlgpu.ops, "conv2d_maxpool", lambda *a, **k: fused_calls.append(1) or fused(*a, **k))
    critic = dlgpu.Sequential([layers.Input((8, 7, 2)), layers.Conv2D(4, 3, activation="relu"),
                               layers.MaxPooling2D(), layers.LayerNormalization(), layers.Conv2D(3, 2),
                               layers.LeakyReLU(0.2), layers.Flatten(), layers.Dense(1)])
    rng = np.random.default_rng(12)
    for w in critic.trainable_weights:  # LayerNormalization's gamma and beta away from 1 and 0
        w.assign(w.numpy() + 0.3 * rng.standard_normal(w.shape).astype("float32"))
    real, fake = (rng.standard_normal((3, 8, 7, 2)).astype("float32") for _ in range(2))
    alpha = rng.uniform(size=(3, 1, 1, 1)).astype("float32")
    penalty, grads = _gradient_penalty(critic, real, fake, alpha, axes=[1, 2, 3])
    assert fused_calls

    def forward(ws, x):
        k1, b1, gamma, beta, k2, b2, w3, b3 = ws
        h = F.max_pool2d(torch.relu(F.conv2d(_nchw(x), _conv_kernel(k1), b1)), 2)
        h = F.layer_norm(_nhwc(h), (4,), gamma, beta, eps=1e-3)
        h = F.leaky_relu(F.conv2d(_nchw(h), _conv_kernel(k2), b2), 0.2)
        return _nhwc(h).reshape(x.shape[0], -1) @ w3 + b3
    expected, torch_grads = _torch_penalty(forward, [w.numpy() for w in critic.trainable_weights], real, fake,
                                           alpha, (1, 2, 3))
    np.testing.assert_allclose(float(penalty), expected, rtol=1e-5)
    for ours, theirs, w in zip(grads, torch_grads, critic.trainable_weights):
        # None where the weight cannot move the input gradient (the last bias; beta and the second bias,
        # seen only through LeakyReLU's piecewise-constant derivative): torch's zeros or None
        ours = np.zeros(w.shape, np.float32) if ours is None else ours.numpy()
        np.testing.assert_allclose(ours, np.zeros(w.shape) if theirs is None else theirs, rtol=1e-4, atol=1e-5)


@pytest.mark.gpu
def test_hessian_vector_product_on_gpu_matches_cpu():
    x, y = _mlp_data(4)
    results = []
    for device in ("cpu", "gpu"):
        with dlgpu.device(device):
            dlgpu.set_random_seed(5)
            model = _mlp()
            rng = np.random.default_rng(6)
            vectors = [ops.convert_to_tensor(rng.standard_normal(w.shape).astype("float32"))
                       for w in model.trainable_weights]
            xd, yd = ops.convert_to_tensor(x), ops.convert_to_tensor(y)
            grads, hvp = _dlgpu_hvp(model, xd, yd, vectors)
            critic = dlgpu.Sequential([layers.Input((5, 4, 2)), layers.Conv2D(3, 3, strides=2, padding="same"),
                                       layers.LeakyReLU(0.2), layers.Flatten(), layers.Dense(1)])
            real = ops.convert_to_tensor(rng.standard_normal((2, 5, 4, 2)).astype("float32"))
            _, penalty_grads = _gradient_penalty(critic, real, real * 0.5, 0.3, axes=[1, 2, 3])
            # the biases have no second-order effect here (LeakyReLU's derivative is piecewise constant): None
            assert [g is None for g in penalty_grads] == [False, True, False, True]
            # pooling, layer normalization, transposed and dilated convolutions: the other second-order paths
            pooled = dlgpu.Sequential([layers.Input((6, 6, 2)), layers.Conv2D(3, 3, padding="same", activation="tanh"),
                                       layers.MaxPooling2D(), layers.LayerNormalization(),
                                       layers.Conv2DTranspose(3, 3, strides=2, padding="same"),
                                       layers.Conv2D(2, 2, dilation_rate=2, padding="same"),
                                       layers.AveragePooling2D(), layers.Flatten(), layers.Dense(1)])
            real6 = ops.convert_to_tensor(rng.standard_normal((2, 6, 6, 2)).astype("float32"))
            _, pooled_grads = _gradient_penalty(pooled, real6, real6 * 0.5, 0.3, axes=[1, 2, 3])
            results.append(grads + hvp + [g.numpy() for g in penalty_grads + pooled_grads if g is not None])
    for on_cpu, on_gpu in zip(*results):
        np.testing.assert_allclose(on_gpu, on_cpu, rtol=1e-4, atol=1e-5)


def _torch_rnn(kind, weights, units):
    """torch's recurrent layer holding dlgpu's weights (Keras's layouts: kernels (in, gates * units) with the
    gates in Keras's order; GRU reset_after with a (2, 3 units) bias)."""
    kernel, recurrent, bias = (torch.tensor(w.numpy()) for w in weights)
    if kind == "GRU":  # Keras's gates z, r, h; torch's r, z, n
        def order(t):
            z, r, h = t.split(units, dim=-1)
            return torch.cat([r, z, h], dim=-1)
        kernel, recurrent, bias = order(kernel), order(recurrent), order(bias)
    net = {"LSTM": torch.nn.LSTM, "GRU": torch.nn.GRU, "SimpleRNN": torch.nn.RNN}[kind](
        kernel.shape[0], units, batch_first=True)
    params = dict(net.named_parameters())
    with torch.no_grad():
        params["weight_ih_l0"].copy_(kernel.T)
        params["weight_hh_l0"].copy_(recurrent.T)
        params["bias_ih_l0"].copy_(bias[0] if kind == "GRU" else bias)
        params["bias_hh_l0"].copy_(bias[1] if kind == "GRU" else torch.zeros_like(bias))
    return net


@pytest.mark.parametrize("kind", ["LSTM", "GRU", "SimpleRNN"])
def test_hessian_vector_product_through_recurrent_layers_matches_torch(kind):
    rng = np.random.default_rng(["LSTM", "GRU", "SimpleRNN"].index(kind))
    x0 = rng.standard_normal((2, 5, 4)).astype("float32")
    vector = rng.standard_normal(x0.shape).astype("float32")
    layer = getattr(layers, kind)(3, return_sequences=True)
    x = dlgpu.Variable(x0)
    with GradientTape() as outer:
        with GradientTape() as inner:
            y = layer(x)
            weights = rng.standard_normal(y.shape).astype("float32")
            loss = ops.sum(ops.tanh(y) * weights)
        gx = inner.gradient(loss, x)
        dot = ops.sum(gx * vector)
    hx = outer.gradient(dot, x)

    net = _torch_rnn(kind, layer.weights, 3)
    xt = torch.tensor(x0, requires_grad=True)
    torch_loss = (torch.tanh(net(xt)[0]) * torch.tensor(weights)).sum()
    gt, = torch.autograd.grad(torch_loss, xt, create_graph=True)
    ht, = torch.autograd.grad((gt * torch.tensor(vector)).sum(), xt)
    np.testing.assert_allclose(float(loss), torch_loss.item(), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(gx.numpy(), gt.detach().numpy(), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(hx.numpy(), ht.numpy(), rtol=1e-4, atol=1e-5)
