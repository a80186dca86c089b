"""fit from a PyDataset whose __getitem__ does real work, read serially or ahead by worker threads.

    python bench/pydataset_workers.py [batches] [repetitions] [blur passes]

Each batch is 64 MNIST-shaped images that __getitem__ augments (a random shift and flip, a blur and a
normalisation: numpy work that releases the GIL, as image decoding does), and the seed CNN trains on them.
``workers=1`` reads each batch in the training thread when the step needs it; ``workers=2/4`` read ahead
(dlgpu/models/prefetch.py), so the reading overlaps with the training step.  Wall time per epoch, the runs
alternating, the first of each warm-up; the median of the rest.  On a 2-core machine the two compete for
the same cores, so the gain there is the lower bound of what a GPU box (training on the GPU) gets.
"""

import os
import sys
import time

if __package__ in (None, ""):
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402

import dlgpu  # noqa: E402
from dlgpu import layers  # noqa: E402


class AugmentedImages(dlgpu.utils.PyDataset):
    def __init__(self, batches, blur_passes=6, **kwargs):
        super().__init__(**kwargs)
        self.batches, self.blur_passes = batches, blur_passes
        rng = np.random.default_rng(0)
        self.images = rng.random((batches * 64, 28, 28, 1), dtype=np.float32)
        self.labels = rng.integers(0, 10, batches * 64)

    def __len__(self):
        return self.batches

    def __getitem__(self, index):
        rng = np.random.default_rng(index)
        x = self.images[index * 64:(index + 1) * 64]
        x = np.roll(x, shift=tuple(rng.integers(-2, 3, 2)), axis=(1, 2))
        x = np.where(rng.random((64, 1, 1, 1)) < 0.5, x[:, :, ::-1], x)
        for _ in range(self.blur_passes):  # a 3x3 box blur, repeated: the work a decoder or augmenter does
            padded = np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)), mode="edge")
            x = sum(padded[:, i:i + 28, j:j + 28] for i in range(3) for j in range(3)) / 9.0
        x = (x - x.mean(axis=(1, 2, 3), keepdims=True)) / (x.std(axis=(1, 2, 3), keepdims=True) + 1e-6)
        return x.astype(np.float32), self.labels[index * 64:(index + 1) * 64]


def _model():
    dlgpu.set_random_seed(0)
    model = dlgpu.Sequential([layers.Input((28, 28, 1)), layers.Conv2D(32, 3, activation="relu"),
                              layers.MaxPooling2D(), layers.Conv2D(64, 3, activation="relu"), layers.MaxPooling2D(),
                              layers.Flatten(), layers.Dense(10)])
    model.compile("adam", dlgpu.losses.SparseCategoricalCrossentropy(from_logits=True))
    return model


def main(batches=40, reps=5, blur_passes=6):
    paths = {workers: (AugmentedImages(batches, blur_passes, workers=workers, max_queue_size=8), _model())
             for workers in (1, 2, 4)}
    data = paths[1][0]
    start = time.perf_counter()
    for index in range(len(data)):
        data[index]
    reading = time.perf_counter() - start
    times = {workers: [] for workers in paths}
    for _ in range(reps + 1):
        for workers, (data, model) in paths.items():
            start = time.perf_counter()
            model.fit(data, epochs=1, shuffle=False, verbose=0)
            times[workers].append(time.perf_counter() - start)
    serial = np.median(times[1][1:])
    print(f"seed CNN, {batches} augmented batches of 64 per epoch ({blur_passes} blur passes: reading them alone "
          f"takes {reading:.2f} s); wall seconds per epoch (median of {reps})")
    for workers, runs in times.items():
        median = np.median(runs[1:])
        print(f"  workers={workers}: {median:.2f} s  ({serial / median:.2f}x the serial reader)")


if __name__ == "__main__":
    main(*(int(a) for a in sys.argv[1:4]))
