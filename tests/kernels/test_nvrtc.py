"""Every kernels/*.cu compiles with NVRTC (the compiler cupy.RawModule uses) for sm_80 and sm_90, with
no warnings and no register spills.  Needs no GPU: only cupy and the nvidia-cuda-nvrtc wheel."""
import pytest

from dlgpu.backend.kernels import kernel_dir
from dlgpu.testing import nvrtc_check

_ok, _why = nvrtc_check.nvrtc_available()
pytestmark = pytest.mark.skipif(not _ok, reason=_why)

KERNEL_FILES = sorted(kernel_dir().glob("*.cu"))


@pytest.mark.parametrize("arch", [80, 90])
@pytest.mark.parametrize("path", KERNEL_FILES, ids=lambda p: p.name)
def test_kernel_file_compiles_cleanly(path, arch):
    res = nvrtc_check.check_file(path, arch, no_spills=True)
    assert res.ok, res.summary()
    assert res.kernels, "ptxas reported no kernels:\n" + res.log


def test_broken_source_fails_with_the_log_naming_the_file():
    # NVRTC has no <math.h> macros: INFINITY compiles with nvcc and g++ but not here.
    src = 'extern "C" __global__ void k(float* x) {\n  x[0] = INFINITY;\n}\n'
    res = nvrtc_check.check_source(src, "kernels/broken_inf.cu", 90)
    assert not res.ok
    text = res.summary()
    assert 'kernels/broken_inf.cu(2): error: identifier "INFINITY" is undefined' in text, text


def test_cli_exit_status(tmp_path, capsys):
    good = tmp_path / "good.cu"
    good.write_text('extern "C" __global__ void k(float* x) { x[threadIdx.x] = 1.0f; }\n')
    bad = tmp_path / "bad.cu"
    bad.write_text('extern "C" __global__ void k(float* x) { x[0] = undefined_name; }\n')
    assert nvrtc_check.main([str(good), "--arch", "80", "--no-spills"]) == 0
    assert nvrtc_check.main([str(good), str(bad), "--arch", "90"]) == 1
    out = capsys.readouterr().out
    assert "1 passed, 1 failed" in out and "bad.cu" in out
