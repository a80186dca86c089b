"""keras.ops.image's colour conversions and filters: rgb_to_grayscale, rgb_to_hsv, hsv_to_rgb, gaussian_blur,
sobel_edges and ssim (imported into dlgpu.ops.image, where they are public).

All are compositions of dlgpu ops (elementwise math and depthwise convolutions), so they are differentiable
and run on CuPy arrays as they are.  The colour layers call the HSV plane helpers and rgb_to_grayscale, and
RandomGaussianBlur calls gaussian_blur, so that each formula exists once.

Where Keras's backends disagree, this follows the numpy and JAX backends (which agree with torch's on the
cases that torch computes correctly): gaussian_blur's kernel is outer(k(kernel_size[1], sigma[1]),
k(kernel_size[0], sigma[0])) (rows, columns) with TensorFlow's 'same' zero padding, also for unequal or even
sizes, where Keras's torch backend reshapes the kernel and pads by kernel_size[0] // 2 on both axes.
sobel_edges pads with zeros (torch and JAX; the numpy backend reflects).
"""

from __future__ import annotations

import numpy as np

from dlgpu.ops._core import array_module, to_tensor
from dlgpu.ops.image import _batched, _unbatched, check_rank, data_format_of, from_channels_last, to_channels_last

LUMA = (0.2989, 0.587, 0.114)  # tf.image.rgb_to_grayscale's weights (ITU-R BT.601), as Keras's


def _channel(x, i):
    from dlgpu.ops.shape import _getitem
    return _getitem(x, (Ellipsis, i))


def _channels(op, x, data_format, allowed):
    channels = x.shape[-1] if data_format == "channels_last" else x.shape[-3]
    if channels not in allowed:
        raise ValueError(f"{op}: expected images with {' or '.join(map(str, allowed))} channels; received "
                         f"images.shape={tuple(x.shape)} (data_format={data_format!r})")
    return channels


def rgb_to_grayscale(images, data_format=None):
    """keras.ops.image.rgb_to_grayscale: 0.2989 R + 0.587 G + 0.114 B in one channel (a one-channel image
    is returned as it is); integer images are computed in float32 and truncated back, as Keras does."""
    op = "rgb_to_grayscale"
    from dlgpu.ops.math import add, cast, multiply
    from dlgpu.ops.shape import expand_dims
    data_format = data_format_of(op, data_format)
    x = to_tensor(images)
    check_rank(op, x)
    if _channels(op, x, data_format, (1, 3)) == 1:
        return x
    dtype = x.dtype
    last = to_channels_last(x if x.data.dtype.kind == "f" else cast(x, "float32"), data_format)
    r, g, b = (_channel(last, i) for i in range(3))
    gray = add(add(multiply(r, LUMA[0]), multiply(g, LUMA[1])), multiply(b, LUMA[2]))
    gray = from_channels_last(expand_dims(gray, -1), data_format)
    return gray if gray.dtype == dtype else cast(gray, dtype)


def rgb_planes_to_hsv(images):
    """Channels-last RGB -> (hue, saturation, value) planes, Keras's rgb_to_hsv (after dm_pix): hue in [0, 1),
    saturation range / max, value max; on any scale."""
    from dlgpu.ops import math as m
    eps = float(np.finfo(images.data.dtype).eps)
    images = m.where(m.less(m.abs(images), eps), 0.0, images)
    r, g, b = (_channel(images, i) for i in range(3))
    value = m.maximum(m.maximum(r, g), b)
    spread = m.subtract(value, m.minimum(m.minimum(r, g), b))
    positive, moving = m.greater(value, 0.0), m.greater(spread, 0.0)
    saturation = m.where(positive, m.divide(spread, m.where(positive, value, 1.0)), 0.0)
    norm = m.divide(1.0, m.multiply(6.0, m.where(moving, spread, 1.0)))
    hue = m.where(m.equal(value, g), m.add(m.multiply(norm, m.subtract(b, r)), 2.0 / 6.0),
                  m.add(m.multiply(norm, m.subtract(r, g)), 4.0 / 6.0))
    hue = m.where(m.equal(value, r), m.multiply(norm, m.subtract(g, b)), hue)
    wrap = m.cast(m.less(hue, 0.0), images.dtype)
    hue = m.add(m.where(moving, hue, 0.0), wrap)
    return hue, saturation, value


def hsv_planes_to_rgb(hue, saturation, value):
    """(hue, saturation, value) planes -> channels-last RGB (dm_pix's formula, as Keras's hsv_to_rgb)."""
    from dlgpu.ops import math as m
    from dlgpu.ops.shape import stack
    dh = m.multiply(m.mod(hue, 1.0), 6.0)
    dr = m.clip(m.subtract(m.abs(m.subtract(dh, 3.0)), 1.0), 0.0, 1.0)
    dg = m.clip(m.subtract(2.0, m.abs(m.subtract(dh, 2.0))), 0.0, 1.0)
    db = m.clip(m.subtract(2.0, m.abs(m.subtract(dh, 4.0))), 0.0, 1.0)
    grey = m.subtract(1.0, saturation)
    return stack([m.multiply(value, m.add(grey, m.multiply(saturation, d))) for d in (dr, dg, db)], axis=-1)


def _float_rgb(op, images, data_format):
    data_format = data_format_of(op, data_format)
    x = to_tensor(images)
    check_rank(op, x)
    if x.data.dtype.kind != "f":
        raise ValueError(f"{op}: invalid images dtype: expected a float dtype. Received: images.dtype={x.dtype}")
    _channels(op, x, data_format, (3,))
    return to_channels_last(x, data_format), data_format


def rgb_to_hsv(images, data_format=None):
    """keras.ops.image.rgb_to_hsv of float RGB images (well defined for values in [0, 1])."""
    from dlgpu.ops.shape import stack
    x, data_format = _float_rgb("rgb_to_hsv", images, data_format)
    return from_channels_last(stack(rgb_planes_to_hsv(x), axis=-1), data_format)


def hsv_to_rgb(images, data_format=None):
    """keras.ops.image.hsv_to_rgb of float HSV images."""
    x, data_format = _float_rgb("hsv_to_rgb", images, data_format)
    return from_channels_last(hsv_planes_to_rgb(*(_channel(x, i) for i in range(3))), data_format)


# -- filters -----------------------------------------------------------------------------------------------

def gaussian_kernel_1d(size, sigma, dtype=np.float32):
    """exp(-x^2 / (2 sigma^2)) at the ``size`` taps centred on 0, normalized to sum 1, computed in ``dtype``
    as Keras's backends compute it."""
    dtype = np.dtype(dtype)
    x = np.arange(size, dtype=dtype) - dtype.type((size - 1) / 2)
    k = np.exp(dtype.type(-0.5) * (x / dtype.type(sigma)) ** 2)
    return k / k.sum()


def _pair(op, name, value, kind):
    pair = tuple(value) if isinstance(value, (tuple, list, np.ndarray)) else (value, value)
    try:
        pair = tuple(kind(v) for v in pair)
    except (TypeError, ValueError):
        pair = ()
    if len(pair) != 2 or (kind is int and min(pair) < 1) or (kind is float and min(pair) <= 0):
        raise ValueError(f"{op}: `{name}` must be a positive number or a pair of them (width, height); received "
                         f"{name}={value!r}")
    return pair


def _separable_blur(x, kernel_rows, kernel_cols, padding):
    """Each channel of NHWC ``x`` correlated with outer(kernel_rows, kernel_cols): two depthwise passes."""
    from dlgpu.ops.conv import depthwise_conv
    xp = array_module(x.data)
    channels = x.shape[-1]
    rows = xp.asarray(np.tile(kernel_rows.reshape(-1, 1, 1, 1), (1, 1, channels, 1)))
    cols = xp.asarray(np.tile(kernel_cols.reshape(1, -1, 1, 1), (1, 1, channels, 1)))
    return depthwise_conv(depthwise_conv(x, rows, padding=padding), cols, padding=padding)


def gaussian_blur(images, kernel_size=(3, 3), sigma=(1.0, 1.0), data_format=None):
    """keras.ops.image.gaussian_blur: each channel correlated with a Gaussian kernel, zero padding, the
    shape kept.  As in Keras's kernels, ``kernel_size[0]`` and ``sigma[0]`` act along the width (columns),
    ``[1]`` along the height; a number stands for both.  Integer images are blurred in float32 and cast back."""
    op = "gaussian_blur"
    from dlgpu.ops.math import cast
    data_format = data_format_of(op, data_format)
    size_w, size_h = _pair(op, "kernel_size", kernel_size, int)
    sigma_w, sigma_h = _pair(op, "sigma", sigma, float)
    dtype = to_tensor(images).dtype
    x, single = _batched(op, images, data_format)
    work = x.data.dtype
    out = _separable_blur(x, gaussian_kernel_1d(size_h, sigma_h, work), gaussian_kernel_1d(size_w, sigma_w, work),
                          "same")
    out = _unbatched(out, single, data_format)
    return out if out.dtype == dtype else cast(out, dtype)


_SOBEL_Y = np.array([[-1, -2, -1], [0, 0, 0], [1, 2, 1]], np.float32)


def sobel_edges(images, data_format=None):
    """keras.ops.image.sobel_edges of a batch: per channel, the vertical and horizontal Sobel responses
    (cross-correlation with [[-1, -2, -1], [0, 0, 0], [1, 2, 1]] and its transpose, zero padding) stacked
    last as [dy, dx]: (batch, height, width, channels, 2), or (batch, channels, height, width, 2) for
    channels_first.  One depthwise convolution with two kernels per channel."""
    op = "sobel_edges"
    from dlgpu.ops.conv import depthwise_conv
    from dlgpu.ops.shape import reshape, transpose
    data_format = data_format_of(op, data_format)
    x = to_tensor(images)
    if x.ndim != 4:
        raise ValueError(f"{op}: invalid images rank: expected rank 4 (a batch of images); received "
                         f"images.shape={tuple(x.shape)}")
    x, _ = _batched(op, x, data_format, cast_to_float=False)
    xp = array_module(x.data)
    batch, height, width, channels = x.shape
    kernel = np.stack([_SOBEL_Y, _SOBEL_Y.T], -1).astype(x.data.dtype)       # (3, 3, 2): [dy, dx]
    kernel = xp.asarray(np.tile(kernel[:, :, None, :], (1, 1, channels, 1)))
    edges = reshape(depthwise_conv(x, kernel, padding="same"), (batch, height, width, channels, 2))
    return transpose(edges, (0, 3, 1, 2, 4)) if data_format == "channels_first" else edges


def ssim(image1, image2, max_val=1.0, filter_size=11, filter_sigma=1.5, k1=0.01, k2=0.03, data_format=None):
    """keras.ops.image.ssim: the mean over valid positions and channels of Wang et al.'s SSIM map, local
    statistics from a ``filter_size`` Gaussian window (no padding): one value per image (a scalar for one
    image), in the first image's dtype.  The five local means come from one blur of the stacked maps."""
    op = "ssim"
    from dlgpu.ops.math import add, cast, divide, multiply, subtract
    from dlgpu.ops.reduce import mean
    from dlgpu.ops.shape import concatenate, reshape, split
    data_format = data_format_of(op, data_format)
    a, b = to_tensor(image1), to_tensor(image2)
    check_rank(op, a, name="image1")
    check_rank(op, b, name="image2")
    if tuple(a.shape) != tuple(b.shape):
        raise ValueError(f"{op}: image1 and image2 must have the same shape; received {tuple(a.shape)} and "
                         f"{tuple(b.shape)}")
    if isinstance(filter_size, bool) or not isinstance(filter_size, (int, np.integer)) or filter_size < 1:
        raise ValueError(f"{op}: `filter_size` must be a positive integer; received filter_size={filter_size!r}")
    dtype = a.dtype
    x1, single = _batched(op, a, data_format)
    x2, _ = _batched(op, b, data_format)
    if x2.dtype != x1.dtype:
        x2 = cast(x2, x1.dtype)
    if min(x1.shape[1:3]) < filter_size:
        raise ValueError(f"{op}: images of height and width {tuple(x1.shape[1:3])} are smaller than the "
                         f"{filter_size}x{filter_size} filter (filter_size={filter_size})")
    kernel = gaussian_kernel_1d(int(filter_size), filter_sigma, x1.data.dtype)
    maps = concatenate([x1, x2, multiply(x1, x1), multiply(x2, x2), multiply(x1, x2)], axis=-1)
    mu1, mu2, m11, m22, m12 = split(_separable_blur(maps, kernel, kernel, "valid"), 5, axis=-1)
    c1, c2 = (k1 * max_val) ** 2, (k2 * max_val) ** 2
    mu1_mu2, mu1_sq, mu2_sq = multiply(mu1, mu2), multiply(mu1, mu1), multiply(mu2, mu2)
    numerator = multiply(add(multiply(2.0, mu1_mu2), c1), add(multiply(2.0, subtract(m12, mu1_mu2)), c2))
    denominator = multiply(add(add(mu1_sq, mu2_sq), c1), add(add(subtract(m11, mu1_sq), subtract(m22, mu2_sq)), c2))
    value = mean(mean(divide(numerator, denominator), axis=(1, 2)), axis=-1)
    if single:
        value = reshape(value, ())
    return value if value.dtype == dtype else cast(value, dtype)
