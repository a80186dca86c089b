"""STFTSpectrogram and MelSpectrogram: the layer contract, values against numpy FFTs, gradients by finite
differences, awkward lengths, models trained with fit and saved/loaded, bad arguments, and GPU against CPU.
Keras itself is compared in tests/keras_reference (layer_cases.py rows and test_audio.py)."""

import numpy as np
import pytest

import dlgpu
from dlgpu import initializers, layers
from dlgpu.models import load_model

from helpers import assert_model_on_gpu_matches_cpu, check_gradients
from layers.layer_test_case import run_layer_test


def _signal(shape, seed=0):
    return np.random.default_rng(seed).uniform(-1, 1, shape).astype(np.float32)


# -- the contract ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("kwargs, input_shape, output_shape, weights", [
    (dict(frame_length=16, frame_step=4, fft_length=16), (2, 50, 3), (2, 9, 27), 2),
    (dict(mode="real", frame_length=8, padding="same"), (1, 21, 1), (1, 6, 5), 1),
    (dict(mode="imag", frame_length=8, expand_dims=True), (2, 30, 2), (2, 6, 5, 2), 1),
    (dict(mode="stft", frame_length=8, data_format="channels_first"), (2, 3, 30), (2, 30, 6), 2),
    (dict(mode="psd", frame_length=8, frame_step=3, data_format="channels_first", expand_dims=True), (1, 2, 26),
     (1, 2, 7, 5), 2),
])
def test_stft_spectrogram_contract(kwargs, input_shape, output_shape, weights):
    layer = run_layer_test(layers.STFTSpectrogram, kwargs, input_shape, output_shape,
                           expected_num_trainable_weights=weights)
    bins = layer._fft_length // 2 + 1
    assert all(w.shape == (layer.frame_length, 1, bins) for w in layer.weights)


def test_stft_spectrogram_frozen_and_defaults():
    # Keras's layer is trainable unless told otherwise; trainable=False is the preprocessing use
    frozen = layers.STFTSpectrogram(frame_length=12, trainable=False)
    assert frozen(_signal((2, 40, 1))).shape == (2, 5, 9)
    assert frozen.trainable_weights == [] and [w.name for w in frozen.non_trainable_weights] == ["real_kernel",
                                                                                                  "imag_kernel"]
    assert frozen._frame_step == 6 and frozen._fft_length == 16  # frame_length // 2, next power of two
    assert frozen.get_config()["trainable"] is False


def test_mel_spectrogram_contract():
    run_layer_test(layers.MelSpectrogram, dict(fft_length=64, sequence_stride=16, num_mel_bins=8,
                                               sampling_rate=8000), (2, 200), (2, 8, 13))
    run_layer_test(layers.MelSpectrogram, dict(fft_length=32, sequence_stride=7, num_mel_bins=4,
                                               power_to_db=False), (1, 50), (1, 4, 8))


# -- values -------------------------------------------------------------------------------------------------
def _numpy_stft(x, frame_length, step, fft_length, window, scaling):
    """(batch, frames, channels, bins) complex STFT of 'valid' frames, each zero-padded at its end."""
    frames = 1 + (x.shape[1] - frame_length) // step
    idx = np.arange(frames)[:, None] * step + np.arange(frame_length)
    framed = x.astype(np.float64)[:, idx, :]                       # (batch, frames, frame_length, channels)
    framed = framed * window[None, None, :, None]
    scale = {"density": np.sqrt(np.sum(window ** 2)), "spectrum": np.sum(np.abs(window)), None: 1.0}[scaling]
    spec = np.fft.rfft(framed, n=fft_length, axis=2) / scale       # (batch, frames, bins, channels)
    return np.moveaxis(spec, 2, 3)


@pytest.mark.parametrize("mode", ["log", "magnitude", "psd", "real", "imag", "angle", "stft"])
def test_stft_spectrogram_matches_numpy_fft(mode):
    x = _signal((2, 47, 2))
    layer = layers.STFTSpectrogram(mode=mode, frame_length=12, frame_step=5, fft_length=16, window="hamming",
                                   scaling="spectrum")
    out = layer(x).numpy()
    window = initializers.signal_window("hamming", 12)
    spec = _numpy_stft(x, 12, 5, 16, window, "spectrum")  # (2, 8, 2, 9)
    power = np.abs(spec) ** 2
    psd = power.copy()
    psd[..., 1:-1] *= 2
    ref = {"log": np.log(np.sqrt(power)), "magnitude": np.sqrt(power), "psd": psd, "real": spec.real,
           "imag": spec.imag, "angle": np.angle(spec), "stft": np.concatenate([spec.real, spec.imag], -1)}[mode]
    ref = ref.reshape(2, 8, -1)  # channel-major features: channel c's bins at c * bins
    assert out.dtype == np.float32
    if mode == "angle":  # a bin with a zero imaginary part may come out as pi or -pi: compare on the circle
        out = ref + np.angle(np.exp(1j * (out - ref)))
    np.testing.assert_allclose(out, ref, rtol=1e-4, atol=2e-5)


def test_stft_spectrogram_same_padding_and_channels_first_agree():
    """'same' pads (frame_length - 1 - (T - 1) % step) samples, the extra one after (TensorFlow's split);
    channels_first only moves axes."""
    x = _signal((1, 37, 2), seed=3)
    last = layers.STFTSpectrogram(mode="real", frame_length=10, frame_step=3, fft_length=16, padding="same")
    first = layers.STFTSpectrogram(mode="real", frame_length=10, frame_step=3, fft_length=16, padding="same",
                                   data_format="channels_first", expand_dims=True)
    out = last(x).numpy()
    assert out.shape == (1, 13, 18)
    total = 10 - 1 - (37 - 1) % 3
    padded = np.pad(x, ((0, 0), (total // 2, total - total // 2), (0, 0)))
    ref = _numpy_stft(padded, 10, 3, 16, initializers.signal_window("hann", 10), "density").real
    np.testing.assert_allclose(out, ref.reshape(1, 13, 18), rtol=1e-4, atol=2e-5)
    np.testing.assert_allclose(first(np.moveaxis(x, 1, 2)).numpy(), np.moveaxis(ref[0], 1, 0)[None], rtol=1e-4,
                               atol=2e-5)


def test_stft_spectrogram_custom_window_and_none():
    x = _signal((2, 20, 1), seed=4)
    window = [0.1, 0.4, 0.9, 1.0, 0.8, 0.3]
    out = layers.STFTSpectrogram(mode="magnitude", frame_length=6, frame_step=2, fft_length=8, window=window)(x)
    ref = np.abs(_numpy_stft(x, 6, 2, 8, np.array(window), "density")).reshape(2, 8, 5)
    np.testing.assert_allclose(out.numpy(), ref, rtol=1e-4, atol=2e-5)
    out = layers.STFTSpectrogram(mode="real", frame_length=6, frame_step=2, fft_length=8, window=None)(x)
    np.testing.assert_allclose(out.numpy(), _numpy_stft(x, 6, 2, 8, np.ones(6), None).real.reshape(2, 8, 5),
                               rtol=1e-4, atol=2e-5)


@pytest.mark.parametrize("name", ["hann", "hamming", "blackman", "bartlett", "boxcar", "rect"])
@pytest.mark.parametrize("length", [1, 2, 7, 16])
def test_signal_windows_match_scipy(name, length):
    signal = pytest.importorskip("scipy.signal")
    for periodic in (False, True):
        np.testing.assert_allclose(initializers.signal_window(name, length, periodic),
                                   signal.get_window(name, length, fftbins=periodic), atol=1e-15)


def _mel_reference(x, fft_length, stride, num_mel_bins, sampling_rate, min_freq, max_freq, top_db):
    """numpy: reflect-padded periodic-hann frames, |rfft|^2, the mel filters, decibels clipped below the
    batch maximum."""
    half = fft_length // 2
    padded = np.pad(x.astype(np.float64), ((0, 0), (half, half)), mode="reflect")
    frames = 1 + (padded.shape[1] - fft_length) // stride
    idx = np.arange(frames)[:, None] * stride + np.arange(fft_length)
    window = initializers.signal_window("hann", fft_length, periodic=True)
    power = np.abs(np.fft.rfft(padded[:, idx] * window, axis=-1)) ** 2
    mel = power @ layers.audio.linear_to_mel_weight_matrix(num_mel_bins, half + 1, sampling_rate, min_freq,
                                                           max_freq, dtype="float64")
    db = 10 * np.log10(np.maximum(mel, 1e-10))
    return np.swapaxes(np.maximum(db, db.max() - top_db), -1, -2)


def test_mel_spectrogram_matches_numpy():
    x = _signal((2, 150), seed=5)
    layer = layers.MelSpectrogram(fft_length=32, sequence_stride=10, num_mel_bins=6, sampling_rate=8000,
                                  min_freq=50.0, top_db=15.0)
    out = layer(x).numpy()
    ref = _mel_reference(x, 32, 10, 6, 8000, 50.0, 4000, 15.0)
    assert out.shape == ref.shape == (2, 6, 16)
    np.testing.assert_allclose(out, ref, rtol=1e-4, atol=1e-3)
    assert (out == out.max() - 15.0).sum() > 3  # the cut-off is reached: clipped below the batch's maximum
    unbatched = layer(x[1]).numpy()  # one signal: (num_mel_bins, frames), its own maximum
    np.testing.assert_allclose(unbatched, _mel_reference(x[1:], 32, 10, 6, 8000, 50.0, 4000, 15.0)[0], rtol=1e-4,
                               atol=1e-3)


def test_mel_filter_bank_shape():
    m = layers.audio.linear_to_mel_weight_matrix(10, 65, 16000, 20.0, 8000.0)
    assert m.shape == (65, 10) and m.dtype == np.float32
    assert (m[0] == 0).all() and m.max() <= 1.0 and (m >= 0).all()
    assert (m.sum(0) > 0).all()  # every filter covers some bin
    assert list(np.argmax(m, 0)) == sorted(np.argmax(m, 0))  # filters rise in frequency


# -- gradients ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("mode", ["log", "psd", "angle", "stft"])
def test_stft_spectrogram_gradients(mode):
    layer = layers.STFTSpectrogram(mode=mode, frame_length=6, frame_step=4, fft_length=8, dtype="float64")
    x = _signal((1, 15, 2), seed=6)
    check_gradients(lambda t: layer(t), [x], rtol=1e-4, atol=1e-6)
    # and the kernels, by central differences of sum(out^2) at a few entries (inner bins: the first and the
    # last have a zero imaginary kernel, where the angle jumps between -pi and pi)
    x64 = dlgpu.Tensor(x, dtype="float64")
    with dlgpu.GradientTape() as tape:
        loss = dlgpu.ops.sum(dlgpu.ops.square(layer(x64)))
    grads = tape.gradient(loss, layer.trainable_weights)
    eps = 1e-6
    for w, g in zip(layer.trainable_weights, grads):
        assert g is not None and g.shape == w.shape
        k = w.numpy().copy()
        for i, j in ((0, 1), (3, 2), (5, 3)):
            bumped = []
            for sign in (1, -1):
                k2 = k.copy()
                k2[i, 0, j] += sign * eps
                w.assign(k2)
                bumped.append(float(np.sum(layer(x64).numpy() ** 2)))
            w.assign(k)
            np.testing.assert_allclose(g.numpy()[i, 0, j], (bumped[0] - bumped[1]) / (2 * eps), rtol=1e-5, atol=1e-6)


def test_mel_spectrogram_gradients():
    layer = layers.MelSpectrogram(fft_length=16, sequence_stride=6, num_mel_bins=4, sampling_rate=4000, top_db=25.0,
                                  dtype="float64")
    check_gradients(lambda t: layer(t), [_signal((2, 30), seed=7)], rtol=1e-4, atol=1e-5)
    plain = layers.MelSpectrogram(fft_length=16, sequence_stride=5, num_mel_bins=3, sampling_rate=4000,
                                  power_to_db=False, mag_exp=1.0, window="hamming", dtype="float64")
    check_gradients(lambda t: plain(t), [_signal((1, 23), seed=8)], rtol=1e-4, atol=1e-6)


# -- awkward lengths ----------------------------------------------------------------------------------------
def test_awkward_lengths():
    # a signal exactly one frame long, batch 1
    out = layers.STFTSpectrogram(frame_length=8, frame_step=3, fft_length=8)(_signal((1, 8, 1)))
    assert out.shape == (1, 1, 5)
    out = layers.STFTSpectrogram(frame_length=8, frame_step=3, fft_length=8, padding="same")(_signal((1, 2, 1)))
    assert out.shape == (1, 1, 5)
    with pytest.raises(ValueError, match="larger than the input"):
        layers.STFTSpectrogram(frame_length=8, frame_step=3)(_signal((1, 7, 1)))
    # MelSpectrogram: frames = 1 + samples // stride for an even fft_length, odd lengths too
    for samples in (17, 31, 32, 33):
        layer = layers.MelSpectrogram(fft_length=32, sequence_stride=16, num_mel_bins=4)
        assert layer(_signal((1, samples))).shape == (1, 4, 1 + samples // 16) == layer.compute_output_shape(
            (1, samples))
    with pytest.raises(ValueError, match="reflect-pads"):
        layers.MelSpectrogram(fft_length=32, sequence_stride=16, num_mel_bins=4)(_signal((1, 16)))


def test_symbolic_shapes_with_unknown_time():
    out = layers.STFTSpectrogram(frame_length=16, frame_step=4)(dlgpu.Input((None, 2)))
    assert out.shape == (None, None, 18)
    out = layers.MelSpectrogram(fft_length=32, sequence_stride=8, num_mel_bins=5)(dlgpu.Input((None,)))
    assert out.shape == (None, 5, None)


# -- in models: fit, save, load -----------------------------------------------------------------------------
def _tones(n, length, seed):
    """Two classes of noisy tones: low (class 0) or high (class 1) frequency."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    freq = np.where(y == 1, rng.uniform(0.3, 0.45, n), rng.uniform(0.03, 0.12, n))
    t = np.arange(length)
    x = np.sin(np.pi * freq[:, None] * t + rng.uniform(0, 6.28, (n, 1))) + 0.2 * rng.standard_normal((n, length))
    return x.astype(np.float32), y.astype(np.int32)


def test_stft_model_trains_saves_and_loads(tmp_path):
    dlgpu.set_random_seed(0)
    x, y = _tones(128, 64, 0)
    model = dlgpu.Sequential([dlgpu.Input((64, 1)),
                              layers.STFTSpectrogram(frame_length=16, frame_step=8, fft_length=16),
                              layers.GlobalAveragePooling1D(), layers.Dense(2, activation="softmax")])
    model.compile(optimizer=dlgpu.optimizers.Adam(0.02), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    kernel = model.layers[0].real_kernel.numpy().copy()
    history = model.fit(x[..., None], y, epochs=10, batch_size=32, verbose=0).history
    assert history["loss"][-1] < 0.5 * history["loss"][0], history["loss"]
    assert not np.allclose(model.layers[0].real_kernel.numpy(), kernel)  # trainable by default, as in Keras
    x_test, y_test = _tones(64, 64, 1)
    assert model.evaluate(x_test[..., None], y_test, verbose=0)[1] > 0.9
    model.save(tmp_path / "stft.dlgpu")
    loaded = load_model(tmp_path / "stft.dlgpu")
    assert [l.get_config() for l in loaded.layers] == [l.get_config() for l in model.layers]
    np.testing.assert_array_equal(loaded.predict(x_test[..., None], verbose=0),
                                  model.predict(x_test[..., None], verbose=0))


def test_mel_model_trains_saves_and_loads(tmp_path):
    dlgpu.set_random_seed(1)
    x, y = _tones(128, 160, 2)
    inputs = dlgpu.Input((160,))
    mel = layers.MelSpectrogram(fft_length=32, sequence_stride=16, num_mel_bins=8, sampling_rate=1000)(inputs)
    scaled = layers.Rescaling(1 / 40.0)(mel)
    out = layers.Dense(2, activation="softmax")(layers.GlobalAveragePooling1D()(layers.Permute((2, 1))(scaled)))
    model = dlgpu.Model(inputs, out)
    model.compile(optimizer=dlgpu.optimizers.Adam(0.05), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    history = model.fit(x, y, epochs=10, batch_size=32, verbose=0).history
    assert history["loss"][-1] < 0.5 * history["loss"][0], history["loss"]
    model.save(tmp_path / "mel.dlgpu")
    loaded = load_model(tmp_path / "mel.dlgpu")
    x_test, _ = _tones(16, 160, 3)
    np.testing.assert_array_equal(loaded.predict(x_test, verbose=0), model.predict(x_test, verbose=0))


# -- bad arguments and inputs -------------------------------------------------------------------------------
@pytest.mark.parametrize("kwargs, match", [
    (dict(mode="power"), "mode"), (dict(frame_length=0), "frame_length"), (dict(frame_length=8, frame_step=9),
                                                                           "frame_step"),
    (dict(frame_length=16, fft_length=8), "fft_length"), (dict(scaling="l2"), "scaling"),
    (dict(padding="causal"), "padding"), (dict(window="nope"), "window"), (dict(data_format="nchw"), "data_format"),
    (dict(window=[[1.0, 2.0]]), "window"), (dict(frame_length=1), "frame_step"),
])
def test_stft_spectrogram_refuses_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        layers.STFTSpectrogram(**kwargs)


def test_stft_spectrogram_refuses_bad_inputs():
    layer = layers.STFTSpectrogram(frame_length=8, name="spec")
    with pytest.raises(TypeError, match="spec.*float16"):
        layer(np.ones((1, 20, 1), np.int32))
    with pytest.raises(ValueError, match="'spec'.*expected ndim=3"):
        layer(np.ones((1, 20), np.float32))
    with pytest.raises(ValueError, match="window must have shape"):
        layers.STFTSpectrogram(frame_length=8, window=[1.0] * 5)(np.ones((1, 20, 1), np.float32))
    with pytest.warns(UserWarning, match="power of two"):
        layers.STFTSpectrogram(frame_length=8, fft_length=12)


@pytest.mark.parametrize("kwargs, match", [
    (dict(fft_length=16, sequence_length=32), "sequence_length"), (dict(window="blackman"), "window"),
    (dict(sampling_rate=0), "sampling_rate"), (dict(num_mel_bins=0), "num_mel_bins"),
    (dict(min_freq=9000.0, sampling_rate=16000), "max_freq"), (dict(top_db=None), "top_db"),
    (dict(min_power=0.0), "min_power"), (dict(sequence_stride=1.5), "sequence_stride"),
    (dict(sequence_length=4, window=[1.0, 1.0]), "window"),
])
def test_mel_spectrogram_refuses_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        layers.MelSpectrogram(**kwargs)


def test_mel_spectrogram_refuses_bad_inputs():
    with pytest.raises(ValueError, match="'mel'.*\\(batch, samples\\)"):
        layers.MelSpectrogram(fft_length=16, name="mel")(np.ones((1, 2, 40), np.float32))


# -- GPU against CPU ----------------------------------------------------------------------------------------
@pytest.mark.gpu
@pytest.mark.parametrize("mode", ["log", "psd", "angle", "stft"])
def test_stft_spectrogram_on_gpu_matches_cpu(mode):
    def make():
        return dlgpu.Sequential([dlgpu.Input((45, 2)), layers.STFTSpectrogram(mode=mode, frame_length=12,
                                                                               frame_step=5, fft_length=16)])
    assert_model_on_gpu_matches_cpu(make, _signal((3, 45, 2), seed=9))


@pytest.mark.gpu
def test_mel_spectrogram_on_gpu_matches_cpu():
    def make():
        return dlgpu.Sequential([dlgpu.Input((150,)), layers.MelSpectrogram(fft_length=32, sequence_stride=10,
                                                                             num_mel_bins=6, sampling_rate=8000)])
    assert_model_on_gpu_matches_cpu(make, _signal((2, 150), seed=10))
