"""ops.fft, fft2, ifft2, rfft, irfft, stft, istft: values against numpy.fft, torch.stft/istft and Keras's numpy
backend (scipy.signal), gradients by finite differences, dtypes, bad input, and GPU against CPU."""

import numpy as np
import pytest

import dlgpu
from dlgpu import ops
from dlgpu.autograd import GradientTape, Tensor
from tests.helpers import check_gradients

torch = pytest.importorskip("torch")
signal = pytest.importorskip("scipy.signal")

RNG = np.random.default_rng(0)


def randn(*shape):
    return RNG.standard_normal(shape).astype(np.float32)


def as_complex(pair):
    return pair[0].numpy() + 1j * pair[1].numpy()


@pytest.mark.parametrize("shape", [(8,), (3, 7), (2, 3, 5), (1, 1)])
def test_complex_transforms_match_numpy(shape):
    xr, xi = randn(*shape), randn(*shape)
    c = xr.astype(np.float64) + 1j * xi
    for name, ref in (("fft", np.fft.fft), ("fft2", np.fft.fft2), ("ifft2", np.fft.ifft2)):
        if name != "fft" and len(shape) < 2:
            with pytest.raises(ValueError, match="dimension"):
                getattr(ops, name)((xr, xi))
            continue
        out = getattr(ops, name)((xr, xi))
        assert out[0].dtype == out[1].dtype == "float32" and out[0].shape == shape
        np.testing.assert_allclose(as_complex(out), ref(c), rtol=1e-4, atol=1e-4, err_msg=name)


@pytest.mark.parametrize("n", [None, 5, 8, 12])
def test_rfft_irfft_match_numpy(n):
    x, xi = randn(3, 8), randn(3, 5)
    np.testing.assert_allclose(as_complex(ops.rfft(x, n)), np.fft.rfft(x.astype(np.float64), n), rtol=1e-4,
                               atol=1e-4)
    spec = x[:, :5].astype(np.float64) + 1j * xi
    out = ops.irfft((x[:, :5], xi), n)
    assert out.dtype == "float32" and out.shape == (3, n or 8)
    np.testing.assert_allclose(out.numpy(), np.fft.irfft(spec, n), rtol=1e-4, atol=1e-5)
    # irfft inverts rfft
    np.testing.assert_allclose(ops.irfft(ops.rfft(x)).numpy(), x, rtol=1e-4, atol=1e-5)


def test_fft_gradients_finite_differences():
    xr, xi = RNG.standard_normal((2, 5)), RNG.standard_normal((2, 5))
    check_gradients(lambda a, b: ops.fft((a, b)), [xr, xi])
    check_gradients(lambda a, b: ops.fft2((a, b)), [xr, xi])
    check_gradients(lambda a, b: ops.ifft2((a, b)), [xr, xi])
    for n in (None, 4, 8):  # cropped and zero-padded
        check_gradients(lambda a: ops.rfft(a, n), [xr])
    for n in (None, 5, 6, 11):  # odd and even lengths: the doubled bins and the Nyquist bin
        check_gradients(lambda a, b: ops.irfft((a, b), n), [xr, xi])


# Keras 3's numpy backend (keras/src/backend/numpy/math.py), verbatim in substance: the spec for stft/istft
def keras_stft(x, sequence_length, sequence_stride, fft_length, window="hann", center=True):
    if center:
        x = np.pad(x, [(0, 0)] * (x.ndim - 1) + [(fft_length // 2, fft_length // 2)], mode="reflect")
    l_pad = (fft_length - sequence_length) // 2
    r_pad = fft_length - sequence_length - l_pad
    if window is not None:
        win = signal.get_window(window, sequence_length) if isinstance(window, str) else np.asarray(window)
        win = np.pad(win.astype(x.dtype), [[l_pad, r_pad]])
    else:
        win = np.ones(fft_length, dtype=x.dtype)
    out = signal.stft(x, fs=1.0, window=win, nperseg=fft_length, noverlap=fft_length - sequence_stride,
                      nfft=fft_length, boundary=None, padded=False)[-1]
    return np.swapaxes(out / np.sqrt(1.0 / win.sum() ** 2), -2, -1)


def keras_istft(x, sequence_length, sequence_stride, fft_length, length=None, window="hann", center=True):
    expected = fft_length + sequence_stride * (x.shape[-2] - 1)
    l_pad = (fft_length - sequence_length) // 2
    r_pad = fft_length - sequence_length - l_pad
    if window is not None:
        win = signal.get_window(window, sequence_length) if isinstance(window, str) else np.asarray(window)
        win = np.pad(win, [[l_pad, r_pad]])
    else:
        win = np.ones(fft_length)
    out = signal.istft(x, fs=1.0, window=win, nperseg=fft_length, noverlap=fft_length - sequence_stride,
                       nfft=fft_length, boundary=False, time_axis=-2, freq_axis=-1)[-1]
    out = out / win.sum() if window is not None else out / sequence_stride
    start = fft_length // 2 if center else 0
    end = start + length if length is not None else (expected - fft_length // 2 if center else expected)
    return out[..., start:end]


# scipy warns that the edges (where the padded window is zero) cannot be inverted; Keras calls it the same way
STFT_CASES = [(10, 3, 16, "hann", True), (10, 3, 16, "hamming", False), (8, 4, 8, None, True),
              (7, 2, 9, "hann", True), (6, 6, 6, "hamming", False)]


@pytest.mark.filterwarnings("ignore:NOLA condition failed")
@pytest.mark.parametrize("seq, stride, nfft, window, center", STFT_CASES)
def test_stft_istft_match_keras_numpy_backend(seq, stride, nfft, window, center):
    x = randn(2, 41)
    out = ops.stft(x, seq, stride, nfft, window=window, center=center)
    ref = keras_stft(x.astype(np.float64), seq, stride, nfft, window, center)
    assert out[0].dtype == "float32" and out[0].shape == ref.shape
    np.testing.assert_allclose(as_complex(out), ref, rtol=1e-4, atol=1e-4)
    back = ops.istft(out, seq, stride, nfft, window=window, center=center)
    ref_back = keras_istft(ref, seq, stride, nfft, window=window, center=center)
    assert back.shape == ref_back.shape
    np.testing.assert_allclose(back.numpy(), ref_back, rtol=1e-4, atol=1e-4)
    cut = ops.istft(out, seq, stride, nfft, length=20, window=window, center=center)
    np.testing.assert_allclose(cut.numpy(), keras_istft(ref, seq, stride, nfft, 20, window, center), rtol=1e-4,
                               atol=1e-4)


def test_stft_istft_match_torch_and_round_trip():
    x = randn(3, 64)
    window = torch.hann_window(12, dtype=torch.float64)
    ref = torch.stft(torch.tensor(x, dtype=torch.float64), 16, 4, 12, window=window, center=True,
                     pad_mode="reflect", return_complex=True)
    out = ops.stft(x, 12, 4, 16)
    np.testing.assert_allclose(as_complex(out), ref.transpose(-1, -2).numpy(), rtol=1e-4, atol=1e-4)
    back = ops.istft(out, 12, 4, 16, length=64)
    np.testing.assert_allclose(back.numpy(), torch.istft(ref, 16, 4, 12, window=window, length=64).numpy(),
                               rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(back.numpy(), x, rtol=1e-4, atol=1e-4)  # a hann window at 1/3 hop inverts
    custom = np.linspace(0.5, 1.0, 12).astype(np.float32)
    np.testing.assert_allclose(as_complex(ops.stft(x, 12, 4, 16, window=custom)),
                               keras_stft(x.astype(np.float64), 12, 4, 16, custom), rtol=1e-4, atol=1e-4)


def test_stft_istft_gradients_finite_differences():
    x = RNG.standard_normal((2, 13))
    check_gradients(lambda a: ops.stft(a, 6, 2, 8), [x])
    check_gradients(lambda a: ops.stft(a, 5, 3, 5, window=None, center=False), [x])
    spec = RNG.standard_normal((2, 5, 5)), RNG.standard_normal((2, 5, 5))
    check_gradients(lambda a, b: ops.istft((a, b), 6, 2, 8), list(spec))
    check_gradients(lambda a, b: ops.istft((a, b), 8, 3, 8, length=9, window=None, center=False), list(spec))


def test_fft_rejects_bad_input():
    with pytest.raises(ValueError, match="tuple of two"):
        ops.fft(randn(4))
    with pytest.raises(ValueError, match="same shape"):
        ops.fft((randn(4), randn(5)))
    with pytest.raises(ValueError, match="float"):
        ops.fft((np.ones(4, np.int32), np.ones(4, np.int32)))
    with pytest.raises(ValueError, match="fft_length"):
        ops.rfft(randn(4), 0)
    with pytest.raises(ValueError, match="fft_length"):
        ops.stft(randn(20), 8, 2, 4)
    with pytest.raises(ValueError, match="window"):
        ops.stft(randn(20), 8, 2, 8, window="blackman")
    with pytest.raises(ValueError, match="window"):
        ops.stft(randn(20), 8, 2, 8, window=np.ones(5))
    with pytest.raises(TypeError, match="float32 or float64"):
        ops.stft(randn(20).astype(np.float16), 8, 2, 8)


def test_float64_and_float16_keep_their_dtype():
    x = np.arange(8.0)
    out = ops.rfft(Tensor(x, dtype="float64"))
    assert out[0].dtype == "float64"
    np.testing.assert_allclose(as_complex(out), np.fft.rfft(x), rtol=1e-12, atol=1e-12)
    half = ops.fft((x.astype(np.float16), np.zeros(8, np.float16)))
    assert half[0].dtype == "float16"


@pytest.mark.gpu
def test_fft_family_on_gpu_matches_cpu():
    xr, xi, sig = randn(2, 4, 6), randn(2, 4, 6), randn(2, 40)
    results = {}
    for device in ("cpu", "gpu"):
        with dlgpu.device(device):
            a, b, s = (ops.convert_to_tensor(v) for v in (xr, xi, sig))
            with GradientTape() as tape:
                tape.watch([a, b, s])
                outs = [*ops.fft((a, b)), *ops.fft2((a, b)), *ops.ifft2((a, b)), *ops.rfft(a, 8),
                        ops.irfft((a, b), 9)]
                spec = ops.stft(s, 10, 3, 16)
                outs += [*spec, ops.istft(spec, 10, 3, 16)]
                loss = sum(ops.sum(ops.square(o)) for o in outs)
            grads = tape.gradient(loss, [a, b, s])
            results[device] = [o.numpy() for o in outs] + [g.numpy() for g in grads]
    for k, (on_gpu, on_cpu) in enumerate(zip(results["gpu"], results["cpu"])):
        np.testing.assert_allclose(on_gpu, on_cpu, rtol=1e-4, atol=1e-4, err_msg=f"result {k}")
