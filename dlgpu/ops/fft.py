"""Fourier transforms with Keras 3's convention: a complex tensor is a ``(real, imag)`` pair of float tensors.

Every transform here is linear over the reals, so each has an exact gradient: the adjoint transform
(``fft``'s adjoint is ``n * ifft``, ``rfft``'s is a zero-padded ``n * ifft`` keeping the real part,
``irfft``'s is ``rfft`` with the doubled bins weighted twice).  ``stft`` and ``istft`` are composed of
differentiable pieces (reflect padding and framing by gather, the window product, ``rfft``/``irfft`` and a
custom overlap-add), so they have gradients too.  Results keep the input's float dtype (float32 stays
float32, where numpy.fft would give float64).
"""

from __future__ import annotations

import numpy as np

from dlgpu.autograd import Tensor
from dlgpu.ops._core import array_module, float_operand, make_result, same_device

__all__ = ["fft", "fft2", "ifft2", "rfft", "irfft", "stft", "istft"]


def _pair(op, x):
    if not isinstance(x, (tuple, list)) or len(x) != 2:
        raise ValueError(f"{op}: `x` must be a tuple of two tensors (real, imag); received {type(x).__name__}.")
    real, imag = (r if isinstance(r, Tensor) else Tensor(np.asarray(r)) for r in x)
    if real.shape != imag.shape:
        raise ValueError(f"{op}: the real and imaginary parts must have the same shape; received "
                         f"{real.shape} and {imag.shape}.")
    if real.data.dtype.kind != "f" or imag.data.dtype.kind != "f":
        raise ValueError(f"{op}: the real and imaginary parts must be float tensors; received {real.dtype} and "
                         f"{imag.dtype}.")
    same_device(op, real, imag)
    if real.data.dtype != imag.data.dtype:
        from dlgpu.ops.math import cast
        wide = np.promote_types(real.data.dtype, imag.data.dtype)
        real, imag = cast(real, wide), cast(imag, wide)
    return real, imag


def _real_dtype(dtype):
    # float16 has no FFT in numpy/CuPy: compute in float32, return float16
    return np.float32 if dtype == np.float16 else dtype


def _complex_linear(op, real, imag, forward, adjoint, min_ndim):
    """The (real, imag) outputs of a complex-linear ``forward``; ``adjoint`` pulls a complex cotangent back."""
    if real.ndim < min_ndim:
        raise ValueError(f"{op}: the input must have at least {min_ndim} dimension(s); received shape "
                         f"{real.shape}.")
    dtype = real.data.dtype
    xp = array_module(real.data)
    work = _real_dtype(dtype)
    y = forward(real.data.astype(work) + 1j * imag.data.astype(work))

    def split(c):
        return xp.real(c).astype(dtype), xp.imag(c).astype(dtype)
    out_r = make_result(xp.real(y).astype(dtype), (real, imag), lambda g: split(adjoint(g.astype(work) + 0j)))
    out_i = make_result(xp.imag(y).astype(dtype), (real, imag), lambda g: split(adjoint(1j * g.astype(work))))
    return out_r, out_i


def fft(x):
    """The discrete Fourier transform along the last axis of ``x = (real, imag)``."""
    real, imag = _pair("fft", x)
    xp = array_module(real.data)
    n = real.shape[-1] if real.ndim else 1
    return _complex_linear("fft", real, imag, lambda c: xp.fft.fft(c, axis=-1),
                           lambda g: xp.fft.ifft(g, axis=-1) * n, 1)


def fft2(x):
    """The 2-D discrete Fourier transform over the last two axes of ``x = (real, imag)``."""
    real, imag = _pair("fft2", x)
    xp = array_module(real.data)
    n = real.shape[-1] * real.shape[-2] if real.ndim >= 2 else 1
    return _complex_linear("fft2", real, imag, lambda c: xp.fft.fft2(c, axes=(-2, -1)),
                           lambda g: xp.fft.ifft2(g, axes=(-2, -1)) * n, 2)


def ifft2(x):
    """The inverse 2-D discrete Fourier transform over the last two axes of ``x = (real, imag)``."""
    real, imag = _pair("ifft2", x)
    xp = array_module(real.data)
    n = real.shape[-1] * real.shape[-2] if real.ndim >= 2 else 1
    return _complex_linear("ifft2", real, imag, lambda c: xp.fft.ifft2(c, axes=(-2, -1)),
                           lambda g: xp.fft.fft2(g, axes=(-2, -1)) / n, 2)


def _length(op, fft_length, default):
    if fft_length is None:
        return default
    if int(fft_length) != fft_length or int(fft_length) < 1:
        raise ValueError(f"{op}: `fft_length` must be a positive integer; received {fft_length!r}.")
    return int(fft_length)


def _fit_last(xp, a, size):
    """``a`` cropped or zero-padded along its last axis to ``size``."""
    have = a.shape[-1]
    if have >= size:
        return a[..., :size]
    pad = xp.zeros(a.shape[:-1] + (size - have,), dtype=a.dtype)
    return xp.concatenate([a, pad], axis=-1)


def rfft(x, fft_length=None):
    """The one-sided DFT of the real ``x`` along its last axis: ``fft_length // 2 + 1`` bins (``x`` is
    cropped or zero-padded to ``fft_length``, by default its own length).  Returns ``(real, imag)``."""
    x = float_operand(x)
    if x.ndim < 1:
        raise ValueError(f"rfft: the input must have at least one dimension; received shape {x.shape}.")
    xp = array_module(x.data)
    dtype = x.data.dtype
    work = _real_dtype(dtype)
    size = x.shape[-1]
    n = _length("rfft", fft_length, size)
    y = xp.fft.rfft(x.data.astype(work), n=n, axis=-1)

    def pull(gc):
        # the adjoint of "first n//2+1 rows of the DFT": zero-fill the missing bins, n * ifft, real part
        full = _fit_last(xp, gc, n)
        return (_fit_last(xp, xp.real(xp.fft.ifft(full, axis=-1) * n), size).astype(dtype),)
    out_r = make_result(xp.real(y).astype(dtype), (x,), lambda g: pull(g.astype(work) + 0j))
    out_i = make_result(xp.imag(y).astype(dtype), (x,), lambda g: pull(1j * g.astype(work)))
    return out_r, out_i


def irfft(x, fft_length=None):
    """The inverse of ``rfft``: a real signal of ``fft_length`` samples (by default ``2 * (bins - 1)``)
    from the one-sided spectrum ``x = (real, imag)`` along the last axis."""
    real, imag = _pair("irfft", x)
    if real.ndim < 1:
        raise ValueError(f"irfft: the input must have at least one dimension; received shape {real.shape}.")
    xp = array_module(real.data)
    dtype = real.data.dtype
    work = _real_dtype(dtype)
    bins = real.shape[-1]
    n = _length("irfft", fft_length, 2 * (bins - 1))
    if n < 1:
        raise ValueError(f"irfft: the output would be empty; pass fft_length (input has {bins} bin(s)).")
    y = xp.fft.irfft(real.data.astype(work) + 1j * imag.data.astype(work), n=n, axis=-1)
    used = n // 2 + 1
    # bins 1 .. (n-1)//2 stand for two conjugate bins of the full spectrum, so they count twice
    weight = xp.full(used, 2.0 / n, dtype=work)
    weight[0] = 1.0 / n
    if n % 2 == 0:
        weight[-1] = 1.0 / n

    def backward(g):
        spec = xp.fft.rfft(g.astype(work), axis=-1) * weight
        spec = _fit_last(xp, spec, bins)
        return xp.real(spec).astype(dtype), xp.imag(spec).astype(dtype)
    return make_result(y.astype(dtype), (real, imag), backward)


def _window(op, window, length, dtype, xp):
    if window is None:
        return None
    if isinstance(window, str):
        n = np.arange(length)
        # periodic windows, as scipy.signal.get_window (fftbins=True) and torch.hann_window give
        if window == "hann":
            w = 0.5 - 0.5 * np.cos(2 * np.pi * n / length)
        elif window == "hamming":
            w = 0.54 - 0.46 * np.cos(2 * np.pi * n / length)
        else:
            raise ValueError(f'{op}: a string `window` must be "hann" or "hamming"; received {window!r}.')
        return xp.asarray(w.astype(dtype))
    w = window.data if isinstance(window, Tensor) else window
    if array_module(w) is not xp and isinstance(w, np.ndarray):
        w = xp.asarray(w)
    w = xp.asarray(w).astype(dtype)
    if w.ndim != 1 or w.shape[0] != length:
        raise ValueError(f"{op}: `window` must have shape ({length},) (sequence_length); received {w.shape}.")
    return w


def _check_lengths(op, sequence_length, sequence_stride, fft_length):
    for name, v in (("sequence_length", sequence_length), ("sequence_stride", sequence_stride),
                    ("fft_length", fft_length)):
        if int(v) != v or int(v) < 1:
            raise ValueError(f"{op}: `{name}` must be a positive integer; received {v!r}.")
    if fft_length < sequence_length:
        raise ValueError(f"{op}: `fft_length` must be >= `sequence_length`; received sequence_length="
                         f"{sequence_length}, fft_length={fft_length}.")


def _padded_window(op, window, sequence_length, fft_length, dtype, xp):
    w = _window(op, window, sequence_length, dtype, xp)
    if w is None:
        return xp.ones(fft_length, dtype=dtype), None
    left = (fft_length - sequence_length) // 2
    full = xp.zeros(fft_length, dtype=dtype)
    full[left:left + sequence_length] = w
    return full, w


def stft(x, sequence_length, sequence_stride, fft_length, window="hann", center=True):
    """Short-time Fourier transform of real signals along the last axis: ``(real, imag)`` of shape
    ``(..., frames, fft_length // 2 + 1)``, unnormalised (``torch.stft`` with ``normalized=False``)."""
    from dlgpu.ops.math import multiply
    from dlgpu.ops.shape import take
    x = float_operand(x)
    if x.data.dtype not in (np.float32, np.float64):
        raise TypeError(f"stft: the input must be float32 or float64; received {x.dtype}.")
    if x.ndim < 1:
        raise ValueError(f"stft: the input must have at least one dimension; received shape {x.shape}.")
    _check_lengths("stft", sequence_length, sequence_stride, fft_length)
    xp = array_module(x.data)
    win, _ = _padded_window("stft", window, sequence_length, fft_length, x.data.dtype, xp)
    length = x.shape[-1]
    index = np.arange(length)
    if center:
        half = fft_length // 2
        if half >= length and length > 1 or length == 1 and half:
            raise ValueError(f"stft: center=True reflect-pads by fft_length // 2 = {half}, which needs a signal "
                             f"longer than that; received {length} samples.")
        # reflect padding (numpy's mode="reflect", as Keras and torch.stft use), by gather, so it differentiates
        index = np.abs(np.arange(-half, length + half))
        index = np.where(index >= length, 2 * (length - 1) - index, index)
    padded = index.shape[0]
    if padded < fft_length:
        raise ValueError(f"stft: the signal ({padded} samples after padding) is shorter than fft_length="
                         f"{fft_length}.")
    frames = 1 + (padded - fft_length) // sequence_stride
    starts = np.arange(frames)[:, None] * sequence_stride + np.arange(fft_length)[None, :]
    framed = take(x, xp.asarray(index[starts]), axis=-1)  # (..., frames, fft_length)
    return rfft(multiply(framed, Tensor(win)), fft_length)


def _overlap_add(frames, stride, total):
    """Sum (..., F, N) frames, frame f placed at f * stride, into (..., total) samples; differentiable."""
    xp = array_module(frames.data)
    lead = frames.shape[:-2]
    count, n = frames.shape[-2:]
    chunks = -(-n // stride)
    blocks = count + chunks - 1
    data = frames.data
    if chunks * stride != n:
        data = xp.concatenate([data, xp.zeros(lead + (count, chunks * stride - n), data.dtype)], axis=-1)
    out = xp.zeros(lead + (blocks, stride), dtype=data.dtype)
    # frames cut into stride-long chunks: chunk r of frame f lands on block f + r; a loop over r only
    for r in range(chunks):
        out[..., r:r + count, :] += data[..., r * stride:(r + 1) * stride]
    flat = out.reshape(lead + (blocks * stride,))
    if flat.shape[-1] < total:
        flat = xp.concatenate([flat, xp.zeros(lead + (total - flat.shape[-1],), flat.dtype)], axis=-1)
    flat = flat[..., :total]

    def backward(g):
        full = xp.zeros(lead + (blocks * stride,), dtype=g.dtype)
        keep = min(total, blocks * stride)
        full[..., :keep] = g[..., :keep]
        full = full.reshape(lead + (blocks, stride))
        grad = xp.concatenate([full[..., r:r + count, :] for r in range(chunks)], axis=-1)
        return (grad[..., :n],)
    return make_result(flat, (frames,), backward)


def istft(x, sequence_length, sequence_stride, fft_length, length=None, window="hann", center=True):
    """Inverse of ``stft``: windowed overlap-add of the inverse FFT of each frame of ``x = (real, imag)``
    ``(..., frames, fft_length // 2 + 1)``, divided by the summed squared window where that is non-zero,
    as scipy.signal.istft does (what Keras's numpy backend calls)."""
    from dlgpu.ops.math import divide, multiply
    real, imag = _pair("istft", x)
    if real.ndim < 2:
        raise ValueError(f"istft: the input must be (..., frames, fft_length // 2 + 1); received shape "
                         f"{real.shape}.")
    _check_lengths("istft", sequence_length, sequence_stride, fft_length)
    xp = array_module(real.data)
    dtype = real.data.dtype
    win, w = _padded_window("istft", window, sequence_length, fft_length, dtype, xp)
    count = real.shape[-2]
    total = fft_length + sequence_stride * (count - 1)
    frames = multiply(irfft((real, imag), fft_length), Tensor(win))
    signal = _overlap_add(frames, sequence_stride, total)
    # the squared-window envelope, and Keras's final scale (window sum, or the stride without a window)
    envelope = _overlap_add(Tensor(xp.broadcast_to(win * win, (count, fft_length))), sequence_stride, total).data
    envelope = xp.where(envelope > 1e-10, envelope, 1.0)
    scale = win.sum() / (win.sum() if w is not None else sequence_stride)
    signal = multiply(divide(signal, Tensor(envelope.astype(dtype))), Tensor(xp.asarray(scale, dtype=dtype)))
    start = fft_length // 2 if center else 0
    if length is not None:
        end = start + int(length)
    elif center:
        end = total - fft_length // 2
    else:
        end = total
    return signal[..., start:end]
