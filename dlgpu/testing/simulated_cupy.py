"""A CuPy stand-in on numpy memory, to run dlgpu's GPU code paths on a machine without a GPU.

``install()`` puts this module in ``sys.modules`` as ``cupy`` (and ``cupyx``), so that
``set_device("gpu")``, dlgpu/backend/gpu.py, the kernel wrappers and every ``if xp is not np`` branch
run in CI.  Our CUDA kernels execute through the SIMT emulator (``RawModule`` is ``EmuModule``).

What it enforces, because CuPy does and numpy would let it pass (each rule checked against CuPy's
source, cupy/_core/_kernel.pyx and core.pxd):
- a numpy array is never an operand: ``gpu_array * numpy.asarray(2.0)``, ``cupy.where(c, np_a, np_b)``,
  ``cupy.concatenate([gpu_array, np_a])`` raise ``TypeError: Unsupported type`` (numpy *scalars* and
  Python numbers are fine); only ``cupy.array``/``asarray``, item assignment and index arrays take
  host arrays;
- no implicit copy to the host: ``numpy.asarray(gpu_array)`` raises; ``.get()``/``cupy.asnumpy`` copy;
- reductions and indexing to a single value give 0-d device arrays, never numpy scalars;
- names and keywords: when the real CuPy is importable (the ``kernel-ci`` extra installs it; it imports
  without a GPU), every ``cupy.<name>``, ``ndarray.<name>`` and function keyword used must exist
  in it, so code calling what CuPy lacks fails here as it would there;
- ``RawModule`` kernels take device arrays and numpy scalars, as ``cupy.RawKernel`` does.

What it cannot tell: anything about CUDA itself (timing, memory, streams, cuBLAS rounding), and CuPy
functions whose numerics differ from numpy's.  It is a check of the Python around the GPU, not of a GPU:
tests/gpu_simulated and the ``--simulated-gpu`` pytest option use it, and their results are reported
apart from the real-GPU runs.
"""

from __future__ import annotations

import functools
import inspect
import sys
import types
import weakref

import numpy as np

__all__ = ["install", "uninstall", "ndarray", "asnumpy", "real_cupy"]

_MODULE_NAMES = ("cupy", "cupyx", "cupy.cuda", "cupy.cuda.runtime", "cupy.random", "cupy.lib",
                 "cupy.lib.stride_tricks", "cupy.linalg", "cupyx.scipy", "cupyx.scipy.special")

real_cupy = None  # the installed CuPy, kept to check names against; None when it does not import


def _load_real_cupy():
    global real_cupy
    if real_cupy is None:
        try:
            import cupy as _cupy  # noqa: PLC0415 - only for its API surface; it needs no GPU to import
        except Exception:  # not installed: the simulation still runs, without the name checks
            return None
        real_cupy = _cupy
    return real_cupy


def _real_attribute(path):
    """The real CuPy object at dotted ``path`` ("cupy.lib.stride_tricks.as_strided"), or None when
    the real CuPy is not importable; AttributeError when CuPy has no such name."""
    if real_cupy is None:
        return None
    obj = real_cupy
    if path.startswith("cupyx"):
        import cupyx  # noqa: PLC0415
        obj, path = cupyx, path[len("cupyx"):]
    else:
        path = path[len("cupy"):]
    for part in filter(None, path.split(".")):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise AttributeError(f"CuPy has no {path.lstrip('.')!r} (simulated CuPy checks names against "
                                 f"CuPy {real_cupy.__version__})") from None
    return obj


def _check_keywords(path, real, kwargs):
    if real is None or not kwargs:
        return
    try:
        params = inspect.signature(real).parameters
    except (TypeError, ValueError):  # Cython functions and ufuncs: no signature to check against
        return
    if any(p.kind is p.VAR_KEYWORD for p in params.values()):
        return
    unknown = sorted(set(kwargs) - set(params))
    if unknown:
        raise TypeError(f"{path}() got unexpected keyword argument(s) {unknown} (CuPy {real_cupy.__version__} "
                        f"takes {list(params)})")


# -- device arrays ----------------------------------------------------------------------------------

_wrappers: dict[int, weakref.ref] = {}


def _wrap(value):
    """numpy results -> device arrays: one wrapper per numpy array, so ``a is b`` tests keep working."""
    if isinstance(value, np.ndarray):
        if value.dtype.kind in "OUSV":  # CuPy has no object/string arrays
            raise TypeError(f"CuPy does not support dtype {value.dtype}")
        ref = _wrappers.get(id(value))
        wrapper = ref() if ref is not None else None
        if wrapper is None or wrapper._array is not value:
            wrapper = ndarray._from_numpy(value)
            key = id(value)
            _wrappers[key] = weakref.ref(wrapper, lambda _, key=key: _wrappers.pop(key, None))
        return wrapper
    if isinstance(value, np.generic):
        return ndarray._from_numpy(np.asarray(value))
    if isinstance(value, tuple):
        return tuple(_wrap(v) for v in value)
    if isinstance(value, list):
        return [_wrap(v) for v in value]
    return value


def _unwrap(value, what):
    """Device arrays -> their numpy memory; a host numpy array is an error, as in CuPy."""
    if type(value) is ndarray:
        return value._array
    if isinstance(value, np.ndarray):
        raise TypeError(f"Unsupported type {type(value)} in {what}: CuPy takes no numpy arrays as operands "
                        f"(move it with cupy.asarray, or pass a Python or numpy scalar)")
    if isinstance(value, (list, tuple)):
        return type(value)(_unwrap(v, what) for v in value)
    if isinstance(value, dict):
        return {k: _unwrap(v, what) for k, v in value.items()}
    return value


def _unwrap_index(key):
    """Indices may be device arrays or host arrays (CuPy copies the latter over)."""
    if type(key) is ndarray:
        return key._array
    if isinstance(key, tuple):
        return tuple(_unwrap_index(k) for k in key)
    if isinstance(key, list):
        return [_unwrap_index(k) for k in key]
    return key


def _call(function, path, args, kwargs):
    """An elementwise kernel (ufunc, operator): every host array is refused, as CuPy's kernels do."""
    return _wrap(function(*_unwrap(args, path), **_unwrap(kwargs, path)))


def _host_integers_allowed(value, what):
    """A routine's later arguments: integer/bool host arrays are index-like (split points, pad widths,
    take indices), which CuPy reads on the host or copies over; host float data is still refused."""
    if isinstance(value, np.ndarray) and value.dtype.kind in "iub":
        return value
    if isinstance(value, (list, tuple)):
        return type(value)(_host_integers_allowed(v, what) for v in value)
    return _unwrap(value, what)


def _later_arguments(args, kwargs, path):
    return ([_host_integers_allowed(a, path) for a in args],
            {k: (_unwrap(v, path) if k == "out" else _host_integers_allowed(v, path)) for k, v in kwargs.items()})


def _call_method(bound, path, args, kwargs):
    """An array method: the array is the device operand, the arguments follow the routine rule."""
    args, kwargs = _later_arguments(args, kwargs, path)
    return _wrap(bound(*args, **kwargs))


def _call_routine(function, path, args, kwargs):
    """A routine (matmul, concatenate, split, pad...): its first argument is the device operand."""
    rest, kwargs = _later_arguments(args[1:], kwargs, path)
    if not args:
        return _wrap(function(**kwargs))
    return _wrap(function(_unwrap(args[0], path), *rest, **kwargs))


class _Pointer:
    def __init__(self, array):
        self.ptr = array.ctypes.data
        self.device_id = 0


def _binary(name):
    def method(self, other):
        if isinstance(other, np.ndarray):
            raise TypeError(f"Unsupported type {type(other)} in ndarray.{name}: CuPy takes no numpy arrays as "
                            f"operands (move it with cupy.asarray, or pass a Python or numpy scalar)")
        result = getattr(self._array, name)(_unwrap(other, f"ndarray.{name}"))
        return result if result is NotImplemented else _wrap(result)
    method.__name__ = name
    return method


def _unary(name):
    def method(self):
        return _wrap(getattr(self._array, name)())
    method.__name__ = name
    return method


class ndarray:  # noqa: N801 - CuPy's name
    """A device array of the simulated GPU: a numpy array that refuses to mix with host arrays."""

    __slots__ = ("_array", "__weakref__")
    __array_priority__ = 100  # as CuPy's, so numpy hands mixed operations to us

    def __init__(self, shape, dtype=float, memptr=None, strides=None, order="C"):
        if memptr is not None:
            raise NotImplementedError("simulated CuPy: ndarray(memptr=...) is not modelled")
        self._array = np.ndarray(shape, dtype, strides=strides, order=order)

    @classmethod
    def _from_numpy(cls, array):
        obj = cls.__new__(cls)
        obj._array = array
        return obj

    # host <-> device: explicit only
    def get(self, stream=None, order="C", out=None, blocking=True):
        if out is not None:
            out[...] = self._array
            return out
        return np.array(self._array, order=order)

    def set(self, arr, stream=None):
        self._array[...] = arr

    def __array__(self, dtype=None, copy=None):
        raise TypeError("Implicit conversion to a NumPy array is not allowed. Please use `.get()` to construct "
                        "a NumPy array explicitly.")

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        # numpy.add(gpu, ...) lands here; CuPy runs its own ufunc of that name with the same strictness
        fn = getattr(_module_function(ufunc.__name__, f"cupy.{ufunc.__name__}"), method if method != "__call__" else "__call__")
        return fn(*inputs, **kwargs)

    def __array_function__(self, func, types_, args, kwargs):
        # numpy.sum(gpu_array) and friends: CuPy runs its function of the same name, where it has one
        submodules = [part for part in func.__module__.split(".")[1:] if not part.startswith("_")]
        path = ".".join(["cupy", *submodules, func.__name__])
        try:
            _real_attribute(path)
        except AttributeError:
            return NotImplemented
        return _call_routine(func, path, args, kwargs)

    # attributes
    shape = property(lambda self: self._array.shape)
    dtype = property(lambda self: self._array.dtype)
    ndim = property(lambda self: self._array.ndim)
    size = property(lambda self: self._array.size)
    itemsize = property(lambda self: self._array.itemsize)
    nbytes = property(lambda self: self._array.nbytes)
    strides = property(lambda self: self._array.strides)
    flags = property(lambda self: self._array.flags)
    T = property(lambda self: _wrap(self._array.T))
    device = property(lambda self: _Device(0))  # cupy.cuda.Device, as CuPy's arrays give
    data = property(lambda self: _Pointer(self._array))

    @property
    def __cuda_array_interface__(self):  # what code tests to tell a device array (the pointer is host memory)
        a = self._array
        return {"shape": a.shape, "typestr": a.dtype.str, "data": (a.ctypes.data, not a.flags.writeable),
                "strides": None if a.flags.c_contiguous else a.strides, "version": 3}

    @property
    def base(self):
        return None if self._array.base is None else _wrap(self._array.base) \
            if isinstance(self._array.base, np.ndarray) else None

    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        _real_attribute(f"cupy.ndarray.{name}")
        attr = getattr(self._array, name)
        if not callable(attr):
            return _wrap(attr)
        real = None if real_cupy is None else getattr(real_cupy.ndarray, name)

        def method(*args, **kwargs):
            _check_keywords(f"ndarray.{name}", real, kwargs)
            return _call_method(attr, f"ndarray.{name}", args, kwargs)
        method.__name__ = name
        return method

    def __getitem__(self, key):
        return _wrap(self._array[_unwrap_index(key)])

    def __setitem__(self, key, value):
        self._array[_unwrap_index(key)] = value._array if type(value) is ndarray else value

    def __len__(self):
        return len(self._array)

    def __iter__(self):
        return (_wrap(self._array[i]) for i in range(len(self._array)))

    def __bool__(self):
        return bool(self._array)

    def __float__(self):
        return float(self._array)

    def __int__(self):
        return int(self._array)

    def __index__(self):
        return self._array.__index__()

    def __complex__(self):
        return complex(self._array)

    def __repr__(self):
        return repr(self._array).replace("array(", "array(", 1)

    def __str__(self):
        return str(self._array)

    def __hash__(self):
        raise TypeError("unhashable type: 'cupy.ndarray'")

    def __dlpack__(self, *args, **kwargs):
        raise TypeError("simulated CuPy: DLPack export is not modelled")

    def __reduce__(self):  # CuPy pickles through the host and unpickles onto the device
        return asarray, (self.get(),)


for _name in ("__add__", "__radd__", "__sub__", "__rsub__", "__mul__", "__rmul__", "__truediv__", "__rtruediv__",
              "__floordiv__", "__rfloordiv__", "__mod__", "__rmod__", "__pow__", "__rpow__", "__matmul__",
              "__rmatmul__", "__and__", "__rand__", "__or__", "__ror__", "__xor__", "__rxor__", "__lshift__",
              "__rshift__", "__lt__", "__le__", "__gt__", "__ge__", "__eq__", "__ne__", "__iadd__", "__isub__",
              "__imul__", "__itruediv__", "__ifloordiv__", "__imod__", "__ipow__", "__iand__", "__ior__", "__ixor__"):
    setattr(ndarray, _name, _binary(_name))
for _name in ("__neg__", "__pos__", "__abs__", "__invert__"):
    setattr(ndarray, _name, _unary(_name))
ndarray.__module__ = "cupy"  # dlgpu tells device arrays apart by their module, as for the real CuPy


# -- functions ----------------------------------------------------------------------------------------

_HOST_ACCEPTING = {"array", "asarray", "asanyarray"}  # the only routines that copy host data over


def asarray(a, dtype=None, order=None, *, blocking=False):
    if type(a) is ndarray:
        return a if dtype is None or a.dtype == np.dtype(dtype) else a.astype(dtype)
    return _wrap(np.array(_unwrap_index(a), dtype=dtype, order=order or "K", copy=True))


def array(obj, dtype=None, copy=True, order="K", subok=False, ndmin=0, *, blocking=False):
    if type(obj) is ndarray:
        return _wrap(np.array(obj._array, dtype=dtype, copy=copy, order=order, ndmin=ndmin))
    return _wrap(np.array(_unwrap_index(obj), dtype=dtype, copy=True, order=order, ndmin=ndmin))


asanyarray = asarray


def asnumpy(a, stream=None, order="C", out=None, blocking=True):
    if type(a) is ndarray:
        return a.get(order=order, out=out)
    return np.asarray(a, order=order)


def get_array_module(*args):
    return sys.modules[__name__] if any(type(a) is ndarray for a in args) else np


class _Ufunc:
    """A ufunc of the simulated CuPy: ``__call__`` and the methods CuPy's ufuncs have."""

    def __init__(self, ufunc, path):
        self._ufunc, self._path = ufunc, path
        self.__name__ = ufunc.__name__
        self.nin, self.nout = ufunc.nin, ufunc.nout

    def __call__(self, *args, **kwargs):
        return _call(self._ufunc, self._path, args, kwargs)

    def __getattr__(self, method):
        if method not in ("reduce", "accumulate", "reduceat", "outer", "at"):
            raise AttributeError(method)
        _real_attribute(f"{self._path}.{method}")
        # ufunc.at scatters like item assignment (host indices and values are copied over); the others are kernels
        call = _call_routine if method == "at" else _call
        return functools.partial(call, getattr(self._ufunc, method), f"{self._path}.{method}")


_function_cache: dict[str, object] = {}


def _module_function(name, path, source=np):
    """The simulated ``path`` (e.g. "cupy.matmul"): numpy's function of that name behind CuPy's rules."""
    cached = _function_cache.get(path)
    if cached is not None:
        return cached
    real = _real_attribute(path)
    target = getattr(source, name)
    if isinstance(target, np.ufunc):
        result = _Ufunc(target, path)
    elif callable(target) and not isinstance(target, type):
        def result(*args, **kwargs):
            _check_keywords(path, real, kwargs)
            return _call_routine(target, path, args, kwargs)
        result.__name__ = name
        result.__qualname__ = path
    else:
        result = target  # dtypes, constants (cupy.float32, cupy.pi)
    _function_cache[path] = result
    return result


def __getattr__(name):
    if name.startswith("__"):
        raise AttributeError(name)
    if not hasattr(np, name):
        _real_attribute(f"cupy.{name}")
        raise AttributeError(f"simulated CuPy: cupy.{name} has no numpy counterpart to run it with")
    return _module_function(name, f"cupy.{name}")


__version__ = "simulated"


def _submodule(name, namespace, **members):
    module = types.ModuleType(name)

    def lookup(attr):
        if attr.startswith("__"):
            raise AttributeError(attr)
        return _module_function(attr, f"{name}.{attr}", namespace)
    module.__getattr__ = lookup
    for key, value in members.items():
        setattr(module, key, value)
    return module


# -- random ---------------------------------------------------------------------------------------------

class RandomState:
    """cupy.random.RandomState on numpy's: CuPy's methods take ``dtype=`` where numpy's do not."""

    def __init__(self, seed=None):
        self._rs = np.random.RandomState(seed)

    def _float(self, values, dtype):
        return _wrap(np.asarray(values, dtype=dtype))

    def random_sample(self, size=None, dtype=float):
        return self._float(self._rs.random_sample(size), dtype)

    rand = None  # set below: CuPy's positional-shape form

    def standard_normal(self, size=None, dtype=float):
        return self._float(self._rs.standard_normal(size), dtype)

    def normal(self, loc=0.0, scale=1.0, size=None, dtype=float):
        return self._float(self._rs.normal(_unwrap(loc, "normal"), _unwrap(scale, "normal"), size), dtype)

    def uniform(self, low=0.0, high=1.0, size=None, dtype=float):
        return self._float(self._rs.uniform(_unwrap(low, "uniform"), _unwrap(high, "uniform"), size), dtype)

    def randint(self, low, high=None, size=None, dtype="l"):
        return _wrap(np.asarray(self._rs.randint(low, high, size), dtype=dtype))

    def binomial(self, n, p, size=None, dtype=int):
        return _wrap(np.asarray(self._rs.binomial(n, p, size), dtype=dtype))

    def permutation(self, num):
        return _wrap(self._rs.permutation(_unwrap(num, "permutation")))

    def shuffle(self, a):
        self._rs.shuffle(_unwrap(a, "shuffle"))

    def seed(self, seed=None):
        self._rs.seed(seed)


RandomState.rand = lambda self, *size, dtype=float: self.random_sample(size or None, dtype)
RandomState.randn = lambda self, *size, dtype=float: self.standard_normal(size or None, dtype)

random = _submodule("cupy.random", np.random, RandomState=RandomState,
                    seed=lambda seed=None: None, default_rng=None)
del random.default_rng


class _Generator:
    """cupy.random.Generator (default_rng) on numpy's."""

    def __init__(self, seed=None):
        self._g = np.random.default_rng(seed)

    def random(self, size=None, dtype=np.float64, out=None):
        result = self._g.random(size, dtype=np.dtype(dtype).type)
        if out is not None:
            out[...] = result
            return out
        return _wrap(result)

    def standard_normal(self, size=None, dtype=np.float64, out=None):
        result = self._g.standard_normal(size, dtype=np.dtype(dtype).type)
        if out is not None:
            out[...] = result
            return out
        return _wrap(result)

    def uniform(self, low=0.0, high=1.0, size=None, dtype=np.float64):
        return _wrap(self._g.uniform(low, high, size).astype(dtype))

    def integers(self, low, high=None, size=None, dtype=np.int64, endpoint=False):
        return _wrap(self._g.integers(low, high, size, dtype=dtype, endpoint=endpoint))

    def permutation(self, x):
        return _wrap(self._g.permutation(_unwrap(x, "permutation")))


random.default_rng = _Generator
random.Generator = _Generator


# -- cuda --------------------------------------------------------------------------------------------------

class _Device:
    """cupy.cuda.Device of the one simulated GPU (id 0); also what ``array.device`` gives."""

    def __init__(self, device=None):
        if device not in (None, 0):
            raise RuntimeError(f"simulated CuPy has one GPU (0); asked for {device}")
        self.id = 0
        self.compute_capability = "90"

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def use(self):
        return self

    def __eq__(self, other):  # as cupy.cuda.Device: equal when the ids are
        return getattr(other, "id", None) == self.id

    def __hash__(self):
        return hash(self.id)

    def synchronize(self):
        pass

    def __repr__(self):
        return "<CUDA Device 0 (simulated)>"


class _Event:
    def __init__(self, *args, **kwargs):
        import time  # noqa: PLC0415
        self._clock = time.perf_counter
        self._t = None

    def record(self, stream=None):
        self._t = self._clock()

    def synchronize(self):
        pass


def _elapsed_time(start, end):
    return (end._t - start._t) * 1e3


_PROPERTIES = {"name": b"Simulated GPU (numpy memory, SIMT emulator)", "totalGlobalMem": 8 << 30,
               "multiProcessorCount": 1, "major": 9, "minor": 0, "clockRate": 1_000_000,
               "memoryClockRate": 1_000_000, "memoryBusWidth": 64, "sharedMemPerBlock": 48 << 10}

runtime = _submodule("cupy.cuda.runtime", types.SimpleNamespace(),
                     getDeviceCount=lambda: 1,
                     getDeviceProperties=lambda i: dict(_PROPERTIES),
                     runtimeGetVersion=lambda: 12080, driverGetVersion=lambda: 12080,
                     deviceSynchronize=lambda: None, memGetInfo=lambda: (8 << 30, 8 << 30))


class _Stream:
    null = None

    def __init__(self, *args, **kwargs):
        pass

    def synchronize(self):
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


_Stream.null = _Stream()


class _RawModule:
    """cupy.RawModule compiled by g++ into the SIMT emulator: kernels take device arrays, as CuPy's."""

    def __init__(self, code=None, path=None, options=(), backend="nvrtc", translate_cucomplex=False,
                 enable_cooperative_groups=False, name_expressions=None, jitify=False):
        from dlgpu.testing.emu import EmuModule  # noqa: PLC0415 - needs g++ only when a kernel is used
        self._module = EmuModule(code=code, path=path, options=options)

    def get_function(self, name):
        kernel = self._module.get_function(name)

        def launch(grid, block, args, shared_mem=0, stream=None, enable_cooperative_groups=False):
            kernel(grid, block, [_unwrap(a, f"kernel {name}") for a in args], shared_mem=shared_mem)
        launch.__name__ = name
        return launch


cuda = _submodule("cupy.cuda", types.SimpleNamespace(),
                  Device=_Device, Event=_Event, Stream=_Stream, get_elapsed_time=_elapsed_time,
                  is_available=lambda: True, runtime=runtime,
                  get_current_stream=lambda: _Stream.null)
RawModule = _RawModule

stride_tricks = _submodule("cupy.lib.stride_tricks", np.lib.stride_tricks)
lib = _submodule("cupy.lib", np.lib, stride_tricks=stride_tricks)
linalg = _submodule("cupy.linalg", np.linalg)


def _scatter_add(a, slices, value):
    np.add.at(_unwrap(a, "cupyx.scatter_add"), _unwrap_index(slices),
              value._array if type(value) is ndarray else value)


def _scatter_reduce(ufunc, name):
    def scatter(a, slices, value):
        ufunc.at(_unwrap(a, name), _unwrap_index(slices), value._array if type(value) is ndarray else value)
    return scatter


cupyx = types.ModuleType("cupyx")
cupyx.scatter_add = _scatter_add
cupyx.scatter_max = _scatter_reduce(np.maximum, "cupyx.scatter_max")
cupyx.scatter_min = _scatter_reduce(np.minimum, "cupyx.scatter_min")
cupyx.scipy = types.ModuleType("cupyx.scipy")
cupyx.scipy.special = types.ModuleType("cupyx.scipy.special")


# -- installing -------------------------------------------------------------------------------------------

_saved: dict[str, object] = {}


def install():
    """Make ``import cupy`` give this simulation, for this process (call before dlgpu probes the GPU)."""
    _load_real_cupy()
    this = sys.modules[__name__]
    mapping = {"cupy": this, "cupyx": cupyx, "cupy.cuda": cuda, "cupy.cuda.runtime": runtime,
               "cupy.random": random, "cupy.lib": lib, "cupy.lib.stride_tricks": stride_tricks,
               "cupy.linalg": linalg, "cupyx.scipy": cupyx.scipy, "cupyx.scipy.special": cupyx.scipy.special}
    for name, module in mapping.items():
        if name not in _saved:
            _saved[name] = sys.modules.get(name)
        sys.modules[name] = module
    this.__name__ = "cupy"  # code keys things by the array module's name (xp.__name__), as CuPy's is
    from dlgpu.backend import device as _device  # noqa: PLC0415
    _device._gpu_probe = None  # probe again: the GPU is now "there"
    _device._gpu_devices.clear()


def uninstall():
    sys.modules[__spec__.name].__name__ = __spec__.name
    for name, module in _saved.items():
        if module is None:
            sys.modules.pop(name, None)
        else:
            sys.modules[name] = module
    _saved.clear()
    from dlgpu.backend import device as _device  # noqa: PLC0415
    _device._gpu_probe = None
    _device._gpu_devices.clear()
