"""Every backend primitive and a few whole models on the GPU, against the numpy reference.

Marked `gpu`: skipped with the reason where CuPy sees no GPU (tests/conftest.py).  Each primitive runs
twice on the GPU: through our kernels and through the generic CuPy path (DLGPU_KERNELS=generic).
"""

import numpy as np
import pytest

from dlgpu.backend import cpu

pytestmark = pytest.mark.gpu

RNG = np.random.default_rng(0)


def _rand(*shape):
    return RNG.standard_normal(shape).astype(np.float32)


@pytest.fixture(params=["kernels", "generic"])
def gpu(request, monkeypatch):
    import cupy  # noqa: F401 - the marker already guarantees it imports
    monkeypatch.setenv("DLGPU_KERNELS", "on" if request.param == "kernels" else "generic")
    from dlgpu.backend import gpu as gpu_backend
    return gpu_backend


def _to_gpu(tree):
    import cupy
    if isinstance(tree, np.ndarray):
        return cupy.asarray(tree)
    if isinstance(tree, (list, tuple)):
        return type(tree)(_to_gpu(t) for t in tree)
    return tree


def _host(tree):
    if tree is None or isinstance(tree, (int, float, str)):
        return tree
    if isinstance(tree, (list, tuple)):
        return type(tree)(_host(t) for t in tree)
    return tree.get() if hasattr(tree, "get") else np.asarray(tree)


def _close(actual, expected, rtol=1e-4, atol=1e-4):
    actual = _host(actual)
    assert actual.dtype == np.asarray(expected).dtype, (actual.dtype, np.asarray(expected).dtype)
    np.testing.assert_allclose(actual, expected, rtol=rtol, atol=atol)


@pytest.mark.parametrize("name", cpu.ACTIVATIONS)
@pytest.mark.parametrize("shape", [(1,), (7, 33), (127, 5, 3)])
def test_activation_and_grad(gpu, name, shape):
    x, dy = _rand(*shape), _rand(*shape)
    y = cpu.activation(x, name)
    _close(gpu.activation(_to_gpu(x), name), y)
    _close(gpu.activation_grad(_to_gpu(dy), _to_gpu(x), _to_gpu(y), name), cpu.activation_grad(dy, x, y, name))


@pytest.mark.parametrize("act", cpu.ACTIVATIONS)
@pytest.mark.parametrize("m,k,n", [(1, 1, 1), (7, 33, 5), (128, 784, 128), (130, 67, 129)])
@pytest.mark.parametrize("bias", [True, False])
def test_dense(gpu, act, m, k, n, bias):
    x, w, b = _rand(m, k), _rand(k, n) / np.float32(np.sqrt(k)), _rand(n) if bias else None
    y, ctx = cpu.dense_forward(x, w, b, act)
    gy, gctx = gpu.dense_forward(_to_gpu(x), _to_gpu(w), _to_gpu(b), act)
    _close(gy, y)
    dy = _rand(m, n)
    for got, want in zip(gpu.dense_backward(_to_gpu(dy), gctx), cpu.dense_backward(dy, ctx)):
        if want is not None:
            _close(got, want, rtol=1e-3, atol=1e-3)


@pytest.mark.parametrize("shape,kernel,strides,pads", [
    ((1, 7, 7, 1), 3, (1, 1), (0, 0, 0, 0)),
    ((2, 28, 28, 1), 3, (1, 1), (0, 0, 0, 0)),
    ((3, 13, 13, 32), 3, (1, 1), (1, 1, 1, 1)),
    ((2, 9, 8, 3), 5, (2, 2), (2, 2, 1, 2)),
])
@pytest.mark.parametrize("act", ["linear", "relu", "gelu"])
def test_conv2d(gpu, shape, kernel, strides, pads, act):
    x = _rand(*shape)
    w = _rand(kernel, kernel, shape[-1], 33) / np.float32(np.sqrt(kernel * kernel * shape[-1]))
    b = _rand(33)
    y, ctx = cpu.conv2d_forward(x, w, b, strides, pads, act)
    gy, gctx = gpu.conv2d_forward(_to_gpu(x), _to_gpu(w), _to_gpu(b), strides, pads, act)
    _close(gy, y, rtol=1e-3, atol=1e-3)
    dy = _rand(*y.shape)
    for got, want in zip(gpu.conv2d_backward(_to_gpu(dy), gctx), cpu.conv2d_backward(dy, ctx)):
        _close(got, want, rtol=1e-3, atol=2e-3)


@pytest.mark.parametrize("shape,pool,strides,pads", [
    ((1, 1, 1, 1), (1, 1), (1, 1), (0, 0, 0, 0)),
    ((2, 26, 26, 32), (2, 2), (2, 2), (0, 0, 0, 0)),
    ((2, 11, 11, 7), (2, 2), (2, 2), (0, 0, 0, 0)),
    ((3, 9, 9, 5), (3, 3), (2, 2), (1, 1, 1, 1)),
])
def test_pooling(gpu, shape, pool, strides, pads):
    x = _rand(*shape)
    y, argmax = cpu.max_pool2d_forward(x, pool, strides, pads)
    gy, gargmax = gpu.max_pool2d_forward(_to_gpu(x), pool, strides, pads)
    _close(gy, y)
    _close(gpu.max_pool2d(_to_gpu(x), pool, strides, pads), y)
    dy = _rand(*y.shape)
    _close(gpu.max_pool2d_backward(_to_gpu(dy), gargmax, shape, pool, strides, pads),
           cpu.max_pool2d_backward(dy, argmax, shape, pool, strides, pads))
    a, _ = cpu.avg_pool2d_forward(x, pool, strides, pads)
    ga, _ = gpu.avg_pool2d_forward(_to_gpu(x), pool, strides, pads)
    _close(ga, a)
    _close(gpu.avg_pool2d_backward(_to_gpu(dy), shape, pool, strides, pads),
           cpu.avg_pool2d_backward(dy, shape, pool, strides, pads))


@pytest.mark.parametrize("rows,classes", [(1, 1), (7, 10), (33, 1000), (130, 3)])
@pytest.mark.parametrize("sparse", [True, False])
def test_softmax_cross_entropy(gpu, rows, classes, sparse):
    logits = _rand(rows, classes) * 5
    labels = RNG.integers(0, classes, rows) if sparse else cpu.softmax(_rand(rows, classes))
    _close(gpu.softmax(_to_gpu(logits)), cpu.softmax(logits))
    loss, probs = cpu.softmax_cross_entropy(logits, labels)
    gloss, gprobs = gpu.softmax_cross_entropy(_to_gpu(logits), _to_gpu(labels))
    _close(gloss, loss)
    _close(gprobs, probs)
    dloss = _rand(rows)
    _close(gpu.softmax_cross_entropy_backward(_to_gpu(dloss), gprobs, _to_gpu(labels)),
           cpu.softmax_cross_entropy_backward(dloss, probs, labels))


@pytest.mark.parametrize("weight_decay", [0.0, 0.01])
def test_adam_update(gpu, weight_decay):
    shapes = [(784, 128), (128,), (1,), (33, 7)]
    params = [_rand(*s) for s in shapes]
    grads = [_rand(*s) for s in shapes]
    ms = [np.zeros(s, np.float32) for s in shapes]
    vs = [np.zeros(s, np.float32) for s in shapes]
    gparams, ggrads, gms, gvs = (_to_gpu(list(t)) for t in (params, grads, ms, vs))
    for step in (1, 2, 3):
        cpu.adam_update(params, grads, ms, vs, 1e-3, 0.9, 0.999, 1e-7, step, weight_decay)
        gpu.adam_update(gparams, ggrads, gms, gvs, 1e-3, 0.9, 0.999, 1e-7, step, weight_decay)
    for got, want in zip(gparams, params):
        _close(got, want, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("nesterov", [False, True])
def test_sgd_update(gpu, nesterov):
    shapes = [(64, 10), (10,)]
    params = [_rand(*s) for s in shapes]
    grads = [_rand(*s) for s in shapes]
    vel = [np.zeros(s, np.float32) for s in shapes]
    gparams, ggrads, gvel = (_to_gpu(list(t)) for t in (params, grads, vel))
    for _ in range(3):
        cpu.sgd_update(params, grads, vel, 0.01, 0.9, nesterov)
        gpu.sgd_update(gparams, ggrads, gvel, 0.01, 0.9, nesterov)
    for got, want in zip(gparams, params):
        _close(got, want, rtol=1e-5, atol=1e-6)


def _seed_cnn(keras):
    from dlgpu import layers
    return keras.Sequential([
        keras.Input((28, 28, 1)), layers.Conv2D(32, 3, activation="relu"), layers.MaxPooling2D(),
        layers.Conv2D(64, 3, activation="relu"), layers.MaxPooling2D(), layers.Flatten(),
        layers.Dense(10, activation="softmax")])


@pytest.mark.parametrize("path", [pytest.param("kernels", marks=pytest.mark.gpu_sized), "generic"])
def test_seed_cnn_trains_the_same_on_gpu(path, monkeypatch):
    """Same weights and data: the GPU's losses over a few Adam steps track the CPU's."""
    import dlgpu as keras
    monkeypatch.setenv("DLGPU_KERNELS", "on" if path == "kernels" else "generic")
    x = RNG.random((256, 28, 28, 1), dtype=np.float32)
    y = RNG.integers(0, 10, 256)
    with keras.device("cpu"):
        cpu_model = _seed_cnn(keras)
        cpu_model.compile("adam", "sparse_categorical_crossentropy")
    with keras.device("gpu"):
        gpu_model = _seed_cnn(keras)
        gpu_model.compile("adam", "sparse_categorical_crossentropy")
    gpu_model.set_weights(cpu_model.get_weights())
    cpu_losses = [cpu_model.train_on_batch(x[i:i + 64], y[i:i + 64]) for i in range(0, 256, 64)]
    gpu_losses = [gpu_model.train_on_batch(x[i:i + 64], y[i:i + 64]) for i in range(0, 256, 64)]
    np.testing.assert_allclose(gpu_losses, cpu_losses, rtol=2e-3)
    np.testing.assert_allclose(gpu_model.predict(x[:32], verbose=0), cpu_model.predict(x[:32], verbose=0),
                               rtol=1e-2, atol=1e-4)
    assert gpu_model.weights[0].device.kind == "gpu"


def test_float64_falls_back_to_the_reference_path(gpu):
    """Our kernels are float32-only; other dtypes take CuPy's generic path instead of failing."""
    x, w = _rand(5, 7).astype(np.float64), _rand(7, 3).astype(np.float64)
    y, _ = gpu.dense_forward(_to_gpu(x), _to_gpu(w), None, "relu")
    _close(y, cpu.dense_forward(x, w, None, "relu")[0])


def test_mixing_devices_is_an_error():
    import dlgpu
    with dlgpu.device("gpu"):
        on_gpu = dlgpu.ops.ones((2, 2))
    on_cpu = dlgpu.Tensor(np.ones((2, 2), np.float32))
    with pytest.raises(dlgpu.DeviceError, match="different devices"):
        dlgpu.ops.add(on_gpu, on_cpu)
