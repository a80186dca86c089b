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

``map_coordinates`` is the general sampler (any rank, Keras's torch rules: nearest rounds half to even),
written with dlgpu ops so that gradients reach both the input and the coordinates;
``perspective_transform`` and ``elastic_transform`` sample through it, the batch and channel axes as
exact integer indices (one gather per corner of the two spatial axes).  Every op takes
``data_format='channels_first'`` too: the images move to channels_last and back (two transposes).
The colour conversions and filters (rgb_to_grayscale, rgb_to_hsv, hsv_to_rgb, gaussian_blur, sobel_edges,
ssim) live in ops/image_filters.py and are imported here.
"""

from __future__ import annotations

import functools
import itertools
import operator

import numpy as np

from dlgpu.ops._core import Tensor, array_module, backend_of, make_result, to_tensor
from dlgpu.ops.shape import _getitem, moveaxis, pad, reshape, take

# keras.ops.image's names (Keras 3.15.1); the module's other public names are helpers for the layers
__all__ = ["affine_transform", "crop_images", "elastic_transform", "extract_patches", "extract_patches_3d",
           "gaussian_blur", "hsv_to_rgb", "map_coordinates", "pad_images", "perspective_transform", "resize",
           "rgb_to_grayscale", "rgb_to_hsv", "scale_and_translate", "sobel_edges", "ssim"]

INTERPOLATIONS = ("bilinear", "nearest")
FILL_MODES = ("reflect", "wrap", "constant", "nearest", "mirror")


def data_format_of(op, data_format):
    """Keras's standardize_data_format: None is the configured one (dlgpu's is always channels_last)."""
    if data_format is None:
        from dlgpu import config
        return config.image_data_format()
    normalized = str(data_format).lower()
    if normalized not in ("channels_last", "channels_first"):
        raise ValueError(f"{op}: `data_format` must be 'channels_last' or 'channels_first'; received "
                         f"data_format={data_format!r}")
    return normalized


def to_channels_last(x, data_format, spatial=2):
    return moveaxis(x, -spatial - 1, -1) if data_format == "channels_first" else x


def from_channels_last(x, data_format, spatial=2):
    return moveaxis(x, -1, -spatial - 1) if data_format == "channels_first" else x


def check_rank(op, x, ranks=(3, 4), name="images"):
    if x.ndim not in ranks:
        raise ValueError(f"{op}: expected {name} of rank {ranks[0]} (one image) or {ranks[1]} (a batch of images); "
                         f"received shape {tuple(x.shape)}")


def _batched(op, images, data_format="channels_last", cast_to_float=True):
    """(NHWC batch, whether it was one image): the images moved to channels_last, a batch axis added."""
    images = to_tensor(images)
    check_rank(op, images)
    if cast_to_float and images.data.dtype.kind != "f":
        from dlgpu.ops.math import cast
        images = cast(images, "float32")
    images = to_channels_last(images, data_format)
    single = images.ndim == 3
    return (reshape(images, (1,) + tuple(images.shape)) if single else images), single


def _unbatched(x, single, data_format="channels_last"):
    if single:
        x = reshape(x, tuple(x.shape[1:]))
    return from_channels_last(x, data_format)


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
    data_format = data_format_of(op, data_format)
    if interpolation not in INTERPOLATIONS:
        raise ValueError(f"{op}: `interpolation` must be one of {INTERPOLATIONS}; received {interpolation!r}")
    if fill_mode not in FILL_MODES:
        raise ValueError(f"{op}: `fill_mode` must be one of {FILL_MODES}; received {fill_mode!r}")
    x, single = _batched(op, images, data_format)
    xp = array_module(x.data)
    batch, height, width, channels = x.data.shape
    t = _as_transforms(op, transform, batch, xp)[:, :, None, None]  # (B, 8, 1, 1) against (1, H, W) grids
    cols = xp.arange(width, dtype=xp.float32)[None, None, :]
    rows = xp.arange(height, dtype=xp.float32)[None, :, None]
    k = t[:, 6] * cols + t[:, 7] * rows + 1
    src_x = (t[:, 0] * cols + t[:, 1] * rows + t[:, 2]) / k
    src_y = (t[:, 3] * cols + t[:, 4] * rows + t[:, 5]) / k
    return _unbatched(_sample(x, src_x, src_y, interpolation, fill_mode, fill_value), single, data_format)


def _sample(x, src_x, src_y, interpolation="bilinear", fill_mode="constant", fill_value=0):
    """Output pixel (b, i, j) of the NHWC tensor ``x`` reads the source point (src_x[b, i, j],
    src_y[b, i, j]) (column, row: float32 arrays of x's module, broadcastable to (batch, height, width)),
    interpolated and filled as affine_transform describes (nearest rounds half up, as TensorFlow);
    differentiable with respect to the images, with one scatter-add backward (map_coordinates' sampler, built
    from ops, also differentiates the points)."""
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
    data_format = data_format_of(op, data_format)
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
    x, single = _batched(op, images, data_format)
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
    return _unbatched(x, single, data_format)


def aspect_crop_box(height, width, target_h, target_w):
    """The largest centred window of a (height, width) image with the target's aspect ratio, as Keras's
    smart_resize and crop_to_aspect_ratio compute it: (crop_height, crop_width)."""
    crop_h = max(min(height, int(width * target_h / target_w)), 1)
    crop_w = max(min(width, int(height * target_w / target_h)), 1)
    return crop_h, crop_w


def extract_patches(images, size, strides=None, dilation_rate=1, padding="valid", data_format=None):
    """keras.ops.image.extract_patches: every (patch_h, patch_w) window of NHWC images (or one HWC image)
    flattened into the channel axis in (row, column, channel) order, as Keras's identity-kernel convolution
    (and tf.image.extract_patches) lays them out: (batch, out_h, out_w, patch_h * patch_w * channels).
    A ``size`` of three numbers takes 3-D patches of volumes (extract_patches_3d), as Keras's does.
    One gather per spatial axis over the whole batch instead of that convolution, whose kernel grows
    with the square of the patch size; differentiable with respect to the images.  The dtype is kept."""
    op = "extract_patches"
    if isinstance(size, (int, np.integer)) and not isinstance(size, bool):
        size = (int(size), int(size))
    if not isinstance(size, (tuple, list)) or len(size) not in (2, 3):
        raise TypeError(f"{op}: invalid `size` argument. Expected an int or a tuple of length 2 (or 3, for "
                        f"volumes). Received: size={size!r}")
    if len(size) == 3:
        return _patches("extract_patches_3d", images, size, strides, dilation_rate, padding, data_format)
    return _patches(op, images, size, strides or None, dilation_rate, padding, data_format)


def extract_patches_3d(volumes, size, strides=None, dilation_rate=1, padding="valid", data_format=None):
    """keras.ops.image.extract_patches_3d: the (patch_d, patch_h, patch_w) windows of NDHWC volumes (or one
    DHWC volume), flattened in (depth, row, column, channel) order: (batch, out_d, out_h, out_w,
    patch_d * patch_h * patch_w * channels)."""
    op = "extract_patches_3d"
    if isinstance(size, (int, np.integer)) and not isinstance(size, bool):
        size = (int(size),) * 3
    if not isinstance(size, (tuple, list)) or len(size) != 3:
        raise TypeError(f"{op}: invalid `size` argument. Expected an int or a tuple of length 3. Received: "
                        f"size={size!r}")
    if isinstance(strides, (tuple, list)) and len(strides) != 3:
        raise ValueError(f"{op}: invalid `strides` argument. Expected an int or a tuple of length 3. Received: "
                         f"strides={strides!r}")
    return _patches(op, volumes, size, strides, dilation_rate, padding, data_format)


def _patches(op, images, size, strides, dilation_rate, padding, data_format):
    """The windows of ``n = len(size)`` spatial axes: one take() per axis gathers (out_i, patch_i) indices,
    then the patch axes move behind the output axes and merge with the channels."""
    from dlgpu.ops.conv import spatial_pads
    from dlgpu.ops.shape import transpose
    from dlgpu.ops.window import normalize_tuple
    n = len(size)
    data_format = data_format_of(op, data_format)
    window = normalize_tuple(tuple(int(s) for s in size), n, "size", op)
    strides = window if strides is None else normalize_tuple(strides, n, "strides", op)
    dilation = normalize_tuple(dilation_rate, n, "dilation_rate", op)
    x = to_tensor(images)
    if x.ndim not in (n + 1, n + 2):
        kind = "an image" if n == 2 else "a volume"
        raise ValueError(f"{op}: expected {kind} of rank {n + 1} or a batch of rank {n + 2}; received shape "
                         f"{tuple(x.shape)}")
    single = x.ndim == n + 1
    if single:
        x = reshape(x, (1,) + tuple(x.shape))
    x = to_channels_last(x, data_format, n)
    batch, channels = x.data.shape[0], x.data.shape[-1]
    pads = spatial_pads(padding, x.data.shape[1:-1], window, strides, dilation, op)
    if any(p for pair in pads for p in pair):
        x = pad(x, [(0, 0), *pads, (0, 0)])
    xp = array_module(x.data)
    outs = []
    for i, (k, s, d) in enumerate(zip(window, strides, dilation)):
        out = (x.data.shape[1 + 2 * i] - (k - 1) * d - 1) // s + 1
        outs.append(out)
        # after i takes the axes are (batch, out_0, k_0, ..., out_i-1, k_i-1, size_i, ...): axis i is at 1 + 2i
        x = take(x, xp.asarray(np.arange(out)[:, None] * s + np.arange(k)[None, :] * d), axis=1 + 2 * i)
    x = transpose(x, [0] + [1 + 2 * i for i in range(n)] + [2 + 2 * i for i in range(n)] + [2 * n + 1])
    x = reshape(x, (batch, *outs, int(np.prod(window)) * channels))
    x = from_channels_last(x, data_format, n)
    return reshape(x, tuple(x.shape[1:])) if single else x


# -- crop and pad ------------------------------------------------------------------------------------------

def _two_of_three(op, names, values):
    if list(values).count(None) != 1:
        given = ", ".join(f"{n}={v}" for n, v in zip(names, values))
        raise ValueError(f"{op}: must specify exactly two of {', '.join(names)}. Received: {given}")
    for n, v in zip(names, values):
        if v is not None and (isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 0):
            raise ValueError(f"{op}: {n} must be an integer >= 0. Received: {n}={v!r}")


def _spatial_sizes(op, images, data_format):
    x = to_tensor(images)
    check_rank(op, x)
    height, width = x.shape[-3:-1] if data_format == "channels_last" else x.shape[-2:]
    return x, height, width


def crop_images(images, top_cropping=None, left_cropping=None, bottom_cropping=None, right_cropping=None,
                target_height=None, target_width=None, data_format=None):
    """keras.ops.image.crop_images: two of (top, bottom, target height) and two of (left, right, target
    width) fix the window; a slice, so the gradient is the images' own inside it."""
    op = "crop_images"
    data_format = data_format_of(op, data_format)
    _two_of_three(op, ("top_cropping", "bottom_cropping", "target_height"),
                  (top_cropping, bottom_cropping, target_height))
    _two_of_three(op, ("left_cropping", "right_cropping", "target_width"),
                  (left_cropping, right_cropping, target_width))
    x, height, width = _spatial_sizes(op, images, data_format)
    top = height - target_height - bottom_cropping if top_cropping is None else top_cropping
    rows = height - top - bottom_cropping if target_height is None else target_height
    left = width - target_width - right_cropping if left_cropping is None else left_cropping
    cols = width - left - right_cropping if target_width is None else target_width
    for name, value in (("top_cropping", top), ("target_height", rows), ("left_cropping", left),
                        ("target_width", cols)):
        if value < 0:
            raise ValueError(f"{op}: {name} must be >= 0. Received: {name}={value} for images of shape "
                             f"{tuple(x.shape)}")
    if top + rows > height or left + cols > width:
        raise ValueError(f"{op}: the crop (top={top}, left={left}, height={rows}, width={cols}) does not fit in "
                         f"images of shape {tuple(x.shape)}")
    window = (slice(top, top + rows), slice(left, left + cols))
    index = (Ellipsis,) + window + (slice(None),) if data_format == "channels_last" else (Ellipsis,) + window
    return _getitem(x, index)


def pad_images(images, top_padding=None, left_padding=None, bottom_padding=None, right_padding=None,
               target_height=None, target_width=None, data_format=None):
    """keras.ops.image.pad_images: zeros around the images, two of (top, bottom, target height) and two of
    (left, right, target width) given."""
    op = "pad_images"
    data_format = data_format_of(op, data_format)
    _two_of_three(op, ("top_padding", "bottom_padding", "target_height"),
                  (top_padding, bottom_padding, target_height))
    _two_of_three(op, ("left_padding", "right_padding", "target_width"),
                  (left_padding, right_padding, target_width))
    x, height, width = _spatial_sizes(op, images, data_format)
    top = target_height - bottom_padding - height if top_padding is None else top_padding
    bottom = target_height - top - height if bottom_padding is None else bottom_padding
    left = target_width - right_padding - width if left_padding is None else left_padding
    right = target_width - left - width if right_padding is None else right_padding
    for name, value in (("top_padding", top), ("bottom_padding", bottom), ("left_padding", left),
                        ("right_padding", right)):
        if value < 0:
            raise ValueError(f"{op}: {name} must be >= 0. Received: {name}={value} for images of shape "
                             f"{tuple(x.shape)}")
    widths = [(top, bottom), (left, right)]
    widths = widths + [(0, 0)] if data_format == "channels_last" else [(0, 0)] + widths
    return pad(x, [(0, 0)] * (x.ndim - 3) + widths)


# -- sampling at arbitrary coordinates ---------------------------------------------------------------------

def _interpolate(x, coordinates, order, fill_mode, fill_value):
    """``x`` (a float Tensor) read at ``coordinates``, one entry per axis of x, broadcast against each other:
    a float Tensor is a position to interpolate (order 1: the two neighbours, weighted by a Tensor, so the
    gradient reaches the coordinates; order 0: rounded half to even, as torch.round), an integer array an
    exact index.  Each corner is one take() from the flattened x, so the gradient reaches x too."""
    from dlgpu.ops.math import add, multiply, subtract, where
    xp = array_module(x.data)
    per_axis = []
    for c, n in zip(coordinates, x.shape):
        if isinstance(c, Tensor) and c.data.dtype.kind == "f":
            if order == 0:
                nodes = [(xp.round(c.data).astype(xp.int64), None)]
            else:
                lower = xp.floor(c.data)
                upper_weight = subtract(c, lower)
                nodes = [(lower.astype(xp.int64), subtract(1.0, upper_weight)),
                         (lower.astype(xp.int64) + 1, upper_weight)]
        else:
            nodes = [(xp.asarray(c.data if isinstance(c, Tensor) else c).astype(xp.int64), None)]
        per_axis.append([_fix_index(xp, i, n, fill_mode) + (w,) for i, w in nodes])
    strides = [int(np.prod(x.shape[i + 1:])) for i in range(x.ndim)]
    flat = reshape(x, (-1,))
    out = None
    for corner in itertools.product(*per_axis):
        index = functools.reduce(operator.add, [i * s for (i, _, _), s in zip(corner, strides)])
        masks = [inside for _, inside, _ in corner if inside is not None]
        weights = [w for _, _, w in corner if w is not None]
        value = take(flat, index)
        if masks:
            value = where(functools.reduce(operator.and_, masks), value, fill_value)
        for w in weights:
            value = multiply(value, w)
        out = value if out is None else add(out, value)
    return out


def _restore_dtype(result, dtype, low=None, high=None):
    """Float results of integer inputs round back to the inputs' dtype (Keras's torch image ops do)."""
    from dlgpu.ops.math import cast, clip
    from dlgpu.ops.math import round as round_
    if np.dtype(dtype).kind == "f":
        return cast(result, dtype) if result.dtype != str(np.dtype(dtype)) else result
    result = round_(result)
    if low is not None:
        result = clip(result, low, high)
    return cast(result, dtype)


def _parameter(value, images):
    """An op's geometric parameter (points, coordinates, scales) as a Tensor on the images' device: host
    values (Python numbers, numpy arrays) are put there, as affine_transform's transforms are; a Tensor
    stays where it is (another device than the images' is an error, as everywhere)."""
    if isinstance(value, Tensor):
        return value
    return Tensor(array_module(images.data).asarray(np.asarray(value)))


def _float_compute(x):
    from dlgpu.ops.math import cast
    return x if x.data.dtype.kind == "f" else cast(x, "float32")


def map_coordinates(inputs, coordinates, order, fill_mode="constant", fill_value=0):
    """keras.ops.image.map_coordinates: ``inputs`` read at ``coordinates`` (shape (inputs.ndim, ...), or a
    list of inputs.ndim arrays), by nearest neighbour (order 0) or linear interpolation (order 1), points
    outside following ``fill_mode``.  The result has the coordinates' trailing shape and the inputs' dtype;
    differentiable with respect to both the inputs and (order 1) the coordinates."""
    op = "map_coordinates"
    x = to_tensor(inputs)
    if isinstance(coordinates, (list, tuple)):
        coords = [_parameter(c, x) for c in coordinates]
        shape = (len(coords),) + tuple(coords[0].shape) if coords else (0,)
    else:
        c = _parameter(coordinates, x)
        shape = tuple(c.shape)
        coords = [_getitem(c, i) for i in range(c.shape[0])] if c.ndim else []
    if len(shape) < 2:
        raise ValueError(f"{op}: invalid coordinates rank: expected at least rank 2. Received coordinates of "
                         f"shape {shape}")
    if shape[0] != x.ndim:
        raise ValueError(f"{op}: the first dim of `coordinates` must be the rank of `inputs`. Received inputs "
                         f"with shape {tuple(x.shape)} and coordinates of shape {shape}")
    if isinstance(order, bool) or order not in (0, 1):
        raise ValueError(f"{op}: `order` must be 0 (nearest) or 1 (linear); received order={order!r}")
    if fill_mode not in FILL_MODES:
        raise ValueError(f"{op}: `fill_mode` must be one of {FILL_MODES}; received fill_mode={fill_mode!r}")
    dtype = x.data.dtype
    out = _interpolate(_float_compute(x), coords, order, fill_mode, fill_value)
    return _restore_dtype(out, dtype)


def _sample_nhwc(x, rows, cols, order, fill_mode, fill_value):
    """NHWC images ``x`` read at (rows, cols), float Tensors of shape (batch or 1, H', W'): (batch, H', W', C)."""
    xp = array_module(x.data)
    batch, channels = x.shape[0], x.shape[-1]
    b = xp.arange(batch).reshape(-1, 1, 1, 1)
    c = xp.arange(channels).reshape(1, 1, 1, -1)
    return _interpolate(x, [b, reshape(rows, tuple(rows.shape) + (1,)), reshape(cols, tuple(cols.shape) + (1,)), c],
                        order, fill_mode, fill_value)


def _homography(start, end):
    """Keras's compute_homography_matrix: the (N, 8) [a0..a7] that map each end point to its start point
    (x_in = (a0 x + a1 y + a2) / (a6 x + a7 y + 1), y_in likewise with a3 a4 a5), from one 8x8 solve per
    image; built from ops, so the gradient reaches the points."""
    from dlgpu.ops.linalg import solve
    from dlgpu.ops.math import negative, multiply
    from dlgpu.ops.shape import ones_like, stack, zeros_like
    rows, targets = [], []
    for k in range(4):
        sx, sy = start[:, k, 0], start[:, k, 1]
        ex, ey = end[:, k, 0], end[:, k, 1]
        one, zero = ones_like(ex), zeros_like(ex)
        rows.append(stack([ex, ey, one, zero, zero, zero, negative(multiply(sx, ex)), negative(multiply(sx, ey))], -1))
        rows.append(stack([zero, zero, zero, ex, ey, one, negative(multiply(sy, ex)), negative(multiply(sy, ey))], -1))
        targets += [sx, sy]
    solution = solve(stack(rows, 1), reshape(stack(targets, -1), (-1, 8, 1)))
    return reshape(solution, (-1, 8))


def perspective_transform(images, start_points, end_points, interpolation="bilinear", fill_value=0,
                          data_format=None):
    """keras.ops.image.perspective_transform: the homography taking ``end_points`` to ``start_points`` (four
    (x, y) corners each, one set per image or one for all) maps every output pixel to its source point,
    sampled as map_coordinates does (nearest rounds half to even; outside points read ``fill_value``).
    Differentiable with respect to the images and the points."""
    op = "perspective_transform"
    from dlgpu.ops.math import add, cast, divide, multiply
    data_format = data_format_of(op, data_format)
    if interpolation not in INTERPOLATIONS:
        raise ValueError(f"{op}: `interpolation` must be one of {INTERPOLATIONS}; received {interpolation!r}")
    dtype = to_tensor(images).data.dtype
    x, single = _batched(op, images, data_format)
    work = x.data.dtype
    points = [_parameter(start_points, x), _parameter(end_points, x)]
    _check_points(op, *points)
    start, end = (reshape(cast(p, str(work)), (-1, 4, 2)) for p in points)
    batch, height, width = x.shape[:3]
    if start.shape[0] not in (1, batch):
        raise ValueError(f"{op}: {start.shape[0]} sets of points for {batch} image(s); give one set or one per "
                         f"image")
    xp = array_module(x.data)
    try:
        t = reshape(_homography(start, end), (-1, 8, 1, 1))
    except np.linalg.LinAlgError as error:
        raise ValueError(f"{op}: no perspective transform maps these end_points to these start_points (three of "
                         f"the four points are collinear or coincide): {error}") from error
    cols = xp.arange(width, dtype=work)[None, None, :]
    rows = xp.arange(height, dtype=work)[None, :, None]

    def affine(i, j, k):
        return add(add(multiply(t[:, i], cols), multiply(t[:, j], rows)), t[:, k])
    denominator = add(add(multiply(t[:, 6], cols), multiply(t[:, 7], rows)), 1.0)
    src_x, src_y = divide(affine(0, 1, 2), denominator), divide(affine(3, 4, 5), denominator)
    out = _sample_nhwc(x, src_y, src_x, 0 if interpolation == "nearest" else 1, "constant", fill_value)
    return _unbatched(_restore_dtype(out, dtype), single, data_format)


def _check_points(op, start, end):
    for name, p in (("start_points", start), ("end_points", end)):
        if len(p.shape) not in (2, 3) or tuple(p.shape[-2:]) != (4, 2):
            raise ValueError(f"{op}: invalid {name} shape: expected (4, 2) for a single image or (N, 4, 2) for a "
                             f"batch. Received shape: {tuple(p.shape)}")
    if tuple(start.shape) != tuple(end.shape):
        raise ValueError(f"{op}: start_points and end_points must have the same shape. Received "
                         f"start_points.shape={tuple(start.shape)}, end_points.shape={tuple(end.shape)}")


def _perspective_spec(images, start_points, end_points, *args, **kwargs):
    """The dummy run would solve for a homography of coincident points: the images' spec instead (Keras's
    compute_output_spec), after the same checks of the shapes."""
    images, start, end = (p if hasattr(p, "shape") else to_tensor(p) for p in (images, start_points, end_points))
    if len(images.shape) not in (3, 4):
        raise ValueError(f"perspective_transform: expected images of rank 3 (one image) or 4 (a batch of images); "
                         f"received shape {tuple(images.shape)}")
    _check_points("perspective_transform", start, end)
    return images.shape, images.dtype


def elastic_transform(images, alpha=20.0, sigma=5.0, interpolation="bilinear", fill_mode="reflect",
                      fill_value=0.0, seed=None, data_format=None):
    """keras.ops.image.elastic_transform: each pixel (x, y) reads the source point (x + alpha dx, y + alpha dy),
    dx and dy standard normal fields (one per image) times sigma, blurred by a Gaussian of standard deviation
    sigma and size int(6 sigma) | 1.  The fields are drawn on the host (dlgpu.random's rules for ``seed``);
    the sampling is differentiable with respect to the images."""
    op = "elastic_transform"
    from dlgpu.random import _rng
    data_format = data_format_of(op, data_format)
    if interpolation not in INTERPOLATIONS:
        raise ValueError(f"{op}: `interpolation` must be one of {INTERPOLATIONS}; received {interpolation!r}")
    if fill_mode not in FILL_MODES:
        raise ValueError(f"{op}: `fill_mode` must be one of {FILL_MODES}; received fill_mode={fill_mode!r}")
    dtype = to_tensor(images).data.dtype
    x, single = _batched(op, images, data_format)
    batch, height, width = x.shape[:3]
    noise = _rng(seed).normal(size=(2, batch, height, width)).astype(x.data.dtype)
    out = _elastic_warp(x, noise[0], noise[1], alpha, sigma, interpolation, fill_mode, fill_value)
    return _unbatched(_restore_dtype(out, dtype), single, data_format)


def _elastic_warp(x, dx, dy, alpha, sigma, interpolation, fill_mode, fill_value):
    """elastic_transform's deterministic part: NHWC ``x`` displaced by the standard normal fields dx, dy
    (host arrays of shape (batch, H, W)), as Keras computes it (kept apart so that tests can give Keras's
    own draws)."""
    xp = array_module(x.data)
    work = x.data.dtype
    sigma = float(sigma)
    size = int(6 * sigma) | 1
    fields = xp.asarray(np.stack([dx, dy], -1).astype(work) * work.type(sigma))     # (batch, H, W, 2)
    fields = gaussian_blur(fields, (size, size), (sigma, sigma), "channels_last").data
    height, width = x.shape[1:3]
    cols = xp.arange(width, dtype=work)[None, None, :] + work.type(alpha) * fields[..., 0]
    rows = xp.arange(height, dtype=work)[None, :, None] + work.type(alpha) * fields[..., 1]
    return _sample_nhwc(x, Tensor(rows), Tensor(cols), 0 if interpolation == "nearest" else 1, fill_mode,
                        fill_value)


# -- scale_and_translate -----------------------------------------------------------------------------------

SCALE_AND_TRANSLATE_METHODS = {"linear": "linear", "bilinear": "linear", "trilinear": "linear",
                               "triangle": "linear", "cubic": "cubic", "bicubic": "cubic", "tricubic": "cubic",
                               "lanczos3": "lanczos3", "lanczos5": "lanczos5"}


def _resampling_kernel(method, x):
    """jax.image's kernels of |distance| ``x`` (a Tensor): triangle, Keys cubic (a = -0.5), Lanczos."""
    from dlgpu.ops.math import abs as abs_
    from dlgpu.ops.math import maximum, sin, where
    if method == "linear":
        return maximum(0.0, 1.0 - abs_(x))
    if method == "cubic":
        near = ((1.5 * x - 2.5) * x) * x + 1.0
        far = ((-0.5 * x + 2.5) * x - 4.0) * x + 2.0
        return where(x >= 2.0, 0.0, where(x >= 1.0, far, near))
    radius = 3.0 if method == "lanczos3" else 5.0
    y = radius * sin(np.pi * x) * sin(np.pi * x / radius)
    # the division guarded where x = 0, whose value (1) the outer where gives
    out = where(x > 1e-3, y / where(x != 0, np.pi ** 2 * x * x, 1.0), 1.0)
    return where(x > radius, 0.0, out)


def _resampling_weights(in_size, out_size, scale, translation, method, antialias):
    """The (in_size, out_size) matrix of one axis (jax.image.scale_and_translate's compute_weight_mat)."""
    from dlgpu.ops.math import abs as abs_
    from dlgpu.ops.math import divide, logical_and, maximum, multiply, where
    from dlgpu.ops.reduce import sum as sum_
    xp = array_module(scale.data)
    work = scale.data.dtype
    inv_scale = 1.0 / scale
    kernel_scale = maximum(inv_scale, 1.0) if antialias else 1.0
    centres = xp.arange(out_size, dtype=work) + work.type(0.5)
    sample = multiply(centres, inv_scale) - translation * inv_scale - 0.5
    distance = abs_(reshape(sample, (1, out_size)) - xp.arange(in_size, dtype=work)[:, None]) / kernel_scale
    weights = _resampling_kernel(method, distance)
    total = sum_(weights, axis=0, keepdims=True)
    weights = where(abs_(total) > 1000.0 * float(np.finfo(np.float32).eps),
                    divide(weights, where(total != 0, total, 1.0)), 0.0)
    inside = logical_and(sample >= -0.5, sample <= in_size - 0.5)
    return where(reshape(inside, (1, out_size)), weights, 0.0)


def scale_and_translate(images, output_shape, scale, translation, spatial_dims, method, antialias=True):
    """keras.ops.image.scale_and_translate (jax.image's): along each of ``spatial_dims`` the output sample at
    half-pixel centre y reads the input around (y - translation) / scale through the method's kernel,
    widened by 1 / scale when downsampling with ``antialias``; one matrix product per axis, differentiable
    with respect to the images, the scale and the translation."""
    op = "scale_and_translate"
    from dlgpu.backend import result_type
    from dlgpu.ops.einsum import tensordot
    from dlgpu.ops.math import cast
    if method not in SCALE_AND_TRANSLATE_METHODS:
        raise ValueError(f"{op}: `method` must be one of {sorted(SCALE_AND_TRANSLATE_METHODS)}; received "
                         f"method={method!r}")
    kernel = SCALE_AND_TRANSLATE_METHODS[method]
    x = to_tensor(images)
    dims = [int(d) for d in spatial_dims]
    output_shape = tuple(int(s) for s in output_shape)
    if len(output_shape) != x.ndim:
        raise ValueError(f"{op}: `output_shape` {output_shape} must have one size per axis of the images, of "
                         f"shape {tuple(x.shape)}")
    if any(d < -x.ndim or d >= x.ndim for d in dims) or len({d % x.ndim for d in dims}) != len(dims):
        raise ValueError(f"{op}: `spatial_dims` {tuple(dims)} must be distinct axes of images of rank {x.ndim}")
    dims = [d % x.ndim for d in dims]
    other = [i for i in range(x.ndim) if i not in dims]
    if any(output_shape[i] != x.shape[i] for i in other):
        raise ValueError(f"{op}: `output_shape` {output_shape} changes an axis outside spatial_dims "
                         f"{tuple(dims)} of images of shape {tuple(x.shape)}")
    scale, translation = _parameter(scale, x), _parameter(translation, x)
    if tuple(scale.shape) != (len(dims),) or tuple(translation.shape) != (len(dims),):
        raise ValueError(f"{op}: `scale` and `translation` need one value per spatial dim ({len(dims)}); received "
                         f"shapes {tuple(scale.shape)} and {tuple(translation.shape)}")
    work = result_type(scale.dtype, translation.dtype, float)
    scale, translation = cast(scale, work), cast(translation, work)
    dtype = x.data.dtype
    out = _float_compute(x)
    for i, d in enumerate(dims):
        weights = _resampling_weights(x.shape[d], output_shape[d], scale[i], translation[i], kernel, antialias)
        out = moveaxis(tensordot(out, cast(weights, out.dtype), axes=([d], [0])), -1, d)
    if dtype.kind != "f":  # rounded and kept within the input's range, as Keras's torch backend does
        return _restore_dtype(out, dtype, float(x.data.min()), float(x.data.max()))
    return out


from dlgpu.ops import symbolic as _symbolic  # noqa: E402

_symbolic.OUTPUT_SPECS["image.perspective_transform"] = _perspective_spec

from dlgpu.ops.image_filters import (gaussian_blur, hsv_to_rgb, rgb_to_grayscale, rgb_to_hsv,  # noqa: E402
                                     sobel_edges, ssim)
