"""Device facts recorded with every result: CPU, BLAS, library versions and, on a GPU, what NVML says.

Every probe is guarded: a missing library or file leaves a None and a note, never an exception.
The GPU sampler is a background thread reading clocks, power and utilisation through nvidia-ml-py
every ``interval_s`` while the benchmarks run.
"""

from __future__ import annotations

import os
import platform
import threading
import time

import numpy as np

# Peak numbers by device name (FP32 non-tensor TFLOP/s, memory TB/s), from the vendors' data sheets.
# A name that matches none is recorded as unknown and gets no "% of peak".
GPU_PEAKS = [
    # (substring of the NVML/CUDA name, label, fp32 TFLOP/s, memory TB/s)
    ("H200", "H200 SXM", 67.0, 4.8),
    ("H100 NVL", "H100 NVL", 60.0, 3.9),
    ("H100 PCIe", "H100 PCIe", 51.0, 2.0),
    ("H100", "H100 SXM (HBM3)", 67.0, 3.35),
    ("GH200", "GH200", 67.0, 4.0),
    ("A100-SXM4-80GB", "A100 SXM 80GB", 19.5, 2.039),
    ("A100 80GB PCIe", "A100 PCIe 80GB", 19.5, 1.935),
    ("A100", "A100 40GB", 19.5, 1.555),
    ("L40S", "L40S", 91.6, 0.864),
    ("L4", "L4", 30.3, 0.300),
    ("A10", "A10", 31.2, 0.600),
    ("T4", "T4", 8.1, 0.320),
    ("V100", "V100", 15.7, 0.900),
    ("RTX 4090", "RTX 4090", 82.6, 1.008),
    ("RTX 3090", "RTX 3090", 35.6, 0.936),
]


def gpu_peak(name):
    """(label, fp32 FLOP/s, bytes/s) for a GPU name, or None when the device is not in the table."""
    for key, label, tflops, tbps in GPU_PEAKS:
        if key.lower() in (name or "").lower():
            return {"label": label, "flops": tflops * 1e12, "bytes_per_s": tbps * 1e12, "source": "data sheet table"}
    return None


def _cpuinfo():
    info = {"model": None, "mhz": None, "flags": set(), "physical_cores": None}
    try:
        text = open("/proc/cpuinfo").read()
    except OSError:
        return info
    cores = set()
    phys = core = None
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key, value = key.strip(), value.strip()
        if key == "model name" and info["model"] is None:
            info["model"] = value
        elif key == "cpu MHz" and info["mhz"] is None:
            try:
                info["mhz"] = float(value)
            except ValueError:
                pass
        elif key == "flags" and not info["flags"]:
            info["flags"] = set(value.split())
        elif key == "physical id":
            phys = value
        elif key == "core id":
            core = value
            cores.add((phys, core))
    info["physical_cores"] = len(cores) or None
    return info


def cpu_facts():
    info = _cpuinfo()
    logical = os.cpu_count()
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        usable = logical
    flags = info["flags"]
    # FP32 FLOPs per cycle per core: two FMA units x vector width x 2 (multiply and add).
    if "avx512f" in flags:
        per_cycle, isa = 64, "AVX-512"
    elif "avx2" in flags and "fma" in flags:
        per_cycle, isa = 32, "AVX2+FMA"
    elif flags:
        per_cycle, isa = 8, "SSE"
    else:
        per_cycle, isa = None, "unknown"
    cores = min(info["physical_cores"] or usable, usable) if usable else info["physical_cores"]
    mhz = info["mhz"]
    peak = cores * mhz * 1e6 * per_cycle if (cores and mhz and per_cycle) else None
    return {
        "model": info["model"] or platform.processor() or None,
        "logical_cores": logical,
        "usable_cores": usable,
        "physical_cores": info["physical_cores"],
        "mhz": mhz,
        "isa": isa,
        "peak_flops": peak,
        "peak_flops_note": (f"estimate: {cores} core(s) x {mhz:.0f} MHz x {per_cycle} FP32 FLOP/cycle ({isa}); "
                            f"a VM's nominal clock, not a measured peak") if peak else "unknown",
        "peak_bytes_per_s": None,
        "peak_bytes_note": "unknown for this CPU: GB/s are shown without a fraction of peak",
    }


def blas_facts():
    out = {"name": None, "version": None, "threads": None}
    try:
        config = np.show_config(mode="dicts")
        blas = config.get("Build Dependencies", {}).get("blas", {})
        out["name"], out["version"] = blas.get("name"), blas.get("version")
    except Exception as exc:  # numpy < 1.26 has no mode="dicts"
        out["note"] = f"numpy.show_config(mode='dicts') failed: {exc}"
    try:
        import threadpoolctl
        pools = threadpoolctl.threadpool_info()
        blas_pools = [p for p in pools if p.get("user_api") == "blas"]
        if blas_pools:
            out["threads"] = blas_pools[0].get("num_threads")
            out["internal_api"] = blas_pools[0].get("internal_api")
    except Exception:
        pass
    return out


def library_versions():
    versions = {"python": platform.python_version(), "numpy": np.__version__}
    try:
        import dlgpu
        versions["dlgpu"] = dlgpu.__version__
    except Exception as exc:
        versions["dlgpu"] = f"import failed: {exc}"
    try:
        import torch
        versions["torch"] = torch.__version__
        versions["torch_threads"] = torch.get_num_threads()
        versions["torch_cuda"] = torch.version.cuda
    except Exception:
        versions["torch"] = None
    try:
        import cupy
        versions["cupy"] = cupy.__version__
        try:
            versions["cuda_runtime"] = cupy.cuda.runtime.runtimeGetVersion()
            versions["cuda_driver"] = cupy.cuda.runtime.driverGetVersion()
        except Exception as exc:
            versions["cuda_runtime"] = None
            versions["cuda_note"] = str(exc)
    except Exception:
        versions["cupy"] = None
    try:
        import keras
        versions["keras"] = keras.__version__
    except Exception:
        versions["keras"] = None
    versions["CUPY_TF32"] = os.environ.get("CUPY_TF32")
    return versions


def _cupy_device_facts(why_no_nvml):
    """Without NVML, CuPy still knows the GPU's name and memory (no clocks or power): enough to name the
    results file and to look up the peak."""
    facts = {"nvml": why_no_nvml}
    try:
        import cupy
        props = cupy.cuda.runtime.getDeviceProperties(0)
    except Exception:
        return facts
    name = _str(props.get("name", b"")) or None
    facts.update({"name": name, "memory_total_bytes": props.get("totalGlobalMem"), "source": "cupy"})
    if name:
        facts["peak"] = gpu_peak(name)
    return facts


def gpu_static_facts():
    """Name, memory, clocks and power limit of GPU 0 through NVML (name and memory from CuPy without it)."""
    try:
        import pynvml
    except ImportError:
        return _cupy_device_facts("nvidia-ml-py is not installed")
    try:
        pynvml.nvmlInit()
    except Exception as exc:
        return _cupy_device_facts(f"NVML init failed: {exc}")
    try:
        h = pynvml.nvmlDeviceGetHandleByIndex(0)
        name = pynvml.nvmlDeviceGetName(h)
        name = name.decode() if isinstance(name, bytes) else name
        mem = pynvml.nvmlDeviceGetMemoryInfo(h)
        facts = {"nvml": "ok", "name": name, "memory_total_bytes": int(mem.total),
                 "driver": _str(pynvml.nvmlSystemGetDriverVersion())}
        for key, fn in (("max_sm_clock_mhz", lambda: pynvml.nvmlDeviceGetMaxClockInfo(h, pynvml.NVML_CLOCK_SM)),
                        ("max_mem_clock_mhz", lambda: pynvml.nvmlDeviceGetMaxClockInfo(h, pynvml.NVML_CLOCK_MEM)),
                        ("power_limit_w", lambda: pynvml.nvmlDeviceGetEnforcedPowerLimit(h) / 1000.0),
                        ("pcie_gen", lambda: pynvml.nvmlDeviceGetCurrPcieLinkGeneration(h))):
            try:
                facts[key] = fn()
            except Exception:
                facts[key] = None
        facts["peak"] = gpu_peak(name)
        return facts
    except Exception as exc:
        return {"nvml": f"NVML query failed: {exc}"}


def _str(v):
    return v.decode() if isinstance(v, bytes) else v


class GpuSampler:
    """Samples SM/memory clocks, power draw, utilisation and temperature of GPU 0 in a thread."""

    FIELDS = ("sm_clock_mhz", "mem_clock_mhz", "power_w", "gpu_util_pct", "mem_util_pct", "temp_c")

    def __init__(self, interval_s=0.2):
        self.interval_s = interval_s
        self.samples = []
        self.error = None
        self._stop = threading.Event()
        self._thread = None

    def __enter__(self):
        try:
            import pynvml
            pynvml.nvmlInit()
            self._nvml = pynvml
            self._handle = pynvml.nvmlDeviceGetHandleByIndex(0)
        except Exception as exc:
            self.error = f"no sampling: {exc}"
            return self
        self._thread = threading.Thread(target=self._run, name="bench-gpu-sampler", daemon=True)
        self._thread.start()
        return self

    def _run(self):
        nv, h = self._nvml, self._handle
        while not self._stop.is_set():
            try:
                util = nv.nvmlDeviceGetUtilizationRates(h)
                self.samples.append((nv.nvmlDeviceGetClockInfo(h, nv.NVML_CLOCK_SM),
                                     nv.nvmlDeviceGetClockInfo(h, nv.NVML_CLOCK_MEM),
                                     nv.nvmlDeviceGetPowerUsage(h) / 1000.0, util.gpu, util.memory,
                                     nv.nvmlDeviceGetTemperature(h, nv.NVML_TEMPERATURE_GPU)))
            except Exception as exc:  # keep what we have; say why it stopped
                self.error = f"sampling stopped: {exc}"
                return
            self._stop.wait(self.interval_s)

    def __exit__(self, *exc):
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2)

    def summary(self):
        out = {"interval_s": self.interval_s, "count": len(self.samples), "error": self.error}
        if self.samples:
            arr = np.asarray(self.samples, dtype=np.float64)
            for i, field in enumerate(self.FIELDS):
                col = arr[:, i]
                out[field] = {"min": float(col.min()), "median": float(np.median(col)), "max": float(col.max())}
        return out


def collect(gpu_requested):
    facts = {
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpu": cpu_facts(),
        "blas": blas_facts(),
        "versions": library_versions(),
        "env": {k: os.environ.get(k) for k in ("DLGPU_KERNELS", "CUPY_TF32", "OMP_NUM_THREADS",
                                                "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")},
        "time_unix": time.time(),
    }
    facts["gpu"] = gpu_static_facts() if gpu_requested else None
    return facts


def device_slug(facts, devices):
    """A short file-name-safe name for the machine: the GPU name when a GPU ran, else the CPU model."""
    gpu = facts.get("gpu") or {}
    if "gpu" in devices and gpu.get("name"):
        base = gpu["name"]
    else:
        base = f"{(facts['cpu'].get('model') or 'cpu')}-{facts['cpu'].get('usable_cores')}c"
    slug = "".join(c.lower() if c.isalnum() else "-" for c in base)
    while "--" in slug:
        slug = slug.replace("--", "-")
    return slug.strip("-")[:60] or "unknown"
