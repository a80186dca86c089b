"""The ``gpu``-marked tests, run in a child pytest on the simulated GPU (dlgpu/testing/simulated_cupy.py).

Without a GPU those tests only skip, so the Python around the GPU -- gpu.py's dispatch, device moves,
the optimizer's device slots, every ``xp is not np`` branch -- would first run on someone's GPU box.  On
the simulation it runs here, held to CuPy's rules where numpy is laxer (no numpy arrays as operands, no
silent host copies, 0-d device results, CuPy's own names and keywords).  It proves nothing about CUDA;
with a real GPU present the tests run on it instead and this one skips.
"""

import os
import subprocess
import sys

import pytest

from dlgpu.backend import device as _device

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_gpu_tests_pass_on_the_simulated_gpu():
    if _device.gpu_available():
        pytest.skip("a real GPU is here: the gpu-marked tests run on it in this same session")
    pytest.importorskip("cupy", reason="the simulation checks names against the installed CuPy (dlgpu[kernel-ci])")
    # generic CuPy by default (the [kernels] cases still launch our kernels, through the emulator); the
    # parent's xdist worker variables would confuse the child's own workers
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    env["DLGPU_KERNELS"] = "generic"
    command = [sys.executable, "-m", "pytest", "-m", "gpu", "--simulated-gpu", "-q", "-p", "no:cacheprovider",
               "-n", "2", "tests"]
    done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=1200)
    tail = "\n".join(done.stdout.splitlines()[-60:])
    assert done.returncode == 0, f"{' '.join(command)} failed:\n{tail}\n{done.stderr[-3000:]}"
    assert " passed" in tail and " failed" not in tail, tail
