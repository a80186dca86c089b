"""dlgpu.utils.Progbar: Keras's bookkeeping (averaging, stateful metrics, add, unknown target), its two ways of
drawing, interactive logging, and ProgbarLogger drawing through it."""

import numpy as np
import pytest

import dlgpu
from dlgpu import callbacks, config, layers, utils


@pytest.fixture
def interactive_logging():
    before = config.is_interactive_logging_enabled()
    yield
    (config.enable_interactive_logging if before else config.disable_interactive_logging)()


def test_averages_over_steps_and_shows_stateful_metrics_as_given(capsys):
    bar = utils.Progbar(4, verbose=2, stateful_metrics=["acc"])
    bar.update(1, [("loss", 4.0), ("acc", 0.5)])
    bar.update(3, [("loss", 1.0), ("acc", 0.75)])  # two steps of 1.0: weighted mean (4 + 2) / 3
    assert capsys.readouterr().out == ""  # verbose=2 writes only when finalized
    assert bar._values["loss"] == [6.0, 3] and bar._values["acc"] == [0.75, 1]
    bar.add(1, [("loss", 2.0)])  # current 4 >= target: finalized; the value is the result as given
    line = capsys.readouterr().out.strip()
    assert line.startswith("4/4 - ") and line.endswith("loss: 2.0000 - acc: 0.7500"), line
    assert bar._values["loss"] == [2.0, 1]


def test_stateless_metrics_and_the_choice_of_one():
    bar = utils.Progbar(10, verbose=0, stateless_metrics={"loss"})
    bar.update(2, [("loss", 1.0), ("lr", 0.1)])
    bar.update(4, [("loss", 3.0), ("lr", 0.2)])
    assert bar._values == {"loss": [8.0, 4], "lr": [0.2, 1]}
    with pytest.raises(ValueError, match="stateful_metrics.*stateless_metrics"):
        utils.Progbar(3, stateful_metrics=["a"], stateless_metrics=["b"])
    with pytest.raises(ValueError, match="verbose"):
        utils.Progbar(3, verbose=3)
    with pytest.raises(ValueError, match="target"):
        utils.Progbar(-1)


def test_unknown_target_and_live_bar(capsys, interactive_logging):
    pytest.importorskip("tqdm")
    config.enable_interactive_logging()
    bar = utils.Progbar(None, verbose=1, unit_name="sample", interval=0.0)
    for i in range(1, 4):
        bar.update(i, [("loss", 1.0 / i)])
    assert bar._bar is not None and bar._bar.n == 3
    bar.update(3, [("loss", 0.5)], finalize=True)
    assert bar._bar is None
    err = capsys.readouterr()
    text = err.out + err.err
    assert "3sample" in text and "loss: 0.5000" in text


def test_live_metrics_refresh_every_interval_however_fast_the_steps(interactive_logging, monkeypatch):
    # steps 10 ms apart against a 50 ms interval: the metrics shown move on every ~5 steps (they once stayed at
    # the first step's values for a whole epoch, the interval being counted from the last step)
    pytest.importorskip("tqdm")
    import io

    from dlgpu.utils import progbar
    config.enable_interactive_logging()
    clock = iter(np.arange(0.0, 10.0, 0.01))
    monkeypatch.setattr(progbar.time, "perf_counter", lambda: float(next(clock)))
    bar = utils.Progbar(100, verbose=1, interval=0.05, file=io.StringIO())
    shown = []
    for i in range(1, 30):
        bar.update(i, [("loss", float(i))], finalize=False)
        shown.append(bar._bar.postfix)
    assert len(set(shown)) >= 5, shown
    bar.close()


def test_disabled_interactive_logging_prints_one_line(capsys, interactive_logging):
    config.disable_interactive_logging()
    bar = utils.Progbar(3, verbose=1, description="Epoch 1/1")
    bar.update(1, [("loss", 1e-5)])
    bar.update(3, [("loss", 1e-5)])
    out = capsys.readouterr().out
    assert out.count("\n") == 1 and out.startswith("Epoch 1/1 - 3/3 - ") and "loss: 1.0000e-05" in out
    bar.update(3, [("loss", 1.0)])  # updates after the final one draw nothing more
    assert capsys.readouterr().out == ""


def test_progbar_logger_draws_through_progbar(monkeypatch, capsys):
    made = []
    real = utils.progbar.Progbar

    class Spy(real):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            made.append(self)
    monkeypatch.setattr(utils.progbar, "Progbar", Spy)
    model = dlgpu.Sequential([layers.Dense(1, input_shape=(2,))])
    model.compile(optimizer="sgd", loss="mse")
    x, y = np.ones((8, 2), np.float32), np.zeros((8, 1), np.float32)
    model.fit(x, y, batch_size=4, epochs=2, verbose=2)
    model.evaluate(x, y, batch_size=4, verbose=2)
    assert [bar.description for bar in made] == ["Epoch 1/2", "Epoch 2/2", "Evaluate"]
    assert all(bar.target == 2 and bar._seen_so_far == 2 and bar.stateless_metrics == set() for bar in made)
    lines = capsys.readouterr().out.splitlines()
    assert [line.split(" - ")[:2] for line in lines] == [["Epoch 1/2", "2/2"], ["Epoch 2/2", "2/2"],
                                                       ["Evaluate", "2/2"]]
    with pytest.raises(ValueError, match="count_mode"):
        callbacks.ProgbarLogger(count_mode="samples")
