"""keras.dtype_policies: which dtype a layer computes in and which its variables are stored in.

A policy named after a dtype ("float32", "float16", "float64", "int32" ...) uses it for both; "mixed_float16"
computes in float16 and keeps the variables in float32 (Keras's mixed precision, keras/src/dtype_policies/).
A layer under a mixed policy casts its floating inputs to float16 and reads its float variables as float16
inside ``call`` (dlgpu/autograd.py's autocast scope, Keras's AutocastScope); the optimizer updates the
float32 variables, and Model.compile wraps it in a LossScaleOptimizer so that float16 gradients do not
underflow.

Refused by name, with the reason: bfloat16 ("bfloat16", "mixed_bfloat16"), which numpy and CuPy have no
dtype for (ml_dtypes adds one to numpy only, and dlgpu's primitives are not written for it), and the
quantized policies ("int8_from_float32", "float8_...", "int4...", "gptq...", "awq..."), which need
Keras's quantized kernels.
"""

from __future__ import annotations

import numpy as np

__all__ = ["DTypePolicy", "FloatDTypePolicy", "get", "serialize", "deserialize", "dtype_policy",
           "set_dtype_policy", "QUANTIZATION_MODES"]

QUANTIZATION_MODES = ("int8", "float8", "int4", "gptq", "awq")
_MIXED = {"mixed_float16": ("float16", "float32")}
_BFLOAT16 = ("bfloat16", "mixed_bfloat16")


def _standardize(name):
    """A dtype name as Keras's standardize_dtype gives it ("float32", "int64", "bool", "string"), or None."""
    if name == "string":
        return name
    try:
        dtype = np.dtype(name)
    except TypeError:
        return None
    return dtype.name if dtype.kind in "fiub" else None


class DTypePolicy:
    """keras.DTypePolicy: ``DTypePolicy("mixed_float16")`` computes in float16 with float32 variables;
    ``DTypePolicy("float32")`` (the default, as the global policy) does everything in float32."""

    def __init__(self, name=None):
        if name is None:
            name = dtype_policy().name
        self._compute_dtype, self._variable_dtype = self._parse_name(name)
        self._name = name

    @staticmethod
    def _parse_name(name):
        if not isinstance(name, str):
            raise TypeError(f"'name' must be a string, such as 'mixed_float16'. Received: name={name!r} "
                            f"(of type {type(name)})")
        if name in _MIXED:
            return _MIXED[name]
        if name in _BFLOAT16:
            raise NotImplementedError(
                f"DTypePolicy({name!r}): dlgpu has no bfloat16. Its arrays are numpy and CuPy arrays, and neither "
                f"has a bfloat16 dtype, so the layers could not compute in it; use 'mixed_float16' for mixed "
                f"precision or 'float32'.")
        if name.startswith(QUANTIZATION_MODES):
            raise NotImplementedError(
                f"DTypePolicy({name!r}): quantized dtype policies ({', '.join(QUANTIZATION_MODES)}) are not "
                f"supported by dlgpu, which has no quantized kernels.")
        dtype = _standardize(name)
        if dtype is None:
            raise ValueError(f"Cannot convert '{name}' to a mixed precision DTypePolicy. Valid policies include "
                             f"'mixed_float16' and the name of any float dtype such as 'float32'.")
        return dtype, dtype

    @property
    def name(self):
        return self._name

    @property
    def compute_dtype(self):
        """The dtype the layer's computations (and usually its outputs) are in."""
        return self._compute_dtype

    @property
    def variable_dtype(self):
        """The dtype the layer's variables are created in."""
        return self._variable_dtype

    @property
    def quantization_mode(self):
        return None

    def get_config(self):
        return {"name": self._name}

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def __eq__(self, other):
        return type(other) in (DTypePolicy, FloatDTypePolicy) and other._name == self._name

    def __hash__(self):
        return hash(self._name)

    def __repr__(self):
        return f'<DTypePolicy "{self._name}">'


class FloatDTypePolicy(DTypePolicy):
    """Keras's alias of DTypePolicy (older configs name it)."""


_CLASSES = {"DTypePolicy": DTypePolicy, "FloatDTypePolicy": FloatDTypePolicy}
_global = [None]


def dtype_policy():
    """The global policy, which a layer made without ``dtype`` takes: ``DTypePolicy("float32")`` until
    set_dtype_policy changes it."""
    if _global[0] is None:
        _global[0] = DTypePolicy("float32")
    return _global[0]


def set_dtype_policy(policy):
    """Set the global policy (a name such as "mixed_float16", or a DTypePolicy) for the layers made from now on."""
    if not isinstance(policy, DTypePolicy):
        if not isinstance(policy, str):
            raise ValueError(f"Invalid `policy` argument. Expected the string name of a policy (such as "
                             f"'mixed_float16') or a `DTypePolicy` instance. Received: policy={policy!r} "
                             f"(of type {type(policy)})")
        policy = DTypePolicy(policy)
    _global[0] = policy


def serialize(policy):
    """A policy as Keras writes it in configs: {"module": "keras", "class_name": "DTypePolicy", ...}."""
    if not isinstance(policy, DTypePolicy):
        raise TypeError(f"dtype_policies.serialize: expected a DTypePolicy; received {policy!r}")
    return {"module": "keras", "class_name": "DTypePolicy", "config": policy.get_config(), "registered_name": None}


def deserialize(config, custom_objects=None):
    """The policy of a serialized config (serialize's dict, or a bare {"class_name", "config"})."""
    if not isinstance(config, dict) or "class_name" not in config:
        raise ValueError(f"dtype_policies.deserialize: expected a dict with 'class_name' and 'config'; "
                         f"received {config!r}")
    class_name = config["class_name"]
    cls = (custom_objects or {}).get(class_name) or _CLASSES.get(class_name)
    if cls is None:
        if "Quantized" in class_name or class_name in ("Int4DTypePolicy", "GPTQDTypePolicy", "AWQDTypePolicy"):
            raise NotImplementedError(f"dtype_policies.deserialize: {class_name} is a quantized dtype policy, "
                                      f"which dlgpu does not support (it has no quantized kernels).")
        if class_name == "DTypePolicyMap":
            raise NotImplementedError("dtype_policies.deserialize: DTypePolicyMap (per-layer policies of a "
                                      "quantized model) is not supported by dlgpu.")
        raise ValueError(f"dtype_policies.deserialize: unknown dtype policy class {class_name!r}")
    return cls.from_config(config.get("config") or {})


def get(identifier):
    """A DTypePolicy from None (the global policy), a name, a config dict, a policy or a numpy dtype."""
    if identifier is None:
        return dtype_policy()
    if isinstance(identifier, DTypePolicy):
        return identifier
    if isinstance(identifier, dict):
        return deserialize(identifier)
    if isinstance(identifier, str):
        return DTypePolicy(identifier)
    try:
        name = np.dtype(identifier).name
    except TypeError:
        raise ValueError(f"Cannot interpret `dtype` argument. Expected a string or an instance of DTypePolicy. "
                         f"Received: dtype={identifier!r}") from None
    return DTypePolicy(name)
