"""Optimizers (Keras 3 names, defaults and update rules) and ``schedules``."""


from dlgpu.optimizers import schedules
from dlgpu.optimizers.adadelta import Adadelta
from dlgpu.optimizers.adafactor import Adafactor
from dlgpu.optimizers.adagrad import Adagrad
from dlgpu.optimizers.adam import Adam, AdamW
from dlgpu.optimizers.adamax import Adamax
from dlgpu.optimizers.base import Optimizer
from dlgpu.optimizers.ftrl import Ftrl
from dlgpu.optimizers.lamb import Lamb
from dlgpu.optimizers.lion import Lion
from dlgpu.optimizers.loss_scale import LossScaleOptimizer
from dlgpu.optimizers.multi_optimizer import MultiOptimizer, OptimizerMap
from dlgpu.optimizers.muon import Muon
from dlgpu.optimizers.nadam import Nadam
from dlgpu.optimizers.rmsprop import RMSprop
from dlgpu.optimizers.schedule_free import ScheduleFreeAdamW
from dlgpu.optimizers.sgd import SGD
from dlgpu.utils import unknown_name_error

_CLASSES = {cls.__name__: cls for cls in (SGD, Adam, AdamW, RMSprop, Adagrad, Nadam, Adamax, Adadelta, Lion,
                                         Ftrl, Adafactor, Lamb, LossScaleOptimizer, ScheduleFreeAdamW, Muon,
                                         MultiOptimizer)}
# Keras's names for compile: each class name in lowercase
_ALIASES = {name.lower(): cls for name, cls in _CLASSES.items()}

__all__ = ["Optimizer", "SGD", "Adam", "AdamW", "RMSprop", "Adagrad", "Nadam", "Adamax", "Adadelta", "Lion", "Ftrl",
           "Adafactor", "Lamb", "LossScaleOptimizer", "ScheduleFreeAdamW", "Muon", "MultiOptimizer", "OptimizerMap", "schedules", "get", "serialize", "deserialize"]


def _unknown(identifier):
    # Optimizer strings are matched case-insensitively ('Adam' works), so suggest from the lowercase aliases.
    return unknown_name_error("optimizer", identifier, set(_CLASSES) | set(_ALIASES), candidates=_ALIASES,
                              normalize=lambda name: str(name).lower())


def get(identifier):
    """An optimizer from a name ('adam'), config dict or instance."""
    if isinstance(identifier, Optimizer):
        return identifier
    if isinstance(identifier, dict):
        return deserialize(identifier)
    if isinstance(identifier, str):
        cls = _ALIASES.get(identifier.lower()) or _CLASSES.get(identifier)
        if cls is None:
            raise _unknown(identifier)
        return cls()
    if isinstance(identifier, type) and issubclass(identifier, Optimizer):
        return identifier()
    raise ValueError(f"Could not interpret optimizer identifier: {identifier!r}")


def serialize(optimizer):
    return {"module": "keras.optimizers", "class_name": type(optimizer).__name__,
            "config": optimizer.get_config(), "registered_name": None}


def deserialize(config, custom_objects=None):
    custom_objects = custom_objects or {}
    if isinstance(config, str):
        return get(config)
    name = config.get("class_name")
    # OptimizerMap is no optimizer (compile cannot take it) but a MultiOptimizer's config holds one
    cls = custom_objects.get(name) or _CLASSES.get(name) or _ALIASES.get(str(name).lower()) or \
        {"OptimizerMap": OptimizerMap}.get(name)
    if cls is None:
        raise _unknown(name)
    return cls.from_config(config.get("config", {}), custom_objects)
