"""dlgpu/backend/kernels.py: finding the .cu files, lazy per-library compilation, op discovery, errors."""
import numpy as np
import pytest

from dlgpu.backend import kernels
from dlgpu.backend.kernels import KernelCompileError, KernelLibrary
from dlgpu.testing.emu import EmuModule


def test_kernel_dir_has_the_families():
    fams = kernels.kernel_families()
    assert {"activations", "gemm_bias_act", "softmax_xent"} <= set(fams)


@pytest.mark.parametrize("value,enabled", [("", True), ("generic", False), ("GENERIC", False), ("custom", True)])
def test_kernels_enabled_switch(monkeypatch, value, enabled):
    monkeypatch.setenv("DLGPU_KERNELS", value)
    assert kernels.kernels_enabled() is enabled


def test_ops_are_discovered_and_bound():
    lib = KernelLibrary(EmuModule, np)
    for name in ("activation", "activation_grad", "dense_forward", "dense_backward", "softmax",
                 "softmax_cross_entropy", "softmax_cross_entropy_backward", "gemm"):
        assert name in lib.ops()
        assert callable(getattr(lib, name))
    with pytest.raises(AttributeError, match="no kernel op 'nope'"):
        lib.nope


def test_each_family_compiles_once_and_lazily():
    built = []

    class CountingModule(EmuModule):
        def __init__(self, **kw):
            built.append(kw["filename"])
            super().__init__(**kw)

    lib = KernelLibrary(CountingModule, np)
    assert built == []  # nothing is compiled until a kernel is used
    x = np.ones(5, np.float32)
    lib.activation(x, "relu")
    lib.activation_grad(x, x, x, "relu")
    assert len(built) == 1 and built[0].endswith("activations.cu")


def test_compile_error_names_the_file_and_holds_the_log():
    lib = KernelLibrary(EmuModule, np, sources={"activations": 'extern "C" __global__ void act_forward(float* x) {\n'
                                                               "  x[0] = not_declared;\n}\n"})
    with pytest.raises(KernelCompileError) as info:
        lib.activation(np.ones(3, np.float32), "relu")
    msg = str(info.value)
    assert "activations.cu" in msg and "not_declared" in msg


def test_compile_error_from_any_factory_is_wrapped():
    class Failing:
        def __init__(self, code, options):
            pass

        def get_function(self, name):
            raise RuntimeError("nvrtc: error: identifier INFINITY is undefined")

    lib = KernelLibrary(Failing, np)
    with pytest.raises(KernelCompileError, match=r"softmax_xent\.cu.*\n.*INFINITY"):
        lib.softmax(np.ones((2, 3), np.float32))


def test_missing_family_file(tmp_path):
    lib = KernelLibrary(EmuModule, np, directory=tmp_path)
    with pytest.raises(FileNotFoundError, match="softmax_xent.cu does not exist"):
        lib.softmax(np.ones((2, 3), np.float32))


def test_wrong_array_module_is_explained():
    lib = KernelLibrary(EmuModule, np)
    with pytest.raises(TypeError, match=r"softmax: x must be a numpy array \(did you call dlgpu.to_device"):
        lib.softmax([[1.0, 2.0]])


def test_shared_header_is_pasted_in_with_line_markers(tmp_path):
    """#include "x.cuh" beside the .cu is expanded by the loader (for RawModule, the emulator and the NVRTC
    check alike); #line keeps compiler messages on the real file and line."""
    from dlgpu.backend.kernels import expand_includes, read_source
    (tmp_path / "shared.cuh").write_text("#define SHARED 7\n")
    (tmp_path / "fam.cu").write_text('// one\n#include "shared.cuh"\nint third_line = SHARED;\n#include "shared.cuh"\n')
    text = read_source(tmp_path / "fam.cu")
    assert '#line 1 "shared.cuh"\n#define SHARED 7\n#line 3 "fam.cu"\nint third_line = SHARED;' in text
    assert text.count("#define SHARED") == 1  # a second include of the same header adds nothing
    with pytest.raises(FileNotFoundError, match="missing.cuh"):
        expand_includes('#include "missing.cuh"\n', tmp_path, "fam.cu")


def test_every_family_compiles_from_one_activation_header():
    from dlgpu.backend.kernels import kernel_dir, read_source
    for family in ("activations", "gemm_bias_act", "conv2d"):
        text = read_source(kernel_dir() / f"{family}.cu")
        assert text.count("float act_apply(") == 1, family
