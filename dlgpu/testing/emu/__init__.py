"""Run unmodified CUDA C kernels on the CPU, for tests on machines without a GPU.

``EmuModule`` mirrors ``cupy.RawModule``: ``EmuModule(code=src).get_function(name)`` returns a
kernel called as ``k(grid, block, args, shared_mem=0)`` with numpy arrays for pointer
parameters and numpy scalars (``np.int32``, ``np.float32``) for value parameters.

How: the source is compiled by g++ with ``-include emu.h`` (see that header for the execution
model: one std::thread per CUDA thread, blocks in sequence, real barriers) into a shared
library, cached under ``$EMU_CACHE_DIR`` (default ``~/.cache/dlgpu/emu``) by a hash of the
source, the header and the flags, and loaded with ctypes.  Differences from ``RawModule``:
``path`` names a ``.cu`` *source* file (RawModule's names a cubin/ptx), launches are
synchronous, and the argument types are checked against the kernel's C signature -- a Python
``float`` for a ``float`` parameter is a ``TypeError`` here, where CuPy would silently pass a
``double``.

Environment:
  EMU_CACHE_DIR          build cache folder
  EMU_SANITIZE           ``thread`` or ``address``: build with TSan/ASan (the runtime must be
                         LD_PRELOADed into python; see ``sanitizer_preload()``)
  EMU_DEADLOCK_SECONDS   how long every thread may sit at barriers before the launch is
                         reported as a deadlock (default 3)
"""
from __future__ import annotations

import ctypes
import hashlib
import os
import re
import subprocess
import tempfile
import threading
from pathlib import Path

import numpy as np

__all__ = ["EmuModule", "EmuKernel", "EmuCompileError", "EmuLaunchError", "HEADER", "sanitizer_preload"]

HEADER = Path(__file__).with_name("emu.h")

_BASE_FLAGS = (
    "-std=c++20", "-O1", "-g", "-fPIC", "-shared", "-pthread",
    "-Wall", "-Wno-unknown-pragmas", "-Wno-unused-function", "-Wno-unused-variable",
    # Hidden visibility and no STB_GNU_UNIQUE: otherwise the header's inline variables
    # (thread_local threadIdx, the launch state) would be shared by every module in the process.
    "-fvisibility=hidden", "-fvisibility-inlines-hidden", "-fno-gnu-unique",
)
_SANITIZE_FLAGS = {
    "thread": ("-fsanitize=thread",),
    "address": ("-fsanitize=address", "-fno-omit-frame-pointer", "-DEMU_ASAN=1"),
}


class EmuCompileError(RuntimeError):
    """g++ rejected the kernel source; the message holds the compiler log."""


class EmuLaunchError(RuntimeError):
    """The launch was invalid or aborted (bad configuration, deadlock, unsupported mask)."""


def sanitizer_preload(kind: str) -> str:
    """The LD_PRELOAD value a python process needs to load an EMU_SANITIZE=kind build."""
    def lib(name):
        return subprocess.run(["g++", f"-print-file-name={name}"], capture_output=True, text=True).stdout.strip()
    if kind == "thread":
        return lib("libtsan.so")
    if kind == "address":  # libstdc++ too, or ASan's __cxa_throw interceptor CHECK-fails
        return f"{lib('libasan.so')} {lib('libstdc++.so')}"
    raise ValueError(f"EMU_SANITIZE must be 'thread' or 'address', got {kind!r}")


_KERNEL_RE = re.compile(
    r'extern\s+"C"\s+__global__\s+(?:__launch_bounds__\s*\([^)]*\)\s*)?void\s+'
    r'(?:__launch_bounds__\s*\([^)]*\)\s*)?([A-Za-z_]\w*)\s*\(')
_EXTERN_SHARED_RE = re.compile(
    r'^(\s*)extern\s+__shared__\s+(?:__align__\s*\(\s*\d+\s*\)\s*)?([A-Za-z_][\w\s:<>,*]*?)\s*'
    r'(?:__align__\s*\(\s*\d+\s*\)\s*)?([A-Za-z_]\w*)\s*\[\s*\]\s*;(.*)$')


def kernel_names(source: str) -> list[str]:
    """Names of the ``extern "C" __global__`` functions in ``source``, in order."""
    return list(dict.fromkeys(_KERNEL_RE.findall(_strip_comments(source))))


def _strip_comments(src: str) -> str:
    src = re.sub(r"/\*.*?\*/", lambda m: "\n" * m.group(0).count("\n"), src, flags=re.S)
    return re.sub(r"//[^\n]*", "", src)


def preprocess(source: str) -> str:
    """Rewrite ``extern __shared__ T name[];`` in place, keeping every line number.

    A macro cannot express it (``__shared__`` -> ``static`` would give ``extern static``).
    Inside a function it becomes a local pointer to the launch's dynamic shared memory; at
    file scope (brace depth 0) a one-line ``#define``.
    """
    out = []
    depth = 0
    for line in source.split("\n"):
        m = _EXTERN_SHARED_RE.match(line)
        if m:
            indent, typ, name, rest = m.groups()
            if depth > 0:
                line = f"{indent}{typ}* const {name} = ({typ}*)emu::dynamic_smem();{rest}"
            else:
                line = f"#define {name} (({typ}*)emu::dynamic_smem())"
        code = re.sub(r'"(?:\\.|[^"\\])*"', "", re.sub(r"//.*", "", line))
        depth += code.count("{") - code.count("}")
        out.append(line)
    return "\n".join(out)


_cxx_version_cache: list[str] = []


def _cxx_version() -> str:
    if not _cxx_version_cache:
        _cxx_version_cache.append(subprocess.run(["g++", "--version"], capture_output=True, text=True).stdout)
    return _cxx_version_cache[0]


def _cache_dir() -> Path:
    d = os.environ.get("EMU_CACHE_DIR") or os.path.join(os.path.expanduser("~"), ".cache", "dlgpu", "emu")
    Path(d).mkdir(parents=True, exist_ok=True)
    return Path(d)


_build_lock = threading.Lock()


class EmuModule:
    """CPU stand-in for ``cupy.RawModule`` (see the module docstring)."""

    #: the kernel loader passes ``filename=`` so that compiler errors name the .cu file
    accepts_filename = True

    def __init__(self, code: str | None = None, path: str | os.PathLike | None = None, options=(),
                 name_expressions=None, filename: str | None = None, **_ignored):
        if (code is None) == (path is None):
            raise TypeError("EmuModule: pass exactly one of code= or path=")
        if path is not None:
            from dlgpu.backend.kernels import read_source  # headers pasted in, as the GPU loader does
            filename = filename or str(path)
            code = read_source(path)
        if name_expressions:
            raise NotImplementedError("EmuModule: name_expressions (templated kernels) are not supported")
        self.code = code
        self.filename = filename or "<kernel source>"
        self.options = tuple(options)
        self._lib = None
        self._kernels: dict[str, EmuKernel] = {}

    # -- building
    def _flags(self) -> list[str]:
        flags = list(_BASE_FLAGS)
        # Of the NVRTC options only the macro definitions matter for g++.
        for opt in self.options:
            if opt.startswith(("-D", "--define-macro=")):
                flags.append("-D" + opt.split("=", 1)[1] if opt.startswith("--define-macro=") else opt)
        san = os.environ.get("EMU_SANITIZE", "").strip()
        if san:
            if san not in _SANITIZE_FLAGS:
                raise ValueError(f"EMU_SANITIZE must be 'thread' or 'address', got {san!r}")
            flags += _SANITIZE_FLAGS[san]
        return flags

    def compile(self):
        """Build (or fetch from the cache) the shared library; raises EmuCompileError."""
        if self._lib is not None:
            return
        names = kernel_names(self.code)
        src_name = self.filename.replace("\\", "/").replace('"', "")
        wrapper = (f'#line 1 "{src_name}"\n' + preprocess(self.code) + "\n#line 1 \"<emu exports>\"\n"
                   + "".join(f"EMU_EXPORT_KERNEL({n})\n" for n in names))
        flags = self._flags()
        header = HEADER.read_bytes()
        key = hashlib.sha256(b"\0".join([wrapper.encode(), header, " ".join(flags).encode(),
                                         _cxx_version().encode()])).hexdigest()[:24]
        stem = re.sub(r"\W", "_", Path(src_name).stem)[:40] or "kernels"
        out = _cache_dir() / f"{stem}-{key}.so"
        with _build_lock:
            if not out.exists():
                with tempfile.TemporaryDirectory(prefix="emu-") as tmp:
                    cpp = Path(tmp) / "emu_wrapper.cpp"
                    cpp.write_text(wrapper)
                    tmp_so = Path(tmp) / "out.so"
                    cmd = ["g++", *flags, "-include", str(HEADER), str(cpp), "-o", str(tmp_so)]
                    res = subprocess.run(cmd, capture_output=True, text=True)
                    if res.returncode != 0:
                        raise EmuCompileError(f"g++ failed to build {self.filename} for the emulator:\n"
                                              f"{res.stderr}\ncommand: {' '.join(cmd)}")
                    os.replace(tmp_so, out)  # atomic: parallel test workers may race here
        self._lib = ctypes.CDLL(str(out))
        self._names = names

    def get_function(self, name: str) -> "EmuKernel":
        self.compile()
        if name not in self._kernels:
            if name not in self._names:
                raise AttributeError(f"EmuModule({self.filename}): no extern \"C\" __global__ kernel named "
                                     f"{name!r}; found {self._names}")
            self._kernels[name] = EmuKernel(self._lib, name)
        return self._kernels[name]


_SCALARS = {
    "f4": (ctypes.c_float, "f", 4), "f8": (ctypes.c_double, "f", 8),
    "i1": (ctypes.c_int8, "i", 1), "i2": (ctypes.c_int16, "i", 2),
    "i4": (ctypes.c_int32, "i", 4), "i8": (ctypes.c_int64, "i", 8),
    "u1": (ctypes.c_uint8, "u", 1), "u2": (ctypes.c_uint16, "u", 2),
    "u4": (ctypes.c_uint32, "u", 4), "u8": (ctypes.c_uint64, "u", 8),
    "b1": (ctypes.c_bool, "b", 1),
}
_C_NAMES = {"f4": "float", "f8": "double", "i1": "int8", "i2": "int16", "i4": "int", "i8": "long long",
            "u1": "uint8", "u2": "uint16", "u4": "unsigned", "u8": "unsigned long long", "b1": "bool",
            "p": "pointer"}


def _dim3(v, what):
    if isinstance(v, (int, np.integer)):
        v = (int(v),)
    v = tuple(int(x) for x in v)
    if not 1 <= len(v) <= 3:
        raise ValueError(f"{what} must have 1 to 3 dimensions, got {v}")
    return (ctypes.c_uint * 3)(*(v + (1,) * (3 - len(v))))


class EmuKernel:
    """One kernel of an EmuModule; call as ``k(grid, block, args, shared_mem=0)``."""

    def __init__(self, lib, name):
        self.name = name
        self._launch = getattr(lib, f"emu_launch_{name}")
        self._launch.restype = ctypes.c_int
        self._launch.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t, ctypes.c_void_p,
                                 ctypes.c_double, ctypes.c_char_p, ctypes.c_int]
        sig = getattr(lib, f"emu_signature_{name}")
        sig.restype = ctypes.c_char_p
        s = sig().decode()
        self.signature = tuple(s.split(",")) if s else ()
        if "?" in self.signature:
            raise TypeError(f"kernel {name}: a parameter type (struct by value?) is not supported by EmuModule")

    def _convert(self, i, code, a):
        where = f"kernel {self.name}: argument {i} ({_C_NAMES[code]})"
        if code == "p":
            if isinstance(a, np.ndarray):
                return ctypes.c_void_p(a.ctypes.data), a
            if a is None:
                return ctypes.c_void_p(0), None
            raise TypeError(f"{where} must be a numpy array, got {type(a).__name__}")
        ctype, kind, size = _SCALARS[code]
        if isinstance(a, np.ndarray):
            raise TypeError(f"{where} is a value parameter, got an array")
        if isinstance(a, (bool, np.bool_)) and kind != "b":
            raise TypeError(f"{where}: got a bool")
        if isinstance(a, np.generic):
            dt = a.dtype
            ok = (dt.kind == kind or (kind == "i" and dt.kind == "u") or (kind == "u" and dt.kind == "i")) \
                and dt.itemsize == size
            if not ok:
                raise TypeError(f"{where} needs a {size}-byte {'float' if kind == 'f' else 'integer'} scalar "
                                f"(e.g. numpy.{np.dtype(ctype).name}), got numpy.{dt.name}")
            return ctype(a.item()), None
        if isinstance(a, int) and kind in "iu":
            lo, hi = (-(1 << (8 * size - 1)), (1 << (8 * size - 1)) - 1) if kind == "i" else (0, (1 << (8 * size)) - 1)
            if not lo <= a <= hi:
                raise OverflowError(f"{where}: {a} does not fit")
            return ctype(a), None
        if isinstance(a, float):
            raise TypeError(f"{where}: got a Python float; CuPy would pass it as a double. Pass "
                            f"numpy.float32(...)" if code == "f4" else f"{where}: got a Python float")
        raise TypeError(f"{where}: got {type(a).__name__}")

    def __call__(self, grid, block, args, shared_mem=0, stream=None):
        args = tuple(args)
        if len(args) != len(self.signature):
            raise TypeError(f"kernel {self.name} takes {len(self.signature)} arguments "
                            f"({','.join(self.signature)}), got {len(args)}")
        boxes, keep = [], []
        for i, (code, a) in enumerate(zip(self.signature, args)):
            box, ref = self._convert(i, code, a)
            boxes.append(box)
            keep.append(ref)
        argv = (ctypes.c_void_p * max(1, len(boxes)))(*[ctypes.addressof(b) for b in boxes])
        err = ctypes.create_string_buffer(1024)
        timeout = float(os.environ.get("EMU_DEADLOCK_SECONDS", "3"))
        g, b = _dim3(grid, "grid"), _dim3(block, "block")
        rc = self._launch(ctypes.addressof(g), ctypes.addressof(b), int(shared_mem), ctypes.addressof(argv),
                          timeout, err, len(err))
        del keep
        if rc != 0:
            raise EmuLaunchError(f"kernel {self.name} grid={tuple(g)} block={tuple(b)} "
                                 f"shared_mem={shared_mem}: {err.value.decode(errors='replace')}")
