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
    from dlgpu.layers.base import reset_names
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
