"""Tuning sweep of our SGEMM tilings (kernels/gemm_bias_act.cu) against cuBLAS, on one GPU.

    PYTHONPATH=. python3 bench/gemm_sweep.py --out $OUT/gemm_sweep.json      # on the GPU machine
    PYTHONPATH=. python3 bench/gemm_sweep.py --check-only                     # no GPU: NVRTC each variant

Each variant is ``gemm_bias_act_variant`` compiled with its own ``-DGV_BM=.. -DGV_BN=.. ...`` (the
kernel's tiling macros).  A variant is first checked against ``cupy.matmul`` (all four transposes on an
odd shape, then every timed shape; max error <= 1e-4 x max |reference|) and dropped when wrong.  Timing
is like cupy's examples/gemm/sgemm.py: warm-up, then one CUDA event pair per call, median of --reps.

Per dense shape (M, K, N; y = relu(x @ w + b)) it times every variant fused, and as baselines:
  cublas          cupy.matmul alone (no bias, no relu: a lower bound for the matmul path)
  matmul+epi      our production "matmul" path: cupy.matmul + bias_act_forward (one pass, in place)
  fused(prod)     our production "fused" path (gemm_bias_act / gemm_bias_act_64 by the wrapper's tile rule)
  auto(prod)      dense_forward as dispatched now (which path it took is recorded)
  unfused         CuPy generic: y = x @ w; y += b; cupy.maximum(y, 0, out=y) -- what the 1.3x target compares to
  torch           torch.relu(torch.addmm(b, x, w)), TF32 off (when torch imports)
and the 4096^3 SGEMM (linear, no bias) against cupy.matmul.  Then a crossover grid (fused(prod) vs
matmul+epi over M x K=N) from which the dispatch constants of dlgpu/backend/kernel_ops/gemm_bias_act.py
(MATMUL_MIN_FLOP, MATMUL_MAX_MN_DEEP / MATMUL_MIN_K_DEEP) can be read.  TF32 is off everywhere (CuPy's
default; CUPY_TF32 is cleared here).  Written on a machine without a GPU: compiled with NVRTC for
sm_80/sm_90 there (--check-only), not run.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np

os.environ.pop("CUPY_TF32", None)

# name -> tiling: block tile BM x BN, K tile BK, per-thread TM x TN, WTX thread columns per warp,
# MINB the __launch_bounds__ min blocks per SM.  Threads = (BM/TM) * (BN/TN).  Static shared memory
# 2 * BK * (BM + BN + 8) * 4 bytes must stay <= 48 KiB.
VARIANTS = {
    "128x128k8_t8x8_w16":  dict(BM=128, BN=128, BK=8, TM=8, TN=8, WTX=16, MINB=2),   # the 2026-11-23 kernel
    "128x128k8_t8x8_w4":   dict(BM=128, BN=128, BK=8, TM=8, TN=8, WTX=4, MINB=2),
    "128x128k16_t8x8_w4":  dict(BM=128, BN=128, BK=16, TM=8, TN=8, WTX=4, MINB=2),   # gemm_bias_act now
    "128x128k16_t8x8_w8":  dict(BM=128, BN=128, BK=16, TM=8, TN=8, WTX=8, MINB=2),
    "128x128k16_t8x8_w4_b1": dict(BM=128, BN=128, BK=16, TM=8, TN=8, WTX=4, MINB=1),
    "128x256k8_t8x16_w4":  dict(BM=128, BN=256, BK=8, TM=8, TN=16, WTX=4, MINB=1),
    "256x128k8_t16x8_w4":  dict(BM=256, BN=128, BK=8, TM=16, TN=8, WTX=4, MINB=1),
    "128x64k16_t8x4_w4":   dict(BM=128, BN=64, BK=16, TM=8, TN=4, WTX=4, MINB=2),
    "64x128k16_t4x8_w4":   dict(BM=64, BN=128, BK=16, TM=4, TN=8, WTX=4, MINB=2),
    "64x64k16_t4x4_w4":    dict(BM=64, BN=64, BK=16, TM=4, TN=4, WTX=4, MINB=1),    # gemm_bias_act_64 now
    "64x64k32_t4x4_w4":    dict(BM=64, BN=64, BK=32, TM=4, TN=4, WTX=4, MINB=1),
    "64x64k16_t8x8_w4":    dict(BM=64, BN=64, BK=16, TM=8, TN=8, WTX=4, MINB=4),    # 64 threads
}
DENSE_SHAPES = [(128, 784, 128), (1024, 1024, 1024), (128, 4096, 4096), (4096, 1024, 1024), (4096, 4096, 4096)]
SGEMM_SHAPE = (4096, 4096, 4096)
CROSS_M = (128, 512, 1024, 2048, 4096)
CROSS_KN = (256, 1024, 4096)
CHECK_SHAPE = (257, 67, 131)  # (M, K, N): no dimension a multiple of any tile
TOL = 1e-4


def defines(t):
    return tuple(f"-DGV_{k}={v}" for k, v in t.items())


def threads(t):
    return (t["BM"] // t["TM"]) * (t["BN"] // t["TN"])


def check_only(archs):
    """NVRTC-compile every variant without a GPU; print registers / shared memory / spills."""
    from dlgpu.backend.kernels import kernel_dir, read_source
    from dlgpu.testing.nvrtc_check import check_source

    src = read_source(kernel_dir() / "gemm_bias_act.cu")
    bad = 0
    print(f"{'variant':26s} {'arch':5s} {'thr':>4s} {'regs':>4s} {'smem B':>7s} {'spill st/ld':>11s}  ok")
    for name, t in VARIANTS.items():
        for arch in archs:
            res = check_source(src, f"gemm_bias_act.cu[{name}]", arch, no_spills=True, extra_options=defines(t))
            k = next((k for k in res.kernels if k.name == "gemm_bias_act_variant"), None)
            if k is None:
                print(f"{name:26s} sm_{arch} FAILED: {res.problems}")
                bad += 1
                continue
            print(f"{name:26s} sm_{arch} {threads(t):4d} {k.registers:4d} {k.smem:7d} "
                  f"{k.spill_stores:5d}/{k.spill_loads:<5d}  {'ok' if res.ok else 'FAIL ' + '; '.join(res.problems)}")
            bad += not res.ok
    return 1 if bad else 0


class Timer:
    def __init__(self, cupy, warmup, reps):
        self.cp, self.warmup, self.reps = cupy, warmup, reps

    def __call__(self, fn):
        cp = self.cp
        for _ in range(self.warmup):
            fn()
        cp.cuda.Device().synchronize()
        ev = [(cp.cuda.Event(), cp.cuda.Event()) for _ in range(self.reps)]
        for a, b in ev:
            a.record()
            fn()
            b.record()
        ev[-1][1].synchronize()
        return statistics.median(cp.cuda.get_elapsed_time(a, b) for a, b in ev) * 1e3  # microseconds


def rel_err(got, ref):
    cp = __import__("cupy")
    scale = float(cp.abs(ref).max()) or 1.0
    return float(cp.abs(got - ref).max()) / scale


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", help="write the results as JSON here")
    ap.add_argument("--reps", type=int, default=25)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--budget", type=float, default=200.0, help="seconds; later sections are skipped past it")
    ap.add_argument("--check-only", action="store_true", help="no GPU: compile the variants with NVRTC")
    ap.add_argument("--arch", type=int, action="append", help="for --check-only (default 80 and 90)")
    args = ap.parse_args(argv)
    if args.check_only:
        return check_only(args.arch or [80, 90])

    import cupy as cp

    from dlgpu.backend.kernel_ops import gemm_bias_act as G
    from dlgpu.backend.kernels import NVRTC_OPTIONS, KernelLibrary, cdiv, f32, i32, kernel_dir, read_source

    t_start = time.perf_counter()
    timer = Timer(cp, args.warmup, args.reps)
    lib = KernelLibrary(cp.RawModule, cp)
    src = read_source(kernel_dir() / "gemm_bias_act.cu")
    dev = cp.cuda.Device()
    props = cp.cuda.runtime.getDeviceProperties(dev.id)
    gpu_name = props["name"].decode() if isinstance(props["name"], bytes) else str(props["name"])
    out = dict(device=gpu_name, sm_count=props["multiProcessorCount"], cupy=cp.__version__,
               python=platform.python_version(), reps=args.reps, warmup=args.warmup, tf32=False,
               constants=dict(MATMUL_MIN_FLOP=G.MATMUL_MIN_FLOP, MATMUL_MAX_MN_DEEP=G.MATMUL_MAX_MN_DEEP,
                              MATMUL_MIN_K_DEEP=G.MATMUL_MIN_K_DEEP, MIN_BIG_TILES=G._MIN_BIG_TILES),
               variants={}, dense=[], sgemm=None, crossover=[], notes=[])
    print(f"{gpu_name}, {props['multiProcessorCount']} SMs, CuPy {cp.__version__}; TF32 off")

    try:
        import torch
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
        if not torch.cuda.is_available():
            torch = None
    except Exception as exc:  # no torch, or a CPU-only build
        out["notes"].append(f"torch not timed: {type(exc).__name__}: {exc}")
        torch = None

    rng = np.random.default_rng(0)

    def rand(*shape):
        return cp.asarray(rng.standard_normal(shape, dtype=np.float32))

    # -- compile and check every variant
    kernels = {}
    for name, t in VARIANTS.items():
        info = dict(tiling=t, threads=threads(t))
        out["variants"][name] = info
        try:
            mod = cp.RawModule(code=src, options=tuple(NVRTC_OPTIONS) + defines(t))
            fn = mod.get_function("gemm_bias_act_variant")
            attrs = fn.attributes
            info.update(regs=attrs.get("num_regs"), local_bytes=attrs.get("local_size_bytes"),
                        smem_bytes=attrs.get("shared_size_bytes"))
        except Exception as exc:
            info["error"] = f"compile: {type(exc).__name__}: {str(exc)[:300]}"
            print(f"  {name}: {info['error']}")
            continue

        def launch(a, b, bias, c, m, n, k, ta=0, tb=0, act=1, fn=fn, t=t):
            fn((cdiv(n, t["BN"]), cdiv(m, t["BM"])), (threads(t),),
               (a, b, a if bias is None else bias, c, c, i32(m), i32(n), i32(k), i32(ta), i32(tb),
                i32(bias is not None), i32(act), f32(0.0), i32(0)))

        m, k, n = CHECK_SHAPE
        worst = 0.0
        for ta in (0, 1):
            for tb in (0, 1):
                a = rand(*((k, m) if ta else (m, k)))
                b = rand(*((n, k) if tb else (k, n)))
                bias = rand(n)
                c = cp.full((m, n), cp.nan, cp.float32)
                launch(a, b, bias, c, m, n, k, ta, tb)
                ref = cp.maximum(cp.matmul(a.T if ta else a, b.T if tb else b) + bias, 0)
                worst = max(worst, rel_err(c, ref))
        info["check_err"] = worst
        if not worst <= TOL:
            info["error"] = f"wrong result on {CHECK_SHAPE}: rel err {worst:.2e}"
            print(f"  {name}: {info['error']}")
            continue
        kernels[name] = launch
    print(f"{len(kernels)}/{len(VARIANTS)} variants compiled and correct ({time.perf_counter() - t_start:.1f}s)")

    def over_budget(what):
        if time.perf_counter() - t_start > args.budget:
            out["notes"].append(f"skipped {what}: past --budget {args.budget}s")
            print(f"  (skipped {what}: past the time budget)")
            return True
        return False

    # -- dense shapes
    hdr = (f"{'M,K,N':>16s} {'best variant':26s} {'best us':>8s} {'cublas':>8s} {'mm+epi':>8s} {'fused':>8s} "
           f"{'auto':>8s} {'unfused':>8s} {'torch':>8s} {'cublas/best':>11s} {'unfused/best':>12s} "
           f"{'unfused/auto':>12s}")
    print("\ndense y = relu(x @ w + b), microseconds (median)\n" + hdr)
    for (m, k, n) in DENSE_SHAPES:
        if over_budget(f"dense {m},{k},{n}"):
            continue
        x, w, bias = rand(m, k), rand(k, n), rand(n)
        ref = cp.maximum(cp.matmul(x, w) + bias, 0)
        row = dict(m=m, k=k, n=n, flop=2 * m * n * k, variants={}, wrong=[])
        c = cp.empty((m, n), cp.float32)
        for name, launch in kernels.items():
            c.fill(cp.nan)
            launch(x, w, bias, c, m, n, k)
            err = rel_err(c, ref)
            if not err <= TOL:
                row["wrong"].append(f"{name}: rel err {err:.2e}")
                continue
            row["variants"][name] = timer(lambda: launch(x, w, bias, c, m, n, k))
        base = {}
        base["cublas"] = timer(lambda: cp.matmul(x, w, out=c))
        for path in ("matmul", "fused", "auto"):
            y, _ = lib.dense_forward(x, w, bias, "relu", path=path)
            err = rel_err(y, ref)
            if not err <= TOL:
                row["wrong"].append(f"dense_forward path={path}: rel err {err:.2e}")
            base[{"matmul": "matmul+epi", "fused": "fused(prod)", "auto": "auto(prod)"}[path]] = timer(
                lambda: lib.dense_forward(x, w, bias, "relu", path=path))
        row["auto_path"] = G._choose_path(m, n, k)

        def unfused():
            y = x @ w
            y += bias
            cp.maximum(y, 0, out=y)
            return y

        base["unfused"] = timer(unfused)
        if torch is not None:
            tx, tw, tb = (torch.as_tensor(v, device="cuda") for v in (x, w, bias))
            base["torch"] = timer(lambda: torch.relu(torch.addmm(tb, tx, tw)))
        row["baselines"] = base
        if row["variants"]:
            best = min(row["variants"], key=row["variants"].get)
            bt = row["variants"][best]
            row.update(best=best, best_us=bt, cublas_over_best=base["cublas"] / bt, unfused_over_best=base["unfused"] / bt)
        row["unfused_over_auto"] = base["unfused"] / base["auto(prod)"]
        row["unfused_over_matmul_epi"] = base["unfused"] / base["matmul+epi"]
        out["dense"].append(row)
        f = lambda v: f"{v:8.1f}" if v is not None else f"{'-':>8s}"
        print(f"{f'{m},{k},{n}':>16s} {row.get('best', '-'):26s} {f(row.get('best_us'))} {f(base['cublas'])} "
              f"{f(base['matmul+epi'])} {f(base['fused(prod)'])} {f(base['auto(prod)'])} {f(base['unfused'])} "
              f"{f(base.get('torch'))} {row.get('cublas_over_best', 0):11.2f} {row.get('unfused_over_best', 0):12.2f} "
              f"{row['unfused_over_auto']:12.2f}   auto={row['auto_path']}")
        for wmsg in row["wrong"]:
            print(f"    WRONG (dropped): {wmsg}")
        del x, w, bias, ref, c

    # -- SGEMM 4096^3
    if not over_budget("sgemm"):
        m, k, n = SGEMM_SHAPE
        a, b = rand(m, k), rand(k, n)
        ref = cp.matmul(a, b)
        c = cp.empty((m, n), cp.float32)
        row = dict(m=m, k=k, n=n, variants={}, wrong=[])
        for name, launch in kernels.items():
            c.fill(cp.nan)
            launch(a, b, None, c, m, n, k, act=0)
            err = rel_err(c, ref)
            if not err <= TOL:
                row["wrong"].append(f"{name}: rel err {err:.2e}")
                continue
            row["variants"][name] = timer(lambda: launch(a, b, None, c, m, n, k, act=0))
        row["cublas"] = timer(lambda: cp.matmul(a, b, out=c))
        print(f"\nSGEMM {m}x{k}x{n}: cuBLAS {row['cublas']:.1f} us")
        for name, us in sorted(row["variants"].items(), key=lambda kv: kv[1]):
            print(f"  {name:26s} {us:9.1f} us  {row['cublas'] / us:5.2f}x cuBLAS  "
                  f"({2 * m * n * k / us / 1e6:.1f} TFLOP/s)")
        if row["variants"]:
            row["best"] = min(row["variants"], key=row["variants"].get)
            row["best_over_cublas_speed"] = row["cublas"] / row["variants"][row["best"]]
        out["sgemm"] = row
        del a, b, ref, c

    # -- crossover grid for the dispatch constants
    print(f"\ncrossover: fused(prod) vs matmul+epi (dense relu, microseconds)\n{'M,K,N':>16s} {'GFLOP':>7s} "
          f"{'fused':>8s} {'mm+epi':>8s} {'unfused':>8s}  faster   now")
    for m in CROSS_M:
        for kn in CROSS_KN:
            if over_budget(f"crossover {m},{kn},{kn}"):
                break
            x, w, bias = rand(m, kn), rand(kn, kn), rand(kn)
            fused = timer(lambda: lib.dense_forward(x, w, bias, "relu", path="fused"))
            mm = timer(lambda: lib.dense_forward(x, w, bias, "relu", path="matmul"))

            def unfused():
                y = x @ w
                y += bias
                cp.maximum(y, 0, out=y)

            unf = timer(unfused)
            faster = "fused" if fused <= mm else "matmul"
            now = G._choose_path(m, kn, kn)
            out["crossover"].append(dict(m=m, k=kn, n=kn, flop=2 * m * kn * kn, fused_us=fused, matmul_epi_us=mm,
                                         unfused_us=unf, faster=faster, rule_now=now))
            print(f"{f'{m},{kn},{kn}':>16s} {2 * m * kn * kn / 1e9:7.3f} {fused:8.1f} {mm:8.1f} {unf:8.1f}  "
                  f"{faster:7s} {now}{'' if now == faster else '  <- rule disagrees'}")
            del x, w, bias
    cross = out["crossover"]
    if cross:
        # smallest FLOP count from which matmul+epi wins at every larger grid point, for MATMUL_MIN_FLOP
        flops = sorted({r["flop"] for r in cross})
        thr = next((f for f in flops if all(r["faster"] == "matmul" for r in cross if r["flop"] >= f)), None)
        out["suggested"] = dict(MATMUL_MIN_FLOP=thr,
                                fused_wins=[(r["m"], r["k"], r["n"]) for r in cross if r["faster"] == "fused"],
                                matmul_wins=[(r["m"], r["k"], r["n"]) for r in cross if r["faster"] == "matmul"],
                                rule_disagrees=[(r["m"], r["k"], r["n"]) for r in cross if r["faster"] != r["rule_now"]])
        print(f"suggested MATMUL_MIN_FLOP (matmul+epi faster at every grid point at or above): {thr}")
    out["wall_s"] = time.perf_counter() - t_start
    print(f"\nwall {out['wall_s']:.1f}s")
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(out, indent=1, default=float))
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
