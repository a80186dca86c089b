"""models: one training step and predict of the two seed models, on every framework.

    mlp_train     MLP 784-128-128-10 (relu, softmax), batch 128, Adam(1e-3, epsilon 1e-10): forward, loss,
                  backward, update, and the loss read back to the host (as fit's loss tracker does)
    cnn_train     seed CNN Conv2D 32 -> MaxPool -> Conv2D 64 -> MaxPool -> Flatten -> Dense 10, batch 64
    mlp_predict   model.predict on 1024 host samples (one batch): host -> device -> forward -> host
    cnn_predict   the same for the CNN

Every path starts from the same initial weights (numpy, glorot uniform, zero biases) and the same
batch; the check runs two steps and compares both losses and the probabilities after them.
PyTorch's CNN runs NCHW; its last Dense weight is permuted so that it computes the same function
as the NHWC model (a free re-indexing of a weight, not a transpose of activations).
"""

from __future__ import annotations

import numpy as np

from bench.suites._common import Case, NotSupported, rng, to_numpy, torch_device

SIZES = {"tiny": {"mlp": 16, "cnn": 8, "predict": 32},
         "quick": {"mlp": 128, "cnn": 64, "predict": 1024},
         "full": {"mlp": 128, "cnn": 64, "predict": 1024}}
# Keras adds epsilon to sqrt(v), PyTorch to sqrt(v_hat) = sqrt(v / (1 - beta2^t)): with the usual 1e-7 the two
# optimizers take visibly different steps wherever |g| is below ~1e-5.  A tiny epsilon makes the
# conventions agree, so the cross-check can compare stock torch.optim.Adam with Keras-style Adam.
LR, EPS = 1e-3, 1e-10


def glorot(r, shape):
    fan_in = int(np.prod(shape[:-1]))
    fan_out = shape[-1] * (int(np.prod(shape[:-2])) if len(shape) > 2 else 1)
    limit = np.sqrt(6.0 / (fan_in + fan_out))
    return r.uniform(-limit, limit, shape).astype(np.float32)


def initial_weights(kind, seed=0):
    """Keras order and layouts: Dense kernels (in, out), Conv2D kernels (kh, kw, cin, cout)."""
    r = rng(seed)
    if kind == "mlp":
        shapes = [(784, 128), (128, 128), (128, 10)]
    else:
        shapes = [(3, 3, 1, 32), (3, 3, 32, 64), (1600, 10)]
    weights = []
    for s in shapes:
        weights += [glorot(r, s), np.zeros(s[-1], np.float32)]
    return weights


def input_shape(kind):
    return (784,) if kind == "mlp" else (28, 28, 1)


def synthetic_batch(kind, n, seed=1):
    r = rng(seed)
    x = r.random((n,) + input_shape(kind), dtype=np.float32)
    y = r.integers(0, 10, n).astype(np.int32)
    return x, y


# -- dlgpu and Keras (same code: the Keras API) ---------------------------------------------------

def keras_model(keras, kind, weights):
    layers = keras.layers
    if kind == "mlp":
        stack = [keras.Input(shape=(784,)), layers.Dense(128, activation="relu"),
                 layers.Dense(128, activation="relu"), layers.Dense(10, activation="softmax")]
    else:
        stack = [keras.Input(shape=(28, 28, 1)), layers.Conv2D(32, (3, 3), activation="relu"),
                 layers.MaxPooling2D((2, 2)), layers.Conv2D(64, (3, 3), activation="relu"),
                 layers.MaxPooling2D((2, 2)), layers.Flatten(), layers.Dense(10, activation="softmax")]
    model = keras.Sequential(stack)
    model.compile(optimizer=keras.optimizers.Adam(learning_rate=LR, epsilon=EPS) if _takes_epsilon(keras)
                  else keras.optimizers.Adam(learning_rate=LR),
                  loss="sparse_categorical_crossentropy")
    model.set_weights(weights)
    return model


def _takes_epsilon(keras):
    import inspect
    try:
        return "epsilon" in inspect.signature(keras.optimizers.Adam).parameters
    except (TypeError, ValueError):
        return False


def _dlgpu_train(path, kind, weights, x, y):
    import dlgpu as keras
    from dlgpu.autograd import Tensor, no_grad
    model = keras_model(keras, kind, weights)
    xb = Tensor(keras.to_device(x, path.device))
    yb = Tensor(keras.to_device(y, path.device))

    def step():
        loss, _, _ = model._train_batch(xb, yb)  # one step, without fit's per-call checks and metrics
        return float(loss)

    def check():
        losses = [step(), step()]
        with no_grad():
            probs = to_numpy(model(xb, training=False))
        return {"loss": np.asarray(losses), "probs": probs}
    return step, check


def _keras_train(kind, weights, x, y):
    import keras
    model = keras_model(keras, kind, weights)

    def step():
        return float(np.asarray(model.train_on_batch(x, y)).reshape(-1)[0])

    def check():
        losses = [step(), step()]
        return {"loss": np.asarray(losses), "probs": np.asarray(model.predict(x, verbose=0))}
    return step, check


# -- PyTorch --------------------------------------------------------------------------------------

def torch_model(kind, weights, dev):
    import torch
    nn = torch.nn
    t = lambda a: torch.from_numpy(np.ascontiguousarray(a))  # noqa: E731
    if kind == "mlp":
        model = nn.Sequential(nn.Linear(784, 128), nn.ReLU(), nn.Linear(128, 128), nn.ReLU(), nn.Linear(128, 10))
        linears = [model[0], model[2], model[4]]
        with torch.no_grad():
            for layer, (w, b) in zip(linears, zip(weights[::2], weights[1::2])):
                layer.weight.copy_(t(w.T))
                layer.bias.copy_(t(b))
    else:
        model = nn.Sequential(nn.Conv2d(1, 32, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(32, 64, 3), nn.ReLU(),
                              nn.MaxPool2d(2), nn.Flatten(), nn.Linear(1600, 10))
        k1, b1, k2, b2, w, b = weights
        # NHWC flatten index (h*5+w)*64 + c  ->  NCHW flatten index c*25 + h*5+w
        w_nchw = w.reshape(25, 64, 10).transpose(1, 0, 2).reshape(1600, 10)
        with torch.no_grad():
            model[0].weight.copy_(t(k1.transpose(3, 2, 0, 1)))
            model[0].bias.copy_(t(b1))
            model[3].weight.copy_(t(k2.transpose(3, 2, 0, 1)))
            model[3].bias.copy_(t(b2))
            model[7].weight.copy_(t(w_nchw.T))
            model[7].bias.copy_(t(b))
    return model.to(dev)


def torch_input(kind, x):
    """NCHW for the CNN: (n, 28, 28, 1) and (n, 1, 28, 28) hold the same bytes, so this is free."""
    return x if kind == "mlp" else x.reshape(len(x), 1, 28, 28)


def _torch_train(path, kind, weights, x, y):
    import torch
    F = torch.nn.functional
    dev = torch_device(path)
    model = torch_model(kind, weights, dev)
    opt = torch.optim.Adam(model.parameters(), lr=LR, eps=EPS)
    xb = torch.from_numpy(torch_input(kind, x)).to(dev)
    yb = torch.from_numpy(y.astype(np.int64)).to(dev)

    def step():
        opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(model(xb), yb)
        loss.backward()
        opt.step()
        return loss.item()

    def check():
        losses = [step(), step()]
        with torch.no_grad():
            probs = to_numpy(torch.softmax(model(xb), dim=1))
        return {"loss": np.asarray(losses), "probs": probs}
    return step, check


def _numpy_train(kind, weights, x, y):
    if kind != "mlp":
        raise NotSupported("the hand-written numpy reference is the MLP only")
    from bench.reference_numpy import NumpyMLP
    net = NumpyMLP(weights, lr=LR, eps=EPS)

    def step():
        return net.train_step(x, y)

    def check():
        losses = [step(), step()]
        return {"loss": np.asarray(losses), "probs": net.predict(x)}
    return step, check


def _train_case(kind, batch):
    weights = initial_weights(kind)
    x, y = synthetic_batch(kind, batch)

    def setup(path):
        if path.framework == "dlgpu":
            return _dlgpu_train(path, kind, weights, x, y)
        if path.framework == "torch":
            return _torch_train(path, kind, weights, x, y)
        if path.framework == "numpy":
            return _numpy_train(kind, weights, x, y)
        if path.framework == "keras":
            return _keras_train(kind, weights, x, y)
        raise NotSupported(f"no {path.framework} implementation")
    return Case("models", f"{kind}_train", {"batch": batch, "optimizer": "adam"}, setup,
                tolerance_reason="two Adam steps; PyTorch adds epsilon to sqrt(v_hat), Keras to sqrt(v)")


# -- predict --------------------------------------------------------------------------------------

def _predict_case(kind, batch):
    weights = initial_weights(kind)
    x, _ = synthetic_batch(kind, batch, seed=2)

    def setup(path):
        if path.framework in ("dlgpu", "keras"):
            if path.framework == "dlgpu":
                import dlgpu as keras
            else:
                import keras
            model = keras_model(keras, kind, weights)

            def step():
                return model.predict(x, batch_size=batch, verbose=0)
            return step, lambda: {"probs": np.asarray(step())}
        if path.framework == "torch":
            import torch
            dev = torch_device(path)
            model = torch_model(kind, weights, dev).eval()
            xh = torch.from_numpy(torch_input(kind, x))

            def step():
                with torch.no_grad():
                    return torch.softmax(model(xh.to(dev)), dim=1).cpu().numpy()
            return step, lambda: {"probs": step()}
        raise NotSupported(f"no {path.framework} implementation of predict")
    return Case("models", f"{kind}_predict", {"batch": batch, "from": "host numpy", "to": "host numpy"}, setup)


def cases(size="full"):
    s = SIZES[size]
    return [_train_case("mlp", s["mlp"]), _train_case("cnn", s["cnn"]),
            _predict_case("mlp", s["predict"]), _predict_case("cnn", s["predict"])]
