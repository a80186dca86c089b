"""Real MNIST, small: the seed MLP and CNN learn from a few thousand images in seconds.

The data come from ``$DLGPU_DATASETS/mnist/`` (CI: ``DLGPU_DATASETS=../shared/data``, made absolute in
tests/conftest.py).  Full-dataset runs are marked ``slow`` (``pytest -m slow``).
"""


import numpy as np
import pytest

import dlgpu
from dlgpu import layers


@pytest.fixture(scope="module")
def mnist(real_mnist_root):
    try:
        from dlgpu.datasets import mnist as loader
    except ImportError as exc:
        pytest.skip(f"dlgpu.datasets.mnist is not available: {exc}")
    (x_train, y_train), (x_test, y_test) = loader.load_data()
    return (x_train.astype(np.float32) / 255.0, y_train), (x_test.astype(np.float32) / 255.0, y_test)


def seed_mlp():
    return dlgpu.Sequential([
        dlgpu.Input(shape=(28, 28)),
        layers.Flatten(),
        layers.Dense(128, activation="relu"),
        layers.Dropout(0.2),
        layers.Dense(10, activation="softmax"),
    ])


def seed_cnn():
    return dlgpu.Sequential([
        dlgpu.Input(shape=(28, 28, 1)),
        layers.Conv2D(32, (3, 3), activation="relu"),
        layers.MaxPooling2D((2, 2)),
        layers.Conv2D(64, (3, 3), activation="relu"),
        layers.MaxPooling2D((2, 2)),
        layers.Flatten(),
        layers.Dense(10, activation="softmax"),
    ])


def _train(model, x, y, x_test, y_test, epochs, batch_size=32):
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(x, y, epochs=epochs, batch_size=batch_size, verbose=0)
    loss, accuracy = model.evaluate(x_test, y_test, verbose=0)
    # evaluate's accuracy is what predict says
    assert accuracy == pytest.approx(float((model.predict(x_test, verbose=0).argmax(1) == y_test).mean()))
    return accuracy


def test_mnist_shapes(mnist):
    (x_train, y_train), (x_test, y_test) = mnist
    assert x_train.shape == (60000, 28, 28) and x_test.shape == (10000, 28, 28)
    assert set(np.unique(y_train)) == set(range(10))


def test_seed_mlp_small(mnist):
    (x_train, y_train), (x_test, y_test) = mnist
    dlgpu.set_random_seed(0)
    # 10000 images: with 4000 x 3 epochs the MLP measured 0.887-0.892 (too close to 0.90 to assert);
    # 10000 x 3 epochs measured 0.922-0.932 over seeds 0-2, ~4 s on a quiet 2-core machine.
    acc = _train(seed_mlp(), x_train[:10000], y_train[:10000], x_test[:1000], y_test[:1000], epochs=3)
    assert acc >= 0.90, acc


def test_seed_cnn_small(mnist):
    (x_train, y_train), (x_test, y_test) = mnist
    dlgpu.set_random_seed(0)
    acc = _train(seed_cnn(), x_train[:4000, ..., None], y_train[:4000], x_test[:1000, ..., None], y_test[:1000],
                 epochs=2)
    assert acc >= 0.90, acc   # measured 0.937-0.947 over seeds 0-2 (3000 images: 0.906-0.926)


@pytest.mark.slow
def test_seed_mlp_full(mnist):
    (x_train, y_train), (x_test, y_test) = mnist
    dlgpu.set_random_seed(0)
    acc = _train(seed_mlp(), x_train, y_train, x_test, y_test, epochs=5)
    assert acc >= 0.975, acc   # measured 0.9781 (seed 0), 15 s on a quiet 2-core machine


@pytest.mark.slow
def test_seed_cnn_full_as_the_readme_trains_it(mnist):
    """The README's training command: the seed CNN, 2 epochs of batch 32 on 54000 images (10 % held out
    for validation), Adam with a cosine-decayed rate."""
    from dlgpu.examples import mnist as example
    acc = example.main(["--device", "cpu", "--seed", "0"])
    # Measured 0.9866, 0.9858, 0.9865 (seeds 0-2; ~30 s each on 2 cores); on all 60000 images 0.9859-0.9880
    # over seeds 0-5.  At a constant rate (batch 32, all images) the spread was wider, 0.9832-0.9893, and
    # PyTorch 2.13 with that constant-rate recipe gave 0.9874, 0.9860, 0.9884 (seeds 0-2).
    assert acc >= 0.985, acc
