"""fit/evaluate/predict, program for program against Keras 3: which batches each epoch reads, what the
logs are called and what they hold.  The same initial weights and no shuffling make the runs comparable
value for value."""

import warnings

import numpy as np
import pytest

import dlgpu

rng = np.random.default_rng(0)
X = rng.normal(size=(40, 4)).astype("float32")
Y = (X[:, :1] > 0).astype("float32")
CLASSES = rng.integers(0, 3, size=(40,))


def _model(lib, two_outputs=False):
    inputs = lib.Input((4,), name="inp")
    hidden = lib.layers.Dense(5, activation="relu", kernel_initializer=lib.initializers.Constant(0.1), name="h")(inputs)
    a = lib.layers.Dense(1, activation="sigmoid", kernel_initializer=lib.initializers.Constant(-0.05), name="a")(hidden)
    if not two_outputs:
        return lib.Model(inputs, a)
    b = lib.layers.Dense(3, activation="softmax", kernel_initializer=lib.initializers.Constant(0.02), name="b")(hidden)
    return lib.Model(inputs, [a, b])


def _batches(lib):
    class FiveBatches(lib.utils.PyDataset):
        def __len__(self):
            return 5

        def __getitem__(self, i):
            return X[i * 8:(i + 1) * 8], Y[i * 8:(i + 1) * 8]
    return FiveBatches()


def _rounded(logs):
    if isinstance(logs, dict):
        return {k: _rounded(v) for k, v in logs.items()}
    if isinstance(logs, (list, tuple)):
        return [_rounded(v) for v in logs]
    return round(float(logs), 5)


def _fit(lib, data, **kwargs):
    """History, batches per epoch and whether a ran-out-of-data warning came."""
    per_epoch = []

    class Count(lib.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            per_epoch.append(0)

        def on_train_batch_end(self, batch, logs=None):
            per_epoch[-1] += 1
    model = _model(lib)
    model.compile(lib.optimizers.SGD(0.1), "binary_crossentropy")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        history = model.fit(*data(lib), callbacks=[Count()], verbose=0, **kwargs)
    ran_out = any("ran out" in str(w.message) for w in caught)
    return _rounded(history.history), per_epoch, ran_out


ARRAYS = lambda lib: (X, Y)  # noqa: E731
PYDATASET = lambda lib: (_batches(lib),)  # noqa: E731

FIT_CASES = {
    # an epoch shorter than the pass leaves the rest of the pass to the next epoch; one asking for more
    # than is left stops at the end of the pass
    "arrays, steps_per_epoch short": (ARRAYS, dict(batch_size=8, epochs=4, steps_per_epoch=2, shuffle=False)),
    "arrays, steps_per_epoch long": (ARRAYS, dict(batch_size=8, epochs=2, steps_per_epoch=7, shuffle=False)),
    "PyDataset, steps_per_epoch short": (PYDATASET, dict(epochs=3, steps_per_epoch=2, shuffle=False)),
    "PyDataset, steps_per_epoch long": (PYDATASET, dict(epochs=2, steps_per_epoch=7, shuffle=False)),
    # each validation starts again from the first batch
    "validation_steps on arrays": (ARRAYS, dict(batch_size=8, epochs=3, shuffle=False, validation_data=(X, Y),
                                               validation_steps=2)),
    "initial_epoch": (ARRAYS, dict(batch_size=8, epochs=3, initial_epoch=1, steps_per_epoch=2, shuffle=False)),
    "class_weight and validation_split": (ARRAYS, dict(batch_size=8, epochs=2, shuffle=False, validation_split=0.25,
                                                       class_weight={0: 0.3, 1: 2.0})),
}


@pytest.mark.parametrize("case", FIT_CASES)
def test_fit_reads_the_batches_keras_reads(keras, case):
    data, kwargs = FIT_CASES[case]
    in_keras = _fit(keras, data, **kwargs)
    in_dlgpu = _fit(dlgpu, data, **kwargs)
    assert in_dlgpu == in_keras


def test_validation_on_a_pydataset_restarts_each_epoch(keras):
    kwargs = dict(batch_size=8, epochs=2, shuffle=False, validation_steps=2)
    in_keras = _fit(keras, ARRAYS, validation_data=_batches(keras), **kwargs)
    in_dlgpu = _fit(dlgpu, ARRAYS, validation_data=_batches(dlgpu), **kwargs)
    assert in_dlgpu == in_keras


def _two_output_program(lib):
    model = _model(lib, two_outputs=True)
    model.compile(lib.optimizers.SGD(0.1), ["binary_crossentropy", "sparse_categorical_crossentropy"],
                  loss_weights=[1.0, 0.5], metrics=[["accuracy"], ["accuracy"]])
    history = model.fit(X, [Y, CLASSES], batch_size=8, epochs=2, verbose=0, shuffle=False)
    return (_rounded(history.history), _rounded(model.evaluate(X, [Y, CLASSES], verbose=0, return_dict=True)),
            _rounded(model.evaluate(X, [Y, CLASSES], verbose=0)),
            _rounded(model.evaluate(X, [Y, CLASSES], batch_size=8, steps=2, verbose=0)),
            [p.shape for p in model.predict(X, batch_size=8, steps=2, verbose=0)],
            _rounded(model.train_on_batch(X[:8], [Y[:8], CLASSES[:8]], return_dict=True)))


def test_two_outputs_logs_evaluate_and_steps(keras):
    assert _two_output_program(dlgpu) == _two_output_program(keras)


_HOOKS = ("on_train_begin", "on_epoch_begin", "on_train_batch_begin", "on_train_batch_end", "on_test_begin",
          "on_test_batch_begin", "on_test_batch_end", "on_test_end", "on_epoch_end", "on_train_end")


def _events(lib):
    """A callback recording every hook it is given, with the logs it saw (rounded)."""
    def hook(name):
        def record(self, *args, **kwargs):  # logs come by keyword or by position, as each library calls
            logs = kwargs.get("logs") or next((a for a in args if isinstance(a, dict)), None) or {}
            self.seen.append((name, *(a for a in args if not isinstance(a, dict)), _rounded(logs)))
        return record
    methods = {name: hook(name) for name in _HOOKS}
    events = type("Events", (lib.callbacks.Callback,), methods)()
    events.seen = []
    return events


def _callbacks_program(lib, folder):
    def model(lr):
        m = _model(lib)
        m.compile(lib.optimizers.SGD(lr), "binary_crossentropy", metrics=["accuracy"])
        return m
    flipped = (X[:10], 1 - Y[:10])  # a validation set that gets worse as training improves
    results = {}
    events = _events(lib)
    model(0.5).fit(X, Y, batch_size=16, epochs=2, verbose=0, shuffle=False, validation_data=(X[:20], Y[:20]),
                   callbacks=[events])
    results["hooks"] = events.seen
    stop = lib.callbacks.EarlyStopping(monitor="val_loss", patience=1, restore_best_weights=True)
    m = model(3.0)
    history = m.fit(X, Y, batch_size=8, epochs=12, verbose=0, shuffle=False, validation_data=flipped,
                    callbacks=[stop])
    results["restore_best"] = (_rounded(history.history), stop.stopped_epoch, stop.best_epoch, _rounded(stop.best),
                               _rounded(m.evaluate(*flipped, verbose=0)))
    # a baseline never reached does not stop a run that keeps improving (Keras 3's rule)
    stop = lib.callbacks.EarlyStopping(monitor="loss", patience=2, baseline=0.1, start_from_epoch=1)
    history = model(0.5).fit(X, Y, batch_size=8, epochs=6, verbose=0, shuffle=False, callbacks=[stop])
    results["baseline"] = (len(history.history["loss"]), stop.stopped_epoch)
    plateau = lib.callbacks.ReduceLROnPlateau(monitor="val_loss", factor=0.5, patience=1, cooldown=1, min_lr=0.01)
    history = model(2.0).fit(X, Y, batch_size=8, epochs=6, verbose=0, shuffle=False, validation_data=flipped,
                             callbacks=[plateau])
    results["plateau"] = _rounded(history.history)
    best_only = lib.callbacks.ModelCheckpoint(str(folder / lib.__name__ / "m_{epoch:02d}_{val_loss:.3f}.keras"),
                                              monitor="val_loss", save_best_only=True)
    model(3.0).fit(X, Y, batch_size=8, epochs=4, verbose=0, shuffle=False, validation_data=flipped,
                   callbacks=[best_only])
    results["checkpoints"] = sorted(p.name for p in (folder / lib.__name__).iterdir())
    return results


def test_callbacks_see_what_keras_callbacks_see(keras, tmp_path):
    in_keras, in_dlgpu = _callbacks_program(keras, tmp_path), _callbacks_program(dlgpu, tmp_path)
    assert in_dlgpu.keys() == in_keras.keys()
    for key in in_keras:
        assert in_dlgpu[key] == in_keras[key], key
