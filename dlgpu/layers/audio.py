"""STFTSpectrogram and MelSpectrogram: spectrograms of audio signals, as Keras 3 computes them.

STFTSpectrogram is Keras's convolution form of the STFT: each channel of the signal is convolved (stride
frame_step) with kernels that initializers.STFT fills with windowed cosines and sines, so the transform
can be trained with the rest of a model; its weights are Keras's (real_kernel, imag_kernel), each
(frame_length, 1, fft_length // 2 + 1).  MelSpectrogram has no weights: ops.stft (centred, reflect
padding), the magnitude to the power mag_exp, Keras's HTK mel filter bank, and decibels.
"""

from __future__ import annotations

import math
import numbers
import warnings

import numpy as np

from dlgpu import config as _config
from dlgpu import initializers, ops
from dlgpu.autograd import Tensor
from dlgpu.backend.cpu import array_module
from dlgpu.layers.base import InputSpec, Layer
from dlgpu.ops.window import conv_output_length

_MODES = ("log", "magnitude", "psd", "real", "imag", "angle", "stft")


def _positive_int(layer, name, value, allow_none=False):
    if value is None and allow_none:
        return None
    if not isinstance(value, numbers.Integral) or isinstance(value, bool) or value < 1:
        raise ValueError(f"Layer '{layer.name}' ({type(layer).__name__}): `{name}` must be a positive integer"
                         f"{' or None' if allow_none else ''}. Received: {name}={value!r}")
    return int(value)


def _window_arg(layer, window, length_name):
    """A window name (checked now, as Keras asks scipy now), None, or a 1-D array-like kept as a list for
    the config."""
    if window is None or isinstance(window, str):
        if isinstance(window, str):
            initializers.signal_window(window, 1, owner=f"Layer '{layer.name}' ({type(layer).__name__})")
        return window
    values = np.asarray(window.numpy() if hasattr(window, "numpy") else window, dtype=np.float64)
    if values.ndim != 1:
        raise ValueError(f"Layer '{layer.name}' ({type(layer).__name__}): `window` must be a name, None or a 1-D "
                         f"array of `{length_name}` values; received an array of shape {values.shape}")
    return values.tolist()


class STFTSpectrogram(Layer):
    """keras.layers.STFTSpectrogram: (batch, time, channels) signals (channels_last) to (batch, frames,
    channels * bins) spectrograms, or (batch, frames, bins, channels) with expand_dims; bins is
    fft_length // 2 + 1 (twice that for mode='stft', the real parts then the imaginary ones)."""

    # integer signals reach call, which refuses them as Keras does (rather than casting them silently)
    _accepts_integer_inputs = True

    def __init__(self, mode="log", frame_length=256, frame_step=None, fft_length=None, window="hann",
                 periodic=False, scaling="density", padding="valid", expand_dims=False, data_format=None, **kwargs):
        super().__init__(**kwargs)
        self.frame_length = _positive_int(self, "frame_length", frame_length)
        self.frame_step = _positive_int(self, "frame_step", frame_step, allow_none=True)
        if self.frame_step is not None and self.frame_step > self.frame_length:
            raise ValueError(f"Layer '{self.name}': `frame_step` should be a positive integer not greater than "
                             f"`frame_length`. Received frame_step={frame_step}, frame_length={frame_length}")
        self.fft_length = _positive_int(self, "fft_length", fft_length, allow_none=True)
        if self.fft_length is not None and self.fft_length < self.frame_length:
            raise ValueError(f"Layer '{self.name}': `fft_length` should be not less than `frame_length`. "
                             f"Received fft_length={fft_length}, frame_length={frame_length}")
        if self.fft_length is not None and self.fft_length & (self.fft_length - 1):
            warnings.warn(f"`fft_length` is recommended to be a power of two. Received fft_length={fft_length}",
                          stacklevel=2)
        if mode not in _MODES:
            raise ValueError(f"Layer '{self.name}': output mode is invalid, it must be one of {', '.join(_MODES)}. "
                             f"Received: mode={mode!r}")
        if scaling not in (None, "density", "spectrum"):
            raise ValueError(f"Layer '{self.name}': `scaling` must be None, 'density' or 'spectrum'. Received "
                             f"scaling={scaling!r}")
        if padding not in ("valid", "same"):
            raise ValueError(f"Layer '{self.name}': `padding` must be 'valid' or 'same'. Received: padding={padding!r}")
        if data_format not in (None, "channels_last", "channels_first"):
            raise ValueError(f"Layer '{self.name}': `data_format` must be 'channels_last' or 'channels_first'. "
                             f"Received: data_format={data_format!r}")
        self.mode, self.scaling, self.padding = mode, scaling, padding
        self.window = _window_arg(self, window, "frame_length")
        self.periodic, self.expand_dims = bool(periodic), bool(expand_dims)
        self.data_format = data_format or "channels_last"
        self._frame_step = self.frame_step or self.frame_length // 2
        if self._frame_step < 1:
            raise ValueError(f"Layer '{self.name}': frame_length={frame_length} leaves a default frame_step of 0 "
                             f"(frame_length // 2); pass frame_step")
        self._fft_length = self.fft_length or 2 ** int(math.ceil(math.log2(self.frame_length)))
        if self._fft_length < 2:
            raise ValueError(f"Layer '{self.name}': the FFT needs fft_length >= 2 (at least two bins); received "
                             f"fft_length={self._fft_length}")
        self.input_spec = InputSpec(ndim=3)

    @property
    def _bins(self):
        return self._fft_length // 2 + 1

    def build(self, input_shape):
        shape = (self.frame_length, 1, self._bins)
        if self.mode != "imag":
            self.real_kernel = self.add_weight(shape, initializers.STFT("real", self.window, self.scaling,
                                                                        self.periodic), name="real_kernel")
        if self.mode != "real":
            self.imag_kernel = self.add_weight(shape, initializers.STFT("imag", self.window, self.scaling,
                                                                        self.periodic), name="imag_kernel")
        self.built = True

    def _frames(self, inputs):
        """(batch, channels, frames, k * bins): every channel convolved on its own with the real kernel, the
        imaginary one or both (one convolution of the two kernels side by side)."""
        if self.data_format == "channels_last":
            batch, length, channels = inputs.shape
            inputs = ops.transpose(inputs, (0, 2, 1))
        else:
            batch, channels, length = inputs.shape
        kernels = [k for k in (getattr(self, "real_kernel", None), getattr(self, "imag_kernel", None)) if k is not None]
        kernel = kernels[0] if len(kernels) == 1 else ops.concatenate(kernels, axis=-1)
        kernel = ops.cast(kernel, inputs.dtype)
        y = ops.conv(ops.reshape(inputs, (batch * channels, length, 1)), kernel, strides=self._frame_step,
                     padding=self.padding)
        return ops.reshape(y, (batch, channels) + tuple(y.shape[1:]))

    def _layout(self, y):
        """(batch, channels, frames, bins) to Keras's output layout."""
        batch, channels, frames, bins = y.shape
        if self.data_format == "channels_last":
            if self.expand_dims:
                return ops.transpose(y, (0, 2, 3, 1))
            return ops.reshape(ops.transpose(y, (0, 2, 1, 3)), (batch, frames, channels * bins))
        if self.expand_dims:
            return y
        return ops.reshape(ops.transpose(y, (0, 1, 3, 2)), (batch, channels * bins, frames))

    def call(self, inputs):
        if inputs.data.dtype.kind != "f":
            raise TypeError(f"Layer '{self.name}' (STFTSpectrogram): invalid input type. Expected `float16`, "
                            f"`float32` or `float64`. Received: input type={inputs.dtype}")
        y = self._frames(inputs)
        if self.mode in ("real", "imag", "stft"):
            return self._layout(y)
        bins = self._bins
        real, imag = y[..., :bins], y[..., bins:]
        if self.mode == "angle":
            return self._layout(ops.arctan2(imag, real))
        power = ops.add(ops.square(real), ops.square(imag))
        if self.mode == "psd":
            # one-sided density: every bin but the first and the last (if any) stands for two
            double = np.full(bins, 2.0, dtype=power.data.dtype)
            double[0] = double[-1] = 1.0
            xp = array_module(power.data)
            return self._layout(ops.multiply(power, Tensor(xp.asarray(double))))
        eps = _config.epsilon()
        magnitude = ops.sqrt(ops.maximum(power, eps))
        if self.mode == "magnitude":
            return self._layout(magnitude)
        return self._layout(ops.log(ops.maximum(magnitude, eps)))

    def compute_output_shape(self, input_shape):
        if len(input_shape) != 3:
            raise ValueError(f"Layer '{self.name}': expected a 3-D input shape (batch, time, channels); received "
                             f"{tuple(input_shape)}")
        if self.data_format == "channels_last":
            batch, length, channels = input_shape
        else:
            batch, channels, length = input_shape
        bins = self._bins * (2 if self.mode == "stft" else 1)
        frames = conv_output_length(length, self.frame_length, self.padding, self._frame_step, self.name)
        if self.expand_dims:
            return (batch, frames, bins, channels) if self.data_format == "channels_last" else \
                (batch, channels, frames, bins)
        features = None if channels is None else channels * bins
        return (batch, frames, features) if self.data_format == "channels_last" else (batch, features, frames)

    def get_config(self):
        return {**super().get_config(), "mode": self.mode, "frame_length": self.frame_length,
                "frame_step": self.frame_step, "fft_length": self.fft_length, "window": self.window,
                "periodic": self.periodic, "scaling": self.scaling, "padding": self.padding,
                "data_format": self.data_format, "expand_dims": self.expand_dims}


# Keras's (TensorFlow's) HTK mel scale: mel(f) = 1127 ln(1 + f / 700)
_MEL_BREAK_FREQUENCY_HERTZ = 700.0
_MEL_HIGH_FREQUENCY_Q = 1127.0


def _hertz_to_mel(hertz):
    return _MEL_HIGH_FREQUENCY_Q * np.log(1.0 + hertz / _MEL_BREAK_FREQUENCY_HERTZ)


def linear_to_mel_weight_matrix(num_mel_bins=20, num_spectrogram_bins=129, sampling_rate=8000, lower_edge_hertz=125.0,
                                upper_edge_hertz=3800.0, dtype="float32"):
    """The (num_spectrogram_bins, num_mel_bins) matrix of triangular mel filters (peaks 1, the DC bin
    zero) that Keras's MelSpectrogram multiplies a linear spectrogram by.  Computed in float64 and rounded
    once to ``dtype``: Keras's float32 arithmetic is off by up to ~2e-5 for its default 128 bins, and this
    stays within that of Keras's values."""
    linear = np.linspace(0.0, sampling_rate / 2.0, num_spectrogram_bins)[1:]
    bins_mel = _hertz_to_mel(linear)[:, None]
    edges = np.linspace(_hertz_to_mel(float(lower_edge_hertz)), _hertz_to_mel(float(upper_edge_hertz)),
                        num_mel_bins + 2)
    lower, center, upper = edges[:-2][None], edges[1:-1][None], edges[2:][None]
    lower_slopes = (bins_mel - lower) / (center - lower)
    upper_slopes = (upper - bins_mel) / (upper - center)
    weights = np.maximum(0.0, np.minimum(lower_slopes, upper_slopes))
    return np.pad(weights, ((1, 0), (0, 0))).astype(dtype)


def _number(layer, name, value, minimum=None):
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"Layer '{layer.name}' (MelSpectrogram): `{name}` must be a number. Received: "
                         f"{name}={value!r}")
    if minimum is not None and value < minimum:
        raise ValueError(f"Layer '{layer.name}' (MelSpectrogram): `{name}` must be >= {minimum}. Received: "
                         f"{name}={value!r}")
    return value


class MelSpectrogram(Layer):
    """keras.layers.MelSpectrogram: (samples,) or (batch, samples) signals to (num_mel_bins, frames) or
    (batch, num_mel_bins, frames) mel spectrograms, in decibels with power_to_db."""

    def __init__(self, fft_length=2048, sequence_stride=512, sequence_length=None, window="hann", sampling_rate=16000,
                 num_mel_bins=128, min_freq=20.0, max_freq=None, power_to_db=True, top_db=80.0, mag_exp=2.0,
                 min_power=1e-10, ref_power=1.0, **kwargs):
        super().__init__(**kwargs)
        self.fft_length = _positive_int(self, "fft_length", fft_length)
        self.sequence_stride = _positive_int(self, "sequence_stride", sequence_stride)
        self.sequence_length = _positive_int(self, "sequence_length", sequence_length or fft_length)
        if self.fft_length < self.sequence_length:
            raise ValueError(f"Layer '{self.name}': `fft_length` must be greater than or equal to `sequence_length`. "
                             f"Received: `sequence_length`={self.sequence_length}, `fft_length`={self.fft_length}.")
        if isinstance(window, str) and window not in ("hann", "hamming"):
            raise ValueError(f"Layer '{self.name}': a string `window` must be 'hann' or 'hamming'. Received: "
                             f"window={window!r}")
        self.window = _window_arg(self, window, "sequence_length")
        if isinstance(self.window, list) and len(self.window) != self.sequence_length:
            raise ValueError(f"Layer '{self.name}': `window` must have sequence_length={self.sequence_length} "
                             f"values; received {len(self.window)}")
        self.sampling_rate = _number(self, "sampling_rate", sampling_rate)
        if self.sampling_rate <= 0:
            raise ValueError(f"Layer '{self.name}': `sampling_rate` must be positive. Received: "
                             f"sampling_rate={sampling_rate!r}")
        self.num_mel_bins = _positive_int(self, "num_mel_bins", num_mel_bins)
        self.min_freq = _number(self, "min_freq", min_freq, minimum=0)
        self.max_freq = _number(self, "max_freq", max_freq) if max_freq else int(sampling_rate / 2)
        if self.max_freq <= self.min_freq:
            raise ValueError(f"Layer '{self.name}': `max_freq` must exceed `min_freq`. Received: min_freq={min_freq}, "
                             f"max_freq={self.max_freq}")
        self.power_to_db = bool(power_to_db)
        self.top_db = _number(self, "top_db", top_db, minimum=0)
        self.mag_exp = _number(self, "mag_exp", mag_exp)
        self.min_power = _number(self, "min_power", min_power)
        if self.min_power <= 0:
            raise ValueError(f"Layer '{self.name}': `min_power` must be positive (it floors a logarithm). "
                             f"Received: min_power={min_power!r}")
        self.ref_power = _number(self, "ref_power", ref_power)
        self._filters = {}  # (spectrogram bins, dtype) -> the host mel matrix

    def linear_to_mel_weight_matrix(self, num_mel_bins=20, num_spectrogram_bins=129, sampling_rate=8000,
                                    lower_edge_hertz=125.0, upper_edge_hertz=3800.0, dtype="float32"):
        return linear_to_mel_weight_matrix(num_mel_bins, num_spectrogram_bins, sampling_rate, lower_edge_hertz,
                                           upper_edge_hertz, dtype)

    def _mel_matrix(self, bins, dtype, xp):
        key = (bins, np.dtype(dtype).name)
        if key not in self._filters:
            self._filters[key] = linear_to_mel_weight_matrix(self.num_mel_bins, bins, self.sampling_rate,
                                                             self.min_freq, self.max_freq, dtype)
        return Tensor(xp.asarray(self._filters[key]))

    def call(self, inputs):
        if inputs.ndim not in (1, 2):
            raise ValueError(f"Layer '{self.name}' (MelSpectrogram): expected (samples,) or (batch, samples) "
                             f"signals; received shape {inputs.shape}")
        dtype = self.dtype if self.dtype in ("float32", "float64") else "float32"
        x = ops.cast(inputs, dtype)
        real, imag = ops.stft(x, self.sequence_length, self.sequence_stride, self.fft_length,
                              window=self.window, center=True)
        spec = ops.power(ops.sqrt(ops.add(ops.square(real), ops.square(imag))), self.mag_exp)
        spec = ops.matmul(spec, self._mel_matrix(spec.shape[-1], dtype, array_module(spec.data)))
        if self.power_to_db:
            log_spec = ops.multiply(ops.log10(ops.maximum(spec, self.min_power)), 10.0)
            log_spec = ops.subtract(log_spec, 10.0 * math.log10(max(abs(self.ref_power), self.min_power)))
            # the cut-off is below the largest value of the whole batch, as Keras computes it
            spec = ops.maximum(log_spec, ops.subtract(ops.max(log_spec), self.top_db))
        return ops.cast(ops.swapaxes(spec, -1, -2), self.dtype)

    def _frames(self, samples):
        if samples is None:
            return None
        # centred frames: the signal is reflect-padded by fft_length // 2 on each side
        return 1 + (samples + 2 * (self.fft_length // 2) - self.fft_length) // self.sequence_stride

    def compute_output_shape(self, input_shape):
        if len(input_shape) == 1:
            return (self.num_mel_bins, self._frames(input_shape[0]))
        if len(input_shape) != 2:
            raise ValueError(f"Layer '{self.name}' (MelSpectrogram): expected (samples,) or (batch, samples); "
                             f"received {tuple(input_shape)}")
        return (input_shape[0], self.num_mel_bins, self._frames(input_shape[1]))

    def get_config(self):
        return {**super().get_config(), "fft_length": self.fft_length, "sequence_stride": self.sequence_stride,
                "sequence_length": self.sequence_length, "window": self.window, "sampling_rate": self.sampling_rate,
                "num_mel_bins": self.num_mel_bins, "min_freq": self.min_freq, "max_freq": self.max_freq,
                "power_to_db": self.power_to_db, "top_db": self.top_db, "mag_exp": self.mag_exp,
                "min_power": self.min_power, "ref_power": self.ref_power}
