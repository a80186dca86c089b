"""The Keras workflow on the GPU gives what it gives on the CPU: fit with every optimizer, every loss
and metric, BatchNormalization/Dropout in training, save and load with the optimizer state, Python
data sources, callbacks.

Marked ``gpu``: they run on a CUDA GPU, and in CI on the simulated one (``pytest -m gpu --simulated-gpu``,
dlgpu/testing/simulated_cupy.py), which holds the code to CuPy's rules where numpy would let it pass.
"""

import numpy as np
import pytest

import dlgpu
from dlgpu import layers, losses, metrics, optimizers

pytestmark = pytest.mark.gpu


def _classification_data(n=96, features=6, classes=3, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, features)).astype(np.float32)
    y = (x[:, :classes].argmax(axis=1)).astype(np.int64)
    return x, y


def _mlp(with_noise=False, classes=3):
    extra = [layers.BatchNormalization(), layers.Dropout(0.25)] if with_noise else [layers.LayerNormalization()]
    return dlgpu.Sequential([layers.Input((6,)), layers.Dense(16, activation="relu"), *extra,
                             layers.Dense(classes)])


def _trained(device, optimizer, weights=None, epochs=2, **compile_kwargs):
    """Loss history and final weights of a small fit on ``device``, from ``weights`` when given."""
    x, y = _classification_data()
    with dlgpu.device(device):
        model = _mlp()
        if weights is not None:
            model.set_weights(weights)
        model.compile(optimizer=optimizer, loss=losses.SparseCategoricalCrossentropy(from_logits=True),
                      **compile_kwargs)
        history = model.fit(x, y, batch_size=32, epochs=epochs, shuffle=False, verbose=0).history
    return history, model.get_weights()


@pytest.mark.parametrize("make_optimizer", [
    lambda: optimizers.SGD(0.05),
    lambda: optimizers.SGD(0.05, momentum=0.9, nesterov=True, weight_decay=1e-3),
    lambda: optimizers.Adam(0.01),
    lambda: optimizers.AdamW(0.01, weight_decay=0.01),
    lambda: optimizers.Adam(0.01, amsgrad=False, clipnorm=1.0),
    lambda: optimizers.RMSprop(0.01, momentum=0.5),
    lambda: optimizers.Adagrad(0.05),
], ids=["sgd", "sgd-nesterov-decay", "adam", "adamw", "adam-clipnorm", "rmsprop", "adagrad"])
def test_fit_on_gpu_matches_cpu_for_every_optimizer(make_optimizer):
    dlgpu.set_random_seed(0)
    weights = [w.copy() for w in _mlp().get_weights()]
    cpu_history, cpu_weights = _trained("cpu", make_optimizer(), weights)
    gpu_history, gpu_weights = _trained("gpu", make_optimizer(), weights)
    np.testing.assert_allclose(gpu_history["loss"], cpu_history["loss"], rtol=1e-4)
    for a, b in zip(gpu_weights, cpu_weights):
        assert isinstance(a, np.ndarray)  # get_weights hands host copies back
        np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-5)


def test_batchnorm_and_dropout_train_on_gpu():
    """Training-mode BatchNormalization and Dropout (different random draws from the CPU's: only the
    outcome is compared) and the moving statistics they leave behind."""
    x, y = _classification_data(n=192)
    dlgpu.set_random_seed(1)
    with dlgpu.device("gpu"):
        model = _mlp(with_noise=True)
        model.compile(optimizer=optimizers.Adam(0.01), loss=losses.SparseCategoricalCrossentropy(from_logits=True),
                      metrics=["accuracy"])
        history = model.fit(x, y, batch_size=32, epochs=10, verbose=0).history
        moving_mean = model.layers[1].moving_mean.numpy()
    assert np.all(np.isfinite(history["loss"]))
    assert history["loss"][-1] < history["loss"][0]
    assert history["accuracy"][-1] > 0.75
    assert np.any(moving_mean != 0)


_LOSSES = {
    "binary_crossentropy": (losses.BinaryCrossentropy(), "probability"),
    "binary_crossentropy_logits": (losses.BinaryCrossentropy(from_logits=True, label_smoothing=0.1), "binary"),
    "categorical_crossentropy": (losses.CategoricalCrossentropy(from_logits=True), "one_hot"),
    "sparse_categorical_crossentropy": (losses.SparseCategoricalCrossentropy(), "sparse"),
    "mse": (losses.MeanSquaredError(), "regression"),
    "mae": (losses.MeanAbsoluteError(), "regression"),
    "mape": (losses.MeanAbsolutePercentageError(), "regression"),
    "msle": (losses.MeanSquaredLogarithmicError(), "positive"),
    "huber": (losses.Huber(delta=0.5), "regression"),
    "log_cosh": (losses.LogCosh(), "regression"),
    "hinge": (losses.Hinge(), "binary"),
    "squared_hinge": (losses.SquaredHinge(), "binary"),
    "categorical_hinge": (losses.CategoricalHinge(), "one_hot"),
    "kld": (losses.KLDivergence(), "probability"),
    "poisson": (losses.Poisson(), "positive"),
    "cosine_similarity": (losses.CosineSimilarity(), "regression"),
}


def _loss_operands(kind, rng):
    logits = rng.standard_normal((8, 4)).astype(np.float32)
    if kind == "sparse":
        y_pred = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
        return rng.integers(0, 4, 8), y_pred
    if kind == "one_hot":
        return np.eye(4, dtype=np.float32)[rng.integers(0, 4, 8)], logits
    if kind == "binary":
        return rng.integers(0, 2, (8, 4)).astype(np.float32), logits
    if kind == "probability":
        return rng.uniform(0.05, 0.95, (8, 4)).astype(np.float32), rng.uniform(0.05, 0.95, (8, 4)).astype(np.float32)
    if kind == "positive":
        return rng.uniform(0.1, 3, (8, 4)).astype(np.float32), rng.uniform(0.1, 3, (8, 4)).astype(np.float32)
    return rng.standard_normal((8, 4)).astype(np.float32), logits


def _loss_and_gradient(loss, y_true, y_pred, weights, device):
    with dlgpu.device(device):
        pred = dlgpu.Variable(y_pred)
        with dlgpu.GradientTape() as tape:
            value = loss(dlgpu.to_device(y_true, device), pred, sample_weight=dlgpu.to_device(weights, device))
        (grad,) = tape.gradient(value, [pred])
    return float(value.numpy()), grad.numpy()


@pytest.mark.parametrize("name", sorted(_LOSSES))
def test_every_loss_on_gpu_matches_cpu(name):
    loss, kind = _LOSSES[name]
    rng = np.random.default_rng(3)
    y_true, y_pred = _loss_operands(kind, rng)
    weights = rng.uniform(0, 2, 8).astype(np.float32)
    cpu_value, cpu_grad = _loss_and_gradient(loss, y_true, y_pred, weights, "cpu")
    gpu_value, gpu_grad = _loss_and_gradient(loss, y_true, y_pred, weights, "gpu")
    np.testing.assert_allclose(gpu_value, cpu_value, rtol=1e-5)
    np.testing.assert_allclose(gpu_grad, cpu_grad, rtol=1e-4, atol=1e-6)


_METRICS = [
    lambda: metrics.SparseCategoricalAccuracy(),
    lambda: metrics.SparseTopKCategoricalAccuracy(k=2),
    lambda: metrics.AUC(num_thresholds=50),
    lambda: metrics.AUC(curve="PR", multi_label=True, num_labels=3),
    lambda: metrics.Precision(thresholds=[0.3, 0.6]),
    lambda: metrics.Recall(top_k=1),
    lambda: metrics.F1Score(average="macro"),
    lambda: metrics.F1Score(average=None, threshold=0.4),
    lambda: metrics.TruePositives(), lambda: metrics.FalseNegatives(),
    lambda: metrics.MeanSquaredError(), lambda: metrics.RootMeanSquaredError(),
    lambda: metrics.CategoricalAccuracy(), lambda: metrics.Accuracy(),
]


def _metric_results(device, make_metric, weights):
    x, y = _classification_data(n=64, seed=4)
    one_hot = np.eye(3, dtype=np.float32)[y]
    dlgpu.backend.clear_session(free_memory=False)  # the same automatic metric names (auc, not auc_1) in both runs
    with dlgpu.device(device):
        model = dlgpu.Sequential([layers.Input((6,)), layers.Dense(3, activation="softmax")])
        model.set_weights(weights)
        metric = make_metric()
        sparse = isinstance(metric, (metrics.SparseCategoricalAccuracy, metrics.SparseTopKCategoricalAccuracy))
        model.compile(loss="sparse_categorical_crossentropy" if sparse else "categorical_crossentropy",
                      metrics=[metric])
        return model.evaluate(x, y if sparse else one_hot, batch_size=16, verbose=0, return_dict=True)


@pytest.mark.parametrize("index", range(len(_METRICS)))
def test_every_metric_on_gpu_matches_cpu(index):
    dlgpu.set_random_seed(2)
    weights = dlgpu.Sequential([layers.Input((6,)), layers.Dense(3)]).get_weights()
    on_cpu = _metric_results("cpu", _METRICS[index], weights)
    on_gpu = _metric_results("gpu", _METRICS[index], weights)
    assert on_gpu.keys() == on_cpu.keys()
    for key in on_cpu:
        np.testing.assert_allclose(on_gpu[key], on_cpu[key], rtol=1e-4, atol=1e-6, err_msg=key)


def test_save_on_gpu_and_resume_exactly(tmp_path):
    """The optimizer state is saved from device arrays and restored into device arrays: fit, save, load,
    fit again equals fitting without the break."""
    x, y = _classification_data()
    dlgpu.set_random_seed(5)
    weights = _mlp().get_weights()
    _, straight = _trained("gpu", optimizers.Adam(0.01), weights, epochs=2)
    with dlgpu.device("gpu"):
        model = _mlp()
        model.set_weights(weights)
        model.compile(optimizer=optimizers.Adam(0.01), loss=losses.SparseCategoricalCrossentropy(from_logits=True))
        model.fit(x, y, batch_size=32, epochs=1, shuffle=False, verbose=0)
        model.save(tmp_path / "half.dlgpu")
        resumed = dlgpu.models.load_model(tmp_path / "half.dlgpu")
        assert all(v.device.kind == "gpu" for v in resumed.weights)
        resumed.fit(x, y, batch_size=32, epochs=1, shuffle=False, verbose=0)
        state = resumed.optimizer.variables
    for a, b in zip(resumed.get_weights(), straight):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    assert any(v.device.kind == "gpu" for v in state)


class _Batches(dlgpu.utils.PyDataset):
    def __init__(self, x, y, batch_size):
        super().__init__()
        self.x, self.y, self.batch_size = x, y, batch_size

    def __len__(self):
        return len(self.x) // self.batch_size

    def __getitem__(self, i):
        s = slice(i * self.batch_size, (i + 1) * self.batch_size)
        return self.x[s], self.y[s]


def test_python_data_sources_and_callbacks_on_gpu(tmp_path):
    x, y = _classification_data(n=128)
    dlgpu.set_random_seed(6)
    with dlgpu.device("gpu"):
        model = _mlp()
        model.compile(optimizer=optimizers.Adam(0.02), loss=losses.SparseCategoricalCrossentropy(from_logits=True),
                      metrics=["accuracy"])
        stop = dlgpu.callbacks.EarlyStopping(monitor="loss", patience=1, restore_best_weights=True)
        checkpoint = dlgpu.callbacks.ModelCheckpoint(str(tmp_path / "best.dlgpu"), monitor="loss",
                                                     save_best_only=True)
        history = model.fit(_Batches(x, y, 32), epochs=4, verbose=0, callbacks=[stop, checkpoint]).history

        def generator():
            for i in range(0, 128, 32):
                yield x[i:i + 32], y[i:i + 32]
        evaluated = model.evaluate(generator(), verbose=0, return_dict=True)
        predicted = model.predict(_Batches(x, y, 32), verbose=0)
    assert len(history["loss"]) >= 2 and np.all(np.isfinite(history["loss"]))
    assert isinstance(predicted, np.ndarray) and predicted.shape == (128, 3)
    assert 0 <= evaluated["accuracy"] <= 1
    assert (tmp_path / "best.dlgpu").exists()
    reloaded = dlgpu.models.load_model(tmp_path / "best.dlgpu")
    assert reloaded.predict(x[:4], verbose=0).shape == (4, 3)


def _two_headed_model():
    inputs = layers.Input((6,), name="features")
    hidden = layers.Dense(8, activation="tanh")(inputs)
    label = layers.Dense(3, activation="softmax", name="label")(hidden)
    value = layers.Dense(1, name="value")(layers.Concatenate()([hidden, inputs]))
    return dlgpu.Model(inputs, {"label": label, "value": value})


def test_functional_multi_output_model_on_gpu_matches_cpu():
    x, y = _classification_data(n=64, seed=7)
    target = x.sum(axis=1, keepdims=True)
    dlgpu.set_random_seed(8)
    initial = _two_headed_model().get_weights()

    def fit_on(device):
        with dlgpu.device(device):
            model = _two_headed_model()
            model.set_weights(initial)
            model.compile(optimizer=optimizers.SGD(0.05),
                          loss={"label": "sparse_categorical_crossentropy", "value": "mse"},
                          loss_weights={"label": 1.0, "value": 0.5}, metrics={"label": "accuracy"})
            return model.fit(x, {"label": y, "value": target}, batch_size=16, epochs=2, shuffle=False,
                             verbose=0).history

    on_cpu, on_gpu = fit_on("cpu"), fit_on("gpu")
    assert on_gpu.keys() == on_cpu.keys()
    for key in on_cpu:
        np.testing.assert_allclose(on_gpu[key], on_cpu[key], rtol=1e-4, err_msg=key)


def test_shape_inference_and_build_happen_on_the_layers_device():
    """Dummies for shape and mask inference live where the weights do: a subclassed model built on the GPU,
    a nested functional model with weights, an Embedding's mask."""
    class Subclassed(dlgpu.Model):
        def __init__(self):
            super().__init__()
            self.hidden = layers.Dense(4, activation="relu")
            self.out = layers.Dense(2)

        def call(self, x):
            return self.out(self.hidden(x))

    with dlgpu.device("gpu"):
        model = Subclassed()
        model.build((None, 6))
        assert model.hidden.kernel.device.kind == "gpu"
        inner_in = layers.Input((6,))
        inner = dlgpu.Model(inner_in, layers.BatchNormalization()(inner_in))
        inner(np.ones((2, 6), np.float32))  # weights on the GPU before the outer graph is wired
        outer_in = layers.Input((6,))
        outer = dlgpu.Model(outer_in, layers.Dense(1)(inner(outer_in, training=False)))
        tokens = layers.Input((None,), dtype="int32")
        masked = dlgpu.Model(tokens, layers.LSTM(3)(layers.Embedding(10, 4, mask_zero=True)(tokens)))
        x = np.ones((2, 6), np.float32)
        assert outer.predict(x, verbose=0).shape == (2, 1)
        assert masked.predict(np.array([[1, 2, 0], [3, 0, 0]]), verbose=0).shape == (2, 3)


def test_explicit_dtypes_survive_the_move_to_the_gpu():
    with dlgpu.device("gpu"):
        assert dlgpu.ops.convert_to_tensor(np.ones(2), dtype="float64").dtype == "float64"
        assert dlgpu.ops.convert_to_tensor(np.ones(2)).dtype == "float32"  # dlgpu's float64 rule, as on the CPU


def test_gradients_from_another_device_are_refused_before_any_update():
    with dlgpu.device("gpu"):
        variable = dlgpu.Variable(np.ones(3, np.float32), name="w")
        optimizer = optimizers.Adam()
        with pytest.raises(dlgpu.DeviceError, match=r"'w' is on cpu but the variable lives on gpu"):
            optimizer.apply([np.ones(3, np.float32)], [variable])
    np.testing.assert_array_equal(variable.numpy(), np.ones(3))
    assert int(optimizer.iterations.numpy()) == 0


def test_output_gradients_from_another_device_are_refused():
    with dlgpu.device("gpu"):
        variable = dlgpu.Variable(np.ones(2, np.float32))
        with dlgpu.GradientTape() as tape:
            y = variable * variable
        with pytest.raises(dlgpu.DeviceError, match="output gradient is on cpu but its target lives on gpu"):
            tape.gradient(y, variable, output_gradients=dlgpu.Tensor(np.ones(2, np.float32)))
        with dlgpu.GradientTape() as tape:
            y = variable * variable
        seed = dlgpu.ops.convert_to_tensor(np.array([10.0, 100.0], np.float32))  # the current device: the GPU
        np.testing.assert_allclose(tape.gradient(y, variable, output_gradients=seed).numpy(), [20.0, 200.0])
