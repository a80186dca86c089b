"""image_dataset_from_directory, text_dataset_from_directory and the Pillow image helpers, on tiny files
written to a tmp directory."""

import io
import os

import numpy as np
import pytest

import dlgpu as keras
from dlgpu.utils import (PyDataset, array_to_img, image_dataset_from_directory, img_to_array, load_img, save_img,
                         text_dataset_from_directory)

Image = pytest.importorskip("PIL.Image", reason="Pillow (dlgpu[images]) is not installed")

CLASSES = ("cat", "dog", "zebra")
COLORS = {"cat": (250, 10, 10), "dog": (10, 250, 10), "zebra": (10, 10, 250)}


@pytest.fixture(scope="module")
def image_dir(tmp_path_factory):
    """3 classes x 4 images of varying sizes (PNG and JPEG, one grayscale, one RGBA, one in a nested
    folder), each a flat colour of its class; plus a non-image file that must be skipped."""
    root = tmp_path_factory.mktemp("images")
    sizes = [(6, 8), (8, 8), (10, 5), (7, 7)]
    for name in CLASSES:
        os.makedirs(root / name / "nested")
        for i, (h, w) in enumerate(sizes):
            pixels = np.zeros((h, w, 3), np.uint8) + np.array(COLORS[name], np.uint8)
            img = Image.fromarray(pixels, "RGB")
            if i == 3:
                img.convert("RGBA").save(root / name / "nested" / f"{name}_{i}.png")
            elif i == 2:
                img.save(root / name / f"{name}_{i}.jpg", quality=95)
            elif i == 1 and name == "cat":
                img.convert("L").save(root / name / f"{name}_{i}.png")
            else:
                img.save(root / name / f"{name}_{i}.png")
        (root / name / "notes.txt").write_text("not an image")
    (root / ".hidden").mkdir()
    return root


def everything(ds):
    batches = [ds[i] for i in range(len(ds))]
    if isinstance(batches[0], tuple):
        return np.concatenate([b[0] for b in batches]), np.concatenate([b[1] for b in batches])
    return np.concatenate(batches), None


def class_of(images):
    """The class each flat-coloured image shows: the channel with the largest mean."""
    return images[..., :3].mean(axis=(1, 2)).argmax(axis=-1)


def test_inferred_labels_order_and_file_paths(image_dir, capsys):
    ds = image_dataset_from_directory(image_dir, image_size=(4, 5), batch_size=5, shuffle=False)
    assert "Found 12 files belonging to 3 classes." in capsys.readouterr().out
    assert isinstance(ds, PyDataset) and len(ds) == 3 and ds.class_names == list(CLASSES)
    # Keras's order: class by class, a folder's own files (sorted) before its subfolders'.
    assert ds.file_paths == [str(image_dir / name / f) for name in CLASSES for f in
                             (f"{name}_0.png", f"{name}_1.png", f"{name}_2.jpg", f"nested/{name}_3.png")]
    assert not any(p.endswith(".txt") for p in ds.file_paths)
    x, y = ds[0]
    assert x.shape == (5, 4, 5, 3) and x.dtype == np.float32 and y.dtype == np.int32 and y.shape == (5,)
    images, labels = everything(ds)
    np.testing.assert_array_equal(labels, np.repeat([0, 1, 2], 4))
    np.testing.assert_array_equal(class_of(images[[0, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]]),
                                  labels[[0, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]])
    assert 0 <= images.min() and images.max() <= 255 and images.max() > 200  # [0, 255], not rescaled
    # The grayscale cat converted to RGB has three equal channels.
    gray = ds.file_paths.index(str(image_dir / "cat" / "cat_1.png"))
    np.testing.assert_allclose(images[gray, ..., 0], images[gray, ..., 1])


def test_class_names_choose_order_and_subset(image_dir):
    ds = image_dataset_from_directory(image_dir, class_names=["zebra", "cat"], image_size=(3, 3), shuffle=False,
                                      verbose=False)
    images, labels = everything(ds)
    assert ds.class_names == ["zebra", "cat"] and len(labels) == 8
    np.testing.assert_array_equal(labels, [0] * 4 + [1] * 4)
    assert (class_of(images[:4]) == 2).all()


@pytest.mark.parametrize("label_mode", ["int", "categorical", None])
def test_label_modes(image_dir, label_mode):
    ds = image_dataset_from_directory(image_dir, label_mode=label_mode, image_size=(4, 4), shuffle=False,
                                      verbose=False)
    images, labels = everything(ds)
    want = np.repeat([0, 1, 2], 4)
    if label_mode is None:
        assert labels is None and isinstance(ds[0], np.ndarray)
    elif label_mode == "categorical":
        assert labels.dtype == np.float32 and labels.shape == (12, 3)
        np.testing.assert_array_equal(labels, np.eye(3, dtype=np.float32)[want])
    else:
        np.testing.assert_array_equal(labels, want)


def test_binary_labels_and_explicit_labels(image_dir):
    ds = image_dataset_from_directory(image_dir, label_mode="binary", class_names=["dog", "cat"],
                                      image_size=(4, 4), shuffle=False, verbose=False)
    _, labels = everything(ds)
    assert labels.dtype == np.float32 and labels.shape == (8, 1)
    np.testing.assert_array_equal(labels[:, 0], [0] * 4 + [1] * 4)
    with pytest.raises(ValueError, match="binary.*2 classes"):
        image_dataset_from_directory(image_dir, label_mode="binary", image_size=(4, 4), verbose=False)
    explicit = list(range(12))[::-1]
    ds = image_dataset_from_directory(image_dir, labels=explicit, image_size=(4, 4), shuffle=False, verbose=False)
    np.testing.assert_array_equal(everything(ds)[1], explicit)
    assert ds.class_names == [str(i) for i in range(12)]
    with pytest.raises(ValueError, match="categorical.*labels"):
        image_dataset_from_directory(image_dir, labels=[0, 7] * 6, label_mode="categorical", verbose=False)


@pytest.mark.parametrize("color_mode,channels", [("grayscale", 1), ("rgb", 3), ("rgba", 4)])
def test_color_modes_and_sizes(image_dir, color_mode, channels):
    ds = image_dataset_from_directory(image_dir, color_mode=color_mode, image_size=(9, 2), batch_size=4,
                                      verbose=False, shuffle=False)
    x, _ = ds[2]
    assert x.shape == (4, 9, 2, channels) and x.dtype == np.float32
    if color_mode == "rgba":
        np.testing.assert_array_equal(x[..., 3], 255)


def test_resize_matches_dlgpu_resize(image_dir):
    # The JPEG-free PNG cat_0 (6x8) resized by the dataset equals dlgpu.ops.image.resize of its pixels.
    from dlgpu.ops import image as image_ops
    path = image_dir / "cat" / "cat_0.png"
    pixels = np.asarray(Image.open(path).convert("RGB"), np.float32)
    for kwargs in (dict(), dict(crop_to_aspect_ratio=True), dict(pad_to_aspect_ratio=True),
                   dict(interpolation="nearest")):
        ds = image_dataset_from_directory(image_dir, image_size=(5, 3), shuffle=False, verbose=False, batch_size=1,
                                          **kwargs)
        index = ds.file_paths.index(str(path))
        want = image_ops.resize(pixels, (5, 3), **kwargs).data
        np.testing.assert_allclose(ds[index][0][0], want, rtol=1e-6)
    ds = image_dataset_from_directory(image_dir, image_size=(5, 3), shuffle=False, verbose=False, batch_size=1,
                                      data_format="channels_first")
    assert ds[0][0].shape == (1, 3, 5, 3)


def test_validation_split_both_disjoint_and_reproducible(image_dir, capsys):
    train, val = image_dataset_from_directory(image_dir, image_size=(4, 4), batch_size=3, validation_split=0.25,
                                              subset="both", seed=7)
    out = capsys.readouterr().out
    assert "Using 9 files for training." in out and "Using 3 files for validation." in out
    assert len(train.file_paths) == 9 and len(val.file_paths) == 3 and len(train) == 3 and len(val) == 1
    assert not set(train.file_paths) & set(val.file_paths)
    assert sorted(train.file_paths + val.file_paths) == sorted(
        image_dataset_from_directory(image_dir, shuffle=False, verbose=False).file_paths)
    assert train.class_names == val.class_names == list(CLASSES)
    alone = image_dataset_from_directory(image_dir, image_size=(4, 4), validation_split=0.25, subset="validation",
                                         seed=7, verbose=False)
    assert alone.file_paths == val.file_paths
    training = image_dataset_from_directory(image_dir, image_size=(4, 4), validation_split=0.25, subset="training",
                                            seed=7, verbose=False)
    assert training.file_paths == train.file_paths
    other = image_dataset_from_directory(image_dir, image_size=(4, 4), validation_split=0.25, subset="validation",
                                         seed=8, verbose=False)
    assert other.file_paths != val.file_paths
    # Labels follow their files through the shuffle.
    images, labels = everything(train)
    want = [CLASSES.index(os.path.relpath(p, image_dir).split(os.sep)[0]) for p in train.file_paths]
    assert sorted(labels.tolist()) == sorted(want)


def test_training_reshuffles_each_epoch_validation_does_not(image_dir):
    def label_orders(seed):
        train, val = image_dataset_from_directory(image_dir, image_size=(2, 2), batch_size=4, validation_split=0.5,
                                                  subset="both", seed=seed, verbose=False)
        orders = []
        for _ in range(3):
            orders.append((np.concatenate([y for _, y in train]), np.concatenate([y for _, y in val])))
        return orders

    first, again = label_orders(1), label_orders(1)
    for (a, b), (c, d) in zip(first, again):
        np.testing.assert_array_equal(a, c)
        np.testing.assert_array_equal(b, d)
    train_orders = {tuple(t) for t, _ in first}
    assert len(train_orders) > 1
    for _, v in first[1:]:
        np.testing.assert_array_equal(v, first[0][1])


def test_unbatched_and_tf_data_api(image_dir):
    ds = image_dataset_from_directory(image_dir, image_size=(4, 4), batch_size=None, shuffle=False, verbose=False)
    x, y = ds[0]
    assert len(ds) == 12 and x.shape == (4, 4, 3) and y == 0
    assert ds.prefetch(buffer_size=-1) is ds
    scaled = ds.map(lambda x, y: (x / 255, y), num_parallel_calls=-1)  # per sample, as tf.data maps an unbatched set
    assert len(scaled) == 12 and np.array_equal(scaled[3][0], ds[3][0] / 255) and scaled[3][1] == ds[3][1]
    with pytest.raises(ValueError, match="unbatch.*rank >= 1"):  # single samples: a scalar label has no batch axis
        next(iter(ds.unbatch()))
    batched = image_dataset_from_directory(image_dir, image_size=(4, 4), batch_size=5, shuffle=False, verbose=False)
    pairs = list(batched.unbatch().batch(12).as_numpy_iterator())
    assert len(pairs) == 1 and pairs[0][0].shape == (12, 4, 4, 3)
    np.testing.assert_array_equal(pairs[0][1], [ds[i][1] for i in range(12)])
    zipped = keras.data.Dataset.zip((batched, batched.map(lambda x, y: y)))
    assert zipped.cardinality() == 3 and np.array_equal(next(iter(zipped))[1], batched[0][1])
    images, labels = next(iter(ds.take(1)))
    assert images.shape == (4, 4, 3)


@pytest.mark.parametrize("kwargs,error,name", [
    (dict(labels="folders"), ValueError, "labels"), (dict(labels=5), ValueError, "labels"),
    (dict(labels=[0] * 12, class_names=["a"]), ValueError, "class_names"),
    (dict(label_mode="sparse"), ValueError, "label_mode"), (dict(color_mode="bgr"), ValueError, "color_mode"),
    (dict(image_size=(4,)), ValueError, "image_size"), (dict(image_size=(0, 4)), ValueError, "image_size"),
    (dict(interpolation="cubic"), ValueError, "interpolation"),
    (dict(interpolation="bicubic"), NotImplementedError, "interpolation"),
    (dict(crop_to_aspect_ratio=True, pad_to_aspect_ratio=True), ValueError, "pad_to_aspect_ratio"),
    (dict(validation_split=1.5, subset="training", seed=1), ValueError, "validation_split"),
    (dict(validation_split=0.2), ValueError, "subset"), (dict(subset="training"), ValueError, "subset"),
    (dict(validation_split=0.2, subset="test", seed=1), ValueError, "subset"),
    (dict(validation_split=0.2, subset="training"), ValueError, "seed"),
    (dict(batch_size=0), ValueError, "batch_size"), (dict(class_names=["cat", "horse"]), ValueError, "class_names"),
    (dict(labels=[0, 1]), ValueError, "labels"), (dict(data_format="NCHW"), ValueError, "data_format")])
def test_bad_arguments_are_named(image_dir, kwargs, error, name):
    with pytest.raises(error, match=name):
        image_dataset_from_directory(image_dir, verbose=False, **kwargs)


def test_missing_or_empty_directory(tmp_path):
    with pytest.raises(ValueError, match="directory"):
        image_dataset_from_directory(tmp_path / "absent")
    (tmp_path / "a").mkdir()
    with pytest.raises(ValueError, match="no images found"):
        image_dataset_from_directory(tmp_path, verbose=False)


def test_tiny_cnn_trains_on_the_directory(image_dir):
    train, val = image_dataset_from_directory(image_dir, image_size=(8, 8), batch_size=4, validation_split=0.25,
                                              subset="both", seed=0, verbose=False, label_mode="categorical")
    keras.utils.set_random_seed(0)
    model = keras.Sequential([
        keras.Input((8, 8, 3)), keras.layers.Rescaling(1 / 255), keras.layers.Conv2D(4, 3, activation="relu"),
        keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(3, activation="softmax")])
    model.compile(optimizer=keras.optimizers.Adam(0.05), loss="categorical_crossentropy", metrics=["accuracy"])
    history = model.fit(train.prefetch(1), validation_data=val, epochs=15, verbose=0)
    assert history.history["loss"][-1] < history.history["loss"][0]
    assert "val_accuracy" in history.history
    predictions = model.predict(val, verbose=0)
    assert predictions.shape == (3, 3)
    # Flat colours are easy: the model learns them.
    _, accuracy = model.evaluate(train, verbose=0)
    assert accuracy > 0.6


# text_dataset_from_directory ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def text_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("texts")
    for name, words in (("neg", "bad awful"), ("pos", "good great")):
        (root / name).mkdir()
        for i in range(5):
            (root / name / f"{i}.txt").write_text(f"{words} {i} ünïcode", encoding="utf-8")
        (root / name / "skip.md").write_text("not a txt")
    return root


def test_text_dataset(text_dir, capsys):
    ds = text_dataset_from_directory(text_dir, batch_size=4, shuffle=False)
    assert "Found 10 files belonging to 2 classes." in capsys.readouterr().out
    assert ds.class_names == ["neg", "pos"] and len(ds) == 3
    texts, labels = ds[0]
    assert texts.dtype == object and texts[0] == "bad awful 0 ünïcode"
    np.testing.assert_array_equal(labels, [0, 0, 0, 0])
    all_texts = np.concatenate([t for t, _ in ds])
    all_labels = np.concatenate([y for _, y in ds])
    assert all(("good" in t) == bool(y) for t, y in zip(all_texts, all_labels))
    truncated = text_dataset_from_directory(text_dir, batch_size=None, shuffle=False, max_length=3, verbose=False)
    assert truncated[0][0] == "bad"


def test_text_label_modes_split_and_shuffle(text_dir):
    train, val = text_dataset_from_directory(text_dir, label_mode="binary", validation_split=0.2, subset="both",
                                             seed=3, verbose=False, batch_size=2)
    assert len(train.file_paths) == 8 and len(val.file_paths) == 2
    assert not set(train.file_paths) & set(val.file_paths)
    texts, labels = train[0]
    assert labels.shape == (2, 1) and labels.dtype == np.float32
    assert all(("good" in t) == bool(y) for t, y in zip(texts, labels[:, 0]))
    only_texts = text_dataset_from_directory(text_dir, labels=None, verbose=False, seed=1)
    assert isinstance(only_texts[0], np.ndarray) and len(only_texts[0]) == 10 and only_texts.class_names is None
    with pytest.raises(ValueError, match="max_length"):
        text_dataset_from_directory(text_dir, max_length=-1)
    with pytest.raises(ValueError, match="label_mode"):
        text_dataset_from_directory(text_dir, label_mode="onehot")


# load_img, img_to_array, array_to_img, save_img --------------------------------------------------------

def test_image_helpers_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, size=(5, 7, 3)).astype("float32")
    path = tmp_path / "x.png"
    save_img(path, pixels, scale=False)
    img = load_img(path)
    assert img.size == (7, 5) and img.mode == "RGB"
    back = img_to_array(img)
    assert back.dtype == np.float32 and back.shape == (5, 7, 3)
    np.testing.assert_array_equal(back, pixels)
    np.testing.assert_array_equal(img_to_array(img, data_format="channels_first"), pixels.transpose(2, 0, 1))
    gray = img_to_array(load_img(path, color_mode="grayscale"))
    assert gray.shape == (5, 7, 1)
    assert img_to_array(load_img(path, color_mode="rgba")).shape == (5, 7, 4)
    small = load_img(path, target_size=(2, 3), interpolation="bilinear")
    assert small.size == (3, 2)
    assert load_img(path, target_size=(4, 4), keep_aspect_ratio=True).size == (4, 4)
    # array_to_img scales to [0, 255] by default.
    scaled = img_to_array(array_to_img(np.linspace(0, 1, 12, dtype="float32").reshape(2, 2, 3)))
    assert scaled.min() == 0 and scaled.max() == 255
    assert array_to_img(pixels[:, :, :1], scale=False).mode == "L"
    assert array_to_img(np.full((2, 2, 1), 1000.0), scale=False).mode == "I"
    buffer = io.BytesIO()
    save_img(buffer, pixels, file_format="png", scale=False)
    buffer.seek(0)
    np.testing.assert_array_equal(img_to_array(load_img(buffer)), pixels)
    with pytest.warns(UserWarning, match="RGBA"):
        save_img(tmp_path / "y.jpg", np.zeros((3, 3, 4)))


def test_image_helpers_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="rank 3"):
        array_to_img(np.zeros((2, 2)))
    with pytest.raises(ValueError, match="channels"):
        array_to_img(np.zeros((2, 2, 2)))
    path = tmp_path / "z.png"
    save_img(path, np.zeros((2, 2, 3)))
    with pytest.raises(ValueError, match="color_mode"):
        load_img(path, color_mode="cmyk")
    with pytest.raises(ValueError, match="interpolation"):
        load_img(path, target_size=(1, 1), interpolation="area")
    with pytest.raises(ValueError, match="target_size"):
        load_img(path, target_size=(1,))
    with pytest.raises(TypeError, match="path"):
        load_img(3)
    with pytest.raises(ValueError, match="data_format"):
        img_to_array(load_img(path), data_format="NHWC")


def test_missing_pillow_says_how_to_install(monkeypatch):
    import sys
    monkeypatch.setitem(sys.modules, "PIL", None)
    with pytest.raises(ImportError, match=r"pip install 'dlgpu\[images\]'"):
        load_img("anything.png")
    with pytest.raises(ImportError, match=r"dlgpu\[images\]"):
        image_dataset_from_directory(".", verbose=False)


@pytest.mark.gpu
def test_directory_dataset_trains_the_same_on_gpu_and_cpu(image_dir):
    """The batches are host numpy arrays; fit moves each to the model's device. One epoch from the same
    weights gives the same losses and weights on both devices."""
    results = {}
    for device in ("cpu", "gpu"):
        ds = image_dataset_from_directory(image_dir, image_size=(6, 6), batch_size=4, seed=5, verbose=False)
        with keras.device(device):
            keras.utils.set_random_seed(0)
            model = keras.Sequential([keras.Input((6, 6, 3)), keras.layers.Rescaling(1 / 255),
                                      keras.layers.Conv2D(2, 3), keras.layers.Flatten(), keras.layers.Dense(3)])
            model.compile(optimizer="sgd", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
            history = model.fit(ds, epochs=2, shuffle=False, verbose=0)
            results[device] = (history.history["loss"], model.get_weights())
    np.testing.assert_allclose(results["gpu"][0], results["cpu"][0], rtol=1e-4)
    for on_gpu, on_cpu in zip(results["gpu"][1], results["cpu"][1]):
        np.testing.assert_allclose(on_gpu, on_cpu, rtol=1e-3, atol=1e-5)


def test_map_transforms_each_batch_keeps_the_shuffle_and_feeds_fit(image_dir):
    import dlgpu as keras
    from dlgpu import layers
    ds = image_dataset_from_directory(image_dir, image_size=(4, 4), batch_size=5, shuffle=True, seed=3, verbose=False)
    seen = []

    def scale(images, labels):
        seen.append(images.shape[0])
        return images / 255.0, labels

    mapped = ds.map(scale).prefetch(2)
    assert len(mapped) == len(ds) == 3 and seen == []  # lazy
    before = [y.copy() for _, y in ds]  # one pass of the source (reshuffles it after)
    first = [y.copy() for _, y in mapped]  # the mapped pass reads the source's next order
    assert seen == [5, 5, 2] and sorted(np.concatenate(first)) == sorted(np.concatenate(before))
    x0, y0 = mapped[0]
    assert x0.max() <= 1.0 and x0.dtype == np.float32
    model = keras.Sequential([keras.Input((4, 4, 3)), layers.Flatten(), layers.Dense(3)])
    model.compile(optimizer="sgd", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    history = model.fit(mapped, epochs=2, verbose=0)
    assert len(history.history["loss"]) == 2 and np.isfinite(history.history["loss"]).all()
    with pytest.raises(TypeError, match="map_func"):
        ds.map("not a function")
