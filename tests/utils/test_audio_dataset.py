"""audio_dataset_from_directory on tiny WAV files written with the standard library's ``wave`` module."""

import os
import wave

import numpy as np
import pytest

import dlgpu
from dlgpu import layers
from dlgpu.utils import PyDataset, audio_dataset_from_directory
from dlgpu.utils.audio_dataset_utils import read_wav

CLASSES = ("down", "up")
LENGTHS = (30, 45, 38)


def _write(path, samples, rate=8000, width=2):
    """(samples, channels) ints of the given byte width as an integer PCM WAV."""
    samples = np.asarray(samples)
    if width == 1:
        raw = samples.astype(np.uint8).tobytes()
    elif width == 3:
        raw = samples.astype("<i4").view(np.uint8).reshape(-1, 4)[:, :3].tobytes()
    else:
        raw = samples.astype(f"<i{width}").tobytes()
    with wave.open(str(path), "wb") as f:
        f.setnchannels(samples.shape[1])
        f.setsampwidth(width)
        f.setframerate(rate)
        f.writeframes(raw)


def _ramp(n, direction, seed):
    """A 16-bit rising or falling ramp (the class), with a little noise."""
    rng = np.random.default_rng(seed)
    t = np.linspace(-0.5, 0.5, n) * (1 if direction == "up" else -1)
    return np.round((t + 0.02 * rng.standard_normal(n)) * 32767).astype(np.int16)[:, None]


@pytest.fixture(scope="module")
def audio_dir(tmp_path_factory):
    """2 classes x 3 mono 16-bit files of different lengths (one in a nested folder), plus a non-WAV file."""
    root = tmp_path_factory.mktemp("audio")
    for name in CLASSES:
        os.makedirs(root / name / "nested")
        for i, n in enumerate(LENGTHS):
            folder = root / name / ("nested" if i == 2 else "")
            _write(folder / f"{name}_{i}.wav", _ramp(n, name, seed=i))
        (root / name / "notes.txt").write_text("not audio")
    return root


def test_read_wav_scales_as_tensorflow(tmp_path):
    ints = np.array([[-32768, 32767], [0, 1], [16384, -16384]], np.int16)
    _write(tmp_path / "s16.wav", ints, rate=22050)
    audio, rate = read_wav(tmp_path / "s16.wav")
    assert rate == 22050 and audio.dtype == np.float32 and audio.shape == (3, 2)
    np.testing.assert_array_equal(audio, ints / 32768.0)
    # 8-bit WAVs are unsigned, centred on 128; 24 and 32-bit ones are signed
    _write(tmp_path / "u8.wav", np.array([[0], [128], [255]]), width=1)
    np.testing.assert_array_equal(read_wav(tmp_path / "u8.wav")[0][:, 0], [-1.0, 0.0, 127 / 128])
    values = np.array([[-(2 ** 23)], [-1], [2 ** 23 - 1], [12345]])
    _write(tmp_path / "s24.wav", values, width=3)
    np.testing.assert_allclose(read_wav(tmp_path / "s24.wav")[0], values / 2.0 ** 23, rtol=1e-7)
    _write(tmp_path / "s32.wav", values * 256, width=4)
    np.testing.assert_allclose(read_wav(tmp_path / "s32.wav")[0], values / 2.0 ** 23, rtol=1e-7)
    # truncated and zero-padded to a fixed length
    np.testing.assert_array_equal(read_wav(tmp_path / "s16.wav", 2)[0], ints[:2] / 32768.0)
    padded = read_wav(tmp_path / "s16.wav", 5)[0]
    assert padded.shape == (5, 2) and not padded[3:].any()


def test_read_wav_matches_scipy(tmp_path):
    wavfile = pytest.importorskip("scipy.io.wavfile")
    _write(tmp_path / "a.wav", _ramp(50, "up", 0))
    rate, ints = wavfile.read(tmp_path / "a.wav")
    np.testing.assert_array_equal(read_wav(tmp_path / "a.wav")[0][:, 0], ints / 32768.0)


def test_batches_pad_to_the_longest_file(audio_dir, capsys):
    ds = audio_dataset_from_directory(audio_dir, batch_size=4, shuffle=False)
    assert "Found 6 files belonging to 2 classes." in capsys.readouterr().out
    assert isinstance(ds, PyDataset) and len(ds) == 2 and ds.class_names == list(CLASSES)
    (x0, y0), (x1, y1) = ds[0], ds[1]
    # class by class, a folder's own files before its subfolders'
    np.testing.assert_array_equal(np.concatenate([y0, y1]), [0, 0, 0, 1, 1, 1])
    assert [os.path.basename(p) for p in ds.file_paths] == ["down_0.wav", "down_1.wav", "down_2.wav", "up_0.wav",
                                                              "up_1.wav", "up_2.wav"]
    assert x0.shape == (4, 45, 1) and x1.shape == (2, 45, 1) and x0.dtype == np.float32 and y0.dtype == np.int32
    np.testing.assert_array_equal(x0[0, :30], read_wav(ds.file_paths[0])[0])
    assert not x0[0, 30:].any()  # zero padding after the end of the shorter file
    np.testing.assert_array_equal(x1[1, :38], read_wav(ds.file_paths[5])[0])


def test_fixed_length_label_modes_and_unbatched(audio_dir):
    ds = audio_dataset_from_directory(audio_dir, batch_size=6, output_sequence_length=35, shuffle=False,
                                      label_mode="categorical", verbose=False)
    x, y = ds[0]
    assert x.shape == (6, 35, 1) and y.shape == (6, 2) and y.dtype == np.float32
    np.testing.assert_array_equal(x[1], read_wav(ds.file_paths[1])[0][:35])
    x, y = audio_dataset_from_directory(audio_dir, label_mode="binary", shuffle=False, verbose=False)[0]
    assert y.shape == (6, 1)
    x = audio_dataset_from_directory(audio_dir, label_mode=None, shuffle=False, verbose=False)[0]
    assert isinstance(x, np.ndarray) and x.shape == (6, 45, 1)
    single = audio_dataset_from_directory(audio_dir, batch_size=None, shuffle=False, verbose=False)
    assert len(single) == 6
    clip, label = single[1]
    assert clip.shape == (45, 1) and label == 0  # unbatched: each file at its own length
    labelled = audio_dataset_from_directory(audio_dir, labels=[5, 4, 3, 2, 1, 0], shuffle=False, verbose=False)
    np.testing.assert_array_equal(labelled[0][1], [5, 4, 3, 2, 1, 0])


def test_validation_split_and_shuffle(audio_dir):
    train, val = audio_dataset_from_directory(audio_dir, batch_size=2, validation_split=0.34, subset="both", seed=3,
                                              verbose=False)
    assert len(train.file_paths) == 4 and len(val.file_paths) == 2
    assert not set(train.file_paths) & set(val.file_paths)
    again = audio_dataset_from_directory(audio_dir, batch_size=2, validation_split=0.34, subset="validation", seed=3,
                                         verbose=False)
    assert again.file_paths == val.file_paths
    first = [train[i][1].tolist() for i in range(len(train))]
    train.on_epoch_end()
    assert sorted(sum(first, [])) == sorted(sum([train[i][1].tolist() for i in range(len(train))], []))


def test_sampling_rate_is_checked_not_resampled(audio_dir, tmp_path):
    ds = audio_dataset_from_directory(audio_dir, sampling_rate=8000, verbose=False)  # every file's own rate
    assert len(ds.file_paths) == 6
    with pytest.raises(NotImplementedError, match="8000 Hz and sampling_rate=16000.*resample"):
        audio_dataset_from_directory(audio_dir, sampling_rate=16000, verbose=False)


@pytest.mark.parametrize("kwargs, error, name", [
    (dict(ragged=True), NotImplementedError, "ragged"),
    (dict(ragged=True, output_sequence_length=5), ValueError, "ragged"),
    (dict(sampling_rate=8000.0), ValueError, "sampling_rate"), (dict(sampling_rate=0), ValueError, "sampling_rate"),
    (dict(output_sequence_length=0), ValueError, "output_sequence_length"),
    (dict(label_mode="sparse"), ValueError, "label_mode"), (dict(batch_size=0), ValueError, "batch_size"),
    (dict(labels="folders"), ValueError, "labels"), (dict(validation_split=0.5), ValueError, "subset"),
    (dict(class_names=["down", "sideways"]), ValueError, "class_names"),
])
def test_bad_arguments_are_named(audio_dir, kwargs, error, name):
    with pytest.raises(error, match=name):
        audio_dataset_from_directory(audio_dir, verbose=False, **kwargs)


def test_bad_files(tmp_path):
    with pytest.raises(ValueError, match="no audio files"):
        audio_dataset_from_directory(tmp_path, verbose=False)
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "broken.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEfmt ")
    ds = audio_dataset_from_directory(tmp_path, verbose=False)
    with pytest.raises(ValueError, match="broken.wav"):
        ds[0]
    (tmp_path / "a" / "broken.wav").unlink()
    _write(tmp_path / "a" / "mono.wav", np.zeros((5, 1), np.int16))
    _write(tmp_path / "a" / "stereo.wav", np.zeros((5, 2), np.int16))
    with pytest.raises(ValueError, match="same number of channels"):
        audio_dataset_from_directory(tmp_path, verbose=False)[0]


def test_a_spectrogram_model_trains_on_the_directory(audio_dir):
    dlgpu.set_random_seed(0)
    ds = audio_dataset_from_directory(audio_dir, batch_size=3, output_sequence_length=40, seed=1, verbose=False)
    model = dlgpu.Sequential([dlgpu.Input((40, 1)), layers.STFTSpectrogram(mode="real", frame_length=40,
                                                                            frame_step=40, fft_length=64),
                              layers.Flatten(), layers.Dense(2, activation="softmax")])
    model.compile(optimizer=dlgpu.optimizers.Adam(0.05), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    history = model.fit(ds, epochs=15, verbose=0).history
    assert history["loss"][-1] < 0.5 * history["loss"][0]
    assert model.evaluate(ds, verbose=0)[1] == 1.0
