"""fit from a dlgpu.data pipeline against fit from the same arrays: the cost of the Dataset path.

    python bench/dataset_vs_arrays.py [samples] [repetitions]

An MNIST-shaped MLP (784 -> 128 -> 10, Adam) on random data, one epoch per run, on the CPU, timed by
process CPU time (less disturbed than wall time on a shared machine; set OPENBLAS_NUM_THREADS=1 for
steadier numbers).  Paths: ``fit(x, y, shuffle=True)``; ``fit(from_tensor_slices((x, y)).shuffle(n).batch(b))``
(a full-buffer shuffle: one permutation per epoch); the same with ``shuffle(1024)`` (tf.data's buffered
shuffle, a Python loop over the sample indices).  The runs alternate; the first of each is warm-up.
"""

import os
import sys
import time

if __package__ in (None, ""):
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402

import dlgpu  # noqa: E402
from dlgpu import layers  # noqa: E402
from dlgpu.data import AUTOTUNE, Dataset  # noqa: E402


def _model():
    dlgpu.set_random_seed(0)
    model = dlgpu.Sequential([layers.Input((784,)), layers.Dense(128, activation="relu"),
                              layers.Dense(10, activation="softmax")])
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def main(n=6000, reps=8):
    rng = np.random.default_rng(0)
    x, y = rng.random((n, 784), dtype=np.float32), rng.integers(0, 10, n)
    for batch in (32, 128):
        full = Dataset.from_tensor_slices((x, y)).shuffle(n).batch(batch).prefetch(AUTOTUNE)
        buffered = Dataset.from_tensor_slices((x, y)).shuffle(1024).batch(batch).prefetch(AUTOTUNE)
        models = {name: _model() for name in ("arrays", "dataset", "dataset_buffer1024")}
        runs = {"arrays": lambda: models["arrays"].fit(x, y, batch_size=batch, epochs=1, verbose=0, shuffle=True),
                "dataset": lambda: models["dataset"].fit(full, epochs=1, verbose=0),
                "dataset_buffer1024": lambda: models["dataset_buffer1024"].fit(buffered, epochs=1, verbose=0)}
        times = {name: [] for name in runs}
        for _ in range(reps):
            for name, run in runs.items():
                start = time.process_time()
                run()
                times[name].append(time.process_time() - start)
        median = {name: float(np.median(t[1:])) for name, t in times.items()}
        print(f"n={n} batch={batch}: " + ", ".join(f"{k} {v * 1e3:.1f} ms/epoch" for k, v in median.items()) +
              f"; dataset/arrays {median['dataset'] / median['arrays']:.3f}, "
              f"buffer1024/arrays {median['dataset_buffer1024'] / median['arrays']:.3f}", flush=True)


if __name__ == "__main__":
    main(*[int(a) for a in sys.argv[1:3]])
