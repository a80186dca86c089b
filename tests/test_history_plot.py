"""History.plot(): one axis per metric, the validation curve beside the training one, headless with Agg."""

import sys

import numpy as np
import pytest

matplotlib = pytest.importorskip("matplotlib")
matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

import dlgpu as keras  # noqa: E402
from dlgpu import layers  # noqa: E402
from dlgpu.callbacks import History  # noqa: E402


def recorded(logs_per_epoch):
    history = History()
    history.on_train_begin()
    for epoch, logs in enumerate(logs_per_epoch):
        history.on_epoch_end(epoch, logs)
    return history


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def test_one_axis_per_metric_with_validation_curves():
    history = recorded([{"loss": 1.0, "accuracy": 0.5, "val_loss": 1.2, "val_accuracy": 0.4},
                        {"loss": 0.5, "accuracy": 0.8, "val_loss": 0.7, "val_accuracy": 0.7}])
    axes = history.plot()
    assert [ax.get_title() for ax in axes] == ["loss", "accuracy"]
    loss_lines = {line.get_label(): line for line in axes[0].get_lines()}
    assert set(loss_lines) == {"loss", "val_loss"}
    np.testing.assert_array_equal(loss_lines["loss"].get_xdata(), [1, 2])  # epochs counted from 1
    np.testing.assert_array_equal(loss_lines["val_loss"].get_ydata(), [1.2, 0.7])
    axes[0].figure.canvas.draw()  # renders headless


def test_chosen_metrics_on_a_given_axis():
    history = recorded([{"loss": 1.0, "accuracy": 0.5}, {"loss": 0.5, "accuracy": 0.8}])
    fig, ax = plt.subplots()
    axes = history.plot(metrics=["loss"], ax=ax)
    assert list(axes) == [ax] and [line.get_label() for line in ax.get_lines()] == ["loss"]


def test_history_returned_by_fit_plots():
    model = keras.Sequential([keras.Input((3,)), layers.Dense(1)])
    model.compile(optimizer="adam", loss="mse")
    x = np.random.default_rng(0).standard_normal((16, 3)).astype("float32")
    history = model.fit(x, x[:, :1], epochs=2, verbose=0)
    axes = history.plot()
    assert axes[0].get_title() == "loss" and len(axes[0].get_lines()[0].get_xdata()) == 2


def test_without_matplotlib_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib.pyplot", None)
    with pytest.raises(ImportError, match="pip install matplotlib"):
        recorded([{"loss": 1.0}]).plot()
