"""The simulated GPU refuses what CuPy refuses (each rule is one that numpy alone would let pass) and
otherwise computes what numpy computes."""

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from dlgpu.backend.device import gpu_available as dlgpu_gpu_available
from dlgpu.testing import simulated_cupy as cp

HAS_REAL_CUPY = cp._load_real_cupy() is not None


def test_host_arrays_are_not_operands():
    a = cp.asarray(np.arange(6, dtype=np.float32).reshape(2, 3))
    host = np.asarray(2.0, np.float32)  # even 0-d: CuPy wraps only scalars, a 0-d ndarray is "Unsupported type"
    for attempt in (lambda: a * host, lambda: host * a, lambda: a + np.ones(3, np.float32),
                    lambda: cp.maximum(a, host), lambda: cp.where(a > 1, host, host),
                    lambda: cp.matmul(a, np.ones((3, 2), np.float32)),
                    lambda: cp.concatenate([a, np.ones((1, 3), np.float32)])):
        with pytest.raises(TypeError, match="Unsupported type"):
            attempt()


def test_scalars_indices_and_explicit_copies_are_fine():
    a = cp.asarray(np.arange(6, dtype=np.float32))
    np.testing.assert_array_equal((a * np.float32(2) + 1).get(), np.arange(6) * 2 + 1)
    assert (a * np.float32(2)).dtype == np.float32
    parts = cp.split(a, np.array([2, 4]))  # split points are read on the host, as CuPy does
    assert [p.shape for p in parts] == [(2,), (2,), (2,)]
    np.testing.assert_array_equal(a[np.array([0, 5])].get(), [0, 5])
    a[np.array([1])] = np.float32(7)
    a[:2] = np.array([8, 9], np.float32)  # assignment copies host values over
    np.testing.assert_array_equal(cp.asnumpy(a)[:3], [8, 9, 2])


def test_no_implicit_copy_to_the_host():
    a = cp.asarray(np.ones(3, np.float32))
    with pytest.raises(TypeError, match="Implicit conversion"):
        np.asarray(a)
    assert isinstance(a.get(), np.ndarray)
    assert type(a).__module__ == "cupy"  # how dlgpu tells device arrays apart
    assert a.__cuda_array_interface__["shape"] == (3,)  # and how other code does


def test_reductions_give_device_scalars_and_numpy_functions_dispatch():
    a = cp.asarray(np.arange(4, dtype=np.float32))
    total = a.sum()
    assert type(total) is cp.ndarray and total.shape == () and float(total) == 6
    assert type(np.sum(a)) is cp.ndarray  # __array_function__, as CuPy's
    assert type(a[0]) is cp.ndarray


def test_the_same_array_keeps_its_identity():
    a = cp.asarray(np.ones(3, np.float32))
    assert a.astype(np.float32, copy=False) is a
    assert a.reshape(3) is not None and a.T.shape == (3,)


@pytest.mark.skipif(not HAS_REAL_CUPY, reason="needs the real CuPy (dlgpu[kernel-ci]) to compare names with")
def test_names_and_keywords_are_checked_against_the_real_cupy():
    with pytest.raises(AttributeError, match="CuPy has no 'fromfunction_that_does_not_exist'"):
        cp.fromfunction_that_does_not_exist
    with pytest.raises(TypeError, match="unexpected keyword"):
        cp.sum(cp.asarray(np.ones(2)), initial=1.0)  # numpy's sum takes `initial`, CuPy's does not
    with pytest.raises(AttributeError, match="ctypes"):
        cp.asarray(np.ones(2)).ctypes


def test_raw_module_runs_kernels_in_the_emulator_on_device_arrays():
    source = textwrap.dedent("""
        extern "C" __global__ void twice(const float* x, float* y, int n) {
            int i = blockIdx.x * blockDim.x + threadIdx.x;
            if (i < n) y[i] = 2.0f * x[i];
        }""")
    kernel = cp.RawModule(code=source).get_function("twice")
    x = cp.asarray(np.arange(5, dtype=np.float32))
    y = cp.empty_like(x)
    kernel((2,), (4,), (x, y, np.int32(5)))
    np.testing.assert_array_equal(y.get(), np.arange(5) * 2)
    with pytest.raises(TypeError, match="Unsupported type"):
        kernel((2,), (4,), (np.arange(5, dtype=np.float32), y, np.int32(5)))


@pytest.mark.skipif(dlgpu_gpu_available(), reason="a real GPU is here: installing the simulation would hide it")
def test_install_makes_the_gpu_device_available_and_uninstall_restores():
    # in a child process: installing swaps sys.modules['cupy'] for the whole process
    script = textwrap.dedent("""
        import numpy as np
        from dlgpu.testing import simulated_cupy
        import dlgpu
        assert not dlgpu.gpu_available()
        simulated_cupy.install()
        assert dlgpu.gpu_available()
        with dlgpu.device("gpu"):
            x = dlgpu.to_device(np.ones((2, 3), np.float32), "gpu")
            y = dlgpu.ops.relu(dlgpu.ops.matmul(x, dlgpu.to_device(np.ones((3, 4), np.float32), "gpu")))
        assert type(y.data).__module__ == "cupy" and dlgpu.to_numpy(y.data).sum() == 24
        simulated_cupy.uninstall()
        assert not dlgpu.gpu_available()
        print("ok")
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300,
                          env={"DLGPU_DEVICE": "cpu", "PATH": "/usr/bin:/bin", **_python_env()})
    assert done.returncode == 0 and done.stdout.strip().endswith("ok"), done.stderr[-3000:]


def _python_env():
    return {k: v for k, v in os.environ.items() if k in ("PYTHONPATH", "HOME", "VIRTUAL_ENV", "PATH")}
