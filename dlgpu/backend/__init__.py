"""Where arrays live (device.py), the primitives per device (cpu/, gpu.py), and our CUDA kernels
(kernels.py).  Also the few ``keras.backend`` functions Keras code still calls."""

import numpy as _np


def floatx():
    """The default float type: always float32 in dlgpu (see dlgpu.config)."""
    from dlgpu import config
    return config.floatx()


def set_floatx(value):
    from dlgpu import config
    config.set_floatx(value)


def epsilon():
    """The fuzz factor Keras uses in numeric expressions (losses clip probabilities to [eps, 1 - eps])."""
    from dlgpu import config
    return config.epsilon()


def set_epsilon(value):
    from dlgpu import config
    config.set_epsilon(value)


def image_data_format():
    """dlgpu layers are channels_last (NHWC), as Keras's default."""
    return "channels_last"


def set_image_data_format(data_format):
    from dlgpu import config
    config.set_image_data_format(data_format)


def clear_session(free_memory=True):
    """Reset dlgpu's global state, as keras.backend.clear_session: automatic layer names start again (dense,
    dense_1, …), and the settings Keras keeps in that state go back to their defaults (interactive logging
    and traceback filtering on, the flash-attention flag None).  ``free_memory`` runs Python's garbage
    collector and, when a GPU is in use, hands CuPy's cached memory blocks back to the driver."""
    import gc
    from dlgpu import config
    from dlgpu.backend import device
    from dlgpu.naming import reset_names
    reset_names()
    config._reset_session_state()
    if free_memory:
        gc.collect()
        cupy = device._gpu_probe[0] if device._gpu_probe is not None else None
        if cupy is not None:
            cupy.get_default_memory_pool().free_all_blocks()


def backend():
    return "dlgpu"


def is_float_dtype(dtype):
    return _np.dtype(dtype).kind == "f"


_uids = {}


def get_uid(prefix=""):
    """1, 2, 3 ... for successive calls with the same prefix (keras.backend.get_uid)."""
    _uids[prefix] = _uids.get(prefix, 0) + 1
    return _uids[prefix]


_PYTHON_DTYPES = {bool: "bool", int: "int32", float: "float32", complex: "complex64", str: "string", "int": "int32"}


def standardize_dtype(dtype):
    """A dtype's name as Keras writes it: None is floatx, Python's int and float (and "int") are int32 and float32, a
    numpy/CuPy dtype, a dtype name or a torch dtype gives its name."""
    if dtype is None:
        return floatx()
    if isinstance(dtype, (type, str)) and dtype in _PYTHON_DTYPES:
        return _PYTHON_DTYPES[dtype]
    if "torch" in str(dtype):
        dtype = str(dtype).split(".")[-1]
    try:
        return _np.dtype(dtype).name
    except TypeError:
        raise ValueError(f"Invalid dtype: {dtype!r}") from None


def is_int_dtype(dtype):
    name = standardize_dtype(dtype)
    return name.startswith("int") or name.startswith("uint")


def is_keras_tensor(x):
    """Whether ``x`` is a symbolic tensor (dlgpu.KerasTensor, from dlgpu.Input or an op on one)."""
    from dlgpu.layers.keras_tensor import KerasTensor
    return isinstance(x, KerasTensor)


def result_type(*dtypes):
    """The dtype Keras 3 promotes ``dtypes`` to (its lattice: int32 with float32 is float32, not numpy's
    float64); Python's int, float and bool are weak, adapting to the others.  No dtypes: floatx."""
    from dlgpu.ops._core import result_type as pair
    if not dtypes:
        return floatx()
    weak = {int: "int", float: "float", bool: _np.dtype(bool)}
    nodes = [weak[d] if isinstance(d, type) and d in weak else _np.dtype(standardize_dtype(d)) for d in dtypes]
    result = nodes[0]
    for node in nodes[1:]:
        result = pair(result, node)
    if isinstance(result, str):  # only Python scalars: the weak type takes its default width
        result = pair(result, result)
    return _np.dtype(result).name
