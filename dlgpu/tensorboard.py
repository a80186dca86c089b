"""keras.callbacks.TensorBoard without TensorFlow: the event files are written with tensorboardX.

Exported as ``dlgpu.callbacks.TensorBoard``; this module is apart from callbacks.py only because it is
the one callback with an optional dependency and an event-file format of its own.
"""

from __future__ import annotations

import itertools
import os
import time

import numpy as np

from dlgpu.callbacks import Callback

# tensorboardX names event files by the second and the host: two writers opened in the same second on
# one folder (fit, then evaluate) would share a name and the second would truncate the first.
_file_ids = itertools.count()


def _summary_writer_class():
    try:
        from tensorboardX import SummaryWriter
    except ImportError as exc:
        raise ImportError("dlgpu.callbacks.TensorBoard writes its event files with tensorboardX, which is not "
                          "installed: pip install 'dlgpu[tensorboard]' (or pip install tensorboardX).") from exc
    return SummaryWriter


class TensorBoard(Callback):
    """Write what Keras's TensorBoard callback writes, for ``tensorboard --logdir=log_dir``.

    * ``log_dir/train``: ``epoch_<name>`` scalars at step ``epoch`` for every log without the ``val_``
      prefix, plus ``epoch_learning_rate`` (and ``epoch_steps_per_second`` with
      ``write_steps_per_second``); with ``update_freq`` a number of batches (or ``"batch"`` = 1), the
      batch logs as ``batch_<name>`` at step = batches trained so far in this fit (1-based), every
      ``update_freq`` batches, as Keras documents (Keras 3 itself writes every batch once update_freq
      is not ``"epoch"``).
    * ``log_dir/validation``: ``epoch_<name>`` for each ``val_<name>``; after each validation in fit and
      after ``model.evaluate(..., callbacks=[tb])``, ``evaluation_<name>_vs_iterations`` at step
      ``optimizer.iterations``.
    * ``histogram_freq=N``: every N epochs, a histogram of each weight, tag ``<weight.path>/histogram``
      (Keras uses the weight's short name, so two Dense layers' ``kernel`` share one tag; the path
      keeps them apart), and with ``write_images`` the weight drawn as an image (``<path>/image``;
      a convolution kernel's filters are tiled into one image, where TensorFlow keeps three).
    * ``write_graph=True``: Keras's conceptual graph, the model's JSON (``model.to_json()``) under tag
      ``keras`` with the ``graph_keras_model`` plugin, at step 0, for functional and Sequential
      models, once per fit.  The op-level graph is a TensorFlow function trace, which dlgpu has none
      of, and which Keras 3 writes only on the TensorFlow backend.

    Refused: ``profile_batch`` other than 0 (there is no dlgpu profiler trace for TensorBoard's
    profile plugin), ``embeddings_freq`` other than 0 and ``embeddings_metadata`` (the projector reads
    TensorFlow checkpoints).
    """

    def __init__(self, log_dir="logs", histogram_freq=0, write_graph=True, write_images=False,
                 write_steps_per_second=False, update_freq="epoch", profile_batch=0, embeddings_freq=0,
                 embeddings_metadata=None):
        super().__init__()
        if not _profiling_off(profile_batch):
            raise NotImplementedError(f"TensorBoard: profiling is not available in dlgpu (no profiler trace for "
                                      f"TensorBoard's profile plugin). Received: profile_batch={profile_batch!r} "
                                      f"(must be 0).")
        if embeddings_freq:
            raise NotImplementedError(f"TensorBoard: embeddings_freq={embeddings_freq!r} is not supported: "
                                      f"TensorBoard's projector reads TensorFlow checkpoints, which dlgpu does "
                                      f"not write. Use embeddings_freq=0.")
        if embeddings_metadata is not None:
            raise NotImplementedError("TensorBoard: embeddings_metadata is not supported (embeddings are not "
                                      "written; see embeddings_freq).")
        if update_freq == "batch":
            update_freq = 1
        if update_freq != "epoch" and (isinstance(update_freq, bool) or not isinstance(update_freq, int)
                                       or update_freq <= 0):
            raise ValueError(f"TensorBoard: update_freq must be 'epoch', 'batch' or a positive integer (a number "
                             f"of batches). Received: update_freq={update_freq!r}")
        if isinstance(histogram_freq, bool) or not isinstance(histogram_freq, int) or histogram_freq < 0:
            raise ValueError(f"TensorBoard: histogram_freq must be a non-negative integer (epochs). Received: "
                             f"histogram_freq={histogram_freq!r}")
        _summary_writer_class()  # a missing tensorboardX shows here, not after the first epoch
        self.log_dir = os.fspath(log_dir)
        self.histogram_freq = histogram_freq
        self.write_graph = write_graph
        self.write_images = write_images
        self.write_steps_per_second = write_steps_per_second
        self.update_freq = update_freq
        self.profile_batch = 0
        self.embeddings_freq = 0
        self.embeddings_metadata = None
        self._train_dir = os.path.join(self.log_dir, "train")
        self._val_dir = os.path.join(self.log_dir, "validation")
        self._writers = {}
        self._in_fit = False
        self._global_train_batch = 0
        self._epoch_start_time = 0.0
        self._epoch_start_iterations = 0
        self._batch_start_time = 0.0
        # The training loop computes batch logs only for callbacks that take them (CallbackList reads
        # the hook off the instance or class); when nothing is written per batch, don't ask for them.
        if update_freq != "epoch":
            self.on_train_batch_end = self._write_batch_logs

    # -- writers ----------------------------------------------------------------------------------
    def _writer(self, which):
        writer = self._writers.get(which)
        if writer is None:
            directory = self._train_dir if which == "train" else self._val_dir
            writer = _summary_writer_class()(directory, filename_suffix=f".{os.getpid()}.{next(_file_ids)}.v2")
            self._writers[which] = writer
        return writer

    def _close_writers(self):
        for writer in self._writers.values():
            writer.close()
        self._writers = {}

    def close(self):
        """fit/evaluate/predict call this when they end, also on an error: the event files are complete."""
        self._close_writers()
        self._in_fit = False

    # -- fit --------------------------------------------------------------------------------------
    def on_train_begin(self, logs=None):
        self._in_fit = True
        self._global_train_batch = 0
        if self.write_graph:
            self._write_keras_model_summary()

    def on_train_end(self, logs=None):
        self._close_writers()
        self._in_fit = False

    def on_epoch_begin(self, epoch, logs=None):
        if self.write_steps_per_second:
            self._epoch_start_time = time.perf_counter()
            self._epoch_start_iterations = self._iterations()

    def on_train_batch_begin(self, batch, logs=None):
        self._global_train_batch += 1
        if self.write_steps_per_second:
            self._batch_start_time = time.perf_counter()

    def _write_batch_logs(self, batch, logs=None):
        step = self._global_train_batch
        if step % self.update_freq:
            return
        writer = self._writer("train")
        if self.write_steps_per_second:
            elapsed = time.perf_counter() - self._batch_start_time
            writer.add_scalar("batch_steps_per_second", 1.0 / elapsed if elapsed > 0 else 0.0, step)
        for name, value in (logs or {}).items():
            if _is_scalar(value):
                writer.add_scalar(f"batch_{name}", float(value), step)

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        train = {k: v for k, v in logs.items() if not k.startswith("val_")}
        val = {k[4:]: v for k, v in logs.items() if k.startswith("val_")}
        learning_rate = self._learning_rate()
        if learning_rate is not None:
            train["learning_rate"] = learning_rate
        if self.write_steps_per_second:
            elapsed = time.perf_counter() - self._epoch_start_time
            steps = self._iterations() - self._epoch_start_iterations
            train["steps_per_second"] = steps / elapsed if elapsed > 0 else 0.0
        for which, values in (("train", train), ("val", val)):
            if values:
                writer = self._writer(which)
                for name, value in values.items():
                    if _is_scalar(value):
                        writer.add_scalar(f"epoch_{name}", float(value), epoch)
        if self.histogram_freq and epoch % self.histogram_freq == 0:
            self._write_weights(epoch)
        for writer in self._writers.values():
            writer.flush()

    # -- evaluate ---------------------------------------------------------------------------------
    def on_test_end(self, logs=None):
        optimizer = getattr(self.model, "optimizer", None)
        if logs and optimizer is not None and hasattr(optimizer, "iterations"):
            writer = self._writer("val")
            step = self._iterations()
            for name, value in logs.items():
                if _is_scalar(value):
                    writer.add_scalar(f"evaluation_{name}_vs_iterations", float(value), step)
            writer.flush()
        if not self._in_fit:  # evaluate() alone: its close() has already run, so nothing else closes this
            self._close_writers()

    # -- what is written --------------------------------------------------------------------------
    def _iterations(self):
        optimizer = getattr(self.model, "optimizer", None)
        if optimizer is None or not hasattr(optimizer, "iterations"):
            return 0
        return int(np.asarray(optimizer.iterations.numpy()))

    def _learning_rate(self):
        from dlgpu.optimizers.base import Optimizer
        optimizer = getattr(self.model, "optimizer", None)
        if not isinstance(optimizer, Optimizer) or hasattr(optimizer, "optimizers"):
            return None  # a MultiOptimizer has one rate per inner optimizer
        return float(optimizer._current_learning_rate())

    def _write_keras_model_summary(self):
        from dlgpu.models import Sequential
        model = self.model
        # As Keras: only models that are a graph of layers have a conceptual graph; a subclassed model's
        # call is code.
        if not (isinstance(model, Sequential) or getattr(model, "_functional", False)):
            return
        try:
            json_string = model.to_json()
        except Exception as exc:  # noqa: BLE001 - as Keras: a model that does not serialize has no graph
            import warnings
            warnings.warn(f"TensorBoard: the model failed to serialize as JSON, so no graph is written: {exc}")
            return
        from tensorboardX.proto.summary_pb2 import Summary, SummaryMetadata
        from tensorboardX.proto.tensor_pb2 import TensorProto
        metadata = SummaryMetadata(plugin_data=SummaryMetadata.PluginData(plugin_name="graph_keras_model",
                                                                          content=b"1"))
        tensor = TensorProto(dtype="DT_STRING", string_val=[json_string.encode("utf-8")])
        summary = Summary(value=[Summary.Value(tag="keras", metadata=metadata, tensor=tensor)])
        writer = self._writer("train")
        writer._get_file_writer().add_summary(summary, global_step=0)
        writer.flush()

    def _write_weights(self, epoch):
        writer = self._writer("train")
        seen = set()
        for layer in self.model.layers:
            for weight in layer.weights:
                if id(weight) in seen:  # a weight shared by two layers is drawn once
                    continue
                seen.add(id(weight))
                tag = getattr(weight, "path", None) or weight.name
                tag = tag.replace(":", "_")
                values = weight.numpy()
                writer.add_histogram(f"{tag}/histogram", values, epoch)
                if self.write_images:
                    image = _weight_image(values)
                    if image is not None:
                        writer.add_images(f"{tag}/image", image, epoch, dataformats="NHWC")


def _profiling_off(profile_batch):
    """Keras's profile_batch forms that mean "no profiling": 0, (0, 0), "0" and "0,0"."""
    if isinstance(profile_batch, str):
        profile_batch = [p.strip() for p in profile_batch.split(",")]
    parts = list(profile_batch) if isinstance(profile_batch, (list, tuple)) else [profile_batch]
    return all(isinstance(p, (int, np.integer, str)) and (p == 0 or p == "0") for p in parts)


def _is_scalar(value):
    return np.ndim(value) == 0 and np.issubdtype(np.asarray(value).dtype, np.number)


def _weight_image(weight):
    """Keras's _log_weight_as_image: a bias as one row, a matrix wide side horizontal, a 1D convolution
    kernel (or a squeezed 2D one) as one image per output filter; anything else is not drawn."""
    from dlgpu import config
    w = np.squeeze(weight)
    if w.ndim == 1:
        w = w.reshape(1, w.shape[0], 1, 1)
    elif w.ndim == 2:
        if w.shape[0] > w.shape[1]:
            w = w.T
        w = w.reshape(1, w.shape[0], w.shape[1], 1)
    elif w.ndim == 3:
        if config.image_data_format() == "channels_last":
            w = np.transpose(w, (2, 0, 1))
        w = w.reshape(w.shape[0], w.shape[1], w.shape[2], 1)
    if w.ndim == 4 and w.shape[-1] in (1, 3, 4):
        return w
    return None
