"""keras.distillation: knowledge distillation from a frozen teacher model into a student model."""

from dlgpu.distillation.distillation_loss import DistillationLoss, FeatureDistillation, LogitsDistillation
from dlgpu.distillation.distiller import Distiller

__all__ = ["DistillationLoss", "Distiller", "FeatureDistillation", "LogitsDistillation"]
