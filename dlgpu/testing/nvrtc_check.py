"""Compile CUDA kernel files with NVRTC (the compiler cupy.RawModule uses) without a GPU.

    python -m dlgpu.testing.nvrtc_check kernels/*.cu --arch 80 --arch 90 --no-spills

Each file is compiled to a cubin for each architecture with
``-arch=sm_XX --ptxas-options=-v -std=c++17 --device-as-default-execution-space`` plus the options
the runtime loader passes (``dlgpu.backend.kernels.NVRTC_OPTIONS``).  A file fails on a compile
error, on any warning in the NVRTC/ptxas log, and with ``--no-spills`` on any spill store or load.
Registers, shared memory and spills are printed per kernel.  Needs ``cupy`` and the
``nvidia-cuda-nvrtc`` wheel; no device and no driver.  (``cupy.cuda.compiler.compile_using_nvrtc``
cannot be used: it asks the device for its architecture.)
"""
from __future__ import annotations

import argparse
import re
import sys
import time
from dataclasses import dataclass, field

BASE_OPTIONS = ("--ptxas-options=-v", "--device-as-default-execution-space")

_FUNC_RE = re.compile(r"Compiling entry function '(\w+)' for '(sm_\d+)'")
_SPILL_RE = re.compile(r"(\d+) bytes stack frame, (\d+) bytes spill stores, (\d+) bytes spill loads")
_USED_RE = re.compile(r"Used (\d+) registers(?:, used (\d+) barriers)?(?:, (\d+) bytes smem)?")


@dataclass
class KernelInfo:
    name: str
    registers: int = 0
    smem: int = 0
    stack: int = 0
    spill_stores: int = 0
    spill_loads: int = 0


@dataclass
class CheckResult:
    path: str
    arch: int
    ok: bool
    seconds: float
    log: str = ""
    cubin_bytes: int = 0
    kernels: list[KernelInfo] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def summary(self) -> str:
        head = f"{'ok  ' if self.ok else 'FAIL'} {self.path} sm_{self.arch} {self.seconds:.2f}s"
        if self.cubin_bytes:
            head += f" cubin={self.cubin_bytes}B"
        lines = [head]
        for k in self.kernels:
            lines.append(f"     {k.name:32s} regs={k.registers:3d} smem={k.smem:6d}B stack={k.stack}B "
                         f"spill_st={k.spill_stores}B spill_ld={k.spill_loads}B")
        lines += [f"     problem: {p}" for p in self.problems]
        return "\n".join(lines)


def _nvrtc():
    from cupy_backends.cuda.libs import nvrtc  # raises if CuPy or libnvrtc is missing
    nvrtc.getVersion()
    return nvrtc


def nvrtc_available() -> tuple[bool, str]:
    try:
        v = _nvrtc().getVersion()
    except Exception as exc:  # ImportError, DynamicLibNotFoundError, ...
        return False, f"NVRTC is not usable here ({type(exc).__name__}: {exc}); pip install cupy-cuda13x nvidia-cuda-nvrtc"
    return True, f"NVRTC {v[0]}.{v[1]}"


def parse_ptxas_log(log: str) -> list[KernelInfo]:
    kernels: list[KernelInfo] = []
    cur = None
    for line in log.splitlines():
        m = _FUNC_RE.search(line)
        if m:
            cur = KernelInfo(m.group(1))
            kernels.append(cur)
            continue
        if cur is None:
            continue
        m = _SPILL_RE.search(line)
        if m:
            cur.stack, cur.spill_stores, cur.spill_loads = (int(g) for g in m.groups())
        m = _USED_RE.search(line)
        if m:
            cur.registers = int(m.group(1))
            cur.smem = int(m.group(3) or 0)
    return kernels


def _loader_options() -> tuple[str, ...]:
    from dlgpu.backend.kernels import NVRTC_OPTIONS
    return tuple(NVRTC_OPTIONS)


def check_source(source: str, name: str, arch: int, no_spills: bool = False, extra_options=()) -> CheckResult:
    """Compile ``source`` (shown as ``name`` in messages) for sm_``arch``."""
    nvrtc = _nvrtc()
    opts = [f"-arch=sm_{arch}", *BASE_OPTIONS, *_loader_options(), *extra_options]
    if "-std=c++17" not in opts:
        opts.append("-std=c++17")
    t0 = time.perf_counter()
    prog = nvrtc.createProgram(source, name, [], [])
    try:
        try:
            nvrtc.compileProgram(prog, opts)
            compiled = True
        except Exception:  # NVRTCError: the reason is in the log
            compiled = False
        log = nvrtc.getProgramLog(prog)
        if isinstance(log, bytes):
            log = log.decode(errors="replace")
        cubin = nvrtc.getCUBIN(prog) if compiled else b""
    finally:
        nvrtc.destroyProgram(prog)
    res = CheckResult(name, arch, True, time.perf_counter() - t0, log=log, cubin_bytes=len(cubin))
    res.kernels = parse_ptxas_log(log)
    if not compiled:
        res.problems.append("compile error:\n" + log.strip())
    for line in log.splitlines():
        if re.search(r"\bwarning\b", line, re.I):
            res.problems.append(line.strip())
    if no_spills:
        for k in res.kernels:
            if k.spill_stores or k.spill_loads:
                res.problems.append(f"{k.name} spills {k.spill_stores} B stores / {k.spill_loads} B loads")
    res.ok = not res.problems
    return res


def check_file(path, arch: int, no_spills: bool = False) -> CheckResult:
    """Compile a kernel file as the runtime loader does: with the project's headers pasted in."""
    from dlgpu.backend.kernels import read_source
    return check_source(read_source(path), str(path), arch, no_spills)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("files", nargs="+")
    ap.add_argument("--arch", type=int, action="append", help="SM architecture, e.g. 80, 90 (repeatable)")
    ap.add_argument("--no-spills", action="store_true", help="fail on any register spill")
    args = ap.parse_args(argv)
    ok, why = nvrtc_available()
    print(why)
    if not ok:
        return 2
    archs = args.arch or [80, 90]
    failed = passed = 0
    for f in args.files:
        for arch in archs:
            res = check_file(f, arch, args.no_spills)
            print(res.summary())
            passed += res.ok
            failed += not res.ok
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
