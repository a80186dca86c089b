"""Run the benchmarks: ``python -m bench [options]`` or ``python bench/run.py [options]``.

For every case and every path: set up from the same data and initial weights, run the check (its
outputs must agree with the reference path's within the tolerance, or the path is marked WRONG
RESULT and its time is not taken), warm up, then time.  Results go to bench/results/ as JSON, a
Markdown table to the terminal and, with matplotlib, a PNG beside the JSON.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import gc
import json
import os
import sys
import traceback

if __package__ in (None, ""):  # python bench/run.py
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    import bench  # noqa: F401  (sets CUPY_TF32=0 before anything imports cupy)

import numpy as np

from bench import facts as facts_module
from bench import paths as paths_module
from bench import report, schema, timing
from bench.suites import SUITES
from bench.suites._common import NotSupported

RESULTS_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")

# Agreement needed with the reference path: |a - b| <= tol * (|b| + max|b|), per output array.
TOLERANCE = {"cpu": 1e-4, "gpu": 1e-3}
TOLERANCE_REASON = {
    "cpu": "float32 on both sides; BLAS blocking changes the summation order",
    "gpu": "GPU GEMMs, convolutions and reductions sum in other orders (tiles, atomics); TF32 is off, "
           "so 1e-3 covers float32 rounding over K up to 4096",
}
# The reference each case is checked against: the first of these that ran.  PyTorch first, as the
# independent implementation; dlgpu's numpy backend when PyTorch is missing.
REFERENCE_ORDER = ("torch-cpu", "dlgpu-cpu", "numpy-handwritten", "keras-cpu", "torch-gpu",
                   "dlgpu-gpu-generic", "dlgpu-gpu-kernels")
PROFILES = {
    "tiny": {"warmup": 1, "reps": 2, "min_rep_s": 0.0, "budget_s": 0.5},
    "quick": {"warmup": 1, "reps": 3, "min_rep_s": 0.01, "budget_s": 1.0, "min_warmup_s": 0.05},
    "full": {"warmup": 3, "reps": 7, "min_rep_s": 0.05, "budget_s": 6.0, "min_warmup_s": 0.3},
}


def compare_outputs(ref, out, tol):
    """(agrees, worst relative error, message) for two dicts of arrays."""
    worst = 0.0
    for key, expected in ref.items():
        got = out.get(key)
        if got is None:
            return False, None, f"output '{key}' missing"
        expected, got = np.asarray(expected, np.float64), np.asarray(got, np.float64)
        if expected.shape != got.shape:
            return False, None, f"output '{key}' has shape {got.shape}, reference {expected.shape}"
        if not np.all(np.isfinite(got)):
            return False, None, f"output '{key}' holds NaN or inf"
        scale = float(np.max(np.abs(expected))) if expected.size else 0.0
        diff = np.abs(got - expected)
        rel = float(np.max(diff / (np.abs(expected) + scale + 1e-30))) if expected.size else 0.0
        worst = max(worst, rel)
        if rel > tol:
            return False, rel, f"output '{key}' differs from the reference by {rel:.2e} (relative) > {tol:.0e}"
    return True, worst, None


def _release(path):
    """Give a GPU path's memory back before the next path allocates (gc is slow: GPU only)."""
    if path.device != "gpu":
        return
    gc.collect()
    try:
        if path.framework == "torch":
            import torch
            torch.cuda.empty_cache()
        else:
            import cupy
            cupy.get_default_memory_pool().free_all_blocks()
    except Exception:
        pass


def _peak(facts, device, kind):
    if device == "cpu":
        return facts["cpu"].get("peak_flops" if kind == "flops" else "peak_bytes_per_s")
    peak = (facts.get("gpu") or {}).get("peak") or {}
    return peak.get("flops" if kind == "flops" else "bytes_per_s")


def run_case(case, paths, profile, facts, log=print):
    entries = {p.name: None for p in paths}
    for p in paths:
        if not p.available:
            entries[p.name] = {"status": "unavailable", "reason": p.reason}
        elif p.device not in case.devices:
            entries[p.name] = {"status": "n/a", "reason": f"size meant for {'/'.join(case.devices)} only"}
    order = sorted((p for p in paths if entries[p.name] is None),
                   key=lambda p: REFERENCE_ORDER.index(p.name) if p.name in REFERENCE_ORDER else 99)
    reference = ref_outputs = ref_device = None
    for path in order:
        step = check = None
        try:
            with path.activate():
                step, check = case.setup(path)
                outputs = check()
                entry = {"status": "ok", "reason": None}
                if ref_outputs is None:
                    reference, ref_outputs, ref_device = path.name, outputs, path.device
                    entry.update(check="reference", max_rel_err=0.0, tolerance=None)
                else:
                    device = "gpu" if "gpu" in (path.device, ref_device) else "cpu"
                    tol = case.tolerance.get(device, TOLERANCE[device])
                    agrees, err, why = compare_outputs(ref_outputs, outputs, tol)
                    entry.update(check="agrees" if agrees else "differs", max_rel_err=err, tolerance=tol)
                    if not agrees:
                        entry.update(status="wrong", reason=f"WRONG RESULT vs {reference}: {why}")
                        entries[path.name] = entry
                        log(f"  {case.key:<22} {path.name:<18} WRONG RESULT: {why}")
                        continue
                kw = {**profile, **case.timing}
                t = timing.measure(step, path, **kw)
                entry.update(t)
                for kind, unit, scale in (("flops", "gflops", 1e9), ("bytes", "gbps", 1e9)):
                    if kind in case.work:
                        rate = case.work[kind] / t["median_s"]
                        entry[unit] = rate / scale
                        peak = _peak(facts, path.device, kind)
                        entry["peak_fraction"] = rate / peak if peak else None
                entries[path.name] = entry
                log(f"  {case.key:<22} {path.name:<18} {report.fmt_time(t['median_s'])}")
        except NotSupported as exc:
            entries[path.name] = {"status": "n/a", "reason": str(exc)}
        except Exception as exc:
            last = traceback.format_exc().strip().splitlines()[-1]
            entries[path.name] = {"status": "error", "reason": f"{type(exc).__name__}: {exc}"[:500]}
            log(f"  {case.key:<22} {path.name:<18} ERROR {last[:200]}")
        finally:
            del step, check
            _release(path)
    # Speed against PyTorch on the same device (>1: faster than PyTorch).
    for p in paths:
        e = entries[p.name]
        yard = entries.get(paths_module.YARDSTICK[p.device])
        if e.get("status") == "ok" and yard and yard.get("status") == "ok":
            e["speed_vs_pytorch"] = yard["median_s"] / e["median_s"]
    return {"suite": case.suite, "name": case.name, "params": case.params, "work": case.work,
            "devices": list(case.devices), "reference": reference, "tolerance_reason": case.tolerance_reason, "entries": entries}


def parse_args(argv):
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--suite", default="ops,models,e2e", help="comma-separated: ops, models, e2e (default: all)")
    p.add_argument("--device", default="all", help="cpu, gpu, or all (default: every device here)")
    p.add_argument("--paths", default=None, help=f"comma-separated subset of: {', '.join(paths_module.ORDER)}")
    p.add_argument("--size", choices=("tiny", "quick", "full"), default="full", help="problem sizes (default full)")
    p.add_argument("--quick", action="store_true", help="small sizes and few repetitions: under a minute on 2 CPU cores")
    p.add_argument("--reps", type=int, default=None, help="timed repetitions per path (default: 3 quick, 7 full)")
    p.add_argument("--warmup", type=int, default=None, help="untimed warm-up calls")
    p.add_argument("--filter", default=None, help="only cases whose name contains this")
    p.add_argument("--out", default=RESULTS_DIR, help="folder for the JSON and PNG (default bench/results)")
    p.add_argument("--json", default=None, help="exact JSON file to write (overrides --out naming)")
    p.add_argument("--no-plot", action="store_true", help="skip the PNG")
    p.add_argument("--quiet", action="store_true", help="no per-case progress lines")
    args = p.parse_args(argv)
    if args.quick and args.size == "full":
        args.size = "quick"
    return args


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    suites = [s.strip() for s in args.suite.split(",") if s.strip()]
    unknown = [s for s in suites if s not in SUITES]
    if unknown:
        raise SystemExit(f"bench: unknown suite(s) {unknown}; choose from {sorted(SUITES)}")
    devices = ("cpu", "gpu") if args.device == "all" else tuple(d.strip() for d in args.device.split(","))
    only = set(args.paths.split(",")) if args.paths else None
    log = (lambda *a, **k: None) if args.quiet else (lambda *a, **k: print(*a, **k, file=sys.stderr, flush=True))

    paths = paths_module.discover(devices, only)
    gpu_running = any(p.available and p.device == "gpu" for p in paths)
    facts = facts_module.collect(gpu_running)
    profile = dict(PROFILES[args.size])
    if args.reps:
        profile["reps"] = args.reps
    if args.warmup is not None:
        profile["warmup"] = args.warmup
    for p in paths:
        log(f"path {p.name:<18} {'available' if p.available else 'unavailable: ' + str(p.reason)}")

    sampler = facts_module.GpuSampler() if gpu_running else None
    results = []
    started = _dt.datetime.now()
    if sampler:
        sampler.__enter__()
    try:
        for suite in suites:
            for case in SUITES[suite].cases(args.size):
                if args.filter and args.filter not in case.name:
                    continue
                results.append(run_case(case, paths, profile, facts, log))
    finally:
        if sampler:
            sampler.__exit__()
    doc = {
        "schema_version": schema.SCHEMA_VERSION,
        "created": started.isoformat(timespec="seconds"),
        "duration_s": (_dt.datetime.now() - started).total_seconds(),
        "device_slug": facts_module.device_slug(facts, devices if gpu_running else ("cpu",)),
        "command": ["python", "-m", "bench"] + list(sys.argv[1:] if argv is None else argv),
        "options": {"suites": suites, "devices": list(devices), "size": args.size, "profile": profile,
                    "filter": args.filter, "paths": sorted(only) if only else None},
        "machine": facts,
        "gpu_samples": sampler.summary() if sampler else None,
        "tolerances": {"default": TOLERANCE, "why": TOLERANCE_REASON},
        "paths": [p.as_dict() for p in paths],
        "results": results,
    }
    doc["targets"] = report.evaluate_targets(doc)
    schema.validate(json.loads(json.dumps(doc, default=_json_default)))
    json_path = args.json or _result_path(args.out, started, doc["device_slug"])
    os.makedirs(os.path.dirname(os.path.abspath(json_path)), exist_ok=True)
    with open(json_path + ".tmp", "w") as f:
        json.dump(doc, f, indent=1, default=_json_default)
    os.replace(json_path + ".tmp", json_path)
    print(report.markdown(doc))
    print(f"\nresults: {json_path}")
    if not args.no_plot:
        png = os.path.splitext(json_path)[0] + ".png"
        why = report.plot(doc, png)
        print(f"plot: {png}" if why is None else f"plot: skipped ({why})")
    return doc, json_path


def _json_default(obj):
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (np.floating,)):
        return float(obj)
    if isinstance(obj, (set, tuple)):
        return sorted(obj) if isinstance(obj, set) else list(obj)
    return str(obj)


def _result_path(folder, when, slug):
    base = os.path.join(folder, f"{when:%Y-%m-%d}-{slug}")
    path = base + ".json"
    if os.path.exists(path):  # one file per run: a second run the same day gets its time too
        path = f"{base}-{when:%H%M%S}.json"
    return path


if __name__ == "__main__":
    main()
