"""keras.distillation.Distiller: a Model that trains a student against a frozen teacher.

It is an ordinary subclassed Model: ``call`` is the student's, and ``compute_loss`` (which the one training
loop, dlgpu/models/training.py, calls for fit and evaluate) mixes the student's supervised loss with the
distillation losses, as Keras 3.15's Distiller does:

    total = student_loss_weight * student_loss + (1 - student_loss_weight) * sum_i w_i * distillation_loss_i

The teacher runs without recording gradients (it is frozen: nothing of it is trained).
"""

from __future__ import annotations

from dlgpu import metrics, ops, tree
from dlgpu.autograd import no_grad
from dlgpu.distillation import distillation_loss as distillation_losses_module
from dlgpu.distillation.distillation_loss import DistillationLoss, _convert_loss_to_function
from dlgpu.layers import register
from dlgpu.models.model import Model
from dlgpu.models.sequential import Sequential


def _symbolic(model, which):
    """A model's symbolic inputs or outputs, or None for a subclassed or unbuilt one."""
    return getattr(model, which, None) or None


class Distiller(Model):
    """Train ``student`` to follow ``teacher`` (frozen here: ``teacher.trainable`` becomes False).

    Arguments (as Keras): ``distillation_losses`` one DistillationLoss or a list of them;
    ``distillation_loss_weights`` one weight each (default 1.0 each); ``student_loss_weight`` in [0, 1], the
    share of the student's supervised loss (compile's ``loss``) in the total.  fit/evaluate log ``loss``,
    the compiled metrics, ``student_loss``, ``distillation_loss`` and ``total_loss``.  Sample weights (and
    class_weight) weight the student's supervised loss; the distillation losses are batch means."""

    def __init__(self, teacher, student, distillation_losses, distillation_loss_weights=None, student_loss_weight=0.5,
                 name="distiller", **kwargs):
        super().__init__(name=name, **kwargs)
        self._validate_models(teacher, student)
        self.teacher = teacher
        self.student = student
        if isinstance(student_loss_weight, bool) or not isinstance(student_loss_weight, (int, float)):
            raise ValueError(f"student_loss_weight must be a number, got {type(student_loss_weight)}")
        if not 0.0 <= student_loss_weight <= 1.0:
            raise ValueError(f"student_loss_weight must be between 0.0 and 1.0, got {student_loss_weight}")
        self.student_loss_weight = student_loss_weight
        if distillation_losses is None:
            raise ValueError("'distillation_losses' cannot be `None`. Provide a distillation loss (e.g., "
                             "LogitsDistillation or FeatureDistillation) or a list of distillation losses.")
        if not isinstance(distillation_losses, (list, tuple)):
            distillation_losses, distillation_loss_weights = [distillation_losses], [1.0]
        elif distillation_loss_weights is None:
            distillation_loss_weights = [1.0] * len(distillation_losses)
        elif len(distillation_loss_weights) != len(distillation_losses):
            raise ValueError(f"Number of distillation_loss_weights ({len(distillation_loss_weights)}) must match "
                             f"number of distillation_losses ({len(distillation_losses)})")
        for loss in distillation_losses:
            if not isinstance(loss, DistillationLoss):
                raise ValueError(f"Distiller: each of `distillation_losses` must be a DistillationLoss (such as "
                                 f"LogitsDistillation or FeatureDistillation); received {loss!r}")
            loss.validate_model_compatibility(teacher, student)
        # plain lists past the layer tracking (they hold no layers), as Keras's are
        object.__setattr__(self, "distillation_losses", list(distillation_losses))
        object.__setattr__(self, "distillation_loss_weights", list(distillation_loss_weights))
        self._create_multi_feature_extractors()
        self.teacher.trainable = False
        self.student_loss_tracker = metrics.Mean(name="student_loss")
        self.distillation_loss_tracker = metrics.Mean(name="distillation_loss")
        self.total_loss_tracker = metrics.Mean(name="total_loss")
        self._student_loss = None

    # -- checks made once, at creation --------------------------------------------------------------
    def _validate_models(self, teacher, student):
        if not isinstance(teacher, Model):
            raise ValueError(f"Teacher must be a keras.Model, got {type(teacher)}")
        if not isinstance(student, Model):
            raise ValueError(f"Student must be a keras.Model, got {type(student)}")
        for which in ("inputs", "outputs"):
            ours, theirs = _symbolic(teacher, which), _symbolic(student, which)
            if ours is None or theirs is None:
                continue
            context = which[:-1]
            tree.map_structure(lambda t, s: self._assert_shapes_are_compatible(t.shape, s.shape, context),
                               ours, theirs)
            tree.map_structure(lambda t, s: self._assert_same_dtype(t.dtype, s.dtype, context), ours, theirs)

    def _assert_shapes_are_compatible(self, shape1, shape2, context):
        if len(shape1) != len(shape2):
            raise ValueError(f"Teacher and student {context} shapes have different dimensions. Teacher: {shape1}, "
                             f"Student: {shape2}.")
        if any(a is not None and b is not None and a != b for a, b in zip(shape1, shape2)):
            raise ValueError(f"Teacher and student {context} shapes are incompatible. Teacher: {shape1}, "
                             f"Student: {shape2}. All dimensions must match.")

    def _assert_same_dtype(self, teacher_dtype, student_dtype, context):
        if teacher_dtype != student_dtype:
            raise ValueError(f"Teacher and student {context} dtypes must match. Teacher: {teacher_dtype}, "
                             f"Student: {student_dtype}.")

    # -- intermediate features ------------------------------------------------------------------
    def _create_multi_feature_extractors(self):
        """One functional model per side returning the final output and every named layer's output, so
        that all the features of a batch come from one forward pass."""
        teacher_names, student_names = [], []
        for loss in self.distillation_losses:
            for attribute, names in (("teacher_layer_name", teacher_names), ("student_layer_name", student_names)):
                name = getattr(loss, attribute, None)
                if name and name not in names:
                    names.append(name)
        self._teacher_feature_extractor = self._create_feature_extractor(self.teacher, teacher_names)
        self._student_feature_extractor = self._create_feature_extractor(self.student, student_names)

    def _create_feature_extractor(self, model, layer_names):
        if not layer_names:
            return None
        if not _symbolic(model, "inputs"):
            raise ValueError(f"Cannot create feature extractor for {model.name}. The model has no symbolic inputs "
                             f"attribute.")
        final_output = model.layers[-1].output if isinstance(model, Sequential) else model.output
        outputs = {"final_output": final_output}
        for name in layer_names:
            outputs[name] = model.get_layer(name=name).output
        return Model(inputs=model.inputs, outputs=outputs, name=f"{model.name}_multi_feature_extractor")

    def _extract_all_teacher_features(self, x):
        # the teacher is frozen: no tape records its forward pass
        with no_grad():
            if self._teacher_feature_extractor is not None:
                return self._teacher_feature_extractor(x, training=False)
            return {"final_output": self.teacher(x, training=False)}

    def _extract_all_student_features(self, x, y_pred):
        if self._student_feature_extractor is not None:
            return self._student_feature_extractor(x, training=True)
        return {"final_output": y_pred}

    def _get_distillation_loss_features(self, distillation_loss, all_features, is_teacher):
        attribute = "teacher_layer_name" if is_teacher else "student_layer_name"
        layer_name = getattr(distillation_loss, attribute, None) or "final_output"
        if layer_name not in all_features:
            raise ValueError(f"Layer '{layer_name}' not found in extracted features. Available: "
                             f"{list(all_features.keys())}")
        return all_features[layer_name]

    # -- training ---------------------------------------------------------------------------------
    def compile(self, optimizer="adam", loss=None, metrics=None, **kwargs):
        """``loss`` is the student's supervised loss (required, as in Keras); it does not go to the built-in
        loss of Model.compile, since compute_loss combines it with the distillation losses."""
        if loss is None:
            raise ValueError("'loss' cannot be `None`.")
        if metrics is not None and not isinstance(metrics, (list, tuple)):
            raise ValueError(f"metrics must be a list or tuple, got {type(metrics)}")
        student_loss = tree.map_structure(_convert_loss_to_function, loss)
        super().compile(optimizer=optimizer, loss=None, metrics=metrics, **kwargs)
        self._student_loss = student_loss
        self._loss_config = loss  # what model.save keeps of compile(), so that load_model compiles it again

    def call(self, inputs, training=None, **kwargs):
        return self.student(inputs, training=training, **kwargs)

    def _student_loss_value(self, y, y_pred, sample_weight):
        from dlgpu import losses
        values = tree.map_structure(lambda fn, t, p: losses.as_loss(fn)(t, p, sample_weight=sample_weight),
                                    self._student_loss, y, y_pred)
        value = distillation_losses_module._total(tree.flatten(values))
        return ops.mean(value) if len(getattr(value, "shape", ())) else value

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        if self._student_loss is None:
            raise RuntimeError(f"Distiller '{self.name}' is not compiled: call compile(optimizer, loss, metrics) "
                               f"first (loss is the student's supervised loss).")
        if y_pred is None:
            y_pred = self(x, training=training)
        student_loss = 0.0
        if self.student_loss_weight > 0.0 and y is not None:
            student_loss = self._student_loss_value(y, y_pred, sample_weight)
        distillation_loss = 0.0
        if self.student_loss_weight < 1.0:
            teacher_features = self._extract_all_teacher_features(x)
            student_features = self._extract_all_student_features(x, y_pred)
            for loss_fn, weight in zip(self.distillation_losses, self.distillation_loss_weights):
                if getattr(loss_fn, "teacher_layer_name", None) is not None:
                    try:
                        teacher_output = self._get_distillation_loss_features(loss_fn, teacher_features, True)
                        student_output = self._get_distillation_loss_features(loss_fn, student_features, False)
                    except ValueError as error:
                        raise RuntimeError(f"Failed to extract features for {type(loss_fn).__name__} targeting "
                                           f"teacher layer '{loss_fn.teacher_layer_name}' and student layer "
                                           f"'{loss_fn.student_layer_name}'. Original error: {error}") from error
                else:
                    teacher_output, student_output = teacher_features["final_output"], y_pred
                loss_fn.validate_outputs(teacher_output, student_output)
                value = loss_fn.compute_loss(teacher_output, student_output)
                if len(getattr(value, "shape", ())) > 0:
                    raise ValueError(f"Distillation loss {type(loss_fn).__name__} returned a non-scalar loss with "
                                     f"shape {tuple(value.shape)}. The compute_loss method must return a scalar "
                                     f"tensor.")
                distillation_loss = distillation_loss + weight * value
        total_loss = (self.student_loss_weight * student_loss
                      + (1.0 - self.student_loss_weight) * distillation_loss)
        if not hasattr(total_loss, "shape"):
            # student_loss_weight 1 without targets (or 0 with no distillation term): nothing depends on
            # the weights, and a float has no gradient
            total_loss = ops.convert_to_tensor(float(total_loss))
        self.student_loss_tracker.update_state(student_loss)
        self.distillation_loss_tracker.update_state(distillation_loss)
        self.total_loss_tracker.update_state(total_loss)
        return total_loss

    def reset_metrics(self):
        for metric in self.metrics:
            metric.reset_state()

    # -- config -----------------------------------------------------------------------------------
    def get_config(self):
        from dlgpu.saving import serialize_keras_object
        return {"name": self.name, "trainable": self.trainable,
                "teacher": serialize_keras_object(self.teacher),
                "student": serialize_keras_object(self.student),
                "distillation_losses": [_serialize_distillation_loss(loss) for loss in self.distillation_losses],
                "distillation_loss_weights": list(self.distillation_loss_weights),
                "student_loss_weight": self.student_loss_weight}

    @classmethod
    def from_config(cls, config, custom_objects=None):
        from dlgpu.saving import deserialize_keras_object
        config = dict(config)
        config.pop("dtype", None)  # Keras writes its dtype policy; dlgpu models are float32
        config["teacher"] = deserialize_keras_object(config["teacher"], custom_objects)
        config["student"] = deserialize_keras_object(config["student"], custom_objects)
        config["distillation_losses"] = [_deserialize_distillation_loss(entry, custom_objects)
                                         for entry in config["distillation_losses"]]
        return cls(**config)


def _serialize_distillation_loss(loss):
    if not hasattr(loss, "get_config"):
        raise NotImplementedError(f"Distiller.get_config: distillation loss {type(loss).__name__} has no "
                                  f"get_config(), so the Distiller cannot be saved; give it get_config() (and "
                                  f"from_config, if its arguments need it).")
    return {"module": "keras.distillation", "class_name": type(loss).__name__, "config": loss.get_config(),
            "registered_name": None}


def _deserialize_distillation_loss(entry, custom_objects=None):
    from dlgpu.saving import get_registered_object
    if isinstance(entry, DistillationLoss):
        return entry
    name = entry.get("class_name")
    found = getattr(distillation_losses_module, name, None) if isinstance(name, str) else None
    if not (isinstance(found, type) and issubclass(found, DistillationLoss)):
        found = get_registered_object(entry.get("registered_name") or name, custom_objects) \
            or get_registered_object(name, custom_objects)
    if found is None:
        raise ValueError(f"Unknown distillation loss class {name!r}: pass it in custom_objects or register it with "
                         f"dlgpu.saving.register_keras_serializable.")
    config = entry.get("config") or {}
    return found.from_config(config) if hasattr(found, "from_config") else found(**config)


register(Distiller)
