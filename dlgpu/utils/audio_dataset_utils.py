"""keras.utils.audio_dataset_from_directory: .wav files in class subfolders, decoded by the standard library's
``wave`` module one batch at a time."""

from __future__ import annotations

import wave

import numpy as np

from dlgpu.utils import dataset_utils
from dlgpu.utils.dataset_utils import BatchDataset

ALLOWED_FORMATS = (".wav",)
_WHAT = "audio_dataset_from_directory"


def _open(path):
    try:
        return wave.open(str(path), "rb")
    except (wave.Error, EOFError) as error:
        # the wave module reads integer PCM only (format 1): float WAVs (format 3) and compressed ones stop here
        raise ValueError(f"{_WHAT}: cannot decode {str(path)!r} as integer PCM WAV: {error}") from None


def read_wav(path, output_sequence_length=None):
    """One WAV file as float32 samples of shape (samples, channels) in [-1, 1), as tf.audio.decode_wav
    gives them (16-bit values divided by 32768; 8-bit ones are unsigned, centred on 128), and its sampling
    rate.  ``output_sequence_length`` truncates or zero-pads the samples to that length."""
    with _open(path) as wav:
        channels, width, rate = wav.getnchannels(), wav.getsampwidth(), wav.getframerate()
        frames = wav.getnframes() if output_sequence_length is None else min(wav.getnframes(), output_sequence_length)
        raw = wav.readframes(frames)
    if width == 1:
        values = (np.frombuffer(raw, np.uint8).astype(np.float32) - 128.0) / 128.0
    elif width in (2, 4):
        values = np.frombuffer(raw, f"<i{width}").astype(np.float32) / float(2 ** (8 * width - 1))
    elif width == 3:
        # three little-endian bytes: placed in the top of an int32, so the sign comes along
        b = np.frombuffer(raw, np.uint8).reshape(-1, 3).astype(np.int32)
        values = ((b[:, 0] << 8 | b[:, 1] << 16 | b[:, 2] << 24) >> 8).astype(np.float32) / float(2 ** 23)
    else:
        raise ValueError(f"{_WHAT}: {str(path)!r} has {8 * width}-bit samples; 8, 16, 24 and 32-bit PCM are read")
    audio = values.reshape(-1, channels)
    if output_sequence_length is not None and audio.shape[0] < output_sequence_length:
        audio = np.concatenate([audio, np.zeros((output_sequence_length - audio.shape[0], channels), np.float32)])
    return audio, rate


class AudioDirectoryDataset(BatchDataset):
    """WAV files and their labels, decoded when their batch is read.  A batch is zero-padded at the end to
    its longest file (tf.data's padded_batch) unless ``output_sequence_length`` fixes every length."""

    def __init__(self, file_paths, labels, label_mode, class_names, batch_size, shuffle, seed, output_sequence_length):
        self.file_paths, self.class_names = list(file_paths), class_names
        self._labels = None if labels is None else dataset_utils.encode_labels(labels, label_mode,
                                                                               len(class_names or ()))
        self._length = output_sequence_length
        super().__init__(len(self.file_paths), batch_size, shuffle, seed)

    def _samples(self, indices, single):
        clips = [read_wav(self.file_paths[i], self._length)[0] for i in indices]
        labels = None if self._labels is None else self._labels[indices]
        if single:
            return clips[0] if labels is None else (clips[0], labels[0])
        channels = {c.shape[1] for c in clips}
        if len(channels) > 1:
            raise ValueError(f"{_WHAT}: the files of one batch must have the same number of channels; received "
                             f"{sorted(channels)} channels in {[self.file_paths[i] for i in indices]}")
        audio = np.zeros((len(clips), max(c.shape[0] for c in clips), channels.pop()), np.float32)
        for row, clip in zip(audio, clips):
            row[:clip.shape[0]] = clip
        return audio if labels is None else (audio, labels)


def _check_rates(paths, sampling_rate):
    """Keras resamples every file to ``sampling_rate`` (with tensorflow-io); dlgpu does not resample, so it
    accepts the argument only when it is every file's own rate (read from the headers, before any batch)."""
    for path in paths:
        with _open(path) as wav:
            rate = wav.getframerate()
        if rate != sampling_rate:
            raise NotImplementedError(f"{_WHAT}: {path!r} is sampled at {rate} Hz and sampling_rate={sampling_rate}; "
                                      f"dlgpu does not resample audio (Keras does it with tensorflow-io). Pass "
                                      f"sampling_rate=None or resample the files first.")


def audio_dataset_from_directory(directory, labels="inferred", label_mode="int", class_names=None, batch_size=32,
                                 sampling_rate=None, output_sequence_length=None, ragged=False, shuffle=True,
                                 seed=None, validation_split=None, subset=None, follow_links=False, verbose=True):
    """Batches of audio from the .wav files in class subfolders of ``directory``
    (keras.utils.audio_dataset_from_directory).

    Returns a dlgpu PyDataset (not a tf.data.Dataset) yielding ``(audio, labels)``: audio float32 of shape
    (batch, samples, channels) in [-1, 1), zero-padded to the longest file of the batch or cut/padded to
    ``output_sequence_length``; labels encoded as image_dataset_from_directory encodes them; audio alone
    for label_mode=None.  It has ``class_names`` (and ``file_paths``); ``subset='both'`` returns
    (training, validation).  Files are integer PCM WAVs (8, 16, 24 or 32-bit) read with the standard
    library.  ``sampling_rate`` must equal every file's rate (dlgpu does not resample); ``ragged=True`` is
    refused (dlgpu has no ragged tensors).
    """
    labels, label_mode = dataset_utils.check_label_args(labels, label_mode, class_names, _WHAT)
    if ragged and output_sequence_length is not None:
        raise ValueError(f"{_WHAT}: cannot set both `ragged` and `output_sequence_length`")
    if ragged:
        raise NotImplementedError(f"{_WHAT}: ragged=True is not supported (dlgpu has no ragged tensors); batches are "
                                  f"zero-padded to their longest file, or pass output_sequence_length")
    if output_sequence_length is not None and (isinstance(output_sequence_length, bool) or not isinstance(
            output_sequence_length, (int, np.integer)) or output_sequence_length < 1):
        raise ValueError(f"{_WHAT}: `output_sequence_length` must be a positive integer or None; received "
                         f"output_sequence_length={output_sequence_length!r}")
    if sampling_rate is not None:
        if isinstance(sampling_rate, bool) or not isinstance(sampling_rate, (int, np.integer)):
            raise ValueError(f"{_WHAT}: `sampling_rate` should have an integer value. Received: "
                             f"sampling_rate={sampling_rate!r}")
        if sampling_rate <= 0:
            raise ValueError(f"{_WHAT}: `sampling_rate` should be higher than 0. Received: "
                             f"sampling_rate={sampling_rate}")
    dataset_utils.check_batch_size(batch_size, _WHAT)
    dataset_utils.check_validation_split_arg(validation_split, subset, shuffle, seed, _WHAT)
    if seed is None:
        seed = int(np.random.randint(1_000_000))
    paths, labels, class_names = dataset_utils.index_directory(
        directory, labels, ALLOWED_FORMATS, class_names, shuffle, seed, follow_links, verbose, _WHAT)
    if label_mode == "binary" and len(class_names) != 2:
        raise ValueError(f"{_WHAT}: label_mode='binary' needs exactly 2 classes; received class_names={class_names}")
    if sampling_rate is not None:
        _check_rates(paths, sampling_rate)
    length = None if output_sequence_length is None else int(output_sequence_length)

    def make(subset_name, subset_shuffle):
        part_paths, part_labels = dataset_utils.training_or_validation_split(paths, labels, validation_split,
                                                                             subset_name, verbose)
        if not part_paths:
            kind = f"{subset_name} " if subset_name and validation_split else ""
            raise ValueError(f"{_WHAT}: no {kind}audio files found in directory {directory!r}. Allowed format(s): "
                             f"{ALLOWED_FORMATS}")
        return AudioDirectoryDataset(part_paths, part_labels, label_mode, class_names, batch_size, subset_shuffle,
                                     seed, length)

    if subset == "both":
        return make("training", shuffle), make("validation", False)
    return make(subset, shuffle)
