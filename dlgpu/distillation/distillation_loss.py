"""keras.distillation's losses: what the student is pushed towards, given the teacher's outputs.

As Keras 3.15: a DistillationLoss turns (teacher outputs, student outputs) into one scalar; the Distiller
(distiller.py) decides which outputs each loss sees (the final ones, or an intermediate layer's by name).
"""

from __future__ import annotations

from dlgpu import losses, ops, tree


def _convert_loss_to_function(loss_item):
    """A loss identifier (a name, a Loss, a function) as something callable, or None (no loss there)."""
    if loss_item is None:
        return None
    if isinstance(loss_item, str):
        return losses.get(loss_item)  # raises, naming the valid names, for an unknown one
    if not callable(loss_item):
        raise ValueError(f"A distillation loss must be a loss name, a Loss instance, a function or None; "
                         f"received {loss_item!r}")
    return loss_item


def _serialize_losses(structure):
    from dlgpu.saving import serialize_keras_object
    return serialize_keras_object(structure)


def _deserialize_losses(config):
    """serialize_keras_object's output of a loss, or of a list/dict of them with None entries, back."""
    if config is None or isinstance(config, str):  # a name: __init__ resolves it
        return config
    if isinstance(config, dict) and "class_name" in config:
        return losses.deserialize(config)
    if isinstance(config, dict):
        return {k: _deserialize_losses(v) for k, v in config.items()}
    if isinstance(config, (list, tuple)):
        return [_deserialize_losses(c) for c in config]
    return config


def _is_kl_divergence(loss_fn):
    # Keras 3.15 checks isinstance(loss_fn, KLDivergence) only, so its default loss="kl_divergence" (a
    # function there) skips the softmax and compares clipped logits; its docstring and earlier releases
    # (a name check) softmax for KL in every form, which is what dlgpu does.
    return isinstance(loss_fn, losses.KLDivergence) or loss_fn is losses.kl_divergence


def _total(values):
    """The sum of the scalar losses (None entries skipped); 0.0 when every entry is None."""
    present = [v for v in values if v is not None]
    if not present:
        return 0.0
    total = present[0]
    for value in present[1:]:
        total = total + value
    return total


class DistillationLoss:
    """Base class of the distillation losses: override ``compute_loss(teacher_outputs, student_outputs)``,
    returning a scalar."""

    def compute_loss(self, teacher_outputs, student_outputs, **kwargs):
        raise NotImplementedError(f"{type(self).__name__} must implement compute_loss(teacher_outputs, "
                                  f"student_outputs, **kwargs)")

    def validate_outputs(self, teacher_outputs, student_outputs):
        """Raise ValueError unless the teacher's and the student's outputs nest the same way."""
        tree.assert_same_structure(teacher_outputs, student_outputs)

    def validate_model_compatibility(self, teacher, student):
        """Raise ValueError if this loss cannot work with these models (the Distiller calls it at creation)."""


class FeatureDistillation(DistillationLoss):
    """Match the student's features to the teacher's: the final outputs, or the outputs of the layers named
    ``teacher_layer_name`` / ``student_layer_name`` (Sequential or functional models only).

    ``loss``: a name ("mse", "cosine_similarity", ...), a Loss, or a nested structure of them matching the
    features, with None for features left out (at least one must be set)."""

    def __init__(self, loss="mse", teacher_layer_name=None, student_layer_name=None):
        self.teacher_layer_name = teacher_layer_name
        self.student_layer_name = student_layer_name
        self.loss = tree.map_structure(_convert_loss_to_function, loss)
        if all(entry is None for entry in tree.flatten(self.loss)):
            raise ValueError("The `loss` argument in `FeatureDistillation` must contain at least one non-`None` "
                             "value.")

    def validate_model_compatibility(self, teacher, student):
        if self.teacher_layer_name is not None or self.student_layer_name is not None:
            subclassed = [role for role, model in (("teacher", teacher), ("student", student))
                          if not getattr(model, "inputs", None)]
            if subclassed:
                raise ValueError(f"FeatureDistillation with specific layer names requires Functional or Sequential "
                                 f"models. The {' and '.join(subclassed)} model(s) appear to be subclassed (no "
                                 f"symbolic inputs/outputs). Either use Functional/Sequential models, or use "
                                 f"FeatureDistillation without layer names (to distill final outputs only), or use "
                                 f"LogitsDistillation instead.")
        for role, model, name in (("teacher", teacher, self.teacher_layer_name),
                                  ("student", student, self.student_layer_name)):
            if name is not None:
                try:
                    model.get_layer(name=name)
                except ValueError as error:
                    raise ValueError(f"In {role} model: {error}") from None

    def validate_outputs(self, teacher_outputs, student_outputs):
        super().validate_outputs(teacher_outputs, student_outputs)
        try:
            tree.assert_same_structure(self.loss, teacher_outputs)
        except ValueError as error:
            raise ValueError(f"Loss structure mismatch: FeatureDistillation's `loss` does not nest as the features "
                             f"do. {error}") from None

    def compute_loss(self, teacher_outputs, student_outputs, **kwargs):
        def apply_loss(loss_fn, teacher_features, student_features):
            if loss_fn is None:
                return None
            return ops.mean(loss_fn(teacher_features, student_features))
        return _total(tree.flatten(tree.map_structure(apply_loss, self.loss, teacher_outputs, student_outputs)))

    def get_config(self):
        return {"loss": _serialize_losses(self.loss), "teacher_layer_name": self.teacher_layer_name,
                "student_layer_name": self.student_layer_name}

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["loss"] = _deserialize_losses(config["loss"])
        return cls(**config)


class LogitsDistillation(DistillationLoss):
    """Match the student's logits to the teacher's, both divided by ``temperature``.

    With KL divergence (the default) both are turned into probabilities by a softmax over the last axis and
    the loss is scaled by ``temperature ** 2`` (Hinton et al.); any other loss gets the scaled logits as
    they are (e.g. ``CategoricalCrossentropy(from_logits=True)``).  ``loss`` may be a nested structure
    matching the outputs, with None for outputs left out."""

    def __init__(self, temperature=3.0, loss="kl_divergence"):
        self.temperature = temperature
        self.loss = tree.map_structure(_convert_loss_to_function, loss)
        if all(entry is None for entry in tree.flatten(self.loss)):
            raise ValueError("At least one loss must be non-`None`.")
        if isinstance(temperature, bool) or not isinstance(temperature, (int, float)):
            raise ValueError(f"temperature must be a number, got {type(temperature)}")
        if temperature <= 0.0:
            raise ValueError(f"temperature must be positive; received temperature={temperature}")

    def compute_loss(self, teacher_outputs, student_outputs, **kwargs):
        temperature = self.temperature

        def apply_loss(loss_fn, teacher_logits, student_logits):
            if loss_fn is None:
                return None
            teacher_logits = ops.divide(teacher_logits, temperature)
            student_logits = ops.divide(student_logits, temperature)
            if _is_kl_divergence(loss_fn):
                value = ops.mean(loss_fn(ops.softmax(teacher_logits, axis=-1), ops.softmax(student_logits, axis=-1)))
                return value * (temperature ** 2)
            return ops.mean(loss_fn(teacher_logits, student_logits))
        return _total(tree.flatten(tree.map_structure(apply_loss, self.loss, teacher_outputs, student_outputs)))

    def get_config(self):
        return {"temperature": self.temperature, "loss": _serialize_losses(self.loss)}

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["loss"] = _deserialize_losses(config["loss"])
        return cls(**config)
