"""The training loop, in one place: compile, fit, evaluate, predict and the *_on_batch variants.

One step of ``fit``: slice a batch on the host, move it to the model's device once, run the model under
a GradientTape, compute the loss (+ regularization), take gradients, hand them to the optimizer, update
the metrics, drive the callbacks (the progress bar is one of them).
"""

from __future__ import annotations

import math
import warnings

import numpy as np

from dlgpu import callbacks as callbacks_module
from dlgpu import config as config_module
from dlgpu import losses as losses_module
from dlgpu import metrics as metrics_module
from dlgpu import optimizers as optimizers_module
from dlgpu.autograd import GradientTape, Tensor, no_grad
from dlgpu.backend import device as _device
from dlgpu.layers.base import flatten, is_string_array, probing, stateful_layers
from dlgpu.naming import unique_in
from dlgpu.models.data import (check_batch_size, class_weights_to_sample_weights, length,
                               slice_structure, unpack_validation, prepare_host_data)
from dlgpu.models.data_sources import (BatchChecks, batch_stream, check_data_source, check_steps, is_batch_stream,
                                       is_restartable, materialize, reject_with_stream, unpack_batch)
from dlgpu.utils.data_adapter_utils import pack_x_y_sample_weight, unpack_x_y_sample_weight


def _capped_steps(steps):
    """``steps`` (an epoch's, a validation's, evaluate's or predict's; None: until the data ends) under Keras's
    debugging cap ``keras.config.set_max_steps_per_epoch``, with Keras's warning when the cap bites."""
    cap = config_module.max_steps_per_epoch()
    if cap and (not steps or cap < steps):
        warnings.warn(f"Limiting steps_per_epoch to {cap}", stacklevel=3)
        return cap
    return steps


class Trainer:
    """Mixed into Model: everything about compiling and running training/evaluation/prediction."""

    def __init__(self):
        self.optimizer = None
        self.compiled = False
        self.stop_training = False
        self.history = None
        self._loss_fns = None
        self._compile_metrics = None
        self._metric_objects = None
        self._loss_tracker = None
        self._step_variables = None
        self._static_plan = None  # (what it was planned for, StaticStep or None)

    # -- compile ------------------------------------------------------------------------------
    def compile(self, optimizer="rmsprop", loss=None, loss_weights=None, metrics=None, weighted_metrics=None,
                run_eagerly=False, steps_per_execution=1, jit_compile="auto", auto_scale_loss=True):
        """Configure the model for training (strings, functions and objects as Keras accepts)."""
        optimizer = optimizers_module.get(optimizer)
        n_out = self._num_outputs()
        # as_loss, as Keras's compile: a plain function y_true, y_pred -> per-sample values is wrapped in a Loss,
        # which reduces it and applies sample weights (the function itself takes no sample_weight).
        loss_fns = self._resolve_per_output(loss, "loss", losses_module.as_loss, n_out, allow_none=False)
        if loss_weights is not None:
            weights = self._per_output(loss_weights, "loss_weights", n_out)
            loss_weights = [1.0 if w is None else float(w) for w in weights]
        _check_metric_names(metrics)
        _check_metric_names(weighted_metrics)
        if auto_scale_loss and self.dtype_policy.name == "mixed_float16" and optimizer is not None \
                and not isinstance(optimizer, optimizers_module.LossScaleOptimizer):
            # as Keras: float16 gradients underflow without a loss scale
            optimizer = optimizers_module.LossScaleOptimizer(optimizer, name="loss_scale_optimizer")
        self.optimizer = optimizer
        self._loss_fns = loss_fns
        self._loss_config = loss
        self._loss_weights = loss_weights
        # past Layer.__setattr__, as Keras compiles without dependency tracking: the loss tracker and the
        # compiled metric objects are not metrics held by the model (a recompile would leave them behind)
        object.__setattr__(self, "_compile_metrics", metrics)
        object.__setattr__(self, "_compile_weighted_metrics", weighted_metrics)
        self._metric_objects = None  # resolved on the first batch, when output shapes are known
        object.__setattr__(self, "_loss_tracker", metrics_module.Mean(name="loss"))
        self._output_loss_trackers = None  # a new compile may give other outputs a loss
        # Keras's switches for its compiled train step; here they choose between the planned step
        # (static_step.py) and the tape.
        self._run_eagerly = bool(run_eagerly)
        self._jit_compile = jit_compile
        self._static_plan = None
        self.compiled = True
        self.stop_training = False

    def _num_outputs(self):
        outputs = getattr(self, "outputs", None) if getattr(self, "_functional", False) else None
        return len(outputs) if outputs else None

    @property
    def output_names(self):
        """The names the outputs go by in loss/metric dicts and logs (Keras 3's ``model.output_names``):
        the output layers' names, or the keys of a dict of outputs; assignable, as in Keras."""
        if getattr(self, "_functional", False):
            return self._output_names(len(self.outputs))
        if getattr(self, "layers", None) and self.built:
            return self._output_names(1)
        raise AttributeError(f"Model '{self.name}' has no output_names yet: they come from its outputs, which a "
                             f"subclassed or unbuilt model does not know before it is called.")

    @output_names.setter
    def output_names(self, names):
        self._custom_output_names = [str(name) for name in names]

    def _output_names(self, n):
        """Names of the model's n outputs, as Keras names them: the keys of a dict of outputs, else the
        output layers' names."""
        custom = getattr(self, "_custom_output_names", None)
        if custom is not None and len(custom) == n:
            return list(custom)
        if getattr(self, "_functional", False) and len(self.outputs) == n:
            if isinstance(self._nested_outputs, dict):
                return list(self._nested_outputs)
            return [t._history[0].name for t in self.outputs]
        layers = getattr(self, "layers", None)
        if n == 1 and layers:
            return [layers[-1].name]
        return [f"output_{i + 1}" for i in range(n)]

    def _by_output(self, structure, what="`y`"):
        """Targets or predictions as a list, one entry per output: a dict keyed by output names is put in
        output order (Keras accepts targets so, and a model built with a dict of outputs returns them so)."""
        if not isinstance(structure, dict):
            return list(structure) if isinstance(structure, (list, tuple)) else [structure]
        count = len(self.outputs) if getattr(self, "_functional", False) else len(structure)
        names = self._output_names(count)
        if sorted(structure) != sorted(names):
            raise ValueError(f"{what} is a dict keyed {sorted(structure)}, but the model's outputs are named "
                             f"{names}: give one entry per output name.")
        return [structure[name] for name in names]

    def _per_output(self, spec, what, n):
        if isinstance(spec, dict):
            names = self._output_names(n or len(spec))
            unknown = set(spec) - set(names)
            if unknown:
                raise ValueError(f"compile: `{what}` has keys {sorted(unknown)} that are not outputs of the model "
                                 f"({names})")
            return [spec.get(name) for name in names]
        if isinstance(spec, (list, tuple)):
            if n is not None and len(spec) != n:
                raise ValueError(f"compile: `{what}` has {len(spec)} entries but the model has {n} outputs")
            return list(spec)
        return [spec] * (n or 1)

    def _resolve_per_output(self, spec, what, getter, n, allow_none):
        if spec is None:
            return None
        return [None if s is None else getter(s) for s in self._per_output(spec, what, n)]

    def _check_compiled(self, method):
        if not self.compiled:
            raise RuntimeError(f"You must call `compile()` before using the model's `{method}()`; "
                               f"e.g. model.compile(optimizer='adam', loss='sparse_categorical_crossentropy').")
        # As in Keras, compile() without a loss is allowed: the loss may come from add_loss() alone
        # (_compute_loss raises, before any weight changes, when there is none at all).
    # -- metrics ------------------------------------------------------------------------------
    def _targets_by_output(self, y_true, outputs):
        """The targets as a list, one entry per output: a single output's target is one array even when it
        is given as a list of rows.  Outputs compiled with a None loss need no target: fewer targets than
        outputs, one per output that has a loss, go to those outputs in order (``loss=[fn, None]`` with one
        ``y``, as keras.io's miniature GPT trains), and the others get None."""
        if not (isinstance(y_true, dict) or outputs > 1):
            return [y_true]
        trues = self._by_output(y_true)
        fns = self._loss_fns
        if not isinstance(y_true, dict) and fns is not None and len(fns) == outputs and len(trues) < outputs:
            with_loss = [i for i, fn in enumerate(fns) if fn is not None]
            if len(with_loss) == len(trues):
                spread = [None] * outputs
                for i, t in zip(with_loss, trues):
                    spread[i] = t
                return spread
        return trues

    def _build_metrics(self, y_true, y_pred):
        """The compiled metrics as (output index, log name, metric, weighted) rows.  As in Keras, ``metrics``
        ignore sample weights and ``weighted_metrics`` take them; a name met twice gets a counter
        (auc, auc_1) and a weighted metric named like an unweighted one is logged as weighted_<name>."""
        outputs_pred = self._by_output(y_pred)
        n = len(outputs_pred)
        trues = self._targets_by_output(y_true, n)
        names = self._output_names(n)
        rows, seen = [], {}
        for weighted, specs in ((False, self._compile_metrics),
                                (True, getattr(self, "_compile_weighted_metrics", None))):
            per_output = self._metrics_per_output(specs, n, trues, outputs_pred, "weighted_metrics" if weighted
                                                  else "metrics")
            for i in range(n):
                for metric in per_output[i]:
                    prefix = f"{names[i]}_" if n > 1 else ""
                    name = prefix + metric.name
                    if weighted and name in seen:
                        name = prefix + f"weighted_{metric.name}"
                    rows.append((i, unique_in(name, seen), metric, weighted))
        self._metric_objects = rows

    def _metrics_per_output(self, specs, n, trues, outputs_pred, argument):
        """Metric objects per output from compile's ``metrics`` or ``weighted_metrics``: one list for all
        outputs, a list of lists (one per output) or a dict by output name."""
        per_output = [[] for _ in range(n)]
        if not specs:
            return per_output
        if isinstance(specs, dict):
            per = self._per_output(specs, argument, n)
        elif n > 1 and isinstance(specs, (list, tuple)) and all(isinstance(s, (list, tuple)) or s is None
                                                               for s in specs):
            per = list(specs)
        else:
            per = [specs] * n
        for i, entry in enumerate(per):
            for spec in ([] if entry is None else entry if isinstance(entry, (list, tuple)) else [entry]):
                if isinstance(spec, str) and spec in ("accuracy", "acc"):
                    metric = metrics_module.resolve_accuracy(self._loss_fns[i] if self._loss_fns else None,
                                                             np.shape(trues[i]), outputs_pred[i].shape)
                    metric.name = spec
                else:
                    metric = metrics_module.get(spec)
                per_output[i].append(metric)
        return per_output

    def _reset_metrics(self):
        object.__setattr__(self, "_step_logs", None)  # past Layer.__setattr__'s tracking, as _step_variables
        # walked once per epoch/evaluate, not per batch: the logs read this list after every step.  A model
        # that overrides `metrics` lists what it tracks itself (Keras logs and resets exactly that list).
        held = self._held_metrics() if type(self).metrics is Trainer.metrics else []
        object.__setattr__(self, "_held_metric_list", held)
        for metric in self._tracked_metrics():
            metric.reset_state()

    def _own_trackers(self):
        return [self._loss_tracker, *(getattr(self, "_output_loss_trackers", None) or {}).values(),
                *[row[2] for row in self._metric_objects or []]]

    def _held_metrics(self):
        """Metric objects assigned to attributes of the model and of its layers, past the compiled ones.
        Keras logs them after the compiled metrics (keras.io's endpoint layer updates its
        ``self.accuracy_metric`` in call()); a nested model's own trackers belong to its own fit, so they
        are left out, as Keras does, while the layers inside it count."""
        skip = self._own_trackers()
        found, seen = [], set()

        def visit(layer, top):
            if id(layer) in seen:
                return
            seen.add(id(layer))
            if top or not isinstance(layer, Trainer):
                for metric in layer.__dict__.get("_metrics", ()):
                    if all(metric is not m for m in skip) and all(metric is not m for m in found):
                        found.append(metric)
            for sub in layer.__dict__.get("_layers", ()):
                visit(sub, False)
        visit(self, True)
        return found

    def _tracked_metrics(self):
        """The compiled metrics, the metrics held by the model's layers, and whatever a subclass's
        ``metrics`` property adds (Keras resets all of those at every epoch)."""
        tracked = [t for t in self._own_trackers() if t is not None]
        tracked += getattr(self, "_held_metric_list", None) or []
        if type(self).metrics is not Trainer.metrics:
            tracked += [m for m in self.metrics if all(m is not t for t in tracked)]
        return tracked

    def _logs(self):
        """What fit and evaluate report: the logs a custom train_step/test_step returned last, else the
        compiled metrics' results."""
        if getattr(self, "_step_logs", None) is not None:
            return dict(self._step_logs)
        return self._metric_logs()

    def _metric_logs(self):
        logs = {"loss": float(self._loss_tracker.result())}
        for name, tracker in (getattr(self, "_output_loss_trackers", None) or {}).items():
            logs[name] = float(tracker.result())
        for _, name, metric, _ in self._metric_objects or []:
            logs[name] = _log_value(metric.result())
        for metric in getattr(self, "_held_metric_list", None) or []:
            logs[metric.name] = _log_value(metric.result())
        return logs

    @property
    def metrics_names(self):
        """The names of the values evaluate() returns, in its order (the per-output losses of a model with
        several outputs appear once it has trained or evaluated)."""
        names = ["loss", *(getattr(self, "_output_loss_trackers", None) or {})]
        names += [row[1] for row in self._metric_objects or []]
        names += [m.name for m in self._held_metrics()]
        return list(dict.fromkeys(names))  # a repeated name is one entry of the logs

    @property
    def metrics(self):
        compiled = [self._loss_tracker] + [row[2] for row in self._metric_objects or []] if self.compiled else []
        return compiled + self._held_metrics()

    # -- one step -----------------------------------------------------------------------------
    def _compute_loss(self, y_true, y_pred, sample_weight=None, training=True):
        total = None
        per_output = []
        if self._loss_fns is not None and y_true is None:
            raise ValueError("The model was compiled with a loss but no targets `y` were given; pass y (or, for "
                             "a loss that needs no targets, compile without `loss` and use add_loss()).")
        preds = self._by_output(y_pred)
        trues = self._targets_by_output(y_true, len(preds)) if self._loss_fns is not None else []
        if self._loss_fns is not None and len(trues) != len(preds):
            raise ValueError(f"The model has {len(preds)} outputs but {len(trues)} targets were given.")
        for i, (t, p) in enumerate(zip(trues, preds)):
            fn = self._loss_fns[i] if i < len(self._loss_fns) else self._loss_fns[-1]
            if fn is None:
                per_output.append(None)  # kept in place, so that entry i stays output i's loss
                continue
            value = fn(t, p, sample_weight=sample_weight)
            per_output.append(value)
            if self._loss_weights is not None:
                value = value * self._loss_weights[i]
            total = value if total is None else total + value
        # Weight penalties and add_loss terms count in evaluation too, as Keras 3's compute_loss does:
        # evaluate(x, y) on the training data reports the same loss fit minimised.
        extra = self.losses
        if extra:
            for penalty in extra:
                total = penalty if total is None else total + penalty
            self._clear_losses()
        if total is None:
            raise ValueError("No loss to compute: compile() was given no `loss` (or None for every output) and "
                             "the model adds none with add_loss(). Pass loss=... to compile().")
        return total, per_output

    def _step_loss(self, x, y, y_pred, sample_weight, training):
        """The built-in steps' loss: a subclass's own compute_loss when it overrides it (keras.io's
        knowledge distillation does, and compiles no loss), called as Keras's trainer calls it (without
        `training` when its signature predates Keras 3.3's); else the compiled losses."""
        if not self._overrides("compute_loss"):
            return self._compute_loss(y, y_pred, sample_weight, training=training)
        if sample_weight is not None and not isinstance(sample_weight, Tensor):
            sample_weight = Tensor(sample_weight)
        if _accepts_training(type(self).compute_loss):
            loss = self.compute_loss(x, y, y_pred, sample_weight, training=training)
        else:
            loss = self.compute_loss(x, y, y_pred, sample_weight)
        return loss, [loss]

    def _update_metrics(self, y_true, y_pred, loss, per_output, batch_size, sample_weight=None):
        self._loss_tracker.update_state(loss, sample_weight=batch_size)
        preds = self._by_output(y_pred)
        if len(preds) > 1:
            trackers = getattr(self, "_output_loss_trackers", None)
            names = self._output_names(len(preds))
            if trackers is None:
                # one per output that has a loss, as Keras logs them (loss=[None, ...] trains only the others)
                trackers = {f"{n}_loss": metrics_module.Mean(name=f"{n}_loss")
                            for n, value in zip(names, per_output) if value is not None}
                self._output_loss_trackers = trackers
            for n, value in zip(names, per_output):
                if value is not None:
                    trackers[f"{n}_loss"].update_state(value, sample_weight=batch_size)
        if y_true is None:  # a model trained on add_loss() alone: no targets for the compiled metrics
            return
        trues = self._targets_by_output(y_true, len(preds))
        for i, _, metric, weighted in self._metric_objects:
            # float16 outputs of a mixed_float16 model: metrics in float32, as Keras's update their float32 state
            metric.update_state(trues[i], losses_module.half_to_float32(preds[i]),
                                sample_weight=sample_weight if weighted else None)

    def _train_batch(self, x, y, sample_weight=None):
        """Forward, loss, gradients, one optimizer update.  Returns (loss, per-output losses, y_pred).

        Models that static_step.py can plan take that step; all others run under the tape."""
        # the planned step differentiates the loss as it is: an optimizer that scales it takes the tape
        static = None if self.optimizer._scales_loss() else self._static_step()
        if static is not None and static.accepts(x, y, sample_weight):
            loss, y_pred = static(x, y)
            return loss, [loss], y_pred
        # fit refreshes this list once per epoch; walking the layer tree every step costs real time.
        variables = self._step_variables if self._step_variables is not None else self.trainable_variables
        with GradientTape() as tape:
            y_pred = self(x, training=True)
            loss, per_output = self._step_loss(x, y, y_pred, sample_weight, training=True)
            scaled = self.optimizer.scale_loss(loss)  # Keras's trainer: LossScaleOptimizer, loss_scale_factor
        if isinstance(self.optimizer, optimizers_module.LossScaleOptimizer):
            # a scaled loss may overflow float16 gradients: expected, the optimizer skips that step and
            # halves the scale, so numpy's overflow warnings would only be noise
            with np.errstate(over="ignore", invalid="ignore"):
                grads = tape.gradient(scaled, variables)
        else:
            grads = tape.gradient(scaled, variables)
        self.optimizer.apply(grads, variables)
        return loss, per_output, y_pred

    def _run_train_batch(self, x, y, sample_weight):
        """One training batch with fit's bookkeeping: the model's own ``train_step(data)`` when a subclass
        overrides it (Keras's way to customise fit; its returned logs are what fit reports), else the
        built-in step and metric updates."""
        if self._overrides("train_step"):
            object.__setattr__(self, "_step_logs", _logs_as_values(self.train_step(_pack_data(x, y, sample_weight))))
            return
        loss, per_output, y_pred = self._train_batch(x, y, sample_weight)
        self._update_metrics(y, y_pred, loss, per_output, length(x if y is None else y), sample_weight)

    def _run_test_batch(self, x, y, sample_weight):
        if self._overrides("test_step"):
            object.__setattr__(self, "_step_logs", _logs_as_values(self.test_step(_pack_data(x, y, sample_weight))))
            return
        loss, per_output, y_pred = self._test_batch(x, y, sample_weight)
        self._update_metrics(y, y_pred, loss, per_output, length(x if y is None else y), sample_weight)

    def _overrides(self, method):
        return getattr(type(self), method) is not getattr(Trainer, method)

    # -- Keras's customisation API: override train_step / test_step, call these from them ---------------
    def train_step(self, data):
        """One training step on ``data`` = (x, y) or (x, y, sample_weight); returns the logs, as Keras's.
        Override it in a subclass to change what fit does per batch (use dlgpu.GradientTape,
        ``self.compute_loss``, ``self.optimizer.apply`` and ``self.compute_metrics``)."""
        x, y, sample_weight = _unpack_data(data)
        loss, per_output, y_pred = self._train_batch(x, y, sample_weight)
        self._update_metrics(y, y_pred, loss, per_output, length(x if y is None else y), sample_weight)
        return self.get_metrics_result()

    def test_step(self, data):
        """One evaluation step on ``data``; returns the logs.  Override it to change what evaluate does."""
        x, y, sample_weight = _unpack_data(data)
        loss, per_output, y_pred = self._test_batch(x, y, sample_weight)
        self._update_metrics(y, y_pred, loss, per_output, length(x if y is None else y), sample_weight)
        return self.get_metrics_result()

    def predict_step(self, data):
        """The outputs for one batch, ``data`` = x (as Keras: (x,) for a list of inputs); override it to
        change what predict returns."""
        x, _, _ = _unpack_data(data)
        return self(x, training=False)

    def _predict_batch(self, x):
        return self.predict_step(_pack_data(x, None, None)) if self._overrides("predict_step") else self(x, training=False)

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        """The compiled loss of ``y_pred`` against ``y`` plus the layers' penalties (self.losses), as in
        Keras; for a custom train_step."""
        if sample_weight is not None and not isinstance(sample_weight, Tensor):
            sample_weight = Tensor(sample_weight)
        return self._compute_loss(y, y_pred, sample_weight, training=training)[0]

    def compute_metrics(self, x, y, y_pred, sample_weight=None):
        """Updates the compiled metrics with this batch and returns every metric's result (the loss
        tracker is the caller's to update, as in Keras)."""
        if self._metric_objects is None:
            self._build_metrics(y, y_pred)
        preds = self._by_output(y_pred)
        trues = self._targets_by_output(y, len(preds))
        for i, _, metric, weighted in self._metric_objects:
            metric.update_state(trues[i], preds[i], sample_weight=sample_weight if weighted else None)
        return self.get_metrics_result()

    @property
    def compiled_metrics(self):
        """Keras 2's ``self.compiled_metrics.update_state(y, y_pred)`` for custom train_steps written for
        it (keras.io's older examples); Keras 3 keeps it as a deprecated shim, and so does dlgpu.  It updates
        the compiled metrics (not the loss tracker) and warns."""
        model = self

        class _CompiledMetrics:
            def update_state(self, y, y_pred, sample_weight=None):
                warnings.warn("`model.compiled_metrics` is deprecated; update the metrics yourself (for metric "
                              "in self.metrics: metric.update_state(y, y_pred)) or call "
                              "self.compute_metrics(x, y, y_pred)", DeprecationWarning, stacklevel=2)
                model.compute_metrics(None, y, y_pred, sample_weight=sample_weight)

        return _CompiledMetrics()

    def compiled_loss(self, y, y_pred, sample_weight=None, regularization_losses=None):
        """Keras 2's ``loss = self.compiled_loss(y, y_pred, regularization_losses=self.losses)`` for custom
        train_steps written for it (keras.io's EDSR, ShiftViT); Keras 3 keeps it as a deprecated shim (its
        TensorFlow backend), and so does dlgpu.  It returns compute_loss(y=y, y_pred=y_pred), which already
        adds the layers' penalties (``regularization_losses`` is not added twice, as in Keras 3), and, as
        Keras 2's did, updates the "loss" tracker, so ``{m.name: m.result() for m in self.metrics}`` reports
        the loss."""
        warnings.warn("`model.compiled_loss()` is deprecated; use `model.compute_loss(x, y, y_pred, "
                      "sample_weight)`", DeprecationWarning, stacklevel=2)
        loss = self.compute_loss(x=None, y=y, y_pred=y_pred, sample_weight=sample_weight)
        if self._loss_tracker is not None:
            batch = next((t.shape[0] for t in flatten(y_pred) if getattr(t, "ndim", 0)), None)
            self._loss_tracker.update_state(loss, sample_weight=batch)
        return loss

    def get_metrics_result(self):
        """{name: result} of every metric the model tracks (the loss first)."""
        return self._metric_logs()

    def _static_step(self):
        """The planned step for this model as it is now (re-planned when its layers, trainability, activations,
        optimizer or loss changed), or None."""
        stack = getattr(self, "_stack", ())
        # _fused: a layer's activation can be reassigned after the plan was made (grad_cam's `activation = None`)
        # quantization_mode: layer.quantize() on a layer of a compiled model needs a new plan (model.quantize resets it)
        key = (*stack, *[layer.trainable for layer in stack], *[getattr(layer, "_fused", None) for layer in stack],
               *[layer.quantization_mode for layer in stack],
               self.trainable, self.optimizer,
               self._loss_fns[0] if self._loss_fns else None)
        cached = self._static_plan
        if cached is None or cached[0] != key:  # layers, optimizers and losses compare by identity
            from dlgpu.models import static_step
            cached = (key, static_step.plan(self))
            object.__setattr__(self, "_static_plan", cached)
        return cached[1]

    def _test_batch(self, x, y, sample_weight=None):
        with no_grad():
            y_pred = self(x, training=False)
            loss, per_output = self._step_loss(x, y, y_pred, sample_weight, training=False)
        return loss, per_output, y_pred

    # -- data handling ------------------------------------------------------------------------
    def _device(self):
        variables = self.variables
        return variables[0].device if variables else _device.get_device()

    def _prepare(self, x, y=None, sample_weight=None, what="fit"):
        xs, ys, sw, n = prepare_host_data(x, y, sample_weight, what, strings=self._takes_strings())
        if isinstance(ys, dict):  # targets by output name: in output order from here on
            ys = self._by_output(ys, f"{what}: `y`")
            ys = ys if len(ys) > 1 else ys[0]
        return xs, ys, sw, n

    def _takes_strings(self):
        """Whether the model has a string Input (Input(dtype="string")), whose data stays on the host."""
        return any(getattr(t, "dtype", None) == "string" for t in getattr(self, "inputs", None) or ())

    def _to_device(self, structure, dev, index=None):
        if structure is None:  # no targets: a custom train_step that needs none (an autoencoder's)
            return None

        def move(a):
            part = a if index is None else a[index]
            if is_string_array(part):  # strings stay on the host, for the host-side layers of a string Input
                return part
            return Tensor(part if dev.kind == "cpu" else _device.to_device(part, dev))
        if isinstance(structure, dict):
            return {k: move(v) for k, v in structure.items()}
        if isinstance(structure, list):
            return [move(a) for a in structure]
        return move(structure)

    def _dry_run(self, xs, ys, sw, batch_size=None):
        """Run forward + loss on two samples without touching the weights: shape, dtype and label errors
        surface before training changes anything.  Returns the shapes of the outputs (None for a model
        that only has a custom train_step/test_step and no call, as Keras's GAN: nothing to run ahead).
        Stateful layers keep their states through it (a probe); a model with such layers runs it on one
        batch (``batch_size`` samples), since a model it builds fixes their batch size."""
        if self._without_call():
            return None
        dev = self._device()
        rows = batch_size if batch_size is not None and stateful_layers(self) else 2
        sl = slice(0, min(rows, length(xs)))
        xb = self._to_device(xs, dev, sl)
        yb = None if ys is None else self._to_device(ys, dev, sl)
        with no_grad(), probing():
            try:
                y_pred = self(xb, training=False)
            except ValueError as error:  # its shapes are the two samples': name the data's too
                shapes = [tuple(a.shape) for a in flatten(xs)]
                raise ValueError(f"{error}\n(checked on the first {sl.stop} samples before training; x has shape "
                                 f"{shapes[0] if len(shapes) == 1 else shapes})") from error
            if yb is not None and self._loss_fns is not None:  # (a custom train_step may have no compiled loss)
                self._check_labels(ys, _output_shapes(y_pred))  # before the loss, which may index with a bad label
                self._compute_loss(yb, y_pred, None if sw is None else Tensor(sw[sl]), training=False)
                self._clear_losses()
            elif self._loss_fns is None and not any(self._overrides(step) for step in
                                                    ("train_step", "test_step", "compute_loss")):
                self._compute_loss(None, y_pred, training=False)  # raises now if add_loss() gives no loss either
        if self._metric_objects is None and yb is not None:
            self._build_metrics(ys, y_pred)
        return _output_shapes(y_pred)

    def _without_call(self):
        from dlgpu.models.model import Model
        return (not getattr(self, "_functional", False) and type(self).call is Model.call
                and (self._overrides("train_step") or self._overrides("test_step")))

    def _check_labels(self, ys, pred_shapes):
        """Sparse labels out of range anywhere in y are caught before the first step, not at batch 400."""
        if self._loss_fns is None or ys is None:
            return
        trues = self._targets_by_output(ys, len(pred_shapes))
        for fn, t, shape in zip(self._loss_fns, trues, pred_shapes):
            check = getattr(fn, "check_labels", None)
            if check is not None:
                check(t, shape)
            elif _is_sparse_crossentropy(fn):
                _check_sparse_labels(t, shape)

    # -- fit ------------------------------------------------------------------------------------
    def fit(self, x=None, y=None, batch_size=None, epochs=1, verbose="auto", callbacks=None, validation_split=0.0,
            validation_data=None, shuffle=True, class_weight=None, sample_weight=None, initial_epoch=0,
            steps_per_epoch=None, validation_steps=None, validation_batch_size=None, validation_freq=1):
        """Train for ``epochs`` epochs; returns a History whose ``.history`` maps each log name to a list.

        ``x`` (and ``validation_data``) may also hand out whole batches, ``(x, y)`` or
        ``(x, y, sample_weight)``, as Keras 3 allows: a dlgpu.data.Dataset (as a tf.data.Dataset: an epoch
        is one pass over it, or ``steps_per_epoch`` batches, which an infinite ``repeat()`` needs; it orders
        its elements itself, ``shuffle`` does not apply), a dlgpu.utils.PyDataset (an epoch is ``len(x)``
        batches, or ``steps_per_epoch``; the batch order is shuffled when ``shuffle`` is true) or an iterator
        such as a generator (an epoch is ``steps_per_epoch`` batches, or runs until the iterator ends;
        ``shuffle`` does not apply).  ``y``, ``sample_weight``, ``batch_size`` and ``validation_split`` are
        then errors, as in Keras."""
        self._check_compiled("fit")
        if x is None:
            raise ValueError("fit: `x` is required.")
        check_data_source(x, "x", "fit")
        if not isinstance(epochs, (int, np.integer)) or epochs < 0:
            raise ValueError(f"fit: `epochs` must be a non-negative integer; received epochs={epochs!r}")
        max_epochs = config_module.max_epochs()  # keras.config.set_max_epochs, a debugging cap
        if max_epochs and max_epochs < epochs:
            warnings.warn(f"Limiting epochs to {max_epochs}", stacklevel=2)
            epochs = max_epochs
        if not 0.0 <= float(validation_split) < 1.0:
            raise ValueError(f"fit: `validation_split` must be in [0, 1); received validation_split={validation_split}")
        if validation_data is not None and validation_split and not is_batch_stream(x):
            warnings.warn("fit: both validation_data and validation_split were given; validation_data is used.")
        rng = _host_generator()  # seeded by dlgpu.set_random_seed, so shuffling is reproducible
        if is_batch_stream(x):
            reject_with_stream(x, "x", "fit", batch_size, y, sample_weight, validation_split)
            stream = batch_stream(x, _capped_steps(steps_per_epoch), "steps_per_epoch", "x", "fit",
                                  rng if shuffle else None)
            checks = BatchChecks(self, "x", "fit", class_weight=class_weight,
                                 targets_optional=self._overrides("train_step"))
            steps = stream.steps
            split_validation = None

            def run_epoch(cbs, more_epochs):
                self._fit_stream_epoch(stream, checks, cbs, more_epochs)
        else:
            batch_size = check_batch_size(batch_size, "fit")
            xs, ys, sw, n = self._prepare(x, y, sample_weight, "fit")
            if ys is None and self._loss_fns is not None and not self._overrides("train_step"):
                raise ValueError("fit: `y` is required (targets for the loss).")
            split_validation = None
            if validation_split and validation_data is None:
                split_at = int(n * (1.0 - validation_split))
                if split_at == 0 or split_at == n:
                    raise ValueError(f"fit: validation_split={validation_split} leaves no training or validation "
                                     f"samples out of {n}")
                split_validation = (slice_structure(xs, slice(split_at, n)), slice_structure(ys, slice(split_at, n)),
                                    None if sw is None else sw[split_at:])
                xs, ys = slice_structure(xs, slice(0, split_at)), slice_structure(ys, slice(0, split_at))
                sw = None if sw is None else sw[:split_at]
                n = split_at
            if class_weight is not None:  # the training samples' weights only: validation is not re-weighted
                sw = class_weights_to_sample_weights(class_weight, ys, sw)
            self._dry_run(xs, ys, sw, batch_size)  # raises before any weight changes
            steps = _capped_steps(math.ceil(n / batch_size) if steps_per_epoch is None else int(steps_per_epoch))
            cursor = _PassCursor(n, batch_size, shuffle, rng)

            def run_epoch(cbs, more_epochs):  # arrays can be read again for as many epochs as asked
                self._fit_array_epoch(xs, ys, sw, cursor, steps, cbs)
        validate = self._validation(validation_data, split_validation, validation_steps, validation_batch_size,
                                    batch_size, validation_freq, initial_epoch, epochs)

        verbose = 1 if verbose == "auto" else int(verbose)
        history = callbacks_module.History()
        cbs = callbacks_module.CallbackList(callbacks, add_history=history, add_progbar=verbose != 0, model=self,
                                            verbose=verbose, epochs=epochs, steps=steps)
        self.stop_training = False
        self.history = history
        try:
            self._train_epochs(run_epoch, validate, validation_freq, initial_epoch, epochs, cbs)
        finally:
            self._step_variables = None
            cbs.close()  # a run that raised leaves no half-drawn progress bar behind
        return history

    def _validation(self, validation_data, split_validation, validation_steps, validation_batch_size, batch_size,
                    validation_freq, initial_epoch, epochs):
        """A function returning the validation logs, with the data checked now (before training), or None."""
        what = "fit (validation_data)"
        if validation_data is not None and is_batch_stream(validation_data):
            reject_with_stream(validation_data, "validation_data", "fit", validation_batch_size,
                               batch_size_name="validation_batch_size")
            runs = sum((epoch + 1) % validation_freq == 0 for epoch in range(initial_epoch, epochs))
            if not is_restartable(validation_data) and validation_steps is None and runs > 1:
                raise ValueError(f"fit: `validation_data` is an iterator without `validation_steps`: the first "
                                 f"validation would read it to its end and the other {runs - 1} would find it "
                                 f"empty. Pass validation_steps (and an iterator that yields that many batches "
                                 f"for every validation, e.g. one that loops), or a dlgpu.utils.PyDataset.")
            stream = batch_stream(validation_data, _capped_steps(validation_steps), "validation_steps",
                                  "validation_data", what)
            checks = BatchChecks(self, "validation_data", what, targets_optional=self._overrides("test_step"))
            return lambda cbs: self._evaluate_stream(stream, checks, cbs)
        if validation_data is not None:
            check_data_source(validation_data, "validation_data", "fit",
                              arrays="a tuple (x_val, y_val) or (x_val, y_val, val_sample_weight)")
            vx, vy, vsw = unpack_validation(validation_data)
            xs, ys, sw, _ = self._prepare(vx, vy, vsw, what)
        elif split_validation is not None:
            xs, ys, sw = split_validation
        else:
            return None
        first = self(self._to_device(slice_structure(xs, slice(0, 1)), self._device()), training=False)
        self._check_labels(ys, _output_shapes(first))
        batch_size = check_batch_size(validation_batch_size or batch_size, "fit")
        check_steps(validation_steps, "validation_steps", what)
        steps = _array_steps(length(xs), batch_size, validation_steps, "validation_steps", what)
        return lambda cbs: self._evaluate_prepared(xs, ys, sw, batch_size, cbs, steps)

    def _train_epochs(self, run_epoch, validate, validation_freq, initial_epoch, epochs, cbs):
        cbs.on_train_begin()
        # As Keras: a callback that restored a backup (BackupAndRestore) says where to resume; read once.
        resume_at, self._initial_epoch = getattr(self, "_initial_epoch", None), None
        initial_epoch = resume_at or initial_epoch
        logs = {}
        for epoch in range(initial_epoch, epochs):
            self._reset_metrics()
            cbs.on_epoch_begin(epoch)
            # Refreshed each epoch (callbacks may (un)freeze layers); set past Layer.__setattr__, which would
            # otherwise track these variables as the model's own.
            object.__setattr__(self, "_step_variables", self.trainable_variables)
            run_epoch(cbs, more_epochs=epoch + 1 < epochs)
            logs = self._logs()
            if validate is not None and (epoch + 1) % validation_freq == 0:
                # As Keras (fit runs evaluate with its own CallbackList): the test hooks fire, with evaluate's
                # unprefixed logs, before on_epoch_end sees them as val_*.
                cbs.on_test_begin()
                val_logs = validate(cbs)
                cbs.on_test_end(val_logs)
                logs.update({f"val_{k}": v for k, v in val_logs.items()})
            cbs.on_epoch_end(epoch, logs)
            if self.stop_training:
                break
        if epochs > initial_epoch:  # Keras: with use_ema the weights end as their moving averages
            self.optimizer.finalize_variable_values(self.trainable_variables)
        cbs.on_train_end(logs)

    def _fit_array_epoch(self, xs, ys, sw, cursor, steps, cbs):
        dev = self._device()
        for step in range(steps):
            index = cursor.next_batch()
            if index is None:
                # as Keras's epoch iterator: steps_per_epoch asked for more batches than this pass had left
                warnings.warn("Your input ran out of data; interrupting training. Make sure that your dataset "
                              "or generator can generate at least `steps_per_epoch * epochs` batches.",
                              stacklevel=4)
                break
            cbs.on_train_batch_begin(step)
            xb = self._to_device(xs, dev, index)
            yb = self._to_device(ys, dev, index)
            swb = None if sw is None else Tensor(_device.to_device(sw[index], dev) if dev.kind != "cpu" else sw[index])
            self._run_train_batch(xb, yb, swb)
            cbs.on_train_batch_end(step, self._logs)
            if self.stop_training:
                break
        cursor.end_epoch()

    def _fit_stream_epoch(self, stream, checks, cbs, more_epochs):
        dev = self._device()
        for step, batch in enumerate(stream.epoch()):
            cbs.on_train_batch_begin(step)
            xs, ys, sw = checks(batch)  # raises before this batch changes any weight
            xb, yb = self._to_device(xs, dev), self._to_device(ys, dev)
            swb = None if sw is None else self._to_device(sw, dev)
            self._run_train_batch(xb, yb, swb)
            cbs.on_train_batch_end(step, self._logs)
            if self.stop_training:
                break
        stream.end_epoch()
        # An iterator cannot be rewound: once used up, the epochs still to come would have nothing to train on.
        if stream.finished and (stream.steps is not None or more_epochs):
            if stream.steps is None:
                warnings.warn("fit: `x` is used up after this epoch, so training stops here. To train several "
                              "epochs on an iterator, pass steps_per_epoch and an iterator that yields that many "
                              "batches for every epoch (e.g. one that loops), or use a dlgpu.utils.PyDataset.",
                              stacklevel=5)  # the caller of fit
            self.stop_training = True

    # -- evaluate / predict ---------------------------------------------------------------------
    def _reset_test_metrics(self):
        self._reset_metrics()
        for tracker in (getattr(self, "_output_loss_trackers", None) or {}).values():
            tracker.reset_state()

    def _evaluate_prepared(self, xs, ys, sw, batch_size, cbs=None, steps=None):
        n = length(xs)
        dev = self._device()
        self._reset_test_metrics()
        steps = math.ceil(n / batch_size) if steps is None else steps
        for step in range(steps):
            index = slice(step * batch_size, (step + 1) * batch_size)
            if cbs is not None:
                cbs.on_test_batch_begin(step)
            xb = self._to_device(xs, dev, index)
            yb = self._to_device(ys, dev, index)
            swb = None if sw is None else Tensor(_device.to_device(sw[index], dev) if dev.kind != "cpu" else sw[index])
            self._run_test_batch(xb, yb, swb)
            if cbs is not None:
                cbs.on_test_batch_end(step, self._logs)
        return self._logs()

    def _evaluate_stream(self, stream, checks, cbs=None):
        dev = self._device()
        self._reset_test_metrics()
        stream.restart()  # as Keras's evaluate, each validation reads from the start (an iterator cannot)
        for step, batch in enumerate(stream.epoch()):
            if cbs is not None:
                cbs.on_test_batch_begin(step)
            xs, ys, sw = checks(batch)
            xb, yb = self._to_device(xs, dev), self._to_device(ys, dev)
            swb = None if sw is None else self._to_device(sw, dev)
            self._run_test_batch(xb, yb, swb)
            if cbs is not None:
                cbs.on_test_batch_end(step, self._logs)
        stream.end_epoch()
        return self._logs()

    def evaluate(self, x=None, y=None, batch_size=None, verbose="auto", sample_weight=None, steps=None,
                 callbacks=None, return_dict=False):
        """Loss (and metrics) on the data: a float, or [loss, metric…], or a dict with return_dict=True.

        ``x`` may be a dlgpu.data.Dataset, a dlgpu.utils.PyDataset or an iterator of ``(x, y)`` batches, as in
        fit: one pass (``len(x)`` batches), or ``steps``, or up to the iterator's end."""
        self._check_compiled("evaluate")
        check_data_source(x, "x", "evaluate")
        if is_batch_stream(x):
            reject_with_stream(x, "x", "evaluate", batch_size, y, sample_weight)
            stream = batch_stream(x, _capped_steps(steps), "steps", "x", "evaluate")
            checks = BatchChecks(self, "x", "evaluate", targets_optional=self._overrides("test_step"))
            n_steps = stream.steps

            def run(cbs):
                return self._evaluate_stream(stream, checks, cbs)
        else:
            batch_size = check_batch_size(batch_size, "evaluate")
            xs, ys, sw, n = self._prepare(x, y, sample_weight, "evaluate")
            if ys is None and self._loss_fns is not None and not self._overrides("test_step"):
                raise ValueError("evaluate: `y` is required.")
            self._dry_run(xs, ys, sw, batch_size)
            check_steps(steps, "steps", "evaluate")
            n_steps = _array_steps(n, batch_size, steps, "steps", "evaluate")

            def run(cbs):
                return self._evaluate_prepared(xs, ys, sw, batch_size, cbs, n_steps)
        verbose = 1 if verbose == "auto" else int(verbose)
        cbs = callbacks_module.CallbackList(callbacks, add_progbar=verbose != 0, model=self, verbose=verbose,
                                            epochs=1, steps=n_steps, mode="test")
        cbs.on_test_begin()
        try:
            logs = run(cbs)
            cbs.on_test_end(logs)  # before close: the progress bar shows the results it ends with
        finally:
            cbs.close()
        if return_dict:
            return logs
        # Keras's order: the model's metric names first, then any other entry a custom test_step returned,
        # sorted by name
        names = [n for n in self.metrics_names if n in logs]
        values = [logs[n] for n in names] + [logs[k] for k in sorted(logs) if k not in names]
        return values[0] if len(values) == 1 else values

    def predict(self, x, batch_size=None, verbose="auto", steps=None, callbacks=None):
        """Outputs for x, in batches, as numpy arrays (a list of them for multi-output models, a dict for
        a model built with a dict of outputs).

        ``x`` may be a dlgpu.data.Dataset, a dlgpu.utils.PyDataset or an iterator of batches (``x`` or a tuple
        whose first entry is x; targets are ignored): one pass (``len(x)`` batches), or ``steps``, or up to the
        iterator's end."""
        check_data_source(x, "x", "predict")
        if is_batch_stream(x):
            reject_with_stream(x, "x", "predict", batch_size)
            stream = batch_stream(x, _capped_steps(steps), "steps", "x", "predict")
            n_steps = stream.steps

            def run(cbs):
                return self._predict_stream(stream, cbs)
        else:
            batch_size = check_batch_size(batch_size, "predict")
            xs, _, _, n = self._prepare(x, None, None, "predict")
            check_steps(steps, "steps", "predict")
            n_steps = _array_steps(n, batch_size, steps, "steps", "predict")

            def run(cbs):
                return self._predict_arrays(xs, batch_size, n_steps, cbs)
        verbose = 1 if verbose == "auto" else int(verbose)
        cbs = callbacks_module.CallbackList(callbacks, add_progbar=verbose != 0, model=self, verbose=verbose,
                                            epochs=1, steps=n_steps, mode="predict")
        cbs.on_predict_begin()
        try:
            with no_grad():
                chunks, out = run(cbs)
        finally:
            cbs.close()
        cbs.on_predict_end()
        outputs = [np.concatenate([c[i] for c in chunks]) for i in range(len(chunks[0]))]
        # In the model's own output structure, nested ones included (Keras: a dict stays a dict, a list of
        # (output, kernel) pairs stays one).
        return _structured_like(out, outputs)

    def _predict_arrays(self, xs, batch_size, n_steps, cbs):
        dev = self._device()
        chunks = []
        for step in range(n_steps):
            cbs.on_predict_batch_begin(step)
            index = slice(step * batch_size, (step + 1) * batch_size)
            out = self._predict_batch(self._to_device(xs, dev, index))
            chunks.append(_host_outputs(out))
            cbs.on_predict_batch_end(step, {"outputs": _structured_like(out, chunks[-1])})
        return chunks, out

    def _predict_stream(self, stream, cbs):
        dev = self._device()
        chunks = []
        for step, batch in enumerate(stream.epoch()):
            cbs.on_predict_batch_begin(step)
            xs = prepare_host_data(unpack_batch(materialize(batch), "x", "predict")[0], what="predict (a batch of `x`)",
                                   strings=self._takes_strings())[0]
            out = self._predict_batch(self._to_device(xs, dev))
            chunks.append(_host_outputs(out))
            cbs.on_predict_batch_end(step, {"outputs": _structured_like(out, chunks[-1])})
        stream.end_epoch()
        return chunks, out

    def train_on_batch(self, x, y=None, sample_weight=None, class_weight=None, return_dict=False):
        self._check_compiled("train_on_batch")
        xs, ys, sw, _ = self._prepare(x, y, sample_weight, "train_on_batch")
        if class_weight is not None:
            sw = class_weights_to_sample_weights(class_weight, ys, sw)
        self._dry_run(xs, ys, sw, length(xs))
        dev = self._device()
        self._reset_metrics()
        xb, yb = self._to_device(xs, dev), self._to_device(ys, dev)
        swb = None if sw is None else self._to_device(sw, dev)
        self._run_train_batch(xb, yb, swb)
        return _format_logs(self._logs(), return_dict)

    def test_on_batch(self, x, y=None, sample_weight=None, return_dict=False):
        self._check_compiled("test_on_batch")
        xs, ys, sw, _ = self._prepare(x, y, sample_weight, "test_on_batch")
        self._dry_run(xs, ys, sw, length(xs))
        dev = self._device()
        self._reset_metrics()
        xb, yb = self._to_device(xs, dev), self._to_device(ys, dev)
        self._run_test_batch(xb, yb, None if sw is None else self._to_device(sw, dev))
        return _format_logs(self._logs(), return_dict)

    def predict_on_batch(self, x):
        xs, _, _, _ = self._prepare(x, None, None, "predict_on_batch")
        with no_grad():
            out = self._predict_batch(self._to_device(xs, self._device()))  # a custom predict_step too, as Keras
        return _structured_like(out, _host_outputs(out))


_SPARSE_CE_NAMES = {"sparse_categorical_crossentropy", "SparseCategoricalCrossentropy"}


def _output_shapes(y_pred):
    return [p.shape for p in flatten(y_pred)]  # a dict of outputs flattens in output order


def _is_sparse_crossentropy(fn):
    """A sparse categorical cross-entropy, given as a function or a loss object (which may wrap one)."""
    inner = getattr(fn, "fn", None)
    names = {getattr(fn, "__name__", None), type(fn).__name__, getattr(fn, "name", None),
             getattr(inner, "__name__", None)}
    return bool(names & _SPARSE_CE_NAMES)


def _check_sparse_labels(labels, pred_shape):
    """For a sparse cross-entropy given as a plain function: the loss classes' own whole-array check."""
    losses_module.sparse_labels(labels, pred_shape[-1], "sparse_categorical_crossentropy", pred_shape)


def _host_generator():
    from dlgpu.ops.nn import _generator
    return _generator(np)


def _array_steps(n, batch_size, steps, steps_name, what):
    """The batches evaluate/predict/validation take from arrays of n samples: one pass, or the first
    ``steps`` of it; as Keras, asking for more than the pass holds stops at its end, with a warning."""
    batches = math.ceil(n / batch_size)
    if steps is not None and steps > batches:
        warnings.warn(f"{what}: the arrays ran out of batches after {batches} of {steps_name}={steps} "
                      f"({n} samples, batch size {batch_size}).", stacklevel=3)
    return _capped_steps(batches if steps is None else min(int(steps), batches))


class _PassCursor:
    """Where fit is in its pass over arrays, kept across epochs as Keras's epoch iterator keeps it: an
    epoch of ``steps_per_epoch`` batches shorter than the pass leaves the rest to the next epoch, and a new
    pass (with a new permutation when shuffling) starts only once this one is used up."""

    def __init__(self, n, batch_size, shuffle, rng):
        self.n, self.batch_size, self.rng = n, batch_size, rng
        self.num_batches = math.ceil(n / batch_size)
        # "batch" (Keras: shuffle inside each batch) leaves every batch's samples, hence its gradient, as is
        self.permute = bool(shuffle) and shuffle != "batch"
        self.order, self.batch = None, None

    def next_batch(self):
        """The next batch's sample index (a slice or an index array), or None when the pass is used up."""
        if self.batch is None:
            self.order = self.rng.permutation(self.n) if self.permute else None
            self.batch = 0
        if self.batch >= self.num_batches:
            return None
        start = self.batch * self.batch_size
        self.batch += 1
        return slice(start, start + self.batch_size) if self.order is None else self.order[start:start + self.batch_size]

    def end_epoch(self):
        if self.batch is not None and self.batch >= self.num_batches:
            self.batch = None


def _check_metric_names(specs):
    """Unknown metric strings fail at compile, as unknown losses and optimizers do (the metric objects
    themselves are made on the first batch, when 'accuracy' can be resolved from the output shapes)."""
    if isinstance(specs, dict):
        specs = list(specs.values())
    for spec in flatten(specs) if specs is not None else []:
        if isinstance(spec, str) and spec not in ("accuracy", "acc"):
            metrics_module.get(spec)


def _format_logs(logs, return_dict):
    if return_dict:
        return logs
    values = list(logs.values())
    return values[0] if len(values) == 1 else values


def _log_value(result):
    """A metric's result for the logs: a float, or a numpy array for a per-class metric (F1Score with
    average=None), as Keras logs it."""
    value = np.asarray(result.numpy() if isinstance(result, Tensor) else result)
    return float(value) if value.ndim == 0 else value


def _accepts_training(method):
    import inspect
    try:
        params = inspect.signature(method).parameters
    except (TypeError, ValueError):
        return True
    return "training" in params or any(p.kind is p.VAR_KEYWORD for p in params.values())


def _unpack_data(data):
    """(x, y, sample_weight) from Keras's ``data``: (x,), (x, y), (x, y, sample_weight) or x alone."""
    return unpack_x_y_sample_weight(data)


def _pack_data(x, y, sample_weight):
    """Keras's pack_x_y_sample_weight: x alone stays itself (fit(images) hands train_step the images, as the
    VAE example expects); a list of inputs becomes (x,), so that it cannot be read as (x, y)."""
    return pack_x_y_sample_weight(x, y, sample_weight)


def _logs_as_values(logs):
    """A custom step's returned logs as fit reports them: floats (arrays for per-class metrics)."""
    if not isinstance(logs, dict):
        raise TypeError(f"train_step/test_step must return a dict of logs (name -> value), as in Keras; "
                        f"returned {type(logs).__name__}")
    return {name: _log_value(value) for name, value in logs.items()}


def _host_outputs(outputs):
    """A batch's outputs as numpy arrays (a custom predict_step may return numpy arrays itself)."""
    return [o.numpy() if isinstance(o, Tensor) else np.asarray(o) for o in flatten(outputs)]


def _structured_like(outputs, host):
    """The host arrays (``flatten(outputs)`` order) arranged as the model returned them, nesting included:
    Keras gives predict's result and on_predict_batch_end's ``logs["outputs"]`` that structure."""
    leaves = iter(host)

    def pack(node):
        if isinstance(node, dict):
            return {key: pack(value) for key, value in node.items()}
        if isinstance(node, list):
            return [pack(item) for item in node]
        if isinstance(node, tuple):
            items = [pack(item) for item in node]
            return type(node)(*items) if hasattr(type(node), "_fields") else tuple(items)  # a namedtuple
        return next(leaves)
    return pack(outputs)
