"""keras.config: the process-wide settings Keras code reads and sets.

dlgpu honours what it can and refuses the rest by name, so a script never trains in a precision or layout
it did not ask for:

- float type: float32 only.  The CUDA kernels (gemm, conv, softmax cross-entropy, optimizers) are written
  for float32.  Mixed precision is a dtype policy (set_dtype_policy("mixed_float16"), dlgpu/dtype_policies.py):
  float16 computation goes the generic numpy/CuPy way, never into a float32 kernel.
- epsilon: honoured; the losses, metrics and constraints read it when they run.
- image data format: channels_last only (dlgpu's conv and pooling layers are NHWC).
- backend(): ``"dlgpu"``.  Keras code compares it with "tensorflow", "jax" and "torch" to reach for that
  framework's own API (tf.data, jax.jit, torch.compile); none of those would work on dlgpu's tensors, and
  "numpy" makes libraries skip training ("numpy backend does not support fit").  With a name of its own,
  such code takes its backend-neutral branch, which is the one written against keras.ops.
- interactive logging: honoured; when off, fit/evaluate/predict print one line per epoch instead of a bar.
- unsafe deserialization, traceback filtering: accepted flags with nothing to switch (see each function).
- max_epochs / max_steps_per_epoch: honoured by fit (and the steps by evaluate/predict), as Keras's debugging
  caps; also read from KERAS_MAX_EPOCHS / KERAS_MAX_STEPS_PER_EPOCH when dlgpu is imported.
- flash attention: a recorded flag only; dlgpu's attention has no flash path (see enable_flash_attention).
"""

from __future__ import annotations

import os

import numpy as np

_SUPPORTED_FLOATX = "float32"
_state = {"epsilon": 1e-7, "interactive_logging": True, "traceback_filtering": True, "unsafe_deserialization": False,
          "flash_attention": None, "max_epochs": None, "max_steps_per_epoch": None}


def backend():
    """The backend's name: ``"dlgpu"`` (see the module docstring for why not one of Keras's)."""
    return "dlgpu"


# -- float type -------------------------------------------------------------------------------------
def _dtype_name(value, argument):
    try:
        return np.dtype(value).name
    except TypeError:
        if str(value) == "bfloat16":
            return "bfloat16"
        raise ValueError(f"Unknown `{argument}`: {value!r}; expected a float dtype name such as 'float32'.") from None


def floatx():
    """The default float type of layers, initializers and keras.random: ``"float32"``."""
    return _SUPPORTED_FLOATX


def set_floatx(value):
    """Accepts ``"float32"`` (the only float type dlgpu computes in); any other type raises."""
    name = _dtype_name(value, "floatx")
    if name not in ("float16", "float32", "float64", "bfloat16"):
        raise ValueError(f"set_floatx: {value!r} is not a float type; expected one of 'float16', 'bfloat16', "
                         f"'float32', 'float64'.")
    if name != _SUPPORTED_FLOATX:
        raise NotImplementedError(
            f"set_floatx({value!r}): dlgpu computes in float32 only (its CUDA kernels and optimizers are "
            f"float32); 'float32' is the only supported floatx.")


# -- epsilon ----------------------------------------------------------------------------------------
def _epsilon_modules():
    """The modules whose EPSILON constant the loss, metric and constraint code reads when it runs."""
    from dlgpu import constraints, losses, metrics
    from dlgpu.metrics import base, confusion_metrics, iou_metrics
    return (losses, metrics, base, confusion_metrics, iou_metrics, constraints)


def epsilon():
    """The fuzz factor of numeric expressions (probabilities are clipped to [epsilon, 1 - epsilon])."""
    return _state["epsilon"]


def set_epsilon(value):
    """Set the fuzz factor used from now on by the losses, metrics and constraints (the optimizers keep
    their own ``epsilon`` argument, as in Keras)."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating, np.integer)):
        raise ValueError(f"set_epsilon: expected a small positive number; received {value!r}")
    value = float(value)
    if not 0.0 < value < 1.0:
        raise ValueError(f"set_epsilon: expected a number in (0, 1); received {value!r}")
    _state["epsilon"] = value
    for module in _epsilon_modules():
        module.EPSILON = value


# -- image data format ------------------------------------------------------------------------------
def image_data_format():
    """``"channels_last"``: dlgpu's image layers are NHWC."""
    return "channels_last"


def set_image_data_format(data_format):
    """Accepts ``"channels_last"``; ``"channels_first"`` raises (dlgpu's image layers are NHWC only)."""
    normalized = str(data_format).lower()
    if normalized not in ("channels_last", "channels_first"):
        raise ValueError(f"set_image_data_format: expected 'channels_first' or 'channels_last'; received "
                         f"{data_format!r}")
    if normalized != "channels_last":
        raise NotImplementedError("set_image_data_format('channels_first'): dlgpu's conv, pooling and image "
                                  "layers are channels_last (NHWC) only; transpose images to NHWC instead.")


# -- dtype policy -----------------------------------------------------------------------------------
# Keras's keras.config.DTypePolicy / dtype_policy / set_dtype_policy live in dlgpu/dtype_policies.py.
from dlgpu.dtype_policies import DTypePolicy, dtype_policy, set_dtype_policy  # noqa: E402


# -- logging and tracebacks -------------------------------------------------------------------------
def is_interactive_logging_enabled():
    """Whether fit/evaluate/predict draw a live progress bar (verbose=1); when off they print one line per
    epoch, which suits log files."""
    return _state["interactive_logging"]


def enable_interactive_logging():
    _state["interactive_logging"] = True


def disable_interactive_logging():
    _state["interactive_logging"] = False


def is_traceback_filtering_enabled():
    """The flag Keras code sets.  dlgpu filters no frames either way: its errors are raised from the user's
    call with the layer, argument and shapes named, so the full traceback is short already."""
    return _state["traceback_filtering"]


def enable_traceback_filtering():
    _state["traceback_filtering"] = True


def disable_traceback_filtering():
    _state["traceback_filtering"] = False


# -- deserialization --------------------------------------------------------------------------------
def enable_unsafe_deserialization():
    """Accepted and recorded, with nothing to unlock: dlgpu never saves or loads code (no lambdas, no
    pickles), so every file it can read is safe to read.  A saved Lambda layer still cannot be loaded."""
    _state["unsafe_deserialization"] = True


def is_unsafe_deserialization_enabled():
    return _state["unsafe_deserialization"]


# -- debugging caps on training ------------------------------------------------------------------
def _cap(value, name):
    if value is not None and (isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1):
        raise ValueError(f"set_{name}: expected a positive integer or None. Received: {name}={value!r}")
    return None if value is None else int(value)


def set_max_epochs(max_epochs):
    """Cap the epochs of every fit at ``max_epochs`` (None: no cap), with a warning when it bites; a quick
    way to run a script end to end (Keras: also the KERAS_MAX_EPOCHS environment variable)."""
    _state["max_epochs"] = _cap(max_epochs, "max_epochs")


def max_epochs():
    """The cap set by set_max_epochs or KERAS_MAX_EPOCHS, or None."""
    return _state["max_epochs"]


def set_max_steps_per_epoch(max_steps_per_epoch):
    """Cap the steps of each fit epoch, and of evaluate and predict, at ``max_steps_per_epoch`` (None: no cap),
    with a warning when it bites (Keras: also KERAS_MAX_STEPS_PER_EPOCH)."""
    _state["max_steps_per_epoch"] = _cap(max_steps_per_epoch, "max_steps_per_epoch")


def max_steps_per_epoch():
    """The cap set by set_max_steps_per_epoch or KERAS_MAX_STEPS_PER_EPOCH, or None."""
    return _state["max_steps_per_epoch"]


for _name in ("max_epochs", "max_steps_per_epoch"):
    if f"KERAS_{_name.upper()}" in os.environ:
        _state[_name] = _cap(int(os.environ[f"KERAS_{_name.upper()}"]), _name)


# -- flash attention --------------------------------------------------------------------------------
def enable_flash_attention():
    """Recorded, as Keras records it (``is_flash_attention_enabled()`` then returns None, "use it where
    available").  dlgpu's attention (ops.dot_product_attention, MultiHeadAttention) has no flash path: it
    computes the scores, softmax and weighted sum as separate ops whatever this flag says."""
    _state["flash_attention"] = None


def disable_flash_attention():
    """Recorded (``is_flash_attention_enabled()`` returns False); dlgpu's attention never uses a flash kernel."""
    _state["flash_attention"] = False


def is_flash_attention_enabled():
    """Keras's flag: None (the default, and after enable_flash_attention) or False.  dlgpu reads it nowhere;
    see enable_flash_attention."""
    return _state["flash_attention"]


def _reset_session_state():
    """What keras.backend.clear_session resets besides names: the settings Keras keeps in its global state."""
    _state.update(interactive_logging=True, traceback_filtering=True, flash_attention=None)


__all__ = ["backend", "floatx", "set_floatx", "epsilon", "set_epsilon", "image_data_format",
           "set_image_data_format", "DTypePolicy", "dtype_policy", "set_dtype_policy",
           "is_interactive_logging_enabled", "enable_interactive_logging", "disable_interactive_logging",
           "is_traceback_filtering_enabled", "enable_traceback_filtering", "disable_traceback_filtering",
           "enable_unsafe_deserialization", "is_unsafe_deserialization_enabled", "set_max_epochs", "max_epochs",
           "set_max_steps_per_epoch", "max_steps_per_epoch", "enable_flash_attention", "disable_flash_attention",
           "is_flash_attention_enabled"]
