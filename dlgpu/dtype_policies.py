"""keras.dtype_policies: which dtype a layer computes in and which its variables are stored in.

A policy named after a dtype ("float32", "float16", "float64", "int32" ...) uses it for both; "mixed_float16"
computes in float16 and keeps the variables in float32 (Keras's mixed precision, keras/src/dtype_policies/).
A layer under a mixed policy casts its floating inputs to float16 and reads its float variables as float16
inside ``call`` (dlgpu/autograd.py's autocast scope, Keras's AutocastScope); the optimizer updates the
float32 variables, and Model.compile wraps it in a LossScaleOptimizer so that float16 gradients do not
underflow.

Quantized policies ("int8_from_float32": QuantizedDTypePolicy) are what Keras's ``layer.quantize("int8")``
gives a layer: its variables hold int8 values and their scales, its computations are those of the source
policy (float32).  Keras's float8 and int4 policies can be made and serialized (QuantizedFloat8DTypePolicy,
Int4DTypePolicy) but no dlgpu layer computes in them (dlgpu/layers/quantized.py refuses the modes by name).

Refused by name, with the reason: bfloat16 ("bfloat16", "mixed_bfloat16"), which numpy and CuPy have no
dtype for (ml_dtypes adds one to numpy only, and dlgpu's primitives are not written for it), the GPTQ and
AWQ policies, which need their calibration algorithms, and DTypePolicyMap.
"""

from __future__ import annotations

import numpy as np

__all__ = ["DTypePolicy", "FloatDTypePolicy", "QuantizedDTypePolicy", "QuantizedFloat8DTypePolicy", "Int4DTypePolicy",
           "get", "serialize", "deserialize", "dtype_policy",
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
            raise ValueError(f"DTypePolicy({name!r}): a quantized policy is made with dtype_policies.get({name!r}) "
                             f"or QuantizedDTypePolicy(mode, source_name), or by layer.quantize(mode).")
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
        if type(self) in (DTypePolicy, FloatDTypePolicy):
            return type(other) in (DTypePolicy, FloatDTypePolicy) and other._name == self._name
        return type(other) is type(self) and other.get_config() == self.get_config()

    def __hash__(self):
        return hash(self._name)

    def __repr__(self):
        name = "DTypePolicy" if type(self) is FloatDTypePolicy else type(self).__name__
        return f'<{name} "{self._name}">'


class FloatDTypePolicy(DTypePolicy):
    """Keras's alias of DTypePolicy (older configs name it)."""


class QuantizedDTypePolicy(DTypePolicy):
    """The policy of a quantized layer: ``QuantizedDTypePolicy("int8", "float32")`` is named
    "int8_from_float32"; compute and variable dtypes are the source policy's, the quantized variables keep
    their own dtype (int8)."""

    def __init__(self, mode, source_name=None):
        if source_name is None:
            source_name = dtype_policy().name
        self._compute_dtype, self._variable_dtype = self._parse_name(source_name)
        self._check_quantization_mode(mode, self._compute_dtype)
        self._name = f"{mode}_from_{source_name}"
        self._source_name = source_name
        self._quantization_mode = mode

    @staticmethod
    def _check_quantization_mode(mode, compute_dtype):
        if mode not in QUANTIZATION_MODES:
            raise ValueError(f"Invalid quantization mode. Expected one of {QUANTIZATION_MODES}. "
                             f"Received: mode={mode}")
        if compute_dtype == "float16" and mode == "int8":
            raise ValueError(f"Quantization mode='{mode}' doesn't work well with compute_dtype='float16'.")

    @property
    def quantization_mode(self):
        return self._quantization_mode

    def get_config(self):
        return {"mode": self._quantization_mode, "source_name": self._source_name}


class QuantizedFloat8DTypePolicy(QuantizedDTypePolicy):
    """Keras's float8 training policy ("float8_from_float32"); dlgpu's layers do not compute in it."""

    default_amax_history_length = 1024

    def __init__(self, mode, source_name=None, amax_history_length=1024):
        super().__init__(mode, source_name)
        if not isinstance(amax_history_length, int):
            raise TypeError(f"`amax_history_length` must be an integer. Received: "
                            f"amax_history_length={amax_history_length}")
        self._amax_history_length = amax_history_length

    @property
    def amax_history_length(self):
        return self._amax_history_length

    def get_config(self):
        return {**super().get_config(), "amax_history_length": self._amax_history_length}


class Int4DTypePolicy(QuantizedDTypePolicy):
    """Keras's int4 policy with its block size, mode "int4/<block_size>" ("int4/128_from_float32"; -1 for one
    scale per output channel); dlgpu's layers do not compute in it."""

    def __init__(self, mode, source_name=None):
        parts = mode.split("/") if isinstance(mode, str) else []
        if len(parts) != 2 or parts[0] != "int4":
            raise ValueError(f"Invalid mode for Int4DTypePolicy. Expected format 'int4/<block_size>', but got "
                             f"'{mode}'.")
        try:
            block_size = int(parts[1])
        except ValueError:
            raise ValueError(f"Invalid mode for Int4DTypePolicy. <block_size> must be an integer. Expected "
                             f"format 'int4/<block_size>', but got '{mode}'.") from None
        if block_size < -1 or block_size == 0:
            raise ValueError(f"Invalid block_size in mode. Supported values are -1 (per-channel) or a positive "
                             f"integer (sub-channel), but got {block_size} from '{mode}'.")
        super().__init__("int4", source_name)
        self._name = f"{mode}_from_{self._source_name}"
        self.block_size = block_size

    def get_config(self):
        return {"mode": f"int4/{self.block_size}", "source_name": self._source_name}


_CLASSES = {"DTypePolicy": DTypePolicy, "FloatDTypePolicy": FloatDTypePolicy,
            "QuantizedDTypePolicy": QuantizedDTypePolicy, "QuantizedFloat8DTypePolicy": QuantizedFloat8DTypePolicy,
            "Int4DTypePolicy": Int4DTypePolicy}


def _quantized_policy(name):
    """Keras's _get_quantized_dtype_policy_by_str: "int8_from_float32" -> QuantizedDTypePolicy."""
    parts = name.split("_from_")
    if len(parts) != 2:
        raise ValueError(f"Cannot convert `policy` into a valid pair (`mode`, `source_name`) to instantiate "
                         f"`QuantizedDTypePolicy`. Received: policy={name}")
    mode, source_name = parts
    if name.startswith(("gptq", "awq")):
        raise NotImplementedError(f"dtype policy {name!r}: GPTQ and AWQ quantization (calibrated on data) are not "
                                  f"supported by dlgpu; only 'int8' quantization is.")
    if name.startswith("float8"):
        return QuantizedFloat8DTypePolicy(mode, source_name)
    if name.startswith("int4") and "/" in mode:
        return Int4DTypePolicy(mode, source_name)
    return QuantizedDTypePolicy(mode, source_name)
_global = [None]


def dtype_policy():
    """The global policy, which a layer made without ``dtype`` takes: ``DTypePolicy("float32")`` until
    set_dtype_policy changes it."""
    if _global[0] is None:
        _global[0] = DTypePolicy("float32")
    return _global[0]


def set_dtype_policy(policy):
    """Set the global policy (a name such as "mixed_float16", or a DTypePolicy) for the layers made from now on."""
    if isinstance(policy, QuantizedDTypePolicy) or (isinstance(policy, str) and policy.startswith(QUANTIZATION_MODES)):
        raise NotImplementedError(f"set_dtype_policy({getattr(policy, 'name', policy)!r}): a quantized global policy is "
                                  f"not supported by dlgpu (every layer, not only Dense, EinsumDense and Embedding, "
                                  f"would take it); quantize a built model with model.quantize(mode) instead.")
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
    if isinstance(policy, QuantizedDTypePolicy):
        return {"module": "keras.dtype_policies", "class_name": type(policy).__name__, "config": policy.get_config(),
                "registered_name": None}
    return {"module": "keras", "class_name": "DTypePolicy", "config": policy.get_config(), "registered_name": None}


def deserialize(config, custom_objects=None):
    """The policy of a serialized config (serialize's dict, or a bare {"class_name", "config"})."""
    if not isinstance(config, dict) or "class_name" not in config:
        raise ValueError(f"dtype_policies.deserialize: expected a dict with 'class_name' and 'config'; "
                         f"received {config!r}")
    class_name = config["class_name"]
    cls = (custom_objects or {}).get(class_name) or _CLASSES.get(class_name)
    if cls is None:
        if class_name in ("GPTQDTypePolicy", "AWQDTypePolicy"):
            raise NotImplementedError(f"dtype_policies.deserialize: {class_name} is the policy of a GPTQ or AWQ "
                                      f"quantized layer, which dlgpu does not support (only 'int8' quantization).")
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
        if identifier.startswith(QUANTIZATION_MODES):
            return _quantized_policy(identifier)
        return DTypePolicy(identifier)
    try:
        name = np.dtype(identifier).name
    except TypeError:
        raise ValueError(f"Cannot interpret `dtype` argument. Expected a string or an instance of DTypePolicy. "
                         f"Received: dtype={identifier!r}") from None
    return DTypePolicy(name)
