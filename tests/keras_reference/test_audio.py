"""Audio layers and ReversibleEmbedding against Keras beyond the table's rows: MelSpectrogram's filter bank
and unbatched signals, and a tied embedding used in both directions in one computation (the gradient of its
one table collects both uses)."""

import numpy as np
import pytest

import dlgpu

from .kref import rand

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


@pytest.mark.parametrize("args", [(8, 33, 8000, 20.0, 4000.0), (40, 257, 16000, 0.0, 8000.0),
                                  (5, 17, 22050, 300.0, 5000.0), (128, 1025, 16000, 20.0, 8000.0)])
def test_mel_filter_bank_matches_keras(keras, args):
    bins, spectrum, rate, low, high = args
    k = keras.layers.MelSpectrogram().linear_to_mel_weight_matrix(bins, spectrum, rate, low, high)
    d = dlgpu.layers.MelSpectrogram().linear_to_mel_weight_matrix(bins, spectrum, rate, low, high)
    assert d.shape == (spectrum, bins) and d.dtype == np.float32
    # dlgpu rounds a float64 matrix once; Keras computes in float32, ~2e-5 off for its default 128 bins
    np.testing.assert_allclose(d, k.numpy(), rtol=1e-5, atol=4e-5)


def test_mel_spectrogram_of_one_signal_matches_keras(keras):
    kwargs = dict(fft_length=64, sequence_stride=20, num_mel_bins=10, sampling_rate=16000, top_db=40.0)
    x = rand((301,), seed=3)
    k = keras.layers.MelSpectrogram(**kwargs)(x).numpy()
    d = dlgpu.layers.MelSpectrogram(**kwargs)(x).numpy()
    assert d.shape == k.shape == (10, 16)
    np.testing.assert_allclose(d, k, rtol=1e-5, atol=1e-4)


def test_stft_spectrogram_float64_signal_matches_keras(keras):
    """A float64 signal is cast to the layer's float32, in both."""
    kwargs = dict(mode="log", frame_length=16, frame_step=5, fft_length=32, window="hamming")
    x = rand((2, 61, 1), seed=4).astype(np.float64)
    kl, dl = keras.layers.STFTSpectrogram(**kwargs), dlgpu.layers.STFTSpectrogram(**kwargs)
    k, d = kl(x).detach().numpy(), dl(x).numpy()
    assert d.dtype == k.dtype == np.float32
    np.testing.assert_allclose(d, k, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("tie_weights", [True, False])
def test_reversible_embedding_round_trip_gradients_match_keras(keras, tie_weights):
    import torch
    kwargs = dict(input_dim=9, output_dim=4, tie_weights=tie_weights, logit_soft_cap=3.0)
    kl, dl = keras.layers.ReversibleEmbedding(**kwargs), dlgpu.layers.ReversibleEmbedding(**kwargs)
    ids = np.array([[1, 8, 3], [0, 3, 5]], dtype="int32")
    kl(ids)
    dl(ids)
    weights = [rand(w.shape, seed=i) for i, w in enumerate(kl.get_weights())]
    kl.set_weights(weights)
    dl.set_weights(weights)
    with torch.enable_grad():
        kout = kl(kl(torch.tensor(ids)), reverse=True)
        kgrads = torch.autograd.grad((kout ** 2).sum(), [w.value for w in kl.trainable_weights])
    with dlgpu.GradientTape() as tape:
        dout = dl(dl(ids), reverse=True)
        loss = dlgpu.ops.sum(dlgpu.ops.square(dout))
    dgrads = tape.gradient(loss, dl.trainable_weights)
    np.testing.assert_allclose(dout.numpy(), kout.detach().numpy(), rtol=1e-5, atol=1e-6)
    assert len(dgrads) == len(kgrads) == (1 if tie_weights else 2)
    for a, b in zip(kgrads, dgrads):
        np.testing.assert_allclose(b.numpy(), a.numpy(), rtol=1e-5, atol=1e-6)
