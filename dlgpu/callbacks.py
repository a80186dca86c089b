"""Callbacks driven by the training loop: History, the progress bar, early stopping, checkpoints, LR control."""

from __future__ import annotations

import csv
import inspect
import math
import os
import warnings

import numpy as np


class Callback:
    """Base class: override the hooks you need; ``self.model`` and ``self.params`` are set by fit."""

    def __init__(self):
        self.model = None
        self.params = {}

    def set_model(self, model):
        self.model = model

    def set_params(self, params):
        self.params = params

    def on_train_begin(self, logs=None): pass
    def on_train_end(self, logs=None): pass
    def on_epoch_begin(self, epoch, logs=None): pass
    def on_epoch_end(self, epoch, logs=None): pass
    def on_train_batch_begin(self, batch, logs=None): pass
    def on_train_batch_end(self, batch, logs=None): pass
    def on_test_begin(self, logs=None): pass
    def on_test_end(self, logs=None): pass
    def on_test_batch_begin(self, batch, logs=None): pass
    def on_test_batch_end(self, batch, logs=None): pass
    def on_predict_begin(self, logs=None): pass
    def on_predict_end(self, logs=None): pass
    def on_predict_batch_begin(self, batch, logs=None): pass
    def on_predict_batch_end(self, batch, logs=None): pass

    # Keras 2 names
    def on_batch_begin(self, batch, logs=None): pass
    def on_batch_end(self, batch, logs=None): pass


class CallbackList:
    """Calls every callback's hook in order.  Batch-end logs are passed lazily (a function) and only
    computed when some callback actually overrides a batch-end hook, which keeps the hot loop cheap."""

    def __init__(self, callbacks=None, add_history=None, add_progbar=False, model=None, **params):
        self.callbacks = list(callbacks or [])
        for cb in self.callbacks:
            if not isinstance(cb, Callback):
                raise TypeError(f"callbacks must be dlgpu.callbacks.Callback instances; received {cb!r}")
        # History and the bar come after the user's callbacks (as in Keras), so they see what those add
        # to the epoch logs (learning_rate from LearningRateScheduler / ReduceLROnPlateau).
        if add_history is not None:
            self.callbacks.append(add_history)
        if add_progbar and not any(isinstance(cb, ProgbarLogger) for cb in self.callbacks):
            self.callbacks.append(ProgbarLogger())
        mode = params.pop("mode", "train")
        self.params = dict(params, mode=mode)
        for cb in self.callbacks:
            cb.set_model(model)
            cb.set_params(self.params)
        self._batch_end = [cb for cb in self.callbacks if _overrides(cb, "on_train_batch_end") or _overrides(cb, "on_batch_end")]
        self._test_batch_end = [cb for cb in self.callbacks if _overrides(cb, "on_test_batch_end")]

    def _call(self, hook, *args):
        # Keras hands every hook a dict, never None: callbacks written for Keras call logs.keys() freely.
        *args, logs = args
        logs = {} if logs is None else logs
        for cb in self.callbacks:
            getattr(cb, hook)(*args, logs)

    def close(self):
        """Release what callbacks hold open (progress bars), also when the run stopped on an error."""
        for cb in self.callbacks:
            close = getattr(cb, "close", None)
            if close is not None:
                close()

    def on_train_begin(self, logs=None): self._call("on_train_begin", logs)
    def on_train_end(self, logs=None): self._call("on_train_end", logs)
    def on_epoch_begin(self, epoch, logs=None): self._call("on_epoch_begin", epoch, logs)
    def on_epoch_end(self, epoch, logs=None): self._call("on_epoch_end", epoch, logs)
    def on_test_begin(self, logs=None): self._call("on_test_begin", logs)
    def on_test_end(self, logs=None): self._call("on_test_end", logs)
    def on_predict_begin(self, logs=None): self._call("on_predict_begin", logs)
    def on_predict_end(self, logs=None): self._call("on_predict_end", logs)
    def on_predict_batch_begin(self, batch, logs=None): self._call("on_predict_batch_begin", batch, logs)
    def on_predict_batch_end(self, batch, logs=None): self._call("on_predict_batch_end", batch, logs)
    def on_test_batch_begin(self, batch, logs=None): self._call("on_test_batch_begin", batch, logs)

    def on_train_batch_begin(self, batch, logs=None):
        logs = {} if logs is None else logs
        for cb in self.callbacks:
            cb.on_train_batch_begin(batch, logs)
            cb.on_batch_begin(batch, logs)

    def on_train_batch_end(self, batch, logs_fn):
        if self._batch_end:
            logs = (logs_fn() if callable(logs_fn) else logs_fn) or {}
            for cb in self._batch_end:
                cb.on_train_batch_end(batch, logs)
                cb.on_batch_end(batch, logs)

    def on_test_batch_end(self, batch, logs_fn):
        if self._test_batch_end:
            logs = (logs_fn() if callable(logs_fn) else logs_fn) or {}
            for cb in self._test_batch_end:
                cb.on_test_batch_end(batch, logs)


def _overrides(cb, hook):
    # LambdaCallback sets hooks on the instance; other callbacks override them in their class.
    return hook in cb.__dict__ or getattr(type(cb), hook) is not getattr(Callback, hook)


class History(Callback):
    """Records every epoch's logs: ``history.history['loss']`` is a list with one value per epoch."""

    def __init__(self):
        super().__init__()
        self.history = {}
        self.epoch = []

    def on_train_begin(self, logs=None):
        self.epoch = []
        self.history = {}

    def on_epoch_end(self, epoch, logs=None):
        self.epoch.append(epoch)
        for k, v in (logs or {}).items():
            self.history.setdefault(k, []).append(v)

    def plot(self, metrics=None, ax=None):
        """Plot each log (loss, accuracy…) per epoch, val_* beside its training curve (needs matplotlib)."""
        try:
            import matplotlib.pyplot as plt
        except ImportError as exc:
            raise ImportError("History.plot needs matplotlib: pip install matplotlib") from exc
        names = metrics or [k for k in self.history if not k.startswith("val_")]
        if ax is None:
            fig, axes = plt.subplots(1, len(names), figsize=(4.5 * len(names), 3.5), squeeze=False)
            axes = axes[0]
        else:
            axes = [ax] * len(names)
        epochs = [e + 1 for e in self.epoch]
        for axis, name in zip(axes, names):
            axis.plot(epochs, self.history[name], marker="o", label=name)
            if f"val_{name}" in self.history:
                axis.plot(epochs, self.history[f"val_{name}"], marker="o", label=f"val_{name}")
            axis.set_xlabel("epoch")
            axis.set_title(name)
            axis.legend()
        return axes


class ProgbarLogger(Callback):
    """Draws fit's, evaluate's and predict's progress through one ``dlgpu.utils.Progbar`` per epoch or run:
    verbose=1, a live bar (tqdm; a notebook widget under Jupyter); verbose=2, one line per epoch.  With
    interactive logging off (``keras.config.disable_interactive_logging``) or without tqdm, verbose=1
    prints the line too.  The logs fit hands over are already running means, so they are shown as given
    (Keras: ``stateless_metrics=set()``), which is what tf.keras's ``stateful_metrics`` asked for; it is
    accepted for such code.  ``refresh_every`` is the bar's minimum seconds between metric redraws."""

    def __init__(self, count_mode="steps", stateful_metrics=None, refresh_every=0.1):
        super().__init__()
        if count_mode != "steps":
            raise ValueError(f"ProgbarLogger: only count_mode='steps' is supported (Keras 3 counts steps). "
                             f"Received: count_mode={count_mode!r}")
        self.progbar = None
        self._refresh_every = refresh_every
        self._seen = 0  # steps of the current bar

    @property
    def _bar(self):
        """The live bar being drawn, or None (also None after close)."""
        return None if self.progbar is None else self.progbar._bar

    def close(self):
        if self.progbar is not None:
            self.progbar.close()
            self.progbar = None

    def _start(self, description):
        self.close()
        from dlgpu.utils.progbar import Progbar
        self.progbar = Progbar(self.params.get("steps"), verbose=self.params.get("verbose", 1),
                               interval=self._refresh_every, stateless_metrics=set(), description=description)
        self._seen = 0

    def _advance(self, batch, logs=None):
        if self.progbar is not None:
            self._seen = batch + 1
            self.progbar.update(self._seen, list((logs or {}).items()), finalize=False)

    def _finish(self, logs):
        if self.progbar is not None:
            self.progbar.update(self._seen if self.progbar.target is None else self.progbar.target,
                                list((logs or {}).items()), finalize=True)
            self.progbar = None

    # train
    def on_epoch_begin(self, epoch, logs=None):
        if self.params.get("mode") == "train":
            self._start(f"Epoch {epoch + 1}/{self.params.get('epochs')}")

    def on_train_batch_end(self, batch, logs=None):
        self._advance(batch, logs)

    def on_epoch_end(self, epoch, logs=None):
        self._finish(logs)

    # evaluate (the validation inside fit draws nothing, as in Keras) / predict
    def on_test_begin(self, logs=None):
        if self.params.get("mode") == "test":
            self._start("Evaluate")

    def on_test_batch_end(self, batch, logs=None):
        if self.params.get("mode") == "test":
            self._advance(batch, logs)

    def on_test_end(self, logs=None):
        if self.params.get("mode") == "test":
            self._finish(logs)

    def on_predict_begin(self, logs=None):
        self._start("Predict")

    def on_predict_batch_end(self, batch, logs=None):
        self._advance(batch, None)  # the batch's outputs are no metrics

    def on_predict_end(self, logs=None):
        self.close()  # the bar stays as drawn; no line of metrics for predict


def _monitor_op(mode, monitor):
    if mode not in ("auto", "min", "max"):
        raise ValueError(f"mode must be 'auto', 'min' or 'max'; received mode={mode!r}")
    # Keras 3 asks the monitored metric's _direction; these names are dlgpu's metrics whose direction is "up"
    grow = ("acc", "auc", "precision", "recall", "f1", "correlation")
    if mode == "max" or (mode == "auto" and any(k in monitor for k in grow)):
        return np.greater, -np.inf
    return np.less, np.inf


class EarlyStopping(Callback):
    def __init__(self, monitor="val_loss", min_delta=0, patience=0, verbose=0, mode="auto", baseline=None,
                 restore_best_weights=False, start_from_epoch=0):
        super().__init__()
        self.monitor = monitor
        self.min_delta = abs(min_delta)
        self.patience = patience
        self.verbose = verbose
        self.baseline = baseline
        self.restore_best_weights = restore_best_weights
        self.start_from_epoch = start_from_epoch
        self.monitor_op, _ = _monitor_op(mode, monitor)
        if self.monitor_op is np.less:
            self.min_delta *= -1

    def on_train_begin(self, logs=None):
        self.wait = 0
        self.stopped_epoch = 0
        # None, as in Keras 3: the first monitored epoch is always the best so far; the baseline only
        # decides whether an improvement restarts the patience count
        self.best = None
        self.best_weights = None
        self.best_epoch = 0

    def on_epoch_end(self, epoch, logs=None):
        current = (logs or {}).get(self.monitor)
        if current is None:
            warnings.warn(f"EarlyStopping: metric '{self.monitor}' is not in the logs (available: "
                          f"{sorted(logs or {})}); nothing is monitored.")
            return
        if epoch < self.start_from_epoch:
            return
        if self.restore_best_weights and self.best_weights is None:
            self.best_weights = self.model.get_weights()
        self.wait += 1
        if self.best is None or self.monitor_op(current - self.min_delta, self.best):
            self.best = current
            self.best_epoch = epoch
            if self.restore_best_weights:
                self.best_weights = self.model.get_weights()
            if self.baseline is None or self.monitor_op(current - self.min_delta, self.baseline):
                self.wait = 0
            return
        if self.wait >= self.patience and epoch > 0:
            self.stopped_epoch = epoch
            self.model.stop_training = True

    def on_train_end(self, logs=None):
        if self.stopped_epoch > 0 and self.verbose:
            print(f"Epoch {self.stopped_epoch + 1}: early stopping")
        if self.restore_best_weights and self.best_weights is not None and self.stopped_epoch > 0:
            if self.verbose:
                print(f"Restoring model weights from the end of the best epoch: {self.best_epoch + 1}.")
            self.model.set_weights(self.best_weights)


class ModelCheckpoint(Callback):
    """Save the model (or its weights) after each epoch, or every ``save_freq`` batches, or only when the
    monitored value improves.

    ``filepath`` may contain format fields filled from the epoch (1-based), the batch (1-based, with an
    integer ``save_freq``) and the logs: ``"ckpt-{epoch:02d}-{val_loss:.3f}.keras"``.  With an integer
    ``save_freq`` the logs are the batch's, as in Keras (so no ``val_*`` entries there).
    """

    def __init__(self, filepath, monitor="val_loss", verbose=0, save_best_only=False, save_weights_only=False,
                 mode="auto", save_freq="epoch", initial_value_threshold=None):
        super().__init__()
        self.filepath = os.fspath(filepath)
        self.monitor = monitor
        self.verbose = verbose
        self.save_best_only = save_best_only
        self.save_weights_only = save_weights_only
        if save_freq != "epoch" and (isinstance(save_freq, bool) or not isinstance(save_freq, int) or save_freq <= 0):
            raise ValueError(f"ModelCheckpoint: `save_freq` must be 'epoch' or a positive integer (a number of "
                             f"batches). Received: save_freq={save_freq!r}")
        self.save_freq = save_freq
        self.monitor_op, initial = _monitor_op(mode, monitor)
        self.best = initial if initial_value_threshold is None else initial_value_threshold
        self._current_epoch = 0
        self._batches_since_save = 0

    def on_train_begin(self, logs=None):
        self._batches_since_save = 0

    def on_epoch_begin(self, epoch, logs=None):
        self._current_epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        if self.save_freq == "epoch":
            return
        self._batches_since_save += 1  # counted across epochs, as Keras counts them
        if self._batches_since_save >= self.save_freq:
            self._batches_since_save = 0
            self._save(self._current_epoch, batch, logs)

    def on_epoch_end(self, epoch, logs=None):
        if self.save_freq == "epoch":
            self._save(epoch, None, logs)

    def _save(self, epoch, batch, logs):
        logs = dict(logs or {})
        fields = {**logs, "epoch": epoch + 1}
        if batch is not None:
            fields["batch"] = batch + 1
        try:
            path = self.filepath.format(**fields)
        except KeyError as error:
            raise KeyError(f"ModelCheckpoint: filepath {self.filepath!r} names {error}, which is not among the "
                           f"values available when it saves: {sorted(fields)}.") from None
        when = f"Epoch {epoch + 1}" + ("" if batch is None else f", batch {batch + 1}")
        if self.save_best_only:
            current = logs.get(self.monitor)
            if current is None:
                warnings.warn(f"ModelCheckpoint: can save best model only with '{self.monitor}' available, "
                              f"skipping (available: {sorted(logs)}).")
                return
            if not self.monitor_op(current, self.best):
                if self.verbose:
                    print(f"{when}: {self.monitor} did not improve from {self.best:.5f}")
                return
            if self.verbose:
                print(f"{when}: {self.monitor} improved from {self.best:.5f} to {current:.5f}, saving to {path}")
            self.best = current
        elif self.verbose:
            print(f"{when}: saving model to {path}")
        directory = os.path.dirname(path)
        if directory:
            os.makedirs(directory, exist_ok=True)
        if self.save_weights_only:
            self.model.save_weights(path)
        else:
            self.model.save(path)


class BackupAndRestore(Callback):
    """Resume a fit that was interrupted (an exception, a killed process) where it stopped, as Keras's.

    After each epoch (or every ``save_freq`` batches) the model's weights and the optimizer's state go to
    ``backup_dir``, with the epoch reached.  When fit starts again with this callback, on the same model
    or on a freshly built one, it puts both back and training resumes at the first epoch not completed;
    a backup taken mid-epoch (integer ``save_freq``) resumes that epoch from its first batch, as in Keras.
    A fit that ends normally deletes the backup (unless ``delete_checkpoint=False``): the next fit
    starts from scratch.  The batch order of a shuffled fit is not part of the backup, so a resumed run
    matches an uninterrupted one weight for weight only when ``shuffle=False``.

    The backup is one file, ``backup_dir/latest.weights.dlgpu``: dlgpu's weights format plus the
    optimizer's variables and the epoch reached, written to a temporary file and renamed, so an
    interruption mid-save leaves the previous backup whole.  (Keras writes two files; one file cannot
    hold weights from one epoch and an epoch number from another.)  ``double_checkpoint`` is refused: the
    atomic write already guarantees a readable backup.
    """

    _WEIGHTS = "latest.weights.dlgpu"

    def __init__(self, backup_dir, save_freq="epoch", double_checkpoint=False, delete_checkpoint=True):
        super().__init__()
        if not backup_dir:
            raise ValueError("BackupAndRestore: empty `backup_dir` argument passed.")
        if save_freq != "epoch" and (isinstance(save_freq, bool) or not isinstance(save_freq, int) or save_freq <= 0):
            raise ValueError(f"BackupAndRestore: `save_freq` must be 'epoch' or a positive integer (a number of "
                             f"batches). Received: save_freq={save_freq!r}")
        if double_checkpoint:
            raise NotImplementedError("BackupAndRestore: `double_checkpoint=True` is not supported: dlgpu writes "
                                      "each backup to a temporary file and renames it, so the latest backup is "
                                      "always complete.")
        self.backup_dir = os.fspath(backup_dir)
        self.save_freq = save_freq
        self.delete_checkpoint = delete_checkpoint
        self._weights_path = os.path.join(self.backup_dir, self._WEIGHTS)
        self._current_epoch = 0
        self._batches_since_save = 0

    def on_train_begin(self, logs=None):
        if not self.model.built:
            raise ValueError(f"BackupAndRestore: model '{self.model.name}' must be built before fit starts, so "
                             f"that a backup can be restored into it.")
        self._current_epoch = 0
        self._batches_since_save = 0
        if not os.path.exists(self._weights_path):
            return
        from dlgpu.models.saving import load_training_state
        progress = load_training_state(self.model, self._weights_path) or {}
        epoch = int(progress.get("epoch", 0))
        self._current_epoch = epoch
        self.model._initial_epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        if self.save_freq == "epoch":
            return
        self._batches_since_save += 1
        if self._batches_since_save >= self.save_freq:
            self._batches_since_save = 0
            self._save(batch)

    def on_epoch_end(self, epoch, logs=None):
        self._current_epoch = epoch + 1
        if self.save_freq == "epoch":
            self._save(0)

    def _save(self, batch):
        from dlgpu.models.saving import save_training_state
        os.makedirs(self.backup_dir, exist_ok=True)
        save_training_state(self.model, self._weights_path, progress={"epoch": self._current_epoch, "batch": batch})

    def on_train_end(self, logs=None):
        if not self.delete_checkpoint:
            return
        # Only our files: backup_dir may be a folder the user keeps other things in.
        if os.path.exists(self._weights_path):
            os.remove(self._weights_path)
        if os.path.isdir(self.backup_dir) and not os.listdir(self.backup_dir):
            os.rmdir(self.backup_dir)


class LearningRateScheduler(Callback):
    """Sets the learning rate at each epoch start from ``schedule(epoch, lr)``, or ``schedule(epoch)`` for
    a schedule that takes one argument (Keras's older form, which Keras still accepts)."""

    def __init__(self, schedule, verbose=0):
        super().__init__()
        self.schedule = schedule
        self.verbose = verbose
        self._takes_lr = _accepts_two_positional(schedule)

    def on_epoch_begin(self, epoch, logs=None):
        lr = float(self.model.optimizer.learning_rate)
        new_lr = self.schedule(epoch, lr) if self._takes_lr else self.schedule(epoch)
        if not isinstance(new_lr, (float, int, np.floating, np.integer)) or not math.isfinite(float(new_lr)):
            raise ValueError(f"LearningRateScheduler: the schedule must return a finite float; returned {new_lr!r}")
        self.model.optimizer.learning_rate = float(new_lr)
        if self.verbose:
            print(f"Epoch {epoch + 1}: LearningRateScheduler setting learning rate to {float(new_lr)}.")

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["learning_rate"] = float(self.model.optimizer.learning_rate)


def _accepts_two_positional(fn):
    try:
        signature = inspect.signature(fn)
    except (TypeError, ValueError):  # a builtin without a signature: assume the current form
        return True
    try:
        signature.bind(0, 0.0)
    except TypeError:
        return False
    return True


class ReduceLROnPlateau(Callback):
    def __init__(self, monitor="val_loss", factor=0.1, patience=10, verbose=0, mode="auto", min_delta=1e-4,
                 cooldown=0, min_lr=0.0):
        super().__init__()
        if factor >= 1.0:
            raise ValueError(f"ReduceLROnPlateau does not support a factor >= 1.0; received factor={factor}")
        self.monitor = monitor
        self.factor = factor
        self.patience = patience
        self.verbose = verbose
        self.min_delta = min_delta
        self.cooldown = cooldown
        self.min_lr = min_lr
        self.mode = mode
        self.monitor_op, self._initial = _monitor_op(mode, monitor)

    def on_train_begin(self, logs=None):
        self.best = self._initial
        self.wait = 0
        self.cooldown_counter = 0

    def _improved(self, current):
        if self.monitor_op is np.less:
            return current < self.best - self.min_delta
        return current > self.best + self.min_delta

    def on_epoch_end(self, epoch, logs=None):
        logs = logs if logs is not None else {}
        logs["learning_rate"] = float(self.model.optimizer.learning_rate)
        current = logs.get(self.monitor)
        if current is None:
            warnings.warn(f"ReduceLROnPlateau: metric '{self.monitor}' is not in the logs (available: {sorted(logs)}).")
            return
        if self.cooldown_counter > 0:
            self.cooldown_counter -= 1
            self.wait = 0
        if self._improved(current):
            self.best = current
            self.wait = 0
        elif self.cooldown_counter <= 0:
            self.wait += 1
            if self.wait >= self.patience:
                old = float(self.model.optimizer.learning_rate)
                if old > self.min_lr:
                    new = max(old * self.factor, self.min_lr)
                    self.model.optimizer.learning_rate = new
                    if self.verbose:
                        print(f"Epoch {epoch + 1}: ReduceLROnPlateau reducing learning rate to {new}.")
                    self.cooldown_counter = self.cooldown
                    self.wait = 0


class CSVLogger(Callback):
    """Streams epoch results to a CSV file (one row per epoch)."""

    def __init__(self, filename, separator=",", append=False):
        super().__init__()
        self.filename = os.fspath(filename)
        self.separator = separator
        self.append = append
        self._file = None
        self._writer = None
        self._keys = None

    def on_train_begin(self, logs=None):
        append_header = not (self.append and os.path.exists(self.filename) and os.path.getsize(self.filename) > 0)
        self._file = open(self.filename, "a" if self.append else "w", newline="")
        self._append_header = append_header
        self._writer = None

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        if self._writer is None:
            self._keys = sorted(logs)
            self._writer = csv.DictWriter(self._file, fieldnames=["epoch"] + self._keys, delimiter=self.separator)
            if self._append_header:
                self._writer.writeheader()
        self._writer.writerow({"epoch": epoch, **{k: logs.get(k, "NA") for k in self._keys}})
        self._file.flush()

    def close(self):
        if self._file is not None:
            self._file.close()
            self._file = None

    def on_train_end(self, logs=None):
        if self._file is not None:
            self._file.close()
            self._file = None


class TerminateOnNaN(Callback):
    """Stops training as soon as the loss becomes NaN or infinite."""

    def on_train_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(loss):
            print(f"Batch {batch}: Invalid loss, terminating training")
            self.model.stop_training = True


class LambdaCallback(Callback):
    def __init__(self, on_epoch_begin=None, on_epoch_end=None, on_train_begin=None, on_train_end=None,
                 on_train_batch_begin=None, on_train_batch_end=None, **kwargs):
        super().__init__()
        for name, fn in dict(on_epoch_begin=on_epoch_begin, on_epoch_end=on_epoch_end, on_train_begin=on_train_begin,
                             on_train_end=on_train_end, on_train_batch_begin=on_train_batch_begin,
                             on_train_batch_end=on_train_batch_end, **kwargs).items():
            if fn is not None:
                setattr(self, name, fn)


class SwapEMAWeights(Callback):
    """Evaluates (and predicts) with the optimizer's moving averages of the weights (``use_ema=True``), then
    puts the trained weights back; with ``swap_on_epoch=True`` the averages are in the model from each
    epoch's end to the next epoch's start too, so a ModelCheckpoint placed after this callback saves them.
    The swap is in place (Keras's backend path).  Unlike Keras, predict swaps the weights back when it
    ends (Keras's on_predict_end tests the wrong flag and leaves the averages in the model)."""

    def __init__(self, swap_on_epoch=False):
        super().__init__()
        self.swap_on_epoch = swap_on_epoch
        self._ema_weights_in_model = False

    def _ema_optimizers(self):
        optimizer = getattr(self.model.optimizer, "inner_optimizer", self.model.optimizer)  # LossScaleOptimizer
        if hasattr(optimizer, "optimizers"):  # MultiOptimizer
            found = [opt for opt in optimizer.optimizers if getattr(opt, "use_ema", False)]
            if not found:
                raise ValueError("SwapEMAWeights must be used when at least one inner optimizer has `use_ema=True` "
                                 "set. Received a MultiOptimizer with all inner optimizers having `use_ema=False`.")
            return found
        if not getattr(optimizer, "use_ema", False):
            raise ValueError(f"SwapEMAWeights must be used when `use_ema=True` is set on the optimizer. Received: "
                             f"use_ema={getattr(optimizer, 'use_ema', None)}")
        return [optimizer]

    def _swap_variables(self):
        for optimizer in self._ema_optimizers():
            for var, average in zip(optimizer._trainable_variables, optimizer._model_variables_moving_average):
                trained = var.data.copy()
                var.data[...] = average.data
                average.data[...] = trained

    def _finalize_ema_values(self):
        # The model holds the averages and the optimizer the trained weights: give the optimizer the
        # averages back, so that fit's finalize_variable_values leaves the model with the averages.
        for optimizer in self._ema_optimizers():
            for var, average in zip(optimizer._trainable_variables, optimizer._model_variables_moving_average):
                average.data[...] = var.data

    def on_epoch_begin(self, epoch, logs=None):
        if self.swap_on_epoch and self._ema_weights_in_model:
            self._swap_variables()
            self._ema_weights_in_model = False

    def on_epoch_end(self, epoch, logs=None):
        if self.swap_on_epoch and not self._ema_weights_in_model:
            self._swap_variables()
            self._ema_weights_in_model = True
            if epoch == self.params["epochs"] - 1:
                self._finalize_ema_values()

    def on_test_begin(self, logs=None):
        if not self._ema_weights_in_model:
            self._swap_variables()
            self._ema_weights_in_model = True

    def on_test_end(self, logs=None):
        if self._ema_weights_in_model:
            self._swap_variables()
            self._ema_weights_in_model = False

    on_predict_begin = on_test_begin
    on_predict_end = on_test_end


class RemoteMonitor(Callback):
    """POSTs each epoch's logs (with ``"epoch"``) to ``root + path``: as a form field ``field`` holding the
    JSON text (Keras's default), or as a JSON body with ``send_as_json=True``.  Uses the standard library
    (Keras needs ``requests``); a server that cannot be reached, or answers with an error, is a warning, never
    the end of training.  ``timeout`` (seconds, dlgpu's addition) bounds each request so training never hangs
    on the monitor."""

    def __init__(self, root="http://localhost:9000", path="/publish/epoch/end/", field="data", headers=None,
                 send_as_json=False, timeout=10.0):
        super().__init__()
        self.root = root
        self.path = path
        self.field = field
        self.headers = headers
        self.send_as_json = send_as_json
        self.timeout = timeout

    def on_epoch_end(self, epoch, logs=None):
        import json
        import urllib.error
        import urllib.parse
        import urllib.request
        send = {"epoch": epoch}
        for key, value in (logs or {}).items():
            # numpy scalars and 0-d arrays are not JSON: their Python value is
            send[key] = value.item() if isinstance(value, (np.ndarray, np.generic)) else value
        if self.send_as_json:
            body, kind = json.dumps(send).encode("utf-8"), "application/json"
        else:
            body = urllib.parse.urlencode({self.field: json.dumps(send)}).encode("ascii")
            kind = "application/x-www-form-urlencoded"
        request = urllib.request.Request(self.root + self.path, data=body, method="POST",
                                         headers={"Content-Type": kind, **(self.headers or {})})
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                response.read()
        except (urllib.error.URLError, OSError, ValueError) as error:
            warnings.warn(f"Could not reach RemoteMonitor root server at {self.root} ({error})", stacklevel=2)


# Last: dlgpu/tensorboard.py subclasses Callback from this module.
from dlgpu.tensorboard import TensorBoard  # noqa: E402,F401  (keras.callbacks.TensorBoard)
