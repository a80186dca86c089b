"""What keras.RematScope buys and costs: memory and time of one training step of a deep MLP, three ways:
plain; every Dense made in RematScope("full") (each layer reruns in the backward, so only the layers'
outputs are kept, not their pre-activations); and blocks of 4 Dense layers, each block a Sequential made in
RematScope("full") (only the blocks' outputs are kept).

    python bench/remat_memory.py [depth] [width] [batch] [repetitions]

"kept after forward": the bytes allocated when the forward ends, over those before it (what the backward
needs); "peak in step": the high-water mark across forward and backward.  On the CPU both come from
tracemalloc (numpy reports its buffers to it); on a GPU (DLGPU_DEVICE=gpu) "kept" is CuPy's memory pool's
used bytes and the peak column repeats tracemalloc's host figure, which is not the GPU's.  Time: the median
of ``repetitions`` steps after a warm-up, the variants alternating.
"""

import os
import sys
import time
import tracemalloc

if __package__ in (None, ""):
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402

import dlgpu  # noqa: E402
from dlgpu import layers, ops  # noqa: E402


def build(variant, depth, width):
    dlgpu.utils.set_random_seed(0)
    with dlgpu.RematScope("full" if variant == "per layer" else None):
        dense = [layers.Dense(width, activation="gelu") for _ in range(depth)]
    if variant == "blocks of 4":
        with dlgpu.RematScope("full"):
            dense = [dlgpu.Sequential(dense[i:i + 4]) for i in range(0, depth, 4)]
    return dlgpu.Sequential([dlgpu.Input((width,)), *dense, layers.Dense(10)])


def step(model, x, y):
    with dlgpu.GradientTape() as tape:
        logits = model(x, training=True)
        loss = ops.mean(dlgpu.losses.sparse_categorical_crossentropy(y, logits, from_logits=True))
        after_forward = _device_bytes()
    grads = tape.gradient(loss, model.trainable_variables)
    return grads, after_forward


def _device_bytes():
    if dlgpu.get_device().kind == "gpu":
        import cupy
        return cupy.get_default_memory_pool().used_bytes()
    return tracemalloc.get_traced_memory()[0]


def measure(model, x, y):
    tracemalloc.start()
    tracemalloc.reset_peak()
    base = tracemalloc.get_traced_memory()[0] if dlgpu.get_device().kind != "gpu" else _device_bytes()
    _, after_forward = step(model, x, y)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return after_forward - base, peak - base


def main(depth=16, width=1024, batch=512, repetitions=5):
    rng = np.random.default_rng(0)
    x = dlgpu.ops.convert_to_tensor(rng.normal(size=(batch, width)).astype(np.float32))
    y = dlgpu.ops.convert_to_tensor(rng.integers(0, 10, batch).astype(np.int32))
    models = {variant: build(variant, depth, width) for variant in ("plain", "per layer", "blocks of 4")}
    memory, times = {}, {mode: [] for mode in models}
    for mode, model in models.items():
        step(model, x, y)  # builds, warms caches
        memory[mode] = measure(model, x, y)
    for _ in range(repetitions):
        for mode, model in models.items():
            start = time.perf_counter()
            step(model, x, y)
            times[mode].append(time.perf_counter() - start)
    print(f"device {dlgpu.get_device()}, MLP depth {depth}, width {width}, batch {batch}, GELU, one training step")
    print(f"{'variant':<13}{'kept after forward (MiB)':>26}{'peak in step (MiB)':>20}{'step (ms, median)':>20}"
          f"{'time vs plain':>15}")
    for variant in models:
        kept, peak = memory[variant]
        ratio = np.median(times[variant]) / np.median(times["plain"])
        print(f"{variant:<13}{kept / 2**20:>26.1f}{peak / 2**20:>20.1f}{1e3 * np.median(times[variant]):>20.1f}"
              f"{ratio:>14.2f}x")


if __name__ == "__main__":
    main(*(int(a) for a in sys.argv[1:]))
