"""keras.utils.is_keras_tensor, get_source_inputs and standardize_dtype."""

from __future__ import annotations

# The dtype names Keras accepts (keras/src/backend/common/dtypes.py ALLOWED_DTYPES).  standardize_dtype only
# names a dtype; which of them dlgpu computes in is the business of the ops and layers that receive it.
ALLOWED_DTYPES = ("float16", "float32", "float64", "uint8", "uint16", "uint32", "uint64", "int8", "int16",
                  "int32", "int64", "bfloat16", "bool", "string", "float8_e4m3fn", "float8_e5m2", "complex64",
                  "complex128")
# Python types, as Keras maps them on its torch and jax backends (int is int32 there, int64 on tensorflow).
_PYTHON_DTYPES = {bool: "bool", int: "int32", float: "float32", str: "string", "int": "int32",
                  complex: "complex64"}


def standardize_dtype(dtype):
    """The name of ``dtype`` as Keras spells it: ``None`` is floatx ("float32"), ``int`` is "int32",
    ``np.float32``/``np.dtype("float32")``/``torch.float32``/``"float32"`` are "float32"; unknown names raise."""
    if dtype is None:
        from dlgpu import config
        return config.floatx()
    try:
        dtype = _PYTHON_DTYPES.get(dtype, dtype)
    except TypeError:  # unhashable
        pass
    if hasattr(dtype, "name"):
        dtype = dtype.name
    elif hasattr(dtype, "__name__"):
        dtype = dtype.__name__
    elif "torch" in str(dtype) or "jax.numpy" in str(dtype):
        dtype = str(dtype).split(".")[-1]
    if dtype not in ALLOWED_DTYPES:
        raise ValueError(f"Invalid dtype: {dtype}")
    return dtype


def is_keras_tensor(x):
    """Whether ``x`` is a symbolic tensor (from ``Input()`` or a layer called on one), not one with values."""
    from dlgpu.layers.keras_tensor import KerasTensor
    return isinstance(x, KerasTensor)


def get_source_inputs(tensor):
    """The Input tensors that ``tensor`` is computed from, as a list (each once, in the order first met).
    A value that is not a KerasTensor is returned as it is, as Keras does."""
    if not is_keras_tensor(tensor):
        return tensor
    if tensor._history is None:
        return [tensor]
    layer, node_index, _ = tensor._history
    node = layer._inbound_nodes[node_index]
    if not node.parent_tensors:  # an Input's node: the tensor is a source
        from dlgpu.layers.keras_tensor import flatten
        return flatten(node.outputs)
    sources = []
    for parent in node.parent_tensors:
        for source in get_source_inputs(parent):
            if all(source is not seen for seen in sources):
                sources.append(source)
    return sources
