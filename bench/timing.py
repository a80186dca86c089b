"""Timing done the way cupy examples/gemm/sgemm.py does it: check first (the caller), warm up, then time.

CPU paths use time.perf_counter around a synchronised loop; GPU paths record CUDA events around the
loop after a device synchronisation, so launch queues neither hide nor add time.  Each repetition runs
the step ``number`` times (calibrated so one repetition lasts at least ``min_rep_s``); the per-step
times of the repetitions give the median and the inter-quartile range.
"""

from __future__ import annotations

import time

import numpy as np


def summarize(per_call_s):
    t = np.asarray(per_call_s, dtype=np.float64)
    q1, med, q3 = np.percentile(t, [25, 50, 75])
    return {"median_s": float(med), "iqr_s": float(q3 - q1), "min_s": float(t.min()), "max_s": float(t.max()),
            "times_s": [float(v) for v in t]}


def measure(step, path, *, warmup=2, reps=5, min_rep_s=0.02, max_number=10_000, budget_s=None, number=None,
            min_warmup_s=0.0):
    """Per-call seconds of ``step()`` on ``path`` (a bench.paths.Path): warm-up excluded.

    The warm-up runs ``warmup`` calls and goes on until ``min_warmup_s`` have passed: the path measured
    before this one may leave threads spinning for a while (OpenBLAS's for ~120 ms after its last call),
    and a path timed inside that window pays for its neighbour.

    ``budget_s`` caps the total measuring time: fewer repetitions (never fewer than 2 when the
    warm-up showed one fits) are taken when a step is slow, and the result records how many ran.
    """
    warmup_end = time.perf_counter() + min_warmup_s
    calls = 0
    while calls < warmup or (min_warmup_s > 0 and time.perf_counter() < warmup_end):
        step()
        calls += 1
    path.sync()
    if number is None:
        # Calibrate: how many calls make one repetition long enough for the clock's resolution.
        t0 = time.perf_counter()
        step()
        path.sync()
        one = max(time.perf_counter() - t0, 1e-9)
        number = int(max(1, min(max_number, np.ceil(min_rep_s / one))))
        if budget_s is not None and one * number * reps > budget_s:
            reps = max(2, int(budget_s / (one * number)))
    per_call = []
    for _ in range(reps):
        events = path.events()
        if events is not None:
            start, end, elapsed_s = events
            path.sync()
            start.record()
            for _ in range(number):
                step()
            end.record()
            end.synchronize()
            per_call.append(elapsed_s(start, end) / number)
        else:
            path.sync()
            t0 = time.perf_counter()
            for _ in range(number):
                step()
            path.sync()
            per_call.append((time.perf_counter() - t0) / number)
    result = summarize(per_call)
    result.update(number=number, reps=len(per_call), warmup=calls,
                  clock="cuda-events" if path.events() is not None else "perf_counter")
    return result
