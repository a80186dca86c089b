"""keras.utils.text_dataset_from_directory: .txt files in class subfolders, read one batch at a time."""

from __future__ import annotations

import numpy as np

from dlgpu.utils import dataset_utils
from dlgpu.utils.dataset_utils import BatchDataset

_WHAT = "text_dataset_from_directory"


class TextDirectoryDataset(BatchDataset):
    """Text files and their labels, read when their batch is read.  Texts come as a numpy object array
    of str (UTF-8 decoded; undecodable bytes replaced), where Keras yields tf.string bytes."""

    def __init__(self, file_paths, labels, label_mode, class_names, batch_size, shuffle, seed, max_length):
        self.file_paths, self.class_names, self._max_length = list(file_paths), class_names, max_length
        self._labels = None if labels is None else dataset_utils.encode_labels(labels, label_mode,
                                                                               len(class_names or ()))
        super().__init__(len(self.file_paths), batch_size, shuffle, seed)

    def _read(self, path):
        with open(path, "rb") as f:
            # Keras truncates the bytes (tf.strings.substr), before any decoding.
            raw = f.read() if self._max_length is None else f.read(self._max_length)
        return raw.decode("utf-8", errors="replace")

    def _samples(self, indices, single):
        texts = np.empty(len(indices), dtype=object)
        texts[:] = [self._read(self.file_paths[i]) for i in indices]
        labels = None if self._labels is None else self._labels[indices]
        if single:
            texts, labels = texts[0], (None if labels is None else labels[0])
        return texts if labels is None else (texts, labels)


def text_dataset_from_directory(directory, labels="inferred", label_mode="int", class_names=None, batch_size=32,
                                max_length=None, shuffle=True, seed=None, validation_split=None, subset=None,
                                follow_links=False, verbose=True):
    """Batches of texts from the .txt files in class subfolders of ``directory``
    (keras.utils.text_dataset_from_directory).

    Returns a dlgpu PyDataset (not a tf.data.Dataset) yielding ``(texts, labels)``: texts a numpy object
    array of str, labels encoded by ``label_mode`` as image_dataset_from_directory encodes them; texts
    alone for label_mode=None.  ``max_length`` truncates each file to its first max_length bytes.  It has
    ``class_names`` (and ``file_paths``); ``subset='both'`` returns (training, validation).
    """
    labels, label_mode = dataset_utils.check_label_args(labels, label_mode, class_names, _WHAT)
    if max_length is not None and (isinstance(max_length, bool) or not isinstance(max_length, (int, np.integer))
                                   or max_length < 0):
        raise ValueError(f"{_WHAT}: `max_length` must be a non-negative integer or None; received "
                         f"max_length={max_length!r}")
    dataset_utils.check_batch_size(batch_size, _WHAT)
    dataset_utils.check_validation_split_arg(validation_split, subset, shuffle, seed, _WHAT)
    if seed is None:
        seed = int(np.random.randint(1_000_000))
    paths, labels, class_names = dataset_utils.index_directory(
        directory, labels, (".txt",), class_names, shuffle, seed, follow_links, verbose, _WHAT)
    if label_mode == "binary" and len(class_names) != 2:
        raise ValueError(f"{_WHAT}: label_mode='binary' needs exactly 2 classes; received class_names={class_names}")

    def make(subset_name, subset_shuffle):
        part_paths, part_labels = dataset_utils.training_or_validation_split(paths, labels, validation_split,
                                                                             subset_name, verbose)
        if not part_paths:
            kind = f"{subset_name} " if subset_name and validation_split else ""
            raise ValueError(f"{_WHAT}: no {kind}text files found in directory {directory!r}. Allowed format: .txt")
        return TextDirectoryDataset(part_paths, part_labels, label_mode, class_names, batch_size, subset_shuffle,
                                    seed, max_length)

    if subset == "both":
        return make("training", shuffle), make("validation", False)
    return make(subset, shuffle)
