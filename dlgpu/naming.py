"""Automatic names, as Keras gives them (keras/src/utils/naming.py).

Layers, losses, metrics and optimizers made without a ``name`` are called after their class in snake case,
made unique by one process-wide counter: Dense -> dense, dense_1; two ``AUC()`` metrics -> auc, auc_1 (so
their entries in ``history`` do not overwrite each other).  ``keras.backend.clear_session`` resets it.
"""

from __future__ import annotations

import re
from collections import defaultdict

_name_counts = defaultdict(int)


def to_snake_case(name):
    """Conv2D -> conv2d, ReLU -> re_lu, MeanIoU -> mean_io_u, RMSprop -> rm_sprop: Keras's rule exactly."""
    name = re.sub(r"(.)([A-Z][a-z]+)", r"\1_\2", re.sub(r"\W+", "", name))
    return re.sub(r"([a-z])([A-Z])", r"\1_\2", name).lower()


def unique_name(base):
    """base, base_1, base_2... on successive calls."""
    count = _name_counts[base]
    _name_counts[base] += 1
    return base if count == 0 else f"{base}_{count}"


def unique_in(name, used):
    """name, then name_1, name_2... for repeats within one collection whose counters are ``used`` (a dict):
    Keras's rule for a container's layers in a weights file and for repeated metric names in the logs."""
    if name in used:
        used[name] += 1
        return f"{name}_{used[name]}"
    used[name] = 0
    return name


def auto_name(class_name):
    """The default name of an object of class ``class_name``."""
    return unique_name(to_snake_case(class_name))


def reset_names():
    """Forget the counters behind automatic names (keras.backend.clear_session)."""
    _name_counts.clear()
