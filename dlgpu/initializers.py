"""Weight initializers (Keras 3 names, defaults and fan rules).

``init(shape, dtype)`` returns a host numpy array (float32 unless asked otherwise); Variables move it to
their device.  Unseeded initializers draw from one module-level numpy Generator that ``set_seed``
reseeds (``dlgpu.set_random_seed`` should call it); an initializer built with ``seed=int`` draws from a
Generator made from that seed on every call, so it gives the same values each time (as Keras's
integer seeds do).
"""

from __future__ import annotations

import math

import numpy as np
from dlgpu.utils import deserialize_by_class_name, unknown_name_error

_rng = np.random.default_rng()


def set_seed(seed):
    """Reseed the generator shared by every unseeded initializer."""
    global _rng
    _rng = np.random.default_rng(seed)


def _generator(seed):
    return _rng if seed is None else np.random.default_rng(seed)


def compute_fans(shape, input_axes=None, output_axes=None):
    """(fan_in, fan_out) as Keras: conv kernels (..., cin, cout) count the receptive field too; explicit
    ``input_axes``/``output_axes`` (Keras 3.14+, for einsum kernels) name the axes each fan multiplies."""
    shape = tuple(shape)
    if input_axes is not None and output_axes is not None:
        return math.prod(shape[a] for a in input_axes), math.prod(shape[a] for a in output_axes)
    if len(shape) == 0:
        return 1, 1
    if len(shape) == 1:
        return shape[0], shape[0]
    if len(shape) == 2:
        return shape[0], shape[1]
    receptive = math.prod(shape[:-2])
    return shape[-2] * receptive, shape[-1] * receptive


def _dtype(dtype):
    return np.dtype(dtype or "float32")


class Initializer:
    def __call__(self, shape, dtype=None):
        raise NotImplementedError

    def get_config(self):
        return {}

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def clone(self):
        return type(self).from_config(self.get_config())

    def __repr__(self):
        return f"{type(self).__name__}({', '.join(f'{k}={v!r}' for k, v in self.get_config().items())})"


class Constant(Initializer):
    def __init__(self, value=0.0):
        self.value = value

    def __call__(self, shape, dtype=None):
        return np.full(tuple(shape), self.value, dtype=_dtype(dtype))

    def get_config(self):
        # An array value (PointNet's identity bias) travels as Keras writes it, so the config stays JSON.
        value = self.value
        if isinstance(value, np.ndarray):
            return {"value": {"class_name": "__numpy__", "config": {"value": value.tolist(),
                                                                      "dtype": value.dtype.name}}}
        return {"value": value.item() if isinstance(value, np.generic) else value}

    @classmethod
    def from_config(cls, config):
        value = config.get("value", 0.0)
        if isinstance(value, dict) and value.get("class_name") == "__numpy__":
            value = np.asarray(value["config"]["value"], dtype=value["config"]["dtype"])
        return cls(value)


class Zeros(Initializer):
    def __call__(self, shape, dtype=None):
        return np.zeros(tuple(shape), dtype=_dtype(dtype))


class Ones(Initializer):
    def __call__(self, shape, dtype=None):
        return np.ones(tuple(shape), dtype=_dtype(dtype))


class RandomNormal(Initializer):
    def __init__(self, mean=0.0, stddev=0.05, seed=None):
        self.mean, self.stddev, self.seed = mean, stddev, seed

    def __call__(self, shape, dtype=None):
        return _generator(self.seed).normal(self.mean, self.stddev, tuple(shape)).astype(_dtype(dtype))

    def get_config(self):
        return {"mean": self.mean, "stddev": self.stddev, "seed": self.seed}


class RandomUniform(Initializer):
    def __init__(self, minval=-0.05, maxval=0.05, seed=None):
        self.minval, self.maxval, self.seed = minval, maxval, seed

    def __call__(self, shape, dtype=None):
        return _generator(self.seed).uniform(self.minval, self.maxval, tuple(shape)).astype(_dtype(dtype))

    def get_config(self):
        return {"minval": self.minval, "maxval": self.maxval, "seed": self.seed}


def _truncated_normal(rng, shape, mean, stddev):
    """Normal samples, redrawing those beyond two standard deviations (as Keras/TF)."""
    values = rng.standard_normal(shape)
    bad = np.abs(values) > 2.0
    while bad.any():
        values[bad] = rng.standard_normal(int(bad.sum()))
        bad = np.abs(values) > 2.0
    return values * stddev + mean


class TruncatedNormal(Initializer):
    def __init__(self, mean=0.0, stddev=0.05, seed=None):
        self.mean, self.stddev, self.seed = mean, stddev, seed

    def __call__(self, shape, dtype=None):
        return _truncated_normal(_generator(self.seed), tuple(shape), self.mean, self.stddev).astype(_dtype(dtype))

    def get_config(self):
        return {"mean": self.mean, "stddev": self.stddev, "seed": self.seed}


class VarianceScaling(Initializer):
    """scale / fan (fan_in, fan_out or their average), drawn truncated-normal, normal or uniform."""

    def __init__(self, scale=1.0, mode="fan_in", distribution="truncated_normal", seed=None, input_axes=None,
                 output_axes=None):
        if scale <= 0.0:
            raise ValueError(f"Argument `scale` must be positive float. Received: scale={scale}")
        if mode not in ("fan_in", "fan_out", "fan_avg"):
            raise ValueError(f"Invalid `mode` argument: expected one of {{'fan_in', 'fan_out', 'fan_avg'}}. "
                             f"Received: mode={mode}")
        distribution = distribution.lower()
        if distribution == "normal":
            distribution = "truncated_normal"
        if distribution not in ("uniform", "truncated_normal", "untruncated_normal"):
            raise ValueError("Invalid `distribution` argument: expected one of {'normal', 'uniform', "
                             f"'truncated_normal', 'untruncated_normal'}}. Received: distribution={distribution}")
        self.scale, self.mode, self.distribution, self.seed = scale, mode, distribution, seed
        self.input_axes = None if input_axes is None else list(input_axes)
        self.output_axes = None if output_axes is None else list(output_axes)

    def __call__(self, shape, dtype=None):
        shape = tuple(shape)
        fan_in, fan_out = compute_fans(shape, self.input_axes, self.output_axes)
        fan = {"fan_in": fan_in, "fan_out": fan_out, "fan_avg": (fan_in + fan_out) / 2.0}[self.mode]
        scale = self.scale / max(1.0, fan)
        rng = _generator(self.seed)
        if self.distribution == "truncated_normal":
            stddev = math.sqrt(scale) / 0.87962566103423978  # std of a unit normal truncated at ±2
            values = _truncated_normal(rng, shape, 0.0, stddev)
        elif self.distribution == "untruncated_normal":
            values = rng.normal(0.0, math.sqrt(scale), shape)
        else:
            limit = math.sqrt(3.0 * scale)
            values = rng.uniform(-limit, limit, shape)
        return values.astype(_dtype(dtype))

    def get_config(self):
        return {"scale": self.scale, "mode": self.mode, "distribution": self.distribution, "seed": self.seed,
                "input_axes": self.input_axes, "output_axes": self.output_axes}


def _variance_scaling(name, scale, mode, distribution):
    class _Preset(VarianceScaling):
        def __init__(self, seed=None, input_axes=None, output_axes=None):
            super().__init__(scale=scale, mode=mode, distribution=distribution, seed=seed, input_axes=input_axes,
                             output_axes=output_axes)

        def get_config(self):
            return {"seed": self.seed, "input_axes": self.input_axes, "output_axes": self.output_axes}
    _Preset.__name__ = _Preset.__qualname__ = name
    return _Preset


GlorotUniform = _variance_scaling("GlorotUniform", 1.0, "fan_avg", "uniform")
GlorotNormal = _variance_scaling("GlorotNormal", 1.0, "fan_avg", "truncated_normal")
LecunUniform = _variance_scaling("LecunUniform", 1.0, "fan_in", "uniform")
LecunNormal = _variance_scaling("LecunNormal", 1.0, "fan_in", "truncated_normal")
HeUniform = _variance_scaling("HeUniform", 2.0, "fan_in", "uniform")
HeNormal = _variance_scaling("HeNormal", 2.0, "fan_in", "truncated_normal")


class Orthogonal(Initializer):
    """An orthogonal matrix (QR of a normal draw, sign-fixed) reshaped to ``shape``, times ``gain``."""

    def __init__(self, gain=1.0, seed=None):
        self.gain, self.seed = gain, seed

    def __call__(self, shape, dtype=None):
        shape = tuple(shape)
        if len(shape) < 2:
            raise ValueError(f"Orthogonal initializer requires a shape of rank >= 2. Received: shape={shape}")
        rows, cols = math.prod(shape[:-1]), shape[-1]
        a = _generator(self.seed).normal(0.0, 1.0, (max(rows, cols), min(rows, cols)))
        q, r = np.linalg.qr(a)
        q *= np.sign(np.diag(r))
        if rows < cols:
            q = q.T
        return (self.gain * q).reshape(shape).astype(_dtype(dtype))

    def get_config(self):
        return {"gain": self.gain, "seed": self.seed}


class Identity(Initializer):
    def __init__(self, gain=1.0):
        self.gain = gain

    def __call__(self, shape, dtype=None):
        shape = tuple(shape)
        if len(shape) != 2:
            raise ValueError(f"Identity initializer requires a 2D shape. Received: shape={shape}")
        return (self.gain * np.eye(*shape)).astype(_dtype(dtype))

    def get_config(self):
        return {"gain": self.gain}


# Windows of scipy.signal.get_window that need no parameter, computed as scipy computes them; any other
# name goes to scipy itself when it is installed (Keras's STFT initializer asks scipy for every window).
_COSINE_WINDOWS = {"hann": (0.5, 0.5), "hamming": (0.54, 0.46), "blackman": (0.42, 0.5, 0.08)}
_WINDOW_ALIASES = {"han": "hann", "hamm": "hamming", "ham": "hamming", "black": "blackman", "blk": "blackman",
                   "bartlett": "bartlett", "bart": "bartlett", "brt": "bartlett", "boxcar": "boxcar",
                   "box": "boxcar", "ones": "boxcar", "rect": "boxcar", "rectangular": "boxcar"}


def signal_window(name, length, periodic=False, owner="STFT"):
    """``scipy.signal.get_window(name, length, fftbins=periodic)`` as float64: a periodic window is the
    symmetric one of ``length + 1`` points without its last point (the DFT-even form)."""
    key = _WINDOW_ALIASES.get(name, name)
    if key not in _COSINE_WINDOWS and key not in ("bartlett", "boxcar"):
        try:
            from scipy import signal
        except ImportError:
            raise ValueError(f"{owner}: window={name!r} needs scipy (not installed); without it dlgpu knows "
                             f"'hann', 'hamming', 'blackman', 'bartlett' and 'boxcar'") from None
        try:
            return np.asarray(signal.get_window(name, length, fftbins=periodic), dtype=np.float64)
        except ValueError as error:
            raise ValueError(f"{owner}: invalid `window` {name!r}: {error}") from None
    if length <= 1:
        return np.ones(length)
    points = length + 1 if periodic else length
    if key in _COSINE_WINDOWS:
        phase = np.linspace(-np.pi, np.pi, points)
        w = sum(a * np.cos(k * phase) for k, a in enumerate(_COSINE_WINDOWS[key]))
    elif key == "bartlett":
        n = np.arange(points)
        w = np.where(n <= (points - 1) / 2.0, 2.0 * n / (points - 1), 2.0 - 2.0 * n / (points - 1))
    else:
        w = np.ones(points)
    return w[:length]


class STFT(Initializer):
    """Kernels of a convolution that computes a short-time Fourier transform (keras.initializers.STFT): for a
    (frame_length, channels, bins) shape, ``cos`` (side='real') or ``sin`` (side='imag') of
    ``-2 pi t f / (2 (bins - 1))``, times the window, divided by the window's L2 norm (scaling='density') or
    its L1 norm ('spectrum').  Computed in the requested dtype step by step as Keras computes it, so that
    the kernels agree with Keras's to float32 rounding also for long frames (where the phase reaches
    hundreds of radians)."""

    def __init__(self, side="real", window="hann", scaling="density", periodic=False):
        if side not in ("real", "imag"):
            raise ValueError(f"STFT initializer: `side` must be 'real' or 'imag'; received side={side!r}")
        if isinstance(window, str):
            signal_window(window, 1, owner="STFT initializer")  # an unknown name fails now, as in Keras
        if scaling is not None and scaling not in ("density", "spectrum"):
            raise ValueError(f"STFT initializer: `scaling` must be None, 'density' or 'spectrum'; received "
                             f"scaling={scaling!r}")
        self.side, self.window, self.scaling, self.periodic = side, window, scaling, periodic

    def __call__(self, shape, dtype=None):
        dtype = _dtype(dtype)
        if len(tuple(shape)) != 3:
            raise ValueError(f"STFT initializer: the shape must be (frame_length, input_channels, "
                             f"fft_length // 2 + 1); received shape={tuple(shape)}")
        frame_length, channels, bins = (int(s) for s in shape)
        span = dtype.type((bins - 1) * 2)
        freq = np.arange(bins, dtype=dtype).reshape(1, 1, bins) / span
        time = np.arange(frame_length, dtype=dtype).reshape(frame_length, 1, 1)
        args = (dtype.type(-2) * time) * freq * dtype.type(np.pi)
        kernel = np.cos(args) if self.side == "real" else np.sin(args)
        if self.window is not None:
            win = self.window
            if isinstance(win, str):
                win = signal_window(win, frame_length, self.periodic, owner="STFT initializer")
            win = np.asarray(win, dtype=dtype)
            if win.ndim != 1 or win.shape[0] != frame_length:
                raise ValueError(f"STFT initializer: the window must have shape ({frame_length},) (frame_length); "
                                 f"received shape {win.shape}")
            win = win.reshape(frame_length, 1, 1)
            kernel = kernel * win
            if self.scaling == "density":
                kernel = kernel / np.sqrt(np.sum(np.square(win)))
            elif self.scaling == "spectrum":
                kernel = kernel / np.sum(np.abs(win))
        return np.broadcast_to(kernel, (frame_length, channels, bins)).astype(dtype)

    def get_config(self):
        window = self.window.tolist() if isinstance(self.window, np.ndarray) else self.window
        return {"side": self.side, "window": window, "periodic": self.periodic, "scaling": self.scaling}


# Keras exports lower-case aliases of the classes.
constant = Constant
zeros = Zeros
ones = Ones
random_normal = RandomNormal
random_uniform = RandomUniform
truncated_normal = TruncatedNormal
variance_scaling = VarianceScaling
glorot_uniform = GlorotUniform
glorot_normal = GlorotNormal
lecun_uniform = LecunUniform
lecun_normal = LecunNormal
he_uniform = HeUniform
he_normal = HeNormal
orthogonal = Orthogonal
OrthogonalInitializer = Orthogonal  # Keras exports both names
IdentityInitializer = Identity
identity = Identity
STFTInitializer = STFT
stft = STFT

_CLASSES = {cls.__name__: cls for cls in (
    Constant, Zeros, Ones, RandomNormal, RandomUniform, TruncatedNormal, VarianceScaling, GlorotUniform,
    GlorotNormal, LecunUniform, LecunNormal, HeUniform, HeNormal, Orthogonal, Identity, STFT)}
_ALIASES = {"constant": Constant, "zeros": Zeros, "zero": Zeros, "ones": Ones, "one": Ones,
            "random_normal": RandomNormal, "normal": RandomNormal, "random_uniform": RandomUniform,
            "uniform": RandomUniform, "truncated_normal": TruncatedNormal, "variance_scaling": VarianceScaling,
            "glorot_uniform": GlorotUniform, "glorot_normal": GlorotNormal, "lecun_uniform": LecunUniform,
            "lecun_normal": LecunNormal, "he_uniform": HeUniform, "he_normal": HeNormal,
            "orthogonal": Orthogonal, "identity": Identity, "IdentityInitializer": Identity,
            "OrthogonalInitializer": Orthogonal, "stft": STFT, "STFTInitializer": STFT}


def _unknown(identifier):
    return unknown_name_error("initializer", identifier, set(_CLASSES) | set(_ALIASES))


def get(identifier):
    """An initializer instance from a name, config dict, class or instance; other callables pass through."""
    if identifier is None or isinstance(identifier, Initializer):
        return identifier
    if isinstance(identifier, dict):
        return deserialize(identifier)
    if isinstance(identifier, str):
        cls = _ALIASES.get(identifier) or _CLASSES.get(identifier)
        if cls is None:
            raise _unknown(identifier)
        return cls()
    if isinstance(identifier, type) and issubclass(identifier, Initializer):
        return identifier()
    if callable(identifier):
        return identifier
    raise ValueError(f"Could not interpret initializer identifier: {identifier!r}")


def serialize(initializer):
    if initializer is None:
        return None
    if not isinstance(initializer, Initializer):
        raise ValueError(f"Cannot serialize initializer {initializer!r}: not a dlgpu Initializer.")
    return {"module": "keras.initializers", "class_name": type(initializer).__name__,
            "config": initializer.get_config(), "registered_name": None}


def deserialize(config, custom_objects=None):
    """An initializer from its serialized dict: a built-in class, one in ``custom_objects``, or one registered
    with ``dlgpu.saving.register_keras_serializable`` (a layer's from_config gets no custom_objects)."""
    return deserialize_by_class_name(config, custom_objects, {**_ALIASES, **_CLASSES}, get, _unknown)
