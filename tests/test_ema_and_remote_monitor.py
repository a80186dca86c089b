"""Optimizers' use_ema (moving averages of the weights, fit ending with them), SwapEMAWeights, RemoteMonitor
(against a local http.server thread)."""

import http.server
import json
import threading
import urllib.parse

import numpy as np
import pytest

import dlgpu
from dlgpu import callbacks, layers, optimizers


def _data():
    rs = np.random.RandomState(0)
    x = rs.rand(32, 3).astype(np.float32)
    return x, x @ np.array([[1.0], [-2.0], [0.5]], np.float32)


def _model(optimizer):
    dlgpu.set_random_seed(1)
    model = dlgpu.Sequential([layers.Dense(4, input_shape=(3,), activation="tanh"), layers.Dense(1)])
    model.compile(optimizer=optimizer, loss="mse")
    return model


class _Weights(callbacks.Callback):
    """The weights after every training batch, and when validation starts."""

    def __init__(self):
        super().__init__()
        self.batches, self.at_test = [], []

    def on_train_batch_end(self, batch, logs=None):
        self.batches.append([w.copy() for w in self.model.get_weights()])

    def on_test_begin(self, logs=None):
        self.at_test.append([w.copy() for w in self.model.get_weights()])


def _ema(history, momentum):
    average = [w.copy() for w in history[0]]  # momentum 0 at the first step
    for weights in history[1:]:
        average = [momentum * a + (1 - momentum) * w for a, w in zip(average, weights)]
    return average


def test_fit_with_use_ema_ends_with_the_moving_averages():
    x, y = _data()
    model = _model(optimizers.SGD(0.1, momentum=0.5, use_ema=True, ema_momentum=0.8))
    record = _Weights()
    model.fit(x, y, batch_size=4, epochs=2, shuffle=False, verbose=0, callbacks=[record])
    assert len(record.batches) == 16
    for got, expected in zip(model.get_weights(), _ema(record.batches, 0.8)):
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
    for bad in (dict(ema_momentum=1.5), dict(ema_overwrite_frequency=-2), dict(ema_overwrite_frequency=1.5)):
        with pytest.raises(ValueError, match="ema_"):
            optimizers.Adam(use_ema=True, **bad)


def test_ema_overwrite_frequency_and_saved_state(tmp_path):
    x, y = _data()
    model = _model(optimizers.Adam(0.01, use_ema=True, ema_momentum=0.5, ema_overwrite_frequency=3))
    record = _Weights()
    model.fit(x, y, batch_size=8, epochs=1, shuffle=False, verbose=0, callbacks=[record])
    averages = model.optimizer._model_variables_moving_average
    # the third step ends with the weights overwritten by their averages
    before = _Weights()
    model2 = _model(optimizers.Adam(0.01, use_ema=True, ema_momentum=0.5))
    model2.fit(x, y, batch_size=8, epochs=1, shuffle=False, verbose=0, callbacks=[before])
    for got, expected in zip(record.batches[2], _ema(before.batches[:3], 0.5)):
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
    path = tmp_path / "m.keras"
    model.save(path)
    loaded = dlgpu.saving.load_model(path)
    assert loaded.optimizer.use_ema and loaded.optimizer.ema_overwrite_frequency == 3
    loaded.fit(x[:1], y[:1], verbose=0, epochs=0)  # builds nothing; the state came with the file
    state = [v.numpy() for v in loaded.optimizer.variables]
    np.testing.assert_array_equal(state[2], averages[0].numpy())


@pytest.mark.parametrize("outer", [False, True])
def test_swap_ema_weights_validates_with_the_averages(outer):
    x, y = _data()
    opt = optimizers.SGD(0.1, use_ema=True, ema_momentum=0.7)
    model = _model(optimizers.LossScaleOptimizer(opt) if outer else opt)
    record = _Weights()
    model.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0, validation_data=(x, y),
              callbacks=[callbacks.SwapEMAWeights(), record])
    # validation of epoch 1 sees the averages after its 4 steps, while training went on from the weights
    first = _ema(record.batches[:4], 0.7)
    for got, expected in zip(record.at_test[0], first):
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
    assert not np.allclose(record.batches[3][0], first[0])
    # and training resumed from the trained weights, not the averages: the recurrence over all 8 holds
    for got, expected in zip(model.get_weights(), _ema(record.batches, 0.7)):
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
    preds_before = model.predict(x, verbose=0)
    model.predict(x, verbose=0, callbacks=[callbacks.SwapEMAWeights()])
    np.testing.assert_array_equal(model.predict(x, verbose=0), preds_before)  # swapped back after predict


def test_swap_on_epoch_lets_a_checkpoint_save_the_averages(tmp_path):
    x, y = _data()
    model = _model(optimizers.SGD(0.1, use_ema=True, ema_momentum=0.6))
    record = _Weights()
    path = str(tmp_path / "e{epoch}.weights.h5")
    model.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0,
              callbacks=[record, callbacks.SwapEMAWeights(swap_on_epoch=True),
                         callbacks.ModelCheckpoint(path, save_weights_only=True, save_best_only=False)])
    probe = dlgpu.Sequential([layers.Dense(4, input_shape=(3,), activation="tanh"), layers.Dense(1)])
    probe.load_weights(str(tmp_path / "e1.weights.h5"))
    for got, expected in zip(probe.get_weights(), _ema(record.batches[:4], 0.6)):
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
    for got, expected in zip(model.get_weights(), _ema(record.batches, 0.6)):
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)


def test_swap_ema_weights_needs_use_ema():
    x, y = _data()
    with pytest.raises(ValueError, match="use_ema=True"):
        _model("sgd").fit(x, y, verbose=0, validation_data=(x, y), callbacks=[callbacks.SwapEMAWeights()])


class _Collector(http.server.BaseHTTPRequestHandler):
    received = []

    def do_POST(self):  # noqa: N802 - http.server's name
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.received.append((self.path, self.headers["Content-Type"], self.headers.get("X-Token"), body))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    _Collector.received = []
    httpd = http.server.HTTPServer(("127.0.0.1", 0), _Collector)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", _Collector.received
    httpd.shutdown()
    httpd.server_close()


def test_remote_monitor_posts_each_epoch(server):
    root, received = server
    x, y = _data()
    model = _model("sgd")
    model.fit(x, y, epochs=2, verbose=0, callbacks=[callbacks.RemoteMonitor(root=root, headers={"X-Token": "t"})])
    assert [r[:3] for r in received] == [("/publish/epoch/end/", "application/x-www-form-urlencoded", "t")] * 2
    sent = [json.loads(urllib.parse.parse_qs(r[3].decode())["data"][0]) for r in received]
    assert [s["epoch"] for s in sent] == [0, 1]
    assert sent[1]["loss"] == pytest.approx(model.history.history["loss"][1])
    received.clear()
    monitor = callbacks.RemoteMonitor(root=root, path="/j", send_as_json=True)
    monitor.on_epoch_end(3, {"loss": np.float32(0.5), "acc": np.array(0.25)})
    assert received[0][:2] == ("/j", "application/json")
    assert json.loads(received[0][3]) == {"epoch": 3, "loss": 0.5, "acc": 0.25}


def test_remote_monitor_unreachable_is_a_warning():
    monitor = callbacks.RemoteMonitor(root="http://127.0.0.1:9", timeout=2)
    with pytest.warns(UserWarning, match="Could not reach RemoteMonitor root server at http://127.0.0.1:9"):
        monitor.on_epoch_end(0, {"loss": 1.0})


@pytest.mark.gpu
def test_ema_and_swap_on_the_gpu_match_the_cpu():
    x, y = _data()
    results = {}
    for device in ("cpu", "gpu"):
        with dlgpu.device(device):
            model = _model(optimizers.Adam(0.01, use_ema=True, ema_momentum=0.7, ema_overwrite_frequency=5))
            record = _Weights()
            history = model.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0, validation_data=(x, y),
                                callbacks=[callbacks.SwapEMAWeights(), record])
            results[device] = (history.history["val_loss"], model.get_weights(), record.at_test)
    np.testing.assert_allclose(results["gpu"][0], results["cpu"][0], rtol=1e-5)
    for a, b in zip(results["gpu"][1] + results["gpu"][2][1], results["cpu"][1] + results["cpu"][2][1]):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
