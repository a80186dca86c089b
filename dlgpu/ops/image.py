"""keras.ops.image: the geometry behind the image preprocessing layers, on NHWC images (numpy or CuPy).

``affine_transform`` maps every output pixel of every image through its image's transform to a source
point and hands the points to one batched sampler (``_sample``, also used by the elastic augmentation), which
reads them with one gather per interpolation corner over the whole batch (no loop over samples or pixels).
Out-of-image corners follow ``fill_mode`` corner by corner, which is what Keras's numpy and JAX backends
compute (they pad the image by the fill rule, then interpolate):

    reflect   d c b a | a b c d | d c b a      (the edge pixel repeats)
    mirror    d c b   | a b c d | c b a        (it does not)
    wrap      a b c d | a b c d | a b c d
    nearest   a a a a | a b c d | d d d d
    constant  k k k k | a b c d | k k k k      (k = fill_value)

``resize`` is separable: rows, then columns, each one gather of two neighbours (bilinear, half-pixel
centres, edges clamped as tf.image.resize / jax.image.resize / torch align_corners=False) or of one
(nearest: source floor((i + 0.5) * in / out)).  Both are differentiable with respect to the images.
"""

from __future__ import annotations

import numpy as np

from dlgpu.ops._core import Tensor, array_module, backend_of, make_result, to_tensor
from dlgpu.ops.shape import _getitem, pad, reshape, take

INTERPOLATIONS = ("bilinear", "nearest")
FILL_MODES = ("reflect", "wrap", "constant", "nearest", "mirror")


def _check_channels_last(op, data_format):
    if data_format not in (None, "channels_last"):
        raise NotImplementedError(f"{op}: only data_format='channels_last' (NHWC) is supported; received "
                                  f"data_format={data_format!r}")


def _batched(op, images):
    images = to_tensor(images)
    if images.ndim not in (3, 4):
        raise ValueError(f"{op}: expected images of rank 3 (height, width, channels) or 4 (batch, height, width, "
                         f"channels); received shape {tuple(images.shape)}")
    if images.data.dtype.kind != "f":
        from dlgpu.ops.math import cast
        images = cast(images, "float32")
    single = images.ndim == 3
    return (reshape(images, (1,) + tuple(images.shape)) if single else images), single


def _fix_index(xp, i, n, fill_mode):
    """Integer source indices ``i`` (any range) mapped into [0, n) by the fill rule, and for 'constant'
    the mask of those that were inside (the others read fill_value)."""
    if fill_mode == "constant":
        return xp.clip(i, 0, n - 1), (i >= 0) & (i < n)
    if fill_mode == "nearest":
        return xp.clip(i, 0, n - 1), None
    if fill_mode == "wrap":
        return i % n, None  # Python's modulo sign rule, which numpy and CuPy follow: never negative
    if fill_mode == "reflect":
        j = i % (2 * n)
        return xp.where(j >= n, 2 * n - 1 - j, j), None
    if n == 1:  # mirror of a single pixel: its period 2n - 2 would be 0
        return xp.zeros_like(i), None
    j = i % (2 * n - 2)
    return xp.where(j >= n, 2 * n - 2 - j, j), None


def _as_transforms(op, transform, batch, xp):
    """Keras's 8-vectors [a0 a1 a2 b0 b1 b2 c0 c1] (or 3x3 matrices), one per image or one for all, as
    a (batch, 8) float32 array on the images' device."""
    shape = tuple(np.shape(transform.data if isinstance(transform, Tensor) else transform))
    t = xp.asarray(transform.data if isinstance(transform, Tensor) else transform, dtype=xp.float32)
    if t.shape[-2:] == (3, 3):
        t = t.reshape(t.shape[:-2] + (9,))[..., :8] / t.reshape(t.shape[:-2] + (9,))[..., 8:9]
    if t.ndim == 1:
        t = t[None]
    if t.ndim != 2 or t.shape[1] != 8 or t.shape[0] not in (1, batch):
        raise ValueError(f"{op}: `transform` must have shape (8,), ({batch}, 8), (3, 3) or ({batch}, 3, 3); "
                         f"received shape {shape}")
    return xp.broadcast_to(t, (batch, 8))


def affine_transform(images, transform, interpolation="bilinear", fill_mode="constant", fill_value=0,
                     data_format=None):
    """Output pixel (x, y) of image b reads the source point ((a0 x + a1 y + a2) / k, (b0 x + b1 y + b2) / k),
    k = c0 x + c1 y + 1, from ``transform[b] = [a0, a1, a2, b0, b1, b2, c0, c1]`` (keras.ops.image.affine_transform;
    x is the column, y the row).  The output has the input's shape and a floating dtype."""
    op = "affine_transform"
    _check_channels_last(op, data_format)
    if interpolation not in INTERPOLATIONS:
        raise ValueError(f"{op}: `interpolation` must be one of {INTERPOLATIONS}; received {interpolation!r}")
    if fill_mode not in FILL_MODES:
        raise ValueError(f"{op}: `fill_mode` must be one of {FILL_MODES}; received {fill_mode!r}")
    x, single = _batched(op, images)
    xp = array_module(x.data)
    batch, height, width, channels = x.data.shape
    t = _as_transforms(op, transform, batch, xp)[:, :, None, None]  # (B, 8, 1, 1) against (1, H, W) grids
    cols = xp.arange(width, dtype=xp.float32)[None, None, :]
    rows = xp.arange(height, dtype=xp.float32)[None, :, None]
    k = t[:, 6] * cols + t[:, 7] * rows + 1
    src_x = (t[:, 0] * cols + t[:, 1] * rows + t[:, 2]) / k
    src_y = (t[:, 3] * cols + t[:, 4] * rows + t[:, 5]) / k
    result = _sample(x, src_x, src_y, interpolation, fill_mode, fill_value)
    return reshape(result, tuple(result.shape[1:])) if single else result


def _sample(x, src_x, src_y, interpolation="bilinear", fill_mode="constant", fill_value=0):
    """Output pixel (b, i, j) of the NHWC tensor ``x`` reads the source point (src_x[b, i, j],
    src_y[b, i, j]) (column, row: float32 arrays of x's module, broadcastable to (batch, height, width)),
    interpolated and filled as affine_transform describes; differentiable with respect to the images.  The one
    sampler behind affine_transform and the layers that compute their own source points (elastic)."""
    xp = array_module(x.data)
    batch, height, width, channels = x.data.shape
    src_x = xp.broadcast_to(src_x, (batch, height, width))
    src_y = xp.broadcast_to(src_y, (batch, height, width))
    # A point at infinity (k = 0) reads the fill rule at -1 rather than an undefined integer.
    src_x = xp.where(xp.isfinite(src_x), src_x, xp.float32(-1))
    src_y = xp.where(xp.isfinite(src_y), src_y, xp.float32(-1))

    if interpolation == "nearest":
        along_y = [(xp.floor(src_y + 0.5).astype(xp.int64), None)]
        along_x = [(xp.floor(src_x + 0.5).astype(xp.int64), None)]
    else:
        y0, x0 = xp.floor(src_y), xp.floor(src_x)
        fy, fx = src_y - y0, src_x - x0
        y0, x0 = y0.astype(xp.int64), x0.astype(xp.int64)
        along_y = [(y0, 1 - fy), (y0 + 1, fy)]
        along_x = [(x0, 1 - fx), (x0 + 1, fx)]
    # The fill rule per axis once (two index arrays each), then the corners as their products.
    along_y = [_fix_index(xp, i, height, fill_mode) + (w,) for i, w in along_y]
    along_x = [_fix_index(xp, i, width, fill_mode) + (w,) for i, w in along_x]

    base = (xp.arange(batch, dtype=xp.int64) * height)[:, None, None]
    gathers, fill_weight = [], None
    for iy, inside_y, wy in along_y:
        row_start = (base + iy) * width
        for ix, inside_x, wx in along_x:
            weight = xp.ones(iy.shape, xp.float32) if wy is None else wy * wx
            if fill_mode == "constant":
                outside = ~(inside_y & inside_x)
                fill_weight = (0 if fill_weight is None else fill_weight) + xp.where(outside, weight, xp.float32(0))
                weight = xp.where(outside, xp.float32(0), weight)
            gathers.append(((row_start + ix).reshape(-1), weight.astype(xp.float32, copy=False)[..., None]))

    flat = x.data.reshape(batch * height * width, channels)
    out = None
    for rows_index, weight in gathers:
        # take() along the rows is ~5x faster than flat[rows_index] on numpy
        term = xp.take(flat, rows_index, axis=0).reshape(batch, height, width, channels) * weight
        if out is None:
            out = term
        else:
            out += term
    if fill_weight is not None and fill_value != 0:
        out += fill_weight.astype(out.dtype)[..., None] * out.dtype.type(fill_value)
    out = out.astype(x.data.dtype, copy=False)

    def backward(g):
        full = xp.zeros((batch * height * width, channels), g.dtype)
        for rows_index, weight in gathers:
            backend_of(full).scatter_add(full, rows_index, (g * weight.astype(g.dtype)).reshape(-1, channels))
        return (full.reshape(batch, height, width, channels),)
    return make_result(out, (x,), backward)


def _axis_resize(x, axis, size, interpolation):
    """``x`` resized to ``size`` along ``axis`` (1: rows, 2: columns) by a gather of its neighbours."""
    xp = array_module(x.data)
    n = x.data.shape[axis]
    if n == size:
        return x
    # Source positions in float64 on the host: out-size numbers, exact for every size a layer sees.
    centers = (np.arange(size, dtype=np.float64) + 0.5) * (n / size)
    if interpolation == "nearest":
        return take(x, xp.asarray(np.minimum(np.floor(centers), n - 1).astype(np.int64)), axis=axis)
    src = np.clip(centers - 0.5, 0, n - 1)
    lo = np.floor(src).astype(np.int64)
    hi = np.minimum(lo + 1, n - 1)
    shape = [1] * x.ndim
    shape[axis] = size
    w = xp.asarray((src - lo).astype(np.float32).reshape(shape))
    a, b = take(x, xp.asarray(lo), axis=axis), take(x, xp.asarray(hi), axis=axis)
    return a + (b - a) * w


def resize(images, size, interpolation="bilinear", antialias=False, crop_to_aspect_ratio=False,
           pad_to_aspect_ratio=False, fill_mode="constant", fill_value=0.0, data_format=None):
    """keras.ops.image.resize for 'bilinear' and 'nearest' without antialiasing; the crop or pad to the target
    aspect ratio centres the image as Keras does."""
    op = "resize"
    _check_channels_last(op, data_format)
    if interpolation not in INTERPOLATIONS:
        raise NotImplementedError(f"{op}: `interpolation` must be one of {INTERPOLATIONS} here; received "
                                  f"{interpolation!r} (Keras's bicubic, lanczos and area are not implemented)")
    if antialias:
        raise NotImplementedError(f"{op}: antialias=True is not implemented; received antialias={antialias!r}")
    if fill_mode != "constant":
        raise ValueError(f"{op}: only fill_mode='constant' is supported; received fill_mode={fill_mode!r}")
    if crop_to_aspect_ratio and pad_to_aspect_ratio:
        raise ValueError(f"{op}: only one of crop_to_aspect_ratio and pad_to_aspect_ratio can be True")
    if len(size) != 2 or any(not isinstance(s, (int, np.integer)) or s < 1 for s in size):
        raise ValueError(f"{op}: `size` must be two positive integers (height, width); received size={size!r}")
    target_h, target_w = int(size[0]), int(size[1])
    x, single = _batched(op, images)
    height, width = x.data.shape[1:3]
    if crop_to_aspect_ratio:
        crop_h, crop_w = aspect_crop_box(height, width, target_h, target_w)
        top, left = (height - crop_h) // 2, (width - crop_w) // 2
        x = _getitem(x, (slice(None), slice(top, top + crop_h), slice(left, left + crop_w)))
    elif pad_to_aspect_ratio:
        pad_h = max(height, int(width * target_h / target_w))
        pad_w = max(width, int(height * target_w / target_h))
        # Keras pads the same amount on both sides (the start offset), so an odd difference loses a row.
        top, left = (pad_h - height) // 2, (pad_w - width) // 2
        if top > 0:
            x = pad(x, [(0, 0), (top, top), (0, 0), (0, 0)], constant_values=fill_value)
        elif left > 0:
            x = pad(x, [(0, 0), (0, 0), (left, left), (0, 0)], constant_values=fill_value)
    x = _axis_resize(_axis_resize(x, 1, target_h, interpolation), 2, target_w, interpolation)
    return reshape(x, tuple(x.shape[1:])) if single else x


def aspect_crop_box(height, width, target_h, target_w):
    """The largest centred window of a (height, width) image with the target's aspect ratio, as Keras's
    smart_resize and crop_to_aspect_ratio compute it: (crop_height, crop_width)."""
    crop_h = max(min(height, int(width * target_h / target_w)), 1)
    crop_w = max(min(width, int(height * target_w / target_h)), 1)
    return crop_h, crop_w


def extract_patches(image, size, strides=None, dilation_rate=1, padding="valid", data_format=None):
    """keras.ops.image.extract_patches: every (patch_h, patch_w) window of NHWC images (or one HWC image)
    flattened into the channel axis in (row, column, channel) order, as Keras's identity-kernel convolution
    (and tf.image.extract_patches) lays them out: (batch, out_h, out_w, patch_h * patch_w * channels).
    Two gathers (rows, then columns) over the whole batch instead of that convolution, whose kernel grows
    with the square of the patch size; differentiable with respect to the images.  The dtype is kept."""
    op = "extract_patches"
    _check_channels_last(op, data_format)
    from dlgpu.ops.conv import spatial_pads
    from dlgpu.ops.shape import transpose
    from dlgpu.ops.window import normalize_tuple
    if isinstance(size, (int, np.integer)) and not isinstance(size, bool):
        size = (int(size), int(size))
    if not isinstance(size, (tuple, list)) or len(size) != 2:
        raise TypeError(f"{op}: invalid `size` argument. Expected an int or a tuple of length 2. Received: "
                        f"size={size!r}")
    window = normalize_tuple(size, 2, "size", op)
    strides = window if not strides else normalize_tuple(strides, 2, "strides", op)
    dilation = normalize_tuple(dilation_rate, 2, "dilation_rate", op)
    x = to_tensor(image)
    if x.ndim not in (3, 4):
        raise ValueError(f"{op}: expected an image of rank 3 (height, width, channels) or a batch of rank 4; "
                         f"received shape {tuple(x.shape)}")
    single = x.ndim == 3
    if single:
        x = reshape(x, (1,) + tuple(x.shape))
    batch, height, width, channels = x.data.shape
    pads = spatial_pads(padding, (height, width), window, strides, dilation, op)
    if any(p for pair in pads for p in pair):
        x = pad(x, [(0, 0), *pads, (0, 0)])
    xp = array_module(x.data)
    (ph, pw), (sh, sw), (dh, dw) = window, strides, dilation
    out_h = (x.data.shape[1] - (ph - 1) * dh - 1) // sh + 1
    out_w = (x.data.shape[2] - (pw - 1) * dw - 1) // sw + 1
    rows = xp.asarray(np.arange(out_h)[:, None] * sh + np.arange(ph)[None, :] * dh)    # (out_h, ph)
    cols = xp.asarray(np.arange(out_w)[:, None] * sw + np.arange(pw)[None, :] * dw)    # (out_w, pw)
    patches = take(take(x, rows, axis=1), cols, axis=3)          # (batch, out_h, ph, out_w, pw, channels)
    patches = transpose(patches, (0, 1, 3, 2, 4, 5))
    patches = reshape(patches, (batch, out_h, out_w, ph * pw * channels))
    return reshape(patches, tuple(patches.shape[1:])) if single else patches
