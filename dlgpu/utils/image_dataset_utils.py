"""keras.utils.image_dataset_from_directory: image files in class subfolders, decoded (Pillow) and resized
(dlgpu.ops.image.resize, on float32 pixels, as Keras's backend-agnostic path does) one batch at a time."""

from __future__ import annotations

import numpy as np

from dlgpu.utils import dataset_utils
from dlgpu.utils.dataset_utils import BatchDataset
from dlgpu.utils.image_utils import convert_color, open_image, pil_image

ALLOWLIST_FORMATS = (".bmp", ".gif", ".jpeg", ".jpg", ".png")
_WHAT = "image_dataset_from_directory"
_CHANNELS = {"grayscale": 1, "rgb": 3, "rgba": 4}
# Keras's list; dlgpu.ops.image.resize implements the first two.
_KERAS_INTERPOLATIONS = ("bilinear", "nearest", "bicubic", "area", "lanczos3", "lanczos5", "gaussian", "mitchellcubic")


def load_image(path, image_size, color_mode, interpolation, crop_to_aspect_ratio, pad_to_aspect_ratio,
               data_format="channels_last"):
    """One image file as float32 pixels of shape image_size + (channels,) (channels first on request)."""
    from dlgpu.ops import image as image_ops
    img = convert_color(open_image(path, _WHAT), color_mode, _WHAT)  # a gif's first frame, as Keras
    x = np.asarray(img, dtype=np.float32)
    if x.ndim == 2:
        x = x[:, :, None]
    x = image_ops.resize(x, tuple(image_size), interpolation=interpolation,
                         crop_to_aspect_ratio=crop_to_aspect_ratio, pad_to_aspect_ratio=pad_to_aspect_ratio).data
    x = np.asarray(x, dtype=np.float32)
    return x.transpose(2, 0, 1) if data_format == "channels_first" else x


class ImageDirectoryDataset(BatchDataset):
    """Image files and their labels, decoded and resized when their batch is read (never all at once).
    ``file_paths`` and ``class_names`` are as Keras sets them on its datasets; ``file_paths`` lists the
    files in the dataset's initial order (sorted, or the seeded shuffle)."""

    def __init__(self, file_paths, labels, label_mode, class_names, batch_size, shuffle, seed, load_args):
        self.file_paths, self.class_names = list(file_paths), class_names
        self._labels = None if labels is None else dataset_utils.encode_labels(labels, label_mode,
                                                                               len(class_names or ()))
        self._load_args = load_args
        super().__init__(len(self.file_paths), batch_size, shuffle, seed)

    def _samples(self, indices, single):
        images = np.stack([load_image(self.file_paths[i], *self._load_args) for i in indices])
        labels = None if self._labels is None else self._labels[indices]
        if single:
            images, labels = images[0], (None if labels is None else labels[0])
        return images if labels is None else (images, labels)


def image_dataset_from_directory(directory, labels="inferred", label_mode="int", class_names=None, color_mode="rgb",
                                 batch_size=32, image_size=(256, 256), shuffle=True, seed=None, validation_split=None,
                                 subset=None, interpolation="bilinear", follow_links=False, crop_to_aspect_ratio=False,
                                 pad_to_aspect_ratio=False, data_format=None, verbose=True):
    """Batches of images from class subfolders of ``directory`` (keras.utils.image_dataset_from_directory).

    Returns a dlgpu PyDataset (not a tf.data.Dataset) yielding ``(images, labels)`` numpy batches: images
    float32 in [0, 255], shape (batch, height, width, channels); labels int32 (batch,) for
    label_mode='int', float32 one-hot for 'categorical', float32 (batch, 1) for 'binary'; images alone
    for label_mode=None or labels=None.  It has ``class_names`` and ``file_paths``; ``subset='both'``
    returns (training, validation).  Training data is reshuffled every epoch (seeded by ``seed``);
    validation data is not.  Images are decoded by Pillow and resized by dlgpu.ops.image.resize
    ('bilinear' or 'nearest'; Keras's other interpolations are refused).  ``prefetch``/``cache`` return
    the dataset itself; ``map(fn)`` maps each batch lazily (a tuple is spread over fn's arguments);
    the rest of tf.data raises AttributeError.
    """
    labels, label_mode = dataset_utils.check_label_args(labels, label_mode, class_names, _WHAT)
    if color_mode not in _CHANNELS:
        raise ValueError(f"{_WHAT}: `color_mode` must be one of 'rgb', 'rgba', 'grayscale'; received "
                         f"color_mode={color_mode!r}")
    if isinstance(image_size, (int, np.integer)) and not isinstance(image_size, bool):
        image_size = (image_size, image_size)
    if (not isinstance(image_size, (list, tuple)) or len(image_size) != 2 or
            any(isinstance(s, bool) or not isinstance(s, (int, np.integer)) or s < 1 for s in image_size)):
        raise ValueError(f"{_WHAT}: `image_size` must be (height, width), two positive integers; received "
                         f"image_size={image_size!r}")
    interpolation = interpolation.lower() if isinstance(interpolation, str) else interpolation
    if interpolation not in _KERAS_INTERPOLATIONS:
        raise ValueError(f"{_WHAT}: `interpolation` must be one of {_KERAS_INTERPOLATIONS}; received "
                         f"interpolation={interpolation!r}")
    if interpolation not in ("bilinear", "nearest"):
        raise NotImplementedError(f"{_WHAT}: interpolation={interpolation!r} is not implemented in dlgpu; use "
                                  f"'bilinear' or 'nearest'")
    if crop_to_aspect_ratio and pad_to_aspect_ratio:
        raise ValueError(f"{_WHAT}: only one of `crop_to_aspect_ratio` and `pad_to_aspect_ratio` can be True")
    if data_format not in (None, "channels_last", "channels_first"):
        raise ValueError(f"{_WHAT}: `data_format` must be 'channels_last', 'channels_first' or None; received "
                         f"data_format={data_format!r}")
    dataset_utils.check_batch_size(batch_size, _WHAT)
    dataset_utils.check_validation_split_arg(validation_split, subset, shuffle, seed, _WHAT)
    pil_image(_WHAT)  # fail now, not at the first batch, when Pillow is missing
    if seed is None:
        seed = int(np.random.randint(1_000_000))
    paths, labels, class_names = dataset_utils.index_directory(
        directory, labels, ALLOWLIST_FORMATS, class_names, shuffle, seed, follow_links, verbose, _WHAT)
    if label_mode == "binary" and len(class_names) != 2:
        raise ValueError(f"{_WHAT}: label_mode='binary' needs exactly 2 classes; received class_names={class_names}")
    load_args = (tuple(int(s) for s in image_size), color_mode, interpolation, bool(crop_to_aspect_ratio),
                 bool(pad_to_aspect_ratio), data_format or "channels_last")

    def make(subset_name, subset_shuffle):
        part_paths, part_labels = dataset_utils.training_or_validation_split(paths, labels, validation_split,
                                                                             subset_name, verbose)
        if not part_paths:
            kind = f"{subset_name} " if subset_name and validation_split else ""
            raise ValueError(f"{_WHAT}: no {kind}images found in directory {directory!r}. Allowed formats: "
                             f"{ALLOWLIST_FORMATS}")
        return ImageDirectoryDataset(part_paths, part_labels, label_mode, class_names, batch_size, subset_shuffle,
                                     seed, load_args)

    if subset == "both":
        return make("training", shuffle), make("validation", False)
    return make(subset, shuffle)
