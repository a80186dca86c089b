"""EMU_SANITIZE=thread|address builds find what numerical checks can miss: a missing __syncthreads
(TSan data race) and an off-by-one read past an array (ASan heap-buffer-overflow).

Python is not instrumented, so each check runs in a child python with the sanitizer runtime
LD_PRELOADed (``dlgpu.testing.emu.sanitizer_preload``).  The child loads the emulator module by file
path, so it does not import the rest of dlgpu under the sanitizer.
"""
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from dlgpu.testing import emu

HERE = Path(__file__).resolve().parent

CHILD = textwrap.dedent("""
    import importlib.util, sys
    import numpy as np
    spec = importlib.util.spec_from_file_location("emu_child", sys.argv[1])
    emu = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(emu)
    src = open(sys.argv[2]).read()
    mod = emu.EmuModule(code=src, filename=sys.argv[3])
    n = 64
    x = np.arange(n, dtype=np.int32)
    out = np.zeros(n, np.int32)
    mod.get_function(sys.argv[4])((1,), (n,), (x, out, np.int32(n)))
    print("finished", out[:4])
""")

BAD_KERNELS = textwrap.dedent("""
    extern "C" __global__ void reverse_ok(const int* in, int* out, int n) {
      __shared__ int s[64];
      int t = threadIdx.x;
      s[t] = in[t];
      __syncthreads();
      out[t] = s[n - 1 - t];
    }

    extern "C" __global__ void reverse_racy(const int* in, int* out, int n) {
      __shared__ int s[64];
      int t = threadIdx.x;
      s[t] = in[t];
      out[t] = s[n - 1 - t];  // line 14: reads another thread's write with no barrier
    }

    extern "C" __global__ void stencil_oob(const int* in, int* out, int n) {
      int t = threadIdx.x;
      if (t < n) out[t] = in[t] + in[t + 1];  // line 19: in[n] is past the end
    }
""")


def _have_runtime(kind):
    try:
        libs = emu.sanitizer_preload(kind).split()
    except Exception:
        return False
    return all(os.path.isabs(p) and os.path.exists(p) for p in libs)


def _run(tmp_path, kind, kernel):
    src = tmp_path / "bad_kernels.cu"
    src.write_text(BAD_KERNELS)
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    env = dict(os.environ, EMU_SANITIZE=kind, LD_PRELOAD=emu.sanitizer_preload(kind),
               TSAN_OPTIONS="halt_on_error=1 exitcode=66", ASAN_OPTIONS="detect_leaks=0 exitcode=67")
    # sys.executable is the real interpreter (a pyenv shim would be a shell script under LD_PRELOAD)
    return subprocess.run([sys.executable, str(script), str(Path(emu.__file__)), str(src), "bad_kernels.cu",
                           kernel], capture_output=True, text=True, env=env, timeout=240)


@pytest.mark.skipif(not _have_runtime("thread"), reason="g++ has no libtsan here")
def test_tsan_reports_missing_syncthreads_and_passes_correct_kernel(tmp_path):
    ok = _run(tmp_path, "thread", "reverse_ok")
    assert ok.returncode == 0 and "finished" in ok.stdout, ok.stderr[-3000:]
    assert "ThreadSanitizer" not in ok.stderr
    bad = _run(tmp_path, "thread", "reverse_racy")
    assert bad.returncode == 66, bad.stdout + bad.stderr[-3000:]
    assert "WARNING: ThreadSanitizer: data race" in bad.stderr
    assert "bad_kernels.cu:14" in bad.stderr, bad.stderr[-3000:]


@pytest.mark.skipif(not _have_runtime("address"), reason="g++ has no libasan here")
def test_asan_reports_off_by_one_read(tmp_path):
    bad = _run(tmp_path, "address", "stencil_oob")
    assert bad.returncode != 0, bad.stdout + bad.stderr[-3000:]
    assert "heap-buffer-overflow" in bad.stderr, bad.stderr[-3000:]
    assert "bad_kernels.cu:19" in bad.stderr
