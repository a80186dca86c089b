"""bench/: compare dlgpu on the CPU, dlgpu on the GPU (our kernels and generic CuPy), PyTorch and Keras.

    python -m bench --quick                      # every suite, small sizes, every available path
    python -m bench --suite ops,models --device gpu
    python -m bench compare A.json B.json
    python -m bench readme bench/results/<file>.json

See bench/run.py for the options and the README's "Performance" section for a committed run.
"""

import os as _os

# cuBLAS FP32 is the yardstick: CuPy must not switch matmuls to TF32 behind our back.  CuPy reads
# CUPY_TF32 when it is imported, so this has to happen before anything imports cupy.
_os.environ.setdefault("CUPY_TF32", "0")
