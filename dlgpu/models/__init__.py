"""Models: functional and subclassed (Model), Sequential, and loading saved models."""

from dlgpu.models.cloning import clone_model
from dlgpu.models.model import Model
from dlgpu.models.sequential import Sequential
from dlgpu.models.saving import load_model, model_from_json, save_model

__all__ = ["Model", "Sequential", "clone_model", "load_model", "model_from_json", "save_model"]
